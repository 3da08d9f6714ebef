/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE	/* pthread_rwlockattr_setkind_np */
#include <execinfo.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "fail.h"
#include "lock.h"
#include "cpu.h"
#include "race.h"

/* glibc's backtrace() loads the unwinder (malloc, dlopen) at its first
 * call: make that call now, so that the panic path never allocates. */
__attribute__((constructor)) static void backtrace_warm(void)
{
	void *bt[1];

	(void)backtrace(bt, 1);
}

void hm_panic(const char *file, int line, const char *fmt, ...)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "hugemm: %s:%d: ", file, line);
	va_list ap;

	if (n < 0 || n >= (int)sizeof(buf))
		n = 0;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m > 0)
		n += HM_MIN(m, (int)sizeof(buf) - n - 2);
	buf[n++] = '\n';
	if (write(2, buf, (size_t)n) < 0) {
		/* nothing more can be done */
	}
	/* Where: a failure under load may not come back in a debugger. The
	 * frames print as binary(+offset), for addr2line -f -e binary.
	 * backtrace() was called once at load (below), so it does not load
	 * its unwinder, which allocates, here. */
	void *bt[32];
	backtrace_symbols_fd(bt, backtrace(bt, 32), 2);
	abort();
}

#if HM_DEBUG >= 2
__thread unsigned hm_spin_depth;
#endif

__thread uint32_t hm_thread_tok __attribute__((tls_model("initial-exec")));

uint32_t hm_thread_token_slow(void)
{
	static uint32_t next = 1;
	uint32_t tok = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED);

	if (!tok)	/* wrapped after 4 billion threads */
		tok = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED);
	hm_thread_tok = tok;
	return tok;
}

int hm_rwsem_init(struct hm_rwsem *s)
{
	pthread_rwlockattr_t attr;
	int r;

	s->writer = 0;
	s->wpending = 0;
	s->cpu = aligned_alloc(64, hm_nr_cpus() * sizeof(*s->cpu));
	if (!s->cpu)
		return -ENOMEM;
	memset(s->cpu, 0, hm_nr_cpus() * sizeof(*s->cpu));
	if ((r = pthread_rwlockattr_init(&attr))) {
		free(s->cpu);
		return -r;
	}
	/*
	 * Writers first: with glibc's default a steady stream of readers (faults,
	 * hm_query) keeps a map change waiting for ever. The price: a thread that
	 * holds the lock for reading must not take it again, or it waits behind a
	 * queued writer that waits for it (asserted at DEBUG >= 2).
	 */
	r = pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (!r)
		r = pthread_rwlock_init(&s->rw, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (r) {
		free(s->cpu);
		return -r;
	}
	pthread_mutex_init(&s->wait_lock, NULL);
	pthread_cond_init(&s->wait_cond, NULL);
	return 0;
}

void hm_rwsem_destroy(struct hm_rwsem *s)
{
	hm_assert(hm_rwsem_readers(s) == 0);
	pthread_cond_destroy(&s->wait_cond);
	pthread_mutex_destroy(&s->wait_lock);
	pthread_rwlock_destroy(&s->rw);
	free(s->cpu);
}

int64_t hm_rwsem_readers(struct hm_rwsem *s)
{
	int64_t n = 0;

	for (unsigned c = 0, nr = hm_nr_cpus(); c < nr; c++) {
		n += __atomic_load_n(&s->cpu[c].readers, __ATOMIC_SEQ_CST);
		hm_race_point("rwsem_readers_summing");
	}
	return n;
}

#if HM_DEBUG >= 2
/* The rwsems this thread holds, so that taking one again, which deadlocks
 * as soon as a writer queues in between, is caught when it happens rather
 * than when it hangs. Past HM_HELD_MAX (hm_check holds every mm) the rest
 * go untracked. */
#define HM_HELD_MAX 16
static __thread struct hm_rwsem *held[HM_HELD_MAX];
static __thread unsigned nheld, untracked;

static void held_add(struct hm_rwsem *s)
{
	for (unsigned i = 0; i < nheld; i++)
		if (held[i] == s)
			hm_panic(__FILE__, __LINE__, "rwsem %p taken again by the thread that holds it",
				 (void *)s);
	if (nheld < HM_HELD_MAX)
		held[nheld++] = s;
	else
		untracked++;
}

static void held_del(struct hm_rwsem *s)
{
	for (unsigned i = 0; i < nheld; i++)
		if (held[i] == s) {
			held[i] = held[--nheld];
			return;
		}
	hm_assert_int(untracked > 0);	/* else: released a lock it did not hold */
	untracked--;
}

bool hm_rwsem_held(struct hm_rwsem *s)
{
	if (hm_rwsem_write_held(s) || untracked)
		return true;
	for (unsigned i = 0; i < nheld; i++)
		if (held[i] == s)
			return true;
	return false;
}
#else
#define held_add(s) ((void)0)
#define held_del(s) ((void)0)

bool hm_rwsem_held(struct hm_rwsem *s)
{
	return hm_rwsem_write_held(s) || hm_rwsem_readers(s) > 0;
}
#endif

static inline int64_t *my_count(struct hm_rwsem *s)
{
	return &s->cpu[hm_this_cpu(hm_nr_cpus())].readers;
}

/* Take a reader out; wake a writer that waits for the readers. The writer
 * checks the sum under wait_lock before it sleeps, and we take wait_lock
 * after our count is gone: it cannot miss us. */
static void read_leave(struct hm_rwsem *s, int64_t *n)
{
	__atomic_sub_fetch(n, 1, __ATOMIC_SEQ_CST);
	if (hm_unlikely(__atomic_load_n(&s->wpending, __ATOMIC_SEQ_CST))) {
		pthread_mutex_lock(&s->wait_lock);
		pthread_cond_broadcast(&s->wait_cond);
		pthread_mutex_unlock(&s->wait_lock);
	}
}

/* Count ourselves in; false (not counted) if a writer is pending. */
static bool read_fast(struct hm_rwsem *s)
{
	int64_t *n = my_count(s);

	__atomic_add_fetch(n, 1, __ATOMIC_SEQ_CST);
	hm_race_point("rwsem_read_counted");
	if (hm_likely(!__atomic_load_n(&s->wpending, __ATOMIC_SEQ_CST)))
		return true;
	read_leave(s, n);
	return false;
}

void hm_down_read(struct hm_rwsem *s)
{
	hm_might_sleep();
	held_add(s);
	if (read_fast(s))
		return;
	/* Behind the writer: it holds rw until it is done. Counted while we
	 * hold rw's read side, no writer can be past its wait for us. */
	int r = pthread_rwlock_rdlock(&s->rw);
	hm_assert(r == 0);
	__atomic_add_fetch(my_count(s), 1, __ATOMIC_SEQ_CST);
	pthread_rwlock_unlock(&s->rw);
}

bool hm_down_read_trylock(struct hm_rwsem *s)
{
	if (!read_fast(s)) {
		if (pthread_rwlock_tryrdlock(&s->rw))
			return false;
		__atomic_add_fetch(my_count(s), 1, __ATOMIC_SEQ_CST);
		pthread_rwlock_unlock(&s->rw);
	}
	held_add(s);
	return true;
}

void hm_up_read(struct hm_rwsem *s)
{
	held_del(s);
	read_leave(s, my_count(s));
}

/* Wait until no reader is in. Context: rw held for writing, wpending set. */
static void wait_readers(struct hm_rwsem *s)
{
	if (!hm_rwsem_readers(s))
		return;
	hm_mutex_lock(&s->wait_lock);
	while (hm_rwsem_readers(s))
		pthread_cond_wait(&s->wait_cond, &s->wait_lock);
	hm_mutex_unlock(&s->wait_lock);
}

void hm_down_write(struct hm_rwsem *s)
{
	hm_might_sleep();
	held_add(s);
	int r = pthread_rwlock_wrlock(&s->rw);
	hm_assert(r == 0);
	__atomic_store_n(&s->wpending, 1, __ATOMIC_SEQ_CST);
	wait_readers(s);
	__atomic_store_n(&s->writer, hm_thread_token(), __ATOMIC_RELAXED);
}

bool hm_down_write_trylock(struct hm_rwsem *s)
{
	/* Fails, never waits, when this thread holds @s already: the held
	 * list learns of it only once we have it. */
	if (pthread_rwlock_trywrlock(&s->rw))
		return false;
	__atomic_store_n(&s->wpending, 1, __ATOMIC_SEQ_CST);
	if (hm_rwsem_readers(s)) {
		__atomic_store_n(&s->wpending, 0, __ATOMIC_SEQ_CST);
		pthread_rwlock_unlock(&s->rw);
		return false;
	}
	held_add(s);
	__atomic_store_n(&s->writer, hm_thread_token(), __ATOMIC_RELAXED);
	return true;
}

void hm_up_write(struct hm_rwsem *s)
{
	hm_assert_int(hm_rwsem_write_held(s));
	held_del(s);
	__atomic_store_n(&s->writer, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->wpending, 0, __ATOMIC_SEQ_CST);
	pthread_rwlock_unlock(&s->rw);
}

bool hm_fail_hit(struct hm_fail *f)
{
	long n = __atomic_load_n(&f->countdown, __ATOMIC_RELAXED);

	if (hm_likely(n <= 0))
		return false;
	if (__atomic_sub_fetch(&f->countdown, 1, __ATOMIC_RELAXED) != 0)
		return false;
	__atomic_add_fetch(&f->hits, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&f->persistent, __ATOMIC_RELAXED))
		__atomic_store_n(&f->countdown, 1, __ATOMIC_RELAXED);
	return true;
}

void *hm_malloc(struct hm_fail *f, size_t size)
{
	hm_might_sleep();
	if (f && hm_fail_hit(f))
		return NULL;
	return malloc(size);
}

void *hm_calloc(struct hm_fail *f, size_t n, size_t size)
{
	hm_might_sleep();
	if (f && hm_fail_hit(f))
		return NULL;
	return calloc(n, size);
}

void *hm_realloc(struct hm_fail *f, void *p, size_t size)
{
	hm_might_sleep();
	if (f && hm_fail_hit(f))
		return NULL;
	return realloc(p, size);
}

unsigned hm_nr_cpus(void)
{
	static unsigned nr;	/* atomic: 0 until the first call */
	unsigned n = hm_load_relaxed(&nr);

	if (hm_unlikely(!n)) {
		long c = sysconf(_SC_NPROCESSORS_CONF);

		n = c < 1 ? 1u : c > (long)HM_MAX_CPUS ? HM_MAX_CPUS : (unsigned)c;
		hm_store(&nr, n);
	}
	return n;
}
