/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer entry point: one input is one case (a config, then operations
 * until the bytes run out), decoded exactly as the seeded driver decodes
 * its PRNG's bytes. A failed check aborts, so libFuzzer saves the input;
 * `hmfuzz -v FILE` replays it step by step. HMFUZZ_TOLERATE=1 accepts the
 * failure kinds of fixed bugs, as hmfuzz -k does (see the Makefile's FUZZ_TOLERATE).
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_src s;
	struct fz_case c;

	fz_src_bytes(&s, data, size);
	const char *tol = getenv("HMFUZZ_TOLERATE");	/* as hmfuzz -k */

	if (fz_case_run(&c, &s, UINT64_MAX, tol && *tol && *tol != '0' ? FZ_TOLERATE : 0)) {
		fprintf(stderr, "hmfuzz: FAILED: %s\n", c.why);
		abort();
	}
	return 0;
}
