/* SPDX-License-Identifier: MIT */
/*
 * Per-CPU data: the order-0 frame caches (phys/buddy.c) and the counters a
 * fault writes (mm/mm.h). A thread indexes them by the CPU it runs on, so
 * that two threads on two CPUs write no cache line in common, as the
 * kernel's per-CPU variables. Unlike the kernel we cannot stop preemption:
 * a thread may move to another CPU between looking its CPU up and writing,
 * so a per-CPU cache has its own (nearly always uncontended) lock and a
 * per-CPU counter is written atomically. Both stay correct when two threads
 * share a slot; they are only slower then. glibc 2.35+ answers
 * sched_getcpu() from the rseq area, without a system call.
 */
#ifndef HM_CPU_H
#define HM_CPU_H

#include "base.h"

/* glibc declares it only under _GNU_SOURCE, which must come before any
 * header: declared here instead. */
extern int sched_getcpu(void);

/* Slots per per-CPU array: the CPUs configured, at most HM_MAX_CPUS (more
 * CPUs share slots). Constant after the first call. */
#define HM_MAX_CPUS 1024u
unsigned hm_nr_cpus(void);

/* The slot of the CPU this thread runs on now, < hm_nr_cpus(). */
static inline unsigned hm_this_cpu(unsigned nr_cpus)
{
	int c = sched_getcpu();

	return hm_likely((unsigned)c < nr_cpus) ? (unsigned)c : (unsigned)(c < 0 ? 0 : c) % nr_cpus;
}

#endif /* HM_CPU_H */
