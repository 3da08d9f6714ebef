/* SPDX-License-Identifier: MIT */
/*
 * Swap-out of isolated folios, in two halves so that reclaim waits for one
 * grace period per batch rather than per folio (see reclaim.h):
 *
 *   begin: slots (the ones a swap-cache folio keeps, else new ones: a whole
 *          cluster per 2 MiB where one is free, thp_swpout; else single
 *          slots, thp_swpout_fallback), each under writeback from now on so
 *          that a swap-in of it waits; then every leaf that maps the folio,
 *          in every locked mm, becomes a swap entry under its table lock (a
 *          PMD leaf over a cluster one PMD swap entry; other huge leaves
 *          are split first, a PUD leaf to PMD leaves, with the deposited
 *          tables), the D bits collected on the way.
 *   (the caller waits for a grace period: no access through a translation
 *          cached before is still under way)
 *   end:   the write (none for a clean swap-cache folio), then the folio is
 *          freed; if the write fails, begin is undone: the swap entries map
 *          the folio again.
 */
#include <stdlib.h>

#include "../base/race.h"
#include "folio.h"
#include "reclaim.h"
#include "split.h"
#include "stat.h"
#include "table.h"
#include "types.h"
#include "vma.h"

int hm_for_each_leaf_of(struct hm_mm *mm, uint32_t head, hm_leaf_visit fn, void *arg)
{
	hm_assert_rwsem_held(&mm->mmap_lock);
	struct hm_phys *ph = mm_phys(mm);
	struct hm_page *h = hm_pfn_page(ph, head);
	uint32_t nr = folio_nr_pages(h);
	uint64_t va = folio_va(h), end = va + ((uint64_t)nr << HM_PAGE_SHIFT);

	while (va < end) {
		unsigned level;
		hm_pte_t *slot = hm_pt_walk(ph, mm->root, mm->sys->top, va, &level);
		hm_pte_t e = pt_get(slot);
		uint64_t next = HM_ALIGN_DOWN(va, hm_level_size(level)) + hm_level_size(level);

		/* A migration entry maps another folio (ours is mapped, or
		 * isolated by its mover, not the caller): nothing to wait for. */
		if (level > 2 || pt_none(e) || pt_swp_entry(e) || pt_is_migration(e)) {
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
		} else if (!pt_none(e) && !pt_swp_entry(e) && !pt_is_migration(e)) {
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

/* Do the 512 pages of the chunk at @first sit in one cluster, in order?
 * Every slot is looked at: single slots taken one by one may happen to
 * start and end a cluster with others' slots between. */
static bool chunk_in_cluster(const uint64_t *slots, uint32_t first)
{
	if (slots[first] % HM_SWP_CLUSTER)
		return false;
	for (uint32_t i = 1; i < HM_PTRS; i++)
		if (slots[first + i] != slots[first] + i)
			return false;
	return true;
}

static int unmap_one(struct hm_mm *mm, hm_pte_t *slot, hm_pte_t e, unsigned level, uint64_t va, void *arg)
{
	struct hm_swapout *so = arg;
	struct hm_system *sys = so->sys;
	uint32_t pfn = pt_pfn(e, level), i = pfn - so->head;

	(void)va;
	/* A huge leaf whose pages go to scattered slots is split first, which
	 * takes its table's lock itself: unmap_from does it. */
	if (level == 2 || (level == 1 && !chunk_in_cluster(so->slots, i)))
		return -EAGAIN;
	hm_pte_t old = pt_xchg(slot, pt_mk_swp_entry(so->slots[i]));
	unsigned n = level ? HM_PTRS : 1;

	so->dirty |= pt_dirty(old);
	hm_swap_dup(&sys->swap, so->slots[i], n);
	hm_add(&sys->nr_swap_entries, n);
	uint32_t head;

	bool partial;	/* all of it goes: never queue it for the deferred split */

	hm_folio_remove_map(mm, pfn, level, false, &head, &partial);
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

static int unmap_from(struct hm_mm *mm, struct hm_swapout *so)
{
	int r;

	while ((r = hm_for_each_leaf_of(mm, so->head, unmap_one, so)) == -EAGAIN) {
		/* for_each_leaf_of stopped at a huge leaf to split; find it */
		struct hm_page *h = hm_pfn_page(&so->sys->phys, so->head);
		uint64_t va = folio_va(h);
		uint64_t end = va + folio_size(h);

		for (; va < end; va += HM_PMD_SIZE) {
			unsigned level;
			hm_pte_t *slot = hm_pt_walk(mm_phys(mm), mm->root, mm->sys->top, va, &level);
			hm_pte_t e = pt_get(slot);

			if (level == 0 || !pt_mapped(e))
				continue;
			uint32_t pfn = pt_pfn(e, level), i = pfn - so->head;
			if (pfn < so->head || i >= folio_nr_pages(h))
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
static int remap_one_entry(struct hm_mm *mm, hm_pte_t *slot, unsigned level, uint64_t va, struct hm_swapout *so)
{
	struct hm_phys *ph = mm_phys(mm);
	struct hm_page *h = hm_pfn_page(ph, so->head);
	uint32_t nr = folio_nr_pages(h);
	hm_pte_t e = pt_get(slot);
	uint64_t base = folio_va(h);

	if (!pt_swp_entry(e) || va < base || va >= base + ((uint64_t)nr << HM_PAGE_SHIFT))
		return 0;
	uint32_t i = (uint32_t)((va - base) >> HM_PAGE_SHIFT);
	if (pt_swp_offset(e) != so->slots[i])
		return 0;
	const struct hm_vma *v = hm_vma_lookup(mm, va);
	hm_pte_t bits = pt_mkyoung(pt_wrprotect(pt_prot_bits(v->prot)));
	if (so->dirty)
		bits = pt_mkdirty(bits);
	unsigned n = level ? HM_PTRS : 1;

	hm_folio_add_map(mm, so->head + i, level);
	pt_set(slot, pt_mk_leaf(so->head + i, level, bits));
	hm_swap_put(&so->sys->swap, so->slots[i], n);
	hm_sub(&so->sys->nr_swap_entries, n);
	return 0;
}

static void remap_into(struct hm_mm *mm, struct hm_swapout *so)
{
	struct hm_phys *ph = mm_phys(mm);
	struct hm_page *h = hm_pfn_page(ph, so->head);
	uint64_t va = folio_va(h), end = va + folio_size(h);

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

static void release_slots(struct hm_swapout *so, uint32_t nr, uint32_t flags)
{
	for (uint32_t i = 0; i < nr; i++)
		if (so->slots[i] != HM_SLOT_NONE)
			hm_swap_clear_flags(&so->sys->swap, so->slots[i], 1, flags);
}

/* New slots for every page: a cluster per 2 MiB chunk where one is free. */
static int alloc_slots(struct hm_swapout *so, unsigned order)
{
	struct hm_swap *sw = &so->sys->swap;
	uint32_t nr = 1u << order;

	for (uint32_t i = 0; i < nr; i++)
		so->slots[i] = HM_SLOT_NONE;
	for (uint32_t c = 0; c < nr; c += HM_PTRS) {
		uint64_t s = order ? hm_swap_alloc(sw, HM_SWP_CLUSTER) : HM_SLOT_NONE;

		if (s != HM_SLOT_NONE) {
			for (uint32_t i = 0; i < HM_PTRS; i++)
				so->slots[c + i] = s + i;
			continue;
		}
		for (uint32_t i = c; i < HM_MIN(nr, c + HM_PTRS); i++) {
			if ((so->slots[i] = hm_swap_alloc(sw, 1)) == HM_SLOT_NONE) {
				release_slots(so, nr, HM_SWP_CACHE | HM_SWP_WRITEBACK);
				return -ENOSPC;
			}
		}
	}
	return 0;
}

/* Write the folio's pages, a run of consecutive slots at a time. */
static int write_out(struct hm_swapout *so, uint32_t nr)
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


int hm_swapout_begin(struct hm_system *sys, struct hm_swapout *so, uint32_t head, const struct hm_lockset *ls)
{
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	unsigned order = folio_order(h);
	uint32_t nr = 1u << order;
	int r = 0;

	*so = (struct hm_swapout){ .sys = sys, .head = head,
				   .cached = hm_load_relaxed(&h->flags) & PG_SWAPCACHE };
	so->slots = hm_malloc(&sys->phys.fail, nr * sizeof(*so->slots));
	if (!so->slots)
		return -ENOMEM;
	if (so->cached) {
		for (uint32_t i = 0; i < nr; i++)
			so->slots[i] = folio_swap(h) + i;
		hm_swap_set_flags(&sys->swap, folio_swap(h), nr, HM_SWP_WRITEBACK);
	} else if ((r = alloc_slots(so, order))) {
		free(so->slots);
		so->slots = NULL;
		return r;
	}
	for (unsigned i = 0; i < ls->n && !r; i++)
		r = unmap_from(ls->mm[i], so);
	if (!r && hm_load(&h->large_mapcount))
		r = -EBUSY;	/* a mapping in an mm we did not lock */
	so->err = r;
	return 0;
}

/* Begin failed half way: the entries made map the folio again. */
static void undo(struct hm_swapout *so, const struct hm_lockset *ls)
{
	struct hm_system *sys = so->sys;
	struct hm_page *h = hm_pfn_page(&sys->phys, so->head);
	uint32_t nr = folio_nr_pages(h);

	for (unsigned i = 0; i < ls->n; i++)
		remap_into(ls->mm[i], so);
	if (so->cached)
		hm_swap_clear_flags(&sys->swap, folio_swap(h), nr, HM_SWP_WRITEBACK);
	else
		release_slots(so, nr, HM_SWP_CACHE | HM_SWP_WRITEBACK);
}

int hm_swapout_end(struct hm_swapout *so, const struct hm_lockset *ls)
{
	struct hm_system *sys = so->sys;
	struct hm_page *h = hm_pfn_page(&sys->phys, so->head);
	unsigned order = folio_order(h);
	uint32_t nr = 1u << order;
	bool write = !so->cached || so->dirty;
	int r = so->err;

	if (!r && write && (r = write_out(so, nr)))
		hm_count(sys, HM_STAT_swap_io_error);
	if (r) {
		undo(so, ls);
		free(so->slots);
		return r;
	}
	if (!write)
		hm_add(&sys->events[HM_STAT_pswpout_clean], nr);
	hm_spin_t *lock = hm_folio_lock(sys, so->head);

	hm_spin_lock(lock);
	hm_assert(folio_mapcount(h) == 0);
	__atomic_and_fetch(&h->flags, ~(PG_SWAPCACHE | PG_ISOLATED), __ATOMIC_RELAXED);
	hm_spin_unlock(lock);
	/* Per 2 MiB page written: whole into a cluster or not (a 1 GiB one
	 * goes out as 512 of them). */
	for (uint32_t c = 0; write && order && c < nr; c += HM_PTRS)
		hm_count(sys, chunk_in_cluster(so->slots, c) ? HM_STAT_thp_swpout : HM_STAT_thp_swpout_fallback);
	if (write)
		hm_add(&sys->events[HM_STAT_pswpout], nr);
	/* The entries' counts keep the slots now. */
	release_slots(so, nr, HM_SWP_CACHE | HM_SWP_WRITEBACK);
	free(so->slots);
	hm_sub(&sys->nr_anon_frames, nr);
	hm_free_frames(&sys->pc, so->head, order);
	return 0;
}
