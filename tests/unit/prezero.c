/* SPDX-License-Identifier: MIT */
/*
 * Idle zeroing (HM_PREZERO, phys/prezero.c) and the 4 KiB fault's zeroing
 * (hm_zero_frames): a frame handed out as zeroed is all zero, a freed
 * frame, dirty, is never handed out as zeroed unless zeroed again, the
 * pools give their frames back when memory runs short, and the counters
 * account the work.
 */
#include <time.h>

#include "harness.h"
#include "../../src/mm/mm.h"

/* Bytes of [p, p + len) that are not @v. */
static size_t count_not(const uint8_t *p, size_t len, uint8_t v)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += p[i] != v;
	return n;
}

/* Frames zeroed in a batch are zero to the last byte; the frames between
 * and around them are untouched. */
static void batch_zero(void)
{
	struct hm_phys ph;

	REQUIRE(hm_phys_init(&ph, 4 * MiB, 1, false) == 0);
	uint8_t *p = hm_pfn_ptr(&ph, 10);
	static const uint32_t pfns[] = { 11, 13, 14 };

	memset(p, 0xa5, 6 * 4096);
	hm_zero_frames(&ph, pfns, 3);
	for (unsigned f = 0; f < 6; f++) {
		bool zeroed = f == 1 || f == 3 || f == 4;

		CHECK_EQ(count_not(p + f * 4096, 4096, zeroed ? 0 : 0xa5), 0);
	}
	hm_zero_frames(&ph, pfns, 0);	/* an empty batch touches nothing */
	CHECK_EQ(count_not(p, 4096, 0xa5), 0);
	hm_phys_fini(&ph);
}

static struct hm_system *prezero_system(uint64_t phys)
{
	struct hm_config cfg;

	t_config(&cfg, phys, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	cfg.flags |= HM_PREZERO;
	return t_system_cfg(&cfg);
}

/* Wait (a generous bound on steps, none on time per step) until the
 * pools hold @frames. */
static bool wait_pooled(struct hm_system *sys, uint64_t frames)
{
	for (int i = 0; i < 20000; i++) {
		if (t_stat(sys, "nr_prezeroed") >= frames)
			return true;
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	return false;
}

struct pool_scan {
	struct hm_phys *ph;
	uint64_t frames, dirty, unmarked;
	uint32_t want;		/* a frame to look for */
	bool found;
};

static int scan_one(void *arg, uint32_t pfn, unsigned node)
{
	struct pool_scan *s = arg;

	(void)node;
	s->frames++;
	s->dirty += count_not(hm_pfn_ptr(s->ph, pfn), HM_PAGE_SIZE, 0) != 0;
	s->unmarked += hm_pfn_page(s->ph, pfn)->flags != PG_ZEROED;
	s->found |= pfn == s->want;
	return 0;
}

/* Every pooled frame, under every lock: all zero and marked. */
static struct pool_scan scan_pools(struct hm_system *sys, uint32_t want)
{
	struct pool_scan s = { .ph = &sys->phys, .want = want };

	hm_phys_lock_all(&sys->phys);
	hm_prezero_for_each(&sys->phys, scan_one, &s);
	hm_phys_unlock_all(&sys->phys);
	CHECK_EQ(s.dirty, 0);
	CHECK_EQ(s.unmarked, 0);
	return s;
}

/*
 * A frame taken zeroed, dirtied and freed goes back dirty (to a per-CPU
 * cache, unmarked); the pools never list it until the thread has taken it
 * again and zeroed it: whatever the pools hold is zero, round after round.
 */
static void freed_frame_not_zeroed(void)
{
	struct hm_system *sys = prezero_system(64 * MiB);
	struct hm_phys *ph = &sys->phys;

	REQUIRE(wait_pooled(sys, HM_PTRS));
	STEP(sys);
	for (int round = 0; round < 4; round++) {
		uint32_t pfn, got = 0;

		REQUIRE(hm_prezero_take_frames(ph, 0, &pfn, &got, 1) == 1);
		CHECK_EQ(got, 1);
		CHECK_EQ(ph->pages[pfn].flags, 0);
		CHECK_EQ(count_not(hm_pfn_ptr(ph, pfn), HM_PAGE_SIZE, 0), 0);
		memset(hm_pfn_ptr(ph, pfn), 0x5a, HM_PAGE_SIZE);
		hm_free_pages(ph, pfn, 0);
		CHECK(ph->pages[pfn].flags != PG_ZEROED);
		CHECK(!scan_pools(sys, pfn).found);
		/* Back to the free lists, so that the thread may take its
		 * block again: pooled only after zeroing. Under
		 * zero_busy: no block on its way into a pool (counted, not yet
		 * pooled) meanwhile, which would fill the pool uncounted below. */
		hm_mutex_lock(&ph->zero_busy);
		hm_pcp_drain_all(ph, -1);
		hm_prezero_drain(ph, -1);
		CHECK_EQ(t_stat(sys, "nr_prezeroed"), 0);
		uint64_t done = t_stat(sys, "prezero_pages");

		hm_mutex_unlock(&ph->zero_busy);
		STEP(sys);
		REQUIRE(wait_pooled(sys, HM_PTRS));
		CHECK(t_stat(sys, "prezero_pages") >= done + HM_PTRS);
		scan_pools(sys, pfn);
		STEP(sys);
	}
	hm_system_destroy(sys);
}

/* Faults take pooled frames (4 KiB and whole 2 MiB blocks) and find them
 * zero; after a munmap the dirty frames come back zeroed only. */
static void faults_read_zero(void)
{
	struct hm_system *sys = prezero_system(64 * MiB);
	struct hm_mm *mm;
	const uint64_t len = 2 * MiB;
	uint8_t page[4096];

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	for (int round = 0; round < 3; round++) {
		uint64_t used = t_stat(sys, "prezero_used"), a;

		REQUIRE(wait_pooled(sys, HM_PTRS));
		REQUIRE(hm_mmap(mm, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, &a) == 0);
		unsigned long bad = 0;
		for (uint64_t off = 0; off < len; off += 4096) {
			uint64_t v = ~off;

			REQUIRE(hm_write(mm, a + off + 8, &v, 8) == 0);
			REQUIRE(hm_read(mm, a + off, page, sizeof(page)) == 0);
			memset(page + 8, 0, 8);
			bad += count_not(page, sizeof(page), 0) != 0;
		}
		CHECK_EQ(bad, 0);
		CHECK(t_stat(sys, "prezero_used") > used);
		STEP(sys);
		/* Dirty every page, then give them back. */
		for (uint64_t off = 0; off < len; off += 4096)
			REQUIRE(hm_write(mm, a + off, page, 0) == 0);
		REQUIRE(hm_munmap(mm, a, len) == 0);
		hm_drain(sys);
		STEP(sys);
	}
	CHECK(t_stat(sys, "prezero_ns") > 0);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* A 2 MiB fault takes a whole pooled block. */
static void huge_fault(void)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm;
	uint64_t a, v = 7;

	t_config(&cfg, 64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	cfg.flags |= HM_PREZERO;
	sys = t_system_cfg(&cfg);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(wait_pooled(sys, HM_PTRS));
	uint64_t used = t_stat(sys, "prezero_used");
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, &a) == 0);
	uint64_t h = HM_ALIGN_UP(a, 2 * MiB);
	REQUIRE(hm_write(mm, h, &v, 8) == 0);
	struct hm_mapping m;
	REQUIRE(hm_query(mm, h, &m) == 0);
	CHECK_EQ(m.size, 2 * MiB);
	CHECK_EQ(t_stat(sys, "prezero_used") - used, HM_PTRS);
	unsigned long bad = 0;
	for (uint64_t off = 8; off < 2 * MiB; off += 8)
		bad += t_peek(mm, h + off) != 0;
	CHECK_EQ(bad, 0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* Zeroed frames in the per-CPU caches, all zero and marked as cached;
 * how many. Under every lock: no block on its way into a pool. */
static uint64_t cached_zeroed(struct hm_system *sys)
{
	struct hm_phys *ph = &sys->phys;
	uint64_t nr = 0, dirty = 0, unmarked = 0;

	hm_phys_lock_all(ph);
	for (unsigned i = 0; i < ph->nr_cpus * ph->nr_nodes; i++) {
		const struct hm_pcp *c = &ph->pcp[i];

		for (uint32_t k = 0; k < c->zcount; k++) {
			dirty += count_not(hm_pfn_ptr(ph, c->zpfns[k]), HM_PAGE_SIZE, 0) != 0;
			unmarked += ph->pages[c->zpfns[k]].flags != PG_PCP;
		}
		nr += c->zcount;
	}
	hm_phys_unlock_all(ph);
	CHECK_EQ(dirty, 0);
	CHECK_EQ(unmarked, 0);
	return nr;
}

/*
 * A 4 KiB fault takes HM_PCP_ZPOOL zeroed frames from the pool into its
 * CPU's cache at once, and the faults after it take them from there: one
 * take of the pool's lock per batch, not per fault (two threads faulting
 * shared its lock and lines on every fault, and ran at 0.67-0.93x of one).
 * Only frames a fault took count as used; a batch drained back unused
 * does not. Fails without the fix: the fault took one frame from the pool
 * and no cache held any.
 */
static void faults_take_batches(void)
{
	struct hm_system *sys = prezero_system(64 * MiB);
	struct hm_phys *ph = &sys->phys;
	struct hm_mm *mm;
	uint64_t a, v = 1;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 2 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, &a) == 0);
	REQUIRE(wait_pooled(sys, HM_PCP_ZPOOL + 1));
	hm_pcp_drain_all(ph, -1);
	CHECK_EQ(cached_zeroed(sys), 0);
	uint64_t used = t_stat(sys, "prezero_used");

	REQUIRE(hm_write(mm, a, &v, 8) == 0);
	CHECK_EQ(t_stat(sys, "prezero_used") - used, 1);
	CHECK_EQ(cached_zeroed(sys), HM_PCP_ZPOOL - 1);
	STEP(sys);
	hm_pcp_drain_all(ph, -1);
	CHECK_EQ(cached_zeroed(sys), 0);
	CHECK_EQ(t_stat(sys, "prezero_used") - used, 1);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* Memory full: the pools give their frames back, so that prezeroing costs
 * no page a system without it could have had. */
static void drained_when_short(void)
{
	struct hm_system *sys = prezero_system(16 * MiB);
	struct hm_mm *mm;
	uint64_t a, pages = 0;
	const uint64_t len = 32 * MiB;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(wait_pooled(sys, HM_PTRS));
	uint64_t free0 = t_stat(sys, "nr_free_pages");
	REQUIRE(hm_mmap(mm, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, &a) == 0);
	for (uint64_t off = 0; off < len; off += 4096, pages++)
		if (hm_write(mm, a + off, &off, 8))
			break;
	CHECK_EQ(t_stat(sys, "nr_prezeroed"), 0);
	/* Every free frame went to a page, but for the page tables (the
	 * pool held 512). */
	fprintf(stderr, "  %llu pages written, %llu frames were free\n", (unsigned long long)pages,
		(unsigned long long)free0);
	CHECK(pages + 64 >= free0);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* hm_prezero_start under failing allocations, on a system of 3 nodes:
 * each of its allocations passes the failpoint, and failing any (once, or
 * from then on) gives -ENOMEM with nothing left: no pools, every frame
 * free (a pool's cleanup once freed node 0's first 512 frames, which no
 * pool held, when a later node's block array failed), hm_check clean.
 * Fails without the fix: no allocation reached the failpoint. */
static void start_enomem(void)
{
	struct hm_config cfg;

	t_config(&cfg, 96 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	cfg.nr_nodes = 3;
	struct hm_system *sys = t_system_cfg(&cfg);
	struct hm_phys *ph = &sys->phys;
	uint64_t free0 = t_stat(sys, "nr_free_pages");

	for (int persistent = 0; persistent < 2; persistent++) {
		for (long nth = 1;; nth++) {
			hm__fail_arm(sys, nth, persistent);
			int r = hm_prezero_start(ph);
			long hits = hm__fail_hits(sys);

			hm__fail_arm(sys, 0, false);
			if (!hits) {
				/* past the last allocation: it works */
				CHECK_EQ(r, 0);
				CHECK(nth > cfg.nr_nodes + 1);
				hm_prezero_stop(ph);
				CHECK_EQ(t_stat(sys, "nr_free_pages"), free0);
				STEP(sys);
				break;
			}
			CHECK_EQ(r, -ENOMEM);
			CHECK(ph->zpool == NULL);
			CHECK_EQ(t_stat(sys, "nr_free_pages"), free0);
			STEP(sys);
			REQUIRE(nth < 100);
		}
	}
	hm_system_destroy(sys);
}

T_MAIN(T(batch_zero), T(freed_frame_not_zeroed), T(faults_read_zero), T(huge_fault), T(faults_take_batches), T(drained_when_short), T(start_enomem))
