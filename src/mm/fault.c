/* SPDX-License-Identifier: MIT */
/*
 * Page faults. The largest page that the VMA, the alignment, the per-size
 * policy and the allocator allow: 1 GiB, then 2 MiB, then 4 KiB. A read
 * where a 2 MiB page may go maps the huge zero page instead (zero.c).
 *
 * Everything a fault needs (the folio, zeroed, and in eager mode its
 * deposit) is allocated before the entry's lock is taken; under the lock
 * the entry is checked again, and the loser of a race frees what it
 * allocated, which nobody else has seen.
 */
#include "../base/race.h"
#include "anon.h"
#include "fault.h"
#include "folio.h"
#include "migrate.h"
#include "reclaim.h"
#include "stat.h"
#include "table.h"
#include "types.h"
#include "vma.h"
#include "zero.h"

int hm_leaf_prot_bits(const struct hm_vma *v, bool write, hm_pte_t *out)
{
	hm_pte_t b = pt_mkyoung(pt_prot_bits(v->prot));

	if (write)
		b = pt_mkdirty(b);
	*out = b;
	return 0;
}

bool hm_thp_allowed(const struct hm_vma *v, int policy)
{
	if (policy == HM_THP_NEVER || (v->flags & VM_NOHUGEPAGE))
		return false;
	return policy == HM_THP_ALWAYS || (v->flags & VM_HUGEPAGE);
}

static bool huge_fits(const struct hm_vma *v, uint64_t va, uint64_t size)
{
	uint64_t base = HM_ALIGN_DOWN(va, size);

	return base >= v->start && base + size <= v->end;
}

bool hm_huge_allowed(struct hm_system *sys, const struct hm_vma *v, uint64_t va, unsigned level)
{
	return hm_thp_allowed(v, level == 2 ? sys->cfg.thp_pud : sys->cfg.thp_pmd) &&
	       huge_fits(v, va, hm_level_size(level));
}

/*
 * Make sure *slot (an entry of a table of level @level >= 1) links to a
 * table of level - 1. Returns its pfn, or HM_PFN_NONE if a huge leaf (or a
 * non-present huge entry) sits there, or -ENOMEM through *err.
 */
static uint32_t ensure_table(struct hm_mm *mm, hm_pte_t *slot, unsigned level, int *err)
{
	struct hm_phys *ph = mm_phys(mm);
	hm_pte_t e = pt_get(slot);

	if (pt_present(e) && !pt_leaf(e, level))
		return pt_pfn(e, level);
	if (!pt_none(e))
		return HM_PFN_NONE;

	uint32_t table = hm_mm_pt_alloc(mm, level - 1);
	if (table == HM_PFN_NONE) {
		*err = -ENOMEM;
		return HM_PFN_NONE;
	}
	hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(ph, slot));
	hm_spin_lock(lock);
	e = pt_get(slot);
	if (pt_none(e))
		pt_set(slot, pt_mk_table(table));
	hm_spin_unlock(lock);
	if (!pt_none(e)) {
		hm_mm_pt_free_unused(mm, table);
		if (pt_present(e) && !pt_leaf(e, level))
			return pt_pfn(e, level);
		return HM_PFN_NONE;
	}
	return table;
}

/* The tables a huge leaf of @level deposits (eager mode): one PTE table for
 * a PMD leaf; a PMD table holding 512 PTE tables for a PUD leaf. */
static uint32_t deposit_prepare(struct hm_mm *mm, unsigned level)
{
	struct hm_ptcache *pc = &mm->sys->pc;
	uint32_t t = hm_mm_pt_alloc(mm, level - 1);

	if (level == 1 || t == HM_PFN_NONE)
		return t;
	for (unsigned i = 0; i < HM_PTRS; i++) {
		uint32_t pte = hm_mm_pt_alloc(mm, 0);

		if (pte == HM_PFN_NONE) {
			while ((pte = hm_pt_withdraw(pc, t)) != HM_PFN_NONE)
				hm_mm_pt_free_unused(mm, pte);
			hm_mm_pt_free_unused(mm, t);
			return HM_PFN_NONE;
		}
		hm_pt_deposit(pc, t, pte);
	}
	return t;
}

static void deposit_discard(struct hm_mm *mm, uint32_t t)
{
	uint32_t pte;

	while ((pte = hm_pt_withdraw(&mm->sys->pc, t)) != HM_PFN_NONE)
		hm_mm_pt_free_unused(mm, pte);
	hm_mm_pt_free_unused(mm, t);
}

/*
 * Try to map a huge page of @level (1 or 2) at the empty *slot.
 * Returns 0 when mapped (by us or a racing fault), 1 to go on with smaller
 * pages, -EAGAIN to wait for memory that unmaps are giving back (see
 * hm_fault).
 */
static int fault_huge(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot,
		      unsigned level, uint64_t va, bool write)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	int policy = level == 2 ? sys->cfg.thp_pud : sys->cfg.thp_pmd;
	unsigned order = level * HM_PMD_ORDER;
	uint32_t deposit = HM_PFN_NONE;

	if (!pt_none(pt_get(slot)) || !hm_thp_allowed(v, policy) ||
	    !huge_fits(v, va, hm_level_size(level)))
		return 1;
	/* A read maps the huge zero page (zero.c), a 2 MiB leaf at a time,
	 * also in a range where a 1 GiB page may go: it costs no frame. */
	if (!write && level == 2 && hm_thp_allowed(v, sys->cfg.thp_pmd))
		return 1;
	if (!write && level == 1) {
		int z = hm_huge_zero_fault(mm, v, slot);

		if (z <= 0)
			return z;
	}

	uint32_t folio = hm_folio_alloc_fault(mm, order, va);
	if (folio != HM_PFN_NONE && sys->cfg.deposit == HM_DEPOSIT_EAGER) {
		deposit = deposit_prepare(mm, level);
		if (deposit == HM_PFN_NONE) {
			hm_folio_free_unmapped(mm, folio);
			folio = HM_PFN_NONE;
		}
	}
	if (folio == HM_PFN_NONE && hm_drain_was_wanted())
		return -EAGAIN;	/* memory is on its way back: wait, not fall back */
	if (folio == HM_PFN_NONE) {
		hm_count(sys, HM_STAT_thp_fault_fallback);
		hm_count(sys, level == 2 ? HM_STAT_pud_fault_fallback : HM_STAT_pmd_fault_fallback);
		return 1;
	}
	hm_folio_set_rmap(ph, folio, v, HM_ALIGN_DOWN(va, hm_level_size(level)));

	hm_pte_t prot;
	hm_leaf_prot_bits(v, write, &prot);
	uint32_t table = hm_slot_table(ph, slot);
	hm_spin_t *lock = hm_mm_table_lock(mm, table);
	bool won = false;

	hm_spin_lock(lock);
	if (pt_none(pt_get(slot))) {
		if (deposit != HM_PFN_NONE)
			hm_pt_deposit(&sys->pc, table, deposit);
		hm_folio_add_map(mm, folio, level);
		pt_set(slot, pt_mk_leaf(folio, level, prot));
		won = true;
	}
	hm_spin_unlock(lock);
	if (!won) {
		if (deposit != HM_PFN_NONE)
			deposit_discard(mm, deposit);
		hm_folio_free_unmapped(mm, folio);
		return pt_mapped(pt_get(slot)) && pt_leaf(pt_get(slot), level) ? 0 : 1;
	}
	hm_count(sys, HM_STAT_thp_fault_alloc);
	hm_count(sys, level == 2 ? HM_STAT_pud_fault_alloc : HM_STAT_pmd_fault_alloc);
	return 0;
}

static int fault_pte(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot, uint64_t va, bool write)
{
	struct hm_phys *ph = mm_phys(mm);

	if (!pt_none(pt_get(slot)))
		return 0;
	uint32_t folio = hm_folio_alloc_fault(mm, 0, va);
	if (folio == HM_PFN_NONE)
		return -ENOMEM;
	hm_folio_set_rmap(ph, folio, v, HM_ALIGN_DOWN(va, HM_PAGE_SIZE));

	hm_pte_t prot;
	hm_leaf_prot_bits(v, write, &prot);
	/* No re-check that the PMD entry still links to this table once its
	 * lock is held: empty tables are given back only under mmap_lock for
	 * writing, which our reader's hold excludes (unmap.c). */
	hm_race_point("fault_pte_found");
	hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(ph, slot));
	bool won = false;

	hm_spin_lock(lock);
	if (pt_none(pt_get(slot))) {
		hm_folio_add_new_map(mm, folio);
		pt_set(slot, pt_mk_leaf(folio, 0, prot));
		won = true;
	}
	hm_spin_unlock(lock);
	if (!won)
		hm_folio_free_unmapped(mm, folio);
	return 0;
}

/* The page is being moved (migrate.c) and will be mapped again once it is
 * copied: wait for that. With HM_FAULT_ALLOW_RETRY, hm_fault waits without
 * mmap_lock (a writer waiting for it would hold up every other fault
 * meanwhile); else here: migration never waits for an mmap_lock while its
 * entries are in place, so this cannot deadlock. */
static __thread hm_pte_t migration_seen;

static int migration_wait(struct hm_mm *mm, uint64_t va, hm_pte_t e, unsigned flags)
{
	hm_race_point("fault_migration_entry");
	if (flags & HM_FAULT_ALLOW_RETRY) {
		migration_seen = e;
		return -EAGAIN;
	}
	hm_migration_wait(mm, va, e);
	return 0;
}

/*
 * A leaf is already mapped at @va: another thread faulted it in (spurious:
 * retry), or it is read-only in a writable VMA (copy-on-write), or the
 * access is not allowed.
 */
static int fault_mapped(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot,
			unsigned level, uint64_t va, bool write, unsigned flags)
{
	hm_race_point("fault_recheck");
	hm_pte_t e = pt_get(slot);

	if (pt_swp_entry(e))
		return hm_swap_in(mm, v, slot, level, va, write);
	if (pt_is_migration(e))
		return migration_wait(mm, va, e, flags);
	if (!pt_present(e) && !pt_none(e)) {
		/* The VMA allows the access, so a non-present entry is a split
		 * (or another change) under way under the table's lock: wait for
		 * it and retry. A PROT_NONE leaf in an accessible VMA exists only
		 * inside mprotect, under mmap_lock for writing. */
		hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(mm_phys(mm), slot));

		hm_spin_lock(lock);
		hm_pte_t now = pt_get(slot);
		hm_spin_unlock(lock);
		return now != e ? 0 : -EFAULT;
	}
	if (!pt_present(e))
		return 0;		/* gone meanwhile: retry */
	if (write && !pt_writable(e))
		return (v->prot & PROT_WRITE) ? hm_wp_fault(mm, v, slot, level, va, flags) : -EFAULT;
	return 0;
}

static int fault_locked(struct hm_mm *mm, uint64_t va, bool write, unsigned flags);

/* A fault may reclaim (direct reclaim) from any mm but its own, which it
 * holds already. */
static int fault_locked_reclaim(struct hm_mm *mm, uint64_t va, bool write, unsigned flags)
{
	hm_stat_prepare(mm);
	hm_reclaim_enter(mm, NULL);
	int r = fault_locked(mm, va, write, flags);
	hm_reclaim_exit();
	return r;
}

static int fault_locked(struct hm_mm *mm, uint64_t va, bool write, unsigned flags)
{
	hm_assert_rwsem_held(&mm->mmap_lock);
	struct hm_phys *ph = mm_phys(mm);
	struct hm_vma *v = hm_vma_lookup(mm, va);
	int err = 0;

	if (!v || v->prot == PROT_NONE || (write && !(v->prot & PROT_WRITE)))
		return -EFAULT;
	if ((err = hm_anon_vma_prepare(mm, v)))
		return err;
	hm_count(mm->sys, HM_STAT_pgfault);

	uint32_t table = mm->root;
	for (unsigned level = mm->sys->top; level > 0; level--) {
		hm_pte_t *slot = hm_pt_entries(ph, table) + hm_level_index(va, level);

		int h = level <= 2 ? fault_huge(mm, v, slot, level, va, write) : 1;

		if (h < 0)
			return h;
		if (h == 0)
			return fault_mapped(mm, v, slot, level, va, write, flags);
		table = ensure_table(mm, slot, level, &err);
		if (err)
			return err;
		if (table == HM_PFN_NONE)	/* a huge leaf is there */
			return fault_mapped(mm, v, slot, level, va, write, flags);
	}
	hm_pte_t *slot = hm_pt_entries(ph, table) + hm_level_index(va, 0);
	err = fault_pte(mm, v, slot, va, write);
	return err ? err : fault_mapped(mm, v, slot, 0, va, write, flags);
}

int hm_fault_locked(struct hm_mm *mm, uint64_t va, bool write)
{
	return fault_locked_reclaim(mm, va, write, 0);
}

/*
 * With mmap_lock not held on entry, a fault that would wait for a grace
 * period (for the pins of an unmap in flight elsewhere, or for the frames
 * that unmaps are giving back when memory is full) drops the lock first,
 * like the kernel's VM_FAULT_RETRY: a map change must not queue behind a
 * fault that waits for a reader.
 */
int hm_fault(struct hm_mm *mm, uint64_t va, bool write)
{
	int r;
	bool drain;

	for (;;) {
		migration_seen = 0;
		hm_down_read(&mm->mmap_lock);
		hm_drain_defer_begin();
		r = fault_locked_reclaim(mm, va, write, HM_FAULT_ALLOW_RETRY);
		drain = hm_drain_defer_end();
		hm_up_read(&mm->mmap_lock);
		if (r != -EAGAIN || !migration_seen)
			break;
		hm_migration_wait(mm, va, migration_seen);
	}
	if (r != -EAGAIN && !(r == -ENOMEM && drain))
		return r;
	hm_race_point("fault_drain");
	hm_rcu_barrier();	/* pins dropped, pending frames free */
	hm_down_read(&mm->mmap_lock);
	r = fault_locked_reclaim(mm, va, write, 0);
	hm_up_read(&mm->mmap_lock);
	return r;
}
