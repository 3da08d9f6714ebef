/* SPDX-License-Identifier: MIT */
/*
 * Zeroing frames. A huge page (2 MiB, 1 GiB) is zeroed with non-temporal
 * stores, 2 MiB at a time: through the cache the zeroes would only push its
 * contents out for data that is written again later, piece by piece, and
 * the write-back of those lines halves the rate (on the machines measured,
 * memset(0) of 2 MiB chunks ran at 0.4-0.9x of non-temporal stores). 4 KiB
 * pages stay in the cache: the faulting access uses one at once.
 *
 * The widest store the CPU has is the default (AVX-512, AVX2, SSE2), found
 * at run time so that the library runs on any x86-64. Where more than one
 * is there, the first huge zeroings of the process take turns with them and
 * time themselves (work that had to be done anyway: the choice costs
 * nothing but a clock read per 2 MiB while it lasts); a narrower one takes
 * over only if it is clearly faster, as on CPUs that slow down for wide
 * stores.
 */
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "phys.h"

#if defined(__x86_64__)
#include <immintrin.h>

/* Four @w-byte non-temporal stores of zero a step; the fence orders them
 * before whatever maps the page. */
#define CLEAR_NT(name, isa, vec, zero, store, w)				\
	__attribute__((target(isa)))						\
	static void name(void *p, size_t len)				\
	{								\
		vec z = zero();						\
									\
		for (char *q = p, *end = q + len; q < end; q += 4 * (w)) { \
			store((vec *)q, z);				\
			store((vec *)(q + (w)), z);			\
			store((vec *)(q + 2 * (w)), z);			\
			store((vec *)(q + 3 * (w)), z);			\
		}							\
		_mm_sfence();						\
	}

CLEAR_NT(clear_sse2, "sse2", __m128i, _mm_setzero_si128, _mm_stream_si128, 16)
CLEAR_NT(clear_avx2, "avx2", __m256i, _mm256_setzero_si256, _mm256_stream_si256, 32)
CLEAR_NT(clear_avx512, "avx512f", __m512i, _mm512_setzero_si512, _mm512_stream_si512, 64)

static bool cpu_has(unsigned kind)
{
	__builtin_cpu_init();
	switch (kind) {
	case HM_CLEAR_SSE2:	return true;	/* every x86-64 */
	case HM_CLEAR_AVX2:	return __builtin_cpu_supports("avx2");
	case HM_CLEAR_AVX512:	return __builtin_cpu_supports("avx512f");
	default:		return kind == HM_CLEAR_MEMSET;
	}
}
#else
static bool cpu_has(unsigned kind)
{
	return kind == HM_CLEAR_MEMSET;
}
#endif

static void clear_memset(void *p, size_t len)
{
	memset(p, 0, len);
}

static void (*const clear_fn[HM_CLEAR_NR])(void *, size_t) = {
	[HM_CLEAR_MEMSET] = clear_memset,
#if defined(__x86_64__)
	[HM_CLEAR_SSE2] = clear_sse2,
	[HM_CLEAR_AVX2] = clear_avx2,
	[HM_CLEAR_AVX512] = clear_avx512,
#endif
};

static const char *const clear_names[HM_CLEAR_NR] = {
	[HM_CLEAR_MEMSET] = "memset", [HM_CLEAR_SSE2] = "sse2-nt",
	[HM_CLEAR_AVX2] = "avx2-nt", [HM_CLEAR_AVX512] = "avx512-nt",
};

const char *hm_clear_name(unsigned kind)
{
	return kind < HM_CLEAR_NR ? clear_names[kind] : "?";
}

bool hm_clear_supported(unsigned kind)
{
	return kind < HM_CLEAR_NR && cpu_has(kind);
}

void hm_clear_with(unsigned kind, void *p, size_t len)
{
	hm_assert(hm_clear_supported(kind) && len % 256 == 0 && (uintptr_t)p % 64 == 0);
	clear_fn[kind](p, len);
}

/*
 * The choice, process-wide: HM_CLEAR_NR until the first huge zeroing.
 * Calibration: samples taken per candidate (the non-temporal ones the CPU
 * has), each the fastest 2 MiB seen, in nanoseconds. Races between threads
 * only lose a sample or take one more: relaxed atomics throughout.
 */
#define CAL_SAMPLES 4u
#define CAL_CHUNK (2u << 20)

static unsigned clear_chosen = HM_CLEAR_NR;
static unsigned cal_next;			/* samples handed out */
static uint64_t cal_best[HM_CLEAR_NR];
static unsigned cal_cands[HM_CLEAR_NR], cal_nr;

static unsigned widest(void)
{
	for (unsigned k = HM_CLEAR_NR; k-- > 1;)
		if (cpu_has(k))
			return k;
	return HM_CLEAR_MEMSET;
}

/* Called once per process (the first caller and any racing it: all
 * compute the same). */
static void cal_init(void)
{
	unsigned nr = 0;

	for (unsigned k = HM_CLEAR_SSE2; k < HM_CLEAR_NR; k++)
		if (cpu_has(k))
			__atomic_store_n(&cal_cands[nr++], k, __ATOMIC_RELAXED);
	__atomic_store_n(&cal_nr, nr, __ATOMIC_RELEASE);
}

static void cal_finish(void)
{
	unsigned best = widest();
	uint64_t t = __atomic_load_n(&cal_best[best], __ATOMIC_RELAXED);

	/* Another one wins only by more than 10 %: the default is the widest. */
	for (unsigned k = 0; k < HM_CLEAR_NR; k++) {
		uint64_t b = __atomic_load_n(&cal_best[k], __ATOMIC_RELAXED);

		if (b && b * 11 < t * 10) {
			best = k;
			t = b;
		}
	}
	__atomic_store_n(&clear_chosen, best, __ATOMIC_RELAXED);
}

static uint64_t ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Zero one 2 MiB chunk as the next calibration sample, or return false
 * when calibration is over. */
static bool cal_clear(void *p)
{
	unsigned nr = __atomic_load_n(&cal_nr, __ATOMIC_ACQUIRE);

	if (!nr) {
		cal_init();
		nr = __atomic_load_n(&cal_nr, __ATOMIC_ACQUIRE);
	}
	unsigned i = __atomic_fetch_add(&cal_next, 1, __ATOMIC_RELAXED);
	if (nr < 2 || i >= nr * CAL_SAMPLES) {
		if (nr < 2 || i == nr * CAL_SAMPLES)
			cal_finish();
		return false;
	}
	unsigned k = __atomic_load_n(&cal_cands[i % nr], __ATOMIC_RELAXED);
	uint64_t t0 = ns_now();
	clear_fn[k](p, CAL_CHUNK);
	uint64_t t = ns_now() - t0 + 1, old = __atomic_load_n(&cal_best[k], __ATOMIC_RELAXED);

	while ((!old || t < old) &&
	       !__atomic_compare_exchange_n(&cal_best[k], &old, t, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	return true;
}

unsigned hm_clear_selected(void)
{
	unsigned k = __atomic_load_n(&clear_chosen, __ATOMIC_RELAXED);

	return k < HM_CLEAR_NR ? k : widest();
}

/* Zero @len bytes at @p (2 MiB-aligned, a multiple of 2 MiB). */
static void clear_huge(uint8_t *p, size_t len)
{
	for (size_t off = 0; off < len;) {
		unsigned k = __atomic_load_n(&clear_chosen, __ATOMIC_RELAXED);

		if (hm_likely(k < HM_CLEAR_NR)) {
			clear_fn[k](p + off, len - off);
			return;
		}
		if (!cal_clear(p + off))	/* another thread is choosing */
			clear_fn[widest()](p + off, CAL_CHUNK);
		off += CAL_CHUNK;
	}
}

/*
 * Descriptors of huge blocks, zeroed whole at free with streaming stores: a
 * 1 GiB block has 16 MiB of them, which through the cache were read for
 * ownership line by line only to be overwritten (the reset took 3-4 % of
 * a fault-in and unmap round trip). Nothing reads them soon. Ordered by
 * the fence before what publishes the block. The reset cannot be skipped
 * for tails never marked: a split mapping leaves counts on them that add
 * up to 0 with their chunk's (page.h), not zeros. A huge folio's tails are
 * not marked at all (page.h, "Tails"): streamed, the marking still took
 * 2-3 % of a 1 GiB fault-in and 1-2 % of a 2 MiB one.
 */
#if defined(__x86_64__)
static void zero_descs(struct hm_page *pg, size_t nr)
{
	__m128i z = _mm_setzero_si128();

	_Static_assert(sizeof(struct hm_page) == 64, "a descriptor is a cache line");
	hm_assert_int((uintptr_t)pg % 64 == 0);
	for (size_t i = 0; i < nr; i++) {
		__m128i *q = (__m128i *)(void *)&pg[i];

		_mm_stream_si128(q, z);
		_mm_stream_si128(q + 1, z);
		_mm_stream_si128(q + 2, z);
		_mm_stream_si128(q + 3, z);
	}
	_mm_sfence();
}
#else
static void zero_descs(struct hm_page *pg, size_t nr)
{
	memset(pg, 0, nr * sizeof(*pg));
}
#endif

void hm_pages_mark_tails(struct hm_phys *ph, uint32_t head, unsigned order)
{
	struct hm_page *pg = hm_pfn_page(ph, head);

	for (uint32_t i = 1; HM_DEBUG >= 2 && i < (1u << order); i++) {
		static const struct hm_page zero;

		hm_assert(!memcmp(&pg[i], &zero, sizeof(zero)));
	}
	if (order >= HM_PMD_ORDER)
		return;
	for (uint32_t i = 1; i < (1u << order); i++) {
		pg[i].flags = PG_TAIL;
		pg[i].order = (uint8_t)order;
	}
}

void hm_pages_reset_tails(struct hm_phys *ph, uint32_t head, unsigned order)
{
	hm_assert(order >= HM_PMD_ORDER);
	zero_descs(hm_pfn_page(ph, head) + 1, ((size_t)1 << order) - 1);
}

void hm_assert_zeroed(struct hm_phys *ph, uint32_t pfn, unsigned order)
{
	const uint64_t *w = hm_pfn_ptr(ph, pfn);

	for (size_t i = 0; HM_DEBUG >= 2 && i < (HM_PAGE_SIZE << order) / 8; i++)
		hm_assert(w[i] == 0);
}

void hm_zero_pages(struct hm_phys *ph, uint32_t pfn, unsigned order)
{
	uint8_t *p = hm_pfn_ptr(ph, pfn);
	size_t len = HM_PAGE_SIZE << order;

	if (order < HM_PMD_ORDER)
		memset(p, 0, len);
	else
		clear_huge(p, len);
}

/*
 * 4 KiB frames for faults, zeroed a batch at a time (the per-CPU caches'
 * zeroed frames, buddy.c) with non-temporal stores and one fence. Zeroed
 * one at a time in the fault, the frame's streamed lines had to drain to
 * memory before the fault's next locked instruction (the page-table lock)
 * could complete: per fault, the zeroing's full latency with nothing to
 * overlap it. A batch streams at the memory's rate and drains once, and the
 * fault prefetches the line its access writes instead of keeping it in the
 * cache (the batch does not know the fault's offsets). Measured per 4 KiB
 * page over 1 GiB, in a model of a fault (zeroing, a locked instruction,
 * 100 steps of other work, an 8-byte write): one at a time with the
 * written line cached 573 ns, 16 at a time with a prefetch 382 ns, a plain
 * zero-then-write with no lock 399 ns (Xeon VM). SSE2 stores: every x86-64
 * has them, and a 4 KiB frame gains nothing from wider ones.
 */
#if defined(__x86_64__)
void hm_zero_frames(struct hm_phys *ph, const uint32_t *pfns, unsigned nr)
{
	__m128i z = _mm_setzero_si128();

	for (unsigned i = 0; i < nr; i++) {
		__m128i *q = hm_pfn_ptr(ph, pfns[i]);

		for (unsigned line = 0; line < HM_PAGE_SIZE / 64; line++, q += 4) {
			_mm_stream_si128(q, z);
			_mm_stream_si128(q + 1, z);
			_mm_stream_si128(q + 2, z);
			_mm_stream_si128(q + 3, z);
		}
	}
	_mm_sfence();
}
#else
void hm_zero_frames(struct hm_phys *ph, const uint32_t *pfns, unsigned nr)
{
	for (unsigned i = 0; i < nr; i++)
		memset(hm_pfn_ptr(ph, pfns[i]), 0, HM_PAGE_SIZE);
}
#endif
