/* SPDX-License-Identifier: MIT */
/*
 * hmbench-swap — swap-out and swap-in throughput against the swap file's
 * own sequential write and read speed, measured in the same run on the
 * same file (the device limit), and the latency of a fault that has to
 * reclaim first.
 *
 * Device limit: pwrite / pread of the data size in 2 MiB chunks at the
 * file's start, from and into a buffer on a host huge page (as hugemm's
 * frames are), best of the rounds (hugemm's swap I/O is pwrite / pread of
 * a slot or a cluster at a time, through the same page cache, so neither
 * side syncs). Swap-out: MADV_PAGEOUT of that much memory, written once
 * with distinct data (2 MiB pages: each a cluster; 4 KiB pages: one slot
 * each). Swap-in: read 8 bytes of every page (2 MiB pages come back whole
 * where their cluster is intact). Every round checks that the data came
 * back. Direct reclaim: with memory full, the first write of each of many
 * new pages; p50 / p99 next to the same first writes with memory free.
 *
 * Rates are the best of the rounds on both sides; latencies p50 / p99.
 *
 *   hmbench-swap [--rounds N] [--mib N] [--file PATH] [--json FILE]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
static uint64_t data_mib = 512;
static const char *path = "/tmp/hmbench.swap";

static uint64_t stat(struct hm_system *sys, const char *n)
{
	uint64_t v = 0;

	hm_stat(sys, n, &v);
	return v;
}


/* The file's sequential speed, GB/s, best of the rounds. */
static void device_limit(uint64_t bytes, double *wr, double *rd)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	/* On a host huge page, as the frames swap I/O reads into and writes
	 * from: a buffer in 4 KiB host pages would make the limit slower. */
	char *buf = host_buffer(2 * MiB);

	if (fd < 0 || posix_fallocate(fd, 0, (off_t)bytes))
		die("device limit file", errno);
	*wr = *rd = 0;
	for (int r = 0; r < rounds; r++) {
		memset(buf, r + 1, 2 * MiB);
		double t = now();
		for (uint64_t off = 0; off < bytes; off += 2 * MiB)
			if (pwrite(fd, buf, 2 * MiB, (off_t)off) != (ssize_t)(2 * MiB))
				die("pwrite", errno);
		double w = bytes / (now() - t) / 1e9;
		t = now();
		for (uint64_t off = 0; off < bytes; off += 2 * MiB)
			if (pread(fd, buf, 2 * MiB, (off_t)off) != (ssize_t)(2 * MiB))
				die("pread", errno);
		double rr = bytes / (now() - t) / 1e9;
		*wr = w > *wr ? w : *wr;
		*rd = rr > *rd ? rr : *rd;
	}
	close(fd);
	munmap(buf, 2 * MiB);
}

static struct hm_system *make(uint64_t phys, uint64_t swap, int thp)
{
	struct hm_config cfg;
	struct hm_system *sys;
	int r;

	hm_config_default(&cfg);
	cfg.phys_bytes = phys;
	cfg.thp_pmd = thp;
	cfg.swap_path = path;
	cfg.swap_bytes = swap;
	cfg.flags = HM_POPULATE_ARENA;
	if ((r = hm_system_create(&cfg, &sys)))
		die("hm_system_create", r);
	return sys;
}

/* Swap-out and swap-in of @bytes as 2 MiB or 4 KiB pages: GB/s, best of
 * the rounds. */
static void hugemm_swap(uint64_t bytes, bool huge, double *out, double *in)
{
	struct hm_system *sys = make(bytes + bytes / 2, bytes + 64 * MiB, huge ? HM_THP_ALWAYS : HM_THP_NEVER);
	struct hm_mm *mm;
	uint64_t a, bad = 0;
	int r;

	if ((r = hm_mm_create(sys, &mm)) || (r = hm_mmap(mm, 0, bytes, RW, PA, &a)))
		die("mmap", r);
	*out = *in = 0;
	for (int round = 0; round < rounds; round++) {
		for (uint64_t off = 0; off < bytes; off += 4096) {
			uint64_t v = off * 31 + round;

			if ((r = hm_write(mm, a + off, &v, 8)))
				die("write", r);
		}
		uint64_t before = stat(sys, "pswpout");
		double t = now();
		if ((r = hm_madvise(mm, a, bytes, MADV_PAGEOUT)))
			die("pageout", r);
		double o = bytes / (now() - t) / 1e9;
		if (stat(sys, "pswpout") - before != bytes / 4096)
			die("pageout did not write everything", EIO);
		t = now();
		for (uint64_t off = 0; off < bytes; off += huge ? 2 * MiB : 4096) {
			uint64_t v = 0;

			bad += hm_read(mm, a + off, &v, 8) || v != off * 31 + round;
		}
		double i = bytes / (now() - t) / 1e9;
		*out = o > *out ? o : *out;
		*in = i > *in ? i : *in;
	}
	if (bad || (huge && stat(sys, "thp_swpout") != rounds * bytes / (2 * MiB)))
		die("data or clusters wrong", EIO);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* First writes of new pages, with memory full (each may reclaim) and with
 * memory free: p50 and p99 in microseconds. */
static void direct_reclaim(double *p50, double *p99, double *f50, double *f99)
{
	const uint64_t phys = 64 * MiB, n = 8192;
	struct hm_system *sys = make(phys, 256 * MiB, HM_THP_NEVER);
	struct hm_mm *mm;
	uint64_t a, v = 1;
	double *lat = malloc(n * sizeof(*lat));
	int r;

	if (!lat || (r = hm_mm_create(sys, &mm)) || (r = hm_mmap(mm, 0, 4 * phys, RW, PA, &a)))
		die("mmap", 0);
	for (int pass = 0; pass < 2; pass++) {
		/* pass 0: memory free; pass 1: the first 2x memory written first */
		uint64_t base = pass ? 2 * phys : 3 * phys;

		for (uint64_t off = 0; pass && off < 2 * phys; off += 4096)
			if ((r = hm_write(mm, a + off, &v, 8)))
				die("fill", r);
		for (uint64_t i = 0; i < n; i++) {
			double t = now();

			if ((r = hm_write(mm, a + base + i * 4096, &v, 8)))
				die("write", r);
			lat[i] = (now() - t) * 1e6;
		}
		qsort(lat, n, sizeof(*lat), cmp);
		*(pass ? p50 : f50) = lat[n / 2];
		*(pass ? p99 : f99) = lat[n * 99 / 100];
		if (!pass && (r = hm_munmap(mm, a + base, n * 4096)))
			die("munmap", r);
	}
	if (!stat(sys, "direct_reclaim"))
		die("no direct reclaim happened", EIO);
	free(lat);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void remove_swap_file(void)
{
	unlink(path);
}

static const char *above_device =
	"swap I/O goes through the same file and page cache as the baseline, so a rate above\n"
	"    the file's own sequential speed in the same run is noise or less data written:\n"
	"    explain it before believing the figure.";

int main(int argc, char **argv)
{
	const char *json = json_arg(&argc, argv);

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			data_mib = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--file") && i + 1 < argc)
			path = argv[++i];
		else {
			fprintf(stderr, "usage: hmbench-swap [--rounds N] [--mib N] [--file PATH] [--json FILE]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > 16)
		rounds = 5;
	uint64_t bytes = (data_mib ? data_mib : 512) * MiB;
	char method[256];

	snprintf(method, sizeof(method), "hmbench-swap: %llu MiB of data, file %s, rates best of %d rounds",
		 (unsigned long long)(bytes >> 20), path, rounds);
	print_header(method);
	double dw, dr, o2, i2, o4, i4, p50 = 0, p99 = 0, f50 = 0, f99 = 0;

	progress("swap: the file's own speed ...\n");
	atexit(remove_swap_file);	/* also when a step dies */
	device_limit(bytes, &dw, &dr);
	progress("swap: hugemm, 2 MiB and 4 KiB pages ...\n");
	hugemm_swap(bytes, true, &o2, &i2);
	hugemm_swap(bytes, false, &o4, &i4);
	progress("swap: direct reclaim ...\n");
	direct_reclaim(&p50, &p99, &f50, &f99);

	table("Swap (the baseline is the swap file's own sequential speed: a LIMIT)");
	fig("swap file, sequential write", dw, "GB/s", true, NULL, 0, false, NULL, NULL);
	fig("swap file, sequential read", dr, "GB/s", true, NULL, 0, false, NULL, NULL);
	fig_limit("swap-out, 2 MiB pages", o2, "GB/s", "file sequential write", dw, NULL, above_device);
	fig_limit("swap-out, 4 KiB pages", o4, "GB/s", "file sequential write", dw, NULL, above_device);
	fig_limit("swap-in, 2 MiB pages", i2, "GB/s", "file sequential read", dr, NULL, above_device);
	fig_limit("swap-in, 4 KiB pages", i4, "GB/s", "file sequential read", dr, NULL, above_device);
	fig("fault with direct reclaim: p50", p50, "us", false, "memory free: p50", f50, false, NULL, NULL);
	fig("fault with direct reclaim: p99", p99, "us", false, "memory free: p99", f99, false, NULL, NULL);
	bench_footnotes();
	if (json)
		bench_json(json);
	return 0;
}
