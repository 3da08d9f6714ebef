/* SPDX-License-Identifier: MIT */
/*
 * The VMA set: a sorted array. Every change that adds entries first reserves
 * room (hm_vma_reserve, the only step that can fail), so an operation can
 * check and allocate everything up front and then change state without a
 * failure path.
 */
#include <string.h>

#include "anon.h"
#include "hooks.h"
#include "vma.h"

size_t hm_vma_index(struct hm_mm *mm, uint64_t addr)
{
	size_t lo = 0, hi = mm->nr_vmas;

	hm_assert_rwsem_held(&mm->mmap_lock);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (mm->vmas[mid].end > addr)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

struct hm_vma *hm_vma_lookup(struct hm_mm *mm, uint64_t addr)
{
	size_t i = hm_vma_index(mm, addr);

	if (i < mm->nr_vmas && mm->vmas[i].start <= addr)
		return &mm->vmas[i];
	return NULL;
}

int hm_vma_reserve(struct hm_mm *mm, size_t extra)
{
	hm_assert_write_locked(&mm->mmap_lock);
	if (mm->nr_vmas + extra <= mm->cap_vmas)
		return 0;
	size_t cap = HM_MAX(mm->cap_vmas * 2, mm->nr_vmas + extra + 8);
	struct hm_vma *v = hm_realloc(&mm->sys->phys.fail, mm->vmas, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	mm->vmas = v;
	mm->cap_vmas = cap;
	return 0;
}

static void vma_insert_at(struct hm_mm *mm, size_t i, const struct hm_vma *v)
{
	hm_assert(mm->nr_vmas < mm->cap_vmas);
	memmove(&mm->vmas[i + 1], &mm->vmas[i], (mm->nr_vmas - i) * sizeof(*v));
	mm->vmas[i] = *v;
	mm->nr_vmas++;
}

void hm_vma_split_at(struct hm_mm *mm, uint64_t addr)
{
	hm_assert_write_locked(&mm->mmap_lock);
	size_t i = hm_vma_index(mm, addr);
	if (i == mm->nr_vmas || mm->vmas[i].start >= addr)
		return;
	struct hm_vma hi = mm->vmas[i];

	hi.start = addr;
	mm->vmas[i].end = addr;
	vma_insert_at(mm, i + 1, &hi);
	if (hi.av)
		hm_av_get(hi.av, mm);	/* both halves point at the family */
}

void hm_vma_insert(struct hm_mm *mm, const struct hm_vma *v)
{
	hm_assert_write_locked(&mm->mmap_lock);
	vma_insert_at(mm, hm_vma_index(mm, v->start), v);
}

void hm_vma_remove_range(struct hm_mm *mm, uint64_t start, uint64_t end)
{
	hm_assert_write_locked(&mm->mmap_lock);
	size_t i = hm_vma_index(mm, start), j = i;

	while (j < mm->nr_vmas && mm->vmas[j].end <= end)
		j++;
	hm_assert(j == mm->nr_vmas || mm->vmas[j].start >= end);
	for (size_t k = i; k < j; k++)
		if (mm->vmas[k].av)
			hm_av_put(mm->sys, mm->vmas[k].av, mm);
	if (j == i)
		return;		/* nothing to remove (and maybe no array yet) */
	memmove(&mm->vmas[i], &mm->vmas[j], (mm->nr_vmas - j) * sizeof(struct hm_vma));
	mm->nr_vmas -= j - i;
}

static bool vma_mergeable(const struct hm_vma *a, const struct hm_vma *b)
{
	return a->end == b->start && a->prot == b->prot && a->flags == b->flags && a->av == b->av;
}

void hm_vma_merge_range(struct hm_mm *mm, uint64_t start, uint64_t end)
{
	hm_assert_write_locked(&mm->mmap_lock);
	size_t i = hm_vma_index(mm, start);

	if (i > 0)
		i--;
	while (i + 1 < mm->nr_vmas && mm->vmas[i].start <= end) {
		if (vma_mergeable(&mm->vmas[i], &mm->vmas[i + 1])) {
			if (mm->vmas[i].av)
				hm_av_put(mm->sys, mm->vmas[i].av, mm);
			mm->vmas[i].end = mm->vmas[i + 1].end;
			memmove(&mm->vmas[i + 1], &mm->vmas[i + 2],
				(mm->nr_vmas - i - 2) * sizeof(struct hm_vma));
			mm->nr_vmas--;
		} else {
			i++;
		}
	}
}

bool hm_vma_covers(struct hm_mm *mm, uint64_t start, uint64_t end, int need)
{
	size_t i = hm_vma_index(mm, start);
	uint64_t at = start;

	for (; i < mm->nr_vmas && at < end; i++) {
		const struct hm_vma *v = &mm->vmas[i];

		if (v->start > at || (need == PROT_READ && v->prot == PROT_NONE) ||
		    (need == PROT_WRITE && !(v->prot & PROT_WRITE)))
			return false;
		at = v->end;
	}
	return at >= end;
}

bool hm_vma_overlaps(struct hm_mm *mm, uint64_t start, uint64_t end)
{
	size_t i = hm_vma_index(mm, start);

	return i < mm->nr_vmas && mm->vmas[i].start < end;
}

/* Top-down search below task_size, as the kernel's mmap does, for a gap of
 * @len aligned as API.md promises. The hint is taken if it is free. */
int hm_vma_find_gap(struct hm_mm *mm, uint64_t hint, uint64_t len, uint64_t *out)
{
	uint64_t top = mm->sys->task_size;
	uint64_t align = len >= HM_PUD_SIZE ? HM_PUD_SIZE : len >= HM_PMD_SIZE ? HM_PMD_SIZE : HM_PAGE_SIZE;

	if (len > top - HM_MIN_ADDR)
		return -ENOMEM;
	if (hint) {
		hint = HM_ALIGN_UP(hint, align);
		if (hint >= HM_MIN_ADDR && hint <= top - len && !hm_vma_overlaps(mm, hint, hint + len)) {
			*out = hint;
			return 0;
		}
	}
	for (size_t i = mm->nr_vmas + 1; i-- > 0;) {
		uint64_t gap_end = i == mm->nr_vmas ? top : mm->vmas[i].start;
		uint64_t gap_start = i == 0 ? HM_MIN_ADDR : mm->vmas[i - 1].end;

		if (gap_end < len)
			continue;
		uint64_t a = HM_ALIGN_DOWN(gap_end - len, align);
		if (a >= gap_start && a >= HM_MIN_ADDR) {
			*out = a;
			return 0;
		}
	}
	return -ENOMEM;
}

void hm__vma_count(struct hm_mm *mm, size_t *nr, size_t *cap)
{
	hm_down_read(&mm->mmap_lock);
	*nr = mm->nr_vmas;
	*cap = mm->cap_vmas;
	hm_up_read(&mm->mmap_lock);
}
