/* SPDX-License-Identifier: MIT */
/*
 * Running out of memory is an ordinary result: keep mapping and touching
 * until memory runs out; faults fall back to smaller pages and then return
 * -ENOMEM; nothing crashes, data written before stays, and unmapping frees
 * everything.
 */
#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static void run(int deposit)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_ALWAYS, HM_THP_ALWAYS, deposit);
	struct hm_mm *mm;
	uint64_t free0 = t_stat(sys, "nr_free_pages");
	uint64_t a[8], touched = 0, small;
	int r = 0, maps = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	/* Half a 2 MiB block in 4 KiB pages first: the other half is what the
	 * 4 KiB fallback gets once no 2 MiB block is left (the free slots of
	 * the page-table block are not lent out as data). */
	CHECK_EQ(hm_mmap(mm, 0, MiB, RW, PA, &small), 0);
	CHECK_EQ(hm_madvise(mm, small, MiB, MADV_NOHUGEPAGE), 0);
	for (uint64_t off = 0; off < MiB; off += 4096)
		t_poke(mm, small + off, off + 1);
	uint64_t pte0 = t_stat(sys, "nr_anon_pte");
	/* 8 x 1 GiB of address space over 64 MiB of memory. */
	while (maps < 8 && r == 0) {
		CHECK_EQ(hm_mmap(mm, 0, GiB, RW, PA, &a[maps]), 0);
		for (uint64_t off = 0; off < GiB; off += 4096) {
			uint64_t v = t_pattern(maps, off >> 12);

			r = hm_write(mm, a[maps] + off, &v, 8);
			if (r)
				break;
			touched++;
		}
		maps++;
	}
	CHECK_EQ(r, -ENOMEM);
	STEP(sys);
	/* 1 GiB could never be had, 2 MiB until it ran out, then 4 KiB. */
	CHECK(t_stat(sys, "pud_fault_fallback") > 0);
	CHECK(t_stat(sys, "pmd_fault_alloc") > 0);
	CHECK(t_stat(sys, "pmd_fault_fallback") > 0);
	CHECK(t_stat(sys, "nr_anon_pte") > pte0);
	CHECK(t_stat(sys, "nr_free_pages") < 64);
	/* What was written is all there. */
	unsigned long bad = 0;
	uint64_t seen = 0;
	for (int m = 0; m < maps && seen < touched; m++)
		for (uint64_t off = 0; off < GiB && seen < touched; off += 4096, seen++) {
			uint64_t v = 0;

			bad += hm_read(mm, a[m] + off, &v, 8) || v != t_pattern(m, off >> 12);
		}
	for (uint64_t off = 0; off < MiB; off += 4096)
		bad += t_peek(mm, small + off) != off + 1;
	CHECK_EQ(bad, 0);
	/* Freeing some memory makes faults work again. */
	CHECK_EQ(hm_munmap(mm, a[0], 16 * MiB), 0);
	uint64_t v = 1;
	CHECK_EQ(hm_write(mm, a[maps - 1] + GiB - 4096, &v, 8), 0);
	STEP(sys);
	for (int m = 0; m < maps; m++)
		CHECK_EQ(hm_munmap(mm, a[m], GiB), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), free0);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 0);
	hm_system_destroy(sys);
}

static void oom_eager(void) { run(HM_DEPOSIT_EAGER); }
static void oom_lazy(void) { run(HM_DEPOSIT_LAZY); }

/* Address space runs out too: mmap says -ENOMEM and changes nothing. */
static void address_space(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	CHECK_EQ(hm_mmap(mm, 0, 1ull << 46, PROT_NONE, PA | MAP_NORESERVE, &a), 0);
	CHECK_EQ(hm_mmap(mm, 0, 1ull << 46, PROT_NONE, PA | MAP_NORESERVE, &a), -ENOMEM);
	CHECK_EQ(hm_mmap(mm, 0, 1ull << 45, PROT_READ, PA, &a), 0);
	STEP(sys);
	hm_system_destroy(sys);
}

T_MAIN(T(oom_eager), T(oom_lazy), T(address_space))
