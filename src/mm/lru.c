/* SPDX-License-Identifier: MIT */
/*
 * The LRU lists and reclaim's hold on a folio (see lru.h).
 *
 * Two lists, as the kernel's anonymous LRU: a folio joins the inactive one
 * when it gets its first mapping, and moves between them as reclaim finds
 * its accessed bits set or clear (vmscan.c). The links live in a per-frame
 * side array (sys->lru) rather than in the descriptor, whose folio words
 * are all taken; the array is a MAP_NORESERVE mapping, so it costs host
 * memory only where folios are.
 *
 *   nr_lru[i] = folios on list i;  PG_LRU <=> on a list;
 *   PG_ACTIVE <=> that list is the active one
 *
 * Lock order: folio lock -> lru_lock. Reclaim takes a folio off a list
 * under lru_lock alone and then looks at it under its folio lock, inside an
 * RCU read section: a folio that is on a list is mapped or on its way to
 * being freed, and its frames are freed only after a grace period that
 * started after it left the list, so it cannot be freed and reused while
 * we look.
 */
#include "../base/race.h"
#include "folio.h"
#include "lru.h"
#include "reclaim.h"
#include "stat.h"
#include "types.h"

static struct hm_lru_link *link_of(struct hm_system *sys, uint32_t pfn)
{
	return &sys->lru[pfn];
}

/* Link @head at the front of list @active; the caller sets its flags and
 * nr_lru. */
static void link_locked(struct hm_system *sys, uint32_t head, bool active)
{
	hm_assert_locked(&sys->lru_lock);
	struct hm_lru_link *l = link_of(sys, head);
	unsigned i = active;

	l->prev = HM_PFN_NONE;
	l->next = sys->lru_first[i];
	if (l->next != HM_PFN_NONE)
		link_of(sys, l->next)->prev = head;
	else
		sys->lru_last[i] = head;
	sys->lru_first[i] = head;
}

/* nr_lru is written under lru_lock only: no atomic read-modify-write. */
static void nr_lru_add_locked(struct hm_system *sys, unsigned i, uint64_t d)
{
	hm_assert_locked(&sys->lru_lock);
	hm_store_relaxed(&sys->nr_lru[i], hm_load_relaxed(&sys->nr_lru[i]) + d);
}

static void add_locked(struct hm_system *sys, uint32_t head, bool active)
{
	hm_assert_locked(&sys->lru_lock);
	struct hm_page *h = hm_pfn_page(&sys->phys, head);

	hm_assert(!(hm_load_relaxed(&h->flags) & PG_LRU));
	link_locked(sys, head, active);
	nr_lru_add_locked(sys, active, 1);
	__atomic_or_fetch(&h->flags, PG_LRU | (active ? PG_ACTIVE : 0), __ATOMIC_RELAXED);
}

static void del_locked(struct hm_system *sys, uint32_t head)
{
	hm_assert_locked(&sys->lru_lock);
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	struct hm_lru_link *l = link_of(sys, head);
	unsigned i = !!(hm_load_relaxed(&h->flags) & PG_ACTIVE);

	hm_assert(hm_load_relaxed(&h->flags) & PG_LRU);
	if (l->prev != HM_PFN_NONE)
		link_of(sys, l->prev)->next = l->next;
	else
		sys->lru_first[i] = l->next;
	if (l->next != HM_PFN_NONE)
		link_of(sys, l->next)->prev = l->prev;
	else
		sys->lru_last[i] = l->prev;
	nr_lru_add_locked(sys, i, (uint64_t)-1);
	__atomic_and_fetch(&h->flags, ~(PG_LRU | PG_ACTIVE), __ATOMIC_RELAXED);
}

void hm_lru_add(struct hm_system *sys, uint32_t head, bool active)
{
	hm_spin_lock(&sys->lru_lock);
	add_locked(sys, head, active);
	hm_spin_unlock(&sys->lru_lock);
}

/*
 * Per-CPU add batches (struct hm_cpu_stats): a folio in one has
 * PG_LRU_BATCH and is on no list yet. Whoever needs it on its list takes it
 * there by draining every batch: its last unmap (hm_lru_del_locked),
 * isolation for reclaim or migration, hm_check. Only order-0 folios are
 * batched, so a folio split never meets one.
 * Lock order: folio lock > lru_batch_lock > lru_lock.
 */
static void batch_flush_locked(struct hm_system *sys, struct hm_cpu_stats *c)
{
	hm_assert_locked(&c->lru_batch_lock);
	uint32_t nr = c->lru_batch_nr;

	/* A locked instruction waits for every store before it, and the
	 * links of new folios are seldom in the cache: the flags go first,
	 * so that the links' misses overlap instead of coming one by one
	 * (the xor was 4 % of a 4 KiB fault with the links in between).
	 * Nobody looks at the links without lru_lock. */
	hm_spin_lock(&sys->lru_lock);
	for (uint32_t i = 0; i < nr; i++) {
		struct hm_page *h = hm_pfn_page(&sys->phys, c->lru_batch[i]);

		hm_assert_int((hm_load_relaxed(&h->flags) & (PG_LRU | PG_LRU_BATCH)) == PG_LRU_BATCH);
		/* From the batch onto the list in one locked instruction. */
		__atomic_xor_fetch(&h->flags, PG_LRU_BATCH | PG_LRU, __ATOMIC_RELAXED);
	}
	for (uint32_t i = 0; i < nr; i++)
		link_locked(sys, c->lru_batch[i], false);
	nr_lru_add_locked(sys, 0, nr);
	hm_spin_unlock(&sys->lru_lock);
	hm_store(&c->lru_batch_nr, 0);
}

/* @fresh: no other thread can reach the folio yet, so its flags take a
 * plain store, which the batch lock publishes. */
static void batch_add(struct hm_system *sys, uint32_t head, bool fresh)
{
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	struct hm_cpu_stats *c = hm_this_cpu_stats(sys);

	hm_assert(folio_order(h) == 0 && !(hm_load_relaxed(&h->flags) & (PG_LRU | PG_LRU_BATCH)));
	if (fresh)
		hm_store_relaxed(&h->flags, hm_load_relaxed(&h->flags) | PG_LRU_BATCH);
	hm_spin_lock(&c->lru_batch_lock);
	if (!fresh)
		__atomic_or_fetch(&h->flags, PG_LRU_BATCH, __ATOMIC_RELAXED);
	c->lru_batch[c->lru_batch_nr] = head;
	hm_store(&c->lru_batch_nr, c->lru_batch_nr + 1);
	if (c->lru_batch_nr == HM_LRU_BATCH)
		batch_flush_locked(sys, c);
	hm_spin_unlock(&c->lru_batch_lock);
}

void hm_lru_add_new(struct hm_system *sys, uint32_t head)
{
	hm_assert_locked(hm_folio_lock(sys, head));
	batch_add(sys, head, false);
}

void hm_lru_add_fresh(struct hm_system *sys, uint32_t head)
{
	/* Context: a folio no other thread can reach yet (see lru.h). */
	hm_assert(folio_mapcount(hm_pfn_page(&sys->phys, head)) == 1);
	batch_add(sys, head, true);
}

void hm_lru_drain_all(struct hm_system *sys)
{
	for (unsigned i = 0; i < sys->phys.nr_cpus; i++) {
		struct hm_cpu_stats *c = &sys->cpu_stats[i];

		if (!hm_load_relaxed(&c->lru_batch_nr))
			continue;
		hm_spin_lock(&c->lru_batch_lock);
		batch_flush_locked(sys, c);
		hm_spin_unlock(&c->lru_batch_lock);
	}
}

void hm_lru_del_locked(struct hm_system *sys, uint32_t head)
{
	hm_assert_locked(hm_folio_lock(sys, head));
	/* In a batch: the drain puts it on its list first. Under its folio
	 * lock, nobody can batch it again meanwhile. */
	if (hm_load_relaxed(&hm_pfn_page(&sys->phys, head)->flags) & PG_LRU_BATCH)
		hm_lru_drain_all(sys);
	hm_spin_lock(&sys->lru_lock);
	if (hm_load_relaxed(&hm_pfn_page(&sys->phys, head)->flags) & PG_LRU)
		del_locked(sys, head);
	hm_spin_unlock(&sys->lru_lock);
}

bool hm_lru_del_any(struct hm_system *sys, uint32_t head, bool *active)
{
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	bool listed;

	hm_spin_lock(&sys->lru_lock);
	listed = hm_load_relaxed(&h->flags) & PG_LRU;
	*active = hm_load_relaxed(&h->flags) & PG_ACTIVE;
	if (listed)
		del_locked(sys, head);
	hm_spin_unlock(&sys->lru_lock);
	return listed;
}

/* Can reclaim take this folio now? Context: its folio lock. */
static bool isolatable_locked(struct hm_system *sys, struct hm_page *h, uint32_t head, bool reclaim)
{
	uint32_t f = hm_load_relaxed(&h->flags);

	/* Lazy mode: a huge page mapped whole would go out as a PMD swap
	 * entry, which has no deposit, so reading it back when memory is full
	 * would need a table (or 512 frames) that may not be had: it stays
	 * until its mapping is split. Migration keeps it mapped whole. */
	if (reclaim && sys->cfg.deposit == HM_DEPOSIT_LAZY && folio_order(h) && folio_entire_mapcount(h))
		return false;
	return (f & PG_HEAD) && !(f & (PG_ISOLATED | PG_HUGE_ZERO | PG_FREEING)) &&
	       folio_mapped(h) && !hm_load(hm_pin_slot(&sys->phys, head));
}

/*
 * A folio just taken off a list: isolate it (for reclaim, or for
 * migration), or put it back at the head of list @back if it is busy
 * (pinned), or let it go if it is on its way to being freed. Context:
 * inside an RCU read section (see above).
 */
static bool isolate_popped(struct hm_system *sys, uint32_t head, bool reclaim, bool back)
{
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	uint32_t now;
	hm_spin_t *lock = hm_lock_folio_of(sys, head, &now);
	bool got = false;

	/* A folio split since we took it off the list put its pieces back on
	 * it, this head included: leave them there. */
	if (now != head || (hm_load_relaxed(&h->flags) & PG_LRU)) {
		hm_spin_unlock(lock);
		return false;
	}
	if (isolatable_locked(sys, h, head, reclaim)) {
		__atomic_or_fetch(&h->flags, PG_ISOLATED, __ATOMIC_RELAXED);
		got = true;
	} else if (folio_mapped(h) && !(hm_load_relaxed(&h->flags) & PG_ISOLATED)) {
		hm_lru_add(sys, head, back);
	}
	hm_spin_unlock(lock);
	return got;
}

unsigned hm_lru_isolate(struct hm_system *sys, bool active, uint32_t *out, unsigned max)
{
	unsigned n = 0, tries = 0;

	hm_lru_drain_all(sys);	/* the newest folios are reclaim's too */
	hm_rcu_read_lock();
	while (n < max && tries++ < 4 * max) {
		hm_spin_lock(&sys->lru_lock);
		uint32_t head = sys->lru_last[active];
		if (head != HM_PFN_NONE)
			del_locked(sys, head);
		hm_spin_unlock(&sys->lru_lock);
		if (head == HM_PFN_NONE)
			break;
		hm_race_point("lru_popped");
		if (isolate_popped(sys, head, true, true))
			out[n++] = head;
	}
	hm_rcu_read_unlock();
	return n;
}

/* Isolate the folio headed by @head if it still is one, is isolatable,
 * has every flag of @need, and (with @alone_in) that mm alone maps it. */
static bool isolate(struct hm_system *sys, uint32_t head, struct hm_mm *alone_in, uint32_t need, bool reclaim)
{
	uint32_t now;
	hm_spin_t *lock = hm_lock_folio_of(sys, head, &now);
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	bool got = false;

	if (now == head && (hm_load_relaxed(&h->flags) & need) == need && isolatable_locked(sys, h, head, reclaim) &&
	    (!alone_in || hm_folio_alone_locked(h, alone_in->slot_id))) {
		hm_lru_del_locked(sys, head);
		__atomic_or_fetch(&h->flags, PG_ISOLATED, __ATOMIC_RELAXED);
		got = true;
	}
	hm_spin_unlock(lock);
	return got;
}

bool hm_folio_isolate(struct hm_system *sys, uint32_t head, struct hm_mm *alone_in)
{
	return isolate(sys, head, alone_in, 0, true);
}

bool hm_folio_isolate_migrate(struct hm_system *sys, uint32_t head)
{
	return isolate(sys, head, NULL, 0, false);
}

/*
 * Is @pfn a folio head on a list? Decided by the links alone, so that no
 * descriptor of a frame that may be free (reset by the buddy allocator
 * without a lock) is read: a listed folio is first, or its prev names a
 * folio whose next names it. Stale links of a frame that left never look
 * so: when it left, its neighbours were linked to each other, a folio's
 * next is written only while it is listed, and only a folio added at the
 * front, in front of it, writes its prev again.
 * Context: lru_lock.
 */
static bool listed_locked(struct hm_system *sys, uint32_t pfn, bool *active)
{
	hm_assert_locked(&sys->lru_lock);
	uint32_t prev = link_of(sys, pfn)->prev;

	for (unsigned i = 0; i < 2; i++) {
		if (sys->lru_first[i] == pfn) {
			*active = i;
			return true;
		}
	}
	/* (Links never written read as zero: frame 0 would name itself.) */
	if (prev >= sys->phys.nr_frames || prev == pfn || link_of(sys, prev)->next != pfn)
		return false;
	*active = hm_load_relaxed(&hm_pfn_page(&sys->phys, pfn)->flags) & PG_ACTIVE;
	return true;
}

/* Take the folio headed by @pfn off its LRU list and isolate it, if it is
 * on one: whether it was listed; *got whether it is now ours. Off the list
 * first, inside a read section: then it is freed, if at all, after a grace
 * period (see the top of the file). */
static bool isolate_listed(struct hm_system *sys, uint32_t pfn, bool *got)
{
	bool active = false, listed;

	hm_rcu_read_lock();
	hm_spin_lock(&sys->lru_lock);
	listed = listed_locked(sys, pfn, &active);
	if (listed)
		del_locked(sys, pfn);
	hm_spin_unlock(&sys->lru_lock);
	*got = listed && isolate_popped(sys, pfn, false, active);
	hm_rcu_read_unlock();
	return listed;
}

bool hm_folio_isolate_pfn(struct hm_system *sys, uint32_t pfn)
{
	bool got;

	if (pfn >= sys->phys.nr_frames)
		return false;
	if (isolate_listed(sys, pfn, &got))
		return got;
	/* A new folio in a per-CPU batch is on no list yet: the batches go
	 * to their lists, and we look again. Not by its PG_LRU_BATCH: the
	 * frame may be free, its descriptor being reset without a lock. One
	 * that joins a batch after this is not isolated (as one mapped after
	 * the caller listed its folios): the caller's retry finds it. */
	hm_lru_drain_all(sys);
	return isolate_listed(sys, pfn, &got) && got;
}

bool hm_folio_isolate_cached(struct hm_system *sys, uint32_t pfn)
{
	uint32_t f = hm_load_relaxed(&hm_pfn_page(&sys->phys, pfn)->flags);

	/* Heads only (a 2 MiB folio's first slot names its head), and only
	 * folios still in the swap cache. */
	if (!(f & PG_HEAD) || !(f & PG_SWAPCACHE))
		return false;
	return isolate(sys, pfn, NULL, PG_SWAPCACHE, true);
}

void hm_folio_putback(struct hm_system *sys, uint32_t head, bool active)
{
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	hm_spin_t *lock = hm_folio_lock(sys, head);
	unsigned order = folio_order(h);
	bool orphan;

	hm_spin_lock(lock);
	hm_assert(hm_load_relaxed(&h->flags) & PG_ISOLATED);
	__atomic_and_fetch(&h->flags, ~PG_ISOLATED, __ATOMIC_RELAXED);
	orphan = folio_mapcount(h) == 0;
	if (orphan)
		hm_folio_drop_swapcache_locked(sys, h);
	else
		hm_lru_add(sys, head, active);
	hm_spin_unlock(lock);
	if (orphan) {
		/* Its last unmap left the freeing to us, and a thread may
		 * still be copying through a translation of it: wait for
		 * them (rare: an unmap while reclaim held the folio). */
		hm_rcu_synchronize();
		hm_sub(&sys->nr_anon_frames, 1u << order);
		hm_free_frames(&sys->pc, head, order);
	}
}

bool hm_folio_try_pin(struct hm_system *sys, uint32_t *head)
{
	hm_spin_t *lock = hm_lock_folio_of(sys, *head, head);
	bool ok = !(hm_load_relaxed(&hm_pfn_page(&sys->phys, *head)->flags) & PG_ISOLATED);

	if (ok)
		hm_add(hm_pin_slot(&sys->phys, *head), 1);
	hm_spin_unlock(lock);
	return ok;
}

void hm_folio_unpin(struct hm_system *sys, uint32_t head)
{
	/* Release: what we did with the folio happens before a reuse that
	 * sees the pin gone. */
	__atomic_sub_fetch(hm_pin_slot(&sys->phys, head), 1, __ATOMIC_RELEASE);
}
