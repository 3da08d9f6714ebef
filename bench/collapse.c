/* SPDX-License-Identifier: MIT */
/*
 * hmbench-collapse — MADV_COLLAPSE latency and khugepaged's CPU cost.
 *
 * Latency of one MADV_COLLAPSE, median of the rounds, for:
 *   2 MiB copy    512 4 KiB pages into a fresh 2 MiB page
 *   2 MiB refold  a 2 MiB page split by mprotect of one page and back
 *   1 GiB copy    512 2 MiB pages (separate folios) into a fresh 1 GiB page
 *   1 GiB refold  a 1 GiB page split by mprotect of one page and back (one
 *                 2 MiB refold, then the PUD one)
 * next to the faster of memcpy and a non-temporal copy of the same size
 * between two host buffers (touched before, on host huge pages), in the
 * same run ("memcpy" below): a copy collapse costs about one copy, a
 * refold a grace period.
 * khugepaged: thread CPU time (CLOCK_THREAD_CPUTIME_ID) of
 * hm_khugepaged_scan per GiB scanned, over memory that is huge already
 * (the cost of looking) and over 4 KiB pages it collapses (looking,
 * copying, freeing).
 *
 *   hmbench-collapse [--rounds N] [--json FILE]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <hugemm.h>

#include "util.h"

static int rounds = 5;

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One system for every run, its arena touched at creation, so that no
 * round pays the host's page faults (memcpy's buffers are touched before
 * too). */
static struct hm_system *the_sys;

static struct hm_system *new_system(void)
{
	if (the_sys)
		return the_sys;
	struct hm_config cfg;
	struct hm_system *sys;

	hm_config_default(&cfg);
	cfg.phys_bytes = 4 * GiB;
	cfg.flags = HM_POPULATE_ARENA;	/* the host backs it all, as memcpy's buffers */
	ok("hm_system_create", hm_system_create(&cfg, &sys));
	return the_sys = sys;
}

static uint64_t map(struct hm_mm *mm, uint64_t len)
{
	uint64_t a;

	ok("hm_mmap", hm_mmap(mm, 0, len, RW, PA, &a));
	return a;
}

static void touch(struct hm_mm *mm, uint64_t a, uint64_t len, uint64_t step)
{
	for (uint64_t off = 0; off < len; off += step)
		ok("hm_write", hm_write(mm, a + off, &off, sizeof(off)));
}

static void verify(struct hm_mm *mm, uint64_t a, uint64_t len, uint64_t step, uint64_t size)
{
	struct hm_mapping m;

	for (uint64_t off = 0; off < len; off += step) {
		uint64_t v = ~0ull;

		ok("hm_read", hm_read(mm, a + off, &v, sizeof(v)));
		if (v != off)
			die("data after collapse", -EBADMSG);
	}
	ok("hm_query", hm_query(mm, a, &m));
	if (m.size != size)
		die("not collapsed", -EINVAL);
}

static uint64_t refolds_seen;

/* Seconds of one MADV_COLLAPSE of @size at a fresh mapping, by copy or by
 * refold. */
static double collapse_once(uint64_t size, bool refold)
{
	struct hm_system *sys = new_system();
	struct hm_mm *mm;

	ok("hm_mm_create", hm_mm_create(sys, &mm));
	uint64_t a = map(mm, size);
	uint64_t step = size == GiB ? 2 * MiB : 4096;

	if (refold) {
		ok("madvise", hm_madvise(mm, a, size, MADV_HUGEPAGE));
		touch(mm, a, size, step);
		ok("mprotect", hm_mprotect(mm, a + 4096, 4096, PROT_READ));
		ok("mprotect", hm_mprotect(mm, a + 4096, 4096, RW));
	} else if (size == GiB) {
		touch(mm, a, size, step);	/* 2 MiB pages: PUD only with MADV_HUGEPAGE */
		ok("madvise", hm_madvise(mm, a, size, MADV_HUGEPAGE));
	} else {
		ok("madvise", hm_madvise(mm, a, size, MADV_NOHUGEPAGE));
		touch(mm, a, size, step);
		ok("madvise", hm_madvise(mm, a, size, MADV_HUGEPAGE));
	}
	hm_drain(sys);
	double t0 = now();
	ok("MADV_COLLAPSE", hm_madvise(mm, a, size, MADV_COLLAPSE));
	double t = now() - t0;
	uint64_t refolds = 0;

	hm_stat(sys, "collapse_refold", &refolds);
	if ((refolds > refolds_seen) != refold)
		die("collapse took the other way", -EINVAL);
	refolds_seen = refolds;
	verify(mm, a, size, step, size);
	hm_mm_destroy(mm);
	hm_drain(sys);
	return t;
}

/* khugepaged's thread CPU seconds per GiB scanned over @len of memory,
 * huge already or 4 KiB pages to collapse. */
static double khugepaged_cost(uint64_t len, bool small, uint64_t *made)
{
	struct hm_system *sys = new_system();
	struct hm_mm *mm;
	uint64_t n, scanned0 = 0, scanned = 0;

	ok("hm_mm_create", hm_mm_create(sys, &mm));
	uint64_t a = map(mm, len);
	ok("madvise", hm_madvise(mm, a, len, small ? MADV_NOHUGEPAGE : MADV_HUGEPAGE));
	touch(mm, a, len, 4096);
	ok("madvise", hm_madvise(mm, a, len, MADV_HUGEPAGE));
	hm_stat(sys, "khugepaged_pages_scanned", &scanned0);
	double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	ok("hm_khugepaged_scan", hm_khugepaged_scan(sys, len >> 12, &n));
	double t = clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
	hm_stat(sys, "khugepaged_pages_scanned", &scanned);
	if (scanned - scanned0 != len >> 12)
		die("scan length", -EINVAL);
	verify(mm, a, len, 4096, small ? 2 * MiB : GiB);
	*made = n;
	hm_mm_destroy(mm);
	hm_drain(sys);
	return t * (double)GiB / (double)len;
}

static const char *above_copy =
	"a collapse by copy copies every byte, so one faster than the fastest copy of the\n"
	"    same size in the same rounds is noise (medians of rounds run alternately):\n"
	"    explain it before believing the figure.";

int main(int argc, char **argv)
{
	const char *json = json_arg(&argc, argv);

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else
			die("usage: hmbench-collapse [--rounds N] [--json FILE]", -EINVAL);
	}
	if (rounds < 1)
		rounds = 1;
	char method[128];

	snprintf(method, sizeof(method), "hmbench-collapse: median of %d rounds", rounds);
	print_header(method);

	uint8_t *src = (uint8_t *)host_buffer(GiB), *dst = (uint8_t *)host_buffer(GiB);
	memset(src, 1, GiB);
	memset(dst, 2, GiB);

	static const struct { uint64_t size; const char *name; } sizes[] = { { 2 * MiB, "2 MiB" }, { GiB, "1 GiB" } };
	double m[2], c[2], f[2];

	for (unsigned s = 0; s < 2; s++) {
		double mc[64], cp[64], rf[64];
		int n = rounds > 64 ? 64 : rounds;

		progress("collapse: %s ...\n", sizes[s].name);
		for (int r = 0; r < n; r++) {
			mc[r] = copy_best(dst, src, sizes[s].size, NULL);
			cp[r] = collapse_once(sizes[s].size, false);
			rf[r] = collapse_once(sizes[s].size, true);
		}
		m[s] = median(mc, n) * 1e6;
		c[s] = median(cp, n) * 1e6;
		f[s] = median(rf, n) * 1e6;
	}
	munmap(src, GiB);
	munmap(dst, GiB);

	progress("collapse: khugepaged ...\n");
	uint64_t made;
	double look = khugepaged_cost(GiB, false, &made) * 1e3;
	double work = khugepaged_cost(256 * MiB, true, &made) * 1e3;
	hm_system_destroy(the_sys);

	table("MADV_COLLAPSE latency (the baseline is the fastest copy of the same size: a LIMIT for a copy)");
	for (unsigned s = 0; s < 2; s++) {
		char name[64], base[48];

		snprintf(base, sizeof(base), "copy %s (faster of memcpy, NT)", sizes[s].name);
		snprintf(name, sizeof(name), "MADV_COLLAPSE %s, by copy", sizes[s].name);
		fig(name, c[s], "us", false, base, m[s], true, NULL, above_copy);
		snprintf(name, sizeof(name), "MADV_COLLAPSE %s, refold", sizes[s].name);
		fig(name, f[s], "us", false, base, m[s], false, NULL, NULL);
	}
	table("khugepaged: thread CPU time of hm_khugepaged_scan per GiB scanned");
	fig("khugepaged per GiB, over 2 MiB pages (idle)", look, "ms", false, NULL, 0, false, NULL, NULL);
	fig("khugepaged per GiB, over 4 KiB pages", work, "ms", false, NULL, 0, false, NULL, NULL);
	printf("  (%llu pieces collapsed per 256 MiB)\n", (unsigned long long)made);
	bench_footnotes();
	if (json)
		bench_json(json);
	return 0;
}
