/* SPDX-License-Identifier: MIT */
/*
 * LRU lists and isolation (lru.c).
 */
#ifndef HM_MM_LRU_H
#define HM_MM_LRU_H

#include "types.h"

/*
 * lru.c — the active and inactive lists of folios and reclaim's hold on a
 * folio. A folio joins the inactive list when allocated and leaves it when
 * it is freed or isolated.
 *
 * Isolation: reclaim takes a folio off its list and sets PG_ISOLATED under
 * the folio lock, only if it is mapped and not pinned. From then on the
 * folio is reclaim's: its last unmap does not free it (reclaim does), and
 * it cannot be pinned. A pin (hm_folio_try_pin) refuses an isolated folio:
 * so a folio is either pinned or isolated, never both, which is what lets
 * a multi-page write and a copy-on-write read a folio outside its locks.
 */
void hm_lru_add(struct hm_system *sys, uint32_t head, bool active);
void hm_lru_del_locked(struct hm_system *sys, uint32_t head);	/* folio lock */
/* An order-0 folio's first mapping: onto the inactive list by way of this
 * CPU's add batch. Context: its folio lock. */
void hm_lru_add_new(struct hm_system *sys, uint32_t head);
/* The same for a new folio that no other thread can reach yet (its first
 * mapping, not yet in any table, as hm_folio_add_new_map), without the
 * folio lock. */
void hm_lru_add_fresh(struct hm_system *sys, uint32_t head);
/* Every CPU's add batch onto the lists. Context: no lru_lock, no batch lock. */
void hm_lru_drain_all(struct hm_system *sys);
/* Take up to @max folios off the end of list @active into @out, isolated.
 * Context: no spinlock. */
unsigned hm_lru_isolate(struct hm_system *sys, bool active, uint32_t *out, unsigned max);
/* Isolate a folio found mapped in a table; @alone_in non-NULL: only if
 * that mm alone maps it. Context: inside an RCU read section. */
bool hm_folio_isolate(struct hm_system *sys, uint32_t head, struct hm_mm *alone_in);
/* Isolate a folio for migration (any mapped folio that is not pinned,
 * huge ones mapped whole in lazy mode too). Context: inside an RCU read
 * section, @head a folio's head when looked at. */
bool hm_folio_isolate_migrate(struct hm_system *sys, uint32_t head);
/* Isolate, for migration, the folio headed by @pfn if it is on an LRU
 * list. @pfn may be any frame (compaction's scan of a block): whether it
 * heads a listed folio is decided under lru_lock from the list links, not
 * from a descriptor that a free may be resetting. Context: no spinlock,
 * not in an RCU read section. */
bool hm_folio_isolate_pfn(struct hm_system *sys, uint32_t pfn);
/* Isolate the swap-cache folio whose head is @pfn, if it still is one.
 * Context: inside an RCU read section (the frame came from the cache). */
bool hm_folio_isolate_cached(struct hm_system *sys, uint32_t pfn);
/* Give an isolated folio back: to the head of a list if still mapped, else
 * free it after a grace period (it lost its last mapping while isolated).
 * Context: no spinlock, not in an RCU read section. */
void hm_folio_putback(struct hm_system *sys, uint32_t head, bool active);
/* Pin the folio of the frame *head (a head when called; updated to the
 * folio's head now, which a split may have changed): false if isolated. */
bool hm_folio_try_pin(struct hm_system *sys, uint32_t *head);
/* Take a folio off whichever LRU list it is on: false if on none.
 * Context: its folio lock (a folio split). */
bool hm_lru_del_any(struct hm_system *sys, uint32_t head, bool *active);
void hm_folio_unpin(struct hm_system *sys, uint32_t head);

#endif /* HM_MM_LRU_H */
