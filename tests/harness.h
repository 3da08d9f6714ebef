/* SPDX-License-Identifier: MIT */
/*
 * A small test harness. Every CHECK is one counted assertion; a test binary
 * runs its cases in order (or the ones named on the command line) and ends
 * with "<binary>: N passed, N failed". tests/run.sh adds them up.
 *
 * Scenario helpers: STEP(sys) runs hm_check after a step and counts it as
 * an assertion, so that every step of every scenario is checked.
 */
#ifndef HM_TEST_HARNESS_H
#define HM_TEST_HARNESS_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hugemm.h>

/* T_TSAN: built with ThreadSanitizer, whose shadow memory leaves room for
 * smaller systems only. */
#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif

static unsigned long t_passed, t_failed;
static const char *t_case;

#define CHECK(cond)							\
	do {								\
		if (cond) {						\
			t_passed++;					\
		} else {						\
			t_failed++;					\
			fprintf(stderr, "FAIL %s: %s:%d: %s\n", t_case,	\
				__FILE__, __LINE__, #cond);		\
		}							\
	} while (0)

#define CHECK_EQ(a, b)							\
	do {								\
		long long _a = (long long)(a), _b = (long long)(b);	\
		if (_a == _b) {						\
			t_passed++;					\
		} else {						\
			t_failed++;					\
			fprintf(stderr, "FAIL %s: %s:%d: %s == %s (%lld != %lld)\n", \
				t_case, __FILE__, __LINE__, #a, #b, _a, _b); \
		}							\
	} while (0)

/* Stop the case on a failed precondition (the rest would only cascade). */
#define REQUIRE(cond)							\
	do {								\
		unsigned long _f = t_failed;				\
		CHECK(cond);						\
		if (t_failed != _f)					\
			return;						\
	} while (0)

#define STEP(sys) CHECK_EQ(hm_check(sys), 0)

struct t_case {
	const char *name;
	void (*fn)(void);
};

#define GiB (1ull << 30)
#define MiB (1ull << 20)
#define KiB (1ull << 10)

static inline uint64_t t_stat(struct hm_system *sys, const char *name)
{
	uint64_t v = 0;

	if (hm_stat(sys, name, &v)) {
		fprintf(stderr, "no statistic %s\n", name);
		t_failed++;
	}
	return v;
}

/* Free frames, where each page table costs one: nr_free_pages, plus the
 * free slots of the page-table blocks in use (free for tables only, so not
 * in nr_free_pages), plus the tables on their way to such slots (after a
 * grace period; in neither). For tests that count the frames tables take. */
static inline uint64_t t_free_frames(struct hm_system *sys)
{
	return t_stat(sys, "nr_free_pages") + t_stat(sys, "pgtable_free_slots") + t_stat(sys, "pgtable_pending");
}

/* Frames the huge zero page holds: it is created by the first read fault
 * that maps it and kept until the system is destroyed, so "every frame is
 * back" after the address spaces are gone means nr_free_pages plus these. */
static inline uint64_t t_zero_frames(struct hm_system *sys)
{
	return t_stat(sys, "thp_zero_page_alloc") ? 512 : 0;
}

/* Flags for t_system(): HM_CHECK unless a test that faults in hundreds of
 * thousands of pages turns it off (its STEP()s still check every step). */
static unsigned t_flags = HM_CHECK;

/* A config for tests: @phys bytes, t_flags, defaults otherwise. */
static inline void t_config(struct hm_config *cfg, uint64_t phys, int thp_pud, int thp_pmd, int deposit)
{
	hm_config_default(cfg);
	cfg->phys_bytes = phys;
	cfg->thp_pud = thp_pud;
	cfg->thp_pmd = thp_pmd;
	cfg->deposit = deposit;
	cfg->flags = t_flags;
}

static inline struct hm_system *t_system_cfg(const struct hm_config *cfg)
{
	struct hm_system *sys = NULL;

	if (hm_system_create(cfg, &sys)) {
		fprintf(stderr, "hm_system_create failed\n");
		exit(2);
	}
	return sys;
}

static inline struct hm_system *t_system(uint64_t phys, int thp_pud, int thp_pmd, int deposit)
{
	struct hm_config cfg;

	t_config(&cfg, phys, thp_pud, thp_pmd, deposit);
	return t_system_cfg(&cfg);
}

/* A swap file for tests: a fresh path under /tmp, removed at exit. */
static char t_swap_file[64];

static void t_swap_cleanup(void)
{
	if (t_swap_file[0])
		unlink(t_swap_file);
}

static inline const char *t_swap_path(void)
{
	if (!t_swap_file[0]) {
		snprintf(t_swap_file, sizeof(t_swap_file), "/tmp/hmtest-swap.%d", (int)getpid());
		atexit(t_swap_cleanup);
	}
	return t_swap_file;
}

/* t_system with a swap file of @swap bytes. */
static inline struct hm_system *t_system_swap(uint64_t phys, uint64_t swap, int thp_pud, int thp_pmd,
					      int deposit)
{
	struct hm_config cfg;

	t_config(&cfg, phys, thp_pud, thp_pmd, deposit);
	cfg.swap_path = t_swap_path();
	cfg.swap_bytes = swap;
	return t_system_cfg(&cfg);
}

/* t_system with @nodes memory nodes. */
static inline struct hm_system *t_system_nodes(uint64_t phys, unsigned nodes, int thp_pud, int thp_pmd,
					       int deposit)
{
	struct hm_config cfg;

	t_config(&cfg, phys, thp_pud, thp_pmd, deposit);
	cfg.nr_nodes = nodes;
	return t_system_cfg(&cfg);
}

/* A deterministic 8-byte pattern for page @i of a test. */
static inline uint64_t t_pattern(uint64_t seed, uint64_t i)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull;

	x ^= x >> 31;
	return x | 1;
}

/* Read / write 8 bytes at @va, counting the call's success as an assertion. */
static inline uint64_t t_peek(struct hm_mm *mm, uint64_t va)
{
	uint64_t v = 0;

	CHECK_EQ(hm_read(mm, va, &v, sizeof(v)), 0);
	return v;
}

static inline void t_poke(struct hm_mm *mm, uint64_t va, uint64_t v)
{
	CHECK_EQ(hm_write(mm, va, &v, sizeof(v)), 0);
}

/* Write page i's pattern into the first and last 8 bytes of every 4 KiB
 * page of [a, a + len). Returns the writes that failed. */
static inline unsigned long t_fill(struct hm_mm *mm, uint64_t a, uint64_t len, uint64_t seed)
{
	unsigned long bad = 0;

	for (uint64_t off = 0; off < len; off += 4096) {
		uint64_t v = t_pattern(seed, off / 4096);

		bad += hm_write(mm, a + off, &v, sizeof(v)) != 0;
		bad += hm_write(mm, a + off + 4088, &v, sizeof(v)) != 0;
	}
	return bad;
}

/* Pages of [a, a + len) that are wrong: those in [hole, hole + hole_len)
 * must fault, the others hold t_fill's pattern at both ends. */
static inline unsigned long t_pages_wrong(struct hm_mm *mm, uint64_t a, uint64_t len, uint64_t seed,
					  uint64_t hole, uint64_t hole_len)
{
	unsigned long bad = 0;

	for (uint64_t off = 0; off < len; off += 4096) {
		uint64_t v = 0, w = 0;
		int r1 = hm_read(mm, a + off, &v, sizeof(v));
		int r2 = hm_read(mm, a + off + 4088, &w, sizeof(w));

		if (a + off >= hole && a + off < hole + hole_len)
			bad += r1 != -EFAULT || r2 != -EFAULT;
		else
			bad += r1 || r2 || v != t_pattern(seed, off / 4096) || w != v;
	}
	return bad;
}

static inline int t_main(int argc, char **argv, const struct t_case *cases, size_t n)
{
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

	for (size_t i = 0; i < n; i++) {
		bool run = argc < 2;

		for (int a = 1; a < argc; a++)
			run |= !strcmp(argv[a], cases[i].name);
		if (!run)
			continue;
		t_case = cases[i].name;
		unsigned long f = t_failed;
		cases[i].fn();
		fprintf(stderr, "  %-40s %s\n", cases[i].name, t_failed == f ? "ok" : "FAILED");
	}
	printf("%s: %lu passed, %lu failed\n", prog, t_passed, t_failed);
	return t_failed ? 1 : 0;
}

#define T_MAIN(...)							\
	int main(int argc, char **argv)					\
	{								\
		static const struct t_case cases[] = { __VA_ARGS__ };	\
		return t_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0])); \
	}
#define T(fn) { #fn, fn }

#endif /* HM_TEST_HARNESS_H */
