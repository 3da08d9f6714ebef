/* SPDX-License-Identifier: MIT */
/*
 * The huge zero page (zero.c).
 */
#ifndef HM_MM_ZERO_H
#define HM_MM_ZERO_H

#include "types.h"

/* zero.c — the huge zero page (see there). */
/* The block, created at the first call; HM_PFN_NONE when no 2 MiB block
 * can be had. Context: may allocate (no spinlock). */
uint32_t hm_huge_zero_get(struct hm_system *sys);
/* Does @pfn lie in the huge zero page? Context: any; exact for a pfn read
 * from a leaf (the leaf was set after the block was published). */
static inline bool hm_is_huge_zero(struct hm_system *sys, uint32_t pfn)
{
	uint32_t z = hm_load_relaxed(&sys->huge_zero_pfn);

	return z != HM_PFN_NONE && pfn - z < HM_PTRS;
}
/* A read fault at the empty PMD entry *slot where a 2 MiB page may go: map
 * the zero page read-only. 0: a leaf is there now; 1: go on without it.
 * Context: mmap_lock held for reading. */
int hm_huge_zero_fault(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot);
/* A write fault on the zero leaf @e (level 1 or 0) at *slot in a writable
 * VMA: a fresh zeroed page of its own, 2 MiB where the policy allows and
 * one can be had, else 4 KiB in the written PTE (a PMD leaf is split once
 * the page is had: -ENOMEM leaves it whole). 0 (retry the access),
 * -ENOMEM, or -EAGAIN (see hm_fault). Context: mmap_lock held for
 * reading, no spinlock. */
int hm_huge_zero_wp(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot, unsigned level,
		    uint64_t va, hm_pte_t e);
/* A zero leaf of @level was mapped / taken away / split into 512 zero
 * PTEs: what hm_folio_add_map, hm_folio_remove_map, hm_folio_split_map do
 * for folios. Context: the leaf's table lock. */
void hm_huge_zero_map(struct hm_mm *mm, unsigned level);
void hm_huge_zero_unmap(struct hm_mm *mm, unsigned level);
void hm_huge_zero_split_map(struct hm_mm *mm);
/* Free the block. Context: hm_system_destroy, no mm left. */
void hm_huge_zero_fini(struct hm_system *sys);

#endif /* HM_MM_ZERO_H */
