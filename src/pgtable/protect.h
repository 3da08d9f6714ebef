/* SPDX-License-Identifier: MIT */
/*
 * Write-protected page tables (HM_PROTECT_TABLES), after the PKS
 * page-table protection series: table memory can be written only inside a
 * set-entry helper (entry.h), so a stray store faults instead of silently
 * corrupting an address space.
 *
 * A system with the flag registers its arena here; its page-table cache
 * seals every table block (and single table frame) it takes from the buddy
 * allocator, and unseals it before giving it back. Two ways, chosen per
 * system at creation:
 *
 *  - Protection keys, where the CPU and the kernel have them (OSPKE): the
 *    memory is tagged with a key of the process's (pkey_mprotect) that every
 *    thread may read but not write; a helper clears the write-disable bit
 *    of the calling thread's PKRU around its store and puts it back. No
 *    system call, and no other thread sees the window. A thread that never
 *    reached a table starts with no access at all to a key allocated after
 *    it was created (the kernel's default PKRU), so hm_pt_entries() gives
 *    each thread read access once (hm_ptp_read_prepare()).
 *  - Page protection, elsewhere, or with HM_PROTECT_MODE=mprotect in the
 *    environment: the memory is read-only (mprotect); a helper makes the
 *    4 KiB table it writes writable around its store. Windows nest and
 *    overlap across threads: each table page counts the windows open on it,
 *    under a striped lock, and is writable while the count is not zero (a
 *    stray store from any thread during another's window is not caught).
 *    Two system calls per store: for tests and debugging, like the kernel's
 *    PAGE_TABLE_CHECK.
 *
 * With no protected system alive, a helper costs one test of hm_ptp_live.
 */
#ifndef HM_PGTABLE_PROTECT_H
#define HM_PGTABLE_PROTECT_H

#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"

enum { HM_PTP_OFF, HM_PTP_PKEY, HM_PTP_MPROTECT };

struct hm_ptp;

/* Protected systems alive (either way); written under the registry lock,
 * read atomically. */
extern int hm_ptp_live;
/* Those that use protection keys. */
extern int hm_ptp_keyed;
/* This thread's PKRU gives it read access to the tables' key. */
extern __thread _Bool hm_ptp_thread_ok __attribute__((tls_model("initial-exec")));

uintptr_t hm_ptp_open_slow(const void *p);
void hm_ptp_close_slow(const void *p, uintptr_t w);
void hm_ptp_thread_init(void);

/*
 * A write window on the 4 KiB table that holds @p: 0 when nothing had to
 * be opened (protection is off, or @p is no protected table), else what
 * hm_ptp_close() needs to close it. Context: any; no lock is needed, and
 * the window lock is innermost (see protect.c).
 */
static inline uintptr_t hm_ptp_open(const void *p)
{
	if (hm_unlikely(__atomic_load_n(&hm_ptp_live, __ATOMIC_RELAXED) != 0))
		return hm_ptp_open_slow(p);
	return 0;
}

static inline void hm_ptp_close(const void *p, uintptr_t w)
{
	if (hm_unlikely(w != 0))
		hm_ptp_close_slow(p, w);
}

/* Must this thread be given read access before it reads a table? */
static inline bool hm_ptp_read_needed(void)
{
	return hm_unlikely(__atomic_load_n(&hm_ptp_keyed, __ATOMIC_RELAXED) != 0) && !hm_ptp_thread_ok;
}

/* Before this thread reads a table: see above. */
static inline void hm_ptp_read_prepare(void)
{
	if (hm_ptp_read_needed())
		hm_ptp_thread_init();
}

/* As hm_ptp_read_prepare, but whatever the thread did before: a signal
 * handler runs with the kernel's default key rights (no access to ours),
 * though its thread was prepared long ago. For hm_walk, whose caller reads
 * the tables itself afterwards. */
static inline void hm_ptp_read_ensure(void)
{
	if (hm_unlikely(__atomic_load_n(&hm_ptp_keyed, __ATOMIC_RELAXED) != 0))
		hm_ptp_thread_init();
}

/*
 * Register the arena [base, base + len) of a protected system: 0, or
 * -ENOMEM. @want is HM_PTP_PKEY (keys where the CPU has them, else page
 * protection; HM_PROTECT_MODE=mprotect|pkey in the environment overrides)
 * or HM_PTP_MPROTECT.
 */
int hm_ptp_create(struct hm_ptp **out, void *base, uint64_t len, int want);
/* Unregister; every sealed range must have been unsealed. */
void hm_ptp_destroy(struct hm_ptp *a);
int hm_ptp_mode(const struct hm_ptp *a);
/* Make [addr, addr + len) (page-aligned, no write window open in it)
 * table memory: 0, or -ENOMEM (the host refused; nothing changed). */
int hm_ptp_seal(struct hm_ptp *a, void *addr, size_t len);
/* Back to ordinary memory, before it leaves the page-table cache. */
void hm_ptp_unseal(struct hm_ptp *a, void *addr, size_t len);

#endif /* HM_PGTABLE_PROTECT_H */
