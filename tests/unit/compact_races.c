/* SPDX-License-Identifier: MIT */
/*
 * Races of compaction (issue 9), made deterministic with the race point
 * compact_isolate: the compacting fault is stopped after it opened its
 * window on a block and listed the folios to move, while the test unmaps a
 * page of that block in another address space and faults a new one. Each
 * test fails with its fix reverted (said per test).
 */
#define _GNU_SOURCE
#include "harness.h"
#include "race.h"

#include <unistd.h>

#define STOP_MS 20000

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

struct op {
	struct hm_mm *mm;
	uint64_t va;
	int r;
};

static void *do_write(void *p)
{
	struct op *o = p;
	uint64_t v = 0x600d;

	o->r = hm_write(o->mm, o->va, &v, sizeof(v));
	return NULL;
}

static uint64_t pa_of(struct hm_mm *mm, uint64_t va)
{
	struct hm_mapping m;

	return hm_query(mm, va, &m) || !m.size ? ~0ull : m.pa + (va - m.va);
}

#define PAGES 400000ull

/* A 2 GiB system; in @other, PAGES 4 KiB PAGES with cookies, every other
 * one dropped (no 1 GiB and no 2 MiB block free); in @mm, a 1 GiB-aligned
 * MADV_HUGEPAGE range at *h. */
static void setup(struct hm_system **sysp, struct hm_mm **mm, struct hm_mm **other, uint64_t *a, uint64_t *h)
{
	t_flags = 0;
	struct hm_system *sys = *sysp = t_system(2 * GiB, HM_THP_MADVISE, HM_THP_MADVISE, HM_DEPOSIT_EAGER);

	REQUIRE(hm_mm_create(sys, mm) == 0);
	REQUIRE(hm_mm_create(sys, other) == 0);
	REQUIRE(hm_mmap(*other, 0, PAGES * 4096, RW, PA, a) == 0);
	CHECK_EQ(hm_madvise(*other, *a, PAGES * 4096, MADV_NOHUGEPAGE), 0);
	for (uint64_t i = 0; i < PAGES; i++)
		t_poke(*other, *a + i * 4096, t_pattern(9, i));
	for (uint64_t i = 0; i < PAGES; i += 2)
		CHECK_EQ(hm_madvise(*other, *a + i * 4096, 4096, MADV_DONTNEED), 0);
	hm_drain(sys);
	STEP(sys);
	REQUIRE(hm_mmap(*mm, 0, 2 * GiB, RW, PA, h) == 0);
	*h = (*h + GiB - 1) & ~(GiB - 1);
	CHECK_EQ(hm_madvise(*mm, *h, GiB, MADV_HUGEPAGE), 0);
}

/* Kept PAGES of @other that do not hold their cookies, but @skip. */
static unsigned long kept_wrong(struct hm_mm *other, uint64_t a, uint64_t skip)
{
	unsigned long bad = 0;

	for (uint64_t i = 1; i < PAGES; i += 2) {
		uint64_t v = 0;

		if (a + i * 4096 != skip)
			bad += hm_read(other, a + i * 4096, &v, sizeof(v)) || v != t_pattern(9, i);
	}
	return bad;
}

/*
 * A frame freed into the block being emptied stays in it: an unmap of one
 * of its PAGES meanwhile, then a new fault, gets a frame elsewhere, and the
 * block is still taken whole. Reverted (free_block_locked puts every freed
 * block on the main lists, lists_of() -> n->free_head), the new page takes
 * the freed frame inside the block, which then is not free at the end:
 * compaction fails and the 1 GiB fault falls back.
 */
static void freed_into_window_stays(void)
{
	struct hm_system *sys;
	struct hm_mm *mm, *other;
	uint64_t a, h, n;

	setup(&sys, &mm, &other, &a, &h);
	/* The block compaction will empty is the one without the tables. */
	CHECK_EQ(t_stat(sys, "nr_free_1g_possible"), 1);
	uint64_t victim = 0, block = ~0ull;
	for (uint64_t i = 1; i < PAGES && !victim; i += 2) {
		uint64_t pa = pa_of(other, a + i * 4096);

		if (pa != ~0ull && pa >= GiB) {
			victim = a + i * 4096;
			block = pa & ~(GiB - 1);
		}
	}
	REQUIRE(victim);
	REQUIRE(hm_mmap(other, 0, 4096, RW, PA, &n) == 0);

	REQUIRE(hm__race_arm("compact_isolate", 0) == 0);
	struct op w = { .mm = mm, .va = h };
	pthread_t t = t_spawn(do_write, &w);
	REQUIRE(hm__race_wait("compact_isolate", STOP_MS) == 0);
	/* Compaction listed the victim to move; it goes away first, its frame
	 * comes back (into the window), and a new page is faulted. */
	CHECK_EQ(hm_munmap(other, victim, 4096), 0);
	hm_drain(sys);
	t_poke(other, n, 0xbeef);
	uint64_t pn = pa_of(other, n);
	CHECK(pn - block >= GiB);	/* not in the block being emptied */
	hm__race_release("compact_isolate");
	pthread_join(t, NULL);
	CHECK_EQ(w.r, 0);
	STEP(sys);

	struct hm_mapping m;
	CHECK_EQ(hm_query(mm, h, &m), 0);
	CHECK_EQ(m.size, GiB);
	CHECK_EQ(m.pa, block);
	CHECK_EQ(t_stat(sys, "compact_success"), 1);
	CHECK_EQ(t_peek(other, n), 0xbeef);
	CHECK_EQ(kept_wrong(other, a, victim), 0);
	hm__race_reset();
	hm_mm_destroy(other);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * Compaction listed a folio to move, and it is freed before the isolation
 * comes to it: the isolation must decide by the LRU links alone, not by
 * the frame's descriptor, which the allocator resets without a lock.
 * Reverted (hm_folio_isolate_pfn tests PG_LRU_BATCH in the flags first),
 * SAN=thread reports the race on every run. Nothing but the facts orders
 * the free (in liburcu's callback thread) before the isolation: the test
 * waits for it by a counter, not by hm_drain, and faults nothing
 * meanwhile.
 */
static void freed_victims_not_read(void)
{
	struct hm_system *sys;
	struct hm_mm *mm, *other;
	uint64_t a, h, victims[16];
	unsigned nv = 0;

	setup(&sys, &mm, &other, &a, &h);
	for (uint64_t i = PAGES - 1; i > 0 && nv < 16; i -= 2) {
		uint64_t pa = pa_of(other, a + i * 4096);

		if (pa != ~0ull && pa >= GiB)
			victims[nv++] = a + i * 4096;
	}
	REQUIRE(nv == 16);
	REQUIRE(hm__race_arm("compact_isolate", 0) == 0);
	struct op w = { .mm = mm, .va = h };
	pthread_t t = t_spawn(do_write, &w);

	REQUIRE(hm__race_wait("compact_isolate", STOP_MS) == 0);
	for (unsigned i = 0; i < nv; i++)
		CHECK_EQ(hm_munmap(other, victims[i], 4096), 0);
	for (int ms = 0; ms < STOP_MS && t_stat(sys, "nr_free_pending"); ms++)
		usleep(1000);
	CHECK_EQ(t_stat(sys, "nr_free_pending"), 0);
	hm__race_release("compact_isolate");
	pthread_join(t, NULL);
	CHECK_EQ(w.r, 0);
	struct hm_mapping m;
	CHECK_EQ(hm_query(mm, h, &m), 0);
	CHECK_EQ(m.size, GiB);	/* the block was emptied all the same */
	CHECK_EQ(t_stat(sys, "compact_success"), 1);
	STEP(sys);
	hm__race_reset();
	hm_mm_destroy(other);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void *do_munmap(void *p)
{
	struct op *o = p;

	o->r = hm_munmap(o->mm, o->va, 4096);
	return NULL;
}

/*
 * A mapper of the block's PAGES is busy (a munmap in it holds its mmap_lock
 * for writing, stopped before its flush) when compaction migrates: the
 * migration cannot take it (trylock, -EAGAIN), the compaction fails,
 * counted, and the fault falls back to a smaller page without waiting for
 * the munmap; nothing is lost. (A behaviour test: no single line to
 * revert makes it fail but a compaction that waited for the mapper, which
 * would hang here.)
 */
static void busy_mapper_fails_compaction(void)
{
	struct hm_system *sys;
	struct hm_mm *mm, *other;
	uint64_t a, h;

	setup(&sys, &mm, &other, &a, &h);

	REQUIRE(hm__race_arm("compact_isolate", 0) == 0);
	struct op w = { .mm = mm, .va = h };
	pthread_t t = t_spawn(do_write, &w);
	REQUIRE(hm__race_wait("compact_isolate", STOP_MS) == 0);
	REQUIRE(hm__race_arm("unmap_before_flush", 0) == 0);
	struct op u = { .mm = other, .va = a + 1 * 4096 };
	pthread_t tu = t_spawn(do_munmap, &u);
	REQUIRE(hm__race_wait("unmap_before_flush", STOP_MS) == 0);
	hm__race_release("compact_isolate");
	CHECK(t_join_within(t, STOP_MS));	/* falls back, does not wait */
	CHECK_EQ(w.r, 0);
	hm__race_release("unmap_before_flush");
	pthread_join(tu, NULL);
	CHECK_EQ(u.r, 0);
	STEP(sys);

	struct hm_mapping m;
	CHECK_EQ(hm_query(mm, h, &m), 0);
	CHECK(m.size < GiB);
	CHECK_EQ(t_stat(sys, "compact_success"), 0);
	CHECK(t_stat(sys, "compact_fail") >= 1);
	CHECK_EQ(t_stat(sys, "pud_fault_fallback"), 1);
	CHECK_EQ(t_peek(mm, h), 0x600d);
	CHECK_EQ(kept_wrong(other, a, a + 4096), 0);	/* but the one unmapped */
	hm__race_reset();
	hm_mm_destroy(other);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

T_MAIN(T(freed_into_window_stays), T(freed_victims_not_read), T(busy_mapper_fails_compaction))
