/* SPDX-License-Identifier: MIT */
/*
 * Copy-on-write of a page shared through the swap cache, with memory and
 * swap full: one write fault, called directly (hm_fault), so that what it
 * did to the page can be looked at before an access would fault again.
 */
#include "harness.h"
#include "../../src/mm/mm.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static bool swapped(struct hm_mm *mm, uint64_t va)
{
	struct hm_mapping m;

	return hm_query(mm, va, &m) == 0 && m.swapped;
}

/*
 * Parent and child share a page P through one swap slot; memory and swap
 * are then filled, and the parent reads P back: it is mapped read-only
 * from the swap cache, clean, and is the only page reclaim could free. A
 * write fault on it copies, and the copy's allocation must not reclaim P
 * itself: that would free the copy again (its source gone), the next
 * fault would read P back from the frames kept for swap-ins, and the
 * write would loop for ever (hmfuzz -s 182 -c 1). With P pinned across
 * the allocation, the fault says -ENOMEM and P stays mapped; once memory
 * is freed the write copies. Reverted (the copy allocated before the
 * source is pinned), the fault returns 0 with P back in swap.
 */
static void cow_keeps_source_when_full(void)
{
	struct hm_system *sys = t_system_swap(8 * MiB, 4 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm, *child;
	uint64_t p, b, len = 64 * MiB, off, freed = 0;
	int r = 0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4096, RW, PA, &p) == 0);
	t_poke(mm, p, 0x5eed);
	REQUIRE(hm_fork(mm, &child) == 0);
	CHECK_EQ(hm_reclaim(sys, 64 * MiB, &freed), 0);
	CHECK(swapped(mm, p) && swapped(child, p));
	STEP(sys);

	/* Memory and swap full. */
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &b) == 0);
	for (off = 0; off < len; off += 4096) {
		uint64_t v = off + 1;

		if ((r = hm_write(mm, b + off, &v, 8)))
			break;
	}
	CHECK_EQ(r, -ENOMEM);
	CHECK_EQ(t_stat(sys, "swap_free_pages"), 0);
	STEP(sys);

	/* P back, read-only: the child's swap entry still names its slot. */
	uint64_t hits = t_stat(sys, "swapin_cache_hit"), ins = t_stat(sys, "pswpin");
	CHECK_EQ(t_peek(mm, p), 0x5eed);
	CHECK_EQ(t_stat(sys, "pswpin"), ins + 1);
	struct hm_mapping m;
	REQUIRE(hm_query(mm, p, &m) == 0);
	CHECK(!m.swapped && m.size == 4096 && !(m.prot & PROT_WRITE) && !m.exclusive);

	/* The write fault: P is the copy's source, not its memory. */
	r = hm_fault(mm, p, true);
	CHECK_EQ(r, -ENOMEM);
	CHECK(!swapped(mm, p));
	CHECK_EQ(t_peek(mm, p), 0x5eed);
	CHECK_EQ(t_stat(sys, "pswpin"), ins + 1);	/* not read in again */
	CHECK_EQ(t_stat(sys, "swapin_cache_hit"), hits);
	STEP(sys);

	/* Memory freed: the write copies, and the child keeps the old data. */
	CHECK_EQ(hm_munmap(mm, b, len), 0);
	t_poke(mm, p, 0xc0de);
	CHECK_EQ(t_peek(mm, p), 0xc0de);
	CHECK_EQ(t_peek(child, p), 0x5eed);
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "swap_free_pages"), t_stat(sys, "swap_total_pages"));
	hm_system_destroy(sys);
}

/* STEP() checks every step; HM_CHECK after every access would be slow. */
static void no_auto_check(void) { t_flags = 0; }

T_MAIN(T(no_auto_check), T(cow_keeps_source_when_full))
