/* SPDX-License-Identifier: MIT */
/*
 * The kernel selftests' migration.c idea (issue 9): one thread moves a
 * range back and forth between two nodes while two threads write and read
 * back cookies in it, and a forked child does the same in its own address
 * space (its pages shared with the parent's until its writes copy them);
 * 4 KiB, 2 MiB and 1 GiB pages. Every read must see the last cookie its
 * thread wrote: a write lost in a copy, or a read of a torn or stale page,
 * fails.
 *
 * Half the time without the child, half with it. HM_MIGRATE_SECONDS
 * (default 1) per page size; `make soak` runs 20 s.
 */
#define _GNU_SOURCE
#include <time.h>

#include "harness.h"
#include "thread.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define WORKERS 2

struct shared {
	struct hm_system *sys;
	uint64_t a, len, stride;	/* cookies every @stride bytes */
	double until;
	volatile bool stop;
	unsigned long moves, checks, bad, errors;
};

struct worker {
	struct shared *sh;
	struct hm_mm *mm;
	unsigned id;
	uint64_t seed;
	unsigned long checks, bad, errors;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *migrator(void *p)
{
	struct worker *w = p;
	struct shared *sh = w->sh;
	unsigned node = 1;

	while (!sh->stop && now() < sh->until) {
		int r = hm_migrate(w->mm, sh->a, sh->len, node);

		if (r && r != -ENOMEM && r != -EAGAIN)
			__atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&sh->moves, 1, __ATOMIC_RELAXED);
		node ^= 1;
	}
	return NULL;
}

/* Slots id, id + WORKERS, ... are this worker's: write a fresh cookie to
 * one, read back another's last cookie. */
static void *worker(void *p)
{
	struct worker *w = p;
	struct shared *sh = w->sh;
	uint64_t nslots = sh->len / sh->stride / WORKERS;
	uint64_t *last = calloc(nslots, sizeof(*last));
	uint64_t x = w->seed | 1;

	if (!last)
		exit(2);
	for (uint64_t n = 0; !sh->stop && now() < sh->until; n++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t i = x % nslots, va = sh->a + (i * WORKERS + w->id) * sh->stride;
		uint64_t cookie = (x & ~0xffull) | w->id, got = 0;

		if (hm_write(w->mm, va, &cookie, 8)) {
			w->errors++;
			continue;
		}
		last[i] = cookie;
		uint64_t j = (x >> 20) % nslots;
		if (hm_read(w->mm, sh->a + (j * WORKERS + w->id) * sh->stride, &got, 8)) {
			w->errors++;
			continue;
		}
		w->checks++;
		if (got != last[j]) {
			if (w->bad++ < 5)
				fprintf(stderr, "worker %u: slot %llu read %#llx, wrote %#llx\n", w->id,
					(unsigned long long)j, (unsigned long long)got, (unsigned long long)last[j]);
		}
		if (n % 64 == 0)
			sched_yield();
	}
	free(last);
	return NULL;
}

/* One round: the parent's workers and migrator, and with @fork a child's
 * too. Every slot is 0 when it starts. */
static void round_run(struct shared *sh, struct hm_mm *mm, bool fork, double seconds)
{
	struct hm_mm *child = NULL;
	struct worker ws[WORKERS + 3];
	pthread_t ts[WORKERS + 3];
	unsigned n = 0;

	for (uint64_t off = 0; off < sh->len; off += sh->stride)
		t_poke(mm, sh->a + off, 0);
	if (fork)
		REQUIRE(hm_fork(mm, &child) == 0);
	sh->until = now() + seconds;
	for (unsigned i = 0; i < WORKERS; i++) {
		ws[n] = (struct worker){ .sh = sh, .mm = mm, .id = i, .seed = 0x1234 + i };
		ts[n] = t_spawn(worker, &ws[n]);
		n++;
	}
	if (child) {
		/* The child's cookies are its own (its writes copy the pages). */
		ws[n] = (struct worker){ .sh = sh, .mm = child, .id = 0, .seed = 0x9876 };
		ts[n] = t_spawn(worker, &ws[n]);
		n++;
	}
	unsigned nw = n;
	ws[n] = (struct worker){ .sh = sh, .mm = mm };
	ts[n] = t_spawn(migrator, &ws[n]);
	n++;
	if (child) {
		ws[n] = (struct worker){ .sh = sh, .mm = child };
		ts[n] = t_spawn(migrator, &ws[n]);
		n++;
	}
	for (unsigned i = 0; i < n; i++)
		pthread_join(ts[i], NULL);
	for (unsigned i = 0; i < nw; i++) {
		sh->checks += ws[i].checks;
		sh->bad += ws[i].bad;
		sh->errors += ws[i].errors;
	}
	if (child) {
		STEP(sh->sys);
		hm_mm_destroy(child);
	}
}

static void run(const char *what, uint64_t phys, int pud, int pmd, uint64_t len, uint64_t stride, double seconds)
{
	t_flags = 0;
	struct hm_system *sys = t_system_nodes(phys, 2, pud, pmd, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	struct shared sh = { .sys = sys, .len = len, .stride = stride };

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &sh.a) == 0);
	round_run(&sh, mm, false, seconds / 2);
	uint64_t huge = t_stat(sys, "thp_migration_success");
	STEP(sys);
	round_run(&sh, mm, true, seconds / 2);
	fprintf(stderr, "    %s: %lu migrations, %lu checks, %llu 4 KiB pages moved, %llu huge (%llu before fork)\n",
		what, sh.moves, sh.checks, (unsigned long long)t_stat(sys, "pgmigrate_success"),
		(unsigned long long)t_stat(sys, "thp_migration_success"), (unsigned long long)huge);
	CHECK_EQ(sh.bad, 0);
	CHECK_EQ(sh.errors, 0);
	CHECK(sh.checks > 0);
	CHECK(t_stat(sys, "pgmigrate_success") > 0);
	if (pmd != HM_THP_NEVER || pud != HM_THP_NEVER)
		CHECK(huge > 0);
	STEP(sys);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

static double seconds(void)
{
	const char *s = getenv("HM_MIGRATE_SECONDS");

	return s ? atof(s) : 1.0;
}

static void pages_4k(void) { run("4 KiB", 64 * MiB, HM_THP_NEVER, HM_THP_NEVER, 256 * 4096, 512, seconds()); }
static void pages_2m(void) { run("2 MiB", 64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, 8 * MiB, 4096, seconds()); }
static void pages_1g(void) { run("1 GiB", 5 * GiB, HM_THP_ALWAYS, HM_THP_NEVER, GiB, 2 * MiB, seconds()); }

T_MAIN(T(pages_4k), T(pages_2m), T(pages_1g))
