/* SPDX-License-Identifier: MIT */
/*
 * Migration: move folios to other frames (another node, or out of a block
 * that compaction empties), for every address space that maps them, with
 * migration entries, as the kernel's migrate_pages():
 *
 *   isolate    each folio (lru.c): from then on it is ours, nobody pins it,
 *              reclaim and splits leave it alone.
 *   lock       the mmap_locks of its mappers for reading (vmscan.c's
 *              lockset, trylocks): nothing unmaps, remaps, forks or frees a
 *              table under us; only faults run, and they wait for us.
 *   unmap      every leaf that maps the folio, in every mapper, becomes a
 *              migration entry under its table lock (entry.h), keeping
 *              what the leaf was; map counts stay as they are, so for the
 *              rest of mm the folio is still mapped. The TLB generation is
 *              bumped. The folio's descriptor state moves to the new frames
 *              now (map counts, rmap, mm slots, flags, deferred queue, swap
 *              cache pointers): lock-free lookups that may still find the
 *              old frames (the swap cache) are inside RCU read sections.
 *   (one grace period for the whole batch: no access through a
 *              translation of the old frames is still under way, so no
 *              write can land in them after the copy)
 *   copy       the data, then every migration entry becomes the leaf it
 *              was, on the new frames; the old frames are freed and the new
 *              folio goes on the LRU list.
 *
 * A fault that meets a migration entry waits until it is gone (fault.c).
 * A 1 GiB folio moves whole through PUD migration entries when a 1 GiB
 * block can be had on the target; else it is split into 2 MiB folios (its
 * PUD leaves into PMD leaves, with their deposits) that move one by one
 * (thp_migration_split). A 2 MiB one without a 2 MiB target is split into
 * 4 KiB ones the same way. The batch itself does not compact (it holds
 * isolated folios and its mappers' mmap_locks: compaction would be a
 * migration nested in it); hm_migrate compacts for its huge folios before
 * the batch and hands the blocks in through ctl->alloc (migrate_range.c).
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/race.h"
#include "folio.h"
#include "folio_split.h"
#include "lru.h"
#include "migrate.h"
#include "reclaim.h"
#include "split.h"
#include "stat.h"
#include "table.h"
#include "types.h"

#define BATCH 256u	/* folios per grace period */

struct mig {
	uint32_t old, new;	/* heads */
	unsigned order;
	uint64_t leaves;	/* leaves made migration entries */
	bool ok;		/* to move; else undone */
};

/* ---- entries ---------------------------------------------------------- */

static int to_migration(struct hm_mm *mm, hm_pte_t *slot, hm_pte_t e, unsigned level, uint64_t va, void *arg)
{
	struct mig *m = arg;

	(void)mm, (void)va, (void)e;
	/* A walker may set A/D until the entry is replaced: keep its bits. */
	hm_pte_t old = pt_get(slot);
	while (!pt_cmpxchg(slot, old, pt_mk_migration(old, level)))
		old = pt_get(slot);
	m->leaves++;
	return 0;
}

/* Every migration entry of @m's old frames in @mm becomes the leaf it was,
 * on frames @to (the new ones, or the old ones to give up). The folio is
 * mapped at its recorded address in every mapper (no mremap), so its
 * range is all we look at. */
static void restore(struct hm_mm *mm, const struct mig *m, uint32_t to)
{
	struct hm_phys *ph = mm_phys(mm);
	uint32_t nr = 1u << m->order;
	uint64_t va = folio_va(hm_pfn_page(ph, to));
	uint64_t end = va + ((uint64_t)nr << HM_PAGE_SHIFT);

	while (va < end) {
		unsigned level;
		hm_pte_t *slot = hm_pt_walk(ph, mm->root, mm->sys->top, va, &level);
		hm_pte_t e = pt_get(slot);

		if (pt_is_migration(e)) {
			hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(ph, slot));

			hm_spin_lock(lock);
			e = pt_get(slot);
			uint32_t pfn = pt_migration_pfn(e);
			if (pt_is_migration(e) && pfn - m->old < nr)
				pt_set(slot, pt_migration_leaf(e, to + (pfn - m->old)));
			hm_spin_unlock(lock);
		}
		va = HM_ALIGN_DOWN(va, hm_level_size(level)) + hm_level_size(level);
	}
}

/* ---- descriptors ------------------------------------------------------- */

/*
 * The folio's state goes to the new frames, which nothing maps or can find
 * yet (every leaf is a migration entry, the folio is isolated). Map counts
 * and mm slots, rmap, flags are copied descriptor by descriptor (the ones
 * a split left on tails and chunks included); what links the folio by its
 * head (the deferred queue, the swap cache) is moved.
 */
static void move_state(struct hm_system *sys, const struct mig *m)
{
	struct hm_phys *ph = &sys->phys;
	struct hm_page *o = hm_pfn_page(ph, m->old), *n = hm_pfn_page(ph, m->new);
	uint32_t nr = 1u << m->order;
	hm_spin_t *lock = hm_folio_lock(sys, m->old);
	bool queued, partial = false;

	hm_spin_lock(lock);
	queued = hm_load_relaxed(&o->flags) & PG_DEFERRED;
	if (queued) {
		partial = hm_deferred_partial_locked(sys, m->old);
		hm_deferred_del_locked(sys, m->old);
	}
	hm_page_copy_state(n, o, nr);
	if (hm_load_relaxed(&o->flags) & PG_SWAPCACHE)
		hm_swap_cache_move(&sys->swap, o->swap, nr, m->old, m->new);
	hm_spin_unlock(lock);
	if (queued) {
		lock = hm_folio_lock(sys, m->new);
		hm_spin_lock(lock);
		hm_deferred_readd_locked(sys, m->new, partial);
		hm_spin_unlock(lock);
	}
}

/* ---- targets ----------------------------------------------------------- */

uint32_t hm_migrate_alloc_node(struct hm_system *sys, unsigned node, unsigned order)
{
	struct hm_phys *ph = &sys->phys;

	/* The frames kept for swap-ins are not for moving pages around. */
	if (hm_below_reserve(sys, order))
		return HM_PFN_NONE;
	uint32_t pfn = hm_alloc_pages(ph, node, order, HM_ALLOC_THISNODE);

	if (pfn == HM_PFN_NONE && hm_ptcache_shrink(&sys->pc))
		pfn = hm_alloc_pages(ph, node, order, HM_ALLOC_THISNODE);
	return pfn;
}

static uint32_t alloc_target(struct hm_system *sys, const struct hm_migrate_ctl *ctl, unsigned order)
{
	if (ctl->alloc)
		return ctl->alloc(sys, order, ctl->arg);
	return hm_migrate_alloc_node(sys, ctl->node, order);
}

/* Undo an allocation that was not used. */
static void free_target(struct hm_system *sys, uint32_t pfn, unsigned order)
{
	hm_free_frames(&sys->pc, pfn, order);
}

/* ---- the split fallback ------------------------------------------------- */

/* What became of a folio split_folio was asked to split. */
enum split_res {
	SPLIT_DONE,	/* split: its mapped pieces isolated */
	SPLIT_NOMEM,	/* a table for the leaves' split could not be had */
	SPLIT_BUSY,	/* pinned, isolated by reclaim, or split by someone
			 * else meanwhile: worth another try */
	SPLIT_GONE,	/* lost its last mapping (unmapped, swapped out):
			 * nothing left to move */
};

/*
 * No block of the folio's order on the target: split it one order down, its
 * whole-folio leaves first (PUD -> PMD, PMD -> PTE, from the deposits), so
 * that its pieces can move one by one. The folio is given back first (a
 * folio split leaves isolated ones alone), so anything may happen to it
 * before we split it: the result says what did. Mapped pieces that cannot
 * be isolated (pinned) are counted in *unisolated.
 * Context: the mappers' mmap_locks (@ls), no spinlock.
 */
static enum split_res split_folio(struct hm_system *sys, uint32_t head, const struct hm_lockset *ls,
				  uint32_t *pieces, unsigned *npieces, unsigned *unisolated)
{
	struct hm_phys *ph = &sys->phys;
	struct hm_page *h = hm_pfn_page(ph, head);
	unsigned order = folio_order(h), level = order / HM_PMD_ORDER;
	uint64_t va = folio_va(h);
	enum split_res res = SPLIT_GONE;

	*npieces = 0;
	*unisolated = 0;
	hm_folio_putback(sys, head, false);
	for (unsigned i = 0; i < ls->n; i++) {
		struct hm_mm *mm = ls->mm[i];
		struct hm_split_tables st = { .n = 0 };
		unsigned l;
		hm_pte_t *slot = hm_pt_walk(ph, mm->root, sys->top, va, &l);
		hm_pte_t e = pt_get(slot);

		if (l != level || !pt_mapped(e) || pt_pfn(e, l) != head)
			continue;
		hm_race_point("migrate_split_leaf");
		if (hm_split_table_lazy(mm, &st))
			return SPLIT_NOMEM;
		/* A copy-on-write in this mapper may have put another folio
		 * there since we looked: split only a leaf of ours. */
		hm_split_leaf_of(mm, slot, level, head, &st);
		hm_split_done(mm, &st);
	}
	struct hm_split_result sr = { 0 };
	struct hm_gather g;
	bool done = false;

	hm_mutex_lock(&sys->split_lock);
	hm_gather_init_rcu(&g, &sys->pc);
	hm_folio_lock_all(sys);
	uint32_t flags = hm_load_relaxed(&h->flags);

	if ((flags & PG_HEAD) && !(flags & PG_FREEING) && folio_mapped(h)) {
		/* Still mapped: the folio we split the leaves of, or its
		 * pieces if reclaim or the deferred-split shrinker split it. */
		if (folio_order(h) == order)
			done = hm_folio_split_locked(sys, head, &g, &sr);
		res = done ? SPLIT_DONE : SPLIT_BUSY;
	}
	/* The pieces still mapped now are isolated inside a read section
	 * begun before any of them can lose its last mapping: a copy-on-write
	 * frees one only after a grace period. */
	hm_rcu_read_lock();
	uint32_t step = 1u << (order - HM_PMD_ORDER);
	bool mapped[HM_PTRS];
	for (uint32_t i = 0; done && i < HM_PTRS; i++)
		mapped[i] = folio_mapped(hm_pfn_page(ph, head + i * step));
	hm_folio_unlock_all(sys);
	for (uint32_t i = 0; done && i < HM_PTRS; i++) {
		if (!mapped[i])
			continue;
		if (hm_folio_isolate_migrate(sys, head + i * step))
			pieces[(*npieces)++] = head + i * step;
		else
			++*unisolated;
	}
	hm_rcu_read_unlock();
	hm_gather_finish(&g);
	hm_mutex_unlock(&sys->split_lock);
	return res;
}

/* ---- batches ------------------------------------------------------------ */

struct work {
	uint32_t *heads;	/* isolated folios to do: the caller's, then
				 * split pieces */
	size_t n, cap;
	uint32_t pieces[HM_PTRS];	/* of a split */
	unsigned left;		/* folios given back unmoved (or pieces
				 * that could not be isolated): worth a
				 * second look after a grace period */
};

static int work_push(struct hm_system *sys, struct work *w, uint32_t head)
{
	if (w->n == w->cap) {
		size_t cap = HM_MAX(2 * w->cap, 64);
		uint32_t *p = hm_realloc(&sys->phys.fail, w->heads, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		w->heads = p;
		w->cap = cap;
	}
	w->heads[w->n++] = head;
	return 0;
}


struct batch {
	struct hm_system *sys;
	const struct hm_migrate_ctl *ctl;
	struct hm_lockset ls;
	struct mig m[BATCH];
	unsigned n;
	unsigned moved;
	unsigned left;		/* given back unmoved in finish_batch */
	bool busy, nomem;
};

static void fail_folio(struct hm_system *sys, unsigned order)
{
	hm_add(&sys->events[HM_STAT_pgmigrate_fail], 1u << order);
	if (order)
		hm_count(sys, HM_STAT_thp_migration_fail);
}

/* Take the isolated @head into the batch: its mappers locked, a target
 * allocated; or split (pieces pushed on @w), or given back. */
static void take(struct batch *b, struct work *w, uint32_t head)
{
	struct hm_system *sys = b->sys;
	int r;

	unsigned order = folio_order(hm_pfn_page(&sys->phys, head));

	if ((r = hm_lockset_add_mappers(sys, head, &b->ls))) {
		hm_folio_putback(sys, head, false);
		w->left++;
		if (r == -EBUSY)
			b->busy = true;
		else
			b->nomem = true;
		return;
	}
	uint32_t to = alloc_target(sys, b->ctl, order);
	if (to != HM_PFN_NONE) {
		b->m[b->n++] = (struct mig){ .old = head, .new = to, .order = order };
		return;
	}
	if (order && !(hm_load_relaxed(&hm_pfn_page(&sys->phys, head)->flags) & PG_SWAPCACHE)) {
		size_t before = w->n;
		bool room = true;

		/* Room for the pieces first: a split we cannot follow up is
		 * no use. */
		for (uint32_t i = 0; i < HM_PTRS && room; i++)
			room = !work_push(sys, w, head + i * (1u << (order - HM_PMD_ORDER)));
		w->n = before;
		if (!room) {
			hm_folio_putback(sys, head, false);
			goto nomem;
		}
		/* (split_folio gives it back, split or not) */
		unsigned np, unisolated;

		switch (split_folio(sys, head, &b->ls, w->pieces, &np, &unisolated)) {
		case SPLIT_DONE:
			hm_count(sys, HM_STAT_thp_migration_split);
			for (uint32_t i = 0; i < np; i++)
				work_push(sys, w, w->pieces[i]);
			/* Pinned pieces stay; the pin goes after a grace
			 * period (the caller looks again then). */
			hm_add(&sys->events[HM_STAT_pgmigrate_fail], (uint64_t)unisolated << (order - HM_PMD_ORDER));
			w->left += unisolated;
			return;
		case SPLIT_NOMEM:
			goto nomem;
		case SPLIT_BUSY:
			/* as a busy mapper: no failure, worth a retry */
			w->left++;
			b->busy = true;
			return;
		case SPLIT_GONE:
			return;	/* neither moved nor failed: not there */
		}
	}
	hm_folio_putback(sys, head, false);
nomem:
	fail_folio(sys, order);
	w->left++;
	b->nomem = true;
}

/* Make every leaf of each folio a migration entry, and check that we found
 * all of its mappings (map counts stay: the entries keep them). */
static void unmap_batch(struct batch *b)
{
	struct hm_system *sys = b->sys;

	for (unsigned i = 0; i < b->n; i++) {
		struct mig *m = &b->m[i];

		for (unsigned k = 0; k < b->ls.n; k++)
			hm_for_each_leaf_of(b->ls.mm[k], m->old, to_migration, m);
		hm_spin_t *lock = hm_folio_lock(sys, m->old);

		hm_spin_lock(lock);
		m->ok = m->leaves && (uint64_t)folio_mapcount(hm_pfn_page(&sys->phys, m->old)) == m->leaves;
		hm_spin_unlock(lock);
		if (m->ok)
			move_state(sys, m);
	}
	for (unsigned k = 0; k < b->ls.n; k++)
		hm_tlb_flush(b->ls.mm[k]);
}

static void finish_batch(struct batch *b)
{
	struct hm_system *sys = b->sys;
	struct hm_phys *ph = &sys->phys;

	for (unsigned i = 0; i < b->n; i++) {
		struct mig *m = &b->m[i];

		if (m->ok)
			hm_copy_pages(ph, m->new, m->old, m->order);
		for (unsigned k = 0; k < b->ls.n; k++)
			restore(b->ls.mm[k], m, m->ok ? m->new : m->old);
		if (!m->ok) {
			/* A mapping we could not see (or none left): leave it. */
			free_target(sys, m->new, m->order);
			hm_folio_putback(sys, m->old, false);
			fail_folio(sys, m->order);
			b->left++;
			continue;
		}
		/* Nothing reaches the old frames now. */
		hm_free_frames(&sys->pc, m->old, m->order);
		hm_folio_putback(sys, m->new, false);
		hm_add(&sys->events[HM_STAT_pgmigrate_success], 1u << m->order);
		if (m->order)
			hm_count(sys, HM_STAT_thp_migration_success);
		b->moved++;
	}
}

/* Move the isolated folios of @w (each is moved or given back). */
static int migrate_work(struct hm_system *sys, struct work *w, const struct hm_migrate_ctl *ctl, unsigned *moved)
{
	struct batch *b = hm_malloc(&sys->phys.fail, sizeof(*b));
	bool busy = false, nomem = false;
	size_t next = 0;

	*moved = 0;
	if (!b) {
		for (size_t i = 0; i < w->n; i++)
			hm_folio_putback(sys, w->heads[i], false);
		w->left += w->n;
		return -ENOMEM;
	}
	while (next < w->n) {
		*b = (struct batch){ .sys = sys, .ctl = ctl };
		/* After a failure, the rest is given back (whole: a huge
		 * one taken now would be split for nothing). */
		while (next < w->n && b->n < BATCH && !b->nomem)
			take(b, w, w->heads[next++]);
		if (b->n) {
			unmap_batch(b);
			hm_race_point("migrate_unmapped");
			/* No access through a translation of the old frames
			 * is still under way. */
			hm_rcu_synchronize();
			hm_race_point("migrate_copy");
			finish_batch(b);
		}
		hm_lockset_release(&b->ls);
		*moved += b->moved;
		w->left += b->left;
		busy |= b->busy;
		nomem |= b->nomem;
		for (; nomem && next < w->n; w->left++)
			hm_folio_putback(sys, w->heads[next++], false);
	}
	free(b);
	if (nomem)
		return -ENOMEM;
	return busy ? -EAGAIN : 0;
}

static int work_init(struct hm_system *sys, struct work *w, unsigned n)
{
	*w = (struct work){ .cap = HM_MAX(n, 64u) };
	w->heads = hm_malloc(&sys->phys.fail, w->cap * sizeof(*w->heads));
	return w->heads ? 0 : -ENOMEM;
}

/* Candidates given by pfn, any frame: only folios on an LRU list are
 * taken (hm_folio_isolate_pfn), which a folio that is mapped and not
 * isolated by someone else is. */
int hm_migrate_folios(struct hm_system *sys, const uint32_t *heads, unsigned n,
		      const struct hm_migrate_ctl *ctl, unsigned *moved)
{
	struct work w;
	int r;

	*moved = 0;
	if (work_init(sys, &w, n))
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++)
		if (hm_folio_isolate_pfn(sys, heads[i]))
			w.heads[w.n++] = heads[i];
	r = migrate_work(sys, &w, ctl, moved);
	free(w.heads);
	return r;
}

int hm_migrate_isolated(struct hm_system *sys, const uint32_t *heads, unsigned n,
			const struct hm_migrate_ctl *ctl, unsigned *moved, bool *left)
{
	struct work w;
	int r;

	*moved = 0;
	if (work_init(sys, &w, n)) {
		for (unsigned i = 0; i < n; i++)
			hm_folio_putback(sys, heads[i], false);
		*left = n > 0;
		return -ENOMEM;
	}
	memcpy(w.heads, heads, n * sizeof(*heads));
	w.n = n;
	r = migrate_work(sys, &w, ctl, moved);
	*left = w.left;
	free(w.heads);
	return r;
}

void hm_migration_wait(struct hm_mm *mm, uint64_t va, hm_pte_t e)
{
	struct hm_phys *ph = mm_phys(mm);

	for (unsigned tries = 0;; tries++) {
		unsigned level;

		/* Without mmap_lock the tables may be freed: look inside a
		 * read section (a table outlives those). */
		hm_rcu_read_lock();
		hm_pte_t now = pt_get(hm_pt_walk(ph, mm->root, mm->sys->top, va, &level));
		hm_rcu_read_unlock();
		if (now != e)
			return;
		if (tries < 64)
			sched_yield();
		else
			nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	}
}
