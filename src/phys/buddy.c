/* SPDX-License-Identifier: MIT */
/*
 * Buddy allocator, orders 0..HM_MAX_ORDER, one per node. Free blocks sit on
 * doubly-linked lists threaded through their head descriptors (lru.next /
 * lru.prev hold frame numbers), so a buddy can be unlinked in O(1) when
 * blocks merge.
 *
 * Invariant (node->lock): a frame is in exactly one free block or in none;
 * a free block of order o starts at a multiple of 2^o and its head has
 * buddy = o + 1; node->nr_free = sum over blocks of 2^o.
 */
#include <string.h>

#include "../base/race.h"
#include "phys.h"

static void list_add_to(struct hm_phys *ph, struct hm_node *n, uint32_t *heads, uint32_t pfn, unsigned o)
{
	struct hm_page *pg = &ph->pages[pfn];
	uint32_t head = heads[o];

	pg->buddy = (uint8_t)(o + 1);
	pg->lru.prev = HM_PFN_NONE;
	pg->lru.next = head;
	if (head != HM_PFN_NONE)
		ph->pages[head].lru.prev = pfn;
	heads[o] = pfn;
	n->nr_blocks[o]++;
}

static void list_del_from(struct hm_phys *ph, struct hm_node *n, uint32_t *heads, uint32_t pfn, unsigned o)
{
	struct hm_page *pg = &ph->pages[pfn];

	if (pg->lru.prev != HM_PFN_NONE)
		ph->pages[pg->lru.prev].lru.next = pg->lru.next;
	else
		heads[o] = pg->lru.next;
	if (pg->lru.next != HM_PFN_NONE)
		ph->pages[pg->lru.next].lru.prev = pg->lru.prev;
	pg->buddy = 0;
	pg->lru.next = pg->lru.prev = 0;
	n->nr_blocks[o]--;
}

/* The allocation paths take from the main lists only: the window's blocks
 * are on their own (hm_window_open). */
static void list_add(struct hm_phys *ph, struct hm_node *n, uint32_t pfn, unsigned o)
{
	list_add_to(ph, n, n->free_head, pfn, o);
}

static void list_del(struct hm_phys *ph, struct hm_node *n, uint32_t pfn, unsigned o)
{
	list_del_from(ph, n, n->free_head, pfn, o);
}

static inline bool in_window(const struct hm_node *n, uint32_t pfn)
{
	return pfn - n->win_start < n->win_len;
}

static inline uint32_t *lists_of(struct hm_node *n, uint32_t pfn)
{
	return in_window(n, pfn) ? n->win_head : n->free_head;
}

/* Unmovable frames allocated (@nr > 0) or freed in [pfn, pfn + 2^order). */
static void unmovable_add_locked(struct hm_node *n, uint32_t pfn, unsigned order, int64_t nr)
{
	uint32_t step = 1u << n->group_shift;

	if (order <= n->group_shift) {
		n->unmovable[hm_region_of(n, pfn)] += (uint32_t)nr;
		return;
	}
	for (uint32_t r = 0; r < (1u << order) / step; r++)
		n->unmovable[hm_region_of(n, pfn) + r] += (uint32_t)(nr < 0 ? -(int64_t)step : (int64_t)step);
}

static bool region_unmovable_locked(const struct hm_node *n, uint32_t pfn)
{
	return n->unmovable[hm_region_of(n, pfn)] != 0;
}

/*
 * A movable block is split from a free block of order @o >= 2 MiB: prefer
 * one in a region without unmovable frames, of order @o or larger (a few
 * looked at per order), so that folios leave the unmovable regions' room
 * to unmovable allocations, as the kernel's movable allocations take from
 * their own pageblocks before they steal. Only where a block of 2 MiB or
 * more is split (at most once per 512 4 KiB allocations): the order-0 fast
 * path takes the list head as before. *o is updated.
 */
#define HM_GROUP_SCAN 8u

static uint32_t pick_movable_locked(struct hm_phys *ph, struct hm_node *n, unsigned *o)
{
	uint32_t pfn = n->free_head[*o];

	if (*o < HM_PMD_ORDER || ph->no_grouping || !region_unmovable_locked(n, pfn))
		return pfn;
	for (unsigned k = *o; k <= HM_MAX_ORDER; k++) {
		unsigned i = 0;

		for (uint32_t p = n->free_head[k]; p != HM_PFN_NONE && i < HM_GROUP_SCAN;
		     p = ph->pages[p].lru.next, i++) {
			if (!region_unmovable_locked(n, p)) {
				*o = k;
				return p;
			}
		}
	}
	return pfn;
}

/*
 * An unmovable block: the smallest free block (bounded look per order) in
 * a region that holds unmovable frames already; else a new region: the
 * smallest free block of a region's size or more, the lowest-addressed of
 * those (movable allocations split the list heads, which start at the top
 * of the node and then go LIFO); else anything.
 * Returns the block's pfn and order in *o, or HM_PFN_NONE.
 */
#define HM_UNMOVABLE_SCAN 64u

static uint32_t pick_unmovable_locked(struct hm_phys *ph, struct hm_node *n, unsigned order, unsigned *o)
{
	if (!ph->no_grouping) {
		for (unsigned k = order; k < n->group_shift && k <= HM_MAX_ORDER; k++) {
			unsigned i = 0;

			for (uint32_t p = n->free_head[k]; p != HM_PFN_NONE && i < HM_UNMOVABLE_SCAN;
			     p = ph->pages[p].lru.next, i++) {
				if (region_unmovable_locked(n, p)) {
					*o = k;
					return p;
				}
			}
		}
		/* The smallest free block that starts a region, so that large
		 * ones stay whole; of those, the lowest-addressed. */
		for (unsigned k = (order > n->group_shift ? order : n->group_shift); k <= HM_MAX_ORDER; k++) {
			uint32_t best = HM_PFN_NONE;
			unsigned i = 0;

			for (uint32_t p = n->free_head[k]; p != HM_PFN_NONE && i < HM_UNMOVABLE_SCAN;
			     p = ph->pages[p].lru.next, i++)
				best = p < best ? p : best;
			if (best != HM_PFN_NONE) {
				*o = k;
				return best;
			}
		}
	}
	for (unsigned k = order; k <= HM_MAX_ORDER; k++) {
		if (n->free_head[k] != HM_PFN_NONE) {
			*o = k;
			return n->free_head[k];
		}
	}
	return HM_PFN_NONE;
}

static void free_block_locked(struct hm_phys *ph, struct hm_node *n, uint32_t pfn, unsigned o);

/* Context: node->lock (or a node no one else sees yet). One writer at a
 * time, but hm_node_nr_free reads the count without the lock (compaction
 * weighs a block by it), so the store is atomic: a plain += racing that
 * load is undefined, and ThreadSanitizer reports it. */
static inline void node_free_add_locked(struct hm_node *n, int64_t d)
{
	hm_store_relaxed(&n->nr_free, n->nr_free + (uint64_t)d);
}

/* A block of @order from @n's lists, or HM_PFN_NONE. Context: node->lock. */
static uint32_t alloc_locked(struct hm_phys *ph, struct hm_node *n, unsigned order, unsigned flags)
{
	unsigned o = order;
	uint32_t pfn;

	if (hm_unlikely(flags & HM_ALLOC_UNMOVABLE)) {
		pfn = pick_unmovable_locked(ph, n, order, &o);
		if (pfn == HM_PFN_NONE)
			return HM_PFN_NONE;
		/* Take the block's lowest part: an unmovable block split
		 * from a region's start leaves the rest of it in one piece. */
		unmovable_add_locked(n, pfn, order, (int64_t)1 << order);
	} else {
		while (o <= HM_MAX_ORDER && n->free_head[o] == HM_PFN_NONE)
			o++;
		if (o > HM_MAX_ORDER)
			return HM_PFN_NONE;
		pfn = o == order ? n->free_head[o] : pick_movable_locked(ph, n, &o);
	}
	list_del(ph, n, pfn, o);
	/* Give back the upper halves until the block has the asked order. */
	while (o > order) {
		o--;
		list_add(ph, n, pfn + (1u << o), o);
	}
	node_free_add_locked(n, -((int64_t)1 << order));
	return pfn;
}

static uint32_t node_alloc(struct hm_phys *ph, struct hm_node *n, unsigned order, unsigned flags)
{
	hm_mutex_lock(&n->lock);
	uint32_t pfn = alloc_locked(ph, n, order, flags);
	hm_mutex_unlock(&n->lock);
	if (pfn != HM_PFN_NONE)
		hm_sub(&ph->nr_free, 1u << order);
	return pfn;
}

static inline struct hm_pcp *pcp_of(struct hm_phys *ph, unsigned cpu, unsigned node)
{
	return &ph->pcp[cpu * ph->nr_nodes + node];
}

/* Is a block of order [lo, hi) free on @n? Context: n->lock. */
static bool has_block_locked(const struct hm_node *n, unsigned lo, unsigned hi)
{
	for (unsigned o = lo; o < hi; o++)
		if (n->free_head[o] != HM_PFN_NONE)
			return true;
	return false;
}

bool hm_node_has_block(struct hm_phys *ph, unsigned node, unsigned order)
{
	struct hm_node *n = &ph->nodes[node];

	hm_mutex_lock(&n->lock);
	bool has = has_block_locked(n, order, HM_MAX_ORDER + 1);
	hm_mutex_unlock(&n->lock);
	return has;
}

/* Up to HM_PCP_BATCH frames of @n into the empty cache @c (none only when
 * its free lists are empty): one block of that size where there is one
 * below 2 MiB (one list operation instead of 128, and frames that lie
 * together), else the holes (free blocks below the batch's order),
 * smallest first, as single allocations take them, and no more than there
 * are, fewer than a batch if so: a refill that split a huge block while
 * holes lay free would cost a huge page for nothing. (A zeroing batch
 * that needs more frames than the holes gave refills again, and then
 * splits one.) With no holes either, single frames would split the
 * smallest huge block one frame at a time: one block of the batch's order
 * splits the same one and takes the same frames, leaving the same blocks
 * free, with one list operation.
 * Context: c->lock. */
_Static_assert((HM_PCP_BATCH & (HM_PCP_BATCH - 1)) == 0 && HM_PCP_BATCH < (1u << HM_PMD_ORDER) &&
	       HM_PCP_BATCH <= HM_PCP_HIGH, "a refill is one block below 2 MiB that the cache can hold");

static void pcp_refill_locked(struct hm_phys *ph, struct hm_pcp *c, struct hm_node *n)
{
	const unsigned batch_order = (unsigned)__builtin_ctz(HM_PCP_BATCH);
	uint32_t got = 0, pfn = HM_PFN_NONE;

	hm_assert_int(c->count == 0);
	hm_mutex_lock(&n->lock);
	if (has_block_locked(n, batch_order, HM_PMD_ORDER) || !has_block_locked(n, 0, batch_order))
		pfn = alloc_locked(ph, n, batch_order, 0);
	if (pfn != HM_PFN_NONE) {
		/* Handed out lowest first: the cache is taken from the end. */
		for (uint32_t i = HM_PCP_BATCH; i-- > 0;)
			c->pfns[got++] = pfn + i;
	} else {
		/* Only the holes: fewer than a batch of them leave the cache
		 * short rather than split a huge block for the rest, whose
		 * frames the cache would hand out first. */
		while (got < HM_PCP_BATCH && has_block_locked(n, 0, batch_order) &&
		       (pfn = alloc_locked(ph, n, 0, 0)) != HM_PFN_NONE)
			c->pfns[got++] = pfn;
	}
	hm_mutex_unlock(&n->lock);
	if (!got)
		return;
	hm_sub(&ph->nr_free, got);
	for (uint32_t i = 0; i < got; i++)
		ph->pages[c->pfns[i]].flags = PG_PCP;
	hm_store(&c->count, got);
}

/* The @nr cached frames @pfns of a cache of @n back to its free lists.
 * Context: that cache's lock. */
static void pcp_release_locked(struct hm_phys *ph, struct hm_node *n, const uint32_t *pfns, uint32_t nr)
{
	for (uint32_t i = 0; i < nr; i++)
		ph->pages[pfns[i]].flags = 0;
	hm_mutex_lock(&n->lock);
	for (uint32_t i = 0; i < nr; i++)
		free_block_locked(ph, n, pfns[i], 0);
	node_free_add_locked(n, nr);
	hm_mutex_unlock(&n->lock);
	hm_add(&ph->nr_free, nr);
}

/* The oldest @nr frames of @c back to the free lists of @n (all of them
 * belong to it). Context: c->lock. */
static void pcp_drain_locked(struct hm_phys *ph, struct hm_pcp *c, struct hm_node *n, uint32_t nr)
{
	hm_assert_int(nr <= c->count);
	pcp_release_locked(ph, n, c->pfns, nr);
	memmove(c->pfns, c->pfns + nr, (c->count - nr) * sizeof(c->pfns[0]));
	hm_store(&c->count, c->count - nr);
}

/* A frame of @c, or HM_PFN_NONE: the most recently freed, else a zeroed
 * one (*@zeroed set); with @zero the other way round, as a zeroed frame
 * saves zeroing one. Context: c->lock. */
static uint32_t pcp_pop_locked(struct hm_phys *ph, struct hm_pcp *c, bool zero, bool *zeroed)
{
	uint32_t pfn;

	if (c->zcount && (zero || !c->count)) {
		pfn = c->zpfns[c->zcount - 1];
		hm_store(&c->zcount, c->zcount - 1);
		*zeroed = true;
		if (c->zpooled && zero)
			hm_store_relaxed(&c->zused, c->zused + 1);
	} else if (c->count) {
		pfn = c->pfns[c->count - 1];
		hm_store(&c->count, c->count - 1);
	} else {
		return HM_PFN_NONE;
	}
	ph->pages[pfn].flags = 0;
	return pfn;
}

_Static_assert(HM_PCP_ZBATCH <= HM_PCP_ZPOOL, "a zeroing batch fits the zeroed list");

/*
 * Up to HM_PCP_ZBATCH frames of @c (refilled from @n as needed) zeroed
 * into its empty zeroed list. Under the lock, which only this CPU's next
 * allocation or free and a drain wait for (a few microseconds): zeroed
 * outside it, the frames would be free and on no list in between, out of
 * hm_check's count and out of reach of a drain. Context: c->lock.
 */
static void pcp_zero_batch_locked(struct hm_phys *ph, struct hm_pcp *c, struct hm_node *n)
{
	uint32_t nr = 0;

	hm_assert_int(c->zcount == 0);
	c->zpooled = false;
	while (nr < HM_PCP_ZBATCH) {
		if (!c->count)
			pcp_refill_locked(ph, c, n);
		if (!c->count)
			break;
		uint32_t take = c->count < HM_PCP_ZBATCH - nr ? c->count : HM_PCP_ZBATCH - nr;

		memcpy(c->zpfns + nr, c->pfns + c->count - take, take * sizeof(c->pfns[0]));
		nr += take;
		/* Moved in one step for the unlocked counts (pcp_count): a
		 * frame in neither would make free memory read low for the
		 * whole zeroing. Only lock holders look inside. */
		hm_store(&c->count, c->count - take);
		hm_store(&c->zcount, nr);
	}
	hm_race_point("pcp_zeroing");
	hm_zero_frames(ph, c->zpfns, nr);
}

/* The empty zeroed list of @c filled from @node's idle-zeroing pool, as
 * far as it has frames. Context: c->lock. */
static void pcp_take_pooled_locked(struct hm_phys *ph, struct hm_pcp *c, unsigned node)
{
	unsigned nr = hm_prezero_take_frames(ph, node, c->zpfns, &c->zcount, HM_PCP_ZPOOL);

	for (unsigned i = 0; i < nr; i++)
		ph->pages[c->zpfns[i]].flags = PG_PCP;
	c->zpooled = nr != 0;
}

/* A 4 KiB frame of @node from this CPU's cache, refilled if empty; with
 * @zero, a zeroed one where the cache can make one (*@zeroed set), and the
 * line at @hot of the next one fetched ahead. */
static uint32_t pcp_alloc(struct hm_phys *ph, unsigned node, bool zero, bool *zeroed, unsigned hot)
{
	struct hm_pcp *c = pcp_of(ph, hm_this_cpu(ph->nr_cpus), node);
	uint32_t pfn;

	hm_mutex_lock(&c->lock);
	if (zero && !c->zcount && ph->zpool)
		pcp_take_pooled_locked(ph, c, node);
	if (zero && !c->zcount)
		pcp_zero_batch_locked(ph, c, &ph->nodes[node]);
	if (zero && c->zcount) {
		pfn = pcp_pop_locked(ph, c, true, zeroed);
		/* Streamed to memory with its batch: a fault ahead of the
		 * next fault hides most of that line's miss (4 KiB fault-in
		 * 10-12 % faster on the Xeon VM). */
		if (c->zcount)
			hm_prefetch_hot(ph, c->zpfns[c->zcount - 1], hot);
	} else {
		if (!c->count)
			pcp_refill_locked(ph, c, &ph->nodes[node]);
		pfn = pcp_pop_locked(ph, c, zero, zeroed);
	}
	hm_mutex_unlock(&c->lock);
	return pfn;
}

/*
 * Put a free 4 KiB frame (descriptor reset) in this CPU's cache; false if
 * it must go to the free lists instead: while a compaction window is open
 * on its node, whose frames must merge there. The window's opener sets
 * win_len and then drains every cache under its lock, and we read win_len
 * under the cache's lock: either we see the window, or the drain sees our
 * frame.
 */
static bool pcp_free(struct hm_phys *ph, struct hm_node *n, unsigned node, uint32_t pfn)
{
	struct hm_pcp *c = pcp_of(ph, hm_this_cpu(ph->nr_cpus), node);
	bool cached = false;

	hm_mutex_lock(&c->lock);
	if (hm_likely(!hm_load_relaxed(&n->win_len))) {
		ph->pages[pfn].flags = PG_PCP;
		c->pfns[c->count] = pfn;
		hm_store(&c->count, c->count + 1);
		if (c->count == HM_PCP_HIGH)
			pcp_drain_locked(ph, c, n, HM_PCP_BATCH);
		cached = true;
	}
	hm_mutex_unlock(&c->lock);
	return cached;
}

bool hm_pcp_drain_all(struct hm_phys *ph, int node)
{
	bool any = false;

	for (unsigned cpu = 0; cpu < ph->nr_cpus; cpu++) {
		for (unsigned i = 0; i < ph->nr_nodes; i++) {
			if (node >= 0 && i != (unsigned)node)
				continue;
			struct hm_pcp *c = pcp_of(ph, cpu, i);

			hm_mutex_lock(&c->lock);
			if (c->count || c->zcount) {
				pcp_drain_locked(ph, c, &ph->nodes[i], c->count);
				pcp_release_locked(ph, &ph->nodes[i], c->zpfns, c->zcount);
				hm_store(&c->zcount, 0);
				any = true;
			}
			hm_mutex_unlock(&c->lock);
		}
	}
	return any;
}

uint64_t hm_prezero_used(struct hm_phys *ph)
{
	uint64_t nr = hm_load_relaxed(&ph->prezero_used);

	for (unsigned i = 0; i < ph->nr_cpus * ph->nr_nodes; i++)
		nr += hm_load_relaxed(&ph->pcp[i].zused);
	return nr;
}

static uint64_t pcp_count(struct hm_phys *ph, int node)
{
	uint64_t nr = 0;

	for (unsigned cpu = 0; cpu < ph->nr_cpus; cpu++)
		for (unsigned i = 0; i < ph->nr_nodes; i++)
			if (node < 0 || i == (unsigned)node)
				nr += hm_load_relaxed(&pcp_of(ph, cpu, i)->count) +
				      hm_load_relaxed(&pcp_of(ph, cpu, i)->zcount);
	return nr;
}

uint64_t hm_phys_nr_free(struct hm_phys *ph)
{
	/* The pools before the caches: a frame moving from one to the other
	 * is then counted twice or once, never missed (see
	 * hm_prezero_take_frames). */
	uint64_t pooled = hm_prezero_count(ph, -1);

	hm_race_point("nr_free_pools_read");
	return pooled + pcp_count(ph, -1) + hm_load_relaxed(&ph->nr_free);
}

uint64_t hm_node_nr_free(struct hm_phys *ph, unsigned node)
{
	uint64_t pooled = hm_prezero_count(ph, (int)node);	/* first: as above */

	return pooled + pcp_count(ph, (int)node) + hm_load_relaxed(&ph->nodes[node].nr_free);
}

int hm_pcp_for_each(struct hm_phys *ph, int (*fn)(void *arg, uint32_t pfn, unsigned cpu, unsigned node, bool zeroed),
		    void *arg)
{
	for (unsigned cpu = 0; cpu < ph->nr_cpus; cpu++) {
		for (unsigned i = 0; i < ph->nr_nodes; i++) {
			struct hm_pcp *c = pcp_of(ph, cpu, i);

			for (uint32_t k = 0; k < c->count + c->zcount; k++) {
				bool z = k >= c->count;
				int r = fn(arg, z ? c->zpfns[k - c->count] : c->pfns[k], cpu, i, z);

				if (r)
					return r;
			}
		}
	}
	return 0;
}

/* *@zeroed is set when the frame comes zeroed. */
static uint32_t alloc_pages(struct hm_phys *ph, unsigned node, unsigned order, unsigned flags, bool *zeroed,
			    unsigned hot)
{
	bool pcp = order == 0 && !(flags & HM_ALLOC_UNMOVABLE);

	for (unsigned i = 0; i < ph->nr_nodes; i++) {
		unsigned nd = (node + i) % ph->nr_nodes;
		uint32_t pfn = pcp ? pcp_alloc(ph, nd, flags & HM_ALLOC_ZERO, zeroed, hot)
				   : node_alloc(ph, &ph->nodes[nd], order, flags);

		if (pfn != HM_PFN_NONE || (flags & HM_ALLOC_THISNODE))
			return pfn;
	}
	return HM_PFN_NONE;
}

/* A frame from any CPU's cache of an allowed node, or HM_PFN_NONE. */
static uint32_t pcp_steal(struct hm_phys *ph, unsigned node, unsigned flags, bool *zeroed)
{
	for (unsigned i = 0; i < ph->nr_nodes; i++) {
		unsigned nd = (node + i) % ph->nr_nodes;

		for (unsigned cpu = 0; cpu < ph->nr_cpus; cpu++) {
			struct hm_pcp *c = pcp_of(ph, cpu, nd);

			hm_mutex_lock(&c->lock);
			uint32_t pfn = pcp_pop_locked(ph, c, flags & HM_ALLOC_ZERO, zeroed);
			hm_mutex_unlock(&c->lock);
			if (pfn != HM_PFN_NONE)
				return pfn;
		}
		if (flags & HM_ALLOC_THISNODE)
			break;
	}
	return HM_PFN_NONE;
}

/*
 * The frames of @node (-1: all) in the idle-zeroing pools and the per-CPU
 * caches back to the free lists; whether there were any. The pools first:
 * a cache takes frames from a pool (pcp_take_pooled_locked), so that the
 * other way round, a fault between the two drains could move a pool's
 * frames into a cache already drained, where a compaction window would
 * never see its block whole.
 */
static bool drain_pools_and_caches(struct hm_phys *ph, int node)
{
	bool any = hm_prezero_drain(ph, node);

	hm_race_point("pools_drained");
	return hm_pcp_drain_all(ph, node) || any;
}

uint32_t hm_alloc_pages(struct hm_phys *ph, unsigned node, unsigned order, unsigned flags)
{
	return hm_alloc_pages_hot(ph, node, order, flags, HM_HOT_NONE);
}

uint32_t hm_alloc_pages_hot(struct hm_phys *ph, unsigned node, unsigned order, unsigned flags, unsigned hot)
{
	hm_assert(order <= HM_MAX_ORDER && node < ph->nr_nodes);
	if (!(flags & HM_ALLOC_COUNTED) && hm_fail_hit(&ph->fail))
		return HM_PFN_NONE;

	bool zeroed = false;
	uint32_t pfn = alloc_pages(ph, node, order, flags, &zeroed, hot);
	/* Frames in other CPUs' caches are free too, and may complete a block
	 * once merged: never fail while there are any. */
	if (pfn == HM_PFN_NONE && drain_pools_and_caches(ph, (flags & HM_ALLOC_THISNODE) ? (int)node : -1)) {
		hm_race_point("alloc_drained");
		pfn = alloc_pages(ph, node, order, flags, &zeroed, hot);
	}
	/* Another CPU may have refilled its cache with what the drain gave
	 * back, a batch where it needed one frame: take one from it rather
	 * than fail while frames are free. */
	if (pfn == HM_PFN_NONE && order == 0 && !(flags & HM_ALLOC_UNMOVABLE))
		pfn = pcp_steal(ph, node, flags, &zeroed);
	if (pfn != HM_PFN_NONE && zeroed)	/* from a cache, by any way above */
		hm_assert_zeroed(ph, pfn, 0);
	else if (pfn != HM_PFN_NONE && (flags & HM_ALLOC_ZERO))
		hm_zero_pages(ph, pfn, order);
	return pfn;
}

/*
 * Put the free block [pfn, pfn + 2^o) on its list, merged with its free
 * buddies. Inside the compaction window a block merges up to the window's
 * size and no further, and goes on the window's lists.
 */
static void free_block_locked(struct hm_phys *ph, struct hm_node *n, uint32_t pfn, unsigned o)
{
	while (o < HM_MAX_ORDER) {
		uint32_t buddy = pfn ^ (1u << o);

		if (buddy < n->start_pfn || buddy + (1u << o) > n->end_pfn)
			break;
		if (hm_unlikely(n->win_len) && (1u << o) >= n->win_len &&
		    (in_window(n, pfn) || in_window(n, buddy)))
			break;
		struct hm_page *b = &ph->pages[buddy];
		if (b->buddy != o + 1)
			break;
		list_del_from(ph, n, lists_of(n, buddy), buddy, o);
		pfn &= ~(1u << o);
		o++;
	}
	list_add_to(ph, n, lists_of(n, pfn), pfn, o);
}

static void free_pages(struct hm_phys *ph, uint32_t pfn, unsigned order, bool unmovable, bool direct)
{
	struct hm_node *n = &ph->nodes[hm_pfn_node(ph, pfn)];

	hm_assert(!(pfn & ((1u << order) - 1)));
	hm_assert(pfn >= n->start_pfn && pfn + (1u << order) <= n->end_pfn);
	/* Reset the descriptors outside the lock; the block is ours alone,
	 * but for its head's buddy byte, which a free of a neighbouring block
	 * reads under node->lock to see whether it may merge (the buddy of
	 * any other block is our block whole or lies outside it):
	 * hm_page_reset leaves that byte alone. The other frames of a huge
	 * block whole lines at a time, with streaming stores (clear.c): no
	 * frame of a block in use heads a free one (buddy 0). The
	 * field-by-field reset took 3.5 % of a 2 MiB fault-in round trip in
	 * the profile, a memset 2.2 %; the streaming stores also take the
	 * read for ownership out. */
	if (order >= HM_PMD_ORDER) {
		for (uint32_t i = 1; HM_DEBUG >= 2 && i < (1u << order); i++)
			hm_assert(!(ph->pages[pfn + i].flags & PG_TABLE) && !ph->pages[pfn + i].buddy);
		hm_assert_int(!(ph->pages[pfn].flags & PG_TABLE));
		hm_page_reset(&ph->pages[pfn]);
		hm_pages_reset_tails(ph, pfn, order);
	} else {
		for (uint32_t i = 0; i < (1u << order); i++) {
			struct hm_page *pg = &ph->pages[pfn + i];

			hm_assert_int(!(pg->flags & PG_TABLE));
			hm_page_reset(pg);
		}
	}

	if (order == 0 && !unmovable && !direct && pcp_free(ph, n, hm_pfn_node(ph, pfn), pfn))
		return;
	hm_mutex_lock(&n->lock);
	if (unmovable) {
		hm_assert(n->unmovable[hm_region_of(n, pfn)] >= (1u << (order < n->group_shift ? order : n->group_shift)));
		unmovable_add_locked(n, pfn, order, -((int64_t)1 << order));
	}
	node_free_add_locked(n, (int64_t)1 << order);
	free_block_locked(ph, n, pfn, order);
	hm_mutex_unlock(&n->lock);
	hm_add(&ph->nr_free, 1u << order);
}

void hm_free_pages(struct hm_phys *ph, uint32_t pfn, unsigned order)
{
	free_pages(ph, pfn, order, false, false);
}

void hm_free_unmovable(struct hm_phys *ph, uint32_t pfn, unsigned order)
{
	free_pages(ph, pfn, order, true, false);
}

void hm_free_pages_direct(struct hm_phys *ph, uint32_t pfn, unsigned order)
{
	free_pages(ph, pfn, order, false, true);
}

uint32_t hm_alloc_block_quiet(struct hm_phys *ph, unsigned node, unsigned order)
{
	return node_alloc(ph, &ph->nodes[node], order, 0);
}

int hm_window_open(struct hm_phys *ph, unsigned node, uint32_t pfn, unsigned order)
{
	struct hm_node *n = &ph->nodes[node];
	uint32_t end = pfn + (1u << order);

	hm_assert(!(pfn & ((1u << order) - 1)) && pfn >= n->start_pfn && end <= n->end_pfn);
	/* zero_busy: no block is on its way into a pool while the pools
	 * are drained below, so none of the window's frames stays pooled. */
	hm_mutex_lock(&ph->zero_busy);
	hm_mutex_lock(&n->lock);
	if (n->win_len) {
		hm_mutex_unlock(&n->lock);
		hm_mutex_unlock(&ph->zero_busy);
		return -EBUSY;
	}
	/* Part of a free block (itself or a larger one): nothing to do. */
	for (unsigned o = order; o <= HM_MAX_ORDER; o++) {
		uint32_t p = pfn & ~((1u << o) - 1);

		if (p >= n->start_pfn && ph->pages[p].buddy == o + 1) {
			hm_mutex_unlock(&n->lock);
			hm_mutex_unlock(&ph->zero_busy);
			return -EEXIST;
		}
	}
	/* Every free block in the block lies wholly inside it: move them
	 * to the window's lists. */
	for (unsigned o = 0; o <= HM_MAX_ORDER; o++)
		n->win_head[o] = HM_PFN_NONE;
	for (uint32_t p = pfn; p < end;) {
		unsigned b = ph->pages[p].buddy;

		if (!b) {
			p++;
			continue;
		}
		list_del(ph, n, p, b - 1);
		list_add_to(ph, n, n->win_head, p, b - 1);
		p += 1u << (b - 1);
	}
	n->win_start = pfn;
	hm_store(&n->win_len, 1u << order);
	hm_mutex_unlock(&n->lock);
	/* Frames of the block in the node's zeroed pools and per-CPU caches
	 * go to the window's lists (the pools' zeroing is lost: they refill
	 * once the window is closed, see fill_one); from now on, frees into
	 * the block pass the caches (pcp_free), and no pool refills. */
	hm_race_point("window_pcp_drain");
	drain_pools_and_caches(ph, (int)node);
	hm_mutex_unlock(&ph->zero_busy);
	return 0;
}

uint32_t hm_window_close(struct hm_phys *ph, unsigned node, bool take)
{
	struct hm_node *n = &ph->nodes[node];
	uint32_t pfn = n->win_start, got = HM_PFN_NONE;
	unsigned order = (unsigned)__builtin_ctz(n->win_len);

	hm_mutex_lock(&n->lock);
	hm_assert(n->win_len);
	if (take && ph->pages[pfn].buddy == order + 1) {
		list_del_from(ph, n, n->win_head, pfn, order);
		node_free_add_locked(n, -((int64_t)1 << order));
		got = pfn;
	}
	hm_store(&n->win_len, 0);
	/* What is left goes back, merging where the window stopped it. */
	for (unsigned o = 0; o <= HM_MAX_ORDER; o++) {
		while (n->win_head[o] != HM_PFN_NONE) {
			uint32_t p = n->win_head[o];

			list_del_from(ph, n, n->win_head, p, o);
			free_block_locked(ph, n, p, o);
		}
	}
	hm_mutex_unlock(&n->lock);
	if (got != HM_PFN_NONE)
		hm_sub(&ph->nr_free, 1u << order);
	return got;
}

bool hm_block_unmovable(struct hm_phys *ph, struct hm_node *n, uint32_t pfn, unsigned order)
{
	(void)ph;
	bool ret = false;
	uint32_t nr = order > n->group_shift ? 1u << (order - n->group_shift) : 1;

	hm_mutex_lock(&n->lock);
	for (uint32_t r = 0; r < nr && !ret; r++)
		ret = n->unmovable[hm_region_of(n, pfn) + r] != 0;
	hm_mutex_unlock(&n->lock);
	return ret;
}

uint64_t hm_phys_movable_blocks(struct hm_phys *ph, unsigned order)
{
	uint64_t nr = 0;

	for (unsigned i = 0; i < ph->nr_nodes; i++) {
		struct hm_node *n = &ph->nodes[i];
		uint32_t size = 1u << order;

		for (uint32_t p = HM_ALIGN_UP(n->start_pfn, size); p + size <= n->end_pfn && p + size > p; p += size)
			nr += !hm_block_unmovable(ph, n, p, order);
	}
	return nr;
}

/*
 * Not hm_free_pages(): that resets every descriptor of the block, which
 * would write all of them (64 bytes per 4 KiB frame, 4 GiB for a 256 GiB
 * system) before any is used. The blocks are maximal (each is as large as
 * its alignment and the node's end allow), so none could merge with
 * another.
 */
void hm_buddy_init_node(struct hm_phys *ph, struct hm_node *n)
{
	for (unsigned o = 0; o <= HM_MAX_ORDER; o++)
		n->free_head[o] = n->win_head[o] = HM_PFN_NONE;
	hm_store_relaxed(&n->nr_free, 0);
	n->win_len = 0;
	for (uint32_t p = n->start_pfn; p < n->end_pfn;) {
		unsigned o = HM_MAX_ORDER;

		while (o && ((p & ((1u << o) - 1)) || p + (1u << o) > n->end_pfn))
			o--;
		hm_assert_int(ph->pages[p].flags == 0 && ph->pages[p].buddy == 0);
		list_add(ph, n, p, o);
		node_free_add_locked(n, (int64_t)1 << o);
		p += 1u << o;
	}
	hm_add(&ph->nr_free, n->nr_free);
}

void hm_phys_lock_all(struct hm_phys *ph)
{
	hm_mutex_lock(&ph->zero_busy);
	for (unsigned i = 0; i < ph->nr_cpus * ph->nr_nodes; i++)
		hm_mutex_lock(&ph->pcp[i].lock);
	for (unsigned i = 0; ph->zpool && i < ph->nr_nodes; i++)
		hm_mutex_lock(&ph->zpool[i].lock);
	for (unsigned i = 0; i < ph->nr_nodes; i++)
		hm_mutex_lock(&ph->nodes[i].lock);
}

void hm_phys_unlock_all(struct hm_phys *ph)
{
	for (unsigned i = ph->nr_nodes; i-- > 0;)
		hm_mutex_unlock(&ph->nodes[i].lock);
	for (unsigned i = ph->nr_nodes; ph->zpool && i-- > 0;)
		hm_mutex_unlock(&ph->zpool[i].lock);
	for (unsigned i = ph->nr_cpus * ph->nr_nodes; i-- > 0;)
		hm_mutex_unlock(&ph->pcp[i].lock);
	hm_mutex_unlock(&ph->zero_busy);
}

int hm_phys_for_each_free(struct hm_phys *ph, int (*fn)(void *arg, uint32_t pfn, unsigned order), void *arg)
{
	for (unsigned i = 0; i < ph->nr_nodes; i++) {
		struct hm_node *n = &ph->nodes[i];

		for (unsigned o = 0; o <= HM_MAX_ORDER; o++) {
			uint64_t seen = 0;

			for (int w = 0; w < 2; w++) {
				uint32_t first = w ? n->win_head[o] : n->free_head[o];

				if (w && !n->win_len)
					break;
				for (uint32_t p = first; p != HM_PFN_NONE; p = ph->pages[p].lru.next) {
					int r = fn(arg, p, o);

					if (r)
						return r;
					if (++seen > n->nr_blocks[o])
						return -ELOOP;
					if (w != in_window(n, p))
						return -EXDEV;
				}
			}
			if (seen != n->nr_blocks[o])
				return -ELOOP;
		}
	}
	return 0;
}
