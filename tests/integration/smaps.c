/* SPDX-License-Identifier: MIT */
/*
 * hm_vma_next and hm_smaps: a known address space (a 1 GiB page, a 2 MiB
 * page next to one in swap, 4 KiB pages with one in swap, forked, one page
 * copied by the child) gives exact numbers, agrees with hm_query page by
 * page, and its ranges add up.
 */
#include <pthread.h>

#include "harness.h"

/* Every step ends in STEP (hm_check); HM_CHECK after every single call
 * would check the 1 GiB page's descriptors dozens of times more (minutes
 * under TSan). */
#define NO_CHECK_FLAG() (t_flags = 0)

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

struct scen {
	struct hm_system *sys;
	struct hm_mm *p, *c;
	uint64_t a, b, s;	/* 1 GiB, 4 MiB, 16 KiB */
};

static void build(struct scen *x, unsigned levels, int deposit)
{
	struct hm_config cfg;

	NO_CHECK_FLAG();
	t_config(&cfg, 3 * GiB, HM_THP_MADVISE, HM_THP_ALWAYS, deposit);
	cfg.levels = levels;
	cfg.swap_path = t_swap_path();
	cfg.swap_bytes = 64 * MiB;
	x->sys = t_system_cfg(&cfg);
	REQUIRE(hm_mm_create(x->sys, &x->p) == 0);
	REQUIRE(hm_mmap(x->p, 0, GiB, RW, PA, &x->a) == 0);
	REQUIRE(hm_madvise(x->p, x->a, GiB, MADV_HUGEPAGE) == 0);
	t_poke(x->p, x->a, 1);
	STEP(x->sys);
	REQUIRE(hm_mmap(x->p, 0, 4 * MiB, RW, PA, &x->b) == 0);
	t_poke(x->p, x->b, 2);
	t_poke(x->p, x->b + 2 * MiB, 3);
	CHECK_EQ(hm_madvise(x->p, x->b + 2 * MiB, 2 * MiB, MADV_PAGEOUT), 0);
	STEP(x->sys);
	REQUIRE(hm_mmap(x->p, 0, 16 * KiB, RW, PA, &x->s) == 0);
	CHECK_EQ(hm_madvise(x->p, x->s, 16 * KiB, MADV_NOHUGEPAGE), 0);
	for (int i = 0; i < 4; i++)
		t_poke(x->p, x->s + i * 4096, 4 + i);
	CHECK_EQ(hm_madvise(x->p, x->s + 4096, 4096, MADV_PAGEOUT), 0);
	STEP(x->sys);
	REQUIRE(hm_fork(x->p, &x->c) == 0);
	STEP(x->sys);
	t_poke(x->c, x->a + 3 * 4096, 9);	/* COW: the child's 1 GiB page split */
	STEP(x->sys);
}

static void teardown(struct scen *x)
{
	hm_mm_destroy(x->c);
	hm_mm_destroy(x->p);
	STEP(x->sys);
	hm_system_destroy(x->sys);
}

static struct hm_smaps smaps(struct hm_mm *mm, uint64_t start, uint64_t end)
{
	struct hm_smaps s;

	CHECK_EQ(hm_smaps(mm, start, end, &s), 0);
	return s;
}

/* What hm_query says about [start, end), summed as hm_smaps sums. */
static void query_sums(struct hm_mm *mm, uint64_t start, uint64_t end, struct hm_smaps *q)
{
	struct hm_mapping m;

	memset(q, 0, sizeof(*q));
	for (uint64_t va = start; va < end;) {
		CHECK_EQ(hm_query(mm, va, &m), 0);
		if (!m.size) {
			va += 4096;
			continue;
		}
		uint64_t lo = m.va > start ? m.va : start, hi = m.va + m.size < end ? m.va + m.size : end;
		uint64_t bytes = hi - lo;

		if (m.swapped) {
			q->swap += bytes;
			q->swap_pmd += m.size > 4096 ? bytes : 0;
		} else if (!m.mapcount) {
			q->zero += bytes;
		} else {
			q->rss += bytes;
			*(m.exclusive ? &q->rss_private : &q->rss_shared) += bytes;
			q->anon_huge_pmd += m.size == 2 * MiB ? bytes : 0;
			q->anon_huge_pud += m.size == GiB ? bytes : 0;
			q->nr_leaf[m.size == GiB ? 2 : m.size == 2 * MiB ? 1 : 0] += m.va >= start;
		}
		va = m.va + m.size;
	}
}

/* Every VMA of @mm: hm_smaps agrees with hm_query, and the VMAs add up to
 * the rollup. Returns the rollup. */
static struct hm_smaps agree(struct hm_mm *mm)
{
	struct hm_smaps all = smaps(mm, 0, UINT64_MAX), sum, s, q;
	struct hm_vma_info v;
	int r;

	memset(&sum, 0, sizeof(sum));
	for (uint64_t va = 0; !(r = hm_vma_next(mm, va, &v)); va = v.end) {
		s = smaps(mm, v.start, v.end);
		query_sums(mm, v.start, v.end, &q);
		CHECK_EQ(s.size, v.end - v.start);
		CHECK_EQ(s.rss, q.rss);
		CHECK_EQ(s.rss_shared, q.rss_shared);
		CHECK_EQ(s.rss_private, q.rss_private);
		CHECK_EQ(s.rss, s.rss_shared + s.rss_private);
		CHECK_EQ(s.anon_huge_pmd, q.anon_huge_pmd);
		CHECK_EQ(s.anon_huge_pud, q.anon_huge_pud);
		CHECK_EQ(s.swap, q.swap);
		CHECK_EQ(s.swap_pmd, q.swap_pmd);
		CHECK_EQ(s.zero, q.zero);
		for (int l = 0; l < 3; l++)
			CHECK_EQ(s.nr_leaf[l], q.nr_leaf[l]);
		CHECK(s.referenced <= s.rss && s.dirty <= s.rss && s.pss <= s.rss);
		sum.size += s.size;
		sum.rss += s.rss;
		sum.swap += s.swap;
		sum.pgtable += s.pgtable;
		sum.pgtable_deposited += s.pgtable_deposited;
		sum.referenced += s.referenced;
	}
	CHECK_EQ(r, -ENOENT);
	CHECK_EQ(sum.size, all.size);
	CHECK_EQ(sum.rss, all.rss);
	CHECK_EQ(sum.swap, all.swap);
	CHECK_EQ(sum.pgtable, all.pgtable);
	CHECK_EQ(sum.pgtable_deposited, all.pgtable_deposited);
	CHECK_EQ(sum.referenced, all.referenced);
	return all;
}

static void known(unsigned levels, int deposit)
{
	struct scen x;
	bool eager = deposit == HM_DEPOSIT_EAGER;
	uint64_t dep = eager ? 4096 : 0;

	build(&x, levels, deposit);
	if (t_failed)
		return;
	struct hm_system *sys = x.sys;
	struct hm_smaps s;

	/* The parent: its 1 GiB page shared with the child (which maps all
	 * of it but the page it copied). */
	s = smaps(x.p, x.a, x.a + GiB);
	CHECK_EQ(s.size, GiB);
	CHECK_EQ(s.rss, GiB);
	CHECK_EQ(s.anon_huge_pud, GiB);
	CHECK_EQ(s.anon_huge_pmd, 0);
	CHECK_EQ(s.rss_shared, GiB);
	CHECK_EQ(s.pss, GiB / 2);
	CHECK_EQ(s.nr_leaf[2], 1);
	CHECK_EQ(s.pgtable_deposited, 513 * dep);
	CHECK_EQ(s.swap, 0);
	/* 2 MiB mapped, 2 MiB in swap written whole: two deposits. (In
	 * lazy mode MADV_PAGEOUT leaves a 2 MiB page it would have to split
	 * with a new table.) */
	uint64_t out = eager ? 2 * MiB : 0;

	s = smaps(x.p, x.b, x.b + 4 * MiB);
	CHECK_EQ(s.size, 4 * MiB);
	CHECK_EQ(s.rss, 4 * MiB - out);
	CHECK_EQ(s.anon_huge_pmd, 4 * MiB - out);
	CHECK_EQ(s.swap, out);
	CHECK_EQ(s.swap_pmd, out);
	CHECK_EQ(s.rss_shared, 4 * MiB - out);
	CHECK_EQ(s.pss, (4 * MiB - out) / 2);
	CHECK_EQ(s.pgtable_deposited, 2 * dep);
	s = smaps(x.p, x.s, x.s + 16 * KiB);
	CHECK_EQ(s.size, 16 * KiB);
	CHECK_EQ(s.rss, 12 * KiB);
	CHECK_EQ(s.swap, 4 * KiB);
	CHECK_EQ(s.swap_pmd, 0);
	CHECK_EQ(s.nr_leaf[0], 3);
	CHECK_EQ(s.rss_shared, 12 * KiB);
	CHECK_EQ(s.dirty, 12 * KiB);
	CHECK_EQ(s.pgtable_deposited, 0);

	/* The child: 511 2 MiB leaves and 512 PTEs, one page its own. */
	s = smaps(x.c, x.a, x.a + GiB);
	CHECK_EQ(s.rss, GiB);
	CHECK_EQ(s.anon_huge_pud, 0);
	CHECK_EQ(s.anon_huge_pmd, GiB - 2 * MiB);
	CHECK_EQ(s.nr_leaf[1], 511);
	CHECK_EQ(s.nr_leaf[0], 512);
	CHECK_EQ(s.rss_private, 4096);
	CHECK_EQ(s.rss_shared, GiB - 4096);
	CHECK_EQ(s.pgtable_deposited, 511 * dep);
	CHECK_EQ(s.referenced, 4096);	/* fork's copies are old */
	STEP(sys);

	struct hm_smaps rp = agree(x.p), rc = agree(x.c);

	CHECK_EQ(rp.size, GiB + 4 * MiB + 16 * KiB);
	CHECK_EQ(rp.rss, GiB + 4 * MiB - out + 12 * KiB);
	CHECK_EQ(rp.swap, out + 4 * KiB);
	CHECK_EQ(rc.swap, rp.swap);
	/* Every table of both mms, the top ones and deposits included. */
	CHECK_EQ(rp.pgtable + rc.pgtable, t_stat(sys, "pgtable_bytes"));
	CHECK_EQ(rp.pgtable_deposited + rc.pgtable_deposited, t_stat(sys, "pgtable_deposited") * 4096);
	STEP(sys);

	/* Ranges cut anywhere (inside leaves too) add up to the whole. */
	uint64_t cut[] = { 0, x.a + 5, x.a + 3 * MiB + 7, x.b + 2 * MiB + 4096, x.s + 8192, UINT64_MAX };
	struct hm_smaps sum;

	memset(&sum, 0, sizeof(sum));
	for (size_t i = 0; i + 1 < sizeof(cut) / sizeof(cut[0]); i++) {
		s = smaps(x.c, cut[i] < cut[i + 1] ? cut[i] : cut[i + 1], cut[i] < cut[i + 1] ? cut[i + 1] : cut[i]);
		sum.size += s.size;
		sum.rss += s.rss;
		sum.swap += s.swap;
		sum.pgtable += s.pgtable;
		sum.pgtable_deposited += s.pgtable_deposited;
		sum.nr_leaf[0] += s.nr_leaf[0];
		sum.nr_leaf[1] += s.nr_leaf[1];
	}
	CHECK_EQ(sum.size, rc.size);
	CHECK_EQ(sum.rss, rc.rss);
	CHECK_EQ(sum.swap, rc.swap);
	CHECK_EQ(sum.pgtable, rc.pgtable);
	CHECK_EQ(sum.pgtable_deposited, rc.pgtable_deposited);
	CHECK_EQ(sum.nr_leaf[0], rc.nr_leaf[0]);
	CHECK_EQ(sum.nr_leaf[1], rc.nr_leaf[1]);
	teardown(&x);
}

static void known_l4(void) { known(4, HM_DEPOSIT_EAGER); }
static void known_l5(void) { known(5, HM_DEPOSIT_EAGER); }
static void known_lazy(void) { known(4, HM_DEPOSIT_LAZY); }

static void vmas(void)
{
	struct scen x;
	struct hm_vma_info v;

	build(&x, 4, HM_DEPOSIT_EAGER);
	if (t_failed)
		return;
	CHECK_EQ(hm_mprotect(x.p, x.s + 4096, 4096, PROT_READ), 0);
	CHECK_EQ(hm_madvise(x.p, x.b, 2 * MiB, MADV_DONTFORK), 0);
	STEP(x.sys);
	REQUIRE(hm_vma_next(x.p, x.s, &v) == 0);
	CHECK_EQ(v.start, x.s);
	CHECK_EQ(v.end, x.s + 4096);
	CHECK_EQ(v.prot, RW);
	CHECK_EQ(v.flags, HM_VMA_NOHUGEPAGE);
	CHECK(!v.thp_pmd && !v.thp_pud);
	REQUIRE(hm_vma_next(x.p, v.end, &v) == 0);
	CHECK_EQ(v.start, x.s + 4096);
	CHECK_EQ(v.prot, PROT_READ);
	REQUIRE(hm_vma_next(x.p, v.end, &v) == 0);
	CHECK_EQ(v.end, x.s + 16 * KiB);
	/* Any address inside a VMA finds it. */
	REQUIRE(hm_vma_next(x.p, x.b + 5, &v) == 0);
	CHECK_EQ(v.start, x.b);
	CHECK_EQ(v.end, x.b + 2 * MiB);
	CHECK_EQ(v.flags, HM_VMA_DONTFORK);
	CHECK(v.thp_pmd && !v.thp_pud);
	REQUIRE(hm_vma_next(x.p, x.a, &v) == 0);
	CHECK_EQ(v.start, x.a);
	CHECK_EQ(v.flags, HM_VMA_HUGEPAGE);
	CHECK(v.thp_pmd && v.thp_pud);
	uint64_t last = 0;

	for (uint64_t va = 0; hm_vma_next(x.p, va, &v) == 0; va = v.end)
		last = v.end;
	CHECK_EQ(hm_vma_next(x.p, last, &v), -ENOENT);
	CHECK_EQ(v.end, last);	/* untouched */
	CHECK_EQ(hm_vma_next(x.p, UINT64_MAX, &v), -ENOENT);
	CHECK_EQ(hm_vma_next(NULL, 0, &v), -EINVAL);
	CHECK_EQ(hm_vma_next(x.p, 0, NULL), -EINVAL);
	struct hm_smaps s;

	CHECK_EQ(hm_smaps(NULL, 0, 1, &s), -EINVAL);
	CHECK_EQ(hm_smaps(x.p, 0, 1, NULL), -EINVAL);
	CHECK_EQ(hm_smaps(x.p, 2, 1, &s), -EINVAL);
	CHECK_EQ(hm_smaps(x.p, 5, 5, &s), 0);
	CHECK_EQ(s.size + s.rss + s.pgtable, 0);
	STEP(x.sys);
	teardown(&x);
}

/* An empty mm: its top table, counted by every range that starts at 0. */
static void empty(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	struct hm_vma_info v;
	struct hm_smaps s;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	CHECK_EQ(hm_vma_next(mm, 0, &v), -ENOENT);
	CHECK_EQ(hm_smaps(mm, 0, UINT64_MAX, &s), 0);
	CHECK_EQ(s.pgtable, 4096);
	CHECK_EQ(s.pgtable, t_stat(sys, "pgtable_bytes"));
	CHECK_EQ(s.size + s.rss + s.swap, 0);
	CHECK_EQ(hm_smaps(mm, 4096, UINT64_MAX, &s), 0);
	CHECK_EQ(s.pgtable, 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* hm_smaps alongside faults, copy-on-write and splits in the same mm:
 * every count stays within what is mapped, and nothing breaks. */
struct race {
	struct hm_mm *mm;
	uint64_t a, len;
	int stop, bad;
	unsigned long walks;
};

static void *smaps_loop(void *arg)
{
	struct race *r = arg;
	struct hm_smaps s;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		if (hm_smaps(r->mm, 0, UINT64_MAX, &s) || s.rss > r->len || s.size != r->len ||
		    s.rss != s.rss_shared + s.rss_private)
			r->bad++;
		r->walks++;
	}
	return NULL;
}

static void concurrent(void)
{
	NO_CHECK_FLAG();
	struct hm_system *sys = t_system(256 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct race r = { 0 };
	struct hm_mm *child;
	pthread_t t;

	REQUIRE(hm_mm_create(sys, &r.mm) == 0);
	r.len = 16 * MiB;
	REQUIRE(hm_mmap(r.mm, 0, r.len, RW, PA, &r.a) == 0);
	REQUIRE(pthread_create(&t, NULL, smaps_loop, &r) == 0);
	for (int round = 0; round < 4; round++) {
		CHECK_EQ(t_fill(r.mm, r.a, r.len, round), 0);
		REQUIRE(hm_fork(r.mm, &child) == 0);
		CHECK_EQ(t_fill(r.mm, r.a, r.len / 2, round + 10), 0);	/* COW splits */
		hm_mm_destroy(child);
		CHECK_EQ(hm_madvise(r.mm, r.a + round * MiB, 3 * MiB, MADV_DONTNEED), 0);
		STEP(sys);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	CHECK_EQ(r.bad, 0);
	CHECK(r.walks > 0);
	STEP(sys);
	hm_mm_destroy(r.mm);
	hm_system_destroy(sys);
}

T_MAIN(T(known_l4), T(known_l5), T(known_lazy), T(vmas), T(empty), T(concurrent))
