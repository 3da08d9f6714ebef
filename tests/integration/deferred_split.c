/* SPDX-License-Identifier: MIT */
/*
 * Deferred split and the underused-THP shrinker, through the public API and
 * the counters: a huge page partly unmapped is queued
 * (thp_deferred_split_page) and split under memory pressure
 * (thp_split_page), freeing its unmapped parts and keeping every byte of
 * the rest; a PTE-mapped 2 MiB page with more zero-filled pages than
 * khugepaged_max_ptes_none is split and those pages dropped
 * (thp_underused_split_page). Pressure is an allocation that finds memory
 * full, or hm__thp_shrink (what hm_reclaim starts with). hm_check runs
 * after every step.
 */
#include "harness.h"
#include "hooks.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define PG 4096ull
#define HM_PTRS_TEST 512u

static struct hm_system *make_system(uint64_t phys, int pud, unsigned max_ptes_none, unsigned flags)
{
	struct hm_config cfg;

	t_config(&cfg, phys, pud, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	cfg.flags = flags;
	cfg.khugepaged_max_ptes_none = max_ptes_none;
	return t_system_cfg(&cfg);
}

/* A 2 MiB page, faulted in whole, every 4 KiB page holding its pattern. */
static uint64_t map_2m(struct hm_system *sys, struct hm_mm *mm, uint64_t seed)
{
	uint64_t a = 0;
	struct hm_mapping m;

	CHECK_EQ(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a), 0);
	CHECK_EQ(t_fill(mm, a, 2 * MiB, seed), 0);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.size, 2 * MiB);
	STEP(sys);
	return a;
}

/* Pages of [a, a + len) that do not hold t_fill's pattern, skipping those
 * with @skip[i] set. */
static unsigned long wrong_pages(struct hm_mm *mm, uint64_t a, uint64_t len, uint64_t seed, const bool *skip)
{
	unsigned long bad = 0;

	for (uint64_t i = 0; i < len / PG; i++) {
		uint64_t v = 0, w = 0;

		if (skip && skip[i])
			continue;
		bad += hm_read(mm, a + i * PG, &v, 8) || hm_read(mm, a + i * PG + 4088, &w, 8) ||
		       v != t_pattern(seed, i) || w != v;
	}
	return bad;
}

static bool page_reads_zero(struct hm_mm *mm, uint64_t va)
{
	static uint8_t buf[PG];

	if (hm_read(mm, va, buf, PG))
		return false;
	for (unsigned i = 0; i < PG; i++)
		if (buf[i])
			return false;
	return true;
}

/*
 * The scenario: 4 KiB unmapped out of a 2 MiB page is queued, the
 * page keeps its 512 frames; pressure splits it and frees the one unmapped.
 */
static void munmap_4k(void)
{
	struct hm_system *sys = make_system(64 * MiB, HM_THP_NEVER, 511, HM_CHECK);
	struct hm_mm *mm;
	bool hole[512] = { false };

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	hm_drain(sys);
	uint64_t free0 = t_free_frames(sys);
	uint64_t a = map_2m(sys, mm, 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 512);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 0);

	CHECK_EQ(hm_munmap(mm, a + 5 * PG, PG), 0);
	hole[5] = true;
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 512);
	CHECK_EQ(t_stat(sys, "thp_split_page"), 0);
	/* Once per folio: a second hole does not queue it again. */
	CHECK_EQ(hm_munmap(mm, a + 300 * PG, PG), 0);
	hole[300] = true;
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 512);

	uint64_t before = t_stat(sys, "nr_free_pages");
	CHECK_EQ(hm__thp_shrink(sys, 1), 2);	/* the split frees every unmapped part */
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 510);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), before + 2);
	CHECK_EQ(wrong_pages(mm, a, 2 * MiB, 1, hole), 0);
	CHECK_EQ(hm_read(mm, a + 5 * PG, &before, 8), -EFAULT);
	/* Nothing is left on the queue. */
	CHECK_EQ(hm__thp_shrink(sys, 1), 0);
	CHECK_EQ(t_stat(sys, "thp_split_page"), 1);

	/* The pages are 4 KiB folios now: writable in place, each freed alone. */
	struct hm_mapping m;
	CHECK_EQ(hm_query(mm, a + 7 * PG, &m), 0);
	CHECK_EQ(m.size, PG);
	CHECK_EQ(m.mapcount, 1);
	CHECK(m.exclusive);
	t_poke(mm, a + 7 * PG, 77);
	CHECK_EQ(t_stat(sys, "cow_copy"), 0);
	CHECK_EQ(hm_munmap(mm, a + 8 * PG, PG), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 509);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 1);
	CHECK_EQ(t_peek(mm, a + 7 * PG), 77);

	hm_mm_destroy(mm);
	hm_drain(sys);
	STEP(sys);
	CHECK_EQ(t_free_frames(sys), free0 + 1);	/* the root table */
	hm_system_destroy(sys);
}

/*
 * Real pressure: with a partly unmapped 2 MiB page queued, fault 4 KiB
 * pages in until memory is full. The allocation that finds nothing free
 * splits the queued page first and uses what it freed.
 */
static void pressure_by_allocation(void)
{
	struct hm_system *sys = make_system(8 * MiB, HM_THP_NEVER, 511, 0);
	struct hm_mm *mm;
	uint64_t b;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_2m(sys, mm, 2);
	CHECK_EQ(hm_munmap(mm, a + 100 * PG, 3 * PG), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 1);
	CHECK_EQ(hm_mmap(mm, 0, 8 * MiB, RW, PA, &b), 0);
	CHECK_EQ(hm_madvise(mm, b, 8 * MiB, MADV_NOHUGEPAGE), 0);
	uint64_t n = 0;
	int r = 0;

	while (n < 2048 && !(r = hm_write(mm, b + n * PG, &n, 8)))
		n++;
	CHECK_EQ(r, -ENOMEM);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_split_page"), 1);
	/* Every frame is in use now: the three unmapped ones went to faults. */
	hm_drain(sys);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), 0);
	bool hole[512] = { false };
	hole[100] = hole[101] = hole[102] = true;
	CHECK_EQ(wrong_pages(mm, a, 2 * MiB, 2, hole), 0);
	for (uint64_t i = 0; i < n; i += 97)
		CHECK_EQ(t_peek(mm, b + i * PG), i);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

/* MADV_DONTNEED of half a 2 MiB page: the half goes at the split, and
 * reads as zeros (through fresh faults) before and after it. */
static void dontneed_half(void)
{
	struct hm_system *sys = make_system(64 * MiB, HM_THP_NEVER, 511, HM_CHECK);
	struct hm_mm *mm;
	bool hole[512];

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = map_2m(sys, mm, 3);
	CHECK_EQ(hm_madvise(mm, a + MiB, MiB, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 512);
	CHECK_EQ(hm__thp_shrink(sys, 1), 256);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 256);
	for (unsigned i = 0; i < 512; i++)
		hole[i] = i >= 256;
	CHECK_EQ(wrong_pages(mm, a, 2 * MiB, 3, hole), 0);
	CHECK(page_reads_zero(mm, a + MiB));
	CHECK(page_reads_zero(mm, a + 2 * MiB - PG));
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 258);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* A queued page that is then unmapped whole leaves the queue and is freed
 * as any other: nothing leaks, nothing is split. */
static void partial_then_full_unmap(void)
{
	struct hm_system *sys = make_system(64 * MiB, HM_THP_NEVER, 511, HM_CHECK);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	hm_drain(sys);
	uint64_t free0 = t_free_frames(sys);
	uint64_t a = map_2m(sys, mm, 4);
	CHECK_EQ(hm_munmap(mm, a + 2 * PG, PG), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 1);
	CHECK_EQ(hm_munmap(mm, a, 2 * MiB), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 0);
	CHECK_EQ(hm__thp_shrink(sys, 512), 0);
	CHECK_EQ(t_stat(sys, "thp_split_page"), 0);
	/* And again, freed by the address space going away. */
	a = map_2m(sys, mm, 5);
	CHECK_EQ(hm_madvise(mm, a + 64 * PG, 64 * PG, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 2);
	hm_mm_destroy(mm);
	hm_drain(sys);
	STEP(sys);
	CHECK_EQ(t_free_frames(sys), free0 + 1);	/* the root table */
	CHECK_EQ(t_stat(sys, "thp_split_page"), 0);
	hm_system_destroy(sys);
}

/*
 * Shared after fork. A page unmapped by one address space is still mapped
 * by the other: nothing to free, nothing queued. Once both unmapped it, the
 * page is queued, and the split keeps both address spaces' data and their
 * copy-on-write isolation.
 */
static void fork_shared(void)
{
	struct hm_system *sys = make_system(64 * MiB, HM_THP_NEVER, 511, HM_CHECK);
	struct hm_mm *parent, *child;
	struct hm_mapping m;
	bool hole[512] = { false };

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	uint64_t a = map_2m(sys, parent, 6);
	REQUIRE(hm_fork(parent, &child) == 0);
	STEP(sys);
	CHECK_EQ(hm_munmap(parent, a + 9 * PG, PG), 0);	/* the child maps it whole */
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 0);
	CHECK_EQ(hm__split(child, a, 0), 0);		/* the child by PTEs too */
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 0);
	CHECK_EQ(hm_munmap(child, a + 9 * PG, PG), 0);	/* now nobody maps it */
	hole[9] = true;
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 1);
	/* The child's unmap pinned the page until its grace period: no split
	 * before that. */
	hm_drain(sys);
	CHECK_EQ(hm__thp_shrink(sys, 1), 1);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 511);
	CHECK_EQ(wrong_pages(parent, a, 2 * MiB, 6, hole), 0);
	CHECK_EQ(wrong_pages(child, a, 2 * MiB, 6, hole), 0);
	CHECK_EQ(hm_query(parent, a + 10 * PG, &m), 0);
	CHECK_EQ(m.mapcount, 2);
	CHECK(!m.exclusive);

	/* Copy-on-write both ways, on the new 4 KiB folios. */
	t_poke(child, a + 10 * PG, 0xc);
	t_poke(parent, a + 11 * PG, 0xb0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "cow_copy"), 2);
	CHECK_EQ(t_peek(parent, a + 10 * PG), t_pattern(6, 10));
	CHECK_EQ(t_peek(child, a + 10 * PG), 0xc);
	CHECK_EQ(t_peek(child, a + 11 * PG), t_pattern(6, 11));
	CHECK_EQ(t_peek(parent, a + 11 * PG), 0xb0);
	/* The one left mapping a page reuses it in place. */
	CHECK_EQ(hm_munmap(child, a + 12 * PG, PG), 0);
	t_poke(parent, a + 12 * PG, 0x12);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "cow_reuse"), 1);
	CHECK_EQ(t_stat(sys, "cow_copy"), 2);
	hm_mm_destroy(child);
	STEP(sys);
	hole[10] = hole[11] = hole[12] = true;
	CHECK_EQ(wrong_pages(parent, a, 2 * MiB, 6, hole), 0);
	hm_mm_destroy(parent);
	hm_system_destroy(sys);
}

/*
 * An unmap that takes a PTE-mapped huge page whole does not queue it, even
 * though page by page it is partly mapped on the way (the kernel decides
 * per batch of PTEs too). One that leaves it mapped elsewhere, with pages
 * that nobody maps any more, does.
 */
static void whole_unmap_not_queued(void)
{
	struct hm_system *sys = make_system(64 * MiB, HM_THP_NEVER, 511, HM_CHECK);
	struct hm_mm *parent, *child;
	bool hole[512] = { false };

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	uint64_t a = map_2m(sys, parent, 10);
	CHECK_EQ(hm__split(parent, a, 0), 0);
	CHECK_EQ(hm_munmap(parent, a, 2 * MiB), 0);
	STEP(sys);
	a = map_2m(sys, parent, 11);
	CHECK_EQ(hm__split(parent, a, 0), 0);
	CHECK_EQ(hm_madvise(parent, a, 2 * MiB, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 0);

	CHECK_EQ(hm_munmap(parent, a, 2 * MiB), 0);	/* its PTE table stays */
	a = map_2m(sys, parent, 12);
	CHECK_EQ(hm__split(parent, a, 0), 0);
	REQUIRE(hm_fork(parent, &child) == 0);
	CHECK_EQ(hm_munmap(child, a, 10 * PG), 0);	/* the parent maps them */
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 0);
	CHECK_EQ(hm_munmap(parent, a, 2 * MiB), 0);	/* now nobody does */
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 1);
	hm_drain(sys);		/* the unmaps' pins */
	CHECK_EQ(hm__thp_shrink(sys, 1), 10);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 502);
	for (int i = 0; i < 10; i++)
		hole[i] = true;
	CHECK_EQ(wrong_pages(child, a, 2 * MiB, 12, hole), 0);
	hm_mm_destroy(child);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 0);
	hm_mm_destroy(parent);
	hm_system_destroy(sys);
}

/*
 * A 1 GiB page with 4 KiB unmapped: the split makes 512 folios of 2 MiB,
 * the one with the hole is queued and split in turn; the other 511 stay
 * 2 MiB pages mapped by their PMD leaves.
 */
static void one_gib(void)
{
	struct hm_system *sys = make_system(3 * GiB, HM_THP_MADVISE, 511, HM_CHECK);
	struct hm_mm *mm;
	struct hm_mapping m;
	uint64_t a;
	bool hole[512] = { false };

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	hm_drain(sys);
	uint64_t free0 = t_free_frames(sys);
	CHECK_EQ(hm_mmap(mm, 0, GiB, RW, PA, &a), 0);
	CHECK_EQ(hm_madvise(mm, a, GiB, MADV_HUGEPAGE), 0);
	for (uint64_t off = 0; off < GiB; off += 2 * MiB)	/* one page of every chunk */
		t_poke(mm, a + off + 8 * PG, t_pattern(7, off));
	CHECK_EQ(t_fill(mm, a + 3 * 2 * MiB, 2 * MiB, 8), 0);	/* all of chunk 3 */
	CHECK_EQ(hm_query(mm, a, &m), 0);
	REQUIRE(m.size == GiB);
	STEP(sys);
	uint64_t chunk3 = a + 3 * 2 * MiB;

	CHECK_EQ(hm_munmap(mm, chunk3 + 20 * PG, PG), 0);
	hole[20] = true;
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 262144);
	CHECK_EQ(hm__thp_shrink(sys, 1), 1);
	STEP(sys);
	/* 1 GiB -> 2 MiB, then the partly mapped 2 MiB -> 4 KiB. */
	CHECK_EQ(t_stat(sys, "thp_split_page"), 2);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 2);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 262143);
	CHECK_EQ(wrong_pages(mm, chunk3, 2 * MiB, 8, hole), 0);
	for (uint64_t off = 0; off < GiB; off += 2 * MiB)
		if (off != 3 * 2 * MiB)
			CHECK_EQ(t_peek(mm, a + off + 8 * PG), t_pattern(7, off));
	CHECK_EQ(hm_query(mm, a + 5 * 2 * MiB, &m), 0);
	CHECK_EQ(m.size, 2 * MiB);
	CHECK_EQ(m.mapcount, 1);
	CHECK(m.exclusive);
	CHECK_EQ(hm_query(mm, chunk3, &m), 0);
	CHECK_EQ(m.size, PG);

	/* A new 2 MiB folio partly unmapped is queued and split like any. */
	CHECK_EQ(hm_madvise(mm, a + 9 * 2 * MiB, 3 * PG, MADV_DONTNEED), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 3);
	CHECK_EQ(hm__thp_shrink(sys, 1), 3);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_split_page"), 3);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 262140);
	CHECK_EQ(t_peek(mm, a + 9 * 2 * MiB + 8 * PG), t_pattern(7, 9 * 2 * MiB));
	CHECK(page_reads_zero(mm, a + 9 * 2 * MiB));
	/* A 2 MiB folio unmapped whole is freed whole. */
	CHECK_EQ(hm_munmap(mm, a + 10 * 2 * MiB, 2 * MiB), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 262140 + 1 - 512);
	hm_mm_destroy(mm);
	hm_drain(sys);
	STEP(sys);
	CHECK_EQ(t_free_frames(sys), free0 + 1);
	hm_system_destroy(sys);
}

/*
 * The underused shrinker: a 2 MiB page with @written pages written, mapped
 * by PTEs, is split under pressure when more than @max of its pages are
 * zero-filled; those are freed and read as zero again, the written ones
 * keep their data (and their write permission).
 */
static void underused(unsigned max, unsigned written)
{
	struct hm_system *sys = make_system(64 * MiB, HM_THP_NEVER, max, HM_CHECK);
	struct hm_mm *mm;
	struct hm_mapping m;
	uint64_t a;
	bool split = HM_PTRS_TEST - written > max;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	CHECK_EQ(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a), 0);
	for (unsigned i = 0; i < written; i++)
		t_poke(mm, a + (3 + 2 * i) * PG + 16, t_pattern(9, i));
	CHECK_EQ(hm_query(mm, a, &m), 0);
	REQUIRE(m.size == 2 * MiB);
	/* Mapped whole by its PMD leaf, it is no candidate. */
	CHECK_EQ(hm__thp_shrink(sys, 512), 0);
	CHECK_EQ(hm__split(mm, a, 0), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 0);	/* not partly mapped */
	uint64_t freed = hm__thp_shrink(sys, 512);
	STEP(sys);
	CHECK_EQ(freed, split ? HM_PTRS_TEST - written : 0);
	CHECK_EQ(t_stat(sys, "thp_underused_split_page"), split);
	CHECK_EQ(t_stat(sys, "thp_split_page"), split);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), split ? written : 512);
	for (unsigned i = 0; i < written; i++) {
		CHECK_EQ(t_peek(mm, a + (3 + 2 * i) * PG + 16), t_pattern(9, i));
		CHECK_EQ(hm_query(mm, a + (3 + 2 * i) * PG, &m), 0);
		CHECK_EQ(m.prot, RW);
	}
	t_poke(mm, a + 3 * PG, 1);	/* writable in place */
	CHECK_EQ(t_stat(sys, "cow_reuse") + t_stat(sys, "cow_copy"), 0);
	CHECK(page_reads_zero(mm, a + 4 * PG));
	CHECK(page_reads_zero(mm, a + 2 * MiB - PG));
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), split ? written + 2 : 512);
	/* Checked once, a folio that was not underused is not looked at again. */
	CHECK_EQ(hm__thp_shrink(sys, 512), 0);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

/* A 2 MiB page that holds only zeros, mapped by PTEs: the shrinker drops
 * all 512, which leaves their PTE table empty, and it goes too
 * (pgtable_reclaimed). */
static void underused_all_zero(void)
{
	struct hm_system *sys = make_system(64 * MiB, HM_THP_NEVER, 0, HM_CHECK);
	struct hm_mm *mm;
	struct hm_mapping m;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	CHECK_EQ(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a), 0);
	t_poke(mm, a + 16, 0);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	REQUIRE(m.size == 2 * MiB);
	CHECK_EQ(hm__split(mm, a, 0), 0);
	STEP(sys);
	uint64_t tables = t_stat(sys, "pgtable_bytes");
	CHECK_EQ(hm__thp_shrink(sys, 512), 512);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_underused_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 0);
	CHECK(t_stat(sys, "pgtable_reclaimed") >= 1);
	CHECK(t_stat(sys, "pgtable_bytes") <= tables - 4096);
	CHECK(page_reads_zero(mm, a + 5 * PG));
	t_poke(mm, a + 7 * PG, 0x77);
	CHECK_EQ(t_peek(mm, a + 7 * PG), 0x77);
	STEP(sys);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

static void underused_max_0(void) { underused(0, 1); }
static void underused_max_255(void) { underused(255, 1); }
static void underused_max_510(void) { underused(510, 1); }
static void underused_max_511(void) { underused(511, 1); }		/* off */
static void underused_not_enough(void) { underused(510, 2); }		/* 510 zero: not > 510 */
static void underused_some_written(void) { underused(255, 200); }

/* Underused and shared after fork: the zero pages go from both address
 * spaces, the written one stays shared, copy-on-write as before. */
static void underused_fork(void)
{
	struct hm_system *sys = make_system(64 * MiB, HM_THP_NEVER, 0, HM_CHECK);
	struct hm_mm *parent, *child;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	CHECK_EQ(hm_mmap(parent, 0, 2 * MiB, RW, PA, &a), 0);
	t_poke(parent, a + 3 * PG, 0x33);
	CHECK_EQ(hm__split(parent, a, 0), 0);
	REQUIRE(hm_fork(parent, &child) == 0);
	STEP(sys);
	CHECK_EQ(hm__thp_shrink(sys, 1), 511);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_underused_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 1);
	CHECK_EQ(t_peek(child, a + 3 * PG), 0x33);
	t_poke(child, a + 3 * PG, 0x44);
	CHECK_EQ(t_peek(parent, a + 3 * PG), 0x33);
	CHECK(page_reads_zero(parent, a + 5 * PG));
	CHECK(page_reads_zero(child, a + 5 * PG));
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(parent);
	STEP(sys);
	hm_system_destroy(sys);
}

/*
 * The underused shrinker under real pressure: one address space's
 * allocations fill memory, and the zero-filled pages of another's
 * PTE-mapped 2 MiB page are what they get. (A fault's first pass does not
 * wait for the grace periods the shrinker needs: it retries without its
 * mmap_lock first, as for any memory on its way back.)
 */
static void underused_by_allocation(void)
{
	struct hm_system *sys = make_system(8 * MiB, HM_THP_NEVER, 0, 0);
	struct hm_mm *x, *y;
	struct hm_mapping m;
	uint64_t a, b;

	REQUIRE(hm_mm_create(sys, &x) == 0);
	REQUIRE(hm_mm_create(sys, &y) == 0);
	CHECK_EQ(hm_mmap(x, 0, 2 * MiB, RW, PA, &a), 0);
	t_poke(x, a + 3 * PG, 0x33);
	CHECK_EQ(hm__split(x, a, 0), 0);
	STEP(sys);
	CHECK_EQ(hm_mmap(y, 0, 8 * MiB, RW, PA, &b), 0);
	CHECK_EQ(hm_madvise(y, b, 8 * MiB, MADV_NOHUGEPAGE), 0);
	uint64_t n = 0;
	int r = 0;

	while (n < 2048 && !(r = hm_write(y, b + n * PG, &n, 8)))
		n++;
	CHECK_EQ(r, -ENOMEM);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_underused_split_page"), 1);
	CHECK_EQ(t_peek(x, a + 3 * PG), 0x33);
	CHECK_EQ(hm_query(x, a + 4 * PG, &m), 0);
	CHECK_EQ(m.size, 0);
	for (uint64_t i = 0; i < n; i += 97)
		CHECK_EQ(t_peek(y, b + i * PG), i);
	hm_mm_destroy(y);
	CHECK(page_reads_zero(x, a + 4 * PG));
	STEP(sys);
	hm_mm_destroy(x);
	STEP(sys);
	hm_system_destroy(sys);
}

T_MAIN(T(munmap_4k), T(pressure_by_allocation), T(dontneed_half), T(partial_then_full_unmap),
       T(fork_shared), T(whole_unmap_not_queued), T(one_gib), T(underused_max_0), T(underused_max_255), T(underused_max_510),
       T(underused_max_511), T(underused_not_enough), T(underused_some_written), T(underused_fork),
       T(underused_by_allocation), T(underused_all_zero))
