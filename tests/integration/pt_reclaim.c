/* SPDX-License-Identifier: MIT */
/*
 * Empty page tables given back (issue 11, item 4), through the public API:
 * a PTE or PMD table left with nothing in it by MADV_DONTNEED, a munmap of
 * part of a VMA, a collapse or a dropped zero page is freed, so that
 * pgtable_bytes falls back (pgtable_reclaimed counts them). A table that
 * still holds a swap entry stays. The range reads as zeros afterwards and
 * faults back in; hm_check runs after every step (STEP(): HM_CHECK, which
 * would check after every one of thousands of faults, is off).
 */
#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
/* The first touch of a range at a 1 GiB boundary adds a PUD table (which
 * serves 512 GiB and stays) and a PMD table: UP tables over the PTE tables. */
#define UP 2
/* What dontneed_1g_of_4k touches: 1 GiB, or 128 MiB under TSan (which
 * makes each of the 4 KiB faults and checks slower). */
#ifdef T_TSAN
#define BIG (128 * MiB)
#else
#define BIG GiB
#endif

static uint64_t tables(struct hm_system *sys)
{
	return t_stat(sys, "pgtable_bytes") / 4096;
}

static uint64_t reclaimed(struct hm_system *sys)
{
	return t_stat(sys, "pgtable_reclaimed");
}

/* @len bytes at a 1 GiB boundary (so that the tables counted below are
 * this range's alone). */
static uint64_t map_aligned(struct hm_mm *mm, uint64_t len)
{
	uint64_t a = 0;

	CHECK_EQ(hm_mmap(mm, 0, len + GiB, RW, PA, &a), 0);
	uint64_t al = (a + GiB - 1) & ~(GiB - 1);
	if (al > a)
		CHECK_EQ(hm_munmap(mm, a, al - a), 0);
	if (al + len < a + len + GiB)
		CHECK_EQ(hm_munmap(mm, al + len, a + len + GiB - al - len), 0);
	return al;
}

/* Pages of [a + off, a + off + len) that do not hold t_fill(mm, a, .., seed)'s
 * pattern. */
static unsigned long wrong(struct hm_mm *mm, uint64_t a, uint64_t off, uint64_t len, uint64_t seed)
{
	unsigned long bad = 0;

	for (uint64_t o = off; o < off + len; o += 4096) {
		uint64_t v = 0, w = 0;

		bad += hm_read(mm, a + o, &v, 8) || hm_read(mm, a + o + 4088, &w, 8) ||
		       v != t_pattern(seed, o / 4096) || w != v;
	}
	return bad;
}

/* Do a few pages of every 2 MiB of [a, a + len) read as zeros? */
static unsigned long nonzero_samples(struct hm_mm *mm, uint64_t a, uint64_t len)
{
	unsigned long bad = 0;

	for (uint64_t off = 0; off < len; off += 2 * MiB) {
		uint64_t v = 1, w = 1;

		bad += hm_read(mm, a + off, &v, 8) || v;
		bad += hm_read(mm, a + off + 2 * MiB - 8, &w, 8) || w;
	}
	return bad;
}

/* DONTNEED of 1 GiB of touched 4 KiB pages gives back its 512 PTE tables
 * and the PMD table: the tables fall back to where they were before the
 * range was touched (plus the PUD table, which serves the rest of the
 * address space). The range then reads as zeros and faults back in. */
static void dontneed_1g_of_4k(void)
{
	t_flags = 0;
	struct hm_system *sys = t_system(BIG + 512 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_aligned(mm, BIG);
	uint64_t pt0 = tables(sys);

	CHECK_EQ(t_fill(mm, a, BIG, 1), 0);
	STEP(sys);
	CHECK_EQ(tables(sys), pt0 + UP + BIG / (2 * MiB));
	CHECK_EQ(reclaimed(sys), 0);
	CHECK_EQ(hm_madvise(mm, a, BIG, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), BIG / (2 * MiB) + 1);
	CHECK_EQ(tables(sys), pt0 + 1);	/* the PUD table */
	CHECK_EQ(nonzero_samples(mm, a, BIG), 0);
	STEP(sys);
	CHECK_EQ(hm_madvise(mm, a, BIG, MADV_DONTNEED), 0);
	CHECK_EQ(t_fill(mm, a, BIG, 2), 0);
	CHECK_EQ(t_pages_wrong(mm, a, BIG, 2, 0, 0), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

/* Only tables that are empty as a whole go: DONTNEED of a range that
 * starts and ends inside PTE tables keeps those two while something else
 * is mapped in them, and frees them once it is not. */
static void dontneed_partial(void)
{
	t_flags = 0;
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_aligned(mm, 8 * MiB);
	uint64_t pt0 = tables(sys);

	CHECK_EQ(t_fill(mm, a, 8 * MiB, 3), 0);
	STEP(sys);
	CHECK_EQ(tables(sys), pt0 + UP + 4);
	/* [1 MiB, 5 MiB): the PTE table of [2, 4) is empty, its neighbours are not. */
	CHECK_EQ(hm_madvise(mm, a + 1 * MiB, 4 * MiB, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), 1);
	CHECK_EQ(tables(sys), pt0 + UP + 3);
	CHECK_EQ(t_pages_wrong(mm, a, 1 * MiB, 3, 0, 0), 0);
	CHECK_EQ(wrong(mm, a, 5 * MiB, 3 * MiB, 3), 0);
	/* The rest of [0, 2): that table empties now. */
	CHECK_EQ(hm_madvise(mm, a, 1 * MiB, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), 2);
	/* Everything: the PMD table goes with its last PTE tables. */
	CHECK_EQ(hm_madvise(mm, a, 8 * MiB, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), 5);
	CHECK_EQ(tables(sys), pt0 + 1);
	CHECK_EQ(nonzero_samples(mm, a, 8 * MiB), 0);
	CHECK_EQ(hm_madvise(mm, a, 8 * MiB, MADV_DONTNEED), 0);
	CHECK_EQ(t_fill(mm, a, 8 * MiB, 4), 0);
	CHECK_EQ(t_pages_wrong(mm, a, 8 * MiB, 4, 0, 0), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* munmap of part of a VMA: the PTE table under the unmapped part also
 * serves the part that stays (so the munmap keeps it), but nothing is
 * mapped there any more: it is given back. */
static void munmap_part(void)
{
	t_flags = 0;
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_aligned(mm, 8 * MiB);
	uint64_t pt0 = tables(sys);

	CHECK_EQ(t_fill(mm, a, 1 * MiB, 5), 0);
	CHECK_EQ(t_fill(mm, a + 6 * MiB, 1 * MiB, 6), 0);
	STEP(sys);
	CHECK_EQ(tables(sys), pt0 + UP + 2);
	CHECK_EQ(hm_munmap(mm, a, 1 * MiB), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), 1);
	CHECK_EQ(tables(sys), pt0 + UP + 1);
	CHECK_EQ(t_pages_wrong(mm, a, 1 * MiB, 5, a, 1 * MiB), 0);
	CHECK_EQ(wrong(mm, a + 6 * MiB, 0, 1 * MiB, 6), 0);
	CHECK_EQ(nonzero_samples(mm, a + 2 * MiB, 4 * MiB), 0);	/* tables for [2, 4), [4, 6) */
	STEP(sys);
	/* The other end: no VMA is left under the table of [6, 8), so the
	 * munmap frees it itself. */
	CHECK_EQ(hm_munmap(mm, a + 6 * MiB, 2 * MiB), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), 1);
	CHECK_EQ(tables(sys), pt0 + UP + 2);
	/* The PMD table goes with its last PTE tables; the VMA [1, 6) gets a
	 * new one on its next fault. */
	CHECK_EQ(hm_madvise(mm, a + 1 * MiB, 5 * MiB, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), 4);
	CHECK_EQ(tables(sys), pt0 + 1);
	CHECK_EQ(t_fill(mm, a + 1 * MiB, 5 * MiB, 7), 0);
	CHECK_EQ(t_pages_wrong(mm, a + 1 * MiB, 5 * MiB, 7, 0, 0), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* A table holding a swap entry is not empty: DONTNEED of the other pages
 * keeps it, and the page in swap reads back. */
static void swap_entry_keeps_table(void)
{
	t_flags = 0;
	struct hm_system *sys = t_system_swap(64 * MiB, 64 * MiB, HM_THP_NEVER, HM_THP_NEVER,
					      HM_DEPOSIT_EAGER);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_aligned(mm, 2 * MiB);
	uint64_t pt0 = tables(sys);

	CHECK_EQ(t_fill(mm, a, 2 * MiB, 8), 0);
	CHECK_EQ(hm_madvise(mm, a + 4096, 4096, MADV_PAGEOUT), 0);
	STEP(sys);
	struct hm_mapping m;
	CHECK_EQ(hm_query(mm, a + 4096, &m), 0);
	CHECK(m.swapped);
	CHECK_EQ(hm_madvise(mm, a, 4096, MADV_DONTNEED), 0);
	CHECK_EQ(hm_madvise(mm, a + 8192, 2 * MiB - 8192, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), 0);
	CHECK_EQ(tables(sys), pt0 + UP + 1);
	uint64_t v = 0;
	CHECK_EQ(hm_read(mm, a + 4096, &v, 8), 0);
	CHECK_EQ(v, t_pattern(8, 1));
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), 2);
	CHECK_EQ(tables(sys), pt0 + 1);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* Collapse: in eager mode the PTE table becomes the 2 MiB leaf's deposit,
 * in lazy mode it is freed; either way, a DONTNEED of the leaf then leaves
 * the PMD table empty, and it goes. */
static void collapse_then_dontneed(int deposit)
{
	t_flags = 0;
	struct hm_system *sys = t_system(64 * MiB, HM_THP_MADVISE, HM_THP_MADVISE, deposit);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_aligned(mm, 4 * MiB);
	uint64_t pt0 = tables(sys);

	CHECK_EQ(t_fill(mm, a, 4 * MiB, 9), 0);
	STEP(sys);
	CHECK_EQ(tables(sys), pt0 + UP + 2);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_COLLAPSE), 0);
	STEP(sys);
	struct hm_mapping m;
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.size, 2 * MiB);
	CHECK_EQ(tables(sys), pt0 + UP + (deposit == HM_DEPOSIT_EAGER ? 2 : 1));
	CHECK_EQ(t_pages_wrong(mm, a, 4 * MiB, 9, 0, 0), 0);
	/* The 4 KiB half first: its table goes, the PMD table stays for the leaf. */
	CHECK_EQ(hm_madvise(mm, a + 2 * MiB, 2 * MiB, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), 1);
	CHECK_EQ(tables(sys), pt0 + UP + (deposit == HM_DEPOSIT_EAGER ? 1 : 0));
	CHECK_EQ(t_pages_wrong(mm, a, 2 * MiB, 9, 0, 0), 0);
	/* The leaf and its deposit: the PMD table is empty now. */
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), 2);
	CHECK_EQ(tables(sys), pt0 + 1);
	CHECK_EQ(nonzero_samples(mm, a, 4 * MiB), 0);
	CHECK_EQ(t_fill(mm, a, 4 * MiB, 10), 0);
	CHECK_EQ(t_pages_wrong(mm, a, 4 * MiB, 10, 0, 0), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void collapse_eager(void) { collapse_then_dontneed(HM_DEPOSIT_EAGER); }
static void collapse_lazy(void) { collapse_then_dontneed(HM_DEPOSIT_LAZY); }

/* A PMD table holding 2 MiB leaves (and their deposits) is not empty: a
 * DONTNEED of part of it keeps it, and its leaves' data. After fork, the
 * child's tables go, the parent's stay. */
static void huge_leaves_and_fork(void)
{
	t_flags = 0;
	struct hm_system *sys = t_system(128 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm, *child;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_aligned(mm, 8 * MiB);
	uint64_t pt0 = tables(sys);

	CHECK_EQ(t_fill(mm, a, 8 * MiB, 11), 0);
	STEP(sys);
	CHECK_EQ(tables(sys), pt0 + UP + 4);	/* four deposits */
	CHECK_EQ(hm_madvise(mm, a, 4 * MiB, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), 0);
	CHECK_EQ(tables(sys), pt0 + UP + 2);
	CHECK_EQ(wrong(mm, a, 4 * MiB, 4 * MiB, 11), 0);
	REQUIRE(hm_fork(mm, &child) == 0);
	STEP(sys);
	uint64_t pt1 = tables(sys);
	CHECK_EQ(hm_madvise(child, a, 8 * MiB, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(reclaimed(sys), 1);
	CHECK_EQ(tables(sys), pt1 - 3);
	CHECK_EQ(nonzero_samples(child, a, 8 * MiB), 0);
	CHECK_EQ(wrong(mm, a, 4 * MiB, 4 * MiB, 11), 0);
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

T_MAIN(T(dontneed_1g_of_4k), T(dontneed_partial), T(munmap_part), T(swap_entry_keeps_table),
       T(collapse_eager), T(collapse_lazy), T(huge_leaves_and_fork))
