/* SPDX-License-Identifier: MIT */
/*
 * Counters: the sums of their shared and per-thread parts, and hm_stat, which
 * names them (the computed ones read their layer's own counts).
 */
#include <stdlib.h>
#include <string.h>

#include "stat.h"

uint64_t hm_sys_events(struct hm_system *sys, unsigned id)
{
	return hm_tcount_sum(&sys->tc, id);
}

uint64_t hm_sys_nr_leaf(struct hm_system *sys, unsigned level)
{
	return hm_tcount_sum(&sys->tc, HM_TC_LEAF(level));
}

uint64_t hm_sys_nr_anon_frames(struct hm_system *sys)
{
	return hm_tcount_sum(&sys->tc, HM_TC_ANON);
}

uint64_t hm_mm_nr_leaf(struct hm_mm *mm, unsigned level)
{
	return hm_tcount_sum(&mm->leaf_tc, level);
}

/* Folios in the per-CPU LRU add batches (lru.c), on their way to the
 * inactive list. */
static uint64_t lru_batched(struct hm_system *sys)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < sys->phys.nr_cpus; i++)
		n += hm_load_relaxed(&sys->cpu_stats[i].lru_batch_nr);
	return n;
}

static const char *const stat_names[HM_NR_STATS] = {
#define X(n) [HM_STAT_##n] = #n,
	HM_EVENT_STATS(X)
	HM_COMPUTED_STATS(X)
#undef X
};

const char *hm_stat_name(unsigned i)
{
	return i < HM_NR_STATS ? stat_names[i] : NULL;
}

static uint64_t stat_computed(struct hm_system *sys, unsigned id)
{
	struct hm_ptcache *pc = &sys->pc;

	switch (id) {
	case HM_STAT_nr_free_pages:
		/* Frames on their way back (after a grace period) count as
		 * free: an allocation waits for them before failing. Tables on
		 * their way back do not, nor do the free slots of table blocks
		 * in use: a table goes back to its block's slots, which hold
		 * only tables, and its block counts (hm_ptcache_spare) only
		 * once no table is left in it. Counting pending tables made
		 * the figure promise data frames that never came: a fuzz case
		 * saw 149 frames "free" before a write that found 30. */
		return hm_phys_nr_free(&sys->phys) + hm_ptcache_spare(pc) + hm_load_relaxed(&pc->nr_pending_frames);
	case HM_STAT_pgtable_bytes:	return hm_load_relaxed(&pc->nr_tables) << HM_PAGE_SHIFT;
	case HM_STAT_pgtable_deposited:	return hm_load_relaxed(&pc->nr_deposited);
	case HM_STAT_pgtable_free_slots:
		return hm_load_relaxed(&pc->nr_free_slots) - HM_MIN(hm_load_relaxed(&pc->nr_free_slots),
								     hm_ptcache_spare(pc));
	case HM_STAT_nr_anon_pages:	return hm_sys_nr_anon_frames(sys);
	case HM_STAT_nr_anon_pte:	return hm_sys_nr_leaf(sys, 0);
	case HM_STAT_nr_anon_pmd:	return hm_sys_nr_leaf(sys, 1);
	case HM_STAT_nr_anon_pud:	return hm_sys_nr_leaf(sys, 2);
	case HM_STAT_nr_mms:		return hm_load_relaxed(&sys->nr_mms);
	case HM_STAT_pgtable_pending:	return hm_load_relaxed(&pc->nr_pending);
	case HM_STAT_nr_free_pending:
		return hm_load_relaxed(&pc->nr_pending) + hm_load_relaxed(&pc->nr_pending_frames);
	case HM_STAT_phys_bytes:	return sys->cfg.phys_bytes;
	case HM_STAT_swap_free_pages:	return hm_load_relaxed(&sys->swap.nr_free);
	case HM_STAT_swap_total_pages:	return sys->swap.nr_slots;
	case HM_STAT_nr_inactive_anon:	return hm_load_relaxed(&sys->nr_lru[0]) + lru_batched(sys);
	case HM_STAT_nr_active_anon:	return hm_load_relaxed(&sys->nr_lru[1]);
	case HM_STAT_nr_swap_entries:	return hm_load_relaxed(&sys->nr_swap_entries);
	case HM_STAT_nr_huge_zero_pte:	return hm_load_relaxed(&sys->nr_zero_leaf[0]);
	case HM_STAT_nr_huge_zero_pmd:	return hm_load_relaxed(&sys->nr_zero_leaf[1]);
	case HM_STAT_nr_free_1g_possible:
		return hm_phys_movable_blocks(&sys->phys, HM_PUD_ORDER);
	case HM_STAT_prezero_pages:	return hm_load_relaxed(&sys->phys.prezero_frames);
	case HM_STAT_prezero_ns:	return hm_load_relaxed(&sys->phys.prezero_ns);
	case HM_STAT_prezero_used:	return hm_prezero_used(&sys->phys);
	case HM_STAT_nr_prezeroed:	return hm_prezero_count(&sys->phys, -1);
	}
	return 0;
}

/* "node<N>/nr_free_pages": free frames of node N (its buddy lists and
 * per-CPU caches). */
static int node_stat(struct hm_system *sys, const char *name, uint64_t *value)
{
	char *rest;
	unsigned long n;

	/* The canonical decimal spelling only: "node01" is not "node1". */
	if (strncmp(name, "node", 4) || name[4] < '0' || name[4] > '9' || (name[4] == '0' && name[5] != '/'))
		return -ENOENT;
	n = strtoul(name + 4, &rest, 10);
	if (strcmp(rest, "/nr_free_pages") || n >= sys->phys.nr_nodes)
		return -ENOENT;
	*value = hm_node_nr_free(&sys->phys, (unsigned)n);
	return 0;
}

int hm_stat(struct hm_system *sys, const char *name, uint64_t *value)
{
	if (!sys || !name || !value)
		return -EINVAL;
	if (!strncmp(name, "node", 4))
		return node_stat(sys, name, value);
	for (unsigned i = 0; i < HM_NR_STATS; i++) {
		if (!stat_names[i] || strcmp(stat_names[i], name))
			continue;
		*value = i < HM_NR_EVENTS ? hm_sys_events(sys, i) : stat_computed(sys, i);
		return 0;
	}
	return -ENOENT;
}
