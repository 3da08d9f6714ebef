/* SPDX-License-Identifier: MIT */
/*
 * RCU for hugemm: liburcu's bulletproof flavour, which registers reader
 * threads by itself (our callers' threads are not ours to register).
 *
 * ThreadSanitizer does not know liburcu's grace periods. We tell it: every
 * read section ends with a release on one sync address, and whatever runs
 * after a grace period (synchronize, or a call_rcu callback) starts with an
 * acquire on it; callbacks end with a release that rcu_barrier's caller
 * acquires. Compiled only under SAN=thread.
 */
#ifndef HM_PGTABLE_RCU_H
#define HM_PGTABLE_RCU_H

#include <urcu-bp.h>

#include "../base/lock.h"

#if defined(__SANITIZE_THREAD__)
#define HM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HM_TSAN 1
#endif
#endif

#ifdef HM_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char hm_rcu_tsan_sync;
#define hm_tsan_gp_release() __tsan_release(&hm_rcu_tsan_sync)
#define hm_tsan_gp_acquire() __tsan_acquire(&hm_rcu_tsan_sync)
#else
#define hm_tsan_gp_release() ((void)0)
#define hm_tsan_gp_acquire() ((void)0)
#endif

static inline void hm_rcu_read_lock(void) { urcu_bp_read_lock(); }

static inline void hm_rcu_read_unlock(void)
{
	hm_tsan_gp_release();
	urcu_bp_read_unlock();
}

/* Must not: be called inside a read section. */
static inline void hm_rcu_synchronize(void)
{
	hm_might_sleep();
	urcu_bp_synchronize_rcu();
	hm_tsan_gp_acquire();
}

/* Queue @fn to run after a grace period. What the caller did before
 * happens before the callback (liburcu's queue orders it; TSan is told). */
static inline void hm_rcu_call(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
	hm_might_sleep();
	hm_tsan_gp_release();
	urcu_bp_call_rcu(head, fn);
}

/* Wait for every callback queued so far. Must not: be called inside a read
 * section or from a callback. Callbacks end with hm_tsan_gp_release(), so
 * what they did happens before our return. */
static inline void hm_rcu_barrier(void)
{
	hm_might_sleep();
	urcu_bp_barrier();
	hm_tsan_gp_acquire();
}

#endif /* HM_PGTABLE_RCU_H */
