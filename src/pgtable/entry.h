/* SPDX-License-Identifier: MIT */
/*
 * The x86-64 page-table entry format (4- and 5-level paging), behind generic
 * names so that the rest of hugemm never touches a bit by number.
 *
 *  bit  0 P     present              bit  7 PS   leaf at level 1/2 (PAT at 0)
 *  bit  1 RW    writable             bit  8 G    global
 *  bit  2 US    user                 bits 9-11   software (see below)
 *  bit  3 PWT, 4 PCD  caching        bits 12-51  frame (21-51 / 30-51 for
 *  bit  5 A     accessed                         2 MiB / 1 GiB leaves)
 *  bit  6 D     dirty (leaves)       bit 63 NX   no execute
 *
 * Non-present entries that are not zero:
 *  - PROT_NONE leaves keep their frame with P clear and HM_PTE_PROTNONE set
 *    (the kernel's _PAGE_PROTNONE idea: the hardware faults, we still know
 *    what is mapped);
 *  - swap and migration entries: P clear, PROTNONE clear, type in bits 1-5,
 *    offset in bits 12-57. Types 0..29 are swap devices, 30 and 31 are
 *    migration entries (read / write).
 */
#ifndef HM_PGTABLE_ENTRY_H
#define HM_PGTABLE_ENTRY_H

#include <sys/mman.h>

#include "../base/base.h"
#include "protect.h"

typedef uint64_t hm_pte_t;

#define HM_PTE_P	(1ull << 0)
#define HM_PTE_RW	(1ull << 1)
#define HM_PTE_US	(1ull << 2)
#define HM_PTE_PWT	(1ull << 3)
#define HM_PTE_PCD	(1ull << 4)
#define HM_PTE_A	(1ull << 5)
#define HM_PTE_D	(1ull << 6)
#define HM_PTE_PS	(1ull << 7)
#define HM_PTE_G	(1ull << 8)
#define HM_PTE_SW1	(1ull << 9)
#define HM_PTE_SW2	(1ull << 10)
#define HM_PTE_SW3	(1ull << 11)
#define HM_PTE_NX	(1ull << 63)
#define HM_PTE_ADDR	0x000ffffffffff000ull	/* bits 12-51 */

/* A PROT_NONE leaf: P is clear, the frame is still ours. */
#define HM_PTE_PROTNONE HM_PTE_SW1
/* A huge leaf being split (the kernel's pmdp_invalidate): P clear, so that
 * no walker uses or updates it, but not none, so that no fault takes the
 * slot for empty. Exists only under its table's lock. */
#define HM_PTE_INVALID	HM_PTE_SW2

#define HM_SWP_TYPE_SHIFT	1
#define HM_SWP_TYPE_MASK	0x1full
#define HM_SWP_OFFSET_SHIFT	12
#define HM_SWP_OFFSET_BITS	46
#define HM_SWP_MIGRATION_READ	30u
#define HM_SWP_MIGRATION_WRITE	31u

/* Bits that carry through a split or a protection change. */
#define HM_PTE_KEEP	(HM_PTE_A | HM_PTE_D)
/* The permission bits of a leaf (what pt_prot_bits makes). */
#define HM_PTE_PERM	(HM_PTE_P | HM_PTE_RW | HM_PTE_US | HM_PTE_NX | HM_PTE_PROTNONE)

static inline unsigned hm_level_shift(unsigned level) { return HM_PAGE_SHIFT + 9 * level; }
static inline uint64_t hm_level_size(unsigned level) { return 1ull << hm_level_shift(level); }
static inline unsigned hm_level_index(uint64_t va, unsigned level)
{
	return (unsigned)(va >> hm_level_shift(level)) & (HM_PTRS - 1);
}

/*
 * Visit the entries of a table of @level whose span starts at @base, that
 * cover [start, end): @i is the entry's index, @va the start of its span.
 */
#define hm_for_each_entry(i, va, level, base, start, end)				\
	for (uint64_t _sz = hm_level_size(level),					\
		      _hi = HM_MIN((uint64_t)(end), (uint64_t)(base) + _sz * HM_PTRS),	\
		      va = HM_ALIGN_DOWN(HM_MAX((uint64_t)(start), (uint64_t)(base)), _sz), \
		      i = hm_level_index(va, level);					\
	     va < _hi; va += _sz, i++)

static inline bool pt_none(hm_pte_t e) { return e == 0; }
static inline bool pt_present(hm_pte_t e) { return e & HM_PTE_P; }
static inline bool pt_protnone(hm_pte_t e) { return !(e & HM_PTE_P) && (e & HM_PTE_PROTNONE); }
/* Something is mapped here (present, or PROT_NONE). */
static inline bool pt_mapped(hm_pte_t e) { return pt_present(e) || pt_protnone(e); }
static inline bool pt_is_swp(hm_pte_t e) { return e && !pt_mapped(e); }

/* Does this mapped entry at @level map memory (rather than a table)? */
static inline bool pt_leaf(hm_pte_t e, unsigned level)
{
	return level == 0 || (e & HM_PTE_PS);
}

static inline uint32_t pt_pfn(hm_pte_t e, unsigned level)
{
	uint64_t addr = e & HM_PTE_ADDR;

	if (level > 0 && (e & HM_PTE_PS))	/* bit 12 is PAT in a huge leaf */
		addr &= ~((1ull << hm_level_shift(level)) - 1);
	return (uint32_t)(addr >> HM_PAGE_SHIFT);
}

/* Upper-level entry pointing at a table: user, writable, executable; the
 * leaf decides. Accessed is preset so the walker never writes it back. */
static inline hm_pte_t pt_mk_table(uint32_t pfn)
{
	return ((uint64_t)pfn << HM_PAGE_SHIFT) | HM_PTE_P | HM_PTE_RW | HM_PTE_US | HM_PTE_A;
}

/* The permission bits of a leaf for PROT_* @prot. PROT_WRITE implies
 * read (x86 cannot express write-only); no PROT_* at all is PROT_NONE. */
static inline hm_pte_t pt_prot_bits(int prot)
{
	if (!(prot & (PROT_READ | PROT_WRITE | PROT_EXEC)))
		return HM_PTE_PROTNONE | HM_PTE_NX;
	hm_pte_t b = HM_PTE_P | HM_PTE_US;
	if (prot & PROT_WRITE)
		b |= HM_PTE_RW;
	if (!(prot & PROT_EXEC))
		b |= HM_PTE_NX;
	return b;
}

static inline hm_pte_t pt_mk_leaf(uint32_t pfn, unsigned level, hm_pte_t prot_bits)
{
	hm_pte_t e = ((uint64_t)pfn << HM_PAGE_SHIFT) | prot_bits;

	if (level > 0)
		e |= HM_PTE_PS;
	return e;
}

/* Replace the permission bits of a mapped leaf, keeping frame, A and D. */
static inline hm_pte_t pt_modify_prot(hm_pte_t e, hm_pte_t prot_bits)
{
	return (e & ~HM_PTE_PERM) | prot_bits;
}

static inline int pt_prot(hm_pte_t e)
{
	if (!pt_present(e))
		return PROT_NONE;
	int p = PROT_READ;
	if (e & HM_PTE_RW)
		p |= PROT_WRITE;
	if (!(e & HM_PTE_NX))
		p |= PROT_EXEC;
	return p;
}

static inline bool pt_writable(hm_pte_t e) { return (e & (HM_PTE_P | HM_PTE_RW)) == (HM_PTE_P | HM_PTE_RW); }

/*
 * The bits the layers above read and change, by what they mean: no x86 bit
 * is named outside this file. On entries and on permission bits alike.
 */
static inline bool pt_write_bit(hm_pte_t e) { return e & HM_PTE_RW; }	/* present or not */
static inline bool pt_user(hm_pte_t e) { return e & HM_PTE_US; }
static inline bool pt_young(hm_pte_t e) { return e & HM_PTE_A; }
static inline bool pt_dirty(hm_pte_t e) { return e & HM_PTE_D; }
static inline hm_pte_t pt_wrprotect(hm_pte_t e) { return e & ~HM_PTE_RW; }
static inline hm_pte_t pt_mkold(hm_pte_t e) { return e & ~HM_PTE_A; }
static inline hm_pte_t pt_mkyoung(hm_pte_t e) { return e | HM_PTE_A; }
static inline hm_pte_t pt_mkdirty(hm_pte_t e) { return e | HM_PTE_D; }
/* Young and dirty: what a write through it would leave. */
static inline hm_pte_t pt_mkyoung_dirty(hm_pte_t e) { return e | HM_PTE_A | HM_PTE_D; }
/* Writable and dirty: a write through it needs no update of the entry. */
static inline bool pt_write_dirty(hm_pte_t e)
{
	return (e & (HM_PTE_RW | HM_PTE_D)) == (HM_PTE_RW | HM_PTE_D);
}
/* Writable, young and dirty: no walker changes it any more. */
static inline bool pt_settled(hm_pte_t e)
{
	const hm_pte_t settled = HM_PTE_P | HM_PTE_RW | HM_PTE_A | HM_PTE_D;

	return (e & settled) == settled;
}
static inline hm_pte_t pt_perm(hm_pte_t e) { return e & HM_PTE_PERM; }
/* Equal but for A and D, which walkers set at any time. */
static inline bool pt_same_but_ad(hm_pte_t a, hm_pte_t b) { return (a & ~HM_PTE_KEEP) == (b & ~HM_PTE_KEEP); }
/* A huge leaf of @level (1 or 2) without its frame: permission, A and D,
 * and PS if its pieces are huge too (level 2): what each piece keeps. */
static inline hm_pte_t pt_split_bits(hm_pte_t e, unsigned level)
{
	return e & ~(HM_PTE_ADDR | (level == 1 ? HM_PTE_PS : 0));
}
/* Bits that no table entry made by pt_mk_table has (hm_check). */
static inline hm_pte_t pt_table_stray_bits(hm_pte_t e)
{
	return e & ~(HM_PTE_ADDR | HM_PTE_P | HM_PTE_RW | HM_PTE_US | HM_PTE_A);
}

static inline hm_pte_t pt_mk_swp(unsigned type, uint64_t offset)
{
	return ((uint64_t)(type & HM_SWP_TYPE_MASK) << HM_SWP_TYPE_SHIFT) |
	       ((offset & ((1ull << HM_SWP_OFFSET_BITS) - 1)) << HM_SWP_OFFSET_SHIFT) |
	       (1ull << 58);	/* never zero, even for type 0 offset 0 */
}
static inline unsigned pt_swp_type(hm_pte_t e) { return (unsigned)((e >> HM_SWP_TYPE_SHIFT) & HM_SWP_TYPE_MASK); }
static inline uint64_t pt_swp_offset(hm_pte_t e)
{
	return (e >> HM_SWP_OFFSET_SHIFT) & ((1ull << HM_SWP_OFFSET_BITS) - 1);
}
/* A swap entry (not a PROT_NONE leaf, nor a leaf held invalid by a split).
 * At level 0 it names one slot; at level 1 the first of the 512 slots of a
 * cluster that hold a whole 2 MiB page. */
static inline bool pt_swp_entry(hm_pte_t e)
{
	return e && !(e & (HM_PTE_P | HM_PTE_PROTNONE | HM_PTE_INVALID)) && pt_swp_type(e) < HM_SWP_MIGRATION_READ;
}
static inline hm_pte_t pt_mk_swp_entry(uint64_t slot) { return pt_mk_swp(0, slot); }
static inline bool pt_is_migration(hm_pte_t e)
{
	return e && !(e & (HM_PTE_P | HM_PTE_PROTNONE | HM_PTE_INVALID)) &&
	       pt_swp_type(e) >= HM_SWP_MIGRATION_READ;
}

/*
 * Migration entries (mm/migrate.c): a leaf of a folio on its way to other
 * frames. It keeps all the leaf was, so that the leaf can be rebuilt on the
 * new frames (or the old ones, if the move is given up): the frame in
 * offset bits 0-31, the level in 32-33, the leaf's bits 0-9 (P, RW, US, A,
 * D, PROTNONE...) in 34-43 and NX in 44. Type 31 when the leaf was
 * writable, 30 otherwise, as the kernel's.
 */
#define HM_MIG_LEVEL_SHIFT	32
#define HM_MIG_BITS_SHIFT	34
#define HM_MIG_BITS_MASK	0x3ffull
#define HM_MIG_NX		(1ull << 44)

static inline hm_pte_t pt_mk_migration(hm_pte_t leaf, unsigned level)
{
	uint64_t off = (uint64_t)pt_pfn(leaf, level) | ((uint64_t)level << HM_MIG_LEVEL_SHIFT) |
		       ((leaf & HM_MIG_BITS_MASK) << HM_MIG_BITS_SHIFT) | ((leaf & HM_PTE_NX) ? HM_MIG_NX : 0);

	return pt_mk_swp(pt_writable(leaf) ? HM_SWP_MIGRATION_WRITE : HM_SWP_MIGRATION_READ, off);
}
static inline uint32_t pt_migration_pfn(hm_pte_t e) { return (uint32_t)pt_swp_offset(e); }
static inline unsigned pt_migration_level(hm_pte_t e)
{
	return (unsigned)(pt_swp_offset(e) >> HM_MIG_LEVEL_SHIFT) & 3;
}
static inline bool pt_migration_write(hm_pte_t e) { return pt_swp_type(e) == HM_SWP_MIGRATION_WRITE; }
/* The leaf the entry stands for, on frame @pfn (the folio's new frames, or
 * its old ones). */
static inline hm_pte_t pt_migration_leaf(hm_pte_t e, uint32_t pfn)
{
	uint64_t off = pt_swp_offset(e);
	hm_pte_t bits = (off >> HM_MIG_BITS_SHIFT) & HM_MIG_BITS_MASK;

	if (off & HM_MIG_NX)
		bits |= HM_PTE_NX;
	return pt_mk_leaf(pfn, pt_migration_level(e), bits & ~HM_PTE_PS);
}

/*
 * Entries are read by lock-free walkers, so every access is atomic.
 *
 * Every store into a table goes through the helpers below: with
 * HM_PROTECT_TABLES the table is read-only outside a write window
 * (protect.h), and each helper opens one around its store. A loop that
 * stores into one table opens a window for the whole loop
 * (pt_win_open/pt_win_close, on any entry of the table) and uses the __
 * variants inside, which only store: with protection off that is one
 * predictable test per table instead of one per entry. Windows nest.
 */
typedef uintptr_t pt_win_t;

static inline pt_win_t pt_win_open(const hm_pte_t *p) { return hm_ptp_open(p); }
static inline void pt_win_close(const hm_pte_t *p, pt_win_t w) { hm_ptp_close(p, w); }

static inline hm_pte_t pt_get(const hm_pte_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

/* Inside a window. */
static inline void __pt_set(hm_pte_t *p, hm_pte_t e) { __atomic_store_n(p, e, __ATOMIC_RELEASE); }
/* A store no walker orders anything against (its value is settled; see
 * fork's wrprotect). */
static inline void __pt_set_relaxed(hm_pte_t *p, hm_pte_t e) { __atomic_store_n(p, e, __ATOMIC_RELAXED); }
/* Change a present entry without losing an A/D update made by a walker
 * between our read and our write. */
static inline hm_pte_t __pt_update(hm_pte_t *p, hm_pte_t clear, hm_pte_t set)
{
	hm_pte_t old = pt_get(p);

	while (!__atomic_compare_exchange_n(p, &old, (old & ~clear) | set, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		;
	return old;
}

static inline hm_pte_t __pt_xchg(hm_pte_t *p, hm_pte_t e) { return __atomic_exchange_n(p, e, __ATOMIC_ACQ_REL); }

static inline void pt_set(hm_pte_t *p, hm_pte_t e)
{
	pt_win_t w = pt_win_open(p);

	__pt_set(p, e);
	pt_win_close(p, w);
}

static inline hm_pte_t pt_xchg(hm_pte_t *p, hm_pte_t e)
{
	pt_win_t w = pt_win_open(p);
	hm_pte_t old = __pt_xchg(p, e);

	pt_win_close(p, w);
	return old;
}

static inline hm_pte_t pt_get_and_clear(hm_pte_t *p) { return pt_xchg(p, 0); }

/* Make the leaf at @p invalid (see HM_PTE_INVALID) and return what it was,
 * with the A/D bits a walker set up to that moment. */
static inline hm_pte_t pt_invalidate(hm_pte_t *p)
{
	pt_win_t w = pt_win_open(p);
	hm_pte_t e = __atomic_load_n(p, __ATOMIC_ACQUIRE);

	while (!__atomic_compare_exchange_n(p, &e, (e & ~HM_PTE_P) | HM_PTE_INVALID, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
	pt_win_close(p, w);
	return e;
}

static inline bool pt_cmpxchg(hm_pte_t *p, hm_pte_t old, hm_pte_t new)
{
	pt_win_t w = pt_win_open(p);
	bool done = __atomic_compare_exchange_n(p, &old, new, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);

	pt_win_close(p, w);
	return done;
}

static inline hm_pte_t pt_update(hm_pte_t *p, hm_pte_t clear, hm_pte_t set)
{
	pt_win_t w = pt_win_open(p);
	hm_pte_t old = __pt_update(p, clear, set);

	pt_win_close(p, w);
	return old;
}

/* Atomic changes of single bits, keeping what walkers set meanwhile; each
 * returns the entry as it was. */
static inline hm_pte_t pt_wrprotect_at(hm_pte_t *p) { return pt_update(p, HM_PTE_RW, 0); }
static inline hm_pte_t __pt_wrprotect_at(hm_pte_t *p) { return __pt_update(p, HM_PTE_RW, 0); }
static inline hm_pte_t pt_mkwrite_at(hm_pte_t *p) { return pt_update(p, 0, HM_PTE_RW); }
/* Writable, young and dirty: a write fault's reuse in place. */
static inline hm_pte_t pt_mkwrite_dirty_at(hm_pte_t *p) { return pt_update(p, 0, HM_PTE_RW | HM_PTE_A | HM_PTE_D); }
static inline hm_pte_t pt_mkold_at(hm_pte_t *p) { return pt_update(p, HM_PTE_A, 0); }
/* New permission bits for a leaf (mprotect), inside a window. */
static inline hm_pte_t __pt_set_perm_at(hm_pte_t *p, hm_pte_t perm) { return __pt_update(p, HM_PTE_PERM, perm); }

/* Zero the whole table @t, which no walker can reach. */
static inline void pt_clear_table(hm_pte_t *t)
{
	pt_win_t w = pt_win_open(t);

	__builtin_memset(t, 0, HM_PTRS * sizeof(*t));
	pt_win_close(t, w);
}

/* The public header names the same bits for hm_walk's users. */
#ifdef HM_ENTRY_PRESENT
_Static_assert(HM_ENTRY_PRESENT == HM_PTE_P && HM_ENTRY_WRITE == HM_PTE_RW && HM_ENTRY_USER == HM_PTE_US &&
	       HM_ENTRY_PWT == HM_PTE_PWT && HM_ENTRY_PCD == HM_PTE_PCD && HM_ENTRY_ACCESSED == HM_PTE_A &&
	       HM_ENTRY_DIRTY == HM_PTE_D && HM_ENTRY_HUGE == HM_PTE_PS && HM_ENTRY_GLOBAL == HM_PTE_G &&
	       HM_ENTRY_NX == HM_PTE_NX && HM_ENTRY_FRAME == HM_PTE_ADDR,
	       "hugemm.h's HM_ENTRY_* bits are the entries' own");
#endif

#endif /* HM_PGTABLE_ENTRY_H */
