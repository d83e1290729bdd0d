#!/usr/bin/env bash
# //packaging:image_test: the DaemonSet's image is reproducible and both
# runtimes accept it.
#
#   image_test.sh IMAGE.tar BUILD_IMAGE DEB_DIR CARGO_TOML OCI_IMAGE_PY
#
# 1. Built twice more here from the same .deb: the three archives are
#    byte-identical (hence the same config and layer digests).
# 2. The archive names meshwire:<Cargo version>, the tag
#    deploy/30-daemonset.yaml runs, and holds what the .deb installs.
# 3. `ctr images import` into a containerd started here (root, state, socket
#    of its own, on a mount namespace of its own: test/containerd_lib.sh)
#    tags docker.io/library/meshwire:<version> with this config digest and
#    unpacks it.
# 4. `podman load` (storage of its own) gives an image whose ID is that config
#    digest.
# Needs root (containerd, mounts); everything is removed on exit.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C

[[ $# -eq 5 ]] || { echo "usage: image_test.sh IMAGE.tar BUILD_IMAGE DEB_DIR CARGO_TOML OCI_IMAGE_PY" >&2; exit 2; }
image=$(readlink -f "$1") build_image=$2 deb_dir=$3 cargo_toml=$4 oci_image=$5
here=$(dirname "$(readlink -f "$0")")
lib=$here/../test
# shellcheck source=test/suite_lib.sh
. "$lib/suite_lib.sh" || exit 1
# shellcheck source=test/containerd_lib.sh
. "$lib/containerd_lib.sh" || exit 1

work=$(mktemp -d "/tmp/mwimg$$.XXXXXX") || exit 1
cleanup() {
    containerd_stop
    node_stop
    rm -rf "$work"
    [ -e "$work" ] && fail "could not remove $work"
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}
trap 'cleanup; exit $?' EXIT
trap 'echo interrupted; FAILED=$((FAILED + 1)); exit 130' INT TERM

version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$cargo_toml")
ref=docker.io/library/meshwire:$version

# --- 1. reproducible
echo "--- reproducible"
ok=1
for n in 1 2; do
    "$build_image" "$work/rebuild$n.tar" "$deb_dir" "$cargo_toml" "$oci_image" 2>"$work/rebuild$n.log" ||
        { echo "  rebuild $n failed:"; show "$work/rebuild$n.log"; ok=0; }
done
sums=$(sha256sum "$image" "$work/rebuild1.tar" "$work/rebuild2.tar" 2>&1)
echo "$sums" | sed 's/^/  /'
[ "$(echo "$sums" | awk '{ print $1 }' | sort -u | wc -l)" = 1 ] || ok=0
if [ $ok = 1 ]; then pass "three builds from the same inputs are byte-identical"; else fail "the image build is not reproducible"; fi

# --- 2. what it holds
echo "--- contents"
mkdir "$work/x" && tar -xf "$image" -C "$work/x"
manifest=$(cat "$work/x/manifest.json")
config=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0]["Config"].rsplit("/",1)[1])' "$manifest")
tags=$(python3 -c 'import json,sys; print(" ".join(json.loads(sys.argv[1])[0]["RepoTags"]))' "$manifest")
layer=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0]["Layers"][0])' "$manifest")
echo "  tags: $tags, config sha256:$config"
[ "$(sha256sum <"$work/x/blobs/sha256/$config" | cut -d' ' -f1)" = "$config" ] || fail "the config blob's name is not its digest"
dpkg-deb --fsys-tarfile "$deb_dir/meshwire_${version}_amd64.deb" | tar -t | sed 's|^\./||; s|/$||' | grep . | sort >"$work/deb.list"
tar -tzf "$work/x/$layer" | sed 's|/$||' | sort >"$work/layer.list"
missing=$(comm -23 "$work/deb.list" "$work/layer.list")
if [ "$tags" = "meshwire:$version" ] && [ -z "$missing" ] && grep -qx usr/bin/meshwire-loader "$work/layer.list" &&
    grep -qx opt/cni/bin/meshwire-cni "$work/layer.list" && grep -qx lib64/ld-linux-x86-64.so.2 "$work/layer.list"; then
    pass "tagged meshwire:$version, holds every file of the .deb and the loader's libraries"
else
    fail "tags '$tags' (want meshwire:$version); files of the .deb missing: ${missing:-none}"
fi

# --- 3. containerd
echo "--- ctr images import"
if [ "$(id -u)" != 0 ]; then
    fail "ctr images import: needs root (containerd)"
elif ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then
    fail "ctr images import: containerd not installed (Debian package containerd; tools/setup.sh installs it)"
elif node_start "$work/node.log" && containerd_config "$work/containerd" \
    '[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true' &&
    sed -i 's/^version = 2$/version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]/' "$CTRD/config.toml" &&
    containerd_start; then
    out=$(ctrd_ctr -n mwimg images import "$image" 2>&1)
    echo "$out" | sed 's/^/  | /'
    listed=$(ctrd_ctr -n mwimg images ls 2>&1)
    content=$(ctrd_ctr -n mwimg content ls -q 2>&1)
    snaps=$(ctrd_ctr -n mwimg snapshots ls 2>&1 | tail -n +2)
    if grep -q "^$ref " <<<"$listed" && grep -qx "sha256:$config" <<<"$content" && [ -n "$snaps" ]; then
        pass "ctr images import tags $ref with config sha256:$config and unpacks it"
    else
        fail "ctr images import: want $ref with config sha256:$config, unpacked; images:"
        echo "$listed" | indent
        echo "  snapshots: ${snaps:-none}"
    fi
    containerd_stop
else
    fail "ctr images import: could not start a containerd of the test's own (log above)"
fi

# --- 4. podman
echo "--- podman load"
if ! command -v podman >/dev/null; then
    fail "podman load: podman not installed (Debian package podman; tools/setup.sh installs it)"
elif [ -z "$NODE_PID" ] && ! node_start "$work/node.log"; then
    fail "podman load: no mount namespace for podman"
else
    pm=(on_node podman --root "$work/podman/root" --runroot "$work/podman/run" --tmpdir "$work/podman/tmp"
        --storage-driver vfs --cgroup-manager cgroupfs --events-backend none)
    mkdir -p "$work/podman/tmp"
    out=$("${pm[@]}" load -i "$image" 2>&1)
    echo "$out" | sed 's/^/  | /'
    ids=$("${pm[@]}" images --no-trunc --format '{{.ID}} {{.Repository}}:{{.Tag}}' 2>&1)
    echo "  images: $ids"
    if grep -Eq "^(sha256:)?$config .*meshwire:$version\$" <<<"$ids"; then
        pass "podman load gives meshwire:$version with ID sha256:$config"
    else
        fail "podman load: want meshwire:$version with ID $config (podman's answer above)"
    fi
fi
