/* SPDX-License-Identifier: MIT */
/*
 * timeline FILE [INTERVAL_MS]: from this line to the end of the run, a
 * thread samples the counters every INTERVAL_MS (default 10) into FILE as
 * CSV, for plotting RSS, huge pages by size, swap and page-table memory
 * over time: one sample at the command, one at the end, and one every
 * INTERVAL_MS between. hm_stat never blocks, so sampling does not slow the run.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scenario.h"

static const char *const columns[] = {
	"nr_anon_pages", "nr_anon_pud", "nr_anon_pmd", "nr_anon_pte", "pgtable_bytes", "nr_free_pages",
	"pgfault", "thp_split_pud", "thp_split_pmd", "pswpout", "pswpin",
};
#define NCOL (sizeof(columns) / sizeof(columns[0]))

struct scn_timeline {
	pthread_t thread;
	FILE *out;
	struct hm_system *sys;
	double start;
	unsigned interval_ms;
	int stop;		/* atomic */
};

static uint64_t get(struct hm_system *sys, const char *name)
{
	uint64_t v = 0;

	hm_stat(sys, name, &v);
	return v;
}

static void sample(struct scn_timeline *t)
{
	uint64_t swap = get(t->sys, "swap_total_pages") - get(t->sys, "swap_free_pages");

	fprintf(t->out, "%.4f,%llu,%llu", scn_now() - t->start,
		(unsigned long long)(get(t->sys, "nr_anon_pages") * 4096), (unsigned long long)(swap * 4096));
	for (unsigned i = 0; i < NCOL; i++)
		fprintf(t->out, ",%llu", (unsigned long long)get(t->sys, columns[i]));
	fputc('\n', t->out);
}

static void *sampler(void *arg)
{
	struct scn_timeline *t = arg;
	struct timespec ts = { t->interval_ms / 1000, (t->interval_ms % 1000) * 1000000L };

	for (;;) {
		nanosleep(&ts, NULL);
		if (__atomic_load_n(&t->stop, __ATOMIC_RELAXED))
			return NULL;
		sample(t);
	}
}

int scn_cmd_timeline(struct scn_ctx *c, struct scn_stmt *s)
{
	struct scn *sc = c->scn;
	struct scn_timeline *t;
	uint64_t ms = 10;

	if (sc->timeline)
		return scn_err(c, s, "timeline: one per run (it samples to the end)");
	if (s->argc == 2 && scn_eval(c, s, s->argv[1], &ms))
		return SCN_FAIL;
	if (!ms || ms > 60000)
		return scn_err(c, s, "timeline: expected INTERVAL_MS from 1 to 60000, got %llu", (unsigned long long)ms);
	if (scn_system(c, s))
		return SCN_FAIL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return scn_err(c, s, "timeline: out of host memory");
	t->out = fopen(s->argv[0], "w");
	if (!t->out) {
		free(t);
		return scn_err(c, s, "timeline: cannot write %s: %s", s->argv[0], strerror(errno));
	}
	t->sys = sc->sys;
	t->start = scn_now();
	t->interval_ms = (unsigned)ms;
	fprintf(t->out, "seconds,rss_bytes,swap_bytes");
	for (unsigned i = 0; i < NCOL; i++)
		fprintf(t->out, ",%s", columns[i]);
	fputc('\n', t->out);
	/* The first sample here, the last at the end: a run shorter than the
	 * thread's start still gets both (the test counted on the thread's
	 * first sample, and failed when the run ended before it began). */
	sample(t);
	if (pthread_create(&t->thread, NULL, sampler, t)) {
		fclose(t->out);
		free(t);
		return scn_err(c, s, "timeline: cannot start the sampling thread");
	}
	sc->timeline = t;
	return 0;
}

/* At the end of the run, before the mms go: the last sample, the file closed. */
void scn_timeline_stop(struct scn *sc)
{
	struct scn_timeline *t = sc->timeline;

	if (!t)
		return;
	__atomic_store_n(&t->stop, 1, __ATOMIC_RELAXED);
	pthread_join(t->thread, NULL);
	sample(t);
	fclose(t->out);
	free(t);
	sc->timeline = NULL;
}
