#!/bin/bash
# A containerd of its own on a node of its own, as one process, for a caller
# that is not a bash suite (//tools/bench --mode runtime): the same node,
# containerd and CRI configuration as //test:cri_e2e's (test/containerd_lib.sh).
#
#   containerd_node.sh WORK CGROUP CGROUP_NAME CNI_BIN CNI_CONF IMAGE_TAR...
#
# WORK: a directory of the caller's (containerd's root, state, socket and
# log go under WORK/containerd, the node's log is WORK/node.log); CGROUP: a
# cgroup v2 directory of the caller's, the node's holder goes into
# CGROUP/node and the teardown kills whatever is left in CGROUP's tree (pods
# are to be given cgroup parents under /CGROUP_NAME); CNI_BIN, CNI_CONF:
# the CNI bin and conf dirs containerd runs the chain from. containerd
# inherits this script's environment, and passes it on to the CNI plugins.
#
# Prints "ready NODE_PID SOCKET" once containerd answers and the images are
# imported, then waits until its stdin reaches end of file (or SIGTERM,
# SIGINT), stops containerd and the node (containerd_node_teardown: the
# caller stops and removes its pods through the CRI first) and exits. On a
# failure it says what failed on stderr, tears down what it made, exits 1.
# Only processes started here are signalled, by PID; the machine's /run,
# /var/lib and containerd are never touched.
# shellcheck disable=SC2034 # P is suite_lib.sh's prefix

here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source=test/suite_lib.sh
. "$here/suite_lib.sh" || exit 1
# shellcheck source=test/containerd_lib.sh
. "$here/containerd_lib.sh" || exit 1

if [ $# -lt 6 ]; then
    echo "usage: $(basename "$0") WORK CGROUP CGROUP_NAME CNI_BIN CNI_CONF IMAGE_TAR..." >&2
    exit 2
fi
work=$1 cg=$2 cg_name=$3 cni_bin=$4 cni_conf=$5
shift 5

done_=""
finish() {
    [ -n "$done_" ] && return
    done_=1
    containerd_node_teardown "$cg" "$cg_name" >&2
}
trap 'finish; exit 1' INT TERM
trap finish EXIT

mkdir -p "$cg/node" || exit 1
node_start "$work/node.log" "$cg/node" >&2 || exit 1
containerd_config "$work/containerd" "$(containerd_cri_config "$cni_bin" "$cni_conf")" || exit 1
containerd_start >&2 || exit 1
containerd_import "$work/import.log" "$@" >&2 || exit 1
echo "ready $NODE_PID $CTRD_SOCK"
# Until the caller closes our stdin (or dies).
while read -r _; do :; done
