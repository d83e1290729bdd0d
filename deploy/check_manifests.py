"""What the Kubernetes schemas cannot tell about deploy/*.yaml.

    check_manifests.py LOADER CARGO_TOML DEFAULT_CONFIG MANIFEST...

Run by deploy/manifests_test.sh with the kubernetes-validate venv's Python
(PyYAML). Checks that the manifests fit together and fit meshwire:
- every object is in namespace meshwire-system (but the Namespace itself);
- the DaemonSet's ServiceAccount and ConfigMap are defined here, and it is
  privileged, on the host's network and PID namespaces, and mounts the node
  paths the loader and the CNI plugin share;
- the ConfigMap's config.toml parses and names only keys the loader knows
  (those of config/default.toml);
- the image's tag is the Cargo workspace's version;
- every meshwire-loader command line in the DaemonSet (container, probes,
  hooks) uses only subcommands and options the real loader's --help lists.
Prints one line per check; exits 1 if any failed.
"""

import re
import subprocess
import sys
import tomllib

import yaml

NAMESPACE = "meshwire-system"
LOADER_PATH = "/usr/bin/meshwire-loader"
# Node path -> why the DaemonSet needs it.
HOST_PATHS = {
    "/sys/fs/bpf": "the pinned datapath",
    "/sys/fs/cgroup": "the node's cgroup2 root the programs attach to",
    "/opt/cni/bin": "where `cni install` puts the plugin",
    "/etc/cni/net.d": "the CNI configuration `cni install` chains into",
    "/run/meshwire": "the API socket and pod records shared with the plugin",
    "/var/run/netns": "pods' network namespaces",
}

failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def workspace_version(cargo_toml):
    with open(cargo_toml, "rb") as f:
        return tomllib.load(f)["workspace"]["package"]["version"]


def toml_keys(table, prefix=""):
    keys = set()
    for k, v in table.items():
        keys.add(prefix + k)
        if isinstance(v, dict):
            keys |= toml_keys(v, prefix + k + ".")
    return keys


class LoaderCli:
    """The loader's subcommands and options, from its own --help."""

    def __init__(self, loader):
        self.loader = loader
        self.cache = {}

    def help(self, path):
        key = tuple(path)
        if key not in self.cache:
            out = subprocess.run([self.loader, *path, "--help"], capture_output=True, text=True)
            if out.returncode != 0:
                raise ValueError(f"`meshwire-loader {' '.join(path)} --help` failed: {out.stderr.strip()}")
            commands, options, section = set(), {}, None
            for line in out.stdout.splitlines():
                if re.match(r"^\S.*:$", line):
                    section = line[:-1]
                    continue
                if section == "Commands":
                    m = re.match(r"^\s+(\S+)", line)
                    if m:
                        commands.add(m.group(1))
                elif section == "Options":
                    m = re.match(r"^\s+(?:-\w, )?(--[\w-]+)(?: <[^>]+>)?", line)
                    if m:
                        options[m.group(1)] = "<" in line.split(m.group(1), 1)[1].split("  ")[0]
            self.cache[key] = (commands, options)
        return self.cache[key]

    def problems(self, argv):
        """What in argv (without the binary) the loader's CLI does not have."""
        path, problems, i = [], [], 0
        while i < len(argv):
            arg = argv[i]
            commands, options = self.help(path)
            if arg.startswith("--"):
                name, _, inline = arg.partition("=")
                if name not in options:
                    problems.append(f"`meshwire-loader {' '.join(path)}` has no option {name}")
                elif options[name] and not inline:
                    i += 1  # its value
            elif arg in commands:
                path.append(arg)
            else:
                problems.append(f"`meshwire-loader {' '.join(path)}` has no subcommand {arg!r}")
            i += 1
        return problems


def main():
    loader, cargo_toml, default_config, *manifests = sys.argv[1:]
    docs = []
    for path in manifests:
        with open(path) as f:
            docs += [(path, d) for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for path, d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        if d["kind"] != "Namespace":
            check(d["metadata"].get("namespace") == NAMESPACE,
                  f"{path}: {d['kind']}/{d['metadata']['name']} is in namespace {NAMESPACE}")
    check([n["metadata"]["name"] for n in by_kind.get("Namespace", [])] == [NAMESPACE],
          f"the Namespace {NAMESPACE} is defined")
    check(not any(k in by_kind for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")),
          "no RBAC objects (meshwire does not use the Kubernetes API)")

    (ds,) = by_kind["DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    sa_names = [s["metadata"]["name"] for s in by_kind.get("ServiceAccount", [])]
    check(pod.get("serviceAccountName") in sa_names, f"the DaemonSet's ServiceAccount {pod.get('serviceAccountName')} is defined")
    check(pod.get("hostNetwork") is True, "the DaemonSet is on the host's network")
    check(pod.get("hostPID") is True, "the DaemonSet is in the host's PID namespace")
    (container,) = [c for c in pod["containers"] if c["name"] == "loader"]
    check(container.get("securityContext", {}).get("privileged") is True, "the loader container is privileged")

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted = {}
    for m in container.get("volumeMounts", []):
        v = volumes.get(m["name"], {})
        if "hostPath" in v:
            mounted[v["hostPath"]["path"]] = m
    for host_path, why in HOST_PATHS.items():
        check(host_path in mounted, f"the loader mounts the node's {host_path} ({why})")
    check(mounted.get("/sys/fs/bpf", {}).get("mountPropagation") == "Bidirectional",
          "/sys/fs/bpf propagates both ways (a bpffs the loader mounts reaches the node)")
    check(mounted.get("/var/run/netns", {}).get("mountPropagation") == "HostToContainer",
          "/var/run/netns sees netns mounts made after the pod started")
    check(mounted.get("/run/meshwire", {}).get("mountPath") == "/run/meshwire",
          "/run/meshwire is at the same path as on the node (the plugin's entry names the socket)")

    config_maps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    cm_volumes = [v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v]
    check(len(cm_volumes) == 1 and cm_volumes[0] in config_maps, f"the DaemonSet's ConfigMap {cm_volumes} is defined")
    config_mount = next((m for m in container["volumeMounts"] if "configMap" in volumes[m["name"]]), {})
    check(config_mount.get("mountPath") == "/etc/meshwire", "the ConfigMap is mounted at /etc/meshwire")
    with open(default_config, "rb") as f:
        defaults = tomllib.load(f)
        known = toml_keys(defaults)
    for name in cm_volumes:
        text = config_maps.get(name, {}).get("data", {}).get("config.toml")
        check(text is not None, f"ConfigMap {name} has config.toml")
        if text is None:
            continue
        try:
            keys = toml_keys(tomllib.loads(text))
        except tomllib.TOMLDecodeError as e:
            check(False, f"ConfigMap {name}: config.toml is TOML ({e})")
            continue
        unknown = sorted(keys - known)
        check(not unknown, f"ConfigMap {name}: every key is one of config/default.toml's" + (f" (unknown: {unknown})" if unknown else ""))
        # The sidecar's UID and ports are spelled out there (they must match
        # the injector's); the defaults are defined in config/default.toml.
        sidecar = tomllib.loads(text).get("sidecar", {})
        differ = {k: (v, defaults["sidecar"].get(k)) for k, v in sidecar.items() if v != defaults["sidecar"].get(k)}
        check(not differ, f"ConfigMap {name}: [sidecar] agrees with config/default.toml" + (f" (differs: {differ})" if differ else ""))

    version = workspace_version(cargo_toml)
    check(container["image"].rsplit(":", 1)[-1] == version,
          f"the image's tag ({container['image']}) is the Cargo workspace's version {version}")

    cli = LoaderCli(loader)
    lines = {"container": (container.get("command", []) + container.get("args", []))}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in container:
            lines[probe] = container[probe]["exec"]["command"]
    for hook, spec in container.get("lifecycle", {}).items():
        lines[hook] = spec["exec"]["command"]
    check("readinessProbe" in container and "livenessProbe" in container, "the loader has readiness and liveness probes")
    check({"postStart", "preStop"} <= set(container.get("lifecycle", {})), "the loader has postStart and preStop hooks")
    for where, cmd in (("postStart", "install"), ("preStop", "uninstall")):
        words = [a for a in lines.get(where, []) if not a.startswith("/") and not a.startswith("-")]
        check(words[:2] == ["cni", cmd], f"{where} runs `meshwire-loader cni {cmd}`")
    for where, argv in lines.items():
        check(argv[1:3] == ["--config", "/etc/meshwire/config.toml"],
              f"{where} passes the ConfigMap's configuration (--config /etc/meshwire/config.toml)")
    for where, argv in lines.items():
        if not argv or argv[0] != LOADER_PATH:
            check(False, f"{where} runs {LOADER_PATH} ({argv[:1]})")
            continue
        try:
            problems = cli.problems(argv[1:])
        except ValueError as e:
            problems = [str(e)]
        check(not problems, f"{where}: `{' '.join(argv)}` is a command line the loader accepts" + (f": {'; '.join(problems)}" if problems else ""))

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
