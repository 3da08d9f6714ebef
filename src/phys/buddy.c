/* SPDX-License-Identifier: MIT */
/*
 * Buddy allocator, orders 0..HM_MAX_ORDER, one per node. Free blocks sit on
 * doubly-linked lists threaded through their head descriptors (lru.next /
 * lru.prev hold frame numbers), so a buddy can be unlinked in O(1) when
 * blocks merge.
 *
 * Invariant (node->lock): a frame is in exactly one free block or in none;
 * a free block of order o starts at a multiple of 2^o and its head has
 * buddy = o + 1; node->nr_free = sum over blocks of 2^o.
 */
#include <string.h>

#include "phys.h"

static void list_add(struct hm_phys *ph, struct hm_node *n, uint32_t pfn, unsigned o)
{
	struct hm_page *pg = &ph->pages[pfn];
	uint32_t head = n->free_head[o];

	pg->buddy = (uint8_t)(o + 1);
	pg->lru.prev = HM_PFN_NONE;
	pg->lru.next = head;
	if (head != HM_PFN_NONE)
		ph->pages[head].lru.prev = pfn;
	n->free_head[o] = pfn;
	n->nr_blocks[o]++;
}

static void list_del(struct hm_phys *ph, struct hm_node *n, uint32_t pfn, unsigned o)
{
	struct hm_page *pg = &ph->pages[pfn];

	if (pg->lru.prev != HM_PFN_NONE)
		ph->pages[pg->lru.prev].lru.next = pg->lru.next;
	else
		n->free_head[o] = pg->lru.next;
	if (pg->lru.next != HM_PFN_NONE)
		ph->pages[pg->lru.next].lru.prev = pg->lru.prev;
	pg->buddy = 0;
	pg->lru.next = pg->lru.prev = 0;
	n->nr_blocks[o]--;
}

static uint32_t node_alloc(struct hm_phys *ph, struct hm_node *n, unsigned order)
{
	unsigned o = order;

	hm_mutex_lock(&n->lock);
	while (o <= HM_MAX_ORDER && n->free_head[o] == HM_PFN_NONE)
		o++;
	if (o > HM_MAX_ORDER) {
		hm_mutex_unlock(&n->lock);
		return HM_PFN_NONE;
	}
	uint32_t pfn = n->free_head[o];
	list_del(ph, n, pfn, o);
	/* Give back the upper halves until the block has the asked order. */
	while (o > order) {
		o--;
		list_add(ph, n, pfn + (1u << o), o);
	}
	n->nr_free -= 1u << order;
	hm_mutex_unlock(&n->lock);
	hm_sub(&ph->nr_free, 1u << order);
	return pfn;
}

uint32_t hm_alloc_pages(struct hm_phys *ph, unsigned node, unsigned order, unsigned flags)
{
	hm_assert(order <= HM_MAX_ORDER && node < ph->nr_nodes);
	if (hm_fail_hit(&ph->fail))
		return HM_PFN_NONE;

	uint32_t pfn = node_alloc(ph, &ph->nodes[node], order);
	for (unsigned i = 1; pfn == HM_PFN_NONE && !(flags & HM_ALLOC_THISNODE) && i < ph->nr_nodes; i++)
		pfn = node_alloc(ph, &ph->nodes[(node + i) % ph->nr_nodes], order);
	if (pfn != HM_PFN_NONE && (flags & HM_ALLOC_ZERO))
		hm_zero_pages(ph, pfn, order);
	return pfn;
}

void hm_free_pages(struct hm_phys *ph, uint32_t pfn, unsigned order)
{
	struct hm_node *n = &ph->nodes[hm_pfn_node(ph, pfn)];
	unsigned o = order;

	hm_assert(!(pfn & ((1u << order) - 1)));
	hm_assert(pfn >= n->start_pfn && pfn + (1u << order) <= n->end_pfn);
	/* Reset the descriptors outside the lock; the block is ours alone. */
	for (uint32_t i = 0; i < (1u << order); i++) {
		struct hm_page *pg = &ph->pages[pfn + i];

		hm_assert_int(!(pg->flags & PG_TABLE));
		hm_page_reset(pg);
	}

	hm_mutex_lock(&n->lock);
	n->nr_free += 1u << order;
	while (o < HM_MAX_ORDER) {
		uint32_t buddy = pfn ^ (1u << o);

		if (buddy < n->start_pfn || buddy + (1u << o) > n->end_pfn)
			break;
		struct hm_page *b = &ph->pages[buddy];
		if (b->buddy != o + 1)
			break;
		list_del(ph, n, buddy, o);
		pfn &= ~(1u << o);
		o++;
	}
	list_add(ph, n, pfn, o);
	hm_mutex_unlock(&n->lock);
	hm_add(&ph->nr_free, 1u << order);
}

/*
 * Not hm_free_pages(): that resets every descriptor of the block, which
 * would write all of them (64 bytes per 4 KiB frame, 4 GiB for a 256 GiB
 * system) before any is used. The blocks are maximal (each is as large as
 * its alignment and the node's end allow), so none could merge with
 * another.
 */
void hm_buddy_init_node(struct hm_phys *ph, struct hm_node *n)
{
	for (unsigned o = 0; o <= HM_MAX_ORDER; o++)
		n->free_head[o] = HM_PFN_NONE;
	n->nr_free = 0;
	for (uint32_t p = n->start_pfn; p < n->end_pfn;) {
		unsigned o = HM_MAX_ORDER;

		while (o && ((p & ((1u << o) - 1)) || p + (1u << o) > n->end_pfn))
			o--;
		hm_assert_int(ph->pages[p].flags == 0 && ph->pages[p].buddy == 0);
		list_add(ph, n, p, o);
		n->nr_free += 1u << o;
		p += 1u << o;
	}
	hm_add(&ph->nr_free, n->nr_free);
}

void hm_phys_lock_all(struct hm_phys *ph)
{
	for (unsigned i = 0; i < ph->nr_nodes; i++)
		hm_mutex_lock(&ph->nodes[i].lock);
}

void hm_phys_unlock_all(struct hm_phys *ph)
{
	for (unsigned i = ph->nr_nodes; i-- > 0;)
		hm_mutex_unlock(&ph->nodes[i].lock);
}

int hm_phys_for_each_free(struct hm_phys *ph, int (*fn)(void *arg, uint32_t pfn, unsigned order), void *arg)
{
	for (unsigned i = 0; i < ph->nr_nodes; i++) {
		struct hm_node *n = &ph->nodes[i];

		for (unsigned o = 0; o <= HM_MAX_ORDER; o++) {
			uint64_t seen = 0;

			for (uint32_t p = n->free_head[o]; p != HM_PFN_NONE; p = ph->pages[p].lru.next) {
				int r = fn(arg, p, o);

				if (r)
					return r;
				if (++seen > n->nr_blocks[o])
					return -ELOOP;
			}
			if (seen != n->nr_blocks[o])
				return -ELOOP;
		}
	}
	return 0;
}
