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
#include "mm.h"

uint32_t hm_folio_head(struct hm_phys *ph, uint32_t pfn)
{
	const struct hm_page *pg = hm_pfn_page(ph, pfn);

	hm_assert_int(pg->flags & (PG_HEAD | PG_TAIL));
	return pfn & ~((1u << pg->order) - 1);
}

uint32_t hm_folio_alloc(struct hm_mm *mm, unsigned order, bool zero)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	uint32_t pfn = hm_alloc_pages(ph, 0, order, 0);

	/* Empty page-table blocks are the only memory we can give back. */
	if (pfn == HM_PFN_NONE && hm_ptcache_shrink(&sys->pc))
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

static void slots_add(struct hm_page *h, uint32_t id, int n)
{
	if (h->flags & PG_MAYBE_SHARED)
		return;
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
	h->flags |= PG_MAYBE_SHARED;
}

static void slots_sub(struct hm_page *h, uint32_t id, int n)
{
	if (h->flags & PG_MAYBE_SHARED) {
		if (h->large_mapcount == 0) {
			h->flags &= ~PG_MAYBE_SHARED;
			h->mm_count[0] = h->mm_count[1] = 0;
		}
		return;
	}
	for (int s = 0; s < 2; s++) {
		if (h->mm_count[s] && h->mm_id[s] == id) {
			h->mm_count[s] -= n;
			hm_assert(h->mm_count[s] >= 0);
			return;
		}
	}
	hm_assert(!"folio unmapped by an mm that has no slot");
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
	uint32_t head = hm_folio_head(ph, pfn);
	struct hm_page *h = hm_pfn_page(ph, head);
	hm_spin_t *lock = hm_folio_lock(mm->sys, head);

	hm_spin_lock(lock);
	hm_add(leaf_counter(ph, h, pfn, level), 1);
	hm_add(&h->large_mapcount, 1);
	slots_add(h, mm->slot_id, 1);
	hm_spin_unlock(lock);
	hm_add(&mm->nr_leaf[level], 1);
	hm_add(&mm->sys->nr_leaf[level], 1);
}

bool hm_folio_remove_map(struct hm_mm *mm, uint32_t pfn, unsigned level)
{
	struct hm_phys *ph = mm_phys(mm);
	uint32_t head = hm_folio_head(ph, pfn);
	struct hm_page *h = hm_pfn_page(ph, head);
	hm_spin_t *lock = hm_folio_lock(mm->sys, head);

	hm_spin_lock(lock);
	hm_sub(leaf_counter(ph, h, pfn, level), 1);
	int left = hm_sub(&h->large_mapcount, 1);
	slots_sub(h, mm->slot_id, 1);
	hm_spin_unlock(lock);
	hm_sub(&mm->nr_leaf[level], 1);
	hm_sub(&mm->sys->nr_leaf[level], 1);
	if (left)
		return false;
	hm_sub(&mm->sys->nr_anon_frames, 1u << h->order);
	return true;
}

static inline struct hm_page *chunk_of(struct hm_phys *ph, uint32_t pfn)
{
	return hm_pfn_page(ph, pfn & ~(HM_PTRS - 1));
}

/* O(1) in descriptors: the split's new leaves are counted by pte_all or
 * pmd_all (see phys.h), not page by page. */
void hm_folio_split_map(struct hm_mm *mm, uint32_t pfn, unsigned level)
{
	struct hm_phys *ph = mm_phys(mm);
	uint32_t head = hm_folio_head(ph, pfn);
	struct hm_page *h = hm_pfn_page(ph, head);
	hm_spin_t *lock = hm_folio_lock(mm->sys, head);

	hm_assert(level == 1 || level == 2);
	hm_spin_lock(lock);
	hm_sub(leaf_counter(ph, h, pfn, level), 1);
	if (level == 2)
		hm_add(&h->pmd_all, 1);
	else
		hm_add(&chunk_of(ph, pfn)->pte_all, 1);
	hm_add(&h->large_mapcount, HM_PTRS - 1);
	slots_add(h, mm->slot_id, HM_PTRS - 1);
	hm_spin_unlock(lock);
	hm_sub(&mm->nr_leaf[level], 1);
	hm_add(&mm->nr_leaf[level - 1], HM_PTRS);
	hm_sub(&mm->sys->nr_leaf[level], 1);
	hm_add(&mm->sys->nr_leaf[level - 1], HM_PTRS);
}

unsigned hm_page_mapcount(struct hm_phys *ph, uint32_t pfn)
{
	struct hm_page *h = hm_pfn_page(ph, hm_folio_head(ph, pfn));
	int32_t n = hm_load_relaxed(&hm_pfn_page(ph, pfn)->mapcount);

	if (h->order) {
		struct hm_page *c = chunk_of(ph, pfn);

		n += hm_load_relaxed(&c->pte_all) + hm_load_relaxed(&h->entire_mapcount);
		if (h->order == HM_PUD_ORDER)
			n += hm_load_relaxed(&h->pmd_all) + hm_load_relaxed(&c->pmd_mapcount);
	}
	return (unsigned)n;
}

bool hm_folio_mapped_by_only(struct hm_system *sys, uint32_t pfn, uint32_t slot_id)
{
	struct hm_phys *ph = &sys->phys;
	uint32_t head = hm_folio_head(ph, pfn);
	struct hm_page *h = hm_pfn_page(ph, head);
	hm_spin_t *lock = hm_folio_lock(sys, head);
	bool only = false;

	hm_spin_lock(lock);
	if (!(h->flags & PG_MAYBE_SHARED))
		for (int s = 0; s < 2; s++)
			if (h->mm_count[s] && h->mm_id[s] == slot_id)
				only = h->mm_count[s] == h->large_mapcount;
	hm_spin_unlock(lock);
	return only;
}

/* The 2 MiB chunk at @pfn is mapped by exactly one leaf, a PMD leaf (or the
 * PUD leaf of its folio), and by no PTE: then that leaf's mm is alone. */
static bool chunk_mapped_once(struct hm_system *sys, uint32_t pfn)
{
	struct hm_phys *ph = &sys->phys;
	uint32_t head = hm_folio_head(ph, pfn);
	struct hm_page *h = hm_pfn_page(ph, head), *c = chunk_of(ph, pfn);
	hm_spin_t *lock = hm_folio_lock(sys, head);
	bool once;

	hm_spin_lock(lock);
	int32_t maps = h->entire_mapcount;
	if (h->order == HM_PUD_ORDER)
		maps += h->pmd_all + c->pmd_mapcount;
	once = maps == 1 && c->pte_all == 0;
	for (unsigned i = 0; once && i < HM_PTRS; i++)
		once = c[i].mapcount == 0;
	hm_spin_unlock(lock);
	return once;
}

/* Does no address space other than @mm_id map what the leaf of @level at
 * @pfn maps? Exact for 4 KiB leaves (an mm maps a page at most once, so the
 * page's own count says it) and for 2 MiB leaves (the chunk's counts); for
 * 1 GiB leaves, the folio's mm slots: exact while at most two mms map the
 * folio, "no" beyond. */
bool hm_leaf_exclusive(struct hm_system *sys, uint32_t pfn, unsigned level, uint64_t mm_id)
{
	if (level == 0)
		return hm_page_mapcount(&sys->phys, pfn) == 1;
	if (level == 1)
		return chunk_mapped_once(sys, pfn);
	return hm_folio_mapped_by_only(sys, pfn, mm_id);
}
