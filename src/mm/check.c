/* SPDX-License-Identifier: MIT */
/*
 * hm_check: the invariant walker.
 *
 * With every mm locked for writing, walk every table of every mm and every
 * deposit, recount from scratch what the descriptors and counters claim,
 * then scan the frame descriptors: each frame must belong to exactly one
 * owner (a free block, a folio, a table in use, a table waiting for a grace
 * period, a free slot of the page-table cache, the huge zero page), and the
 * totals must balance. Every table, pending table and free slot has a
 * ptdesc that points back to it, in its block's array if it is in a table
 * block, and a table block holds nothing else. Leaves of the huge zero page are counted apart: they
 * are in no folio's map counts (zero.c).
 * The scan steps over a free block at its head, without reading the rest,
 * and the scratch array is a fresh anonymous mapping, so the parts for
 * frames that nothing uses cost nothing: checking a huge, mostly empty
 * system costs what is in use.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "anon.h"
#include "check.h"
#include "folio.h"
#include "lru.h"
#include "stat.h"
#include "types.h"
#include "vma.h"
#include "zero.h"

#define MAX_REPORTS 20

struct shadow {			/* per frame, recounted from the tables */
	uint32_t pte, pmd, whole, total;
	uint32_t id[2], cnt[2];
	uint32_t first_mm;		/* page: slot_id + 1 of the first mm found
					 * mapping it; 0 = none yet */
	uint8_t table, overflow;
	uint8_t shared, writable;	/* page: mapped by 2+ mms; mapped writable */
	uint8_t queued;			/* folio head: met on the deferred queue */
	uint8_t cached;			/* met in a per-CPU frame cache */
	uint8_t ptblock;		/* first frame of a table block on the
					 * cache's list */
};

struct chk {
	struct hm_system *sys;
	struct hm_phys *ph;
	struct shadow *sh;
	bool zero_found;		/* scan_frames met the huge zero page */
	int errors;
	uint64_t tables, deposited;	/* all mms */
	uint64_t leaves[3];		/* all mms */
	uint64_t zero_leaves[2];	/* all mms: leaves of the huge zero page */
	uint64_t mm_tables, mm_leaves[3];
	uint32_t *swc;			/* per slot: swap entries found, and
					 * SWC_CACHED if a folio caches it */
	uint64_t swap_entries;		/* all mms, PMD ones counting 512 */
	uint32_t *unmov[64];		/* per node and region: unmovable
					 * frames found (mobility grouping) */
	struct totals *t;
};

#define SWC_CACHED (1u << 31)

__attribute__((format(printf, 2, 3)))
static void report(struct chk *c, const char *fmt, ...)
{
	va_list ap;

	if (c->errors++ >= MAX_REPORTS)
		return;
	va_start(ap, fmt);
	fputs("hm_check: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* The ptdesc of a table, pending table or free slot at @pfn, if it is
 * the one that describes that frame (its block's entry for a frame in a
 * table block, one of its own otherwise); else NULL, reported. */
static struct hm_ptdesc *ptdesc_ok(struct chk *c, uint32_t pfn)
{
	struct hm_page *pg = hm_pfn_page(c->ph, pfn);
	struct hm_ptdesc *d = page_ptdesc(pg);
	struct hm_ptblock *b = c->sys->pc.blk_desc[pfn >> HM_PMD_ORDER];

	if (!d) {
		report(c, "table frame %#x (flags %#x) has no ptdesc", pfn, pg->flags);
		return NULL;
	}
	if (pg->flags & PG_PT_SLOT ? !b || d != &b->desc[pfn & (HM_PTRS - 1)] || d->block != b ||
				     !c->sh[pfn & ~(HM_PTRS - 1)].ptblock
				   : d->block != NULL) {
		report(c, "table frame %#x (flags %#x): ptdesc %p of block %p, not its %s", pfn, pg->flags,
		       (void *)d, (void *)d->block, pg->flags & PG_PT_SLOT ? "block's" : "own");
		return NULL;
	}
	if (d->pfn != pfn || d->pc != &c->sys->pc) {
		report(c, "table frame %#x: its ptdesc points to frame %#x", pfn, d->pfn);
		return NULL;
	}
	return d;
}

static bool table_ok(struct chk *c, uint32_t pfn, unsigned level, uint64_t owner, uint8_t how)
{
	if (pfn >= c->ph->nr_frames) {
		report(c, "table pfn %#x out of range", pfn);
		return false;
	}
	struct hm_page *pg = hm_pfn_page(c->ph, pfn);
	if (!(pg->flags & PG_TABLE)) {
		report(c, "pfn %#x: not a table (flags %#x)", pfn, pg->flags);
		return false;
	}
	struct hm_ptdesc *d = ptdesc_ok(c, pfn);
	if (!d)
		return false;
	if (d->level != level || d->owner != owner) {
		report(c, "pfn %#x: not a level-%u table of mm %llu (level %u owner %llu)",
		       pfn, level, (unsigned long long)owner, d->level, (unsigned long long)d->owner);
		return false;
	}
	if (c->sh[pfn].table) {
		report(c, "table %#x reached twice", pfn);
		return false;
	}
	c->sh[pfn].table = how;
	c->mm_tables++;
	return true;
}

static void check_zero_table(struct chk *c, uint32_t pfn)
{
	const hm_pte_t *e = hm_pt_entries(c->ph, pfn);

	for (unsigned i = 0; i < HM_PTRS; i++) {
		if (pt_get(&e[i])) {
			report(c, "deposited table %#x has entry %u = %#llx", pfn, i, (unsigned long long)pt_get(&e[i]));
			return;
		}
	}
}

/* The deposit list of @holder (a table of @level), and for PUD tables the
 * lists of the PMD tables on it. Returns its length. */
static uint32_t check_deposits(struct chk *c, uint32_t holder, unsigned level, uint64_t owner)
{
	uint32_t n = 0;

	for (uint32_t t = hm_pt_deposits(c->ph, holder); t != HM_PFN_NONE; t = hm_pt_deposit_next(c->ph, t)) {
		if (!table_ok(c, t, level - 1, owner, 2))
			return n;
		check_zero_table(c, t);
		n++;
		c->deposited++;
		if (level == 2) {
			uint32_t sub = check_deposits(c, t, 1, owner);

			if (sub != HM_PTRS)
				report(c, "deposited PMD table %#x holds %u PTE tables, not 512", t, sub);
		}
	}
	if (n != hm_pt_nr_deposited(c->ph, holder))
		report(c, "table %#x: %u deposits on the list, nr_deposited %u",
		       holder, n, hm_pt_nr_deposited(c->ph, holder));
	return n;
}

static void shadow_slots(struct shadow *s, uint32_t id)
{
	for (int i = 0; i < 2; i++)
		if (s->cnt[i] && s->id[i] == id) {
			s->cnt[i]++;
			return;
		}
	for (int i = 0; i < 2; i++)
		if (!s->cnt[i]) {
			s->id[i] = id;
			s->cnt[i] = 1;
			return;
		}
	s->overflow = 1;
}

/* A leaf of the huge zero page (zero.c): a PMD leaf of the whole block or a
 * PTE of one of its pages, never writable, in no map count. */
static void check_zero_leaf(struct chk *c, hm_pte_t e, unsigned level, uint64_t va)
{
	if (level > 1 || pt_write_bit(e))
		report(c, "leaf at %#llx = %#llx maps the huge zero page %s", (unsigned long long)va,
		       (unsigned long long)e, level > 1 ? "at level 2" : "writable");
	if (level <= 1)
		c->zero_leaves[level]++;
}

static void check_leaf(struct chk *c, struct hm_mm *mm, hm_pte_t e, unsigned level, uint64_t va)
{
	struct hm_phys *ph = c->ph;
	uint64_t size = hm_level_size(level);
	uint32_t pfn = pt_pfn(e, level);
	const struct hm_vma *v = hm_vma_lookup(mm, va);

	if (!v || va + size > v->end) {
		report(c, "mm %llu: leaf at %#llx (size %#llx) outside any VMA",
		       (unsigned long long)mm->id, (unsigned long long)va, (unsigned long long)size);
		return;
	}
	if (pt_present(e) != (v->prot != PROT_NONE) || (pt_write_bit(e) && pt_present(e) && !(v->prot & PROT_WRITE)))
		report(c, "mm %llu: leaf at %#llx = %#llx disagrees with VMA prot %d",
		       (unsigned long long)mm->id, (unsigned long long)va, (unsigned long long)e, v->prot);
	if ((pfn & ((size >> HM_PAGE_SHIFT) - 1)) || pfn + (size >> HM_PAGE_SHIFT) > ph->nr_frames) {
		report(c, "leaf at %#llx: frame %#x misaligned or out of range", (unsigned long long)va, pfn);
		return;
	}
	if (hm_is_huge_zero(c->sys, pfn)) {
		check_zero_leaf(c, e, level, va);
		return;
	}
	struct hm_page *pg = hm_pfn_page(ph, pfn);
	uint32_t unmarked = hm_unmarked_head(ph, pfn);	/* see page.h, "Tails" */
	if (unmarked != HM_PFN_NONE ? hm_pfn_page(ph, unmarked)->order < level * HM_PMD_ORDER
				    : !(pg->flags & (PG_HEAD | PG_TAIL)) || pg->order < level * HM_PMD_ORDER) {
		report(c, "leaf at %#llx maps frame %#x that is no folio of order >= %u (flags %#x)",
		       (unsigned long long)va, pfn, level * HM_PMD_ORDER, pg->flags);
		return;
	}
	uint32_t head = hm_folio_head(ph, pfn);
	unsigned order = hm_pfn_page(ph, head)->order;

	if (level == 0)
		c->sh[pfn].pte++;
	else if (level * HM_PMD_ORDER == order)
		c->sh[head].whole++;
	else
		c->sh[pfn].pmd++;
	c->sh[head].total++;
	shadow_slots(&c->sh[head], mm->slot_id);
	/* Per page: who maps it, and whether writably (a writable anonymous
	 * page must be mapped by one mm only). */
	for (uint32_t p = pfn; p < pfn + (size >> HM_PAGE_SHIFT); p++) {
		struct shadow *ps = &c->sh[p];

		if (!ps->first_mm)
			ps->first_mm = mm->slot_id + 1;
		else if (ps->first_mm != mm->slot_id + 1)
			ps->shared = 1;
		ps->writable |= pt_writable(e);
	}
	c->mm_leaves[level]++;
}

static void check_swap_entry(struct chk *c, struct hm_mm *mm, hm_pte_t e, unsigned level, uint64_t va)
{
	uint64_t size = hm_level_size(level), s = pt_swp_offset(e);
	unsigned n = level ? HM_PTRS : 1;
	const struct hm_vma *v = hm_vma_lookup(mm, va);

	if (!v || va < v->start || va + size > v->end)
		report(c, "mm %llu: swap entry at %#llx (size %#llx) outside any VMA",
		       (unsigned long long)mm->id, (unsigned long long)va, (unsigned long long)size);
	if (s + n > c->sys->swap.nr_slots || (level && s % HM_SWP_CLUSTER)) {
		report(c, "mm %llu: swap entry %#llx at %#llx names slots outside the device or a cluster",
		       (unsigned long long)mm->id, (unsigned long long)e, (unsigned long long)va);
		return;
	}
	for (unsigned i = 0; i < n; i++)
		c->swc[s + i]++;
	c->swap_entries += n;
}

static void walk(struct chk *c, struct hm_mm *mm, uint32_t table, unsigned level, uint64_t base)
{
	const hm_pte_t *t = hm_pt_entries(c->ph, table);
	uint64_t size = hm_level_size(level);
	uint32_t huge = 0;

	for (unsigned i = 0; i < HM_PTRS; i++) {
		hm_pte_t e = pt_get(&t[i]);	/* walkers set A/D concurrently */
		uint64_t va = base + i * size;

		if (pt_none(e))
			continue;
		if (level > 0 && pt_present(e) && !pt_leaf(e, level)) {
			if (pt_table_stray_bits(e))
				report(c, "link at level %u, va %#llx has stray bits: %#llx",
				       level, (unsigned long long)va, (unsigned long long)e);
			if (table_ok(c, pt_pfn(e, level), level - 1, mm->id, 1))
				walk(c, mm, pt_pfn(e, level), level - 1, va);
		} else if (pt_mapped(e) && level <= 2) {
			check_leaf(c, mm, e, level, va);
			huge += level > 0;
		} else if (pt_swp_entry(e) && level <= 1) {
			check_swap_entry(c, mm, e, level, va);	/* keeps its deposit */
			huge += level > 0;
		} else if (pt_is_migration(e)) {
			/* Migration holds the mmap_locks it works under until its
			 * entries are gone: hm_check, holding them all, never sees
			 * one. */
			report(c, "migration entry %#llx left at level %u, va %#llx",
			       (unsigned long long)e, level, (unsigned long long)va);
		} else {
			report(c, "unexpected entry %#llx at level %u, va %#llx",
			       (unsigned long long)e, level, (unsigned long long)va);
		}
	}
	if (level == 1 || level == 2) {
		uint32_t dep = check_deposits(c, table, level, mm->id);
		uint32_t want = c->sys->cfg.deposit == HM_DEPOSIT_EAGER ? huge : 0;

		if (dep != want)
			report(c, "level-%u table %#x: %u huge leaves but %u deposits", level, table, huge, dep);
	}
}

static void check_mm(struct chk *c, struct hm_mm *mm)
{
	c->mm_tables = 0;
	for (int l = 0; l < 3; l++)
		c->mm_leaves[l] = 0;
	for (size_t i = 0; i < mm->nr_vmas; i++) {
		const struct hm_vma *v = &mm->vmas[i];

		if (v->start >= v->end || (v->start | v->end) & (HM_PAGE_SIZE - 1) ||
		    v->start < HM_MIN_ADDR || v->end > c->sys->task_size ||
		    (i && mm->vmas[i - 1].end > v->start))
			report(c, "mm %llu: bad VMA %zu [%#llx, %#llx)", (unsigned long long)mm->id,
			       i, (unsigned long long)v->start, (unsigned long long)v->end);
	}
	if (table_ok(c, mm->root, c->sys->top, mm->id, 1))
		walk(c, mm, mm->root, c->sys->top, 0);
	if (c->mm_tables != mm->nr_tables)
		report(c, "mm %llu: %llu tables found, nr_tables says %llu", (unsigned long long)mm->id,
		       (unsigned long long)c->mm_tables, (unsigned long long)mm->nr_tables);
	for (int l = 0; l < 3; l++) {
		if (c->mm_leaves[l] != hm_mm_nr_leaf(mm, l))
			report(c, "mm %llu: %llu level-%d leaves found, counter says %llu",
			       (unsigned long long)mm->id, (unsigned long long)c->mm_leaves[l], l,
			       (unsigned long long)hm_mm_nr_leaf(mm, l));
		c->leaves[l] += c->mm_leaves[l];
	}
	c->tables += c->mm_tables;
}

/* Is some page of the folio at @head mapped by no leaf? From the tables. */
static bool some_page_unmapped(struct chk *c, uint32_t head, unsigned order)
{
	for (uint32_t p = head; p < head + (1u << order); p++) {
		uint32_t chunk = p & ~(HM_PTRS - 1);

		if (!c->sh[p].pte && !c->sh[chunk].pmd && !c->sh[head].whole)
			return true;
	}
	return false;
}

/* A queued folio: partly mapped if so marked, mapped at least otherwise
 * (a candidate for the underused shrinker). */
static void check_queued(struct chk *c, uint32_t head)
{
	struct hm_page *h = hm_pfn_page(c->ph, head);

	if (!c->sh[head].queued)
		report(c, "folio %#x is marked deferred but is not on the queue", head);
	else if (h[1].deferred.partial && !some_page_unmapped(c, head, h->order))
		report(c, "folio %#x is queued as partly mapped, but every page is mapped", head);
}

/* The deferred split queue, walked both ways' links at once: heads of
 * large folios marked PG_DEFERRED, each once, as many as counted. Nobody
 * changes it meanwhile: that takes a folio lock under a table lock (we hold
 * every mmap_lock) or split_lock (ours too). */
static void check_deferred(struct chk *c)
{
	struct hm_system *sys = c->sys;
	uint32_t prev = HM_PFN_NONE;
	uint64_t n = 0;

	for (uint32_t f = sys->deferred_first; f != HM_PFN_NONE; f = hm_pfn_page(c->ph, f + 1)->deferred.next) {
		struct hm_page *h = f + 1 < c->ph->nr_frames ? hm_pfn_page(c->ph, f) : NULL;

		if (!h || !(h->flags & PG_HEAD) || !(h->flags & PG_DEFERRED) || (h->flags & PG_FREEING) ||
		    (h->order != HM_PMD_ORDER && h->order != HM_PUD_ORDER)) {
			report(c, "deferred queue: %#x is no queued large folio (flags %#x)", f, h ? h->flags : 0);
			return;
		}
		if (c->sh[f].queued || ++n > sys->nr_deferred) {
			report(c, "deferred queue: %#x met twice, or more than %llu folios", f,
			       (unsigned long long)sys->nr_deferred);
			return;
		}
		c->sh[f].queued = 1;
		if (h[1].deferred.prev != prev)
			report(c, "deferred queue: %#x links back to %#x, not %#x", f, h[1].deferred.prev, prev);
		prev = f;
	}
	if (prev != sys->deferred_last || n != sys->nr_deferred)
		report(c, "deferred queue: ends at %#x (last %#x), %llu folios (counted %llu)", prev,
		       sys->deferred_last, (unsigned long long)n, (unsigned long long)sys->nr_deferred);
	if (sys->deferred_claim != HM_PFN_NONE)
		report(c, "deferred queue: %#x still claimed with no shrinker running", sys->deferred_claim);
}

static void check_folio(struct chk *c, uint32_t head)
{
	struct hm_phys *ph = c->ph;
	struct hm_page *h = hm_pfn_page(ph, head);
	struct shadow *s = &c->sh[head];
	uint32_t n = 1u << h->order;

	/* Reclaim frees a folio it holds that lost its last mapping. */
	if (!s->total && !(h->flags & PG_ISOLATED))
		report(c, "folio %#x (order %u) is mapped nowhere: leaked", head, h->order);
	if (s->total && !(h->flags & (PG_ISOLATED | PG_LRU)))
		report(c, "folio %#x is mapped but on no LRU list and not isolated", head);
	if (h->flags & PG_SWAPCACHE) {
		if (h->order > HM_PMD_ORDER || (uint64_t)h->swap + n > c->sys->swap.nr_slots)
			report(c, "folio %#x (order %u) caches slots %u.. outside the device", head, h->order, h->swap);
		else
			for (uint32_t i = 0; i < n; i++) {
				c->swc[h->swap + i] |= SWC_CACHED;
				if (hm_swap_cache_lookup(&c->sys->swap, h->swap + i) != head + i)
					report(c, "folio %#x caches slot %u, which names frame %#x", head,
					       h->swap + i, hm_swap_cache_lookup(&c->sys->swap, h->swap + i));
			}
	}
	if ((uint32_t)h->large_mapcount != s->total || (h->order && (uint32_t)h->entire_mapcount != s->whole))
		report(c, "folio %#x: large/entire mapcount %d/%d, tables say %u/%u", head,
		       h->large_mapcount, h->entire_mapcount, s->total, s->whole);
	bool marked = h->order < HM_PMD_ORDER || (h->order == HM_PMD_ORDER && h[1].flags == PG_TAIL);
	for (uint32_t i = 0; i < n; i++) {
		struct hm_page *pg = &h[i], *chunk = &h[i & ~(HM_PTRS - 1)];
		int32_t pte = pg->mapcount + (h->order ? chunk->pte_all : 0);
		int32_t pmd = h->order == HM_PUD_ORDER ? chunk->pmd_mapcount + h->pmd_all : 0;

		/* A huge folio's tails are marked all or none, an order-18
		 * one's never (page.h, "Tails"). */
		if (i && (marked ? pg->flags != PG_TAIL || pg->order != h->order : pg->flags || pg->order)) {
			report(c, "folio %#x: frame %#x is not its tail", head, head + i);
			return;
		}
		if (c->sh[head + i].writable && c->sh[head + i].shared)
			report(c, "frame %#x is mapped writable and by more than one mm", head + i);
		if ((uint32_t)pte != c->sh[head + i].pte || pte < 0 ||
		    (!(i % HM_PTRS) && ((uint32_t)pmd != c->sh[head + i].pmd || pmd < 0)))
			report(c, "frame %#x: %d PTE maps, chunk %d PMD maps; tables say %u/%u", head + i,
			       pte, pmd, c->sh[head + i].pte, c->sh[head + i].pmd);
	}
	if (h->flags & PG_DEFERRED)
		check_queued(c, head);
	if (s->total && hm_rmap_walk(c->sys, head, NULL, NULL) != s->total)
		report(c, "folio %#x: the reverse map finds %llu of its %u mappings", head,
		       (unsigned long long)hm_rmap_walk(c->sys, head, NULL, NULL), s->total);
	if (h->flags & PG_MAYBE_SHARED)
		return;
	if (s->overflow) {
		report(c, "folio %#x: mapped by more than two mms but not marked maybe-shared", head);
		return;
	}
	for (int i = 0; i < 2; i++) {
		bool found = !s->cnt[i];

		for (int j = 0; j < 2 && !found; j++)
			found = h->mm_count[j] == (int32_t)s->cnt[i] && h->mm_id[j] == s->id[i];
		if (!found || (int32_t)(s->cnt[0] + s->cnt[1]) != h->mm_count[0] + h->mm_count[1])
			report(c, "folio %#x: mm slots (%u:%d, %u:%d) do not match the tables (%u:%u, %u:%u)",
			       head, h->mm_id[0], h->mm_count[0], h->mm_id[1], h->mm_count[1],
			       s->id[0], s->cnt[0], s->id[1], s->cnt[1]);
	}
}

struct totals {
	uint64_t free, folio, tables, pending, slots, freeing, zero;
	uint64_t cached;	/* frames marked PG_PCP */
	uint64_t in_pcp;	/* frames listed in per-CPU caches */
	uint64_t zeroed;	/* frames marked PG_ZEROED */
	uint64_t in_zpool;	/* frames listed in idle-zeroing pools */
	uint64_t node_free[64];	/* free frames per node, caches included */
};

static int count_free(void *arg, uint32_t pfn, unsigned order)
{
	struct chk *c = arg;

	c->t->free += 1ull << order;
	c->t->node_free[hm_pfn_node(c->ph, pfn)] += 1ull << order;
	return 0;
}

/* At DEBUG >= 3 (a page to compare per frame): is the free frame @pfn,
 * which a fault will take as zeroed, all zero? */
static void check_frame_zero(struct chk *c, uint32_t pfn, const char *where, unsigned node)
{
#if HM_DEBUG >= 3
	const uint64_t *w = hm_pfn_ptr(c->ph, pfn);

	for (size_t i = 0; i < HM_PAGE_SIZE / 8; i++) {
		if (w[i]) {
			report(c, "node %u: %s frame %#x is held as zeroed, but byte %#zx is not zero", node, where,
			       pfn, i * 8);
			break;
		}
	}
#else
	(void)c, (void)pfn, (void)where, (void)node;
#endif
}

/* A frame in the cache of (@cpu, @node): free, marked so, of that node,
 * in no other cache, and zero if it is one of the zeroed ones. */
static int count_cached(void *arg, uint32_t pfn, unsigned cpu, unsigned node, bool zeroed)
{
	struct chk *c = arg;

	if (pfn >= c->ph->nr_frames) {
		report(c, "cpu %u node %u: cached frame %#x is out of range", cpu, node, pfn);
		return 0;
	}
	if (hm_pfn_page(c->ph, pfn)->flags != PG_PCP || hm_pfn_page(c->ph, pfn)->buddy ||
	    hm_pfn_node(c->ph, pfn) != node || c->sh[pfn].cached)
		report(c, "cpu %u node %u: cached frame %#x (flags %#x) is not free, of another node, or cached twice",
		       cpu, node, pfn, hm_pfn_page(c->ph, pfn)->flags);
	if (zeroed)
		check_frame_zero(c, pfn, "cached", node);
	c->sh[pfn].cached = 1;
	c->t->in_pcp++;
	c->t->node_free[node]++;
	return 0;
}

/* A frame in @node's idle-zeroing pool: free, marked so, of that node, in
 * no cache or other pool, and (DEBUG >= 3, a page to compare per frame)
 * all zero, as a fault that takes it assumes. */
static int count_zeroed(void *arg, uint32_t pfn, unsigned node)
{
	struct chk *c = arg;
	struct hm_page *pg;

	if (pfn >= c->ph->nr_frames) {
		report(c, "node %u: pooled frame %#x is out of range", node, pfn);
		return 0;
	}
	pg = hm_pfn_page(c->ph, pfn);
	if (pg->flags != PG_ZEROED || pg->buddy || hm_pfn_node(c->ph, pfn) != node || c->sh[pfn].cached)
		report(c, "node %u: pooled frame %#x (flags %#x) is not free, of another node, or listed twice",
		       node, pfn, pg->flags);
	check_frame_zero(c, pfn, "pooled", node);
	c->sh[pfn].cached = 1;
	c->t->in_zpool++;
	c->t->node_free[node]++;
	return 0;
}

/* The huge zero page: the one the system published, laid out like an
 * order-9 folio whose counts nothing ever touches. */
static void check_zero_block(struct chk *c, uint32_t head)
{
	struct hm_page *h = hm_pfn_page(c->ph, head);
	uint32_t z = hm_load(&c->sys->huge_zero_pfn);

	if (head != z || h->order != HM_PMD_ORDER) {
		report(c, "frame %#x (order %u) is marked the huge zero page, which is %#x", head, h->order, z);
		return;
	}
	c->zero_found = true;
	for (uint32_t i = 0; i < HM_PTRS; i++) {
		struct hm_page *pg = &h[i];

		if ((i && (pg->flags != PG_TAIL || pg->order != h->order)) || pg->mapcount ||
		    pg->pmd_mapcount || pg->entire_mapcount || pg->large_mapcount || pg->pte_all ||
		    pg->mm_count[0] || pg->mm_count[1]) {
			report(c, "huge zero page %#x: frame %#x is not its tail, or has map counts", head,
			       head + i);
			return;
		}
	}
	/* A write through a zero leaf would show in every read of untouched
	 * memory from then on: 2 MiB to compare, a small part of a check. */
	const uint64_t *w = hm_pfn_ptr(c->ph, head);
	for (size_t i = 0; i < (HM_PMD_SIZE >> 3); i++) {
		if (w[i]) {
			report(c, "huge zero page %#x: byte %#zx is not zero", head, i * 8);
			break;
		}
	}
}

/* Frames of page tables (and of the page-table cache's blocks) and of the
 * huge zero page: what the buddy allocator counts as unmovable in their
 * regions. */
static void count_unmovable(struct chk *c, uint32_t pfn, uint32_t nr)
{
	unsigned node = hm_pfn_node(c->ph, pfn);

	if (c->unmov[node])
		c->unmov[node][hm_region_of(&c->ph->nodes[node], pfn)] += nr;
}

static void check_unmovable(struct chk *c)
{
	for (unsigned i = 0; i < c->ph->nr_nodes; i++) {
		struct hm_node *n = &c->ph->nodes[i];

		for (uint32_t r = 0; c->unmov[i] && r < n->nr_regions; r++)
			if (c->unmov[i][r] != n->unmovable[r])
				report(c, "node %u region %u: %u unmovable frames counted, %u found", i, r,
				       n->unmovable[r], c->unmov[i][r]);
	}
}

static void scan_frames(struct chk *c, struct totals *t)
{
	struct hm_phys *ph = c->ph;
	uint64_t buddy = 0;

	for (uint32_t pfn = 0; pfn < ph->nr_frames;) {
		struct hm_page *pg = hm_pfn_page(ph, pfn);

		/* A table block holds tables (live, deposited, pending, free)
		 * and nothing else. */
		if ((pg->flags & PG_PT_SLOT) && !(pg->flags & (PG_TABLE | PG_PT_PENDING | PG_PT_FREE)))
			report(c, "frame %#x of a page-table block is no table (flags %#x)", pfn, pg->flags);
		if (pg->buddy) {
			buddy += 1ull << (pg->buddy - 1);
			pfn += 1u << (pg->buddy - 1);
		} else if (pg->flags == PG_PCP) {
			/* Free, in a per-CPU cache: check_pcp found it there. */
			if (!c->sh[pfn].cached)
				report(c, "frame %#x is marked cached but is in no per-CPU cache", pfn);
			t->cached++;
			pfn++;
		} else if (pg->flags == PG_ZEROED) {
			/* Free, in an idle-zeroing pool: count_zeroed found it. */
			if (!c->sh[pfn].cached)
				report(c, "frame %#x is marked zeroed but is in no pool", pfn);
			t->zeroed++;
			pfn++;
		} else if ((pg->flags & PG_HEAD) && (pg->flags & PG_HUGE_ZERO)) {
			check_zero_block(c, pfn);
			count_unmovable(c, pfn, 1u << pg->order);
			t->zero += 1ull << pg->order;
			pfn += 1u << pg->order;
		} else if ((pg->flags & PG_HEAD) && (pg->flags & PG_FREEING)) {
			t->freeing += 1ull << pg->order;	/* after a grace period */
			pfn += 1u << pg->order;
		} else if (pg->flags & PG_HEAD) {
			check_folio(c, pfn);
			t->folio += 1ull << pg->order;
			pfn += 1u << pg->order;
		} else {
			if (pg->flags & (PG_TABLE | PG_PT_PENDING | PG_PT_FREE | PG_PT_SLOT))
				count_unmovable(c, pfn, 1);
			if (pg->flags & (PG_TABLE | PG_PT_PENDING | PG_PT_FREE))
				ptdesc_ok(c, pfn);
			if (pg->flags & PG_TABLE) {
				t->tables++;
				if (!c->sh[pfn].table)
					report(c, "table %#x (level %u, owner %llu) is reachable from no mm", pfn,
					       page_ptdesc(pg) ? page_ptdesc(pg)->level : 0,
					       (unsigned long long)(page_ptdesc(pg) ? page_ptdesc(pg)->owner : 0));
			} else if (pg->flags & PG_PT_PENDING) {
				t->pending++;
			} else if (pg->flags & PG_PT_FREE) {
				t->slots++;
#if HM_DEBUG >= 3
				check_zero_table(c, pfn);
#endif
			} else {
				report(c, "frame %#x (flags %#x) belongs to nobody", pfn, pg->flags);
			}
			pfn++;
		}
	}
	if (buddy != t->free)
		report(c, "free lists hold %llu frames, descriptors mark %llu",
		       (unsigned long long)t->free, (unsigned long long)buddy);
	if (t->cached != t->in_pcp)
		report(c, "per-CPU caches hold %llu frames, descriptors mark %llu",
		       (unsigned long long)t->in_pcp, (unsigned long long)t->cached);
	if (t->zeroed != t->in_zpool)
		report(c, "idle-zeroing pools hold %llu frames, descriptors mark %llu",
		       (unsigned long long)t->in_zpool, (unsigned long long)t->zeroed);
	if (hm_prezero_count(c->ph, -1) != t->in_zpool)
		report(c, "idle-zeroing pools hold %llu frames, their counts say %llu",
		       (unsigned long long)t->in_zpool, (unsigned long long)hm_prezero_count(c->ph, -1));
	t->free += t->cached + t->zeroed;
}

/* A table block holds tables (deposits and pending ones included) and free
 * slots, nothing else (never data: it may be write-protected whole), and
 * its count of slots in use is right. */
static void check_table_block(struct chk *c, struct hm_ptblock *b, uint64_t *empty)
{
	struct hm_ptcache *pc = &c->sys->pc;
	uint32_t base = b->base, blk = base >> HM_PMD_ORDER, used = 0;

	if (base >= c->ph->nr_frames || base % HM_PTRS || pc->blk_desc[blk] != b) {
		report(c, "table block list: ptdescs %p for block %#x, which has %p", (void *)b, base,
		       base < c->ph->nr_frames ? (void *)pc->blk_desc[blk] : NULL);
		return;
	}
	c->sh[base].ptblock = 1;
	for (uint32_t i = 0; i < HM_PTRS; i++) {
		const struct hm_page *pg = hm_pfn_page(c->ph, base + i);
		uint32_t kind = pg->flags & (PG_TABLE | PG_PT_PENDING | PG_PT_FREE | PG_HEAD);

		if (!(pg->flags & PG_PT_SLOT) || pg->buddy ||
		    (kind != PG_TABLE && kind != PG_PT_PENDING && kind != PG_PT_FREE)) {
			report(c, "table block %#x: frame %#x (flags %#x, buddy %u) is no table or free slot",
			       base, base + i, pg->flags, pg->buddy);
			return;
		}
		if (page_ptdesc(pg) != &b->desc[i]) {
			report(c, "table block %#x: frame %#x points to ptdesc %p, not %p", base, base + i,
			       (void *)page_ptdesc(pg), (void *)&b->desc[i]);
			return;
		}
		used += kind != PG_PT_FREE;
	}
	if (used != pc->blk_used[blk])
		report(c, "table block %#x: %u slots in use, blk_used %u", base, used, pc->blk_used[blk]);
	*empty += used == 0;
}

static void check_table_blocks(struct chk *c)
{
	struct hm_ptcache *pc = &c->sys->pc;
	uint64_t n = 0, empty = 0;

	/* The list, not every block's pointer: checking a huge, mostly empty
	 * system costs what is in use. A block off the list is caught by
	 * scan_frames at its first slot (ptdesc_ok: no ptblock mark). */
	for (struct hm_ptblock *b = pc->blocks; b && n <= pc->nr_blocks; b = b->next) {
		n++;
		check_table_block(c, b, &empty);
	}
	if (n != pc->nr_blocks || empty != pc->nr_empty_blocks)
		report(c, "table blocks: %llu on the list (%llu empty), nr_blocks %llu (%llu empty)",
		       (unsigned long long)n, (unsigned long long)empty,
		       (unsigned long long)pc->nr_blocks, (unsigned long long)pc->nr_empty_blocks);
}

static void check_balances(struct chk *c, const struct totals *t)
{
	struct hm_system *sys = c->sys;
	struct hm_ptcache *pc = &sys->pc;
	uint64_t sum = t->free + t->folio + t->tables + t->pending + t->slots + t->freeing + t->zero;

	if (sum != sys->phys.nr_frames)
		report(c, "frames: %llu free + %llu folio + %llu table + %llu pending + %llu cached + %llu freeing + %llu zero = %llu, not %u",
		       (unsigned long long)t->free, (unsigned long long)t->folio,
		       (unsigned long long)t->tables, (unsigned long long)t->pending,
		       (unsigned long long)t->slots, (unsigned long long)t->freeing, (unsigned long long)t->zero,
		       (unsigned long long)sum, sys->phys.nr_frames);
	uint32_t z = hm_load(&sys->huge_zero_pfn);
	if ((z != HM_PFN_NONE) != c->zero_found)
		report(c, "the huge zero page %#x was %sfound", z, c->zero_found ? "" : "not ");
	if (pc->nr_pending_frames != t->freeing)
		report(c, "frames waiting for a grace period: %llu counted, %llu marked",
		       (unsigned long long)pc->nr_pending_frames, (unsigned long long)t->freeing);
	if (t->free != hm_phys_nr_free(&sys->phys) || t->free - t->cached - t->zeroed != sys->phys.nr_free)
		report(c, "nr_free %llu (%llu on free lists), free lists %llu + per-CPU caches %llu + pools %llu",
		       (unsigned long long)hm_phys_nr_free(&sys->phys), (unsigned long long)sys->phys.nr_free,
		       (unsigned long long)(t->free - t->cached - t->zeroed), (unsigned long long)t->cached,
		       (unsigned long long)t->zeroed);
	for (unsigned i = 0; i < sys->phys.nr_nodes; i++)
		if (hm_node_nr_free(&sys->phys, i) != t->node_free[i])
			report(c, "node %u: nr_free %llu, found %llu free", i,
			       (unsigned long long)hm_node_nr_free(&sys->phys, i),
			       (unsigned long long)t->node_free[i]);
	if (t->tables != c->tables || pc->nr_tables != c->tables)
		report(c, "tables: %llu marked, %llu reachable, nr_tables %llu",
		       (unsigned long long)t->tables, (unsigned long long)c->tables,
		       (unsigned long long)pc->nr_tables);
	if (pc->nr_deposited != c->deposited)
		report(c, "nr_deposited %llu, found %llu", (unsigned long long)pc->nr_deposited,
		       (unsigned long long)c->deposited);
	if (pc->nr_pending != t->pending || pc->nr_free_slots != t->slots)
		report(c, "cache: pending %llu/%llu, free slots %llu/%llu",
		       (unsigned long long)pc->nr_pending, (unsigned long long)t->pending,
		       (unsigned long long)pc->nr_free_slots, (unsigned long long)t->slots);
	if (hm_sys_nr_anon_frames(sys) != t->folio)
		report(c, "nr_anon_pages %llu, folios hold %llu", (unsigned long long)hm_sys_nr_anon_frames(sys),
		       (unsigned long long)t->folio);
	for (int l = 0; l < 3; l++)
		if (hm_sys_nr_leaf(sys, l) != c->leaves[l])
			report(c, "system level-%d leaves %llu, found %llu", l,
			       (unsigned long long)hm_sys_nr_leaf(sys, l), (unsigned long long)c->leaves[l]);
	for (int l = 0; l < 2; l++)
		if (sys->nr_zero_leaf[l] != c->zero_leaves[l])
			report(c, "huge zero page: %llu level-%d leaves counted, found %llu",
			       (unsigned long long)sys->nr_zero_leaf[l], l,
			       (unsigned long long)c->zero_leaves[l]);
}

struct swap_scan {
	const uint32_t *swc;
	uint64_t used, counted, bad, bad_slot;
	uint32_t bad_word, bad_want;
};

static int swap_slot(void *arg, uint64_t s, uint32_t word)
{
	struct swap_scan *w = arg;
	uint32_t want = w->swc[s] & ~SWC_CACHED;
	bool cached = w->swc[s] & SWC_CACHED;

	w->used++;
	w->counted += want;
	/* Every mm is locked: no swap-out or swap-in is under way. */
	if ((word & HM_SWP_COUNT_MASK) != want || !!(word & HM_SWP_CACHE) != cached || (word & HM_SWP_WRITEBACK)) {
		if (!w->bad++) {
			w->bad_slot = s;
			w->bad_word = word;
			w->bad_want = w->swc[s];
		}
	}
	return 0;
}

/* Slots against the entries and swap-cache folios found: none leaked,
 * none counted wrong, none named while free. */
static void check_swap(struct chk *c)
{
	struct hm_swap *sw = &c->sys->swap;
	struct swap_scan w = { .swc = c->swc };

	if (!hm_swap_enabled(sw))
		return;
	hm_swap_for_each_used(sw, swap_slot, &w);
	if (w.bad)
		report(c, "%llu swap slots disagree with the tables, first %llu: word %#x, tables say %u%s",
		       (unsigned long long)w.bad, (unsigned long long)w.bad_slot, w.bad_word,
		       w.bad_want & ~SWC_CACHED, w.bad_want & SWC_CACHED ? " + cached" : "");
	if (w.counted != c->swap_entries)
		report(c, "swap entries name %llu slot uses, %llu of them on slots in use",
		       (unsigned long long)c->swap_entries, (unsigned long long)w.counted);
	if (sw->nr_free != sw->nr_slots - w.used)
		report(c, "swap: nr_free %llu, %llu of %llu slots in use", (unsigned long long)sw->nr_free,
		       (unsigned long long)w.used, (unsigned long long)sw->nr_slots);
	if (c->sys->nr_swap_entries != c->swap_entries)
		report(c, "nr_swap_entries %llu, found %llu", (unsigned long long)c->sys->nr_swap_entries,
		       (unsigned long long)c->swap_entries);
}

/* The LRU lists: linked both ways, flags agreeing, lengths as counted. */
static void check_lru(struct chk *c)
{
	struct hm_system *sys = c->sys;
	uint64_t n[2] = { 0, 0 }, counted[2];
	uint32_t bad = HM_PFN_NONE;

	hm_spin_lock(&sys->lru_lock);
	/* Under the lock, as the walk: reclaim and compaction change the
	 * lists without any mmap_lock. */
	counted[0] = hm_load_relaxed(&sys->nr_lru[0]);
	counted[1] = hm_load_relaxed(&sys->nr_lru[1]);
	for (unsigned i = 0; i < 2; i++) {
		uint32_t prev = HM_PFN_NONE;

		for (uint32_t p = sys->lru_first[i]; p != HM_PFN_NONE && bad == HM_PFN_NONE; p = sys->lru[p].next) {
			struct hm_page *pg = p < c->ph->nr_frames ? hm_pfn_page(c->ph, p) : NULL;

			if (!pg || !(pg->flags & PG_HEAD) || !(pg->flags & PG_LRU) ||
			    !!(pg->flags & PG_ACTIVE) != i || sys->lru[p].prev != prev ||
			    ++n[i] > c->ph->nr_frames)
				bad = p;
			prev = p;
		}
		if (bad == HM_PFN_NONE && sys->lru_last[i] != prev)
			bad = prev;
	}
	hm_spin_unlock(&sys->lru_lock);
	if (bad != HM_PFN_NONE)
		report(c, "LRU lists broken at frame %#x", bad);
	else if (n[0] != counted[0] || n[1] != counted[1])
		report(c, "LRU lists hold %llu/%llu folios, counted %llu/%llu", (unsigned long long)n[0],
		       (unsigned long long)n[1], (unsigned long long)counted[0], (unsigned long long)counted[1]);
}

int hm_check(struct hm_system *sys)
{
	if (!sys)
		return -EINVAL;
	struct chk c = { .sys = sys, .ph = &sys->phys };
	struct totals t = { 0 };

	size_t sh_len = (size_t)sys->phys.nr_frames * sizeof(*c.sh);
	c.sh = mmap(NULL, sh_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c.sh == MAP_FAILED)
		return -ENOMEM;
	size_t swc_len = HM_MAX(sys->swap.nr_slots, 1) * sizeof(*c.swc);
	c.swc = mmap(NULL, swc_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c.swc == MAP_FAILED) {
		munmap(c.sh, sh_len);
		return -ENOMEM;
	}
	hm_mutex_lock(&sys->mms_lock);
	for (struct hm_mm *mm = sys->mms; mm; mm = mm->next)
		hm_down_write(&mm->mmap_lock);
	/* First mappings are batched only under a mmap_lock: with all of them
	 * held, every mapped folio is on a list after this. */
	hm_lru_drain_all(sys);
	hm_mutex_lock(&sys->split_lock);
	hm_mutex_lock(&sys->pc.lock);
	hm_phys_lock_all(&sys->phys);

	check_table_blocks(&c);	/* first: ptdesc_ok needs the blocks marked */
	for (struct hm_mm *mm = sys->mms; mm; mm = mm->next)
		check_mm(&c, mm);
	check_deferred(&c);
	c.t = &t;
	if (hm_phys_for_each_free(&sys->phys, count_free, &c))
		report(&c, "a free list is corrupt (loop or wrong length)");
	hm_pcp_for_each(&sys->phys, count_cached, &c);
	hm_prezero_for_each(&sys->phys, count_zeroed, &c);
	for (unsigned i = 0; i < sys->phys.nr_nodes; i++)
		c.unmov[i] = calloc(sys->phys.nodes[i].nr_regions, sizeof(uint32_t));
	scan_frames(&c, &t);
	check_balances(&c, &t);
	check_unmovable(&c);
	for (unsigned i = 0; i < sys->phys.nr_nodes; i++)
		free(c.unmov[i]);
	check_swap(&c);
	check_lru(&c);

	hm_phys_unlock_all(&sys->phys);
	hm_mutex_unlock(&sys->pc.lock);
	hm_mutex_unlock(&sys->split_lock);
	for (struct hm_mm *mm = sys->mms; mm; mm = mm->next)
		hm_up_write(&mm->mmap_lock);
	hm_mutex_unlock(&sys->mms_lock);
	munmap(c.sh, sh_len);
	munmap(c.swc, swc_len);
	if (c.errors > MAX_REPORTS)
		fprintf(stderr, "hm_check: ... %d problems in all\n", c.errors);
	return c.errors ? -EUCLEAN : 0;
}

int hm_check_enabled(struct hm_system *sys, int ret)
{
	if (HM_DEBUG >= 3 || (sys->cfg.flags & HM_CHECK)) {
		int r = hm_check(sys);

		if (r && !ret)
			return r;
	}
	return ret;
}
