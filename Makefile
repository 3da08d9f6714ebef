# hugemm — build, test, benchmark, install.
#
#   make demo            build and run the demo (hugemm demo)
#   make report-example  redraw docs/address-space.svg (hugemm report svg)
#   make check           build and run the test suite (DEBUG=2)
#   make check SAN=address,undefined   or   SAN=thread
#   make check-scenarios only the scenarios: examples/scenarios/*.hms, tests/scenario
#   make check-protect   the suite with every system's page tables write-protected
#                        (HM_PROTECT_TABLES), by protection keys and by page protection
#   make check-prezero   the suite with idle zeroing on in every system (HM_PREZERO)
#   make bench           every benchmark, each figure next to its same-run baseline
#                        (the zeroing limit, the host kernel, copies, the device)
#   make bench-json      the same, and the figures to BENCH_JSON (build/bench.json);
#                        scripts/bench-compare OLD.json NEW.json flags regressions
#   make bench-migrate   hm_migrate against memcpy (issue 9)
#   make bench-swap      swap-out and swap-in against pwrite/pread
#   make bench-collapse  MADV_COLLAPSE against memcpy, khugepaged CPU cost
#   make install PREFIX=/usr/local   (DESTDIR=... to stage; man pages to MANDIR)
#   make check-examples-c  build examples/c/*.c (and hugemm(3)'s example) as a user
#                        would and run them; check-man, check-install: see below
#
# DEBUG=0..3 selects the run-time checking (see src/base/base.h).

PREFIX ?= /usr/local
MANDIR ?= $(PREFIX)/share/man
DEBUG ?= 1
SAN ?=
CC ?= cc
# RACE=1 compiles the race points in (src/base/race.h): test builds only.
RACE ?= 0

comma := ,
BUILD := build/$(if $(SAN),$(subst $(comma),-,$(SAN)),plain)-d$(DEBUG)$(if $(filter 1,$(RACE)),-race)

URCU_CFLAGS := $(shell pkg-config --cflags liburcu-bp 2>/dev/null)
URCU_LIBS := $(shell pkg-config --libs liburcu-bp 2>/dev/null || echo -lurcu-bp)

CFLAGS_BASE := -std=gnu11 -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes \
	-Wno-missing-field-initializers -fno-strict-aliasing -pthread \
	-DHM_DEBUG=$(DEBUG) $(URCU_CFLAGS) $(if $(filter 1,$(RACE)),-DHM_RACE_POINTS=1)
ifneq ($(SAN),)
CFLAGS_BASE += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN := -fsanitize=$(SAN)
endif
# Thread-locals are initial-exec (a fixed offset from %fs), not a call to
# __tls_get_addr per access: faults and locks read several. The library's
# few hundred bytes fit the static TLS that glibc keeps for a dlopen too.
LIB_CFLAGS := $(CFLAGS_BASE) -fPIC -fvisibility=hidden -ftls-model=initial-exec
LDLIBS := $(URCU_LIBS) -pthread

LIB_SRC := $(wildcard src/base/*.c src/phys/*.c src/pgtable/*.c src/mm/*.c src/mmu/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
HDRS := $(wildcard include/*.h src/*/*.h)

UNIT := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/*.c))
INTEG := $(patsubst tests/integration/%.c,%,$(wildcard tests/integration/*.c))
STRESS := $(patsubst tests/stress/%.c,%,$(wildcard tests/stress/*.c))
FAULT := $(patsubst tests/fault/%.c,%,$(wildcard tests/fault/*.c))
TEST_BINS := $(UNIT:%=$(BUILD)/tests/unit/%) $(INTEG:%=$(BUILD)/tests/integration/%) \
	$(STRESS:%=$(BUILD)/tests/stress/%) $(FAULT:%=$(BUILD)/tests/fault/%)

.PHONY: all lib tests report-example demo check check-scenarios run-scenarios check-protect check-prezero run-tests-prezero check-all bench bench-json bench-build \
	bench-swap bench-migrate bench-collapse install clean deps check-docs check-examples-c check-man check-install

all: lib $(BUILD)/hugemm tests

lib: deps $(BUILD)/libhugemm.a $(BUILD)/libhugemm.so

deps:
	@./tools/deps.sh

$(BUILD)/%.o: %.c $(HDRS) | deps
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c $< -o $@

$(BUILD)/libhugemm.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libhugemm.so: $(LIB_OBJ)
	$(CC) -shared $(LDSAN) -o $@ $^ $(LDLIBS)

TOOL_SRC := $(wildcard tools/*.c)
# The report test (below) links these; the command takes every tools/*.c.
REPORT_SRC := tools/report.c tools/report_svg.c

$(BUILD)/hugemm: $(TOOL_SRC) $(wildcard tools/*.h) $(BUILD)/libhugemm.a
	$(CC) $(CFLAGS_BASE) -Iinclude $(TOOL_SRC) $(BUILD)/libhugemm.a $(LDSAN) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c tests/harness.h tests/race.h tests/hooks.h tests/thread.h $(BUILD)/libhugemm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Iinclude -Itests $< $(BUILD)/libhugemm.a $(LDSAN) $(LDLIBS) -o $@

# The report test reads back what tools/report*.c write (public API only).
$(BUILD)/tests/integration/report: tests/integration/report.c tests/harness.h tests/hooks.h tests/thread.h $(REPORT_SRC) tools/report.h \
		$(BUILD)/libhugemm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Iinclude -Itests -Itools $< $(REPORT_SRC) $(BUILD)/libhugemm.a $(LDSAN) $(LDLIBS) -o $@

$(BUILD)/hmbench: bench/bench.c bench/util.h tests/hooks.h $(BUILD)/libhugemm.a
	$(CC) $(CFLAGS_BASE) -Iinclude $< $(BUILD)/libhugemm.a $(LDLIBS) -lm -o $@

$(BUILD)/hmbench-swap: bench/swap.c bench/util.h $(BUILD)/libhugemm.a
	$(CC) $(CFLAGS_BASE) -Iinclude $< $(BUILD)/libhugemm.a $(LDLIBS) -o $@

$(BUILD)/hmbench-migrate: bench/migrate.c bench/util.h $(BUILD)/libhugemm.a
	$(CC) $(CFLAGS_BASE) -Iinclude $< $(BUILD)/libhugemm.a $(LDLIBS) -o $@

$(BUILD)/hmbench-collapse: bench/collapse.c bench/util.h $(BUILD)/libhugemm.a
	$(CC) $(CFLAGS_BASE) -Iinclude $< $(BUILD)/libhugemm.a $(LDLIBS) -o $@

tests: $(TEST_BINS)

# The scenario tests (tests/scenario/run.sh): every examples/scenarios/*.hms
# passes, every tests/scenario/*.hms fails with its message. A small script
# in the build directory runs them, so that tests/run.sh counts them with
# the rest; their swap files go to the build directory.
SCN_TEST := $(BUILD)/tests/scenarios

$(SCN_TEST): tests/scenario/run.sh $(BUILD)/hugemm $(wildcard examples/scenarios/*.hms tests/scenario/*.hms)
	@mkdir -p $(dir $@)
	@printf '#!/bin/sh\nexec "%s/tests/scenario/run.sh" "%s/$(BUILD)/hugemm" "%s" "%s/$(BUILD)/tests/scenario-tmp"\n' \
		"$(CURDIR)" "$(CURDIR)" "$(CURDIR)" "$(CURDIR)" >$@
	@chmod +x $@

# Only the scenarios (make check runs them too).
check-scenarios: deps
	@$(MAKE) --no-print-directory DEBUG=$(if $(filter command line,$(origin DEBUG)),$(DEBUG),2) RACE=1 \
		run-scenarios

run-scenarios: $(SCN_TEST)
	@SAN="$(SAN)" ./tests/run.sh $(SCN_TEST)

# The example picture in docs/reports.md and README (committed).
report-example: deps
	@$(MAKE) --no-print-directory DEBUG=$(DEBUG) $(BUILD)/hugemm
	$(BUILD)/hugemm report svg docs/address-space.svg --child

demo: deps
	@$(MAKE) --no-print-directory DEBUG=$(DEBUG) $(BUILD)/hugemm
	$(BUILD)/hugemm demo

# The suite runs with internal assertions on (DEBUG=2) unless told otherwise,
# and with the race points compiled in.
check: deps
	@$(MAKE) --no-print-directory DEBUG=$(if $(filter command line,$(origin DEBUG)),$(DEBUG),2) RACE=1 check-docs
	@$(MAKE) --no-print-directory DEBUG=$(if $(filter command line,$(origin DEBUG)),$(DEBUG),2) RACE=1 run-tests

run-tests: $(TEST_BINS) $(SCN_TEST)
	@SAN="$(SAN)" ./tests/run.sh $(TEST_BINS) $(SCN_TEST)

# The suite again with HM_PROTECT_TABLES forced on for every system
# (HM_FORCE_FLAGS, read by test builds only): a store into a table from
# outside the entry helpers faults. First with protection keys where the CPU
# has them (elsewhere this is page protection too), then with page
# protection (HM_PROTECT_MODE=mprotect), which is slow: for it, the
# integration, stress and fault tests only.
check-protect: deps
	@$(MAKE) --no-print-directory DEBUG=$(if $(filter command line,$(origin DEBUG)),$(DEBUG),2) RACE=1 \
		run-tests-protect

HM_PROTECT_TABLES := 0x10	# as in include/hugemm.h
PROTECT_MPROTECT_BINS := $(INTEG:%=$(BUILD)/tests/integration/%) $(STRESS:%=$(BUILD)/tests/stress/%) \
	$(FAULT:%=$(BUILD)/tests/fault/%)

run-tests-protect: $(TEST_BINS)
	@echo "== HM_PROTECT_TABLES by protection keys (page protection where the CPU has none)"
	@HM_FORCE_FLAGS=$(HM_PROTECT_TABLES) SAN="$(SAN)" ./tests/run.sh $(TEST_BINS)
	@echo "== HM_PROTECT_TABLES by page protection"
	@HM_FORCE_FLAGS=$(HM_PROTECT_TABLES) HM_PROTECT_MODE=mprotect SAN="$(SAN)" ./tests/run.sh $(PROTECT_MPROTECT_BINS)

# The suite again with HM_PREZERO forced on: a zeroing thread beside every
# system, its pools taking part in every allocation, drain and hm_check.
HM_PREZERO := 0x8	# as in include/hugemm.h

check-prezero: deps
	@$(MAKE) --no-print-directory DEBUG=$(if $(filter command line,$(origin DEBUG)),$(DEBUG),2) RACE=1 \
		run-tests-prezero

run-tests-prezero: $(TEST_BINS)
	@HM_FORCE_FLAGS=$(HM_PREZERO) SAN="$(SAN)" ./tests/run.sh $(TEST_BINS)

# make check, then the same tests under both sanitizer builds (what CI runs)
check-all:
	$(MAKE) check
	$(MAKE) check SAN=address,undefined
	$(MAKE) check SAN=thread

# Timings are only worth something on a quiet machine: on a shared one, run
# under a lock, e.g. `make bench-build && flock /tmp/hm-bench.lock make bench`.
BENCH_JSON ?= build/bench.json
BENCH_PROGS := build/plain-d0/hmbench build/plain-d0/hmbench-swap build/plain-d0/hmbench-migrate \
	build/plain-d0/hmbench-collapse
BENCH_ENV = BENCH_ARGS="$(BENCH_ARGS)" BENCH_SWAP_ARGS="$(BENCH_SWAP_ARGS)" \
	BENCH_MIGRATE_ARGS="$(BENCH_MIGRATE_ARGS)" BENCH_COLLAPSE_ARGS="$(BENCH_COLLAPSE_ARGS)"

bench-build: deps
	@$(MAKE) --no-print-directory DEBUG=0 $(BENCH_PROGS)

bench: bench-build
	@$(BENCH_ENV) scripts/bench-run build/plain-d0

bench-json: bench-build
	@mkdir -p $(dir $(BENCH_JSON))
	@$(BENCH_ENV) scripts/bench-run -j $(BENCH_JSON) build/plain-d0

# Only the migration benchmark (issue 9).
bench-migrate: deps
	@$(MAKE) --no-print-directory DEBUG=0 build/plain-d0/hmbench-migrate
	build/plain-d0/hmbench-migrate $(BENCH_MIGRATE_ARGS)

# Only the collapse benchmark (issue 9).
bench-collapse: deps
	@$(MAKE) --no-print-directory DEBUG=0 build/plain-d0/hmbench-collapse
	build/plain-d0/hmbench-collapse $(BENCH_COLLAPSE_ARGS)

# Only the swap benchmark (issue 8).
bench-swap: deps
	@$(MAKE) --no-print-directory DEBUG=0 build/plain-d0/hmbench-swap
	build/plain-d0/hmbench-swap $(BENCH_SWAP_ARGS)

# Every call of the header, for `man hm_mmap` (each page a .so link to hugemm(3)).
API_CALLS = $(shell scripts/api-calls)

install: lib $(BUILD)/hugemm
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 644 include/hugemm.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libhugemm.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libhugemm.so $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/hugemm $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' hugemm.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/hugemm.pc
	install -m 644 docs/man/hugemm.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 docs/man/hugemm.3 $(DESTDIR)$(MANDIR)/man3/
	@for c in $(API_CALLS); do echo '.so man3/hugemm.3' > $(DESTDIR)$(MANDIR)/man3/$$c.3; done
	@echo "installed man pages hugemm(1), hugemm(3) and $(words $(API_CALLS)) links (man3/hm_*.3) in $(DESTDIR)$(MANDIR)"

# ---- Documentation checks (issue 12.5), run by make check -------------------
# check-docs: the man pages render without warnings and cover the header;
# examples/c/*.c and the program in hugemm(3)'s EXAMPLES are built as a user
# would build them (only -Iinclude and the library, the user's flags, no
# internal header) and run; `make install` into a staging DESTDIR installs
# everything, and an example builds with pkg-config against the installed
# library and runs.
EXAMPLES_C := $(patsubst examples/c/%.c,%,$(wildcard examples/c/*.c))
EXAMPLE_BINS := $(EXAMPLES_C:%=$(BUILD)/examples/c/%) $(BUILD)/examples/man/hugemm3
EX_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -pthread $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer)
# The sanitizers' settings of tests/run.sh (liburcu's known races suppressed).
EX_ENV = ASAN_OPTIONS="$${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}" \
	UBSAN_OPTIONS="$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
	TSAN_OPTIONS="$${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp}"

$(BUILD)/examples/c/%: examples/c/%.c include/hugemm.h $(BUILD)/libhugemm.a
	@mkdir -p $(dir $@)
	$(CC) $(EX_CFLAGS) -Iinclude $< $(BUILD)/libhugemm.a $(LDLIBS) -o $@

$(BUILD)/examples/man/hugemm3.c: docs/man/hugemm.3 scripts/man-example
	@mkdir -p $(dir $@)
	scripts/man-example $< > $@

$(BUILD)/examples/man/hugemm3: $(BUILD)/examples/man/hugemm3.c include/hugemm.h $(BUILD)/libhugemm.a
	$(CC) $(EX_CFLAGS) -Iinclude $< $(BUILD)/libhugemm.a $(LDLIBS) -o $@

# One after the other, so that their lines do not interleave under -j.
check-docs:
	@$(MAKE) --no-print-directory check-man
	@$(MAKE) --no-print-directory check-examples-c
	@$(MAKE) --no-print-directory check-install

check-man:
	@scripts/check-man

# Each example prints a few lines and exits 1 on any mismatch; here only a
# line each, with the whole output of one that fails.
check-examples-c: $(EXAMPLE_BINS)
	@for e in $(EXAMPLE_BINS); do \
		n=$${e#$(BUILD)/}; \
		if $(EX_ENV) $$e > $$e.out 2>&1; then echo "$$n: ok"; \
		else echo "$$n: FAILED (exit $$?); its output:"; cat $$e.out; exit 1; fi; \
	done

check-install: lib $(BUILD)/hugemm
	@set -e; stage=$$(mktemp -d /tmp/hugemm-install.XXXXXX); trap 'rm -rf "$$stage"' EXIT; \
	$(MAKE) --no-print-directory install DESTDIR=$$stage PREFIX=/usr/local >/dev/null; \
	root=$$stage/usr/local; \
	for f in include/hugemm.h lib/libhugemm.a lib/libhugemm.so lib/pkgconfig/hugemm.pc bin/hugemm \
		share/man/man1/hugemm.1 share/man/man3/hugemm.3 share/man/man3/hm_mmap.3; do \
		[ -f $$root/$$f ] || { echo "check-install: $$f not installed"; exit 1; }; \
	done; \
	if command -v man >/dev/null; then \
		man -M $$root/share/man -w hm_walk | grep -q '/man3/hugemm.3' || \
			{ echo "check-install: man hm_walk does not find hugemm(3)"; exit 1; }; \
	fi; \
	export PKG_CONFIG_PATH=$$root/lib/pkgconfig; \
	$(CC) $(EX_CFLAGS) examples/c/fork_cow.c \
		$$(pkg-config --define-variable=prefix=$$root --cflags --libs hugemm) $(LDSAN) \
		-Wl,-rpath,$$root/lib -o $$stage/fork_cow; \
	ldd $$stage/fork_cow | grep -q "$$root/lib/libhugemm.so" || \
		{ echo "check-install: not linked with the installed libhugemm.so"; exit 1; }; \
	$(EX_ENV) $$stage/fork_cow > $$stage/out 2>&1 || { cat $$stage/out; exit 1; }; \
	echo "check-install: make install (DESTDIR, PREFIX=/usr/local) installed everything, man pages too;" \
		"examples/c/fork_cow built with pkg-config against the installed libhugemm.so: ok"

clean:
	rm -rf build

# ---- Fuzzing and soak (issue 7); see tests/fuzz/fuzz.h --------------------
#   make fuzz         libFuzzer (clang, ASan+UBSan) for FUZZ_SECONDS, corpus in build/libfuzzer/corpus
#   make fuzz-smoke   the seeded driver under ASan+UBSan for FUZZ_SMOKE_SECONDS (CI runs it)
#   make soak         threads fork, split and write on 2 MiB and 1 GiB pages for SOAK_SECONDS;
#                     then 20 s per page size of migration under readers and writers
# A failure prints its seed and the command that replays it; failing inputs
# become regression cases in tests/fuzz/regress/ (tests/stress/fuzz_replay).
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 60
SOAK_SECONDS ?= 600
FUZZ_ARGS ?=
# Every bug the fuzzer found is fixed, so the targets are strict.
# FUZZ_TOLERATE=1 (hmfuzz -k) accepts the kinds of failure it once tolerated
# (partial multi-page writes, an inexact 2 MiB "exclusive", a child seeing
# half of a two-page write), counting them, to look past them for new ones.
FUZZ_TOLERATE ?=
FUZZ_K := $(if $(FUZZ_TOLERATE),-k,)
FUZZ_SRC := $(filter-out tests/fuzz/driver.c tests/fuzz/libfuzzer.c,$(wildcard tests/fuzz/*.c))
FUZZ_DEPS := $(FUZZ_SRC) $(wildcard tests/fuzz/*.h) tests/hooks.h $(BUILD)/libhugemm.a
LF_BUILD := build/libfuzzer
LF_CFLAGS := -std=gnu11 -O1 -g -pthread -fno-omit-frame-pointer -DHM_DEBUG=1 $(URCU_CFLAGS) \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined
LF_LIB_OBJ := $(LIB_SRC:%.c=$(LF_BUILD)/%.o)

.PHONY: fuzz fuzz-smoke fuzz-smoke-run soak fuzz-deps

$(BUILD)/hmfuzz: tests/fuzz/driver.c $(FUZZ_DEPS)
	$(CC) $(CFLAGS_BASE) -Iinclude tests/fuzz/driver.c $(FUZZ_SRC) $(BUILD)/libhugemm.a $(LDSAN) $(LDLIBS) -o $@

# The suite's regression runner links the decoder too.
$(BUILD)/tests/stress/fuzz_replay: tests/stress/fuzz_replay.c tests/harness.h $(FUZZ_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Iinclude -Itests -Itests/fuzz -DHM_SRCDIR='"$(CURDIR)"' $< $(FUZZ_SRC) \
		$(BUILD)/libhugemm.a $(LDSAN) $(LDLIBS) -o $@

fuzz-deps:
	@./tools/fuzzdeps.sh

# The library is instrumented for coverage too, so libFuzzer sees inside it;
# but not the checker and the reverse-map walk it runs for every folio,
# which would only cost time (five times more, measured).
LF_COV := -fsanitize=fuzzer-no-link
$(LF_BUILD)/src/mm/check.o $(LF_BUILD)/src/mm/anon.o: LF_COV :=
$(LF_BUILD)/src/%.o: src/%.c $(HDRS) | fuzz-deps
	@mkdir -p $(dir $@)
	clang $(LF_CFLAGS) $(LF_COV) -fPIC -fvisibility=hidden -c $< -o $@

$(LF_BUILD)/hmfuzz-libfuzzer: tests/fuzz/libfuzzer.c $(FUZZ_SRC) $(wildcard tests/fuzz/*.h) $(LF_LIB_OBJ) | fuzz-deps
	clang $(LF_CFLAGS) -fsanitize=fuzzer -Iinclude $< $(FUZZ_SRC) $(LF_LIB_OBJ) $(LDLIBS) -o $@

# A new corpus starts from 32 seeded cases of 40 steps: libFuzzer alone
# would take long to grow inputs that reach deep states.
fuzz: deps fuzz-deps $(LF_BUILD)/hmfuzz-libfuzzer $(BUILD)/hmfuzz
	@mkdir -p $(LF_BUILD)/corpus $(LF_BUILD)/crashes
	@[ -n "$$(ls -A $(LF_BUILD)/corpus)" ] || $(BUILD)/hmfuzz -s 1 -c 32 -n 40 -k -K -g $(LF_BUILD)/corpus >/dev/null 2>&1 || true
	ASAN_OPTIONS=detect_leaks=1 HMFUZZ_TOLERATE=$(FUZZ_TOLERATE) \
		$(LF_BUILD)/hmfuzz-libfuzzer -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=120 \
		-rss_limit_mb=6144 -print_final_stats=1 \
		-artifact_prefix=$(LF_BUILD)/crashes/ $(FUZZ_ARGS) $(LF_BUILD)/corpus tests/fuzz/regress

# FUZZ_SAN=thread runs the smoke under ThreadSanitizer instead.
FUZZ_SAN ?= address,undefined
fuzz-smoke: deps
	@$(MAKE) --no-print-directory SAN=$(FUZZ_SAN) fuzz-smoke-run

# Three quarters of the time the model-checked sequences, then the threads.
fuzz-smoke-run: $(BUILD)/hmfuzz
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
		$(BUILD)/hmfuzz -t $$(( $(FUZZ_SMOKE_SECONDS) * 3 / 4 )) -T $$(( $(FUZZ_SMOKE_SECONDS) / 4 )) \
		-o $(BUILD)/fuzz-crashes $(FUZZ_K) $(FUZZ_ARGS)

soak: deps $(BUILD)/hmfuzz $(BUILD)/tests/stress/migrate_threads
	$(BUILD)/hmfuzz -B -T $(SOAK_SECONDS) -K $(FUZZ_K) $(FUZZ_ARGS)
	HM_MIGRATE_SECONDS=20 $(BUILD)/tests/stress/migrate_threads
