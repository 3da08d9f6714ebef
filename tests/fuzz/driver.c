/* SPDX-License-Identifier: MIT */
/*
 * hmfuzz: the seeded driver. Runs cases seed, seed+1, ... for a number of
 * seconds or cases, or replays input files (libFuzzer's format). On a
 * failure it prints the seed and the command that replays it step by
 * step, and saves the case's bytes as an input file. Ends with
 * "hmfuzz: N passed, N failed" (checks, as the test harness counts them).
 *
 *   hmfuzz [-s SEED] [-t SECONDS] [-c CASES] [-n STEPS] [-v] [-k] [-K] [-o DIR] [-g DIR] [FILE...]
 *   hmfuzz -T SECONDS [-B] [-s SEED] ...     then the threaded mode (-B: 1 GiB pages)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(const char *p)
{
	fprintf(stderr,
		"usage: %s [-s SEED] [-t SECONDS] [-c CASES] [-n STEPS] [-v] [-k] [-K] [-o DIR] [-g DIR] [FILE...]\n"
		"       %s -T SECONDS [-B] [-s SEED] [-L 5] [-D lazy] [-W 2m] [-N 2]\n"
		"  -s  first seed (default: from the clock, printed)\n"
		"  -t  run for this many seconds (default 10, or 0 with -T), -c  or this many cases\n"
		"  -n  steps per case (default 400)\n"
		"  -v  print every step      -k  accept (and count) the failure kinds of fixed bugs\n"
		"  -K  keep going after a failure      -o  save failing inputs here (default build/fuzz-crashes)\n"
		"  -g  save every case's input in this directory (a corpus for libFuzzer)\n"
		"  FILE  replay input files (libFuzzer format) instead\n"
		"  -T  then the threaded mode for this many seconds: cookies, forks, splits, unmaps from\n"
		"      several threads; -B with 1 GiB pages; -L levels, -D eager|lazy, -W 4k|2m, -N nodes\n"
		"      (none given: four rounds of configs that differ in each)\n",
		p, p);
	exit(2);
}

static unsigned long passed, failed, tolerated, tolerated_excl;

static int replay_file(const char *path, unsigned opts)
{
	FILE *f = fopen(path, "rb");
	static uint8_t data[1 << 20];
	struct fz_src s;
	struct fz_case c;

	if (!f) {
		fprintf(stderr, "hmfuzz: cannot open %s\n", path);
		failed++;
		return 1;
	}
	size_t n = fread(data, 1, sizeof(data), f);
	fclose(f);
	fz_src_bytes(&s, data, n);
	int r = fz_case_run(&c, &s, UINT64_MAX, opts);
	passed += c.passed;
	failed += c.failed;
	tolerated += c.tolerated;
	fprintf(stderr, "%s: %" PRIu64 " steps, %s%s\n", path, c.step, r ? "FAILED: " : "ok", r ? c.why : "");
	return r;
}

int main(int argc, char **argv)
{
	uint64_t seed = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid(), cases = UINT64_MAX, steps = 400;
	double secs = -1, tsecs = 0;
	unsigned opts = 0;
	bool keep = false, big = false, given_dep = false;
	const char *dir = "build/fuzz-crashes", *gen = NULL;
	struct fz_threads_opts to = { .levels = 0 };
	int o;

	while ((o = getopt(argc, argv, "s:t:c:n:vkKo:g:T:BL:D:W:N:h")) != -1) {
		switch (o) {
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 't': secs = strtod(optarg, NULL); break;
		case 'c': cases = strtoull(optarg, NULL, 0); break;
		case 'n': steps = strtoull(optarg, NULL, 0); break;
		case 'v': opts |= FZ_VERBOSE; break;
		case 'k': opts |= FZ_TOLERATE; break;
		case 'K': keep = true; break;
		case 'o': dir = optarg; break;
		case 'g': gen = optarg; break;
		case 'T': tsecs = strtod(optarg, NULL); break;
		case 'B': big = true; break;
		case 'L': to.levels = atoi(optarg); break;
		case 'D': to.deposit = !strcmp(optarg, "lazy") ? HM_DEPOSIT_LAZY : HM_DEPOSIT_EAGER;
			  given_dep = true; break;
		case 'W': to.cow = !strcmp(optarg, "2m") ? HM_COW_2M : HM_COW_4K; given_dep = true; break;
		case 'N': to.nodes = atoi(optarg); break;
		default: usage(argv[0]);
		}
	}
	if (optind < argc) {
		int bad = 0;

		for (int i = optind; i < argc; i++)
			bad |= replay_file(argv[i], opts);
		printf("hmfuzz: %lu passed, %lu failed\n", passed, failed);
		return bad;
	}

	if (secs < 0)
		secs = tsecs > 0 ? 0 : 10;
	if (secs > 0 || cases != UINT64_MAX)
		fprintf(stderr, "hmfuzz: seed %" PRIu64 ", %" PRIu64 " steps a case, %.0f s\n", seed, steps, secs);
	double end = now() + secs;
	uint64_t ran = 0, total_steps = 0, forks = 0, enomem = 0, bad = 0;
	for (uint64_t i = 0; i < cases && (cases != UINT64_MAX || now() < end) && (!bad || keep); i++, ran++) {
		struct fz_src s;
		struct fz_case c;

		fz_src_seed(&s, seed + i, true);
		int r = fz_case_run(&c, &s, steps, opts);
		passed += c.passed;
		failed += c.failed;
		tolerated += c.tolerated;
		tolerated_excl += c.tolerated_excl;
		total_steps += c.step;
		forks += c.forks;
		enomem += c.enomem;
		if (r) {
			char path[512];

			bad++;
			mkdir(dir, 0777);
			snprintf(path, sizeof(path), "%s/seed-%" PRIu64, dir, seed + i);
			fprintf(stderr, "hmfuzz: FAILED, seed %" PRIu64 ", %s\n", seed + i, c.why);
			fprintf(stderr, "  replay: %s%s -s %" PRIu64 " -c 1 -n %" PRIu64 " -v\n", argv[0],
				opts & FZ_TOLERATE ? " -k" : "", seed + i, c.step);
			if (!fz_src_save(&s, path))
				fprintf(stderr, "  input:  %s (replay: %s %s)\n", path, argv[0], path);
		}
		if (gen) {
			char path[512];

			mkdir(gen, 0777);
			snprintf(path, sizeof(path), "%s/seed-%" PRIu64, gen, seed + i);
			fz_src_save(&s, path);
		}
		fz_src_free(&s);
	}
	if (ran) {
		fprintf(stderr, "hmfuzz: %" PRIu64 " cases, %" PRIu64 " steps, %" PRIu64 " forks, %" PRIu64
			" -ENOMEM results, %" PRIu64 " failed cases", ran, total_steps, forks, enomem, bad);
		if (opts & FZ_TOLERATE)
			fprintf(stderr, "; tolerated: %lu partial writes, %lu inexact 2 MiB exclusive", tolerated,
				tolerated_excl);
		fprintf(stderr, "\n");
	}
	/* Threaded: the config given, or four rounds of configs that differ in
	 * every setting. */
	static const struct { int levels, deposit, cow, nodes; } rounds[] = {
		{ 4, HM_DEPOSIT_EAGER, HM_COW_4K, 1 }, { 5, HM_DEPOSIT_LAZY, HM_COW_2M, 1 },
		{ 4, HM_DEPOSIT_LAZY, HM_COW_4K, 2 }, { 5, HM_DEPOSIT_EAGER, HM_COW_2M, 2 },
	};
	bool given = to.levels || to.nodes || given_dep;
	for (unsigned i = 0; tsecs > 0 && (!bad || keep) && i < (given ? 1 : 4); i++) {
		struct fz_threads_opts r = to;

		if (!given) {
			r.levels = rounds[i].levels;
			r.deposit = rounds[i].deposit;
			r.cow = rounds[i].cow;
			r.nodes = rounds[i].nodes;
		}
		r.levels = r.levels ? r.levels : 4;
		r.nodes = r.nodes ? r.nodes : 1;
		r.seed = seed + i;
		r.seconds = given ? tsecs : tsecs / 4;
		r.big = big;
		r.verbose = opts & FZ_VERBOSE;
		r.tolerate = opts & FZ_TOLERATE;
		unsigned long f0 = failed;
		fprintf(stderr, "hmfuzz: threaded, seed %" PRIu64 ", %.0f s, %s, %d levels, %s deposit, cow %s, %d node%s\n",
			r.seed, r.seconds, big ? "1 GiB regions" : "8 MiB regions", r.levels, r.deposit ? "lazy" : "eager",
			r.cow ? "2M" : "4K", r.nodes, r.nodes > 1 ? "s" : "");
		fz_threads_run(&r, &passed, &failed);
		if (failed != f0) {
			bad++;
			fprintf(stderr, "hmfuzz: threaded mode FAILED; rerun (timing-dependent): %s -T %.0f%s -s %" PRIu64
				" -L %d -D %s -W %s -N %d\n", argv[0], r.seconds, big ? " -B" : "", r.seed, r.levels,
				r.deposit ? "lazy" : "eager", r.cow ? "2m" : "4k", r.nodes);
		}
	}
	printf("hmfuzz: %lu passed, %lu failed\n", passed, failed);
	return failed ? 1 : 0;
}
