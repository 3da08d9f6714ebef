/* SPDX-License-Identifier: MIT */
/*
 * Entry points that libhugemm exports for tests and benchmarks only (they
 * link from the static library; not part of the API, never in hugemm.h).
 * Defined in src/mm (hooks.h there lists where). Tests other than unit
 * tests use these and the public API, never an internal header.
 */
#ifndef HM_TEST_HOOKS_H
#define HM_TEST_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hm_mm;
struct hm_system;

/* Split the huge leaf at @addr down to @level (0 = 4 KiB, 1 = 2 MiB):
 * 0, -ENOENT (no huge leaf to split), -EOPNOTSUPP (a 1 GiB leaf in lazy
 * mode), -ENOMEM (lazy mode, no table). */
int hm__split(struct hm_mm *mm, uint64_t addr, unsigned level);
/* The THP shrinkers (deferred split queue, then underused folios), as
 * memory pressure runs them: frames freed. */
uint64_t hm__thp_shrink(struct hm_system *sys, uint64_t want);
/* Fail the @nth allocation from now (and every later one if @persistent);
 * nth 0 disarms. Hits: allocations failed since armed. */
void hm__fail_arm(struct hm_system *sys, long nth, bool persistent);
long hm__fail_hits(struct hm_system *sys);
/* The next mm gets id @next or a later one (ids past 2^32). */
void hm__mm_id_skip_to(uint64_t next);
/* @mm's VMAs and the room in its VMA array now. */
void hm__vma_count(struct hm_mm *mm, size_t *nr, size_t *cap);

#endif /* HM_TEST_HOOKS_H */
