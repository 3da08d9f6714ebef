/* SPDX-License-Identifier: MIT */
/*
 * Folio split (folio_split.c) and the deferred split queue with the THP
 * shrinkers (deferred.c).
 */
#ifndef HM_MM_FOLIO_SPLIT_H
#define HM_MM_FOLIO_SPLIT_H

#include "types.h"

/*
 * folio_split.c — split a large folio into folios of the next order down
 * (order 9 into 512 of order 0, 18 into 512 of order 9). Only descriptors
 * change: entries name frames, not folios. A split moves the head of the
 * frames it touches, so it holds every folio lock (in index order, nothing
 * taken under them but sys->deferred_lock), and whoever takes a folio lock
 * for a frame looks up its head again under it (hm_lock_folio_of in folio.c).
 */
void hm_folio_lock_all(struct hm_system *sys);
void hm_folio_unlock_all(struct hm_system *sys);
struct hm_split_result {
	uint64_t freed;		/* frames of new folios that nothing maps:
				 * handed to the gather */
	unsigned queued;	/* new order-9 folios put on the deferred queue */
};
/*
 * Split the folio at @head if nothing prevents it: it is not mapped whole
 * (entire_mapcount 0), it is mapped, not pinned, not isolated by reclaim,
 * not in the swap cache, not the huge zero page. New folios that nothing
 * maps go to @g (room for 512 entries). Returns false, changing nothing,
 * if it cannot be split. Context: sys->split_lock, every folio lock.
 */
bool hm_folio_split_locked(struct hm_system *sys, uint32_t head, struct hm_gather *g,
			   struct hm_split_result *res);
/* Split the 2 MiB folio that the PTE at @va maps into 4 KiB folios, if it
 * can be (MADV_PAGEOUT of part of it). Context: mmap_lock held, no
 * spinlock; takes split_lock. */
bool hm_folio_split_at(struct hm_mm *mm, uint64_t va);

/*
 * deferred.c — the deferred split queue and the THP shrinkers.
 *
 * A large folio is queued when an unmap leaves it partly mapped (counted in
 * thp_deferred_split_page, once per folio), and, while
 * khugepaged_max_ptes_none < 511, when its PMD mapping is split to PTEs (a
 * candidate for the underused shrinker). It leaves the queue when it is
 * split or loses its last mapping. Context of add/del: the folio's lock
 * (hm_folio_lock_all counts); they take sys->deferred_lock.
 */
void hm_deferred_add_locked(struct hm_system *sys, uint32_t head, bool partial);
void hm_deferred_del_locked(struct hm_system *sys, uint32_t head);
void hm_deferred_readd_locked(struct hm_system *sys, uint32_t head, bool partial);
bool hm_deferred_partial_locked(struct hm_system *sys, uint32_t head);
/*
 * Memory pressure: split the queued partly mapped folios, freeing their
 * unmapped parts, until @want frames are freed; then the underused
 * shrinker: split PTE-mapped 2 MiB folios with more than
 * khugepaged_max_ptes_none zero-filled pages, dropping those. Returns the
 * frames freed (free after a grace period: nr_free_pages counts them at
 * once). The underused shrinker takes the mmap_locks of a folio's mappers
 * with trylocks, for writing, and skips the folio when one is busy, or held
 * by the caller; it waits for grace periods, so inside hm_fault's first
 * pass (hm_drain_defer_begin) it does not run but asks for the retry.
 * Context: no spinlock; no RCU read section; may hold mmap_locks (a fault)
 * but not sys->split_lock.
 */
uint64_t hm_thp_shrink(struct hm_system *sys, uint64_t want);
/* For tests: hm_thp_shrink, then hm_check if the system asks for it. */
uint64_t hm__thp_shrink(struct hm_system *sys, uint64_t want);

#endif /* HM_MM_FOLIO_SPLIT_H */
