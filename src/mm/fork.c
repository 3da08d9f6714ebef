/* SPDX-License-Identifier: MIT */
/*
 * fork: copy an address space, making private memory copy-on-write at the
 * level it is mapped.
 *
 * Two passes over the parent's tables with the same walk: the first counts
 * the tables the child needs (its tables and, in eager mode, the deposits of
 * its huge leaves), which are then allocated, along with room for the VMAs
 * and the anon_vma memberships; the second copies and cannot fail. So an
 * -ENOMEM changes nothing in the parent, like KVM topping up its cache
 * before it takes its lock.
 *
 * The count is exact: a table is counted once, however many VMAs it serves.
 * Counting it once per VMA that reaches it would ask 40,000 one-page VMAs
 * for 120,000 tables instead of a hundred, and fail with -ENOMEM with most
 * of memory free. VMAs are walked in address order, so the VMAs that share
 * a table meet it one after another: a table is new unless it is the last
 * one counted at its level (last[]). The copy pass reuses a child table in
 * exactly those cases, as it finds the entry already set by a VMA before.
 *
 * Locks: the child's mmap_lock, then the parent's: when two mms are locked,
 * the newer one is locked first (hm_check locks them in list order, newest
 * first).
 */
#include <stdlib.h>

#include "../base/race.h"
#include "anon.h"
#include "check.h"
#include "folio.h"
#include "reclaim.h"
#include "table.h"
#include "types.h"
#include "vma.h"
#include "zero.h"

struct fork_ctx {
	struct hm_mm *parent, *child;
	uint32_t *pre;		/* preallocated tables */
	size_t n, used;
	bool count;		/* first pass */
	uint32_t last[4];	/* first pass: the parent's table of each
				 * level counted last (the root, at most
				 * level 4, is not counted) */
	bool copied;		/* the child got at least one leaf */
	size_t av_reserved;	/* parent VMAs whose family holds a slot for us */
};

static uint32_t take(struct fork_ctx *f, unsigned level)
{
	hm_assert(f->used < f->n);
	uint32_t t = f->pre[f->used++];

	hm_pt_set(mm_phys(f->child), t, level, f->child->id);
	return t;
}

/* The child's deposit for a huge leaf of @level in its table @holder. */
static void child_deposit(struct fork_ctx *f, uint32_t holder, unsigned level)
{
	struct hm_ptcache *pc = &f->child->sys->pc;
	uint32_t t = take(f, level - 1);

	for (unsigned i = 0; level == 2 && i < HM_PTRS; i++)
		hm_pt_deposit(pc, t, take(f, 0));
	hm_pt_deposit(pc, holder, t);
}

/*
 * The parent's leaf @e at *ps, made read-only if it was writable; the
 * child's copy is what is returned (A aside). Readers set A and D in a leaf
 * by compare-and-exchange inside a read section, without any lock
 * (tlb_fill), and only bits not yet set: in a present leaf that has both,
 * nobody but the holder of mmap_lock for writing (us) changes anything, so
 * a plain store cannot lose a bit there. Otherwise, one atomic update.
 * Context: a write window open on the parent's table (pt_win_open).
 */
static hm_pte_t wrprotect(hm_pte_t *ps, hm_pte_t e)
{
	if (!pt_writable(e))
		return e;
	hm_race_point("fork_wrprotect");
	if (pt_settled(e)) {
		__pt_set_relaxed(ps, pt_wrprotect(e));
		return pt_wrprotect(e);
	}
	return pt_wrprotect(__pt_wrprotect_at(ps));
}

static void copy_leaf(struct fork_ctx *f, hm_pte_t *ps, hm_pte_t *cs, uint32_t ctable, unsigned level)
{
	hm_pte_t e = pt_get(ps);

	if (pt_swp_entry(e)) {
		/* The child names the same slots: one more count on each. */
		unsigned n = level ? HM_PTRS : 1;

		hm_swap_dup(&f->child->sys->swap, pt_swp_offset(e), n);
		hm_add(&f->child->sys->nr_swap_entries, n);
		if (level > 0 && f->child->sys->cfg.deposit == HM_DEPOSIT_EAGER)
			child_deposit(f, ctable, level);
		pt_set(cs, e);
		return;
	}

	pt_win_t w = pt_win_open(ps);

	e = wrprotect(ps, e);
	pt_win_close(ps, w);
	f->copied = true;
	if (level > 0 && f->child->sys->cfg.deposit == HM_DEPOSIT_EAGER)
		child_deposit(f, ctable, level);
	if (hm_is_huge_zero(f->child->sys, pt_pfn(e, level)))
		hm_huge_zero_map(f->child, level);	/* read-only already, no counts */
	else
		hm_folio_add_map(f->child, pt_pfn(e, level), level);
	pt_set(cs, pt_mkold(e));	/* young in the parent, old in the child */
}

/*
 * The PTEs [from, to) of the parent's table @pt into the child's @ct; then
 * the map counts of the pages, a run of consecutive pages of one folio in
 * one step under its lock (hm_folio_add_pte_maps), and the leaves counted
 * once for the table. A fork of 4 KiB pages is bound by memory (a
 * descriptor per page) and by what is done per page: one call per table.
 */
static void copy_ptes(struct fork_ctx *f, hm_pte_t *pt, hm_pte_t *ct, unsigned from, unsigned to)
{
	struct hm_system *sys = f->child->sys;
	uint32_t pfns[HM_PTRS];
	unsigned n = 0;
	pt_win_t pw = pt_win_open(pt), cw = pt_win_open(ct);

	for (unsigned i = from; i < to; i++) {
		hm_pte_t e = pt_get(&pt[i]);

		if (pt_none(e))
			continue;
		uint32_t pfn = pt_pfn(e, 0);

		if (!pt_mapped(e) || hm_is_huge_zero(sys, pfn)) {
			if (pt_mapped(e) || pt_swp_entry(e))
				copy_leaf(f, &pt[i], &ct[i], HM_PFN_NONE, 0);	/* counted there */
			continue;
		}
		e = wrprotect(&pt[i], e);
		__pt_set(&ct[i], pt_mkold(e));	/* young in the parent, old in the child */
		pfns[n++] = pfn;
	}
	pt_win_close(ct, cw);
	pt_win_close(pt, pw);
	if (!n)
		return;
	hm_folio_add_pte_maps(f->child, pfns, n);
	f->copied = true;
	hm_add(&f->child->nr_leaf[0], n);
	hm_add(&sys->nr_leaf[0], n);
}

static void copy_table(struct fork_ctx *f, uint32_t ptable, uint32_t ctable, unsigned level,
		       uint64_t base, uint64_t start, uint64_t end)
{
	struct hm_phys *ph = mm_phys(f->parent);
	hm_pte_t *pt = hm_pt_entries(ph, ptable);
	hm_pte_t *ct = f->count ? NULL : hm_pt_entries(ph, ctable);
	uint64_t size = hm_level_size(level);

	/* The first pass counts tables and deposits, and a PTE table holds
	 * neither: reading its 512 entries (16 MiB for 8 GiB of 4 KiB pages)
	 * was a tenth of a fork's time. */
	if (level == 0 && f->count)
		return;
	if (level == 0) {
		uint64_t lo = HM_MAX(start, base), hi = HM_MIN(end, base + size * HM_PTRS);

		copy_ptes(f, pt, ct, hm_level_index(lo, 0), hm_level_index(hi - 1, 0) + 1);
		return;
	}
	hm_for_each_entry(i, va, level, base, start, end) {
		hm_pte_t e = pt_get(&pt[i]);

		if (pt_none(e))
			continue;
		if (level > 0 && pt_present(e) && !pt_leaf(e, level)) {
			uint32_t child = HM_PFN_NONE;

			if (f->count) {
				uint32_t t = pt_pfn(e, level);

				if (f->last[level - 1] != t) {	/* not met by a VMA before */
					f->last[level - 1] = t;
					f->n++;
				}
			} else if (pt_present(pt_get(&ct[i]))) {
				child = pt_pfn(pt_get(&ct[i]), level);	/* a VMA before us made it */
			} else {
				child = take(f, level - 1);
				pt_set(&ct[i], pt_mk_table(child));
			}
			copy_table(f, pt_pfn(e, level), child, level - 1, va, start, end);
		} else if (pt_mapped(e) || pt_swp_entry(e)) {
			hm_assert(va >= start && va + size <= end);
			if (!f->count)
				copy_leaf(f, &pt[i], &ct[i], ctable, level);
			else if (f->child->sys->cfg.deposit == HM_DEPOSIT_EAGER)
				f->n += level == 2 ? 1 + HM_PTRS : level;	/* its deposit */
		}
	}
}

static void walk_vmas(struct fork_ctx *f)
{
	struct hm_mm *p = f->parent;

	for (size_t i = 0; i < p->nr_vmas; i++)
		if (!(p->vmas[i].flags & VM_DONTFORK))
			copy_table(f, p->root, f->child->root, p->sys->top, 0,
				   p->vmas[i].start, p->vmas[i].end);
}

static int prepare(struct fork_ctx *f)
{
	struct hm_mm *p = f->parent, *c = f->child;
	int r;

	f->count = true;
	for (unsigned l = 0; l < HM_ARRAY_SIZE(f->last); l++)
		f->last[l] = HM_PFN_NONE;
	walk_vmas(f);
	if ((r = hm_vma_reserve(c, p->nr_vmas)))
		return r;
	/* A slot in each family, held until the adds: another mm of the same
	 * family may be forking at the same time under its own locks. */
	for (f->av_reserved = 0; f->av_reserved < p->nr_vmas; f->av_reserved++) {
		const struct hm_vma *v = &p->vmas[f->av_reserved];

		if (v->av && !(v->flags & VM_DONTFORK) && (r = hm_av_reserve(v->av, &p->sys->phys.fail)))
			return r;
	}
	hm_race_point("fork_reserved");
	f->pre = f->n ? hm_malloc(&p->sys->phys.fail, f->n * sizeof(*f->pre)) : NULL;
	if (f->n && !f->pre)
		return -ENOMEM;
	for (f->used = 0; f->used < f->n; f->used++) {
		f->pre[f->used] = hm_mm_pt_alloc(c, 0);
		if (f->pre[f->used] == HM_PFN_NONE)
			return -ENOMEM;
	}
	f->used = 0;
	return 0;
}

static void av_unreserve(struct fork_ctx *f)
{
	for (size_t i = 0; i < f->av_reserved; i++) {
		const struct hm_vma *v = &f->parent->vmas[i];

		if (v->av && !(v->flags & VM_DONTFORK))
			hm_av_unreserve(v->av);
	}
}

static void release_unused(struct fork_ctx *f)
{
	while (f->pre && f->used < f->n) {
		uint32_t t = f->pre[--f->n];

		if (t != HM_PFN_NONE)
			hm_mm_pt_free_unused(f->child, t);
	}
	free(f->pre);
}

int hm_fork(struct hm_mm *parent, struct hm_mm **out)
{
	if (!parent || !out)
		return -EINVAL;
	struct hm_mm *child;
	int r = hm_mm_create(parent->sys, &child);

	if (r)
		return r;
	struct fork_ctx f = { .parent = parent, .child = child };

	hm_down_write(&child->mmap_lock);	/* newer first */
	hm_down_write(&parent->mmap_lock);
	hm_reclaim_enter(parent, child);
	r = prepare(&f);
	hm_reclaim_exit();
	if (r) {
		/* pre[] holds what was allocated before the failure */
		f.n = f.used;
		f.used = 0;
		release_unused(&f);
		av_unreserve(&f);
		hm_up_write(&parent->mmap_lock);
		hm_up_write(&child->mmap_lock);
		hm_mm_destroy(child);
		return r;
	}
	f.count = false;
	walk_vmas(&f);
	hm_assert_int(f.used == f.n);	/* exact: over would only waste, under cannot be */
	for (size_t i = 0; i < parent->nr_vmas; i++) {
		const struct hm_vma *v = &parent->vmas[i];

		if (v->flags & VM_DONTFORK)
			continue;
		child->vmas[child->nr_vmas++] = *v;
		if (v->av)
			hm_av_add(v->av, child);
	}
	release_unused(&f);
	av_unreserve(&f);
	/*
	 * No write through a writable translation cached before may land once
	 * we return, or the child would see it. That includes translations of
	 * leaves that were read-only already: mprotect narrows without waiting
	 * for accesses in flight (race test fork_after_mprotect).
	 */
	if (f.copied)
		hm_tlb_shootdown(parent);
	hm_up_write(&parent->mmap_lock);
	hm_up_write(&child->mmap_lock);
	*out = child;
	return hm_check_enabled(parent->sys, 0);
}
