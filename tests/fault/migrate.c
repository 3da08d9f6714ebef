/* SPDX-License-Identifier: MIT */
/*
 * Fault injection into hm_migrate (issue 9), as tests/fault/alloc.c: fail
 * its 1st, 2nd, ... Nth allocation (bookkeeping, target frames, the tables
 * of a split), once and then for good, until it no longer reaches the Nth.
 * After every attempt: hm_check passes; -ENOMEM left every byte intact
 * (what moved stays moved); a success moved everything; tearing down
 * frees every frame.
 */
#include "harness.h"
#include "hooks.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

struct scenario {
	const char *name;
	int pmd, deposit;
	uint64_t len;
	bool fork;		/* a child shares the pages */
};

static const struct scenario scenarios[] = {
	{ "4k", HM_THP_NEVER, HM_DEPOSIT_EAGER, 16 * 4096, false },
	{ "4k_shared", HM_THP_NEVER, HM_DEPOSIT_EAGER, 16 * 4096, true },
	{ "2m_eager", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, 4 * MiB, false },
	{ "2m_lazy", HM_THP_ALWAYS, HM_DEPOSIT_LAZY, 4 * MiB, false },
	{ "2m_shared_lazy", HM_THP_ALWAYS, HM_DEPOSIT_LAZY, 4 * MiB, true },
};

/* Every page of [a, a + len) of @mm on @node. */
static unsigned long off_node(struct hm_mm *mm, uint64_t a, uint64_t len, unsigned node)
{
	unsigned long bad = 0;

	for (uint64_t off = 0; off < len; off += 4096) {
		struct hm_mapping m;

		bad += hm_query(mm, a + off, &m) || m.size == 0 || m.node != node;
	}
	return bad;
}

static long attempt(const struct scenario *s, long nth, bool persistent, unsigned *enomem)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm, *child = NULL;
	uint64_t a;

	hm_config_default(&cfg);
	cfg.phys_bytes = 64 * MiB;
	cfg.nr_nodes = 2;
	cfg.thp_pmd = s->pmd;
	cfg.deposit = s->deposit;
	if (hm_system_create(&cfg, &sys))
		exit(2);
	uint64_t free0 = t_stat(sys, "nr_free_pages");
	if (hm_mm_create(sys, &mm) || hm_mmap(mm, 0, s->len, RW, PA, &a) || t_fill(mm, a, s->len, 6))
		exit(2);
	if (s->fork && hm_fork(mm, &child))
		exit(2);

	hm__fail_arm(sys, nth, persistent);
	int r = hm_migrate(mm, a, s->len, 1);
	long hits = hm__fail_hits(sys);
	hm__fail_arm(sys, 0, false);

	STEP(sys);
	if (r == -ENOMEM)
		(*enomem)++;
	else
		CHECK_EQ(r, 0);
	if (r == 0)
		CHECK_EQ(off_node(mm, a, s->len, 1), 0);
	CHECK_EQ(t_pages_wrong(mm, a, s->len, 6, 0, 0), 0);
	if (child) {
		CHECK_EQ(t_pages_wrong(child, a, s->len, 6, 0, 0), 0);
		if (r == 0)
			CHECK_EQ(off_node(child, a, s->len, 1), 0);
		hm_mm_destroy(child);
	}
	/* Whatever is left moves now. */
	CHECK_EQ(hm_migrate(mm, a, s->len, 1), 0);
	CHECK_EQ(off_node(mm, a, s->len, 1), 0);
	CHECK_EQ(t_pages_wrong(mm, a, s->len, 6, 0, 0), 0);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_drain(sys);
	CHECK_EQ(t_stat(sys, "nr_free_pages"), free0);
	hm_system_destroy(sys);
	return hits;
}

/* Every scenario, failing its 1st, 2nd... allocation until none is left
 * to fail: each reaches at least one, and some attempts end in -ENOMEM. */
static void run_all(bool persistent)
{
	for (const struct scenario *s = scenarios; s < scenarios + sizeof(scenarios) / sizeof(*s); s++) {
		unsigned enomem = 0;
		long nth;

		for (nth = 1; nth < 100000; nth++)
			if (!attempt(s, nth, persistent, &enomem))
				break;
		fprintf(stderr, "    %s (%s): %u of %ld failed allocations gave -ENOMEM\n", s->name,
			persistent ? "for good" : "once", enomem, nth - 1);
		CHECK(nth > 1 && enomem > 0);
	}
}

static void transient(void) { run_all(false); }
static void persistent(void) { run_all(true); }

T_MAIN(T(transient), T(persistent))
