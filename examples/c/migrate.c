/* SPDX-License-Identifier: MIT */
/*
 * Migration between memory nodes: a machine with two nodes; an address
 * space with 2 MiB and 4 KiB pages, forked so that its pages are shared.
 * hm_migrate moves the range to node 1 for every address space that maps
 * it (the child's view moves too), 2 MiB pages whole, and nothing written
 * is lost. hm_query's node says where each page is; the counters say what
 * moved.
 *
 *   cc -std=gnu11 migrate.c $(pkg-config --cflags --libs hugemm) -o migrate
 *
 * Every call's result is checked; any surprise ends the program with 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hugemm.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static int failures;

static void must(int r, const char *what)
{
	if (r) {
		fprintf(stderr, "migrate: %s: %s\n", what, strerror(-r));
		exit(1);
	}
}

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "migrate: MISMATCH: %s\n", what);
		failures++;
	}
}

static uint64_t counter(struct hm_system *sys, const char *name)
{
	uint64_t v = 0;

	must(hm_stat(sys, name, &v), name);
	return v;
}

/* Pages of [a, a + len) on @node, with the right data. */
static uint64_t pages_on(struct hm_mm *mm, uint64_t a, uint64_t len, unsigned node)
{
	uint64_t n = 0;

	for (uint64_t off = 0; off < len; off += 4 * KiB) {
		struct hm_mapping m;
		uint64_t v = 0;

		must(hm_query(mm, a + off, &m), "hm_query");
		must(hm_read(mm, a + off, &v, sizeof(v)), "hm_read");
		n += m.node == node && v == a + off;
	}
	return n;
}

static void where(struct hm_mm *mm, const char *who, uint64_t va)
{
	struct hm_mapping m;

	must(hm_query(mm, va, &m), "hm_query");
	printf("  %-6s %#llx: %4llu KiB page on node %u at pa %#llx\n", who, (unsigned long long)va,
	       (unsigned long long)(m.size >> 10), m.node, (unsigned long long)m.pa);
}

int main(void)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm, *child;
	uint64_t huge, small;
	const uint64_t huge_len = 4 * MiB, small_len = 64 * KiB;
	const uint64_t pages = (huge_len + small_len) / (4 * KiB);

	hm_config_default(&cfg);
	cfg.phys_bytes = 128 * MiB;
	cfg.nr_nodes = 2;		/* 64 MiB each */
	must(hm_system_create(&cfg, &sys), "hm_system_create");
	must(hm_mm_create(sys, &mm), "hm_mm_create");
	must(hm_mmap(mm, 0, huge_len, RW, PA, &huge), "hm_mmap");
	must(hm_mmap(mm, 0, small_len, RW, PA, &small), "hm_mmap");
	must(hm_madvise(mm, small, small_len, MADV_NOHUGEPAGE), "MADV_NOHUGEPAGE");
	/* Each page holds its own address. */
	for (uint64_t off = 0; off < huge_len; off += 4 * KiB) {
		uint64_t v = huge + off;

		must(hm_write(mm, v, &v, sizeof(v)), "hm_write");
	}
	for (uint64_t off = 0; off < small_len; off += 4 * KiB) {
		uint64_t v = small + off;

		must(hm_write(mm, v, &v, sizeof(v)), "hm_write");
	}
	must(hm_fork(mm, &child), "hm_fork");

	uint64_t free1 = counter(sys, "node1/nr_free_pages");

	printf("migrate: two nodes of 64 MiB; 4 MiB of 2 MiB pages and 64 KiB of 4 KiB pages, forked:\n");
	where(mm, "parent", huge);
	where(mm, "parent", small);
	expect(pages_on(mm, huge, huge_len, 0) + pages_on(mm, small, small_len, 0) == pages,
	       "everything starts on node 0");

	must(hm_migrate(mm, huge, huge_len, 1), "hm_migrate 2 MiB pages");
	must(hm_migrate(mm, small, small_len, 1), "hm_migrate 4 KiB pages");
	printf("after hm_migrate to node 1, in the parent and in the child:\n");
	where(mm, "parent", huge);
	where(child, "child", huge);
	where(mm, "parent", small);
	where(child, "child", small);
	expect(pages_on(mm, huge, huge_len, 1) + pages_on(mm, small, small_len, 1) == pages,
	       "the parent's pages are on node 1, intact");
	expect(pages_on(child, huge, huge_len, 1) + pages_on(child, small, small_len, 1) == pages,
	       "the child's view moved with them (the pages are shared)");

	struct hm_mapping m;

	must(hm_query(mm, huge, &m), "hm_query");
	expect(m.size == 2 * MiB, "2 MiB pages moved whole");
	expect(counter(sys, "pgmigrate_success") == pages, "pgmigrate_success counts 4 KiB units");
	expect(counter(sys, "thp_migration_success") == huge_len / (2 * MiB), "two huge pages moved whole");
	hm_drain(sys);	/* the old frames back in the free lists */
	expect(counter(sys, "node1/nr_free_pages") == free1 - pages, "node 1 gave exactly those frames");
	printf("  pgmigrate_success %llu, thp_migration_success %llu, node1/nr_free_pages %llu -> %llu\n",
	       (unsigned long long)counter(sys, "pgmigrate_success"),
	       (unsigned long long)counter(sys, "thp_migration_success"), (unsigned long long)free1,
	       (unsigned long long)counter(sys, "node1/nr_free_pages"));

	/* A node that does not exist, or a range with a hole, changes nothing. */
	expect(hm_migrate(mm, huge, huge_len, 2) == -EINVAL, "node 2 does not exist: -EINVAL");
	expect(hm_migrate(mm, small - 4 * KiB, 8 * KiB, 0) == -EFAULT, "a range with a hole: -EFAULT");
	expect(pages_on(mm, huge, huge_len, 1) == huge_len / (4 * KiB), "the errors moved nothing");

	expect(hm_check(sys) == 0, "hm_check finds nothing wrong");
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
	printf("migrate: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
