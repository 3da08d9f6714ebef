/* SPDX-License-Identifier: MIT */
/*
 * A failed hm_write wrote no byte (issue 7, item 11). A write that spans
 * pages either completes or returns an error with the range reading back
 * exactly as before: when memory runs out part way (memory used up, or the
 * allocation failpoint at every allocation the write makes, with and
 * without huge pages, and copy-on-write after fork), and when another
 * thread write-protects part of the range meanwhile.
 */
#define _GNU_SOURCE	/* thread.h: pthread_timedjoin_np */
#include <pthread.h>
#include <sched.h>

#include "harness.h"
#include "hooks.h"
#include "thread.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define PAGES 8
#define LEN (PAGES * 4096)


static uint8_t before[LEN], src[LEN], got[LEN];

/* The pages of [a, a + LEN) in @mask written whole, the others untouched;
 * before[] is what the range reads as. */
static int prepare(struct hm_mm *mm, uint64_t a, unsigned mask)
{
	memset(before, 0, sizeof(before));
	for (int p = 0; p < PAGES; p++) {
		if (!(mask & (1u << p)))
			continue;
		memset(before + p * 4096, 0x30 + p, 4096);
		if (hm_write(mm, a + p * 4096ull, before + p * 4096, 4096))
			return -1;
	}
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 7 + 1);
	return 0;
}

/* The range reads as @want. */
static bool reads_as(struct hm_mm *mm, uint64_t a, const uint8_t *want)
{
	memset(got, 0xee, sizeof(got));
	return hm_read(mm, a, got, LEN) == 0 && memcmp(got, want, LEN) == 0;
}

/* The write every case makes: from inside page 0 to inside page 7. */
static int big_write(struct hm_mm *mm, uint64_t a)
{
	return hm_write(mm, a + 100, src + 100, LEN - 200);
}

static void expect_written(struct hm_mm *mm, uint64_t a)
{
	uint8_t want[LEN];

	memcpy(want, before, LEN);
	memcpy(want + 100, src + 100, LEN - 200);
	CHECK(reads_as(mm, a, want));
}

/* Memory used up by another mapping: the write fails at its first page
 * not yet faulted in; then with two frames free, part way through. */
static void memory_used_up(void)
{
	struct hm_system *sys = t_system(16 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, fill, off, v = 1;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, LEN, RW, PA, &a) == 0);
	REQUIRE(prepare(mm, a, 0x89) == 0);	/* pages 0, 3 and 7 */
	REQUIRE(hm_mmap(mm, 0, 32 * MiB, RW, PA, &fill) == 0);
	for (off = 0; off < 32 * MiB && hm_write(mm, fill + off, &v, 8) == 0; off += 4096)
		;
	REQUIRE(off < 32 * MiB);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), 0);
	STEP(sys);

	CHECK_EQ(big_write(mm, a), -ENOMEM);
	/* Two frames: pages 1 and 2 are faulted in, page 4 finds none. */
	CHECK_EQ(hm_munmap(mm, fill + 8 * 4096, 2 * 4096), 0);
	hm_drain(sys);	/* munmap frees after a grace period */
	CHECK_EQ(t_stat(sys, "nr_free_pages"), 2);
	CHECK_EQ(big_write(mm, a), -ENOMEM);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), 0);
	STEP(sys);
	/* Reading pages never faulted in needs memory too. */
	CHECK_EQ(hm_munmap(mm, fill, 8 * 4096), 0);
	CHECK(reads_as(mm, a, before));
	CHECK_EQ(big_write(mm, a), 0);
	expect_written(mm, a);
	STEP(sys);
	hm_system_destroy(sys);
}

struct fp_case {
	const char *name;
	int pmd;		/* HM_THP_* for 2 MiB pages */
	bool fork;		/* write into pages shared with a child */
	unsigned written;	/* pages written before (prepare's mask) */
};

/* One attempt: fail the @nth allocation of the write. Returns the
 * failpoint's hits (0: the write no longer reaches the nth). */
static long fp_attempt(const struct fp_case *fc, long nth, bool persistent, unsigned *enomem)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, fc->pmd, HM_DEPOSIT_EAGER);
	struct hm_mm *mm, *child = NULL;
	uint64_t a, free0 = t_stat(sys, "nr_free_pages");

	/* The range straddles a 2 MiB boundary (the mapping is 2 MiB-aligned):
	 * pages 0-3 and 4-7 lie in two huge pages when those are allowed. */
	if (hm_mm_create(sys, &mm) || hm_mmap(mm, 0, 8 * MiB, RW, PA, &a))
		exit(2);
	a += 2 * MiB - 4 * 4096;
	if (prepare(mm, a, fc->written) || (fc->fork && hm_fork(mm, &child)))
		exit(2);

	hm__fail_arm(sys, nth, persistent);
	int r = big_write(mm, a);
	long hits = hm__fail_hits(sys);
	hm__fail_arm(sys, 0, false);

	STEP(sys);
	if (r == -ENOMEM) {
		(*enomem)++;
		CHECK(reads_as(mm, a, before));
	} else {
		CHECK_EQ(r, 0);
		expect_written(mm, a);
	}
	if (child)
		CHECK(reads_as(child, a, before));
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_free_pages") + t_zero_frames(sys), free0);
	hm_system_destroy(sys);
	return hits;
}

static void failpoint(void)
{
	static const struct fp_case cases[] = {
		{ "4 KiB pages", HM_THP_NEVER, false, 0x89 },
		{ "2 MiB pages", HM_THP_ALWAYS, false, 0x09 },	/* the second 2 MiB not yet */
		{ "4 KiB, COW", HM_THP_NEVER, true, 0x89 },
		{ "2 MiB, COW", HM_THP_ALWAYS, true, 0x89 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (int persistent = 0; persistent < 2; persistent++) {
			unsigned enomem = 0;
			long n = 1;

			while (fp_attempt(&cases[i], n, persistent, &enomem) && n < 10000)
				n++;
			fprintf(stderr, "    %-12s %s: %ld allocations, %u attempts returned -ENOMEM\n",
				cases[i].name, persistent ? "persistent" : "transient ", n - 1, enomem);
			CHECK(n > 2);		/* the write allocates more than once */
			CHECK(!persistent || enomem > 0);	/* a transient one finds another frame */
		}
}

/* One thread writes 16 bytes across a page boundary, over and over; the
 * other makes the second page read-only and writable again. Each write
 * lands whole or not at all. */
struct race {
	struct hm_mm *mm;
	uint64_t a;
	int stop;		/* atomic */
	uint64_t attempts;	/* writes tried so far; atomic */
	uint64_t toggles;	/* read-only and back, so far; atomic */
	unsigned long bad_prot;
};

/* Let the writer try twice more, so that each protection is seen. */
static void let_write(struct race *rc)
{
	uint64_t from = __atomic_load_n(&rc->attempts, __ATOMIC_ACQUIRE);

	while (__atomic_load_n(&rc->attempts, __ATOMIC_ACQUIRE) < from + 2 &&
	       !__atomic_load_n(&rc->stop, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void *toggler(void *arg)
{
	struct race *rc = arg;

	while (!__atomic_load_n(&rc->stop, __ATOMIC_ACQUIRE)) {
		rc->bad_prot += hm_mprotect(rc->mm, rc->a + 4096, 4096, PROT_READ) != 0;
		let_write(rc);
		rc->bad_prot += hm_mprotect(rc->mm, rc->a + 4096, 4096, RW) != 0;
		let_write(rc);
		__atomic_add_fetch(&rc->toggles, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void concurrent_mprotect(void)
{
	struct race rc = { 0 };
	struct hm_system *sys;
	unsigned long bad = 0, ok = 0, efault = 0;
	uint64_t last = 0;

	t_flags = 0;	/* STEP checks at the end; not after each of thousands of calls */
	sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	REQUIRE(hm_mm_create(sys, &rc.mm) == 0);
	REQUIRE(hm_mmap(rc.mm, 0, 2 * 4096, RW, PA, &rc.a) == 0);
	pthread_t t = t_spawn(toggler, &rc);
	for (uint64_t k = 1; __atomic_load_n(&rc.toggles, __ATOMIC_ACQUIRE) < 100; k++) {
		uint64_t w[2] = { k, k }, r[2] = { 0, 0 };
		int e = hm_write(rc.mm, rc.a + 4088, w, 16);

		__atomic_add_fetch(&rc.attempts, 1, __ATOMIC_RELEASE);

		if (e == 0) {
			last = k;
			ok++;
		} else {
			efault += e == -EFAULT;
			bad += e != -EFAULT;
		}
		bad += hm_read(rc.mm, rc.a + 4088, r, 16) != 0 || r[0] != last || r[1] != last;
	}
	__atomic_store_n(&rc.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	fprintf(stderr, "    %lu writes done, %lu refused\n", ok, efault);
	CHECK_EQ(bad, 0);
	CHECK_EQ(rc.bad_prot, 0);
	CHECK(ok > 0 && efault > 0);
	STEP(sys);
	hm_system_destroy(sys);
	t_flags = HM_CHECK;
}

T_MAIN(T(memory_used_up), T(failpoint), T(concurrent_mprotect))
