# The one library of the e2e suites (test/*_e2e.sh) and of test/demo.sh
# (sourced). Every helper they share is defined here, once.
#
# A suite sets its prefix P (every namespace, link, cgroup and work dir it
# makes starts with "$P-"), sources this file, calls suite_traps and
# suite_args, then preflight, suite_workdir and suite_cgroup, runs its cases
# with run_case, and ends with suite_end (a suite exiting 0 without reaching
# it fails). On exit, however it comes, `teardown` removes what the
# run made, `leftovers` must then find nothing (one more PASS or FAIL), and
# the last line is "N passed, N failed".
#
# Safety: only processes started here are signalled, always by PID; programs
# attach only to the run's own cgroup; every loader command names the run's
# own config, pins, API socket and state dir, never the machine's.
# shellcheck shell=bash disable=SC2034 # the state below is read by the suites

set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
# No __pycache__ beside the suites' Python (test/cri/cri.py) in the source tree.
export PYTHONDONTWRITEBYTECODE=1

PASSED=0
FAILED=0

# What a run makes, and its teardown reads.
BG_PIDS=()      # background processes started here (start_bg)
LAST_PID=""     # the one start_bg started last
LOADER_PID=""   # `meshwire-loader run` (start_loader)
CG2=""          # the cgroup v2 mount (preflight)
CG=""           # the run's cgroup: the loader attaches there, clients run there
IN_CG=()        # "${IN_CG[@]}" NS CMD...: CMD in netns NS inside CG (in_cgroup_cmd)
WORK=""         # work dir: configs, logs, the private bpffs
BPFFS=""
PIN=""          # the loader's pin dir (on the private bpffs)
LOADER_DIR=""   # the loader's config (meshwire.toml) and log; "" for a loader configured elsewhere
RUN_DIR=""      # its /run/meshwire: the API socket loader.sock and the pod records
TORN_DOWN=""
declare -A COOKIE # pod name -> netns cookie, from pod_add

# The defaults of config/default.toml's [sidecar], which the suites' sidecars
# use, and the hard limit for one client run in seconds (a suite may set its
# own before sourcing this file).
: "${SIDECAR_UID:=1500}" "${SIDECAR_PORT:=15001}" "${INBOUND_PORT:=15003}" "${CLIENT_TIMEOUT:=120}"

# ---------------------------------------------------------------------------
# Report

log() { echo "  $*"; }
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }

# indent: stdin, indented for the report.
indent() { sed 's/^/    | /'; }

# show FILE [LINES]: a file's lines (or its last N lines), indented.
show() {
    [ -s "$1" ] || return 0
    if [ -n "${2:-}" ]; then tail -n "$2" "$1"; else cat "$1"; fi | indent
}

# run_case NAME CMD...: one PASS or FAIL line for CMD's outcome (CMD: a
# case function and its arguments). NAME starts with the case's id ("4b ...").
# With MESHWIRE_E2E_CASES set (ids, e.g. "1 4b"), only those cases run; the
# others say SKIP, and the summary counts them.
NOT_SELECTED=0
CASE_RUNNING="" # the case run_case is in, for suite_on_exit
run_case() {
    local name=$1
    shift
    if [ -n "${MESHWIRE_E2E_CASES:-}" ] && [[ " $MESHWIRE_E2E_CASES " != *" ${name%% *} "* ]]; then
        skip_case "$name" "not in MESHWIRE_E2E_CASES"
        NOT_SELECTED=$((NOT_SELECTED + 1))
        return 0
    fi
    echo "--- $name"
    CASE_RUNNING=$name
    if "$@"; then pass "$name"; else fail "$name"; fi
    CASE_RUNNING=""
}

# skip_case NAME REASON: a case that does not apply to this run, and why.
skip_case() {
    echo "--- $1"
    echo "SKIP: $1 ($2)"
}

# suite_end: a suite's last step, in place of `exit 0`. Only a suite that
# reached it may end with status 0: one that exits 0 before it (an `exit 0`
# at the top level or in a helper, a script that falls off its end) skipped
# the cases after that point, and its report says so in a FAIL.
SUITE_ENDED=""
suite_end() {
    SUITE_ENDED=1
    exit 0
}

# suite_died RC CMD: whether an exit with status RC while running CMD is one
# the suite did not mean: any non-zero status before a FAIL (set -u on an unset
# variable, set -e, an `exit N` in a helper), a shell error after one (CMD not
# an `exit`), or status 0 before suite_end (an early `exit 0`, falling off the
# end). A suite stops on purpose with `exit N` (N > 0) at its top level after
# a FAIL, or ends with suite_end.
suite_died() {
    local rc=$1 cmd=$2
    if [ "$rc" -ne 0 ]; then
        [ "$FAILED" -eq 0 ] || [[ $cmd != exit* ]]
    else
        [ -z "$SUITE_ENDED" ]
    fi
}

suite_on_exit() {
    # First, before another command replaces them: how the shell got here.
    local rc=$? cmd=$BASH_COMMAND left i where=""
    trap - EXIT
    trap '' INT TERM # teardown is bounded; let it finish
    # The functions the exit came from, innermost first (a shell error
    # unwinds them before this trap runs: then bash's message above has the line).
    for ((i = 1; i < ${#FUNCNAME[@]} - 1; i++)); do
        where+=" in ${FUNCNAME[i]} (called at ${BASH_SOURCE[i + 1]}:${BASH_LINENO[i]})"
    done
    [ -z "$CASE_RUNNING" ] || where+=" during case \"$CASE_RUNNING\""
    if suite_died "$rc" "$cmd"; then
        if [ "$rc" -ne 0 ]; then
            fail "the suite died (exit status $rc) at: $cmd$where"
        else
            fail "the suite ended early, before suite_end, at: $cmd$where"
            rc=1
        fi
    fi
    teardown
    echo "--- teardown"
    left=$(leftovers)
    if [ -z "$left" ]; then
        pass "teardown leaves nothing with prefix $P- (namespaces, links, cgroup, bpffs, work dir)"
    else
        fail "teardown left:"
        echo "$left" | indent
    fi
    if [ "$NOT_SELECTED" -gt 0 ]; then
        echo "$NOT_SELECTED cases not run: MESHWIRE_E2E_CASES=\"$MESHWIRE_E2E_CASES\""
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

# suite_mode: MODE from MESHWIRE_E2E_MODE, "ebpf" (the default) or
# "iptables" (interception.mode); anything else is a usage error.
suite_mode() {
    MODE=${MESHWIRE_E2E_MODE:-ebpf}
    case "$MODE" in
    ebpf | iptables) ;;
    *)
        echo "MESHWIRE_E2E_MODE=$MODE: use ebpf or iptables" >&2
        fail "usage"
        exit 2
        ;;
    esac
}

# run_iptables_case NAME CMD...: a case about the iptables mode's rules
# (MODE, from suite_mode); in eBPF mode it says SKIP and why.
run_iptables_case() {
    if [ "$MODE" = iptables ]; then run_case "$@"; else skip_case "$1" "eBPF mode: no netfilter rules are installed"; fi
}

# suite_args VAR... -- ARG...: the suite's arguments (the binaries and scripts
# e2e.bzl passes, in order), each one's real path into the variable VAR names;
# another number of them is a usage error. SUITE_TOOLS holds them all.
SUITE_TOOLS=()
suite_args() {
    local names=() name
    while [ "$1" != -- ]; do names+=("$1"); shift; done
    shift
    if [ $# -ne ${#names[@]} ]; then
        echo "usage: $(basename "$0") ${names[*]}" >&2
        fail "usage"
        exit 2
    fi
    for name in "${names[@]}"; do
        printf -v "$name" '%s' "$(readlink -f "$1")"
        SUITE_TOOLS+=("${!name}")
        shift
    done
}

# preflight [TOOL...]: root, the suite's arguments and loader, the kernel features every
# suite needs, and ip, ss, timeout, awk and TOOLs; a FAIL line for each
# missing. Sets CG2.
preflight() {
    local ok=0 f
    if [ "$(id -u)" != 0 ]; then
        fail "preflight: must run as root (network namespaces, cgroups, BPF)"
        ok=1
    fi
    for f in "${SUITE_TOOLS[@]}"; do
        [ -e "$f" ] || { fail "preflight: not found: $f"; ok=1; }
    done
    [ -x "${LOADER:-}" ] || { fail "preflight: meshwire-loader not executable: ${LOADER:-(none given)}"; ok=1; }
    CG2=$(cgroup2_mount)
    if [ -z "$CG2" ]; then
        fail "preflight: kernel feature missing: no cgroup2 (unified hierarchy) mount in /proc/self/mountinfo"
        ok=1
    fi
    if ! grep -qw bpf /proc/filesystems; then
        fail "preflight: kernel feature missing: bpffs (filesystem type 'bpf' not in /proc/filesystems, CONFIG_BPF_SYSCALL)"
        ok=1
    fi
    if [ ! -e /proc/self/ns/net ]; then
        fail "preflight: kernel feature missing: network namespaces (CONFIG_NET_NS)"
        ok=1
    fi
    for f in ip ss timeout awk "$@"; do
        command -v "$f" >/dev/null || { fail "preflight: tool missing: $f"; ok=1; }
    done
    return $ok
}

# ---------------------------------------------------------------------------
# Processes

# alive PID: true while PID runs (a zombie child does not count).
alive() {
    local s
    s=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$s" ] && [ "${s:0:1}" != Z ]
}

# stop_pid PID [GRACE_SECONDS]: SIGTERM, then SIGKILL after the grace period;
# reaps it and returns its exit status (0 if it was reaped already).
stop_pid() {
    local pid=$1 grace=${2:-3} i
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    # Reap it, unless it is gone already (reaped while a trap ran).
    if [ -e "/proc/$pid" ]; then
        wait "$pid" 2>/dev/null
        return
    fi
    return 0
}

# start_bg LOG CMD...: starts CMD in the background; its PID is in $LAST_PID.
# LOG is emptied before it returns, so a caller polling LOG never reads what
# an earlier process wrote there (a redirection in the background child would
# truncate only later). CMD must be a command, not a function, so that the
# PID is the command's own.
start_bg() {
    local out=$1
    shift
    : >"$out"
    "$@" >>"$out" 2>&1 &
    LAST_PID=$!
    BG_PIDS+=("$LAST_PID")
}

forget_pid() {
    local p keep=()
    for p in "${BG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    BG_PIDS=("${keep[@]}")
}

# stop_all: every process started here, by PID, the loader first so that it
# sees a clean SIGTERM.
stop_all() {
    local pid
    [ -n "$LOADER_PID" ] && stop_loader
    for pid in "${BG_PIDS[@]}"; do stop_pid "$pid" 3; done
    BG_PIDS=()
}

# run_wait_for SECONDS LOG CMD...: CMD under a hard time limit, waited for;
# returns its status (124: it ran out). In the background, so that a signal
# reaches the trap at once.
run_wait_for() {
    local limit=$1 out=$2 rc
    shift 2
    start_bg "$out" timeout -k 5 "$limit" "$@"
    wait "$LAST_PID"
    rc=$?
    forget_pid "$LAST_PID"
    return "$rc"
}

# run_client DESC CMD...: CMD (a client) under CLIENT_TIMEOUT, its output in
# a log of its own; prints its verdict line (all of its output on failure).
CLIENT_SEQ=0
run_client() {
    local desc=$1 out rc
    shift
    out="$WORK/client-$((++CLIENT_SEQ)).log"
    run_wait_for "$CLIENT_TIMEOUT" "$out" "$@"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        log "$desc: $(tail -n 1 "$out")"
    else
        log "$desc: exited with $rc:"
        show "$out"
    fi
    return "$rc"
}

# client NS DESC ARGS...: `mwtest client ARGS` in netns NS inside the cgroup.
client() {
    local ns=$1 desc=$2
    shift 2
    run_client "$desc" "${IN_CG[@]}" "$ns" "$MWTEST" client "$@"
}

# wait_listen NS ADDR:PORT PID LOG: polls ss until ADDR:PORT listens in NS.
wait_listen() {
    local ns=$1 addr=$2 pid=$3 out=$4 i
    for ((i = 0; i < 100; i++)); do
        if ip netns exec "$ns" ss -Hltn | awk -v a="$addr" '$4 == a { f = 1 } END { exit !f }'; then
            return 0
        fi
        if ! alive "$pid"; then
            echo "  process $pid for $addr in $ns exited:"
            show "$out" 10
            return 1
        fi
        sleep 0.1
    done
    echo "  nothing listens on $addr in $ns after 10 s"
    show "$out" 10
    return 1
}

# ---------------------------------------------------------------------------
# Namespaces and cgroups

# add_netns NAME: a network namespace with its loopback up.
add_netns() {
    ip netns add "$1" || return 1
    ip -n "$1" link set lo up
}

# pod_netns NS NODE PEER IP GW: netns NS whose eth0 has IP/24, a veth to PEER
# (GW/24) in netns NODE, and its default route via GW.
pod_netns() {
    add_netns "$1" || return 1
    pod_link "$@"
}

# pod_link NS NODE PEER IP GW: pod_netns for an existing netns NS.
pod_link() {
    local ns=$1 node=$2 peer=$3 ip=$4 gw=$5
    ip -n "$ns" link add eth0 type veth peer name "$peer" netns "$node" ||
        { echo "  cannot create a veth pair (CONFIG_VETH?)"; return 1; }
    ip -n "$ns" addr add "$ip/24" dev eth0 || return 1
    ip -n "$ns" link set eth0 up || return 1
    ip -n "$ns" route add default via "$gw" || return 1
    ip -n "$node" addr add "$gw/24" dev "$peer" || return 1
    ip -n "$node" link set "$peer" up
}

# del_netns: every network namespace with the run's prefix.
del_netns() {
    local ns
    for ns in $(ip netns list 2>/dev/null | awk -v p="$P-" 'index($1, p) == 1 { print $1 }'); do
        ip netns del "$ns" 2>/dev/null
    done
}

# cgroup2_mount: where the cgroup v2 hierarchy is mounted (empty if nowhere).
cgroup2_mount() {
    awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' \
        /proc/self/mountinfo | head -n 1
}

# suite_cgroup TAG: the run's cgroup $CG2/$P-TAG, and IN_CG for it. A run
# killed outright (SIGKILL, no trap) leaves its cgroup behind: empty ones of
# this suite whose run is gone (the digits in the name are its PID) go first.
suite_cgroup() {
    local stem=${P%%[0-9]*} old pid
    for old in "$CG2/$stem"[0-9]*"-$1"; do
        pid=${old#"$CG2/$stem"}
        pid=${pid%"-$1"}
        [[ $pid =~ ^[0-9]+$ ]] && [ "$pid" != "$$" ] || continue
        kill -0 "$pid" 2>/dev/null || [ -s "$old/cgroup.procs" ] ||
            { rmdir "$old" 2>/dev/null && echo "  removed $old, left by a run that was killed"; }
    done
    CG="$CG2/$P-$1"
    mkdir "$CG" || { echo "  cannot create cgroup $CG"; return 1; }
    in_cgroup_cmd "$CG"
}

# in_cgroup_cmd CGROUP: sets IN_CG to a command prefix: "${IN_CG[@]}" NS CMD...
# moves itself into CGROUP, then execs CMD in netns NS. A command, not a
# function, so that timeout can run it and $! is the final process: the PID
# stays the same through both execs.
in_cgroup_cmd() {
    # shellcheck disable=SC2016 # expanded by the inner sh
    IN_CG=(sh -c 'cg=$1; shift; echo $$ >"$cg/cgroup.procs" || exit 125; exec ip netns exec "$@"'
        in-cgroup "$1")
}

# empty_cgroup CG: SIGKILLs whatever is still in CG, for up to 5 s. Only for a
# cgroup the script made: all of it descends from processes started there.
empty_cgroup() {
    local i pid
    [ -n "$1" ] && [ -d "$1" ] || return 0
    for ((i = 0; i < 50; i++)); do
        [ -s "$1/cgroup.procs" ] || break
        while read -r pid; do kill -KILL "$pid" 2>/dev/null; done <"$1/cgroup.procs"
        sleep 0.1
    done
}

# remove_cgroup CG: rmdir, retried for up to 5 s while its last processes exit.
remove_cgroup() {
    local i
    [ -n "$1" ] && [ -d "$1" ] || return 0
    for ((i = 0; i < 50; i++)); do
        rmdir "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------------------
# Work dir

# suite_workdir TAG: the work dir /tmp/$P-TAG.XXXXXX with a private bpffs
# instance at $WORK/bpffs (nothing pinned there is visible elsewhere, and
# unmounting it releases whatever a failed cleanup left), PIN under it, and
# the loader's config and log in the work dir itself, its socket and records
# in run/.
suite_workdir() {
    WORK=$(mktemp -d "/tmp/$P-$1.XXXXXX") || return 1
    BPFFS="$WORK/bpffs"
    mkdir "$BPFFS" || return 1
    mount -t bpf "$P-bpffs" "$BPFFS" || { echo "  cannot mount bpffs at $BPFFS"; return 1; }
    PIN="$BPFFS/meshwire"
    LOADER_DIR=$WORK
    RUN_DIR="$WORK/run"
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

# ---------------------------------------------------------------------------
# The loader (LOADER: the binary; LOADER_DIR, RUN_DIR, PIN, CG: the instance)

# loader_cmd [CONFIG]: sets MWL to the loader's command with this instance's
# config (or CONFIG), pins, API socket and state dir, so that no command can
# reach the machine's /sys/fs/bpf/meshwire or /run/meshwire.
MWL=()
loader_cmd() {
    local conf=${1:-${LOADER_DIR:+$LOADER_DIR/meshwire.toml}}
    MWL=("$LOADER" ${conf:+--config "$conf"} --pin-dir "$PIN" --api-socket "$(api_sock)" --state-dir "$(state_dir)")
}
api_sock() { echo "$RUN_DIR/loader.sock"; }
state_dir() { echo "$RUN_DIR"; }

# write_config <TOML: the instance's config file: the sidecar's UID and
# ports, its API socket and state dir, and its pins and cgroup in [bpf],
# followed by TOML from stdin (more [bpf] keys, then other sections).
write_config() {
    {
        echo "# Generated by $(basename "$0"): the defaults but for these."
        printf '[sidecar]\nuid = %s\noutbound_port = %s\ninbound_port = %s\n\n' \
            "$SIDECAR_UID" "$SIDECAR_PORT" "$INBOUND_PORT"
        printf '[api]\nsocket = "%s"\nstate_dir = "%s"\n\n' "$(api_sock)" "$(state_dir)"
        printf '[bpf]\npin_dir = "%s"\ncgroup = "%s"\n' "$PIN" "$CG"
        cat
    } >"$LOADER_DIR/meshwire.toml"
}

# mwl ARGS...: meshwire-loader ARGS against this instance.
mwl() {
    loader_cmd
    "${MWL[@]}" "$@"
}

# loader_has_tc: the loader has `pod add --ifname` (the tc datapath).
loader_has_tc() { "$LOADER" pod add --help 2>/dev/null | grep -q -- '--ifname'; }

# start_loader [BINARY [LOG]]: `meshwire-loader run` (BINARY, default
# $LOADER) attached to CG, in the background (LOADER_PID, log LOG, default
# $LOADER_DIR/loader.log); waits up to 20 s until it says it is ready and its
# API socket exists.
start_loader() {
    local bin=${1:-$LOADER} out=${2:-$LOADER_DIR/loader.log}
    LOADER=$bin loader_cmd
    start_bg "$out" "${MWL[@]}" run --cgroup "$CG"
    LOADER_PID=$LAST_PID
    wait_loader_ready "$out" "$LOADER_PID" 20
}

# wait_loader_ready LOG PID SECONDS: until the loader PID logging to LOG says
# it is ready and its API socket exists; fails showing LOG if it exits first
# or is not ready in time.
wait_loader_ready() {
    local out=$1 pid=$2 i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -qs 'meshwire-loader: ready' "$out" && [ -S "$(api_sock)" ] && return 0
        if ! alive "$pid"; then
            log "meshwire-loader (pid $pid) exited before it was ready:"
            show "$out" 30
            return 1
        fi
        sleep 0.1
    done
    log "meshwire-loader (pid $pid) not ready after $3 s:"
    show "$out" 30
    return 1
}

# stop_loader: SIGTERM (its pins stay); its exit status in LOADER_RC.
stop_loader() {
    [ -n "$LOADER_PID" ] || return 0
    stop_pid "$LOADER_PID" 10
    LOADER_RC=$?
    forget_pid "$LOADER_PID"
    LOADER_PID=""
}

# loader_cleanup: `meshwire-loader cleanup` of the instance's pins, if any.
loader_cleanup() {
    [ -n "$PIN" ] && [ -e "$PIN" ] && [ -x "${LOADER:-}" ] || return 0
    mwl cleanup >/dev/null 2>&1 || echo "  note: meshwire-loader cleanup of $PIN failed"
}

# map_count NAME, map_capacity NAME: a pinned map's entries and capacity, and
# stat_value NAME: a counter, as `meshwire-loader maps` and `stats` print them.
map_count() { mwl maps 2>/dev/null | awk -v m="$1" '$1 == m { print $2 }'; }
map_capacity() { mwl maps 2>/dev/null | awk -v m="$1" '$1 == m { print $3 }'; }
stat_value() { mwl stats 2>/dev/null | awk -v s="$1" '$1 == s { print $2 }'; }

# wait_map_empty NAME: waits up to 10 s for the map to hold no entries.
wait_map_empty() {
    local i n
    for ((i = 0; i < 50; i++)); do
        n=$(map_count "$1")
        [ "$n" = 0 ] && break
        sleep 0.2
    done
    if [ "$n" != 0 ]; then
        log "$1 still holds ${n:-?} entries 10 s after the last connection closed"
        mwl maps 2>&1 | indent
        return 1
    fi
    log "$1: 0 entries after $((i * 2 / 10)) s"
}

# accel_socks MAP: the accelerated sockets of MAP (mw_sock_hash, or
# mw_sock_hash6 for native IPv6) from `conns`, as "LOCAL REMOTE" lines (IPv6
# addresses in brackets).
accel_socks() {
    local v6=0
    [ "$1" = mw_sock_hash6 ] && v6=1
    mwl conns 2>&1 | awk -v v6="$v6" '
        /^accelerated sockets/ { on = 1; next }
        on && $1 == "netns" && (substr($3, 1, 1) == "[") == v6 { print $3, $5 }'
}

# accel_sample_session LOG NS CONNECT MAP [ARGS...]: a 3 s `mwtest session`
# (more ARGS passed on) from an app in netns NS, in the run's cgroup, to
# CONNECT, its output in LOG. 1 s in, sets socks to MAP's accelerated sockets
# (accel_socks) and other_socks to those of other_map, the other family's map
# (mw_sock_hash6 for mw_sock_hash, and the other way round); once it is over,
# accel_added to how much accel_sock_added grew meanwhile. Logs the session's
# last line and that growth (and accel_skipped_short's); a session that breaks
# is shown and fails.
#
# With acceleration.short_connections = "learn" (the default) a hop whose
# destination's last connections were short is not accelerated until
# MW_ACCEL_HINT_WINDOW_NS (200 ms, bpf/lib/meshwire_consts.h) after the last
# of them; the cases before a session may have left such a hint (the
# sidecars' hop between two pods is one destination for every connection
# between them). So it waits that window out first: the session's connection
# is then accelerated whatever came before, as the rule says.
ACCEL_HINT_WINDOW_S=0.3
accel_sample_session() {
    local out=$1 ns=$2 connect=$3 map=$4 pid rc=0 added0 skipped0
    shift 4
    other_map=mw_sock_hash6
    [ "$map" = mw_sock_hash6 ] && other_map=mw_sock_hash
    sleep "$ACCEL_HINT_WINDOW_S"
    added0=$(stat_value accel_sock_added)
    skipped0=$(stat_value accel_skipped_short)
    start_bg "$out" "${IN_CG[@]}" "$ns" "$MWTEST" session --connect "$connect" --seconds 3 --interval-ms 20 "$@"
    pid=$LAST_PID
    sleep 1
    socks=$(accel_socks "$map")
    other_socks=$(accel_socks "$other_map")
    wait "$pid" || {
        log "the session broke:"
        show "$out"
        rc=1
    }
    forget_pid "$pid"
    accel_added=$(($(stat_value accel_sock_added) - added0))
    log "$(tail -n 1 "$out"), accel_sock_added +$accel_added, accel_skipped_short +$(($(stat_value accel_skipped_short) - skipped0))"
    return "$rc"
}

# accel_hop NAME LOCAL_RE REMOTE_RE: exactly one socket LOCAL -> REMOTE and
# one REMOTE -> LOCAL (its peer) in "$socks" (accel_socks' lines).
accel_hop() {
    local a b
    a=$(grep -cE "^$2 $3\$" <<<"$socks")
    b=$(grep -cE "^$3 $2\$" <<<"$socks")
    if [ "$a" != 1 ] || [ "$b" != 1 ]; then
        log "$1: expected both ends accelerated once, found $a and $b"
        return 1
    fi
    log "$1: both ends accelerated"
}

# expect_socks N MAP: "$socks" (MAP's sockets) holds N sockets.
expect_socks() {
    local n
    n=$(grep -c . <<<"$socks")
    [ "$n" = "$1" ] && return 0
    log "$2 held $n sockets, expected $1:"
    indent <<<"$socks"
    return 1
}

# ---------------------------------------------------------------------------
# Pods, sidecars and servers

# pod N: pod N's network namespace.
pod() { echo "$P-pod$1"; }

# pod_add NAME NS IP [ARGS...]: `pod add` of netns NS with IP; its cookie in
# COOKIE[NAME], its output in $WORK/pod-add-NAME.out and .err (shown on failure).
pod_add() {
    local name=$1 ns=$2 ip=$3 out="$WORK/pod-add-$1.out" err="$WORK/pod-add-$1.err"
    shift 3
    if ! mwl pod add --netns "/run/netns/$ns" --ip "$ip" "$@" >"$out" 2>"$err"; then
        log "pod add $name ($ns) failed:"
        show "$out"
        show "$err"
        return 1
    fi
    COOKIE[$name]=$(tr -d '[:space:]' <"$out")
}

# start_server NAME NS ADDR: `mwtest server` NAME on ADDR in netns NS
# (outside the cgroup), log $WORK/server-NAME.log.
start_server() {
    start_bg "$WORK/server-$1.log" ip netns exec "$2" "$MWTEST" server --listen "$3" --name "$1"
    wait_listen "$2" "$3" "$LAST_PID" "$WORK/server-$1.log"
}

# start_sidecar NAME NS [ARGS...]: an mwtest sidecar as SIDECAR_UID in netns
# NS inside the cgroup, outbound on 127.0.0.1:SIDECAR_PORT (and whatever ARGS
# add), log $WORK/sidecar-NAME.log; waits until it listens (on its
# --inbound-listen address too).
start_sidecar() {
    local name=$1 ns=$2 out="$WORK/sidecar-$1.log" a inbound=""
    shift 2
    for a in "$@"; do
        [ "$inbound" = next ] && inbound=$a
        [ "$a" = --inbound-listen ] && inbound=next
    done
    start_bg "$out" "${IN_CG[@]}" "$ns" "$MWTEST" sidecar --listen "127.0.0.1:$SIDECAR_PORT" \
        --uid "$SIDECAR_UID" --gid "$SIDECAR_UID" "$@"
    wait_listen "$ns" "127.0.0.1:$SIDECAR_PORT" "$LAST_PID" "$out" || return 1
    [ -z "$inbound" ] || wait_listen "$ns" "$inbound" "$LAST_PID" "$out"
}

# ---------------------------------------------------------------------------
# Teardown (the EXIT trap's) and what it must leave

# suite_teardown (what `teardown` does unless a suite defines its own): on
# failure the last lines of the logs first (per-connection lines
# left out); then the processes, whatever is left in the cgroup, the pins,
# the namespaces, the cgroup and the work dir.
suite_teardown() {
    [ -n "$TORN_DOWN" ] && return
    TORN_DOWN=1
    local f
    if [ "$FAILED" -gt 0 ] && [ -n "$WORK" ] && [ -d "$WORK" ]; then
        echo "--- logs (failures above)"
        for f in "$WORK"/loader.log "$WORK"/sidecar-*.log "$WORK"/server-*.log; do
            [ -s "$f" ] || continue
            echo "  $(basename "$f") (last lines, per-connection lines left out):"
            grep -Ev '^(conn|inbound|route) ' "$f" | tail -n 15 | indent
        done
    fi
    stop_all
    # Anything still in the cgroup descends from processes started here.
    empty_cgroup "$CG"
    loader_cleanup
    del_netns
    remove_cgroup "$CG"
    suite_remove_workdir
}

# suite_leftovers (what `leftovers` prints unless a suite defines its own,
# which may add to it): whatever with the prefix still exists: namespaces,
# links, the cgroup, the bpffs mount, work dirs.
suite_leftovers() {
    ip netns list 2>/dev/null | awk -v p="$P-" 'index($1, p) == 1 { print "netns " $1 }'
    ip -o link show 2>/dev/null | awk -v p="$P" 'index($0, p) { print "link " $2 }'
    [ -n "$CG" ] && [ -e "$CG" ] && echo "cgroup $CG"
    [ -n "$BPFFS" ] && grep -qF " $BPFFS " /proc/mounts && echo "bpffs mount $BPFFS"
    compgen -G "/tmp/$P-*" | sed 's/^/work dir /'
}

teardown() { suite_teardown; }
leftovers() { suite_leftovers; }

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
