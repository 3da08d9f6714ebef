/* SPDX-License-Identifier: MIT */
/*
 * report KIND [MM] [ARGS]: the script's side (which mm, values evaluated)
 * and scn_report, the kinds themselves: vmstat here; smaps, pagemap and
 * svg from tools/report.c and tools/report_svg.c.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "scenario.h"

/* Every counter hm_stat_name lists, then the per-node ones it does not. */
/* A whole token as a number (values were evaluated before: see below). */
static int number(const char *tok, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(tok, &end, 0);
	return errno || end == tok || *end || *tok == '-' ? -EINVAL : 0;
}

static int vmstat(FILE *out, struct hm_system *sys, int argc, char **argv)
{
	bool json = argc == 1 && !strcmp(argv[0], "--json");
	const char *name;
	char node[32];
	uint64_t v;

	if (argc && !json) {
		fprintf(stderr, "report vmstat: expected nothing or --json, got \"%s\"\n", argv[0]);
		return -EINVAL;
	}
	if (json)
		fputc('{', out);
	for (unsigned i = 0; (name = hm_stat_name(i)); i++) {
		v = 0;
		hm_stat(sys, name, &v);
		if (json)
			fprintf(out, "%s\"%s\": %llu", i ? ", " : "", name, (unsigned long long)v);
		else
			fprintf(out, "%s %llu\n", name, (unsigned long long)v);
	}
	for (unsigned n = 0; n < 64; n++) {
		snprintf(node, sizeof(node), "node%u/nr_free_pages", n);
		if (hm_stat(sys, node, &v))
			break;
		if (json)
			fprintf(out, ", \"%s\": %llu", node, (unsigned long long)v);
		else
			fprintf(out, "%s %llu\n", node, (unsigned long long)v);
	}
	if (json)
		fputs("}\n", out);
	return 0;
}

/* The kinds about one mm: smaps [--json], pagemap START END [--json],
 * svg FILE. */
static int about_mm(FILE *out, struct hm_mm *mm, const char *kind, int argc, char **argv)
{
	bool json = argc && !strcmp(argv[argc - 1], "--json");
	int n = argc - json, r;

	if (!mm) {
		fprintf(stderr, "report %s: name the mm (report %s MM ...)\n", kind, kind);
		return -EINVAL;
	}
	if (!strcmp(kind, "smaps") && !n)
		return report_smaps(out, mm, json);
	if (!strcmp(kind, "pagemap") && n == 2) {
		uint64_t start, end;

		if (number(argv[0], &start) || number(argv[1], &end) || start >= end) {
			fprintf(stderr, "report pagemap: expected START END, numbers with START < END, got \"%s\" \"%s\"\n",
				argv[0], argv[1]);
			return -EINVAL;
		}
		return report_pagemap(out, mm, start, end, json);
	}
	if (!strcmp(kind, "svg") && argc == 1) {
		FILE *f = fopen(argv[0], "w");

		if (!f) {
			fprintf(stderr, "report svg: %s: %s\n", argv[0], strerror(errno));
			return -errno;
		}
		r = report_svg(f, mm);
		if (fclose(f) && !r)
			r = -EIO;
		return r;
	}
	fprintf(stderr, "report %s: expected %s\n", kind,
		!strcmp(kind, "smaps") ? "nothing or --json" :
		!strcmp(kind, "pagemap") ? "START END [--json]" : "FILE");
	return -EINVAL;
}

int scn_report(FILE *out, struct hm_system *sys, struct hm_mm *mm, const char *kind, int argc, char **argv)
{
	if (!strcmp(kind, "vmstat"))
		return vmstat(out, sys, argc, argv);
	if (!strcmp(kind, "smaps") || !strcmp(kind, "pagemap") || !strcmp(kind, "svg"))
		return about_mm(out, mm, kind, argc, argv);
	fprintf(stderr, "report: unknown kind \"%s\" (kinds: vmstat, smaps, pagemap, svg, timeline)\n", kind);
	return -EINVAL;
}

/* Is @tok a value (a number, or an expression starting with a name we
 * know), to be evaluated before the report sees it? */
static bool is_value(struct scn *sc, const char *tok)
{
	char name[128];
	size_t n = 0;

	if (isdigit((unsigned char)*tok))
		return true;
	while (tok[n] && !strchr("+-*/%.", tok[n]) && n < sizeof(name) - 1) {
		name[n] = tok[n];
		n++;
	}
	name[n] = 0;
	return scn_var(sc, name) || !strcmp(name, "tid") || !strcmp(name, "iter");
}

int scn_cmd_report(struct scn_ctx *c, struct scn_stmt *s)
{
	struct scn *sc = c->scn;
	struct hm_mm *mm = NULL;
	const char *kind = s->argv[0];
	int i = 1, argc = 0, r;
	char **argv, bufs[32][24];

	if (!strcmp(kind, "timeline")) {
		struct scn_stmt t = *s;

		t.argc--;
		t.argv++;
		if (t.argc < 1 || t.argc > 2)
			return scn_err(c, s, "report timeline: expected FILE [INTERVAL_MS]");
		return scn_cmd_timeline(c, &t);
	}
	if (scn_system(c, s))
		return SCN_FAIL;
	for (int k = 0; k < sc->nmms && s->argc > 1; k++)
		if (!strcmp(sc->mms[k].name, s->argv[1])) {
			mm = sc->mms[k].mm;
			i = 2;
		}
	argv = calloc(s->argc + 1, sizeof(char *));
	if (!argv)
		return scn_err(c, s, "report: out of host memory");
	for (; i < s->argc; i++) {
		uint64_t v;

		argv[argc] = s->argv[i];
		if (is_value(sc, s->argv[i])) {
			if (scn_eval(c, s, s->argv[i], &v)) {
				free(argv);
				return SCN_FAIL;
			}
			snprintf(bufs[argc], sizeof(bufs[argc]), "%#llx", (unsigned long long)v);
			argv[argc] = bufs[argc];
		}
		argc++;
	}
	fflush(stdout);
	r = scn_report(stdout, sc->sys, mm, kind, argc, argv);
	fflush(stdout);
	free(argv);
	if (r)
		return scn_err(c, s, "report %s failed (%s): what was wrong is printed above", kind, scn_errname(r));
	return 0;
}
