# The report and exit handling every e2e suite shares (sourced).
#
# It also holds the state every suite keeps (processes, cgroup, work dir with
# a private bpffs, namespaces) and the work dir's making and removal.
# The suite defines `teardown` (removes everything it made) and `leftovers`
# (prints whatever with its prefix $P still exists), then calls suite_traps.
# On exit, however it comes, the teardown runs, must leave nothing behind (one
# more PASS or FAIL), and the last line is "N passed, N failed".
# shellcheck shell=bash disable=SC2034 # PASSED, FAILED and the state are read by the suite

PASSED=0
FAILED=0

# What every suite makes and its teardown reads.
BG_PIDS=()   # background processes started here
LOADER_PID=""
CG=""        # the suite's cgroup
WORK=""      # work dir: config, logs, the private bpffs
BPFFS=""
PIN=""
NS_MADE=()   # network namespaces made here
TORN_DOWN=""

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

# suite_workdir TAG: the work dir /tmp/$P-TAG.XXXXXX with a private bpffs
# instance at $WORK/bpffs (nothing pinned there is visible elsewhere, and
# unmounting it releases whatever a failed cleanup left) and PIN under it.
suite_workdir() {
    WORK=$(mktemp -d "/tmp/$P-$1.XXXXXX") || return 1
    BPFFS="$WORK/bpffs"
    mkdir "$BPFFS" || return 1
    mount -t bpf "$P-bpffs" "$BPFFS" || { echo "  cannot mount bpffs at $BPFFS"; return 1; }
    PIN="$BPFFS/meshwire"
}

# suite_remove_workdir: its logs and configs kept for Bazel's test outputs,
# the bpffs unmounted, the work dir removed.
suite_remove_workdir() {
    [ -n "$WORK" ] && [ -d "$WORK" ] || return 0
    if [ -n "${TEST_UNDECLARED_OUTPUTS_DIR:-}" ] && [ -d "$TEST_UNDECLARED_OUTPUTS_DIR" ]; then
        cp "$WORK"/*.log "$WORK"/*.json "$WORK"/*.toml "$TEST_UNDECLARED_OUTPUTS_DIR"/ 2>/dev/null
    fi
    grep -qF " $BPFFS " /proc/mounts && umount "$BPFFS"
    rm -rf "$WORK"
}

# suite_leftovers: what any suite may have left with its prefix: namespaces,
# links, its cgroup, the bpffs mount, the work dir (a suite's `leftovers`
# adds its own).
suite_leftovers() {
    ip netns list 2>/dev/null | awk -v p="$P-" 'index($1, p) == 1 { print "netns " $1 }'
    ip -o link show 2>/dev/null | awk -v p="$P" 'index($0, p) { print "link " $2 }'
    [ -n "$CG" ] && [ -e "$CG" ] && echo "cgroup $CG"
    [ -n "$BPFFS" ] && grep -qF " $BPFFS " /proc/mounts && echo "bpffs mount $BPFFS"
    [ -n "$WORK" ] && [ -e "$WORK" ] && echo "work dir $WORK"
}

# bridge_conflist NAME BRIDGE SUBNET IPAM_DIR [PLUGIN_JSON...]: a node's pod
# network as a .conflist on stdout: bridge + host-local (leases in IPAM_DIR),
# then the given plugins chained after it.
bridge_conflist() {
    local more="" p
    for p in "${@:5}"; do more="$more, $p"; done
    printf '{\n  "cniVersion": "1.0.0",\n  "name": "%s",\n  "plugins": [\n' "$1"
    printf '    { "type": "bridge", "bridge": "%s", "isGateway": true, "isDefaultGateway": true, "ipMasq": false,\n' "$2"
    printf '      "ipam": { "type": "host-local", "subnet": "%s", "dataDir": "%s" } }%s\n  ]\n}\n' "$3" "$4" "$more"
}
