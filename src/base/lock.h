/* SPDX-License-Identifier: MIT */
/*
 * Locks that know their owner, so that a function can state its lock rule
 * as its first statement: hm_assert_locked(&ptl).
 *
 * Lock order (take from top to bottom; never upwards):
 *
 *   sys->khugepaged_lock          (mutex: one khugepaged pass at a time,
 *                                  its cursor; held across the pass)
 *   sys->mms_lock                 (mutex: the list of mms; hm_check, mm
 *                                  create/destroy; sys->khugepaged_mm, the
 *                                  mm a khugepaged step works on without
 *                                  it: destroy waits for it to change)
 *     mm->mmap_lock               (rwsem: VMAs; write for map changes,
 *                                  read for faults; writers first, so
 *                                  never taken twice by one thread). Two
 *                                  mms (fork): the newer first, as
 *                                  hm_check walks the list.
 *       sys->reclaim_lock         (mutex: one reclaimer at a time; it takes
 *                                  the mmap_locks of the mms that map a
 *                                  page with a trylock, out of order)
 *       sys->split_lock           (mutex: one folio splitter at a time, the
 *                                  THP shrinkers; hm_check. The underused
 *                                  shrinker takes the mmap_locks of a
 *                                  folio's mappers under it with trylocks)
 *       sys->compact_lock         (mutex, trylock only: one compaction at a
 *                                  time, held across its migration, which
 *                                  trylocks the mappers' mmap_locks)
 *       mm->page_table_lock       (spin: entries of level >= 2 tables, PUD
 *                                  leaves, the PUD-level deposit lists,
 *                                  vma->av when first set)
 *         PMD table ptl           (spin, in the ptdesc: its entries and its
 *                                  deposit list)
 *           PTE table ptl         (spin, in the ptdesc: its entries)
 *             folio lock          (spin, striped by head frame: map counts
 *                                  and mm slots). A folio split takes all
 *                                  of them, in index order, holding no
 *                                  other spinlock: it moves heads, so
 *                                  whoever locks the folio of a frame
 *                                  looks its head up again under the lock.
 *               sys->deferred_lock (spin: the deferred split queue)
 *               lru_batch_lock    (spin, per CPU: its LRU add batch)
 *                 lru_lock        (spin: the LRU lists)
 *             swap->lock          (spin: the swap map; innermost, beside
 *                                  the folio locks)
 *             av->lock            (mutex: an anon_vma's members)
 *               sys->av_lock      (mutex: the table of anon_vmas)
 *             ptcache->lock       (mutex: page-table cache)
 *               pcp->lock         (mutex, per CPU and node: a cache of
 *                                  free 4 KiB frames, phys.h)
 *                 node->lock      (mutex: buddy free lists of one node)
 *             rwsem->wait_lock    (mutex: a writer waiting for an hm_rwsem's
 *                                  readers; innermost, nothing under it)
 *   HM_PROTECT_TABLES' registry and window locks (pgtable/protect.c): taken
 *   by the entry helpers under any of the above; innermost.
 *   tc_lock (spin, base/tcount.c: the per-thread counter blocks): under any
 *   of the above; innermost, nothing taken or allocated under it.
 *
 * An RCU read section (lock-free table walks, the software TLB's memory
 * accesses) must never be held while taking mmap_lock.
 *
 * Nothing that may sleep or allocate runs while a spinlock is held: no
 * malloc, no mutex, no RCU wait or call_rcu. hm_might_sleep() asserts it
 * (DEBUG >= 2 counts the spinlocks each thread holds); every allocation
 * wrapper, hm_mutex_lock() and the RCU wrappers call it.
 */
#ifndef HM_LOCK_H
#define HM_LOCK_H

#include <pthread.h>
#include "base.h"

/* A small nonzero number per thread, used as the owner mark in locks.
 * Inline, and the variable initial-exec TLS: every spinlock asks, and a
 * call through __tls_get_addr cost ~30 instructions a lock. */
extern __thread uint32_t hm_thread_tok __attribute__((tls_model("initial-exec")));
uint32_t hm_thread_token_slow(void);

static inline uint32_t hm_thread_token(void)
{
	uint32_t tok = hm_thread_tok;

	return __builtin_expect(tok != 0, 1) ? tok : hm_thread_token_slow();
}

#if HM_DEBUG >= 2
extern __thread unsigned hm_spin_depth;	/* spinlocks this thread holds */
#define hm_spin_depth_add(n) (hm_spin_depth += (n))
#else
#define hm_spin_depth_add(n) ((void)0)
#endif

/* Context: about to sleep or allocate; asserts no spinlock is held. */
static inline void hm_might_sleep(void)
{
#if HM_DEBUG >= 2
	if (hm_unlikely(hm_spin_depth))
		hm_panic(__FILE__, __LINE__, "sleeping or allocating with %u spinlock(s) held",
			 hm_spin_depth);
#endif
}

static inline void hm_mutex_lock(pthread_mutex_t *m)
{
	hm_might_sleep();
	pthread_mutex_lock(m);
}

static inline void hm_mutex_unlock(pthread_mutex_t *m)
{
	pthread_mutex_unlock(m);
}

/* Spinlock word: 0 when free, else the owner's thread token. Four bytes, so
 * it fits in a page-table descriptor like the kernel's split ptl. */
typedef uint32_t hm_spin_t;

static inline void hm_spin_init(hm_spin_t *l) { *l = 0; }

static inline void hm_spin_lock(hm_spin_t *l)
{
	uint32_t me = hm_thread_token();

	for (;;) {
		uint32_t expect = 0;

		if (__atomic_compare_exchange_n(l, &expect, me, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			hm_spin_depth_add(1);
			return;
		}
		hm_assert(expect != me);	/* recursive locking */
		while (__atomic_load_n(l, __ATOMIC_RELAXED))
			__builtin_ia32_pause();
	}
}

static inline void hm_spin_unlock(hm_spin_t *l)
{
	hm_assert_int(__atomic_load_n(l, __ATOMIC_RELAXED) == hm_thread_token());
	hm_spin_depth_add(-1);
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

static inline bool hm_spin_held(const hm_spin_t *l)
{
	return __atomic_load_n(l, __ATOMIC_RELAXED) == hm_thread_token();
}

/* Reader/writer lock that records its writer and counts its readers.
 * Writers first: once a writer waits, new readers queue behind it, so that
 * map changes are not starved by faults. Hence a thread must never take
 * it again while it holds it, not even for reading twice (DEBUG >= 2
 * asserts it).
 *
 * Readers count themselves per CPU, as the kernel's percpu_rw_semaphore
 * (mmap_lock is taken for reading by every fault: with one shared reader
 * count, two threads faulting at once wrote the same line twice a fault).
 * A reader adds one to its CPU's count and then checks wpending; a writer
 * takes rw for writing (which serializes writers and holds up the readers
 * that find wpending set: they wait in rw's read side), sets wpending, and
 * then waits until the counts add up to zero. Both steps are sequentially
 * consistent, so either the reader sees wpending (and backs off) or the
 * writer sees the reader's count (and waits for its up_read). A count is
 * taken from the CPU the reader runs on when it leaves, so one CPU's count
 * may go negative: only the sum means anything. */
struct hm_rwsem_cpu {
	int64_t readers;	/* atomic */
} __attribute__((aligned(64)));

struct hm_rwsem {
	pthread_rwlock_t rw;
	uint32_t writer;	/* token of the writer, 0 if none; atomic */
	uint32_t wpending;	/* a writer holds rw or waits for the readers
				 * to leave; atomic */
	struct hm_rwsem_cpu *cpu;	/* [hm_nr_cpus()]; constant */
	pthread_mutex_t wait_lock;	/* wait_cond; a writer waiting for
					 * the readers sleeps on it */
	pthread_cond_t wait_cond;
};

int hm_rwsem_init(struct hm_rwsem *s);
void hm_rwsem_destroy(struct hm_rwsem *s);
void hm_down_read(struct hm_rwsem *s);
/* Never waits, so it may be called in any context that may take the lock
 * at all, also out of the lock order (reclaim takes the mms that map a page
 * this way). Must not: be called by a thread that holds @s. */
bool hm_down_read_trylock(struct hm_rwsem *s);
void hm_up_read(struct hm_rwsem *s);
void hm_down_write(struct hm_rwsem *s);
/* Never waits, so it may be taken out of the lock order (the underused THP
 * shrinker locks the mms that map a folio this way). False if @s is busy,
 * also when this thread holds it. */
bool hm_down_write_trylock(struct hm_rwsem *s);
void hm_up_write(struct hm_rwsem *s);

static inline bool hm_rwsem_write_held(struct hm_rwsem *s)
{
	return __atomic_load_n(&s->writer, __ATOMIC_RELAXED) == hm_thread_token();
}

/* The sum of the per-CPU reader counts. Exact only while no reader can
 * come in or leave (a writer pending, or the lock idle): read one CPU at a
 * time, it misses a reader that counts itself in on a CPU already read and
 * leaves from one not read yet, and may then read zero while a third
 * thread holds the lock. */
int64_t hm_rwsem_readers(struct hm_rwsem *s);

/* Held by this thread, for reading or for writing. Exact at DEBUG >= 2,
 * where each thread lists the rwsems it holds (true as well when the list
 * overflowed and the answer is not known); below, where nothing asserts
 * it, it only says whether anyone holds it. For assertions only. */
bool hm_rwsem_held(struct hm_rwsem *s);

#define hm_assert_locked(l)	  hm_assert_int(hm_spin_held(l))
#define hm_assert_rwsem_held(s)	  hm_assert_int(hm_rwsem_held(s))
#define hm_assert_write_locked(s) hm_assert_int(hm_rwsem_write_held(s))

#endif /* HM_LOCK_H */
