/* SPDX-License-Identifier: MIT */
/* Per-thread counters (base/tcount.h): a prepared thread counts in its own
 * block (the shared part stays untouched), an unprepared one in the shared
 * part, and the sum is exact through thread exits, through a set destroyed
 * while threads still hold blocks of it, and with more sets than cache
 * slots. */
#include <pthread.h>

#include "harness.h"
#include "../../src/base/tcount.h"

#define N 5

struct set {
	struct hm_tcount tc;
	uint64_t shared[N], retired[N];
};

static void set_init_slot(struct set *s, bool own_slot)
{
	memset(s, 0, sizeof(*s));
	hm_tcount_init(&s->tc, s->shared, s->retired, N, own_slot);
}

static void set_init(struct set *s)
{
	set_init_slot(s, false);
}

/* Prepared: the block takes the counts, negative steps included. */
static void own_block(void)
{
	struct set s;

	set_init(&s);
	hm_tcount_prepare(&s.tc);
	for (int i = 0; i < 1000; i++)
		hm_tcount_add(&s.tc, i % N, 1);
	hm_tcount_add(&s.tc, 2, (uint64_t)-50);
	for (unsigned i = 0; i < N; i++) {
		CHECK_EQ(s.shared[i], 0);
		CHECK_EQ(hm_tcount_sum(&s.tc, i), i == 2 ? 150 : 200);
	}
	hm_tcount_destroy(&s.tc);
}

/* Not prepared: the shared part, atomically; both parts add up. */
static void unprepared(void)
{
	struct set s;

	set_init(&s);
	hm_tcount_add(&s.tc, 1, 7);
	CHECK_EQ(s.shared[1], 7);
	hm_tcount_prepare(&s.tc);
	hm_tcount_add(&s.tc, 1, 3);
	CHECK_EQ(s.shared[1], 7);
	CHECK_EQ(hm_tcount_sum(&s.tc, 1), 10);
	hm_tcount_destroy(&s.tc);
}

struct worker {
	struct set *sets;
	unsigned nr_sets;
	unsigned adds;
	pthread_barrier_t *counted, *go_on;	/* NULL: just exit */
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (unsigned k = 0; k < w->nr_sets; k++) {
		hm_tcount_prepare(&w->sets[k].tc);
		for (unsigned i = 0; i < w->adds; i++)
			hm_tcount_add(&w->sets[k].tc, i % N, 1);
	}
	if (w->counted) {
		pthread_barrier_wait(w->counted);
		pthread_barrier_wait(w->go_on);
	}
	return NULL;
}

/* Eight threads count and exit: what they counted stays in the set. */
static void thread_exit_retires(void)
{
	struct set s;
	pthread_t t[8];
	struct worker w = { .sets = &s, .nr_sets = 1, .adds = 5000 };

	set_init(&s);
	for (int i = 0; i < 8; i++)
		REQUIRE(pthread_create(&t[i], NULL, worker_main, &w) == 0);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	for (unsigned i = 0; i < N; i++) {
		CHECK_EQ(hm_tcount_sum(&s.tc, i), 8 * 1000);
		CHECK_EQ(s.shared[i], 0);
		CHECK_EQ(s.retired[i], 8 * 1000);
	}
	CHECK_EQ(hm_tcount_nr_blocks(&s.tc), 0);
	hm_tcount_destroy(&s.tc);
}

/* Live threads hold blocks of three sets, more than fit one cache slot
 * each; one set is destroyed under them, and they then exit: the other
 * sets keep every count, and nothing is freed twice (ASan would say). */
static void destroy_under_live_threads(void)
{
	struct set s[3];
	pthread_t t[4];
	pthread_barrier_t counted, go_on;
	struct worker w = { .sets = s, .nr_sets = 3, .adds = 100, .counted = &counted, .go_on = &go_on };

	for (int k = 0; k < 3; k++)
		set_init(&s[k]);
	pthread_barrier_init(&counted, NULL, 5);
	pthread_barrier_init(&go_on, NULL, 5);
	for (int i = 0; i < 4; i++)
		REQUIRE(pthread_create(&t[i], NULL, worker_main, &w) == 0);
	pthread_barrier_wait(&counted);
	for (int k = 0; k < 3; k++)
		CHECK_EQ(hm_tcount_sum(&s[k].tc, 0), 4 * 20);
	hm_tcount_destroy(&s[1].tc);
	pthread_barrier_wait(&go_on);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int k = 0; k < 3; k += 2) {
		for (unsigned i = 0; i < N; i++)
			CHECK_EQ(hm_tcount_sum(&s[k].tc, i), 4 * 20);
		hm_tcount_destroy(&s[k].tc);
	}
	pthread_barrier_destroy(&counted);
	pthread_barrier_destroy(&go_on);
}

/* More sets than cache slots, used in turn by one thread, next to one set
 * with a slot of its own (a system's, next to its mms): that one is never
 * evicted, the others each keep their own counts, and a set whose slot
 * another took counts in the shared part until prepared again. Fails with
 * slots chosen by id alone (every third mm evicted the system's set). */
static void more_sets_than_slots(void)
{
	enum { S = 3 * (HM_TC_CACHE - 1) };
	static struct set s[S], own;

	set_init_slot(&own, true);
	for (int k = 0; k < S; k++)
		set_init(&s[k]);
	hm_tcount_prepare(&own.tc);
	for (int round = 0; round < 3; round++)
		for (int k = 0; k < S; k++) {
			hm_tcount_prepare(&s[k].tc);
			hm_tcount_add(&s[k].tc, 0, k + 1);
			hm_tcount_add(&own.tc, 0, 1);
		}
	CHECK_EQ(own.shared[0], 0);
	CHECK_EQ(hm_tcount_sum(&own.tc, 0), 3 * S);
	for (int k = 0; k < S; k++) {
		CHECK_EQ(hm_tcount_sum(&s[k].tc, 0), 3 * (uint64_t)(k + 1));
		CHECK_EQ(s[k].shared[0], 0);
	}
	/* Ids are consecutive here: the set HM_TC_CACHE - 1 before the last
	 * shares its slot, which the last holds now. */
	struct set *older = &s[S - 1 - (HM_TC_CACHE - 1)];
	hm_tcount_add(&older->tc, 0, 1);
	CHECK_EQ(older->shared[0], 1);
	CHECK_EQ(hm_tcount_sum(&older->tc, 0), 3 * (uint64_t)(S - (HM_TC_CACHE - 1)) + 1);
	for (int k = 0; k < S; k++)
		hm_tcount_destroy(&s[k].tc);
	hm_tcount_destroy(&own.tc);
}

/* A thread whose key destructor counts in every round glibc runs them,
 * after the counters' own exit hook: those counts land in the shared part,
 * and no block is left behind naming the dead thread (which a later
 * destroy would write through). Fails without the exited mark: the block
 * made in the last round stays on the set's list. */
static pthread_key_t user_key;
static struct set dtor_set;
/* Atomic: TSan cannot see that a key destructor, which runs after the
 * thread's function has returned, happens before pthread_join returns. */
static int dtor_rounds;

static void user_dtor(void *p)
{
	__atomic_fetch_add(&dtor_rounds, 1, __ATOMIC_RELAXED);
	hm_tcount_prepare(&dtor_set.tc);
	hm_tcount_add(&dtor_set.tc, 0, 1);
	pthread_setspecific(user_key, p);	/* again next round */
}

static void *counts_in_dtor(void *arg)
{
	(void)arg;
	hm_tcount_prepare(&dtor_set.tc);
	hm_tcount_add(&dtor_set.tc, 0, 1);
	pthread_setspecific(user_key, (void *)1);
	return NULL;
}

static void count_after_exit_hook(void)
{
	pthread_t t;

	set_init(&dtor_set);
	hm_tcount_prepare(&dtor_set.tc);	/* the counters' key comes first */
	REQUIRE(pthread_key_create(&user_key, user_dtor) == 0);
	REQUIRE(pthread_create(&t, NULL, counts_in_dtor, NULL) == 0);
	pthread_join(t, NULL);
	int rounds = __atomic_load_n(&dtor_rounds, __ATOMIC_RELAXED);

	CHECK(rounds >= 1);
	CHECK_EQ(hm_tcount_sum(&dtor_set.tc, 0), 1 + (uint64_t)rounds);
	CHECK_EQ(hm_tcount_nr_blocks(&dtor_set.tc), 1);	/* this thread's */
	hm_tcount_destroy(&dtor_set.tc);
	pthread_key_delete(user_key);
}

T_MAIN(T(own_block), T(unprepared), T(thread_exit_retires), T(destroy_under_live_threads),
       T(more_sets_than_slots), T(count_after_exit_hook))
