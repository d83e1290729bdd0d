#!/usr/bin/env bash
# Compiles one BPF C file to a BPF ELF object with the pinned clang (clang-14).
# Called by the bpf_object rule (tools/bpf.bzl):
#   bpf_cc.sh OUT SRC [EXTRA_CLANG_ARGS...]
set -euo pipefail

CLANG_MAJOR=14
CLANG=clang-${CLANG_MAJOR}

out=$1
src=$2
shift 2

die() {
    echo "bpf_cc.sh: $*" >&2
    exit 1
}

clang_bin=$(command -v "$CLANG" 2>/dev/null || true)
if [[ -z $clang_bin && -x /usr/bin/$CLANG ]]; then
    clang_bin=/usr/bin/$CLANG
fi
[[ -n $clang_bin ]] ||
    die "$CLANG not found. BPF objects are built with clang ${CLANG_MAJOR} only: install the Debian package '$CLANG' (run tools/setup.sh, or ./bazelw which runs it)."

version=$("$clang_bin" -dumpversion 2>/dev/null || true)
[[ ${version%%.*} == "$CLANG_MAJOR" ]] ||
    die "$clang_bin reports version '${version:-?}', expected ${CLANG_MAJOR}.x. Install the Debian package '$CLANG' (run tools/setup.sh)."

# Kernel UAPI headers (asm/types.h ...) live in the multiarch directory.
multiarch_inc=/usr/include/$(uname -m)-linux-gnu
[[ -d $multiarch_inc ]] || multiarch_inc=/usr/include/x86_64-linux-gnu
[[ -f /usr/include/bpf/bpf_helpers.h ]] ||
    die "/usr/include/bpf/bpf_helpers.h not found: install the Debian package 'libbpf-dev' (run tools/setup.sh)."

# libbpf's architecture macro, for code that reads the caller's registers.
arch_def=()
[[ $(uname -m) == x86_64 ]] && arch_def=(-D__TARGET_ARCH_x86)

# -fdebug-prefix-map keeps the (sandbox-dependent) working directory out of
# the DWARF/BTF, so the object only changes when its sources do.
exec "$clang_bin" -target bpf -O2 -g -Wall -Werror \
    -fdebug-prefix-map="$PWD"=. \
    -I"$multiarch_inc" \
    -I"$(dirname "$src")" \
    "${arch_def[@]}" \
    "$@" \
    -c "$src" -o "$out"
