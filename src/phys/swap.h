/* SPDX-License-Identifier: MIT */
/*
 * The swap device: a real file of 4 KiB slots. Slot s holds one page's raw
 * bytes at file offset s * 4096. Slots are grouped in clusters of 512
 * (2 MiB, cluster c = slots [512c, 512c + 512)), so that a 2 MiB page can
 * go out in one contiguous write.
 *
 * Per slot, one 32-bit word (the kernel's swap_map):
 *
 *   count (bits 0-29)  = swap entries, in all page tables, that name the
 *                        slot (a PMD swap entry names 512 slots and counts
 *                        once on each)
 *   HM_SWP_CACHE (30)  = a folio in memory holds the slot (the swap cache:
 *                        a page swapped in from it, which its other
 *                        mappers then share, or a page on its way out)
 *   HM_SWP_WRITEBACK (31) = the slot is being written: readers wait
 *
 *   a slot is free  <=>  its word is 0
 *   nr_free = slots whose word is 0
 *   cluster c is free  <=>  cl_used[c] == 0; cl_used[c] = its slots in use
 *
 * Context: every call but init/fini/read/write may run under page-table
 * locks and folio locks: the map is guarded by one spinlock (innermost,
 * beside the folio locks), and nothing here allocates or sleeps but the
 * file I/O in hm_swap_read / hm_swap_write, which take no lock.
 */
#ifndef HM_PHYS_SWAP_H
#define HM_PHYS_SWAP_H

#include "../base/base.h"
#include "../base/fail.h"
#include "../base/lock.h"

#define HM_SWP_COUNT_MASK	((1u << 30) - 1)
#define HM_SWP_CACHE		(1u << 30)
#define HM_SWP_WRITEBACK	(1u << 31)
#define HM_SWP_CLUSTER		512u
#define HM_SLOT_NONE		UINT64_MAX

struct hm_swap {
	int fd;			/* -1: no swap configured; constant */
	uint64_t nr_slots;	/* constant; a multiple of nothing in
				 * particular: the last cluster may be short
				 * (never handed out whole) */
	uint64_t nr_clusters;	/* full clusters; constant */
	hm_spin_t lock;		/* everything below */
	uint32_t *map;		/* per slot, see above */
	uint16_t *cl_used;	/* per cluster (the short tail cluster too) */
	uint32_t *cache;	/* per slot: with HM_SWP_CACHE, the frame of
				 * the page that holds its content, or
				 * HM_PFN_NONE while the page is on its way
				 * out (then under writeback too) */
	uint64_t next;		/* where the next single-slot search starts */
	uint64_t next_cluster;	/* where the next free-cluster search starts */
	uint64_t nr_free;	/* lock; atomic for statistics */
	struct hm_fail *fail;	/* the system's failpoint: slot allocation
				 * passes it too */
};

/*
 * Create or truncate @path to @bytes and own it. @bytes must be a nonzero
 * multiple of 4096: else -EINVAL. The file's space is reserved
 * (posix_fallocate) so that a full disk is found now: -ENOSPC. Any other
 * failure to open or size it: its -errno (e.g. -EACCES, -ENOENT, -EISDIR).
 * On failure nothing is left open and sw->fd is -1. @path NULL: no swap
 * (sw->fd = -1, nr_slots 0), returns 0.
 */
int hm_swap_init(struct hm_swap *sw, const char *path, uint64_t bytes, struct hm_fail *fail);
/* Close the file (it stays on disk) and free the map. */
void hm_swap_fini(struct hm_swap *sw);

static inline bool hm_swap_enabled(const struct hm_swap *sw) { return sw->fd >= 0; }
/* Free slots now (a snapshot). */
static inline uint64_t hm_swap_free(struct hm_swap *sw) { return hm_load_relaxed(&sw->nr_free); }

/*
 * Allocate @n slots for a page on its way out, each with word
 * HM_SWP_CACHE | HM_SWP_WRITEBACK and count 0. n == 1: one slot,
 * preferring partly used clusters so free clusters stay whole.
 * n == HM_SWP_CLUSTER: a whole free cluster (slot 512c). Returns the first
 * slot, or HM_SLOT_NONE (no room, or the failpoint fired). Other n: -.
 */
uint64_t hm_swap_alloc(struct hm_swap *sw, unsigned n);

/* count += 1 on each of slots [s, s + n). The slots must be in use. */
void hm_swap_dup(struct hm_swap *sw, uint64_t s, unsigned n);
/* count -= 1 on each of [s, s + n); a slot whose word becomes 0 is free. */
void hm_swap_put(struct hm_swap *sw, uint64_t s, unsigned n);
/* Set / clear HM_SWP_CACHE (clearing may free), HM_SWP_WRITEBACK on
 * [s, s + n). */
void hm_swap_set_flags(struct hm_swap *sw, uint64_t s, unsigned n, uint32_t flags);
void hm_swap_clear_flags(struct hm_swap *sw, uint64_t s, unsigned n, uint32_t flags);
/* The swap cache: slots [s, s + n) are held by the pages from @pfn on
 * (sets HM_SWP_CACHE; clearing it forgets the page). False, and nothing
 * done, if a page holds one of them already. */
bool hm_swap_cache_add(struct hm_swap *sw, uint64_t s, unsigned n, uint32_t pfn);
/* The pages from @from on moved to @to (migration): the slots of
 * [s, s + n) that they hold are held by the new ones. */
void hm_swap_cache_move(struct hm_swap *sw, uint64_t s, unsigned n, uint32_t from, uint32_t to);
/* The page that holds slot @s, or HM_PFN_NONE (none, or under writeback:
 * then the reader waits for the write and reads the file). The page may
 * be on its way out: the caller checks it under the page's own lock. */
uint32_t hm_swap_cache_lookup(struct hm_swap *sw, uint64_t s);
/* Up to @max frames that hold cached slots, looking from *cursor on
 * (advanced): the pages reclaim can drop without a new slot when swap is
 * full. A snapshot: the caller checks each under its folio lock. */
unsigned hm_swap_cache_collect(struct hm_swap *sw, uint32_t *out, unsigned max, uint64_t *cursor);
/* hm_check, inside hm_swap_for_each_used: the cache entry of slot @s. */
uint32_t hm_swap_cache_pfn(struct hm_swap *sw, uint64_t s);
/* The word of slot @s (hm_check, decisions under the caller's own locks
 * that only need a snapshot). */
uint32_t hm_swap_word(struct hm_swap *sw, uint64_t s);

/*
 * Write / read @n slots from @s, contiguous in the file, from / to @buf
 * (n * 4096 bytes). Read first waits while any of them is under
 * writeback. -EIO on an I/O error or a short transfer (a file truncated
 * underneath reads short). Context: no spinlock held (file I/O).
 */
int hm_swap_write(struct hm_swap *sw, uint64_t s, const void *buf, unsigned n);
int hm_swap_read(struct hm_swap *sw, uint64_t s, void *buf, unsigned n);

/* For hm_check: call @fn(arg, slot, word) for every slot in use, under the
 * lock; returns the first nonzero result. */
int hm_swap_for_each_used(struct hm_swap *sw, int (*fn)(void *arg, uint64_t s, uint32_t word), void *arg);

#endif /* HM_PHYS_SWAP_H */
