/* SPDX-License-Identifier: MIT */
/*
 * hm_migrate: move the folios mapped in a range to a node, in chunks:
 * collect and isolate them, take targets for the huge ones first (by
 * compaction if need be), then migrate the batch.
 */
#include <sched.h>
#include <stdlib.h>

#include "../base/race.h"
#include "check.h"
#include "folio.h"
#include "lru.h"
#include "migrate.h"
#include "reclaim.h"
#include "types.h"
#include "vma.h"
#include "zero.h"

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
		unsigned order = folio_order(hm_pfn_page(&sys->phys, heads[i]));

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
