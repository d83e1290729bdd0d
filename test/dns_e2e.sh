#!/bin/bash
# DNS capture ([dns], issue 14) end to end, with the real loader, real DNS
# software and real resolvers:
#
#   dns_e2e.sh MESHWIRE_LOADER
#
# MESHWIRE_E2E_MODE=iptables (//test:dns_e2e_iptables) runs the same cases
# with `interception.mode = "iptables"` (nat REDIRECT rules in the pods'
# namespaces); cases about the BPF datapath's own state say SKIP there, and
# the rules are checked instead.
#
# Topology (all inside namespaces made here), dual-stack:
#
#   pod1 eth0 10.233.1.2 fd00:233:1::2 --- vd1 \   node: the "real" resolvers
#   pod2 eth0 10.233.2.2 fd00:233:2::2 --- vd2  \  10.233.0.53, 10.233.0.54,
#   pod3 eth0 10.233.3.2 fd00:233:3::2 --- vd3  /  fd00:233::53, fd00:233::54
#   pod4 eth0 10.233.4.2 fd00:233:4::2 --- vd4 /   (dnsmasq, UDP and TCP 53)
#
# Each pod's resolv.conf (/etc/netns/<pod>/resolv.conf, which `ip netns exec`
# puts in place in a mount namespace of its own) names 10.233.0.53; the IPv6
# cases switch it to fd00:233::53 and back (resolv6). The real resolver
# answers svc.mesh.test with 10.233.77.1; the DNS proxy in pods 1-3 (dnsmasq
# on 127.0.0.1:15053 and [::1]:15053, UID 1500 like a sidecar, in the test
# cgroup) answers it with 10.233.77.2 itself and forwards every other name to
# the real resolver (upstream.mesh.test: 10.233.77.3 there; upstream6.mesh.test
# over IPv6, to fd00:233::53: 10.233.77.4). So the answer shows who answered,
# and the logs show who asked whom. Each pod also has an
# outbound sidecar, HAProxy on 127.0.0.1:15001 (UID 1500, `mode tcp`, to the
# original destination): a pod whose DNS is not captured sends DNS over TCP
# there like any other TCP connection, and it reaches the real resolver.
#
# pod1 is meshed with --dns-capture true, pod2 without a setting of its own,
# pod3 with --dns-capture false; pod4 (a python SO_ORIGINAL_DST probe in place
# of a proxy) with --dns-capture true. The loader starts with [dns] capture =
# false, is restarted with capture = true, then with servers = ["10.233.0.54"],
# then servers = ["fd00:233::54"], then with interception.ipv6 = "refuse" and
# "intercept". Until then interception.ipv6 = "pass": IPv6 DNS is captured
# whatever interception.ipv6 says, and a pod whose DNS is not captured
# reaches an IPv6 resolver over TCP too (with "refuse" it could not).
#
# Runs as root. Everything it creates carries the prefix mwd<PID>- (namespaces,
# cgroup, work dir with a private bpffs, /etc/netns/<prefix>-*) and is removed
# by the EXIT trap, which then checks that nothing with the prefix is left and
# prints "N passed, N failed". Programs attach only to this test's cgroup,
# rules go only into its pods' namespaces, traffic stays inside its
# namespaces, and only processes started here are signalled, by PID.

# Functions run from cases or the EXIT trap:
# shellcheck disable=SC2317
P="mwd$$"
NS_NODE="$P-node"
RESOLVER=10.233.0.53
RESOLVER2=10.233.0.54
RESOLVER6=fd00:233::53
RESOLVER6_2=fd00:233::54
UPSTREAM6_NAME=upstream6.mesh.test
UPSTREAM6_ANSWER=10.233.77.4
IPV6_POLICY=pass
NAME=svc.mesh.test
REAL_ANSWER=10.233.77.1
PROXY_ANSWER=10.233.77.2
UPSTREAM_NAME=upstream.mesh.test
UPSTREAM_ANSWER=10.233.77.3
DNS_PORT=15053

# shellcheck source=test/suite_lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/suite_lib.sh" || exit 1

# ---------------------------------------------------------------------------
# Setup

# setup_config DNS_TOML: the loader's config, with DNS_TOML as its [dns]
# section and interception.ipv6 = $IPV6_POLICY.
setup_config() {
    write_config <<EOF
trace = true

[interception]
mode = "$MODE"
ipv6 = "$IPV6_POLICY"

[dns]
$1
EOF
}

setup_topology() {
    local i
    add_netns "$NS_NODE" || return 1
    ip netns exec "$NS_NODE" sysctl -qw net.ipv4.ip_forward=1 || return 1
    ip -n "$NS_NODE" addr add "$RESOLVER/32" dev lo || return 1
    ip -n "$NS_NODE" addr add "$RESOLVER2/32" dev lo || return 1
    ip -n "$NS_NODE" addr add "$RESOLVER6/128" dev lo || return 1
    ip -n "$NS_NODE" addr add "$RESOLVER6_2/128" dev lo || return 1
    for i in 1 2 3 4; do
        pod_netns "$(pod $i)" "$NS_NODE" "vd$i" "10.233.$i.2" "10.233.$i.1" || return 1
        ip -n "$(pod $i)" addr add "fd00:233:$i::2/64" dev eth0 nodad || return 1
        ip -n "$NS_NODE" addr add "fd00:233:$i::1/64" dev "vd$i" nodad || return 1
        ip -n "$(pod $i)" -6 route add default via "fd00:233:$i::1" dev eth0 || return 1
        # One try, one second: a query that is not answered fails fast.
        mkdir -p "/etc/netns/$(pod $i)" || return 1
        printf 'nameserver %s\noptions attempts:1 timeout:2\n' "$RESOLVER" >"/etc/netns/$(pod $i)/resolv.conf" || return 1
    done
}

# dnsmasq LOG ARGS...: dnsmasq in the foreground, no configuration but ARGS,
# every query logged to LOG.
DNSMASQ=(dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --no-poll --pid-file=
    --bind-interfaces --log-queries --log-facility=-)

# CMD... as the sidecar's UID, from / (the test's own directory may be
# closed to that UID: HAProxy refuses to start where it cannot return to).
AS_SIDECAR=(setpriv --reuid "$SIDECAR_UID" --regid "$SIDECAR_UID" --clear-groups env -C /)

# The real resolver, in the node (outside the cgroup).
start_real_resolver() {
    start_bg "$WORK/resolver.log" ip netns exec "$NS_NODE" "${DNSMASQ[@]}" --user=root \
        --listen-address="$RESOLVER" --listen-address="$RESOLVER2" --listen-address="$RESOLVER6" \
        --listen-address="$RESOLVER6_2" --port=53 --address="/$NAME/$REAL_ANSWER" \
        --address="/$UPSTREAM_NAME/$UPSTREAM_ANSWER" --address="/$UPSTREAM6_NAME/$UPSTREAM6_ANSWER"
    wait_listen "$NS_NODE" "$RESOLVER:53" "$LAST_PID" "$WORK/resolver.log" &&
        wait_listen "$NS_NODE" "[$RESOLVER6]:53" "$LAST_PID" "$WORK/resolver.log"
}

# start_proxy N: pod N's DNS proxy on 127.0.0.1 and [::1], as the sidecar's
# UID in the cgroup; its PID in PROXY_PID[N]. No cache: each forwarded query
# reaches the resolver (upstream6.mesh.test's over IPv6).
declare -A PROXY_PID
start_proxy() {
    start_bg "$WORK/proxy-pod$1.log" "${IN_CG[@]}" "$(pod "$1")" "${AS_SIDECAR[@]}" "${DNSMASQ[@]}" --listen-address=127.0.0.1 \
        --listen-address=::1 --port=$DNS_PORT --cache-size=0 --address="/$NAME/$PROXY_ANSWER" --server="$RESOLVER" \
        --server="/$UPSTREAM6_NAME/$RESOLVER6"
    PROXY_PID[$1]=$LAST_PID
    wait_listen "$(pod "$1")" "127.0.0.1:$DNS_PORT" "$LAST_PID" "$WORK/proxy-pod$1.log" &&
        wait_listen "$(pod "$1")" "[::1]:$DNS_PORT" "$LAST_PID" "$WORK/proxy-pod$1.log"
}

# start_sidecar N: pod N's outbound sidecar (HAProxy: each connection to its
# SO_ORIGINAL_DST), as the sidecar's UID in the cgroup.
start_outbound_sidecar() {
    local cfg="$WORK/haproxy-pod$1.cfg"
    printf 'global\n  maxconn 500\ndefaults\n  mode tcp\n  timeout connect 3s\n  timeout client 10s\n  timeout server 10s\n%s\n' \
        "listen out
  bind 127.0.0.1:$SIDECAR_PORT
  server orig 0.0.0.0:0" >"$cfg"
    # The sidecar's UID reads it: the work dir (0700) may be traversed.
    chmod o+x "$WORK" && chmod o+r "$cfg" || return 1
    start_bg "$WORK/haproxy-pod$1.log" "${IN_CG[@]}" "$(pod "$1")" "${AS_SIDECAR[@]}" haproxy -db -f "$cfg"
    wait_listen "$(pod "$1")" "127.0.0.1:$SIDECAR_PORT" "$LAST_PID" "$WORK/haproxy-pod$1.log"
}

stop_proxy() {
    stop_pid "${PROXY_PID[$1]}" 3
    forget_pid "${PROXY_PID[$1]}"
}

# restart_loader DNS_TOML: the loader stopped and started again with another
# [dns] section; it adopts the pods from their records.
restart_loader() {
    stop_loader
    setup_config "$1" || return 1
    start_loader
}

# ---------------------------------------------------------------------------
# Resolving, the way applications do

# in_pod N CMD...: CMD in pod N, in the cgroup (an application of the pod).
in_pod() {
    local n=$1
    shift
    timeout -k 2 20 "${IN_CG[@]}" "$(pod "$n")" "$@"
}

# The address each resolver gets for NAME in pod N (empty when it failed),
# and, for dig, the server it reports.
answer_getent() { in_pod "$1" getent hosts "$2" 2>/dev/null | awk 'NR == 1 { print $1 }'; }
answer_python() {
    in_pod "$1" python3 -c 'import socket, sys
try:
    print(socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
except OSError as e:
    print("error:", e, file=sys.stderr)' "$2" 2>/dev/null
}
# dig_out N NAME [ARGS...]: dig's full output.
dig_out() {
    local n=$1 name=$2
    shift 2
    in_pod "$n" dig +tries=1 +time=2 "$@" "$name" A 2>&1
}
dig_answer() { awk '$4 == "A" && $1 ~ /^[a-z]/ { print $5; exit }' <<<"$1"; }
dig_server() { sed -nE 's/^;; SERVER: ([0-9a-f.:]+)#([0-9]+).*/\1#\2/p' <<<"$1"; }
# expect_dig N NAME WANT WHO SERVER [ARGS...]: dig ARGS in pod N answers NAME
# with WANT (WHO, if not empty, says whose answer that is) and names SERVER#53
# as the server that answered; else says what it got, with dig's output.
expect_dig() {
    local n=$1 name=$2 want=$3 who=$4 server=$5 out got
    shift 5
    out=$(dig_out "$n" "$name" "$@")
    got=$(dig_answer "$out")
    [ "$got" = "$want" ] && [ "$(dig_server "$out")" = "$server#53" ] && return 0
    log "pod$n dig ${*:-(UDP)} $name: answer '${got:-none}' from '$(dig_server "$out")'," \
        "expected $want${who:+ ($who)} from $server#53:"
    echo "$out" | indent
    return 1
}

# dual_stack N NAME: a DNS query for NAME from an AF_INET6 socket to the
# resolver as a v4-mapped address (as Java's resolver sends): the answer's
# address and where recvfrom() says it came from.
dual_stack() {
    in_pod "$1" python3 -c 'import socket, struct, sys
name, resolver = sys.argv[1], sys.argv[2]
q = struct.pack(">HHHHHH", 0x4d57, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, ("::ffff:" + resolver, 53))
data, peer = s.recvfrom(4096)
print(socket.inet_ntoa(data[-4:]), peer[0] + "#" + str(peer[1]))' "$2" "$RESOLVER" 2>&1
}

# expect_all N WANT WHO: getent, getaddrinfo, dig over UDP and over TCP in
# pod N all answer NAME with WANT (WHO says whose answer that is), and dig
# names the resolver as the server that answered (RESOLVER_SHOWN, default
# $RESOLVER).
expect_all() {
    local n=$1 want=$2 who=$3 rc=0 got how shown=${RESOLVER_SHOWN:-$RESOLVER}
    got=$(answer_getent "$n" "$NAME")
    [ "$got" = "$want" ] || { log "pod$n getent hosts $NAME: '${got:-failed}', expected $want ($who)"; rc=1; }
    got=$(answer_python "$n" "$NAME")
    [ "$got" = "$want" ] || { log "pod$n getaddrinfo($NAME): '${got:-failed}', expected $want ($who)"; rc=1; }
    for how in "" +tcp; do
        expect_dig "$n" "$NAME" "$want" "$who" "$shown" $how || rc=1
    done
    [ "$rc" -eq 0 ] && log "pod$n: getent, getaddrinfo, dig and dig +tcp all answered $want ($who); dig's SERVER $shown#53"
    return "$rc"
}

# resolv6 N on|off: pod N's resolv.conf names the IPv6 resolver (on) or the
# IPv4 one (off, as set up).
resolv6() {
    local ns=$RESOLVER
    [ "$2" = on ] && ns=$RESOLVER6
    printf 'nameserver %s\noptions attempts:1 timeout:2\n' "$ns" >"/etc/netns/$(pod "$1")/resolv.conf"
}

# expect_all6 N WANT WHO: expect_all with pod N's resolv.conf naming the IPv6
# resolver (glibc, Python and dig then ask it over IPv6), and `dig -6
# @RESOLVER6` over UDP and TCP too.
expect_all6() {
    local n=$1 want=$2 who=$3 rc=0 how
    resolv6 "$n" on
    RESOLVER_SHOWN=$RESOLVER6 expect_all "$n" "$want" "$who" || rc=1
    resolv6 "$n" off
    for how in +notcp +tcp; do
        expect_dig "$n" "$NAME" "$want" "$who" "$RESOLVER6" -6 "@$RESOLVER6" $how || rc=1
    done
    [ "$rc" -eq 0 ] && log "pod$n: dig -6 @$RESOLVER6 and +tcp answered $want too"
    return "$rc"
}

# queries LOG FROM: how many A queries the dnsmasq log LOG has from FROM (an
# address, or $ANY). The proxy sees the app's at 127.0.0.1 (eBPF) or at the
# pod's address (iptables REDIRECT keeps the source).
ANY='[0-9a-f.:]+'
queries() { grep -cE "query\[A\] [a-z0-9.]+ from ${2//./\\.}\$" "$1"; }

# trace_start FILE [SECONDS]: `trace --json` of pod1's decisions into FILE,
# running (its PID in TRACE_PID) when this returns. trace_stop FILE: a second
# later (the last events read), SIGINT it; 1 if it did not exit cleanly.
trace_start() {
    start_bg "$1" "$LOADER" --pin-dir "$PIN" trace --json --netns-cookie "${COOKIE[pod1]}" --duration "${2:-30}"
    TRACE_PID=$LAST_PID
    sleep 1
}
trace_stop() {
    local rc=0
    sleep 1
    kill -INT "$TRACE_PID"
    wait "$TRACE_PID" || { log "trace exited with $? on SIGINT:"; show "$1" 5; rc=1; }
    forget_pid "$TRACE_PID"
    return "$rc"
}

# ---------------------------------------------------------------------------
# Cases

# expect_family FAMILY N WANT WHO: expect_all (FAMILY 4) or expect_all6 (6),
# which asks the IPv6 resolver the same way and with dig -6 too: 6 queries.
expect_family() {
    local family=$1
    shift
    if [ "$family" = 6 ]; then expect_all6 "$@"; else expect_all "$@"; fi
}

# capture_on_proxy_answers FAMILY: pod1 (capture on) gets its proxy's answer
# every way expect_family asks; the proxy sees each query, the real resolver
# none from pod1 (its IPv4 or IPv6 address).
capture_on_proxy_answers() {
    local family=$1 before_proxy before_real rc=0 from=10.233.1.2 n=4
    if [ "$family" = 6 ]; then from=$POD1_V6 n=6; fi
    before_proxy=$(queries "$WORK/proxy-pod1.log" "$ANY")
    before_real=$(queries "$WORK/resolver.log" "$from")
    expect_family "$family" 1 "$PROXY_ANSWER" "the pod's DNS proxy" || rc=1
    log "pod1's proxy logged $(($(queries "$WORK/proxy-pod1.log" "$ANY") - before_proxy)) queries," \
        "the real resolver $(($(queries "$WORK/resolver.log" "$from") - before_real)) from pod1 ($from)"
    [ "$(queries "$WORK/proxy-pod1.log" "$ANY")" -ge $((before_proxy + n)) ] || { log "the proxy did not see the $n queries"; rc=1; }
    [ "$(queries "$WORK/resolver.log" "$from")" -eq "$before_real" ] || { log "the real resolver saw pod1's queries"; rc=1; }
    return "$rc"
}

case_capture_on_proxy_answers() { capture_on_proxy_answers 4; }

case_proxy_upstream_reaches_resolver() {
    local before rc=0
    before=$(queries "$WORK/resolver.log" 10.233.1.2)
    expect_dig 1 "$UPSTREAM_NAME" "$UPSTREAM_ANSWER" "" "$RESOLVER" || rc=1
    grep -q "forwarded $UPSTREAM_NAME to $RESOLVER" "$WORK/proxy-pod1.log" ||
        { log "pod1's proxy did not forward $UPSTREAM_NAME to $RESOLVER"; rc=1; }
    [ "$(queries "$WORK/resolver.log" 10.233.1.2)" -gt "$before" ] ||
        { log "the real resolver got no query from pod1 (its proxy, UID $SIDECAR_UID)"; rc=1; }
    [ "$rc" -eq 0 ] && log "pod1's proxy forwarded $UPSTREAM_NAME to $RESOLVER as UID $SIDECAR_UID, which answered $UPSTREAM_ANSWER"
    return "$rc"
}

# query_as N R,E,S PROTO: NAME's address as pod N answers it to a process that
# ran setresuid(R, E, S) before making its socket (PROTO udp or tcp), sent to
# the resolver.
query_as() {
    in_pod "$1" python3 -c 'import os, socket, struct, sys
r, e, s = (int(x) for x in sys.argv[2].split(","))
os.setresuid(r, e, s)
q = struct.pack(">HHHHHH", 0x4d58, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in sys.argv[1].split(".")) + b"\0" + struct.pack(">HH", 1, 1)
if sys.argv[3] == "udp":
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(3)
    c.sendto(q, (sys.argv[4], 53))
    data = c.recv(4096)
else:
    c = socket.create_connection((sys.argv[4], 53), timeout=3)
    c.sendall(struct.pack(">H", len(q)) + q)
    data = c.recv(4096)
print(socket.inet_ntoa(data[-4:]))' "$NAME" "$2" "$3" "$RESOLVER" 2>&1
}

# Who is the sidecar for DNS. TCP: the socket's owner, in both modes. UDP:
# iptables' owner match reads the socket's owner; the eBPF sendmsg hook
# cannot (no cast to an AF_INET UDP socket) and takes the caller's real UID.
# So a process whose real and effective UIDs differ (one of them the
# sidecar's) is treated differently by the two modes for UDP DNS only; this
# pins that (docs/hardening.md, "Who is the sidecar"). In eBPF mode `trace`
# names the UID each decision used: every captured query here says uid 0
# (TCP: the socket's owner, root, also for the task whose real UID is 1500).
case_dns_uid_rule() {
    local rc=0 resuid proto got want owner_is_sidecar tr="$WORK/trace-2u.json" uids
    [ "$MODE" != ebpf ] || trace_start "$tr" 60
    for resuid in "0,$SIDECAR_UID,0" "$SIDECAR_UID,0,0"; do
        for proto in tcp udp; do
            [ "${resuid%%,*}" = 0 ] && owner_is_sidecar=1 || owner_is_sidecar=0
            if [ "$proto" = udp ] && [ "$MODE" = ebpf ]; then
                # The caller's real UID decides: the sidecar's when it is not root.
                [ "${resuid%%,*}" = "$SIDECAR_UID" ] && want=$REAL_ANSWER || want=$PROXY_ANSWER
            else
                [ "$owner_is_sidecar" = 1 ] && want=$REAL_ANSWER || want=$PROXY_ANSWER
            fi
            got=$(query_as 1 "$resuid" "$proto")
            if [ "$got" = "$want" ]; then
                log "pod1, setresuid($resuid), $proto: $got ($([ "$want" = "$PROXY_ANSWER" ] && echo captured || echo direct))"
            else
                log "pod1, setresuid($resuid), $proto: '$got', expected $want"
                rc=1
            fi
        done
    done
    [ "$MODE" = ebpf ] || return "$rc"
    trace_stop "$tr" || rc=1
    # Two captured (TCP as 1500,0,0; UDP as 0,1500,0), each one query.
    uids=$(grep '^{' "$tr" | jq -r 'select(.decision == "dns_redirected") | "\(.hook) uid \(.uid)"' | sort | uniq -c | xargs)
    log "trace: dns_redirected events: ${uids:-none}"
    if [ "$uids" != "1 connect4 uid 0 1 sendmsg4 uid 0" ]; then
        log "expected one connect4 (TCP) and one sendmsg4 (UDP) dns_redirected, each with uid 0, the UID its decision used:"
        show "$tr" 10
        rc=1
    fi
    return "$rc"
}

# capture_off_real_answers FAMILY: pod2 (no setting, [dns] capture = false)
# gets the real resolver's answer every way expect_family asks; its proxy
# sees nothing.
capture_off_real_answers() {
    local before rc=0
    before=$(queries "$WORK/proxy-pod2.log" "$ANY")
    expect_family "$1" 2 "$REAL_ANSWER" "the real resolver: [dns] capture = false" || rc=1
    [ "$(queries "$WORK/proxy-pod2.log" "$ANY")" -eq "$before" ] || { log "pod2's proxy saw queries"; rc=1; }
    return "$rc"
}

case_capture_off_real_answers() { capture_off_real_answers 4; }

case_dual_stack() {
    local out
    out=$(dual_stack 1 "$NAME")
    if [ "$out" != "$PROXY_ANSWER ::ffff:$RESOLVER#53" ]; then
        log "pod1 AF_INET6 socket to ::ffff:$RESOLVER: '$out', expected '$PROXY_ANSWER ::ffff:$RESOLVER#53'"
        return 1
    fi
    log "pod1 AF_INET6 socket, v4-mapped resolver: $PROXY_ANSWER, recvfrom() says from ::ffff:$RESOLVER#53"
}

# DNS over TCP lands on the proxy's port like any steered connection: the
# proxy reads the resolver with SO_ORIGINAL_DST (pod4's probe prints it).
case_tcp_original_dst() {
    local out="$WORK/probe.log" rc=0
    start_bg "$out" "${IN_CG[@]}" "$(pod 4)" "${AS_SIDECAR[@]}" \
        python3 -c 'import socket, struct
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 15053))
l.listen()
print("listening", flush=True)
c, peer = l.accept()
d = c.getsockopt(socket.SOL_IP, 80, 16)
port, addr = struct.unpack(">H", d[2:4])[0], socket.inet_ntoa(d[4:8])
print("orig %s:%d" % (addr, port), flush=True)
c.sendall(b"ok")'
    local pid=$LAST_PID
    wait_listen "$(pod 4)" "127.0.0.1:$DNS_PORT" "$pid" "$out" || return 1
    got=$(in_pod 4 python3 -c 'import socket
s = socket.create_connection(("'"$RESOLVER"'", 53), timeout=3)
print(s.getpeername()[0] + ":" + str(s.getpeername()[1]), s.recv(2).decode())' 2>&1)
    wait "$pid" 2>/dev/null
    forget_pid "$pid"
    if ! grep -qx "orig $RESOLVER:53" "$out" || [ "$got" != "$RESOLVER:53 ok" ]; then
        log "the probe on :$DNS_PORT logged '$(grep orig "$out")', the app's getpeername/reply '$got';" \
            "expected orig $RESOLVER:53 and '$RESOLVER:53 ok'"
        show "$out"
        rc=1
    else
        log "TCP to $RESOLVER:53 reached the proxy port; SO_ORIGINAL_DST $RESOLVER:53; the app's getpeername $RESOLVER:53"
    fi
    return "$rc"
}

# dns_load FAMILY CLIENTS EACH UDP TCP: CLIENTS clients at once, EACH
# queries each, from pod1: UDP dig batches, then TCP ones, the rest Python
# getaddrinfo loops (glibc); every answer the proxy's, nothing left in the
# maps. FAMILY 6 asks the IPv6 resolver (dig -6 @RESOLVER6, resolv.conf
# naming it). dig's UDP sockets share ports (SO_REUSEADDR): under such
# concurrency an answer now and then lands on another of its sockets, which
# then says "ID mismatch" and retries (+tries=2), on plain loopback without
# meshwire too. So the check is on the answers: each one the proxy's.
dns_load() {
    local family=$1 clients=$2 each=$3 udp=$4 tcp=$5 i pids=() rc=0 right total redirected noise how
    local batch="$WORK/batch$1.txt" out="$WORK/load$1" n=$(($2 * $3)) dig_to=() to="" save=iptables-save
    local maps=(mw_orig_tuple4) map
    if [ "$family" = 6 ]; then
        dig_to=(-6 "@$RESOLVER6") to=" to $RESOLVER6" save=ip6tables-save maps=(mw_orig_tuple6 mw_orig_tuple4)
        resolv6 1 on
    fi
    for ((i = 0; i < each; i++)); do echo "$NAME A"; done >"$batch"
    redirected=$(stat_value dns_redirected)
    rm -f "$out"-*.out
    for ((i = 0; i < clients; i++)); do
        if [ "$i" -lt $((udp + tcp)) ]; then
            how=+notcp
            [ "$i" -ge "$udp" ] && how=+tcp
            "${IN_CG[@]}" "$(pod 1)" timeout -k 2 120 dig "${dig_to[@]}" +tries=2 +time=3 +short "$how" -f "$batch" \
                >"$out-$i.out" 2>&1 &
        else
            "${IN_CG[@]}" "$(pod 1)" timeout -k 2 120 python3 -c 'import socket, sys
for _ in range(int(sys.argv[2])):
    try:
        print(socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
    except OSError as e:
        print("error:", e)' "$NAME" "$each" >"$out-$i.out" 2>&1 &
        fi
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || rc=1; done
    if [ "$family" = 6 ]; then resolv6 1 off; fi
    [ "$rc" -eq 0 ] || log "a client failed"
    total=$(cat "$out"-*.out | grep -cE '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$')
    right=$(cat "$out"-*.out | grep -cx "$PROXY_ANSWER")
    noise=$(cat "$out"-*.out | grep -c '^;;')
    log "$right of $total answers were $PROXY_ANSWER ($n queries$to); dig retried after $noise warnings (ID mismatch, timeout)"
    if [ "$right" -ne "$n" ] || [ "$total" -ne "$n" ]; then
        cat "$out"-*.out | grep -vx "$PROXY_ANSWER" | sort | uniq -c | head | indent
        rc=1
    fi
    if [ "$MODE" = ebpf ]; then
        log "dns_redirected +$(($(stat_value dns_redirected) - redirected)), dns_restored $(stat_value dns_restored), dns_error $(stat_value dns_error)"
        [ $(($(stat_value dns_redirected) - redirected)) -ge "$n" ] || { log "dns_redirected did not count every query"; rc=1; }
        [ "$(stat_value dns_error)" = 0 ] || rc=1
        for map in "${maps[@]}"; do wait_map_empty "$map" || rc=1; done
    else
        log "$save REDIRECT hits in pod1: udp $(redirect_hits 1 udp "$save"), tcp $(redirect_hits 1 tcp "$save")"
        # nat sees a flow's first packet only: a query whose source port a
        # tracked flow still has reuses that flow's REDIRECT. The answers
        # above are the proof; the counters show the rules were the path.
        [ "$(redirect_hits 1 udp "$save")" -ge $((n / 10)) ] || { log "the UDP rule did not see the queries"; rc=1; }
        [ "$(redirect_hits 1 tcp "$save")" -ge $((tcp * each)) ] || { log "the TCP rule did not see the queries"; rc=1; }
    fi
    return "$rc"
}

# 10,000 queries, 50 clients at once, 200 each: 25 dig batches over UDP, 10
# over TCP, 15 Python getaddrinfo loops.
case_load() { dns_load 4 50 200 25 10; }

# redirect_hits N PROTO [SAVE]: packets that hit pod N's DNS REDIRECT rule
# for PROTO (SAVE: iptables-save, or ip6tables-save for IPv6's).
redirect_hits() {
    ip netns exec "$(pod "$1")" "${3:-iptables-save}" -c -t nat | awk -v p="$2" '/MESHWIRE_OUTPUT/ && / --dport 53 / && $0 ~ "-p " p " " {
        split(substr($1, 2), n, ":"); s += n[1] } END { print s + 0 }'
}

# no_proxy_fails_closed FAMILY: pod1's DNS proxy stopped, getent,
# getaddrinfo, dig and dig +tcp all fail and the real resolver sees none of
# pod1's queries. FAMILY 6 asks the IPv6 resolver (resolv.conf naming it,
# dig -6 @RESOLVER6), as dns_load does.
no_proxy_fails_closed() {
    local family=$1 before rc=0 got out how from=10.233.1.2 dig_to=() to=""
    if [ "$family" = 6 ]; then
        from=$POD1_V6 dig_to=(-6 "@$RESOLVER6") to=" to $RESOLVER6"
    fi
    stop_proxy 1
    before=$(queries "$WORK/resolver.log" "$from")
    if [ "$family" = 6 ]; then resolv6 1 on; fi
    got=$(answer_getent 1 "$NAME")
    [ -z "$got" ] || { log "getent hosts answered '$got' with no proxy listening"; rc=1; }
    got=$(answer_python 1 "$NAME")
    [ -z "$got" ] || { log "getaddrinfo answered '$got' with no proxy listening"; rc=1; }
    for how in +notcp +tcp; do
        out=$(dig_out 1 "$NAME" "${dig_to[@]}" $how)
        got=$(dig_answer "$out")
        [ -z "$got" ] || { log "dig ${dig_to[*]} $how answered '$got' with no proxy listening"; rc=1; }
    done
    if [ "$family" = 6 ]; then resolv6 1 off; fi
    [ "$(queries "$WORK/resolver.log" "$from")" -eq "$before" ] ||
        { log "queries bypassed to the real resolver"; rc=1; }
    [ "$rc" -eq 0 ] && log "no proxy: getent, getaddrinfo, dig${dig_to[*]:+ ${dig_to[*]}} and dig${dig_to[*]:+ ${dig_to[*]}} +tcp$to all failed ($(grep -m1 -oE 'connection refused|timed out|no servers could be reached' <<<"$out")); the real resolver saw none"
    start_proxy 1 || rc=1
    return "$rc"
}

case_no_proxy_fails_closed() { no_proxy_fails_closed 4; }

case_node_default_on() {
    local rc=0
    restart_loader 'capture = true' || return 1
    expect_all 2 "$PROXY_ANSWER" "pod2's proxy: [dns] capture = true" || rc=1
    expect_all 3 "$REAL_ANSWER" "the real resolver: pod3 opted out" || rc=1
    expect_all 1 "$PROXY_ANSWER" "pod1's proxy: its own setting" || rc=1
    return "$rc"
}

case_servers_elsewhere_untouched() {
    local rc=0
    restart_loader "capture = true
servers = [\"$RESOLVER2\"]" || return 1
    expect_all 1 "$REAL_ANSWER" "the real resolver: [dns] servers names $RESOLVER2 only" || rc=1
    expect_all 2 "$REAL_ANSWER" "the real resolver: [dns] servers names $RESOLVER2 only" || rc=1
    if expect_dig 1 "$NAME" "$PROXY_ANSWER" "pod1's proxy: $RESOLVER2 is listed" "$RESOLVER2" "@$RESOLVER2"; then
        log "pod1 dig @$RESOLVER2 (listed): $PROXY_ANSWER, SERVER $RESOLVER2#53"
    else
        rc=1
    fi
    return "$rc"
}

case_pods_show_setting() {
    local out="$WORK/pods.txt" rc=0 want
    mwl pods >"$out" 2>&1 || { log "meshwire-loader pods failed:"; show "$out"; return 1; }
    for want in "pod1 on: the pod's own setting" "pod2 on: the node's choice, [dns] capture" "pod3 off: the pod's own setting"; do
        if ! awk -v id="${want%% *}" '/^pod / { p = ($2 == id) } p && /dns capture/' "$out" | grep -qF "${want#* }"; then
            log "'pods' does not show ${want%% *} as '${want#* }':"
            show "$out"
            rc=1
        fi
    done
    grep -q "queries to $RESOLVER2 only" "$out" || { log "'pods' does not show [dns] servers"; rc=1; }
    [ "$rc" -eq 0 ] && log "pods: dns capture per pod (on/on/off with where it came from) and [dns] servers"
    return "$rc"
}

case_trace_events() {
    local tr="$WORK/trace.json" n rc=0
    trace_start "$tr"
    dig_out 1 "$NAME" "@$RESOLVER2" >/dev/null
    dig_out 1 "$NAME" "@$RESOLVER2" +tcp >/dev/null
    trace_stop "$tr" || rc=1
    n=$(grep -c '"decision":"dns_redirected"' "$tr")
    log "trace: $n dns_redirected, $(grep -c '"decision":"dns_restored"' "$tr") dns_restored for pod1"
    [ "$n" -ge 2 ] && grep -q '"decision":"dns_restored"' "$tr" && grep -q "\"dst\":\"$RESOLVER2:53\"" "$tr" || rc=1
    return "$rc"
}

# expect_dns_rules NAT WHO: NAT, a capturing pod's nat table as iptables-save
# or ip6tables-save prints it (WHO), holds the rules iptables mode writes for
# DNS in either family: the UDP jump and the UDP and TCP REDIRECTs to the
# proxy's port.
expect_dns_rules() {
    local nat=$1 who=$2 rc=0 r
    for r in "-A OUTPUT -p udp -j MESHWIRE_OUTPUT" \
        "-A MESHWIRE_OUTPUT -p udp -m udp --dport 53 -m owner ! --uid-owner $SIDECAR_UID -j REDIRECT --to-ports $DNS_PORT" \
        "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 53 -m owner ! --uid-owner $SIDECAR_UID -j REDIRECT --to-ports $DNS_PORT"; do
        grep -qxF -- "$r" <<<"$nat" || { log "$who lacks '$r'"; rc=1; }
    done
    return "$rc"
}

case_iptables_rules() {
    local nat rc=0
    nat=$(ip netns exec "$(pod 1)" iptables-save -t nat)
    expect_dns_rules "$nat" pod1 || rc=1
    if ip netns exec "$(pod 2)" iptables-save -t nat | grep -qE -- '-p udp|--dport 53 '; then
        log "pod2 (capture off) has DNS rules"
        rc=1
    fi
    [ "$rc" -eq 0 ] && log "pod1: the UDP jump and the UDP and TCP REDIRECTs to $DNS_PORT; pod2: none"
    return "$rc"
}

# ---------------------------------------------------------------------------
# IPv6: resolvers at IPv6 addresses, the DNS proxy at [::1]:15053

POD1_V6=fd00:233:1::2

case_v6_capture_on() { capture_on_proxy_answers 6; }

# A DNS query from pod N to [RESOLVER6]:53 on an unconnected AF_INET6 UDP
# socket (recvfrom's source) and on a connected one (getpeername before the
# query, the answer's source after): "how answer peer" per line.
sockets6() {
    in_pod "$1" python3 -c 'import socket, struct, sys
name, resolver = sys.argv[1], sys.argv[2]
q = struct.pack(">HHHHHH", 0x4d59, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, (resolver, 53))
data, peer = s.recvfrom(4096)
print("unconnected", socket.inet_ntoa(data[-4:]), peer[0] + "#" + str(peer[1]))
c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
c.settimeout(3)
c.connect((resolver, 53))
before = c.getpeername()
c.send(q)
data, peer = c.recvfrom(4096)
print("connected", socket.inet_ntoa(data[-4:]), peer[0] + "#" + str(peer[1]), "getpeername", before[0] + "#" + str(before[1]))' "$2" "$RESOLVER6" 2>&1
}

case_v6_sockets() {
    local out want
    out=$(sockets6 1 "$NAME")
    want="unconnected $PROXY_ANSWER $RESOLVER6#53
connected $PROXY_ANSWER $RESOLVER6#53 getpeername $RESOLVER6#53"
    if [ "$out" != "$want" ]; then
        log "pod1 AF_INET6 sockets to [$RESOLVER6]:53 said:"
        echo "$out" | indent
        log "expected:"
        echo "$want" | indent
        return 1
    fi
    log "pod1, unconnected and connected AF_INET6 UDP sockets: the proxy's answer, from $RESOLVER6#53; getpeername $RESOLVER6#53"
}

# DNS over TCP to an IPv6 resolver lands on the proxy's [::1] port: the
# proxy reads the resolver with IP6T_SO_ORIGINAL_DST (pod4's probe prints it).
case_v6_tcp_original_dst() {
    local out="$WORK/probe6.log" rc=0 got pid
    start_bg "$out" "${IN_CG[@]}" "$(pod 4)" "${AS_SIDECAR[@]}" \
        python3 -c 'import socket, struct
l = socket.socket(socket.AF_INET6)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("::1", 15053))
l.listen()
print("listening", flush=True)
c, peer = l.accept()
d = c.getsockopt(socket.IPPROTO_IPV6, 80, 28)
fam, port = struct.unpack("=H", d[0:2])[0], struct.unpack(">H", d[2:4])[0]
print("orig family %d [%s]:%d" % (fam, socket.inet_ntop(socket.AF_INET6, d[8:24]), port), flush=True)
c.sendall(b"ok")'
    pid=$LAST_PID
    wait_listen "$(pod 4)" "[::1]:$DNS_PORT" "$pid" "$out" || return 1
    got=$(in_pod 4 python3 -c 'import socket
s = socket.create_connection(("'"$RESOLVER6"'", 53), timeout=3)
p = s.getpeername()
print("[%s]:%d" % (p[0], p[1]), s.recv(2).decode())' 2>&1)
    wait "$pid" 2>/dev/null
    forget_pid "$pid"
    if ! grep -qx "orig family 10 \[$RESOLVER6\]:53" "$out" || [ "$got" != "[$RESOLVER6]:53 ok" ]; then
        log "the probe on [::1]:$DNS_PORT logged '$(grep orig "$out")', the app's getpeername/reply '$got';" \
            "expected 'orig family 10 [$RESOLVER6]:53' and '[$RESOLVER6]:53 ok'"
        show "$out"
        rc=1
    else
        log "TCP to [$RESOLVER6]:53 reached the proxy port; IP6T_SO_ORIGINAL_DST [$RESOLVER6]:53 (AF_INET6); the app's getpeername [$RESOLVER6]:53"
    fi
    return "$rc"
}

case_v6_proxy_upstream() {
    local before rc=0
    before=$(queries "$WORK/resolver.log" "$POD1_V6")
    resolv6 1 on
    expect_dig 1 "$UPSTREAM6_NAME" "$UPSTREAM6_ANSWER" "" "$RESOLVER6" || rc=1
    resolv6 1 off
    grep -q "forwarded $UPSTREAM6_NAME to $RESOLVER6" "$WORK/proxy-pod1.log" ||
        { log "pod1's proxy did not forward $UPSTREAM6_NAME to $RESOLVER6"; rc=1; }
    [ "$(queries "$WORK/resolver.log" "$POD1_V6")" -gt "$before" ] ||
        { log "the real resolver got no query from $POD1_V6 (pod1's proxy, UID $SIDECAR_UID)"; rc=1; }
    [ "$rc" -eq 0 ] && log "pod1's proxy forwarded $UPSTREAM6_NAME to $RESOLVER6 over IPv6 as UID $SIDECAR_UID (not captured), which answered $UPSTREAM6_ANSWER"
    return "$rc"
}

case_v6_capture_off() { capture_off_real_answers 6; }

# 2,000 queries to the IPv6 resolver, 20 clients at once, 100 each: 8 dig
# batches over UDP, 4 over TCP, 8 Python getaddrinfo loops.
case_v6_load() { dns_load 6 20 100 8 4; }

case_v6_no_proxy_fails_closed() { no_proxy_fails_closed 6; }

case_v6_iptables_rules() {
    local nat rc=0
    nat=$(ip netns exec "$(pod 1)" ip6tables-save -t nat)
    expect_dns_rules "$nat" "pod1's ip6tables nat" || rc=1
    if [ "$IPV6_POLICY" = pass ] && [ "$(grep -c '^-A MESHWIRE_' <<<"$nat")" -ne 2 ]; then
        log "interception.ipv6 = pass: pod1's ip6tables nat should hold the two DNS rules alone:"
        echo "$nat" | indent
        rc=1
    fi
    if ip netns exec "$(pod 2)" ip6tables-save -t nat | grep -q MESHWIRE; then
        log "pod2 (capture off) has IPv6 DNS rules"
        rc=1
    fi
    [ "$rc" -eq 0 ] && log "pod1 (interception.ipv6 = $IPV6_POLICY): the ip6tables UDP jump and the UDP and TCP REDIRECTs to $DNS_PORT alone; pod2: none"
    return "$rc"
}

case_v6_node_default_on() {
    local rc=0
    expect_all6 2 "$PROXY_ANSWER" "pod2's proxy: [dns] capture = true" || rc=1
    expect_all6 3 "$REAL_ANSWER" "the real resolver: pod3 opted out" || rc=1
    return "$rc"
}

case_v6_servers() {
    local rc=0 out how
    restart_loader "capture = true
servers = [\"$RESOLVER6_2\"]" || return 1
    expect_all6 1 "$REAL_ANSWER" "the real resolver: [dns] servers names $RESOLVER6_2 only" || rc=1
    expect_all 1 "$REAL_ANSWER" "the real resolver: [dns] servers names no IPv4 resolver" || rc=1
    for how in +notcp +tcp; do
        expect_dig 1 "$NAME" "$PROXY_ANSWER" "pod1's proxy: $RESOLVER6_2 is listed" "$RESOLVER6_2" -6 "@$RESOLVER6_2" $how || rc=1
    done
    [ "$rc" -eq 0 ] && log "pod1 dig -6 @$RESOLVER6_2 (listed), UDP and TCP: $PROXY_ANSWER, SERVER $RESOLVER6_2#53"
    out=$(mwl pods 2>&1)
    grep -q "queries to $RESOLVER6_2 only" <<<"$out" || { log "'pods' does not show [dns] servers = $RESOLVER6_2:"; echo "$out" | indent; rc=1; }
    return "$rc"
}

# trace of IPv6 queries: sendmsg6 or connect6 dns_redirected from the
# resolver to [::1]:$DNS_PORT, recvmsg6 dns_restored from the proxy to the
# resolver (IPv6 events carry their addresses), counted per hook.
case_v6_trace() {
    local tr="$WORK/trace6.json" rc=0 hooks want
    trace_start "$tr"
    dig_out 1 "$NAME" -6 "@$RESOLVER6_2" +notcp >/dev/null
    dig_out 1 "$NAME" -6 "@$RESOLVER6_2" +tcp >/dev/null
    trace_stop "$tr" || rc=1
    hooks=$(grep '^{' "$tr" | jq -r 'select(.decision == "dns_redirected" or .decision == "dns_restored") | "\(.decision) \(.hook)"' | sort | uniq -c | xargs)
    log "trace, pod1's IPv6 queries: ${hooks:-none}"
    grep -qE 'dns_redirected (sendmsg6|connect6)' <<<"$hooks" || { log "no dns_redirected from sendmsg6/connect6"; rc=1; }
    grep -q 'dns_restored recvmsg6' <<<"$hooks" || { log "no dns_restored from recvmsg6"; rc=1; }
    for want in "dns_redirected ipv6 [$RESOLVER6_2]:53 -> [::1]:$DNS_PORT" "dns_restored ipv6 [::1]:$DNS_PORT -> [$RESOLVER6_2]:53"; do
        if grep '^{' "$tr" | jq -r 'select(.decision == "dns_redirected") | "\(.decision) \(.family) \(.dst) -> \(.to)"' | grep -qxF -- "$want" ||
            grep '^{' "$tr" | jq -r 'select(.decision == "dns_restored") | "\(.decision) \(.family) \(.src) -> \(.dst)"' | grep -qxF -- "$want"; then
            log "trace: $want"
        else
            log "no event '$want'"
            rc=1
        fi
    done
    [ "$rc" -eq 0 ] || show "$tr" 10
    return "$rc"
}

# The rule: IPv6 DNS is captured whatever interception.ipv6 says.
case_v6_every_policy() {
    local rc=0 policy
    for policy in refuse intercept; do
        IPV6_POLICY=$policy
        restart_loader 'capture = true' || return 1
        log "interception.ipv6 = \"$policy\":"
        expect_all6 1 "$PROXY_ANSWER" "pod1's proxy, interception.ipv6 = $policy" || rc=1
        expect_all 1 "$PROXY_ANSWER" "pod1's proxy over IPv4, interception.ipv6 = $policy" || rc=1
        if [ "$MODE" = iptables ]; then
            ip netns exec "$(pod 1)" ip6tables-save -t nat | grep -qxF -- "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 53 -m owner ! --uid-owner $SIDECAR_UID -j REDIRECT --to-ports $DNS_PORT" ||
                { log "pod1's ip6tables nat has no DNS REDIRECT with interception.ipv6 = $policy"; rc=1; }
        fi
    done
    return "$rc"
}

# run_ebpf_case NAME FUNCTION: a case of the eBPF mode only (run_iptables_case,
# the iptables mode's, is suite_lib's).
run_ebpf_case() {
    if [ "$MODE" = ebpf ]; then run_case "$@"; else skip_case "$1" "iptables mode: no BPF decisions to trace"; fi
}

teardown() {
    suite_teardown
    rm -rf /etc/netns/"$P"-*
}

leftovers() {
    suite_leftovers
    compgen -G "/etc/netns/$P-*" | sed 's/^/resolv.conf dir /'
}

suite_traps

# ---------------------------------------------------------------------------
# Main

suite_args LOADER -- "$@"
suite_mode
echo "meshwire dns e2e: prefix $P, loader $LOADER, interception $MODE"
preflight dnsmasq dig getent python3 setpriv haproxy iptables || exit 1
echo "--- setup"
suite_workdir dns || { fail "setup: work dir and private bpffs"; exit 1; }
suite_cgroup dns || { fail "setup: cgroup under $CG2"; exit 1; }
setup_config 'capture = false' || { fail "setup: config file"; exit 1; }
setup_topology || { fail "setup: namespaces, veths, resolv.conf"; exit 1; }
start_real_resolver || { fail "setup: the real resolver (dnsmasq)"; exit 1; }
start_loader || { fail "setup: meshwire-loader run"; exit 1; }
pod_add pod1 "$(pod 1)" 10.233.1.2 --id pod1 --dns-capture true || { fail "setup: pod add pod1"; exit 1; }
pod_add pod2 "$(pod 2)" 10.233.2.2 --id pod2 || { fail "setup: pod add pod2"; exit 1; }
pod_add pod3 "$(pod 3)" 10.233.3.2 --id pod3 --dns-capture false || { fail "setup: pod add pod3"; exit 1; }
pod_add pod4 "$(pod 4)" 10.233.4.2 --id pod4 --dns-capture true || { fail "setup: pod add pod4"; exit 1; }
for i in 1 2 3; do start_proxy $i || { fail "setup: pod$i's DNS proxy"; exit 1; }; done
for i in 1 2 3; do start_outbound_sidecar $i || { fail "setup: pod$i's outbound sidecar (HAProxy)"; exit 1; }; done
log "resolvers $RESOLVER, $RESOLVER2 (node); DNS proxies on 127.0.0.1:$DNS_PORT and outbound sidecars on" \
    "127.0.0.1:$SIDECAR_PORT in pods 1-3, as UID $SIDECAR_UID"

run_case "1 capture on (pod's own): getent, getaddrinfo, dig and dig +tcp get the proxy's answer, dig's SERVER is the resolver; the resolver sees none" \
    case_capture_on_proxy_answers
run_case "2 the proxy's own upstream query (UID $SIDECAR_UID) reaches the real resolver" case_proxy_upstream_reaches_resolver
run_case "2u who is the sidecar for DNS: TCP by the socket's owner in both modes; UDP by the socket's owner in iptables mode, by the caller's real UID in eBPF mode (setresuid(0, $SIDECAR_UID, 0) and ($SIDECAR_UID, 0, 0))" \
    case_dns_uid_rule
run_case "3 capture off ([dns] capture = false, pod without a setting): the real resolver answers, the proxy sees nothing" \
    case_capture_off_real_answers
run_case "4 a dual-stack (AF_INET6) socket querying a v4-mapped resolver gets the proxy's answer from the resolver's address" \
    case_dual_stack
run_case "5 DNS over TCP: the proxy's port, SO_ORIGINAL_DST and getpeername answer the resolver" case_tcp_original_dst
run_case "6 10000 queries from 50 concurrent clients (UDP and TCP): every answer the proxy's; nothing left in the maps" \
    case_load
run_case "7 no proxy listening: every query fails, none bypasses to the real resolver" case_no_proxy_fails_closed
run_iptables_case "7i iptables mode: pod1 has the UDP jump and the DNS REDIRECTs, pod2 none" case_iptables_rules
run_case "12 IPv6 resolver (resolv.conf and dig -6 @$RESOLVER6), capture on: getent, getaddrinfo, dig and dig +tcp get the proxy's answer (at [::1]:$DNS_PORT), dig's SERVER is the IPv6 resolver; the resolver sees none" \
    case_v6_capture_on
run_case "13 IPv6: unconnected and connected AF_INET6 UDP sockets read the proxy's answer from [$RESOLVER6]:53; getpeername answers it" \
    case_v6_sockets
run_case "14 IPv6 DNS over TCP: the proxy's [::1] port, IP6T_SO_ORIGINAL_DST and getpeername answer the IPv6 resolver" \
    case_v6_tcp_original_dst
run_case "15 IPv6: the proxy's own upstream query (UID $SIDECAR_UID) to $RESOLVER6 reaches the real resolver" case_v6_proxy_upstream
run_case "16 IPv6, capture off: the real resolver answers over UDP and TCP, the proxy sees nothing" case_v6_capture_off
run_case "17 IPv6: 2000 queries from 20 concurrent clients (UDP and TCP): every answer the proxy's; nothing left in the maps" \
    case_v6_load
run_case "18 IPv6, no proxy listening: every query fails, none bypasses to the real resolver" case_v6_no_proxy_fails_closed
run_iptables_case "18i iptables mode: pod1's ip6tables nat has the DNS jump and REDIRECTs alone (interception.ipv6 = pass), pod2 none" \
    case_v6_iptables_rules
run_case "8 [dns] capture = true (restart): a pod without a setting is captured, a pod that opted out is not" \
    case_node_default_on
run_case "19 IPv6, [dns] capture = true: a pod without a setting is captured, a pod that opted out is not" \
    case_v6_node_default_on
run_case "9 [dns] servers names another resolver: the pods' queries go to theirs untouched; the listed one is captured" \
    case_servers_elsewhere_untouched
run_case "10 'pods' shows each pod's DNS capture and where it came from, and [dns] servers" case_pods_show_setting
run_ebpf_case "11 trace shows dns_redirected (UDP and TCP) and dns_restored events" case_trace_events
run_case "20 [dns] servers names an IPv6 resolver only: it is captured (UDP and TCP), the other IPv6 one and the IPv4 one are not; 'pods' shows it" \
    case_v6_servers
run_ebpf_case "21 trace shows IPv6 queries: dns_redirected from sendmsg6/connect6 ([resolver]:53 -> [::1]:$DNS_PORT), dns_restored from recvmsg6 (back to the resolver)" case_v6_trace
run_case "22 IPv6 DNS is captured with interception.ipv6 = \"refuse\" and \"intercept\" too (UDP and TCP), IPv4 DNS as before" \
    case_v6_every_policy
suite_end
