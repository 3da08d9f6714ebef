/* SPDX-License-Identifier: MIT */
/* Argument generators (gen.c) and the operations (ops_*.c) of the decoder. */
#ifndef HM_FUZZ_GEN_H
#define HM_FUZZ_GEN_H

#include "fuzz.h"

#define FZ_PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define FZ_MIN_ADDR 0x10000ull	/* hm_mmap's floor, like vm.mmap_min_addr */

uint64_t fz_gen_addr(struct fz_case *c, const struct fz_model *m);
uint64_t fz_gen_len(struct fz_case *c);
uint64_t fz_gen_page(struct fz_case *c, const struct fz_model *m);
void fz_gen_range(struct fz_case *c, const struct fz_model *m, uint64_t *addr, uint64_t *len);
int fz_gen_prot(struct fz_case *c);
int fz_gen_mflags(struct fz_case *c);
uint8_t fz_pat(uint64_t v, uint64_t i);

/* len rounded up to 4 KiB, or 0 when that overflows */
static inline uint64_t fz_page_len(uint64_t len)
{
	uint64_t l = (len + FZ_PAGE - 1) & ~(FZ_PAGE - 1);

	return l < len ? 0 : l;
}

/* Frames that splitting a range's edges may take (lazy mode only). */
static inline uint64_t fz_split_need(const struct fz_case *c)
{
	return c->cfg.deposit == HM_DEPOSIT_LAZY ? 16 : 0;
}

struct fz_mm *fz_pick(struct fz_case *c);

/* "mm0".."mm3" for traces: the address space's slot now */
static inline const char *fz_name(const struct fz_case *c, const struct fz_mm *m, bool null)
{
	static const char *const names[FZ_MAXMM] = { "mm0", "mm1", "mm2", "mm3" };

	return null ? "NULL" : names[m - c->mm];
}
void fz_op_mmap(struct fz_case *c);
void fz_op_munmap(struct fz_case *c);
void fz_op_mprotect(struct fz_case *c);
void fz_op_madvise(struct fz_case *c);
void fz_op_write(struct fz_case *c);
void fz_op_read(struct fz_case *c);
void fz_op_query(struct fz_case *c);
void fz_op_fork(struct fz_case *c);
void fz_op_destroy(struct fz_case *c);
void fz_op_create(struct fz_case *c);
void fz_op_split(struct fz_case *c);
void fz_op_stat(struct fz_case *c);
void fz_op_migrate(struct fz_case *c);

#endif /* HM_FUZZ_GEN_H */
