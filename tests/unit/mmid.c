/* SPDX-License-Identifier: MIT */
/*
 * mm ids: mm->id is 64 bits and never reused (the software TLB tags with
 * it); a folio's two mm slots hold mm->slot_id, which is unique among live
 * mms and reused after destroy, so it fits 32 bits without wrapping.
 */
#include "harness.h"
#include "../../src/mm/mm.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define N 40

/* Slot ids of the live mms among @mms are pairwise distinct. */
static unsigned duplicates(struct hm_mm **mms, unsigned n)
{
	unsigned dup = 0;

	for (unsigned i = 0; i < n; i++)
		for (unsigned j = i + 1; j < n; j++)
			dup += mms[i] && mms[j] && mms[i]->slot_id == mms[j]->slot_id;
	return dup;
}

static void unique_and_reused(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_MADVISE, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm[N];
	bool freed[N] = { false };
	unsigned big = 0, fresh = 0;

	for (unsigned i = 0; i < N; i++)
		REQUIRE(hm_mm_create(sys, &mm[i]) == 0);
	CHECK_EQ(duplicates(mm, N), 0);
	for (unsigned i = 0; i < N; i++)
		big += mm[i]->slot_id >= N;
	CHECK_EQ(big, 0);	/* ids stay as small as the live count */
	for (unsigned i = 1; i < N; i++)
		CHECK(mm[i]->id > mm[i - 1]->id);
	uint64_t last_id = mm[N - 1]->id;

	/* Destroy every other one, then create as many again: they get the
	 * freed slot ids, and new, never-used 64-bit ids. */
	for (unsigned i = 0; i < N; i += 2) {
		freed[mm[i]->slot_id] = true;
		hm_mm_destroy(mm[i]);
		mm[i] = NULL;
	}
	STEP(sys);
	CHECK_EQ(t_stat(sys, "nr_mms"), N / 2);
	for (unsigned i = 0; i < N; i += 2) {
		REQUIRE(hm_mm_create(sys, &mm[i]) == 0);
		fresh += !freed[mm[i]->slot_id];
		freed[mm[i]->slot_id] = false;	/* taken again */
		CHECK(mm[i]->id > last_id);
	}
	CHECK_EQ(fresh, 0);
	CHECK_EQ(duplicates(mm, N), 0);
	STEP(sys);
	/* The most recently released id comes back first. */
	uint32_t s = mm[3]->slot_id;
	hm_mm_destroy(mm[3]);
	REQUIRE(hm_mm_create(sys, &mm[3]) == 0);
	CHECK_EQ(mm[3]->slot_id, s);
	for (unsigned i = 0; i < N; i++)
		hm_mm_destroy(mm[i]);
	CHECK_EQ(t_stat(sys, "nr_mms"), 0);
	hm_system_destroy(sys);
}

/* The pool grows when all its ids are live; if it cannot, hm_mm_create
 * fails with -ENOMEM having changed nothing. */
static void create_fails_cleanly(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_MADVISE, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm[N], *extra = NULL;
	unsigned n = 0;

	/* Fill the pool's first allocation exactly. */
	while (n < N && (n == 0 || sys->next_slot_id < sys->cap_slot_ids))
		REQUIRE(hm_mm_create(sys, &mm[n++]) == 0);
	REQUIRE(sys->next_slot_id == sys->cap_slot_ids);
	uint64_t free0 = t_stat(sys, "nr_free_pages"), tables0 = t_stat(sys, "pgtable_bytes");
	uint32_t next0 = sys->next_slot_id, cap0 = sys->cap_slot_ids;

	/* The 1st allocation is the mm itself, the 2nd the pool's growth. */
	hm__fail_arm(sys, 2, false);
	CHECK_EQ(hm_mm_create(sys, &extra), -ENOMEM);
	CHECK_EQ(hm__fail_hits(sys), 1);
	hm__fail_arm(sys, 0, false);
	CHECK(extra == NULL);
	CHECK_EQ(t_stat(sys, "nr_mms"), n);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), free0);
	CHECK_EQ(t_stat(sys, "pgtable_bytes"), tables0);
	CHECK_EQ(sys->next_slot_id, next0);
	CHECK_EQ(sys->cap_slot_ids, cap0);
	CHECK_EQ(sys->nr_free_slot_ids, 0);
	STEP(sys);
	REQUIRE(hm_mm_create(sys, &extra) == 0);
	CHECK_EQ(extra->slot_id, next0);
	hm_mm_destroy(extra);
	for (unsigned i = 0; i < n; i++)
		hm_mm_destroy(mm[i]);
	hm_system_destroy(sys);
}

/*
 * Two mms whose 64-bit ids agree in their low 32 bits share a 1 GiB folio
 * after fork. The folio's mm slots used to hold (uint32_t)mm->id: both
 * landed in one slot, the parent looked like the folio's only mapper, and
 * its write reused the page in place, where the child could see it.
 */
static void ids_past_2_32(void)
{
	struct hm_system *sys = t_system(2 * GiB, HM_THP_MADVISE, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *parent, *child;
	struct hm_mapping m;
	uint64_t a, v = 1, got = 0;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	CHECK_EQ(hm_mmap(parent, 0, GiB, RW, PA, &a), 0);
	CHECK_EQ(hm_madvise(parent, a, GiB, MADV_HUGEPAGE), 0);
	CHECK_EQ(hm_write(parent, a, &v, 8), 0);
	CHECK_EQ(hm_query(parent, a, &m), 0);
	REQUIRE(m.size == GiB);
	hm__mm_id_skip_to(parent->id + (1ull << 32));
	REQUIRE(hm_fork(parent, &child) == 0);
	CHECK_EQ(child->id, parent->id + (1ull << 32));
	CHECK_EQ((uint32_t)child->id, (uint32_t)parent->id);
	CHECK(child->slot_id != parent->slot_id);
	STEP(sys);

	CHECK_EQ(hm_query(parent, a, &m), 0);
	CHECK_EQ(m.size, GiB);
	CHECK_EQ(m.mapcount, 2);
	CHECK(!m.exclusive);
	v = 2;
	CHECK_EQ(hm_write(parent, a, &v, 8), 0);
	CHECK_EQ(t_stat(sys, "cow_reuse"), 0);
	CHECK_EQ(hm_read(child, a, &got, 8), 0);
	CHECK_EQ(got, 1);
	CHECK_EQ(hm_read(parent, a, &got, 8), 0);
	CHECK_EQ(got, 2);
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(parent);
	hm_system_destroy(sys);
}

T_MAIN(T(unique_and_reused), T(create_fails_cleanly), T(ids_past_2_32))
