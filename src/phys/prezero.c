/* SPDX-License-Identifier: MIT */
/*
 * Idle zeroing (HM_PREZERO): a thread zeroes free 2 MiB blocks ahead of
 * time, with non-temporal stores, and keeps them in a pool per node, so
 * that a fault takes a zeroed 4 KiB frame (or a whole 2 MiB block) and
 * skips its zeroing. 4 KiB frames leave a pool HM_PCP_ZPOOL at a time, for
 * a per-CPU cache's zeroed list (buddy.c), which the faults take them
 * from: taken one per fault, two threads faulting in one process shared
 * the pool's lock and lines on every fault and ran together at 0.67-0.93x
 * of one thread (phys.h says more). The work is not free, only moved: the
 * thread's frames and nanoseconds are counted (prezero_pages, prezero_ns),
 * and so are the frames faults took zeroed (prezero_used; the caches count
 * theirs).
 *
 * A frame in a pool is free and marked PG_ZEROED, which means it is all
 * zero: the thread marks a block only after zeroing it, and the mark is
 * dropped when the frame leaves the pool (to a fault, to a per-CPU cache's
 * zeroed list, or back to the free lists, where a free frame is dirty
 * again). Pool frames count in nr_free_pages; an allocation that finds
 * nothing free drains the pools (hm_alloc_pages), as it drains the per-CPU
 * caches.
 *
 * The thread takes blocks only while a quarter of all frames are free on
 * the buddy lists, up to a target of an eighth of the node (at
 * most 1 GiB): under memory pressure it stays idle. It holds zero_busy
 * from taking a block until the block is in the pool, so that hm_check,
 * which takes zero_busy first (hm_phys_lock_all), never finds a block in
 * flight.
 *
 * Lock order: zero_busy > pcp->lock > zpool->lock > node->lock.
 */
#include <stdlib.h>
#include <time.h>

#include "../base/race.h"
#include "phys.h"

#define HM_ZPOOL_MAX_FRAMES (1u << HM_PUD_ORDER)	/* 1 GiB per node */
#define HM_ZPOOL_SLEEP_MS 10

static uint64_t ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Frames in @z: one word, so that an unlocked reader never combines a
 * block's count from before a take with the current block's from after it
 * (which read a block low). Acquire: see hm_phys_nr_free. */
static uint64_t zpool_frames(const struct hm_zpool *z)
{
	return hm_load(&z->frames);
}

uint64_t hm_prezero_count(struct hm_phys *ph, int node)
{
	uint64_t nr = 0;

	for (unsigned i = 0; ph->zpool && i < ph->nr_nodes; i++)
		if (node < 0 || i == (unsigned)node)
			nr += zpool_frames(&ph->zpool[i]);
	return nr;
}

/* The next zeroed frame of @z, or HM_PFN_NONE. Context: z->lock. */
static uint32_t take_frame_locked(struct hm_zpool *z)
{
	if (z->cur == HM_PFN_NONE) {
		if (!z->nr)
			return HM_PFN_NONE;
		hm_store(&z->nr, z->nr - 1);
		hm_store(&z->used, 0);
		hm_store(&z->cur, z->blocks[z->nr]);
	}
	uint32_t pfn = z->cur + z->used;

	hm_store(&z->used, z->used + 1);
	hm_store(&z->frames, z->frames - 1);
	if (z->used == HM_PTRS) {
		hm_store(&z->cur, HM_PFN_NONE);
		hm_store(&z->used, 0);
	}
	return pfn;
}

/* Wake the thread for a pool that ran low. Read and signalled without
 * zero_lock, to keep a global lock off the fault path: a wakeup is lost
 * when the thread is between its fill pass and its sleep, and then it
 * comes late, not never: the thread sleeps at most HM_ZPOOL_SLEEP_MS (a
 * timed wait), and no fault waits for it (an empty pool sends the fault to
 * the free lists). */
static void wake_if_low(struct hm_phys *ph, bool low)
{
	if (low && hm_load_relaxed(&ph->zero_sleeping))
		pthread_cond_signal(&ph->zero_wake);
}

unsigned hm_prezero_take_frames(struct hm_phys *ph, unsigned node, uint32_t *pfns, uint32_t *count,
				unsigned max)
{
	struct hm_zpool *z = &ph->zpool[node];
	unsigned nr = 0;

	if (!zpool_frames(z))
		return 0;
	hm_mutex_lock(&z->lock);
	while (nr < max && z->frames) {
		/* Counted in the caller's list before it leaves the pool: an
		 * unlocked count of free frames, which reads the pools first
		 * (hm_phys_nr_free), counts it twice for a moment, never not
		 * at all. */
		hm_store(count, nr + 1);
		pfns[nr] = take_frame_locked(z);
		hm_race_point("pool_frame_taken");
		hm_assert_int(ph->pages[pfns[nr]].flags == PG_ZEROED);
		ph->pages[pfns[nr++]].flags = 0;
	}
	bool low = zpool_frames(z) < ph->zero_target / 2;
	hm_mutex_unlock(&z->lock);
	wake_if_low(ph, low);
	return nr;
}

uint32_t hm_prezero_take_block(struct hm_phys *ph)
{
	for (unsigned i = 0; ph->zpool && i < ph->nr_nodes; i++) {
		struct hm_zpool *z = &ph->zpool[i];
		uint32_t pfn = HM_PFN_NONE;

		if (!hm_load_relaxed(&z->nr))
			continue;
		hm_mutex_lock(&z->lock);
		if (z->nr) {
			hm_store(&z->nr, z->nr - 1);
			hm_store(&z->frames, z->frames - HM_PTRS);
			pfn = z->blocks[z->nr];
		}
		bool low = zpool_frames(z) < ph->zero_target / 2;
		hm_mutex_unlock(&z->lock);
		if (pfn == HM_PFN_NONE)
			continue;
		for (uint32_t k = 0; k < HM_PTRS; k++) {
			hm_assert_int(ph->pages[pfn + k].flags == PG_ZEROED);
			ph->pages[pfn + k].flags = 0;
		}
		hm_assert_zeroed(ph, pfn, HM_PMD_ORDER);
		hm_add(&ph->prezero_used, HM_PTRS);
		wake_if_low(ph, low);
		return pfn;
	}
	return HM_PFN_NONE;
}

/* Free [pfn, pfn + nr) back to @node's lists in aligned blocks, bypassing
 * the per-CPU caches (the pool's lock is held: see the lock order). */
static void free_range(struct hm_phys *ph, uint32_t pfn, uint32_t nr)
{
	while (nr) {
		unsigned o = (unsigned)__builtin_ctz(pfn | (1u << HM_PMD_ORDER));

		while ((1u << o) > nr)
			o--;
		hm_free_pages_direct(ph, pfn, o);	/* resets PG_ZEROED */
		pfn += 1u << o;
		nr -= 1u << o;
	}
}

bool hm_prezero_drain(struct hm_phys *ph, int node)
{
	bool any = false;

	for (unsigned i = 0; ph->zpool && i < ph->nr_nodes; i++) {
		struct hm_zpool *z = &ph->zpool[i];

		if ((node >= 0 && i != (unsigned)node) || !zpool_frames(z))
			continue;
		hm_mutex_lock(&z->lock);
		/* Each range uncounted here only once it is counted free:
		 * a reader counts it twice for a moment, never not at all. */
		if (z->cur != HM_PFN_NONE) {
			free_range(ph, z->cur + z->used, HM_PTRS - z->used);
			hm_store(&z->frames, z->frames - (HM_PTRS - z->used));
			hm_store(&z->cur, HM_PFN_NONE);
			hm_store(&z->used, 0);
			any = true;
		}
		while (z->nr) {
			free_range(ph, z->blocks[z->nr - 1], HM_PTRS);
			hm_store(&z->frames, z->frames - HM_PTRS);
			hm_store(&z->nr, z->nr - 1);
			any = true;
		}
		hm_mutex_unlock(&z->lock);
	}
	return any;
}

int hm_prezero_for_each(struct hm_phys *ph, int (*fn)(void *arg, uint32_t pfn, unsigned node), void *arg)
{
	for (unsigned i = 0; ph->zpool && i < ph->nr_nodes; i++) {
		struct hm_zpool *z = &ph->zpool[i];

		for (uint32_t b = 0; b < z->nr; b++)
			for (uint32_t k = 0; k < HM_PTRS; k++) {
				int r = fn(arg, z->blocks[b] + k, i);

				if (r)
					return r;
			}
		for (uint32_t k = z->used; z->cur != HM_PFN_NONE && k < HM_PTRS; k++) {
			int r = fn(arg, z->cur + k, i);

			if (r)
				return r;
		}
	}
	return 0;
}

/* One block for @node's pool, if it wants one and the node can spare it.
 * Returns whether it added one. Context: the zeroing thread. */
static bool fill_one(struct hm_phys *ph, unsigned node)
{
	struct hm_zpool *z = &ph->zpool[node];

	/* The free lists' count of all nodes, which is atomic (a node's is
	 * written under its lock). */
	if (zpool_frames(z) + HM_PTRS > ph->zero_target || hm_load_relaxed(&ph->nr_free) < ph->nr_frames / 4)
		return false;
	hm_mutex_lock(&ph->zero_busy);
	/* Compaction is assembling a block of this node (hm_window_open
	 * drained the pools under zero_busy): leave its free frames alone. */
	if (hm_load_relaxed(&ph->nodes[node].win_len)) {
		hm_mutex_unlock(&ph->zero_busy);
		return false;
	}
	uint32_t pfn = hm_alloc_block_quiet(ph, node, HM_PMD_ORDER);
	if (pfn == HM_PFN_NONE) {
		hm_mutex_unlock(&ph->zero_busy);
		return false;
	}
	uint64_t t0 = ns_now();
	hm_zero_pages(ph, pfn, HM_PMD_ORDER);
	hm_add(&ph->prezero_ns, ns_now() - t0);
	hm_add(&ph->prezero_frames, HM_PTRS);
	hm_mutex_lock(&z->lock);
	for (uint32_t k = 0; k < HM_PTRS; k++)
		ph->pages[pfn + k].flags = PG_ZEROED;
	hm_assert_int(z->nr < z->cap);
	z->blocks[z->nr] = pfn;
	hm_store(&z->nr, z->nr + 1);
	hm_store(&z->frames, z->frames + HM_PTRS);
	hm_mutex_unlock(&z->lock);
	hm_mutex_unlock(&ph->zero_busy);
	return true;
}

static void *zero_main(void *arg)
{
	struct hm_phys *ph = arg;

	hm_mutex_lock(&ph->zero_lock);
	while (!ph->zero_stop) {
		hm_mutex_unlock(&ph->zero_lock);
		bool did = false;

		for (unsigned i = 0; i < ph->nr_nodes && !hm_load_relaxed(&ph->zero_stop); i++)
			did |= fill_one(ph, i);
		hm_mutex_lock(&ph->zero_lock);
		if (did || ph->zero_stop)
			continue;
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += HM_ZPOOL_SLEEP_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		hm_store(&ph->zero_sleeping, true);
		pthread_cond_timedwait(&ph->zero_wake, &ph->zero_lock, &ts);
		hm_store(&ph->zero_sleeping, false);
	}
	hm_mutex_unlock(&ph->zero_lock);
	return NULL;
}

/* The pools, each on cache lines of its own (their type says so: calloc
 * would not honour it); through the failpoint. */
static struct hm_zpool *zpools_alloc(struct hm_phys *ph)
{
	size_t size = ph->nr_nodes * sizeof(struct hm_zpool);
	void *p;

	hm_might_sleep();
	if (hm_fail_hit(&ph->fail) || posix_memalign(&p, _Alignof(struct hm_zpool), size))
		return NULL;
	return memset(p, 0, size);
}

int hm_prezero_start(struct hm_phys *ph)
{
	uint32_t span = ph->node_span;

	ph->zero_target = HM_MIN(span / 8, HM_ZPOOL_MAX_FRAMES) & ~(uint64_t)(HM_PTRS - 1);
	ph->zero_stop = false;	/* no thread yet: a start after a stop */
	ph->zpool = zpools_alloc(ph);
	if (!ph->zpool)
		return -ENOMEM;
	/* Every pool empty before any block array can fail: the cleanup
	 * drains all pools, and calloc's cur of 0 would be frame 0. */
	for (unsigned i = 0; i < ph->nr_nodes; i++) {
		pthread_mutex_init(&ph->zpool[i].lock, NULL);
		ph->zpool[i].cur = HM_PFN_NONE;
	}
	for (unsigned i = 0; i < ph->nr_nodes; i++) {
		struct hm_zpool *z = &ph->zpool[i];

		z->cap = (uint32_t)(ph->zero_target >> HM_PMD_ORDER) + 1;
		if (!(z->blocks = hm_calloc(&ph->fail, z->cap, sizeof(*z->blocks)))) {
			hm_prezero_stop(ph);
			return -ENOMEM;
		}
	}
	if (pthread_create(&ph->zero_thread, NULL, zero_main, ph)) {
		hm_prezero_stop(ph);
		return -ENOMEM;
	}
	ph->zero_running = true;
	return 0;
}

void hm_prezero_stop(struct hm_phys *ph)
{
	if (!ph->zpool)
		return;
	hm_mutex_lock(&ph->zero_lock);
	hm_store(&ph->zero_stop, true);
	pthread_cond_signal(&ph->zero_wake);
	hm_mutex_unlock(&ph->zero_lock);
	if (ph->zero_running)
		pthread_join(ph->zero_thread, NULL);
	ph->zero_running = false;
	hm_prezero_drain(ph, -1);
	for (unsigned i = 0; i < ph->nr_nodes; i++) {
		pthread_mutex_destroy(&ph->zpool[i].lock);
		free(ph->zpool[i].blocks);
	}
	free(ph->zpool);
	ph->zpool = NULL;
}
