/* SPDX-License-Identifier: MIT */
/*
 * Migration's split fallback (issue 9), white-box: the target node is
 * fragmented through the buddy allocator so that it has no free block of
 * the folio's order but room enough in smaller ones. A 1 GiB page then
 * moves as 512 2 MiB pages, a 2 MiB page as 512 4 KiB pages, both counted
 * in thp_migration_split, with their data.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "node_hold.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static struct hm_system *sys_nodes(uint64_t phys, int pud, int pmd, int deposit)
{
	t_flags = 0;	/* (each test checks where it can: see there) */
	return t_system_nodes(phys, 2, pud, pmd, deposit);
}

static uint64_t size_at(struct hm_mm *mm, uint64_t va)
{
	struct hm_mapping m;

	return hm_query(mm, va, &m) ? 0 : m.size;
}

/* Free blocks of @order that node @node could hand out. */
static uint64_t blocks(struct hm_system *sys, unsigned node, unsigned order)
{
	struct hm_node *n = &sys->phys.nodes[node];
	uint64_t b = 0;

	hm_mutex_lock(&n->lock);
	for (unsigned o = order; o <= HM_MAX_ORDER; o++)
		b += n->nr_blocks[o] << (o - order);
	hm_mutex_unlock(&n->lock);
	return b;
}

/* Node 1 keeps no 1 GiB block but 1 GiB in 512 MiB ones. */
static void pud_split_fallback(int deposit)
{
	struct hm_system *sys = sys_nodes(4 * GiB, HM_THP_ALWAYS, HM_THP_ALWAYS, deposit);
	struct hm_phys *ph = &sys->phys;
	struct hm_mm *mm;
	uint32_t held[8];
	unsigned nheld = 0;
	uint64_t a;

	while (blocks(sys, 1, 18) && nheld < 8)
		held[nheld++] = hm_alloc_pages(ph, 1, 17, HM_ALLOC_THISNODE);
	REQUIRE(nheld >= 2 && held[0] != HM_PFN_NONE);
	hm_free_pages(ph, held[0], 17);
	REQUIRE(blocks(sys, 1, 18) == 0);
	REQUIRE(blocks(sys, 1, 9) >= 512);

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, GiB, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, GiB, 11), 0);
	struct hm_mapping m;
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.size, GiB);
	/* (hm_check would find the frames held here owned by nobody: it
	 * runs once they are back) */
	CHECK_EQ(hm_migrate(mm, a, GiB, 1), 0);
	CHECK_EQ(t_stat(sys, "thp_migration_split"), 1);
	CHECK_EQ(t_stat(sys, "thp_migration_success"), 512);
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), 512 * 512);
	for (uint64_t off = 0; off < GiB; off += 2 * MiB) {
		CHECK_EQ(hm_query(mm, a + off, &m), 0);
		CHECK_EQ(m.size, 2 * MiB);
		CHECK_EQ(m.node, 1);
	}
	CHECK_EQ(t_pages_wrong(mm, a, GiB, 11, 0, 0), 0);
	for (unsigned i = 1; i < nheld; i++)
		hm_free_pages(ph, held[i], 17);
	STEP(sys);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

static void pud_split_fallback_eager(void)
{
	pud_split_fallback(HM_DEPOSIT_EAGER);
}

static void pud_split_fallback_lazy(void)
{
	pud_split_fallback(HM_DEPOSIT_LAZY);
}

/* Node 1 keeps only single frames, every other one: a 2 MiB page moves as
 * 512 4 KiB pages. */
static void pmd_split_fallback(void)
{
	struct hm_system *sys = sys_nodes(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	uint32_t got, *all = node_hold(sys, 1, true, &got);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(blocks(sys, 1, 1) == 0);
	REQUIRE(blocks(sys, 1, 0) >= 600);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, 2 * MiB, 12), 0);
	CHECK_EQ(hm_migrate(mm, a, 2 * MiB, 1), 0);
	CHECK_EQ(t_stat(sys, "thp_migration_split"), 1);
	CHECK_EQ(t_stat(sys, "thp_migration_success"), 0);
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), 512);
	for (uint64_t off = 0; off < 2 * MiB; off += 4096) {
		struct hm_mapping m;

		CHECK_EQ(hm_query(mm, a + off, &m), 0);
		CHECK_EQ(m.size, 4096);
		CHECK_EQ(m.node, 1);
	}
	CHECK_EQ(t_pages_wrong(mm, a, 2 * MiB, 12, 0, 0), 0);
	node_release(sys, all, got);
	STEP(sys);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

/* hm_migrate_folios (compaction's entry) takes any frames: folio heads on
 * the lists move, tails, free frames, tables and the rest are passed by. */
static void migrate_folios_by_pfn(void)
{
	struct hm_system *sys = sys_nodes(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	struct hm_mapping m;
	uint64_t a, b;
	uint32_t pfns[8];
	unsigned n = 0, moved = 99;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a) == 0);
	REQUIRE(hm_mmap(mm, 0, 3 * 4096, RW, PA | MAP_POPULATE, &b) == 0);
	CHECK_EQ(t_fill(mm, a, 2 * MiB, 21), 0);
	CHECK_EQ(t_fill(mm, b, 3 * 4096, 22), 0);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	pfns[n++] = (uint32_t)(m.pa >> 12);		/* a 2 MiB head */
	pfns[n++] = (uint32_t)(m.pa >> 12) + 7;		/* one of its tails */
	CHECK_EQ(hm_query(mm, b + 4096, &m), 0);
	pfns[n++] = (uint32_t)(m.pa >> 12);		/* a 4 KiB page */
	pfns[n] = pfns[n - 1];			/* twice */
	n++;
	pfns[n++] = mm->root;				/* a table */
	pfns[n++] = sys->phys.nr_frames - 1;		/* free */
	pfns[n++] = sys->phys.nr_frames + 5;		/* none at all */
	const struct hm_migrate_ctl ctl = { .node = 1, .reason = HM_MR_COMPACTION };
	CHECK_EQ(hm_migrate_folios(sys, pfns, n, &ctl, &moved), 0);
	CHECK_EQ(moved, 2);
	STEP(sys);
	CHECK_EQ(hm_query(mm, a + MiB, &m), 0);
	CHECK_EQ(m.node, 1);
	CHECK_EQ(m.size, 2 * MiB);
	CHECK_EQ(hm_query(mm, b + 4096, &m), 0);
	CHECK_EQ(m.node, 1);
	CHECK_EQ(hm_query(mm, b, &m), 0);
	CHECK_EQ(m.node, 0);
	CHECK_EQ(t_pages_wrong(mm, a, 2 * MiB, 21, 0, 0), 0);
	CHECK_EQ(t_pages_wrong(mm, b, 3 * 4096, 22, 0, 0), 0);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

/* hm_check never meets a migration entry (it write-locks every mm, which
 * migration holds for reading while its entries exist); one planted by
 * hand is reported. */
static void check_reports_migration_entry(void)
{
	struct hm_system *sys = sys_nodes(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a;
	unsigned level;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a) == 0);
	t_poke(mm, a, 1);
	STEP(sys);
	hm_pte_t *slot = hm_pt_walk(&sys->phys, mm->root, sys->top, a, &level);
	hm_pte_t leaf = pt_get(slot);
	REQUIRE(level == 1 && pt_present(leaf));
	pt_set(slot, pt_mk_migration(leaf, level));
	CHECK(hm_check(sys) != 0);
	pt_set(slot, leaf);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * Once a batch has met -ENOMEM (no target for a 4 KiB page: node 1 is held
 * full), the folios after it are given back whole: a 2 MiB page after it
 * is not split for a migration already known to have failed. Reverted
 * (migrate_work's inner loop testing the function's nomem, updated only
 * after the batch), the 2 MiB page is split into 512 pieces given back.
 */
static void nomem_then_split(void)
{
	struct hm_system *sys = sys_nodes(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 8 * MiB, RW, PA, &a) == 0);
	a = (a + 2 * MiB - 1) & ~(2 * MiB - 1);
	/* a 4 KiB page first (below), then a 2 MiB page */
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_NOHUGEPAGE), 0);
	t_poke(mm, a, 0x1111);
	t_poke(mm, a + 2 * MiB, 0x2222);
	REQUIRE(size_at(mm, a) == 4096);
	REQUIRE(size_at(mm, a + 2 * MiB) == 2 * MiB);

	uint32_t got, *all = node_hold(sys, 1, false, &got);

	CHECK_EQ(hm_migrate(mm, a, 4 * MiB, 1), -ENOMEM);
	/* Nothing could move: the 2 MiB page should still be one. */
	CHECK_EQ(size_at(mm, a + 2 * MiB), 2 * MiB);
	CHECK_EQ(t_stat(sys, "thp_migration_split"), 0);
	CHECK_EQ(t_peek(mm, a), 0x1111);
	CHECK_EQ(t_peek(mm, a + 2 * MiB), 0x2222);

	node_release(sys, all, got);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}


/*
 * A 2 MiB page with no 2 MiB target is split; one of its pieces is pinned
 * (white-box: its pin stripe, as a copy-on-write in flight holds it) and
 * cannot be isolated: it stays, counted in pgmigrate_fail, and the others
 * move. Reverted (pieces that could not be isolated dropped silently, and
 * `left` computed from pieces moved against the caller's folio count), no
 * failure is counted.
 */
static void pinned_piece_fails(void)
{
	struct hm_system *sys = sys_nodes(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_phys *ph = &sys->phys;
	uint32_t got, *all;
	struct hm_mapping m;
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	a = (a + 2 * MiB - 1) & ~(2 * MiB - 1);
	CHECK_EQ(t_fill(mm, a, 2 * MiB, 7), 0);
	REQUIRE(hm_query(mm, a, &m) == 0 && m.size == 2 * MiB);
	uint32_t head = (uint32_t)(m.pa >> 12), k = 1;

	/* a piece whose stripe is not the head's (nor the folio's) */
	while (hm_pin_slot(ph, head + k) == hm_pin_slot(ph, head))
		k++;
	int32_t *pin = hm_pin_slot(ph, head + k);
	uint32_t shared = 0;	/* pieces on that stripe too */
	for (uint32_t i = 0; i < 512; i++)
		shared += hm_pin_slot(ph, head + i) == pin;
	all = node_hold(sys, 1, true, &got);
	REQUIRE(blocks(sys, 1, 1) == 0);
	__atomic_fetch_add(pin, 1, __ATOMIC_SEQ_CST);
	CHECK_EQ(hm_migrate(mm, a, 2 * MiB, 1), 0);
	__atomic_fetch_sub(pin, 1, __ATOMIC_SEQ_CST);
	CHECK_EQ(t_stat(sys, "thp_migration_split"), 1);
	CHECK_EQ(t_stat(sys, "pgmigrate_fail"), shared);
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), 512 - shared);
	CHECK_EQ(hm_query(mm, a + k * 4096ull, &m), 0);
	CHECK_EQ(m.node, 0);
	CHECK_EQ(t_pages_wrong(mm, a, 2 * MiB, 7, 0, 0), 0);
	/* unpinned, it moves */
	CHECK_EQ(hm_migrate(mm, a, 2 * MiB, 1), 0);
	CHECK_EQ(hm_query(mm, a + k * 4096ull, &m), 0);
	CHECK_EQ(m.node, 1);
	node_release(sys, all, got);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

T_MAIN(T(pud_split_fallback_eager), T(pud_split_fallback_lazy), T(pmd_split_fallback),
       T(migrate_folios_by_pfn), T(check_reports_migration_entry), T(nomem_then_split),
       T(pinned_piece_fails))
