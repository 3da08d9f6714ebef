/* SPDX-License-Identifier: MIT */
/* The buddy allocator: orders, alignment, exhaustion, merging, nodes. */
#include "harness.h"
#include "../../src/phys/phys.h"

static void orders_and_alignment(void)
{
	struct hm_phys ph;

	REQUIRE(hm_phys_init(&ph, 2 * GiB, 1, false) == 0);
	CHECK_EQ(ph.nr_free, ph.nr_frames);
	CHECK_EQ(ph.nodes[0].nr_blocks[HM_MAX_ORDER], 2);
	for (unsigned o = 0; o <= HM_MAX_ORDER; o += 3) {
		uint32_t p = hm_alloc_pages(&ph, 0, o, 0);

		CHECK(p != HM_PFN_NONE);
		CHECK_EQ(p & ((1u << o) - 1), 0);
		CHECK_EQ(ph.nr_free, ph.nr_frames - (1u << o));
		hm_free_pages(&ph, p, o);
	}
	/* Everything merged back. */
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
	CHECK_EQ(ph.nr_free, 0);
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
	CHECK_EQ(ph.nr_free, ph.nr_frames);
	CHECK_EQ(ph.nodes[0].nr_blocks[10], 1);	/* 4 MiB is one order-10 block */
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
	CHECK_EQ(ph.nr_free, ph.nr_frames);
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
	CHECK_EQ(ph.nr_free, ph.nr_frames);
	hm_phys_fini(&ph);
}

T_MAIN(T(orders_and_alignment), T(exhaustion_and_zero), T(failpoint), T(nodes))
