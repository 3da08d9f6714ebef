/* SPDX-License-Identifier: MIT */
/*
 * khugepaged: the background collapser. One pass (hm_khugepaged_scan) looks
 * at up to N 4 KiB pages of address space, going on from where the last
 * pass stopped: mm after mm in the order of their ids, and in each mm the
 * 2 MiB pieces of the VMAs where a huge page may go (MADV_HUGEPAGE, or
 * every VMA under THP "always"), each collapsed as MADV_COLLAPSE would but
 * within khugepaged_max_ptes_none / _swap / _shared. A 1 GiB piece where a
 * PUD leaf may go is worked on 2 MiB at a time, each step charged to the
 * pass's budget like any 2 MiB piece (a 1 GiB copy of 512 pieces in one
 * step made a pass of 4096 pages run for seconds), and may so span passes;
 * after its last 2 MiB step comes the PUD leaf, which needs all 512 pieces
 * to be PMD leaves by then (one empty piece leaves it).
 *
 * An mm is found under sys->mms_lock, but worked on without it: a collapse
 * may copy, reclaim and compact, and mm creation, destruction, fork and
 * hm_check all need mms_lock. The mm is kept alive instead by naming it in
 * sys->khugepaged_mm (under mms_lock) for the length of one step:
 * hm_mm_destroy waits until the scan names another, which takes one step
 * at most, as the scan picks an mm up again only under mms_lock, which
 * destroy holds until the mm is off the list.
 *
 * HM_KHUGEPAGED runs passes of HM_KHUGEPAGED_PAGES pages every
 * HM_KHUGEPAGED_SLEEP_MS in a thread, sleeping with no lock held.
 */
#include <time.h>

#include "check.h"
#include "collapse.h"
#include "fault.h"
#include "stat.h"
#include "types.h"
#include "vma.h"

#define HM_KHUGEPAGED_PAGES	4096u
#define HM_KHUGEPAGED_SLEEP_MS	10

/* The first mm with id >= @id. Context: mms_lock. */
static struct hm_mm *mm_from(struct hm_system *sys, uint64_t id)
{
	struct hm_mm *best = NULL;

	for (struct hm_mm *mm = sys->mms; mm; mm = mm->next)
		if (mm->id >= id && (!best || mm->id < best->id))
			best = mm;
	return best;
}

/* The next 2 MiB piece at or after @va that khugepaged works on: its
 * start in *start, and in *pud whether it lies in a 1 GiB piece where a
 * PUD leaf may go; false if the mm has none left. */
static bool next_piece(struct hm_mm *mm, uint64_t va, uint64_t *start, bool *pud)
{
	struct hm_system *sys = mm->sys;
	bool found = false;

	hm_down_read(&mm->mmap_lock);
	for (size_t i = hm_vma_index(mm, va); i < mm->nr_vmas && !found; i++) {
		const struct hm_vma *v = &mm->vmas[i];
		uint64_t a = HM_ALIGN_UP(HM_MAX(va, v->start), HM_PMD_SIZE);

		if (!hm_thp_allowed(v, sys->cfg.thp_pmd) || a + HM_PMD_SIZE > v->end)
			continue;
		found = true;
		*start = a;
		*pud = hm_huge_allowed(sys, v, a, 2);
	}
	hm_up_read(&mm->mmap_lock);
	return found;
}

/* The scan leaves the mm it named in sys->khugepaged_mm. */
static void scan_leave(struct hm_system *sys)
{
	hm_mutex_lock(&sys->mms_lock);
	sys->khugepaged_mm = NULL;
	pthread_cond_broadcast(&sys->khugepaged_left);
	hm_mutex_unlock(&sys->mms_lock);
}

int hm_khugepaged_scan(struct hm_system *sys, uint64_t pages, uint64_t *collapsed)
{
	if (!sys)
		return -EINVAL;
	struct hm_collapse_ctl cc = { .khugepaged = true, .stop = &sys->khugepaged_stop };
	uint64_t scanned = 0;
	unsigned wraps = 0;

	hm_mutex_lock(&sys->khugepaged_lock);
	while (scanned < pages && wraps < 2 && !hm_load_relaxed(&sys->khugepaged_stop)) {
		hm_mutex_lock(&sys->mms_lock);
		struct hm_mm *mm = mm_from(sys, sys->khugepaged_mm_id);
		uint64_t start;
		bool pud;

		if (!mm) {	/* past the last mm: a full scan done */
			hm_mutex_unlock(&sys->mms_lock);
			if (sys->khugepaged_mm_id || sys->khugepaged_va)
				hm_count(sys, HM_STAT_khugepaged_full_scans);
			sys->khugepaged_mm_id = 0;
			sys->khugepaged_va = 0;
			wraps++;
			continue;
		}
		if (mm->id != sys->khugepaged_mm_id)
			sys->khugepaged_va = 0;
		sys->khugepaged_mm_id = mm->id;
		sys->khugepaged_mm = mm;	/* alive until scan_leave */
		hm_mutex_unlock(&sys->mms_lock);
		if (!next_piece(mm, sys->khugepaged_va, &start, &pud)) {
			sys->khugepaged_mm_id = mm->id + 1;
			sys->khugepaged_va = 0;
			scan_leave(sys);
			continue;
		}
		uint64_t before = cc.collapsed, end = start + HM_PMD_SIZE;

		/* Failures are the scan's business: it goes on. */
		(void)hm_collapse_range(mm, start, end, &cc);
		if (pud && !(end & (HM_PUD_SIZE - 1)) && !hm_load_relaxed(&sys->khugepaged_stop))
			(void)hm_collapse_pud(mm, end - HM_PUD_SIZE, &cc);
		scan_leave(sys);
		sys->khugepaged_va = end;
		scanned += HM_PMD_SIZE >> HM_PAGE_SHIFT;
		hm_add(&sys->events[HM_STAT_khugepaged_pages_scanned], HM_PMD_SIZE >> HM_PAGE_SHIFT);
		hm_add(&sys->events[HM_STAT_khugepaged_pages_collapsed], cc.collapsed - before);
		wraps = 0;
	}
	hm_mutex_unlock(&sys->khugepaged_lock);
	if (collapsed)
		*collapsed = cc.collapsed;
	return hm_check_enabled(sys, 0);
}

static void *khugepaged_main(void *arg)
{
	struct hm_system *sys = arg;

	hm_mutex_lock(&sys->khugepaged_thread_lock);
	while (!sys->khugepaged_stop) {
		hm_mutex_unlock(&sys->khugepaged_thread_lock);
		hm_khugepaged_scan(sys, HM_KHUGEPAGED_PAGES, NULL);
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += HM_KHUGEPAGED_SLEEP_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		hm_mutex_lock(&sys->khugepaged_thread_lock);
		if (!sys->khugepaged_stop)
			pthread_cond_timedwait(&sys->khugepaged_wake, &sys->khugepaged_thread_lock, &ts);
	}
	hm_mutex_unlock(&sys->khugepaged_thread_lock);
	return NULL;
}

int hm_khugepaged_start(struct hm_system *sys)
{
	pthread_mutex_init(&sys->khugepaged_lock, NULL);
	pthread_mutex_init(&sys->khugepaged_thread_lock, NULL);
	pthread_cond_init(&sys->khugepaged_wake, NULL);
	if (!(sys->cfg.flags & HM_KHUGEPAGED))
		return 0;
	if (pthread_create(&sys->khugepaged_thread, NULL, khugepaged_main, sys))
		return -ENOMEM;
	sys->khugepaged_running = true;
	return 0;
}

void hm_khugepaged_stop(struct hm_system *sys)
{
	hm_mutex_lock(&sys->khugepaged_thread_lock);
	__atomic_store_n(&sys->khugepaged_stop, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&sys->khugepaged_wake);
	hm_mutex_unlock(&sys->khugepaged_thread_lock);
	if (sys->khugepaged_running)
		pthread_join(sys->khugepaged_thread, NULL);
	sys->khugepaged_running = false;
	pthread_cond_destroy(&sys->khugepaged_wake);
	pthread_mutex_destroy(&sys->khugepaged_thread_lock);
	pthread_mutex_destroy(&sys->khugepaged_lock);
}
