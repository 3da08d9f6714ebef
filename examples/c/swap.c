/* SPDX-License-Identifier: MIT */
/*
 * Memory pressure and swap: a machine with 32 MiB of memory and a 128 MiB
 * swap file under /tmp. Writing 64 MiB makes faults reclaim the least
 * recently used pages to the swap file; reading everything back brings
 * them in again, and every byte is as written. MADV_PAGEOUT sends pages
 * out on request, hm_query shows them as swapped, and hm_reclaim frees
 * memory for every address space at once.
 *
 *   cc -std=gnu11 swap.c $(pkg-config --cflags --libs hugemm) -o swap
 *
 * Every call's result is checked; any surprise ends the program with 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hugemm.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static int failures;
static char swap_path[64];

static void must(int r, const char *what)
{
	if (r) {
		fprintf(stderr, "swap: %s: %s\n", what, strerror(-r));
		if (swap_path[0])
			unlink(swap_path);
		exit(1);
	}
}

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "swap: MISMATCH: %s\n", what);
		failures++;
	}
}

static uint64_t counter(struct hm_system *sys, const char *name)
{
	uint64_t v = 0;

	must(hm_stat(sys, name, &v), name);
	return v;
}

static uint64_t pattern(uint64_t va) { return va * 0x9e3779b97f4a7c15ull; }

static void counters(struct hm_system *sys)
{
	printf("  pswpout %llu, pswpin %llu (4 KiB pages), thp_swpout %llu (2 MiB pages whole),"
	       " direct_reclaim %llu, swap slots free %llu of %llu\n",
	       (unsigned long long)counter(sys, "pswpout"), (unsigned long long)counter(sys, "pswpin"),
	       (unsigned long long)counter(sys, "thp_swpout"), (unsigned long long)counter(sys, "direct_reclaim"),
	       (unsigned long long)counter(sys, "swap_free_pages"),
	       (unsigned long long)counter(sys, "swap_total_pages"));
}

int main(void)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm;
	struct hm_mapping m;
	uint64_t a, len = 64 * MiB, bad = 0, freed = 0, v;

	snprintf(swap_path, sizeof(swap_path), "/tmp/hugemm-example-%d.swap", (int)getpid());
	hm_config_default(&cfg);
	cfg.phys_bytes = 32 * MiB;
	cfg.swap_path = swap_path;	/* created, or truncated: a name of its own */
	cfg.swap_bytes = 128 * MiB;
	must(hm_system_create(&cfg, &sys), "hm_system_create (swap file)");
	must(hm_mm_create(sys, &mm), "hm_mm_create");
	must(hm_mmap(mm, 0, len, RW, PA, &a), "hm_mmap");

	printf("swap: 32 MiB of memory, a 128 MiB swap file at %s; writing 64 MiB:\n", swap_path);
	for (uint64_t off = 0; off < len; off += 4 * KiB) {
		v = pattern(a + off);
		must(hm_write(mm, a + off, &v, sizeof(v)), "hm_write");
	}
	counters(sys);
	expect(counter(sys, "pswpout") > 0, "writing twice the memory swapped pages out");

	for (uint64_t off = 0; off < len; off += 4 * KiB) {
		must(hm_read(mm, a + off, &v, sizeof(v)), "hm_read");
		bad += v != pattern(a + off);
	}
	printf("read all 64 MiB back: %llu pages wrong\n", (unsigned long long)bad);
	counters(sys);
	expect(bad == 0, "every page reads back as written");
	expect(counter(sys, "pswpin") > 0, "reading back swapped pages in");

	/* Now page out the first 2 MiB on purpose and look at it. */
	must(hm_madvise(mm, a, 2 * MiB, MADV_PAGEOUT), "MADV_PAGEOUT");
	must(hm_query(mm, a, &m), "hm_query");
	printf("MADV_PAGEOUT of the first 2 MiB: hm_query says %s, %llu KiB\n",
	       m.swapped ? "swapped" : "present", (unsigned long long)(m.size >> 10));
	expect(m.swapped, "a paged-out page shows as swapped");
	must(hm_read(mm, a + 4 * KiB, &v, sizeof(v)), "hm_read after pageout");
	expect(v == pattern(a + 4 * KiB), "a paged-out page reads back");
	must(hm_query(mm, a + 4 * KiB, &m), "hm_query");
	expect(!m.swapped && m.size, "read back in: present again");

	must(hm_reclaim(sys, 4 * MiB, &freed), "hm_reclaim");
	printf("hm_reclaim(4 MiB): %llu KiB freed\n", (unsigned long long)(freed >> 10));
	expect(freed > 0, "hm_reclaim freed something");

	expect(hm_check(sys) == 0, "hm_check finds nothing wrong");
	hm_mm_destroy(mm);
	expect(counter(sys, "swap_free_pages") == counter(sys, "swap_total_pages"),
	       "every swap slot is free once the address space is gone");
	hm_system_destroy(sys);
	unlink(swap_path);	/* hm_system_destroy leaves the file */
	printf("swap: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
