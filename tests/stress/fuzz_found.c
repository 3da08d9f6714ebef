/* SPDX-License-Identifier: MIT */
/*
 * Hand-written reproducers of the bugs in src/ that the fuzzer (tests/fuzz/)
 * and the soak found, fixed since; each case says what it once showed.
 * Their fuzzer inputs are replayed from tests/fuzz/regress/. Two are
 * timing-dependent stress cases (a data race for ThreadSanitizer, and
 * forks against multi-page writes).
 */
#include <pthread.h>

#include "harness.h"
#include "hooks.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

/*
 * API.md: "a failed hm_write wrote no byte". A write across two pages,
 * the first present and the second needing a fault that finds no memory,
 * returns -ENOMEM after writing the first page's part.
 */
static void enomem_partial_write(void)
{
	struct hm_system *sys = t_system(8 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, n, got = 0, v = 0x1122334455667788ull;
	int r = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 16 * MiB, RW, PA, &a) == 0);
	/* fault pages in until memory runs out: page n - 1 is present, n not */
	for (n = 0; n < 4096 && !(r = hm_write(mm, a + n * 4096, &n, 8)); n++)
		;
	REQUIRE(r == -ENOMEM && n > 0);
	CHECK_EQ(hm_write(mm, a + n * 4096 - 4, &v, 8), -ENOMEM);
	CHECK_EQ(hm_read(mm, a + n * 4096 - 4, &got, 4), 0);
	CHECK_EQ(got, 0);	/* fails: the first 4 bytes were written */
	STEP(sys);
	hm_system_destroy(sys);
}

/*
 * include/hugemm.h: "exclusive: exact for 4 KiB and 2 MiB mappings". A 2 MiB
 * leaf whose chunk was split once by another address space (here after
 * fork) still says "not exclusive" after that address space is gone: the
 * chunk's pte_all count and the pages' negative counts cancel out in the
 * map count (1, right) but not in chunk_mapped_once(). Besides the query,
 * the next write takes the leaf for shared and splits it (cow_split_pmd)
 * before reusing the 4 KiB page, instead of reusing the 2 MiB leaf whole;
 * HM_COW_2M copies the 2 MiB.
 */
static void exclusive_2m_after_split_elsewhere(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *parent, *child;
	struct hm_mapping m;
	uint64_t a, v = 1;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, 2 * MiB, RW, PA, &a) == 0);	/* 2 MiB aligned */
	REQUIRE(hm_write(parent, a, &v, 8) == 0);
	REQUIRE(hm_query(parent, a, &m) == 0 && m.size == 2 * MiB);
	REQUIRE(hm_fork(parent, &child) == 0);
	CHECK_EQ(hm__split(parent, a, 0), 0);	/* or munmap 4 KiB of it */
	hm_mm_destroy(parent);
	STEP(sys);
	CHECK_EQ(hm_query(child, a, &m), 0);
	CHECK_EQ(m.size, 2 * MiB);
	CHECK_EQ(m.mapcount, 1);
	CHECK(m.exclusive);	/* fails */
	uint64_t splits = t_stat(sys, "cow_split_pmd");
	CHECK_EQ(hm_write(child, a, &v, 8), 0);
	CHECK_EQ(t_stat(sys, "cow_split_pmd"), splits);	/* fails: split for nothing */
	CHECK_EQ(hm_query(child, a, &m), 0);
	CHECK_EQ(m.size, 2 * MiB);
	STEP(sys);
	hm_system_destroy(sys);
}

/*
 * Under SAN=thread: a data race between one address space's copy-on-write
 * copy of a 4 KiB page and the other's in-place write to that page once it
 * is alone. hm_wp_fault decides "reuse" from hm_leaf_exclusive(), which
 * for a 4 KiB page is hm_page_mapcount() == 1 read with relaxed loads and
 * without the folio lock; so nothing orders the parent's memcpy from the
 * old page (copy_page) before the child's write into it, though the
 * parent dropped its count only after that copy and a grace period. On
 * x86 the hardware orders it; in C11 terms, and for ThreadSanitizer (CI's
 * third run), it is a race. Found by the fuzzer's threaded mode (the forker
 * writing in children while writers copy in the parent). Here two threads
 * hand over through a relaxed flag, which gives TSan no happens-before of
 * its own, so only hugemm's could order the two accesses. Passes without
 * TSan; under it, TSan reports the race.
 */
static struct hm_mm *race_child;
static uint64_t race_a;
static int race_copied, race_rc;

static void *race_child_writes(void *arg)
{
	uint64_t v = 2;

	(void)arg;
	/* a first access registers this thread with liburcu (a mutex, which
	 * would order everything) before the hand-over */
	race_rc = hm_read(race_child, race_a, &v, 8);
	while (!__atomic_load_n(&race_copied, __ATOMIC_RELAXED))
		;
	race_rc |= hm_write(race_child, race_a, &v, 8);	/* reuses the page in place */
	return NULL;
}

static void cow_reuse_race_tsan(void)
{
	struct hm_system *sys;
	/* no HM_CHECK: its locking of every mm would order the two threads */
	t_flags = 0;
	sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	t_flags = HM_CHECK;
	struct hm_mm *parent;
	uint64_t v = 1, reuse;
	pthread_t t;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, 4096, RW, PA, &race_a) == 0);
	REQUIRE(hm_write(parent, race_a, &v, 8) == 0);
	REQUIRE(hm_fork(parent, &race_child) == 0);
	REQUIRE(pthread_create(&t, NULL, race_child_writes, NULL) == 0);
	CHECK_EQ(hm_write(parent, race_a, &v, 8), 0);	/* copies: reads the old page */
	__atomic_store_n(&race_copied, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	CHECK_EQ(race_rc, 0);
	reuse = t_stat(sys, "cow_reuse");
	CHECK_EQ(reuse, 1);
	STEP(sys);
	hm_system_destroy(sys);
}

/*
 * Header: calls that change an mm "wait for accesses already under way,
 * like a TLB shootdown"; hm_fork "waits for operations under way". But a
 * write spanning two pages is two RCU read sections (access() leaves its
 * section between pages, as it must to fault), and fork's shootdown waits
 * only for the one in progress: the child then sees the first page's part
 * of the write and not the second's. Found by the soak (a cookie block
 * across a page boundary, torn in a child). Timing-dependent: one thread
 * writes a 128-byte block across a page boundary over and over, all of it
 * one value per write; the test forks many times and counts children
 * whose block mixes two writes. (By the same reading, a concurrent munmap
 * can turn a started write into -EFAULT after its first page was written.)
 * Fixed by the all-or-nothing multi-page write: it copies under mmap_lock
 * held for reading, which fork takes for writing. HM_FORKS_TEAR sets the
 * number of forks (default 500; the bug showed within a few hundred).
 */
static struct hm_mm *tear_mm;
static uint64_t tear_a;
static int tear_stop;

static void *tear_writer(void *arg)
{
	uint64_t block[16];

	(void)arg;
	for (uint64_t gen = 1; !__atomic_load_n(&tear_stop, __ATOMIC_ACQUIRE); gen++) {
		for (int i = 0; i < 16; i++)
			block[i] = gen;
		if (hm_write(tear_mm, tear_a + 4096 - 64, block, sizeof(block)))
			break;
	}
	return NULL;
}

static void fork_tears_multipage_write(void)
{
	struct hm_system *sys;
	unsigned long torn = 0, forks = 0;
	pthread_t t;

	t_flags = 0;	/* HM_CHECK's locking would order the threads */
	sys = t_system(256 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	t_flags = HM_CHECK;
	const char *env = getenv("HM_FORKS_TEAR");
	unsigned long max_forks = env ? strtoul(env, NULL, 0) : 500;
	REQUIRE(hm_mm_create(sys, &tear_mm) == 0);
	REQUIRE(hm_mmap(tear_mm, 0, 2 * 4096, RW, PA, &tear_a) == 0);
	REQUIRE(pthread_create(&t, NULL, tear_writer, NULL) == 0);
	for (; forks < max_forks && !torn; forks++) {
		struct hm_mm *child;
		uint64_t block[16];

		REQUIRE(hm_fork(tear_mm, &child) == 0);
		CHECK_EQ(hm_read(child, tear_a + 4096 - 64, block, sizeof(block)), 0);
		for (int i = 1; i < 16; i++)
			if (block[i] != block[0]) {
				fprintf(stderr, "fork %lu: the child sees write %llu in the first page, %llu in the second\n",
					forks, (unsigned long long)block[0], (unsigned long long)block[i]);
				torn++;
				break;
			}
		hm_mm_destroy(child);
	}
	__atomic_store_n(&tear_stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	CHECK_EQ(torn, 0);
	STEP(sys);
	hm_system_destroy(sys);
}

T_MAIN(T(enomem_partial_write), T(exclusive_2m_after_split_elsewhere), T(cow_reuse_race_tsan),
       T(fork_tears_multipage_write))
