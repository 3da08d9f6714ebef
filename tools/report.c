/* SPDX-License-Identifier: MIT */
/*
 * hugemm reports as text (the layout of /proc/PID/smaps, /proc/vmstat) or
 * JSON. Byte counts are exact integers; addresses are hex strings in JSON,
 * since they may not fit a double. docs/reports.md lists every field.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

static int finish(FILE *out, int r)
{
	if (!r && (fflush(out) || ferror(out)))
		r = -EIO;
	return r;
}

static void prot_str(int prot, char s[4])
{
	s[0] = prot & PROT_READ ? 'r' : '-';
	s[1] = prot & PROT_WRITE ? 'w' : '-';
	s[2] = prot & PROT_EXEC ? 'x' : '-';
	s[3] = 0;
}

int report_next_mapping(struct hm_mm *mm, uint64_t va, uint64_t end, struct hm_mapping *m)
{
	struct hm_vma_info vi;
	int r;

	while (va < end) {
		if ((r = hm_vma_next(mm, va, &vi)))
			return r == -ENOENT ? 0 : r;
		if (vi.start >= end)
			return 0;
		if (va < vi.start)
			va = vi.start;
		for (; va < vi.end && va < end;) {
			struct hm_walk w;
			unsigned stop = 0;

			if ((r = hm_query(mm, va, m)))
				return r;
			if (m->size)
				return 1;
			/* Nothing here: skip what the entry where the walk
			 * stopped would have mapped. */
			if ((r = hm_walk(mm, va, &w)))
				return r;
			while (stop + 1 < w.levels && !w.table[stop])
				stop++;
			uint64_t step = w.entry[stop] ? 4096 : 4096ull << (9 * stop);

			va = (va & ~(step - 1)) + step;
		}
	}
	return 0;
}

/* The smaps fields: text label, JSON name, offset in struct hm_smaps. */
static const struct field {
	const char *label, *name;
	size_t off;
} fields[] = {
#define F(label, name) { label, #name, offsetof(struct hm_smaps, name) }
	F("Size", size),
	F("Rss", rss),
	F("Pss", pss),
	F("Shared", rss_shared),
	F("Private", rss_private),
	F("Referenced", referenced),
	F("Dirty", dirty),
	F("AnonHugePages", anon_huge_pmd),
	F("AnonHugePUD", anon_huge_pud),
	F("HugeZero", zero),
	F("Swap", swap),
	F("SwapPMD", swap_pmd),
	F("PageTables", pgtable),
	F("PageTablesDeposited", pgtable_deposited),
#undef F
};

static uint64_t field(const struct hm_smaps *s, const struct field *f)
{
	return *(const uint64_t *)((const char *)s + f->off);
}

static void smaps_text(FILE *out, const struct hm_smaps *s)
{
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		fprintf(out, "%-20s %10llu kB\n", fields[i].label, (unsigned long long)(field(s, &fields[i]) >> 10));
	fprintf(out, "%-20s %10llu\n%-20s %10llu\n%-20s %10llu\n", "Leaves4K", (unsigned long long)s->nr_leaf[0],
		"Leaves2M", (unsigned long long)s->nr_leaf[1], "Leaves1G", (unsigned long long)s->nr_leaf[2]);
}

static void smaps_json(FILE *out, const struct hm_smaps *s)
{
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		fprintf(out, "\"%s\": %llu, ", fields[i].name, (unsigned long long)field(s, &fields[i]));
	fprintf(out, "\"nr_leaf_4k\": %llu, \"nr_leaf_2m\": %llu, \"nr_leaf_1g\": %llu",
		(unsigned long long)s->nr_leaf[0], (unsigned long long)s->nr_leaf[1],
		(unsigned long long)s->nr_leaf[2]);
}

static void vma_flags(FILE *out, const struct hm_vma_info *v, bool json)
{
	static const struct { unsigned bit; const char *vm, *name; } names[] = {
		{ HM_VMA_HUGEPAGE, "hg", "hugepage" },
		{ HM_VMA_NOHUGEPAGE, "nh", "nohugepage" },
		{ HM_VMA_DONTFORK, "dc", "dontfork" },
	};
	const char *sep = "";

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(v->flags & names[i].bit))
			continue;
		if (json)
			fprintf(out, "%s\"%s\"", sep, names[i].name);
		else
			fprintf(out, " %s", names[i].vm);
		sep = ", ";
	}
}

int report_smaps(FILE *out, struct hm_mm *mm, bool json)
{
	struct hm_vma_info v;
	struct hm_smaps s;
	const char *sep = "";
	char p[4];
	int r;

	if (json)
		fprintf(out, "{\"vmas\": [");
	for (uint64_t va = 0; !(r = hm_vma_next(mm, va, &v)); va = v.end) {
		if ((r = hm_smaps(mm, v.start, v.end, &s)))
			return finish(out, r);
		prot_str(v.prot, p);
		if (json) {
			fprintf(out, "%s\n  {\"start\": \"0x%llx\", \"end\": \"0x%llx\", \"prot\": \"%s\", "
				"\"flags\": [", sep, (unsigned long long)v.start, (unsigned long long)v.end, p);
			vma_flags(out, &v, true);
			fprintf(out, "], \"thp_pmd\": %s, \"thp_pud\": %s, ", v.thp_pmd ? "true" : "false",
				v.thp_pud ? "true" : "false");
			smaps_json(out, &s);
			fprintf(out, "}");
			sep = ",";
		} else {
			fprintf(out, "%012llx-%012llx %sp 00000000 00:00 0\n", (unsigned long long)v.start,
				(unsigned long long)v.end, p);
			smaps_text(out, &s);
			fprintf(out, "%-20s %s%s\n", "THPeligible", v.thp_pmd ? " 2M" : "",
				v.thp_pud ? " 1G" : (v.thp_pmd ? "" : " 0"));
			fprintf(out, "%-20s %s%s%s", "VmFlags", p[0] == 'r' ? " rd" : "", p[1] == 'w' ? " wr" : "",
				p[2] == 'x' ? " ex" : "");
			vma_flags(out, &v, false);
			fprintf(out, "\n");
		}
	}
	if (r != -ENOENT)
		return finish(out, r);
	if ((r = hm_smaps(mm, 0, UINT64_MAX, &s)))
		return finish(out, r);
	if (json) {
		fprintf(out, "\n],\n\"rollup\": {");
		smaps_json(out, &s);
		fprintf(out, "}}\n");
	} else {
		fprintf(out, "[rollup]\n");
		smaps_text(out, &s);
	}
	return finish(out, 0);
}

int report_vmstat(FILE *out, struct hm_system *sys, bool json)
{
	const char *name, *sep = "";
	char node[64];
	uint64_t v;
	int r;

	if (json)
		fprintf(out, "{");
	for (unsigned i = 0; (name = hm_stat_name(i)); i++) {
		if ((r = hm_stat(sys, name, &v)))
			return finish(out, r);
		if (json)
			fprintf(out, "%s\n  \"%s\": %llu", sep, name, (unsigned long long)v);
		else
			fprintf(out, "%s %llu\n", name, (unsigned long long)v);
		sep = ",";
	}
	/* Per node, until a node does not exist. */
	for (unsigned n = 0;; n++) {
		snprintf(node, sizeof(node), "node%u/nr_free_pages", n);
		if (hm_stat(sys, node, &v))
			break;
		if (json)
			fprintf(out, "%s\n  \"%s\": %llu", sep, node, (unsigned long long)v);
		else
			fprintf(out, "%s %llu\n", node, (unsigned long long)v);
	}
	if (json)
		fprintf(out, "\n}\n");
	return finish(out, 0);
}

int report_pagemap(FILE *out, struct hm_mm *mm, uint64_t start, uint64_t end, bool json)
{
	struct hm_mapping m;
	const char *sep = "";
	char p[4];
	int r;

	if (start > end)
		return -EINVAL;
	if (json)
		fprintf(out, "{\"start\": \"0x%llx\", \"end\": \"0x%llx\", \"entries\": [",
			(unsigned long long)start, (unsigned long long)end);
	else
		fprintf(out, "%-18s %5s %12s %4s %8s %s\n", "va", "size", "pfn", "node", "mapcount", "flags");
	for (uint64_t va = start; (r = report_next_mapping(mm, va, end, &m)) > 0; va = m.va + m.size) {
		prot_str(m.prot, p);
		if (json) {
			fprintf(out, "%s\n  {\"va\": \"0x%llx\", \"size\": %llu, \"pfn\": %llu, \"node\": %u, "
				"\"mapcount\": %u, \"swapped\": %s, \"exclusive\": %s, \"prot\": \"%s\"}", sep,
				(unsigned long long)m.va, (unsigned long long)m.size,
				(unsigned long long)(m.pa >> 12), m.node, m.mapcount, m.swapped ? "true" : "false",
				m.exclusive ? "true" : "false", p);
			sep = ",";
			continue;
		}
		fprintf(out, "0x%016llx %5s ", (unsigned long long)m.va,
			m.size == (1ull << 30) ? "1G" : m.size == (2ull << 20) ? "2M" : "4K");
		if (m.swapped)
			fprintf(out, "%12s %4s %8s swapped\n", "-", "-", "-");
		else
			fprintf(out, "%#12llx %4u %8u %s%s\n", (unsigned long long)(m.pa >> 12), m.node, m.mapcount, p,
				m.exclusive ? " exclusive" : "");
	}
	if (json)
		fprintf(out, "\n]}\n");
	return finish(out, r);
}
