/* SPDX-License-Identifier: MIT */
/*
 * An mm's page tables (table.c): allocation that keeps mm->nr_tables,
 * the table locks, TLB flushes, and the walk over leaves under their
 * table locks.
 */
#ifndef HM_MM_TABLE_H
#define HM_MM_TABLE_H

#include "types.h"

/* pgtable wrappers that keep mm->nr_tables (table.c) */
uint32_t hm_mm_pt_alloc(struct hm_mm *mm, unsigned level);
/* For a swap-in (a PMD swap entry's split in lazy mode): may take the
 * frames kept back for swap-ins. */
uint32_t hm_mm_pt_alloc_swapin(struct hm_mm *mm, unsigned level);
void hm_mm_pt_free_unused(struct hm_mm *mm, uint32_t pfn);
void hm_mm_pt_unlink(struct hm_mm *mm, struct hm_gather *g, uint32_t pfn);
hm_spin_t *hm_mm_table_lock(struct hm_mm *mm, uint32_t table);
/* After present entries changed: every translation any thread cached is
 * stale from now on (accesses already under way may still finish through
 * one). */
void hm_tlb_flush(struct hm_mm *mm);
/* The full shootdown: hm_tlb_flush, then wait until every access under way
 * through an old translation has finished (a grace period). Only fork needs
 * it; unmaps hand their frames to RCU instead (struct hm_gather).
 * Must not: be called inside an RCU read section or under a spinlock. */
void hm_tlb_shootdown(struct hm_mm *mm);
static inline uint32_t hm_slot_table(struct hm_phys *ph, const hm_pte_t *slot)
{
	return (uint32_t)(((const uint8_t *)slot - ph->base) >> HM_PAGE_SHIFT);
}
static inline void hm_mm_gather_init(struct hm_mm *mm, struct hm_gather *g)
{
	hm_gather_init(g, &mm->sys->pc, &mm->tlb_gen);
}

/*
 * Visit every leaf and swap entry in [start, end) under the lock of its
 * table (@fn tells them apart with pt_swp_entry). A leaf must
 * not straddle either end (split first). @fn may change or clear the entry,
 * and returns false to stop the walk before it changed anything (to drop
 * the locks and make room); a write window is open on the table for it
 * (so it stores with the __pt_* helpers). Returns the address where the
 * walk stopped, or @end. Context: mmap_lock held for writing.
 */
typedef bool (*hm_leaf_fn)(struct hm_mm *mm, hm_pte_t *slot, unsigned level,
			   uint64_t va, void *arg);
uint64_t hm_walk_leaves(struct hm_mm *mm, uint64_t start, uint64_t end, hm_leaf_fn fn, void *arg);

#endif /* HM_MM_TABLE_H */
