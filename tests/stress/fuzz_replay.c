/* SPDX-License-Identifier: MIT */
/*
 * The fuzzer's regression runner (tests/fuzz/): replays every input in
 * tests/fuzz/regress/ (each a case that once failed, saved by hmfuzz or
 * libFuzzer), then a short fixed set of seeded cases. Deterministic: the
 * same cases every run.
 *
 * (Inputs of the bugs found so far are among them, fixed since.)
 */
#include <dirent.h>

#include "harness.h"
#include "fuzz.h"

#ifndef HM_SRCDIR
#define HM_SRCDIR "."
#endif

static void count(const struct fz_case *c, const char *what)
{
	t_passed += c->passed;
	if (c->failed) {
		t_failed++;
		fprintf(stderr, "FAIL %s: %s: %s\n", t_case, what, c->why);
	}
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void replay_dir(const char *sub)
{
	char dir[1024], path[2048];
	struct dirent **ents;
	static uint8_t data[1 << 20];

	snprintf(dir, sizeof(dir), "%s/tests/fuzz/%s", HM_SRCDIR, sub);
	int n = scandir(dir, &ents, NULL, by_name);
	REQUIRE(n >= 0);
	for (int i = 0; i < n; i++) {
		struct fz_src s;
		struct fz_case c;
		FILE *f;

		if (ents[i]->d_name[0] == '.' || strstr(ents[i]->d_name, ".md")) {
			free(ents[i]);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		free(ents[i]);
		CHECK((f = fopen(path, "rb")) != NULL);
		if (!f)
			continue;
		size_t len = fread(data, 1, sizeof(data), f);
		fclose(f);
		fz_src_bytes(&s, data, len);
		fz_case_run(&c, &s, UINT64_MAX, 0);
		count(&c, path);
	}
	free(ents);
}

static void regress(void) { replay_dir("regress"); }

/* A few seeded cases, each a fresh system with its own config, strict. */
static void seeded(void)
{
	for (uint64_t seed = 1; seed <= 16; seed++) {
		struct fz_src s;
		struct fz_case c;
		char what[64];

		fz_src_seed(&s, seed, false);
		fz_case_run(&c, &s, 120, 0);
		snprintf(what, sizeof(what), "seed %llu (replay: hmfuzz -s %llu -c 1 -n 120 -v)",
			 (unsigned long long)seed, (unsigned long long)seed);
		count(&c, what);
	}
}

int main(int argc, char **argv)
{
	static const struct t_case all[] = { T(regress), T(seeded) };

	return t_main(argc, argv, all, sizeof(all) / sizeof(all[0]));
}
