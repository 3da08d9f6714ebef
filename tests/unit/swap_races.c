/* SPDX-License-Identifier: MIT */
/*
 * Races of reclaim (issue 8), each made deterministic with a race point:
 * one thread is stopped at a named point while the test runs the other
 * operation there. Each test fails with its fix reverted (said per test).
 */
#define _GNU_SOURCE
#include "harness.h"
#include "race.h"

#define HOLD_MS 200
#define STOP_MS 10000

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

struct op {
	struct hm_mm *mm;
	uint64_t va, len;
	void *buf;
	int r;
};

static void *do_pageout(void *p)
{
	struct op *o = p;

	o->r = hm_madvise(o->mm, o->va, o->len, MADV_PAGEOUT);
	return NULL;
}

static void *do_read(void *p)
{
	struct op *o = p;

	o->r = hm_read(o->mm, o->va, o->buf, o->len);
	return NULL;
}

static void *do_write(void *p)
{
	struct op *o = p;

	o->r = hm_write(o->mm, o->va, o->buf, o->len);
	return NULL;
}

static struct hm_system *race_system(void)
{
	t_flags = 0;
	return t_system_swap(64 * MiB, 64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
}

/*
 * A swap-in of a page whose swap-out has installed the swap entry but not
 * yet written the slot waits for the write (the slot is under writeback),
 * and reads what was written. Reverted (no wait in hm_swap_read), the
 * reader gets the file's zeros.
 */
static void swapin_waits_for_writeback(void)
{
	struct hm_system *sys = race_system();
	struct hm_mm *mm;
	uint64_t a, got = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4096, RW, PA, &a) == 0);
	t_poke(mm, a, 0x5eed);
	REQUIRE(hm__race_arm("swapout_unmapped", 0) == 0);
	struct op po = { .mm = mm, .va = a, .len = 4096 };
	pthread_t tp = t_spawn(do_pageout, &po);
	REQUIRE(hm__race_wait("swapout_unmapped", STOP_MS) == 0);

	REQUIRE(hm__race_arm("swapin_before_read", 0) == 0);
	struct op rd = { .mm = mm, .va = a, .len = 8, .buf = &got };
	pthread_t tr = t_spawn(do_read, &rd);
	REQUIRE(hm__race_wait("swapin_before_read", STOP_MS) == 0);
	hm__race_release("swapin_before_read");
	CHECK(!t_join_within(tr, HOLD_MS));	/* waiting for the write */
	hm__race_release("swapout_unmapped");
	CHECK(t_join_within(tp, STOP_MS));
	CHECK(t_join_within(tr, STOP_MS));
	CHECK_EQ(po.r, 0);
	CHECK_EQ(rd.r, 0);
	CHECK_EQ(got, 0x5eed);
	CHECK_EQ(t_stat(sys, "pswpout"), 1);
	CHECK_EQ(t_stat(sys, "pswpin"), 1);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * A write that spans pages has faulted them all in and pinned them; a
 * pageout between the pre-fault and the copy leaves them alone, so the
 * copy cannot fault (and fail) half way. Reverted (no pins), the pageout
 * swaps the pages out under the write.
 */
static void pageout_skips_pinned_write(void)
{
	struct hm_system *sys = race_system();
	struct hm_mm *mm;
	uint64_t a;
	static uint8_t src[4 * 4096], back[4 * 4096];

	memset(src, 0x6b, sizeof(src));
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, sizeof(src), RW, PA, &a) == 0);
	REQUIRE(hm__race_arm("write_span_prefaulted", 0) == 0);
	struct op w = { .mm = mm, .va = a, .len = sizeof(src), .buf = src };
	pthread_t tw = t_spawn(do_write, &w);
	REQUIRE(hm__race_wait("write_span_prefaulted", STOP_MS) == 0);
	CHECK_EQ(hm_madvise(mm, a, sizeof(src), MADV_PAGEOUT), 0);
	CHECK_EQ(t_stat(sys, "pswpout"), 0);
	hm__race_release("write_span_prefaulted");
	CHECK(t_join_within(tw, STOP_MS));
	CHECK_EQ(w.r, 0);
	CHECK_EQ(hm_read(mm, a, back, sizeof(back)), 0);
	CHECK(memcmp(back, src, sizeof(src)) == 0);
	/* Unpinned after: the pageout takes them now. */
	CHECK_EQ(hm_madvise(mm, a, sizeof(src), MADV_PAGEOUT), 0);
	CHECK_EQ(t_stat(sys, "pswpout"), 4);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * (Issue 7's TLB, found with issue 8.) The TLB refill walks without locks
 * and stops at an empty PMD entry; a fault in another thread then links a
 * new PTE table there. The refill must see a link, not a 2 MiB leaf, and
 * walk on. Reverted (the entry taken as a leaf), the read returns bytes
 * of the page table instead of the page's zeros.
 */
static void refill_sees_new_table(void)
{
	struct hm_system *sys;
	struct hm_mm *mm;
	uint64_t a, got = 0xdead;

	t_flags = 0;
	sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	a = (a + 2 * MiB - 1) & ~(2 * MiB - 1);
	t_poke(mm, a + 2 * MiB, 1);	/* the PUD and PMD tables exist; this PMD entry is empty */
	REQUIRE(hm__race_arm("tlb_fill_walked", 0) == 0);
	/* Bytes 8..15 of the 2 MiB range: as a "leaf", the table's entry 1. */
	struct op rd = { .mm = mm, .va = a + 8, .len = 8, .buf = &got };
	pthread_t tr = t_spawn(do_read, &rd);
	REQUIRE(hm__race_wait("tlb_fill_walked", STOP_MS) == 0);
	t_poke(mm, a + 4096, 7);	/* links a PTE table there, entry 1 set */
	hm__race_release("tlb_fill_walked");
	CHECK(t_join_within(tr, STOP_MS));
	CHECK_EQ(rd.r, 0);
	CHECK_EQ(got, 0);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

T_MAIN(T(swapin_waits_for_writeback), T(pageout_skips_pinned_write), T(refill_sees_new_table))
