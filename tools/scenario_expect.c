/* SPDX-License-Identifier: MIT */
/*
 * expect (a counter, a query result, a word of memory, an error code),
 * let (a value, a counter or a query field into a name), print, echo.
 * A failed expect says what was found and what was expected.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

enum op { EQ, NE, GE, LE, GT, LT, NOP };
static const char *const ops[] = { "==", "!=", ">=", "<=", ">", "<" };

static enum op parse_op(const char *w)
{
	for (int i = 0; i < NOP; i++)
		if (!strcmp(w, ops[i]))
			return (enum op)i;
	return NOP;
}

static bool holds(uint64_t a, enum op op, uint64_t b)
{
	switch (op) {
	case EQ: return a == b;
	case NE: return a != b;
	case GE: return a >= b;
	case LE: return a <= b;
	case GT: return a > b;
	case LT: return a < b;
	default: return false;
	}
}

static int stat_value(struct scn_ctx *c, const struct scn_stmt *s, const char *name, uint64_t *v)
{
	int r;

	if (scn_system(c, s))
		return SCN_FAIL;
	r = hm_stat(c->scn->sys, name, v);
	if (r == -ENOENT)
		return scn_err(c, s, "expected a counter name, got \"%s\" (hugemm stats lists them)", name);
	return r ? scn_err(c, s, "hm_stat %s: %s", name, scn_errname(r)) : 0;
}

static const char *const numeric[] = { "size", "pa", "prot", "node", "mapcount", "va", NULL };
static const char *const boolean[] = { "mapped", "unmapped", "swapped", "exclusive", "shared", NULL };

static int field_index(const char *const *list, const char *w)
{
	for (int i = 0; list[i]; i++)
		if (!strcmp(list[i], w))
			return i;
	return -1;
}

static uint64_t numeric_field(const struct hm_mapping *m, int f)
{
	switch (f) {
	case 0: return m->size;
	case 1: return m->pa;
	case 2: return (uint64_t)m->prot;
	case 3: return m->node;
	case 4: return m->mapcount;
	default: return m->va;
	}
}

static bool boolean_field(const struct hm_mapping *m, int f)
{
	switch (f) {
	case 0: return m->size && !m->swapped;
	case 1: return !m->size;
	case 2: return m->swapped;
	case 3: return m->exclusive;
	default: return m->size && !m->swapped && !m->exclusive;
	}
}

static int query(struct scn_ctx *c, const struct scn_stmt *s, const char *mmname, const char *addr,
		 struct hm_mapping *m, uint64_t *va)
{
	struct hm_mm *mm;
	int r;

	if (scn_mm(c, s, mmname, &mm) || scn_eval(c, s, addr, va))
		return SCN_FAIL;
	r = hm_query(mm, *va, m);
	return r ? scn_err(c, s, "hm_query %s %#llx failed with %s", mmname, (unsigned long long)*va,
			   scn_errname(r)) : 0;
}

static void describe(char *buf, size_t n, const struct hm_mapping *m)
{
	if (!m->size)
		snprintf(buf, n, "nothing mapped");
	else
		snprintf(buf, n, "size %#llx%s, pa %#llx, prot %d, node %u, mapcount %u, %s", (unsigned long long)m->size,
			 m->swapped ? " (swapped)" : "", (unsigned long long)m->pa, m->prot, m->node, m->mapcount,
			 m->exclusive ? "exclusive" : "not exclusive");
}

/* query MM ADDR [not] FIELD [OP] [VALUE] */
static int expect_query(struct scn_ctx *c, struct scn_stmt *s)
{
	struct hm_mapping m;
	uint64_t va, want;
	int i = 3, f;
	bool neg = false;
	char what[256];

	if (s->argc < 4)
		return scn_err(c, s, "expect query: expected MM ADDR [not] FIELD [OP] [VALUE]");
	if (query(c, s, s->argv[1], s->argv[2], &m, &va))
		return SCN_FAIL;
	describe(what, sizeof(what), &m);
	if (!strcmp(s->argv[i], "not") && i + 1 < s->argc) {
		neg = true;
		i++;
	}
	const char *fname = s->argv[i++];

	if ((f = field_index(boolean, fname)) >= 0) {
		if (i != s->argc)
			return scn_err(c, s, "expect query: %s takes no value, got \"%s\"", fname, s->argv[i]);
		if (boolean_field(&m, f) == neg)
			return scn_err(c, s, "expect failed: %s %s is %s%s; found %s", s->argv[1], s->argv[2],
				       neg ? "" : "not ", fname, what);
		return 0;
	}
	if ((f = field_index(numeric, fname)) < 0)
		return scn_err(c, s, "expect query: expected a field (size, pa, prot, node, mapcount, va, mapped, "
			       "unmapped, swapped, exclusive, shared), got \"%s\"", fname);
	enum op op = EQ;

	if (i < s->argc && parse_op(s->argv[i]) != NOP)
		op = parse_op(s->argv[i++]);
	if (i + 1 != s->argc)
		return scn_err(c, s, "expect query: %s: expected [OP] VALUE", fname);
	if (f == 2) {
		int p;

		if (scn_names(c, s, s->argv[i], "PROT_", &p))
			return SCN_FAIL;
		want = (uint64_t)p;
	} else if (scn_eval(c, s, s->argv[i], &want)) {
		return SCN_FAIL;
	}
	uint64_t got = numeric_field(&m, f);

	/* addresses and sizes in hex, counts and nodes in decimal */
	const char *fmt = f == 0 || f == 1 || f == 5 ? "expect failed: %s %s %s is %#llx, expected %s%s %#llx; found %s"
						      : "expect failed: %s %s %s is %llu, expected %s%s %llu; found %s";

	if (holds(got, op, want) == neg)
		return scn_err(c, s, fmt, s->argv[1], s->argv[2], fname, (unsigned long long)got, neg ? "not " : "",
			       ops[op], (unsigned long long)want, what);
	return 0;
}

/* error ECODE COMMAND ... */
static int expect_error(struct scn_ctx *c, struct scn_stmt *s)
{
	int want = scn_errno(s->argv[1]), r;

	if (!want)
		return scn_err(c, s, "expect error: expected an error name (EFAULT, EINVAL, ENOMEM, ...), got \"%s\"",
			       s->argv[1]);
	if (c->in_threads && (s->inner->cmd->flags & SCN_MAIN_ONLY))
		return scn_err(c, s, "%s is not allowed inside threads", s->inner->cmd->name);
	r = s->inner->cmd->run(c, s->inner);
	if (r > 0)
		return SCN_FAIL;
	if (r != -want)
		return scn_err(c, s, "expect failed: %s returned %s, expected %s", s->inner->cmd->name,
			       r ? scn_errname(r) : "0 (success)", s->argv[1]);
	return 0;
}

int scn_cmd_expect(struct scn_ctx *c, struct scn_stmt *s)
{
	const char *kind = s->argv[0];
	uint64_t got, want;
	enum op op;
	int r;

	__atomic_add_fetch(&c->scn->expects, 1, __ATOMIC_RELAXED);
	if (!strcmp(kind, "error"))
		return expect_error(c, s);
	if (!strcmp(kind, "query"))
		return expect_query(c, s);
	if (!strcmp(kind, "stat")) {
		if (s->argc != 4 || (op = parse_op(s->argv[2])) == NOP)
			return scn_err(c, s, "expect stat: expected NAME OP VALUE with OP one of == != >= <= > <");
		if (stat_value(c, s, s->argv[1], &got) || scn_eval(c, s, s->argv[3], &want))
			return SCN_FAIL;
		if (!holds(got, op, want))
			return scn_err(c, s, "expect failed: stat %s is %llu, expected %s %llu", s->argv[1],
				       (unsigned long long)got, ops[op], (unsigned long long)want);
		return 0;
	}
	if (!strcmp(kind, "word")) {
		struct hm_mm *mm;
		uint64_t va;

		if (s->argc != 5 || (op = parse_op(s->argv[3])) == NOP)
			return scn_err(c, s, "expect word: expected MM ADDR OP VALUE");
		if (scn_mm(c, s, s->argv[1], &mm) || scn_eval(c, s, s->argv[2], &va) ||
		    scn_eval(c, s, s->argv[4], &want))
			return SCN_FAIL;
		got = 0;
		r = hm_read(mm, va, &got, 8);
		if (r)
			return scn_err(c, s, "expect word: reading %#llx failed with %s", (unsigned long long)va,
				       scn_errname(r));
		if (!holds(got, op, want))
			return scn_err(c, s, "expect failed: word at %s is %#llx, expected %s %#llx", s->argv[2],
				       (unsigned long long)got, ops[op], (unsigned long long)want);
		return 0;
	}
	return scn_err(c, s, "expect: expected stat, query, word or error, got \"%s\"", kind);
}

int scn_cmd_let(struct scn_ctx *c, struct scn_stmt *s)
{
	uint64_t v;

	if (strcmp(s->argv[1], "="))
		return scn_err(c, s, "let: expected \"let VAR = ...\", got \"%s\" after the name", s->argv[1]);
	if (s->argc == 3) {
		if (scn_eval(c, s, s->argv[2], &v))
			return SCN_FAIL;
	} else if (s->argc == 4 && !strcmp(s->argv[2], "stat")) {
		if (stat_value(c, s, s->argv[3], &v))
			return SCN_FAIL;
	} else if (s->argc == 6 && !strcmp(s->argv[2], "query")) {
		struct hm_mapping m;
		uint64_t va;
		int f = field_index(numeric, s->argv[5]);

		if (f < 0)
			return scn_err(c, s, "let: expected a numeric field (size, pa, prot, node, mapcount, va), got \"%s\"",
				       s->argv[5]);
		if (query(c, s, s->argv[3], s->argv[4], &m, &va))
			return SCN_FAIL;
		v = numeric_field(&m, f);
	} else {
		return scn_err(c, s, "let: expected VAR = VALUE, VAR = stat NAME or VAR = query MM ADDR FIELD");
	}
	return scn_set_var(c, s, s->argv[0], v, 0);
}

int scn_cmd_print(struct scn_ctx *c, struct scn_stmt *s)
{
	uint64_t v;

	if (!strcmp(s->argv[0], "stat")) {
		for (int i = 1; i < s->argc; i++) {
			if (stat_value(c, s, s->argv[i], &v))
				return SCN_FAIL;
			printf("%s %llu\n", s->argv[i], (unsigned long long)v);
		}
		return 0;
	}
	for (int i = 0; i < s->argc; i++) {
		if (scn_eval(c, s, s->argv[i], &v))
			return SCN_FAIL;
		printf("%s = %llu (%#llx)\n", s->argv[i], (unsigned long long)v, (unsigned long long)v);
	}
	return 0;
}

int scn_cmd_echo(struct scn_ctx *c, struct scn_stmt *s)
{
	pthread_mutex_lock(&c->scn->out_lock);
	for (int i = 0; i < s->argc; i++)
		printf("%s%s", i ? " " : "", s->argv[i]);
	putchar('\n');
	pthread_mutex_unlock(&c->scn->out_lock);
	return 0;
}
