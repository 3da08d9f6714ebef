/* SPDX-License-Identifier: MIT */
/*
 * The internal entry points of libhugemm that the fuzzer uses (split a huge
 * leaf on demand, the allocation failpoint) are the tests' hooks.
 */
#ifndef HM_FUZZ_INTERNAL_H
#define HM_FUZZ_INTERNAL_H

#include "../hooks.h"

#endif /* HM_FUZZ_INTERNAL_H */
