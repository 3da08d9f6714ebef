/* SPDX-License-Identifier: MIT */
/*
 * Reports like the kernel's /proc files, for the hugemm command and its
 * scenario runner (tools/report.c, tools/report_svg.c). Public API only.
 * Field names and units: docs/reports.md. Each returns 0 or a negative
 * errno (the first error of a hugemm call, or -EIO if writing @out failed).
 */
#ifndef HUGEMM_TOOL_REPORT_H
#define HUGEMM_TOOL_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <hugemm.h>

/* smaps: every VMA of @mm with its hm_smaps counts, then the rollup. */
int report_smaps(FILE *out, struct hm_mm *mm, bool json);
/* vmstat: every counter hm_stat_name lists, then the per-node ones. */
int report_vmstat(FILE *out, struct hm_system *sys, bool json);
/* pagemap: every leaf and swap entry of [start, end), one line each. */
int report_pagemap(FILE *out, struct hm_mm *mm, uint64_t start, uint64_t end, bool json);
/* A picture of the address space (SVG): VMAs as bands, pages by size. */
int report_svg(FILE *out, struct hm_mm *mm);

/* The next mapping (leaf or swap entry, as hm_query reports it) at or
 * above @va and below @end, into *m: 1, or 0 when there is none; < 0 for
 * an error. Skips holes a table level at a time (hm_walk), so a sparse
 * range costs its tables, not its pages. */
int report_next_mapping(struct hm_mm *mm, uint64_t va, uint64_t end, struct hm_mapping *m);

/* hugemm report (tools/report_cmd.c): the reports of a sample address
 * space, for the command's main. */
#define REPORT_USAGE \
	"hugemm report [smaps|vmstat|pagemap|all|svg FILE] [--json] [--child] [--range START END] [--swap FILE]\n"
int report_main(int argc, char **argv);

#endif
