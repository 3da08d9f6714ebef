/* SPDX-License-Identifier: MIT */
/*
 * ptdesc: what a page-table page needs beyond its frame descriptor, in a
 * descriptor of its own (the kernel's memdesc direction). The frame's
 * 64-byte struct hm_page keeps only the type tag (PG_TABLE, PG_PT_PENDING,
 * PG_PT_FREE, PG_PT_SLOT) and a pointer here, so that finding a table's
 * lock or level from its pfn is one load beyond the frame descriptor.
 *
 * Where the memory comes from: a 2 MiB table block (ptcache.c) gets one
 * struct hm_ptblock, 512 ptdescs in one allocation, when it is carved, and
 * gives it back when the block returns to the buddy allocator; a fault
 * that takes a slot allocates nothing. A table outside blocks (the
 * fallback when no block can be had) gets a ptdesc of its own. Either
 * allocation failing is an ordinary -ENOMEM.
 *
 * Lifetime: a block's ptdescs, free slots' included, live as long as the
 * block; a single table's as long as the table. A table unlinked from a
 * tree is freed only after a grace period (gather.c), and a block is
 * released only when its last slot is free, so a lock-free walker or a
 * late unlocker inside an RCU read section never reaches a freed ptdesc.
 *
 * Cost per table: 64 bytes here plus the 64-byte frame descriptor; a block
 * also carries its 64-byte header (and 512 ptdescs even while few slots
 * are used).
 */
#ifndef HM_PGTABLE_PTDESC_H
#define HM_PGTABLE_PTDESC_H

#include "../phys/phys.h"
#include "rcu.h"

struct hm_ptcache;
struct hm_ptblock;

struct hm_ptdesc {
	hm_spin_t ptl;		/* the table's split lock (PMD and PTE tables;
				 * level >= 2 tables use mm->page_table_lock) */
	uint8_t level;		/* the holder's lock, or the table's owner
				 * before it is published (allocation, a
				 * withdrawn deposit, fork's preallocation) */
	uint8_t spare[3];
	uint32_t pfn;		/* its frame; constant */
	uint32_t deposit_next;	/* link while deposited: the holder's lock */
	struct hm_ptblock *block; /* the block it came from, NULL outside
				 * blocks; constant */
	uint64_t owner;		/* id of the owning mm; as level */
	uint32_t deposit_head;	/* tables deposited for this table's huge
				 * leaves (its own lock, see pgtable.h) */
	uint32_t nr_deposited;	/* length of that list; as deposit_head */
	struct hm_ptcache *pc;	/* the cache it belongs to, for the RCU
				 * callback; constant */
	/* A table freed through its own rcu_head (gather.c, when no batch
	 * could be allocated). Apart from the ptl and the deposit links, which
	 * a late unlocker or a lock-free walker may still touch after the
	 * table is queued. */
	struct rcu_head rcu;
};

#define HM_PTDESC_END(f) (offsetof(struct hm_ptdesc, f) + sizeof(((struct hm_ptdesc *)0)->f))
_Static_assert(sizeof(struct hm_ptdesc) == 64, "a ptdesc is one cache line");
_Static_assert(HM_PTDESC_END(ptl) <= offsetof(struct hm_ptdesc, rcu) &&
	       HM_PTDESC_END(deposit_next) <= offsetof(struct hm_ptdesc, rcu) &&
	       HM_PTDESC_END(deposit_head) <= offsetof(struct hm_ptdesc, rcu) &&
	       HM_PTDESC_END(nr_deposited) <= offsetof(struct hm_ptdesc, rcu),
	       "a table's rcu_head shares no byte with its lock or deposit links");
_Static_assert(offsetof(struct hm_ptdesc, deposit_next) != offsetof(struct hm_ptdesc, deposit_head),
	       "a deposit link must never overlap the table's own deposit head");

/* A 2 MiB table block's ptdescs: desc[i] describes frame base + i. */
struct hm_ptblock {
	uint32_t base;		/* first frame of the block; constant */
	uint32_t spare;
	struct hm_ptblock *next, *prev;	/* the cache's carved blocks (for
				 * hm_check); the cache's lock */
	uint8_t spare2[40];	/* the ptdescs start on a cache line */
	struct hm_ptdesc desc[HM_PTRS];
};

_Static_assert(offsetof(struct hm_ptblock, desc) % 64 == 0, "ptdescs cache-line aligned in the block");

/* The ptdesc of a table (or a free or pending slot) at @pfn. */
static inline struct hm_ptdesc *hm_ptdesc(struct hm_phys *ph, uint32_t pfn)
{
	struct hm_ptdesc *d = hm_pfn_page(ph, pfn)->pt.desc;

	hm_assert_int(d && d->pfn == pfn);
	return d;
}

static inline unsigned hm_pt_level(struct hm_phys *ph, uint32_t pfn)
{
	return hm_ptdesc(ph, pfn)->level;
}

static inline uint64_t hm_pt_owner(struct hm_phys *ph, uint32_t pfn)
{
	return hm_ptdesc(ph, pfn)->owner;
}

/* The split lock in the table's ptdesc (meaningful for PMD and PTE tables:
 * see hm_mm_table_lock). */
static inline hm_spin_t *hm_pt_lock(struct hm_phys *ph, uint32_t pfn)
{
	return &hm_ptdesc(ph, pfn)->ptl;
}

/* Deposits on the table at @pfn (see pgtable.h): the first on its list and
 * how many; the next after the deposited table @t. Context: the table's
 * lock, or its holder's for a deposited one. */
static inline uint32_t hm_pt_deposits(struct hm_phys *ph, uint32_t pfn)
{
	return hm_ptdesc(ph, pfn)->deposit_head;
}

static inline uint32_t hm_pt_nr_deposited(struct hm_phys *ph, uint32_t pfn)
{
	return hm_ptdesc(ph, pfn)->nr_deposited;
}

static inline uint32_t hm_pt_deposit_next(struct hm_phys *ph, uint32_t t)
{
	return hm_ptdesc(ph, t)->deposit_next;
}

/* Give a table that is not published (a withdrawn deposit, a preallocated
 * one) the level and owner it is about to be linked with. */
static inline void hm_pt_set(struct hm_phys *ph, uint32_t pfn, unsigned level, uint64_t owner)
{
	struct hm_ptdesc *d = hm_ptdesc(ph, pfn);

	d->level = (uint8_t)level;
	d->owner = owner;
}

#endif /* HM_PGTABLE_PTDESC_H */
