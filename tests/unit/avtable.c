/* SPDX-License-Identifier: MIT */
/*
 * The reverse map looks a folio's family up in sys->avs while other address
 * spaces create families, which may move that table. One thread walks the
 * rmap of a folio of its own mm over and over (holding that mm's
 * mmap_lock, as the walk requires); another faults in hundreds of new
 * VMAs of a second mm, each of which registers a family. Under TSan this
 * shows a table read without its lock; everywhere, every walk must find
 * the folio's one mapping.
 */
#include <pthread.h>

#include "harness.h"
#include "../../src/mm/mm.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define FAMILIES 600

static struct hm_system *sys;
static int finished;	/* atomic */

static void *make_families(void *arg)
{
	unsigned long *bad = arg;
	struct hm_mm *mm;

	if (hm_mm_create(sys, &mm)) {
		++*bad;
		__atomic_store_n(&finished, 1, __ATOMIC_RELEASE);
		return NULL;
	}
	for (unsigned i = 0; i < FAMILIES; i++) {
		uint64_t a, v = i;

		/* A VMA of its own (a neighbour with a family never merges
		 * with one that has none yet), and its first fault. */
		*bad += hm_mmap(mm, 0, 4096, RW, PA, &a) != 0;
		*bad += hm_write(mm, a, &v, 8) != 0;
	}
	hm_mm_destroy(mm);
	__atomic_store_n(&finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void walk_while_families_come(void)
{
	struct hm_mm *mm;
	pthread_t th;
	unsigned long bad = 0, walks = 0, wrong = 0;
	uint64_t a, v = 7;
	unsigned level;

	t_flags = 0;	/* hm_check between steps would serialise the two */
	sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	CHECK_EQ(hm_mmap(mm, 0, 4096, RW, PA, &a), 0);
	CHECK_EQ(hm_write(mm, a, &v, 8), 0);
	hm_pte_t e = pt_get(hm_pt_walk(&sys->phys, mm->root, sys->top, a, &level));
	REQUIRE(pt_mapped(e) && level == 0);
	uint32_t head = pt_pfn(e, 0);

	REQUIRE(pthread_create(&th, NULL, make_families, &bad) == 0);
	do {
		hm_down_read(&mm->mmap_lock);
		wrong += hm_rmap_walk(sys, head, NULL, NULL) != 1;
		hm_up_read(&mm->mmap_lock);
		walks++;
	} while (!__atomic_load_n(&finished, __ATOMIC_ACQUIRE));
	pthread_join(th, NULL);
	CHECK_EQ(bad, 0);
	CHECK_EQ(wrong, 0);
	CHECK(walks > 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

T_MAIN(T(walk_while_families_come))
