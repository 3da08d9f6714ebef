/* SPDX-License-Identifier: MIT */
/*
 * Race points for tests (see race.h). The test side, declared in
 * tests/race.h:
 *   hm__race_arm(name, skip)       the (skip + 1)th thread to reach @name
 *                                  stops there
 *   hm__race_wait(name, ms)        wait until a thread is stopped at @name:
 *                                  0, or -ETIMEDOUT
 *   hm__race_release(name)         let it go on
 *   hm__race_reset()               disarm everything, release everyone
 */
#include "race.h"

#ifdef HM_RACE_POINTS
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#define NR_POINTS 8

enum { IDLE, ARMED, STOPPED, RELEASED };

struct point {
	const char *name;
	int state;
	unsigned skip;
};

static pthread_mutex_t race_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t race_cond = PTHREAD_COND_INITIALIZER;
static struct point points[NR_POINTS];	/* race_lock */
static int nr_armed;			/* atomic; the fast path's test, read
					 * relaxed (see below) */
/* The names of the ARMED points, set and cleared under race_lock, read
 * without it: a thread that reaches a point no one waits for must not take
 * race_lock, or every thread passing any point while one is armed would be
 * ordered after the stopped thread, and ThreadSanitizer would miss the very
 * races the tests stop threads for. Relaxed for the same reason: a stopping
 * thread clears its name, and an acquire load of that would order the
 * reader after it too. (The names are string literals: nothing to publish.) */
static const char *armed_name[NR_POINTS];

static void set_state_locked(struct point *p, int state)
{
	p->state = state;
	__atomic_store_n(&armed_name[p - points], state == ARMED ? p->name : NULL, __ATOMIC_RELAXED);
}

static bool armed(const char *name)
{
	for (int i = 0; i < NR_POINTS; i++) {
		const char *n = __atomic_load_n(&armed_name[i], __ATOMIC_RELAXED);

		if (n && !strcmp(n, name))
			return true;
	}
	return false;
}

static struct point *find(const char *name)
{
	for (int i = 0; i < NR_POINTS; i++)
		if (points[i].state != IDLE && !strcmp(points[i].name, name))
			return &points[i];
	return NULL;
}

void hm__race_point(const char *name)
{
	if (!__atomic_load_n(&nr_armed, __ATOMIC_RELAXED) || !armed(name))
		return;
	pthread_mutex_lock(&race_lock);
	struct point *p = find(name);
	if (p && p->state == ARMED && p->skip) {
		p->skip--;
	} else if (p && p->state == ARMED) {
		set_state_locked(p, STOPPED);
		pthread_cond_broadcast(&race_cond);
		while (p->state == STOPPED)
			pthread_cond_wait(&race_cond, &race_lock);
		set_state_locked(p, IDLE);
		__atomic_sub_fetch(&nr_armed, 1, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&race_cond);
	}
	pthread_mutex_unlock(&race_lock);
}

int hm__race_arm(const char *name, unsigned skip)
{
	int r = -EBUSY;

	pthread_mutex_lock(&race_lock);
	for (int i = 0; i < NR_POINTS && find(name) == NULL; i++) {
		if (points[i].state == IDLE) {
			points[i] = (struct point){ name, IDLE, skip };
			set_state_locked(&points[i], ARMED);
			__atomic_add_fetch(&nr_armed, 1, __ATOMIC_RELEASE);
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&race_lock);
	return r;
}

int hm__race_wait(const char *name, int timeout_ms)
{
	struct timespec ts;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&race_lock);
	struct point *p;
	while (r == 0 && (!(p = find(name)) || p->state != STOPPED))
		if (pthread_cond_timedwait(&race_cond, &race_lock, &ts) == ETIMEDOUT)
			r = -ETIMEDOUT;
	pthread_mutex_unlock(&race_lock);
	return r;
}

void hm__race_release(const char *name)
{
	pthread_mutex_lock(&race_lock);
	struct point *p = find(name);
	if (p && p->state == STOPPED) {
		p->state = RELEASED;
		pthread_cond_broadcast(&race_cond);
	}
	pthread_mutex_unlock(&race_lock);
}

void hm__race_reset(void)
{
	pthread_mutex_lock(&race_lock);
	for (int i = 0; i < NR_POINTS; i++) {
		if (points[i].state == STOPPED) {
			points[i].state = RELEASED;
		} else if (points[i].state == ARMED) {
			set_state_locked(&points[i], IDLE);
			__atomic_sub_fetch(&nr_armed, 1, __ATOMIC_RELEASE);
		}
	}
	pthread_cond_broadcast(&race_cond);
	/* Wait for released threads to leave, so that the next test starts clean. */
	for (int i = 0; i < NR_POINTS; i++)
		while (points[i].state == RELEASED)
			pthread_cond_wait(&race_cond, &race_lock);
	pthread_mutex_unlock(&race_lock);
}
#endif /* HM_RACE_POINTS */
