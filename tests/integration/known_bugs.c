/* SPDX-License-Identifier: MIT */
/*
 * Minimal reproducers of open bugs in src/ that the fuzzer (tests/fuzz/)
 * found; tests/fuzz/known/README.md describes each. They fail until fixed,
 * so the default run skips them; name a case to run it:
 *
 *   build/plain-d1/tests/integration/known_bugs enomem_partial_write
 *
 * When one passes, move it to the test file where it belongs.
 */
#include "harness.h"
#include "../fuzz/internal.h"	/* hm__split */

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

int main(int argc, char **argv)
{
	static const struct t_case cases[] = {
		T(enomem_partial_write),
		T(exclusive_2m_after_split_elsewhere),
	};

	if (argc < 2)
		fprintf(stderr, "known_bugs: open bugs, run only when named (see tests/fuzz/known/README.md)\n");
	return t_main(argc, argv, cases, argc < 2 ? 0 : sizeof(cases) / sizeof(cases[0]));
}
