/* SPDX-License-Identifier: MIT */
/*
 * Splitting huge leaves: PUD -> 512 PMD leaves -> 512 PTEs each.
 *
 * Eager mode takes the tables from the deposits: the PMD table deposited
 * with a PUD leaf becomes the new PMD table, and it already holds one PTE
 * table per PMD leaf; a PMD leaf's PTE table comes from its PMD table's
 * list. Nothing is allocated, so a split cannot fail. Lazy mode allocates
 * the (at most four) tables an operation's two boundaries need before it
 * changes anything, and counts them in split_alloc.
 *
 * The old leaf is made invalid before the new table is built, so a walker
 * that races with us faults instead of setting A/D bits in an entry we are
 * about to drop. Invalid, not none: a split may run under mmap_lock for
 * reading (copy-on-write), and a fault of another thread that finds the
 * slot must know that something is there; it waits for the table's lock
 * and looks again.
 */
#include <string.h>

#include "../base/race.h"
#include "folio.h"
#include "reclaim.h"
#include "split.h"
#include "stat.h"
#include "table.h"
#include "types.h"
#include "zero.h"

static uint32_t take_table(struct hm_mm *mm, uint32_t holder, struct hm_split_tables *st)
{
	uint32_t t = hm_pt_withdraw(&mm->sys->pc, holder);

	if (t != HM_PFN_NONE)
		return t;
	hm_assert(st && st->n > 0);
	hm_count(mm->sys, HM_STAT_split_alloc);
	return st->pfn[--st->n];
}

/*
 * t[i] = first + i * inc for the 512 entries: two at a time and four pairs
 * a step, as -O2 does not vectorise the plain loop. Most of a PMD split's
 * instructions were this loop's (seven an entry). Plain stores, in one
 * write window: the table is not published yet.
 */
static void fill_table(hm_pte_t *t, hm_pte_t first, uint64_t inc)
{
	typedef uint64_t v2 __attribute__((vector_size(16)));
	v2 a = { first, first + inc }, d = { 2 * inc, 2 * inc };
	v2 b = a + d, c = b + d, e = c + d, step = 4 * d;
	pt_win_t w = pt_win_open(t);

	for (unsigned i = 0; i < HM_PTRS; i += 8) {
		memcpy(&t[i], &a, sizeof(a));
		memcpy(&t[i + 2], &b, sizeof(b));
		memcpy(&t[i + 4], &c, sizeof(c));
		memcpy(&t[i + 6], &e, sizeof(e));
		a += step;
		b += step;
		c += step;
		e += step;
	}
	pt_win_close(t, w);
}

/* Context: the lock of @holder, the table that contains *slot. */
static void split_leaf_locked(struct hm_mm *mm, hm_pte_t *slot, uint32_t holder,
			      unsigned level, struct hm_split_tables *st)
{
	struct hm_phys *ph = mm_phys(mm);
	hm_assert_locked(hm_mm_table_lock(mm, holder));
	hm_pte_t old = pt_invalidate(slot);
	uint32_t pfn = pt_pfn(old, level);

	/* The descriptors the map counts and the deferred queue need next
	 * (head or chunk, first tail): their misses overlap the fill's. */
	__builtin_prefetch(hm_pfn_page(ph, pfn), 1);
	__builtin_prefetch(hm_pfn_page(ph, pfn + 1), 1);
	hm_race_point("split_invalidated");
	uint32_t child = take_table(mm, holder, st);
	hm_pte_t *t = hm_pt_entries(ph, child);

	for (unsigned i = 0; i < HM_PTRS; i += 8)
		__builtin_prefetch(&t[i], 1);
	/* Keep permission, A and D; the frame and (below PMD) PS change. */
	hm_pte_t bits = pt_split_bits(old, level);
	uint64_t step = level == 2 ? HM_PTRS : 1;

	hm_assert(pt_mapped(old) && level >= 1);
	hm_pt_set(ph, child, level - 1, mm->id);
	fill_table(t, bits | ((uint64_t)pfn << HM_PAGE_SHIFT), step << HM_PAGE_SHIFT);
	if (hm_is_huge_zero(mm->sys, pfn))
		hm_huge_zero_split_map(mm);	/* 512 zero PTEs, still read-only */
	else
		hm_folio_split_map(mm, pfn, level);
	pt_set(slot, pt_mk_table(child));
	hm_count(mm->sys, level == 2 ? HM_STAT_thp_split_pud : HM_STAT_thp_split_pmd);
}

/* A PMD swap entry (512 slots of a cluster) becomes a PTE table of 512
 * swap entries, one slot each: the slots' counts do not change. */
static void split_swap_locked(struct hm_mm *mm, hm_pte_t *slot, uint32_t holder, struct hm_split_tables *st)
{
	struct hm_phys *ph = mm_phys(mm);
	hm_assert_locked(hm_mm_table_lock(mm, holder));
	hm_pte_t old = pt_get(slot);
	uint64_t first = pt_swp_offset(old);
	uint32_t child = take_table(mm, holder, st);
	hm_pte_t *t = hm_pt_entries(ph, child);
	hm_assert(pt_swp_entry(old));
	hm_pt_set(ph, child, 0, mm->id);
	pt_win_t w = pt_win_open(t);
	for (unsigned i = 0; i < HM_PTRS; i++)
		__pt_set_relaxed(&t[i], pt_mk_swp_entry(first + i));	/* published below */
	pt_win_close(t, w);
	pt_set(slot, pt_mk_table(child));
}

bool hm_split_swap_pmd(struct hm_mm *mm, hm_pte_t *slot, struct hm_split_tables *st)
{
	uint32_t holder = hm_slot_table(mm_phys(mm), slot);
	hm_spin_t *lock = hm_mm_table_lock(mm, holder);
	bool done = false;

	hm_spin_lock(lock);
	if (pt_swp_entry(pt_get(slot))) {
		split_swap_locked(mm, slot, holder, st);
		done = true;
	}
	hm_spin_unlock(lock);
	return done;
}

/* The slot of the leaf covering @addr at @level, if a mapped huge leaf of
 * exactly that level is there (or, with @swap, a PMD swap entry). */
static hm_pte_t *huge_slot_or_swap(struct hm_mm *mm, uint64_t addr, unsigned want, bool swap)
{
	unsigned level;
	hm_pte_t *slot = hm_pt_walk(mm_phys(mm), mm->root, mm->sys->top, addr, &level);
	hm_pte_t e = pt_get(slot);

	return level == want && (pt_mapped(e) || (swap && pt_swp_entry(e))) ? slot : NULL;
}

static hm_pte_t *huge_slot(struct hm_mm *mm, uint64_t addr, unsigned want)
{
	return huge_slot_or_swap(mm, addr, want, false);
}

/* Split the leaf at *slot if it is still a mapped leaf of @level (mapping
 * frame @pfn, unless HM_PFN_NONE) when we hold its lock (another thread
 * may have split or replaced it). */
static bool split_leaf_of(struct hm_mm *mm, hm_pte_t *slot, unsigned level, uint32_t pfn,
			  struct hm_split_tables *st)
{
	uint32_t holder = hm_slot_table(mm_phys(mm), slot);
	hm_spin_t *lock = hm_mm_table_lock(mm, holder);
	bool done = false;

	hm_spin_lock(lock);
	hm_pte_t e = pt_get(slot);
	if (pt_mapped(e) && pt_leaf(e, level) && (pfn == HM_PFN_NONE || pt_pfn(e, level) == pfn)) {
		split_leaf_locked(mm, slot, holder, level, st);
		done = true;
	}
	hm_spin_unlock(lock);
	return done;
}

bool hm_split_leaf(struct hm_mm *mm, hm_pte_t *slot, unsigned level, struct hm_split_tables *st)
{
	return split_leaf_of(mm, slot, level, HM_PFN_NONE, st);
}

bool hm_split_leaf_of(struct hm_mm *mm, hm_pte_t *slot, unsigned level, uint32_t pfn, struct hm_split_tables *st)
{
	return split_leaf_of(mm, slot, level, pfn, st);
}

/* One walk tells which leaf covers @addr; a second is needed only after a
 * PUD split, which leaves a PMD leaf there (munmap of one page walked four
 * times, asking each level apart). */
static void split_at(struct hm_mm *mm, uint64_t addr, struct hm_split_tables *st)
{
	hm_assert_write_locked(&mm->mmap_lock);
	struct hm_phys *ph = mm_phys(mm);
	unsigned level;
	hm_pte_t *slot;
	hm_pte_t e;

	if (!(addr & (HM_PUD_SIZE - 1)))
		return;		/* no leaf straddles it */
	slot = hm_pt_walk(ph, mm->root, mm->sys->top, addr, &level);
	e = pt_get(slot);
	if (level == 2 && pt_mapped(e)) {
		hm_split_leaf(mm, slot, 2, st);
		if (!(addr & (HM_PMD_SIZE - 1)))
			return;
		slot = hm_pt_walk(ph, mm->root, mm->sys->top, addr, &level);
		e = pt_get(slot);
	}
	if (level != 1 || !(addr & (HM_PMD_SIZE - 1)))
		return;
	if (pt_swp_entry(e))
		hm_split_swap_pmd(mm, slot, st);
	else if (pt_mapped(e))
		hm_split_leaf(mm, slot, 1, st);
}

/* Tables that splitting at @addr will need in lazy mode. */
static unsigned split_need(struct hm_mm *mm, uint64_t addr)
{
	if (huge_slot(mm, addr, 2))
		return (addr & (HM_PUD_SIZE - 1)) ? 1 + !!(addr & (HM_PMD_SIZE - 1)) : 0;
	return (addr & (HM_PMD_SIZE - 1)) && huge_slot_or_swap(mm, addr, 1, true) ? 1 : 0;
}

static int split_prepare(struct hm_mm *mm, uint64_t a, uint64_t b, struct hm_split_tables *st)
{
	hm_assert_write_locked(&mm->mmap_lock);
	st->n = 0;
	if (mm->sys->cfg.deposit != HM_DEPOSIT_LAZY)
		return 0;
	unsigned need = split_need(mm, a) + (b != a ? split_need(mm, b) : 0);

	while (st->n < need) {
		uint32_t t = hm_mm_pt_alloc(mm, 0);

		if (t == HM_PFN_NONE) {
			hm_split_done(mm, st);
			return -ENOMEM;
		}
		st->pfn[st->n++] = t;
	}
	return 0;
}

int hm_split_table_lazy(struct hm_mm *mm, struct hm_split_tables *st)
{
	st->n = 0;
	if (mm->sys->cfg.deposit != HM_DEPOSIT_LAZY)
		return 0;
	st->pfn[0] = hm_mm_pt_alloc(mm, 0);
	if (st->pfn[0] == HM_PFN_NONE)
		return -ENOMEM;
	st->n = 1;
	return 0;
}

void hm_split_done(struct hm_mm *mm, struct hm_split_tables *st)
{
	while (st->n)
		hm_mm_pt_free_unused(mm, st->pfn[--st->n]);
}

int hm_split_edges(struct hm_mm *mm, uint64_t start, uint64_t end)
{
	struct hm_split_tables st;

	hm_reclaim_enter(mm, NULL);	/* lazy mode's tables may reclaim */
	int r = split_prepare(mm, start, end, &st);

	hm_reclaim_exit();
	if (r)
		return r;
	split_at(mm, start, &st);
	split_at(mm, end, &st);
	hm_split_done(mm, &st);
	return 0;
}

int hm__split(struct hm_mm *mm, uint64_t addr, unsigned level)
{
	struct hm_split_tables st;
	hm_pte_t *slot;
	int r = 0;

	hm_down_write(&mm->mmap_lock);
	st.n = 0;
	if ((slot = huge_slot(mm, addr, 2))) {
		if (mm->sys->cfg.deposit == HM_DEPOSIT_LAZY) {
			r = -EOPNOTSUPP;
			goto out;
		}
		hm_split_leaf(mm, slot, 2, NULL);
		if (level == 0) {
			uint64_t base = HM_ALIGN_DOWN(addr, HM_PUD_SIZE);
			for (unsigned i = 0; i < HM_PTRS; i++)
				hm_split_leaf(mm, huge_slot(mm, base + i * HM_PMD_SIZE, 1), 1, NULL);
		}
	} else if ((slot = huge_slot(mm, addr, 1)) && level == 0) {
		if (split_prepare(mm, addr | HM_PAGE_SIZE, addr | HM_PAGE_SIZE, &st)) {
			r = -ENOMEM;
			goto out;
		}
		hm_split_leaf(mm, slot, 1, &st);
	} else {
		r = -ENOENT;
	}
out:
	hm_split_done(mm, &st);
	hm_up_write(&mm->mmap_lock);
	return r;
}
