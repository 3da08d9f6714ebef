/* SPDX-License-Identifier: MIT */
/*
 * Collapse: 512 PTEs into one 2 MiB leaf, 512 PMD leaves into one 1 GiB
 * leaf (MADV_COLLAPSE, and khugepaged.c's scan).
 *
 * Two ways to the huge leaf:
 *   refold  the 512 entries already map the 512 consecutive, aligned
 *           pieces of one folio (a huge page that was only split, by an
 *           mprotect of part of it and back, say), in order and with one
 *           permission: the upper entry becomes a leaf on that folio and
 *           its map counts are folded back (hm_folio_refold_map). Nothing
 *           is copied; it costs one grace period.
 *   copy    a fresh huge folio gets a copy of every page mapped (zeros
 *           where none is), and the old pages lose this mapping.
 *
 * Like the kernel: the range is looked at under mmap_lock for reading
 * (pages in swap are brought in there), and the change is made under
 * mmap_lock for writing (the huge folio is allocated there, unlike the
 * kernel, so that hm_check never meets a folio that nothing maps), which
 * keeps faults, copy-on-write, fork, unmaps, mprotect and reclaim (which
 * trylocks the mappers' mmap_locks) out of the range; everything seen in
 * the first pass is checked again there. The upper entry is cleared first,
 * so that no walker finds the old table, the TLB generation bumped, and
 * then one grace period waited for: every access that translated through
 * the old entries has finished, so none can write into an old page after
 * the copy, and the old table, now unreachable, can be deposited for the
 * huge leaf (eager mode: a later split takes it back) or freed (lazy).
 */
#include "../base/race.h"
#include "anon.h"
#include "collapse.h"
#include "fault.h"
#include "folio.h"
#include "reclaim.h"
#include "stat.h"
#include "table.h"
#include "types.h"
#include "vma.h"
#include "zero.h"

/* What the entries of one table look like. */
struct scan {
	unsigned none;		/* empty, or the huge zero page */
	unsigned swap;		/* in swap */
	unsigned shared;	/* mapped by another leaf too (after fork) */
	unsigned present;	/* map a folio */
	bool busy;		/* a page isolated, or an entry in flux */
	bool refold;		/* the 512 pieces of one aligned folio chunk */
	uint32_t base;		/* its first frame, when refold */
};


/* Look at the 512 entries of a table of @level (0: PTEs, 1: PMD entries).
 * At level 1 only mapped PMD leaves count as present; anything else is
 * not collapsible to a PUD leaf and counts as busy. Under the table's
 * lock: with mmap_lock only for reading, reclaim may take a leaf away
 * meanwhile and free its frame (after a grace period, which a ptl holder
 * does not hold up, but it needs the ptl to take the leaf first). */
static void scan_table(struct hm_mm *mm, const hm_pte_t *t, unsigned level, struct scan *s)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	unsigned step = level ? HM_PTRS : 1;
	hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(ph, t));
	hm_pte_t perm = 0;

	*s = (struct scan){ .refold = true };
	hm_spin_lock(lock);
	for (unsigned i = 0; i < HM_PTRS; i++) {
		hm_pte_t e = pt_get(&t[i]);

		if (level && !(pt_mapped(e) && pt_leaf(e, 1))) {
			s->busy = true;
			s->refold = false;
			continue;
		}
		if (pt_none(e) || (pt_mapped(e) && hm_is_huge_zero(sys, pt_pfn(e, level)))) {
			s->none++;
			s->refold = false;
			continue;
		}
		if (pt_swp_entry(e)) {
			s->swap++;
			s->refold = false;
			continue;
		}
		if (!pt_mapped(e)) {	/* a migration entry, say */
			s->busy = true;
			s->refold = false;
			continue;
		}
		uint32_t pfn = pt_pfn(e, level);
		const struct hm_page *h = hm_pfn_page(ph, hm_folio_head(ph, pfn));

		s->present++;
		if (hm_load_relaxed(&h->flags) & PG_ISOLATED)
			s->busy = true;
		if (hm_page_mapcount(sys, pfn) > 1)
			s->shared++;
		if (i == 0) {
			s->base = pfn;
			perm = pt_perm(e);
			s->refold = !(pfn & ((1u << ((level + 1) * HM_PMD_ORDER)) - 1)) &&
				    folio_order_relaxed(h) >= (level + 1) * HM_PMD_ORDER;
		} else if (pfn != s->base + i * step || pt_perm(e) != perm) {
			s->refold = false;
		}
	}
	hm_spin_unlock(lock);
}

/* The limits khugepaged honours (MADV_COLLAPSE ignores them, and brings
 * every page in swap back). */
static bool within_limits(struct hm_system *sys, const struct hm_collapse_ctl *cc, const struct scan *s)
{
	if (!cc->khugepaged)
		return true;
	return s->none <= sys->cfg.khugepaged_max_ptes_none &&
	       s->swap <= sys->cfg.khugepaged_max_ptes_swap &&
	       s->shared <= sys->cfg.khugepaged_max_ptes_shared;
}

/* The VMA that may hold a huge leaf of @level at @va, or NULL. khugepaged
 * goes where a fault would put a huge page; MADV_COLLAPSE is itself the
 * ask, so, as in Linux, it needs no MADV_HUGEPAGE under the "madvise"
 * policy, but it respects "never" (the per-size switch is off) and
 * MADV_NOHUGEPAGE. */
static struct hm_vma *huge_vma(struct hm_mm *mm, uint64_t va, unsigned level, const struct hm_collapse_ctl *cc)
{
	struct hm_system *sys = mm->sys;
	struct hm_vma *v = hm_vma_lookup(mm, va);
	uint64_t size = hm_level_size(level), base = HM_ALIGN_DOWN(va, size);

	/* hm_load: a first fault may set the family now, under mmap_lock for
	 * reading as we hold it (anon.c). */
	if (!v || v->start > va || !hm_load(&v->av))
		return NULL;
	if (cc->khugepaged)
		return hm_huge_allowed(sys, v, va, level) ? v : NULL;
	if ((level == 2 ? sys->cfg.thp_pud : sys->cfg.thp_pmd) == HM_THP_NEVER || (v->flags & VM_NOHUGEPAGE))
		return NULL;
	return base >= v->start && base + size <= v->end ? v : NULL;
}

/* The entry of @level covering @va, if tables reach that far down.
 * Context: mmap_lock held (tables are not freed under it). */
static hm_pte_t *entry_at(struct hm_mm *mm, uint64_t va, unsigned level)
{
	struct hm_phys *ph = mm_phys(mm);
	uint32_t table = mm->root;

	for (unsigned l = mm->sys->top; l > level; l--) {
		hm_pte_t e = pt_get(hm_pt_entries(ph, table) + hm_level_index(va, l));

		if (!pt_present(e) || pt_leaf(e, l))
			return NULL;
		table = pt_pfn(e, l);
	}
	return hm_pt_entries(ph, table) + hm_level_index(va, level);
}

/*
 * First pass, under mmap_lock for reading: what is at the 2 MiB piece at
 * @va, with its pages in swap brought in (MADV_COLLAPSE, or khugepaged
 * within max_ptes_swap). HM_COLLAPSE_DONE: a huge leaf is there already;
 * -ENOMEM: its pages in swap did not stay in.
 */
static int look_pmd(struct hm_mm *mm, uint64_t va, const struct hm_collapse_ctl *cc, struct scan *s)
{
	struct hm_phys *ph = mm_phys(mm);

	for (unsigned tries = 0; tries < 4; tries++) {
		unsigned level;
		hm_pte_t *slot = hm_pt_walk(ph, mm->root, mm->sys->top, va, &level);
		hm_pte_t e = pt_get(slot);

		if (!huge_vma(mm, va, 1, cc))
			return -EINVAL;
		if (level >= 1 && pt_mapped(e) && pt_leaf(e, level))
			return HM_COLLAPSE_DONE;
		if (level == 1 && pt_swp_entry(e)) {	/* 2 MiB in swap: bring it in */
			int r = hm_fault_locked(mm, va, false);

			if (r)
				return r;
			continue;
		}
		if (level == 1 && !pt_none(e))
			return -EAGAIN;	/* a split under way */
		if (level != 0)
			return -EINVAL;	/* no table: nothing to collapse */
		scan_table(mm, slot - hm_level_index(va, 0), 0, s);
		if (!within_limits(mm->sys, cc, s))
			return -EBUSY;
		if (!s->swap)
			return s->present ? 0 : -EINVAL;
		for (unsigned i = 0; i < HM_PTRS; i++) {
			uint64_t a = va + i * HM_PAGE_SIZE;

			if (pt_swp_entry(pt_get(slot + i))) {
				int r = hm_fault_locked(mm, a, false);

				if (r)
					return r;
			}
		}
	}
	/* Every swap-in pushed another of these pages back out: memory
	 * and swap are full, which no retry mends. */
	return -ENOMEM;
}

/* After clearing upper entries: no access through the old ones is under
 * way any more once this returns. */
static void collapse_sync(struct hm_mm *mm)
{
	hm_tlb_flush(mm);
	hm_race_point("collapse_cleared");
	hm_rcu_synchronize();
}

/* A table that nothing can reach any more (its upper entry was cleared a
 * grace period ago), emptied: deposited for the huge leaf now in @holder
 * (eager mode; the caller frees it in lazy mode once it drops the lock).
 * Context: the lock of @holder. */
static void table_retire_locked(struct hm_mm *mm, uint32_t holder, uint32_t table)
{
	pt_clear_table(hm_pt_entries(mm_phys(mm), table));
	if (mm->sys->cfg.deposit == HM_DEPOSIT_EAGER)
		hm_pt_deposit(&mm->sys->pc, holder, table);
}

/* Take the old leaves of @level in @t away (copy path): their map counts,
 * and the folios left unmapped to @g. The deposits of PMD leaves stay on
 * their table, which becomes the PUD leaf's deposit. Context: the grace
 * period after clearing their table's upper entry has passed. */
static void drop_old_leaves(struct hm_mm *mm, hm_pte_t *t, unsigned level, struct hm_gather *g)
{
	for (unsigned i = 0; i < HM_PTRS; i++) {
		hm_pte_t e = pt_get(&t[i]);
		uint32_t pfn = pt_pfn(e, level), head;

		if (!pt_mapped(e))
			continue;
		if (hm_is_huge_zero(mm->sys, pfn)) {
			hm_huge_zero_unmap(mm, level);
			continue;
		}
		if (hm_folio_remove_map(mm, pfn, level, false, &head, NULL) == HM_FOLIO_UNMAPPED)
			hm_gather_folio(g, head);
	}
}

/*
 * Second pass, under mmap_lock for writing: check again, then collapse the
 * table under the entry of @level + 1 at @va (level 0: PTE table into a
 * PMD leaf; 1: PMD table into a PUD leaf), by refold or into @folio.
 * Returns 0, HM_COLLAPSE_DONE, -EAGAIN (look again: the table changed in
 * a way that needs the first pass, or a page is busy), -EBUSY (limits) or
 * -EINVAL.
 */
static int commit(struct hm_mm *mm, uint64_t va, unsigned level, uint32_t *folio,
		  const struct hm_collapse_ctl *cc, bool *refolded)
{
	hm_assert_write_locked(&mm->mmap_lock);
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	unsigned up = level + 1;
	struct hm_vma *v = huge_vma(mm, va, up, cc);
	hm_pte_t *slot = v ? entry_at(mm, va, up) : NULL;
	struct scan s;

	if (!slot)
		return -EINVAL;
	hm_pte_t e = pt_get(slot);
	if (pt_mapped(e) && pt_leaf(e, up))
		return HM_COLLAPSE_DONE;
	if (!pt_present(e))
		return pt_none(e) ? -EINVAL : -EAGAIN;
	uint32_t table = pt_pfn(e, up), holder = hm_slot_table(ph, slot);
	hm_pte_t *t = hm_pt_entries(ph, table);

	scan_table(mm, t, level, &s);
	if (s.busy || s.swap)
		return -EAGAIN;
	if (!s.present)
		return -EINVAL;
	if (!within_limits(sys, cc, &s))
		return -EBUSY;
	/* The huge folio is allocated here, under mmap_lock, as a fault's
	 * is: hm_check (which takes every mmap_lock) must not find a folio
	 * that is neither mapped nor on its way to be. This mm is named to
	 * reclaim and compaction as held, so that compaction may move its
	 * pages too (it would trylock the lock we hold, fail, and give up,
	 * in a memory that only this mm fragments); so the table is looked
	 * at once more after the allocation. */
	if (!s.refold) {
		hm_reclaim_enter(mm, NULL);
		*folio = hm_folio_alloc(mm, (level + 1) * HM_PMD_ORDER, false);
		hm_reclaim_exit();
		if (*folio == HM_PFN_NONE) {
			hm_count(sys, HM_STAT_thp_collapse_alloc_failed);
			return -ENOMEM;
		}
		hm_count(sys, HM_STAT_thp_collapse_alloc);
		scan_table(mm, t, level, &s);
		if (s.busy || s.swap || s.refold || !s.present || !within_limits(sys, cc, &s))
			return -EAGAIN;
	}

	/* Nobody may find the old table from now on. Under mmap_lock for
	 * writing, only lock-free walkers (accesses) use it, and they fault
	 * on the empty entry, then wait for the lock. */
	hm_spin_t *lock = hm_mm_table_lock(mm, holder);
	hm_spin_lock(lock);
	pt_set(slot, 0);
	hm_spin_unlock(lock);
	collapse_sync(mm);

	/* The old entries are final now: A and D bits included. */
	hm_pte_t leaf;
	bool dirty = false;
	for (unsigned i = 0; i < HM_PTRS; i++)
		dirty |= pt_dirty(pt_get(&t[i]));
	struct hm_gather g;
	hm_gather_init_rcu(&g, &sys->pc);

	if (s.refold) {
		/* Keep the pieces' permission: read-only where they are shared
		 * after fork, for copy-on-write. */
		leaf = pt_mkyoung(pt_mk_leaf(s.base, up, pt_perm(pt_get(&t[0]))));
		if (dirty)
			leaf = pt_mkdirty(leaf);
		hm_spin_lock(lock);
		if (!hm_folio_refold_map(mm, s.base, up)) {
			/* Split meanwhile: the old table goes back, as it was. */
			pt_set(slot, e);
			hm_spin_unlock(lock);
			hm_gather_finish(&g);
			return -EAGAIN;
		}
		/* Deposits of the PMD leaves stay with the PMD table: they
		 * become the PUD leaf's (see types.h: deposits in eager mode). */
		table_retire_locked(mm, holder, table);
		pt_set(slot, leaf);
		hm_spin_unlock(lock);
		*refolded = true;
	} else {
		unsigned order = level * HM_PMD_ORDER;	/* of each piece */

		/* Streamed: the new page is not read soon (arena.c). */
		for (unsigned i = 0; i < HM_PTRS; i++) {
			hm_pte_t o = pt_get(&t[i]);
			uint32_t dst = *folio + (i << order);

			if (pt_mapped(o) && !hm_is_huge_zero(sys, pt_pfn(o, level)))
				hm_copy_pages(ph, dst, pt_pfn(o, level), order);
			else
				hm_zero_pages(ph, dst, order);
		}
		hm_folio_set_rmap(ph, *folio, v, va);
		hm_leaf_prot_bits(v, dirty != 0, &leaf);
		leaf = pt_mk_leaf(*folio, up, leaf);
		hm_spin_lock(lock);
		drop_old_leaves(mm, t, level, &g);
		hm_folio_add_map(mm, *folio, up);
		table_retire_locked(mm, holder, table);
		pt_set(slot, leaf);
		hm_spin_unlock(lock);
		*folio = HM_PFN_NONE;
		*refolded = false;
	}
	if (sys->cfg.deposit == HM_DEPOSIT_LAZY)
		hm_mm_pt_free_unused(mm, table);
	hm_tlb_flush(mm);
	hm_gather_finish(&g);
	return 0;
}

/*
 * Collapse the piece of @level + 1 at @va (2 MiB for level 0, 1 GiB for
 * level 1, whose 2 MiB pieces the caller collapsed first). Context: no
 * lock held.
 */
static int collapse_one(struct hm_mm *mm, uint64_t va, unsigned level, struct hm_collapse_ctl *cc)
{
	struct hm_system *sys = mm->sys;
	uint32_t folio = HM_PFN_NONE;
	bool refolded = false;
	int r = -EAGAIN;

	for (unsigned tries = 0; tries < 3 && r == -EAGAIN; tries++) {
		struct scan s = { 0 };

		hm_down_read(&mm->mmap_lock);
		if (level == 0) {
			r = look_pmd(mm, va, cc, &s);
		} else {
			hm_pte_t *slot = huge_vma(mm, va, 2, cc) ? entry_at(mm, va, 2) : NULL;
			hm_pte_t e = slot ? pt_get(slot) : 0;

			r = -EINVAL;
			if (slot && pt_mapped(e) && pt_leaf(e, 2)) {
				r = HM_COLLAPSE_DONE;
			} else if (slot && pt_present(e)) {
				scan_table(mm, hm_pt_entries(mm_phys(mm), pt_pfn(e, 2)), 1, &s);
				r = s.busy ? -EINVAL : 0;
			}
		}
		hm_up_read(&mm->mmap_lock);
		if (r)
			break;
		hm_race_point("collapse_unlocked");
		hm_down_write(&mm->mmap_lock);
		r = commit(mm, va, level, &folio, cc, &refolded);
		if (folio != HM_PFN_NONE) {	/* allocated, then not used */
			hm_folio_free_unmapped(mm, folio);
			folio = HM_PFN_NONE;
		}
		hm_up_write(&mm->mmap_lock);
		if (r == -EAGAIN && tries == 1)
			hm_rcu_barrier();	/* pins and frees of unmaps in flight */
	}
	if (r == -EFAULT)
		r = -EINVAL;	/* a page in swap in a PROT_NONE range */
	if (r == 0) {
		cc->collapsed++;
		if (level)
			hm_count(sys, HM_STAT_thp_collapse_pud);
		if (refolded)
			hm_count(sys, HM_STAT_collapse_refold);
	}
	return r == HM_COLLAPSE_DONE ? 0 : r;
}

int hm_collapse_pud(struct hm_mm *mm, uint64_t va, struct hm_collapse_ctl *cc)
{
	hm_assert(!(va & (HM_PUD_SIZE - 1)));
	return collapse_one(mm, va, 1, cc);
}

/*
 * Where the span of an empty entry of level >= 2 that covers @a ends (@a
 * if there is none): nothing is mapped there, so every 2 MiB piece in it
 * would say -EINVAL (no table). A range over a sparse mapping of
 * petabytes (hmfuzz -s 288 -c 1) would otherwise take mmap_lock for each
 * of billions of pieces.
 */
static uint64_t empty_span_end(struct hm_mm *mm, uint64_t a)
{
	unsigned level;
	uint64_t next = a;

	hm_down_read(&mm->mmap_lock);
	hm_pte_t *slot = hm_pt_walk(mm_phys(mm), mm->root, mm->sys->top, a, &level);

	if (level >= 2 && pt_none(pt_get(slot)))
		next = HM_ALIGN_DOWN(a, hm_level_size(level)) + hm_level_size(level);
	hm_up_read(&mm->mmap_lock);
	return next;
}

int hm_collapse_range(struct hm_mm *mm, uint64_t start, uint64_t end, struct hm_collapse_ctl *cc)
{
	struct hm_system *sys = mm->sys;
	int last = 0;
	bool any = false;

	for (uint64_t a = HM_ALIGN_UP(start, HM_PMD_SIZE); a + HM_PMD_SIZE <= end;) {
		uint64_t pud = HM_ALIGN_DOWN(a, HM_PUD_SIZE), skip = empty_span_end(mm, a);
		bool whole = false;
		int r;

		if (skip != a) {
			any = true;
			last = -EINVAL;
			a = skip;
			continue;
		}

		/* A 1 GiB piece inside the range where PUD THP may go: its
		 * 2 MiB pieces first, then one PUD leaf. */
		if (pud == a && a + HM_PUD_SIZE <= end) {
			hm_down_read(&mm->mmap_lock);
			whole = huge_vma(mm, a, 2, cc) != NULL;
			hm_up_read(&mm->mmap_lock);
		}
		uint64_t stop = whole ? a + HM_PUD_SIZE : a + HM_PMD_SIZE;

		any = true;
		for (r = 0; a < stop; a += HM_PMD_SIZE) {
			int p = collapse_one(mm, a, 0, cc);

			if (p)
				r = p;
			if (p == -ENOMEM)
				return p;
			if (cc->stop && hm_load_relaxed(cc->stop))
				return r;
		}
		if (whole && !r)
			r = collapse_one(mm, pud, 1, cc);
		if (r == -ENOMEM)
			return r;
		if (r)
			last = r;
	}
	(void)sys;
	if (!any)
		return -EINVAL;	/* no huge page fits in the range */
	return last == -EBUSY ? -EAGAIN : last;
}
