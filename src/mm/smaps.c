/* SPDX-License-Identifier: MIT */
/*
 * Introspection for reports: VMA iteration (hm_vma_next) and smaps-style
 * accounting of a range (hm_smaps).
 *
 * hm_smaps walks under mmap_lock for reading, so that no table is freed
 * under it (docs/internals.md, "Page tables"); it reads each table's entries
 * under that table's lock, one table at a time, so that it never sees a leaf
 * a split holds invalid, and a leaf's map counts are read while the leaf
 * still maps them. Child tables are visited after the parent's lock is
 * dropped: under mmap_lock a table entry stays a table (only a collapse,
 * under mmap_lock for writing, makes it a leaf again). A migration entry is
 * waited for with no lock but mmap_lock, as hm_query waits.
 */
#include <string.h>

#include "mm.h"

int hm_vma_next(struct hm_mm *mm, uint64_t addr, struct hm_vma_info *out)
{
	if (!mm || !out)
		return -EINVAL;
	struct hm_system *sys = mm->sys;
	int r = -ENOENT;

	hm_down_read(&mm->mmap_lock);
	size_t i = hm_vma_index(mm, addr);

	if (i < mm->nr_vmas) {
		const struct hm_vma *v = &mm->vmas[i];

		memset(out, 0, sizeof(*out));
		out->start = v->start;
		out->end = v->end;
		out->prot = v->prot;
		out->flags = (v->flags & VM_HUGEPAGE ? HM_VMA_HUGEPAGE : 0) |
			     (v->flags & VM_NOHUGEPAGE ? HM_VMA_NOHUGEPAGE : 0) |
			     (v->flags & VM_DONTFORK ? HM_VMA_DONTFORK : 0);
		/* As the kernel's THPeligible: the policy and the advice,
		 * and an aligned page of the size inside the VMA. */
		out->thp_pmd = hm_thp_allowed(v, sys->cfg.thp_pmd) &&
			       HM_ALIGN_UP(v->start, HM_PMD_SIZE) + HM_PMD_SIZE <= v->end;
		out->thp_pud = hm_thp_allowed(v, sys->cfg.thp_pud) &&
			       HM_ALIGN_UP(v->start, HM_PUD_SIZE) + HM_PUD_SIZE <= v->end;
		r = 0;
	}
	hm_up_read(&mm->mmap_lock);
	return r;
}

struct smaps_walk {
	struct hm_mm *mm;
	uint64_t start, end;
	bool eager;		/* deposits exist */
	struct hm_smaps *out;
};

static uint64_t overlap(const struct smaps_walk *w, uint64_t va, uint64_t size)
{
	return HM_MIN(va + size, w->end) - HM_MAX(va, w->start);
}

/* One leaf or swap entry @e of @level at @va. Context: its table's lock,
 * @lock. */
static void account_locked(struct smaps_walk *w, hm_spin_t *lock, hm_pte_t e, unsigned level, uint64_t va)
{
	hm_assert_locked(lock);
	struct hm_system *sys = w->mm->sys;
	struct hm_smaps *o = w->out;
	uint64_t bytes = overlap(w, va, hm_level_size(level));
	bool first = va >= w->start;	/* the leaf begins in the range */

	if (w->eager && first && level > 0) {
		/* A 2 MiB leaf (or page in swap) holds one PTE table; a 1 GiB
		 * leaf a PMD table holding 512 more (mm.h). */
		uint64_t n = level == 2 ? 1 + HM_PTRS : 1;

		o->pgtable_deposited += n << HM_PAGE_SHIFT;
		o->pgtable += n << HM_PAGE_SHIFT;
	}
	if (pt_swp_entry(e)) {
		o->swap += bytes;
		if (level == 1)
			o->swap_pmd += bytes;
		return;
	}
	uint32_t pfn = pt_pfn(e, level);

	if (hm_is_huge_zero(sys, pfn)) {
		o->zero += bytes;
		return;
	}
	unsigned maps = hm_page_mapcount(sys, pfn);

	o->rss += bytes;
	o->pss += bytes / (maps ? maps : 1);
	if (hm_leaf_reuse(w->mm, pfn, level) == HM_COPY)
		o->rss_shared += bytes;
	else
		o->rss_private += bytes;
	if (e & HM_PTE_A)
		o->referenced += bytes;
	if (e & HM_PTE_D)
		o->dirty += bytes;
	if (level == 1)
		o->anon_huge_pmd += bytes;
	else if (level == 2)
		o->anon_huge_pud += bytes;
	if (first)
		o->nr_leaf[level]++;
}

/* The entries of @table (of @level, serving from @base) in the range, and
 * the tables below. Context: mmap_lock held (no table is freed under it). */
static void walk_table_locked(struct smaps_walk *w, uint32_t table, unsigned level, uint64_t base)
{
	hm_assert_rwsem_held(&w->mm->mmap_lock);
	struct hm_mm *mm = w->mm;
	struct hm_phys *ph = mm_phys(mm);
	hm_pte_t *t = hm_pt_entries(ph, table);
	hm_spin_t *lock = hm_mm_table_lock(mm, table);
	uint64_t span = hm_level_size(level) * HM_PTRS;
	uint32_t child[HM_PTRS];
	uint16_t child_i[HM_PTRS];

	/* Neighbouring ranges share tables: each is counted by the range that
	 * holds the first VMA address it serves (its base if it serves none),
	 * so that the counts of disjoint ranges add up. */
	size_t v = hm_vma_index(mm, base);
	uint64_t first = base;

	if (v < mm->nr_vmas && HM_MAX(base, mm->vmas[v].start) - base < span)
		first = HM_MAX(base, mm->vmas[v].start);
	if (first >= w->start && first < w->end)
		w->out->pgtable += HM_PAGE_SIZE;
	uint64_t from = HM_MAX(base, w->start), to = HM_MIN(base + span - 1, w->end - 1) + 1;

	while (from < to) {
		unsigned nc = 0;
		hm_pte_t wait = 0;
		uint64_t wait_va = 0;

		hm_spin_lock(lock);
		hm_for_each_entry(i, va, level, base, from, to) {
			hm_pte_t e = pt_get(&t[i]);

			from = va + hm_level_size(level);
			if (pt_none(e))
				continue;
			if (level > 0 && pt_present(e) && !pt_leaf(e, level)) {
				child[nc] = pt_pfn(e, level);
				child_i[nc++] = (uint16_t)i;
			} else if (pt_mapped(e) || pt_swp_entry(e)) {
				account_locked(w, lock, e, level, va);
			} else if (pt_is_migration(e)) {
				wait = e;
				wait_va = va;
				from = va;	/* look again after the wait */
				break;
			}
		}
		hm_spin_unlock(lock);
		for (unsigned c = 0; c < nc; c++)
			walk_table_locked(w, child[c], level - 1, base + child_i[c] * hm_level_size(level));
		if (wait)
			hm_migration_wait(mm, wait_va, wait);
	}
}

int hm_smaps(struct hm_mm *mm, uint64_t start, uint64_t end, struct hm_smaps *out)
{
	if (!mm || !out || start > end)
		return -EINVAL;
	struct hm_system *sys = mm->sys;
	struct smaps_walk w = { mm, start, HM_MIN(end, sys->task_size),
				sys->cfg.deposit == HM_DEPOSIT_EAGER, out };

	memset(out, 0, sizeof(*out));
	if (w.start >= w.end)
		return 0;
	hm_down_read(&mm->mmap_lock);
	for (size_t i = hm_vma_index(mm, w.start); i < mm->nr_vmas && mm->vmas[i].start < w.end; i++)
		out->size += HM_MIN(mm->vmas[i].end, w.end) - HM_MAX(mm->vmas[i].start, w.start);
	walk_table_locked(&w, mm->root, sys->top, 0);
	hm_up_read(&mm->mmap_lock);
	return 0;
}
