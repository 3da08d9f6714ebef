/* SPDX-License-Identifier: MIT */
/*
 * An mm's page tables: allocation with per-mm accounting, which lock
 * guards which table, and the range walker that zap and mprotect share.
 */
#include "folio.h"
#include "reclaim.h"
#include "table.h"
#include "types.h"

static uint32_t pt_alloc(struct hm_mm *mm, unsigned level, bool swapin)
{
	uint32_t pfn;

	/* Tables for new memory must not eat the frames kept for swap-ins
	 * either, or what is in swap could not always be read back; a free
	 * slot of a block in use is no such frame. */
	if (!swapin && !hm_reserve_refill(mm->sys, 0)) {
		pfn = hm_pt_alloc_slot(&mm->sys->pc, level, mm->id);
		if (pfn != HM_PFN_NONE)
			hm_add(&mm->nr_tables, 1);
		return pfn;
	}
	pfn = hm_pt_alloc(&mm->sys->pc, level, mm->id);

	while (pfn == HM_PFN_NONE && hm_reclaim_direct(mm->sys, 1))
		pfn = hm_pt_alloc(&mm->sys->pc, level, mm->id);

	if (pfn != HM_PFN_NONE)
		hm_add(&mm->nr_tables, 1);
	return pfn;
}

uint32_t hm_mm_pt_alloc(struct hm_mm *mm, unsigned level)
{
	return pt_alloc(mm, level, false);
}

uint32_t hm_mm_pt_alloc_swapin(struct hm_mm *mm, unsigned level)
{
	return pt_alloc(mm, level, true);
}

/* A table that was never published. */
void hm_mm_pt_free_unused(struct hm_mm *mm, uint32_t pfn)
{
	hm_sub(&mm->nr_tables, 1);
	hm_pt_free(&mm->sys->pc, pfn);
}

void hm_mm_pt_unlink(struct hm_mm *mm, struct hm_gather *g, uint32_t pfn)
{
	hm_sub(&mm->nr_tables, 1);
	hm_gather_table(g, pfn);
}

/* Entries of level >= 2 tables are guarded by the mm's page_table_lock;
 * PMD and PTE tables carry their own. */
hm_spin_t *hm_mm_table_lock(struct hm_mm *mm, uint32_t table)
{
	struct hm_ptdesc *d = hm_ptdesc(mm_phys(mm), table);

	return d->level >= 2 ? &mm->page_table_lock : &d->ptl;
}

void hm_tlb_flush(struct hm_mm *mm)
{
	__atomic_add_fetch(&mm->tlb_gen, 1, __ATOMIC_RELEASE);
}

void hm_tlb_shootdown(struct hm_mm *mm)
{
	hm_tlb_flush(mm);
	hm_rcu_synchronize();
}

struct walk {
	struct hm_mm *mm;
	uint64_t start, end;
	hm_leaf_fn fn;
	void *arg;
	uint64_t stop;		/* where @fn asked to stop, or end */
};

/* Returns false when @fn asked to stop (at w->stop). */
static bool walk_table(struct walk *w, uint32_t table, unsigned level, uint64_t base)
{
	struct hm_phys *ph = mm_phys(w->mm);
	hm_pte_t *t = hm_pt_entries(ph, table);
	uint64_t size = hm_level_size(level);
	hm_spin_t *lock = hm_mm_table_lock(w->mm, table);
	bool take = level < 2;	/* page_table_lock is taken once, at the top */
	bool go = true;
	pt_win_t win;

	if (take)
		hm_spin_lock(lock);
	/* @fn may store into any entry: one write window for them all. */
	win = pt_win_open(t);
	hm_for_each_entry(i, va, level, base, w->start, w->end) {
		hm_pte_t e = pt_get(&t[i]);

		if (pt_none(e))
			continue;
		if (level > 0 && pt_present(e) && !pt_leaf(e, level)) {
			if (!(go = walk_table(w, pt_pfn(e, level), level - 1, va)))
				break;
			continue;
		}
		if (pt_mapped(e) || pt_swp_entry(e)) {
			hm_assert(va >= w->start && va + size <= w->end);
			if (!(go = w->fn(w->mm, &t[i], level, va, w->arg))) {
				w->stop = va;
				break;
			}
		}
	}
	pt_win_close(t, win);
	if (take)
		hm_spin_unlock(lock);
	return go;
}

uint64_t hm_walk_leaves(struct hm_mm *mm, uint64_t start, uint64_t end, hm_leaf_fn fn, void *arg)
{
	struct walk w = { mm, start, end, fn, arg, end };

	hm_assert_write_locked(&mm->mmap_lock);
	if (start >= end)
		return end;
	hm_spin_lock(&mm->page_table_lock);
	walk_table(&w, mm->root, mm->sys->top, 0);
	hm_spin_unlock(&mm->page_table_lock);
	return w.stop;
}
