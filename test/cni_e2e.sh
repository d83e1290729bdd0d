#!/bin/bash
# End-to-end test of meshwire-cni with the real reference CNI plugins
# (Debian's containernetworking-plugins: bridge, host-local, tuning), the real
# meshwire-loader and real traffic.
#
#   cni_e2e.sh MESHWIRE_LOADER MESHWIRE_CNI MWTEST
#
# A "node" is a network namespace made here; pods are network namespaces made
# here. `meshwire-loader cni install` copies meshwire-cni into a temporary CNI
# bin directory and chains it into a temporary conf directory's bridge
# network. A small runtime (rt below) executes that .conflist exactly as libcni
# does: each plugin of the list in turn (in reverse for DEL), with CNI_COMMAND,
# CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS (IgnoreUnknown=1;
# K8S_POD_NAMESPACE=..;K8S_POD_NAME=..) and CNI_PATH, the plugin's entry with
# the list's name and cniVersion (and runtimeConfig for the capabilities it
# declares) on stdin, and the previous plugin's result as prevResult; DEL and
# CHECK get the cached result of ADD. Plugins run inside the node namespace,
# so the bridge and its veths exist only there.
#
#   pod eth0 10.242.0.x/16 --veth-- mwc<PID>-br 10.242.0.1   node (servers on lo:
#                                                                  10.241.0.1:8080 A,
#                                                                  10.241.0.1:8081 X)
#
# The loader runs against a cgroup, a private bpffs, an API socket and a state
# directory of this run; sidecars (mwtest, UID 1500) and clients run in that
# cgroup. Everything carries the prefix mwc<PID>- and is removed by the EXIT
# trap, which then checks that nothing is left and prints "N passed, N failed".
#
# Safety: nothing is attached to the root cgroup, the machine's
# /etc/cni/net.d, /opt/cni/bin and /var/lib/cni are never touched (host-local
# keeps its leases in the work dir), traffic stays inside namespaces made here,
# and only processes started here are signalled, by PID.

# Functions run from cases or the EXIT trap:
# shellcheck disable=SC2317,SC2001
P="mwc$$"
NODE="$P-node"
REF_PLUGINS=/usr/lib/cni
ADDR_A=10.241.0.1:8080
ADDR_X=10.241.0.1:8081
SUBNET=10.242.0.0/16
CONCURRENT=50

# shellcheck source=test/suite_lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/suite_lib.sh" || exit 1

netns_path() { echo "/run/netns/$(pod "$1")"; }

# ---------------------------------------------------------------------------
# meshwire-loader: its API socket SOCK and state dir STATE (set in setup)

# The loader's view: `pod list` and the pod maps' entry counts.
pod_list() { mwl pod list 2>&1; }
# What must not change when a CNI call fails: pods, records, pinned pod links.
# Taken once the loader's reaper is done with the DELs before (reaped).
loader_state() {
    reaped
    pod_list
    mwl maps 2>&1 | awk '$1 ~ /pod/'
    find "$STATE" "$PIN/pods" 2>/dev/null | sort
}

# reaped: waits (up to 5 s) until every pod directory pinned under $PIN/pods
# is a recorded pod's. The bare clsact qdisc a DEL leaves, and its markers
# there, go about 1 s after the DEL (the loader's reaper thread): a snapshot
# taken meanwhile would see them go.
reaped() {
    local i
    for ((i = 0; i < 50; i++)); do
        [ -z "$(comm -23 <(ls "$PIN/pods" 2>/dev/null | sort) <(jq -r .netns_cookie "$STATE"/pods/*.json 2>/dev/null | sort -u))" ] && return 0
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------
# The runtime: executes $CONF_FILE like libcni.

# rt COMMAND CONTAINER_ID POD_N K8S_NAMESPACE [RUNTIME_CONFIG_JSON]
# RT_ANNOTATIONS, if set, is the pod's annotations (a JSON object, or null for
# a pod without any): passed as containerd's CRI passes them, in
# runtimeConfig["io.kubernetes.cri.pod-annotations"] of the plugins that
# declare that capability. Unset: none passed, as podman and older CRI-O do.
# RT_IFNAME is CNI_IFNAME (eth0 when unset).
# The final result of ADD is cached in $WORK/results/ID (ID@IFNAME for another
# interface than eth0; DEL and CHECK read it, DEL removes it). Each plugin's output is kept in $WORK/rt/ID.CMD.N.TYPE; the
# failing plugin's error object is in $RT_ERR. RT_AFTER_DEL, if set, is run
# after meshwire-cni's DEL (before the plugins listed before it).
rt() {
    local cmd=$1 id=$2 n=$3 kns=$4 rc_json=${5:-null}
    local list count name version prev="null" i idx conf type out rc
    local ifname=${RT_IFNAME:-eth0} annotations=${RT_ANNOTATIONS-} has_annotations=false
    # Files named by the ID, which may be longer than a file name can be.
    local fid=$id
    [ "${#id}" -gt 64 ] && fid="id${#id}-$(printf %s "$id" | sha256sum | cut -c1-16)"
    local cache="$WORK/results/$fid" order=()
    [ "$ifname" = eth0 ] || cache="$cache@$ifname"
    if [ -n "${RT_ANNOTATIONS+set}" ]; then has_annotations=true; else annotations=null; fi
    list=$(cat "$CONF_FILE") || return 1
    count=$(jq '.plugins | length' <<<"$list")
    name=$(jq -r .name <<<"$list")
    version=$(jq -r .cniVersion <<<"$list")
    case $cmd in
    ADD) for ((i = 0; i < count; i++)); do order+=("$i"); done ;;
    CHECK) for ((i = 0; i < count; i++)); do order+=("$i"); done ;;
    DEL) for ((i = count - 1; i >= 0; i--)); do order+=("$i"); done ;;
    esac
    if [ "$cmd" != ADD ] && [ -s "$cache" ]; then prev=$(cat "$cache"); fi
    RT_ERR="$WORK/rt/$fid.$cmd.err"
    [ "$ifname" = eth0 ] || RT_ERR="$WORK/rt/$fid@$ifname.$cmd.err"
    : >"$RT_ERR"
    for idx in "${order[@]}"; do
        conf=$(jq -c --argjson i "$idx" --arg name "$name" --arg v "$version" \
            --argjson prev "$prev" --argjson rc "$rc_json" \
            --argjson ann "$annotations" --argjson has_ann "$has_annotations" '
            (.plugins[$i].capabilities // {}) as $caps
            | ((if $rc != null and ($caps.meshwire // false) then {meshwire: $rc} else {} end)
               + (if $has_ann and ($caps["io.kubernetes.cri.pod-annotations"] // false)
                  then {"io.kubernetes.cri.pod-annotations": $ann} else {} end)) as $rtc
            | .plugins[$i] + {name: $name, cniVersion: $v}
            + (if $prev == null then {} else {prevResult: $prev} end)
            + (if $rtc == {} then {} else {runtimeConfig: $rtc} end)' <<<"$list")
        type=$(jq -r .type <<<"$conf")
        out=$(ip netns exec "$NODE" env -i PATH="$PATH" CNI_COMMAND="$cmd" CNI_CONTAINERID="$id" \
            CNI_NETNS="$(netns_path "$n")" CNI_IFNAME="$ifname" CNI_PATH="$CNI_BIN" \
            CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=$kns;K8S_POD_NAME=app-$n;K8S_POD_INFRA_CONTAINER_ID=$id;K8S_POD_UID=uid-$n" \
            "$CNI_BIN/$type" <<<"$conf" 2>>"$WORK/rt/$fid.stderr")
        rc=$?
        printf '%s\n' "$out" >"$WORK/rt/$fid.$cmd.$idx.$type"
        if [ "$rc" -ne 0 ]; then
            printf '%s\n' "$out" >"$RT_ERR"
            return 1
        fi
        [ "$cmd" = ADD ] && prev=$out
        if [ "$cmd" = DEL ] && [ "$type" = meshwire-cni ] && [ -n "${RT_AFTER_DEL:-}" ]; then
            "$RT_AFTER_DEL" "$id" "$n" || return 1
        fi
    done
    case $cmd in
    ADD) printf '%s\n' "$prev" >"$cache" ;;
    DEL) rm -f "$cache" ;;
    esac
}

# cni_direct COMMAND POD_N CONF_JSON [ENV...]: meshwire-cni alone, as the
# runtime runs it; stdout in $OUT, exit status returned.
cni_direct() {
    local cmd=$1 n=$2 conf=$3
    shift 3
    OUT=$(ip netns exec "$NODE" env -i PATH="$PATH" CNI_COMMAND="$cmd" CNI_CONTAINERID="direct-$n" \
        CNI_NETNS="$(netns_path "$n")" CNI_IFNAME=eth0 CNI_PATH="$CNI_BIN" \
        CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=direct-$n" "$@" \
        "$CNI_BIN/meshwire-cni" <<<"$conf" 2>"$WORK/direct.stderr")
}

new_pod() { add_netns "$(pod "$1")"; } # N

pod_ip() { jq -r '.ips[0].address | split("/")[0]' "$WORK/results/$1"; }

# ---------------------------------------------------------------------------
# Setup

# cni_preflight: preflight, and the reference plugins.
cni_preflight() {
    local ok=0 f
    preflight jq tc || ok=1
    for f in bridge host-local tuning; do
        [ -x "$REF_PLUGINS/$f" ] ||
            { fail "preflight: $REF_PLUGINS/$f missing (Debian package containernetworking-plugins; tools/setup.sh installs it)"; ok=1; }
    done
    return $ok
}

setup() {
    suite_workdir cni || return 1
    mkdir -p "$WORK/results" "$WORK/rt" "$WORK/ipam" "$WORK/cni-bin" "$WORK/net.d" || return 1
    SOCK=$(api_sock)
    STATE=$(state_dir)
    CNI_BIN="$WORK/cni-bin"
    CONF_DIR="$WORK/net.d"
    suite_cgroup cni || return 1
    write_config </dev/null
    # The reference plugins, as a node's /opt/cni/bin would hold them.
    local f
    for f in bridge host-local tuning loopback; do cp "$REF_PLUGINS/$f" "$CNI_BIN/" || return 1; done
    # The node's network: bridge + host-local, tuning chained after it.
    bridge_conflist pods "$P-br" "$SUBNET" "$WORK/ipam" '{ "type": "tuning" }' >"$CONF_DIR/10-pods.conflist" || return 1
    cp "$CONF_DIR/10-pods.conflist" "$WORK/10-pods.conflist.orig"
    add_netns "$NODE" || return 1
    ip -n "$NODE" addr add "${ADDR_A%:*}/32" dev lo || return 1
    start_server A "$NODE" "$ADDR_A" && start_server X "$NODE" "$ADDR_X"
}

# ---------------------------------------------------------------------------
# Cases

case_install() {
    local conf="$CONF_DIR/10-pods.conflist" once
    mwl cni install --bin-dir "$CNI_BIN" --conf-dir "$CONF_DIR" --plugin "$CNI" \
        --plugin-config '{"namespaces": {"exclude": ["kube-system"]}, "capabilities": {"meshwire": true}}' \
        >"$WORK/install.log" 2>&1 || { log "cni install failed:"; show "$WORK/install.log"; return 1; }
    show "$WORK/install.log"
    cmp -s "$CNI" "$CNI_BIN/meshwire-cni" || { log "meshwire-cni was not copied into $CNI_BIN"; return 1; }
    if [ "$(jq -c '[.plugins[].type]' "$conf")" != '["bridge","tuning","meshwire-cni"]' ]; then
        log "the conflist does not chain meshwire-cni last:"
        show "$conf"
        return 1
    fi
    jq -e --arg s "$SOCK" '.plugins[2].loaderSocket == $s' "$conf" >/dev/null ||
        { log "meshwire-cni's entry does not name the loader's socket $SOCK"; show "$conf"; return 1; }
    once=$(cat "$conf")
    mwl cni install --bin-dir "$CNI_BIN" --conf-dir "$CONF_DIR" --plugin "$CNI" >"$WORK/install2.log" 2>&1 ||
        { log "second cni install failed:"; show "$WORK/install2.log"; return 1; }
    [ "$(cat "$conf")" = "$once" ] || { log "a second install changed the conflist"; return 1; }
    CONF_FILE=$conf
    log "chained: $(jq -c '[.plugins[].type]' "$conf"), a second install changed nothing"
}

case_add_and_traffic() {
    new_pod 1 || return 1
    rt ADD ctr-1 1 shop || { log "ADD failed:"; show "$RT_ERR"; show "$WORK/rt/ctr-1.stderr"; return 1; }
    # meshwire-cni's result is its prevResult (tuning's), unchanged.
    if ! cmp -s <(jq -S . "$WORK/rt/ctr-1.ADD.1.tuning") <(jq -S . "$WORK/rt/ctr-1.ADD.2.meshwire-cni"); then
        log "meshwire-cni changed the result:"
        show "$WORK/rt/ctr-1.ADD.2.meshwire-cni"
        return 1
    fi
    local ip
    ip=$(pod_ip ctr-1)
    log "pod1 is $ip; meshwire-cni passed the result through"
    if ! pod_list | awk -v ip="$ip" '$1 == "ctr-1" && $3 == ip && $4 == "eth0" { f = 1 } END { exit !f }'; then
        log "the loader does not list ctr-1 with $ip on eth0:"
        pod_list | indent
        return 1
    fi
    start_sidecar pod1 "$(pod 1)" || return 1
    client "$(pod 1)" "pod1 -> A through its sidecar" --connect "$ADDR_A" --count 20 --parallel 5 \
        --expect-orig "$ADDR_A" --expect-server A || return 1
    [ "$(grep -c "^conn .* orig=$ADDR_A\$" "$WORK/sidecar-pod1.log")" -ge 20 ] ||
        { log "pod1's sidecar did not log 20 connections to $ADDR_A"; return 1; }
}

case_check() {
    local ip
    rt CHECK ctr-1 1 shop || { log "CHECK failed:"; show "$RT_ERR"; return 1; }
    log "CHECK of the whole chain passed"
    # Taken out behind CNI's back: CHECK fails (meshwire-cni's code 101) ...
    mwl pod del --id ctr-1 >"$WORK/pod-del.log" 2>&1 || { log "pod del failed:"; show "$WORK/pod-del.log"; return 1; }
    if rt CHECK ctr-1 1 shop; then log "CHECK passed for a pod the loader no longer meshes"; return 1; fi
    [ "$(jq -r .code "$RT_ERR")" = 101 ] || { log "expected code 101:"; show "$RT_ERR"; return 1; }
    log "after pod del behind CNI's back: code 101, $(jq -r .msg "$RT_ERR")"
    # ... and passes again once the pod is back as ADD left it.
    ip=$(pod_ip ctr-1)
    mwl pod add --id ctr-1 --netns "$(netns_path 1)" --ifname eth0 --ip "$ip" >"$WORK/pod-add.log" 2>&1 ||
        { log "pod add failed:"; show "$WORK/pod-add.log"; return 1; }
    rt CHECK ctr-1 1 shop || { log "CHECK after re-adding failed:"; show "$RT_ERR"; return 1; }
    log "re-added with pod add: CHECK passes"
}

case_excluded_namespace() {
    new_pod 2 || return 1
    rt ADD ctr-2 2 kube-system || { log "ADD failed:"; show "$RT_ERR"; return 1; }
    if pod_list | grep -qw ctr-2; then log "the loader meshes a kube-system pod"; return 1; fi
    grep -q 'is not meshed: namespace "kube-system" is in namespaces.exclude' "$WORK/rt/ctr-2.stderr" ||
        { log "no note on stderr:"; show "$WORK/rt/ctr-2.stderr"; return 1; }
    client "$(pod 2)" "pod2 (kube-system) -> A" --connect "$ADDR_A" --count 10 --parallel 5 \
        --expect-direct --expect-server A
}

case_per_pod_exclusion() {
    new_pod 3 || return 1
    rt ADD ctr-3 3 shop '{"excludeOutboundPorts": [8081], "accelerate": false}' ||
        { log "ADD failed:"; show "$RT_ERR"; return 1; }
    # The loader recorded the pod's own acceleration choice (pod1 made none).
    mwl pods 2>&1 | grep -A8 '^pod ctr-3' | grep -q "acceleration *off: the pod's own setting" ||
        { log "'pods' does not show acceleration off for ctr-3:"; mwl pods 2>&1 | indent; return 1; }
    mwl pods 2>&1 | grep -A8 '^pod ctr-1' | grep -q "acceleration *on .*: the node's choice" ||
        { log "'pods' does not show the node's choice (pods = \"all\": on) for ctr-1"; return 1; }
    log "pods: ctr-3 acceleration off (its runtimeConfig), ctr-1 on (the node's choice)"
    start_sidecar pod3 "$(pod 3)" || return 1
    client "$(pod 3)" "pod3 -> X (port 8081 excluded for this pod)" --connect "$ADDR_X" --count 10 \
        --parallel 5 --expect-direct --expect-server X || return 1
    client "$(pod 3)" "pod3 -> A" --connect "$ADDR_A" --count 10 --parallel 5 \
        --expect-orig "$ADDR_A" --expect-server A || return 1
    client "$(pod 1)" "pod1 -> X (not excluded for pod1)" --connect "$ADDR_X" --count 10 --parallel 5 \
        --expect-orig "$ADDR_X" --expect-server X
}

# ---------------------------------------------------------------------------
# Pod annotations, as containerd's CRI passes them to meshwire-cni (which
# `cni install` declared the capability io.kubernetes.cri.pod-annotations for).

ISTIO_STATUS='{"initContainers":null,"containers":["istio-proxy"],"volumes":["istio-envoy"]}'

# annotated ID N K8S_NAMESPACE ANNOTATIONS_JSON: ADD as containerd does.
annotated() {
    RT_ANNOTATIONS=$4 rt ADD "$1" "$2" "$3" || { log "ADD of $1 failed:"; show "$RT_ERR"; show "$WORK/rt/$1.stderr"; return 1; }
}

# says ID TEXT: meshwire-cni's stderr for ID has TEXT.
says() {
    grep -qF -- "$2" "$WORK/rt/$1.stderr" || { log "$1: stderr does not say '$2':"; show "$WORK/rt/$1.stderr"; return 1; }
}

meshed() { pod_list | grep -qw "$1"; }

case_annotations_decide() {
    local ann n rc=0
    for n in 20 21 22 23 24 25; do new_pod "$n" || return 1; done
    # Istio's injector's mark: meshed, and its connections reach its sidecar.
    ann=$(jq -nc --arg s "$ISTIO_STATUS" '{"sidecar.istio.io/status": $s, "app": "cart"}')
    annotated ctr-20 20 shop "$ann" || return 1
    meshed ctr-20 || { log "ctr-20 (sidecar.istio.io/status) is not meshed"; rc=1; }
    says ctr-20 "is meshed (eth0): the pod's annotations decide: annotation sidecar.istio.io/status is set" || rc=1
    start_sidecar pod20 "$(pod 20)" || return 1
    client "$(pod 20)" "pod20 (Istio-injected) -> A through its sidecar" --connect "$ADDR_A" --count 10 --parallel 5 \
        --expect-orig "$ADDR_A" --expect-server A || rc=1
    # meshwire's own opt-in.
    annotated ctr-21 21 shop '{"meshwire.io/mesh": "true"}' || return 1
    meshed ctr-21 || { log "ctr-21 (meshwire.io/mesh: true) is not meshed"; rc=1; }
    says ctr-21 'annotation meshwire.io/mesh: "true"' || rc=1
    # No sidecar annotation, in the same namespace: not meshed, reaches A directly.
    annotated ctr-22 22 shop '{"app": "batch"}' || return 1
    meshed ctr-22 && { log "ctr-22 (no sidecar annotation) is meshed"; rc=1; }
    says ctr-22 "is not meshed: the pod's annotations decide: no annotation says it has a sidecar" || rc=1
    client "$(pod 22)" "pod22 (no sidecar) -> A" --connect "$ADDR_A" --count 5 --parallel 5 --expect-direct --expect-server A || rc=1
    # A pod without annotations at all: containerd passes null.
    annotated ctr-23 23 shop null || return 1
    meshed ctr-23 && { log "ctr-23 (null annotations) is meshed"; rc=1; }
    says ctr-23 "no annotation says it has a sidecar" || rc=1
    # Opt-outs win over the sidecar's mark.
    ann=$(jq -nc --arg s "$ISTIO_STATUS" '{"sidecar.istio.io/status": $s, "sidecar.istio.io/inject": "false"}')
    annotated ctr-24 24 shop "$ann" || return 1
    meshed ctr-24 && { log "ctr-24 (sidecar.istio.io/inject: false) is meshed"; rc=1; }
    says ctr-24 'annotation sidecar.istio.io/inject: "false"' || rc=1
    ann=$(jq -nc --arg s "$ISTIO_STATUS" '{"sidecar.istio.io/status": $s, "meshwire.io/mesh": "false"}')
    annotated ctr-25 25 shop "$ann" || return 1
    meshed ctr-25 && { log "ctr-25 (meshwire.io/mesh: false) is meshed"; rc=1; }
    says ctr-25 'annotation meshwire.io/mesh: "false"' || rc=1
    client "$(pod 25)" "pod25 (opted out) -> A" --connect "$ADDR_A" --count 5 --parallel 5 --expect-direct --expect-server A || rc=1
    # Without annotations (podman, older CRI-O) the namespace lists decided case 5's pod.
    says ctr-3 "is meshed (eth0): the namespace lists decide (the runtime passed no pod annotations)" || rc=1
    for n in 20 21 22 23 24 25; do
        RT_ANNOTATIONS='{}' rt DEL "ctr-$n" "$n" shop || { log "DEL of ctr-$n failed:"; show "$RT_ERR"; rc=1; }
    done
    for n in 20 21; do meshed "ctr-$n" && { log "ctr-$n still meshed after DEL"; rc=1; }; done
    [ "$rc" = 0 ] && log "meshed: Istio's status, meshwire.io/mesh=true; not: no annotation, null, inject=false, mesh=false"
    return "$rc"
}

# The pod's interception settings from its annotations, on real connections.
case_annotation_settings() {
    local ann rc=0
    new_pod 26 || return 1
    new_pod 27 || return 1
    ann=$(jq -nc --arg s "$ISTIO_STATUS" '{"sidecar.istio.io/status": $s, "traffic.sidecar.istio.io/excludeOutboundPorts": "8081"}')
    annotated ctr-26 26 shop "$ann" || return 1
    start_sidecar pod26 "$(pod 26)" || return 1
    client "$(pod 26)" "pod26 -> X (traffic.sidecar.istio.io/excludeOutboundPorts: 8081)" --connect "$ADDR_X" --count 10 \
        --parallel 5 --expect-direct --expect-server X || rc=1
    client "$(pod 26)" "pod26 -> A" --connect "$ADDR_A" --count 10 --parallel 5 --expect-orig "$ADDR_A" --expect-server A || rc=1
    ann=$(jq -nc --arg s "$ISTIO_STATUS" '{"sidecar.istio.io/status": $s,
        "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.241.0.0/16,fd00::/64"}')
    annotated ctr-27 27 shop "$ann" || return 1
    start_sidecar pod27 "$(pod 27)" || return 1
    client "$(pod 27)" "pod27 -> A (excludeOutboundIPRanges 10.241.0.0/16)" --connect "$ADDR_A" --count 10 --parallel 5 \
        --expect-direct --expect-server A || rc=1
    mwl pods 2>&1 | grep -A12 '^pod ctr-27' | grep -q '10.241.0.0/16' ||
        { log "'pods' does not show ctr-27's excluded range:"; mwl pods 2>&1 | indent; rc=1; }
    mwl pods 2>&1 | grep -A12 '^pod ctr-27' | grep -q 'excluded outbound IPv6 cidrs fd00::/64' ||
        { log "'pods' does not show ctr-27's excluded IPv6 range (kept for interception.ipv6 = intercept):"; mwl pods 2>&1 | indent; rc=1; }
    # Include lists: no ranges, port 8081 only (whatever the address): X through
    # the sidecar, A (8080) directly.
    new_pod 28 || return 1
    ann=$(jq -nc --arg s "$ISTIO_STATUS" '{"sidecar.istio.io/status": $s,
        "traffic.sidecar.istio.io/includeOutboundIPRanges": "", "traffic.sidecar.istio.io/includeOutboundPorts": "8081"}')
    annotated ctr-28 28 shop "$ann" || return 1
    start_sidecar pod28 "$(pod 28)" || return 1
    client "$(pod 28)" "pod28 -> X (includeOutboundPorts 8081, no ranges)" --connect "$ADDR_X" --count 10 --parallel 5 \
        --expect-orig "$ADDR_X" --expect-server X || rc=1
    client "$(pod 28)" "pod28 -> A (8080 not included)" --connect "$ADDR_A" --count 10 --parallel 5 \
        --expect-direct --expect-server A || rc=1
    mwl pods 2>&1 | grep -A12 '^pod ctr-28' | grep -q 'included outbound cidrs -; ports 8081' ||
        { log "'pods' does not show ctr-28's include lists:"; mwl pods 2>&1 | indent; rc=1; }
    for n in 26 27 28; do RT_ANNOTATIONS='{}' rt DEL "ctr-$n" "$n" shop || rc=1; done
    return "$rc"
}

# A malformed annotation: the pod is not started, the error names it, and
# the loader has nothing of it.
case_annotation_malformed() {
    local ann before after msg rc=0
    new_pod 30 || return 1
    before=$(loader_state)
    ann=$(jq -nc --arg s "$ISTIO_STATUS" '{"sidecar.istio.io/status": $s, "traffic.sidecar.istio.io/excludeOutboundPorts": "5432,postgres"}')
    if RT_ANNOTATIONS=$ann rt ADD ctr-30 30 shop; then log "ADD with a malformed annotation succeeded"; return 1; fi
    [ "$(jq -r .code "$RT_ERR")" = 7 ] || { log "expected code 7:"; show "$RT_ERR"; rc=1; }
    # The ADD's error, kept: the DEL below runs with its own RT_ERR (empty when it succeeds).
    msg=$(jq -r .msg "$RT_ERR" 2>/dev/null)
    grep -qF 'annotation traffic.sidecar.istio.io/excludeOutboundPorts: "5432,postgres"' <<<"$msg" ||
        { log "the error does not name the annotation and its value:"; show "$RT_ERR"; rc=1; }
    after=$(loader_state)
    [ "$before" = "$after" ] || { log "the loader's state changed:"; diff <(echo "$before") <(echo "$after") | indent; rc=1; }
    # The runtime tears the sandbox down.
    RT_ANNOTATIONS=$ann rt DEL ctr-30 30 shop || { log "DEL failed:"; show "$RT_ERR"; rc=1; }
    [ "$rc" = 0 ] && log "code 7: $msg"
    return "$rc"
}

# pod_view ID: what `meshwire-loader pods` says of pod ID (its lines only).
pod_view() { mwl pods 2>&1 | awk -v id="$1" '/^pod / { on = ($2 == id) } on'; }

# dns_reaches ID WANT FROM: the record of ID (eth0) has dns_capture WANT
# (true, false or null), and `pods` says "dns capture <on|off>: FROM", which
# in the eBPF mode is mw_pods' flag for the pod.
dns_reaches() {
    local id=$1 want=$2 from=$3 rec="$STATE/pods/$1@eth0.json" got state
    got=$(jq -c .dns_capture "$rec" 2>/dev/null) || { log "$id: no record $rec"; return 1; }
    [ "$got" = "$want" ] || { log "$id: the record has dns_capture $got, expected $want"; show "$rec"; return 1; }
    case $want in true) state=on ;; false) state=off ;; null) state=off ;; esac # the node's [dns] capture is off
    pod_view "$id" | grep -qF "dns capture       $state: $from" ||
        { log "$id: 'pods' does not say \"dns capture $state: $from\":"; pod_view "$id" | indent; return 1; }
    log "$id: record dns_capture $got; pods: dns capture $state: $from"
}

# The network's dnsCapture and the pod's meshwire.io/dns-capture annotation
# (docs/annotations.md, cni/README.md) reach the loader: its record and
# mw_pods (`pods`); the annotation wins over the network's setting, neither
# set leaves the node's [dns] capture to decide. An invalid value of either
# refuses the pod (code 7) naming the setting and the value, and the loader
# keeps nothing of it.
case_dns_capture_settings() {
    local dnsconf="$WORK/30-pods-dns.conflist" conf1=$CONF_FILE before after rc=0 n ann base
    jq '.plugins[2].dnsCapture = true' "$conf1" >"$dnsconf" || return 1
    for n in 31 32 33 34 35 36; do new_pod "$n" || return 1; done
    CONF_FILE=$dnsconf annotated ctr-31 31 shop '{"meshwire.io/mesh": "true"}' || return 1
    dns_reaches ctr-31 true "the pod's own setting" || rc=1
    CONF_FILE=$dnsconf annotated ctr-32 32 shop '{"meshwire.io/mesh": "true", "meshwire.io/dns-capture": "false"}' || return 1
    dns_reaches ctr-32 false "the pod's own setting" || rc=1
    annotated ctr-33 33 shop '{"meshwire.io/mesh": "true", "meshwire.io/dns-capture": "true"}' || return 1
    dns_reaches ctr-33 true "the pod's own setting" || rc=1
    annotated ctr-34 34 shop '{"meshwire.io/mesh": "true"}' || return 1
    dns_reaches ctr-34 null "the node's choice, [dns] capture" || rc=1

    # An invalid annotation: the pod is not started, the error names it.
    before=$(loader_state)
    ann='{"meshwire.io/mesh": "true", "meshwire.io/dns-capture": "yes"}'
    if RT_ANNOTATIONS=$ann rt ADD ctr-35 35 shop; then
        log "ADD with meshwire.io/dns-capture: yes succeeded"
        rc=1
    else
        [ "$(jq -r .code "$RT_ERR")" = 7 ] || { log "dns-capture: yes: expected code 7:"; show "$RT_ERR"; rc=1; }
        jq -r .msg "$RT_ERR" | grep -qF 'annotation meshwire.io/dns-capture: "yes" is neither "true" nor "false"' ||
            { log "the error does not name the annotation and its value:"; show "$RT_ERR"; rc=1; }
        log "meshwire.io/dns-capture: yes: code 7, $(jq -r .msg "$RT_ERR")"
    fi
    after=$(loader_state)
    [ "$before" = "$after" ] || { log "the loader's state changed:"; diff <(echo "$before") <(echo "$after") | indent; rc=1; }
    RT_ANNOTATIONS=$ann rt DEL ctr-35 35 shop || { log "DEL of ctr-35 failed:"; show "$RT_ERR"; rc=1; }

    # An invalid network setting: meshwire-cni alone, as the runtime runs it
    # (a network whose configuration is invalid gets no further).
    rt ADD ctr-36 36 kube-system || { log "ADD of pod36 failed:"; show "$RT_ERR"; return 1; }
    base=$(jq -c --argjson p "$(cat "$WORK/results/ctr-36")" '.plugins[2] + {name: .name, cniVersion: .cniVersion, prevResult: $p}' "$conf1")
    expect_error 'dnsCapture: "yes"' 7 ADD 36 "$(jq -c '.dnsCapture = "yes"' <<<"$base")" || rc=1
    grep -qF 'dnsCapture must be true or false, not a string' <<<"$(jq -r .msg <<<"$OUT")" ||
        { log "the error does not name dnsCapture and what is wrong: $OUT"; rc=1; }
    expect_error 'runtimeConfig dnsCapture: 1' 7 ADD 36 "$(jq -c '.runtimeConfig = {meshwire: {dnsCapture: 1}}' <<<"$base")" || rc=1
    grep -qF 'dnsCapture must be true or false, not a number' <<<"$(jq -r .msg <<<"$OUT")" ||
        { log "the error does not name runtimeConfig's dnsCapture: $OUT"; rc=1; }
    rt DEL ctr-36 36 kube-system || { log "DEL of ctr-36 failed:"; show "$RT_ERR"; rc=1; }

    for n in 31 32; do CONF_FILE=$dnsconf RT_ANNOTATIONS='{}' rt DEL "ctr-$n" "$n" shop || { log "DEL of ctr-$n failed:"; show "$RT_ERR"; rc=1; }; done
    for n in 33 34; do RT_ANNOTATIONS='{}' rt DEL "ctr-$n" "$n" shop || { log "DEL of ctr-$n failed:"; show "$RT_ERR"; rc=1; }; done
    for n in 31 32 33 34; do meshed "ctr-$n" && { log "ctr-$n still meshed after DEL"; rc=1; }; done
    return "$rc"
}

# A pod on two meshed networks (Multus, podman --network a,b): one attachment
# per interface. Both addresses are intercepted; DEL of one leaves the other
# meshed; CHECK and GC go by attachment; and a loader started over records and
# tc pins of the previous layout (one attachment per container) adopts them.
ADDR2_SUBNET=10.243.0.0/16
inbound_client() { # DESC IP ARGS...: a client on the node dialling the pod's app at IP:8080
    local desc=$1 ip=$2 out="$WORK/client-$((++CLIENT_SEQ)).log" rc
    shift 2
    timeout -k 5 "$CLIENT_TIMEOUT" ip netns exec "$NODE" "$MWTEST" client --connect "$ip:8080" "$@" >"$out" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then log "$desc: $(tail -n 1 "$out")"; else log "$desc: client exited with $rc:"; show "$out"; fi
    return "$rc"
}

case_two_networks() {
    # The case's pod: its number (netns $(pod N), free in this suite) names
    # everything else: container ctr-N, app server PN, logs.
    local pn=40
    local id="ctr-$pn" app="P$pn" conf2="$WORK/20-pods2.conflist" conf1=$CONF_FILE ip1 ip2 rc=0 n cookie dir suffix
    jq --arg br "$P-br2" --arg sub "$ADDR2_SUBNET" --arg ipam "$WORK/ipam2" '.name = "pods2"
        | .plugins[0] += {bridge: $br, isDefaultGateway: false, isGateway: true}
        | .plugins[0].ipam += {subnet: $sub, dataDir: $ipam}' "$conf1" >"$conf2" || return 1
    new_pod "$pn" || return 1
    annotated "$id" "$pn" shop '{"meshwire.io/mesh": "true"}' || return 1
    CONF_FILE=$conf2 RT_IFNAME=net1 annotated "$id" "$pn" shop '{"meshwire.io/mesh": "true"}' || return 1
    ip1=$(pod_ip "$id")
    ip2=$(pod_ip "$id@net1")
    n=$(pod_list | awk -v id="$id" '$1 == id' | wc -l)
    [ "$n" = 2 ] || { log "pod list shows $id $n times, expected twice (eth0 and net1):"; pod_list | indent; return 1; }
    log "$id is meshed on eth0 ($ip1) and net1 ($ip2)"
    start_bg "$WORK/sidecar-pod$pn.log" "${IN_CG[@]}" "$(pod "$pn")" "$MWTEST" sidecar --listen "127.0.0.1:$SIDECAR_PORT" \
        --inbound-listen "0.0.0.0:15003" --uid "$SIDECAR_UID" --gid "$SIDECAR_UID"
    wait_listen "$(pod "$pn")" "0.0.0.0:15003" "$LAST_PID" "$WORK/sidecar-pod$pn.log" || return 1
    start_bg "$WORK/server-$app.log" ip netns exec "$(pod "$pn")" "$MWTEST" server --listen 0.0.0.0:8080 --name "$app"
    wait_listen "$(pod "$pn")" 0.0.0.0:8080 "$LAST_PID" "$WORK/server-$app.log" || return 1
    inbound_client "node -> pod$pn eth0 $ip1:8080" "$ip1" --count 10 --parallel 5 --expect-inbound-orig "$ip1:8080" --expect-server "$app" || rc=1
    inbound_client "node -> pod$pn net1 $ip2:8080" "$ip2" --count 10 --parallel 5 --expect-inbound-orig "$ip2:8080" --expect-server "$app" || rc=1
    client "$(pod "$pn")" "pod$pn -> A through its sidecar" --connect "$ADDR_A" --count 5 --parallel 5 --expect-orig "$ADDR_A" --expect-server A || rc=1
    # CHECK each attachment.
    RT_ANNOTATIONS='{"meshwire.io/mesh": "true"}' rt CHECK "$id" "$pn" shop || { log "CHECK eth0 failed:"; show "$RT_ERR"; rc=1; }
    CONF_FILE=$conf2 RT_IFNAME=net1 RT_ANNOTATIONS='{"meshwire.io/mesh": "true"}' rt CHECK "$id" "$pn" shop ||
        { log "CHECK net1 failed:"; show "$RT_ERR"; rc=1; }
    # GC of network pods2 whose valid attachments do not name $id/net1: that attachment goes, eth0 stays.
    cni_direct GC "$pn" "$(jq -c --arg id "$id" '.plugins[2] + {name: .name, cniVersion: "1.1.0", "cni.dev/valid-attachments": [{containerID: $id, ifname: "eth0"}]}' "$conf2")" ||
        { log "GC failed: $OUT"; rc=1; }
    if pod_list | awk -v id="$id" '$1 == id && $4 == "net1"' | grep -q .; then log "GC left $id/net1"; rc=1; fi
    pod_list | awk -v id="$id" '$1 == id && $4 == "eth0"' | grep -q . || { log "GC removed $id/eth0, which is valid"; rc=1; }
    # The runtime's own cleanup of that attachment, then ADD net1 again and
    # DEL it the runtime's way: eth0 stays meshed.
    CONF_FILE=$conf2 RT_IFNAME=net1 RT_ANNOTATIONS='{}' rt DEL "$id" "$pn" shop || { log "DEL net1 after GC failed:"; show "$RT_ERR"; rc=1; }
    CONF_FILE=$conf2 RT_IFNAME=net1 annotated "$id" "$pn" shop '{"meshwire.io/mesh": "true"}' || return 1
    CONF_FILE=$conf2 RT_IFNAME=net1 RT_ANNOTATIONS='{}' rt DEL "$id" "$pn" shop || { log "DEL net1 failed:"; show "$RT_ERR"; rc=1; }
    n=$(pod_list | awk -v id="$id" '$1 == id' | wc -l)
    [ "$n" = 1 ] || { log "after DEL of net1, pod list shows $id $n times"; rc=1; }
    inbound_client "node -> pod$pn eth0 $ip1:8080 after net1's DEL" "$ip1" --count 10 --parallel 5 --expect-inbound-orig "$ip1:8080" --expect-server "$app" || rc=1
    client "$(pod "$pn")" "pod$pn -> A after net1's DEL" --connect "$ADDR_A" --count 5 --parallel 5 --expect-orig "$ADDR_A" --expect-server A || rc=1
    RT_ANNOTATIONS='{}' rt CHECK "$id" "$pn" shop || { log "CHECK eth0 after net1's DEL failed:"; show "$RT_ERR"; rc=1; }
    # An upgrade: the previous version's record (<id>.json) and pod pins (one
    # attachment per container); a restarted loader adopts them, nothing
    # doubled. With tcx links those were the links tc_ingress and tc_egress;
    # with clsact filters ("auto"), the qdisc marker clsact_qdisc and no
    # marker per interface.
    cookie=$(pod_list | awk -v id="$id" '$1 == id { print $2 }')
    dir="$PIN/pods/$cookie"
    stop_loader
    mv "$STATE/pods/$id@eth0.json" "$STATE/pods/$id.json" || rc=1
    # The pins of an attachment end in its interface name in hex (eth0: 65746830).
    suffix=$(printf %s eth0 | od -An -tx1 | tr -d ' \n')
    local want
    if [ -e "$dir/tc_ingress_$suffix" ]; then
        for n in tc_ingress tc_egress; do
            if [ -e "$dir/${n}_$suffix" ]; then mv "$dir/${n}_$suffix" "$dir/$n" || rc=1; else log "no $dir/${n}_$suffix"; rc=1; fi
        done
        want="tc_egress_$suffix tc_ingress_$suffix "
    elif [ -d "$dir/clsact_if_$suffix" ] && [ -d "$dir/clsact_qdisc_$suffix" ]; then
        rmdir "$dir/clsact_if_$suffix" && mv "$dir/clsact_qdisc_$suffix" "$dir/clsact_qdisc" || rc=1
        want="clsact_if_$suffix clsact_qdisc_$suffix "
    else
        log "$dir holds neither tcx links nor clsact markers for eth0: $(ls "$dir")"
        rc=1
    fi
    start_loader || return 1
    [ -e "$STATE/pods/$id@eth0.json" ] && [ ! -e "$STATE/pods/$id.json" ] || { log "the old record was not adopted:"; ls "$STATE/pods" | indent; rc=1; }
    [ "$(find "$dir" -mindepth 1 -maxdepth 1 | sort | xargs -n1 basename | tr '\n' ' ')" = "$want" ] ||
        { log "the pod's pins after the restart: $(ls "$dir"), expected $want"; rc=1; }
    inbound_client "node -> pod$pn eth0 after the upgrade" "$ip1" --count 10 --parallel 5 --expect-inbound-orig "$ip1:8080" --expect-server "$app" || rc=1
    RT_ANNOTATIONS='{}' rt DEL "$id" "$pn" shop || { log "DEL eth0 failed:"; show "$RT_ERR"; rc=1; }
    pod_list | grep -qw "$id" && { log "$id still listed"; rc=1; }
    # Its pins go with its bare clsact qdisc, which the loader's reaper
    # thread deletes about 1 s after the DEL: allow 5 s.
    for ((n = 0; n < 50; n++)); do
        [ -e "$dir" ] || break
        sleep 0.1
    done
    [ ! -e "$dir" ] || { log "$dir is left 5 s after the DEL: $(ls "$dir")"; rc=1; }
    return "$rc"
}

# expect_error DESC WANT_CODE COMMAND POD CONF [ENV...]: meshwire-cni fails
# with WANT_CODE and a message, and the loader's state is unchanged.
expect_error() {
    local desc=$1 want=$2 cmd=$3 n=$4 conf=$5 before after code msg
    shift 5
    before=$(loader_state)
    if cni_direct "$cmd" "$n" "$conf" "$@"; then
        log "$desc: succeeded, expected error $want"
        return 1
    fi
    code=$(jq -r .code <<<"$OUT" 2>/dev/null)
    msg=$(jq -r .msg <<<"$OUT" 2>/dev/null)
    after=$(loader_state)
    if [ "$code" != "$want" ] || [ -z "$msg" ] || [ "$msg" = null ]; then
        log "$desc: got $OUT, expected code $want with a message"
        return 1
    fi
    if [ "$before" != "$after" ]; then
        log "$desc: the loader's state changed:"
        diff <(echo "$before") <(echo "$after") | indent
        return 1
    fi
    log "$desc: code $code, \"$msg\""
}

case_errors() {
    local base prev rc=0
    new_pod 4 || return 1
    rt ADD ctr-4 4 kube-system || { log "ADD of pod4 failed:"; show "$RT_ERR"; return 1; }
    prev=$(cat "$WORK/results/ctr-4")
    base=$(jq -c --argjson p "$prev" '.plugins[2] + {name: .name, cniVersion: .cniVersion, prevResult: $p}' "$CONF_FILE")
    c() { jq -c "$1" <<<"$base"; }
    expect_error "malformed JSON" 6 ADD 4 '{"cniVersion": "1.0.0",' || rc=1
    expect_error "unsupported cniVersion" 1 ADD 4 "$(c '.cniVersion = "0.2.0"')" || rc=1
    expect_error "no name" 7 ADD 4 "$(c 'del(.name)')" || rc=1
    expect_error "unknown key" 2 ADD 4 "$(c '.failpolicy = "open"')" || rc=1
    expect_error "bad port" 7 ADD 4 "$(c '.excludeOutboundPorts = [0]')" || rc=1
    expect_error "ADD without prevResult" 7 ADD 4 "$(c 'del(.prevResult)')" || rc=1
    expect_error "CHECK in 0.3.1" 1 CHECK 4 "$(c '.cniVersion = "0.3.1"')" || rc=1
    expect_error "netns does not exist" 3 ADD 4 "$base" CNI_NETNS="/run/netns/$P-absent" || rc=1
    expect_error "no CNI_NETNS" 4 ADD 4 "$base" CNI_NETNS= || rc=1
    expect_error "unknown command" 4 FROB 4 "$base" || rc=1
    expect_error "bad CNI_ARGS" 4 ADD 4 "$base" CNI_ARGS="K8S_POD_NAMESPACE" || rc=1
    return "$rc"
}

# After meshwire-cni's DEL, before bridge's: nothing of the pod is left.
verify_pod_gone() { # ID N
    local id=$1 n=$2 q
    if pod_list | grep -qw "$id"; then log "pod list still shows $id"; return 1; fi
    if grep -rqs -- "$id" "$STATE"; then log "a record of $id is left in $STATE"; return 1; fi
    local f
    f=$(tc -n "$(pod "$n")" filter show dev eth0 ingress 2>&1; tc -n "$(pod "$n")" filter show dev eth0 egress 2>&1)
    if grep -q 'mw_tc_' <<<"$f"; then log "meshwire's tc filters left on pod$n eth0 after DEL: $f"; return 1; fi
    # DEL answers once meshwire's filters are off; the bare clsact qdisc
    # meshwire created, and its marker among the pins, go about 1 s after
    # the answer, deleted by the loader's reaper thread (deleting a qdisc
    # waits for an RCU grace period): allow 5 s.
    local w
    for ((w = 0; w < 50; w++)); do
        q=$(tc -n "$(pod "$n")" qdisc show dev eth0 2>&1)
        ! grep -qE 'clsact|ingress' <<<"$q" && [ "$(pods_pinned | wc -l)" = $((PINNED_BEFORE - 1)) ] && break
        sleep 0.1
    done
    if grep -qE 'clsact|ingress' <<<"$q"; then log "tc qdiscs left on pod$n eth0 5 s after DEL: $q"; return 1; fi
    if [ "$(pods_pinned | wc -l)" != $((PINNED_BEFORE - 1)) ]; then
        log "pinned pod directories: $PINNED_BEFORE before DEL, $(pods_pinned | wc -l) 5 s after"
        return 1
    fi
    # The kernel frees an unpinned link from a workqueue (bpf_link_put), so
    # the tcx detach may trail DEL by a moment: allow it 2 s.
    if [ -n "$TCX_BEFORE" ]; then
        local i
        for ((i = 0; i < 20; i++)); do
            [ "$(tcx_links)" = $((TCX_BEFORE - 2)) ] && break
            sleep 0.1
        done
        if [ "$(tcx_links)" != $((TCX_BEFORE - 2)) ]; then
            log "tcx links of meshwire's tc programs: $TCX_BEFORE before DEL, $(tcx_links) 2 s after (2 fewer expected)"
            return 1
        fi
        [ "$i" -gt 0 ] && log "the tcx links were gone $((i * 100)) ms after DEL answered"
    fi
    VERIFIED=$((VERIFIED + 1))
}

pods_pinned() { find "$PIN/pods" -mindepth 1 -maxdepth 1 2>/dev/null | sort; }

# tcx_links: how many BPF links run this loader's tc programs (pinned under
# $PIN/progs; other meshwire instances on the machine are not counted).
tcx_links() {
    local ids p
    ids=$(for p in "$PIN"/progs/mw_tc_*; do bpftool -j prog show pinned "$p" 2>/dev/null; done | jq -sc 'map(.id)')
    bpftool -j link show 2>/dev/null | jq --argjson ids "$ids" '[.[] | select(.prog_id as $p | $ids | index($p))] | length'
}

case_del() {
    local before_pods after_pods
    before_pods=$(map_count mw_pods)
    reaped
    PINNED_BEFORE=$(pods_pinned | wc -l)
    TCX_BEFORE=""
    if command -v bpftool >/dev/null; then
        TCX_BEFORE=$(tcx_links)
        log "tcx links of meshwire's tc programs before DEL: $TCX_BEFORE"
    else
        log "bpftool missing: tcx links checked through their pins only"
    fi
    if [ "$TCX_BEFORE" = 0 ]; then
        # tc attach "auto": clsact filters; verify_pod_gone finds no qdisc after DEL.
        local f
        f=$(for d in ingress egress; do tc -n "$(pod 1)" filter show dev eth0 "$d"; done 2>&1 | grep -cE 'pref 19799 bpf .*handle 0x4d57')
        [ "$f" = 2 ] || { log "pod1 eth0 before DEL: $f of meshwire's clsact filters, 2 expected"; return 1; }
        log "pod1 eth0 before DEL: meshwire's ingress and egress clsact filters, no tcx link"
        TCX_BEFORE=""
    fi
    VERIFIED=0
    RT_AFTER_DEL=verify_pod_gone rt DEL ctr-1 1 shop || { log "DEL failed:"; show "$RT_ERR"; return 1; }
    [ "$VERIFIED" = 1 ] || return 1
    after_pods=$(map_count mw_pods)
    [ "$after_pods" = $((before_pods - 1)) ] || { log "mw_pods: $before_pods -> $after_pods"; return 1; }
    # DEL again, and DEL with the netns gone: both succeed.
    rt DEL ctr-1 1 shop || { log "a second DEL failed:"; show "$RT_ERR"; return 1; }
    ip netns del "$(pod 1)"
    rt DEL ctr-1 1 shop || { log "DEL without the netns failed:"; show "$RT_ERR"; return 1; }
    log "mw_pods $before_pods -> $after_pods; no record, qdisc or pinned link left; DEL twice and without netns ok"
}

# Container IDs of 251 to 256 characters (their records' file names would be
# too long as <id>.json) are added, listed and deleted like others; DEL of an
# unknown ID longer than any pod can have succeeds, as DEL must when nothing
# is there.
case_long_ids() {
    local len id n=90 long
    for len in 251 256; do
        id=$(printf '%*s' "$len" '' | tr ' ' c)
        new_pod "$n" || return 1
        rt ADD "$id" "$n" shop || { log "ADD of a $len-character ID failed:"; show "$RT_ERR"; return 1; }
        meshed "$id" || { log "pod list does not show the $len-character ID"; return 1; }
        rt DEL "$id" "$n" shop || { log "DEL of a $len-character ID failed:"; show "$RT_ERR"; return 1; }
        if meshed "$id" || [ -n "$(find "$STATE/pods" -name 'ccccccccc*' 2>/dev/null)" ]; then
            log "the $len-character ID is still listed or recorded after DEL"
            return 1
        fi
        log "a $len-character ID: ADD, listed, DEL, nothing left"
        ip netns del "$(pod "$n")"
        n=$((n + 1))
    done
    long=$(printf '%*s' 300 '' | tr ' ' d)
    new_pod "$n" || return 1
    rt DEL "$long" "$n" shop || { log "DEL of an unknown 300-character ID failed:"; show "$RT_ERR"; return 1; }
    log "DEL of an unknown 300-character ID succeeded"
    ip netns del "$(pod "$n")"
}

# idle_clients N READY: holds N connections to the loader's API open and
# idle (each connect given 2 s), writes how many it opened to READY, then
# sleeps until killed.
idle_clients() {
    # exec: the holder's PID is python's, so stopping it closes them.
    exec python3 - "$SOCK" "$1" "$2" <<'PY'
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
conns = []
for _ in range(int(sys.argv[2])):
    c = socket.socket(socket.AF_UNIX)
    c.settimeout(2)
    try:
        c.connect(sys.argv[1])
    except OSError:
        break
    conns.append(c)
open(sys.argv[3], "w").write(str(len(conns)))
time.sleep(120)
PY
}

# add_del_ms ID N: milliseconds of one ADD through the chain (the pod is
# deleted again afterwards).
add_del_ms() {
    local t0 t1
    t0=$(date +%s%N)
    rt ADD "$1" "$2" shop || { log "ADD $1 failed:"; show "$RT_ERR"; return 1; }
    t1=$(date +%s%N)
    rt DEL "$1" "$2" shop || { log "DEL $1 failed:"; show "$RT_ERR"; return 1; }
    echo $(((t1 - t0) / 1000000))
}

# Connections the loader holds show as its open file descriptors.
loader_fds() { find "/proc/$LOADER_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

median() { tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# With 1,000 idle connections held open to the API, a CNI ADD takes at most
# twice as long as without them, and an ADD whose caller hangs up before it is
# answered leaves nothing. The two are timed in turns, five rounds of one ADD
# without the idle connections and one with them (opened for it, closed
# after), so that both medians are taken under the same machine load: on two
# vCPUs shared with other suites, an ADD's time drifts by more than 2x within
# a minute (one run under load average 25 failed the check when all ADDs with
# the connections were timed after all those without). 250 ms on top of twice
# the median absorb what is left of that; what this guards against (issue 12:
# workers starved by idle connections) makes ADDs wait seconds or fail after
# meshwire-cni's 10 s.
case_idle_clients() {
    local base=() busy=() i j ms holder opened mb mi fds0 rc=0
    new_pod 80 || return 1
    fds0=$(loader_fds)
    for i in 1 2 3 4 5; do
        ms=$(add_del_ms "idle-base-$i" 80) || return 1
        base+=("$ms")
        rm -f "$WORK/idle.ready"
        idle_clients 1000 "$WORK/idle.ready" &
        holder=$!
        BG_PIDS+=("$holder")
        for ((j = 0; j < 100; j++)); do [ -s "$WORK/idle.ready" ] && break; sleep 0.1; done
        opened=$(cat "$WORK/idle.ready" 2>/dev/null)
        [ "${opened:-0}" = 1000 ] || { log "round $i: idle connections held open: ${opened:-none}, expected 1000"; rc=1; }
        # meshwire-cni gives the loader loaderTimeoutSeconds (10 s), then fails.
        ms=$(add_del_ms "idle-busy-$i" 80) || { log "ADD $i with the idle connections open failed"; rc=1; }
        busy+=("${ms:-999999}")
        stop_pid "$holder" 1
        forget_pid "$holder"
        # The next ADD without them once the loader has let them go.
        for ((j = 0; j < 100; j++)); do [ "$(loader_fds)" -le $((fds0 + 8)) ] && break; sleep 0.1; done
    done
    mb=$(echo "${base[*]}" | median)
    mi=$(echo "${busy[*]}" | median)
    log "CNI ADD through the chain, ms, in turns: without idle connections ${base[*]} (median $mb); with 1000 idle connections ${busy[*]} (median $mi)"
    if [ "$mi" -gt $((2 * mb + 250)) ]; then
        log "ADD latency with the idle connections is more than twice (+250 ms) that without them"
        rc=1
    fi
    # A caller that sends its ADD and hangs up at once: nothing may be left.
    gave_up_add close gave-up "$(netns_path 80)" '"ifname": "eth0"'
    wait_loader_log "pod gave-up: its caller hung up before the ADD was served; not meshed" || rc=1
    if pod_list | grep -qw gave-up || compgen -G "$STATE/pods/gave-up@*.json" >/dev/null; then
        log "the ADD whose caller hung up left pod gave-up behind"
        mwl pod del --id gave-up >/dev/null 2>&1
        rc=1
    else
        log "the ADD whose caller hung up left nothing"
    fi
    # A caller that stops reading while its ADD is served: the ADD is
    # served, its answer cannot be written, so it is taken back. A new pod
    # goes again; a pod whose settings it replaced gets its previous ones back.
    gave_up_add shut-rd late "$(netns_path 80)" '"exclude_outbound_ports": [23]'
    wait_loader_log "pod late: its caller was gone when the ADD was answered; taken out again" || rc=1
    if pod_list | grep -qw late; then
        log "the ADD whose answer could not be written left pod late behind"
        mwl pod del --id late >/dev/null 2>&1
        rc=1
    else
        log "the ADD whose answer could not be written left nothing"
    fi
    mwl pod add --netns "$(netns_path 80)" --id replaced --exclude-outbound-port 22 >/dev/null || rc=1
    gave_up_add shut-rd replaced "$(netns_path 80)" '"exclude_outbound_ports": [23]'
    wait_loader_log "pod replaced: its caller was gone when the ADD was answered; its previous settings are in force" || rc=1
    local kept
    kept=$(jq -c .exclude_outbound_ports "$STATE"/pods/replaced@*.json 2>&1)
    if [ "$kept" != "[22]" ]; then
        log "after the replacing ADD whose answer could not be written, pod replaced's record excludes $kept, expected its previous [22]"
        rc=1
    elif ! python3 - "$SOCK" >"$WORK/check-replaced.log" 2>&1 <<'PY'
import json, socket, sys
c = socket.socket(socket.AF_UNIX)
c.connect(sys.argv[1])
c.sendall(b'{"version": 1, "op": "check_pod", "container_id": "replaced"}\n')
reply = c.makefile().readline()
print(reply)
sys.exit(0 if json.loads(reply)["ok"] else 1)
PY
    then
        log "CHECK of replaced failed:"
        show "$WORK/check-replaced.log"
        rc=1
    else
        log "pod replaced is back to its previous settings (excludes $kept), and CHECK passes"
    fi
    mwl pod del --id replaced >/dev/null 2>&1
    ip netns del "$(pod 80)"
    return "$rc"
}

# pipeliner SECONDS NETNS STARTED: one API connection that pipelines requests
# and never reads an answer: ADD then DEL of pod "pipeliner" in NETNS (on
# its eth0, so each one attaches or detaches tc programs: the most a request
# can ask of the loader), over and over, for SECONDS at most, sending
# whenever the socket takes more. STARTED is created once 64 KiB are sent.
# Prints JSON: bytes and requests the kernel took, and after how many
# seconds the loader dropped the connection (null: it did not).
pipeliner() {
    python3 - "$SOCK" "$1" "$2" "$3" <<'PY'
import json, os, select, socket, sys, time
path, seconds, netns, started = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
pod = {"container_id": "pipeliner", "netns": netns, "ifname": "eth0"}
pair = (json.dumps({"version": 1, "op": "add_pod", "pod": pod}) + "\n"
        + json.dumps({"version": 1, "op": "del_pod", "container_id": "pipeliner"}) + "\n").encode()
data = pair * 256
c = socket.socket(socket.AF_UNIX)
c.connect(path)
c.setblocking(False)
poll = select.poll()
poll.register(c, select.POLLOUT)  # POLLHUP and POLLERR are always reported
t0 = time.monotonic()
sent, off, dropped = 0, 0, None
while time.monotonic() - t0 < seconds:
    ev = poll.poll(200)
    if not ev:
        continue
    if ev[0][1] & (select.POLLHUP | select.POLLERR):
        dropped = time.monotonic() - t0
        break
    try:
        n = c.send(data[off:])
    except BlockingIOError:
        continue
    except (BrokenPipeError, ConnectionResetError):
        dropped = time.monotonic() - t0
        break
    sent += n
    off = (off + n) % len(data)
    if sent >= 65536 and not os.path.exists(started):
        open(started, "w").close()
print(json.dumps({"bytes": sent, "requests": 2 * sent // len(pair), "dropped_after": dropped}))
PY
}

# rss_kib PID: the process's resident memory in KiB.
rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null; }

# ms CMD...: milliseconds CMD takes (its output discarded); fails if CMD does.
ms() {
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || return 1
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}

# A client that pipelines requests on the API socket and never reads the
# answers (pipeliner above, ADD and DEL of a pod with tc programs) must not
# hold up anyone else: CNI ADDs through the chain, `pod list` and the API's
# status, timed before and while it runs, stay prompt; the loader's memory
# stays bounded (its requests wait in the kernel's socket buffers, not in the
# loader); and the loader drops the connection on its own, once its answers
# have not been read for the API's 30 s write deadline.
case_pipelining_client() {
    local n=81 cni=82 i ms_ add_base=() add_busy=() list_base=() list_busy=() st_base=() st_busy=()
    local rss0 rss rss_max pid result dropped started="$WORK/pipeliner.started" rc=0 limit
    new_pod "$n" || return 1
    # An eth0 for its tc programs (a veth pair inside the pod).
    ip -n "$(pod "$n")" link add eth0 type veth peer name peer0 && ip -n "$(pod "$n")" link set eth0 up || return 1
    new_pod "$cni" || return 1
    for i in 1 2 3 4 5; do
        ms_=$(add_del_ms "pipe-base-$i" "$cni") || return 1
        add_base+=("$ms_")
        ms_=$(ms mwl pod list) || { log "pod list failed"; return 1; }
        list_base+=("$ms_")
        ms_=$(ms mwl status) || { log "status failed"; return 1; }
        st_base+=("$ms_")
    done
    rss0=$(rss_kib "$LOADER_PID")
    rm -f "$started"
    pipeliner 60 "$(netns_path "$n")" "$started" >"$WORK/pipeliner.json" 2>"$WORK/pipeliner.err" &
    pid=$!
    BG_PIDS+=("$pid")
    for ((i = 0; i < 100; i++)); do [ -e "$started" ] && break; sleep 0.1; done
    [ -e "$started" ] || { log "the pipelining client did not get 64 KiB out in 10 s:"; show "$WORK/pipeliner.err"; rc=1; }
    # While the loader serves it: others' requests, and the loader's memory.
    rss_max=$rss0
    for i in 1 2 3 4 5; do
        ms_=$(add_del_ms "pipe-busy-$i" "$cni") || { log "CNI ADD $i while the client pipelines failed"; rc=1; break; }
        add_busy+=("$ms_")
        ms_=$(ms mwl pod list) || { log "pod list failed while the client pipelines"; rc=1; break; }
        list_busy+=("$ms_")
        ms_=$(ms mwl status) || { log "status failed while the client pipelines"; rc=1; break; }
        st_busy+=("$ms_")
        rss=$(rss_kib "$LOADER_PID")
        [ "${rss:-0}" -gt "$rss_max" ] && rss_max=$rss
    done
    while alive "$pid"; do
        rss=$(rss_kib "$LOADER_PID")
        [ "${rss:-0}" -gt "$rss_max" ] && rss_max=$rss
        sleep 0.5
    done
    wait "$pid"
    forget_pid "$pid"
    result=$(cat "$WORK/pipeliner.json")
    log "pipelining client: $result"
    log "ms, before / while it pipelines: CNI ADD ${add_base[*]} / ${add_busy[*]}; pod list ${list_base[*]} / ${list_busy[*]}; status ${st_base[*]} / ${st_busy[*]}"
    # Prompt: each call while it pipelines within twice the slowest of the
    # same calls before it plus 1 s. What this guards against is starvation:
    # a turn that comes after the pipeliner's requests, which take tens of ms
    # each (a tc attach or detach), seconds in all; a busy machine's jitter
    # (two vCPUs shared with other suites) is tens to hundreds of ms.
    limit=$(( 2 * $(printf '%s\n' "${add_base[@]}" | sort -n | tail -n 1) + 1000 ))
    for ms_ in "${add_busy[@]}"; do [ "$ms_" -le "$limit" ] || { log "a CNI ADD took $ms_ ms while the client pipelined (limit $limit)"; rc=1; }; done
    [ "${#add_busy[@]}" = 5 ] || rc=1
    limit=$(( 2 * $(printf '%s\n' "${list_base[@]}" | sort -n | tail -n 1) + 1000 ))
    for ms_ in "${list_busy[@]}"; do [ "$ms_" -le "$limit" ] || { log "pod list took $ms_ ms while the client pipelined (limit $limit)"; rc=1; }; done
    limit=$(( 2 * $(printf '%s\n' "${st_base[@]}" | sort -n | tail -n 1) + 1000 ))
    for ms_ in "${st_busy[@]}"; do [ "$ms_" -le "$limit" ] || { log "status took $ms_ ms while the client pipelined (limit $limit)"; rc=1; }; done
    # Bounded: the loader reads a request only once it has written the
    # previous answer, so what the client sends waits in socket buffers
    # (the kernel's, a few hundred KiB); 16 MiB leaves room for the threads
    # of the CNI calls above.
    log "loader memory (VmRSS): $rss0 KiB before, at most $rss_max KiB while the client pipelined"
    [ $((rss_max - rss0)) -le 16384 ] || { log "the loader grew by $(((rss_max - rss0) / 1024)) MiB"; rc=1; }
    # Dropped on its own: within the 30 s write deadline (and some slack
    # for the time it was being served) of the loader's.
    dropped=$(jq -r .dropped_after <<<"$result" 2>/dev/null)
    if [ -z "$dropped" ] || [ "$dropped" = null ]; then
        log "the loader did not drop the pipelining client within 60 s"
        rc=1
    else
        log "the loader dropped the pipelining client after ${dropped%.*} s"
    fi
    mwl pod del --id pipeliner >/dev/null 2>&1
    ip netns del "$(pod "$n")"
    ip netns del "$(pod "$cni")"
    return "$rc"
}

# gave_up_add HOW ID NETNS EXTRA: an ADD of ID in NETNS (EXTRA: more JSON
# members of the pod) straight on the API socket, by a caller that gives up:
# HOW close, it hangs up at once: the request's last byte is its hang-up
# (no newline: the loader has the whole request only at the end of the
# stream, so it finds its caller gone before serving it, whatever the
# timing; with the newline sent, a loader quicker than the close served the
# ADD first, and one that failed was answered with no log line to wait for);
# shut-rd, it stops reading before it sends (so the ADD is served, and its
# answer cannot be written: EPIPE, whatever the timing) and hangs up 5 s
# later.
gave_up_add() {
    python3 - "$SOCK" "$1" "{\"container_id\": \"$2\", \"netns\": \"$3\", $4}" <<'PY'
import json, socket, sys, time
c = socket.socket(socket.AF_UNIX)
c.connect(sys.argv[1])
req = {"version": 1, "op": "add_pod", "pod": json.loads(sys.argv[3])}
if sys.argv[2] == "shut-rd":
    c.shutdown(socket.SHUT_RD)
c.sendall((json.dumps(req) + ("\n" if sys.argv[2] == "shut-rd" else "")).encode())
if sys.argv[2] == "shut-rd":
    time.sleep(5)
c.close()
PY
}

# wait_loader_log TEXT: up to 20 s until the loader's log has TEXT (the
# outcome of a request, not a guess at how long it takes).
wait_loader_log() {
    local i
    for ((i = 0; i < 200; i++)); do
        grep -qF "$1" "$WORK/loader.log" && return 0
        sleep 0.1
    done
    log "the loader did not log \"$1\" within 20 s; its last lines:"
    show "$WORK/loader.log" 5
    return 1
}

case_concurrent() {
    local i pids=() failed=0 before_state before_pods before_ips leases before_leases
    before_pods=$(map_count mw_pods)
    before_ips=$(map_count mw_pod_ips)
    reaped
    before_state=$(find "$STATE" "$PIN/pods" 2>/dev/null | sort)
    before_leases=$(find "$WORK/ipam" -type f -name '10.242.*' | wc -l)
    for ((i = 100; i < 100 + CONCURRENT; i++)); do new_pod "$i" || return 1; done
    for ((i = 100; i < 100 + CONCURRENT; i++)); do
        rt ADD "ctr-$i" "$i" shop >/dev/null 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || failed=$((failed + 1)); done
    [ "$failed" = 0 ] || { log "$failed of $CONCURRENT concurrent ADDs failed:"; cat "$WORK"/rt/ctr-1??.ADD.err | head -n 5; return 1; }
    [ "$(map_count mw_pods)" = $((before_pods + CONCURRENT)) ] ||
        { log "mw_pods holds $(map_count mw_pods), expected $((before_pods + CONCURRENT))"; return 1; }
    [ "$(pod_list | grep -cE 'ctr-1[0-9]{2}\b')" = "$CONCURRENT" ] || { log "pod list does not show all $CONCURRENT"; return 1; }
    log "$CONCURRENT concurrent ADDs: all meshed"
    pids=()
    failed=0
    for ((i = 100; i < 100 + CONCURRENT; i++)); do
        rt DEL "ctr-$i" "$i" shop >/dev/null 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || failed=$((failed + 1)); done
    [ "$failed" = 0 ] || { log "$failed of $CONCURRENT concurrent DELs failed"; return 1; }
    [ "$(map_count mw_pods)" = "$before_pods" ] || { log "mw_pods holds $(map_count mw_pods) after DEL, expected $before_pods"; return 1; }
    [ "$(map_count mw_pod_ips)" = "$before_ips" ] || { log "mw_pod_ips holds $(map_count mw_pod_ips) after DEL, expected $before_ips"; return 1; }
    if pod_list | grep -qE 'ctr-1[0-9]{2}\b'; then log "pod list still shows some of them"; return 1; fi
    # A pod's pinned directory holds the marker of its clsact qdisc until the
    # loader's reaper thread deletes the qdisc, about 1 s after the DEL:
    # allow 5 s.
    for ((i = 0; i < 50; i++)); do
        [ "$(find "$STATE" "$PIN/pods" 2>/dev/null | sort)" = "$before_state" ] && break
        sleep 0.1
    done
    [ "$(find "$STATE" "$PIN/pods" 2>/dev/null | sort)" = "$before_state" ] ||
        { log "records or pinned links left 5 s after:"; diff <(echo "$before_state") <(find "$STATE" "$PIN/pods" 2>/dev/null | sort) | indent; return 1; }
    leases=$(find "$WORK/ipam" -type f -name '10.242.*' | wc -l)
    [ "$leases" = "$before_leases" ] || { log "host-local leases: $before_leases before, $leases after"; return 1; }
    for ((i = 100; i < 100 + CONCURRENT; i++)); do ip netns del "$(pod "$i")"; done
    log "$CONCURRENT concurrent DELs: maps, records, pinned links and host-local leases back to before"
}

case_gc() {
    local keep rc
    new_pod 5 || return 1
    new_pod 6 || return 1
    if ! rt ADD ctr-5 5 shop || ! rt ADD ctr-6 6 shop; then log "ADD failed:"; show "$RT_ERR"; return 1; fi
    keep=$(jq -c '[{containerID: "ctr-3", ifname: "eth0"}, {containerID: "ctr-5", ifname: "eth0"}]' <<<null)
    cni_direct GC 5 "$(jq -c --argjson k "$keep" '.plugins[2] + {name: .name, cniVersion: "1.1.0", "cni.dev/valid-attachments": $k}' "$CONF_FILE")"
    rc=$?
    [ "$rc" = 0 ] || { log "GC failed: $OUT"; show "$WORK/direct.stderr"; return 1; }
    pod_list | grep -qw ctr-6 && { log "GC left ctr-6"; return 1; }
    if ! pod_list | grep -qw ctr-5 || ! pod_list | grep -qw ctr-3; then
        log "GC removed a valid attachment:"
        pod_list | indent
        return 1
    fi
    rt DEL ctr-6 6 shop || { log "DEL after GC failed"; return 1; }
    log "GC removed ctr-6, kept ctr-3 and ctr-5: $(grep -c 'GC: removed' "$WORK/direct.stderr") removed"
}

case_status() {
    cni_direct STATUS 5 "$(jq -c '.plugins[2] + {name: .name, cniVersion: "1.1.0"}' "$CONF_FILE")" ||
        { log "STATUS with the loader up: $OUT"; return 1; }
    log "STATUS ok with the loader up"
    cni_direct VERSION 5 '{"cniVersion": "0.4.0"}' || { log "VERSION failed: $OUT"; return 1; }
    jq -e '.cniVersion == "0.4.0" and (.supportedVersions | index("1.1.0"))' <<<"$OUT" >/dev/null ||
        { log "VERSION does not answer in the request's version: $OUT"; return 1; }
    log "VERSION: $OUT"
}

case_loader_down() {
    local open_conf="$WORK/open.conflist" code rc=0 conf=$CONF_FILE
    stop_loader
    log "meshwire-loader stopped"
    new_pod 7 || return 1
    # failPolicy closed (the default): the pod is not started.
    if rt ADD ctr-7 7 shop; then log "ADD succeeded with the loader down (fail closed)"; return 1; fi
    code=$(jq -r .code "$RT_ERR")
    if [ "$code" != 11 ] || ! jq -r .msg "$RT_ERR" | grep -q 'failPolicy "closed"'; then
        log "fail closed: expected code 11 naming failPolicy, got $(cat "$RT_ERR")"
        rc=1
    else
        log "fail closed: code 11: $(jq -r .msg "$RT_ERR" | cut -c1-120)..."
    fi
    # The runtime tears the failed sandbox down: DEL succeeds with the loader down.
    rt DEL ctr-7 7 shop || { log "DEL with the loader down failed"; show "$RT_ERR"; rc=1; }
    grep -q succeeding "$WORK/rt/ctr-7.stderr" || { log "DEL gave no note"; rc=1; }
    # failPolicy open: the pod starts, un-meshed, with a note.
    jq '.plugins[2].failPolicy = "open"' "$conf" >"$open_conf"
    CONF_FILE=$open_conf
    if rt ADD ctr-7 7 shop && grep -q UN-MESHED "$WORK/rt/ctr-7.stderr"; then
        log "fail open: ADD succeeded: $(grep UN-MESHED "$WORK/rt/ctr-7.stderr" | head -n 1 | cut -c1-120)..."
        client "$(pod 7)" "pod7 (un-meshed) -> A" --connect "$ADDR_A" --count 5 --parallel 5 \
            --expect-direct --expect-server A || rc=1
    else
        log "fail open: ADD failed or gave no note:"
        show "$RT_ERR"
        rc=1
    fi
    rt DEL ctr-7 7 shop || rc=1
    CONF_FILE=$conf
    cni_direct STATUS 5 "$(jq -c '.plugins[2] + {name: .name, cniVersion: "1.1.0"}' "$CONF_FILE")"
    code=$(jq -r .code <<<"$OUT")
    [ "$code" = 50 ] || { log "STATUS with the loader down: expected 50, got $OUT"; rc=1; }
    start_loader || return 1
    log "meshwire-loader restarted"
    return "$rc"
}

case_uninstall() {
    mwl cni uninstall --bin-dir "$CNI_BIN" --conf-dir "$CONF_DIR" >"$WORK/uninstall.log" 2>&1 ||
        { log "cni uninstall failed:"; show "$WORK/uninstall.log"; return 1; }
    cmp "$WORK/10-pods.conflist.orig" "$CONF_DIR/10-pods.conflist" || { log "the conflist is not restored byte for byte"; return 1; }
    [ ! -e "$CNI_BIN/meshwire-cni" ] || { log "meshwire-cni is still in $CNI_BIN"; return 1; }
    [ "$(find "$CONF_DIR" -mindepth 1 | wc -l)" = 1 ] || { log "left in $CONF_DIR: $(find "$CONF_DIR" -mindepth 1)"; return 1; }
    log "conflist restored byte for byte, binary and backup removed"
}

suite_traps

# ---------------------------------------------------------------------------
# Main

suite_args LOADER CNI MWTEST -- "$@"

echo "meshwire CNI e2e: run prefix $P"
cni_preflight || exit 1
echo "--- setup"
setup || { fail "setup"; exit 1; }
start_loader || { fail "setup: meshwire-loader"; exit 1; }
log "work dir $WORK, cgroup $CG, loader PID $LOADER_PID"

run_case "1 cni install chains meshwire-cni after bridge and tuning, idempotently" case_install
[ -n "${CONF_FILE:-}" ] || { fail "no meshwire-cni chained (case 1): the other cases need it"; exit 1; }
run_case "2 ADD through the chain: prevResult passed through, pod meshed, traffic via its sidecar" case_add_and_traffic
run_case "3 CHECK through the chain" case_check
run_case "4 a pod in an excluded namespace is not meshed" case_excluded_namespace
run_case "5 per-pod exclusions and acceleration from runtimeConfig" case_per_pod_exclusion
run_case "6 CNI errors: each code, and nothing changed" case_errors
run_case "7 DEL: nothing of the pod left; DEL is idempotent" case_del
run_case "7b container IDs of 251 and 256 characters are added and deleted; DEL of an unknown longer one succeeds" case_long_ids
run_case "8b 1000 idle API connections: CNI ADD within 2x of its latency without them (timed in turns); an ADD whose caller hung up leaves nothing, one whose answer could not be written is taken back (a new pod removed, a replaced one's settings restored)" \
    case_idle_clients
run_case "8p a client that pipelines requests and never reads: CNI ADD, pod list and status stay prompt, the loader's memory bounded, the client dropped on its own" \
    case_pipelining_client
run_case "8 $CONCURRENT concurrent ADDs, then DELs: nothing leaked" case_concurrent
run_case "9 GC deletes what is not in cni.dev/valid-attachments" case_gc
run_case "10 STATUS and VERSION" case_status
run_case "11 pod annotations decide which pods have a sidecar (Istio's mark, meshwire.io/mesh, opt-outs)" case_annotations_decide
run_case "12 exclusions and include lists from pod annotations take effect" case_annotation_settings
run_case "13 a malformed annotation refuses the pod (code 7) and registers nothing" case_annotation_malformed
run_case "13d DNS capture from the network's dnsCapture and the pod's meshwire.io/dns-capture reaches the record and mw_pods, the annotation first; invalid values refused (code 7), nothing registered" \
    case_dns_capture_settings
run_case "14 a pod on two networks: both addresses intercepted, CHECK and GC per attachment, DEL of one keeps the other; records and links of the previous layout adopted" case_two_networks
run_case "15 loader down: fail closed, fail open, DEL, STATUS" case_loader_down
run_case "16 cni uninstall restores the configuration" case_uninstall
suite_end
