/* SPDX-License-Identifier: MIT */
/*
 * The huge zero page: one 2 MiB block of zeros per system, mapped read-only
 * by read faults where a 2 MiB page may go, so that reading untouched
 * memory costs page tables and no data frames (the kernel's
 * huge_zero_folio). The first write to it gets a page of its own.
 *
 * Identity. The block is laid out like an order-9 folio (PG_HEAD on its
 * first frame, PG_TAIL on the others), so that a walk over the descriptors
 * knows whose its frames are, and its head carries PG_HUGE_ZERO. It is
 * created by the first read fault that can map it, published with a
 * compare-and-swap on sys->huge_zero_pfn (a racing creator frees its own
 * block, which nobody saw), and kept until hm_system_destroy: it is never
 * freed while a stale translation might still reach it.
 *
 * No map counts. A "zero leaf" is a read-only PMD leaf that maps the
 * block, or one of the 512 read-only PTEs that map its 4 KiB pieces after
 * a split. As the kernel keeps no rmap for the huge zero folio, a zero
 * leaf is counted only in sys->nr_zero_leaf[level]: not in the block's
 * map counts, not in an mm's nr_leaf (its RSS), not in nr_anon_frames.
 * Taking one away frees nothing, so it needs no pin and no gather entry.
 * The folio helpers refuse the block (the map-count changers assert;
 * hm_leaf_reuse says HM_COPY, hm_page_mapcount 0), so every path that
 * meets a zero leaf must say what it does with it:
 *   - zap (unmap.c): clear it, withdraw its deposit, free nothing;
 *   - fork (fork.c): copy it as it is (read-only), deposit for the child;
 *   - split (split.c): 512 zero PTEs;
 *   - mprotect: stays read-only, as hm_leaf_reuse never says REUSE;
 *   - write (cow.c): hm_huge_zero_wp below.
 * A zero PMD leaf has a deposit like any PMD leaf, so that in eager mode
 * it splits without allocating.
 *
 * Only PMD leaves. A read fault maps no 1 GiB page, zero or not, where a
 * zero PMD leaf may go: the 1 GiB range gets zero PMD leaves instead, and
 * reading it costs its page tables (and their deposits) only.
 */
#include "anon.h"
#include "fault.h"
#include "folio.h"
#include "split.h"
#include "stat.h"
#include "table.h"
#include "types.h"
#include "zero.h"


uint32_t hm_huge_zero_get(struct hm_system *sys)
{
	hm_might_sleep();
	struct hm_phys *ph = &sys->phys;
	uint32_t z = hm_load(&sys->huge_zero_pfn);

	if (hm_likely(z != HM_PFN_NONE))
		return z;
	/* Not through hm_folio_alloc: the block is no anonymous memory
	 * (nr_anon_frames), and when no 2 MiB block is free the fault does
	 * without it rather than wait for one. */
	z = hm_alloc_pages(ph, 0, HM_PMD_ORDER, HM_ALLOC_ZERO | HM_ALLOC_UNMOVABLE);
	if (z == HM_PFN_NONE)
		return HM_PFN_NONE;
	struct hm_page *h = hm_pfn_page(ph, z);

	h->flags = PG_HEAD | PG_HUGE_ZERO;
	h->order = HM_PMD_ORDER;
	for (uint32_t i = 1; i < HM_PTRS; i++) {
		h[i].flags = PG_TAIL;
		h[i].order = HM_PMD_ORDER;
	}
	/* Release: whoever finds the pfn finds the zeros and the flags. */
	uint32_t none = HM_PFN_NONE;
	if (!__atomic_compare_exchange_n(&sys->huge_zero_pfn, &none, z, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		hm_free_unmovable(ph, z, HM_PMD_ORDER);	/* another fault won */
		return none;
	}
	hm_count(sys, HM_STAT_thp_zero_page_alloc);
	return z;
}

void hm_huge_zero_fini(struct hm_system *sys)
{
	uint32_t z = sys->huge_zero_pfn;

	hm_assert(!sys->nr_zero_leaf[0] && !sys->nr_zero_leaf[1]);
	if (z != HM_PFN_NONE)
		hm_free_unmovable(&sys->phys, z, HM_PMD_ORDER);
	sys->huge_zero_pfn = HM_PFN_NONE;
}

/* The counts of zero leaves; the callers hold the leaf's table lock. */
void hm_huge_zero_map(struct hm_mm *mm, unsigned level)
{
	hm_assert(level <= 1);
	hm_add(&mm->sys->nr_zero_leaf[level], 1);
}

void hm_huge_zero_unmap(struct hm_mm *mm, unsigned level)
{
	hm_assert(level <= 1);
	hm_sub(&mm->sys->nr_zero_leaf[level], 1);
}

void hm_huge_zero_split_map(struct hm_mm *mm)
{
	hm_sub(&mm->sys->nr_zero_leaf[1], 1);
	hm_add(&mm->sys->nr_zero_leaf[0], HM_PTRS);
}

int hm_huge_zero_fault(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot)
{
	hm_assert_rwsem_held(&mm->mmap_lock);
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	uint32_t deposit = HM_PFN_NONE, zero;

	/* The deposit first: a fault that cannot have it goes on without
	 * the zero page, and then must not have created it (an -ENOMEM
	 * changes nothing but the tables of the walk). */
	if (sys->cfg.deposit == HM_DEPOSIT_EAGER && (deposit = hm_mm_pt_alloc(mm, 0)) == HM_PFN_NONE)
		return 1;
	zero = hm_huge_zero_get(sys);
	if (zero == HM_PFN_NONE) {
		if (deposit != HM_PFN_NONE)
			hm_mm_pt_free_unused(mm, deposit);
		return 1;
	}

	hm_pte_t prot;
	hm_leaf_prot_bits(v, false, &prot);
	uint32_t table = hm_slot_table(ph, slot);
	hm_spin_t *lock = hm_mm_table_lock(mm, table);
	bool won = false;

	hm_spin_lock(lock);
	if (pt_none(pt_get(slot))) {
		if (deposit != HM_PFN_NONE)
			hm_pt_deposit(&sys->pc, table, deposit);
		hm_huge_zero_map(mm, 1);
		/* Read-only whatever the VMA allows: a write must come to
		 * hm_huge_zero_wp for a page of its own. */
		pt_set(slot, pt_mk_leaf(zero, 1, pt_wrprotect(prot)));
		won = true;
	}
	hm_spin_unlock(lock);
	if (won)
		return 0;
	if (deposit != HM_PFN_NONE)
		hm_mm_pt_free_unused(mm, deposit);
	hm_pte_t e = pt_get(slot);
	return pt_mapped(e) && pt_leaf(e, 1) ? 0 : 1;
}

/* Is the entry still the zero leaf @e that the fault saw? A walker may
 * have set A (or D) meanwhile. */
static bool same(hm_pte_t now, hm_pte_t e)
{
	return pt_same_but_ad(now, e);
}

/*
 * Put the fresh zeroed @folio in place of the zero leaf @e at *slot, if it
 * is still there. A PMD leaf keeps its deposit for the new page.
 */
static int install(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot, unsigned level,
		   uint64_t va, hm_pte_t e, uint32_t folio)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(ph, slot));
	bool won = false;

	hm_folio_set_rmap(ph, folio, v, HM_ALIGN_DOWN(va, hm_level_size(level)));
	hm_spin_lock(lock);
	if (same(pt_get(slot), e)) {
		hm_huge_zero_unmap(mm, level);
		hm_folio_add_map(mm, folio, level);
		pt_set(slot, pt_mk_leaf(folio, level, pt_mkyoung_dirty(pt_prot_bits(v->prot))));
		won = true;
	}
	hm_spin_unlock(lock);
	if (!won) {
		hm_folio_free_unmapped(mm, folio);
		return 0;	/* another fault changed it: retry */
	}
	/* Other threads may hold read-only translations of the zero page
	 * here: from now on they must find the new page, or they would read
	 * zeros over what we are about to write. Nothing is freed, so no
	 * grace period is needed. */
	hm_tlb_flush(mm);
	if (level) {
		hm_count(sys, HM_STAT_thp_fault_alloc);
		hm_count(sys, HM_STAT_pmd_fault_alloc);
	}
	return 0;
}

/*
 * Split the zero PMD leaf @*e at *slot into 512 zero PTEs (unless another
 * fault did already) and point *slot and *e at the PTE for @va and the zero
 * PTE it should hold. Lazy mode takes the new table from @table. false: the
 * PMD entry is no longer the zero leaf nor a table (retry).
 */
static bool split_to_pte(struct hm_mm *mm, hm_pte_t **slot, hm_pte_t *e, uint64_t va, uint32_t *table)
{
	struct hm_phys *ph = mm_phys(mm);
	struct hm_split_tables st = { .n = 0 };
	uint32_t piece = pt_pfn(*e, 1) + hm_level_index(va, 0);

	if (*table != HM_PFN_NONE) {
		st.pfn[0] = *table;
		st.n = 1;
	}
	/* Unlocked look first, so as not to split a 2 MiB page that a racing
	 * write just put there (splitting it would still be correct). */
	if (same(pt_get(*slot), *e))
		hm_split_leaf(mm, *slot, 1, &st);
	*table = st.n ? st.pfn[0] : HM_PFN_NONE;	/* not used: the caller frees it */
	hm_pte_t pmd = pt_get(*slot);
	if (!pt_present(pmd) || pt_leaf(pmd, 1))
		return false;
	*slot = hm_pt_entries(ph, pt_pfn(pmd, 1)) + hm_level_index(va, 0);
	*e = pt_split_bits(*e, 1) | ((uint64_t)piece << HM_PAGE_SHIFT);
	return true;
}

int hm_huge_zero_wp(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot, unsigned level,
		    uint64_t va, hm_pte_t e)
{
	hm_assert_rwsem_held(&mm->mmap_lock);
	struct hm_system *sys = mm->sys;
	/* MADV_NOHUGEPAGE after the read: later faults map no huge page. */
	bool huge = level == 1 && hm_thp_allowed(v, sys->cfg.thp_pmd);
	uint32_t folio = HM_PFN_NONE, table = HM_PFN_NONE;

	hm_assert(level <= 1 && hm_is_huge_zero(sys, pt_pfn(e, level)));
	if (huge) {
		folio = hm_folio_alloc(mm, HM_PMD_ORDER, true);
		if (folio != HM_PFN_NONE)
			return install(mm, v, slot, 1, va, e, folio);
		if (hm_drain_was_wanted())
			return -EAGAIN;	/* memory is on its way back: wait for it */
		hm_count(sys, HM_STAT_thp_fault_fallback);
		hm_count(sys, HM_STAT_pmd_fault_fallback);
	}
	/* 4 KiB, splitting a PMD leaf first. Everything is allocated before
	 * anything changes, so that -ENOMEM leaves the zero leaf whole. */
	folio = hm_folio_alloc(mm, 0, true);
	if (folio == HM_PFN_NONE)
		return -ENOMEM;
	if (level == 1 && sys->cfg.deposit == HM_DEPOSIT_LAZY &&
	    (table = hm_mm_pt_alloc(mm, 0)) == HM_PFN_NONE) {
		hm_folio_free_unmapped(mm, folio);
		return -ENOMEM;
	}
	bool ok = level == 0 || split_to_pte(mm, &slot, &e, va, &table);

	if (table != HM_PFN_NONE)
		hm_mm_pt_free_unused(mm, table);
	if (!ok) {
		hm_folio_free_unmapped(mm, folio);
		return 0;
	}
	return install(mm, v, slot, 0, va, e, folio);
}
