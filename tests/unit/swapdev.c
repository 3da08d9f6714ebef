/* SPDX-License-Identifier: MIT */
/*
 * The swap device: setup and its errors, slot and cluster allocation, the
 * slot word's counts and flags, file I/O, the failpoint, readers waiting
 * out writeback, and allocation from several threads.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "harness.h"
#include "../../src/phys/swap.h"

#define SLOT	4096u
#define CL	HM_SWP_CLUSTER
#define NEW	(HM_SWP_CACHE | HM_SWP_WRITEBACK)

static char t_dir[64];

/* Everything the cases left in the temp dir, and the dir. */
static void t_dir_remove(void)
{
	DIR *d = opendir(t_dir);
	struct dirent *e;
	char p[sizeof(t_dir) + 260];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", t_dir, e->d_name);
		if (unlink(p)) {
			chmod(p, 0700);
			rmdir(p);
		}
	}
	closedir(d);
	rmdir(t_dir);
}

/* @buf = a path named @name in the temp dir, made on first use. */
static const char *t_path(char *buf, size_t len, const char *name)
{
	if (!t_dir[0]) {
		strcpy(t_dir, "/tmp/hmswapXXXXXX");
		if (!mkdtemp(t_dir)) {
			perror("mkdtemp");
			exit(2);
		}
		atexit(t_dir_remove);
	}
	snprintf(buf, len, "%s/%s", t_dir, name);
	return buf;
}

/* The descriptor open() would return now: a leaked one shows as a change. */
static int lowest_fd(void)
{
	int fd = open("/dev/null", O_RDONLY);

	close(fd);
	return fd;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static void fill(void *buf, unsigned n, uint64_t seed)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < (size_t)n * SLOT / 8; i++)
		w[i] = t_pattern(seed, i);
}

static bool filled(const void *buf, unsigned n, uint64_t seed)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < (size_t)n * SLOT / 8; i++)
		if (w[i] != t_pattern(seed, i))
			return false;
	return true;
}

/* Slots of [s, s + n) whose word is not @word. */
static unsigned words_not(struct hm_swap *sw, uint64_t s, unsigned n, uint32_t word)
{
	unsigned bad = 0;

	for (uint64_t i = s; i < s + n; i++)
		bad += hm_swap_word(sw, i) != word;
	return bad;
}

static uint64_t cl_used_sum(struct hm_swap *sw)
{
	uint64_t sum = 0;

	for (uint64_t c = 0; c < (sw->nr_slots + CL - 1) / CL; c++)
		sum += sw->cl_used[c];
	return sum;
}

static void no_swap(void)
{
	struct hm_swap sw;
	struct hm_fail f = { 0 };

	memset(&sw, 0xa5, sizeof(sw));
	hm_fail_arm(&f, 1, false);
	CHECK_EQ(hm_swap_init(&sw, NULL, 0, &f), 0);
	CHECK_EQ(sw.fd, -1);
	CHECK_EQ(sw.nr_slots, 0);
	CHECK_EQ(sw.nr_clusters, 0);
	CHECK(!hm_swap_enabled(&sw));
	CHECK_EQ(hm_swap_alloc(&sw, 1), HM_SLOT_NONE);
	CHECK_EQ(hm_swap_alloc(&sw, CL), HM_SLOT_NONE);
	/* Without a device nothing passes the failpoint. */
	CHECK_EQ(f.hits, 0);
	CHECK_EQ(f.countdown, 1);
	hm_swap_fini(&sw);
	hm_swap_fini(&sw);
	CHECK_EQ(sw.fd, -1);

	/* A struct that was only zeroed has fd 0: fini must not close it. */
	struct hm_swap z;
	int fd0 = -1;

	if (fcntl(0, F_GETFD) == -1)
		fd0 = open("/dev/null", O_RDONLY);
	memset(&z, 0, sizeof(z));
	hm_swap_fini(&z);
	CHECK(fcntl(0, F_GETFD) != -1);
	CHECK_EQ(z.fd, -1);
	if (fd0 >= 0)
		close(fd0);
}

static void invalid_size(void)
{
	static const uint64_t bad[] = { 0, 1, 4095, 4097, 3 * SLOT + 1, 2 * MiB - 1 };
	struct hm_swap sw;
	char p[256];
	int low = lowest_fd();

	t_path(p, sizeof(p), "invalid");
	for (unsigned i = 0; i < HM_ARRAY_SIZE(bad); i++) {
		CHECK_EQ(hm_swap_init(&sw, p, bad[i], NULL), -EINVAL);
		CHECK_EQ(sw.fd, -1);
		CHECK(!sw.map && !sw.cl_used);
		CHECK(!exists(p));
		hm_swap_fini(&sw);
	}
	CHECK_EQ(hm_swap_init(&sw, p, UINT64_MAX & ~(uint64_t)(SLOT - 1), NULL), -EINVAL);
	CHECK(!exists(p));
	CHECK_EQ(lowest_fd(), low);
}

/* Init at @path must fail with @err, leaving nothing open or allocated. */
static void init_fails(const char *path, uint64_t bytes, struct hm_fail *f, int err)
{
	struct hm_swap sw;
	int low = lowest_fd();

	CHECK_EQ(hm_swap_init(&sw, path, bytes, f), err);
	CHECK_EQ(sw.fd, -1);
	CHECK(!sw.map && !sw.cl_used);
	CHECK(!hm_swap_enabled(&sw));
	CHECK_EQ(lowest_fd(), low);
	hm_swap_fini(&sw);
}

static void bad_paths(void)
{
	char p[256], q[300], file[256];
	struct hm_fail f = { 0 };
	int fd;

	init_fails("/proc/nonexistent/x", 2 * MiB, NULL, -ENOENT);
	init_fails("", 2 * MiB, NULL, -ENOENT);
	init_fails(t_path(p, sizeof(p), "nodir/x"), 2 * MiB, NULL, -ENOENT);
	/* A directory, and a path through a regular file. */
	init_fails(t_dir, 2 * MiB, NULL, -EISDIR);
	fd = open(t_path(file, sizeof(file), "plain"), O_CREAT | O_WRONLY, 0600);
	REQUIRE(fd >= 0);
	close(fd);
	snprintf(q, sizeof(q), "%s/x", file);
	init_fails(q, 2 * MiB, NULL, -ENOTDIR);
	unlink(file);

	/* A directory we may not write. Root may write to any mode, but not
	 * create in sysfs (read-only where a container mounts it so). */
	if (geteuid() != 0) {
		t_path(p, sizeof(p), "ro");
		REQUIRE(mkdir(p, 0500) == 0);
		snprintf(q, sizeof(q), "%s/x", p);
		init_fails(q, 2 * MiB, NULL, -EACCES);
		CHECK(!exists(q));
		rmdir(p);
	} else if (exists("/sys/kernel")) {
		struct hm_swap sw;
		int low = lowest_fd(), r = hm_swap_init(&sw, "/sys/hmswap", 2 * MiB, NULL);

		CHECK(r == -EACCES || r == -EROFS);
		CHECK_EQ(sw.fd, -1);
		CHECK_EQ(lowest_fd(), low);
	}

	/* Sizing fails after the open: the file size limit stands in for a
	 * full disk, which a test cannot arrange. */
	struct rlimit old, lim;
	void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);

	REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
	lim = old;
	lim.rlim_cur = 1 * MiB;
	REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	init_fails(t_path(p, sizeof(p), "big"), 4 * MiB, NULL, -EFBIG);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, old_sig);
	unlink(p);

	/* Either map allocation failing: -ENOMEM, and no file made. */
	t_path(p, sizeof(p), "nomem");
	for (long nth = 1; nth <= 2; nth++) {
		hm_fail_arm(&f, nth, false);
		init_fails(p, 2 * MiB, &f, -ENOMEM);
		CHECK_EQ(f.hits, 1);
		CHECK(!exists(p));
	}
}

/*
 * A full disk is found at setup. tmpfs refuses at once an fallocate larger
 * than the whole file system, without filling it first, so /dev/shm can
 * stand in for a full disk where it is a size-limited tmpfs.
 */
static void disk_full(void)
{
	char dir[] = "/dev/shm/hmswapXXXXXX", p[64];
	struct statfs fs;
	struct statvfs vfs;
	struct stat st;
	uint64_t total;

	if (statfs("/dev/shm", &fs) || fs.f_type != TMPFS_MAGIC || statvfs("/dev/shm", &vfs)) {
		fprintf(stderr, "  (no tmpfs at /dev/shm: -ENOSPC not tried)\n");
		return;
	}
	total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	/* Unlimited, or so large that the map would be a burden. */
	if (!total || total > 64 * GiB) {
		fprintf(stderr, "  (/dev/shm has no usable limit: -ENOSPC not tried)\n");
		return;
	}
	REQUIRE(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/x", dir);
	init_fails(p, HM_ALIGN_UP(total, SLOT) + 2 * MiB, NULL, -ENOSPC);
	/* What was reserved is given back. */
	if (stat(p, &st) == 0) {
		CHECK_EQ(st.st_size, 0);
		CHECK_EQ(st.st_blocks, 0);
		unlink(p);
	}
	rmdir(dir);
}

static void creates_file(void)
{
	const uint64_t bytes = 4 * 2 * MiB + 3 * SLOT;	/* 4 clusters + 3 */
	struct hm_swap sw;
	struct stat st;
	char p[256];
	uint32_t word = 0;
	int fd;

	/* An old file is truncated: none of its bytes survive. */
	t_path(p, sizeof(p), "old");
	fd = open(p, O_CREAT | O_WRONLY, 0644);
	REQUIRE(fd >= 0);
	CHECK_EQ(pwrite(fd, "junk", 4, 0), 4);
	CHECK_EQ(pwrite(fd, "junk", 4, 3 * MiB), 4);
	close(fd);
	REQUIRE(hm_swap_init(&sw, p, bytes, NULL) == 0);
	CHECK(hm_swap_enabled(&sw));
	CHECK_EQ(pread(sw.fd, &word, 4, 0), 4);
	CHECK_EQ(word, 0);
	CHECK_EQ(pread(sw.fd, &word, 4, 3 * MiB), 4);
	CHECK_EQ(word, 0);
	hm_swap_fini(&sw);
	unlink(p);

	t_path(p, sizeof(p), "new");
	REQUIRE(hm_swap_init(&sw, p, bytes, NULL) == 0);
	CHECK(sw.fd >= 0);
	CHECK(fcntl(sw.fd, F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(fcntl(sw.fd, F_GETFL) & O_ACCMODE, O_RDWR);
	CHECK_EQ(sw.nr_slots, 4 * CL + 3);
	CHECK_EQ(sw.nr_clusters, 4);
	CHECK_EQ(sw.nr_free, sw.nr_slots);
	CHECK_EQ(cl_used_sum(&sw), 0);
	CHECK_EQ(words_not(&sw, 0, (unsigned)sw.nr_slots, 0), 0);
	REQUIRE(stat(p, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK_EQ(st.st_size, bytes);
	CHECK_EQ(st.st_mode & 077, 0);		/* 0600: nobody else reads swap */
	CHECK((uint64_t)st.st_blocks * 512 >= bytes);	/* reserved, not sparse */
	hm_swap_fini(&sw);
	CHECK_EQ(sw.fd, -1);
	CHECK(!sw.map);
	hm_swap_fini(&sw);
	/* The file stays. */
	REQUIRE(stat(p, &st) == 0);
	CHECK_EQ(st.st_size, bytes);
	unlink(p);
}

/* A free cluster is broken for a single slot only when no partly used one
 * is left. */
static void prefers_partial(void)
{
	struct hm_swap sw;
	char p[256];
	static bool seen[4 * CL];
	uint64_t s0, c0, s, x, c1, c2, cl[3];
	unsigned bad = 0;

	REQUIRE(hm_swap_init(&sw, t_path(p, sizeof(p), "partial"), 8 * MiB, NULL) == 0);
	REQUIRE(sw.nr_slots == 4 * CL);
	s0 = hm_swap_alloc(&sw, 1);
	REQUIRE(s0 != HM_SLOT_NONE);
	c0 = s0 / CL;
	CHECK_EQ(hm_swap_word(&sw, s0), NEW);
	CHECK_EQ(sw.nr_free, 4 * CL - 1);
	CHECK_EQ(sw.cl_used[c0], 1);

	for (int i = 0; i < 3; i++) {
		cl[i] = hm_swap_alloc(&sw, CL);
		REQUIRE(cl[i] != HM_SLOT_NONE);
		CHECK_EQ(cl[i] % CL, 0);
		CHECK(cl[i] / CL != c0);
		CHECK_EQ(sw.nr_free, 4 * CL - 1 - (i + 1) * CL);
	}
	CHECK(cl[0] != cl[1] && cl[1] != cl[2] && cl[0] != cl[2]);
	/* The last cluster has s0 in it. */
	CHECK_EQ(hm_swap_alloc(&sw, CL), HM_SLOT_NONE);
	CHECK_EQ(sw.nr_free, CL - 1);

	/* The rest of s0's cluster, each slot once. */
	seen[s0] = true;
	for (unsigned i = 0; i < CL - 1; i++) {
		s = hm_swap_alloc(&sw, 1);
		if (s == HM_SLOT_NONE || s / CL != c0 || seen[s]) {
			bad++;
			continue;
		}
		seen[s] = true;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(sw.nr_free, 0);
	CHECK_EQ(sw.cl_used[c0], CL);
	CHECK_EQ(hm_swap_alloc(&sw, 1), HM_SLOT_NONE);
	CHECK_EQ(hm_swap_alloc(&sw, CL), HM_SLOT_NONE);

	/* One slot free in c2, all of c1: the slot goes to c2. */
	c1 = cl[0] / CL;
	c2 = cl[1] / CL;
	x = c2 * CL + 77;
	hm_swap_clear_flags(&sw, x, 1, NEW);
	hm_swap_clear_flags(&sw, c1 * CL, CL, NEW);
	CHECK_EQ(sw.nr_free, CL + 1);
	CHECK_EQ(sw.cl_used[c1], 0);
	CHECK_EQ(sw.cl_used[c2], CL - 1);
	CHECK_EQ(hm_swap_alloc(&sw, 1), x);
	CHECK_EQ(sw.cl_used[c1], 0);
	CHECK_EQ(hm_swap_alloc(&sw, CL), c1 * CL);
	CHECK_EQ(sw.nr_free, 0);

	/* Everything back. */
	hm_swap_clear_flags(&sw, 0, 4 * CL, NEW);
	CHECK_EQ(sw.nr_free, 4 * CL);
	CHECK_EQ(cl_used_sum(&sw), 0);
	hm_swap_fini(&sw);
	unlink(p);
}

/* The short tail can never hold a 2 MiB page: single slots use it first. */
static void tail_first(void)
{
	struct hm_swap sw;
	char p[256];
	unsigned bad = 0;

	REQUIRE(hm_swap_init(&sw, t_path(p, sizeof(p), "tail"), 2 * 2 * MiB + 5 * SLOT, NULL) == 0);
	CHECK_EQ(sw.nr_clusters, 2);
	for (unsigned i = 0; i < 5; i++) {
		uint64_t s = hm_swap_alloc(&sw, 1);

		bad += s < 2 * CL || s >= 2 * CL + 5;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(sw.cl_used[2], 5);
	CHECK_EQ(hm_swap_alloc(&sw, CL), 0);
	CHECK_EQ(hm_swap_alloc(&sw, CL), CL);
	CHECK_EQ(hm_swap_alloc(&sw, CL), HM_SLOT_NONE);
	CHECK_EQ(hm_swap_alloc(&sw, 1), HM_SLOT_NONE);
	CHECK_EQ(sw.nr_free, 0);
	/* The tail is never handed out as a cluster, even when free. */
	hm_swap_clear_flags(&sw, 2 * CL, 5, NEW);
	CHECK_EQ(sw.nr_free, 5);
	CHECK_EQ(hm_swap_alloc(&sw, CL), HM_SLOT_NONE);
	hm_swap_fini(&sw);
	unlink(p);

	/* Smaller than a cluster: single slots only, every one of them. */
	REQUIRE(hm_swap_init(&sw, p, 100 * SLOT, NULL) == 0);
	CHECK_EQ(sw.nr_clusters, 0);
	CHECK_EQ(hm_swap_alloc(&sw, CL), HM_SLOT_NONE);
	bad = 0;
	for (uint64_t i = 0; i < 100; i++)
		bad += hm_swap_alloc(&sw, 1) != i;
	CHECK_EQ(bad, 0);
	CHECK_EQ(hm_swap_alloc(&sw, 1), HM_SLOT_NONE);
	CHECK_EQ(sw.nr_free, 0);
	hm_swap_fini(&sw);
	unlink(p);
}

static void cluster_alignment(void)
{
	struct hm_swap sw;
	char p[256];
	bool seen[8] = { false };
	unsigned bad = 0;

	REQUIRE(hm_swap_init(&sw, t_path(p, sizeof(p), "clusters"), 16 * MiB, NULL) == 0);
	for (unsigned i = 0; i < 8; i++) {
		uint64_t s = hm_swap_alloc(&sw, CL);

		REQUIRE(s != HM_SLOT_NONE);
		CHECK_EQ(s % CL, 0);
		CHECK(!seen[s / CL]);
		seen[s / CL] = true;
		bad += words_not(&sw, s, CL, NEW);
		CHECK_EQ(sw.cl_used[s / CL], CL);
		CHECK_EQ(sw.nr_free, (7 - i) * CL);
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(hm_swap_alloc(&sw, CL), HM_SLOT_NONE);
	CHECK_EQ(hm_swap_alloc(&sw, 1), HM_SLOT_NONE);

	/* A cluster half free is not free. */
	hm_swap_clear_flags(&sw, 5 * CL, CL / 2, NEW);
	CHECK_EQ(sw.nr_free, CL / 2);
	CHECK_EQ(hm_swap_alloc(&sw, CL), HM_SLOT_NONE);
	hm_swap_clear_flags(&sw, 5 * CL + CL / 2, CL / 2, NEW);
	CHECK_EQ(sw.nr_free, CL);
	CHECK_EQ(hm_swap_alloc(&sw, CL), 5 * CL);
	CHECK_EQ(words_not(&sw, 5 * CL, CL, NEW), 0);
	CHECK_EQ(sw.nr_free, 0);
	hm_swap_fini(&sw);
	unlink(p);
}

struct visit {
	uint64_t n, last;
	uint32_t words;		/* OR of the words seen */
	uint64_t stop_at;	/* return 1 at this slot */
};

static int visit_fn(void *arg, uint64_t s, uint32_t word)
{
	struct visit *v = arg;

	v->n++;
	v->last = s;
	v->words |= word;
	return s == v->stop_at;
}

/* A slot is free exactly when its word reaches 0, by whichever call. */
static void counts(void)
{
	struct hm_swap sw;
	struct visit v = { 0 };
	char p[256];
	uint64_t s, c, nf;

	REQUIRE(hm_swap_init(&sw, t_path(p, sizeof(p), "counts"), 8 * MiB, NULL) == 0);
	s = hm_swap_alloc(&sw, 1);
	REQUIRE(s != HM_SLOT_NONE);
	nf = sw.nr_free;
	hm_swap_dup(&sw, s, 1);
	CHECK_EQ(hm_swap_word(&sw, s), NEW | 1);
	hm_swap_clear_flags(&sw, s, 1, HM_SWP_WRITEBACK);
	CHECK_EQ(hm_swap_word(&sw, s), HM_SWP_CACHE | 1);
	hm_swap_clear_flags(&sw, s, 1, HM_SWP_CACHE);
	CHECK_EQ(hm_swap_word(&sw, s), 1);
	CHECK_EQ(sw.nr_free, nf);
	hm_swap_dup(&sw, s, 1);
	hm_swap_dup(&sw, s, 1);
	CHECK_EQ(hm_swap_word(&sw, s), 3);
	hm_swap_put(&sw, s, 1);
	hm_swap_set_flags(&sw, s, 1, HM_SWP_CACHE);
	CHECK_EQ(hm_swap_word(&sw, s), HM_SWP_CACHE | 2);
	hm_swap_put(&sw, s, 1);
	hm_swap_put(&sw, s, 1);
	CHECK_EQ(hm_swap_word(&sw, s), HM_SWP_CACHE);
	CHECK_EQ(sw.nr_free, nf);
	CHECK_EQ(sw.cl_used[s / CL], 1);
	/* Clearing a flag that is not set changes nothing. */
	hm_swap_clear_flags(&sw, s, 1, HM_SWP_WRITEBACK);
	CHECK_EQ(hm_swap_word(&sw, s), HM_SWP_CACHE);
	CHECK_EQ(sw.nr_free, nf);
	hm_swap_clear_flags(&sw, s, 1, HM_SWP_CACHE);
	CHECK_EQ(hm_swap_word(&sw, s), 0);
	CHECK_EQ(sw.nr_free, nf + 1);
	CHECK_EQ(sw.cl_used[s / CL], 0);

	/* The last put frees, for a range as for one slot. */
	c = hm_swap_alloc(&sw, CL);
	REQUIRE(c != HM_SLOT_NONE);
	nf = sw.nr_free;
	hm_swap_dup(&sw, c, CL);
	hm_swap_dup(&sw, c + 10, 5);
	hm_swap_clear_flags(&sw, c, CL, NEW);
	CHECK_EQ(words_not(&sw, c, 10, 1), 0);
	CHECK_EQ(words_not(&sw, c + 10, 5, 2), 0);
	CHECK_EQ(words_not(&sw, c + 15, CL - 15, 1), 0);
	CHECK_EQ(sw.nr_free, nf);

	/* The walk sees exactly the slots in use, and stops when told. */
	v.stop_at = HM_SLOT_NONE;
	CHECK_EQ(hm_swap_for_each_used(&sw, visit_fn, &v), 0);
	CHECK_EQ(v.n, CL);
	CHECK_EQ(v.words, 3);
	CHECK_EQ(v.last, c + CL - 1);
	memset(&v, 0, sizeof(v));
	v.stop_at = c + 20;
	CHECK_EQ(hm_swap_for_each_used(&sw, visit_fn, &v), 1);
	CHECK_EQ(v.n, 21);

	hm_swap_put(&sw, c, CL);
	CHECK_EQ(sw.nr_free, nf + CL - 5);
	CHECK_EQ(sw.cl_used[c / CL], 5);
	CHECK_EQ(hm_swap_word(&sw, c + 9), 0);
	CHECK_EQ(hm_swap_word(&sw, c + 10), 1);
	hm_swap_put(&sw, c + 10, 5);
	CHECK_EQ(sw.nr_free, sw.nr_slots);
	CHECK_EQ(cl_used_sum(&sw), 0);
	memset(&v, 0, sizeof(v));
	v.stop_at = HM_SLOT_NONE;
	CHECK_EQ(hm_swap_for_each_used(&sw, visit_fn, &v), 0);
	CHECK_EQ(v.n, 0);
	hm_swap_fini(&sw);
	unlink(p);
}

/* @fn on a free slot must stop the program (DEBUG >= 1). */
static bool dies(void (*fn)(struct hm_swap *, uint64_t, unsigned), struct hm_swap *sw, uint64_t s)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		int null = open("/dev/null", O_WRONLY);

		setrlimit(RLIMIT_CORE, &no_core);
		dup2(null, 2);
		fn(sw, s, 1);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return false;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void put_free_slot(struct hm_swap *sw, uint64_t s, unsigned n) { hm_swap_put(sw, s, n); }
static void dup_free_slot(struct hm_swap *sw, uint64_t s, unsigned n) { hm_swap_dup(sw, s, n); }
static void flag_free_slot(struct hm_swap *sw, uint64_t s, unsigned n)
{
	hm_swap_set_flags(sw, s, n, HM_SWP_CACHE);
}

/* In the child only: a count at its maximum must not wrap into the flags. */
static void dup_full_slot(struct hm_swap *sw, uint64_t s, unsigned n)
{
	sw->map[s] |= HM_SWP_COUNT_MASK;
	hm_swap_dup(sw, s, n);
}

static void misuse_asserts(void)
{
	struct hm_swap sw;
	char p[256];
	uint64_t s;

	if (HM_DEBUG < 1)
		return;
	REQUIRE(hm_swap_init(&sw, t_path(p, sizeof(p), "misuse"), 2 * MiB, NULL) == 0);
	s = hm_swap_alloc(&sw, 1);
	REQUIRE(s != HM_SLOT_NONE);
	CHECK(dies(put_free_slot, &sw, s + 1));
	CHECK(dies(dup_free_slot, &sw, s + 1));
	CHECK(dies(flag_free_slot, &sw, s + 1));
	/* A slot with flags but no count has nothing to put. */
	CHECK(dies(put_free_slot, &sw, s));
	CHECK(dies(dup_full_slot, &sw, s));
	CHECK_EQ(hm_swap_word(&sw, s), NEW);
	hm_swap_fini(&sw);
	unlink(p);
}

static void io_roundtrip(void)
{
	struct hm_swap sw;
	char p[256];
	uint64_t a, b;
	void *one = malloc(SLOT), *big = malloc(CL * SLOT), *out = malloc(CL * SLOT);
	int fd;

	REQUIRE(one && big && out);
	REQUIRE(hm_swap_init(&sw, t_path(p, sizeof(p), "io"), 8 * MiB, NULL) == 0);
	a = hm_swap_alloc(&sw, 1);
	b = hm_swap_alloc(&sw, CL);
	REQUIRE(a != HM_SLOT_NONE && b != HM_SLOT_NONE);
	fill(one, 1, 1);
	fill(big, CL, 2);
	CHECK_EQ(hm_swap_write(&sw, a, one, 1), 0);
	CHECK_EQ(hm_swap_write(&sw, b, big, CL), 0);
	hm_swap_clear_flags(&sw, a, 1, HM_SWP_WRITEBACK);
	hm_swap_clear_flags(&sw, b, CL, HM_SWP_WRITEBACK);

	memset(out, 0, CL * SLOT);
	CHECK_EQ(hm_swap_read(&sw, a, out, 1), 0);
	CHECK(filled(out, 1, 1));
	CHECK_EQ(hm_swap_read(&sw, b, out, CL), 0);
	CHECK(filled(out, CL, 2));
	/* Part of the cluster: slot b + 7 is page 7 of the pattern. */
	CHECK_EQ(hm_swap_read(&sw, b + 7, out, 1), 0);
	CHECK(!memcmp(out, (char *)big + 7 * SLOT, SLOT));

	/* Slot s is at s * 4096 in the file, as swap.h says. */
	fd = open(p, O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_EQ(pread(fd, out, SLOT, (off_t)(a * SLOT)), SLOT);
	CHECK(filled(out, 1, 1));
	CHECK_EQ(pread(fd, out, CL * SLOT, (off_t)(b * SLOT)), CL * SLOT);
	CHECK(filled(out, CL, 2));
	close(fd);

	/* Rewriting one leaves the other alone. */
	fill(one, 1, 3);
	CHECK_EQ(hm_swap_write(&sw, a, one, 1), 0);
	CHECK_EQ(hm_swap_read(&sw, a, out, 1), 0);
	CHECK(filled(out, 1, 3));
	CHECK_EQ(hm_swap_read(&sw, b, out, CL), 0);
	CHECK(filled(out, CL, 2));
	hm_swap_fini(&sw);
	unlink(p);
	free(one);
	free(big);
	free(out);
}

/* A file cut short underneath: the slots past its end read -EIO, the
 * others still read. */
static void io_truncated(void)
{
	struct hm_swap sw;
	char p[256];
	void *buf = malloc(CL * SLOT), *out = malloc(CL * SLOT);

	REQUIRE(buf && out);
	REQUIRE(hm_swap_init(&sw, t_path(p, sizeof(p), "trunc"), 8 * MiB, NULL) == 0);
	for (uint64_t c = 0; c < 4; c++) {
		REQUIRE(hm_swap_alloc(&sw, CL) == c * CL);
		fill(buf, CL, 10 + c);
		CHECK_EQ(hm_swap_write(&sw, c * CL, buf, CL), 0);
	}
	hm_swap_clear_flags(&sw, 0, 4 * CL, HM_SWP_WRITEBACK);
	/* Mid slot 3 * CL: it reads short, those after it read nothing. */
	REQUIRE(truncate(p, (off_t)(3 * CL * SLOT + SLOT / 2)) == 0);

	CHECK_EQ(hm_swap_read(&sw, 0, out, CL), 0);
	CHECK(filled(out, CL, 10));
	CHECK_EQ(hm_swap_read(&sw, 2 * CL, out, CL), 0);
	CHECK(filled(out, CL, 12));
	CHECK_EQ(hm_swap_read(&sw, 3 * CL - 1, out, 1), 0);
	fill(buf, CL, 12);
	CHECK(!memcmp(out, (char *)buf + (CL - 1) * SLOT, SLOT));
	CHECK_EQ(hm_swap_read(&sw, 3 * CL, out, 1), -EIO);
	CHECK_EQ(hm_swap_read(&sw, 3 * CL + 100, out, 1), -EIO);
	CHECK_EQ(hm_swap_read(&sw, 3 * CL, out, CL), -EIO);
	CHECK_EQ(hm_swap_read(&sw, 4 * CL - 1, out, 1), -EIO);
	/* Writing a slot past the end grows the file back to it. */
	fill(buf, 1, 20);
	CHECK_EQ(hm_swap_write(&sw, 4 * CL - 1, buf, 1), 0);
	CHECK_EQ(hm_swap_read(&sw, 4 * CL - 1, out, 1), 0);
	CHECK(filled(out, 1, 20));
	hm_swap_fini(&sw);
	unlink(p);
	free(buf);
	free(out);
}

static void failpoint(void)
{
	struct hm_swap sw;
	struct hm_fail f = { 0 };
	char p[256];
	uint64_t s;

	REQUIRE(hm_swap_init(&sw, t_path(p, sizeof(p), "fail"), 8 * MiB, &f) == 0);
	hm_fail_arm(&f, 1, false);
	CHECK_EQ(hm_swap_alloc(&sw, 1), HM_SLOT_NONE);
	CHECK_EQ(f.hits, 1);
	CHECK_EQ(sw.nr_free, sw.nr_slots);
	CHECK_EQ(cl_used_sum(&sw), 0);
	s = hm_swap_alloc(&sw, 1);			/* transient */
	CHECK(s != HM_SLOT_NONE);
	hm_fail_arm(&f, 2, false);
	CHECK(hm_swap_alloc(&sw, CL) != HM_SLOT_NONE);
	CHECK_EQ(hm_swap_alloc(&sw, CL), HM_SLOT_NONE);	/* the 2nd */
	CHECK(hm_swap_alloc(&sw, CL) != HM_SLOT_NONE);
	CHECK_EQ(sw.nr_free, sw.nr_slots - 1 - 2 * CL);
	hm_fail_arm(&f, 1, true);
	CHECK_EQ(hm_swap_alloc(&sw, 1), HM_SLOT_NONE);
	CHECK_EQ(hm_swap_alloc(&sw, CL), HM_SLOT_NONE);
	CHECK_EQ(f.hits, 2);
	CHECK_EQ(sw.nr_free, sw.nr_slots - 1 - 2 * CL);
	hm_fail_arm(&f, 0, false);
	CHECK(hm_swap_alloc(&sw, 1) != HM_SLOT_NONE);
	CHECK_EQ(sw.nr_free, sw.nr_slots - 2 - 2 * CL);
	hm_swap_fini(&sw);
	unlink(p);
}

struct reader {
	struct hm_swap *sw;
	uint64_t s;
	void *buf;
	int ret;
	int done;	/* atomic */
};

static void *reader_fn(void *arg)
{
	struct reader *r = arg;

	r->ret = hm_swap_read(r->sw, r->s, r->buf, CL);
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* A read of a cluster waits while its last slot is still being written,
 * and goes on when the writer clears the flag. */
static void reader_waits_writeback(void)
{
	struct hm_swap sw;
	struct reader r = { 0 };
	pthread_t t;
	char p[256];
	void *buf = malloc(CL * SLOT);
	uint64_t c;
	int waited;

	REQUIRE(buf);
	REQUIRE(hm_swap_init(&sw, t_path(p, sizeof(p), "wb"), 8 * MiB, NULL) == 0);
	c = hm_swap_alloc(&sw, CL);
	REQUIRE(c != HM_SLOT_NONE);
	fill(buf, CL, 30);
	CHECK_EQ(hm_swap_write(&sw, c, buf, CL), 0);
	hm_swap_clear_flags(&sw, c, CL - 1, HM_SWP_WRITEBACK);

	r.sw = &sw;
	r.s = c;
	r.buf = calloc(CL, SLOT);
	REQUIRE(r.buf);
	REQUIRE(pthread_create(&t, NULL, reader_fn, &r) == 0);
	sleep_ms(100);
	CHECK_EQ(__atomic_load_n(&r.done, __ATOMIC_ACQUIRE), 0);
	hm_swap_clear_flags(&sw, c + CL - 1, 1, HM_SWP_WRITEBACK);
	for (waited = 0; waited < 10000 && !__atomic_load_n(&r.done, __ATOMIC_ACQUIRE); waited += 10)
		sleep_ms(10);
	if (!__atomic_load_n(&r.done, __ATOMIC_ACQUIRE)) {
		/* Joining would hang the suite: report and stop here. */
		fprintf(stderr, "FAIL %s: reader still blocked 10 s after writeback ended\n", t_case);
		abort();
	}
	pthread_join(t, NULL);
	CHECK_EQ(r.ret, 0);
	CHECK(filled(r.buf, CL, 30));
	CHECK_EQ(words_not(&sw, c, CL, HM_SWP_CACHE), 0);
	hm_swap_fini(&sw);
	unlink(p);
	free(r.buf);
	free(buf);
}

#define NTHREADS 3
#define HOLD	 24

struct churn {
	struct hm_swap *sw;
	uint32_t *owner;	/* per slot: the thread holding it; atomic */
	uint32_t id;
	unsigned twice;		/* slots found owned by another */
	unsigned got;
};

/* Slots of [s, s + n) that were not free when claimed. */
static unsigned claim(struct churn *ch, uint64_t s, unsigned n)
{
	unsigned bad = 0;

	for (uint64_t i = s; i < s + n; i++)
		bad += __atomic_exchange_n(&ch->owner[i], ch->id, __ATOMIC_RELAXED) != 0;
	return bad;
}

/* Slots of [s, s + n) that were not ours when released. */
static unsigned release(struct churn *ch, uint64_t s, unsigned n)
{
	unsigned bad = 0;

	for (uint64_t i = s; i < s + n; i++)
		bad += __atomic_exchange_n(&ch->owner[i], 0, __ATOMIC_RELAXED) != ch->id;
	return bad;
}

static void *churn_fn(void *arg)
{
	struct churn *ch = arg;
	uint64_t held[HOLD], cl = HM_SLOT_NONE;
	uint64_t x = 0x9e3779b97f4a7c15ull * ch->id;
	unsigned nh = 0;

	for (unsigned it = 0; it < 4000; it++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (x % 16 == 0) {
			/* Take or give back a cluster. */
			if (cl == HM_SLOT_NONE) {
				cl = hm_swap_alloc(ch->sw, CL);
				if (cl != HM_SLOT_NONE) {
					ch->twice += claim(ch, cl, CL);
					ch->got++;
				}
			} else {
				ch->twice += release(ch, cl, CL);
				hm_swap_dup(ch->sw, cl, CL);
				hm_swap_clear_flags(ch->sw, cl, CL, HM_SWP_CACHE | HM_SWP_WRITEBACK);
				hm_swap_put(ch->sw, cl, CL);
				cl = HM_SLOT_NONE;
			}
		} else if (nh < HOLD && (x & 64)) {
			uint64_t s = hm_swap_alloc(ch->sw, 1);

			if (s != HM_SLOT_NONE) {
				ch->twice += claim(ch, s, 1);
				held[nh++] = s;
				ch->got++;
			}
		} else if (nh) {
			uint64_t s = held[--nh];

			ch->twice += release(ch, s, 1);
			hm_swap_clear_flags(ch->sw, s, 1, HM_SWP_WRITEBACK);
			hm_swap_clear_flags(ch->sw, s, 1, HM_SWP_CACHE);
		}
	}
	while (nh) {
		uint64_t s = held[--nh];

		ch->twice += release(ch, s, 1);
		hm_swap_clear_flags(ch->sw, s, 1, HM_SWP_CACHE | HM_SWP_WRITEBACK);
	}
	if (cl != HM_SLOT_NONE) {
		ch->twice += release(ch, cl, CL);
		hm_swap_clear_flags(ch->sw, cl, CL, HM_SWP_CACHE | HM_SWP_WRITEBACK);
	}
	return NULL;
}

/* Threads allocating and freeing at once: no slot is handed out twice and
 * the counts come back exact. Few slots, so that they run out often. */
static void concurrent(void)
{
	struct hm_swap sw;
	struct churn ch[NTHREADS];
	pthread_t t[NTHREADS];
	char p[256];
	uint32_t *owner;
	unsigned twice = 0, got = 0;

	REQUIRE(hm_swap_init(&sw, t_path(p, sizeof(p), "churn"), 2 * 2 * MiB + 40 * SLOT, NULL) == 0);
	owner = calloc(sw.nr_slots, sizeof(*owner));
	REQUIRE(owner);
	for (uint32_t i = 0; i < NTHREADS; i++) {
		ch[i] = (struct churn){ .sw = &sw, .owner = owner, .id = i + 1 };
		REQUIRE(pthread_create(&t[i], NULL, churn_fn, &ch[i]) == 0);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		twice += ch[i].twice;
		got += ch[i].got;
	}
	CHECK_EQ(twice, 0);
	CHECK(got > 0);
	CHECK_EQ(sw.nr_free, sw.nr_slots);
	CHECK_EQ(cl_used_sum(&sw), 0);
	CHECK_EQ(words_not(&sw, 0, (unsigned)sw.nr_slots, 0), 0);
	hm_swap_fini(&sw);
	unlink(p);
	free(owner);
}

T_MAIN(T(no_swap), T(invalid_size), T(bad_paths), T(disk_full), T(creates_file), T(prefers_partial),
       T(tail_first), T(cluster_alignment), T(counts), T(misuse_asserts), T(io_roundtrip),
       T(io_truncated), T(failpoint), T(reader_waits_writeback), T(concurrent))
