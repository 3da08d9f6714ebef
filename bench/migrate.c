/* SPDX-License-Identifier: MIT */
/*
 * hmbench-migrate — hm_migrate throughput for 4 KiB, 2 MiB and 1 GiB pages
 * against the fastest copy of the same amount of data, measured in the same run
 * (issue 9; goal: 0.8x of that copy for 2 MiB and 1 GiB pages).
 *
 * A system of two nodes; one mapping of --mib MiB written whole, moved to
 * node 1 and back, --rounds times each way. The first move of each size
 * touches host memory for the first time, as the first copy does: the
 * median of the later ones is reported. The baseline is the fastest honest
 * copy of the same bytes between two host buffers already touched, one
 * before each move (a shared host's bandwidth changes from second to
 * second): the faster of glibc's memcpy and a copy with non-temporal
 * stores (what migration itself uses; memcpy reads every target line
 * first below its non-temporal threshold). The data is checked after.
 *
 *   hmbench-migrate [--rounds N] [--mib N] [--json FILE]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <hugemm.h>

#include "util.h"

static int rounds = 5;
static uint64_t data_mib = 1024;


/* Median of t[1..n) (the first round warms up), as GB/s for @bytes. */
static double rate(double *t, int n, uint64_t bytes)
{
	return bytes / (n > 1 ? median(t + 1, n - 1) : t[0]) / 1e9;
}

static char *buf_a, *buf_b;

/* hm_migrate of @bytes mapped with pages of @size, to node 1 and back;
 * each move next to a memcpy of the same size (*mc), so that both see the
 * same machine (a shared host's bandwidth varies from second to second). */
static double migrate_rate(uint64_t bytes, uint64_t size, double *mc, int *nt_won)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm;
	uint64_t a, stride = size < 4096 * 8 ? size : 4096;
	double t[32], c[32];
	int r;

	hm_config_default(&cfg);
	/* Two nodes, each with room for the data and a 1 GiB block more. */
	cfg.phys_bytes = 2 * (bytes + GiB);
	cfg.nr_nodes = 2;
	cfg.thp_pud = size == GiB ? HM_THP_ALWAYS : HM_THP_NEVER;
	cfg.thp_pmd = size >= 2 * MiB ? HM_THP_ALWAYS : HM_THP_NEVER;
	cfg.flags = 0;
	if ((r = hm_system_create(&cfg, &sys)))
		die("hm_system_create", r);
	if ((r = hm_mm_create(sys, &mm)) || (r = hm_mmap(mm, 0, bytes, RW, PA, &a)))
		die("hm_mmap", r);
	for (uint64_t off = 0; off < bytes; off += stride)
		if ((r = hm_write(mm, a + off, &off, 8)))
			die("hm_write", r);
	struct hm_mapping m;
	if (hm_query(mm, a, &m) || m.size != size)
		die("page size", EINVAL);
	for (int i = 0; i < 2 * rounds; i++) {
		bool nt;

		c[i] = copy_best(i & 1 ? buf_a : buf_b, i & 1 ? buf_b : buf_a, bytes, &nt);
		*nt_won += nt;
		double t0 = now();

		if ((r = hm_migrate(mm, a, bytes, (unsigned)(i + 1) % 2)))
			die("hm_migrate", r);
		t[i] = now() - t0;
		if (hm_query(mm, a + bytes - 1, &m) || m.node != (unsigned)(i + 1) % 2 || m.size != size)
			die("hm_migrate left pages", EINVAL);
	}
	for (uint64_t off = 0; off < bytes; off += stride) {
		uint64_t v = ~0ull;

		if (hm_read(mm, a + off, &v, 8) || v != off)
			die("data after migration", EIO);
	}
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
	*mc = rate(c, 2 * rounds, bytes);
	return rate(t, 2 * rounds, bytes);
}

static const char *above_copy =
	"migration copies every byte, so a rate above the fastest copy of the same bytes\n"
	"    in the same rounds is noise (both are medians of rounds run alternately):\n"
	"    explain it before believing the figure.";

int main(int argc, char **argv)
{
	const char *json = json_arg(&argc, argv);
	/* Options come in pairs: --rounds N, --mib N. */
	bool bad = argc % 2 == 0;

	for (int i = 1; !bad && i < argc; i += 2) {
		if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--mib"))
			data_mib = strtoull(argv[i + 1], NULL, 0);
		else
			bad = true;
	}
	if (bad) {
		fputs("usage: hmbench-migrate [--rounds N] [--mib N] [--json FILE]\n", stderr);
		return 2;
	}
	rounds = rounds < 1 || rounds > 16 ? 5 : rounds;
	/* Whole 1 GiB pages, one at least. */
	uint64_t bytes = (data_mib * MiB >= GiB ? data_mib * MiB / GiB : 1) * GiB;
	char method[256];

	snprintf(method, sizeof(method),
		 "hmbench-migrate: %llu MiB between two nodes, %d rounds each way, median of the later ones",
		 (unsigned long long)(bytes >> 20), rounds);
	print_header(method);
	buf_a = host_buffer(bytes);
	buf_b = host_buffer(bytes);
	memset(buf_a, 1, bytes);
	memset(buf_b, 2, bytes);
	static const struct { uint64_t size; const char *name; const char *goal; } sizes[] = {
		{ GiB, "hm_migrate, 1 GiB pages", ">=0.8x" }, { 2 * MiB, "hm_migrate, 2 MiB pages", ">=0.8x" },
		{ 4096, "hm_migrate, 4 KiB pages", NULL },
	};
	double g[3], mc[3];
	int nt[3] = { 0 };

	for (int i = 0; i < 3; i++) {
		progress("migrate: %s ...\n", sizes[i].name);
		g[i] = migrate_rate(bytes, sizes[i].size, &mc[i], &nt[i]);
	}
	table("Migration (the baseline is the fastest copy of the same bytes, next to each move: a LIMIT)");
	for (int i = 0; i < 3; i++)
		fig_limit(sizes[i].name, g[i], "GB/s", "copy (faster of memcpy, NT)", mc[i], sizes[i].goal,
			  above_copy);
	for (int i = 0; i < 3; i++)
		printf("  copy rounds next to %s: the non-temporal copy won %d of %d\n", sizes[i].name, nt[i],
		       2 * rounds);
	bench_footnotes();
	if (json)
		bench_json(json);
	return 0;
}
