/* SPDX-License-Identifier: MIT */
/*
 * hugemm report: build a small address space with every kind of page (a
 * 1 GiB page, 2 MiB pages, one in swap, 4 KiB pages, one in swap and one
 * read-only, the huge zero page, a child after fork that copied a page,
 * and a small mapping 4 TiB away) and print the reports of tools/report.c
 * about it. The scenario runner prints the same reports for its own mms.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report.h"
#include "swapfile.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)
#define TiB (1ull << 40)
#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

struct sample {
	struct hm_system *sys;
	struct hm_mm *parent, *child;
	uint64_t a1g;
};

static int touch(struct hm_mm *mm, uint64_t a, uint64_t len)
{
	int r = 0;

	for (uint64_t off = 0; off < len && !r; off += 4096)
		r = hm_write(mm, a + off, &off, sizeof(off));
	return r;
}

static int build(struct sample *s, const char *swap_path)
{
	struct hm_config cfg;
	uint64_t b, c, z, far, v = 0;
	int r;

	hm_config_default(&cfg);
	cfg.phys_bytes = 3 * GiB;
	cfg.swap_path = swap_path;
	cfg.swap_bytes = 64 * MiB;
	if ((r = hm_system_create(&cfg, &s->sys)) || (r = hm_mm_create(s->sys, &s->parent)))
		return r;
	struct hm_mm *mm = s->parent;

	if ((r = hm_mmap(mm, 0, GiB, RW, PA, &s->a1g)) || (r = hm_madvise(mm, s->a1g, GiB, MADV_HUGEPAGE)) ||
	    (r = hm_write(mm, s->a1g, &v, sizeof(v))) ||
	    (r = hm_mmap(mm, 0, 8 * MiB, RW, PA, &b)) || (r = touch(mm, b, 8 * MiB)) ||
	    (r = hm_madvise(mm, b + 4 * MiB, 2 * MiB, MADV_PAGEOUT)) ||
	    (r = hm_mmap(mm, 0, 64 << 10, RW, PA, &c)) || (r = hm_madvise(mm, c, 64 << 10, MADV_NOHUGEPAGE)) ||
	    (r = touch(mm, c, 64 << 10)) || (r = hm_madvise(mm, c + 8192, 8192, MADV_PAGEOUT)) ||
	    (r = hm_mprotect(mm, c + 32768, 4096, PROT_READ)) ||
	    (r = hm_mmap(mm, 0, 4 * MiB, PROT_READ, PA, &z)) || (r = hm_read(mm, z, &v, sizeof(v))) ||
	    (r = hm_mmap(mm, s->a1g - 4 * TiB, 16 << 10, RW, PA | MAP_FIXED_NOREPLACE, &far)) ||
	    (r = touch(mm, far, 8192)))
		return r;
	if ((r = hm_fork(mm, &s->child)))
		return r;
	/* The child's copy-on-write splits its 1 GiB mapping (the parent's
	 * stays whole and shared) and copies one 4 KiB page. */
	v = 42;
	return hm_write(s->child, s->a1g + 3 * MiB, &v, sizeof(v));
}

static void usage(FILE *f)
{
	fprintf(f, REPORT_USAGE);
}

int report_main(int argc, char **argv)
{
	const char *what = "smaps", *svg = NULL, *swap_path = tool_swap_path("report");
	bool json = false, child = false;
	uint64_t start = 0, end = UINT64_MAX;
	struct sample s = { 0 };
	int r;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--child"))
			child = true;
		else if (!strcmp(argv[i], "--swap") && i + 1 < argc)
			swap_path = argv[++i];
		else if (!strcmp(argv[i], "--range") && i + 2 < argc) {
			char *e1, *e2;

			errno = 0;
			start = strtoull(argv[++i], &e1, 0);
			end = strtoull(argv[++i], &e2, 0);
			if (errno || *e1 || *e2 || e1 == argv[i - 1] || e2 == argv[i] || start >= end) {
				fprintf(stderr, "hugemm report: --range START END: numbers with START < END\n");
				return 2;
			}
		} else if (!strcmp(argv[i], "svg") && i + 1 < argc) {
			what = "svg";
			svg = argv[++i];
		} else if (!strcmp(argv[i], "smaps") || !strcmp(argv[i], "vmstat") || !strcmp(argv[i], "pagemap") ||
			   !strcmp(argv[i], "all")) {
			what = argv[i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	if ((r = build(&s, swap_path))) {
		fprintf(stderr, "hugemm report: building the sample address space: %s\n", strerror(-r));
		goto out;
	}
	struct hm_mm *mm = child ? s.child : s.parent;
	bool all = !strcmp(what, "all");

	bool one = all && json;	/* one JSON document: {"smaps": ..., ...} */

	if (one)
		fputs("{\"smaps\": ", stdout);
	if (!strcmp(what, "smaps") || all)
		r = report_smaps(stdout, mm, json);
	if (one)
		fputs(", \"vmstat\": ", stdout);
	if (!r && (!strcmp(what, "vmstat") || all))
		r = report_vmstat(stdout, s.sys, json);
	if (one)
		fputs(", \"pagemap\": ", stdout);
	if (!r && (!strcmp(what, "pagemap") || all))
		r = report_pagemap(stdout, mm, start, end, json);
	if (one)
		fputs("}\n", stdout);
	if (!r && svg) {
		FILE *f = fopen(svg, "w");

		if (!f) {
			r = -errno;
		} else {
			r = report_svg(f, mm);
			if (fclose(f) && !r)
				r = -EIO;
		}
	}
	if (r)
		fprintf(stderr, "hugemm report: %s: %s\n", svg && !strcmp(what, "svg") ? svg : what, strerror(-r));
	if (!r && (r = hm_check(s.sys)))
		fprintf(stderr, "hugemm report: hm_check failed\n");
out:
	if (s.child)
		hm_mm_destroy(s.child);
	if (s.parent)
		hm_mm_destroy(s.parent);
	/* Only a file the system was made with: never one it refused. */
	if (s.sys) {
		hm_system_destroy(s.sys);
		unlink(swap_path);
	}
	return r ? 1 : 0;
}
