/* SPDX-License-Identifier: MIT */
/*
 * mm's structures: the system, an address space (mm), VMAs, anon_vma
 * families, the per-CPU counter parts, and the counter ids that size them.
 * Each shared field's comment names its lock. No functions but layout
 * helpers: the code that works on these lives in the headers of its
 * concern (mm.h includes them all).
 *
 * Invariants of an mm (mmap_lock held for writing, or quiescent):
 *
 *   vmas[i].start < vmas[i].end <= vmas[i+1].start      for i < nr_vmas - 1
 *   HM_MIN_ADDR <= vmas[0].start,  vmas[nr_vmas-1].end <= sys->task_size
 *   vmas[i].start, vmas[i].end  = 0 (mod HM_PAGE_SIZE)
 *   every mapped leaf lies inside one VMA v, and
 *     v.prot == PROT_NONE  =>  the leaf is PROTNONE
 *     the leaf is writable =>  v.prot & PROT_WRITE
 *   nr_leaf[l]   = leaves of level l in this mm's tables that map folios
 *                  (the huge zero page's are counted apart: zero.h)
 *   nr_tables    = 1 (root) + tables reachable from root + their deposits
 *   eager mode:  PMD table t:  t.nr_deposited = PMD leaves in t
 *                PUD table t:  t.nr_deposited = PUD leaves in t, and each
 *                              PMD table deposited there holds 512 PTE tables
 *   lazy mode:   nr_deposited = 0 everywhere
 */
#ifndef HM_MM_TYPES_H
#define HM_MM_TYPES_H

#include "../../include/hugemm.h"
#include "../pgtable/pgtable.h"
#include "../phys/swap.h"
#include "../base/tcount.h"

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
				 * until the first fault; set once, with
				 * release, under page_table_lock and
				 * mmap_lock for reading, then constant:
				 * read with hm_load under mmap_lock for
				 * reading, unless this thread has loaded
				 * it so already */
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
	X(prezero_used) X(nr_prezeroed) X(pgtable_free_slots)		\
	X(pgtable_pending)

enum hm_stat_id {
#define X(n) HM_STAT_##n,
	HM_EVENT_STATS(X)
	HM_NR_EVENTS,
	HM_STAT_COMPUTED_BASE = HM_NR_EVENTS - 1,
	HM_COMPUTED_STATS(X)
#undef X
	HM_NR_STATS
};

/* Counters of sys->tc (stat.h): the events, then these. */
#define HM_TC_LEAF(level) (HM_NR_EVENTS + (level))
#define HM_TC_ANON	(HM_NR_EVENTS + 3)
#define HM_TC_SYS_N	(HM_NR_EVENTS + 4)

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
	 * count changes rarely) and tc's per-thread parts (hot paths: a
	 * fault, an unmap), modulo 2^64; tc counter i is the i-th of these
	 * three fields taken as one array (HM_TC_*). */
	uint64_t events[HM_NR_EVENTS];	/* atomic */
	uint64_t nr_leaf[3];	/* leaves per level, all mms; atomic */
	uint64_t nr_anon_frames; /* frames in folios; atomic */
	struct hm_tcount tc;
	uint64_t tc_retired[HM_TC_SYS_N];	/* tc's: exited threads' parts */
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
	uint64_t nr_leaf[3];	/* atomic; plus leaf_tc's per-thread parts */
	struct hm_tcount leaf_tc;
	uint64_t leaf_retired[3];	/* leaf_tc's: exited threads' parts */
	uint64_t nr_tables;	/* atomic */
	struct hm_mm *next, *prev; /* sys->mms_lock */
};

/* Per-CPU data of the system (base/cpu.h). */
struct hm_cpu_stats {
	/* Order-0 folios mapped for the first time on this CPU, on their way
	 * to the inactive list (lru.c), as the kernel's per-CPU LRU add
	 * batches: lru_lock once per batch instead of once per fault. */
	hm_spin_t lru_batch_lock __attribute__((aligned(64)));
	uint32_t lru_batch_nr;			/* lru_batch_lock; atomic */
	uint32_t lru_batch[HM_LRU_BATCH];	/* heads; lru_batch_lock */
} __attribute__((aligned(64)));

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

#endif /* HM_MM_TYPES_H */
