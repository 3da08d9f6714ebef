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

T_MAIN(T(fault_waits_for_migration), T(cow_during_migration), T(munmap_during_copy), T(query_during_migration),
       T(reclaim_during_migration), T(pageout_during_migration))
