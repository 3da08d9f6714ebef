/* SPDX-License-Identifier: MIT */
/*
 * Entry points for tests and benchmarks only, never called by the library
 * (tests/hooks.h declares them on the test side; hm__split and
 * hm__thp_shrink are with their concerns, in split.h and folio_split.h).
 */
#ifndef HM_MM_HOOKS_H
#define HM_MM_HOOKS_H

#include "types.h"

/* For tests: the next mm gets id @next (or a later one: ids only grow, so
 * none is ever reused), to show that nothing narrows ids past 2^32. */
void hm__mm_id_skip_to(uint64_t next);

/* For tests: arm the allocation failpoint of @sys (see base/fail.h). */
void hm__fail_arm(struct hm_system *sys, long nth, bool persistent);
long hm__fail_hits(struct hm_system *sys);
/* The VMAs of @mm and the room in its array now (a test fills the array
 * so that the next mmap must grow it). Context: no mmap_lock; takes it. */
void hm__vma_count(struct hm_mm *mm, size_t *nr, size_t *cap);

#endif /* HM_MM_HOOKS_H */
