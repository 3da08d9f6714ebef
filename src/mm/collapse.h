/* SPDX-License-Identifier: MIT */
/*
 * Collapse (collapse.c: MADV_COLLAPSE) and khugepaged (khugepaged.c).
 */
#ifndef HM_MM_COLLAPSE_H
#define HM_MM_COLLAPSE_H

#include "types.h"

/* collapse.c — MADV_COLLAPSE and khugepaged's work (see there). */
struct hm_collapse_ctl {
	bool khugepaged;	/* honour khugepaged_max_ptes_{none,swap,shared} */
	uint64_t collapsed;	/* huge leaves made */
	const bool *stop;	/* if set and true: stop between pieces */
};
#define HM_COLLAPSE_DONE 1	/* a huge leaf is there already */
/* Collapse every 2 MiB piece in [start, end), and each 1 GiB piece where a
 * PUD leaf may go. 0, or the error of the last piece that failed: -EINVAL
 * (no huge page fits, no table there, not allowed), -EAGAIN (a page busy;
 * khugepaged's limits), -ENOMEM (no huge frame: stops there).
 * Context: no lock held; takes mmap_lock. */
int hm_collapse_range(struct hm_mm *mm, uint64_t start, uint64_t end, struct hm_collapse_ctl *cc);
/* The 512 2 MiB pieces of the 1 GiB piece at @va, all PMD leaves now,
 * into one PUD leaf (khugepaged, which collapses those pieces one pass at
 * a time). 0 (also when a PUD leaf is there), -EINVAL when a piece is not
 * a PMD leaf or no PUD leaf may go there, else as hm_collapse_range.
 * Context: no lock held; takes mmap_lock. */
int hm_collapse_pud(struct hm_mm *mm, uint64_t va, struct hm_collapse_ctl *cc);

/* khugepaged.c */
int hm_khugepaged_start(struct hm_system *sys);
void hm_khugepaged_stop(struct hm_system *sys);

#endif /* HM_MM_COLLAPSE_H */
