/* SPDX-License-Identifier: MIT */
/*
 * The reports of tools/report*.c (public API only): the SVG picture is
 * well-formed XML and draws exactly what hm_query says is mapped, for a
 * known address space and for a sparse one; the text and JSON reports
 * list every VMA, leaf and counter.
 */
#include <ctype.h>

#include "harness.h"
#include "report.h"

/* Every step ends in STEP (hm_check); HM_CHECK after every single call
 * would check the 1 GiB page's descriptors dozens of times more (minutes
 * under TSan). */
#define NO_CHECK_FLAG() (t_flags = 0)

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define TiB (1ull << 40)

static char *buf;
static size_t len;

/* Run a report into buf. */
#define CAPTURE(call)							\
	do {								\
		FILE *cap_f = open_memstream(&buf, &len);			\
		REQUIRE(cap_f != NULL);					\
		CHECK_EQ(call, 0);					\
		REQUIRE(fclose(cap_f) == 0);				\
	} while (0)
#define OUT cap_f

/*
 * Well-formed enough for any XML reader: tags balanced and properly
 * nested, one root, every attribute name="value" and unique, no '<' or
 * stray '&' in text. Returns the number of elements, -1 if malformed.
 */
static long xml_elements(const char *s)
{
	const char *stack[64];
	size_t stack_len[64];
	int depth = 0, roots = 0;
	long n = 0;

	if (!strncmp(s, "<?xml", 5) && !(s = strstr(s, "?>") ? strstr(s, "?>") + 2 : NULL))
		return -1;
	while (*s) {
		if (*s == '&') {
			const char *e = strchr(s, ';');

			if (!e || e - s > 8)
				return -1;
			s = e + 1;
			continue;
		}
		if (*s != '<') {
			if (!depth && !isspace((unsigned char)*s))
				return -1;
			s++;
			continue;
		}
		bool close = s[1] == '/';
		const char *name = s + 1 + close;
		size_t nl = strcspn(name, " \t\n/>");

		if (!nl)
			return -1;
		s = name + nl;
		if (close) {
			if (!depth || *s != '>' || stack_len[depth - 1] != nl || strncmp(stack[depth - 1], name, nl))
				return -1;
			depth--;
			s++;
			continue;
		}
		/* Attributes. */
		const char *attr[32];
		size_t attr_len[32], na = 0;

		for (;;) {
			while (isspace((unsigned char)*s))
				s++;
			if (*s == '>' || !strncmp(s, "/>", 2))
				break;
			size_t al = strcspn(s, "= \t\n>");

			if (!al || s[al] != '=' || s[al + 1] != '"' || na == 32)
				return -1;
			for (size_t i = 0; i < na; i++)
				if (attr_len[i] == al && !strncmp(attr[i], s, al))
					return -1;
			attr[na] = s;
			attr_len[na++] = al;
			const char *end = strchr(s + al + 2, '"');

			if (!end || memchr(s + al + 2, '<', (size_t)(end - s - al - 2)))
				return -1;
			s = end + 1;
		}
		n++;
		if (!depth && roots++)
			return -1;
		if (*s == '/') {
			s += 2;
			continue;
		}
		if (depth == 64)
			return -1;
		stack[depth] = name;
		stack_len[depth++] = nl;
		s++;
	}
	return depth || roots != 1 ? -1 : n;
}

struct rect {
	char kind[16];
	uint64_t va, size, deposit;
};

/* The rects that carry data-kind, in document order. */
static size_t rects(const char *s, struct rect *out, size_t max)
{
	size_t n = 0;

	while ((s = strstr(s, "<rect class=")) && n < max) {
		const char *end = strchr(s, '>'), *k = strstr(s, "data-kind=\""), *d;

		if (k && k < end) {
			struct rect *r = &out[n++];

			memset(r, 0, sizeof(*r));
			sscanf(k, "data-kind=\"%15[^\"]\" data-va=\"%" SCNx64 "\" data-size=\"%" SCNu64 "\"", r->kind,
			       &r->va, &r->size);
			if ((d = strstr(s, "data-deposit=\"")) && d < end)
				r->deposit = strtoull(d + 14, NULL, 10);
		}
		s = end;
	}
	return n;
}

/* The kind the picture gives the mapping @m. */
static const char *kind_of(const struct hm_mapping *m)
{
	if (m->swapped)
		return "swap";
	if (!m->mapcount)
		return "zero";
	return m->size == GiB ? "1g" : m->size == 2 * MiB ? "2m" : "4k";
}

/* Is [va, va + size) inside one rect of @kind? */
static bool drawn(const struct rect *r, size_t n, const char *kind, uint64_t va, uint64_t size)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(r[i].kind, kind) && va >= r[i].va && va + size <= r[i].va + r[i].size)
			return true;
	return false;
}

/* Every mapping hm_query finds is drawn in its kind (and underlined if
 * shared), every rect of those kinds covers mappings only, and huge
 * mappings carry their deposits. */
static void svg_matches(struct hm_mm *mm, bool eager)
{
	CAPTURE(report_svg(OUT, mm));
	CHECK(xml_elements(buf) > 0);
	size_t max = 100000, n;
	struct rect *r = calloc(max, sizeof(*r));

	REQUIRE(r != NULL);
	n = rects(buf, r, max);
	CHECK(n > 0 && n < max);
	uint64_t bytes = 0, drawn_bytes = 0, shared = 0, drawn_shared = 0, huge = 0, deposits = 0, dep_bytes = 0;
	struct hm_vma_info v;
	struct hm_mapping m;

	for (uint64_t va = 0; hm_vma_next(mm, va, &v) == 0; va = v.end) {
		for (uint64_t a = v.start; a < v.end; a = m.size ? m.va + m.size : a + 4096) {
			CHECK_EQ(hm_query(mm, a, &m), 0);
			if (!m.size)
				continue;
			bytes += m.size;
			CHECK(drawn(r, n, kind_of(&m), m.va, m.size));
			if (!m.swapped && m.mapcount && !m.exclusive) {
				shared += m.size;
				CHECK(drawn(r, n, "shared", m.va, m.size));
			}
			huge += m.size > 4096;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(r[i].kind, "shared"))
			drawn_shared += r[i].size;
		else if (!strcmp(r[i].kind, "deposit"))
			deposits++, dep_bytes += r[i].deposit;
		else
			drawn_bytes += r[i].size;
	}
	CHECK_EQ(drawn_bytes, bytes);
	CHECK_EQ(drawn_shared, shared);
	struct hm_smaps all;

	CHECK_EQ(hm_smaps(mm, 0, UINT64_MAX, &all), 0);
	CHECK_EQ(deposits, eager ? huge : 0);
	CHECK_EQ(dep_bytes, all.pgtable_deposited);
	free(r);
	free(buf);
}

static uint64_t svg_height(const char *s)
{
	const char *h = strstr(s, "height=\"");

	return h ? strtoull(h + 8, NULL, 10) : 0;
}

/* The known address space: a 1 GiB page, 2 MiB pages (one in swap), 4 KiB
 * pages (one in swap), the huge zero page, a small mapping 4 TiB below;
 * forked, and the child copied a page of the 1 GiB one. */
static void known(int deposit)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *p, *c;
	uint64_t a, b, s, z, far;

	NO_CHECK_FLAG();
	t_config(&cfg, 3 * GiB, HM_THP_MADVISE, HM_THP_ALWAYS, deposit);
	cfg.swap_path = t_swap_path();
	cfg.swap_bytes = 64 * MiB;
	sys = t_system_cfg(&cfg);
	REQUIRE(hm_mm_create(sys, &p) == 0);
	REQUIRE(hm_mmap(p, 0, GiB, RW, PA, &a) == 0);
	CHECK_EQ(hm_madvise(p, a, GiB, MADV_HUGEPAGE), 0);
	t_poke(p, a, 1);
	STEP(sys);
	REQUIRE(hm_mmap(p, 0, 6 * MiB, RW, PA, &b) == 0);
	CHECK_EQ(t_fill(p, b, 6 * MiB, 2), 0);
	STEP(sys);
	CHECK_EQ(hm_madvise(p, b + 2 * MiB, 2 * MiB, MADV_PAGEOUT), 0);
	STEP(sys);
	REQUIRE(hm_mmap(p, 0, 64 * KiB, RW, PA, &s) == 0);
	CHECK_EQ(hm_madvise(p, s, 64 * KiB, MADV_NOHUGEPAGE), 0);
	CHECK_EQ(t_fill(p, s, 32 * KiB, 3), 0);
	STEP(sys);
	CHECK_EQ(hm_madvise(p, s + 8192, 4096, MADV_PAGEOUT), 0);
	STEP(sys);
	REQUIRE(hm_mmap(p, 0, 4 * MiB, PROT_READ, PA, &z) == 0);
	t_peek(p, z + 2 * MiB);
	STEP(sys);
	REQUIRE(hm_mmap(p, a - 4 * TiB, 16 * KiB, RW, PA | MAP_FIXED_NOREPLACE, &far) == 0);
	t_poke(p, far, 5);
	STEP(sys);
	REQUIRE(hm_fork(p, &c) == 0);
	STEP(sys);
	t_poke(c, a + 5 * MiB, 9);
	STEP(sys);

	svg_matches(p, deposit == HM_DEPOSIT_EAGER);
	STEP(sys);
	svg_matches(c, deposit == HM_DEPOSIT_EAGER);
	STEP(sys);

	/* The 4 TiB gap is marked, with its size, not drawn. */
	CAPTURE(report_svg(OUT, p));
	char want[96];

	snprintf(want, sizeof(want), "class=\"gap\" data-start=\"0x%" PRIx64 "\" data-size=\"%" PRIu64 "\"",
		 (uint64_t)(far + 16 * KiB), (uint64_t)(a - far - 16 * KiB));
	CHECK(strstr(buf, want) != NULL);
	CHECK(svg_height(buf) < 1000);
	free(buf);

	/* smaps: one block per VMA and the rollup; JSON likewise. */
	unsigned nv = 0;
	struct hm_vma_info v;
	struct hm_smaps all;

	for (uint64_t va = 0; hm_vma_next(p, va, &v) == 0; va = v.end)
		nv++;
	CHECK_EQ(hm_smaps(p, 0, UINT64_MAX, &all), 0);
	CAPTURE(report_smaps(OUT, p, false));
	unsigned rss_lines = 0;

	for (const char *q = buf; (q = strstr(q, "\nRss ")); q++)
		rss_lines++;
	CHECK_EQ(rss_lines, nv + 1);
	snprintf(want, sizeof(want), "[rollup]\n%-20s %10" PRIu64 " kB\n%-20s %10" PRIu64 " kB", "Size",
		 all.size >> 10, "Rss", all.rss >> 10);
	CHECK(strstr(buf, want) != NULL);
	free(buf);
	CAPTURE(report_smaps(OUT, p, true));
	unsigned starts = 0;

	for (const char *q = buf; (q = strstr(q, "\"start\": ")); q++)
		starts++;
	CHECK_EQ(starts, nv);
	snprintf(want, sizeof(want), "\"rollup\": {\"size\": %" PRIu64 ", \"rss\": %" PRIu64 ",", all.size, all.rss);
	CHECK(strstr(buf, want) != NULL);
	free(buf);

	/* pagemap: one entry per leaf or swap entry of the range. */
	struct hm_mapping m;
	unsigned leaves = 0, entries = 0;

	for (uint64_t q = b; q < b + 6 * MiB; q = m.va + m.size) {
		CHECK_EQ(hm_query(p, q, &m), 0);
		leaves++;
	}
	CAPTURE(report_pagemap(OUT, p, b, b + 6 * MiB, true));
	for (const char *q = buf; (q = strstr(q, "{\"va\": ")); q++)
		entries++;
	CHECK_EQ(entries, leaves);
	/* (Lazy mode's MADV_PAGEOUT leaves the 2 MiB page alone.) */
	CHECK((strstr(buf, "\"swapped\": true") != NULL) == (deposit == HM_DEPOSIT_EAGER));
	free(buf);
	CAPTURE(report_pagemap(OUT, p, s, s + 64 * KiB, false));
	CHECK(strstr(buf, "swapped") != NULL);
	free(buf);

	/* vmstat: every counter once, with hm_stat's value. */
	CAPTURE(report_vmstat(OUT, sys, false));
	const char *name;
	uint64_t val;

	for (unsigned i = 0; (name = hm_stat_name(i)); i++) {
		char line[96];

		snprintf(line, sizeof(line), "\n%s ", name);
		CHECK(strstr(buf, line) != NULL || !strncmp(buf, line + 1, strlen(line) - 1));
	}
	CHECK_EQ(hm_stat(sys, "phys_bytes", &val), 0);
	snprintf(want, sizeof(want), "\nphys_bytes %" PRIu64 "\n", val);
	CHECK(strstr(buf, want) != NULL);
	CHECK(strstr(buf, "\nnode0/nr_free_pages ") != NULL);
	free(buf);
	STEP(sys);
	hm_mm_destroy(c);
	hm_mm_destroy(p);
	STEP(sys);
	hm_system_destroy(sys);
}

static void known_eager(void) { known(HM_DEPOSIT_EAGER); }
static void known_lazy(void) { known(HM_DEPOSIT_LAZY); }

/* A few small VMAs far apart in a 4 TiB system with 5 levels: cheap to
 * draw (the walk skips what no table maps), every gap marked. */
static void sparse(void)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm;
	uint64_t at[] = { 0x10000, 4 * TiB, 100 * TiB, 1ull << 52 }, got;

	NO_CHECK_FLAG();
	t_config(&cfg, 64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	cfg.levels = 5;
	sys = t_system_cfg(&cfg);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	for (size_t i = 0; i < 4; i++) {
		REQUIRE(hm_mmap(mm, at[i], 8 * MiB, RW, PA | MAP_FIXED, &got) == 0);
		t_poke(mm, at[i] + 3 * MiB, i);
	}
	/* And one large VMA with nothing faulted in. */
	REQUIRE(hm_mmap(mm, 200 * TiB, 256 * MiB, RW, PA | MAP_FIXED | MAP_NORESERVE, &got) == 0);
	STEP(sys);
	svg_matches(mm, true);
	CAPTURE(report_svg(OUT, mm));
	unsigned gaps = 0;

	for (const char *q = buf; (q = strstr(q, "class=\"gap\"")); q++)
		gaps++;
	CHECK_EQ(gaps, 4);
	CHECK(svg_height(buf) < 1000);
	free(buf);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* A dense map: 2048 VMAs with no gap between them share one band, drawn to
 * scale with a line at each VMA: a picture of normal height. */
static void dense(void)
{
	NO_CHECK_FLAG();
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 8 * MiB, RW, PA, &a) == 0);
	CHECK_EQ(t_fill(mm, a, 8 * MiB, 1), 0);
	for (uint64_t off = 0; off < 8 * MiB; off += 8192)
		CHECK_EQ(hm_mprotect(mm, a + off, 4096, PROT_READ), 0);
	STEP(sys);
	svg_matches(mm, true);
	CAPTURE(report_svg(OUT, mm));
	unsigned bands = 0, vmas = 0;

	for (const char *q = buf; (q = strstr(q, "<g class=\"vma\"")); q++) {
		const char *d = strstr(q, "data-vmas=\"");

		bands++;
		if (d)
			vmas += (unsigned)strtoul(d + 11, NULL, 10);
	}
	CHECK_EQ(bands, 1);
	CHECK_EQ(vmas, 2048);
	CHECK(svg_height(buf) < 1000);
	free(buf);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* 100 small VMAs, every tenth after a 1 GiB gap, the rest 1 MiB apart:
 * more than fit a band each, so the bands are cut at the ten largest gaps
 * (each marked), and the 1 MiB gaps are drawn to scale inside them. */
static void scattered(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t base = 1ull << 40, at = base, got;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	for (unsigned i = 0; i < 100; i++) {
		at += i % 10 ? MiB : GiB;
		REQUIRE(hm_mmap(mm, at, 16 * KiB, RW, PA | MAP_FIXED_NOREPLACE, &got) == 0);
		t_poke(mm, at + (i % 4) * 4096, i);
	}
	STEP(sys);
	svg_matches(mm, true);
	CAPTURE(report_svg(OUT, mm));
	unsigned bands = 0, vmas = 0, gaps = 0;

	for (const char *q = buf; (q = strstr(q, "<g class=\"vma\"")); q++) {
		const char *d = strstr(q, "data-vmas=\"");

		bands++;
		if (d)
			vmas += (unsigned)strtoul(d + 11, NULL, 10);
	}
	for (const char *q = buf; (q = strstr(q, "<g class=\"gap\"")); q++)
		gaps++;
	CHECK_EQ(bands, 10);
	CHECK_EQ(vmas, 100);
	CHECK_EQ(gaps, 9);
	CHECK(svg_height(buf) < 1000);
	free(buf);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* The checker itself rejects what it must. */
static void checker(void)
{
	CHECK_EQ(xml_elements("<svg><rect a=\"1\"/></svg>"), 2);
	CHECK_EQ(xml_elements("<?xml version=\"1.0\"?>\n<svg><g><text>a &amp; b</text></g></svg>\n"), 3);
	CHECK_EQ(xml_elements("<svg><g></svg>"), -1);
	CHECK_EQ(xml_elements("<svg><rect a=1/></svg>"), -1);
	CHECK_EQ(xml_elements("<svg><rect a=\"1\" a=\"2\"/></svg>"), -1);
	CHECK_EQ(xml_elements("<svg></svg><svg></svg>"), -1);
	CHECK_EQ(xml_elements("<svg>a & b</svg>"), -1);
	CHECK_EQ(xml_elements("<svg><g></h></svg>"), -1);
}

T_MAIN(T(checker), T(known_eager), T(known_lazy), T(sparse), T(dense), T(scattered))
