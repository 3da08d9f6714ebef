/* SPDX-License-Identifier: MIT */
/*
 * Empty tables given back while threads fault in the same range (issue 11,
 * item 4), for TSan: workers write, read and DONTNEED their own 4 KiB
 * pages, interleaved so that every PTE table serves all of them and empties
 * and refills all the time; a reaper DONTNEEDs whole 2 MiB pieces of a
 * second range, munmaps them and maps them again, and replaces them with
 * MAP_FIXED, so that PTE and PMD tables go while the workers' TLB refills
 * walk them; the main thread runs hm_check meanwhile.
 *
 * Checked: in the first range every read sees exactly what its owner last
 * wrote there (zeros after its DONTNEED); in the second, its owner's last
 * cookie, zeros (reaped), or -EFAULT (unmapped) and nothing else: never
 * another thread's cookie or bytes of a table. At the end hm_check, every
 * page of the first range, and the tables back to where they started once
 * both ranges are DONTNEEDed.
 *
 * Twice: 4 KiB pages only, and with 2 MiB pages (eager deposits) that the
 * workers' 4 KiB DONTNEEDs split. HM_SEED, HM_STRESS_OPS (per worker).
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define WORKERS 3
#define EXACT (8 * MiB)		/* first range: exact model */
#define CHAOS (8 * MiB)		/* second range: reaped */
#define PAGES(len) ((len) / 4096)
#ifdef T_TSAN
#define T_OPS_DEFAULT 6000
#else
#define T_OPS_DEFAULT 40000
#endif

struct shared {
	struct hm_system *sys;
	struct hm_mm *mm;
	uint64_t exact, chaos;	/* the two ranges */
	unsigned long ops;
	int done;		/* workers finished; atomic */
	unsigned long bad, errors;	/* atomic */
};

struct worker {
	struct shared *sh;
	unsigned id;
	uint64_t seed, seq;
	uint64_t *last_exact, *last_chaos;	/* by page; only this worker's */
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A page of the worker's own: page index ≡ id mod WORKERS. */
static uint64_t own_page(struct worker *w, uint64_t pages)
{
	return (rnd(&w->seed) % (pages / WORKERS)) * WORKERS + w->id;
}

static void flag(struct shared *sh, bool bad)
{
	if (bad)
		__atomic_add_fetch(&sh->bad, 1, __ATOMIC_RELAXED);
}

static void exact_op(struct worker *w)
{
	struct shared *sh = w->sh;
	uint64_t p = own_page(w, PAGES(EXACT)), va = sh->exact + p * 4096;
	uint64_t v = 0, cookie = (uint64_t)(w->id + 1) << 56 | ++w->seq;
	unsigned what = (unsigned)(rnd(&w->seed) % 4);

	if (what == 0) {
		flag(sh, hm_madvise(sh->mm, va, 4096, MADV_DONTNEED) != 0);
		w->last_exact[p] = 0;
	} else if (what == 1) {
		flag(sh, hm_write(sh->mm, va + (p % 511) * 8, &cookie, 8) != 0);
		w->last_exact[p] = cookie;
	} else {
		flag(sh, hm_read(sh->mm, va + (p % 511) * 8, &v, 8) != 0 || v != w->last_exact[p]);
	}
}

static void chaos_op(struct worker *w)
{
	struct shared *sh = w->sh;
	uint64_t p = own_page(w, PAGES(CHAOS)), va = sh->chaos + p * 4096;
	uint64_t v = 0, cookie = (uint64_t)(w->id + 1) << 56 | ++w->seq;
	int r;

	if (rnd(&w->seed) % 2) {
		r = hm_write(sh->mm, va, &cookie, 8);
		flag(sh, r && r != -EFAULT);
		w->last_chaos[p] = r ? 0 : cookie;
	} else {
		r = hm_read(sh->mm, va, &v, 8);
		flag(sh, (r && r != -EFAULT) || (!r && v && v != w->last_chaos[p]));
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (unsigned long i = 0; i < w->sh->ops; i++) {
		if (i % 2)
			exact_op(w);
		else
			chaos_op(w);
	}
	__atomic_add_fetch(&w->sh->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Until the workers are done: take the second range's tables away in
 * every way there is. */
static void *reaper_main(void *arg)
{
	struct shared *sh = arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull, got;

	while (__atomic_load_n(&sh->done, __ATOMIC_ACQUIRE) < WORKERS) {
		uint64_t piece = sh->chaos + (rnd(&seed) % (CHAOS / (2 * MiB))) * 2 * MiB;
		int r = 0;

		switch (rnd(&seed) % 4) {
		case 0:
			r = hm_madvise(sh->mm, piece, 2 * MiB, MADV_DONTNEED);
			break;
		case 1:
			r = hm_madvise(sh->mm, sh->chaos, CHAOS, MADV_DONTNEED);
			break;
		case 2:
			r = hm_munmap(sh->mm, piece, 2 * MiB);
			if (!r)
				r = hm_mmap(sh->mm, piece, 2 * MiB, RW, PA | MAP_FIXED, &got);
			break;
		case 3:
			r = hm_mmap(sh->mm, piece, 2 * MiB, RW, PA | MAP_FIXED, &got);
			break;
		}
		if (r)
			__atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static uint64_t tables(struct hm_system *sys)
{
	return t_stat(sys, "pgtable_bytes") / 4096;
}

static void run(int thp_pmd, uint64_t seed, unsigned long ops)
{
	struct shared sh = { .ops = ops };
	struct worker w[WORKERS];
	pthread_t th[WORKERS], reaper;

	t_flags = 0;	/* hm_check runs here, between and after */
	sh.sys = t_system(256 * MiB, HM_THP_NEVER, thp_pmd, HM_DEPOSIT_EAGER);
	REQUIRE(hm_mm_create(sh.sys, &sh.mm) == 0);
	uint64_t a = 0;
	REQUIRE(hm_mmap(sh.mm, 0, EXACT + CHAOS + 2 * MiB, RW, PA, &a) == 0);
	a = (a + 2 * MiB - 1) & ~(2 * MiB - 1);
	sh.exact = a;
	sh.chaos = a + EXACT;
	uint64_t pt0 = tables(sh.sys);

	for (unsigned i = 0; i < WORKERS; i++) {
		w[i] = (struct worker){ .sh = &sh, .id = i, .seed = seed * 31 + i + 1 };
		w[i].last_exact = calloc(PAGES(EXACT), 8);
		w[i].last_chaos = calloc(PAGES(CHAOS), 8);
		REQUIRE(w[i].last_exact && w[i].last_chaos);
	}
	for (unsigned i = 0; i < WORKERS; i++)
		REQUIRE(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
	REQUIRE(pthread_create(&reaper, NULL, reaper_main, &sh) == 0);
	while (__atomic_load_n(&sh.done, __ATOMIC_ACQUIRE) < WORKERS)
		STEP(sh.sys);
	for (unsigned i = 0; i < WORKERS; i++)
		pthread_join(th[i], NULL);
	pthread_join(reaper, NULL);
	STEP(sh.sys);
	CHECK_EQ(sh.bad, 0);
	CHECK_EQ(sh.errors, 0);
	/* With 2 MiB pages the reaper mostly takes leaves, whose PMD table
	 * the first range keeps: tables go at the end below. */
	if (thp_pmd == HM_THP_NEVER)
		CHECK(t_stat(sh.sys, "pgtable_reclaimed") > 0);

	/* Every page of the first range, from its owner's model (the last
	 * pages, which own_page never picks, read as zeros). */
	unsigned long wrong = 0;
	for (uint64_t p = 0; p < PAGES(EXACT); p++) {
		uint64_t v = 1, off = (p % 511) * 8;

		wrong += hm_read(sh.mm, sh.exact + p * 4096 + off, &v, 8) ||
			 v != w[p % WORKERS].last_exact[p];
	}
	CHECK_EQ(wrong, 0);
	STEP(sh.sys);
	CHECK_EQ(hm_madvise(sh.mm, a, EXACT + CHAOS, MADV_DONTNEED), 0);
	STEP(sh.sys);
	CHECK(t_stat(sh.sys, "pgtable_reclaimed") > 0);
	CHECK(tables(sh.sys) <= pt0 + 2);	/* at most the PUD and PMD tables over the range's neighbours */
	fprintf(stderr, "    pmd thp %d: %lu ops x %d workers, %llu tables reclaimed\n", thp_pmd, ops,
		WORKERS, (unsigned long long)t_stat(sh.sys, "pgtable_reclaimed"));
	for (unsigned i = 0; i < WORKERS; i++) {
		free(w[i].last_exact);
		free(w[i].last_chaos);
	}
	hm_mm_destroy(sh.mm);
	hm_system_destroy(sh.sys);
}

static uint64_t seed_env(void)
{
	const char *e = getenv("HM_SEED");

	return e ? strtoull(e, NULL, 0) : 1;
}

static unsigned long ops_env(void)
{
	const char *e = getenv("HM_STRESS_OPS");

	return e ? strtoul(e, NULL, 0) : T_OPS_DEFAULT;
}

static void small_pages(void) { run(HM_THP_NEVER, seed_env(), ops_env()); }
static void huge_pages(void) { run(HM_THP_ALWAYS, seed_env() + 1000, ops_env()); }

T_MAIN(T(small_pages), T(huge_pages))
