/* SPDX-License-Identifier: MIT */
/*
 * The PUD THP RFC's scenarios, for 1 GiB pages and again for 2 MiB pages,
 * through the public API only: basic allocation, every 4 KiB page written
 * and read back, partial munmap, partial mprotect, DONTNEED, and whole-range
 * operations that must not split. hm_check runs after every step.
 */
#include "harness.h"

struct geo {
	uint64_t size;		/* huge page size under test */
	int pud, pmd;		/* policies that make faults use it */
	const char *alloc_stat, *split_stat;
};

static const struct geo G1 = { GiB, HM_THP_MADVISE, HM_THP_ALWAYS, "pud_fault_alloc", "thp_split_pud" };
static const struct geo G2 = { 2 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, "pmd_fault_alloc", "thp_split_pmd" };

/* Map one huge page's worth, aligned, and fault it in with a write. */
static uint64_t map_huge(struct hm_system *sys, struct hm_mm *mm, const struct geo *g)
{
	uint64_t a = 0, v = 1;

	CHECK_EQ(hm_mmap(mm, 0, g->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, &a), 0);
	CHECK_EQ(a % g->size, 0);
	CHECK_EQ(hm_madvise(mm, a, g->size, MADV_HUGEPAGE), 0);
	STEP(sys);
	CHECK_EQ(hm_write(mm, a, &v, sizeof(v)), 0);
	STEP(sys);
	return a;
}

static void basic_allocation(const struct geo *g)
{
	struct hm_system *sys = t_system(3 * GiB, g->pud, g->pmd, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	struct hm_mapping m;
	uint64_t free0 = t_stat(sys, "nr_free_pages");

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t before = t_stat(sys, g->alloc_stat);
	uint64_t a = map_huge(sys, mm, g);
	CHECK_EQ(t_stat(sys, g->alloc_stat), before + 1);
	CHECK_EQ(hm_query(mm, a + g->size / 2, &m), 0);
	CHECK_EQ(m.size, g->size);
	CHECK_EQ(m.va, a);
	CHECK_EQ(m.pa % g->size, 0);
	CHECK_EQ(m.prot, PROT_READ | PROT_WRITE);
	CHECK_EQ(m.mapcount, 1);
	CHECK(m.exclusive);
	/* The deposit: 1 PTE table, or 1 PMD table holding 512 PTE tables. */
	CHECK_EQ(t_stat(sys, "pgtable_deposited"), g->size == GiB ? 513 : 1);
	/* A fresh mapping reads as zeros. */
	uint64_t z = 1;
	CHECK_EQ(hm_read(mm, a + g->size - 8, &z, 8), 0);
	CHECK_EQ(z, 0);
	hm_mm_destroy(mm);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), free0);
	CHECK_EQ(t_stat(sys, "pgtable_bytes"), 0);
	CHECK_EQ(t_stat(sys, "pgtable_deposited"), 0);
	hm_system_destroy(sys);
}

static void every_page(const struct geo *g)
{
	struct hm_system *sys = t_system(3 * GiB, g->pud, g->pmd, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_huge(sys, mm, g);
	CHECK_EQ(t_fill(mm, a, g->size, 7), 0);
	STEP(sys);
	CHECK_EQ(t_pages_wrong(mm, a, g->size, 7, 0, 0), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, g->alloc_stat), 1);
	CHECK_EQ(t_stat(sys, "thp_split_pud") + t_stat(sys, "thp_split_pmd"), 0);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void partial_munmap(const struct geo *g, int deposit)
{
	struct hm_system *sys = t_system(3 * GiB, g->pud, g->pmd, deposit);
	struct hm_mm *mm;
	struct hm_mapping m;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_huge(sys, mm, g);
	CHECK_EQ(t_fill(mm, a, g->size, 11), 0);
	uint64_t hole = a + g->size / 2 + 5 * 4096;
	uint64_t splits = t_stat(sys, g->split_stat);

	CHECK_EQ(hm_munmap(mm, hole, 4096), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, g->split_stat), splits + 1);
	CHECK_EQ(t_stat(sys, "thp_split_pmd"), 1);
	if (deposit == HM_DEPOSIT_EAGER)
		CHECK_EQ(t_stat(sys, "split_alloc"), 0);
	else
		CHECK(t_stat(sys, "split_alloc") > 0);
	CHECK_EQ(t_pages_wrong(mm, a, g->size, 11, hole, 4096), 0);
	STEP(sys);
	/* Next to the hole: 4 KiB pages; for a 1 GiB page, 2 MiB elsewhere. */
	CHECK_EQ(hm_query(mm, hole + 4096, &m), 0);
	CHECK_EQ(m.size, 4096);
	CHECK_EQ(hm_query(mm, hole, &m), 0);
	CHECK_EQ(m.size, 0);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.size, g->size == GiB ? 2 * MiB : 4096);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

static void partial_mprotect(const struct geo *g)
{
	struct hm_system *sys = t_system(3 * GiB, g->pud, g->pmd, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	struct hm_mapping m;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_huge(sys, mm, g);
	CHECK_EQ(t_fill(mm, a, g->size, 13), 0);
	/* Read-only from 4 KiB past a 2 MiB boundary, for 2 MiB + 8 KiB. */
	uint64_t ro = a + g->size / 4 + 4096, ro_len = (g->size == GiB ? 2 * MiB : 0) + 8192;
	uint64_t v = 42;

	CHECK_EQ(hm_mprotect(mm, ro, ro_len, PROT_READ), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, g->split_stat), 1);
	CHECK_EQ(t_stat(sys, "split_alloc"), 0);
	CHECK_EQ(hm_write(mm, ro, &v, 8), -EFAULT);
	CHECK_EQ(hm_write(mm, ro + ro_len - 8, &v, 8), -EFAULT);
	CHECK_EQ(hm_write(mm, ro - 8, &v, 16), -EFAULT);	/* straddles: nothing written */
	CHECK_EQ(hm_query(mm, ro, &m), 0);
	CHECK_EQ(m.prot, PROT_READ);
	CHECK_EQ(t_pages_wrong(mm, a, g->size, 13, 0, 0), 0);
	STEP(sys);
	/* The rest stays writable. */
	CHECK_EQ(hm_write(mm, ro - 8, &v, 8), 0);
	CHECK_EQ(hm_write(mm, ro + ro_len, &v, 8), 0);
	CHECK_EQ(hm_read(mm, ro - 8, &v, 8), 0);
	CHECK_EQ(v, 42);
	/* And back: writable again, data intact. */
	CHECK_EQ(hm_mprotect(mm, ro, ro_len, PROT_READ | PROT_WRITE), 0);
	CHECK_EQ(hm_write(mm, ro, &v, 8), 0);
	STEP(sys);
	/* PROT_NONE: reads fault too. */
	CHECK_EQ(hm_mprotect(mm, ro, 4096, PROT_NONE), 0);
	CHECK_EQ(hm_read(mm, ro, &v, 8), -EFAULT);
	CHECK_EQ(hm_query(mm, ro, &m), 0);
	CHECK_EQ(m.prot, PROT_NONE);
	CHECK_EQ(m.size, 4096);
	STEP(sys);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

static void whole_range_no_split(const struct geo *g)
{
	struct hm_system *sys = t_system(3 * GiB, g->pud, g->pmd, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	struct hm_mapping m;
	uint64_t v = 5, free0 = t_free_frames(sys);

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_huge(sys, mm, g);
	CHECK_EQ(hm_mprotect(mm, a, g->size, PROT_READ), 0);
	STEP(sys);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.size, g->size);
	CHECK_EQ(m.prot, PROT_READ);
	CHECK_EQ(hm_write(mm, a, &v, 8), -EFAULT);
	CHECK_EQ(hm_madvise(mm, a, g->size, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.size, 0);
	CHECK_EQ(hm_mprotect(mm, a, g->size, PROT_READ | PROT_WRITE), 0);
	CHECK_EQ(hm_write(mm, a, &v, 8), 0);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.size, g->size);
	CHECK_EQ(hm_munmap(mm, a, g->size), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_split_pud") + t_stat(sys, "thp_split_pmd"), 0);
	hm_drain(sys);	/* munmap frees after a grace period */
	CHECK_EQ(t_free_frames(sys), free0 - 1);	/* the root table */
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void partial_dontneed(const struct geo *g)
{
	struct hm_system *sys = t_system(3 * GiB, g->pud, g->pmd, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_huge(sys, mm, g);
	CHECK_EQ(t_fill(mm, a, g->size, 17), 0);
	uint64_t z = a + 3 * 4096;
	CHECK_EQ(hm_madvise(mm, z, 2 * 4096, MADV_DONTNEED), 0);
	STEP(sys);
	unsigned long bad = 0;
	for (uint64_t off = 0; off < g->size; off += 4096) {
		uint64_t v = 1;

		bad += hm_read(mm, a + off, &v, 8) != 0;
		bad += (a + off >= z && a + off < z + 8192) ? v != 0 : v != t_pattern(17, off / 4096);
	}
	CHECK_EQ(bad, 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void pud_basic(void) { basic_allocation(&G1); }
static void pmd_basic(void) { basic_allocation(&G2); }
static void pud_every_page(void) { every_page(&G1); }
static void pmd_every_page(void) { every_page(&G2); }
static void pud_partial_munmap(void) { partial_munmap(&G1, HM_DEPOSIT_EAGER); }
static void pmd_partial_munmap(void) { partial_munmap(&G2, HM_DEPOSIT_EAGER); }
static void pud_partial_munmap_lazy(void) { partial_munmap(&G1, HM_DEPOSIT_LAZY); }
static void pmd_partial_munmap_lazy(void) { partial_munmap(&G2, HM_DEPOSIT_LAZY); }
static void pud_partial_mprotect(void) { partial_mprotect(&G1); }
static void pmd_partial_mprotect(void) { partial_mprotect(&G2); }
static void pud_whole_range(void) { whole_range_no_split(&G1); }
static void pmd_whole_range(void) { whole_range_no_split(&G2); }
static void pud_dontneed(void) { partial_dontneed(&G1); }
static void pmd_dontneed(void) { partial_dontneed(&G2); }

T_MAIN(T(pud_basic), T(pmd_basic), T(pud_every_page), T(pmd_every_page),
       T(pud_partial_munmap), T(pmd_partial_munmap), T(pud_partial_munmap_lazy),
       T(pmd_partial_munmap_lazy), T(pud_partial_mprotect), T(pmd_partial_mprotect),
       T(pud_whole_range), T(pmd_whole_range), T(pud_dontneed), T(pmd_dontneed))
