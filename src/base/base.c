/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base.h"
#include "fail.h"
#include "lock.h"

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
	abort();
}

#if HM_DEBUG >= 2
__thread unsigned hm_spin_depth;
#endif

uint32_t hm_thread_token(void)
{
	static uint32_t next = 1;
	static __thread uint32_t tok;

	if (hm_unlikely(!tok)) {
		tok = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED);
		if (!tok)	/* wrapped after 4 billion threads */
			tok = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED);
	}
	return tok;
}

int hm_rwsem_init(struct hm_rwsem *s)
{
	s->writer = 0;
	s->readers = 0;
	return -pthread_rwlock_init(&s->rw, NULL);
}

void hm_rwsem_destroy(struct hm_rwsem *s)
{
	pthread_rwlock_destroy(&s->rw);
}

void hm_down_read(struct hm_rwsem *s)
{
	hm_might_sleep();
	pthread_rwlock_rdlock(&s->rw);
	__atomic_add_fetch(&s->readers, 1, __ATOMIC_RELAXED);
}

void hm_up_read(struct hm_rwsem *s)
{
	__atomic_sub_fetch(&s->readers, 1, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&s->rw);
}

void hm_down_write(struct hm_rwsem *s)
{
	hm_might_sleep();
	pthread_rwlock_wrlock(&s->rw);
	__atomic_store_n(&s->writer, hm_thread_token(), __ATOMIC_RELAXED);
}

void hm_up_write(struct hm_rwsem *s)
{
	hm_assert_int(hm_rwsem_write_held(s));
	__atomic_store_n(&s->writer, 0, __ATOMIC_RELAXED);
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
