/* SPDX-License-Identifier: MIT */
/*
 * Fault injection, after SQLite's and jemalloc's: for each operation, fail
 * the 1st, 2nd, ... Nth allocation it makes (frames, tables, bookkeeping),
 * once (transient) and then for good (persistent), until the operation no
 * longer reaches the Nth allocation. After every attempt: hm_check passes;
 * an -ENOMEM left the state exactly as before (counters and contents); a
 * success did what it should; and tearing down frees every frame.
 */
#include "harness.h"
#include "hooks.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

struct ctx {
	struct hm_system *sys;
	struct hm_mm *mm;
	uint64_t a;		/* a mapping the scenario made */
};

struct scenario {
	const char *name;
	int pmd, deposit;
	bool allocates;		/* must reach the failpoint at least once */
	bool is_fault;		/* may keep tables it populated when it fails */
	void (*setup)(struct ctx *c);
	int (*op)(struct ctx *c);
	void (*after)(struct ctx *c);	/* the success postcondition */
	bool may_fail;
	bool swap;		/* the system has a swap file */
	bool reclaims;		/* may reclaim (swap out other pages) before it
				 * fails: then contents are checked, not counters */
};

static uint64_t stats_snap[128];

static void snapshot(struct hm_system *sys, uint64_t *s)
{
	const char *n;

	for (unsigned i = 0; (n = hm_stat_name(i)); i++)
		hm_stat(sys, n, &s[i]);
}

/* Counters that changed since the snapshot. A fault that fails keeps the
 * page tables it populated on the way down (as the kernel's does), so with
 * @tables_ok a change of free frames that is all page tables is allowed. */
static unsigned stats_changed(struct hm_system *sys, bool tables_ok)
{
	uint64_t now[128], free_now = 0, free_then = 0, pt_now = 0, pt_then = 0;
	const char *n;
	unsigned diff = 0;

	snapshot(sys, now);
	for (unsigned i = 0; (n = hm_stat_name(i)); i++) {
		/* Free slots of table blocks in use are free frames for
		 * tables only, so not in nr_free_pages, and tables on their
		 * way back are in neither: a table costs one frame of the
		 * three together. */
		if (!strcmp(n, "nr_free_pages") || !strcmp(n, "pgtable_free_slots") || !strcmp(n, "pgtable_pending"))
			free_now += now[i], free_then += stats_snap[i];
		if (!strcmp(n, "pgtable_bytes"))
			pt_now = now[i] >> 12, pt_then = stats_snap[i] >> 12;
	}
	if (tables_ok && free_now + pt_now != free_then + pt_then) {
		fprintf(stderr, "  frames other than tables changed\n");
		diff++;
	}
	for (unsigned i = 0; (n = hm_stat_name(i)); i++) {
		if (now[i] == stats_snap[i] || !strcmp(n, "pgfault") || strstr(n, "fallback") ||
		    strstr(n, "_alloc_failed") || strstr(n, "khugepaged_"))
			continue;
		if (tables_ok && (!strcmp(n, "nr_free_pages") || !strcmp(n, "pgtable_bytes") ||
				  !strcmp(n, "pgtable_free_slots") || !strcmp(n, "pgtable_pending")))
			continue;
		fprintf(stderr, "  %s: %llu -> %llu\n", n, (unsigned long long)stats_snap[i],
			(unsigned long long)now[i]);
		diff++;
	}
	return diff;
}

/* --- scenarios --- */

static void no_setup(struct ctx *c) { (void)c; }

static int op_mm_create(struct ctx *c) { return hm_mm_create(c->sys, &c->mm); }
static void after_mm_create(struct ctx *c) { CHECK(c->mm != NULL); }

static void setup_many_vmas(struct ctx *c)
{
	uint64_t a;

	/* Alternate protections so nothing merges, until the VMA array is
	 * full and the next mmap must grow it. */
	size_t nr = 0, cap = 0;

	for (int i = 0; i < 10 || nr < cap; i++) {
		if (i > 1000 || hm_mmap(c->mm, 0, 4096, i & 1 ? PROT_READ : RW, PA, &a))
			exit(3);
		hm__vma_count(c->mm, &nr, &cap);
	}
}
static int op_mmap(struct ctx *c) { return hm_mmap(c->mm, 0, 64 * 4096, RW, PA, &c->a); }
static void after_mmap(struct ctx *c)
{
	uint64_t v = 3;
	CHECK_EQ(hm_write(c->mm, c->a + 4096, &v, 8), 0);
}

static void setup_vma(struct ctx *c)
{
	if (hm_mmap(c->mm, 0, 4 * MiB, RW, PA, &c->a))
		exit(3);
}
static int op_write(struct ctx *c)
{
	uint64_t v = 77;
	return hm_write(c->mm, c->a + MiB + 8, &v, 8);
}
static void after_write(struct ctx *c)
{
	uint64_t v = 0;
	CHECK_EQ(hm_read(c->mm, c->a + MiB + 8, &v, 8), 0);
	CHECK_EQ(v, 77);
}

static void setup_huge_written(struct ctx *c)
{
	setup_vma(c);
	if (t_fill(c->mm, c->a, 4 * MiB, 5))
		exit(3);
}
static int op_munmap_inside(struct ctx *c) { return hm_munmap(c->mm, c->a + MiB + 3 * 4096, 4096); }
static void after_munmap_inside(struct ctx *c)
{
	CHECK_EQ(t_pages_wrong(c->mm, c->a, 4 * MiB, 5, c->a + MiB + 3 * 4096, 4096), 0);
}
static int op_mprotect_inside(struct ctx *c) { return hm_mprotect(c->mm, c->a + 5 * 4096, 2 * MiB, PROT_READ); }
static void after_mprotect_inside(struct ctx *c)
{
	uint64_t v = 0;
	CHECK_EQ(hm_write(c->mm, c->a + 6 * 4096, &v, 8), -EFAULT);
	CHECK_EQ(hm_write(c->mm, c->a + 4 * 4096, &v, 8), 0);
	v = t_pattern(5, 4);
	CHECK_EQ(hm_write(c->mm, c->a + 4 * 4096, &v, 8), 0);
	CHECK_EQ(t_pages_wrong(c->mm, c->a, 4 * MiB, 5, 0, 0), 0);
}
static int op_dontneed_inside(struct ctx *c) { return hm_madvise(c->mm, c->a + 8192, 8192, MADV_DONTNEED); }
static int op_hugepage_advice(struct ctx *c) { return hm_madvise(c->mm, c->a + 8192, 8192, MADV_NOHUGEPAGE); }
static void after_data_kept(struct ctx *c)
{
	uint64_t v = 1;
	CHECK_EQ(hm_read(c->mm, c->a + 4 * 4096, &v, 8), 0);
	CHECK_EQ(v, t_pattern(5, 4));
}

/* The huge zero page: a read of untouched memory maps it (creating it),
 * and a write to it gets a page of its own (2 MiB, else 4 KiB). */
static int op_read(struct ctx *c)
{
	uint64_t v = 1;
	int r = hm_read(c->mm, c->a + MiB + 8, &v, 8);

	CHECK(r || v == 0);
	return r;
}
static void after_read(struct ctx *c)
{
	struct hm_mapping m;
	uint64_t v = 1;

	CHECK_EQ(hm_read(c->mm, c->a + 2 * MiB - 8, &v, 8), 0);
	CHECK_EQ(v, 0);
	/* The zero page, or (when it could not be had) a page of its own. */
	CHECK_EQ(hm_query(c->mm, c->a + MiB, &m), 0);
	CHECK(m.size != 0 && (m.mapcount == 0) == (t_stat(c->sys, "nr_huge_zero_pmd") == 1));
}
static void setup_zero_read(struct ctx *c)
{
	uint64_t v = 1;

	setup_vma(c);
	if (hm_read(c->mm, c->a + MiB + 8, &v, 8) || v || t_stat(c->sys, "nr_huge_zero_pmd") != 1)
		exit(3);
}
/* ... and where no 2 MiB page may go any more: the write splits the zero
 * leaf (in lazy mode allocating its table) and takes 4 KiB. */
static void setup_zero_read_nohuge(struct ctx *c)
{
	setup_zero_read(c);
	if (hm_madvise(c->mm, c->a, 4 * MiB, MADV_NOHUGEPAGE))
		exit(3);
}
static void after_zero_write(struct ctx *c)
{
	uint64_t v = 1;

	after_write(c);
	CHECK_EQ(hm_read(c->mm, c->a + MiB, &v, 8), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(hm_read(c->mm, c->a + MiB + 16, &v, 8), 0);
	CHECK_EQ(v, 0);
}

static struct hm_mm *forked;

static void setup_forkable(struct ctx *c)
{
	uint64_t a;

	setup_huge_written(c);	/* 2 MiB pages, written */
	if (hm_mmap(c->mm, 0, 64 * 4096, RW, PA, &a) || hm_madvise(c->mm, a, 64 * 4096, MADV_NOHUGEPAGE))
		exit(3);
	if (t_fill(c->mm, a, 64 * 4096, 9))
		exit(3);
}
static int op_fork(struct ctx *c) { forked = NULL; return hm_fork(c->mm, &forked); }
static void after_fork(struct ctx *c)
{
	uint64_t v = 1;

	CHECK(forked != NULL);
	CHECK_EQ(t_pages_wrong(c->mm, c->a, 4 * MiB, 5, 0, 0), 0);
	CHECK_EQ(hm_write(forked, c->a, &v, 8), 0);	/* COW: the parent keeps its data */
	CHECK_EQ(t_pages_wrong(c->mm, c->a, 4 * MiB, 5, 0, 0), 0);
	hm_mm_destroy(forked);
}

/* Reclaim: pageout and swap-in with every allocation on their paths
 * failing (slot allocation passes the failpoint too). */
static void setup_pageable(struct ctx *c)
{
	if (hm_mmap(c->mm, 0, 4 * MiB, RW, PA, &c->a) || t_fill(c->mm, c->a, 4 * MiB, 5))
		exit(3);
}
/* One 2 MiB page, or sixteen 4 KiB ones: every allocation is tried. */
static int op_pageout(struct ctx *c)
{
	return hm_madvise(c->mm, c->a, t_stat(c->sys, "nr_anon_pmd") ? 2 * MiB : 16 * 4096, MADV_PAGEOUT);
}
static void after_all_data(struct ctx *c) { CHECK_EQ(t_pages_wrong(c->mm, c->a, 4 * MiB, 5, 0, 0), 0); }
static void setup_swapped(struct ctx *c)
{
	setup_pageable(c);
	if (hm_madvise(c->mm, c->a, 4 * MiB, MADV_PAGEOUT) || t_stat(c->sys, "nr_anon_pages"))
		exit(3);
}
static int op_swapin(struct ctx *c)
{
	uint64_t v = 0;
	int r = hm_read(c->mm, c->a + MiB + 4096, &v, 8);

	return r ? r : v == t_pattern(5, 257) ? 0 : -EBADMSG;
}
/* Memory full of written pages: a new page needs direct reclaim. */
static void setup_full(struct ctx *c)
{
	uint64_t v = 1;

	if (hm_mmap(c->mm, 0, 128 * MiB, RW, PA, &c->a))
		exit(3);
	/* Up to the frames kept back for swap-ins. */
	for (uint64_t off = 4 * MiB; t_stat(c->sys, "direct_reclaim") == 0; off += 4096)
		if (off >= 120 * MiB || hm_write(c->mm, c->a + off, &v, 8))
			exit(3);
	if (t_fill(c->mm, c->a, 4 * MiB, 5))
		exit(3);
}
static int op_write_new(struct ctx *c)
{
	uint64_t v = 77;
	int r = 0;

	/* Past the frames kept back for swap-ins: reclaim must run. */
	for (uint64_t off = 120 * MiB; off < 120 * MiB + 8 * 4096 && !r; off += 4096)
		r = hm_write(c->mm, c->a + off, &v, 8);
	return r;
}

/* Collapse: 4 KiB pages where 2 MiB ones may go, copied into one; a split
 * 2 MiB page refolded; pages in swap read back first; the khugepaged scan. */
static void setup_small(struct ctx *c)
{
	if (hm_mmap(c->mm, 0, 4 * MiB, RW, PA, &c->a) || hm_madvise(c->mm, c->a, 4 * MiB, MADV_NOHUGEPAGE) ||
	    t_fill(c->mm, c->a, 4 * MiB, 5) || hm_madvise(c->mm, c->a, 4 * MiB, MADV_HUGEPAGE))
		exit(3);
}
static void setup_split(struct ctx *c)
{
	setup_huge_written(c);
	if (hm_mprotect(c->mm, c->a + 8192, 4096, PROT_READ) || hm_mprotect(c->mm, c->a + 8192, 4096, RW))
		exit(3);
}
static void setup_small_swapped(struct ctx *c)
{
	setup_small(c);
	if (hm_madvise(c->mm, c->a, 16 * 4096, MADV_PAGEOUT))
		exit(3);
}
static int op_collapse(struct ctx *c) { return hm_madvise(c->mm, c->a, 2 * MiB, MADV_COLLAPSE); }
static int op_khugepaged(struct ctx *c)
{
	uint64_t n = 0;
	int r = hm_khugepaged_scan(c->sys, 512, &n);

	return r ? r : n ? 0 : -ENOMEM;	/* the scan goes on past failures */
}
static void after_collapse(struct ctx *c)
{
	struct hm_mapping m;

	CHECK_EQ(hm_query(c->mm, c->a, &m), 0);
	CHECK_EQ(m.size, 2 * MiB);
	CHECK_EQ(t_pages_wrong(c->mm, c->a, 4 * MiB, 5, 0, 0), 0);
}

static const struct scenario scenarios[] = {
	{ "pageout_4k", HM_THP_NEVER, HM_DEPOSIT_EAGER, true, false, setup_pageable, op_pageout, after_all_data, false, true, true },
	{ "pageout_2m", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, false, setup_pageable, op_pageout, after_all_data, false, true, true },
	{ "swapin_4k", HM_THP_NEVER, HM_DEPOSIT_EAGER, true, true, setup_swapped, op_swapin, after_all_data, true, true, true },
	{ "swapin_2m", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, true, setup_swapped, op_swapin, after_all_data, true, true, true },
	{ "direct_reclaim", HM_THP_NEVER, HM_DEPOSIT_EAGER, true, true, setup_full, op_write_new, after_all_data, true, true, true },
	{ "fork_eager", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, false, setup_forkable, op_fork, after_fork, true },
	{ "fork_lazy", HM_THP_ALWAYS, HM_DEPOSIT_LAZY, true, false, setup_forkable, op_fork, after_fork, true },
	{ "mm_create", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, false, no_setup, op_mm_create, after_mm_create, true },
	{ "mmap_grow_vmas", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, false, setup_many_vmas, op_mmap, after_mmap, true },
	{ "fault_4k", HM_THP_NEVER, HM_DEPOSIT_EAGER, true, true, setup_vma, op_write, after_write, true },
	{ "fault_2m_eager", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, true, setup_vma, op_write, after_write, true },
	{ "fault_2m_lazy", HM_THP_ALWAYS, HM_DEPOSIT_LAZY, true, true, setup_vma, op_write, after_write, true },
	/* Eager mode: splitting allocates nothing, so nothing can fail. munmap
	 * asks for a gather batch, and without one flushes synchronously. */
	{ "munmap_split_eager", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, false, setup_huge_written, op_munmap_inside, after_munmap_inside, false },
	{ "mprotect_split_eager", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, false, false, setup_huge_written, op_mprotect_inside, after_mprotect_inside, false },
	{ "munmap_split_lazy", HM_THP_ALWAYS, HM_DEPOSIT_LAZY, true, false, setup_huge_written, op_munmap_inside, after_munmap_inside, true },
	{ "mprotect_split_lazy", HM_THP_ALWAYS, HM_DEPOSIT_LAZY, true, false, setup_huge_written, op_mprotect_inside, after_mprotect_inside, true },
	{ "dontneed_split_lazy", HM_THP_ALWAYS, HM_DEPOSIT_LAZY, true, false, setup_huge_written, op_dontneed_inside, after_data_kept, true },
	{ "madvise_split_lazy", HM_THP_ALWAYS, HM_DEPOSIT_LAZY, true, false, setup_huge_written, op_hugepage_advice, after_data_kept, true },
	{ "zero_read_eager", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, true, setup_vma, op_read, after_read, true },
	{ "zero_read_lazy", HM_THP_ALWAYS, HM_DEPOSIT_LAZY, true, true, setup_vma, op_read, after_read, true },
	{ "zero_write_eager", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, true, setup_zero_read, op_write, after_zero_write, true },
	{ "zero_write_lazy", HM_THP_ALWAYS, HM_DEPOSIT_LAZY, true, true, setup_zero_read, op_write, after_zero_write, true },
	{ "zero_write_4k_eager", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, true, setup_zero_read_nohuge, op_write, after_zero_write, true },
	{ "zero_write_4k_lazy", HM_THP_ALWAYS, HM_DEPOSIT_LAZY, true, true, setup_zero_read_nohuge, op_write, after_zero_write, true },
	{ "collapse_copy_eager", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, false, setup_small, op_collapse, after_collapse, true },
	{ "collapse_copy_lazy", HM_THP_ALWAYS, HM_DEPOSIT_LAZY, true, false, setup_small, op_collapse, after_collapse, true },
	{ "collapse_refold", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, false, setup_split, op_collapse, after_collapse, false },
	{ "collapse_swapin", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, false, setup_small_swapped, op_collapse, after_all_data, true, true, true },
	{ "khugepaged_scan", HM_THP_ALWAYS, HM_DEPOSIT_EAGER, true, false, setup_small, op_khugepaged, after_collapse, true },
};

/* One attempt: returns the number of allocations the failpoint failed. */
static long attempt(const struct scenario *s, long nth, bool persistent, unsigned *enomem)
{
	struct hm_config cfg;
	struct ctx c = { 0 };

	hm_config_default(&cfg);
	cfg.phys_bytes = 64 * MiB;
	cfg.thp_pmd = s->pmd;
	cfg.deposit = s->deposit;
	if (s->swap) {
		cfg.phys_bytes = 16 * MiB;
		cfg.swap_path = t_swap_path();
		cfg.swap_bytes = 16 * MiB;
	}
	if (hm_system_create(&cfg, &c.sys))
		exit(2);
	uint64_t free0 = t_stat(c.sys, "nr_free_pages");
	if (s->setup != no_setup && hm_mm_create(c.sys, &c.mm))
		exit(2);
	s->setup(&c);
	snapshot(c.sys, stats_snap);

	hm__fail_arm(c.sys, nth, persistent);
	int r = s->op(&c);
	long hits = hm__fail_hits(c.sys);
	hm__fail_arm(c.sys, 0, false);

	STEP(c.sys);
	if (r == -ENOMEM && s->reclaims) {
		(*enomem)++;
		s->after(&c);	/* whatever reclaim did, nothing was lost */
	} else if (r == -ENOMEM) {
		(*enomem)++;
		CHECK_EQ(stats_changed(c.sys, s->is_fault), 0);
		if (s->after == after_fork) {
			/* the parent is as it was: still writable, same frames, no copy */
			struct hm_mapping m;
			uint64_t v = t_pattern(5, 0);
			CHECK_EQ(hm_query(c.mm, c.a, &m), 0);
			CHECK(m.exclusive && (m.prot & PROT_WRITE));
			CHECK_EQ(hm_write(c.mm, c.a, &v, 8), 0);
			CHECK_EQ(t_stat(c.sys, "cow_copy") + t_stat(c.sys, "cow_reuse"), 0);
		}
		if (s->after == after_munmap_inside || s->after == after_mprotect_inside || s->after == after_fork)
			CHECK_EQ(t_pages_wrong(c.mm, c.a, 4 * MiB, 5, 0, 0), 0);
	} else {
		CHECK_EQ(r, 0);
		s->after(&c);
		STEP(c.sys);
	}
	if (c.mm)
		hm_mm_destroy(c.mm);
	STEP(c.sys);
	CHECK_EQ(t_stat(c.sys, "nr_free_pages") + t_zero_frames(c.sys), free0);
	CHECK_EQ(t_stat(c.sys, "swap_free_pages"), t_stat(c.sys, "swap_total_pages"));
	hm_system_destroy(c.sys);
	return hits;
}

static void run_all(bool persistent)
{
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		const struct scenario *s = &scenarios[i];
		unsigned enomem = 0;
		long n = 1;

		while (attempt(s, n, persistent, &enomem) && n < 100000)
			n++;
		fprintf(stderr, "    %-22s %s: %ld allocations, %u attempts returned -ENOMEM\n",
			s->name, persistent ? "persistent" : "transient ", n - 1, enomem);
		CHECK_EQ(n > 1, s->allocates);
		if (!s->may_fail)
			CHECK_EQ(enomem, 0);
	}
}

static void transient(void) { run_all(false); }
static void persistent(void) { run_all(true); }

T_MAIN(T(transient), T(persistent))
