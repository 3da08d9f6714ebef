/* SPDX-License-Identifier: MIT */
/*
 * The frame descriptor: 64 bytes per 4 KiB frame, its flags, and the
 * typed views through which the layers above read it.
 *
 * A descriptor is read in one of three ways, as in the kernel's memmap:
 *   free frame    (buddy != 0 on the head of a free block: lru links)
 *   folio         (PG_HEAD / PG_TAIL: map counts, see below)
 *   page table    (PG_TABLE, PG_PT_PENDING, PG_PT_FREE: a pointer to the
 *                  table's own descriptor, see pgtable/ptdesc.h)
 *
 * Folio map counts, as equations. A split must not touch 512 (or 262,144)
 * descriptors, so a count that a split gives to every page (or every 2 MiB
 * chunk) at once is kept once, and each page (chunk) keeps its difference:
 *
 *   pte_maps(page)  = chunk.pte_all + page.mapcount
 *                     (chunk = the page's 2 MiB-aligned page in its folio;
 *                      for order 0 the page itself, pte_all = 0)
 *   pmd_maps(chunk) = head.pmd_all + chunk.pmd_mapcount   (order-18 folios)
 *   entire_mapcount = leaves mapping the whole folio (PMD leaf for order 9,
 *                     PUD leaf for order 18); 0 for order 0
 *   large_mapcount  = entire_mapcount + sum(pmd_maps) + sum(pte_maps)
 *                   = number of leaf entries, in all mms, mapping any of it
 *   mapcount of a page as hm_query reports it
 *                   = pte_maps(page) + pmd_maps(its chunk) + entire_mapcount
 *   mm_count[0] + mm_count[1] = large_mapcount, unless PG_MAYBE_SHARED
 *   a folio is freed when large_mapcount drops to 0, or split into 512
 *   folios of the next order down (mm/folio_split.c), which these equations
 *   give the counts of, freeing those left at 0.
 *
 * Tails: a folio's other frames say PG_TAIL and its order, except those of
 * a huge folio (order 9 or 18) as allocated, which keep the flags and order
 * a free block's frames have (0): marking them wrote 16 MiB of descriptors
 * per 1 GiB fault (2-3 % of it next to the zeroing) and 32 KiB per 2 MiB
 * fault (1-2 %). A frame of a folio whose descriptor says neither head nor
 * tail belongs to the folio that its 2 MiB-aligned frame heads if that is
 * an order-9 head, else to the order-18 folio its 1 GiB-aligned frame heads
 * (hm_unmarked_head). A folio's tails are marked all or none: a split of a
 * 1 GiB folio to order 9 marks every frame before it changes that head's
 * order, and a copy of a folio's descriptors (migration) copies the marks.
 * A split to order 0 turns the tails into heads before the head. Their map
 * counts are kept as any tail's.
 */
#ifndef HM_PHYS_PAGE_H
#define HM_PHYS_PAGE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../base/base.h"

enum {
	PG_HEAD		= 1u << 1,	/* first frame of a folio */
	PG_TAIL		= 1u << 2,	/* other frames of a folio */
	PG_TABLE	= 1u << 3,	/* a page table in use (or deposited) */
	PG_PT_FREE	= 1u << 4,	/* free slot of the page-table cache */
	PG_PT_PENDING	= 1u << 5,	/* table freed, waiting for a grace period */
	PG_PT_SLOT	= 1u << 6,	/* belongs to a 2 MiB page-table block */
	PG_MAYBE_SHARED	= 1u << 7,	/* folio head: mm slots overflowed */
	PG_FREEING	= 1u << 8,	/* folio head: unmapped, freed after a
					 * grace period */
	/* Folio heads; set and cleared under the folio lock, atomically. */
	PG_ISOLATED	= 1u << 9,	/* reclaim owns it: not freed at its last
					 * unmap, reclaim frees it */
	PG_SWAPCACHE	= 1u << 10,	/* holds the content of swap slots
					 * [swap, swap + 2^order) */
	PG_DEFERRED	= 1u << 11,	/* on the deferred split queue */
	PG_HUGE_ZERO	= 1u << 12,	/* the huge zero page: never counted,
					 * never freed before the system */
	PG_LRU		= 1u << 13,	/* on an LRU list (sys->lru_lock) */
	PG_ACTIVE	= 1u << 14,	/* that list is the active one */
	PG_PCP		= 1u << 15,	/* free, in a per-CPU frame cache (buddy.c):
					 * its owner is that cache (its lock) */
	PG_LRU_BATCH	= 1u << 16,	/* order-0 folio head in a per-CPU LRU add
					 * batch (mm/lru.c): that batch's lock,
					 * atomically */
	PG_ZEROED	= 1u << 17,	/* free, all zero, in an idle-zeroing
					 * pool (prezero.c): its owner is that
					 * pool (its lock) */
};

struct hm_ptdesc;

struct hm_page {
	uint32_t flags;		/* PG_*: changed only by the frame's owner; a
				 * folio head's PG_MAYBE_SHARED under the folio
				 * lock, atomically (read without it) */
	uint8_t order;		/* free block or folio order */
	uint8_t spare;		/* unused: a frame's node is computed from its
				 * pfn, so that no descriptor is written before
				 * its frame is used (hm_pfn_node) */
	uint8_t spare2;		/* unused (a table's level is in its ptdesc) */
	uint8_t buddy;		/* order + 1 if this heads a free block, else 0;
				 * node->lock (the only byte the buddy allocator
				 * reads in frames it does not own) */
	union {			/* offset 8, 16 bytes */
		struct {	/* free lists (buddy, page-table cache) */
			uint32_t next, prev;
		} lru;
		struct {	/* page table, pending table or free slot of
				 * the page-table cache */
			uint32_t lru_next, lru_prev;	/* = lru: a free slot's
						 * links */
			struct hm_ptdesc *desc;	/* its descriptor; set while
						 * the frame is a table or a
						 * slot (the cache's lock) */
		} pt;
		struct {	/* folio head (anonymous memory) */
			uint32_t gather_next;	/* = lru.next: free list after unmap */
			uint32_t anon_vma;	/* id of its anon_vma family */
			uint64_t index;		/* virtual page number of its first page */
		} folio;
		struct {	/* first tail of a large folio on the deferred
				 * split queue (mm/deferred.c): written under
				 * the folio lock and sys->deferred_lock */
			uint32_t next, prev;	/* heads; HM_PFN_NONE at the ends */
			uint32_t partial;	/* partly mapped, not only a
						 * candidate for the underused
						 * shrinker */
		} deferred;
	};
	struct {		/* 24, 32 bytes: folio map counts, the folio lock */
		int32_t mapcount;	/* 24: PTE maps of this page, less pte_all */
		int32_t pmd_mapcount;	/* 28: chunk: PMD maps, less head.pmd_all */
		int32_t entire_mapcount; /* 32: folio head */
		int32_t large_mapcount;	/* 36: folio head */
		uint32_t mm_id[2];	/* 40: folio head: the two tracked mms,
					 * by slot_id (unique among live mms) */
		int32_t mm_count[2];	/* 48: their leaf counts */
	};
	struct {		/* 56 */
		int32_t pte_all;	/* chunk: PTE maps of all its pages */
		union {
			int32_t pmd_all;	/* head of an order-18 folio: PMD
						 * maps of all its chunks */
			uint32_t swap;		/* head of an order-0 or -9 folio
						 * with PG_SWAPCACHE: its first slot */
		};
	};
};

_Static_assert(sizeof(struct hm_page) == 64, "descriptor must be 64 bytes");
_Static_assert(offsetof(struct hm_page, pt.desc) >= offsetof(struct hm_page, lru) + sizeof(((struct hm_page *)0)->lru),
	       "a free table slot keeps its ptdesc pointer while on the free list");
_Static_assert(offsetof(struct hm_page, mapcount) >= 24, "map counts outside the overlay union");
_Static_assert(offsetof(struct hm_page, folio.gather_next) == offsetof(struct hm_page, lru.next),
	       "the gather list is threaded through lru.next");

/*
 * Typed views. Code outside the owners of a representation (folio.c and
 * folio_split.c for map counts, ptcache.c for table slots) reads a
 * descriptor through these rather than through the overlay's fields: what
 * a field means depends on the descriptor's type. Plain reads, as the
 * fields were read before: the caller's context (a folio lock, an
 * isolation, a quiescent state) makes them stable; the _relaxed ones are
 * for callers that may race with a split and read once.
 */
/* Of a folio, through its head. */
static inline unsigned folio_order(const struct hm_page *h) { return h->order; }
static inline unsigned folio_order_relaxed(const struct hm_page *h) { return hm_load_relaxed(&h->order); }
static inline uint32_t folio_nr_pages(const struct hm_page *h) { return 1u << h->order; }
static inline uint64_t folio_size(const struct hm_page *h) { return HM_PAGE_SIZE << h->order; }
/* Leaf entries, in all mms, that map any of it (see the equations above). */
static inline int32_t folio_mapcount(const struct hm_page *h) { return h->large_mapcount; }
static inline bool folio_mapped(const struct hm_page *h) { return h->large_mapcount > 0; }
/* Leaves that map it whole (a PMD leaf for order 9, a PUD leaf for 18). */
static inline int32_t folio_entire_mapcount(const struct hm_page *h) { return h->entire_mapcount; }
/* Its anon_vma family's id, and the virtual address of its first page
 * (hm_folio_set_rmap sets both). */
static inline uint32_t folio_anon_vma(const struct hm_page *h) { return h->folio.anon_vma; }
static inline uint64_t folio_index(const struct hm_page *h) { return h->folio.index; }
static inline uint64_t folio_va(const struct hm_page *h) { return h->folio.index << HM_PAGE_SHIFT; }
/* With PG_SWAPCACHE: the first of the swap slots it holds. */
static inline uint32_t folio_swap(const struct hm_page *h) { return h->swap; }
/*
 * Copy the state of @nr descriptors from @o to @n (a folio moving to new
 * frames), all but the buddy byte. That byte is the buddy allocator's: a
 * free reads it in its buddy's head under node->lock, frames it does not
 * own, so the owner of a frame must never store to it, not even the 0 it
 * holds in every allocated frame (a plain copy of the whole descriptor
 * was a data race with such a free: TSan, stress/migrate_threads).
 */
static inline void hm_page_copy_state(struct hm_page *n, const struct hm_page *o, uint32_t nr)
{
	const size_t at = offsetof(struct hm_page, buddy), after = at + sizeof(n->buddy);

	for (uint32_t i = 0; i < nr; i++) {
		memcpy(&n[i], &o[i], at);
		memcpy((char *)&n[i] + after, (const char *)&o[i] + after, sizeof(*n) - after);
	}
}

/* Of a page-table frame (PG_TABLE, PG_PT_PENDING, PG_PT_FREE): its ptdesc
 * (pgtable/ptdesc.h), NULL while the frame is none of those. */
static inline struct hm_ptdesc *page_ptdesc(const struct hm_page *pg) { return pg->pt.desc; }

#endif /* HM_PHYS_PAGE_H */
