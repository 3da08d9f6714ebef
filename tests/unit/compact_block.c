/* SPDX-License-Identifier: MIT */
/*
 * Which blocks direct compaction empties (issue 9), white-box. A block
 * that one folio of the block's own order fills is no candidate: emptying
 * it needs a target of the very order that is missing (that is why we
 * compact), so migration would split one huge page into 512 pieces to make
 * another (the kernel's isolate_migratepages_block skips compound pages of
 * order >= cc->order). Every other 2 MiB block is pinned down by frames
 * held straight from the buddy allocator. Reverted (scan_block accepting
 * folios of the block's order), the first 2 MiB page is split.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "node_hold.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static uint64_t size_at(struct hm_mm *mm, uint64_t va)
{
	struct hm_mapping m;

	return hm_query(mm, va, &m) ? 0 : m.size;
}

static void same_order_block_not_emptied(void)
{
	t_flags = 0;	/* frames held by the test are nobody's: checked once back */
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 8 * MiB, RW, PA, &a) == 0);
	a = (a + 2 * MiB - 1) & ~(2 * MiB - 1);
	t_poke(mm, a, 0x1234);
	REQUIRE(size_at(mm, a) == 2 * MiB);

	uint32_t got, *all = node_hold(sys, 0, true, &got);
	REQUIRE(t_stat(sys, "node0/nr_free_pages") >= 1024);

	/* A second 2 MiB fault: no free 2 MiB block anywhere. */
	t_poke(mm, a + 2 * MiB, 0x5678);
	CHECK_EQ(t_stat(sys, "compact_stall"), 1);
	/* The first huge page must still be one. */
	CHECK_EQ(size_at(mm, a), 2 * MiB);
	CHECK_EQ(t_stat(sys, "thp_migration_split"), 0);
	CHECK_EQ(t_peek(mm, a), 0x1234);
	CHECK_EQ(t_peek(mm, a + 2 * MiB), 0x5678);

	node_release(sys, all, got);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

T_MAIN(T(same_order_block_not_emptied))
