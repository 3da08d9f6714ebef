/* SPDX-License-Identifier: MIT */
/*
 * hugemm — the command.
 *
 *   hugemm demo [--phys GIB] [--levels 4|5] [--lazy]
 *       Map a few GiB, fault it in with 1 GiB, 2 MiB and 4 KiB pages, split
 *       huge pages by partial munmap and mprotect, verify every page, and
 *       report mappings, page-table memory, faults, splits and timings.
 *   hugemm ptdump [--levels 4|5] [--fork] [--range START END] [--walk VA]
 *                 [--swap FILE | --no-swap]
 *       Build a small address space with every kind of entry and print its
 *       page tables through hm_walk, as the kernel's ptdump (tools/ptdump.c).
 *   hugemm run [--trace] [--no-check] FILE|-
 *       Run a scenario script (tools/scenario*.c, docs/scenarios.md).
 *   hugemm stats
 *       List every counter name.
 *   hugemm report [smaps|vmstat|pagemap|all|svg FILE] [--json] ...
 *       The smaps, vmstat and pagemap reports, or a picture, of a sample
 *       address space (tools/report_cmd.c).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hugemm.h>

#include "ptdump.h"
#include "scenario.h"
#include "report.h"
#include "swapfile.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)
#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "hugemm: %s: %s\n", what, strerror(-err));
	exit(1);
}

static uint64_t stat(struct hm_system *sys, const char *name)
{
	uint64_t v = 0;

	hm_stat(sys, name, &v);
	return v;
}

/* Progress for work that may take more than a second, on a terminal only
 * (a pipe or a CI log gets none, as hugemm run does). */
struct progress {
	const char *what;
	double start, last;
	int shown;
};

static void progress(struct progress *p, uint64_t done, uint64_t total)
{
	double t = now();

	if (!isatty(2) || t - p->start < 1.0 || (t - p->last < 0.25 && done < total) ||
	    (done == total && !p->shown))
		return;
	p->last = t;
	p->shown = 1;
	fflush(stdout);
	fprintf(stderr, "\r  %-44s %3llu%%", p->what, (unsigned long long)(done * 100 / total));
	if (done == total)
		fputc('\n', stderr);
}

struct step {
	const char *name;
	double seconds;
	uint64_t bytes;
};

static struct step steps[24];
static int nsteps;

static void record(const char *name, double t0, uint64_t bytes)
{
	steps[nsteps++] = (struct step){ name, now() - t0, bytes };
}

static uint64_t pattern(uint64_t va) { return va * 0x9e3779b97f4a7c15ull ^ 0xfeed; }

/* Write one word into every 4 KiB page (the first touch faults it in). */
static void touch(struct hm_mm *mm, uint64_t a, uint64_t len, const char *what)
{
	struct progress p = { what, now(), 0, 0 };

	for (uint64_t off = 0; off < len; off += 4096) {
		uint64_t v = pattern(a + off);
		int r = hm_write(mm, a + off, &v, sizeof(v));

		if (r)
			die("write", r);
		if (!(off & (64 * MiB - 1)) || off + 4096 == len)
			progress(&p, off + 4096, len);
	}
}

/* Pages in [hole, hole + hole_len) must fault; the page at @zero must read
 * as zeros (it was DONTNEED'ed); every other page holds its pattern. */
static uint64_t verify(struct hm_mm *mm, uint64_t a, uint64_t len, uint64_t hole, uint64_t hole_len,
		       uint64_t zero, struct progress *p, uint64_t *done, uint64_t total)
{
	uint64_t bad = 0;

	for (uint64_t off = 0; off < len; off += 4096) {
		uint64_t v = 0, va = a + off;
		int r = hm_read(mm, va, &v, sizeof(v));

		if (va >= hole && va < hole + hole_len)
			bad += r != -EFAULT;
		else if (va == zero)
			bad += r || v != 0;
		else
			bad += r || v != pattern(va);
		*done += 4096;
		if (!(*done & (64 * MiB - 1)))
			progress(p, *done, total);
	}
	return bad;
}

static void mapping_line(struct hm_mm *mm, const char *label, uint64_t va)
{
	struct hm_mapping m;
	static const char *const sizes[] = { "none", "4 KiB", "2 MiB", "1 GiB" };
	int k = 0;

	hm_query(mm, va, &m);
	k = m.size == GiB ? 3 : m.size == 2 * MiB ? 2 : m.size ? 1 : 0;
	printf("    %-34s %#14llx  %-6s %s%s%s\n", label, (unsigned long long)va, sizes[k],
	       m.size ? (m.prot & PROT_READ ? "r" : "-") : "", m.size ? (m.prot & PROT_WRITE ? "w" : "-") : "",
	       m.size ? "" : "(unmapped)");
}

static void report_memory(struct hm_system *sys)
{
	uint64_t pt = stat(sys, "pgtable_bytes"), dep = stat(sys, "pgtable_deposited");

	printf("  mappings:    %llu x 1 GiB, %llu x 2 MiB, %llu x 4 KiB  (%.2f GiB of anonymous memory)\n",
	       (unsigned long long)stat(sys, "nr_anon_pud"), (unsigned long long)stat(sys, "nr_anon_pmd"),
	       (unsigned long long)stat(sys, "nr_anon_pte"),
	       stat(sys, "nr_anon_pages") * 4096.0 / GiB);
	printf("  page tables: %.2f MiB in all, of which %.2f MiB (%llu tables) deposited for splits"
	       " = %.3f%% of mapped memory\n",
	       pt / (double)MiB, dep * 4096.0 / MiB, (unsigned long long)dep,
	       stat(sys, "nr_anon_pages") ? 100.0 * pt / (stat(sys, "nr_anon_pages") * 4096.0) : 0.0);
}

/*
 * Memory pressure: a machine of @phys bytes with a swap file, twice as
 * much data written as it has memory, forked, a quarter rewritten by the
 * child, and all of it verified in both. Returns the problems found.
 */
static uint64_t pressure(uint64_t phys, const char *swap_path)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm, *child;
	uint64_t a, len = 2 * phys, bad = 0;
	int r;

	hm_config_default(&cfg);
	cfg.phys_bytes = phys;
	cfg.swap_path = swap_path;
	cfg.swap_bytes = 3 * phys;
	if ((r = hm_system_create(&cfg, &sys))) {
		fflush(stdout);
		fprintf(stderr, "hugemm demo: cannot make the swap file %s: %s\n", swap_path, strerror(-r));
		return 1;
	}
	printf("  %llu MiB of memory, a %llu MiB swap file at %s\n", (unsigned long long)(phys >> 20),
	       (unsigned long long)(cfg.swap_bytes >> 20), swap_path);
	if ((r = hm_mm_create(sys, &mm)) || (r = hm_mmap(mm, 0, len, RW, PA, &a)))
		die("mmap", r);
	double t = now();
	touch(mm, a, len, "writing twice the memory there is");
	record("write 2x memory (direct reclaim)", t, len);
	printf("  written: %llu MiB; swapped out %llu MiB (%llu 2 MiB pages whole, %llu split), "
	       "direct reclaims %llu\n", (unsigned long long)(len >> 20),
	       (unsigned long long)(stat(sys, "pswpout") >> 8), (unsigned long long)stat(sys, "thp_swpout"),
	       (unsigned long long)stat(sys, "thp_swpout_fallback"),
	       (unsigned long long)stat(sys, "direct_reclaim"));
	t = now();
	if ((r = hm_fork(mm, &child)))
		die("fork", r);
	record("fork it (swap entries shared)", t, 0);
	t = now();
	uint64_t q = len / 4;
	for (uint64_t off = 0; off < q; off += 4096) {
		uint64_t v = ~pattern(a + off);

		if ((r = hm_write(child, a + off, &v, 8)))
			die("child write", r);
	}
	record("child rewrites a quarter", t, q);
	struct progress p = { "verifying parent and child", now(), 0, 0 };
	uint64_t done = 0;
	t = now();
	for (uint64_t off = 0; off < len; off += 4096, done += 8192) {
		uint64_t v = 0, w = 0;

		bad += hm_read(mm, a + off, &v, 8) || v != pattern(a + off);
		bad += hm_read(child, a + off, &w, 8) || w != (off < q ? ~pattern(a + off) : pattern(a + off));
		if (!(done & (64 * MiB - 1)))
			progress(&p, done, 2 * len);
	}
	progress(&p, 2 * len, 2 * len);
	record("verify parent and child", t, 2 * len);
	printf("  verified both: %llu pages wrong; swapped in %llu MiB, out %llu MiB in all, "
	       "%llu MiB dropped clean (kept in swap)\n", (unsigned long long)bad,
	       (unsigned long long)(stat(sys, "pswpin") >> 8), (unsigned long long)(stat(sys, "pswpout") >> 8),
	       (unsigned long long)(stat(sys, "pswpout_clean") >> 8));
	int check = hm_check(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	uint64_t sfree = stat(sys, "swap_free_pages"), stotal = stat(sys, "swap_total_pages");
	printf("  hm_check: %s; after teardown %llu of %llu swap slots free%s\n", check ? "FAILED" : "ok",
	       (unsigned long long)sfree, (unsigned long long)stotal, sfree == stotal ? " (all of them)" : " (LEAK)");
	hm_system_destroy(sys);
	unlink(swap_path);
	return bad + (check != 0) + (sfree != stotal);
}

/* With --json, standard output carries one JSON document and nothing
 * else: the demo's text goes to standard error (see demo()). */
static FILE *json_out;

/* --svg, --report, --json: the parent's address space after fork. */
static int demo_reports(struct hm_system *sys, struct hm_mm *mm, const char *svg, bool report, bool json)
{
	int r = 0;

	if (svg) {
		FILE *f = fopen(svg, "w");

		r = f ? report_svg(f, mm) : -errno;
		if (f && fclose(f) && !r)
			r = -EIO;
		if (r)
			fprintf(stderr, "hugemm demo: --svg %s: %s\n", svg, strerror(-r));
		else
			printf("  the parent's address space drawn in %s\n", svg);
	}
	if (json && !r) {
		fputs("{\"smaps\": ", json_out);
		if (!(r = report_smaps(json_out, mm, true))) {
			fputs(", \"vmstat\": ", json_out);
			r = report_vmstat(json_out, sys, true);
		}
		fputs("}\n", json_out);
		if (fflush(json_out) && !r)
			r = -EIO;
	} else if (report && !r) {
		printf("\n  smaps of the parent after fork:\n");
		if (!(r = report_smaps(stdout, mm, json))) {
			printf("\n  vmstat:\n");
			r = report_vmstat(stdout, sys, json);
		}
	}
	return r != 0;
}

static int demo(int argc, char **argv)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm;
	uint64_t a1g, a2m, a4k;
	int r;

	hm_config_default(&cfg);
	cfg.phys_bytes = 4 * GiB;
	const char *swap_path = tool_swap_path("demo"), *svg = NULL;
	uint64_t swap_phys = 256 * MiB;
	bool report = false, json = false;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--phys") && i + 1 < argc)
			cfg.phys_bytes = strtoull(argv[++i], NULL, 0) * GiB;
		else if (!strcmp(argv[i], "--swap") && i + 1 < argc)
			swap_path = argv[++i];
		else if (!strcmp(argv[i], "--pressure-mib") && i + 1 < argc)
			swap_phys = strtoull(argv[++i], NULL, 0) * MiB;
		else if (!strcmp(argv[i], "--levels") && i + 1 < argc)
			cfg.levels = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--lazy"))
			cfg.deposit = HM_DEPOSIT_LAZY;
		else if (!strcmp(argv[i], "--svg") && i + 1 < argc)
			svg = argv[++i];
		else if (!strcmp(argv[i], "--report"))
			report = true;
		else if (!strcmp(argv[i], "--json"))
			report = json = true;
		else {
			fprintf(stderr, "usage: hugemm demo [--phys GIB] [--levels 4|5] [--lazy] [--swap FILE] [--pressure-mib MIB]\n"
				"                   [--svg FILE] [--report] [--json]\n");
			return 2;
		}
	}
	if (cfg.phys_bytes < 3 * GiB) {
		fprintf(stderr, "hugemm demo: needs --phys 3 or more (it maps 2 GiB + 576 MiB)\n");
		return 2;
	}
	if (json) {
		/* Standard output gets the JSON alone; the demo's text goes
		 * to standard error. */
		int fd = dup(1);

		if (fd < 0 || !(json_out = fdopen(fd, "w")) || dup2(2, 1) < 0)
			die("--json: standard output", -errno);
	}
	if ((r = hm_system_create(&cfg, &sys)))
		die("hm_system_create", r);
	uint64_t free0 = stat(sys, "nr_free_pages");

	printf("hugemm demo: %.0f GiB of physical memory, %u-level page tables, %s deposits\n\n",
	       cfg.phys_bytes / (double)GiB, cfg.levels, cfg.deposit == HM_DEPOSIT_EAGER ? "eager" : "lazy");
	if ((r = hm_mm_create(sys, &mm)))
		die("hm_mm_create", r);

	double t = now();
	if ((r = hm_mmap(mm, 0, 2 * GiB, RW, PA, &a1g)) || (r = hm_madvise(mm, a1g, 2 * GiB, MADV_HUGEPAGE)) ||
	    (r = hm_mmap(mm, 0, 512 * MiB, RW, PA, &a2m)) ||
	    (r = hm_mmap(mm, 0, 64 * MiB, RW, PA, &a4k)) || (r = hm_madvise(mm, a4k, 64 * MiB, MADV_NOHUGEPAGE)))
		die("mmap", r);
	record("mmap 3 regions", t, 0);

	printf("1. Fault in, one write per 4 KiB page:\n");
	t = now();
	touch(mm, a1g, 2 * GiB, "2 GiB, MADV_HUGEPAGE");
	record("fault 2 GiB as 1 GiB pages", t, 2 * GiB);
	t = now();
	touch(mm, a2m, 512 * MiB, "512 MiB, THP always");
	record("fault 512 MiB as 2 MiB pages", t, 512 * MiB);
	t = now();
	touch(mm, a4k, 64 * MiB, "64 MiB, MADV_NOHUGEPAGE");
	record("fault 64 MiB as 4 KiB pages", t, 64 * MiB);
	/* The host backs our arena lazily: the first touch above ran at the
	 * host's speed. Unmap and fault again to see hugemm's own. */
	t = now();
	if ((r = hm_munmap(mm, a1g, 2 * GiB)) ||
	    (r = hm_mmap(mm, a1g, 2 * GiB, RW, PA | MAP_FIXED, &a1g)) ||
	    (r = hm_madvise(mm, a1g, 2 * GiB, MADV_HUGEPAGE)))
		die("remap", r);
	record("munmap + mmap 2 GiB", t, 0);
	hm_drain(sys);	/* the same frames, warm, back in the free lists */
	t = now();
	touch(mm, a1g, 2 * GiB, "2 GiB again (host memory warm)");
	record("fault 2 GiB as 1 GiB pages, warm", t, 2 * GiB);
	report_memory(sys);

	printf("\n2. Split by partial munmap and mprotect (tables come from the deposits):\n");
	uint64_t hole = a1g + GiB / 2 + 3 * 4096;
	t = now();
	if ((r = hm_munmap(mm, hole, 4096)))
		die("munmap", r);
	record("munmap 4 KiB inside a 1 GiB page", t, 0);
	uint64_t ro = a1g + GiB + 256 * MiB + 4096, ro_len = 2 * MiB + 8192;
	t = now();
	if ((r = hm_mprotect(mm, ro, ro_len, PROT_READ)))
		die("mprotect", r);
	record("mprotect 2 MiB + 8 KiB read-only", t, 0);
	uint64_t mid2m = a2m + 100 * MiB + 4096;
	t = now();
	if ((r = hm_madvise(mm, mid2m, 4096, MADV_DONTNEED)))
		die("madvise", r);
	record("MADV_DONTNEED 4 KiB of a 2 MiB page", t, 0);
	mapping_line(mm, "first 1 GiB page, start", a1g);
	mapping_line(mm, "next to the munmapped hole", hole + 4096);
	mapping_line(mm, "the hole", hole);
	mapping_line(mm, "second 1 GiB page, start", a1g + GiB);
	mapping_line(mm, "inside the read-only range", ro + MiB);
	mapping_line(mm, "just past it", ro + ro_len);
	printf("  splits: %llu PUD -> PMD, %llu PMD -> PTE; tables allocated by splits: %llu\n",
	       (unsigned long long)stat(sys, "thp_split_pud"), (unsigned long long)stat(sys, "thp_split_pmd"),
	       (unsigned long long)stat(sys, "split_alloc"));
	report_memory(sys);

	printf("\n3. Verify every page:\n");
	uint64_t bad = 0, done = 0, total = 2 * GiB + 512 * MiB + 64 * MiB;
	struct progress p = { "reading back 2.56 GiB", now(), 0, 0 };
	t = now();
	bad += verify(mm, a1g, 2 * GiB, hole, 4096, 0, &p, &done, total);
	bad += verify(mm, a2m, 512 * MiB, 0, 0, mid2m, &p, &done, total);
	bad += verify(mm, a4k, 64 * MiB, 0, 0, 0, &p, &done, total);
	progress(&p, total, total);
	record("read back every page (8 bytes each)", t, 0);
	uint64_t z = 1, v = 7;
	hm_read(mm, mid2m, &z, 8);
	int wro = hm_write(mm, ro + MiB, &v, 8);
	int check = hm_check(sys);
	printf("  %llu pages wrong (the DONTNEED page reads as %llu, the hole faults);"
	       " write to the read-only range: %s; hm_check: %s\n", (unsigned long long)bad,
	       (unsigned long long)z,
	       wro == -EFAULT ? "-EFAULT" : "ALLOWED (bug)", check ? "FAILED" : "ok");

	printf("\n4. Fork (copy-on-write) and write in the child:\n");
	struct hm_mm *child;
	uint64_t pt_before_fork = stat(sys, "pgtable_bytes");
	t = now();
	if ((r = hm_fork(mm, &child)))
		die("fork", r);
	record("fork the 2.5 GiB address space", t, 0);
	uint64_t pt_after_fork = stat(sys, "pgtable_bytes");
	struct hm_mapping pm, cm;
	hm_query(child, a1g + GiB + 512 * MiB, &cm);
	printf("  after fork: the second 1 GiB page's 2 MiB pieces are mapped %u times, exclusive: %s\n",
	       cm.mapcount, cm.exclusive ? "yes" : "no");
	uint64_t cv = 0xc0ffee;
	t = now();
	if ((r = hm_write(child, a1g + GiB + 512 * MiB + 4096, &cv, 8)))
		die("write", r);
	record("first write in the child (COW)", t, 0);
	hm_query(child, a1g + GiB + 512 * MiB + 4096, &cm);
	hm_query(mm, a1g + GiB + 512 * MiB + 4096, &pm);
	uint64_t pv = 0;
	hm_read(mm, a1g + GiB + 512 * MiB + 4096, &pv, 8);
	printf("  the child's written page: %s, its own frame (%s); the parent still reads its own data: %s\n",
	       cm.size == 4096 ? "4 KiB" : "huge", cm.pa != pm.pa ? "copied" : "NOT copied",
	       pv == pattern(a1g + GiB + 512 * MiB + 4096) ? "yes" : "NO");
	printf("  cow_copy %llu, cow_split_pmd %llu, cow_reuse %llu; the child's tables took %.2f MiB\n",
	       (unsigned long long)stat(sys, "cow_copy"), (unsigned long long)stat(sys, "cow_split_pmd"),
	       (unsigned long long)stat(sys, "cow_reuse"), (pt_after_fork - pt_before_fork) / (double)MiB);
	bad += pv != pattern(a1g + GiB + 512 * MiB + 4096) || cm.pa == pm.pa;
	bad += demo_reports(sys, mm, svg, report, json);
	t = now();
	hm_mm_destroy(child);
	record("destroy the child", t, 0);
	check |= hm_check(sys);

	printf("\n5. Counters:\n");
	printf("  pgfault %llu, pud_fault_alloc %llu, pmd_fault_alloc %llu, thp_fault_fallback %llu\n",
	       (unsigned long long)stat(sys, "pgfault"), (unsigned long long)stat(sys, "pud_fault_alloc"),
	       (unsigned long long)stat(sys, "pmd_fault_alloc"), (unsigned long long)stat(sys, "thp_fault_fallback"));

	t = now();
	hm_mm_destroy(mm);
	record("destroy the address space", t, 0);
	uint64_t free1 = stat(sys, "nr_free_pages");
	hm_system_destroy(sys);

	printf("\n6. Memory pressure, with swap:\n");
	bad += pressure(swap_phys, swap_path);

	printf("\n7. Timings:\n");
	for (int i = 0; i < nsteps; i++) {
		if (steps[i].bytes)
			printf("  %-40s %10.3f ms  %6.2f GB/s\n", steps[i].name, steps[i].seconds * 1e3,
			       steps[i].bytes / steps[i].seconds / 1e9);
		else
			printf("  %-40s %10.3f ms\n", steps[i].name, steps[i].seconds * 1e3);
	}
	printf("  (the first rounds touch host memory for the first time, at the host's speed)\n");
	printf("\nAfter destroying the first address space: %llu of %llu frames free%s\n",
	       (unsigned long long)free1, (unsigned long long)free0, free1 == free0 ? " (all of them)" : " (LEAK)");
	return bad || check || wro != -EFAULT || free1 != free0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "demo"))
		return demo(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "ptdump"))
		return ptdump_main(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return scn_main(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "report"))
		return report_main(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "stats")) {
		const char *n;

		for (unsigned i = 0; (n = hm_stat_name(i)); i++)
			puts(n);
		return 0;
	}
	bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));

	fprintf(help ? stdout : stderr,
		"usage: hugemm demo [--phys GIB] [--levels 4|5] [--lazy] [--swap FILE] [--pressure-mib MIB]\n"
		"                   [--svg FILE] [--report] [--json]\n"
		"       " PTDUMP_USAGE
		"       hugemm run [--trace] [--no-check] FILE|-\n"
		"       hugemm stats\n"
		"       " REPORT_USAGE);
	if (help)
		printf("\n"
		       "  demo    map 2.5 GiB as 1 GiB, 2 MiB and 4 KiB pages, split, verify, fork, swap; report\n"
		       "  ptdump  build a small address space with every kind of entry and print its page\n"
		       "          tables as the kernel's ptdump does (hm_walk); --range START END limits the\n"
		       "          dump, --walk VA shows every level of one walk, --fork dumps parent and child\n"
		       "  run     run a scenario script (docs/scenarios.md); exit 1 when an expect fails\n"
		       "  stats   list every counter name (hm_stat)\n"
		       "  report  smaps per VMA and rollup, every counter (vmstat), a pagemap of a range, or\n"
		       "          an SVG picture, of a sample address space; --json for JSON (docs/reports.md)\n");
	return help ? 0 : 2;
}
