/* SPDX-License-Identifier: MIT */
/*
 * anon_vma families and the reverse map (see anon.h, and types.h for the
 * structures).
 *
 * Lock order: mmap_lock -> page_table_lock -> av->lock -> sys->av_lock.
 */
#include <stdlib.h>

#include "../base/race.h"
#include "anon.h"
#include "types.h"

static int av_register(struct hm_system *sys, struct hm_anon_vma *av)
{
	int r = 0;

	hm_mutex_lock(&sys->av_lock);
	uint32_t id = 0;
	while (id < sys->nr_avs && sys->avs[id])
		id++;
	if (id == sys->cap_avs) {
		uint32_t cap = sys->cap_avs ? sys->cap_avs * 2 : 16;
		struct hm_anon_vma **a = hm_realloc(&sys->phys.fail, sys->avs, cap * sizeof(*a));

		if (!a) {
			r = -ENOMEM;
			goto out;
		}
		sys->avs = a;
		sys->cap_avs = cap;
	}
	if (id == sys->nr_avs)
		sys->nr_avs++;
	sys->avs[id] = av;
	av->id = id;
out:
	hm_mutex_unlock(&sys->av_lock);
	return r;
}

static void av_free(struct hm_system *sys, struct hm_anon_vma *av)
{
	hm_mutex_lock(&sys->av_lock);
	sys->avs[av->id] = NULL;
	hm_mutex_unlock(&sys->av_lock);
	pthread_mutex_destroy(&av->lock);
	free(av->members);
	free(av);
}

/* A family for @v, created at its first fault. Two faults may race here
 * under mmap_lock for reading: page_table_lock decides, as in the kernel's
 * __anon_vma_prepare(). */
int hm_anon_vma_prepare(struct hm_mm *mm, struct hm_vma *v)
{
	hm_assert_rwsem_held(&mm->mmap_lock);
	struct hm_system *sys = mm->sys;

	if (hm_likely(hm_load(&v->av)))
		return 0;
	struct hm_anon_vma *av = hm_calloc(&sys->phys.fail, 1, sizeof(*av));
	if (!av)
		return -ENOMEM;
	av->members = hm_malloc(&sys->phys.fail, 4 * sizeof(*av->members));
	if (!av->members || av_register(sys, av)) {
		free(av->members);
		free(av);
		return -ENOMEM;
	}
	pthread_mutex_init(&av->lock, NULL);
	av->cap = 4;
	av->nr = 1;
	av->members[0] = (struct hm_av_member){ mm, 1 };
	hm_spin_lock(&mm->page_table_lock);
	bool won = !v->av;
	if (won)
		hm_store(&v->av, av);
	hm_spin_unlock(&mm->page_table_lock);
	if (!won)
		av_free(sys, av);
	hm_race_point("anon_vma_set");
	return 0;
}

static struct hm_av_member *member(struct hm_anon_vma *av, struct hm_mm *mm)
{
	for (uint32_t i = 0; i < av->nr; i++)
		if (av->members[i].mm == mm)
			return &av->members[i];
	return NULL;
}

void hm_av_get(struct hm_anon_vma *av, struct hm_mm *mm)
{
	hm_mutex_lock(&av->lock);
	struct hm_av_member *m = member(av, mm);
	hm_assert(m);
	m->nvmas++;
	hm_mutex_unlock(&av->lock);
}

int hm_av_reserve(struct hm_anon_vma *av, struct hm_fail *fail)
{
	int r = 0;

	hm_mutex_lock(&av->lock);
	if (av->nr + av->reserved >= av->cap) {
		struct hm_av_member *m = hm_realloc(fail, av->members, av->cap * 2 * sizeof(*m));

		if (m) {
			av->members = m;
			av->cap *= 2;
		} else {
			r = -ENOMEM;
		}
	}
	if (!r)
		av->reserved++;
	hm_mutex_unlock(&av->lock);
	return r;
}

void hm_av_unreserve(struct hm_anon_vma *av)
{
	hm_mutex_lock(&av->lock);
	hm_assert(av->reserved > 0);
	av->reserved--;
	hm_mutex_unlock(&av->lock);
}

void hm_av_add(struct hm_anon_vma *av, struct hm_mm *mm)
{
	hm_mutex_lock(&av->lock);
	struct hm_av_member *m = member(av, mm);
	if (m) {
		m->nvmas++;
	} else {
		hm_assert(av->nr < av->cap);
		av->members[av->nr++] = (struct hm_av_member){ mm, 1 };
	}
	hm_mutex_unlock(&av->lock);
}

void hm_av_put(struct hm_system *sys, struct hm_anon_vma *av, struct hm_mm *mm)
{
	hm_mutex_lock(&av->lock);
	struct hm_av_member *m = member(av, mm);
	hm_assert(m && m->nvmas > 0);
	if (--m->nvmas == 0)
		*m = av->members[--av->nr];
	bool empty = av->nr == 0;
	hm_mutex_unlock(&av->lock);
	if (empty)
		av_free(sys, av);
}

void hm_folio_set_rmap(struct hm_phys *ph, uint32_t head, const struct hm_vma *v, uint64_t va)
{
	struct hm_page *h = hm_pfn_page(ph, head);

	h->folio.anon_vma = v->av->id;
	h->folio.index = va >> HM_PAGE_SHIFT;
}

struct rmap_walk {
	struct hm_system *sys;
	struct hm_mm *mm;
	uint32_t head, end;	/* frames [head, end) */
	hm_rmap_fn fn;
	void *arg;
	uint64_t found;
};

static void rmap_table(struct rmap_walk *w, uint32_t table, unsigned level, uint64_t base,
		       uint64_t start, uint64_t stop)
{
	const hm_pte_t *t = hm_pt_entries(&w->sys->phys, table);

	hm_for_each_entry(i, va, level, base, start, stop) {
		hm_pte_t e = pt_get(&t[i]);

		if (level > 0 && pt_present(e) && !pt_leaf(e, level)) {
			rmap_table(w, pt_pfn(e, level), level - 1, va, start, stop);
		} else if (pt_mapped(e) && pt_pfn(e, level) >= w->head && pt_pfn(e, level) < w->end) {
			w->found++;
			if (w->fn)
				w->fn(w->mm, va, level, w->arg);
		}
	}
}

uint64_t hm_rmap_walk(struct hm_system *sys, uint32_t head, hm_rmap_fn fn, void *arg)
{
	struct hm_page *h = hm_pfn_page(&sys->phys, head);
	struct rmap_walk w = { sys, NULL, head, head + folio_nr_pages(h), fn, arg, 0 };
	uint64_t start = folio_va(h);
	uint64_t stop = start + folio_size(h);

	struct hm_anon_vma *av = NULL;

	/* av_register() may move the table under us: look up under its lock.
	 * That lock comes after av->lock, so drop it before taking av->lock.
	 * The family cannot be freed in between: that takes its last member
	 * leaving, and a member leaves only with its mmap_lock held for
	 * writing, while our caller holds every member's mmap_lock. */
	hm_mutex_lock(&sys->av_lock);
	if (folio_anon_vma(h) < sys->nr_avs)
		av = sys->avs[folio_anon_vma(h)];
	hm_mutex_unlock(&sys->av_lock);
	if (!av)
		return 0;
	hm_mutex_lock(&av->lock);
	for (uint32_t i = 0; i < av->nr; i++) {
		w.mm = av->members[i].mm;
		hm_assert_rwsem_held(&w.mm->mmap_lock);
		rmap_table(&w, w.mm->root, sys->top, 0, start, stop);
	}
	hm_mutex_unlock(&av->lock);
	return w.found;
}
