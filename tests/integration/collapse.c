/* SPDX-License-Identifier: MIT */
/*
 * MADV_COLLAPSE and khugepaged, through the public API: the cases of the
 * kernel's selftests/mm/khugepaged.c (max_ptes_none, swapped and shared
 * pages, partial DONTNEED, PTE-mapped and mprotect-split pages), PMD->PUD
 * collapse by refold and by copy, bad input, -ENOMEM, and the HM_KHUGEPAGED
 * thread. Every byte is verified after each collapse.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>

#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)

static uint8_t page_byte(uint64_t seed, uint64_t page, unsigned i)
{
	return (uint8_t)(t_pattern(seed, page) >> ((i & 7) * 8)) ^ (uint8_t)i;
}

/* Fill the 4 KiB pages of [a, a + len) wholly. */
static unsigned long fill(struct hm_mm *mm, uint64_t a, uint64_t len, uint64_t seed)
{
	static uint8_t buf[4096];
	unsigned long bad = 0;

	for (uint64_t off = 0; off < len; off += 4096) {
		for (unsigned i = 0; i < 4096; i++)
			buf[i] = page_byte(seed, (a + off) >> 12, i);
		bad += hm_write(mm, a + off, buf, 4096) != 0;
	}
	return bad;
}

/* Pages of [a, a + len) that do not hold fill's bytes (or zeros, for the
 * pages of [zero, zero + zero_len)). Read 2 MiB at a time. */
static unsigned long wrong(struct hm_mm *mm, uint64_t a, uint64_t len, uint64_t seed, uint64_t zero,
			   uint64_t zero_len)
{
	static uint8_t buf[2 * MiB];
	unsigned long bad = 0;

	for (uint64_t off = 0; off < len; off += sizeof(buf)) {
		uint64_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);

		if (hm_read(mm, a + off, buf, n))
			return ~0ul;
		for (uint64_t p = 0; p < n; p += 4096) {
			uint64_t va = a + off + p;
			bool z = va >= zero && va < zero + zero_len;

			for (unsigned i = 0; i < 4096; i++) {
				if (buf[p + i] != (z ? 0 : page_byte(seed, va >> 12, i))) {
					bad++;
					break;
				}
			}
		}
	}
	return bad;
}

static uint64_t map(struct hm_mm *mm, uint64_t len)
{
	uint64_t a = 0;

	CHECK_EQ(hm_mmap(mm, 0, len, RW, MAP_PRIVATE | MAP_ANONYMOUS, &a), 0);
	return a;
}

static struct hm_mapping query(struct hm_mm *mm, uint64_t va)
{
	struct hm_mapping m = { 0 };

	CHECK_EQ(hm_query(mm, va, &m), 0);
	return m;
}

/* [a, a + len) filled through 4 KiB faults (MADV_NOHUGEPAGE), then given
 * MADV_HUGEPAGE: PTE-mapped pages where huge pages may go. */
static void fill_small(struct hm_mm *mm, uint64_t a, uint64_t len, uint64_t seed)
{
	CHECK_EQ(hm_madvise(mm, a, len, MADV_NOHUGEPAGE), 0);
	CHECK_EQ(fill(mm, a, len, seed), 0);
	CHECK_EQ(hm_madvise(mm, a, len, MADV_HUGEPAGE), 0);
	CHECK_EQ(query(mm, a).size, 4096);
}

static struct hm_system *sys_with(uint64_t phys, int deposit, unsigned none, unsigned swap, unsigned shared,
				  bool with_swap)
{
	struct hm_config cfg;

	t_config(&cfg, phys, HM_THP_MADVISE, HM_THP_MADVISE, deposit);
	cfg.khugepaged_max_ptes_none = none;
	cfg.khugepaged_max_ptes_swap = swap;
	cfg.khugepaged_max_ptes_shared = shared;
	if (with_swap) {
		cfg.swap_path = t_swap_path();
		cfg.swap_bytes = 64 * MiB;
	}
	return t_system_cfg(&cfg);
}

static void pte_mapped(int deposit)
{
	struct hm_system *sys = sys_with(256 * MiB, deposit, 511, 64, 256, false);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map(mm, 4 * MiB);
	fill_small(mm, a, 4 * MiB, 1);
	STEP(sys);
	uint64_t tables = t_stat(sys, "pgtable_bytes");
	CHECK_EQ(hm_madvise(mm, a, 4 * MiB, MADV_COLLAPSE), 0);
	STEP(sys);
	CHECK_EQ(query(mm, a).size, 2 * MiB);
	CHECK_EQ(query(mm, a + 2 * MiB).size, 2 * MiB);
	CHECK_EQ(wrong(mm, a, 4 * MiB, 1, 0, 0), 0);
	CHECK_EQ(t_stat(sys, "thp_collapse_alloc"), 2);
	CHECK_EQ(t_stat(sys, "collapse_refold"), 0);
	CHECK_EQ(t_stat(sys, "nr_anon_pte"), 0);
	CHECK_EQ(t_stat(sys, "nr_anon_pmd"), 2);
	hm_drain(sys);
	/* Lazy mode frees the two PTE tables; eager keeps them as deposits. */
	if (deposit == HM_DEPOSIT_LAZY)
		CHECK_EQ(t_stat(sys, "pgtable_bytes"), tables - 2 * 4096);
	else
		CHECK_EQ(t_stat(sys, "pgtable_bytes"), tables);
	/* Collapsing again is a no-op. */
	CHECK_EQ(hm_madvise(mm, a, 4 * MiB, MADV_COLLAPSE), 0);
	CHECK_EQ(t_stat(sys, "thp_collapse_alloc"), 2);
	/* And the huge page works: a split, a write, a read. */
	CHECK_EQ(hm_mprotect(mm, a + 8192, 4096, PROT_READ), 0);
	CHECK_EQ(wrong(mm, a, 4 * MiB, 1, 0, 0), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 0);
	hm_system_destroy(sys);
}
static void pte_mapped_eager(void) { pte_mapped(HM_DEPOSIT_EAGER); }
static void pte_mapped_lazy(void) { pte_mapped(HM_DEPOSIT_LAZY); }

/* A 2 MiB page split by mprotect of part of it and back: refolded in place. */
static void refold(int deposit)
{
	struct hm_system *sys = sys_with(256 * MiB, deposit, 511, 64, 256, false);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map(mm, 2 * MiB);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_HUGEPAGE), 0);
	CHECK_EQ(fill(mm, a, 2 * MiB, 2), 0);
	struct hm_mapping before = query(mm, a);
	CHECK_EQ(before.size, 2 * MiB);
	CHECK_EQ(hm_mprotect(mm, a + 64 * KiB, 4096, PROT_READ), 0);
	CHECK_EQ(hm_mprotect(mm, a + 64 * KiB, 4096, RW), 0);
	CHECK_EQ(query(mm, a).size, 4096);
	STEP(sys);
	uint64_t free_before = t_stat(sys, "nr_free_pages");
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_COLLAPSE), 0);
	STEP(sys);
	struct hm_mapping after = query(mm, a);
	CHECK_EQ(after.size, 2 * MiB);
	CHECK_EQ(after.pa, before.pa);		/* no copy */
	CHECK_EQ(after.mapcount, 1);
	CHECK(after.exclusive);
	CHECK_EQ(t_stat(sys, "collapse_refold"), 1);
	CHECK_EQ(t_stat(sys, "thp_collapse_alloc"), 0);
	CHECK_EQ(t_stat(sys, "nr_free_pages") + (deposit == HM_DEPOSIT_LAZY ? 0 : 0) >= free_before, 1);
	CHECK_EQ(wrong(mm, a, 2 * MiB, 2, 0, 0), 0);
	/* Writable whole again: a write needs no copy. */
	t_poke(mm, a + 4096, 77);
	CHECK_EQ(query(mm, a).pa, before.pa);
	CHECK_EQ(t_stat(sys, "cow_copy"), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}
static void refold_eager(void) { refold(HM_DEPOSIT_EAGER); }
static void refold_lazy(void) { refold(HM_DEPOSIT_LAZY); }

/* Partial MADV_DONTNEED: the dropped half reads zeros after the collapse. */
static void partial_dontneed(void)
{
	struct hm_system *sys = sys_with(256 * MiB, HM_DEPOSIT_EAGER, 511, 64, 256, false);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map(mm, 2 * MiB);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_HUGEPAGE), 0);
	CHECK_EQ(fill(mm, a, 2 * MiB, 3), 0);
	CHECK_EQ(hm_madvise(mm, a + MiB, 512 * KiB, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_COLLAPSE), 0);
	STEP(sys);
	CHECK_EQ(query(mm, a).size, 2 * MiB);
	CHECK_EQ(wrong(mm, a, 2 * MiB, 3, a + MiB, 512 * KiB), 0);
	CHECK_EQ(t_stat(sys, "thp_collapse_alloc"), 1);
	hm_mm_destroy(mm);
	hm_drain(sys);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 0);
	hm_system_destroy(sys);
}

/* khugepaged with max_ptes_none 0 leaves a piece with one hole; 511 takes
 * it. */
static void max_ptes_none(void)
{
	for (unsigned none = 0; none <= 511; none += 511) {
		struct hm_system *sys = sys_with(256 * MiB, HM_DEPOSIT_EAGER, none, 64, 256, false);
		struct hm_mm *mm;
		uint64_t n = 0;

		REQUIRE(hm_mm_create(sys, &mm) == 0);
		uint64_t a = map(mm, 4 * MiB);
		fill_small(mm, a, 4 * MiB, 4);
		CHECK_EQ(hm_madvise(mm, a + 8192, 4096, MADV_DONTNEED), 0);
		STEP(sys);
		CHECK_EQ(hm_khugepaged_scan(sys, 1024, &n), 0);
		STEP(sys);
		CHECK_EQ(n, none ? 2 : 1);
		CHECK_EQ(query(mm, a).size, none ? 2 * MiB : 4096);
		CHECK_EQ(query(mm, a + 2 * MiB).size, 2 * MiB);
		CHECK_EQ(wrong(mm, a, 4 * MiB, 4, a + 8192, 4096), 0);
		CHECK_EQ(t_stat(sys, "khugepaged_pages_scanned"), 1024);
		/* MADV_COLLAPSE ignores the limit. */
		CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_COLLAPSE), 0);
		CHECK_EQ(query(mm, a).size, 2 * MiB);
		CHECK_EQ(wrong(mm, a, 4 * MiB, 4, a + 8192, 4096), 0);
		STEP(sys);
		hm_mm_destroy(mm);
		hm_system_destroy(sys);
	}
}

/* Pages in swap: khugepaged takes a piece with at most max_ptes_swap of
 * them, reading them back; MADV_COLLAPSE takes any. */
static void swapped(void)
{
	struct hm_system *sys = sys_with(256 * MiB, HM_DEPOSIT_EAGER, 511, 8, 256, true);
	struct hm_mm *mm;
	uint64_t n = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map(mm, 6 * MiB);
	fill_small(mm, a, 6 * MiB, 5);
	/* 8 pages out in the first piece, 9 in the second, all in the third. */
	CHECK_EQ(hm_madvise(mm, a, 8 * 4096, MADV_PAGEOUT), 0);
	CHECK_EQ(hm_madvise(mm, a + 2 * MiB, 9 * 4096, MADV_PAGEOUT), 0);
	CHECK_EQ(hm_madvise(mm, a + 4 * MiB, 2 * MiB, MADV_PAGEOUT), 0);
	CHECK(query(mm, a).swapped);
	CHECK(t_stat(sys, "pswpout") >= 17 + 512);
	STEP(sys);
	CHECK_EQ(hm_khugepaged_scan(sys, 3 * 512, &n), 0);
	STEP(sys);
	CHECK_EQ(n, 1);
	CHECK_EQ(query(mm, a).size, 2 * MiB);
	CHECK(query(mm, a + 2 * MiB).swapped);
	CHECK_EQ(hm_madvise(mm, a, 6 * MiB, MADV_COLLAPSE), 0);
	STEP(sys);
	CHECK_EQ(query(mm, a + 2 * MiB).size, 2 * MiB);
	CHECK_EQ(query(mm, a + 4 * MiB).size, 2 * MiB);
	CHECK_EQ(wrong(mm, a, 6 * MiB, 5, 0, 0), 0);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* Pages shared with a child after fork: khugepaged takes a piece with at
 * most max_ptes_shared of them; the child keeps its memory. */
static void shared(void)
{
	struct hm_system *sys = sys_with(256 * MiB, HM_DEPOSIT_EAGER, 511, 64, 100, false);
	struct hm_mm *mm, *child;
	uint64_t n = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map(mm, 2 * MiB);
	fill_small(mm, a, 2 * MiB, 6);
	REQUIRE(hm_fork(mm, &child) == 0);
	/* The parent writes (copies) all but 101 pages: too many shared. */
	CHECK_EQ(fill(mm, a, 2 * MiB - 101 * 4096, 7), 0);
	CHECK_EQ(hm_khugepaged_scan(sys, 512, &n), 0);
	STEP(sys);
	CHECK_EQ(n, 0);
	CHECK_EQ(query(mm, a).size, 4096);
	/* One more copied: 100 shared, within the limit. */
	CHECK_EQ(fill(mm, a + 2 * MiB - 101 * 4096, 4096, 7), 0);
	/* Both mms, wherever the cursor is: the child has 100 shared too. */
	CHECK_EQ(hm_khugepaged_scan(sys, 2048, &n), 0);
	STEP(sys);
	CHECK_EQ(n, 2);
	CHECK_EQ(query(mm, a).size, 2 * MiB);
	CHECK(query(mm, a).exclusive);
	CHECK_EQ(wrong(mm, a, 2 * MiB - 100 * 4096, 7, 0, 0), 0);
	CHECK_EQ(wrong(child, a, 2 * MiB, 6, 0, 0), 0);
	/* The parent's writes stay its own. */
	CHECK_EQ(fill(mm, a, 2 * MiB, 8), 0);
	CHECK_EQ(wrong(child, a, 2 * MiB, 6, 0, 0), 0);
	STEP(sys);
	/* MADV_COLLAPSE in the child, whose pages are now its own or shared
	 * with nobody: its data unchanged. */
	CHECK_EQ(hm_madvise(child, a, 2 * MiB, MADV_COLLAPSE), 0);
	CHECK_EQ(query(child, a).size, 2 * MiB);
	CHECK_EQ(wrong(child, a, 2 * MiB, 6, 0, 0), 0);
	CHECK_EQ(wrong(mm, a, 2 * MiB, 8, 0, 0), 0);
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* A fork child shares a split 2 MiB page: refolding keeps it read-only in
 * both, and a write copies. */
static void refold_shared(void)
{
	struct hm_system *sys = sys_with(256 * MiB, HM_DEPOSIT_EAGER, 511, 64, 256, false);
	struct hm_mm *mm, *child;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map(mm, 2 * MiB);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_HUGEPAGE), 0);
	CHECK_EQ(fill(mm, a, 2 * MiB, 9), 0);
	uint64_t pa = query(mm, a).pa;
	CHECK_EQ(hm_mprotect(mm, a + 64 * KiB, 4096, PROT_READ), 0);
	CHECK_EQ(hm_mprotect(mm, a + 64 * KiB, 4096, RW), 0);
	REQUIRE(hm_fork(mm, &child) == 0);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_COLLAPSE), 0);
	CHECK_EQ(hm_madvise(child, a, 2 * MiB, MADV_COLLAPSE), 0);
	STEP(sys);
	CHECK_EQ(query(mm, a).size, 2 * MiB);
	CHECK_EQ(query(mm, a).pa, pa);
	CHECK_EQ(query(child, a).pa, pa);
	CHECK_EQ(query(mm, a).mapcount, 2);
	CHECK_EQ(t_stat(sys, "collapse_refold"), 2);
	CHECK_EQ(fill(mm, a, 2 * MiB, 10), 0);
	CHECK_EQ(wrong(child, a, 2 * MiB, 9, 0, 0), 0);
	CHECK_EQ(wrong(mm, a, 2 * MiB, 10, 0, 0), 0);
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* PMD -> PUD: a 1 GiB page split by mprotect and back is refolded; 4 KiB
 * pages of a 1 GiB range are copied into a 1 GiB page. */
static void pud(int deposit)
{
	t_flags = 0;	/* hundreds of faults: the STEP()s check */
	struct hm_system *sys = sys_with(3 * GiB, deposit, 511, 64, 256, false);

	t_flags = HM_CHECK;
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map(mm, GiB);
	CHECK_EQ(hm_madvise(mm, a, GiB, MADV_HUGEPAGE), 0);
	t_poke(mm, a, 1);
	struct hm_mapping before = query(mm, a);
	REQUIRE(before.size == GiB);
	CHECK_EQ(fill(mm, a + 3 * MiB, 4 * MiB, 11), 0);
	uint64_t tables = t_stat(sys, "pgtable_bytes");
	CHECK_EQ(hm_mprotect(mm, a + 5 * MiB, 4096, PROT_READ), 0);
	if (deposit == HM_DEPOSIT_EAGER) {	/* lazy mode does not split 1 GiB */
		CHECK_EQ(hm_mprotect(mm, a + 5 * MiB, 4096, RW), 0);
		CHECK_EQ(query(mm, a + 5 * MiB).size, 4096);
		STEP(sys);
		CHECK_EQ(hm_madvise(mm, a, GiB, MADV_COLLAPSE), 0);
		STEP(sys);
		struct hm_mapping after = query(mm, a);
		CHECK_EQ(after.size, GiB);
		CHECK_EQ(after.pa, before.pa);
		CHECK_EQ(t_stat(sys, "collapse_refold"), 2);
		CHECK_EQ(t_stat(sys, "thp_collapse_alloc"), 0);
		CHECK_EQ(t_stat(sys, "pgtable_bytes"), tables);
		CHECK_EQ(wrong(mm, a + 3 * MiB, 4 * MiB, 11, 0, 0), 0);
	}
	CHECK_EQ(hm_munmap(mm, a, GiB), 0);
	hm_drain(sys);

	/* Copy: 4 KiB pages here and there. */
	a = map(mm, GiB);
	CHECK_EQ(hm_madvise(mm, a, GiB, MADV_NOHUGEPAGE), 0);
	CHECK_EQ(fill(mm, a, 64 * KiB, 12), 0);
	CHECK_EQ(fill(mm, a + 700 * MiB, 2 * MiB, 12), 0);
	CHECK_EQ(hm_madvise(mm, a, GiB, MADV_HUGEPAGE), 0);
	STEP(sys);
	/* Pieces with nothing mapped cannot be collapsed: -EINVAL, but the
	 * others are. */
	CHECK_EQ(hm_madvise(mm, a, GiB, MADV_COLLAPSE), -EINVAL);
	CHECK_EQ(query(mm, a).size, 2 * MiB);
	CHECK_EQ(query(mm, a + 700 * MiB).size, 2 * MiB);
	STEP(sys);
	/* Fill the rest through faults (2 MiB each), then collapse to 1 GiB. */
	for (uint64_t off = 0; off < GiB; off += 2 * MiB)
		t_poke(mm, a + off + 4096 * 3, 0);
	CHECK_EQ(fill(mm, a, 64 * KiB, 12), 0);
	CHECK_EQ(fill(mm, a + 700 * MiB, 2 * MiB, 12), 0);
	CHECK_EQ(hm_madvise(mm, a, GiB, MADV_COLLAPSE), 0);
	STEP(sys);
	CHECK_EQ(query(mm, a).size, GiB);
	CHECK_EQ(query(mm, a + 700 * MiB).size, GiB);
	CHECK_EQ(wrong(mm, a, 64 * KiB, 12, 0, 0), 0);
	CHECK_EQ(wrong(mm, a + 700 * MiB, 2 * MiB, 12, 0, 0), 0);
	CHECK_EQ(t_peek(mm, a + 100 * MiB + 4096 * 3), 0);
	CHECK_EQ(t_stat(sys, "thp_collapse_pud"), deposit == HM_DEPOSIT_EAGER ? 2 : 1);
	hm_mm_destroy(mm);
	hm_drain(sys);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 0);
	hm_system_destroy(sys);
}
static void pud_eager(void) { pud(HM_DEPOSIT_EAGER); }
static void pud_lazy(void) { pud(HM_DEPOSIT_LAZY); }

static void bad_input(void)
{
	struct hm_system *sys = sys_with(256 * MiB, HM_DEPOSIT_EAGER, 511, 64, 256, false);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map(mm, 4 * MiB);
	fill_small(mm, a, 4 * MiB, 13);
	CHECK_EQ(hm_madvise(mm, a + 1, 2 * MiB, MADV_COLLAPSE), -EINVAL);	/* unaligned */
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB - 4096, MADV_COLLAPSE), -EINVAL);	/* no 2 MiB piece */
	CHECK_EQ(hm_madvise(mm, a + 4096, 2 * MiB, MADV_COLLAPSE), -EINVAL);	/* nor here */
	CHECK_EQ(hm_madvise(mm, a, 0, MADV_COLLAPSE), 0);
	CHECK_EQ(hm_madvise(mm, a, 8 * MiB, MADV_COLLAPSE), -ENOMEM);	/* a hole */
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_NOHUGEPAGE), 0);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_COLLAPSE), -EINVAL);	/* not allowed */
	CHECK_EQ(query(mm, a).size, 4096);
	CHECK_EQ(t_stat(sys, "thp_collapse_alloc"), 0);
	uint64_t b = map(mm, 2 * MiB);
	CHECK_EQ(hm_madvise(mm, b, 2 * MiB, MADV_HUGEPAGE), 0);
	CHECK_EQ(hm_madvise(mm, b, 2 * MiB, MADV_COLLAPSE), -EINVAL);	/* nothing there */
	CHECK_EQ(wrong(mm, a, 4 * MiB, 13, 0, 0), 0);
	CHECK_EQ(hm_khugepaged_scan(NULL, 1, NULL), -EINVAL);
	struct hm_config cfg;
	struct hm_system *s2 = NULL;
	hm_config_default(&cfg);
	CHECK_EQ(cfg.khugepaged_max_ptes_swap, 64);
	CHECK_EQ(cfg.khugepaged_max_ptes_shared, 256);
	cfg.khugepaged_max_ptes_swap = 512;
	CHECK_EQ(hm_system_create(&cfg, &s2), -EINVAL);
	cfg.khugepaged_max_ptes_swap = 0;
	cfg.khugepaged_max_ptes_shared = 512;
	CHECK_EQ(hm_system_create(&cfg, &s2), -EINVAL);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* Memory full of 4 KiB pages: no 2 MiB frame, -ENOMEM, nothing changed. */
static void no_memory(void)
{
	t_flags = 0;	/* thousands of faults: the STEP()s check */
	struct hm_system *sys = sys_with(32 * MiB, HM_DEPOSIT_EAGER, 511, 64, 256, false);

	t_flags = HM_CHECK;
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map(mm, 64 * MiB);
	CHECK_EQ(hm_madvise(mm, a, 64 * MiB, MADV_NOHUGEPAGE), 0);
	uint64_t len = 0;
	while (len < 64 * MiB && t_pattern(14, len) && hm_write(mm, a + len, &len, 8) == 0)
		len += 4096;
	CHECK(len < 64 * MiB);
	CHECK_EQ(hm_madvise(mm, a, 64 * MiB, MADV_HUGEPAGE), 0);
	STEP(sys);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_COLLAPSE), -ENOMEM);
	CHECK(t_stat(sys, "thp_collapse_alloc_failed") >= 1);
	CHECK_EQ(query(mm, a).size, 4096);
	for (uint64_t off = 0; off < len; off += 4096)
		if (t_peek(mm, a + off) != off)
			break;
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* khugepaged makes a 1 GiB page of 512 2 MiB ones where 1 GiB pages may
 * go, 2 MiB per 512 pages of a pass's budget: a pass of 4096 pages looks
 * at 8 of them (it took all 512 at once, and so ran for seconds), and the
 * PUD leaf comes with the last. */
static void pud_khugepaged(void)
{
	t_flags = 0;	/* 512 faults: the STEP()s check */
	struct hm_system *sys = t_system(3 * GiB, HM_THP_MADVISE, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t n = 0;

	t_flags = HM_CHECK;
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map(mm, GiB);
	for (uint64_t off = 0; off < GiB; off += 2 * MiB)	/* 2 MiB faults */
		t_poke(mm, a + off + 8, off);
	CHECK_EQ(hm_madvise(mm, a, GiB, MADV_HUGEPAGE), 0);	/* 1 GiB may go */
	CHECK_EQ(query(mm, a).size, 2 * MiB);
	STEP(sys);
	for (unsigned pass = 1; pass < 64; pass++) {
		CHECK_EQ(hm_khugepaged_scan(sys, 4096, &n), 0);
		if (t_stat(sys, "khugepaged_pages_scanned") != pass * 4096ull || n)
			break;
	}
	CHECK_EQ(t_stat(sys, "khugepaged_pages_scanned"), 63 * 4096);
	CHECK_EQ(query(mm, a).size, 2 * MiB);
	CHECK_EQ(hm_khugepaged_scan(sys, 4096, &n), 0);
	STEP(sys);
	CHECK_EQ(n, 1);
	CHECK_EQ(t_stat(sys, "khugepaged_pages_scanned"), GiB >> 12);
	CHECK_EQ(query(mm, a).size, GiB);
	CHECK_EQ(t_stat(sys, "thp_collapse_pud"), 1);
	CHECK_EQ(t_stat(sys, "khugepaged_pages_collapsed"), 1);
	unsigned long bad = 0;
	for (uint64_t off = 0; off < GiB; off += 2 * MiB)
		bad += t_peek(mm, a + off + 8) != off;
	CHECK_EQ(bad, 0);
	hm_mm_destroy(mm);
	hm_drain(sys);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 0);
	hm_system_destroy(sys);
}

/* THP "always": khugepaged works on every VMA but MADV_NOHUGEPAGE ones. */
static void always(void)
{
	struct hm_system *sys = t_system(256 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t n = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map(mm, 2 * MiB), b = map(mm, 2 * MiB);
	CHECK_EQ(fill(mm, a, 2 * MiB, 17), 0);
	CHECK_EQ(fill(mm, b, 2 * MiB, 18), 0);
	CHECK_EQ(hm_madvise(mm, a, 4096, MADV_DONTNEED), 0);	/* PTE-mapped now */
	CHECK_EQ(hm_madvise(mm, b, 4096, MADV_DONTNEED), 0);
	CHECK_EQ(hm_madvise(mm, b, 2 * MiB, MADV_NOHUGEPAGE), 0);
	STEP(sys);
	CHECK_EQ(hm_khugepaged_scan(sys, 4096, &n), 0);
	STEP(sys);
	CHECK_EQ(n, 1);
	CHECK_EQ(query(mm, a).size, 2 * MiB);
	CHECK_EQ(query(mm, b + 4096).size, 4096);
	CHECK_EQ(wrong(mm, a, 2 * MiB, 17, a, 4096), 0);
	CHECK_EQ(wrong(mm, b, 2 * MiB, 18, b, 4096), 0);
	/* Only at a, round and round until the pass had its 4096 pages. */
	CHECK_EQ(t_stat(sys, "khugepaged_pages_scanned"), 4096);
	CHECK_EQ(t_stat(sys, "khugepaged_full_scans"), 7);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void *destroy_thread(void *sys)
{
	hm_system_destroy(sys);
	return NULL;
}

/* HM_KHUGEPAGED: pieces collapse with no call; destroy stops the thread. */
static void thread(void)
{
	struct hm_config cfg;

	t_config(&cfg, 256 * MiB, HM_THP_MADVISE, HM_THP_MADVISE, HM_DEPOSIT_EAGER);
	cfg.flags = HM_KHUGEPAGED;
	struct hm_system *sys = t_system_cfg(&cfg);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map(mm, 4 * MiB);
	fill_small(mm, a, 4 * MiB, 15);
	for (int i = 0; i < 5000 && t_stat(sys, "nr_anon_pmd") < 2; i++)
		nanosleep(&(struct timespec){ .tv_nsec = 2000000 }, NULL);
	CHECK_EQ(query(mm, a).size, 2 * MiB);
	CHECK_EQ(query(mm, a + 2 * MiB).size, 2 * MiB);
	CHECK_EQ(wrong(mm, a, 4 * MiB, 15, 0, 0), 0);
	CHECK(t_stat(sys, "khugepaged_full_scans") >= 1);
	/* Address spaces come and go under it. */
	for (int i = 0; i < 20; i++) {
		struct hm_mm *m2;

		REQUIRE(hm_mm_create(sys, &m2) == 0);
		uint64_t b = map(m2, 2 * MiB);
		fill_small(m2, b, 64 * KiB, 16);
		hm_mm_destroy(m2);
	}
	STEP(sys);
	hm_mm_destroy(mm);
	/* Destroy stops the thread (and returns: a thread left running
	 * would use the freed system). */
	pthread_t d;
	struct timespec ts;
	pthread_create(&d, NULL, destroy_thread, sys);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	CHECK_EQ(pthread_timedjoin_np(d, NULL, &ts), 0);
}

T_MAIN(T(pte_mapped_eager), T(pte_mapped_lazy), T(refold_eager), T(refold_lazy), T(partial_dontneed),
       T(max_ptes_none), T(swapped), T(shared), T(refold_shared), T(pud_eager), T(pud_lazy), T(pud_khugepaged), T(bad_input),
       T(no_memory), T(always), T(thread))
