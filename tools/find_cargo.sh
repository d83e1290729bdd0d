# Sourced by tools/setup.sh, tools/cargo_build.sh and fuzz/smoke.sh.
# shellcheck shell=bash

# find_cargo: sets $cargo to rustup's cargo ($CARGO, PATH, ~/.cargo/bin,
# /root/.cargo/bin) and puts its directory first in PATH, for rustc, rustup's
# proxies and cargo subcommands: Bazel actions and tests do not see rustup's
# PATH. Returns 1 when there is none.
find_cargo() {
    : "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
    export HOME
    local c
    cargo=
    for c in "${CARGO:-}" "$(command -v cargo 2>/dev/null || true)" "$HOME/.cargo/bin/cargo" /root/.cargo/bin/cargo; do
        if [[ -n $c && -x $c ]]; then
            cargo=$c
            break
        fi
    done
    [[ -n $cargo ]] || return 1
    PATH=$(dirname "$cargo"):$PATH
    export PATH
}
