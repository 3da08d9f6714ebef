/* SPDX-License-Identifier: MIT */
/*
 * Faults (fault.c) and copy-on-write (cow.c).
 */
#ifndef HM_MM_FAULT_H
#define HM_MM_FAULT_H

#include "types.h"

/* Fault flags. */
#define HM_FAULT_ALLOW_RETRY 0x1u	/* may return -EAGAIN: drop mmap_lock,
					 * wait for RCU callbacks, fault again
					 * without this flag */

/* cow.c — Context: mmap_lock held for reading; *slot maps @va read-only
 * in a writable VMA. 0 (retry the access), -ENOMEM, or -EAGAIN (see
 * HM_FAULT_ALLOW_RETRY). */
int hm_wp_fault(struct hm_mm *mm, const struct hm_vma *v, hm_pte_t *slot,
		unsigned level, uint64_t va, unsigned flags);

/* fault.c — 0 = resolved (retry the access), -EFAULT, -ENOMEM.
 * hm_fault_locked: Context: mmap_lock held for reading; never waits for a
 * grace period but to find free memory. hm_fault: takes mmap_lock itself,
 * and waits for pins (see hm_leaf_reuse) without it. */
int hm_fault_locked(struct hm_mm *mm, uint64_t va, bool write);
int hm_fault(struct hm_mm *mm, uint64_t va, bool write);
int hm_leaf_prot_bits(const struct hm_vma *v, bool write, hm_pte_t *out);
/* May a huge page of @level go at @va in @v (policy, VMA flags, fit)? */
bool hm_huge_allowed(struct hm_system *sys, const struct hm_vma *v, uint64_t va, unsigned level);
/* May a fault map a huge page in @v under the per-size @policy? */
bool hm_thp_allowed(const struct hm_vma *v, int policy);

#endif /* HM_MM_FAULT_H */
