/* SPDX-License-Identifier: MIT */
/*
 * The threaded mode (threads.c, threads_ops.c). One shared address space
 * holds a region of huge pages; its 4 KiB slots are spread over the
 * region's 2 MiB chunks, and each slot belongs to one thread:
 *
 *  - NW writers each write cookies (their id and a sequence number) into
 *    their own slots and check every one they read back;
 *  - the disruptor owns the other slots and unmaps, remaps, protects and
 *    zaps them, splits huge leaves anywhere in the region, and now and
 *    then moves everyone to a fresh region, so that huge pages keep coming;
 *  - the forker forks the shared address space and checks isolation: the
 *    child's cookies are ones that were written before the fork and never
 *    change afterwards, and the child's own cookies never show in the
 *    parent (the writers would see them).
 *
 * The main thread runs hm_check meanwhile. No check depends on timing.
 */
#ifndef HM_FUZZ_THREADS_H
#define HM_FUZZ_THREADS_H

#include <pthread.h>

#include "fuzz.h"

#define TH_NW 3			/* cookie writers; slot owner NW = the disruptor */
#define TH_SLOTS_PER_CHUNK 128
#define TH_MAXSLOT (64 * TH_SLOTS_PER_CHUNK)	/* 64 chunks in a 1 GiB region */
#define TH_MAGIC_PARENT 0x5eedc00c1e000001ull
#define TH_MAGIC_CHILD 0x5eedc00c1e00c41dull
#define TH_COPIES 4		/* a cookie is written 4 times in a row: 128 bytes */

struct th_cookie {
	uint64_t magic, owner, seq, sum;
};

struct th_region {
	uint64_t base, len;
	unsigned nchunk;
	uint64_t nslot;
};

struct th_ctx;

struct th_thread {
	struct th_ctx *x;
	pthread_t th;
	unsigned id;
	uint64_t rng;
	uint64_t epoch;		/* the region this thread has moved to; atomic */
	uint64_t issued;	/* last sequence number handed out; atomic */
	uint64_t *last;		/* per own slot: last seq written, 0 = none */
	unsigned long passed, failed;
	unsigned long writes, reads, ops;
};

struct th_ctx {
	const struct fz_threads_opts *o;
	struct hm_system *sys;
	struct hm_mm *mm;
	struct th_region reg[2];	/* current = reg[epoch & 1] */
	uint64_t epoch;			/* atomic */
	uint64_t *done;			/* [epoch & 1][slot]: last seq whose write
					 * returned; atomic */
	int stop;			/* atomic */
	unsigned long printed;		/* failure messages printed; atomic */
	struct th_thread w[TH_NW], dis, fork;
	unsigned long forks, child_checks, rotations, splits, migrations;
	unsigned long torn_tolerated;	/* known: children seeing half a write */
};

uint64_t th_rnd(struct th_thread *t);
uint64_t th_slot_addr(const struct th_region *r, uint64_t k);
void th_cookie(struct th_cookie *c, uint64_t magic, uint64_t owner, uint64_t seq);
bool th_cookie_ok(const struct th_cookie *c);
void th_fail(struct th_thread *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define TH_CHECK(t, cond, ...)						\
	do {								\
		if (cond)						\
			(t)->passed++;					\
		else							\
			th_fail((t), __VA_ARGS__);			\
	} while (0)
/* Write / read one slot's cookie block. */
int th_put(struct hm_mm *mm, uint64_t va, uint64_t magic, uint64_t owner, uint64_t seq);
int th_get(struct hm_mm *mm, uint64_t va, struct th_cookie *out, bool *torn);
void th_move(struct th_thread *t);	/* to the current region, if it changed */
int th_region_new(struct th_ctx *x, struct th_region *r);

void *th_disruptor(void *arg);
void *th_forker(void *arg);

#endif /* HM_FUZZ_THREADS_H */
