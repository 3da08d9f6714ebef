/* SPDX-License-Identifier: MIT */
/*
 * Seeded, threaded stress. Worker threads share one address space; each
 * owns a region and keeps a byte-for-byte model of it, and mixes reads,
 * writes, DONTNEED, mprotect, munmap+mmap of its own region while the
 * others do the same next door. Another thread works a second address
 * space. The main thread runs hm_check concurrently the whole time, and
 * another thread the THP shrinkers (deferred split, underused pages),
 * which split the folios the workers are mapping, unmapping and copying.
 *
 * HM_SEED=n picks the seed (printed; fixed by default so that CI repeats
 * itself); HM_STRESS_OPS=n the operations per thread.
 */
#include <pthread.h>
#include <unistd.h>

#include "harness.h"
#include "hooks.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define NWORKERS 3
#define REGION (8 * MiB)

static struct hm_system *sys;
static struct hm_mm *shared_mm;
static uint64_t seed, nops;
static int done;	/* workers finished; atomic */

struct worker {
	pthread_t th;
	struct hm_mm *mm;
	uint64_t base, rng;
	uint8_t *model;
	unsigned long errors, checks;
};

static uint64_t rnd(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

#define EXPECT(w, cond)							\
	do {								\
		(w)->checks++;						\
		if (!(cond)) {						\
			(w)->errors++;					\
			fprintf(stderr, "worker %p: %s:%d: %s\n", (void *)(w), __FILE__, __LINE__, #cond); \
		}							\
	} while (0)

static void op(struct worker *w)
{
	uint8_t buf[9000];
	uint64_t len = 1 + rnd(w) % sizeof(buf);
	uint64_t off = rnd(w) % (REGION - len);
	uint64_t pg = (rnd(w) % (REGION / 4096)) * 4096;
	uint64_t pages = 1 + rnd(w) % 600;

	if (pg + pages * 4096 > REGION)
		pages = (REGION - pg) / 4096;
	switch (rnd(w) % 16) {
	default:	/* write */
		for (uint64_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rnd(w);
		EXPECT(w, hm_write(w->mm, w->base + off, buf, len) == 0);
		memcpy(w->model + off, buf, len);
		break;
	case 0: case 1: case 2: case 3: case 4: case 5:	/* read and compare */
		EXPECT(w, hm_read(w->mm, w->base + off, buf, len) == 0);
		EXPECT(w, memcmp(buf, w->model + off, len) == 0);
		break;
	case 6: case 7:
		EXPECT(w, hm_madvise(w->mm, w->base + pg, pages * 4096, MADV_DONTNEED) == 0);
		memset(w->model + pg, 0, pages * 4096);
		break;
	case 8: {	/* read-only for a while: writes there fault, reads see data */
		uint64_t v = 0;
		EXPECT(w, hm_mprotect(w->mm, w->base + pg, pages * 4096, PROT_READ) == 0);
		EXPECT(w, hm_write(w->mm, w->base + pg, &v, 1) == -EFAULT);
		EXPECT(w, hm_read(w->mm, w->base + pg, &v, 1) == 0 && (uint8_t)v == w->model[pg]);
		EXPECT(w, hm_mprotect(w->mm, w->base + pg, pages * 4096, RW) == 0);
		break;
	}
	case 9: {	/* replace a piece of the region */
		uint64_t a = 0;
		EXPECT(w, hm_munmap(w->mm, w->base + pg, pages * 4096) == 0);
		EXPECT(w, hm_read(w->mm, w->base + pg, buf, 1) == -EFAULT);
		EXPECT(w, hm_mmap(w->mm, w->base + pg, pages * 4096, RW, PA | MAP_FIXED, &a) == 0);
		memset(w->model + pg, 0, pages * 4096);
		break;
	}
	}
}

static void *work(void *arg)
{
	struct worker *w = arg;

	for (uint64_t i = 0; i < nops; i++)
		op(w);
	/* Full comparison at the end. */
	uint8_t *all = malloc(REGION);
	EXPECT(w, all && hm_read(w->mm, w->base, all, REGION) == 0);
	EXPECT(w, all && memcmp(all, w->model, REGION) == 0);
	free(all);
	__atomic_add_fetch(&done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static unsigned long shrinks;
static uint64_t shrunk;

static void *shrinker(void *arg)
{
	(void)arg;
	while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) < NWORKERS + 1) {
		shrunk += hm__thp_shrink(sys, UINT64_MAX);
		shrinks++;
		usleep(500);
	}
	return NULL;
}

/* Fork the shared mm while the workers write to it; a child's memory must
 * not change afterwards, whatever the parent does. */
static unsigned long forks, fork_errors;

static void *forker(void *arg)
{
	uint64_t base = *(uint64_t *)arg;
	uint8_t *a = malloc(REGION), *b = malloc(REGION);

	while (a && b && __atomic_load_n(&done, __ATOMIC_ACQUIRE) < NWORKERS) {
		struct hm_mm *child;
		int r = hm_fork(shared_mm, &child);

		if (r) {
			fork_errors++;
			break;
		}
		/* pages of the first worker's region that are mapped readable */
		for (uint64_t off = 0; off < REGION; off += 4096)
			if (hm_read(child, base + off, a + off, 4096))
				memset(a + off, 0xee, 4096);
		usleep(1000);
		for (uint64_t off = 0; off < REGION; off += 4096)
			if (hm_read(child, base + off, b + off, 4096))
				memset(b + off, 0xee, 4096);
		fork_errors += memcmp(a, b, REGION) != 0;
		hm_mm_destroy(child);
		forks++;
	}
	free(a);
	free(b);
	return NULL;
}

static void stress(void)
{
	struct worker w[NWORKERS + 1];
	struct hm_mm *other;
	unsigned long checks_run = 0, check_fail = 0;

	struct hm_config cfg;

	/* No HM_CHECK: the main thread checks concurrently instead. */
	hm_config_default(&cfg);
	cfg.phys_bytes = 512 * MiB;
	cfg.khugepaged_max_ptes_none = 256;	/* the underused shrinker on */
	REQUIRE(hm_system_create(&cfg, &sys) == 0);
	REQUIRE(hm_mm_create(sys, &shared_mm) == 0);
	REQUIRE(hm_mm_create(sys, &other) == 0);
	uint64_t free0 = t_free_frames(sys);
	for (int i = 0; i <= NWORKERS; i++) {
		w[i].mm = i < NWORKERS ? shared_mm : other;
		w[i].rng = seed * 7919 + (uint64_t)i * 104729 + 1;
		w[i].model = calloc(1, REGION);
		w[i].errors = w[i].checks = 0;
		REQUIRE(w[i].model);
		REQUIRE(hm_mmap(w[i].mm, 0, REGION, RW, PA, &w[i].base) == 0);
	}
	pthread_t fth, sth;

	for (int i = 0; i <= NWORKERS; i++)
		pthread_create(&w[i].th, NULL, work, &w[i]);
	pthread_create(&fth, NULL, forker, &w[0].base);
	pthread_create(&sth, NULL, shrinker, NULL);
	/* hm_check while they run (each check waits for every mm's lock). */
	while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) <= NWORKERS || checks_run < 3) {
		check_fail += hm_check(sys) != 0;
		checks_run++;
		usleep(2000);
	}
	for (int i = 0; i <= NWORKERS; i++) {
		pthread_join(w[i].th, NULL);
		CHECK_EQ(w[i].errors, 0);
		CHECK(w[i].checks >= nops);
		t_passed += w[i].checks - w[i].errors;	/* the workers' own assertions */
		free(w[i].model);
	}
	pthread_join(fth, NULL);
	pthread_join(sth, NULL);
	fprintf(stderr, "stress: %lu shrinker passes freed %llu frames, %llu folio splits (%llu underused)\n",
		shrinks, (unsigned long long)shrunk, (unsigned long long)t_stat(sys, "thp_split_page"),
		(unsigned long long)t_stat(sys, "thp_underused_split_page"));
	CHECK(t_stat(sys, "thp_split_page") > 0);
	CHECK_EQ(fork_errors, 0);
	CHECK(forks > 0);
	fprintf(stderr, "stress: %lu forks while writing\n", forks);
	CHECK_EQ(check_fail, 0);
	fprintf(stderr, "stress: %lu concurrent hm_check runs\n", checks_run);
	STEP(sys);
	hm_mm_destroy(shared_mm);
	hm_mm_destroy(other);
	STEP(sys);
	CHECK_EQ(t_free_frames(sys) + t_zero_frames(sys), free0 + 2);	/* the two root tables */
	hm_system_destroy(sys);
}

int main(int argc, char **argv)
{
	const char *s = getenv("HM_SEED"), *n = getenv("HM_STRESS_OPS");

	seed = s ? strtoull(s, NULL, 0) : 20261122;
	nops = n ? strtoull(n, NULL, 0) : 20000;
	fprintf(stderr, "stress: HM_SEED=%llu HM_STRESS_OPS=%llu\n", (unsigned long long)seed,
		(unsigned long long)nops);
	static const struct t_case cases[] = { T(stress) };
	return t_main(argc, argv, cases, 1);
}
