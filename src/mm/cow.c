/* SPDX-License-Identifier: MIT */
/*
 * Copy-on-write: a write to a read-only leaf in a writable VMA.
 *
 * Policy (hm_config.cow):
 *  - What the leaf maps is mapped by the faulting address space alone
 *    (hm_leaf_reuse): it is reused in place, the leaf becomes
 *    writable, nothing is copied (cow_reuse).
 *  - Otherwise a shared huge leaf is split (cow_split_pud, cow_split_pmd)
 *    with its own deposit, and the write faults again one level down, so
 *    that only the 4 KiB written is copied (cow_copy) instead of 1 GiB.
 *  - With HM_COW_2M, a shared 2 MiB leaf (or a 2 MiB piece of a split
 *    1 GiB one) is copied whole into a new 2 MiB page when one can be had.
 *  - The huge zero page is neither reused nor copied: the write gets a
 *    fresh zeroed page (zero.c).
 *
 * All of it runs under mmap_lock for reading, like any fault: every change
 * is made under the leaf's table lock after checking that the leaf is still
 * the one we looked at. The decision reads the map counts and the pins
 * under the folio lock (hm_leaf_reuse), so it cannot see half of a split
 * or of an unmap made by another address space at the same time.
 */
#include <string.h>

#include "anon.h"
#include "fault.h"
#include "folio.h"
#include "lru.h"
#include "split.h"
#include "stat.h"
#include "table.h"
#include "types.h"
#include "zero.h"


/* The entry changed under us (other than A/D set by a walker)? */
static bool changed(hm_pte_t now, hm_pte_t then)
{
	return !pt_same_but_ad(now, then);
}

/*
 * Put a private copy, @copy, of the folio mapped by *slot (entry @e, level
 * @level) in its place. Returns false if the entry changed meanwhile.
 *
 * Another thread of ours may still be reading the old page through a
 * translation cached before the copy. Once our count is gone, the other
 * mapper may find the page mapped by it alone and write to it in place;
 * that thread must not see the write. So the old page is pinned in the
 * same step as our count goes (the reuse decision sees the pin), and the
 * pin is dropped after a grace period, by the gather.
 */
static bool replace(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot, unsigned level,
		    hm_pte_t e, uint32_t copy)
{
	struct hm_phys *ph = mm_phys(mm);
	hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(ph, slot));
	uint32_t old = pt_pfn(e, level), head;
	struct hm_gather g;

	hm_mm_gather_init(mm, &g);
	hm_spin_lock(lock);
	if (changed(pt_get(slot), e)) {
		hm_spin_unlock(lock);
		hm_gather_finish(&g);
		return false;
	}
	hm_folio_add_map(mm, copy, level);
	pt_set(slot, pt_mk_leaf(copy, level, pt_mkyoung_dirty(pt_prot_bits(v->prot))));
	hm_gather_tlb(&g);
	switch (hm_folio_remove_map(mm, old, level, true, &head, NULL)) {
	case HM_FOLIO_UNMAPPED: hm_gather_folio(&g, head); break;	/* the others went away */
	case HM_FOLIO_PINNED:	hm_gather_pin(&g, head); break;
	case HM_FOLIO_MAPPED:	break;
	}
	hm_spin_unlock(lock);
	hm_gather_finish(&g);
	hm_count(mm->sys, HM_STAT_cow_copy);
	return true;
}

/*
 * Pin the folio that *slot maps, if the slot still holds @e: then neither
 * reclaim nor compaction takes it while we copy from it outside the locks.
 * False if the entry changed, or the folio is isolated (on its way out or
 * to other frames): the access faults again.
 */
static bool pin_source(struct hm_mm *mm, hm_pte_t *slot, hm_pte_t e, unsigned level, uint32_t *head)
{
	struct hm_phys *ph = mm_phys(mm);
	hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(ph, slot));
	bool ok = false;

	hm_spin_lock(lock);
	if (!changed(pt_get(slot), e)) {
		*head = hm_folio_head(ph, pt_pfn(e, level));
		ok = hm_folio_try_pin(mm->sys, head);
	}
	hm_spin_unlock(lock);
	return ok;
}

/*
 * The source is pinned before the copy is allocated, as the kernel holds a
 * reference on the old page across wp_page_copy()'s allocation: else the
 * allocation's direct reclaim may take the source itself. A clean page in
 * the swap cache is the cheapest thing reclaim can free (no write); with
 * memory and swap full it may be the only one, and the access would loop
 * for ever: the copy freed because its source went, the swap-in bringing
 * the source back from the frames kept for swap-ins, the next copy's
 * allocation taking it again (fuzz seed 182). Pinned, the source stays,
 * and the allocation finds other memory or the write gets -ENOMEM.
 */
static int copy_page(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot, uint64_t va,
		     hm_pte_t e, unsigned level)
{
	struct hm_phys *ph = mm_phys(mm);
	unsigned order = level * HM_PMD_ORDER;
	uint32_t copy, head;

	if (!pin_source(mm, slot, e, level, &head))
		return 0;
	copy = hm_folio_alloc(mm, order, false);
	if (copy == HM_PFN_NONE) {
		hm_folio_unpin(mm->sys, head);
		return -ENOMEM;
	}
	memcpy(hm_pfn_ptr(ph, copy), hm_pfn_ptr(ph, pt_pfn(e, level)), HM_PAGE_SIZE << order);
	hm_folio_unpin(mm->sys, head);
	hm_folio_set_rmap(ph, copy, v, HM_ALIGN_DOWN(va, hm_level_size(level)));
	if (!replace(mm, v, slot, level, e, copy))
		hm_folio_free_unmapped(mm, copy);
	return 0;
}

static int split_for_cow(struct hm_mm *mm, hm_pte_t *slot, unsigned level)
{
	struct hm_split_tables st;

	if (hm_split_table_lazy(mm, &st))
		return -ENOMEM;
	if (hm_split_leaf(mm, slot, level, &st))
		hm_count(mm->sys, level == 2 ? HM_STAT_cow_split_pud : HM_STAT_cow_split_pmd);
	hm_split_done(mm, &st);
	return 0;	/* the access faults again, a level down */
}

int hm_wp_fault(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot, unsigned level, uint64_t va,
		unsigned flags)
{
	hm_assert_rwsem_held(&mm->mmap_lock);
	struct hm_system *sys = mm->sys;
	hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(&sys->phys, slot));

	hm_spin_lock(lock);
	hm_pte_t e = pt_get(slot);
	if (!pt_present(e) || pt_writable(e) || !pt_leaf(e, level)) {
		hm_spin_unlock(lock);
		return 0;	/* someone else resolved it */
	}
	if (hm_is_huge_zero(sys, pt_pfn(e, level))) {
		hm_spin_unlock(lock);
		return hm_huge_zero_wp(mm, v, slot, level, va, e);	/* never reused */
	}
	enum hm_reuse r = hm_leaf_reuse(mm, pt_pfn(e, level), level);
	if (r == HM_REUSE) {
		pt_mkwrite_dirty_at(slot);
		hm_spin_unlock(lock);
		hm_count(sys, HM_STAT_cow_reuse);
		return 0;
	}
	hm_spin_unlock(lock);
	/* Ours alone but for an unmap in flight elsewhere: let the caller
	 * wait for its grace period without mmap_lock, and decide again;
	 * copy if it cannot wait. */
	if (r == HM_REUSE_LATER && (flags & HM_FAULT_ALLOW_RETRY))
		return -EAGAIN;
	if (level == 0)
		return copy_page(mm, v, slot, va, e, 0);
	if (level == 1 && sys->cow_policy == HM_COW_2M && copy_page(mm, v, slot, va, e, 1) == 0)
		return 0;
	return split_for_cow(mm, slot, level);
}
