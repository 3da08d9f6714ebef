/* SPDX-License-Identifier: MIT */
/*
 * Direct compaction through the public API: memory fragmented by 4 KiB
 * pages spread across it (every other one of them dropped, so that no
 * 1 GiB block and no 2 MiB block is free, though the free total would
 * hold one), then a huge-page fault. It gets its page by compaction, and
 * every 4 KiB page keeps its data, in a forked child too; where compaction
 * cannot succeed it is counted and the fault falls back.
 */
#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

struct frag {
	uint64_t a;		/* the 4 KiB pages: [a, a + pages * 4 KiB) */
	uint64_t pages;
};

/* Drop every other page of @f (the even ones), and wait for their frames. */
static void drop_every_other(struct hm_system *sys, struct hm_mm *mm, const struct frag *f)
{
	unsigned long bad = 0;

	for (uint64_t i = 0; i < f->pages; i += 2)
		bad += hm_madvise(mm, f->a + i * 4096, 4096, MADV_DONTNEED) != 0;
	CHECK_EQ(bad, 0);
	hm_drain(sys);
	STEP(sys);
}

/* Fault up to @pages 4 KiB pages with cookies (fewer if free frames drop
 * under @keep_free first), then drop every other one. */
static void fragment(struct hm_system *sys, struct hm_mm *mm, uint64_t pages, uint64_t keep_free,
		     struct frag *f)
{
	REQUIRE(hm_mmap(mm, 0, pages * 4096, RW, PA, &f->a) == 0);
	CHECK_EQ(hm_madvise(mm, f->a, pages * 4096, MADV_NOHUGEPAGE), 0);
	unsigned long bad = 0;
	uint64_t i;
	for (i = 0; i < pages; i++) {
		uint64_t v = t_pattern(7, i);

		if (i % 64 == 0 && t_stat(sys, "nr_free_pages") < keep_free)
			break;
		bad += hm_write(mm, f->a + i * 4096, &v, sizeof(v)) != 0;
	}
	f->pages = i;
	CHECK_EQ(bad, 0);
	STEP(sys);
	drop_every_other(sys, mm, f);
}

/* The kept pages hold their cookies (a read of a dropped one would take
 * a frame: memory is nearly full after the huge page). */
static unsigned long frag_wrong(struct hm_mm *mm, const struct frag *f)
{
	unsigned long bad = 0;

	for (uint64_t i = 1; i < f->pages; i += 2) {
		uint64_t v = 0;

		bad += hm_read(mm, f->a + i * 4096, &v, sizeof(v)) || v != t_pattern(7, i);
	}
	return bad;
}

/* A 1 GiB-aligned range of @len in a fresh MADV_HUGEPAGE VMA. */
static uint64_t huge_range(struct hm_mm *mm, uint64_t align)
{
	uint64_t a;

	if (hm_mmap(mm, 0, 2 * align, RW, PA, &a))
		return 0;
	a = (a + align - 1) & ~(align - 1);
	CHECK_EQ(hm_madvise(mm, a, align, MADV_HUGEPAGE), 0);
	return a;
}

static uint64_t size_at(struct hm_mm *mm, uint64_t va)
{
	struct hm_mapping m;

	return hm_query(mm, va, &m) ? 0 : m.size;
}

/* 2 GiB; 400,000 pages faulted (1.5 GiB), half dropped: 1.2 GiB free in
 * holes, no 1 GiB block, no 2 MiB block. */
static void pud_by_compaction(void)
{
	struct hm_system *sys = t_system(2 * GiB, HM_THP_MADVISE, HM_THP_MADVISE, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	struct frag f;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	fragment(sys, mm, 400000, 0, &f);
	CHECK(t_stat(sys, "nr_free_pages") > 262144);
	CHECK_EQ(t_stat(sys, "nr_free_1g_possible"), 1);	/* the other holds the tables */
	uint64_t h = huge_range(mm, GiB);
	uint64_t v = 0xc0ffee;
	CHECK_EQ(hm_write(mm, h + 12345, &v, sizeof(v)), 0);
	STEP(sys);
	CHECK_EQ(size_at(mm, h), GiB);
	CHECK_EQ(t_stat(sys, "compact_success"), 1);
	CHECK_EQ(t_stat(sys, "compact_fail"), 0);
	CHECK(t_stat(sys, "compact_migrate_scanned") > 0);
	CHECK(t_stat(sys, "pgmigrate_success") > 100000);
	CHECK_EQ(t_stat(sys, "pud_fault_fallback"), 0);
	CHECK_EQ(t_peek(mm, h + 12345), 0xc0ffee);
	CHECK_EQ(frag_wrong(mm, &f), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* The same with a forked child sharing the 4 KiB pages: they move for
 * both address spaces. */
static void pud_by_compaction_shared(void)
{
	struct hm_system *sys = t_system(2 * GiB, HM_THP_MADVISE, HM_THP_MADVISE, HM_DEPOSIT_EAGER);
	struct hm_mm *mm, *child;
	struct frag f;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	fragment(sys, mm, 400000, 0, &f);
	REQUIRE(hm_fork(mm, &child) == 0);
	STEP(sys);
	uint64_t h = huge_range(mm, GiB);
	uint64_t v = 0xfeed;
	CHECK_EQ(hm_write(mm, h, &v, sizeof(v)), 0);
	STEP(sys);
	CHECK_EQ(size_at(mm, h), GiB);
	CHECK_EQ(t_stat(sys, "compact_success"), 1);
	CHECK_EQ(frag_wrong(mm, &f), 0);
	CHECK_EQ(frag_wrong(child, &f), 0);
	/* Still shared, not copied: one write in the child copies one page. */
	struct hm_mapping m;
	CHECK_EQ(hm_query(child, f.a + 4096, &m), 0);
	CHECK_EQ(m.mapcount, 2);
	CHECK_EQ(t_stat(sys, "cow_copy"), 0);
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* 64 MiB, grouped by 2 MiB: a 2 MiB fault compacts one 2 MiB block. */
static void pmd_by_compaction(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_MADVISE, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	struct frag f;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	fragment(sys, mm, 16384, 128, &f);
	uint64_t h = huge_range(mm, 2 * MiB);
	uint64_t v = 0xabc;
	CHECK_EQ(hm_write(mm, h + 8, &v, sizeof(v)), 0);
	STEP(sys);
	CHECK_EQ(size_at(mm, h), 2 * MiB);
	CHECK_EQ(t_stat(sys, "compact_success"), 1);
	CHECK_EQ(t_stat(sys, "pmd_fault_fallback"), 0);
	CHECK(t_stat(sys, "pgmigrate_success") >= 1);
	CHECK_EQ(t_peek(mm, h + 8), 0xabc);
	CHECK_EQ(frag_wrong(mm, &f), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* MADV_COLLAPSE in memory that its own mm fragments: the collapse holds
 * that mm's lock for writing while it allocates, and compaction must still
 * be able to move the mm's pages (they are named to it as held). */
static void collapse_by_compaction(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_MADVISE, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	struct frag f;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t h = huge_range(mm, 2 * MiB);
	REQUIRE(h != 0);
	CHECK_EQ(hm_madvise(mm, h, 2 * MiB, MADV_NOHUGEPAGE), 0);
	CHECK_EQ(t_fill(mm, h, 2 * MiB, 5), 0);
	CHECK_EQ(size_at(mm, h), 4096);
	fragment(sys, mm, 16384, 128, &f);
	CHECK_EQ(hm_madvise(mm, h, 2 * MiB, MADV_HUGEPAGE), 0);
	CHECK_EQ(hm_madvise(mm, h, 2 * MiB, MADV_COLLAPSE), 0);
	STEP(sys);
	CHECK_EQ(size_at(mm, h), 2 * MiB);
	CHECK(t_stat(sys, "compact_success") >= 1);
	CHECK_EQ(t_stat(sys, "thp_collapse_alloc_failed"), 0);
	CHECK_EQ(t_pages_wrong(mm, h, 2 * MiB, 5, 0, 0), 0);
	CHECK_EQ(frag_wrong(mm, &f), 0);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* Too little free memory for a 1 GiB block: no compaction is even tried
 * (a huge folio must leave a headroom free, folio.c), the fault falls back
 * to a smaller page, and nothing is lost. unit/compact_races covers a
 * compaction that is tried and fails. */
static void pud_cannot(void)
{
	struct hm_system *sys = t_system(2 * GiB, HM_THP_MADVISE, HM_THP_MADVISE, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	struct frag f;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	fragment(sys, mm, 400000, 0, &f);
	/* 80,000 more in the holes: 1 GiB no longer fits in what is free. */
	uint64_t b;
	REQUIRE(hm_mmap(mm, 0, 80000 * 4096, RW, PA, &b) == 0);
	CHECK_EQ(hm_madvise(mm, b, 80000 * 4096, MADV_NOHUGEPAGE), 0);
	CHECK_EQ(t_fill(mm, b, 80000 * 4096, 3), 0);
	STEP(sys);
	CHECK(t_stat(sys, "nr_free_pages") < 262144);
	uint64_t h = huge_range(mm, GiB);
	uint64_t v = 0x1234;
	CHECK_EQ(hm_write(mm, h, &v, sizeof(v)), 0);
	STEP(sys);
	CHECK(size_at(mm, h) < GiB);
	CHECK_EQ(t_stat(sys, "compact_fail") + t_stat(sys, "compact_success"), 0);
	CHECK_EQ(t_stat(sys, "pud_fault_fallback"), 1);
	CHECK(t_stat(sys, "thp_fault_fallback") >= 1);
	CHECK_EQ(t_peek(mm, h), 0x1234);
	CHECK_EQ(frag_wrong(mm, &f), 0);
	CHECK_EQ(t_pages_wrong(mm, b, 80000 * 4096, 3, 0, 0), 0);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* Fault 4 KiB pages with cookies and move them to node 1 until it has
 * @keep_free free frames (or @pages are), then drop every other
 * one: node 1 has no free block of 2 MiB, though its free frames would
 * hold many. */
static void fragment_node1(struct hm_system *sys, struct hm_mm *mm, uint64_t pages, uint64_t keep_free,
			   struct frag *f)
{
	REQUIRE(hm_mmap(mm, 0, pages * 4096, RW, PA, &f->a) == 0);
	CHECK_EQ(hm_madvise(mm, f->a, pages * 4096, MADV_NOHUGEPAGE), 0);
	unsigned long bad = 0;
	uint64_t i = 0;
	uint64_t free1;
	while (i < pages && (free1 = t_stat(sys, "node1/nr_free_pages")) > keep_free) {
		uint64_t from = i, chunk = free1 - keep_free < 1024 ? free1 - keep_free : 1024;

		for (; i < pages && i < from + chunk; i++) {
			uint64_t v = t_pattern(7, i);

			bad += hm_write(mm, f->a + i * 4096, &v, sizeof(v)) != 0;
		}
		bad += hm_migrate(mm, f->a + from * 4096, (i - from) * 4096, 1) != 0;
	}
	f->pages = i;
	CHECK_EQ(bad, 0);
	STEP(sys);
	drop_every_other(sys, mm, f);
}

/* A huge page migrated to a node that has no free block of its order
 * compacts one there (as a fault would) instead of being split into
 * smaller pages: it stays whole, with its data, and the 4 KiB pages moved
 * out of the way keep theirs. */
static void migrate_by_compaction(uint64_t phys, uint64_t size, int pud, int pmd)
{
	struct hm_system *sys = t_system_nodes(phys, 2, pud, pmd, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	struct frag f;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	fragment_node1(sys, mm, phys / 4096, 256, &f);
	CHECK(t_stat(sys, "node1/nr_free_pages") > size / 4096);
	uint64_t h = huge_range(mm, size);
	REQUIRE(h);
	/* Every byte of the page, 2 MiB at a time. */
	uint64_t *buf = malloc(2 * MiB), *back = malloc(2 * MiB);
	REQUIRE(buf && back);
	for (uint64_t off = 0; off < size; off += 2 * MiB) {
		for (uint64_t i = 0; i < 2 * MiB / 8; i++)
			buf[i] = t_pattern(11, (off / 8) + i);
		CHECK_EQ(hm_write(mm, h + off, buf, 2 * MiB), 0);
	}
	STEP(sys);
	struct hm_mapping m;
	REQUIRE(hm_query(mm, h, &m) == 0);
	CHECK_EQ(m.size, size);
	CHECK_EQ(m.node, 0);
	uint64_t before = t_stat(sys, "compact_success");
	CHECK_EQ(hm_migrate(mm, h, size, 1), 0);
	STEP(sys);
	REQUIRE(hm_query(mm, h, &m) == 0);
	CHECK_EQ(m.size, size);
	CHECK_EQ(m.node, 1);
	CHECK(t_stat(sys, "compact_success") >= before + 1);
	CHECK_EQ(t_stat(sys, "thp_migration_split"), 0);
	CHECK_EQ(t_stat(sys, "thp_migration_success"), 1);
	unsigned long wrong = 0;
	for (uint64_t off = 0; off < size; off += 2 * MiB) {
		for (uint64_t i = 0; i < 2 * MiB / 8; i++)
			buf[i] = t_pattern(11, (off / 8) + i);
		wrong += hm_read(mm, h + off, back, 2 * MiB) || memcmp(buf, back, 2 * MiB);
	}
	CHECK_EQ(wrong, 0);
	CHECK_EQ(frag_wrong(mm, &f), 0);
	STEP(sys);
	free(buf);
	free(back);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* 2 x 2 GiB: node 1's two 1 GiB blocks half full. Under ThreadSanitizer
 * its shadow of 4 GiB of touched frames does not fit the machine (the
 * kernel's OOM killer took the run): the 2 MiB case covers the code. */
static void pud_migrate_by_compaction(void)
{
#ifndef T_TSAN
	migrate_by_compaction(4 * GiB, GiB, HM_THP_MADVISE, HM_THP_MADVISE);
#endif
}

/* 2 x 32 MiB, grouped by 2 MiB. */
static void pmd_migrate_by_compaction(void)
{
	migrate_by_compaction(64 * MiB, 2 * MiB, HM_THP_NEVER, HM_THP_MADVISE);
}

int main(int argc, char **argv)
{
	/* Hundreds of thousands of faults: hm_check after each step only. */
	t_flags = 0;
	static const struct t_case cases[] = {
		T(pud_by_compaction), T(pud_by_compaction_shared), T(pmd_by_compaction), T(collapse_by_compaction), T(pud_cannot),
		T(pmd_migrate_by_compaction), T(pud_migrate_by_compaction),
	};
	return t_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
