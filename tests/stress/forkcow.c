/* SPDX-License-Identifier: MIT */
/*
 * Forks of a child (a third address space mapping the parent's pages) while
 * the parent copies on write. Plain builds check the data; under
 * SAN=thread this is where ThreadSanitizer once saw the folio's
 * maybe-shared flag written under the folio lock and read without it.
 */
#include <pthread.h>

#include "harness.h"

#define LEN (4 * MiB)

static struct hm_mm *parent;
static uint64_t base;
static int stop;
static unsigned long fork_errors, write_errors;

static void *forker(void *arg)
{
	(void)arg;
	for (int i = 0; i < 60; i++) {
		struct hm_mm *c, *g;

		if (hm_fork(parent, &c)) {
			fork_errors++;
			break;
		}
		if (hm_fork(c, &g) == 0)	/* a third mm: both slots taken */
			hm_mm_destroy(g);
		else
			fork_errors++;
		hm_mm_destroy(c);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *writer(void *arg)
{
	uint64_t v = 1, got;

	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		for (uint64_t off = 0; off < LEN; off += 4096, v++) {
			if (hm_write(parent, base + off, &v, 8) || hm_read(parent, base + off, &got, 8) ||
			    got != v)
				write_errors++;
		}
	}
	return NULL;
}

static void fork_third_while_cow(void)
{
	t_flags = 0;
	struct hm_system *sys = t_system(128 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, LEN, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, &base) == 0);
	pthread_t tf, tw;
	REQUIRE(pthread_create(&tf, NULL, forker, NULL) == 0);
	REQUIRE(pthread_create(&tw, NULL, writer, NULL) == 0);
	pthread_join(tf, NULL);
	pthread_join(tw, NULL);
	CHECK_EQ(fork_errors, 0);
	CHECK_EQ(write_errors, 0);
	STEP(sys);
	hm_mm_destroy(parent);
	STEP(sys);
	hm_system_destroy(sys);
}

T_MAIN(T(fork_third_while_cow))
