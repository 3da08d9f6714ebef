/* SPDX-License-Identifier: MIT */
/*
 * hugemm run: scenarios in a small line-based language (docs/scenarios.md).
 *
 * A script is read whole and checked (command names, word counts, blocks)
 * before anything runs; values are evaluated when their line runs, since
 * they may name regions mapped by earlier lines.
 *
 *   scenario_parse.c    lines -> statements, the command table lookup
 *   scenario_value.c    numbers, sizes, expressions, PROT_/MAP_/MADV_/E names
 *   scenario_run.c      the runner: steps, hm_check, --trace, messages, main
 *   scenario_system.c   system settings, mm / fork / destroy
 *   scenario_ops.c      map calls, accesses, fill / verify, reclaim ...
 *   scenario_expect.c   expect, let, print
 *   scenario_threads.c  repeat and threads blocks, the progress bar
 *   scenario_timeline.c counters sampled over the run, as CSV
 *   scenario_report.c   report KIND (vmstat here; see scn_report)
 *
 * Programs in tools/ use only <hugemm.h>.
 */
#ifndef HUGEMM_SCENARIO_H
#define HUGEMM_SCENARIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <hugemm.h>

/* A handler's result besides 0 and a library error (-errno): the failure
 * was reported already (file:line and what went wrong). */
#define SCN_FAIL 1

#define SCN_MAX_MMS 256
#define SCN_MAX_VARS 1024

struct scn_ctx;
struct scn_stmt;

struct scn_cmd {
	const char *name;
	int min_args, max_args;	/* words after the name */
	unsigned flags;		/* SCN_BLOCK, SCN_MAIN_ONLY */
	int (*run)(struct scn_ctx *c, struct scn_stmt *s);
	const char *usage;	/* the words it expects, for messages */
};
#define SCN_BLOCK	0x1	/* ends in "{"; its block follows, up to "}" */
#define SCN_MAIN_ONLY	0x2	/* changes what the script names: not in threads */
#define SCN_PURE	0x4	/* changes no memory: no hm_check after it */

struct scn_stmt {
	const struct scn_cmd *cmd;
	int line;
	int argc;
	char **argv;		/* the words after the command name */
	struct scn_stmt *body;	/* a block's statements */
	int nbody;
	struct scn_stmt *inner;	/* expect error: the statement it runs */
};

struct scn_var {
	char *name;
	uint64_t value;
	uint64_t len;		/* a region's length (mmap VAR = ...), else 0 */
};

struct scn_mm {
	char *name;
	struct hm_mm *mm;
};

struct scn_timeline;
struct lines;

/* One run of a script. The tables below change only on the main thread,
 * outside threads blocks, so threads read them without a lock. */
struct scn {
	const char *file;	/* as named on the command line, for messages */
	struct scn_stmt *prog;
	int nprog;
	struct lines *lines;	/* the words, owned by scenario_parse.c */

	struct hm_config cfg;
	char swap_auto[256];	/* a swap file we made the name of: removed at exit */
	struct hm_system *sys;	/* made at the first line that needs it */
	const struct scn_stmt *sys_stmt;	/* the last system line, for its errors */
	uint64_t free_at_start;

	struct scn_mm mms[SCN_MAX_MMS];
	int nmms;
	struct scn_var vars[SCN_MAX_VARS];
	int nvars;

	bool check;		/* hm_check after every step (default on) */
	bool trace;		/* --trace: each step, its result and latency */
	bool tty;		/* stderr is a terminal: progress bars */
	int stop;		/* a thread failed: the others stop (atomic) */
	uint64_t steps, expects;	/* counted for the last line (atomic) */
	pthread_mutex_t out_lock;	/* one message at a time on stderr */
	struct scn_timeline *timeline;
};

/* Where a statement runs: the main thread, or one thread of a block. */
struct scn_ctx {
	struct scn *scn;
	unsigned tid;		/* "tid" in expressions */
	uint64_t iter;		/* "iter": the innermost loop's iteration */
	bool in_threads;
};

/* scenario_parse.c */
int scn_parse(struct scn *sc, FILE *in);
void scn_free(struct scn *sc);
const struct scn_cmd *scn_lookup(const char *name);

/* scenario_run.c */
int scn_err(struct scn_ctx *c, const struct scn_stmt *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int scn_exec(struct scn_ctx *c, struct scn_stmt *body, int n);
int scn_cmd_check(struct scn_ctx *c, struct scn_stmt *s);
double scn_now(void);
int scn_step(struct scn_ctx *c, struct scn_stmt *s);
const char *scn_errname(int err);
int scn_main(int argc, char **argv);
extern const struct scn_cmd scn_cmds[];

/* scenario_value.c */
int scn_eval(struct scn_ctx *c, const struct scn_stmt *s, const char *tok, uint64_t *out);
int scn_names(struct scn_ctx *c, const struct scn_stmt *s, const char *tok, const char *prefix,
	      int *out);
int scn_errno(const char *name);
struct scn_var *scn_var(struct scn *sc, const char *name);
int scn_set_var(struct scn_ctx *c, const struct scn_stmt *s, const char *name, uint64_t v,
		uint64_t len);
bool scn_is_name(const char *tok);

/* scenario_system.c */
int scn_system(struct scn_ctx *c, const struct scn_stmt *s);
int scn_mm(struct scn_ctx *c, const struct scn_stmt *s, const char *name, struct hm_mm **out);
int scn_teardown(struct scn *sc, bool passed);
int scn_cmd_system(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_mm(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_fork(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_destroy(struct scn_ctx *c, struct scn_stmt *s);

/* scenario_ops.c */
uint64_t scn_pattern(uint64_t seed, uint64_t va);
int scn_cmd_mmap(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_munmap(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_mprotect(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_madvise(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_read(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_write(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_fill(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_verify(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_reclaim(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_migrate(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_collapse(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_khugepaged(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_drain(struct scn_ctx *c, struct scn_stmt *s);

/* scenario_expect.c */
int scn_cmd_expect(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_let(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_print(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_echo(struct scn_ctx *c, struct scn_stmt *s);

/* scenario_threads.c */
int scn_cmd_repeat(struct scn_ctx *c, struct scn_stmt *s);
int scn_cmd_threads(struct scn_ctx *c, struct scn_stmt *s);
void scn_progress(struct scn *sc, const void *id, const char *what, uint64_t done, uint64_t total);
void scn_progress_done(struct scn *sc, const void *id);

/* scenario_timeline.c */
int scn_cmd_timeline(struct scn_ctx *c, struct scn_stmt *s);
void scn_timeline_stop(struct scn *sc);

/* scenario_report.c */
int scn_cmd_report(struct scn_ctx *c, struct scn_stmt *s);

/*
 * scn_report - print report @kind about @sys (and @mm, NULL when the
 * script named none) to @out; @argv holds the words after the kind (and
 * after the mm's name), expressions already evaluated to 0x... numbers.
 * Kinds: "vmstat" (every counter, "NAME VALUE" lines; "--json" for one
 * JSON object). Returns 0, or -EINVAL after printing to stderr what was
 * wrong (an unknown kind names the kinds there are).
 */
int scn_report(FILE *out, struct hm_system *sys, struct hm_mm *mm, const char *kind, int argc,
	       char **argv);

#endif /* HUGEMM_SCENARIO_H */
