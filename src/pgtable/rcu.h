/* SPDX-License-Identifier: MIT */
/*
 * RCU for hugemm: liburcu's bulletproof flavour, which registers reader
 * threads by itself (our callers' threads are not ours to register).
 *
 * The read side is liburcu's inline one (urcu/static/urcu-bp.h, which its
 * authors keep under LGPL's ten-line limit so that non-LGPL code may inline
 * it), not the library call: hm_read/hm_write enter a read section on every
 * access, and the call (through __tls_get_addr inside the library) was a
 * third of a TLB hit. It is restated below with the header's own macros,
 * reaching the reader's counter as the unsigned long it is: through
 * struct urcu_bp_reader, which claims 128-byte alignment that liburcu
 * 0.13's registry does not give it, UBSan's alignment check fails on the
 * header's code. Inline, lock is: load this thread's reader pointer,
 * register if NULL (once per thread), load its counter, store the global
 * phase into it; unlock: one load and one store. Both are ordered against
 * the section by urcu_bp_smp_mb_slave(), a compiler barrier when the kernel
 * has membarrier(PRIVATE_EXPEDITED) (liburcu 0.13 probes it at start-up and
 * its grace periods then issue the barrier on the readers' behalf), else
 * an mfence. Grace periods are the library's unchanged and wait for these
 * sections exactly as for the called ones: the same counter, the same
 * registry.
 *
 * The reader pointer is declared again as initial-exec TLS (as
 * pgtable/gather.c does with its own): the header's general-dynamic model
 * makes every access in a -fPIC object a __tls_get_addr call, which the
 * linker relaxes away in an executable but only after the compiler has
 * planned the hit path around a call (saved registers). The cost: when
 * libhugemm.so is dlopen()ed, liburcu-bp's TLS comes from glibc's static
 * TLS surplus, which such small blocks are what it is for.
 *
 * Why not another flavour: QSBR would need every caller's thread to
 * announce quiescent states, and memb needs explicit registration and
 * unregistration of threads hugemm does not own; bp registers on first use
 * and reaps exited threads itself, and inline costs the same few
 * instructions as memb's read side.
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
#include <stddef.h>
#include <urcu/static/urcu-bp.h>	/* the inline read side, see above */

/* The thread's reader, as initial-exec TLS: see above. (Without
 * CONFIG_RCU_TLS, liburcu reaches it through a function instead.) */
#ifdef CONFIG_RCU_TLS
extern DECLARE_URCU_TLS(struct urcu_bp_reader *, urcu_bp_reader)
	__attribute__((tls_model("initial-exec")));
#endif

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
/* The reader counter's accesses are liburcu's protocol, which TSan cannot
 * follow: its registry hands an exited thread's counter to a new thread
 * inside the uninstrumented library, so TSan took the new thread's first
 * load of it for a race with the old one's last store (a thread-churning
 * test showed it). They are left uninstrumented, as they were when they
 * were library calls; the sections' ordering is the release above. */
#define HM_URCU_READ_SIDE __attribute__((no_sanitize_thread))
#else
#define hm_tsan_gp_release() ((void)0)
#define hm_tsan_gp_acquire() ((void)0)
#define HM_URCU_READ_SIDE
#endif

_Static_assert(offsetof(struct urcu_bp_reader, ctr) == 0, "the reader's counter leads");

/* This thread's reader counter; the thread is registered. */
static inline unsigned long *hm_rcu_ctr(void)
{
	return (unsigned long *)(void *)URCU_TLS(urcu_bp_reader);
}

/* _urcu_bp_read_lock after its registration check. */
HM_URCU_READ_SIDE static inline void hm_rcu_enter(unsigned long *ctr)
{
	cmm_barrier();	/* not reordered with a mutex before us */
	unsigned long tmp = *ctr;

	urcu_assert((tmp & URCU_BP_GP_CTR_NEST_MASK) != URCU_BP_GP_CTR_NEST_MASK);
	if (caa_likely(!(tmp & URCU_BP_GP_CTR_NEST_MASK))) {
		_CMM_STORE_SHARED(*ctr, _CMM_LOAD_SHARED(urcu_bp_gp.ctr));
		urcu_bp_smp_mb_slave();
	} else {
		_CMM_STORE_SHARED(*ctr, tmp + URCU_BP_GP_COUNT);
	}
}

static inline void hm_rcu_read_lock(void)
{
	if (caa_unlikely(!URCU_TLS(urcu_bp_reader)))
		urcu_bp_register();	/* the thread's first section */
	hm_rcu_enter(hm_rcu_ctr());
}

/* _urcu_bp_read_unlock */
HM_URCU_READ_SIDE static inline void hm_rcu_leave(unsigned long *ctr)
{
	unsigned long tmp = *ctr;

	urcu_assert(tmp & URCU_BP_GP_CTR_NEST_MASK);
	urcu_bp_smp_mb_slave();	/* the section's accesses before the store */
	_CMM_STORE_SHARED(*ctr, tmp - URCU_BP_GP_COUNT);
	cmm_barrier();
}

static inline void hm_rcu_read_unlock(void)
{
	hm_tsan_gp_release();
	hm_rcu_leave(hm_rcu_ctr());
}

/*
 * hm_rcu_read_lock() for a thread liburcu has registered already, else
 * false and no read section. It lets a hot path (a TLB hit) hold no call at
 * all, so that the compiler need not save registers for one. The thread's
 * first hm_rcu_read_lock() registers it.
 */
static inline bool hm_rcu_read_trylock(void)
{
	unsigned long *ctr = hm_rcu_ctr();

	if (caa_unlikely(!ctr))
		return false;
	hm_rcu_enter(ctr);
	return true;
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
