/* SPDX-License-Identifier: MIT */
/*
 * The invariant checker (check.c).
 */
#ifndef HM_MM_CHECK_H
#define HM_MM_CHECK_H

#include "types.h"

int hm_check_enabled(struct hm_system *sys, int ret);

#endif /* HM_MM_CHECK_H */
