/* SPDX-License-Identifier: MIT */
/*
 * The page-table descriptor (ptdesc) apart from the frame's: where it comes
 * from (a block's array, or one of its own), what it says (level, owner,
 * the frame it describes), deposits through it, its lock, and the RCU free
 * path through its own rcu_head, which may free the ptdesc itself.
 */
#include "harness.h"
#include "../../src/mm/mm.h"

static void init(struct hm_phys *ph, struct hm_ptcache *pc, uint64_t bytes)
{
	REQUIRE(hm_phys_init(ph, bytes, 1, false) == 0);
	REQUIRE(hm_ptcache_init(pc, ph, false) == 0);
}

static void fini(struct hm_phys *ph, struct hm_ptcache *pc)
{
	hm_ptcache_fini(pc);
	CHECK_EQ(pc->nr_blocks, 0);
	CHECK_EQ(hm_phys_nr_free(ph), ph->nr_frames);
	hm_phys_fini(ph);
}

/* Tables of a block share its array; each ptdesc names its frame, level
 * and owner, and the frame descriptor names it. The array goes when the
 * block does. */
static void alloc_free(void)
{
	struct hm_phys ph;
	struct hm_ptcache pc;
	uint32_t t[600];
	unsigned bad = 0;

	init(&ph, &pc, 64 * MiB);
	for (unsigned i = 0; i < 600; i++)
		REQUIRE((t[i] = hm_pt_alloc(&pc, i % 4, 100 + i)) != HM_PFN_NONE);
	CHECK_EQ(pc.nr_blocks, 2);
	for (unsigned i = 0; i < 600; i++) {
		struct hm_ptdesc *d = hm_ptdesc(&ph, t[i]);
		struct hm_ptblock *b = pc.blk_desc[t[i] >> HM_PMD_ORDER];

		bad += d->pfn != t[i] || hm_pt_level(&ph, t[i]) != i % 4 || hm_pt_owner(&ph, t[i]) != 100 + i;
		bad += !b || d->block != b || d != &b->desc[t[i] & (HM_PTRS - 1)] ||
		       b->base != (t[i] & ~(HM_PTRS - 1)) || d->pc != &pc;
		bad += hm_pt_lock(&ph, t[i]) != &d->ptl || d->nr_deposited || d->deposit_head != HM_PFN_NONE;
		bad += ((uintptr_t)d & 63) != 0;
	}
	CHECK_EQ(bad, 0);
	/* Distinct cache lines: two tables' split locks never share one. */
	CHECK((char *)hm_ptdesc(&ph, t[1]) - (char *)hm_ptdesc(&ph, t[0]) >= 64 ||
	      (char *)hm_ptdesc(&ph, t[0]) - (char *)hm_ptdesc(&ph, t[1]) >= 64);
	/* A freed slot keeps its ptdesc; a slot taken again gets it reset. */
	struct hm_ptdesc *d0 = hm_ptdesc(&ph, t[0]);
	hm_pt_free(&pc, t[0]);
	CHECK(hm_pfn_page(&ph, t[0])->flags & PG_PT_FREE);
	CHECK(hm_pfn_page(&ph, t[0])->pt.desc == d0);
	uint32_t again = hm_pt_alloc(&pc, 1, 7);
	CHECK_EQ(again, t[0]);
	CHECK(hm_ptdesc(&ph, again) == d0 && d0->level == 1 && d0->owner == 7);
	t[0] = again;
	for (unsigned i = 0; i < 600; i++)
		hm_pt_free(&pc, t[i]);
	/* One empty block is kept, with its ptdescs; the other went with them. */
	CHECK_EQ(pc.nr_blocks, 1);
	CHECK_EQ(hm_ptcache_shrink(&pc), 512);
	CHECK_EQ(pc.nr_blocks, 0);
	CHECK(pc.blk_desc[t[0] >> HM_PMD_ORDER] == NULL);
	CHECK(hm_pfn_page(&ph, t[0])->pt.desc == NULL);
	fini(&ph, &pc);
}

/* A table outside blocks has a ptdesc of its own, freed with it. */
static void single(void)
{
	struct hm_phys ph;
	struct hm_ptcache pc;

	init(&ph, &pc, 4 * MiB);
	uint32_t a = hm_alloc_pages(&ph, 0, 0, 0), b = hm_alloc_pages(&ph, 0, 9, 0);
	REQUIRE(a != HM_PFN_NONE && b != HM_PFN_NONE);
	uint32_t t = hm_pt_alloc(&pc, 2, 5);
	REQUIRE(t != HM_PFN_NONE);
	struct hm_ptdesc *d = hm_ptdesc(&ph, t);
	CHECK(d->block == NULL && d->pfn == t && d->level == 2 && d->owner == 5 && d->pc == &pc);
	CHECK_EQ(pc.nr_blocks, 0);
	hm_pt_free(&pc, t);	/* ASan: the ptdesc is freed, not leaked */
	CHECK(hm_pfn_page(&ph, t)->pt.desc == NULL);
	hm_free_pages(&ph, a, 0);
	hm_free_pages(&ph, b, 9);
	fini(&ph, &pc);
}

/* No memory for a block's ptdescs: the block goes back and a single frame
 * with a ptdesc of its own is used; no memory for that either: no table,
 * nothing kept. */
static void out_of_memory(void)
{
	struct hm_phys ph;
	struct hm_ptcache pc;

	init(&ph, &pc, 64 * MiB);
	uint64_t free0 = hm_phys_nr_free(&ph);
	/* Hits: pt_alloc, the block's frames, the block's ptdescs. */
	hm_fail_arm(&ph.fail, 3, false);
	uint32_t t = hm_pt_alloc(&pc, 0, 1);
	CHECK_EQ(ph.fail.hits, 1);
	REQUIRE(t != HM_PFN_NONE);
	CHECK_EQ(pc.nr_blocks, 0);
	CHECK_EQ(pc.nr_single, 1);
	CHECK(hm_ptdesc(&ph, t)->block == NULL);
	CHECK_EQ(hm_phys_nr_free(&ph), free0 - 1);
	hm_pt_free(&pc, t);
	/* Persistent from the block's ptdescs on: the single frame fails. */
	hm_fail_arm(&ph.fail, 3, true);
	CHECK_EQ(hm_pt_alloc(&pc, 0, 1), HM_PFN_NONE);
	CHECK_EQ(ph.fail.hits, 2);
	hm_fail_arm(&ph.fail, 0, false);
	CHECK_EQ(pc.nr_blocks, 0);
	/* No 2 MiB block free: hits are pt_alloc, the block (none free), the
	 * single frame, its ptdesc, which fails. */
	uint32_t hold = hm_alloc_pages(&ph, 0, 0, 0), big[64];
	unsigned nb = 0;
	REQUIRE(hold != HM_PFN_NONE);
	while (nb < 64 && (big[nb] = hm_alloc_pages(&ph, 0, HM_PMD_ORDER, 0)) != HM_PFN_NONE)
		nb++;
	uint64_t free1 = hm_phys_nr_free(&ph);
	hm_fail_arm(&ph.fail, 4, false);
	CHECK_EQ(hm_pt_alloc(&pc, 0, 1), HM_PFN_NONE);
	CHECK_EQ(ph.fail.hits, 1);
	CHECK_EQ(hm_phys_nr_free(&ph), free1);	/* the frame went back */
	CHECK_EQ(pc.nr_single, 0);
	CHECK_EQ(pc.nr_tables, 0);
	while (nb)
		hm_free_pages(&ph, big[--nb], HM_PMD_ORDER);
	hm_free_pages(&ph, hold, 0);
	CHECK_EQ(hm_phys_nr_free(&ph), free0);
	fini(&ph, &pc);
}

/* Deposits are linked through the ptdescs; a withdrawn table is given the
 * level and owner it is linked with next (hm_pt_set). */
static void deposit_withdraw(void)
{
	struct hm_phys ph;
	struct hm_ptcache pc;

	init(&ph, &pc, 64 * MiB);
	uint32_t pmd = hm_pt_alloc(&pc, 1, 3), a = hm_pt_alloc(&pc, 0, 3), b = hm_pt_alloc(&pc, 0, 3);
	hm_pt_deposit(&pc, pmd, a);
	hm_pt_deposit(&pc, pmd, b);
	struct hm_ptdesc *h = hm_ptdesc(&ph, pmd);
	CHECK(h->deposit_head == b && h->nr_deposited == 2);
	CHECK(hm_ptdesc(&ph, b)->deposit_next == a && hm_ptdesc(&ph, a)->deposit_next == HM_PFN_NONE);
	/* The frame descriptors are untouched by the links. */
	CHECK(hm_pfn_page(&ph, pmd)->flags == (PG_TABLE | PG_PT_SLOT));
	CHECK_EQ(hm_pt_withdraw(&pc, pmd), b);
	CHECK(hm_ptdesc(&ph, b)->deposit_next == HM_PFN_NONE && h->nr_deposited == 1 && h->deposit_head == a);
	hm_pt_set(&ph, b, 0, 4);
	CHECK(hm_pt_level(&ph, b) == 0 && hm_pt_owner(&ph, b) == 4);
	CHECK_EQ(hm_pt_withdraw(&pc, pmd), a);
	CHECK_EQ(hm_pt_withdraw(&pc, pmd), HM_PFN_NONE);
	CHECK_EQ(pc.nr_deposited, 0);
	hm_pt_free(&pc, a);
	hm_pt_free(&pc, b);
	hm_pt_free(&pc, pmd);
	fini(&ph, &pc);
}

/* Per-table RCU frees, when no batch can be had: the callback reaches the
 * cache and the frame from the ptdesc alone, and freeing may free the
 * ptdesc under it (a single table's own one; a block's array when the
 * block was the second empty one). ASan sees any use after that. */
static void rcu_free(void)
{
	struct hm_phys ph;
	struct hm_ptcache pc;
	struct hm_gather g;
	uint64_t gen = 0;
	uint32_t t[HM_PTRS + 1];

	init(&ph, &pc, 64 * MiB);
	for (unsigned i = 0; i <= HM_PTRS; i++)
		REQUIRE((t[i] = hm_pt_alloc(&pc, 0, 1)) != HM_PFN_NONE);
	CHECK_EQ(pc.nr_blocks, 2);
	for (unsigned i = 0; i < HM_PTRS; i++)
		hm_pt_free(&pc, t[i]);	/* the first block empty: the spare */
	hm_fail_arm(&ph.fail, 1, false);	/* no batch */
	hm_gather_init(&g, &pc, &gen);
	CHECK(g.b == &g.local);
	hm_gather_table(&g, t[HM_PTRS]);
	hm_gather_finish(&g);
	hm_rcu_barrier();
	CHECK_EQ(pc.nr_pending, 0);
	CHECK_EQ(pc.nr_blocks, 1);	/* the second block went, array and all */
	CHECK(pc.blk_desc[t[HM_PTRS] >> HM_PMD_ORDER] == NULL);

	/* A single table the same way. */
	hm_ptcache_shrink(&pc);
	uint32_t hold = hm_alloc_pages(&ph, 0, 0, 0), big[64];
	unsigned nb = 0;
	REQUIRE(hold != HM_PFN_NONE);
	while (nb < 64 && (big[nb] = hm_alloc_pages(&ph, 0, HM_PMD_ORDER, 0)) != HM_PFN_NONE)
		nb++;
	uint32_t s = hm_pt_alloc(&pc, 1, 1);
	REQUIRE(s != HM_PFN_NONE);
	CHECK(hm_ptdesc(&ph, s)->block == NULL);
	hm_fail_arm(&ph.fail, 1, false);
	hm_gather_init(&g, &pc, &gen);
	hm_gather_table(&g, s);
	hm_gather_finish(&g);
	hm_rcu_barrier();
	CHECK_EQ(pc.nr_single, 0);
	CHECK_EQ(pc.nr_pending, 0);
	CHECK(hm_pfn_page(&ph, s)->pt.desc == NULL);
	while (nb)
		hm_free_pages(&ph, big[--nb], HM_PMD_ORDER);
	hm_free_pages(&ph, hold, 0);
	CHECK_EQ(gen, 2);
	fini(&ph, &pc);
}

T_MAIN(T(alloc_free), T(single), T(out_of_memory), T(deposit_withdraw), T(rcu_free))
