/* SPDX-License-Identifier: MIT */
/*
 * What the benchmarks share: the clock, statistics over rounds, the header
 * (machine, date, commit), and the figures — each printed as one row of a
 * table and, with --json FILE, written as one line of JSON.
 *
 * A figure is a value with its unit and direction, and, where it has one,
 * the baseline it is judged against (measured in the same run) and a goal.
 * The ratio is always "how many times better than the baseline": value /
 * baseline when higher is better, baseline / value when lower is better.
 * A baseline that is a LIMIT (zeroing, copying, the device) cannot be
 * beaten by doing the same work: a ratio above 1.0 against one is marked
 * with "(!)" and explained in a footnote, never passed over.
 *
 * A goal is a string: ">=0.8x" / "<1.7x" judges the ratio, "<=8" / "<300"
 * (no x) judges the value in the row's unit.
 */
#ifndef HM_BENCH_UTIL_H
#define HM_BENCH_UTIL_H

#include <emmintrin.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

extern char *program_invocation_short_name;

static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* qsort() order for doubles. */
static inline int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of @n values (sorts them). */
static inline double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The largest of @n values: the best of the rounds for a rate. */
static inline double best(const double *v, int n)
{
	double b = v[0];

	for (int i = 1; i < n; i++)
		b = v[i] > b ? v[i] : b;
	return b;
}

static inline void die(const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* Stop on a nonzero return from hugemm. */
static inline void ok(const char *what, int r)
{
	if (r)
		die(what, r);
}

static double bench_t0;	/* when the header was printed */

/* A line on stderr on what is being measured, after what stdout has, with
 * the seconds since the start (to keep the whole run short). */
#define progress(...) (fflush(stdout), fprintf(stderr, "[%5.1f s] ", now() - bench_t0), \
		       fprintf(stderr, __VA_ARGS__))

/* --- the header --- */

static char bench_machine[256], bench_date[32], bench_commit[256];

/* The CPU model, cores, memory and kernel; the date (UTC); the commit
 * (HM_BENCH_COMMIT, as make sets it, or git's own answer). */
static inline void bench_header_init(void)
{
	char line[256], model[192] = "unknown";
	struct utsname u;
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "model name", 10)) {
			snprintf(model, sizeof(model), "%s", strchr(line, ':') + 2);
			model[strcspn(model, "\n")] = 0;
			break;
		}
	if (f)
		fclose(f);
	uname(&u);
	snprintf(bench_machine, sizeof(bench_machine), "%s, %ld cores, %.1f GiB, Linux %s", model,
		 sysconf(_SC_NPROCESSORS_ONLN),
		 sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / GiB, u.release);
	time_t t = time(NULL);
	strftime(bench_date, sizeof(bench_date), "%Y-%m-%d %H:%M UTC", gmtime(&t));
	const char *c = getenv("HM_BENCH_COMMIT");
	if (c && *c) {
		snprintf(bench_commit, sizeof(bench_commit), "%s", c);
		return;
	}
	snprintf(bench_commit, sizeof(bench_commit), "unknown");
	f = popen("git describe --always --dirty 2>/dev/null", "r");
	if (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		snprintf(bench_commit, sizeof(bench_commit), "%s", line);
	}
	if (f)
		pclose(f);
}

/* "machine: ...", "date: ..., commit: ..." and what this program measures. */
static inline void print_header(const char *method)
{
	if (!bench_date[0])
		bench_header_init();
	bench_t0 = now();
	printf("machine: %s\ndate: %s, commit: %s\n%s\n\n", bench_machine, bench_date, bench_commit, method);
}

/* --- figures --- */

struct bench_fig {
	char name[80];
	double value;
	const char *unit;
	bool higher_better;
	char base[48];		/* baseline's name, "" for none */
	double base_value;	/* 0: the baseline could not be measured */
	bool limit;		/* the baseline is a limit of the same work */
	const char *goal;	/* NULL or ">=0.8x", "<=8", ... */
	double ratio;		/* 0 without a baseline */
	int goal_met;		/* -1 no goal, 0 missed, 1 met */
};

#define BENCH_MAX_FIGS 128
static struct bench_fig bench_figs[BENCH_MAX_FIGS];
static int bench_nfigs, bench_above_limit;
static const char *bench_above_note;

/* Does @x satisfy @goal ("<=8", ">=0.8x": the op and the number)? */
static inline bool goal_holds(const char *goal, double x)
{
	const char *p = goal;
	int op = 0;	/* 1 <, 2 <=, 3 >, 4 >= */

	if (*p == '<' || *p == '>')
		op = *p++ == '<' ? 1 : 3;
	if (op && *p == '=') {
		op++;
		p++;
	}
	double v = strtod(p, NULL);

	switch (op) {
	case 1: return x < v;
	case 2: return x <= v;
	case 3: return x > v;
	default: return x >= v;
	}
}

/* Print a section's title and the column heads. */
static inline void table(const char *title)
{
	printf("\n%s\n%-44s %16s  %-36s %16s  %9s  %s\n", title, "", "value", "baseline (same run)", "",
	       "ratio", "goal");
}

/*
 * One figure: print its row and keep it for the JSON file. @base NULL: no
 * baseline; @base_value 0: the baseline could not be measured ("n/a").
 * @limit: the baseline is a limit; a ratio above 1.0 gets "(!)" and the
 * footnote @note (printed once by bench_footnotes).
 */
static inline void fig(const char *name, double value, const char *unit, bool higher_better, const char *base,
		       double base_value, bool limit, const char *goal, const char *note)
{
	if (bench_nfigs == BENCH_MAX_FIGS)
		die("too many figures", ENOSPC);
	struct bench_fig *f = &bench_figs[bench_nfigs++];
	char vbuf[32], bbuf[48] = "", rbuf[16] = "", gbuf[48] = "";

	snprintf(f->name, sizeof(f->name), "%s", name);
	f->value = value;
	f->unit = unit;
	f->higher_better = higher_better;
	snprintf(f->base, sizeof(f->base), "%s", base ? base : "");
	f->base_value = base ? base_value : 0;
	f->limit = limit;
	f->goal = goal;
	f->ratio = 0;
	if (base && base_value > 0 && value > 0)
		f->ratio = higher_better ? value / base_value : base_value / value;
	f->goal_met = -1;
	if (goal) {
		bool on_ratio = goal[strlen(goal) - 1] == 'x';

		if (!on_ratio || f->ratio > 0)
			f->goal_met = goal_holds(goal, on_ratio ? f->ratio : value);
		snprintf(gbuf, sizeof(gbuf), "%s%s %s", goal, on_ratio ? "" : unit,
			 f->goal_met < 0 ? "(n/a)" : f->goal_met ? "met" : "MISSED");
	}
	snprintf(vbuf, sizeof(vbuf), "%10.2f %-5s", value, unit);
	if (base && base_value > 0)
		snprintf(bbuf, sizeof(bbuf), "%10.2f %-5s", base_value, unit);
	else if (base)
		snprintf(bbuf, sizeof(bbuf), "%16s", "n/a");
	if (f->ratio > 0) {
		bool above = limit && f->ratio > 1.0;

		snprintf(rbuf, sizeof(rbuf), "%6.2fx%s", f->ratio, above ? "(!)" : "");
		if (above) {
			bench_above_limit++;
			bench_above_note = note;
		}
	}
	printf("%-44s %16s  %-36s %16s  %9s  %s\n", name, vbuf, base ? base : "", bbuf, rbuf, gbuf);
}

/* A figure judged by a limit: higher is better, same unit. */
static inline void fig_limit(const char *name, double value, const char *unit, const char *limit_name,
			     double limit_value, const char *goal, const char *note)
{
	fig(name, value, unit, true, limit_name, limit_value, true, goal, note);
}

/* The footnote for ratios above a limit, if any row had one. */
static inline void bench_footnotes(void)
{
	if (bench_above_limit)
		printf("\n(!) above the limit: %s\n", bench_above_note ? bench_above_note :
		       "the figure beats the limit measured in this run; explain before believing it");
}

static inline void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++)
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	fputc('"', f);
}

/*
 * Write every figure to @path as JSON: the header fields, then one figure
 * an line (scripts/bench-merge and scripts/bench-compare rely on that).
 */
static inline void bench_json(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die(path, errno);
	fprintf(f, "{\"program\": ");
	json_str(f, program_invocation_short_name);
	fprintf(f, ", \"machine\": ");
	json_str(f, bench_machine);
	fprintf(f, ", \"date\": ");
	json_str(f, bench_date);
	fprintf(f, ", \"commit\": ");
	json_str(f, bench_commit);
	fprintf(f, ",\n\"figures\": [\n");
	for (int i = 0; i < bench_nfigs; i++) {
		struct bench_fig *g = &bench_figs[i];

		fprintf(f, "{\"name\": ");
		json_str(f, g->name);
		fprintf(f, ", \"value\": %.6g, \"unit\": ", g->value);
		json_str(f, g->unit);
		fprintf(f, ", \"higher_is_better\": %s, \"baseline\": ", g->higher_better ? "true" : "false");
		if (g->base[0])
			json_str(f, g->base);
		else
			fputs("null", f);
		if (g->base[0] && g->base_value > 0)
			fprintf(f, ", \"baseline_value\": %.6g", g->base_value);
		else
			fputs(", \"baseline_value\": null", f);
		if (g->ratio > 0)
			fprintf(f, ", \"ratio\": %.6g", g->ratio);
		else
			fputs(", \"ratio\": null", f);
		fprintf(f, ", \"limit\": %s, \"goal\": ", g->limit ? "true" : "false");
		if (g->goal)
			json_str(f, g->goal);
		else
			fputs("null", f);
		fprintf(f, ", \"goal_met\": %s}%s\n", g->goal_met < 0 ? "null" : g->goal_met ? "true" : "false",
			i + 1 < bench_nfigs ? "," : "");
	}
	fprintf(f, "]}\n");
	if (fclose(f))
		die(path, errno);
}

/* Take "--json FILE" out of argv (every program has it); the path or NULL. */
static inline const char *json_arg(int *argc, char **argv)
{
	const char *path = NULL;
	int j = 1;

	for (int i = 1; i < *argc; i++)
		if (!strcmp(argv[i], "--json") && i + 1 < *argc)
			path = argv[++i];
		else
			argv[j++] = argv[i];
	*argc = j;
	argv[j] = NULL;
	return path;
}

/* --- host memory --- */

/* A host buffer of @bytes backed by host huge pages where the host has
 * them, as hugemm's arena is: a baseline in 4 KiB host pages would pay TLB
 * misses that hugemm does not. */
static inline char *host_buffer(uint64_t bytes)
{
	const uint64_t huge = 2ull << 20;
	char *m = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		die("mmap", errno);
	char *p = (char *)(((uintptr_t)m + huge - 1) & ~(huge - 1));
	madvise(p, bytes, MADV_HUGEPAGE);
	return p;
}

/* A copy with non-temporal stores, 64 bytes a step (@bytes a multiple). */
static inline void copy_nt(void *dst, const void *src, uint64_t bytes)
{
	const __m128i *s = src;
	__m128i *d = dst;

	for (uint64_t i = 0; i < bytes / 16; i += 4) {
		__m128i a = _mm_load_si128(s + i), b = _mm_load_si128(s + i + 1);
		__m128i c = _mm_load_si128(s + i + 2), e = _mm_load_si128(s + i + 3);

		_mm_stream_si128(d + i, a);
		_mm_stream_si128(d + i + 1, b);
		_mm_stream_si128(d + i + 2, c);
		_mm_stream_si128(d + i + 3, e);
	}
	_mm_sfence();
}

/* The faster of a memcpy and a non-temporal copy of @bytes, seconds (the
 * fastest honest copy: memcpy streams only above its threshold); which
 * one won in *nt. */
static inline double copy_best(void *dst, const void *src, uint64_t bytes, bool *nt)
{
	double t0 = now();

	memcpy(dst, src, bytes);
	__asm__ volatile("" : : "r"(dst) : "memory");
	double t1 = now();
	copy_nt(dst, src, bytes);
	double t2 = now();

	if (nt)
		*nt = t2 - t1 < t1 - t0;
	return t2 - t1 < t1 - t0 ? t2 - t1 : t1 - t0;
}

#endif /* HM_BENCH_UTIL_H */
