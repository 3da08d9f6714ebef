/* SPDX-License-Identifier: MIT */
/*
 * hm_read / hm_write: memory access as a CPU performs it. Translate through
 * the TLB; on a miss walk the tables without locks (inside an RCU read
 * section) and set accessed/dirty bits like the hardware's page walker; if
 * the walk finds no usable leaf, leave the read section and take the fault.
 */
#include <stdlib.h>
#include <string.h>

#include "../base/race.h"
#include "tlb.h"

static pthread_key_t tlb_key;
static pthread_once_t tlb_once = PTHREAD_ONCE_INIT;
static __thread struct tlb *tlb_tls;

static void tlb_key_init(void)
{
	(void)pthread_key_create(&tlb_key, free);
}

struct tlb_ctx *hm_tlb_ctx(struct hm_mm *mm)
{
	struct tlb *t = tlb_tls;

	if (hm_likely(t && t->ctx[0]->mm_id == mm->id))
		return t->ctx[0];
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
	}
	memmove(&t->ctx[1], &t->ctx[0], i * sizeof(t->ctx[0]));
	t->ctx[0] = c;
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
		hm_pte_t e = pt_get(slot);

		if (!pt_present(e) || level > 2 || !(e & HM_PTE_US) || (write && !(e & HM_PTE_RW)))
			return NULL;
		hm_pte_t want = e | HM_PTE_A | (write ? HM_PTE_D : 0);
		if (want != e && !pt_cmpxchg(slot, e, want))
			continue;	/* changed under us: walk again */

		uint64_t size = hm_level_size(level), off = va & (size - 1);
		struct tlb_entry *te = tlb_slot(c, level, va);
		te->tag = (va >> hm_level_shift(level)) + 1;
		te->gen = gen;
		te->host = hm_pfn_ptr(ph, pt_pfn(want, level));
		te->writable = (want & (HM_PTE_RW | HM_PTE_D)) == (HM_PTE_RW | HM_PTE_D);
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

/* Faults that resolve yet leave no usable translation, over and over, mean
 * another thread keeps changing the range; give up as a CPU would not, but
 * a library must. */
#define MAX_RETRIES 1000

/* *faulted is set when the access changed the tables (HM_CHECK checks
 * after those only: a TLB hit changes nothing but A/D bits). */
static int access(struct hm_mm *mm, uint64_t va, uint8_t *buf, uint64_t len, bool write,
		  bool *faulted)
{
	if (!mm || (!buf && len))
		return -EINVAL;
	if (!len)
		return 0;
	if (va + len < va || va + len > mm->sys->task_size)
		return -EFAULT;
	/* A multi-page access is checked whole first, so that a bad one
	 * changes nothing (no partial write, no pages faulted in). */
	if ((va & ~(HM_PAGE_SIZE - 1)) != ((va + len - 1) & ~(HM_PAGE_SIZE - 1)) &&
	    !vmas_allow(mm, va, va + len, write))
		return -EFAULT;
	struct tlb_ctx *c = hm_tlb_ctx(mm);
	if (!c)
		return -ENOMEM;

	unsigned tries = 0;
	while (len) {
		uint64_t avail;

		hm_rcu_read_lock();
		uint64_t gen = hm_load(&mm->tlb_gen);
		uint8_t *p = tlb_lookup(c, va, gen, write, &avail);
		if (!p)
			p = tlb_fill(mm, c, va, gen, write, &avail);
		if (!p) {
			hm_rcu_read_unlock();
			int r = hm_fault(mm, va, write);
			*faulted = true;
			if (r)
				return r;
			if (++tries > MAX_RETRIES)
				return -EFAULT;
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

int hm_read(struct hm_mm *mm, uint64_t va, void *buf, uint64_t len)
{
	bool faulted = false;
	int r = access(mm, va, buf, len, false, &faulted);

	return faulted ? hm_check_enabled(mm->sys, r) : r;
}

int hm_write(struct hm_mm *mm, uint64_t va, const void *buf, uint64_t len)
{
	bool faulted = false;
	int r = access(mm, va, (uint8_t *)(uintptr_t)buf, len, true, &faulted);

	return faulted ? hm_check_enabled(mm->sys, r) : r;
}
