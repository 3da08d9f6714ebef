/* SPDX-License-Identifier: MIT */
/*
 * The runner: the command table, one step at a time (hm_check after each,
 * --trace lines), messages that name file:line, and `hugemm run` itself.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "scenario.h"

#define M SCN_MAIN_ONLY
#define P SCN_PURE

const struct scn_cmd scn_cmds[] = {
	{ "system", 1, 64, M, scn_cmd_system, "KEY VALUE ..." },
	{ "mm", 1, 1, M, scn_cmd_mm, "NAME" },
	{ "fork", 2, 2, M, scn_cmd_fork, "PARENT CHILD" },
	{ "destroy", 1, 1, M, scn_cmd_destroy, "NAME" },
	{ "mmap", 4, 7, 0, scn_cmd_mmap, "[VAR =] MM ADDR LEN PROT [FLAGS]" },
	{ "munmap", 3, 3, 0, scn_cmd_munmap, "MM ADDR LEN" },
	{ "mprotect", 4, 4, 0, scn_cmd_mprotect, "MM ADDR LEN PROT" },
	{ "madvise", 4, 4, 0, scn_cmd_madvise, "MM ADDR LEN ADVICE" },
	{ "read", 3, 3, 0, scn_cmd_read, "MM ADDR LEN" },
	{ "write", 3, 4, 0, scn_cmd_write, "MM ADDR LEN [BYTE]" },
	{ "fill", 4, 4, 0, scn_cmd_fill, "MM ADDR LEN SEED" },
	{ "verify", 4, 4, 0, scn_cmd_verify, "MM ADDR LEN SEED" },
	{ "reclaim", 1, 1, 0, scn_cmd_reclaim, "BYTES" },
	{ "migrate", 4, 4, 0, scn_cmd_migrate, "MM ADDR LEN NODE" },
	{ "collapse", 3, 3, 0, scn_cmd_collapse, "MM ADDR LEN" },
	{ "khugepaged", 1, 1, 0, scn_cmd_khugepaged, "PAGES" },
	{ "drain", 0, 0, 0, scn_cmd_drain, "" },
	{ "check", 0, 0, P, scn_cmd_check, "" },
	{ "expect", 2, 64, 0, scn_cmd_expect,
	  "stat NAME OP VALUE | query MM ADDR [not] FIELD [OP] [VALUE] | word MM ADDR OP VALUE | error ECODE COMMAND ..." },
	{ "let", 3, 6, P, scn_cmd_let, "VAR = VALUE | VAR = stat NAME | VAR = query MM ADDR FIELD" },
	{ "print", 1, 32, P, scn_cmd_print, "VALUE ..." },
	{ "echo", 0, 64, P, scn_cmd_echo, "TEXT ..." },
	{ "repeat", 1, 1, SCN_BLOCK, scn_cmd_repeat, "COUNT {" },
	{ "threads", 1, 3, SCN_BLOCK | M, scn_cmd_threads, "N [loop COUNT] {" },
	{ "report", 1, 32, M | P, scn_cmd_report, "KIND [MM] [ARGS ...]" },
	{ "timeline", 1, 2, M | P, scn_cmd_timeline, "FILE [INTERVAL_MS]" },
	{ NULL, 0, 0, 0, NULL, NULL }
};

double scn_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Print "file:line: message" and tell the other threads to stop. */
int scn_err(struct scn_ctx *c, const struct scn_stmt *s, const char *fmt, ...)
{
	struct scn *sc = c->scn;
	va_list ap;

	pthread_mutex_lock(&sc->out_lock);
	fflush(stdout);
	if (sc->tty)
		fputs("\r\033[K", stderr);	/* over a progress bar */
	if (s)
		fprintf(stderr, "%s:%d: ", sc->file, s->line);
	else
		fprintf(stderr, "%s: ", sc->file);
	if (c->in_threads)
		fprintf(stderr, "[thread %u, iteration %llu] ", c->tid, (unsigned long long)c->iter);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&sc->out_lock);
	__atomic_store_n(&sc->stop, 1, __ATOMIC_RELAXED);
	return SCN_FAIL;
}

static void trace(struct scn_ctx *c, const struct scn_stmt *s, int r, double secs)
{
	struct scn *sc = c->scn;
	char res[64];

	if (r < 0)
		snprintf(res, sizeof(res), "-%s", scn_errname(r));
	else
		snprintf(res, sizeof(res), "%s", r ? "FAILED" : "0");
	pthread_mutex_lock(&sc->out_lock);
	fprintf(stderr, "trace %s:%d ", sc->file, s->line);
	if (c->in_threads)
		fprintf(stderr, "[t%u] ", c->tid);
	fprintf(stderr, "%s", s->cmd->name);
	for (int i = 0; i < s->argc; i++)
		fprintf(stderr, " %s", s->argv[i]);
	if (secs >= 1e-3)
		fprintf(stderr, " -> %s  %.3f ms\n", res, secs * 1e3);
	else
		fprintf(stderr, " -> %s  %.1f us\n", res, secs * 1e6);
	pthread_mutex_unlock(&sc->out_lock);
}

int scn_cmd_check(struct scn_ctx *c, struct scn_stmt *s)
{
	int r;

	if (scn_system(c, s))
		return SCN_FAIL;
	r = hm_check(c->scn->sys);
	if (r)
		return scn_err(c, s, "hm_check failed after this step (%s): what is wrong is printed above",
			       scn_errname(r));
	return 0;
}

/* Run one statement: its command, the trace line, hm_check. */
int scn_step(struct scn_ctx *c, struct scn_stmt *s)
{
	struct scn *sc = c->scn;

	if (__atomic_load_n(&sc->stop, __ATOMIC_RELAXED))
		return SCN_FAIL;
	if (c->in_threads && (s->cmd->flags & SCN_MAIN_ONLY))
		return scn_err(c, s, "%s is not allowed inside threads", s->cmd->name);
	double t0 = sc->trace ? scn_now() : 0;
	int r = s->cmd->run(c, s);

	__atomic_add_fetch(&sc->steps, 1, __ATOMIC_RELAXED);
	if (!c->in_threads)
		scn_progress_done(sc, s);
	if (sc->trace && !(s->cmd->flags & SCN_BLOCK))
		trace(c, s, r, scn_now() - t0);
	if (r < 0)
		return scn_err(c, s, "%s failed with %s (%s); expected success (write \"expect error %s %s ...\" "
			       "if the error is the point)", s->cmd->name, scn_errname(r), strerror(-r),
			       scn_errname(r), s->cmd->name);
	if (r)
		return r;
	if (!c->in_threads && sc->check && sc->sys && !(s->cmd->flags & SCN_PURE))
		return scn_cmd_check(c, s);
	return 0;
}

int scn_exec(struct scn_ctx *c, struct scn_stmt *body, int n)
{
	for (int i = 0; i < n; i++)
		if (scn_step(c, &body[i]))
			return SCN_FAIL;
	return 0;
}

static int usage(FILE *f, struct scn *sc)
{
	free(sc);
	fprintf(f, "usage: hugemm run [--trace] [--no-check] FILE|-\n"
		   "  run a scenario (docs/scenarios.md); exit 0 when every step and expect passed,\n"
		   "  1 when one failed (the message names file:line), 2 for a script that does not parse\n");
	return f == stdout ? 0 : 2;
}

int scn_main(int argc, char **argv)
{
	struct scn *sc = calloc(1, sizeof(*sc));
	struct scn_ctx c = { .scn = sc };
	const char *path = NULL;
	FILE *in;
	int r;

	if (!sc)
		return 1;
	sc->check = true;
	pthread_mutex_init(&sc->out_lock, NULL);
	hm_config_default(&sc->cfg);
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--trace"))
			sc->trace = true;
		else if (!strcmp(argv[i], "--no-check"))
			sc->check = false;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return usage(stdout, sc);
		else if (!path && (argv[i][0] != '-' || !strcmp(argv[i], "-")))
			path = argv[i];
		else
			return usage(stderr, sc);
	}
	if (!path)
		return usage(stderr, sc);
	sc->tty = isatty(2);
	sc->file = strcmp(path, "-") ? path : "<stdin>";
	in = strcmp(path, "-") ? fopen(path, "r") : stdin;
	if (!in) {
		fprintf(stderr, "hugemm run: cannot open %s: %s\n", path, strerror(errno));
		free(sc);
		return 2;
	}
	r = scn_parse(sc, in);
	if (in != stdin)
		fclose(in);
	if (r) {
		scn_free(sc);
		free(sc);
		return 2;
	}
	double t0 = scn_now();

	r = scn_exec(&c, sc->prog, sc->nprog);
	scn_timeline_stop(sc);
	if (scn_teardown(sc, !r))
		r = SCN_FAIL;
	if (!r)
		printf("%s: passed: %llu steps, %llu expects, %.2f s\n", sc->file, (unsigned long long)sc->steps,
		       (unsigned long long)sc->expects, scn_now() - t0);
	scn_free(sc);
	for (int i = 0; i < sc->nvars; i++)
		free(sc->vars[i].name);
	pthread_mutex_destroy(&sc->out_lock);
	free(sc);
	return r ? 1 : 0;
}
