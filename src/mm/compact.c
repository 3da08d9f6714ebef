/* SPDX-License-Identifier: MIT */
/*
 * Direct compaction: a huge-page allocation that finds no free block of its
 * order (2 MiB or 1 GiB) empties one by migrating the folios in it
 * elsewhere on the node, then takes it.
 *
 *   pick     the aligned block with the fewest allocated frames among those
 *            that hold nothing unmovable (tables, the page-table cache's
 *            blocks, the huge zero page), no folio that someone else owns
 *            (isolated, pinned) and no part of a larger folio. The
 *            descriptors are read without their owners' locks, as the
 *            kernel's migrate scanner does: every folio is looked at again
 *            under its lock when it is isolated for migration.
 *   window   the buddy allocator keeps the block's free frames, and those
 *            freed into it from then on, apart from allocation
 *            (hm_window_open): what the migration empties stays empty.
 *   migrate  hm_migrate_folios, with targets allocated on the node, which
 *            the window keeps outside the block.
 *   take     the old frames come back after a grace period (drain); if the
 *            whole block is free then, it is ours (hm_window_close).
 *
 * One compaction at a time (sys->compact_lock, by trylock: a second
 * allocation that would compact falls back instead of waiting behind the
 * first). A mapper that is busy (-EAGAIN from the migration) or a folio
 * that could not be moved fails this compaction, counted in compact_fail;
 * the caller falls back to a smaller page as without compaction.
 */
#include <stdlib.h>

#include "../base/race.h"
#include "folio.h"
#include "migrate.h"
#include "stat.h"
#include "types.h"

/* 2 MiB candidates looked at per compaction, from a cursor that goes round
 * the node: the whole node could be 100,000 blocks. */
#define HM_COMPACT_PMD_BLOCKS 256u

/* What cannot move, or is not ours to move, in a block. */
#define UNMOVABLE_FLAGS (PG_TABLE | PG_PT_FREE | PG_PT_PENDING | PG_PT_SLOT | PG_HUGE_ZERO | PG_ISOLATED)

/*
 * Frames allocated in the block [pfn, pfn + 2^order), or -1 if it holds
 * anything that cannot be moved out. With @heads, the heads of its folios
 * that are to move go there (at most 2^order). Context: none. The reads
 * race with the frames' owners by design (see above: the answer is a guess
 * that migration checks under the folio locks), so ThreadSanitizer is told
 * not to watch them, as count_zero_racy in deferred.c.
 */
__attribute__((noinline, no_sanitize("thread")))
static int64_t scan_block(struct hm_system *sys, uint32_t pfn, unsigned order, uint32_t *heads,
			  unsigned *nr_heads, uint64_t *scanned)
{
	struct hm_phys *ph = &sys->phys;
	uint32_t end = pfn + (1u << order);
	int64_t used = 0;

	for (uint32_t p = pfn; p < end;) {
		struct hm_page *pg = hm_pfn_page(ph, p);
		unsigned b = hm_load_relaxed(&pg->buddy);
		uint32_t flags = hm_load_relaxed(&pg->flags);

		++*scanned;
		if (b) {
			p += 1u << (b - 1);	/* a free block */
			continue;
		}
		if (flags == PG_PCP || flags == PG_ZEROED) {
			/* free, in a per-CPU cache or a zeroed pool: the
			 * window drains both */
			p++;
			continue;
		}
		/* A tail whose head lies before the block (a larger folio), or
		 * a frame on its way in or out of the allocator. */
		if ((flags & UNMOVABLE_FLAGS) || !(flags & PG_HEAD))
			return -1;
		unsigned o = hm_load_relaxed(&pg->order);
		/* A folio as large as the block it fills: moving it needs a
		 * target of the very order we lack, so migration would split
		 * one huge page to make another (the kernel's
		 * isolate_migratepages_block skips such compound pages too). */
		if (o >= order || (p & ((1u << o) - 1)) || hm_load_relaxed(hm_pin_slot(ph, p)))
			return -1;
		/* A folio on its way out comes back after a grace period. */
		if (heads && !(flags & PG_FREEING))
			heads[(*nr_heads)++] = p;
		used += 1u << o;
		p += 1u << o;
	}
	return used;
}



/* The candidate block with the fewest allocated frames, or HM_PFN_NONE. */
static uint32_t pick_block(struct hm_system *sys, unsigned node, unsigned order, uint64_t *scanned)
{
	struct hm_phys *ph = &sys->phys;
	struct hm_node *n = &ph->nodes[node];
	uint32_t size = 1u << order, first = HM_ALIGN_UP(n->start_pfn, size);

	if (first >= n->end_pfn || n->end_pfn - first < size)
		return HM_PFN_NONE;
	uint32_t nr = (n->end_pfn - first) / size, look = nr, cur = 0;
	if (order < HM_PUD_ORDER) {
		look = nr < HM_COMPACT_PMD_BLOCKS ? nr : HM_COMPACT_PMD_BLOCKS;
		cur = sys->compact_cursor[node] % nr;
		sys->compact_cursor[node] = (cur + look) % nr;
	}
	uint32_t best = HM_PFN_NONE;
	int64_t best_used = INT64_MAX;

	for (uint32_t i = 0; i < look && best_used; i++) {
		uint32_t p = first + ((cur + i) % nr) * size;

		/* The grouping's counts answer at once for blocks as large as
		 * its regions: those are most of what a 1 GiB scan skips. */
		if (order >= n->group_shift && hm_block_unmovable(ph, n, p, order))
			continue;
		int64_t used = scan_block(sys, p, order, NULL, NULL, scanned);
		if (used >= 0 && used < best_used) {
			best = p;
			best_used = used;
		}
	}
	/* The folios need room elsewhere on the node: the node's free frames
	 * outside the block, nr_free - (size - used), must hold them. */
	if (best != HM_PFN_NONE && hm_node_nr_free(ph, node) < size)
		return HM_PFN_NONE;
	return best;
}

struct target {
	unsigned node;
};

/* New frames for the folios that leave the block: on the node, outside the
 * window (which allocation does not see), not from the frames kept for
 * swap-ins. Migration makes them the folio. */
static uint32_t target_alloc(struct hm_system *sys, unsigned order, void *arg)
{
	const struct target *t = arg;

	if (hm_below_reserve(sys, order))
		return HM_PFN_NONE;
	return hm_alloc_pages(&sys->phys, t->node, order, HM_ALLOC_THISNODE);
}

static uint32_t compact_block(struct hm_system *sys, unsigned node, unsigned order)
{
	struct hm_phys *ph = &sys->phys;
	uint64_t scanned = 0;
	uint32_t got = HM_PFN_NONE;
	uint32_t pfn = pick_block(sys, node, order, &scanned);

	if (pfn == HM_PFN_NONE)
		goto out;
	int r = hm_window_open(ph, node, pfn, order);
	if (r == -EEXIST) {	/* freed meanwhile */
		got = hm_alloc_pages(ph, node, order, HM_ALLOC_THISNODE);
		goto out;
	}
	if (r)
		goto out;
	/* Nothing new comes into the block from here on: what is in it now
	 * is all that has to go. */
	uint32_t *heads = hm_malloc(&ph->fail, sizeof(*heads) << order);
	unsigned nr = 0, moved = 0;
	bool ok = heads && scan_block(sys, pfn, order, heads, &nr, &scanned) >= 0;

	hm_race_point("compact_isolate");
	if (ok && nr) {
		struct target t = { .node = node };
		struct hm_migrate_ctl ctl = {
			.node = node, .alloc = target_alloc, .arg = &t, .reason = HM_MR_COMPACTION,
		};
		/* Folios it skipped (gone meanwhile, or pinned) show in
		 * whether the block is free at the end. */
		ok = hm_migrate_folios(sys, heads, nr, &ctl, &moved) == 0;
	}
	free(heads);
	/* The old frames come back after a grace period; those freed by
	 * unmaps meanwhile too, into the window. */
	if (ok)
		hm_ptcache_drain(&sys->pc);
	got = hm_window_close(ph, node, ok);
out:
	hm_add(&sys->events[HM_STAT_compact_migrate_scanned], scanned);
	return got;
}

uint32_t hm_compact_alloc(struct hm_system *sys, unsigned node, unsigned order)
{
	hm_might_sleep();
	hm_assert(node < sys->phys.nr_nodes && order >= HM_PMD_ORDER && order <= HM_PUD_ORDER);
	/* Migration waits for grace periods: a fault's first pass asks for
	 * the retry without its mmap_lock instead (see hm_fault). */
	/* A block of @order free already: the allocation failed for another
	 * reason (an injected failure, a race lost) and compaction would not
	 * help (the kernel's compaction_suitable). */
	if (hm_node_has_block(&sys->phys, node, order))
		return HM_PFN_NONE;
	if (hm_drain_defer_wait())
		return HM_PFN_NONE;
	if (pthread_mutex_trylock(&sys->compact_lock))
		return HM_PFN_NONE;
	hm_count(sys, HM_STAT_compact_stall);
	uint32_t pfn = compact_block(sys, node, order);
	hm_mutex_unlock(&sys->compact_lock);
	hm_count(sys, pfn != HM_PFN_NONE ? HM_STAT_compact_success : HM_STAT_compact_fail);
	return pfn;
}
