/* SPDX-License-Identifier: MIT */
/*
 * Race points: named places in the code where a test can stop a thread and
 * run another operation "there", to force an interleaving instead of hoping
 * for it. Compiled in only with -DHM_RACE_POINTS (the test builds made by
 * `make check`); in the library that users get, hm_race_point() is empty.
 *
 * A stopped thread blocks on a condition variable, possibly with spinlocks
 * held: that is the point (the other operation must then wait for them, or
 * must not need them). hm_might_sleep() is not asserted here.
 *
 * Points (grep for the names):
 *   cow_reuse_counts     between the loads of a 4 KiB page's map counts in
 *                        the copy-on-write reuse decision
 *   split_invalidated    a split has taken the old huge entry out (it is
 *                        invalid, not none) and not yet put the table in
 *   fault_recheck        a fault found a leaf and is about to look at it
 *                        again
 *   unmap_before_flush   an unmap (or a COW copy) dropped the map counts of
 *                        what it took out, and the TLB generation is not
 *                        bumped yet
 *   gather_before_free   a grace period after an unmap, its tables and
 *                        frames are about to be freed and its pins dropped
 *   fork_reserved        fork has reserved its room in the anon_vma
 *                        families, before it copies and adds the child
 *   fork_wrprotect       fork read a writable PTE and is about to write-protect it
 *   access_copy          hm_read/hm_write have a translation and are about
 *                        to copy through it, inside their RCU read section
 *   folio_lock_of        a map count change looked up a frame's head
 *                        without a lock and is about to take that head's
 *                        folio lock (a folio split may move the head first)
 *   migrate_unmapped     migration has made every leaf of its batch a
 *                        migration entry (and bumped the TLB generations),
 *                        before its grace period and the copy
 *   migrate_copy         migration's grace period is over, the data is
 *                        about to be copied and the entries replaced
 *   migrate_split_leaf   migration found no target of a folio's order,
 *                        gave the folio back to split it, and saw (without
 *                        the table lock) a mapper's leaf of it that it is
 *                        about to split
 *   migrate_retry        hm_migrate met a busy mapper and dropped its
 *                        mmap_lock to let it finish, before it takes the
 *                        lock again and retries the chunk
 *   fault_migration_entry  a fault met a migration entry and is about to
 *                        wait for it (hm_fault: after dropping mmap_lock)
 *   compact_isolate      compaction has opened its window on a block (frames
 *                        freed into it stay there) and listed the folios to
 *                        move out, before it migrates them
 *   collapse_unlocked    a collapse looked at its range under mmap_lock for
 *                        reading (and allocated its huge folio) and is
 *                        about to take mmap_lock for writing: anything may
 *                        have changed (unmap, fork, mprotect)
 *   collapse_cleared     a collapse cleared the upper entry over the table
 *                        it collapses and bumped the TLB generation; the
 *                        grace period that lets accesses through the old
 *                        entries finish is still to come
 *   pageout_edge_walked  MADV_PAGEOUT walked to the entry at an end of its
 *                        range (to split a huge page it covers in part),
 *                        inside a read section, and is about to read it
 *   fault_drain          a fault that needs frames unmaps are giving back
 *                        (or pins to drop) has dropped mmap_lock and is
 *                        about to wait for the grace period
 *   window_pcp_drain     hm_window_open has opened its window (frees into
 *                        the block now pass the per-CPU caches) and is
 *                        about to drain the pools and caches of its node
 *   pools_drained        an allocation that found no frame, or a window
 *                        being opened, has drained the idle-zeroing pools
 *                        and is about to drain the per-CPU caches
 *   pool_frame_taken     a frame cache taking zeroed frames from an
 *                        idle-zeroing pool has taken one out of the pool
 *                        (under the cache's and the pool's locks)
 *   nr_free_pools_read   hm_phys_nr_free has counted the idle-zeroing
 *                        pools' frames and is about to count the per-CPU
 *                        caches' and the free lists'
 *   alloc_drained        an allocation found no frame, drained every
 *                        pool and per-CPU cache and is about to try again
 *   rwsem_read_counted   a reader of an hm_rwsem counted itself in its
 *                        CPU's count and is about to look for a writer
 *   rwsem_readers_summing  hm_rwsem_readers has added one CPU's reader
 *                        count and is about to read the next
 *   tlb_fill_walked      the TLB refill walked to an entry without locks,
 *                        inside its read section, and is about to read it
 *   fault_pte_found      a 4 KiB fault has its PTE table and its folio and
 *                        is about to take the table's lock
 *   anon_vma_set         a VMA's first fault has made its anon_vma
 *                        family (and stored it, or found that another
 *                        fault stored one first) and goes on, under
 *                        mmap_lock for reading
 */
#ifndef HM_RACE_H
#define HM_RACE_H

#ifdef HM_RACE_POINTS
void hm__race_point(const char *name);
#define hm_race_point(name) hm__race_point(name)
#else
#define hm_race_point(name) ((void)0)
#endif

#endif /* HM_RACE_H */
