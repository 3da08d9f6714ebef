/* SPDX-License-Identifier: MIT */
/*
 * phys: the arena (physical memory), one 64-byte descriptor per 4 KiB frame,
 * and a buddy allocator of orders 0..18 per memory node.
 *
 * The frame descriptor (struct hm_page), its flags and its typed views are
 * in page.h.
 */
#ifndef HM_PHYS_H
#define HM_PHYS_H

#include <pthread.h>
#include <string.h>

#include "../base/base.h"
#include "../base/cpu.h"
#include "../base/fail.h"
#include "../base/lock.h"
#include "page.h"

/*
 * Mobility grouping (buddy.c). A node is cut into regions of 2^group_shift
 * frames (1 GiB, or 2 MiB on nodes under 2 GiB, where a 1 GiB region would
 * be the whole node). Unmovable allocations (page tables, the huge zero
 * page) gather in the regions that already hold some, so that the others
 * hold only folios, which compaction can move away to free a block.
 *
 * Compaction window: while compaction empties the aligned block
 * [win_start, win_start + win_len), the free blocks inside it sit on
 * win_head instead of free_head, where allocation does not look, and
 * frames freed into it merge there, up to the whole block at most.
 */
struct hm_node {
	pthread_mutex_t lock;
	uint32_t start_pfn, end_pfn;	/* [start, end); constant */
	uint32_t free_head[HM_MAX_ORDER + 1];	/* node->lock */
	uint64_t nr_free;		/* frames on this node's free lists
					 * (window included), not in per-CPU
					 * caches; node->lock, stored
					 * atomically for readers without it */
	uint64_t nr_blocks[HM_MAX_ORDER + 1];	/* free blocks per order, on
					 * either list; node->lock */
	uint32_t win_head[HM_MAX_ORDER + 1];	/* node->lock */
	uint32_t win_start, win_len;	/* no window: win_len 0; node->lock */
	unsigned group_shift;		/* constant */
	uint32_t nr_regions;		/* constant */
	uint32_t *unmovable;		/* per region (pfn >> group_shift, less
					 * start_pfn's): unmovable frames
					 * allocated there; node->lock */
};

/*
 * Per-CPU order-0 frame caches, one per (CPU, node), as the kernel's
 * per-CPU page lists: a 4 KiB allocation or free takes a frame from (puts
 * it on) the cache of the CPU it runs on, under that cache's lock, which
 * only a drain from another CPU contends for; the cache is refilled from
 * the buddy allocator up to HM_PCP_BATCH frames at a time (fewer when only
 * fewer 4 KiB holes are free, see pcp_refill_locked) and drained to it
 * HM_PCP_BATCH at a time, so node->lock is taken once per batch and the
 * buddy's list links (cache misses in a large memmap) are not touched per
 * fault.
 *
 * A cached frame is free: its descriptor is reset but for PG_PCP, it
 * counts in nr_free_pages (hm_phys_nr_free) and hm_check verifies it. It
 * is not on a free list, so it does not merge: before an allocation fails,
 * and before compaction opens a window, the idle-zeroing pools and then
 * the caches are drained (drain_pools_and_caches; hm_pcp_drain_all is the
 * kernel's drain_all_pages).
 *
 * Lock order: ptcache->lock > pcp->lock > zpool->lock > node->lock.
 */
#define HM_PCP_HIGH	256u	/* frames a cache holds at most */
#define HM_PCP_BATCH	128u	/* frames per refill or drain; a power of two */
/*
 * Why 128: a refill is the one step of a 4 KiB fault that writes lines
 * another CPU writes too (node->lock, the free lists, the descriptors of
 * the blocks it splits). Two threads faulting in one system paid for it
 * per refill: with the zeroing left out, a fault took 140 ns alone and
 * 220 ns beside another thread at 32 frames a batch, 150-190 ns at 128,
 * while two threads in two systems did not slow each other at all. With
 * the zeroing, 2 threads went from 357-384 to 337-351 ns a page each
 * (1.68-1.85x -> 1.95-2.00x one thread). One thread lost 2-5 % (345 ->
 * 354 ns in the best of ten interleaved runs) for a reason not found: the
 * instructions are the same (callgrind: 5 fewer a fault), and a high mark
 * of 256 with a batch of 32 costs nothing; 64 frames lose as much. Xeon
 * VM, stop 23.
 */
#define HM_PCP_ZBATCH	16u	/* frames zeroed at a time for faults */
/*
 * Zeroed frames taken from an idle-zeroing pool at a time (HM_PREZERO).
 * Why 128: the take is the one step of a fault with a pool that writes
 * lines the other CPU writes too (the pool's lock and counts). Two
 * threads faulting in one process, every frame from the pool, ran at
 * 222-227 ns a page each taking 16 at a time, 177-178 ns at 64, 158 ns at
 * 128, against about 150 ns for one thread (Xeon VM, stop 24).
 */
#define HM_PCP_ZPOOL	128u

/*
 * A cache's zeroed frames are cached frames too (PG_PCP, counted, drained
 * with the rest) whose every byte is zero: an allocation that asks for a
 * zeroed 4 KiB frame (HM_ALLOC_ZERO, a fault) takes one, and when there
 * are none, up to HM_PCP_ZPOOL come from the node's idle-zeroing pool, or
 * else HM_PCP_ZBATCH of the others are zeroed together (clear.c says why).
 * Frames cached = count + zcount <= HM_PCP_HIGH + HM_PCP_ZPOOL.
 */
struct hm_pcp {
	pthread_mutex_t lock;
	uint32_t count;			/* lock; read atomically for statistics */
	uint32_t zcount;		/* lock; read atomically for statistics */
	uint32_t pfns[HM_PCP_HIGH];	/* [0, count): the cached frames, the
					 * most recently freed (cache-hot) last;
					 * lock */
	uint32_t zpfns[HM_PCP_ZPOOL];	/* [0, zcount): the zeroed ones; lock */
	bool zpooled;			/* zpfns came from an idle-zeroing pool;
					 * lock */
	uint64_t zused;			/* pool frames handed out zeroed; lock;
					 * read atomically (prezero_used) */
} __attribute__((aligned(64)));

/*
 * Idle zeroing (prezero.c, HM_PREZERO): per node, zeroed 2 MiB blocks,
 * and the one being handed out 4 KiB at a time.
 */
struct hm_zpool {
	pthread_mutex_t lock;
	uint32_t *blocks;	/* [0, nr): heads of zeroed blocks; lock */
	uint32_t nr;		/* lock; read atomically */
	uint32_t cap;		/* constant */
	uint32_t cur;		/* frames [cur + used, cur + 512) are in the
				 * pool; HM_PFN_NONE: none. lock; read
				 * atomically */
	uint32_t used;		/* lock; read atomically */
	uint32_t frames;	/* = nr * 512 + (cur != HM_PFN_NONE ?
				 * 512 - used : 0); lock; read atomically */
} __attribute__((aligned(64)));

/*
 * Pins: references to a folio held by an unmap (or a copy-on-write) that
 * took a mapping away but whose TLB shootdown has not completed: some
 * thread may still be reading or writing the folio through a translation it
 * cached. A folio with a pin must not be handed to one address space alone
 * (reused in place by copy-on-write). Pins are counted per hash stripe of
 * the folio's head frame, so a collision only makes another folio look
 * pinned for one grace period: safe, and rare.
 */
#define HM_PIN_STRIPES 1024

/*
 * Descriptors cost host memory only once used, like the kernel's deferred
 * struct page init: they live in a MAP_NORESERVE mapping that reads as zero
 * until written, creation writes only the heads of the initial free blocks,
 * and hm_check skips free blocks whole. A 4 TiB system's 64 GiB of
 * descriptors thus cost about 16 MiB until memory is allocated.
 */
struct hm_phys {
	uint8_t *base;		/* arena: pfn p is at base + (p << 12) */
	void *map;		/* the host mapping (base is aligned inside it) */
	uint64_t map_len;
	struct hm_page *pages;	/* descriptors, nr_frames of them; all zero
				 * until a frame heads a free block or is used */
	uint64_t pages_len;
	uint32_t nr_frames;
	unsigned nr_nodes;
	uint32_t node_span;	/* frames per node; the last node also takes
				 * the remainder. Constant */
	struct hm_node nodes[64];
	struct hm_fail fail;	/* failpoint for every allocation */
	uint64_t nr_free;	/* on the free lists of all nodes (the sum of
				 * node->nr_free: per-CPU caches not included,
				 * see hm_phys_nr_free); atomic, for statistics */
	struct hm_pcp *pcp;	/* [cpu * nr_nodes + node]; constant pointer */
	unsigned nr_cpus;	/* cache slots (hm_nr_cpus); constant */
	bool no_grouping;	/* tests and the grouping measurement: place
				 * unmovable allocations like movable ones
				 * (still counted per region) */
	int32_t pins[HM_PIN_STRIPES];	/* atomic; see above */
	/* Idle zeroing (prezero.c). */
	struct hm_zpool *zpool;		/* [node]; NULL without HM_PREZERO */
	uint64_t zero_target;		/* frames a pool fills up to; constant */
	pthread_mutex_t zero_busy;	/* held by the thread from taking a
					 * block to pooling it; hm_phys_lock_all */
	pthread_mutex_t zero_lock;	/* the three fields below */
	pthread_cond_t zero_wake;	/* stop asked, or a pool ran low */
	pthread_t zero_thread;
	bool zero_running;		/* zero_lock */
	bool zero_stop;			/* zero_lock; read atomically */
	bool zero_sleeping;		/* zero_lock; read atomically */
	uint64_t prezero_frames;	/* frames zeroed ahead; atomic */
	uint64_t prezero_ns;		/* time the thread spent zeroing; atomic */
	uint64_t prezero_used;		/* 2 MiB blocks' frames handed out
					 * zeroed (the caches count 4 KiB
					 * frames: hm_prezero_used); atomic */
};

static inline int32_t *hm_pin_slot(struct hm_phys *ph, uint32_t head)
{
	return &ph->pins[(head * 0x9e3779b1u) >> 22];
}

/* alloc flags */
#define HM_ALLOC_ZERO	0x1u	/* zero the frames (a 4 KiB one comes from
				 * the per-CPU cache's zeroed frames, its
				 * lines streamed past the CPU's caches) */
#define HM_ALLOC_THISNODE 0x2u	/* do not fall back to other nodes */
#define HM_ALLOC_UNMOVABLE 0x4u	/* never moves (a page table, the huge zero
				 * page): placed with the other unmovable
				 * frames, and freed with hm_free_unmovable */
#define HM_ALLOC_COUNTED 0x8u	/* the caller already passed the failpoint
				 * for this allocation: one hit each */

int hm_phys_init(struct hm_phys *ph, uint64_t bytes, unsigned nr_nodes, bool populate);
void hm_phys_fini(struct hm_phys *ph);
/* Put all of @n on its free lists, writing only the head descriptor of each
 * block (the others are still zero from the mapping). Context: init. */
void hm_buddy_init_node(struct hm_phys *ph, struct hm_node *n);

/* Context: any. Takes node->lock. Returns HM_PFN_NONE when no block of
 * @order is free (or the failpoint fires). */
uint32_t hm_alloc_pages(struct hm_phys *ph, unsigned node, unsigned order, unsigned flags);
/* hm_alloc_pages for a fault that writes at byte @hot of the frame first:
 * with HM_ALLOC_ZERO and order 0, the line at @hot of the cache's next
 * zeroed frame is fetched for writing too, for the next fault of a run
 * that touches page after page at one offset (a wrong guess costs one
 * line's fetch). */
uint32_t hm_alloc_pages_hot(struct hm_phys *ph, unsigned node, unsigned order, unsigned flags, unsigned hot);
#define HM_HOT_NONE (~0u)	/* no @hot: fetch nothing ahead */
/* Context: any. Takes node->lock. The frames must be a block from
 * hm_alloc_pages of the same order; its descriptors are reset. */
void hm_free_pages(struct hm_phys *ph, uint32_t pfn, unsigned order);
/* The same for a block allocated with HM_ALLOC_UNMOVABLE. */
void hm_free_unmovable(struct hm_phys *ph, uint32_t pfn, unsigned order);
/* hm_free_pages, to the free lists even for order 0 (not the per-CPU
 * cache). Context: no pcp->lock held (see the lock order). */
void hm_free_pages_direct(struct hm_phys *ph, uint32_t pfn, unsigned order);
/* A block of @order from @node's free lists alone: no per-CPU cache, no
 * other node, no drain, no failpoint (the idle zeroing thread, whose
 * allocations must not shift the fault tests' counts). */
uint32_t hm_alloc_block_quiet(struct hm_phys *ph, unsigned node, unsigned order);

/*
 * Idle zeroing (prezero.c). Start: the pools and their thread; stop: the
 * thread joined, the pools drained (hm_system_destroy).
 * Take frames: up to @max zeroed frames of @node's pool (which must
 * exist) into @pfns, descriptors reset, *@count raised before each one
 * leaves the pool (see hm_phys_nr_free); how many.
 * Take a block: a zeroed 2 MiB block of any pool, descriptors reset and
 * counted in prezero_used, or HM_PFN_NONE.
 * Used: the frames faults took zeroed, in blocks and from the caches'
 * zeroed lists (the prezero_used statistic).
 * Drain: every pool frame of @node (-1: all) back to the free lists;
 * whether there were any. Count: frames in the pools.
 * For each: every pool frame (hm_check, under hm_phys_lock_all).
 */
int hm_prezero_start(struct hm_phys *ph);
void hm_prezero_stop(struct hm_phys *ph);
unsigned hm_prezero_take_frames(struct hm_phys *ph, unsigned node, uint32_t *pfns, uint32_t *count,
				unsigned max);
uint32_t hm_prezero_take_block(struct hm_phys *ph);
uint64_t hm_prezero_used(struct hm_phys *ph);
bool hm_prezero_drain(struct hm_phys *ph, int node);
uint64_t hm_prezero_count(struct hm_phys *ph, int node);
int hm_prezero_for_each(struct hm_phys *ph, int (*fn)(void *arg, uint32_t pfn, unsigned node), void *arg);

/* Region of @pfn in @n (mobility grouping), and whether it holds
 * unmovable frames. Context: node->lock for an exact answer. */
static inline uint32_t hm_region_of(const struct hm_node *n, uint32_t pfn)
{
	return (pfn >> n->group_shift) - (n->start_pfn >> n->group_shift);
}
/* Aligned blocks of @order lying wholly in their node that hold no
 * unmovable frame: those compaction could free (nr_free_1g_possible). */
uint64_t hm_phys_movable_blocks(struct hm_phys *ph, unsigned order);
/* Does the aligned block of @order at @pfn (in node @n) hold unmovable
 * frames? Exact where @order >= group_shift; below, says whether its region
 * does. Context: takes node->lock. */
bool hm_block_unmovable(struct hm_phys *ph, struct hm_node *n, uint32_t pfn, unsigned order);

/*
 * The compaction window (see struct hm_node). Open: the block must lie in
 * node @node and be no part of a free block (-EEXIST: it is free, allocate
 * it normally); -EBUSY if a window is open already. Close: with @take, if
 * the whole block is free now, allocate it and return its pfn; otherwise
 * (or without @take) give its free blocks back and return HM_PFN_NONE.
 * Open drains the node's per-CPU caches into the window once it is set.
 * Context: no spinlock; takes node->lock and the caches' locks.
 */
int hm_window_open(struct hm_phys *ph, unsigned node, uint32_t pfn, unsigned order);
uint32_t hm_window_close(struct hm_phys *ph, unsigned node, bool take);

/* Clear a descriptor that the caller owns, leaving the buddy byte (0 in any
 * frame that is not free) alone. */
static inline void hm_page_reset(struct hm_page *pg)
{
	pg->flags = 0;
	pg->order = 0;
	pg->spare2 = 0;
	memset((char *)pg + 8, 0, sizeof(*pg) - 8);
}

static inline struct hm_page *hm_pfn_page(struct hm_phys *ph, uint32_t pfn)
{
	hm_assert_int(pfn < ph->nr_frames);
	return &ph->pages[pfn];
}

/* The head of the huge folio that the frame @pfn of some folio is an
 * unmarked tail of, or HM_PFN_NONE if the descriptors say otherwise (see
 * "Tails" above): its 2 MiB-aligned frame if that heads an order-9 folio,
 * else its 1 GiB-aligned frame if that heads an order-18 one. (A 2 MiB-
 * aligned frame of a whole 1 GiB folio is itself an unmarked tail.)
 * Without a lock: a head's order is loaded with acquire, so that a split's
 * marks, stored before it, are seen once it says a smaller order. */
static inline uint32_t hm_unmarked_head(struct hm_phys *ph, uint32_t pfn)
{
	static const unsigned orders[] = { HM_PMD_ORDER, HM_PUD_ORDER };

	if (hm_load_relaxed(&hm_pfn_page(ph, pfn)->flags) & (PG_HEAD | PG_TAIL))
		return HM_PFN_NONE;
	for (unsigned i = 0; i < 2; i++) {
		uint32_t head = pfn & ~((1u << orders[i]) - 1);

		if (hm_load(&hm_pfn_page(ph, head)->order) == orders[i] &&
		    (hm_load_relaxed(&hm_pfn_page(ph, head)->flags) & PG_HEAD))
			return head;
	}
	return HM_PFN_NONE;
}

static inline uint32_t hm_page_pfn(struct hm_phys *ph, const struct hm_page *pg)
{
	return (uint32_t)(pg - ph->pages);
}

static inline void *hm_pfn_ptr(struct hm_phys *ph, uint32_t pfn)
{
	return ph->base + ((uint64_t)pfn << HM_PAGE_SHIFT);
}

/* Fetch for writing the line at @hot (a byte offset, or HM_HOT_NONE:
 * nothing) of the zeroed frame @pfn, which the next fault of a run that
 * touches page after page at one offset will write: zeroed with streaming
 * stores, that line is in no cache. */
static inline void hm_prefetch_hot(struct hm_phys *ph, uint32_t pfn, unsigned hot)
{
	if (hot != HM_HOT_NONE)
		__builtin_prefetch((uint8_t *)hm_pfn_ptr(ph, pfn) + (hot & (HM_PAGE_SIZE - 1)), 1);
}

/* Node n holds [n * node_span, (n + 1) * node_span), the last one up to
 * nr_frames: computed, so that no descriptor stores it. */
static inline unsigned hm_pfn_node(const struct hm_phys *ph, uint32_t pfn)
{
	if (hm_likely(ph->nr_nodes == 1))
		return 0;
	unsigned n = pfn / ph->node_span;
	return n < ph->nr_nodes ? n : ph->nr_nodes - 1;
}

/*
 * Free frames, per-CPU caches included: exact while nothing allocates or
 * frees (hm_check, the tests' before/after counts), a snapshot otherwise.
 * Context: any.
 */
uint64_t hm_phys_nr_free(struct hm_phys *ph);
uint64_t hm_node_nr_free(struct hm_phys *ph, unsigned node);
/* Give the frames of every CPU's cache for @node (all nodes: -1) back to
 * the free lists. Returns whether any were cached. Context: no spinlock,
 * no pcp->lock or node->lock; takes them. */
bool hm_pcp_drain_all(struct hm_phys *ph, int node);
/* Is a block of @order or larger on @node's free lists (per-CPU caches
 * hold single frames only)? Context: no node->lock; takes it. */
bool hm_node_has_block(struct hm_phys *ph, unsigned node, unsigned order);
/* Frames in the caches, for hm_check: calls @fn for each (@zeroed: one of
 * the zeroed frames); returns the first nonzero result. Context:
 * hm_phys_lock_all. */
int hm_pcp_for_each(struct hm_phys *ph, int (*fn)(void *arg, uint32_t pfn, unsigned cpu, unsigned node, bool zeroed),
		    void *arg);

/* Zero 2^order frames at @pfn (clear.c: huge ones with the routine chosen
 * for this CPU). */
void hm_zero_pages(struct hm_phys *ph, uint32_t pfn, unsigned order);
/* At DEBUG >= 2, assert that the 2^order frames at @pfn, handed out as
 * zeroed, are: one that is not would show one address space's data in
 * another's page. */
void hm_assert_zeroed(struct hm_phys *ph, uint32_t pfn, unsigned order);
/* Zero the @nr 4 KiB frames @pfns, past the cache (clear.c). */
void hm_zero_frames(struct hm_phys *ph, const uint32_t *pfns, unsigned nr);

/* Make the descriptors after @head, zero as a free block's are, the tails
 * of a folio of @order; a huge one's stay as they are (see "Tails" above). */
void hm_pages_mark_tails(struct hm_phys *ph, uint32_t head, unsigned order);
/* Zero the descriptors after @head of a block of @order (>= HM_PMD_ORDER),
 * with streaming stores (the head's buddy byte is not ours to write:
 * buddy.c). */
void hm_pages_reset_tails(struct hm_phys *ph, uint32_t head, unsigned order);

/* The zeroing routines (clear.c), for tests and benchmarks. */
enum { HM_CLEAR_MEMSET, HM_CLEAR_SSE2, HM_CLEAR_AVX2, HM_CLEAR_AVX512, HM_CLEAR_NR };
const char *hm_clear_name(unsigned kind);
bool hm_clear_supported(unsigned kind);
/* Zero @len bytes (a multiple of 256) at @p (64-byte aligned) with @kind,
 * which the CPU must support. */
void hm_clear_with(unsigned kind, void *p, size_t len);
/* The routine huge pages are zeroed with: the one chosen, or until the
 * choice is made, the default. */
unsigned hm_clear_selected(void);
/* Copy 2^order frames from @src to @dst with streaming stores (the copy is
 * not read soon: migration, collapse). */
void hm_copy_pages(struct hm_phys *ph, uint32_t dst, uint32_t src, unsigned order);

/* Walk the free lists of every node under their locks (hm_check). Calls
 * @fn for every free block; returns the first nonzero result. */
int hm_phys_for_each_free(struct hm_phys *ph, int (*fn)(void *arg, uint32_t pfn, unsigned order), void *arg);
/* Every per-CPU cache's lock, then every node's. */
void hm_phys_lock_all(struct hm_phys *ph);
void hm_phys_unlock_all(struct hm_phys *ph);

#endif /* HM_PHYS_H */
