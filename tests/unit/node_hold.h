/* SPDX-License-Identifier: MIT */
/*
 * White-box helpers of the migration tests: hold a memory node's frames
 * straight from the buddy allocator, so that migration finds no target of
 * some order there. The frames held are nobody's (hm_check counts them as
 * leaked: such tests set t_flags = 0 and check once they are back).
 */
#ifndef HM_TEST_NODE_HOLD_H
#define HM_TEST_NODE_HOLD_H

#include <stdlib.h>
#include "../../src/mm/mm.h"

/* Every free frame of @node, in 4 KiB allocations; with @sparse, 1 in 4
 * given back (never buddies): room in 4 KiB frames but no 2 MiB block.
 * *got: frames allocated; give them back with node_release. */
static inline uint32_t *node_hold(struct hm_system *sys, unsigned node, bool sparse, uint32_t *got)
{
	struct hm_phys *ph = &sys->phys;
	struct hm_node *n = &ph->nodes[node];
	uint32_t nr = n->end_pfn - n->start_pfn;
	uint32_t *all = calloc(nr, sizeof(*all));

	if (!all)
		abort();
	*got = 0;
	while (*got < nr && (all[*got] = hm_alloc_pages(ph, node, 0, HM_ALLOC_THISNODE)) != HM_PFN_NONE)
		++*got;
	for (uint32_t i = 0; sparse && i < *got; i++) {
		if (all[i] % 2 == 0 && all[i] / 2 % 2 == 0) {
			hm_free_pages(ph, all[i], 0);
			all[i] = HM_PFN_NONE;
		}
	}
	return all;
}

static inline void node_release(struct hm_system *sys, uint32_t *all, uint32_t got)
{
	for (uint32_t i = 0; i < got; i++)
		if (all[i] != HM_PFN_NONE)
			hm_free_pages(&sys->phys, all[i], 0);
	free(all);
}

#endif
