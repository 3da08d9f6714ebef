/* SPDX-License-Identifier: MIT */
/* The machine a benchmark ran on, as its first line of output. */
#ifndef HM_BENCH_MACHINE_H
#define HM_BENCH_MACHINE_H

#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

static void bench_machine(void)
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

#endif
