/* SPDX-License-Identifier: MIT */
/*
 * The reverse map: from a folio, every (address space, address, level)
 * that maps it, through fork chains, splits, unmaps and exits.
 */
#include "harness.h"
#include "../../src/mm/mm.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

struct hit {
	struct hm_mm *mm;
	uint64_t va;
	unsigned level;
};

static struct hit hits[2048];
static unsigned nhits;

static void collect(struct hm_mm *mm, uint64_t va, unsigned level, void *arg)
{
	(void)arg;
	if (nhits < 2048)
		hits[nhits++] = (struct hit){ mm, va, level };
}

/* rmap of the folio mapped at @va in @mm, with every mm locked. */
static uint64_t rmap_at(struct hm_system *sys, struct hm_mm *mm, uint64_t va)
{
	unsigned level;

	nhits = 0;
	pthread_mutex_lock(&sys->mms_lock);
	for (struct hm_mm *m = sys->mms; m; m = m->next)
		hm_down_read(&m->mmap_lock);
	hm_pte_t e = pt_get(hm_pt_walk(&sys->phys, mm->root, sys->top, va, &level));
	uint64_t n = 0;
	if (pt_mapped(e))
		n = hm_rmap_walk(sys, hm_folio_head(&sys->phys, pt_pfn(e, level)), collect, NULL);
	for (struct hm_mm *m = sys->mms; m; m = m->next)
		hm_up_read(&m->mmap_lock);
	pthread_mutex_unlock(&sys->mms_lock);
	return n;
}

static bool has(struct hm_mm *mm, uint64_t va, unsigned level)
{
	for (unsigned i = 0; i < nhits; i++)
		if (hits[i].mm == mm && hits[i].va == va && hits[i].level == level)
			return true;
	return false;
}

static void fork_chain(void)
{
	struct hm_system *sys = t_system(256 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *a, *b, *c;
	uint64_t base, v = 1;

	REQUIRE(hm_mm_create(sys, &a) == 0);
	REQUIRE(hm_mmap(a, 0, 4 * MiB, RW, PA, &base) == 0);
	CHECK_EQ(hm_write(a, base, &v, 8), 0);
	CHECK_EQ(hm_write(a, base + 2 * MiB, &v, 8), 0);
	CHECK_EQ(rmap_at(sys, a, base), 1);
	CHECK(has(a, base, 1));

	REQUIRE(hm_fork(a, &b) == 0);
	REQUIRE(hm_fork(b, &c) == 0);
	CHECK_EQ(rmap_at(sys, c, base), 3);
	CHECK(has(a, base, 1) && has(b, base, 1) && has(c, base, 1));

	/* b splits its mapping (mprotect one page): 512 PTEs in b. */
	CHECK_EQ(hm_mprotect(b, base + 4096, 4096, PROT_READ), 0);
	CHECK_EQ(rmap_at(sys, a, base), 2 + 512);
	CHECK(has(b, base + 4096, 0) && has(b, base + 511 * 4096, 0) && has(c, base, 1));
	/* c unmaps half of it. */
	CHECK_EQ(hm_munmap(c, base, 2 * MiB), 0);
	CHECK_EQ(rmap_at(sys, a, base), 1 + 512);
	CHECK(!has(c, base, 1));
	/* b exits: only a is left; the family survives. */
	hm_mm_destroy(b);
	CHECK_EQ(rmap_at(sys, a, base), 1);
	CHECK(has(a, base, 1));
	/* A page c copied on write belongs to c alone. */
	CHECK_EQ(hm_write(c, base + 2 * MiB + 8192, &v, 8), 0);
	CHECK_EQ(rmap_at(sys, c, base + 2 * MiB + 8192), 1);
	CHECK(has(c, base + 2 * MiB + 8192, 0));
	CHECK_EQ(rmap_at(sys, a, base + 2 * MiB), 1 + 511);	/* a's leaf and c's 511 PTEs */
	CHECK_EQ(hm_check(sys), 0);
	hm_system_destroy(sys);
}

T_MAIN(T(fork_chain))
