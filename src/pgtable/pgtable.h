/* SPDX-License-Identifier: MIT */
/*
 * pgtable: page-table pages (each with its own descriptor, ptdesc.h), the
 * cache they come from, deposits, RCU-deferred freeing, and walkers.
 *
 * Invariants:
 *  - A table page is PG_TABLE from hm_pt_alloc() to hm_pt_free(), and only
 *    then; free tables are all zero, so allocation never zeroes.
 *  - cache: nr_free_pages contribution = the slots of its empty blocks
 *    (hm_ptcache_spare: a shrink gives them back for data; the free slots
 *    of a block in use are for tables only); for every 2 MiB block,
 *    blk_used = slots that are PG_TABLE or PG_PT_PENDING.
 *  - A carved block has its struct hm_ptblock in blk_desc (nr_blocks of
 *    them); each of its frames is PG_PT_SLOT and points to its own ptdesc
 *    there, which points back. A table outside blocks has a ptdesc of its
 *    own (block NULL).
 *  - nr_tables = tables allocated and not yet freed (deposits included);
 *    nr_deposited = tables that sit on some deposit list.
 *  - Table blocks hold tables only (never data frames); with
 *    HM_PROTECT_TABLES their memory is written only by the helpers of
 *    entry.h (protect.h).
 *  - Deposit lists are single-linked through the ptdescs' deposit_next; a
 *    table's own list starts at its deposit_head. A PMD table deposited
 *    under a PUD leaf keeps its 512 PTE tables on its own list while it is
 *    itself on its PUD table's list: the two fields never overlap.
 */
#ifndef HM_PGTABLE_H
#define HM_PGTABLE_H

#include "../phys/phys.h"
#include "entry.h"
#include "ptdesc.h"
#include "rcu.h"

struct hm_ptcache {
	struct hm_phys *ph;
	pthread_mutex_t lock;
	uint32_t free_head;	/* free slots, lru-linked; lock */
	uint64_t nr_free_slots;	/* written under lock, atomically: statistics
				 * read it without */
	uint64_t nr_empty_blocks; /* blocks with no slot in use; written under
				 * lock, atomically: statistics read it */
	uint16_t *blk_used;	/* per 2 MiB block of the arena; lock */
	uint64_t blk_used_len;	/* bytes mapped for it; constant */
	struct hm_ptblock **blk_desc; /* per 2 MiB block: its ptdescs while
				 * carved, else NULL; lock */
	uint64_t blk_desc_len;	/* bytes mapped for it; constant */
	struct hm_ptblock *blocks; /* carved blocks, linked; lock */
	uint64_t nr_blocks;	/* their number; lock */
	uint64_t nr_tables;	/* atomic */
	uint64_t nr_pending;	/* tables waiting for a grace period; lock
				 * (atomic, for statistics) */
	uint64_t nr_pending_frames; /* folio frames waiting for a grace period;
				 * lock (atomic, for statistics) */
	uint64_t nr_deposited;	/* atomic */
	uint64_t nr_single;	/* tables outside blocks (fallback); atomic */
	bool lazy;		/* deposits are made at split time */
	struct hm_ptp *prot;	/* HM_PROTECT_TABLES, or NULL; constant */
};

int hm_ptcache_init(struct hm_ptcache *pc, struct hm_phys *ph, bool lazy);
void hm_ptcache_fini(struct hm_ptcache *pc);
/* Give every empty 2 MiB block back to the buddy allocator: called when a
 * data allocation fails. Returns the frames released. */
uint64_t hm_ptcache_shrink(struct hm_ptcache *pc);
/* Frames the cache holds that a shrink would free for data: its empty
 * blocks (a racy read, for statistics and the swap-in reserve). */
static inline uint64_t hm_ptcache_spare(struct hm_ptcache *pc)
{
	return hm_load_relaxed(&pc->nr_empty_blocks) << HM_PMD_ORDER;
}

/* Write-protect every table of the cache from now on (HM_PROTECT_TABLES,
 * protect.h): 0 or -ENOMEM. Context: right after hm_ptcache_init. */
int hm_ptcache_protect(struct hm_ptcache *pc);

/* Free data frames (a folio's) to the buddy allocator. Table blocks never
 * hold data: a free slot is not lent out when memory runs short. */
void hm_free_frames(struct hm_ptcache *pc, uint32_t pfn, unsigned order);
void hm_free_frames_locked(struct hm_ptcache *pc, uint32_t pfn, unsigned order);

/* A zeroed table of @level owned by mm @owner, or HM_PFN_NONE. */
uint32_t hm_pt_alloc(struct hm_ptcache *pc, unsigned level, uint64_t owner);
/* The same from a free slot of a block that already holds tables, which
 * no data allocation could have used (not in nr_free_pages), or
 * HM_PFN_NONE: never carves a block or takes a frame. */
uint32_t hm_pt_alloc_slot(struct hm_ptcache *pc, unsigned level, uint64_t owner);
/* Free a table that no walker can reach (it was never published, or a
 * grace period has passed since it was unlinked). It must be all zero and
 * hold no deposits. */
void hm_pt_free(struct hm_ptcache *pc, uint32_t pfn);
void hm_pt_free_locked(struct hm_ptcache *pc, uint32_t pfn);

/* The entries of table @pfn. Stores go through the helpers of entry.h. */
static inline hm_pte_t *hm_pt_entries(struct hm_phys *ph, uint32_t pfn)
{
	hm_ptp_read_prepare();
	return (hm_pte_t *)hm_pfn_ptr(ph, pfn);
}

/*
 * Deposit @table on @holder's list / withdraw the last one deposited.
 * Context: the holder's lock held (its ptl for a PMD table,
 * mm->page_table_lock for a PUD table), or the holder not yet published.
 * Withdraw returns HM_PFN_NONE on an empty list (in eager mode a huge
 * leaf's list is never empty).
 */
void hm_pt_deposit(struct hm_ptcache *pc, uint32_t holder, uint32_t table);
uint32_t hm_pt_withdraw(struct hm_ptcache *pc, uint32_t holder);

/*
 * Walk from @root (a table of level @top) towards @va without locks.
 * Stops at the first entry that is not a link to a lower table (none, a
 * leaf, PROT_NONE, swap) or at level 0; returns a pointer to that entry and
 * its level in *level.
 * Context: inside hm_rcu_read_lock(), or holding the mm's mmap_lock.
 */
hm_pte_t *hm_pt_walk(struct hm_phys *ph, uint32_t root, unsigned top, uint64_t va, unsigned *level);

/*
 * hm_pt_walk, also recording each level it visits: trace[l] for l from top
 * down to *level is the entry's slot and the value read there (the value
 * the walk went on from, so that the levels agree with each other even if
 * a slot changes at once). Entries below *level are not written.
 * Context: as hm_pt_walk.
 */
struct hm_pt_step {
	hm_pte_t *slot;
	hm_pte_t e;
};
hm_pte_t *hm_pt_walk_trace(struct hm_phys *ph, uint32_t root, unsigned top, uint64_t va, unsigned *level,
			   struct hm_pt_step *trace);

/*
 * mmu_gather: collects what an operation takes out of the tables, and frees
 * it once no walker and no TLB entry can still reach it. Nobody waits for
 * that: the TLB generation is bumped (every translation cached before is
 * stale from then on), and the batch goes to call_rcu, whose callback frees
 * the tables and folios and drops the pins after a grace period (which
 * waits for every access already under way).
 *
 *   hm_gather_init      before changing any entry
 *   hm_gather_tlb       a present entry was changed or cleared: the flush
 *                       must bump the TLB generation even if nothing is
 *                       to be freed
 *   hm_gather_room      is there room for @n more entries? (under locks)
 *   hm_gather_table     a table was unlinked from the tree (or withdrawn
 *                       from a deposit list)
 *   hm_gather_folio     a folio lost its last mapping
 *   hm_gather_pin       a folio lost a mapping but is mapped elsewhere; the
 *                       caller pinned it (hm_pin_slot) under the folio lock
 *   hm_gather_next      out of room: flush what was gathered and go on.
 *                       Context: no spinlock held.
 *   hm_gather_finish    flush. Context: no spinlock held.
 *
 * Gathering never allocates and never sleeps, so it runs under the table
 * locks; the batch is allocated by init/next, outside them. When it cannot
 * be, a batch on the stack is used and flushed synchronously (tables then go
 * one by one through their own rcu_head).
 *
 * Accounting: tables and frames queued and not yet freed are counted in
 * pc->nr_pending and pc->nr_pending_frames. The frames count as free in
 * nr_free_pages, the tables do not (they go back to slots that hold only
 * tables); an allocation that finds nothing free waits for both
 * (hm_ptcache_drain) before it fails, since a table's return may empty
 * its block.
 */
#define HM_GATHER_MAX 1000u	/* entries per batch: a PUD leaf needs 514 */

struct hm_gather_batch {
	struct rcu_head rcu;
	struct hm_ptcache *pc;
	uint32_t n;
	uint32_t e[HM_GATHER_MAX];	/* pfn | kind << 30 */
};

struct hm_gather {
	struct hm_ptcache *pc;
	uint64_t *tlb_gen;
	struct hm_gather_batch *b;	/* heap batch, or &local */
	struct hm_gather_batch local;	/* when no batch can be allocated */
	bool tlb;			/* entries changed since the last flush */
};

void hm_gather_init(struct hm_gather *g, struct hm_ptcache *pc, uint64_t *tlb_gen);
/* A gather with no TLB of its own to flush, only a grace period to wait
 * for: what it frees was unmapped earlier (a folio split frees parts that
 * unmaps left), or its unmapper bumped each mm's TLB generation itself
 * before the flush. */
void hm_gather_init_rcu(struct hm_gather *g, struct hm_ptcache *pc);
static inline bool hm_gather_room(const struct hm_gather *g, unsigned n)
{
	return g->b->n + n <= HM_GATHER_MAX;
}
static inline void hm_gather_tlb(struct hm_gather *g) { g->tlb = true; }
void hm_gather_table(struct hm_gather *g, uint32_t pfn);
void hm_gather_folio(struct hm_gather *g, uint32_t head);
void hm_gather_pin(struct hm_gather *g, uint32_t head);
void hm_gather_next(struct hm_gather *g);
void hm_gather_finish(struct hm_gather *g);

/* Wait for every table and frame queued for freeing: true if there were
 * any (an allocation that failed may try again). Context: no spinlock, not
 * inside an RCU read section. */
bool hm_ptcache_drain(struct hm_ptcache *pc);
/* Between these, hm_ptcache_drain does not wait but notes that it would
 * have (the allocation fails): for a fault under mmap_lock, which drops the
 * lock, waits and tries again instead. end() returns whether a drain was
 * wanted. */
void hm_drain_defer_begin(void);
bool hm_drain_defer_end(void);
bool hm_drain_was_wanted(void);	/* so far, inside begin/end */
/* Inside begin/end: true, and the caller gives up on something that would
 * wait for a grace period, asking for the same retry as a drain would.
 * Outside: false, go on and wait. */
bool hm_drain_defer_wait(void);

#endif /* HM_PGTABLE_H */
