/* SPDX-License-Identifier: MIT */
/*
 * The arena: one host mapping that stands for physical memory. It is
 * aligned to 1 GiB so that host-virtual and physical addresses agree modulo
 * 1 GiB (the host's huge pages then line up with ours, and a KVM guest's).
 */
#include <emmintrin.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "phys.h"

static void hm_phys_fini_nodes(struct hm_phys *ph, unsigned nr)
{
	hm_prezero_stop(ph);
	pthread_cond_destroy(&ph->zero_wake);
	pthread_mutex_destroy(&ph->zero_lock);
	pthread_mutex_destroy(&ph->zero_busy);
	for (unsigned i = 0; ph->pcp && i < ph->nr_cpus * ph->nr_nodes; i++)
		pthread_mutex_destroy(&ph->pcp[i].lock);
	free(ph->pcp);
	ph->pcp = NULL;
	for (unsigned i = 0; i < nr; i++) {
		pthread_mutex_destroy(&ph->nodes[i].lock);
		free(ph->nodes[i].unmovable);
	}
}

int hm_phys_init(struct hm_phys *ph, uint64_t bytes, unsigned nr_nodes, bool populate)
{
	memset(ph, 0, sizeof(*ph));
	ph->nr_frames = (uint32_t)(bytes >> HM_PAGE_SHIFT);
	ph->nr_nodes = nr_nodes;
	/* First, so that every path to hm_phys_fini_nodes, which destroys
	 * them, finds them initialised. */
	pthread_mutex_init(&ph->zero_busy, NULL);
	pthread_mutex_init(&ph->zero_lock, NULL);
	pthread_cond_init(&ph->zero_wake, NULL);

	ph->map_len = bytes + HM_PUD_SIZE;
	ph->map = mmap(NULL, ph->map_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ph->map == MAP_FAILED) {
		hm_phys_fini_nodes(ph, 0);
		return -ENOMEM;
	}
	ph->base = (uint8_t *)HM_ALIGN_UP((uintptr_t)ph->map, HM_PUD_SIZE);
	/* Best effort: without host huge pages the host's TLB misses dominate. */
	(void)madvise(ph->base, bytes, MADV_HUGEPAGE);

	ph->pages_len = HM_ALIGN_UP((uint64_t)ph->nr_frames * sizeof(struct hm_page), HM_PAGE_SIZE);
	ph->pages = mmap(NULL, ph->pages_len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ph->pages == MAP_FAILED) {
		hm_phys_fini_nodes(ph, 0);
		munmap(ph->map, ph->map_len);
		return -ENOMEM;
	}
	/* Where the host backs anonymous memory with 2 MiB pages whatever we
	 * ask, the first write to a free block's head would cost 2 MiB of host
	 * memory instead of 4 KiB: that is 8 GiB for a 4 TiB system's heads. */
	(void)madvise(ph->pages, ph->pages_len, MADV_NOHUGEPAGE);
	if (populate) {
		/* One write per host page makes the host back the arena now. */
		for (uint64_t off = 0; off < bytes; off += HM_PAGE_SIZE)
			ph->base[off] = 0;
	}

	ph->nr_cpus = hm_nr_cpus();
	ph->pcp = aligned_alloc(64, (size_t)ph->nr_cpus * nr_nodes * sizeof(*ph->pcp));
	if (!ph->pcp) {
		hm_phys_fini_nodes(ph, 0);
		munmap(ph->pages, ph->pages_len);
		munmap(ph->map, ph->map_len);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < ph->nr_cpus * nr_nodes; i++) {
		pthread_mutex_init(&ph->pcp[i].lock, NULL);
		ph->pcp[i].count = 0;
		ph->pcp[i].zcount = 0;
		ph->pcp[i].zpooled = false;
		ph->pcp[i].zused = 0;
	}
	ph->node_span = ph->nr_frames / nr_nodes;
	for (unsigned i = 0; i < nr_nodes; i++) {
		struct hm_node *n = &ph->nodes[i];

		pthread_mutex_init(&n->lock, NULL);
		n->start_pfn = ph->node_span * i;
		n->end_pfn = i + 1 == nr_nodes ? ph->nr_frames : ph->node_span * (i + 1);
		/* Group at 1 GiB where the node has room for two such regions,
		 * so that one can hold the unmovable frames and the other be
		 * freed; at 2 MiB in smaller nodes. */
		n->group_shift = n->end_pfn - n->start_pfn >= 2u << HM_PUD_ORDER ? HM_PUD_ORDER : HM_PMD_ORDER;
		n->nr_regions = ((n->end_pfn - 1) >> n->group_shift) - (n->start_pfn >> n->group_shift) + 1;
		n->unmovable = calloc(n->nr_regions, sizeof(*n->unmovable));
		if (!n->unmovable) {
			hm_phys_fini_nodes(ph, i + 1);
			munmap(ph->pages, ph->pages_len);
			munmap(ph->map, ph->map_len);
			return -ENOMEM;
		}
		hm_buddy_init_node(ph, n);
	}
	return 0;
}

void hm_phys_fini(struct hm_phys *ph)
{
	hm_phys_fini_nodes(ph, ph->nr_nodes);
	munmap(ph->pages, ph->pages_len);
	munmap(ph->map, ph->map_len);
}

/*
 * Copies that move memory (migration, collapse) write frames that nobody
 * reads soon, so they stream too, whatever the size: a cached copy would
 * first read every target line, and glibc's memcpy streams only above its
 * threshold, which a 2 MiB copy is under. A batch of 4 KiB copies is as
 * cold as one huge one.
 */
void hm_copy_pages(struct hm_phys *ph, uint32_t dst, uint32_t src, unsigned order)
{
	const uint8_t *s = hm_pfn_ptr(ph, src);
	uint8_t *d = hm_pfn_ptr(ph, dst);
	size_t len = HM_PAGE_SIZE << order;

	for (size_t off = 0; off < len; off += 64) {
		__m128i a = _mm_load_si128((const __m128i *)(s + off));
		__m128i b = _mm_load_si128((const __m128i *)(s + off + 16));
		__m128i c = _mm_load_si128((const __m128i *)(s + off + 32));
		__m128i e = _mm_load_si128((const __m128i *)(s + off + 48));

		_mm_stream_si128((__m128i *)(d + off), a);
		_mm_stream_si128((__m128i *)(d + off + 16), b);
		_mm_stream_si128((__m128i *)(d + off + 32), c);
		_mm_stream_si128((__m128i *)(d + off + 48), e);
	}
	_mm_sfence();
}
