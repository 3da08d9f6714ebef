/* SPDX-License-Identifier: MIT */
/*
 * Deferred freeing, after the kernel's mmu_gather.
 *
 * A lock-free walker (the software TLB's refill) may be reading a table that
 * an operation just unlinked, and a thread may be copying bytes through a
 * TLB entry for a frame that was just unmapped. Both happen inside RCU read
 * sections, so:
 *   - frames are freed only after a grace period (synchronize, like the
 *     shootdown IPI that a CPU must answer before the kernel frees pages);
 *   - tables are freed after a grace period too: if the operation waited
 *     for one anyway they are freed at once, otherwise they go to call_rcu
 *     in batches of about a thousand, with a per-table rcu_head as the
 *     fallback when a batch cannot be allocated.
 */
#include <stdlib.h>

#include "pgtable.h"

#define BATCH_MAX ((4096 - 32) / sizeof(uint32_t))

struct hm_table_batch {
	struct rcu_head rcu;
	struct hm_ptcache *pc;
	uint32_t n;
	uint32_t pfn[BATCH_MAX];
};

void hm_gather_init(struct hm_gather *g, struct hm_ptcache *pc, uint64_t *tlb_gen)
{
	g->pc = pc;
	g->tlb_gen = tlb_gen;
	g->batch = NULL;
	g->folios = HM_PFN_NONE;
	g->flush = false;
}

static void batch_free_rcu(struct rcu_head *head)
{
	struct hm_table_batch *b = (struct hm_table_batch *)head;

	hm_tsan_gp_acquire();
	for (uint32_t i = 0; i < b->n; i++)
		hm_pt_free(b->pc, b->pfn[i]);
	free(b);
	hm_tsan_gp_release();
}

static void table_free_rcu(struct rcu_head *head)
{
	struct hm_page *pg = (struct hm_page *)((char *)head - offsetof(struct hm_page, rcu));

	hm_tsan_gp_acquire();
	struct hm_ptcache *pc = (struct hm_ptcache *)(uintptr_t)pg->owner;
	hm_pt_free(pc, hm_page_pfn(pc->ph, pg));
	hm_tsan_gp_release();
}

static void mark_pending(struct hm_ptcache *pc, uint32_t pfn)
{
	struct hm_page *pg = hm_pfn_page(pc->ph, pfn);

	hm_assert(pg->pt.nr_deposited == 0);
	pg->flags = (pg->flags & PG_PT_SLOT) | PG_PT_PENDING;
	hm_sub(&pc->nr_tables, 1);
	hm_mutex_lock(&pc->lock);
	pc->nr_pending++;
	hm_mutex_unlock(&pc->lock);
}

void hm_gather_table(struct hm_gather *g, uint32_t pfn)
{
	struct hm_ptcache *pc = g->pc;

	mark_pending(pc, pfn);
	if (!g->batch) {
		g->batch = hm_malloc(&pc->ph->fail, sizeof(*g->batch));
		if (g->batch) {
			g->batch->pc = pc;
			g->batch->n = 0;
		}
	}
	if (!g->batch) {
		struct hm_page *pg = hm_pfn_page(pc->ph, pfn);

		pg->owner = (uint64_t)(uintptr_t)pc;
		hm_rcu_call(&pg->rcu, table_free_rcu);
		return;
	}
	g->batch->pfn[g->batch->n++] = pfn;
	if (g->batch->n == BATCH_MAX) {
		hm_rcu_call(&g->batch->rcu, batch_free_rcu);
		g->batch = NULL;
	}
}

void hm_gather_folio(struct hm_gather *g, uint32_t head)
{
	struct hm_page *pg = hm_pfn_page(g->pc->ph, head);

	hm_assert_int(pg->flags & PG_HEAD);
	pg->lru.next = g->folios;
	g->folios = head;
	g->flush = true;
}

void hm_gather_finish(struct hm_gather *g)
{
	struct hm_ptcache *pc = g->pc;
	struct hm_phys *ph = pc->ph;

	if (!g->flush && !g->batch)
		return;
	/* Every TLB entry filled before this point is stale from now on. */
	__atomic_add_fetch(g->tlb_gen, 1, __ATOMIC_RELEASE);
	if (!g->flush) {
		hm_rcu_call(&g->batch->rcu, batch_free_rcu);
		g->batch = NULL;
		return;
	}
	hm_rcu_synchronize();
	while (g->folios != HM_PFN_NONE) {
		uint32_t head = g->folios;
		struct hm_page *pg = hm_pfn_page(ph, head);

		g->folios = pg->lru.next;
		hm_free_frames(pc, head, pg->order);
	}
	if (g->batch) {
		for (uint32_t i = 0; i < g->batch->n; i++)
			hm_pt_free(pc, g->batch->pfn[i]);
		free(g->batch);
		g->batch = NULL;
	}
	g->flush = false;
}
