/* SPDX-License-Identifier: MIT */
/*
 * Values: numbers with K/M/G/T suffixes, variables (a region's address,
 * NAME.len, NAME.end), tid and iter, + - * / % without spaces; and the
 * host's PROT_/MAP_/MADV_ and errno names.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

struct name_val {
	const char *name;
	int value;
};

#define NV(x) { #x, x }

static const struct name_val mman_names[] = {
	NV(PROT_NONE), NV(PROT_READ), NV(PROT_WRITE), NV(PROT_EXEC),
	NV(MAP_PRIVATE), NV(MAP_SHARED), NV(MAP_ANONYMOUS), { "MAP_ANON", MAP_ANONYMOUS },
	NV(MAP_FIXED), NV(MAP_FIXED_NOREPLACE), NV(MAP_POPULATE), NV(MAP_NORESERVE),
	NV(MADV_NORMAL), NV(MADV_RANDOM), NV(MADV_SEQUENTIAL), NV(MADV_WILLNEED),
	NV(MADV_DONTNEED), NV(MADV_DONTFORK), NV(MADV_DOFORK), NV(MADV_HUGEPAGE),
	NV(MADV_NOHUGEPAGE), NV(MADV_PAGEOUT), NV(MADV_COLLAPSE),
#ifdef MADV_FREE
	NV(MADV_FREE),
#endif
#ifdef MADV_COLD
	NV(MADV_COLD),
#endif
#ifdef MADV_REMOVE
	NV(MADV_REMOVE),
#endif
#ifdef MADV_MERGEABLE
	NV(MADV_MERGEABLE), NV(MADV_UNMERGEABLE),
#endif
#ifdef MADV_DONTDUMP
	NV(MADV_DONTDUMP), NV(MADV_DODUMP),
#endif
#ifdef MADV_WIPEONFORK
	NV(MADV_WIPEONFORK), NV(MADV_KEEPONFORK),
#endif
#ifdef MADV_POPULATE_READ
	NV(MADV_POPULATE_READ), NV(MADV_POPULATE_WRITE),
#endif
	{ NULL, 0 }
};

static const struct name_val errnos[] = {
	NV(EPERM), NV(ENOENT), NV(EINTR), NV(EIO), NV(EBADF), NV(EAGAIN), NV(ENOMEM),
	NV(EACCES), NV(EFAULT), NV(EBUSY), NV(EEXIST), NV(ENODEV), NV(EISDIR), NV(EINVAL),
	NV(ENOSPC), NV(ERANGE), NV(EOVERFLOW), NV(EUCLEAN), NV(ENOTSUP), NV(ETIMEDOUT),
	{ NULL, 0 }
};

/* "EFAULT" -> EFAULT (positive), or 0 for a name we do not know. */
int scn_errno(const char *name)
{
	for (const struct name_val *e = errnos; e->name; e++)
		if (!strcmp(e->name, name))
			return e->value;
	return 0;
}

/* -EFAULT -> "EFAULT", for messages. */
const char *scn_errname(int err)
{
	for (const struct name_val *e = errnos; e->name; e++)
		if (e->value == -err || e->value == err)
			return e->name;
	return "E?";
}

bool scn_is_name(const char *tok)
{
	if (!isalpha((unsigned char)*tok) && *tok != '_')
		return false;
	for (; *tok; tok++)
		if (!isalnum((unsigned char)*tok) && *tok != '_')
			return false;
	return true;
}

struct scn_var *scn_var(struct scn *sc, const char *name)
{
	for (int i = 0; i < sc->nvars; i++)
		if (!strcmp(sc->vars[i].name, name))
			return &sc->vars[i];
	return NULL;
}

int scn_set_var(struct scn_ctx *c, const struct scn_stmt *s, const char *name, uint64_t v, uint64_t len)
{
	struct scn *sc = c->scn;
	struct scn_var *var = scn_var(sc, name);

	if (c->in_threads)
		return scn_err(c, s, "cannot set \"%s\" inside threads (the threads share the names)", name);
	if (!scn_is_name(name) || !strcmp(name, "tid") || !strcmp(name, "iter"))
		return scn_err(c, s, "expected a variable name (letters, digits, _; not tid or iter), got \"%s\"",
			       name);
	if (!var) {
		if (sc->nvars == SCN_MAX_VARS)
			return scn_err(c, s, "more than %d variables", SCN_MAX_VARS);
		var = &sc->vars[sc->nvars++];
		var->name = strdup(name);
	}
	var->value = v;
	var->len = len;
	return 0;
}

/* One term: a number with an optional suffix, or a name. */
static int term(struct scn_ctx *c, const struct scn_stmt *s, const char *tok, const char **p, uint64_t *out)
{
	const char *q = *p;

	if (isdigit((unsigned char)*q)) {
		char *end;

		errno = 0;
		uint64_t v = strtoull(q, &end, 0);
		unsigned shift = 0;

		switch (*end) {
		case 'K': case 'k': shift = 10; break;
		case 'M': case 'm': shift = 20; break;
		case 'G': case 'g': shift = 30; break;
		case 'T': case 't': shift = 40; break;
		}
		if (shift)
			end++;
		if (errno || (shift && v > UINT64_MAX >> shift))
			return scn_err(c, s, "number too large in \"%s\"", tok);
		if (isalnum((unsigned char)*end) || *end == '_')
			return scn_err(c, s, "expected a number with K, M, G or T after it, got \"%s\"", tok);
		*out = v << shift;
		*p = end;
		return 0;
	}
	char name[128];
	size_t n = 0;

	while ((isalnum((unsigned char)q[n]) || q[n] == '_' || q[n] == '.') && n < sizeof(name) - 1)
		n++;
	if (!n)
		return scn_err(c, s, "expected a number or a name in \"%s\" at \"%s\"", tok, q);
	memcpy(name, q, n);
	name[n] = 0;
	*p = q + n;
	if (!strcmp(name, "tid")) {
		*out = c->tid;
		return 0;
	}
	if (!strcmp(name, "iter")) {
		*out = c->iter;
		return 0;
	}
	char *dot = strchr(name, '.');
	if (dot)
		*dot = 0;
	struct scn_var *v = scn_var(c->scn, name);

	if (!v)
		return scn_err(c, s, "unknown name \"%s\" in \"%s\" (set it with mmap %s = ... or let %s = ...)", name,
			       tok, name, name);
	if (!dot)
		*out = v->value;
	else if (!strcmp(dot + 1, "len"))
		*out = v->len;
	else if (!strcmp(dot + 1, "end"))
		*out = v->value + v->len;
	else
		return scn_err(c, s, "expected %s.len or %s.end, got \"%s.%s\"", name, name, name, dot + 1);
	return 0;
}

/* A product: terms joined by * / %. */
static int product(struct scn_ctx *c, const struct scn_stmt *s, const char *tok, const char **p, uint64_t *out)
{
	uint64_t v, w;

	if (term(c, s, tok, p, &v))
		return SCN_FAIL;
	while (**p == '*' || **p == '/' || **p == '%') {
		char op = *(*p)++;

		if (term(c, s, tok, p, &w))
			return SCN_FAIL;
		if (op != '*' && !w)
			return scn_err(c, s, "division by zero in \"%s\"", tok);
		if (op == '*' && __builtin_mul_overflow(v, w, &v))
			return scn_err(c, s, "\"%s\" is out of range (above 2^64 - 1)", tok);
		if (op != '*')
			v = op == '/' ? v / w : v % w;
	}
	*out = v;
	return 0;
}

/* An expression: products joined by + and -, no spaces: "a+2M", "b.end-4K". */
int scn_eval(struct scn_ctx *c, const struct scn_stmt *s, const char *tok, uint64_t *out)
{
	const char *p = tok;
	uint64_t v, w;

	if (product(c, s, tok, &p, &v))
		return SCN_FAIL;
	while (*p == '+' || *p == '-') {
		char op = *p++;

		if (product(c, s, tok, &p, &w))
			return SCN_FAIL;
		if (op == '+' ? __builtin_add_overflow(v, w, &v) : __builtin_sub_overflow(v, w, &v))
			return scn_err(c, s, "\"%s\" is out of range (below 0 or above 2^64 - 1)", tok);
	}
	if (*p)
		return scn_err(c, s, "expected a value (number, name, + - * / %%) but \"%s\" has \"%s\" left over", tok,
			       p);
	*out = v;
	return 0;
}

/* PROT_READ|PROT_WRITE and the like: names starting with @prefix ("PROT_",
 * "MAP_", "MADV_") or numbers, joined by |. */
int scn_names(struct scn_ctx *c, const struct scn_stmt *s, const char *tok, const char *prefix, int *out)
{
	char buf[256], *save = NULL;
	int v = 0;

	if (strlen(tok) >= sizeof(buf))
		return scn_err(c, s, "\"%s\" is too long", tok);
	strcpy(buf, tok);
	for (char *w = strtok_r(buf, "|", &save); w; w = strtok_r(NULL, "|", &save)) {
		const struct name_val *n;

		if (isdigit((unsigned char)*w)) {
			char *end;

			v |= (int)strtol(w, &end, 0);
			if (*end)
				return scn_err(c, s, "expected %s* names or numbers joined by |, got \"%s\"", prefix, w);
			continue;
		}
		for (n = mman_names; n->name; n++)
			if (!strncmp(n->name, prefix, strlen(prefix)) && !strcmp(n->name, w))
				break;
		if (!n->name)
			return scn_err(c, s, "expected %s* names joined by | (as in <sys/mman.h>), got \"%s\"", prefix, w);
		v |= n->value;
	}
	if (!*tok || tok[strlen(tok) - 1] == '|')
		return scn_err(c, s, "expected %s* names joined by |, got \"%s\"", prefix, tok);
	*out = v;
	return 0;
}
