/* SPDX-License-Identifier: MIT */
/*
 * The fuzzer: one operation decoder shared by the seeded driver (driver.c),
 * the libFuzzer entry point (libfuzzer.c) and the regression test
 * (tests/stress/fuzz_replay.c).
 *
 * Every decision (the system's config, each operation and its arguments)
 * is read from a byte source: libFuzzer's input, or a PRNG whose bytes are
 * recorded, so that a failing seeded case can be saved as an input file and
 * replayed byte for byte by either program.
 *
 * Each address space has a reference model (model.c): its mappings with
 * their protection and flags, and what every byte must read. After every
 * call the return code is checked against what mmap(2), munmap(2),
 * mprotect(2), madvise(2), include/hugemm.h and shared/API.md say, and the
 * bytes and mappings the call touched are read back and compared.
 */
#ifndef HM_FUZZ_H
#define HM_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hugemm.h>

#define FZ_PAGE 4096ull
#define FZ_2M (2ull << 20)
#define FZ_1G (1ull << 30)
#define FZ_MAXMM 4
/* Most operations aim at this window, 1 GiB aligned so that huge pages of
 * both sizes line up in it. */
#define FZ_WIN (4ull << 30)
#define FZ_WINLEN (3ull << 30)

/* ---- byte source (src.c) ---- */

struct fz_src {
	const uint8_t *data;	/* libFuzzer input, or NULL for the PRNG */
	size_t len, pos;
	uint64_t rng;
	bool out;		/* the input ran out: stop at the next step */
	uint8_t *rec;		/* the PRNG's bytes so far, when recording */
	size_t rec_len, rec_cap;
};

void fz_src_bytes(struct fz_src *s, const uint8_t *data, size_t len);
void fz_src_seed(struct fz_src *s, uint64_t seed, bool record);
void fz_src_free(struct fz_src *s);
/* A value in [0, n), n >= 1, from as few bytes as n needs. */
uint64_t fz_below(struct fz_src *s, uint64_t n);
uint64_t fz_u64(struct fz_src *s);
static inline bool fz_one_in(struct fz_src *s, uint64_t n) { return fz_below(s, n) == 0; }
int fz_src_save(const struct fz_src *s, const char *path);

/* ---- reference model of one address space (model.c) ---- */

enum { FZ_DONTFORK = 1u, FZ_HUGE = 2u, FZ_NOHUGE = 4u };

struct fz_vma {
	uint64_t start, end;
	int prot;
	unsigned flags;		/* FZ_* */
};

/* A 4 KiB page that holds data; shared between a model and its fork
 * clones until one of them writes. Pages not in the model read as 0. */
struct fz_page {
	uint32_t ref;
	uint8_t b[FZ_PAGE];
};

struct fz_model {
	struct fz_vma *v;	/* sorted, disjoint; not merged */
	size_t nv, vcap;
	uint64_t *pno;		/* sorted page numbers that hold data */
	struct fz_page **pg;	/* their contents */
	size_t np, pcap;
};

void fz_model_init(struct fz_model *m);
void fz_model_free(struct fz_model *m);
/* The child's model after fork: the same, less the DONTFORK mappings. */
void fz_model_fork(struct fz_model *child, const struct fz_model *parent);
const struct fz_vma *fz_model_vma(const struct fz_model *m, uint64_t va);
/* [start, end) mapped without a hole, and readable (need = PROT_READ) or
 * writable (need = PROT_WRITE) throughout; need = 0 asks only for mapped. */
bool fz_model_covers(const struct fz_model *m, uint64_t start, uint64_t end, int need);
bool fz_model_overlaps(const struct fz_model *m, uint64_t start, uint64_t end);
void fz_model_unmap(struct fz_model *m, uint64_t start, uint64_t end);
void fz_model_map(struct fz_model *m, uint64_t start, uint64_t end, int prot);
void fz_model_protect(struct fz_model *m, uint64_t start, uint64_t end, int prot);
void fz_model_flags(struct fz_model *m, uint64_t start, uint64_t end, unsigned clear, unsigned set);
void fz_model_zero(struct fz_model *m, uint64_t start, uint64_t end);
void fz_model_write(struct fz_model *m, uint64_t va, const uint8_t *buf, uint64_t len);
void fz_model_read(const struct fz_model *m, uint64_t va, uint8_t *buf, uint64_t len);
bool fz_model_page_zero(const struct fz_model *m, uint64_t pno);
/* Is there room for a mapping of @len aligned to @align in [lo, hi)? */
bool fz_model_gap(const struct fz_model *m, uint64_t len, uint64_t align, uint64_t lo, uint64_t hi);

/* ---- one fuzz case (ops_*.c, verify.c, run.c) ---- */

/* fz_case.opts */
#define FZ_VERBOSE	0x1u	/* print every operation */
#define FZ_TOLERATE	0x2u	/* accept (and count) the failure kinds of bugs found and fixed, tests/stress/fuzz_found.c
				 * (and count them), to look for others */

struct fz_mm {
	struct hm_mm *mm;
	struct fz_model m;
};

struct fz_case {
	struct fz_src *s;
	unsigned opts;
	struct hm_config cfg;
	struct hm_system *sys;
	struct fz_mm mm[FZ_MAXMM];
	int nmm;
	uint64_t task_size;
	uint64_t free0;		/* nr_free_pages with no address space */
	bool zero_known;	/* zero_pa holds the huge zero page's address */
	uint64_t zero_pa;
	uint64_t step;
	uint64_t free_before;	/* nr_free_pages before the current call */
	int rc;			/* what the current call returned (for the trace) */
	bool fail_armed;	/* the failpoint is armed for the step's call */
	bool fail_hit;		/* it failed an allocation of the last call */
	bool probing;		/* in fz_probe of probe_va: for messages */
	uint64_t probe_va;
	unsigned long passed, failed;
	unsigned long tolerated;	/* known partial writes seen (FZ_TOLERATE) */
	unsigned long tolerated_excl;	/* known inexact 2 MiB "exclusive" seen */
	unsigned long ops, enomem, efault, forks;
	char swap_path[64];	/* the case's swap file, when it has one */
	char desc[200];		/* the current operation, for messages */
	char why[600];		/* the first failure */
};

/* Run one case: decode a config, then operations until @max_steps or the
 * source runs out. Returns 0, or 1 after the first failed check (c->why). */
int fz_case_run(struct fz_case *c, struct fz_src *s, uint64_t max_steps, unsigned opts);
void fz_case_fini(struct fz_case *c);

/* Internal to the decoder. */
void fz_fail(struct fz_case *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define FZ_CHECK(c, cond, ...)						\
	do {								\
		if (cond)						\
			(c)->passed++;					\
		else							\
			fz_fail((c), __VA_ARGS__);			\
	} while (0)
/* r must be one of the listed codes. */
bool fz_rc(struct fz_case *c, int r, const int *ok, size_t n);
#define FZ_RC(c, r, ...)						\
	fz_rc((c), (r), (const int[]){ __VA_ARGS__ }, sizeof((int[]){ __VA_ARGS__ }) / sizeof(int))
bool fz_enomem_ok(struct fz_case *c, uint64_t need);
int fz_done(struct fz_case *c, int r);
void fz_step(struct fz_case *c);
void fz_probe(struct fz_case *c, struct fz_mm *m, uint64_t va);
void fz_verify_all(struct fz_case *c, struct fz_mm *m);
void fz_verify_range(struct fz_case *c, struct fz_mm *m, uint64_t va, uint64_t len);
uint64_t fz_stat(struct fz_case *c, const char *name);
uint64_t fz_free_frames(struct fz_case *c);

/* ---- threaded mode (threads.c) ---- */

struct fz_threads_opts {
	uint64_t seed;
	double seconds;
	bool big;		/* 1 GiB regions (and 3 GiB of memory), else 8 MiB */
	int levels, deposit, cow, nodes;
	bool verbose;
	bool tolerate;		/* FZ_TOLERATE */
};

/* Run the threaded mode; adds its counted checks to passed and failed. */
void fz_threads_run(const struct fz_threads_opts *o, unsigned long *passed, unsigned long *failed);

#endif /* HM_FUZZ_H */
