#!/usr/bin/env bash
# Runs cargo for the Cargo workspace at the repository root on behalf of the
# rules in tools/cargo.bzl, then copies the artifacts into Bazel's outputs.
#
#   cargo_build.sh build MANIFEST PACKAGE BIN OUT_FILE BPF_OBJECT...
#       cargo build --locked --release -p PACKAGE --bin BIN   -> OUT_FILE
#   cargo_build.sh test  MANIFEST PACKAGE -   OUT_DIR  BPF_OBJECT...
#       cargo test --no-run --locked --release -p PACKAGE     -> OUT_DIR/*
#   cargo_build.sh --static build ...
#       the binary with the C runtime linked statically (RUSTFLAGS
#       -C target-feature=+crt-static, --target the host's triple, so that
#       build scripts and proc macros, built for the host, stay dynamic)
#   cargo_build.sh --version-suffix=SUFFIX build ...
#       the same build with MESHWIRE_VERSION_SUFFIX=SUFFIX at compile time
#       (meshwire-loader reports its version with SUFFIX after it), in a
#       target directory of its own (below), so that it and the unstamped
#       build do not rebuild each other.
#
# MANIFEST is the workspace's root Cargo.toml. MESHWIRE_BPF_DIR is set to the
# absolute path of the directory holding the BPF objects (the Rust code
# include_bytes!() them). The action runs unsandboxed with network access
# (crates.io): cargo works on the real source tree with a persistent
# CARGO_TARGET_DIR, so rebuilds are incremental, even after `bazel clean`.
set -euo pipefail

die() {
    echo "cargo_build.sh: $*" >&2
    exit 1
}

unset MESHWIRE_VERSION_SUFFIX
static=""
if [[ ${1:-} == --static ]]; then
    static=1
    shift
fi
if [[ ${1:-} == --version-suffix=* ]]; then
    suffix=${1#--version-suffix=}
    # Debian's version characters (after the workspace version), nothing else.
    [[ $suffix =~ ^[A-Za-z0-9.+~]+$ ]] || die "--version-suffix '$suffix': use letters, digits, '.', '+' and '~'"
    export MESHWIRE_VERSION_SUFFIX=$suffix
    shift
fi
[[ $# -ge 6 ]] || die "usage: cargo_build.sh [--static] [--version-suffix=SUFFIX] build|test MANIFEST PACKAGE BIN|- OUT BPF_OBJECT..."
mode=$1 manifest=$2 package=$3 bin=$4 out=$5
shift 5
execroot=$PWD

# --- BPF objects: all in one directory, passed to rustc as an absolute path.
bpf_dir=$(dirname "$1")
for obj in "$@"; do
    [[ $(dirname "$obj") == "$bpf_dir" ]] ||
        die "BPF objects must share one output directory: $obj is not in $bpf_dir"
done
export MESHWIRE_BPF_DIR=$execroot/$bpf_dir

# --- cargo: Bazel actions don't see rustup's PATH.
# shellcheck source=tools/find_cargo.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/find_cargo.sh" || exit 1
find_cargo || die "cargo not found (\$CARGO, PATH, $HOME/.cargo/bin, /root/.cargo/bin). Install Rust >= 1.82 with rustup; tools/setup.sh checks it."

# --- Work on the real source tree (the execroot only holds symlinks to it), so
# paths in diagnostics and cargo's fingerprints don't depend on Bazel's output
# base.
src_root=$(dirname "$(readlink -f "$manifest")")
# One target directory per checkout: cargo decides freshness by mtimes, so two
# checkouts sharing one would each take the other's newer build as current.
checkout_id=$(printf '%s' "$src_root" | sha256sum | cut -c1-12)
CARGO_TARGET_DIR=${MESHWIRE_CARGO_TARGET_DIR:-$HOME/.cache/meshwire/cargo-target/$checkout_id}
# And one per version suffix inside it: cargo keeps one build of a crate per
# target directory and rebuilds it whenever MESHWIRE_VERSION_SUFFIX differs
# from the last build's, so a stamped build (//test:loader_older) sharing the
# release build's directory would recompile meshwire-loader on every switch
# between the two.
if [[ -n ${MESHWIRE_VERSION_SUFFIX:-} ]]; then
    CARGO_TARGET_DIR=$CARGO_TARGET_DIR/stamped/$MESHWIRE_VERSION_SUFFIX
fi
export CARGO_TARGET_DIR
mkdir -p "$CARGO_TARGET_DIR"

json=$(mktemp "${TMPDIR:-/tmp}/meshwire-cargo.XXXXXX")
trap 'rm -f "$json"' EXIT

common=(--locked --release --quiet --message-format=json-render-diagnostics -p "$package")
if [[ -n $static ]]; then
    rustc=$(dirname "$cargo")/rustc
    [[ -x $rustc ]] || rustc=rustc
    host=$("$rustc" -vV | sed -n 's/^host: //p')
    [[ -n $host ]] || die "--static: cannot tell the host's target triple from '$rustc -vV'"
    # With --target, RUSTFLAGS reach only the target's crates (not build
    # scripts or proc macros); the artifacts go to $CARGO_TARGET_DIR/$host/.
    common+=(--target "$host")
    export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
fi
case $mode in
build) cmd=(build "${common[@]}" --bin "$bin") ;;
test) cmd=(test --no-run "${common[@]}") ;;
*) die "unknown mode '$mode'" ;;
esac

# Run cargo and copy its artifacts under one lock: two Bazel actions of this
# checkout could otherwise replace target/release/BIN between cargo's exit and
# the copy.
(
    if command -v flock >/dev/null; then
        flock 9
    fi
    cd "$src_root"
    "$cargo" "${cmd[@]}" >"$json" || die "'cargo ${cmd[*]}' failed (in $src_root)"

    # One JSON object per line; pick the compiler-artifact lines with an
    # "executable" and print "KIND NAME PATH".
    artifacts() {
        sed -n 's/^{"reason":"compiler-artifact".*"target":{"kind":\["\([^"]*\)"[^}]*"name":"\([^"]*\)".*"profile":{[^}]*"test":'"$1"'}.*"executable":"\([^"]*\)".*/\1 \2 \3/p' "$json"
    }

    case $mode in
    build)
        exe=$(artifacts false | awk -v b="$bin" '$1 == "bin" && $2 == b { print $3 }' | tail -n 1)
        [[ -n $exe && -x $exe ]] || die "cargo did not report an executable for bin '$bin' of package '$package'"
        cp -f "$exe" "$execroot/$out"
        chmod 0755 "$execroot/$out"
        ;;
    test)
        mkdir -p "$execroot/$out"
        n=0
        while read -r kind name exe; do
            # Stable names (no hashes): KIND-NAME, e.g. bin-meshwire-loader.
            cp -f "$exe" "$execroot/$out/$kind-$name"
            chmod 0755 "$execroot/$out/$kind-$name"
            n=$((n + 1))
        done < <(artifacts true)
        [[ $n -gt 0 ]] || die "cargo test --no-run reported no test executable for package '$package'"
        ;;
    esac
) 9>"$CARGO_TARGET_DIR/.meshwire-bazel.lock"
