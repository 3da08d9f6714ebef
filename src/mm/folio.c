/* SPDX-License-Identifier: MIT */
/*
 * Folios and their map counts (equations in phys/phys.h).
 *
 * Counts change under the lock of the entry that maps: the ptl of the
 * table holding the leaf, or mm->page_table_lock for a PUD leaf. Different
 * leaves of one folio may sit in different tables, so the counters are
 * updated atomically. The two (mm id, count) slots answer "is this folio
 * mapped by this address space alone?" exactly while at most two address
 * spaces map it; past that the folio is marked maybe-shared until it is
 * unmapped everywhere.
 */
#include "../base/race.h"
#include "folio.h"
#include "folio_split.h"
#include "lru.h"
#include "migrate.h"
#include "reclaim.h"
#include "stat.h"
#include "types.h"
#include "zero.h"

uint32_t hm_folio_head_unmarked(struct hm_phys *ph, uint32_t pfn)
{
	const struct hm_page *pg = hm_pfn_page(ph, pfn);

	/* Without the folio lock: a head's PG_MAYBE_SHARED changes under it,
	 * and a folio split (folio_split.c) rewrites flags and order under
	 * every folio lock. A mapped frame is always a head, a tail, or an
	 * unmarked tail of a huge folio (phys.h); whoever acts on the head
	 * looks it up again under its lock (lock_folio_of). A split marks the
	 * frame (a tail of order 9, or a head of order 0) before it changes
	 * the old head's order, so the second look finds the mark. */
	for (int pass = 0; pass < 2; pass++) {
		if (hm_load_relaxed(&pg->flags) & (PG_HEAD | PG_TAIL))
			break;
		uint32_t head = hm_unmarked_head(ph, pfn);

		if (hm_likely(head != HM_PFN_NONE))
			return head;
	}
	hm_assert_int(hm_load_relaxed(&pg->flags) & (PG_HEAD | PG_TAIL));
	return pfn & ~((1u << hm_load_relaxed(&pg->order)) - 1);
}

/*
 * Take the lock of the folio that @pfn belongs to; its head in *head. The
 * head was looked up without the lock, and a folio split may have moved it
 * by the time we hold it: look again under the lock, and go round if the
 * frame has another head now. Every map count change goes through here.
 */
static inline hm_spin_t *lock_folio_of(struct hm_system *sys, uint32_t pfn, uint32_t *head)
{
	struct hm_phys *ph = &sys->phys;

	for (;;) {
		uint32_t h = hm_folio_head(ph, pfn);
		hm_spin_t *lock = hm_folio_lock(sys, h);

		hm_race_point("folio_lock_of");
		hm_spin_lock(lock);
		if (hm_folio_head(ph, pfn) == h) {
			*head = h;
			return lock;
		}
		hm_spin_unlock(lock);
	}
}

hm_spin_t *hm_lock_folio_of(struct hm_system *sys, uint32_t pfn, uint32_t *head)
{
	return lock_folio_of(sys, pfn, head);
}

/*
 * With swap, the last HM_SWAPIN_RESERVE free frames are for swap-ins: when
 * memory and swap are both full, new memory gets -ENOMEM, but a page in
 * swap can still be read back (and then, clean, dropped again for the next
 * one), so that everything written stays readable.
 */
#define HM_SWAPIN_RESERVE 32u

/*
 * A huge folio is a luxury with a fallback (smaller pages, a split, no
 * collapse): its allocation must also leave this much free above the
 * reserve, swap or not, like the kernel's THP allocations, which fail at
 * the low watermark while 4 KiB ones go on to the min one. Otherwise the
 * 2 MiB page that a write's first byte faults in takes the last free
 * frames, and the same write's next 4 KiB page, or the table it needs,
 * gets -ENOMEM with 544 frames free before the write (fuzz seed
 * 1796230269679163). Moving a folio (migration, compaction) has no such
 * fallback and keeps only the reserve.
 */
#define HM_HUGE_HEADROOM 128u

/* Are fewer than @want frames free? */
static bool free_below(struct hm_system *sys, uint64_t want)
{
	/* The per-CPU caches only add to the shared count, and summing them
	 * reads a line that each CPU writes per fault: only near the end. */
	uint64_t free = hm_load_relaxed(&sys->phys.nr_free) + hm_ptcache_spare(&sys->pc);
	if (free >= want)
		return false;
	free = hm_phys_nr_free(&sys->phys) + hm_ptcache_spare(&sys->pc);

	return free < want;
}

bool hm_below_reserve(struct hm_system *sys, unsigned order)
{
	return hm_swap_enabled(&sys->swap) && free_below(sys, HM_SWAPIN_RESERVE + (1u << order));
}

/* What a new folio of @order must leave free; 0: nothing to check. */
static uint64_t alloc_want(struct hm_system *sys, unsigned order)
{
	uint64_t keep = (hm_swap_enabled(&sys->swap) ? HM_SWAPIN_RESERVE : 0) + (order ? HM_HUGE_HEADROOM : 0);

	return keep ? keep + (1u << order) : 0;
}

static uint32_t folio_alloc(struct hm_mm *mm, unsigned order, bool zero, bool reserve, bool counted, unsigned hot);

/*
 * Direct reclaim, and whether to try the allocation again: yes while it
 * makes progress, and a few times when it does not, since what it freed
 * may have gone to other threads' faults meanwhile, or every folio it
 * looked at was in use (the kernel's no-progress retries, before OOM).
 */
static bool reclaim_again(struct hm_system *sys, unsigned *stalls)
{
	if (hm_reclaim_direct(sys, 1)) {
		*stalls = 0;
		return true;
	}
	return hm_swap_enabled(&sys->swap) && hm_swap_free(&sys->swap) && ++*stalls < 8;
}

/* Reclaim until a new folio of @order would leave the reserve (and a huge
 * one the headroom) free, or fail. */
bool hm_reserve_refill(struct hm_system *sys, unsigned order)
{
	uint64_t want = alloc_want(sys, order);
	unsigned stalls = 0;

	while (want && free_below(sys, want)) {
		/* Partly unmapped huge pages give memory back first. */
		if (hm_thp_shrink(sys, HM_SWAPIN_RESERVE) && hm_ptcache_drain(&sys->pc))
			continue;
		/* Frames that unmaps are giving back, if they are enough, rather
		 * than live pages written to swap (a fault right after a large
		 * munmap swapped out as much as was pending). In a fault that
		 * must not wait here, fail: it waits without mmap_lock and
		 * tries again (hm_fault). Pending tables count here though
		 * not in nr_free_pages: their return may empty a block. */
		if (hm_load_relaxed(&sys->pc.nr_pending) + hm_load_relaxed(&sys->pc.nr_pending_frames) >= want) {
			if (hm_ptcache_drain(&sys->pc) || !hm_drain_was_wanted())
				continue;
			return false;
		}
		if (order || !reclaim_again(sys, &stalls))
			return hm_ptcache_drain(&sys->pc) && !free_below(sys, want);
	}
	return true;
}

uint32_t hm_folio_alloc(struct hm_mm *mm, unsigned order, bool zero)
{
	return folio_alloc(mm, order, zero, false, false, HM_HOT_NONE);
}

/* Frames just allocated become an anonymous folio of @order. */
static void folio_init(struct hm_system *sys, uint32_t pfn, unsigned order)
{
	struct hm_page *head = hm_pfn_page(&sys->phys, pfn);

	head->flags = PG_HEAD;
	head->order = (uint8_t)order;
	hm_pages_mark_tails(&sys->phys, pfn, order);
	hm_anon_add(sys, 1u << order);
}

/* A 2 MiB folio from the idle-zeroing pools (phys/prezero.c), or
 * HM_PFN_NONE. */
static uint32_t prezeroed_alloc(struct hm_mm *mm)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;

	if (!hm_reserve_refill(sys, HM_PMD_ORDER))
		return HM_PFN_NONE;
	uint32_t pfn = hm_prezero_take_block(ph);
	if (pfn == HM_PFN_NONE)
		return pfn;
	folio_init(sys, pfn, HM_PMD_ORDER);
	return pfn;
}

/*
 * A zeroed folio for a fault at @va. A 4 KiB one comes from the per-CPU
 * cache's zeroed frames (buddy.c), which the idle-zeroing pools fill where
 * they have some, else a batch zeroing; a 2 MiB one from the pools where
 * they have some, else it is zeroed here.
 */
uint32_t hm_folio_alloc_fault(struct hm_mm *mm, unsigned order, uint64_t va)
{
	struct hm_phys *ph = mm_phys(mm);
	bool counted = false;
	uint32_t pfn = HM_PFN_NONE;

	if (ph->zpool && order == HM_PMD_ORDER) {
		/* One allocation for the failpoint, wherever it is served:
		 * the buddy allocator's first try below is not hit again. */
		if (hm_fail_hit(&ph->fail))
			return HM_PFN_NONE;
		counted = true;
		pfn = prezeroed_alloc(mm);
	}
	if (pfn == HM_PFN_NONE)
		pfn = folio_alloc(mm, order, true, false, counted, (unsigned)(va & (HM_PAGE_SIZE - 1)));
	/* Zeroed with streaming stores (a while ago, or just now in a
	 * batch): the line the access writes is in no cache. Fetch it for
	 * ownership now, while the rest of the fault runs. */
	if (pfn != HM_PFN_NONE)
		__builtin_prefetch((uint8_t *)hm_pfn_ptr(ph, pfn) + (va & ((HM_PAGE_SIZE << order) - 1)), 1);
	return pfn;
}

uint32_t hm_folio_alloc_swapin(struct hm_mm *mm, unsigned order)
{
	return folio_alloc(mm, order, false, true, false, HM_HOT_NONE);
}

/* @counted: the caller passed the failpoint for this allocation already;
 * @hot: where its first write lands, or HM_HOT_NONE (hm_alloc_pages_hot). */
static uint32_t folio_alloc(struct hm_mm *mm, unsigned order, bool zero, bool reserve, bool counted, unsigned hot)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;

	unsigned stalls = 0, zf = zero ? HM_ALLOC_ZERO : 0;
	bool compacted = false;

	if (!reserve && !hm_reserve_refill(sys, order))
		return HM_PFN_NONE;
	uint32_t pfn = hm_alloc_pages_hot(ph, 0, order, zf | (counted ? HM_ALLOC_COUNTED : 0), hot);

	/* Frames on their way back from unmaps, then empty page-table blocks,
	 * are the memory we can get back. */
	if (pfn == HM_PFN_NONE && hm_ptcache_drain(&sys->pc))
		pfn = hm_alloc_pages(ph, 0, order, zf);
	if (pfn == HM_PFN_NONE && hm_ptcache_shrink(&sys->pc))
		pfn = hm_alloc_pages(ph, 0, order, zf);
	/* Then the unmapped parts of partly unmapped huge pages: they come
	 * back after a grace period, which the drain waits for (or, in a
	 * fault that must not wait under mmap_lock, asks it to). */
	if (pfn == HM_PFN_NONE && hm_thp_shrink(sys, 1u << order) && hm_ptcache_drain(&sys->pc))
		pfn = hm_alloc_pages(ph, 0, order, zf);
	/* Then move folios out of the way (compaction): for huge pages only,
	 * whose fallback to smaller ones costs more than a few copies. */
	for (unsigned n = 0; pfn == HM_PFN_NONE && order >= HM_PMD_ORDER && n < ph->nr_nodes; n++)
		compacted = (pfn = hm_compact_alloc(sys, n, order)) != HM_PFN_NONE;
	/* Then swap. Only for 4 KiB pages: a huge page that cannot be had
	 * falls back to smaller ones, as the kernel's THP allocations do not
	 * reclaim hard either. (Free slots of partly used page-table blocks
	 * are not lent out as data: table blocks hold only tables.) */
	while (pfn == HM_PFN_NONE && order == 0 && reclaim_again(sys, &stalls))
		pfn = hm_alloc_pages(ph, 0, order, zf);
	if (pfn == HM_PFN_NONE)
		return HM_PFN_NONE;
	if (zero && compacted)
		hm_zero_pages(ph, pfn, order);
	folio_init(sys, pfn, order);
	return pfn;
}

/* A folio that was never mapped (a fault lost a race, or gave up). */
void hm_folio_free_unmapped(struct hm_mm *mm, uint32_t head)
{
	struct hm_phys *ph = mm_phys(mm);
	unsigned order = hm_pfn_page(ph, head)->order;

	hm_assert(hm_pfn_page(ph, head)->large_mapcount == 0);
	hm_anon_add(mm->sys, -((uint64_t)1 << order));
	hm_free_frames(&mm->sys->pc, head, order);
}

/*
 * The two (mm, count) slots. A mapping by an mm that has no slot while both
 * are taken is not tracked, and marks the folio maybe-shared. While it is,
 * a slot's count never exceeds its mm's true count (a slot taken late
 * misses older mappings; a removal it cannot place is taken from the slot
 * of its mm, clamped at 0), so a slot whose count equals large_mapcount
 * proves that its mm maps all of the folio: then the mark is cleared.
 */
static inline void slots_add(struct hm_page *h, uint32_t id, int n)
{
	for (int s = 0; s < 2; s++) {
		if (h->mm_count[s] && h->mm_id[s] == id) {
			h->mm_count[s] += n;
			return;
		}
	}
	for (int s = 0; s < 2; s++) {
		if (!h->mm_count[s]) {
			h->mm_id[s] = id;
			h->mm_count[s] = n;
			return;
		}
	}
	__atomic_or_fetch(&h->flags, PG_MAYBE_SHARED, __ATOMIC_RELAXED);
}

static void slots_sub(struct hm_page *h, uint32_t id, int n)
{
	bool found = false;

	for (int s = 0; s < 2 && !found; s++) {
		if (h->mm_count[s] && h->mm_id[s] == id) {
			found = true;
			h->mm_count[s] -= n;
			if (h->mm_count[s] < 0) {
				hm_assert(hm_load_relaxed(&h->flags) & PG_MAYBE_SHARED);
				h->mm_count[s] = 0;
			}
		}
	}
	hm_assert(found || (hm_load_relaxed(&h->flags) & PG_MAYBE_SHARED));
	if (!(hm_load_relaxed(&h->flags) & PG_MAYBE_SHARED))
		return;
	for (int s = 0; s < 2; s++) {
		if (h->mm_count[s] == h->large_mapcount) {
			__atomic_and_fetch(&h->flags, ~PG_MAYBE_SHARED, __ATOMIC_RELAXED);
			h->mm_count[!s] = 0;
		}
	}
}

/* The counter that a leaf of @level at @pfn adds to (see phys.h). */
static int32_t *leaf_counter(struct hm_phys *ph, struct hm_page *h, uint32_t pfn, unsigned level)
{
	if (level == 0)
		return &hm_pfn_page(ph, pfn)->mapcount;
	if (level * HM_PMD_ORDER == h->order)
		return &h->entire_mapcount;
	hm_assert(level == 1 && h->order == HM_PUD_ORDER);
	return &hm_pfn_page(ph, pfn)->pmd_mapcount;
}

/* Descriptors are prefetched this many pages ahead. */
#define ADD_PTE_PREFETCH 16

/*
 * One more PTE map of each page @pfn[0..nr) (fork: the pages of one table,
 * in order). Consecutive pages of one folio are counted in one step, and
 * consecutive folios that share a lock under one hold of it: while we hold
 * any folio lock no folio split is under way (it takes them all), so the
 * head of the next page, looked up under ours, is its head, and if its lock
 * is ours, we hold the right one. A 4 KiB folio (a head of order 0; a
 * marked tail has its folio's order, and an unmarked tail of a huge folio
 * has order 0 but no PG_HEAD) in the group whose lock we hold needs not
 * even the lookup.
 */
void hm_folio_add_pte_maps(struct hm_mm *mm, const uint32_t *pfn, unsigned nr)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	hm_spin_t *lock = NULL;
	uint32_t group = UINT32_MAX;	/* the frames whose lock we hold */
	unsigned ahead = 0;		/* pfn[ahead] is the next to prefetch */

	for (unsigned i = 0; i < nr;) {
		while (ahead < nr && ahead < i + ADD_PTE_PREFETCH)
			__builtin_prefetch(hm_pfn_page(ph, pfn[ahead++]), 1);
		uint32_t head = pfn[i];
		struct hm_page *h = hm_pfn_page(ph, head);
		unsigned n = 1;

		if (hm_load_relaxed(&h->order) || !(hm_load_relaxed(&h->flags) & PG_HEAD) ||
		    head / HM_FOLIO_LOCK_GROUP != group) {
			if (lock) {
				head = hm_folio_head(ph, pfn[i]);
				if (hm_folio_lock(sys, head) != lock) {
					hm_spin_unlock(lock);
					lock = NULL;
				}
			}
			if (!lock)
				lock = lock_folio_of(sys, pfn[i], &head);
			group = head / HM_FOLIO_LOCK_GROUP;
			h = hm_pfn_page(ph, head);
		}
		hm_assert_int(hm_spin_held(lock) && lock == hm_folio_lock(sys, head));
		hm_assert(!(hm_load_relaxed(&h->flags) & PG_HUGE_ZERO));	/* uncounted: zero.c */
		/* Every writer of these counts holds the folio lock: a load and
		 * a store, not a locked add (readers without it load them whole). */
		if (h->order) {
			uint32_t end = head + (1u << h->order);

			while (i + n < nr && pfn[i + n] == pfn[i] + n && pfn[i + n] < end)
				n++;
			for (unsigned k = i; k < i + n; k++) {
				int32_t *c = &hm_pfn_page(ph, pfn[k])->mapcount;

				__atomic_store_n(c, hm_load_relaxed(c) + 1, __ATOMIC_RELAXED);
			}
		} else {
			__atomic_store_n(&h->mapcount, hm_load_relaxed(&h->mapcount) + 1, __ATOMIC_RELAXED);
		}
		int32_t was = hm_load_relaxed(&h->large_mapcount);

		__atomic_store_n(&h->large_mapcount, was + (int32_t)n, __ATOMIC_RELAXED);
		if (was == 0 && !(hm_load_relaxed(&h->flags) & PG_ISOLATED))
			hm_lru_add(sys, head, false);
		slots_add(h, mm->slot_id, (int)n);
		i += n;
	}
	if (lock)
		hm_spin_unlock(lock);
}

void hm_folio_add_map(struct hm_mm *mm, uint32_t pfn, unsigned level)
{
	struct hm_phys *ph = mm_phys(mm);
	uint32_t head;
	hm_spin_t *lock = hm_lock_folio_of(mm->sys, pfn, &head);
	struct hm_page *h = hm_pfn_page(ph, head);

	hm_assert(!(hm_load_relaxed(&h->flags) & PG_HUGE_ZERO));	/* uncounted: zero.c */
	hm_add(leaf_counter(ph, h, pfn, level), 1);
	/* The first mapping puts it on the LRU: before that, reclaim could
	 * not tell a new folio from one on its way out. */
	if (hm_add(&h->large_mapcount, 1) == 1 && !(hm_load_relaxed(&h->flags) & PG_ISOLATED)) {
		if (h->order)
			hm_lru_add(mm->sys, head, false);
		else
			hm_lru_add_new(mm->sys, head);
	}
	slots_add(h, mm->slot_id, 1);
	hm_spin_unlock(lock);
	hm_leaf_add(mm, level, 1);
}

/*
 * hm_folio_add_map for the first mapping of a new 4 KiB folio, by a PTE:
 * no other thread can reach the folio yet (it is in no table, on no LRU
 * list, in no batch), so its counts are written without the folio lock
 * and without atomic read-modify-writes, as the kernel's
 * folio_add_new_anon_rmap. Whoever finds it later finds it through the
 * LRU batch (its lock publishes these stores) or the table (its ptl).
 * Context: the ptl of the table the leaf goes into.
 */
void hm_folio_add_new_map(struct hm_mm *mm, uint32_t head)
{
	struct hm_page *h = hm_pfn_page(mm_phys(mm), head);

	hm_assert(h->order == 0 && h->flags == PG_HEAD && !h->large_mapcount && !h->mapcount &&
		  !h->mm_count[0] && !h->mm_count[1]);
	h->mapcount = 1;
	h->large_mapcount = 1;
	h->mm_id[0] = mm->slot_id;
	h->mm_count[0] = 1;
	hm_lru_add_fresh(mm->sys, head);
	hm_leaf_add(mm, 0, 1);
}

static int32_t page_maps_locked(struct hm_phys *ph, struct hm_page *h, uint32_t pfn);

/* Is a page of the large folio at @head mapped by nothing? Context: the
 * folio lock. */
static bool any_unmapped_locked(struct hm_phys *ph, struct hm_page *h, uint32_t head)
{
	if (h->entire_mapcount)
		return false;
	for (uint32_t i = 0; i < (1u << h->order); i++)
		if (page_maps_locked(ph, h, head + i) == 0)
			return true;
	return false;
}

bool hm_folio_map_cached(struct hm_mm *mm, uint32_t pfn, unsigned level, uint64_t slot)
{
	struct hm_phys *ph = mm_phys(mm);
	uint32_t head = pfn & ~((1u << HM_PMD_ORDER) - 1);
	bool ok = false;

	/* The page may be a folio's head or one of its pages (a tail of a
	 * 2 MiB folio says so or not: phys.h, "Tails"); the folio's
	 * descriptors are stable under its lock while it is mapped, and are
	 * checked there. */
	if (hm_load_relaxed(&hm_pfn_page(ph, pfn)->flags) & PG_HEAD)
		head = pfn;
	struct hm_page *h = hm_pfn_page(ph, head);
	hm_spin_t *lock = hm_folio_lock(mm->sys, head);

	hm_spin_lock(lock);
	uint32_t f = hm_load_relaxed(&h->flags);
	if ((f & (PG_HEAD | PG_SWAPCACHE)) == (PG_HEAD | PG_SWAPCACHE) && !(f & PG_ISOLATED) &&
	    h->large_mapcount > 0 && h->order <= HM_PMD_ORDER && pfn - head < (1u << h->order) &&
	    h->swap + (pfn - head) == slot && (level == 0 || (h->order == HM_PMD_ORDER && pfn == head))) {
		hm_add(leaf_counter(ph, h, pfn, level), 1);
		hm_add(&h->large_mapcount, 1);
		slots_add(h, mm->slot_id, 1);
		/* Mapped again from the swap cache, a huge page queued as partly
		 * mapped may be whole again: then it leaves the queue. */
		if (hm_deferred_partial_locked(mm->sys, head) && !any_unmapped_locked(ph, h, head))
			hm_deferred_del_locked(mm->sys, head);
		ok = true;
	}
	hm_spin_unlock(lock);
	if (ok)
		hm_leaf_add(mm, level, 1);
	return ok;
}

bool hm_folio_alone_locked(const struct hm_page *h, uint32_t id)
{
	for (int s = 0; s < 2; s++)
		if (!(hm_load_relaxed(&h->flags) & PG_MAYBE_SHARED) && h->mm_count[s] && h->mm_id[s] == id)
			return h->mm_count[s] == h->large_mapcount;
	return false;
}

static int32_t page_maps_locked(struct hm_phys *ph, struct hm_page *h, uint32_t pfn);

/*
 * Did taking a leaf of @level at @pfn away leave a page that it mapped
 * mapped by nothing? Context: the folio lock, h->order > 0. A 1 GiB leaf
 * looks at every page but skips the chunks still mapped whole.
 */
static bool left_unmapped_locked(struct hm_phys *ph, struct hm_page *h, uint32_t pfn, unsigned level)
{
	if (h->entire_mapcount)
		return false;
	if (level == 0)
		return page_maps_locked(ph, h, pfn) == 0;
	uint32_t first = level * HM_PMD_ORDER == h->order ? hm_page_pfn(ph, h) : pfn;

	for (uint32_t c = first; c < first + (1u << (level * HM_PMD_ORDER)); c += HM_PTRS) {
		struct hm_page *cp = hm_pfn_page(ph, c);

		if (h->order == HM_PUD_ORDER && h->pmd_all + cp->pmd_mapcount > 0)
			continue;
		for (uint32_t i = 0; i < HM_PTRS; i++)
			if (cp->pte_all + cp[i].mapcount == 0)
				return true;
	}
	return false;
}

enum hm_unmapped hm_folio_remove_map(struct hm_mm *mm, uint32_t pfn, unsigned level, bool pin,
				     uint32_t *headp, bool *run_left)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	uint32_t head;
	hm_spin_t *lock = hm_lock_folio_of(sys, pfn, &head);
	struct hm_page *h = hm_pfn_page(ph, head);
	enum hm_unmapped r = HM_FOLIO_MAPPED;

	hm_assert(!(hm_load_relaxed(&h->flags) & PG_HUGE_ZERO));
	hm_sub(leaf_counter(ph, h, pfn, level), 1);
	int left = hm_sub(&h->large_mapcount, 1);
	slots_sub(h, mm->slot_id, 1);
	/* Only another mm could reuse the folio in place under our stale
	 * translations; one that maps it later can only be our child, and fork
	 * waits for them. */
	if (left && pin && !hm_folio_alone_locked(h, mm->slot_id)) {
		hm_add(hm_pin_slot(ph, head), 1);
		r = HM_FOLIO_PINNED;
	}
	/* A huge page left partly mapped waits on the deferred split queue
	 * until memory is short (or the caller queues it at the end of its
	 * run); one that is unmapped leaves the queue before it is freed. */
	if (left && h->order && !hm_deferred_partial_locked(sys, head) &&
	    left_unmapped_locked(ph, h, pfn, level)) {
		if (run_left)
			*run_left = true;
		else
			hm_deferred_add_locked(sys, head, true);
	} else if (!left && (hm_load_relaxed(&h->flags) & PG_DEFERRED)) {
		hm_deferred_del_locked(sys, head);
	}
	/* The last mapping: the folio goes, unless reclaim holds it, which
	 * then frees it itself. */
	if (!left && !(hm_load_relaxed(&h->flags) & PG_ISOLATED)) {
		hm_lru_del_locked(sys, head);
		hm_folio_drop_swapcache_locked(sys, h);
		r = HM_FOLIO_UNMAPPED;
	}
	unsigned order = h->order;
	hm_spin_unlock(lock);
	hm_leaf_add(mm, level, (uint64_t)-1);
	*headp = head;
	if (r == HM_FOLIO_UNMAPPED)
		hm_anon_add(sys, -((uint64_t)1 << order));
	return r;
}

void hm_folio_defer_partial(struct hm_system *sys, uint32_t pfn)
{
	struct hm_phys *ph = &sys->phys;
	uint32_t head;
	hm_spin_t *lock = hm_lock_folio_of(sys, pfn, &head);
	struct hm_page *h = hm_pfn_page(ph, head);

	if (h->order && h->large_mapcount > 0 && !hm_deferred_partial_locked(sys, head))
		hm_deferred_add_locked(sys, head, true);
	hm_spin_unlock(lock);
}

static inline struct hm_page *chunk_of(struct hm_phys *ph, uint32_t pfn)
{
	return hm_pfn_page(ph, pfn & ~(HM_PTRS - 1));
}

/*
 * A leaf of @level at @pfn becomes 512 leaves of @level - 1 (@split), or
 * back (the 512 leaves of @level - 1 in this mm that map the pages of the
 * chunk at @pfn, or the chunks of a 1 GiB folio, become one leaf: collapse
 * by refold). O(1) in descriptors either way: the split's new leaves are
 * counted by pte_all or pmd_all (see phys.h), not page by page, and taking
 * one from pte_all (pmd_all) takes one map from each page (chunk), each of
 * which had ours. A refold returns false, changing nothing, if the folio
 * was split meanwhile (the deferred split needs no mmap_lock).
 */
static bool change_leaf_level(struct hm_mm *mm, uint32_t pfn, unsigned level, bool split)
{
	struct hm_system *sys = mm->sys;
	struct hm_phys *ph = &sys->phys;
	int d = split ? 1 : -1;
	uint32_t head;

	hm_assert(level == 1 || level == 2);
	hm_spin_t *lock = hm_lock_folio_of(sys, pfn, &head);
	struct hm_page *h = hm_pfn_page(ph, head);

	hm_assert(!(hm_load_relaxed(&h->flags) & PG_HUGE_ZERO));
	if (h->order < level * HM_PMD_ORDER) {
		hm_assert(!split);
		hm_spin_unlock(lock);
		return false;
	}
	hm_add(leaf_counter(ph, h, pfn, level), -d);
	hm_add(level == 2 ? &h->pmd_all : &chunk_of(ph, pfn)->pte_all, d);
	hm_add(&h->large_mapcount, d * (int)(HM_PTRS - 1));
	if (split)
		slots_add(h, mm->slot_id, HM_PTRS - 1);
	else
		slots_sub(h, mm->slot_id, HM_PTRS - 1);
	/* Mapped by PTEs, its zero-filled pages can be dropped: a candidate
	 * for the underused shrinker, when it is on. Whole again, it leaves
	 * the queue, as partly mapped or as a candidate (the shrinker splits
	 * only folios mapped by PTEs). */
	if (split && level == 1 && h->order == HM_PMD_ORDER && !(hm_load_relaxed(&h->flags) & PG_DEFERRED) &&
	    sys->cfg.khugepaged_max_ptes_none < HM_PTRS - 1)
		hm_deferred_add_locked(sys, head, false);
	else if (!split && (hm_load_relaxed(&h->flags) & PG_DEFERRED) && !any_unmapped_locked(ph, h, head))
		hm_deferred_del_locked(sys, head);
	hm_spin_unlock(lock);
	/* Added modulo 2^64: a negative step takes away. */
	uint64_t upper = (uint64_t)(int64_t)-d, lower = (uint64_t)(int64_t)(d * (int)HM_PTRS);

	hm_leaf_add(mm, level, upper);
	hm_leaf_add(mm, level - 1, lower);
	return true;
}

void hm_folio_split_map(struct hm_mm *mm, uint32_t pfn, unsigned level)
{
	change_leaf_level(mm, pfn, level, true);
}

/* Leaves that map the 4 KiB page @pfn (see phys.h). Context: the folio lock. */
static int32_t page_maps_locked(struct hm_phys *ph, struct hm_page *h, uint32_t pfn)
{
	int32_t n = hm_pfn_page(ph, pfn)->mapcount;

	if (h->order) {
		struct hm_page *c = chunk_of(ph, pfn);

		n += c->pte_all;
		hm_race_point("cow_reuse_counts");
		n += h->entire_mapcount;
		if (h->order == HM_PUD_ORDER)
			n += h->pmd_all + c->pmd_mapcount;
	}
	return n;
}

unsigned hm_page_mapcount(struct hm_system *sys, uint32_t pfn)
{
	struct hm_phys *ph = &sys->phys;

	if (hm_is_huge_zero(sys, pfn))
		return 0;	/* its mappings are not counted (zero.c) */
	uint32_t head;
	hm_spin_t *lock = hm_lock_folio_of(sys, pfn, &head);
	int32_t n = page_maps_locked(ph, hm_pfn_page(ph, head), pfn);
	hm_spin_unlock(lock);
	return (unsigned)n;
}

/*
 * Leaves, in all mms, that map any part of what a leaf of @level at @pfn
 * maps. Context: the folio lock. An mm maps a folio only at its one
 * virtual address (there is no mremap), so a 4 KiB page, a 2 MiB chunk or
 * a whole folio mapped by a leaf of its own size is mapped by nothing else
 * of that mm: a result of 1 means "this leaf alone", for any number of mms.
 */
static int32_t leaf_maps_locked(struct hm_phys *ph, struct hm_page *h, uint32_t pfn, unsigned level)
{
	if (level == 0)
		return page_maps_locked(ph, h, pfn);
	if (level == 2 || h->order == HM_PMD_ORDER)
		return h->large_mapcount;
	/* A 2 MiB chunk of a 1 GiB folio: its PMD maps, the folio's PUD maps,
	 * and the PTE maps of its 512 pages. */
	struct hm_page *c = chunk_of(ph, pfn);
	int32_t n = h->entire_mapcount + h->pmd_all + c->pmd_mapcount + c->pte_all * (int32_t)HM_PTRS;

	for (unsigned i = 0; i < HM_PTRS; i++)
		n += c[i].mapcount;
	return n;
}

/* Does a swap entry still name a slot that this swap-cache folio holds
 * for the pages a leaf of @level at @pfn maps? Then those pages are shared
 * with that entry's mm, which will map them from the cache: copy. Context:
 * the folio lock. */
static bool swap_shared_locked(struct hm_system *sys, struct hm_page *h, uint32_t head, uint32_t pfn,
			       unsigned level)
{
	if (!(hm_load_relaxed(&h->flags) & PG_SWAPCACHE))
		return false;
	uint32_t first = level ? 0 : pfn - head, n = level ? (1u << h->order) : 1;

	for (uint32_t i = first; i < first + n; i++)
		if (hm_swap_word(&sys->swap, h->swap + i) & HM_SWP_COUNT_MASK)
			return true;
	return false;
}

enum hm_reuse hm_leaf_reuse(struct hm_mm *mm, uint32_t pfn, unsigned level)
{
	struct hm_phys *ph = mm_phys(mm);

	/* Shared by everyone, whatever the counts say: never written in place,
	 * so never exclusive, and mprotect leaves it read-only. */
	if (hm_is_huge_zero(mm->sys, pfn))
		return HM_COPY;
	uint32_t head;
	hm_spin_t *lock = hm_lock_folio_of(mm->sys, pfn, &head);
	enum hm_reuse r = HM_COPY;

	if (leaf_maps_locked(ph, hm_pfn_page(ph, head), pfn, level) == 1 &&
	    !swap_shared_locked(mm->sys, hm_pfn_page(ph, head), head, pfn, level))
		r = hm_load(hm_pin_slot(ph, head)) ? HM_REUSE_LATER : HM_REUSE;
	hm_spin_unlock(lock);
	return r;
}

bool hm_folio_refold_map(struct hm_mm *mm, uint32_t pfn, unsigned level)
{
	return change_leaf_level(mm, pfn, level, false);
}
