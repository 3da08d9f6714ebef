#!/bin/sh
# The scenario tests: every examples/scenarios/*.hms must pass; every
# tests/scenario/*.hms must fail with the exit code (default 1) and the
# message its "#! exit:" and "#! error:" lines give, the message prefixed
# by the script's name and line as hugemm run prints it. Then standard
# input, --trace and timeline. Prints "scenarios: N passed, N failed".
#
#   tests/scenario/run.sh HUGEMM SRCDIR TMPDIR
hugemm=$1
src=$2
export TMPDIR=$3	# swap files of "system swap auto ..." go here
mkdir -p "$TMPDIR" || exit 2
passed=0
failed=0

ok() { passed=$((passed + 1)); }
# Failures go to standard error, which tests/run.sh shows when a test fails.
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
contains() { grep -qF -- "$2" "$1"; }

out=$TMPDIR/out
err=$TMPDIR/err

for f in "$src"/examples/scenarios/*.hms; do
	"$hugemm" run "$f" >"$out" 2>"$err"
	rc=$?
	if [ $rc = 0 ] && contains "$out" "$f: passed:"; then
		ok
	else
		bad "$f: exit $rc"
		tail -n 20 "$err" >&2
	fi
done

for f in "$src"/tests/scenario/*.hms; do
	want_rc=$(sed -n 's/^#! exit: //p' "$f")
	want_msg=$(sed -n 's/^#! error: //p' "$f")
	"$hugemm" run "$f" >"$out" 2>"$err"
	rc=$?
	if [ "$rc" = "${want_rc:-1}" ] && contains "$err" "$f:$want_msg"; then
		ok
	else
		bad "$f: exit $rc (expected ${want_rc:-1}), stderr:"
		cat "$err" >&2
		echo "  expected it to contain: $f:$want_msg" >&2
	fi
done

# Standard input, named <stdin> in messages.
"$hugemm" run - <"$src/examples/scenarios/cow_4k.hms" >"$out" 2>"$err"
[ $? = 0 ] && contains "$out" "<stdin>: passed:" && ok || bad "run - (a passing script)"
printf 'mm m\nexpect stat nr_mms == 2\n' | "$hugemm" run - >"$out" 2>"$err"
[ $? = 1 ] && contains "$err" "<stdin>:2: expect failed: stat nr_mms is 1, expected == 2" && ok ||
	bad "run - (a failing expect): $(cat "$err")"

# report svg writes a picture of the mm (tests/integration/report.c checks
# what it draws).
printf 'system memory 64M\nmm m\nmmap a = m 0 4M PROT_READ|PROT_WRITE\nfill m a 4M 1\nreport svg m %s\n' \
	"$TMPDIR/m.svg" | "$hugemm" run - >"$out" 2>"$err"
[ $? = 0 ] && contains "$TMPDIR/m.svg" 'data-kind="2m"' && contains "$TMPDIR/m.svg" '</svg>' && ok ||
	bad "report svg: $(cat "$err")"

# --trace: each step with its result and latency, on stderr.
printf 'system memory 64M\nmm m\nexpect error EINVAL munmap m 1 4K\n' | "$hugemm" run --trace - >"$out" 2>"$err"
[ $? = 0 ] && contains "$err" "trace <stdin>:2 mm m -> 0 " &&
	contains "$err" "trace <stdin>:3 expect error EINVAL munmap m 1 4K -> 0 " && ok ||
	bad "--trace: $(cat "$err")"

# timeline: a header and samples, to the end of the run.
csv=$TMPDIR/timeline.csv
rm -f "$csv"
printf 'system memory 64M\ntimeline %s 1\nmm m\nmmap a = m 0 16M PROT_READ|PROT_WRITE\nfill m a a.len 1\n' "$csv" |
	"$hugemm" run - >"$out" 2>"$err"
rc=$?
rows=$(wc -l <"$csv" 2>/dev/null || echo 0)
last=$(tail -n 1 "$csv" 2>/dev/null | cut -d, -f2)
[ $rc = 0 ] && head -n 1 "$csv" | grep -q '^seconds,rss_bytes,swap_bytes,' && [ "$rows" -ge 3 ] &&
	[ "$last" = 16777216 ] && ok || bad "timeline: exit $rc, $rows rows, last rss '$last'"

echo "scenarios: $passed passed, $failed failed"
[ $failed = 0 ]
