/* SPDX-License-Identifier: MIT */
/*
 * Removing mappings (zap) and the page tables they leave empty.
 */
#include "folio.h"
#include "reclaim.h"
#include "split.h"
#include "stat.h"
#include "table.h"
#include "types.h"
#include "unmap.h"
#include "vma.h"
#include "zero.h"

/* Entries a zap of one leaf of @level gathers: its deposit (a PTE table, or
 * a PMD table and its 512) and its folio. */
static unsigned zap_room(unsigned level)
{
	return level == 2 ? 2 + HM_PTRS : level + 1;
}

struct zap {
	struct hm_gather *g;
	uint64_t end;
	bool run_left;		/* the run of PTEs of one folio taken so far left
				 * a page of it mapped by nothing */
};

/* Does the run of PTEs mapping consecutive pages of one folio go on past
 * @va (the next one is ours to zap too)? Then whether the folio is left
 * partly mapped is decided after it. A hint: a folio split may end a run
 * early; it cannot make one span two folios that count (a run stays in
 * one PTE table, one 2 MiB chunk). */
static bool run_goes_on(struct hm_phys *ph, const hm_pte_t *slot, uint64_t va, uint64_t end,
			uint32_t pfn, uint32_t head)
{
	if (va + HM_PAGE_SIZE >= end || hm_level_index(va + HM_PAGE_SIZE, 0) == 0)
		return false;
	hm_pte_t next = pt_get(slot + 1);

	return pt_mapped(next) && pt_pfn(next, 0) == pfn + 1 && hm_folio_head(ph, pfn + 1) == head;
}

static bool zap_leaf(struct hm_mm *mm, hm_pte_t *slot, unsigned level, uint64_t va, void *arg)
{
	struct zap *z = arg;
	struct hm_gather *g = z->g;
	struct hm_phys *ph = mm_phys(mm);
	struct hm_ptcache *pc = &mm->sys->pc;
	uint32_t holder = hm_slot_table(ph, slot), t;

	if (!hm_gather_room(g, zap_room(level)))
		return false;
	hm_pte_t old = __pt_xchg(slot, 0);	/* in the walk's write window */

	if (pt_swp_entry(old)) {
		/* Not present: no TLB entry to shoot down; a PMD swap entry
		 * kept its deposit. */
		hm_swap_entry_free(mm->sys, old, level);
		if (level == 1 && (t = hm_pt_withdraw(pc, holder)) != HM_PFN_NONE)
			hm_mm_pt_unlink(mm, g, t);
		return true;
	}
	uint32_t pfn = pt_pfn(old, level), head;

	hm_gather_tlb(g);

	if (level >= 1 && (t = hm_pt_withdraw(pc, holder)) != HM_PFN_NONE) {
		uint32_t pte;

		while (level == 2 && (pte = hm_pt_withdraw(pc, t)) != HM_PFN_NONE)
			hm_mm_pt_unlink(mm, g, pte);
		hm_mm_pt_unlink(mm, g, t);
	}
	/* The huge zero page outlives every mapping: nothing to free or pin. */
	if (hm_is_huge_zero(mm->sys, pfn)) {
		hm_huge_zero_unmap(mm, level);
		return true;
	}
	head = hm_folio_head(ph, pfn);
	/* A folio mapped elsewhere stays pinned until our TLB shootdown is
	 * complete: until then a thread of ours may still reach it. */
	switch (hm_folio_remove_map(mm, pfn, level, true, &head, level ? NULL : &z->run_left)) {
	case HM_FOLIO_UNMAPPED: hm_gather_folio(g, head); break;
	case HM_FOLIO_PINNED:	hm_gather_pin(g, head); break;
	case HM_FOLIO_MAPPED:	break;
	}
	if (z->run_left && !run_goes_on(ph, slot, va, z->end, pfn, head)) {
		hm_folio_defer_partial(mm->sys, pfn);
		z->run_left = false;
	}
	return true;
}

void hm_zap_range(struct hm_mm *mm, struct hm_gather *g, uint64_t start, uint64_t end)
{
	hm_assert_write_locked(&mm->mmap_lock);
	struct zap z = { .g = g, .end = end };

	while ((start = hm_walk_leaves(mm, start, end, zap_leaf, &z)) < end)
		hm_gather_next(g);
	hm_assert(!z.run_left);
}

/* Unlink and free everything below @table (level @level), which nobody can
 * reach any more (no VMA covers any of it), then @table itself. Returns
 * false when the gather ran out of room: what was freed so far is unlinked,
 * the rest stays linked for the next pass. */
static bool free_subtree(struct hm_mm *mm, struct hm_gather *g, uint32_t table, unsigned level)
{
	hm_pte_t *t = hm_pt_entries(mm_phys(mm), table);

	for (unsigned i = 0; level > 0 && i < HM_PTRS; i++) {
		hm_pte_t e = pt_get(&t[i]);

		if (pt_none(e))
			continue;
		hm_assert(pt_present(e) && !pt_leaf(e, level));
		if (!free_subtree(mm, g, pt_pfn(e, level), level - 1))
			return false;
		pt_set(&t[i], 0);
	}
#if HM_DEBUG >= 2
	for (unsigned i = 0; level == 0 && i < HM_PTRS; i++)
		hm_assert_int(pt_none(t[i]));
#endif
	if (!hm_gather_room(g, 1))
		return false;
	hm_mm_pt_unlink(mm, g, table);
	return true;
}

/*
 * Empty tables given back (the kernel's PT_RECLAIM): a PTE or PMD table
 * whose 512 entries are all none, left so by a zap while its range stays
 * mapped (MADV_DONTNEED, the edges of a munmap, dropped zero pages), is
 * unlinked and freed through the gather. An entry in swap, a migration
 * entry or a split under way keeps its table; so do deposits, which only
 * a huge leaf (or a PMD swap entry) holds.
 *
 * Who may still reach an unlinked table:
 *  - lock-free walkers (the TLB's refill, hm_migration_wait) inside an
 *    RCU read section: the table is freed a grace period later, and they
 *    find only none entries there, so they fault and walk again;
 *  - anything that walks to a table and then takes its ptl (faults,
 *    copy-on-write, swap-in and -out, migration, collapse's first pass,
 *    pageout, hm_query): all of it holds mmap_lock, for reading at least,
 *    and tables are given back only under mmap_lock for writing, so none
 *    of it runs meanwhile and none re-validates the parent entry after
 *    taking the ptl. A reclaim under mmap_lock for reading would need
 *    that (the kernel's pte_offset_map_lock).
 * The ptls are still taken, parent before child (the lock order), so that
 * the emptiness seen and the entry cleared are one step for any holder.
 */
static inline bool entry_used(const hm_pte_t *t, unsigned i)
{
	return !pt_none(pt_get(&t[i]));
}

/* Entries [lo, hi] of @table are the range's; look at them first (above a
 * table that was kept they are in use), then outwards from them, where the
 * rest of a mapping usually lies: a table kept because of a neighbour of
 * the range is found so in a few loads, not after scanning from entry 0
 * (the one-page munmap cost three times as much with that). */
static bool table_empty(struct hm_phys *ph, uint32_t table, unsigned lo, unsigned hi)
{
	const hm_pte_t *t = hm_pt_entries(ph, table);

	if (hm_pt_nr_deposited(ph, table))
		return false;
	for (unsigned i = lo; i <= hi; i++)
		if (entry_used(t, i))
			return false;
	for (unsigned d = 1; d <= lo || hi + d < HM_PTRS; d++)
		if ((d <= lo && entry_used(t, lo - d)) || (hi + d < HM_PTRS && entry_used(t, hi + d)))
			return false;
	return true;
}

/* Unlink the table that @slot, an entry of a table of @level (1 or 2) that
 * maps [va, va + its size), links to, if it is empty; true if it was.
 * Context: mmap_lock for writing, and the lock of @slot's table. */
static bool reclaim_one_locked(struct hm_mm *mm, struct hm_gather *g, hm_pte_t *slot, unsigned level,
			       uint64_t va, uint64_t start, uint64_t end)
{
	hm_assert_write_locked(&mm->mmap_lock);
	struct hm_phys *ph = mm_phys(mm);
	uint32_t table = pt_pfn(pt_get(slot), level);
	unsigned lo = hm_level_index(HM_MAX(va, start), level - 1);
	unsigned hi = hm_level_index(HM_MIN(va + hm_level_size(level), end) - 1, level - 1);
	const hm_pte_t *t = hm_pt_entries(ph, table);
	bool empty;

	/* The usual case, a neighbour of the range in use, without the lock
	 * or the scan: under mmap_lock for writing nobody else clears an
	 * entry (see above). */
	if ((lo > 0 && entry_used(t, lo - 1)) || (hi + 1 < HM_PTRS && entry_used(t, hi + 1)))
		return false;
	hm_spin_t *ptl = hm_mm_table_lock(mm, table);

	hm_spin_lock(ptl);
	empty = table_empty(ph, table, lo, hi);
	if (empty)
		pt_set(slot, 0);
	hm_spin_unlock(ptl);
	if (!empty)
		return false;
	hm_mm_pt_unlink(mm, g, table);
	hm_count(mm->sys, HM_STAT_pgtable_reclaimed);
	return true;
}

struct span {
	uint64_t start, end, floor, ceiling;
	bool kept;		/* a PTE table below the current PMD entry
				 * holds more than the range: so does the
				 * PMD table, no need to look */
};

static bool free_tables(struct hm_mm *mm, struct hm_gather *g, uint32_t table,
			unsigned level, uint64_t base, struct span *s)
{
	hm_pte_t *t = hm_pt_entries(mm_phys(mm), table);
	uint64_t size = hm_level_size(level);

	hm_for_each_entry(i, va, level, base, s->start, s->end) {
		hm_pte_t e = pt_get(&t[i]);

		if (!pt_present(e) || pt_leaf(e, level))
			continue;
		if (va >= s->floor && va + size <= s->ceiling) {
			hm_spin_t *lock = hm_mm_table_lock(mm, table);
			bool take = level < 2;

			if (!free_subtree(mm, g, pt_pfn(e, level), level - 1))
				return false;
			if (take)
				hm_spin_lock(lock);
			pt_set(&t[i], 0);
			if (take)
				hm_spin_unlock(lock);
		} else {
			/* A table that serves the range and more: go down, then
			 * give it back if the range was all it held (the same as
			 * hm_reclaim_tables, without a walk of its own). */
			s->kept = false;
			if (level > 1 && !free_tables(mm, g, pt_pfn(e, level), level - 1, va, s))
				return false;
			if (level > 2 || s->kept)
				continue;
			if (!hm_gather_room(g, 1))
				return false;
			hm_spin_t *lock = hm_mm_table_lock(mm, table);
			bool take = level < 2;

			if (take)
				hm_spin_lock(lock);
			s->kept |= !reclaim_one_locked(mm, g, &t[i], level, va, s->start, s->end);
			if (take)
				hm_spin_unlock(lock);
		}
	}
	return true;
}

/* Free the tables that served only [start, end), which no VMA covers now:
 * a table is freed when its whole span lies between the VMAs around the
 * range (the kernel's floor and ceiling); and give back those that serve
 * more but hold nothing now (hm_reclaim_tables, in the same walk). */
void hm_free_pgtables(struct hm_mm *mm, struct hm_gather *g, uint64_t start, uint64_t end)
{
	hm_assert_write_locked(&mm->mmap_lock);
	size_t i = hm_vma_index(mm, start);
	struct span s = {
		.start = start, .end = end,
		.floor = i > 0 ? mm->vmas[i - 1].end : 0,
		.ceiling = i < mm->nr_vmas ? mm->vmas[i].start : hm_level_size(mm->sys->top + 1),
	};
	bool done;

	hm_assert(s.floor <= start && s.ceiling >= end);
	do {
		hm_spin_lock(&mm->page_table_lock);
		done = free_tables(mm, g, mm->root, mm->sys->top, 0, &s);
		hm_spin_unlock(&mm->page_table_lock);
		if (!done)
			hm_gather_next(g);
	} while (!done);
}

struct reclaim {
	struct hm_mm *mm;
	struct hm_gather *g;
	uint64_t start, end;
	uint64_t next;		/* where to go on when the gather is full */
};

/* Give back the empty tables below @table (of level @level >= 1) that
 * serve [start, end), lowest first, so that a PMD table emptied of its
 * PTE tables goes too. False when the gather ran out of room (at r->next).
 * Context: page_table_lock, and the ptl of @table if it has one. */
static bool reclaim_below(struct reclaim *r, uint32_t table, unsigned level, uint64_t base)
{
	struct hm_mm *mm = r->mm;
	hm_pte_t *t = hm_pt_entries(mm_phys(mm), table);

	hm_for_each_entry(i, va, level, base, r->start, r->end) {
		hm_pte_t e = pt_get(&t[i]);

		if (!pt_present(e) || pt_leaf(e, level))
			continue;
		if (level >= 2) {
			uint32_t below = pt_pfn(e, level);
			bool go = true;

			if (level == 2) {
				/* A PMD table and its 512 PTE tables. */
				if (!hm_gather_room(r->g, HM_PTRS + 1)) {
					r->next = HM_MAX(va, r->start);	/* va: the entry's start */
					return false;
				}
				hm_spin_lock(hm_mm_table_lock(mm, below));
			}
			go = reclaim_below(r, below, level - 1, va);
			if (level == 2)
				hm_spin_unlock(hm_mm_table_lock(mm, below));
			if (!go)
				return false;
		}
		if (level <= 2)
			reclaim_one_locked(mm, r->g, &t[i], level, va, r->start, r->end);
	}
	return true;
}

void hm_reclaim_tables(struct hm_mm *mm, struct hm_gather *g, uint64_t start, uint64_t end)
{
	hm_assert_write_locked(&mm->mmap_lock);
	struct reclaim r = { mm, g, start, end, end };
	bool done;

	do {
		hm_spin_lock(&mm->page_table_lock);
		done = reclaim_below(&r, mm->root, mm->sys->top, 0);
		hm_spin_unlock(&mm->page_table_lock);
		if (!done) {
			hm_gather_next(g);
			r.start = r.next;
		}
	} while (!done);
}

void hm_unmap_range(struct hm_mm *mm, uint64_t start, uint64_t end, bool free_tables_too)
{
	hm_assert_write_locked(&mm->mmap_lock);
	struct hm_gather g;

	hm_stat_prepare(mm);
	hm_mm_gather_init(mm, &g);
	hm_zap_range(mm, &g, start, end);
	if (free_tables_too) {
		hm_vma_remove_range(mm, start, end);
		hm_free_pgtables(mm, &g, start, end);
	} else {
		hm_reclaim_tables(mm, &g, start, end);
	}
	hm_gather_finish(&g);
}

int hm_munmap_locked(struct hm_mm *mm, uint64_t start, uint64_t end)
{
	hm_assert_write_locked(&mm->mmap_lock);
	int r;

	if (!hm_vma_overlaps(mm, start, end))
		return 0;
	if ((r = hm_vma_reserve(mm, 2)) || (r = hm_split_edges(mm, start, end)))
		return r;
	hm_vma_split_at(mm, start);
	hm_vma_split_at(mm, end);
	hm_unmap_range(mm, start, end, true);
	return 0;
}
