"""The end-to-end shell suites as test targets."""

def e2e_suite(name, src, tools, extra_data = [], size = "large", env = {}):
    """One e2e suite (a shell script sourcing suite_lib.sh).

    Real network namespaces, cgroups and BPF attachments: it runs as root,
    unsandboxed and alone. `tools` (binaries and scripts it drives) are its
    arguments, in order.
    """
    native.sh_test(
        name = name,
        size = size,
        srcs = [src],
        args = ["$(rootpath %s)" % t for t in tools],
        data = [":suite_lib.sh"] + tools + extra_data,
        env = env,
        tags = [
            "exclusive",
            "local",
            "no-sandbox",
        ],
    )

def netns_e2e(name, env = {}):
    """netns_e2e.sh against the real loader, mwtest and the demo.

    Also the node's .deb (//packaging:deb) and :loader_older, this source's
    loader stamped one version lower: case 17u upgrades from one to the other.

    `env` selects the variant (interception mode, tc attachment,
    acceleration); the script prints SKIP, with the reason, for cases that do
    not apply to it.
    """
    e2e_suite(
        name,
        "netns_e2e.sh",
        ["//loader", "//test/mwtest", ":demo.sh", "//packaging:deb", ":loader_older"],
        env = env,
    )
