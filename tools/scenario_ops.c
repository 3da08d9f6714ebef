/* SPDX-License-Identifier: MIT */
/*
 * The operations: map calls, accesses, fill / verify with a pattern, and
 * the calls that move memory around (reclaim, migrate, collapse,
 * khugepaged). Each returns the library's result as it is, so that
 * "expect error" can look at it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

#define ACCESS_MAX (64ull << 20)	/* read/write buffers; fill covers more */

/*
 * The word a fill with @seed puts at @va: it depends on the address, so a
 * page that shows up at the wrong place (or another mm's page) reads
 * wrong; 0 for seed 0, so "verify ... 0" means "reads as zeros".
 */
uint64_t scn_pattern(uint64_t seed, uint64_t va)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull ^ va * 0xbf58476d1ce4e5b9ull;

	if (!seed)
		return 0;
	x ^= x >> 31;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 29;
	return x | 1;
}

/* The words MM ADDR LEN at argv[i..i+2]. */
static int range(struct scn_ctx *c, struct scn_stmt *s, int i, struct hm_mm **mm, uint64_t *addr,
		 uint64_t *len)
{
	if (scn_mm(c, s, s->argv[i], mm) || scn_eval(c, s, s->argv[i + 1], addr) ||
	    scn_eval(c, s, s->argv[i + 2], len))
		return SCN_FAIL;
	return 0;
}

int scn_cmd_mmap(struct scn_ctx *c, struct scn_stmt *s)
{
	const char *var = NULL;
	int i = 0, prot, flags = MAP_PRIVATE | MAP_ANONYMOUS, r;
	struct hm_mm *mm;
	uint64_t addr, len, out;

	if (s->argc >= 2 && !strcmp(s->argv[1], "=")) {
		var = s->argv[0];
		i = 2;
	}
	if (s->argc - i < 4 || s->argc - i > 5)
		return scn_err(c, s, "mmap: expected \"mmap [VAR =] MM ADDR LEN PROT [FLAGS]\"");
	if (range(c, s, i, &mm, &addr, &len) || scn_names(c, s, s->argv[i + 3], "PROT_", &prot) ||
	    (s->argc - i == 5 && scn_names(c, s, s->argv[i + 4], "MAP_", &flags)))
		return SCN_FAIL;
	if (var && c->in_threads)
		return scn_err(c, s, "mmap %s = ...: cannot set a name inside threads", var);
	r = hm_mmap(mm, addr, len, prot, flags, &out);
	if (!r && var && scn_set_var(c, s, var, out, (len + 4095) & ~4095ull))
		return SCN_FAIL;
	return r;
}

int scn_cmd_munmap(struct scn_ctx *c, struct scn_stmt *s)
{
	struct hm_mm *mm;
	uint64_t addr, len;

	if (range(c, s, 0, &mm, &addr, &len))
		return SCN_FAIL;
	return hm_munmap(mm, addr, len);
}

int scn_cmd_mprotect(struct scn_ctx *c, struct scn_stmt *s)
{
	struct hm_mm *mm;
	uint64_t addr, len;
	int prot;

	if (range(c, s, 0, &mm, &addr, &len) || scn_names(c, s, s->argv[3], "PROT_", &prot))
		return SCN_FAIL;
	return hm_mprotect(mm, addr, len, prot);
}

int scn_cmd_madvise(struct scn_ctx *c, struct scn_stmt *s)
{
	struct hm_mm *mm;
	uint64_t addr, len;
	int advice;

	if (range(c, s, 0, &mm, &addr, &len) || scn_names(c, s, s->argv[3], "MADV_", &advice))
		return SCN_FAIL;
	return hm_madvise(mm, addr, len, advice);
}

static int access_range(struct scn_ctx *c, struct scn_stmt *s, struct hm_mm **mm, uint64_t *addr,
			uint64_t *len, void **buf)
{
	if (range(c, s, 0, mm, addr, len))
		return SCN_FAIL;
	if (*len > ACCESS_MAX)
		return scn_err(c, s, "%s: LEN is at most 64M here (fill and verify cover more)", s->cmd->name);
	*buf = malloc(*len ? *len : 1);
	if (!*buf)
		return scn_err(c, s, "%s: no host memory for the buffer", s->cmd->name);
	return 0;
}

int scn_cmd_read(struct scn_ctx *c, struct scn_stmt *s)
{
	struct hm_mm *mm;
	uint64_t addr, len;
	void *buf;
	int r;

	if (access_range(c, s, &mm, &addr, &len, &buf))
		return SCN_FAIL;
	r = hm_read(mm, addr, buf, len);
	free(buf);
	return r;
}

int scn_cmd_write(struct scn_ctx *c, struct scn_stmt *s)
{
	struct hm_mm *mm;
	uint64_t addr, len, byte = 0x5a;
	void *buf;
	int r;

	if (s->argc == 4 && scn_eval(c, s, s->argv[3], &byte))
		return SCN_FAIL;
	if (byte > 255)
		return scn_err(c, s, "write: expected a BYTE 0..255, got \"%s\"", s->argv[3]);
	if (access_range(c, s, &mm, &addr, &len, &buf))
		return SCN_FAIL;
	memset(buf, (int)byte, len);
	r = hm_write(mm, addr, buf, len);
	free(buf);
	return r;
}

/* fill / verify: MM ADDR LEN SEED, ADDR and LEN multiples of 4K. */
static int pattern_range(struct scn_ctx *c, struct scn_stmt *s, struct hm_mm **mm, uint64_t *addr,
			 uint64_t *len, uint64_t *seed)
{
	if (range(c, s, 0, mm, addr, len) || scn_eval(c, s, s->argv[3], seed))
		return SCN_FAIL;
	if ((*addr | *len) & 4095)
		return scn_err(c, s, "%s: expected ADDR and LEN multiples of 4K, got %#llx and %#llx", s->cmd->name,
			       (unsigned long long)*addr, (unsigned long long)*len);
	return 0;
}

/* The first and the last word of every 4 KiB page. */
int scn_cmd_fill(struct scn_ctx *c, struct scn_stmt *s)
{
	struct hm_mm *mm;
	uint64_t addr, len, seed;

	if (pattern_range(c, s, &mm, &addr, &len, &seed))
		return SCN_FAIL;
	for (uint64_t off = 0; off < len; off += 4096) {
		uint64_t va = addr + off, v = scn_pattern(seed, va), w = scn_pattern(seed, va + 4088);
		int r = hm_write(mm, va, &v, 8);

		if (!r)
			r = hm_write(mm, va + 4088, &w, 8);
		if (r)
			return r;
		if (!c->in_threads && !(off & ((64 << 20) - 1)))
			scn_progress(c->scn, s, "fill", off, len);
	}
	if (!c->in_threads)
		scn_progress(c->scn, s, "fill", len, len);
	return 0;
}

int scn_cmd_verify(struct scn_ctx *c, struct scn_stmt *s)
{
	struct hm_mm *mm;
	uint64_t addr, len, seed, bad = 0;

	if (pattern_range(c, s, &mm, &addr, &len, &seed))
		return SCN_FAIL;
	for (uint64_t off = 0; off < len; off += 4096) {
		uint64_t va = addr + off, v = 0, w = 0;
		int r = hm_read(mm, va, &v, 8);

		if (!r)
			r = hm_read(mm, va + 4088, &w, 8);
		if (r)
			return r;
		if (v != scn_pattern(seed, va) || w != scn_pattern(seed, va + 4088)) {
			if (++bad <= 3)
				scn_err(c, s, "verify: page %#llx holds %#llx ... %#llx, expected %#llx ... %#llx (seed %llu)",
					(unsigned long long)va, (unsigned long long)v, (unsigned long long)w,
					(unsigned long long)scn_pattern(seed, va),
					(unsigned long long)scn_pattern(seed, va + 4088), (unsigned long long)seed);
		}
		if (!c->in_threads && !(off & ((64 << 20) - 1)))
			scn_progress(c->scn, s, "verify", off, len);
	}
	if (!c->in_threads)
		scn_progress(c->scn, s, "verify", len, len);
	if (bad)
		return scn_err(c, s, "verify failed: %llu of %llu pages wrong", (unsigned long long)bad,
			       (unsigned long long)(len / 4096));
	return 0;
}

int scn_cmd_reclaim(struct scn_ctx *c, struct scn_stmt *s)
{
	uint64_t bytes, freed;

	if (scn_system(c, s) || scn_eval(c, s, s->argv[0], &bytes))
		return SCN_FAIL;
	return hm_reclaim(c->scn->sys, bytes, &freed);
}

int scn_cmd_migrate(struct scn_ctx *c, struct scn_stmt *s)
{
	struct hm_mm *mm;
	uint64_t addr, len, node;

	if (range(c, s, 0, &mm, &addr, &len) || scn_eval(c, s, s->argv[3], &node))
		return SCN_FAIL;
	if (node > UINT32_MAX)
		return scn_err(c, s, "migrate: expected a node number, got \"%s\"", s->argv[3]);
	return hm_migrate(mm, addr, len, (unsigned)node);
}

/* MADV_COLLAPSE, which this library has (see hm_madvise). */
int scn_cmd_collapse(struct scn_ctx *c, struct scn_stmt *s)
{
	struct hm_mm *mm;
	uint64_t addr, len;

	if (range(c, s, 0, &mm, &addr, &len))
		return SCN_FAIL;
	return hm_madvise(mm, addr, len, MADV_COLLAPSE);
}

int scn_cmd_khugepaged(struct scn_ctx *c, struct scn_stmt *s)
{
	uint64_t pages;

	if (scn_system(c, s) || scn_eval(c, s, s->argv[0], &pages))
		return SCN_FAIL;
	return hm_khugepaged_scan(c->scn->sys, pages, NULL);
}

int scn_cmd_drain(struct scn_ctx *c, struct scn_stmt *s)
{
	if (scn_system(c, s))
		return SCN_FAIL;
	hm_drain(c->scn->sys);
	return 0;
}
