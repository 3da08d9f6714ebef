/* SPDX-License-Identifier: MIT */
/*
 * The reverse map (anon.c): anon_vma families and the walk over every
 * leaf that maps a folio.
 */
#ifndef HM_MM_ANON_H
#define HM_MM_ANON_H

#include "types.h"

int hm_anon_vma_prepare(struct hm_mm *mm, struct hm_vma *v);	/* mmap_lock read */
void hm_av_get(struct hm_anon_vma *av, struct hm_mm *mm);	/* member exists */
/* Hold room for one more member until hm_av_unreserve (a fork under way). */
int hm_av_reserve(struct hm_anon_vma *av, struct hm_fail *fail);
void hm_av_unreserve(struct hm_anon_vma *av);
void hm_av_add(struct hm_anon_vma *av, struct hm_mm *mm);	/* while reserved */
void hm_av_put(struct hm_system *sys, struct hm_anon_vma *av, struct hm_mm *mm);
void hm_folio_set_rmap(struct hm_phys *ph, uint32_t head, const struct hm_vma *v, uint64_t va);
/*
 * Call @fn for every leaf, in every address space, that maps part of the
 * folio at @head. Context: the mmap_lock of every member mm held.
 * Returns the number of leaves found.
 */
typedef void (*hm_rmap_fn)(struct hm_mm *mm, uint64_t va, unsigned level, void *arg);
uint64_t hm_rmap_walk(struct hm_system *sys, uint32_t head, hm_rmap_fn fn, void *arg);

#endif /* HM_MM_ANON_H */
