"""CNI ADD and DEL with a real runtime driving the chain: `./bazelw run
//tools/bench -- --mode runtime`.

What a node's pod start sees of meshwire (issue 15, item 4): Debian's
containerd and runc on a node of the bench's own, started exactly as
//test:cri_e2e starts them (test/containerd_node.sh, over
test/containerd_lib.sh: own mount and network namespace, own root, state,
socket), driven through the CRI by test/cri/cri.py's calls, as kubelet
drives it. The CNI chain is cri_e2e's: bridge + host-local (Debian's
reference plugins), with meshwire-cni chained by `meshwire-loader cni
install` as the DaemonSet's postStart does it. One loader (eBPF mode, the
default tc attach) with its own cgroup, pins on a private bpffs and records
on a tmpfs, as --mode scale runs it.

At each size (1, 100, 1,000 pods already meshed) measured pods are created
with RunPodSandbox (the sidecar annotation Istio's injector sets, so that
meshwire-cni meshes them), then stopped and removed with StopPodSandbox and
RemovePodSandbox, as kubelet does, in turns, one pod per turn, the turns'
order rotating each round:

    without   the chain without meshwire-cni: the pod start's floor
    with      the chain with meshwire-cni: RunPodSandbox and StopPodSandbox
              against `without` give meshwire's added cost
    timed     the chain with meshwire-cni, every plugin run through
              cni_timer (in the CNI bin dir under each plugin's name:
              loopback, bridge, host-local, meshwire-cni), which appends how
              long the real plugin took from its exec to its exit (CNI ADD,
              CNI DEL) and when its netconf came to a file; its own exec
              adds to the pod start, so these pods do not count in the
              comparison

The background pods are made as --mode scale makes them (network namespaces
with a veth, VethPods) and meshed by meshwire-cni ADD, not by containerd:
1,000 sandboxes, shims and pause containers would cost the machine more
than meshwire's state does, which is what the count is for.

A figure is kept only from a run that proved its interception: every pod of
`with` and `timed` passes the loader's CHECK after RunPodSandbox and is gone
from its pods after StopPodSandbox, no pod of `without` is meshed, at each
size one measured pod's connection to an address that exists nowhere is
steered to its sidecar port where SO_ORIGINAL_DST reads the address back, and
after the run nothing is left: no pod in the loader, no record, no tc pin,
no sandbox in containerd, no network namespace, no CNI cache entry. Root;
everything made here carries the prefix mwb<PID>- and is removed on exit,
also when interrupted.
"""

import calendar
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time
import types

from bench import Fatal, OUT_PORT, log, machine, machine_busy, fmt
import scale
from scale import NODE, Scale, pct

TURNS = ("without", "with", "timed")
# What runs through cni_timer in the timed turn: every plugin of the chain's
# (containerd execs loopback for lo, bridge and meshwire-cni for eth0; bridge
# execs host-local), each the same file of the real plugin's in the other turns.
TIMED_PLUGINS = ("loopback", "bridge", "host-local", "meshwire-cni")
CONTAINERD_EXECS = ("loopback", "bridge", "meshwire-cni")
MESHED_TURNS = ("with", "timed")
# cni_timer looks at the caller's threads when a plugin's input is this late (ms).
SNAP_MS = 3
# An input wait counted as long (ms): the scheduler's tail, not a slow exec.
LONG_WAIT_MS = 5
NAMESPACE = "bench"
# What Istio's injector puts on a pod it gave a sidecar (docs/annotations.md).
SIDECAR_ANNOTATIONS = {"sidecar.istio.io/status": '{"containers":["sidecar"]}'}
# meshwire-cni's entry as the DaemonSet's postStart writes it (deploy/30-daemonset.yaml).
PLUGIN_CONFIG = '{"namespaces":{"exclude":["kube-system","meshwire-system"]}}'
SUBNET = "10.245.0.0/16"
REF_PLUGINS = "/usr/lib/cni"
CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000


def venv_python():
    """The Python of tools/setup.sh's venv (grpcio, for cri.py), as //test:cri_e2e finds it."""
    home = os.environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(os.environ.get("MESHWIRE_VENV", os.path.join(home, ".cache", "meshwire", "venv")), "bin", "python")


class Runtime(Scale):
    def __init__(self, args):
        super().__init__(args)
        self.timer = os.path.realpath(args.cni_timer)
        self.containerd_env = dict(kv.split("=", 1) for kv in (args.containerd_env or []))
        self.pause_tar = os.path.realpath(args.pause_image)
        self.node_sh = os.path.realpath(args.containerd_node)
        self.cri_py = os.path.realpath(args.cri_py)
        self.node_p = None
        self.c = None            # cri.Cri
        self.sandboxes = set()   # sandbox IDs not yet removed
        self.turn = None
        self.tc = "default"
        self.proofs = []         # one line per size
        self.stop_dels = {}      # timed sandbox -> DELs cni_timer recorded by the end of its StopPodSandbox
        self.switch_s = 0.0      # seconds spent waiting for containerd to load a changed chain

    # -------------------------------------------------------------------- setup
    def setup(self):
        for f in ("bridge", "host-local", "loopback"):
            if not os.access(f"{REF_PLUGINS}/{f}", os.X_OK):
                raise Fatal(f"{REF_PLUGINS}/{f} missing: containernetworking-plugins (tools/setup.sh installs it)")
        cg2 = self.prepare("runtime", ("ip", "bpftool", "python3", "containerd", "ctr", "runc", "nsenter", "unshare"),
                           ("loader", "cni_bin", "timer"), bpffs=False)
        self.cg_name = f"{self.P}-runtime"
        self.cg_root = f"{cg2}/{self.cg_name}"
        for d in (self.cg_root, f"{self.cg_root}/mesh-{NODE}"):
            os.mkdir(d)
            self.cgroups.append(d)
        # The CNI dirs and chain as cri_e2e has them: bridge + host-local.
        self.cni_dir, self.conf_dir = f"{self.work}/cni-bin", f"{self.work}/net.d"
        for d in (self.cni_dir, self.conf_dir, f"{self.work}/ipam"):
            os.mkdir(d)
        # The real plugins, which the bin dir's files are (hard links) in
        # the turns without the timer, and which cni_timer runs in the timed
        # turn (CNI_TIMER_DIR), when the bin dir's files are cni_timer.
        self.real_dir = f"{self.work}/cni-real"
        os.mkdir(self.real_dir)
        for f in ("bridge", "host-local", "loopback"):
            self.run(["cp", f"{REF_PLUGINS}/{f}", self.real_dir])
            os.link(f"{self.real_dir}/{f}", f"{self.cni_dir}/{f}")
        self.run(["cp", self.cni_bin, f"{self.real_dir}/meshwire-cni"])
        self.conflist = f"{self.conf_dir}/10-pods.conflist"
        suite_lib = os.path.join(os.path.dirname(self.node_sh), "suite_lib.sh")
        self.conf_without = self.run(["bash", "-c", '. "$1" && shift && bridge_conflist "$@"', "conflist", suite_lib,
                                      f"{self.P}-pods", f"{self.P}-br", SUBNET, f"{self.work}/ipam"])
        with open(self.conflist, "w") as f:
            f.write(self.conf_without)
        self.cfg = self.loader_cfg(NODE, "ebpf")
        # meshwire-cni chained as the DaemonSet's postStart does it.
        self.run([self.loader, "--config", self.cfg, "cni", "install", "--bin-dir", self.cni_dir, "--conf-dir", self.conf_dir,
                  "--plugin", self.cni_bin, "--plugin-config", PLUGIN_CONFIG])
        with open(self.conflist) as f:
            self.conf_with = f.read()
        if [p["type"] for p in json.loads(self.conf_with)["plugins"]] != ["bridge", "meshwire-cni"]:
            raise Fatal(f"cni install did not chain meshwire-cni after bridge: {self.conf_with}")
        self.times = f"{self.work}/cni-times"
        self.start_node()
        self.enter_node()
        # On the node from here on: its /run (network namespaces, the pods'
        # and ours) and network; the bpffs and the records' tmpfs are mounted
        # there only and go with it.
        self.mount_bpffs()
        self.state = f"{self.work}/{NODE}/state"
        os.makedirs(self.state, exist_ok=True)
        self.run(["mount", "-t", "tmpfs", "-o", "mode=0700", f"{self.P}-state", self.state])
        self.state_mounted = True
        self.run(["ip", "netns", "add", self.ns(NODE)])
        self.ns_made.append(self.ns(NODE))
        self.pods = scale.VethPods(lambda cmd, text: self.run(cmd, input=text, timeout=600), self.ns(NODE), lambda i: self.ns(f"p{i}"))
        sys.path.insert(0, os.path.dirname(self.cri_py))
        import cri
        self.cri = cri
        gen = f"{self.work}/crigen"
        cri.generate(gen)
        self.c = cri.Cri(self.node_sock, gen)
        self.pod_opts = types.SimpleNamespace(cgroup_parent=f"/{self.cg_name}/mesh-{NODE}/pods", log_dir=f"{self.work}/pod-logs")
        self.versions = self.cri_call(lambda: " ".join(getattr(self.c.call("Version", self.c.pb.VersionRequest(version="v1")), f)
                                                     for f in ("runtime_name", "runtime_version", "runtime_api_version")))
        self.runc = self.run(["runc", "--version"]).splitlines()[0]

    def start_node(self):
        """containerd on a node of its own (test/containerd_node.sh), its
        environment carrying cni_timer's settings to the plugins (and
        --containerd-env's, which the plugins get too)."""
        env = dict(os.environ, CNI_TIMER_DIR=self.real_dir, CNI_TIMER_LOG=self.times, CNI_TIMER_SNAP_MS=str(SNAP_MS),
                   **self.containerd_env)
        self.node_log = f"{self.work}/containerd-node.log"
        with open(self.node_log, "w") as err:
            self.node_p = subprocess.Popen([self.node_sh, self.work, self.cg_root, self.cg_name, self.cni_dir, self.conf_dir, self.pause_tar],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        line = self.node_p.stdout.readline().split()
        if len(line) != 3 or line[0] != "ready":
            self.node_p.wait(60)
            raise Fatal(f"containerd_node.sh did not come up (exit {self.node_p.returncode}): {open(self.node_log).read()[-1500:]}")
        self.node_pid, self.node_sock = int(line[1]), line[2]

    def enter_node(self):
        """This process into the node's mount and network namespaces, for
        good (only a process with one thread may change its mount namespace:
        before gRPC starts any), in the directory it was in."""
        libc = ctypes.CDLL(None, use_errno=True)
        cwd = os.getcwd()
        for ns, flag in (("mnt", CLONE_NEWNS), ("net", CLONE_NEWNET)):
            fd = os.open(f"/proc/{self.node_pid}/ns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, flag) != 0:
                    raise Fatal(f"setns into the node's {ns} namespace: {os.strerror(ctypes.get_errno())}")
            finally:
                os.close(fd)
        os.chdir(cwd)

    def cri_call(self, fn):
        try:
            return fn()
        except self.cri.CriError as e:
            raise Fatal(f"containerd: {e}") from None

    # --------------------------------------------------------------- the chain
    def loaded_chain(self):
        """The plugin types of the network containerd runs for eth0, as its
        CRI status says it loaded them."""
        r = self.c.call("Status", self.c.pb.StatusRequest(verbose=True))
        conf = json.loads(r.info.get("cniconfig", "{}"))
        for net in conf.get("Networks") or []:
            if net.get("IFName") == "eth0":
                return [p["Network"]["type"] for p in net["Config"]["Plugins"]]
        return []

    def use_turn(self, turn):
        """The chain of `turn`: the conflist (containerd reloads it; waits
        until its status shows it) and what the bin dir's plugins are (the
        real plugins, or cni_timer in the timed turn; hard links: one file
        each whatever the turn)."""
        if turn == self.turn:
            return
        conf = self.conf_without if turn == "without" else self.conf_with
        for name in TIMED_PLUGINS:
            binary = self.timer if turn == "timed" else f"{self.real_dir}/{name}"
            plugin = f"{self.cni_dir}/{name}"
            if not os.path.samefile(binary, plugin):
                tmp = f"{self.cni_dir}/.{name}.tmp"
                os.link(binary, tmp)
                os.rename(tmp, plugin)
        if self.turn is None or (self.turn == "without") != (turn == "without"):
            with open(f"{self.conflist}.tmp", "w") as f:
                f.write(conf)
            os.rename(f"{self.conflist}.tmp", self.conflist)
            want = [p["type"] for p in json.loads(conf)["plugins"]]
            deadline = time.monotonic() + 20
            t0 = time.monotonic()
            while (got := self.cri_call(self.loaded_chain)) != want:
                if time.monotonic() > deadline:
                    raise Fatal(f"containerd did not load the chain {want} in 20 s (its status says {got})")
                time.sleep(0.005)
            self.switch_s += time.monotonic() - t0
        self.turn = turn

    # --------------------------------------------------------------------- pods
    def grow_to(self, n):
        """Background pods made as --mode scale makes them, each meshed by
        meshwire-cni ADD (the bench runs it as a runtime would), until n are."""
        todo = n - self.meshed_bg
        if todo <= 0:
            return
        for i in self.make_pods(todo):
            self.cni("ADD", i, f"bg{i}")
            self.bg_order.append(i)
            self.bg_cid[i] = f"bg{i}"
        self.meshed_bg = n

    def listed(self):
        return {p["container_id"] for p in self.api({"op": "list_pods"})["pods"]}

    def pod(self, turn, name, prove):
        """One measured pod of `turn`, as kubelet runs it: RunPodSandbox,
        then StopPodSandbox and RemovePodSandbox; (sandbox ID, ms of each).
        Its meshing is checked after RunPodSandbox (and its connection
        proved when `prove`), its removal from the loader after StopPodSandbox."""
        cri, c = self.cri, self.c
        cfg = cri.sandbox_config(c, **cri.pod_args(self.pod_opts, name, NAMESPACE, SIDECAR_ANNOTATIONS))
        t0 = time.perf_counter()
        sid = self.cri_call(lambda: cri.run_pod(c, cfg))
        run_ms = (time.perf_counter() - t0) * 1e3
        self.sandboxes.add(sid)
        if turn in MESHED_TURNS:
            try:
                self.api({"op": "check_pod", "container_id": sid, "ifname": "eth0"})
            except Fatal as e:
                raise Fatal(f"proof failed: pod {name} ({sid[:12]}, turn {turn}) is not meshed after RunPodSandbox: {e}") from None
            if prove:
                netns = self.cri_call(lambda: cri.pod_status(c, sid))["netns"]
                scale.prove_redirect(f"{self.cg_root}/mesh-{NODE}", ["nsenter", f"--net={netns}"], f"pod {name} ({sid[:12]})")
                self.proofs.append(f"{name}: a connection to 10.99.0.1:8080 from its network namespace ({netns}) reached "
                                   f"127.0.0.1:{OUT_PORT}, SO_ORIGINAL_DST answered 10.99.0.1:8080")
        elif sid in self.listed():
            raise Fatal(f"proof failed: pod {name} ({sid[:12]}) of the chain without meshwire-cni is meshed")
        t0 = time.perf_counter()
        self.cri_call(lambda: c.call("StopPodSandbox", c.pb.StopPodSandboxRequest(pod_sandbox_id=sid)))
        stop_ms = (time.perf_counter() - t0) * 1e3
        if turn == "timed":
            # Which DEL ran in StopPodSandbox (containerd 1.6 runs another,
            # without the namespace, in RemovePodSandbox).
            self.stop_dels[sid] = sum(1 for name, cmd, cid, *_ in self.timer_lines()
                                      if name == "meshwire-cni" and cmd == "DEL" and cid == sid)
        if turn in MESHED_TURNS and sid in self.listed():
            raise Fatal(f"proof failed: pod {name} ({sid[:12]}) is still meshed after StopPodSandbox")
        t0 = time.perf_counter()
        self.cri_call(lambda: c.call("RemovePodSandbox", c.pb.RemovePodSandboxRequest(pod_sandbox_id=sid)))
        rm_ms = (time.perf_counter() - t0) * 1e3
        self.sandboxes.discard(sid)
        return sid, run_ms, stop_ms, rm_ms

    def timer_lines(self):
        """cni_timer's records so far: [(plugin, command, container ID, ms,
        status, start in ns since the epoch, ms from the spawn until its
        stdin was readable or None, the caller's snapshot (threads, running,
        waiter, machine's running) or None)]."""
        try:
            lines = open(self.times).read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            f = line.split()
            if len(f) != 8 or f[0] not in TIMED_PLUGINS:
                raise Fatal(f"cni_timer wrote a line this benchmark cannot read: {line!r}")
            out.append((f[0], f[1], f[2], int(f[3]) / 1e6, int(f[4]), int(f[5]), int(f[6]) / 1e6 if int(f[6]) >= 0 else None,
                        None if f[7] == "-" else tuple(int(x) for x in f[7].split(":"))))
        return out

    # ------------------------------------------------------------------ measure
    def measure(self, size):
        a = self.args
        self.grow_to(size)
        listed = len(self.listed())
        if listed != size:
            raise Fatal(f"the loader lists {listed} pods, {size} meshed in the background")
        busy0, t0 = machine_busy(), time.monotonic()
        seen = len(self.timer_lines())
        by = {t: {"ids": [], "run": [], "stop": [], "remove": []} for t in TURNS}
        proved = False
        versions = []
        switch0 = self.switch_s
        for r in range(a.samples):
            k = r % len(TURNS)
            for turn in TURNS[k:] + TURNS[:k]:
                self.use_turn(turn)
                if turn == "timed":
                    # The exec floor of that moment, as --mode scale takes it:
                    # meshwire-cni VERSION spawned by the bench, no loader.
                    versions.append(self.cni("VERSION", 0))
                prove = turn in MESHED_TURNS and not proved
                sid, run_ms, stop_ms, rm_ms = self.pod(turn, f"{turn}-{size}-{r}", prove)
                proved = proved or prove
                for key, v in (("ids", sid), ("run", run_ms), ("stop", stop_ms), ("remove", rm_ms)):
                    by[turn][key].append(v)
        busy = (machine_busy() - busy0) / (time.monotonic() - t0) / os.cpu_count()
        # meshwire-cni's own times, from cni_timer, for the timed turn's pods.
        timed = set(by["timed"]["ids"])
        # Each timed pod: one ADD (RunPodSandbox), one DEL in StopPodSandbox
        # (the namespace still there) and one in RemovePodSandbox (no
        # namespace any more: CNI_NETNS empty), all exiting 0.
        # The other plugins' runs: per plugin, each timed pod's in order.
        runs, other, plugins = {}, [], {name: {} for name in TIMED_PLUGINS}
        for name, cmd, cid, ms, status, start, stdin, snap in self.timer_lines()[seen:]:
            if cid not in timed or cmd not in ("ADD", "DEL"):
                other.append(f"{name} {cmd} {cid[:12]}")
                continue
            if status != 0:
                raise Fatal(f"{name} {cmd} of {cid[:12]} exited {status} under containerd")
            plugins[name].setdefault(cid, []).append((cmd, ms, stdin, snap, start))
            if name == "meshwire-cni":
                runs.setdefault(cid, []).append((cmd, ms, start, stdin, snap))
        want = lambda cid: [r[0] for r in runs.get(cid, [])] == ["ADD", "DEL", "DEL"] and self.stop_dels.get(cid) == 1
        wrong = [f"{cid[:12]}: {[r[0] for r in runs.get(cid, [])]}, {self.stop_dels.get(cid)} DEL by StopPodSandbox's end"
                 for cid in timed if not want(cid)]
        if wrong or other:
            raise Fatal(f"cni_timer's records are not ADD, DEL (StopPodSandbox), DEL (RemovePodSandbox) for each timed pod: "
                        f"{wrong[:5]}; unexpected {other[:10]}")
        adds = {cid: r[0][1] for cid, r in runs.items()}
        dels = {cid: r[1][1] for cid, r in runs.items()}
        dels2 = {cid: r[2][1] for cid, r in runs.items()}
        text = open(self.procs_log(self.loader_p)).read()
        answered = loader_answers(text, timed)
        split = {what: [split_run(runs[c][k], answered[what].get(c)) for c in by["timed"]["ids"]]
                 for what, k in (("add_pod", 0), ("del_pod", 1))}
        meshed = set(by["with"]["ids"]) | timed
        row = {"pods": size, "load": busy, "turns": by, "adds": [adds[c] for c in by["timed"]["ids"]],
               "dels": [dels[c] for c in by["timed"]["ids"]], "dels_remove": [dels2[c] for c in by["timed"]["ids"]],
               "versions": versions, "switch_s": self.switch_s - switch0, "add_split": split["add_pod"],
               "del_split": split["del_pod"], "add_phases": self.phases(text, "add_pod", meshed),
               "del_phases": self.phases(text, "del_pod", meshed), "plugins": plugin_runs(plugins, by["timed"]["ids"]),
               "add_snaps": [runs[c][0][4] for c in by["timed"]["ids"]], "del_snaps": [runs[c][1][4] for c in by["timed"]["ids"]]}
        self.rows.append(row)
        w, wo = by["with"], by["without"]
        log(f"  {size:>5} pods: meshwire-cni under containerd: ADD p50 {pct(row['adds'], 50):.2f} p95 {pct(row['adds'], 95):.2f} "
            f"p99 {pct(row['adds'], 99):.2f} ms, DEL p50 {pct(row['dels'], 50):.2f} p95 {pct(row['dels'], 95):.2f} "
            f"p99 {pct(row['dels'], 99):.2f} ms; RunPodSandbox p50 {pct(w['run'], 50):.1f} ms with, {pct(wo['run'], 50):.1f} without; "
            f"StopPodSandbox p50 {pct(w['stop'], 50):.1f} with, {pct(wo['stop'], 50):.1f} without; VERSION p50 {pct(versions, 50):.2f} "
            f"p99 {pct(versions, 99):.2f} ms; {row['switch_s']:.1f} s waiting for chain reloads (machine {busy:.0%} busy)")
        log("         input waits > %d ms (ADD, DEL): %s" % (LONG_WAIT_MS, ", ".join(
            f"{name} {long_share(row['plugins'][name]['ADD']):.0%} {long_share(row['plugins'][name]['DEL']):.0%}" for name in TIMED_PLUGINS)))

    def leftovers(self):
        """What the measured pods left (the background pods deleted by
        meshwire-cni DEL first): pods in the loader, records, tc pins,
        sandboxes in containerd (and so their containers), network namespaces, libcni's
        cache entries. [] when nothing."""
        for i in list(self.bg_order):
            self.cni("DEL", i, self.bg_cid[i])
        self.bg_order, self.meshed_bg = [], 0
        left = [f"meshed pod {p}" for p in self.listed()]
        pins = f"{self.bpffs}/{NODE}/pods"
        # A DEL's bare clsact qdisc goes with the loader's reaper, about 1 s
        # later, and its pins with it (docs/benchmarking.md): up to 5 s.
        deadline = time.monotonic() + 5
        while os.path.isdir(pins) and os.listdir(pins) and time.monotonic() < deadline:
            time.sleep(0.1)
        if os.path.isdir(pins):
            left += [f"tc pins {pins}/{d}" for d in os.listdir(pins)]
        for root, _, files in os.walk(self.state):
            left += [f"record {root}/{f}" for f in files if "pod" in root or f.endswith(".json")]
        sbx = self.cri_call(lambda: self.c.call("ListPodSandbox", self.c.pb.ListPodSandboxRequest())).items
        left += [f"sandbox {s.id[:12]} {s.metadata.name}" for s in sbx]
        left += [f"network namespace /run/netns/{n}" for n in os.listdir("/run/netns") if not n.startswith(self.P + "-")]
        for root, _, files in os.walk("/var/lib/cni"):
            left += [f"CNI cache {root}/{f}" for f in files if "results" in root]
        pods_cg = f"{self.cg_root}/mesh-{NODE}/pods"
        for root, _, files in os.walk(pods_cg):
            if "cgroup.procs" in files and open(f"{root}/cgroup.procs").read().strip():
                left.append(f"processes in {root}")
        return left

    def main(self):
        a = self.args
        t_start = time.monotonic()
        self.setup()
        log(f"runtime: {self.versions}, {self.runc}; sizes {a.sizes}, {a.samples} pods per turn and size; work dir {self.work}")
        self.start_loader()
        for size in a.sizes:
            self.measure(size)
        left = self.leftovers()
        if left:
            raise Fatal(f"proof failed: the run left {len(left)} things: {'; '.join(left[:20])}")
        log("  nothing left: no pod meshed, record, tc pin, sandbox, network namespace or CNI cache entry")
        self.elapsed = time.monotonic() - t_start
        report(self)

    # ------------------------------------------------------------------ cleanup
    def cleanup_procs(self):
        """The pods through the CRI while the loader still answers their
        DELs, then containerd and its node (containerd_node.sh's teardown),
        then the rest."""
        if self.c is not None and self.node_p is not None and self.node_p.poll() is None:
            try:
                ids = self.sandboxes | {s.id for s in self.c.call("ListPodSandbox", self.c.pb.ListPodSandboxRequest(), timeout=30).items}
                for sid in ids:
                    for method, req in (("StopPodSandbox", self.c.pb.StopPodSandboxRequest), ("RemovePodSandbox", self.c.pb.RemovePodSandboxRequest)):
                        try:
                            self.c.call(method, req(pod_sandbox_id=sid), timeout=60)
                        except self.cri.CriError as e:
                            log(f"clean-up: {method} {sid[:12]}: {e}")
            except self.cri.CriError as e:
                log(f"clean-up: listing containerd's pods: {e}")
        if self.c is not None:
            self.c.channel.close()
        if self.node_p is not None:
            try:
                self.node_p.stdin.close()
                self.node_p.wait(120)
            except (OSError, subprocess.TimeoutExpired):
                self.node_p.terminate()
                self.node_p.wait(60)
            if self.node_p.returncode != 0:
                log(f"clean-up: containerd_node.sh exited {self.node_p.returncode}: {open(self.node_log).read()[-800:]}")
        super().cleanup_procs()


def log_ns(line):
    """ns since the epoch of a loader log line's "2026-12-07T02:17:48.106622791Z"."""
    stamp = line.split(" ", 1)[0]
    whole, _, frac = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(frac.ljust(9, "0")[:9])


def loader_answers(text, ids):
    """{"add_pod"|"del_pod": {container ID: (ns when the loader logged it,
    right after writing its answer; the loader's ms for it)}}, the first of
    each for these IDs."""
    out = {"add_pod": {}, "del_pod": {}}
    for line in text.splitlines():
        for what in out:
            k = line.find(f"api: {what} ")
            if k < 0:
                continue
            rest = line[k + len(f"api: {what} "):]
            cid = rest.split(" ", 1)[0]
            if cid in ids and cid not in out[what]:
                out[what][cid] = (log_ns(line), scale.took(rest.split(": ", 1)[1])["total (loader)"])
    return out


def plugin_runs(plugins, ids):
    """{plugin: {"ADD" | "DEL" | "DEL again": [(ms, stdin ms or None,
    snapshot or None, start ns, concurrent)]}} over the timed pods `ids`:
    each one's ADD, its first DEL (StopPodSandbox's) and its second
    (RemovePodSandbox's) as cni_timer recorded them; *concurrent*: another
    plugin containerd execs for the same pod and command ran while this one
    waited for its input (go-cni attaches lo's and eth0's networks at once). Every plugin must
    have an ADD and a DEL of each pod: that the timer ran in its place is
    what the figures rest on."""
    out = {name: {"ADD": [], "DEL": [], "DEL again": []} for name in plugins}
    for cid in ids:
        got = {}
        for name, by_cid in plugins.items():
            adds = [r[1:] for r in by_cid.get(cid, []) if r[0] == "ADD"]
            dels = [r[1:] for r in by_cid.get(cid, []) if r[0] == "DEL"]
            if not adds or not dels:
                raise Fatal(f"cni_timer did not record {name}'s ADD and DEL of timed pod {cid[:12]}: "
                            f"{[r[0] for r in by_cid.get(cid, [])]}")
            got[name] = {"ADD": adds[:1], "DEL": dels[:1], "DEL again": dels[1:2]}
        for name in plugins:
            for what, runs in got[name].items():
                others = [o for n in CONTAINERD_EXECS if n != name for o in got[n][what]]
                out[name][what] += [r + (name in CONTAINERD_EXECS and any(overlaps(r, o) for o in others),) for r in runs]
    return out


def overlaps(r, o):
    """Whether run o (ms, stdin ms, snapshot, start ns, ...) was running
    at some moment from run r's spawn until its input came (or its exit)."""
    wait = r[1] if r[1] is not None else r[0]
    return o[3] <= r[3] + wait * 1e6 and r[3] <= o[3] + o[0] * 1e6


def split_run(run, answer):
    """One meshwire-cni run of cni_timer's (command, ms, start ns, stdin ms)
    cut where the loader's log puts its request: (exec to exit, the netconf
    on stdin after, before the loader read the request, the loader, after
    its answer), ms; None where not known. Before: meshwire-cni's process
    start, waiting for the netconf containerd writes, parsing, connecting
    and sending, the loader's wake-up. After: the answer back, meshwire-cni's
    output to containerd and its exit."""
    _, ms, start, stdin, _ = run
    if answer is None:
        return (ms, stdin, None, None, None)
    logged, loader = answer
    end = start + ms * 1e6
    return (ms, stdin, (logged - loader * 1e6 - start) / 1e6, loader, (end - logged) / 1e6)


# ---------------------------------------------------------------------- report
def ms3(v):
    return " / ".join(fmt(pct(v, p)) for p in (50, 95, 99)) if v else "-"


def long_share(runs):
    """The share of (ms, stdin ms, snapshot) runs whose input came later
    than LONG_WAIT_MS (or never)."""
    return sum(1 for r in runs if r[1] is None or r[1] > LONG_WAIT_MS) / len(runs) if runs else 0.0


def plugin_rows(label, plugins):
    """Table rows per plugin and command of plugin_runs' {plugin: {command: runs}}."""
    L = []
    for name in TIMED_PLUGINS:
        for what in ("ADD", "DEL"):
            runs = plugins[name][what]
            waits = [r[1] for r in runs if r[1] is not None]
            slow = [w for w in waits if w > LONG_WAIT_MS]
            L.append(f"| {label} | {name} | {what} | {len(runs)} | {ms3([r[0] for r in runs])} | {ms3(waits)} | "
                     f"{long_share(runs):.1%} | {sum(1 for w in slow if w < 9)} / {sum(1 for w in slow if 9 <= w <= 14)} / "
                     f"{sum(1 for w in slow if w > 14)} |")
    return L


def snap_rows(label, plugins):
    """Table rows per plugin: what the caller was doing SNAP_MS ms into a
    late input, from cni_timer's snapshots."""
    L = []
    for name in TIMED_PLUGINS:
        snaps = [x for what in ("ADD", "DEL", "DEL again") for x in plugins[name][what] if x[2]]
        if not snaps:
            continue
        snap = [x[2] for x in snaps]
        L.append(f"| {label} | {name} | {len(snaps)} | {statistics.median(s[0] for s in snap):.0f} | "
                 f"{sum(1 for s in snap if s[1] == 0)} / {sum(1 for s in snap if s[1] == 1)} / {sum(1 for s in snap if s[1] >= 2)} | "
                 f"{sum(1 for s in snap if s[2])} | {statistics.median(s[3] for s in snap):.0f} "
                 f"({min(s[3] for s in snap)}-{max(s[3] for s in snap)}) | "
                 f"{fmt(pct([x[1] for x in snaps if x[1] is not None], 50))} |")
    return L


def overlap_rows(label, plugins):
    """Table rows per plugin containerd execs: long input waits of its runs
    while another of them ran, against those alone."""
    L = []
    for name in CONTAINERD_EXECS:
        for what in ("ADD", "DEL"):
            runs = plugins[name][what]
            both, alone = [r for r in runs if r[4]], [r for r in runs if not r[4]]
            L.append(f"| {label} | {name} | {what} | {len(both)} | {long_share(both):.1%} | {ms3([r[1] for r in both if r[1] is not None])} "
                     f"| {len(alone)} | {long_share(alone):.1%} | {ms3([r[1] for r in alone if r[1] is not None])} |")
    return L


def main_table(rows):
    L = ["| pods meshed | ADD p50 / p95 / p99 (ms) | DEL in StopPodSandbox p50 / p95 / p99 (ms) | targets (ADD p99 <= 10, DEL p99 <= 5) "
         "| DEL again in RemovePodSandbox, no namespace: p50 / p99 (ms) | VERSION, spawned by the bench: p50 / p99 (ms) | machine busy |",
         "|---|---|---|---|---|---|---|"]
    for r in rows:
        ok = [f"ADD {'met' if pct(r['adds'], 99) <= 10 else 'NOT met'}", f"DEL {'met' if pct(r['dels'], 99) <= 5 else 'NOT met'}"]
        L.append(f"| {r['pods']:,} | {ms3(r['adds'])} | {ms3(r['dels'])} | {', '.join(ok)} | "
                 f"{fmt(pct(r['dels_remove'], 50))} / {fmt(pct(r['dels_remove'], 99))} | {fmt(pct(r['versions'], 50))} / "
                 f"{fmt(pct(r['versions'], 99))} | {r['load']:.0%} |")
    return L


def start_table(rows):
    L = ["| pods meshed | call | without meshwire-cni p50 / p95 / p99 (ms) | with p50 / p95 / p99 (ms) | added, p50 (ms) | ratio, p50 "
         "| added, median of the rounds' differences (ms) | with cni_timer p50 (ms) |",
         "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["turns"]
        for call, key in (("RunPodSandbox", "run"), ("StopPodSandbox", "stop"), ("RemovePodSandbox", "remove")):
            w, wo = pct(t["with"][key], 50), pct(t["without"][key], 50)
            paired = statistics.median(x - y for x, y in zip(t["with"][key], t["without"][key]))
            L.append(f"| {r['pods']:,} | {call} | {ms3(t['without'][key])} | {ms3(t['with'][key])} | {w - wo:+.1f} | {w / wo:.2f}x "
                     f"| {paired:+.1f} | {fmt(pct(t['timed'][key], 50))} |")
    return L


def report(s):
    a = s.args
    m = machine()
    rows = s.rows
    L = ["# meshwire-cni with a real runtime driving the chain",
         "",
         f"Generated by `./bazelw run //tools/bench -- --mode runtime` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
         f"{' (' + a.note + ')' if a.note else ''}: {m['cpu']}, {m['mem']}, Linux {m['kernel']}; {s.versions}, {s.runc}; "
         f"{s.elapsed:.0f} s in all."
         f"{' containerd started with ' + ', '.join(k + '=' + v for k, v in s.containerd_env.items()) + ' in its environment (--containerd-env; its plugins inherit it).' if s.containerd_env else ''}",
         "",
         f"**Machine load**: while the pods ran, {', '.join(format(r['load'], '.0%') for r in rows)} of the machine's "
         f"{os.cpu_count()} CPUs were busy (all processes, this run's included; load average at the end "
         f"{' '.join(open('/proc/loadavg').read().split()[:3])}). Latencies are wall-clock: other work on the machine "
         "lengthens them, the tail above all.",
         "",
         "How it measures: [benchmarking.md](benchmarking.md#cni-with-a-real-runtime). containerd and runc (Debian's) on a node of "
         "the bench's own, as //test:cri_e2e runs them, driven through the CRI as kubelet drives it; the chain bridge + host-local "
         "+ meshwire-cni as `meshwire-loader cni install` chains it; the background pods made as `--mode scale` makes them and "
         "meshed by meshwire-cni ADD, not sandboxes of containerd's. At each size "
         f"{a.samples} measured pods per turn, one pod per turn in rotating order: the chain without meshwire-cni, with it, and "
         "with it run through cni_timer, which gives meshwire-cni's ADD and DEL from its exec to its exit as containerd runs it "
         "(the same definition as `--mode scale`; containerd 1.6 runs DEL twice, in StopPodSandbox with the pod's namespace, the DEL "
         "the target is about, and in RemovePodSandbox without one; before each timed pod the bench spawned meshwire-cni "
         "VERSION itself, the exec floor of that moment). Every pod with meshwire-cni passed the loader's CHECK after RunPodSandbox and "
         "was gone from its pods after StopPodSandbox, none without it was meshed, one per size had a connection steered to its "
         "sidecar port with SO_ORIGINAL_DST answered, and the run left nothing (pods, records, tc pins, sandboxes, network "
         "namespaces, CNI cache).",
         "",
         "meshwire-cni under containerd, exec to exit (ms):",
         "",
         *main_table(rows),
         "",
         "The pod start's cost: CRI calls timed by the client (kubelet's view), meshwire-cni in the chain against the same "
         "chain without it, side by side in turns; *added* is the difference of the medians, *ratio* their quotient; the "
         "difference of each round's two pods (the same round: the same moment of the machine), their median; the timed turn's "
         "pods (cni_timer's exec on top) for reference:",
         "",
         *start_table(rows)]
    for what, key in (("ADD", "add_phases"), ("DEL", "del_phases")):
        names = []
        for r in rows:
            names += [n for n in r.get(key, {}) if n not in names]
        L += ["", f"Where the loader's part of {what} goes (median ms per request, the pods with meshwire-cni; the rest of the "
              "exec-to-exit time is meshwire-cni's process start, reading containerd's netconf, its parsing and the socket round "
              "trip):", "",
              "| phase | " + " | ".join(f"{r['pods']:,} pods" for r in rows) + " |", "|---|" + "---|" * len(rows)]
        for n in names:
            L.append(f"| {n} | " + " | ".join(fmt(statistics.median(r[key][n])) if r[key].get(n) else "-" for r in rows) + " |")
        L.append(f"| total (loader), p99 | " + " | ".join(fmt(pct(r[key].get("total (loader)", []), 99)) for r in rows) + " |")
        L.append(f"| exec to exit (p50) | " + " | ".join(fmt(pct(r['adds' if what == 'ADD' else 'dels'], 50)) for r in rows) + " |")
    L += ["", "Where meshwire-cni's exec-to-exit time goes under containerd, cut where the loader's log puts its request (it "
          "logs each answer, with the time, right after writing it): *before* is from the exec to the loader reading the "
          "request (meshwire-cni's process start, reading the netconf containerd writes, parsing, connecting; the loader's "
          "wake-up), *loader* its own account, *after* from its answer to meshwire-cni's exit (the answer back, the result "
          "to containerd, the exit). The log's time is taken once the answer is written, so it can only be late: *after* "
          "is then too small (below 0 when the line came after the exit) and *before* too large by as much. *netconf on "
          "stdin* is when the netconf containerd writes into the plugin's stdin pipe (after starting the plugin, from a "
          "goroutine of its own) was first readable, from the spawn (cni_timer polls the pipe without reading it); p50 / "
          "p99 of each over the timed pods, ms:", "",
          "| pods meshed | command | exec to exit | netconf on stdin | before | loader | after |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        for what, key in (("ADD", "add_split"), ("DEL", "del_split")):
            cols = [[x[i] for x in r[key] if x[i] is not None] for i in range(5)]
            L.append(f"| {r['pods']:,} | {what} | " + " | ".join(f"{fmt(pct(c, 50))} / {fmt(pct(c, 99))}" for c in cols) + " |")
    L += ["", "The slowest ADDs and DELs (the slowest 3% per size, at least 3), cut the same way (ms), with what containerd "
          f"was doing {SNAP_MS} ms into a late netconf (cni_timer's snapshot, threads : running : waiting for this plugin : the "
          "machine's running tasks; see below):", "",
          "| pods meshed | command | exec to exit | netconf on stdin | before | loader | after | containerd at "
          f"{SNAP_MS} ms |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for what, key, snaps in (("ADD", "add_split", "add_snaps"), ("DEL", "del_split", "del_snaps")):
            for x, snap in sorted(zip(r[key], r[snaps]), key=lambda x: -x[0][0])[:max(3, len(r[key]) * 3 // 100)]:
                L.append(f"| {r['pods']:,} | {what} | " + " | ".join(fmt(v) for v in x) + f" | {':'.join(map(str, snap)) if snap else '-'} |")
    pooled = {name: {what: [x for r in rows for x in r["plugins"][name][what]] for what in ("ADD", "DEL", "DEL again")}
              for name in TIMED_PLUGINS}
    L += ["", "Every plugin of the chain through cni_timer (the timed turn: the bin dir's loopback, bridge, host-local and "
          "meshwire-cni are all cni_timer, which runs the real one of the same name): exec to exit and *input wait*, "
          "from the spawn until the netconf its caller writes into its stdin pipe was readable. containerd execs "
          "loopback (for lo) and, at the same time, bridge then meshwire-cni (the eth0 chain; go-cni attaches the two "
          "networks from two goroutines; DEL removes them one after the other), "
          "each through libcni's os/exec, which writes the netconf from a goroutine started after the process; bridge "
          "execs host-local the same way (a Go process of its own, doing nothing else meanwhile). bridge's exec to exit "
          "includes host-local's and its timer's exec. DEL is the one in StopPodSandbox. *long* is the share of runs "
          f"whose input came more than {LONG_WAIT_MS} ms after the spawn, then how many of those came at {LONG_WAIT_MS}-9, "
          "9-14 and over 14 ms (ms):", "",
          "| pods meshed | plugin | command | runs | exec to exit p50 / p95 / p99 | input wait p50 / p95 / p99 | "
          f"long (> {LONG_WAIT_MS} ms) | of them at {LONG_WAIT_MS}-9 / 9-14 / 14+ ms |", "|---|---|---|---|---|---|---|---|"]
    L += plugin_rows("all", pooled)
    for r in rows:
        L += plugin_rows(f"{r['pods']:,}", r["plugins"])
    L += ["", f"What the caller was doing {SNAP_MS} ms into a late input (every run whose netconf was not readable "
          f"{SNAP_MS} ms after the spawn, ADD and both DELs, all sizes): cni_timer reads, at that moment, its parent's "
          "threads (containerd's, or bridge's for host-local) from /proc: how many, how many running or runnable (state "
          "R), whether one is blocked in waitid/wait4 on this very plugin run, and the machine's running tasks "
          "(/proc/stat procs_running, the timer's own read included). A thread of the caller waiting for the plugin "
          "while none of its threads runs, on a machine with a CPU free, means the goroutine that writes the netconf "
          "is runnable but no thread runs it: its P is held by the thread blocked in the wait, until Go's sysmon "
          "takes the P back:", "",
          "| pods meshed | plugin | late inputs | caller's threads (median) | of its threads running: none / 1 / 2+ "
          "(runs) | a thread waiting for this plugin (runs) | machine's running tasks, median (range) | input wait p50 (ms) |",
          "|---|---|---|---|---|---|---|---|"]
    L += snap_rows("all", pooled)
    L += ["", "The same runs split by whether another plugin containerd execs for the same pod was running at some moment "
          "between the plugin's spawn and its input (go-cni's ADD attaches the lo network and the eth0 chain from two "
          "goroutines at once, so loopback runs beside bridge or meshwire-cni; its DEL removes them one after the other): "
          f"runs, share with an input wait > {LONG_WAIT_MS} ms, and the input wait p50 / p95 / p99 (ms), all sizes:", "",
          "| pods meshed | plugin | command | another ran meanwhile: runs | long | input wait | alone: runs "
          "| long | input wait |", "|---|---|---|---|---|---|---|---|---|"]
    L += overlap_rows("all", pooled)
    L += ["", "The interception proofs:", ""] + [f"- {p}" for p in s.proofs] + [""]
    with open(a.out, "w") as f:
        f.write("\n".join(L))
    base = os.path.splitext(a.out)[0]
    with open(base + ".json", "w") as f:
        json.dump({"sizes": a.sizes, "samples": a.samples, "versions": s.versions, "runc": s.runc, "rows": rows}, f, indent=1)
    log(f"wrote {a.out}, {base}.json")
