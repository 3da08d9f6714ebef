/* SPDX-License-Identifier: MIT */
/* What the benchmarks share: the clock, sorting times, the machine line. */
#ifndef HM_BENCH_UTIL_H
#define HM_BENCH_UTIL_H

#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

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

#endif /* HM_BENCH_UTIL_H */
