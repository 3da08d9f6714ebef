/* SPDX-License-Identifier: MIT */
/*
 * Review reproducer (issue 9): once a batch of migration has met -ENOMEM
 * (a target that cannot be had), the folios after it are to be given back
 * whole (migrate_work: "After a failure, the rest is given back"). The
 * inner loop tests the function's nomem, which is only updated after the
 * batch, not the batch's: so a 2 MiB page after a failed 4 KiB one is
 * still taken, finds no 2 MiB target, and is split into 4 KiB pages that
 * are then all given back: the huge page is destroyed for a migration
 * already known to have failed. White-box: node 1 is held full through the
 * buddy allocator.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "../../src/mm/mm.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static uint64_t size_at(struct hm_mm *mm, uint64_t va)
{
	struct hm_mapping m;

	return hm_query(mm, va, &m) ? 0 : m.size;
}

static void nomem_then_split(void)
{
	t_flags = 0;	/* frames held by the test are nobody's: checked once back */
	struct hm_system *sys = t_system_nodes(64 * MiB, 2, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_phys *ph = &sys->phys;
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

	struct hm_node *n = &ph->nodes[1];
	uint32_t nr = n->end_pfn - n->start_pfn, got = 0;
	uint32_t *all = calloc(nr, sizeof(*all));
	REQUIRE(all);
	while (got < nr && (all[got] = hm_alloc_pages(ph, 1, 0, HM_ALLOC_THISNODE)) != HM_PFN_NONE)
		got++;

	CHECK_EQ(hm_migrate(mm, a, 4 * MiB, 1), -ENOMEM);
	/* Nothing could move: the 2 MiB page should still be one. */
	CHECK_EQ(size_at(mm, a + 2 * MiB), 2 * MiB);
	CHECK_EQ(t_stat(sys, "thp_migration_split"), 0);
	CHECK_EQ(t_peek(mm, a), 0x1111);
	CHECK_EQ(t_peek(mm, a + 2 * MiB), 0x2222);

	for (uint32_t i = 0; i < got; i++)
		hm_free_pages(ph, all[i], 0);
	free(all);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

T_MAIN(T(nomem_then_split))
