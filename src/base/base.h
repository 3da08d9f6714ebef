/* SPDX-License-Identifier: MIT */
/*
 * Shared by every layer: debug levels, assertions, atomics, constants.
 *
 * Glossary (used throughout the source):
 *   start/end     half-open range [start, end)
 *   start/last    inclusive range [start, last]
 *   pfn           frame number: physical address >> 12, an offset in the arena
 *   level         page-table level; level 0 is the leaf table (PTE),
 *                 1 = PMD, 2 = PUD, 3 = P4D (5-level) or PGD, 4 = PGD (5-level)
 *   leaf          an entry that maps memory (a PTE, or a PMD/PUD with PS set)
 *   folio         the frames of one allocation mapped as a unit: order 0, 9 or 18
 *   deposit       page tables set aside when a huge page is mapped, so that
 *                 a later split needs no allocation
 *
 * HM_DEBUG selects the checking done at run time (build with DEBUG=n):
 *   0  none
 *   1  cheap assertions (argument and state checks on slow paths)
 *   2  internal assertions (lock ownership, list and counter consistency)
 *   3  full walks: hm_check() after every operation
 */
#ifndef HM_BASE_H
#define HM_BASE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef HM_DEBUG
#define HM_DEBUG 1
#endif

#define HM_PAGE_SHIFT	12
#define HM_PAGE_SIZE	(1ull << HM_PAGE_SHIFT)
#define HM_PMD_SHIFT	21
#define HM_PMD_SIZE	(1ull << HM_PMD_SHIFT)
#define HM_PUD_SHIFT	30
#define HM_PUD_SIZE	(1ull << HM_PUD_SHIFT)
#define HM_PMD_ORDER	(HM_PMD_SHIFT - HM_PAGE_SHIFT)	/* 9 */
#define HM_PUD_ORDER	(HM_PUD_SHIFT - HM_PAGE_SHIFT)	/* 18 */
#define HM_MAX_ORDER	HM_PUD_ORDER
#define HM_PTRS		512u

#define HM_PFN_NONE	UINT32_MAX

#define hm_likely(x)	__builtin_expect(!!(x), 1)
#define hm_unlikely(x)	__builtin_expect(!!(x), 0)
#define HM_ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))
#define HM_ALIGN_UP(x, a)   HM_ALIGN_DOWN((x) + (uint64_t)(a) - 1, (a))
#define HM_ARRAY_SIZE(a)    (sizeof(a) / sizeof((a)[0]))
#define HM_MIN(a, b)	((a) < (b) ? (a) : (b))
#define HM_MAX(a, b)	((a) > (b) ? (a) : (b))

#define hm_load(p)	   __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define hm_load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define hm_store(p, v)	   __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define hm_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define hm_add(p, v)	   __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define hm_sub(p, v)	   __atomic_sub_fetch((p), (v), __ATOMIC_RELAXED)

/* Prints and aborts. Uses only the stack and write(2), so it is safe when
 * the allocator is broken or out of memory. */
__attribute__((noreturn, cold)) void hm_panic(const char *file, int line,
					       const char *fmt, ...);

#define HM_ASSERT_AT(lvl, cond)						\
	do {								\
		if (HM_DEBUG >= (lvl) && hm_unlikely(!(cond)))		\
			hm_panic(__FILE__, __LINE__, "assertion failed: %s", #cond); \
	} while (0)
#define hm_assert(cond)	    HM_ASSERT_AT(1, cond)
#define hm_assert_int(cond) HM_ASSERT_AT(2, cond)

#endif /* HM_BASE_H */
