/* SPDX-License-Identifier: MIT */
/*
 * Argument generators. Addresses and lengths are drawn in units of 4 KiB,
 * 2 MiB and 1 GiB, a page either side of those boundaries, at and inside
 * existing mappings, at the top of the address space, and now and then
 * unaligned, overflowing or wild: where the bugs are.
 */
#include "fuzz.h"
#include "gen.h"

static uint64_t jitter(struct fz_src *s)
{
	switch (fz_below(s, 6)) {
	case 0: return -FZ_PAGE;
	case 1: return FZ_PAGE;
	case 2: return fz_below(s, 512) * FZ_PAGE;
	default: return 0;
	}
}

uint64_t fz_gen_addr(struct fz_case *c, const struct fz_model *m)
{
	static const uint64_t units[] = { FZ_PAGE, FZ_PAGE, FZ_2M, FZ_2M, FZ_1G };
	struct fz_src *s = c->s;
	uint64_t a, u;

	switch (fz_below(s, 16)) {
	default:	/* the window */
		u = units[fz_below(s, 5)];
		a = FZ_WIN + fz_below(s, FZ_WINLEN / u) * u;
		a += jitter(s);
		break;
	case 9: case 10: case 11: case 12:	/* an existing mapping */
		if (!m || !m->nv) {
			a = FZ_WIN;
			break;
		}
		const struct fz_vma *v = &m->v[fz_below(s, m->nv)];
		switch (fz_below(s, 4)) {
		case 0: a = v->start; break;
		case 1: a = v->end; break;
		case 2: a = v->end - FZ_PAGE; break;
		default: a = v->start + fz_below(s, (v->end - v->start) / FZ_PAGE) * FZ_PAGE; break;
		}
		break;
	case 13:	/* the top of the address space */
		a = c->task_size + FZ_PAGE - fz_below(s, 4) * FZ_PAGE;
		break;
	case 14:	/* anywhere */
		a = fz_u64(s) & ~(FZ_PAGE - 1);
		if (fz_one_in(s, 2))
			a &= (1ull << 57) - 1;
		break;
	case 15:	/* around the 64 KiB floor */
		a = fz_below(s, 32) * FZ_PAGE;
		break;
	}
	if (fz_one_in(s, 32))
		a += 1 + fz_below(s, FZ_PAGE - 1);
	return a;
}

/* A page, mostly inside a mapping (near its start, its end, or anywhere),
 * otherwise from fz_gen_addr. */
uint64_t fz_gen_page(struct fz_case *c, const struct fz_model *m)
{
	struct fz_src *s = c->s;

	if (m->nv && fz_below(s, 8) < 6) {
		const struct fz_vma *v = &m->v[fz_below(s, m->nv)];
		uint64_t pages = (v->end - v->start) / FZ_PAGE;

		switch (fz_below(s, 4)) {
		case 0: return v->start + fz_below(s, pages < 1024 ? pages : 1024) * FZ_PAGE;
		case 1: return v->end - FZ_PAGE - fz_below(s, pages < 4 ? pages : 4) * FZ_PAGE;
		default: return v->start + fz_below(s, pages) * FZ_PAGE;
		}
	}
	return fz_gen_addr(c, m) & ~(FZ_PAGE - 1);
}

/* A range for the calls that take one: half the time cut from a mapping
 * (all of it, a head, a tail, a piece, or from a 2 MiB boundary in it; now
 * and then running past its end), else address and length drawn apart. */
void fz_gen_range(struct fz_case *c, const struct fz_model *m, uint64_t *addr, uint64_t *len)
{
	struct fz_src *s = c->s;

	if (!m->nv || fz_one_in(s, 2)) {
		*addr = fz_gen_addr(c, m);
		*len = fz_gen_len(c);
		return;
	}
	const struct fz_vma *v = &m->v[fz_below(s, m->nv)];
	uint64_t pages = (v->end - v->start) / FZ_PAGE, a = v->start, n = pages;

	switch (fz_below(s, 5)) {
	case 0: break;
	case 1: n = 1 + fz_below(s, pages); break;
	case 2: a += fz_below(s, pages) * FZ_PAGE; n = (v->end - a) / FZ_PAGE; break;
	case 3:
		a = (a + fz_below(s, pages) * FZ_PAGE + FZ_2M - 1) & ~(FZ_2M - 1);
		if (a >= v->end)
			a = v->start;
		n = 1 + fz_below(s, (v->end - a) / FZ_PAGE);
		break;
	default: a += fz_below(s, pages) * FZ_PAGE; n = 1 + fz_below(s, (v->end - a) / FZ_PAGE); break;
	}
	if (fz_one_in(s, 8))
		n += 1 + fz_below(s, 512);
	*addr = a;
	*len = n * FZ_PAGE - (fz_one_in(s, 16) ? fz_below(s, FZ_PAGE) : 0);
}

uint64_t fz_gen_len(struct fz_case *c)
{
	struct fz_src *s = c->s;
	uint64_t v;

	/* (one read from the source per statement: the order of two calls in
	 * one expression is unspecified, and differs between builds) */
	switch (fz_below(s, 16)) {
	case 0: return fz_one_in(s, 4) ? 0 : 1 + fz_below(s, FZ_PAGE - 1);
	case 1: return UINT64_MAX - fz_below(s, 3 * FZ_PAGE);
	case 2: case 3: case 4: case 5: case 6: return (1 + fz_below(s, 16)) * FZ_PAGE;
	case 7: case 8: case 9: v = (1 + fz_below(s, 4)) * FZ_2M; return v + jitter(s);
	case 10: return FZ_1G + jitter(s);
	case 11: return (1 + fz_below(s, 600)) * FZ_PAGE;
	case 12: v = fz_u64(s); return v >> fz_below(s, 64);
	case 13: return 2 * FZ_1G;
	case 14: return FZ_WINLEN;
	default: return (1 + fz_below(s, 3)) * FZ_2M;
	}
}

int fz_gen_prot(struct fz_case *c)
{
	static const int prots[] = {
		PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE,
		PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE,
		PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE, PROT_READ, PROT_READ, PROT_NONE, PROT_NONE,
		PROT_READ | PROT_WRITE | PROT_EXEC, PROT_READ | PROT_EXEC, PROT_WRITE, PROT_EXEC,
		PROT_WRITE | PROT_EXEC,
	};
	static const int bad[] = { 0x8, 0x10, PROT_GROWSDOWN, PROT_GROWSUP, -1, 0x80000000 };

	if (fz_one_in(c->s, 32)) {
		int b = bad[fz_below(c->s, sizeof(bad) / sizeof(bad[0]))];

		return b | (int)fz_below(c->s, 8);
	}
	return prots[fz_below(c->s, sizeof(prots) / sizeof(prots[0]))];
}

int fz_gen_mflags(struct fz_case *c)
{
	static const int bad[] = { MAP_SHARED, MAP_HUGETLB, MAP_GROWSDOWN, MAP_LOCKED, MAP_STACK,
				   MAP_SHARED_VALIDATE, 0x40000000 };
	struct fz_src *s = c->s;
	int f = MAP_PRIVATE | MAP_ANONYMOUS;

	switch (fz_below(s, 20)) {
	case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8: case 9: f |= MAP_FIXED; break;
	case 10: case 11: case 12: case 13: f |= MAP_FIXED_NOREPLACE; break;
	case 14: f |= MAP_FIXED | MAP_FIXED_NOREPLACE; break;
	default: break;
	}
	if (fz_one_in(s, 6))
		f |= MAP_POPULATE;
	if (fz_one_in(s, 10))
		f |= MAP_NORESERVE;
	if (fz_one_in(s, 32)) {
		switch (fz_below(s, 3)) {
		case 0: f &= ~MAP_PRIVATE; break;
		case 1: f &= ~MAP_ANONYMOUS; break;
		default: f |= bad[fz_below(s, sizeof(bad) / sizeof(bad[0]))]; break;
		}
	}
	return f;
}

/* A value for a write's bytes: the bytes are a pattern of it and the
 * offset, so that a misplaced byte shows. */
uint8_t fz_pat(uint64_t v, uint64_t i)
{
	uint64_t x = (v + 1) * 0x9e3779b97f4a7c15ull ^ (i + 1) * 0xd1b54a32d192ed03ull;

	x ^= x >> 29;
	return (uint8_t)(x | 1);
}
