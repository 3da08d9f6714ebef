/* SPDX-License-Identifier: MIT */
/*
 * Reclaim and swap (vmscan.c, swapout.c, swapin.c).
 */
#ifndef HM_MM_RECLAIM_H
#define HM_MM_RECLAIM_H

#include "types.h"

/* vmscan.c — reclaim. The mms whose mmap_lock the caller holds (read or
 * write) are named in a per-thread context that direct reclaim reads:
 * reclaim takes the others with a trylock, and skips folios it cannot. */
void hm_reclaim_enter(struct hm_mm *a, struct hm_mm *b);
void hm_reclaim_exit(void);
/* An allocation failed: reclaim some memory if this thread may (inside
 * hm_reclaim_enter) and swap has room. Returns true if it freed any. */
bool hm_reclaim_direct(struct hm_system *sys, unsigned nr_frames);
/* The mms reclaim holds for a batch of folios: each read-locked by a
 * trylock, or held by this thread already (took false). */
struct hm_lockset {
	struct hm_mm **mm;
	bool *took;
	unsigned n, cap;
};
/* Add the mms that may map @head (its anon_vma family). -EBUSY if one is
 * busy, -ENOMEM; what was added stays added either way. */
int hm_lockset_add_mappers(struct hm_system *sys, uint32_t head, struct hm_lockset *ls);
void hm_lockset_release(struct hm_lockset *ls);

/* swapout.c — see there. An isolated folio on its way out. */
struct hm_swapout {
	struct hm_system *sys;
	uint32_t head;
	uint64_t *slots;	/* slot of each page of the folio */
	bool cached;		/* the slots are its swap cache */
	bool dirty;		/* a leaf had D set */
	int err;		/* begin failed half way: end undoes it */
};
/* Take slots and make every leaf of @head in @ls's mms a swap entry.
 * Nonzero (-ENOSPC: no slot, -ENOMEM): nothing was done. 0: call
 * hm_swapout_end after a grace period, whatever so->err says. */
int hm_swapout_begin(struct hm_system *sys, struct hm_swapout *so, uint32_t head, const struct hm_lockset *ls);
/* Write and free the folio: 0; or undo begin (-EIO, so->err), leaving it
 * isolated and mapped as before. */
int hm_swapout_end(struct hm_swapout *so, const struct hm_lockset *ls);
/* Visit every leaf of @mm that maps part of the folio @head, under its
 * table lock: @fn gets the slot and the leaf, and returns 0 to go on to
 * the next, 1 to look at the same address again (it made the leaf a
 * table), or an error, which ends the walk. Context: mmap_lock held. */
typedef int (*hm_leaf_visit)(struct hm_mm *mm, hm_pte_t *slot, hm_pte_t e, unsigned level, uint64_t va,
			     void *arg);
int hm_for_each_leaf_of(struct hm_mm *mm, uint32_t head, hm_leaf_visit fn, void *arg);
/* MADV_PAGEOUT. Context: mmap_lock held for reading. */
int hm_pageout_range(struct hm_mm *mm, uint64_t start, uint64_t end);
/* Swap-in fault at the swap entry *slot of @level. Context: mmap_lock
 * held for reading. 0 (retry the access), -ENOMEM, -EIO. */
int hm_swap_in(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot, unsigned level,
	       uint64_t va, bool write);
/* Drop the swap-cache slots of a folio that is going away. Context: the
 * folio lock. */
void hm_folio_drop_swapcache_locked(struct hm_system *sys, struct hm_page *h);
/* Entries on this many slots dropped from the tables. */
void hm_swap_entry_free(struct hm_system *sys, hm_pte_t e, unsigned level);

#endif /* HM_MM_RECLAIM_H */
