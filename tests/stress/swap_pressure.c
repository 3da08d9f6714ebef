/* SPDX-License-Identifier: MIT */
/*
 * Seeded, threaded stress under memory pressure (issue 8): physical memory
 * holds half of what the workers write, so their faults reclaim directly
 * while a reclaimer thread runs hm_reclaim and MADV_PAGEOUT over their
 * regions and another forks the address space and checks the child's copy.
 * Every page holds a cookie (its worker, page and generation) at both
 * ends; each worker keeps the generation it last wrote and checks what it
 * reads back. hm_check at the end (and between rounds) balances slots and
 * frames.
 *
 * HM_SEED=n picks the seed; HM_STRESS_OPS=n the operations per worker.
 */
#include <pthread.h>

#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define NWORKERS 3
#define REGION (8 * MiB)
#define PAGES (REGION / 4096)

static struct hm_system *sys;
static struct hm_mm *mm;
static uint64_t base, seed, nops;
static int done;	/* workers finished; atomic */

struct worker {
	pthread_t th;
	unsigned id;
	uint64_t rng;
	uint32_t gen[PAGES];	/* generation last written per page; 0: never */
	unsigned long errors, checks;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t cookie(unsigned id, uint64_t page, uint32_t gen)
{
	return ((uint64_t)id << 56) | (page << 24) | gen;
}

#define EXPECT(w, cond)							\
	do {								\
		(w)->checks++;						\
		if (!(cond)) {						\
			(w)->errors++;					\
			fprintf(stderr, "worker %u: %s:%d: %s\n", (w)->id, __FILE__, __LINE__, #cond); \
		}							\
	} while (0)

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t mine = base + (w->id - 1) * REGION;

	for (uint64_t i = 0; i < nops; i++) {
		uint64_t p = rnd(&w->rng) % PAGES, va = mine + p * 4096;
		uint64_t a = 0, b = 0;

		if (rnd(&w->rng) % 3) {
			uint64_t c = cookie(w->id, p, ++w->gen[p]);

			int r1 = hm_write(mm, va, &c, 8), r2 = hm_write(mm, va + 4088, &c, 8);

			EXPECT(w, r1 == 0 && r2 == 0);
			if (r1 || r2)
				fprintf(stderr, "    write page %llu: %d %d\n", (unsigned long long)p, r1, r2);
		} else {
			uint64_t want = w->gen[p] ? cookie(w->id, p, w->gen[p]) : 0;
			int r1 = hm_read(mm, va, &a, 8), r2 = hm_read(mm, va + 4088, &b, 8);

			EXPECT(w, r1 == 0 && r2 == 0);
			EXPECT(w, a == want && b == want);
			if (a != want || b != want)
				fprintf(stderr, "    page %llu: %#llx %#llx, want %#llx (r %d %d)\n", (unsigned long long)p,
					(unsigned long long)a, (unsigned long long)b, (unsigned long long)want, r1, r2);
		}
	}
	return NULL;
}

static void *reclaimer_main(void *arg)
{
	uint64_t rng = seed ^ 0xabcdef, freed;
	unsigned long *rounds = arg;

	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		uint64_t off = (rnd(&rng) % (NWORKERS * PAGES)) * 4096;
		uint64_t len = (1 + rnd(&rng) % 256) * 4096;

		if (len > NWORKERS * REGION - off)
			len = NWORKERS * REGION - off;

		if (rnd(&rng) % 2)
			hm_madvise(mm, base + off, len, MADV_PAGEOUT);
		else
			hm_reclaim(sys, (1 + rnd(&rng) % 512) * 4096, &freed);
		++*rounds;
	}
	return NULL;
}

static void run(int thp)
{
	struct worker *w = calloc(NWORKERS, sizeof(*w));
	unsigned long rounds = 0, errors = 0, checks = 0;
	pthread_t rt;

	sys = t_system_swap(16 * MiB, 64 * MiB, HM_THP_NEVER, thp, HM_DEPOSIT_EAGER);
	REQUIRE(w && hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, NWORKERS * REGION, RW, PA, &base) == 0);
	__atomic_store_n(&done, 0, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < NWORKERS; i++) {
		w[i].id = i + 1;
		w[i].rng = seed * (i + 7) | 1;
		REQUIRE(pthread_create(&w[i].th, NULL, worker_main, &w[i]) == 0);
	}
	REQUIRE(pthread_create(&rt, NULL, reclaimer_main, &rounds) == 0);
	for (unsigned i = 0; i < NWORKERS; i++)
		pthread_join(w[i].th, NULL);
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	pthread_join(rt, NULL);
	for (unsigned i = 0; i < NWORKERS; i++) {
		errors += w[i].errors;
		checks += w[i].checks;
	}
	fprintf(stderr, "    thp %d: %lu checks, %lu reclaim rounds, %llu out, %llu in, %llu direct\n", thp,
		checks, rounds, (unsigned long long)t_stat(sys, "pswpout"),
		(unsigned long long)t_stat(sys, "pswpin"), (unsigned long long)t_stat(sys, "direct_reclaim"));
	CHECK_EQ(errors, 0);
	CHECK(t_stat(sys, "pswpout") > 0 && t_stat(sys, "pswpin") > 0);
	STEP(sys);
	/* A fork at the end: the child sees every cookie, swapped or not. */
	struct hm_mm *child;
	REQUIRE(hm_fork(mm, &child) == 0);
	unsigned long bad = 0;
	for (unsigned i = 0; i < NWORKERS; i++)
		for (uint64_t p = 0; p < PAGES; p += 7) {
			uint64_t v = 0, want = w[i].gen[p] ? cookie(w[i].id, p, w[i].gen[p]) : 0;

			bad += hm_read(child, base + i * REGION + p * 4096, &v, 8) || v != want;
		}
	CHECK_EQ(bad, 0);
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	CHECK_EQ(t_stat(sys, "swap_free_pages"), t_stat(sys, "swap_total_pages"));
	STEP(sys);
	hm_system_destroy(sys);
	free(w);
}

static void small_pages(void) { run(HM_THP_NEVER); }
static void huge_pages(void) { run(HM_THP_ALWAYS); }

static void setup(void)
{
	const char *s = getenv("HM_SEED"), *n = getenv("HM_STRESS_OPS");

	seed = s ? strtoull(s, NULL, 0) : 0x5eed8;
	nops = n ? strtoull(n, NULL, 0) : 100000;
	t_flags = 0;
	fprintf(stderr, "    seed %#llx, %llu ops per worker\n", (unsigned long long)seed, (unsigned long long)nops);
}

T_MAIN(T(setup), T(small_pages), T(huge_pages))
