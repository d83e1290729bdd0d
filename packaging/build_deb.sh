#!/usr/bin/env bash
# Assembles meshwire_<version>_amd64.deb with Debian's own tools (dpkg-deb
# --root-owner-group, dpkg-shlibdeps, help2man). Run by //packaging:deb
# (packaging/deb.bzl); usable by hand too:
#
#   build_deb.sh OUT_DIR CARGO_TOML DEFAULT_CONFIG DEBIAN_DIR LOADER [CNI]
#
# The version is the Cargo workspace's ([workspace.package] version in the
# root Cargo.toml), the one place meshwire is versioned; the build checks that
# the loader reports the same. Without CNI the package has no
# /opt/cni/bin/meshwire-cni (//packaging:deb_test fails on that).
# SOURCE_DATE_EPOCH, if set, dates the changelog, man page and file mtimes;
# otherwise a fixed date is used so that rebuilds are byte-identical.
set -euo pipefail

die() {
    echo "build_deb.sh: $*" >&2
    exit 1
}

[[ $# -ge 5 && $# -le 6 ]] || die "usage: build_deb.sh OUT_DIR CARGO_TOML DEFAULT_CONFIG DEBIAN_DIR LOADER [CNI]"
out_dir=$1 cargo_toml=$2 default_config=$3 debian=$4 loader=$5 cni=${6:-}

for tool in dpkg-deb dpkg-shlibdeps help2man strip gzip; do
    command -v "$tool" >/dev/null || die "$tool not found (tools/setup.sh installs dpkg-dev, help2man, binutils)"
done

# --- Version: [workspace.package] version in the root Cargo.toml.
version=$(awk '
    /^\[/ { in_pkg = ($0 ~ /^\[workspace\.package\][[:space:]]*$/) ; next }
    in_pkg && /^[[:space:]]*version[[:space:]]*=/ {
        sub(/^[^=]*=[[:space:]]*"/, ""); sub(/".*$/, ""); print; exit
    }' "$cargo_toml")
[[ -n $version ]] || die "no version in [workspace.package] of $cargo_toml"
# Debian's version syntax for a native package: no '-', starts with a digit.
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "Cargo version '$version' is not a valid Debian native version"

reported=$("$loader" --version 2>&1) || die "'$loader --version' failed: $reported"
[[ $reported == "meshwire-loader $version" ]] ||
    die "the loader reports '$reported' but $cargo_toml says $version: is loader/Cargo.toml's version the workspace's?"

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1795651200} # 2026-11-26 00:00:00 UTC
export LC_ALL=C.UTF-8 TZ=UTC
umask 022

stage=$(mktemp -d "${TMPDIR:-/tmp}/meshwire-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
mkdir -p "$root"

# --- Files.
# Binaries stripped as dh_strip does (Debian policy 10.1: no debugging symbols).
install_binary() {
    install -D -m 0755 "$1" "$root/$2"
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/$2"
}
install_binary "$loader" usr/bin/meshwire-loader
if [[ -n $cni ]]; then
    install_binary "$cni" opt/cni/bin/meshwire-cni
fi

{
    echo "# /etc/meshwire/config.toml: meshwire-loader's configuration on this node; the"
    echo "# systemd unit (meshwire-loader.service) passes it with --config. Installed by"
    echo "# the meshwire package from the loader's defaults (config/default.toml); a dpkg"
    echo "# conffile: upgrades keep your changes. Keys left out keep their default."
    echo "#"
    cat "$default_config"
} >"$stage/config.toml"
install -D -m 0644 "$stage/config.toml" "$root/etc/meshwire/config.toml"

install -D -m 0644 "$debian/meshwire-loader.service" "$root/lib/systemd/system/meshwire-loader.service"

doc=$root/usr/share/doc/meshwire
install -D -m 0644 "$debian/copyright" "$doc/copyright"
maintainer=$(sed -n 's/^Maintainer: //p' "$debian/control.in")
[[ -n $maintainer ]] || die "no Maintainer in $debian/control.in"
date_r=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
sed -e "s|@VERSION@|$version|g" -e "s|@MAINTAINER@|$maintainer|g" -e "s|@DATE@|$date_r|g" \
    "$debian/changelog.in" | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

install -D -m 0644 "$debian/lintian-overrides" "$root/usr/share/lintian/overrides/meshwire"

# Man page from the loader's own --help and --version.
mkdir -p "$root/usr/share/man/man1"
help2man --no-info --no-discard-stderr --section=1 --source="meshwire $version" \
    --name="meshwire node daemon: steers meshed pods' TCP traffic into their sidecar with eBPF" \
    "$root/usr/bin/meshwire-loader" | gzip -9n >"$root/usr/share/man/man1/meshwire-loader.1.gz"
chmod 0644 "$root/usr/share/man/man1/meshwire-loader.1.gz"

# --- Control area.
ctrl=$root/DEBIAN
mkdir -p "$ctrl"
for script in postinst prerm postrm; do
    install -m 0755 "$debian/$script" "$ctrl/$script"
done
install -m 0644 "$debian/conffiles" "$ctrl/conffiles"

# Shared-library dependencies, as dh_shlibdeps computes them (dpkg-shlibdeps
# wants a debian/control to read; it only needs the package's name there).
mkdir -p "$stage/src/debian"
printf 'Source: meshwire\n\nPackage: meshwire\nArchitecture: amd64\n' >"$stage/src/debian/control"
binaries=("$root/usr/bin/meshwire-loader")
[[ -z $cni ]] || binaries+=("$root/opt/cni/bin/meshwire-cni")
shlibs=$(cd "$stage/src" && dpkg-shlibdeps -O "${binaries[@]}" 2>"$stage/shlibdeps.err") ||
    die "dpkg-shlibdeps failed: $(cat "$stage/shlibdeps.err")"
depends=${shlibs#shlibs:Depends=}
[[ $depends != "$shlibs" && -n $depends ]] || die "dpkg-shlibdeps printed '$shlibs'"

(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$ctrl/md5sums"
chmod 0644 "$ctrl/md5sums"

installed_size=$(du -s -k --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|g" -e "s|@INSTALLED_SIZE@|$installed_size|g" -e "s|@DEPENDS@|$depends|g" \
    "$debian/control.in" >"$ctrl/control"
chmod 0644 "$ctrl/control"
! grep -q "@[A-Z_]*@" "$ctrl/control" || die "unsubstituted field in control: $(grep "@[A-Z_]*@" "$ctrl/control")"

# --- Build.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out_dir"
deb=$out_dir/meshwire_${version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "built $deb" >&2
