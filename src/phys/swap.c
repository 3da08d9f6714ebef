/* SPDX-License-Identifier: MIT */
/*
 * The swap device (see swap.h for the slot word and the rules).
 *
 * Allocation is a scan of cl_used from a cursor rather than free lists: the
 * map is small (a 1 GiB file has 512 clusters, one KiB of cl_used), and the
 * cursor stays on one partly used cluster until it is full, so consecutive
 * single-slot allocations cost O(1) and a full scan happens about once per
 * cluster filled.
 *
 * Invariants (sw->lock): cl_used[c] = slots of cluster c whose word is
 * nonzero; nr_free = nr_slots - sum of cl_used; next < nr_slots and
 * next_cluster < nr_clusters, or 0 when there are none.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "swap.h"

#define SLOT_SIZE	HM_PAGE_SIZE

/* Clusters in cl_used: the full ones and the short tail, if any. */
static uint64_t nr_cl_all(const struct hm_swap *sw)
{
	return (sw->nr_slots + HM_SWP_CLUSTER - 1) / HM_SWP_CLUSTER;
}

static unsigned cl_size(const struct hm_swap *sw, uint64_t c)
{
	if (c < sw->nr_clusters)
		return HM_SWP_CLUSTER;
	return (unsigned)(sw->nr_slots - c * HM_SWP_CLUSTER);
}

static void check_range(const struct hm_swap *sw, uint64_t s, unsigned n)
{
	hm_assert(sw->map && s <= sw->nr_slots && n <= sw->nr_slots - s);
}

int hm_swap_init(struct hm_swap *sw, const char *path, uint64_t bytes, struct hm_fail *fail)
{
	int fd, err;

	memset(sw, 0, sizeof(*sw));
	sw->fd = -1;
	sw->fail = fail;
	hm_spin_init(&sw->lock);
	if (!path)
		return 0;
	/* off_t is signed: a size it cannot hold is as invalid as 0. */
	if (!bytes || bytes % SLOT_SIZE || bytes > (uint64_t)INT64_MAX)
		return -EINVAL;

	hm_might_sleep();
	sw->nr_slots = bytes / SLOT_SIZE;
	sw->nr_clusters = sw->nr_slots / HM_SWP_CLUSTER;
	/* Memory first: failing here leaves the path untouched. */
	sw->map = hm_calloc(fail, sw->nr_slots, sizeof(*sw->map));
	sw->cl_used = hm_calloc(fail, nr_cl_all(sw), sizeof(*sw->cl_used));
	sw->cache = hm_malloc(fail, sw->nr_slots * sizeof(*sw->cache));
	if (!sw->map || !sw->cl_used || !sw->cache) {
		err = -ENOMEM;
		goto out_free;
	}

	/* A file we create we also remove if we fail, so that a failed
	 * hm_system_create leaves no file behind. */
	bool created = true;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		struct stat st;

		/* An existing file is reused, but only a regular one reached
		 * without a symbolic link: never a device, nor a file a link
		 * planted under a predictable name points to. */
		created = false;
		fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
			close(fd);
			err = -EINVAL;
			goto out_free;
		}
		if (fd >= 0 && ftruncate(fd, 0)) {
			err = -errno;
			close(fd);
			goto out_free;
		}
	}
	if (fd < 0) {
		err = -errno;
		goto out_free;
	}
	while ((err = ftruncate(fd, (off_t)bytes)) && errno == EINTR)
		;
	if (err) {
		err = -errno;
		goto out_close;
	}
	/* Reserve the blocks now, so that a full disk fails the setup and not
	 * a page's way out. posix_fallocate returns its error. */
	while ((err = posix_fallocate(fd, 0, (off_t)bytes)) == EINTR)
		;
	if (err) {
		err = -err;
		/* Give back what was reserved before the disk ran out. */
		if (ftruncate(fd, 0)) {
			/* the error to report is the first one */
		}
		goto out_close;
	}
	sw->fd = fd;
	sw->nr_free = sw->nr_slots;
	for (uint64_t i = 0; i < sw->nr_slots; i++)
		sw->cache[i] = HM_PFN_NONE;
	return 0;

out_close:
	close(fd);
	if (created)
		unlink(path);
out_free:
	free(sw->map);
	free(sw->cl_used);
	free(sw->cache);
	memset(sw, 0, sizeof(*sw));
	sw->fd = -1;
	sw->fail = fail;
	return err;
}

void hm_swap_fini(struct hm_swap *sw)
{
	/* An initialised device with a file always has a map; a struct that
	 * was only zeroed has fd 0, which is not ours to close. */
	if (sw->map && sw->fd >= 0)
		close(sw->fd);
	free(sw->map);
	free(sw->cl_used);
	free(sw->cache);
	sw->map = NULL;
	sw->cl_used = NULL;
	sw->cache = NULL;
	sw->fd = -1;
	sw->nr_slots = sw->nr_clusters = 0;
	sw->next = sw->next_cluster = 0;
	hm_store(&sw->nr_free, 0);
}

/* Slot @s was free; it now holds a page on its way out. */
static void take_slot_locked(struct hm_swap *sw, uint64_t s)
{
	hm_assert_locked(&sw->lock);
	hm_assert(sw->map[s] == 0);
	sw->map[s] = HM_SWP_CACHE | HM_SWP_WRITEBACK;
	sw->cl_used[s / HM_SWP_CLUSTER]++;
	hm_sub(&sw->nr_free, 1);
}

/* Store @word into slot @s, which was in use; 0 frees it. */
static void set_word_locked(struct hm_swap *sw, uint64_t s, uint32_t word)
{
	hm_assert_locked(&sw->lock);
	hm_assert_int(sw->map[s] != 0);
	sw->map[s] = word;
	if (word)
		return;
	hm_assert_int(sw->cl_used[s / HM_SWP_CLUSTER] > 0);
	sw->cl_used[s / HM_SWP_CLUSTER]--;
	hm_add(&sw->nr_free, 1);
}

/* A free slot of cluster @c, which has one: from the cursor if it is in
 * @c, so that a cluster fills front to back. */
static uint64_t take_in_cluster_locked(struct hm_swap *sw, uint64_t c)
{
	uint64_t first = c * HM_SWP_CLUSTER, end = first + cl_size(sw, c);
	uint64_t start = sw->next >= first && sw->next < end ? sw->next : first;
	uint64_t s = start;

	hm_assert_locked(&sw->lock);
	while (sw->map[s]) {
		s = s + 1 == end ? first : s + 1;
		hm_assert(s != start);
	}
	take_slot_locked(sw, s);
	sw->next = s + 1 == sw->nr_slots ? 0 : s + 1;
	return s;
}

/*
 * One slot. A partly used cluster first, or the short tail even when it is
 * empty (it can never hold a 2 MiB page): a free full cluster is broken
 * only when nothing else is left.
 */
static uint64_t alloc_slot_locked(struct hm_swap *sw)
{
	uint64_t nr = nr_cl_all(sw), c = sw->next / HM_SWP_CLUSTER;
	uint64_t empty = HM_SLOT_NONE;

	hm_assert_locked(&sw->lock);
	if (!hm_load_relaxed(&sw->nr_free))
		return HM_SLOT_NONE;
	for (uint64_t i = 0; i < nr; i++) {
		unsigned used = sw->cl_used[c];

		if (used == 0 && c < sw->nr_clusters) {
			if (empty == HM_SLOT_NONE)
				empty = c;
		} else if (used < cl_size(sw, c)) {
			return take_in_cluster_locked(sw, c);
		}
		c = c + 1 == nr ? 0 : c + 1;
	}
	hm_assert(empty != HM_SLOT_NONE);	/* nr_free said there was room */
	return take_in_cluster_locked(sw, empty);
}

static uint64_t alloc_cluster_locked(struct hm_swap *sw)
{
	uint64_t c = sw->next_cluster;

	hm_assert_locked(&sw->lock);
	if (hm_load_relaxed(&sw->nr_free) < HM_SWP_CLUSTER)
		return HM_SLOT_NONE;
	for (uint64_t i = 0; i < sw->nr_clusters; i++) {
		if (sw->cl_used[c] == 0) {
			uint64_t first = c * HM_SWP_CLUSTER;

			for (unsigned j = 0; j < HM_SWP_CLUSTER; j++) {
				hm_assert_int(sw->map[first + j] == 0);
				sw->map[first + j] = HM_SWP_CACHE | HM_SWP_WRITEBACK;
			}
			sw->cl_used[c] = HM_SWP_CLUSTER;
			hm_sub(&sw->nr_free, HM_SWP_CLUSTER);
			sw->next_cluster = c + 1 == sw->nr_clusters ? 0 : c + 1;
			return first;
		}
		c = c + 1 == sw->nr_clusters ? 0 : c + 1;
	}
	return HM_SLOT_NONE;
}

uint64_t hm_swap_alloc(struct hm_swap *sw, unsigned n)
{
	uint64_t s;

	hm_assert(n == 1 || n == HM_SWP_CLUSTER);
	/* No device, no failpoint: a system without swap must not shift the
	 * fault tests' count of allocations. */
	if (!sw->map)
		return HM_SLOT_NONE;
	if (sw->fail && hm_fail_hit(sw->fail))
		return HM_SLOT_NONE;
	hm_spin_lock(&sw->lock);
	if (n == 1)
		s = alloc_slot_locked(sw);
	else if (n == HM_SWP_CLUSTER)
		s = alloc_cluster_locked(sw);
	else
		s = HM_SLOT_NONE;
	hm_spin_unlock(&sw->lock);
	return s;
}

void hm_swap_dup(struct hm_swap *sw, uint64_t s, unsigned n)
{
	check_range(sw, s, n);
	hm_spin_lock(&sw->lock);
	for (uint64_t i = s; i < s + n; i++) {
		uint32_t w = sw->map[i];

		hm_assert(w != 0 && (w & HM_SWP_COUNT_MASK) != HM_SWP_COUNT_MASK);
		sw->map[i] = w + 1;
	}
	hm_spin_unlock(&sw->lock);
}

void hm_swap_put(struct hm_swap *sw, uint64_t s, unsigned n)
{
	check_range(sw, s, n);
	hm_spin_lock(&sw->lock);
	for (uint64_t i = s; i < s + n; i++) {
		uint32_t w = sw->map[i];

		hm_assert(w & HM_SWP_COUNT_MASK);
		set_word_locked(sw, i, w - 1);
	}
	hm_spin_unlock(&sw->lock);
}

void hm_swap_set_flags(struct hm_swap *sw, uint64_t s, unsigned n, uint32_t flags)
{
	check_range(sw, s, n);
	hm_assert(!(flags & ~(HM_SWP_CACHE | HM_SWP_WRITEBACK)));
	hm_spin_lock(&sw->lock);
	for (uint64_t i = s; i < s + n; i++) {
		/* A free slot is only taken by hm_swap_alloc, which counts it. */
		hm_assert(sw->map[i] != 0);
		sw->map[i] |= flags;
	}
	hm_spin_unlock(&sw->lock);
}

void hm_swap_clear_flags(struct hm_swap *sw, uint64_t s, unsigned n, uint32_t flags)
{
	check_range(sw, s, n);
	hm_assert(!(flags & ~(HM_SWP_CACHE | HM_SWP_WRITEBACK)));
	hm_spin_lock(&sw->lock);
	for (uint64_t i = s; i < s + n; i++) {
		hm_assert(sw->map[i] != 0);
		if (flags & HM_SWP_CACHE)
			sw->cache[i] = HM_PFN_NONE;
		set_word_locked(sw, i, sw->map[i] & ~flags);
	}
	hm_spin_unlock(&sw->lock);
}

bool hm_swap_cache_add(struct hm_swap *sw, uint64_t s, unsigned n, uint32_t pfn)
{
	bool ok = true;

	check_range(sw, s, n);
	hm_spin_lock(&sw->lock);
	for (unsigned i = 0; i < n && ok; i++)
		ok = !(sw->map[s + i] & HM_SWP_CACHE);
	for (unsigned i = 0; i < n && ok; i++) {
		hm_assert(sw->map[s + i] != 0);
		sw->map[s + i] |= HM_SWP_CACHE;
		sw->cache[s + i] = pfn + i;
	}
	hm_spin_unlock(&sw->lock);
	return ok;
}

void hm_swap_cache_move(struct hm_swap *sw, uint64_t s, unsigned n, uint32_t from, uint32_t to)
{
	check_range(sw, s, n);
	hm_spin_lock(&sw->lock);
	for (unsigned i = 0; i < n; i++)
		if ((sw->map[s + i] & HM_SWP_CACHE) && sw->cache[s + i] == from + i)
			sw->cache[s + i] = to + i;
	hm_spin_unlock(&sw->lock);
}

uint32_t hm_swap_cache_lookup(struct hm_swap *sw, uint64_t s)
{
	uint32_t pfn = HM_PFN_NONE;

	check_range(sw, s, 1);
	hm_spin_lock(&sw->lock);
	if ((sw->map[s] & (HM_SWP_CACHE | HM_SWP_WRITEBACK)) == HM_SWP_CACHE)
		pfn = sw->cache[s];
	hm_spin_unlock(&sw->lock);
	return pfn;
}

uint32_t hm_swap_cache_pfn(struct hm_swap *sw, uint64_t s)
{
	hm_assert_locked(&sw->lock);
	return sw->cache[s];
}

uint32_t hm_swap_word(struct hm_swap *sw, uint64_t s)
{
	uint32_t w;

	check_range(sw, s, 1);
	hm_spin_lock(&sw->lock);
	w = sw->map[s];
	hm_spin_unlock(&sw->lock);
	return w;
}

int hm_swap_for_each_used(struct hm_swap *sw, int (*fn)(void *arg, uint64_t s, uint32_t word), void *arg)
{
	uint64_t nr = nr_cl_all(sw);
	int ret = 0;

	if (!sw->map)
		return 0;
	hm_spin_lock(&sw->lock);
	for (uint64_t c = 0; c < nr && !ret; c++) {
		uint64_t first = c * HM_SWP_CLUSTER, end = first + cl_size(sw, c);

		if (!sw->cl_used[c])
			continue;
		for (uint64_t s = first; s < end && !ret; s++)
			if (sw->map[s])
				ret = fn(arg, s, sw->map[s]);
	}
	hm_spin_unlock(&sw->lock);
	return ret;
}

/* @n slots from @s, to or from @buf, looping over short transfers. A
 * read of 0 bytes means the file ends before the slot (truncated
 * underneath). */
static int transfer(struct hm_swap *sw, uint64_t s, void *buf, unsigned n, bool write)
{
	char *p = buf;
	size_t left = (size_t)n * SLOT_SIZE;
	off_t off = (off_t)(s * SLOT_SIZE);

	while (left) {
		ssize_t r = write ? pwrite(sw->fd, p, left, off) : pread(sw->fd, p, left, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -EIO;
		p += r;
		off += r;
		left -= (size_t)r;
	}
	return 0;
}

int hm_swap_write(struct hm_swap *sw, uint64_t s, const void *buf, unsigned n)
{
	hm_might_sleep();
	check_range(sw, s, n);
	return transfer(sw, s, (void *)(uintptr_t)buf, n, true);
}

/* Whether any of [s, s + n) is still being written. */
static bool under_writeback(struct hm_swap *sw, uint64_t s, unsigned n)
{
	bool busy = false;

	hm_spin_lock(&sw->lock);
	for (uint64_t i = s; i < s + n && !busy; i++) {
		hm_assert(sw->map[i] != 0);
		busy = sw->map[i] & HM_SWP_WRITEBACK;
	}
	hm_spin_unlock(&sw->lock);
	return busy;
}

int hm_swap_read(struct hm_swap *sw, uint64_t s, void *buf, unsigned n)
{
	hm_might_sleep();
	check_range(sw, s, n);
	/* Writeback is one pwrite: yield first, then sleep briefly so that a
	 * long write does not cost a core. */
	for (unsigned tries = 0; under_writeback(sw, s, n); tries++) {
		if (tries < 64) {
			sched_yield();
		} else {
			struct timespec ts = { 0, 100 * 1000 };

			nanosleep(&ts, NULL);
		}
	}
	return transfer(sw, s, buf, n, false);
}

unsigned hm_swap_cache_collect(struct hm_swap *sw, uint32_t *out, unsigned max, uint64_t *cursor)
{
	unsigned n = 0;

	if (!sw->nr_slots)
		return 0;
	hm_spin_lock(&sw->lock);
	uint64_t s = *cursor % sw->nr_slots;

	/* A bounded look: at most 64 slots per page wanted. */
	for (uint64_t looked = 0; looked < sw->nr_slots && looked < 64ull * max && n < max; looked++) {
		if ((sw->map[s] & (HM_SWP_CACHE | HM_SWP_WRITEBACK)) == HM_SWP_CACHE &&
		    sw->cache[s] != HM_PFN_NONE)
			out[n++] = sw->cache[s];
		if (++s == sw->nr_slots)
			s = 0;
	}
	*cursor = s;
	hm_spin_unlock(&sw->lock);
	return n;
}
