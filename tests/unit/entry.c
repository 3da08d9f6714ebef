/* SPDX-License-Identifier: MIT */
/*
 * The x86-64 entry format, bit for bit, against values written out from the
 * Intel SDM's layout (vol. 3A, 4.5), not computed with our own helpers.
 */
#include "harness.h"
#include "../../src/pgtable/entry.h"

static void table_links(void)
{
	/* P | RW | US | A, frame 0x1234 */
	CHECK_EQ(pt_mk_table(0x1234), 0x1234027ull);
	CHECK(pt_present(pt_mk_table(7)));
	CHECK(!pt_leaf(pt_mk_table(7), 1));
	CHECK(pt_leaf(pt_mk_table(7), 0));	/* at level 0 everything is a leaf */
	CHECK_EQ(pt_pfn(pt_mk_table(0xabcdef), 2), 0xabcdef);
}

static void leaves(void)
{
	/* 4 KiB, read/write, no exec: P|RW|US + NX */
	CHECK_EQ(pt_mk_leaf(0x1234, 0, pt_prot_bits(PROT_READ | PROT_WRITE)), 0x8000000001234007ull);
	/* 2 MiB at pfn 0x200 (2 MiB), read+exec: P|US|PS */
	CHECK_EQ(pt_mk_leaf(0x200, 1, pt_prot_bits(PROT_READ | PROT_EXEC)), 0x200085ull);
	/* 1 GiB at 1 GiB, read-only: P|US|PS + NX */
	CHECK_EQ(pt_mk_leaf(0x40000, 2, pt_prot_bits(PROT_READ)), 0x8000000040000085ull);
	/* Bit 12 of a huge leaf is PAT, not part of the frame. */
	CHECK_EQ(pt_pfn(0x201085ull, 1), 0x200);
	CHECK_EQ(pt_pfn(0x40001085ull, 2), 0x40000);
	CHECK_EQ(pt_pfn(0x201005ull, 0), 0x201);
	/* Write-only is read/write on x86. */
	CHECK_EQ(pt_prot(pt_mk_leaf(1, 0, pt_prot_bits(PROT_WRITE))), PROT_READ | PROT_WRITE);
	CHECK_EQ(pt_prot(pt_mk_leaf(1, 0, pt_prot_bits(PROT_READ | PROT_WRITE | PROT_EXEC))),
		 PROT_READ | PROT_WRITE | PROT_EXEC);
	CHECK(pt_writable(0x1234007ull));
	CHECK(!pt_writable(0x1234005ull));
}

static void protnone_and_swap(void)
{
	hm_pte_t n = pt_mk_leaf(0x99, 0, pt_prot_bits(PROT_NONE));

	CHECK(!pt_present(n));
	CHECK(pt_protnone(n));
	CHECK(pt_mapped(n));
	CHECK(!pt_is_swp(n));
	CHECK_EQ(pt_pfn(n, 0), 0x99);
	CHECK_EQ(pt_prot(n), PROT_NONE);

	hm_pte_t s = pt_mk_swp(3, 0x123456789ull);
	CHECK(!pt_none(s) && !pt_present(s) && !pt_protnone(s) && pt_is_swp(s));
	CHECK_EQ(pt_swp_type(s), 3);
	CHECK_EQ(pt_swp_offset(s), 0x123456789ull);
	CHECK(!pt_is_migration(s));
	CHECK(pt_is_migration(pt_mk_swp(HM_SWP_MIGRATION_WRITE, 1)));
	CHECK(!pt_none(pt_mk_swp(0, 0)));	/* never confused with an empty entry */
}

static void modify_keeps_frame_and_ad(void)
{
	hm_pte_t e = pt_mk_leaf(0x200, 1, pt_prot_bits(PROT_READ | PROT_WRITE)) | HM_PTE_A | HM_PTE_D;
	hm_pte_t r = pt_modify_prot(e, pt_prot_bits(PROT_READ));

	CHECK_EQ(r & (HM_PTE_A | HM_PTE_D | HM_PTE_PS), HM_PTE_A | HM_PTE_D | HM_PTE_PS);
	CHECK_EQ(pt_pfn(r, 1), 0x200);
	CHECK_EQ(pt_prot(r), PROT_READ);
	hm_pte_t none = pt_modify_prot(e, pt_prot_bits(PROT_NONE));
	CHECK(pt_protnone(none) && pt_pfn(none, 1) == 0x200);
	CHECK_EQ(pt_prot(pt_modify_prot(none, pt_prot_bits(PROT_READ | PROT_WRITE))), PROT_READ | PROT_WRITE);
}

/* A migration entry rebuilds the leaf it stands for, at every level, on
 * the old frame or a new one. */
static void migration_entries(void)
{
	static const int prots[] = { PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC,
				     PROT_READ | PROT_WRITE | PROT_EXEC };

	for (unsigned level = 0; level <= 2; level++) {
		for (unsigned p = 0; p < sizeof(prots) / sizeof(prots[0]); p++) {
			for (hm_pte_t ad = 0; ad <= (HM_PTE_A | HM_PTE_D); ad += HM_PTE_A) {
				uint32_t pfn = 0xfff80000u >> (9 * level) << (9 * level);
				hm_pte_t leaf = pt_mk_leaf(pfn, level, pt_prot_bits(prots[p])) | ad;
				hm_pte_t m = pt_mk_migration(leaf, level);

				CHECK(pt_is_migration(m));
				CHECK(!pt_swp_entry(m) && !pt_mapped(m) && !pt_none(m));
				CHECK_EQ(pt_migration_pfn(m), pfn);
				CHECK_EQ(pt_migration_level(m), level);
				CHECK_EQ(pt_migration_write(m), (prots[p] & PROT_WRITE) != 0);
				CHECK_EQ(pt_migration_leaf(m, pfn), leaf);
				hm_pte_t moved = pt_migration_leaf(m, 0x40000);
				CHECK_EQ(pt_pfn(moved, level), 0x40000);
				CHECK_EQ(moved & ~HM_PTE_ADDR, leaf & ~HM_PTE_ADDR);
			}
		}
	}
	/* Neither a swap entry, nor a PROT_NONE leaf, nor an invalid one. */
	CHECK(!pt_is_migration(pt_mk_swp_entry(5)));
	CHECK(!pt_is_migration(pt_mk_leaf(1, 0, pt_prot_bits(PROT_NONE))));
	hm_pte_t inv = (pt_mk_leaf(1, 1, pt_prot_bits(PROT_READ | PROT_WRITE)) | HM_PTE_A | HM_PTE_D | HM_PTE_PCD |
			HM_PTE_PWT) & ~HM_PTE_P;
	CHECK(!pt_is_migration(inv | HM_PTE_INVALID));
}

static void indexes(void)
{
	uint64_t va = 0x00007f12345ff000ull;

	CHECK_EQ(hm_level_index(va, 0), (va >> 12) & 511);
	CHECK_EQ(hm_level_index(va, 3), (va >> 39) & 511);
	CHECK_EQ(hm_level_index(0x0002000000000000ull, 4), 2);	/* 5-level: bits 48-56 */
	CHECK_EQ(hm_level_size(1), 2ull << 20);
	CHECK_EQ(hm_level_size(2), 1ull << 30);
}

T_MAIN(T(table_links), T(leaves), T(protnone_and_swap), T(modify_keeps_frame_and_ad), T(migration_entries),
       T(indexes))
