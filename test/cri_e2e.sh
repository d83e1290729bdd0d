#!/bin/bash
# //test:cri_e2e: a Kubernetes node as kubelet drives it, without kubelet.
#
#   cri_e2e.sh LOADER IMAGE PAUSE_IMAGE POD_IMAGE CRI_PY DAEMONSET_YAML CONFIGMAP_YAML
#
# Debian's containerd and runc, started here on a node of the test's own (a
# mount and network namespace: test/containerd_lib.sh) with root, state,
# socket, CNI bin and conf dirs under the work dir, are driven through the CRI
# gRPC API by test/cri/cri.py, a client of the project's own (its .proto is
# compiled into the work dir). Images are built by Bazel and imported with
# `ctr images import`: meshwire's (//packaging:image), the sandbox image
# (//test/cri:pause_image) and the test pods' (//test/cri:pod_image: mwtest
# and busybox).
#
# The node's network is bridge + host-local (Debian's containernetworking-
# plugins). meshwire's DaemonSet pod comes first, from deploy/*.yaml as
# written (command, args, env, securityContext, mounts, hooks, probe), its
# host paths remapped to the test's: /sys/fs/bpf -> a private bpffs,
# /sys/fs/cgroup -> the test's cgroup (so the loader's cgroup2 "root" is
# that cgroup: it never attaches to the machine's), /opt/cni/bin and
# /etc/cni/net.d -> the test's CNI dirs; /run/meshwire and /var/run/netns are
# the node's own (tmpfs of the node's mount namespace). Its postStart hook
# chains meshwire-cni into the test's CNI conf dir. Then pods, each in the
# test's cgroup (linux.cgroup_parent), each with a sidecar (mwtest, UID 1500)
# and an app (mwtest server) container. Which pods are meshed, and how, is
# what their annotations say (docs/annotations.md): containerd hands them to
# meshwire-cni, which `cni install` declared io.kubernetes.cri.pod-annotations
# for; the pods with a sidecar carry Istio's sidecar.istio.io/status.
#
# Each case prints PASS or FAIL; the EXIT trap stops and removes everything
# (pods, containerd, shims, containers, the node's namespaces and mounts,
# cgroups v1 and v2, the work dir), checks that nothing is left, and prints
# "N passed, N failed". Needs root.

# shellcheck disable=SC2317 # functions run from cases or the EXIT trap
P="mwk$$"
SUBNET=10.243.0.0/16
REF_PLUGINS=/usr/lib/cni
POD_IMAGE=docker.io/library/mwtest-pod:1
MESHED_NS=shop
# Annotations a pod with a sidecar carries (Istio's injector's).
SIDECAR_ANN='sidecar.istio.io/status={"containers":["sidecar"]}'

here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source=test/suite_lib.sh
. "$here/suite_lib.sh" || exit 1
# shellcheck source=test/containerd_lib.sh
. "$here/containerd_lib.sh" || exit 1

: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
PYTHON=${MESHWIRE_VENV:-$HOME/.cache/meshwire/venv}/bin/python

CGREL=""
DS_POD=""
DS_CTR=""
DS_ARGS=()

# ---------------------------------------------------------------------------
# Helpers

cri() { "$PYTHON" "$CRI_PY" --endpoint "$CTRD_SOCK" --gen "$WORK/crigen" "$@"; }
pods_opts() { echo --cgroup-parent "$CGREL/pods" --log-dir "$WORK/logs"; }

pod_listed() { mwl pod list 2>/dev/null | grep -qF "$1"; }

# The DaemonSet from the manifests, its host paths remapped to the test's.
ds_args() {
    DS_ARGS=(--manifest "$DS_YAML" --manifest "$CM_YAML"
        --remap "/sys/fs/bpf=$BPFFS" --remap "/sys/fs/cgroup=$CG"
        --remap "/opt/cni/bin=$CNI_BIN" --remap "/etc/cni/net.d=$CNI_CONF"
        --node-path /run/meshwire --node-path /var/run/netns --volume-dir "$WORK/volumes")
}

# ds_start [ATTEMPT]: the DaemonSet's pod (a new sandbox, or a new container
# in $DS_POD for ATTEMPT > 0), postStart and readiness as kubelet runs them.
ds_start() {
    local attempt=${1:-0} out extra=()
    [ "$attempt" -gt 0 ] && extra=(--pod "$DS_POD" --attempt "$attempt")
    out=$(cri daemonset "${DS_ARGS[@]}" --node "$P" --cgroup-parent "$CGREL/meshwire-system" \
        --log-dir "$WORK/logs/meshwire-system" "${extra[@]}" 2>"$WORK/ds-$attempt.log")
    local rc=$?
    DS_POD=$(jq -r .pod <<<"$out" 2>/dev/null)
    DS_CTR=$(jq -r .container <<<"$out" 2>/dev/null)
    [ -n "$DS_POD" ] && echo "$DS_POD" >>"$WORK/sandboxes"
    show "$WORK/ds-$attempt.log" 12
    [ $rc -eq 0 ] || { log "the DaemonSet's pod did not become ready; loader log:"; show "$WORK/logs/meshwire-system/loader/$attempt.log" 20; }
    return $rc
}

# mesh_pod VAR NAME NAMESPACE [ANNOTATION...]: a pod with sidecar and app;
# VAR_ID, VAR_IP, VAR_APP, VAR_SIDECAR are set.
mesh_pod() {
    local var=$1 name=$2 ns=$3 out a args=()
    shift 3
    for a in "$@"; do args+=(--annotation "$a"); done
    # shellcheck disable=SC2046
    out=$(cri mesh-pod --name "$name" --namespace "$ns" --image "$POD_IMAGE" $(pods_opts) "${args[@]}" 2>"$WORK/pod-$name.err")
    local rc=$?
    [ $rc -eq 0 ] || { log "pod $name: $(cat "$WORK/pod-$name.err")"; return 1; }
    printf -v "${var}_ID" %s "$(jq -r .pod <<<"$out")"
    printf -v "${var}_IP" %s "$(jq -r .ip <<<"$out")"
    printf -v "${var}_APP" %s "$(jq -r .app <<<"$out")"
    printf -v "${var}_SIDECAR" %s "$(jq -r .sidecar <<<"$out")"
    jq -r .pod <<<"$out" >>"$WORK/sandboxes"
    log "pod $ns/$name: $(jq -r '.pod[:12] + " " + .ip' <<<"$out")"
}

# ctr_client APP_CONTAINER DESC MWTEST_CLIENT_ARGS...: mwtest client in the
# app container (ExecSync).
ctr_client() {
    local ctr=$1 desc=$2 out
    shift 2
    out=$(cri exec --timeout 60 --container "$ctr" -- /usr/bin/mwtest client "$@" 2>&1)
    local rc=$?
    if [ $rc -eq 0 ]; then log "$desc: $(tail -n 1 <<<"$out")"; else log "$desc: client exited $rc:"; echo "$out" | indent | tail -n 8; fi
    return $rc
}

meshed_call() { # APP DESC PEER_IP PEER_NAME: outbound through own sidecar, inbound through the peer's
    ctr_client "$1" "$2" --connect "$3:8080" --expect-orig "$3:8080" --expect-inbound-orig "$3:8080" --expect-server "$4"
}

# ---------------------------------------------------------------------------
# Setup

cri_preflight() {
    local ok=0 f
    preflight containerd ctr runc jq bpftool nsenter unshare || ok=1
    for f in bridge host-local loopback; do
        [ -x "$REF_PLUGINS/$f" ] || { fail "preflight: $REF_PLUGINS/$f missing (containernetworking-plugins)"; ok=1; }
    done
    "$PYTHON" -c 'import grpc, grpc_tools, yaml' 2>/dev/null ||
        { fail "preflight: grpcio, grpcio-tools or PyYAML missing in $PYTHON's venv (tools/setup.sh installs them)"; ok=1; }
    return $ok
}

setup() {
    suite_workdir cri || return 1
    # The loader is the DaemonSet's, configured by its ConfigMap: mwl reaches
    # it through the node's /run/meshwire, which is this directory.
    LOADER_DIR=""
    RUN_DIR="$WORK/run-meshwire"
    CG="$CG2/$P"
    CGREL="/$P"
    mkdir "$CG" "$CG/node" || { log "cannot create cgroup $CG"; return 1; }
    CNI_BIN="$WORK/cni-bin"
    CNI_CONF="$WORK/net.d"
    mkdir -p "$CNI_BIN" "$CNI_CONF" "$WORK/ipam" "$WORK/run-meshwire" "$WORK/logs" "$WORK/volumes" || return 1
    : >"$WORK/sandboxes"
    local f
    for f in bridge host-local loopback; do cp "$REF_PLUGINS/$f" "$CNI_BIN/" || return 1; done
    bridge_conflist "$P-pods" "$P-br" "$SUBNET" "$WORK/ipam" >"$CNI_CONF/10-pods.conflist" || return 1
    # The node: containerd, its shims, the bridge, hostNetwork pods.
    node_start "$WORK/node.log" "$CG/node" || return 1
    node_share "$BPFFS" || { log "cannot make $BPFFS shared on the node"; return 1; }
    on_node sh -c "mkdir -p /run/meshwire && mount --bind '$WORK/run-meshwire' /run/meshwire" ||
        { log "cannot mount /run/meshwire on the node"; return 1; }
    containerd_config "$WORK/containerd" "$(containerd_cri_config "$CNI_BIN" "$CNI_CONF")" || return 1
    containerd_start || return 1
    containerd_import "$WORK/import.log" "$IMAGE" "$PAUSE_TAR" "$POD_TAR" || return 1
    cri gen || return 1
    ds_args
    log "$(cri version) on the node; images: $(ctrd_ctr -n k8s.io images ls -q | grep -v sha256 | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------
# Cases

case_daemonset() {
    ds_start 0 || return 1
    local ok=0 progs_cg progs_root
    jq -e --arg p meshwire-cni '.plugins | map(.type) | index($p)' "$CNI_CONF/10-pods.conflist" >/dev/null ||
        { log "meshwire-cni is not chained into $CNI_CONF/10-pods.conflist:"; show "$CNI_CONF/10-pods.conflist"; ok=1; }
    [ -x "$CNI_BIN/meshwire-cni" ] || { log "no $CNI_BIN/meshwire-cni"; ok=1; }
    # The loader's cgroup2 root is the test's cgroup: the programs are there,
    # and none of theirs on the machine's root.
    progs_cg=$(bpftool cgroup show "$CG" 2>/dev/null | awk 'NR > 1 { print $1 }' | sort)
    progs_root=$(bpftool cgroup show "$CG2" 2>/dev/null | awk 'NR > 1 { print $1 }' | sort)
    [ -n "$progs_cg" ] || { log "no program attached to the test's cgroup $CG"; ok=1; }
    if [ -n "$progs_cg" ] && [ -n "$(comm -12 <(echo "$progs_cg") <(echo "$progs_root"))" ]; then
        log "a program of the loader's is attached to the machine's root cgroup $CG2"
        ok=1
    fi
    log "attached to $CG: $(bpftool cgroup show "$CG" | awk 'NR > 1 { print $2 }' | sort -u | tr '\n' ' ')"
    return $ok
}

case_meshed() {
    mesh_pod A a "$MESHED_NS" "$SIDECAR_ANN" && mesh_pod B b "$MESHED_NS" "$SIDECAR_ANN" || return 1
    pod_listed "$A_ID" && pod_listed "$B_ID" || { log "the loader does not list both pods:"; mwl pod list 2>&1 | indent; return 1; }
    local pid uid
    pid=$(cri cstatus "$A_SIDECAR" | jq -r .pid)
    uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    [ "$uid" = 1500 ] || { log "a's sidecar runs as uid '$uid', not 1500"; return 1; }
    meshed_call "$A_APP" "a -> b:8080" "$B_IP" b && meshed_call "$B_APP" "b -> a:8080" "$A_IP" a
}

case_excluded_namespace() {
    # kube-system is excluded by the DaemonSet's plugin config.
    mesh_pod K k kube-system "$SIDECAR_ANN" || return 1
    ! pod_listed "$K_ID" || { log "the loader lists kube-system's pod"; return 1; }
    # Its app reaches b without its own sidecar, through b's inbound one.
    ctr_client "$K_APP" "kube-system/k -> b:8080" --connect "$B_IP:8080" --expect-inbound-orig "$B_IP:8080" --expect-server b
}

case_no_annotation() {
    # Same namespace as a and b, no annotation: no sidecar, so not meshed.
    mesh_pod N n "$MESHED_NS" || return 1
    ! pod_listed "$N_ID" || { log "the loader lists n, which has no sidecar annotation"; return 1; }
    ctr_client "$N_APP" "shop/n -> b:8080" --connect "$B_IP:8080" --expect-inbound-orig "$B_IP:8080" --expect-server b
}

case_opt_out() {
    local ok=0
    mesh_pod O1 o1 "$MESHED_NS" "$SIDECAR_ANN" "sidecar.istio.io/inject=false" || return 1
    mesh_pod O2 o2 "$MESHED_NS" "$SIDECAR_ANN" "meshwire.io/mesh=false" || return 1
    pod_listed "$O1_ID" && { log "o1 (sidecar.istio.io/inject: false) is meshed"; ok=1; }
    pod_listed "$O2_ID" && { log "o2 (meshwire.io/mesh: false) is meshed"; ok=1; }
    ctr_client "$O1_APP" "o1 -> b:8080" --connect "$B_IP:8080" --expect-inbound-orig "$B_IP:8080" --expect-server b || ok=1
    return $ok
}

case_exclude() {
    local ok=0
    mesh_pod XP xp "$MESHED_NS" "$SIDECAR_ANN" "traffic.sidecar.istio.io/excludeOutboundPorts=8080" || return 1
    mesh_pod XR xr "$MESHED_NS" "$SIDECAR_ANN" "meshwire.io/exclude-outbound-cidrs=$B_IP/32" || return 1
    mesh_pod XI xi "$MESHED_NS" "$SIDECAR_ANN" "traffic.sidecar.istio.io/excludeInboundPorts=8080" || return 1
    pod_listed "$XP_ID" && pod_listed "$XR_ID" && pod_listed "$XI_ID" || { log "xp, xr, xi are not all meshed"; return 1; }
    # Excluded outbound: the app reaches b directly (b's inbound sidecar still takes it).
    ctr_client "$XP_APP" "xp (port 8080 excluded) -> b:8080" --connect "$B_IP:8080" --expect-inbound-orig "$B_IP:8080" --expect-server b || ok=1
    ctr_client "$XR_APP" "xr ($B_IP/32 excluded) -> b:8080" --connect "$B_IP:8080" --expect-inbound-orig "$B_IP:8080" --expect-server b || ok=1
    # ... and to another address through its sidecar.
    meshed_call "$XR_APP" "xr -> a:8080" "$A_IP" a || ok=1
    # Excluded inbound: a's sidecar reaches xi's app directly.
    ctr_client "$A_APP" "a -> xi:8080 (inbound 8080 excluded)" --connect "$XI_IP:8080" --expect-orig "$XI_IP:8080" --expect-server xi || ok=1
    return $ok
}

case_include() {
    local ok=0
    # Only a's address is steered into the sidecar.
    mesh_pod IR ir "$MESHED_NS" "$SIDECAR_ANN" "traffic.sidecar.istio.io/includeOutboundIPRanges=$A_IP/32" || return 1
    mesh_pod II ii "$MESHED_NS" "$SIDECAR_ANN" "traffic.sidecar.istio.io/includeInboundPorts=" || return 1
    meshed_call "$IR_APP" "ir -> a:8080 (included)" "$A_IP" a || ok=1
    ctr_client "$IR_APP" "ir -> b:8080 (not included)" --connect "$B_IP:8080" --expect-inbound-orig "$B_IP:8080" --expect-server b || ok=1
    # No inbound port included: a's sidecar reaches ii's app directly.
    ctr_client "$A_APP" "a -> ii:8080 (no inbound port included)" --connect "$II_IP:8080" --expect-orig "$II_IP:8080" --expect-server ii || ok=1
    return $ok
}

case_malformed() {
    if cri run-pod --name bad --namespace "$MESHED_NS" --annotation "$SIDECAR_ANN" \
        --annotation "traffic.sidecar.istio.io/excludeOutboundPorts=8080,postgres" $(pods_opts) >"$WORK/bad.id" 2>"$WORK/bad.err"; then
        cat "$WORK/bad.id" >>"$WORK/sandboxes"
        log "RunPodSandbox succeeded with a malformed annotation"
        return 1
    fi
    log "RunPodSandbox failed: $(cut -c 1-300 "$WORK/bad.err")"
    grep -q 'traffic.sidecar.istio.io/excludeOutboundPorts' "$WORK/bad.err" && grep -q 'postgres' "$WORK/bad.err" ||
        { log "containerd's error does not name the annotation and its value"; return 1; }
}

case_stop_remove() {
    mesh_pod D d "$MESHED_NS" "$SIDECAR_ANN" || return 1
    local pods_before tc_before
    pod_listed "$D_ID" || { log "d not meshed"; return 1; }
    pods_before=$(map_count mw_pods)
    tc_before=$(ls "$PIN/pods" | wc -l)
    cri stop-pod "$D_ID" || return 1
    local ok=0
    pod_listed "$D_ID" && { log "d still listed after StopPodSandbox"; ok=1; }
    ls "$WORK/run-meshwire/pods" 2>/dev/null | grep -qF "$D_ID" && { log "d's record is still there"; ok=1; }
    [ "$(map_count mw_pods)" = $((pods_before - 1)) ] ||
        { log "mw_pods: $pods_before before, $(map_count mw_pods) after"; ok=1; }
    # The pod's pinned directory goes with its clsact qdisc (or, the runtime
    # having deleted the namespace, the qdisc's markers), which the loader's
    # reaper thread deletes about 1 s after the DEL: allow 5 s.
    local w
    for ((w = 0; w < 50; w++)); do
        [ "$(ls "$PIN/pods" | wc -l)" = $((tc_before - 1)) ] && break
        sleep 0.1
    done
    [ "$(ls "$PIN/pods" | wc -l)" = $((tc_before - 1)) ] || { log "pods with tc pins under $PIN/pods: $tc_before before, $(ls "$PIN/pods" | wc -l) 5 s after"; ok=1; }
    cri remove-pod "$D_ID" || ok=1
    return $ok
}

case_containerd_restart() {
    containerd_stop
    containerd_start || return 1
    pod_listed "$A_ID" && pod_listed "$B_ID" || { log "a or b no longer listed"; return 1; }
    meshed_call "$A_APP" "after the restart: a -> b:8080" "$B_IP" b
}

case_loader_stopped() {
    # The loader's container dies (no preStop: a crash or an OOM kill).
    cri stop-container --timeout 10 "$DS_CTR" || return 1
    local ok=0 err
    meshed_call "$A_APP" "loader down: a -> b:8080" "$B_IP" b || ok=1
    if cri run-pod --name f --namespace "$MESHED_NS" --annotation "$SIDECAR_ANN" $(pods_opts) >"$WORK/f.id" 2>"$WORK/f.err"; then
        log "RunPodSandbox succeeded with the loader down"
        cat "$WORK/f.id" >>"$WORK/sandboxes"
        ok=1
    else
        err=$(cat "$WORK/f.err")
        log "RunPodSandbox failed: ${err:0:400}"
        grep -q "meshwire" <<<"$err" || { log "containerd's error does not carry meshwire's message"; ok=1; }
    fi
    return $ok
}

case_loader_adopts() {
    cri remove-container "$DS_CTR" >/dev/null 2>&1
    ds_start 1 || return 1
    pod_listed "$A_ID" && pod_listed "$B_ID" || { log "the new loader did not adopt a and b"; return 1; }
    meshed_call "$A_APP" "new loader: a -> b:8080" "$B_IP" b || return 1
    mesh_pod F f "$MESHED_NS" "$SIDECAR_ANN" || return 1
    meshed_call "$F_APP" "f -> a:8080" "$A_IP" a
}

case_parallel() {
    local before out ids n ok=0 id
    before=$(mwl pod list 2>/dev/null | wc -l)
    # shellcheck disable=SC2046
    out=$(cri pods create --count 20 --prefix par --namespace "$MESHED_NS" --image "$POD_IMAGE" \
        --annotation "$SIDECAR_ANN" $(pods_opts) 2>"$WORK/par.err")
    ids=$(jq -r .pod <<<"$out")
    echo "$ids" >>"$WORK/sandboxes"
    n=$(grep -c . <<<"$ids")
    [ "$n" = 20 ] || { log "$n of 20 pods created:"; show "$WORK/par.err" 10; ok=1; }
    for id in $ids; do pod_listed "$id" || { log "pod $id not meshed"; ok=1; }; done
    # One of them talks through both sidecars.
    meshed_call "$(jq -r .app <<<"$out" | head -n 1)" "par-0 -> b:8080" "$B_IP" b || ok=1
    # shellcheck disable=SC2046,SC2086
    cri pods remove --namespace "$MESHED_NS" --image "$POD_IMAGE" $(pods_opts) --ids "$(echo $ids | tr ' ' ,)" >/dev/null 2>"$WORK/par-rm.err" ||
        { log "removing them:"; show "$WORK/par-rm.err" 10; ok=1; }
    for id in $ids; do
        pod_listed "$id" && { log "pod $id still listed after RemovePodSandbox"; ok=1; }
        ls "$WORK/run-meshwire/pods" 2>/dev/null | grep -qF "$id" && { log "pod $id's record left"; ok=1; }
    done
    [ "$(mwl pod list 2>/dev/null | wc -l)" = "$before" ] || { log "pod list: $before lines before, $(mwl pod list | wc -l) after"; ok=1; }
    [ $ok = 0 ] && log "20 pods meshed at once, all forgotten again"
    return $ok
}

case_prestop() {
    # Graceful end of the DaemonSet's pod: preStop takes meshwire-cni out.
    cri prestop "${DS_ARGS[@]}" --container "$DS_CTR" >"$WORK/prestop.log" 2>&1 ||
        { log "preStop failed:"; show "$WORK/prestop.log"; return 1; }
    jq -e '.plugins | map(.type) | index("meshwire-cni") | not' "$CNI_CONF/10-pods.conflist" >/dev/null &&
        [ ! -e "$CNI_BIN/meshwire-cni" ] || { log "meshwire-cni still chained or installed"; return 1; }
    cri stop-container "$DS_CTR" && cri stop-pod "$DS_POD" && cri remove-pod "$DS_POD"
}

# ---------------------------------------------------------------------------
# Teardown

teardown() {
    [ -n "$TORN_DOWN" ] && return 0
    TORN_DOWN=1
    local id d c
    if [ -n "$CTRD_PID" ] && [ -s "$WORK/sandboxes" ]; then
        for id in $(sort -u "$WORK/sandboxes"); do
            timeout 60 "$PYTHON" "$CRI_PY" --endpoint "$CTRD_SOCK" --gen "$WORK/crigen" stop-pod "$id" >/dev/null 2>&1
            timeout 60 "$PYTHON" "$CRI_PY" --endpoint "$CTRD_SOCK" --gen "$WORK/crigen" remove-pod "$id" >/dev/null 2>&1
        done
    fi
    if [ -n "$CGREL" ]; then containerd_node_teardown "$CG" "$P"; else containerd_stop; node_stop; fi
    [ -n "$WORK" ] && [ -d "$WORK/logs" ] && [ -n "${TEST_UNDECLARED_OUTPUTS_DIR:-}" ] &&
        cp -r "$WORK/logs" "$WORK/containerd/containerd.log" "$TEST_UNDECLARED_OUTPUTS_DIR/" 2>/dev/null
    suite_remove_workdir
}

leftovers() {
    suite_leftovers
    local c
    for c in /sys/fs/cgroup/*/; do [ -d "$c$P" ] && echo "cgroup $c$P"; done
    [ -n "$NODE_PID" ] && alive "$NODE_PID" && echo "node process $NODE_PID"
    [ -e /run/containerd/s ] && [ -n "$(find /run/containerd/s -newer "$0" 2>/dev/null)" ] && echo "shim sockets on the machine's /run/containerd/s"
    grep -rls "$P-pods" /var/lib/cni 2>/dev/null | sed 's/^/cni cache /'
}

suite_traps
suite_args LOADER IMAGE PAUSE_TAR POD_TAR CRI_PY DS_YAML CM_YAML -- "$@"
cri_preflight || exit 1
if ! setup; then
    fail "setup (containerd, images, the node)"
    show "$WORK/containerd/containerd.log" 20
    exit 1
fi

run_case "the DaemonSet's pod from deploy/*.yaml: loader ready, meshwire-cni chained, programs on the test's cgroup only" case_daemonset
run_case "pods with a sidecar are meshed: app -> own sidecar (uid 1500) -> peer's inbound sidecar, SO_ORIGINAL_DST right" case_meshed
run_case "a pod of an excluded namespace (kube-system) is not meshed; it reaches a meshed pod through that pod's inbound sidecar" case_excluded_namespace
run_case "a pod without a sidecar annotation in the same namespace is not meshed" case_no_annotation
run_case "opt-outs win over the sidecar annotation (sidecar.istio.io/inject, meshwire.io/mesh: false)" case_opt_out
run_case "exclude annotations take effect: outbound ports, outbound ranges, inbound ports" case_exclude
run_case "include annotations take effect: outbound ranges, inbound ports" case_include
run_case "a malformed annotation fails RunPodSandbox, naming the annotation and the value" case_malformed
run_case "StopPodSandbox/RemovePodSandbox forget the pod: record, mw_pods entry, tc pins" case_stop_remove
run_case "a containerd restart keeps the pods meshed" case_containerd_restart
run_case "the loader's container stopped: pods stay meshed, RunPodSandbox fails closed with meshwire's message" case_loader_stopped
run_case "a new loader container adopts the pods and meshes new ones" case_loader_adopts
run_case "20 pods created and removed in parallel: all meshed, nothing left" case_parallel
run_case "the DaemonSet's preStop takes meshwire-cni out of the CNI conf dir; its pod goes" case_prestop
suite_end
