/* SPDX-License-Identifier: MIT */
/*
 * Checking an address space against its model without changing it: a
 * probe reads a page only where hm_query says it is mapped (reading an
 * unmapped page would fault memory in), and otherwise asks the model that
 * the page holds no data. Each probe also checks what hm_query reports
 * against the model and against every other address space: the size,
 * alignment and protection of the leaf, and that its map count is the
 * number of address spaces that map the same frame there (addresses never
 * move, so a shared frame is always at the same address). The huge zero
 * page is the exception: its mappings are not counted (mapcount 0).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"

static uint64_t page_pa(const struct hm_mapping *q, uint64_t va)
{
	return q->pa + ((va & ~(FZ_PAGE - 1)) - q->va);
}

/* Address spaces that map the same frame as @q does at @va. */
static unsigned sharers(struct fz_case *c, const struct hm_mapping *q, uint64_t va)
{
	unsigned n = 0;

	for (int i = 0; i < c->nmm; i++) {
		struct hm_mapping o;

		if (!hm_query(c->mm[i].mm, va, &o) && o.size && !o.swapped && page_pa(&o, va) == page_pa(q, va))
			n++;
	}
	return n;
}

/* Is any page of the 2 MiB chunk at @q mapped by an address space other
 * than @m? (What a 2 MiB leaf's "exclusive" means.) */
static bool chunk_shared(struct fz_case *c, struct fz_mm *m, const struct hm_mapping *q)
{
	for (int i = 0; i < c->nmm; i++) {
		if (&c->mm[i] == m)
			continue;
		for (uint64_t off = 0; off < FZ_2M;) {
			struct hm_mapping o;

			if (hm_query(c->mm[i].mm, q->va + off, &o) || !o.size || o.swapped) {
				off += FZ_PAGE;
				continue;
			}
			if (page_pa(&o, q->va + off) == q->pa + off)
				return true;
			off = o.va + o.size - q->va;	/* skip the rest of that leaf */
		}
	}
	return false;
}

/* A leaf of the huge zero page (hm_query: mapcount 0): 2 MiB, or 4 KiB
 * after a split; read-only and nobody's alone, whatever the mapping
 * allows; the one block of the system. (fz_probe reads its zeros.) */
static void check_zero_leaf(struct fz_case *c, uint64_t va, const struct hm_mapping *q)
{
	uint64_t block = page_pa(q, va) & ~(FZ_2M - 1);

	FZ_CHECK(c, (q->size == FZ_2M || q->size == FZ_PAGE) && !(q->prot & PROT_WRITE) && !q->exclusive,
		 "query %#" PRIx64 ": unmapped-looking (mapcount 0) %#" PRIx64 "-byte leaf, prot %d, exclusive %d",
		 va, q->size, q->prot, q->exclusive);
	if (!c->zero_known) {
		c->zero_known = true;
		c->zero_pa = block;
	}
	FZ_CHECK(c, block == c->zero_pa, "query %#" PRIx64 ": a zero page at %#" PRIx64 ", another at %#" PRIx64,
		 va, block, c->zero_pa);
}

/* A page in swap: only with a swap file, 4 KiB or a whole 2 MiB page
 * (a PMD swap entry), inside the mapping, nothing present about it. */
static void check_swapped(struct fz_case *c, struct fz_mm *m, uint64_t va, const struct hm_mapping *q,
			  const struct fz_vma *v)
{
	uint64_t sz = q->size;
	bool inside = true;

	/* Like a huge leaf, a PMD swap entry lies inside one mapping of one
	 * protection (the model's mappings are not merged: walk them). */
	for (uint64_t a = q->va; a < q->va + sz && inside;) {
		const struct fz_vma *w = fz_model_vma(&m->m, a);

		inside = w && w->prot == v->prot;
		a = w ? w->end : a + 1;
	}

	FZ_CHECK(c, c->swap_path[0] && (sz == FZ_PAGE || sz == FZ_2M) && q->va == (va & ~(sz - 1)) &&
		 q->prot == PROT_NONE && !q->pa && !q->mapcount && !q->exclusive,
		 "query %#" PRIx64 ": swapped, size %#" PRIx64 " va %#" PRIx64 " prot %d pa %#" PRIx64
		 " mapcount %u exclusive %d", va, sz, q->va, q->prot, q->pa, q->mapcount, q->exclusive);
	FZ_CHECK(c, inside, "query %#" PRIx64 ": swapped range outside the mapping", va);
}

static void check_leaf(struct fz_case *c, struct fz_mm *m, uint64_t va, const struct hm_mapping *q,
		       const struct fz_vma *v)
{
	uint64_t sz = q->size;

	FZ_CHECK(c, sz == FZ_PAGE || sz == FZ_2M || sz == FZ_1G, "query %#" PRIx64 ": size %#" PRIx64, va, sz);
	FZ_CHECK(c, q->va == (va & ~(sz - 1)) && !(q->pa & (sz - 1)),
		 "query %#" PRIx64 ": leaf va %#" PRIx64 " pa %#" PRIx64 " not aligned to its size", va, q->va, q->pa);
	FZ_CHECK(c, q->pa + sz <= c->cfg.phys_bytes && q->node < c->cfg.nr_nodes && !q->swapped,
		 "query %#" PRIx64 ": pa %#" PRIx64 " node %u swapped %d", va, q->pa, q->node, q->swapped);
	/* A huge leaf lies inside one mapping of one protection. */
	bool inside = true;
	for (uint64_t a = q->va; a < q->va + sz && inside;) {
		const struct fz_vma *w = fz_model_vma(&m->m, a);

		inside = w && w->prot == v->prot;
		a = w ? w->end : a + 1;
	}
	FZ_CHECK(c, inside, "query %#" PRIx64 ": %#" PRIx64 "-byte leaf at %#" PRIx64 " crosses a mapping boundary",
		 va, sz, q->va);
	FZ_CHECK(c, (sz != FZ_1G || c->cfg.thp_pud != HM_THP_NEVER) &&
		 (sz != FZ_2M || c->cfg.thp_pmd != HM_THP_NEVER || c->cfg.thp_pud != HM_THP_NEVER),
		 "query %#" PRIx64 ": a %#" PRIx64 "-byte leaf that the policy never allows", va, sz);
	/* Protection: what the VMA allows, less write while shared. */
	FZ_CHECK(c, (q->prot == PROT_NONE) == (v->prot == PROT_NONE) &&
		 (!(q->prot & PROT_WRITE) || (v->prot & PROT_WRITE)) &&
		 (v->prot == PROT_NONE || !(q->prot & PROT_EXEC) == !(v->prot & PROT_EXEC)),
		 "query %#" PRIx64 ": leaf prot %d in a mapping of prot %d", va, q->prot, v->prot);

	if (q->mapcount == 0) {
		check_zero_leaf(c, va, q);
		return;
	}
	unsigned n = sharers(c, q, va);
	FZ_CHECK(c, q->mapcount == n, "query %#" PRIx64 ": mapcount %u, but %u address spaces map the frame",
		 va, q->mapcount, n);
	/* With swap, a page one mm maps may still be shared with another's
	 * swap entry for the same slot (the swap cache): not exclusive. */
	if (sz == FZ_PAGE)
		FZ_CHECK(c, q->exclusive == (n == 1) || (c->swap_path[0] && !q->exclusive),
			 "query %#" PRIx64 ": exclusive %d with %u mappers", va, q->exclusive, n);
	else
		FZ_CHECK(c, !q->exclusive || n == 1, "query %#" PRIx64 ": exclusive %#" PRIx64 "-byte leaf with %u mappers",
			 va, sz, n);
	if (sz == FZ_2M && c->step % 8 == 0) {
		bool shared = chunk_shared(c, m, q);

		/* Known (FZ_TOLERATE): a chunk once split by another address
		 * space keeps saying "shared" after that one is gone. */
		if (!q->exclusive && !shared && (c->opts & FZ_TOLERATE))
			c->tolerated_excl++;
		else if (!q->exclusive && !shared && c->swap_path[0])
			c->passed++;	/* shared with a swap entry (see above) */
		else
			FZ_CHECK(c, q->exclusive == !shared,
				 "query %#" PRIx64 ": 2 MiB leaf exclusive %d, but another address space maps %s of it",
				 va, q->exclusive, q->exclusive ? "part" : "none");
	}
	/* Isolation: a leaf we may write through is nobody else's. */
	FZ_CHECK(c, !(q->prot & PROT_WRITE) || (q->exclusive && n == 1),
		 "query %#" PRIx64 ": writable %#" PRIx64 "-byte leaf, exclusive %d, %u mappers", va, sz,
		 q->exclusive, n);
}

/* Permissions, by trying them where that changes nothing (so that
 * checking never changes a case's course): a write of the byte the model
 * holds goes through a writable leaf, and faults where the mapping does
 * not allow it; a read faults where the mapping does not allow it. (The
 * operations themselves try every other combination.) */
/* A faulting access runs a whole hm_check under HM_CHECK: there, try only
 * one probe address in 16. */
static bool fault_probe(const struct fz_case *c, uint64_t va)
{
	return !(c->cfg.flags & HM_CHECK) || (va / FZ_PAGE + c->step) % 16 == 0;
}

static void probe_perm(struct fz_case *c, struct fz_mm *m, uint64_t va, const struct fz_vma *v,
		       const struct hm_mapping *q)
{
	uint8_t b, got = 0;
	int r;

	fz_model_read(&m->m, va, &b, 1);
	if (!v || !(v->prot & PROT_WRITE)) {
		if (fault_probe(c, va))
			FZ_RC(c, hm_write(m->mm, va, &b, 1), -EFAULT);
	} else if (q->size && (q->prot & PROT_WRITE)) {
		FZ_RC(c, hm_write(m->mm, va, &b, 1), 0);
	}
	if (!v || v->prot == PROT_NONE) {
		if (fault_probe(c, va))
			FZ_RC(c, hm_read(m->mm, va, &got, 1), -EFAULT);
	} else if (q->size) {
		r = hm_read(m->mm, va, &got, 1);
		if (FZ_RC(c, r, 0))
			FZ_CHECK(c, got == b, "byte %#" PRIx64 " reads %#x, the model says %#x", va, got, b);
	}
}

static void probe_page(struct fz_case *c, struct fz_mm *m, uint64_t va)
{
	static uint8_t got[FZ_PAGE], want[FZ_PAGE];
	struct hm_mapping q;
	const struct fz_vma *v = fz_model_vma(&m->m, va);
	int r = hm_query(m->mm, va, &q);

	if (!FZ_RC(c, r, 0))
		return;
	probe_perm(c, m, va, v, &q);
	if (!v) {
		FZ_CHECK(c, q.size == 0, "query %#" PRIx64 ": mapped (%#" PRIx64 " bytes) outside every mapping", va, q.size);
		return;
	}
	if (q.swapped)
		check_swapped(c, m, va, &q, v);
	else if (q.size)
		check_leaf(c, m, va, &q, v);
	if (v->prot == PROT_NONE)
		return;
	if (!q.size) {
		FZ_CHECK(c, fz_model_page_zero(&m->m, va / FZ_PAGE),
			 "page %#" PRIx64 " holds data but nothing is mapped there", va);
		return;
	}
	r = hm_read(m->mm, va, got, FZ_PAGE);
	if (!FZ_RC(c, r, 0))
		return;
	fz_model_read(&m->m, va, want, FZ_PAGE);
	if (memcmp(got, want, FZ_PAGE)) {
		size_t i = 0;

		while (got[i] == want[i])
			i++;
		fz_fail(c, "page %#" PRIx64 ": byte %#zx reads %#x, the model says %#x", va, i, got[i], want[i]);
	} else {
		c->passed++;
	}
}

void fz_probe(struct fz_case *c, struct fz_mm *m, uint64_t va)
{
	if (va >= c->task_size || c->failed)
		return;
	/* A failure names the probe: its calls are not the step's. */
	c->probing = true;
	c->probe_va = va & ~(FZ_PAGE - 1);
	probe_page(c, m, c->probe_va);
	c->probing = false;
}

void fz_verify_range(struct fz_case *c, struct fz_mm *m, uint64_t va, uint64_t len)
{
	if (!len || va >= c->task_size)
		return;
	uint64_t end = va + len < va || va + len > c->task_size ? c->task_size : va + len;
	unsigned n = 0;

	/* both ends and up to 64 pages between */
	uint64_t stride = ((end - va) / 64 + FZ_PAGE - 1) & ~(FZ_PAGE - 1);
	for (uint64_t a = va & ~(FZ_PAGE - 1); a < end && n < 66; a += stride ? stride : FZ_PAGE, n++)
		fz_probe(c, m, a);
	fz_probe(c, m, end - 1);
}

void fz_verify_all(struct fz_case *c, struct fz_mm *m)
{
	for (size_t i = 0; i < m->m.np && !c->failed; i++)
		fz_probe(c, m, m->m.pno[i] * FZ_PAGE);
	for (size_t i = 0; i < m->m.nv && !c->failed; i++) {
		const struct fz_vma v = m->m.v[i];

		fz_verify_range(c, m, v.start, v.end - v.start);
		fz_probe(c, m, v.end);	/* the next mapping, or a hole */
		if (v.start >= FZ_PAGE)
			fz_probe(c, m, v.start - FZ_PAGE);
	}
}

/* Free frames, and those the huge zero page holds: it stays from the first
 * read fault that maps it until the system is destroyed. */
uint64_t fz_free_frames(struct fz_case *c)
{
	return fz_stat(c, "nr_free_pages") + (fz_stat(c, "thp_zero_page_alloc") ? 512 : 0);
}

uint64_t fz_stat(struct fz_case *c, const char *name)
{
	uint64_t v = 0;

	FZ_CHECK(c, hm_stat(c->sys, name, &v) == 0, "hm_stat(%s) failed", name);
	return v;
}
