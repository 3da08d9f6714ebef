/* SPDX-License-Identifier: MIT */
/*
 * hmbench — hugemm against the host kernel and memset, in the same run.
 *
 * Fault-in: map 1 GiB, write 8 bytes into every 4 KiB page, unmap; for
 * hugemm (hm_write through its MMU) and for the host kernel (a plain store
 * into mmap'ed memory, MADV_NOHUGEPAGE / MADV_HUGEPAGE / MAP_HUGETLB 1 GiB).
 * On a VM the host backs never-touched memory lazily and slowly, so round 1
 * warms and the median of the later rounds is reported, for both sides;
 * hugemm's arena is pre-populated (HM_POPULATE_ARENA).
 * Splits: hm__split on freshly faulted pages. Access: hm_read/hm_write of 8
 * bytes on a TLB hit and on a miss (random pages over a range far larger
 * than the TLB).
 *
 * Fork: a parent with 8 GiB mapped as 1 GiB, 2 MiB and 4 KiB pages, forked
 * by hugemm and, in a helper process holding only that mapping, by the
 * host kernel; the time, the child's page-table memory, and the cost of the
 * first write to a shared page (copy-on-write) in the child.
 *
 * Map changes next to readers: p50/p99 of a 4 KiB mprotect and munmap with
 * 0, 1 and 3 threads reading the same mm.
 *
 *   hmbench [--rounds N] [--fork-gib N]   (--fork-gib 0 skips the fork part)
 *   HMBENCH_ONLY_MAP_LATENCY=1 hmbench    (only the map-change latencies)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hugemm.h>

#include "util.h"

#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB (30 << 26)
#endif

/* Internal entry points, for benchmarks (not part of the public API). */
int hm__split(struct hm_mm *mm, uint64_t addr, unsigned level);

static int rounds = 5;
static uint64_t fork_gib = 8;


/* Median of the rounds after the first (the first warms the host). */
static double warm_median(double *v, int n)
{
	if (n > 1) {
		v++;
		n--;
	}
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "hmbench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void machine(void)
{
	print_machine();
	printf("rounds: %d (median of rounds 2..%d reported)\n\n", rounds, rounds);
}

/* --- the host --- */

/* memset of warm memory: the zeroing limit. 2 MiB-aligned and backed by
 * host huge pages, like hugemm's arena, so the comparison is fair. */
static double memset_gbs(void)
{
	double t[16];
	uint8_t *m = mmap(NULL, GiB + 2 * MiB, RW, PA, -1, 0);

	if (m == MAP_FAILED)
		die("mmap", errno);
	uint8_t *p = (uint8_t *)(((uintptr_t)m + 2 * MiB - 1) & ~(2 * MiB - 1));
	madvise(p, GiB, MADV_HUGEPAGE);
	for (int r = 0; r < rounds; r++) {
		double t0 = now();
		memset(p, r, GiB);
		t[r] = GiB / (now() - t0) / 1e9;
	}
	munmap(m, GiB + 2 * MiB);
	return warm_median(t, rounds);
}

/* GB/s of the host kernel faulting 1 GiB in; 0 if it cannot map it. */
static double kernel_fault(int advice, int extra_flags)
{
	double t[16];

	for (int r = 0; r < rounds; r++) {
		double t0 = now();
		volatile uint8_t *p = mmap(NULL, GiB, RW, PA | extra_flags, -1, 0);

		if (p == MAP_FAILED)
			return 0;
		if (advice)
			madvise((void *)p, GiB, advice);
		for (uint64_t off = 0; off < GiB; off += 4096)
			*(volatile uint64_t *)(p + off) = off;
		munmap((void *)p, GiB);
		t[r] = GiB / (now() - t0) / 1e9;
	}
	return warm_median(t, rounds);
}

/* Reserve one 1 GiB hugetlb page for the run if we may, and give it back. */
static long hugetlb_1g(long set)
{
	const char *path = "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages";
	char buf[32];
	long old = -1;
	int fd = open(path, O_RDWR);

	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = 0;
		old = atol(buf);
	}
	if (set >= 0) {
		snprintf(buf, sizeof(buf), "%ld\n", set);
		if (pwrite(fd, buf, strlen(buf), 0) < 0)
			old = -1;
	}
	close(fd);
	return old;
}

/* --- hugemm --- */

static struct hm_system *sys;

static struct hm_system *make_system(void)
{
	struct hm_config cfg;
	struct hm_system *s;
	int r;

	hm_config_default(&cfg);
	cfg.phys_bytes = 3 * GiB;
	cfg.flags = HM_POPULATE_ARENA;
	if ((r = hm_system_create(&cfg, &s)))
		die("hm_system_create", r);
	return s;
}

static uint64_t map(struct hm_mm *mm, uint64_t len, int advice)
{
	uint64_t a;
	int r;

	if ((r = hm_mmap(mm, 0, len, RW, PA, &a)) || (advice && (r = hm_madvise(mm, a, len, advice))))
		die("hm_mmap", r);
	return a;
}

static void touch(struct hm_mm *mm, uint64_t a, uint64_t len)
{
	for (uint64_t off = 0; off < len; off += 4096) {
		int r = hm_write(mm, a + off, &off, 8);

		if (r)
			die("hm_write", r);
	}
}

static double hugemm_fault(int advice, const char *want)
{
	double t[16];
	struct hm_mm *mm;
	uint64_t before;

	hm_stat(sys, want, &before);
	hm_mm_create(sys, &mm);
	for (int r = 0; r < rounds; r++) {
		double t0 = now();
		uint64_t a = map(mm, GiB, advice);
		touch(mm, a, GiB);
		hm_munmap(mm, a, GiB);
		t[r] = GiB / (now() - t0) / 1e9;
	}
	hm_mm_destroy(mm);
	uint64_t after;
	hm_stat(sys, want, &after);
	if (after == before)
		fprintf(stderr, "hmbench: warning: no %s during the %s run\n", want, want);
	return warm_median(t, rounds);
}

/* Median microseconds of hm__split(level) on fresh huge pages. */
static double split_us(uint64_t size, unsigned level)
{
	struct hm_mm *mm;
	double t[512];
	int n = 0;

	hm_mm_create(sys, &mm);
	for (int r = 0; r < rounds; r++) {
		uint64_t a = map(mm, GiB, size == GiB ? MADV_HUGEPAGE : 0);

		touch(mm, a, GiB);
		for (uint64_t off = 0; off < GiB && n < (int)(sizeof(t) / sizeof(t[0])); off += size) {
			double t0 = now();
			int e = hm__split(mm, a + off, level);

			t[n++] = (now() - t0) * 1e6;
			if (e)
				die("hm__split", e);
		}
		hm_munmap(mm, a, GiB);
	}
	hm_mm_destroy(mm);
	qsort(t, (size_t)n, sizeof(t[0]), cmp);
	return t[n / 2];
}

/* Nanoseconds per 8-byte access: the same address (TLB hit) or random
 * pages of a @len range (a miss in a 256-entry 4 KiB TLB). */
static double access_ns(bool write, bool miss, int advice)
{
	const uint64_t len = 256 * MiB, n = 4000000;
	struct hm_mm *mm;
	uint64_t v = 0, x = 88172645463325252ull;

	hm_mm_create(sys, &mm);
	uint64_t a = map(mm, len, advice);
	touch(mm, a, len);
	double t0 = now();
	for (uint64_t i = 0; i < n; i++) {
		uint64_t va = a;

		if (miss) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			va = a + (x % (len / 4096)) * 4096;
		}
		if (write ? hm_write(mm, va, &i, 8) : hm_read(mm, va, &v, 8))
			die("access", -EFAULT);
	}
	double ns = (now() - t0) / n * 1e9;
	hm_mm_destroy(mm);
	return ns;
}

/* --- fork --- */

struct fork_res {
	double fork_ms, pt_mib, cow_us;
};

static long vm_pte_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmPTE:", 6))
			kb = atol(line + 6);
	if (f)
		fclose(f);
	return kb;
}

/* In a helper process: map and touch the parent's memory, fork, report.
 * The child measures its own page tables and one copy-on-write fault per
 * huge page (or per 64 pages), median. */
static struct fork_res kernel_fork(int advice, uint64_t step)
{
	struct fork_res res = { 0, 0, 0 };
	int pfd[2];

	if (pipe(pfd))
		return res;
	pid_t helper = fork();
	if (helper == 0) {
		uint64_t len = fork_gib * GiB;
		uint8_t *p = mmap(NULL, len, RW, PA, -1, 0);

		if (p == MAP_FAILED)
			_exit(1);
		madvise(p, len, advice);
		for (uint64_t off = 0; off < len; off += 4096)
			p[off] = 1;
		int cfd[2];
		if (pipe(cfd))
			_exit(1);
		double t0 = now();
		pid_t c = fork();
		if (c == 0) {
			double t[64];
			int n = 0;

			for (uint64_t off = 8; off < len && n < 64; off += step) {
				double t1 = now();
				p[off] = 2;
				t[n++] = (now() - t1) * 1e6;
			}
			qsort(t, (size_t)n, sizeof(t[0]), cmp);
			struct fork_res r = { 0, vm_pte_kb() / 1024.0, t[n / 2] };
			if (write(cfd[1], &r, sizeof(r)) < 0)
				_exit(1);
			_exit(0);
		}
		double ms = (now() - t0) * 1e3;
		if (read(cfd[0], &res, sizeof(res)) != sizeof(res))
			_exit(1);
		waitpid(c, NULL, 0);
		res.fork_ms = ms;
		if (write(pfd[1], &res, sizeof(res)) < 0)
			_exit(1);
		_exit(0);
	}
	if (read(pfd[0], &res, sizeof(res)) != sizeof(res))
		memset(&res, 0, sizeof(res));
	waitpid(helper, NULL, 0);
	close(pfd[0]);
	close(pfd[1]);
	return res;
}

/* One system for all three layouts, its arena populated first so that
 * table blocks are not paid at the host's first-touch speed. */
static struct hm_system *fork_sys;

static struct fork_res hugemm_fork(int advice, uint64_t step)
{
	struct fork_res res;
	struct hm_mm *mm, *child;
	uint64_t a, len = fork_gib * GiB, pt0, pt1;
	double t[64];
	int n = 0, r;

	if (!fork_sys) {
		struct hm_config cfg;

		hm_config_default(&cfg);
		cfg.phys_bytes = len + GiB;
		cfg.flags = HM_POPULATE_ARENA;
		if ((r = hm_system_create(&cfg, &fork_sys)))
			die("hm_system_create", r);
	}
	hm_mm_create(fork_sys, &mm);
	if ((r = hm_mmap(mm, 0, len, RW, PA, &a)) || (advice && (r = hm_madvise(mm, a, len, advice))))
		die("hm_mmap", r);
	touch(mm, a, len);
	hm_stat(fork_sys, "pgtable_bytes", &pt0);
	double t0 = now();
	if ((r = hm_fork(mm, &child)))
		die("hm_fork", r);
	res.fork_ms = (now() - t0) * 1e3;
	hm_stat(fork_sys, "pgtable_bytes", &pt1);
	res.pt_mib = (pt1 - pt0) / (double)MiB;
	for (uint64_t off = 8; off < len && n < 64; off += step) {
		double t1 = now();
		if ((r = hm_write(child, a + off, &off, 8)))
			die("hm_write", r);
		t[n++] = (now() - t1) * 1e6;
	}
	qsort(t, (size_t)n, sizeof(t[0]), cmp);
	res.cow_us = t[n / 2];
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	return res;
}

/* --- map changes next to readers ---
 *
 * Latency of a 4 KiB map change (mprotect of one page between read-only
 * and read-write; munmap of one faulted page, mapped and faulted again
 * untimed) in an mm where 0, 1 or 3 threads keep reading 8 bytes from
 * other pages (TLB hits). A map change should not wait behind readers:
 * the goal is p99 with readers within 5x of p99 alone.
 */
#define ML_SAMPLES 1000
#define ML_PAGES 16	/* each reader's pages */

struct ml_reader {
	pthread_t th;
	struct hm_mm *mm;
	uint64_t a;
	int *stop;		/* atomic */
	uint64_t reads;		/* atomic */
};

static void *ml_read(void *arg)
{
	struct ml_reader *r = arg;
	uint64_t v;

	for (unsigned i = 0; !__atomic_load_n(r->stop, __ATOMIC_RELAXED); i++) {
		if (hm_read(r->mm, r->a + (i % ML_PAGES) * 4096, &v, 8))
			die("hm_read", -EFAULT);
		__atomic_add_fetch(&r->reads, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* p50 and p99 in microseconds of ML_SAMPLES changes (@munmap: munmap,
 * else mprotect) with @nreaders readers. */
static void ml_measure(bool munmap, int nreaders, double *p50, double *p99)
{
	struct hm_system *s;
	struct hm_config cfg;
	struct hm_mm *mm;
	struct ml_reader rd[3];
	uint64_t a, data, v = 1;
	double t[ML_SAMPLES];
	int stop = 0, r;

	hm_config_default(&cfg);
	cfg.phys_bytes = 256 * MiB;
	if ((r = hm_system_create(&cfg, &s)) || (r = hm_mm_create(s, &mm)))
		die("hm_system_create", r);
	/* The page changed is the middle one of three, so the VMA splits and
	 * merges again as in a real address space. */
	if ((r = hm_mmap(mm, 0, 3 * 4096, RW, PA, &a)) || (r = hm_mmap(mm, 0, MiB, RW, PA, &data)))
		die("hm_mmap", r);
	for (int i = 0; i < 3; i++)
		hm_write(mm, a + i * 4096ull, &v, 8);
	for (int i = 0; i < nreaders; i++) {
		rd[i] = (struct ml_reader){ .mm = mm, .a = data + i * ML_PAGES * 4096ull, .stop = &stop };
		for (int p = 0; p < ML_PAGES; p++)
			hm_write(mm, rd[i].a + p * 4096ull, &v, 8);
		if (pthread_create(&rd[i].th, NULL, ml_read, &rd[i]))
			die("pthread_create", errno);
	}
	for (int i = 0; i < nreaders; i++)	/* every reader is under way */
		while (__atomic_load_n(&rd[i].reads, __ATOMIC_RELAXED) < 1000)
			sched_yield();
	for (int i = 0; i < ML_SAMPLES; i++) {
		/* Changes come now and then, not back to back: a burst would
		 * fit in one time slice and never meet a reader preempted
		 * inside its read section. */
		struct timespec gap = { 0, 200000 };
		uint64_t page = a + 4096;

		nanosleep(&gap, NULL);
		double t0 = now();

		if (munmap)
			r = hm_munmap(mm, page, 4096);
		else
			r = hm_mprotect(mm, page, 4096, i & 1 ? RW : PROT_READ);
		t[i] = (now() - t0) * 1e6;
		if (r)
			die(munmap ? "hm_munmap" : "hm_mprotect", r);
		if (munmap && ((r = hm_mmap(mm, page, 4096, RW, PA | MAP_FIXED, &page)) ||
			       (r = hm_write(mm, page, &v, 8))))
			die("hm_mmap", r);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < nreaders; i++)
		pthread_join(rd[i].th, NULL);
	hm_system_destroy(s);
	qsort(t, ML_SAMPLES, sizeof(t[0]), cmp);
	*p50 = t[ML_SAMPLES / 2];
	*p99 = t[ML_SAMPLES * 99 / 100];
}

static void map_change_latency(void)
{
	static const int readers[] = { 0, 1, 3 };

	fprintf(stderr, "measuring map changes next to readers ...\n");
	printf("\n%-40s %10s %10s  %s\n", "4 KiB map change, readers in the same mm", "p50", "p99",
	       "p99 / p99 alone (goal: <= 5x)");
	for (int op = 0; op < 2; op++) {
		double p99_alone = 0;

		for (int i = 0; i < 3; i++) {
			char what[64];
			double p50, p99;

			ml_measure(op == 1, readers[i], &p50, &p99);
			if (i == 0)
				p99_alone = p99;
			snprintf(what, sizeof(what), "%s, %d reader%s", op ? "munmap" : "mprotect",
				 readers[i], readers[i] == 1 ? "" : "s");
			printf("%-40s %7.2f us %7.2f us", what, p50, p99);
			if (i > 0)
				printf("  %6.2fx", p99 / p99_alone);
			printf("\n");
		}
	}
}

static void row(const char *what, double v, const char *unit, const char *base_what, double base, bool higher_better)
{
	if (base > 0)
		printf("%-34s %10.2f %-5s  %-26s %10.2f %-5s  %6.2fx\n", what, v, unit, base_what, base, unit,
		       higher_better ? v / base : base / v);
	else if (base_what)
		printf("%-34s %10.2f %-5s  %-26s %10s\n", what, v, unit, base_what, "n/a");
	else
		printf("%-34s %10.2f %-5s\n", what, v, unit);
}

static void fork_rows(const char *what, struct fork_res h, struct fork_res k)
{
	char b[96];

	snprintf(b, sizeof(b), "fork %llu GiB, %s: time", (unsigned long long)fork_gib, what);
	row(b, h.fork_ms, "ms", "kernel fork()", k.fork_ms, false);
	row("  child's page tables", h.pt_mib, "MiB", "kernel VmPTE", k.pt_mib, false);
	row("  first write in child (COW)", h.cow_us, "us", "kernel", k.cow_us, false);
}

/* hm_system_create of 256 GiB: the median time of the rounds, and the most
 * host memory (RSS) one creation added. Both should be in proportion to what
 * is used, which is nothing yet, not to the size. */
static void create_rows(void)
{
	double t[16], grew = 0;

	for (int i = 0; i < rounds; i++) {
		struct hm_config cfg;
		struct hm_system *s;
		long pages0 = 0, pages1 = 0, size;
		FILE *f = fopen("/proc/self/statm", "r");

		hm_config_default(&cfg);
		cfg.phys_bytes = 256 * GiB;
		if (!f || fscanf(f, "%ld %ld", &size, &pages0) != 2)
			die("/proc/self/statm", errno);
		double t0 = now();
		int r = hm_system_create(&cfg, &s);
		t[i] = (now() - t0) * 1e3;
		if (r)
			die("hm_system_create 256 GiB", r);
		rewind(f);
		if (fscanf(f, "%ld %ld", &size, &pages1) != 2)
			die("/proc/self/statm", errno);
		fclose(f);
		grew = fmax(grew, (double)(pages1 - pages0) * (double)sysconf(_SC_PAGESIZE) / MiB);
		hm_system_destroy(s);
	}
	qsort(t, (size_t)rounds, sizeof(t[0]), cmp);
	row("hm_system_create 256 GiB: time", t[rounds / 2], "ms", NULL, 0, false);
	row("  host RSS it added (most)", grew, "MiB", NULL, 0, false);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--fork-gib") && i + 1 < argc)
			fork_gib = strtoull(argv[++i], NULL, 0);
		else {
			fprintf(stderr, "usage: hmbench [--rounds N] [--fork-gib N]\n");
			return 2;
		}
	}
	if (rounds < 2 || rounds > 16)
		rounds = 5;
	machine();
	if (getenv("HMBENCH_ONLY_MAP_LATENCY")) {	/* while working on map changes */
		map_change_latency();
		return 0;
	}
	struct fork_res kf4 = { 0, 0, 0 }, kf2 = kf4, hf4 = kf4, hf2 = kf4, hf1 = kf4;
	if (fork_gib) {
		fprintf(stderr, "fork: the host kernel with %llu GiB ...\n", (unsigned long long)fork_gib);
		kf4 = kernel_fork(MADV_NOHUGEPAGE, 64 * 4096);
		kf2 = kernel_fork(MADV_HUGEPAGE, 2 * MiB);
		fprintf(stderr, "fork: hugemm with %llu GiB ...\n", (unsigned long long)fork_gib);
		hf4 = hugemm_fork(MADV_NOHUGEPAGE, 64 * 4096);
		hf2 = hugemm_fork(0, 2 * MiB);
		hf1 = hugemm_fork(MADV_HUGEPAGE, GiB);
		hm_system_destroy(fork_sys);
	}
	fprintf(stderr, "measuring the host ...\n");
	double ms = memset_gbs();
	double k4 = kernel_fault(MADV_NOHUGEPAGE, 0);
	double k2 = kernel_fault(MADV_HUGEPAGE, 0);
	long old = hugetlb_1g(-1), set = old == 0 ? hugetlb_1g(1) : -1;
	double k1 = kernel_fault(0, MAP_HUGETLB | MAP_HUGE_1GB);
	if (set == 0)
		hugetlb_1g(0);

	fprintf(stderr, "measuring hugemm (populating a 3 GiB arena first) ...\n");
	sys = make_system();
	double h4 = hugemm_fault(MADV_NOHUGEPAGE, "pgfault");
	double h2 = hugemm_fault(0, "pmd_fault_alloc");
	double h1 = hugemm_fault(MADV_HUGEPAGE, "pud_fault_alloc");
	double s21 = split_us(GiB, 1), s10 = split_us(2 * MiB, 0), s20 = split_us(GiB, 0);
	double rh = access_ns(false, false, 0), wh = access_ns(true, false, 0);
	double rm4 = access_ns(false, true, MADV_NOHUGEPAGE), rm2 = access_ns(false, true, 0);
	hm_system_destroy(sys);
	double ms2 = memset_gbs();	/* again, and keep the better: conservative */
	ms = ms2 > ms ? ms2 : ms;

	printf("%-34s %16s  %-26s %16s  %7s\n", "", "hugemm", "baseline (same run)", "", "ratio");
	row("fault-in, 4 KiB pages", h4, "GB/s", "kernel, MADV_NOHUGEPAGE", k4, true);
	row("fault-in, 2 MiB pages", h2, "GB/s", "kernel, MADV_HUGEPAGE", k2, true);
	row("fault-in, 1 GiB pages", h1, "GB/s", "kernel, MAP_HUGETLB 1 GiB", k1, true);
	row("fault-in, 2 MiB pages", h2, "GB/s", "memset, warm (best of 2)", ms, true);
	row("fault-in, 1 GiB pages", h1, "GB/s", "memset, warm (best of 2)", ms, true);
	row("split PUD -> 512 PMD", s21, "us", NULL, 0, false);
	row("split PMD -> 512 PTE", s10, "us", NULL, 0, false);
	row("split PUD -> PTE (whole 1 GiB)", s20, "us", NULL, 0, false);
	row("hm_read 8 B, TLB hit", rh, "ns", NULL, 0, false);
	row("hm_write 8 B, TLB hit", wh, "ns", NULL, 0, false);
	row("hm_read 8 B, TLB miss, 4 KiB", rm4, "ns", NULL, 0, false);
	row("hm_read 8 B, TLB miss, 2 MiB", rm2, "ns", NULL, 0, false);
	if (fork_gib) {
		struct fork_res none = { 0, 0, 0 };

		fork_rows("4 KiB pages", hf4, kf4);
		fork_rows("2 MiB pages", hf2, kf2);
		fork_rows("1 GiB pages", hf1, none);
	}
	create_rows();
	if (k1 == 0)
		printf("\n(kernel 1 GiB: no 1 GiB hugetlb page could be reserved on this host)\n");
	map_change_latency();
	return 0;
}
