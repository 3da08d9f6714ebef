/* SPDX-License-Identifier: MIT */
/*
 * Taking mappings and tables out of a range (unmap.c).
 */
#ifndef HM_MM_UNMAP_H
#define HM_MM_UNMAP_H

#include "types.h"

/* unmap.c — Context: mmap_lock held for writing. */
void hm_zap_range(struct hm_mm *mm, struct hm_gather *g, uint64_t start, uint64_t end);
void hm_free_pgtables(struct hm_mm *mm, struct hm_gather *g, uint64_t start, uint64_t end);
/* Unlink the PTE and PMD tables serving [start, end) that map nothing
 * (pgtable_reclaimed); they are freed after a grace period. */
void hm_reclaim_tables(struct hm_mm *mm, struct hm_gather *g, uint64_t start, uint64_t end);
/* Take everything out of [start, end), free the tables no VMA needs, and
 * give back those left empty. */
void hm_unmap_range(struct hm_mm *mm, uint64_t start, uint64_t end, bool free_tables);
int hm_munmap_locked(struct hm_mm *mm, uint64_t start, uint64_t end);

#endif /* HM_MM_UNMAP_H */
