/* SPDX-License-Identifier: MIT */
/*
 * hm_walk through the public API: the raw entries, bit by bit against the
 * x86-64 format, for 4 KiB, 2 MiB and 1 GiB leaves, after a split, a fork
 * and MADV_PAGEOUT, for PROT_NONE, unmapped and non-canonical addresses,
 * with 4 and 5 levels; and a walk that runs while another thread changes
 * the tables. hm_check after every step.
 */
#define _GNU_SOURCE	/* thread.h: pthread_timedjoin_np */
#include <pthread.h>

#include "harness.h"
#include "thread.h"

/* The x86-64 entry format (Intel SDM vol. 3, "4-level paging"). */
#define P	(1ull << 0)
#define RWB	(1ull << 1)
#define US	(1ull << 2)
#define ACC	(1ull << 5)
#define DIRTY	(1ull << 6)
#define PS	(1ull << 7)
#define NX	(1ull << 63)
#define FRAME	0x000ffffffffff000ull

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static uint64_t level_size(int level) { return 4096ull << (9 * level); }

/* The physical address a leaf of @level maps (bit 12 is PAT in a huge
 * leaf, which hugemm leaves clear: the check below would see it). */
static uint64_t leaf_pa(uint64_t e, int level) { return e & FRAME & ~(level_size(level) - 1); }

/* The level where @w stopped: the lowest with a table. */
static int stop_level(const struct hm_walk *w)
{
	for (unsigned i = 0; i < w->levels; i++)
		if (w->table[i])
			return (int)i;
	return -1;
}

/*
 * What holds for every walk: the levels above the stop are present table
 * entries (P, RW, US, A; no PS) pointing at the table one level down; the
 * levels below it are empty. Returns the host address of physical address
 * 0 (table[i] minus entry[i + 1]'s frame, the same for every level), or 0
 * after a failed check.
 */
static uintptr_t check_chain(const struct hm_walk *w, unsigned levels)
{
	unsigned long f = t_failed;
	int stop = stop_level(w);
	uintptr_t base = 0;

	CHECK_EQ(w->levels, levels);
	CHECK(stop >= 0);
	if (stop < 0)
		return 0;
	CHECK(w->table[levels - 1] != NULL);
	for (int i = 0; i < stop; i++) {
		CHECK_EQ(w->entry[i], 0);
		CHECK(w->table[i] == NULL);
	}
	for (unsigned i = (unsigned)stop; i < levels; i++) {
		CHECK_EQ((uintptr_t)w->table[i] % 4096, 0);
		for (unsigned j = i + 1; j < levels; j++)
			CHECK(w->table[i] != w->table[j]);
		if (i == levels - 1)
			continue;
		uint64_t up = w->entry[i + 1];

		CHECK_EQ(up & (P | RWB | US | ACC | PS | NX), P | RWB | US | ACC);
		uintptr_t b = (uintptr_t)w->table[i] - (up & FRAME);

		if (!base)
			base = b;
		CHECK_EQ(b, base);
	}
	for (unsigned i = levels; i < 5; i++)
		CHECK(!w->entry[i] && !w->table[i]);
	if (w->leaf_level >= 0)
		CHECK_EQ(w->leaf_level, stop);
	return t_failed == f ? base : 0;
}

/*
 * A present leaf at @va of @level for a mapping of @prot, with accessed and
 * dirty bits @ad, whose frame is hm_query's pa and holds @value (read through
 * the host address the tables give). Returns the walk's base.
 */
static uintptr_t check_leaf(struct hm_mm *mm, uint64_t va, unsigned levels, int level, int prot, uint64_t ad,
			    uint64_t value, struct hm_walk *w)
{
	struct hm_mapping m;

	CHECK_EQ(hm_walk(mm, va, w), 0);
	uintptr_t base = check_chain(w, levels);
	uint64_t e = w->entry[level];

	CHECK_EQ(w->leaf_level, level);
	CHECK(e & P);
	CHECK(e & US);
	CHECK_EQ(!!(e & RWB), !!(prot & PROT_WRITE));
	CHECK_EQ(!!(e & NX), !(prot & PROT_EXEC));
	CHECK_EQ(!!(e & PS), level > 0);
	CHECK_EQ(e & (ACC | DIRTY), ad);
	CHECK_EQ(hm_query(mm, va, &m), 0);
	CHECK_EQ(m.size, level_size(level));
	CHECK_EQ(leaf_pa(e, level), m.pa);
	CHECK_EQ(e & FRAME & (level_size(level) - 1), 0);	/* no PAT, aligned */
	if (base)
		CHECK_EQ(*(const volatile uint64_t *)(base + m.pa + (va - m.va)), value);
	return base;
}

/* An entry at @level that no hardware walk translates through, left raw:
 * not zero, P clear. Returns the walk's base. */
static uintptr_t check_not_present(struct hm_mm *mm, uint64_t va, unsigned levels, int level, struct hm_walk *w)
{
	CHECK_EQ(hm_walk(mm, va, w), 0);
	uintptr_t base = check_chain(w, levels);

	CHECK_EQ(w->leaf_level, -1);
	CHECK_EQ(stop_level(w), level);
	CHECK(w->entry[level] != 0);
	CHECK_EQ(w->entry[level] & P, 0);
	return base;
}

static struct hm_system *walk_system(uint64_t phys, unsigned levels, int pud, int pmd)
{
	struct hm_config cfg;

	t_config(&cfg, phys, pud, pmd, HM_DEPOSIT_EAGER);
	cfg.levels = levels;
	return t_system_cfg(&cfg);
}

/* 4 KiB leaves: written (dirty), read only (clean), and a read-only
 * mapping (no RW, NX); two pages of one 2 MiB range share their PTE table. */
static void leaf_4k(unsigned levels)
{
	struct hm_system *sys = walk_system(64 * MiB, levels, HM_THP_NEVER, HM_THP_NEVER);
	struct hm_mm *mm;
	struct hm_walk w1, w2, w3;
	uint64_t a, r;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	t_poke(mm, a + 8192, 0x1234);
	STEP(sys);
	t_peek(mm, a + 3 * 4096);
	STEP(sys);
	uintptr_t base = check_leaf(mm, a + 8192, levels, 0, RW, ACC | DIRTY, 0x1234, &w1);
	CHECK(base != 0);
	CHECK_EQ(check_leaf(mm, a + 3 * 4096, levels, 0, RW, ACC, 0, &w2), base);
	for (unsigned i = 0; i < levels; i++)
		CHECK(w1.table[i] == w2.table[i]);
	CHECK(w1.entry[0] != w2.entry[0]);
	CHECK_EQ(w1.entry[1], w2.entry[1]);
	/* Stable: nothing changed, so a second walk reads the same. */
	CHECK_EQ(hm_walk(mm, a + 8192, &w3), 0);
	CHECK_EQ(memcmp(&w1, &w3, sizeof(w1)), 0);
	/* A page of the range not touched: the walk stops at the empty PTE. */
	CHECK_EQ(hm_walk(mm, a + 4 * 4096, &w3), 0);
	CHECK_EQ(w3.leaf_level, -1);
	CHECK_EQ(stop_level(&w3), 0);
	CHECK_EQ(w3.entry[0], 0);
	CHECK(w3.table[0] == w1.table[0]);
	CHECK_EQ(check_chain(&w3, levels), base);

	REQUIRE(hm_mmap(mm, 0, 64 * 1024, PROT_READ, PA, &r) == 0);
	t_peek(mm, r);
	STEP(sys);
	check_leaf(mm, r, levels, 0, PROT_READ, ACC, 0, &w3);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

/* A 2 MiB leaf: PS at level 1, nothing below it. */
static void leaf_2m(unsigned levels)
{
	struct hm_system *sys = walk_system(64 * MiB, levels, HM_THP_NEVER, HM_THP_ALWAYS);
	struct hm_mm *mm;
	struct hm_walk w1, w2;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	CHECK_EQ(a % (2 * MiB), 0);
	t_poke(mm, a + MiB, 77);
	STEP(sys);
	uintptr_t base = check_leaf(mm, a + MiB, levels, 1, RW, ACC | DIRTY, 77, &w1);
	CHECK_EQ(check_leaf(mm, a + 8, levels, 1, RW, ACC | DIRTY, 0, &w2), base);
	CHECK_EQ(memcmp(&w1, &w2, sizeof(w1)), 0);	/* one entry for all of it */
	CHECK_EQ(w1.entry[0], 0);
	CHECK(w1.table[0] == NULL);
	/* The next 2 MiB, not touched: an empty entry in the same PMD table. */
	CHECK_EQ(hm_walk(mm, a + 2 * MiB, &w2), 0);
	CHECK_EQ(w2.leaf_level, -1);
	CHECK_EQ(stop_level(&w2), 1);
	CHECK(w2.table[1] == w1.table[1]);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

/* A 1 GiB page: PS at level 2. Then split by an mprotect of one 4 KiB
 * page: the same frames, now as 2 MiB leaves and one table of 4 KiB ones,
 * each keeping A and D; the read-only page has no RW. */
static void leaf_1g_split(unsigned levels)
{
	struct hm_system *sys = walk_system(3 * GiB, levels, HM_THP_MADVISE, HM_THP_ALWAYS);
	struct hm_mm *mm;
	struct hm_walk w, wpud, wro, wn, w2m;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, GiB, RW, PA, &a) == 0);
	REQUIRE(hm_madvise(mm, a, GiB, MADV_HUGEPAGE) == 0);
	t_poke(mm, a, 5);
	uint64_t ro = a + 300 * MiB + 7 * 4096;
	t_poke(mm, ro, 6);
	STEP(sys);
	uintptr_t base = check_leaf(mm, a + 12345 * 4096, levels, 2, RW, ACC | DIRTY, 0, &wpud);
	CHECK(base != 0);
	CHECK_EQ(wpud.entry[1], 0);
	CHECK(wpud.table[1] == NULL);
	uint64_t pa = leaf_pa(wpud.entry[2], 2);

	REQUIRE(hm_mprotect(mm, ro, 4096, PROT_READ) == 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "thp_split_pud"), 1);
	CHECK_EQ(t_stat(sys, "thp_split_pmd"), 1);
	CHECK_EQ(check_leaf(mm, ro, levels, 0, PROT_READ, ACC | DIRTY, 6, &wro), base);
	CHECK_EQ(leaf_pa(wro.entry[0], 0), pa + (ro - a));
	CHECK_EQ(check_leaf(mm, ro + 4096, levels, 0, RW, ACC | DIRTY, 0, &wn), base);
	CHECK_EQ(leaf_pa(wn.entry[0], 0), pa + (ro + 4096 - a));
	CHECK(wn.table[0] == wro.table[0]);
	CHECK_EQ(wn.entry[1], wro.entry[1]);
	CHECK(wro.table[2] == wpud.table[2]);	/* the PUD entry's own table */
	CHECK_EQ(check_leaf(mm, a, levels, 1, RW, ACC | DIRTY, 5, &w2m), base);
	CHECK_EQ(leaf_pa(w2m.entry[1], 1), pa);
	CHECK(w2m.table[1] == wro.table[1]);
	CHECK(w2m.table[1] != wpud.table[2]);
	/* The PMD table the split linked is where entry[2] now points. */
	CHECK_EQ(wro.entry[2] & FRAME, (uintptr_t)wro.table[1] - base);
	/* A whole 2 MiB range made read-only: its PMD leaf loses RW, no split. */
	REQUIRE(hm_mprotect(mm, a + 2 * MiB, 2 * MiB, PROT_READ) == 0);
	STEP(sys);
	check_leaf(mm, a + 3 * MiB, levels, 1, PROT_READ, ACC | DIRTY, 0, &w);
	CHECK_EQ(t_stat(sys, "thp_split_pmd"), 1);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

/* After fork both address spaces map the same frames without RW, each
 * through tables of its own; the child's write gives it a frame of its own
 * with RW back. */
static void after_fork(unsigned levels)
{
	struct hm_system *sys = walk_system(64 * MiB, levels, HM_THP_NEVER, HM_THP_ALWAYS);
	struct hm_mm *mm, *child;
	struct hm_walk wp, wc, w;
	uint64_t a, s;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a) == 0);
	REQUIRE(hm_mmap(mm, 0, 64 * 1024, RW, PA, &s) == 0);
	t_poke(mm, a + 64, 1);
	t_poke(mm, s, 2);
	STEP(sys);
	uintptr_t base = check_leaf(mm, s, levels, 0, RW, ACC | DIRTY, 2, &wp);
	REQUIRE(hm_fork(mm, &child) == 0);
	STEP(sys);
	/* The child's copies are old (A clear), as Linux makes them. */
	CHECK_EQ(check_leaf(mm, s, levels, 0, PROT_READ, ACC | DIRTY, 2, &wp), base);
	CHECK_EQ(check_leaf(child, s, levels, 0, PROT_READ, DIRTY, 2, &wc), base);
	CHECK_EQ(wp.entry[0], wc.entry[0] | ACC);
	for (unsigned i = 0; i < levels; i++)
		CHECK(wp.table[i] != wc.table[i]);
	CHECK_EQ(check_leaf(mm, a + 64, levels, 1, PROT_READ, ACC | DIRTY, 1, &wp), base);
	CHECK_EQ(check_leaf(child, a + 64, levels, 1, PROT_READ, DIRTY, 1, &wc), base);
	CHECK_EQ(wp.entry[1], wc.entry[1] | ACC);

	t_poke(child, s, 3);
	STEP(sys);
	check_leaf(child, s, levels, 0, RW, ACC | DIRTY, 3, &wc);
	check_leaf(mm, s, levels, 0, PROT_READ, ACC | DIRTY, 2, &wp);
	CHECK(leaf_pa(wc.entry[0], 0) != leaf_pa(wp.entry[0], 0));
	/* The child's copy-on-write of the 2 MiB page splits it (HM_COW_4K). */
	t_poke(child, a + 64, 4);
	STEP(sys);
	check_leaf(child, a + 64, levels, 0, RW, ACC | DIRTY, 4, &wc);
	check_leaf(child, a + 4096 + 64, levels, 0, PROT_READ, DIRTY, 0, &w);
	check_leaf(mm, a + 64, levels, 1, PROT_READ, ACC | DIRTY, 1, &wp);
	hm_mm_destroy(child);
	STEP(sys);
	/* Alone again: the parent's next write reuses its pages in place. */
	t_poke(mm, s, 5);
	check_leaf(mm, s, levels, 0, RW, ACC | DIRTY, 5, &wp);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

/* MADV_PAGEOUT: a swap entry, left raw (not present, not zero), at level 0
 * for a 4 KiB page and at level 1 for a 2 MiB page written out whole; back
 * to a present leaf after the read. PROT_NONE likewise keeps a raw,
 * non-present entry. */
static void pageout_and_protnone(unsigned levels)
{
	struct hm_config cfg;

	t_config(&cfg, 64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	cfg.levels = levels;
	cfg.swap_path = t_swap_path();
	cfg.swap_bytes = 64 * MiB;
	struct hm_system *sys = t_system_cfg(&cfg);
	struct hm_mm *mm;
	struct hm_mapping m;
	struct hm_walk w, before;
	uint64_t a, s;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a) == 0);
	REQUIRE(hm_mmap(mm, 0, 64 * 1024, RW, PA, &s) == 0);
	t_poke(mm, a, 11);
	t_poke(mm, s, 12);
	t_poke(mm, s + 4096, 13);
	STEP(sys);
	uintptr_t base = check_leaf(mm, s, levels, 0, RW, ACC | DIRTY, 12, &before);
	REQUIRE(hm_madvise(mm, s, 4096, MADV_PAGEOUT) == 0);
	REQUIRE(hm_madvise(mm, a, 2 * MiB, MADV_PAGEOUT) == 0);
	STEP(sys);
	CHECK_EQ(hm_query(mm, s, &m), 0);
	CHECK(m.swapped);
	CHECK_EQ(check_not_present(mm, s, levels, 0, &w), base);
	CHECK(w.table[0] == before.table[0]);
	CHECK_EQ(t_stat(sys, "thp_swpout"), 1);
	/* The whole 2 MiB in one entry. */
	CHECK_EQ(check_not_present(mm, a + 4096, levels, 1, &w), base);
	/* The neighbour stayed in memory. */
	check_leaf(mm, s + 4096, levels, 0, RW, ACC | DIRTY, 13, &w);

	CHECK_EQ(t_peek(mm, s), 12);
	CHECK_EQ(t_peek(mm, a), 11);
	STEP(sys);
	check_leaf(mm, s, levels, 0, RW, ACC, 12, &w);	/* read back: clean */
	check_leaf(mm, a, levels, 1, RW, ACC, 11, &w);

	REQUIRE(hm_mprotect(mm, s + 4096, 4096, PROT_NONE) == 0);
	STEP(sys);
	CHECK_EQ(check_not_present(mm, s + 4096, levels, 0, &w), base);
	REQUIRE(hm_mprotect(mm, s + 4096, 4096, PROT_READ) == 0);
	STEP(sys);
	check_leaf(mm, s + 4096, levels, 0, PROT_READ, ACC | DIRTY, 13, &w);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

/* Nothing mapped: an empty mm stops at its top-level table; after munmap
 * and MADV_DONTNEED the walk finds an empty entry where the leaf was. */
static void unmapped(unsigned levels)
{
	struct hm_system *sys = walk_system(64 * MiB, levels, HM_THP_NEVER, HM_THP_ALWAYS);
	struct hm_mm *mm;
	struct hm_walk w, w2;
	uint64_t a, s;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	CHECK_EQ(hm_walk(mm, 1ull << 30, &w), 0);
	check_chain(&w, levels);
	CHECK_EQ(w.leaf_level, -1);
	CHECK_EQ(stop_level(&w), (int)levels - 1);
	CHECK_EQ(w.entry[levels - 1], 0);
	CHECK_EQ(hm_walk(mm, 0, &w2), 0);
	CHECK(w2.table[levels - 1] == w.table[levels - 1]);	/* the root */
	REQUIRE(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a) == 0);
	REQUIRE(hm_mmap(mm, 0, 64 * 1024, RW, PA, &s) == 0);
	STEP(sys);
	CHECK_EQ(hm_walk(mm, s, &w), 0);	/* mapped, never touched */
	CHECK_EQ(w.leaf_level, -1);
	t_poke(mm, a, 1);
	t_poke(mm, s, 2);
	t_poke(mm, s + 4096, 3);
	STEP(sys);
	REQUIRE(hm_madvise(mm, a, 2 * MiB, MADV_DONTNEED) == 0);
	REQUIRE(hm_munmap(mm, s, 4096) == 0);
	STEP(sys);
	CHECK_EQ(hm_walk(mm, a, &w), 0);
	uintptr_t base = check_chain(&w, levels);
	CHECK_EQ(w.leaf_level, -1);
	CHECK_EQ(w.entry[stop_level(&w)], 0);
	CHECK_EQ(hm_walk(mm, s, &w), 0);
	CHECK_EQ(check_chain(&w, levels), base);
	CHECK_EQ(w.leaf_level, -1);
	CHECK_EQ(w.entry[stop_level(&w)], 0);
	check_leaf(mm, s + 4096, levels, 0, RW, ACC | DIRTY, 3, &w);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

/* -EINVAL for NULL arguments and non-canonical addresses; canonical ones
 * of the upper half walk as unmapped. */
static void bad_input(unsigned levels)
{
	struct hm_system *sys = walk_system(64 * MiB, levels, HM_THP_NEVER, HM_THP_ALWAYS);
	struct hm_mm *mm;
	struct hm_walk w;
	unsigned bits = levels == 5 ? 57 : 48;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	CHECK_EQ(hm_walk(NULL, 0, &w), -EINVAL);
	CHECK_EQ(hm_walk(mm, 0, NULL), -EINVAL);
	CHECK_EQ(hm_walk(mm, 1ull << (bits - 1), &w), -EINVAL);
	CHECK_EQ(hm_walk(mm, 1ull << 63, &w), -EINVAL);
	CHECK_EQ(hm_walk(mm, ~0ull >> 1, &w), -EINVAL);
	CHECK_EQ(hm_walk(mm, (1ull << (bits - 1)) - 1, &w), 0);	/* last user byte */
	CHECK_EQ(w.leaf_level, -1);
	CHECK_EQ(hm_walk(mm, ~0ull << (bits - 1), &w), 0);	/* first upper-half byte */
	CHECK_EQ(w.leaf_level, -1);
	CHECK_EQ(stop_level(&w), (int)levels - 1);
	CHECK_EQ(hm_walk(mm, ~0ull, &w), 0);
	CHECK_EQ(w.leaf_level, -1);
	if (levels == 5) {	/* canonical only with 5 levels */
		CHECK_EQ(hm_walk(mm, 1ull << 47, &w), 0);
		CHECK_EQ(hm_walk(mm, 1ull << 55, &w), 0);
	}
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* Walks on one thread while another maps, faults, splits, pages out and
 * unmaps the same range: every walk is a consistent snapshot (the chain
 * holds, and a leaf is a present leaf at its level), and nothing it read
 * was freed under it (ASan, TSan). */
struct churn {
	struct hm_mm *mm;
	uint64_t a;
	unsigned levels;
	int stop;
	unsigned long bad, walks;
};

static void *walker(void *arg)
{
	struct churn *c = arg;
	struct hm_walk w;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		for (uint64_t off = 0; off < 4 * MiB; off += 61 * 4096) {
			if (hm_walk(c->mm, c->a + off, &w)) {
				c->bad++;
				continue;
			}
			c->walks++;
			int stop = stop_level(&w);

			if (stop < 0 || w.levels != c->levels || (w.leaf_level >= 0 && w.leaf_level != stop))
				c->bad++;
			else if (w.leaf_level >= 0 && (!(w.entry[stop] & P) || !!(w.entry[stop] & PS) != (stop > 0)))
				c->bad++;
			for (unsigned i = (unsigned)(stop < 0 ? 0 : stop) + 1; i < w.levels; i++)
				if (!(w.entry[i] & P) || (w.entry[i] & PS))
					c->bad++;
		}
	}
	return NULL;
}

static void concurrent(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	struct churn c = { .levels = 4 };

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &c.a) == 0);
	c.mm = mm;
	pthread_t t = t_spawn(walker, &c);
	unsigned long failed = 0;

	for (int round = 0; round < 40; round++) {
		failed += t_fill(mm, c.a, 4 * MiB, (uint64_t)round) != 0;
		failed += hm_mprotect(mm, c.a + 4096 * (uint64_t)(round + 1), 4096, PROT_READ) != 0;
		failed += hm_madvise(mm, c.a + 2 * MiB, 2 * MiB, MADV_DONTNEED) != 0;
		failed += hm_munmap(mm, c.a, 4 * MiB) != 0;
		uint64_t again;	/* not c.a, which the walker reads */

		failed += hm_mmap(mm, c.a, 4 * MiB, RW, PA | MAP_FIXED, &again) != 0 || again != c.a;
	}
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
	CHECK(t_join_within(t, 60000));
	CHECK_EQ(failed, 0);
	CHECK_EQ(c.bad, 0);
	CHECK(c.walks > 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void leaf_4k_l4(void) { leaf_4k(4); }
static void leaf_4k_l5(void) { leaf_4k(5); }
static void leaf_2m_l4(void) { leaf_2m(4); }
static void leaf_2m_l5(void) { leaf_2m(5); }
static void leaf_1g_split_l4(void) { leaf_1g_split(4); }
static void leaf_1g_split_l5(void) { leaf_1g_split(5); }
static void after_fork_l4(void) { after_fork(4); }
static void after_fork_l5(void) { after_fork(5); }
static void pageout_and_protnone_l4(void) { pageout_and_protnone(4); }
static void pageout_and_protnone_l5(void) { pageout_and_protnone(5); }
static void unmapped_l4(void) { unmapped(4); }
static void unmapped_l5(void) { unmapped(5); }
static void bad_input_l4(void) { bad_input(4); }
static void bad_input_l5(void) { bad_input(5); }

T_MAIN(T(leaf_4k_l4), T(leaf_4k_l5), T(leaf_2m_l4), T(leaf_2m_l5), T(leaf_1g_split_l4),
       T(leaf_1g_split_l5), T(after_fork_l4), T(after_fork_l5), T(pageout_and_protnone_l4),
       T(pageout_and_protnone_l5), T(unmapped_l4), T(unmapped_l5), T(bad_input_l4), T(bad_input_l5),
       T(concurrent))
