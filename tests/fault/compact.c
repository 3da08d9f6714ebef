/* SPDX-License-Identifier: MIT */
/*
 * Fault injection on a compacting fault (the tests/fault/alloc.c pattern):
 * memory fragmented by 4 KiB pages, then a 2 MiB fault that must compact;
 * fail its 1st, 2nd, ... Nth allocation (frames, tables, bookkeeping),
 * once and then for good, until it no longer reaches the Nth. After every
 * attempt: the fault succeeded (with a 2 MiB page, or a fallback) or gave
 * -ENOMEM, hm_check passes, every 4 KiB page holds its data, and tearing
 * down frees every frame.
 */
#include "harness.h"
#include "hooks.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

struct ctx {
	struct hm_system *sys;
	struct hm_mm *mm;
	uint64_t a, pages, h;
};

static void setup(struct ctx *c)
{
	c->sys = t_system(16 * MiB, HM_THP_NEVER, HM_THP_MADVISE, HM_DEPOSIT_EAGER);
	REQUIRE(hm_mm_create(c->sys, &c->mm) == 0);
	c->pages = 4096;
	REQUIRE(hm_mmap(c->mm, 0, c->pages * 4096, RW, PA, &c->a) == 0);
	CHECK_EQ(hm_madvise(c->mm, c->a, c->pages * 4096, MADV_NOHUGEPAGE), 0);
	uint64_t i;
	for (i = 0; i < c->pages; i++) {
		if (i % 64 == 0 && t_stat(c->sys, "nr_free_pages") < 64)
			break;
		t_poke(c->mm, c->a + i * 4096, t_pattern(3, i));
	}
	c->pages = i;
	for (i = 0; i < c->pages; i += 2)
		CHECK_EQ(hm_madvise(c->mm, c->a + i * 4096, 4096, MADV_DONTNEED), 0);
	REQUIRE(hm_mmap(c->mm, 0, 4 * MiB, RW, PA, &c->h) == 0);
	c->h = (c->h + 2 * MiB - 1) & ~(2 * MiB - 1);
	CHECK_EQ(hm_madvise(c->mm, c->h, 2 * MiB, MADV_HUGEPAGE), 0);
	hm_drain(c->sys);
	STEP(c->sys);
}

static unsigned long wrong(struct ctx *c)
{
	unsigned long bad = 0;

	for (uint64_t i = 1; i < c->pages; i += 2) {
		uint64_t v = 0;

		bad += hm_read(c->mm, c->a + i * 4096, &v, sizeof(v)) || v != t_pattern(3, i);
	}
	return bad;
}

static void teardown(struct ctx *c)
{
	uint64_t total = t_stat(c->sys, "phys_bytes") / 4096;

	hm_mm_destroy(c->mm);
	hm_drain(c->sys);
	CHECK_EQ(t_stat(c->sys, "nr_free_pages") + t_zero_frames(c->sys), total);	/* no leak */
	hm_system_destroy(c->sys);
}

/* One attempt with the @nth allocation failing; false once the fault did
 * not reach it. */
static bool attempt(long nth, bool persistent, unsigned *huge)
{
	struct ctx c;

	setup(&c);
	uint64_t v = 0x77;
	hm__fail_arm(c.sys, nth, persistent);
	int r = hm_write(c.mm, c.h, &v, sizeof(v));
	long hits = hm__fail_hits(c.sys);
	hm__fail_arm(c.sys, 0, false);
	CHECK(r == 0 || r == -ENOMEM);
	STEP(c.sys);
	CHECK_EQ(wrong(&c), 0);
	if (r == 0) {
		struct hm_mapping m;

		CHECK_EQ(t_peek(c.mm, c.h), 0x77);
		CHECK_EQ(hm_query(c.mm, c.h, &m), 0);
		*huge += m.size == 2 * MiB;
	}
	teardown(&c);
	return hits > 0;
}

static void compacting_fault(void)
{
	/* Without failures it compacts. */
	struct ctx c;
	setup(&c);
	uint64_t v = 1;
	CHECK_EQ(hm_write(c.mm, c.h, &v, sizeof(v)), 0);
	CHECK_EQ(t_stat(c.sys, "compact_success"), 1);
	teardown(&c);

	for (int persistent = 0; persistent < 2; persistent++) {
		unsigned huge = 0;
		long n;

		for (n = 1; attempt(n, persistent, &huge); n += n < 32 ? 1 : 9)
			;
		fprintf(stderr, "  %s: %ld attempts, %u got their 2 MiB page\n",
			persistent ? "persistent" : "transient", n, huge);
		CHECK(n > 8);		/* the compaction allocates */
		if (!persistent)
			CHECK(huge > 0);	/* a failure before compaction leaves it to try */
	}
}

int main(int argc, char **argv)
{
	t_flags = 0;
	static const struct t_case cases[] = { T(compacting_fault) };

	return t_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
