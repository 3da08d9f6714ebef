/* SPDX-License-Identifier: MIT */
/*
 * The deferred split queue and the two THP shrinkers, after the kernel's
 * deferred_split_folio() and deferred_split_scan().
 *
 * A huge page that an unmap leaves partly mapped keeps all its frames: a
 * split then, under the unmapper's table locks, would cost it 512
 * descriptors for memory nobody asked back. It is queued instead
 * (thp_deferred_split_page, once per folio), and split when memory is
 * short: hm_thp_shrink(), the first thing reclaim does, and what an
 * allocation that finds nothing free tries (hm_folio_alloc). The split
 * frees its unmapped parts (thp_split_page).
 *
 * The underused shrinker: while khugepaged_max_ptes_none < 511, a 2 MiB
 * folio whose PMD mapping is split to PTEs is queued too, as a candidate.
 * Under pressure, one with more than khugepaged_max_ptes_none zero-filled
 * pages is split and those pages dropped (thp_underused_split_page): they
 * read as zero again through a fresh fault. Only PTE-mapped folios: a PMD
 * leaf would have to be split first, under locks we do not take here.
 *
 * The queue is a doubly-linked list of heads, threaded through each
 * folio's first tail page (hm_page.deferred), which a tail does not use
 * otherwise; PG_DEFERRED on the head says it is on it. Changed under the
 * folio's lock and sys->deferred_lock (innermost; queuing happens under
 * table locks, so it never allocates), read under either.
 *
 * A shrinker takes a folio off the front (moving it to the back) under
 * deferred_lock alone, and must then take folio locks, or mmap_locks,
 * before it can look at the folio, which meanwhile may have been unmapped
 * and freed. It claims the folio (sys->deferred_claim); leaving the queue
 * drops the claim, and a folio is freed only after it left the queue. So a
 * claim that still holds under the folio's lock proves that the folio is
 * the one queued, and alive.
 */
#include <stdlib.h>

#include "anon.h"
#include "check.h"
#include "folio.h"
#include "folio_split.h"
#include "stat.h"
#include "table.h"
#include "types.h"
#include "unmap.h"

static struct hm_page *link_of(struct hm_system *sys, uint32_t head)
{
	return hm_pfn_page(&sys->phys, head + 1);
}

static void add_locked(struct hm_system *sys, uint32_t head, bool partial, bool count);

void hm_deferred_add_locked(struct hm_system *sys, uint32_t head, bool partial)
{
	add_locked(sys, head, partial, true);
}

/* A migrated folio takes its old frames' place on the queue; it was
 * counted when it first joined. */
void hm_deferred_readd_locked(struct hm_system *sys, uint32_t head, bool partial)
{
	add_locked(sys, head, partial, false);
}

static void add_locked(struct hm_system *sys, uint32_t head, bool partial, bool count)
{
	hm_assert_locked(hm_folio_lock(sys, head));
	struct hm_page *h = hm_pfn_page(&sys->phys, head), *l = h + 1;
	bool counted = false;

	hm_assert(folio_order(h));
	hm_spin_lock(&sys->deferred_lock);
	if (!(hm_load_relaxed(&h->flags) & PG_DEFERRED)) {
		l->deferred.next = HM_PFN_NONE;
		l->deferred.prev = sys->deferred_last;
		l->deferred.partial = 0;
		if (sys->deferred_last != HM_PFN_NONE)
			link_of(sys, sys->deferred_last)->deferred.next = head;
		else
			sys->deferred_first = head;
		sys->deferred_last = head;
		__atomic_or_fetch(&h->flags, PG_DEFERRED, __ATOMIC_RELAXED);
		hm_add(&sys->nr_deferred, 1);
	}
	if (partial && !l->deferred.partial) {
		l->deferred.partial = 1;
		counted = true;
	}
	hm_spin_unlock(&sys->deferred_lock);
	if (counted && count)
		hm_count(sys, HM_STAT_thp_deferred_split_page);
}

/* Context: deferred_lock. */
static void unlink_locked(struct hm_system *sys, uint32_t head)
{
	struct hm_page *l = link_of(sys, head);

	if (l->deferred.prev != HM_PFN_NONE)
		link_of(sys, l->deferred.prev)->deferred.next = l->deferred.next;
	else
		sys->deferred_first = l->deferred.next;
	if (l->deferred.next != HM_PFN_NONE)
		link_of(sys, l->deferred.next)->deferred.prev = l->deferred.prev;
	else
		sys->deferred_last = l->deferred.prev;
}

void hm_deferred_del_locked(struct hm_system *sys, uint32_t head)
{
	hm_assert_locked(hm_folio_lock(sys, head));
	struct hm_page *h = hm_pfn_page(&sys->phys, head), *l = h + 1;

	hm_spin_lock(&sys->deferred_lock);
	hm_assert(hm_load_relaxed(&h->flags) & PG_DEFERRED);
	unlink_locked(sys, head);
	if (sys->deferred_claim == head)
		sys->deferred_claim = HM_PFN_NONE;
	l->deferred.next = l->deferred.prev = l->deferred.partial = 0;
	__atomic_and_fetch(&h->flags, ~(uint32_t)PG_DEFERRED, __ATOMIC_RELAXED);
	hm_sub(&sys->nr_deferred, 1);
	hm_spin_unlock(&sys->deferred_lock);
}

bool hm_deferred_partial_locked(struct hm_system *sys, uint32_t head)
{
	hm_assert_locked(hm_folio_lock(sys, head));
	struct hm_page *h = hm_pfn_page(&sys->phys, head);

	return (hm_load_relaxed(&h->flags) & PG_DEFERRED) && h[1].deferred.partial;
}

/*
 * Move folios from the front of the queue to the back, up to *budget of
 * them, until one that is partly mapped (@partial) or a mere candidate
 * (!@partial) comes up: claim it and return its head.
 */
static uint32_t pick(struct hm_system *sys, bool partial, uint64_t *budget)
{
	uint32_t found = HM_PFN_NONE;

	hm_spin_lock(&sys->deferred_lock);
	while (*budget && sys->deferred_first != HM_PFN_NONE) {
		uint32_t f = sys->deferred_first;
		bool kind = link_of(sys, f)->deferred.partial;

		(*budget)--;
		if (f != sys->deferred_last) {
			unlink_locked(sys, f);
			link_of(sys, f)->deferred.next = HM_PFN_NONE;
			link_of(sys, f)->deferred.prev = sys->deferred_last;
			link_of(sys, sys->deferred_last)->deferred.next = f;
			sys->deferred_last = f;
		}
		if (kind == partial) {
			found = f;
			break;
		}
	}
	sys->deferred_claim = found;
	hm_spin_unlock(&sys->deferred_lock);
	return found;
}

/* Is @head still the folio claimed, on the queue and alive? Context: its
 * folio lock (or all of them). */
static bool claim_holds(struct hm_system *sys, uint32_t head)
{
	hm_assert_locked(hm_folio_lock(sys, head));
	hm_spin_lock(&sys->deferred_lock);
	bool r = sys->deferred_claim == head;
	hm_spin_unlock(&sys->deferred_lock);
	return r;
}

static void unclaim(struct hm_system *sys)
{
	hm_spin_lock(&sys->deferred_lock);
	sys->deferred_claim = HM_PFN_NONE;
	hm_spin_unlock(&sys->deferred_lock);
}

/* Split the claimed folio @head if it can be. Context: split_lock. */
static bool split_claimed(struct hm_system *sys, uint32_t head, struct hm_gather *g,
			  struct hm_split_result *res)
{
	bool done = false;

	if (!hm_gather_room(g, HM_PTRS))
		hm_gather_next(g);
	hm_folio_lock_all(sys);
	if (claim_holds(sys, head))
		done = hm_folio_split_locked(sys, head, g, res);
	hm_folio_unlock_all(sys);
	return done;
}

/* The deferred split proper: partly mapped folios, until @want frames are
 * freed. A folio that cannot be split now stays queued. */
static uint64_t split_partial(struct hm_system *sys, struct hm_gather *g, uint64_t want)
{
	uint64_t freed = 0, budget = hm_load_relaxed(&sys->nr_deferred);
	uint32_t head;

	while (freed < want && (head = pick(sys, true, &budget)) != HM_PFN_NONE) {
		struct hm_split_result res = { 0, 0 };

		split_claimed(sys, head, g, &res);
		freed += res.freed;
		budget += res.queued;	/* a 1 GiB folio's partly mapped parts */
	}
	return freed;
}

/* ---- The underused shrinker ------------------------------------------- */

struct uw_leaf {
	struct hm_mm *mm;
	uint64_t va;
	bool wp;		/* we took its write permission away */
};

struct underused {
	struct hm_system *sys;
	uint32_t head;
	uint64_t index;		/* of the folio's first page */
	struct hm_mm **mms;	/* its family's members, write-locked */
	unsigned nr_mms;
	struct uw_leaf *leaf;	/* every leaf that maps the folio */
	uint64_t nr_leaf, cap_leaf;
	bool zero[HM_PTRS];
	unsigned nr_zero;
};

/*
 * A first look, before anything is write-protected: threads may be
 * writing to the pages through their TLBs. Its answer only decides
 * whether the real look (after a grace period) is worth it; that read
 * races with those writes by design, so ThreadSanitizer is told not to
 * watch it.
 */
__attribute__((noinline, no_sanitize("thread")))
static unsigned count_zero_racy(const uint64_t *p)
{
	unsigned n = 0;

	for (unsigned i = 0; i < HM_PTRS; i++, p += HM_PAGE_SIZE / 8) {
		unsigned w = 0;

		while (w < HM_PAGE_SIZE / 8 && !p[w])
			w++;
		n += w == HM_PAGE_SIZE / 8;
	}
	return n;
}

static bool page_zero(const uint64_t *p)
{
	for (unsigned w = 0; w < HM_PAGE_SIZE / 8; w++)
		if (p[w])
			return false;
	return true;
}

static void unlock_family(struct underused *u)
{
	while (u->nr_mms)
		hm_up_write(&u->mms[--u->nr_mms]->mmap_lock);
	free(u->mms);
	u->mms = NULL;
}

/*
 * Write-lock every member of family @avid, or none. Out of the lock order
 * (a fault may call us with an mmap_lock held), so only with trylocks:
 * false if any is busy, or held by this thread. av->lock, held while we
 * try, keeps every member from leaving and so the family from being freed
 * (taken with a trylock too: it comes before sys->av_lock).
 */
static bool lock_family(struct underused *u, uint32_t avid)
{
	struct hm_system *sys = u->sys;
	struct hm_anon_vma *av = NULL;
	bool ok = false;

	hm_mutex_lock(&sys->av_lock);
	if (avid < sys->nr_avs)
		av = sys->avs[avid];
	if (av && pthread_mutex_trylock(&av->lock))
		av = NULL;
	if (av && !av->nr) {	/* its last member left: being freed */
		pthread_mutex_unlock(&av->lock);
		av = NULL;
	}
	hm_mutex_unlock(&sys->av_lock);
	if (!av)
		return false;
	u->mms = hm_malloc(&sys->phys.fail, av->nr * sizeof(*u->mms));
	for (uint32_t i = 0; u->mms && i < av->nr; i++) {
		if (!hm_down_write_trylock(&av->members[i].mm->mmap_lock))
			break;
		u->mms[u->nr_mms++] = av->members[i].mm;
	}
	ok = u->mms && u->nr_mms == av->nr;
	hm_mutex_unlock(&av->lock);
	if (!ok)
		unlock_family(u);
	return ok;
}

static void collect_leaf(struct hm_mm *mm, uint64_t va, unsigned level, void *arg)
{
	struct underused *u = arg;

	hm_assert(level == 0);
	if (u->nr_leaf < u->cap_leaf)
		u->leaf[u->nr_leaf++] = (struct uw_leaf){ mm, va, false };
}

/* The PTE of @l and its lock. Context: the mm's mmap_lock for writing. */
static hm_pte_t *leaf_slot(struct underused *u, const struct uw_leaf *l, hm_spin_t **lock)
{
	struct hm_phys *ph = &u->sys->phys;
	unsigned level;
	hm_pte_t *slot = hm_pt_walk(ph, l->mm->root, u->sys->top, l->va, &level);

	hm_assert(level == 0);
	*lock = hm_mm_table_lock(l->mm, hm_slot_table(ph, slot));
	return slot;
}

static unsigned page_of(const struct underused *u, const struct uw_leaf *l)
{
	return (unsigned)((l->va >> HM_PAGE_SHIFT) - u->index);
}

/*
 * Take write permission from every leaf of the folio, then wait a grace
 * period: no write is under way through an old translation, and none can
 * start (a write fault needs an mmap_lock we hold), so what we read next
 * stays as read.
 */
static void write_protect(struct underused *u)
{
	for (uint64_t i = 0; i < u->nr_leaf; i++) {
		struct uw_leaf *l = &u->leaf[i];
		hm_spin_t *lock;
		hm_pte_t *slot = leaf_slot(u, l, &lock);

		hm_spin_lock(lock);
		hm_pte_t e = pt_get(slot);
		hm_assert(pt_mapped(e) && pt_pfn(e, 0) == u->head + page_of(u, l));
		if (pt_writable(e)) {
			pt_wrprotect_at(slot);
			l->wp = true;
		}
		hm_spin_unlock(lock);
		if (l->wp)
			hm_tlb_flush(l->mm);
	}
	hm_rcu_synchronize();
}

/* Give write permission back to the leaves that had it and still map a
 * page (they were the only mapping of it: still true). */
static void write_restore(struct underused *u)
{
	for (uint64_t i = 0; i < u->nr_leaf; i++) {
		struct uw_leaf *l = &u->leaf[i];
		hm_spin_t *lock;

		if (!l->wp)
			continue;
		hm_pte_t *slot = leaf_slot(u, l, &lock);
		hm_spin_lock(lock);
		if (pt_mapped(pt_get(slot)))
			pt_mkwrite_at(slot);
		hm_spin_unlock(lock);
	}
}

/* Drop every leaf that maps a zero-filled page; the page, now a folio of
 * its own, goes when its last leaf does. Returns the frames freed. */
static uint64_t zap_zero(struct underused *u, struct hm_gather *g)
{
	uint64_t freed = 0;

	for (uint64_t i = 0; i < u->nr_leaf; i++) {
		struct uw_leaf *l = &u->leaf[i];
		hm_spin_t *lock;
		uint32_t head;

		if (!u->zero[page_of(u, l)])
			continue;
		if (!hm_gather_room(g, 1))
			hm_gather_next(g);
		hm_pte_t *slot = leaf_slot(u, l, &lock);
		hm_spin_lock(lock);
		hm_pte_t old = pt_get_and_clear(slot);
		hm_tlb_flush(l->mm);
		/* No pin: every mapping of the page goes, nobody reuses it. */
		if (hm_folio_remove_map(l->mm, pt_pfn(old, 0), 0, false, &head, NULL) == HM_FOLIO_UNMAPPED) {
			hm_gather_folio(g, head);
			freed++;
		}
		hm_spin_unlock(lock);
		l->wp = false;
	}
	return freed;
}

/* The claimed candidate, looked at under its lock: still splittable? */
static bool candidate_ok(struct hm_system *sys, uint32_t head, uint32_t *avid, uint64_t *index,
			 int32_t *maps)
{
	hm_spin_t *lock = hm_folio_lock(sys, head);
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	bool ok;

	hm_spin_lock(lock);
	ok = claim_holds(sys, head) && folio_order(h) == HM_PMD_ORDER && !h[1].deferred.partial &&
	     !folio_entire_mapcount(h) && folio_mapped(h) &&
	     !(hm_load_relaxed(&h->flags) & (PG_ISOLATED | PG_SWAPCACHE | PG_HUGE_ZERO)) &&
	     !hm_load(hm_pin_slot(&sys->phys, head));
	if (ok) {
		*avid = folio_anon_vma(h);
		*index = folio_index(h);
		*maps = folio_mapcount(h);
	}
	hm_spin_unlock(lock);
	return ok;
}

/* A candidate found not underused leaves the queue, as in the kernel: it
 * comes back only if an unmap leaves it partly mapped. */
static void drop_candidate(struct hm_system *sys, uint32_t head)
{
	hm_spin_t *lock = hm_folio_lock(sys, head);

	hm_spin_lock(lock);
	if (claim_holds(sys, head))
		hm_deferred_del_locked(sys, head);
	hm_spin_unlock(lock);
}

/*
 * Split the claimed candidate @head if more than max_ptes_none of its pages
 * are zero-filled, and drop those. Returns the frames freed.
 */
static uint64_t shrink_underused(struct hm_system *sys, uint32_t head, struct hm_gather *g)
{
	unsigned max_none = sys->cfg.khugepaged_max_ptes_none;
	struct underused u = { .sys = sys, .head = head };
	uint32_t avid;
	int32_t maps;
	uint64_t freed = 0;

	if (!candidate_ok(sys, head, &avid, &u.index, &maps) || !lock_family(&u, avid))
		return 0;
	/* Every member is locked now. If the claim still holds, the folio is
	 * the one we looked at, its family is @avid, and its mappings cannot
	 * change until we let go. */
	if (!candidate_ok(sys, head, &avid, &u.index, &maps))
		goto out;
	if (count_zero_racy(hm_pfn_ptr(&sys->phys, head)) <= max_none) {
		drop_candidate(sys, head);
		goto out;
	}
	u.cap_leaf = (uint64_t)maps;
	u.leaf = hm_malloc(&sys->phys.fail, u.cap_leaf * sizeof(*u.leaf));
	if (!u.leaf || hm_rmap_walk(sys, head, collect_leaf, &u) != u.cap_leaf)
		goto out;
	write_protect(&u);
	for (unsigned i = 0; i < HM_PTRS; i++) {
		u.zero[i] = page_zero(hm_pfn_ptr(&sys->phys, head + i));
		u.nr_zero += u.zero[i];
	}
	if (u.nr_zero <= max_none) {
		drop_candidate(sys, head);
	} else {
		struct hm_split_result res = { 0, 0 };

		if (split_claimed(sys, head, g, &res)) {
			freed = zap_zero(&u, g);
			hm_count(sys, HM_STAT_thp_underused_split_page);
		}
	}
	write_restore(&u);
	/* A folio that was all zeros may leave its PTE tables empty. */
	for (unsigned i = 0; freed && i < u.nr_mms; i++)
		hm_reclaim_tables(u.mms[i], g, u.index << HM_PAGE_SHIFT,
				  (u.index + HM_PTRS) << HM_PAGE_SHIFT);
out:
	free(u.leaf);
	unlock_family(&u);
	return freed;
}

static uint64_t split_underused(struct hm_system *sys, struct hm_gather *g, uint64_t want)
{
	uint64_t freed = 0, budget = hm_load_relaxed(&sys->nr_deferred);
	uint32_t head;

	while (freed < want && (head = pick(sys, false, &budget)) != HM_PFN_NONE)
		freed += shrink_underused(sys, head, g);
	return freed;
}

uint64_t hm_thp_shrink(struct hm_system *sys, uint64_t want)
{
	struct hm_gather g;
	uint64_t freed;

	if (!want || !hm_load_relaxed(&sys->nr_deferred))
		return 0;
	hm_mutex_lock(&sys->split_lock);
	hm_gather_init_rcu(&g, &sys->pc);
	freed = split_partial(sys, &g, want);
	/* The underused shrinker waits for grace periods: not in a fault that
	 * holds mmap_lock and may wait without it instead (hm_fault retries,
	 * and comes back here). */
	if (freed < want && sys->cfg.khugepaged_max_ptes_none < HM_PTRS - 1 && !hm_drain_defer_wait())
		freed += split_underused(sys, &g, want - freed);
	unclaim(sys);
	/* Before hm_check can look (it takes split_lock): the new folios that
	 * nothing maps must be pending by then. */
	hm_gather_finish(&g);
	hm_mutex_unlock(&sys->split_lock);
	return freed;
}

uint64_t hm__thp_shrink(struct hm_system *sys, uint64_t want)
{
	uint64_t freed = hm_thp_shrink(sys, want);

	hm_check_enabled(sys, 0);
	return freed;
}
