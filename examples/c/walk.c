/* SPDX-License-Identifier: MIT */
/*
 * Walking the page tables: hm_walk returns the raw x86-64 entry read at
 * each level on the way to an address, and the host address of the table
 * that holds it, as a hardware walker (or a VMM handing the tables to a
 * CPU) sees them. This program walks a 1 GiB, a 2 MiB and a 4 KiB page,
 * a read-only page and an unmapped address, prints every level with its
 * flags, and checks the entries against each other and against hm_query.
 *
 *   cc -std=gnu11 walk.c $(pkg-config --cflags --libs hugemm) -o walk
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
static uintptr_t phys_base;	/* host address of physical address 0 */

static void must(int r, const char *what)
{
	if (r) {
		fprintf(stderr, "walk: %s: %s\n", what, strerror(-r));
		exit(1);
	}
}

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "walk: MISMATCH: %s\n", what);
		failures++;
	}
}

static const char *level_name(unsigned level, unsigned levels)
{
	static const char *const names[] = { "pte", "pmd", "pud", "p4d" };

	return level == levels - 1 ? "pgd" : names[level];
}

/* Which 512-entry slot of its table @va uses at @level. */
static unsigned slot(uint64_t va, unsigned level) { return (va >> (12 + 9 * level)) & 511; }

static void print_flags(uint64_t e)
{
	printf("%s%s%s%s%s%s%s", e & HM_ENTRY_PRESENT ? " P" : " -", e & HM_ENTRY_WRITE ? " RW" : " ro", e & HM_ENTRY_USER ? " US" : "",
	       e & HM_ENTRY_ACCESSED ? " A" : "", e & HM_ENTRY_DIRTY ? " D" : "", e & HM_ENTRY_HUGE ? " PS" : "", e & HM_ENTRY_NX ? " NX" : "");
}

/* Walk @va, print every level, and check what every walk must satisfy. */
static struct hm_walk walk(struct hm_mm *mm, uint64_t va, const char *what)
{
	struct hm_walk w;
	struct hm_mapping m;

	must(hm_walk(mm, va, &w), "hm_walk");
	must(hm_query(mm, va, &m), "hm_query");
	printf("%s, %#llx: leaf_level %d\n", what, (unsigned long long)va, w.leaf_level);
	for (int i = (int)w.levels - 1; i >= 0 && w.table[i]; i--) {
		uint64_t e = w.entry[i];

		static const char *const sizes[] = { "4 KiB", "2 MiB", "1 GiB" };

		printf("  %s [%3u] entry 0x%016llx ", level_name((unsigned)i, w.levels), slot(va, (unsigned)i),
		       (unsigned long long)e);
		if (e)
			print_flags(e);
		if (i == w.leaf_level)
			printf("  -> %s page at pa %#llx\n", sizes[i],
			       (unsigned long long)(e & HM_ENTRY_FRAME & ~((4096ull << (9 * i)) - 1)));
		else if (e & HM_ENTRY_PRESENT)
			printf("  -> table at pa %#llx\n", (unsigned long long)(e & HM_ENTRY_FRAME));
		else
			printf(" %s\n", e ? "(not present)" : "(empty: nothing mapped here yet)");
		/* A table entry's frame is the physical address of the table
		 * one level down; physical memory is one host block, so the
		 * host address minus the physical one is the same for all. */
		if (i > 0 && w.table[i - 1]) {
			uintptr_t base = (uintptr_t)w.table[i - 1] - (uintptr_t)(e & HM_ENTRY_FRAME);

			if (!phys_base)
				phys_base = base;
			expect(base == phys_base, "every table sits at the same host offset");
			expect((e & (HM_ENTRY_PRESENT | HM_ENTRY_WRITE | HM_ENTRY_USER | HM_ENTRY_ACCESSED | HM_ENTRY_HUGE)) == (HM_ENTRY_PRESENT | HM_ENTRY_WRITE | HM_ENTRY_USER | HM_ENTRY_ACCESSED),
			       "table entries are P RW US A: the leaf alone sets the rights");
		}
	}
	if (w.leaf_level >= 0) {
		uint64_t size = 4096ull << (9 * w.leaf_level);
		uint64_t leaf = w.entry[w.leaf_level];

		expect(m.size == size, "hm_query's size is the leaf's level");
		expect((leaf & HM_ENTRY_FRAME & ~(size - 1)) == m.pa, "the leaf's frame is hm_query's pa");
		expect(!!(leaf & HM_ENTRY_WRITE) == !!(m.prot & PROT_WRITE), "RW is hm_query's PROT_WRITE");
	} else {
		expect(m.size == 0 || m.swapped || m.prot == PROT_NONE, "no leaf: nothing present");
	}
	return w;
}

int main(void)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm;
	struct hm_walk w;
	uint64_t big, mid, small, v = 42;

	hm_config_default(&cfg);
	cfg.phys_bytes = 2 * GiB;
	must(hm_system_create(&cfg, &sys), "hm_system_create");
	must(hm_mm_create(sys, &mm), "hm_mm_create");
	must(hm_mmap(mm, 0, GiB, RW, PA, &big), "hm_mmap");
	must(hm_madvise(mm, big, GiB, MADV_HUGEPAGE), "MADV_HUGEPAGE");
	must(hm_mmap(mm, 0, 2 * MiB, RW, PA, &mid), "hm_mmap");
	must(hm_mmap(mm, 0, 16 * KiB, RW, PA, &small), "hm_mmap");
	must(hm_madvise(mm, small, 16 * KiB, MADV_NOHUGEPAGE), "MADV_NOHUGEPAGE");
	must(hm_write(mm, big, &v, sizeof(v)), "hm_write");
	must(hm_write(mm, mid, &v, sizeof(v)), "hm_write");
	must(hm_write(mm, small, &v, sizeof(v)), "hm_write");
	must(hm_write(mm, small + 4 * KiB, &v, sizeof(v)), "hm_write");
	must(hm_mprotect(mm, small + 4 * KiB, 4 * KiB, PROT_READ), "hm_mprotect");

	w = walk(mm, big, "1 GiB page");
	expect(w.leaf_level == 2 && (w.entry[2] & (HM_ENTRY_HUGE | HM_ENTRY_DIRTY)) == (HM_ENTRY_HUGE | HM_ENTRY_DIRTY), "a dirty PUD leaf");
	w = walk(mm, mid + 4 * KiB, "2 MiB page");
	expect(w.leaf_level == 1 && (w.entry[1] & HM_ENTRY_HUGE), "a PMD leaf");
	w = walk(mm, small, "4 KiB page");
	expect(w.leaf_level == 0 && (w.entry[0] & (HM_ENTRY_WRITE | HM_ENTRY_DIRTY)) == (HM_ENTRY_WRITE | HM_ENTRY_DIRTY), "a dirty, writable PTE");
	w = walk(mm, small + 4 * KiB, "4 KiB page, read-only");
	expect(w.leaf_level == 0 && !(w.entry[0] & HM_ENTRY_WRITE), "a read-only PTE");
	w = walk(mm, small + 8 * KiB, "4 KiB mapped, never touched");
	expect(w.leaf_level == -1 && w.entry[0] == 0 && w.table[0], "an empty PTE slot");
	w = walk(mm, 1ull << 40, "nothing mapped");
	expect(w.leaf_level == -1, "nothing mapped: no leaf");
	expect(hm_walk(mm, 1ull << 47, &w) == -EINVAL, "a non-canonical address is -EINVAL");

	expect(hm_check(sys) == 0, "hm_check finds nothing wrong");
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
	printf("walk: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
