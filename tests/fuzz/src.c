/* SPDX-License-Identifier: MIT */
/*
 * The byte source behind every decision. Values are taken from as few bytes
 * as their range needs (one byte for a choice among up to 256), so that
 * libFuzzer's mutations map onto single decisions, and the seeded driver's
 * PRNG hands out bytes the same way: recorded, they replay the same case.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

void fz_src_bytes(struct fz_src *s, const uint8_t *data, size_t len)
{
	memset(s, 0, sizeof(*s));
	s->data = data;
	s->len = len;
}

void fz_src_seed(struct fz_src *s, uint64_t seed, bool record)
{
	memset(s, 0, sizeof(*s));
	/* mixed, so that neighbouring seeds do not give shifted streams */
	uint64_t z = seed * 0xd6e8feb86659fd93ull + 0x632be59bd9b4e019ull;
	z = (z ^ (z >> 32)) * 0xd6e8feb86659fd93ull;
	s->rng = z ^ (z >> 32);
	if (record) {
		s->rec_cap = 4096;
		s->rec = malloc(s->rec_cap);
		if (!s->rec)
			s->rec_cap = 0;
	}
}

void fz_src_free(struct fz_src *s)
{
	free(s->rec);
	s->rec = NULL;
}

static uint8_t next_byte(struct fz_src *s)
{
	if (s->data) {
		if (s->pos < s->len)
			return s->data[s->pos++];
		s->out = true;
		return 0;
	}
	/* splitmix64: every seed gives a good stream at once */
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	uint8_t b = (uint8_t)(z ^ (z >> 31));

	if (s->rec) {
		if (s->rec_len == s->rec_cap) {
			uint8_t *n = realloc(s->rec, s->rec_cap * 2);

			if (!n) {
				free(s->rec);
				s->rec = NULL;
				return b;
			}
			s->rec = n;
			s->rec_cap *= 2;
		}
		s->rec[s->rec_len++] = b;
	}
	return b;
}

uint64_t fz_below(struct fz_src *s, uint64_t n)
{
	uint64_t v = 0;

	if (n <= 1)
		return 0;
	for (uint64_t span = n - 1; span; span >>= 8)
		v = (v << 8) | next_byte(s);
	return v % n;
}

uint64_t fz_u64(struct fz_src *s)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | next_byte(s);
	return v;
}

int fz_src_save(const struct fz_src *s, const char *path)
{
	FILE *f;

	if (!s->rec || !(f = fopen(path, "wb")))
		return -1;
	size_t w = fwrite(s->rec, 1, s->rec_len, f);
	return fclose(f) || w != s->rec_len ? -1 : 0;
}
