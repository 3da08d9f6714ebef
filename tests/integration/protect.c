/* SPDX-License-Identifier: MIT */
/*
 * HM_PROTECT_TABLES through the public API: a store through hm_walk's
 * walk.table[i] into the PTE, PMD, PUD and top tables of 4 KiB, 2 MiB and
 * 1 GiB mappings dies of SIGSEGV (in a forked child), with whatever
 * protection the machine offers and with page protection forced; without
 * the flag the same store goes through (the control). The address space
 * keeps working afterwards. hm_check after every step.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define ACCESSED (1ull << 5)

enum { STORED = 1000, READ_WRONG = 1003 };

/* In a forked child: store into entry @level of @w's walk for @va, a
 * value that differs only in the accessed bit. Returns the signal that
 * killed the child, STORED if the store went through, READ_WRONG if
 * reading the table (always allowed) gave another value than the walk. */
static int stray_store(const struct hm_walk *w, uint64_t va, int level)
{
	volatile uint64_t *e = (volatile uint64_t *)w->table[level] + ((va >> (12 + 9 * level)) & 511);
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		struct sigaction sa;

		/* die of the fault itself, not in a sanitizer's handler */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(SIGSEGV, &sa, NULL);
		if (*e != w->entry[level])
			_exit(3);
		*e = w->entry[level] ^ ACCESSED;
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFSIGNALED(st) ? WTERMSIG(st) : 1000 + WEXITSTATUS(st);
}

static struct hm_system *make(bool protect, const char *mode)
{
	struct hm_config cfg;

	if (mode)
		setenv("HM_PROTECT_MODE", mode, 1);
	t_config(&cfg, 3 * GiB, HM_THP_MADVISE, HM_THP_ALWAYS, HM_DEPOSIT_EAGER);
	if (protect)
		cfg.flags |= HM_PROTECT_TABLES;
	struct hm_system *sys = t_system_cfg(&cfg);

	unsetenv("HM_PROTECT_MODE");
	return sys;
}

/* Every table on the way to a 4 KiB, a 2 MiB and a 1 GiB leaf. */
static void stray_stores(bool protect, const char *mode)
{
	struct hm_system *sys = make(protect, mode);
	struct hm_mm *mm;
	uint64_t small, huge, giant;
	struct hm_walk w;
	int want = protect ? SIGSEGV : STORED;

	/* A system forced protected (make check-protect) cannot be the control. */
	if (!protect && getenv("HM_FORCE_FLAGS")) {
		printf("%s: protection forced on (HM_FORCE_FLAGS), skipped\n", t_case);
		hm_system_destroy(sys);
		return;
	}
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 64 * KiB, RW, PA, &small) == 0);
	REQUIRE(hm_mmap(mm, 0, 4 * MiB, RW, PA, &huge) == 0);
	REQUIRE(hm_mmap(mm, 0, GiB, RW, PA, &giant) == 0);
	REQUIRE(hm_madvise(mm, giant, GiB, MADV_HUGEPAGE) == 0);
	t_poke(mm, small, 11);
	t_poke(mm, huge, 22);
	t_poke(mm, giant, 33);
	STEP(sys);

	REQUIRE(hm_walk(mm, small, &w) == 0);
	CHECK_EQ(w.leaf_level, 0);
	for (int l = 0; l < (int)w.levels; l++)
		CHECK_EQ(stray_store(&w, small, l), want);
	REQUIRE(hm_walk(mm, huge, &w) == 0);
	CHECK_EQ(w.leaf_level, 1);
	CHECK_EQ(stray_store(&w, huge, 1), want);
	REQUIRE(hm_walk(mm, giant, &w) == 0);
	CHECK_EQ(w.leaf_level, 2);
	CHECK_EQ(stray_store(&w, giant, 2), want);
	STEP(sys);

	/* The parent's tables are untouched either way (the child's stores
	 * went to its own copy of the memory), and hugemm's own stores still
	 * work: a split, a write, a fork. */
	CHECK_EQ(t_peek(mm, small), 11);
	CHECK_EQ(hm_mprotect(mm, huge + 4 * KiB, 4 * KiB, PROT_READ), 0);
	t_poke(mm, huge + 8 * KiB, 44);
	struct hm_mm *child;

	REQUIRE(hm_fork(mm, &child) == 0);
	t_poke(child, giant, 55);
	CHECK_EQ(t_peek(mm, giant), 33);
	CHECK_EQ(t_peek(child, huge + 8 * KiB), 44);
	STEP(sys);
	REQUIRE(hm_walk(mm, huge + 4 * KiB, &w) == 0);
	CHECK_EQ(w.leaf_level, 0);
	CHECK_EQ(stray_store(&w, huge + 4 * KiB, 0), want);
	hm_mm_destroy(child);
	hm_mm_destroy(mm);
	STEP(sys);
	hm_system_destroy(sys);
}


/* Reading through table[i] is allowed from any thread that called hm_walk
 * (one started before the system too),
 * and from a signal handler that did (the kernel starts a handler without
 * the right to read memory under the tables' protection key). */
static struct hm_mm *sig_mm;
static uint64_t sig_va;
static volatile sig_atomic_t sig_ok;

static void on_usr1(int sig)
{
	struct hm_walk w;

	(void)sig;
	if (hm_walk(sig_mm, sig_va, &w) == 0 && w.leaf_level == 0 &&
	    *(const volatile uint64_t *)((const uint64_t *)w.table[0] + ((sig_va >> 12) & 511)) == w.entry[0])
		sig_ok = 1;
}

static pthread_barrier_t ready;

/* Started before the system (and its key) exists: it has none of the
 * rights the creating thread was given until hm_walk gives them. */
static void *reader(void *arg)
{
	struct hm_walk w;

	(void)arg;
	pthread_barrier_wait(&ready);
	if (hm_walk(sig_mm, sig_va, &w) || w.leaf_level != 0)
		return NULL;
	return (void *)(uintptr_t)(*(const volatile uint64_t *)((const uint64_t *)w.table[0] +
								 ((sig_va >> 12) & 511)) == w.entry[0]);
}

static void reads_anywhere(void)
{
	struct sigaction sa, old;
	pthread_t t;
	void *res = NULL;

	pthread_barrier_init(&ready, NULL, 2);
	REQUIRE(pthread_create(&t, NULL, reader, NULL) == 0);
	struct hm_system *sys = make(true, NULL);

	REQUIRE(hm_mm_create(sys, &sig_mm) == 0);
	REQUIRE(hm_mmap(sig_mm, 0, 64 * KiB, RW, PA, &sig_va) == 0);
	t_poke(sig_mm, sig_va, 7);
	pthread_barrier_wait(&ready);
	pthread_join(t, &res);
	pthread_barrier_destroy(&ready);
	CHECK(res != NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, &old);
	sig_ok = 0;
	raise(SIGUSR1);
	sigaction(SIGUSR1, &old, NULL);
	CHECK_EQ(sig_ok, 1);
	STEP(sys);
	hm_mm_destroy(sig_mm);
	hm_system_destroy(sys);
}

static void protected_default(void) { stray_stores(true, NULL); }
static void protected_mprotect(void) { stray_stores(true, "mprotect"); }
static void unprotected_control(void) { stray_stores(false, NULL); }

T_MAIN(T(protected_default), T(protected_mprotect), T(unprotected_control), T(reads_anywhere))
