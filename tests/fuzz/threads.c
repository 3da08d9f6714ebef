/* SPDX-License-Identifier: MIT */
/*
 * The threaded mode: setup, the cookie writers, and the main thread, which
 * runs hm_check until the time is up and then checks that every slot holds
 * its writer's last cookie and that every frame comes back. See threads.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "threads.h"

#define PA (MAP_PRIVATE | MAP_ANONYMOUS)

uint64_t th_rnd(struct th_thread *t)
{
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 7;
	t->rng ^= t->rng << 17;
	return t->rng;
}

/* Slots are spread over the region's chunks, every 4th page of a chunk,
 * at an offset that varies with the slot; one in four runs over into the
 * next page (which no slot starts in), so that writes span pages. */
uint64_t th_slot_addr(const struct th_region *r, uint64_t k)
{
	uint64_t chunk = k % r->nchunk, idx = k / r->nchunk;
	uint64_t base = r->base + ((r->len / r->nchunk) * chunk & ~(FZ_2M - 1));
	uint64_t off = (k * 72) % (FZ_PAGE - TH_COPIES * sizeof(struct th_cookie)) & ~7ull;

	if ((k / (TH_NW + 1)) % 4 == 1)
		off = FZ_PAGE - 64;
	return base + idx * 4 * FZ_PAGE + off;
}

static uint64_t sum(uint64_t magic, uint64_t owner, uint64_t seq)
{
	return magic ^ owner * 0x9e3779b97f4a7c15ull ^ seq * 0xbf58476d1ce4e5b9ull;
}

void th_cookie(struct th_cookie *c, uint64_t magic, uint64_t owner, uint64_t seq)
{
	c->magic = magic;
	c->owner = owner;
	c->seq = seq;
	c->sum = sum(magic, owner, seq);
}

bool th_cookie_ok(const struct th_cookie *c)
{
	return (c->magic == TH_MAGIC_PARENT || c->magic == TH_MAGIC_CHILD) && c->sum == sum(c->magic, c->owner, c->seq);
}

void th_fail(struct th_thread *t, const char *fmt, ...)
{
	va_list ap;

	t->failed++;
	if (__atomic_fetch_add(&t->x->printed, 1, __ATOMIC_RELAXED) >= 20)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "FAIL threaded: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

int th_put(struct hm_mm *mm, uint64_t va, uint64_t magic, uint64_t owner, uint64_t seq)
{
	struct th_cookie c[TH_COPIES];

	for (int i = 0; i < TH_COPIES; i++)
		th_cookie(&c[i], magic, owner, seq);
	return hm_write(mm, va, c, sizeof(c));
}

/* *torn: the copies differ, or one is neither a cookie nor zeros. */
int th_get(struct hm_mm *mm, uint64_t va, struct th_cookie *out, bool *torn)
{
	struct th_cookie c[TH_COPIES];
	static const struct th_cookie zero;
	int r = hm_read(mm, va, c, sizeof(c));

	*out = c[0];
	*torn = !r && !th_cookie_ok(&c[0]) && memcmp(&c[0], &zero, sizeof(zero));
	for (int i = 1; i < TH_COPIES && !r; i++)
		*torn |= memcmp(&c[i], &c[0], sizeof(c[0])) != 0;
	return r;
}

void th_move(struct th_thread *t)
{
	uint64_t e = __atomic_load_n(&t->x->epoch, __ATOMIC_ACQUIRE);

	if (e == t->epoch)
		return;
	memset(t->last, 0, t->x->reg[e & 1].nslot / (TH_NW + 1) * sizeof(*t->last));
	__atomic_store_n(&t->epoch, e, __ATOMIC_RELEASE);
}

/* Slot @j of this writer holds its last cookie, or zeros if none. */
static void check_slot(struct th_thread *t, const struct th_region *r, uint64_t j)
{
	uint64_t k = j * (TH_NW + 1) + t->id, va = th_slot_addr(r, k);
	struct th_cookie c;
	bool torn;
	int rc = th_get(t->x->mm, va, &c, &torn);

	t->reads++;
	if (t->last[j])
		TH_CHECK(t, !rc && !torn && c.magic == TH_MAGIC_PARENT && c.owner == t->id && c.seq == t->last[j],
			 "writer %u, slot %" PRIu64 " at %#" PRIx64 ": read %d, torn %d, magic %#" PRIx64 " owner %" PRIu64
			 " seq %" PRIu64 ", want seq %" PRIu64, t->id, k, va, rc, torn, c.magic, c.owner, c.seq, t->last[j]);
	else
		TH_CHECK(t, !rc && !torn && !c.magic && !c.seq,
			 "writer %u, slot %" PRIu64 " at %#" PRIx64 ": read %d, torn %d, magic %#" PRIx64 " seq %" PRIu64
			 " where nothing was written", t->id, k, va, rc, torn, c.magic, c.seq);
}

static void *writer(void *arg)
{
	struct th_thread *t = arg;
	struct th_ctx *x = t->x;

	while (!__atomic_load_n(&x->stop, __ATOMIC_ACQUIRE)) {
		th_move(t);
		const struct th_region *r = &x->reg[t->epoch & 1];
		uint64_t j = th_rnd(t) % (r->nslot / (TH_NW + 1)), k = j * (TH_NW + 1) + t->id;

		t->ops++;
		if (th_rnd(t) % 10 < 7) {
			uint64_t seq = t->issued + 1;

			__atomic_store_n(&t->issued, seq, __ATOMIC_RELEASE);
			int rc = th_put(x->mm, th_slot_addr(r, k), TH_MAGIC_PARENT, t->id, seq);
			TH_CHECK(t, rc == 0, "writer %u: hm_write of slot %" PRIu64 ": %d", t->id, k, rc);
			t->writes++;
			if (rc == 0) {
				t->last[j] = seq;
				__atomic_store_n(&x->done[(t->epoch & 1) * TH_MAXSLOT + k], seq, __ATOMIC_RELEASE);
			}
		}
		check_slot(t, r, j);
	}
	/* every slot, once more */
	const struct th_region *r = &x->reg[t->epoch & 1];
	for (uint64_t j = 0; j < r->nslot / (TH_NW + 1); j++)
		check_slot(t, r, j);
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A fresh region of huge pages in the shared address space. */
int th_region_new(struct th_ctx *x, struct th_region *r)
{
	uint64_t len = x->o->big ? FZ_1G : 4 * FZ_2M;
	int rc = hm_mmap(x->mm, 0, len, PROT_READ | PROT_WRITE, PA, &r->base);

	if (!rc)
		rc = hm_madvise(x->mm, r->base, len, MADV_HUGEPAGE);
	r->len = len;
	r->nchunk = x->o->big ? 64 : 4;
	r->nslot = (uint64_t)r->nchunk * TH_SLOTS_PER_CHUNK;
	return rc;
}

static uint64_t stat(struct hm_system *sys, const char *n)
{
	uint64_t v = 0;

	hm_stat(sys, n, &v);
	return v;
}

void fz_threads_run(const struct fz_threads_opts *o, unsigned long *passed, unsigned long *failed)
{
	static struct th_ctx x;
	struct hm_config cfg;
	unsigned long checks = 0, check_fail = 0, setup_fail = 0;

	memset(&x, 0, sizeof(x));
	x.o = o;
	hm_config_default(&cfg);
	/* two 1 GiB regions at once while moving, and the copies */
	cfg.phys_bytes = o->big ? (4ull << 30) : (256ull << 20);
	cfg.levels = (unsigned)o->levels;
	cfg.nr_nodes = (unsigned)o->nodes;
	cfg.deposit = o->deposit;
	cfg.cow = o->cow;
	if (hm_system_create(&cfg, &x.sys)) {
		fprintf(stderr, "threaded: hm_system_create failed\n");
		(*failed)++;
		return;
	}
	uint64_t free0 = stat(x.sys, "nr_free_pages");
	x.done = calloc(2 * TH_MAXSLOT, sizeof(*x.done));
	setup_fail += !x.done || hm_mm_create(x.sys, &x.mm) != 0 || th_region_new(&x, &x.reg[0]) != 0;
	struct th_thread *all[TH_NW + 2];
	for (unsigned i = 0; i < TH_NW + 2; i++) {
		struct th_thread *t = i < TH_NW ? &x.w[i] : i == TH_NW ? &x.dis : &x.fork;

		all[i] = t;
		t->x = &x;
		t->id = i;
		t->rng = o->seed * 0x9e3779b97f4a7c15ull + i * 0x632be59bd9b4e019ull + 1;
		t->last = calloc(TH_MAXSLOT, sizeof(*t->last));
		setup_fail += !t->last;
	}
	if (setup_fail) {
		fprintf(stderr, "threaded: setup failed\n");
		(*failed)++;
		return;
	}
	for (unsigned i = 0; i < TH_NW; i++)
		pthread_create(&x.w[i].th, NULL, writer, &x.w[i]);
	pthread_create(&x.dis.th, NULL, th_disruptor, &x.dis);
	pthread_create(&x.fork.th, NULL, th_forker, &x.fork);

	double end = now() + o->seconds;
	while (now() < end) {
		usleep(o->big ? 1000000 : 20000);	/* a check of 3 GiB takes a while */
		check_fail += hm_check(x.sys) != 0;
		checks++;
	}
	__atomic_store_n(&x.stop, 1, __ATOMIC_RELEASE);
	unsigned long p = checks - check_fail, f = check_fail;
	for (unsigned i = 0; i < TH_NW + 2; i++) {
		pthread_join(all[i]->th, NULL);
		p += all[i]->passed;
		f += all[i]->failed;
	}
	if (check_fail)
		fprintf(stderr, "FAIL threaded: hm_check failed %lu times\n", check_fail);
	unsigned long writes = 0, reads = 0;
	for (unsigned i = 0; i < TH_NW; i++) {
		writes += x.w[i].writes;
		reads += x.w[i].reads;
	}
	fprintf(stderr, "threaded: %lu cookie writes, %lu checked reads, %lu forks (%lu child checks), "
		"%lu disruptor ops, %lu region moves, %lu hm__splits, %lu hm_migrates, %lu hm_checks\n", writes, reads,
		x.forks, x.child_checks, x.dis.ops, x.rotations, x.splits, x.migrations, checks);
	if (o->tolerate)
		fprintf(stderr, "threaded: tolerated: %lu children saw half of a two-page write\n", x.torn_tolerated);
	fprintf(stderr, "threaded: splits pud %" PRIu64 " pmd %" PRIu64 ", cow split pud %" PRIu64 " pmd %" PRIu64
		", cow copies %" PRIu64 ", reuses %" PRIu64 ", 1 GiB faults %" PRIu64 ", 2 MiB faults %" PRIu64 "\n",
		stat(x.sys, "thp_split_pud"), stat(x.sys, "thp_split_pmd"), stat(x.sys, "cow_split_pud"),
		stat(x.sys, "cow_split_pmd"), stat(x.sys, "cow_copy"), stat(x.sys, "cow_reuse"),
		stat(x.sys, "pud_fault_alloc"), stat(x.sys, "pmd_fault_alloc"));
	int rc = hm_check(x.sys);
	hm_mm_destroy(x.mm);
	/* the huge zero page stays until the system goes */
	uint64_t free1 = stat(x.sys, "nr_free_pages") + (stat(x.sys, "thp_zero_page_alloc") ? 512 : 0);
	if (rc || free1 != free0) {
		fprintf(stderr, "FAIL threaded: hm_check %d; %" PRIu64 " frames free at the end, %" PRIu64 " at the start\n",
			rc, free1, free0);
		f++;
	} else {
		p += 2;
	}
	hm_system_destroy(x.sys);
	for (unsigned i = 0; i < TH_NW + 2; i++)
		free(all[i]->last);
	free(x.done);
	*passed += p;
	*failed += f;
}
