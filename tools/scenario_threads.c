/* SPDX-License-Identifier: MIT */
/*
 * Blocks: repeat (a loop on the main thread, hm_check after every step)
 * and threads (the block in N threads at once, hm_check after they all
 * finish); and the progress bar for long work, on a terminal only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scenario.h"

/* The main thread's one bar at a time, for the outermost long work (a
 * fill inside a repeat draws nothing of its own); nothing unless stderr is
 * a terminal, and nothing for work done within a second. */
static struct {
	const void *owner;	/* the statement drawing it */
	double start;
	int shown;
} bar;

void scn_progress(struct scn *sc, const void *id, const char *what, uint64_t done, uint64_t total)
{
	if (!sc->tty || sc->trace || !total)
		return;
	if (done == 0 && !bar.owner) {
		bar.owner = id;
		bar.start = scn_now();
		bar.shown = 0;
		return;
	}
	if (id != bar.owner)
		return;
	if (done < total && scn_now() - bar.start < 1.0)
		return;
	if (done >= total) {
		bar.owner = NULL;
		if (!bar.shown)
			return;
	}
	int w = (int)(30 * done / total);

	pthread_mutex_lock(&sc->out_lock);
	fprintf(stderr, "\r  %-10s [%.*s%*s] %3d%%", what, w, "##############################", 30 - w, "",
		(int)(100 * done / total));
	if (done >= total)
		fputc('\n', stderr);
	bar.shown = done < total;
	pthread_mutex_unlock(&sc->out_lock);
}

/* After statement @id ran: a bar it left unfinished (it failed) is closed. */
void scn_progress_done(struct scn *sc, const void *id)
{
	if (bar.owner != id)
		return;
	bar.owner = NULL;
	if (bar.shown)
		fputc('\n', stderr);
	bar.shown = 0;
	(void)sc;
}

static int count(struct scn_ctx *c, struct scn_stmt *s, const char *tok, uint64_t *n)
{
	if (scn_eval(c, s, tok, n))
		return SCN_FAIL;
	return 0;
}

int scn_cmd_repeat(struct scn_ctx *c, struct scn_stmt *s)
{
	uint64_t n, outer = c->iter;
	int r = 0;

	if (count(c, s, s->argv[0], &n))
		return SCN_FAIL;
	if (!c->in_threads)
		scn_progress(c->scn, s, "repeat", 0, n);
	for (uint64_t i = 0; i < n && !r; i++) {
		c->iter = i;
		r = scn_exec(c, s->body, s->nbody);
		if (!c->in_threads)
			scn_progress(c->scn, s, "repeat", i + 1, n);
	}
	c->iter = outer;
	return r;
}

struct worker {
	pthread_t thread;
	struct scn_ctx ctx;
	struct scn_stmt *s;
	uint64_t loops;
	uint64_t *done;		/* loops finished by all threads (atomic) */
	int result;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (uint64_t i = 0; i < w->loops && !w->result; i++) {
		w->ctx.iter = i;
		w->result = scn_exec(&w->ctx, w->s->body, w->s->nbody);
		__atomic_add_fetch(w->done, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* threads N [loop COUNT] { ... } */
int scn_cmd_threads(struct scn_ctx *c, struct scn_stmt *s)
{
	struct scn *sc = c->scn;
	uint64_t n, loops = 1, done = 0;
	struct worker *w;
	int r = 0, started = 0;

	if (count(c, s, s->argv[0], &n))
		return SCN_FAIL;
	if (s->argc == 2 || (s->argc == 3 && strcmp(s->argv[1], "loop")))
		return scn_err(c, s, "threads: expected \"threads N [loop COUNT] {\"");
	if (s->argc == 3 && count(c, s, s->argv[2], &loops))
		return SCN_FAIL;
	if (!n || n > 256)
		return scn_err(c, s, "threads: expected N from 1 to 256, got %llu", (unsigned long long)n);
	if (scn_system(c, s))
		return SCN_FAIL;
	w = calloc(n, sizeof(*w));
	if (!w)
		return scn_err(c, s, "threads: out of host memory");
	for (uint64_t i = 0; i < n; i++) {
		w[i] = (struct worker){ .ctx = { .scn = sc, .tid = (unsigned)i, .in_threads = true },
					.s = s, .loops = loops, .done = &done };
		if (pthread_create(&w[i].thread, NULL, work, &w[i])) {
			r = scn_err(c, s, "threads: cannot start thread %llu", (unsigned long long)i);
			__atomic_store_n(&sc->stop, 1, __ATOMIC_RELAXED);
			break;
		}
		started++;
	}
	scn_progress(sc, s, "threads", 0, n * loops);
	/* Poll for the bar only where one is drawn. */
	while (sc->tty && !sc->trace && __atomic_load_n(&done, __ATOMIC_RELAXED) < started * loops &&
	       !__atomic_load_n(&sc->stop, __ATOMIC_RELAXED)) {
		usleep(50000);
		scn_progress(sc, s, "threads", __atomic_load_n(&done, __ATOMIC_RELAXED), n * loops);
	}
	for (int i = 0; i < started; i++) {
		pthread_join(w[i].thread, NULL);
		if (w[i].result)
			r = SCN_FAIL;
	}
	if (!r)
		scn_progress(sc, s, "threads", n * loops, n * loops);
	free(w);
	return r;
}
