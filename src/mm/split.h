/* SPDX-License-Identifier: MIT */
/*
 * Splitting huge leaves into tables of smaller ones (split.c).
 */
#ifndef HM_MM_SPLIT_H
#define HM_MM_SPLIT_H

#include "types.h"

/* split.c — Context: mmap_lock held for writing. */
struct hm_split_tables {
	uint32_t pfn[4];	/* lazy mode: tables allocated beforehand */
	unsigned n;
};
/*
 * Split the huge leaves that cross @start or @end, so that every leaf lies
 * inside [start, end) or outside it. Lazy mode allocates the (at most four)
 * tables first: -ENOMEM then, having changed nothing.
 */
int hm_split_edges(struct hm_mm *mm, uint64_t start, uint64_t end);
/* The one table a split of one leaf (or PMD swap entry) needs in lazy
 * mode, into @st (none in eager mode): 0 or -ENOMEM. */
int hm_split_table_lazy(struct hm_mm *mm, struct hm_split_tables *st);
/* Free the tables of @st that a split did not use. */
void hm_split_done(struct hm_mm *mm, struct hm_split_tables *st);
/* Split the leaf at *slot (level 1 or 2) under its table's lock; works
 * under mmap_lock for reading too, as every installer rechecks under that
 * lock. Lazy mode takes its table from @st. */
bool hm_split_leaf(struct hm_mm *mm, hm_pte_t *slot, unsigned level, struct hm_split_tables *st);
/* As hm_split_leaf, if the leaf still maps frame @pfn under that lock: a
 * caller that looked without the lock (migration, under mmap_lock for
 * reading) must not split a folio a copy-on-write put there meanwhile. */
bool hm_split_leaf_of(struct hm_mm *mm, hm_pte_t *slot, unsigned level, uint32_t pfn, struct hm_split_tables *st);
/* Split the PMD swap entry at *slot into a table of 512 PTE swap entries,
 * if it is still one under its table's lock. Lazy mode takes its table
 * from @st. */
bool hm_split_swap_pmd(struct hm_mm *mm, hm_pte_t *slot, struct hm_split_tables *st);
/* Split the huge leaf at @addr down to @level (1: PMD leaves, 0: PTEs), for
 * benchmarks and tests. -ENOENT if no huge leaf is there. */
int hm__split(struct hm_mm *mm, uint64_t addr, unsigned level);

#endif /* HM_MM_SPLIT_H */
