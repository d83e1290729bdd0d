"""Rules that drive cargo for the Cargo workspace at the repository root.

cargo_binary: `cargo build --locked --release -p PACKAGE --bin BIN`; the target
    is executable, so `bazel run //loader -- ARGS` runs the binary.
cargo_test:   `cargo test --no-run --locked --release -p PACKAGE`, then runs every
    test executable cargo reported, as one Bazel test.
cargo_srcs:   macro for a crate's BUILD file: filegroup of its Cargo inputs.

All cargo work is done by tools/cargo_build.sh. The actions set
MESHWIRE_BPF_DIR to the absolute directory of the BPF objects (`bpf`
attribute), which the Rust code include_bytes!()s, so changing BPF C code
rebuilds the Rust. They run unsandboxed and with network access (cargo fetches
crates from crates.io on a fresh machine) and use a persistent
CARGO_TARGET_DIR ($HOME/.cache/meshwire/cargo-target/CHECKOUT, and a
stamped/SUFFIX directory inside it for a version_suffix build) outside Bazel's
output base, so rebuilds are incremental.

Inputs are the workspace's *.rs, Cargo.toml and Cargo.lock files
(//:cargo_workspace, which also holds config/**). Other files a crate reads at
compile time (include_str!, build.rs) must be added there, or to the crate's
cargo_srcs(extra = [...]), for Bazel to rerun cargo when they change.
"""

_EXECUTION_REQUIREMENTS = {
    "no-sandbox": "1",
    "requires-network": "1",
    "no-remote": "1",
}

_COMMON_ATTRS = {
    "package": attr.string(mandatory = True, doc = "Cargo package name (`-p`)."),
    "bpf": attr.label_list(
        default = [Label("//bpf:objects")],
        allow_files = [".o"],
        doc = "BPF objects; all must be in one directory, exported as MESHWIRE_BPF_DIR.",
    ),
    "srcs": attr.label_list(
        default = [Label("//:cargo_workspace")],
        allow_files = True,
        doc = "All inputs of the Cargo workspace (sources, manifests, lock file).",
    ),
    "manifest": attr.label(
        default = Label("//:Cargo.toml"),
        allow_single_file = True,
        doc = "The workspace's root Cargo.toml.",
    ),
    "_cargo_build": attr.label(
        default = Label("//tools:cargo_build"),
        executable = True,
        cfg = "host",
    ),
}

def _run_cargo(ctx, mode, bin, out, version_suffix = "", static = False):
    args = ctx.actions.args()
    if static:
        args.add("--static")
    if version_suffix:
        args.add("--version-suffix=" + version_suffix)
    args.add(mode)
    args.add(ctx.file.manifest)
    args.add(ctx.attr.package)
    args.add(bin)
    args.add(out.path)  # add_all() would expand a directory into its files
    args.add_all(ctx.files.bpf)
    ctx.actions.run(
        executable = ctx.executable._cargo_build,
        arguments = [args],
        inputs = depset(ctx.files.srcs + ctx.files.bpf + [ctx.file.manifest]),
        outputs = [out],
        mnemonic = "Cargo",
        progress_message = "cargo %s -p %s" % (mode, ctx.attr.package),
        execution_requirements = _EXECUTION_REQUIREMENTS,
        use_default_shell_env = True,
    )

def _cargo_binary_impl(ctx):
    bin = ctx.attr.bin or ctx.attr.package
    suffix = ctx.attr.version_suffix

    # A stamped build lives in a directory named after its target, so that it
    # keeps the binary's name beside the release build of the same package.
    out = ctx.actions.declare_file(ctx.label.name + "/" + bin if suffix else bin)
    _run_cargo(ctx, "build", bin, out, suffix, ctx.attr.static)
    return [DefaultInfo(files = depset([out]), executable = out)]

cargo_binary = rule(
    implementation = _cargo_binary_impl,
    executable = True,
    doc = "A binary of a package of the Cargo workspace, built in release mode.",
    attrs = dict(
        _COMMON_ATTRS,
        bin = attr.string(doc = "Cargo bin target; default: the package name."),
        static = attr.bool(
            doc = "Link the C runtime statically (glibc, `-C target-feature=+crt-static`, built for " +
                  "the host's target triple so that build scripts and proc macros stay dynamic): no " +
                  "dynamic loader, no shared libraries to map and relocate at each exec.",
        ),
        version_suffix = attr.string(
            doc = "Stamped after the workspace's version (MESHWIRE_VERSION_SUFFIX at compile time, " +
                  "which meshwire-loader's version.rs reads), e.g. \"~e2e.older\": a Debian version " +
                  "just below the release's. The binary is then TARGET/BIN.",
        ),
    ),
)

_TEST_RUNNER = """#!/usr/bin/env bash
# Runs the test executables `cargo test --no-run -p {package}` produced.
set -uo pipefail
bins="$PWD/{bins}"
cd "{pkg_dir}" 2>/dev/null || true  # like cargo test: from the crate's directory
status=0
count=0
for exe in "$bins"/*; do
    [[ -x $exe ]] || continue
    count=$((count + 1))
    echo "=== {package}: $(basename "$exe")"
    "$exe" "$@" || status=1
done
if [[ $count -eq 0 ]]; then
    echo "no test executables in $bins" >&2
    exit 1
fi
exit $status
"""

def _cargo_test_impl(ctx):
    bins = ctx.actions.declare_directory(ctx.label.name + ".bins")
    _run_cargo(ctx, "test", "-", bins)
    runner = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.write(
        output = runner,
        is_executable = True,
        content = _TEST_RUNNER.format(
            package = ctx.attr.package,
            bins = bins.short_path,
            pkg_dir = ctx.label.package,
        ),
    )
    # The workspace's sources too, so that the test's working directory (the
    # crate's directory in the runfiles tree) looks like the source tree.
    runfiles = ctx.runfiles(files = [bins] + ctx.files.srcs + ctx.files.data)
    return [DefaultInfo(executable = runner, runfiles = runfiles)]

cargo_test = rule(
    implementation = _cargo_test_impl,
    test = True,
    doc = "The unit (and integration) tests of a package of the Cargo workspace.",
    attrs = dict(_COMMON_ATTRS, data = attr.label_list(allow_files = True)),
)

def cargo_srcs(name = "cargo_srcs", extra = []):
    """Filegroup of this package's Cargo inputs, for //:cargo_workspace."""
    native.filegroup(
        name = name,
        srcs = native.glob(["**/*.rs", "**/Cargo.toml"]) + extra,
        visibility = ["//:__pkg__"],
    )
