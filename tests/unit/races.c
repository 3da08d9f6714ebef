/* SPDX-License-Identifier: MIT */
/*
 * Races, forced: each test stops a thread at a named race point
 * (src/base/race.h) and runs the competing operation there, so the
 * interleaving that once broke isolation or failed an access happens every
 * time. Each test fails with its fix reverted (see the notes per test).
 *
 * Tests that expect an operation to be held up by a lock give it a moment
 * (HOLD_MS) to go wrong first; tests that expect an operation not to wait
 * give it a generous bound (NOWAIT_MS). Neither is a speed threshold: the
 * first only gives a bug room to show, the second catches a deadlock.
 *
 * HM_CHECK is off (hm_check takes every mmap_lock, which a stopped thread
 * may hold); each test checks with STEP() once its threads are done.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "race.h"
#include "../../src/mm/folio.h"
#include "../../src/mm/types.h"

#define HOLD_MS	  200
#define NOWAIT_MS 10000
#define STOP_MS	  10000

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

struct op {
	struct hm_mm *mm;
	uint64_t va, len;
	uint64_t val;
	int r;
	unsigned level;
};

static void *do_write(void *p)
{
	struct op *o = p;

	o->r = hm_write(o->mm, o->va, &o->val, sizeof(o->val));
	return NULL;
}

static void *do_read(void *p)
{
	struct op *o = p;

	o->r = hm_read(o->mm, o->va, &o->val, sizeof(o->val));
	return NULL;
}

static void *do_split(void *p)
{
	struct op *o = p;

	o->r = hm__split(o->mm, o->va, o->level);
	return NULL;
}

static void *do_munmap(void *p)
{
	struct op *o = p;

	o->r = hm_munmap(o->mm, o->va, o->len);
	return NULL;
}

static void *do_mprotect(void *p)
{
	struct op *o = p;

	o->r = hm_mprotect(o->mm, o->va, o->len, PROT_READ);
	return NULL;
}

static void *do_fork(void *p)
{
	struct op *o = p;
	struct hm_mm *child = NULL;

	o->r = hm_fork(o->mm, &child);
	o->mm = child;
	return NULL;
}

/* A small system without HM_CHECK (see the top of this file). */
static struct hm_system *race_system(int thp_pmd)
{
	t_flags = 0;
	return t_system(64 * MiB, HM_THP_NEVER, thp_pmd, HM_DEPOSIT_EAGER);
}

/* Check, destroy @child (may be NULL) then @parent, check, and end @sys. */
static void finish(struct hm_system *sys, struct hm_mm *parent, struct hm_mm *child)
{
	STEP(sys);
	if (child)
		hm_mm_destroy(child);
	hm_mm_destroy(parent);
	STEP(sys);
	hm_system_destroy(sys);
}

/*
 * Copy-on-write reuse decision against a split in the other address space.
 * The parent's write to a page of a shared huge page sums the page's map
 * counts while the child's split moves one count from one field to another.
 * Fixed by reading them under the folio lock: the split waits. Reverted
 * (counts read without the lock), the parent sees the page mapped once,
 * writes in place, and the child reads the parent's write.
 */
static void cow_counts_vs_split(bool pud)
{
	t_flags = 0;
	struct hm_system *sys = t_system(pud ? 2 * GiB : 64 * MiB, pud ? HM_THP_ALWAYS : HM_THP_NEVER,
					 HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *parent, *child;
	uint64_t size = pud ? GiB : 2 * MiB, a;
	struct hm_mapping m;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, size, RW, PA, &a) == 0);
	uint64_t x = a + 5 * 4096;	/* in the first 2 MiB chunk */
	t_poke(parent, x, 0x1111);
	REQUIRE(hm_query(parent, x, &m) == 0);
	REQUIRE(m.size == size);
	REQUIRE(hm_fork(parent, &child) == 0);
	/* The parent maps the chunk with PTEs; the child still with one leaf. */
	CHECK_EQ(hm__split(parent, a, 0), 0);
	if (pud)
		CHECK_EQ(hm__split(child, a, 1), 0);	/* PUD -> PMD leaves */
	STEP(sys);

	struct op w = { .mm = parent, .va = x, .val = 0x2222 };
	struct op s = { .mm = child, .va = a, .level = 0 };
	REQUIRE(hm__race_arm("cow_reuse_counts", 0) == 0);
	pthread_t tw = t_spawn(do_write, &w);
	REQUIRE(hm__race_wait("cow_reuse_counts", STOP_MS) == 0);
	pthread_t ts = t_spawn(do_split, &s);
	bool split_done = t_join_within(ts, HOLD_MS);
	hm__race_release("cow_reuse_counts");
	pthread_join(tw, NULL);
	if (!split_done)
		pthread_join(ts, NULL);
	hm__race_reset();

	CHECK_EQ(w.r, 0);
	CHECK_EQ(s.r, 0);
	CHECK_EQ(t_peek(child, x), 0x1111);	/* isolation */
	CHECK_EQ(t_peek(parent, x), 0x2222);
	CHECK_EQ(t_stat(sys, "cow_reuse"), 0);
	CHECK_EQ(t_stat(sys, "cow_copy"), 1);
	finish(sys, parent, child);
}

static void cow_counts_vs_split_pmd(void) { cow_counts_vs_split(false); }
static void cow_counts_vs_split_pud(void) { cow_counts_vs_split(true); }

/* A thread that reads once, then waits for a go before reading again. */
struct reader {
	struct op o;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int step;		/* 0: first read, 1: first done, 2: go, 3: second done */
	uint64_t first, second;
};

static void *reader_main(void *p)
{
	struct reader *r = p;

	do_read(&r->o);
	pthread_mutex_lock(&r->lock);
	r->first = r->o.val;
	r->step = 1;
	pthread_cond_broadcast(&r->cond);
	while (r->step != 2)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
	do_read(&r->o);
	pthread_mutex_lock(&r->lock);
	r->second = r->o.val;
	r->step = 3;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void reader_wait(struct reader *r, int step)
{
	pthread_mutex_lock(&r->lock);
	while (r->step < step)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
}

static void reader_go(struct reader *r)
{
	pthread_mutex_lock(&r->lock);
	r->step = 2;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/*
 * munmap against copy-on-write reuse. The child unmaps a page it shares
 * with the parent; its count is gone, but the TLB generation is not bumped
 * yet, so a child thread still reads the page through its cached
 * translation. The parent writes the page. Fixed by pinning the page from
 * the unmap until its shootdown: the parent copies. Reverted (no pin), the
 * parent reuses the page in place and the child's thread reads the
 * parent's write.
 */
static void unmap_pin_vs_reuse(void)
{
	struct hm_system *sys = race_system(HM_THP_NEVER);
	struct hm_mm *parent, *child;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, 16 * 4096, RW, PA, &a) == 0);
	uint64_t x = a + 4096, y = a + 2 * 4096;
	t_poke(parent, x, 0xaaaa);
	t_poke(parent, y, 0xcccc);
	REQUIRE(hm_fork(parent, &child) == 0);

	struct reader rd = { .o = { .mm = child, .va = x }, .lock = PTHREAD_MUTEX_INITIALIZER,
			     .cond = PTHREAD_COND_INITIALIZER };
	pthread_t tr = t_spawn(reader_main, &rd);
	reader_wait(&rd, 1);
	CHECK_EQ(rd.first, 0xaaaa);

	struct op u = { .mm = child, .va = x, .len = 4096 };
	REQUIRE(hm__race_arm("unmap_before_flush", 0) == 0);
	pthread_t tu = t_spawn(do_munmap, &u);
	REQUIRE(hm__race_wait("unmap_before_flush", STOP_MS) == 0);
	t_poke(parent, x, 0xbbbb);	/* the child's count is gone */
	reader_go(&rd);
	reader_wait(&rd, 3);
	CHECK_EQ(rd.o.r, 0);
	CHECK_EQ(rd.second, 0xaaaa);	/* isolation: never the parent's write */
	hm__race_release("unmap_before_flush");
	pthread_join(tu, NULL);
	pthread_join(tr, NULL);
	hm__race_reset();
	CHECK_EQ(u.r, 0);
	CHECK_EQ(t_peek(parent, x), 0xbbbb);
	uint64_t v;
	CHECK_EQ(hm_read(child, x, &v, 8), -EFAULT);
	STEP(sys);
	/* The pin ends with the unmap's grace period: once the child is gone,
	 * the parent's other formerly shared page is reused in place. */
	hm_mm_destroy(child);
	uint64_t reuse = t_stat(sys, "cow_reuse");
	t_poke(parent, y, 0xdddd);
	CHECK_EQ(t_stat(sys, "cow_reuse"), reuse + 1);
	finish(sys, parent, NULL);
}

/*
 * A split under mmap_lock for reading (copy-on-write of a shared huge
 * page) against another thread's fault on the same huge page. The fault
 * found the huge leaf and looks at it again while the split holds it.
 * Fixed by keeping the entry invalid but not none, and a fault that finds
 * a non-present entry in an accessible VMA waiting for the table lock and
 * retrying. Reverted (entry cleared to none), the fault returns -EFAULT for
 * a write inside a writable VMA.
 */
static void split_vs_fault(void)
{
	struct hm_system *sys = race_system(HM_THP_ALWAYS);
	struct hm_mm *parent, *child;
	struct hm_mapping m;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, 2 * MiB, RW, PA, &a) == 0);
	t_poke(parent, a, 7);
	REQUIRE(hm_query(parent, a, &m) == 0 && m.size == 2 * MiB);
	REQUIRE(hm_fork(parent, &child) == 0);

	struct op w2 = { .mm = parent, .va = a + 8192, .val = 0x22 };
	struct op w1 = { .mm = parent, .va = a, .val = 0x11 };
	REQUIRE(hm__race_arm("fault_recheck", 0) == 0);
	pthread_t t2 = t_spawn(do_write, &w2);
	REQUIRE(hm__race_wait("fault_recheck", STOP_MS) == 0);
	REQUIRE(hm__race_arm("split_invalidated", 0) == 0);
	pthread_t t1 = t_spawn(do_write, &w1);
	REQUIRE(hm__race_wait("split_invalidated", STOP_MS) == 0);
	hm__race_release("fault_recheck");	/* w2 looks at the entry now */
	bool w2_done = t_join_within(t2, HOLD_MS);
	hm__race_release("split_invalidated");
	pthread_join(t1, NULL);
	if (!w2_done)
		pthread_join(t2, NULL);
	hm__race_reset();

	CHECK_EQ(w1.r, 0);
	CHECK_EQ(w2.r, 0);	/* never -EFAULT inside a writable VMA */
	CHECK_EQ(t_peek(parent, a), 0x11);
	CHECK_EQ(t_peek(parent, a + 8192), 0x22);
	CHECK_EQ(t_peek(child, a), 7);
	CHECK_EQ(t_peek(child, a + 8192), 0);
	CHECK_EQ(t_stat(sys, "cow_split_pmd"), 1);
	finish(sys, parent, child);
}

/*
 * fork against a write already under way through a writable translation.
 * Fixed by fork's shootdown waiting for accesses under way: fork returns
 * only after the write is done, and the child never sees memory change
 * after fork returned. Reverted (generation bump only), fork returns while
 * the write is in flight, and the write lands in the page the child shares.
 */
static void fork_vs_inflight(bool mprotect_first)
{
	struct hm_system *sys = race_system(HM_THP_NEVER);
	struct hm_mm *parent;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, 4 * 4096, RW, PA, &a) == 0);
	t_poke(parent, a, 1);

	struct op w = { .mm = parent, .va = a, .val = 2 };
	struct op f = { .mm = parent };
	REQUIRE(hm__race_arm("access_copy", 0) == 0);
	pthread_t tw = t_spawn(do_write, &w);	/* a TLB hit: no fault */
	REQUIRE(hm__race_wait("access_copy", STOP_MS) == 0);
	if (mprotect_first)	/* the leaf read-only: fork has nothing to wrprotect */
		CHECK_EQ(hm_mprotect(parent, a, 4096, PROT_READ), 0);
	pthread_t tf = t_spawn(do_fork, &f);
	bool forked_early = t_join_within(tf, HOLD_MS);
	uint64_t seen = forked_early && f.mm ? t_peek(f.mm, a) : 0;
	hm__race_release("access_copy");
	pthread_join(tw, NULL);
	if (!forked_early)
		pthread_join(tf, NULL);
	hm__race_reset();
	REQUIRE(f.r == 0 && f.mm);
	if (forked_early)	/* the child's memory must not change after fork */
		CHECK_EQ(t_peek(f.mm, a), seen);
	CHECK(!forked_early);
	CHECK_EQ(w.r, 0);
	if (mprotect_first)
		CHECK_EQ(hm_mprotect(parent, a, 4096, RW), 0);
	t_poke(parent, a, 3);
	CHECK_EQ(t_peek(f.mm, a), 2);	/* as it was when fork returned */
	finish(sys, parent, f.mm);
}

static void fork_vs_inflight_write(void) { fork_vs_inflight(false); }
/* The same after an mprotect made the leaf read-only without waiting for
 * the write in flight: fork must still wait for it. */
static void fork_after_mprotect(void) { fork_vs_inflight(true); }

/*
 * Copy-on-write right after the other mapper's copy: the other side's old
 * page is pinned until its grace period, and the write waits for it (without
 * mmap_lock) and reuses the page, every time. Reverted (no wait when the
 * pins are the only thing pending), about half of them copy.
 */
static void reuse_waits_for_pin(void)
{
	struct hm_system *sys = race_system(HM_THP_NEVER);
	struct hm_mm *parent, *child;
	uint64_t a;
	const unsigned n = 64;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, n * 4096, RW, PA, &a) == 0);
	for (unsigned i = 0; i < n; i++)
		t_poke(parent, a + i * 4096, i);
	REQUIRE(hm_fork(parent, &child) == 0);
	uint64_t reuse = t_stat(sys, "cow_reuse"), copy = t_stat(sys, "cow_copy");
	for (unsigned i = 0; i < n; i++) {
		t_poke(child, a + i * 4096, 1000 + i);	/* copies: pins the old page */
		t_poke(parent, a + i * 4096, 2000 + i);	/* alone now: reuses */
	}
	CHECK_EQ(t_stat(sys, "cow_copy"), copy + n);
	CHECK_EQ(t_stat(sys, "cow_reuse"), reuse + n);
	for (unsigned i = 0; i < n; i++) {
		CHECK_EQ(t_peek(parent, a + i * 4096), 2000 + i);
		CHECK_EQ(t_peek(child, a + i * 4096), 1000 + i);
	}
	finish(sys, parent, child);
}

/*
 * A fault that must wait for a pin's grace period does so without
 * mmap_lock: while a reader holds the grace period off, a munmap in the
 * faulting mm completes. Reverted (waiting with mmap_lock held for
 * reading), the munmap queues behind the fault, which waits for the reader.
 */
static void pin_wait_without_mmap_lock(void)
{
	struct hm_system *sys = race_system(HM_THP_NEVER);
	struct hm_mm *parent, *child;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	REQUIRE(hm_mmap(parent, 0, 8 * 4096, RW, PA, &a) == 0);
	uint64_t x = a, y = a + 4 * 4096;
	t_poke(parent, x, 1);
	t_poke(parent, y, 2);
	REQUIRE(hm_fork(parent, &child) == 0);

	struct op r = { .mm = child, .va = a + 4096 };
	REQUIRE(hm__race_arm("access_copy", 0) == 0);
	pthread_t tr = t_spawn(do_read, &r);	/* holds the grace period off */
	REQUIRE(hm__race_wait("access_copy", STOP_MS) == 0);
	CHECK_EQ(hm_munmap(child, x, 4096), 0);	/* pins x until a grace period */
	struct op w = { .mm = parent, .va = x, .val = 3 };
	pthread_t tw = t_spawn(do_write, &w);	/* waits for the pin */
	bool w_done = t_join_within(tw, HOLD_MS);
	struct op u = { .mm = parent, .va = y, .len = 4096 };
	pthread_t tu = t_spawn(do_munmap, &u);
	bool u_done = t_join_within(tu, NOWAIT_MS);
	CHECK(u_done);
	hm__race_release("access_copy");
	pthread_join(tr, NULL);
	if (!w_done)
		pthread_join(tw, NULL);
	if (!u_done)
		pthread_join(tu, NULL);
	hm__race_reset();
	CHECK_EQ(w.r, 0);
	CHECK_EQ(u.r, 0);
	CHECK_EQ(t_stat(sys, "cow_reuse"), 1);	/* waited, then reused */
	CHECK_EQ(t_peek(parent, x), 3);
	finish(sys, parent, child);
}

/*
 * A fault that finds memory full while unmaps are giving frames back waits
 * for them without mmap_lock: while a reader holds the grace period off, a
 * munmap in the faulting mm completes, and the fault then succeeds.
 * Reverted (the allocation waits under mmap_lock), the munmap queues behind
 * the fault.
 */
static void fault_waits_for_memory_without_mmap_lock(void)
{
	t_flags = 0;
	struct hm_system *sys = t_system(16 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, n = 0, v = 1;
	const uint64_t len = 32 * MiB;	/* more than memory */

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, len, RW, PA, &a) == 0);
	while (n * 4096 < len && hm_write(mm, a + n * 4096, &v, 8) == 0)
		n++;
	REQUIRE(n > 64 && n * 4096 < len);	/* memory is full */

	struct op r = { .mm = mm, .va = a };
	REQUIRE(hm__race_arm("access_copy", 0) == 0);
	pthread_t tr = t_spawn(do_read, &r);	/* holds the grace period off */
	REQUIRE(hm__race_wait("access_copy", STOP_MS) == 0);
	CHECK_EQ(hm_munmap(mm, a + 4096, 16 * 4096), 0);	/* frames pending */
	struct op w = { .mm = mm, .va = a + n * 4096, .val = 7 };
	pthread_t tw = t_spawn(do_write, &w);	/* needs one of them */
	bool w_done = t_join_within(tw, HOLD_MS);
	struct op u = { .mm = mm, .va = a + 32 * 4096, .len = 4096 };
	pthread_t tu = t_spawn(do_munmap, &u);
	bool u_done = t_join_within(tu, NOWAIT_MS);
	CHECK(u_done);
	hm__race_release("access_copy");
	pthread_join(tr, NULL);
	if (!w_done)
		pthread_join(tw, NULL);
	if (!u_done)
		pthread_join(tu, NULL);
	hm__race_reset();
	CHECK_EQ(r.r, 0);
	CHECK_EQ(w.r, 0);
	CHECK_EQ(u.r, 0);
	CHECK_EQ(t_peek(mm, a + n * 4096), 7);
	finish(sys, mm, NULL);
}

/*
 * Two mms of one anon_vma family fork at once. Each holds only its own
 * locks; the room each reserved in the family's member array must still
 * be there when it adds its child. Reverted (room checked, not held), the
 * second add overflows the array.
 */
static void concurrent_forks_one_family(void)
{
	struct hm_system *sys = race_system(HM_THP_NEVER);
	struct hm_mm *p, *c1, *c2;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &p) == 0);
	REQUIRE(hm_mmap(p, 0, 4096, RW, PA, &a) == 0);
	t_poke(p, a, 9);
	REQUIRE(hm_fork(p, &c1) == 0);
	REQUIRE(hm_fork(p, &c2) == 0);	/* the family: p, c1, c2; room for 4 */

	struct op f1 = { .mm = c1 }, f2 = { .mm = c2 };
	REQUIRE(hm__race_arm("fork_reserved", 0) == 0);
	pthread_t t1 = t_spawn(do_fork, &f1);
	REQUIRE(hm__race_wait("fork_reserved", STOP_MS) == 0);
	pthread_t t2 = t_spawn(do_fork, &f2);
	pthread_join(t2, NULL);
	hm__race_release("fork_reserved");
	pthread_join(t1, NULL);
	hm__race_reset();
	CHECK_EQ(f1.r, 0);
	CHECK_EQ(f2.r, 0);
	REQUIRE(f1.mm && f2.mm);
	CHECK_EQ(t_peek(f1.mm, a), 9);
	CHECK_EQ(t_peek(f2.mm, a), 9);
	struct hm_mapping m;
	CHECK_EQ(hm_query(p, a, &m), 0);
	CHECK_EQ(m.mapcount, 5);
	STEP(sys);
	hm_mm_destroy(f1.mm);
	hm_mm_destroy(f2.mm);
	hm_mm_destroy(c2);
	hm_mm_destroy(c1);
	hm_mm_destroy(p);
	STEP(sys);
	hm_system_destroy(sys);
}

/*
 * Map changes do not wait behind readers. A thread is stopped inside an
 * access (an RCU read section) to a page; munmap and mprotect of other
 * pages of the same mm, and munmap of that very page, complete. The page's
 * frame stays valid for the stopped access and is freed once it is done.
 * Reverted (the unmap waits for a grace period while holding mmap_lock),
 * munmap never returns while the reader is stopped.
 */
static void unmap_does_not_wait_for_readers(void)
{
	struct hm_system *sys = race_system(HM_THP_NEVER);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t free0 = t_stat(sys, "nr_free_pages");
	REQUIRE(hm_mmap(mm, 0, 8 * 4096, RW, PA, &a) == 0);
	for (int i = 0; i < 8; i++)
		t_poke(mm, a + i * 4096, 100 + i);

	struct op r = { .mm = mm, .va = a };
	REQUIRE(hm__race_arm("access_copy", 0) == 0);
	pthread_t tr = t_spawn(do_read, &r);
	REQUIRE(hm__race_wait("access_copy", STOP_MS) == 0);

	struct op p = { .mm = mm, .va = a + 4096, .len = 4096 };
	struct op u1 = { .mm = mm, .va = a + 2 * 4096, .len = 4096 };
	struct op u0 = { .mm = mm, .va = a, .len = 4096 };	/* the page being read */
	pthread_t tp = t_spawn(do_mprotect, &p);
	bool done_p = t_join_within(tp, NOWAIT_MS);
	pthread_t tu1 = t_spawn(do_munmap, &u1);
	bool done_u1 = t_join_within(tu1, NOWAIT_MS);
	pthread_t tu0 = t_spawn(do_munmap, &u0);
	bool done_u0 = t_join_within(tu0, NOWAIT_MS);
	CHECK(done_p);
	CHECK(done_u1);
	CHECK(done_u0);
	/* What they freed waits for the reader's grace period. */
	CHECK_EQ(t_stat(sys, "nr_free_pending"), 2);

	hm__race_release("access_copy");
	pthread_join(tr, NULL);
	if (!done_p)
		pthread_join(tp, NULL);
	if (!done_u1)
		pthread_join(tu1, NULL);
	if (!done_u0)
		pthread_join(tu0, NULL);
	hm__race_reset();
	CHECK_EQ(r.r, 0);
	CHECK_EQ(r.val, 100);	/* the frame was not reused under the reader */
	hm_drain(sys);
	CHECK_EQ(t_stat(sys, "nr_free_pending"), 0);
	CHECK_EQ(p.r, 0);
	CHECK_EQ(u1.r, 0);
	CHECK_EQ(u0.r, 0);
	uint64_t v = 0;
	CHECK_EQ(hm_read(mm, a, &v, 8), -EFAULT);
	CHECK_EQ(hm_write(mm, a + 4096, &v, 8), -EFAULT);
	CHECK_EQ(t_peek(mm, a + 3 * 4096), 103);
	STEP(sys);
	REQUIRE(hm_munmap(mm, a, 8 * 4096) == 0);
	STEP(sys);
	hm_drain(sys);	/* munmap frees after a grace period */
	CHECK_EQ(t_stat(sys, "nr_free_pages"), free0);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void *do_shrink(void *p)
{
	struct op *o = p;

	o->val = hm__thp_shrink((struct hm_system *)o->mm, o->len);
	return NULL;
}

/* A 2 MiB page of @mm mapped by PTEs, every page holding 1000 + i, and
 * page 0 unmapped: queued for the deferred split. */
static uint64_t queued_2m(struct hm_system *sys, struct hm_mm *mm)
{
	uint64_t a = 0;

	CHECK_EQ(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a), 0);
	for (unsigned i = 0; i < 512; i++)
		t_poke(mm, a + i * 4096, 1000 + i);
	CHECK_EQ(hm__split(mm, a, 0), 0);
	CHECK_EQ(hm_munmap(mm, a, 4096), 0);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 1);
	return a;
}

/*
 * A lock-free hm_folio_head of every page of a 2 MiB folio whose split to
 * 4 KiB folios is half done. Its tails are not marked (phys/page.h,
 * "Tails"): an unmarked page is found through its 2 MiB-aligned head, so
 * the split makes every tail a head of its own before the old head. Each
 * page must say either the old head (while that is still of order 9) or
 * itself (once it says PG_HEAD). Reverted (the head first), a page the
 * split has not reached finds a head of order 0 and no mark of its own:
 * hm_folio_head's assertion stops the test (at DEBUG 0 it names the page
 * itself, which does not say PG_HEAD, and the check fails).
 */
static void split_half_vs_head(void)
{
	struct hm_system *sys = race_system(HM_THP_ALWAYS);
	struct hm_phys *ph = &sys->phys;
	struct hm_mapping m;
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = queued_2m(sys, mm);
	REQUIRE(hm_query(mm, a + 4096, &m) == 0);
	uint32_t head = (uint32_t)(m.pa >> 12) - 1;
	REQUIRE(!(head & (HM_PTRS - 1)));

	struct op s = { .mm = (struct hm_mm *)sys, .len = 1 };
	REQUIRE(hm__race_arm("split_pmd_folio_half", 0) == 0);
	pthread_t ts = t_spawn(do_shrink, &s);
	REQUIRE(hm__race_wait("split_pmd_folio_half", STOP_MS) == 0);
	unsigned old = 0, own = 0, bad = 0;
	for (uint32_t i = 1; i < HM_PTRS; i++) {
		uint32_t h = hm_folio_head(ph, head + i);

		if (h == head && hm_pfn_page(ph, head)->order == HM_PMD_ORDER)
			old++;
		else if (h == head + i && (hm_pfn_page(ph, h)->flags & PG_HEAD))
			own++;
		else
			bad++;
	}
	hm__race_release("split_pmd_folio_half");
	pthread_join(ts, NULL);
	hm__race_reset();
	CHECK_EQ(bad, 0);
	CHECK(old > 0 && own > 0);	/* caught half way */
	CHECK_EQ(s.val, 1);		/* page 0 freed */
	CHECK_EQ(t_peek(mm, a + 511 * 4096), 1511);
	hm_drain(sys);
	finish(sys, mm, NULL);
}

/*
 * Folio split against an unmap of a page of the same folio. The zap has
 * cleared the PTE and looked up the page's head (the 2 MiB folio's), but
 * not locked it yet, when the split makes the page a folio of its own and
 * frees page 0. Fixed by looking the head up again under the lock: the
 * zap takes its count from the page's new folio, which it frees. Reverted,
 * it takes it from page 0's (freed) folio: the page stays counted as
 * mapped, leaks, and hm_check fails.
 */
static void split_vs_zap(void)
{
	struct hm_system *sys = race_system(HM_THP_ALWAYS);
	struct hm_mm *mm;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	uint64_t a = queued_2m(sys, mm);

	struct op u = { .mm = mm, .va = a + 4096, .len = 4096 };
	REQUIRE(hm__race_arm("folio_lock_of", 0) == 0);
	pthread_t tu = t_spawn(do_munmap, &u);
	REQUIRE(hm__race_wait("folio_lock_of", STOP_MS) == 0);
	CHECK_EQ(hm__thp_shrink(sys, 1), 1);	/* page 0 */
	hm__race_release("folio_lock_of");
	pthread_join(tu, NULL);
	hm__race_reset();
	CHECK_EQ(u.r, 0);
	CHECK_EQ(t_stat(sys, "thp_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 510);
	CHECK_EQ(hm_read(mm, a + 4096, &u.val, 8), -EFAULT);
	CHECK_EQ(t_peek(mm, a + 2 * 4096), 1002);
	CHECK_EQ(t_peek(mm, a + 511 * 4096), 1511);
	hm_drain(sys);
	finish(sys, mm, NULL);
}

/*
 * The same with a 1 GiB folio, whose tails are not marked (phys/page.h,
 * "Tails"), mapped by PMD leaves and its chunk 1 by PTEs: the zap of page
 * 1 of chunk 1 has found the 1 GiB head through hm_unmarked_head, not
 * locked it yet, when the split makes 512 folios of 2 MiB and frees chunk
 * 0. The zap's second look under that lock finds chunk 1's folio, and goes
 * round to it. The split marks every tail before it changes the old
 * head's order. Reverted to setting only the tails' order (as when 2 MiB
 * tails were marked at allocation), hm_check finds tails that say order 9
 * without PG_TAIL. (When 2 MiB tails were marked at allocation, the
 * second look found a frame that said neither head nor tail under a head
 * of order 9, and hm_folio_head's assertion stopped the test; now an
 * unmarked frame is looked up by its 2 MiB head first.)
 */
static void split_pud_vs_zap(void)
{
	t_flags = 0;
	struct hm_system *sys = t_system(2 * GiB, HM_THP_ALWAYS, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mapping m;
	struct hm_mm *mm;
	uint64_t a = 0, c1;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, GiB, RW, PA, &a) == 0);
	c1 = a + 2 * MiB;
	for (unsigned j = 0; j < 512; j++)
		t_poke(mm, a + j * 2 * MiB, 1000 + j);
	t_poke(mm, c1 + 4096, 0xc1);
	REQUIRE(hm_query(mm, a, &m) == 0);
	REQUIRE(m.size == GiB);
	CHECK_EQ(hm__split(mm, a, 1), 0);	/* 512 PMD leaves */
	CHECK_EQ(hm__split(mm, c1, 0), 0);	/* chunk 1: 512 PTEs */
	CHECK_EQ(hm_munmap(mm, a, 2 * MiB), 0);
	CHECK_EQ(t_stat(sys, "thp_deferred_split_page"), 1);
	STEP(sys);

	struct op u = { .mm = mm, .va = c1 + 4096, .len = 4096 };
	REQUIRE(hm__race_arm("folio_lock_of", 0) == 0);
	pthread_t tu = t_spawn(do_munmap, &u);
	REQUIRE(hm__race_wait("folio_lock_of", STOP_MS) == 0);
	CHECK_EQ(hm__thp_shrink(sys, 1), 512);	/* chunk 0 */
	hm__race_release("folio_lock_of");
	pthread_join(tu, NULL);
	hm__race_reset();
	CHECK_EQ(u.r, 0);
	CHECK_EQ(t_stat(sys, "thp_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 511 * 512);
	CHECK_EQ(hm_read(mm, c1 + 4096, &u.val, 8), -EFAULT);
	CHECK_EQ(t_peek(mm, c1), 1001);
	CHECK_EQ(t_peek(mm, c1 + 2 * 4096), 0);
	CHECK_EQ(t_peek(mm, a + 2 * 2 * MiB), 1002);
	CHECK_EQ(t_peek(mm, a + 511 * 2 * MiB), 1511);
	hm_drain(sys);
	finish(sys, mm, NULL);
}

/*
 * The same against a copy-on-write: the child's write to a page shared
 * with the parent copies it, and is about to take the old page's count
 * (its third folio lock: reuse decision, the copy's map, the old page's
 * unmap) when the split runs. Reverted, the count and the pin go to page
 * 0's freed folio; the page keeps a count nothing maps.
 */
static void split_vs_cow(void)
{
	struct hm_system *sys = race_system(HM_THP_ALWAYS);
	struct hm_mm *parent, *child;

	REQUIRE(hm_mm_create(sys, &parent) == 0);
	uint64_t a = queued_2m(sys, parent);
	REQUIRE(hm_fork(parent, &child) == 0);
	hm_drain(sys);	/* no pin left from the unmaps */

	struct op w = { .mm = child, .va = a + 4096, .val = 0xc1 };
	REQUIRE(hm__race_arm("folio_lock_of", 2) == 0);
	pthread_t tw = t_spawn(do_write, &w);
	REQUIRE(hm__race_wait("folio_lock_of", STOP_MS) == 0);
	CHECK_EQ(hm__thp_shrink(sys, 1), 1);
	hm__race_release("folio_lock_of");
	pthread_join(tw, NULL);
	hm__race_reset();
	CHECK_EQ(w.r, 0);
	CHECK_EQ(t_stat(sys, "thp_split_page"), 1);
	CHECK_EQ(t_stat(sys, "cow_copy"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 512);	/* 511 + the copy */
	CHECK_EQ(t_peek(child, a + 4096), 0xc1);
	CHECK_EQ(t_peek(parent, a + 4096), 1001);
	struct hm_mapping m;
	CHECK_EQ(hm_query(parent, a + 4096, &m), 0);
	CHECK_EQ(m.mapcount, 1);
	hm_drain(sys);
	finish(sys, parent, child);
}

/*
 * The underused shrinker against a write in flight to a zero-filled page
 * (through a translation the writer cached before). It write-protects the
 * folio and waits a grace period before it decides which pages are zero,
 * so the write lands first and its page is kept. Reverted (the pages read
 * at once), the page is dropped and the write lost.
 */
static void underused_vs_inflight_write(void)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm;
	uint64_t a;

	hm_config_default(&cfg);
	cfg.phys_bytes = 64 * MiB;
	cfg.thp_pud = HM_THP_NEVER;
	cfg.khugepaged_max_ptes_none = 0;
	REQUIRE(hm_system_create(&cfg, &sys) == 0);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 2 * MiB, RW, PA, &a) == 0);
	t_poke(mm, a + 3 * 4096, 33);
	CHECK_EQ(hm__split(mm, a, 0), 0);

	struct op w = { .mm = mm, .va = a + 7 * 4096, .val = 77 };
	REQUIRE(hm__race_arm("access_copy", 0) == 0);
	pthread_t tw = t_spawn(do_write, &w);
	REQUIRE(hm__race_wait("access_copy", STOP_MS) == 0);
	struct op s = { .mm = (struct hm_mm *)sys, .len = 512 };
	pthread_t ts = t_spawn(do_shrink, &s);
	bool s_done = t_join_within(ts, HOLD_MS);	/* waits for the writer */
	hm__race_release("access_copy");
	pthread_join(tw, NULL);
	if (!s_done)
		pthread_join(ts, NULL);
	hm__race_reset();
	CHECK(!s_done);
	CHECK_EQ(w.r, 0);
	CHECK_EQ(s.val, 510);
	CHECK_EQ(t_stat(sys, "thp_underused_split_page"), 1);
	CHECK_EQ(t_stat(sys, "nr_anon_pages"), 2);
	CHECK_EQ(t_peek(mm, a + 7 * 4096), 77);
	CHECK_EQ(t_peek(mm, a + 3 * 4096), 33);
	hm_drain(sys);
	finish(sys, mm, NULL);
}

T_MAIN(T(split_half_vs_head), T(cow_counts_vs_split_pmd), T(cow_counts_vs_split_pud), T(unmap_pin_vs_reuse),
       T(split_vs_fault), T(fork_vs_inflight_write), T(fork_after_mprotect),
       T(reuse_waits_for_pin), T(pin_wait_without_mmap_lock),
       T(fault_waits_for_memory_without_mmap_lock), T(concurrent_forks_one_family),
       T(unmap_does_not_wait_for_readers), T(split_vs_zap), T(split_pud_vs_zap), T(split_vs_cow),
       T(underused_vs_inflight_write))
