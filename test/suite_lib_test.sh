#!/usr/bin/env bash
# suite_lib.sh's report, on small suites that end in every way a suite can:
# each must end with the right "N passed, N failed" line and exit status, and
# a suite that dies (a shell error, set -e, an `exit` in a helper) or ends
# early with status 0 (an `exit 0` before suite_end, falling off its end) must
# say where in a FAIL line. No root needed: the suites make nothing.
#   ./bazelw test //test:suite_lib_test
set -u
lib=$(readlink -f "$1")
tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/suite_lib_test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0

# The suite: case 1 passes, then what $1 says happens. Line numbers below are
# checked in the reports.
cat >"$tmp/suite.sh" <<SUITE
P=mwlibtest
. "$lib"
teardown() { :; }
leftovers() { :; }
suite_traps
unset_var() { echo "\$no_such_variable"; }
helper_exit() { exit "\$1"; }
run_case "1 passes" true
case \$1 in
unset) run_case "2 uses an unset variable" unset_var ;;
exit3) run_case "2 calls a helper that exits 3" helper_exit 3 ;;
exit0) run_case "2 calls a helper that exits 0" helper_exit 0 ;;
set-e) set -e; false ;;
stop) fail "setup"; exit 1 ;;
fails) run_case "2 fails" false ;;
early) exit 0 ;;
end) ;;
esac
run_case "3 the last case" true
[ "\$1" = falls-off ] || suite_end
SUITE

# check MODE STATUS SUMMARY [PATTERN...]: the suite run with MODE exits with
# STATUS, its last line is SUMMARY, and each PATTERN (grep -E) is in its output.
check() {
    local mode=$1 want_rc=$2 summary=$3 out rc p ok=1
    shift 3
    out=$(bash "$tmp/suite.sh" "$mode" 2>&1)
    rc=$?
    [ "$rc" -eq "$want_rc" ] || { echo "  exit status $rc, want $want_rc"; ok=""; }
    [ "$(tail -n 1 <<<"$out")" = "$summary" ] || { echo "  last line: $(tail -n 1 <<<"$out"), want: $summary"; ok=""; }
    for p in "$@"; do
        grep -qE -- "$p" <<<"$out" || { echo "  no line matching: $p"; ok=""; }
    done
    if [ -n "$ok" ]; then
        echo "PASS: $mode"
    else
        echo "FAIL: $mode; its output:"
        sed 's/^/    | /' <<<"$out"
        failures=$((failures + 1))
    fi
}

check unset 1 "2 passed, 1 failed" \
    '^FAIL: the suite died \(exit status 1\) at: echo "\$no_such_variable" during case "2 uses an unset variable"$'
check exit3 1 "2 passed, 1 failed" \
    '^FAIL: the suite died \(exit status 3\) at: exit "\$1" in helper_exit \(called at .*/suite_lib.sh:[0-9]+\) in run_case \(called at .*/suite.sh:11\) during case "2 calls a helper that exits 3"$'
check exit0 1 "2 passed, 1 failed" \
    '^FAIL: the suite ended early, before suite_end, at: exit "\$1" in helper_exit .* in run_case \(called at .*/suite.sh:12\) during case "2 calls a helper that exits 0"$'
# exit 0 at the top level before suite_end: case 3 never ran, and that fails.
check early 1 "2 passed, 1 failed" \
    '^FAIL: the suite ended early, before suite_end, at: exit 0$'
check set-e 1 "2 passed, 1 failed" '^FAIL: the suite died \(exit status 1\) at: false$'
# Stopped on purpose after a FAIL: that FAIL only.
check stop 1 "2 passed, 1 failed" '^FAIL: setup$'
check fails 1 "3 passed, 1 failed" '^FAIL: 2 fails$' '^PASS: 3 the last case$'
check end 0 "3 passed, 0 failed" '^PASS: 1 passes$' '^PASS: 3 the last case$' '^PASS: teardown leaves nothing'
# Every case ran, but the script ends without suite_end: a FAIL all the same.
check falls-off 1 "3 passed, 1 failed" \
    '^FAIL: the suite ended early, before suite_end, at: \[ "\$1" = falls-off \]$'
# None of the passing runs says FAIL.
if bash "$tmp/suite.sh" end 2>&1 | grep -q '^FAIL'; then
    echo "FAIL: a suite that ends normally printed a FAIL line"
    failures=$((failures + 1))
fi
echo "$failures failed"
[ "$failures" -eq 0 ]
