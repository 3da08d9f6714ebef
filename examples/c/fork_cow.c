/* SPDX-License-Identifier: MIT */
/*
 * Fork and copy-on-write: after hm_fork, parent and child map the same
 * 2 MiB page (mapcount 2, exclusive in neither). The child's first write
 * copies only the 4 KiB it writes (HM_COW_4K, the default: its huge
 * mapping is split from its own deposit), so the parent keeps its data.
 * Once the child is gone, the page has one mapper again (exclusive, exact)
 * and the parent's write reuses it in place: no copy, no split.
 *
 *   cc -std=gnu11 fork_cow.c $(pkg-config --cflags --libs hugemm) -o fork_cow
 *
 * Every call's result is checked; any surprise ends the program with 1.
 */
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
		fprintf(stderr, "fork_cow: %s: %s\n", what, strerror(-r));
		exit(1);
	}
}

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fork_cow: MISMATCH: %s\n", what);
		failures++;
	}
}

static uint64_t counter(struct hm_system *sys, const char *name)
{
	uint64_t v = 0;

	must(hm_stat(sys, name, &v), name);
	return v;
}

static uint64_t read_word(struct hm_mm *mm, uint64_t va)
{
	uint64_t v = 0;

	must(hm_read(mm, va, &v, sizeof(v)), "hm_read");
	return v;
}

static void write_word(struct hm_mm *mm, uint64_t va, uint64_t v)
{
	must(hm_write(mm, va, &v, sizeof(v)), "hm_write");
}

static struct hm_mapping show(struct hm_mm *mm, const char *who, uint64_t va)
{
	struct hm_mapping m;

	must(hm_query(mm, va, &m), "hm_query");
	printf("  %-7s %#llx: %4llu KiB page at pa %#-10llx mapcount %u, %s, %s\n", who,
	       (unsigned long long)va, (unsigned long long)(m.size >> 10), (unsigned long long)m.pa,
	       m.mapcount, m.exclusive ? "exclusive" : "shared", m.prot & PROT_WRITE ? "writable" : "read-only");
	return m;
}

int main(void)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *parent, *child;
	struct hm_mapping p, c;
	uint64_t a;

	hm_config_default(&cfg);	/* cow = HM_COW_4K, 2 MiB pages everywhere */
	cfg.phys_bytes = 64 * MiB;
	must(hm_system_create(&cfg, &sys), "hm_system_create");
	must(hm_mm_create(sys, &parent), "hm_mm_create");
	must(hm_mmap(parent, 0, 2 * MiB, RW, PA, &a), "hm_mmap");
	for (uint64_t off = 0; off < 2 * MiB; off += 4 * KiB)
		write_word(parent, a + off, 1000 + off / (4 * KiB));

	printf("fork_cow: 2 MiB written by the parent:\n");
	p = show(parent, "parent", a);
	expect(p.size == 2 * MiB && p.mapcount == 1 && p.exclusive, "one 2 MiB page, the parent's alone");

	must(hm_fork(parent, &child), "hm_fork");
	printf("after hm_fork, both map it, read-only until one of them writes:\n");
	p = show(parent, "parent", a);
	c = show(child, "child", a);
	expect(p.pa == c.pa && p.mapcount == 2 && !p.exclusive && !c.exclusive,
	       "after fork: the same page, mapcount 2, exclusive in neither");
	expect(!(p.prot & PROT_WRITE), "shared pages are write-protected");

	uint64_t copies = counter(sys, "cow_copy");

	write_word(child, a + 4 * KiB, 7);
	printf("the child writes one word at +4 KiB: only that 4 KiB is copied:\n");
	c = show(child, "child", a + 4 * KiB);
	p = show(parent, "parent", a + 4 * KiB);
	expect(c.size == 4 * KiB && c.exclusive && c.pa != p.pa, "the child has its own 4 KiB copy");
	expect(p.size == 2 * MiB, "the parent's mapping stays 2 MiB");
	expect(counter(sys, "cow_copy") == copies + 1, "one 4 KiB copy (cow_copy)");
	expect(read_word(child, a + 4 * KiB) == 7, "the child reads its write");
	expect(read_word(parent, a + 4 * KiB) == 1001, "the parent still reads its own data");
	expect(read_word(child, a + 8 * KiB) == 1002, "the child still reads the rest as shared");
	c = show(child, "child", a + 8 * KiB);
	expect(c.pa == p.pa + 8 * KiB && c.mapcount == 2, "the rest stays shared");

	hm_mm_destroy(child);
	printf("child destroyed: the page has one mapper again, and a write reuses it:\n");
	p = show(parent, "parent", a);
	expect(p.mapcount == 1 && p.exclusive, "exclusive again once the child is gone");
	uint64_t reuse = counter(sys, "cow_reuse"), pa = p.pa;

	write_word(parent, a, 9);
	p = show(parent, "parent", a);
	expect(p.pa == pa && p.size == 2 * MiB && (p.prot & PROT_WRITE), "written in place, still 2 MiB");
	expect(counter(sys, "cow_reuse") == reuse + 1, "one reuse (cow_reuse)");
	expect(read_word(parent, a) == 9 && read_word(parent, a + 4 * KiB) == 1001, "the parent's data");
	printf("  counters: cow_copy %llu, cow_split_pmd %llu, cow_reuse %llu\n",
	       (unsigned long long)counter(sys, "cow_copy"), (unsigned long long)counter(sys, "cow_split_pmd"),
	       (unsigned long long)counter(sys, "cow_reuse"));

	expect(hm_check(sys) == 0, "hm_check finds nothing wrong");
	hm_mm_destroy(parent);
	hm_system_destroy(sys);
	printf("fork_cow: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
