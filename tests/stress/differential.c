/* SPDX-License-Identifier: MIT */
/*
 * Differential test: a seeded random sequence of mmap, munmap, mprotect,
 * madvise, fork, read, write and destroy over several address spaces,
 * each against a simple model (a byte array and a state per page of a
 * 16 MiB window). After every step: the call's result is the model's,
 * hm_check passes, and every few steps each address space is read back in
 * full. HM_SEED=n (default fixed), HM_DIFF_STEPS=n.
 */
#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define WBASE 0x40000000ull	/* 1 GiB aligned, so 2 MiB pages line up */
#define WPAGES 4096u		/* 16 MiB */
#define MAXMM 4

/* page state: 0 = unmapped, else 1 + prot, | DONTFORK */
#define ST_DONTFORK 0x10

struct model {
	struct hm_mm *mm;
	uint8_t *data;
	uint8_t st[WPAGES];
};

static struct hm_system *sys;
static struct model ms[MAXMM];
static int nmm;
static uint64_t rng, forks;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static bool mapped(const struct model *m, uint64_t p) { return m->st[p] != 0; }
static int prot_of(const struct model *m, uint64_t p) { return (m->st[p] & 0xf) - 1; }

static bool all(const struct model *m, uint64_t p, uint64_t n, int need)
{
	for (uint64_t i = p; i < p + n; i++) {
		if (!mapped(m, i))
			return false;
		if (need == PROT_WRITE && !(prot_of(m, i) & PROT_WRITE))
			return false;
		if (need == PROT_READ && prot_of(m, i) == PROT_NONE)
			return false;
	}
	return true;
}

static void full_compare(struct model *m)
{
	uint8_t buf[4096];
	unsigned long bad = 0;

	for (uint64_t p = 0; p < WPAGES; p++) {
		int r = hm_read(m->mm, WBASE + p * 4096, buf, 4096);

		if (!mapped(m, p) || prot_of(m, p) == PROT_NONE)
			bad += r != -EFAULT;
		else
			bad += r != 0 || memcmp(buf, m->data + p * 4096, 4096) != 0;
	}
	CHECK_EQ(bad, 0);
}

static void step(void)
{
	/* One rnd() per statement: the order of calls within an expression is
	 * unspecified, and a seed must mean the same run in every build. */
	struct model *m = &ms[rnd() % nmm];
	uint64_t p = rnd() % WPAGES;
	uint64_t big = rnd() % 4 == 0;
	uint64_t n = 1 + rnd() % (big ? 1024 : 16);
	static const int prots[] = { RW, RW, RW, PROT_READ, PROT_NONE };
	int prot = prots[rnd() % 5], r;

	if (p + n > WPAGES)
		n = WPAGES - p;
	uint64_t va = WBASE + p * 4096, len = n * 4096;
	switch (rnd() % 20) {
	case 0: case 1: {	/* mmap over the range */
		uint64_t a;
		CHECK_EQ(hm_mmap(m->mm, va, len, prot, PA | MAP_FIXED | (rnd() % 4 ? 0 : MAP_POPULATE), &a), 0);
		memset(m->data + p * 4096, 0, len);
		memset(m->st + p, 1 + prot, n);
		break;
	}
	case 2:
		CHECK_EQ(hm_munmap(m->mm, va, len), 0);
		memset(m->st + p, 0, n);
		break;
	case 3: case 4:
		r = hm_mprotect(m->mm, va, len, prot);
		CHECK_EQ(r, all(m, p, n, 0) ? 0 : -ENOMEM);
		for (uint64_t i = p; !r && i < p + n; i++)
			m->st[i] = (uint8_t)((m->st[i] & ST_DONTFORK) | (1 + prot));
		break;
	case 5:
		r = hm_madvise(m->mm, va, len, MADV_DONTNEED);
		CHECK_EQ(r, all(m, p, n, 0) ? 0 : -ENOMEM);
		if (!r)
			memset(m->data + p * 4096, 0, len);
		break;
	case 6: {
		static const int adv[] = { MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_DONTFORK, MADV_DOFORK };
		int a = adv[rnd() % 4];
		r = hm_madvise(m->mm, va, len, a);
		CHECK_EQ(r, all(m, p, n, 0) ? 0 : -ENOMEM);
		for (uint64_t i = p; !r && i < p + n && (a == MADV_DONTFORK || a == MADV_DOFORK); i++)
			m->st[i] = (uint8_t)(a == MADV_DONTFORK ? m->st[i] | ST_DONTFORK : m->st[i] & ~ST_DONTFORK);
		break;
	}
	case 7:		/* fork */
		if (nmm < MAXMM) {
			struct model *c = &ms[nmm];
			CHECK_EQ(hm_fork(m->mm, &c->mm), 0);
			memcpy(c->data, m->data, (size_t)WPAGES * 4096);
			for (uint64_t i = 0; i < WPAGES; i++)
				c->st[i] = (m->st[i] & ST_DONTFORK) ? 0 : m->st[i];
			nmm++;
			forks++;
		}
		break;
	case 8:		/* destroy, if more than one is left */
		if (nmm > 1) {
			hm_mm_destroy(m->mm);
			uint8_t *d = m->data;
			*m = ms[nmm - 1];
			ms[nmm - 1].data = d;
			nmm--;
		}
		break;
	case 9: case 10: case 11: case 12: case 13: {	/* write */
		uint64_t off = rnd() % 4096, l = 1 + rnd() % 9000;
		uint8_t buf[9000];
		if (va + off + l > WBASE + (uint64_t)WPAGES * 4096)
			l = WBASE + (uint64_t)WPAGES * 4096 - va - off;
		for (uint64_t i = 0; i < l; i++)
			buf[i] = (uint8_t)rnd();
		uint64_t first = p, last = (va + off + l - 1 - WBASE) / 4096;
		r = hm_write(m->mm, va + off, buf, l);
		CHECK_EQ(r, all(m, first, last - first + 1, PROT_WRITE) ? 0 : -EFAULT);
		if (!r)
			memcpy(m->data + p * 4096 + off, buf, l);
		break;
	}
	default: {	/* read */
		uint64_t off = rnd() % 4096, l = 1 + rnd() % 9000;
		uint8_t buf[9000];
		if (va + off + l > WBASE + (uint64_t)WPAGES * 4096)
			l = WBASE + (uint64_t)WPAGES * 4096 - va - off;
		uint64_t first = p, last = (va + off + l - 1 - WBASE) / 4096;
		r = hm_read(m->mm, va + off, buf, l);
		bool ok = all(m, first, last - first + 1, PROT_READ);
		CHECK_EQ(r, ok ? 0 : -EFAULT);
		if (ok && !r)
			CHECK(memcmp(buf, m->data + p * 4096 + off, l) == 0);
		break;
	}
	}
}

static void differential(void)
{
	const char *s = getenv("HM_SEED"), *n = getenv("HM_DIFF_STEPS");
	uint64_t seed = s ? strtoull(s, NULL, 0) : 424242, steps = n ? strtoull(n, NULL, 0) : 3000;
	struct hm_config cfg;

	fprintf(stderr, "differential: HM_SEED=%llu HM_DIFF_STEPS=%llu\n", (unsigned long long)seed,
		(unsigned long long)steps);
	rng = seed * 0x9e3779b97f4a7c15ull + 1;
	hm_config_default(&cfg);
	cfg.phys_bytes = 512 * MiB;
	REQUIRE(hm_system_create(&cfg, &sys) == 0);
	uint64_t free0 = t_stat(sys, "nr_free_pages");
	for (int i = 0; i < MAXMM; i++) {
		ms[i].data = calloc(WPAGES, 4096);
		REQUIRE(ms[i].data);
	}
	REQUIRE(hm_mm_create(sys, &ms[0].mm) == 0);
	memset(ms[0].st, 0, sizeof(ms[0].st));
	nmm = 1;
	for (uint64_t i = 0; i < steps; i++) {
		unsigned long f = t_failed;

		step();
		STEP(sys);
		if (i % 250 == 249)
			for (int k = 0; k < nmm; k++)
				full_compare(&ms[k]);
		if (t_failed != f) {
			fprintf(stderr, "differential: first failure at step %llu (HM_SEED=%llu)\n",
				(unsigned long long)i, (unsigned long long)seed);
			break;
		}
	}
	for (int k = 0; k < nmm; k++) {
		full_compare(&ms[k]);
		hm_mm_destroy(ms[k].mm);
	}
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_free_pages") + t_zero_frames(sys), free0);
	fprintf(stderr, "differential: forks %llu, cow copies %llu, reuses %llu, splits %llu/%llu\n",
		(unsigned long long)forks, (unsigned long long)t_stat(sys, "cow_copy"),
		(unsigned long long)t_stat(sys, "cow_reuse"), (unsigned long long)t_stat(sys, "thp_split_pmd"),
		(unsigned long long)t_stat(sys, "cow_split_pmd"));
	for (int i = 0; i < MAXMM; i++)
		free(ms[i].data);
	hm_system_destroy(sys);
}

T_MAIN(T(differential))
