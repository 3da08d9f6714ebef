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

/* t_fill(o->mm, o->va, o->len, 22) on another thread: o->r = the writes
 * that failed. */
static void *t_do_fill(void *p)
{
	struct t_op *o = p;

	o->r = (int)t_fill(o->mm, o->va, o->len, 22);
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
	struct t_op po = { .mm = mm, .va = a, .len = 4096 };
	pthread_t tp = t_spawn(t_do_pageout, &po);
	REQUIRE(hm__race_wait("swapout_unmapped", STOP_MS) == 0);

	REQUIRE(hm__race_arm("swapin_before_read", 0) == 0);
	struct t_op rd = { .mm = mm, .va = a, .len = 8, .buf = &got };
	pthread_t tr = t_spawn(t_do_read, &rd);
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
	struct t_op w = { .mm = mm, .va = a, .len = sizeof(src), .buf = src };
	pthread_t tw = t_spawn(t_do_write, &w);
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
	struct t_op rd = { .mm = mm, .va = a + 8, .len = 8, .buf = &got };
	pthread_t tr = t_spawn(t_do_read, &rd);
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

/*
 * A folio that reclaim holds (isolated) loses its last mapping to an
 * munmap; reclaim then finds its mm busy and gives the folio back: it is
 * freed, and must be only after a grace period, since a write of another
 * thread may still be copying into it through a translation it cached.
 * Reverted (freed at once), another mm gets the frame and the late write
 * lands in its page. (Found by review.)
 */
static void orphan_freed_after_grace_period(void)
{
	struct hm_system *sys = race_system();
	struct hm_mm *a_mm, *b_mm;
	uint64_t a, b, word = 0x5741544552555345ull;

	REQUIRE(hm_mm_create(sys, &a_mm) == 0);
	REQUIRE(hm_mmap(a_mm, 0, 2 * 4096, RW, PA, &a) == 0);
	t_poke(a_mm, a, 1);		/* F: oldest on the inactive list */
	t_poke(a_mm, a + 4096, 2);	/* G */
	REQUIRE(hm__race_arm("access_copy", 0) == 0);
	struct t_op w = { .mm = a_mm, .va = a + 8, .len = 8, .buf = &word };
	pthread_t tw = t_spawn(t_do_write, &w);	/* W: inside its read section, into F */
	REQUIRE(hm__race_wait("access_copy", STOP_MS) == 0);
	REQUIRE(hm__race_arm("lru_popped", 1) == 0);
	struct t_op rc = { .sys = sys, .mm = a_mm, .len = 2 * 4096 };
	pthread_t tr = t_spawn(t_do_reclaim, &rc);	/* F isolated; stops popping G */
	REQUIRE(hm__race_wait("lru_popped", STOP_MS) == 0);
	REQUIRE(hm__race_arm("unmap_before_flush", 0) == 0);
	struct t_op um = { .mm = a_mm, .va = a, .len = 4096 };
	pthread_t tu = t_spawn(t_do_munmap, &um);	/* F's last mapping; holds A's lock */
	REQUIRE(hm__race_wait("unmap_before_flush", STOP_MS) == 0);
	hm__race_release("lru_popped");
	/* Reclaim cannot lock A and gives F back: it must wait for W. */
	CHECK(!t_join_within(tr, HOLD_MS));
	REQUIRE(hm_mm_create(sys, &b_mm) == 0);
	REQUIRE(hm_mmap(b_mm, 0, 64 * 4096, RW, PA, &b) == 0);
	for (unsigned i = 0; i < 64; i++)
		t_poke(b_mm, b + i * 4096 + 8, 0x4242424242424242ull);
	hm__race_release("access_copy");
	CHECK(t_join_within(tw, STOP_MS));
	hm__race_release("unmap_before_flush");
	CHECK(t_join_within(tu, STOP_MS));
	CHECK(t_join_within(tr, STOP_MS));
	unsigned bad = 0;
	for (unsigned i = 0; i < 64; i++)
		bad += t_peek(b_mm, b + i * 4096 + 8) != 0x4242424242424242ull;
	CHECK_EQ(bad, 0);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(b_mm);
	hm_mm_destroy(a_mm);
	hm_system_destroy(sys);
}

/*
 * MADV_PAGEOUT over part of a 2 MiB range looks at the entry at its end
 * (to split a huge page there) without the table's lock; where it walked
 * to an empty PMD entry, a fault may link a PTE table before it reads the
 * entry. It must take only a leaf for a huge page. Reverted (any present
 * entry), it looks up the folio of the table's frame and the assertion in
 * hm_folio_head stops the test (swap_pressure hit this under load, in
 * both its cases).
 */
static void pageout_edge_sees_new_table(void)
{
	struct hm_system *sys = race_system();
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 8 * MiB, RW, PA, &a) == 0);
	uint64_t chunk = (a + 4 * MiB - 1) & ~(4 * MiB - 1), p = chunk + 4096;

	t_poke(mm, chunk + 2 * MiB, 1);	/* the PMD table; none over p yet */
	REQUIRE(hm__race_arm("pageout_edge_walked", 0) == 0);
	struct t_op po = { .mm = mm, .va = p, .len = 4096 };
	pthread_t tp = t_spawn(t_do_pageout, &po);
	REQUIRE(hm__race_wait("pageout_edge_walked", STOP_MS) == 0);
	t_poke(mm, p, 0x7ab1e);	/* links a PTE table there */
	hm__race_release("pageout_edge_walked");
	CHECK(t_join_within(tp, STOP_MS));
	CHECK_EQ(po.r, 0);
	CHECK_EQ(t_peek(mm, p), 0x7ab1e);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * Memory is full but for frames an munmap is giving back (its RCU callback
 * is stopped before it frees them): a fault waits for them rather than
 * write live pages to swap. Reverted (hm_reserve_refill reclaims before
 * it drains), the writes swap out about as much as was pending.
 */
static void fault_waits_for_pending_not_swap(void)
{
	struct hm_system *sys = race_system();
	struct hm_mm *mm;
	uint64_t a, b, len = 48 * MiB;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &b) == 0);
	CHECK_EQ(t_fill(mm, a, len, 21), 0);
	STEP(sys);
	REQUIRE(hm__race_arm("gather_before_free", 0) == 0);
	REQUIRE(hm__race_arm("fault_drain", 0) == 0);
	CHECK_EQ(hm_munmap(mm, a, len), 0);
	REQUIRE(hm__race_wait("gather_before_free", STOP_MS) == 0);
	CHECK(t_stat(sys, "nr_free_pending") >= len / 4096);

	/* The writes either finish (they swapped) or stop before waiting. */
	struct t_op w = { .mm = mm, .va = b, .len = len };
	pthread_t tw = t_spawn(t_do_fill, &w);
	bool stopped = false;
	while (!stopped && !t_join_within(tw, 10))
		stopped = hm__race_wait("fault_drain", 10) == 0;
	hm__race_release("gather_before_free");
	hm__race_release("fault_drain");
	if (stopped)
		CHECK(t_join_within(tw, STOP_MS));
	CHECK(stopped);
	CHECK_EQ(w.r, 0);
	CHECK_EQ(t_stat(sys, "pswpout"), 0);
	hm__race_reset();
	STEP(sys);
	CHECK_EQ(t_pages_wrong(mm, b, len, 22, 0, 0), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * Reclaim that finds every folio's mapper busy (here: a fork holds the
 * mm's mmap_lock for writing) gives up after about one round of the
 * lists, not three (and not three per retry of a fault): looking again at
 * a folio it could not lock ages nothing. Fails with the round limit
 * removed (pgscan about 1.5x the folios).
 */
static void reclaim_gives_up_on_busy_mappers(void)
{
	struct hm_system *sys = race_system();
	struct hm_mm *mm;
	uint64_t a, len = 16 * MiB, freed = 1, pages = len / 4096;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, len, 5), 0);
	STEP(sys);
	struct t_op f = { .mm = mm };
	REQUIRE(hm__race_arm("fork_reserved", 0) == 0);
	pthread_t tf = t_spawn(t_do_fork, &f);
	REQUIRE(hm__race_wait("fork_reserved", STOP_MS) == 0);
	uint64_t scan = t_stat(sys, "pgscan");
	CHECK_EQ(hm_reclaim(sys, 4096, &freed), 0);
	CHECK_EQ(freed, 0);
	scan = t_stat(sys, "pgscan") - scan;
	CHECK(scan >= pages / 2);
	CHECK(scan <= pages + 128);
	hm__race_release("fork_reserved");
	pthread_join(tf, NULL);
	hm__race_reset();
	CHECK_EQ(f.r, 0);
	CHECK_EQ(t_stat(sys, "pswpout"), 0);
	STEP(sys);
	CHECK_EQ(t_pages_wrong(f.mm, a, len, 5, 0, 0), 0);
	hm_mm_destroy(f.mm);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

T_MAIN(T(swapin_waits_for_writeback), T(pageout_skips_pinned_write), T(refill_sees_new_table),
       T(orphan_freed_after_grace_period), T(pageout_edge_sees_new_table),
       T(fault_waits_for_pending_not_swap), T(reclaim_gives_up_on_busy_mappers))
