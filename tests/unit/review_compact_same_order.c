/* SPDX-License-Identifier: MIT */
/*
 * Review reproducer (issue 9): direct compaction for a 2 MiB fault must not
 * pick a block that a 2 MiB folio fills whole. Such a block is no better
 * than the one the fault wants: emptying it needs a 2 MiB target, which
 * does not exist (that is why we compact), so migration splits the folio
 * into 512 4 KiB pages to make room: one huge page is destroyed to make
 * another (the kernel's isolate_migratepages_block skips compound pages of
 * order >= cc->order). White-box: every other 2 MiB block is pinned down by
 * frames held straight from the buddy allocator.
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

static void compaction_splits_same_order(void)
{
	t_flags = 0;	/* frames held by the test are nobody's: checked once back */
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_phys *ph = &sys->phys;
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 8 * MiB, RW, PA, &a) == 0);
	a = (a + 2 * MiB - 1) & ~(2 * MiB - 1);
	t_poke(mm, a, 0x1234);
	REQUIRE(size_at(mm, a) == 2 * MiB);

	uint32_t nr = ph->nr_frames, got = 0;
	uint32_t *all = calloc(nr, sizeof(*all));
	REQUIRE(all);
	while (got < nr && (all[got] = hm_alloc_pages(ph, 0, 0, 0)) != HM_PFN_NONE)
		got++;
	uint32_t freed = 0;
	for (uint32_t i = 0; i < got; i++) {
		if (all[i] % 2 == 0 && all[i] / 2 % 2 == 0) {	/* 1 in 4, never buddies */
			hm_free_pages(ph, all[i], 0);
			all[i] = HM_PFN_NONE;
			freed++;
		}
	}
	REQUIRE(freed >= 1024);

	/* A second 2 MiB fault: no free 2 MiB block anywhere. */
	t_poke(mm, a + 2 * MiB, 0x5678);
	CHECK_EQ(t_stat(sys, "compact_stall"), 1);
	/* The first huge page must still be one. */
	CHECK_EQ(size_at(mm, a), 2 * MiB);
	CHECK_EQ(t_stat(sys, "thp_migration_split"), 0);
	CHECK_EQ(t_peek(mm, a), 0x1234);
	CHECK_EQ(t_peek(mm, a + 2 * MiB), 0x5678);

	for (uint32_t i = 0; i < got; i++)
		if (all[i] != HM_PFN_NONE)
			hm_free_pages(ph, all[i], 0);
	free(all);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

T_MAIN(T(compaction_splits_same_order))
