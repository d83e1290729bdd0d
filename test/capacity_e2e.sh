#!/bin/bash
# Maps at capacity, end to end, with the real loader and programs:
#
#   capacity_e2e.sh MESHWIRE_LOADER MWTEST
#
# 1. pod1 is meshed and redirected through its sidecar.
# 2. mw_pods is filled to its capacity (MW_MAX_PODS) through the pinned map
#    (bpftool batch, cookies no namespace has). `pod add` of pod2 then fails
#    with an error that says the map is full, and leaves nothing behind.
# 3. pod1 keeps its connectivity: its connections are still redirected with
#    the right original destination, as `meshwire-loader trace` shows event by
#    event (connect4 redirected, sockops published, getsockopt answered);
#    pod2, not meshed, goes direct.
# 4. The condition is reported: the loader logs that mw_pods is full, and
#    /metrics shows meshwire_map_entries{map="mw_pods"} at its capacity.
# 5. Once one entry is freed, pod2 can be meshed and is redirected.
# 6. mw_orig_tuple4 (LRU) filled to its capacity: new connections evict the
#    oldest entries and keep their original destination; the map stays at or
#    under its capacity.
# 7. mw_orig_tuple6 (interception.ipv6 = "intercept"), of the same capacity,
#    the same when full: native IPv6 connections keep their original
#    destination.
# 8. Local ports towards the sidecar: pod1's ephemeral port range cut to 300
#    ports, 1,200 of its connections to one destination are open at once
#    through its sidecar, each with its original destination: from 127.0.0.1
#    alone at most 300 could be ([interception] outbound_sources spreads them
#    over 16 loopback source addresses; 1 would fail this case).
# 9. mw_excl_cidr4, then mw_excl_cidr6 (same capacity) filled: `pod add` of
#    pod2 with an exclusion of that family fails with the same message for
#    both (naming the map and its capacity), leaves nothing of pod2, is logged
#    and shown by /metrics; pod1 stays redirected over IPv4 and IPv6; with the
#    fillers gone pod2 is meshed with both exclusions.
#
# Runs as root. Everything it creates carries the prefix mwc<PID>-
# (namespaces, cgroup, work dir with a private bpffs) and is removed by the
# EXIT trap, which then checks that nothing with the prefix is left and
# prints "N passed, N failed". Programs attach only to this test's cgroup,
# traffic stays inside its namespaces (and the metrics endpoint on
# 127.0.0.1), and only processes started here are signalled, by PID.

# Functions run from cases or the EXIT trap:
# shellcheck disable=SC2317
P="mwc$$"
NS_NODE="$P-node"
ADDR_A=10.232.0.1:8080
ADDR_A6='[fd00:232::1]:8080'
METRICS_PORT=$((20000 + $$ % 20000))

# shellcheck source=test/suite_lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/suite_lib.sh" || exit 1

# fill_map NAME COUNT: COUNT bpftool updates of the pinned map NAME, in one
# bpftool process, with filler entries no live pod or connection has: netns
# cookies 0x7e57000000000000 + i (a namespace's cookie is a small counter).
fill_map() {
    local name=$1 count=$2 batch="$WORK/fill-$1.batch"
    awk -v n="$count" -v map="$PIN/maps/$name" 'BEGIN {
        for (i = 0; i < n; i++) {
            cookie = sprintf("%02x %02x 00 00 00 00 57 7e", i % 256, int(i / 256) % 256)
            if (map ~ /mw_pods$/)           # u64 cookie -> mw_pod { flags MESHED }
                printf "map update pinned %s key hex %s value hex 01 00 00 00\n", map, cookie
            else if (map ~ /mw_excl_cidr4$/)  # mw_cidr4_key (prefix 64+32, 10.255.x.y) -> 1
                printf "map update pinned %s key hex 60 00 00 00 00 00 57 7e %02x %02x 00 00 0a ff %02x %02x value hex 01\n",
                    map, i % 256, int(i / 256) % 256, int(i / 256) % 256, i % 256
            else if (map ~ /mw_excl_cidr6$/)  # mw_cidr6_key (prefix 64+128, fd00:255::x:y) -> 1
                printf "map update pinned %s key hex c0 00 00 00 00 00 57 7e %02x %02x 00 00 fd 00 02 55 00 00 00 00 00 00 00 00 00 00 %02x %02x value hex 01\n",
                    map, i % 256, int(i / 256) % 256, int(i / 256) % 256, i % 256
            else if (map ~ /mw_orig_tuple6$/) # mw_tuple6 ([fd00:255::x:y]:1 -> [fd00:254::1]:2) -> mw_orig6
                printf "map update pinned %s key hex %s fd 00 02 55 00 00 00 00 00 00 00 00 00 00 %02x %02x fd 00 02 54 00 00 00 00 00 00 00 00 00 00 00 01 01 00 02 00 00 00 00 00 value hex fd 00 02 54 00 00 00 00 00 00 00 00 00 00 00 01 00 02 00 00 00 00 00 00\n",
                    map, cookie, int(i / 256) % 256, i % 256
            else                            # mw_tuple4 (10.255.x.y:1 -> 10.254.0.1:2) -> mw_orig4
                printf "map update pinned %s key hex %s 0a ff %02x %02x 0a fe 00 01 01 00 02 00 00 00 00 00 value hex 0a fe 00 01 00 02 01 00\n",
                    map, cookie, int(i / 256) % 256, i % 256
        }
    }' >"$batch"
    bpftool batch file "$batch" >"$WORK/fill-$name.log" 2>&1 || {
        log "bpftool batch for $name failed:"
        show "$WORK/fill-$name.log" 5
        return 1
    }
}
FIRST_FILLER_POD_KEY="00 00 00 00 00 00 57 7e"

# unfill_map NAME: the filler entries fill_map wrote, deleted again.
unfill_map() {
    local batch="$WORK/fill-$1.batch"
    sed -e 's/^map update /map delete /' -e 's/ value hex .*$//' "$batch" >"$batch.del" &&
        bpftool batch file "$batch.del" >"$WORK/unfill-$1.log" 2>&1 ||
        { log "bpftool batch deleting $1's fillers failed:"; show "$WORK/unfill-$1.log" 5; return 1; }
}

# ---------------------------------------------------------------------------
# Setup

setup() {
    local i
    suite_workdir capacity || return 1
    suite_cgroup capacity || return 1
    write_config <<EOF
trace = true
[interception]
ipv6 = "intercept"
[metrics]
address = "127.0.0.1:$METRICS_PORT"
EOF
    add_netns "$NS_NODE" || return 1
    ip netns exec "$NS_NODE" sysctl -qw net.ipv4.ip_forward=1 || return 1
    ip -n "$NS_NODE" addr add 10.232.0.1/32 dev lo || return 1
    ip -n "$NS_NODE" -6 addr add fd00:232::1/128 dev lo nodad || return 1
    ip netns exec "$NS_NODE" sysctl -qw net.ipv6.conf.all.forwarding=1 || return 1
    for i in 1 2; do
        pod_netns "$(pod $i)" "$NS_NODE" "vc$i" "10.232.$i.2" "10.232.$i.1" || return 1
        ip -n "$(pod $i)" -6 addr add "fd00:232:$i::2/64" dev eth0 nodad || return 1
        ip -n "$NS_NODE" -6 addr add "fd00:232:$i::1/64" dev "vc$i" nodad || return 1
        ip -n "$(pod $i)" -6 route add default via "fd00:232:$i::1" || return 1
    done
    start_server A "$NS_NODE" "$ADDR_A" && start_server A6 "$NS_NODE" "$ADDR_A6"
}

# mesh N: pod N's `pod add` (pod_add).
mesh() { pod_add "pod$1" "$(pod "$1")" "10.232.$1.2"; }

sidecar() { start_sidecar "pod$1" "$(pod "$1")" --inbound-listen "0.0.0.0:$INBOUND_PORT" --listen6 "[::1]:$SIDECAR_PORT"; }

# ---------------------------------------------------------------------------
# Cases

case_meshed_baseline() {
    client "$(pod 1)" "pod1 -> A" --connect "$ADDR_A" --count 10 --parallel 5 \
        --expect-orig "$ADDR_A" --expect-server A
}

case_pod_add_refused_when_full() {
    local n cap
    cap=$(map_capacity mw_pods)
    n=$(map_count mw_pods)
    log "mw_pods: $n of $cap entries; filling it with $((cap - n)) entries through the pinned map"
    fill_map mw_pods $((cap - n)) || return 1
    n=$(map_count mw_pods)
    [ "$n" = "$cap" ] || { log "mw_pods holds $n entries, expected $cap"; return 1; }
    if mesh 2; then
        log "pod add of pod2 succeeded with mw_pods full:"
        show "$WORK/pod-add-pod2.out"
        return 1
    fi
    log "pod add pod2 failed: $(head -n 1 "$WORK/pod-add-pod2.err")"
    grep -q "mw_pods is full ($cap entries)" "$WORK/pod-add-pod2.err" || {
        log "the error does not say that mw_pods is full"
        return 1
    }
    # Nothing of pod2 is left: not listed, its address not in mw_pod_ips.
    mwl pods >"$WORK/pods.txt" 2>&1 || { show "$WORK/pods.txt"; return 1; }
    if grep -q "$(pod 2)" "$WORK/pods.txt"; then
        log "pod2 is listed although its add failed:"
        show "$WORK/pods.txt"
        return 1
    fi
    n=$(map_count mw_pod_ips)
    [ "$n" = 1 ] || { log "mw_pod_ips holds $n entries, expected 1 (pod1's)"; return 1; }
    log "pods lists pod1 only; mw_pod_ips holds pod1's address only"
}

case_meshed_pod_keeps_connectivity() {
    local tr="$WORK/trace.json" tpid redirected published answered
    # Three events per connection of pod1: connect4, sockops, getsockopt.
    start_bg "$tr" "$LOADER" --pin-dir "$PIN" trace --json --netns-cookie "${COOKIE[pod1]}" --duration 60
    tpid=$LAST_PID
    sleep 0.5
    alive "$tpid" || { log "trace exited at once:"; show "$tr"; return 1; }
    client "$(pod 1)" "pod1 -> A with mw_pods full" --connect "$ADDR_A" --count 20 --parallel 5 \
        --expect-orig "$ADDR_A" --expect-server A || return 1
    client "$(pod 2)" "pod2 (not meshed) -> A" --connect "$ADDR_A" --count 5 --parallel 5 \
        --expect-direct --expect-server A || return 1
    # Ctrl-C: trace reads what is left, prints its summary and exits 0.
    sleep 1
    kill -INT "$tpid"
    wait "$tpid" || { log "trace exited with $? on SIGINT:"; show "$tr" 5; forget_pid "$tpid"; return 1; }
    forget_pid "$tpid"
    log "$(grep 'meshwire-loader trace:' "$tr")"
    redirected=$(grep -c '"decision":"connect_redirected".*"dst":"'"$ADDR_A"'".*"to":"127.0.0.1:15001"' "$tr")
    published=$(grep -c '"decision":"sockops_published"' "$tr")
    answered=$(grep -c '"decision":"sockopt_answered".*"dst":"'"$ADDR_A"'"' "$tr")
    log "trace: $redirected connect_redirected to $ADDR_A -> 127.0.0.1:15001, $published sockops_published, $answered sockopt_answered"
    # Exactly: the events of case 1, still in the ring buffer, are not shown.
    if [ "$redirected" != 20 ] || [ "$published" != 20 ] || [ "$answered" != 20 ]; then
        log "expected 20 of each for pod1's 20 connections:"
        show "$tr" 10
        return 1
    fi
}

case_reported() {
    local i m="$WORK/metrics.txt" cap
    cap=$(map_capacity mw_pods)
    # The pressure watchdog looks every 10 s.
    for ((i = 0; i < 150; i++)); do
        grep -q "map mw_pods is full: $cap of $cap entries" "$WORK/loader.log" && break
        sleep 0.1
    done
    grep "mw_pods is full" "$WORK/loader.log" | indent
    grep -q "map mw_pods is full: $cap of $cap entries; new pods cannot be meshed" "$WORK/loader.log" || {
        log "the loader did not log that mw_pods is full"
        return 1
    }
    grep -q "ERROR.*mw_pods is full" "$WORK/loader.log" || { log "the refused pod add was not logged"; return 1; }
    curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$m" || { log "no /metrics on 127.0.0.1:$METRICS_PORT"; return 1; }
    grep -E 'map="mw_pods"' "$m" | indent
    grep -qx "meshwire_map_entries{map=\"mw_pods\"} $cap" "$m" &&
        grep -qx "meshwire_map_capacity{map=\"mw_pods\"} $cap" "$m" || {
        log "/metrics does not show mw_pods at its capacity"
        return 1
    }
}

case_room_again() {
    bpftool map delete pinned "$PIN/maps/mw_pods" key hex $FIRST_FILLER_POD_KEY || return 1
    sidecar 2 || return 1
    mesh 2 || { log "pod add pod2 failed with room in mw_pods:"; show "$WORK/pod-add-pod2.err"; return 1; }
    log "pod2 meshed: cookie $(cat "$WORK/pod-add-pod2.out")"
    client "$(pod 2)" "pod2 -> A" --connect "$ADDR_A" --count 10 --parallel 5 \
        --expect-orig "$ADDR_A" --expect-server A
}

# case_tuple_map_lru [MAP ADDR SERVER]: MAP (mw_orig_tuple4) full, then
# connections to ADDR (ADDR_A, server A).
case_tuple_map_lru() {
    local map=${1:-mw_orig_tuple4} addr=${2:-$ADDR_A} server=${3:-A} cap n
    cap=$(map_capacity "$map")
    log "filling $map with $cap entries of connections that do not exist"
    fill_map "$map" "$cap" || return 1
    # The kernel's LRU hash frees from per-CPU lists: it starts evicting a
    # little before max_entries (65408 of 65536 on 2 CPUs).
    n=$(map_count "$map")
    log "$map: $n of $cap entries"
    [ "$n" -ge $((cap - cap / 100)) ] || { log "expected at least 99% of $cap"; return 1; }
    client "$(pod 1)" "pod1 -> $addr with $map full" --connect "$addr" --count 200 --parallel 10 \
        --expect-orig "$addr" --expect-server "$server" || return 1
    n=$(map_count "$map")
    log "$map after: $n of $cap entries (LRU: each new connection evicted an old entry, accept removed its own)"
    [ "$n" -le "$cap" ] || return 1
}

case_tuple6_map_lru() {
    local c4 c6
    c4=$(map_capacity mw_orig_tuple4)
    c6=$(map_capacity mw_orig_tuple6)
    [ "$c6" = "$c4" ] || { log "mw_orig_tuple6 holds $c6 entries, mw_orig_tuple4 $c4: expected the same"; return 1; }
    case_tuple_map_lru mw_orig_tuple6 "$ADDR_A6" A6
}

# Pod1's connections to its sidecar outnumber its ephemeral ports. They go
# to 8 echo ports, so that the sidecar's own connections onwards (from the
# pod's address, as many, and in the same port range) fit: 150 per port.
case_more_connections_than_ports() {
    local range port rc=0
    for port in $(seq 9100 9107); do
        start_bg "$WORK/echo-$port.log" ip netns exec "$NS_NODE" "$MWTEST" echo --listen "10.232.0.1:$port" || return 1
        wait_listen "$NS_NODE" "10.232.0.1:$port" "$LAST_PID" "$WORK/echo-$port.log" || return 1
    done
    range=$(ip netns exec "$(pod 1)" sysctl -n net.ipv4.ip_local_port_range) || return 1
    ip netns exec "$(pod 1)" sysctl -qw net.ipv4.ip_local_port_range="40000 40299" || return 1
    client "$(pod 1)" "pod1: 1,200 connections open at once from 300 ports" --connect 10.232.0.1:9100 \
        --ports 8 --count 1200 --parallel 40 --hold --timeout 20 --expect-orig 10.232.0.1:9100 || rc=1
    ip netns exec "$(pod 1)" sysctl -qw net.ipv4.ip_local_port_range="$range" || rc=1
    return "$rc"
}

suite_traps

# ---------------------------------------------------------------------------
# Main

suite_args LOADER MWTEST -- "$@"
echo "meshwire capacity e2e: prefix $P, loader $LOADER"
preflight bpftool curl || exit 1
setup || { fail "setup: namespaces, cgroup, bpffs, server"; exit 1; }
start_loader || { fail "setup: meshwire-loader run"; exit 1; }
mesh 1 || { fail "setup: pod add pod1"; exit 1; }
log "pod1 meshed, netns cookie ${COOKIE[pod1]}"
sidecar 1 || { fail "setup: pod1's sidecar"; exit 1; }

# case_excl_cidr_full: for each family, its exclusion map filled through its
# pin; pod2 (deleted first) added with an exclusion of that family is
# refused naming the map, and nothing of it is left; the message is the same
# for both families but for the map's name.
case_excl_cidr_full() {
    local rc=0 map ex cap n msg msg4="" cookies
    mwl pod del --netns "/run/netns/$(pod 2)" >/dev/null 2>&1 || { log "pod del pod2 failed"; return 1; }
    cookies=$(map_count mw_pods)
    for map in mw_excl_cidr4 mw_excl_cidr6; do
        [ "$map" = mw_excl_cidr4 ] && ex=10.96.0.0/12 || ex=fd00:96::/64
        cap=$(map_capacity "$map")
        n=$(map_count "$map")
        log "$map: $n of $cap entries; filling it with $((cap - n)) through the pinned map"
        fill_map "$map" $((cap - n)) || return 1
        n=$(map_count "$map")
        [ "$n" = "$cap" ] || { log "$map holds $n entries, expected $cap"; rc=1; }
        if pod_add pod2 "$(pod 2)" 10.232.2.2 --exclude-outbound-cidr "$ex"; then
            log "pod add of pod2 with $ex succeeded with $map full"
            rc=1
        fi
        msg=$(grep -m 1 -o "$map is full.*" "$WORK/pod-add-pod2.err")
        if [ -z "$msg" ] || ! grep -qF "$map is full ($cap entries): this pod cannot be meshed" "$WORK/pod-add-pod2.err"; then
            log "the error does not say that $map is full:"
            show "$WORK/pod-add-pod2.err"
            rc=1
        fi
        log "pod add pod2 --exclude-outbound-cidr $ex: $msg"
        if [ -z "$msg4" ]; then
            msg4=$msg
        elif [ "${msg4//mw_excl_cidr4/mw_excl_cidr6}" != "$msg" ]; then
            log "not mw_excl_cidr4's message: $msg4"
            rc=1
        fi
        # Nothing of pod2: not listed, no mw_pods or mw_pod_ips entry.
        if mwl pods 2>&1 | grep -q "$(pod 2)" || [ "$(map_count mw_pods)" != "$cookies" ] || [ "$(map_count mw_pod_ips)" != 1 ]; then
            log "pod2 left something: mw_pods $(map_count mw_pods) (expected $cookies), mw_pod_ips $(map_count mw_pod_ips) (expected 1)"
            rc=1
        fi
        grep -qF "$map is full ($cap entries)" "$WORK/loader.log" || { log "the loader did not log that $map is full"; rc=1; }
        curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$WORK/metrics-$map.txt" &&
            grep -qx "meshwire_map_entries{map=\"$map\"} $cap" "$WORK/metrics-$map.txt" ||
            { log "/metrics does not show $map at its capacity"; rc=1; }
        client "$(pod 1)" "pod1 -> A with $map full" --connect "$ADDR_A" --count 5 --expect-orig "$ADDR_A" --expect-server A || rc=1
        client "$(pod 1)" "pod1 -> A6 with $map full" --connect "$ADDR_A6" --count 5 --expect-orig "$ADDR_A6" --expect-server A6 || rc=1
        unfill_map "$map" || rc=1
    done
    pod_add pod2 "$(pod 2)" 10.232.2.2 --exclude-outbound-cidr 10.96.0.0/12 --exclude-outbound-cidr fd00:96::/64 ||
        { log "pod add pod2 failed with room again"; return 1; }
    client "$(pod 2)" "pod2 -> A" --connect "$ADDR_A" --count 5 --expect-orig "$ADDR_A" --expect-server A || rc=1
    return "$rc"
}

run_case "1 pod1 is meshed: its connections go through its sidecar" case_meshed_baseline
run_case "2 mw_pods full: pod add fails saying so, and leaves nothing of the pod" case_pod_add_refused_when_full
run_case "3 mw_pods full: pod1 stays redirected (trace shows each decision), pod2 goes direct" \
    case_meshed_pod_keeps_connectivity
run_case "4 mw_pods full is reported: loader log and meshwire_map_entries at capacity" case_reported
run_case "5 one entry freed: pod2 can be meshed and is redirected" case_room_again
run_case "6 mw_orig_tuple4 full (LRU): new connections keep their original destination" case_tuple_map_lru
run_case "7 mw_orig_tuple6 (same capacity) full (LRU): new native IPv6 connections keep their original destination" \
    case_tuple6_map_lru
run_case "8 more connections to the sidecar than the pod has ephemeral ports: all open at once, each steered" \
    case_more_connections_than_ports
run_case "9 mw_excl_cidr4 and mw_excl_cidr6 (same capacity) full: pod add with an exclusion of that family fails with the same message, leaves nothing, is logged and in /metrics; meshed pods keep going" \
    case_excl_cidr_full
suite_end
