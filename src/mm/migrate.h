/* SPDX-License-Identifier: MIT */
/*
 * Moving folios to other frames: migration (migrate.c), hm_migrate over a
 * range (migrate_range.c), direct compaction (compact.c).
 */
#ifndef HM_MM_MIGRATE_H
#define HM_MM_MIGRATE_H

#include "types.h"

/*
 * compact.c — direct compaction (see there and docs/internals.md). Make a
 * free block of @order (9 or 18) on @node by migrating the movable folios
 * out of the best candidate block, then allocate it (HM_PFN_NONE if it
 * cannot). Counts compact_stall, compact_success, compact_fail,
 * compact_migrate_scanned. Context: as hm_migrate_folios: no spinlock, no
 * RCU read section, the caller's own mmap_locks named with
 * hm_reclaim_enter. Inside hm_fault's first pass it does not run (it waits
 * for grace periods) but asks for the retry, as hm_ptcache_drain does.
 */
uint32_t hm_compact_alloc(struct hm_system *sys, unsigned node, unsigned order);

/*
 * migrate.c — moving folios to other frames (see there).
 */
enum { HM_MR_SYSCALL, HM_MR_COMPACTION };
/* Where a migrating folio's new frames come from. */
struct hm_migrate_ctl {
	unsigned node;	/* target node */
	/* NULL: the normal folio allocation on `node` (HM_ALLOC_THISNODE).
	 * Compaction passes one that keeps out of the block it empties. It
	 * returns a block of 2^order frames from hm_alloc_pages (descriptors
	 * reset), or HM_PFN_NONE; migration makes it the folio. */
	uint32_t (*alloc)(struct hm_system *sys, unsigned order, void *arg);
	void *arg;
	unsigned reason;	/* HM_MR_SYSCALL, HM_MR_COMPACTION (stats) */
};
/* Move the folios whose heads are heads[0..n) (candidates: each is
 * isolated here first, skipped if it cannot be: pinned, isolated by
 * someone else, no longer a folio head, huge zero page). Counts
 * pgmigrate_success/fail. *moved = folios moved. 0, or -ENOMEM when a
 * target could not be allocated (what moved stays moved).
 * Context: no spinlock, no RCU read section; the caller's own
 * mmap_locks named with hm_reclaim_enter (other mappers are trylocked).
 * Returns -EAGAIN if a mapper was busy, or a folio to split was pinned or
 * taken by reclaim meanwhile, and nothing else failed (caller drops its
 * locks and retries). */
int hm_migrate_folios(struct hm_system *sys, const uint32_t *heads, unsigned n,
		      const struct hm_migrate_ctl *ctl, unsigned *moved);
/* hm_migrate_folios for folios the caller isolated already
 * (hm_folio_isolate_migrate, inside the RCU read section in which it found
 * them mapped): each is moved or given back, whatever the result.
 * *left: some folio (or split piece: *moved counts those too) is still
 * mapped where it was, e.g. pinned, and may move on a second look after a
 * grace period; folios that were unmapped meanwhile do not count. */
int hm_migrate_isolated(struct hm_system *sys, const uint32_t *heads, unsigned n,
			const struct hm_migrate_ctl *ctl, unsigned *moved, bool *left);
/* The normal migration target (ctl->alloc NULL): a block of 2^@order frames
 * on @node only, never out of the swap-in reserve. Context: no spinlock. */
uint32_t hm_migrate_alloc_node(struct hm_system *sys, unsigned node, unsigned order);
/* Wait until the entry at @va in @mm is no longer the migration entry @e.
 * Context: no spinlock, no RCU read section; mmap_lock held or not. */
void hm_migration_wait(struct hm_mm *mm, uint64_t va, hm_pte_t e);

#endif /* HM_MM_MIGRATE_H */
