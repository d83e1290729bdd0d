#!/usr/bin/env bash
# //packaging:deb_test: checks meshwire_<version>_amd64.deb.
#
#   deb_test.sh DEB_DIR
#
# 1. lintian: no error and no warning (overrides, with their reasons, are in
#    packaging/debian/lintian-overrides).
# 2. The archive: every file, its mode and owner, the control area (conffiles,
#    md5sums, maintainer scripts), the version in the file name.
# 3. A clean Debian root (debootstrap minbase of the host's release with the
#    package's dependencies, built once and cached under
#    $HOME/.cache/meshwire/debootstrap, used through an overlay so the cache
#    stays pristine), into which the package is installed with the host's
#    `dpkg --root` (maintainer scripts run chrooted there):
#    - install with no systemd running: files, modes, conffiles, the unit
#      enabled by deb-systemd-helper, nothing started or reloaded;
#    - with systemd "running" (a /run/systemd/system directory and logging
#      stand-ins for systemctl and deb-systemd-invoke in the root): reinstall
#      and upgrades restart the unit and never stop it; a locally modified
#      conffile survives a reinstall, an upgrade, and an upgrade whose default
#      changed (--force-confold, the new default left as .dpkg-dist);
#    - remove stops the unit and keeps the configuration; purge removes the
#      configuration, /run/meshwire and the pins (a private bpffs mounted in
#      the root), and the root ends as it began.
# Nothing is installed on this machine, nothing is started, no BPF program is
# loaded: the root's processes would be chrooted, and the pins are empty
# directories on a private bpffs. Needs root (mount, chroot).
set -uo pipefail

deb_dir=${1:?usage: deb_test.sh DEB_DIR}
# shellcheck source=test/checks_lib.sh
. "$(dirname "$(readlink -f "$0")")/../test/checks_lib.sh" || exit 1
die() {
    echo "FAIL: $*" >&2
    exit 1
}
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

[[ $(id -u) -eq 0 ]] || die "needs root (mount, chroot, dpkg --root)"
for tool in dpkg dpkg-deb dpkg-query lintian debootstrap mount flock; do
    command -v "$tool" >/dev/null || die "$tool not found (tools/setup.sh installs it)"
done

shopt -s nullglob
debs=("$deb_dir"/meshwire_*_amd64.deb)
shopt -u nullglob
[[ ${#debs[@]} -eq 1 ]] || die "expected one meshwire_*_amd64.deb in $deb_dir, found ${#debs[@]}"
deb=$(readlink -f "${debs[0]}")
version=$(dpkg-deb -f "$deb" Version)
echo "testing $deb (version $version)"
check "file name carries the package's version" [ "$(basename "$deb")" = "meshwire_${version}_amd64.deb" ]

tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/meshwire-deb-test.XXXXXX")
root=$tmp/root
mounted=()
cleanup() {
    local m
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        m=${mounted[i]}
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "warning: could not unmount $m" >&2
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# --- 1. lintian ---------------------------------------------------------------
if lintian --allow-root --fail-on error,warning --display-info "$deb" >"$tmp/lintian.out" 2>&1; then
    ok "lintian: no errors or warnings"
else
    fail "lintian reported errors or warnings"
fi
sed 's/^/  lintian: /' "$tmp/lintian.out"

# --- 2. The archive -----------------------------------------------------------
# "MODE OWNER PATH" of every entry, as dpkg-deb lists it.
dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }' >"$tmp/contents"
expect_entry() { # expect_entry MODE PATH
    if grep -qxF -- "$1 root/root ./$2" "$tmp/contents"; then
        ok "package has $1 root/root /$2"
    else
        fail "package lacks $1 root/root /$2 (has: $(grep -F " ./$2" "$tmp/contents" | head -n 1))"
    fi
}
expect_entry -rwxr-xr-x usr/bin/meshwire-loader
if grep -qF ./opt/cni/bin/meshwire-cni "$tmp/contents"; then
    expect_entry -rwxr-xr-x opt/cni/bin/meshwire-cni
    has_cni=1
else
    fail "package has no /opt/cni/bin/meshwire-cni: //packaging:deb must be given the CNI plugin (cni = \"//cni:cni\" in packaging/BUILD.bazel) once that target exists"
    has_cni=0
fi
expect_entry -rw-r--r-- etc/meshwire/config.toml
expect_entry -rw-r--r-- lib/systemd/system/meshwire-loader.service
expect_entry -rw-r--r-- usr/share/doc/meshwire/copyright
expect_entry -rw-r--r-- usr/share/doc/meshwire/changelog.gz
expect_entry -rw-r--r-- usr/share/man/man1/meshwire-loader.1.gz
check "every entry is owned by root/root" bash -c '! awk "\$2 != \"root/root\"" "$1" | grep -q .' _ "$tmp/contents"
check "directories are 0755" bash -c '! awk "\$1 ~ /^d/ && \$1 != \"drwxr-xr-x\"" "$1" | grep -q .' _ "$tmp/contents"

mkdir -p "$tmp/control"
dpkg-deb -e "$deb" "$tmp/control"
check "conffiles lists exactly /etc/meshwire/config.toml" [ "$(cat "$tmp/control/conffiles")" = /etc/meshwire/config.toml ]
check "md5sums covers every file but the control area" \
    [ "$(awk '{ print $2 }' "$tmp/control/md5sums" | sort)" = "$(awk '$1 !~ /^d/ { sub(/^\.\//, "", $3); print $3 }' "$tmp/contents" | sort)" ]
for s in postinst prerm postrm; do
    check "$s is an executable sh script that passes sh -n" \
        bash -c '[ -x "$1" ] && head -n 1 "$1" | grep -qx "#!/bin/sh" && sh -n "$1"' _ "$tmp/control/$s"
done
mkdir -p "$tmp/data"
dpkg-deb -x "$deb" "$tmp/data"
check "changelog.gz is a Debian changelog of version $version" \
    bash -c 'zcat "$1" | head -n 1 | grep -qF "meshwire ($2) "' _ "$tmp/data/usr/share/doc/meshwire/changelog.gz" "$version"
unit=$tmp/data/lib/systemd/system/meshwire-loader.service
check "unit runs the loader with /etc/meshwire/config.toml" grep -qx 'ExecStart=/usr/bin/meshwire-loader --config /etc/meshwire/config.toml run' "$unit"
check "unit orders after bpffs and the network" grep -qx 'After=sys-fs-bpf.mount network-online.target' "$unit"
check "unit restarts on failure, stops with SIGTERM, has no ExecStopPost" \
    bash -c 'grep -qx Restart=on-failure "$1" && grep -qx KillSignal=SIGTERM "$1" && ! grep -q "^ExecStop" "$1"' _ "$unit"

# --- 3. A clean root ----------------------------------------------------------
# Dependencies' package names, for debootstrap --include.
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/[[:space:]]*(.*//; s/^[[:space:]]*//; s/[[:space:]|].*//' | grep . | sort -u | paste -sd, -)
# shellcheck disable=SC1091
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ -n $suite ]] || die "no VERSION_CODENAME in /etc/os-release"
mirror=${MESHWIRE_DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
    # The host's own Debian mirror (apt's deb822 sources, then sources.list).
    mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
        /^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }')
fi
if [[ -z $mirror ]]; then
    mirror=$(cat /etc/apt/sources.list 2>/dev/null | awk '
        $1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; exit } }')
fi
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
cache=${MESHWIRE_CACHE:-$HOME/.cache/meshwire}/debootstrap
key=$(printf '%s %s minbase v1' "$suite" "$depends" | sha256sum | cut -c1-12)
base=$cache/$suite-minbase-$key
mkdir -p "$cache"
(
    flock 9
    if [[ ! -f $base/.complete ]]; then
        [[ -n $mirror ]] || die "no Debian mirror found in /etc/apt (set MESHWIRE_DEBIAN_MIRROR)"
        echo "building the clean root: debootstrap --variant=minbase --include=$depends $suite (cached in $base)"
        rm -rf "$base" "$base.new"
        if ! debootstrap --variant=minbase --include="$depends" "$suite" "$base.new" "$mirror" >"$cache/debootstrap.log" 2>&1; then
            tail -n 20 "$cache/debootstrap.log" >&2
            die "debootstrap failed (log: $cache/debootstrap.log)"
        fi
        rm -f "$base.new"/var/cache/apt/archives/*.deb
        touch "$base.new/.complete"
        mv "$base.new" "$base"
    fi
) 9>"$cache/.lock" || exit 1

mkdir -p "$root" "$tmp/upper" "$tmp/work"
mount -t overlay overlay -o "lowerdir=$base,upperdir=$tmp/upper,workdir=$tmp/work" "$root" ||
    die "cannot mount an overlay of $base at $root"
mounted+=("$root")

dpkg_root() { dpkg --root="$root" --force-unsafe-io "$@"; }
status_of() { dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}' meshwire 2>/dev/null; }

# A stand-in for deb-systemd-invoke (which starts, restarts and stops units)
# that logs its calls: nothing may be started from this test. The root has no
# systemctl (minbase has no systemd), so deb-systemd-helper manages the
# enablement symlinks itself, as in an image build.
calls=$root/tmp/systemd-calls.log
stand_in() { # stand_in PATH: a logging stand-in for the root's PATH
    printf '#!/bin/sh\necho "%s $*" >>/tmp/systemd-calls.log\nexit 0\n' "$(basename "$1")" >"$root/$1"
    chmod 0755 "$root/$1"
}
stand_in usr/bin/deb-systemd-invoke
: >"$calls"
mkdir -p "$root/sys/fs/bpf"

# Everything in the root but the places that are expected to change: dpkg's
# bookkeeping, logs, /tmp, /proc, /sys, /dev.
snapshot() {
    (cd "$root" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./tmp \) -prune -o -printf '%M %u %g %p\n') |
        grep -Ev ' \./var/lib/dpkg/(status|status-old|available|available-old|lock|lock-frontend|triggers/[^ ]*|diversions(-old)?|statoverride(-old)?)$| \./var/log/[^ ]*$' |
        sort
}
snapshot >"$tmp/before"

meshwire_processes() {
    local p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        [[ $exe == "$root"/* ]] && echo "${p#/proc/} $exe"
    done
}

# 3a. Install, no systemd running (an image build, a chroot).
if dpkg_root -i "$deb" >"$tmp/dpkg.out" 2>&1; then ok "dpkg --root -i"; else
    cat "$tmp/dpkg.out" >&2
    die "dpkg --root -i failed"
fi
check "installed (status: $(status_of))" [ "$(status_of)" = "install ok installed" ]
stat_is() { # stat_is MODE PATH
    local got
    got=$(stat -c '%a %U %G %F' "$root/$2" 2>/dev/null) || got=missing
    if [[ $got == "$1 root root "* ]]; then ok "/$2 is $1 root:root"; else fail "/$2: expected $1 root:root, got $got"; fi
}
stat_is 755 usr/bin/meshwire-loader
[[ $has_cni -eq 0 ]] || stat_is 755 opt/cni/bin/meshwire-cni
stat_is 644 etc/meshwire/config.toml
stat_is 755 etc/meshwire
stat_is 644 lib/systemd/system/meshwire-loader.service
check "dpkg records /etc/meshwire/config.toml as a conffile" \
    bash -c 'dpkg-query --admindir="$1/var/lib/dpkg" -W -f="\${Conffiles}\n" meshwire | grep -q "^ /etc/meshwire/config.toml [0-9a-f]\{32\}$"' _ "$root"
check "installed files match md5sums (dpkg --verify)" bash -c '[ -z "$(dpkg --root="$1" --verify meshwire 2>&1)" ]' _ "$root"
check "config.toml is the loader's default configuration" \
    bash -c 'diff <(grep -v "^#" "$1/etc/meshwire/config.toml") <(grep -v "^#" "$2") >/dev/null' _ "$root" "$tmp/data/etc/meshwire/config.toml"
check "the loader runs in the clean root (its dependencies are declared): --version says $version" \
    bash -c '[ "$(chroot "$1" /usr/bin/meshwire-loader --version)" = "meshwire-loader $2" ]' _ "$root" "$version"
if [[ $has_cni -eq 1 ]]; then
    check "the CNI plugin answers VERSION in the clean root" \
        bash -c 'CNI_COMMAND=VERSION chroot "$1" /opt/cni/bin/meshwire-cni </dev/null | grep -q cniVersion' _ "$root"
fi
check "postinst enabled the unit (deb-systemd-helper)" \
    [ "$(readlink "$root/etc/systemd/system/multi-user.target.wants/meshwire-loader.service")" = /lib/systemd/system/meshwire-loader.service ]
check "without systemd running, postinst neither started nor reloaded anything (calls: $(paste -sd';' "$calls"))" [ ! -s "$calls" ]
check "nothing runs from the root" [ -z "$(meshwire_processes)" ]
check "nothing created /run/meshwire" [ ! -e "$root/run/meshwire" ]

# 3b. systemd "running": reinstall and upgrades keep a modified conffile,
# restart the unit, never stop it. systemctl is a logging stand-in from here
# on (it also receives deb-systemd-helper's offline `systemctl --root=/ preset`).
mkdir -p "$root/run/systemd/system"
stand_in usr/bin/systemctl
conf=$root/etc/meshwire/config.toml
sed -i 's/^level = "info"/level = "debug"/' "$conf"
echo "# changed on this node" >>"$conf"
cp "$conf" "$tmp/local.toml"

upgrade() { # upgrade DESCRIPTION DEB [DPKG_OPTION...]
    local what=$1 pkg=$2
    shift 2
    : >"$calls"
    if dpkg_root "$@" -i "$pkg" </dev/null >"$tmp/dpkg.out" 2>&1; then ok "$what: dpkg -i"; else
        cat "$tmp/dpkg.out" >&2
        fail "$what: dpkg -i failed"
        return
    fi
    check "$what: installed" [ "$(status_of)" = "install ok installed" ]
    check "$what: the modified conffile is kept" cmp -s "$conf" "$tmp/local.toml"
    check "$what: the unit was restarted, never stopped (calls: $(paste -sd';' "$calls"))" \
        bash -c 'grep -qx "deb-systemd-invoke restart meshwire-loader.service" "$1" && ! grep -q stop "$1"' _ "$calls"
}

upgrade "reinstall $version" "$deb"
check "reinstall: no .dpkg-dist/.dpkg-old left" bash -c '[ -z "$(ls "$1"/etc/meshwire/*.dpkg-* 2>/dev/null)" ]' _ "$root"

# Rebuilt packages with a higher version: one with the same default
# configuration, one whose default changed.
rebuild() { # rebuild NEW_VERSION CHANGE_DEFAULT OUT
    local dir=$tmp/rebuild-$1
    rm -rf "$dir"
    dpkg-deb -R "$deb" "$dir"
    sed -i "s/^Version: .*/Version: $1/" "$dir/DEBIAN/control"
    if [[ $2 == yes ]]; then
        echo "# a default changed in $1" >>"$dir/etc/meshwire/config.toml"
        (cd "$dir" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$dir/DEBIAN/md5sums"
    fi
    dpkg-deb --root-owner-group -Zgzip -z1 --build "$dir" "$3" >/dev/null
}
rebuild "$version+test1" no "$tmp/test1.deb"
rebuild "$version+test2" yes "$tmp/test2.deb"
upgrade "upgrade to $version+test1" "$tmp/test1.deb"
check "upgrade to $version+test1: version" [ "$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Version}' meshwire)" = "$version+test1" ]
check "upgrade to $version+test1: no .dpkg-dist/.dpkg-old left" bash -c '[ -z "$(ls "$1"/etc/meshwire/*.dpkg-* 2>/dev/null)" ]' _ "$root"
upgrade "upgrade to $version+test2 (default changed, --force-confold)" "$tmp/test2.deb" --force-confold
check "upgrade to $version+test2: the new default is left as config.toml.dpkg-dist" \
    grep -qx "# a default changed in $version+test2" "$root/etc/meshwire/config.toml.dpkg-dist"
check "nothing runs from the root" [ -z "$(meshwire_processes)" ]

# 3c. Remove: stops the unit, keeps the configuration.
: >"$calls"
if dpkg_root -r meshwire >"$tmp/dpkg.out" 2>&1; then ok "dpkg --root -r"; else
    cat "$tmp/dpkg.out" >&2
    fail "dpkg --root -r failed"
fi
check "removed, configuration kept (status: $(status_of))" [ "$(status_of)" = "deinstall ok config-files" ]
check "remove stopped the unit (calls: $(paste -sd';' "$calls"))" grep -qx "deb-systemd-invoke stop meshwire-loader.service" "$calls"
for f in usr/bin/meshwire-loader opt/cni/bin/meshwire-cni lib/systemd/system/meshwire-loader.service; do
    check "remove deleted /$f" [ ! -e "$root/$f" ]
done
check "remove kept the modified conffile" cmp -s "$conf" "$tmp/local.toml"

# 3d. Purge: the pins (on a private bpffs mounted in the root), /run/meshwire,
# /etc/meshwire and the unit's enablement go; the root is as it was.
mount -t bpf bpf "$root/sys/fs/bpf" || die "cannot mount a private bpffs at $root/sys/fs/bpf"
mounted+=("$root/sys/fs/bpf")
mkdir -p "$root/sys/fs/bpf/meshwire/maps" "$root/sys/fs/bpf/meshwire/links" "$root/sys/fs/bpf/not-meshwire"
mkdir -p "$root/run/meshwire/pods"
echo '{}' >"$root/run/meshwire/pods/test.json"
if dpkg_root -P meshwire >"$tmp/dpkg.out" 2>&1; then ok "dpkg --root -P"; else
    cat "$tmp/dpkg.out" >&2
    fail "dpkg --root -P failed"
fi
check "purged (status: '$(status_of)')" bash -c 's=$(dpkg-query --admindir="$1/var/lib/dpkg" -W -f="\${Status}" meshwire 2>/dev/null); [ -z "$s" ] || [ "$s" = "unknown ok not-installed" ]' _ "$root"
check "purge removed the pins under /sys/fs/bpf/meshwire" [ ! -e "$root/sys/fs/bpf/meshwire" ]
check "purge left other bpffs entries alone" [ -d "$root/sys/fs/bpf/not-meshwire" ]
check "purge removed /run/meshwire" [ ! -e "$root/run/meshwire" ]
check "purge removed /etc/meshwire" [ ! -e "$root/etc/meshwire" ]
rmdir "$root/run/systemd/system" "$root/run/systemd" 2>/dev/null
rm -f "$root/usr/bin/systemctl"
snapshot >"$tmp/after"
if diff "$tmp/before" "$tmp/after" >"$tmp/diff"; then
    ok "after purge the root is as before the install"
else
    fail "after purge the root differs from before the install:"
    sed 's/^/  /' "$tmp/diff" >&2
fi
left=$(cd "$root" && find . -xdev \( -path ./proc -o -path ./dev -o -path ./tmp \) -prune -o -name '*meshwire*' -print)
check "no file named *meshwire* is left${left:+: $left}" [ -z "$left" ]
check "nothing runs from the root" [ -z "$(meshwire_processes)" ]

checks_report
