#!/usr/bin/env bash
# The DaemonSet's image from the .deb (//packaging:image; image_test.sh runs
# it again to check that the build is reproducible):
#
#   build_image.sh OUT.tar DEB_DIR CARGO_TOML OCI_IMAGE_PY
#
# Tagged meshwire:<version>, the Cargo workspace's version, which
# deploy/30-daemonset.yaml names (//deploy:manifests_test checks that). The
# entrypoint and default command are the systemd unit's.
set -euo pipefail
[[ $# -eq 4 ]] || { echo "usage: build_image.sh OUT.tar DEB_DIR CARGO_TOML OCI_IMAGE_PY" >&2; exit 2; }
out=$1 deb_dir=$2 cargo_toml=$3 oci_image=$4
version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$cargo_toml")
[[ -n $version ]] || { echo "build_image.sh: no [workspace.package] version in $cargo_toml" >&2; exit 1; }
deb=$deb_dir/meshwire_${version}_amd64.deb
[[ -f $deb ]] || { echo "build_image.sh: $deb not found" >&2; exit 1; }
exec python3 -B "$oci_image" --out "$out" --name "meshwire:$version" --deb "$deb" \
    --entrypoint '["/usr/bin/meshwire-loader"]' \
    --cmd '["--config", "/etc/meshwire/config.toml", "run"]' \
    --label org.opencontainers.image.title=meshwire \
    --label "org.opencontainers.image.version=$version"
