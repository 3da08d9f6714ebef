/* SPDX-License-Identifier: MIT */
/*
 * Swap-in, and what the rest of mm does with swap entries and the swap
 * cache.
 *
 * A fault on a swap entry reads the slot into a new folio of its own and
 * maps it. Swapped-out pages shared after fork are thus private again once
 * in memory (each mapper reads its own copy), so no page in memory is ever
 * shared through swap and copy-on-write stays the one way pages are shared.
 *
 * The swap cache keeps a slot for a folio read in from it and not written
 * since, so that reclaim can drop the folio again without a write (its D
 * bits tell whether it was written). A folio keeps the slot only when no
 * other swap entry names it: then the slot's content is the folio's alone,
 * and reclaim may write the folio over it.
 */
#include "../base/race.h"
#include "mm.h"

void hm_folio_drop_swapcache_locked(struct hm_system *sys, struct hm_page *h)
{
	if (!(hm_load_relaxed(&h->flags) & PG_SWAPCACHE))
		return;
	__atomic_and_fetch(&h->flags, ~PG_SWAPCACHE, __ATOMIC_RELAXED);
	hm_swap_clear_flags(&sys->swap, h->swap, 1u << h->order, HM_SWP_CACHE);
}

void hm_swap_entry_free(struct hm_system *sys, hm_pte_t e, unsigned level)
{
	unsigned n = level ? HM_PTRS : 1;

	hm_swap_put(&sys->swap, pt_swp_offset(e), n);
	hm_sub(&sys->nr_swap_entries, n);
}

/* No entry but the one we swap in names the slots: their counts are that
 * entry's and our own reference. */
static bool slots_ours_alone(struct hm_swap *sw, uint64_t s, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if ((hm_swap_word(sw, s + i) & HM_SWP_COUNT_MASK) != 2)
			return false;
	return true;
}

/* A PMD swap entry where a 2 MiB page may not go (or cannot be had): make
 * it 512 PTE swap entries, and let the access fault again. */
static int split_swap_entry(struct hm_mm *mm, hm_pte_t *slot)
{
	struct hm_split_tables st = { .n = 0 };

	if (mm->sys->cfg.deposit == HM_DEPOSIT_LAZY) {
		st.pfn[0] = hm_mm_pt_alloc(mm, 0);
		if (st.pfn[0] == HM_PFN_NONE)
			return -ENOMEM;
		st.n = 1;
	}
	hm_split_swap_pmd(mm, slot, &st);
	hm_split_done(mm, &st);
	return 0;
}

int hm_swap_in(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot, unsigned level,
	       uint64_t va, bool write)
{
	hm_assert_rwsem_held(&mm->mmap_lock);
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(ph, slot));
	unsigned n = level ? HM_PTRS : 1;

	hm_assert(level <= 1);
	if (level == 1 && !hm_huge_allowed(sys, v, va, 1))
		return split_swap_entry(mm, slot);
	hm_spin_lock(lock);
	hm_pte_t e = pt_get(slot);
	if (!pt_swp_entry(e)) {
		hm_spin_unlock(lock);
		return 0;	/* someone else swapped it in */
	}
	uint64_t s = pt_swp_offset(e);
	/* Our own reference: the entry may go (another thread's swap-in, a
	 * munmap cannot: we hold mmap_lock) while we read. */
	hm_swap_dup(&sys->swap, s, n);
	hm_spin_unlock(lock);

	uint32_t folio = hm_folio_alloc_swapin(mm, level * HM_PMD_ORDER);
	if (folio == HM_PFN_NONE) {
		hm_swap_put(&sys->swap, s, n);
		return level ? split_swap_entry(mm, slot) : -ENOMEM;
	}
	hm_race_point("swapin_before_read");
	if (hm_swap_read(&sys->swap, s, hm_pfn_ptr(ph, folio), n)) {
		hm_swap_put(&sys->swap, s, n);
		hm_folio_free_unmapped(mm, folio);
		hm_count(sys, HM_STAT_swap_io_error);
		return -EIO;
	}
	hm_folio_set_rmap(ph, folio, v, HM_ALIGN_DOWN(va, hm_level_size(level)));

	hm_pte_t prot;
	hm_leaf_prot_bits(v, write, &prot);
	bool won = false;

	hm_spin_lock(lock);
	if (pt_get(slot) == e) {
		struct hm_page *h = hm_pfn_page(ph, folio);

		/* Clean, and the slot is ours alone (the entry's count and
		 * ours): keep it (see above). Before the folio is mapped, so
		 * that reclaim never sees it without. */
		if (!write && slots_ours_alone(&sys->swap, s, n)) {
			h->swap = (uint32_t)s;
			hm_swap_set_flags(&sys->swap, s, n, HM_SWP_CACHE);
			__atomic_or_fetch(&h->flags, PG_SWAPCACHE, __ATOMIC_RELAXED);
		}
		hm_folio_add_map(mm, folio, level);
		pt_set(slot, pt_mk_leaf(folio, level, prot));
		hm_swap_entry_free(sys, e, level);
		won = true;
	}
	hm_spin_unlock(lock);
	hm_swap_put(&sys->swap, s, n);
	if (!won) {
		hm_folio_free_unmapped(mm, folio);
		return 0;
	}
	hm_add(&sys->events[HM_STAT_pswpin], n);
	if (level)
		hm_count(sys, HM_STAT_thp_swpin);
	return 0;
}
