/* SPDX-License-Identifier: MIT */
/*
 * The machine and its address spaces: system settings (collected until the
 * first line that needs the system, which creates it), mm, fork, destroy,
 * and the teardown that checks every frame came back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scenario.h"
#include "swapfile.h"

static int policy(struct scn_ctx *c, const struct scn_stmt *s, const char *key, const char *v, int *out)
{
	if (!strcmp(v, "never"))
		*out = HM_THP_NEVER;
	else if (!strcmp(v, "madvise"))
		*out = HM_THP_MADVISE;
	else if (!strcmp(v, "always"))
		*out = HM_THP_ALWAYS;
	else
		return scn_err(c, s, "system %s: expected never, madvise or always, got \"%s\"", key, v);
	return 0;
}

static int number(struct scn_ctx *c, const struct scn_stmt *s, const char *tok, unsigned *out)
{
	uint64_t v;

	if (scn_eval(c, s, tok, &v))
		return SCN_FAIL;
	if (v > UINT32_MAX)
		return scn_err(c, s, "\"%s\" is too large here", tok);
	*out = (unsigned)v;
	return 0;
}

/* A swap file name of our own under $TMPDIR (or /tmp), removed at exit:
 * never a name shared with another run, so none to fall back on. */
static int swap_auto(struct scn_ctx *c, const struct scn_stmt *s, struct scn *sc)
{
	const char *p = tool_swap_path("run");

	if (!p)
		return scn_err(c, s, "system swap auto: no more swap file names in this run");
	snprintf(sc->swap_auto, sizeof(sc->swap_auto), "%s", p);
	sc->cfg.swap_path = sc->swap_auto;
	return 0;
}

static const struct {
	const char *name;
	unsigned flag;
} flags[] = {
	{ "khugepaged", HM_KHUGEPAGED }, { "protect", HM_PROTECT_TABLES }, { "prezero", HM_PREZERO },
	{ "populate", HM_POPULATE_ARENA }, { "check_ops", HM_CHECK },
};

int scn_cmd_system(struct scn_ctx *c, struct scn_stmt *s)
{
	struct scn *sc = c->scn;
	struct hm_config *cfg = &sc->cfg;

	if (sc->sys)
		return scn_err(c, s, "system settings must come before the first line that uses the system");
	sc->sys_stmt = s;
	for (int i = 0; i < s->argc; i++) {
		const char *k = s->argv[i];
		bool has = i + 1 < s->argc;
		int r = 0;
		unsigned done = 0;

		for (unsigned f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
			if (!strcmp(k, flags[f].name)) {
				cfg->flags |= flags[f].flag;
				done = 1;
			}
		if (done)
			continue;
		if (!strcmp(k, "check") || !strcmp(k, "nocheck")) {
			sc->check = !strcmp(k, "check");
			continue;
		}
		if (!has)
			return scn_err(c, s, "system %s: expected a value after it", k);
		const char *v = s->argv[++i];

		if (!strcmp(k, "memory")) {
			r = scn_eval(c, s, v, &cfg->phys_bytes);
		} else if (!strcmp(k, "nodes")) {
			r = number(c, s, v, &cfg->nr_nodes);
		} else if (!strcmp(k, "levels")) {
			r = number(c, s, v, &cfg->levels);
		} else if (!strcmp(k, "swap")) {
			if (i + 1 >= s->argc)
				return scn_err(c, s, "system swap: expected FILE SIZE (FILE may be auto)");
			if (!strcmp(v, "auto"))
				r = swap_auto(c, s, sc);
			else
				cfg->swap_path = v;
			if (!r)
				r = scn_eval(c, s, s->argv[++i], &cfg->swap_bytes);
		} else if (!strcmp(k, "thp_pud")) {
			r = policy(c, s, k, v, &cfg->thp_pud);
		} else if (!strcmp(k, "thp_pmd")) {
			r = policy(c, s, k, v, &cfg->thp_pmd);
		} else if (!strcmp(k, "deposit")) {
			if (strcmp(v, "eager") && strcmp(v, "lazy"))
				return scn_err(c, s, "system deposit: expected eager or lazy, got \"%s\"", v);
			cfg->deposit = !strcmp(v, "eager") ? HM_DEPOSIT_EAGER : HM_DEPOSIT_LAZY;
		} else if (!strcmp(k, "cow")) {
			if (strcasecmp(v, "4K") && strcasecmp(v, "2M"))
				return scn_err(c, s, "system cow: expected 4K or 2M, got \"%s\"", v);
			cfg->cow = !strcasecmp(v, "4K") ? HM_COW_4K : HM_COW_2M;
		} else if (!strcmp(k, "max_ptes_none")) {
			r = number(c, s, v, &cfg->khugepaged_max_ptes_none);
		} else if (!strcmp(k, "max_ptes_swap")) {
			r = number(c, s, v, &cfg->khugepaged_max_ptes_swap);
		} else if (!strcmp(k, "max_ptes_shared")) {
			r = number(c, s, v, &cfg->khugepaged_max_ptes_shared);
		} else {
			return scn_err(c, s, "system: unknown setting \"%s\" (expected memory, nodes, levels, swap, "
				       "thp_pud, thp_pmd, deposit, cow, max_ptes_none/swap/shared, or a flag: check, "
				       "nocheck, khugepaged, protect, prezero, populate, check_ops)", k);
		}
		if (r)
			return SCN_FAIL;
	}
	return 0;
}

/* The system, made from the settings so far at the first line that needs it. */
int scn_system(struct scn_ctx *c, const struct scn_stmt *s)
{
	struct scn *sc = c->scn;
	int r;

	if (sc->sys)
		return 0;
	r = hm_system_create(&sc->cfg, &sc->sys);
	if (r) {
		const struct scn_stmt *at = sc->sys_stmt ? sc->sys_stmt : s;

		sc->sys = NULL;
		if (sc->cfg.swap_path && r != -EINVAL)
			return scn_err(c, at, "system: cannot make the swap file %s: %s (%s)", sc->cfg.swap_path,
				       scn_errname(r), strerror(-r));
		return scn_err(c, at, "system: hm_system_create failed with %s (%s): expected settings in range "
			       "(memory 4M..4T, nodes 1..64, levels 4 or 5, swap SIZE a multiple of 4K)",
			       scn_errname(r), strerror(-r));
	}
	uint64_t v = 0;

	hm_stat(sc->sys, "nr_free_pages", &v);
	sc->free_at_start = v;
	return 0;
}

static struct scn_mm *find(struct scn *sc, const char *name)
{
	for (int i = 0; i < sc->nmms; i++)
		if (!strcmp(sc->mms[i].name, name))
			return &sc->mms[i];
	return NULL;
}

int scn_mm(struct scn_ctx *c, const struct scn_stmt *s, const char *name, struct hm_mm **out)
{
	struct scn_mm *m = find(c->scn, name);

	if (!m)
		return scn_err(c, s, "expected the name of an mm, got \"%s\" (make one with \"mm %s\" or \"fork "
			       "PARENT %s\")", name, name, name);
	*out = m->mm;
	return 0;
}

static int new_name(struct scn_ctx *c, const struct scn_stmt *s, const char *name)
{
	struct scn *sc = c->scn;

	if (!scn_is_name(name))
		return scn_err(c, s, "expected an mm name (letters, digits, _), got \"%s\"", name);
	if (find(sc, name))
		return scn_err(c, s, "mm \"%s\" exists already (destroy it first)", name);
	if (sc->nmms == SCN_MAX_MMS)
		return scn_err(c, s, "more than %d mms at once", SCN_MAX_MMS);
	return scn_system(c, s);
}

static void add(struct scn *sc, const char *name, struct hm_mm *mm)
{
	sc->mms[sc->nmms].name = strdup(name);
	sc->mms[sc->nmms++].mm = mm;
}

int scn_cmd_mm(struct scn_ctx *c, struct scn_stmt *s)
{
	struct hm_mm *mm;
	int r;

	if (new_name(c, s, s->argv[0]))
		return SCN_FAIL;
	r = hm_mm_create(c->scn->sys, &mm);
	if (!r)
		add(c->scn, s->argv[0], mm);
	return r;
}

int scn_cmd_fork(struct scn_ctx *c, struct scn_stmt *s)
{
	struct hm_mm *parent, *child;
	int r;

	if (scn_mm(c, s, s->argv[0], &parent) || new_name(c, s, s->argv[1]))
		return SCN_FAIL;
	r = hm_fork(parent, &child);
	if (!r)
		add(c->scn, s->argv[1], child);
	return r;
}

int scn_cmd_destroy(struct scn_ctx *c, struct scn_stmt *s)
{
	struct scn *sc = c->scn;
	struct scn_mm *m = find(sc, s->argv[0]);

	if (!m)
		return scn_err(c, s, "destroy: expected the name of an mm, got \"%s\"", s->argv[0]);
	hm_mm_destroy(m->mm);
	free(m->name);
	*m = sc->mms[--sc->nmms];
	return 0;
}

/*
 * Destroy what is left; when the run passed, every frame must be free
 * again (but the huge zero page's, kept until the system goes).
 */
int scn_teardown(struct scn *sc, bool passed)
{
	struct scn_ctx c = { .scn = sc };
	int bad = 0;

	if (!sc->sys)
		goto out;
	while (sc->nmms) {
		hm_mm_destroy(sc->mms[sc->nmms - 1].mm);
		free(sc->mms[--sc->nmms].name);
	}
	hm_drain(sc->sys);
	if (passed) {
		uint64_t nfree = 0, zero = 0;

		hm_stat(sc->sys, "nr_free_pages", &nfree);
		hm_stat(sc->sys, "thp_zero_page_alloc", &zero);
		if (nfree + (zero ? 512 : 0) != sc->free_at_start)
			bad = scn_err(&c, NULL, "after every mm was destroyed, %llu frames free, expected %llu (a leak)",
				      (unsigned long long)(nfree + (zero ? 512 : 0)),
				      (unsigned long long)sc->free_at_start);
		else if (sc->check && hm_check(sc->sys))
			bad = scn_err(&c, NULL, "hm_check failed after every mm was destroyed");
	}
	hm_system_destroy(sc->sys);
	sc->sys = NULL;
out:
	if (sc->swap_auto[0])
		unlink(sc->swap_auto);
	return bad;
}
