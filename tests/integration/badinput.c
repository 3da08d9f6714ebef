/* SPDX-License-Identifier: MIT */
/*
 * Every call with zero, unaligned, overflowing, out-of-range or unmapped
 * arguments returns the documented error and changes nothing: after each,
 * hm_check passes, every counter is as it was, and the mappings read back
 * the same. Public API only.
 */
#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

static struct hm_system *sys;
static struct hm_mm *mm;
static uint64_t base;		/* 3 pages mapped RW, 1 hole, 4 pages RW */
static uint64_t snap[128];

static void snapshot(uint64_t *s)
{
	const char *n;

	for (unsigned i = 0; (n = hm_stat_name(i)); i++)
		hm_stat(sys, n, &s[i]);
}

/* The call just made must have changed nothing. */
static void unchanged(int line)
{
	uint64_t now[128];
	const char *n;
	unsigned diff = 0;

	snapshot(now);
	for (unsigned i = 0; (n = hm_stat_name(i)); i++) {
		if (now[i] != snap[i] && strcmp(n, "pgfault")) {
			fprintf(stderr, "line %d: %s changed %llu -> %llu\n", line, n,
				(unsigned long long)snap[i], (unsigned long long)now[i]);
			diff++;
		}
	}
	CHECK_EQ(diff, 0);
	STEP(sys);
	for (int p = 0; p < 8; p++) {
		uint64_t v = 0;
		int r = hm_read(mm, base + p * 4096ull, &v, 8);

		CHECK_EQ(r, p == 3 ? -EFAULT : 0);
		CHECK_EQ(v, p == 3 ? 0 : t_pattern(1, p));
	}
	snapshot(snap);
}
#define UNCHANGED() unchanged(__LINE__)

static void setup(void)
{
	uint64_t a;

	sys = t_system(64 * MiB, HM_THP_MADVISE, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	if (hm_mm_create(sys, &mm) || hm_mmap(mm, 0, 8 * 4096, RW, PA, &base) ||
	    hm_munmap(mm, base + 3 * 4096, 4096))
		exit(2);
	for (int p = 0; p < 8; p++) {
		uint64_t v = t_pattern(1, p);

		if (p != 3 && hm_write(mm, base + p * 4096ull, &v, 8))
			exit(2);
	}
	(void)a;
	snapshot(snap);
}

static void config(void)
{
	struct hm_config c;
	struct hm_system *s = NULL;

	CHECK_EQ(hm_system_create(NULL, &s), -EINVAL);
	hm_config_default(&c);
	CHECK_EQ(hm_system_create(&c, NULL), -EINVAL);
	c.phys_bytes = 4096;
	CHECK_EQ(hm_system_create(&c, &s), -EINVAL);
	hm_config_default(&c);
	c.levels = 3;
	CHECK_EQ(hm_system_create(&c, &s), -EINVAL);
	hm_config_default(&c);
	c.nr_nodes = 0;
	CHECK_EQ(hm_system_create(&c, &s), -EINVAL);
	c.nr_nodes = 65;
	CHECK_EQ(hm_system_create(&c, &s), -EINVAL);
	hm_config_default(&c);
	c.thp_pud = 7;
	CHECK_EQ(hm_system_create(&c, &s), -EINVAL);
	hm_config_default(&c);
	c.deposit = 2;
	CHECK_EQ(hm_system_create(&c, &s), -EINVAL);
	hm_config_default(&c);
	c.flags = 0x80;
	CHECK_EQ(hm_system_create(&c, &s), -EINVAL);
	CHECK(s == NULL);
	CHECK_EQ(hm_mm_create(NULL, NULL), -EINVAL);
	hm_config_default(NULL);	/* must not crash */
	hm_system_destroy(NULL);
	hm_mm_destroy(NULL);
}

static void mmap_args(void)
{
	uint64_t a = 0;

	setup();
	CHECK_EQ(hm_mmap(mm, 0, 0, RW, PA, &a), -EINVAL);
	UNCHANGED();
	CHECK_EQ(hm_mmap(mm, 0, 4096, RW, PA, NULL), -EINVAL);
	CHECK_EQ(hm_mmap(NULL, 0, 4096, RW, PA, &a), -EINVAL);
	CHECK_EQ(hm_mmap(mm, 0, 4096, RW, MAP_ANONYMOUS, &a), -EINVAL);
	CHECK_EQ(hm_mmap(mm, 0, 4096, RW, MAP_SHARED | MAP_ANONYMOUS, &a), -EINVAL);
	CHECK_EQ(hm_mmap(mm, 0, 4096, RW, PA | MAP_GROWSDOWN, &a), -EINVAL);
	CHECK_EQ(hm_mmap(mm, 0, 4096, 0x100, PA, &a), -EINVAL);
	CHECK_EQ(hm_mmap(mm, 0, UINT64_MAX, RW, PA, &a), -EINVAL);
	CHECK_EQ(hm_mmap(mm, 0, UINT64_MAX - 4096, RW, PA, &a), -ENOMEM);
	UNCHANGED();
	CHECK_EQ(hm_mmap(mm, base + 1, 4096, RW, PA | MAP_FIXED, &a), -EINVAL);
	CHECK_EQ(hm_mmap(mm, UINT64_MAX - 4095, 8192, RW, PA | MAP_FIXED, &a), -EINVAL);
	CHECK_EQ(hm_mmap(mm, 1ull << 47, 4096, RW, PA | MAP_FIXED, &a), -ENOMEM);
	CHECK_EQ(hm_mmap(mm, 4096, 4096, RW, PA | MAP_FIXED, &a), -EPERM);
	CHECK_EQ(hm_mmap(mm, base, 4096, RW, PA | MAP_FIXED_NOREPLACE, &a), -EEXIST);
	CHECK_EQ(hm_mmap(mm, base + 2 * 4096, 8192, RW, PA | MAP_FIXED_NOREPLACE, &a), -EEXIST);
	UNCHANGED();
	hm_system_destroy(sys);
}

static void unmap_protect_advise_args(void)
{
	setup();
	CHECK_EQ(hm_munmap(mm, base + 1, 4096), -EINVAL);
	CHECK_EQ(hm_munmap(mm, base, 0), -EINVAL);
	CHECK_EQ(hm_munmap(mm, base, UINT64_MAX), -EINVAL);
	CHECK_EQ(hm_munmap(mm, UINT64_MAX & ~4095ull, 8192), -EINVAL);
	CHECK_EQ(hm_munmap(mm, 1ull << 47, 4096), -EINVAL);
	CHECK_EQ(hm_munmap(NULL, base, 4096), -EINVAL);
	CHECK_EQ(hm_munmap(mm, base + 3 * 4096, 4096), 0);	/* nothing there: fine */
	UNCHANGED();

	CHECK_EQ(hm_mprotect(mm, base + 1, 4096, PROT_READ), -EINVAL);
	CHECK_EQ(hm_mprotect(mm, base, 4096, 0x40), -EINVAL);
	CHECK_EQ(hm_mprotect(mm, base, UINT64_MAX, PROT_READ), -EINVAL);
	CHECK_EQ(hm_mprotect(mm, base, 0, PROT_READ), 0);
	CHECK_EQ(hm_mprotect(mm, base, 8 * 4096, PROT_READ), -ENOMEM);	/* hole at page 3 */
	CHECK_EQ(hm_mprotect(mm, 1ull << 40, 4096, PROT_READ), -ENOMEM);
	UNCHANGED();
	uint64_t v = 9;
	CHECK_EQ(hm_write(mm, base, &v, 8), 0);	/* still writable after the failed mprotect */
	v = t_pattern(1, 0);
	CHECK_EQ(hm_write(mm, base, &v, 8), 0);

	CHECK_EQ(hm_madvise(mm, base + 1, 4096, MADV_DONTNEED), -EINVAL);
	CHECK_EQ(hm_madvise(mm, base, 4096, 12345), -EINVAL);
	CHECK_EQ(hm_madvise(mm, base, 4096, MADV_REMOVE), -EINVAL);
	CHECK_EQ(hm_madvise(mm, base, UINT64_MAX, MADV_DONTNEED), -EINVAL);
	CHECK_EQ(hm_madvise(mm, base, 8 * 4096, MADV_DONTNEED), -ENOMEM);	/* nothing zapped */
	CHECK_EQ(hm_madvise(mm, base, 8 * 4096, MADV_HUGEPAGE), -ENOMEM);
	CHECK_EQ(hm_madvise(mm, base, 0, MADV_DONTNEED), 0);
	UNCHANGED();
	hm_system_destroy(sys);
}

static void access_args(void)
{
	uint8_t buf[3 * 4096] = { 0 };
	struct hm_mapping m;

	setup();
	CHECK_EQ(hm_read(mm, 0, buf, 8), -EFAULT);
	CHECK_EQ(hm_read(mm, base + 3 * 4096, buf, 8), -EFAULT);
	CHECK_EQ(hm_write(mm, base + 3 * 4096 + 100, buf, 8), -EFAULT);
	/* Straddling into the hole: nothing written, nothing faulted. */
	memset(buf, 0xee, sizeof(buf));
	CHECK_EQ(hm_write(mm, base + 2 * 4096, buf, 8192), -EFAULT);
	CHECK_EQ(hm_read(mm, base + 2 * 4096 + 4000, buf, 200), -EFAULT);
	CHECK_EQ(hm_read(mm, UINT64_MAX - 3, buf, 8), -EFAULT);
	CHECK_EQ(hm_read(mm, (1ull << 47) - 4, buf, 8), -EFAULT);
	CHECK_EQ(hm_read(mm, base, NULL, 8), -EINVAL);
	CHECK_EQ(hm_write(NULL, base, buf, 8), -EINVAL);
	CHECK_EQ(hm_read(mm, base, buf, 0), 0);
	UNCHANGED();
	CHECK_EQ(hm_query(mm, 1ull << 47, &m), -EINVAL);
	CHECK_EQ(hm_query(mm, base, NULL), -EINVAL);
	CHECK_EQ(hm_query(NULL, base, &m), -EINVAL);
	CHECK_EQ(hm_query(mm, base + 3 * 4096, &m), 0);
	CHECK_EQ(m.size, 0);
	uint64_t x;
	CHECK_EQ(hm_stat(sys, "no_such_counter", &x), -ENOENT);
	CHECK_EQ(hm_stat(sys, NULL, &x), -EINVAL);
	CHECK_EQ(hm_check(NULL), -EINVAL);
	UNCHANGED();
	hm_system_destroy(sys);
}

/* The hints hm_madvise accepts return 0 and change nothing: no counter, no
 * byte, no mapping (a 2 MiB page under a 4 KiB piece of advice is not split).
 * Advice it does not know is -EINVAL, even over a hole, and changes nothing. */
static void madvise_advice(void)
{
	static const int hints[] = { MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED };
	static const int unknown[] = { -1, 12345, 0x7fffffff, MADV_FREE, MADV_REMOVE,
				       MADV_MERGEABLE, MADV_HWPOISON };
	struct hm_mapping m0, m;
	uint64_t huge, v = 0x4242;

	setup();
	CHECK_EQ(hm_mmap(mm, 0, 2 * MiB, RW, PA, &huge), 0);
	CHECK_EQ(hm_write(mm, huge, &v, 8), 0);
	CHECK_EQ(hm_query(mm, huge, &m0), 0);
	CHECK_EQ(m0.size, 2 * MiB);
	snapshot(snap);
	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
		CHECK_EQ(hm_madvise(mm, base, 3 * 4096, hints[i]), 0);
		CHECK_EQ(hm_madvise(mm, huge + 4096, 4096, hints[i]), 0);
		CHECK_EQ(hm_madvise(mm, base, 0, hints[i]), 0);
		CHECK_EQ(hm_madvise(mm, base, 8 * 4096, hints[i]), -ENOMEM);	/* hole at page 3 */
		UNCHANGED();
		CHECK_EQ(hm_query(mm, huge, &m), 0);
		CHECK(m.size == m0.size && m.pa == m0.pa && m.prot == m0.prot);
	}
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		CHECK_EQ(hm_madvise(mm, base, 3 * 4096, unknown[i]), -EINVAL);
		CHECK_EQ(hm_madvise(mm, huge + 4096, 4096, unknown[i]), -EINVAL);
		CHECK_EQ(hm_madvise(mm, base, 8 * 4096, unknown[i]), -EINVAL);
		UNCHANGED();
		CHECK_EQ(hm_query(mm, huge, &m), 0);
		CHECK(m.size == m0.size && m.pa == m0.pa && m.prot == m0.prot);
	}
	v = 0;
	CHECK_EQ(hm_read(mm, huge, &v, 8), 0);
	CHECK_EQ(v, 0x4242);
	hm_system_destroy(sys);
}

/* A swap path is never followed through a symbolic link, and an existing
 * file that is not a regular one (a device) is refused: a predictable name
 * in /tmp must not let anyone else's file be truncated. */
static void swap_path_refused(void)
{
	char dir[] = "/tmp/hm-badswap-XXXXXX", victim[64], link[64];
	struct hm_config cfg;
	struct hm_system *s = NULL;
	FILE *f;
	char buf[16] = "";

	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	REQUIRE((f = fopen(victim, "w")) != NULL);
	fputs("precious", f);
	fclose(f);
	REQUIRE(symlink(victim, link) == 0);
	hm_config_default(&cfg);
	cfg.phys_bytes = 16 << 20;
	cfg.swap_bytes = 1 << 20;
	cfg.swap_path = link;
	CHECK_EQ(hm_system_create(&cfg, &s), -ELOOP);
	CHECK(s == NULL);
	REQUIRE((f = fopen(victim, "r")) != NULL);
	CHECK(fgets(buf, sizeof(buf), f) && !strcmp(buf, "precious"));
	fclose(f);
	cfg.swap_path = "/dev/null";
	CHECK_EQ(hm_system_create(&cfg, &s), -EINVAL);
	CHECK(s == NULL);
	unlink(link);
	unlink(victim);
	rmdir(dir);
}

T_MAIN(T(config), T(swap_path_refused), T(mmap_args), T(unmap_protect_advise_args), T(access_args), T(madvise_advice))
