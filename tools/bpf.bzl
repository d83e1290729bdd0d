"""bpf_object: compiles one C file to a BPF ELF object with clang-14.

The compiler is pinned to ONE clang major version (14, Debian's clang-14);
tools/bpf_cc.sh checks it and says how to install it. libbpf's headers
(<bpf/bpf_helpers.h>, <bpf/bpf_endian.h>) come from Debian's libbpf-dev in
/usr/include. Both are installed by tools/setup.sh (./bazelw runs it).
"""

def _bpf_object_impl(ctx):
    out = ctx.actions.declare_file(ctx.attr.out or ctx.label.name + ".bpf.o")
    src = ctx.file.src
    args = ctx.actions.args()
    args.add(out)
    args.add(src)
    args.add_all(ctx.attr.copts)
    ctx.actions.run(
        executable = ctx.executable._bpf_cc,
        arguments = [args],
        inputs = [src] + ctx.files.hdrs,
        outputs = [out],
        mnemonic = "BpfCompile",
        progress_message = "Compiling BPF object %s" % out.short_path,
        use_default_shell_env = True,
    )
    return [DefaultInfo(files = depset([out]))]

bpf_object = rule(
    implementation = _bpf_object_impl,
    doc = "Compiles `src` with `clang-14 -target bpf -O2 -g -Wall -Werror` into `out`.",
    attrs = {
        "src": attr.label(
            allow_single_file = [".c"],
            mandatory = True,
            doc = "The BPF C source file.",
        ),
        "hdrs": attr.label_list(
            allow_files = [".h"],
            doc = "Headers the source includes (quote includes resolve relative to the source).",
        ),
        "out": attr.string(
            doc = "Output file name, in the package's output directory. Default: NAME.bpf.o.",
        ),
        "copts": attr.string_list(
            doc = "Extra clang arguments (e.g. -D or -I flags).",
        ),
        "_bpf_cc": attr.label(
            default = Label("//tools:bpf_cc"),
            executable = True,
            cfg = "host",
        ),
    },
)
