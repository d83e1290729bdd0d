#!/bin/bash
# Acceleration (sockops + sk_msg) correctness on the running kernel.
#
#   accel_e2e.sh MESHWIRE_LOADER MWTEST
#
# Runs as root. One meshed pod with an mwtest sidecar (UID 1500, no marker
# line: a pure relay) and an app (mwtest bulk-client); the bulk server is on
# the node. The app <-> sidecar hop (loopback in the pod) is the accelerated
# one: every transfer crosses it in one direction or the other and is checked
# end to end by SHA-256. Asserts: 256 MiB both ways, 1 MiB writes (messages
# far above 64 KiB), sendfile and splice senders, half-close then reading the
# rest, either peer closing first, hundreds of concurrent connections, that
# acceleration really happened (accel_sock_added, and the pod's loopback
# carrying far fewer bytes than were transferred), and that mw_sock_hash (and
# mw_accel_state) are empty again afterwards.
#
# Everything carries the prefix ma<PID>- (namespaces, cgroup, work dir with a
# private bpffs) and is removed by the EXIT trap, which prints "N passed, N
# failed". Programs attach only to this test's cgroup; traffic stays inside the
# namespaces made here; only processes started here are signalled, by PID.

# shellcheck disable=SC2317,SC2001
P="ma$$"
NS_NODE="$P-node"
NS_POD="$P-pod"
SERVER=10.232.0.1:9000          # bulk server on the node's loopback
POD_IP=10.232.1.2
MIB=$((1 << 20))
BIG=$((256 * MIB))

# shellcheck source=test/suite_lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/suite_lib.sh" || exit 1

# Bytes received on the pod's loopback (every packet sent there is received there).
lo_bytes() { ip netns exec "$NS_POD" cat /sys/class/net/lo/statistics/rx_bytes; }

# bulk DESC ARGS...: mwtest bulk-client in the pod, in the test cgroup.
bulk() {
    local desc=$1
    shift
    run_client "$desc" "${IN_CG[@]}" "$NS_POD" "$MWTEST" bulk-client --connect "$SERVER" "$@"
}

# ---------------------------------------------------------------------------
# Setup

setup() {
    suite_workdir accel || return 1
    suite_cgroup accel || return 1
    write_config <<EOF

[acceleration]
enabled = true
EOF
    add_netns "$NS_NODE" || return 1
    ip -n "$NS_NODE" addr add 10.232.0.1/32 dev lo || return 1
    pod_netns "$NS_POD" "$NS_NODE" vp1 "$POD_IP" 10.232.1.1 || return 1

    start_bg "$WORK/server-bulk.log" ip netns exec "$NS_NODE" "$MWTEST" bulk-server --listen "$SERVER"
    wait_listen "$NS_NODE" "$SERVER" "$LAST_PID" "$WORK/server-bulk.log" || return 1

    start_loader || return 1
    pod_add pod "$NS_POD" "$POD_IP" || return 1
    start_sidecar pod "$NS_POD" --no-marker
}

# ---------------------------------------------------------------------------
# Cases

case_loader_says_on() {
    if grep -q 'mw_skmsg_redirect: attached to mw_sock_hash and mw_sock_hash6 (acceleration on)' "$WORK/loader.log"; then
        log "$(grep -m 1 'acceleration on' "$WORK/loader.log" | sed 's/^[^]]*] //')"
        return 0
    fi
    log "the loader did not turn acceleration on:"
    grep -i 'accel' "$WORK/loader.log" | indent
    return 1
}

# accelerated DESC BYTES ARGS...: one bulk run of BYTES bytes whose accelerated
# sockets are counted and whose bytes must mostly bypass the pod's loopback.
accelerated() {
    local desc=$1 bytes=$2 a0 a1 l0 l1
    shift 2
    a0=$(stat_value accel_sock_added)
    l0=$(lo_bytes)
    bulk "$desc" --bytes "$bytes" "$@" || return 1
    a1=$(stat_value accel_sock_added)
    l1=$(lo_bytes)
    log "accel_sock_added +$((a1 - a0)); the pod's loopback carried $((l1 - l0)) bytes for $bytes transferred"
    if [ $((a1 - a0)) -lt 2 ]; then
        log "no socket pair was accelerated"
        return 1
    fi
    if [ $((l1 - l0)) -gt $((bytes / 8)) ]; then
        log "more than 1/8 of the payload went through the pod's loopback: not accelerated"
        return 1
    fi
}

case_bulk_up() {
    accelerated "app -> sidecar -> server, 256 MiB in 1 MiB writes, then half-close and read the hash" \
        "$BIG" --mode up --method write --chunk "$MIB"
}

case_bulk_down() {
    accelerated "server -> sidecar -> app, 256 MiB, the app closes first" "$BIG" --mode down
}

case_sendfile_splice() {
    local rc=0
    accelerated "app sends 64 MiB with sendfile(2)" $((64 * MIB)) --mode up --method sendfile || rc=1
    accelerated "app sends 64 MiB with splice(2) (memfd -> pipe -> socket)" $((64 * MIB)) --mode up \
        --method splice || rc=1
    return "$rc"
}

case_small_and_odd_writes() {
    local rc=0
    bulk "app sends 4 MiB in 1000-byte writes" --mode up --bytes $((4 * MIB + 5)) --chunk 1000 || rc=1
    bulk "app sends 3 MiB in 200 KiB writes" --mode up --bytes $((3 * MIB + 3)) --chunk $((200 * 1024)) || rc=1
    bulk "app sends 1 byte" --mode up --bytes 1 || rc=1
    bulk "app sends nothing, half-closes, reads the hash" --mode up --bytes 0 || rc=1
    return "$rc"
}

case_close_orders() {
    local rc=0
    bulk "the app closes first (after reading 8 MiB)" --mode down --bytes $((8 * MIB)) --count 20 \
        --parallel 10 || rc=1
    bulk "the app half-closes first, then reads the hash" --mode up --bytes $((8 * MIB)) --count 20 \
        --parallel 10 || rc=1
    bulk "the app half-closes right after its request, then reads 64 MiB" --mode down-half-closed \
        --bytes $((64 * MIB)) || rc=1
    bulk "the same, 8 MiB on 20 connections at once" --mode down-half-closed --bytes $((8 * MIB)) \
        --count 20 --parallel 20 || rc=1
    return "$rc"
}

# The server closes first: the sidecar half-closes its accepted socket while
# that socket still waits for the app's side. With a blocking reader that
# wait would end in tcp_bpf_recvmsg()'s spurious EAGAIN
# (docs/acceleration.md); the sidecar, like Envoy and HAProxy, polls and retries, so
# the app gets every byte and the relay no error.
case_server_closes_first() {
    bulk "the server closes first (the app reads to EOF)" --mode down-server-closes --bytes $((8 * MIB)) \
        --count 20 --parallel 10
}

case_concurrent() {
    local rc=0 a0 a1
    a0=$(stat_value accel_sock_added)
    bulk "300 connections, 200 at once, 1 MiB up each" --mode up --bytes "$MIB" --count 300 --parallel 200 || rc=1
    bulk "300 connections, 200 at once, 1 MiB down each" --mode down --bytes "$MIB" --count 300 \
        --parallel 200 || rc=1
    bulk "300 connections, 200 at once, 64 KiB + 1 up each with sendfile" --mode up --bytes $((64 * 1024 + 1)) \
        --method sendfile --count 300 --parallel 200 || rc=1
    a1=$(stat_value accel_sock_added)
    log "accel_sock_added +$((a1 - a0)) for 900 connections"
    [ $((a1 - a0)) -ge 1800 ] || { log "expected at least 1800 (both ends of each)"; rc=1; }
    return "$rc"
}

case_maps_empty() {
    local rc=0
    wait_map_empty mw_sock_hash || rc=1
    wait_map_empty mw_accel_state || rc=1
    return "$rc"
}

case_no_errors() {
    local e
    e=$(stat_value accel_error)
    log "accel_error ${e:-?}"
    [ "${e:-1}" = 0 ]
}

relay_errors() { grep -c '^sidecar: relay' "$WORK/sidecar-pod.log"; }

# relay_clean FUNCTION: FUNCTION's outcome, and the sidecar reported no
# relay error meanwhile.
relay_clean() {
    local r0 r1
    r0=$(relay_errors)
    "$1" || return 1
    r1=$(relay_errors)
    [ "$r1" = "$r0" ] && return 0
    log "the sidecar reported $((r1 - r0)) relay errors:"
    grep '^sidecar: relay' "$WORK/sidecar-pod.log" | tail -n 5 | indent
    return 1
}

# run_relay_case NAME FUNCTION: run_case, and no relay error meanwhile.
run_relay_case() { run_case "$1" relay_clean "$2"; }

suite_traps

# ---------------------------------------------------------------------------
# Main

suite_args LOADER MWTEST -- "$@"
echo "meshwire acceleration e2e: prefix $P, kernel $(uname -r)"
preflight || exit 1
echo "--- setup"
setup || { fail "setup (namespaces, cgroup, loader with acceleration on, pod, sidecar, server)"; exit 1; }
log "cgroup $CG, pin dir $PIN, server $SERVER on the node, pod $POD_IP with its sidecar"

run_case "1 the loader attaches the sk_msg program (acceleration on)" case_loader_says_on
run_relay_case "2 256 MiB app -> server through the accelerated hop, SHA-256 checked" case_bulk_up
run_relay_case "3 256 MiB server -> app through the accelerated hop, SHA-256 checked" case_bulk_down
run_relay_case "4 sendfile and splice senders" case_sendfile_splice
run_relay_case "5 small, odd-sized and empty payloads" case_small_and_odd_writes
run_relay_case "6 the app closes first; the app half-closes, then reads the rest" case_close_orders
run_relay_case "7 the server closes first: the app gets every byte" case_server_closes_first
run_relay_case "8 hundreds of concurrent accelerated connections" case_concurrent
run_case "9 mw_sock_hash and mw_accel_state are empty again" case_maps_empty
run_case "10 no acceleration errors (accel_error 0)" case_no_errors
exit 0
