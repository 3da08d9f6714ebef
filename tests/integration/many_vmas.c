/* SPDX-License-Identifier: MIT */
/*
 * Fork of an address space made of 40,000 one-page VMAs (issue 7, item 4).
 * Fork reserves the child's page tables before it copies; that reservation
 * must count each table once, not once per VMA that reaches it, or it asks
 * for three tables per VMA (120,000 frames) where about a hundred are
 * needed, and fails with -ENOMEM while most of memory is free.
 *
 * The range straddles a 512 GiB boundary, so tables at every level are
 * shared by many VMAs and the range needs two of each upper level.
 * Public API only.
 */
#include "harness.h"

#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define NVMAS 40000ull
#define BASE ((512ull << 30) - 64 * MiB)

/* The tables one mm needs for [start, end) of 4 KiB pages: the root, and
 * one table per distinct 512 GiB, 1 GiB and 2 MiB region. */
static uint64_t tables_for(uint64_t start, uint64_t end)
{
	uint64_t n = 1;

	for (unsigned shift = 21; shift <= 39; shift += 9)
		n += ((end - 1) >> shift) - (start >> shift) + 1;
	return n;
}

static void fork_many_vmas(void)
{
	const uint64_t len = NVMAS * 4096;
	unsigned long failed = 0;
	struct hm_system *sys;
	struct hm_mm *mm, *child = NULL;
	uint64_t a;

	/* 352 MiB: the pages take 40,000 frames, about 50,000 stay free. */
	t_flags = 0;		/* hm_check runs at each STEP, not after each of 120,000 calls */
	sys = t_system(352 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	uint64_t free0 = t_stat(sys, "nr_free_pages");
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	/* Two protections, both writable, so that neighbours never merge. */
	for (uint64_t i = 0; i < NVMAS; i++) {
		int prot = PROT_READ | PROT_WRITE | (i & 1 ? PROT_EXEC : 0);

		failed += hm_mmap(mm, BASE + i * 4096, 4096, prot, PA | MAP_FIXED_NOREPLACE, &a) != 0 ||
			  a != BASE + i * 4096;
	}
	REQUIRE(failed == 0);
	REQUIRE(t_fill(mm, BASE, len, 7) == 0);
	STEP(sys);

	uint64_t tables = tables_for(BASE, BASE + len);
	uint64_t pt_parent = t_stat(sys, "pgtable_bytes");
	uint64_t free_before = t_free_frames(sys);
	CHECK_EQ(tables, 1 + 2 + 2 + 79);
	CHECK_EQ(pt_parent, tables * 4096);
	CHECK(3 * NVMAS > free_before);		/* what a per-VMA count would ask for */
	CHECK(free_before > 45000);

	REQUIRE(hm_fork(mm, &child) == 0);
	STEP(sys);
	/* The child has the parent's tables, no more: the reservation that
	 * was not needed went back. */
	CHECK_EQ(t_stat(sys, "pgtable_bytes"), 2 * pt_parent);
	CHECK_EQ(t_free_frames(sys), free_before - tables);
	CHECK_EQ(t_pages_wrong(child, BASE, len, 7, 0, 0), 0);
	CHECK_EQ(t_pages_wrong(mm, BASE, len, 7, 0, 0), 0);

	/* Copy-on-write in the child, every 97th page: the parent keeps its data. */
	for (uint64_t i = 0; i < NVMAS; i += 97) {
		uint64_t v = ~t_pattern(7, i), w = 0;

		failed += hm_write(child, BASE + i * 4096, &v, 8) != 0;
		failed += hm_read(child, BASE + i * 4096, &w, 8) != 0 || w != v;
	}
	CHECK_EQ(failed, 0);
	CHECK_EQ(t_pages_wrong(mm, BASE, len, 7, 0, 0), 0);
	STEP(sys);

	/* Nothing leaked: destroying the child gives back every frame the
	 * fork and the copies took. */
	hm_mm_destroy(child);
	STEP(sys);
	CHECK_EQ(t_free_frames(sys), free_before);
	CHECK_EQ(t_stat(sys, "pgtable_bytes"), pt_parent);
	CHECK_EQ(t_pages_wrong(mm, BASE, len, 7, 0, 0), 0);
	hm_mm_destroy(mm);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), free0);
	hm_system_destroy(sys);
	t_flags = HM_CHECK;
}

T_MAIN(T(fork_many_vmas))
