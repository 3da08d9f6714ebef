/* SPDX-License-Identifier: MIT */
/*
 * Swap (issue 8): pageout and swap-in of 4 KiB, 2 MiB and 1 GiB pages,
 * the swap cache, fork sharing swap entries, reclaim through the reverse
 * map, direct reclaim when memory is overcommitted, swap full, and a swap
 * file damaged underneath. hm_check after every step.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static uint64_t stat_of(struct hm_system *sys, const char *n) { return t_stat(sys, n); }

/* Pages of [a + off, a + off + len) not holding t_fill(a, ..., seed)'s
 * pattern (numbered from @a). */
static unsigned long wrong_at(struct hm_mm *mm, uint64_t a, uint64_t off, uint64_t len, uint64_t seed)
{
	unsigned long bad = 0;

	for (uint64_t o = off; o < off + len; o += 4096) {
		uint64_t v = 0, w = 0;

		bad += hm_read(mm, a + o, &v, 8) || hm_read(mm, a + o + 4088, &w, 8) ||
		       v != t_pattern(seed, o / 4096) || w != v;
	}
	return bad;
}

static bool swapped(struct hm_mm *mm, uint64_t va, uint64_t size)
{
	struct hm_mapping m;

	return hm_query(mm, va, &m) == 0 && m.swapped && m.size == size;
}

/* 4 KiB pages out and back, then out again clean (no write). */
static void pageout_4k(void)
{
	struct hm_system *sys = t_system_swap(64 * MiB, 64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, len = 4 * MiB, total = stat_of(sys, "swap_total_pages");

	CHECK_EQ(total, 64 * MiB / 4096);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), total);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, len, 1), 0);
	STEP(sys);
	CHECK_EQ(hm_madvise(mm, a, len, MADV_PAGEOUT), 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "pswpout"), 1024);
	CHECK_EQ(stat_of(sys, "nr_anon_pages"), 0);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), total - 1024);
	CHECK(swapped(mm, a, 4096));
	CHECK(swapped(mm, a + len - 4096, 4096));
	CHECK_EQ(t_pages_wrong(mm, a, len, 1, 0, 0), 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "pswpin"), 1024);
	CHECK_EQ(stat_of(sys, "nr_anon_pages"), 1024);
	/* Read, not written: the slots were kept, the second pageout writes
	 * nothing. */
	CHECK_EQ(stat_of(sys, "swap_free_pages"), total - 1024);
	CHECK_EQ(hm_madvise(mm, a, len, MADV_PAGEOUT), 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "pswpout"), 1024);
	CHECK_EQ(stat_of(sys, "pswpout_clean"), 1024);
	/* Written after swap-in: out again with a write, data intact. */
	CHECK_EQ(t_fill(mm, a, len / 2, 2), 0);
	CHECK_EQ(hm_madvise(mm, a, len, MADV_PAGEOUT), 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "pswpout"), 1024 + 512);
	CHECK_EQ(t_pages_wrong(mm, a, len / 2, 2, 0, 0), 0);
	CHECK_EQ(wrong_at(mm, a, len / 2, len / 2, 1), 0);
	/* Unmapping swapped pages frees their slots. */
	CHECK_EQ(hm_madvise(mm, a, len, MADV_PAGEOUT), 0);
	CHECK_EQ(hm_munmap(mm, a, len), 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), total);
	CHECK_EQ(stat_of(sys, "nr_swap_entries"), 0);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* A 2 MiB page goes out whole into a cluster and comes back whole. */
static void pageout_2m(void)
{
	struct hm_system *sys = t_system_swap(64 * MiB, 64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, len = 8 * MiB, total = stat_of(sys, "swap_total_pages");

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, len, 3), 0);
	CHECK_EQ(stat_of(sys, "nr_anon_pmd"), 4);
	CHECK_EQ(hm_madvise(mm, a, len, MADV_PAGEOUT), 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "thp_swpout"), 4);
	CHECK_EQ(stat_of(sys, "thp_swpout_fallback"), 0);
	CHECK_EQ(stat_of(sys, "pswpout"), 2048);
	CHECK(swapped(mm, a + 4096, 2 * MiB));
	CHECK_EQ(stat_of(sys, "pgtable_deposited"), 4);	/* kept for the swap-in */
	CHECK_EQ(t_pages_wrong(mm, a, len, 3, 0, 0), 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "thp_swpin"), 4);
	CHECK_EQ(stat_of(sys, "nr_anon_pmd"), 4);
	/* Out again clean, then part of one unmapped: the PMD swap entry is
	 * split, the unmapped slots freed. */
	CHECK_EQ(hm_madvise(mm, a, len, MADV_PAGEOUT), 0);
	CHECK_EQ(stat_of(sys, "pswpout_clean"), 2048);
	CHECK_EQ(hm_munmap(mm, a + 4096, 4096), 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), total - 2047);
	CHECK(swapped(mm, a, 4096));
	/* Where no 2 MiB page may go back, the swap-in is 4 KiB. */
	CHECK_EQ(hm_madvise(mm, a + 2 * MiB, 2 * MiB, MADV_NOHUGEPAGE), 0);
	CHECK_EQ(t_peek(mm, a + 2 * MiB + 8192), t_pattern(3, 512 + 2));
	CHECK(swapped(mm, a + 2 * MiB, 4096));
	STEP(sys);
	CHECK_EQ(wrong_at(mm, a, 2 * MiB, 6 * MiB, 3), 0);
	hm_mm_destroy(mm);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), total);
	hm_system_destroy(sys);
}

/* Swap entries shared after fork: in both directions, COW after. */
static void fork_shares_swap(void)
{
	struct hm_system *sys = t_system_swap(64 * MiB, 64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm, *child;
	uint64_t a, len = 1 * MiB, total = stat_of(sys, "swap_total_pages");

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, len, 4), 0);
	CHECK_EQ(hm_madvise(mm, a, len, MADV_PAGEOUT), 0);
	REQUIRE(hm_fork(mm, &child) == 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "nr_swap_entries"), 2 * 256);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), total - 256);
	/* The child writes half, the parent reads all: its own data. */
	CHECK_EQ(t_fill(child, a, len / 2, 5), 0);
	CHECK_EQ(t_pages_wrong(mm, a, len, 4, 0, 0), 0);
	CHECK_EQ(t_pages_wrong(child, a, len / 2, 5, 0, 0), 0);
	CHECK_EQ(wrong_at(child, a, len / 2, len / 2, 4), 0);
	STEP(sys);
	/* After fork, pages shared: MADV_PAGEOUT leaves them, hm_reclaim
	 * takes them from both through the reverse map. */
	hm_mm_destroy(child);
	REQUIRE(hm_fork(mm, &child) == 0);
	CHECK_EQ(hm_madvise(child, a, len, MADV_PAGEOUT), 0);
	CHECK_EQ(stat_of(sys, "nr_swap_entries"), 0);
	uint64_t freed = 0, out0 = stat_of(sys, "pswpout");
	CHECK_EQ(hm_reclaim(sys, 64 * MiB, &freed), 0);
	STEP(sys);
	CHECK(freed >= len);
	CHECK(swapped(mm, a, 4096) && swapped(child, a, 4096));
	CHECK(stat_of(sys, "pswpout") - out0 <= 256);	/* clean ones not written again */
	CHECK_EQ(t_pages_wrong(child, a, len, 4, 0, 0), 0);
	t_poke(mm, a, 77);
	CHECK_EQ(t_peek(child, a), t_pattern(4, 0));
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), total);
	hm_system_destroy(sys);
}

/* Twice physical memory written: direct reclaim makes room. Then forked,
 * and read page by page in parent and child in turn: pages shared after
 * fork stay shared through swap (the child maps what the parent swapped
 * in from the swap cache), or swap (three times memory) would run out. */
static void overcommit(void)
{
	struct hm_system *sys = t_system_swap(32 * MiB, 96 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm, *child;
	uint64_t a, len = 64 * MiB, total = stat_of(sys, "swap_total_pages"), free0;

	hm_drain(sys);
	free0 = stat_of(sys, "nr_free_pages");
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, len, 6), 0);
	STEP(sys);
	CHECK(stat_of(sys, "direct_reclaim") > 0);
	CHECK(stat_of(sys, "pswpout") > 0);
	CHECK_EQ(t_pages_wrong(mm, a, len, 6, 0, 0), 0);
	REQUIRE(hm_fork(mm, &child) == 0);
	unsigned long bad = 0;
	for (uint64_t off = 0; off < len; off += 4096) {
		uint64_t v = 0, w = 0;

		bad += hm_read(mm, a + off, &v, 8) || v != t_pattern(6, off / 4096);
		bad += hm_read(child, a + off, &w, 8) || w != t_pattern(6, off / 4096);
	}
	CHECK_EQ(bad, 0);
	CHECK(stat_of(sys, "swapin_cache_hit") > 0);
	STEP(sys);
	CHECK_EQ(t_fill(child, a, len / 2, 7), 0);
	STEP(sys);
	CHECK_EQ(t_pages_wrong(mm, a, len, 6, 0, 0), 0);
	CHECK_EQ(t_pages_wrong(child, a, len / 2, 7, 0, 0), 0);
	CHECK_EQ(wrong_at(child, a, len / 2, len / 2, 6), 0);
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_drain(sys);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), total);
	CHECK_EQ(stat_of(sys, "nr_free_pages"), free0);
	hm_system_destroy(sys);
}

/*
 * Twice memory written once, page by page, as hmbench-swap's direct
 * reclaim does: when memory first runs full, every folio on the lists was
 * accessed since it was mapped (young), so reclaim must go round them
 * (one look activates, aging clears, the next look swaps out) before one
 * can go. Faults that scanned 64 folios per page wanted, 8 times over,
 * gave up while swap was empty: -ENOMEM once memory held more than about
 * 8k young pages (48 MiB here; 32 MiB just got through).
 */
static void overcommit_written_once(void)
{
	const uint64_t phys = 48 * MiB, len = 2 * phys;
	struct hm_system *sys = t_system_swap(phys, 4 * phys, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, total = stat_of(sys, "swap_total_pages");

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	STEP(sys);
	CHECK_EQ(t_fill(mm, a, len, 11), 0);
	STEP(sys);
	CHECK(stat_of(sys, "direct_reclaim") > 0);
	CHECK(stat_of(sys, "pswpout") >= (len - phys) / 4096);
	CHECK_EQ(t_pages_wrong(mm, a, len, 11, 0, 0), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), total);
	hm_system_destroy(sys);
}

/* The same through hm_reclaim: with swap empty and nothing busy, a call
 * for one page after memory was written once frees some (it freed none:
 * its 128 looks all found pages young). */
static void reclaim_after_write_once(void)
{
	struct hm_system *sys = t_system_swap(8 * MiB, 8 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, len = 4 * MiB, freed = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, len, 12), 0);
	STEP(sys);
	CHECK_EQ(hm_reclaim(sys, 4096, &freed), 0);
	CHECK(freed >= 4096);
	CHECK(stat_of(sys, "pswpout") > 0);
	STEP(sys);
	CHECK_EQ(t_pages_wrong(mm, a, len, 12, 0, 0), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

/* Memory and swap both full: -ENOMEM, and everything written before stays
 * readable (a swap-in may use the frames kept back for it). */
static void swap_full_at(uint64_t phys, uint64_t swap)
{
	struct hm_system *sys = t_system_swap(phys, swap, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, len = 64 * MiB, off;
	int r = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	for (off = 0; off < len; off += 4096) {
		uint64_t v = t_pattern(8, off / 4096);

		if ((r = hm_write(mm, a + off, &v, 8)))
			break;
		if ((r = hm_write(mm, a + off + 4088, &v, 8)))
			break;
	}
	CHECK_EQ(r, -ENOMEM);
	CHECK(off > phys);			/* more than memory alone holds */
	CHECK_EQ(stat_of(sys, "swap_free_pages"), 0);
	STEP(sys);
	/* Pages written whole read back, twice over (swapping in and out),
	 * each at the first try: a frame a reclaim frees may be a lent table
	 * slot, which goes back to the table cache (found by a new user:
	 * every 32nd read failed once). */
	uint64_t whole = off;
	CHECK_EQ(wrong_at(mm, a, 0, whole, 8), 0);
	CHECK_EQ(wrong_at(mm, a, 0, whole, 8), 0);
	STEP(sys);
	/* Freeing swap lets the write go on. */
	CHECK_EQ(hm_munmap(mm, a, 2 * MiB), 0);
	uint64_t v = 1;
	CHECK_EQ(hm_write(mm, a + whole, &v, 8), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), stat_of(sys, "swap_total_pages"));
	hm_system_destroy(sys);
}

static void swap_full(void) { swap_full_at(8 * MiB, 4 * MiB); }
static void swap_full_16(void) { swap_full_at(16 * MiB, 16 * MiB); }

/* The swap file truncated underneath: exactly the pages whose slots are
 * gone read -EIO, the others are intact, and unmapping still works. */
static void damaged_file(void)
{
	struct hm_system *sys = t_system_swap(16 * MiB, 4 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, len = 16 * 4096, v;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, len, 9), 0);
	/* One page at a time, so that page i goes to slot i. */
	for (uint64_t i = 0; i < 16; i++)
		CHECK_EQ(hm_madvise(mm, a + i * 4096, 4096, MADV_PAGEOUT), 0);
	CHECK_EQ(stat_of(sys, "pswpout"), 16);
	REQUIRE(truncate(t_swap_path(), 8 * 4096) == 0);
	CHECK_EQ(wrong_at(mm, a, 0, 8 * 4096, 9), 0);
	for (uint64_t i = 8; i < 16; i++) {
		CHECK_EQ(hm_read(mm, a + i * 4096, &v, 8), -EIO);
		CHECK_EQ(hm_write(mm, a + i * 4096, &v, 8), -EIO);
		CHECK(swapped(mm, a + i * 4096, 4096));
	}
	CHECK_EQ(stat_of(sys, "swap_io_error"), 16);
	STEP(sys);
	CHECK_EQ(hm_munmap(mm, a, len), 0);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), stat_of(sys, "swap_total_pages"));
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* A swap file that cannot be had: a clear error, and no system. */
static void bad_swap_config(void)
{
	struct hm_config cfg;
	struct hm_system *sys = NULL;

	hm_config_default(&cfg);
	cfg.phys_bytes = 8 * MiB;
	cfg.swap_path = t_swap_path();
	cfg.swap_bytes = 4095;
	CHECK_EQ(hm_system_create(&cfg, &sys), -EINVAL);
	cfg.swap_bytes = 0;
	CHECK_EQ(hm_system_create(&cfg, &sys), -EINVAL);
	cfg.swap_bytes = 1 * MiB;
	cfg.swap_path = "/nonexistent-dir/swap";
	CHECK_EQ(hm_system_create(&cfg, &sys), -ENOENT);
	cfg.swap_path = "/tmp";
	CHECK_EQ(hm_system_create(&cfg, &sys), -EISDIR);
	CHECK(sys == NULL);
	/* A fresh file of exactly swap_bytes. */
	struct stat st;
	cfg.swap_path = t_swap_path();
	REQUIRE(hm_system_create(&cfg, &sys) == 0);
	CHECK(stat(t_swap_path(), &st) == 0 && st.st_size == (off_t)(1 * MiB));
	hm_system_destroy(sys);
	CHECK(stat(t_swap_path(), &st) == 0);	/* not removed */
}

/* A 1 GiB page: split to 2 MiB pages with the deposit, each into a
 * cluster, and back in as 2 MiB pages. */
static void pageout_1g(void)
{
	struct hm_system *sys = t_system_swap(1280 * MiB, 1 * GiB, HM_THP_ALWAYS, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, GiB, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, GiB, 10), 0);
	CHECK_EQ(stat_of(sys, "nr_anon_pud"), 1);
	CHECK_EQ(hm_madvise(mm, a, GiB, MADV_PAGEOUT), 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "thp_split_pud"), 1);
	CHECK_EQ(stat_of(sys, "split_alloc"), 0);
	CHECK_EQ(stat_of(sys, "thp_swpout"), 512);
	CHECK_EQ(stat_of(sys, "nr_anon_pages"), 0);
	CHECK(swapped(mm, a + 5 * MiB, 2 * MiB));
	CHECK_EQ(wrong_at(mm, a, 0, GiB, 10), 0);
	CHECK_EQ(stat_of(sys, "thp_swpin"), 512);
	STEP(sys);
	hm_mm_destroy(mm);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), stat_of(sys, "swap_total_pages"));
	hm_system_destroy(sys);
}

int hm__split(struct hm_mm *mm, uint64_t addr, unsigned level);

/* The kernel's cow.c cases with swap: copy-on-write after the pages went
 * out, the write in the parent or in the child, for 4 KiB pages and a
 * PTE-mapped 2 MiB page. */
static void cow_after_swapout(int pmd, bool parent_writes)
{
	struct hm_system *sys = t_system_swap(64 * MiB, 64 * MiB, HM_THP_NEVER, pmd, HM_DEPOSIT_EAGER);
	struct hm_mm *mm, *child;
	uint64_t a, len = 2 * MiB, freed;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, len, 11), 0);
	if (pmd != HM_THP_NEVER) {
		CHECK_EQ(hm__split(mm, a, 0), 0);	/* PTE-mapped THP */
		CHECK_EQ(stat_of(sys, "nr_anon_pmd"), 0);
	}
	REQUIRE(hm_fork(mm, &child) == 0);
	CHECK_EQ(hm_reclaim(sys, 64 * MiB, &freed), 0);
	CHECK(freed >= len);
	CHECK(swapped(mm, a, 4096) && swapped(child, a, 4096));
	STEP(sys);
	struct hm_mm *w = parent_writes ? mm : child, *r = parent_writes ? child : mm;
	t_poke(w, a + 4096, 0xabc);
	t_poke(w, a + len - 8, 0xdef);
	STEP(sys);
	CHECK_EQ(wrong_at(r, a, 0, len, 11), 0);
	CHECK_EQ(t_peek(w, a + 4096), 0xabc);
	CHECK_EQ(t_peek(w, a + len - 8), 0xdef);
	CHECK_EQ(wrong_at(w, a, 8192, len - 12288, 11), 0);
	/* And the other one writes after: both stay private. */
	t_poke(r, a + 4096, 0x123);
	CHECK_EQ(t_peek(w, a + 4096), 0xabc);
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), stat_of(sys, "swap_total_pages"));
	hm_system_destroy(sys);
}

static void cow_after_swapout_parent(void) { cow_after_swapout(HM_THP_NEVER, true); }
static void cow_after_swapout_child(void) { cow_after_swapout(HM_THP_NEVER, false); }
static void cow_after_swapout_thp_parent(void) { cow_after_swapout(HM_THP_ALWAYS, true); }
static void cow_after_swapout_thp_child(void) { cow_after_swapout(HM_THP_ALWAYS, false); }

/* Every page written can go, whatever is still in the per-CPU batches of
 * new pages on their way to the LRU lists: the scan's budget (three looks
 * per folio) counted only the folios on the lists, so with a batch nearly
 * full it ran out before the last pages of the inactive list went out
 * (flaky under load, when the writer moved between CPUs and left two
 * batches: 448 of 512 pages freed). 539 = 17 full batches of 30 and 29. */
static void reclaim_counts_batched(void)
{
	struct hm_system *sys = t_system_swap(64 * MiB, 64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, len = 539 * 4096, freed = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, len, 14), 0);
	/* No hm_check here: it drains the batches. */
	CHECK_EQ(hm_reclaim(sys, 64 * MiB, &freed), 0);
	STEP(sys);
	CHECK_EQ(freed, len);
	CHECK(swapped(mm, a, 4096) && swapped(mm, a + len - 4096, 4096));
	CHECK_EQ(t_pages_wrong(mm, a, len, 14, 0, 0), 0);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* Without swap, hm_reclaim frees what costs no write: the unmapped parts
 * of partly unmapped huge pages (the deferred split queue) first. */
static void reclaim_without_swap(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, freed = 1;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, 4 * MiB, 12), 0);
	CHECK_EQ(hm_reclaim(sys, 8 * MiB, &freed), 0);
	CHECK_EQ(freed, 0);			/* nothing to free without swap */
	CHECK_EQ(hm_munmap(mm, a + 4096, 511 * 4096), 0);	/* one 4 KiB page left */
	CHECK_EQ(stat_of(sys, "thp_deferred_split_page"), 1);
	CHECK_EQ(stat_of(sys, "nr_anon_pages"), 1024);
	CHECK_EQ(hm_reclaim(sys, 8 * MiB, &freed), 0);
	STEP(sys);
	CHECK_EQ(freed, 511 * 4096);
	CHECK_EQ(stat_of(sys, "thp_split_page"), 1);
	CHECK_EQ(stat_of(sys, "nr_anon_pages"), 513);
	CHECK_EQ(t_peek(mm, a), t_pattern(12, 0));
	CHECK_EQ(wrong_at(mm, a, 2 * MiB, 2 * MiB, 12), 0);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* With swap, a partly unmapped huge page is split before anything goes
 * out, and its 4 KiB pieces can then be swapped like any other. */
static void reclaim_splits_then_swaps(void)
{
	struct hm_system *sys = t_system_swap(64 * MiB, 64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, freed;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, 2 * MiB, 13), 0);
	CHECK_EQ(hm_munmap(mm, a + MiB, MiB), 0);
	CHECK_EQ(hm_reclaim(sys, 64 * MiB, &freed), 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "thp_split_page"), 1);
	CHECK(freed >= MiB);
	CHECK_EQ(hm_madvise(mm, a, MiB, MADV_PAGEOUT), 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "nr_anon_pages"), 0);
	CHECK_EQ(wrong_at(mm, a, 0, MiB, 13), 0);
	hm_mm_destroy(mm);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), stat_of(sys, "swap_total_pages"));
	hm_system_destroy(sys);
}

/* The kernel's cow.c case "a THP with one PTE swapped": MADV_PAGEOUT of
 * 4 KiB of a 2 MiB page splits it (mapping and folio) and swaps out that
 * page alone; then copy-on-write after fork on it and around it. */
static void thp_one_pte_swapped(void)
{
	struct hm_system *sys = t_system_swap(64 * MiB, 64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm, *child;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, 2 * MiB, 14), 0);
	CHECK_EQ(stat_of(sys, "nr_anon_pmd"), 1);
	CHECK_EQ(hm_madvise(mm, a + 5 * 4096, 4096, MADV_PAGEOUT), 0);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "thp_split_page"), 1);
	CHECK_EQ(stat_of(sys, "pswpout"), 1);
	CHECK(swapped(mm, a + 5 * 4096, 4096));
	CHECK(!swapped(mm, a + 4 * 4096, 4096));
	CHECK_EQ(stat_of(sys, "nr_anon_pages"), 511);
	REQUIRE(hm_fork(mm, &child) == 0);
	t_poke(child, a + 5 * 4096, 0x55);	/* swapped page */
	t_poke(mm, a + 6 * 4096, 0x66);		/* its neighbour */
	STEP(sys);
	CHECK_EQ(t_peek(mm, a + 5 * 4096), t_pattern(14, 5));
	CHECK_EQ(t_peek(child, a + 6 * 4096), t_pattern(14, 6));
	CHECK_EQ(wrong_at(mm, a, 7 * 4096, 2 * MiB - 7 * 4096, 14), 0);
	CHECK_EQ(wrong_at(child, a, 7 * 4096, 2 * MiB - 7 * 4096, 14), 0);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), stat_of(sys, "swap_total_pages"));
	hm_system_destroy(sys);
}

/* A 2 MiB page shared after fork goes out whole for both; the parent
 * reads it back (into the swap cache) and unmaps 4 KiB of it, which queues
 * it as partly mapped; the child then maps it whole from the swap cache:
 * it must leave the queue (the fuzzer found hm_check failing). */
static void cache_hit_maps_whole_again(void)
{
	struct hm_system *sys = t_system_swap(64 * MiB, 64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm, *child;
	uint64_t a, freed;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, 2 * MiB, 15), 0);
	REQUIRE(hm_fork(mm, &child) == 0);
	CHECK_EQ(hm_reclaim(sys, 64 * MiB, &freed), 0);
	CHECK(swapped(mm, a, 2 * MiB) && swapped(child, a, 2 * MiB));
	CHECK_EQ(t_peek(mm, a), t_pattern(15, 0));	/* whole, into the cache */
	CHECK_EQ(stat_of(sys, "thp_swpin"), 1);
	CHECK_EQ(hm_munmap(mm, a + 4096, 4096), 0);
	CHECK_EQ(stat_of(sys, "thp_deferred_split_page"), 1);
	STEP(sys);
	CHECK_EQ(t_peek(child, a + 4096), t_pattern(15, 1));	/* whole, from the cache */
	CHECK_EQ(stat_of(sys, "swapin_cache_hit"), 1);
	STEP(sys);
	CHECK_EQ(wrong_at(child, a, 0, 2 * MiB, 15), 0);
	CHECK_EQ(wrong_at(mm, a, 8192, 2 * MiB - 8192, 15), 0);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	STEP(sys);
	CHECK_EQ(stat_of(sys, "swap_free_pages"), stat_of(sys, "swap_total_pages"));
	hm_system_destroy(sys);
}

/* STEP() checks every step; HM_CHECK after every access would be slow. */
static void no_auto_check(void) { t_flags = 0; }

T_MAIN(T(no_auto_check), T(pageout_4k), T(pageout_2m), T(fork_shares_swap), T(overcommit),
       T(overcommit_written_once), T(reclaim_after_write_once),
       T(swap_full), T(swap_full_16), T(damaged_file), T(bad_swap_config), T(pageout_1g),
       T(cow_after_swapout_parent), T(cow_after_swapout_child), T(cow_after_swapout_thp_parent),
       T(cow_after_swapout_thp_child), T(reclaim_counts_batched), T(reclaim_without_swap), T(reclaim_splits_then_swaps),
       T(thp_one_pte_swapped), T(cache_hit_maps_whole_again))
