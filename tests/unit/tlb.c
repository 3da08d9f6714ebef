/* SPDX-License-Identifier: MIT */
/*
 * The software TLB (src/mmu): what a hit returns, what makes the next
 * access miss, the dirty bit a write through a read-filled entry sets, and
 * more address spaces than a thread has contexts. White-box: looks at the
 * entries through tlb_lookup, at the leaves through hm_pt_walk.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "race.h"
#include "../../src/mmu/tlb.h"

#define HOLD_MS	200	/* long enough for an operation that should wait not to */
#define STOP_MS	10000

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

/* This thread's entry for @va as a read (or write) would use it now. */
static uint8_t *lookup(struct hm_mm *mm, uint64_t va, bool write)
{
	uint64_t avail;

	hm_rcu_read_lock();
	uint8_t *p = tlb_lookup(hm_tlb_ctx(mm), va, hm_load(&mm->tlb_gen), write, &avail);
	hm_rcu_read_unlock();
	return p;
}

/* The host address the tables translate @va to, and the leaf's entry. */
static uint8_t *walk(struct hm_mm *mm, uint64_t va, hm_pte_t **slotp, unsigned *levelp)
{
	struct hm_phys *ph = mm_phys(mm);
	unsigned level;

	hm_rcu_read_lock();
	hm_pte_t *slot = hm_pt_walk(ph, mm->root, mm->sys->top, va, &level);
	hm_pte_t e = pt_get(slot);
	hm_rcu_read_unlock();
	if (slotp)
		*slotp = slot;
	if (levelp)
		*levelp = level;
	if (!pt_present(e))
		return NULL;
	return (uint8_t *)hm_pfn_ptr(ph, pt_pfn(e, level)) + (va & (hm_level_size(level) - 1));
}

/* A fill makes the next access hit, through the leaf's frame, for reads
 * and writes of every size up to the fast path's 16 bytes and beyond, at
 * the start, middle and end of a page; a hit faults nothing. */
static void hit_after_fill(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, v = 0x1122334455667788ull, got = 0;
	uint8_t ref[64], buf[64];

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 2 * HM_PAGE_SIZE, RW, PA, &a) == 0);
	CHECK(lookup(mm, a + 8, false) == NULL);
	CHECK_EQ(hm_write(mm, a + 8, &v, 8), 0);
	STEP(sys);
	uint8_t *host = walk(mm, a + 8, NULL, NULL);
	REQUIRE(host != NULL);
	CHECK(lookup(mm, a + 8, false) == host);
	CHECK(lookup(mm, a + 8, true) == host);	/* filled by a write: D is set */
	CHECK(lookup(mm, a + HM_PAGE_SIZE, false) == NULL);
	uint64_t faults = t_stat(sys, "pgfault");
	CHECK_EQ(hm_read(mm, a + 8, &got, 8), 0);
	CHECK_EQ(got, v);
	CHECK_EQ(t_stat(sys, "pgfault"), faults);

	for (unsigned i = 0; i < sizeof(ref); i++)
		ref[i] = (uint8_t)(i * 37 + 1);
	uint64_t offs[] = { 0, 8, 1000, HM_PAGE_SIZE - 16, HM_PAGE_SIZE - 7 };
	for (unsigned o = 0; o < sizeof(offs) / sizeof(offs[0]); o++) {
		for (uint64_t n = 1; n <= 24; n++) {
			uint64_t va = a + offs[o];

			if ((va & (HM_PAGE_SIZE - 1)) + n > 2 * HM_PAGE_SIZE)
				continue;
			memset(buf, 0xee, sizeof(buf));
			CHECK_EQ(hm_write(mm, va, ref, n), 0);
			CHECK_EQ(hm_read(mm, va, buf + 1, n), 0);
			CHECK_EQ(memcmp(buf + 1, ref, n), 0);
			CHECK_EQ(buf[0], 0xee);		/* nothing outside [buf, buf + n) */
			CHECK_EQ(buf[n + 1], 0xee);
			CHECK_EQ(memcmp(walk(mm, va, NULL, NULL), ref, HM_MIN(n, HM_PAGE_SIZE - offs[o])), 0);
		}
	}
	STEP(sys);
	/* Bad input still fails before anything else, fast path or not. */
	CHECK_EQ(hm_read(NULL, a, &got, 8), -EINVAL);
	CHECK_EQ(hm_read(mm, a, NULL, 8), -EINVAL);
	CHECK_EQ(hm_write(mm, a, NULL, 8), -EINVAL);
	CHECK_EQ(hm_read(mm, a, NULL, 0), 0);
	CHECK_EQ(hm_read(mm, a + 2 * HM_PAGE_SIZE, &got, 8), -EFAULT);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* Bumping tlb_gen (what hm_tlb_flush does) makes the next access miss and
 * refill; a real unmap (DONTNEED) is never served from the old entry. The
 * level that hit last is probed first, and the others still hit. */
static void flush_makes_miss(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, b, v = 42, got = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	REQUIRE(hm_mmap(mm, 0, HM_PAGE_SIZE, RW, PA, &b) == 0);
	a = HM_ALIGN_UP(a, 2 * MiB);
	CHECK_EQ(hm_write(mm, a, &v, 8), 0);
	unsigned level;
	REQUIRE(walk(mm, a, NULL, &level) != NULL);
	CHECK_EQ(level, 1);
	CHECK(lookup(mm, a + 4096, false) == walk(mm, a + 4096, NULL, NULL));

	hm_add(&mm->tlb_gen, 1);
	CHECK(lookup(mm, a, false) == NULL);
	CHECK(lookup(mm, a, true) == NULL);
	uint64_t faults = t_stat(sys, "pgfault") + t_stat(sys, "pmd_fault_alloc");
	CHECK_EQ(hm_read(mm, a + 64, &got, 8), 0);	/* refill from the tables */
	CHECK_EQ(got, 0);
	CHECK_EQ(t_stat(sys, "pgfault") + t_stat(sys, "pmd_fault_alloc"), faults);
	CHECK(lookup(mm, a, false) == walk(mm, a, NULL, NULL));

	/* 4 KiB and 2 MiB pages in turn: each refills once, then both hit. */
	CHECK_EQ(hm_write(mm, b, &v, 8), 0);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(hm_read(mm, b, &got, 8), 0);
		CHECK_EQ(got, 42);
		CHECK_EQ(hm_tlb_ctx(mm)->last, 0);
		CHECK_EQ(hm_read(mm, a, &got, 8), 0);
		CHECK_EQ(got, 42);
		CHECK_EQ(hm_tlb_ctx(mm)->last, 1);
	}
	CHECK(lookup(mm, b, true) == walk(mm, b, NULL, NULL));
	CHECK(lookup(mm, a, true) == walk(mm, a, NULL, NULL));

	uint64_t gen = hm_load(&mm->tlb_gen);
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_DONTNEED), 0);
	CHECK(hm_load(&mm->tlb_gen) != gen);
	CHECK(lookup(mm, a, false) == NULL);
	CHECK_EQ(hm_read(mm, a, &got, 8), 0);
	CHECK_EQ(got, 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* An entry a read filled while the leaf was clean allows reads only; the
 * first write through it misses, and its refill sets D, as a CPU's page
 * walker does. A leaf already dirty is not written again. */
static void write_sets_dirty(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, v = 7, got = 0;
	hm_pte_t *slot;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, HM_PAGE_SIZE, RW, PA, &a) == 0);
	CHECK_EQ(hm_write(mm, a, &v, 8), 0);
	REQUIRE(walk(mm, a, &slot, NULL) != NULL);
	hm_pte_t e = pt_get(slot);
	CHECK(e & HM_PTE_D);
	/* Clean the leaf and flush, as writeback would. */
	REQUIRE(pt_cmpxchg(slot, e, e & ~(hm_pte_t)HM_PTE_D));
	hm_add(&mm->tlb_gen, 1);

	CHECK_EQ(hm_read(mm, a, &got, 8), 0);
	CHECK_EQ(got, 7);
	CHECK(pt_get(slot) & HM_PTE_A);
	CHECK(!(pt_get(slot) & HM_PTE_D));		/* a read leaves it clean */
	CHECK(lookup(mm, a, false) != NULL);
	CHECK(lookup(mm, a, true) == NULL);		/* read-filled: no writes */
	v = 8;
	CHECK_EQ(hm_write(mm, a, &v, 8), 0);
	CHECK(pt_get(slot) & HM_PTE_D);
	CHECK(lookup(mm, a, true) == walk(mm, a, NULL, NULL));
	CHECK_EQ(hm_read(mm, a, &got, 8), 0);
	CHECK_EQ(got, 8);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* More mms than a thread has contexts: the least recently used context is
 * recycled (its entries gone), and every access still reads its own mm. */
static void more_mms_than_contexts(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	enum { N = TLB_CTXS + 2 };
	struct hm_mm *mm[N];
	uint64_t a[N], got;

	for (uint64_t i = 0; i < N; i++) {
		REQUIRE(hm_mm_create(sys, &mm[i]) == 0);
		REQUIRE(hm_mmap(mm[i], 0, HM_PAGE_SIZE, RW, PA, &a[i]) == 0);
		uint64_t v = 100 + i;
		CHECK_EQ(hm_write(mm[i], a[i], &v, 8), 0);
	}
	/* mm[0] and mm[1] were used longest ago: their contexts went to the
	 * last ones; the last TLB_CTXS mms still hit. */
	for (unsigned i = N - TLB_CTXS; i < N; i++)
		CHECK(lookup(mm[i], a[i], false) == walk(mm[i], a[i], NULL, NULL));
	CHECK(lookup(mm[0], a[0], false) == NULL);
	for (int round = 0; round < 3; round++)
		for (uint64_t i = 0; i < N; i++) {
			uint64_t k = round == 1 ? N - 1 - i : (i * 3) % N;

			got = 0;
			CHECK_EQ(hm_read(mm[k], a[k], &got, 8), 0);
			CHECK_EQ(got, 100 + k);
			CHECK_EQ(hm_tlb_ctx(mm[k])->mm_id, mm[k]->id);
		}
	/* Same thread, alternating between two mms: never each other's data. */
	for (int i = 0; i < 100; i++) {
		CHECK_EQ(hm_read(mm[i & 1], a[i & 1], &got, 8), 0);
		CHECK_EQ(got, 100 + (i & 1));
	}
	STEP(sys);
	for (unsigned i = 0; i < N; i++)
		hm_mm_destroy(mm[i]);
	hm_system_destroy(sys);
}

struct reader_arg {
	struct hm_mm *mm;
	uint64_t va, want;
};

/* A thread's first accesses: registration with liburcu, a new TLB, a fill,
 * hits; its TLB is freed when it exits. */
static void *reader(void *arg)
{
	struct reader_arg *ra = arg;
	uint64_t got = 0;

	for (int i = 0; i < 1000; i++)
		if (hm_read(ra->mm, ra->va, &got, 8) || got != ra->want)
			return (void *)1;
	return NULL;
}

/* Threads that come and go, each with its own TLB, alongside this one's. */
static void thread_tlbs(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, v = 5, got = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, HM_PAGE_SIZE, RW, PA, &a) == 0);
	CHECK_EQ(hm_write(mm, a, &v, 8), 0);
	for (int i = 0; i < 4; i++) {
		pthread_t t;
		void *r;

		struct reader_arg ra = { mm, a, 5 };

		REQUIRE(pthread_create(&t, NULL, reader, &ra) == 0);
		pthread_join(t, &r);
		CHECK(r == NULL);
		CHECK_EQ(hm_read(mm, a, &got, 8), 0);
		CHECK_EQ(got, 5);
	}
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

struct hitter {
	struct hm_mm *mm;
	uint64_t va;
	int r1, r2;
};

/* A fill, then a hit: the second write is this thread's next access to the
 * same page of the same mm, registered with liburcu, so it takes the
 * inlined hit path (access_fast). */
static void *fill_then_hit(void *p)
{
	struct hitter *h = p;
	uint64_t v = 2;

	h->r1 = hm_write(h->mm, h->va, &v, 8);
	v = 3;
	h->r2 = hm_write(h->mm, h->va + 8, &v, 8);
	return NULL;
}

static void *synchronize(void *p)
{
	(void)p;
	hm_rcu_synchronize();
	return NULL;
}

/*
 * A grace period waits for a hit under way: the inlined read section is
 * one liburcu's grace periods see (what every free after hm_tlb_flush
 * relies on). The writer stops in its hit with the translation in hand
 * (race point access_copy); a grace period begun then must not end until
 * the write is released. With the hit's copy moved out of the read
 * section, it ends at once (checked).
 */
static void grace_period_waits_for_hit(void)
{
	t_flags = 0;	/* no hm_check: it would wait for the stopped thread */
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	t_flags = HM_CHECK;
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * HM_PAGE_SIZE, RW, PA, &a) == 0);
	t_poke(mm, a, 1);
	struct hitter h = { mm, a, -1, -1 };

	REQUIRE(hm__race_arm("access_copy", 1) == 0);	/* pass the fill, stop the hit */
	pthread_t tw = t_spawn(fill_then_hit, &h);
	REQUIRE(hm__race_wait("access_copy", STOP_MS) == 0);
	pthread_t ts = t_spawn(synchronize, NULL);
	bool ended_early = t_join_within(ts, HOLD_MS);
	hm__race_release("access_copy");
	pthread_join(tw, NULL);
	if (!ended_early)
		pthread_join(ts, NULL);
	hm__race_reset();
	CHECK(!ended_early);
	CHECK_EQ(h.r1, 0);
	CHECK_EQ(h.r2, 0);
	CHECK_EQ(t_peek(mm, a), 2);
	CHECK_EQ(t_peek(mm, a + 8), 3);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

T_MAIN(T(hit_after_fill), T(flush_makes_miss), T(write_sets_dirty), T(more_mms_than_contexts),
       T(thread_tlbs), T(grace_period_waits_for_hit))
