/* SPDX-License-Identifier: MIT */
/*
 * One step: pick an operation (sometimes with the allocation failpoint
 * armed for it), run it, then hm_check and a few probes. The probes are
 * chosen from the step number, not from the byte source, so that checking
 * more or less never changes what a case decodes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "gen.h"
#include "internal.h"

static void dispatch(struct fz_case *c, unsigned op)
{
	if (op < 8)
		fz_op_mmap(c);
	else if (op < 13)
		fz_op_munmap(c);
	else if (op < 18)
		fz_op_mprotect(c);
	else if (op < 24)
		fz_op_madvise(c);
	else if (op < 40)
		fz_op_write(c);
	else if (op < 48)
		fz_op_read(c);
	else if (op < 51)
		fz_op_query(c);
	else if (op < 54)
		fz_op_fork(c);
	else if (op < 55)
		fz_op_destroy(c);
	else if (op < 56)
		fz_op_create(c);
	else if (op < 59)
		fz_op_split(c);
	else if (op < 60)
		fz_op_stat(c);
	else
		fz_op_migrate(c);
}

/* With swap, every eighth step: reclaim some memory, and page out a VMA
 * of one address space. Decided by the step number, like the probes, so
 * that a case decodes the same whatever the config. What was written must
 * read back the same; the probes and the next verify see to it. */
static void pressure(struct fz_case *c)
{
	struct fz_mm *m = &c->mm[(c->step / 8) % (uint64_t)c->nmm];
	uint64_t freed;

	snprintf(c->desc, sizeof(c->desc), "hm_reclaim after step %" PRIu64, c->step);
	FZ_RC(c, hm_reclaim(c->sys, (c->step % 5 + 1) << 20, &freed), 0);
	if (m->m.nv) {
		const struct fz_vma *v = &m->m.v[(c->step * 7) % m->m.nv];

		snprintf(c->desc, sizeof(c->desc), "MADV_PAGEOUT of [%#" PRIx64 ", %#" PRIx64 ") after step %" PRIu64,
			 v->start, v->end, c->step);
		FZ_RC(c, hm_madvise(m->mm, v->start, v->end - v->start, MADV_PAGEOUT), 0);
	}
}

static void spot_checks(struct fz_case *c)
{
	struct fz_mm *m = &c->mm[c->step % (uint64_t)c->nmm];

	if (m->m.np)
		fz_probe(c, m, m->m.pno[(c->step * 7919) % m->m.np] * FZ_PAGE);
	if (m->m.nv) {
		const struct fz_vma *v = &m->m.v[(c->step * 104729) % m->m.nv];

		fz_probe(c, m, v->start + (c->step * 31) % ((v->end - v->start) / FZ_PAGE) * FZ_PAGE);
	}
	if (c->step % 64 == 63)
		for (int i = 0; i < c->nmm; i++)
			fz_verify_all(c, &c->mm[i]);
}

void fz_step(struct fz_case *c)
{
	struct fz_src *s = c->s;
	unsigned long failed = c->failed;

	c->rc = 0;
	c->fail_hit = false;

	if (!c->nmm) {
		fz_op_create(c);
	} else {
		unsigned op = (unsigned)fz_below(s, 64);

		if (op >= 61) {
			/* fail the nth allocation the next operation makes */
			hm__fail_arm(c->sys, 1 + (long)fz_below(s, 12), false);
			c->fail_armed = true;
			dispatch(c, (unsigned)fz_below(s, 61));
			fz_done(c, 0);	/* an operation that made no call */
		} else {
			dispatch(c, op);
		}
	}
	c->ops++;
	if (c->opts & FZ_VERBOSE)
		fprintf(stderr, "step %" PRIu64 ": %s = %d%s\n", c->step, c->desc, c->rc,
			c->failed != failed ? "  <- FAILED" : "");
	if (c->failed)
		return;
	if (c->swap_path[0] && c->nmm && c->step % 8 == 5)
		pressure(c);
	/* HM_CHECK checked after every change already; otherwise every step,
	 * or every 16th on a system big enough for 1 GiB pages */
	if (!(c->cfg.flags & HM_CHECK) && (c->cfg.phys_bytes <= (256ull << 20) || c->step % 16 == 15)) {
		snprintf(c->desc, sizeof(c->desc), "hm_check after step %" PRIu64, c->step);
		FZ_RC(c, hm_check(c->sys), 0);
	}
	snprintf(c->desc, sizeof(c->desc), "probes after step %" PRIu64, c->step);
	if (c->nmm && !c->failed)
		spot_checks(c);
}
