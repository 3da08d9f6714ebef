/* SPDX-License-Identifier: MIT */
/*
 * Per-CPU data: the order-0 frame caches (phys/buddy.c) and the counters a
 * fault writes (mm/types.h, mm/stat.h). A thread indexes them by the CPU it runs on, so
 * that two threads on two CPUs write no cache line in common, as the
 * kernel's per-CPU variables. Unlike the kernel we cannot stop preemption:
 * a thread may move to another CPU between looking its CPU up and writing,
 * so a per-CPU cache has its own (nearly always uncontended) lock and a
 * per-CPU counter is written atomically. Both stay correct when two threads
 * share a slot; they are only slower then.
 */
#ifndef HM_CPU_H
#define HM_CPU_H

#include "base.h"

/* glibc declares it only under _GNU_SOURCE, which must come before any
 * header: declared here instead. */
extern int sched_getcpu(void);

/*
 * glibc 2.35+ registers every thread's rseq area, in which the kernel
 * keeps cpu_id current, at __rseq_offset from the thread pointer:
 * sched_getcpu() reads it too, but as a call through the PLT, and a 4 KiB
 * fault looks its CPU up 7-10 times (the lock's reader count, the frame
 * cache, each counter): read inline, a lookup is two loads. Where the
 * registration failed (__rseq_size 0, or cpu_id negative) the call.
 */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35)) && \
	(defined(__x86_64__) || defined(__aarch64__))
#include <sys/rseq.h>
#define HM_HAVE_RSEQ 1
#endif

static inline int hm_getcpu(void)
{
#ifdef HM_HAVE_RSEQ
	if (hm_likely(__rseq_size)) {
		const struct rseq *r = (const struct rseq *)(const void *)
			((const char *)__builtin_thread_pointer() + __rseq_offset);
		int c = (int)__atomic_load_n(&r->cpu_id, __ATOMIC_RELAXED);

		if (hm_likely(c >= 0))
			return c;
	}
#endif
	return sched_getcpu();
}

/* Slots per per-CPU array: the CPUs configured, at most HM_MAX_CPUS (more
 * CPUs share slots). Constant after the first call. */
#define HM_MAX_CPUS 1024u
unsigned hm_nr_cpus(void);

/* The slot of the CPU this thread runs on now, < hm_nr_cpus(). */
static inline unsigned hm_this_cpu(unsigned nr_cpus)
{
	int c = hm_getcpu();

	return hm_likely((unsigned)c < nr_cpus) ? (unsigned)c : (unsigned)(c < 0 ? 0 : c) % nr_cpus;
}

#endif /* HM_CPU_H */
