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
 *   hmbench-migrate [--rounds N] [--mib N]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <hugemm.h>

#include "util.h"

static int rounds = 5;
static uint64_t data_mib = 1024;


static void die(const char *what, int err)
{
	fprintf(stderr, "hmbench-migrate: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}


/* Median of t[1..n) (the first round warms up), as GB/s for @bytes. */
static double rate(double *t, int n, uint64_t bytes)
{
	if (n > 1) {
		t++;
		n--;
	}
	qsort(t, (size_t)n, sizeof(*t), cmp);
	return bytes / t[n / 2] / 1e9;
}

static char *buf_a, *buf_b;

/* The faster of one memcpy and one non-temporal copy of @bytes between
 * the two host buffers, seconds; which one won in *nt. */
static double copy_once(uint64_t bytes, int r, bool *nt)
{
	char *dst = r & 1 ? buf_a : buf_b, *src = r & 1 ? buf_b : buf_a;
	double t0 = now();

	memcpy(dst, src, bytes);
	double t1 = now();
	copy_nt(dst, src, bytes);
	double t2 = now();

	*nt = t2 - t1 < t1 - t0;
	return *nt ? t2 - t1 : t1 - t0;
}

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

		c[i] = copy_once(bytes, i, &nt);
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

int main(int argc, char **argv)
{
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
		fputs("usage: hmbench-migrate [--rounds N] [--mib N]\n", stderr);
		return 2;
	}
	rounds = rounds < 1 || rounds > 16 ? 5 : rounds;
	/* Whole 1 GiB pages, one at least. */
	uint64_t bytes = (data_mib * MiB >= GiB ? data_mib * MiB / GiB : 1) * GiB;
	print_machine();
	printf("migrate: %llu MiB between two nodes, %d rounds each way, median of the later ones\n\n",
	       (unsigned long long)(bytes >> 20), rounds);
	buf_a = host_buffer(bytes, die);
	buf_b = host_buffer(bytes, die);
	memset(buf_a, 1, bytes);
	memset(buf_b, 2, bytes);
	static const struct { uint64_t size; const char *name; } sizes[] = {
		{ GiB, "hm_migrate, 1 GiB pages" }, { 2 * MiB, "hm_migrate, 2 MiB pages" },
		{ 4096, "hm_migrate, 4 KiB pages" },
	};
	double g[3], mc[3];
	int nt[3] = { 0 };

	for (int i = 0; i < 3; i++)
		g[i] = migrate_rate(bytes, sizes[i].size, &mc[i], &nt[i]);
	printf("%-28s %10s  %-22s %10s  %7s\n", "", "hugemm", "baseline (same rounds)", "", "ratio");
	for (int i = 0; i < 3; i++)
		printf("%-28s %6.2f GB/s  %-22s %6.2f GB/s  %6.2fx\n", sizes[i].name, g[i],
		       nt[i] > rounds ? "copy, non-temporal" : "copy, memcpy", mc[i], g[i] / mc[i]);
	puts("\nbaseline: per round the faster of memcpy and a non-temporal copy of the same bytes");
	return 0;
}
