/* SPDX-License-Identifier: MIT */
/*
 * fork's batched PTE copy (mm/fork.c copy_ptes): map counts taken a run of
 * pages of one folio at a time and leaves counted once per table must come
 * out exactly as one count per page would (hm_check recounts everything
 * after each step), for runs that end at a hole, at a folio's end, at a
 * frame that is not the next one, and for runs of consecutive frames that
 * belong to different folios. And the plain store that write-protects a
 * PTE whose A and D bits are both set must not be used when one is not.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "race.h"
#include "../../src/mm/mm.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define STOP_MS 10000

static hm_pte_t *leaf(struct hm_mm *mm, uint64_t va, unsigned *level)
{
	return hm_pt_walk(mm_phys(mm), mm->root, mm->sys->top, va, level);
}

static unsigned mapcount(struct hm_mm *mm, uint64_t va)
{
	struct hm_mapping m;

	return hm_query(mm, va, &m) ? ~0u : m.mapcount;
}

/*
 * Two 2 MiB pages mapped by PTEs (one whole, one with holes), and 4 KiB
 * pages whose frames follow one another: fork twice, write in the
 * children, unmap, and check every step.
 */
static void counts_exact(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *parent, *child, *grandchild;
	uint64_t a, b;
	unsigned level;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, 4 * MiB, RW, PA, &a) == 0);
	for (uint64_t off = 0; off < 4 * MiB; off += 4096)
		t_poke(parent, a + off, off + 1);
	REQUIRE(leaf(parent, a, &level) && level == 1);
	/* the first 2 MiB page: a PTE table through mprotect, then holes */
	CHECK_EQ(hm_mprotect(parent, a + 5 * 4096, 4096, PROT_READ), 0);
	CHECK_EQ(hm_munmap(parent, a + 10 * 4096, 10 * 4096), 0);
	CHECK_EQ(hm_munmap(parent, a + 100 * 4096, 4096), 0);
	CHECK_EQ(hm_munmap(parent, a + 511 * 4096, 4096), 0);
	/* the second: split whole */
	CHECK_EQ(hm__split(parent, a + 2 * MiB, 0), 0);
	STEP(sys);
	/* 4 KiB pages, faulted one after another */
	REQUIRE(hm_mmap(parent, 0, 64 * 4096, RW, PA, &b) == 0);
	CHECK_EQ(hm_madvise(parent, b, 64 * 4096, MADV_NOHUGEPAGE), 0);
	for (uint64_t off = 0; off < 64 * 4096; off += 4096)
		t_poke(parent, b + off, off + 7);
	unsigned next = 0;	/* consecutive frames of different folios */
	for (uint64_t off = 4096; off < 64 * 4096; off += 4096) {
		uint32_t p0 = pt_pfn(pt_get(leaf(parent, b + off - 4096, &level)), 0);
		uint32_t p1 = pt_pfn(pt_get(leaf(parent, b + off, &level)), 0);

		next += p1 == p0 + 1;
	}
	CHECK(next > 0);	/* else this case tests less than it says */
	STEP(sys);

	REQUIRE(hm_fork(parent, &child) == 0);
	STEP(sys);
	CHECK_EQ(mapcount(parent, a), 2);
	CHECK_EQ(mapcount(child, a + 9 * 4096), 2);
	CHECK_EQ(mapcount(child, a + 2 * MiB + 511 * 4096), 2);
	CHECK_EQ(mapcount(child, b + 63 * 4096), 2);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 1024 + 64);	/* frames: the holes are queued for the deferred split */

	t_poke(child, a + 4096, 1);	/* copy-on-write in both kinds */
	t_poke(child, b + 4096, 1);
	STEP(sys);
	CHECK_EQ(mapcount(parent, a + 4096), 1);
	CHECK_EQ(mapcount(parent, b + 4096), 1);

	REQUIRE(hm_fork(child, &grandchild) == 0);
	STEP(sys);
	CHECK_EQ(mapcount(grandchild, a), 3);
	CHECK_EQ(mapcount(grandchild, a + 4096), 2);
	CHECK_EQ(mapcount(grandchild, b + 5 * 4096), 3);
	CHECK_EQ(t_peek(grandchild, a + 2 * MiB + 3 * 4096), 2 * MiB + 3 * 4096 + 1);
	CHECK_EQ(t_peek(grandchild, b + 5 * 4096), 5 * 4096 + 7);

	CHECK_EQ(hm_munmap(child, a, 4 * MiB), 0);
	STEP(sys);
	CHECK_EQ(mapcount(grandchild, a), 2);
	hm_mm_destroy(parent);
	STEP(sys);
	CHECK_EQ(mapcount(grandchild, a), 1);
	CHECK_EQ(mapcount(grandchild, b + 5 * 4096), 2);
	hm_mm_destroy(child);
	STEP(sys);
	CHECK_EQ(mapcount(grandchild, b + 5 * 4096), 1);
	hm_mm_destroy(grandchild);
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 0);
	hm_system_destroy(sys);
}

/*
 * A reader's write sets D in a writable PTE (tlb_fill, a compare-and-
 * exchange without any lock) after fork read the PTE and before fork
 * write-protects it. Fixed by the plain store only for PTEs whose A and D
 * are both set (nothing a reader may still set): this one had no D, so fork
 * uses the atomic update and D stays. Reverted (a plain store of what fork
 * read), D is lost: reclaim would take the page for clean.
 */
static void wrprotect_keeps_dirty(void)
{
	struct hm_system *sys;
	struct hm_mm *parent;
	uint64_t a;
	unsigned level;

	t_flags = 0;	/* hm_check would wait for the stopped fork */
	sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	t_flags = HM_CHECK;
	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, 4096, RW, PA, &a) == 0);
	t_poke(parent, a, 1);
	hm_pte_t *slot = leaf(parent, a, &level);
	REQUIRE(level == 0 && pt_writable(pt_get(slot)) && (pt_get(slot) & HM_PTE_D));
	pt_update(slot, HM_PTE_D, 0);	/* as after write-back */
	hm_tlb_flush(parent);		/* the next write fills again */

	struct t_op f = { .mm = parent };
	REQUIRE(hm__race_arm("fork_wrprotect", 0) == 0);
	pthread_t tf = t_spawn(t_do_fork, &f);
	REQUIRE(hm__race_wait("fork_wrprotect", STOP_MS) == 0);
	uint64_t v = 2;
	CHECK_EQ(hm_write(parent, a, &v, sizeof(v)), 0);	/* a fill: sets D */
	hm__race_release("fork_wrprotect");
	pthread_join(tf, NULL);
	hm__race_reset();
	REQUIRE(f.r == 0 && f.mm);
	hm_pte_t e = pt_get(slot);
	CHECK(!pt_writable(e));
	CHECK(e & HM_PTE_D);
	CHECK_EQ(t_peek(f.mm, a), 2);
	STEP(sys);
	hm_mm_destroy(f.mm);
	hm_mm_destroy(parent);
	STEP(sys);
	hm_system_destroy(sys);
}

T_MAIN(T(counts_exact), T(wrprotect_keeps_dirty))
