#!/usr/bin/env bash
# //fuzz:smoke: each cargo-fuzz target for a short, reproducible run (fixed
# libFuzzer seed, the committed seed corpus in fuzz/seeds/<target>), failing
# on any crash, panic, leak or timeout. The longer run: fuzz/README.md.
#
#   smoke.sh [SECONDS_PER_TARGET]      default 20
#
# Needs cargo-fuzz (tools/setup.sh installs it) and a Rust toolchain; on a
# stable one RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass -Zsanitizer=address.
# Works on the real source tree (like tools/cargo_build.sh) with a persistent
# target directory, so only the first run compiles everything. The corpus a
# run grows goes to a temporary directory: fuzz/seeds is never modified.
set -euo pipefail

seconds=${1:-20}
targets=(config api_request cni_input)

die() {
    echo "fuzz smoke: $*" >&2
    exit 1
}

# --- toolchain: Bazel's test environment does not have rustup's PATH.
# shellcheck source=tools/find_cargo.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../tools/find_cargo.sh" || exit 1
find_cargo || die "cargo not found (\$CARGO, PATH, $HOME/.cargo/bin): install Rust with rustup"
"$cargo" fuzz --version >/dev/null 2>&1 ||
    die "cargo-fuzz is not installed: \`cargo install --locked cargo-fuzz\` (tools/setup.sh does it)"

# --- the source tree: this script's real location (runfiles are symlinks to it).
fuzz_dir=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
[[ -f $fuzz_dir/Cargo.toml && -d $fuzz_dir/seeds ]] || die "no fuzz crate at $fuzz_dir"
checkout_id=$(printf '%s' "$fuzz_dir" | sha256sum | cut -c1-12)
target_dir=${MESHWIRE_FUZZ_TARGET_DIR:-$HOME/.cache/meshwire/fuzz-target/$checkout_id}
mkdir -p "$target_dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/meshwire-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=${TEST_UNDECLARED_OUTPUTS_DIR:-$work}

export RUSTC_BOOTSTRAP=1
cd "$fuzz_dir"
# cargo fuzz has no --locked: check that fuzz/Cargo.lock needs no change first.
"$cargo" metadata --locked --format-version 1 --manifest-path Cargo.toml >/dev/null ||
    die "fuzz/Cargo.lock is out of date with fuzz/Cargo.toml (run cargo fuzz build in fuzz/ and commit the lock file)"
echo "fuzz smoke: building ${targets[*]} (address sanitizer, release)"
"$cargo" fuzz build -O --target-dir "$target_dir" >"$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log" >&2
    die "cargo fuzz build failed"
}

passed=0 failed=0
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus-$t"
    # The configuration parser also starts from the embedded default
    # configuration, the one file (not a copy in seeds/ that goes stale).
    [[ $t != config ]] || cp "$fuzz_dir/../config/default.toml" "$work/corpus-$t/default.toml"
    log="$work/$t.log"
    # -seed: the same mutations each run; -timeout: one input may take 10 s;
    # -rss_limit_mb: a blow-up fails instead of swapping.
    if "$cargo" fuzz run -O --target-dir "$target_dir" "$t" "$work/corpus-$t" "seeds/$t" -- \
        -max_total_time="$seconds" -seed=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/$t-" -print_final_stats=1 >"$log" 2>&1; then
        echo "PASS: $t: $(grep -Eo '^#[0-9]+.*DONE.*' "$log" | sed 's/ *DONE */: /' | tail -n 1)"
        passed=$((passed + 1))
    else
        echo "FAIL: $t: the fuzzer found a failing input (saved as $artifacts/$t-*):"
        grep -E 'panicked|ERROR|SUMMARY|Test unit written|assert' "$log" | head -n 20 | sed 's/^/    | /'
        tail -n 5 "$log" | sed 's/^/    | /'
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
