/* SPDX-License-Identifier: MIT */
/*
 * Folio split: a large folio becomes 512 folios of the next order down
 * (order 9: 512 of order 0; order 18: 512 of order 9), and those that
 * nothing maps are freed. The kernel's __split_huge_page without the unmap
 * and remap around it: an entry names a frame, not a folio, so no table
 * changes; only descriptors do.
 *
 * Who may look at a folio while we rewrite it:
 *  - map count changes (fault, fork, zap, copy-on-write, mapping split)
 *    find a frame's head without a lock, take that head's folio lock, and
 *    look again under it (hm_lock_folio_of in folio.c). We hold every folio
 *    lock, so they wait for us, and then find the new head.
 *  - hm_folio_head reads flags and order without a lock: both are written
 *    here with relaxed atomic stores; what it returns is looked at again
 *    under a lock before anyone acts on it.
 *  - hm_check and other splitters: sys->split_lock.
 *
 * The counts of a new folio, from the equations in phys/phys.h:
 *   order 9 -> 0, page i:   large_mapcount = mapcount = pte_maps(i)
 *                                          = head.pte_all + page[i].mapcount
 *   order 18 -> 9, chunk j: entire_mapcount = pmd_maps(j)
 *                                           = head.pmd_all + chunk.pmd_mapcount
 *                           (its PMD leaves map the new folio whole);
 *                           pte_all and the pages' mapcounts stay;
 *                           large_mapcount = entire + 512 * pte_all + sum(mapcount)
 *
 * mm slots: if one mm alone mapped the old folio (its slot holds all of
 * large_mapcount, and it is not maybe-shared), that mm alone maps each new
 * one, with the new count. Otherwise who maps which part is unknown without
 * the reverse map: every mapped new folio is marked maybe-shared with both
 * slots empty. The invariant at slots_add (folio.c) allows that: a slot
 * never holds more than its mm's true count while the folio is marked, and
 * the mark goes when one mm is seen to map all of it.
 */
#include "../base/race.h"
#include "folio.h"
#include "folio_split.h"
#include "lru.h"
#include "stat.h"
#include "table.h"
#include "types.h"
#include "zero.h"

void hm_folio_lock_all(struct hm_system *sys)
{
	for (unsigned i = 0; i < HM_FOLIO_LOCKS; i++)
		hm_spin_lock(&sys->folio_locks[i]);
}

void hm_folio_unlock_all(struct hm_system *sys)
{
	for (unsigned i = HM_FOLIO_LOCKS; i-- > 0;)
		hm_spin_unlock(&sys->folio_locks[i]);
}

static bool can_split(struct hm_system *sys, uint32_t head)
{
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	uint32_t flags = hm_load_relaxed(&h->flags);

	/* Reclaim owns an isolated folio; a swap-cache folio's slots go with
	 * it whole; the huge zero page is never split. */
	if (!(flags & PG_HEAD) || (flags & (PG_ISOLATED | PG_SWAPCACHE | PG_HUGE_ZERO | PG_FREEING)))
		return false;
	if (h->order != HM_PMD_ORDER && h->order != HM_PUD_ORDER)
		return false;
	/* A leaf of the folio's own size maps it whole; an unmapped folio is
	 * on its way to be freed. */
	if (h->entire_mapcount || h->large_mapcount <= 0)
		return false;
	/* A pin (an unmap's TLB shootdown or a copy-on-write in flight) sits
	 * on the old head's stripe: the new folios' reuse decisions would not
	 * see it. */
	return !hm_load(hm_pin_slot(&sys->phys, head));
}

/* The mm that alone maps all of @h, by slot_id. */
static bool one_mm(const struct hm_page *h, uint32_t *id)
{
	if (hm_load_relaxed(&h->flags) & PG_MAYBE_SHARED)
		return false;
	for (int s = 0; s < 2; s++) {
		if (h->mm_count[s] && h->mm_count[s] == h->large_mapcount) {
			*id = h->mm_id[s];
			return true;
		}
	}
	return false;
}

struct split {
	uint32_t anon_vma;
	uint64_t index;
	bool one;		/* mapped by mm id alone */
	uint32_t id;
};

/* Make @c the head of a folio of @order. Its mapcount and pte_all are the
 * caller's. */
static void new_head(struct hm_page *c, const struct split *sp, unsigned order, uint64_t index,
		     int32_t entire, int32_t large)
{
	c->folio.gather_next = 0;
	c->folio.anon_vma = sp->anon_vma;
	c->folio.index = index;
	c->pmd_mapcount = 0;
	c->entire_mapcount = entire;
	c->large_mapcount = large;
	c->mm_id[0] = c->mm_id[1] = 0;
	c->mm_count[0] = c->mm_count[1] = 0;
	if (large && sp->one) {
		c->mm_id[0] = sp->id;
		c->mm_count[0] = large;
	}
	c->pmd_all = 0;
	/* release: a head taking a smaller order publishes its tails' marks
	 * (hm_unmarked_head reads the order with acquire) */
	__atomic_store_n(&c->order, (uint8_t)order, __ATOMIC_RELEASE);
	__atomic_store_n(&c->flags, PG_HEAD | (large && !sp->one ? PG_MAYBE_SHARED : 0), __ATOMIC_RELAXED);
}

/* Hand a new folio that nothing maps to the gather. */
static void free_new(struct hm_system *sys, struct hm_gather *g, uint32_t head, unsigned order,
		     struct hm_split_result *res)
{
	hm_sub(&sys->nr_anon_frames, 1u << order);
	hm_gather_folio(g, head);
	res->freed += 1u << order;
}

static void split_pmd_folio(struct hm_system *sys, uint32_t head, const struct split *sp,
			    struct hm_gather *g, struct hm_split_result *res)
{
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	int32_t pte_all = h->pte_all;

	/* The head last: its tails may be unmarked (phys.h, "Tails"), and
	 * hm_folio_head finds an unmarked one's head by the head's order 9
	 * until each frame says it heads itself. */
	for (uint32_t i = HM_PTRS; i-- > 0;) {
		struct hm_page *c = &h[i];
		int32_t maps = pte_all + c->mapcount;

		hm_assert(maps >= 0);
		c->mapcount = maps;
		c->pte_all = 0;
		new_head(c, sp, 0, sp->index + i, 0, maps);
		if (i == HM_PTRS / 2)
			hm_race_point("split_pmd_folio_half");
	}
	for (uint32_t i = 0; i < HM_PTRS; i++)
		if (!h[i].large_mapcount)
			free_new(sys, g, head + i, 0, res);
}

/* Is a page of the new order-9 folio at @c mapped by nothing? */
static bool has_unmapped_page(const struct hm_page *c)
{
	if (c->entire_mapcount)
		return false;
	for (uint32_t i = 0; i < HM_PTRS; i++)
		if (c->pte_all + c[i].mapcount == 0)
			return true;
	return false;
}

static void split_pud_folio(struct hm_system *sys, uint32_t head, const struct split *sp,
			    struct hm_gather *g, struct hm_split_result *res)
{
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	int32_t pmd_all = h->pmd_all;
	bool underused = sys->cfg.khugepaged_max_ptes_none < HM_PTRS - 1;

	/* The old folio's tails were never marked (phys.h, "Tails"): mark
	 * them, and the old head last, with release, so that hm_folio_head
	 * finds a frame marked once the head says order 9. */
	for (uint32_t j = HM_PTRS; j-- > 0;) {
		struct hm_page *c = &h[j * HM_PTRS];
		int32_t entire = pmd_all + c->pmd_mapcount;
		int32_t large = entire + (int32_t)HM_PTRS * c->pte_all;

		for (uint32_t i = 0; i < HM_PTRS; i++)
			large += c[i].mapcount;
		hm_assert(entire >= 0 && large >= entire);
		for (uint32_t i = 1; i < HM_PTRS; i++) {
			__atomic_store_n(&c[i].order, (uint8_t)HM_PMD_ORDER, __ATOMIC_RELAXED);
			__atomic_store_n(&c[i].flags, PG_TAIL, __ATOMIC_RELAXED);
		}
		new_head(c, sp, HM_PMD_ORDER, sp->index + j * HM_PTRS, entire, large);
	}
	/* The new 2 MiB folios are queued as any other: partly mapped ones to
	 * be split in turn, PTE-mapped ones for the underused shrinker. */
	for (uint32_t j = 0; j < HM_PTRS; j++) {
		uint32_t c = head + j * HM_PTRS;
		struct hm_page *cp = hm_pfn_page(&sys->phys, c);

		if (!cp->large_mapcount) {
			free_new(sys, g, c, HM_PMD_ORDER, res);
		} else if (has_unmapped_page(cp)) {
			hm_deferred_add_locked(sys, c, true);
			res->queued++;
		} else if (!cp->entire_mapcount && underused) {
			hm_deferred_add_locked(sys, c, false);
			res->queued++;
		}
	}
}

bool hm_folio_split_locked(struct hm_system *sys, uint32_t head, struct hm_gather *g,
			   struct hm_split_result *res)
{
	hm_assert_int(hm_spin_held(&sys->folio_locks[0]) && hm_spin_held(&sys->folio_locks[HM_FOLIO_LOCKS - 1]));
	struct hm_page *h = hm_pfn_page(&sys->phys, head);

	if (!can_split(sys, head))
		return false;
	hm_assert(hm_gather_room(g, HM_PTRS));
	if (hm_load_relaxed(&h->flags) & PG_DEFERRED)
		hm_deferred_del_locked(sys, head);

	/* Off its LRU list as one folio, back on it as the mapped pieces (a
	 * folio reclaim took off the list and has not looked at yet sees its
	 * head back on it, and leaves it: lru.c). */
	bool active = false, listed = hm_lru_del_any(sys, head, &active);
	unsigned order = h->order, step = order == HM_PMD_ORDER ? 1 : HM_PTRS;
	struct split sp = { .anon_vma = h->folio.anon_vma, .index = h->folio.index };

	sp.one = one_mm(h, &sp.id);
	if (order == HM_PMD_ORDER)
		split_pmd_folio(sys, head, &sp, g, res);
	else
		split_pud_folio(sys, head, &sp, g, res);
	(void)listed;
	for (uint32_t c = head; c < head + (1u << order); c += step)
		if (hm_pfn_page(&sys->phys, c)->large_mapcount > 0)
			hm_lru_add(sys, c, active);
	hm_count(sys, HM_STAT_thp_split_page);
	return true;
}

bool hm_folio_split_at(struct hm_mm *mm, uint64_t va)
{
	hm_assert_rwsem_held(&mm->mmap_lock);
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	struct hm_split_result res = { 0 };
	struct hm_gather g;
	unsigned level;
	bool done = false;

	hm_mutex_lock(&sys->split_lock);
	hm_gather_init_rcu(&g, &sys->pc);
	hm_pte_t *slot = hm_pt_walk(ph, mm->root, sys->top, va, &level);
	if (level == 0) {
		/* Under the PTE's lock the frame stays mapped, so its folio is
		 * alive and its head stable once we hold every folio lock. */
		hm_spin_t *ptl = hm_mm_table_lock(mm, hm_slot_table(ph, slot));

		hm_spin_lock(ptl);
		hm_pte_t e = pt_get(slot);
		if (pt_present(e) && !hm_is_huge_zero(sys, pt_pfn(e, 0))) {
			hm_folio_lock_all(sys);
			uint32_t head = hm_folio_head(ph, pt_pfn(e, 0));

			if (hm_pfn_page(ph, head)->order == HM_PMD_ORDER)
				done = hm_folio_split_locked(sys, head, &g, &res);
			hm_folio_unlock_all(sys);
		}
		hm_spin_unlock(ptl);
	}
	hm_gather_finish(&g);
	hm_mutex_unlock(&sys->split_lock);
	return done;
}
