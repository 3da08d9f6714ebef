/* SPDX-License-Identifier: MIT */
/*
 * Internal entry points of libhugemm that the fuzzer uses (they link from
 * the static library only): split a huge leaf on demand, and the
 * allocation failpoint.
 */
#ifndef HM_FUZZ_INTERNAL_H
#define HM_FUZZ_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

struct hm_mm;
struct hm_system;

/* Split the huge leaf at @addr down to @level (0 = 4 KiB, 1 = 2 MiB):
 * 0, -ENOENT (no huge leaf to split), -EOPNOTSUPP (a 1 GiB leaf in lazy
 * mode), -ENOMEM (lazy mode, no table). */
int hm__split(struct hm_mm *mm, uint64_t addr, unsigned level);
/* Fail the @nth allocation from now (and every later one if @persistent);
 * nth 0 disarms. */
void hm__fail_arm(struct hm_system *sys, long nth, bool persistent);
long hm__fail_hits(struct hm_system *sys);

#endif /* HM_FUZZ_INTERNAL_H */
