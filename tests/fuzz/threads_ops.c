/* SPDX-License-Identifier: MIT */
/*
 * The threaded mode's disruptor and forker (see threads.h). The disruptor
 * changes only its own slots' pages, so every writer's access stays inside
 * a mapping that allows it: any failed access is a bug. Splits go
 * anywhere, since a split changes no byte and no permission.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "threads.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define ROTATE_OPS 3000		/* disruptor operations per region (a quarter
				 * of that for 1 GiB regions) */
#define SAMPLE 32		/* slots a fork checks */

static bool stopping(struct th_ctx *x)
{
	return __atomic_load_n(&x->stop, __ATOMIC_ACQUIRE);
}

/* Move everyone to a fresh region, then unmap the old one once nobody
 * uses it. */
static void rotate(struct th_thread *t)
{
	struct th_ctx *x = t->x;
	uint64_t e = x->epoch, next = e + 1;
	struct th_region *old = &x->reg[e & 1], *nr = &x->reg[next & 1];
	int rc = th_region_new(x, nr);

	TH_CHECK(t, rc == 0, "disruptor: a new region: %d", rc);
	if (rc)
		return;
	memset(&x->done[(next & 1) * TH_MAXSLOT], 0, TH_MAXSLOT * sizeof(*x->done));
	__atomic_store_n(&x->epoch, next, __ATOMIC_RELEASE);
	th_move(t);
	for (;;) {
		bool all = __atomic_load_n(&x->fork.epoch, __ATOMIC_ACQUIRE) == next;

		for (unsigned i = 0; i < TH_NW; i++)
			all &= __atomic_load_n(&x->w[i].epoch, __ATOMIC_ACQUIRE) == next;
		if (all)
			break;
		if (stopping(x))
			return;	/* a writer may still check the old region */
		sched_yield();
	}
	rc = hm_munmap(x->mm, old->base, old->len);
	TH_CHECK(t, rc == 0, "disruptor: unmapping the old region: %d", rc);
	x->rotations++;
}

static void own_slot_op(struct th_thread *t, const struct th_region *r, unsigned op)
{
	struct th_ctx *x = t->x;
	uint64_t j = th_rnd(t) % (r->nslot / (TH_NW + 1)), k = j * (TH_NW + 1) + TH_NW;
	uint64_t va = th_slot_addr(r, k), page = va & ~(FZ_PAGE - 1), out = 0;
	/* the slot's page, and the next one if the cookies run over */
	uint64_t len = ((va + TH_COPIES * sizeof(struct th_cookie) - 1) | (FZ_PAGE - 1)) + 1 - page;
	struct th_cookie c = { 0 };
	bool torn;
	int rc;

	switch (op) {
	case 0:	/* write a cookie of its own */
		rc = th_put(x->mm, va, TH_MAGIC_PARENT, TH_NW, ++t->issued);
		TH_CHECK(t, rc == 0, "disruptor: hm_write of slot %" PRIu64 ": %d", k, rc);
		t->last[j] = rc ? t->last[j] : t->issued;
		break;
	case 1:	/* unmap the page: it faults; map it again: zeros */
		rc = hm_munmap(x->mm, page, len);
		TH_CHECK(t, rc == 0, "disruptor: munmap %#" PRIx64 ": %d", page, rc);
		TH_CHECK(t, hm_read(x->mm, va, &c, 8) == -EFAULT, "disruptor: %#" PRIx64 " readable after munmap", va);
		rc = hm_mmap(x->mm, page, len, RW, PA | MAP_FIXED, &out);
		TH_CHECK(t, rc == 0 && out == page, "disruptor: mmap %#" PRIx64 " again: %d", page, rc);
		t->last[j] = 0;
		break;
	case 2:	/* read-only for a moment: writes fault, reads see the data */
		rc = hm_mprotect(x->mm, page, len, PROT_READ);
		TH_CHECK(t, rc == 0, "disruptor: mprotect %#" PRIx64 " read-only: %d", page, rc);
		TH_CHECK(t, hm_write(x->mm, va, &c, 1) == -EFAULT, "disruptor: wrote to read-only %#" PRIx64, va);
		rc = hm_mprotect(x->mm, page, len, RW);
		TH_CHECK(t, rc == 0, "disruptor: mprotect %#" PRIx64 " back: %d", page, rc);
		break;
	default:	/* zap it */
		rc = hm_madvise(x->mm, page, len, MADV_DONTNEED);
		TH_CHECK(t, rc == 0, "disruptor: MADV_DONTNEED %#" PRIx64 ": %d", page, rc);
		t->last[j] = 0;
		break;
	}
	rc = th_get(x->mm, va, &c, &torn);
	TH_CHECK(t, !rc && !torn && (t->last[j] ? c.seq == t->last[j] && c.owner == TH_NW : !c.magic),
		 "disruptor: slot %" PRIu64 " at %#" PRIx64 " after op %u: read %d, torn %d, seq %" PRIu64 " want %" PRIu64,
		 k, va, op, rc, torn, c.seq, t->last[j]);
}

void *th_disruptor(void *arg)
{
	struct th_thread *t = arg;
	struct th_ctx *x = t->x;
	unsigned long n = 0;

	while (!stopping(x)) {
		const struct th_region *r = &x->reg[x->epoch & 1];
		unsigned op = (unsigned)(th_rnd(t) % 16);
		int rc;

		if (op < 8) {
			own_slot_op(t, r, op < 4 ? 0 : op - 4);
		} else if (op < 13) {	/* split anywhere: no byte may change */
			uint64_t a = r->base + th_rnd(t) % (r->len / FZ_PAGE) * FZ_PAGE;

			rc = hm__split(x->mm, a, (unsigned)(th_rnd(t) % 2));
			TH_CHECK(t, rc == 0 || rc == -ENOENT || rc == -EOPNOTSUPP, "disruptor: hm__split %#" PRIx64 ": %d",
				 a, rc);
			x->splits += rc == 0;
		} else if (op < 15) {	/* the whole region: flags, or prot as it is */
			rc = op == 13 ? hm_madvise(x->mm, r->base, r->len, th_rnd(t) % 4 ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)
				      : hm_mprotect(x->mm, r->base, r->len, RW);
			TH_CHECK(t, rc == 0, "disruptor: whole-region op %u: %d", op, rc);
		} else if (x->o->nodes > 1) {	/* the whole region to a node: no byte may change */
			rc = hm_migrate(x->mm, r->base, r->len, (unsigned)(th_rnd(t) % (unsigned)x->o->nodes));
			TH_CHECK(t, rc == 0 || rc == -ENOMEM || rc == -EAGAIN, "disruptor: hm_migrate: %d", rc);
			x->migrations += rc == 0;
		} else {
			own_slot_op(t, r, 0);
		}
		t->ops++;
		if (++n % (x->o->big ? ROTATE_OPS / 4 : ROTATE_OPS) == 0)
			rotate(t);
	}
	return NULL;
}

struct kid {
	struct hm_mm *mm;
	const struct th_region *r;
	uint64_t k[SAMPLE];
	struct th_cookie c[SAMPLE][TH_COPIES];	/* what each sampled slot must read */
};

/* The child's sampled slots still read what they did: nothing the parent
 * wrote since has reached them. */
static void recheck(struct th_thread *t, struct kid *kd)
{
	for (unsigned i = 0; i < SAMPLE; i++) {
		struct th_cookie c[TH_COPIES];
		int rc = hm_read(kd->mm, th_slot_addr(kd->r, kd->k[i]), c, sizeof(c));

		TH_CHECK(t, !rc && !memcmp(c, kd->c[i], sizeof(c)),
			 "forker: child's slot %" PRIu64 " changed: read %d, magic %#" PRIx64 " seq %" PRIu64
			 ", was seq %" PRIu64, kd->k[i], rc, c[0].magic, c[0].seq, kd->c[i][0].seq);
	}
	t->x->child_checks++;
}

/* A cookie of @owner's that may be in the child: written before the fork
 * returned, and no older than the last write that returned before it. */
static bool fits(const struct th_cookie *c, uint64_t owner, uint64_t lo, uint64_t hi)
{
	return c->magic ? th_cookie_ok(c) && c->magic == TH_MAGIC_PARENT && c->owner == owner && c->seq >= lo &&
				  c->seq <= hi
			: !lo && !c->seq && !c->owner && !c->sum;
}

/* Fork; the child's sampled slots hold a cookie written before the fork
 * (or zeros if none had returned yet); then the child writes its own. */
static void fork_once(struct th_thread *t, struct kid *kd)
{
	struct th_ctx *x = t->x;
	uint64_t lo[SAMPLE], hi[SAMPLE];

	kd->r = &x->reg[t->epoch & 1];
	for (unsigned i = 0; i < SAMPLE; i++) {
		uint64_t k;
		bool dup;

		do {	/* distinct writers' slots */
			k = th_rnd(t) % kd->r->nslot;
			k -= k % (TH_NW + 1) == TH_NW;
			dup = false;
			for (unsigned d = 0; d < i; d++)
				dup |= kd->k[d] == k;
		} while (dup);
		kd->k[i] = k;
		lo[i] = __atomic_load_n(&x->done[(t->epoch & 1) * TH_MAXSLOT + k], __ATOMIC_ACQUIRE);
	}
	int rc = hm_fork(x->mm, &kd->mm);
	TH_CHECK(t, rc == 0, "forker: hm_fork: %d", rc);
	if (rc) {
		kd->mm = NULL;
		return;
	}
	x->forks++;
	for (unsigned i = 0; i < SAMPLE; i++)
		hi[i] = __atomic_load_n(&x->w[kd->k[i] % (TH_NW + 1)].issued, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < SAMPLE; i++) {
		uint64_t va = th_slot_addr(kd->r, kd->k[i]), owner = kd->k[i] % (TH_NW + 1);
		struct th_cookie *c = kd->c[i];
		bool all = true, same = true;

		rc = hm_read(kd->mm, va, c, sizeof(kd->c[i]));
		for (unsigned j = 0; j < TH_COPIES; j++) {
			all &= fits(&c[j], owner, lo[i], hi[i]);
			same &= !memcmp(&c[j], &c[0], sizeof(c[0]));
		}
		/* Once a bug (FZ_TOLERATE, tests/stress/fuzz_found.c): a write across
		 * two pages may be split by the fork, each part a cookie that fits */
		if (!rc && all && !same && (x->o->tolerate) && va / FZ_PAGE != (va + sizeof(kd->c[i]) - 1) / FZ_PAGE)
			x->torn_tolerated++;
		else
			TH_CHECK(t, !rc && all && same,
				 "forker: child's slot %" PRIu64 " at %#" PRIx64 ": read %d, magic %#" PRIx64 " owner %" PRIu64
				 " seq %" PRIu64 " (last copy seq %" PRIu64 "), want owner %" PRIu64 " seq in [%" PRIu64
				 ", %" PRIu64 "], all copies the same", kd->k[i], va, rc, c[0].magic, c[0].owner, c[0].seq,
				 c[TH_COPIES - 1].seq, owner, lo[i], hi[i]);
		if (i % 2 == 0) {	/* the child writes: the writers must never see it */
			rc = th_put(kd->mm, va, TH_MAGIC_CHILD, 99, x->forks * SAMPLE + i);
			TH_CHECK(t, rc == 0, "forker: child's hm_write: %d", rc);
			for (unsigned j = 0; j < TH_COPIES; j++)
				th_cookie(&c[j], TH_MAGIC_CHILD, 99, x->forks * SAMPLE + i);
		}
	}
	if (th_rnd(t) % 4 == 0) {	/* split in the child too */
		uint64_t a = kd->r->base + th_rnd(t) % (kd->r->len / FZ_PAGE) * FZ_PAGE;

		rc = hm__split(kd->mm, a, (unsigned)(th_rnd(t) % 2));
		TH_CHECK(t, rc == 0 || rc == -ENOENT || rc == -EOPNOTSUPP, "forker: hm__split in the child: %d", rc);
	}
	if (th_rnd(t) % 4 == 0) {	/* a grandchild sees the child's memory */
		struct kid g = *kd;

		rc = hm_fork(kd->mm, &g.mm);
		TH_CHECK(t, rc == 0, "forker: hm_fork of the child: %d", rc);
		if (!rc) {
			recheck(t, &g);
			hm_mm_destroy(g.mm);
		}
	}
}

void *th_forker(void *arg)
{
	struct th_thread *t = arg;
	struct th_ctx *x = t->x;
	struct kid kids[2] = { { 0 } };
	unsigned n = 0;

	while (!stopping(x)) {
		if (__atomic_load_n(&x->epoch, __ATOMIC_ACQUIRE) != t->epoch) {
			/* children hold the old region's pages: let them go first */
			for (int i = 0; i < 2; i++) {
				if (kids[i].mm) {
					recheck(t, &kids[i]);
					hm_mm_destroy(kids[i].mm);
					kids[i].mm = NULL;
				}
			}
			th_move(t);
		}
		struct kid *kd = &kids[n++ % 2];
		if (kd->mm) {	/* the older child, some time after its fork */
			recheck(t, kd);
			hm_mm_destroy(kd->mm);
			kd->mm = NULL;
		}
		fork_once(t, kd);
		if (kd->mm)
			recheck(t, kd);
	}
	for (int i = 0; i < 2; i++) {
		if (kids[i].mm) {
			recheck(t, &kids[i]);
			hm_mm_destroy(kids[i].mm);
		}
	}
	return NULL;
}
