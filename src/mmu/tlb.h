/* SPDX-License-Identifier: MIT */
/*
 * The software TLB: per thread, up to four address spaces at once (like
 * PCIDs), each with direct-mapped arrays for 4 KiB, 2 MiB and 1 GiB
 * translations.
 *
 * An entry is valid only while its gen equals the mm's tlb_gen: any change
 * that removes or narrows a present mapping bumps tlb_gen, which flushes
 * every thread's entries for that mm at once, and then waits for an RCU
 * grace period, which waits for every access already using an old entry.
 * An entry allows writes only once the leaf's dirty bit is set, so that the
 * first write through a translation filled by a read sets D, as a CPU does.
 */
#ifndef HM_MMU_TLB_H
#define HM_MMU_TLB_H

#include "../mm/mm.h"

#define TLB_4K 256u
#define TLB_2M 32u
#define TLB_1G 4u
#define TLB_CTXS 4u

/*
 * A read hits when tag matches, a write when wtag does: wtag is the tag
 * only while the leaf is writable and dirty (RW and D set), else 0, so a
 * write through an entry a read filled misses and its fill sets D. One
 * compare either way, and the hit path never branches on a flag.
 */
struct tlb_entry {
	uint64_t tag;		/* (va >> shift) + 1; 0 = empty */
	uint64_t wtag;		/* tag if RW and D are set in the leaf, else 0 */
	uint64_t gen;		/* mm->tlb_gen when filled */
	uint8_t *host;		/* host address of the page's first byte */
};

struct tlb_ctx {
	uint64_t mm_id;		/* 0 = unused */
	/* The level that hit or was filled last, probed first, as a run of
	 * accesses mostly stays on one page size; its array and index mask
	 * beside it, so that the probe needs no branch on the level. */
	unsigned last;
	struct tlb_entry *last_e;
	uint64_t last_mask;
	struct tlb_entry e4k[TLB_4K], e2m[TLB_2M], e1g[TLB_1G];
};

struct tlb {
	struct tlb_ctx *ctx[TLB_CTXS];	/* most recently used first */
	struct tlb_ctx store[TLB_CTXS];
};

/* This thread's context for @mm, or NULL if its TLB cannot be allocated. */
struct tlb_ctx *hm_tlb_ctx(struct hm_mm *mm);

static inline struct tlb_entry *tlb_slot(struct tlb_ctx *c, unsigned level, uint64_t va)
{
	uint64_t vpn = va >> hm_level_shift(level);

	switch (level) {
	case 0:  return &c->e4k[vpn % TLB_4K];
	case 1:  return &c->e2m[vpn % TLB_2M];
	default: return &c->e1g[vpn % TLB_1G];
	}
}

static inline void tlb_set_last(struct tlb_ctx *c, unsigned level)
{
	static const uint64_t mask[3] = { TLB_4K - 1, TLB_2M - 1, TLB_1G - 1 };

	c->last = level;
	c->last_e = tlb_slot(c, level, 0);
	c->last_mask = mask[level];
}

/* The host address of @va if the entry of the level that hit last
 * translates it for this access, else NULL: the TLB hit. */
static inline __attribute__((always_inline)) uint8_t *tlb_probe_last(const struct tlb_ctx *c,
								      uint64_t va, uint64_t gen, bool write)
{
	unsigned shift = hm_level_shift(c->last);
	uint64_t vpn = va >> shift;
	const struct tlb_entry *e = &c->last_e[vpn & c->last_mask];

	if (hm_unlikely((write ? e->wtag : e->tag) != vpn + 1 || e->gen != gen))
		return NULL;
	return e->host + (va & ((1ull << shift) - 1));
}

/* The host address of @va if @level's entry translates it for this access. */
static inline __attribute__((always_inline)) uint8_t *tlb_probe(struct tlb_ctx *c, unsigned level, uint64_t va, uint64_t gen,
				 bool write)
{
	const struct tlb_entry *e = tlb_slot(c, level, va);
	uint64_t tag = (va >> hm_level_shift(level)) + 1;

	if ((write ? e->wtag : e->tag) != tag || e->gen != gen)
		return NULL;
	return e->host + (va & (hm_level_size(level) - 1));
}

/*
 * A host pointer for @va, with *avail bytes to the end of its page, or
 * NULL on a miss. The level that hit last is probed first (measured: a hit
 * on a 2 MiB page went from three probes' worth of compares to one).
 */
static inline __attribute__((always_inline)) uint8_t *tlb_lookup(struct tlb_ctx *c, uint64_t va, uint64_t gen, bool write,
				  uint64_t *avail)
{
	unsigned first = c->last;
	uint8_t *p = tlb_probe_last(c, va, gen, write);

	if (hm_likely(p)) {
		*avail = hm_level_size(first) - (va & (hm_level_size(first) - 1));
		return p;
	}
	for (unsigned level = 0; level < 3; level++) {
		if (level == first || !(p = tlb_probe(c, level, va, gen, write)))
			continue;
		tlb_set_last(c, level);
		*avail = hm_level_size(level) - (va & (hm_level_size(level) - 1));
		return p;
	}
	return NULL;
}

#endif /* HM_MMU_TLB_H */
