#!/bin/bash
# meshwire demo: the seed article's "curl pipy-ok:8080" (osm-edge's eBPF demo)
# on one machine, with network namespaces for nodes and pods.
#
#   ./bazelw run //test:demo [-- [--debug] [--keep] [--requests N]]
#   demo.sh [--debug] [--keep] [--requests N] MESHWIRE_LOADER MWTEST
#
#   --debug       the loader runs with debug = true; the BPF decisions
#                 (bpf_printk, "meshwire ...") are shown from the kernel's trace
#   --keep        leave everything running until Ctrl-C (try your own requests)
#   --requests N  how many times to run curl (default 6)
#
# Topology (everything in namespaces made here, prefix mwdemo<PID>-):
#
#   node1 (netns)  cni0 10.244.1.1/24 ------------- eth0 10.250.0.1/24
#     pod curl        eth0 10.244.1.2                  |  one network
#     pod pipy-ok-v1  eth0 10.244.1.3                  |  (a veth pair)
#   node2 (netns)  cni0 10.244.2.1/24 ------------- eth0 10.250.0.2/24
#     pod pipy-ok-v2  eth0 10.244.2.2
#
# Each node routes the other's pod subnet via the other's address. Every pod
# runs an mwtest sidecar as UID 1500 (outbound 127.0.0.1:15001, inbound
# 0.0.0.0:15003); pipy-ok-v1/-v2 run `mwtest http` on 0.0.0.0:8080 answering
# "Hi, I am pipy ok v1 !" / "... v2 !". In the curl pod, pipy-ok resolves
# (/etc/netns/<ns>/hosts, which `ip netns exec` bind-mounts over /etc/hosts) to
# the service VIP 10.96.0.10, which the curl pod's sidecar balances round robin
# over both versions (mwtest sidecar --route). meshwire-loader runs with the
# default configuration except --cgroup (this demo's own cgroup, which every
# pod process joins) and --pin-dir (on a private bpffs); all pods are
# registered with --ip (and --ifname eth0 when the loader has it).
#
# Exit status 0 when both versions answered, every answer was one of the two
# texts and went through the sidecars. Everything is removed on exit, also
# after a failure or Ctrl-C.
#
# Safety: nothing attaches to the machine's root cgroup; traffic stays inside
# the namespaces made here; only processes started here are signalled, by PID.

# Functions run from the EXIT trap too:
# shellcheck disable=SC2317
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C

P="mwdemo$$"
SIDECAR_UID=1500
VIP=10.96.0.10
APP_PORT=8080
NODE1_IP=10.250.0.1
NODE2_IP=10.250.0.2
# pod name, node, address
PODS=("curl 1 10.244.1.2" "pipy-ok-v1 1 10.244.1.3" "pipy-ok-v2 2 10.244.2.2")
V1_IP=10.244.1.3
V2_IP=10.244.2.2
TRACEFS=/sys/kernel/tracing

DEBUG=""
KEEP=""
REQUESTS=6
ARGS=()
BG_PIDS=()
LOADER_PID=""
CG=""
WORK=""
BPFFS=""
PIN=""
NS_MADE=()
ETC_NETNS_MADE=""
TRACEFS_MOUNTED=""
TRACING_WAS_OFF=""
LOADER_OPTS=()
HAVE_IFNAME=""
CLEANED=""
RESULT=1

say() { echo "$*"; }
log() { echo "  $*"; }
die() {
    echo "demo: $*" >&2
    exit 1
}

# indent: stdin, indented for the report.
indent() { sed 's/^/    | /'; }

usage() {
    echo "usage: $0 [--debug] [--keep] [--requests N] MESHWIRE_LOADER MWTEST" >&2
    exit 2
}

# ---------------------------------------------------------------------------
# Processes (only ones started here, by PID): show, alive, stop_pid, start_bg,
# wait_listen, cgroup2_mount, in_cgroup_cmd, empty_cgroup, remove_cgroup come
# from proc_lib.sh.
# shellcheck source=test/proc_lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/proc_lib.sh" || exit 1

ns_of() { echo "$P-$1"; }

# "${IN_CG[@]}" NS CMD...: joins the demo's cgroup (where meshwire's programs
# are attached), then runs CMD in netns NS, like a process of that pod.
IN_CG=()

# ---------------------------------------------------------------------------
# Setup

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
        --debug) DEBUG=1 ;;
        --keep) KEEP=1 ;;
        --requests)
            if [ $# -lt 2 ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then usage; fi
            REQUESTS=$2
            shift
            ;;
        -h | --help) usage ;;
        -*) usage ;;
        *) ARGS+=("$1") ;;
        esac
        shift
    done
    [ ${#ARGS[@]} -eq 2 ] || usage
    LOADER=$(readlink -f "${ARGS[0]}")
    MWTEST=$(readlink -f "${ARGS[1]}")
}

preflight() {
    [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, cgroups, BPF)"
    [ -x "$LOADER" ] || die "meshwire-loader not found or not executable: $LOADER"
    [ -x "$MWTEST" ] || die "mwtest not found or not executable: $MWTEST"
    local tool
    for tool in ip ss curl timeout awk; do
        command -v "$tool" >/dev/null || die "$tool is missing (Debian package: ${tool/ss/iproute2})"
    done
    CG2=$(cgroup2_mount)
    [ -n "$CG2" ] || die "no cgroup2 mount in /proc/self/mountinfo"
    "$LOADER" pod add --help 2>/dev/null | grep -q -- '--ifname' && HAVE_IFNAME=1
}

setup_workdir() {
    WORK=$(mktemp -d "/tmp/$P.XXXXXX") || return 1
    BPFFS="$WORK/bpffs"
    mkdir "$BPFFS" && mount -t bpf "$P-bpffs" "$BPFFS" || return 1
    PIN="$BPFFS/meshwire"
    # A loader with a control API gets a socket and state dir of the demo's own.
    "$LOADER" --help 2>/dev/null | grep -q -- '--api-socket' && LOADER_OPTS+=(--api-socket "$WORK/api.sock")
    "$LOADER" --help 2>/dev/null | grep -q -- '--state-dir' && LOADER_OPTS+=(--state-dir "$WORK/state")
    return 0
}

setup_cgroup() {
    CG="$CG2/$P"
    mkdir "$CG" || return 1
    in_cgroup_cmd "$CG"
}

add_netns() { # NAME
    ip netns add "$1" || return 1
    NS_MADE+=("$1")
    ip -n "$1" link set lo up
}

setup_topology() {
    local n spec name node ip ns
    for n in 1 2; do
        ns=$(ns_of node$n)
        add_netns "$ns" || return 1
        ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 || return 1
        ip -n "$ns" link add cni0 type bridge || return 1
        ip -n "$ns" addr add "10.244.$n.1/24" dev cni0 || return 1
        ip -n "$ns" link set cni0 up || return 1
    done
    # The two nodes on one network.
    ip -n "$(ns_of node1)" link add eth0 type veth peer name eth0 netns "$(ns_of node2)" || return 1
    ip -n "$(ns_of node1)" addr add "$NODE1_IP/24" dev eth0 || return 1
    ip -n "$(ns_of node2)" addr add "$NODE2_IP/24" dev eth0 || return 1
    ip -n "$(ns_of node1)" link set eth0 up || return 1
    ip -n "$(ns_of node2)" link set eth0 up || return 1
    ip -n "$(ns_of node1)" route add 10.244.2.0/24 via "$NODE2_IP" || return 1
    ip -n "$(ns_of node2)" route add 10.244.1.0/24 via "$NODE1_IP" || return 1
    for spec in "${PODS[@]}"; do
        read -r name node ip <<<"$spec"
        ns=$(ns_of "$name")
        add_netns "$ns" || return 1
        ip -n "$ns" link add eth0 type veth peer name "veth-$name" netns "$(ns_of "node$node")" || return 1
        ip -n "$ns" addr add "$ip/24" dev eth0 || return 1
        ip -n "$ns" link set eth0 up || return 1
        ip -n "$ns" route add default via "10.244.$node.1" || return 1
        ip -n "$(ns_of "node$node")" link set "veth-$name" master cni0 up || return 1
    done
    # The service name, in the curl pod only.
    [ -d /etc/netns ] || ETC_NETNS_MADE=1
    mkdir -p "/etc/netns/$(ns_of curl)" || return 1
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n%s\tpipy-ok pipy-ok.ebpf.svc.cluster.local\n' "$VIP" \
        >"/etc/netns/$(ns_of curl)/hosts"
}

start_loader() {
    local out="$WORK/loader.log" config=() i
    if [ -n "$DEBUG" ]; then
        printf '# meshwire demo --debug: the defaults, with bpf_printk traces\n[bpf]\ndebug = true\n' \
            >"$WORK/debug.toml"
        config=(--config "$WORK/debug.toml")
    fi
    start_bg "$out" "$LOADER" "${config[@]}" --cgroup "$CG" --pin-dir "$PIN" "${LOADER_OPTS[@]}" run
    LOADER_PID=$LAST_PID
    for ((i = 0; i < 200; i++)); do
        grep -qs 'meshwire-loader: ready' "$out" && return 0
        alive "$LOADER_PID" || break
        sleep 0.1
    done
    echo "demo: meshwire-loader did not get ready:" >&2
    show "$out" >&2
    return 1
}

mwl() { "$LOADER" --pin-dir "$PIN" "${LOADER_OPTS[@]}" "$@"; }

register_pods() {
    local spec name node ip out args
    for spec in "${PODS[@]}"; do
        read -r name node ip <<<"$spec"
        args=(--netns "/run/netns/$(ns_of "$name")" --ip "$ip")
        [ -n "$HAVE_IFNAME" ] && args+=(--ifname eth0)
        out=$(mwl pod add "${args[@]}" 2>&1) || {
            echo "demo: pod add $name failed:" >&2
            echo "$out" | indent >&2
            return 1
        }
        log "meshwire-loader pod add ${args[*]}: $out"
    done
}

start_pods() {
    local spec name node ip ns route=()
    for spec in "${PODS[@]}"; do
        read -r name node ip <<<"$spec"
        ns=$(ns_of "$name")
        route=()
        [ "$name" = curl ] && route=(--route "$VIP:$APP_PORT=$V1_IP:$APP_PORT,$V2_IP:$APP_PORT")
        start_bg "$WORK/sidecar-$name.log" "${IN_CG[@]}" "$ns" "$MWTEST" sidecar \
            --listen 127.0.0.1:15001 --inbound-listen 0.0.0.0:15003 "${route[@]}" \
            --uid "$SIDECAR_UID" --gid "$SIDECAR_UID"
        wait_listen "$ns" 0.0.0.0:15003 "$LAST_PID" "$WORK/sidecar-$name.log" || return 1
        [ "$name" = curl ] && continue
        start_bg "$WORK/app-$name.log" "${IN_CG[@]}" "$ns" "$MWTEST" http \
            --listen "0.0.0.0:$APP_PORT" --body "Hi, I am pipy ok ${name##*-} !"
        wait_listen "$ns" "0.0.0.0:$APP_PORT" "$LAST_PID" "$WORK/app-$name.log" || return 1
    done
}

# ---------------------------------------------------------------------------
# Tracing (--debug): bpf_printk lands in the kernel's global trace buffer.

setup_tracing() {
    if [ ! -e "$TRACEFS/trace" ]; then
        mount -t tracefs tracefs "$TRACEFS" || { log "cannot mount tracefs at $TRACEFS"; return 1; }
        TRACEFS_MOUNTED=1
    fi
    if [ "$(cat "$TRACEFS/tracing_on")" = 0 ]; then
        echo 1 >"$TRACEFS/tracing_on" && TRACING_WAS_OFF=1
    fi
}

# trace_mark TEXT: a line in the trace buffer, to find this run's lines after it.
trace_mark() { echo "$1" >"$TRACEFS/trace_marker"; }

# trace_since TEXT: the meshwire lines after the marker TEXT (reading `trace`
# does not consume the buffer, unlike trace_pipe).
trace_since() {
    awk -v m="$1" 'index($0, m) { on = 1; next } on && /meshwire /' "$TRACEFS/trace" |
        sed -E 's/^ *//; s/ +/ /g'
}

# follow_trace TEXT: prints new meshwire lines after the marker TEXT every
# second, for --keep (reading `trace`, so no one else's trace_pipe loses lines).
follow_trace() {
    local shown n now="$WORK/trace.now"
    shown=$(trace_since "$1" | wc -l)
    while :; do
        trace_since "$1" >"$now"
        n=$(wc -l <"$now")
        if [ "$n" -gt "$shown" ]; then
            tail -n +$((shown + 1)) "$now" | indent
            shown=$n
        fi
        sleep 1
    done
}

# ---------------------------------------------------------------------------
# The demo

run_requests() {
    local i out answers="$WORK/answers.txt"
    : >"$answers"
    say "--- curl -s pipy-ok:8080, $REQUESTS times, from the curl pod (as in the article)"
    for ((i = 1; i <= REQUESTS; i++)); do
        # env -i: no proxy settings from this shell; timeout: never hang the demo.
        out=$(timeout 10 "${IN_CG[@]}" "$(ns_of curl)" env -i PATH="$PATH" curl -s pipy-ok:8080)
        echo "${out:-(no answer: curl exit status $?)}"
        echo "$out" >>"$answers"
    done
}

# node2's own client, outside the mesh, straight to pipy-ok-v1's pod IP: the
# cross-node path that tc on pipy-ok-v1's eth0 steers to its inbound sidecar.
run_cross_node() {
    local out
    say "--- from node2 itself (not meshed): curl -s $V1_IP:$APP_PORT (crosses to node1)"
    out=$(timeout 10 ip netns exec "$(ns_of node2)" env -i PATH="$PATH" curl -s "$V1_IP:$APP_PORT")
    echo "${out:-(no answer: curl exit status $?)}"
    echo "$out" >"$WORK/cross-node.txt"
}

# count PATTERN FILE
count() { grep -c -- "$1" "$2" 2>/dev/null; }

show_paths() {
    local name
    say "--- what the sidecars and apps saw"
    log "curl pod's sidecar (outbound, load balancing):"
    grep -E '^(conn|route) ' "$WORK/sidecar-curl.log" | indent
    for name in pipy-ok-v1 pipy-ok-v2; do
        log "$name's sidecar (inbound):"
        grep '^inbound ' "$WORK/sidecar-$name.log" | indent
        log "$name's app:"
        grep '^http: ' "$WORK/app-$name.log" | indent
    done
}

# verdict: both versions answered, each answer is one of the two texts, and
# each app request came through both sidecars.
verdict() {
    local v1 v2 other via1 via2 ok=0 cross
    v1=$(count '^Hi, I am pipy ok v1 !$' "$WORK/answers.txt")
    v2=$(count '^Hi, I am pipy ok v2 !$' "$WORK/answers.txt")
    other=$((REQUESTS - v1 - v2))
    via1=$(count "via=\"via-inbound-sidecar orig=$V1_IP:$APP_PORT | via-sidecar orig=$VIP:$APP_PORT backend=$V1_IP:$APP_PORT\"" \
        "$WORK/app-pipy-ok-v1.log")
    via2=$(count "via=\"via-inbound-sidecar orig=$V2_IP:$APP_PORT | via-sidecar orig=$VIP:$APP_PORT backend=$V2_IP:$APP_PORT\"" \
        "$WORK/app-pipy-ok-v2.log")
    say "--- result"
    log "v1 answered $v1 times, v2 answered $v2 times, other answers: $other"
    log "requests the apps received through the curl pod's sidecar and their own inbound sidecar:" \
        "v1 $via1, v2 $via2"
    [ "$v1" -gt 0 ] && [ "$v2" -gt 0 ] && [ "$other" -eq 0 ] && [ "$via1" -eq "$v1" ] && [ "$via2" -eq "$v2" ] || ok=1
    if [ -n "$HAVE_IFNAME" ]; then
        cross=$(count "^inbound peer=$NODE2_IP:[0-9]* orig=$V1_IP:$APP_PORT\$" "$WORK/sidecar-pipy-ok-v1.log")
        log "node2 -> pipy-ok-v1: answer '$(cat "$WORK/cross-node.txt")', pipy-ok-v1's inbound sidecar saw it $cross time(s)"
        grep -qx 'Hi, I am pipy ok v1 !' "$WORK/cross-node.txt" && [ "$cross" -eq 1 ] || ok=1
    fi
    if [ "$ok" -eq 0 ]; then
        say "demo: OK: both versions answered, every answer through the sidecars"
    else
        say "demo: FAILED (logs above)"
    fi
    return "$ok"
}

# ---------------------------------------------------------------------------
# Teardown

cleanup() {
    [ -n "$CLEANED" ] && return
    CLEANED=1
    local pid ns
    [ -n "$LOADER_PID" ] && stop_pid "$LOADER_PID" 10
    for pid in "${BG_PIDS[@]}"; do stop_pid "$pid" 3; done
    empty_cgroup "$CG"
    [ -n "$PIN" ] && [ -e "$PIN" ] && { mwl cleanup >/dev/null 2>&1 || echo "demo: meshwire-loader cleanup failed" >&2; }
    for ns in "${NS_MADE[@]}"; do
        ip netns del "$ns" 2>/dev/null
        [ -d "/etc/netns/$ns" ] && rm -rf "/etc/netns/${ns:?}"
    done
    [ -n "$ETC_NETNS_MADE" ] && rmdir /etc/netns 2>/dev/null
    remove_cgroup "$CG"
    [ -n "$TRACING_WAS_OFF" ] && echo 0 >"$TRACEFS/tracing_on"
    [ -n "$TRACEFS_MOUNTED" ] && umount "$TRACEFS"
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        grep -qF " $BPFFS " /proc/mounts && umount "$BPFFS"
        rm -rf "$WORK"
    fi
}

# leftovers: anything of this run that still exists.
leftovers() {
    ip netns list 2>/dev/null | awk -v p="$P-" 'index($1, p) == 1 { print "netns " $1 }'
    [ -n "$CG" ] && [ -e "$CG" ] && echo "cgroup $CG"
    [ -n "$BPFFS" ] && grep -qF " $BPFFS " /proc/mounts && echo "bpffs mount $BPFFS"
    [ -n "$WORK" ] && [ -e "$WORK" ] && echo "work dir $WORK"
    compgen -G "/etc/netns/$P-*" | sed 's/^/hosts dir /'
}

on_exit() {
    local rc=$? left
    trap - EXIT
    trap '' INT TERM
    say "--- cleanup"
    cleanup
    left=$(leftovers)
    if [ -n "$left" ]; then
        echo "demo: cleanup left:"
        echo "$left" | indent
        rc=1
    else
        log "removed everything of $P (namespaces, hosts file, cgroup, pins, bpffs, work dir)"
    fi
    exit "$rc"
}

trap on_exit EXIT
trap 'echo "demo: interrupted"; exit 130' INT
trap 'echo "demo: terminated"; exit 143' TERM

# ---------------------------------------------------------------------------
# Main

parse_args "$@"
preflight
say "meshwire demo (prefix $P): the article's curl -> pipy-ok v1/v2 across two nodes, on one machine"
say "--- setup"
setup_workdir || die "work dir and private bpffs"
setup_cgroup || die "cgroup under $CG2"
setup_topology || die "namespaces, bridges and veths"
log "node1 $(ns_of node1): $NODE1_IP, pods curl 10.244.1.2, pipy-ok-v1 $V1_IP (bridge cni0 10.244.1.1/24)"
log "node2 $(ns_of node2): $NODE2_IP, pod pipy-ok-v2 $V2_IP (bridge cni0 10.244.2.1/24)"
log "the nodes share one network and route each other's pod subnet"
log "pipy-ok -> $VIP (hosts file of the curl pod); the curl pod's sidecar balances" \
    "$VIP:$APP_PORT over $V1_IP:$APP_PORT and $V2_IP:$APP_PORT"
if [ -n "$DEBUG" ]; then
    setup_tracing || die "tracing (--debug)"
fi
start_loader || die "meshwire-loader"
log "meshwire-loader (PID $LOADER_PID): default configuration${DEBUG:+ with debug = true}," \
    "--cgroup $CG --pin-dir $PIN"
log "one meshwire-loader serves both node namespaces: a loader runs per node, and these two" \
    "\"nodes\" share this machine's kernel, hence one datapath and one set of maps."
log "So its pod-IP map holds node2's pod too: the curl pod's sidecar reaches pipy-ok-v2 like a" \
    "pod on its own node (connect4 -> pipy-ok-v2:15003)."
if [ -n "$HAVE_IFNAME" ]; then
    log "The cross-node path (tc on the pod's eth0) is shown by a client on node2 outside the mesh."
else
    log "This meshwire-loader has no 'pod add --ifname' (no tc datapath): pods registered without it."
fi
register_pods || die "registering the pods"
start_pods || die "sidecars and apps"
log "sidecars (UID $SIDECAR_UID) and apps started in every pod, in cgroup $CG"

[ -n "$DEBUG" ] && trace_mark "$P requests start"
run_requests
[ -n "$HAVE_IFNAME" ] && run_cross_node
show_paths
say "--- meshwire-loader stats"
mwl stats 2>&1 | indent
if [ -n "$DEBUG" ]; then
    say "--- BPF decisions (lines with \"meshwire\" in $TRACEFS/trace since the first request)"
    sleep 0.2
    trace_since "$P requests start" | indent
fi
verdict
RESULT=$?

if [ -n "$KEEP" ]; then
    say "--- running until Ctrl-C. In another shell, a request from the curl pod:"
    echo "  sh -c 'echo \$\$ > $CG/cgroup.procs; exec ip netns exec $(ns_of curl) curl -s pipy-ok:8080'"
    if [ -n "$DEBUG" ]; then
        log "new BPF decisions follow:"
        follow_trace "$P requests start" &
        BG_PIDS+=("$!")
    fi
    # A foreground sleep: Ctrl-C ends it and runs the INT trap, which cleans up.
    while :; do sleep 1; done
fi
exit "$RESULT"
