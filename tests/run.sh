#!/bin/sh
# Run every test binary given, add up their "N passed, N failed" lines and
# print the total as the last line. A binary that crashes, or ends without
# its line, counts as one failure.
passed=0
failed=0
status=0
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 suppressions=$(pwd)/tests/tsan.supp}"
for t in "$@"; do
	name=${t#build/*/}
	start=$(date +%s)
	out=$("$t" 2>"$t.log")
	rc=$?
	line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
	if [ -z "$line" ]; then
		echo "$name: crashed or gave no result (exit $rc); log:"
		tail -n 30 "$t.log"
		failed=$((failed + 1))
		status=1
		continue
	fi
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')
	f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')
	passed=$((passed + p))
	failed=$((failed + f))
	echo "$name: $p passed, $f failed ($(( $(date +%s) - start ))s)"
	if [ "$rc" != 0 ] || [ "$f" != 0 ]; then
		status=1
		grep -E 'FAIL|hm_check|ERROR|WARNING' "$t.log" | head -n 30
	fi
done
echo "$passed passed, $failed failed"
exit $status
