/* SPDX-License-Identifier: MIT */
/*
 * Systems and address spaces: creation, teardown, statistics.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../base/race.h"
#include "mm.h"

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
 * (make check-protect). */
static unsigned forced_flags(void)
{
#ifdef HM_RACE_POINTS
	const char *env = getenv("HM_FORCE_FLAGS");

	if (env)
		return (unsigned)strtoul(env, NULL, 0) & HM_PROTECT_TABLES;
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
	free(sys);
}

/* @shared plus the same field in each of @nr per-CPU parts, the first of
 * which is @part0 and the next @stride bytes further. */
static uint64_t cpu_sum(const uint64_t *shared, const uint64_t *part0, size_t stride, unsigned nr)
{
	uint64_t v = hm_load_relaxed(shared);

	for (unsigned c = 0; c < nr; c++)
		v += hm_load_relaxed((const uint64_t *)(const void *)((const char *)part0 + c * stride));
	return v;
}

uint64_t hm_sys_events(struct hm_system *sys, unsigned id)
{
	return cpu_sum(&sys->events[id], &sys->cpu_stats[0].events[id], sizeof(struct hm_cpu_stats),
		       sys->phys.nr_cpus);
}

uint64_t hm_sys_nr_leaf(struct hm_system *sys, unsigned level)
{
	return cpu_sum(&sys->nr_leaf[level], &sys->cpu_stats[0].nr_leaf[level], sizeof(struct hm_cpu_stats),
		       sys->phys.nr_cpus);
}

uint64_t hm_sys_nr_anon_frames(struct hm_system *sys)
{
	return cpu_sum(&sys->nr_anon_frames, &sys->cpu_stats[0].nr_anon_frames, sizeof(struct hm_cpu_stats),
		       sys->phys.nr_cpus);
}

uint64_t hm_mm_nr_leaf(struct hm_mm *mm, unsigned level)
{
	return cpu_sum(&mm->nr_leaf[level], &mm->cpu[0].nr_leaf[level], sizeof(struct hm_mm_cpu),
		       mm->sys->phys.nr_cpus);
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
	struct hm_mm *mm = hm_calloc(&sys->phys.fail, 1,
				     sizeof(*mm) + hm_cpu_tail_bytes(sizeof(struct hm_mm_cpu), sys->phys.nr_cpus));
	if (!mm)
		return -ENOMEM;
	mm->cpu = hm_cpu_tail(mm, sizeof(*mm));
	mm->sys = sys;
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
	free(mm->vmas);
	free(mm);
	hm_check_enabled(sys, 0);
}

void hm_drain(struct hm_system *sys)
{
	if (sys)
		hm_rcu_barrier();
}

/* The folios mapped in [*va, end) that are not on @node, up to @max of
 * them, isolated; *va is where to go on. Context: mmap_lock held. */
static unsigned collect(struct hm_mm *mm, uint64_t *va, uint64_t end, unsigned node, uint32_t *heads,
			unsigned max, bool *left)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	uint32_t last = HM_PFN_NONE;
	unsigned n = 0;

	while (*va < end && n < max) {
		unsigned level;

		/* A copy-on-write may free what we find: look, and isolate,
		 * inside a read section. */
		hm_rcu_read_lock();
		hm_pte_t e = pt_get(hm_pt_walk(ph, mm->root, sys->top, *va, &level));
		uint64_t size = hm_level_size(level);

		if (level <= 2 && pt_mapped(e) && !hm_is_huge_zero(sys, pt_pfn(e, level))) {
			uint32_t head = hm_folio_head(ph, pt_pfn(e, level));

			if (head != last && hm_pfn_node(ph, head) != node) {
				if (hm_folio_isolate_migrate(sys, head))
					heads[n++] = head;
				else
					*left = true;	/* pinned, or busy */
			}
			last = head;
		}
		hm_rcu_read_unlock();
		*va = HM_ALIGN_DOWN(*va, size) + size;
	}
	return n;
}

#define MIGRATE_CHUNK 512u
#define MIGRATE_RETRIES 1000u

/* Targets for the huge folios of a chunk, made before its migration batch
 * (see fill_pool); ctl->alloc takes them first. */
struct target_pool {
	unsigned node, n;
	struct {
		uint32_t pfn;
		unsigned order;
	} b[MIGRATE_CHUNK];
};

static uint32_t pool_alloc(struct hm_system *sys, unsigned order, void *arg)
{
	struct target_pool *pool = arg;

	for (unsigned i = pool->n; i--;) {
		if (pool->b[i].order != order)
			continue;
		uint32_t pfn = pool->b[i].pfn;

		pool->b[i] = pool->b[--pool->n];
		return pfn;
	}
	return hm_migrate_alloc_node(sys, pool->node, order);
}

/* A block of the folio's order for each huge folio of heads[0..n), taken
 * now, by direct compaction if @node has none free: the migration batch
 * cannot compact (it holds isolated folios and its mappers' mmap_locks, and
 * compaction is a migration of its own), and without a block the folio
 * would be split. The folios to move are isolated, so compaction does not
 * pick a block that holds them. A block that cannot be had leaves the
 * folio to the batch, which splits it. Context: as hm_compact_alloc (this
 * mm named with hm_reclaim_enter: compaction may move its other pages). */
static void fill_pool(struct hm_system *sys, const uint32_t *heads, unsigned n, struct target_pool *pool)
{
	pool->n = 0;
	for (unsigned i = 0; i < n; i++) {
		unsigned order = hm_pfn_page(&sys->phys, heads[i])->order;

		if (order < HM_PMD_ORDER)
			continue;
		uint32_t pfn = hm_migrate_alloc_node(sys, pool->node, order);

		if (pfn == HM_PFN_NONE && !hm_below_reserve(sys, order))
			pfn = hm_compact_alloc(sys, pool->node, order);
		if (pfn != HM_PFN_NONE) {
			pool->b[pool->n].pfn = pfn;
			pool->b[pool->n++].order = order;
		}
	}
}

static void drain_pool(struct hm_system *sys, struct target_pool *pool)
{
	while (pool->n--)
		hm_free_frames(&sys->pc, pool->b[pool->n].pfn, pool->b[pool->n].order);
	pool->n = 0;
}

/* One pass of hm_migrate over [addr, end). *left: folios that were not
 * moved and may be on a second look. Context: mmap_lock held for reading
 * (dropped and taken again when a mapper is busy: the range may have
 * changed meanwhile, and what is mapped in it then is what we move; a hole
 * made meanwhile is not an -EFAULT, which would come after pages moved). */
static int migrate_pass(struct hm_mm *mm, uint64_t addr, uint64_t end, const struct hm_migrate_ctl *ctl,
			uint32_t *heads, bool *left)
{
	unsigned retries = 0;
	int r = 0;

	*left = false;
	for (uint64_t va = addr; !r && va < end;) {
		uint64_t from = va;
		unsigned moved, n = collect(mm, &va, end, ctl->node, heads, MIGRATE_CHUNK, left);
		bool not_moved;

		if (!n)
			continue;
		hm_reclaim_enter(mm, NULL);
		fill_pool(mm->sys, heads, n, ctl->arg);
		r = hm_migrate_isolated(mm->sys, heads, n, ctl, &moved, &not_moved);
		drain_pool(mm->sys, ctl->arg);
		hm_reclaim_exit();
		/* (moved counts split pieces: no match for n) */
		*left |= not_moved;
		if (r != -EAGAIN)
			continue;
		/* A mapper was busy (changing its maps): let it, and do this
		 * chunk again. */
		if (++retries > MIGRATE_RETRIES)
			break;
		hm_up_read(&mm->mmap_lock);
		hm_race_point("migrate_retry");
		sched_yield();
		hm_down_read(&mm->mmap_lock);
		va = from;
		r = 0;
	}
	return r;
}

int hm_migrate(struct hm_mm *mm, uint64_t addr, uint64_t len, unsigned node)
{
	if (!mm)
		return -EINVAL;
	struct hm_system *sys = mm->sys;
	uint64_t end = addr + HM_ALIGN_UP(len, HM_PAGE_SIZE);

	if (node >= sys->phys.nr_nodes || (addr & (HM_PAGE_SIZE - 1)) || !len || len > sys->task_size ||
	    end < addr || end > sys->task_size)
		return -EINVAL;
	struct target_pool *pool = NULL;
	uint32_t *heads = NULL;
	bool left = false;
	int r = 0;

	/* Holes are looked for once, here, before anything moves or is
	 * allocated: -EFAULT changes nothing, and wins over -ENOMEM. */
	hm_down_read(&mm->mmap_lock);
	if (!hm_vma_covers(mm, addr, end, 0))
		r = -EFAULT;
	else if (!(heads = hm_malloc(&sys->phys.fail, MIGRATE_CHUNK * sizeof(*heads))) ||
		 !(pool = hm_malloc(&sys->phys.fail, sizeof(*pool))))
		r = -ENOMEM;
	if (pool) {
		pool->node = node;
		pool->n = 0;
	}
	const struct hm_migrate_ctl ctl = { .node = node, .alloc = pool_alloc, .arg = pool, .reason = HM_MR_SYSCALL };

	if (!r)
		r = migrate_pass(mm, addr, end, &ctl, heads, &left);
	if (!r && left) {
		/* Folios pinned by a copy-on-write or an unmap in flight were
		 * left: their pins go after a grace period. Wait for them
		 * (without the lock, as hm_fault does) and look once more. */
		hm_up_read(&mm->mmap_lock);
		hm_rcu_barrier();
		hm_down_read(&mm->mmap_lock);
		r = migrate_pass(mm, addr, end, &ctl, heads, &left);
	}
	hm_up_read(&mm->mmap_lock);
	free(heads);
	free(pool);
	return hm_check_enabled(sys, r);
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
		/* Frames and tables on their way back (after a grace period)
		 * count as free: an allocation waits for them before failing.
		 * Free slots of table blocks in use do not: they hold only
		 * tables. */
		return hm_phys_nr_free(&sys->phys) + hm_ptcache_spare(pc) +
		       hm_load_relaxed(&pc->nr_pending) + hm_load_relaxed(&pc->nr_pending_frames);
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
	case HM_STAT_nr_free_pending:
		return hm_load_relaxed(&pc->nr_pending) + hm_load_relaxed(&pc->nr_pending_frames);
	case HM_STAT_phys_bytes:	return sys->cfg.phys_bytes;
	case HM_STAT_swap_free_pages:	return hm_load_relaxed(&sys->swap.nr_free);
	case HM_STAT_swap_total_pages:	return sys->swap.nr_slots;
	case HM_STAT_nr_inactive_anon:	return hm_load_relaxed(&sys->nr_lru[0]) + hm_lru_batched(sys);
	case HM_STAT_nr_active_anon:	return hm_load_relaxed(&sys->nr_lru[1]);
	case HM_STAT_nr_swap_entries:	return hm_load_relaxed(&sys->nr_swap_entries);
	case HM_STAT_nr_huge_zero_pte:	return hm_load_relaxed(&sys->nr_zero_leaf[0]);
	case HM_STAT_nr_huge_zero_pmd:	return hm_load_relaxed(&sys->nr_zero_leaf[1]);
	case HM_STAT_nr_free_1g_possible:
		return hm_phys_movable_blocks(&sys->phys, HM_PUD_ORDER);
	case HM_STAT_prezero_pages:	return hm_load_relaxed(&sys->phys.prezero_frames);
	case HM_STAT_prezero_ns:	return hm_load_relaxed(&sys->phys.prezero_ns);
	case HM_STAT_prezero_used:	return hm_load_relaxed(&sys->phys.prezero_used);
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

void hm__fail_arm(struct hm_system *sys, long nth, bool persistent)
{
	hm_fail_arm(&sys->phys.fail, nth, persistent);
}

long hm__fail_hits(struct hm_system *sys)
{
	return hm_load_relaxed(&sys->phys.fail.hits);
}
