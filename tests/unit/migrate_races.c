/* SPDX-License-Identifier: MIT */
/*
 * Races of migration (issue 9), each made deterministic with a race point:
 * the migration is stopped once its migration entries are in place
 * (migrate_unmapped, before the grace period) or just before the copy
 * (migrate_copy), and the other operation runs there. Each test says which
 * fix, reverted, makes it fail.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "race.h"
#include "node_hold.h"

#define HOLD_MS 200
#define STOP_MS 10000

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static struct hm_system *race_system(int pmd, bool swap)
{
	struct hm_config cfg;

	t_flags = 0;
	t_config(&cfg, 64 * MiB, HM_THP_NEVER, pmd, HM_DEPOSIT_EAGER);
	cfg.nr_nodes = 2;
	if (swap) {
		cfg.swap_path = t_swap_path();
		cfg.swap_bytes = 16 * MiB;
	}
	return t_system_cfg(&cfg);
}

static pthread_t start_migration(struct t_op *mo, const char *point)
{
	if (hm__race_arm(point, 0)) {
		fprintf(stderr, "cannot arm %s\n", point);
		exit(2);
	}
	pthread_t t = t_spawn(t_do_migrate, mo);
	if (hm__race_wait(point, STOP_MS)) {
		fprintf(stderr, "migration never reached %s\n", point);
		exit(2);
	}
	return t;
}

/*
 * A write to a page whose leaf is a migration entry waits until the page is
 * on its new frames, and lands there. Reverted (fault_mapped without its
 * migration_wait branch), the fault takes the entry for a bad access and
 * the write fails with -EFAULT at once.
 */
static void fault_waits_for_migration(void)
{
	for (int huge = 0; huge < 2; huge++) {
		struct hm_system *sys = race_system(huge ? HM_THP_ALWAYS : HM_THP_NEVER, false);
		struct hm_mm *mm;
		struct hm_mapping m;
		uint64_t a, len = huge ? 2 * MiB : 4096, v = 0xbeef;

		REQUIRE(hm_mm_create(sys, &mm) == 0);
		REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
		t_poke(mm, a + len - 8, 0x5eed);
		struct t_op mo = { .mm = mm, .va = a, .len = len, .node = 1 };
		pthread_t tm = start_migration(&mo, "migrate_unmapped");

		REQUIRE(hm__race_arm("fault_migration_entry", 0) == 0);
		struct t_op w = { .mm = mm, .va = a + 8, .len = 8, .buf = &v };
		pthread_t tw = t_spawn(t_do_write, &w);
		CHECK_EQ(hm__race_wait("fault_migration_entry", STOP_MS), 0);
		hm__race_release("fault_migration_entry");
		CHECK(!t_join_within(tw, HOLD_MS));	/* waiting */
		hm__race_release("migrate_unmapped");
		CHECK(t_join_within(tm, STOP_MS));
		CHECK(t_join_within(tw, STOP_MS));
		CHECK_EQ(mo.r, 0);
		CHECK_EQ(w.r, 0);
		CHECK_EQ(hm_query(mm, a + 8, &m), 0);
		CHECK_EQ(m.node, 1);
		CHECK_EQ(m.size, len);
		CHECK_EQ(t_peek(mm, a + 8), 0xbeef);
		CHECK_EQ(t_peek(mm, a + len - 8), 0x5eed);
		hm__race_reset();
		STEP(sys);
		hm_mm_destroy(mm);
		hm_system_destroy(sys);
	}
}

/*
 * A copy-on-write in the child of a page shared with the parent that is
 * being moved waits for the move, then copies from the new frames: the
 * child sees its write, the parent its old data on the new node. Reverted
 * as above, the child's write fails with -EFAULT.
 */
static void cow_during_migration(void)
{
	struct hm_system *sys = race_system(HM_THP_NEVER, false);
	struct hm_mm *mm, *child;
	struct hm_mapping m;
	uint64_t a, v = 0xc0c0;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4096, RW, PA, &a) == 0);
	t_poke(mm, a, 0xaaaa);
	REQUIRE(hm_fork(mm, &child) == 0);
	struct t_op mo = { .mm = mm, .va = a, .len = 4096, .node = 1 };
	pthread_t tm = start_migration(&mo, "migrate_unmapped");
	struct t_op w = { .mm = child, .va = a, .len = 8, .buf = &v };
	pthread_t tw = t_spawn(t_do_write, &w);

	CHECK(!t_join_within(tw, HOLD_MS));
	hm__race_release("migrate_unmapped");
	CHECK(t_join_within(tm, STOP_MS));
	CHECK(t_join_within(tw, STOP_MS));
	CHECK_EQ(mo.r, 0);
	CHECK_EQ(w.r, 0);
	CHECK_EQ(t_peek(child, a), 0xc0c0);
	CHECK_EQ(t_peek(mm, a), 0xaaaa);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.node, 1);
	CHECK_EQ(m.mapcount, 1);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * An munmap of pages being copied waits for the copy (migration holds
 * mmap_lock for reading until every entry is a leaf again), then frees the
 * new frames: every frame is back. Reverted (the lockset released before
 * the copy), the munmap finds migration entries it does not know and the
 * frames are lost (hm_check, nr_free_pages).
 */
static void munmap_during_copy(void)
{
	struct hm_system *sys = race_system(HM_THP_ALWAYS, false);
	struct hm_mm *mm;
	uint64_t a, free0 = t_stat(sys, "nr_free_pages");

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t base = t_stat(sys, "nr_free_pages");
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, 4 * MiB, 8), 0);
	struct t_op mo = { .mm = mm, .va = a, .len = 4 * MiB, .node = 1 };
	pthread_t tm = start_migration(&mo, "migrate_copy");
	struct t_op u = { .mm = mm, .va = a, .len = 4 * MiB };
	pthread_t tu = t_spawn(t_do_munmap, &u);

	CHECK(!t_join_within(tu, HOLD_MS));	/* waits for mmap_lock */
	hm__race_release("migrate_copy");
	CHECK(t_join_within(tm, STOP_MS));
	CHECK(t_join_within(tu, STOP_MS));
	CHECK_EQ(mo.r, 0);
	CHECK_EQ(u.r, 0);
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), 1024);
	hm_drain(sys);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), base);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(mm);
	hm_drain(sys);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), free0);
	hm_system_destroy(sys);
}

/*
 * hm_query of a page being moved waits for it outside its RCU read
 * section, and reports the new node. Reverted (query.c spinning on the
 * entry inside the read section), the migration's grace period waits for
 * the query and the query for the migration: neither ends.
 */
static void query_during_migration(void)
{
	struct hm_system *sys = race_system(HM_THP_NEVER, false);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4096, RW, PA, &a) == 0);
	t_poke(mm, a, 1);
	struct t_op mo = { .mm = mm, .va = a, .len = 4096, .node = 1 };
	pthread_t tm = start_migration(&mo, "migrate_unmapped");
	struct t_op q = { .mm = mm, .va = a };
	pthread_t tq = t_spawn(t_do_query, &q);

	CHECK(!t_join_within(tq, HOLD_MS));
	hm__race_release("migrate_unmapped");
	bool done = t_join_within(tm, STOP_MS);
	CHECK(done);
	CHECK(t_join_within(tq, STOP_MS));
	if (done) {
		CHECK_EQ(q.r, 0);
		CHECK_EQ(q.m.node, 1);
		CHECK_EQ(q.m.size, 4096);
		hm__race_reset();
		STEP(sys);
		hm_mm_destroy(mm);
		hm_system_destroy(sys);
	}
}

/*
 * Reclaim of a page whose mapper has, at the same address in another mm of
 * its family, a page under migration (the child's copy after fork): the
 * reverse-map walk passes the migration entry by and the page goes to
 * swap. Reverted (hm_for_each_leaf_of taking a migration entry for a split
 * under way and looking again), reclaim spins until the migration ends,
 * and with it stopped never returns.
 */
static void reclaim_during_migration(void)
{
	struct hm_system *sys = race_system(HM_THP_NEVER, true);
	struct hm_mm *mm, *child;
	struct hm_mapping m;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4096, RW, PA, &a) == 0);
	t_poke(mm, a, 0x1111);
	REQUIRE(hm_fork(mm, &child) == 0);
	t_poke(child, a, 0x2222);	/* the child's own copy */
	hm_drain(sys);
	struct t_op mo = { .mm = child, .va = a, .len = 4096, .node = 1 };
	pthread_t tm = start_migration(&mo, "migrate_unmapped");
	struct t_op rc = { .sys = sys, .len = 64 * MiB };
	pthread_t tr = t_spawn(t_do_reclaim, &rc);
	bool done = t_join_within(tr, STOP_MS);

	CHECK(done);
	hm__race_release("migrate_unmapped");
	CHECK(t_join_within(tm, STOP_MS));
	if (!done)
		return;
	CHECK_EQ(rc.r, 0);
	CHECK_EQ(mo.r, 0);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK(m.swapped);	/* the parent's page went */
	CHECK_EQ(hm_query(child, a, &m), 0);
	CHECK_EQ(m.node, 1);	/* the child's moved */
	CHECK_EQ(t_peek(mm, a), 0x1111);
	CHECK_EQ(t_peek(child, a), 0x2222);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * MADV_PAGEOUT of a page being moved leaves it (it is isolated, its leaf a
 * migration entry) and returns; the page moves and stays readable.
 */
static void pageout_during_migration(void)
{
	struct hm_system *sys = race_system(HM_THP_NEVER, true);
	struct hm_mm *mm;
	struct hm_mapping m;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4096, RW, PA, &a) == 0);
	t_poke(mm, a, 0x3333);
	struct t_op mo = { .mm = mm, .va = a, .len = 4096, .node = 1 };
	pthread_t tm = start_migration(&mo, "migrate_unmapped");

	CHECK_EQ(hm_madvise(mm, a, 4096, MADV_PAGEOUT), 0);
	CHECK_EQ(t_stat(sys, "pswpout"), 0);
	hm__race_release("migrate_unmapped");
	CHECK(t_join_within(tm, STOP_MS));
	CHECK_EQ(mo.r, 0);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.node, 1);
	CHECK_EQ(t_peek(mm, a), 0x3333);
	CHECK_EQ(hm_madvise(mm, a, 4096, MADV_PAGEOUT), 0);
	CHECK_EQ(t_stat(sys, "pswpout"), 1);
	CHECK_EQ(t_peek(mm, a), 0x3333);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static struct hm_system *split_system(int cow, bool swap)
{
	struct hm_config cfg;

	t_flags = 0;	/* frames held by node_hold() are nobody's */
	t_config(&cfg, 64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	cfg.nr_nodes = 2;
	cfg.cow = cow;
	if (swap) {
		cfg.swap_path = t_swap_path();
		cfg.swap_bytes = 16 * MiB;
	}
	return t_system_cfg(&cfg);
}

static uint64_t size_at(struct hm_mm *mm, uint64_t va)
{
	struct hm_mapping m;

	return hm_query(mm, va, &m) ? 0 : m.size;
}

/* A 2 MiB page at a 2 MiB-aligned *a in @mm, holding @v. */
static void huge_page(struct hm_mm *mm, uint64_t *a, uint64_t v)
{
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, a) == 0);
	*a = (*a + 2 * MiB - 1) & ~(2 * MiB - 1);
	t_poke(mm, *a, v);
	REQUIRE(size_at(mm, *a) == 2 * MiB);
}

/*
 * Migration without a 2 MiB target splits the leaves of a 2 MiB page it
 * gave back; between its look at a mapper's leaf and the split, a 2 MiB
 * copy-on-write in that mapper puts a new 2 MiB page there. That page is
 * not the one to split: it stays huge (until a retry of the range moves
 * it, if it is the parent's). Reverted (split_folio calling hm_split_leaf,
 * which does not check the frame under the lock), the writer's new 2 MiB
 * page is split when the writer is the mapper looked at first.
 */
static void cow_before_leaf_split(void)
{
	/* Either mapper may be the one whose leaf is looked at first (the
	 * lockset's order): the writer is each in turn. */
	for (int w_parent = 0; w_parent < 2; w_parent++) {
		struct hm_system *sys = split_system(HM_COW_2M, false);
		struct hm_mm *mm, *child;
		struct hm_mapping m;
		uint64_t a, v = 0xc0de;
		uint32_t got, *all;

		REQUIRE(hm_mm_create(sys, &mm) == 0);
		huge_page(mm, &a, 0x1234);
		REQUIRE(hm_fork(mm, &child) == 0);
		all = node_hold(sys, 1, true, &got);
		struct hm_mm *writer = w_parent ? mm : child, *other = w_parent ? child : mm;

		struct t_op mo = { .mm = mm, .va = a, .len = 2 * MiB, .node = 1 };
		pthread_t tm = start_migration(&mo, "migrate_split_leaf");
		struct t_op w = { .mm = writer, .va = a + 8, .len = 8, .buf = &v };
		pthread_t tw = t_spawn(t_do_write, &w);
		CHECK(t_join_within(tw, STOP_MS));
		CHECK_EQ(w.r, 0);
		/* The copy-on-write's pin on the old page (until a grace
		 * period) may make this pass fail busy and retry the range,
		 * where the parent's new page is to move too: look at it
		 * before that. */
		REQUIRE(hm__race_arm("migrate_retry", 0) == 0);
		hm__race_release("migrate_split_leaf");
		bool retried = false, joined = false;
		for (int i = 0; i < STOP_MS / 2 && !retried && !joined; i++)
			if (!(retried = !hm__race_wait("migrate_retry", 1)))
				joined = t_join_within(tm, 1);
		CHECK(retried || joined);
		CHECK_EQ(size_at(writer, a), 2 * MiB);	/* the copy is whole */
		hm__race_release("migrate_retry");
		CHECK(joined || t_join_within(tm, STOP_MS));
		CHECK_EQ(mo.r, 0);
		CHECK_EQ(t_peek(writer, a + 8), 0xc0de);
		CHECK_EQ(t_peek(writer, a), 0x1234);
		CHECK_EQ(t_peek(other, a), 0x1234);
		CHECK_EQ(t_peek(other, a + 8), 0);
		if (!w_parent) {	/* the parent's page moved, in pieces */
			CHECK_EQ(size_at(child, a), 2 * MiB);
			CHECK_EQ(hm_query(mm, a, &m), 0);
			CHECK_EQ(m.node, 1);
			CHECK_EQ(m.size, 4096);
			CHECK_EQ(t_stat(sys, "thp_migration_split"), 1);
		}
		hm__race_reset();
		node_release(sys, all, got);
		STEP(sys);
		hm_mm_destroy(child);
		hm_mm_destroy(mm);
		hm_system_destroy(sys);
	}
}

/*
 * The 2 MiB page migration gave back to split goes to swap meanwhile
 * (MADV_PAGEOUT): there is nothing left to move, which is no failure.
 * Reverted (split_folio's false counted as a failed allocation), hm_migrate
 * returns -ENOMEM though node 1 has room, with thp_migration_fail.
 */
static void pageout_before_split(void)
{
	struct hm_system *sys = split_system(HM_COW_4K, true);
	struct hm_mm *mm;
	uint64_t a;
	uint32_t got, *all;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	huge_page(mm, &a, 0x4321);
	all = node_hold(sys, 1, true, &got);

	struct t_op mo = { .mm = mm, .va = a, .len = 2 * MiB, .node = 1 };
	pthread_t tm = start_migration(&mo, "migrate_split_leaf");
	CHECK_EQ(hm_madvise(mm, a, 2 * MiB, MADV_PAGEOUT), 0);
	REQUIRE(t_stat(sys, "pswpout") == 512);
	hm__race_release("migrate_split_leaf");
	CHECK(t_join_within(tm, STOP_MS));
	CHECK_EQ(mo.r, 0);
	CHECK_EQ(t_stat(sys, "thp_migration_fail"), 0);
	CHECK_EQ(t_stat(sys, "pgmigrate_fail"), 0);
	CHECK_EQ(t_stat(sys, "thp_migration_split"), 0);
	CHECK_EQ(t_peek(mm, a), 0x4321);
	hm__race_reset();
	node_release(sys, all, got);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * The 2 MiB page migration gave back to split is pinned meanwhile (white
 * box: its pin stripe, as a copy-on-write in flight holds it): it cannot
 * be split now; that is no lack of memory. It is busy: the range is tried
 * again, the pinned page left, as hm_migrate says of pinned pages, and the
 * call returns 0. Reverted, -ENOMEM.
 */
static void pinned_before_split(void)
{
	struct hm_system *sys = split_system(HM_COW_4K, false);
	struct hm_mm *mm;
	struct hm_mapping m;
	uint64_t a;
	uint32_t got, *all;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	huge_page(mm, &a, 0x5151);
	REQUIRE(hm_query(mm, a, &m) == 0);
	uint32_t head = (uint32_t)(m.pa >> 12);
	all = node_hold(sys, 1, true, &got);

	struct t_op mo = { .mm = mm, .va = a, .len = 2 * MiB, .node = 1 };
	pthread_t tm = start_migration(&mo, "migrate_split_leaf");
	int32_t *pin = hm_pin_slot(&sys->phys, head);
	__atomic_fetch_add(pin, 1, __ATOMIC_SEQ_CST);
	hm__race_release("migrate_split_leaf");
	CHECK(t_join_within(tm, STOP_MS));
	CHECK_EQ(mo.r, 0);
	CHECK_EQ(t_stat(sys, "thp_migration_split"), 0);
	CHECK_EQ(t_stat(sys, "thp_migration_fail"), 0);	/* busy, retried */
	__atomic_fetch_sub(pin, 1, __ATOMIC_SEQ_CST);
	CHECK_EQ(hm_query(mm, a, &m), 0);
	CHECK_EQ(m.node, 0);
	CHECK_EQ(t_peek(mm, a), 0x5151);
	hm__race_reset();
	node_release(sys, all, got);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void *do_munmap(void *p)
{
	struct t_op *o = p;

	o->r = hm_munmap(o->mm, o->va, o->len);
	return NULL;
}

/*
 * hm_migrate meets a busy mapper (a child's munmap stopped with its
 * mmap_lock held for writing) after it moved a first chunk; while it waits
 * without its lock, part of the range is unmapped. The rest of the range
 * still moves, and the call returns 0: -EFAULT is for a hole there when it
 * begins, and changes nothing. Reverted (the range rechecked on each
 * retry), -EFAULT after 512 pages moved.
 */
static void hole_during_retry(void)
{
	struct hm_system *sys = race_system(HM_THP_NEVER, false);
	struct hm_mm *mm, *child;
	struct hm_mapping m;
	uint64_t a, b, s;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 8 * MiB, RW, PA, &a) == 0);
	s = a + 4 * MiB;
	for (unsigned i = 0; i < 8; i++)	/* shared with the child */
		t_poke(mm, s + i * 4096ull, 512 + i);
	REQUIRE(hm_fork(mm, &child) == 0);
	/* The parent's own below them, in a VMA the child has no part in
	 * (the shared one's mappers are all locked to move any of its
	 * pages): the first chunk moves without the child. */
	REQUIRE(hm_mmap(mm, a, 4 * MiB, RW, PA | MAP_FIXED, &b) == 0);
	REQUIRE(b == a);
	for (unsigned i = 0; i < 512; i++)
		t_poke(mm, a + i * 4096ull, i);
	t_poke(child, s + 100 * 4096ull, 700);	/* the child's own */

	REQUIRE(hm__race_arm("unmap_before_flush", 0) == 0);
	struct t_op u = { .mm = child, .va = s + 100 * 4096ull, .len = 4096 };
	pthread_t tu = t_spawn(do_munmap, &u);
	REQUIRE(hm__race_wait("unmap_before_flush", STOP_MS) == 0);
	struct t_op mo = { .mm = mm, .va = a, .len = 8 * MiB, .node = 1 };
	pthread_t tm = start_migration(&mo, "migrate_retry");
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), 512);
	CHECK_EQ(hm_munmap(mm, s + 2 * MiB, 4096), 0);
	hm__race_release("unmap_before_flush");
	CHECK(t_join_within(tu, STOP_MS));
	CHECK_EQ(u.r, 0);
	hm__race_release("migrate_retry");
	CHECK(t_join_within(tm, STOP_MS));
	CHECK_EQ(mo.r, 0);
	CHECK_EQ(t_stat(sys, "pgmigrate_success"), 520);
	for (unsigned i = 0; i < 520; i++) {
		uint64_t va = i < 512 ? a + i * 4096ull : s + (i - 512) * 4096ull;

		CHECK_EQ(hm_query(mm, va, &m), 0);
		CHECK_EQ(m.node, 1);
		CHECK_EQ(t_peek(mm, va), i);
	}
	CHECK_EQ(t_peek(child, s + 3 * 4096ull), 515);
	hm__race_reset();
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

T_MAIN(T(fault_waits_for_migration), T(cow_during_migration), T(munmap_during_copy), T(query_during_migration),
       T(reclaim_during_migration), T(pageout_during_migration), T(cow_before_leaf_split),
       T(pageout_before_split), T(pinned_before_split), T(hole_during_retry))
