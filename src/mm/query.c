/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "mm.h"

int hm_query(struct hm_mm *mm, uint64_t va, struct hm_mapping *out)
{
	if (!mm || !out || va >= mm->sys->task_size)
		return -EINVAL;
	struct hm_phys *ph = mm_phys(mm);
	unsigned level;

	memset(out, 0, sizeof(*out));
	hm_down_read(&mm->mmap_lock);
	hm_pte_t e = pt_get(hm_pt_walk(ph, mm->root, mm->sys->top, va, &level));
	if (pt_mapped(e)) {
		uint64_t size = hm_level_size(level);
		uint32_t pfn = pt_pfn(e, level);
		uint32_t page = pfn + (uint32_t)((va & (size - 1)) >> HM_PAGE_SHIFT);

		out->va = HM_ALIGN_DOWN(va, size);
		out->size = size;
		out->pa = (uint64_t)pfn << HM_PAGE_SHIFT;
		out->prot = pt_prot(e);
		out->node = hm_pfn_node(ph, pfn);
		out->mapcount = hm_page_mapcount(ph, page);
		out->exclusive = hm_leaf_exclusive(mm->sys, level ? pfn : page, level, mm->slot_id);
	}
	hm_up_read(&mm->mmap_lock);
	return 0;
}
