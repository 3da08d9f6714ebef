/* SPDX-License-Identifier: MIT */
/*
 * Counters (stat.c): a shared part written where a count changes rarely,
 * plus per-thread parts written by the hot paths (a fault, an unmap;
 * base/tcount.h), summed when read (hm_stat, hm_check). The ids are in
 * types.h.
 */
#ifndef HM_MM_STAT_H
#define HM_MM_STAT_H

#include "types.h"

static inline struct hm_cpu_stats *hm_this_cpu_stats(struct hm_system *sys)
{
	return &sys->cpu_stats[hm_this_cpu(sys->phys.nr_cpus)];
}

static inline void hm_count(struct hm_system *sys, enum hm_stat_id id)
{
	hm_tcount_add(&sys->tc, id, 1);
}

/* @mm's leaves of @level change by @d (modulo 2^64: a negative step takes
 * away), and so do the system's. */
static inline void hm_leaf_add(struct hm_mm *mm, unsigned level, uint64_t d)
{
	hm_tcount_add(&mm->leaf_tc, level, d);
	hm_tcount_add(&mm->sys->tc, HM_TC_LEAF(level), d);
}

static inline void hm_anon_add(struct hm_system *sys, uint64_t d)
{
	hm_tcount_add(&sys->tc, HM_TC_ANON, d);
}

/* The calling thread's counters of @mm and its system, so that the
 * counting that follows writes no shared line. Context: may allocate; no
 * spinlock held. */
static inline void hm_stat_prepare(struct hm_mm *mm)
{
	hm_tcount_prepare(&mm->leaf_tc);
	hm_tcount_prepare(&mm->sys->tc);
}

/* The sums (stat.c). Exact while nothing changes them (hm_check). */
uint64_t hm_sys_events(struct hm_system *sys, unsigned id);
uint64_t hm_sys_nr_leaf(struct hm_system *sys, unsigned level);
uint64_t hm_sys_nr_anon_frames(struct hm_system *sys);
uint64_t hm_mm_nr_leaf(struct hm_mm *mm, unsigned level);

#endif /* HM_MM_STAT_H */
