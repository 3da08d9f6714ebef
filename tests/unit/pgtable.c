/* SPDX-License-Identifier: MIT */
/* The page-table cache, deposit/withdraw, RCU-deferred freeing, walking. */
#include "harness.h"
#include "../../src/mm/mm.h"

static void cache_blocks(void)
{
	struct hm_phys ph;
	struct hm_ptcache pc;
	uint32_t t[600];

	REQUIRE(hm_phys_init(&ph, 64 * MiB, 1, false) == 0);
	REQUIRE(hm_ptcache_init(&pc, &ph, false) == 0);
	uint64_t free0 = hm_phys_nr_free(&ph);
	for (int i = 0; i < 600; i++)
		t[i] = hm_pt_alloc(&pc, 0, 1);
	/* The first 512 come from one 2 MiB block, all zero and marked. */
	unsigned same_block = 0, marked = 0;
	for (int i = 0; i < 512; i++) {
		same_block += (t[i] >> 9) == (t[0] >> 9);
		marked += (hm_pfn_page(&ph, t[i])->flags & PG_TABLE) != 0;
	}
	CHECK_EQ(same_block, 512);
	CHECK_EQ(marked, 512);
	CHECK_EQ(hm_phys_nr_free(&ph), free0 - 2 * 512);
	CHECK_EQ(pc.nr_tables, 600);
	CHECK_EQ(pc.nr_free_slots, 1024 - 600);
	for (int i = 0; i < 600; i++)
		hm_pt_free(&pc, t[i]);
	CHECK_EQ(pc.nr_tables, 0);
	/* One empty block is kept as a spare, the other went back. */
	CHECK_EQ(pc.nr_free_slots, 512);
	CHECK_EQ(hm_phys_nr_free(&ph), free0 - 512);
	CHECK_EQ(hm_ptcache_shrink(&pc), 512);
	CHECK_EQ(hm_phys_nr_free(&ph), free0);
	CHECK(!(hm_pfn_page(&ph, t[0])->flags & (PG_TABLE | PG_PT_FREE)));
	hm_ptcache_fini(&pc);
	hm_phys_fini(&ph);
}

static void cache_fallback_single(void)
{
	struct hm_phys ph;
	struct hm_ptcache pc;

	REQUIRE(hm_phys_init(&ph, 4 * MiB, 1, false) == 0);
	REQUIRE(hm_ptcache_init(&pc, &ph, false) == 0);
	/* Break up memory so no 2 MiB block is free. */
	uint32_t a = hm_alloc_pages(&ph, 0, 0, 0), b = hm_alloc_pages(&ph, 0, 9, 0);
	REQUIRE(a != HM_PFN_NONE && b != HM_PFN_NONE);
	uint32_t t = hm_pt_alloc(&pc, 1, 9);
	CHECK(t != HM_PFN_NONE);
	CHECK_EQ(pc.nr_single, 1);
	CHECK(!(hm_pfn_page(&ph, t)->flags & PG_PT_SLOT));
	hm_pt_free(&pc, t);
	CHECK_EQ(pc.nr_single, 0);
	hm_free_pages(&ph, a, 0);
	hm_free_pages(&ph, b, 9);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_ptcache_fini(&pc);
	hm_phys_fini(&ph);
}

static void two_level_deposit(void)
{
	struct hm_phys ph;
	struct hm_ptcache pc;

	REQUIRE(hm_phys_init(&ph, 64 * MiB, 1, false) == 0);
	REQUIRE(hm_ptcache_init(&pc, &ph, false) == 0);
	uint32_t pud = hm_pt_alloc(&pc, 2, 1), pmd = hm_pt_alloc(&pc, 1, 1), pte[HM_PTRS];

	for (unsigned i = 0; i < HM_PTRS; i++) {
		pte[i] = hm_pt_alloc(&pc, 0, 1);
		hm_pt_deposit(&pc, pmd, pte[i]);
	}
	hm_pt_deposit(&pc, pud, pmd);
	CHECK_EQ(pc.nr_deposited, 513);
	/* The PMD table's own list survives its being on the PUD's list. */
	CHECK_EQ(hm_ptdesc(&ph, pmd)->nr_deposited, 512);
	CHECK_EQ(hm_ptdesc(&ph, pmd)->deposit_head, pte[511]);
	CHECK_EQ(hm_ptdesc(&ph, pud)->deposit_head, pmd);
	CHECK_EQ(hm_pt_withdraw(&pc, pud), pmd);
	CHECK_EQ(hm_pt_withdraw(&pc, pud), HM_PFN_NONE);
	unsigned lifo = 0;
	for (unsigned i = HM_PTRS; i-- > 0;)
		lifo += hm_pt_withdraw(&pc, pmd) == pte[i];
	CHECK_EQ(lifo, 512);
	CHECK_EQ(pc.nr_deposited, 0);
	for (unsigned i = 0; i < HM_PTRS; i++)
		hm_pt_free(&pc, pte[i]);
	hm_pt_free(&pc, pmd);
	hm_pt_free(&pc, pud);
	CHECK_EQ(pc.nr_tables, 0);
	hm_ptcache_fini(&pc);
	hm_phys_fini(&ph);
}

static void rcu_deferred_free(void)
{
	struct hm_phys ph;
	struct hm_ptcache pc;
	struct hm_gather g;
	uint64_t gen = 0;

	REQUIRE(hm_phys_init(&ph, 64 * MiB, 1, false) == 0);
	REQUIRE(hm_ptcache_init(&pc, &ph, false) == 0);
	uint32_t t = hm_pt_alloc(&pc, 0, 1), u = hm_pt_alloc(&pc, 0, 1);
	uint64_t slots = pc.nr_free_slots;

	hm_gather_init(&g, &pc, &gen);
	hm_gather_table(&g, t);
	hm_gather_table(&g, u);
	/* Gathering only records: the tables are in use until the flush. */
	CHECK(hm_pfn_page(&ph, t)->flags & PG_TABLE);
	CHECK_EQ(pc.nr_tables, 2);
	hm_gather_finish(&g);
	CHECK_EQ(gen, 1);
	/* The flush does not wait: pending until a grace period has passed
	 * (unless the callback already ran). */
	CHECK(pc.nr_tables == 0);
	hm_rcu_barrier();
	CHECK_EQ(pc.nr_pending, 0);
	CHECK_EQ(pc.nr_free_slots, slots + 2);
	CHECK(hm_pfn_page(&ph, t)->flags & PG_PT_FREE);
	/* Per-table fallback when a batch cannot be allocated. */
	t = hm_pt_alloc(&pc, 0, 1);
	hm_fail_arm(&ph.fail, 1, false);
	hm_gather_init(&g, &pc, &gen);
	CHECK_EQ(ph.fail.hits, 1);
	CHECK(g.b == &g.local);
	hm_gather_table(&g, t);
	hm_gather_finish(&g);	/* nothing batched: the rcu_head carries it */
	CHECK_EQ(gen, 2);
	hm_rcu_barrier();
	CHECK_EQ(pc.nr_pending, 0);
	CHECK(hm_pfn_page(&ph, t)->flags & PG_PT_FREE);
	/* A gather that flushes nothing bumps nothing. */
	hm_gather_init(&g, &pc, &gen);
	hm_gather_finish(&g);
	CHECK_EQ(gen, 2);
	hm_ptcache_fini(&pc);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_phys_fini(&ph);
}

/*
 * A table queued for freeing through its own rcu_head while a late unlocker
 * (or a walker) still touches its split lock and deposit links: the
 * callback must be unharmed. With the rcu_head overlaying the lock, as it
 * once did, the lock word written here corrupted the queued callback.
 */
static void rcu_head_apart_from_lock(void)
{
	struct hm_phys ph;
	struct hm_ptcache pc;
	struct hm_gather g;
	uint64_t gen = 0;

	REQUIRE(hm_phys_init(&ph, 64 * MiB, 1, false) == 0);
	REQUIRE(hm_ptcache_init(&pc, &ph, false) == 0);
	uint32_t t = hm_pt_alloc(&pc, 1, 1);
	struct hm_page *pg = hm_pfn_page(&ph, t);
	struct hm_ptdesc *d = hm_ptdesc(&ph, t);
	uint64_t slots = pc.nr_free_slots;

	hm_fail_arm(&ph.fail, 1, false);	/* no batch: the per-table rcu_head */
	hm_gather_init(&g, &pc, &gen);
	hm_gather_table(&g, t);
	hm_rcu_read_lock();	/* hold the grace period off */
	hm_gather_finish(&g);
	CHECK(pg->flags & PG_PT_PENDING);
	for (int i = 0; i < 1000; i++) {
		hm_spin_lock(&d->ptl);
		hm_spin_unlock(&d->ptl);
	}
	__atomic_store_n(&d->ptl, 0xdeadbeefu, __ATOMIC_RELAXED);	/* a stray late store */
	__atomic_store_n(&d->ptl, 0, __ATOMIC_RELAXED);
	d->deposit_next = HM_PFN_NONE;
	d->deposit_head = HM_PFN_NONE;
	d->nr_deposited = 0;
	hm_rcu_read_unlock();
	hm_rcu_barrier();
	CHECK(pg->flags & PG_PT_FREE);
	CHECK_EQ(pc.nr_pending, 0);
	CHECK_EQ(pc.nr_free_slots, slots + 1);
	CHECK_EQ(pc.nr_tables, 0);
	hm_ptcache_fini(&pc);
	CHECK_EQ(hm_phys_nr_free(&ph), ph.nr_frames);
	hm_phys_fini(&ph);
}

/* 5-level tables reach addresses that 4-level ones cannot. */
static void five_level(void)
{
	struct hm_config cfg;
	struct hm_system *sys;
	struct hm_mm *mm;
	uint64_t a = 0, v = 0x5a5a, w = 0;
	unsigned level;

	hm_config_default(&cfg);
	cfg.phys_bytes = 64 * MiB;
	cfg.levels = 5;
	REQUIRE(hm_system_create(&cfg, &sys) == 0);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	CHECK_EQ(hm_mmap(mm, 1ull << 52, 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, &a), 0);
	CHECK_EQ(hm_write(mm, a + 8, &v, 8), 0);
	CHECK_EQ(hm_read(mm, a + 8, &w, 8), 0);
	CHECK_EQ(w, v);
	hm_down_read(&mm->mmap_lock);
	hm_pte_t *e = hm_pt_walk(&sys->phys, mm->root, 4, a, &level);
	CHECK_EQ(level, 0);
	CHECK(pt_present(*e) && (*e & HM_PTE_A) && (*e & HM_PTE_D));
	hm_up_read(&mm->mmap_lock);
	CHECK_EQ(hm_check(sys), 0);
	hm_system_destroy(sys);

	cfg.levels = 4;
	REQUIRE(hm_system_create(&cfg, &sys) == 0);
	REQUIRE(hm_mm_create(sys, &mm) == 0);
	CHECK_EQ(hm_mmap(mm, 1ull << 52, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, &a), -ENOMEM);
	hm_system_destroy(sys);
}

/* The walker sets A on a read and D only on a write, as the hardware does. */
static void accessed_dirty(void)
{
	struct hm_system *sys = t_system(64 * MiB, HM_THP_NEVER, HM_THP_NEVER, HM_DEPOSIT_EAGER);
	struct hm_mm *mm;
	uint64_t a, v = 0;
	unsigned level;

	REQUIRE(hm_mm_create(sys, &mm) == 0);
	REQUIRE(hm_mmap(mm, 0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, &a) == 0);
	CHECK_EQ(hm_read(mm, a, &v, 8), 0);
	hm_pte_t *e = hm_pt_walk(&sys->phys, mm->root, 3, a, &level);
	CHECK((*e & HM_PTE_A) && !(*e & HM_PTE_D));
	CHECK_EQ(hm_write(mm, a, &v, 8), 0);	/* TLB has a clean entry: walk again */
	CHECK(*e & HM_PTE_D);
	hm_system_destroy(sys);
}

T_MAIN(T(cache_blocks), T(cache_fallback_single), T(two_level_deposit), T(rcu_deferred_free),
       T(rcu_head_apart_from_lock),
       T(five_level), T(accessed_dirty))
