#!/usr/bin/env bash
# Installs what building and testing meshwire needs on Debian 12, and checks
# the Rust toolchain. Idempotent and quiet when everything is present (one
# dpkg-query call); otherwise one `apt-get update` and one `apt-get install`.
# Run by ./bazelw before every bazel command.
set -euo pipefail

PACKAGES=(
    # Bazel (Debian's 4.2.3, WORKSPACE-based) and the local repositories
    # WORKSPACE binds: /usr/share/bazel/rules/java, /usr/share/bazel/platforms.
    bazel-bootstrap bazel-rules-java bazel-platforms
    # BPF objects (tools/bpf.bzl): the one pinned clang, libbpf headers, UAPI.
    clang-14 llvm-14 libbpf-dev linux-libc-dev
    # libbpf-sys (vendored libbpf) build dependencies.
    libelf-dev zlib1g-dev pkg-config make gcc
    # Tests: network namespaces, iptables, cgroups, flock; conntrack for
    # iptables mode's DNS capture (its flows forgotten when its rules change).
    iproute2 iptables util-linux procps conntrack
    # The demo (test/demo.sh): the article's client.
    curl
    # CNI end to end (test/cni_e2e.sh): the reference plugins (/usr/lib/cni),
    # jq for its small runtime, bpftool to count tcx links.
    containernetworking-plugins jq bpftool
    # The .deb (//packaging:deb: dpkg-deb, dpkg-shlibdeps, strip, man page)
    # and its test (//packaging:deb_test: lintian, a debootstrap clean root).
    dpkg-dev binutils help2man lintian debootstrap
    # The venv below (kubernetes-validate, for //deploy:manifests_test).
    python3 python3-venv
    # The benchmark (//tools/bench): HAProxy as sidecar and HTTP app, wrk,
    # iperf3 (python3 runs it), perf for its profile; dnsperf for --mode dns.
    haproxy wrk iperf3 linux-perf dnsperf
    # DNS capture end to end (//test:dns_e2e): dnsmasq (the resolver and the
    # pods' DNS proxy), dig; the pods' outbound sidecar is the HAProxy above.
    dnsmasq-base bind9-dnsutils
    # Container images and a node as kubelet drives it (//packaging:image_test,
    # //test:cri_e2e): Debian's containerd and runc, started by the tests with
    # dirs of their own; podman to load the image; busybox-static for the test
    # pods' image; gcc's static libc (libc6-dev) for the pause binary.
    containerd runc podman busybox-static libc6-dev
)
# Python tools, from PyPI into a venv of their own (never system-wide pip):
# kubernetes-validate carries the Kubernetes schemas and works offline;
# grpcio and grpcio-tools are //test:cri_e2e's CRI client (its .proto is
# compiled at test time into a temporary directory).
VENV=${MESHWIRE_VENV:-$HOME/.cache/meshwire/venv}
PY_REQUIREMENTS=(kubernetes-validate==1.37.0 grpcio==1.68.1 grpcio-tools==1.68.1)
RUST_MIN=1.82

say() { echo "setup: $*" >&2; }
die() {
    echo "setup: ERROR: $*" >&2
    exit 1
}

# --- Debian packages -------------------------------------------------------
missing=()
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)
for p in "${PACKAGES[@]}"; do
    grep -q "^$p ii" <<<"$installed" || missing+=("$p")
done

if [[ ${#missing[@]} -gt 0 ]]; then
    command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get: meshwire builds on Debian 12"
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "missing packages (${missing[*]}): run tools/setup.sh as root"
        sudo=(sudo)
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq >/dev/null ||
        die "apt-get update failed"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
    say "installed ${missing[*]}"
fi

# --- Python venv -------------------------------------------------------------
# A stamp file holds the requirements the venv was completed with: a venv
# whose install was interrupted, or that has other requirements, is rebuilt.
# Under a lock: several checkouts on one machine share the venv, and two
# rebuilds at once would each --clear what the other installs.
venv_current() { [[ $(cat "$VENV/.meshwire-requirements" 2>/dev/null) == "${PY_REQUIREMENTS[*]}" ]]; }
if ! venv_current; then
    mkdir -p "$(dirname "$VENV")"
    exec {venv_lock}>"$VENV.lock"
    flock "$venv_lock"
    if ! venv_current; then
        say "installing ${PY_REQUIREMENTS[*]} into $VENV"
        /usr/bin/python3 -m venv --clear "$VENV" ||
            die "python3 -m venv $VENV failed"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}" ||
            die "pip install ${PY_REQUIREMENTS[*]} into $VENV failed"
        echo "${PY_REQUIREMENTS[*]}" >"$VENV/.meshwire-requirements"
        say "installed ${PY_REQUIREMENTS[*]}"
    fi
    exec {venv_lock}>&-
fi

# --- Rust (rustup; Debian's rustc is too old) -------------------------------
# shellcheck source=tools/find_cargo.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/find_cargo.sh" || exit 1
find_cargo ||
    die "cargo not found (looked at \$CARGO, PATH, $HOME/.cargo/bin, /root/.cargo/bin). Install Rust >= $RUST_MIN with rustup."
rustc=$(dirname "$cargo")/rustc
[[ -x $rustc ]] || rustc=$(command -v rustc 2>/dev/null || true)
[[ -n $rustc ]] || die "rustc not found next to $cargo. Install Rust >= $RUST_MIN with rustup."
out=$("$rustc" --version 2>&1) || die "'$rustc --version' failed: $out"
version=$(awk '{print $2}' <<<"$out")
if [[ $(printf '%s\n%s\n' "$RUST_MIN" "${version%%-*}" | sort -V | head -n 1) != "$RUST_MIN" ]]; then
    die "rustc $version at $rustc is too old: meshwire needs Rust >= $RUST_MIN (rustup update)."
fi

# --- cargo-fuzz (//fuzz:smoke) -------------------------------------------------
# From crates.io into $CARGO_HOME/bin, once. libfuzzer-sys builds libFuzzer with
# the C++ compiler; on a stable toolchain fuzz/smoke.sh sets RUSTC_BOOTSTRAP=1.
CARGO_FUZZ_VERSION=0.13.2
if ! "$cargo" fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    command -v c++ >/dev/null || die "no C++ compiler (c++) for cargo-fuzz's libFuzzer: install the Debian package g++"
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io (once)"
    "$cargo" install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" ||
        die "cargo install cargo-fuzz $CARGO_FUZZ_VERSION failed"
    say "installed cargo-fuzz $CARGO_FUZZ_VERSION"
fi
