# A containerd of the test's own, on a "node" of the test's own (sourced by
# packaging/image_test.sh, test/cri_e2e.sh and test/containerd_node.sh,
# after suite_lib.sh).
#
# The node is a mount and a network namespace held by one process
# (node_start): its host network (containerd's, the CNI bridge's, hostNetwork
# pods') is its own; it sees the machine's files, except that /run and /var/lib are tmpfs of its own there.
# containerd 1.6 puts its shims' sockets under /run/containerd/s whatever its
# configuration says, libcni keeps result caches in /var/lib/cni, and CRI
# makes pods' network namespaces under /var/run/netns: on this node all of
# that is the test's and goes away with the namespace; the machine's /run,
# /var/lib and containerd (if any) are never touched. Mounts made on the node
# do not propagate back to the machine (/ is made rslave first), except where
# a caller makes a directory of its own shared with node_share.
#
# containerd itself gets root, state, socket and plugin dirs under $CTRD
# (containerd_config), runs on the node (containerd_start) and is stopped by
# PID (containerd_stop). Only processes started here are signalled.
# shellcheck shell=bash disable=SC2034 # NODE_PID, CTRD_PID are the caller's

NODE_PID=""
CTRD_PID=""
CTRD=""      # containerd's directory: config, root, state, socket, log
CTRD_SOCK=""

# node_start LOG [CGROUP]: the node's mount namespace, held by a sleep whose
# PID is NODE_PID; in CGROUP (cgroup v2 directory) if given.
node_start() {
    local out=$1 cg=${2:-} i
    # shellcheck disable=SC2016 # expanded by the inner sh
    start_bg "$out" unshare --mount --net --propagation unchanged -- sh -c '
        set -e
        [ -z "$1" ] || echo $$ >"$1/cgroup.procs"
        # Nothing mounted here reaches the machine (rslave), yet mounts are
        # shared within the node, as CRI wants for HostToContainer and
        # Bidirectional volumes (containerd checks the mount holding the
        # host path, "/" for /var/run/netns, which is a symlink).
        mount --make-rslave /
        mount --make-rshared /
        mount -t tmpfs -o mode=0755 node-run /run
        mount -t tmpfs -o mode=0755 node-var-lib /var/lib
        mkdir -p /run/netns /var/lib/cni
        ip link set lo up
        # Pods network namespaces are mounted here after containers that
        # mount it (HostToContainer) started: it must be a shared mount.
        mount --bind /run/netns /run/netns
        mount --make-shared /run/netns
        echo node-ready
        exec sleep infinity' node "$cg"
    NODE_PID=$LAST_PID
    for ((i = 0; i < 50; i++)); do
        grep -q node-ready "$out" && return 0
        alive "$NODE_PID" || break
        sleep 0.1
    done
    echo "  the node's mount namespace did not come up:"
    show "$out"
    return 1
}

# on_node CMD...: runs CMD in the node's mount and network namespaces.
on_node() { nsenter -t "$NODE_PID" -m -n -- "$@"; }

# node_share DIR...: bind-mounts each DIR onto itself on the node and makes it
# shared there (CRI refuses Bidirectional mounts of a source that is not).
node_share() {
    local d
    for d in "$@"; do
        on_node sh -c 'grep -qF " $1 " /proc/self/mountinfo || mount --bind "$1" "$1"; mount --make-shared "$1"' share "$d" || return 1
    done
}

node_stop() {
    [ -n "$NODE_PID" ] || return 0
    stop_pid "$NODE_PID" 2
    forget_pid "$NODE_PID"
    NODE_PID=""
}

# containerd_config DIR [EXTRA_TOML]: $DIR/config.toml with every path of
# containerd's in DIR; EXTRA_TOML is appended (plugin sections).
containerd_config() {
    CTRD=$1
    CTRD_SOCK="$CTRD/containerd.sock"
    mkdir -p "$CTRD/root" "$CTRD/state" "$CTRD/opt" || return 1
    cat >"$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
oom_score = 0

[grpc]
  address = "$CTRD_SOCK"

[ttrpc]
  address = "$CTRD_SOCK.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"
${2:-}
EOF
}

# containerd_cri_config CNI_BIN CNI_CONF: the CRI plugin's section for
# containerd_config, as a node's (kubelet's containerd) with this machine's
# limits: the sandbox image mwtest-pause:1 (//test/cri:pause_image), runc
# with the cgroupfs driver, the CNI chain from CNI_CONF run from CNI_BIN
# (the first configuration only, as kubelet's containerd).
containerd_cri_config() {
    cat <<EOF
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/mwtest-pause:1"
  # No CAP_SYS_RESOURCE here: never ask for a lower oom_score_adj than ours.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$1"
    conf_dir = "$2"
    max_conf_num = 1
EOF
}

# containerd_start: containerd on the node (its log: $CTRD/containerd.log,
# appended to across restarts), ready when its socket answers.
containerd_start() {
    local i
    [ -n "$NODE_PID" ] || { echo "  containerd_start: no node (node_start)"; return 1; }
    echo "--- containerd start $(date +%T)" >>"$CTRD/containerd.log"
    nsenter -t "$NODE_PID" -m -n -- containerd --config "$CTRD/config.toml" >>"$CTRD/containerd.log" 2>&1 &
    CTRD_PID=$!
    BG_PIDS+=("$CTRD_PID")
    for ((i = 0; i < 150; i++)); do
        if [ -S "$CTRD_SOCK" ] && ctr --address "$CTRD_SOCK" version >/dev/null 2>&1; then
            return 0
        fi
        alive "$CTRD_PID" || break
        sleep 0.2
    done
    echo "  containerd did not come up:"
    show "$CTRD/containerd.log" 30
    return 1
}

# containerd_stop: SIGTERM (containerd leaves its shims and containers
# running, as on a node), SIGKILL after 10 s.
containerd_stop() {
    [ -n "$CTRD_PID" ] || return 0
    stop_pid "$CTRD_PID" 10
    forget_pid "$CTRD_PID"
    CTRD_PID=""
}

# ctrd_ctr ARGS...: ctr against the test's containerd.
ctrd_ctr() { ctr --address "$CTRD_SOCK" "$@"; }

# containerd_import LOG TAR...: each image tar (docker-archive or OCI
# layout) into CRI's namespace k8s.io; ctr's output appended to LOG.
containerd_import() {
    local out=$1 f
    shift
    for f in "$@"; do
        ctrd_ctr -n k8s.io images import "$f" >>"$out" 2>&1 ||
            { echo "  ctr images import $f failed:"; show "$out"; return 1; }
    done
}

# remove_cgroup_tree DIR: its cgroups, deepest first, retried for up to 30 s
# while their last processes exit (a killed pod's exit waits for its network
# namespace's teardown).
remove_cgroup_tree() {
    local i
    for ((i = 0; i < 300; i++)); do
        find "$1" -depth -type d -exec rmdir {} + 2>/dev/null
        [ -d "$1" ] || return 0
        sleep 0.1
    done
}

# containerd_node_teardown CG NAME: once the pods are stopped and removed
# through the CRI: containerd stopped, whatever still runs in the cgroup
# tree CG killed (shims, containers, the node's holder: all of it descends
# from processes started here), the node's namespaces released, and the
# cgroups removed: CG's tree and those runc's cgroupfs driver made in the v1
# hierarchies for pods under the cgroup parent /NAME.
containerd_node_teardown() {
    local cg=$1 name=$2 d c
    containerd_stop
    if [ -n "$cg" ] && [ -d "$cg" ]; then
        for d in $(find "$cg" -depth -type d); do empty_cgroup "$d"; done
    fi
    node_stop
    for c in "$cg" /sys/fs/cgroup/*/"$name"; do
        [ -n "$name" ] && [ -d "$c" ] && remove_cgroup_tree "$c"
    done
    return 0
}
