/* SPDX-License-Identifier: MIT */
/*
 * Exclusivity is exact: hm_query().exclusive and the copy-on-write reuse
 * decision say "this address space alone" exactly when no other maps the
 * page, for any number of address spaces, and a folio back to one mapper is
 * reused in place without a split. Public API only; every step is checked.
 */
#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static struct hm_mapping query(struct hm_mm *mm, uint64_t va)
{
	struct hm_mapping m;

	CHECK_EQ(hm_query(mm, va, &m), 0);
	return m;
}

/*
 * A 2 MiB piece of a 1 GiB page: the parent maps it with a PMD leaf, the
 * child had it split to PTEs and then unmapped every one of them. The
 * parent's leaf is the chunk's only mapping although the chunk's PTE
 * count (kept once for all 512 pages after the split) is not zero.
 */
static void chunk_after_other_unmapped_its_ptes(void)
{
	struct hm_system *sys = t_system(2 * GiB, HM_THP_ALWAYS, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *parent, *child;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, GiB, RW, PA, &a) == 0);
	t_poke(parent, a, 1);
	t_poke(parent, a + 4 * MiB, 2);
	REQUIRE(query(parent, a).size == GiB);
	REQUIRE(hm_fork(parent, &child) == 0);
	STEP(sys);
	/* The child: PUD -> PMD leaves, chunk 0 -> PTEs, then all of chunk 0 gone. */
	CHECK_EQ(hm_munmap(child, a + 4096, 4096), 0);
	CHECK_EQ(hm_munmap(child, a, 2 * MiB), 0);
	STEP(sys);
	/* The parent: PUD -> PMD leaves (an mprotect round trip elsewhere). */
	CHECK_EQ(hm_mprotect(parent, a + 8 * MiB, 2 * MiB, PROT_READ), 0);
	CHECK_EQ(hm_mprotect(parent, a + 8 * MiB, 2 * MiB, RW), 0);
	STEP(sys);

	struct hm_mapping m = query(parent, a);
	CHECK_EQ(m.size, 2 * MiB);
	CHECK_EQ(m.mapcount, 1);
	CHECK(m.exclusive);
	m = query(parent, a + 4 * MiB);	/* chunk 2: still shared */
	CHECK_EQ(m.mapcount, 2);
	CHECK(!m.exclusive);

	uint64_t reuse = t_stat(sys, "cow_reuse"), split = t_stat(sys, "cow_split_pmd");
	uint64_t copy = t_stat(sys, "cow_copy");
	t_poke(parent, a + 8, 3);
	CHECK_EQ(t_stat(sys, "cow_reuse"), reuse + 1);	/* in place: no split, no copy */
	CHECK_EQ(t_stat(sys, "cow_split_pmd"), split);
	CHECK_EQ(t_stat(sys, "cow_copy"), copy);
	m = query(parent, a);
	CHECK_EQ(m.size, 2 * MiB);
	CHECK(m.prot & PROT_WRITE);
	CHECK_EQ(t_peek(parent, a), 1);
	CHECK_EQ(t_peek(parent, a + 8), 3);
	/* The shared chunk still copies on write, and the child keeps its data. */
	t_poke(parent, a + 4 * MiB, 4);
	CHECK_EQ(t_peek(child, a + 4 * MiB), 2);
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(parent);
	STEP(sys);
	hm_system_destroy(sys);
}

/*
 * A 1 GiB page mapped by three address spaces, then by one again: whichever
 * survives (one with a slot in the folio, or the one that had none) writes
 * it in place, without splitting it.
 */
static void three_mappers_back_to_one(unsigned survivor)
{
	struct hm_system *sys = t_system(2 * GiB, HM_THP_ALWAYS, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm[3];
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm[0]) == 0);
	REQUIRE(hm_mmap(mm[0], 0, GiB, RW, PA, &a) == 0);
	t_poke(mm[0], a, 10);
	REQUIRE(hm_fork(mm[0], &mm[1]) == 0);
	REQUIRE(hm_fork(mm[0], &mm[2]) == 0);
	STEP(sys);
	for (unsigned i = 0; i < 3; i++) {
		struct hm_mapping m = query(mm[i], a);

		CHECK_EQ(m.size, GiB);
		CHECK_EQ(m.mapcount, 3);
		CHECK(!m.exclusive);
	}
	for (unsigned i = 0; i < 3; i++)
		if (i != survivor)
			hm_mm_destroy(mm[i]);
	STEP(sys);
	struct hm_mapping m = query(mm[survivor], a);
	CHECK_EQ(m.mapcount, 1);
	CHECK(m.exclusive);

	uint64_t reuse = t_stat(sys, "cow_reuse"), split = t_stat(sys, "cow_split_pud");
	t_poke(mm[survivor], a + 64, 11);
	CHECK_EQ(t_stat(sys, "cow_reuse"), reuse + 1);
	CHECK_EQ(t_stat(sys, "cow_split_pud"), split);
	CHECK_EQ(t_stat(sys, "cow_copy"), 0);
	m = query(mm[survivor], a);
	CHECK_EQ(m.size, GiB);
	CHECK(m.prot & PROT_WRITE);
	CHECK_EQ(t_peek(mm[survivor], a), 10);
	STEP(sys);
	hm_mm_destroy(mm[survivor]);
	STEP(sys);
	hm_system_destroy(sys);
}

static void survivor_first(void) { three_mappers_back_to_one(0); }
static void survivor_second(void) { three_mappers_back_to_one(1); }
static void survivor_untracked(void) { three_mappers_back_to_one(2); }

/*
 * Two address spaces and a 2 MiB page split in one of them, then unmapped
 * there page by page: the other's leaf becomes exclusive exactly when the
 * last page goes.
 */
static void exclusive_exactly_when_last_goes(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *parent, *child;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, 2 * MiB, RW, PA, &a) == 0);
	t_poke(parent, a, 5);
	REQUIRE(hm_fork(parent, &child) == 0);
	for (uint64_t off = 0; off < 2 * MiB; off += 4096) {
		CHECK(!query(parent, a).exclusive);
		CHECK_EQ(hm_munmap(child, a + off, 4096), 0);
	}
	STEP(sys);
	struct hm_mapping m = query(parent, a);
	CHECK_EQ(m.size, 2 * MiB);
	CHECK_EQ(m.mapcount, 1);
	CHECK(m.exclusive);
	hm_mm_destroy(child);
	hm_mm_destroy(parent);
	STEP(sys);
	hm_system_destroy(sys);
}

/*
 * An mm that unmaps part of its own huge page alone: nothing else maps the
 * rest, so mprotect back to writable makes it writable at once, and a
 * write copies nothing.
 */
static void own_partial_unmap_stays_exclusive(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a) == 0);
	t_poke(mm, a, 1);
	t_poke(mm, a + 4096, 5);
	t_poke(mm, a + 8192, 6);
	/* Through this thread's cached 2 MiB translation too: the unmaps
	 * must make it stale although nothing is freed or pinned. */
	CHECK_EQ(t_peek(mm, a + 4096), 5);
	CHECK_EQ(hm_madvise(mm, a + 4096, 4096, MADV_DONTNEED), 0);
	CHECK_EQ(t_peek(mm, a + 4096), 0);
	CHECK_EQ(hm_munmap(mm, a + 8192, 4096), 0);
	uint64_t v;
	CHECK_EQ(hm_read(mm, a + 8192, &v, 8), -EFAULT);
	CHECK_EQ(hm_mprotect(mm, a, 4096, PROT_READ), 0);
	CHECK_EQ(hm_mprotect(mm, a, 4096, RW), 0);
	struct hm_mapping m = query(mm, a);
	CHECK(m.exclusive);
	CHECK(m.prot & PROT_WRITE);
	t_poke(mm, a + 8, 2);
	CHECK_EQ(t_stat(sys, "cow_copy"), 0);
	CHECK_EQ(t_stat(sys, "cow_reuse"), 0);
	CHECK_EQ(t_peek(mm, a), 1);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

int main(int argc, char **argv)
{
	static const struct t_case cases[] = {
		T(chunk_after_other_unmapped_its_ptes), T(survivor_first), T(survivor_second),
		T(survivor_untracked), T(exclusive_exactly_when_last_goes),
		T(own_partial_unmap_stays_exclusive),
	};

	t_flags = 0;	/* 1 GiB pages: STEP() checks instead, after each step */
	return t_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
