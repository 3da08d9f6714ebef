/* SPDX-License-Identifier: MIT */
/*
 * Mobility grouping and the compaction window of the buddy allocator:
 * unmovable allocations (page tables, the huge zero page) gather in regions
 * of their own; frames freed into a window stay there; and the measure,
 * after a long random workload, of how many 1 GiB blocks compaction could
 * free with grouping and without.
 */
#include <stdlib.h>

#include "harness.h"
#include "../../src/mm/mm.h"

/* Regions of node 0 that hold unmovable frames. */
static unsigned unmovable_regions(struct hm_phys *ph)
{
	unsigned nr = 0;

	for (uint32_t r = 0; r < ph->nodes[0].nr_regions; r++)
		nr += ph->nodes[0].unmovable[r] != 0;
	return nr;
}

/* Page tables land in one 1 GiB region while movable memory is spread over
 * all four, and leave it when freed. */
static void tables_group(void)
{
	struct hm_phys ph;
	struct hm_ptcache pc;
	static uint32_t data[2000 * 300], t[2000];
	unsigned nd = 0;

	REQUIRE(hm_phys_init(&ph, 4 * GiB, 1, false) == 0);
	REQUIRE(hm_ptcache_init(&pc, &ph, false) == 0);
	CHECK_EQ(ph.nodes[0].group_shift, HM_PUD_ORDER);
	CHECK_EQ(ph.nodes[0].nr_regions, 4);
	/* Movable 4 KiB frames, interleaved with tables and single frames. */
	for (unsigned i = 0; i < 2000; i++) {
		for (unsigned j = 0; j < 300; j++)
			REQUIRE((data[nd++] = hm_alloc_pages(&ph, 0, 0, 0)) != HM_PFN_NONE);
		t[i] = hm_pt_alloc(&pc, 0, 1);
		CHECK(t[i] != HM_PFN_NONE);
	}
	uint32_t z = hm_alloc_pages(&ph, 0, HM_PMD_ORDER, HM_ALLOC_UNMOVABLE);
	CHECK(z != HM_PFN_NONE);
	CHECK_EQ(unmovable_regions(&ph), 1);
	unsigned elsewhere = 0, movable_there = 0;
	for (unsigned i = 0; i < 2000; i++)
		elsewhere += (t[i] >> HM_PUD_ORDER) != (z >> HM_PUD_ORDER);
	for (unsigned i = 0; i < nd; i++)
		movable_there += (data[i] >> HM_PUD_ORDER) == (z >> HM_PUD_ORDER);
	CHECK_EQ(elsewhere, 0);
	/* Folios stay out of the tables' region while there is room elsewhere. */
	CHECK_EQ(movable_there, 0);
	CHECK_EQ(hm_phys_movable_blocks(&ph, HM_PUD_ORDER), 3);
	for (unsigned i = 0; i < 2000; i++)
		hm_pt_free(&pc, t[i]);
	hm_ptcache_shrink(&pc);
	hm_free_unmovable(&ph, z, HM_PMD_ORDER);
	CHECK_EQ(unmovable_regions(&ph), 0);
	CHECK_EQ(hm_phys_movable_blocks(&ph, HM_PUD_ORDER), 4);
	for (unsigned i = 0; i < nd; i++)
		hm_free_pages(&ph, data[i], 0);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_pcp_drain_all(&ph, -1);	/* the 4 KiB frames merge once drained */
	CHECK_EQ(ph.nr_free, ph.nr_frames);
	CHECK_EQ(ph.nodes[0].nr_blocks[HM_PUD_ORDER], 4);
	hm_ptcache_fini(&pc);
	hm_phys_fini(&ph);
}

/* Under 2 GiB a node groups by 2 MiB: single-frame tables share a block,
 * rather than the holes that movable frames left everywhere. */
static void small_node_groups_by_2m(void)
{
	struct hm_phys ph;
	uint32_t f[300], m[1200];

	REQUIRE(hm_phys_init(&ph, 64 * MiB, 1, false) == 0);
	CHECK_EQ(ph.nodes[0].group_shift, HM_PMD_ORDER);
	for (unsigned i = 0; i < 1200; i++)
		REQUIRE((m[i] = hm_alloc_pages(&ph, 0, 0, 0)) != HM_PFN_NONE);
	for (unsigned i = 0; i < 1200; i += 2)
		hm_free_pages(&ph, m[i], 0);
	for (unsigned i = 0; i < 300; i++)
		REQUIRE((f[i] = hm_alloc_pages(&ph, 0, 0, HM_ALLOC_UNMOVABLE)) != HM_PFN_NONE);
	CHECK_EQ(unmovable_regions(&ph), 1);
	for (unsigned i = 0; i < 300; i++)
		hm_free_unmovable(&ph, f[i], 0);
	for (unsigned i = 1; i < 1200; i += 2)
		hm_free_pages(&ph, m[i], 0);
	CHECK_EQ(unmovable_regions(&ph), 0);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_phys_fini(&ph);
}

/* Without grouping (the measurement's knob) tables go where folios go. */
static void knob_off_spreads(void)
{
	struct hm_phys ph;
	struct hm_ptcache pc;
	uint32_t t[4];

	REQUIRE(hm_phys_init(&ph, 4 * GiB, 1, false) == 0);
	REQUIRE(hm_ptcache_init(&pc, &ph, false) == 0);
	ph.no_grouping = true;
	uint32_t d = hm_alloc_pages(&ph, 0, 0, 0);
	t[0] = hm_pt_alloc(&pc, 0, 1);
	CHECK_EQ(t[0] >> HM_PUD_ORDER, d >> HM_PUD_ORDER);
	ph.no_grouping = false;
	hm_pt_free(&pc, t[0]);
	hm_free_pages(&ph, d, 0);
	hm_ptcache_fini(&pc);
	CHECK_EQ(unmovable_regions(&ph), 0);
	hm_phys_fini(&ph);
}

/* Frames freed into the window merge there and are not handed out; the
 * window's block is taken whole once free, or given back. */
static void window(void)
{
	struct hm_phys ph;
	static uint32_t got[2048];
	unsigned n = 0;
	uint32_t p;

	REQUIRE(hm_phys_init(&ph, 8 * MiB, 1, false) == 0);
	while ((p = hm_alloc_pages(&ph, 0, 0, 0)) != HM_PFN_NONE)
		got[n++] = p;
	CHECK_EQ(n, 2048);
	/* Block [0, 512) all free but frame 7. */
	for (uint32_t f = 0; f < 512; f++)
		if (f != 7)
			hm_free_pages(&ph, f, 0);
	CHECK_EQ(hm_window_open(&ph, 0, 0, HM_PMD_ORDER), 0);
	CHECK_EQ(hm_window_open(&ph, 0, 512, HM_PMD_ORDER), -EBUSY);
	CHECK_EQ(hm_alloc_pages(&ph, 0, 0, 0), HM_PFN_NONE);	/* all in the window */
	CHECK_EQ(hm_window_close(&ph, 0, true), HM_PFN_NONE);	/* 7 still used */
	p = hm_alloc_pages(&ph, 0, 0, 0);			/* given back */
	CHECK(p < 512);
	hm_free_pages(&ph, p, 0);
	/* Again, and this time the block empties: it merges in the window,
	 * not beyond, and is taken whole. */
	CHECK_EQ(hm_window_open(&ph, 0, 0, HM_PMD_ORDER), 0);
	hm_free_pages(&ph, 7, 0);
	CHECK_EQ(ph.pages[0].buddy, HM_PMD_ORDER + 1);
	CHECK_EQ(hm_alloc_pages(&ph, 0, 0, 0), HM_PFN_NONE);
	CHECK_EQ(hm_alloc_pages(&ph, 0, HM_PMD_ORDER, 0), HM_PFN_NONE);
	CHECK_EQ(hm_window_close(&ph, 0, true), 0);
	CHECK_EQ(ph.nr_free, 0);
	CHECK_EQ(hm_window_open(&ph, 0, 0, HM_PMD_ORDER), 0);	/* in use: opens */
	CHECK_EQ(hm_window_close(&ph, 0, true), HM_PFN_NONE);
	hm_free_pages(&ph, 0, HM_PMD_ORDER);
	CHECK_EQ(hm_window_open(&ph, 0, 0, HM_PMD_ORDER), -EEXIST);
	for (unsigned i = 0; i < n; i++)
		if (got[i] >= 512)
			hm_free_pages(&ph, got[i], 0);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_pcp_drain_all(&ph, -1);	/* the 4 KiB frames merge once drained */
	CHECK_EQ(ph.nodes[0].nr_blocks[11], 1);
	hm_phys_fini(&ph);
}

/*
 * The measurement: a seeded random workload over a 4 GiB system (mmap,
 * fault 4 KiB and 2 MiB pages, munmap, fork, mprotect splits), then how
 * many 1 GiB blocks hold no unmovable frame. HM_GROUPING_STEPS sets its
 * length (default 500, a few seconds, for the suite).
 */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t workload(bool grouping, unsigned steps, uint64_t *tables)
{
	struct hm_config cfg;
	struct hm_mm *mms[6] = { 0 };
	uint64_t seed = 42;

	t_config(&cfg, 4 * GiB, HM_THP_NEVER, HM_THP_MADVISE, HM_DEPOSIT_EAGER);
	cfg.flags = 0;
	struct hm_system *sys = t_system_cfg(&cfg);
	sys->phys.no_grouping = !grouping;
	CHECK_EQ(hm_mm_create(sys, &mms[0]), 0);
	for (unsigned i = 0; i < steps; i++) {
		unsigned k = rnd(&seed) % 6;
		uint64_t r = rnd(&seed), a;
		struct hm_mm *mm = mms[k];

		if (!mm) {
			if (k && mms[0] && r % 2)
				(void)hm_fork(mms[0], &mms[k]);
			else
				(void)hm_mm_create(sys, &mms[k]);
			continue;
		}
		switch (r % 8) {
		case 0: case 1: case 2: {
			/* Scattered 4 KiB pages: a table per 2 MiB touched. */
			uint64_t len = (1 + r / 8 % 64) * 2 * MiB;
			if (hm_mmap(mm, 0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, &a))
				break;
			(void)hm_madvise(mm, a, len, (r >> 20) % 2 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
			for (uint64_t off = 0; off < len; off += 4096 * (1 + (r >> 24) % 64)) {
				uint64_t v = off;
				if (hm_write(mm, a + off, &v, sizeof(v)))
					break;
			}
			break;
		}
		case 3: case 4: {
			/* Unmap a random piece of what is mapped. */
			uint64_t addr = HM_MIN_ADDR + (r / 8 % (1ull << 20)) * 2 * MiB;
			(void)hm_munmap(mm, addr & ~(2 * MiB - 1), (1 + r / 16 % 256) * 2 * MiB);
			hm_munmap(mm, 0x7f0000000000ull - (r % 4096) * 64 * MiB, (r % 64 + 1) * 64 * MiB);
			break;
		}
		case 5:
			/* Split huge pages by mprotect of a part. */
			(void)hm_mprotect(mm, 0x7e0000000000ull + (r / 8 % (1ull << 16)) * 4096, 4096, PROT_READ);
			(void)hm_mprotect(mm, 0x7f0000000000ull - (r / 8 % (1ull << 18)) * 4096, 8192, PROT_READ);
			break;
		case 6:
			if (k) {
				hm_mm_destroy(mm);
				mms[k] = NULL;
			}
			break;
		case 7: {
			uint64_t fr = 0;
			hm_stat(sys, "nr_free_pages", &fr);
			if (fr < 128 * MiB / 4096 && k) {	/* keep room */
				hm_mm_destroy(mm);
				mms[k] = NULL;
			}
			break;
		}
		}
	}
	hm_drain(sys);
	STEP(sys);
	if (getenv("HM_GROUPING_VERBOSE"))
		for (uint32_t r = 0; r < sys->phys.nodes[0].nr_regions; r++)
			fprintf(stderr, "  region %u: %u unmovable frames\n", r, sys->phys.nodes[0].unmovable[r]);
	uint64_t possible = t_stat(sys, "nr_free_1g_possible");
	*tables = t_stat(sys, "pgtable_bytes") >> 12;
	for (int k = 0; k < 6; k++)
		if (mms[k])
			hm_mm_destroy(mms[k]);
	hm_system_destroy(sys);
	return possible;
}

static void measure(void)
{
	const char *e = getenv("HM_GROUPING_STEPS");
	unsigned steps = e ? (unsigned)atoi(e) : 500;
	uint64_t t1, t0;
	uint64_t with = workload(true, steps, &t1);
	uint64_t without = workload(false, steps, &t0);

	fprintf(stderr, "grouping: after %u random steps on 4 GiB, 1 GiB blocks compaction could free: "
		"%llu with grouping (%llu tables), %llu without (%llu tables)\n", steps,
		(unsigned long long)with, (unsigned long long)t1, (unsigned long long)without,
		(unsigned long long)t0);
	CHECK(with >= 2);
	CHECK(with > without);
}

T_MAIN(T(tables_group), T(small_node_groups_by_2m), T(knob_off_spreads), T(window), T(measure))
