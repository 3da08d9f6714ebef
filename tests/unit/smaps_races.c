/* SPDX-License-Identifier: MIT */
/*
 * hm_smaps meeting a page under migration, made deterministic with the
 * race point migrate_unmapped (the migration stopped with its migration
 * entries in place): the walk waits for the page, as hm_query does, and
 * counts it where it landed. Reverted (smaps.c's walk_table_locked passing a
 * migration entry by), the walk returns at once without the page: Rss 0.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "race.h"

#define HOLD_MS 200
#define STOP_MS 10000

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

struct smaps_op {
	struct hm_mm *mm;
	uint64_t start, end;
	struct hm_smaps s;
	int r;
};

static void *do_smaps(void *p)
{
	struct smaps_op *o = p;

	o->r = hm_smaps(o->mm, o->start, o->end, &o->s);
	return NULL;
}

static void smaps_waits_for_migration(void)
{
	for (int huge = 0; huge < 2; huge++) {
		struct hm_config cfg;
		struct hm_system *sys;
		struct hm_mm *mm;
		uint64_t a, len = huge ? 2 * MiB : 4096;

		t_flags = 0;
		t_config(&cfg, 64 * MiB, HM_THP_NEVER, huge ? HM_THP_ALWAYS : HM_THP_NEVER, HM_DEPOSIT_EAGER);
		cfg.nr_nodes = 2;
		sys = t_system_cfg(&cfg);
		REQUIRE(hm_mm_create(sys, &mm) == 0);
		REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
		t_poke(mm, a, 1);
		STEP(sys);
		REQUIRE(hm__race_arm("migrate_unmapped", 0) == 0);
		struct t_op mo = { .mm = mm, .va = a, .len = len, .node = 1 };
		pthread_t tm = t_spawn(t_do_migrate, &mo);

		REQUIRE(hm__race_wait("migrate_unmapped", STOP_MS) == 0);
		struct smaps_op so = { .mm = mm, .start = 0, .end = UINT64_MAX };
		pthread_t ts = t_spawn(do_smaps, &so);

		CHECK(!t_join_within(ts, HOLD_MS));
		hm__race_release("migrate_unmapped");
		bool done = t_join_within(tm, STOP_MS);

		CHECK(done);
		CHECK(t_join_within(ts, STOP_MS));
		if (!done)
			return;
		CHECK_EQ(mo.r, 0);
		CHECK_EQ(so.r, 0);
		CHECK_EQ(so.s.rss, len);
		CHECK_EQ(so.s.nr_leaf[huge], 1);
		CHECK_EQ(so.s.anon_huge_pmd, huge ? len : 0);
		hm__race_reset();
		STEP(sys);
		hm_mm_destroy(mm);
		hm_system_destroy(sys);
	}
}

T_MAIN(T(smaps_waits_for_migration))
