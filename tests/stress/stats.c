/* SPDX-License-Identifier: MIT */
/*
 * Statistics are read without locks while everything they count changes:
 * one thread reads every counter over and over while others create and
 * destroy address spaces and map, fault and unmap (which takes page-table
 * slots from the cache and gives them back). Under TSan this is what shows
 * a counter written under a lock but read without it.
 *
 * While things move, nr_mms must stay within what the workers can have
 * alive; once they are done, everything is back.
 */
#include <pthread.h>

#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define NWORKERS 2
#define ROUNDS 150

static struct hm_system *sys;
static int finished;	/* workers done; atomic */

static void *worker(void *arg)
{
	unsigned long *bad = arg;

	for (int i = 0; i < ROUNDS; i++) {
		struct hm_mm *mm;
		uint64_t a;

		if (hm_mm_create(sys, &mm)) {
			++*bad;
			continue;
		}
		/* 4 KiB pages over two PMD ranges: two PTE tables to take and
		 * give back. */
		*bad += hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) != 0;
		*bad += hm_madvise(mm, a, 4 * MiB, MADV_NOHUGEPAGE) != 0;
		*bad += t_fill(mm, a, 64 * KiB, (uint64_t)i) != 0;
		*bad += t_fill(mm, a + 2 * MiB, 64 * KiB, (uint64_t)i) != 0;
		*bad += hm_munmap(mm, a, 4 * MiB) != 0;
		hm_mm_destroy(mm);
	}
	__atomic_add_fetch(&finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void stats_while_changing(void)
{
	pthread_t th[NWORKERS];
	unsigned long bad[NWORKERS] = { 0 }, reads = 0, out_of_range = 0;
	uint64_t frames;

	sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	frames = t_stat(sys, "phys_bytes") >> 12;
	for (int i = 0; i < NWORKERS; i++)
		REQUIRE(pthread_create(&th[i], NULL, worker, &bad[i]) == 0);
	while (__atomic_load_n(&finished, __ATOMIC_ACQUIRE) < NWORKERS) {
		const char *name;
		uint64_t v;

		for (unsigned i = 0; (name = hm_stat_name(i)); i++) {
			if (hm_stat(sys, name, &v))
				out_of_range++;
			reads++;
		}
		if (!hm_stat(sys, "nr_mms", &v))
			out_of_range += v > NWORKERS;
	}
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NWORKERS; i++)
		CHECK_EQ(bad[i], 0);
	CHECK_EQ(out_of_range, 0);
	CHECK(reads > 0);
	CHECK_EQ(t_stat(sys, "nr_mms"), 0);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), frames);
	STEP(sys);
	hm_system_destroy(sys);
}

T_MAIN(T(stats_while_changing))
