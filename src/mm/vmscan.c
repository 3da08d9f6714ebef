/* SPDX-License-Identifier: MIT */
/*
 * Reclaim: choosing folios off the LRU lists by their accessed bits, and
 * swapping them out (swapout.c) for every address space that maps them.
 *
 * The mappers of a folio are the members of its anon_vma family. Reclaim
 * holds each one's mmap_lock for reading while it works on a batch of
 * folios (taken with a trylock, out of order, so a busy mm makes it skip
 * the folio rather than wait), except the mms the calling thread holds
 * already (a fault's, a fork's: hm_reclaim_enter). Under mmap_lock for
 * reading no table is freed and no folio is mapped anew but by faults,
 * which never map an isolated folio; copy-on-write may take mappings away
 * meanwhile, which the table locks sort out.
 *
 * Aging is the kernel's two-list second chance: a folio found with an
 * accessed bit set on the inactive list goes to the active one, a folio
 * found without one on the active list goes back to the inactive one, and
 * only a folio found without one on the inactive list is swapped out.
 * Every look clears the bits it found and invalidates the TLB entries, so
 * the next access sets them again.
 */
#include <stdlib.h>

#include "../base/race.h"
#include "mm.h"

#define BATCH 32u	/* folios isolated at a time, as SWAP_CLUSTER_MAX */

/* The mms this thread holds (see hm_reclaim_enter), and whether it is in
 * reclaim already (reclaim allocates tables in lazy mode, which must not
 * reclaim again). */
static __thread struct {
	struct hm_mm *held[2];
	unsigned depth;
	bool in_reclaim;
} ctx;

void hm_reclaim_enter(struct hm_mm *a, struct hm_mm *b)
{
	if (ctx.depth++ == 0) {
		ctx.held[0] = a;
		ctx.held[1] = b;
	}
}

void hm_reclaim_exit(void)
{
	hm_assert(ctx.depth > 0);
	if (--ctx.depth == 0)
		ctx.held[0] = ctx.held[1] = NULL;
}

static bool held_by_me(struct hm_mm *mm)
{
	return ctx.depth && (ctx.held[0] == mm || ctx.held[1] == mm);
}

void hm_lockset_release(struct hm_lockset *ls)
{
	for (unsigned i = 0; i < ls->n; i++)
		if (ls->took[i])
			hm_up_read(&ls->mm[i]->mmap_lock);
	free(ls->mm);
	free(ls->took);
	*ls = (struct hm_lockset){ 0 };
}

static bool in_set(const struct hm_lockset *ls, struct hm_mm *mm)
{
	for (unsigned i = 0; i < ls->n; i++)
		if (ls->mm[i] == mm)
			return true;
	return false;
}

static int set_grow(struct hm_system *sys, struct hm_lockset *ls, unsigned need)
{
	if (ls->n + need <= ls->cap)
		return 0;
	unsigned cap = HM_MAX(ls->cap * 2, ls->n + need + 4);
	struct hm_mm **m = hm_realloc(&sys->phys.fail, ls->mm, cap * sizeof(*m));

	if (!m)
		return -ENOMEM;
	ls->mm = m;
	bool *t = hm_realloc(&sys->phys.fail, ls->took, cap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	ls->took = t;
	ls->cap = cap;
	return 0;
}

/*
 * The family is looked up and walked under sys->av_lock, which its last
 * member must take to free it: so it cannot go away while we look, though
 * none of its members is locked yet. av->lock comes before av_lock in the
 * lock order, hence the trylock; the mmap_locks are tried too.
 */
int hm_lockset_add_mappers(struct hm_system *sys, uint32_t head, struct hm_lockset *ls)
{
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	struct hm_anon_vma *av = NULL;
	int r = 0;

	hm_mutex_lock(&sys->av_lock);
	if (h->folio.anon_vma < sys->nr_avs)
		av = sys->avs[h->folio.anon_vma];
	if (!av || pthread_mutex_trylock(&av->lock)) {
		hm_mutex_unlock(&sys->av_lock);
		return -EBUSY;
	}
	if ((r = set_grow(sys, ls, av->nr)))
		goto out;
	for (uint32_t i = 0; i < av->nr && !r; i++) {
		struct hm_mm *mm = av->members[i].mm;
		bool mine = held_by_me(mm);

		if (in_set(ls, mm))
			continue;
		if (!mine && !hm_down_read_trylock(&mm->mmap_lock)) {
			r = -EBUSY;
			continue;
		}
		ls->mm[ls->n] = mm;
		ls->took[ls->n++] = !mine;
	}
out:
	hm_mutex_unlock(&av->lock);
	hm_mutex_unlock(&sys->av_lock);
	return r;
}

/* ---- accessed bits -------------------------------------------------- */

static int clear_young(struct hm_mm *mm, hm_pte_t *slot, hm_pte_t e, unsigned level, uint64_t va,
		       void *arg)
{
	(void)level, (void)va;
	if (e & HM_PTE_A) {
		pt_update(slot, HM_PTE_A, 0);
		*(bool *)arg = true;
		/* The next access must walk the table again and set the bit,
		 * or a page in use would look idle. */
		hm_tlb_flush(mm);
	}
	return 0;
}

/* Was the folio accessed since we last looked? Clears the bits. */
static bool test_clear_young(const struct hm_lockset *ls, uint32_t head)
{
	bool young = false;

	for (unsigned i = 0; i < ls->n; i++)
		hm_for_each_leaf_of(ls->mm[i], head, clear_young, &young);
	return young;
}

/* ---- the lists ------------------------------------------------------- */

/* Age the active list: folios not accessed since the last look go to the
 * inactive one. *busy counts those whose mappers could not be locked. */
static unsigned age_active(struct hm_system *sys, unsigned *busy)
{
	uint32_t batch[BATCH];
	unsigned n = hm_lru_isolate(sys, true, batch, BATCH);

	for (unsigned i = 0; i < n; i++) {
		struct hm_lockset ls = { 0 };
		bool young = true;

		if (!hm_lockset_add_mappers(sys, batch[i], &ls))
			young = test_clear_young(&ls, batch[i]);
		else
			++*busy;
		hm_lockset_release(&ls);
		if (!young)
			hm_count(sys, HM_STAT_pgdeactivate);
		hm_folio_putback(sys, batch[i], young);
	}
	return n;
}

/*
 * Swap out isolated folios (@check_young: those not accessed since the
 * last look; the others go to the active list) with one grace period for
 * all of them. Folios that do not go are put back. Returns frames freed;
 * sets *full when swap had no room; counts in *busy the folios whose
 * mappers could not be locked or that could not start out.
 */
static uint64_t swap_out_batch(struct hm_system *sys, const uint32_t *heads, unsigned n, bool check_young,
			       bool *full, unsigned *busy)
{
	struct hm_lockset ls = { 0 };
	struct hm_swapout so[BATCH];
	unsigned started = 0;
	uint64_t freed = 0;

	hm_assert(n <= BATCH);
	for (unsigned i = 0; i < n; i++) {
		uint32_t head = heads[i];
		struct hm_page *h = hm_pfn_page(&sys->phys, head);
		int r = -EBUSY;

		hm_add(&sys->events[HM_STAT_pgscan], 1u << h->order);
		/* With swap full, only a swap-cache folio (its slots are kept)
		 * can still go. */
		if ((!*full || (hm_load_relaxed(&h->flags) & PG_SWAPCACHE)) &&
		    !hm_lockset_add_mappers(sys, head, &ls)) {
			if (check_young && test_clear_young(&ls, head))
				r = 1;
			else if (!(r = hm_swapout_begin(sys, &so[started], head, &ls)))
				started++;
			*full |= r == -ENOSPC;
		}
		if (r == 1)
			hm_count(sys, HM_STAT_pgactivate);
		else if (r)
			++*busy;
		if (r)
			hm_folio_putback(sys, head, r == 1);
	}
	hm_race_point("swapout_unmapped");
	/* No access through a translation cached before is still under way. */
	if (started)
		hm_rcu_synchronize();
	for (unsigned i = 0; i < started; i++) {
		unsigned order = hm_pfn_page(&sys->phys, so[i].head)->order;

		if (hm_swapout_end(&so[i], &ls)) {
			hm_folio_putback(sys, so[i].head, false);
			continue;
		}
		freed += 1u << order;
		hm_add(&sys->events[HM_STAT_pgsteal], 1u << order);
	}
	hm_lockset_release(&ls);
	return freed;
}

/* Reclaim from the inactive list. */
static uint64_t shrink_inactive(struct hm_system *sys, bool *full, unsigned *looked, unsigned *busy)
{
	uint32_t batch[BATCH];
	unsigned n = hm_lru_isolate(sys, false, batch, BATCH);

	*looked = n;
	return swap_out_batch(sys, batch, n, true, full, busy);
}

/*
 * Swap full: only folios in the swap cache can go (their slots are
 * theirs). Found through the swap cache rather than the lists, which may
 * hold far more folios that cannot go, and taken without a second chance:
 * this is what keeps every page in swap readable (a swap-in needs a frame).
 */
static uint64_t shrink_swapcache(struct hm_system *sys, uint64_t want)
{
	uint32_t pfns[BATCH], batch[BATCH];
	unsigned max = (unsigned)HM_MIN(want, BATCH);
	uint64_t freed = 0;
	bool full = true;
	unsigned busy = 0;

	/* Once round the device at most, a window at a time. */
	for (uint64_t looked = 0; !freed && looked < sys->swap.nr_slots; looked += 64ull * max) {
		unsigned n = hm_swap_cache_collect(&sys->swap, pfns, max, &sys->cache_cursor), got = 0;

		hm_rcu_read_lock();	/* a frame the cache named may be on its way out */
		for (unsigned i = 0; i < n; i++) {
			bool dup = false;

			for (unsigned j = 0; j < got && !dup; j++)
				dup = batch[j] == pfns[i];
			if (!dup && hm_folio_isolate_cached(sys, pfns[i]))
				batch[got++] = pfns[i];
		}
		hm_rcu_read_unlock();
		if (got)
			freed += swap_out_batch(sys, batch, got, false, &full, &busy);
	}
	return freed;
}

static uint64_t shrink_lists(struct hm_system *sys, uint64_t want)
{
	uint64_t freed = 0, scanned = 0;
	bool full = false;

	if (!hm_swap_enabled(&sys->swap) || ctx.in_reclaim)
		return 0;
	ctx.in_reclaim = true;
	hm_mutex_lock(&sys->reclaim_lock);
	/* A fault that reclaims when nothing can go (swap full of dirty
	 * pages) must fail fast, not scan every list over for every page it
	 * asks for (the fuzzer found writes that took minutes): with swap
	 * full, only the swap cache is looked at, here and once swap runs
	 * full on the way. */
	if (!hm_swap_free(&sys->swap)) {
		freed = shrink_swapcache(sys, want);
		hm_mutex_unlock(&sys->reclaim_lock);
		ctx.in_reclaim = false;
		return freed;
	}
	/* Each folio may need three looks: inactive -> active (accessed),
	 * active -> inactive (idle since), then out. With swap free, go round
	 * the lists that often before giving up, as the kernel's priority
	 * loop ends scanning them whole: memory just written is all young,
	 * and a budget by pages wanted (64 looks each, the cap this had)
	 * let a fault fail with -ENOMEM, swap nearly empty, because the first
	 * idle folio lay further down the lists than that (hmbench-swap's
	 * direct reclaim, 16k pages of 64 MiB). */
	/* New folios in the per-CPU add batches are the lists' too: counted
	 * out, a batch of 29 made the budget too short for the last of them
	 * (integration/swap reclaim_counts_batched, under TSan). */
	hm_lru_drain_all(sys);
	uint64_t all = hm_load_relaxed(&sys->nr_lru[0]) + hm_load_relaxed(&sys->nr_lru[1]);
	uint64_t budget = 3 * all + BATCH, futile = 0;

	bool stuck = false;

	/* ... but a folio whose mappers are busy (an mm held for a fork or
	 * an munmap, pinned pages) ages no further for being looked at
	 * again: once a whole round of the lists found only such folios,
	 * another will not do better. */
	while (freed < want && scanned < budget && futile < all + BATCH) {
		unsigned aged = 0, looked, busy = 0;

		/* Keep the inactive list a third of the whole, as the kernel's
		 * inactive_is_low(), and age the active one too when the
		 * inactive one gave nothing (all busy, or dirty with swap full). */
		if (stuck || hm_load_relaxed(&sys->nr_lru[0]) < BATCH ||
		    hm_load_relaxed(&sys->nr_lru[0]) < hm_load_relaxed(&sys->nr_lru[1]) / 2)
			aged = age_active(sys, &busy);
		uint64_t got = shrink_inactive(sys, &full, &looked, &busy);

		freed += got;
		stuck = !got;
		if ((!looked && !aged) || full)
			break;
		scanned += looked + aged;
		futile = busy == looked + aged ? futile + busy : 0;
	}
	/* Swap ran full on the way (or the lists gave too little within the
	 * budget): what is in the swap cache can still go. */
	if (freed < want && (full || !hm_swap_free(&sys->swap) || scanned >= budget))
		freed += shrink_swapcache(sys, want - freed);
	hm_mutex_unlock(&sys->reclaim_lock);
	ctx.in_reclaim = false;
	return freed;
}

bool hm_reclaim_direct(struct hm_system *sys, unsigned nr_frames)
{
	if (!ctx.depth || ctx.in_reclaim || !hm_swap_enabled(&sys->swap))
		return false;
	hm_count(sys, HM_STAT_direct_reclaim);
	return shrink_lists(sys, HM_MAX(nr_frames, BATCH)) > 0;
}

int hm_reclaim(struct hm_system *sys, uint64_t bytes, uint64_t *freed)
{
	if (!sys || !freed)
		return -EINVAL;
	uint64_t want = HM_ALIGN_UP(bytes, HM_PAGE_SIZE) >> HM_PAGE_SHIFT, got = 0;

	/* Deferred-split leftovers and underused huge pages first: they cost
	 * no write. Their frames come back after a grace period. */
	if (want) {
		got = hm_thp_shrink(sys, want);
		if (got)
			hm_drain(sys);
	}
	if (got < want)
		got += shrink_lists(sys, want - got);
	*freed = got << HM_PAGE_SHIFT;
	return hm_check_enabled(sys, 0);
}

/* ---- MADV_PAGEOUT ------------------------------------------------------ */

/*
 * A 2 MiB page that the range covers only in part is split first, as the
 * kernel's pageout splits a large folio it was given part of: its mapping
 * (from the deposit) if a PMD maps it, then the folio. Only at the range's
 * two ends; a 1 GiB page is left whole.
 */
static void split_edge(struct hm_mm *mm, uint64_t va, uint64_t start, uint64_t end)
{
	struct hm_phys *ph = mm_phys(mm);
	uint64_t base = HM_ALIGN_DOWN(va, HM_PMD_SIZE);
	unsigned level;
	bool piece = false;

	if (base >= start && base + HM_PMD_SIZE <= end)
		return;
	/* The entry is read without its lock, under mmap_lock for reading
	 * only: a fault may link a PTE table where the walk found none, and a
	 * swap-out or a copy-on-write elsewhere may unmap the folio and free
	 * it. So: a leaf, and looked at inside a read section begun before
	 * the walk (the folio is then freed only after it). */
	hm_rcu_read_lock();
	hm_pte_t *slot = hm_pt_walk(ph, mm->root, mm->sys->top, va, &level);
	hm_race_point("pageout_edge_walked");
	hm_pte_t e = pt_get(slot);
	bool leaf = level <= 1 && pt_present(e) && pt_leaf(e, level) && !hm_is_huge_zero(mm->sys, pt_pfn(e, level));

	if (leaf && level == 1)
		piece = hm_folio_head(ph, pt_pfn(e, 1)) != pt_pfn(e, 1);
	hm_rcu_read_unlock();
	if (!leaf)
		return;
	if (level == 1) {
		struct hm_split_tables st;

		if (piece || hm_split_table_lazy(mm, &st))
			return;	/* a piece of a 1 GiB page, or no table */
		hm_split_leaf(mm, slot, 1, &st);	/* if still a leaf */
		hm_split_done(mm, &st);
	}
	hm_folio_split_at(mm, va);
}

int hm_pageout_range(struct hm_mm *mm, uint64_t start, uint64_t end)
{
	hm_assert_rwsem_held(&mm->mmap_lock);
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	uint32_t batch[BATCH], last = HM_PFN_NONE;
	unsigned n = 0, busy = 0;
	bool full = false;

	if (!hm_swap_enabled(&sys->swap))
		return 0;
	hm_reclaim_enter(mm, NULL);
	split_edge(mm, start, start, end);
	split_edge(mm, end - HM_PAGE_SIZE, start, end);
	hm_mutex_lock(&sys->reclaim_lock);
	ctx.in_reclaim = true;
	for (uint64_t va = start; va < end || n;) {
		unsigned level;

		if (va >= end || n == BATCH) {
			swap_out_batch(sys, batch, n, false, &full, &busy);
			n = 0;
			continue;
		}
		hm_rcu_read_lock();
		hm_pte_t e = pt_get(hm_pt_walk(ph, mm->root, sys->top, va, &level));
		uint64_t next = HM_ALIGN_DOWN(va, hm_level_size(level)) + hm_level_size(level);

		if (level <= 2 && pt_mapped(e)) {
			uint32_t head = hm_folio_head(ph, pt_pfn(e, level));
			struct hm_page *h = hm_pfn_page(ph, head);
			uint64_t fstart = h->folio.index << HM_PAGE_SHIFT;

			/* Whole folios inside the range (the ends were split). */
			if (head != last && fstart >= start && fstart + (HM_PAGE_SIZE << h->order) <= end &&
			    hm_folio_isolate(sys, head, mm)) {
				batch[n++] = last = head;
			}
		}
		hm_rcu_read_unlock();
		va = next;
	}
	ctx.in_reclaim = false;
	hm_mutex_unlock(&sys->reclaim_lock);
	hm_reclaim_exit();
	return 0;
}
