/* SPDX-License-Identifier: MIT */
/*
 * hm_mmap, hm_munmap, hm_mprotect, hm_madvise.
 *
 * Each call validates, then reserves everything it may need (VMA slots,
 * lazy-mode split tables) before changing anything, so that every error,
 * -ENOMEM included, leaves the address space exactly as it was.
 */
#include "check.h"
#include "collapse.h"
#include "fault.h"
#include "folio.h"
#include "reclaim.h"
#include "split.h"
#include "table.h"
#include "types.h"
#include "unmap.h"
#include "vma.h"

#define PROT_ALL  (PROT_READ | PROT_WRITE | PROT_EXEC)
#define MAP_KNOWN (MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_FIXED_NOREPLACE | \
		   MAP_POPULATE | MAP_NORESERVE)

/* Validate [addr, addr + len) for munmap/mprotect/madvise; sets *end. */
static int range_args(struct hm_mm *mm, uint64_t addr, uint64_t len, uint64_t *end)
{
	if (!mm || (addr & (HM_PAGE_SIZE - 1)))
		return -EINVAL;
	uint64_t l = HM_ALIGN_UP(len, HM_PAGE_SIZE);
	if (l < len || addr + l < addr)
		return -EINVAL;
	*end = addr + l;
	return 0;
}

static void populate(struct hm_mm *mm, uint64_t start, uint64_t end, bool write)
{
	hm_down_read(&mm->mmap_lock);
	for (uint64_t va = start; va < end;) {
		unsigned level;
		hm_pte_t *slot = hm_pt_walk(mm_phys(mm), mm->root, mm->sys->top, va, &level);

		if (!pt_mapped(pt_get(slot)) && hm_fault_locked(mm, va, write))
			break;	/* best effort, as MAP_POPULATE is */
		slot = hm_pt_walk(mm_phys(mm), mm->root, mm->sys->top, va, &level);
		va = HM_ALIGN_DOWN(va, hm_level_size(level)) + hm_level_size(level);
	}
	hm_up_read(&mm->mmap_lock);
}

int hm_mmap(struct hm_mm *mm, uint64_t addr, uint64_t len, int prot, int flags, uint64_t *out_addr)
{
	if (!mm || !out_addr || !len || (prot & ~PROT_ALL) || (flags & ~MAP_KNOWN) ||
	    (flags & (MAP_PRIVATE | MAP_ANONYMOUS)) != (MAP_PRIVATE | MAP_ANONYMOUS))
		return -EINVAL;
	uint64_t l = HM_ALIGN_UP(len, HM_PAGE_SIZE);
	bool fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
	if (l < len || (fixed && ((addr & (HM_PAGE_SIZE - 1)) || addr + l < addr)))
		return -EINVAL;
	if (fixed && addr < HM_MIN_ADDR)
		return -EPERM;
	if (fixed && addr + l > mm->sys->task_size)
		return -ENOMEM;

	struct hm_vma v = { .end = 0, .prot = prot, .flags = 0 };
	int r;

	hm_down_write(&mm->mmap_lock);
	if (fixed) {
		v.start = addr;
		if ((flags & MAP_FIXED_NOREPLACE) && hm_vma_overlaps(mm, addr, addr + l))
			r = -EEXIST;
		else if (!(r = hm_vma_reserve(mm, 3)))
			r = hm_munmap_locked(mm, addr, addr + l);
	} else {
		r = hm_vma_find_gap(mm, HM_ALIGN_DOWN(addr, HM_PAGE_SIZE), l, &v.start);
		if (!r)
			r = hm_vma_reserve(mm, 1);
	}
	if (!r) {
		v.end = v.start + l;
		hm_vma_insert(mm, &v);
		hm_vma_merge_range(mm, v.start, v.end);
		*out_addr = v.start;
	}
	hm_up_write(&mm->mmap_lock);
	if (!r && (flags & MAP_POPULATE) && prot != PROT_NONE)
		populate(mm, v.start, v.end, prot & PROT_WRITE);
	return hm_check_enabled(mm->sys, r);
}

int hm_munmap(struct hm_mm *mm, uint64_t addr, uint64_t len)
{
	uint64_t end;
	int r = range_args(mm, addr, len, &end);

	if (r || !len || end > mm->sys->task_size)
		return r ? r : -EINVAL;
	hm_down_write(&mm->mmap_lock);
	r = hm_munmap_locked(mm, addr, end);
	hm_up_write(&mm->mmap_lock);
	return hm_check_enabled(mm->sys, r);
}

static bool prot_leaf(struct hm_mm *mm, hm_pte_t *slot, unsigned level, uint64_t va, void *arg)
{
	hm_pte_t bits = *(hm_pte_t *)arg;

	(void)va;
	if (pt_swp_entry(pt_get(slot)))
		return true;	/* the swap-in maps it as the VMA says then */
	/* A page shared after fork stays read-only: the write fault copies it. */
	if (pt_write_bit(bits) && hm_leaf_reuse(mm, pt_pfn(pt_get(slot), level), level) != HM_REUSE)
		bits = pt_wrprotect(bits);
	__pt_set_perm_at(slot, bits);	/* in the walk's write window */
	return true;
}

/*
 * Give [start, end) VMA boundaries of its own, then apply @fn to each VMA
 * inside. A huge leaf never crosses a VMA boundary, so leaves across the
 * new boundaries are split first. The caller checked that no hole is in
 * the range. Fails only with -ENOMEM, having changed nothing.
 */
static int vma_apply(struct hm_mm *mm, uint64_t start, uint64_t end,
		     void (*fn)(struct hm_vma *v, int arg), int arg)
{
	int r;

	if ((r = hm_vma_reserve(mm, 2)) || (r = hm_split_edges(mm, start, end)))
		return r;
	hm_vma_split_at(mm, start);
	hm_vma_split_at(mm, end);
	for (size_t i = hm_vma_index(mm, start); i < mm->nr_vmas && mm->vmas[i].start < end; i++)
		fn(&mm->vmas[i], arg);
	hm_vma_merge_range(mm, start, end);
	return 0;
}

static void set_prot(struct hm_vma *v, int prot) { v->prot = prot; }

int hm_mprotect(struct hm_mm *mm, uint64_t addr, uint64_t len, int prot)
{
	uint64_t end;
	int r = range_args(mm, addr, len, &end);

	if (r || (prot & ~PROT_ALL))
		return r ? r : -EINVAL;
	if (!len)
		return 0;
	hm_down_write(&mm->mmap_lock);
	if (!hm_vma_covers(mm, addr, end, 0))
		r = -ENOMEM;
	else if (!(r = vma_apply(mm, addr, end, set_prot, prot))) {
		hm_pte_t bits = pt_prot_bits(prot);

		hm_walk_leaves(mm, addr, end, prot_leaf, &bits);
		/* Narrowed translations are stale at once; an access already
		 * under way may finish, as on a CPU the instruction in flight
		 * when the shootdown IPI arrives does. */
		hm_tlb_flush(mm);
	}
	hm_up_write(&mm->mmap_lock);
	return hm_check_enabled(mm->sys, r);
}

static void set_flag(struct hm_vma *v, int f) { v->flags |= (unsigned)f; }
static void clear_flag(struct hm_vma *v, int f) { v->flags &= ~(unsigned)f; }
static void set_hugepage(struct hm_vma *v, int f)
{
	v->flags = (v->flags & ~(VM_HUGEPAGE | VM_NOHUGEPAGE)) | (unsigned)f;
}

static int dontneed_locked(struct hm_mm *mm, uint64_t start, uint64_t end)
{
	int r = hm_split_edges(mm, start, end);

	if (!r)
		hm_unmap_range(mm, start, end, false);
	return r;
}

int hm_madvise(struct hm_mm *mm, uint64_t addr, uint64_t len, int advice)
{
	uint64_t end;
	int r = range_args(mm, addr, len, &end);

	if (r)
		return r;
	switch (advice) {
	case MADV_NORMAL: case MADV_RANDOM: case MADV_SEQUENTIAL: case MADV_WILLNEED:
	case MADV_HUGEPAGE: case MADV_NOHUGEPAGE: case MADV_DONTNEED:
	case MADV_DONTFORK: case MADV_DOFORK: case MADV_PAGEOUT: case MADV_COLLAPSE:
		break;
	default:
		return -EINVAL;
	}
	if (!len)
		return 0;
	if (advice == MADV_COLLAPSE) {
		struct hm_collapse_ctl cc = { 0 };

		hm_down_read(&mm->mmap_lock);
		bool covered = hm_vma_covers(mm, addr, end, 0);
		hm_up_read(&mm->mmap_lock);
		r = covered ? hm_collapse_range(mm, addr, end, &cc) : -ENOMEM;
		return hm_check_enabled(mm->sys, r);
	}
	if (advice == MADV_PAGEOUT) {
		/* Like a fault, under mmap_lock for reading: reclaim works under
		 * that, and a long write-out must not hold up other faults. */
		hm_down_read(&mm->mmap_lock);
		if (!hm_vma_covers(mm, addr, end, 0))
			r = -ENOMEM;
		else
			r = hm_pageout_range(mm, addr, end);
		hm_up_read(&mm->mmap_lock);
		return hm_check_enabled(mm->sys, r);
	}
	hm_down_write(&mm->mmap_lock);
	if (!hm_vma_covers(mm, addr, end, 0)) {
		r = -ENOMEM;
	} else {
		switch (advice) {
		case MADV_HUGEPAGE:   r = vma_apply(mm, addr, end, set_hugepage, VM_HUGEPAGE); break;
		case MADV_NOHUGEPAGE: r = vma_apply(mm, addr, end, set_hugepage, VM_NOHUGEPAGE); break;
		case MADV_DONTFORK:   r = vma_apply(mm, addr, end, set_flag, VM_DONTFORK); break;
		case MADV_DOFORK:     r = vma_apply(mm, addr, end, clear_flag, VM_DONTFORK); break;
		case MADV_DONTNEED:   r = dontneed_locked(mm, addr, end); break;
		default:	      break;	/* hints we take note of by ignoring */
		}
	}
	hm_up_write(&mm->mmap_lock);
	return hm_check_enabled(mm->sys, r);
}
