/* SPDX-License-Identifier: MIT */
/*
 * VMAs of an mm (vma.c): a sorted array under mmap_lock.
 */
#ifndef HM_MM_VMA_H
#define HM_MM_VMA_H

#include "types.h"

/* vma.c — Context: mmap_lock held (write for changes). */
size_t hm_vma_index(struct hm_mm *mm, uint64_t addr);	/* first with end > addr */
struct hm_vma *hm_vma_lookup(struct hm_mm *mm, uint64_t addr);
int hm_vma_reserve(struct hm_mm *mm, size_t extra);
void hm_vma_split_at(struct hm_mm *mm, uint64_t addr);	/* needs 1 reserved */
void hm_vma_insert(struct hm_mm *mm, const struct hm_vma *v); /* needs 1 reserved */
void hm_vma_remove_range(struct hm_mm *mm, uint64_t start, uint64_t end);
void hm_vma_merge_range(struct hm_mm *mm, uint64_t start, uint64_t end);
/* [start, end) has no hole, and each VMA in it allows @need: 0 (any),
 * PROT_READ (anything but PROT_NONE: on x86 what maps can be read) or
 * PROT_WRITE. */
bool hm_vma_covers(struct hm_mm *mm, uint64_t start, uint64_t end, int need);
bool hm_vma_overlaps(struct hm_mm *mm, uint64_t start, uint64_t end);
int hm_vma_find_gap(struct hm_mm *mm, uint64_t hint, uint64_t len, uint64_t *out);

#endif /* HM_MM_VMA_H */
