/* SPDX-License-Identifier: MIT */
/*
 * The map calls: hm_mmap, hm_munmap, hm_mprotect, hm_madvise. Each works
 * out the one result mmap(2)/munmap(2)/mprotect(2)/madvise(2) and the
 * header give for its arguments (errors in the header's order), allows
 * -ENOMEM only where memory may run short, and on any error checks that
 * nothing changed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "gen.h"

#define MAP_KNOWN (FZ_PA | MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_POPULATE | MAP_NORESERVE)
#define PROT_ALL (PROT_READ | PROT_WRITE | PROT_EXEC)

/* Around and inside [a, a + l): the pages the call may have changed. */
static void verify_edges(struct fz_case *c, struct fz_mm *m, uint64_t a, uint64_t l)
{
	if (a >= FZ_PAGE)
		fz_probe(c, m, a - FZ_PAGE);
	fz_verify_range(c, m, a, l);
	if (a + l > a)
		fz_probe(c, m, a + l);
}

void fz_op_mmap(struct fz_case *c)
{
	struct fz_src *s = c->s;
	struct fz_mm *m = fz_pick(c);
	uint64_t addr, len, out = 0;

	fz_gen_range(c, &m->m, &addr, &len);
	int prot = fz_gen_prot(c), flags = fz_gen_mflags(c);
	bool null_mm = fz_one_in(s, 64), null_out = fz_one_in(s, 64);
	uint64_t l = fz_page_len(len);
	uint64_t align = l >= FZ_1G ? FZ_1G : l >= FZ_2M ? FZ_2M : FZ_PAGE;
	bool fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE), over = false;
	int want = 0;

	if (null_mm || null_out || !len || (prot & ~PROT_ALL) || (flags & ~MAP_KNOWN) ||
	    (flags & FZ_PA) != FZ_PA || !l)
		want = -EINVAL;
	else if (fixed && ((addr & (FZ_PAGE - 1)) || addr + l < addr))
		want = -EINVAL;
	else if (fixed && addr < FZ_MIN_ADDR)
		want = -EPERM;
	else if (fixed && addr + l > c->task_size)
		want = -ENOMEM;
	else if (fixed && (over = fz_model_overlaps(&m->m, addr, addr + l)) && (flags & MAP_FIXED_NOREPLACE))
		want = -EEXIST;
	else if (!fixed && !fz_model_gap(&m->m, l, align, FZ_MIN_ADDR, c->task_size))
		want = -ENOMEM;
	snprintf(c->desc, sizeof(c->desc), "hm_mmap(%s, %#" PRIx64 ", %#" PRIx64 ", %#x, %#x, %s)",
		 fz_name(c, m, null_mm), addr, len, prot, flags, null_out ? "NULL" : "&out");
	c->free_before = fz_stat(c, "nr_free_pages");
	int r = c->rc = fz_done(c, hm_mmap(null_mm ? NULL : m->mm, addr, len, prot, flags, null_out ? NULL : &out));

	if (want) {
		FZ_RC(c, r, want);
		if (fixed && addr + l > addr)
			verify_edges(c, m, addr, l);
		return;
	}
	/* Replacing mappings may split huge pages at the edges, and every map
	 * call may need memory for its bookkeeping (the failpoint). */
	if (!FZ_RC(c, r, 0, fz_enomem_ok(c, over ? fz_split_need(c) : 0) ? -ENOMEM : 0) || r) {
		if (fixed)
			verify_edges(c, m, addr, l);
		return;
	}
	if (!fixed) {
		FZ_CHECK(c, !(out & (align - 1)) && out >= FZ_MIN_ADDR && out + l <= c->task_size && out + l > out &&
			 !fz_model_overlaps(&m->m, out, out + l),
			 "placed at %#" PRIx64 ": misaligned (want %#" PRIx64 "), out of range or over a mapping", out, align);
		addr = out;
	} else {
		FZ_CHECK(c, out == addr, "fixed mapping placed at %#" PRIx64, out);
	}
	fz_model_map(&m->m, addr, addr + l, prot);
	if ((flags & MAP_POPULATE) && prot != PROT_NONE && !c->fail_hit && c->free_before > 2 * (l / FZ_PAGE) + 4096) {
		struct hm_mapping q1, q2;

		FZ_CHECK(c, !hm_query(m->mm, addr, &q1) && q1.size && !hm_query(m->mm, addr + l - FZ_PAGE, &q2) && q2.size,
			 "MAP_POPULATE with memory to spare left the range unpopulated");
	}
	verify_edges(c, m, addr, l);
}

void fz_op_munmap(struct fz_case *c)
{
	struct fz_mm *m = fz_pick(c);
	uint64_t addr, len;

	fz_gen_range(c, &m->m, &addr, &len);
	uint64_t l = fz_page_len(len);
	bool null_mm = fz_one_in(c->s, 64);
	int want = 0;

	if (null_mm || (addr & (FZ_PAGE - 1)) || (len && !l) || addr + l < addr || !len || addr + l > c->task_size)
		want = -EINVAL;
	snprintf(c->desc, sizeof(c->desc), "hm_munmap(%s, %#" PRIx64 ", %#" PRIx64 ")", fz_name(c, m, null_mm), addr, len);
	c->free_before = fz_stat(c, "nr_free_pages");
	int r = c->rc = fz_done(c, hm_munmap(null_mm ? NULL : m->mm, addr, len));

	if (want || !FZ_RC(c, r, 0, fz_enomem_ok(c, fz_split_need(c)) ? -ENOMEM : 0) || r) {
		if (want)
			FZ_RC(c, r, want);
		verify_edges(c, m, addr & ~(FZ_PAGE - 1), l);
		return;
	}
	fz_model_unmap(&m->m, addr, addr + l);
	verify_edges(c, m, addr, l);
}

void fz_op_mprotect(struct fz_case *c)
{
	struct fz_mm *m = fz_pick(c);
	uint64_t addr, len;

	fz_gen_range(c, &m->m, &addr, &len);
	uint64_t l = fz_page_len(len);
	int prot = fz_gen_prot(c);
	bool null_mm = fz_one_in(c->s, 64);
	int want = 0;

	if (null_mm || (addr & (FZ_PAGE - 1)) || (len && !l) || addr + l < addr || (prot & ~PROT_ALL))
		want = -EINVAL;
	else if (len && !fz_model_covers(&m->m, addr, addr + l, 0))
		want = -ENOMEM;
	snprintf(c->desc, sizeof(c->desc), "hm_mprotect(%s, %#" PRIx64 ", %#" PRIx64 ", %#x)", fz_name(c, m, null_mm),
		 addr, len, prot);
	c->free_before = fz_stat(c, "nr_free_pages");
	int r = c->rc = fz_done(c, hm_mprotect(null_mm ? NULL : m->mm, addr, len, prot));

	if (want || !len || !FZ_RC(c, r, 0, fz_enomem_ok(c, fz_split_need(c)) ? -ENOMEM : 0) || r) {
		if (want || !len)
			FZ_RC(c, r, want);
		verify_edges(c, m, addr & ~(FZ_PAGE - 1), l);
		return;
	}
	fz_model_protect(&m->m, addr, addr + l, prot);
	verify_edges(c, m, addr, l);
}

/* Advice that hm_madvise takes: the ones it acts on, and the hints. */
static bool advice_known(int a)
{
	switch (a) {
	case MADV_HUGEPAGE: case MADV_NOHUGEPAGE: case MADV_DONTNEED: case MADV_DONTFORK: case MADV_DOFORK:
	case MADV_NORMAL: case MADV_RANDOM: case MADV_SEQUENTIAL: case MADV_WILLNEED:
		return true;
	}
	return false;
}

/* Advice API.md lists that the header does not take yet: -EINVAL now,
 * later 0 with the data unchanged; both are accepted. */
static bool advice_future(int a)
{
	return a == MADV_COLLAPSE || a == MADV_PAGEOUT;
}

static int gen_advice(struct fz_case *c)
{
	static const int adv[] = {
		MADV_DONTNEED, MADV_DONTNEED, MADV_DONTNEED, MADV_HUGEPAGE, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
		MADV_DONTFORK, MADV_DONTFORK, MADV_DOFORK, MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL,
		MADV_WILLNEED, MADV_COLLAPSE, MADV_PAGEOUT,
		/* not taken */
		MADV_FREE, MADV_REMOVE, MADV_MERGEABLE, MADV_DONTDUMP, MADV_WIPEONFORK, MADV_COLD,
		22 /* MADV_POPULATE_READ */, 23 /* MADV_POPULATE_WRITE */, MADV_HWPOISON, -1, 12345,
	};

	/* the first 15 are taken (or will be): the rest one time in six */
	if (!fz_one_in(c->s, 6))
		return adv[fz_below(c->s, 15)];
	return adv[fz_below(c->s, sizeof(adv) / sizeof(adv[0]))];
}

void fz_op_madvise(struct fz_case *c)
{
	struct fz_mm *m = fz_pick(c);
	uint64_t addr, len;

	fz_gen_range(c, &m->m, &addr, &len);
	uint64_t l = fz_page_len(len);
	int adv = gen_advice(c);
	bool null_mm = fz_one_in(c->s, 64), fut = advice_future(adv);
	int want = 0;

	if (null_mm || (addr & (FZ_PAGE - 1)) || (len && !l) || addr + l < addr || (!advice_known(adv) && !fut))
		want = -EINVAL;
	else if (len && !fz_model_covers(&m->m, addr, addr + l, 0))
		want = -ENOMEM;
	snprintf(c->desc, sizeof(c->desc), "hm_madvise(%s, %#" PRIx64 ", %#" PRIx64 ", %d)", fz_name(c, m, null_mm),
		 addr, len, adv);
	c->free_before = fz_stat(c, "nr_free_pages");
	int r = c->rc = fz_done(c, hm_madvise(null_mm ? NULL : m->mm, addr, len, adv));
	bool splits = adv == MADV_DONTNEED || adv == MADV_HUGEPAGE || adv == MADV_NOHUGEPAGE ||
		      adv == MADV_DONTFORK || adv == MADV_DOFORK || fut;
	/* A collapse allocates a 2 MiB page (512 frames) besides what a
	 * split takes. */
	uint64_t need = fz_split_need(c) + (adv == MADV_COLLAPSE ? 512 : 0);
	int nomem = len && splits && fz_enomem_ok(c, need) ? -ENOMEM : want;

	if (!FZ_RC(c, r, want, fut ? -EINVAL : want, want ? want : nomem) || r || !len) {
		verify_edges(c, m, addr & ~(FZ_PAGE - 1), l);
		return;
	}
	switch (adv) {
	case MADV_DONTNEED: fz_model_zero(&m->m, addr, addr + l); break;
	case MADV_DONTFORK: fz_model_flags(&m->m, addr, addr + l, 0, FZ_DONTFORK); break;
	case MADV_DOFORK: fz_model_flags(&m->m, addr, addr + l, FZ_DONTFORK, 0); break;
	case MADV_HUGEPAGE: fz_model_flags(&m->m, addr, addr + l, FZ_NOHUGE, FZ_HUGE); break;
	case MADV_NOHUGEPAGE: fz_model_flags(&m->m, addr, addr + l, FZ_HUGE, FZ_NOHUGE); break;
	}
	verify_edges(c, m, addr, l);
}
