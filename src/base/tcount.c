/* SPDX-License-Identifier: MIT */
/*
 * Per-thread counters (see tcount.h): the blocks, their two lists, and the
 * fold of an exiting thread's counts into its sets.
 */
#include <stdlib.h>

#include "tcount.h"

struct hm_tcthread;

struct hm_tcblock {
	struct hm_tcount *set;			/* constant */
	struct hm_tcthread *owner;		/* constant */
	struct hm_tcblock *snext, *sprev;	/* the set's list; tc_lock */
	struct hm_tcblock *tnext, *tprev;	/* the owner's list; tc_lock */
	uint64_t v[];				/* [set->n]: written by the
						 * owner alone, relaxed */
};

/* A thread's blocks. In its TLS, so that a thread needs no allocation to
 * have a list; a set's destroyer reaches it through a block's owner, which
 * is valid until the thread's exit, which unlinks every block first. */
struct hm_tcthread {
	struct hm_tcblock *first;	/* tc_lock */
	bool keyed;			/* the exit hook is set; owner only */
	bool exited;			/* the exit hook ran: a block made
					 * later (a later key destructor's
					 * count) might never be folded, as
					 * glibc runs the hooks a few rounds
					 * at most; such counts go to shared[].
					 * Owner only */
};

__thread struct hm_tc_slot hm_tc_cache[HM_TC_CACHE] __attribute__((tls_model("initial-exec")));
static __thread struct hm_tcthread tc_self __attribute__((tls_model("initial-exec")));

static hm_spin_t tc_lock;
static uint64_t tc_next_id = 1;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;
static pthread_key_t tc_key;
static bool tc_key_ok;

void hm_tcount_init(struct hm_tcount *s, uint64_t *shared, uint64_t *retired, unsigned n, bool own_slot)
{
	s->id = __atomic_fetch_add(&tc_next_id, 1, __ATOMIC_RELAXED);
	s->slot = own_slot ? 0 : 1 + (unsigned)(s->id % (HM_TC_CACHE - 1));
	s->n = n;
	s->blocks = NULL;
	s->shared = shared;
	s->retired = retired;
}

static void unlink_from_set_locked(struct hm_tcblock *b)
{
	hm_assert_locked(&tc_lock);
	if (b->sprev)
		b->sprev->snext = b->snext;
	else
		b->set->blocks = b->snext;
	if (b->snext)
		b->snext->sprev = b->sprev;
}

static void unlink_from_owner_locked(struct hm_tcblock *b)
{
	hm_assert_locked(&tc_lock);
	if (b->tprev)
		b->tprev->tnext = b->tnext;
	else
		b->owner->first = b->tnext;
	if (b->tnext)
		b->tnext->tprev = b->tprev;
}

void hm_tcount_destroy(struct hm_tcount *s)
{
	struct hm_tcblock *b, *next;

	hm_spin_lock(&tc_lock);
	for (b = s->blocks; b; b = b->snext)
		unlink_from_owner_locked(b);
	b = s->blocks;
	s->blocks = NULL;
	hm_spin_unlock(&tc_lock);
	/* The threads' cache slots that still name these blocks name them by
	 * this set's id, which no set will have again. */
	for (; b; b = next) {
		next = b->snext;
		free(b);
	}
}

/* Thread exit (a key destructor): the counts stay in their sets. A later
 * destructor that counts finds an empty cache and counts afresh. */
static void tc_thread_exit(void *arg)
{
	struct hm_tcthread *t = arg;
	struct hm_tcblock *b, *dead = NULL;

	for (unsigned i = 0; i < HM_TC_CACHE; i++)
		hm_tc_cache[i].id = 0;
	t->keyed = false;
	t->exited = true;
	hm_spin_lock(&tc_lock);
	while ((b = t->first)) {
		for (unsigned i = 0; i < b->set->n; i++)
			b->set->retired[i] += b->v[i];
		unlink_from_set_locked(b);
		unlink_from_owner_locked(b);
		b->snext = dead;
		dead = b;
	}
	hm_spin_unlock(&tc_lock);
	while ((b = dead)) {
		dead = b->snext;
		free(b);
	}
}

static void tc_key_create(void)
{
	tc_key_ok = !pthread_key_create(&tc_key, tc_thread_exit);
}

static struct hm_tcblock *find_mine(struct hm_tcthread *t, const struct hm_tcount *s)
{
	struct hm_tcblock *b;

	hm_spin_lock(&tc_lock);
	for (b = t->first; b && b->set != s; b = b->tnext)
		;
	hm_spin_unlock(&tc_lock);
	return b;
}

void hm_tcount_prepare_slow(struct hm_tcount *s)
{
	hm_might_sleep();
	struct hm_tcthread *t = &tc_self;

	if (t->exited)
		return;
	struct hm_tcblock *b = find_mine(t, s);

	if (!b) {
		/* Without the exit hook the block's counts would be lost with
		 * the thread: count in shared[] instead. */
		if (!t->keyed) {
			pthread_once(&tc_once, tc_key_create);
			if (!tc_key_ok || pthread_setspecific(tc_key, t))
				return;
			t->keyed = true;
		}
		b = calloc(1, sizeof(*b) + s->n * sizeof(b->v[0]));
		if (!b)
			return;
		b->set = s;
		b->owner = t;
		hm_spin_lock(&tc_lock);
		b->sprev = NULL;
		b->snext = s->blocks;
		if (s->blocks)
			s->blocks->sprev = b;
		s->blocks = b;
		b->tprev = NULL;
		b->tnext = t->first;
		if (t->first)
			t->first->tprev = b;
		t->first = b;
		hm_spin_unlock(&tc_lock);
	}
	struct hm_tc_slot *e = &hm_tc_cache[s->slot];

	e->v = b->v;
	e->id = s->id;
}

uint64_t hm_tcount_sum(struct hm_tcount *s, unsigned i)
{
	hm_spin_lock(&tc_lock);
	uint64_t v = hm_load_relaxed(&s->shared[i]) + s->retired[i];

	for (struct hm_tcblock *b = s->blocks; b; b = b->snext)
		v += hm_load_relaxed(&b->v[i]);
	hm_spin_unlock(&tc_lock);
	return v;
}

unsigned hm_tcount_nr_blocks(struct hm_tcount *s)
{
	unsigned n = 0;

	hm_spin_lock(&tc_lock);
	for (struct hm_tcblock *b = s->blocks; b; b = b->snext)
		n++;
	hm_spin_unlock(&tc_lock);
	return n;
}
