/* SPDX-License-Identifier: MIT */
/*
 * The reference model of an address space: sorted mappings, and the pages
 * that hold data (copy-on-write between a model and its fork clones, so
 * that forking a model costs no copy). Written to be obviously right, not
 * fast: everything is a sorted array and a linear walk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q) {
		fprintf(stderr, "fuzz model: out of host memory\n");
		abort();
	}
	return q;
}

void fz_model_init(struct fz_model *m)
{
	memset(m, 0, sizeof(*m));
}

static void page_put(struct fz_page *p)
{
	if (--p->ref == 0)
		free(p);
}

void fz_model_free(struct fz_model *m)
{
	for (size_t i = 0; i < m->np; i++)
		page_put(m->pg[i]);
	free(m->v);
	free(m->pno);
	free(m->pg);
	fz_model_init(m);
}

/* ---- mappings ---- */

static void vma_insert_at(struct fz_model *m, size_t i, struct fz_vma v)
{
	if (m->nv == m->vcap) {
		m->vcap = m->vcap ? m->vcap * 2 : 16;
		m->v = xrealloc(m->v, m->vcap * sizeof(*m->v));
	}
	memmove(&m->v[i + 1], &m->v[i], (m->nv - i) * sizeof(*m->v));
	m->v[i] = v;
	m->nv++;
}

/* Index of the first mapping that ends after @va. */
static size_t vma_index(const struct fz_model *m, uint64_t va)
{
	size_t lo = 0, hi = m->nv;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (m->v[mid].end <= va)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct fz_vma *fz_model_vma(const struct fz_model *m, uint64_t va)
{
	size_t i = vma_index(m, va);

	return i < m->nv && m->v[i].start <= va ? &m->v[i] : NULL;
}

static bool allows(int prot, int need)
{
	if (need == PROT_WRITE)
		return prot & PROT_WRITE;
	if (need == PROT_READ)
		return prot != PROT_NONE;	/* x86: write or exec imply read */
	return true;
}

bool fz_model_covers(const struct fz_model *m, uint64_t start, uint64_t end, int need)
{
	uint64_t at = start;

	for (size_t i = vma_index(m, start); i < m->nv && at < end; i++) {
		if (m->v[i].start > at || !allows(m->v[i].prot, need))
			return false;
		at = m->v[i].end;
	}
	return at >= end;
}

bool fz_model_overlaps(const struct fz_model *m, uint64_t start, uint64_t end)
{
	size_t i = vma_index(m, start);

	return i < m->nv && m->v[i].start < end;
}

/* Make @va a mapping boundary if a mapping straddles it. */
static void vma_split(struct fz_model *m, uint64_t va)
{
	size_t i = vma_index(m, va);

	if (i < m->nv && m->v[i].start < va) {
		struct fz_vma right = m->v[i];

		right.start = va;
		m->v[i].end = va;
		vma_insert_at(m, i + 1, right);
	}
}

void fz_model_unmap(struct fz_model *m, uint64_t start, uint64_t end)
{
	vma_split(m, start);
	vma_split(m, end);
	size_t i = vma_index(m, start), j = i;

	while (j < m->nv && m->v[j].start < end)
		j++;
	if (j > i)	/* (and m->v may be NULL otherwise) */
		memmove(&m->v[i], &m->v[j], (m->nv - j) * sizeof(*m->v));
	m->nv -= j - i;
	fz_model_zero(m, start, end);
}

void fz_model_map(struct fz_model *m, uint64_t start, uint64_t end, int prot)
{
	fz_model_unmap(m, start, end);
	vma_insert_at(m, vma_index(m, start), (struct fz_vma){ start, end, prot, 0 });
}

void fz_model_protect(struct fz_model *m, uint64_t start, uint64_t end, int prot)
{
	vma_split(m, start);
	vma_split(m, end);
	for (size_t i = vma_index(m, start); i < m->nv && m->v[i].start < end; i++)
		m->v[i].prot = prot;
}

void fz_model_flags(struct fz_model *m, uint64_t start, uint64_t end, unsigned clear, unsigned set)
{
	vma_split(m, start);
	vma_split(m, end);
	for (size_t i = vma_index(m, start); i < m->nv && m->v[i].start < end; i++)
		m->v[i].flags = (m->v[i].flags & ~clear) | set;
}

bool fz_model_gap(const struct fz_model *m, uint64_t len, uint64_t align, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i <= m->nv; i++) {
		uint64_t gs = i == 0 ? lo : m->v[i - 1].end;
		uint64_t ge = i == m->nv ? hi : m->v[i].start;

		if (gs < lo)
			gs = lo;
		if (ge > hi)
			ge = hi;
		uint64_t a = (gs + align - 1) & ~(align - 1);
		if (a >= gs && ge > a && ge - a >= len)
			return true;
	}
	return false;
}

/* ---- data ---- */

/* Index of the first page >= pno. */
static size_t page_index(const struct fz_model *m, uint64_t pno)
{
	size_t lo = 0, hi = m->np;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (m->pno[mid] < pno)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void fz_model_zero(struct fz_model *m, uint64_t start, uint64_t end)
{
	if (end <= start || !m->np)
		return;
	size_t i = page_index(m, start / FZ_PAGE), j = page_index(m, (end - 1) / FZ_PAGE + 1);

	for (size_t k = i; k < j; k++)
		page_put(m->pg[k]);
	memmove(&m->pno[i], &m->pno[j], (m->np - j) * sizeof(*m->pno));
	memmove(&m->pg[i], &m->pg[j], (m->np - j) * sizeof(*m->pg));
	m->np -= j - i;
}

/* The page for writing: created zeroed, or made private to this model. */
static struct fz_page *page_for_write(struct fz_model *m, uint64_t pno)
{
	size_t i = page_index(m, pno);

	if (i < m->np && m->pno[i] == pno) {
		struct fz_page *p = m->pg[i];

		if (p->ref > 1) {
			struct fz_page *c = xrealloc(NULL, sizeof(*c));

			memcpy(c->b, p->b, FZ_PAGE);
			c->ref = 1;
			p->ref--;
			m->pg[i] = c;
		}
		return m->pg[i];
	}
	if (m->np == m->pcap) {
		m->pcap = m->pcap ? m->pcap * 2 : 64;
		m->pno = xrealloc(m->pno, m->pcap * sizeof(*m->pno));
		m->pg = xrealloc(m->pg, m->pcap * sizeof(*m->pg));
	}
	memmove(&m->pno[i + 1], &m->pno[i], (m->np - i) * sizeof(*m->pno));
	memmove(&m->pg[i + 1], &m->pg[i], (m->np - i) * sizeof(*m->pg));
	struct fz_page *p = xrealloc(NULL, sizeof(*p));
	memset(p->b, 0, FZ_PAGE);
	p->ref = 1;
	m->pno[i] = pno;
	m->pg[i] = p;
	m->np++;
	return p;
}

void fz_model_write(struct fz_model *m, uint64_t va, const uint8_t *buf, uint64_t len)
{
	while (len) {
		uint64_t off = va % FZ_PAGE, n = FZ_PAGE - off < len ? FZ_PAGE - off : len;

		memcpy(page_for_write(m, va / FZ_PAGE)->b + off, buf, n);
		va += n;
		buf += n;
		len -= n;
	}
}

void fz_model_read(const struct fz_model *m, uint64_t va, uint8_t *buf, uint64_t len)
{
	while (len) {
		uint64_t off = va % FZ_PAGE, n = FZ_PAGE - off < len ? FZ_PAGE - off : len;
		size_t i = page_index(m, va / FZ_PAGE);

		if (i < m->np && m->pno[i] == va / FZ_PAGE)
			memcpy(buf, m->pg[i]->b + off, n);
		else
			memset(buf, 0, n);
		va += n;
		buf += n;
		len -= n;
	}
}

bool fz_model_page_zero(const struct fz_model *m, uint64_t pno)
{
	size_t i = page_index(m, pno);

	if (i == m->np || m->pno[i] != pno)
		return true;
	for (size_t k = 0; k < FZ_PAGE; k++)
		if (m->pg[i]->b[k])
			return false;
	return true;
}

void fz_model_fork(struct fz_model *child, const struct fz_model *parent)
{
	fz_model_init(child);
	for (size_t i = 0; i < parent->nv; i++)
		if (!(parent->v[i].flags & FZ_DONTFORK))
			vma_insert_at(child, child->nv, parent->v[i]);
	for (size_t i = 0; i < parent->np; i++) {
		uint64_t va = parent->pno[i] * FZ_PAGE;

		if (!fz_model_vma(child, va))
			continue;
		if (child->np == child->pcap) {
			child->pcap = child->pcap ? child->pcap * 2 : 64;
			child->pno = xrealloc(child->pno, child->pcap * sizeof(*child->pno));
			child->pg = xrealloc(child->pg, child->pcap * sizeof(*child->pg));
		}
		child->pno[child->np] = parent->pno[i];
		child->pg[child->np++] = parent->pg[i];
		parent->pg[i]->ref++;
	}
}
