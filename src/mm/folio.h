/* SPDX-License-Identifier: MIT */
/*
 * Folios (folio.c): allocation, the swap-in reserve, map counts and the
 * folio locks, the copy-on-write decision. The typed views of a folio's
 * descriptors are in phys/page.h (folio_order() and the rest).
 */
#ifndef HM_MM_FOLIO_H
#define HM_MM_FOLIO_H

#include "types.h"

uint32_t hm_folio_alloc(struct hm_mm *mm, unsigned order, bool zero);
/* The first mapping of a new 4 KiB folio (folio.c). */
void hm_folio_add_new_map(struct hm_mm *mm, uint32_t head);
/* A zeroed folio of @order for a fault at @va (see folio.c). */
uint32_t hm_folio_alloc_fault(struct hm_mm *mm, unsigned order, uint64_t va);
/* For a swap-in: may take the frames kept back for it (see folio.c). */
uint32_t hm_folio_alloc_swapin(struct hm_mm *mm, unsigned order);
/* With swap, the last free frames are kept for swap-ins (folio.c): is
 * memory below that, for an allocation of @order? Then: reclaim until a new
 * folio of @order leaves them free, and a huge one a headroom above them,
 * with swap or not (false if it cannot). Every allocation but a swap-in's
 * asks. */
bool hm_below_reserve(struct hm_system *sys, unsigned order);
bool hm_reserve_refill(struct hm_system *sys, unsigned order);
void hm_folio_free_unmapped(struct hm_mm *mm, uint32_t head);
uint32_t hm_folio_head_unmarked(struct hm_phys *ph, uint32_t pfn);

/* The head of the folio that @pfn, a mapped frame, belongs to. Inline for
 * the frames that say it (every one but an unmarked tail of a huge folio):
 * unmap, fork and copy-on-write ask it several times per page. */
static inline uint32_t hm_folio_head(struct hm_phys *ph, uint32_t pfn)
{
	const struct hm_page *pg = hm_pfn_page(ph, pfn);

	if (hm_likely(hm_load_relaxed(&pg->flags) & (PG_HEAD | PG_TAIL)))
		return pfn & ~((1u << hm_load_relaxed(&pg->order)) - 1);
	return hm_folio_head_unmarked(ph, pfn);
}
void hm_folio_add_map(struct hm_mm *mm, uint32_t pfn, unsigned level);
/* Fork: one PTE map of each page @pfn[0..nr), in one step for each run of
 * consecutive pages of one folio. Unlike hm_folio_add_map, the caller adds
 * the leaves to nr_leaf[0] (once per table, not once per page). */
void hm_folio_add_pte_maps(struct hm_mm *mm, const uint32_t *pfn, unsigned nr);
/* Take one leaf's mapping away. UNMAPPED: the folio has no mapping left
 * (the caller frees it after a grace period). Otherwise, with @pin, if
 * another mm maps it the folio is pinned in the same step (hm_pin_slot; see
 * phys.h) and PINNED returned: the caller hands the pin to a gather. */
enum hm_unmapped { HM_FOLIO_MAPPED, HM_FOLIO_PINNED, HM_FOLIO_UNMAPPED };
/* *head: the head of the folio the count was taken from, looked up under
 * its lock (a folio split may have changed it since the caller looked):
 * what the caller gathers. A large folio left partly mapped is queued for
 * the deferred split, unless @run_left: then the caller is taking a run of
 * PTEs of the folio, *run_left is set, and the caller queues it at the end
 * of the run with hm_folio_defer_partial (a run that unmaps a folio whole
 * never queues it, as the kernel decides per batch of PTEs). */
enum hm_unmapped hm_folio_remove_map(struct hm_mm *mm, uint32_t pfn, unsigned level, bool pin,
				     uint32_t *head, bool *run_left);
/* Queue the folio of @pfn as partly mapped if it is still mapped. Context:
 * the lock of a table that mapped @pfn, before the gather is flushed. */
void hm_folio_defer_partial(struct hm_system *sys, uint32_t pfn);
/* Map, for @mm, the page @pfn of a swap-cache folio that holds @slot, as a
 * leaf of @level (0, or 1 for a whole 2 MiB folio): count the mapping if
 * the folio still holds the slot, is mapped and is not isolated. Context:
 * the entry's table lock, inside an RCU read section (the folio may be on
 * its way out). */
bool hm_folio_map_cached(struct hm_mm *mm, uint32_t pfn, unsigned level, uint64_t slot);
/* Does mm @id alone map the (still mapped) folio? Context: the folio lock. */
bool hm_folio_alone_locked(const struct hm_page *h, uint32_t id);
/* A leaf of @level at @pfn becomes 512 leaves of @level - 1. */
void hm_folio_split_map(struct hm_mm *mm, uint32_t pfn, unsigned level);
/* Mappings of the page @pfn in all mms (hm_query's mapcount); 0 for the
 * huge zero page, whose mappings are not counted. */
unsigned hm_page_mapcount(struct hm_system *sys, uint32_t pfn);
/* The copy-on-write decision for the leaf of @level at @pfn: reuse in place,
 * copy, or reuse once the pins of unmaps in flight are gone (wait for the
 * RCU callbacks, then decide again). Anything but HM_COPY means the leaf is
 * the only mapping of what it maps: read under the folio lock, so exact for
 * any number of mms. Context: the leaf's table lock, or mmap_lock (query). */
enum hm_reuse { HM_REUSE, HM_COPY, HM_REUSE_LATER };
/* HM_COPY for the huge zero page: it is never anyone's alone. */
enum hm_reuse hm_leaf_reuse(struct hm_mm *mm, uint32_t pfn, unsigned level);

/* Lock the folio that holds @pfn: its head (*head) is looked up again
 * under the lock, as a folio split may move it. Returns the lock held. */
hm_spin_t *hm_lock_folio_of(struct hm_system *sys, uint32_t pfn, uint32_t *head);

/*
 * folio locks (innermost after the ptls). One lock serves the 16 frames of
 * an aligned group, and the groups are hashed over the locks. A CPU's frame
 * cache hands out runs of adjacent frames, so a thread mostly takes locks
 * that the other CPU does not (hashing each frame over all locks made
 * nearly every lock a line written last by the other CPU). And fork, which
 * goes through the pages of a table in order, takes one lock for 16 4 KiB
 * folios, not 16 (hm_folio_add_pte_maps): a locked compare-and-swap per
 * page was a fifth of its time. Nobody holds two folio locks but a folio
 * split, which takes them all, so a coarser lock cannot deadlock.
 */
#define HM_FOLIO_LOCK_GROUP 16u
static inline hm_spin_t *hm_folio_lock(struct hm_system *sys, uint32_t head)
{
	uint32_t group = head / HM_FOLIO_LOCK_GROUP;

	return &sys->folio_locks[(group * 0x9e3779b1u) >> (32 - __builtin_ctz(HM_FOLIO_LOCKS))];
}

/* 512 leaves of @level - 1 over the chunk at @pfn become one
 * leaf of @level (the inverse of hm_folio_split_map); false if the folio
 * is smaller than that now. Context: the leaf's table lock. */
bool hm_folio_refold_map(struct hm_mm *mm, uint32_t pfn, unsigned level);

#endif /* HM_MM_FOLIO_H */
