/* SPDX-License-Identifier: MIT */
/*
 * Copy-on-write after fork, after the kernel's selftests/mm/cow.c, for 4 KiB
 * pages and for 2 MiB and 1 GiB huge pages: mapped whole; PTE-mapped after
 * mprotect of one subpage; a single PTE left after DONTNEED of the rest;
 * partly shared through MADV_DONTFORK; fork chains of depth 3 with writes
 * at every level; the parent or the child exiting first. Every address
 * space keeps a model of what each page must hold; no address space may
 * ever see another's writes. Public API only; hm_check after every step.
 */
#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

struct geo {
	const char *name;
	uint64_t size;		/* the page size under test */
	int pud, pmd, advice;
};

static const struct geo G4K = { "4K", 4096, HM_THP_NEVER, HM_THP_NEVER, 0 };
static const struct geo G2M = { "2M", 2 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, 0 };
static const struct geo G1G = { "1G", GiB, HM_THP_MADVISE, HM_THP_ALWAYS, MADV_HUGEPAGE };

/* An address space under test and the model of its region. */
struct as {
	struct hm_mm *mm;
	uint64_t *seed;		/* per 4 KiB page: pattern seed, 0 = zeros, ~0 = unmapped */
};

#define UNMAPPED UINT64_MAX

static struct hm_system *sys;
static uint64_t base, len, npages, free_at_start;
/* Pages read as zeros are only checked below this page (and on the stride):
 * reading a zapped page faults in a real page (hugemm has no shared zero
 * page yet), and for 1 GiB tests that would be gigabytes. */
static uint64_t zero_limit = UINT64_MAX;

static void as_init(struct as *s, struct hm_mm *mm)
{
	s->mm = mm;
	s->seed = calloc(npages, sizeof(uint64_t));
	if (!s->seed)
		exit(2);
}

static void as_fork(struct as *parent, struct as *child)
{
	struct hm_mm *mm = NULL;

	CHECK_EQ(hm_fork(parent->mm, &mm), 0);
	STEP(sys);
	as_init(child, mm);
	memcpy(child->seed, parent->seed, npages * sizeof(uint64_t));
}

static void as_exit(struct as *s)
{
	hm_mm_destroy(s->mm);
	STEP(sys);
	free(s->seed);
	s->mm = NULL;
}

static void write_page(struct as *s, uint64_t page, uint64_t seed)
{
	uint64_t v = t_pattern(seed, page), va = base + page * 4096;

	CHECK_EQ(hm_write(s->mm, va, &v, 8), 0);
	CHECK_EQ(hm_write(s->mm, va + 4088, &v, 8), 0);
	s->seed[page] = seed;
}

/* Check every @stride-th page, and every page not holding @common. */
static unsigned long verify(struct as *s, uint64_t stride, uint64_t common)
{
	unsigned long bad = 0;

	for (uint64_t p = 0; p < npages; p++) {
		if (p % stride && s->seed[p] == common)
			continue;
		if (s->seed[p] == 0 && p >= zero_limit && p % (stride * 512))
			continue;
		uint64_t v = 1, w = 1, want = s->seed[p] ? t_pattern(s->seed[p], p) : 0;
		int r1 = hm_read(s->mm, base + p * 4096, &v, 8), r2 = hm_read(s->mm, base + p * 4096 + 4088, &w, 8);

		unsigned long b0 = bad;
		if (s->seed[p] == UNMAPPED)
			bad += r1 != -EFAULT || r2 != -EFAULT;
		else
			bad += r1 || r2 || v != want || w != want;
		if (bad != b0 && bad < 4)
			fprintf(stderr, "  page %llu: r %d/%d got %#llx/%#llx want %#llx (seed %llu)\n",
				(unsigned long long)p, r1, r2, (unsigned long long)v, (unsigned long long)w,
				(unsigned long long)want, (unsigned long long)s->seed[p]);
	}
	if (bad)
		fprintf(stderr, "  mm %p: %lu pages wrong\n", (void *)s->mm, bad);
	return bad;
}

static struct hm_mapping query(struct as *s, uint64_t page)
{
	struct hm_mapping m;

	CHECK_EQ(hm_query(s->mm, base + page * 4096, &m), 0);
	return m;
}

/* Map the region (2 huge pages, or 8 small ones), fill every page. */
static void setup(const struct geo *g, struct as *s)
{
	struct hm_mm *mm;

	t_flags = g->size == GiB ? 0 : HM_CHECK;
	sys = t_system(g->size == GiB ? 3 * GiB : 256 * MiB, g->pud, g->pmd, HM_DEPOSIT_EAGER);
	free_at_start = t_stat(sys, "nr_free_pages");
	len = g->size == 4096 ? 8 * 4096 : 2 * g->size;
	npages = len / 4096;
	if (hm_mm_create(sys, &mm) || hm_mmap(mm, 0, len, RW, PA, &base) ||
	    (g->advice && hm_madvise(mm, base, len, g->advice)))
		exit(2);
	as_init(s, mm);
	for (uint64_t p = 0; p < npages; p++)
		write_page(s, p, 1);
	STEP(sys);
	CHECK_EQ(query(s, 0).size, g->size);
}

/* After every address space is gone, every frame is free again. */
static void teardown(void)
{
	CHECK_EQ(t_stat(sys, "nr_free_pages") + t_zero_frames(sys), free_at_start);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 0);
	hm_system_destroy(sys);
}

static uint64_t stride_for(const struct geo *g) { return g->size == GiB ? 61 : 1; }

/* Fork with the huge page mapped whole; both write; neither sees the
 * other's writes. Then the child exits and the parent's next write reuses
 * the page in place. */
static void mapped_whole(const struct geo *g)
{
	struct as p, c;

	setup(g, &p);
	as_fork(&p, &c);
	struct hm_mapping m = query(&c, 3);
	CHECK_EQ(m.size, g->size);
	CHECK_EQ(m.mapcount, 2);
	CHECK(!m.exclusive);
	CHECK_EQ(m.prot, PROT_READ);		/* write-protected for COW */
	CHECK_EQ(query(&p, 3).pa, m.pa);	/* same frame */
	write_page(&c, 3, 2);
	STEP(sys);
	CHECK(t_stat(sys, "cow_copy") >= 1);
	if (g->size > 4096)
		CHECK_EQ(t_stat(sys, g->size == GiB ? "cow_split_pud" : "cow_split_pmd"), 1);
	CHECK_EQ(query(&c, 3).size, 4096);
	CHECK_EQ(t_stat(sys, "split_alloc"), 0);	/* the child split from its own deposit */
	CHECK(query(&c, 3).pa != query(&p, 3).pa);
	CHECK(query(&c, 3).exclusive);
	CHECK_EQ(query(&c, 3).mapcount, 1);
	write_page(&p, 3, 3);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "split_alloc"), 0);	/* and the parent from its own */
	CHECK_EQ(verify(&p, stride_for(g), 1), 0);
	CHECK_EQ(verify(&c, stride_for(g), 1), 0);
	as_exit(&c);
	/* Alone again: the next write reuses in place, no copy. */
	uint64_t copies = t_stat(sys, "cow_copy"), reuse = t_stat(sys, "cow_reuse");
	uint64_t far = npages / 2 + (g->size == 4096 ? 1 : 5);	/* second huge page: untouched */
	write_page(&p, far, 5);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "cow_copy"), copies);
	CHECK_EQ(t_stat(sys, "cow_reuse"), reuse + 1);
	CHECK_EQ(query(&p, far).size, g->size);
	CHECK(query(&p, far).exclusive);
	CHECK_EQ(query(&p, far).mapcount, 1);
	CHECK_EQ(verify(&p, stride_for(g), 1), 0);
	as_exit(&p);
	teardown();
}

/* PTE-mapped: mprotect one subpage read-only and back, then fork. */
static void pte_mapped(const struct geo *g)
{
	struct as p, c;

	setup(g, &p);
	CHECK_EQ(hm_mprotect(p.mm, base + 4096, 4096, PROT_READ), 0);
	CHECK_EQ(hm_mprotect(p.mm, base + 4096, 4096, RW), 0);
	STEP(sys);
	CHECK_EQ(query(&p, 2).size, 4096);
	as_fork(&p, &c);
	CHECK_EQ(query(&c, 2).mapcount, 2);
	write_page(&c, 2, 7);
	write_page(&p, 1, 8);
	write_page(&p, 2, 9);
	STEP(sys);
	CHECK_EQ(verify(&p, stride_for(g), 1), 0);
	CHECK_EQ(verify(&c, stride_for(g), 1), 0);
	as_exit(&p);	/* the parent exits first */
	write_page(&c, 5, 10);
	CHECK_EQ(verify(&c, stride_for(g), 1), 0);
	as_exit(&c);
	teardown();
}

/* A single PTE left: DONTNEED all of the first huge page but one subpage. */
static void single_pte(const struct geo *g)
{
	struct as p, c;

	setup(g, &p);
	uint64_t keep = 5, first = g->size == 4096 ? 8 : g->size / 4096;
	CHECK_EQ(hm_madvise(p.mm, base, keep * 4096, MADV_DONTNEED), 0);
	CHECK_EQ(hm_madvise(p.mm, base + (keep + 1) * 4096, (first - keep - 1) * 4096, MADV_DONTNEED), 0);
	for (uint64_t i = 0; i < first; i++)
		if (i != keep)
			p.seed[i] = 0;
	STEP(sys);
	CHECK_EQ(query(&p, keep).size, 4096);
	if (g->size == GiB)
		zero_limit = 512;
	as_fork(&p, &c);
	CHECK_EQ(query(&p, keep).mapcount, 2);
	write_page(&p, keep, 11);
	write_page(&c, keep, 12);
	write_page(&c, 0, 13);	/* was zapped: a fresh zero page in the child only */
	STEP(sys);
	CHECK_EQ(verify(&p, stride_for(g), 1), 0);
	CHECK_EQ(verify(&c, stride_for(g), 1), 0);
	zero_limit = UINT64_MAX;
	as_exit(&c);
	as_exit(&p);
	teardown();
}

/* A hole of one subpage near the start of the first huge page: the PTE
 * table then maps its pages with a gap, so fork counts them in more than
 * one run (a 1 GiB folio's tails there are not marked as tails). */
static void hole(const struct geo *g)
{
	struct as p, c;

	setup(g, &p);
	CHECK_EQ(hm_madvise(p.mm, base + 2 * 4096, 4096, MADV_DONTNEED), 0);
	p.seed[2] = 0;
	STEP(sys);
	as_fork(&p, &c);
	STEP(sys);
	CHECK_EQ(query(&p, 3).mapcount, 2);
	write_page(&p, 3, 21);
	write_page(&c, 1, 22);
	write_page(&c, 2, 23);
	STEP(sys);
	CHECK_EQ(verify(&p, stride_for(g), 1), 0);
	CHECK_EQ(verify(&c, stride_for(g), 1), 0);
	as_exit(&c);
	STEP(sys);
	as_exit(&p);
	teardown();
}

/* Partly shared: MADV_DONTFORK on the second half; the child lacks it. */
static void dontfork(const struct geo *g)
{
	struct as p, c;

	setup(g, &p);
	CHECK_EQ(hm_madvise(p.mm, base + len / 2 + 4096, len / 2 - 4096, MADV_DONTFORK), 0);
	STEP(sys);
	as_fork(&p, &c);
	for (uint64_t i = npages / 2 + 1; i < npages; i++)
		c.seed[i] = UNMAPPED;
	CHECK_EQ(verify(&c, stride_for(g), 1), 0);
	/* The parent's DONTFORK part was never shared: still exclusive. */
	CHECK(query(&p, npages - 1).exclusive);
	CHECK_EQ(query(&p, npages - 1).mapcount, 1);
	uint64_t copies = t_stat(sys, "cow_copy");
	write_page(&p, npages - 1, 14);
	CHECK_EQ(t_stat(sys, "cow_copy"), copies);
	write_page(&p, 0, 15);
	write_page(&c, npages / 2, 16);
	STEP(sys);
	CHECK_EQ(verify(&p, stride_for(g), 1), 0);
	CHECK_EQ(verify(&c, stride_for(g), 1), 0);
	as_exit(&p);
	as_exit(&c);
	teardown();
}

/* Fork chains: parent -> child -> grandchild, writes at every level,
 * mapcounts 3 then falling as each writes its own copy. */
static void chain(const struct geo *g)
{
	struct as a, b, c;

	setup(g, &a);
	as_fork(&a, &b);
	write_page(&b, 1, 20);
	as_fork(&b, &c);
	CHECK_EQ(query(&c, 6).mapcount, 3);
	CHECK_EQ(query(&c, 1).mapcount, 2);	/* b's copy, shared with c */
	CHECK(!query(&a, 6).exclusive);
	write_page(&c, 6, 21);
	write_page(&a, 6, 22);
	write_page(&c, 1, 23);
	write_page(&b, 6, 24);
	STEP(sys);
	CHECK_EQ(verify(&a, stride_for(g), 1), 0);
	CHECK_EQ(verify(&b, stride_for(g), 1), 0);
	CHECK_EQ(verify(&c, stride_for(g), 1), 0);
	/* The middle exits first; the ends keep their data. */
	as_exit(&b);
	CHECK_EQ(verify(&a, stride_for(g), 1), 0);
	CHECK_EQ(verify(&c, stride_for(g), 1), 0);
	as_exit(&c);
	as_exit(&a);
	teardown();
}

/* The 2 MiB policy copies the written 2 MiB instead of 4 KiB. */
static void policy_2m(void)
{
	struct hm_config cfg;
	struct hm_mm *mm, *child;
	uint64_t a, v = 9, w = 0;

	hm_config_default(&cfg);
	cfg.phys_bytes = 256 * MiB;
	cfg.cow = HM_COW_2M;
	cfg.flags = HM_CHECK;
	REQUIRE(hm_system_create(&cfg, &sys) == 0);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	CHECK_EQ(hm_write(mm, a + 8, &v, 8), 0);
	CHECK_EQ(hm_fork(mm, &child), 0);
	v = 10;
	CHECK_EQ(hm_write(child, a + 8, &v, 8), 0);
	struct hm_mapping m;
	CHECK_EQ(hm_query(child, a, &m), 0);
	CHECK_EQ(m.size, 2 * MiB);
	CHECK(m.exclusive);
	CHECK_EQ(t_stat(sys, "cow_split_pmd"), 0);
	CHECK_EQ(hm_read(mm, a + 8, &w, 8), 0);
	CHECK_EQ(w, 9);
	STEP(sys);
	hm_system_destroy(sys);
}

/* mprotect read-write must not make a shared page writable. */
static void mprotect_shared(void)
{
	struct as p, c;

	setup(&G4K, &p);
	as_fork(&p, &c);
	CHECK_EQ(hm_mprotect(c.mm, base, len, PROT_READ), 0);
	CHECK_EQ(hm_mprotect(c.mm, base, len, RW), 0);
	CHECK_EQ(query(&c, 0).prot, PROT_READ);	/* still COW */
	write_page(&c, 0, 30);
	CHECK_EQ(verify(&p, 1, 1), 0);
	CHECK_EQ(verify(&c, 1, 1), 0);
	STEP(sys);
	as_exit(&c);
	as_exit(&p);
	teardown();
}

static void bad_args(void)
{
	struct hm_mm *c;

	CHECK_EQ(hm_fork(NULL, &c), -EINVAL);
	sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	CHECK_EQ(hm_fork(mm, NULL), -EINVAL);
	hm_system_destroy(sys);
}

#define SIZES(fn) \
	static void fn##_4k(void) { fn(&G4K); } \
	static void fn##_2m(void) { fn(&G2M); } \
	static void fn##_1g(void) { fn(&G1G); }
SIZES(mapped_whole)
SIZES(pte_mapped)
SIZES(single_pte)
SIZES(dontfork)
SIZES(hole)
SIZES(chain)

T_MAIN(T(mapped_whole_4k), T(mapped_whole_2m), T(mapped_whole_1g),
       T(pte_mapped_4k), T(pte_mapped_2m), T(pte_mapped_1g),
       T(single_pte_4k), T(single_pte_2m), T(single_pte_1g),
       T(dontfork_4k), T(dontfork_2m), T(dontfork_1g),
       T(hole_4k), T(hole_2m), T(hole_1g),
       T(chain_4k), T(chain_2m), T(chain_1g),
       T(policy_2m), T(mprotect_shared), T(bad_args))
