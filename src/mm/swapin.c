/* SPDX-License-Identifier: MIT */
/*
 * Swap-in, and what the rest of mm does with swap entries and the swap
 * cache.
 *
 * A fault on a swap entry looks in the swap cache first: a page that
 * another mapper of the slot swapped in already is mapped from there,
 * read-only, so that pages shared after fork stay shared through swap (as
 * in the kernel). Otherwise the slot is read into a new folio, which goes
 * into the swap cache and is mapped: writable only if no other swap entry
 * names the slot (else its mm will map the same folio from the cache).
 *
 * A folio in the swap cache keeps its slots, so that reclaim can drop it
 * again without a write when its D bits say it was not written: the slots
 * hold its content. It is written (over its own slots) only when dirty,
 * which it can be only after it was mapped writable, that is, when no
 * other entry named its slots: nobody else needs their old content. A
 * folio leaves the cache when it is freed.
 */
#include "../base/race.h"
#include "anon.h"
#include "fault.h"
#include "folio.h"
#include "reclaim.h"
#include "split.h"
#include "stat.h"
#include "table.h"
#include "types.h"

void hm_folio_drop_swapcache_locked(struct hm_system *sys, struct hm_page *h)
{
	if (!(hm_load_relaxed(&h->flags) & PG_SWAPCACHE))
		return;
	__atomic_and_fetch(&h->flags, ~PG_SWAPCACHE, __ATOMIC_RELAXED);
	hm_swap_clear_flags(&sys->swap, folio_swap(h), folio_nr_pages(h), HM_SWP_CACHE);
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

/*
 * A swap-cache hit: the slot's content is in memory already, in a folio
 * another mapper swapped in (or this one, before a pageout that found it
 * clean). Map it read-only: a write copies it, or reuses it once nothing
 * else names it. Context: the entry's table lock.
 */
static bool map_cached_locked(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot, hm_pte_t e,
			      unsigned level)
{
	struct hm_system *sys = mm->sys;
	uint64_t s = pt_swp_offset(e);
	bool ok = false;

	/* Inside a read section from before the lookup: a folio found in the
	 * cache is freed, if at all, only after a grace period. */
	hm_rcu_read_lock();
	uint32_t pfn = hm_swap_cache_lookup(&sys->swap, s);
	if (pfn != HM_PFN_NONE && hm_folio_map_cached(mm, pfn, level, s)) {
		pt_set(slot, pt_mk_leaf(pfn, level, pt_mkyoung(pt_wrprotect(pt_prot_bits(v->prot)))));
		hm_swap_entry_free(sys, e, level);
		ok = true;
	}
	hm_rcu_read_unlock();
	return ok;
}

/* A PMD swap entry where a 2 MiB page may not go (or cannot be had): make
 * it 512 PTE swap entries, and let the access fault again. */
static int split_swap_entry(struct hm_mm *mm, hm_pte_t *slot)
{
	struct hm_split_tables st = { .n = 0 };

	if (mm->sys->cfg.deposit == HM_DEPOSIT_LAZY) {
		/* From the swap-in reserve: what is in swap stays readable. */
		if ((st.pfn[0] = hm_mm_pt_alloc_swapin(mm, 0)) == HM_PFN_NONE)
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
	if (map_cached_locked(mm, v, slot, e, level)) {
		hm_spin_unlock(lock);
		hm_count(sys, HM_STAT_swapin_cache_hit);
		return 0;
	}
	/* Our own reference: the entry may go (another thread's swap-in, a
	 * munmap cannot: we hold mmap_lock) while we read. */
	hm_swap_dup(&sys->swap, s, n);
	hm_spin_unlock(lock);

	/* Only a 4 KiB swap-in may take the frames kept for swap-ins: a 2 MiB
	 * one would take them all, and falls back to 4 KiB instead. */
	uint32_t folio = level ? hm_folio_alloc(mm, HM_PMD_ORDER, false) : hm_folio_alloc_swapin(mm, 0);
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
	bool won = false;

	hm_spin_lock(lock);
	if (pt_get(slot) == e) {
		struct hm_page *h = hm_pfn_page(ph, folio);
		/* Writable only if no other entry names the slots: else their
		 * mms will share this page from the cache, and a write copies. */
		bool alone = slots_ours_alone(&sys->swap, s, n);

		hm_leaf_prot_bits(v, write && alone, &prot);
		if (!alone)
			prot = pt_wrprotect(prot);
		/* Into the swap cache, before the folio is mapped, so that
		 * reclaim never sees it without (see above). Not if pages of
		 * another folio hold some of the slots already (swapped in 4 KiB
		 * at a time by another mm): then the file has their content. */
		h->swap = (uint32_t)s;
		if (hm_swap_cache_add(&sys->swap, s, n, folio))
			__atomic_or_fetch(&h->flags, PG_SWAPCACHE, __ATOMIC_RELAXED);
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
