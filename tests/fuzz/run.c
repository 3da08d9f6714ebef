/* SPDX-License-Identifier: MIT */
/*
 * One fuzz case: decode a system config, run steps, tear down. Also the
 * failure bookkeeping every check goes through. A case stops at its first
 * failed check, so that a replay ends where the trouble is.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "internal.h"

void fz_fail(struct fz_case *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->failed) {
		char probe[40] = "";

		if (c->probing)
			snprintf(probe, sizeof(probe), ", probe of %#" PRIx64, c->probe_va);
		int n = snprintf(c->why, sizeof(c->why), "step %" PRIu64 " [%s]%s: ", c->step, c->desc, probe);

		va_start(ap, fmt);
		if (n > 0 && (size_t)n < sizeof(c->why))
			vsnprintf(c->why + n, sizeof(c->why) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	c->failed++;
}

bool fz_rc(struct fz_case *c, int r, const int *ok, size_t n)
{
	char list[80] = "";
	size_t at = 0;

	for (size_t i = 0; i < n; i++) {
		if (r == ok[i]) {
			c->passed++;
			c->enomem += r == -ENOMEM;
			c->efault += r == -EFAULT;
			return true;
		}
		at += (size_t)snprintf(list + at, sizeof(list) - at, "%s%d", i ? " or " : "", ok[i]);
		if (at >= sizeof(list))
			break;
	}
	if (r == -ENOMEM)
		fz_fail(c, "returned -ENOMEM with %" PRIu64 " frames free before, expected %s", c->free_before, list);
	else
		fz_fail(c, "returned %d (%s), expected %s", r, r < 0 ? strerror(-r) : "ok", list);
	return false;
}

/*
 * Wraps the call under test: fz_done(c, hm_xxx(...)). Notes whether the
 * failpoint failed one of its allocations and disarms it, so that what
 * checks the result (a probe that swaps a page in, say) allocates freely:
 * the failpoint is for the call, and a check that met it failed with
 * -ENOMEM where the call had left nothing wrong (CI, seed 1796280828823427).
 */
int fz_done(struct fz_case *c, int r)
{
	c->fail_hit = c->fail_armed && hm__fail_hits(c->sys) > 0;
	if (c->fail_armed) {
		hm__fail_arm(c->sys, 0, false);
		c->fail_armed = false;
	}
	return r;
}

/* May the call just made have failed with -ENOMEM? Yes if the failpoint
 * failed one of its allocations, or if fewer than @need frames were free
 * before it. */
bool fz_enomem_ok(struct fz_case *c, uint64_t need)
{
	if (c->fail_hit)
		return true;
	/* With swap, the last 32 frames are kept for swap-ins (folio.c): a
	 * new page gets -ENOMEM when reclaim cannot make room above them. */
	if (c->swap_path[0])
		need += 33;
	return c->free_before < need;
}

#define HM_PTRS_FZ 512u	/* max_ptes_* must be below it */

/* Configs that hm_system_create must refuse, one field wrong at a time. */
static void bad_configs(struct fz_case *c)
{
	struct hm_config b = c->cfg;
	struct hm_system *s = NULL;

	switch (fz_below(c->s, 10)) {
	case 0: b.levels = fz_one_in(c->s, 2) ? 3 : 6; break;
	case 1: b.nr_nodes = fz_one_in(c->s, 2) ? 0 : 65; break;
	case 2: b.phys_bytes = fz_below(c->s, 4ull << 20); break;
	case 3: b.thp_pud = 3 + (int)fz_below(c->s, 100); break;
	case 4: b.thp_pmd = -1 - (int)fz_below(c->s, 100); break;
	case 5: b.deposit = 2; break;
	case 6: b.cow = 2 + (int)fz_below(c->s, 10); break;
	case 7: b.khugepaged_max_ptes_swap = HM_PTRS_FZ + (unsigned)fz_below(c->s, 1000); break;
	case 8: b.khugepaged_max_ptes_shared = HM_PTRS_FZ + (unsigned)fz_below(c->s, 1000); break;
	/* 0x1 HM_CHECK, 0x2 HM_POPULATE_ARENA, 0x4 HM_KHUGEPAGED, 0x8
	 * HM_PREZERO, 0x10 HM_PROTECT_TABLES are known */
	default: b.flags = 0x20u << fz_below(c->s, 26); break;
	}
	snprintf(c->desc, sizeof(c->desc), "hm_system_create with a bad config");
	FZ_RC(c, hm_system_create(&b, &s), -EINVAL);
	FZ_CHECK(c, s == NULL, "hm_system_create set *out on failure");
	FZ_RC(c, hm_system_create(NULL, &s), -EINVAL);
	FZ_RC(c, hm_system_create(&c->cfg, NULL), -EINVAL);
	hm_config_default(NULL);	/* both must do nothing */
	hm_system_destroy(NULL);
}

static void decode_config(struct fz_case *c)
{
	/* 64-256 MiB so that memory runs out; room for one 1 GiB page; and
	 * for one on each of two nodes */
	static const uint64_t phys_mib[] = { 64, 96, 128, 160, 192, 256, 1152, 2304 };
	/* huge pages where most bugs hide: mostly allowed, sometimes never */
	static const int pmd[] = { HM_THP_ALWAYS, HM_THP_ALWAYS, HM_THP_ALWAYS, HM_THP_MADVISE, HM_THP_MADVISE,
				   HM_THP_NEVER };
	static const int pud[] = { HM_THP_MADVISE, HM_THP_MADVISE, HM_THP_ALWAYS, HM_THP_NEVER };
	uint64_t b = fz_below(c->s, 256);

	hm_config_default(&c->cfg);
	c->cfg.levels = b & 1 ? 5 : 4;
	c->cfg.nr_nodes = b & 2 ? 2 : 1;
	c->cfg.deposit = b & 4 ? HM_DEPOSIT_LAZY : HM_DEPOSIT_EAGER;
	c->cfg.cow = b & 8 ? HM_COW_2M : HM_COW_4K;
	c->cfg.thp_pmd = pmd[fz_below(c->s, 6)];
	c->cfg.thp_pud = pud[fz_below(c->s, 4)];
	c->cfg.phys_bytes = phys_mib[fz_below(c->s, 8)] << 20;
	/* hm_check costs in proportion to physical memory: after every
	 * change only on the small systems */
	c->cfg.flags = b & 16 && c->cfg.phys_bytes <= (256ull << 20) ? HM_CHECK : 0;
	/* A swap file half the time: reclaim runs every few steps (step.c),
	 * and direct reclaim where memory runs out. Sized so that it may
	 * fill up too. */
	if (b & 64) {
		snprintf(c->swap_path, sizeof(c->swap_path), "/tmp/hmfuzz-swap.%d.%p", (int)getpid(), (void *)c);
		c->cfg.swap_path = c->swap_path;
		c->cfg.swap_bytes = (c->cfg.phys_bytes < (256ull << 20) ? c->cfg.phys_bytes : 256ull << 20) / 2;
	}
	if (b & 32)
		bad_configs(c);
}

int fz_case_run(struct fz_case *c, struct fz_src *s, uint64_t max_steps, unsigned opts)
{
	memset(c, 0, sizeof(*c));
	c->s = s;
	c->opts = opts;
	decode_config(c);
	if (opts & FZ_VERBOSE)
		fprintf(stderr, "config: %" PRIu64 " MiB, %u levels, %u nodes, thp pud %d pmd %d, %s deposit, cow %s%s\n",
			c->cfg.phys_bytes >> 20, c->cfg.levels, c->cfg.nr_nodes, c->cfg.thp_pud, c->cfg.thp_pmd,
			c->cfg.deposit ? "lazy" : "eager", c->cfg.cow ? "2M" : "4K",
			c->cfg.flags & HM_CHECK ? ", HM_CHECK" : "");
	snprintf(c->desc, sizeof(c->desc), "hm_system_create");
	int r = hm_system_create(&c->cfg, &c->sys);
	if (r) {
		fz_fail(c, "hm_system_create: %d", r);
		return 1;
	}
	c->task_size = (c->cfg.levels == 5 ? 1ull << 56 : 1ull << 47) - FZ_PAGE;
	c->free0 = fz_stat(c, "nr_free_pages");
	while (c->step < max_steps && !s->out && !c->failed) {
		fz_step(c);
		c->step++;
	}
	fz_case_fini(c);
	return c->failed ? 1 : 0;
}

/* Check everything, then tear down: with no address space left, every
 * frame must be free again. */
void fz_case_fini(struct fz_case *c)
{
	if (!c->sys)
		return;
	snprintf(c->desc, sizeof(c->desc), "teardown");
	for (int i = 0; i < c->nmm && !c->failed; i++)
		fz_verify_all(c, &c->mm[i]);
	for (int i = 0; i < c->nmm; i++) {
		hm_mm_destroy(c->mm[i].mm);
		fz_model_free(&c->mm[i].m);
	}
	c->nmm = 0;
	if (!c->failed) {
		FZ_RC(c, hm_check(c->sys), 0);
		uint64_t f = fz_free_frames(c);
		FZ_CHECK(c, f == c->free0, "%" PRIu64 " frames free after destroying every address space, %" PRIu64 " before",
			 f, c->free0);
		FZ_CHECK(c, fz_stat(c, "swap_free_pages") == fz_stat(c, "swap_total_pages"),
			 "swap slots in use after destroying every address space");
	}
	if (c->opts & FZ_VERBOSE) {
		static const char *const names[] = { "pud_fault_alloc", "pmd_fault_alloc", "thp_fault_fallback",
						     "thp_split_pud", "thp_split_pmd", "cow_split_pud",
						     "cow_split_pmd", "cow_copy", "cow_reuse", "split_alloc" };
		uint64_t v;

		for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!hm_stat(c->sys, names[i], &v))
				fprintf(stderr, "%s %" PRIu64 "%s", names[i], v, i + 1 < sizeof(names) / sizeof(names[0]) ? ", " : "\n");
	}
	hm_system_destroy(c->sys);
	if (c->swap_path[0])
		unlink(c->swap_path);
	c->sys = NULL;
}
