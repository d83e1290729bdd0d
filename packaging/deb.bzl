"""meshwire_deb: the node's Debian package, built by packaging/build_deb.sh.

The output is a directory holding meshwire_<version>_amd64.deb: the version
comes from the root Cargo.toml ([workspace.package] version), which is only
read when the action runs, so the file's name cannot be declared up front.
"""

def _meshwire_deb_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    args = ctx.actions.args()
    args.add(out.path)
    args.add(ctx.file.cargo_toml)
    args.add(ctx.file.config)
    args.add(ctx.file.control.dirname)
    args.add(ctx.executable.loader)
    if ctx.attr.cni:
        args.add(ctx.executable.cni)
    inputs = [ctx.file.cargo_toml, ctx.file.config, ctx.executable.loader] + ctx.files.debian
    if ctx.attr.cni:
        inputs.append(ctx.executable.cni)
    ctx.actions.run(
        executable = ctx.executable._build_deb,
        arguments = [args],
        inputs = inputs,
        outputs = [out],
        mnemonic = "DebPackage",
        progress_message = "Building the meshwire .deb",
        use_default_shell_env = True,
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

meshwire_deb = rule(
    implementation = _meshwire_deb_impl,
    doc = "meshwire_<version>_amd64.deb, in a directory named after the target.",
    attrs = {
        "loader": attr.label(mandatory = True, executable = True, cfg = "target"),
        "cni": attr.label(executable = True, cfg = "target", doc = "meshwire-cni; the package has none without it."),
        "cargo_toml": attr.label(default = Label("//:Cargo.toml"), allow_single_file = True),
        "config": attr.label(mandatory = True, allow_single_file = True),
        "control": attr.label(
            mandatory = True,
            allow_single_file = True,
            doc = "debian/control.in; its directory holds the other files of `debian`.",
        ),
        "debian": attr.label_list(mandatory = True, allow_files = True),
        "_build_deb": attr.label(
            default = Label("//packaging:build_deb"),
            executable = True,
            cfg = "host",
        ),
    },
)
