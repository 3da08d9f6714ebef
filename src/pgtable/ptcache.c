/* SPDX-License-Identifier: MIT */
/*
 * The page-table cache: tables are carved from 2 MiB blocks, 512 at a time,
 * so that tables sit together (and could be write-protected as a group).
 * A block is zeroed once when carved; tables are zero again when freed, so
 * handing one out costs a list pop. When no block can be had, a single
 * frame is used instead. Each block brings its 512 ptdescs along (ptdesc.h),
 * a single frame its own one. One fully empty block is kept as a spare; the
 * rest go back to the buddy allocator at once, and the spare on shrink. Blocks
 * and single frames are unmovable allocations (HM_ALLOC_UNMOVABLE): they
 * gather in regions of their own, away from the folios compaction moves.
 * A block holds tables (live, deposited, pending or free) and nothing else:
 * its slots are never lent out as data, so that it can be write-protected
 * whole (HM_PROTECT_TABLES, protect.h) from carving to release.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pgtable.h"

#ifdef HM_TSAN
char hm_rcu_tsan_sync;
#endif

static inline uint32_t blk_of(uint32_t pfn) { return pfn >> HM_PMD_ORDER; }

int hm_ptcache_init(struct hm_ptcache *pc, struct hm_phys *ph, bool lazy)
{
	memset(pc, 0, sizeof(*pc));
	pc->ph = ph;
	pc->free_head = HM_PFN_NONE;
	pc->lazy = lazy;
	/* Not calloc: it may clear recycled heap memory, touching 2 bytes per
	 * 2 MiB of the arena (4 MiB for 4 TiB) before any block is carved. A
	 * fresh mapping is zero and costs only the counters in use. */
	pc->blk_used_len = ((ph->nr_frames >> HM_PMD_ORDER) + 1) * sizeof(uint16_t);
	pc->blk_used = mmap(NULL, pc->blk_used_len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (pc->blk_used == MAP_FAILED) {
		pc->blk_used = NULL;
		return -ENOMEM;
	}
	pc->blk_desc_len = ((ph->nr_frames >> HM_PMD_ORDER) + 1) * sizeof(*pc->blk_desc);
	pc->blk_desc = mmap(NULL, pc->blk_desc_len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (pc->blk_desc == MAP_FAILED) {
		munmap(pc->blk_used, pc->blk_used_len);
		pc->blk_used = NULL;
		pc->blk_desc = NULL;
		return -ENOMEM;
	}
	pthread_mutex_init(&pc->lock, NULL);
	return 0;
}

int hm_ptcache_protect(struct hm_ptcache *pc)
{
	return hm_ptp_create(&pc->prot, pc->ph->base, (uint64_t)pc->ph->nr_frames << HM_PAGE_SHIFT,
			     HM_PTP_PKEY);
}

void hm_ptcache_fini(struct hm_ptcache *pc)
{
	hm_ptcache_shrink(pc);
	hm_ptp_destroy(pc->prot);
	pthread_mutex_destroy(&pc->lock);
	munmap(pc->blk_used, pc->blk_used_len);
	munmap(pc->blk_desc, pc->blk_desc_len);
}

/* ptdescs, cache-line aligned; through the failpoint like every
 * allocation. Context: no spinlock. */
static void *desc_alloc(struct hm_ptcache *pc, size_t size)
{
	void *p;

	hm_might_sleep();
	if (hm_fail_hit(&pc->ph->fail) || posix_memalign(&p, 64, size))
		return NULL;
	return p;
}

/* Table memory from the buddy allocator (zeroed), sealed when protected. */
static uint32_t tables_get(struct hm_ptcache *pc, unsigned order)
{
	uint32_t pfn = hm_alloc_pages(pc->ph, 0, order, HM_ALLOC_ZERO | HM_ALLOC_UNMOVABLE);

	if (pfn != HM_PFN_NONE && pc->prot &&
	    hm_ptp_seal(pc->prot, hm_pfn_ptr(pc->ph, pfn), HM_PAGE_SIZE << order)) {
		hm_free_unmovable(pc->ph, pfn, order);
		return HM_PFN_NONE;
	}
	return pfn;
}

static void tables_put(struct hm_ptcache *pc, uint32_t pfn, unsigned order)
{
	if (pc->prot)
		hm_ptp_unseal(pc->prot, hm_pfn_ptr(pc->ph, pfn), HM_PAGE_SIZE << order);
	hm_free_unmovable(pc->ph, pfn, order);
}

static void slot_push(struct hm_ptcache *pc, uint32_t pfn)
{
	struct hm_page *pg = hm_pfn_page(pc->ph, pfn);

	pg->flags = PG_PT_FREE | PG_PT_SLOT;
	pg->lru.prev = HM_PFN_NONE;
	pg->lru.next = pc->free_head;
	if (pc->free_head != HM_PFN_NONE)
		hm_pfn_page(pc->ph, pc->free_head)->lru.prev = pfn;
	pc->free_head = pfn;
	hm_add(&pc->nr_free_slots, 1);
}

static void slot_unlink(struct hm_ptcache *pc, uint32_t pfn)
{
	struct hm_page *pg = hm_pfn_page(pc->ph, pfn);

	if (pg->lru.prev != HM_PFN_NONE)
		hm_pfn_page(pc->ph, pg->lru.prev)->lru.next = pg->lru.next;
	else
		pc->free_head = pg->lru.next;
	if (pg->lru.next != HM_PFN_NONE)
		hm_pfn_page(pc->ph, pg->lru.next)->lru.prev = pg->lru.prev;
	hm_sub(&pc->nr_free_slots, 1);
}

static void block_release_locked(struct hm_ptcache *pc, uint32_t blk)
{
	uint32_t base = blk << HM_PMD_ORDER;

	for (uint32_t i = 0; i < HM_PTRS; i++) {
		struct hm_page *pg = hm_pfn_page(pc->ph, base + i);

		slot_unlink(pc, base + i);
		pg->flags = 0;
		pg->pt.desc = NULL;
	}
	struct hm_ptblock *b = pc->blk_desc[blk];

	if (b->prev)
		b->prev->next = b->next;
	else
		pc->blocks = b->next;
	if (b->next)
		b->next->prev = b->prev;
	hm_sub(&pc->nr_empty_blocks, 1);
	pc->nr_blocks--;
	free(b);
	pc->blk_desc[blk] = NULL;
	tables_put(pc, base, HM_PMD_ORDER);
}

static void desc_init(struct hm_ptdesc *d, struct hm_ptcache *pc, uint32_t pfn, struct hm_ptblock *b)
{
	memset(d, 0, sizeof(*d));
	d->pfn = pfn;
	d->block = b;
	d->pc = pc;
}

/* The ptdescs come after the frames: when no 2 MiB block is free, every
 * table allocation tries to carve, and should not allocate and free 32 KiB
 * each time. */
static bool block_carve_locked(struct hm_ptcache *pc)
{
	uint32_t base = tables_get(pc, HM_PMD_ORDER);
	struct hm_ptblock *b;

	if (base == HM_PFN_NONE)
		return false;
	b = desc_alloc(pc, sizeof(*b));
	if (!b) {
		tables_put(pc, base, HM_PMD_ORDER);
		return false;
	}
	memset(b, 0, offsetof(struct hm_ptblock, desc));
	b->base = base;
	b->next = pc->blocks;
	if (pc->blocks)
		pc->blocks->prev = b;
	pc->blocks = b;
	for (uint32_t i = HM_PTRS; i-- > 0;) {
		desc_init(&b->desc[i], pc, base + i, b);
		hm_pfn_page(pc->ph, base + i)->pt.desc = &b->desc[i];
		slot_push(pc, base + i);
	}
	pc->blk_desc[blk_of(base)] = b;
	pc->blk_used[blk_of(base)] = 0;
	hm_add(&pc->nr_empty_blocks, 1);
	pc->nr_blocks++;
	return true;
}

static void table_init(struct hm_page *pg, unsigned level, uint64_t owner)
{
	struct hm_ptdesc *d = pg->pt.desc;

	pg->flags = (pg->flags & PG_PT_SLOT) | PG_TABLE;
	d->level = (uint8_t)level;
	d->deposit_next = HM_PFN_NONE;
	d->deposit_head = HM_PFN_NONE;
	d->nr_deposited = 0;
	hm_spin_init(&d->ptl);
	d->owner = owner;
}

/* Make free slot @pfn a table. Context: pc->lock. */
static void slot_take_locked(struct hm_ptcache *pc, uint32_t pfn, unsigned level, uint64_t owner)
{
	slot_unlink(pc, pfn);
	if (pc->blk_used[blk_of(pfn)]++ == 0)
		hm_sub(&pc->nr_empty_blocks, 1);
	table_init(hm_pfn_page(pc->ph, pfn), level, owner);
	hm_add(&pc->nr_tables, 1);
}

static uint32_t pt_alloc(struct hm_ptcache *pc, unsigned level, uint64_t owner);

uint32_t hm_pt_alloc(struct hm_ptcache *pc, unsigned level, uint64_t owner)
{
	uint32_t pfn = pt_alloc(pc, level, owner);

	if (pfn == HM_PFN_NONE && hm_ptcache_drain(pc))
		pfn = pt_alloc(pc, level, owner);
	return pfn;
}

static uint32_t pt_alloc(struct hm_ptcache *pc, unsigned level, uint64_t owner)
{
	struct hm_phys *ph = pc->ph;
	uint32_t pfn;

	if (hm_fail_hit(&ph->fail))
		return HM_PFN_NONE;
	hm_mutex_lock(&pc->lock);
	if (pc->free_head == HM_PFN_NONE && !block_carve_locked(pc)) {
		hm_mutex_unlock(&pc->lock);
		pfn = tables_get(pc, 0);
		if (pfn == HM_PFN_NONE)
			return HM_PFN_NONE;
		struct hm_ptdesc *d = desc_alloc(pc, sizeof(*d));
		if (!d) {
			tables_put(pc, pfn, 0);
			return HM_PFN_NONE;
		}
		desc_init(d, pc, pfn, NULL);
		hm_pfn_page(ph, pfn)->pt.desc = d;
		table_init(hm_pfn_page(ph, pfn), level, owner);
		hm_add(&pc->nr_single, 1);
		hm_add(&pc->nr_tables, 1);
		return pfn;
	}
	pfn = pc->free_head;
	slot_take_locked(pc, pfn, level, owner);
	hm_mutex_unlock(&pc->lock);
	return pfn;
}

uint32_t hm_pt_alloc_slot(struct hm_ptcache *pc, unsigned level, uint64_t owner)
{
	uint32_t pfn;

	if (hm_fail_hit(&pc->ph->fail))
		return HM_PFN_NONE;
	hm_mutex_lock(&pc->lock);
	pfn = pc->free_head;
	/* Only the list's first slot is looked at: the slots of a block in
	 * use are pushed there as tables are freed. */
	if (pfn == HM_PFN_NONE || !pc->blk_used[blk_of(pfn)]) {
		hm_mutex_unlock(&pc->lock);
		return HM_PFN_NONE;
	}
	slot_take_locked(pc, pfn, level, owner);
	hm_mutex_unlock(&pc->lock);
	return pfn;
}

static void slot_free_locked(struct hm_ptcache *pc, uint32_t pfn)
{
	uint32_t blk = blk_of(pfn);

	slot_push(pc, pfn);
	if (--pc->blk_used[blk] == 0 && hm_add(&pc->nr_empty_blocks, 1) > 1)
		block_release_locked(pc, blk);
}

static void table_check_empty(struct hm_ptcache *pc, uint32_t pfn)
{
	struct hm_page *pg = hm_pfn_page(pc->ph, pfn);

	hm_assert(pg->flags & (PG_TABLE | PG_PT_PENDING));
	hm_assert(pg->pt.desc->nr_deposited == 0 || (pg->flags & PG_PT_PENDING));
#if HM_DEBUG >= 2
	const hm_pte_t *e = hm_pt_entries(pc->ph, pfn);
	for (unsigned i = 0; i < HM_PTRS; i++)
		hm_assert_int(e[i] == 0);
#endif
}

/* Context: pc->lock held. */
void hm_pt_free_locked(struct hm_ptcache *pc, uint32_t pfn)
{
	struct hm_page *pg = hm_pfn_page(pc->ph, pfn);
	bool pending = pg->flags & PG_PT_PENDING;

	table_check_empty(pc, pfn);
	if (!pending)
		hm_sub(&pc->nr_tables, 1);
	else
		hm_sub(&pc->nr_pending, 1);
	if (!(pg->flags & PG_PT_SLOT)) {
		/* Under the cache lock, so hm_check never sees the frame between
		 * "pending" and "free". */
		pg->flags = 0;
		free(pg->pt.desc);
		pg->pt.desc = NULL;
		tables_put(pc, pfn, 0);
		hm_sub(&pc->nr_single, 1);
		return;
	}
	slot_free_locked(pc, pfn);
}

void hm_pt_free(struct hm_ptcache *pc, uint32_t pfn)
{
	hm_mutex_lock(&pc->lock);
	hm_pt_free_locked(pc, pfn);
	hm_mutex_unlock(&pc->lock);
}

/* Context: pc->lock held. Data frames never come from table blocks. */
void hm_free_frames_locked(struct hm_ptcache *pc, uint32_t pfn, unsigned order)
{
	hm_assert(!(hm_pfn_page(pc->ph, pfn)->flags & PG_PT_SLOT));
	hm_free_pages(pc->ph, pfn, order);
}

void hm_free_frames(struct hm_ptcache *pc, uint32_t pfn, unsigned order)
{
	hm_free_frames_locked(pc, pfn, order);
}

uint64_t hm_ptcache_shrink(struct hm_ptcache *pc)
{
	uint64_t released = 0;

	hm_mutex_lock(&pc->lock);
	for (uint32_t p = pc->free_head; pc->nr_empty_blocks && p != HM_PFN_NONE;) {
		uint32_t blk = blk_of(p);

		if (pc->blk_used[blk] == 0) {
			block_release_locked(pc, blk);
			released += HM_PTRS;
			p = pc->free_head;	/* the list changed under us */
			continue;
		}
		p = hm_pfn_page(pc->ph, p)->lru.next;
	}
	hm_mutex_unlock(&pc->lock);
	return released;
}

void hm_pt_deposit(struct hm_ptcache *pc, uint32_t holder, uint32_t table)
{
	struct hm_ptdesc *h = hm_ptdesc(pc->ph, holder);
	struct hm_ptdesc *t = hm_ptdesc(pc->ph, table);

	hm_assert_int((hm_pfn_page(pc->ph, holder)->flags & PG_TABLE) &&
		      (hm_pfn_page(pc->ph, table)->flags & PG_TABLE));
	hm_assert_int(t->level + 1 == h->level);
	hm_assert_int(t->deposit_next == HM_PFN_NONE);
	t->deposit_next = h->deposit_head;
	h->deposit_head = table;
	h->nr_deposited++;
	hm_add(&pc->nr_deposited, 1);
}

uint32_t hm_pt_withdraw(struct hm_ptcache *pc, uint32_t holder)
{
	struct hm_ptdesc *h = hm_ptdesc(pc->ph, holder);
	uint32_t table = h->deposit_head;

	if (table == HM_PFN_NONE)
		return HM_PFN_NONE;
	struct hm_ptdesc *t = hm_ptdesc(pc->ph, table);
	h->deposit_head = t->deposit_next;
	h->nr_deposited--;
	t->deposit_next = HM_PFN_NONE;
	hm_sub(&pc->nr_deposited, 1);
	return table;
}

/* The one walker behind hm_pt_walk and hm_pt_walk_trace. Inlined into both
 * with @trace constant, so the untraced walk (the MMU's miss path) carries
 * no trace code at all. */
static inline __attribute__((always_inline)) hm_pte_t *
pt_walk(struct hm_phys *ph, uint32_t root, unsigned top, uint64_t va, unsigned *level,
	struct hm_pt_step *trace)
{
	uint32_t table = root;

	for (unsigned l = top;; l--) {
		hm_pte_t *p = (hm_pte_t *)hm_pfn_ptr(ph, table) + hm_level_index(va, l);
		hm_pte_t e = pt_get(p);

		if (trace)
			trace[l] = (struct hm_pt_step){ p, e };
		if (l == 0 || !pt_present(e) || pt_leaf(e, l)) {
			*level = l;
			return p;
		}
		table = pt_pfn(e, l);
	}
}

/* A thread's first walk of protected tables: read access first. Apart, so
 * that the usual walk needs no frame for a call it does not make. */
static __attribute__((noinline)) hm_pte_t *pt_walk_first(struct hm_phys *ph, uint32_t root, unsigned top,
							 uint64_t va, unsigned *level)
{
	hm_ptp_read_prepare();
	return pt_walk(ph, root, top, va, level, NULL);
}

hm_pte_t *hm_pt_walk(struct hm_phys *ph, uint32_t root, unsigned top, uint64_t va, unsigned *level)
{
	if (hm_ptp_read_needed())
		return pt_walk_first(ph, root, top, va, level);
	return pt_walk(ph, root, top, va, level, NULL);
}

hm_pte_t *hm_pt_walk_trace(struct hm_phys *ph, uint32_t root, unsigned top, uint64_t va, unsigned *level,
			   struct hm_pt_step *trace)
{
	hm_ptp_read_ensure();
	return pt_walk(ph, root, top, va, level, trace);
}
