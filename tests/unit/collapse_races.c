/* SPDX-License-Identifier: MIT */
/*
 * Races of collapse (issue 9), each made deterministic with a race point:
 * one thread is stopped at a named point while the test runs the other
 * operation there. Each test fails with its fix reverted (said per test).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>

#include "harness.h"
#include "race.h"

#define HOLD_MS 200	/* long enough for a collapse that should wait to go on */
#define STOP_MS 10000	/* how long to wait for a thread to reach its point */

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

/* One operation on a thread of its own: MADV_COLLAPSE of 2 MiB at @va, a
 * khugepaged pass of 512 pages, or a write of @word at @va. */
struct job {
	struct hm_system *sys;
	struct hm_mm *mm;
	uint64_t va, word;
	uint64_t collapsed;
	int r;
	int go;		/* collapse_on_go: set, relaxed, when it may start */
};

static void *collapse_job(void *p)
{
	struct job *j = p;

	j->r = hm_madvise(j->mm, j->va, 2 * MiB, MADV_COLLAPSE);
	return NULL;
}

static void *scan_job(void *p)
{
	struct job *j = p;

	j->r = hm_khugepaged_scan(j->sys, 512, &j->collapsed);
	return NULL;
}

static void *write_job(void *p)
{
	struct job *j = p;

	j->r = hm_write(j->mm, j->va, &j->word, sizeof(j->word));
	return NULL;
}

static void *destroy_job(void *p)
{
	struct job *j = p;

	hm_mm_destroy(j->mm);
	return NULL;
}

static struct hm_system *race_system(void)
{
	t_flags = 0;
	return t_system(64 * MiB, HM_THP_NEVER, HM_THP_MADVISE, HM_DEPOSIT_EAGER);
}

/* 2 MiB of 4 KiB pages in a MADV_HUGEPAGE range. */
static uint64_t small_pages(struct hm_mm *mm)
{
	uint64_t a = 0;

	CHECK_EQ(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a), 0);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_NOHUGEPAGE), 0);
	CHECK_EQ(t_fill(mm, a, 2 * MiB, 1), 0);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_HUGEPAGE), 0);
	return a;
}

/* A new mm with 2 MiB of 4 KiB pages at *a, and a khugepaged pass on a
 * thread of its own (*t, with *s) stopped inside their collapse, between
 * its look and its change, holding no lock. */
static bool scan_stopped(struct hm_system *sys, struct hm_mm **mm, uint64_t *a, struct job *s, pthread_t *t)
{
	if (hm_mm_create(sys, mm))
		return false;
	*a = small_pages(*mm);
	*s = (struct job){ .sys = sys };
	if (hm__race_arm("collapse_unlocked", 0))
		return false;
	*t = t_spawn(scan_job, s);
	return hm__race_wait("collapse_unlocked", STOP_MS) == 0;
}

/*
 * A write through a translation cached before the collapse cleared the
 * PMD entry is still copying into the old page: the collapse must wait for
 * it (a grace period) before it copies, or the write is lost. Reverted
 * (collapse_sync without hm_rcu_synchronize), the collapse copies at once
 * and the new huge page misses the write.
 */
static void write_during_collapse(void)
{
	struct hm_system *sys = race_system();
	struct hm_mm *mm;
	uint64_t word = 0x434f4c4c41505345ull, v = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = small_pages(mm);
	REQUIRE(hm__race_arm("access_copy", 0) == 0);
	struct job w = { .mm = mm, .va = a + 5 * 4096 + 16, .word = word };
	pthread_t tw = t_spawn(write_job, &w);	/* inside its read section */
	REQUIRE(hm__race_wait("access_copy", STOP_MS) == 0);
	REQUIRE(hm__race_arm("collapse_cleared", 0) == 0);
	struct job c = { .mm = mm, .va = a };
	pthread_t tc = t_spawn(collapse_job, &c);
	REQUIRE(hm__race_wait("collapse_cleared", STOP_MS) == 0);
	hm__race_release("collapse_cleared");
	CHECK(!t_join_within(tc, HOLD_MS));	/* waits for the write */
	hm__race_release("access_copy");
	CHECK(t_join_within(tw, STOP_MS));
	CHECK(t_join_within(tc, STOP_MS));
	CHECK_EQ(w.r, 0);
	CHECK_EQ(c.r, 0);
	CHECK_EQ(hm_read(mm, a + 5 * 4096 + 16, &v, 8), 0);
	CHECK_EQ(v, word);
	struct hm_mapping m;
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.size, 2 * MiB);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * khugepaged looked at a range and let go of mmap_lock; the range is
 * unmapped and mapped again, MADV_NOHUGEPAGE, with 4 KiB pages written.
 * The collapse must look at the VMA again under mmap_lock for writing and
 * leave it. Reverted (commit() trusting the first pass: hm_vma_lookup in
 * place of huge_vma), it makes a 2 MiB page where none may go.
 */
static void unmap_during_scan(void)
{
	struct hm_system *sys = race_system();
	struct hm_mm *mm;
	struct job s;
	pthread_t ts;
	uint64_t a, b = 0;

	REQUIRE(scan_stopped(sys, &mm, &a, &s, &ts));
	CHECK_EQ(hm_munmap(mm, a, 2 * MiB), 0);
	CHECK_EQ(hm_mmap(mm, a, 2 * MiB, RW, PA | MAP_FIXED, &b), 0);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_NOHUGEPAGE), 0);
	CHECK_EQ(t_fill(mm, a, 2 * MiB, 2), 0);
	hm__race_release("collapse_unlocked");
	CHECK(t_join_within(ts, STOP_MS));
	CHECK_EQ(s.r, 0);
	CHECK_EQ(s.collapsed, 0);
	struct hm_mapping m;
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.size, 4096);
	CHECK_EQ(t_pages_wrong(mm, a, 2 * MiB, 2, 0, 0), 0);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(mm);
	hm_drain(sys);
	uint64_t anon = 1;
	CHECK_EQ(hm_stat(sys, "nr_anon_pages", &anon), 0);
	CHECK_EQ(anon, 0);
	hm_system_destroy(sys);
}

/*
 * A 2 MiB page split by mprotect and back is being refolded; a fork comes
 * between the look and the change, and shares the page with a child (its
 * PTEs now read-only). The refolded PMD leaf must keep the PTEs'
 * permission. Reverted (the leaf writable as the VMA is), the parent's
 * next write lands in the page the child shares.
 */
static void fork_during_refold(void)
{
	struct hm_system *sys = race_system();
	struct hm_mm *mm, *child = NULL;
	uint64_t a = 0, word = 0x464f524b464f524bull;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	CHECK_EQ(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a), 0);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_HUGEPAGE), 0);
	CHECK_EQ(t_fill(mm, a, 2 * MiB, 3), 0);
	CHECK_EQ(hm_mprotect(mm, a + 4096, 4096, PROT_READ), 0);
	CHECK_EQ(hm_mprotect(mm, a + 4096, 4096, RW), 0);
	REQUIRE(hm__race_arm("collapse_unlocked", 0) == 0);
	struct job c = { .mm = mm, .va = a };
	pthread_t tc = t_spawn(collapse_job, &c);
	REQUIRE(hm__race_wait("collapse_unlocked", STOP_MS) == 0);
	REQUIRE(hm_fork(mm, &child) == 0);
	hm__race_release("collapse_unlocked");
	CHECK(t_join_within(tc, STOP_MS));
	CHECK_EQ(c.r, 0);
	struct hm_mapping m;
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.size, 2 * MiB);
	CHECK_EQ(m.mapcount, 2);
	t_poke(mm, a, word);
	CHECK_EQ(t_peek(mm, a), word);
	CHECK_EQ(t_pages_wrong(child, a, 2 * MiB, 3, 0, 0), 0);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * khugepaged works on an mm without sys->mms_lock, which address spaces
 * coming and going, fork and hm_check need: here the scan is stopped
 * inside a collapse (between its look and its change) while this thread
 * does all of those on other mms, each returning before the scan is let
 * go on. Reverted (mms_lock held across the collapse, as before),
 * hm_mm_create waits for the stopped scan: the test hangs there.
 */
static void mms_during_scan(void)
{
	struct hm_system *sys = race_system();
	struct hm_mm *mm, *other, *child;
	struct hm_mapping m;
	struct job s;
	pthread_t ts;
	uint64_t a;

	REQUIRE(scan_stopped(sys, &mm, &a, &s, &ts));
	REQUIRE(hm_mm_create(sys, &other) == 0);
	small_pages(other);
	REQUIRE(hm_fork(other, &child) == 0);
	CHECK_EQ(hm_check(sys), 0);
	hm_mm_destroy(child);
	hm_mm_destroy(other);
	CHECK_EQ(hm_check(sys), 0);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.size, 4096);		/* the scan is still stopped */
	hm__race_release("collapse_unlocked");
	CHECK(t_join_within(ts, STOP_MS));
	CHECK_EQ(s.r, 0);
	CHECK_EQ(s.collapsed, 1);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.size, 2 * MiB);
	CHECK_EQ(t_pages_wrong(mm, a, 2 * MiB, 1, 0, 0), 0);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * The mm khugepaged is collapsing in is destroyed: destroy waits until the
 * scan has left it (one 2 MiB step), then frees everything. Reverted (no
 * wait in hm_mm_destroy), destroy returns while the scan is stopped and
 * the scan then works on freed memory (ASan: heap-use-after-free).
 */
static void destroy_during_scan(void)
{
	struct hm_system *sys = race_system();
	struct hm_mm *mm;
	struct job s;
	pthread_t ts;
	uint64_t a;

	REQUIRE(scan_stopped(sys, &mm, &a, &s, &ts));
	struct job d = { .mm = mm };
	pthread_t td = t_spawn(destroy_job, &d);
	CHECK(!t_join_within(td, HOLD_MS));	/* waits for the scan */
	hm__race_release("collapse_unlocked");
	CHECK(t_join_within(ts, STOP_MS));
	CHECK(t_join_within(td, STOP_MS));
	CHECK_EQ(s.r, 0);
	CHECK_EQ(s.collapsed, 1);	/* finished its step on a live mm */
	hm__race_reset();
	hm_drain(sys);
	uint64_t anon = 1;
	CHECK_EQ(hm_stat(sys, "nr_anon_pages", &anon), 0);
	CHECK_EQ(anon, 0);
	STEP(sys);
	hm_system_destroy(sys);
}

static void *collapse_on_go(void *p)
{
	struct job *j = p;

	while (!__atomic_load_n(&j->go, __ATOMIC_RELAXED))
		sched_yield();
	return collapse_job(j);
}

/*
 * A first fault sets the VMA's anon_vma family under mmap_lock for
 * reading, and MADV_COLLAPSE reads it under mmap_lock for reading too:
 * nothing orders the two but the store's release, so the read must be an
 * acquire load. The fault is stopped right after its store (anon_vma_set),
 * before its own later reads of the field hide the store from
 * ThreadSanitizer's shadow memory; the collapsing thread, started before
 * the fault, learns that only through a relaxed flag; the two work on
 * different 2 MiB of the VMA, under tables an earlier VMA's fault made, so
 * that the collapse reads nothing the fault stored but the family. (The
 * fault counted itself into mmap_lock before its store: a collapse that
 * counts itself on the same CPU's count is ordered after that, not after
 * the store.) Under
 * SAN=thread, a plain read in huge_vma (as before) is reported on every
 * run. The collapse finds no table there: -EINVAL, and nothing changes.
 */
static void collapse_after_first_fault(void)
{
	struct hm_system *sys = race_system();
	struct hm_mm *mm;
	uint64_t a = 0, v = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	/* 6 MiB under one PMD table */
	REQUIRE(hm_mmap(mm, GiB, 6 * MiB, RW, PA | MAP_FIXED, &a) == 0);
	/* [a, a + 2 MiB): a VMA of its own (its flags differ), faulted now */
	REQUIRE(hm_madvise(mm, a, 2 * MiB, MADV_NOHUGEPAGE) == 0);
	REQUIRE(hm_madvise(mm, a + 2 * MiB, 4 * MiB, MADV_HUGEPAGE) == 0);
	t_poke(mm, a, 1);
	struct job c = { .mm = mm, .va = a + 2 * MiB, .r = 1 };
	struct job w = { .mm = mm, .va = a + 4 * MiB, .word = 0x6661756c74ull, .r = 1 };

	REQUIRE(hm__race_arm("anon_vma_set", 0) == 0);
	pthread_t tc = t_spawn(collapse_on_go, &c);
	pthread_t tw = t_spawn(write_job, &w);	/* the VMA's first fault */

	CHECK_EQ(hm__race_wait("anon_vma_set", STOP_MS), 0);
	__atomic_store_n(&c.go, 1, __ATOMIC_RELAXED);
	CHECK(t_join_within(tc, STOP_MS));
	hm__race_release("anon_vma_set");
	CHECK(t_join_within(tw, STOP_MS));
	hm__race_reset();
	CHECK_EQ(c.r, -EINVAL);
	CHECK_EQ(w.r, 0);
	struct hm_mapping m;
	CHECK_EQ(hm_query(mm, a + 2 * MiB, &m), 0);
	CHECK_EQ(m.size, 0);	/* nothing mapped there still */
	CHECK_EQ(hm_read(mm, a + 4 * MiB, &v, sizeof(v)), 0);
	CHECK_EQ(v, w.word);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

T_MAIN(T(write_during_collapse), T(unmap_during_scan), T(fork_during_refold), T(mms_during_scan),
       T(destroy_during_scan), T(collapse_after_first_fault))
