/* SPDX-License-Identifier: MIT */
/*
 * Per-thread counters (tcount.c): a set of counters whose hot increments
 * are a plain load and store to a block that only the calling thread
 * writes. No locked instruction, no line shared with another thread: a
 * fault counts four things, and four locked adds to per-CPU counters were
 * ~40 % of the locked instructions of a 4 KiB fault.
 *
 *   value(i) = shared[i] + retired[i] + sum over live blocks b of b->v[i]
 *
 * A thread gets its block for a set in hm_tcount_prepare(), which may
 * allocate and so is called where that is allowed (a fault's entry, before
 * any spinlock). An increment without a prepared block, or whose block
 * could not be allocated, adds to shared[] atomically: slower, never
 * wrong. A thread's blocks are folded into retired[] when it exits; a
 * set's blocks are freed with the set.
 *
 * tc_lock (a spinlock, innermost: nothing is taken or allocated under it)
 * guards every set's block list and retired[], and each thread's list.
 *
 * Like the rest of the library, the counters are not for a child of
 * fork(2) of a process whose other threads counted: their blocks would
 * name threads the child does not have.
 */
#ifndef HM_TCOUNT_H
#define HM_TCOUNT_H

#include "lock.h"

struct hm_tcblock;

struct hm_tcount {
	uint64_t id;			/* unique, never reused; constant */
	unsigned n;			/* counters; constant */
	unsigned slot;			/* its hm_tc_cache slot; constant */
	uint64_t *shared;		/* [n], the owner's; atomic */
	uint64_t *retired;		/* [n], the owner's; tc_lock */
	struct hm_tcblock *blocks;	/* tc_lock */
};

/* The calling thread's blocks of the sets it used last: slot 0 for a set
 * that has it to itself (the system's), slots 1..HM_TC_CACHE-1 by id for the
 * others (mms), so that a fault in any mm keeps both of its sets cached. */
#define HM_TC_CACHE 4
struct hm_tc_slot {
	uint64_t id;	/* 0: empty */
	uint64_t *v;
};
extern __thread struct hm_tc_slot hm_tc_cache[HM_TC_CACHE] __attribute__((tls_model("initial-exec")));

/* A set of @n counters in the caller's zeroed arrays @shared[n] (fields
 * that rarer paths also add to atomically themselves) and @retired[n].
 * @own_slot: the set has cache slot 0 to itself (one such set in use per
 * thread at a time, or they take turns there). */
void hm_tcount_init(struct hm_tcount *s, uint64_t *shared, uint64_t *retired, unsigned n, bool own_slot);
/* Frees the set and every thread's block of it. Must not: be called while
 * another thread may count in it. */
void hm_tcount_destroy(struct hm_tcount *s);

void hm_tcount_prepare_slow(struct hm_tcount *s);

/* Give the calling thread its block of @s, if it has none and one can be
 * allocated. Context: may allocate; no spinlock held. */
static inline void hm_tcount_prepare(struct hm_tcount *s)
{
	if (hm_unlikely(hm_tc_cache[s->slot].id != s->id))
		hm_tcount_prepare_slow(s);
}

/* Counter @i of @s changes by @d (modulo 2^64). Context: any. */
static inline void hm_tcount_add(struct hm_tcount *s, unsigned i, uint64_t d)
{
	struct hm_tc_slot *e = &hm_tc_cache[s->slot];

	hm_assert_int(i < s->n);
	if (hm_likely(e->id == s->id))
		hm_store_relaxed(&e->v[i], hm_load_relaxed(&e->v[i]) + d);
	else
		hm_add(&s->shared[i], d);
}

/* Counter @i: exact while nothing changes it. Context: any (takes
 * tc_lock). */
uint64_t hm_tcount_sum(struct hm_tcount *s, unsigned i);

/* Threads with a block of @s (tests). Context: any (takes tc_lock). */
unsigned hm_tcount_nr_blocks(struct hm_tcount *s);

#endif /* HM_TCOUNT_H */
