/* SPDX-License-Identifier: MIT */
/* The buddy allocator: orders, alignment, exhaustion, merging, nodes. */
#define _GNU_SOURCE
#include "harness.h"
#include "race.h"

#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include "../../src/phys/phys.h"

static void orders_and_alignment(void)
{
	struct hm_phys ph;

	REQUIRE(hm_phys_init(&ph, 2 * GiB, 1, false) == 0);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	CHECK_EQ(ph.nodes[0].nr_blocks[HM_MAX_ORDER], 2);
	for (unsigned o = 0; o <= HM_MAX_ORDER; o += 3) {
		uint32_t p = hm_alloc_pages(&ph, 0, o, 0);

		CHECK(p != HM_PFN_NONE);
		CHECK_EQ(p & ((1u << o) - 1), 0);
		CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames - (1u << o));
		hm_free_pages(&ph, p, o);
	}
	/* Everything merged back, once the per-CPU caches give back the
	 * 4 KiB frames they keep. */
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_pcp_drain_all(&ph, -1);
	CHECK_EQ(ph.nr_free, ph.nr_frames);
	CHECK_EQ(ph.nodes[0].nr_blocks[HM_MAX_ORDER], 2);
	for (unsigned o = 0; o < HM_MAX_ORDER; o++)
		CHECK_EQ(ph.nodes[0].nr_blocks[o], 0);
	hm_phys_fini(&ph);
}

static void exhaustion_and_zero(void)
{
	struct hm_phys ph;
	uint32_t got[1024];
	unsigned n = 0;

	REQUIRE(hm_phys_init(&ph, 4 * MiB, 1, false) == 0);
	while (n < 1024 && (got[n] = hm_alloc_pages(&ph, 0, 0, 0)) != HM_PFN_NONE)
		n++;
	CHECK_EQ(n, 1024);
	CHECK_EQ(hm_phys_nr_free(&ph), 0);
	CHECK_EQ(hm_alloc_pages(&ph, 0, 0, 0), HM_PFN_NONE);
	/* Distinct frames. */
	unsigned dup = 0;
	for (unsigned i = 1; i < n; i++)
		dup += got[i] == got[i - 1];
	CHECK_EQ(dup, 0);
	memset(hm_pfn_ptr(&ph, got[5]), 0xaa, 4096);
	hm_free_pages(&ph, got[5], 0);
	uint32_t z = hm_alloc_pages(&ph, 0, 0, HM_ALLOC_ZERO);
	CHECK_EQ(z, got[5]);
	const uint8_t *b = hm_pfn_ptr(&ph, z);
	unsigned nonzero = 0;
	for (int i = 0; i < 4096; i++)
		nonzero += b[i] != 0;
	CHECK_EQ(nonzero, 0);
	for (unsigned i = 0; i < n; i++)
		hm_free_pages(&ph, got[i], 0);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_pcp_drain_all(&ph, -1);
	CHECK_EQ(ph.nodes[0].nr_blocks[10], 1);	/* 4 MiB is one order-10 block */
	hm_phys_fini(&ph);
}

static unsigned nonzero_bytes(struct hm_phys *ph, uint32_t pfn)
{
	const uint8_t *b = hm_pfn_ptr(ph, pfn);
	unsigned n = 0;

	for (int i = 0; i < 4096; i++)
		n += b[i] != 0;
	return n;
}

static int count_one(void *arg, uint32_t pfn, unsigned cpu, unsigned node, bool zeroed)
{
	(void)pfn, (void)cpu, (void)node, (void)zeroed;
	++*(uint64_t *)arg;
	return 0;
}

/*
 * The per-CPU caches' zeroed frames: frames freed dirty come back zeroed to
 * HM_ALLOC_ZERO, every one of a batch; those still in a cache count as
 * free and are listed for hm_check; a plain allocation takes them rather
 * than fail; a drain gives them back to the free lists, which merge whole.
 */
static void pcp_zeroed_frames(void)
{
	struct hm_phys ph;
	uint32_t got[1024], z[HM_PCP_ZBATCH + 3];
	unsigned n = 0, bad = 0;

	REQUIRE(hm_phys_init(&ph, 4 * MiB, 1, false) == 0);
	while (n < 1024 && (got[n] = hm_alloc_pages(&ph, 0, 0, 0)) != HM_PFN_NONE)
		memset(hm_pfn_ptr(&ph, got[n++]), 0xaa, 4096);
	CHECK_EQ(n, 1024);
	for (unsigned i = 0; i < 40; i++)
		hm_free_pages(&ph, got[i], 0);
	for (unsigned i = 0; i < HM_PCP_ZBATCH + 3; i++) {
		/* Half with a line fetched ahead (any offset in the frame):
		 * the same frames, the same contents. */
		z[i] = i % 2 ? hm_alloc_pages_hot(&ph, 0, 0, HM_ALLOC_ZERO, i * 257 % 4096)
			     : hm_alloc_pages(&ph, 0, 0, HM_ALLOC_ZERO);
		REQUIRE(z[i] != HM_PFN_NONE);
		bad += nonzero_bytes(&ph, z[i]) != 0;
		uint64_t listed = 0;
		hm_pcp_for_each(&ph, count_one, &listed);
		CHECK_EQ(hm_phys_nr_free(&ph), 40 - 1 - i);
		CHECK_EQ(listed, 40 - 1 - i);
	}
	CHECK_EQ(bad, 0);
	unsigned dup = 0;
	for (unsigned i = 0; i < HM_PCP_ZBATCH + 3; i++)
		for (unsigned j = 0; j < i; j++)
			dup += z[i] == z[j];
	CHECK_EQ(dup, 0);
	/* Plain allocations take what is left, zeroed or not, to the last. */
	for (unsigned i = HM_PCP_ZBATCH + 3; i < 40; i++)
		CHECK(hm_alloc_pages(&ph, 0, 0, 0) != HM_PFN_NONE);
	CHECK_EQ(hm_phys_nr_free(&ph), 0);
	CHECK_EQ(hm_alloc_pages(&ph, 0, 0, 0), HM_PFN_NONE);
	CHECK_EQ(hm_alloc_pages(&ph, 0, 0, HM_ALLOC_ZERO), HM_PFN_NONE);
	for (unsigned i = 0; i < 1024; i++)
		hm_free_pages(&ph, got[i], 0);
	CHECK_EQ(hm_phys_nr_free(&ph), 1024);
	/* A batch zeroed and left in the cache; the drain takes it back. */
	uint32_t one = hm_alloc_pages(&ph, 0, 0, HM_ALLOC_ZERO);
	CHECK_EQ(nonzero_bytes(&ph, one), 0);
	hm_free_pages(&ph, one, 0);
	CHECK_EQ(hm_phys_nr_free(&ph), 1024);
	CHECK(hm_pcp_drain_all(&ph, -1));
	CHECK_EQ(ph.nr_free, 1024);
	CHECK_EQ(ph.nodes[0].nr_blocks[10], 1);
	hm_phys_fini(&ph);
}

static void failpoint(void)
{
	struct hm_phys ph;

	REQUIRE(hm_phys_init(&ph, 4 * MiB, 1, false) == 0);
	hm_fail_arm(&ph.fail, 2, false);
	uint32_t a = hm_alloc_pages(&ph, 0, 0, 0);
	CHECK(a != HM_PFN_NONE);
	CHECK_EQ(hm_alloc_pages(&ph, 0, 0, 0), HM_PFN_NONE);	/* the 2nd fails */
	uint32_t b = hm_alloc_pages(&ph, 0, 0, 0);		/* transient */
	CHECK(b != HM_PFN_NONE);
	hm_fail_arm(&ph.fail, 1, true);
	CHECK_EQ(hm_alloc_pages(&ph, 0, 0, 0), HM_PFN_NONE);
	CHECK_EQ(hm_alloc_pages(&ph, 0, 0, 0), HM_PFN_NONE);	/* persistent */
	CHECK_EQ(ph.fail.hits, 2);
	hm_fail_arm(&ph.fail, 0, false);
	hm_free_pages(&ph, a, 0);
	hm_free_pages(&ph, b, 0);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_phys_fini(&ph);
}

static void nodes(void)
{
	struct hm_phys ph;

	REQUIRE(hm_phys_init(&ph, 8 * MiB, 2, false) == 0);
	CHECK_EQ(ph.nodes[0].end_pfn, ph.nodes[1].start_pfn);
	uint32_t a = hm_alloc_pages(&ph, 1, 10, HM_ALLOC_THISNODE);
	CHECK(a != HM_PFN_NONE);
	CHECK_EQ(hm_pfn_node(&ph, a), 1);
	CHECK_EQ(hm_alloc_pages(&ph, 1, 0, HM_ALLOC_THISNODE), HM_PFN_NONE);
	uint32_t b = hm_alloc_pages(&ph, 1, 0, 0);	/* falls back to node 0 */
	CHECK(b != HM_PFN_NONE);
	CHECK_EQ(hm_pfn_node(&ph, b), 0);
	hm_free_pages(&ph, a, 10);
	hm_free_pages(&ph, b, 0);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_phys_fini(&ph);
}

/* A frame's node is computed from its pfn; it must agree with the nodes'
 * ranges everywhere, for sizes that divide unevenly. */
static void node_of_pfn(void)
{
	struct hm_phys ph;

	REQUIRE(hm_phys_init(&ph, 8 * MiB + 12 * KiB, 3, false) == 0);
	unsigned wrong = 0;
	for (unsigned n = 0; n < ph.nr_nodes; n++)
		for (uint32_t p = ph.nodes[n].start_pfn; p < ph.nodes[n].end_pfn; p++)
			wrong += hm_pfn_node(&ph, p) != n;
	CHECK_EQ(wrong, 0);
	CHECK_EQ(ph.nodes[0].start_pfn, 0);
	CHECK_EQ(ph.nodes[2].end_pfn, ph.nr_frames);
	CHECK_EQ(ph.nodes[0].end_pfn, ph.nodes[1].start_pfn);
	CHECK_EQ(ph.nodes[1].end_pfn, ph.nodes[2].start_pfn);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_phys_fini(&ph);
}

/* Host pages of the descriptor array that are resident. */
static uint64_t resident_pages(const void *p, uint64_t len)
{
	uint64_t n = (len + 4095) / 4096, in = 0;
	unsigned char *vec = malloc(n);

	if (!vec || mincore((void *)p, len, vec)) {
		free(vec);
		return UINT64_MAX;
	}
	for (uint64_t i = 0; i < n; i++)
		in += vec[i] & 1;
	free(vec);
	return in;
}

/* Creation writes the head descriptor of each initial free block and no
 * other (the rest stay zero pages the host never backs); allocating and
 * freeing a block writes only that block's descriptors (and the heads of
 * the halves a split gives back). */
static void descriptors_lazy(void)
{
	struct hm_phys ph;

	REQUIRE(hm_phys_init(&ph, 64 * GiB + 4 * MiB, 1, false) == 0);
	/* 64 blocks of 1 GiB and one of 4 MiB: one host page each. */
	CHECK_EQ(ph.nodes[0].nr_blocks[HM_MAX_ORDER], 64);
	CHECK_EQ(ph.nodes[0].nr_blocks[10], 1);
	CHECK_EQ(resident_pages(ph.pages, ph.pages_len), 65);
	uint32_t p = hm_alloc_pages(&ph, 0, 9, 0);
	CHECK(p != HM_PFN_NONE);
	hm_free_pages(&ph, p, 9);
	/* 512 descriptors are 8 host pages; the halves given back (orders
	 * 9..17) have their heads in at most 9 more. */
	CHECK(resident_pages(ph.pages, ph.pages_len) <= 65 + 8 + 9);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	CHECK_EQ(ph.nodes[0].nr_blocks[HM_MAX_ORDER], 64);
	hm_phys_fini(&ph);
}

/* A 4 KiB allocation takes a free 4 KiB hole before it splits a 2 MiB
 * block, also when it refills a per-CPU cache. Here @nr holes (odd
 * frames) are freed in an allocated 2 MiB block; with fewer holes than a
 * batch the refill takes only those (it used to split a huge block for
 * the rest and hand one of its frames out first). */
static void refill_takes_holes_nr(uint32_t nr)
{
	struct hm_phys ph;

	REQUIRE(hm_phys_init(&ph, 8 * MiB, 1, false) == 0);
	uint32_t a = hm_alloc_pages(&ph, 0, HM_PMD_ORDER, 0);
	REQUIRE(a != HM_PFN_NONE);
	for (uint32_t i = 0; i < nr; i++)
		hm_free_pages(&ph, a + 2 * i + 1, 0);
	hm_pcp_drain_all(&ph, -1);
	uint64_t huge = ph.nodes[0].nr_blocks[HM_PMD_ORDER];
	uint32_t p = hm_alloc_pages(&ph, 0, 0, 0);

	CHECK(p >= a && p < a + HM_PTRS && (p - a) % 2 == 1 && (p - a) / 2 < nr);
	CHECK_EQ(ph.nodes[0].nr_blocks[HM_PMD_ORDER], huge);
	hm_free_pages(&ph, p, 0);
	for (uint32_t i = 0; i < HM_PTRS; i++)
		if (i % 2 == 0 || i / 2 >= nr)
			hm_free_pages(&ph, a + i, 0);
	hm_pcp_drain_all(&ph, -1);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_phys_fini(&ph);
}

static void refill_takes_holes(void)
{
	refill_takes_holes_nr(HM_PTRS / 2);
	refill_takes_holes_nr(HM_PCP_BATCH - 1);
	refill_takes_holes_nr(HM_PCP_BATCH / 4);
	refill_takes_holes_nr(1);
}

/*
 * With no free block below the batch's order either (no holes to fill), a
 * refill takes one block of that order: it splits the same huge block that
 * single frames would split one at a time and leaves the same blocks free,
 * and the cache hands its frames out lowest first (single frames came out
 * highest first). Pinned to one CPU while it allocates, so that every
 * allocation sees the same cache; skipped where it cannot pin.
 */
static void refill_without_holes_takes_a_block(void)
{
	const unsigned batch_order = (unsigned)__builtin_ctz(HM_PCP_BATCH);
	uint32_t p[4] = { HM_PFN_NONE, HM_PFN_NONE, HM_PFN_NONE, HM_PFN_NONE };
	uint64_t small = 0;
	struct hm_phys ph;
	cpu_set_t old, one;
	int cpu = sched_getcpu();

	CPU_ZERO(&one);
	if (cpu >= 0)
		CPU_SET(cpu, &one);
	if (cpu < 0 || sched_getaffinity(0, sizeof(old), &old) || sched_setaffinity(0, sizeof(one), &one)) {
		printf("  skipped: cannot pin to one CPU\n");
		return;
	}
	/* Nothing in here returns early: the affinity is restored first. */
	int r = hm_phys_init(&ph, 8 * MiB, 1, false);
	for (unsigned o = 0; !r && o < HM_PMD_ORDER; o++)
		small += ph.nodes[0].nr_blocks[o];
	for (unsigned i = 0; !r && i < 4; i++)
		p[i] = hm_alloc_pages(&ph, 0, 0, 0);
	CHECK(sched_setaffinity(0, sizeof(old), &old) == 0);
	REQUIRE(r == 0);

	CHECK_EQ(small, 0);
	CHECK_EQ(p[0] % HM_PCP_BATCH, 0);
	for (unsigned i = 1; i < 4; i++)
		CHECK_EQ(p[i], p[0] + i);
	for (unsigned o = 0; o < batch_order; o++)
		CHECK_EQ(ph.nodes[0].nr_blocks[o], 0);
	for (unsigned o = batch_order; o < HM_PMD_ORDER; o++)
		CHECK_EQ(ph.nodes[0].nr_blocks[o], 1);
	for (unsigned i = 0; i < 4; i++)
		if (p[i] != HM_PFN_NONE)
			hm_free_pages(&ph, p[i], 0);
	hm_pcp_drain_all(&ph, -1);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	for (unsigned o = 0; o < HM_PMD_ORDER; o++)
		CHECK_EQ(ph.nodes[0].nr_blocks[o], 0);
	hm_phys_fini(&ph);
}

struct free_op {
	struct hm_phys *ph;
	uint32_t pfn;
	pthread_barrier_t *bar;
};

static void *free_huge(void *arg)
{
	struct free_op *o = arg;

	pthread_barrier_wait(o->bar);
	hm_free_pages(o->ph, o->pfn, HM_PMD_ORDER);
	return NULL;
}

/* Two buddy 2 MiB blocks freed at once: one's descriptor reset must not
 * write the head's buddy byte that the other's merge reads under the node
 * lock (ThreadSanitizer reports it under SAN=thread). */
static void huge_buddies_freed_together(void)
{
	struct hm_phys ph;

	REQUIRE(hm_phys_init(&ph, 8 * MiB, 1, false) == 0);
	for (int it = 0; it < 200; it++) {
		uint32_t a = hm_alloc_pages(&ph, 0, HM_PMD_ORDER, 0);
		uint32_t b = hm_alloc_pages(&ph, 0, HM_PMD_ORDER, 0);
		pthread_barrier_t bar;

		REQUIRE(a != HM_PFN_NONE && b != HM_PFN_NONE);
		pthread_barrier_init(&bar, NULL, 2);
		struct free_op oa = { &ph, a, &bar }, ob = { &ph, b, &bar };
		pthread_t t = t_spawn(free_huge, &oa);

		free_huge(&ob);
		pthread_join(t, NULL);
		pthread_barrier_destroy(&bar);
	}
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	CHECK_EQ(ph.nodes[0].nr_blocks[11], 1);	/* the 8 MiB merged whole */
	hm_phys_fini(&ph);
}

struct free_watch {
	struct hm_phys *ph;
	uint64_t target, seen;
};

/* Without node->lock, as hm_node_nr_free reads it: nothing orders this
 * load after the stores it waits for but the values themselves. Gives up
 * after 10 s (seen then tells). */
static void *watch_node_free(void *arg)
{
	struct free_watch *w = arg;
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((w->seen = hm_load_relaxed(&w->ph->nodes[0].nr_free)) != w->target) {
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 10)
			break;
	}
	return NULL;
}

/* Run @op on @ph while a thread waits, without a lock, for node 0's free
 * count to grow by @by (a drain may store it more than once, if the frames
 * sit in more than one CPU's cache); what the thread saw it grow by. */
static uint64_t free_count_seen(struct hm_phys *ph, void (*op)(struct hm_phys *ph, uint32_t pfn), uint32_t pfn,
				uint64_t by)
{
	uint64_t before = ph->nodes[0].nr_free;
	struct free_watch w = { ph, before + by, 0 };
	pthread_t t = t_spawn(watch_node_free, &w);

	op(ph, pfn);
	pthread_join(t, NULL);
	return w.seen - before;
}

static void free_pmd(struct hm_phys *ph, uint32_t pfn) { hm_free_pages(ph, pfn, HM_PMD_ORDER); }
static void drain_caches(struct hm_phys *ph, uint32_t pfn) { (void)pfn; hm_pcp_drain_all(ph, -1); }

/* A node's free count is read without its lock (compaction weighs blocks
 * by hm_node_nr_free) while a free or a per-CPU cache's drain changes it
 * under the lock, so the store must be atomic. The reader sees the new
 * count only through its racing load: under SAN=thread this reports a
 * data race every time if the store is a plain += (as CI once found in
 * stress/compact). Elsewhere it checks the counts the reader saw. */
static void node_free_read_unlocked(void)
{
	struct hm_phys ph;

	REQUIRE(hm_phys_init(&ph, 8 * MiB, 1, false) == 0);
	uint32_t p = hm_alloc_pages(&ph, 0, HM_PMD_ORDER, 0);

	REQUIRE(p != HM_PFN_NONE);
	CHECK_EQ(free_count_seen(&ph, free_pmd, p, 1u << HM_PMD_ORDER), 1u << HM_PMD_ORDER);
	p = hm_alloc_pages(&ph, 0, 0, 0);	/* fills a CPU's cache */
	REQUIRE(p != HM_PFN_NONE);
	hm_free_pages(&ph, p, 0);
	uint64_t cached = ph.nr_frames - ph.nodes[0].nr_free;

	REQUIRE(cached > 0);
	CHECK_EQ(free_count_seen(&ph, drain_caches, 0, cached), cached);
	CHECK_EQ(hm_node_nr_free(&ph, 0), ph.nr_frames);
	hm_phys_fini(&ph);
}

/* A folio's descriptors copied to new frames (migration) take every byte
 * but the buddy byte, which the copy must leave alone: a free of the new
 * frames' buddy reads it under node->lock meanwhile. The byte is set apart
 * in @n here, so that a copy of it shows (a plain memcpy of the
 * descriptors, as before, fails). A store of the same value would not
 * show: that race is TSan's to find (stress/migrate_threads). */
static void copy_state_keeps_buddy_byte(void)
{
	struct hm_page o[3], n[3];
	const size_t at = offsetof(struct hm_page, buddy);

	for (size_t i = 0; i < sizeof(o); i++)
		((uint8_t *)o)[i] = (uint8_t)(i * 7 + 1);
	memset(n, 0xa5, sizeof(n));
	hm_page_copy_state(n, o, 2);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(n[i].buddy, 0xa5);
		CHECK_EQ(memcmp(&n[i], &o[i], at), 0);
		CHECK_EQ(memcmp((uint8_t *)&n[i] + at + 1, (uint8_t *)&o[i] + at + 1, sizeof(n[i]) - at - 1), 0);
	}
	/* Only @nr descriptors. */
	for (size_t b = 0; b < sizeof(n[2]); b++)
		CHECK_EQ(((uint8_t *)&n[2])[b], 0xa5);
}

T_MAIN(T(orders_and_alignment), T(exhaustion_and_zero), T(pcp_zeroed_frames), T(failpoint), T(nodes),
       T(node_of_pfn), T(descriptors_lazy), T(refill_takes_holes),
       T(refill_without_holes_takes_a_block),
       T(huge_buddies_freed_together), T(node_free_read_unlocked), T(copy_state_keeps_buddy_byte))
