/* SPDX-License-Identifier: MIT */
/*
 * hugemm — a user-space virtual-memory manager.
 *
 * hugemm owns a block of "physical" memory and manages address spaces on it
 * with bit-exact x86-64 page tables: anonymous private memory backed by
 * 4 KiB pages and transparent 2 MiB (PMD) and 1 GiB (PUD) huge pages.
 *
 * Conventions, for every call below:
 *  - Return 0 or a negative errno (-EINVAL, -ENOMEM, -EFAULT, -EIO, ...).
 *    errno is never set, and bad input never aborts: it is rejected and
 *    changes nothing. -EIO: a page in swap could not be read back (the
 *    swap file was damaged or truncated underneath); only accesses to that
 *    page fail, and nothing else is lost.
 *  - PROT_*, MAP_* and MADV_* are the host's own values from <sys/mman.h>.
 *  - Ranges are [addr, addr + len): start inclusive, end exclusive.
 *  - "Context" says which threads may call; "Must not" lists what a caller
 *    must not be doing at the time.  All calls may block (they take mutexes;
 *    hm_fork, hm_mm_destroy, hm_drain and hm_system_destroy wait for an RCU
 *    grace period, and a fault that finds no free memory waits for memory
 *    freed by unmaps); none may be called from a signal handler.
 */
#ifndef HUGEMM_H
#define HUGEMM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HM_API __attribute__((visibility("default")))
#else
#define HM_API
#endif

struct hm_system;
struct hm_mm;

/* Per-size transparent huge page policy, as in sysfs. Where the 2 MiB
 * policy allows a huge page, a read of memory never written maps the huge
 * zero page instead of taking one (see hm_read); that holds in ranges where
 * 1 GiB pages are allowed too: a read never takes a 1 GiB page there. */
#define HM_THP_NEVER	0
#define HM_THP_MADVISE	1	/* only in ranges given MADV_HUGEPAGE */
#define HM_THP_ALWAYS	2	/* everywhere but MADV_NOHUGEPAGE ranges */

/* Page tables for later splits: deposited when a huge page is mapped
 * (eager: a split never allocates), or allocated at split time (lazy: a
 * split may fail with -ENOMEM, and costs no memory until then). */
#define HM_DEPOSIT_EAGER 0
#define HM_DEPOSIT_LAZY	 1

/* What a write to a huge page shared after fork copies (hm_config.cow):
 * the 4 KiB written (the huge mapping is split down to it; default), or the
 * 2 MiB around it (a 1 GiB mapping is split to 2 MiB ones and the written
 * 2 MiB copied into a new 2 MiB page, falling back to 4 KiB if none can be
 * had). A page mapped by the writer alone is always reused in place. */
#define HM_COW_4K	0
#define HM_COW_2M	1

/* hm_config.flags */
#define HM_CHECK	 0x1u	/* run hm_check() after every operation that
				 * changes state (map calls, faults) */
#define HM_POPULATE_ARENA 0x2u	/* touch all of physical memory at creation, so
				 * the host backs it before the first fault */
#define HM_KHUGEPAGED	 0x4u	/* run the background collapser in a thread:
				 * hm_khugepaged_scan of 4096 pages every
				 * 10 ms, with no lock held while it sleeps;
				 * hm_system_destroy stops it first */
#define HM_PREZERO	 0x8u	/* idle zeroing: a thread zeroes free 2 MiB
				 * blocks ahead of time (non-temporal
				 * stores) into a pool per node of up to an
				 * eighth of the node (at most 1 GiB), while
				 * a quarter of memory is free; 4 KiB and
				 * 2 MiB faults take zeroed frames from it
				 * and skip their zeroing. The cost moves to
				 * that thread (another CPU), counted in
				 * prezero_pages and prezero_ns; pooled
				 * frames count as free and go back to the
				 * allocator when it runs short.
				 * hm_system_destroy stops the thread. Off
				 * by default */
/*
 * HM_PROTECT_TABLES: write-protect the page tables, so that a stray store
 * into one (a wild pointer in the program, or in hugemm) faults with
 * SIGSEGV instead of corrupting an address space. hugemm's own stores go
 * through helpers that open write access around each one; everything else
 * in this header works unchanged, and reading the tables (hm_walk, a
 * debugger) stays allowed.
 *
 * Where the CPU and the kernel have protection keys (x86 PKU; "pku" and
 * "ospke" in /proc/cpuinfo), the tables' memory carries a key of its own
 * (one of the process's 15, taken at the first such system and kept), and
 * a store opens write access for the calling thread only (WRPKRU, no
 * system call; make bench measured 4 KiB fault-in at 0.8x and a PMD split
 * by mprotect at 0.65x of the unprotected speed). Elsewhere, or with
 * HM_PROTECT_MODE=mprotect in the environment, page protection is used:
 * the tables are read-only, and each store makes its table writable with
 * two mprotect(2) calls (for tests and debugging: 4 KiB faults and splits
 * are 30 to 50 times slower, and during a store any thread may write that
 * one table). Each table block then splits the host's mapping of the
 * arena (vm.max_map_count).
 * With the flag off, protection costs one predictable branch per store.
 */
#define HM_PROTECT_TABLES 0x10u

struct hm_config {
	uint64_t phys_bytes;	/* size of physical memory; default 4 GiB;
				 * rounded down to a multiple of 4 KiB */
	unsigned nr_nodes;	/* memory nodes, for migration; default 1 */
	unsigned levels;	/* page-table levels, 4 or 5; default 4 */
	const char *swap_path;	/* swap file for reclaim, NULL = no swap:
				 * created (or truncated: only a regular
				 * file, never through a symbolic link) and
				 * its space reserved by hm_system_create,
				 * not removed by hm_system_destroy */
	uint64_t swap_bytes;	/* its size: a nonzero multiple of 4 KiB */
	int thp_pud;		/* HM_THP_*; default HM_THP_MADVISE */
	int thp_pmd;		/* HM_THP_*; default HM_THP_ALWAYS */
	int deposit;		/* HM_DEPOSIT_EAGER (default) or HM_DEPOSIT_LAZY */
	unsigned flags;		/* HM_CHECK, HM_POPULATE_ARENA, HM_KHUGEPAGED,
				 * HM_PREZERO, HM_PROTECT_TABLES */
	int cow;		/* HM_COW_4K (default) or HM_COW_2M */
	unsigned khugepaged_max_ptes_none; /* 0..511, default 511, as in sysfs:
				 * a huge page with more zero-filled 4 KiB
				 * pages than this is split under pressure
				 * (the underused-THP shrinker); and
				 * khugepaged collapses no 2 MiB piece
				 * with more empty 4 KiB pages than this */
	unsigned khugepaged_max_ptes_swap; /* 0..511, default 64: khugepaged
				 * collapses no piece with more pages in
				 * swap (it brings those back first) */
	unsigned khugepaged_max_ptes_shared; /* 0..511, default 256: nor one
				 * with more pages shared with another
				 * address space (after fork) */
};

/*
 * hm_config_default - fill @cfg with the defaults listed above.
 * Context: any thread.
 */
HM_API void hm_config_default(struct hm_config *cfg);

/*
 * hm_system_create - create a machine: physical memory, allocator, policy.
 * Returns -EINVAL for a config out of range (phys_bytes < 4 MiB or > 4 TiB,
 * nr_nodes 0 or > 64 or leaving a node under 2 MiB, levels not 4 or 5,
 * unknown policy or flag, khugepaged_max_ptes_none, _swap or _shared > 511, a swap_path with
 * swap_bytes 0 or not a multiple of 4 KiB), -ENOMEM if the host refuses
 * the memory; for a swap file that cannot be made, the error of the
 * system call that failed (-ENOENT, -EACCES, -EISDIR, -ELOOP for a
 * symbolic link, -EINVAL for an existing file not regular, -ENOSPC when the
 * disk cannot hold swap_bytes, ...), and no system: a swap file it created
 * is removed again (one that existed was truncated: give a path of its
 * own).
 * Context: any thread.
 */
HM_API int hm_system_create(const struct hm_config *cfg, struct hm_system **out);

/*
 * hm_system_destroy - destroy every address space left and free the machine.
 * Must not: be called while any other thread uses @sys or one of its mms.
 */
HM_API void hm_system_destroy(struct hm_system *sys);

/*
 * hm_mm_create - a new, empty address space.
 * Context: any thread, concurrently with calls on other mms of @sys.
 */
HM_API int hm_mm_create(struct hm_system *sys, struct hm_mm **out);

/*
 * hm_mm_destroy - unmap everything in @mm and free it; every frame and
 * page table it used is free when this returns (but the huge zero page,
 * which stays until hm_system_destroy: see hm_read).
 * Must not: be called while another thread uses @mm.
 */
HM_API void hm_mm_destroy(struct hm_mm *mm);

/*
 * hm_fork - a new address space that sees @parent's memory as it is now;
 * from then on neither sees the other's writes (copy-on-write at the level
 * each page is mapped; the child's huge pages get deposits of their own).
 * MADV_DONTFORK ranges are not copied. -ENOMEM leaves @parent exactly as
 * it was. Context: any thread; waits for operations under way on @parent.
 */
HM_API int hm_fork(struct hm_mm *parent, struct hm_mm **child);

/*
 * hm_mmap - map anonymous private memory, as mmap(2).
 * @flags must hold MAP_PRIVATE | MAP_ANONYMOUS and may add MAP_FIXED,
 * MAP_FIXED_NOREPLACE, MAP_POPULATE, MAP_NORESERVE.  Without a fixed flag,
 * @addr is a hint; a mapping of 1 GiB or more is placed 1 GiB-aligned, one
 * of 2 MiB or more 2 MiB-aligned.  @len is rounded up to 4 KiB.
 * Errors: -EINVAL (len 0, overflow, bad flags or prot, unaligned fixed
 * address), -EEXIST (MAP_FIXED_NOREPLACE over a mapping), -ENOMEM (no room
 * in the address space, or no memory for the bookkeeping), -EPERM (fixed
 * address below 64 KiB).
 * Context: any thread; serialises with other calls that change @mm.
 */
HM_API int hm_mmap(struct hm_mm *mm, uint64_t addr, uint64_t len, int prot,
		   int flags, uint64_t *out_addr);

/*
 * hm_munmap - as munmap(2). Unaligned @addr or len 0 is -EINVAL; unmapping
 * nothing is 0.  Huge pages partly inside the range are split first (in
 * lazy deposit mode that may fail with -ENOMEM, changing nothing).
 * Accesses started after it returns fault; it does not wait for accesses
 * already under way on other threads (a read or write in flight may still
 * complete), and the frames it frees come back once they have: they count
 * in nr_free_pages at once, and an allocation waits for them if it must.
 * A huge page left partly mapped (here or by MADV_DONTNEED) keeps all its
 * frames until memory runs short: then it is split and its unmapped part
 * freed (deferred split).
 * Context: any thread; serialises with other calls that change @mm.
 */
HM_API int hm_munmap(struct hm_mm *mm, uint64_t addr, uint64_t len);

/*
 * hm_mprotect - as mprotect(2): -EINVAL for unaligned @addr or unknown prot
 * bits, -ENOMEM for a range with a hole (nothing is changed then).  Like
 * hm_munmap, it applies to accesses started after it returns and does not
 * wait for those under way.  Pages still shared after fork stay read-only
 * under PROT_WRITE: the first write copies (or reuses) them; so does the
 * huge zero page (see hm_read), which the first write replaces.
 * Context: any thread; serialises with other calls that change @mm.
 */
HM_API int hm_mprotect(struct hm_mm *mm, uint64_t addr, uint64_t len, int prot);

/*
 * hm_madvise - advice about [addr, addr + len), as madvise(2).  Accepted:
 *   MADV_HUGEPAGE     later faults may map huge pages of the sizes whose
 *                     policy is HM_THP_MADVISE (or HM_THP_ALWAYS);
 *   MADV_NOHUGEPAGE   later faults map no huge page, whatever the policy
 *                     (huge pages mapped already stay);
 *   MADV_DONTNEED     free the range's pages; it reads as zeros afterwards;
 *                     page tables left with nothing in them are freed too
 *                     (pgtable_reclaimed), as after a partial munmap;
 *   MADV_DONTFORK     hm_fork does not copy the range into the child;
 *   MADV_DOFORK       undoes MADV_DONTFORK;
 *   MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED
 *                     hints: accepted and ignored, returning 0 and changing
 *                     nothing (madvise(2) may act on them; we need not).
 *   MADV_PAGEOUT      write the range's pages that this address space alone
 *                     maps to swap and free them (as Linux: pages shared
 *                     after fork are left to hm_reclaim; a 2 MiB page
 *                     the range holds in part is split first, a 1 GiB
 *                     page goes only whole); without swap, or
 *                     with it full, it does what it can and returns 0.
 *   MADV_COLLAPSE     make huge pages of what the range maps now, as
 *                     Linux does: each aligned 2 MiB piece wholly inside
 *                     the range becomes one 2 MiB page (a copy of its
 *                     4 KiB pages, zeros where none is mapped; or, for a
 *                     2 MiB page that was only split, the same page
 *                     mapped whole again, with no copy). An aligned
 *                     1 GiB piece wholly inside the range and inside
 *                     one VMA, where thp_pud is not HM_THP_NEVER,
 *                     becomes one 1 GiB page after its 512 2 MiB pieces,
 *                     only if every one of them did: one 2 MiB piece
 *                     with nothing mapped (or that fails) leaves the
 *                     1 GiB piece as 2 MiB pages. The pieces need only
 *                     that the policy of their size is not
 *                     HM_THP_NEVER and no MADV_NOHUGEPAGE (MADV_HUGEPAGE
 *                     is not needed), and that they lie inside one VMA.
 *                     khugepaged_max_ptes_none, _swap and _shared do not
 *                     apply: pages in swap are read back first, pages
 *                     shared after fork are copied (the other address
 *                     space keeps the old ones). Pieces already huge
 *                     are left as they are. Errors: -EINVAL when the
 *                     range holds no aligned 2 MiB piece, or a piece
 *                     has nothing mapped (4 KiB mappings of the huge
 *                     zero page count as nothing) or may not be huge
 *                     (the rules above);
 *                     -ENOMEM for a hole in the range (then nothing is
 *                     done) or when no huge page can be had, even after
 *                     reclaim and compaction, or its pages in swap
 *                     cannot all be in memory at once (it stops at
 *                     that piece);
 *                     -EAGAIN when a piece stayed busy (pages under
 *                     migration or reclaim, a split under way): try
 *                     again. A piece that fails does not stop the
 *                     others (but -ENOMEM does), and the error returned
 *                     is the last piece's that failed; the pieces
 *                     collapsed stay collapsed (partial progress, as in
 *                     Linux). Counters thp_collapse_alloc(_failed),
 *                     collapse_refold, thp_collapse_pud.
 * Any other advice is -EINVAL.  Unaligned @addr is -EINVAL, len 0 is 0,
 * and a range with a hole is -ENOMEM; an error changes nothing (but for
 * MADV_COLLAPSE's partial progress).
 * Context: any thread; serialises with other calls that change @mm
 * (MADV_COLLAPSE and MADV_PAGEOUT look at the range under the map lock
 * for reading, so faults go on meanwhile; MADV_COLLAPSE changes each piece
 * under it for writing, and waits for a grace period per piece).
 */
HM_API int hm_madvise(struct hm_mm *mm, uint64_t addr, uint64_t len, int advice);

/*
 * hm_read / hm_write - access memory through the MMU (a per-thread
 * software TLB), faulting pages in as a CPU would.  -EFAULT where a CPU
 * would raise SIGSEGV (any byte unmapped, PROT_NONE, or a write to a
 * read-only page): an access spanning pages is checked first and then
 * changes nothing.  -ENOMEM when no memory is left to fault a page in.
 * A failed hm_write wrote no byte: one that spans pages faults them all in
 * before it copies, and map changes wait until it has copied. (Pages it
 * faulted in before running out of memory stay, reading as before.)
 * A failed hm_read may have filled part of @buf.
 * Reading memory never written costs no frame where a 2 MiB page may go
 * (HM_THP_*): the fault maps the huge zero page, one read-only 2 MiB block
 * of zeros that every such mapping shares (created at the first one, kept
 * until hm_system_destroy). The first write there gets a 2 MiB page of its
 * own, or 4 KiB when no 2 MiB page can be had (or MADV_NOHUGEPAGE came
 * since); the rest still reads zeros. Elsewhere a read takes a zeroed page.
 * Context: any thread, concurrently with each other and with calls that
 * change @mm. hm_fork waits for accesses under way; map changes wait only
 * for multi-page writes (they copy under the map lock), and a read or
 * single-page write in flight may complete against the old mapping.
 */
HM_API int hm_read(struct hm_mm *mm, uint64_t va, void *buf, uint64_t len);
HM_API int hm_write(struct hm_mm *mm, uint64_t va, const void *buf, uint64_t len);

/*
 * hm_reclaim - free about @bytes of physical memory now, as the kernel's
 * reclaim does: least recently used pages first (their accessed bits are
 * looked at through the reverse map, and a page used since the last look
 * gets a second chance), written to the swap file for every address space
 * that maps them, pages shared after fork included; the unmapped parts of
 * partly unmapped huge pages go first. *freed = bytes freed: it works in
 * batches (32 pages or huge pages), so it may free up to a batch more than
 * asked; less (0 too) is not an error; without a swap file, or with it
 * full, nothing can be freed this way. A read or write of a page in swap
 * brings it back (4 KiB, or 2 MiB where a 2 MiB page may go and its
 * cluster is whole).
 * -EINVAL for a NULL argument. Context: any thread; waits for the pages it
 * writes, and for a grace period; skips pages of address spaces that are
 * busy changing their maps.
 */
HM_API int hm_reclaim(struct hm_system *sys, uint64_t bytes, uint64_t *freed);

/*
 * hm_migrate - move every present page of [addr, addr + len) to memory node
 * @node, for every address space that maps it (pages shared after fork
 * move for the child too). A huge page that the range touches moves whole,
 * as mbind(2) moves whole folios: 2 MiB and 1 GiB pages stay huge; a 1 GiB
 * page for which @node has no free 1 GiB block gets one by direct
 * compaction of @node, as a fault would (compact_stall, compact_success);
 * if that fails too, it is split into 2 MiB pages that move one by one
 * (thp_migration_split), a 2 MiB page without a 2 MiB block into 4 KiB
 * ones. Pages already on @node, pages in swap (they
 * stay there), the huge zero page and pages pinned by an access under way
 * are left. Other threads' accesses to a page being moved wait for it and
 * see its content whole; nothing written is lost.
 * @len is rounded up to a multiple of 4 KiB. Targets come from @node
 * only (its free frames, and the blocks compaction makes there).
 * Returns 0; -EINVAL for a NULL @mm, a @node that does not exist, an @addr
 * not page-aligned, a @len of 0 or a range past the address space
 * (nothing changed); -EFAULT if part of the range is not mapped when the
 * call begins (nothing changed; a hole made by another thread while the
 * call runs is skipped); -ENOMEM if @node cannot take everything (the
 * pages moved stay moved, the others where they were, all of them
 * intact); -EAGAIN if another address space sharing the pages kept
 * changing its maps, or a page stayed busy (pinned, being reclaimed),
 * through many retries: as for -ENOMEM, the pages moved before stay moved.
 * Counters pgmigrate_success and pgmigrate_fail count 4 KiB units (a 2 MiB
 * page adds 512), thp_migration_success, thp_migration_fail,
 * thp_migration_split count huge pages; free frames per node in
 * "node<N>/nr_free_pages" (N in decimal, without leading zeros: "node01"
 * is -ENOENT). Context: any thread; takes mmap_lock for reading, waits
 * for a grace period per batch of pages.
 */
HM_API int hm_migrate(struct hm_mm *mm, uint64_t addr, uint64_t len, unsigned node);

/*
 * hm_khugepaged_scan - one pass of the background collapser (khugepaged)
 * over up to @pages 4 KiB pages of address space, going on where the last
 * pass stopped (mm after mm, the VMAs where a 2 MiB page may go under the
 * policy: MADV_HUGEPAGE ones, or all but MADV_NOHUGEPAGE ones under
 * HM_THP_ALWAYS). Each 2 MiB piece is collapsed as MADV_COLLAPSE does,
 * unless it has more than khugepaged_max_ptes_none empty pages, more
 * than khugepaged_max_ptes_swap pages in swap (fewer are read back) or
 * more than khugepaged_max_ptes_shared pages shared with another address
 * space; a 1 GiB piece where 1 GiB pages may go is collapsed whole.
 * *collapsed (if not NULL) = huge pages made. Counters:
 * khugepaged_pages_scanned, khugepaged_pages_collapsed,
 * khugepaged_full_scans, thp_collapse_alloc(_failed), collapse_refold.
 * Each 2 MiB piece counts 512 pages, those of a 1 GiB piece too: one
 * of those is worked on over several passes (the 1 GiB page comes after
 * its last 2 MiB piece, if all 512 are 2 MiB pages by then).
 * -EINVAL for a NULL @sys. Context: any thread; works on one address
 * space at a time and holds up its map changes for one piece at most;
 * the creation of address spaces, hm_fork and hm_check do not wait for
 * it, and hm_mm_destroy of the address space it works on waits for that
 * piece.
 */
HM_API int hm_khugepaged_scan(struct hm_system *sys, uint64_t pages, uint64_t *collapsed);

struct hm_mapping {
	uint64_t va;		/* start of the mapping that covers the address */
	uint64_t size;		/* 4096, 2 MiB or 1 GiB; 0 if nothing is mapped */
	uint64_t pa;		/* physical address of that mapping's first byte */
	int prot;		/* PROT_* as the page table allows it now */
	unsigned node;		/* memory node of the frame */
	bool swapped;		/* not present: in swap */
	unsigned mapcount;	/* mappings of the 4 KiB page at va across all
				 * address spaces */
	bool exclusive;		/* the whole mapping (size bytes from va, its
				 * 4 KiB, 2 MiB or 1 GiB page) is this address
				 * space's alone, so it may differ from
				 * mapcount == 1: after fork and a copy of one
				 * 4 KiB piece in the child, the parent's 2 MiB
				 * mapping is not exclusive, though the piece's
				 * mapcount is 1. Exact,
				 * whatever the number of address spaces; and
				 * in swap for no other one (a page swapped in
				 * while another address space still has it in
				 * swap is shared through the swap cache: a
				 * write copies it) */
};
/* The huge zero page (see hm_read) shows as: size 2 MiB (4096 once split),
 * prot without PROT_WRITE whatever the mapping allows, mapcount 0 (its
 * mappings are not counted), exclusive false, and the same pa (its 2 MiB
 * block) in every address space that maps it. */

/*
 * hm_query - what the page tables map at @va. 0 with size 0 where nothing
 * is mapped. A page in swap: swapped, with the size that went out together
 * (4096, or 2 MiB for a 2 MiB page written whole into a cluster), va, and
 * prot PROT_NONE (not present); pa, mapcount and exclusive are 0.
 * -EINVAL for a NULL argument or @va beyond the address space.
 * Context: any thread; a snapshot, which other threads may change at once.
 */
HM_API int hm_query(struct hm_mm *mm, uint64_t va, struct hm_mapping *out);

/*
 * The bits of the raw x86-64 entries that hm_walk returns (Intel SDM vol. 3,
 * "4-level paging and 5-level paging"), for reading them without copying
 * the format out of the manual. HM_ENTRY_HUGE in a level 1 or 2 entry makes
 * it a leaf (2 MiB or 1 GiB page); at level 0 every present entry is one.
 * HM_ENTRY_FRAME gives the physical address of the page or the next table
 * (of a huge leaf, with its alignment's low bits clear).
 */
#define HM_ENTRY_PRESENT	(1ull << 0)
#define HM_ENTRY_WRITE		(1ull << 1)
#define HM_ENTRY_USER		(1ull << 2)
#define HM_ENTRY_PWT		(1ull << 3)
#define HM_ENTRY_PCD		(1ull << 4)
#define HM_ENTRY_ACCESSED	(1ull << 5)
#define HM_ENTRY_DIRTY		(1ull << 6)
#define HM_ENTRY_HUGE		(1ull << 7)
#define HM_ENTRY_GLOBAL		(1ull << 8)
#define HM_ENTRY_NX		(1ull << 63)
#define HM_ENTRY_FRAME		0x000ffffffffff000ull

/* The page-table walk for an address, as a ptdump would show it. */
struct hm_walk {
	unsigned levels;	/* 4 or 5 */
	int leaf_level;		/* 0 = PTE, 1 = PMD, 2 = PUD; -1 when no
				 * present leaf maps va */
	uint64_t entry[5];	/* raw entry read at each level: [0] PTE ...
				 * [levels-1] top; 0 below where the walk
				 * stopped */
	const void *table[5];	/* host address of the table that holds
				 * entry[i]; NULL below where the walk stopped */
};

/*
 * hm_walk - the raw x86-64 entries on the way to @va, top level first, as
 * the hardware walker (or the kernel's ptdump) would read them: for a VMM
 * that hands the tables to a CPU, or a debugger. The walk goes down while
 * the entry read is present and points at a table; it stops at a leaf, at
 * level 0, or at an entry that is not present. The level where it stopped
 * is the lowest i with table[i] != NULL, and entry[i] there is what was
 * read, raw:
 *  - a present leaf (P set; PS set at levels 1 and 2): leaf_level = i;
 *  - zero (nothing mapped there, or not faulted in yet): leaf_level = -1;
 *  - any other non-present entry: leaf_level = -1 too, since no hardware
 *    walk would translate through it. These are hugemm's own formats
 *    (bits 9-11 and the frame bits are software-defined): a PROT_NONE
 *    mapping (it keeps its frame; hm_query reports it with PROT_NONE), a
 *    page in swap (at level 0, or at level 1 for a 2 MiB page written out
 *    whole; hm_query reports it as swapped), a page being migrated, or a
 *    huge leaf a split holds invalid for a moment.
 * Each entry[i + 1] above the stop is a present table entry whose frame
 * bits (12-51) give the physical address of table[i]; entry[leaf_level]'s
 * frame bits are the physical address hm_query reports as pa. Physical
 * memory is one host block, so table[i] minus the physical address of
 * table[i] is the same for every table: the host address of physical
 * address 0. Entries at levels 1 and up that point at a table have P, RW,
 * US and A set: the leaf alone decides the access rights.
 * table[i] points into hugemm's physical memory; it is for reading only
 * (a store there corrupts the address space; with HM_PROTECT_TABLES it
 * faults). It stays readable while the system exists, but once hm_walk
 * returns, a map change (munmap, MADV_DONTNEED, a collapse: tables that
 * become empty are given back) may free that table and reuse its memory:
 * the walk is a snapshot, each level read atomically and the levels
 * consistent with each other at the moment they were read.
 * With HM_PROTECT_TABLES and protection keys, reading table memory needs
 * the reading thread's right to the tables' key: hm_walk gives it to the
 * calling thread, also inside a signal handler (which the kernel starts
 * without it). A thread that has not called hm_walk (or another call that
 * walks the tables, such as hm_read) since the first protected system was
 * created, or a signal handler that has not, faults on reading table[i]:
 * call hm_walk there first.
 * Returns 0 (also when nothing maps @va); -EINVAL for a NULL argument or a
 * non-canonical @va (bits 63..47 not all equal with 4 levels, 63..56 with
 * 5). Canonical addresses outside the user half walk as unmapped.
 * Context: any thread, concurrently with every call on @mm but
 * hm_mm_destroy: it takes no lock of hugemm's, does not wait for other
 * threads' operations (a thread's first call into hugemm registers it
 * with liburcu, whichever call that is), and changes nothing (not even
 * accessed bits).
 * Must not: be called on an @mm that is being or has been destroyed.
 */
HM_API int hm_walk(struct hm_mm *mm, uint64_t va, struct hm_walk *out);

/* Introspection, as /proc/PID/maps, smaps and pagemap show a process. */

/* hm_vma_info.flags: the advice given to the range (madvise). */
#define HM_VMA_HUGEPAGE		0x1u	/* MADV_HUGEPAGE */
#define HM_VMA_NOHUGEPAGE	0x2u	/* MADV_NOHUGEPAGE */
#define HM_VMA_DONTFORK		0x4u	/* MADV_DONTFORK */

struct hm_vma_info {
	uint64_t start, end;	/* [start, end), page-aligned */
	int prot;		/* PROT_* as given to mmap/mprotect */
	unsigned flags;		/* HM_VMA_* */
	bool thp_pmd;		/* a fault may map a 2 MiB page here: the
				 * system's policy and the advice allow it, and
				 * an aligned 2 MiB lies inside [start, end) */
	bool thp_pud;		/* ... and a 1 GiB page */
};

/*
 * hm_vma_next - the first VMA (mapping, as in /proc/PID/maps) that ends
 * above @addr, into @out: from addr 0, then from each out->end, this
 * lists every VMA in address order. Adjacent ranges with the same
 * protection and advice are one VMA, as the kernel merges them.
 * Returns 0; -ENOENT when no VMA ends above @addr (@out untouched);
 * -EINVAL for a NULL argument.
 * Context: any thread; takes mmap_lock for reading (waits for a map change
 * under way). A snapshot: another thread may change the VMAs at once.
 */
HM_API int hm_vma_next(struct hm_mm *mm, uint64_t addr, struct hm_vma_info *out);

/* What hm_smaps counts, in bytes (but the leaf counts). "Mapped" means a
 * leaf maps frames there, present or PROT_NONE. */
struct hm_smaps {
	uint64_t size;		/* of VMAs in the range */
	uint64_t rss;		/* mapped to frames of folios (the huge zero
				 * page is counted in zero, not here) */
	uint64_t pss;		/* rss, each leaf's bytes divided by the map
				 * count of its first page (hm_query's
				 * mapcount): shared pages are shared out */
	uint64_t rss_shared;	/* of rss: pages hm_query calls not
				 * exclusive (mapped by another address space
				 * too, or in swap for one) */
	uint64_t rss_private;	/* of rss: the rest (exclusive) */
	uint64_t referenced;	/* of rss: leaves with the accessed bit */
	uint64_t dirty;		/* of rss: leaves with the dirty bit */
	uint64_t anon_huge_pmd;	/* of rss: mapped by 2 MiB leaves (the
				 * kernel's AnonHugePages) */
	uint64_t anon_huge_pud;	/* of rss: mapped by 1 GiB leaves */
	uint64_t zero;		/* mapped to the huge zero page */
	uint64_t swap;		/* in swap */
	uint64_t swap_pmd;	/* of swap: 2 MiB pages written out whole */
	uint64_t pgtable;	/* page tables, deposits included */
	uint64_t pgtable_deposited; /* of pgtable: the deposits */
	uint64_t nr_leaf[3];	/* leaves mapping folios: [0] 4 KiB, [1]
				 * 2 MiB, [2] 1 GiB (counted where they
				 * begin) */
};

/*
 * hm_smaps - account [start, end) of @mm as /proc/PID/smaps does for a
 * VMA: the counts of struct hm_smaps, from one walk of the page tables,
 * each table read under its lock (a leaf's counts are taken in one step
 * with the leaf). Per VMA (the range of hm_vma_next) every leaf lies
 * inside; a leaf that crosses an end of another range counts for its part
 * inside, and its deposit where it begins. Page tables are shared by
 * neighbouring ranges, so each is counted by the range that holds the
 * first VMA address it serves: the sums over consecutive ranges (the VMAs
 * one by one) are the count over their union, and over [0, UINT64_MAX)
 * pgtable is all of @mm's tables, the top one included. A deposit counts
 * 4 KiB for a 2 MiB leaf (or 2 MiB page in swap), 513 x 4 KiB for a 1 GiB
 * leaf (eager deposit mode; none in lazy mode).
 * Returns 0; -EINVAL for a NULL argument or @start > @end (an end beyond
 * the address space is taken as its end).
 * Context: any thread; takes mmap_lock for reading for the walk (so map
 * changes wait for it; faults and accesses do not), and waits for pages
 * under migration in the range, as hm_query does. A snapshot: other
 * threads' faults may change the counts at once. In a quiet address space
 * each count is exact.
 */
HM_API int hm_smaps(struct hm_mm *mm, uint64_t start, uint64_t end, struct hm_smaps *out);

/*
 * hm_stat - read a counter by name (see README: /proc/vmstat names where
 * one exists). Unknown names are -ENOENT. Among them: nr_free_pages (free
 * frames, data frames on their way back from unmaps included; page tables
 * on theirs are not, since they return to slots that hold only tables
 * while their block has other tables), nr_free_pending
 * (frames and tables on their way back: 0 after hm_drain),
 * pgtable_free_slots (free slots of the 2 MiB blocks page tables are
 * carved from, while a block holds a table: free for page tables only,
 * so not in nr_free_pages; a block with no table left counts there),
 * pgtable_pending (tables unlinked and waiting for a grace period, in
 * neither pgtable_bytes nor nr_free_pages: nr_free_pages +
 * pgtable_free_slots + pgtable_pending + pgtable_bytes / 4096 stays the
 * same while they go back).
 * Deferred split: thp_deferred_split_page (huge pages queued when an unmap
 * or a copy-on-write left them partly mapped, each counted once), thp_split_page (huge pages split under memory
 * pressure to free their unmapped or zero-filled parts; a 1 GiB page counts
 * once for its split into 2 MiB pages, and each of those split further
 * once more), thp_underused_split_page (of those, split because more than
 * khugepaged_max_ptes_none of their 4 KiB pages were zero-filled).
 * The huge zero page: thp_zero_page_alloc (it was created: 0 or 1; it holds
 * 512 frames from then on, in neither nr_free_pages nor nr_anon_pages),
 * nr_huge_zero_pmd and nr_huge_zero_pte (leaves of all address spaces that
 * map it, 2 MiB and 4 KiB; not in nr_anon_pmd / nr_anon_pte).
 * Reclaim and swap: pswpout / pswpin (4 KiB pages written to / read from
 * swap), pswpout_clean (pages dropped without a write: in the swap cache
 * and not written since), thp_swpout / thp_swpout_fallback (2 MiB pages
 * written whole into a cluster / as single slots), thp_swpin (2 MiB pages
 * read back whole), swapin_cache_hit, swap_free_pages, swap_total_pages,
 * nr_swap_entries, pgscan / pgsteal (pages looked at / freed by reclaim),
 * pgactivate / pgdeactivate, nr_active_anon / nr_inactive_anon (folios on
 * the LRU lists), direct_reclaim, swap_io_error.
 * Migration: pgmigrate_success / pgmigrate_fail (4 KiB pages moved / not
 * moved for want of a target frame, a mapping it could not see, or
 * because they were pinned or busy),
 * thp_migration_success / thp_migration_fail (huge pages moved whole / not
 * at all), thp_migration_split (huge pages split to move in pieces);
 * "node<N>/nr_free_pages" for N below nr_nodes, in decimal without leading
 * zeros ("node01/..." is -ENOENT) (free frames of node N; not
 * listed by hm_stat_name).
 * Compaction: compact_stall (a 2 MiB or 1 GiB allocation found no free
 * block and compacted), compact_success / compact_fail (it got its block
 * / fell back), compact_migrate_scanned (frame descriptors looked at to
 * pick a block), nr_free_1g_possible (1 GiB blocks holding no page table
 * or other unmovable frame: those compaction could free).
 * Collapse: thp_collapse_alloc / thp_collapse_alloc_failed (huge folios
 * allocated for a collapse by copy / not to be had), collapse_refold
 * (huge pages mapped whole again in place, no copy), thp_collapse_pud
 * (1 GiB pages made), khugepaged_pages_scanned, khugepaged_pages_collapsed
 * (huge pages the scan made), khugepaged_full_scans (passes over every mm).
 * Page tables: pgtable_bytes (tables in use, deposits included),
 * pgtable_deposited, pgtable_reclaimed (PTE and PMD tables freed because
 * MADV_DONTNEED, a partial munmap or a dropped zero page left nothing in
 * them while their range stayed mapped).
 * Idle zeroing (HM_PREZERO): prezero_pages (4 KiB frames the thread has
 * zeroed ahead, in all), prezero_ns (nanoseconds it spent zeroing them),
 * prezero_used (frames faults took zeroed from the pools), nr_prezeroed
 * (zeroed frames in the pools now, counted in nr_free_pages too).
 * Context: any thread; never blocks.
 */
HM_API int hm_stat(struct hm_system *sys, const char *name, uint64_t *value);

/*
 * hm_stat_name - the name of counter number @i, or NULL past the last one:
 * for listing every counter. Context: any thread.
 */
HM_API const char *hm_stat_name(unsigned i);

/*
 * hm_drain - wait until every frame and page table that unmaps have given
 * up so far is back in the free lists. Unmaps do not wait for readers: what
 * they free comes back after an RCU grace period (counted meanwhile in
 * nr_free_pending, and the data frames in nr_free_pages). An allocation that finds nothing
 * free waits for it by itself; this is for callers that want the same
 * frames back at once (benchmarks, a warm refault).
 * Context: any thread.
 */
HM_API void hm_drain(struct hm_system *sys);

/*
 * hm_check - walk every table of every address space and verify the
 * invariants (map counts, deposits, balances of frames, tables and RSS).
 * Returns 0, or -EUCLEAN after printing what is wrong to stderr; -ENOMEM if
 * it cannot get its scratch memory.
 * Context: any thread; waits for operations under way on every mm.
 */
HM_API int hm_check(struct hm_system *sys);

#ifdef __cplusplus
}
#endif
#endif /* HUGEMM_H */
