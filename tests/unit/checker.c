/* SPDX-License-Identifier: MIT */
/*
 * hm_check must catch what it claims to: each case breaks one invariant by
 * hand, expects -EUCLEAN, repairs it and expects 0 again.
 */
#include "harness.h"
#include "../../src/mm/mm.h"

static struct hm_system *sys;
static struct hm_mm *mm;

static uint64_t setup(uint64_t len, int pmd)
{
	struct hm_config cfg;
	uint64_t a = 0, v = 1;

	hm_config_default(&cfg);
	cfg.phys_bytes = 64 * MiB;
	cfg.thp_pmd = pmd;
	if (hm_system_create(&cfg, &sys) || hm_mm_create(sys, &mm) ||
	    hm_mmap(mm, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, &a))
		exit(2);
	(void)v;
	return a;
}

static hm_pte_t *leaf(uint64_t va, unsigned *level)
{
	return hm_pt_walk(&sys->phys, mm->root, sys->top, va, level);
}

static void mapcount(void)
{
	uint64_t a = setup(8192, HM_THP_NEVER);
	unsigned level;
	struct hm_page *pg = hm_pfn_page(&sys->phys, pt_pfn(*leaf(a, &level), 0));

	CHECK_EQ(hm_check(sys), 0);
	pg->mapcount++;
	CHECK_EQ(hm_check(sys), -EUCLEAN);
	pg->mapcount--;
	CHECK_EQ(hm_check(sys), 0);
	hm_system_destroy(sys);
}

static void deposit_missing(void)
{
	uint64_t a = setup(2 * MiB, HM_THP_ALWAYS);
	unsigned level;
	hm_pte_t *e = leaf(a, &level);

	REQUIRE(level == 1);
	uint32_t pmd_table = hm_slot_table(&sys->phys, e);
	CHECK_EQ(hm_check(sys), 0);
	uint32_t t = hm_pt_withdraw(&sys->pc, pmd_table);
	CHECK(t != HM_PFN_NONE);
	CHECK_EQ(hm_check(sys), -EUCLEAN);	/* the leaf lost its deposit */
	hm_pt_deposit(&sys->pc, pmd_table, t);
	CHECK_EQ(hm_check(sys), 0);
	hm_system_destroy(sys);
}

static void leaked_folio_and_table(void)
{
	setup(4096, HM_THP_NEVER);
	CHECK_EQ(hm_check(sys), 0);
	uint32_t f = hm_folio_alloc(mm, 0, true);
	CHECK_EQ(hm_check(sys), -EUCLEAN);	/* mapped nowhere */
	hm_folio_free_unmapped(mm, f);
	uint32_t t = hm_mm_pt_alloc(mm, 0);
	CHECK_EQ(hm_check(sys), -EUCLEAN);	/* reachable from nowhere */
	hm_mm_pt_free_unused(mm, t);
	CHECK_EQ(hm_check(sys), 0);
	hm_system_destroy(sys);
}

static void stray_leaf(void)
{
	uint64_t a = setup(4096, HM_THP_NEVER);
	unsigned level;
	hm_pte_t *e = leaf(a, &level);
	CHECK_EQ(hm_check(sys), 0);
	hm_mprotect(mm, a, 4096, PROT_READ);
	hm_pte_t ro = pt_get(e);
	pt_set(e, ro | HM_PTE_RW);		/* writable leaf in a read-only VMA */
	CHECK_EQ(hm_check(sys), -EUCLEAN);
	pt_set(e, ro);
	CHECK_EQ(hm_check(sys), 0);
	hm_system_destroy(sys);
}

static void counters(void)
{
	setup(4096, HM_THP_NEVER);
	mm->nr_leaf[0]++;
	CHECK_EQ(hm_check(sys), -EUCLEAN);
	mm->nr_leaf[0]--;
	sys->phys.nr_free--;
	CHECK_EQ(hm_check(sys), -EUCLEAN);
	sys->phys.nr_free++;
	CHECK_EQ(hm_check(sys), 0);
	hm_system_destroy(sys);
}

/* The huge zero page: its leaves never writable, its own counts, no map
 * counts on the block, and zeros in it. */
static void huge_zero(void)
{
	struct hm_config cfg;
	uint64_t a = 0, v = 1;
	unsigned level;

	hm_config_default(&cfg);
	cfg.phys_bytes = 64 * MiB;
	if (hm_system_create(&cfg, &sys) || hm_mm_create(sys, &mm) ||
	    hm_mmap(mm, 0, 2 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, &a) ||
	    hm_read(mm, a, &v, 8))
		exit(2);
	hm_pte_t *e = leaf(a, &level);
	REQUIRE(level == 1 && hm_is_huge_zero(sys, pt_pfn(*e, 1)));
	uint32_t z = pt_pfn(*e, 1);
	struct hm_page *head = hm_pfn_page(&sys->phys, z);
	uint8_t *bytes = hm_pfn_ptr(&sys->phys, z);
	hm_pte_t ro = *e;

	CHECK_EQ(hm_check(sys), 0);
	pt_set(e, ro | HM_PTE_RW);		/* the VMA allows it; the zero page never */
	CHECK_EQ(hm_check(sys), -EUCLEAN);
	pt_set(e, ro);
	sys->nr_zero_leaf[1]++;
	CHECK_EQ(hm_check(sys), -EUCLEAN);
	sys->nr_zero_leaf[1]--;
	head->large_mapcount++;			/* its mappings are not counted */
	CHECK_EQ(hm_check(sys), -EUCLEAN);
	head->large_mapcount--;
	bytes[12345] = 1;
	CHECK_EQ(hm_check(sys), -EUCLEAN);
	bytes[12345] = 0;
	CHECK_EQ(hm_check(sys), 0);
	hm_system_destroy(sys);
}

/* Each table's ptdesc: its level, owner and frame; the frame's pointer to
 * it; the table block around it. */
static void ptdescs(void)
{
	uint64_t a = setup(4096, HM_THP_NEVER);
	unsigned level;
	uint32_t t = hm_slot_table(&sys->phys, leaf(a, &level));
	struct hm_ptcache *pc = &sys->pc;
	struct hm_page *pg = hm_pfn_page(&sys->phys, t);
	struct hm_ptdesc *d = hm_ptdesc(&sys->phys, t);
	uint32_t blk = t >> HM_PMD_ORDER;
	struct hm_ptblock *b = pc->blk_desc[blk];

	REQUIRE(level == 0 && b && d->block == b && pc->blocks == b);
	CHECK_EQ(hm_check(sys), 0);
	d->level = 1;
	CHECK_EQ(hm_check(sys), -EUCLEAN);	/* not the level it is linked at */
	d->level = 0;
	d->owner++;
	CHECK_EQ(hm_check(sys), -EUCLEAN);	/* another mm's */
	d->owner--;
	d->pfn ^= 1;
	CHECK_EQ(hm_check(sys), -EUCLEAN);	/* describes another frame */
	d->pfn ^= 1;
	pg->pt.desc = &b->desc[(t + 1) & (HM_PTRS - 1)];
	CHECK_EQ(hm_check(sys), -EUCLEAN);	/* the frame points to a neighbour's */
	pg->pt.desc = d;
	pc->blk_used[blk]++;
	CHECK_EQ(hm_check(sys), -EUCLEAN);	/* the block's count of tables */
	pc->blk_used[blk]--;
	b->base ^= HM_PTRS;
	CHECK_EQ(hm_check(sys), -EUCLEAN);	/* another block's ptdescs */
	b->base ^= HM_PTRS;
	pc->nr_blocks++;
	CHECK_EQ(hm_check(sys), -EUCLEAN);
	pc->nr_blocks--;
	pc->blocks = b->next;			/* the block off the list */
	CHECK_EQ(hm_check(sys), -EUCLEAN);
	pc->blocks = b;
	/* A free slot of the block that became something else. */
	uint32_t slot = (blk << HM_PMD_ORDER) + HM_PTRS - 1;
	struct hm_page *sp = hm_pfn_page(&sys->phys, slot);
	REQUIRE(sp->flags == (PG_PT_FREE | PG_PT_SLOT));
	sp->flags = PG_PT_PENDING;
	CHECK_EQ(hm_check(sys), -EUCLEAN);
	sp->flags = PG_PT_FREE | PG_PT_SLOT;
	CHECK_EQ(hm_check(sys), 0);
	hm_system_destroy(sys);
}

T_MAIN(T(mapcount), T(deposit_missing), T(leaked_folio_and_table), T(stray_leaf), T(counters),
       T(huge_zero), T(ptdescs))
