/* SPDX-License-Identifier: MIT */
/*
 * Deferred freeing, after the kernel's mmu_gather (see pgtable.h).
 *
 * A lock-free walker (the software TLB's refill) may be reading a table that
 * an operation just unlinked, and a thread may be copying bytes through a
 * TLB entry for a frame that was just unmapped. Both happen inside RCU read
 * sections, so what an unmap takes out is freed after a grace period, from
 * a call_rcu callback: the unmapping thread bumps the TLB generation and
 * goes on without waiting. Folios that are still mapped elsewhere are
 * pinned until then, so that no other address space reuses one in place
 * while a stale translation of ours can still reach it.
 */
#include <stdlib.h>

#include "../base/race.h"
#include "pgtable.h"

enum { E_TABLE, E_FOLIO, E_PIN };

#define E_SHIFT 30
#define E_PFN(e)  ((e) & ((1u << E_SHIFT) - 1))
#define E_KIND(e) ((e) >> E_SHIFT)

_Static_assert(((4ull << 40) >> HM_PAGE_SHIFT) <= (1ull << E_SHIFT), "a pfn fits in 30 bits");

/* A heap batch if one can be had, else the one on the stack. */
static void batch_get(struct hm_gather *g)
{
	g->b = hm_malloc(&g->pc->ph->fail, sizeof(*g->b));
	if (!g->b)
		g->b = &g->local;
	g->b->pc = g->pc;
	g->b->n = 0;
}

void hm_gather_init(struct hm_gather *g, struct hm_ptcache *pc, uint64_t *tlb_gen)
{
	g->pc = pc;
	g->tlb_gen = tlb_gen;
	g->tlb = false;
	batch_get(g);
}

void hm_gather_init_rcu(struct hm_gather *g, struct hm_ptcache *pc)
{
	hm_gather_init(g, pc, NULL);
}

static void add(struct hm_gather *g, uint32_t pfn, unsigned kind)
{
	hm_assert(hm_gather_room(g, 1));
	g->tlb = true;
	g->b->e[g->b->n++] = pfn | (uint32_t)kind << E_SHIFT;
}

void hm_gather_table(struct hm_gather *g, uint32_t pfn)
{
	add(g, pfn, E_TABLE);
}

void hm_gather_folio(struct hm_gather *g, uint32_t head)
{
	hm_assert_int(hm_pfn_page(g->pc->ph, head)->flags & PG_HEAD);
	add(g, head, E_FOLIO);
}

void hm_gather_pin(struct hm_gather *g, uint32_t head)
{
	add(g, head, E_PIN);
}

/* Free what a batch holds. Context: a grace period has passed since every
 * entry was unlinked and the TLB generation bumped. */
static void batch_release(struct hm_gather_batch *b)
{
	struct hm_ptcache *pc = b->pc;
	struct hm_phys *ph = pc->ph;

	hm_race_point("gather_before_free");
	/* Under the cache lock, so that hm_check sees every frame either
	 * pending or free. */
	hm_mutex_lock(&pc->lock);
	for (uint32_t i = 0; i < b->n; i++) {
		uint32_t pfn = E_PFN(b->e[i]);
		struct hm_page *pg = hm_pfn_page(ph, pfn);

		switch (E_KIND(b->e[i])) {
		case E_TABLE:
			hm_pt_free_locked(pc, pfn);
			break;
		case E_FOLIO: {
			unsigned order = folio_order(pg);

			/* Out of "pending" before into "free": nr_free_pages adds
			 * the two and must never exceed physical memory. */
			hm_sub(&pc->nr_pending_frames, 1u << order);
			hm_free_frames_locked(pc, pfn, order);
			break;
		}
		case E_PIN:
			/* Release: what the unmapping side did before (a copy
			 * from the page) happens before a reuse that sees 0. */
			__atomic_sub_fetch(hm_pin_slot(ph, pfn), 1, __ATOMIC_RELEASE);
			break;
		}
	}
	hm_mutex_unlock(&pc->lock);
}

static void batch_free_rcu(struct rcu_head *head)
{
	struct hm_gather_batch *b = (struct hm_gather_batch *)head;

	hm_tsan_gp_acquire();
	batch_release(b);
	free(b);
	hm_tsan_gp_release();
}

static void table_free_rcu(struct rcu_head *head)
{
	struct hm_ptdesc *d = (struct hm_ptdesc *)((char *)head - offsetof(struct hm_ptdesc, rcu));

	hm_tsan_gp_acquire();
	hm_pt_free(d->pc, d->pfn);	/* may free d */
	hm_tsan_gp_release();
}

/* Count what the batch will free as pending, before anyone can see it go. */
static void batch_mark_pending(struct hm_gather_batch *b)
{
	struct hm_ptcache *pc = b->pc;
	uint32_t tables = 0;

	hm_mutex_lock(&pc->lock);
	for (uint32_t i = 0; i < b->n; i++) {
		uint32_t pfn = E_PFN(b->e[i]);
		struct hm_page *pg = hm_pfn_page(pc->ph, pfn);

		if (E_KIND(b->e[i]) == E_TABLE) {
			hm_assert(hm_ptdesc(pc->ph, pfn)->nr_deposited == 0);
			pg->flags = (pg->flags & PG_PT_SLOT) | PG_PT_PENDING;
			tables++;
		} else if (E_KIND(b->e[i]) == E_FOLIO) {
			/* Atomic: reclaim may look at a folio it popped off
			 * the LRU as it goes. */
			__atomic_or_fetch(&pg->flags, PG_FREEING, __ATOMIC_RELAXED);
			hm_add(&pc->nr_pending_frames, folio_nr_pages(pg));
		}
	}
	hm_sub(&pc->nr_tables, tables);
	hm_add(&pc->nr_pending, tables);
	hm_mutex_unlock(&pc->lock);
}

/*
 * Hand the batch to RCU. With no heap batch, tables go one by one through
 * their own rcu_head (no allocation, no wait) and the rest is freed after
 * waiting for a grace period here: the price of running out of memory.
 */
static void batch_flush(struct hm_gather *g)
{
	struct hm_gather_batch *b = g->b;

	if (!b->n && !g->tlb)
		return;
	if (b->n)
		batch_mark_pending(b);
	hm_race_point("unmap_before_flush");
	/* Every TLB entry filled before this point is stale from now on; the
	 * grace period below starts after it. */
	if (g->tlb_gen)
		__atomic_add_fetch(g->tlb_gen, 1, __ATOMIC_RELEASE);
	g->tlb = false;
	if (!b->n)
		return;
	if (b != &g->local) {
		g->b = NULL;	/* RCU's now */
		hm_rcu_call(&b->rcu, batch_free_rcu);
		return;
	}
	uint32_t kept = 0;
	for (uint32_t i = 0; i < b->n; i++) {
		uint32_t pfn = E_PFN(b->e[i]);

		if (E_KIND(b->e[i]) == E_TABLE)
			hm_rcu_call(&hm_ptdesc(g->pc->ph, pfn)->rcu, table_free_rcu);
		else
			b->e[kept++] = b->e[i];
	}
	b->n = kept;
	if (kept) {
		hm_rcu_synchronize();
		batch_release(b);
	}
	b->n = 0;
}

void hm_gather_next(struct hm_gather *g)
{
	hm_might_sleep();
	batch_flush(g);
	if (!g->b || g->b == &g->local)
		batch_get(g);
}

void hm_gather_finish(struct hm_gather *g)
{
	hm_might_sleep();
	batch_flush(g);
	if (g->b != &g->local)
		free(g->b);	/* empty, or NULL */
	g->b = NULL;
}

/* Per thread; initial-exec: a library linked at start-up has its TLS in
 * the static block, and this is on every fault's path. */
static __thread struct {
	int deferred;		/* > 0: record, do not wait */
	bool wanted;
} drain __attribute__((tls_model("initial-exec")));

bool hm_ptcache_drain(struct hm_ptcache *pc)
{
	if (!hm_load_relaxed(&pc->nr_pending) && !hm_load_relaxed(&pc->nr_pending_frames))
		return false;
	if (drain.deferred) {
		drain.wanted = true;
		return false;
	}
	hm_rcu_barrier();
	return true;
}

void hm_drain_defer_begin(void)
{
	drain.deferred++;
	drain.wanted = false;
}

bool hm_drain_defer_wait(void)
{
	if (!drain.deferred)
		return false;
	drain.wanted = true;
	return true;
}

bool hm_drain_was_wanted(void)
{
	return drain.deferred && drain.wanted;
}

bool hm_drain_defer_end(void)
{
	hm_assert(drain.deferred > 0);
	drain.deferred--;
	return drain.wanted;
}
