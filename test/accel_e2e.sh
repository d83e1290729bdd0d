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
# carrying far fewer bytes than were transferred), that a socket's
# mw_accel_state entry goes at its FIN while the connection lives (8e), and
# that mw_sock_hash (and mw_accel_state) are empty again afterwards.
#
# Over IPv6 (interception.ipv6 = "intercept"; cases 8a-8c): the pod is
# dual-stack, its sidecar also listens on [::1] and on its IPv6 address's
# inbound port, and a second pod (pod2, its app and sidecar) dials it. An
# app's native IPv6 transfers through its sidecar on [::1] (SHA-256 checked)
# and v4-mapped ones through the IPv4 sidecar are accelerated, and the three
# hops of pod2's app -> pod1's app over IPv6 (pod2's app -> its sidecar on
# [::1], pod2's sidecar -> pod1's sidecar between the pods' IPv6 addresses,
# pod1's sidecar -> its app on [::1]) each have both ends in mw_sock_hash6
# while the connection lives: map entries and accel_sock_added prove it, not
# only the data.
#
# Short connections (cases 10a-15): cases 1-10 run with
# acceleration.short_connections = "accelerate" (they open hundreds of short
# connections and check each is accelerated; case 10a proves every one-request
# connection is), then the loader restarts with "learn" (the default), and
# one-request connections to one destination stop being accelerated after a
# run of four short ones (accel_skipped_short; every echo checked), the first
# after the 200 ms window is accelerated again, and a long-lived connection's
# report resets the run, so the following ones are accelerated again.
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
SERVER6="[fd00:232::1]:9000"    # the same over IPv6
SERVER_MAPPED="[::ffff:10.232.0.1]:9000" # the IPv4 server, dialled from an AF_INET6 socket
ECHO4=10.232.0.1:7071           # echo servers on the node, for long-lived sessions
ECHO6="[fd00:232::1]:7071"
POD_IP=10.232.1.2
POD_IP6=fd00:232:1::2
NS_POD2="$P-pod2"               # a second pod, dialling pod1's app over IPv6
POD2_IP=10.232.2.2
POD2_IP6=fd00:232:2::2
APP_PORT=7072                   # pod1's echo app, reached through both sidecars
MIB=$((1 << 20))
BIG=$((256 * MIB))

# shellcheck source=test/suite_lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/suite_lib.sh" || exit 1

# Bytes received on the pod's loopback (every packet sent there is received there).
lo_bytes() { ip netns exec "$NS_POD" cat /sys/class/net/lo/statistics/rx_bytes; }
# ... and the payload in them, at most: each packet has 40 bytes of IP and TCP
# headers or more (ACKs are all headers).
lo_payload() {
    local b p
    b=$(ip netns exec "$NS_POD" cat /sys/class/net/lo/statistics/rx_bytes)
    p=$(ip netns exec "$NS_POD" cat /sys/class/net/lo/statistics/rx_packets)
    echo $((b - 40 * p))
}

# bulk DESC ARGS...: mwtest bulk-client in the pod, in the test cgroup, to
# $CONNECT (the IPv4 bulk server unless a case sets it).
bulk() {
    local desc=$1
    shift
    run_client "$desc" "${IN_CG[@]}" "$NS_POD" "$MWTEST" bulk-client --connect "${CONNECT:-$SERVER}" "$@"
}

# ---------------------------------------------------------------------------
# Setup

# accel_config SHORT: the instance's config, with acceleration.short_connections = SHORT.
accel_config() {
    write_config <<EOF

[interception]
ipv6 = "intercept"

[acceleration]
enabled = true
short_connections = "$1"
EOF
}

setup() {
    suite_workdir accel || return 1
    suite_cgroup accel || return 1
    # Cases 1-10 open many short connections and check that each is
    # accelerated: the behaviour "accelerate" keeps. Learning: cases 11-15.
    accel_config accelerate || return 1
    local i ns a
    add_netns "$NS_NODE" || return 1
    ip -n "$NS_NODE" addr add 10.232.0.1/32 dev lo || return 1
    ip netns exec "$NS_NODE" sysctl -qw net.ipv6.conf.all.forwarding=1 || return 1
    ip -n "$NS_NODE" -6 addr add fd00:232::1/128 dev lo nodad || return 1
    pod_netns "$NS_POD" "$NS_NODE" vp1 "$POD_IP" 10.232.1.1 || return 1
    pod_netns "$NS_POD2" "$NS_NODE" vp2 "$POD2_IP" 10.232.2.1 || return 1
    for i in 1 2; do
        ns=$NS_POD
        [ "$i" = 2 ] && ns=$NS_POD2
        ip -n "$ns" -6 addr add "fd00:232:$i::2/64" dev eth0 nodad || return 1
        ip -n "$NS_NODE" -6 addr add "fd00:232:$i::1/64" dev "vp$i" nodad || return 1
        ip -n "$ns" -6 route add default via "fd00:232:$i::1" || return 1
    done

    start_bg "$WORK/server-bulk.log" ip netns exec "$NS_NODE" "$MWTEST" bulk-server --listen "$SERVER"
    wait_listen "$NS_NODE" "$SERVER" "$LAST_PID" "$WORK/server-bulk.log" || return 1
    start_bg "$WORK/server-bulk6.log" ip netns exec "$NS_NODE" "$MWTEST" bulk-server --listen "$SERVER6"
    wait_listen "$NS_NODE" "$SERVER6" "$LAST_PID" "$WORK/server-bulk6.log" || return 1
    i=0
    for a in "$ECHO4" "$ECHO6"; do
        start_bg "$WORK/server-echo-$((++i)).log" ip netns exec "$NS_NODE" "$MWTEST" echo --listen "$a"
        wait_listen "$NS_NODE" "$a" "$LAST_PID" "$WORK/server-echo-$i.log" || return 1
    done
    # pod1's app for the three IPv6 hops: its sidecar delivers to [::1].
    start_bg "$WORK/app-echo.log" "${IN_CG[@]}" "$NS_POD" "$MWTEST" echo --listen "[::1]:$APP_PORT"
    wait_listen "$NS_POD" "[::1]:$APP_PORT" "$LAST_PID" "$WORK/app-echo.log" || return 1

    start_loader || return 1
    pod_add pod "$NS_POD" "$POD_IP" --ip "$POD_IP6" || return 1
    pod_add pod2 "$NS_POD2" "$POD2_IP" --ip "$POD2_IP6" || return 1
    start_sidecar pod "$NS_POD" --no-marker --listen6 "[::1]:$SIDECAR_PORT" \
        --inbound-listen6 "[$POD_IP6]:$INBOUND_PORT" || return 1
    wait_listen "$NS_POD" "[::1]:$SIDECAR_PORT" "$LAST_PID" "$WORK/sidecar-pod.log" || return 1
    wait_listen "$NS_POD" "[$POD_IP6]:$INBOUND_PORT" "$LAST_PID" "$WORK/sidecar-pod.log" || return 1
    start_sidecar pod2 "$NS_POD2" --no-marker --listen6 "[::1]:$SIDECAR_PORT" || return 1
    wait_listen "$NS_POD2" "[::1]:$SIDECAR_PORT" "$LAST_PID" "$WORK/sidecar-pod2.log"
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
# sockets are counted and whose bytes must mostly bypass the pod's loopback,
# unless the reader fell behind: accel_bulk grew (a sender nothing was
# redirected to saw its reader hold 4 MiB of redirected bytes unread, so the
# hop was accelerated, and left acceleration: the rest went through TCP) or
# accel_lagged did (the same for a socket that cannot leave).
accelerated() {
    local desc=$1 bytes=$2 a0 a1 l0 l1 g0 g1 b0 b1 p0 p1
    shift 2
    a0=$(stat_value accel_sock_added)
    g0=$(stat_value accel_lagged)
    b0=$(stat_value accel_bulk)
    l0=$(lo_bytes)
    p0=$(lo_payload)
    bulk "$desc" --bytes "$bytes" "$@" || return 1
    a1=$(stat_value accel_sock_added)
    g1=$(stat_value accel_lagged)
    b1=$(stat_value accel_bulk)
    l1=$(lo_bytes)
    p1=$(lo_payload)
    log "accel_sock_added +$((a1 - a0)), accel_bulk +$((b1 - b0)), accel_lagged +$((g1 - g0)); the pod's loopback carried $((l1 - l0)) bytes for $bytes transferred"
    if [ $((a1 - a0)) -lt 2 ]; then
        log "no socket pair was accelerated"
        return 1
    fi
    if [ $((g1 - g0 + b1 - b0)) -gt 0 ]; then
        log "the reader fell behind, then TCP took over (about $((bytes - (p1 - p0))) bytes bypassed the pod's loopback)"
    elif [ $((l1 - l0)) -gt $((bytes / 8)) ]; then
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

maps_empty() {
    local rc=0 m
    for m in mw_sock_hash mw_accel_state mw_sock_hash6 mw_accel_state6; do
        wait_map_empty "$m" || rc=1
    done
    return "$rc"
}

case_maps_empty() { maps_empty; }

# session NS CONNECT MAP N: a 3 s echo session from an app in NS to CONNECT
# (through its sidecar), accel_sample_session. 1 s in, MAP (mw_sock_hash or
# mw_sock_hash6) must hold exactly N sockets (left in socks, for accel_hop)
# and the other family's map none, and accel_sock_added must have grown by N
# or more; once it is over every acceleration map must be empty again.
SESSIONS=0
session() {
    local map=$3 n=$4 rc=0
    accel_sample_session "$WORK/session-$((++SESSIONS)).log" "$1" "$2" "$map" || rc=1
    expect_socks "$n" "$map" || rc=1
    if [ -n "$other_socks" ]; then
        log "$other_map held sockets too:"
        indent <<<"$other_socks"
        rc=1
    fi
    [ "$accel_added" -ge "$n" ] || { log "accel_sock_added +$accel_added, expected $n or more"; rc=1; }
    maps_empty || rc=1
    return "$rc"
}

# An app's native IPv6 connections through its sidecar on [::1]: both ends
# in mw_sock_hash6 (none in mw_sock_hash), the data checked end to end and
# mostly off the pod's loopback, nothing left after close.
case_ipv6_app_sidecar() {
    local rc=0 CONNECT=$SERVER6
    accelerated "IPv6: app -> [::1] sidecar -> server, 64 MiB in 1 MiB writes" $((64 * MIB)) --mode up \
        --chunk "$MIB" || rc=1
    accelerated "IPv6: server -> [::1] sidecar -> app, 64 MiB, the app closes first" $((64 * MIB)) \
        --mode down || rc=1
    accelerated "IPv6: app sends 16 MiB with sendfile(2)" $((16 * MIB)) --mode up --method sendfile || rc=1
    bulk "IPv6: 100 connections, 50 at once, 256 KiB + 1 down each" --mode down --bytes $((256 * 1024 + 1)) \
        --count 100 --parallel 50 || rc=1
    session "$NS_POD" "$ECHO6" mw_sock_hash6 2 || rc=1
    accel_hop "the app <-> its sidecar over [::1]" '\[::1\]:[0-9]+' "\\[::1\\]:$SIDECAR_PORT" || rc=1
    return "$rc"
}

# A dual-stack app's AF_INET6 socket dialling a v4-mapped address is an IPv4
# connection: it and its IPv4 sidecar's socket are each other's peers in
# mw_sock_hash, by their IPv4 keys; mw_sock_hash6 stays empty.
case_v4mapped() {
    local rc=0 CONNECT=$SERVER_MAPPED
    accelerated "v4-mapped: app -> sidecar -> server, 64 MiB" $((64 * MIB)) --mode up || rc=1
    accelerated "v4-mapped: server -> sidecar -> app, 64 MiB" $((64 * MIB)) --mode down || rc=1
    session "$NS_POD" "[::ffff:${ECHO4%:*}]:${ECHO4##*:}" mw_sock_hash 2 || rc=1
    # The app's end: one of the outbound source addresses (::ffff:127.128.0.x).
    accel_hop "the app's v4-mapped socket <-> its IPv4 sidecar" '127\.128\.0\.[0-9]+:[0-9]+' \
        "127\\.0\\.0\\.1:$SIDECAR_PORT" || rc=1
    return "$rc"
}

# pod2's app -> pod1's app over IPv6 makes three hops on this node, each
# accelerated in mw_sock_hash6: pod2's app <-> its sidecar ([::1]), pod2's
# sidecar <-> pod1's sidecar (the pods' IPv6 addresses, the inbound port),
# pod1's sidecar <-> its app ([::1], marked at connect6).
case_ipv6_three_hops() {
    local rc=0
    session "$NS_POD2" "[$POD_IP6]:$APP_PORT" mw_sock_hash6 6 || rc=1
    accel_hop "pod2's app <-> its sidecar" '\[::1\]:[0-9]+' "\\[::1\\]:$SIDECAR_PORT" || rc=1
    accel_hop "pod2's sidecar <-> pod1's sidecar" "\\[$POD2_IP6\\]:[0-9]+" "\\[$POD_IP6\\]:$INBOUND_PORT" || rc=1
    accel_hop "pod1's sidecar <-> pod1's app" '\[::1\]:[0-9]+' "\\[::1\\]:$APP_PORT" || rc=1
    return "$rc"
}

# The Python both cases below run as server and client (ROLE HOST PORT GO):
# a 251-byte pattern, the server's accepted connection, and where a chunk
# read at offset N first differs from the pattern (-1: nowhere).
PY_PAIR='
import os, socket, sys, time
PAT = bytes(range(251)) * ((1 << 20) // 251 + 3)
role, host, port, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def accept_one():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(1)
    print("listening", flush=True)
    return ls.accept()[0]
def first_wrong(n, d):
    if d == PAT[n % 251:n % 251 + len(d)]:
        return -1
    return n + next(i for i in range(len(d)) if d[i] != PAT[(n + i) % 251])
'

# A reader that stops reading holds an accelerated writer back. The app
# writes (non-blocking, a 251-byte pattern) through its sidecar to a server
# on the node that accepts and reads nothing; without a bound the sidecar's
# ingress queue took everything (docs/acceleration.md: 256 MiB and more). Now
# the app's socket, which nothing was redirected to, is a bulk sender once the
# sidecar holds 4 MiB unread: it sends through TCP for good and leaves the
# socket map at the next ACK (accel_bulk), and TCP's window stops the app.
# Then the server reads: every byte the app wrote, in order (redirected
# bytes, then TCP's).
STALL=10.232.0.1:9100
STALL_PY="$PY_PAIR"'
if role == "server":
    c = accept_one()
    while not os.path.exists(go):
        time.sleep(0.05)
    n, bad = 0, -1
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        bad = first_wrong(n, d)
        if bad >= 0:
            break
        n += len(d)
    c.sendall(("read %d bytes %s\n" % (n, "in order" if bad < 0 else "WRONG at byte %d" % bad)).encode())
    c.close()
else:
    s = socket.create_connection((host, port))
    s.setblocking(False)
    sent, last = 0, time.monotonic()
    while sent < (512 << 20) and time.monotonic() - last < 2:
        try:
            sent += s.send(PAT[sent % 251:sent % 251 + 65536])
            last = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
    open(go, "w").close()
    s.setblocking(True)
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        reply += d
    print("wrote %d bytes before the writes blocked; server: %s" % (sent, reply.decode().strip()), flush=True)
'
case_stalled_reader() {
    local rc=0 g0 g1 out wrote read go="$WORK/stall-go"
    rm -f "$go"
    g0=$(stat_value accel_bulk)
    start_bg "$WORK/stall-server.log" ip netns exec "$NS_NODE" python3 -c "$STALL_PY" server "${STALL%:*}" "${STALL##*:}" "$go"
    wait_listen "$NS_NODE" "$STALL" "$LAST_PID" "$WORK/stall-server.log" || return 1
    run_client "the app writes to a server that reads nothing until the writes block" \
        "${IN_CG[@]}" "$NS_POD" python3 -c "$STALL_PY" client "${STALL%:*}" "${STALL##*:}" "$go" || rc=1
    out=$(tail -n 1 "$WORK/client-$CLIENT_SEQ.log")
    g1=$(stat_value accel_bulk)
    log "accel_bulk +$((g1 - g0))"
    wrote=$(sed -n 's/^wrote \([0-9]*\) bytes.*/\1/p' <<<"$out")
    read=$(sed -n 's/.*server: read \([0-9]*\) bytes in order$/\1/p' <<<"$out")
    if [ -z "$wrote" ] || [ "$wrote" -ge $((64 * MIB)) ]; then
        log "the app wrote ${wrote:-?} bytes unread: no backpressure (4 MiB queued at the sidecar, then TCP's buffers)"
        rc=1
    fi
    if [ -z "$read" ] || [ "$read" != "$wrote" ]; then
        log "the server did not read the app's ${wrote:-?} bytes in order"
        rc=1
    fi
    [ $((g1 - g0)) -ge 1 ] || { log "accel_bulk did not grow: the app's socket did not leave acceleration"; rc=1; }
    return "$rc"
}

# A socket that sent its FIN sends nothing more: its mw_accel_state entry goes
# at the FIN (and it asks for no more sockops callbacks), not at its close.
# The app sends a request and half-closes; a server on the node, once it has
# read to EOF, waits, then answers 1 MiB. While it waits the app's socket is
# alive (FIN_WAIT2) but out of both maps (nothing was redirected to it); its
# sidecar's accepted socket (sent the request: it stays) is the only entry in
# each. Then the reply reaches the app through TCP, every byte in order.
HALF=10.232.0.1:9200
HALF_PY="$PY_PAIR"'
if role == "server":
    c = accept_one()
    req = b""
    while True:
        d = c.recv(4096)
        if not d:
            break
        req += d
    print("request %d bytes, EOF" % len(req), flush=True)
    while not os.path.exists(go):
        time.sleep(0.05)
    c.sendall(PAT[:1 << 20])
    c.close()
else:
    s = socket.create_connection((host, port))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n" * 5)
    s.shutdown(socket.SHUT_WR)
    n, bad = 0, -1
    while True:
        d = s.recv(65536)
        if not d:
            break
        if bad < 0:
            bad = first_wrong(n, d)
        n += len(d)
    print("read %d bytes %s" % (n, "in order" if bad < 0 else "WRONG at byte %d" % bad), flush=True)
'
case_state_goes_at_fin() {
    local rc=0 a0 a1 i cpid states socks_n out go="$WORK/half-go"
    rm -f "$go"
    maps_empty || return 1
    a0=$(stat_value accel_sock_added)
    start_bg "$WORK/half-server.log" ip netns exec "$NS_NODE" python3 -c "$HALF_PY" server "${HALF%:*}" "${HALF##*:}" "$go"
    wait_listen "$NS_NODE" "$HALF" "$LAST_PID" "$WORK/half-server.log" || return 1
    start_bg "$WORK/half-client.log" "${IN_CG[@]}" "$NS_POD" python3 -c "$HALF_PY" client "${HALF%:*}" "${HALF##*:}" "$go"
    cpid=$LAST_PID
    for ((i = 0; i < 50; i++)); do
        grep -q EOF "$WORK/half-server.log" && break
        sleep 0.1
    done
    if ! grep -q EOF "$WORK/half-server.log"; then
        log "the server never saw the app's FIN:"
        show "$WORK/half-server.log"
        rc=1
    fi
    sleep 0.2
    states=$(map_count mw_accel_state)
    socks_n=$(map_count mw_sock_hash)
    socks=$(accel_socks mw_sock_hash)
    log "the app half-closed, the connection lives: mw_accel_state ${states:-?} entries, mw_sock_hash ${socks_n:-?}: $(tr '\n' ' ' <<<"$socks")"
    [ "$states" = 1 ] || { log "expected 1 mw_accel_state entry (the sidecar's socket; the app's went at its FIN)"; rc=1; }
    [ "$socks_n" = 1 ] || { log "expected 1 socket in mw_sock_hash (the sidecar's)"; rc=1; }
    grep -qE "^127\.0\.0\.1:$SIDECAR_PORT " <<<"$socks" || { log "the sidecar's accepted socket is not the one left"; rc=1; }
    touch "$go"
    wait "$cpid" || { log "the client failed:"; show "$WORK/half-client.log"; rc=1; }
    forget_pid "$cpid"
    out=$(tail -n 1 "$WORK/half-client.log")
    a1=$(stat_value accel_sock_added)
    log "accel_sock_added +$((a1 - a0)); the app: $out"
    [ "$out" = "read 1048576 bytes in order" ] || { log "the reply did not arrive whole and in order"; rc=1; }
    [ $((a1 - a0)) -ge 2 ] || { log "the hop was not accelerated (both ends)"; rc=1; }
    maps_empty || rc=1
    return "$rc"
}

case_no_errors() {
    local e
    e=$(stat_value accel_error)
    log "accel_error ${e:-?}"
    [ "${e:-1}" = 0 ]
}

case_no_errors_maps_empty() { case_no_errors && maps_empty; }

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

# ---------------------------------------------------------------------------
# Short connections (acceleration.short_connections)

# The app's one-request connections to the echo server on the node (one
# destination, $ECHO4, through its sidecar), run by ONE_PY: each sends 100
# bytes, reads them back (checked), closes. The app <-> sidecar hop carries
# two messages: short. Commands:
#   short N     N one-request connections, one after the other
#   sequence    a long-lived connection L (20 round trips: 40 messages),
#               then one-request connections S1 and S2 while L lives, L
#               closed, then S3..S7; prints the time from S1 to S7
ONE_PY='
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
def one(s=None):
    c = s or socket.create_connection((host, port))
    msg = bytes(range(100))
    c.sendall(msg)
    got = b""
    while len(got) < len(msg):
        d = c.recv(4096)
        if not d:
            break
        got += d
    if got != msg:
        sys.exit("echo wrong: %r" % got[:20])
    if s is None:
        c.close()
if sys.argv[3] == "short":
    n = int(sys.argv[4])
    t0 = time.monotonic()
    for _ in range(n):
        one()
    print("%d connections in %d ms, every echo intact" % (n, (time.monotonic() - t0) * 1000), flush=True)
else:
    long = socket.create_connection((host, port))
    for _ in range(20):
        one(long)
    t0 = time.monotonic()
    one(); one()
    long.close()
    for _ in range(5):
        one()
    print("sequence: S1..S7 in %d ms, every echo intact" % ((time.monotonic() - t0) * 1000), flush=True)
'

# one_conns DESC ARGS...: ONE_PY in the pod (an app), its last line in
# ONE_OUT; how much accel_sock_added and accel_skipped_short moved in ADDED
# and SKIPPED.
one_conns() {
    local desc=$1 a0 s0
    shift
    a0=$(stat_value accel_sock_added)
    s0=$(stat_value accel_skipped_short)
    run_client "$desc" "${IN_CG[@]}" "$NS_POD" python3 -c "$ONE_PY" "${ECHO4%:*}" "${ECHO4##*:}" "$@" || return 1
    ONE_OUT=$(tail -n 1 "$WORK/client-$CLIENT_SEQ.log")
    ADDED=$(($(stat_value accel_sock_added) - a0))
    SKIPPED=$(($(stat_value accel_skipped_short) - s0))
    log "accel_sock_added +$ADDED, accel_skipped_short +$SKIPPED"
}

# (d) With "accelerate" (cases 1-10's loader) every one-request connection
# is accelerated: both ends of each (the app's socket and the sidecar's
# accepted one), none skipped.
case_accelerate_takes_every_short_connection() {
    local n=40
    one_conns "$n one-request connections, short_connections = \"accelerate\"" short "$n" || return 1
    [ "$ADDED" = $((2 * n)) ] && [ "$SKIPPED" = 0 ] && return 0
    log "expected accel_sock_added +$((2 * n)) and accel_skipped_short +0"
    return 1
}

# The loader restarted with "learn" (the default): it adopts the pod from its
# record; the pinned counters and maps carry on.
case_restart_learning() {
    stop_loader
    accel_config learn || return 1
    start_loader
}

# (a) Many one-request connections to one destination: the first four are
# accelerated (each reports short at its FIN), then the hint keeps the hop
# out (accel_skipped_short), but for a probe each time the hint's 200 ms
# window ran out. Every connection is either accelerated (both ends: +2) or
# skipped (+1), and every echo arrives intact.
case_short_connections_stop_being_accelerated() {
    local n=200 ms accel
    sleep 0.3 # no fresh hint from an earlier case
    one_conns "$n one-request connections to $ECHO4" short "$n" || return 1
    ms=$(sed -n 's/^[0-9]* connections in \([0-9]*\) ms.*/\1/p' <<<"$ONE_OUT")
    accel=$((n - SKIPPED))
    log "$accel of $n connections accelerated in ${ms:-?} ms"
    if [ "$ADDED" != $((2 * accel)) ]; then
        log "accel_sock_added +$ADDED, expected $((2 * accel)) (both ends of each connection not skipped)"
        return 1
    fi
    # 4 to learn, then at most one probe per 200 ms window (and one in flight).
    if [ -z "$ms" ] || [ "$accel" -lt 4 ] || [ "$accel" -gt $((4 + ms / 200 + 2)) ]; then
        log "expected 4 to $((4 + ${ms:-0} / 200 + 2)) accelerated: four short reports, then a probe per window"
        return 1
    fi
}

# (b) After the window (200 ms without a report) the next connection is
# accelerated again (a probe); its short report makes the hint fresh, so the
# one after it is skipped again.
case_a_probe_after_the_window() {
    local rc=0
    sleep 0.3
    one_conns "one connection, 300 ms after the last report" short 1 || return 1
    [ "$ADDED" = 2 ] && [ "$SKIPPED" = 0 ] || { log "expected it accelerated (+2, none skipped)"; rc=1; }
    one_conns "one more, right after the probe reported" short 1 || return 1
    [ "$ADDED" = 0 ] && [ "$SKIPPED" = 1 ] || { log "expected it skipped (+0, 1 skipped)"; rc=1; }
    return "$rc"
}

# (c) A long-lived connection L (accelerated: opened after the window) to
# the same destination reports long at its FIN and resets the hint. S1,
# while L lives, is accelerated (the hint had expired) and makes the hint
# fresh again: S2 is skipped. After L's report the run starts over: S3..S6
# are accelerated (four short reports again), S7 is skipped. Without the
# reset S3..S7 would all be skipped (the hint fresh from S1).
case_a_long_connection_resets_the_hint() {
    local ms
    sleep 0.3
    one_conns "L (20 round trips) lives while S1, S2 run; L closes; then S3..S7" sequence || return 1
    ms=$(sed -n 's/^sequence: S1..S7 in \([0-9]*\) ms.*/\1/p' <<<"$ONE_OUT")
    if [ -z "$ms" ] || [ "$ms" -ge 200 ]; then
        log "S1..S7 took ${ms:-?} ms, beyond the 200 ms window: this run cannot tell a reset from an expiry"
        return 1
    fi
    [ "$ADDED" = 12 ] && [ "$SKIPPED" = 2 ] && return 0
    log "expected accel_sock_added +12 (L, S1, S3..S6: both ends each) and accel_skipped_short +2 (S2, S7)"
    return 1
}

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
run_relay_case "8a IPv6: app <-> sidecar on [::1] accelerated in mw_sock_hash6, SHA-256 checked, entries gone after close" \
    case_ipv6_app_sidecar
run_relay_case "8b v4-mapped: a dual-stack app's socket and its IPv4 sidecar accelerated in mw_sock_hash" case_v4mapped
run_case "8c IPv6: app -> sidecar -> sidecar (inbound port) -> app, all three hops in mw_sock_hash6" \
    case_ipv6_three_hops
run_relay_case "8d a reader that stops reading holds the writer back (4 MiB unread: a bulk sender, TCP), every byte in order" \
    case_stalled_reader
run_relay_case "8e at its FIN a socket's state goes (the connection alive), its peer's stays, the reply arrives in order" \
    case_state_goes_at_fin
run_case "9 mw_sock_hash, mw_accel_state and their IPv6 twins are empty again" case_maps_empty
run_relay_case "10a short_connections = \"accelerate\": every one-request connection is accelerated" \
    case_accelerate_takes_every_short_connection
run_case "10 no acceleration errors (accel_error 0)" case_no_errors
run_case "11 the loader restarts with short_connections = \"learn\" (the default), adopting the pod" \
    case_restart_learning
run_relay_case "12 one-request connections to one destination stop being accelerated (a run of four short ones), every echo intact" \
    case_short_connections_stop_being_accelerated
run_relay_case "13 after the 200 ms window the next connection is accelerated again (a probe), the one after it not" \
    case_a_probe_after_the_window
run_relay_case "14 a long-lived connection's report resets the hint: the following connections are accelerated" \
    case_a_long_connection_resets_the_hint
run_case "15 no acceleration errors, the acceleration maps empty again" case_no_errors_maps_empty
suite_end
