/* SPDX-License-Identifier: MIT */
/*
 * Address spaces and introspection: hm_fork (the child's model is a copy
 * of the parent's, less DONTFORK), hm_mm_create, hm_mm_destroy, hm_query,
 * hm__split, hm_stat, hm_check and hm_migrate.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "gen.h"
#include "internal.h"

struct fz_mm *fz_pick(struct fz_case *c)
{
	return &c->mm[fz_below(c->s, (uint64_t)c->nmm)];
}

void fz_op_query(struct fz_case *c)
{
	struct fz_mm *m = fz_pick(c);
	uint64_t va = fz_gen_addr(c, &m->m);
	bool null_mm = fz_one_in(c->s, 64), null_out = fz_one_in(c->s, 64);
	struct hm_mapping q;

	snprintf(c->desc, sizeof(c->desc), "hm_query(%s, %#" PRIx64 ", %s)", fz_name(c, m, null_mm), va,
		 null_out ? "NULL" : "&q");
	int r = c->rc = fz_done(c, hm_query(null_mm ? NULL : m->mm, va, null_out ? NULL : &q));

	if (FZ_RC(c, r, null_mm || null_out || va >= c->task_size ? -EINVAL : 0) && !r)
		fz_probe(c, m, va);
}

void fz_op_fork(struct fz_case *c)
{
	struct fz_mm *p = fz_pick(c);
	struct hm_mm *child = NULL;
	bool null_out = fz_one_in(c->s, 32);

	snprintf(c->desc, sizeof(c->desc), "hm_fork(%s, %s)", fz_name(c, p, false), null_out ? "NULL" : "&child");
	if (null_out || c->nmm == FZ_MAXMM) {
		FZ_RC(c, hm_fork(p->mm, NULL), -EINVAL);
		FZ_RC(c, hm_fork(NULL, &child), -EINVAL);
		return;
	}
	/* the child needs at most as many tables (deposits included) as
	 * the whole system has now, and a root */
	uint64_t need = fz_stat(c, "pgtable_bytes") / FZ_PAGE + 64;
	c->free_before = fz_stat(c, "nr_free_pages");
	int r = c->rc = fz_done(c, hm_fork(p->mm, &child));

	if (!FZ_RC(c, r, 0, fz_enomem_ok(c, need) ? -ENOMEM : 0) || r) {
		fz_verify_all(c, p);
		return;
	}
	struct fz_mm *m = &c->mm[c->nmm++];
	m->mm = child;
	fz_model_fork(&m->m, &p->m);
	c->forks++;
	fz_verify_all(c, m);
}

static void remove_mm(struct fz_case *c, struct fz_mm *m)
{
	hm_mm_destroy(m->mm);
	fz_model_free(&m->m);
	*m = c->mm[--c->nmm];
	memset(&c->mm[c->nmm], 0, sizeof(c->mm[c->nmm]));
}

void fz_op_destroy(struct fz_case *c)
{
	struct fz_mm *m = fz_pick(c);

	snprintf(c->desc, sizeof(c->desc), "hm_mm_destroy(%s)", fz_name(c, m, false));
	if (fz_one_in(c->s, 8))
		hm_mm_destroy(NULL);	/* must do nothing */
	if (c->nmm == 1 && !fz_one_in(c->s, 4))
		return;	/* the last one: now and then */
	remove_mm(c, m);
	if (c->nmm)
		return;
	uint64_t f = fz_free_frames(c);
	FZ_CHECK(c, f == c->free0, "%" PRIu64 " frames free with no address space left, %" PRIu64 " at the start",
		 f, c->free0);
	FZ_CHECK(c, fz_stat(c, "nr_mms") == 0, "nr_mms is not 0 with no address space");
}

void fz_op_create(struct fz_case *c)
{
	struct hm_mm *mm = NULL;

	snprintf(c->desc, sizeof(c->desc), "hm_mm_create -> %s", c->nmm < FZ_MAXMM ? fz_name(c, &c->mm[c->nmm], false) : "none");
	if (fz_one_in(c->s, 16)) {
		FZ_RC(c, hm_mm_create(NULL, &mm), -EINVAL);
		FZ_RC(c, hm_mm_create(c->sys, NULL), -EINVAL);
	}
	if (c->nmm == FZ_MAXMM)
		return;
	c->free_before = fz_stat(c, "nr_free_pages");
	int r = c->rc = fz_done(c, hm_mm_create(c->sys, &mm));

	if (!FZ_RC(c, r, 0, fz_enomem_ok(c, 8) ? -ENOMEM : 0) || r)
		return;
	struct fz_mm *m = &c->mm[c->nmm++];
	m->mm = mm;
	fz_model_init(&m->m);
	if (fz_one_in(c->s, 4))
		return;
	/* most address spaces start with a read-write mapping in the window,
	 * 2 MiB to 1.2 GiB, so that accesses have somewhere to go; on a
	 * system with room for one, over a whole 1 GiB page */
	uint64_t a = FZ_WIN + fz_below(c->s, 4) * FZ_2M, out = 0;
	a -= fz_below(c->s, 2) * FZ_PAGE;
	uint64_t len = (1 + fz_below(c->s, 600)) * FZ_2M;
	bool big = c->cfg.phys_bytes > FZ_1G && !fz_one_in(c->s, 3);
	if (big) {
		a = FZ_WIN;
		len = FZ_1G + fz_below(c->s, 4) * FZ_2M;
	}
	bool huge = big ? !fz_one_in(c->s, 4) : fz_one_in(c->s, 2);
	snprintf(c->desc, sizeof(c->desc), "hm_mmap(%s, %#" PRIx64 ", %#" PRIx64 ", RW, fixed)", fz_name(c, m, false),
		 a, len);
	c->free_before = fz_stat(c, "nr_free_pages");
	r = c->rc = fz_done(c, hm_mmap(mm, a, len, PROT_READ | PROT_WRITE, FZ_PA | MAP_FIXED, &out));
	if (!FZ_RC(c, r, 0, fz_enomem_ok(c, 0) ? -ENOMEM : 0) || r)
		return;
	fz_model_map(&m->m, a, a + len, PROT_READ | PROT_WRITE);
	if (!huge)
		return;
	r = c->rc = fz_done(c, hm_madvise(mm, a, len, MADV_HUGEPAGE));
	if (!FZ_RC(c, r, 0, fz_enomem_ok(c, 0) ? -ENOMEM : 0) || r)
		return;
	fz_model_flags(&m->m, a, a + len, FZ_NOHUGE, FZ_HUGE);
	/* and touch it, before anything splits the range: the biggest page
	 * the policy allows there */
	uint64_t va = a + fz_below(c->s, len / FZ_PAGE) * FZ_PAGE, v = c->step + 1;
	c->free_before = fz_stat(c, "nr_free_pages");
	r = c->rc = fz_done(c, hm_write(mm, va, &v, sizeof(v)));
	if (FZ_RC(c, r, 0, fz_enomem_ok(c, 64) ? -ENOMEM : 0) && !r)
		fz_model_write(&m->m, va, (const uint8_t *)&v, sizeof(v));
}

void fz_op_split(struct fz_case *c)
{
	struct fz_mm *m = fz_pick(c);
	uint64_t va;

	/* half the time a page that holds data: faulted in, maybe huge */
	if (m->m.np && fz_one_in(c->s, 2))
		va = m->m.pno[fz_below(c->s, m->m.np)] * FZ_PAGE;
	else
		va = fz_gen_page(c, &m->m);
	unsigned level = (unsigned)fz_below(c->s, 2);
	struct hm_mapping q, q2;
	int want = -ENOENT, alt = -ENOENT;

	if (va >= c->task_size)
		va = FZ_WIN;	/* an internal call: it takes no bad addresses */
	snprintf(c->desc, sizeof(c->desc), "hm__split(%s, %#" PRIx64 ", %u)", fz_name(c, m, false), va, level);
	if (!FZ_RC(c, hm_query(m->mm, va, &q), 0))
		return;
	c->free_before = fz_stat(c, "nr_free_pages");
	if (q.swapped)
		;	/* a 2 MiB page in swap: no leaf to split */
	else if (q.size == FZ_1G)
		want = alt = c->cfg.deposit == HM_DEPOSIT_LAZY ? -EOPNOTSUPP : 0;
	else if (q.size == FZ_2M && level == 0)
		want = alt = 0;
	int r = c->rc = fz_done(c, hm__split(m->mm, va, level));

	if (!want && c->cfg.deposit == HM_DEPOSIT_LAZY && fz_enomem_ok(c, 8))
		alt = -ENOMEM;
	if (FZ_RC(c, r, want, alt) && !r)
		FZ_CHECK(c, !hm_query(m->mm, va, &q2) && q2.size == (level ? FZ_2M : FZ_PAGE),
			 "split to level %u left a leaf of %#" PRIx64 " bytes", level, q2.size);
	if (q.size) {
		fz_probe(c, m, q.va);
		fz_probe(c, m, va);
		fz_probe(c, m, q.va + q.size - FZ_PAGE);
	}
}

void fz_op_stat(struct fz_case *c)
{
	const char *n;
	uint64_t v, frames = c->cfg.phys_bytes / FZ_PAGE;
	unsigned i;

	snprintf(c->desc, sizeof(c->desc), "hm_stat / hm_check");
	for (i = 0; (n = hm_stat_name(i)) && i < 1000; i++)
		FZ_RC(c, hm_stat(c->sys, n, &v), 0);
	FZ_CHECK(c, i > 0 && i < 1000, "hm_stat_name lists %u counters", i);
	FZ_RC(c, hm_stat(c->sys, "no_such_counter", &v), -ENOENT);
	FZ_RC(c, hm_stat(NULL, "nr_free_pages", &v), -EINVAL);
	FZ_RC(c, hm_stat(c->sys, NULL, &v), -EINVAL);
	FZ_RC(c, hm_stat(c->sys, "nr_free_pages", NULL), -EINVAL);
	uint64_t nfree = fz_stat(c, "nr_free_pages"), anon = fz_stat(c, "nr_anon_pages");
	uint64_t tables = fz_stat(c, "pgtable_bytes") / FZ_PAGE;
	FZ_CHECK(c, nfree + anon + tables <= frames, "free %" PRIu64 " + anon %" PRIu64 " + tables %" PRIu64
		 " frames > %" PRIu64, nfree, anon, tables, frames);
	FZ_CHECK(c, fz_stat(c, "nr_mms") == (uint64_t)c->nmm, "nr_mms is not %d", c->nmm);
	FZ_CHECK(c, fz_stat(c, "phys_bytes") == c->cfg.phys_bytes, "phys_bytes is not the config's");
	FZ_RC(c, hm_check(NULL), -EINVAL);
	FZ_RC(c, hm_check(c->sys), 0);
}

/* A migration must leave every byte as it was. */
void fz_op_migrate(struct fz_case *c)
{
	struct fz_mm *m = fz_pick(c);
	uint64_t addr, len;

	fz_gen_range(c, &m->m, &addr, &len);
	uint64_t l = fz_page_len(len);
	unsigned node = (unsigned)fz_below(c->s, 3);

	snprintf(c->desc, sizeof(c->desc), "hm_migrate(%s, %#" PRIx64 ", %#" PRIx64 ", %u)", fz_name(c, m, false), addr,
		 len, node);
	int r = c->rc = fz_done(c, hm_migrate(m->mm, addr, len, node));
	bool args = !(addr & (FZ_PAGE - 1)) && l && l >= len && addr + l > addr && node < c->cfg.nr_nodes;

	if (!args)
		FZ_RC(c, r, -EINVAL);
	else if (!fz_model_covers(&m->m, addr, addr + l, 0))
		FZ_RC(c, r, -EFAULT, -EINVAL);	/* -EINVAL: past the address space */
	else
		FZ_RC(c, r, 0, -ENOMEM, -EAGAIN);
	fz_verify_range(c, m, addr & ~(FZ_PAGE - 1), l);
}
