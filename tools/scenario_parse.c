/* SPDX-License-Identifier: MIT */
/*
 * Reading a script: lines to words, words to statements, blocks matched.
 * Everything that can be checked without running (command names, how many
 * words each takes, braces) is checked here, so that a typo on the last
 * line is reported before the first line has run for minutes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

struct line {
	int no;
	int argc;
	char **argv;
};

struct lines {
	struct line *v;
	int n, cap, pos;
	const char *file;
};

static int perr(const char *file, int line, const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "%s:%d: ", file, line);
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	return -EINVAL;
}

static void oom(void)
{
	fprintf(stderr, "hugemm run: out of memory\n");
	exit(1);
}

static void *xalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p)
		oom();
	return p;
}

/* Split @buf into words; '#' starts a comment. */
static void split(char *buf, struct line *l)
{
	char *save = NULL, *w;
	int cap = 8;
	char *hash = strchr(buf, '#');

	if (hash)
		*hash = 0;
	l->argv = xalloc(cap * sizeof(char *));
	for (w = strtok_r(buf, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		if (l->argc + 1 >= cap) {
			cap *= 2;
			l->argv = realloc(l->argv, cap * sizeof(char *));
			if (!l->argv)
				oom();
		}
		l->argv[l->argc++] = strdup(w);
	}
}

static int read_lines(FILE *in, struct lines *ls)
{
	char *buf = NULL;
	size_t cap = 0;
	int no = 0;

	while (getline(&buf, &cap, in) >= 0) {
		struct line l = { .no = ++no };

		split(buf, &l);
		if (!l.argc) {
			free(l.argv);
			continue;
		}
		if (ls->n == ls->cap) {
			ls->cap = ls->cap ? 2 * ls->cap : 64;
			ls->v = realloc(ls->v, ls->cap * sizeof(*ls->v));
			if (!ls->v)
				oom();
		}
		ls->v[ls->n++] = l;
	}
	free(buf);
	return ferror(in) ? -EIO : 0;
}

static int check_args(const char *file, int no, const struct scn_cmd *cmd, int argc)
{
	char n[32];

	if (argc >= cmd->min_args && argc <= cmd->max_args)
		return 0;
	snprintf(n, sizeof(n), "%d", argc);
	fprintf(stderr, "%s:%d: %s: expected \"%s %s\", got %s word%s after it\n", file, no, cmd->name,
		cmd->name, cmd->usage, n, argc == 1 ? "" : "s");
	return -EINVAL;
}

/* The statement of one line (its block, if it opens one, is read by the caller). */
static int make_stmt(struct lines *ls, struct line *l, int first, struct scn_stmt *s)
{
	const char *name = l->argv[first];
	const struct scn_cmd *cmd = scn_lookup(name);
	int argc = l->argc - first - 1;
	bool block = argc >= 0 && !strcmp(l->argv[l->argc - 1], "{");

	if (!cmd)
		return perr(ls->file, l->no, "unknown command \"%s\"%s (see docs/scenarios.md)", name,
			    !strcmp(name, "{") ? ": a block opens at the end of a repeat or threads line" : "");
	if (block && !(cmd->flags & SCN_BLOCK))
		return perr(ls->file, l->no, "%s takes no block: \"{\" is unexpected%s", name, "");
	if (!block && (cmd->flags & SCN_BLOCK))
		return perr(ls->file, l->no, "%s: expected \"{\" at the end of the line%s", name, "");
	if (block)
		argc--;
	if (check_args(ls->file, l->no, cmd, argc))
		return -EINVAL;
	s->cmd = cmd;
	s->line = l->no;
	s->argc = argc;
	s->argv = l->argv + first + 1;
	/* expect error ECODE COMMAND ...: the command is a statement of its own */
	if (!strcmp(name, "expect") && argc >= 1 && !strcmp(s->argv[0], "error") && argc < 3)
		return perr(ls->file, l->no, "expect error: expected ECODE COMMAND ...%s%s", "", "");
	if (!strcmp(name, "expect") && argc >= 3 && !strcmp(s->argv[0], "error")) {
		s->inner = xalloc(sizeof(*s->inner));
		if (make_stmt(ls, l, first + 3, s->inner))
			return -EINVAL;
		if (s->inner->cmd->flags & (SCN_BLOCK | SCN_MAIN_ONLY) && strcmp(s->inner->cmd->name, "fork") &&
		    strcmp(s->inner->cmd->name, "mm"))
			return perr(ls->file, l->no, "expect error: \"%s\" cannot be expected to fail%s",
				    s->inner->cmd->name, "");
	}
	return 0;
}

/* Blocks nest at most this deep: the parser and the runner recurse. */
#define MAX_DEPTH 64	/* the message below says so */

static int parse_block(struct lines *ls, int depth, struct scn_stmt **out, int *nout)
{
	struct scn_stmt *v = NULL;
	int n = 0, cap = 0;

	if (depth > MAX_DEPTH && ls->pos > 0)
		return perr(ls->file, ls->v[ls->pos - 1].no, "blocks nest more than 64 deep%s%s", "", "");

	while (ls->pos < ls->n) {
		struct line *l = &ls->v[ls->pos++];

		if (!strcmp(l->argv[0], "}")) {
			if (l->argc > 1)
				return perr(ls->file, l->no, "expected \"}\" alone on its line, got \"%s\" after it%s",
					    l->argv[1], "");
			if (!depth)
				return perr(ls->file, l->no, "\"}\" closes no block%s%s", "", "");
			*out = v;
			*nout = n;
			return 0;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			v = realloc(v, cap * sizeof(*v));
			if (!v)
				oom();
		}
		struct scn_stmt *s = &v[n++];

		memset(s, 0, sizeof(*s));
		/* stored as it grows, so that scn_free finds a half-read script */
		*out = v;
		*nout = n;
		if (make_stmt(ls, l, 0, s))
			return -EINVAL;
		if (s->cmd->flags & SCN_BLOCK) {
			if (parse_block(ls, depth + 1, &s->body, &s->nbody))
				return -EINVAL;
			for (int i = 0; i < s->nbody && !strcmp(s->cmd->name, "threads"); i++)
				if (s->body[i].cmd->flags & SCN_MAIN_ONLY)
					return perr(ls->file, s->body[i].line,
						    "%s is not allowed inside threads (it changes names the threads share)%s",
						    s->body[i].cmd->name, "");
		}
	}
	if (depth)
		return perr(ls->file, ls->v[ls->n - 1].no, "expected \"}\" before the end of the file%s%s", "", "");
	*out = v;
	*nout = n;
	return 0;
}

/* Read the script from @in; 0, or -EINVAL after printing file:line: what. */
int scn_parse(struct scn *sc, FILE *in)
{
	struct lines *ls = xalloc(sizeof(*ls));

	ls->file = sc->file;
	sc->lines = ls;
	if (read_lines(in, ls)) {
		fprintf(stderr, "%s: cannot read: %s\n", sc->file, strerror(errno));
		return -EIO;
	}
	return parse_block(ls, 0, &sc->prog, &sc->nprog);
}

static void free_stmts(struct scn_stmt *v, int n)
{
	for (int i = 0; i < n; i++) {
		free_stmts(v[i].body, v[i].nbody);
		if (v[i].inner)
			free_stmts(v[i].inner, 1);
	}
	free(v);
}

/* Everything scn_parse made (the words belong to the lines). */
void scn_free(struct scn *sc)
{
	struct lines *ls = sc->lines;

	free_stmts(sc->prog, sc->nprog);
	sc->prog = NULL;
	for (int i = 0; ls && i < ls->n; i++) {
		for (int k = 0; k < ls->v[i].argc; k++)
			free(ls->v[i].argv[k]);
		free(ls->v[i].argv);
	}
	if (ls)
		free(ls->v);
	free(ls);
	sc->lines = NULL;
}

const struct scn_cmd *scn_lookup(const char *name)
{
	for (const struct scn_cmd *c = scn_cmds; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}
