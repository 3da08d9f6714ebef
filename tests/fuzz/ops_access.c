/* SPDX-License-Identifier: MIT */
/*
 * hm_read and hm_write, single-byte to multi-page and page-crossing. Both
 * are all-or-nothing (API.md): -EFAULT exactly where a CPU would fault,
 * -ENOMEM only when memory may have run out, and a failed hm_write wrote
 * no byte, which is checked on every failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"

#define MAXBUF (FZ_2M + 4 * FZ_PAGE)

static void gen_access(struct fz_case *c, struct fz_mm *m, uint64_t *va, uint64_t *len)
{
	struct fz_src *s = c->s;
	uint64_t a = fz_gen_page(c, &m->m), off;

	switch (fz_below(s, 4)) {
	case 0: off = FZ_PAGE - 1 - fz_below(s, 64); break;	/* likely to cross */
	case 1: off = 0; break;
	default: off = fz_below(s, FZ_PAGE); break;
	}
	*va = a + off;
	switch (fz_below(s, 16)) {
	case 0: *len = 0; break;
	case 1: case 2: case 3: case 4: case 5: case 6: *len = 1 + fz_below(s, 64); break;
	case 7: case 8: case 9: *len = 1 + fz_below(s, FZ_PAGE); break;
	case 10: case 11: case 12: *len = FZ_PAGE + fz_below(s, 2 * FZ_PAGE); break;
	case 13: *len = 8; break;
	case 14: *len = fz_one_in(s, 4) ? 1 + fz_below(s, FZ_2M + 2 * FZ_PAGE) : 1 + fz_below(s, 16 * FZ_PAGE); break;
	default: *len = UINT64_MAX - fz_below(s, FZ_PAGE); break;	/* must fault before touching buf */
	}
}

/* The result the access must have, -ENOMEM aside. */
static int access_want(struct fz_case *c, struct fz_mm *m, bool null_mm, bool null_buf, uint64_t va,
		       uint64_t len, int need)
{
	if (null_mm || (null_buf && len))
		return -EINVAL;
	if (!len)
		return 0;
	if (va + len < va || va + len > c->task_size || !fz_model_covers(&m->m, va, va + len, need))
		return -EFAULT;
	return 0;
}

/* Frames an access may take: per page a frame, its tables and a copy. */
static uint64_t access_need(uint64_t va, uint64_t len)
{
	return ((va + len - 1) / FZ_PAGE - va / FZ_PAGE + 1) * 8 + 32;
}

/* After a failed hm_write: every byte it would have written still reads
 * what the model says. */
static void check_unwritten(struct fz_case *c, struct fz_mm *m, uint64_t va, const uint8_t *buf, uint64_t len)
{
	static uint8_t got[FZ_PAGE], want[FZ_PAGE];

	if (va + len < va || va + len > c->task_size)
		return;
	for (uint64_t a = va; a < va + len && !c->failed;) {
		uint64_t n = FZ_PAGE - a % FZ_PAGE < va + len - a ? FZ_PAGE - a % FZ_PAGE : va + len - a;
		const struct fz_vma *v = fz_model_vma(&m->m, a);
		struct hm_mapping q;

		if (v && v->prot != PROT_NONE && !hm_query(m->mm, a, &q) && q.size) {
			fz_model_read(&m->m, a, want, n);
			if (FZ_RC(c, hm_read(m->mm, a, got, n), 0) && memcmp(got, want, n)) {
				if ((c->opts & FZ_TOLERATE) && !memcmp(got, buf + (a - va), n)) {
					fz_model_write(&m->m, a, got, n);
					c->tolerated++;
				} else {
					fz_fail(c, "the failed hm_write changed bytes at %#" PRIx64 " (%#" PRIx64
						" bytes into the write)", a, a - va);
				}
			}
		}
		a += n;
	}
}

/* Was nothing mapped at @va? (Then a leaf there afterwards is this
 * access's fault.) */
static bool unmapped(struct fz_case *c, struct fz_mm *m, uint64_t va)
{
	struct hm_mapping q;

	return va < c->task_size && !hm_query(m->mm, va, &q) && !q.size;
}

/* A fault made a leaf at @va: a huge one only where the policy allows
 * huge pages (the size's sysfs-like setting and the range's advice). */
static void check_policy(struct fz_case *c, struct fz_mm *m, uint64_t va)
{
	const struct fz_vma *v = fz_model_vma(&m->m, va);
	struct hm_mapping q;

	if (!v || hm_query(m->mm, va, &q) || q.size <= FZ_PAGE)
		return;
	int policy = q.size == FZ_1G ? c->cfg.thp_pud : c->cfg.thp_pmd;
	FZ_CHECK(c, policy != HM_THP_NEVER && !(v->flags & FZ_NOHUGE) &&
		 (policy == HM_THP_ALWAYS || (v->flags & FZ_HUGE)),
		 "a fault at %#" PRIx64 " mapped %#" PRIx64 " bytes: policy %d, advice %s", va, q.size, policy,
		 v->flags & FZ_NOHUGE ? "NOHUGEPAGE" : v->flags & FZ_HUGE ? "HUGEPAGE" : "none");
}

void fz_op_write(struct fz_case *c)
{
	static uint8_t *buf, *back;
	struct fz_mm *m = fz_pick(c);
	uint64_t va, len;

	gen_access(c, m, &va, &len);
	uint64_t v = fz_below(c->s, 1u << 16);
	bool null_mm = fz_one_in(c->s, 64), null_buf = fz_one_in(c->s, 64);
	int want = access_want(c, m, null_mm, null_buf, va, len, PROT_WRITE);

	if (!buf && (!(buf = malloc(MAXBUF)) || !(back = malloc(MAXBUF))))
		abort();
	for (uint64_t i = 0; i < len && i < MAXBUF; i++)
		buf[i] = fz_pat(v ^ c->step << 16, i);
	snprintf(c->desc, sizeof(c->desc), "hm_write(%s, %#" PRIx64 ", %s, %#" PRIx64 ")", fz_name(c, m, null_mm),
		 va, null_buf ? "NULL" : "buf", len);
	bool fresh = !null_mm && unmapped(c, m, va);
	c->free_before = fz_stat(c, "nr_free_pages");
	int r = c->rc = fz_done(c, hm_write(null_mm ? NULL : m->mm, va, null_buf ? NULL : buf, len));

	if (!FZ_RC(c, r, want, want ? want : fz_enomem_ok(c, access_need(va, len)) ? -ENOMEM : 0) || r) {
		check_unwritten(c, m, va, buf, len);
		return;
	}
	if (!len)
		return;
	if (fresh)
		check_policy(c, m, va);
	fz_model_write(&m->m, va, buf, len);
	/* read it back in one piece, then the pages around it */
	if (FZ_RC(c, hm_read(m->mm, va, back, len), 0))
		FZ_CHECK(c, !memcmp(back, buf, len), "what hm_write wrote reads back differently");
	fz_probe(c, m, va - 1);
	fz_probe(c, m, va + len);
	if (len > 2 * FZ_PAGE)
		fz_verify_range(c, m, va, len);
}

void fz_op_read(struct fz_case *c)
{
	static uint8_t *buf, *want_buf;
	struct fz_mm *m = fz_pick(c);
	uint64_t va, len;

	gen_access(c, m, &va, &len);
	bool null_mm = fz_one_in(c->s, 64), null_buf = fz_one_in(c->s, 64);
	int want = access_want(c, m, null_mm, null_buf, va, len, PROT_READ);

	if (!buf && (!(buf = malloc(MAXBUF)) || !(want_buf = malloc(MAXBUF))))
		abort();
	snprintf(c->desc, sizeof(c->desc), "hm_read(%s, %#" PRIx64 ", %s, %#" PRIx64 ")", fz_name(c, m, null_mm),
		 va, null_buf ? "NULL" : "buf", len);
	bool fresh = !null_mm && unmapped(c, m, va);
	c->free_before = fz_stat(c, "nr_free_pages");
	int r = c->rc = fz_done(c, hm_read(null_mm ? NULL : m->mm, va, null_buf ? NULL : buf, len));

	if (!FZ_RC(c, r, want, want ? want : fz_enomem_ok(c, access_need(va, len)) ? -ENOMEM : 0) || r || !len)
		return;
	if (fresh)
		check_policy(c, m, va);
	fz_model_read(&m->m, va, want_buf, len);
	if (memcmp(buf, want_buf, len)) {
		uint64_t i = 0;

		while (buf[i] == want_buf[i])
			i++;
		fz_fail(c, "byte %#" PRIx64 " reads %#x, the model says %#x", va + i, buf[i], want_buf[i]);
	} else {
		c->passed++;
	}
}
