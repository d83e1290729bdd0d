#!/bin/bash
# meshwire demo: the seed article's "curl pipy-ok:8080" (osm-edge's eBPF demo)
# on one machine, with network namespaces for nodes and pods.
#
#   ./bazelw run //test:demo [-- [--debug] [--keep] [--requests N]]
#   demo.sh [--debug] [--keep] [--requests N] MESHWIRE_LOADER MWTEST
#
#   --debug       both loaders run with debug = true; the BPF decisions
#                 (bpf_printk, "meshwire ...") are shown from the kernel's trace
#                 (one trace for both: its lines do not name the node)
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
# curl and pipy-ok-v1 are dual-stack: also fd00:244:1::2 and fd00:244:1::3
# (/64 on node1's cni0, fd00:244:1::1), and both loaders intercept native
# IPv6 (interception.ipv6 = "intercept"); one request goes over IPv6:
# curl -g http://[fd00:244:1::3]:8080 from the curl pod, through its
# sidecar's [::1]:15001 (connect6), then pipy-ok-v1's inbound sidecar on
# [fd00:244:1::3]:15003 (connect6, same node), which hands it to the app's
# [::1]:8080.
#
# Each node routes the other's pod subnet via the other's address. Every pod
# runs an mwtest sidecar as UID 1500 (outbound 127.0.0.1:15001, inbound
# 0.0.0.0:15003); pipy-ok-v1/-v2 run `mwtest http` on 0.0.0.0:8080 answering
# "Hi, I am pipy ok v1 !" / "... v2 !". In the curl pod, pipy-ok resolves
# (/etc/netns/<ns>/hosts, which `ip netns exec` bind-mounts over /etc/hosts) to
# the service VIP 10.96.0.10, which the curl pod's sidecar balances round robin
# over both versions (mwtest sidecar --route).
#
# Each node runs its own meshwire-loader, as real nodes do:
#
#   node1's loader  cgroup <cgroup2>/mwdemo<PID>/node1   pins <bpffs>/node1
#                   pods curl, pipy-ok-v1                (work dir node1/)
#   node2's loader  cgroup <cgroup2>/mwdemo<PID>/node2   pins <bpffs>/node2
#                   pod pipy-ok-v2                       (work dir node2/)
#
# Each runs with the default configuration except its own config file
# (node<N>/meshwire.toml: bpf.pin_dir, bpf.cgroup, api.socket, api.state_dir,
# interception.ipv6 = "intercept" for the IPv6 request, and bpf.debug with
# --debug), also given as --cgroup, --pin-dir,
# --api-socket and --state-dir; the pins are on a private bpffs, the cgroups
# are made here, and every process of a node's pods joins its node's cgroup.
# Pods are registered with their node's loader only, with --ip and --ifname
# eth0. So node1's maps know nothing of pipy-ok-v2: the curl pod's sidecar
# reaches pipy-ok-v1 on its own node through connect4 (inbound, same node),
# while its connection to pipy-ok-v2 (10.244.2.2:8080) leaves node1 untouched
# and is steered to pipy-ok-v2's sidecar by node2's tc program on that pod's
# eth0 (inbound, across nodes). A client on node2 outside the mesh also dials
# pipy-ok-v1 directly (node1's tc).
#
# Exit status 0 when both versions answered, every answer was one of the two
# texts and went through the sidecars, and the counters of the two loaders
# show the paths: node1 connect_inbound = the answers of v1 and the IPv6
# request (answered by v1 through both sidecars, over [fd00:244:1::3]), node2
# connect_inbound = 0, node2 tc_redirected = the answers of v2 (each logged by
# pipy-ok-v2's sidecar with orig=10.244.2.2:8080), node1 tc_redirected = 1
# (node2's own client). Everything is removed on exit, also after a failure
# or Ctrl-C.
#
# Safety: nothing attaches to the machine's root cgroup; traffic stays inside
# the namespaces made here; only processes started here are signalled, by PID.

# Functions run from the EXIT trap too:
# shellcheck disable=SC2317
P="mwdemo$$"
VIP=10.96.0.10
APP_PORT=8080
NODE1_IP=10.250.0.1
NODE2_IP=10.250.0.2
# pod name, node, address, IPv6 address (- for none)
PODS=("curl 1 10.244.1.2 fd00:244:1::2" "pipy-ok-v1 1 10.244.1.3 fd00:244:1::3" "pipy-ok-v2 2 10.244.2.2 -")
V1_IP=10.244.1.3
V1_IP6=fd00:244:1::3
V2_IP=10.244.2.2
TRACEFS=/sys/kernel/tracing

# The e2e suites' library: processes (only ones started here, by PID),
# namespaces, cgroups, the work dir, the loader, sidecars.
# shellcheck source=test/suite_lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/suite_lib.sh" || exit 1

DEBUG=""
KEEP=""
REQUESTS=6
ARGS=()
NODES=(1 2)
LOADER_PIDS=() # by node: LOADER_PIDS[1], LOADER_PIDS[2]
DEMO_CG=""     # the demo's cgroup; each node's is below it
CG_MADE=()     # by node: 1 once the node's cgroup exists
ETC_NETNS_MADE=""
TRACEFS_MOUNTED=""
TRACING_WAS_OFF=""
CLEANED=""
CLEANUP_LEFT=""
RESULT=1

say() { echo "$*"; }
die() {
    echo "demo: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 [--debug] [--keep] [--requests N] MESHWIRE_LOADER MWTEST" >&2
    exit 2
}

ns_of() { echo "$P-$1"; }

# A node's cgroup (under the demo's own), pin dir (on the private bpffs),
# work dir (config file meshwire.toml, log, run/ with the API socket and
# pod records).
node_cg() { echo "$DEMO_CG/node$1"; }
node_pin() { echo "$BPFFS/node$1"; }
node_dir() { echo "$WORK/node$1"; }

# at_node N: the library's loader helpers (mwl, start_loader, pod_add) and
# "${IN_CG[@]}" NS CMD... (joins node N's cgroup, where that node's
# meshwire-loader attached its programs, then runs CMD in netns NS, like a
# process of a pod of that node) are node N's from here on.
at_node() {
    LOADER_DIR=$(node_dir "$1")
    RUN_DIR="$LOADER_DIR/run"
    PIN=$(node_pin "$1")
    CG=$(node_cg "$1")
    in_cgroup_cmd "$CG"
}

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
    suite_args LOADER MWTEST -- "${ARGS[@]}"
}

# demo_preflight: the suites' preflight (root, binaries, kernel features,
# tools), and the tc datapath.
demo_preflight() {
    preflight curl || exit 1
    # Without tc (pod add --ifname), nothing steers a connection from another
    # node to the pod's sidecar: the curl pod could not reach pipy-ok-v2's.
    loader_has_tc ||
        die "this meshwire-loader has no 'pod add --ifname' (no tc datapath): node2's pod cannot be reached across nodes"
}

setup_workdir() {
    local n
    suite_workdir demo || return 1
    for n in "${NODES[@]}"; do mkdir "$(node_dir "$n")" || return 1; done
}

# The demo's cgroup, and one below it per node: a node's loader attaches to
# its node's cgroup only, never to the parent or the root.
setup_cgroup() {
    local n
    DEMO_CG="$CG2/$P"
    mkdir "$DEMO_CG" || return 1
    for n in "${NODES[@]}"; do
        mkdir "$(node_cg "$n")" || return 1
        CG_MADE[n]=1
    done
}

# write_node_config N: node N's configuration file (the defaults, but for the
# node's own pins, cgroup, API socket and state dir; debug with --debug).
write_node_config() {
    at_node "$1"
    {
        if [ -n "$DEBUG" ]; then echo "debug = true"; fi
        printf '\n[interception]\nipv6 = "intercept"\n'
    } | write_config
}

setup_topology() {
    local n spec name node ip ip6 ns
    for n in 1 2; do
        ns=$(ns_of node$n)
        add_netns "$ns" || return 1
        ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 || return 1
        ip -n "$ns" link add cni0 type bridge || return 1
        ip -n "$ns" addr add "10.244.$n.1/24" dev cni0 || return 1
        ip -n "$ns" link set cni0 up || return 1
    done
    ip -n "$(ns_of node1)" -6 addr add fd00:244:1::1/64 dev cni0 nodad || return 1
    # The two nodes on one network.
    ip -n "$(ns_of node1)" link add eth0 type veth peer name eth0 netns "$(ns_of node2)" || return 1
    ip -n "$(ns_of node1)" addr add "$NODE1_IP/24" dev eth0 || return 1
    ip -n "$(ns_of node2)" addr add "$NODE2_IP/24" dev eth0 || return 1
    ip -n "$(ns_of node1)" link set eth0 up || return 1
    ip -n "$(ns_of node2)" link set eth0 up || return 1
    ip -n "$(ns_of node1)" route add 10.244.2.0/24 via "$NODE2_IP" || return 1
    ip -n "$(ns_of node2)" route add 10.244.1.0/24 via "$NODE1_IP" || return 1
    for spec in "${PODS[@]}"; do
        read -r name node ip ip6 <<<"$spec"
        ns=$(ns_of "$name")
        add_netns "$ns" || return 1
        ip -n "$ns" link add eth0 type veth peer name "veth-$name" netns "$(ns_of "node$node")" || return 1
        ip -n "$ns" addr add "$ip/24" dev eth0 || return 1
        ip -n "$ns" link set eth0 up || return 1
        ip -n "$ns" route add default via "10.244.$node.1" || return 1
        ip -n "$(ns_of "node$node")" link set "veth-$name" master cni0 up || return 1
        [ "$ip6" = - ] || ip -n "$ns" -6 addr add "$ip6/64" dev eth0 nodad || return 1
    done
    # The service name, in the curl pod only.
    [ -d /etc/netns ] || ETC_NETNS_MADE=1
    mkdir -p "/etc/netns/$(ns_of curl)" || return 1
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n%s\tpipy-ok pipy-ok.ebpf.svc.cluster.local\n' "$VIP" \
        >"/etc/netns/$(ns_of curl)/hosts"
}

# start_node_loader N: node N's meshwire-loader, in the background until cleanup.
start_node_loader() {
    write_node_config "$1"
    start_loader || return 1
    LOADER_PIDS[$1]=$LOADER_PID
    LOADER_PID=""
}

# Every pod is registered with its own node's loader only.
register_pods() {
    local spec name node ip ip6 v6
    for spec in "${PODS[@]}"; do
        read -r name node ip ip6 <<<"$spec"
        v6=()
        [ "$ip6" = - ] || v6=(--ip "$ip6")
        at_node "$node"
        pod_add "$name" "$(ns_of "$name")" "$ip" "${v6[@]}" --ifname eth0 || return 1
        log "node$node: meshwire-loader pod add --netns /run/netns/$(ns_of "$name") --ip $ip ${v6[*]} --ifname eth0:" \
            "${COOKIE[$name]}"
    done
}

start_pods() {
    local spec name node ip ip6 ns route=() v6=()
    for spec in "${PODS[@]}"; do
        read -r name node ip ip6 <<<"$spec"
        ns=$(ns_of "$name")
        route=()
        [ "$name" = curl ] && route=(--route "$VIP:$APP_PORT=$V1_IP:$APP_PORT,$V2_IP:$APP_PORT")
        # Dual-stack pods: the sidecar's IPv6 listeners too.
        v6=()
        [ "$ip6" = - ] || v6=(--listen6 "[::1]:$SIDECAR_PORT" --inbound-listen6 "[$ip6]:$INBOUND_PORT")
        at_node "$node"
        start_sidecar "$name" "$ns" --inbound-listen "0.0.0.0:$INBOUND_PORT" "${v6[@]}" "${route[@]}" || return 1
        [ "$ip6" = - ] || wait_listen "$ns" "[$ip6]:$INBOUND_PORT" "$LAST_PID" "$WORK/sidecar-$name.log" || return 1
        [ "$name" = curl ] && continue
        start_bg "$WORK/app-$name.log" "${IN_CG[@]}" "$ns" "$MWTEST" http \
            --listen "0.0.0.0:$APP_PORT" --body "Hi, I am pipy ok ${name##*-} !"
        wait_listen "$ns" "0.0.0.0:$APP_PORT" "$LAST_PID" "$WORK/app-$name.log" || return 1
        [ "$ip6" = - ] && continue
        # Its inbound sidecar hands IPv6 connections to the app on [::1].
        start_bg "$WORK/app6-$name.log" "${IN_CG[@]}" "$ns" "$MWTEST" http \
            --listen "[::1]:$APP_PORT" --body "Hi, I am pipy ok ${name##*-} !"
        wait_listen "$ns" "[::1]:$APP_PORT" "$LAST_PID" "$WORK/app6-$name.log" || return 1
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
    at_node 1
    for ((i = 1; i <= REQUESTS; i++)); do
        # env -i: no proxy settings from this shell; timeout: never hang the demo.
        out=$(timeout 10 "${IN_CG[@]}" "$(ns_of curl)" env -i PATH="$PATH" curl -s pipy-ok:8080)
        echo "${out:-(no answer: curl exit status $?)}"
        echo "$out" >>"$answers"
    done
}

# One request over native IPv6 from the curl pod to pipy-ok-v1's IPv6
# address: both pods' sidecars, through connect6 on node1.
run_ipv6_request() {
    local out
    say "--- over IPv6, from the curl pod: curl -s -g http://[$V1_IP6]:$APP_PORT/ (dual-stack pods, same node)"
    at_node 1
    out=$(timeout 10 "${IN_CG[@]}" "$(ns_of curl)" env -i PATH="$PATH" curl -s -g "http://[$V1_IP6]:$APP_PORT/")
    echo "${out:-(no answer: curl exit status $?)}"
    echo "$out" >"$WORK/ipv6.txt"
}

# node2's own client, outside the mesh, straight to pipy-ok-v1's pod IP: the
# cross-node path that node1's tc on pipy-ok-v1's eth0 steers to its inbound
# sidecar.
run_cross_node() {
    local out
    say "--- from node2 itself (not meshed): curl -s $V1_IP:$APP_PORT (crosses to node1)"
    out=$(timeout 10 ip netns exec "$(ns_of node2)" env -i PATH="$PATH" curl -s "$V1_IP:$APP_PORT")
    echo "${out:-(no answer: curl exit status $?)}"
    echo "$out" >"$WORK/cross-node.txt"
}

# count PATTERN FILE
count() { grep -c -- "$1" "$2" 2>/dev/null; }

# show_stats: both loaders' counters ("NAME VALUE" lines), side by side; kept
# in node<N>/stats.txt for the verdict.
show_stats() {
    local n ok=1
    say "--- meshwire-loader stats, per node (meshwire-loader --config node<N>/meshwire.toml ... stats)"
    for n in "${NODES[@]}"; do
        at_node "$n"
        mwl stats >"$LOADER_DIR/stats.txt" 2>&1 || ok=""
    done
    if [ -n "$ok" ]; then
        {
            printf '%-22s %8s %8s\n' counter node1 node2
            paste -d ' ' "$(node_dir 1)/stats.txt" "$(node_dir 2)/stats.txt" |
                awk '{ printf "%-22s %8s %8s\n", $1, $2, $4 }'
        } | indent
    else
        for n in "${NODES[@]}"; do
            log "node$n:"
            indent <"$(node_dir "$n")/stats.txt"
        done
    fi
}

# counter N NAME: node N's counter NAME (empty if stats failed).
counter() { awk -v n="$2" '$1 == n { print $2 }' "$(node_dir "$1")/stats.txt" 2>/dev/null; }

# eq A B: A and B are the same number.
eq() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" -eq "$2" ] 2>/dev/null; }

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
        [ -e "$WORK/app6-$name.log" ] || continue
        log "$name's app on [::1]:$APP_PORT (IPv6):"
        grep '^http: ' "$WORK/app6-$name.log" | indent
    done
}

# verdict: both versions answered, each answer is one of the two texts, each
# app request came through both sidecars, and the two loaders' counters show
# v1 reached on node1 (connect_inbound) and v2 across the nodes (node2's tc).
verdict() {
    local v1 v2 other via1 via2 ok=0 cross orig2 in1 in2 tc1 tc2 via6
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
    # curl -> pipy-ok-v1, same node: node1's connect4 sent the curl pod's
    # sidecar to pipy-ok-v1's sidecar; node2's loader saw none of it.
    # The IPv6 request: through the curl pod's sidecar ([::1]:15001) and
    # pipy-ok-v1's inbound sidecar, which node1's connect6 chose: one more
    # connect_inbound on node1.
    via6=$(count "via=\"via-inbound-sidecar orig=\[$V1_IP6\]:$APP_PORT | via-sidecar orig=\[$V1_IP6\]:$APP_PORT\"" \
        "$WORK/app6-pipy-ok-v1.log")
    log "curl -> [$V1_IP6]:$APP_PORT over IPv6: answer '$(cat "$WORK/ipv6.txt")', through both sidecars $via6 time(s)"
    grep -qx 'Hi, I am pipy ok v1 !' "$WORK/ipv6.txt" && [ "$via6" -eq 1 ] || ok=1
    in1=$(counter 1 connect_inbound)
    in2=$(counter 2 connect_inbound)
    log "curl -> pipy-ok-v1 on the same node: connect_inbound node1 ${in1:-?} (v1's answers: $v1, and the IPv6 request)," \
        "node2 ${in2:-?} (expected 0)"
    eq "$in1" $((v1 + 1)) && eq "$in2" 0 || ok=1
    # curl -> pipy-ok-v2, across nodes: node1 left the connection alone, node2's
    # tc on pipy-ok-v2's eth0 steered it to pipy-ok-v2's sidecar.
    tc2=$(counter 2 tc_redirected)
    orig2=$(count "^inbound peer=10\.244\.1\.2:[0-9]* orig=$V2_IP:$APP_PORT\$" "$WORK/sidecar-pipy-ok-v2.log")
    log "curl -> pipy-ok-v2 across nodes: tc_redirected node2 ${tc2:-?} (v2's answers: $v2)," \
        "pipy-ok-v2's inbound sidecar saw $orig2 connection(s) from the curl pod with orig=$V2_IP:$APP_PORT"
    eq "$tc2" "$v2" && eq "$orig2" "$v2" || ok=1
    # node2 (not meshed) -> pipy-ok-v1: node1's tc, its only tc redirection.
    tc1=$(counter 1 tc_redirected)
    cross=$(count "^inbound peer=$NODE2_IP:[0-9]* orig=$V1_IP:$APP_PORT\$" "$WORK/sidecar-pipy-ok-v1.log")
    log "node2 -> pipy-ok-v1: answer '$(cat "$WORK/cross-node.txt")', pipy-ok-v1's inbound sidecar saw it" \
        "$cross time(s), tc_redirected node1 ${tc1:-?} (expected 1)"
    grep -qx 'Hi, I am pipy ok v1 !' "$WORK/cross-node.txt" && [ "$cross" -eq 1 ] && eq "$tc1" 1 || ok=1
    if [ "$ok" -eq 0 ]; then
        say "demo: OK: both versions answered, every answer through the sidecars;" \
            "v1 on node1 via connect4 (and once over IPv6 via connect6), v2 across nodes via node2's tc"
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
    local n
    for n in "${!LOADER_PIDS[@]}"; do
        stop_pid "${LOADER_PIDS[n]}" 10
        forget_pid "${LOADER_PIDS[n]}"
    done
    stop_all
    for n in "${!CG_MADE[@]}"; do empty_cgroup "$(node_cg "$n")"; done
    # Each node's pins (cgroup links, tc links in its pods' namespaces, maps),
    # while the namespaces still exist.
    for n in "${NODES[@]}"; do
        [ -n "$BPFFS" ] || break
        at_node "$n"
        loader_cleanup
        [ -e "$PIN" ] && CLEANUP_LEFT+="pins of node$n under $PIN: $(cd "$PIN" && find . -mindepth 1 | tr '\n' ' ')"$'\n'
    done
    del_netns
    rm -rf "/etc/netns/$P-"*
    [ -n "$ETC_NETNS_MADE" ] && rmdir /etc/netns 2>/dev/null
    for n in "${!CG_MADE[@]}"; do remove_cgroup "$(node_cg "$n")"; done
    remove_cgroup "$DEMO_CG"
    [ -n "$TRACING_WAS_OFF" ] && echo 0 >"$TRACEFS/tracing_on"
    [ -n "$TRACEFS_MOUNTED" ] && umount "$TRACEFS"
    suite_remove_workdir
}

# demo_leftovers: anything of this run that still exists.
demo_leftovers() {
    local n
    for n in "${!LOADER_PIDS[@]}"; do
        alive "${LOADER_PIDS[n]}" && echo "node$n's meshwire-loader, PID ${LOADER_PIDS[n]}"
    done
    printf '%s' "$CLEANUP_LEFT"
    for n in "${!CG_MADE[@]}"; do
        [ -e "$(node_cg "$n")" ] && echo "cgroup $(node_cg "$n")"
    done
    CG=$DEMO_CG leftovers
    compgen -G "/etc/netns/$P-*" | sed 's/^/hosts dir /'
}

on_exit() {
    local rc=$? left
    trap - EXIT
    trap '' INT TERM
    say "--- cleanup"
    cleanup
    left=$(demo_leftovers)
    if [ -n "$left" ]; then
        echo "demo: cleanup left:"
        echo "$left" | indent
        rc=1
    else
        log "removed everything of $P (both loaders, namespaces, hosts file, cgroups, pins, bpffs, work dir)"
    fi
    exit "$rc"
}

trap on_exit EXIT
trap 'echo "demo: interrupted"; exit 130' INT
trap 'echo "demo: terminated"; exit 143' TERM

# ---------------------------------------------------------------------------
# Main

parse_args "$@"
demo_preflight
say "meshwire demo (prefix $P): the article's curl -> pipy-ok v1/v2 across two nodes, on one machine"
say "--- setup"
setup_workdir || die "work dir and private bpffs"
setup_cgroup || die "cgroups under $CG2"
setup_topology || die "namespaces, bridges and veths"
log "node1 $(ns_of node1): $NODE1_IP, pods curl 10.244.1.2, pipy-ok-v1 $V1_IP (bridge cni0 10.244.1.1/24)"
log "node2 $(ns_of node2): $NODE2_IP, pod pipy-ok-v2 $V2_IP (bridge cni0 10.244.2.1/24)"
log "the nodes share one network and route each other's pod subnet"
log "pipy-ok -> $VIP (hosts file of the curl pod); the curl pod's sidecar balances" \
    "$VIP:$APP_PORT over $V1_IP:$APP_PORT and $V2_IP:$APP_PORT"
if [ -n "$DEBUG" ]; then
    setup_tracing || die "tracing (--debug)"
fi
for n in "${NODES[@]}"; do
    start_node_loader "$n" || die "node$n's meshwire-loader"
    log "node$n's meshwire-loader (PID ${LOADER_PIDS[n]}): default configuration${DEBUG:+ with debug = true}" \
        "but --config $(node_dir "$n")/meshwire.toml --cgroup $(node_cg "$n") --pin-dir $(node_pin "$n")"
done
log "a loader per node, as in a cluster: each attaches to its own node's cgroup (which its pods'" \
    "processes join) and has its own maps, and registers its own pods only."
log "So node1's maps know nothing of pipy-ok-v2: the curl pod's sidecar reaches pipy-ok-v1 through" \
    "node1's connect4 (-> $V1_IP:15003), pipy-ok-v2 across the nodes' network, where node2's tc on its" \
    "eth0 steers it to $V2_IP:15003."
log "A client on node2 outside the mesh also dials pipy-ok-v1 directly: node1's tc on its eth0."
register_pods || die "registering the pods"
start_pods || die "sidecars and apps"
log "sidecars (UID $SIDECAR_UID) and apps started in every pod, in their node's cgroup" \
    "($(node_cg 1), $(node_cg 2))"

[ -n "$DEBUG" ] && trace_mark "$P requests start"
run_requests
run_ipv6_request
run_cross_node
show_paths
show_stats
if [ -n "$DEBUG" ]; then
    say "--- BPF decisions of both nodes' programs (lines with \"meshwire\" in $TRACEFS/trace since" \
        "the first request; one kernel, so the lines do not say which node)"
    sleep 0.2
    trace_since "$P requests start" | indent
fi
verdict
RESULT=$?

if [ -n "$KEEP" ]; then
    say "--- running until Ctrl-C. In another shell, a request from the curl pod:"
    echo "  sh -c 'echo \$\$ > $(node_cg 1)/cgroup.procs; exec ip netns exec $(ns_of curl) curl -s pipy-ok:8080'"
    log "node1's and node2's counters: $LOADER --config $(node_dir 1)/meshwire.toml stats (and node2)"
    if [ -n "$DEBUG" ]; then
        log "new BPF decisions follow:"
        follow_trace "$P requests start" &
        BG_PIDS+=("$!")
    fi
    # A foreground sleep: Ctrl-C ends it and runs the INT trap, which cleans up.
    while :; do sleep 1; done
fi
exit "$RESULT"
