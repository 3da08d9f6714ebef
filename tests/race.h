/* SPDX-License-Identifier: MIT */
/*
 * Test side of the race points (src/base/race.h), for white-box tests
 * (tests/unit). Only the test builds (`make check`) have the race points
 * compiled in: hm__race_available() says so. With the other test-only
 * entry points (hooks.h) and the thread helpers (thread.h).
 */
#ifndef HM_TEST_RACE_H
#define HM_TEST_RACE_H

#include "hooks.h"
#include "thread.h"

int hm__race_arm(const char *name, unsigned skip);
int hm__race_wait(const char *name, int timeout_ms);
void hm__race_release(const char *name);
void hm__race_reset(void);

#endif /* HM_TEST_RACE_H */
