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
 *  - nr_leaf[l] = leaves of level l in this mm's tables;
 *    nr_tables = tables reachable from root, plus their deposits, plus root.
 *  - Eager mode: each PMD table's nr_deposited = its PMD leaves; each PUD
 *    table's nr_deposited = its PUD leaves, and every PMD table on that list
 *    holds 512 PTE tables. Lazy mode: no deposits anywhere.
 */
#ifndef HM_MM_H
#define HM_MM_H

#include "../../include/hugemm.h"
#include "../pgtable/pgtable.h"

#define HM_MIN_ADDR 0x10000ull	/* like vm.mmap_min_addr */

enum {
	VM_HUGEPAGE	= 1u << 0,
	VM_NOHUGEPAGE	= 1u << 1,
	VM_DONTFORK	= 1u << 2,
};

struct hm_vma {
	uint64_t start, end;	/* [start, end) */
	int prot;		/* PROT_* */
	unsigned flags;		/* VM_* */
};

/* Counters: the events first, then the ones computed when read. */
#define HM_EVENT_STATS(X)						\
	X(pgfault) X(thp_fault_alloc) X(thp_fault_fallback)		\
	X(pud_fault_alloc) X(pmd_fault_alloc)				\
	X(pud_fault_fallback) X(pmd_fault_fallback)			\
	X(thp_split_pud) X(thp_split_pmd) X(split_alloc)		\
	X(thp_collapse_alloc) X(thp_migration_success) X(thp_swpout)	\
	X(pswpin) X(pswpout) X(cow_reuse) X(cow_copy)			\
	X(cow_split_pud) X(cow_split_pmd)
#define HM_COMPUTED_STATS(X)						\
	X(nr_free_pages) X(pgtable_bytes) X(pgtable_deposited)		\
	X(nr_anon_pages) X(nr_anon_pte) X(nr_anon_pmd) X(nr_anon_pud)	\
	X(nr_mms) X(phys_bytes)

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
	uint64_t nr_mms;	/* mms_lock */
	uint64_t events[HM_NR_EVENTS];	/* atomic */
	uint64_t nr_leaf[3];	/* leaves per level, all mms; atomic */
	uint64_t nr_anon_frames; /* frames in folios; atomic */
};

struct hm_mm {
	struct hm_system *sys;
	struct hm_rwsem mmap_lock;
	hm_spin_t page_table_lock;
	uint64_t id;		/* unique in the process, never reused */
	uint32_t root;		/* pfn of the top table; constant */
	struct hm_vma *vmas;	/* mmap_lock */
	size_t nr_vmas, cap_vmas; /* mmap_lock */
	uint64_t tlb_gen;	/* bumped when present entries change; atomic */
	uint64_t nr_leaf[3];	/* atomic */
	uint64_t nr_tables;	/* atomic */
	struct hm_mm *next, *prev; /* sys->mms_lock */
};

static inline void hm_count(struct hm_system *sys, enum hm_stat_id id)
{
	hm_add(&sys->events[id], 1);
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
bool hm_vma_covers(struct hm_mm *mm, uint64_t start, uint64_t end);
bool hm_vma_overlaps(struct hm_mm *mm, uint64_t start, uint64_t end);
int hm_vma_find_gap(struct hm_mm *mm, uint64_t hint, uint64_t len, uint64_t *out);

/* folio.c */
uint32_t hm_folio_alloc(struct hm_mm *mm, unsigned order, bool zero);
void hm_folio_free_unmapped(struct hm_mm *mm, uint32_t head);
uint32_t hm_folio_head(struct hm_phys *ph, uint32_t pfn);
void hm_folio_add_map(struct hm_mm *mm, uint32_t pfn, unsigned level);
/* Returns true when the folio has no mapping left. */
bool hm_folio_remove_map(struct hm_mm *mm, uint32_t pfn, unsigned level);
/* A leaf of @level at @pfn becomes 512 leaves of @level - 1. */
void hm_folio_split_map(struct hm_mm *mm, uint32_t pfn, unsigned level);
unsigned hm_page_mapcount(struct hm_phys *ph, uint32_t pfn);
bool hm_folio_mapped_by_only(struct hm_phys *ph, uint32_t pfn, uint64_t mm_id);

/* pgtable wrappers that keep mm->nr_tables (table.c) */
uint32_t hm_mm_pt_alloc(struct hm_mm *mm, unsigned level);
void hm_mm_pt_free_unused(struct hm_mm *mm, uint32_t pfn);
void hm_mm_pt_unlink(struct hm_mm *mm, struct hm_gather *g, uint32_t pfn);
hm_spin_t *hm_mm_table_lock(struct hm_mm *mm, uint32_t table);
static inline uint32_t hm_slot_table(struct hm_phys *ph, const hm_pte_t *slot)
{
	return (uint32_t)(((const uint8_t *)slot - ph->base) >> HM_PAGE_SHIFT);
}
static inline void hm_mm_gather_init(struct hm_mm *mm, struct hm_gather *g)
{
	hm_gather_init(g, &mm->sys->pc, &mm->tlb_gen);
}

/*
 * Visit every leaf in [start, end) under the lock of its table. A leaf must
 * not straddle either end (split first). @fn may change or clear the entry.
 * Context: mmap_lock held for writing.
 */
typedef void (*hm_leaf_fn)(struct hm_mm *mm, hm_pte_t *slot, unsigned level,
			   uint64_t va, void *arg);
void hm_walk_leaves(struct hm_mm *mm, uint64_t start, uint64_t end, hm_leaf_fn fn, void *arg);

/* fault.c — Context: mmap_lock held for reading. 0 = resolved (retry the
 * access), -EFAULT, -ENOMEM. */
int hm_fault_locked(struct hm_mm *mm, uint64_t va, bool write);
int hm_fault(struct hm_mm *mm, uint64_t va, bool write);
int hm_leaf_prot_bits(const struct hm_vma *v, bool write, hm_pte_t *out);

/* split.c — Context: mmap_lock held for writing. */
struct hm_split_tables {
	uint32_t pfn[4];	/* lazy mode: tables allocated beforehand */
	unsigned n;
};
int hm_split_prepare(struct hm_mm *mm, uint64_t a, uint64_t b, struct hm_split_tables *st);
void hm_split_at(struct hm_mm *mm, uint64_t addr, struct hm_split_tables *st);
void hm_split_done(struct hm_mm *mm, struct hm_split_tables *st);
/* Split the huge leaf at @addr down to @level (1: PMD leaves, 0: PTEs), for
 * benchmarks and tests. -ENOENT if no huge leaf is there. */
int hm__split(struct hm_mm *mm, uint64_t addr, unsigned level);

/* unmap.c — Context: mmap_lock held for writing. */
void hm_zap_range(struct hm_mm *mm, struct hm_gather *g, uint64_t start, uint64_t end);
void hm_free_pgtables(struct hm_mm *mm, struct hm_gather *g, uint64_t start, uint64_t end);
int hm_munmap_locked(struct hm_mm *mm, uint64_t start, uint64_t end);

/* check.c */
int hm_check_enabled(struct hm_system *sys, int ret);

/* For tests: arm the allocation failpoint of @sys (see base/fail.h). */
void hm__fail_arm(struct hm_system *sys, long nth, bool persistent);
long hm__fail_hits(struct hm_system *sys);

#endif /* HM_MM_H */
