/* SPDX-License-Identifier: MIT */
/*
 * hugemm ptdump: build a small address space that holds every kind of
 * entry (1 GiB, 2 MiB and 4 KiB leaves, a split, read-only and PROT_NONE
 * pages, swap entries, the huge zero page; with --fork, a child) and print
 * its page tables through hm_walk, as the kernel's
 * /sys/kernel/debug/page_tables/ files show a process's: consecutive
 * entries of one level with the same attributes on one line.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hugemm.h>

#include "ptdump.h"
#include "swapfile.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)
#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

/* The attribute bits of an entry, as hm_walk hands it out raw. */
#define E_ATTR	(HM_ENTRY_PRESENT | HM_ENTRY_WRITE | HM_ENTRY_USER | HM_ENTRY_PWT | HM_ENTRY_PCD | HM_ENTRY_ACCESSED | HM_ENTRY_DIRTY | HM_ENTRY_HUGE | HM_ENTRY_GLOBAL | HM_ENTRY_NX)

enum kind { K_NONE, K_PRESENT, K_SWAP, K_PROTNONE, K_OTHER };

/* Consecutive entries shown as one line. */
struct run {
	uint64_t start, end;
	unsigned long count;
	int level;		/* where the walks stopped */
	enum kind kind;
	uint64_t attr;		/* K_PRESENT: the entries' attribute bits */
};

static uint64_t level_size(int level) { return 4096ull << (9 * level); }

static const char *level_name(int level, unsigned levels)
{
	static const char *const names[] = { "pte", "pmd", "pud", "p4d", "pgd" };

	return level == (int)levels - 1 ? "pgd" : names[level];
}

/* @bytes in the largest unit that divides it, so that the figure is exact. */
static const char *size_str(char *buf, size_t n, uint64_t bytes)
{
	static const char units[] = "KMGTP";
	int u = -1;

	while (u < 4 && bytes && !(bytes & 1023)) {
		bytes >>= 10;
		u++;
	}
	snprintf(buf, n, u < 0 ? "%lluB" : "%llu%c", (unsigned long long)bytes, u < 0 ? 0 : units[u]);
	return buf;
}

/* The formats of non-present entries are hugemm's own: ask hm_query what
 * one stands for rather than decode software bits. */
static enum kind classify(struct hm_mm *mm, uint64_t va, uint64_t e)
{
	struct hm_mapping m;

	if (!e)
		return K_NONE;
	if (e & HM_ENTRY_PRESENT)
		return K_PRESENT;
	if (hm_query(mm, va, &m) == 0) {
		if (m.swapped)
			return K_SWAP;
		if (m.size && m.prot == PROT_NONE)
			return K_PROTNONE;
	}
	return K_OTHER;
}

static void print_flags(enum kind kind, uint64_t e)
{
	if (kind == K_SWAP)
		printf("swap (not present)");
	else if (kind == K_PROTNONE)
		printf("PROT_NONE (not present)");
	else if (kind == K_OTHER)
		printf("not present (migration or split under way)");
	else {
		char buf[64];
		int n = snprintf(buf, sizeof(buf), "%-3s %-2s %-2s %-3s %-8s %s%s%s%s", e & HM_ENTRY_USER ? "USR" : "",
				 e & HM_ENTRY_WRITE ? "RW" : "ro", e & HM_ENTRY_NX ? "NX" : "x", e & HM_ENTRY_HUGE ? "PSE" : "",
				 e & HM_ENTRY_ACCESSED ? "ACCESSED" : "", e & HM_ENTRY_DIRTY ? "DIRTY" : "", e & HM_ENTRY_GLOBAL ? " GLB" : "",
				 e & HM_ENTRY_PWT ? " PWT" : "", e & HM_ENTRY_PCD ? " PCD" : "");

		while (n > 0 && buf[n - 1] == ' ')	/* columns, but no trailing blanks */
			buf[--n] = 0;
		fputs(buf, stdout);
	}
}

static void print_run(const struct run *r, unsigned levels)
{
	char total[24], each[24];

	printf("0x%016llx-0x%016llx %9s", (unsigned long long)r->start, (unsigned long long)r->end,
	       size_str(total, sizeof(total), r->end - r->start));
	if (r->kind == K_NONE) {
		printf("                none\n");
		return;
	}
	printf("  %6lu x %-3s %s  ", r->count, size_str(each, sizeof(each), level_size(r->level)),
	       level_name(r->level, levels));
	print_flags(r->kind, r->attr);
	printf("\n");
}

static bool same_run(const struct run *a, const struct run *b)
{
	if (a->kind != b->kind)
		return false;
	return a->kind == K_NONE || (a->level == b->level && a->attr == b->attr);
}

/* One line per run of like entries in [start, end); empty entries of any
 * level merge into one "none" line. */
static int dump(struct hm_mm *mm, uint64_t start, uint64_t end)
{
	struct run cur = { 0 };
	unsigned levels = 0;
	bool have = false;

	for (uint64_t va = start; va < end;) {
		struct hm_walk w;
		int r = hm_walk(mm, va, &w), stop = 0;

		if (r)
			return r;
		levels = w.levels;
		while (!w.table[stop])
			stop++;
		uint64_t next = (va & ~(level_size(stop) - 1)) + level_size(stop);

		if (next > end || next <= va)
			next = end;
		struct run x = { va, next, 1, stop, classify(mm, va, w.entry[stop]), w.entry[stop] & E_ATTR };

		if (have && same_run(&cur, &x)) {
			cur.end = next;
			cur.count++;
		} else {
			if (have)
				print_run(&cur, levels);
			cur = x;
			have = true;
		}
		va = next;
	}
	if (have)
		print_run(&cur, levels);
	return 0;
}

/* Every level of one walk, top first. */
static int show_walk(struct hm_mm *mm, uint64_t va)
{
	struct hm_walk w;
	char sz[24];
	int r = hm_walk(mm, va, &w);

	if (r) {
		printf("hm_walk(0x%llx): %s\n", (unsigned long long)va, strerror(-r));
		return r;
	}
	printf("hm_walk(0x%llx): leaf_level %d\n", (unsigned long long)va, w.leaf_level);
	for (int i = (int)w.levels - 1; i >= 0 && w.table[i]; i--) {
		uint64_t e = w.entry[i];
		unsigned index = (unsigned)(va >> (12 + 9 * i)) & 511;

		printf("  %s  table %p [%3u]  entry 0x%016llx  ", level_name(i, w.levels), w.table[i], index,
		       (unsigned long long)e);
		if (!e) {
			printf("none\n");
		} else if (!(e & HM_ENTRY_PRESENT)) {
			print_flags(classify(mm, va, e), e);
			printf("\n");
		} else if (i == w.leaf_level) {
			uint64_t pa = e & HM_ENTRY_FRAME & ~(level_size(i) - 1);

			printf("%s page at pa 0x%llx  ", size_str(sz, sizeof(sz), level_size(i)),
			       (unsigned long long)pa);
			print_flags(K_PRESENT, e);
			printf("\n");
		} else {
			printf("table at pa 0x%llx\n", (unsigned long long)(e & HM_ENTRY_FRAME));
		}
	}
	return 0;
}

static int write8(struct hm_mm *mm, uint64_t va)
{
	return hm_write(mm, va, &va, sizeof(va));
}

/* The scene's address space, described as it is built. Returns the
 * address of the read-only page inside the split 1 GiB page, or 0. */
static uint64_t build(struct hm_mm *mm, bool swap)
{
	uint64_t g, m, k, x = 0;
	int r = 0;

	/* 2 GiB where 1 GiB pages may go: two of them, the second split
	 * down to one 4 KiB page made read-only. */
	if ((r = hm_mmap(mm, 0, 2 * GiB, RW, PA, &g)) || (r = hm_madvise(mm, g, 2 * GiB, MADV_HUGEPAGE)) ||
	    (r = write8(mm, g)) || (r = write8(mm, g + GiB)) ||
	    (r = hm_mprotect(mm, g + GiB + 256 * MiB + 4096, 4096, PROT_READ)))
		goto fail;
	printf("  0x%012llx  2 GiB  MADV_HUGEPAGE: two 1 GiB pages written; in the second, 4 KiB at\n"
	       "                  +1 GiB + 256 MiB + 4 KiB made read-only (split PUD -> PMD -> PTE)\n",
	       (unsigned long long)g);
	/* 8 MiB of 2 MiB pages: written, written, paged out, only read. */
	if ((r = hm_mmap(mm, 0, 8 * MiB, RW, PA, &m)) || (r = write8(mm, m)) || (r = write8(mm, m + 2 * MiB)) ||
	    (r = write8(mm, m + 4 * MiB)) || (r = hm_read(mm, m + 6 * MiB, &x, sizeof(x))) ||
	    (swap && (r = hm_madvise(mm, m + 4 * MiB, 2 * MiB, MADV_PAGEOUT))))
		goto fail;
	printf("  0x%012llx  8 MiB  2 MiB pages: two written, %s, one only read (the huge zero page)\n",
	       (unsigned long long)m, swap ? "one paged out whole" : "one more written");
	/* 64 KiB of 4 KiB pages, four of each: written; read; two PROT_NONE
	 * and two paged out; untouched; written, then made read-only. */
	if ((r = hm_mmap(mm, 0, 64 * 1024, RW, PA, &k)))
		goto fail;
	for (int i = 0; i < 16 && !r; i++) {
		if (i >= 4 && i < 8)
			r = hm_read(mm, k + i * 4096ull, &x, sizeof(x));
		else if (i < 12 && i >= 8)
			continue;
		else
			r = write8(mm, k + i * 4096ull);
	}
	for (int i = 8; i < 10 && !r; i++)
		r = write8(mm, k + i * 4096ull);
	if (r || (r = hm_mprotect(mm, k + 6 * 4096, 8192, PROT_NONE)) ||
	    (swap && (r = hm_madvise(mm, k + 8 * 4096, 8192, MADV_PAGEOUT))) ||
	    (r = hm_mprotect(mm, k + 12 * 4096, 4 * 4096, PROT_READ)))
		goto fail;
	/* Pages 6-7 were read (clean) before PROT_NONE. */
	printf("  0x%012llx 64 KiB  4 KiB pages: 4 written, 2 read, 2 read then PROT_NONE, 2 %s,\n"
	       "                  2 untouched, 4 written then made read-only\n",
	       (unsigned long long)k, swap ? "paged out" : "written");
	return g + GiB + 256 * MiB + 4096;
fail:
	fprintf(stderr, "hugemm ptdump: building the address space: %s\n", strerror(-r));
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: %s", PTDUMP_USAGE);
	return 2;
}

int ptdump_main(int argc, char **argv)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm, *child = NULL;
	const char *swap_path = tool_swap_path("ptdump");
	uint64_t start = 0, end = 0, walk_va = 0;
	bool fork_it = false, range = false, walk = false;
	int r;

	hm_config_default(&cfg);
	for (int i = 0; i < argc; i++) {
		char *e1 = NULL, *e2 = NULL;

		if (!strcmp(argv[i], "--levels") && i + 1 < argc) {
			cfg.levels = (unsigned)atoi(argv[++i]);
			if (cfg.levels != 4 && cfg.levels != 5)
				return usage();
		}
		else if (!strcmp(argv[i], "--swap") && i + 1 < argc)
			swap_path = argv[++i];
		else if (!strcmp(argv[i], "--no-swap"))
			swap_path = NULL;
		else if (!strcmp(argv[i], "--fork"))
			fork_it = true;
		else if (!strcmp(argv[i], "--range") && i + 2 < argc) {
			start = strtoull(argv[++i], &e1, 0);
			end = strtoull(argv[++i], &e2, 0);
			if (*e1 || *e2 || start >= end)
				return usage();
			range = true;
		} else if (!strcmp(argv[i], "--walk") && i + 1 < argc) {
			walk_va = strtoull(argv[++i], &e1, 0);
			if (*e1)
				return usage();
			walk = true;
		} else {
			return usage();
		}
	}
	/* Only the user half holds mappings; the non-canonical gap cannot be
	 * walked at all. Pages are the smallest unit shown. */
	uint64_t user_end = 1ull << (12 + 9 * cfg.levels - 1);

	if (range) {
		start &= ~4095ull;
		end = end > user_end ? user_end : (end + 4095) & ~4095ull;
		if (start >= end) {
			fprintf(stderr, "hugemm ptdump: --range must overlap the user half [0, 0x%llx)\n",
				(unsigned long long)user_end);
			return 2;
		}
	}
	if (walk && walk_va >= user_end) {
		fprintf(stderr, "hugemm ptdump: --walk needs an address in the user half [0, 0x%llx)\n",
			(unsigned long long)user_end);
		return 2;
	}
	if (swap_path) {
		cfg.swap_path = swap_path;
		cfg.swap_bytes = 16 * MiB;
	}
	/* Without a swap file the scene has no swap entries, but the rest. */
	if ((r = hm_system_create(&cfg, &sys)) && swap_path && r != -EINVAL && r != -ENOMEM) {
		fprintf(stderr, "hugemm ptdump: no swap file at %s (%s): going on without swap\n", swap_path,
			strerror(-r));
		swap_path = cfg.swap_path = NULL;
		cfg.swap_bytes = 0;
		r = hm_system_create(&cfg, &sys);
	}
	if (r) {
		fprintf(stderr, "hugemm ptdump: hm_system_create: %s\n", strerror(-r));
		return 1;
	}
	if ((r = hm_mm_create(sys, &mm))) {
		fprintf(stderr, "hugemm ptdump: hm_mm_create: %s\n", strerror(-r));
		hm_system_destroy(sys);
		return 1;
	}
	printf("hugemm ptdump: %u-level page tables; the address space:\n", cfg.levels);
	uint64_t ro = build(mm, swap_path != NULL);
	int bad = !ro;

	if (ro && fork_it && (r = hm_fork(mm, &child))) {
		fprintf(stderr, "hugemm ptdump: hm_fork: %s\n", strerror(-r));
		bad = 1;
	}
	if (!range) {	/* the whole lower (user) half */
		start = 0;
		end = user_end;
	}
	for (int pass = 0; pass < (child ? 2 : 1) && !bad; pass++) {
		struct hm_mm *which = pass ? child : mm;

		printf("\n---[ %s: 0x%llx-0x%llx ]---\n", child ? (pass ? "child" : "parent, after fork") : "page tables",
		       (unsigned long long)start, (unsigned long long)end);
		if ((r = dump(which, start, end))) {
			fprintf(stderr, "hugemm ptdump: hm_walk: %s\n", strerror(-r));
			bad = 1;
		}
		printf("\n");
		bad |= show_walk(which, walk ? walk_va : ro) != 0;
	}
	if (!bad || walk)
		printf("\nflags: USR user, RW writable (ro not), NX no execute (x executable), PSE huge leaf,\n"
		       "ACCESSED/DIRTY set by the MMU (hm_read/hm_write); swap and PROT_NONE entries are not\n"
		       "present; none: no entry at that level. hm_walk gives each entry raw.\n");
	int check = hm_check(sys);

	if (check)
		fprintf(stderr, "hugemm ptdump: hm_check failed\n");
	if (child)
		hm_mm_destroy(child);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
	if (swap_path)
		unlink(swap_path);
	return bad || check;
}
