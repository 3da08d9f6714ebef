/* SPDX-License-Identifier: MIT */
/*
 * hm_migrate (issue 9): 4 KiB, 2 MiB and 1 GiB pages to another node and
 * back, with their data, for every address space that maps them; errors;
 * a target node that runs full; swapped pages staying in swap.
 */
#define _GNU_SOURCE
#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static struct hm_system *sys_nodes(uint64_t phys, unsigned nodes, int pud, int pmd)
{
	return t_system_nodes(phys, nodes, pud, pmd, HM_DEPOSIT_EAGER);
}

/* Every 4 KiB page of [a, a + len) is mapped by a page of @size on @node. */
static unsigned long pages_off(struct hm_mm *mm, uint64_t a, uint64_t len, uint64_t size, unsigned node)
{
	unsigned long bad = 0;

	for (uint64_t off = 0; off < len; off += 4096) {
		struct hm_mapping m;

		bad += hm_query(mm, a + off, &m) || m.size != size || m.node != node;
	}
	return bad;
}

static void move_and_back(uint64_t phys, uint64_t size, int pud, int pmd, uint64_t len)
{
	struct hm_system *sys = sys_nodes(phys, 2, pud, pmd);
	struct hm_mm *mm;
	uint64_t a, free1 = t_stat(sys, "node1/nr_free_pages");
	uint64_t pages = len / 4096;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, len, 7), 0);
	CHECK_EQ(pages_off(mm, a, len, size, 0), 0);
	STEP(sys);
	CHECK_EQ(hm_migrate(mm, a, len, 1), 0);
	STEP(sys);
	CHECK_EQ(pages_off(mm, a, len, size, 1), 0);
	CHECK_EQ(t_pages_wrong(mm, a, len, 7, 0, 0), 0);
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), pages);
	CHECK_EQ(t_stat(sys, "thp_migration_success"), size > 4096 ? len / size : 0);
	CHECK_EQ(t_stat(sys, "pgmigrate_fail"), 0);
	hm_drain(sys);
	CHECK_EQ(t_stat(sys, "node1/nr_free_pages"), free1 - pages);
	/* Again: nothing to do. */
	CHECK_EQ(hm_migrate(mm, a, len, 1), 0);
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), pages);
	/* And back. */
	CHECK_EQ(hm_migrate(mm, a, len, 0), 0);
	STEP(sys);
	CHECK_EQ(pages_off(mm, a, len, size, 0), 0);
	CHECK_EQ(t_pages_wrong(mm, a, len, 7, 0, 0), 0);
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), 2 * pages);
	hm_drain(sys);
	CHECK_EQ(t_stat(sys, "node1/nr_free_pages"), free1);
	uint64_t v;
	CHECK_EQ(hm_stat(sys, "node2/nr_free_pages", &v), -ENOENT);
	CHECK_EQ(hm_stat(sys, "node1/nr_free_page", &v), -ENOENT);
	/* one spelling per node: no leading zeros */
	CHECK_EQ(hm_stat(sys, "node01/nr_free_pages", &v), -ENOENT);
	CHECK_EQ(hm_stat(sys, "node00/nr_free_pages", &v), -ENOENT);
	CHECK_EQ(hm_stat(sys, "node0/nr_free_pages", &v), 0);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void migrate_4k(void)
{
	move_and_back(64 * MiB, 4096, HM_THP_NEVER, HM_THP_NEVER, 64 * 4096);
}

static void migrate_2m(void)
{
	move_and_back(64 * MiB, 2 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, 4 * MiB);
}

static void migrate_1g(void)
{
	unsigned f = t_flags;

	t_flags = 0;	/* STEP()s check; not every call */
	move_and_back(4 * GiB, GiB, HM_THP_ALWAYS, HM_THP_ALWAYS, GiB);
	t_flags = f;
}

/* A page shared after fork moves for both address spaces; a write after
 * it still copies. */
static void migrate_shared_after_fork(void)
{
	struct hm_system *sys = sys_nodes(64 * MiB, 2, HM_THP_NEVER, HM_THP_ALWAYS);
	struct hm_mm *mm, *child;
	struct hm_mapping m, c;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB + 8 * 4096, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, 4 * MiB + 8 * 4096, 3), 0);
	REQUIRE(hm_fork(mm, &child) == 0);
	STEP(sys);
	CHECK_EQ(hm_migrate(mm, a, 4 * MiB + 8 * 4096, 1), 0);
	STEP(sys);
	for (uint64_t off = 0; off < 4 * MiB + 8 * 4096; off += 4096) {
		CHECK_EQ(hm_query(mm, a + off, &m), 0);
		CHECK_EQ(hm_query(child, a + off, &c), 0);
		CHECK_EQ(m.node, 1);
		CHECK_EQ(c.pa, m.pa);
		CHECK_EQ(m.mapcount, 2);
	}
	CHECK_EQ(t_pages_wrong(child, a, 4 * MiB + 8 * 4096, 3, 0, 0), 0);
	/* Copy-on-write still isolates the two. */
	t_poke(child, a + 8, 0xc0ffee);
	t_poke(child, a + 4 * MiB + 8, 0xc0ffee);
	CHECK_EQ(t_pages_wrong(mm, a, 4 * MiB + 8 * 4096, 3, 0, 0), 0);
	CHECK_EQ(t_peek(child, a + 8), 0xc0ffee);
	CHECK_EQ(t_peek(child, a + 4 * MiB + 8), 0xc0ffee);
	STEP(sys);
	/* The child's copies move alone; the parent's stay. */
	CHECK_EQ(hm_migrate(child, a, 4 * MiB + 8 * 4096, 0), 0);
	CHECK_EQ(hm_query(mm, a + 4 * MiB + 4096, &m), 0);
	CHECK_EQ(m.node, 0);	/* shared: moved for both */
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.node, 0);	/* the child maps part of it: moved whole */
	CHECK_EQ(hm_query(mm, a + 4 * MiB, &m), 0);
	CHECK_EQ(m.node, 1);	/* the parent's alone since the copy */
	CHECK_EQ(t_pages_wrong(mm, a, 4 * MiB + 8 * 4096, 3, 0, 0), 0);
	CHECK_EQ(hm_query(child, a + 8, &c), 0);
	CHECK_EQ(c.node, 0);
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* PROT_NONE and read-only pages keep their protection and data. */
static void migrate_protections(void)
{
	struct hm_system *sys = sys_nodes(64 * MiB, 2, HM_THP_NEVER, HM_THP_ALWAYS);
	struct hm_mm *mm;
	struct hm_mapping m;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 6 * MiB, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, 6 * MiB, 5), 0);
	CHECK_EQ(hm_mprotect(mm, a, 2 * MiB, PROT_NONE), 0);
	CHECK_EQ(hm_mprotect(mm, a + 2 * MiB, 2 * MiB, PROT_READ), 0);
	CHECK_EQ(hm_mprotect(mm, a + 4 * MiB, 8192, PROT_NONE), 0);
	STEP(sys);
	CHECK_EQ(hm_migrate(mm, a, 6 * MiB, 1), 0);
	STEP(sys);
	CHECK_EQ(hm_query(mm, a + 2 * MiB, &m), 0);
	CHECK_EQ(m.node, 1);
	CHECK_EQ(m.prot, PROT_READ);
	CHECK_EQ(m.size, 2 * MiB);
	uint64_t v;
	CHECK_EQ(hm_read(mm, a, &v, 8), -EFAULT);
	CHECK_EQ(hm_write(mm, a + 2 * MiB, &v, 8), -EFAULT);
	CHECK_EQ(hm_mprotect(mm, a, 6 * MiB, RW), 0);
	CHECK_EQ(t_pages_wrong(mm, a, 6 * MiB, 5, 0, 0), 0);
	CHECK_EQ(pages_off(mm, a, 2 * MiB, 2 * MiB, 1), 0);
	CHECK_EQ(hm_query(mm, a + 4 * MiB, &m), 0);
	CHECK_EQ(m.node, 1);
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), 3 * 512);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void migrate_bad_input(void)
{
	struct hm_system *sys = sys_nodes(64 * MiB, 2, HM_THP_NEVER, HM_THP_NEVER);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 16 * 4096, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, 16 * 4096, 1), 0);
	CHECK_EQ(hm_migrate(NULL, a, 4096, 1), -EINVAL);
	CHECK_EQ(hm_migrate(mm, a, 4096, 2), -EINVAL);
	CHECK_EQ(hm_migrate(mm, a, 4096, 64), -EINVAL);
	CHECK_EQ(hm_migrate(mm, a + 1, 4096, 1), -EINVAL);
	CHECK_EQ(hm_migrate(mm, a, 0, 1), -EINVAL);
	CHECK_EQ(hm_migrate(mm, a, UINT64_MAX - a + 4096, 1), -EINVAL);
	CHECK_EQ(hm_munmap(mm, a + 15 * 4096, 4096), 0);
	CHECK_EQ(hm_migrate(mm, a, 16 * 4096, 1), -EFAULT);
	CHECK_EQ(hm_migrate(mm, a - 4096, 2 * 4096, 1), -EFAULT);
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), 0);
	CHECK_EQ(pages_off(mm, a, 15 * 4096, 4096, 0), 0);
	/* Unfaulted pages are nothing to move; a length is rounded up. */
	REQUIRE(hm_mmap(mm, 0, 4 * 4096, RW, PA, &a) == 0);
	CHECK_EQ(hm_migrate(mm, a, 4 * 4096 - 1, 1), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* The target runs full: what moved stays moved, the rest stays put, all
 * of it intact. */
static void migrate_enomem(void)
{
	struct hm_system *sys = sys_nodes(64 * MiB, 2, HM_THP_NEVER, HM_THP_NEVER);
	struct hm_mm *filler, *mm;
	uint64_t f, a, free0 = t_stat(sys, "nr_free_pages");

	REQUIRE(hm_mm_create(sys, &filler) == 0);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	/* Fill node 1 but for 100 frames, by moving pages there. */
	uint64_t room = t_stat(sys, "node1/nr_free_pages") - 100;
	REQUIRE(hm_mmap(filler, 0, room * 4096, RW, PA, &f) == 0);
	CHECK_EQ(t_fill(filler, f, room * 4096, 9), 0);
	CHECK_EQ(hm_migrate(filler, f, room * 4096, 1), 0);
	CHECK_EQ(t_stat(sys, "node1/nr_free_pages"), 100);
	REQUIRE(hm_mmap(mm, 0, 300 * 4096, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, 300 * 4096, 4), 0);
	CHECK_EQ(hm_migrate(mm, a, 300 * 4096, 1), -ENOMEM);
	STEP(sys);
	CHECK(t_stat(sys, "pgmigrate_fail") > 0);
	unsigned long on1 = 0, on0 = 0;
	for (uint64_t off = 0; off < 300 * 4096; off += 4096) {
		struct hm_mapping m;

		CHECK_EQ(hm_query(mm, a + off, &m), 0);
		on1 += m.node == 1;
		on0 += m.node == 0;
	}
	CHECK_EQ(on1 + on0, 300);
	CHECK(on1 > 0 && on1 <= 100);
	CHECK_EQ(t_pages_wrong(mm, a, 300 * 4096, 4, 0, 0), 0);
	CHECK_EQ(t_pages_wrong(filler, f, room * 4096, 9, 0, 0), 0);
	hm_mm_destroy(mm);
	hm_mm_destroy(filler);
	hm_drain(sys);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), free0);
	STEP(sys);
	hm_system_destroy(sys);
}

/* Pages in swap stay there; the present ones move. */
static void migrate_swapped_stay(void)
{
	struct hm_config cfg;

	t_config(&cfg, 64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	cfg.nr_nodes = 2;
	cfg.swap_path = t_swap_path();
	cfg.swap_bytes = 16 * MiB;
	struct hm_system *sys = t_system_cfg(&cfg);
	struct hm_mm *mm;
	struct hm_mapping m;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 16 * 4096, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, 16 * 4096, 2), 0);
	CHECK_EQ(hm_madvise(mm, a, 8 * 4096, MADV_PAGEOUT), 0);
	CHECK_EQ(t_stat(sys, "pswpout"), 8);
	CHECK_EQ(hm_migrate(mm, a, 16 * 4096, 1), 0);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), 8);
	for (uint64_t off = 0; off < 16 * 4096; off += 4096) {
		CHECK_EQ(hm_query(mm, a + off, &m), 0);
		if (off < 8 * 4096)
			CHECK(m.swapped);
		else
			CHECK(!m.swapped && m.node == 1);
	}
	CHECK_EQ(t_pages_wrong(mm, a, 16 * 4096, 2, 0, 0), 0);
	/* Swapped in again (into the swap cache), then moved. */
	CHECK_EQ(hm_migrate(mm, a, 16 * 4096, 1), 0);
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), 16);
	CHECK_EQ(pages_off(mm, a, 16 * 4096, 4096, 1), 0);
	CHECK_EQ(t_pages_wrong(mm, a, 16 * 4096, 2, 0, 0), 0);
	/* And out again, from the new frames (a clean swap-cache page is
	 * dropped without a write). */
	CHECK_EQ(hm_madvise(mm, a, 16 * 4096, MADV_PAGEOUT), 0);
	CHECK_EQ(t_pages_wrong(mm, a, 16 * 4096, 2, 0, 0), 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

T_MAIN(T(migrate_4k), T(migrate_2m), T(migrate_1g), T(migrate_shared_after_fork), T(migrate_protections),
       T(migrate_bad_input), T(migrate_enomem), T(migrate_swapped_stay))
