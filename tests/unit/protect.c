/* SPDX-License-Identifier: MIT */
/*
 * HM_PROTECT_TABLES (pgtable/protect.c): a store into a PTE, PMD or top
 * table from outside the entry helpers faults, with protection keys and
 * with page protection; the helpers' windows close after the store, nest,
 * and overlap across threads; a thread that had no access to the key gets
 * read access when it first walks; with the flag off nothing faults.
 * And table blocks hold only tables: no slot is lent out as data when
 * memory runs out, and hm_check says so if one is.
 *
 * The stray stores run in a forked child, which must die of SIGSEGV.
 * tests/integration/protect does the same through the public API
 * (hm_walk's walk.table[i]); table_of() stands in for it here.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/wait.h>

#include "harness.h"
#include "race.h"
#include "../../src/mm/mm.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

/* How a child ended: the signal that killed it, or 1000 + its exit code. */
#define DIED(sig) (sig)
#define EXITED(code) (1000 + (code))

static int wait_child(pid_t pid)
{
	int st;

	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFSIGNALED(st) ? DIED(WTERMSIG(st)) : EXITED(WEXITSTATUS(st));
}

/* In a child: die of SIGSEGV itself, not through a sanitizer's handler. */
static void child_default_segv(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGSEGV, &sa, NULL);
}

/* The host address of the table that holds @va's entry at @level (what
 * hm_walk's walk.table[level] will give). */
static hm_pte_t *table_of(struct hm_mm *mm, uint64_t va, unsigned level)
{
	struct hm_phys *ph = mm_phys(mm);
	uint32_t table = mm->root;

	for (unsigned l = mm->sys->top; l > level; l--) {
		hm_pte_t e = pt_get(hm_pt_entries(ph, table) + hm_level_index(va, l));

		if (!pt_present(e) || pt_leaf(e, l))
			return NULL;
		table = pt_pfn(e, l);
	}
	return hm_pt_entries(ph, table);
}

/*
 * In a child: read entry @i of @t (allowed), optionally store it back
 * through the helper (allowed, and the window must close again), then store
 * into it directly. Exit 0 if that store did not fault, 3 if the read gave
 * something else than @want.
 */
static int stray_store(hm_pte_t *t, unsigned i, hm_pte_t want, bool helper_first)
{
	pid_t pid = fork();

	if (pid == 0) {
		child_default_segv();
		if (pt_get(&t[i]) != want)
			_exit(3);
		if (helper_first)
			pt_set(&t[i], want);
		*(volatile hm_pte_t *)&t[i] = want ^ HM_PTE_A;
		_exit(0);
	}
	return wait_child(pid);
}

static struct hm_system *protected_system(const char *mode, uint64_t phys, unsigned flags)
{
	struct hm_config cfg;
	struct hm_system *sys = NULL;

	if (mode)
		setenv("HM_PROTECT_MODE", mode, 1);
	else
		unsetenv("HM_PROTECT_MODE");
	t_config(&cfg, phys, HM_THP_MADVISE, HM_THP_MADVISE, HM_DEPOSIT_EAGER);
	cfg.flags = flags;
	if (hm_system_create(&cfg, &sys))
		sys = NULL;
	unsetenv("HM_PROTECT_MODE");
	return sys;
}

static int mode_of(struct hm_system *sys)
{
	return hm_ptp_mode(sys->pc.prot);
}

/* 4 KiB, 2 MiB and 1 GiB mappings; a stray store into the PTE table, the
 * PMD table and the top table faults, through or after a helper's window. */
static void stray_stores(const char *mode, int want_mode)
{
	struct hm_system *sys = protected_system(mode, 2 * GiB, HM_CHECK | HM_PROTECT_TABLES);
	struct hm_mm *mm;
	uint64_t a, h, g;

	REQUIRE(sys);
	if (mode_of(sys) != want_mode) {
		printf("%s: protection keys not available here, skipped\n", t_case);
		hm_system_destroy(sys);
		return;
	}
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &h) == 0);
	REQUIRE(hm_mmap(mm, 0, GiB, RW, PA, &g) == 0);
	CHECK_EQ(hm_madvise(mm, h, 4 * MiB, MADV_HUGEPAGE), 0);
	CHECK_EQ(hm_madvise(mm, g, GiB, MADV_HUGEPAGE), 0);
	t_poke(mm, a, 1);
	t_poke(mm, h, 2);
	t_poke(mm, g, 3);
	STEP(sys);

	struct hm_mapping m;
	CHECK(hm_query(mm, a, &m) == 0 && m.size == 4096);
	CHECK(hm_query(mm, h, &m) == 0 && m.size == 2 * MiB);
	CHECK(hm_query(mm, g, &m) == 0 && m.size == GiB);

	struct { uint64_t va; unsigned level; } at[] = {
		{ a, 0 }, { h, 1 }, { g, 2 }, { a, mm->sys->top },
	};
	for (unsigned k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
		hm_pte_t *t = table_of(mm, at[k].va, at[k].level);
		unsigned i = hm_level_index(at[k].va, at[k].level);

		REQUIRE(t);
		hm_pte_t e = pt_get(&t[i]);
		CHECK(pt_present(e));
		CHECK_EQ(stray_store(t, i, e, false), DIED(SIGSEGV));
		CHECK_EQ(stray_store(t, i, e, true), DIED(SIGSEGV));
		/* An empty entry of the same table, too. */
		CHECK_EQ(stray_store(t, (i + 7) % HM_PTRS, pt_get(&t[(i + 7) % HM_PTRS]), false), DIED(SIGSEGV));
	}
	/* Everything still works: split, fork, copy-on-write, unmap. */
	CHECK_EQ(hm_mprotect(mm, h + 4096, 4096, PROT_READ), 0);
	CHECK_EQ(hm_mprotect(mm, g + 2 * MiB + 4096, 4096, PROT_READ), 0);
	STEP(sys);
	struct hm_mm *child;
	REQUIRE(hm_fork(mm, &child) == 0);
	t_poke(child, a, 11);
	t_poke(child, h, 12);
	t_poke(child, g, 13);
	CHECK_EQ(t_peek(mm, a), 1);
	CHECK_EQ(t_peek(mm, h), 2);
	CHECK_EQ(t_peek(mm, g), 3);
	STEP(sys);
	/* The split's new PTE table is protected too. */
	hm_pte_t *t = table_of(mm, h + 4096, 0);
	REQUIRE(t);
	CHECK_EQ(stray_store(t, 1, pt_get(&t[1]), false), DIED(SIGSEGV));
	CHECK_EQ(hm_munmap(mm, h, 4 * MiB), 0);
	CHECK_EQ(hm_madvise(child, g, GiB, MADV_DONTNEED), 0);
	STEP(sys);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}

static void stray_stores_pkey(void) { stray_stores("pkey", HM_PTP_PKEY); }
static void stray_stores_mprotect(void) { stray_stores("mprotect", HM_PTP_MPROTECT); }

/* The control: without the flag the same store does not fault, so the
 * tests above see the protection and not something else. */
static void unprotected_stores_pass(void)
{
	struct hm_system *sys = protected_system(NULL, 64 * MiB, HM_CHECK);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(sys);
	if (mode_of(sys) != HM_PTP_OFF) {
		printf("%s: protection forced on (HM_FORCE_FLAGS), skipped\n", t_case);
		hm_system_destroy(sys);
		return;
	}
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	t_poke(mm, a, 1);
	for (unsigned level = 0; level <= mm->sys->top; level++) {
		hm_pte_t *t = table_of(mm, a, level);
		unsigned i = hm_level_index(a, level);

		REQUIRE(t);
		CHECK_EQ(stray_store(t, i, pt_get(&t[i]), true), EXITED(0));
	}
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* Two systems, one protected, one not, in one process: each keeps its
 * own behaviour (the helpers find the arena a table belongs to). */
static void mixed_systems(void)
{
	struct hm_system *p = protected_system("mprotect", 64 * MiB, HM_CHECK | HM_PROTECT_TABLES);
	struct hm_system *u = protected_system(NULL, 64 * MiB, HM_CHECK);
	struct hm_mm *pm, *um;
	uint64_t a, b;

	REQUIRE(p && u);
	bool forced = mode_of(u) != HM_PTP_OFF;
	REQUIRE(hm_mm_create(p, &pm) == 0 && hm_mm_create(u, &um) == 0);
	REQUIRE(hm_mmap(pm, 0, 4 * MiB, RW, PA, &a) == 0);
	REQUIRE(hm_mmap(um, 0, 4 * MiB, RW, PA, &b) == 0);
	t_poke(pm, a, 1);
	t_poke(um, b, 2);
	hm_pte_t *tp = table_of(pm, a, 0), *tu = table_of(um, b, 0);
	REQUIRE(tp && tu);
	unsigned i = hm_level_index(a, 0), j = hm_level_index(b, 0);
	CHECK_EQ(stray_store(tp, i, pt_get(&tp[i]), true), DIED(SIGSEGV));
	CHECK_EQ(stray_store(tu, j, pt_get(&tu[j]), true), forced ? DIED(SIGSEGV) : EXITED(0));
	STEP(p);
	STEP(u);
	hm_mm_destroy(pm);
	hm_mm_destroy(um);
	hm_system_destroy(u);
	hm_system_destroy(p);
}

/* Threads store into one table through the helpers at once (windows that
 * overlap and nest); afterwards the table is read-only again. */
struct hammer {
	hm_pte_t *t;
	unsigned i;
	unsigned n;
};

static void *hammer(void *arg)
{
	struct hammer *h = arg;

	for (unsigned k = 0; k < h->n; k++) {
		pt_win_t w = pt_win_open(h->t);	/* a batch window around ... */

		pt_update(&h->t[h->i], HM_PTE_A, 0);	/* ... nested ones */
		pt_update(&h->t[h->i], 0, HM_PTE_A);
		pt_win_close(h->t, w);
		pt_cmpxchg(&h->t[h->i], 0, 0);	/* fails: the entry is not 0 */
	}
	return NULL;
}

static void overlapping_windows(const char *mode)
{
	struct hm_system *sys = protected_system(mode, 64 * MiB, HM_PROTECT_TABLES);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(sys);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	t_poke(mm, a, 1);
	t_poke(mm, a + 4096, 2);
	hm_pte_t *t = table_of(mm, a, 0);
	REQUIRE(t);
	struct hammer h[2] = {
		{ t, hm_level_index(a, 0), 3000 },
		{ t, hm_level_index(a + 4096, 0), 3000 },
	};
	pthread_t th[2];
	for (int k = 0; k < 2; k++)
		th[k] = t_spawn(hammer, &h[k]);
	for (int k = 0; k < 2; k++)
		pthread_join(th[k], NULL);
	CHECK(pt_get(&t[h[0].i]) & HM_PTE_A);
	CHECK_EQ(stray_store(t, h[0].i, pt_get(&t[h[0].i]), false), DIED(SIGSEGV));
	CHECK_EQ(t_peek(mm, a), 1);
	CHECK_EQ(t_peek(mm, a + 4096), 2);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

static void overlapping_windows_mprotect(void) { overlapping_windows("mprotect"); }
static void overlapping_windows_pkey(void) { overlapping_windows("pkey"); }

/*
 * A thread that had no access to the tables' key (one created before the
 * key was allocated starts with the kernel's default PKRU, which denies
 * every key but 0) still walks: its first table read gives it read
 * access. The thread sets its PKRU to that default first. Without the
 * fix the binary dies of SIGSEGV here.
 */
static uint32_t rdpkru(void)
{
	uint32_t eax, edx;

	__asm__ volatile(".byte 0x0f, 0x01, 0xee" : "=a"(eax), "=d"(edx) : "c"(0));
	return eax;
}

static void wrpkru(uint32_t v)
{
	__asm__ volatile(".byte 0x0f, 0x01, 0xef" : : "a"(v), "c"(0), "d"(0) : "memory");
}

struct fresh {
	struct hm_mm *mm;
	uint64_t a;
	int ok;
};

static void *fresh_thread(void *arg)
{
	struct fresh *f = arg;
	uint64_t v = 0, w = 5;

	wrpkru(0x55555554);	/* access disabled for keys 1..15 */
	hm_ptp_thread_ok = false;
	f->ok = hm_read(f->mm, f->a, &v, 8) == 0 && v == 1 &&
		hm_write(f->mm, f->a + 4096, &w, 8) == 0 && hm_check(f->mm->sys) == 0 &&
		(rdpkru() & 0x55555554) != 0x55555554;
	return NULL;
}

static void fresh_thread_reads(void)
{
	struct hm_system *sys = protected_system("pkey", 64 * MiB, HM_PROTECT_TABLES);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(sys);
	if (mode_of(sys) != HM_PTP_PKEY) {
		printf("%s: protection keys not available here, skipped\n", t_case);
		hm_system_destroy(sys);
		return;
	}
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	t_poke(mm, a, 1);
	hm_tlb_flush(mm);	/* the thread's read must walk */
	struct fresh f = { mm, a, 0 };
	pthread_join(t_spawn(fresh_thread, &f), NULL);
	CHECK(f.ok);
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/*
 * Out of memory with free slots in a partly used table block: the slots
 * are not lent out as data. A write fails with -ENOMEM, changes nothing,
 * and the slots stay free tables (hm_check verifies every block).
 */
static void no_lending(void)
{
	struct hm_system *sys = protected_system(NULL, 8 * MiB, 0);
	struct hm_mm *mm;
	uint64_t a, v = 7, n = 0;
	int r = 0;

	REQUIRE(sys);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 16 * MiB, RW, PA, &a) == 0);
	CHECK_EQ(hm_madvise(mm, a, 16 * MiB, MADV_NOHUGEPAGE), 0);
	for (; n < 4096 && (r = hm_write(mm, a + n * 4096, &v, 8)) == 0; n++)
		;
	CHECK_EQ(r, -ENOMEM);
	CHECK(n > 1000);
	CHECK(sys->pc.nr_free_slots > 0);	/* there were slots to lend */
	STEP(sys);
	for (uint32_t pfn = 0; pfn < sys->phys.nr_frames; pfn++) {
		struct hm_page *pg = hm_pfn_page(&sys->phys, pfn);

		if (pg->flags & PG_PT_SLOT)
			CHECK(pg->flags & (PG_TABLE | PG_PT_FREE | PG_PT_PENDING));
	}
	for (uint64_t k = 0; k < n; k += 97)
		CHECK_EQ(t_peek(mm, a + k * 4096), 7);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

/* hm_check reports a table block's frame that is no table. */
static void checker_sees_data_in_block(void)
{
	struct hm_system *sys = protected_system(NULL, 64 * MiB, 0);
	struct hm_mm *mm;
	uint64_t a;

	REQUIRE(sys);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &a) == 0);
	t_poke(mm, a, 1);
	uint32_t slot = sys->pc.free_head;
	REQUIRE(slot != HM_PFN_NONE);
	struct hm_page *pg = hm_pfn_page(&sys->phys, slot);
	uint32_t flags = pg->flags;

	pg->flags = PG_PT_SLOT;	/* as a lent slot would look, but no folio */
	fprintf(stderr, "(a report of frame %#x is expected below)\n", slot);
	CHECK_EQ(hm_check(sys), -EUCLEAN);
	pg->flags = flags;
	STEP(sys);
	hm_mm_destroy(mm);
	hm_system_destroy(sys);
}

T_MAIN(T(stray_stores_pkey), T(stray_stores_mprotect), T(unprotected_stores_pass), T(mixed_systems),
       T(overlapping_windows_mprotect), T(overlapping_windows_pkey), T(fresh_thread_reads), T(no_lending),
       T(checker_sees_data_in_block))
