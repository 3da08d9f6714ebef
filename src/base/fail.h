/* SPDX-License-Identifier: MIT */
/*
 * Fault injection: every allocation hugemm makes (frames, page tables,
 * bookkeeping memory) passes one failpoint per system. The fault tests arm
 * it to fail the Nth allocation from now, once (transient) or that one and
 * every later one (persistent).
 */
#ifndef HM_FAIL_H
#define HM_FAIL_H

#include "base.h"

/* All atomic: allocations on any thread pass the failpoint, and tests read
 * hits (hm__fail_hits) while they run. */
struct hm_fail {
	long countdown;		/* > 0: the allocation that brings it to 0 fails */
	bool persistent;	/* keep failing after the first hit */
	long hits;		/* allocations failed so far */
};

bool hm_fail_hit(struct hm_fail *f);
void *hm_malloc(struct hm_fail *f, size_t size);
void *hm_calloc(struct hm_fail *f, size_t n, size_t size);
void *hm_realloc(struct hm_fail *f, void *p, size_t size);

static inline void hm_fail_arm(struct hm_fail *f, long nth, bool persistent)
{
	__atomic_store_n(&f->persistent, persistent, __ATOMIC_RELAXED);
	__atomic_store_n(&f->hits, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&f->countdown, nth, __ATOMIC_RELAXED);
}

#endif /* HM_FAIL_H */
