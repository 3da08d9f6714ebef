/* SPDX-License-Identifier: MIT */
/*
 * Reclaim: choosing folios off the LRU lists by their accessed bits, and
 * swapping them out for every address space that maps them.
 *
 * The mappers of a folio are the members of its anon_vma family. Reclaim
 * holds each one's mmap_lock for reading while it works on the folio
 * (taken with a trylock, out of order, so a busy mm makes it skip the
 * folio rather than wait), except the mms the calling thread holds already
 * (a fault's, a fork's: hm_reclaim_enter). Under mmap_lock for reading no
 * table is freed and no folio is mapped anew but by faults, which never
 * map an isolated folio; copy-on-write may take mappings away meanwhile.
 *
 * Swap-out of an isolated folio, as the kernel's shrink_folio_list:
 *   1. slots: the ones it holds as swap cache (a page swapped in and not
 *      written since), else new ones: a whole cluster for a 2 MiB chunk
 *      where one is free (thp_swpout), else single slots
 *      (thp_swpout_fallback); every slot is under writeback from now on,
 *      so a swap-in of it waits;
 *   2. every leaf that maps it becomes a swap entry under its table lock
 *      (a PMD leaf over a cluster: one PMD swap entry; else the leaf is
 *      split, a PUD leaf first to PMD leaves, with the deposited tables),
 *      the D bits collected on the way;
 *   3. a grace period: no access through a stale translation is left;
 *   4. the write (skipped for a clean swap-cache folio), then the folio
 *      is freed. If the write fails, step 2 is undone.
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

/* The mms that may map a folio, read-locked unless we held them. */
struct mappers {
	struct hm_mm **mm;
	bool *took;
	unsigned n;
};

static void unlock_mappers(struct mappers *m)
{
	for (unsigned i = 0; i < m->n; i++)
		if (m->took[i])
			hm_up_read(&m->mm[i]->mmap_lock);
	free(m->mm);
	free(m->took);
	m->mm = NULL;
	m->took = NULL;
	m->n = 0;
}

static int lock_mappers(struct hm_system *sys, uint32_t head, struct mappers *m)
{
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	struct hm_anon_vma *av = NULL;
	int r = 0;

	m->n = 0;
	m->mm = NULL;
	m->took = NULL;
	hm_mutex_lock(&sys->av_lock);
	if (h->folio.anon_vma < sys->nr_avs)
		av = sys->avs[h->folio.anon_vma];
	hm_mutex_unlock(&sys->av_lock);
	if (!av)
		return -EBUSY;
	/* The family cannot go away in between: the folio is mapped, so some
	 * member has a VMA in it, and leaving takes that member's mmap_lock for
	 * writing... which a member we hold for reading cannot do, but one we
	 * do not hold yet can. Hence the lookup is repeated under av->lock by
	 * checking that the id still names this family. */
	hm_mutex_lock(&av->lock);
	m->mm = hm_malloc(&sys->phys.fail, av->nr * sizeof(*m->mm));
	m->took = hm_malloc(&sys->phys.fail, av->nr * sizeof(*m->took));
	if (!m->mm || !m->took) {
		r = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < av->nr; i++) {
		struct hm_mm *mm = av->members[i].mm;
		bool mine = held_by_me(mm);

		if (!mine && !hm_down_read_trylock(&mm->mmap_lock)) {
			r = -EBUSY;
			break;
		}
		m->mm[m->n] = mm;
		m->took[m->n++] = !mine;
	}
out:
	hm_mutex_unlock(&av->lock);
	if (r)
		unlock_mappers(m);
	return r;
}

/* Visit every leaf of @mm that maps part of the folio @head, under its
 * table lock: @fn gets the slot and the leaf, and returns 0 to go on to
 * the next, 1 to look at the same address again (it changed the leaf into
 * a table), or an error. Context: mmap_lock held. */
typedef int (*leaf_visit)(struct hm_mm *mm, hm_pte_t *slot, hm_pte_t e, unsigned level, uint64_t va,
			  void *arg);

static int for_each_leaf_of(struct hm_mm *mm, uint32_t head, leaf_visit fn, void *arg)
{
	hm_assert_rwsem_held(&mm->mmap_lock);
	struct hm_phys *ph = mm_phys(mm);
	struct hm_page *h = hm_pfn_page(ph, head);
	uint32_t nr = 1u << h->order;
	uint64_t va = h->folio.index << HM_PAGE_SHIFT, end = va + ((uint64_t)nr << HM_PAGE_SHIFT);

	while (va < end) {
		unsigned level;
		hm_pte_t *slot = hm_pt_walk(ph, mm->root, mm->sys->top, va, &level);
		hm_pte_t e = pt_get(slot);
		uint64_t next = HM_ALIGN_DOWN(va, hm_level_size(level)) + hm_level_size(level);

		if (level > 2 || pt_none(e) || pt_swp_entry(e)) {
			va = next;
			continue;
		}
		hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(ph, slot));
		int r = 0;

		hm_spin_lock(lock);
		e = pt_get(slot);
		if (pt_mapped(e) && pt_leaf(e, level)) {
			uint32_t pfn = pt_pfn(e, level);

			if (pfn >= head && pfn < head + nr)
				r = fn(mm, slot, e, level, va, arg);
		} else if (!pt_none(e) && !pt_swp_entry(e)) {
			r = 1;	/* a table now, or a split under way: again */
		}
		hm_spin_unlock(lock);
		if (r < 0)
			return r;
		if (r == 0)
			va = next;
	}
	return 0;
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
static bool test_clear_young(struct mappers *m, uint32_t head)
{
	bool young = false;

	for (unsigned i = 0; i < m->n; i++)
		for_each_leaf_of(m->mm[i], head, clear_young, &young);
	return young;
}

/* ---- swap-out --------------------------------------------------------- */

struct swapout {
	struct hm_system *sys;
	uint32_t head;
	uint64_t *slots;	/* slot of each page of the folio */
	bool dirty;
	bool undo;		/* putting the folio back (the write failed) */
};

/* Do the 512 pages of the chunk at @first sit in one cluster, in order? */
static bool chunk_in_cluster(const uint64_t *slots, uint32_t first)
{
	return slots[first] % HM_SWP_CLUSTER == 0 && slots[first + HM_PTRS - 1] == slots[first] + HM_PTRS - 1;
}

static int unmap_one(struct hm_mm *mm, hm_pte_t *slot, hm_pte_t e, unsigned level, uint64_t va, void *arg)
{
	struct swapout *so = arg;
	struct hm_system *sys = so->sys;
	uint32_t pfn = pt_pfn(e, level), i = pfn - so->head;

	(void)va;
	/* A huge leaf whose pages go to scattered slots is split first, which
	 * takes its table's lock itself: unmap_from does it. */
	if (level == 2 || (level == 1 && !chunk_in_cluster(so->slots, i)))
		return -EAGAIN;
	hm_pte_t old = pt_xchg(slot, pt_mk_swp_entry(so->slots[i]));
	unsigned n = level ? HM_PTRS : 1;

	so->dirty |= (old & HM_PTE_D) != 0;
	hm_swap_dup(&sys->swap, so->slots[i], n);
	hm_add(&sys->nr_swap_entries, n);
	hm_folio_remove_map(mm, pfn, level, false);
	return 0;
}

/* The leaf at @va is huge and must be split before its pages can get
 * swap entries of their own: PUD -> PMD, PMD -> PTE, with the deposit.
 * Lazy mode would have to allocate the table, and a fork that reclaims
 * has counted the tables it needs already: reclaim there takes 2 MiB pages
 * that fit a cluster only. */
static int split_at(struct hm_mm *mm, uint64_t va)
{
	unsigned level;
	hm_pte_t *slot = hm_pt_walk(mm_phys(mm), mm->root, mm->sys->top, va, &level);

	if (level == 0)
		return 0;
	if (mm->sys->cfg.deposit == HM_DEPOSIT_LAZY)
		return -ENOMEM;
	hm_split_leaf(mm, slot, level, NULL);
	return 0;
}

static int unmap_from(struct hm_mm *mm, struct swapout *so)
{
	int r;

	while ((r = for_each_leaf_of(mm, so->head, unmap_one, so)) == -EAGAIN) {
		/* for_each_leaf_of stopped at a huge leaf to split; find it */
		struct hm_page *h = hm_pfn_page(&so->sys->phys, so->head);
		uint64_t va = h->folio.index << HM_PAGE_SHIFT;
		uint64_t end = va + (HM_PAGE_SIZE << h->order);

		for (; va < end; va += HM_PMD_SIZE) {
			unsigned level;
			hm_pte_t *slot = hm_pt_walk(mm_phys(mm), mm->root, mm->sys->top, va, &level);
			hm_pte_t e = pt_get(slot);

			if (level == 0 || !pt_mapped(e))
				continue;
			uint32_t pfn = pt_pfn(e, level), i = pfn - so->head;
			if (pfn < so->head || i >= (1u << h->order))
				continue;
			if (level == 2 || !chunk_in_cluster(so->slots, i)) {
				if ((r = split_at(mm, va)))
					return r;
				break;
			}
		}
	}
	hm_tlb_flush(mm);
	return r;
}

/* Undo: swap entries that name our slots map the folio again, read-only
 * (a write takes the copy-on-write path, which reuses a page mapped once). */
static int remap_one_entry(struct hm_mm *mm, hm_pte_t *slot, unsigned level, uint64_t va, struct swapout *so)
{
	struct hm_phys *ph = mm_phys(mm);
	struct hm_page *h = hm_pfn_page(ph, so->head);
	uint32_t nr = 1u << h->order;
	hm_pte_t e = pt_get(slot);
	uint64_t base = h->folio.index << HM_PAGE_SHIFT;

	if (!pt_swp_entry(e) || va < base || va >= base + ((uint64_t)nr << HM_PAGE_SHIFT))
		return 0;
	uint32_t i = (uint32_t)((va - base) >> HM_PAGE_SHIFT);
	if (pt_swp_offset(e) != so->slots[i])
		return 0;
	const struct hm_vma *v = hm_vma_lookup(mm, va);
	hm_pte_t bits = (pt_prot_bits(v->prot) & ~HM_PTE_RW) | HM_PTE_A | (so->dirty ? HM_PTE_D : 0);
	unsigned n = level ? HM_PTRS : 1;

	hm_folio_add_map(mm, so->head + i, level);
	pt_set(slot, pt_mk_leaf(so->head + i, level, bits));
	hm_swap_put(&so->sys->swap, so->slots[i], n);
	hm_sub(&so->sys->nr_swap_entries, n);
	return 0;
}

static void remap_into(struct hm_mm *mm, struct swapout *so)
{
	struct hm_phys *ph = mm_phys(mm);
	struct hm_page *h = hm_pfn_page(ph, so->head);
	uint64_t va = h->folio.index << HM_PAGE_SHIFT, end = va + (HM_PAGE_SIZE << h->order);

	while (va < end) {
		unsigned level;
		hm_pte_t *slot = hm_pt_walk(ph, mm->root, mm->sys->top, va, &level);
		hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(ph, slot));

		if (level <= 1) {
			hm_spin_lock(lock);
			remap_one_entry(mm, slot, level, va, so);
			hm_spin_unlock(lock);
		}
		va = HM_ALIGN_DOWN(va, hm_level_size(level)) + hm_level_size(level);
	}
}

static void release_slots(struct swapout *so, uint32_t nr, uint32_t flags)
{
	for (uint32_t i = 0; i < nr; i++)
		if (so->slots[i] != HM_SLOT_NONE)
			hm_swap_clear_flags(&so->sys->swap, so->slots[i], 1, flags);
}

/* New slots for every page: a cluster per 2 MiB chunk where one is free. */
static int alloc_slots(struct swapout *so, unsigned order)
{
	struct hm_swap *sw = &so->sys->swap;
	uint32_t nr = 1u << order, clusters = 0, fallbacks = 0;

	for (uint32_t i = 0; i < nr; i++)
		so->slots[i] = HM_SLOT_NONE;
	for (uint32_t c = 0; c < nr; c += HM_PTRS) {
		uint64_t s = order ? hm_swap_alloc(sw, HM_SWP_CLUSTER) : HM_SLOT_NONE;

		if (s != HM_SLOT_NONE) {
			for (uint32_t i = 0; i < HM_PTRS; i++)
				so->slots[c + i] = s + i;
			clusters++;
			continue;
		}
		for (uint32_t i = c; i < HM_MIN(nr, c + HM_PTRS); i++) {
			if ((so->slots[i] = hm_swap_alloc(sw, 1)) == HM_SLOT_NONE) {
				release_slots(so, nr, HM_SWP_CACHE | HM_SWP_WRITEBACK);
				return -ENOSPC;
			}
		}
		fallbacks += order > 0;
	}
	/* Per 2 MiB page: a 1 GiB one goes out as 512 of them. */
	hm_add(&so->sys->events[HM_STAT_thp_swpout], clusters);
	hm_add(&so->sys->events[HM_STAT_thp_swpout_fallback], fallbacks);
	return 0;
}

/* Write the folio's pages, a run of consecutive slots at a time. */
static int write_out(struct swapout *so, uint32_t nr)
{
	struct hm_phys *ph = &so->sys->phys;

	for (uint32_t i = 0; i < nr;) {
		uint32_t k = 1;

		while (i + k < nr && so->slots[i + k] == so->slots[i] + k)
			k++;
		int r = hm_swap_write(&so->sys->swap, so->slots[i], hm_pfn_ptr(ph, so->head + i), k);
		if (r)
			return r;
		i += k;
	}
	return 0;
}

static int swap_out_locked(struct hm_system *sys, uint32_t head, struct mappers *m)
{
	struct hm_phys *ph = &sys->phys;
	struct hm_page *h = hm_pfn_page(ph, head);
	unsigned order = h->order;
	uint32_t nr = 1u << order;
	struct swapout so = { .sys = sys, .head = head };
	bool cached = hm_load_relaxed(&h->flags) & PG_SWAPCACHE;
	int r = 0;

	so.slots = hm_malloc(&ph->fail, nr * sizeof(*so.slots));
	if (!so.slots)
		return -ENOMEM;
	if (cached) {
		for (uint32_t i = 0; i < nr; i++)
			so.slots[i] = h->swap + i;
		hm_swap_set_flags(&sys->swap, h->swap, nr, HM_SWP_WRITEBACK);
	} else if ((r = alloc_slots(&so, order))) {
		free(so.slots);
		return r;
	}
	for (unsigned i = 0; i < m->n && !r; i++)
		r = unmap_from(m->mm[i], &so);
	if (!r && h->large_mapcount)
		r = -EBUSY;	/* a mapping we could not reach */
	hm_race_point("swapout_unmapped");
	/* No access through a translation cached before is still under way. */
	hm_rcu_synchronize();
	bool write = !cached || so.dirty;

	if (!r && write) {
		r = write_out(&so, nr);
		if (r)
			hm_count(sys, HM_STAT_swap_io_error);
	} else if (!r) {
		hm_add(&sys->events[HM_STAT_pswpout_clean], nr);
	}
	if (r) {
		for (unsigned i = 0; i < m->n; i++)
			remap_into(m->mm[i], &so);
		if (cached)
			hm_swap_clear_flags(&sys->swap, h->swap, nr, HM_SWP_WRITEBACK);
		else
			release_slots(&so, nr, HM_SWP_CACHE | HM_SWP_WRITEBACK);
		free(so.slots);
		return r;
	}
	hm_spin_t *lock = hm_folio_lock(sys, head);

	hm_spin_lock(lock);
	hm_assert(h->large_mapcount == 0);
	if (cached)
		__atomic_and_fetch(&h->flags, ~PG_SWAPCACHE, __ATOMIC_RELAXED);
	__atomic_and_fetch(&h->flags, ~PG_ISOLATED, __ATOMIC_RELAXED);
	hm_spin_unlock(lock);
	/* The entries' counts keep the slots now. */
	release_slots(&so, nr, HM_SWP_CACHE | HM_SWP_WRITEBACK);
	free(so.slots);
	hm_sub(&sys->nr_anon_frames, nr);
	hm_free_frames(&sys->pc, head, order);
	if (write)
		hm_add(&sys->events[HM_STAT_pswpout], nr);
	return 0;
}

int hm_swap_out(struct hm_system *sys, uint32_t head)
{
	struct mappers m;
	int r;

	if (!hm_swap_enabled(&sys->swap))
		return -ENOSPC;
	if ((r = lock_mappers(sys, head, &m)))
		return r;
	r = swap_out_locked(sys, head, &m);
	unlock_mappers(&m);
	return r;
}

/* ---- the lists ------------------------------------------------------- */

/* Age the active list: folios not accessed since the last look go to the
 * inactive one. */
static unsigned age_active(struct hm_system *sys)
{
	uint32_t batch[BATCH];
	unsigned n = hm_lru_isolate(sys, true, batch, BATCH);

	for (unsigned i = 0; i < n; i++) {
		struct mappers m;
		bool young = true;

		if (!lock_mappers(sys, batch[i], &m)) {
			young = test_clear_young(&m, batch[i]);
			unlock_mappers(&m);
		}
		if (!young)
			hm_count(sys, HM_STAT_pgdeactivate);
		hm_folio_putback(sys, batch[i], young);
	}
	return n;
}

/* Reclaim from the inactive list; returns frames freed, stops early when
 * swap is full (*full). */
static uint64_t shrink_inactive(struct hm_system *sys, bool *full, unsigned *looked)
{
	uint32_t batch[BATCH];
	unsigned n = hm_lru_isolate(sys, false, batch, BATCH);
	uint64_t freed = 0;

	*looked = n;
	for (unsigned i = 0; i < n; i++) {
		uint32_t head = batch[i];
		unsigned order = hm_pfn_page(&sys->phys, head)->order;
		struct mappers m;
		int r = -EBUSY;

		hm_add(&sys->events[HM_STAT_pgscan], 1u << order);
		/* With swap full, only a swap-cache folio (its slot is kept)
		 * can still go. */
		bool cached = hm_load_relaxed(&hm_pfn_page(&sys->phys, head)->flags) & PG_SWAPCACHE;

		if ((!*full || cached) && !lock_mappers(sys, head, &m)) {
			if (test_clear_young(&m, head)) {
				r = 1;
			} else {
				r = swap_out_locked(sys, head, &m);
				*full |= r == -ENOSPC;
			}
			unlock_mappers(&m);
		}
		if (r == 0) {
			freed += 1u << order;
			hm_add(&sys->events[HM_STAT_pgsteal], 1u << order);
			continue;
		}
		if (r == 1)
			hm_count(sys, HM_STAT_pgactivate);
		/* A freed folio's frames are back only after a grace period
		 * from its last unmap: swap_out_locked waited for one. */
		hm_folio_putback(sys, head, r == 1);
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
	/* Each folio may need three looks: inactive -> active (accessed),
	 * active -> inactive (idle since), then out. */
	uint64_t budget = 3 * (hm_load_relaxed(&sys->nr_lru[0]) + hm_load_relaxed(&sys->nr_lru[1])) + BATCH;

	bool stuck = false;

	while (freed < want && scanned < budget) {
		unsigned aged = 0, looked;

		/* Keep the inactive list a third of the whole, as the kernel's
		 * inactive_is_low(), and age the active one too when the
		 * inactive one gave nothing (all busy, or dirty with swap full). */
		if (stuck || hm_load_relaxed(&sys->nr_lru[0]) < BATCH ||
		    hm_load_relaxed(&sys->nr_lru[0]) < hm_load_relaxed(&sys->nr_lru[1]) / 2)
			aged = age_active(sys);
		uint64_t got = shrink_inactive(sys, &full, &looked);

		freed += got;
		stuck = !got;
		if (!looked && !aged)
			break;
		scanned += looked + aged;
	}
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
	uint64_t want = HM_ALIGN_UP(bytes, HM_PAGE_SIZE) >> HM_PAGE_SHIFT;

	*freed = want ? shrink_lists(sys, want) << HM_PAGE_SHIFT : 0;
	return hm_check_enabled(sys, 0);
}

/* ---- MADV_PAGEOUT ------------------------------------------------------ */

int hm_pageout_range(struct hm_mm *mm, uint64_t start, uint64_t end)
{
	hm_assert_rwsem_held(&mm->mmap_lock);
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	uint32_t last = HM_PFN_NONE;

	if (!hm_swap_enabled(&sys->swap))
		return 0;
	hm_reclaim_enter(mm, NULL);
	hm_mutex_lock(&sys->reclaim_lock);
	ctx.in_reclaim = true;
	for (uint64_t va = start; va < end;) {
		unsigned level;
		uint32_t head = HM_PFN_NONE;
		bool got = false;

		hm_rcu_read_lock();
		hm_pte_t *slot = hm_pt_walk(ph, mm->root, sys->top, va, &level);
		hm_pte_t e = pt_get(slot);
		uint64_t next = HM_ALIGN_DOWN(va, hm_level_size(level)) + hm_level_size(level);

		if (level <= 2 && pt_mapped(e)) {
			head = hm_folio_head(ph, pt_pfn(e, level));
			struct hm_page *h = hm_pfn_page(ph, head);
			uint64_t fstart = h->folio.index << HM_PAGE_SHIFT;

			/* Whole folios inside the range only, as the kernel's
			 * pageout does not split a huge page it was given part
			 * of. */
			if (head != last && fstart >= start && fstart + (HM_PAGE_SIZE << h->order) <= end)
				got = hm_folio_isolate(sys, head, mm);
		}
		hm_rcu_read_unlock();
		if (got) {
			last = head;
			struct mappers m;

			if (!lock_mappers(sys, head, &m)) {
				if (swap_out_locked(sys, head, &m) == 0)
					got = false;
				unlock_mappers(&m);
			}
			if (got)
				hm_folio_putback(sys, head, false);
		}
		va = next;
	}
	ctx.in_reclaim = false;
	hm_mutex_unlock(&sys->reclaim_lock);
	hm_reclaim_exit();
	return 0;
}
