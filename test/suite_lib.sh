# The report and exit handling every e2e suite shares (sourced).
#
# The suite defines `teardown` (removes everything it made) and `leftovers`
# (prints whatever with its prefix $P still exists), then calls suite_traps.
# On exit, however it comes, the teardown runs, must leave nothing behind (one
# more PASS or FAIL), and the last line is "N passed, N failed".
# shellcheck shell=bash disable=SC2034 # PASSED, FAILED are read by the suite

PASSED=0
FAILED=0

log() { echo "  $*"; }
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }

# run_case NAME FUNCTION: one PASS or FAIL line for FUNCTION's outcome.
run_case() {
    echo "--- $1"
    if "$2"; then pass "$1"; else fail "$1"; fi
}

suite_on_exit() {
    local rc=$? left
    trap - EXIT
    trap '' INT TERM # teardown is bounded; let it finish
    teardown
    echo "--- teardown"
    left=$(leftovers)
    if [ -z "$left" ]; then
        pass "teardown leaves nothing with prefix $P- (namespaces, links, cgroup, bpffs, work dir)"
    else
        fail "teardown left:"
        echo "$left" | sed 's/^/    | /'
    fi
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -gt 0 ] && exit 1
    exit "$rc"
}

suite_traps() {
    trap suite_on_exit EXIT
    trap 'echo "interrupted"; FAILED=$((FAILED + 1)); exit 130' INT
    trap 'echo "terminated"; FAILED=$((FAILED + 1)); exit 143' TERM
}
