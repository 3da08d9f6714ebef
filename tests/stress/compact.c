/* SPDX-License-Identifier: MIT */
/*
 * Compaction under concurrency: memory fragmented by 4 KiB pages of one
 * address space, whose pages two threads keep writing and checking
 * (cookies with generations), while another thread faults 2 MiB pages in a
 * second address space (which it fragments further first, so that they
 * compact: moving the first one's pages under their writers) and unmaps
 * them again, and a third faults and
 * unmaps 4 KiB pages in a third address space (frames freed into and taken
 * around the compaction window). hm_check at the end.
 *
 * A write by the 2 MiB thread may fail with -ENOMEM, as the API allows:
 * the churn's frees wait for a grace period, and under load they can hold
 * all the free memory for a moment (a fault waits for them once, and then
 * another thread may have taken them). Such a write is counted apart and
 * its value not expected; a value that differs, or a read that fails,
 * after a write that succeeded is a lost write, reported with what was
 * read. The writers' pages stay mapped, so their accesses never need
 * memory: any error there is one.
 *
 * HM_STRESS_OPS=n sets the rounds of the 2 MiB thread.
 */
#include <pthread.h>

#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static struct hm_system *sys;
static struct hm_mm *frag_mm, *huge_mm, *churn_mm;
static uint64_t frag_a, frag_pages;
static int done;	/* atomic */

struct writer {
	pthread_t th;
	unsigned id;		/* writes pages with page % 2 == id */
	uint32_t *gen;
	unsigned long errors, checks;
};

/* What the 2 MiB thread found. */
struct huge {
	unsigned long rounds;
	unsigned long got;	/* 2 MiB faults that got a 2 MiB page */
	unsigned long checked;	/* values read back after a write succeeded */
	unsigned long nomem;	/* writes that failed with -ENOMEM */
	unsigned long bad;	/* lost writes, failed reads, other errors */
};

/* A check that failed: say which, where and what was seen (the first few). */
static void report(unsigned long *bad, const char *what, unsigned long r, uint64_t i, int err,
		   uint64_t v, uint64_t want)
{
	if (++*bad <= 8)
		fprintf(stderr, "    %s: round %lu, page %llu: error %d, read %#llx, want %#llx\n", what, r,
			(unsigned long long)i, err, (unsigned long long)v, (unsigned long long)want);
}

static uint64_t cookie(uint64_t page, uint32_t gen)
{
	return page << 32 | gen;
}

static void *writer_main(void *p)
{
	struct writer *w = p;
	uint64_t x = w->id + 1;

	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t page = ((x >> 20) % (frag_pages / 4)) * 4 + 1 + 2 * w->id;	/* a kept page */
		uint64_t va = frag_a + page * 4096, v = 0;

		if (page >= frag_pages)
			continue;
		int r = hm_read(frag_mm, va, &v, 8);

		if (r || v != cookie(page, w->gen[page]))
			report(&w->errors, w->id ? "writer 1 read" : "writer 0 read", 0, page, r, v,
			       cookie(page, w->gen[page]));
		w->checks++;
		v = cookie(page, ++w->gen[page]);
		if ((r = hm_write(frag_mm, va, &v, 8)))
			report(&w->errors, w->id ? "writer 1 write" : "writer 0 write", 0, page, r, 0, v);
	}
	return NULL;
}

/* Each round: fragment 8 MiB more with 4 KiB pages of its own (every
 * other one dropped), then fault 2 MiB pages that stay mapped, so that
 * they have to compact, and unmap it all for the next round. */
static void *huge_main(void *p)
{
	struct huge *res = p;
	enum { fpages = 2048 };
	bool written[fpages], hwritten[4];

	for (unsigned long r = 0; r < res->rounds; r++) {
		uint64_t f, a, v;
		int e;

		if (hm_mmap(huge_mm, 0, fpages * 4096, RW, PA, &f))
			break;
		hm_madvise(huge_mm, f, fpages * 4096, MADV_NOHUGEPAGE);
		for (uint64_t i = 0; i < fpages; i++) {
			v = i;
			e = hm_write(huge_mm, f + i * 4096, &v, 8);
			written[i] = e == 0;
			if (e == -ENOMEM)
				res->nomem++;
			else if (e)
				report(&res->bad, "4 KiB write", r, i, e, 0, v);
		}
		for (uint64_t i = 0; i < fpages; i += 2)
			hm_madvise(huge_mm, f + i * 4096, 4096, MADV_DONTNEED);
		if (hm_mmap(huge_mm, 0, 10 * MiB, RW, PA, &a))
			break;
		uint64_t h = (a + 2 * MiB - 1) & ~(2 * MiB - 1);
		hm_madvise(huge_mm, h, 8 * MiB, MADV_HUGEPAGE);
		for (uint64_t k = 0; k < 4; k++) {
			struct hm_mapping m;

			v = r << 8 | k;
			e = hm_write(huge_mm, h + k * 2 * MiB, &v, 8);
			hwritten[k] = e == 0;
			if (e == -ENOMEM)
				res->nomem++;
			else if (e)
				report(&res->bad, "2 MiB write", r, k, e, 0, v);
			if (e == 0 && hm_query(huge_mm, h + k * 2 * MiB, &m) == 0 && m.size == 2 * MiB)
				res->got++;
		}
		for (uint64_t k = 0; k < 4; k++) {
			if (!hwritten[k])
				continue;
			v = 0;
			e = hm_read(huge_mm, h + k * 2 * MiB, &v, 8);
			res->checked++;
			if (e || v != (r << 8 | k))
				report(&res->bad, "2 MiB page lost a write", r, k, e, v, r << 8 | k);
		}
		for (uint64_t i = 1; i < fpages; i += 2) {
			if (!written[i])
				continue;
			v = 0;
			e = hm_read(huge_mm, f + i * 4096, &v, 8);
			res->checked++;
			if (e || v != i)
				report(&res->bad, "4 KiB page lost a write", r, i, e, v, i);
		}
		hm_munmap(huge_mm, a, 10 * MiB);
		hm_munmap(huge_mm, f, fpages * 4096);
		hm_drain(sys);
	}
	return NULL;
}

static void *churn_main(void *p)
{
	(void)p;
	uint64_t a;

	if (hm_mmap(churn_mm, 0, 64 * 4096, RW, PA, &a))
		return NULL;
	hm_madvise(churn_mm, a, 64 * 4096, MADV_NOHUGEPAGE);
	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		for (uint64_t i = 0; i < 64; i++)
			hm_write(churn_mm, a + i * 4096, &i, 8);
		hm_madvise(churn_mm, a, 64 * 4096, MADV_DONTNEED);
	}
	return NULL;
}

static void compact_under_writers(void)
{
	const char *n = getenv("HM_STRESS_OPS");
	unsigned long rounds = n ? strtoul(n, NULL, 0) : 12;
	struct writer w[2] = { { .id = 0 }, { .id = 1 } };
	pthread_t th, tc;

	t_flags = 0;
	sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_MADVISE, HM_DEPOSIT_EAGER);
	REQUIRE(hm_mm_create(sys, &frag_mm) == 0 && hm_mm_create(sys, &huge_mm) == 0 &&
		hm_mm_create(sys, &churn_mm) == 0);
	frag_pages = 16384;
	REQUIRE(hm_mmap(frag_mm, 0, frag_pages * 4096, RW, PA, &frag_a) == 0);
	CHECK_EQ(hm_madvise(frag_mm, frag_a, frag_pages * 4096, MADV_NOHUGEPAGE), 0);
	uint64_t i;
	for (i = 0; i < frag_pages; i++) {
		if (i % 64 == 0 && t_stat(sys, "nr_free_pages") < 1024)
			break;
		t_poke(frag_mm, frag_a + i * 4096, cookie(i, 0));
	}
	frag_pages = i;
	for (i = 0; i < frag_pages; i += 2)
		CHECK_EQ(hm_madvise(frag_mm, frag_a + i * 4096, 4096, MADV_DONTNEED), 0);
	hm_drain(sys);
	STEP(sys);
	for (int k = 0; k < 2; k++) {
		w[k].gen = calloc(frag_pages, sizeof(uint32_t));
		REQUIRE(w[k].gen);
		REQUIRE(pthread_create(&w[k].th, NULL, writer_main, &w[k]) == 0);
	}
	REQUIRE(pthread_create(&tc, NULL, churn_main, NULL) == 0);
	struct huge res = { .rounds = rounds };
	REQUIRE(pthread_create(&th, NULL, huge_main, &res) == 0);
	pthread_join(th, NULL);
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	pthread_join(tc, NULL);
	for (int k = 0; k < 2; k++)
		pthread_join(w[k].th, NULL);
	fprintf(stderr, "    %lu of %lu 2 MiB faults got one; %llu compactions, %llu succeeded; %lu checks, "
		"%lu after the 2 MiB thread's writes (%lu of those -ENOMEM)\n",
		res.got, 4 * rounds, (unsigned long long)t_stat(sys, "compact_stall"),
		(unsigned long long)t_stat(sys, "compact_success"), w[0].checks + w[1].checks,
		res.checked, res.nomem);
	CHECK_EQ(res.bad, 0);
	CHECK(res.checked > 0);
	CHECK(t_stat(sys, "compact_success") > 0);
	CHECK_EQ(w[0].errors + w[1].errors, 0);
	STEP(sys);
	unsigned long bad = 0;
	for (i = 1; i < frag_pages; i += 2) {
		uint64_t v = 0;

		bad += hm_read(frag_mm, frag_a + i * 4096, &v, 8) || v != cookie(i, w[i % 4 == 1 ? 0 : 1].gen[i]);
	}
	CHECK_EQ(bad, 0);
	hm_mm_destroy(churn_mm);
	hm_mm_destroy(huge_mm);
	hm_mm_destroy(frag_mm);
	hm_system_destroy(sys);
	free(w[0].gen);
	free(w[1].gen);
}

T_MAIN(T(compact_under_writers))
