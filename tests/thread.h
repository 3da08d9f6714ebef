/* SPDX-License-Identifier: MIT */
/*
 * Threads for tests: start one, join it within a time, and the public
 * operations as thread bodies (t_spawn(t_do_write, &op)). Public API only.
 */
#ifndef HM_TEST_THREAD_H
#define HM_TEST_THREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <hugemm.h>

/* Run @fn(@arg) on a new thread. */
static inline pthread_t t_spawn(void *(*fn)(void *), void *arg)
{
	pthread_t t;

	if (pthread_create(&t, NULL, fn, arg)) {
		fprintf(stderr, "pthread_create failed\n");
		exit(2);
	}
	return t;
}

/* Join @t within @ms milliseconds: true if it finished. */
static inline bool t_join_within(pthread_t t, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

/* An operation run on another thread (t_spawn(t_do_write, &op)): its
 * arguments, and its result in r. */
struct t_op {
	struct hm_system *sys;
	struct hm_mm *mm;
	uint64_t va, len;
	unsigned node;
	void *buf;
	struct hm_mapping m;
	int r;
};

/* The forked child goes to o->mm (NULL if the fork failed). */
static inline void *t_do_fork(void *p)
{
	struct t_op *o = p;
	struct hm_mm *child = NULL;

	o->r = hm_fork(o->mm, &child);
	o->mm = child;
	return NULL;
}

static inline void *t_do_read(void *p)
{
	struct t_op *o = p;

	o->r = hm_read(o->mm, o->va, o->buf, o->len);
	return NULL;
}

static inline void *t_do_write(void *p)
{
	struct t_op *o = p;

	o->r = hm_write(o->mm, o->va, o->buf, o->len);
	return NULL;
}

static inline void *t_do_pageout(void *p)
{
	struct t_op *o = p;

	o->r = hm_madvise(o->mm, o->va, o->len, MADV_PAGEOUT);
	return NULL;
}

static inline void *t_do_munmap(void *p)
{
	struct t_op *o = p;

	o->r = hm_munmap(o->mm, o->va, o->len);
	return NULL;
}

static inline void *t_do_reclaim(void *p)
{
	struct t_op *o = p;
	uint64_t freed;

	o->r = hm_reclaim(o->sys, o->len, &freed);
	return NULL;
}

static inline void *t_do_migrate(void *p)
{
	struct t_op *o = p;

	o->r = hm_migrate(o->mm, o->va, o->len, o->node);
	return NULL;
}

static inline void *t_do_query(void *p)
{
	struct t_op *o = p;

	o->r = hm_query(o->mm, o->va, &o->m);
	return NULL;
}

#endif /* HM_TEST_THREAD_H */
