"""The end-to-end suite (netns_e2e.sh) as a test target, per datapath variant."""

def netns_e2e(name, env = {}):
    """netns_e2e.sh against the real loader, mwtest and the demo.

    Real network namespaces, cgroups and BPF attachments: it runs as root,
    unsandboxed and alone. `env` selects the variant (interception mode, tc
    attachment); the script prints SKIP, with the reason, for cases that do
    not apply to it.
    """
    native.sh_test(
        name = name,
        size = "large",
        srcs = ["netns_e2e.sh"],
        args = [
            "$(rootpath //loader)",
            "$(rootpath //test/mwtest)",
            "$(rootpath :demo.sh)",
        ],
        data = [
            ":demo.sh",
            ":proc_lib.sh",
            ":suite_lib.sh",
            "//loader",
            "//test/mwtest",
        ],
        env = env,
        tags = [
            "exclusive",
            "local",
            "no-sandbox",
        ],
    )
