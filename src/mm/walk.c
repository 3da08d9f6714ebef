/* SPDX-License-Identifier: MIT */
/*
 * hm_walk: the raw entries on the way to an address, for a ptdump or a
 * debugger. It walks as the MMU's miss path does (mmu/access.c), without
 * locks: every table it passes is freed only a grace period after it was
 * unlinked, so a read section is all it needs.
 */
#include <string.h>

#include "types.h"

/* Bits 63 down to the top level's highest index bit all equal. */
static bool canonical(uint64_t va, unsigned levels)
{
	unsigned unused = 64 - hm_level_shift(levels);

	return (uint64_t)((int64_t)(va << unused) >> unused) == va;
}

int hm_walk(struct hm_mm *mm, uint64_t va, struct hm_walk *out)
{
	if (!mm || !out || !canonical(va, mm->sys->top + 1))
		return -EINVAL;
	unsigned top = mm->sys->top, level;
	struct hm_pt_step step[5];

	memset(out, 0, sizeof(*out));
	out->levels = top + 1;
	hm_rcu_read_lock();
	hm_pt_walk_trace(mm_phys(mm), mm->root, top, va, &level, step);
	hm_rcu_read_unlock();
	for (unsigned l = level; l <= top; l++) {
		out->entry[l] = step[l].e;
		out->table[l] = (const void *)HM_ALIGN_DOWN((uintptr_t)step[l].slot, HM_PAGE_SIZE);
	}
	/* Only a present leaf translates; the rest is left raw in entry[]. */
	out->leaf_level = pt_present(step[level].e) && pt_leaf(step[level].e, level) ? (int)level : -1;
	return 0;
}
