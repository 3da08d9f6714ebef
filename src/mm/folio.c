/* SPDX-License-Identifier: MIT */
/*
 * Folios and their map counts (equations in phys/phys.h).
 *
 * Counts change under the lock of the entry that maps: the ptl of the
 * table holding the leaf, or mm->page_table_lock for a PUD leaf. Different
 * leaves of one folio may sit in different tables, so the counters are
 * updated atomically. The two (mm id, count) slots answer "is this folio
 * mapped by this address space alone?" exactly while at most two address
 * spaces map it; past that the folio is marked maybe-shared until it is
 * unmapped everywhere.
 */
#include "../base/race.h"
#include "mm.h"

uint32_t hm_folio_head(struct hm_phys *ph, uint32_t pfn)
{
	const struct hm_page *pg = hm_pfn_page(ph, pfn);

	/* Without the folio lock: a head's PG_MAYBE_SHARED changes under it,
	 * and a folio split (folio_split.c) rewrites flags and order under
	 * every folio lock. A mapped frame is always a head or a tail; whoever
	 * acts on the head looks it up again under its lock (lock_folio_of). */
	hm_assert_int(hm_load_relaxed(&pg->flags) & (PG_HEAD | PG_TAIL));
	return pfn & ~((1u << hm_load_relaxed(&pg->order)) - 1);
}

/*
 * Take the lock of the folio that @pfn belongs to; its head in *head. The
 * head was looked up without the lock, and a folio split may have moved it
 * by the time we hold it: look again under the lock, and go round if the
 * frame has another head now. Every map count change goes through here.
 */
static hm_spin_t *lock_folio_of(struct hm_system *sys, uint32_t pfn, uint32_t *head)
{
	struct hm_phys *ph = &sys->phys;

	for (;;) {
		uint32_t h = hm_folio_head(ph, pfn);
		hm_spin_t *lock = hm_folio_lock(sys, h);

		hm_race_point("folio_lock_of");
		hm_spin_lock(lock);
		if (hm_folio_head(ph, pfn) == h) {
			*head = h;
			return lock;
		}
		hm_spin_unlock(lock);
	}
}

uint32_t hm_folio_alloc(struct hm_mm *mm, unsigned order, bool zero)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	uint32_t pfn = hm_alloc_pages(ph, 0, order, 0);

	/* Frames on their way back from unmaps, then empty page-table blocks,
	 * are the memory we can get back. */
	if (pfn == HM_PFN_NONE && hm_ptcache_drain(&sys->pc))
		pfn = hm_alloc_pages(ph, 0, order, 0);
	if (pfn == HM_PFN_NONE && hm_ptcache_shrink(&sys->pc))
		pfn = hm_alloc_pages(ph, 0, order, 0);
	/* Then the unmapped parts of partly unmapped huge pages: they come
	 * back after a grace period, which the drain waits for (or, in a
	 * fault that must not wait under mmap_lock, asks it to). */
	if (pfn == HM_PFN_NONE && hm_thp_shrink(sys, 1u << order) && hm_ptcache_drain(&sys->pc))
		pfn = hm_alloc_pages(ph, 0, order, 0);
	if (pfn == HM_PFN_NONE && order == 0)
		pfn = hm_ptcache_lend(&sys->pc);
	if (pfn == HM_PFN_NONE)
		return HM_PFN_NONE;
	struct hm_page *head = hm_pfn_page(ph, pfn);
	head->flags = PG_HEAD | (head->flags & PG_PT_SLOT);
	head->order = (uint8_t)order;
	for (uint32_t i = 1; i < (1u << order); i++) {
		head[i].flags = PG_TAIL;
		head[i].order = (uint8_t)order;
	}
	if (zero)
		hm_zero_pages(ph, pfn, order);
	hm_add(&sys->nr_anon_frames, 1u << order);
	return pfn;
}

/* A folio that was never mapped (a fault lost a race, or gave up). */
void hm_folio_free_unmapped(struct hm_mm *mm, uint32_t head)
{
	struct hm_phys *ph = mm_phys(mm);
	unsigned order = hm_pfn_page(ph, head)->order;

	hm_assert(hm_pfn_page(ph, head)->large_mapcount == 0);
	hm_sub(&mm->sys->nr_anon_frames, 1u << order);
	hm_free_frames(&mm->sys->pc, head, order);
}

/*
 * The two (mm, count) slots. A mapping by an mm that has no slot while both
 * are taken is not tracked, and marks the folio maybe-shared. While it is,
 * a slot's count never exceeds its mm's true count (a slot taken late
 * misses older mappings; a removal it cannot place is taken from the slot
 * of its mm, clamped at 0), so a slot whose count equals large_mapcount
 * proves that its mm maps all of the folio: then the mark is cleared.
 */
static void slots_add(struct hm_page *h, uint32_t id, int n)
{
	for (int s = 0; s < 2; s++) {
		if (h->mm_count[s] && h->mm_id[s] == id) {
			h->mm_count[s] += n;
			return;
		}
	}
	for (int s = 0; s < 2; s++) {
		if (!h->mm_count[s]) {
			h->mm_id[s] = id;
			h->mm_count[s] = n;
			return;
		}
	}
	__atomic_or_fetch(&h->flags, PG_MAYBE_SHARED, __ATOMIC_RELAXED);
}

static void slots_sub(struct hm_page *h, uint32_t id, int n)
{
	bool found = false;

	for (int s = 0; s < 2 && !found; s++) {
		if (h->mm_count[s] && h->mm_id[s] == id) {
			found = true;
			h->mm_count[s] -= n;
			if (h->mm_count[s] < 0) {
				hm_assert(h->flags & PG_MAYBE_SHARED);
				h->mm_count[s] = 0;
			}
		}
	}
	hm_assert(found || (h->flags & PG_MAYBE_SHARED));
	if (!(h->flags & PG_MAYBE_SHARED))
		return;
	for (int s = 0; s < 2; s++) {
		if (h->mm_count[s] == h->large_mapcount) {
			__atomic_and_fetch(&h->flags, ~PG_MAYBE_SHARED, __ATOMIC_RELAXED);
			h->mm_count[!s] = 0;
		}
	}
}

/* The counter that a leaf of @level at @pfn adds to (see phys.h). */
static int32_t *leaf_counter(struct hm_phys *ph, struct hm_page *h, uint32_t pfn, unsigned level)
{
	if (level == 0)
		return &hm_pfn_page(ph, pfn)->mapcount;
	if (level * HM_PMD_ORDER == h->order)
		return &h->entire_mapcount;
	hm_assert(level == 1 && h->order == HM_PUD_ORDER);
	return &hm_pfn_page(ph, pfn)->pmd_mapcount;
}

void hm_folio_add_map(struct hm_mm *mm, uint32_t pfn, unsigned level)
{
	struct hm_phys *ph = mm_phys(mm);
	uint32_t head;
	hm_spin_t *lock = lock_folio_of(mm->sys, pfn, &head);
	struct hm_page *h = hm_pfn_page(ph, head);

	hm_add(leaf_counter(ph, h, pfn, level), 1);
	hm_add(&h->large_mapcount, 1);
	slots_add(h, mm->slot_id, 1);
	hm_spin_unlock(lock);
	hm_add(&mm->nr_leaf[level], 1);
	hm_add(&mm->sys->nr_leaf[level], 1);
}

/* Does mm @id alone map the (still mapped) folio? Context: the folio lock. */
static bool alone_locked(const struct hm_page *h, uint32_t id)
{
	for (int s = 0; s < 2; s++)
		if (!(h->flags & PG_MAYBE_SHARED) && h->mm_count[s] && h->mm_id[s] == id)
			return h->mm_count[s] == h->large_mapcount;
	return false;
}

static int32_t page_maps_locked(struct hm_phys *ph, struct hm_page *h, uint32_t pfn);

/*
 * Did taking a leaf of @level at @pfn away leave a page that it mapped
 * mapped by nothing? Context: the folio lock, h->order > 0. A 1 GiB leaf
 * looks at every page but skips the chunks still mapped whole.
 */
static bool left_unmapped_locked(struct hm_phys *ph, struct hm_page *h, uint32_t pfn, unsigned level)
{
	if (h->entire_mapcount)
		return false;
	if (level == 0)
		return page_maps_locked(ph, h, pfn) == 0;
	uint32_t first = level * HM_PMD_ORDER == h->order ? hm_page_pfn(ph, h) : pfn;

	for (uint32_t c = first; c < first + (1u << (level * HM_PMD_ORDER)); c += HM_PTRS) {
		struct hm_page *cp = hm_pfn_page(ph, c);

		if (h->order == HM_PUD_ORDER && h->pmd_all + cp->pmd_mapcount > 0)
			continue;
		for (uint32_t i = 0; i < HM_PTRS; i++)
			if (cp->pte_all + cp[i].mapcount == 0)
				return true;
	}
	return false;
}

enum hm_unmapped hm_folio_remove_map(struct hm_mm *mm, uint32_t pfn, unsigned level, bool pin,
				     uint32_t *headp, bool *run_left)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	uint32_t head;
	hm_spin_t *lock = lock_folio_of(sys, pfn, &head);
	struct hm_page *h = hm_pfn_page(ph, head);
	enum hm_unmapped r = HM_FOLIO_MAPPED;

	hm_sub(leaf_counter(ph, h, pfn, level), 1);
	int left = hm_sub(&h->large_mapcount, 1);
	slots_sub(h, mm->slot_id, 1);
	/* Only another mm could reuse the folio in place under our stale
	 * translations; one that maps it later can only be our child, and fork
	 * waits for them. */
	if (left && pin && !alone_locked(h, mm->slot_id)) {
		hm_add(hm_pin_slot(ph, head), 1);
		r = HM_FOLIO_PINNED;
	}
	/* A huge page left partly mapped waits on the deferred split queue
	 * until memory is short (or the caller queues it at the end of its
	 * run); one that is unmapped leaves the queue before it is freed. */
	if (left && h->order && !hm_deferred_partial_locked(sys, head) &&
	    left_unmapped_locked(ph, h, pfn, level)) {
		if (run_left)
			*run_left = true;
		else
			hm_deferred_add_locked(sys, head, true);
	} else if (!left && (hm_load_relaxed(&h->flags) & PG_DEFERRED)) {
		hm_deferred_del_locked(sys, head);
	}
	unsigned order = h->order;
	hm_spin_unlock(lock);
	hm_sub(&mm->nr_leaf[level], 1);
	hm_sub(&sys->nr_leaf[level], 1);
	*headp = head;
	if (left)
		return r;
	hm_sub(&sys->nr_anon_frames, 1u << order);
	return HM_FOLIO_UNMAPPED;
}

void hm_folio_defer_partial(struct hm_system *sys, uint32_t pfn)
{
	struct hm_phys *ph = &sys->phys;
	uint32_t head;
	hm_spin_t *lock = lock_folio_of(sys, pfn, &head);
	struct hm_page *h = hm_pfn_page(ph, head);

	if (h->order && h->large_mapcount > 0 && !hm_deferred_partial_locked(sys, head))
		hm_deferred_add_locked(sys, head, true);
	hm_spin_unlock(lock);
}

static inline struct hm_page *chunk_of(struct hm_phys *ph, uint32_t pfn)
{
	return hm_pfn_page(ph, pfn & ~(HM_PTRS - 1));
}

/* O(1) in descriptors: the split's new leaves are counted by pte_all or
 * pmd_all (see phys.h), not page by page. */
void hm_folio_split_map(struct hm_mm *mm, uint32_t pfn, unsigned level)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	uint32_t head;

	hm_assert(level == 1 || level == 2);
	hm_spin_t *lock = lock_folio_of(sys, pfn, &head);
	struct hm_page *h = hm_pfn_page(ph, head);

	hm_sub(leaf_counter(ph, h, pfn, level), 1);
	if (level == 2)
		hm_add(&h->pmd_all, 1);
	else
		hm_add(&chunk_of(ph, pfn)->pte_all, 1);
	hm_add(&h->large_mapcount, HM_PTRS - 1);
	slots_add(h, mm->slot_id, HM_PTRS - 1);
	/* Mapped by PTEs, its zero-filled pages can be dropped: a candidate
	 * for the underused shrinker, when it is on. */
	if (level == 1 && h->order == HM_PMD_ORDER && !(hm_load_relaxed(&h->flags) & PG_DEFERRED) &&
	    sys->cfg.khugepaged_max_ptes_none < HM_PTRS - 1)
		hm_deferred_add_locked(sys, head, false);
	hm_spin_unlock(lock);
	hm_sub(&mm->nr_leaf[level], 1);
	hm_add(&mm->nr_leaf[level - 1], HM_PTRS);
	hm_sub(&mm->sys->nr_leaf[level], 1);
	hm_add(&mm->sys->nr_leaf[level - 1], HM_PTRS);
}

/* Leaves that map the 4 KiB page @pfn (see phys.h). Context: the folio lock. */
static int32_t page_maps_locked(struct hm_phys *ph, struct hm_page *h, uint32_t pfn)
{
	int32_t n = hm_pfn_page(ph, pfn)->mapcount;

	if (h->order) {
		struct hm_page *c = chunk_of(ph, pfn);

		n += c->pte_all;
		hm_race_point("cow_reuse_counts");
		n += h->entire_mapcount;
		if (h->order == HM_PUD_ORDER)
			n += h->pmd_all + c->pmd_mapcount;
	}
	return n;
}

unsigned hm_page_mapcount(struct hm_system *sys, uint32_t pfn)
{
	struct hm_phys *ph = &sys->phys;
	uint32_t head;
	hm_spin_t *lock = lock_folio_of(sys, pfn, &head);
	int32_t n = page_maps_locked(ph, hm_pfn_page(ph, head), pfn);
	hm_spin_unlock(lock);
	return (unsigned)n;
}

/*
 * Leaves, in all mms, that map any part of what a leaf of @level at @pfn
 * maps. Context: the folio lock. An mm maps a folio only at its one
 * virtual address (there is no mremap), so a 4 KiB page, a 2 MiB chunk or
 * a whole folio mapped by a leaf of its own size is mapped by nothing else
 * of that mm: a result of 1 means "this leaf alone", for any number of mms.
 */
static int32_t leaf_maps_locked(struct hm_phys *ph, struct hm_page *h, uint32_t pfn, unsigned level)
{
	if (level == 0)
		return page_maps_locked(ph, h, pfn);
	if (level == 2 || h->order == HM_PMD_ORDER)
		return h->large_mapcount;
	/* A 2 MiB chunk of a 1 GiB folio: its PMD maps, the folio's PUD maps,
	 * and the PTE maps of its 512 pages. */
	struct hm_page *c = chunk_of(ph, pfn);
	int32_t n = h->entire_mapcount + h->pmd_all + c->pmd_mapcount + c->pte_all * (int32_t)HM_PTRS;

	for (unsigned i = 0; i < HM_PTRS; i++)
		n += c[i].mapcount;
	return n;
}

enum hm_reuse hm_leaf_reuse(struct hm_mm *mm, uint32_t pfn, unsigned level)
{
	struct hm_phys *ph = mm_phys(mm);
	uint32_t head;
	hm_spin_t *lock = lock_folio_of(mm->sys, pfn, &head);
	enum hm_reuse r = HM_COPY;

	if (leaf_maps_locked(ph, hm_pfn_page(ph, head), pfn, level) == 1)
		r = hm_load(hm_pin_slot(ph, head)) ? HM_REUSE_LATER : HM_REUSE;
	hm_spin_unlock(lock);
	return r;
}
