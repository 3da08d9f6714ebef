/* SPDX-License-Identifier: MIT */
/*
 * mm: everything the mm layer declares, one header per concern. Files
 * include what they use; this umbrella is for those that use most of it.
 *
 *   types.h        the structures, their locks and invariants, counter ids
 *   stat.h         counting and the sums (stat.c)
 *   vma.h          VMAs (vma.c)
 *   table.h        an mm's page tables, TLB flushes, the leaf walk (table.c)
 *   folio.h        folios: allocation, map counts, folio locks (folio.c)
 *   folio_split.h  folio split and the deferred split queue
 *   anon.h         the reverse map (anon.c)
 *   lru.h          LRU lists and isolation (lru.c)
 *   reclaim.h      reclaim, swap-out, swap-in
 *   fault.h        faults and copy-on-write
 *   zero.h         the huge zero page
 *   split.h        splitting huge leaves
 *   unmap.h        zap, table freeing and reclaim, munmap
 *   migrate.h      migration, hm_migrate, compaction
 *   collapse.h     MADV_COLLAPSE and khugepaged
 *   check.h        the invariant checker
 *   hooks.h        entry points for tests and benchmarks only
 *
 * The life cycle of systems and mms (mm.c) calls down into these; nothing
 * here calls back into it.
 */
#ifndef HM_MM_H
#define HM_MM_H

#include "types.h"
#include "stat.h"
#include "vma.h"
#include "table.h"
#include "folio.h"
#include "folio_split.h"
#include "anon.h"
#include "lru.h"
#include "reclaim.h"
#include "fault.h"
#include "zero.h"
#include "split.h"
#include "unmap.h"
#include "migrate.h"
#include "collapse.h"
#include "check.h"

#include "hooks.h"

#endif /* HM_MM_H */
