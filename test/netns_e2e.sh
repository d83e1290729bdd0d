#!/bin/bash
# End-to-end test of meshwire with real network namespaces, a cgroup of its own
# and the real BPF programs.
#
#   netns_e2e.sh MESHWIRE_LOADER MWTEST DEMO DEB_DIR LOADER_OLDER
#
# DEMO is test/demo.sh; the last case runs it non-interactively. DEB_DIR is
# //packaging:deb's output (the node's .deb) and LOADER_OLDER this source's
# loader stamped one version lower (//test:loader_older): case 17u upgrades
# from the one to the .deb's.
#
# MESHWIRE_E2E_MODE=iptables (//test:netns_e2e_iptables) runs the same cases
# with `interception.mode = "iptables"`: the pods get netfilter rules in their
# namespaces instead of BPF map entries. Cases about the BPF datapath's own
# state (map entries, tc flows) say SKIP with the reason in that mode, and
# cases about the rules run only in it.
#
# MESHWIRE_E2E_TC_ATTACH=tcx (//test:netns_e2e_tcx) adds `[tc] attach =
# "tcx"` to the loader's configuration: the tc cases (13-16) and the restart
# case go through tcx links pinned per pod. Empty (the default): the config
# has no [tc] section, and "auto" attaches clsact filters, as "clsact" does;
# with either, the tc cases go through meshwire's filters on the pods'
# clsact qdiscs and the cases marked "c" check those filters and qdiscs
# (with tcx they say SKIP).
#
# MESHWIRE_E2E_ACCEL=1 (//test:netns_e2e_accel) adds `[acceleration] enabled =
# true`: every case runs with the mesh's hops accelerated (sockops + sk_msg),
# and the cases marked "a" check that they were (elsewhere they say SKIP).
#
# Runs as root. Everything it creates carries the prefix mw<PID>- (namespaces,
# cgroup, work dir with a private bpffs instance) and is removed by the EXIT
# trap, which then checks that nothing with the prefix is left and prints the
# summary line "N passed, N failed".
#
# Topology (all inside namespaces made here):
#
#   pod1 eth0 10.231.1.2/24 --- vp1 10.231.1.1 \
#   pod2 eth0 10.231.2.2/24 --- vp2 10.231.2.1  node  (servers on lo:
#   pod3 eth0 10.231.3.2/24 --- vp3 10.231.3.1 /  |   10.231.0.1, 10.231.0.2, 10.231.9.1,
#   pod7 eth0 (IPv6 only)  ---- vp7             /  |   fd00:231::1, fd00:231::2, fd00:231:9::1)
#                                      n2 10.231.254.1/24
#
# Pods 1-3 are dual-stack: eth0 has fd00:231:N::2/64 too (the node
# fd00:231:N::1, their IPv6 default route); pod7 has only fd00:231:7::2/64.
#                                                 |
#                             node2 eth0 10.231.254.2/24 (another node: routes
#                                                         10.231.0.0/16 via node)
#
# pod1 and pod2 are registered with meshwire (with their IPs, and their eth0
# for tc when the loader has `pod add --ifname`), pod7 with no IPv4 address,
# pod3 is not. Each pod runs an mwtest sidecar (UID 1500) on 127.0.0.1:15001
# and [::1]:15001 (outbound) and 0.0.0.0:15003
# (inbound, handing connections to 127.0.0.1:<port dialled>); sidecars and
# clients run in the test cgroup, which is where meshwire's cgroup programs are
# attached. Servers run outside the cgroup; pod1's app servers P1 and P1X
# listen on 0.0.0.0:8080 and 0.0.0.0:8082 (an excluded inbound port) in pod1.
#
# Safety: programs are attached only to this test's cgroup (given with
# --cgroup and in the config file), traffic goes only to addresses inside the
# namespaces made here, and only processes started here are signalled, by PID.

# Most functions run only from cases or the EXIT trap:
# shellcheck disable=SC2317,SC2001
P="mw$$"                        # unique prefix of everything this run creates
NS_NODE="$P-node"
NS_NODE2="$P-node2"
EXCL_PORT=8081
EXCL_CIDR=10.231.9.0/24
EXCL_IN_PORT=8082               # [inbound] exclude_ports
ADDR_A=10.231.0.1:8080          # server A
ADDR_B=10.231.0.2:8080          # server B
ADDR_X=10.231.0.1:$EXCL_PORT    # server X, excluded port
ADDR_C=10.231.9.1:8080          # server C, excluded CIDR
ADDR_L=127.0.0.1:9090           # server L, loopback in pod1
ADDR_E=10.231.0.1:7070          # echo server E, for the restart case
POD1_IP=10.231.1.2
ADDR_P1=$POD1_IP:8080           # server P1, pod1's app (listens on 0.0.0.0:8080)
ADDR_P1X=$POD1_IP:$EXCL_IN_PORT # server P1X, pod1's app on an excluded inbound port
CLIENT_TIMEOUT=300              # hard limit for one client run, seconds
# Native IPv6 (steered with interception.ipv6 = "intercept", from case 4g on).
EXCL_CIDR6=fd00:231:9::/64
ADDR_A6='[fd00:231::1]:8080'    # server A6
B6_IP=fd00:231::2
POD1_OWN=(--exclude-outbound-cidr "$B6_IP/128") # pod1's own exclusions, whenever it is registered
ADDR_B6="[$B6_IP]:8080"         # server B6; pod1 excludes it (pod add --exclude-outbound-cidr)
ADDR_X6="[fd00:231::1]:$EXCL_PORT" # server X6, excluded port
ADDR_C6='[fd00:231:9::1]:8080'  # server C6, excluded IPv6 CIDR
ADDR_L6='[::1]:9091'            # server L6, IPv6 loopback in pod1
ADDR_E6='[fd00:231::1]:7070'    # echo server E6, for the restart case
POD1_IP6=fd00:231:1::2          # pod1's IPv6 address (pods 1-3: fd00:231:N::2, registered with pod add --ip)
ADDR_P16="[$POD1_IP6]:8080"     # pod1's app over IPv6: its sidecar hands inbound IPv6 to server P16 on [::1]:8080
ADDR_P1X6="[$POD1_IP6]:$EXCL_IN_PORT" # server P1X6, pod1's app on an excluded inbound port, over IPv6
IPV6_POLICY=refuse              # interception.ipv6 until case 4g (explicit: the default is "intercept")
BPF_DEBUG=false                 # bpf.debug and bpf.trace (true for case 4o only)
METRICS_PORT=$((20000 + $$ % 20000)) # the loader's /metrics, on 127.0.0.1
POD3_REFERENCE_CONNS=0          # connections cases 4r and 4n sent through pod3's sidecar

# shellcheck source=test/suite_lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/suite_lib.sh" || exit 1

# node2_client DESC ARGS...: mwtest client on the other node (outside the cgroup,
# like any process on another host).
node2_client() {
    local desc=$1
    shift
    run_client "$desc" ip netns exec "$NS_NODE2" "$MWTEST" client "$@"
}

# ---------------------------------------------------------------------------
# Setup

setup_topology() {
    local i ns
    add_netns "$NS_NODE" || { echo "  ip netns add failed (network namespace support?)"; return 1; }
    ip netns exec "$NS_NODE" sysctl -qw net.ipv4.ip_forward=1 || return 1
    # Server addresses live on the node's loopback device.
    for a in 10.231.0.1/32 10.231.0.2/32 10.231.9.1/32; do
        ip -n "$NS_NODE" addr add "$a" dev lo || return 1
    done
    ip netns exec "$NS_NODE" sysctl -qw net.ipv6.conf.all.forwarding=1 || return 1
    for a in fd00:231::1/128 fd00:231::2/128 fd00:231:9::1/128; do
        ip -n "$NS_NODE" -6 addr add "$a" dev lo nodad || return 1
    done
    for i in 1 2 3; do
        ns=$(pod $i)
        pod_netns "$ns" "$NS_NODE" "vp$i" "10.231.$i.2" "10.231.$i.1" || return 1
        # IPv6 too, which meshwire refuses rather than let past the sidecars.
        ip -n "$ns" -6 addr add "fd00:231:$i::2/64" dev eth0 nodad || return 1
        ip -n "$NS_NODE" -6 addr add "fd00:231:$i::1/64" dev "vp$i" nodad || return 1
        ip -n "$ns" -6 route add default via "fd00:231:$i::1" || return 1
        # Room for tens of thousands of TIME_WAIT sockets from the cases below.
        ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="20000 65000" || return 1
    done
    # pod7: IPv6 only.
    ns=$(pod 7)
    add_netns "$ns" || return 1
    ip -n "$ns" link add eth0 type veth peer name vp7 netns "$NS_NODE" || return 1
    ip -n "$ns" -6 addr add fd00:231:7::2/64 dev eth0 nodad || return 1
    ip -n "$ns" link set eth0 up || return 1
    ip -n "$NS_NODE" -6 addr add fd00:231:7::1/64 dev vp7 nodad || return 1
    ip -n "$NS_NODE" link set vp7 up || return 1
    ip -n "$ns" -6 route add default via fd00:231:7::1 || return 1
    # A second node on the same network: its clients reach pods like another host's.
    add_netns "$NS_NODE2" || return 1
    ip -n "$NS_NODE2" link add eth0 type veth peer name n2 netns "$NS_NODE" || return 1
    ip -n "$NS_NODE2" addr add 10.231.254.2/24 dev eth0 || return 1
    ip -n "$NS_NODE2" link set eth0 up || return 1
    ip -n "$NS_NODE2" route add 10.231.0.0/16 via 10.231.254.1 || return 1
    ip -n "$NS_NODE" addr add 10.231.254.1/24 dev n2 || return 1
    ip -n "$NS_NODE" link set n2 up || return 1
}

# setup_config: the defaults plus what the test needs.
setup_config() {
    write_config <<EOF
debug = $BPF_DEBUG
trace = $BPF_DEBUG

[outbound]
exclude_ports = [$EXCL_PORT]
exclude_cidrs = ["$EXCL_CIDR", "$EXCL_CIDR6"]

[inbound]
exclude_ports = [$EXCL_IN_PORT]

[interception]
mode = "$MODE"
ipv6 = "$IPV6_POLICY"

[metrics]
address = "127.0.0.1:$METRICS_PORT"
EOF
    if [ -n "$TC_ATTACH" ]; then
        printf '\n[tc]\nattach = "%s"\n' "$TC_ATTACH" >>"$WORK/meshwire.toml"
    fi
    if [ -n "$ACCEL" ]; then
        printf '\n[acceleration]\nenabled = true\n' >>"$WORK/meshwire.toml"
    fi
}

start_servers() {
    local spec name addr ns
    for spec in "A $ADDR_A $NS_NODE" "B $ADDR_B $NS_NODE" "X $ADDR_X $NS_NODE" \
        "C $ADDR_C $NS_NODE" "L $ADDR_L $(pod 1)" "P1 0.0.0.0:8080 $(pod 1)" \
        "P1X 0.0.0.0:$EXCL_IN_PORT $(pod 1)" "A6 $ADDR_A6 $NS_NODE" "B6 $ADDR_B6 $NS_NODE" \
        "X6 $ADDR_X6 $NS_NODE" "C6 $ADDR_C6 $NS_NODE" "L6 $ADDR_L6 $(pod 1)" \
        "P16 [::1]:8080 $(pod 1)" "P1X6 $ADDR_P1X6 $(pod 1)"; do
        read -r name addr ns <<<"$spec"
        start_server "$name" "$ns" "$addr" || return 1
    done
}

start_sidecars() {
    local i
    for i in 1 2 3; do
        start_sidecar "pod$i" "$(pod $i)" --inbound-listen "0.0.0.0:$INBOUND_PORT" --probe-misuse \
            --listen6 "[::1]:$SIDECAR_PORT" --answers6 --inbound-listen6 "[fd00:231:$i::2]:$INBOUND_PORT" || return 1
    done
    start_sidecar pod7 "$(pod 7)" --listen6 "[::1]:$SIDECAR_PORT"
}

register_pod() { # N
    local tc=() own=()
    [ -n "$HAVE_IFNAME" ] && tc=(--ifname eth0)
    # pod1's own IPv6 exclusion: B6 (pod2 still reaches B6 through its sidecar).
    [ "$1" = 1 ] && own=("${POD1_OWN[@]}")
    pod_add "pod$1" "$(pod "$1")" "10.231.$1.2" --ip "fd00:231:$1::2" "${tc[@]}" "${own[@]}" || return 1
    log "registered $(pod "$1"): cookie ${COOKIE[pod$1]}"
}

# register_pod6: pod7, IPv6 only: no IPv4 address to register.
register_pod6() {
    local out="$WORK/pod-add-pod7.out"
    mwl pod add --netns "/run/netns/$(pod 7)" --id "$P-pod7" >"$out" 2>&1 || { show "$out"; return 1; }
    COOKIE[pod7]=$(tr -d '[:space:]' <"$out")
    log "registered $(pod 7) (IPv6 only): cookie ${COOKIE[pod7]}"
}

# ---------------------------------------------------------------------------
# Cases

# refused_start NAME LINE KEY TEXT: `meshwire-loader run` with a config file
# holding TEXT (plus this run's pin dir and cgroup) must exit non-zero at once
# with an error naming the file, LINE and KEY, and leave no pin dir. Its links
# are pinned or closed with the process, so no pins after it exited means
# nothing stayed attached; a client in the cgroup shows it too.
refused_start() {
    local name=$1 line=$2 key=$3 text=$4 conf="$WORK/bad-$1.toml" out="$WORK/bad-$1.log" rc
    printf '%s\n[bpf]\npin_dir = "%s"\ncgroup = "%s"\n' "$text" "$PIN" "$CG" >"$conf"
    loader_cmd "$conf"
    run_wait_for 15 "$out" "${MWL[@]}" run --cgroup "$CG"
    rc=$?
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        log "meshwire-loader started with $conf (exit status $rc), expected a refusal:"
        show "$out" 10
        mwl cleanup >/dev/null 2>&1
        return 1
    fi
    log "exit status $rc: $(grep -m 1 'meshwire-loader: ' "$out")"
    if ! grep -qF "$conf:$line: $key" "$out"; then
        log "the error does not name $conf, line $line and key $key:"
        show "$out" 10
        return 1
    fi
    if [ -e "$PIN" ]; then
        log "pin dir $PIN exists after the refused start:"
        find "$PIN" | head -n 20 | indent
        mwl cleanup >/dev/null 2>&1
        return 1
    fi
    log "pin dir $PIN does not exist"
    client "$(pod 1)" "pod1 (in the cgroup) -> A" --connect "$ADDR_A" --count 5 --parallel 5 \
        --expect-direct --expect-server A
}

case_refused_syntax_error() {
    refused_start syntax 3 sidecar.outbound_port "[sidecar]
uid = $SIDECAR_UID
outbound_port = = $SIDECAR_PORT"
}

case_refused_unknown_key() {
    refused_start unknown-key 5 outbound.exclude_port "# exclude_port is not a key (exclude_ports is)
[sidecar]
uid = $SIDECAR_UID
[outbound]
exclude_port = [$EXCL_PORT]"
}

case_refused_invalid_value() {
    refused_start invalid-value 4 sidecar.uid "[sidecar]
outbound_port = $SIDECAR_PORT
inbound_port = $INBOUND_PORT
uid = 0"
}

# conn_lines POD ORIG: "conn" lines for ORIG in that pod's sidecar log.
# (ORIG is matched as text: an IPv6 one has brackets.)
conn_lines() { orig_lines "$1" conn "$2" | wc -l; }

# orig_lines POD KIND ORIG: that pod's sidecar's KIND lines ("conn",
# "answer6") for ORIG, without "KIND peer=... orig=ORIG".
orig_lines() {
    awk -v k="$2" -v o="orig=$3" '$1 == k && $3 == o { $1 = $2 = $3 = ""; sub(/^ +/, ""); print }' \
        "$WORK/sidecar-pod$1.log"
}

case_outbound_redirect() {
    local before after
    before=$(conn_lines 1 "$ADDR_A")
    # --check-peer: getpeername() answers the dialled address, not the sidecar's.
    client "$(pod 1)" "pod1 -> A" --connect "$ADDR_A" --count 20 --parallel 5 --check-peer \
        --expect-orig "$ADDR_A" --expect-server A || return 1
    after=$(conn_lines 1 "$ADDR_A")
    if [ $((after - before)) -lt 20 ]; then
        log "pod1's sidecar logged $((after - before)) connections to $ADDR_A, expected 20"
        return 1
    fi
    log "pod1's sidecar logged $((after - before)) connections with orig=$ADDR_A"
}

# v4mapped IP:PORT: the same destination as an AF_INET6 socket dials it.
v4mapped() { echo "[::ffff:${1%:*}]:${1##*:}"; }

# A dual-stack app (an AF_INET6 socket, as Java and others use by default)
# dials IPv4 destinations as v4-mapped addresses: connect4 never sees them.
case_outbound_v4mapped() {
    local rc=0 before after
    before=$(conn_lines 1 "$ADDR_A")
    client "$(pod 1)" "pod1 -> $(v4mapped "$ADDR_A") (AF_INET6)" --connect "$(v4mapped "$ADDR_A")" --count 20 \
        --parallel 5 --check-peer --expect-orig "$ADDR_A" --expect-server A || rc=1
    after=$(conn_lines 1 "$ADDR_A")
    if [ $((after - before)) -lt 20 ]; then
        log "pod1's sidecar logged $((after - before)) connections to $ADDR_A, expected 20"
        rc=1
    fi
    client "$(pod 1)" "pod1 -> $(v4mapped "$ADDR_X") (AF_INET6, port $EXCL_PORT excluded)" \
        --connect "$(v4mapped "$ADDR_X")" --count 5 --expect-direct --expect-server X || rc=1
    client "$(pod 1)" "pod1 -> [::ffff:127.0.0.1] (AF_INET6, loopback)" --connect "$(v4mapped "$ADDR_L")" \
        --count 5 --expect-direct --expect-server L || rc=1
    return "$rc"
}

# interception.ipv6 = "refuse" (set explicitly until case 4g; the default is
# "intercept"): meshwire steers IPv4 only, so a meshed pod's native IPv6 TCP
# must fail rather than bypass the sidecars.
# eBPF: connect6 refuses it (EPERM), tc drops IPv6 SYNs to the pod;
# iptables mode: ip6tables rules in the pod's namespace do the same.
case_ipv6_refused() {
    local rc=0 six_node='[fd00:231:1::1]:7006' six_node3='[fd00:231:3::1]:7006' six_pod='[fd00:231:1::2]:7007'
    local six_lo='[::1]:7008' pids=() spec ns addr name pid
    for spec in "$NS_NODE $six_node V6N" "$NS_NODE $six_node3 V6N3" "$(pod 1) $six_pod V6P" "$(pod 1) $six_lo V6L"; do
        read -r ns addr name <<<"$spec"
        start_bg "$WORK/server-$name.log" "${IN_CG[@]}" "$ns" "$MWTEST" server --listen "$addr" --name "$name"
        pids+=("$LAST_PID")
        wait_listen "$ns" "$addr" "$LAST_PID" "$WORK/server-$name.log" || rc=1
    done
    if [ "$rc" -eq 0 ]; then
        client "$(pod 1)" "pod1's app -> $six_node (native IPv6)" --connect "$six_node" --count 5 \
            --expect-no-connection || rc=1
        client "$(pod 1)" "pod1's sidecar (UID $SIDECAR_UID) -> $six_node" --uid "$SIDECAR_UID" \
            --connect "$six_node" --count 5 --expect-direct --expect-server V6N || rc=1
        client "$(pod 1)" "pod1's app -> $six_lo (IPv6 loopback)" --connect "$six_lo" --count 5 \
            --expect-direct --expect-server V6L || rc=1
        client "$NS_NODE" "the node -> pod1 $six_pod (native IPv6)" --connect "$six_pod" --count 3 \
            --parallel 3 --timeout 2 --expect-no-connection || rc=1
        client "$(pod 3)" "pod3 (not meshed) -> $six_node3" --connect "$six_node3" --count 5 \
            --expect-direct --expect-server V6N3 || rc=1
    fi
    for pid in "${pids[@]}"; do
        stop_pid "$pid"
        forget_pid "$pid"
    done
    if [ "$MODE" = ebpf ]; then
        log "connect6_refused $(stat_value connect6_refused), tc6_dropped $(stat_value tc6_dropped)"
        [ "$(stat_value connect6_refused)" -ge 5 ] || { log "connect6_refused did not count the refusals"; rc=1; }
        if [ -n "$HAVE_IFNAME" ] && [ "$(stat_value tc6_dropped)" -lt 3 ]; then
            log "tc6_dropped did not count the dropped SYNs"
            rc=1
        fi
    fi
    return "$rc"
}

# A sidecar asking for SO_ORIGINAL_DST with a NULL buffer or one shorter than
# a sockaddr_in gets netfilter's errors (EFAULT, EINVAL), in both modes: the
# sidecars run with --probe-misuse and log what each call returned.
case_original_dst_misuse() {
    local before line
    before=$(grep -c '^probe ' "$WORK/sidecar-pod1.log")
    client "$(pod 1)" "pod1 -> A" --connect "$ADDR_A" --count 3 --expect-orig "$ADDR_A" --expect-server A ||
        return 1
    line=$(grep '^probe ' "$WORK/sidecar-pod1.log" | tail -n +$((before + 1)) | grep -v 'null=EFAULT short=EINVAL$' | head -n 1)
    if [ "$(grep -c '^probe ' "$WORK/sidecar-pod1.log")" -lt $((before + 3)) ] || [ -n "$line" ]; then
        log "pod1's sidecar did not get EFAULT (NULL buffer) and EINVAL (short buffer) for each connection:"
        grep '^probe ' "$WORK/sidecar-pod1.log" | tail -n 3 | indent
        return 1
    fi
    log "pod1's sidecar: $(grep '^probe ' "$WORK/sidecar-pod1.log" | tail -n 1)"
}

# --- native IPv6 (interception.ipv6 = "intercept", from case 4g on)

# The loader restarted with interception.ipv6 = "intercept": the running
# pods' native IPv6 is steered from now on (the programs' settings change;
# pods, maps and sidecars stay).
case_ipv6_intercept_switch() {
    stop_loader
    IPV6_POLICY=intercept
    setup_config || return 1
    start_loader || return 1
    grep -q 'ipv6 intercept' "$LOADER_DIR/loader.log" ||
        { log "the loader does not say it intercepts IPv6:"; show "$LOADER_DIR/loader.log" 5; return 1; }
    log "meshwire-loader restarted (PID $LOADER_PID): $(grep -o 'ipv6 intercept' "$LOADER_DIR/loader.log" | tail -n 1)"
}

case_ipv6_outbound() {
    local rc=0 before after
    before=$(conn_lines 1 "$ADDR_A6")
    # --check-peer: getpeername() answers the dialled IPv6 address, not [::1].
    client "$(pod 1)" "pod1 -> $ADDR_A6 (native IPv6)" --connect "$ADDR_A6" --count 20 --parallel 5 \
        --check-peer --expect-orig "$ADDR_A6" --expect-server A6 || rc=1
    after=$(conn_lines 1 "$ADDR_A6")
    if [ $((after - before)) -lt 20 ]; then
        log "pod1's sidecar logged $((after - before)) connections to $ADDR_A6, expected 20"
        rc=1
    fi
    before=$(conn_lines 7 "$ADDR_B6")
    client "$(pod 7)" "pod7 (IPv6 only) -> $ADDR_B6" --connect "$ADDR_B6" --count 20 --parallel 5 \
        --check-peer --expect-orig "$ADDR_B6" --expect-server B6 || rc=1
    after=$(conn_lines 7 "$ADDR_B6")
    [ $((after - before)) -ge 20 ] || { log "pod7's sidecar logged $((after - before)) connections, expected 20"; rc=1; }
    log "pod1's sidecar: $(grep -m 1 -F " orig=$ADDR_A6" "$WORK/sidecar-pod1.log")"
    return "$rc"
}

# hex6 ADDR PORT: a sockaddr_in6 as IP6T_SO_ORIGINAL_DST writes it (family
# little-endian, port, flowinfo 0, address, scope id 0), in hex.
hex6() {
    local full
    full=$(python3 -c 'import ipaddress, sys; print(ipaddress.IPv6Address(sys.argv[1]).packed.hex())' "$1")
    printf '0a00%04x00000000%s00000000' "$2" "$full"
}

# The sidecar's IP6T_SO_ORIGINAL_DST, byte for byte, as netfilter's
# ipv6_getorigdst() answers it (iptables mode gets the kernel's own): a
# sockaddr_in6 with optlen left as given (28, 64, 200; the rest of the zeroed
# buffer still zero), EINVAL for 27 bytes, EFAULT for a NULL buffer.
case_ipv6_original_dst_bytes() {
    local before sin6 want got n
    before=$(orig_lines 1 answer6 "$ADDR_A6" | wc -l)
    client "$(pod 1)" "pod1 -> $ADDR_A6" --connect "$ADDR_A6" --count 5 --expect-orig "$ADDR_A6" \
        --expect-server A6 || return 1
    sin6=$(hex6 fd00:231::1 8080)
    want="len28=28:$sin6 len64=64:$sin6$(printf '0%.0s' $(seq 72)) len200=200:$sin6$(printf '0%.0s' $(seq 344)) len27=EINVAL null=EFAULT"
    n=0
    while read -r got; do
        n=$((n + 1))
        if [ "$got" != "$want" ]; then
            log "an answer differs:"
            log "  got  $got"
            log "  want $want"
            return 1
        fi
    done < <(orig_lines 1 answer6 "$ADDR_A6" | tail -n +$((before + 1)))
    [ "$n" -ge 5 ] || { log "pod1's sidecar logged $n answers for $ADDR_A6, expected 5"; return 1; }
    log "$n connections, each: ${want:0:90}..."
}

# The reference: pod3 (not meshed) gets a plain ip6tables REDIRECT of its own
# (written here, in the test's namespace), so the kernel's conntrack answers
# its sidecar; pod1 is steered by the mode under test (eBPF: the getsockopt
# program; iptables mode: meshwire's ip6tables rules). The same connections
# from both, and the same sidecar code asking the same questions: every
# answer (sockaddr_in6 bytes and optlen for 28, 64 and 200 bytes; the errno
# for 27 bytes and for NULL) must be byte-identical.
case_ipv6_original_dst_reference() {
    local rc=0 b1 b3 ns3 ref got line a6
    ns3=$(pod 3)
    a6=${ADDR_A6%]:*}
    a6=${a6#[}
    b1=$(orig_lines 1 answer6 "$ADDR_A6" | wc -l)
    b3=$(orig_lines 3 answer6 "$ADDR_A6" | wc -l)
    ip netns exec "$ns3" ip6tables -t nat -A OUTPUT -d "$a6" -p tcp -m owner ! --uid-owner "$SIDECAR_UID" \
        -j REDIRECT --to-ports "$SIDECAR_PORT" || { log "could not add the reference REDIRECT in $ns3"; return 1; }
    client "$ns3" "pod3 (the kernel's conntrack) -> $ADDR_A6" --connect "$ADDR_A6" --count 10 --parallel 5 \
        --expect-orig "$ADDR_A6" --expect-server A6 || rc=1
    client "$(pod 1)" "pod1 ($MODE mode) -> $ADDR_A6" --connect "$ADDR_A6" --count 10 --parallel 5 \
        --expect-orig "$ADDR_A6" --expect-server A6 || rc=1
    ip netns exec "$ns3" ip6tables -t nat -D OUTPUT -d "$a6" -p tcp -m owner ! --uid-owner "$SIDECAR_UID" \
        -j REDIRECT --to-ports "$SIDECAR_PORT" || rc=1
    POD3_REFERENCE_CONNS=$(grep -c '^conn ' "$WORK/sidecar-pod3.log")
    ref=$(orig_lines 3 answer6 "$ADDR_A6" | tail -n +$((b3 + 1)) | sort -u)
    got=$(orig_lines 1 answer6 "$ADDR_A6" | tail -n +$((b1 + 1)) | sort -u)
    if [ "$(orig_lines 3 answer6 "$ADDR_A6" | tail -n +$((b3 + 1)) | wc -l)" -lt 10 ] ||
        [ "$(orig_lines 1 answer6 "$ADDR_A6" | tail -n +$((b1 + 1)) | wc -l)" -lt 10 ]; then
        log "expected 10 answer6 lines from each sidecar"
        rc=1
    fi
    if [ "$(echo "$ref" | grep -c .)" != 1 ] || [ "$ref" != "$got" ]; then
        log "the answers differ (or vary between connections):"
        echo "$ref" | sed 's/^/  kernel: /' | indent
        echo "$got" | sed "s/^/  $MODE: /" | indent
        return 1
    fi
    for line in $ref; do log "  $line"; done
    return "$rc"
}

case_ipv6_excluded() {
    local rc=0
    client "$(pod 1)" "pod1 -> X6 $ADDR_X6 (port $EXCL_PORT excluded)" --connect "$ADDR_X6" --count 10 \
        --parallel 5 --expect-direct --expect-server X6 || rc=1
    client "$(pod 1)" "pod1 -> C6 $ADDR_C6 ($EXCL_CIDR6 excluded node-wide)" --connect "$ADDR_C6" --count 10 \
        --parallel 5 --expect-direct --expect-server C6 || rc=1
    client "$(pod 1)" "pod1 -> B6 $ADDR_B6 (pod1's own exclusion $B6_IP/128)" --connect "$ADDR_B6" --count 10 \
        --parallel 5 --expect-direct --expect-server B6 || rc=1
    client "$(pod 2)" "pod2 -> B6 $ADDR_B6 (pod1's exclusion is not pod2's)" --connect "$ADDR_B6" --count 10 \
        --parallel 5 --expect-orig "$ADDR_B6" --expect-server B6 || rc=1
    return "$rc"
}

# api_request JSON: one request line to the loader's API socket; prints the answer line.
api_request() {
    python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
print(s.makefile().readline().strip())' "$(api_sock)" "$1"
}

# Include lists over IPv6: pod3 (unregistered until now) meshed with one
# include list of both families, split by family: A6 and A (the included
# addresses) are steered, B6 and B (not included) go direct, an excluded port
# on an included address goes direct; bad ranges are refused naming the value
# and change nothing; "*" steers all again. pod3 goes at the end.
case_ipv6_include_outbound() {
    local rc=0 before id=incl6-pod3 ns="/run/netns/$(pod 3)" out="$WORK/pod-add-incl6.log" ans a6
    a6=${ADDR_A6%]:*}
    a6=${a6#[}
    incl6() { mwl pod add --id "$id" --netns "$ns" --ip 10.231.3.2 --ip fd00:231:3::2 "$@" >"$out" 2>&1; }
    incl6 --include-outbound-cidrs "$a6/128,${ADDR_A%:*}/32" ||
        { log "pod add failed:"; show "$out"; return 1; }
    before=$(conn_lines 3 "$ADDR_A6")
    client "$(pod 3)" "pod3 (include $a6/128) -> A6 $ADDR_A6" --connect "$ADDR_A6" --count 10 --parallel 5 \
        --check-peer --expect-orig "$ADDR_A6" --expect-server A6 || rc=1
    [ $(($(conn_lines 3 "$ADDR_A6") - before)) -ge 10 ] || { log "pod3's sidecar did not log them"; rc=1; }
    client "$(pod 3)" "pod3 -> B6 $ADDR_B6, not included" --connect "$ADDR_B6" --count 10 --parallel 5 \
        --expect-direct --expect-server B6 || rc=1
    client "$(pod 3)" "pod3 -> A $ADDR_A, the list's IPv4 range" --connect "$ADDR_A" --count 10 --parallel 5 \
        --expect-orig "$ADDR_A" --expect-server A || rc=1
    client "$(pod 3)" "pod3 -> B $ADDR_B, not included" --connect "$ADDR_B" --count 10 --parallel 5 \
        --expect-direct --expect-server B || rc=1
    client "$(pod 3)" "pod3 -> X6 $ADDR_X6 (included address, excluded port $EXCL_PORT)" --connect "$ADDR_X6" \
        --count 5 --parallel 5 --expect-direct --expect-server X6 || rc=1
    mwl pods >"$WORK/pods-incl6.log" 2>&1
    grep -qF "included outbound IPv6 cidrs $a6/128" "$WORK/pods-incl6.log" ||
        { log "pods does not show the included IPv6 range:"; show "$WORK/pods-incl6.log"; rc=1; }
    # Bad ranges: refused naming the value, by the CLI and by the API; nothing changes.
    if incl6 --include-outbound-cidrs "$a6/128,fd00:231::1/64"; then
        log "pod add with fd00:231::1/64 (host bits) succeeded"; rc=1
    elif ! grep -qF 'fd00:231::1/64' "$out"; then
        log "the refusal does not name fd00:231::1/64:"; show "$out"; rc=1
    else
        log "refused: $(grep -m 1 -F 'fd00:231::1/64' "$out")"
    fi
    ans=$(api_request '{"version":1,"op":"add_pod","pod":{"container_id":"'"$id"'","netns":"'"$ns"'","ips":["10.231.3.2"],"include_outbound_cidrs":[],"include_outbound_cidrs6":["fd00:231::2/128","fd00:231::/200"]}}')
    case "$ans" in
        *'"ok":false'*invalid_request*'fd00:231::/200'*) log "API: $ans" ;;
        *) log "the API answered $ans, expected invalid_request naming fd00:231::/200"; rc=1 ;;
    esac
    ans=$(api_request '{"version":1,"op":"add_pod","pod":{"container_id":"'"$id"'","netns":"'"$ns"'","ips":["10.231.3.2"],"include_outbound_cidrs6":["fd00:231::2/128"]}}')
    case "$ans" in
        *'"ok":false'*invalid_request*'include_outbound_cidrs6 [fd00:231::2/128] without include_outbound_cidrs'*) log "API: $ans" ;;
        *) log "the API answered $ans, expected invalid_request for IPv6 ranges without include_outbound_cidrs"; rc=1 ;;
    esac
    client "$(pod 3)" "pod3 -> B6 $ADDR_B6, still not included" --connect "$ADDR_B6" --count 5 --parallel 5 \
        --expect-direct --expect-server B6 || rc=1
    client "$(pod 3)" "pod3 -> A6 $ADDR_A6, still included" --connect "$ADDR_A6" --count 5 --parallel 5 \
        --expect-orig "$ADDR_A6" --expect-server A6 || rc=1
    # "*": everything again.
    incl6 --include-outbound-cidrs '*' || { log "pod add failed:"; show "$out"; rc=1; }
    client "$(pod 3)" "pod3 (include *) -> B6 $ADDR_B6" --connect "$ADDR_B6" --count 10 --parallel 5 \
        --expect-orig "$ADDR_B6" --expect-server B6 || rc=1
    mwl pod del --id "$id" >/dev/null 2>&1 || { log "pod del $id failed"; rc=1; }
    POD3_REFERENCE_CONNS=$(grep -c '^conn ' "$WORK/sidecar-pod3.log")
    return "$rc"
}

# restart_loader_with_debug true|false: the loader restarted with bpf.debug
# and bpf.trace so (its pods and sidecars stay).
restart_loader_with_debug() {
    stop_loader
    BPF_DEBUG=$1
    setup_config || return 1
    start_loader
}

# trace_count FILE DECISION KEY=VALUE...: how many of `trace --json`'s events
# in FILE have that decision and those fields, and from how many sources
# (connections): "N SOURCES".
trace_count() {
    python3 - "$@" <<'PY'
import json, sys
path, decision, want = sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:])
n, sources = 0, set()
for line in open(path):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if isinstance(e, dict) and e.get("decision") == decision and all(str(e.get(k)) == v for k, v in want.items()):
        n += 1
        sources.add(e.get("src"))
print(n, len(sources))
PY
}

# Trace over IPv6 (debug mode: the loader restarted with bpf.debug and
# bpf.trace): `trace --json` for pod1 prints each native IPv6 decision with
# its addresses, [addr]:port: connect6 steering to [::1]:15001, sockops'
# hand-over, getsockopt's answer to the sidecar, and an excluded range's
# connect going direct; the text form too. The loader goes back as it was.
case_ipv6_trace() {
    local rc=0 tr="$WORK/trace6.json" txt="$WORK/trace6.txt" tpid a6 b6 n
    a6=${ADDR_A6%]:*}
    a6=${a6#[}
    b6=$B6_IP
    restart_loader_with_debug true || return 1
    start_bg "$tr" "$LOADER" --pin-dir "$PIN" trace --json --netns-cookie "${COOKIE[pod1]}" --duration 60
    tpid=$LAST_PID
    sleep 0.5
    alive "$tpid" || { log "trace exited at once:"; show "$tr"; restart_loader_with_debug false; return 1; }
    client "$(pod 1)" "pod1 -> A6 $ADDR_A6 (traced)" --connect "$ADDR_A6" --count 5 --parallel 5 \
        --expect-orig "$ADDR_A6" --expect-server A6 || rc=1
    client "$(pod 1)" "pod1 -> B6 $ADDR_B6 (pod1's excluded range, traced)" --connect "$ADDR_B6" --count 3 \
        --expect-direct --expect-server B6 || rc=1
    sleep 1
    kill -INT "$tpid"
    wait "$tpid" || { log "trace exited with $? on SIGINT:"; show "$tr" 5; rc=1; }
    forget_pid "$tpid"
    # The text form of the same events (the ring buffer's backlog is gone: a new connection).
    start_bg "$txt" "$LOADER" --pin-dir "$PIN" trace --netns-cookie "${COOKIE[pod1]}" --count 1 --duration 30
    tpid=$LAST_PID
    sleep 0.5
    client "$(pod 1)" "pod1 -> B6 $ADDR_B6 (traced as text)" --connect "$ADDR_B6" --count 1 \
        --expect-direct --expect-server B6 || rc=1
    wait "$tpid" || { log "trace (text) exited with $?:"; show "$txt" 5; rc=1; }
    forget_pid "$tpid"
    restart_loader_with_debug false || rc=1
    # Events and distinct sources: connect6 knows no source yet; sockops and
    # getsockopt name each connection's own ([::1]:port), the test sidecar
    # asks IP6T_SO_ORIGINAL_DST five times per connection.
    for check in "connect_redirected 5_1 hook=connect6 family=ipv6 dst=[$a6]:8080 to=[::1]:$SIDECAR_PORT src=None" \
        "sockops_published 5_5 hook=sockops family=ipv6 dst=[$a6]:8080 to=[::1]:$SIDECAR_PORT" \
        "sockopt_answered 25_5 hook=getsockopt family=ipv6 dst=[$a6]:8080 to=[::1]:$SIDECAR_PORT uid=$SIDECAR_UID" \
        "connect_excluded 3_1 hook=connect6 family=ipv6 dst=[$b6]:8080 to=None"; do
        read -r decision want fields <<<"$check"
        # shellcheck disable=SC2086 # fields: KEY=VALUE words
        n=$(trace_count "$tr" "$decision" $fields | tr ' ' _)
        if [ "$n" = "$want" ]; then
            log "trace: $n (events_sources) $decision ($fields)"
        else
            log "trace: $n (events_sources) $decision ($fields), expected $want"
            rc=1
        fi
    done
    [ "$rc" -eq 0 ] || show "$tr" 20
    if grep -qF "connect_excluded" "$txt" && grep -qF "dst [$b6]:8080" "$txt"; then
        log "trace (text): $(grep -m 1 -F "dst [$b6]:8080" "$txt")"
    else
        log "trace (text) does not print the excluded IPv6 connect as dst [$b6]:8080:"
        show "$txt" 5
        rc=1
    fi
    return "$rc"
}

# metric FILE NAME LABELS: the value of NAME{LABELS} in a /metrics page.
metric() { awk -v k="$2{$3}" '$1 == k { print $2 }' "$1"; }

# status_value NAME: the second column of `meshwire-loader status`'s line
# for NAME (a map's entries, a counter's value).
status_value() { mwl status 2>/dev/null | awk -v m="$1" '$1 == m { print $2; exit }'; }

# hook_of_counter FILE NAME: the hook label /metrics gives counter NAME.
hook_of_counter() { sed -n "s/^meshwire_datapath_events_total{hook=\"\([^\"]*\)\",event=\"$2\"}.*/\1/p" "$1" | head -n 1; }

# The views over IPv6: connections of the IPv6-only pod7 held between the
# app's handshake and its sidecar's (pod7's ip6tables drops the final ACKs
# to [::1]:15001, so the sidecar's side stays in SYN-RECV) are listed by
# `conns` with their IPv6 original destination, and `status` and /metrics
# show mw_orig_tuple6 holding them, the pods' IPv6 addresses in
# mw_pod_ips6, the IPv6 exclusion ranges, and the counters of their
# decisions; once the ACKs pass, the entries go and the connections work.
case_ipv6_views() {
    local rc=0 ns7 held="$WORK/held6.log" hpid m="$WORK/metrics6.txt" c="$WORK/conns6.txt" n want map name
    local redirected published bound drop
    ns7=$(pod 7)
    drop=(-p tcp -i lo -d ::1 --dport "$SIDECAR_PORT" --tcp-flags SYN,ACK,FIN,RST ACK -j DROP)
    redirected=$(stat_value connect_redirected)
    published=$(stat_value sockops_tuple_added)
    bound=$(stat_value sockops_accept_bound)
    ip netns exec "$ns7" ip6tables -I INPUT "${drop[@]}" || { log "could not add the ACK drop in $ns7"; return 1; }
    start_bg "$held" "${IN_CG[@]}" "$ns7" python3 -c 'import socket, sys, time
socks = [socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) for _ in range(3)]
print("held", " ".join(str(s.getsockname()[1]) for s in socks), flush=True)
time.sleep(60)' "$B6_IP" 8080
    hpid=$LAST_PID
    for ((n = 0; n < 50; n++)); do grep -q '^held' "$held" && break; sleep 0.1; done
    grep -q '^held' "$held" || { log "pod7's connections were not established:"; show "$held"; rc=1; }
    mwl conns >"$c" 2>&1 || { log "conns failed:"; show "$c"; rc=1; }
    # Awaiting accept: the lines with an original destination (with
    # acceleration, the same sockets are listed again as accelerated).
    n=$(grep -F "netns ${COOKIE[pod7]} " "$c" | grep -c ' orig ')
    want=$(grep -F "netns ${COOKIE[pod7]} " "$c" | grep -cE "\[::1\]:[0-9]+ -> \[::1\]:$SIDECAR_PORT +orig \[$B6_IP\]:8080$")
    if [ "$n" = 3 ] && [ "$want" = 3 ]; then
        log "conns: $(grep -m 1 -F "netns ${COOKIE[pod7]} " "$c" | sed 's/^ *//') (and 2 more)"
    else
        log "conns lists $n of pod7's connections ($want with [::1] -> [::1]:$SIDECAR_PORT orig [$B6_IP]:8080), expected 3:"
        show "$c"
        rc=1
    fi
    curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >"$m" || { log "no /metrics on 127.0.0.1:$METRICS_PORT"; rc=1; }
    for want in "mw_orig_tuple6 3" "mw_pod_ips6 2"; do
        read -r map n <<<"$want"
        if [ "$(metric "$m" meshwire_map_entries "map=\"$map\"")" != "$n" ] || [ "$(status_value "$map")" != "$n" ]; then
            log "$map: /metrics $(metric "$m" meshwire_map_entries "map=\"$map\""), status $(status_value "$map"), expected $n"
            rc=1
        fi
    done
    [ "$(metric "$m" meshwire_map_capacity 'map="mw_orig_tuple6"')" = "$(metric "$m" meshwire_map_capacity 'map="mw_orig_tuple4"')" ] ||
        { log "/metrics: mw_orig_tuple6's capacity is not mw_orig_tuple4's"; rc=1; }
    n=$(metric "$m" meshwire_map_entries 'map="mw_excl_cidr6"')
    [ "${n:-0}" -ge 2 ] || { log "/metrics: mw_excl_cidr6 holds ${n:-no} entries, expected the node's and pod1's ranges (2)"; rc=1; }
    for want in "connect_redirected $redirected" "sockops_tuple_added $published"; do
        read -r name n <<<"$want"
        [ "$(( $(metric "$m" meshwire_datapath_events_total "hook=\"$(hook_of_counter "$m" "$name")\",event=\"$name\"") - n ))" = 3 ] ||
            { log "/metrics: $name went from $n to $(grep "event=\"$name\"" "$m"), expected +3"; rc=1; }
        [ "$(( $(status_value "$name") - n ))" = 3 ] || { log "status: $name is $(status_value "$name"), not $n + 3"; rc=1; }
    done
    log "status and /metrics: mw_orig_tuple6 3 (capacity $(metric "$m" meshwire_map_capacity 'map="mw_orig_tuple6"')), mw_pod_ips6 2 (pod1, pod2), mw_excl_cidr6 $(metric "$m" meshwire_map_entries 'map="mw_excl_cidr6"'); connect_redirected and sockops_tuple_added +3"
    # Not handed over yet: the sidecar's side never became established.
    [ "$(status_value sockops_accept_bound)" = "$bound" ] ||
        { log "sockops_accept_bound went from $bound to $(status_value sockops_accept_bound) while the ACKs were dropped"; rc=1; }
    ip netns exec "$ns7" ip6tables -D INPUT "${drop[@]}" || rc=1
    # The sidecar's SYN-ACK is sent again, the ACK passes: handed over, entries gone.
    wait_map_empty mw_orig_tuple6 || rc=1
    [ "$(( $(status_value sockops_accept_bound) - bound ))" = 3 ] ||
        { log "sockops_accept_bound went from $bound to $(status_value sockops_accept_bound), expected +3 once the ACKs passed"; rc=1; }
    stop_pid "$hpid" 5
    forget_pid "$hpid"
    client "$ns7" "pod7 -> B6 $ADDR_B6 after" --connect "$ADDR_B6" --count 3 --expect-orig "$ADDR_B6" --expect-server B6 || rc=1
    return "$rc"
}

case_ipv6_loopback_sidecar_unregistered() {
    local rc=0 before
    client "$(pod 1)" "pod1 -> L6 $ADDR_L6 (IPv6 loopback)" --connect "$ADDR_L6" --count 10 --parallel 5 \
        --expect-direct --expect-server L6 || rc=1
    client "$(pod 1)" "pod1 as UID $SIDECAR_UID -> $ADDR_A6" --uid "$SIDECAR_UID" --connect "$ADDR_A6" \
        --count 10 --parallel 5 --expect-direct --expect-server A6 || rc=1
    client "$(pod 1)" "pod1's app straight to its sidecar [::1]:$SIDECAR_PORT" --connect "[::1]:$SIDECAR_PORT" \
        --count 3 --expect-no-connection || rc=1
    before=$(grep -c '^conn ' "$WORK/sidecar-pod3.log")
    client "$(pod 3)" "pod3 (not registered) -> $ADDR_A6" --connect "$ADDR_A6" --count 10 --parallel 5 \
        --expect-direct --expect-server A6 || rc=1
    [ "$(grep -c '^conn ' "$WORK/sidecar-pod3.log")" = "$before" ] ||
        { log "pod3's sidecar saw connections"; rc=1; }
    return "$rc"
}

# ipv6_inbound FUNCTION: runs an inbound IPv6 case; in iptables mode a
# failure says its likely cause (inbound IPv6 needs ip6tables REDIRECT rules,
# which that mode writes only once it steers IPv6), so a red run names it.
ipv6_inbound() {
    "$@" && return 0
    [ "$MODE" = iptables ] &&
        log "iptables mode: inbound IPv6 needs ip6tables REDIRECT rules for the pod's IPv6 addresses (issue 13's ip6tables mode); without them it is refused"
    return 1
}

# esc TEXT: TEXT with [ and ] escaped for grep (IPv6 addresses in brackets).
esc() { printf '%s' "$1" | sed 's/[][]/\\&/g'; }

# Inbound IPv6 from outside the node's meshed pods (tc on pod1's eth0): the
# node dialling pod1's IPv6 address lands on pod1's inbound sidecar, which
# reads [pod1]:8080 with IP6T_SO_ORIGINAL_DST and hands it to the app on
# [::1]:8080; an excluded inbound port reaches the app directly; every flow
# entry is gone once the connections closed.
case_ipv6_inbound_cross_node() {
    local rc=0 before redirected
    before=$(inbound_lines 1 "$(esc "$ADDR_P16")" "$(esc '[fd00:231:1::1]')")
    redirected=$(stat_value tc_redirected)
    client "$NS_NODE" "the node -> pod1 $ADDR_P16 (native IPv6, through tc)" --connect "$ADDR_P16" \
        --count 20 --parallel 5 --check-peer --expect-inbound-orig "$ADDR_P16" --expect-server P16 || rc=1
    inbound_logged 1 "$(esc "$ADDR_P16")" "$(esc '[fd00:231:1::1]')" "$before" 20 || rc=1
    client "$NS_NODE" "the node -> pod1 $ADDR_P1X6 (inbound port $EXCL_IN_PORT excluded)" --connect "$ADDR_P1X6" \
        --count 10 --parallel 5 --check-peer --expect-direct --expect-server P1X6 || rc=1
    if [ "$MODE" = ebpf ] && [ -n "$HAVE_IFNAME" ]; then
        [ "$(( $(stat_value tc_redirected) - redirected ))" -ge 20 ] ||
            { log "tc_redirected went up by $(( $(stat_value tc_redirected) - redirected )), expected 20"; rc=1; }
        # While a connection is open, `conns` lists its flow (mw_flow6) with the port dialled.
        local held="$WORK/held-p16.log" hpid n host=${ADDR_P16%]:*} port=${ADDR_P16##*:}
        start_bg "$held" ip netns exec "$NS_NODE" python3 -c 'import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
print("held", flush=True)
time.sleep(30)' "${host#[}" "$port"
        hpid=$LAST_PID
        for ((n = 0; n < 50; n++)); do grep -q '^held' "$held" && break; sleep 0.1; done
        mwl conns >"$WORK/conns-flow6.txt" 2>&1
        if grep -qE "^  \[fd00:231:1::1\]:[0-9]+ -> $(esc "$ADDR_P16")  flags " "$WORK/conns-flow6.txt"; then
            log "conns: $(grep -m 1 -F " -> $ADDR_P16  flags " "$WORK/conns-flow6.txt" | sed 's/^ *//')"
        else
            log "conns does not list the open inbound IPv6 flow [fd00:231:1::1]:* -> $ADDR_P16:"
            show "$held"
            show "$WORK/conns-flow6.txt"
            rc=1
        fi
        stop_pid "$hpid" 5
        forget_pid "$hpid"
        wait_map_empty mw_flow6 || rc=1
        wait_map_empty mw_flow6_syn || rc=1
    fi
    return "$rc"
}

# Same-node inbound over IPv6: pod2's sidecar dialling pod1's IPv6 address
# goes to pod1's inbound sidecar (connect6); pod2's app goes through both
# sidecars; pod1's excluded inbound port is reached directly.
case_ipv6_inbound_same_node() {
    local rc=0 before
    before=$(inbound_lines 1 "$(esc "$ADDR_P16")" "$(esc '[fd00:231:2::2]')")
    client "$(pod 2)" "pod2's sidecar (UID $SIDECAR_UID) -> pod1 $ADDR_P16" --uid "$SIDECAR_UID" \
        --connect "$ADDR_P16" --count 20 --parallel 5 --check-peer --expect-inbound-orig "$ADDR_P16" \
        --expect-server P16 || rc=1
    client "$(pod 2)" "pod2's app -> pod2's sidecar -> pod1 $ADDR_P16" --connect "$ADDR_P16" --count 20 \
        --parallel 5 --expect-orig "$ADDR_P16" --expect-inbound-orig "$ADDR_P16" --expect-server P16 || rc=1
    inbound_logged 1 "$(esc "$ADDR_P16")" "$(esc '[fd00:231:2::2]')" "$before" 40 || rc=1
    client "$(pod 2)" "pod2's sidecar -> pod1 $ADDR_P1X6 (inbound port $EXCL_IN_PORT excluded)" \
        --uid "$SIDECAR_UID" --connect "$ADDR_P1X6" --count 10 --parallel 5 --check-peer --expect-direct \
        --expect-server P1X6 || rc=1
    return "$rc"
}

# An MPTCP socket is steered like a TCP one, and getpeername() on it answers
# the dialled address too.
case_outbound_mptcp() {
    ip netns exec "$(pod 1)" sysctl -qw net.mptcp.enabled=1 2>/dev/null ||
        { log "kernel feature missing: MPTCP (net.mptcp.enabled, CONFIG_MPTCP)"; return 1; }
    client "$(pod 1)" "pod1 -> A over MPTCP" --mptcp --connect "$ADDR_A" --count 5 --check-peer \
        --expect-orig "$ADDR_A" --expect-server A
}

# An app socket bound to eth0 (SO_BINDTODEVICE) is steered to the sidecar on
# the pod's loopback all the same, at once: it must not send its SYNs to
# 127.0.0.1 out of eth0 and hang.
case_outbound_bound_device() {
    client "$(pod 1)" "pod1 -> A from a socket bound to eth0" --bind-device eth0 --connect "$ADDR_A" \
        --count 5 --timeout 3 --check-peer --expect-orig "$ADDR_A" --expect-server A
}

case_excluded_port_and_cidr() {
    local rc=0
    client "$(pod 1)" "pod1 -> X (port $EXCL_PORT excluded)" --connect "$ADDR_X" --count 10 \
        --parallel 5 --expect-direct --expect-server X || rc=1
    client "$(pod 1)" "pod1 -> C ($EXCL_CIDR excluded)" --connect "$ADDR_C" --count 10 \
        --parallel 5 --expect-direct --expect-server C || rc=1
    return "$rc"
}

case_loopback_direct() {
    client "$(pod 1)" "pod1 -> L on $ADDR_L" --connect "$ADDR_L" --count 10 --parallel 5 \
        --expect-direct --expect-server L
}

case_sidecar_uid_not_looped() {
    client "$(pod 1)" "pod1 as UID $SIDECAR_UID -> A" --uid "$SIDECAR_UID" --connect "$ADDR_A" \
        --count 10 --parallel 5 --expect-direct --expect-server A
}

# Who is the sidecar, in both modes: the socket's owner (the filesystem UID,
# which follows the effective one, at socket()), as iptables' owner match
# sees it, not the task's real UID.
case_uid_rule_socket_owner() {
    client "$(pod 1)" "pod1, setresuid($SIDECAR_UID, 0, 0): its sockets are root's, steered" \
        --resuid "$SIDECAR_UID,0,0" --connect "$ADDR_A" --count 5 --expect-orig "$ADDR_A" --expect-server A || return 1
    client "$(pod 1)" "pod1, setresuid(0, $SIDECAR_UID, 0): its sockets are UID $SIDECAR_UID's, direct" \
        --resuid "0,$SIDECAR_UID,0" --connect "$ADDR_A" --count 5 --expect-direct --expect-server A
}

# userns_netns NS MAP: netns NS owned by a new user namespace whose uid_map
# and gid_map are MAP, held by a process of the run ($USERNS_HOLDER).
USERNS_HOLDER=""
IN_USERNS=()
userns_netns() {
    local ns=$1 map=$2 i
    start_bg "$WORK/holder-$ns.log" unshare --user --net sleep 3600
    USERNS_HOLDER=$LAST_PID
    for ((i = 0; i < 50; i++)); do
        [ "$(stat -L -c %i "/proc/$USERNS_HOLDER/ns/user" 2>/dev/null)" != "$(stat -L -c %i /proc/self/ns/user)" ] && break
        sleep 0.1
    done
    echo "$map" >"/proc/$USERNS_HOLDER/uid_map" && echo "$map" >"/proc/$USERNS_HOLDER/gid_map" &&
        ip netns attach "$ns" "$USERNS_HOLDER" && ip -n "$ns" link set lo up
}

# in_userns NS HOLDER: sets IN_USERNS to a command prefix: "${IN_USERNS[@]}"
# CMD... runs CMD in netns NS inside the cgroup, in the user namespace of
# HOLDER (as its root, until CMD drops to another UID).
in_userns() {
    IN_USERNS=("${IN_CG[@]}" "$1" nsenter --user="/proc/$2/ns/user")
}

# A pod whose network namespace belongs to a user namespace of its own
# (Kubernetes hostUsers: false), UIDs 0-65535 mapped to host 100000-165535:
# its sidecar runs as UID 1500 there, host 101500. That sidecar's own
# connections go direct, the pod's apps are steered into it, and so is a
# process of the host's UID 1500 in its namespace: in both modes. A pod whose
# user namespace does not map UID 1500 cannot be meshed (pod add names it).
case_userns_pod() {
    local ns holder sidecar rc=0 bin="$WORK/userns/mwtest" out
    ns=$(pod 4)
    # Its processes are not root on the host: the binary must be reachable by others.
    mkdir -p -m 755 "$WORK/userns" && cp "$MWTEST" "$bin" && chmod 755 "$bin" && chmod 711 "$WORK" || return 1
    userns_netns "$ns" "0 100000 65536" || return 1
    holder=$USERNS_HOLDER
    pod_link "$ns" "$NS_NODE" vp4 10.231.4.2 10.231.4.1 || return 1
    register_pod 4 || return 1
    in_userns "$ns" "$holder"
    start_bg "$WORK/sidecar-pod4.log" "${IN_USERNS[@]}" "$bin" sidecar --listen "127.0.0.1:$SIDECAR_PORT" \
        --uid "$SIDECAR_UID" --gid "$SIDECAR_UID"
    sidecar=$LAST_PID
    wait_listen "$ns" "127.0.0.1:$SIDECAR_PORT" "$sidecar" "$WORK/sidecar-pod4.log" || return 1
    log "pod4's sidecar: $(grep -m 1 listening "$WORK/sidecar-pod4.log"), host UID $(ps -o uid= -p "$sidecar" | tr -d ' ')"
    run_client "pod4's sidecar UID (1500 in its user namespace) -> A: direct" \
        "${IN_USERNS[@]}" "$bin" client --uid "$SIDECAR_UID" --connect "$ADDR_A" --count 5 --expect-direct \
        --expect-server A || rc=1
    run_client "pod4's app (UID 1000 in its user namespace) -> A: through pod4's sidecar" \
        "${IN_USERNS[@]}" "$bin" client --uid 1000 --connect "$ADDR_A" --count 5 --expect-orig "$ADDR_A" \
        --expect-server A || rc=1
    client "$ns" "host UID $SIDECAR_UID in pod4's namespace -> A: an app there, through pod4's sidecar" --uid "$SIDECAR_UID" \
        --connect "$ADDR_A" --count 5 --expect-orig "$ADDR_A" --expect-server A || rc=1
    mwl pod del --netns "/run/netns/$ns" >/dev/null 2>&1 || { log "pod del pod4 failed"; rc=1; }
    stop_pid "$sidecar" 3
    stop_pid "$holder" 3
    ip netns del "$ns"

    ns=$(pod 5)
    userns_netns "$ns" "0 200000 1000" || return 1
    out="$WORK/pod-add-pod5.err"
    if mwl pod add --netns "/run/netns/$ns" --id pod5 >/dev/null 2>"$out"; then
        log "pod add of a namespace whose user namespace does not map UID $SIDECAR_UID succeeded"
        mwl pod del --id pod5 >/dev/null 2>&1
        rc=1
    elif ! grep -q "does not map sidecar.uid $SIDECAR_UID" "$out"; then
        log "pod add of pod5 failed, but does not say that UID $SIDECAR_UID is not mapped:"
        show "$out"
        rc=1
    else
        log "pod add pod5 refused: $(head -c 200 "$out")"
    fi
    if pod_list | grep -q pod5; then
        log "pod5 is listed after its refused add"
        rc=1
    fi
    stop_pid "$USERNS_HOLDER" 3
    ip netns del "$ns"
    return "$rc"
}

case_unregistered_netns_untouched() {
    client "$(pod 3)" "pod3 (in the cgroup, not registered) -> A" --connect "$ADDR_A" --count 10 \
        --parallel 5 --expect-direct --expect-server A || return 1
    # None but those of case 4r's reference REDIRECT.
    if [ "$(grep -c '^conn ' "$WORK/sidecar-pod3.log")" != "$POD3_REFERENCE_CONNS" ]; then
        log "pod3's sidecar saw connections:"
        show "$WORK/sidecar-pod3.log" 5
        return 1
    fi
}

# case_two_pods_concurrently [A B NAME_A NAME_B]: pod1 -> A and pod2 -> B at
# once (IPv4's A and B unless given).
case_two_pods_concurrently() {
    local a=${1:-$ADDR_A} b=${2:-$ADDR_B} na=${3:-A} nb=${4:-B}
    local p1 p2 rc1 rc2 o1="$WORK/client-c6-pod1.log" o2="$WORK/client-c6-pod2.log" b2 others
    b2=$(conn_lines 2 "$b")
    start_bg "$o1" timeout -k 5 "$CLIENT_TIMEOUT" "${IN_CG[@]}" "$(pod 1)" "$MWTEST" client \
        --connect "$a" --count 300 --parallel 20 --expect-orig "$a" --expect-server "$na"
    p1=$LAST_PID
    start_bg "$o2" timeout -k 5 "$CLIENT_TIMEOUT" "${IN_CG[@]}" "$(pod 2)" "$MWTEST" client \
        --connect "$b" --count 300 --parallel 20 --expect-orig "$b" --expect-server "$nb"
    p2=$LAST_PID
    wait "$p1"
    rc1=$?
    forget_pid "$p1"
    wait "$p2"
    rc2=$?
    forget_pid "$p2"
    log "pod1 -> $a: $(tail -n 1 "$o1")"
    [ "$rc1" -eq 0 ] || show "$o1"
    log "pod2 -> $b: $(tail -n 1 "$o2")"
    [ "$rc2" -eq 0 ] || show "$o2"
    [ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ] || return 1
    # Every connection pod2's sidecar handled was pod2's own (IPv4's B, and
    # after case 4g IPv6's B6 as well, and case 4m's to pod1 over IPv6).
    others=$(awk -v b="orig=$ADDR_B" -v b6="orig=$ADDR_B6" -v p16="orig=$ADDR_P16" \
        '$1 == "conn" && $3 != b && $3 != b6 && $3 != p16' \
        "$WORK/sidecar-pod2.log")
    if [ -n "$others" ]; then
        log "pod2's sidecar saw another destination:"
        head -n 5 <<<"$others" | indent
        return 1
    fi
    log "pod2's sidecar logged $(($(conn_lines 2 "$b") - b2)) connections, all with orig=$b"
}

case_netns_meshed_once() {
    local out before
    before=$(pod_list)
    if out=$(mwl pod add --netns "/run/netns/$(pod 1)" --ip 10.231.1.2 --id "$P-dup" 2>&1); then
        log "a second pod add of pod1's namespace succeeded: $out"
        mwl pod del --id "$P-dup" >/dev/null 2>&1
        return 1
    fi
    grep -q "already meshed as container" <<<"$out" || { log "refused, but without naming the owner: $out"; return 1; }
    log "refused: $(tail -n 1 <<<"$out")"
    [ "$(pod_list)" = "$before" ] || { log "pod list changed: $(pod_list | tr '\n' ';')"; return 1; }
    client "$(pod 1)" "pod1 -> A" --connect "$ADDR_A" --count 5 --expect-orig "$ADDR_A" --expect-server A
}

# orig_map_counts: from `meshwire-loader maps`, the per-connection maps
# (names containing "orig") with a numeric count, as "name count" lines.
# Maps whose count is not a number (sk_storage) are exempt.
orig_map_counts() { awk '$1 ~ /orig/ && $2 ~ /^[0-9]+$/ { print $1, $2 }' "$1"; }

# A failed change leaves the pod as it was: re-adding a meshed pod with an
# interface that does not exist fails, and the pod keeps its map entries and
# its record. (eBPF mode: iptables mode attaches nothing to an interface.)
case_failed_readd_keeps_pod() {
    local ns="$P-rep" pods_before out
    ip netns add "$ns" || return 1
    mwl pod add --netns "/run/netns/$ns" --id rep >/dev/null || { log "pod add --id rep failed"; return 1; }
    pods_before=$(map_count mw_pods)
    if out=$(mwl pod add --netns "/run/netns/$ns" --id rep --ifname nosuchif 2>&1); then
        log "re-adding rep with --ifname nosuchif succeeded: $out"
        mwl pod del --id rep >/dev/null 2>&1
        return 1
    fi
    log "re-adding rep with --ifname nosuchif failed: $(echo "$out" | tail -n 1)"
    if ! pod_list | grep -qw rep || [ "$(map_count mw_pods)" != "$pods_before" ]; then
        log "rep is gone: pod list $(pod_list | tr '\n' ';'), mw_pods $pods_before -> $(map_count mw_pods)"
        mwl pod del --id rep >/dev/null 2>&1
        return 1
    fi
    log "rep is still meshed (pod list and mw_pods, $pods_before entries)"
    mwl pod del --id rep >/dev/null
}

# Pod IDs derived from netns paths are one per path (a.b and a_b are two
# pods), and an ID meshed for one namespace is refused for another.
case_pod_ids_one_per_netns() {
    local a="$P-a.b" b="$P-a_b" c="$P-other" out rc=0
    ip netns add "$a" && ip netns add "$b" && ip netns add "$c" || return 1
    mwl pod add --netns "/run/netns/$a" >/dev/null && mwl pod add --netns "/run/netns/$b" >/dev/null ||
        { log "pod add of $a and $b failed"; return 1; }
    if [ "$(pod_list | grep -c -- "-a[._]")" != 2 ]; then
        log "$a and $b are not two pods: $(pod_list | tr '\n' ';')"
        rc=1
    else
        log "two pods: $(pod_list | grep -- "-a[._]" | awk '{ print $1 }' | tr '\n' ' ')"
    fi
    if out=$(mwl pod add --netns "/run/netns/$c" --id "$(pod_list | grep -- "-a\.2eb" | awk '{ print $1 }')" 2>&1); then
        log "the ID of $a was accepted for $c: $out"
        mwl pod del --netns "/run/netns/$c" >/dev/null 2>&1
        rc=1
    elif ! grep -q "already meshed with network namespace /run/netns/$a" <<<"$out"; then
        log "re-using $a's ID for $c was refused without naming $a: $out"
        rc=1
    else
        log "re-using $a's ID for $c: $(echo "$out" | tail -n 1 | cut -c1-200)"
    fi
    [ "$(pod_list | grep -c -- "-a[._]")" = 2 ] || { log "after the refusal: $(pod_list | tr '\n' ';')"; rc=1; }
    mwl pod del --netns "/run/netns/$a" >/dev/null && mwl pod del --netns "/run/netns/$b" >/dev/null || rc=1
    return "$rc"
}

# Straight to a sidecar's capture ports (outbound 15001, inbound 15003),
# which meshwire did not steer there: from pod1's app, from pod1's sidecar
# itself, and from another node through tc, each is refused (eBPF: connect()
# fails at once, tc answers another node's or an unmeshed pod's SYN with a
# reset; iptables mode: the guard chains answer the SYN with a reset): those
# peers' connect() is refused (ECONNREFUSED), not left to time out. The
# sidecar sees none of them; meshed requests keep flowing.
case_capture_ports_refused() {
    local pod1_ip=10.231.1.2 seen rc=0 target
    seen=$(grep -c 'no original destination\|^conn \|^inbound ' "$WORK/sidecar-pod1.log")
    for target in "127.0.0.1:$SIDECAR_PORT" "127.0.0.1:$INBOUND_PORT" "$pod1_ip:$INBOUND_PORT" "$pod1_ip:$SIDECAR_PORT"; do
        client "$(pod 1)" "pod1's app -> $target" --connect "$target" --count 3 --timeout 2 \
            --expect-no-connection || rc=1
        client "$(pod 1)" "pod1's sidecar (UID $SIDECAR_UID) -> $target" --uid "$SIDECAR_UID" --connect "$target" \
            --count 3 --timeout 2 --expect-no-connection || rc=1
    done
    client "$(pod 2)" "pod2's sidecar -> pod1's $pod1_ip:$INBOUND_PORT" --uid "$SIDECAR_UID" \
        --connect "$pod1_ip:$INBOUND_PORT" --count 3 --timeout 2 --expect-no-connection || rc=1
    if [ -n "$HAVE_IFNAME" ]; then
        client "$(pod 3)" "pod3 (not meshed) -> pod1 $pod1_ip:$INBOUND_PORT" --connect "$pod1_ip:$INBOUND_PORT" \
            --count 2 --parallel 2 --timeout 2 --expect-no-connection --refused || rc=1
        for target in "$pod1_ip:$INBOUND_PORT" "$pod1_ip:$SIDECAR_PORT"; do
            node2_client "node2 -> pod1 $target" --connect "$target" --count 2 --parallel 2 --timeout 2 \
                --expect-no-connection --refused || rc=1
        done
    fi
    if [ "$(grep -c 'no original destination\|^conn \|^inbound ' "$WORK/sidecar-pod1.log")" != "$seen" ]; then
        log "pod1's sidecar saw connections meanwhile:"
        show "$WORK/sidecar-pod1.log" 5
        rc=1
    else
        log "pod1's sidecar saw none of them; loop_refused $(stat_value loop_refused)"
    fi
    client "$(pod 1)" "pod1 -> A (meshed, through the sidecar)" --connect "$ADDR_A" --count 10 --parallel 5 \
        --expect-orig "$ADDR_A" --expect-server A || rc=1
    return "$rc"
}

# haproxy_stats NS: the CSV statistics of the HAProxy whose stats page is on
# NS's 127.0.0.1:15090.
haproxy_stats() { ip netns exec "$1" curl -sf --max-time 5 "http://127.0.0.1:15090/stats;csv"; }

# haproxy_frontend_conns NS FRONTEND...: connections that HAProxy accepted on
# those frontends (stot).
haproxy_frontend_conns() {
    local ns=$1
    shift
    haproxy_stats "$ns" |
        awk -F, -v want=" $* " '$2 == "FRONTEND" && index(want, " " $1 " ") { s += $8 } END { print s + 0 }'
}

# HAProxy as a pod's sidecar, as issue 12 ran it: `mode tcp`, `server s
# 0.0.0.0:0` (each connection forwarded to its original destination, or to
# the address it arrived on when it has none: itself), UID 1500. Connections
# straight to its capture ports (from the pod's app, from HAProxy's own UID,
# from another node) are refused: it accepts none of them, so it never dials
# itself; meshed requests, outbound and from another node, flow through it.
# Its health port (15021), listed in the pod's excluded inbound ports, is
# reached directly from another node, not through its inbound port.
case_haproxy_sidecar() {
    local ns pod_ip=10.231.6.2 cfg="$WORK/haproxy-pod6.cfg" hp rc=0 n target
    local health=15021 tc=()
    ns=$(pod 6)
    pod_netns "$ns" "$NS_NODE" vp6 "$pod_ip" 10.231.6.1 || return 1
    start_server P6 "$ns" 0.0.0.0:8080 || return 1
    [ -n "$HAVE_IFNAME" ] && tc=(--ifname eth0)
    pod_add pod6 "$ns" "$pod_ip" --exclude-inbound-port "$health" "${tc[@]}" || return 1
    cat >"$cfg" <<EOC
global
    maxconn 100
    uid $SIDECAR_UID
    gid $SIDECAR_UID
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend out
    bind 127.0.0.1:$SIDECAR_PORT
    default_backend orig
frontend in
    bind 0.0.0.0:$INBOUND_PORT
    default_backend orig
backend orig
    server s 0.0.0.0:0
frontend health
    mode http
    bind 0.0.0.0:$health
    monitor-uri /healthz
frontend stats
    mode http
    bind 127.0.0.1:15090
    stats enable
    stats uri /stats
EOC
    start_bg "$WORK/haproxy-pod6.log" "${IN_CG[@]}" "$ns" haproxy -db -f "$cfg"
    hp=$LAST_PID
    wait_listen "$ns" "0.0.0.0:$INBOUND_PORT" "$hp" "$WORK/haproxy-pod6.log" || return 1
    wait_listen "$ns" "127.0.0.1:$SIDECAR_PORT" "$hp" "$WORK/haproxy-pod6.log" || return 1
    log "HAProxy $(haproxy -v | head -n 1 | awk '{ print $3 }') is pod6's sidecar (UID $(ps -o uid= -p "$hp" | tr -d ' '))"

    for target in "127.0.0.1:$SIDECAR_PORT" "$pod_ip:$INBOUND_PORT"; do
        client "$ns" "pod6's app -> $target" --connect "$target" --count 20 --parallel 10 --timeout 2 \
            --expect-no-connection || rc=1
        client "$ns" "pod6's sidecar UID -> $target" --uid "$SIDECAR_UID" --connect "$target" --count 5 \
            --parallel 5 --timeout 2 --expect-no-connection || rc=1
    done
    if [ -n "$HAVE_IFNAME" ]; then
        node2_client "node2 -> pod6 $pod_ip:$INBOUND_PORT" --connect "$pod_ip:$INBOUND_PORT" --count 10 \
            --parallel 10 --timeout 2 --expect-no-connection --refused || rc=1
    fi
    n=$(haproxy_frontend_conns "$ns" out in)
    if [ "$n" != 0 ]; then
        log "HAProxy accepted $n connections on its capture ports during the attacks, expected 0:"
        haproxy_stats "$ns" | cut -d, -f1,2,5,8 | indent
        rc=1
    else
        log "HAProxy accepted 0 connections on its capture ports during the attacks"
    fi
    alive "$hp" || { log "HAProxy exited:"; show "$WORK/haproxy-pod6.log" 10; return 1; }

    # HAProxy relays without markers: its counters show the way.
    client "$ns" "pod6's app -> A, through HAProxy" --connect "$ADDR_A" --count 20 --parallel 5 \
        --expect-direct --expect-server A || rc=1
    n=$(haproxy_frontend_conns "$ns" out)
    [ "$n" = 20 ] || { log "HAProxy's outbound frontend accepted $n connections, expected 20"; rc=1; }
    if [ -n "$HAVE_IFNAME" ]; then
        node2_client "node2 -> pod6's app $pod_ip:8080, through HAProxy" --connect "$pod_ip:8080" --count 10 \
            --parallel 5 --expect-direct --expect-server P6 || rc=1
        n=$(haproxy_frontend_conns "$ns" in)
        [ "$n" = 10 ] || { log "HAProxy's inbound frontend accepted $n connections, expected 10"; rc=1; }
        if ! ip netns exec "$NS_NODE2" curl -sf --max-time 5 "http://$pod_ip:$health/healthz" >/dev/null; then
            log "node2 -> HAProxy's health port $pod_ip:$health/healthz failed"
            rc=1
        fi
        n=$(haproxy_frontend_conns "$ns" in)
        [ "$n" = 10 ] || { log "the health check went through the inbound port ($n connections there, expected 10)"; rc=1; }
        log "node2 -> $pod_ip:$health/healthz answered directly (HAProxy's inbound frontend still at $n)"
    fi
    log "HAProxy's frontends: $(haproxy_stats "$ns" | awk -F, '$2 == "FRONTEND" { printf "%s %s, ", $1, $8 }')"
    mwl pod del --netns "/run/netns/$ns" >/dev/null 2>&1 || { log "pod del pod6 failed"; rc=1; }
    stop_pid "$hp" 3
    return "$rc"
}

# case_no_leaks [ADDR NAME]: 10000 connections from pod1 to ADDR (IPv4's A
# unless given), then no per-connection map entry left.
case_no_leaks() {
    local maps="$WORK/maps.txt" i nonzero addr=${1:-$ADDR_A} name=${2:-A}
    mwl stats >"$WORK/stats-before.txt" 2>&1
    client "$(pod 1)" "pod1 -> $addr, 10000 connections" --connect "$addr" --count 10000 \
        --parallel 20 --expect-orig "$addr" --expect-server "$name" || return 1
    # Informational: what the datapath counted for these connections.
    mwl stats >"$WORK/stats-after.txt" 2>&1 &&
        log "counters that moved: $(awk 'NR == FNR { b[$1] = $2; next }
            $2 ~ /^[0-9]+$/ && $2 != b[$1] { printf "%s +%d ", $1, $2 - b[$1] }' \
            "$WORK/stats-before.txt" "$WORK/stats-after.txt")"
    for ((i = 0; i < 50; i++)); do
        if ! mwl maps >"$maps" 2>&1; then
            log "meshwire-loader maps failed:"
            show "$maps"
            return 1
        fi
        if [ -z "$(orig_map_counts "$maps")" ]; then
            log "no countable per-connection map (name containing \"orig\") in 'maps':"
            show "$maps"
            return 1
        fi
        nonzero=$(orig_map_counts "$maps" | awk '$2 != 0')
        [ -z "$nonzero" ] && break
        sleep 0.2
    done
    if [ -n "$nonzero" ]; then
        log "per-connection maps still hold entries 10 s after the last connection closed:"
        show "$maps"
        return 1
    fi
    log "after $((i * 2 / 10)) s: $(orig_map_counts "$maps" | tr '\n' ' ')(all 0)"
    awk '$1 ~ /orig/ && $2 !~ /^[0-9]+$/ { print "  exempt (not countable): " $0 }' "$maps"
}

pod_list() { mwl pod list 2>&1 | awk 'NR > 1 { print $1, $2 }' | sort; }

# datapath_ids: what is attached and pinned, by kernel object ID: the
# programs on the test cgroup, and each pin under $PIN as a link (with its
# program) or a map. A loader that replaced any of it changes this.
datapath_ids() {
    local f
    bpftool cgroup show "$CG" 2>&1
    find "$PIN" -mindepth 1 -not -type d 2>/dev/null | sort | while read -r f; do
        echo "$f: $(bpftool link show pinned "$f" 2>/dev/null | head -n 1 || true)$(bpftool map show pinned "$f" 2>/dev/null | head -n 1 || true)"
    done
}

# start_waiting_loader LOG HOLDER_PID DESC: `"${MWL[@]}" run` in the
# background (WAITING_PID, log LOG) beside the loader HOLDER_PID; up to 20 s
# until it says that HOLDER_PID holds the loader lock (logged as DESC: ...).
start_waiting_loader() {
    local out=$1 holder=$2 i
    start_bg "$out" "${MWL[@]}" run --cgroup "$CG"
    WAITING_PID=$LAST_PID
    for ((i = 0; i < 200; i++)); do
        grep -q "pid $holder .*holds the loader lock" "$out" && break
        alive "$WAITING_PID" || break
        sleep 0.1
    done
    if ! grep -q "pid $holder .*holds the loader lock" "$out"; then
        log "$3 does not say that pid $holder holds the lock:"
        show "$out" 10
        return 1
    fi
    log "$3: $(grep -m 1 'holds the loader lock' "$out" | sed 's/.*INFO[^ ]* //')"
}

# A second `meshwire-loader run` with another configuration (bpf.debug and an
# extra excluded port: other programs, other map entries) started beside the
# live one, under load through the sidecars: it waits for the loader lock,
# naming the holder, and changes no program, link or map meanwhile; `run
# --no-wait` exits at once naming it; stopping the first hands over to the
# second, which then serves with its own configuration; no request fails.
case_second_loader_waits() {
    local conf2="$WORK/meshwire-second.toml" out2="$WORK/loader-second.log" out3="$WORK/loader-nowait.log"
    local load_pid second_pid first_pid=$LOADER_PID before after rc=0 i n
    sed -e 's/^debug = false$/debug = true/' -e "s/^exclude_ports = \[$EXCL_PORT\]$/exclude_ports = [$EXCL_PORT, 9999]/" \
        "$WORK/meshwire.toml" >"$conf2"
    grep -q '^debug = true$' "$conf2" && grep -q ', 9999\]' "$conf2" || { log "could not derive $conf2"; return 1; }
    # Load through pod1's sidecar for the whole case, handover included.
    rm -f "$WORK/load-17l.stop"
    start_bg "$WORK/client-load.log" load_batches "$WORK/load-17l.stop" \
        --connect "$ADDR_A" --count 100 --parallel 2 --expect-orig "$ADDR_A" --expect-server A
    load_pid=$LAST_PID
    wait_batches "$WORK/client-load.log" 2 "$load_pid" || rc=1
    before=$(datapath_ids)
    loader_cmd "$conf2"
    start_waiting_loader "$out2" "$first_pid" "second loader" || rc=1
    second_pid=$WAITING_PID
    run_wait_for 10 "$out3" "${MWL[@]}" run --cgroup "$CG" --no-wait
    i=$?
    if [ "$i" -eq 0 ] || [ "$i" -eq 124 ] || ! grep -q "pid $first_pid.*--no-wait" "$out3"; then
        log "run --no-wait (exit status $i) did not exit at once naming pid $first_pid:"
        show "$out3" 5
        rc=1
    else
        log "run --no-wait: exit status $i: $(grep -m 1 'meshwire-loader: ' "$out3")"
    fi
    sleep 2
    after=$(datapath_ids)
    local links maps
    links=$(echo "$after" | grep -c ' prog [0-9]')
    maps=$(echo "$after" | grep -c 'name mw_')
    if [ "$links" -eq 0 ] || [ "$maps" -eq 0 ]; then
        log "the snapshot shows $links pinned links and $maps pinned maps: nothing to compare"
        echo "$after" | head -n 20 | indent
        rc=1
    elif [ "$before" != "$after" ]; then
        log "programs, links or maps changed while the first loader ran:"
        diff <(echo "$before") <(echo "$after") | indent
        rc=1
    else
        log "no program, link or map changed (cgroup programs, $links pinned links, $maps pinned maps compared by ID)"
    fi
    # Hand over: the first stops, the second takes the lock and starts.
    stop_loader
    if wait_loader_ready "$out2" "$second_pid" 20 && grep -q 'took over the loader lock' "$out2"; then
        log "the second loader took over: $(grep -m 1 'took over' "$out2" | sed 's/.*INFO[^ ]* //')"
        forget_pid "$second_pid"
        LOADER_PID=$second_pid
    else
        log "the second loader did not take over:"
        show "$out2" 10
        stop_pid "$second_pid"
        forget_pid "$second_pid"
        start_loader || return 1
        rc=1
    fi
    # The load goes on after the handover, then stops.
    n=$(batches_ok "$WORK/client-load.log")
    finish_load "$WORK/client-load.log" "$load_pid" "$WORK/load-17l.stop" "a request through pod1's sidecar failed" || rc=1
    log "load through pod1's sidecar during all of it: $(batches_ok "$WORK/client-load.log") batches of 100 connections, none failed ($n of them done when the second loader was serving)"
    if ! mwl pods 2>&1 | grep -q 9999; then
        log "the second loader's node-wide excluded port 9999 is not in force"
        rc=1
    fi
    client "$(pod 1)" "pod1 -> A after the handover" --connect "$ADDR_A" --count 10 --parallel 5 \
        --expect-orig "$ADDR_A" --expect-server A || rc=1
    return "$rc"
}

# load_batches STOP ARGS...: `mwtest client ARGS` from pod1 through its
# sidecar, batch after batch, until the file STOP exists: a line "ok N TIME
# SUMMARY" per batch; stops at the first batch that fails, printing its
# output after "FAILED N", and exits 1.
load_batches() {
    local stop=$1 batch n=0
    shift
    batch=$(mktemp "$WORK/load-batch.XXXXXX")
    while [ ! -e "$stop" ]; do
        n=$((n + 1))
        if ! timeout -k 5 60 "${IN_CG[@]}" "$(pod 1)" "$MWTEST" client "$@" >"$batch" 2>&1; then
            echo "FAILED $n"
            cat "$batch"
            return 1
        fi
        echo "ok $n $(date +%s.%N) $(tail -n 1 "$batch")"
    done
}
batches_ok() { grep -c '^ok ' "$1"; } # LOG: batches done so far

# wait_batches LOG N PID: up to 60 s until LOG has N batches done; fails if
# the load (PID) stops first.
wait_batches() {
    local i
    for ((i = 0; i < 600; i++)); do
        [ "$(batches_ok "$1")" -ge "$2" ] && return 0
        alive "$3" || { log "the load stopped:"; show "$1" 10; return 1; }
        sleep 0.1
    done
    log "the load did not reach $2 batches in 60 s:"
    show "$1" 5
    return 1
}

# finish_load LOG PID STOP WHAT: three more batches of the load (PID,
# logging to LOG), then STOP ends it; fails, saying WHAT, if a request failed.
finish_load() {
    local rc=0 status
    wait_batches "$1" $(($(batches_ok "$1") + 3)) "$2" || rc=1
    touch "$3"
    wait "$2"
    status=$?
    forget_pid "$2"
    if [ "$status" -ne 0 ] || grep -q '^FAILED' "$1"; then
        log "$4:"
        show "$1" 20
        rc=1
    fi
    return "$rc"
}

# pin_ids: each pin under $PIN with the kernel object behind it: "PATH link
# ID prog ID", "PATH map ID", "PATH prog ID" (bpftool's first line).
pin_ids() {
    local f l
    find "$PIN" -mindepth 1 -not -type d 2>/dev/null | sort | while read -r f; do
        if l=$(bpftool link show pinned "$f" 2>/dev/null | head -n 1) && [ -n "$l" ]; then
            echo "$f link ${l%%:*} prog $(sed -nE 's/.* prog ([0-9]+).*/\1/p' <<<"$l")"
        elif l=$(bpftool map show pinned "$f" 2>/dev/null | head -n 1) && [ -n "$l" ]; then
            echo "$f map ${l%%:*}"
        elif l=$(bpftool prog show pinned "$f" 2>/dev/null | head -n 1) && [ -n "$l" ]; then
            echo "$f prog ${l%%:*}"
        else
            echo "$f unknown"
        fi
    done
}

# pod_records: the pods' records in the state dir, with their checksums.
pod_records() { find "$(state_dir)/pods" -type f -print0 2>/dev/null | sort -z | xargs -0 -r md5sum; }

# An upgrade to the node's .deb under load. The first loader is this source
# stamped one version lower (//test:loader_older, `<version>~e2e.older`); the
# second is /usr/bin/meshwire-loader of //packaging:deb, unpacked with
# `dpkg-deb -x` into the work dir (never installed on the machine), run with
# the node's configuration as the package's unit runs it. Through it all,
# pod1's app connects through its sidecar, batch after batch: no request may
# fail. The .deb's loader waits for the loader lock naming the first, and
# changes no program, link, map or pod record meanwhile; stopping the first
# hands over: the new loader replaces the program behind every pinned link
# (same link, new program) and keeps every map (same map: an upgrade in
# place, no state lost), adopts the same pods, and its ready line and
# `status` name the newer version.
case_deb_upgrade() {
    local root="$WORK/deb-root" debs deb new_version old_version new_loader v rc=0 i
    local out_old="$LOADER_DIR/loader-older.log" out_new="$LOADER_DIR/loader-deb.log"
    local load_log="$WORK/load-upgrade.log" stop="$WORK/load-upgrade.stop"
    local old_pid new_pid load_pid before after ids_before ids_after records_before records_after pods_before n0 n1 n2 line
    debs=("$DEB_DIR"/meshwire_*_amd64.deb)
    if [ "${#debs[@]}" != 1 ] || [ ! -f "${debs[0]}" ]; then
        log "expected one meshwire_*_amd64.deb in $DEB_DIR, found: ${debs[*]}"
        return 1
    fi
    deb=${debs[0]}
    new_version=$(dpkg-deb -f "$deb" Version) && [ -n "$new_version" ] || { log "no Version in $deb"; return 1; }
    rm -rf "$root"
    mkdir -p "$root" && dpkg-deb -x "$deb" "$root" || { log "dpkg-deb -x $deb $root failed"; return 1; }
    new_loader="$root/usr/bin/meshwire-loader"
    v=$("$new_loader" --version 2>&1)
    [ "$v" = "meshwire-loader $new_version" ] || { log "the .deb's loader says '$v', its control file Version $new_version"; return 1; }
    v=$("$LOADER_OLDER" --version 2>&1)
    old_version=${v#meshwire-loader }
    if [ "$v" = "$old_version" ] || ! dpkg --compare-versions "$old_version" lt "$new_version"; then
        log "the first loader says '$v': not an older version than the .deb's $new_version"
        return 1
    fi
    log "upgrade from $old_version ($LOADER_OLDER) to $new_version ($(basename "$deb"), unpacked in $root)"

    # The older loader takes the node (a restart: the pinned datapath
    # intercepts meanwhile), with the node's configuration.
    stop_loader
    start_loader "$LOADER_OLDER" "$out_old" || return 1
    old_pid=$LOADER_PID
    grep -q "meshwire-loader: ready (version $old_version," "$out_old" ||
        { log "the older loader's ready line does not name $old_version:"; show "$out_old" 3; rc=1; }
    line=$(LOADER=$LOADER_OLDER mwl status 2>&1 | head -n 1)
    log "status: $line"
    [[ $line == "loader meshwire-loader $old_version, pid $old_pid,"* ]] || { log "status does not name the older loader"; rc=1; }
    pods_before=$(pod_list)

    rm -f "$stop"
    start_bg "$load_log" load_batches "$stop" --connect "$ADDR_A" --count 100 --parallel 2 --expect-orig "$ADDR_A" --expect-server A
    load_pid=$LAST_PID
    wait_batches "$load_log" 2 "$load_pid" || { touch "$stop"; return 1; }

    # The .deb's loader beside the live one.
    before=$(pin_ids)
    ids_before=$(datapath_ids)
    records_before=$(pod_records)
    LOADER=$new_loader loader_cmd
    start_waiting_loader "$out_new" "$old_pid" "the .deb's loader" || rc=1
    new_pid=$WAITING_PID
    # Requests keep flowing while both run (at least 3 more batches, and 2 s).
    n0=$(batches_ok "$load_log")
    sleep 2
    wait_batches "$load_log" $((n0 + 3)) "$load_pid" || rc=1
    ids_after=$(datapath_ids)
    records_after=$(pod_records)
    if [ -z "$(grep -w link <<<"$before")" ] || [ -z "$(grep -w map <<<"$before")" ] || [ -z "$records_before" ]; then
        log "nothing to compare: pins $(wc -l <<<"$before"), pod records $(wc -l <<<"$records_before")"
        rc=1
    elif [ "$ids_before" != "$ids_after" ] || [ "$records_before" != "$records_after" ]; then
        log "the datapath or the pod records changed while the older loader held the lock:"
        diff <(echo "$ids_before"; echo "$records_before") <(echo "$ids_after"; echo "$records_after") | indent
        rc=1
    else
        log "while both ran: no cgroup program, pin, link, map or pod record changed ($(wc -l <<<"$before") pins, $(wc -l <<<"$records_before") records compared by ID and checksum)"
    fi

    # Hand over: the older stops (SIGTERM, as systemd and the kubelet stop it).
    n1=$(batches_ok "$load_log")
    stop_loader
    if wait_loader_ready "$out_new" "$new_pid" 30 && grep -q 'took over the loader lock' "$out_new"; then
        forget_pid "$new_pid"
        LOADER_PID=$new_pid
        log "the .deb's loader took over: $(grep -m 1 'took over' "$out_new" | sed 's/.*INFO[^ ]* //')"
    else
        log "the .deb's loader did not take over"
        stop_pid "$new_pid"
        forget_pid "$new_pid"
        touch "$stop"
        start_loader || return 1
        return 1
    fi
    grep -q "meshwire-loader: ready (version $new_version," "$out_new" ||
        { log "the .deb's loader's ready line does not name $new_version:"; show "$out_new" 3; rc=1; }
    # Requests keep flowing after the handover too.
    finish_load "$load_log" "$load_pid" "$stop" "a request failed during the upgrade" || rc=1
    n2=$(batches_ok "$load_log")
    log "load through pod1's sidecar: $(batches_ok "$load_log") batches of 100 connections, none failed" \
        "(before the .deb's loader started: $n0; while both ran: $((n1 - n0)); from the handover to the new loader's serving: $((n2 - n1)) and on)"
    [ "$n1" -gt "$n0" ] && [ "$n2" -gt "$n1" ] || rc=1

    # In place: the same links with the new loader's programs, the same maps.
    after=$(pin_ids)
    local bad
    bad=$(awk 'NR == FNR { was[$1] = $0; next }
        !($1 in was) { print "new pin: " $0; next }
        { split(was[$1], w, " ") }
        $2 == "link" && ($3 != w[3] || $5 == w[5]) { print "link not upgraded in place: was " was[$1] ", now " $0 }
        $2 == "map" && $3 != w[3] { print "map recreated: was " was[$1] ", now " $0 }
        $2 == "prog" && $3 == w[3] { print "program kept: " $0 }
        { delete was[$1] }
        END { for (p in was) print "pin gone: " was[p] }' <(echo "$before") <(echo "$after"))
    if [ -n "$bad" ]; then
        log "the handover was not an upgrade in place:"
        echo "$bad" | indent
        rc=1
    else
        log "in place: $(grep -cw link <<<"$after") pinned links kept, each now running the new loader's program; $(grep -cw map <<<"$after") maps kept"
    fi
    [ "$(pod_list)" = "$pods_before" ] || { log "pods before and after differ:"; diff <(echo "$pods_before") <(pod_list) | indent; rc=1; }
    line=$(LOADER=$new_loader mwl status 2>&1 | head -n 1)
    log "status: $line"
    [[ $line == "loader meshwire-loader $new_version, pid $new_pid,"* ]] || { log "status does not name the .deb's loader $new_version"; rc=1; }
    client "$(pod 1)" "pod1 -> A after the upgrade" --connect "$ADDR_A" --count 10 --parallel 5 \
        --expect-orig "$ADDR_A" --expect-server A || rc=1
    return "$rc"
}

# Pods survive the loader. A long-lived connection through pod1's sidecar
# runs across a kill -9 and a restart; while the loader is down the pinned
# links keep intercepting; afterwards it adopts its pods from their records,
# exactly once each.
# ipv6_steered: this run steers native IPv6 (after case 4g).
ipv6_steered() { [ "$IPV6_POLICY" = intercept ]; }

case_restart_kill9() {
    local before after echo_pid session_pid echo6_pid="" session6_pid=""
    start_bg "$WORK/server-E.log" ip netns exec "$NS_NODE" "$MWTEST" echo --listen "$ADDR_E"
    echo_pid=$LAST_PID
    wait_listen "$NS_NODE" "$ADDR_E" "$echo_pid" "$WORK/server-E.log" || return 1
    if ipv6_steered; then
        # The same over native IPv6: a session across the kill, clients while down and after.
        start_bg "$WORK/server-E6.log" ip netns exec "$NS_NODE" "$MWTEST" echo --listen "$ADDR_E6"
        echo6_pid=$LAST_PID
        wait_listen "$NS_NODE" "$ADDR_E6" "$echo6_pid" "$WORK/server-E6.log" || return 1
        start_bg "$WORK/session6.log" "${IN_CG[@]}" "$(pod 1)" "$MWTEST" session --connect "$ADDR_E6" \
            --seconds 8 --interval-ms 100 --expect-orig "$ADDR_E6"
        session6_pid=$LAST_PID
    fi
    before=$(pod_list)
    log "pods before: $(echo "$before" | tr '\n' ';')"
    # A pod whose namespace disappears while the loader is down.
    ip netns add "$P-gone" && mwl pod add --netns "/run/netns/$P-gone" --ip 10.231.77.2 --id gone >/dev/null || {
        log "could not register the short-lived pod"
        return 1
    }
    start_bg "$WORK/session.log" "${IN_CG[@]}" "$(pod 1)" "$MWTEST" session --connect "$ADDR_E" \
        --seconds 8 --interval-ms 100 --expect-orig "$ADDR_E"
    session_pid=$LAST_PID
    sleep 1.5
    kill -KILL "$LOADER_PID"
    wait "$LOADER_PID" 2>/dev/null
    forget_pid "$LOADER_PID"
    LOADER_PID=""
    log "meshwire-loader killed with SIGKILL during the session"
    ip netns del "$P-gone"
    client "$(pod 2)" "pod2 -> B while the loader is down" --connect "$ADDR_B" --count 10 --parallel 5 \
        --expect-orig "$ADDR_B" --expect-server B || return 1
    if ipv6_steered; then
        client "$(pod 7)" "pod7 -> $ADDR_B6 (IPv6) while the loader is down" --connect "$ADDR_B6" --count 10 \
            --parallel 5 --expect-orig "$ADDR_B6" --expect-server B6 || return 1
    fi
    start_loader || return 1
    log "meshwire-loader restarted: $(grep -o 'adopted.*' "$WORK/loader.log" | tail -n 1)"
    client "$(pod 1)" "pod1 -> A after the restart" --connect "$ADDR_A" --count 20 --parallel 5 \
        --expect-orig "$ADDR_A" --expect-server A || return 1
    if ipv6_steered; then
        client "$(pod 1)" "pod1 -> $ADDR_A6 (IPv6) after the restart" --connect "$ADDR_A6" --count 20 \
            --parallel 5 --expect-orig "$ADDR_A6" --expect-server A6 || return 1
    fi
    after=$(pod_list)
    if [ "$before" != "$after" ]; then
        log "pods after: $(echo "$after" | tr '\n' ';') (expected the same as before, without 'gone')"
        return 1
    fi
    grep -q 'dropped 1 whose network namespace is gone' "$WORK/loader.log" || {
        log "the restarted loader did not report dropping the pod whose netns is gone"
        return 1
    }
    if [ "$MODE" = ebpf ] && [ "$(map_count mw_pods)" != "$(echo "$before" | grep -c .)" ]; then
        log "mw_pods holds $(map_count mw_pods) entries for $(echo "$before" | grep -c .) pods"
        return 1
    fi
    session_survived "$session_pid" "$echo_pid" session "" || return 1
    [ -z "$session6_pid" ] || session_survived "$session6_pid" "$echo6_pid" session6 "IPv6 "
}

# A loader killed in the middle of pod ADDs loses none it answered: a client
# adds pods ka0, ka1 ... back to back over the API (each with a veth eth0 up:
# the tc programs or rules go on, the record is written) and notes each one
# the loader answered; the loader gets SIGKILL while they flow. Restarted, it
# has every answered pod exactly once, each passing CHECK; the one in flight
# is there whole (passes CHECK) or not at all; none after it.
KA_N=60
case_kill9_mid_add() {
    local i ns rc=0 acked n inflight answer listed
    for ((i = 0; i < KA_N; i++)); do
        ns="$P-ka$i"
        { ip netns add "$ns" && ip -n "$ns" link add eth0 type veth peer name "ka$i" netns "$NS_NODE" &&
            ip -n "$ns" link set eth0 up && ip -n "$ns" link set lo up; } || { log "could not make $ns"; return 1; }
    done
    cat >"$WORK/ka.py" <<'PY'
import json, socket, sys
path, prefix, n, acked = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
r = s.makefile()
with open(acked, "w") as out:
    for i in range(n):
        pod = {"container_id": f"ka{i}", "netns": f"/run/netns/{prefix}-ka{i}", "ifname": "eth0", "ips": [f"10.231.90.{i + 2}"]}
        try:
            s.sendall((json.dumps({"version": 1, "op": "add_pod", "pod": pod}) + "\n").encode())
            line = r.readline()
        except OSError as e:
            print(f"ka{i}: {e}")
            sys.exit(0)
        if not line:
            print(f"ka{i}: the connection closed without an answer")
            sys.exit(0)
        answer = json.loads(line)
        if answer.get("error"):
            print(f"ka{i}: refused: {answer['error']}")
            sys.exit(1)
        out.write(f"ka{i}\n")
        out.flush()
print("all added before the kill")
PY
    : >"$WORK/ka-acked"
    start_bg "$WORK/ka-client.log" python3 "$WORK/ka.py" "$(api_sock)" "$P" "$KA_N" "$WORK/ka-acked"
    local client_pid=$LAST_PID
    for ((i = 0; i < 500; i++)); do
        [ "$(grep -c . "$WORK/ka-acked")" -ge 10 ] && break
        sleep 0.01
    done
    kill -KILL "$LOADER_PID"
    wait "$LOADER_PID" 2>/dev/null
    forget_pid "$LOADER_PID"
    LOADER_PID=""
    wait "$client_pid"
    local client_rc=$?
    forget_pid "$client_pid"
    n=$(grep -c . "$WORK/ka-acked")
    log "SIGKILL after $n answered ADDs; the client: $(tail -n 1 "$WORK/ka-client.log") (exit $client_rc)"
    [ "$client_rc" = 0 ] || rc=1
    if [ "$n" -ge "$KA_N" ]; then
        log "every ADD was answered before the kill landed: nothing was in flight"
        rc=1
    fi
    start_loader || return 1
    log "restarted: $(grep -o 'adopted.*' "$WORK/loader.log" | tail -n 1)"
    grep -q 'clsact filters of .* no pod record explains' "$WORK/loader.log" &&
        log "its sweep: $(grep -o 'removed meshwire.s clsact filters.*' "$WORK/loader.log" | tail -n 1)"
    for ((i = 0; i < n; i++)); do
        answer=$(api_request "{\"version\":1,\"op\":\"check_pod\",\"container_id\":\"ka$i\",\"ifname\":\"eth0\"}")
        grep -q '"error"' <<<"$answer" && { log "ka$i was answered before the kill, after the restart CHECK says: $answer"; rc=1; }
    done
    inflight=$(api_request "{\"version\":1,\"op\":\"check_pod\",\"container_id\":\"ka$n\",\"ifname\":\"eth0\"}")
    if grep -q '"error"' <<<"$inflight"; then
        grep -q 'not_found' <<<"$inflight" || { log "ka$n (in flight) is there but broken: $inflight"; rc=1; }
        log "ka$n (in flight at the kill) is not meshed: $inflight"
        if [ "$MODE" = ebpf ] && [ "$TC_METHOD" = clsact ] && [ "$n" -lt "$KA_N" ] &&
            tc -n "$P-ka$n" filter show dev eth0 ingress 2>/dev/null | grep -q 'handle 0x4d57'; then
            log "ka$n is not meshed, yet meshwire's filter is on its eth0:"
            tc -n "$P-ka$n" filter show dev eth0 ingress 2>&1 | indent
            rc=1
        fi
    else
        log "ka$n (in flight at the kill) is meshed whole: CHECK passes"
    fi
    listed=$(pod_list | awk '$1 ~ /^ka[0-9]+$/ { print $1 }' | sort)
    if [ "$(uniq -d <<<"$listed")" != "" ]; then log "pods listed twice: $(uniq -d <<<"$listed" | tr '\n' ' ')"; rc=1; fi
    for ((i = n + 1; i < KA_N; i++)); do
        grep -qx "ka$i" <<<"$listed" && { log "ka$i was never sent, yet it is listed"; rc=1; }
    done
    [ "$rc" = 0 ] && log "all $n answered ADDs kept, each passing CHECK, none twice"
    for ((i = 0; i < KA_N; i++)); do
        mwl pod del --id "ka$i" >/dev/null 2>&1
        ip netns del "$P-ka$i"
    done
    return "$rc"
}

# session_survived PID ECHO_PID LOG WHAT: the session PID (log $WORK/LOG.log)
# kept its connection across the kill -9 and restart; its echo server stops.
session_survived() {
    local rc ticks
    wait "$1"
    rc=$?
    forget_pid "$1"
    stop_pid "$2"
    forget_pid "$2"
    if [ "$rc" -ne 0 ]; then
        log "the established ${4}connection broke (exit $rc):"
        show "$WORK/$3.log"
        return 1
    fi
    ticks=$(awk '/ticks ok/ { print $2 }' "$WORK/$3.log")
    log "established ${4}connection across kill -9 and restart: $(tail -n 1 "$WORK/$3.log")"
    [ "${ticks:-0}" -ge 40 ] || { log "only ${ticks:-0} ${4}ticks in 8 s"; return 1; }
}

case_no_leaks6() { case_no_leaks "$ADDR_A6" A6; }

case_pod_del() {
    local list
    list=$(mwl pod list 2>&1)
    mwl pod del --netns "/run/netns/$(pod 1)" >"$WORK/pod-del.log" 2>&1 || {
        log "pod del failed:"
        show "$WORK/pod-del.log"
        return 1
    }
    if [ -n "${COOKIE[pod1]:-}" ] && grep -qw -- "${COOKIE[pod1]}" <<<"$list"; then
        if mwl pod list 2>&1 | grep -qw -- "${COOKIE[pod1]}"; then
            log "pod list still shows pod1's cookie ${COOKIE[pod1]}"
            return 1
        fi
        log "pod list no longer shows pod1's cookie ${COOKIE[pod1]}"
    fi
    client "$(pod 1)" "pod1 (unregistered) -> A" --connect "$ADDR_A" --count 20 --parallel 5 \
        --expect-direct --expect-server A
}

case_cleanup_leaves_nothing() {
    local left
    stop_loader
    log "meshwire-loader stopped with SIGTERM (exit status $LOADER_RC); pinned state stays"
    # Still registered and still attached: pod2 is redirected without the daemon.
    client "$(pod 2)" "pod2 -> B, loader stopped" --connect "$ADDR_B" --count 10 --parallel 5 \
        --expect-orig "$ADDR_B" --expect-server B || return 1
    if [ "$TC_METHOD" = clsact ] && [ "$MODE" = ebpf ]; then
        # pod2's clsact filters are not pinned: cleanup must find them even
        # when the pod's record is lost (case 19c checks they are gone).
        rm -f "$(state_dir)/pods/cli-run_netns_$(pod 2).json" &&
            log "pod2's record removed before cleanup ($(ls "$(state_dir)/pods" 2>/dev/null | wc -l) left)"
    fi
    if ! mwl cleanup >"$WORK/cleanup.log" 2>&1; then
        log "meshwire-loader cleanup failed:"
        show "$WORK/cleanup.log"
        return 1
    fi
    if [ -e "$PIN" ]; then
        left=$(find "$PIN" -mindepth 1 2>&1 | head -n 20)
        if [ -n "$left" ]; then
            log "pin dir $PIN still holds:"
            echo "$left" | indent
            return 1
        fi
    fi
    log "pin dir $PIN is gone or empty"
    client "$(pod 2)" "pod2 -> B after cleanup" --connect "$ADDR_B" --count 10 --parallel 5 \
        --expect-direct --expect-server B
}

# inbound_lines POD ORIG [PEER_IP]: "inbound" lines for ORIG in that pod's
# sidecar log (from PEER_IP only, if given).
inbound_lines() {
    grep -c "^inbound peer=${3:+$3:}.* orig=$2\$" "$WORK/sidecar-pod$1.log"
}

# inbound_logged POD ORIG PEER_IP BEFORE N: that pod's sidecar logged at least N
# more inbound connections for ORIG from PEER_IP than BEFORE.
inbound_logged() {
    local n
    n=$(($(inbound_lines "$1" "$2" "$3") - $4))
    if [ "$n" -lt "$5" ]; then
        log "pod$1's sidecar logged $n inbound connections from $3 with orig=$2, expected $5"
        return 1
    fi
    log "pod$1's sidecar logged $n inbound connections from $3 with orig=$2"
}

case_inbound_same_node() {
    local before
    before=$(inbound_lines 1 "$ADDR_P1" 10.231.2.2)
    client "$(pod 2)" "pod2's sidecar (UID $SIDECAR_UID) -> pod1 $ADDR_P1" --uid "$SIDECAR_UID" \
        --connect "$ADDR_P1" --count 20 --parallel 5 --check-peer --expect-inbound-orig "$ADDR_P1" \
        --expect-server P1 || return 1
    inbound_logged 1 "$ADDR_P1" 10.231.2.2 "$before" 20
}

case_inbound_through_both_sidecars() {
    local before out_before
    before=$(inbound_lines 1 "$ADDR_P1" 10.231.2.2)
    out_before=$(conn_lines 2 "$ADDR_P1")
    client "$(pod 2)" "pod2's app -> pod1 $ADDR_P1" --connect "$ADDR_P1" --count 20 --parallel 5 \
        --expect-orig "$ADDR_P1" --expect-inbound-orig "$ADDR_P1" --expect-server P1 || return 1
    log "pod2's sidecar logged $(($(conn_lines 2 "$ADDR_P1") - out_before)) outbound connections with orig=$ADDR_P1"
    inbound_logged 1 "$ADDR_P1" 10.231.2.2 "$before" 20
}

case_inbound_excluded_port_same_node() {
    local before
    before=$(grep -c '^inbound ' "$WORK/sidecar-pod1.log")
    client "$(pod 2)" "pod2's sidecar (UID $SIDECAR_UID) -> pod1 $ADDR_P1X (inbound port $EXCL_IN_PORT excluded)" \
        --uid "$SIDECAR_UID" --connect "$ADDR_P1X" --count 10 --parallel 5 --check-peer \
        --expect-direct --expect-server P1X || return 1
    no_new_inbound "$before"
}

# no_new_inbound BEFORE: pod1's inbound sidecar logged no connection since.
no_new_inbound() {
    if [ "$(grep -c '^inbound ' "$WORK/sidecar-pod1.log")" != "$1" ]; then
        log "pod1's inbound sidecar saw connections it should not have:"
        grep '^inbound ' "$WORK/sidecar-pod1.log" | tail -n 5 | indent
        return 1
    fi
    log "pod1's inbound sidecar saw none of them"
}

case_inbound_own_pod_direct() {
    local before
    before=$(grep -c '^inbound ' "$WORK/sidecar-pod1.log")
    client "$(pod 1)" "pod1's sidecar (UID $SIDECAR_UID) -> its own pod $ADDR_P1" \
        --uid "$SIDECAR_UID" --connect "$ADDR_P1" --count 10 --parallel 5 --check-peer \
        --expect-direct --expect-server P1 || return 1
    client "$(pod 1)" "pod1's app -> its own pod $ADDR_P1" --connect "$ADDR_P1" --count 10 \
        --parallel 5 --expect-orig "$ADDR_P1" --expect-server P1 || return 1
    no_new_inbound "$before"
}


case_inbound_cross_node() {
    local before
    # For the FIN case: every flow of this and the next case must be closed.
    TC_REDIRECTED_BEFORE=$(stat_value tc_redirected)
    TC_CLOSED_BEFORE=$(stat_value tc_flow_closed)
    before=$(inbound_lines 1 "$ADDR_P1" 10.231.254.2)
    node2_client "node2 -> pod1 $ADDR_P1" --connect "$ADDR_P1" --count 20 --parallel 5 \
        --check-peer --expect-inbound-orig "$ADDR_P1" --expect-server P1 || return 1
    inbound_logged 1 "$ADDR_P1" 10.231.254.2 "$before" 20
}

case_inbound_cross_node_ip_options() {
    local before opt rc=0
    before=$(inbound_lines 1 "$ADDR_P1" 10.231.254.2)
    for opt in nop rr ts; do
        node2_client "node2 -> pod1 $ADDR_P1, IP options '$opt' on every segment" \
            --ip-options "$opt" --connect "$ADDR_P1" --count 10 --parallel 5 --check-peer \
            --expect-inbound-orig "$ADDR_P1" --expect-server P1 || rc=1
    done
    [ "$rc" -eq 0 ] || return 1
    inbound_logged 1 "$ADDR_P1" 10.231.254.2 "$before" 30
}

case_inbound_excluded_port_cross_node() {
    local before tc_excl
    before=$(grep -c '^inbound ' "$WORK/sidecar-pod1.log")
    tc_excl=$(stat_value tc_excluded)
    node2_client "node2 -> pod1 $ADDR_P1X (inbound port $EXCL_IN_PORT excluded)" --connect "$ADDR_P1X" \
        --count 10 --parallel 5 --check-peer --expect-direct --expect-server P1X || return 1
    no_new_inbound "$before" || return 1
    log "tc_excluded +$(($(stat_value tc_excluded) - tc_excl))"
}

case_flow_state_after_fin() {
    local redirected closed name
    # The cross-node cases above closed every connection with FINs: each flow
    # they made must have been removed by the closing handshake (tc_flow_closed),
    # not left for the LRU.
    wait_map_empty mw_flow4 || return 1
    for name in $(mwl maps 2>&1 | awk '$1 ~ /^mw_flow4_/ { print $1 }'); do
        wait_map_empty "$name" || return 1
    done
    redirected=$(($(stat_value tc_redirected) - ${TC_REDIRECTED_BEFORE:-0}))
    closed=$(($(stat_value tc_flow_closed) - ${TC_CLOSED_BEFORE:-0}))
    log "since case 13: tc_redirected +$redirected, tc_flow_closed +$closed"
    if [ "$redirected" -lt 50 ] || [ "$closed" -ne "$redirected" ]; then
        log "expected at least 50 redirected flows, each closed once"
        return 1
    fi
}

case_flow_state_after_rst() {
    local before after closed
    before=$(stat_value tc_redirected)
    closed=$(stat_value tc_flow_closed)
    node2_client "node2 -> pod1 $ADDR_P1, reset after the request" --rst --connect "$ADDR_P1" \
        --count 20 --parallel 5 || return 1
    after=$(stat_value tc_redirected)
    if [ -z "$before" ] || [ -z "$after" ] || [ $((after - before)) -lt 20 ]; then
        log "tc_redirected went from ${before:-?} to ${after:-?}: the resets were not on redirected flows"
        return 1
    fi
    wait_map_empty mw_flow4 || return 1
    wait_map_empty mw_flow4_syn || return 1
    closed=$(($(stat_value tc_flow_closed) - closed))
    log "tc_redirected +$((after - before)), tc_flow_closed +$closed"
    if [ "$closed" -ne $((after - before)) ]; then
        log "expected each reset flow to be closed once"
        return 1
    fi
}

# tcpext NS NAME: the TcpExt counter NAME of netns NS, as its /proc/net/netstat
# shows it (read inside NS: /proc/net is the reader's namespace's).
tcpext() {
    ip netns exec "$1" cat /proc/net/netstat | awk -v name="$2" '
        $1 == "TcpExt:" { if (!seen) { for (i = 2; i <= NF; i++) col[i] = $i; seen = 1 }
                          else for (i = 2; i <= NF; i++) if (col[i] == name) print $i }'
}

# syncookies_set NS VALUE: net.ipv4.tcp_syncookies of NS, one of this run's
# pod namespaces (never the machine's: ip netns exec fails for a namespace
# that does not exist, and NS's must differ from ours); the value it had is
# kept in SYNCOOKIES_SAVED ("NS VALUE") for syncookies_restore, which the
# case and, if the suite dies in the middle, the teardown call.
SYNCOOKIES_SAVED=""
syncookies_set() {
    local old
    if [ "$(ip netns exec "$1" readlink /proc/self/ns/net)" = "$(readlink /proc/self/ns/net)" ]; then
        log "netns $1 is the machine's own network namespace: not changing its sysctls"
        return 1
    fi
    old=$(ip netns exec "$1" sysctl -n net.ipv4.tcp_syncookies) || return 1
    [ -n "$SYNCOOKIES_SAVED" ] || SYNCOOKIES_SAVED="$1 $old"
    ip netns exec "$1" sysctl -qw net.ipv4.tcp_syncookies="$2" || return 1
    log "$1: net.ipv4.tcp_syncookies $old -> $(ip netns exec "$1" sysctl -n net.ipv4.tcp_syncookies)"
}
syncookies_restore() {
    local ns old
    [ -n "$SYNCOOKIES_SAVED" ] || return 0
    read -r ns old <<<"$SYNCOOKIES_SAVED"
    SYNCOOKIES_SAVED=""
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_syncookies="$old" 2>/dev/null ||
        { log "could not restore net.ipv4.tcp_syncookies = $old in $ns"; return 1; }
}
teardown() { syncookies_restore; suite_teardown; }

# Inbound through tc with SYN cookies: net.ipv4.tcp_syncookies = 2 in pod1's
# namespace (its own sysctl; IPv6 follows it too) answers every SYN there
# with a cookie and keeps no request socket, so each handshake's final ACK is
# checked against a cookie computed over the header tc rewrote (port
# $INBOUND_PORT) and must be rewritten just as the SYN was, from the flow tc
# recorded. Connections from node2 (IPv4) and from the node (IPv6) to pod1's
# app port complete, carry the request and the echo, and reach the inbound
# sidecar with the port dialled as original destination. The kernel really
# used cookies: each connection is two handshakes in pod1 (the peer's to the
# inbound sidecar, the sidecar's hand-off to the app over loopback), so
# TcpExt SyncookiesSent and SyncookiesRecv grow by at least twice the
# connections, and SyncookiesFailed (an ACK whose cookie did not check) not
# at all; tc steered each connection (tc_redirected)
# and closed each flow (tc_flow_closed), with no tc_error and no flow entry
# left. iptables mode: the same through its REDIRECT rules (conntrack rewrites
# the ACK), without the tc counters.
SYNCOOKIE_CONNS=10 # per family
case_inbound_syncookies() {
    local rc=0 ns=$(pod 1) n=$SYNCOOKIE_CONNS name before4 before6 want tc="" redirected closed errors
    local -A ck
    [ "$MODE" = ebpf ] && [ -n "$HAVE_IFNAME" ] && tc=1
    syncookies_set "$ns" 2 || { syncookies_restore; return 1; }
    for name in SyncookiesSent SyncookiesRecv SyncookiesFailed; do
        ck[$name]=$(tcpext "$ns" "$name")
        [ -n "${ck[$name]}" ] || { log "no TcpExt $name in $ns's /proc/net/netstat"; syncookies_restore; return 1; }
    done
    if [ -n "$tc" ]; then
        redirected=$(stat_value tc_redirected)
        closed=$(stat_value tc_flow_closed)
        errors=$(stat_value tc_error)
        [ -n "$redirected" ] && [ -n "$closed" ] && [ -n "$errors" ] ||
            { log "meshwire-loader stats has no tc_redirected, tc_flow_closed or tc_error"; syncookies_restore; return 1; }
    fi
    before4=$(inbound_lines 1 "$ADDR_P1" 10.231.254.2)
    before6=$(inbound_lines 1 "$(esc "$ADDR_P16")" "$(esc '[fd00:231:1::1]')")
    node2_client "node2 -> pod1 $ADDR_P1 (IPv4, SYN cookies)" --connect "$ADDR_P1" --count "$n" \
        --parallel 5 --check-peer --expect-inbound-orig "$ADDR_P1" --expect-server P1 || rc=1
    inbound_logged 1 "$ADDR_P1" 10.231.254.2 "$before4" "$n" || rc=1
    ipv6_inbound client "$NS_NODE" "the node -> pod1 $ADDR_P16 (native IPv6, SYN cookies)" \
        --connect "$ADDR_P16" --count "$n" --parallel 5 --check-peer --expect-inbound-orig "$ADDR_P16" \
        --expect-server P16 || rc=1
    inbound_logged 1 "$(esc "$ADDR_P16")" "$(esc '[fd00:231:1::1]')" "$before6" "$n" || rc=1
    for name in SyncookiesSent SyncookiesRecv SyncookiesFailed; do
        ck[$name]=$(($(tcpext "$ns" "$name") - ${ck[$name]}))
    done
    syncookies_restore || rc=1
    want=$((2 * 2 * n))
    log "pod1's TcpExt: SyncookiesSent +${ck[SyncookiesSent]}, SyncookiesRecv +${ck[SyncookiesRecv]}, SyncookiesFailed +${ck[SyncookiesFailed]} ($((2 * n)) connections, two handshakes in pod1 each)"
    if [ "${ck[SyncookiesSent]}" -lt $((2 * n)) ]; then
        log "the kernel did not answer every peer's SYN in pod1 with a SYN cookie (expected SyncookiesSent +$((2 * n)) at least, +$want once every connection is handed to the app): the case proved nothing about cookies"
        rc=1
    elif [ "${ck[SyncookiesSent]}" -lt "$want" ] || [ "${ck[SyncookiesRecv]}" -lt "$want" ]; then
        log "expected SyncookiesSent and SyncookiesRecv +$want: the final ACKs of some cookie handshakes never reached, with a valid cookie, the listener that sent it (an ACK not rewritten as its SYN was goes to port ${ADDR_P1##*:} and is reset)"
        rc=1
    fi
    if [ "${ck[SyncookiesFailed]}" -ne 0 ]; then
        log "SyncookiesFailed +${ck[SyncookiesFailed]}: ACKs reached a listener in pod1 with a cookie that did not check"
        rc=1
    fi
    if [ -n "$tc" ]; then
        wait_map_empty mw_flow4 || rc=1
        wait_map_empty mw_flow4_syn || rc=1
        wait_map_empty mw_flow6 || rc=1
        wait_map_empty mw_flow6_syn || rc=1
        redirected=$(($(stat_value tc_redirected) - redirected))
        closed=$(($(stat_value tc_flow_closed) - closed))
        errors=$(($(stat_value tc_error) - errors))
        log "tc: tc_redirected +$redirected, tc_flow_closed +$closed, tc_error +$errors"
        if [ "$redirected" -lt $((2 * n)) ] || [ "$closed" -ne $((2 * n)) ] || [ "$errors" -ne 0 ]; then
            log "expected tc_redirected +$((2 * n)) at least (each connection's SYN steered), tc_flow_closed +$((2 * n)) (each flow closed by its FINs) and tc_error +0"
            rc=1
        fi
    fi
    return "$rc"
}

# Include lists (Istio's includeOutboundIPRanges, includeOutboundPorts,
# includeInboundPorts): only what they name is steered, in eBPF and iptables
# mode alike. pod3 (which has a sidecar) is meshed with outbound lists, then
# pod1 with inbound ones, and pod1 is registered again as before.
ADDR_I=10.231.0.1:7171 # server I, started by the include cases
case_include_outbound() {
    local rc=0 before id=incl-pod3 ns="/run/netns/$(pod 3)"
    start_bg "$WORK/server-I.log" ip netns exec "$NS_NODE" "$MWTEST" server --listen "$ADDR_I" --name I
    wait_listen "$NS_NODE" "$ADDR_I" "$LAST_PID" "$WORK/server-I.log" || return 1
    incl() { mwl pod add --id "$id" --netns "$ns" --ip 10.231.3.2 "$@" >"$WORK/pod-add-incl.log" 2>&1 ||
        { log "pod add $* failed:"; show "$WORK/pod-add-incl.log"; return 1; }; }
    # Ranges: only 10.231.0.1 (A, I) is steered; B (10.231.0.2) goes direct.
    incl --include-outbound-cidrs 10.231.0.1/32 || return 1
    before=$(conn_lines 3 "$ADDR_A")
    client "$(pod 3)" "pod3 (include 10.231.0.1/32) -> A" --connect "$ADDR_A" --count 10 --parallel 5 \
        --expect-orig "$ADDR_A" --expect-server A || rc=1
    [ $(($(conn_lines 3 "$ADDR_A") - before)) -ge 10 ] || { log "pod3's sidecar did not log them"; rc=1; }
    client "$(pod 3)" "pod3 (include 10.231.0.1/32) -> B, not included" --connect "$ADDR_B" --count 10 \
        --parallel 5 --expect-direct --expect-server B || rc=1
    # Exclusions win: the node-wide excluded port 8081 on an included address.
    client "$(pod 3)" "pod3 -> X (included address, excluded port $EXCL_PORT)" --connect "$ADDR_X" --count 5 \
        --parallel 5 --expect-direct --expect-server X || rc=1
    # No ranges, port 8080 included whatever the address: A and B steered, I (7171) direct.
    incl --include-outbound-cidrs "" --include-outbound-port 8080 || return 1
    client "$(pod 3)" "pod3 (include port 8080 only) -> B" --connect "$ADDR_B" --count 10 --parallel 5 \
        --expect-orig "$ADDR_B" --expect-server B || rc=1
    client "$(pod 3)" "pod3 (include port 8080 only) -> I on 7171, not included" --connect "$ADDR_I" --count 10 \
        --parallel 5 --expect-direct --expect-server I || rc=1
    # "*": everything again.
    incl --include-outbound-cidrs '*' || return 1
    client "$(pod 3)" "pod3 (include *) -> I" --connect "$ADDR_I" --count 10 --parallel 5 \
        --expect-orig "$ADDR_I" --expect-server I || rc=1
    mwl pod del --id "$id" >/dev/null 2>&1 || { log "pod del $id failed"; rc=1; }
    return "$rc"
}

# reregister_pod1 ARGS...: pod1 registered again as register_pod does, plus ARGS.
reregister_pod1() {
    local tc=()
    [ -n "$HAVE_IFNAME" ] && tc=(--ifname eth0)
    mwl pod add --netns "/run/netns/$(pod 1)" --ip "$POD1_IP" --ip "$POD1_IP6" "${tc[@]}" "${POD1_OWN[@]}" "$@" >"$WORK/pod-add-1.log" 2>&1 ||
        { log "pod add pod1 $* failed:"; show "$WORK/pod-add-1.log"; return 1; }
}

case_include_inbound() {
    local rc=0 before
    # Only 9999 included: pod1:8080 is reached directly, from this node and another.
    reregister_pod1 --include-inbound-ports 9999 || return 1
    before=$(grep -c '^inbound ' "$WORK/sidecar-pod1.log")
    client "$(pod 2)" "pod2's sidecar -> pod1 $ADDR_P1 (pod1 includes inbound port 9999 only)" --uid "$SIDECAR_UID" \
        --connect "$ADDR_P1" --count 10 --parallel 5 --expect-direct --expect-server P1 || rc=1
    if [ -n "$HAVE_IFNAME" ]; then
        node2_client "node2 -> pod1 $ADDR_P1 (not included)" --connect "$ADDR_P1" --count 10 --parallel 5 \
            --check-peer --expect-direct --expect-server P1 || rc=1
    fi
    no_new_inbound "$before" || rc=1
    # 8080 included: redirected to pod1's inbound sidecar again.
    reregister_pod1 --include-inbound-ports 8080,9999 || return 1
    before=$(inbound_lines 1 "$ADDR_P1" 10.231.2.2)
    client "$(pod 2)" "pod2's sidecar -> pod1 $ADDR_P1 (included)" --uid "$SIDECAR_UID" --connect "$ADDR_P1" \
        --count 10 --parallel 5 --expect-inbound-orig "$ADDR_P1" --expect-server P1 || rc=1
    inbound_logged 1 "$ADDR_P1" 10.231.2.2 "$before" 10 || rc=1
    if [ -n "$HAVE_IFNAME" ]; then
        before=$(inbound_lines 1 "$ADDR_P1" 10.231.254.2)
        node2_client "node2 -> pod1 $ADDR_P1 (included)" --connect "$ADDR_P1" --count 10 --parallel 5 \
            --check-peer --expect-inbound-orig "$ADDR_P1" --expect-server P1 || rc=1
        inbound_logged 1 "$ADDR_P1" 10.231.254.2 "$before" 10 || rc=1
    fi
    # Back to pod1 as setup registered it (all inbound ports).
    reregister_pod1 || return 1
    return "$rc"
}

# run_tc_case NAME FUNCTION: run_case for the cases of the tc datapath, which
# need `pod add --ifname` (a loader without it says SKIP).
run_tc_case() {
    if [ -n "$HAVE_IFNAME" ]; then
        run_case "$@"
    else
        skip_case "$1" "this meshwire-loader has no 'pod add --ifname': no tc datapath to test"
    fi
}

case_demo() {
    local out="$WORK/demo.log" rc=0 prefix v ip left
    if [ ! -x "$DEMO" ]; then
        log "demo script not found or not executable: $DEMO"
        return 1
    fi
    run_wait_for 120 "$out" "$DEMO" --requests 6 "$LOADER" "$MWTEST"
    rc=$?
    log "demo exit status $rc; curl's answers: $(grep -E '^Hi, I am ' "$out" | tr '\n' ';')"
    grep -E '^  (v1 answered|requests the apps)|^demo: ' "$out" | sed 's/^ */  /'
    [ "$rc" -eq 0 ] || rc=1
    for v in 1 2; do
        ip=10.244.$v.$((4 - v)) # pipy-ok-v1 10.244.1.3, pipy-ok-v2 10.244.2.2
        if ! grep -qx "Hi, I am pipy ok v$v !" "$out"; then
            log "curl never printed 'Hi, I am pipy ok v$v !'"
            rc=1
        fi
        if ! grep -qE "\| route orig=10\.96\.0\.10:8080 backend=${ip//./\\.}:8080\$" "$out"; then
            log "the curl pod's sidecar never routed pipy-ok to v$v ($ip:8080)"
            rc=1
        fi
        if ! grep -qE "\| inbound peer=10\.244\.1\.2:[0-9]+ orig=${ip//./\\.}:8080\$" "$out"; then
            log "pipy-ok-v$v's inbound sidecar logged no connection from the curl pod with orig=$ip:8080"
            rc=1
        fi
    done
    prefix=$(sed -nE 's/^meshwire demo \(prefix (mwdemo[0-9]+)\).*/\1/p' "$out")
    if [ -z "$prefix" ]; then
        log "no 'meshwire demo (prefix ...)' line in the demo's output"
        rc=1
    else
        left=$( (ip netns list | awk -v p="$prefix-" 'index($1, p) == 1'
            [ -e "$CG2/$prefix" ] && echo "cgroup $CG2/$prefix"
            compgen -G "/etc/netns/$prefix-*"
            compgen -G "/tmp/$prefix-*") 2>/dev/null)
        if [ -n "$left" ]; then
            log "the demo left:"
            echo "$left" | indent
            rc=1
        else
            log "the demo left nothing with prefix $prefix"
        fi
    fi
    [ "$rc" -eq 0 ] || show "$out" 60
    return "$rc"
}

# run_ebpf_case NAME FUNCTION [tc]: a case about the BPF datapath's own state
# (of tc with "tc": run_tc_case); in iptables mode it says SKIP and why.
run_ebpf_case() {
    if [ "$MODE" = ebpf ]; then
        if [ "${3:-}" = tc ]; then run_tc_case "$1" "$2"; else run_case "$1" "$2"; fi
    else
        skip_case "$1" "iptables mode: pods are not in the BPF maps and tc is not attached; netfilter keeps this state in conntrack"
    fi
}

# nat_of NS: the nat table of netns NS (or of the machine's namespace with
# NS = -), as iptables-save -c prints it. Read only.
nat_of() {
    if [ "$1" = - ]; then iptables-save -c -t nat; else ip netns exec "$1" iptables-save -c -t nat; fi 2>&1
}

# nat6_of NS: the same of ip6tables.
nat6_of() {
    if [ "$1" = - ]; then ip6tables-save -c -t nat; else ip netns exec "$1" ip6tables-save -c -t nat; fi 2>&1
}

# redirect_count NS CHAIN [nat6_of]: packets that hit CHAIN's REDIRECT rule in NS (one per connection).
redirect_count() {
    "${3:-nat_of}" "$1" | awk -v c="$2" '$2 == "-A" && $3 == c && / -j REDIRECT / {
        split(substr($1, 2), n, ":"); s += n[1] } END { print s + 0 }'
}

# nat_rules_once POD SAVE LOOPBACK CIDR: pod POD's nat table (SAVE: nat_of,
# nat6_of) has meshwire's jumps and rules once each, with the family's
# loopback and excluded range.
nat_rules_once() {
    local nat r rc=0
    nat=$("$2" "$(pod "$1")")
    for r in "-A OUTPUT -p tcp -j MESHWIRE_OUTPUT" "-A PREROUTING -p tcp -j MESHWIRE_INBOUND" \
        "-A MESHWIRE_OUTPUT -d $3 -j RETURN" \
        "-A MESHWIRE_OUTPUT -m owner --uid-owner $SIDECAR_UID -j RETURN" \
        "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport $EXCL_PORT -j RETURN" \
        "-A MESHWIRE_OUTPUT -d $4 -j RETURN" \
        "-A MESHWIRE_OUTPUT -p tcp -j REDIRECT --to-ports $SIDECAR_PORT" \
        "-A MESHWIRE_INBOUND -p tcp -m tcp --dport $INBOUND_PORT -j RETURN" \
        "-A MESHWIRE_INBOUND -p tcp -j REDIRECT --to-ports $INBOUND_PORT"; do
        if [ "$(grep -cF -- "] $r" <<<"$nat")" != 1 ]; then
            log "$(pod "$1"): '$r' is not there exactly once ($2):"
            echo "$nat" | indent
            rc=1
        fi
    done
    return "$rc"
}

case_iptables_rules() {
    local i ns rc=0 r v where
    for i in 1 2; do
        nat_rules_once "$i" nat_of 127.0.0.0/8 "$EXCL_CIDR" || rc=1
    done
    [ "$rc" -eq 0 ] && log "pod1 and pod2: both jumps and the expected MESHWIRE_OUTPUT/MESHWIRE_INBOUND rules, once each"
    # interception.ipv6 = "intercept" (since 4g): the same in ip6tables' nat table.
    for i in 1 2 7; do
        nat_rules_once "$i" nat6_of ::1/128 "$EXCL_CIDR6" || rc=1
        if ip netns exec "$(pod $i)" ip6tables-save -t filter | grep -q MESHWIRE_OUTPUT6; then
            log "$(pod $i): the IPv6 refusal (MESHWIRE_OUTPUT6) is still there with interception.ipv6 = \"intercept\""
            rc=1
        fi
    done
    [ "$rc" -eq 0 ] && log "pod1, pod2 and pod7: the same chains in ip6tables' nat table (::1/128, $EXCL_CIDR6), no refusal chains"
    v=$(redirect_count "$(pod 1)" MESHWIRE_OUTPUT nat6_of)
    log "IPv6 REDIRECT hits: pod1 outbound $v, pod1 inbound $(redirect_count "$(pod 1)" MESHWIRE_INBOUND nat6_of)," \
        "pod7 outbound $(redirect_count "$(pod 7)" MESHWIRE_OUTPUT nat6_of)"
    if [ "$v" -lt 20 ]; then
        log "pod1's IPv6 outbound REDIRECT rule matched $v connections; cases 4h-4k made more than 20"
        rc=1
    fi
    for ns in "$(pod 3)" "$NS_NODE" "$NS_NODE2" -; do
        if nat6_of "$ns" | grep -q MESHWIRE; then
            log "$ns has meshwire rules in ip6tables' nat table"
            rc=1
        fi
        if nat_of "$ns" | grep -q MESHWIRE; then
            where=$ns
            [ "$ns" = - ] && where="the machine's own namespace"
            log "$where has meshwire rules:"
            nat_of "$ns" | grep MESHWIRE | indent
            rc=1
        fi
    done
    [ "$rc" -eq 0 ] && log "no meshwire rule in pod3, node, node2 or the machine's own namespace"
    # The cases above went through the rules, not through the BPF programs.
    v=$(redirect_count "$(pod 1)" MESHWIRE_OUTPUT)
    log "REDIRECT hits: pod1 outbound $v, pod1 inbound $(redirect_count "$(pod 1)" MESHWIRE_INBOUND)," \
        "pod2 outbound $(redirect_count "$(pod 2)" MESHWIRE_OUTPUT)"
    if [ "$v" -lt 20 ]; then
        log "pod1's outbound REDIRECT rule matched $v connections; cases 4-12 made more than 20"
        rc=1
    fi
    for r in connect_redirected connect_inbound tc_redirected sockopt_answered; do
        v=$(stat_value "$r")
        if [ "${v:-x}" != 0 ]; then
            log "BPF counter $r is ${v:-missing}, expected 0 in iptables mode"
            rc=1
        fi
    done
    [ "$rc" -eq 0 ] && log "BPF counters connect_redirected, connect_inbound, tc_redirected, sockopt_answered: all 0"
    return "$rc"
}

# no_meshwire_rules NS: NS's nat table holds no chain or jump of meshwire.
no_meshwire_rules() {
    local left
    left=$( (nat_of "$1"; ip netns exec "$1" iptables-save -t filter 2>&1
        for t in nat filter raw; do ip netns exec "$1" ip6tables-save -t "$t" 2>&1; done) | grep MESHWIRE)
    if [ -n "$left" ]; then
        log "$1 still has meshwire rules:"
        echo "$left" | indent
        return 1
    fi
    log "$1: no MESHWIRE chain or jump left (nat and filter; ip6tables nat, filter and raw)"
}

case_iptables_pod_del_removed_rules() { no_meshwire_rules "$(pod 1)"; }
case_iptables_cleanup_removed_rules() { no_meshwire_rules "$(pod 2)"; }

# --- clsact (tc attach auto or clsact): meshwire's filters have
# priority 19799 and handle 0x4d57 (loader/src/datapath/clsact.rs).

# clsact_filter N DIR: meshwire's DIR (ingress, egress) filter lines on pod N's eth0.
clsact_filter() { tc -n "$(pod "$1")" filter show dev eth0 "$2" 2>&1 | grep -E 'pref 19799 bpf .*handle 0x4d57'; }

# clsact_ids N: the program ids of pod N's ingress and egress filters.
clsact_ids() {
    local dir
    for dir in ingress egress; do clsact_filter "$1" "$dir" | sed -nE 's/.* id ([0-9]+).*/\1/p'; done | tr '\n' ' '
}

# clsact_attached N: pod N's eth0 has a clsact qdisc with exactly one
# meshwire filter on each side, running mw_tc_ingress and mw_tc_egress.
clsact_attached() {
    local dir f rc=0
    for dir in ingress egress; do
        f=$(clsact_filter "$1" "$dir")
        if [ "$(grep -c . <<<"$f")" != 1 ] || ! grep -q "mw_tc_$dir" <<<"$f" || ! grep -q direct-action <<<"$f"; then
            log "pod$1 eth0 $dir: expected one direct-action filter running mw_tc_$dir at pref 19799 handle 0x4d57:"
            tc -n "$(pod "$1")" filter show dev eth0 "$dir" 2>&1 | indent
            rc=1
        fi
    done
    [ "$rc" -eq 0 ] && log "pod$1 eth0: meshwire's clsact filters, programs $(clsact_ids "$1")"
    return "$rc"
}

# clsact_gone N: pod N's eth0 has no meshwire filter and no clsact qdisc (meshwire created it).
# A DEL answers once the filters are off; the bare qdisc it leaves goes about
# 1 s later, deleted by the loader's reaper thread (its deletion waits for an
# RCU grace period): allow it 5 s.
clsact_gone() {
    local q i
    if [ -n "$(clsact_filter "$1" ingress)$(clsact_filter "$1" egress)" ]; then
        log "pod$1 eth0 still has meshwire's filters:"
        tc -n "$(pod "$1")" filter show dev eth0 ingress 2>&1 | indent
        tc -n "$(pod "$1")" filter show dev eth0 egress 2>&1 | indent
        return 1
    fi
    for ((i = 0; i < 50; i++)); do
        q=$(tc -n "$(pod "$1")" qdisc show dev eth0 2>&1)
        grep -q clsact <<<"$q" || break
        sleep 0.1
    done
    if grep -q clsact <<<"$q"; then
        log "pod$1 eth0 still has the clsact qdisc 5 s after:"
        echo "$q" | indent
        return 1
    fi
    log "pod$1 eth0: no meshwire filter, no clsact qdisc ($q)"
}

case_clsact_filters() {
    local left
    clsact_attached 1 && clsact_attached 2 || return 1
    left=$(find "$PIN/pods" -name 'tc_*' 2>&1)
    if [ -n "$left" ]; then
        log "tcx links pinned in clsact mode: $left"
        return 1
    fi
    log "no tcx link pinned under $PIN/pods"
}

# A restarted loader (new programs) moves pod1's filters onto its programs.
case_clsact_restart_moved() {
    local before now pinned=""
    before=$(clsact_ids 1)
    stop_loader
    start_loader || return 1
    clsact_attached 1 || return 1
    now=$(clsact_ids 1)
    if [ "$now" = "$before" ]; then
        log "pod1's filters still run programs $now, as before the restart"
        return 1
    fi
    if command -v bpftool >/dev/null; then
        pinned=$(for p in mw_tc_ingress mw_tc_egress; do
            bpftool prog show pinned "$PIN/progs/$p" 2>/dev/null | sed -nE 's/^([0-9]+):.*/\1/p'
        done | tr '\n' ' ')
        if [ "$now" != "$pinned" ]; then
            log "pod1's filters run programs $now, the pinned ones are $pinned"
            return 1
        fi
    fi
    log "after a restart: programs $before-> $now${pinned:+(the pinned ones)}"
    node2_client "node2 -> pod1 $ADDR_P1 after the restart" --connect "$ADDR_P1" --count 10 --parallel 5 \
        --check-peer --expect-inbound-orig "$ADDR_P1" --expect-server P1
}

case_clsact_pod_del_removed() { clsact_gone 1; }

# rq_make N: pod rqN's own namespace, eth0 a veth that is up (its peer in the
# node namespace). rq_mesh N: `pod add` of it with eth0 (id $P-rqN); its
# cookie in RQ_COOKIE[N]; its filters checked.
declare -A RQ_COOKIE=()
rq_make() {
    local ns
    ns=$(pod "rq$1")
    { ip netns add "$ns" && ip -n "$ns" link add eth0 type veth peer name "rq$1" netns "$NS_NODE" &&
        ip -n "$ns" link set eth0 up; } || { log "could not make $ns"; return 1; }
}
rq_mesh() {
    local out="$WORK/pod-add-rq$1.out"
    mwl pod add --netns "/run/netns/$(pod "rq$1")" --ip "10.231.91.$(($1 + 2))" --ifname eth0 --id "$P-rq$1" >"$out" 2>&1 ||
        { log "pod add rq$1 failed:"; show "$out"; return 1; }
    RQ_COOKIE[$1]=$(tr -d '[:space:]' <"$out")
    clsact_attached "rq$1"
}
# rq_del N: pod del of rqN; the DEL's answer leaves its eth0 a bare clsact
# qdisc (meshwire's filters off) and its pins (the qdisc's markers) in place.
rq_del() {
    mwl pod del --id "$P-rq$1" >"$WORK/pod-del-rq$1.out" 2>&1 || { log "pod del rq$1 failed:"; show "$WORK/pod-del-rq$1.out"; return 1; }
    rq_bare "$1" || return 1
}
rq_bare() {
    local q
    q=$(tc -n "$(pod "rq$1")" qdisc show dev eth0 2>&1)
    if [ -n "$(clsact_filter "rq$1" ingress)$(clsact_filter "rq$1" egress)" ] || ! grep -q clsact <<<"$q" || [ ! -d "$PIN/pods/${RQ_COOKIE[$1]}" ]; then
        log "right after its DEL, rq$1's eth0 is not a bare clsact qdisc with its pins in place (qdiscs: $q; pins: $(ls "$PIN/pods/${RQ_COOKIE[$1]}" 2>&1 | tr '\n' ' ')); filters:"
        tc -n "$(pod "rq$1")" filter show dev eth0 ingress 2>&1 | indent
        return 1
    fi
}
# rq_gone N WHEN: rqN's eth0 has no clsact qdisc and its pins are gone, now.
rq_gone() {
    local q
    q=$(tc -n "$(pod "rq$1")" qdisc show dev eth0 2>&1)
    if grep -q clsact <<<"$q" || [ -e "$PIN/pods/${RQ_COOKIE[$1]}" ]; then
        log "$2, rq$1's clsact qdisc or pins are still there (qdiscs: $q; pins: $(ls "$PIN/pods/${RQ_COOKIE[$1]}" 2>&1 | tr '\n' ' '))"
        return 1
    fi
}

# The bare clsact qdisc a DEL leaves is deleted by the loader's reaper thread
# about 1 s after the DEL (out of the DEL's and meshwire-cni's way), not
# before; a pod meshed again meanwhile keeps its qdisc; one still queued when
# the loader is killed goes at the restart (its sweep), one queued at a
# clean stop goes before the loader exits.
case_clsact_reaper() {
    local i rc=0 t0 ms loader_log="$LOADER_DIR/loader.log"
    for i in 0 1 2 3; do rq_make "$i" && rq_mesh "$i" || return 1; done
    t0=$(date +%s%N)
    rq_del 0 || rc=1
    clsact_gone rq0 || rc=1
    ms=$((($(date +%s%N) - t0) / 1000000))
    rq_gone 0 "${ms} ms after its DEL" || rc=1
    [ "$ms" -ge 500 ] || { log "rq0's qdisc went ${ms} ms after its DEL was sent: before the reaper's delay"; rc=1; }
    log "rq0's bare qdisc and pins went ${ms} ms after its DEL was sent"

    # Meshed again at once (what the scale benchmark does): the qdisc is
    # meshwire's again and stays, with its filters, past the reaper's time.
    rq_del 3 && rq_mesh 3 || rc=1
    sleep 2
    clsact_attached rq3 || rc=1
    [ -d "$PIN/pods/${RQ_COOKIE[3]}" ] || { log "rq3's pins are gone, though it was meshed again"; rc=1; }
    ms=$(api_request "{\"version\":1,\"op\":\"check_pod\",\"container_id\":\"$P-rq3\",\"ifname\":\"eth0\"}")
    grep -q '"error"' <<<"$ms" && { log "rq3, meshed again right after its DEL, fails CHECK 2 s later: $ms"; rc=1; }

    # kill -9 right after a DEL: the qdisc stays bare with its markers; the
    # restarted loader's sweep deletes it before it is ready.
    rq_del 1 || rc=1
    kill -KILL "$LOADER_PID"
    wait "$LOADER_PID" 2>/dev/null
    forget_pid "$LOADER_PID"
    LOADER_PID=""
    rq_bare 1 || { log "(after the kill -9: the reaper deleted it before the kill landed?)"; rc=1; }
    start_loader || return 1
    rq_gone 1 "once the restarted loader is ready" || rc=1
    grep -q "removed meshwire's clsact filters on \[\"eth0\"\] in /run/netns/$(pod rq1)" "$loader_log" ||
        { log "the restarted loader's log does not say its sweep removed rq1's:"; show "$loader_log" 20; rc=1; }
    log "after kill -9 with rq1's qdisc queued, the restart's sweep deleted it"

    # A clean stop right after a DEL: the qdisc goes before the loader exits.
    rq_del 2 || rc=1
    stop_loader
    [ "$LOADER_RC" = 0 ] || { log "the loader exited with status $LOADER_RC on SIGTERM"; rc=1; }
    rq_gone 2 "once the loader stopped (SIGTERM)" || rc=1
    grep -q 'deleted 1 clsact qdisc(s) that DELs left, before stopping' "$loader_log" ||
        { log "the stopped loader's log does not say it deleted rq2's qdisc:"; show "$loader_log" 20; rc=1; }
    start_loader || return 1
    clsact_attached rq3 || rc=1
    mwl pod del --id "$P-rq3" >/dev/null || rc=1
    clsact_gone rq3 || rc=1
    for i in 0 1 2 3; do ip netns del "$(pod "rq$i")"; done
    return "$rc"
}
case_clsact_cleanup_removed() { clsact_gone 2; }

# run_clsact_case NAME FUNCTION: a case about clsact filters; SKIP with
# MESHWIRE_E2E_TC_ATTACH=tcx or in iptables mode.
run_clsact_case() {
    if [ "$TC_METHOD" = clsact ] && [ "$MODE" = ebpf ]; then
        run_tc_case "$@"
    else
        skip_case "$1" "tc attach ${TC_ATTACH:-auto}, interception $MODE: no clsact filters to check"
    fi
}

# --- acceleration (MESHWIRE_E2E_ACCEL=1)

# run_accel_case NAME FUNCTION: a case about acceleration; without it, SKIP.
run_accel_case() {
    if [ -n "$ACCEL" ] && [ "$MODE" = ebpf ]; then
        run_case "$@"
    else
        skip_case "$1" "acceleration off, interception $MODE: no accelerated sockets to check"
    fi
}

ACCEL_PORT=7071 # pod1's echo app for the acceleration cases

# accel_session POD: a 3 s session from pod POD's app through both sidecars
# to an echo app in pod1 (on ACCEL_PORT); sets socks to mw_sock_hash's sockets
# 1 s in, and accel_added to how many sockets were entered meanwhile. Waits
# for both acceleration maps to be empty again afterwards.
accel_session() {
    local echo_pid rc=0
    start_bg "$WORK/server-P1E.log" "${IN_CG[@]}" "$(pod 1)" "$MWTEST" echo --listen "0.0.0.0:$ACCEL_PORT"
    echo_pid=$LAST_PID
    wait_listen "$(pod 1)" "0.0.0.0:$ACCEL_PORT" "$echo_pid" "$WORK/server-P1E.log" || return 1
    accel_sample_session "$WORK/session-accel.log" "$(pod "$1")" "$POD1_IP:$ACCEL_PORT" mw_sock_hash \
        --expect-orig "$POD1_IP:$ACCEL_PORT" || rc=1
    stop_pid "$echo_pid"
    forget_pid "$echo_pid"
    wait_map_empty mw_sock_hash || rc=1
    wait_map_empty mw_accel_state || rc=1
    return "$rc"
}

# One long-lived connection pod2's app -> pod1's app goes through three hops,
# all on this node: app -> pod2's sidecar (loopback), pod2's sidecar -> pod1's
# sidecar, pod1's sidecar -> pod1's app (loopback). Each has both ends in
# mw_sock_hash while it lives, and nothing is left after it closes.
case_accel_three_hops() {
    local rc=0
    accel_session 2 || rc=1
    # The app's end: one of the outbound source addresses (127.128.0.x).
    accel_hop "pod2's app <-> its sidecar" '127\.128\.0\.[0-9]+:[0-9]+' "127\\.0\\.0\\.1:$SIDECAR_PORT" || rc=1
    accel_hop "pod2's sidecar <-> pod1's sidecar" '10\.231\.2\.2:[0-9]+' "10\\.231\\.1\\.2:$INBOUND_PORT" || rc=1
    accel_hop "pod1's sidecar <-> pod1's app" '127\.0\.0\.1:[0-9]+' "127\\.0\\.0\\.1:$ACCEL_PORT" || rc=1
    expect_socks 6 mw_sock_hash || rc=1
    return "$rc"
}

# A pod registered with --accelerate false (CNI: "accelerate": false) keeps
# plain TCP on its own sockets: from pod3 (so registered for this case) to
# pod1's app only pod1's own hop, its sidecar to its app, is accelerated.
case_accel_pod_opt_out() {
    local rc=0 id="$P-pod3-noaccel"
    mwl pod add --netns "/run/netns/$(pod 3)" --ip 10.231.3.2 --id "$id" --accelerate false >/dev/null || {
        log "pod add --accelerate false failed"
        return 1
    }
    mwl pods 2>&1 | grep -A8 "^pod $id" | grep -q 'acceleration *off' || { log "'pods' does not show acceleration off for $id"; rc=1; }
    accel_session 3 || rc=1
    accel_hop "pod1's sidecar <-> pod1's app" '127\.0\.0\.1:[0-9]+' "127\\.0\\.0\\.1:$ACCEL_PORT" || rc=1
    expect_socks 2 mw_sock_hash || rc=1
    mwl pod del --id "$id" >/dev/null || { log "pod del $id failed"; rc=1; }
    return "$rc"
}

# An app's own loopback connections are not mesh hops, its sidecar's
# delivery to the same app port is. Both end on pod1's loopback at the app's
# port; sockops tells them apart by the connecting socket's owner (the
# sidecar's UID), not by anything connect4/connect6 noted. pod1's app (root,
# not the sidecar's UID) dials its echo app on 127.0.0.1, ::ffff:127.0.0.1
# and [::1]: no socket enters either socket map. Then pod2's app dials pod1's
# app over IPv4 and over IPv6: pod1's sidecar hands each to the app on the
# loopback of its family, and that hop has both ends accelerated.
case_accel_app_loopback() {
    local rc=0 pids=() pid a map hop
    start_bg "$WORK/server-P1L4.log" "${IN_CG[@]}" "$(pod 1)" "$MWTEST" echo --listen "0.0.0.0:$ACCEL_PORT"
    pids+=("$LAST_PID")
    wait_listen "$(pod 1)" "0.0.0.0:$ACCEL_PORT" "$LAST_PID" "$WORK/server-P1L4.log" || rc=1
    start_bg "$WORK/server-P1L6.log" "${IN_CG[@]}" "$(pod 1)" "$MWTEST" echo --listen "[::1]:$ACCEL_PORT"
    pids+=("$LAST_PID")
    wait_listen "$(pod 1)" "[::1]:$ACCEL_PORT" "$LAST_PID" "$WORK/server-P1L6.log" || rc=1
    if [ "$rc" = 0 ]; then
        for a in "127.0.0.1:$ACCEL_PORT" "[::ffff:127.0.0.1]:$ACCEL_PORT" "[::1]:$ACCEL_PORT"; do
            map=mw_sock_hash
            [ "$a" = "[::1]:$ACCEL_PORT" ] && map=mw_sock_hash6
            log "pod1's app -> $a (its own loopback connection):"
            accel_sample_session "$WORK/session-own-loopback.log" "$(pod 1)" "$a" "$map" || rc=1
            expect_socks 0 "$map" || rc=1
            [ -z "$other_socks" ] || { log "$other_map held sockets:"; indent <<<"$other_socks"; rc=1; }
            [ "$accel_added" = 0 ] || { log "accel_sock_added +$accel_added: an app's own loopback connection was accelerated"; rc=1; }
        done
        for a in "$POD1_IP:$ACCEL_PORT" "[fd00:231:1::2]:$ACCEL_PORT"; do
            map=mw_sock_hash
            hop='127\.0\.0\.1'
            if [ "${a#[}" != "$a" ]; then
                map=mw_sock_hash6
                hop='\[::1\]'
            fi
            log "pod2's app -> pod1's app at $a (pod1's sidecar delivers it on its loopback):"
            accel_sample_session "$WORK/session-delivery.log" "$(pod 2)" "$a" "$map" --expect-orig "$a" || rc=1
            accel_hop "pod1's sidecar <-> pod1's app" "$hop:[0-9]+" "$hop:$ACCEL_PORT" || rc=1
        done
    fi
    for pid in "${pids[@]}"; do
        stop_pid "$pid"
        forget_pid "$pid"
    done
    wait_map_empty mw_sock_hash || rc=1
    wait_map_empty mw_sock_hash6 || rc=1
    return "$rc"
}

suite_traps

# ---------------------------------------------------------------------------
# Main

suite_args LOADER MWTEST DEMO DEB_DIR LOADER_OLDER -- "$@"
HAVE_IFNAME=""
suite_mode
TC_ATTACH=${MESHWIRE_E2E_TC_ATTACH:-}
case "$TC_ATTACH" in
"" | auto | tcx | clsact) ;;
*)
    echo "MESHWIRE_E2E_TC_ATTACH=$TC_ATTACH: use auto, tcx or clsact" >&2
    fail "usage"
    exit 2
    ;;
esac
# What the loader attaches: "auto" (also no [tc] section) means clsact.
TC_METHOD=clsact
[ "$TC_ATTACH" = tcx ] && TC_METHOD=tcx

ACCEL=${MESHWIRE_E2E_ACCEL:-}
case "$ACCEL" in
"" | 1) ;;
*)
    echo "MESHWIRE_E2E_ACCEL=$ACCEL: use 1 or leave it empty" >&2
    fail "usage"
    exit 2
    ;;
esac

echo "meshwire e2e: run prefix $P, loader $LOADER, mwtest $MWTEST, interception $MODE, tc attach ${TC_ATTACH:-(default)} ($TC_METHOD), acceleration ${ACCEL:+on}${ACCEL:-off}"
preflight iptables haproxy curl nsenter unshare bpftool dpkg-deb || exit 1
loader_has_tc && HAVE_IFNAME=1
echo "--- setup"
suite_workdir e2e || { fail "setup: work dir and private bpffs"; exit 1; }
suite_cgroup e2e || { fail "setup: cgroup under $CG2"; exit 1; }
setup_config || { fail "setup: config file"; exit 1; }
setup_topology || { fail "setup: namespaces and veths"; exit 1; }
start_servers || { fail "setup: servers"; exit 1; }
log "cgroup $CG, pin dir $PIN, servers A=$ADDR_A B=$ADDR_B X=$ADDR_X C=$ADDR_C L=$ADDR_L (pod1)" \
    "P1=$ADDR_P1 (pod1's app)"

# Before the loader runs: a bad configuration must not get anywhere near attaching.
run_case "1 refused start: a TOML syntax error names file, line and key; nothing pinned or attached" \
    case_refused_syntax_error
run_case "2 refused start: an unknown key names file, line and key; nothing pinned or attached" \
    case_refused_unknown_key
run_case "3 refused start: an invalid value (uid = 0) names file, line and key; nothing pinned or attached" \
    case_refused_invalid_value

if ! start_loader; then
    fail "setup: meshwire-loader run (attach to $CG)"
    exit 1
fi
log "meshwire-loader ready (PID $LOADER_PID)"
register_pod 1 || { fail "setup: register pod1"; exit 1; }
register_pod 2 || { fail "setup: register pod2"; exit 1; }
register_pod6 || { fail "setup: register pod7 (IPv6 only)"; exit 1; }
start_sidecars || { fail "setup: sidecars"; exit 1; }

run_case "4 outbound connect is redirected through the pod's sidecar" case_outbound_redirect
run_case "4b a dual-stack socket (AF_INET6) dialling a v4-mapped address is redirected the same way; exclusions and loopback still go direct" \
    case_outbound_v4mapped
run_case "4c native IPv6 of a meshed pod is refused both ways (interception.ipv6 = \"refuse\"); loopback and the sidecar's own go through" \
    case_ipv6_refused
run_case "4d SO_ORIGINAL_DST with a NULL buffer fails with EFAULT, with a short one EINVAL, as netfilter's" \
    case_original_dst_misuse
run_case "4e an MPTCP socket is redirected and getpeername() answers the dialled address" case_outbound_mptcp
if [ "$MODE" = ebpf ]; then
    run_case "4f a socket bound to eth0 (SO_BINDTODEVICE) is redirected at once, without hanging" \
        case_outbound_bound_device
else
    echo "--- 4f a socket bound to eth0 (SO_BINDTODEVICE)"
    echo "SKIP: 4f (iptables mode: REDIRECT cannot move a socket bound to eth0 onto the pod's loopback; docs/hardening.md)"
fi
run_case "4g interception.ipv6 = \"intercept\": the loader restarted with it; pods and sidecars stay" \
    case_ipv6_intercept_switch
run_case "4h native IPv6 outbound is redirected through the pod's sidecar ([::1]), dual-stack pod1 and IPv6-only pod7; getpeername() answers the dialled address" \
    case_ipv6_outbound
run_case "4i IP6T_SO_ORIGINAL_DST answers byte for byte as netfilter's ipv6_getorigdst (sockaddr_in6, optlen kept, EINVAL short, EFAULT NULL)" \
    case_ipv6_original_dst_bytes
run_case "4r IP6T_SO_ORIGINAL_DST reference: the same connections through pod1 ($MODE mode) and through a plain ip6tables REDIRECT (the kernel's conntrack) get byte-identical answers, errors included" \
    case_ipv6_original_dst_reference
run_case "4j native IPv6 to an excluded port, a node-wide excluded IPv6 CIDR and the pod's own IPv6 CIDR goes direct; another pod's exclusion does not apply" \
    case_ipv6_excluded
run_case "4k native IPv6: ::1 and the sidecar's own go direct, an app straight to [::1]:$SIDECAR_PORT is refused, an unregistered namespace is untouched" \
    case_ipv6_loopback_sidecar_unregistered
run_tc_case "4l inbound IPv6 through tc: the node dialling pod1 $ADDR_P16 lands on pod1's inbound sidecar (IP6T_SO_ORIGINAL_DST [pod1]:8080), then its app on [::1]:8080; an excluded inbound port goes direct; no flow entry left" \
    ipv6_inbound case_ipv6_inbound_cross_node
run_case "4m same-node inbound IPv6: pod2's sidecar (and pod2's app through it) dialling pod1 $ADDR_P16 lands on pod1's inbound sidecar, then its app; an excluded inbound port goes direct" \
    ipv6_inbound case_ipv6_inbound_same_node
run_case "4n include lists over IPv6: one list of both families, split; an address in the IPv6 range is steered, one outside goes direct (and the same for IPv4); an excluded port wins; bad ranges refused naming the value, nothing changed" \
    case_ipv6_include_outbound
run_ebpf_case "4o trace over IPv6 (bpf.debug and bpf.trace): each native IPv6 decision of pod1 printed with its addresses, [addr]:port (connect6 to [::1], sockops, getsockopt, an excluded range)" \
    case_ipv6_trace
run_ebpf_case "4p views over IPv6: conns lists pod7's IPv6 connections awaiting accept with their original destination; status and /metrics show mw_orig_tuple6, mw_pod_ips6, mw_excl_cidr6 and the counters of those decisions" \
    case_ipv6_views
run_case "5 excluded port and excluded CIDR go direct" case_excluded_port_and_cidr
run_case "6 127.0.0.1 goes direct" case_loopback_direct
run_case "7 the sidecar UID's connections are not redirected" case_sidecar_uid_not_looped
run_case "7b the sidecar is the socket's owner (filesystem UID at socket()), not the task's real UID: setresuid(1500, 0, 0) is steered, setresuid(0, 1500, 0) direct" \
    case_uid_rule_socket_owner
run_case "7u a pod in a user namespace of its own: its sidecar (UID 1500 there) goes direct, its apps and host UID 1500 are steered; one that cannot map 1500 is refused" \
    case_userns_pod
run_case "8 an unregistered namespace in the cgroup is untouched" case_unregistered_netns_untouched
run_case "9 two meshed pods at once, 300 connections each, no mix-up" case_two_pods_concurrently
run_case "9i native IPv6: two meshed pods at once, 300 connections each, no mix-up" \
    case_two_pods_concurrently "$ADDR_A6" "$ADDR_B6" A6 B6
run_case "9b pod add of pod1's namespace under another ID is refused, naming the owner; pod1 still meshed" \
    case_netns_meshed_once
run_ebpf_case "9c a failed re-add of a meshed pod (unknown interface) leaves it meshed as it was" \
    case_failed_readd_keeps_pod
run_case "9d pod IDs from netns paths are one per path (a.b, a_b); an ID meshed for one namespace is refused for another" \
    case_pod_ids_one_per_netns
run_case "9e straight to a sidecar's capture ports (app, the sidecar itself, another pod's sidecar, another node): refused (another node's and an unmeshed pod's with a reset); the sidecar sees none" \
    case_capture_ports_refused
run_case "9h HAProxy as the sidecar (server 0.0.0.0:0): straight to its capture ports from the app, its own UID and another node, it accepts none; meshed requests flow through it; its health port, an excluded inbound port, is reached directly" \
    case_haproxy_sidecar
run_case "10 same node inbound: pod2's sidecar dialling pod1:8080 lands on pod1's inbound sidecar (orig pod1:8080), then the app" \
    case_inbound_same_node
run_case "11 same node inbound: pod2's app -> pod2's sidecar -> pod1's inbound sidecar -> pod1's app" \
    case_inbound_through_both_sidecars
run_accel_case "11a acceleration: a connection through both sidecars has its three hops (app-sidecar, sidecar-sidecar, sidecar-app) accelerated; nothing left after it closes" \
    case_accel_three_hops
run_accel_case "11b acceleration: a pod registered with --accelerate false keeps TCP on its hops; the peer pod's own hop is still accelerated" \
    case_accel_pod_opt_out
run_accel_case "11c acceleration: an app's own loopback connections (127.0.0.1, ::ffff:127.0.0.1, [::1]) stay plain TCP; its sidecar's delivery to the same port, IPv4 and IPv6, is accelerated" \
    case_accel_app_loopback
run_case "12 a sidecar dialling its own pod's IP is not redirected" case_inbound_own_pod_direct
run_case "12b same node inbound: an excluded inbound port ([inbound] exclude_ports) reaches the app directly" \
    case_inbound_excluded_port_same_node
run_tc_case "13 cross-node inbound: node2 -> pod1:8080 lands on pod1's inbound sidecar (orig pod1:8080), client sees the port it dialled" \
    case_inbound_cross_node
run_tc_case "14 cross-node inbound with IPv4 options (nop, record route, timestamp) on the SYN" \
    case_inbound_cross_node_ip_options
run_tc_case "14b cross-node inbound: an excluded inbound port reaches the app directly" \
    case_inbound_excluded_port_cross_node
run_clsact_case "14c clsact: pod1 and pod2 have meshwire's filters (pref 19799, handle 0x4d57) on a clsact qdisc, no tcx link" \
    case_clsact_filters
run_iptables_case "14i iptables mode: the pods' nat tables hold meshwire's chains and jumps, nothing else does; the cases went through them" \
    case_iptables_rules
run_ebpf_case "15 cross-node flow state is removed after FIN (mw_flow4, mw_flow4_syn back to 0)" case_flow_state_after_fin tc
run_ebpf_case "16 cross-node flow state is removed after RST (mw_flow4, mw_flow4_syn back to 0)" case_flow_state_after_rst tc
run_tc_case "16s cross-node inbound through tc with SYN cookies (tcp_syncookies = 2 in pod1 only): node2 over IPv4 and the node over IPv6 reach pod1's inbound sidecar (orig pod1:8080) and its app; TcpExt SyncookiesSent/Recv grew with every handshake, none failed; each flow steered and closed by tc" \
    case_inbound_syncookies
run_clsact_case "16c clsact: a restarted loader replaces pod1's filters' programs with its own; cross-node inbound still redirected" \
    case_clsact_restart_moved
run_case "16i include lists, outbound: only the included ranges, or ports whatever the address, are steered; exclusions win; * steers all" \
    case_include_outbound
run_case "16j include lists, inbound: a port not included reaches the app directly (same node and across nodes), an included one the inbound sidecar" \
    case_include_inbound
run_ebpf_case "17 no per-connection map entries left after 10000 connections" case_no_leaks
run_ebpf_case "17i native IPv6: no per-connection map entries left after 10000 connections (mw_orig_tuple6 too)" \
    case_no_leaks6
run_case "17l a second loader with another configuration waits for the loader lock under load and changes nothing; --no-wait exits naming the holder; stopping the first hands over with no failed request" \
    case_second_loader_waits
run_case "17u an upgrade to the .deb's newer loader under load: it waits for the older one's lock changing nothing, takes over when it stops, replaces every program in place (same links, same maps), no request fails; ready line and status name the newer version" \
    case_deb_upgrade
run_case "17r kill -9 and restart: an established connection keeps working, new ones are intercepted while down and after, no pod lost or duplicated (IPv4, and native IPv6 where steered)" \
    case_restart_kill9
run_case "17k kill -9 in the middle of pod ADDs: every ADD the loader answered is there after the restart, exactly once and passing CHECK; the one in flight is there whole or not at all" \
    case_kill9_mid_add
run_case "18 pod del: an unregistered pod goes direct" case_pod_del
run_iptables_case "18i iptables mode: pod del removed pod1's chains and jumps completely" \
    case_iptables_pod_del_removed_rules
run_clsact_case "18c clsact: pod del removed pod1's filters and the qdisc meshwire created" \
    case_clsact_pod_del_removed
run_clsact_case "18r clsact: the bare qdisc a DEL leaves goes about 1 s later (not before), kept if the pod is meshed again; queued at a kill -9, the restart deletes it; at a clean stop, the loader before it exits" \
    case_clsact_reaper
run_case "19 cleanup: pin dir empty and nothing intercepted any more" case_cleanup_leaves_nothing
run_iptables_case "19i iptables mode: cleanup removed pod2's chains and jumps" \
    case_iptables_cleanup_removed_rules
run_clsact_case "19c clsact: cleanup removed pod2's filters and the qdisc meshwire created, though its record was lost" \
    case_clsact_cleanup_removed
run_case "20 the seed's demo (test/demo.sh): curl pipy-ok:8080 answered by v1 and v2 through the sidecars" \
    case_demo
suite_end
