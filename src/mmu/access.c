/* SPDX-License-Identifier: MIT */
/*
 * hm_read / hm_write: memory access as a CPU performs it. Translate through
 * the TLB; on a miss walk the tables without locks (inside an RCU read
 * section) and set accessed/dirty bits like the hardware's page walker; if
 * the walk finds no usable leaf, leave the read section and take the fault.
 *
 * A write that spans pages faults them all in first and copies only then,
 * under mmap_lock for reading throughout (write_span), so that one that
 * fails has written nothing.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/race.h"
#include "tlb.h"

static pthread_key_t tlb_key;
static pthread_once_t tlb_once = PTHREAD_ONCE_INIT;
static __thread struct tlb *tlb_tls __attribute__((tls_model("initial-exec")));
/* Initial-exec, so that the hit path holds no __tls_get_addr call (see
 * pgtable/rcu.h). tlb_cur is tlb_tls->ctx[0], one load closer. */
static __thread struct tlb_ctx *tlb_cur __attribute__((tls_model("initial-exec")));

/* At thread exit: an access from a later key destructor starts afresh
 * instead of using the freed TLB. */
static void tlb_free(void *t)
{
	tlb_tls = NULL;
	tlb_cur = NULL;
	free(t);
}

static void tlb_key_init(void)
{
	(void)pthread_key_create(&tlb_key, tlb_free);
}

struct tlb_ctx *hm_tlb_ctx(struct hm_mm *mm)
{
	struct tlb *t = tlb_tls;

	if (hm_likely(tlb_cur && tlb_cur->mm_id == mm->id))
		return tlb_cur;
	if (!t) {
		pthread_once(&tlb_once, tlb_key_init);
		t = calloc(1, sizeof(*t));
		if (!t)
			return NULL;
		for (unsigned i = 0; i < TLB_CTXS; i++)
			t->ctx[i] = &t->store[i];
		(void)pthread_setspecific(tlb_key, t);
		tlb_tls = t;
	}
	unsigned i = 1;
	while (i < TLB_CTXS - 1 && t->ctx[i]->mm_id != mm->id)
		i++;
	struct tlb_ctx *c = t->ctx[i];
	if (c->mm_id != mm->id) {	/* evict the least recently used */
		memset(c, 0, sizeof(*c));
		c->mm_id = mm->id;
		tlb_set_last(c, 0);
	}
	memmove(&t->ctx[1], &t->ctx[0], i * sizeof(t->ctx[0]));
	t->ctx[0] = c;
	tlb_cur = c;
	return c;
}

/* Context: inside hm_rcu_read_lock(). NULL when the access must fault. */
static uint8_t *tlb_fill(struct hm_mm *mm, struct tlb_ctx *c, uint64_t va, uint64_t gen,
			 bool write, uint64_t *avail)
{
	struct hm_phys *ph = mm_phys(mm);

	for (;;) {
		unsigned level;
		hm_pte_t *slot = hm_pt_walk(ph, mm->root, mm->sys->top, va, &level);
		hm_race_point("tlb_fill_walked");
		hm_pte_t e = pt_get(slot);

		/* The walk stopped at an entry that a fault may have made a link
		 * to a new table since (or a split, a link to the leaf's pieces):
		 * that is no leaf, walk on. */
		if (level > 0 && pt_present(e) && !pt_leaf(e, level))
			continue;
		if (!pt_present(e) || level > 2 || !pt_user(e) || (write && !pt_write_bit(e)))
			return NULL;
		hm_pte_t want = write ? pt_mkyoung_dirty(e) : pt_mkyoung(e);
		if (want != e && !pt_cmpxchg(slot, e, want))
			continue;	/* changed under us: walk again */

		uint64_t size = hm_level_size(level), off = va & (size - 1);
		struct tlb_entry *te = tlb_slot(c, level, va);
		te->tag = (va >> hm_level_shift(level)) + 1;
		te->wtag = pt_write_dirty(want) ? te->tag : 0;
		te->gen = gen;
		te->host = hm_pfn_ptr(ph, pt_pfn(want, level));
		tlb_set_last(c, level);
		*avail = size - off;
		return te->host + off;
	}
}

/* Would a CPU let this access through, judging by the VMAs alone? */
static bool vmas_allow(struct hm_mm *mm, uint64_t start, uint64_t end, bool write)
{
	hm_down_read(&mm->mmap_lock);
	bool ok = hm_vma_covers(mm, start, end, write ? PROT_WRITE : PROT_READ);
	hm_up_read(&mm->mmap_lock);
	return ok;
}

/*
 * A fault that resolves yet leaves no usable translation means another
 * thread changed the range again (a split a level down, a copy-on-write
 * that waited for a pin, an mprotect back and forth): retry, as a CPU
 * would, yielding now and then. An access the VMAs allow never fails but
 * for -ENOMEM. Retrying a million times without progress is a bug in the
 * fault path, which DEBUG >= 2 reports instead of hanging.
 */
static void retry_pause(unsigned *tries)
{
	++*tries;
	if (*tries > 4096)
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);	/* reclaim writing it out */
	else if (*tries % 64 == 0)
		sched_yield();
	if (HM_DEBUG >= 2 && *tries > 1000000)
		hm_panic(__FILE__, __LINE__, "an access retried its fault a million times");
}

/*
 * Copy through the TLB, faulting on a miss. With @locked the caller holds
 * mmap_lock for reading, so a miss must use hm_fault_locked: taking the lock
 * again would wait behind a queued writer that waits for us. With @missed
 * the caller is inside a read section and found no translation for @va:
 * start with the fault.
 */
static int copy(struct hm_mm *mm, struct tlb_ctx *c, uint64_t va, uint8_t *buf, uint64_t len,
		bool write, bool locked, bool missed, bool *faulted)
{
	unsigned tries = 0;

	while (len) {
		uint64_t avail;
		uint8_t *p = NULL;

		if (!missed) {	/* the caller found no translation for va: fault */
			hm_rcu_read_lock();
			uint64_t gen = hm_load(&mm->tlb_gen);
			p = tlb_lookup(c, va, gen, write, &avail);
			if (!p)
				p = tlb_fill(mm, c, va, gen, write, &avail);
		}
		missed = false;
		if (!p) {
			hm_rcu_read_unlock();
			int r = locked ? hm_fault_locked(mm, va, write) : hm_fault(mm, va, write);
			*faulted = true;
			/* After write_span's pre-fault this cannot fail: see there. */
			hm_assert(!locked || r == 0);
			if (r)
				return r;
			retry_pause(&tries);
			continue;
		}
		uint64_t n = HM_MIN(len, avail);
		hm_race_point("access_copy");
		if (write)
			memcpy(p, buf, n);
		else
			memcpy(buf, p, n);
		hm_rcu_read_unlock();
		va += n;
		buf += n;
		len -= n;
		tries = 0;
	}
	return 0;
}

/* Folios a multi-page write pinned against reclaim (see write_span). */
struct pins {
	uint32_t *head;
	size_t n, cap;
};

/* Pin the folio of the writable leaf at @va, if the leaf is still there
 * once pinned. Context: mmap_lock held for reading. */
static bool pin_writable(struct hm_mm *mm, uint64_t va, struct pins *p, uint64_t *next)
{
	struct hm_phys *ph = mm_phys(mm);
	unsigned level;
	bool ok = false;

	/* Inside a read section: the folio cannot be freed while we look. */
	hm_rcu_read_lock();
	hm_pte_t *slot = hm_pt_walk(ph, mm->root, mm->sys->top, va, &level);
	hm_pte_t e = pt_get(slot);

	if (pt_writable(e) && p->n < p->cap) {
		uint32_t head = hm_folio_head(ph, pt_pfn(e, level));

		if (hm_folio_try_pin(mm->sys, &head)) {
			if (pt_writable(pt_get(slot)) && pt_pfn(pt_get(slot), level) == pt_pfn(e, level)) {
				p->head[p->n++] = head;
				*next = HM_ALIGN_DOWN(va, hm_level_size(level)) + hm_level_size(level);
				ok = true;
			} else {
				hm_folio_unpin(mm->sys, head);
			}
		}
	}
	hm_rcu_read_unlock();
	return ok;
}

static void unpin_all(struct hm_mm *mm, struct pins *p)
{
	while (p->n)
		hm_folio_unpin(mm->sys, p->head[--p->n]);
	free(p->head);
}

/* Give every page of [start, end) a present, writable leaf, and pin it.
 * Context: mmap_lock held for reading; the VMAs allow the write. */
static int prefault_write(struct hm_mm *mm, uint64_t start, uint64_t end, bool *faulted, struct pins *p)
{
	hm_assert_rwsem_held(&mm->mmap_lock);
	unsigned tries = 0;

	for (uint64_t va = HM_ALIGN_DOWN(start, HM_PAGE_SIZE); va < end;) {
		uint64_t next;

		if (pin_writable(mm, va, p, &next)) {
			va = next;
			tries = 0;
			continue;
		}
		/* Not there, or read-only (copy-on-write, which may split a
		 * huge leaf and want another round a level down), or on its
		 * way to swap. */
		int r = hm_fault_locked(mm, va, true);
		*faulted = true;
		if (r)
			return r;
		retry_pause(&tries);
	}
	return 0;
}

/*
 * A write that spans pages is all or nothing: under mmap_lock for reading,
 * fault in every page it touches for writing, and only then copy. A fault
 * that fails (-ENOMEM) leaves pages faulted in before it, which read as
 * they did (zeros, or the same bytes in a private copy), and no byte
 * written.
 *
 * The copy cannot fault again with an error. While we hold mmap_lock for
 * reading, nothing takes a present writable leaf of this mm away or makes
 * it read-only: munmap, mprotect, DONTNEED, fork and hm_check take the lock
 * for writing, and what other threads may do under it (faults on empty
 * entries, copy-on-write and its splits) only acts on read-only or empty
 * entries. Reclaim, which unmaps under mmap_lock for reading, does not take
 * a pinned folio, and every folio we write to is pinned from the pre-fault
 * to the end of the copy. Shootdowns stale our TLB entries, and the refill
 * finds the same writable leaves (setting D, as the write needs, is a CAS,
 * not an allocation).
 */
static int write_span(struct hm_mm *mm, struct tlb_ctx *c, uint64_t va, const uint8_t *buf,
		      uint64_t len, bool *faulted)
{
	struct pins p = { .head = NULL, .n = 0, .cap = ((len + 2 * HM_PAGE_SIZE) >> HM_PAGE_SHIFT) + 1 };
	int r;

	hm_down_read(&mm->mmap_lock);
	/* -EFAULT before anything is allocated: a bad write fails the same
	 * way whatever memory there is. */
	if (!hm_vma_covers(mm, va, va + len, PROT_WRITE))
		r = -EFAULT;
	else if (!(p.head = hm_malloc(&mm->sys->phys.fail, p.cap * sizeof(*p.head))))
		r = -ENOMEM;
	else if (!(r = prefault_write(mm, va, va + len, faulted, &p))) {
		hm_race_point("write_span_prefaulted");
		r = copy(mm, c, va, (uint8_t *)(uintptr_t)buf, len, true, true, false, faulted);
	}
	if (p.head)
		unpin_all(mm, &p);
	hm_up_read(&mm->mmap_lock);
	return r;
}

/* Copy @n <= 16 bytes with at most two loads and two stores, each of a
 * size the compiler knows (overlapping when @n is not a power of two). */
static inline void small_copy(uint8_t *dst, const uint8_t *src, uint64_t n)
{
	if (hm_likely(n == 8)) {
		uint64_t a;

		memcpy(&a, src, 8);
		memcpy(dst, &a, 8);
	} else if (n > 8) {
		uint64_t a, b;

		memcpy(&a, src, 8);
		memcpy(&b, src + n - 8, 8);
		memcpy(dst, &a, 8);
		memcpy(dst + n - 8, &b, 8);
	} else if (n >= 4) {
		uint32_t a, b;

		memcpy(&a, src, 4);
		memcpy(&b, src + n - 4, 4);
		memcpy(dst, &a, 4);
		memcpy(dst + n - 4, &b, 4);
	} else {	/* 1..3 */
		uint8_t a = src[0], b = src[n / 2], c = src[n - 1];

		dst[0] = a;
		dst[n / 2] = b;
		dst[n - 1] = c;
	}
}

/* Context: inside the read section, @p translating the access of @len
 * bytes within one page; leaves it. */
static inline __attribute__((always_inline)) void copy_page(uint8_t *p, uint8_t *buf, uint64_t len,
							      bool write)
{
	uint8_t *dst = write ? p : buf;
	const uint8_t *src = write ? buf : p;

	/*
	 * A write's line, fetched for ownership now: a store that misses
	 * holds up the read section's closing store behind it (x86 commits
	 * stores in order), and with it the next access's, so that only the
	 * prefetch lets the misses of a run of writes overlap. Such misses are
	 * the common case right after a huge fault, whose non-temporal zeroing
	 * leaves no line in the cache: after it, a write per 4 KiB took 70 ns
	 * with the section's stores around it, 37 ns with the prefetch, and
	 * 30 ns as a bare store (1 GiB, 2 MiB chunks; /tmp microbenchmark).
	 * On a hit it costs an instruction.
	 */
	if (write)
		__builtin_prefetch(dst, 1);
	hm_race_point("access_copy");
	if (len > 16)
		memcpy(dst, src, len);
	else
		small_copy(dst, src, len);
	hm_rcu_read_unlock();
}

/* Context: inside the read section; leaves it. The access within one page
 * through the TLB, else a fill from the tables, else the fault. */
static int access_page(struct hm_mm *mm, struct tlb_ctx *c, uint64_t va, uint8_t *buf,
		       uint64_t len, bool write, bool *faulted)
{
	uint64_t avail, gen = hm_load(&mm->tlb_gen);
	uint8_t *p = tlb_lookup(c, va, gen, write, &avail);

	if (!p && !(p = tlb_fill(mm, c, va, gen, write, &avail)))
		return copy(mm, c, va, buf, len, write, false, true, faulted);
	copy_page(p, buf, len, write);
	return 0;
}

/* *faulted is set when the access changed the tables (HM_CHECK checks
 * after those only: a TLB hit changes nothing but A/D bits). */
static int access_mem(struct hm_mm *mm, uint64_t va, uint8_t *buf, uint64_t len, bool write,
		      bool *faulted)
{
	if (!mm || (!buf && len))
		return -EINVAL;
	if (!len)
		return 0;
	if (va + len < va || va + len > mm->sys->task_size)
		return -EFAULT;
	bool span = (va & ~(HM_PAGE_SIZE - 1)) != ((va + len - 1) & ~(HM_PAGE_SIZE - 1));
	/* A multi-page read is checked whole first, so that a bad one faults
	 * no page in. (A multi-page write checks under the lock it copies
	 * under, in write_span.) */
	if (span && !write && !vmas_allow(mm, va, va + len, false))
		return -EFAULT;
	struct tlb_ctx *c = hm_tlb_ctx(mm);
	if (!c)
		return -ENOMEM;
	if (span && write)
		return write_span(mm, c, va, buf, len, faulted);
	if (span)
		return copy(mm, c, va, buf, len, false, false, false, faulted);
	hm_rcu_read_lock();
	return access_page(mm, c, va, buf, len, write, faulted);
}

/* Everything but the TLB hit of a small access: out of line, so that the
 * hit path in hm_read/hm_write saves no registers for it. */
static __attribute__((noinline)) int access_slow(struct hm_mm *mm, uint64_t va, uint8_t *buf,
						  uint64_t len, bool write)
{
	bool faulted = false;
	int r = access_mem(mm, va, buf, len, write, &faulted);

	return faulted ? hm_check_enabled(mm->sys, r) : r;
}

/*
 * The small access's probe of the last level missed, inside the read
 * section: go on from there (the other levels, the fill, the fault) rather
 * than leave it and look up again. Five arguments, so that the hit path
 * jumps here without a frame of its own: tlb_cur is the context the hit
 * path used, and tlb_gen is read again inside the same section, which is
 * as good as the first read.
 */
static __attribute__((noinline)) int access_miss(struct hm_mm *mm, uint64_t va, uint8_t *buf,
						  uint64_t len, bool write)
{
	bool faulted = false;
	int r = access_page(mm, tlb_cur, va, buf, len, write, &faulted);

	return faulted ? hm_check_enabled(mm->sys, r) : r;
}

/*
 * The TLB hit of a small access within one page, inlined into hm_read and
 * hm_write: no call, no atomic read-modify-write, no check a hit makes
 * needless. An entry exists only for an address that was valid when it was
 * filled, below task_size, and the access ends on the same page, so the
 * bounds checks belong to the slow path. Anything else (no fast case, a
 * first access of this thread or to another mm than the last) goes the
 * whole way through access_slow.
 */
static inline __attribute__((always_inline)) int access_fast(struct hm_mm *mm, uint64_t va,
							      uint8_t *buf, uint64_t len, bool write)
{
	struct tlb_ctx *c = tlb_cur;

	if (hm_unlikely(!mm || !buf || len - 1 >= 16 || (va & (HM_PAGE_SIZE - 1)) + len > HM_PAGE_SIZE ||
			!c || c->mm_id != mm->id || !hm_rcu_read_trylock()))
		return access_slow(mm, va, buf, len, write);
	/* tlb_gen is read inside the section: a flush that bumps it after
	 * this load waits for our unlock before it frees the page. */
	uint8_t *p = tlb_probe_last(c, va, hm_load(&mm->tlb_gen), write);

	if (hm_unlikely(!p))
		return access_miss(mm, va, buf, len, write);
	copy_page(p, buf, len, write);
	return 0;
}

int hm_read(struct hm_mm *mm, uint64_t va, void *buf, uint64_t len)
{
	return access_fast(mm, va, buf, len, false);
}

int hm_write(struct hm_mm *mm, uint64_t va, const void *buf, uint64_t len)
{
	return access_fast(mm, va, (uint8_t *)(uintptr_t)buf, len, true);
}
