/* SPDX-License-Identifier: MIT */
/*
 * mm: systems, address spaces, VMAs, faults, splits, unmapping, map counts,
 * statistics and the invariant checker.
 *
 * Invariants of an mm (mmap_lock held for writing, or quiescent):
 *  - vmas[0..nr_vmas) are sorted, non-empty, non-overlapping, page-aligned,
 *    and inside [HM_MIN_ADDR, task_size).
 *  - Every mapped leaf lies inside a VMA and agrees with its protection
 *    (PROT_NONE VMAs have PROTNONE leaves; writable leaves only in writable
 *    VMAs).
 *  - nr_leaf[l] = leaves of level l in this mm's tables that map folios
 *    (leaves of the huge zero page are counted apart: see zero.c);
 *    nr_tables = tables reachable from root, plus their deposits, plus root.
 *  - Eager mode: each PMD table's nr_deposited = its PMD leaves; each PUD
 *    table's nr_deposited = its PUD leaves, and every PMD table on that list
 *    holds 512 PTE tables. Lazy mode: no deposits anywhere.
 */
#ifndef HM_MM_H
#define HM_MM_H

#include "../../include/hugemm.h"
#include "../pgtable/pgtable.h"
#include "../phys/swap.h"

#define HM_MIN_ADDR 0x10000ull	/* like vm.mmap_min_addr */

enum {
	VM_HUGEPAGE	= 1u << 0,
	VM_NOHUGEPAGE	= 1u << 1,
	VM_DONTFORK	= 1u << 2,
};

struct hm_anon_vma;

struct hm_vma {
	uint64_t start, end;	/* [start, end) */
	int prot;		/* PROT_* */
	unsigned flags;		/* VM_* */
	struct hm_anon_vma *av;	/* family of its anonymous folios, or NULL
				 * until the first fault; set under
				 * page_table_lock, then constant */
};

/*
 * anon_vma: the reverse map. A family is created at the first fault in a
 * VMA; every folio faulted there records the family's id and its virtual
 * page. fork() makes the child's VMAs members of their parent VMAs'
 * families. Addresses never move (there is no mremap), so every mapping of
 * a folio is at its recorded address in some member mm.
 *
 *   members[i].nvmas = VMAs of members[i].mm that point at this family
 *   a family is freed when its last member leaves.
 */
struct hm_av_member {
	struct hm_mm *mm;
	uint32_t nvmas;
};

struct hm_anon_vma {
	uint32_t id;			/* index in sys->avs; constant */
	pthread_mutex_t lock;		/* members */
	struct hm_av_member *members;	/* lock */
	uint32_t nr, cap;		/* lock */
	uint32_t reserved;		/* lock: slots held for forks under way;
					 * nr + reserved <= cap */
};

#define HM_FOLIO_LOCKS 256	/* striped locks for folio map counts */
#define HM_LRU_BATCH 30		/* folios per per-CPU LRU add batch */

/* Counters: the events first, then the ones computed when read. */
#define HM_EVENT_STATS(X)						\
	X(pgfault) X(thp_fault_alloc) X(thp_fault_fallback)		\
	X(pud_fault_alloc) X(pmd_fault_alloc)				\
	X(pud_fault_fallback) X(pmd_fault_fallback)			\
	X(thp_split_pud) X(thp_split_pmd) X(split_alloc)		\
	X(thp_collapse_alloc) X(thp_migration_success) X(thp_swpout)	\
	X(pswpin) X(pswpout) X(cow_reuse) X(cow_copy)			\
	X(cow_split_pud) X(cow_split_pmd)				\
	X(thp_swpout_fallback) X(thp_swpin) X(pgscan) X(pgsteal)	\
	X(pgactivate) X(pgdeactivate) X(pswpout_clean) X(swap_io_error)	\
	X(direct_reclaim) X(swapin_cache_hit) X(thp_zero_page_alloc)	\
	X(thp_deferred_split_page) X(thp_split_page)			\
	X(thp_underused_split_page)					\
	X(pgmigrate_success) X(pgmigrate_fail) X(thp_migration_fail) X(thp_migration_split) \
	X(compact_stall) X(compact_success) X(compact_fail) X(compact_migrate_scanned) \
	X(thp_collapse_alloc_failed) X(collapse_refold) X(thp_collapse_pud) X(khugepaged_pages_scanned) X(khugepaged_pages_collapsed) X(khugepaged_full_scans)	\
	X(pgtable_reclaimed)
#define HM_COMPUTED_STATS(X)						\
	X(nr_free_pages) X(pgtable_bytes) X(pgtable_deposited)		\
	X(nr_anon_pages) X(nr_anon_pte) X(nr_anon_pmd) X(nr_anon_pud)	\
	X(nr_mms) X(phys_bytes) X(nr_free_pending)			\
	X(swap_free_pages) X(swap_total_pages) X(nr_inactive_anon)	\
	X(nr_active_anon) X(nr_swap_entries)			\
	X(nr_huge_zero_pte) X(nr_huge_zero_pmd)			\
	X(nr_free_1g_possible) X(prezero_pages) X(prezero_ns)	\
	X(prezero_used) X(nr_prezeroed) X(pgtable_free_slots)

enum hm_stat_id {
#define X(n) HM_STAT_##n,
	HM_EVENT_STATS(X)
	HM_NR_EVENTS,
	HM_STAT_COMPUTED_BASE = HM_NR_EVENTS - 1,
	HM_COMPUTED_STATS(X)
#undef X
	HM_NR_STATS
};

struct hm_system {
	struct hm_config cfg;
	struct hm_phys phys;
	struct hm_ptcache pc;
	unsigned top;		/* level of the root table: levels - 1 */
	uint64_t task_size;	/* user addresses are below this */
	pthread_mutex_t mms_lock;
	struct hm_mm *mms;	/* all mms; mms_lock */
	/* Slot ids (hm_mm.slot_id): ids below next_slot_id have been handed
	 * out; those of destroyed mms wait on the free stack for reuse. Its
	 * capacity is kept >= next_slot_id, so that a release never
	 * allocates. All mms_lock. */
	uint32_t *free_slot_ids;
	uint32_t nr_free_slot_ids, cap_slot_ids, next_slot_id;
	uint64_t nr_mms;	/* written under mms_lock, atomically:
				 * statistics read it without */
	int cow_policy;		/* HM_COW_* */
	pthread_mutex_t av_lock;	/* the table below */
	struct hm_anon_vma **avs;	/* by id; NULL = free slot; av_lock */
	uint32_t nr_avs, cap_avs;	/* av_lock */
	hm_spin_t folio_locks[HM_FOLIO_LOCKS] __attribute__((aligned(64)));
						/* map counts and mm slots of
						 * the folios hashed to each */
	/* Reclaim (vmscan.c, lru.c). */
	struct hm_swap swap;		/* the swap device; its own lock */
	pthread_mutex_t reclaim_lock;	/* one reclaimer at a time */
	hm_spin_t lru_lock;		/* the lists below, and PG_LRU/PG_ACTIVE */
	struct hm_lru_link *lru;	/* per frame, used at folio heads;
					 * MAP_NORESERVE: costs what is used */
	uint64_t lru_bytes;
	uint32_t lru_first[2], lru_last[2]; /* [0] inactive, [1] active */
	uint64_t nr_lru[2];		/* lru_lock; atomic for statistics */
	uint64_t nr_swap_entries;	/* swap entries in all tables (PMD
					 * ones count 512); atomic */
	uint64_t cache_cursor;		/* where reclaim looks in the swap cache
					 * next when swap is full; reclaim_lock */
	/* Folio split and the deferred split queue (folio_split.c,
	 * deferred.c). The queue is linked through the first tail page of
	 * each folio on it (hm_page.deferred). */
	pthread_mutex_t split_lock;	/* one splitter at a time; hm_check */
	hm_spin_t deferred_lock;	/* the queue */
	uint32_t deferred_first, deferred_last;	/* heads; deferred_lock */
	uint32_t deferred_claim;	/* the folio a shrinker took off the
					 * queue's front and is about to work
					 * on; reset when it leaves the queue
					 * (deferred_lock) */
	uint64_t nr_deferred;		/* written under deferred_lock,
					 * atomically: read without */
	/* Counters: each is the sum of this shared part (written where the
	 * count changes rarely) and the per-CPU parts below (hot paths: a
	 * fault, an unmap), modulo 2^64. */
	uint64_t events[HM_NR_EVENTS];	/* atomic */
	uint64_t nr_leaf[3];	/* leaves per level, all mms; atomic */
	uint64_t nr_anon_frames; /* frames in folios; atomic */
	struct hm_cpu_stats *cpu_stats;	/* [phys.nr_cpus], in the same
					 * allocation as the system; constant */
	uint32_t huge_zero_pfn;	/* the huge zero page (zero.c): HM_PFN_NONE
				 * until a read fault creates it; set once,
				 * by compare-and-swap, kept until destroy */
	uint64_t nr_zero_leaf[2]; /* leaves that map it, PTE and PMD, all mms;
				 * in no folio count and no nr_leaf; atomic */
	pthread_mutex_t compact_lock;	/* one compaction at a time, taken by
					 * trylock only (compact.c) */
	uint32_t compact_cursor[64];	/* per node: where the next 2 MiB
					 * compaction looks; compact_lock */
	/* khugepaged (khugepaged.c). The scan's cursor: the next mm by id
	 * and the next address in it. */
	pthread_mutex_t khugepaged_lock;	/* one scan at a time; the cursor */
	uint64_t khugepaged_mm_id, khugepaged_va; /* khugepaged_lock */
	pthread_mutex_t khugepaged_thread_lock;	/* the fields below */
	pthread_cond_t khugepaged_wake;		/* stop asked */
	pthread_t khugepaged_thread;
	bool khugepaged_running;		/* thread_lock */
	bool khugepaged_stop;			/* thread_lock; read atomically
						 * by the scan between pieces */
	/* The mm a scan works on without mms_lock, for one 2 MiB step:
	 * hm_mm_destroy waits until it is another (khugepaged.c). Both
	 * mms_lock. */
	struct hm_mm *khugepaged_mm;
	pthread_cond_t khugepaged_left;		/* khugepaged_mm changed */
};

/* LRU links: the lists run from first (most recently added) to last. */
struct hm_lru_link {
	uint32_t next, prev;	/* pfns of folio heads, HM_PFN_NONE at the ends */
};

struct hm_mm {
	struct hm_system *sys;
	struct hm_rwsem mmap_lock;
	hm_spin_t page_table_lock;
	uint64_t id;		/* unique in the process, never reused (the
				 * software TLB tags contexts with it) */
	uint32_t slot_id;	/* unique among the system's live mms, reused
				 * after destroy, so 32 bits never wrap: what
				 * a folio's mm slots hold. Constant */
	uint32_t root;		/* pfn of the top table; constant */
	struct hm_vma *vmas;	/* mmap_lock */
	size_t nr_vmas, cap_vmas; /* mmap_lock */
	uint64_t tlb_gen;	/* bumped when present entries change; atomic */
	uint64_t nr_leaf[3];	/* atomic; plus the per-CPU parts: */
	struct hm_mm_cpu *cpu;	/* [phys.nr_cpus], in the mm's allocation;
				 * constant */
	uint64_t nr_tables;	/* atomic */
	struct hm_mm *next, *prev; /* sys->mms_lock */
};

/*
 * Per-CPU parts of the counters that every fault and unmap changes
 * (base/cpu.h): two threads faulting on two CPUs write no counter line in
 * common. Read by summing (hm_sys_events and below).
 */
struct hm_cpu_stats {
	uint64_t events[HM_NR_EVENTS];	/* atomic */
	uint64_t nr_leaf[3];		/* atomic */
	uint64_t nr_anon_frames;	/* atomic */
	/* Order-0 folios mapped for the first time on this CPU, on their way
	 * to the inactive list (lru.c), as the kernel's per-CPU LRU add
	 * batches: lru_lock once per batch instead of once per fault. */
	hm_spin_t lru_batch_lock __attribute__((aligned(64)));
	uint32_t lru_batch_nr;			/* lru_batch_lock; atomic */
	uint32_t lru_batch[HM_LRU_BATCH];	/* heads; lru_batch_lock */
} __attribute__((aligned(64)));

struct hm_mm_cpu {
	uint64_t nr_leaf[3];		/* atomic */
} __attribute__((aligned(64)));

static inline struct hm_cpu_stats *hm_this_cpu_stats(struct hm_system *sys)
{
	return &sys->cpu_stats[hm_this_cpu(sys->phys.nr_cpus)];
}

static inline void hm_count(struct hm_system *sys, enum hm_stat_id id)
{
	hm_add(&hm_this_cpu_stats(sys)->events[id], 1);
}

/* @mm's leaves of @level change by @d (modulo 2^64: a negative step takes
 * away), and so do the system's. */
static inline void hm_leaf_add(struct hm_mm *mm, unsigned level, uint64_t d)
{
	unsigned cpu = hm_this_cpu(mm->sys->phys.nr_cpus);

	hm_add(&mm->cpu[cpu].nr_leaf[level], d);
	hm_add(&mm->sys->cpu_stats[cpu].nr_leaf[level], d);
}

static inline void hm_anon_add(struct hm_system *sys, uint64_t d)
{
	hm_add(&hm_this_cpu_stats(sys)->nr_anon_frames, d);
}

/* The sums (mm.c). Exact while nothing changes them (hm_check). */
uint64_t hm_sys_events(struct hm_system *sys, unsigned id);
uint64_t hm_sys_nr_leaf(struct hm_system *sys, unsigned level);
uint64_t hm_sys_nr_anon_frames(struct hm_system *sys);
uint64_t hm_mm_nr_leaf(struct hm_mm *mm, unsigned level);
/* Bytes to allocate after a struct of @size for @nr per-CPU parts of
 * @part bytes each (64-byte aligned), and where they start. */
static inline size_t hm_cpu_tail_bytes(size_t part, unsigned nr)
{
	return 64 + part * nr;
}

static inline void *hm_cpu_tail(void *obj, size_t size)
{
	return (void *)HM_ALIGN_UP((uintptr_t)obj + size, 64);
}

static inline struct hm_phys *mm_phys(struct hm_mm *mm) { return &mm->sys->phys; }

/* vma.c — Context: mmap_lock held (write for changes). */
size_t hm_vma_index(struct hm_mm *mm, uint64_t addr);	/* first with end > addr */
struct hm_vma *hm_vma_lookup(struct hm_mm *mm, uint64_t addr);
int hm_vma_reserve(struct hm_mm *mm, size_t extra);
void hm_vma_split_at(struct hm_mm *mm, uint64_t addr);	/* needs 1 reserved */
void hm_vma_insert(struct hm_mm *mm, const struct hm_vma *v); /* needs 1 reserved */
void hm_vma_remove_range(struct hm_mm *mm, uint64_t start, uint64_t end);
void hm_vma_merge_range(struct hm_mm *mm, uint64_t start, uint64_t end);
/* [start, end) has no hole, and each VMA in it allows @need: 0 (any),
 * PROT_READ (anything but PROT_NONE: on x86 what maps can be read) or
 * PROT_WRITE. */
bool hm_vma_covers(struct hm_mm *mm, uint64_t start, uint64_t end, int need);
bool hm_vma_overlaps(struct hm_mm *mm, uint64_t start, uint64_t end);
int hm_vma_find_gap(struct hm_mm *mm, uint64_t hint, uint64_t len, uint64_t *out);

/* folio.c */
uint32_t hm_folio_alloc(struct hm_mm *mm, unsigned order, bool zero);
/* The first mapping of a new 4 KiB folio (folio.c). */
void hm_folio_add_new_map(struct hm_mm *mm, uint32_t head);
/* A zeroed folio of @order for a fault at @va (see folio.c). */
uint32_t hm_folio_alloc_fault(struct hm_mm *mm, unsigned order, uint64_t va);
/* For a swap-in: may take the frames kept back for it (see folio.c). */
uint32_t hm_folio_alloc_swapin(struct hm_mm *mm, unsigned order);
/* With swap, the last free frames are kept for swap-ins (folio.c): is
 * memory below that, for an allocation of @order? Then: reclaim until a new
 * folio of @order leaves them free, and a huge one a headroom above them,
 * with swap or not (false if it cannot). Every allocation but a swap-in's
 * asks. */
bool hm_below_reserve(struct hm_system *sys, unsigned order);
bool hm_reserve_refill(struct hm_system *sys, unsigned order);
void hm_folio_free_unmapped(struct hm_mm *mm, uint32_t head);
uint32_t hm_folio_head(struct hm_phys *ph, uint32_t pfn);
void hm_folio_add_map(struct hm_mm *mm, uint32_t pfn, unsigned level);
/* Fork: one PTE map of each page @pfn[0..nr), in one step for each run of
 * consecutive pages of one folio. Unlike hm_folio_add_map, the caller adds
 * the leaves to nr_leaf[0] (once per table, not once per page). */
void hm_folio_add_pte_maps(struct hm_mm *mm, const uint32_t *pfn, unsigned nr);
/* Take one leaf's mapping away. UNMAPPED: the folio has no mapping left
 * (the caller frees it after a grace period). Otherwise, with @pin, if
 * another mm maps it the folio is pinned in the same step (hm_pin_slot; see
 * phys.h) and PINNED returned: the caller hands the pin to a gather. */
enum hm_unmapped { HM_FOLIO_MAPPED, HM_FOLIO_PINNED, HM_FOLIO_UNMAPPED };
/* *head: the head of the folio the count was taken from, looked up under
 * its lock (a folio split may have changed it since the caller looked):
 * what the caller gathers. A large folio left partly mapped is queued for
 * the deferred split, unless @run_left: then the caller is taking a run of
 * PTEs of the folio, *run_left is set, and the caller queues it at the end
 * of the run with hm_folio_defer_partial (a run that unmaps a folio whole
 * never queues it, as the kernel decides per batch of PTEs). */
enum hm_unmapped hm_folio_remove_map(struct hm_mm *mm, uint32_t pfn, unsigned level, bool pin,
				     uint32_t *head, bool *run_left);
/* Queue the folio of @pfn as partly mapped if it is still mapped. Context:
 * the lock of a table that mapped @pfn, before the gather is flushed. */
void hm_folio_defer_partial(struct hm_system *sys, uint32_t pfn);
/* Map, for @mm, the page @pfn of a swap-cache folio that holds @slot, as a
 * leaf of @level (0, or 1 for a whole 2 MiB folio): count the mapping if
 * the folio still holds the slot, is mapped and is not isolated. Context:
 * the entry's table lock, inside an RCU read section (the folio may be on
 * its way out). */
bool hm_folio_map_cached(struct hm_mm *mm, uint32_t pfn, unsigned level, uint64_t slot);
/* Does mm @id alone map the (still mapped) folio? Context: the folio lock. */
bool hm_folio_alone_locked(const struct hm_page *h, uint32_t id);
/* A leaf of @level at @pfn becomes 512 leaves of @level - 1. */
void hm_folio_split_map(struct hm_mm *mm, uint32_t pfn, unsigned level);
/* Mappings of the page @pfn in all mms (hm_query's mapcount); 0 for the
 * huge zero page, whose mappings are not counted. */
unsigned hm_page_mapcount(struct hm_system *sys, uint32_t pfn);
/* The copy-on-write decision for the leaf of @level at @pfn: reuse in place,
 * copy, or reuse once the pins of unmaps in flight are gone (wait for the
 * RCU callbacks, then decide again). Anything but HM_COPY means the leaf is
 * the only mapping of what it maps: read under the folio lock, so exact for
 * any number of mms. Context: the leaf's table lock, or mmap_lock (query). */
enum hm_reuse { HM_REUSE, HM_COPY, HM_REUSE_LATER };
/* HM_COPY for the huge zero page: it is never anyone's alone. */
enum hm_reuse hm_leaf_reuse(struct hm_mm *mm, uint32_t pfn, unsigned level);

/* pgtable wrappers that keep mm->nr_tables (table.c) */
uint32_t hm_mm_pt_alloc(struct hm_mm *mm, unsigned level);
/* For a swap-in (a PMD swap entry's split in lazy mode): may take the
 * frames kept back for swap-ins. */
uint32_t hm_mm_pt_alloc_swapin(struct hm_mm *mm, unsigned level);
void hm_mm_pt_free_unused(struct hm_mm *mm, uint32_t pfn);
void hm_mm_pt_unlink(struct hm_mm *mm, struct hm_gather *g, uint32_t pfn);
hm_spin_t *hm_mm_table_lock(struct hm_mm *mm, uint32_t table);
/* After present entries changed: every translation any thread cached is
 * stale from now on (accesses already under way may still finish through
 * one). */
void hm_tlb_flush(struct hm_mm *mm);
/* The full shootdown: hm_tlb_flush, then wait until every access under way
 * through an old translation has finished (a grace period). Only fork needs
 * it; unmaps hand their frames to RCU instead (struct hm_gather).
 * Must not: be called inside an RCU read section or under a spinlock. */
void hm_tlb_shootdown(struct hm_mm *mm);
static inline uint32_t hm_slot_table(struct hm_phys *ph, const hm_pte_t *slot)
{
	return (uint32_t)(((const uint8_t *)slot - ph->base) >> HM_PAGE_SHIFT);
}
static inline void hm_mm_gather_init(struct hm_mm *mm, struct hm_gather *g)
{
	hm_gather_init(g, &mm->sys->pc, &mm->tlb_gen);
}

/*
 * Visit every leaf and swap entry in [start, end) under the lock of its
 * table (@fn tells them apart with pt_swp_entry). A leaf must
 * not straddle either end (split first). @fn may change or clear the entry,
 * and returns false to stop the walk before it changed anything (to drop
 * the locks and make room); a write window is open on the table for it
 * (so it stores with the __pt_* helpers). Returns the address where the
 * walk stopped, or @end. Context: mmap_lock held for writing.
 */
typedef bool (*hm_leaf_fn)(struct hm_mm *mm, hm_pte_t *slot, unsigned level,
			   uint64_t va, void *arg);
uint64_t hm_walk_leaves(struct hm_mm *mm, uint64_t start, uint64_t end, hm_leaf_fn fn, void *arg);

/* anon.c */
int hm_anon_vma_prepare(struct hm_mm *mm, struct hm_vma *v);	/* mmap_lock read */
void hm_av_get(struct hm_anon_vma *av, struct hm_mm *mm);	/* member exists */
/* Hold room for one more member until hm_av_unreserve (a fork under way). */
int hm_av_reserve(struct hm_anon_vma *av, struct hm_fail *fail);
void hm_av_unreserve(struct hm_anon_vma *av);
void hm_av_add(struct hm_anon_vma *av, struct hm_mm *mm);	/* while reserved */
void hm_av_put(struct hm_system *sys, struct hm_anon_vma *av, struct hm_mm *mm);
void hm_folio_set_rmap(struct hm_phys *ph, uint32_t head, const struct hm_vma *v, uint64_t va);
/*
 * Call @fn for every leaf, in every address space, that maps part of the
 * folio at @head. Context: the mmap_lock of every member mm held.
 * Returns the number of leaves found.
 */
typedef void (*hm_rmap_fn)(struct hm_mm *mm, uint64_t va, unsigned level, void *arg);
uint64_t hm_rmap_walk(struct hm_system *sys, uint32_t head, hm_rmap_fn fn, void *arg);

/*
 * lru.c — the active and inactive lists of folios and reclaim's hold on a
 * folio. A folio joins the inactive list when allocated and leaves it when
 * it is freed or isolated.
 *
 * Isolation: reclaim takes a folio off its list and sets PG_ISOLATED under
 * the folio lock, only if it is mapped and not pinned. From then on the
 * folio is reclaim's: its last unmap does not free it (reclaim does), and
 * it cannot be pinned. A pin (hm_folio_try_pin) refuses an isolated folio:
 * so a folio is either pinned or isolated, never both, which is what lets
 * a multi-page write and a copy-on-write read a folio outside its locks.
 */
void hm_lru_add(struct hm_system *sys, uint32_t head, bool active);
void hm_lru_del_locked(struct hm_system *sys, uint32_t head);	/* folio lock */
/* An order-0 folio's first mapping: onto the inactive list by way of this
 * CPU's add batch. Context: its folio lock. */
void hm_lru_add_new(struct hm_system *sys, uint32_t head);
/* The same for a new folio that no other thread can reach yet (its first
 * mapping, not yet in any table, as hm_folio_add_new_map), without the
 * folio lock. */
void hm_lru_add_fresh(struct hm_system *sys, uint32_t head);
/* Every CPU's add batch onto the lists. Context: no lru_lock, no batch lock. */
void hm_lru_drain_all(struct hm_system *sys);
uint64_t hm_lru_batched(struct hm_system *sys);	/* folios in batches */
/* Take up to @max folios off the end of list @active into @out, isolated.
 * Context: no spinlock. */
unsigned hm_lru_isolate(struct hm_system *sys, bool active, uint32_t *out, unsigned max);
/* Isolate a folio found mapped in a table; @alone_in non-NULL: only if
 * that mm alone maps it. Context: inside an RCU read section. */
bool hm_folio_isolate(struct hm_system *sys, uint32_t head, struct hm_mm *alone_in);
/* Isolate a folio for migration (any mapped folio that is not pinned,
 * huge ones mapped whole in lazy mode too). Context: inside an RCU read
 * section, @head a folio's head when looked at. */
bool hm_folio_isolate_migrate(struct hm_system *sys, uint32_t head);
/* Isolate, for migration, the folio headed by @pfn if it is on an LRU
 * list. @pfn may be any frame (compaction's scan of a block): whether it
 * heads a listed folio is decided under lru_lock from the list links, not
 * from a descriptor that a free may be resetting. Context: no spinlock,
 * not in an RCU read section. */
bool hm_folio_isolate_pfn(struct hm_system *sys, uint32_t pfn);
/* Isolate the swap-cache folio whose head is @pfn, if it still is one.
 * Context: inside an RCU read section (the frame came from the cache). */
bool hm_folio_isolate_cached(struct hm_system *sys, uint32_t pfn);
/* Give an isolated folio back: to the head of a list if still mapped, else
 * free it after a grace period (it lost its last mapping while isolated).
 * Context: no spinlock, not in an RCU read section. */
void hm_folio_putback(struct hm_system *sys, uint32_t head, bool active);
/* Pin the folio of the frame *head (a head when called; updated to the
 * folio's head now, which a split may have changed): false if isolated. */
bool hm_folio_try_pin(struct hm_system *sys, uint32_t *head);
/* Take a folio off whichever LRU list it is on: false if on none.
 * Context: its folio lock (a folio split). */
bool hm_lru_del_any(struct hm_system *sys, uint32_t head, bool *active);
void hm_folio_unpin(struct hm_system *sys, uint32_t head);

/* vmscan.c — reclaim. The mms whose mmap_lock the caller holds (read or
 * write) are named in a per-thread context that direct reclaim reads:
 * reclaim takes the others with a trylock, and skips folios it cannot. */
void hm_reclaim_enter(struct hm_mm *a, struct hm_mm *b);
void hm_reclaim_exit(void);
/* An allocation failed: reclaim some memory if this thread may (inside
 * hm_reclaim_enter) and swap has room. Returns true if it freed any. */
bool hm_reclaim_direct(struct hm_system *sys, unsigned nr_frames);
/* The mms reclaim holds for a batch of folios: each read-locked by a
 * trylock, or held by this thread already (took false). */
struct hm_lockset {
	struct hm_mm **mm;
	bool *took;
	unsigned n, cap;
};
/* Add the mms that may map @head (its anon_vma family). -EBUSY if one is
 * busy, -ENOMEM; what was added stays added either way. */
int hm_lockset_add_mappers(struct hm_system *sys, uint32_t head, struct hm_lockset *ls);
void hm_lockset_release(struct hm_lockset *ls);

/* swapout.c — see there. An isolated folio on its way out. */
struct hm_swapout {
	struct hm_system *sys;
	uint32_t head;
	uint64_t *slots;	/* slot of each page of the folio */
	bool cached;		/* the slots are its swap cache */
	bool dirty;		/* a leaf had D set */
	int err;		/* begin failed half way: end undoes it */
};
/* Take slots and make every leaf of @head in @ls's mms a swap entry.
 * Nonzero (-ENOSPC: no slot, -ENOMEM): nothing was done. 0: call
 * hm_swapout_end after a grace period, whatever so->err says. */
int hm_swapout_begin(struct hm_system *sys, struct hm_swapout *so, uint32_t head, const struct hm_lockset *ls);
/* Write and free the folio: 0; or undo begin (-EIO, so->err), leaving it
 * isolated and mapped as before. */
int hm_swapout_end(struct hm_swapout *so, const struct hm_lockset *ls);
/* Visit every leaf of @mm that maps part of the folio @head, under its
 * table lock: @fn gets the slot and the leaf, and returns 0 to go on to
 * the next, 1 to look at the same address again (it made the leaf a
 * table), or an error, which ends the walk. Context: mmap_lock held. */
typedef int (*hm_leaf_visit)(struct hm_mm *mm, hm_pte_t *slot, hm_pte_t e, unsigned level, uint64_t va,
			     void *arg);
int hm_for_each_leaf_of(struct hm_mm *mm, uint32_t head, hm_leaf_visit fn, void *arg);
/* MADV_PAGEOUT. Context: mmap_lock held for reading. */
int hm_pageout_range(struct hm_mm *mm, uint64_t start, uint64_t end);
/* Swap-in fault at the swap entry *slot of @level. Context: mmap_lock
 * held for reading. 0 (retry the access), -ENOMEM, -EIO. */
int hm_swap_in(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot, unsigned level,
	       uint64_t va, bool write);
/* Drop the swap-cache slots of a folio that is going away. Context: the
 * folio lock. */
void hm_folio_drop_swapcache_locked(struct hm_system *sys, struct hm_page *h);
/* Entries on this many slots dropped from the tables. */
void hm_swap_entry_free(struct hm_system *sys, hm_pte_t e, unsigned level);

/* Lock the folio that holds @pfn: its head (*head) is looked up again
 * under the lock, as a folio split may move it. Returns the lock held. */
hm_spin_t *hm_lock_folio_of(struct hm_system *sys, uint32_t pfn, uint32_t *head);

/*
 * folio locks (innermost after the ptls). One lock serves the 16 frames of
 * an aligned group, and the groups are hashed over the locks. A CPU's frame
 * cache hands out runs of adjacent frames, so a thread mostly takes locks
 * that the other CPU does not (hashing each frame over all locks made
 * nearly every lock a line written last by the other CPU). And fork, which
 * goes through the pages of a table in order, takes one lock for 16 4 KiB
 * folios, not 16 (hm_folio_add_pte_maps): a locked compare-and-swap per
 * page was a fifth of its time. Nobody holds two folio locks but a folio
 * split, which takes them all, so a coarser lock cannot deadlock.
 */
#define HM_FOLIO_LOCK_GROUP 16u
static inline hm_spin_t *hm_folio_lock(struct hm_system *sys, uint32_t head)
{
	uint32_t group = head / HM_FOLIO_LOCK_GROUP;

	return &sys->folio_locks[(group * 0x9e3779b1u) >> (32 - __builtin_ctz(HM_FOLIO_LOCKS))];
}

/*
 * folio_split.c — split a large folio into folios of the next order down
 * (order 9 into 512 of order 0, 18 into 512 of order 9). Only descriptors
 * change: entries name frames, not folios. A split moves the head of the
 * frames it touches, so it holds every folio lock (in index order, nothing
 * taken under them but sys->deferred_lock), and whoever takes a folio lock
 * for a frame looks up its head again under it (hm_lock_folio_of in folio.c).
 */
void hm_folio_lock_all(struct hm_system *sys);
void hm_folio_unlock_all(struct hm_system *sys);
struct hm_split_result {
	uint64_t freed;		/* frames of new folios that nothing maps:
				 * handed to the gather */
	unsigned queued;	/* new order-9 folios put on the deferred queue */
};
/*
 * Split the folio at @head if nothing prevents it: it is not mapped whole
 * (entire_mapcount 0), it is mapped, not pinned, not isolated by reclaim,
 * not in the swap cache, not the huge zero page. New folios that nothing
 * maps go to @g (room for 512 entries). Returns false, changing nothing,
 * if it cannot be split. Context: sys->split_lock, every folio lock.
 */
bool hm_folio_split_locked(struct hm_system *sys, uint32_t head, struct hm_gather *g,
			   struct hm_split_result *res);
/* Split the 2 MiB folio that the PTE at @va maps into 4 KiB folios, if it
 * can be (MADV_PAGEOUT of part of it). Context: mmap_lock held, no
 * spinlock; takes split_lock. */
bool hm_folio_split_at(struct hm_mm *mm, uint64_t va);

/*
 * deferred.c — the deferred split queue and the THP shrinkers.
 *
 * A large folio is queued when an unmap leaves it partly mapped (counted in
 * thp_deferred_split_page, once per folio), and, while
 * khugepaged_max_ptes_none < 511, when its PMD mapping is split to PTEs (a
 * candidate for the underused shrinker). It leaves the queue when it is
 * split or loses its last mapping. Context of add/del: the folio's lock
 * (hm_folio_lock_all counts); they take sys->deferred_lock.
 */
void hm_deferred_add_locked(struct hm_system *sys, uint32_t head, bool partial);
void hm_deferred_del_locked(struct hm_system *sys, uint32_t head);
void hm_deferred_readd_locked(struct hm_system *sys, uint32_t head, bool partial);
bool hm_deferred_partial_locked(struct hm_system *sys, uint32_t head);
/*
 * Memory pressure: split the queued partly mapped folios, freeing their
 * unmapped parts, until @want frames are freed; then the underused
 * shrinker: split PTE-mapped 2 MiB folios with more than
 * khugepaged_max_ptes_none zero-filled pages, dropping those. Returns the
 * frames freed (free after a grace period: nr_free_pages counts them at
 * once). The underused shrinker takes the mmap_locks of a folio's mappers
 * with trylocks, for writing, and skips the folio when one is busy, or held
 * by the caller; it waits for grace periods, so inside hm_fault's first
 * pass (hm_drain_defer_begin) it does not run but asks for the retry.
 * Context: no spinlock; no RCU read section; may hold mmap_locks (a fault)
 * but not sys->split_lock.
 */
uint64_t hm_thp_shrink(struct hm_system *sys, uint64_t want);
/* For tests: hm_thp_shrink, then hm_check if the system asks for it. */
uint64_t hm__thp_shrink(struct hm_system *sys, uint64_t want);

/* Fault flags. */
#define HM_FAULT_ALLOW_RETRY 0x1u	/* may return -EAGAIN: drop mmap_lock,
					 * wait for RCU callbacks, fault again
					 * without this flag */

/* cow.c — Context: mmap_lock held for reading; *slot maps @va read-only
 * in a writable VMA. 0 (retry the access), -ENOMEM, or -EAGAIN (see
 * HM_FAULT_ALLOW_RETRY). */
int hm_wp_fault(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot,
		unsigned level, uint64_t va, unsigned flags);

/* fault.c — 0 = resolved (retry the access), -EFAULT, -ENOMEM.
 * hm_fault_locked: Context: mmap_lock held for reading; never waits for a
 * grace period but to find free memory. hm_fault: takes mmap_lock itself,
 * and waits for pins (see hm_leaf_reuse) without it. */
int hm_fault_locked(struct hm_mm *mm, uint64_t va, bool write);
int hm_fault(struct hm_mm *mm, uint64_t va, bool write);
int hm_leaf_prot_bits(const struct hm_vma *v, bool write, hm_pte_t *out);
/* May a huge page of @level go at @va in @v (policy, VMA flags, fit)? */
bool hm_huge_allowed(struct hm_system *sys, const struct hm_vma *v, uint64_t va, unsigned level);
/* May a fault map a huge page in @v under the per-size @policy? */
bool hm_thp_allowed(const struct hm_vma *v, int policy);

/* zero.c — the huge zero page (see there). */
/* The block, created at the first call; HM_PFN_NONE when no 2 MiB block
 * can be had. Context: may allocate (no spinlock). */
uint32_t hm_huge_zero_get(struct hm_system *sys);
/* Does @pfn lie in the huge zero page? Context: any; exact for a pfn read
 * from a leaf (the leaf was set after the block was published). */
static inline bool hm_is_huge_zero(struct hm_system *sys, uint32_t pfn)
{
	uint32_t z = hm_load_relaxed(&sys->huge_zero_pfn);

	return z != HM_PFN_NONE && pfn - z < HM_PTRS;
}
/* A read fault at the empty PMD entry *slot where a 2 MiB page may go: map
 * the zero page read-only. 0: a leaf is there now; 1: go on without it.
 * Context: mmap_lock held for reading. */
int hm_huge_zero_fault(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot);
/* A write fault on the zero leaf @e (level 1 or 0) at *slot in a writable
 * VMA: a fresh zeroed page of its own, 2 MiB where the policy allows and
 * one can be had, else 4 KiB in the written PTE (a PMD leaf is split once
 * the page is had: -ENOMEM leaves it whole). 0 (retry the access),
 * -ENOMEM, or -EAGAIN (see hm_fault). Context: mmap_lock held for
 * reading, no spinlock. */
int hm_huge_zero_wp(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot, unsigned level,
		    uint64_t va, hm_pte_t e);
/* A zero leaf of @level was mapped / taken away / split into 512 zero
 * PTEs: what hm_folio_add_map, hm_folio_remove_map, hm_folio_split_map do
 * for folios. Context: the leaf's table lock. */
void hm_huge_zero_map(struct hm_mm *mm, unsigned level);
void hm_huge_zero_unmap(struct hm_mm *mm, unsigned level);
void hm_huge_zero_split_map(struct hm_mm *mm);
/* Free the block. Context: hm_system_destroy, no mm left. */
void hm_huge_zero_fini(struct hm_system *sys);

/* split.c — Context: mmap_lock held for writing. */
struct hm_split_tables {
	uint32_t pfn[4];	/* lazy mode: tables allocated beforehand */
	unsigned n;
};
/*
 * Split the huge leaves that cross @start or @end, so that every leaf lies
 * inside [start, end) or outside it. Lazy mode allocates the (at most four)
 * tables first: -ENOMEM then, having changed nothing.
 */
int hm_split_edges(struct hm_mm *mm, uint64_t start, uint64_t end);
/* The one table a split of one leaf (or PMD swap entry) needs in lazy
 * mode, into @st (none in eager mode): 0 or -ENOMEM. */
int hm_split_table_lazy(struct hm_mm *mm, struct hm_split_tables *st);
/* Free the tables of @st that a split did not use. */
void hm_split_done(struct hm_mm *mm, struct hm_split_tables *st);
/* Split the leaf at *slot (level 1 or 2) under its table's lock; works
 * under mmap_lock for reading too, as every installer rechecks under that
 * lock. Lazy mode takes its table from @st. */
bool hm_split_leaf(struct hm_mm *mm, hm_pte_t *slot, unsigned level, struct hm_split_tables *st);
/* As hm_split_leaf, if the leaf still maps frame @pfn under that lock: a
 * caller that looked without the lock (migration, under mmap_lock for
 * reading) must not split a folio a copy-on-write put there meanwhile. */
bool hm_split_leaf_of(struct hm_mm *mm, hm_pte_t *slot, unsigned level, uint32_t pfn, struct hm_split_tables *st);
/* Split the PMD swap entry at *slot into a table of 512 PTE swap entries,
 * if it is still one under its table's lock. Lazy mode takes its table
 * from @st. */
bool hm_split_swap_pmd(struct hm_mm *mm, hm_pte_t *slot, struct hm_split_tables *st);
/* Split the huge leaf at @addr down to @level (1: PMD leaves, 0: PTEs), for
 * benchmarks and tests. -ENOENT if no huge leaf is there. */
int hm__split(struct hm_mm *mm, uint64_t addr, unsigned level);

/* unmap.c — Context: mmap_lock held for writing. */
void hm_zap_range(struct hm_mm *mm, struct hm_gather *g, uint64_t start, uint64_t end);
void hm_free_pgtables(struct hm_mm *mm, struct hm_gather *g, uint64_t start, uint64_t end);
/* Unlink the PTE and PMD tables serving [start, end) that map nothing
 * (pgtable_reclaimed); they are freed after a grace period. */
void hm_reclaim_tables(struct hm_mm *mm, struct hm_gather *g, uint64_t start, uint64_t end);
/* Take everything out of [start, end), free the tables no VMA needs, and
 * give back those left empty. */
void hm_unmap_range(struct hm_mm *mm, uint64_t start, uint64_t end, bool free_tables);
int hm_munmap_locked(struct hm_mm *mm, uint64_t start, uint64_t end);

/*
 * compact.c — direct compaction (see there and docs/internals.md). Make a
 * free block of @order (9 or 18) on @node by migrating the movable folios
 * out of the best candidate block, then allocate it (HM_PFN_NONE if it
 * cannot). Counts compact_stall, compact_success, compact_fail,
 * compact_migrate_scanned. Context: as hm_migrate_folios: no spinlock, no
 * RCU read section, the caller's own mmap_locks named with
 * hm_reclaim_enter. Inside hm_fault's first pass it does not run (it waits
 * for grace periods) but asks for the retry, as hm_ptcache_drain does.
 */
uint32_t hm_compact_alloc(struct hm_system *sys, unsigned node, unsigned order);
/* collapse.c — MADV_COLLAPSE and khugepaged's work (see there). */
struct hm_collapse_ctl {
	bool khugepaged;	/* honour khugepaged_max_ptes_{none,swap,shared} */
	uint64_t collapsed;	/* huge leaves made */
	const bool *stop;	/* if set and true: stop between pieces */
};
#define HM_COLLAPSE_DONE 1	/* a huge leaf is there already */
/* Collapse every 2 MiB piece in [start, end), and each 1 GiB piece where a
 * PUD leaf may go. 0, or the error of the last piece that failed: -EINVAL
 * (no huge page fits, no table there, not allowed), -EAGAIN (a page busy;
 * khugepaged's limits), -ENOMEM (no huge frame: stops there).
 * Context: no lock held; takes mmap_lock. */
int hm_collapse_range(struct hm_mm *mm, uint64_t start, uint64_t end, struct hm_collapse_ctl *cc);
/* The 512 2 MiB pieces of the 1 GiB piece at @va, all PMD leaves now,
 * into one PUD leaf (khugepaged, which collapses those pieces one pass at
 * a time). 0 (also when a PUD leaf is there), -EINVAL when a piece is not
 * a PMD leaf or no PUD leaf may go there, else as hm_collapse_range.
 * Context: no lock held; takes mmap_lock. */
int hm_collapse_pud(struct hm_mm *mm, uint64_t va, struct hm_collapse_ctl *cc);
/* folio.c: 512 leaves of @level - 1 over the chunk at @pfn become one
 * leaf of @level (the inverse of hm_folio_split_map); false if the folio
 * is smaller than that now. Context: the leaf's table lock. */
bool hm_folio_refold_map(struct hm_mm *mm, uint32_t pfn, unsigned level);

/* khugepaged.c */
int hm_khugepaged_start(struct hm_system *sys);
void hm_khugepaged_stop(struct hm_system *sys);

/* check.c */
int hm_check_enabled(struct hm_system *sys, int ret);

/*
 * migrate.c — moving folios to other frames (see there).
 */
enum { HM_MR_SYSCALL, HM_MR_COMPACTION };
/* Where a migrating folio's new frames come from. */
struct hm_migrate_ctl {
	unsigned node;	/* target node */
	/* NULL: the normal folio allocation on `node` (HM_ALLOC_THISNODE).
	 * Compaction passes one that keeps out of the block it empties. It
	 * returns a block of 2^order frames from hm_alloc_pages (descriptors
	 * reset), or HM_PFN_NONE; migration makes it the folio. */
	uint32_t (*alloc)(struct hm_system *sys, unsigned order, void *arg);
	void *arg;
	unsigned reason;	/* HM_MR_SYSCALL, HM_MR_COMPACTION (stats) */
};
/* Move the folios whose heads are heads[0..n) (candidates: each is
 * isolated here first, skipped if it cannot be: pinned, isolated by
 * someone else, no longer a folio head, huge zero page). Counts
 * pgmigrate_success/fail. *moved = folios moved. 0, or -ENOMEM when a
 * target could not be allocated (what moved stays moved).
 * Context: no spinlock, no RCU read section; the caller's own
 * mmap_locks named with hm_reclaim_enter (other mappers are trylocked).
 * Returns -EAGAIN if a mapper was busy, or a folio to split was pinned or
 * taken by reclaim meanwhile, and nothing else failed (caller drops its
 * locks and retries). */
int hm_migrate_folios(struct hm_system *sys, const uint32_t *heads, unsigned n,
		      const struct hm_migrate_ctl *ctl, unsigned *moved);
/* hm_migrate_folios for folios the caller isolated already
 * (hm_folio_isolate_migrate, inside the RCU read section in which it found
 * them mapped): each is moved or given back, whatever the result.
 * *left: some folio (or split piece: *moved counts those too) is still
 * mapped where it was, e.g. pinned, and may move on a second look after a
 * grace period; folios that were unmapped meanwhile do not count. */
int hm_migrate_isolated(struct hm_system *sys, const uint32_t *heads, unsigned n,
			const struct hm_migrate_ctl *ctl, unsigned *moved, bool *left);
/* The normal migration target (ctl->alloc NULL): a block of 2^@order frames
 * on @node only, never out of the swap-in reserve. Context: no spinlock. */
uint32_t hm_migrate_alloc_node(struct hm_system *sys, unsigned node, unsigned order);
/* Wait until the entry at @va in @mm is no longer the migration entry @e.
 * Context: no spinlock, no RCU read section; mmap_lock held or not. */
void hm_migration_wait(struct hm_mm *mm, uint64_t va, hm_pte_t e);

/* For tests: the next mm gets id @next (or a later one: ids only grow, so
 * none is ever reused), to show that nothing narrows ids past 2^32. */
void hm__mm_id_skip_to(uint64_t next);

/* For tests: arm the allocation failpoint of @sys (see base/fail.h). */
void hm__fail_arm(struct hm_system *sys, long nth, bool persistent);
long hm__fail_hits(struct hm_system *sys);

#endif /* HM_MM_H */
