/* SPDX-License-Identifier: MIT */
/* Zeroing routines (clear.c): each one the CPU has zeroes exactly its
 * range, and huge pages are zeroed with one the CPU has; huge blocks'
 * descriptors are written whole as they should be. */
#include <pthread.h>
#include <stdlib.h>

#include "harness.h"
#include "../../src/phys/phys.h"

#define GUARD 4096u

/* Bytes of [p, p + len) that are not @v. */
static size_t count_not(const uint8_t *p, size_t len, uint8_t v)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += p[i] != v;
	return n;
}

static void variants(void)
{
	/* Sizes down to the smallest allowed, offsets that are 64 apart from
	 * a page boundary: a routine that rounds or overruns shows. */
	static const size_t lens[] = { 256, 4096, 64 * 1024 + 256, 2u << 20 };
	static const size_t offs[] = { 0, 64, 4096 - 64 };
	uint8_t *buf = aligned_alloc(4096, GUARD + (2u << 20) + 4096 + GUARD);
	unsigned have = 0;

	REQUIRE(buf);
	for (unsigned k = 0; k < HM_CLEAR_NR; k++) {
		if (!hm_clear_supported(k)) {
			fprintf(stderr, "  clear: %s skipped: this CPU lacks it\n", hm_clear_name(k));
			continue;
		}
		have++;
		for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
			for (size_t o = 0; o < sizeof(offs) / sizeof(offs[0]); o++) {
				uint8_t *p = buf + GUARD + offs[o];
				size_t len = lens[l];

				memset(buf, 0xa5, GUARD + (2u << 20) + 4096 + GUARD);
				hm_clear_with(k, p, len);
				CHECK_EQ(count_not(p, len, 0), 0);
				CHECK_EQ(count_not(buf, GUARD + offs[o], 0xa5), 0);
				CHECK_EQ(count_not(p + len, GUARD, 0xa5), 0);
			}
		}
	}
	CHECK(hm_clear_supported(HM_CLEAR_MEMSET));
	CHECK(have >= 1);
	CHECK(!hm_clear_supported(HM_CLEAR_NR));
	free(buf);
}

/* Two threads zero huge pages at once while the first zeroings of the
 * process take turns among the routines (the calibration's counters are
 * shared): every page comes out zero. Runs before selection(), while the
 * calibration is still under way. */
struct zero_arg {
	struct hm_phys *ph;
	uint32_t pfn;
	size_t bad;
};

static void *zero_thread(void *arg)
{
	struct zero_arg *a = arg;

	for (int r = 0; r < 16; r++) {
		memset(hm_pfn_ptr(a->ph, a->pfn), 0x5a, 2 * MiB);
		hm_zero_pages(a->ph, a->pfn, HM_PMD_ORDER);
		a->bad += count_not(hm_pfn_ptr(a->ph, a->pfn), 2 * MiB, 0);
	}
	return NULL;
}

static void calibration_threads(void)
{
	struct hm_phys ph;
	struct zero_arg a[2];
	pthread_t t[2];

	REQUIRE(hm_phys_init(&ph, 8 * MiB, 1, false) == 0);
	for (int i = 0; i < 2; i++) {
		a[i] = (struct zero_arg){ .ph = &ph, .pfn = hm_alloc_pages(&ph, 0, HM_PMD_ORDER, 0) };
		REQUIRE(a[i].pfn != HM_PFN_NONE);
		REQUIRE(pthread_create(&t[i], NULL, zero_thread, &a[i]) == 0);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ(a[i].bad, 0);
		hm_free_pages(&ph, a[i].pfn, HM_PMD_ORDER);
	}
	CHECK(hm_clear_supported(hm_clear_selected()));
	hm_phys_fini(&ph);
}

/* The first huge zeroings take turns among the routines and time them
 * (calibration); before, during and after, every huge page comes out zero
 * and its neighbours untouched, and the routine selected is one the CPU
 * has. */
static void selection(void)
{
	struct hm_phys ph;
	unsigned k = hm_clear_selected();

	CHECK(k < HM_CLEAR_NR && hm_clear_supported(k));
	REQUIRE(hm_phys_init(&ph, 16 * MiB, 1, false) == 0);
	uint32_t a = hm_alloc_pages(&ph, 0, HM_PMD_ORDER, 0);
	uint32_t b = hm_alloc_pages(&ph, 0, HM_PMD_ORDER, 0);
	uint32_t c = hm_alloc_pages(&ph, 0, HM_PMD_ORDER, 0);

	REQUIRE(a != HM_PFN_NONE && b != HM_PFN_NONE && c != HM_PFN_NONE);
	/* More rounds than calibration takes samples (4 per routine). */
	for (int r = 0; r < 24; r++) {
		memset(hm_pfn_ptr(&ph, a), 0x11, 2 * MiB);
		memset(hm_pfn_ptr(&ph, b), 0x22, 2 * MiB);
		memset(hm_pfn_ptr(&ph, c), 0x33, 2 * MiB);
		hm_zero_pages(&ph, b, HM_PMD_ORDER);
		CHECK_EQ(count_not(hm_pfn_ptr(&ph, b), 2 * MiB, 0), 0);
		CHECK_EQ(count_not(hm_pfn_ptr(&ph, a), 2 * MiB, 0x11), 0);
		CHECK_EQ(count_not(hm_pfn_ptr(&ph, c), 2 * MiB, 0x33), 0);
	}
	k = hm_clear_selected();
	CHECK(k < HM_CLEAR_NR && hm_clear_supported(k));
	fprintf(stderr, "  clear: huge pages are zeroed with %s\n", hm_clear_name(k));
	/* 4 KiB pages (memset) too. */
	memset(hm_pfn_ptr(&ph, a), 0x11, 3 * HM_PAGE_SIZE);
	hm_zero_pages(&ph, a + 1, 0);
	CHECK_EQ(count_not(hm_pfn_ptr(&ph, a), HM_PAGE_SIZE, 0x11), 0);
	CHECK_EQ(count_not(hm_pfn_ptr(&ph, a + 1), HM_PAGE_SIZE, 0), 0);
	CHECK_EQ(count_not(hm_pfn_ptr(&ph, a + 2), HM_PAGE_SIZE, 0x11), 0);
	hm_free_pages(&ph, a, HM_PMD_ORDER);
	hm_free_pages(&ph, b, HM_PMD_ORDER);
	hm_free_pages(&ph, c, HM_PMD_ORDER);
	hm_phys_fini(&ph);
}

/* Whether the descriptor at @pg is all zero but for its first word, which
 * is @first (flags, order, spare, spare2, buddy: little-endian). */
static bool desc_is(const struct hm_page *pg, uint64_t first)
{
	uint64_t w[sizeof(*pg) / 8];

	memcpy(w, pg, sizeof(w));
	if (w[0] != first)
		return false;
	for (size_t i = 1; i < sizeof(w) / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* Descriptors that a block's allocation marks as tails and its free
 * resets, a huge one's whole lines with streaming stores: every tail
 * becomes exactly (PG_TAIL, order) and nothing else (orders 9 and 18: it
 * stays zero, and reads as an unmarked tail of its head), the head and the
 * descriptors beside the block stay as they were, and at free all go back
 * to zero, map counts left on tails included, but the free block's head
 * (buddy and list links). Orders 9 and 18 (the streaming path) and 3 (the
 * plain one). */
static void descriptors(void)
{
	static const unsigned orders[] = { 3, HM_PMD_ORDER, HM_PUD_ORDER };
	struct hm_phys ph;

	REQUIRE(hm_phys_init(&ph, 2 * GiB, 1, false) == 0);
	for (size_t k = 0; k < sizeof(orders) / sizeof(orders[0]); k++) {
		unsigned order = orders[k];
		uint32_t n = 1u << order;
		uint32_t pfn = hm_alloc_pages(&ph, 0, order, 0);

		REQUIRE(pfn != HM_PFN_NONE);
		struct hm_page *pg = hm_pfn_page(&ph, pfn);
		struct hm_page after = pfn + n < ph.nr_frames ? pg[n] : pg[0];
		struct hm_page below = pfn ? pg[-1] : pg[0];

		pg[0].flags = PG_HEAD;
		pg[0].order = (uint8_t)order;
		struct hm_page before = pg[0];
		hm_pages_mark_tails(&ph, pfn, order);
		CHECK(!memcmp(&pg[0], &before, sizeof(before)));
		uint32_t bad = 0;
		uint64_t tail = order >= HM_PMD_ORDER ? 0 : PG_TAIL | (uint64_t)order << 32;
		for (uint32_t i = 1; i < n; i++)
			bad += !desc_is(&pg[i], tail);
		CHECK_EQ(bad, 0);
		if (order >= HM_PMD_ORDER) {
			CHECK_EQ(hm_unmarked_head(&ph, pfn + 1), pfn);
			CHECK_EQ(hm_unmarked_head(&ph, pfn + n - 1), pfn);
			CHECK_EQ(hm_unmarked_head(&ph, pfn + HM_PTRS), order == HM_PMD_ORDER ? HM_PFN_NONE : pfn);
			CHECK_EQ(hm_unmarked_head(&ph, pfn), HM_PFN_NONE);	/* the head */
			pg[0].order = 3;	/* neither 9 nor 18 */
			CHECK_EQ(hm_unmarked_head(&ph, pfn + 1), HM_PFN_NONE);
			pg[0].order = (uint8_t)order;
			if (order == HM_PUD_ORDER) {	/* split to order 9: the 2 MiB head */
				pg[HM_PTRS].flags = PG_HEAD;
				pg[HM_PTRS].order = HM_PMD_ORDER;
				CHECK_EQ(hm_unmarked_head(&ph, pfn + HM_PTRS + 1), pfn + HM_PTRS);
				CHECK_EQ(hm_unmarked_head(&ph, pfn + 2 * HM_PTRS + 1), pfn);
				pg[HM_PTRS].flags = 0;
				pg[HM_PTRS].order = 0;
			}
		}
		/* What a mapping split leaves on tails, the free must clear. */
		pg[1].mapcount = -1;
		pg[n - 1].pmd_mapcount = 2;
		pg[n - 1].pte_all = 3;
		if (pfn + n < ph.nr_frames)
			CHECK(!memcmp(&pg[n], &after, sizeof(after)));
		if (pfn)
			CHECK(!memcmp(&pg[-1], &below, sizeof(below)));

		hm_free_pages(&ph, pfn, order);
		bad = 0;
		for (uint32_t i = 1; i < n; i++)
			bad += !desc_is(&pg[i], 0);
		CHECK_EQ(bad, 0);
		CHECK_EQ(pg[0].flags, 0);
		CHECK_EQ(pg[0].order, 0);
		CHECK_EQ(pg[0].mapcount, 0);
	}
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_phys_fini(&ph);
}

T_MAIN(T(variants), T(calibration_threads), T(selection), T(descriptors))
