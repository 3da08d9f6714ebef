/* SPDX-License-Identifier: MIT */
/*
 * The life cycle of systems and address spaces: creation and teardown. It
 * calls down into the layers below and into unmap and table (an mm's
 * teardown), starts and stops the threads, and nothing calls back into it
 * but the public calls above it (fork).
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../base/race.h"
#include "check.h"
#include "collapse.h"
#include "hooks.h"
#include "reclaim.h"
#include "table.h"
#include "unmap.h"
#include "zero.h"

void hm_config_default(struct hm_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->phys_bytes = 4ull << 30;
	cfg->nr_nodes = 1;
	cfg->levels = 4;
	cfg->thp_pud = HM_THP_MADVISE;
	cfg->thp_pmd = HM_THP_ALWAYS;
	cfg->deposit = HM_DEPOSIT_EAGER;
	cfg->khugepaged_max_ptes_none = 511;
	cfg->khugepaged_max_ptes_swap = 64;
	cfg->khugepaged_max_ptes_shared = 256;
}

static bool config_valid(const struct hm_config *c)
{
	uint64_t frames = c->phys_bytes >> HM_PAGE_SHIFT;

	return c->phys_bytes >= (4ull << 20) && c->phys_bytes <= (4ull << 40) &&
	       c->nr_nodes >= 1 && c->nr_nodes <= 64 &&
	       frames / c->nr_nodes >= HM_PTRS &&
	       (c->levels == 4 || c->levels == 5) &&
	       c->thp_pud >= HM_THP_NEVER && c->thp_pud <= HM_THP_ALWAYS &&
	       c->thp_pmd >= HM_THP_NEVER && c->thp_pmd <= HM_THP_ALWAYS &&
	       (c->deposit == HM_DEPOSIT_EAGER || c->deposit == HM_DEPOSIT_LAZY) &&
	       !(c->flags & ~(HM_CHECK | HM_POPULATE_ARENA | HM_KHUGEPAGED | HM_PREZERO | HM_PROTECT_TABLES)) &&
	       (c->cow == HM_COW_4K || c->cow == HM_COW_2M) &&
	       c->khugepaged_max_ptes_none < HM_PTRS && c->khugepaged_max_ptes_swap < HM_PTRS &&
	       c->khugepaged_max_ptes_shared < HM_PTRS;
}

/* The LRU links, one per frame: reserved, backed where folios are. */
static int lru_init(struct hm_system *sys)
{
	sys->lru_bytes = (uint64_t)sys->phys.nr_frames * sizeof(*sys->lru);
	void *p = mmap(NULL, sys->lru_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -ENOMEM;
	sys->lru = p;
	for (int i = 0; i < 2; i++)
		sys->lru_first[i] = sys->lru_last[i] = HM_PFN_NONE;
	return 0;
}

/* Test builds: HM_FORCE_FLAGS (a number, e.g. 0x10) is or-ed into every
 * system's flags, so that the whole suite runs with HM_PROTECT_TABLES
 * (make check-protect) or HM_PREZERO (make check-prezero). */
static unsigned forced_flags(void)
{
#ifdef HM_RACE_POINTS
	const char *env = getenv("HM_FORCE_FLAGS");

	if (env)
		return (unsigned)strtoul(env, NULL, 0) & (HM_PROTECT_TABLES | HM_PREZERO);
#endif
	return 0;
}

int hm_system_create(const struct hm_config *cfg, struct hm_system **out)
{
	if (!cfg || !out || !config_valid(cfg))
		return -EINVAL;
	unsigned nr_cpus = hm_nr_cpus();
	struct hm_system *sys = calloc(1, sizeof(*sys) + hm_cpu_tail_bytes(sizeof(struct hm_cpu_stats), nr_cpus));
	if (!sys)
		return -ENOMEM;
	sys->cpu_stats = hm_cpu_tail(sys, sizeof(*sys));
	/* tc's shared part is these three fields as one array. */
	_Static_assert(offsetof(struct hm_system, nr_leaf) ==
		       offsetof(struct hm_system, events) + HM_TC_LEAF(0) * sizeof(uint64_t), "tc layout");
	_Static_assert(offsetof(struct hm_system, nr_anon_frames) ==
		       offsetof(struct hm_system, events) + HM_TC_ANON * sizeof(uint64_t), "tc layout");
	hm_tcount_init(&sys->tc, sys->events, sys->tc_retired, HM_TC_SYS_N, true);
	sys->cfg = *cfg;
	sys->cfg.flags |= forced_flags();
	sys->huge_zero_pfn = HM_PFN_NONE;	/* pfn 0 is a frame like any other */
	sys->cfg.phys_bytes = HM_ALIGN_DOWN(cfg->phys_bytes, HM_PAGE_SIZE);
	sys->top = cfg->levels - 1;
	/* The lower half of the canonical space, less its last page. */
	sys->task_size = (1ull << (hm_level_shift(sys->top) + 8)) - HM_PAGE_SIZE;
	int r = hm_phys_init(&sys->phys, sys->cfg.phys_bytes, cfg->nr_nodes,
			     cfg->flags & HM_POPULATE_ARENA);
	if (r) {
		free(sys);
		return r;
	}
	r = hm_ptcache_init(&sys->pc, &sys->phys, cfg->deposit == HM_DEPOSIT_LAZY);
	if (!r && (sys->cfg.flags & HM_PROTECT_TABLES) && (r = hm_ptcache_protect(&sys->pc)))
		hm_ptcache_fini(&sys->pc);
	if (r) {
		hm_phys_fini(&sys->phys);
		free(sys);
		return r;
	}
	r = hm_swap_init(&sys->swap, cfg->swap_path, cfg->swap_bytes, &sys->phys.fail);
	if (!r)
		r = lru_init(sys);
	if (r) {
		hm_swap_fini(&sys->swap);
		hm_ptcache_fini(&sys->pc);
		hm_phys_fini(&sys->phys);
		free(sys);
		return r;
	}
	pthread_mutex_init(&sys->mms_lock, NULL);
	pthread_cond_init(&sys->khugepaged_left, NULL);
	pthread_mutex_init(&sys->av_lock, NULL);
	pthread_mutex_init(&sys->reclaim_lock, NULL);
	hm_spin_init(&sys->lru_lock);
	pthread_mutex_init(&sys->split_lock, NULL);
	pthread_mutex_init(&sys->compact_lock, NULL);
	sys->deferred_first = sys->deferred_last = sys->deferred_claim = HM_PFN_NONE;
	sys->cow_policy = cfg->cow;
	if ((cfg->flags & HM_PREZERO) && (r = hm_prezero_start(&sys->phys))) {
		hm_khugepaged_start(sys);	/* its locks, for destroy */
		hm_khugepaged_stop(sys);
		hm_system_destroy(sys);
		return r;
	}
	if ((r = hm_khugepaged_start(sys))) {
		hm_khugepaged_stop(sys);
		hm_system_destroy(sys);
		return r;
	}
	*out = sys;
	return 0;
}

void hm_system_destroy(struct hm_system *sys)
{
	if (!sys)
		return;
	if (!sys->khugepaged_stop)
		hm_khugepaged_stop(sys);
	hm_prezero_stop(&sys->phys);
	while (sys->mms)
		hm_mm_destroy(sys->mms);
	hm_rcu_barrier();
	hm_swap_fini(&sys->swap);
	munmap(sys->lru, sys->lru_bytes);
	pthread_mutex_destroy(&sys->reclaim_lock);
	hm_huge_zero_fini(sys);
	hm_ptcache_fini(&sys->pc);
	hm_pcp_drain_all(&sys->phys, -1);
	pthread_cond_destroy(&sys->khugepaged_left);
	pthread_mutex_destroy(&sys->mms_lock);
	pthread_mutex_destroy(&sys->av_lock);
	hm_assert(sys->deferred_first == HM_PFN_NONE && !sys->nr_deferred);
	pthread_mutex_destroy(&sys->split_lock);
	pthread_mutex_destroy(&sys->compact_lock);
	free(sys->avs);
	free(sys->free_slot_ids);
	hm_phys_fini(&sys->phys);
	hm_tcount_destroy(&sys->tc);
	free(sys);
}

static uint64_t next_mm_id = 1;	/* atomic */

void hm__mm_id_skip_to(uint64_t next)
{
	uint64_t cur = hm_load_relaxed(&next_mm_id);

	while (cur < next && !__atomic_compare_exchange_n(&next_mm_id, &cur, next, false,
							  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/*
 * A slot id for a new mm: the most recently released one, else a fresh one.
 * The free stack grows with the fresh ids, so that releasing one never
 * needs memory. -ENOMEM having changed nothing when it cannot grow.
 */
static int slot_id_get_locked(struct hm_system *sys, uint32_t *out)
{
	if (sys->nr_free_slot_ids) {
		*out = sys->free_slot_ids[--sys->nr_free_slot_ids];
		return 0;
	}
	/* slot_id + 1 must fit in 32 bits (hm_check's shadow). */
	if (sys->next_slot_id == UINT32_MAX - 1)
		return -ENOMEM;
	if (sys->next_slot_id == sys->cap_slot_ids) {
		uint32_t cap = sys->cap_slot_ids ? sys->cap_slot_ids * 2 : 16;
		uint32_t *a;

		if (cap < sys->cap_slot_ids || cap > UINT32_MAX - 1)
			cap = UINT32_MAX - 1;
		a = hm_realloc(&sys->phys.fail, sys->free_slot_ids, (size_t)cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		sys->free_slot_ids = a;
		sys->cap_slot_ids = cap;
	}
	*out = sys->next_slot_id++;
	return 0;
}

static void slot_id_put_locked(struct hm_system *sys, uint32_t id)
{
	hm_assert(sys->nr_free_slot_ids < sys->next_slot_id && id < sys->next_slot_id);
	sys->free_slot_ids[sys->nr_free_slot_ids++] = id;
}

int hm_mm_create(struct hm_system *sys, struct hm_mm **out)
{
	if (!sys || !out)
		return -EINVAL;
	struct hm_mm *mm = hm_calloc(&sys->phys.fail, 1, sizeof(*mm));
	if (!mm)
		return -ENOMEM;
	mm->sys = sys;
	hm_tcount_init(&mm->leaf_tc, mm->nr_leaf, mm->leaf_retired, 3, false);
	mm->id = __atomic_fetch_add(&next_mm_id, 1, __ATOMIC_RELAXED);
	if (hm_rwsem_init(&mm->mmap_lock)) {
		free(mm);
		return -ENOMEM;
	}
	hm_spin_init(&mm->page_table_lock);
	/* hm_check holds mms_lock while it walks: it must never see the root
	 * table before the mm is on the list, nor after it is off. */
	hm_mutex_lock(&sys->mms_lock);
	if (slot_id_get_locked(sys, &mm->slot_id)) {
		hm_mutex_unlock(&sys->mms_lock);
		hm_rwsem_destroy(&mm->mmap_lock);
		free(mm);
		return -ENOMEM;
	}
	/* May reclaim: the new mm maps nothing yet, and reclaim takes no
	 * lock that mms_lock could be waiting for. */
	hm_reclaim_enter(NULL, NULL);
	mm->root = hm_mm_pt_alloc(mm, sys->top);
	hm_reclaim_exit();
	if (mm->root == HM_PFN_NONE) {
		slot_id_put_locked(sys, mm->slot_id);
		hm_mutex_unlock(&sys->mms_lock);
		hm_rwsem_destroy(&mm->mmap_lock);
		free(mm);
		return -ENOMEM;
	}
	mm->next = sys->mms;
	mm->prev = NULL;
	if (sys->mms)
		sys->mms->prev = mm;
	sys->mms = mm;
	hm_add(&sys->nr_mms, 1);
	hm_mutex_unlock(&sys->mms_lock);
	*out = mm;
	return hm_check_enabled(sys, 0);
}

void hm_mm_destroy(struct hm_mm *mm)
{
	if (!mm)
		return;
	struct hm_system *sys = mm->sys;
	uint64_t top_va = hm_level_size(sys->top + 1);

	hm_mutex_lock(&sys->mms_lock);
	/* khugepaged works on one mm without mms_lock, for one 2 MiB step
	 * at a time: wait until it leaves this one. It cannot come back, as
	 * it picks an mm under mms_lock, which we now hold until the mm is
	 * off the list. */
	while (sys->khugepaged_mm == mm)
		pthread_cond_wait(&sys->khugepaged_left, &sys->mms_lock);
	hm_down_write(&mm->mmap_lock);
	hm_unmap_range(mm, 0, top_va, true);
	hm_assert(mm->nr_tables == 1);
	/* No thread may walk an mm being destroyed; the last lock-free walk
	 * of an earlier operation ends within a grace period. */
	hm_rcu_synchronize();
	hm_mm_pt_free_unused(mm, mm->root);
	hm_up_write(&mm->mmap_lock);
	if (mm->prev)
		mm->prev->next = mm->next;
	else
		sys->mms = mm->next;
	if (mm->next)
		mm->next->prev = mm->prev;
	hm_sub(&sys->nr_mms, 1);
	/* No folio slot holds it any more: every leaf of the mm is gone. */
	slot_id_put_locked(sys, mm->slot_id);
	hm_mutex_unlock(&sys->mms_lock);
	/* Tables freed earlier through call_rcu are back before we return. */
	hm_rcu_barrier();
	hm_rwsem_destroy(&mm->mmap_lock);
	hm_tcount_destroy(&mm->leaf_tc);
	free(mm->vmas);
	free(mm);
	hm_check_enabled(sys, 0);
}

void hm_drain(struct hm_system *sys)
{
	if (sys)
		hm_rcu_barrier();
}

void hm__fail_arm(struct hm_system *sys, long nth, bool persistent)
{
	hm_fail_arm(&sys->phys.fail, nth, persistent);
}

long hm__fail_hits(struct hm_system *sys)
{
	return hm_load_relaxed(&sys->phys.fail.hits);
}
