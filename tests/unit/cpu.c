/* SPDX-License-Identifier: MIT */
/* The CPU lookup behind every per-CPU structure (base/cpu.h): read inline
 * from glibc's rseq area where it is registered, it must name the CPU the
 * thread runs on, as sched_getcpu() does. Pinned to each allowed CPU in
 * turn, the thread finds that CPU, and its slot, every time. */
#define _GNU_SOURCE
#include <sched.h>

#include "harness.h"
#include "../../src/base/cpu.h"

static void pinned(void)
{
	cpu_set_t old, one;
	unsigned nr = hm_nr_cpus(), tried = 0;

	REQUIRE(sched_getaffinity(0, sizeof(old), &old) == 0);
	CHECK(nr >= 1 && nr <= HM_MAX_CPUS);
	for (int cpu = 0; cpu < CPU_SETSIZE && tried < 64; cpu++) {
		if (!CPU_ISSET(cpu, &old))
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof(one), &one))
			continue;	/* offline meanwhile */
		tried++;
		for (int i = 0; i < 100; i++) {
			CHECK_EQ(hm_getcpu(), cpu);
			CHECK_EQ(hm_this_cpu(nr), (unsigned)cpu % nr);
		}
		CHECK_EQ(sched_getcpu(), cpu);
	}
	CHECK(tried >= 1);
	REQUIRE(sched_setaffinity(0, sizeof(old), &old) == 0);
#ifdef HM_HAVE_RSEQ
	fprintf(stderr, "  cpu: rseq area %s\n", __rseq_size ? "registered: read inline" : "not registered: sched_getcpu()");
#endif
}

/* A slot is below the count asked for, whatever the CPU. */
static void slots(void)
{
	for (unsigned nr = 1; nr <= 4; nr++)
		for (int i = 0; i < 100; i++)
			CHECK(hm_this_cpu(nr) < nr);
}

T_MAIN(T(pinned), T(slots))
