/* SPDX-License-Identifier: MIT */
/*
 * Basic mapping: map three regions, write and read them back through
 * hugemm's MMU, and ask hm_query what backs each one: a 1 GiB page where
 * MADV_HUGEPAGE allows it, 2 MiB pages under the default policy, 4 KiB
 * pages under MADV_NOHUGEPAGE. Then unmap 4 KiB inside the 1 GiB page
 * (the page is split from its deposit; the rest keeps its data) and make a
 * page read-only (a write there is -EFAULT, as SIGSEGV would be).
 *
 *   cc -std=gnu11 basic.c $(pkg-config --cflags --libs hugemm) -o basic
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
#define GiB (1ull << 30)
#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static int failures;

/* A call that must succeed: stop at once if it did not. */
static void must(int r, const char *what)
{
	if (r) {
		fprintf(stderr, "basic: %s: %s\n", what, strerror(-r));
		exit(1);
	}
}

/* A fact that must hold: say so if it does not, and go on. */
static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "basic: MISMATCH: %s\n", what);
		failures++;
	}
}

static const char *size_name(uint64_t size)
{
	return size == GiB ? "1 GiB" : size == 2 * MiB ? "2 MiB" : size == 4 * KiB ? "4 KiB" : "none";
}

/* Write a word, read it back, and return what hm_query says maps it. */
static struct hm_mapping write_read_query(struct hm_mm *mm, uint64_t va, uint64_t value)
{
	struct hm_mapping m;
	uint64_t back = 0;

	must(hm_write(mm, va, &value, sizeof(value)), "hm_write");
	must(hm_read(mm, va, &back, sizeof(back)), "hm_read");
	expect(back == value, "a word reads back as written");
	must(hm_query(mm, va, &m), "hm_query");
	printf("  %#14llx  wrote %#llx, read it back; mapped by a %s page at pa %#llx, %s\n",
	       (unsigned long long)va, (unsigned long long)value, size_name(m.size),
	       (unsigned long long)m.pa, m.prot & PROT_WRITE ? "read-write" : "read-only");
	return m;
}

int main(void)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm;
	struct hm_mapping m;
	uint64_t big, mid, small, v;
	int r;

	hm_config_default(&cfg);	/* PUD THP on madvise, PMD THP always */
	cfg.phys_bytes = 2 * GiB;	/* reserved address space; the host backs what is used */
	must(hm_system_create(&cfg, &sys), "hm_system_create");
	must(hm_mm_create(sys, &mm), "hm_mm_create");

	/* A mapping of 1 GiB or more is placed 1 GiB-aligned, so one 1 GiB
	 * page fits once MADV_HUGEPAGE allows it there. */
	must(hm_mmap(mm, 0, GiB, RW, PA, &big), "hm_mmap 1 GiB");
	must(hm_madvise(mm, big, GiB, MADV_HUGEPAGE), "MADV_HUGEPAGE");
	must(hm_mmap(mm, 0, 4 * MiB, RW, PA, &mid), "hm_mmap 4 MiB");
	must(hm_mmap(mm, 0, 64 * KiB, RW, PA, &small), "hm_mmap 64 KiB");
	must(hm_madvise(mm, small, 64 * KiB, MADV_NOHUGEPAGE), "MADV_NOHUGEPAGE");

	printf("basic: three regions, one write each:\n");
	m = write_read_query(mm, big + 8, 0x1111);
	expect(m.size == GiB && m.va == big, "the first write into the MADV_HUGEPAGE region maps 1 GiB");
	m = write_read_query(mm, mid + 3 * MiB, 0x2222);
	expect(m.size == 2 * MiB && m.va == mid + 2 * MiB, "the 4 MiB region gets 2 MiB pages");
	m = write_read_query(mm, small + 4 * KiB, 0x3333);
	expect(m.size == 4 * KiB, "MADV_NOHUGEPAGE gets 4 KiB pages");

	/* Unmapping 4 KiB inside the 1 GiB page splits it (PUD -> PMD ->
	 * PTE, tables from its deposit); everything else stays mapped. */
	must(hm_munmap(mm, big + 2 * MiB, 4 * KiB), "hm_munmap");
	must(hm_query(mm, big + 2 * MiB, &m), "hm_query hole");
	expect(m.size == 0, "the hole is unmapped");
	r = hm_read(mm, big + 2 * MiB, &v, sizeof(v));
	expect(r == -EFAULT, "reading the hole is -EFAULT");
	struct hm_mapping near, far;

	must(hm_query(mm, big + 2 * MiB + 4 * KiB, &near), "hm_query next to hole");
	expect(near.size == 4 * KiB, "next to the hole: 4 KiB pages");
	must(hm_query(mm, big + 512 * MiB, &far), "hm_query far from hole");
	expect(far.size == 2 * MiB, "further away: 2 MiB pages");
	v = 0;
	must(hm_read(mm, big + 8, &v, sizeof(v)), "hm_read after split");
	expect(v == 0x1111, "the split kept the data");
	printf("  munmap of 4 KiB in the 1 GiB page: the hole reads %s, its neighbour is a %s page,\n"
	       "  512 MiB on a %s page, the first word still %#llx\n",
	       r == -EFAULT ? "-EFAULT" : "WITHOUT A FAULT", size_name(near.size), size_name(far.size),
	       (unsigned long long)v);

	/* Read-only: a write is refused and changes nothing. */
	must(hm_mprotect(mm, small, 4 * KiB, PROT_READ), "hm_mprotect");
	v = 0x4444;
	r = hm_write(mm, small, &v, sizeof(v));
	expect(r == -EFAULT, "a write to a read-only page is -EFAULT");
	must(hm_read(mm, small, &v, sizeof(v)), "hm_read read-only page");
	expect(v == 0, "the refused write wrote nothing");
	printf("  write to a read-only page: %s; the page still reads %llu\n",
	       r == -EFAULT ? "-EFAULT" : "ALLOWED", (unsigned long long)v);

	/* Bad input is an error code, never a crash. */
	expect(hm_mmap(mm, 0, 0, RW, PA, &v) == -EINVAL, "hm_mmap of 0 bytes is -EINVAL");
	expect(hm_munmap(mm, big + 1, 4 * KiB) == -EINVAL, "an unaligned munmap is -EINVAL");

	uint64_t split_pud = 0, split_pmd = 0;

	must(hm_stat(sys, "thp_split_pud", &split_pud), "hm_stat thp_split_pud");
	must(hm_stat(sys, "thp_split_pmd", &split_pmd), "hm_stat thp_split_pmd");
	expect(split_pud == 1 && split_pmd == 1, "one PUD split and one PMD split");
	printf("  counters: thp_split_pud %llu, thp_split_pmd %llu\n", (unsigned long long)split_pud,
	       (unsigned long long)split_pmd);

	r = hm_check(sys);
	expect(r == 0, "hm_check finds nothing wrong");
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
	printf("basic: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
