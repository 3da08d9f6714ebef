/* SPDX-License-Identifier: MIT */
/*
 * A picture of an address space (SVG). Each VMA is a band of the same
 * width, whatever its size, with scale marks in its own units; the gaps
 * between VMAs are not drawn to scale but marked with their size, so a
 * few small VMAs in terabytes of address space read as well as a dense
 * map. Past MAX_BANDS VMAs, neighbours share a band, drawn to scale with
 * a line at each VMA's start: the bands are cut at the largest gaps that
 * are wider than all the VMAs together, so a dense map of thousands of
 * VMAs stays a picture of a few bands. Inside a band, consecutive pages of one kind are one rectangle:
 * 1 GiB, 2 MiB and 4 KiB pages, the huge zero page and pages in swap in
 * colours of their own; pages shared with another address space (after
 * fork) are underlined; each huge mapping's deposited page tables are a
 * mark above it. Every rectangle carries data-kind, data-va and data-size
 * (bytes), so that tests and scripts can read the picture back.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

#define WIDTH	1000.0
#define LABEL_W	270.0
#define BAND_W	(WIDTH - LABEL_W - 20.0)
#define TOP	70.0
#define BAND_H	58.0
#define GAP_H	20.0
#define MAX_BANDS 24

static const struct kind {
	const char *name, *colour, *legend;
} kinds[] = {
	{ "1g", "#1f4e9c", "1 GiB page" },
	{ "2m", "#3e9c35", "2 MiB page" },
	{ "4k", "#e8a33d", "4 KiB page" },
	{ "zero", "#b9b9b9", "huge zero page" },
	{ "swap", "#c0392b", "in swap" },
	{ "shared", "#8e44ad", "shared (after fork)" },
	{ "deposit", "#222222", "deposited page tables" },
};
enum { K_1G, K_2M, K_4K, K_ZERO, K_SWAP, K_SHARED, K_DEPOSIT };

static void human(uint64_t b, char *s, size_t n)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)b;
	unsigned u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(s, n, v == (uint64_t)v ? "%.0f %s" : "%.2f %s", v, unit[u]);
}

struct band {
	FILE *out;
	struct hm_mm *mm;
	uint64_t start, size;
	double y;
};

static double xof(const struct band *b, uint64_t va)
{
	return LABEL_W + BAND_W * (double)(va - b->start) / (double)b->size;
}

static void rect(const struct band *b, unsigned k, uint64_t va, uint64_t size, double y, double h, const char *extra,
		 double inset)
{
	double x = xof(b, va), w = xof(b, va + size) - x;

	if (w > 3 * inset) {
		x += inset;
		w -= 2 * inset;
	}
	char hs[32];

	human(size, hs, sizeof(hs));
	fprintf(b->out,
		"<rect class=\"%s\" data-kind=\"%s\" data-va=\"0x%llx\" data-size=\"%llu\"%s x=\"%.2f\" y=\"%.1f\" "
		"width=\"%.2f\" height=\"%.1f\" fill=\"%s\"><title>%s 0x%llx, %s</title></rect>\n",
		kinds[k].name, kinds[k].name, (unsigned long long)va, (unsigned long long)size, extra ? extra : "",
		x, y, w < 1 ? 1 : w, h, kinds[k].colour, kinds[k].legend, (unsigned long long)va, hs);
}

/* A run of pages of one kind, drawn when the next page is not one more. */
struct run {
	int kind;
	uint64_t va, end;
};

static void run_add(const struct band *b, struct run *r, int kind, uint64_t va, uint64_t size, double y, double h)
{
	if (r->kind == kind && r->end == va) {
		r->end = va + size;
		return;
	}
	if (r->kind >= 0)
		rect(b, (unsigned)r->kind, r->va, r->end - r->va, y, h, NULL, 0);
	r->kind = kind;
	r->va = va;
	r->end = va + size;
}

/* The deposit of the huge mapping at @m (hm_smaps counts it where the
 * mapping begins). */
static int deposit(const struct band *b, const struct hm_mapping *m)
{
	struct hm_smaps s;
	char extra[48];
	int r;

	if ((r = hm_smaps(b->mm, m->va, m->va + m->size, &s)) || !s.pgtable_deposited)
		return r;
	snprintf(extra, sizeof(extra), " data-deposit=\"%llu\"", (unsigned long long)s.pgtable_deposited);
	/* One mark per mapping, inset so that neighbours stay apart. */
	rect(b, K_DEPOSIT, m->va, m->size, b->y, 4, extra, 0.5);
	return 0;
}

static void scale(const struct band *b)
{
	uint64_t step = 4096;
	char hs[32];

	while (b->size / step > 8)
		step <<= 1;
	for (uint64_t off = 0; off <= b->size; off += step) {
		double x = xof(b, b->start + off);

		fprintf(b->out, "<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" stroke=\"#555\"/>\n", x,
			b->y + 34, x, b->y + 39);
		human(off, hs, sizeof(hs));
		fprintf(b->out, "<text x=\"%.2f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"middle\">+%s</text>\n", x,
			b->y + 48, off ? hs : "0");
	}
}

/* One band: VMAs v[0..n) drawn to scale between v[0].start and v[n-1].end. */
static int band(FILE *out, struct hm_mm *mm, const struct hm_vma_info *v, unsigned n, double y)
{
	struct band b = { out, mm, v[0].start, v[n - 1].end - v[0].start, y };
	struct run size_run = { -1, 0, 0 }, shared_run = { -1, 0, 0 };
	struct hm_mapping m;
	char hs[32];
	int r = 0;

	human(b.size, hs, sizeof(hs));
	fprintf(out, "<g class=\"vma\" data-start=\"0x%llx\" data-end=\"0x%llx\" data-vmas=\"%u\">\n",
		(unsigned long long)b.start, (unsigned long long)(b.start + b.size), n);
	fprintf(out, "<text x=\"6\" y=\"%.1f\" font-size=\"11\" font-family=\"monospace\">0x%012llx-0x%012llx</text>\n",
		y + 14, (unsigned long long)b.start, (unsigned long long)(b.start + b.size));
	if (n == 1)
		fprintf(out, "<text x=\"6\" y=\"%.1f\" font-size=\"11\">%s %c%c%c%s%s%s</text>\n", y + 28, hs,
			v->prot & PROT_READ ? 'r' : '-', v->prot & PROT_WRITE ? 'w' : '-',
			v->prot & PROT_EXEC ? 'x' : '-', v->flags & HM_VMA_HUGEPAGE ? " MADV_HUGEPAGE" : "",
			v->flags & HM_VMA_NOHUGEPAGE ? " MADV_NOHUGEPAGE" : "",
			v->flags & HM_VMA_DONTFORK ? " MADV_DONTFORK" : "");
	else
		fprintf(out, "<text x=\"6\" y=\"%.1f\" font-size=\"11\">%s, %u VMAs to scale</text>\n", y + 28, hs,
			n);
	for (unsigned i = 0; i < n; i++) {
		double x = xof(&b, v[i].start), w = xof(&b, v[i].end) - x;

		fprintf(out, "<rect class=\"vma\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"26\" fill=\"#f2f2f2\" "
			"stroke=\"#999\" stroke-width=\"%s\"/>\n", x, y + 6, w, n == 1 ? "0.5" : "0.2");
	}
	for (unsigned i = 0; i < n && !r; i++) {
		for (uint64_t va = v[i].start; (r = report_next_mapping(mm, va, v[i].end, &m)) > 0; va = m.va + m.size) {
			int k = m.swapped ? K_SWAP : !m.mapcount ? K_ZERO :
				m.size == (1ull << 30) ? K_1G : m.size == (2ull << 20) ? K_2M : K_4K;

			run_add(&b, &size_run, k, m.va, m.size, y + 6, 20);
			if (!m.swapped && m.mapcount && !m.exclusive)
				run_add(&b, &shared_run, K_SHARED, m.va, m.size, y + 26, 6);
			if (m.size > 4096 && (r = deposit(&b, &m)))
				break;
		}
	}
	run_add(&b, &size_run, -1, 0, 0, y + 6, 20);
	run_add(&b, &shared_run, -1, 0, 0, y + 26, 6);
	scale(&b);
	fprintf(out, "</g>\n");
	return r;
}

static void gap(FILE *out, uint64_t start, uint64_t end, double y)
{
	char hs[32];

	human(end - start, hs, sizeof(hs));
	fprintf(out, "<g class=\"gap\" data-start=\"0x%llx\" data-size=\"%llu\">"
		"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>"
		"<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#666\" text-anchor=\"middle\">"
		"gap of %s (not to scale)</text></g>\n",
		(unsigned long long)start, (unsigned long long)(end - start), LABEL_W, y + 8, LABEL_W + BAND_W, y + 8,
		LABEL_W + BAND_W / 2, y + 17, hs);
}

/* Order of gap sizes, largest first (for qsort over the VMAs' indices). */
static const struct hm_vma_info *gap_of;

static int by_gap(const void *x, const void *y)
{
	unsigned i = *(const unsigned *)x, j = *(const unsigned *)y;
	uint64_t gi = gap_of[i + 1].start - gap_of[i].end, gj = gap_of[j + 1].start - gap_of[j].end;

	return gi < gj ? 1 : gi > gj ? -1 : i < j ? -1 : i > j;
}

/* The VMAs of @mm in *v (malloc'ed), and a band cut after each VMA i with
 * cut[i]: after every one when they are few, else at the largest gaps. */
static int layout(struct hm_mm *mm, struct hm_vma_info **vp, bool **cutp, unsigned *np)
{
	struct hm_vma_info *v = NULL, *nv;
	unsigned n = 0, cap = 0, *idx;
	bool *cut;
	int r;

	for (uint64_t va = 0;; va = v[n++].end) {
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			if (!(nv = realloc(v, cap * sizeof(*v)))) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		if ((r = hm_vma_next(mm, va, &v[n])))
			break;
	}
	if (r != -ENOENT || !(cut = calloc(n + 1, sizeof(*cut)))) {
		free(v);
		return r != -ENOENT ? r : -ENOMEM;
	}
	if (n <= MAX_BANDS) {
		for (unsigned i = 0; i < n; i++)
			cut[i] = true;
	} else {
		if (!(idx = malloc((n - 1) * sizeof(*idx)))) {
			free(cut);
			free(v);
			return -ENOMEM;
		}
		uint64_t mapped = 0;

		for (unsigned i = 0; i < n; i++)
			mapped += v[i].end - v[i].start;
		for (unsigned i = 0; i + 1 < n; i++)
			idx[i] = i;
		gap_of = v;
		qsort(idx, n - 1, sizeof(*idx), by_gap);
		/* A gap wider than all the VMAs together would crush them if
		 * drawn to scale: cut there; the narrower ones are drawn. */
		for (unsigned k = 0; k < MAX_BANDS - 1 && v[idx[k] + 1].start - v[idx[k]].end > mapped; k++)
			cut[idx[k]] = true;
		cut[n - 1] = true;
		free(idx);
	}
	*vp = v;
	*cutp = cut;
	*np = n;
	return 0;
}

int report_svg(FILE *out, struct hm_mm *mm)
{
	struct hm_vma_info *v;
	bool *cut;
	unsigned n, nb = 0, ng = 0;
	int r;

	if ((r = layout(mm, &v, &cut, &n)))
		return r;
	for (unsigned i = 0; i < n; i++)
		if (cut[i]) {
			nb++;
			ng += i + 1 < n && v[i + 1].start > v[i].end;
		}
	double h = TOP + nb * BAND_H + ng * GAP_H + 10, y = TOP;

	fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		"viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
		"<text x=\"6\" y=\"18\" font-size=\"14\" font-weight=\"bold\">hugemm address space: %u VMA%s</text>\n",
		WIDTH, h, WIDTH, h, n, n == 1 ? "" : "s");
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		double x = 6 + (double)k * 140;

		fprintf(out, "<rect x=\"%.0f\" y=\"32\" width=\"14\" height=\"14\" fill=\"%s\"/>"
			"<text x=\"%.0f\" y=\"44\" font-size=\"11\">%s</text>\n", x, kinds[k].colour, x + 18,
			kinds[k].legend);
	}
	fprintf(out, "<text x=\"6\" y=\"62\" font-size=\"10\" fill=\"#666\">%s; grey: mapped but not faulted "
		"in</text>\n", nb == n ? "each VMA is drawn at full width with its own scale" :
		"neighbouring VMAs share a band, to scale");
	for (unsigned first = 0, i = 0; i < n && !r; i++) {
		if (!cut[i])
			continue;
		if ((r = band(out, mm, v + first, i + 1 - first, y)))
			break;
		y += BAND_H;
		if (i + 1 < n && v[i + 1].start > v[i].end) {
			gap(out, v[i].end, v[i + 1].start, y);
			y += GAP_H;
		}
		first = i + 1;
	}
	free(cut);
	free(v);
	if (r)
		return r;
	fprintf(out, "</svg>\n");
	return fflush(out) || ferror(out) ? -EIO : 0;
}
