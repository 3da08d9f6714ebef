/* SPDX-License-Identifier: MIT */
/*
 * Write-protected page tables: the registry of protected arenas, sealing,
 * and the write windows the entry helpers open. See protect.h.
 *
 * Locks: the registry lock (rwlock) guards the list of arenas and the
 * live counts; a window lock (mutex, one of NR_STRIPES, by table page)
 * guards the open-window counts of its pages and the mprotect calls that
 * follow them. Both are innermost: they are taken under table locks (the
 * entry helpers run under them) and nothing is taken under them. They are
 * plain pthread mutexes, not hm_mutex_lock(), which asserts that no
 * spinlock is held: in this debugging mode a window is opened under the
 * table's spinlock, and mprotect is the one system call made there.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "protect.h"

#ifndef PKEY_DISABLE_WRITE
#define PKEY_DISABLE_WRITE 0x2
#endif

int hm_ptp_live;
int hm_ptp_keyed;
__thread _Bool hm_ptp_thread_ok __attribute__((tls_model("initial-exec")));

struct hm_ptp {
	struct hm_ptp *next;	/* registry lock */
	uintptr_t lo, hi;	/* the arena: constant while registered */
	int mode;
	uint32_t *open;		/* per 4 KiB page of the arena: windows open
				 * (page protection only); its stripe's lock */
	size_t open_len;
};

#define NR_STRIPES 64u

static struct stripe {
	pthread_mutex_t lock;
} __attribute__((aligned(64))) stripes[NR_STRIPES];

static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;
static pthread_rwlock_t reg_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct hm_ptp *arenas;	/* reg_lock */
static int nr_mprotect;		/* arenas under page protection; reg_lock,
				 * read atomically */
static int the_key = -1;	/* the process's tables key, allocated once
				 * and kept: threads' PKRUs keep its rights */
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* The tag of a window opened by key (a PKRU value is 32 bits); a window
 * opened by page protection is its arena's address. */
#define KEY_WINDOW (1ull << 63)

/* RDPKRU and WRPKRU by their bytes, so that no -mpku is needed: the code
 * runs only where CPUID says the OS enabled them. */
static inline uint32_t rdpkru(void)
{
	uint32_t eax, edx;

	__asm__ volatile(".byte 0x0f, 0x01, 0xee" : "=a"(eax), "=d"(edx) : "c"(0));
	return eax;
}

static inline void wrpkru(uint32_t v)
{
	/* "memory": no store to a table may move across it. */
	__asm__ volatile(".byte 0x0f, 0x01, 0xef" : : "a"(v), "c"(0), "d"(0) : "memory");
}

static void stripes_init(void)
{
	for (unsigned i = 0; i < NR_STRIPES; i++)
		pthread_mutex_init(&stripes[i].lock, NULL);
}

static bool cpu_has_pkeys(void)
{
	unsigned a, b, c, d;

	/* OSPKE: the CPU has keys (PKU) and the kernel turned them on. */
	return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 4));
}

static void key_alloc(void)
{
	if (cpu_has_pkeys())
		the_key = pkey_alloc(0, PKEY_DISABLE_WRITE);	/* -1 if none left */
}

void hm_ptp_thread_init(void)
{
	int k = __atomic_load_n(&the_key, __ATOMIC_RELAXED);

	if (k < 0)
		return;
	uint32_t pkru = rdpkru();

	pkru &= ~(3u << (2 * k));
	wrpkru(pkru | PKEY_DISABLE_WRITE << (2 * k));
	hm_ptp_thread_ok = true;
}

static uintptr_t key_open(void)
{
	if (!hm_ptp_thread_ok)
		hm_ptp_thread_init();
	uint32_t pkru = rdpkru();

	wrpkru(pkru & ~(3u << (2 * the_key)));
	return pkru | KEY_WINDOW;
}

static struct hm_ptp *find_locked(const void *p)
{
	for (struct hm_ptp *a = arenas; a; a = a->next)
		if ((uintptr_t)p >= a->lo && (uintptr_t)p < a->hi)
			return a;
	return NULL;
}

static void page_protect(uintptr_t page, int prot)
{
	/* The page lies inside a mapping of ours with no other protection
	 * than these two: only a host out of mappings (vm.max_map_count)
	 * refuses, and then a store would fault anyway. */
	if (mprotect((void *)page, HM_PAGE_SIZE, prot))
		hm_panic(__FILE__, __LINE__, "HM_PROTECT_TABLES: mprotect of a table failed (errno %d)", errno);
}

uintptr_t hm_ptp_open_slow(const void *p)
{
	if (__atomic_load_n(&nr_mprotect, __ATOMIC_RELAXED)) {
		pthread_rwlock_rdlock(&reg_lock);
		struct hm_ptp *a = find_locked(p);
		pthread_rwlock_unlock(&reg_lock);

		if (!a)
			return 0;	/* not a protected system's table */
		if (a->mode == HM_PTP_MPROTECT) {
			uintptr_t page = (uintptr_t)p & ~(uintptr_t)(HM_PAGE_SIZE - 1);
			size_t i = (page - a->lo) >> HM_PAGE_SHIFT;
			pthread_mutex_t *l = &stripes[i % NR_STRIPES].lock;

			pthread_mutex_lock(l);
			if (a->open[i]++ == 0)
				page_protect(page, PROT_READ | PROT_WRITE);
			pthread_mutex_unlock(l);
			return (uintptr_t)a;
		}
	}
	/* Keys: opening ours for this thread is harmless for any @p. */
	return __atomic_load_n(&hm_ptp_keyed, __ATOMIC_RELAXED) ? key_open() : 0;
}

void hm_ptp_close_slow(const void *p, uintptr_t w)
{
	if (w & KEY_WINDOW) {
		wrpkru((uint32_t)w);
		return;
	}
	struct hm_ptp *a = (struct hm_ptp *)w;
	uintptr_t page = (uintptr_t)p & ~(uintptr_t)(HM_PAGE_SIZE - 1);
	size_t i = (page - a->lo) >> HM_PAGE_SHIFT;
	pthread_mutex_t *l = &stripes[i % NR_STRIPES].lock;

	pthread_mutex_lock(l);
	hm_assert(a->open[i] > 0);
	if (--a->open[i] == 0)
		page_protect(page, PROT_READ);
	pthread_mutex_unlock(l);
}

static int choose_mode(int want)
{
	const char *env = getenv("HM_PROTECT_MODE");

	if (env && !strcmp(env, "mprotect"))
		want = HM_PTP_MPROTECT;
	else if (env && !strcmp(env, "pkey"))
		want = HM_PTP_PKEY;
	if (want == HM_PTP_PKEY) {
		pthread_once(&key_once, key_alloc);
		if (the_key < 0)
			want = HM_PTP_MPROTECT;
	}
	return want;
}

int hm_ptp_create(struct hm_ptp **out, void *base, uint64_t len, int want)
{
	struct hm_ptp *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	pthread_once(&stripes_once, stripes_init);
	a->lo = (uintptr_t)base;
	a->hi = a->lo + len;
	a->mode = choose_mode(want);
	if (a->mode == HM_PTP_MPROTECT) {
		/* A count per page, backed only where tables are. */
		a->open_len = (len >> HM_PAGE_SHIFT) * sizeof(*a->open);
		a->open = mmap(NULL, a->open_len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (a->open == MAP_FAILED) {
			free(a);
			return -ENOMEM;
		}
	}
	pthread_rwlock_wrlock(&reg_lock);
	a->next = arenas;
	arenas = a;
	if (a->mode == HM_PTP_MPROTECT)
		hm_add(&nr_mprotect, 1);
	else
		hm_add(&hm_ptp_keyed, 1);
	hm_add(&hm_ptp_live, 1);
	pthread_rwlock_unlock(&reg_lock);
	if (a->mode == HM_PTP_PKEY)
		hm_ptp_thread_init();
	*out = a;
	return 0;
}

void hm_ptp_destroy(struct hm_ptp *a)
{
	if (!a)
		return;
	pthread_rwlock_wrlock(&reg_lock);
	for (struct hm_ptp **pp = &arenas; *pp; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	if (a->mode == HM_PTP_MPROTECT)
		hm_sub(&nr_mprotect, 1);
	else
		hm_sub(&hm_ptp_keyed, 1);
	hm_sub(&hm_ptp_live, 1);
	pthread_rwlock_unlock(&reg_lock);
	if (a->open)
		munmap(a->open, a->open_len);
	free(a);
}

int hm_ptp_mode(const struct hm_ptp *a)
{
	return a ? a->mode : HM_PTP_OFF;
}

int hm_ptp_seal(struct hm_ptp *a, void *addr, size_t len)
{
	int r = a->mode == HM_PTP_PKEY ? pkey_mprotect(addr, len, PROT_READ | PROT_WRITE, the_key)
				       : mprotect(addr, len, PROT_READ);

	return r ? -ENOMEM : 0;
}

void hm_ptp_unseal(struct hm_ptp *a, void *addr, size_t len)
{
	/* Key 0 explicitly: a plain mprotect keeps the key. Only a host out
	 * of mappings (vm.max_map_count) refuses, when the range splits a
	 * run of sealed blocks. */
	int r = a->mode == HM_PTP_PKEY ? pkey_mprotect(addr, len, PROT_READ | PROT_WRITE, 0)
				       : mprotect(addr, len, PROT_READ | PROT_WRITE);

	if (r)
		hm_panic(__FILE__, __LINE__, "HM_PROTECT_TABLES: unsealing tables failed (errno %d)", errno);
}
