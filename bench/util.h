/* SPDX-License-Identifier: MIT */
/* What the benchmarks share: the clock, sorting times, the machine line. */
#ifndef HM_BENCH_UTIL_H
#define HM_BENCH_UTIL_H

#include <emmintrin.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* qsort() order for doubles. */
static inline int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* "machine: <cpu>, N cores, X GiB, Linux <release>" */
static inline void print_machine(void)
{
	char line[256], model[256] = "unknown";
	struct utsname u;
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "model name", 10)) {
			snprintf(model, sizeof(model), "%s", strchr(line, ':') + 2);
			model[strcspn(model, "\n")] = 0;
			break;
		}
	if (f)
		fclose(f);
	uname(&u);
	printf("machine: %s, %ld cores, %.1f GiB, Linux %s\n", model, sysconf(_SC_NPROCESSORS_ONLN),
	       sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / (1ull << 30), u.release);
}

/* A host buffer of @bytes backed by host huge pages where the host has
 * them, as hugemm's arena is: a baseline in 4 KiB host pages would pay TLB
 * misses that hugemm does not. */
static inline char *host_buffer(uint64_t bytes, void (*die)(const char *what, int err))
{
	const uint64_t huge = 2ull << 20;
	char *m = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		die("mmap", errno);
	char *p = (char *)(((uintptr_t)m + huge - 1) & ~(huge - 1));
	madvise(p, bytes, MADV_HUGEPAGE);
	return p;
}

/* A copy with non-temporal stores, 64 bytes a step (@bytes a multiple). */
static inline void copy_nt(void *dst, const void *src, uint64_t bytes)
{
	const __m128i *s = src;
	__m128i *d = dst;

	for (uint64_t i = 0; i < bytes / 16; i += 4) {
		__m128i a = _mm_load_si128(s + i), b = _mm_load_si128(s + i + 1);
		__m128i c = _mm_load_si128(s + i + 2), e = _mm_load_si128(s + i + 3);

		_mm_stream_si128(d + i, a);
		_mm_stream_si128(d + i + 1, b);
		_mm_stream_si128(d + i + 2, c);
		_mm_stream_si128(d + i + 3, e);
	}
	_mm_sfence();
}

#endif /* HM_BENCH_UTIL_H */
