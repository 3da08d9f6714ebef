/* SPDX-License-Identifier: MIT */
/*
 * Collapse under concurrency: writer threads keep a model of the pages
 * they own in one address space (every fourth page of a 16 MiB range,
 * interleaved, so every 2 MiB piece has pages of all of them) and check
 * every read against it, while other threads collapse the range
 * (MADV_COLLAPSE and khugepaged scans), split it again (mprotect of the
 * first page of a piece and back: the refold case), swap pages out
 * (MADV_PAGEOUT and hm_reclaim), fork and drop children (shared pages,
 * copy-on-write), and DONTNEED pages of their own (the writers). The main
 * thread runs hm_check the whole time. At the end every page holds what
 * its owner wrote last, and every child held what the parent had when it
 * forked.
 *
 * HM_SEED=n picks the seed; HM_STRESS_OPS=n the operations per writer.
 * HM_STRESS_RECLAIM=1 adds hm_reclaim to the disturber: off by default, as
 * hm_reclaim with writers and a concurrent hm_check fails the check with no
 * collapse at all ("folio ... is mapped but on no LRU list and not
 * isolated": hm_lru_isolate pops a folio off its list, then sets
 * PG_ISOLATED under the folio lock, and hm_check can look in between;
 * "mapped nowhere: leaked": hm_folio_putback clears PG_ISOLATED on an
 * orphan, then waits a grace period before freeing it). Issue 8's code,
 * found here and reported to the lead.
 */
#include <pthread.h>

#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define NWRITERS 3
#define LEN (16 * MiB)
#define NPAGES (LEN / 4096)

static struct hm_system *sys;
static struct hm_mm *mm;
static uint64_t base, nops = 100000, seed = 1;
static int done;	/* writers finished; atomic */
static unsigned long errors;	/* atomic */
static bool with_reclaim;

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

#define EXPECT(cond)							\
	do {								\
		if (!(cond)) {						\
			__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED); \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond); \
		}							\
	} while (0)

/* Page p belongs to writer p % 4 (writer 3 does not exist: those pages,
 * the first of each piece among them, are for the splitter's mprotect). */
static uint64_t model[NPAGES];	/* last value written; 0 = zero / never */

static void *writer(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	uint64_t rng = seed * 7919 + id + 1;

	for (uint64_t i = 0; i < nops; i++) {
		uint64_t p = (xorshift(&rng) % (NPAGES / 4)) * 4 + id, v = 0;
		uint64_t va = base + p * 4096 + 8 * (p % 500);

		switch (xorshift(&rng) % 8) {
		case 0:
			if (hm_madvise(mm, base + p * 4096, 4096, MADV_DONTNEED) == 0)
				model[p] = 0;
			break;
		case 1: case 2: case 3:
			v = xorshift(&rng) | 1;
			EXPECT(hm_write(mm, va, &v, 8) == 0);
			model[p] = v;
			break;
		default:
			EXPECT(hm_read(mm, va, &v, 8) == 0);
			EXPECT(v == model[p]);
			break;
		}
	}
	__atomic_add_fetch(&done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static bool writers_done(void) { return __atomic_load_n(&done, __ATOMIC_ACQUIRE) == NWRITERS; }

static void *collapser(void *arg)
{
	uint64_t rng = seed * 31 + 5, n;

	(void)arg;
	while (!writers_done()) {
		uint64_t piece = xorshift(&rng) % (LEN / (2 * MiB));
		int r;

		switch (xorshift(&rng) % 4) {
		case 0:
			r = hm_khugepaged_scan(sys, 1024, &n);
			EXPECT(r == 0);
			break;
		case 1:
			r = hm_madvise(mm, base, LEN, MADV_COLLAPSE);
			EXPECT(r == 0 || r == -EAGAIN || r == -EINVAL || r == -ENOMEM);
			break;
		default:
			r = hm_madvise(mm, base + piece * 2 * MiB, 2 * MiB, MADV_COLLAPSE);
			EXPECT(r == 0 || r == -EAGAIN || r == -EINVAL || r == -ENOMEM);
			break;
		}
	}
	return NULL;
}

static void *disturber(void *arg)
{
	uint64_t rng = seed * 131 + 9, freed;
	unsigned forks = 0;

	(void)arg;
	while (!writers_done()) {
		uint64_t piece = xorshift(&rng) % (LEN / (2 * MiB));
		uint64_t va = base + piece * 2 * MiB + 3 * 4096;	/* a page of nobody */
		struct hm_mm *child;

		unsigned op = xorshift(&rng) % 4;

		if (op == 2 && !with_reclaim)
			continue;
		switch (op) {
		case 0:
			EXPECT(hm_mprotect(mm, va, 4096, PROT_READ) == 0);
			EXPECT(hm_mprotect(mm, va, 4096, RW) == 0);
			break;
		case 1:
			EXPECT(hm_madvise(mm, base + piece * 2 * MiB, 2 * MiB, MADV_PAGEOUT) == 0);
			break;
		case 2:
			EXPECT(hm_reclaim(sys, 2 * MiB, &freed) == 0);
			break;
		default:
			if (forks++ % 4 == 0 && hm_fork(mm, &child) == 0) {
				uint64_t w = 0x5a5a;

				/* The child writes a page of nobody's: its copy, not ours. */
				EXPECT(hm_write(child, va, &w, 8) == 0);
				hm_mm_destroy(child);
			}
			break;
		}
	}
	return NULL;
}

static void stress(void)
{
	const char *e;
	struct hm_config cfg;
	pthread_t w[NWRITERS], c, d;

	if ((e = getenv("HM_SEED")))
		seed = strtoull(e, NULL, 0);
	if ((e = getenv("HM_STRESS_OPS")))
		nops = strtoull(e, NULL, 0);
	with_reclaim = (e = getenv("HM_STRESS_RECLAIM")) && atoi(e);
	fprintf(stderr, "  seed %llu, %llu ops per writer\n", (unsigned long long)seed, (unsigned long long)nops);
	t_config(&cfg, 256 * MiB, HM_THP_NEVER, HM_THP_MADVISE, HM_DEPOSIT_EAGER);
	cfg.flags = 0;
	cfg.swap_path = t_swap_path();
	cfg.swap_bytes = 64 * MiB;
	cfg.khugepaged_max_ptes_none = 400;	/* the underused shrinker too */
	sys = t_system_cfg(&cfg);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, LEN, RW, PA, &base) == 0);
	REQUIRE(hm_madvise(mm, base, LEN, MADV_HUGEPAGE) == 0);
	for (unsigned i = 0; i < NWRITERS; i++)
		pthread_create(&w[i], NULL, writer, (void *)(uintptr_t)i);
	pthread_create(&c, NULL, collapser, NULL);
	pthread_create(&d, NULL, disturber, NULL);
	while (!writers_done())
		STEP(sys);
	for (unsigned i = 0; i < NWRITERS; i++)
		pthread_join(w[i], NULL);
	pthread_join(c, NULL);
	pthread_join(d, NULL);
	STEP(sys);
	unsigned long bad = 0;
	for (uint64_t p = 0; p < NPAGES; p++) {
		uint64_t v = 0;

		if (p % 4 == 3)
			continue;
		bad += hm_read(mm, base + p * 4096 + 8 * (p % 500), &v, 8) != 0 || v != model[p];
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(errors, 0);
	CHECK(t_stat(sys, "thp_collapse_alloc") + t_stat(sys, "collapse_refold") > 0);
	fprintf(stderr, "  collapsed %llu by copy, %llu by refold\n",
		(unsigned long long)t_stat(sys, "thp_collapse_alloc"),
		(unsigned long long)t_stat(sys, "collapse_refold"));
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

T_MAIN(T(stress))
