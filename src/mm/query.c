/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "folio.h"
#include "migrate.h"
#include "table.h"
#include "types.h"

int hm_query(struct hm_mm *mm, uint64_t va, struct hm_mapping *out)
{
	if (!mm || !out || va >= mm->sys->task_size)
		return -EINVAL;
	struct hm_phys *ph = mm_phys(mm);
	unsigned level;

	memset(out, 0, sizeof(*out));
	hm_down_read(&mm->mmap_lock);
	/* Another thread's copy-on-write may free the folio we find (after a
	 * grace period): look at it inside a read section. */
	hm_rcu_read_lock();
	hm_pte_t *slot = hm_pt_walk(ph, mm->root, mm->sys->top, va, &level);
	hm_pte_t e = pt_get(slot);
	while (!pt_none(e) && !pt_mapped(e) && !pt_swp_entry(e)) {
		if (pt_is_migration(e)) {
			/* Being moved: the grace period it waits for must not
			 * wait for us. */
			hm_rcu_read_unlock();
			hm_migration_wait(mm, va, e);
			hm_rcu_read_lock();
		} else {
			/* A split holds the entry invalid under its table's
			 * lock. */
			hm_spin_t *lock = hm_mm_table_lock(mm, hm_slot_table(ph, slot));

			hm_spin_lock(lock);
			hm_spin_unlock(lock);
		}
		slot = hm_pt_walk(ph, mm->root, mm->sys->top, va, &level);
		e = pt_get(slot);
	}
	if (pt_swp_entry(e) && level <= 1) {
		out->va = HM_ALIGN_DOWN(va, hm_level_size(level));
		out->size = hm_level_size(level);
		out->swapped = true;
		out->prot = PROT_NONE;	/* not present */
	} else if (pt_mapped(e)) {
		uint64_t size = hm_level_size(level);
		uint32_t pfn = pt_pfn(e, level);
		uint32_t page = pfn + (uint32_t)((va & (size - 1)) >> HM_PAGE_SHIFT);

		out->va = HM_ALIGN_DOWN(va, size);
		out->size = size;
		out->pa = (uint64_t)pfn << HM_PAGE_SHIFT;
		out->prot = pt_prot(e);
		out->node = hm_pfn_node(ph, pfn);
		out->mapcount = hm_page_mapcount(mm->sys, page);
		out->exclusive = hm_leaf_reuse(mm, level ? pfn : page, level) != HM_COPY;
	}
	hm_rcu_read_unlock();
	hm_up_read(&mm->mmap_lock);
	return 0;
}
