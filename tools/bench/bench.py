#!/usr/bin/env python3
"""meshwire benchmark: direct, iptables mode, eBPF mode and eBPF with
acceleration, side by side, same node and two nodes, with HAProxy sidecars.

    ./bazelw run //tools/bench [-- --quick] [-- --out docs/benchmark.md]

Runs as root. Everything it creates carries the prefix mwb<PID>- (network
namespaces, cgroups under the cgroup2 mount, a work dir holding a private
bpffs) and is removed on exit, also when interrupted. Traffic stays inside
those namespaces. Only processes started here are signalled, by PID.

Topology (10.232.0.0/16, all in namespaces made here):

    cli  10.232.1.2 --- n1 (node 1) --- srv1 10.232.2.2      same node: cli -> srv1
                         | 10.232.254.1/.2
                        n2 (node 2) --- srv2 10.232.3.2      two nodes: cli -> srv2

Every pod runs an HAProxy sidecar (Debian's, `mode tcp`, `server s 0.0.0.0:0`,
UID 1500: forwards each connection to its SO_ORIGINAL_DST) with an outbound
listener 127.0.0.1:15001 and an inbound listener 0.0.0.0:15003. Server pods
run an HTTP app (HAProxy answering 200 itself), an echo server (mwtest echo)
and iperf3 -s. The client pod runs wrk, iperf3 and mwtest pingpong.

IPv6 (same node): cli and srv1 are dual-stack (fd00:232:1::2, fd00:232:2::2),
the loaders run with interception.ipv6 = "intercept". HAProxy 2.6 cannot
forward IPv6 by original destination (it reads SO_ORIGINAL_DST for IPv4
only), so the IPv6 run and an IPv4 twin use mwtest's sidecar, swapped in for
HAProxy in each mode's slot (see TOPOS).

Modes (the order rotates every repetition):
    direct      no loader, no rules: the sidecars run but nothing reaches them
    floor       no loader, no rules: the client dials its sidecar, which dials
                the server's sidecar, which dials the app, all by static
                configuration (HAProxy frontends of their own, `fl_*`): the
                sidecar pair's own cost, which no interception can remove
    iptables    meshwire-loader with interception.mode = "iptables"
    ebpf        meshwire-loader (eBPF mode, the default)
    ebpf+accel  eBPF mode with [acceleration] enabled = true
Each node has its own loader (own cgroup, pins and API socket). In direct and
iptables mode the pods' processes run in cgroups without meshwire's programs.

Every measured run checks that the mode intercepted exactly the connections
the load tool opened: the sidecars' session counters (HAProxy stats socket),
and the REDIRECT rule hits (iptables) or the BPF counters (eBPF) must agree;
a run that fails the check is not reported as a figure.
"""

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

NET = "10.232"
OUT_PORT, IN_PORT = 15001, 15003
HTTP_PORT, ECHO_PORT, IPERF_PORT = 8080, 7000, 5201
UID = 1500
MODES = ["direct", "floor", "iptables", "ebpf", "ebpf+accel"]
# floor: the server sidecar's static inbound port for each app port, and the
# client sidecar's static outbound port for each (server pod, app port).
FLOOR_IN = {ECHO_PORT: 15107, HTTP_PORT: 15108, IPERF_PORT: 15109}
POD_IP = {"cli": f"{NET}.1.2", "srv1": f"{NET}.2.2", "srv2": f"{NET}.3.2"}
# IPv6 (same node only): the pods on node 1 are dual-stack.
NET6 = "fd00:232"
POD_IP6 = {"cli": f"{NET6}:1::2", "srv1": f"{NET6}:2::2"}
POD_NODE = {"cli": "n1", "srv1": "n1", "srv2": "n2"}
POD_NET = {"cli": 1, "srv1": 2, "srv2": 3}
# (name, server pod, address family, sidecar). HAProxy 2.6 asks for the
# original destination of IPv4 connections only (SO_ORIGINAL_DST; for an
# AF_INET6 socket it takes getsockname(), which after a REDIRECT or a connect6
# rewrite is its own listener, so it would dial itself). The IPv6 run uses
# mwtest's sidecar, which reads IP6T_SO_ORIGINAL_DST, and so does its IPv4
# twin, so that IPv6 and IPv4 are compared with the same sidecar.
TOPOS = [("same node", "srv1", 4, "haproxy"), ("two nodes", "srv2", 4, "haproxy"),
         ("same node, IPv4, mwtest sidecar", "srv1", 4, "mwtest"),
         ("same node, IPv6, mwtest sidecar", "srv1", 6, "mwtest")]
V4_TWIN, V6_TOPO = TOPOS[2][0], TOPOS[3][0]
# --topos: a short name for each topology, in TOPOS' order.
TOPO_IDS = {"same": TOPOS[0][0], "two": TOPOS[1][0], "same-mwtest4": TOPOS[2][0], "same-mwtest6": TOPOS[3][0]}
# --tests: the measurements, each giving some of TESTS' figures.
TEST_IDS = {"rtt": ("rtt", "rtt_p99", "rtt_pin", "rtt_pin_p99", "cpu_rtt_pin"),
            "ka": ("rps", "cpu_req", "cpu_req_sys"), "cc": ("cps", "cpu_conn"), "iperf": ("gbps", "cpu_gb")}
WRK_CONNS = 8

TESTS = [
    # key, title, unit, better
    ("rtt", "round trip p50, unpinned", "us", "lower"),
    ("rtt_p99", "round trip p99, unpinned", "us", "lower"),
    ("rtt_pin", "round trip p50, pinned to one CPU", "us", "lower"),
    ("rtt_pin_p99", "round trip p99, pinned to one CPU", "us", "lower"),
    ("cpu_rtt_pin", "CPU per round trip, pinned (both pods)", "us", "lower"),
    ("rps", "HTTP keep-alive requests/s (wrk, 8 conns)", "req/s", "higher"),
    ("cpu_req", "CPU per keep-alive request (both pods)", "us", "lower"),
    ("cpu_req_sys", "... of which in the kernel (system time)", "us", "lower"),
    ("cps", "HTTP new connections/s (wrk, Connection: close)", "conn/s", "higher"),
    ("cpu_conn", "CPU per new connection (both pods)", "us", "lower"),
    ("gbps", "single-stream throughput (iperf3)", "Gbit/s", "higher"),
    ("cpu_gb", "CPU per GB transferred (both pods)", "ms", "lower"),
]


def enable_bpf_stats():
    """bpf(BPF_ENABLE_STATS, BPF_STATS_RUN_TIME): an fd that keeps run_time_ns and run_cnt
    counted until it is closed, whatever kernel.bpf_stats_enabled says meanwhile."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(8)  # union bpf_attr: enable_stats.type = 0
    fd = libc.syscall(321, 32, attr, 8)   # SYS_bpf (x86_64), BPF_ENABLE_STATS
    if fd < 0:
        raise Fatal(f"bpf(BPF_ENABLE_STATS): {os.strerror(ctypes.get_errno())}")
    return fd


def log(msg):
    print(msg, flush=True)


class Fatal(Exception):
    pass


def cgroup2_mount():
    for line in open("/proc/self/mountinfo"):
        pre, _, post = line.partition(" - ")
        if post.split()[0] == "cgroup2":
            return pre.split()[4]
    raise Fatal("no cgroup2 mount")


class Bench:
    def __init__(self, args):
        self.args = args
        self.P = f"mwb{os.getpid()}"
        self.loader = os.path.realpath(args.loader)
        self.mwtest = os.path.realpath(args.mwtest)
        self.procs = []          # Popen of everything started here
        self.ns_made = []
        self.cgroups = []        # created, in creation order
        self.work = None
        self.bpffs = None
        self.loaders = {}        # node -> Popen
        self.sidecars = {}       # pod -> (kind, Popen)
        self.pod_pids = {}       # pod -> [pid]
        self.stats_restore = None
        self.stats_fd = None     # BPF_ENABLE_STATS, held for the whole run
        self.results = []        # dicts: topo, mode, rep, test key -> value
        self.failures = []       # (topo, mode, rep, test, reason)
        self.bpf_progs = {}      # mode -> {prog: [runs, ns]}
        self.bpf_tests = {}      # (mode, topo, test key) -> {prog: [runs, ns, operations]}
        self.seq = 0
        self.log_of = {}
        self.notes = []
        self.profiles = {}
        self.event_counts = {}
        self.elapsed = 0.0
        self.load = None

    # ------------------------------------------------------------------ helpers
    def run(self, cmd, timeout=60, check=True, input=None):
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise Fatal(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[-800:]}")
        return p.stdout

    def ns(self, pod):
        return f"{self.P}-{pod}"

    def cg(self, pod, mode):
        # eBPF modes: under the node's attach point; else a cgroup without programs.
        if mode in ("ebpf", "ebpf+accel"):
            return f"{self.cg_root}/mesh-{POD_NODE[pod]}/{pod}"
        return f"{self.cg_root}/plain/{pod}"

    def in_pod(self, pod, mode, cmd, pin=None):
        """The command line that runs cmd in the pod's netns and cgroup."""
        pre = ["sh", "-c", 'echo $$ >"$1/cgroup.procs" || exit 125; shift; exec "$@"', "in-pod", self.cg(pod, mode)]
        pre += ["ip", "netns", "exec", self.ns(pod)]
        if pin is not None:
            pre += ["taskset", "-c", str(pin)]
        return pre + cmd

    def start(self, name, cmd):
        self.seq += 1
        path = f"{self.work}/{self.seq:03d}-{name}.log"
        out = open(path, "w")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        self.procs.append(p)
        self.log_of[p.pid] = path
        return p

    def stop(self, p, grace=3):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if p in self.procs:
            self.procs.remove(p)

    def wait_listen(self, pod, port, p, what):
        for _ in range(100):
            out = self.run(["ip", "netns", "exec", self.ns(pod), "ss", "-Hltn"], check=False)
            if re.search(rf":{port}\s", out):
                return
            if p.poll() is not None:
                raise Fatal(f"{what} in {pod} exited ({p.returncode}); see {self.work}")
            time.sleep(0.05)
        raise Fatal(f"{what} in {pod}: nothing listens on port {port} after 5 s")

    # -------------------------------------------------------------------- setup
    def prepare(self, kind, tools, binaries, bpffs=True):
        """Root and `tools` checked; a work dir with private copies of the
        `binaries` (attribute names) and a private bpffs (unless not
        `bpffs`: mount_bpffs later). Returns the cgroup2 mount."""
        if os.geteuid() != 0:
            raise Fatal("run as root (network namespaces, cgroups, BPF)")
        for tool in tools:
            if not shutil.which(tool):
                raise Fatal(f"{tool} not found; tools/setup.sh installs the benchmark's packages")
        cg2 = cgroup2_mount()
        self.work = tempfile.mkdtemp(prefix=f"{self.P}-{kind}.")
        # Private copies: a rebuild of bazel-bin during the run cannot pull them away.
        os.mkdir(f"{self.work}/bin")
        for attr in binaries:
            dst = f"{self.work}/bin/{os.path.basename(getattr(self, attr))}"
            shutil.copy2(getattr(self, attr), dst)
            setattr(self, attr, dst)
        self.bpffs = f"{self.work}/bpffs"
        os.mkdir(self.bpffs)
        if bpffs:
            self.mount_bpffs()
        return cg2

    def mount_bpffs(self):
        self.run(["mount", "-t", "bpf", f"{self.P}-bpffs", self.bpffs])

    def setup(self):
        cg2 = self.prepare("bench", ("haproxy", "wrk", "iperf3", "ip", "ss", "taskset", "iptables-save"), ("loader", "mwtest"))
        self.cg_root = f"{cg2}/{self.P}-bench"
        for d in ["", "/plain", "/mesh-n1", "/mesh-n2"] + [f"/plain/{p}" for p in POD_IP] + \
                 [f"/mesh-{POD_NODE[p]}/{p}" for p in POD_IP]:
            os.mkdir(self.cg_root + d)
            self.cgroups.append(self.cg_root + d)
        self.topology()
        with open("/proc/sys/kernel/bpf_stats_enabled") as f:
            self.stats_restore = f.read().strip()
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("1")
        # The sysctl is the machine's: another benchmark that ends meanwhile
        # writes back its own saved value, 0, and stats stop for everyone
        # (seen on a shared machine: measured runs with no program run).
        # Stats stay on while any BPF_ENABLE_STATS fd is open.
        self.stats_fd = enable_bpf_stats()

    def fresh_topology(self):
        """The namespaces of the last mode's slot deleted and made again: a
        mode must not meet what another left behind. Seen with shared ones:
        iptables mode leaves TIME_WAIT sockets (60 s) in the server pod on its
        inbound port, and eBPF mode's client sidecar, which dials that port
        itself (iptables mode's dialled the app port), picks the same source
        ports: the TIME_WAIT answers the SYN with an ACK, the client resets
        and sends its SYN again when a retransmission timer fires, milliseconds
        later (docs/benchmarking.md)."""
        self.delete_namespaces()
        self.topology()

    def delete_namespaces(self):
        # One `ip` for them all: the scale mode makes thousands.
        subprocess.run(["ip", "-force", "-b", "-"], input="".join(f"netns del {ns}\n" for ns in reversed(self.ns_made)),
                       capture_output=True, text=True)
        self.ns_made = []

    def topology(self):
        ip = lambda *a: self.run(["ip", *a])
        nsx = lambda ns, *a: self.run(["ip", "netns", "exec", ns, *a])
        for node in ("n1", "n2"):
            ip("netns", "add", self.ns(node))
            self.ns_made.append(self.ns(node))
            ip("-n", self.ns(node), "link", "set", "lo", "up")
            nsx(self.ns(node), "sysctl", "-qw", "net.ipv4.ip_forward=1")
            nsx(self.ns(node), "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        ip("-n", self.ns("n1"), "link", "add", "n1n2", "type", "veth", "peer", "name", "n2n1", "netns", self.ns("n2"))
        ip("-n", self.ns("n1"), "addr", "add", f"{NET}.254.1/24", "dev", "n1n2")
        ip("-n", self.ns("n2"), "addr", "add", f"{NET}.254.2/24", "dev", "n2n1")
        ip("-n", self.ns("n1"), "link", "set", "n1n2", "up")
        ip("-n", self.ns("n2"), "link", "set", "n2n1", "up")
        for pod, i in POD_NET.items():
            node = self.ns(POD_NODE[pod])
            ns = self.ns(pod)
            ip("netns", "add", ns)
            self.ns_made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"v{pod}", "netns", node)
            ip("-n", ns, "addr", "add", f"{NET}.{i}.2/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "route", "add", "default", "via", f"{NET}.{i}.1")
            ip("-n", node, "addr", "add", f"{NET}.{i}.1/24", "dev", f"v{pod}")
            ip("-n", node, "link", "set", f"v{pod}", "up")
            # [::] listeners are IPv6-only, beside the IPv4 ones on 0.0.0.0.
            nsx(ns, "sysctl", "-qw", "net.ipv6.bindv6only=1")
            if pod in POD_IP6:
                ip("-n", ns, "addr", "add", f"{NET6}:{i}::2/64", "dev", "eth0", "nodad")
                ip("-n", node, "addr", "add", f"{NET6}:{i}::1/64", "dev", f"v{pod}", "nodad")
                ip("-n", ns, "-6", "route", "add", "default", "via", f"{NET6}:{i}::1")
            nsx(ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=15100 65000")
            nsx(ns, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1")
            other = "n2" if POD_NODE[pod] == "n1" else "n1"
            peer = f"{NET}.254.1" if POD_NODE[pod] == "n1" else f"{NET}.254.2"
            ip("-n", self.ns(other), "route", "add", f"{NET}.{i}.0/24", "via", peer)

    # ------------------------------------------------------------------ loaders
    def loader_cfg(self, node, mode):
        d = f"{self.work}/{node}"
        os.makedirs(d, exist_ok=True)
        cfg = f"""[sidecar]
uid = {UID}
outbound_port = {OUT_PORT}
inbound_port = {IN_PORT}
[interception]
mode = "{'iptables' if mode == 'iptables' else 'ebpf'}"
ipv6 = "intercept"
[acceleration]
enabled = {'true' if mode == 'ebpf+accel' else 'false'}
[bpf]
pin_dir = "{self.bpffs}/{node}"
cgroup = "{self.cg_root}/mesh-{node}"
[api]
socket = "{d}/api.sock"
state_dir = "{d}/state"
[log]
level = "warn"
"""
        with open(f"{d}/meshwire.toml", "w") as f:
            f.write(cfg)
        return f"{d}/meshwire.toml"

    def mwl(self, node, *args, timeout=30):
        return self.run([self.loader, "--config", f"{self.work}/{node}/meshwire.toml", *args], timeout=timeout)

    def start_loaders(self, mode):
        for node in ("n1", "n2"):
            cfg = self.loader_cfg(node, mode)
            p = self.start(f"loader-{node}-{mode}", [self.loader, "--config", cfg, "--log-level", "info", "run"])
            self.loaders[node] = p
            logf = self.procs_log(p)
            for _ in range(200):
                if "meshwire-loader: ready" in open(logf).read():
                    break
                if p.poll() is not None:
                    raise Fatal(f"loader {node} ({mode}) exited: {open(logf).read()[-1500:]}")
                time.sleep(0.05)
            else:
                raise Fatal(f"loader {node} ({mode}) not ready after 10 s")
            if mode == "ebpf+accel" and "acceleration is off" in open(logf).read():
                log(f"  note: loader {node}: {[l for l in open(logf) if 'acceleration is off' in l]}")
        for pod in POD_IP:
            v6 = ["--ip", POD_IP6[pod]] if pod in POD_IP6 else []
            self.mwl(POD_NODE[pod], "pod", "add", "--netns", f"/run/netns/{self.ns(pod)}", "--ip", POD_IP[pod], *v6,
                     "--ifname", "eth0", "--id", f"bench-{pod}")

    def procs_log(self, p):
        return self.log_of[p.pid]

    def stop_loaders(self):
        for node, p in list(self.loaders.items()):
            self.stop(p, 10)
            try:
                self.mwl(node, "cleanup", timeout=60)
            except Exception as e:  # noqa: BLE001 - report and go on cleaning
                log(f"  warning: cleanup of {node}: {e}")
        self.loaders = {}

    # ------------------------------------------------------------- pod processes
    def target(self, mode, srv, port, fam=4):
        """(host, port) the client dials for `port` of pod srv: the pod itself,
        or in floor mode its own sidecar's static frontend for it. The host
        of an IPv6 address is in brackets ([addr]), as URLs and mwtest take it."""
        if mode == "floor":
            return "127.0.0.1", 16000 + 10 * POD_NET[srv] + sorted(FLOOR_IN).index(port)
        return (POD_IP[srv] if fam == 4 else f"[{POD_IP6[srv]}]"), port

    def floor_frontends(self, pod):
        """The sidecar's static frontends of floor mode (unused in the other modes)."""
        fe = []
        if pod == "cli":
            for srv in (s for s in POD_IP if s != "cli"):
                for port, inb in FLOOR_IN.items():
                    host, local = self.target("floor", srv, port)
                    fe.append(f"frontend out_fl_{srv}_{port}\n    bind {host}:{local}\n    default_backend fl_{srv}_{port}\n"
                              f"backend fl_{srv}_{port}\n    server s {POD_IP[srv]}:{inb}\n")
        else:
            for port, inb in FLOOR_IN.items():
                fe.append(f"frontend in_fl_{port}\n    bind 0.0.0.0:{inb}\n    default_backend app_{port}\n"
                          f"backend app_{port}\n    server s 127.0.0.1:{port}\n")
        return "".join(fe)

    def haproxy_sidecar_cfg(self, pod):
        return f"""global
    maxconn 4000
    nbthread 1
    uid {UID}
    gid {UID}
    stats socket {self.work}/{pod}-sidecar.sock mode 600 level admin
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend out
    bind 127.0.0.1:{OUT_PORT}
    default_backend orig
frontend in
    bind 0.0.0.0:{IN_PORT}
    default_backend orig
backend orig
    server s 0.0.0.0:0
""" + self.floor_frontends(pod)

    def haproxy_app_cfg(self, pod):
        return f"""global
    maxconn 4000
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend app
    bind 0.0.0.0:{HTTP_PORT}
    bind [::]:{HTTP_PORT} v6only
    http-request return status 200 content-type text/plain string "ok"
"""

    def start_sidecar(self, pod, mode, kind):
        """The pod's sidecar: HAProxy, or mwtest's (IPv4 and IPv6 listeners,
        no marker line, one log line per connection: its session count)."""
        if kind == "haproxy":
            with open(f"{self.work}/{pod}-sidecar.cfg", "w") as f:
                f.write(self.haproxy_sidecar_cfg(pod))
            cmd = ["haproxy", "-db", "-f", f"{self.work}/{pod}-sidecar.cfg"]
        else:
            cmd = [self.mwtest, "sidecar", "--listen", f"127.0.0.1:{OUT_PORT}", "--listen6", f"[::1]:{OUT_PORT}",
                   "--inbound-listen", f"0.0.0.0:{IN_PORT}", "--inbound-listen6", f"[::]:{IN_PORT}",
                   "--no-marker", "--uid", str(UID)]
        p = self.start(f"{pod}-sidecar-{kind}-{mode}", self.in_pod(pod, mode, cmd))
        self.wait_listen(pod, IN_PORT, p, f"{kind} sidecar")
        self.sidecars[pod] = (kind, p)

    def use_sidecars(self, mode, kind):
        """Swap every pod's sidecar for one of `kind` unless it runs already."""
        for pod in POD_IP:
            cur = self.sidecars.get(pod)
            if cur and cur[0] == kind:
                continue
            if cur:
                self.stop(cur[1])
                for _ in range(100):  # its ports free again
                    if not re.search(rf":{IN_PORT}\s", self.run(["ip", "netns", "exec", self.ns(pod), "ss", "-Hltn"], check=False)):
                        break
                    time.sleep(0.05)
            self.start_sidecar(pod, mode, kind)

    def start_pods(self, mode):
        for pod in POD_IP:
            pids = []
            self.start_sidecar(pod, mode, "haproxy")
            if pod != "cli":
                with open(f"{self.work}/{pod}-app.cfg", "w") as f:
                    f.write(self.haproxy_app_cfg(pod))
                for what, port, cmd in [
                    ("app", HTTP_PORT, ["haproxy", "-db", "-f", f"{self.work}/{pod}-app.cfg"]),
                    ("echo", ECHO_PORT, [self.mwtest, "echo", "--listen", f"0.0.0.0:{ECHO_PORT}"]),
                ] + ([("echo6", ECHO_PORT, [self.mwtest, "echo", "--listen", f"[::]:{ECHO_PORT}"])] if pod in POD_IP6 else []) + [
                    ("iperf3", IPERF_PORT, ["iperf3", "-s", "-p", str(IPERF_PORT)]),
                ]:
                    p = self.start(f"{pod}-{what}-{mode}", self.in_pod(pod, mode, cmd))
                    self.wait_listen(pod, port, p, what)
            self.pod_pids[pod] = pids

    def stop_pods(self):
        for p in list(self.procs):
            if p not in self.loaders.values():
                self.stop(p)
        self.pod_pids = {}
        self.sidecars = {}

    def pin_pods(self, pods, cpus):
        for pod in pods:
            for pid in self.cgroup_pids(pod):
                self.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=False)

    def cgroup_pids(self, pod):
        pids = []
        for mode in ("direct", "ebpf"):
            try:
                pids += [int(x) for x in open(f"{self.cg(pod, mode)}/cgroup.procs").read().split()]
            except OSError:
                pass
        return pids

    # ----------------------------------------------------------------- counters
    def sessions(self, pod):
        """HAProxy sidecar frontends' total sessions: {'out': n, 'in': n}
        (floor mode's frontends `out_fl_*`, `in_fl_*` count with their side);
        for mwtest's sidecar, its log's `conn` and `inbound` lines."""
        kind, p = self.sidecars[pod]
        if kind == "mwtest":
            text = open(self.log_of[p.pid]).read()
            return {"out": len(re.findall(r"^conn peer=", text, re.M)), "in": len(re.findall(r"^inbound peer=", text, re.M))}
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(f"{self.work}/{pod}-sidecar.sock")
        s.sendall(b"show stat\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        lines = data.decode().splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            f = dict(zip(head, line.split(",")))
            if f.get("svname") == "FRONTEND":
                side = f["pxname"].split("_")[0]
                out[side] = out.get(side, 0) + int(f["stot"] or 0)
        return out

    def redirects(self, pod, fam=4):
        save = "iptables-save" if fam == 4 else "ip6tables-save"
        out = self.run(["ip", "netns", "exec", self.ns(pod), save, "-c", "-t", "nat"], check=False)
        hits = {"MESHWIRE_OUTPUT": 0, "MESHWIRE_INBOUND": 0}
        for line in out.splitlines():
            m = re.match(r"\[(\d+):\d+\] -A (MESHWIRE_\w+) .* -j REDIRECT ", line)
            if m:
                hits[m.group(2)] += int(m.group(1))
        return hits

    def bpf_stats(self, node):
        out = self.mwl(node, "stats")
        return {k: int(v) for k, v in (l.split() for l in out.splitlines() if len(l.split()) == 2)}

    def prog_stats(self):
        """Every program of both nodes' loaders: name -> [run_cnt, run_time_ns], exact (the
        loader's status rounds ns per run), read from the kernel by the ids status names."""
        ids = {}
        for node in ("n1", "n2"):
            for line in self.mwl(node, "status").splitlines():
                f = line.split()
                if len(f) >= 5 and f[0].startswith("mw_") and f[-2].isdigit() and f[-4].isdigit():
                    ids[int(f[-4])] = f[0]
        out = {}
        for info in json.loads(self.run(["bpftool", "-j", "prog", "show"])):
            name = ids.get(info.get("id"))
            if name:
                a = out.setdefault(name, [0, 0])
                a[0] += info.get("run_cnt", 0)
                a[1] += info.get("run_time_ns", 0)
        return out

    def syn_retrans(self, pod):
        """The pod's namespace's SYN retransmissions (TcpExt TCPSynRetrans)."""
        text = self.run(["ip", "netns", "exec", self.ns(pod), "cat", "/proc/net/netstat"])
        lines = [l.split() for l in text.splitlines() if l.startswith("TcpExt:")]
        return int(dict(zip(lines[0], lines[1]))["TCPSynRetrans"])

    def cpu_usec(self, pod, mode, what="usage_usec"):
        st = dict(l.split() for l in open(f"{self.cg(pod, mode)}/cpu.stat") if len(l.split()) == 2)
        return int(st[what])

    def snapshot(self, mode, srv, fam=4):
        snap = {"cpu_cli": self.cpu_usec("cli", mode), "cpu_srv": self.cpu_usec(srv, mode),
                "sys": self.cpu_usec("cli", mode, "system_usec") + self.cpu_usec(srv, mode, "system_usec"),
                "s_cli": self.sessions("cli"), "s_srv": self.sessions(srv),
                "syn_re": self.syn_retrans("cli") + self.syn_retrans(srv)}
        if mode == "iptables":
            snap["r_cli"] = self.redirects("cli", fam)
            snap["r_srv"] = self.redirects(srv, fam)
        elif mode not in ("direct", "floor"):
            snap["b_n1"] = self.bpf_stats("n1")
            snap["b_n2"] = self.bpf_stats("n2")
            snap["progs"] = self.prog_stats()
        return snap

    def record_progs(self, mode, topo, key, before, after, ops):
        """Each program's runs and run time over one measured run (bpf_stats per test)."""
        if "progs" not in before:
            return
        acc = self.bpf_tests.setdefault((mode, topo, key), {})
        if not any(n > before["progs"].get(name, (0, 0))[0] for name, (n, _) in after["progs"].items()):
            self.notes.append(f"{mode}, {topo}, {key}: bpf_stats counted no program run over a measured run")
        for name, (n1, t1) in after["progs"].items():
            n0, t0 = before["progs"].get(name, (0, 0))
            if n1 > n0:
                a = acc.setdefault(name, [0, 0, 0])
                a[0] += n1 - n0
                a[1] += t1 - t0
                a[2] += ops

    def verify(self, mode, srv, before, after, conns, slack=0, fam=4):
        """None if the run was intercepted as the mode says, else the reason.
        conns: the connections the load tool opened (an int, or a (lo, hi)
        range); slack: how many connections may be torn down while in flight
        when the tool stops (accepted by the client sidecar but never passed
        on), so that the counters of the two sides may differ by that much."""
        lo, hi = conns if isinstance(conns, tuple) else (conns, conns)
        near = lambda x, y: abs(x - y) <= slack
        out = after["s_cli"]["out"] - before["s_cli"]["out"]
        inb = after["s_srv"]["in"] - before["s_srv"]["in"]
        if mode == "direct":
            if out or inb:
                return f"direct, yet the sidecars accepted {out} outbound / {inb} inbound sessions"
            return None
        if not lo <= out <= hi:
            return f"client sidecar accepted {out} outbound sessions, the load tool opened {lo}..{hi} connections"
        if not near(inb, out):
            return f"server sidecar accepted {inb} inbound sessions, client sidecar {out} outbound"
        if mode == "floor":
            return None  # no loader: the sidecars were dialled, nothing intercepted
        if mode == "iptables":
            ro = after["r_cli"]["MESHWIRE_OUTPUT"] - before["r_cli"]["MESHWIRE_OUTPUT"]
            ri = after["r_srv"]["MESHWIRE_INBOUND"] - before["r_srv"]["MESHWIRE_INBOUND"]
            # The rules see new conntrack entries: a SYN retried after a
            # reused port met a TIME_WAIT socket, or a packet conntrack picked
            # up again, counts once more. More hits than sessions is noted;
            # fewer would mean connections that bypassed the rules.
            for side, hits, sess in (("outbound", ro, out), ("inbound", ri, inb)):
                if hits > sess + slack:
                    self.notes.append(f"{'iptables' if fam == 4 else 'ip6tables'}: the {side} REDIRECT rule counted {hits - sess} more new conntrack "
                                      f"entries than the sidecar accepted connections ({hits} vs {sess})")
            ro, ri = min(ro, out), min(ri, inb)
            if not (near(ro, out) and near(ri, inb)):
                return f"REDIRECT hits outbound {ro} / inbound {ri}, sidecar sessions {out} / {inb}"
            return None
        d = lambda node, k: after[f"b_{node}"].get(k, 0) - before[f"b_{node}"].get(k, 0)
        red = d("n1", "connect_redirected")
        same = srv == "srv1"
        inbound = d("n1", "connect_inbound") if same else d("n2", "tc_redirected")
        answered = d("n1", "sockopt_answered") + d("n2", "sockopt_answered")
        errors = sum(d(n, k) for n in ("n1", "n2") for k in ("connect_error", "sockops_error", "tc_error"))
        what = "connect_inbound" if same else "tc_redirected"
        # tc counts SYNs: a retransmitted SYN counts again (noted, not an error).
        if not same and inbound > inb:
            self.notes.append(f"{mode}, two nodes: tc redirected {inbound} SYNs for {inb} connections (retransmitted SYNs)")
            inbound = inb
        if not (near(red, out) and near(inbound, inb) and near(answered, out + inb)) or errors:
            return (f"BPF counters connect_redirected {red}, {what} {inbound}, sockopt_answered {answered}, "
                    f"errors {errors}; sidecar sessions {out} out / {inb} in")
        if mode == "ebpf+accel" and out and not d("n1", "accel_sock_added"):
            return "acceleration did not engage: accel_sock_added stayed 0"
        return None

    # -------------------------------------------------------------------- tests
    def measure(self, mode, topo, srv, rep, key, cmd, conns_of, pin=False, timeout=60, slack=0, fam=4):
        """Run one client command in the client pod; return (stdout, before, after, seconds) or None."""
        if pin:
            self.pin_pods(["cli", srv], "0")
        try:
            before = self.snapshot(mode, srv, fam)
            t0 = time.monotonic()
            try:
                p = subprocess.run(self.in_pod("cli", mode, cmd, pin=0 if pin else None),
                                   capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                self.fail(topo, mode, rep, key, f"{cmd[0]} timed out after {timeout} s")
                return None
            secs = time.monotonic() - t0
            time.sleep(0.3)  # let the sidecars account the last sessions
            after = self.snapshot(mode, srv, fam)
        finally:
            if pin:
                self.pin_pods(["cli", srv], f"0-{os.cpu_count() - 1}")
        if p.returncode != 0:
            self.fail(topo, mode, rep, key, f"{os.path.basename(cmd[0])} exit {p.returncode}: {(p.stderr or p.stdout).strip()[-300:]}")
            return None
        try:
            conns = conns_of(p.stdout)
        except Exception as e:  # noqa: BLE001
            self.fail(topo, mode, rep, key, f"cannot read the output of {cmd[0]}: {e}: {p.stdout[-300:]}")
            return None
        why = self.verify(mode, srv, before, after, conns, slack, fam)
        if why:
            self.fail(topo, mode, rep, key, f"interception check failed: {why}")
            return None
        # A refused SYN is sent again only when a timer fires: hundreds cut a rate.
        syn_re = after["syn_re"] - before["syn_re"]
        self.record(topo, mode, rep, f"syn_retrans_{key}", syn_re)
        if syn_re:
            self.notes.append(f"{mode}, {topo}, {key} (repetition {rep + 1}): {syn_re} SYN retransmissions in the client and server "
                              f"pods (each a connection that stalled until its SYN was sent again)")
        return p.stdout, before, after, secs

    def fail(self, topo, mode, rep, key, why):
        self.failures.append((topo, mode, rep, key, " ".join(str(why).split())[:400]))

    def record(self, topo, mode, rep, key, value):
        self.results.append({"topo": topo, "mode": mode, "rep": rep, "test": key, "value": value})

    def cpu_delta(self, mode, srv, before, after):
        return (after["cpu_cli"] - before["cpu_cli"]) + (after["cpu_srv"] - before["cpu_srv"])

    def run_tests(self, mode, rep):
        for topo, srv, fam, kind in TOPOS:
            if topo not in self.args.topos:
                continue
            if kind == "mwtest" and mode == "floor":
                continue  # mwtest's sidecar forwards by original destination only: no static wiring
            try:
                self.use_sidecars(mode, kind)
            except Exception as e:  # noqa: BLE001
                self.fail(topo, mode, rep, "sidecars", f"{type(e).__name__}: {e}")
                continue
            # The mwtest-sidecar pair measures what the IPv6 targets need:
            # round trips and keep-alive / new-connection HTTP.
            tests = (self.t_rtt, self.t_wrk, self.t_iperf) if kind == "haproxy" else (self.t_rtt, self.t_wrk)
            chosen = self.args.tests
            tests = [t_ for t_ in tests if (t_ == self.t_rtt and "rtt" in chosen) or (t_ == self.t_iperf and "iperf" in chosen)
                     or (t_ == self.t_wrk and ("ka" in chosen or "cc" in chosen))]
            for test in tests:
                try:
                    test(mode, rep, topo, srv, fam)
                except Exception as e:  # noqa: BLE001 - one measurement's problem, reported
                    self.fail(topo, mode, rep, test.__name__[2:], f"{type(e).__name__}: {e}")

    def t_rtt(self, mode, rep, topo, srv, fam=4):
        a = self.args
        dst, port = self.target(mode, srv, ECHO_PORT, fam)
        # Round trips on one persistent connection, unpinned then pinned.
        for pin in (False, True):
            key = "rtt_pin" if pin else "rtt"
            cmd = [self.mwtest, "pingpong", "--connect", f"{dst}:{port}", "--seconds", str(a.seconds), "--size", "64"]
            r = self.measure(mode, topo, srv, rep, key, cmd, lambda out: 1, pin=pin, fam=fam)
            if r:
                j = json.loads(r[0].strip().splitlines()[-1])
                self.record(topo, mode, rep, key, j["p50_us"])
                self.record(topo, mode, rep, key + "_p99", j["p99_us"])
                if pin:
                    self.record(topo, mode, rep, "cpu_rtt_pin", self.cpu_delta(mode, srv, r[1], r[2]) / j["round_trips"])
                self.record_progs(mode, topo, key, r[1], r[2], j["round_trips"])

    def t_wrk(self, mode, rep, topo, srv, fam=4):
        a = self.args
        dst, port = self.target(mode, srv, HTTP_PORT, fam)
        # HTTP keep-alive.
        wrk = ["wrk", "-t1", f"-c{WRK_CONNS}", f"-d{max(1, round(a.seconds))}s", f"http://{dst}:{port}/"]

        def wrk_requests(out):
            m = re.search(r"(\d+) requests in", out)
            if not m:
                raise ValueError("no 'requests in' line")
            errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            if errs or non2xx:
                raise ValueError(f"wrk reported errors: {errs.group(0) if errs else ''} {non2xx.group(0) if non2xx else ''}")
            return int(m.group(1))

        # wrk connects once to check the address before its connections.
        r = None if "ka" not in a.tests else self.measure(mode, topo, srv, rep, "rps", wrk, lambda out: (wrk_requests(out), (WRK_CONNS, WRK_CONNS + 1))[1],
                         slack=1, fam=fam)
        if r:
            n = wrk_requests(r[0])
            self.record(topo, mode, rep, "rps", float(re.search(r"Requests/sec:\s+([\d.]+)", r[0]).group(1)))
            self.record(topo, mode, rep, "cpu_req", self.cpu_delta(mode, srv, r[1], r[2]) / n)
            self.record(topo, mode, rep, "cpu_req_sys", (r[2]["sys"] - r[1]["sys"]) / n)
            self.record_progs(mode, topo, "rps", r[1], r[2], n)
        # New connection per request.
        close = wrk[:1] + ["-H", "Connection: close"] + wrk[1:]
        r = None if "cc" not in a.tests else self.measure(mode, topo, srv, rep, "cps", close,
                         lambda out: (wrk_requests(out), wrk_requests(out) + WRK_CONNS + 1), slack=WRK_CONNS + 1, fam=fam)
        if r:
            n = wrk_requests(r[0])
            self.record(topo, mode, rep, "cps", float(re.search(r"Requests/sec:\s+([\d.]+)", r[0]).group(1)))
            self.record(topo, mode, rep, "cpu_conn", self.cpu_delta(mode, srv, r[1], r[2]) / n)
            self.record_progs(mode, topo, "cps", r[1], r[2], n)

    def t_iperf(self, mode, rep, topo, srv, fam=4):
        a = self.args
        dst, port = self.target(mode, srv, IPERF_PORT, fam)
        # Single-stream throughput: a control connection and one data stream.
        ip3 = ["iperf3", "-c", dst, "-p", str(port), "-t", str(max(1, round(a.seconds))), "-J"]
        def iperf_conns(out):
            j = json.loads(out)
            if "error" in j:
                raise ValueError(f"iperf3: {j['error']}")
            return 2

        r = self.measure(mode, topo, srv, rep, "gbps", ip3, iperf_conns, fam=fam)
        if r:
            j = json.loads(r[0])
            recv = j["end"]["sum_received"]
            self.record(topo, mode, rep, "gbps", recv["bits_per_second"] / 1e9)
            # Bytes the client wrote over bytes the server read (in the JSON only).
            self.record(topo, mode, rep, "iperf_sent_over_received", j["end"]["sum_sent"]["bytes"] / max(1, recv["bytes"]))
            self.record(topo, mode, rep, "cpu_gb", self.cpu_delta(mode, srv, r[1], r[2]) / 1e3 / (recv["bytes"] / 1e9))
            self.record_progs(mode, topo, "gbps", r[1], r[2], recv["bytes"] / 2**20)

    def profile(self, mode, fam=4, kind="haproxy", topo_id="same", test="ka"):
        """perf samples of the client's and the sidecars' processes (wrk,
        haproxy, or mwtest's sidecar) during one same-node keep-alive run; not
        a measured run. Kept under `mode`, or `mode IPv4/IPv6 (mwtest)`."""
        label = mode if kind == "haproxy" else f"{mode} IPv{fam} (mwtest)"
        if (topo_id, test) != ("same", "ka"):
            label = f"{mode}, {TOPO_IDS[topo_id]}, {test}"
        srv = next(t_[1] for t_ in TOPOS if t_[0] == TOPO_IDS[topo_id])
        if mode == "floor" and kind != "haproxy":
            return
        self.use_sidecars(mode, kind)
        if not shutil.which("perf"):
            self.notes.append("no perf (linux-perf): no profile")
            return
        secs = max(1, round(self.args.seconds))
        tag = label.replace(" ", "_").replace("(", "").replace(")", "")
        data = f"{self.work}/perf-{tag}.data"
        perf = subprocess.Popen(["perf", "record", "-a", "-F", "1999"] + (["-g"] if self.args.profile_callgraph else []) +
                                ["-o", data, "--", "sleep", str(secs + 1)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Scheduler and syscall events, counted machine-wide over the wrk run
        # alone: what a request costs beyond CPU time (other work adds ~1%).
        counts = f"{self.work}/perf-stat-{tag}.csv"
        stat = subprocess.Popen(["perf", "stat", "-a", "-x", ",", "-o", counts,
                                 "-e", "context-switches,cpu-migrations,raw_syscalls:sys_enter", "--", "sleep", str(secs)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs += [perf, stat]
        time.sleep(0.5)
        dst, port = self.target(mode, srv, IPERF_PORT if test == "iperf" else HTTP_PORT, fam)
        if test == "iperf":
            cmd = ["iperf3", "-c", dst, "-p", str(port), "-t", str(secs)]
        else:
            cmd = ["wrk", "-t1", f"-c{WRK_CONNS}", f"-d{secs}s", f"http://{dst}:{port}/"]
            if test == "cc":
                cmd[1:1] = ["-H", "Connection: close"]
        out = subprocess.run(self.in_pod("cli", mode, cmd), capture_output=True, text=True, timeout=60).stdout
        stat.wait(30)
        perf.wait(30)
        self.procs.remove(perf)
        self.procs.remove(stat)
        if cmd[0] == "wrk":
            self.event_counts[label] = per_request_events(counts, out)
        prof = {}
        for sort in ("sym",):
            comms = "wrk,haproxy,iperf3" if kind == "haproxy" else "wrk,haproxy,mwtest,sidecar,outbound6,inbound,inbound6"
            out = self.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--percentage", "relative", "--comms", comms,
                            "--sort", sort, "--percent-limit", "1"], timeout=120, check=False)
            rows = []
            for line in out.splitlines():
                m = re.match(r"\s+([\d.]+)%\s+(?:\[\.\]|\[k\])?\s*(.+?)\s*$", line)
                if m and not line.lstrip().startswith("#"):
                    rows.append((float(m.group(1)), m.group(2)))
            prof[sort] = rows[:14]
        self.profiles[label] = prof

    def bpf_costs(self, mode):
        acc = self.bpf_progs.setdefault(mode, {})
        for node in ("n1", "n2"):
            out = self.mwl(node, "status")
            for line in out.splitlines():
                f = line.split()
                if len(f) >= 5 and f[0].startswith("mw_") and f[-2].isdigit():
                    runs = int(f[-2])
                    per = float(f[-1]) if f[-1] != "-" else 0.0
                    a = acc.setdefault(f[0], [0, 0.0])
                    a[0] += runs
                    a[1] += runs * per

    # ---------------------------------------------------------------- the run
    def main(self):
        a = self.args
        self.setup()
        log(f"meshwire benchmark: prefix {self.P}, {a.reps} repetitions, {a.seconds} s per measurement, work dir {self.work}")
        t_start = time.monotonic()
        busy0, ours0 = machine_busy(), self.ours()
        for rep in range(a.reps):
            modes = a.modes
            order = modes[rep % len(modes):] + modes[:rep % len(modes)]
            for slot, mode in enumerate(order):
                t0 = time.monotonic()
                if (rep or slot) and not a.reuse_netns:
                    self.fresh_topology()
                if mode not in ("direct", "floor"):
                    self.start_loaders(mode)
                self.start_pods(mode)
                try:
                    self.run_tests(mode, rep)
                    if mode.startswith("ebpf"):
                        self.bpf_costs(mode)
                    if rep == a.reps - 1 and not a.no_profile:
                        topo_id, test = a.profile_of
                        runs = ((4, "haproxy"), (4, "mwtest"), (6, "mwtest")) if (topo_id, test) == ("same", "ka") else ((4, "haproxy"),)
                        for fam, kind in runs:
                            try:
                                self.profile(mode, fam, kind, topo_id, test)
                            except Exception as e:  # noqa: BLE001 - not a measured run
                                self.notes.append(f"profile of {mode} IPv{fam} ({kind}): {type(e).__name__}: {e}")
                finally:
                    self.stop_pods()
                    self.stop_loaders()
                got = sum(1 for r in self.results if r["mode"] == mode and r["rep"] == rep and not r["test"].startswith("syn_retrans_"))
                bad = [f for f in self.failures if f[1] == mode and f[2] == rep]
                log(f"  rep {rep + 1}/{a.reps} {mode:<11} {time.monotonic() - t0:5.1f} s, {got} figures"
                    + (f", {len(bad)} runs not reported: {bad[0][4]}" if bad else ""))
        self.elapsed = time.monotonic() - t_start
        busy, ours = machine_busy() - busy0, self.ours() - ours0
        ncpu = os.cpu_count()
        self.load = (busy / self.elapsed / ncpu, (busy - ours) / self.elapsed / ncpu, open("/proc/loadavg").read().split()[:3])
        report(self)

    def ours(self):
        """CPU seconds used in this run's cgroups (pods and loaders' children)."""
        st = dict(l.split() for l in open(f"{self.cg_root}/cpu.stat") if len(l.split()) == 2)
        return int(st["usage_usec"]) / 1e6

    def cleanup(self):
        for step in (self.cleanup_procs, self.cleanup_loaders, self.cleanup_cgroup_procs, self.cleanup_system):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - go on with the next step
                log(f"clean-up step {step.__name__}: {type(e).__name__}: {e}")
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        left = [l for l in left.splitlines() if l.startswith(self.P + "-")]
        left += [c for c in self.cgroups if os.path.exists(c)]
        log("clean-up: nothing left" if not left else f"clean-up LEFT: {left}")

    def cleanup_procs(self):
        for p in list(self.procs):
            try:
                self.stop(p, 3)
            except Exception:  # noqa: BLE001
                pass

    def cleanup_loaders(self):
        for node in ("n1", "n2"):
            if self.work and os.path.exists(f"{self.work}/{node}/meshwire.toml"):
                subprocess.run([self.loader, "--config", f"{self.work}/{node}/meshwire.toml", "cleanup"],
                               capture_output=True, timeout=60)

    def cleanup_cgroup_procs(self):
        # Anything left in our cgroups descends from processes started here.
        for cg in reversed(self.cgroups):
            for _ in range(50):
                try:
                    pids = open(f"{cg}/cgroup.procs").read().split()
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.1)

    def cleanup_system(self):
        self.delete_namespaces()
        for cg in reversed(self.cgroups):
            for _ in range(50):
                try:
                    os.rmdir(cg)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
        if self.stats_restore is not None:
            with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
                f.write(self.stats_restore)
        if self.stats_fd is not None:
            os.close(self.stats_fd)
            self.stats_fd = None
        if self.bpffs:
            subprocess.run(["umount", self.bpffs], capture_output=True)
        if self.work and not self.args.keep_logs:
            shutil.rmtree(self.work, ignore_errors=True)
        elif self.work:
            log(f"logs kept in {self.work}")


# ---------------------------------------------------------------------- report
def per_request_events(csv_path, wrk_out):
    """{event: count per request} from `perf stat -x,` and wrk's output; {}
    when either is missing. wrk ran about as long as perf counted, and its
    request count is over its whole run, so this is an estimate."""
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", wrk_out or "")
    try:
        lines = open(csv_path).read().splitlines()
    except OSError:
        return {}
    if not m or int(m.group(1)) == 0:
        return {}
    n = int(m.group(1))
    out = {}
    for line in lines:
        f = line.split(",")
        if len(f) >= 3 and f[0].strip().isdigit():
            out[f[2]] = int(f[0]) / n
    return out


def machine_busy():
    """CPU seconds the whole machine has been busy (all but idle and iowait)."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def med(v):
    return statistics.median(v) if v else None


def fmt(x, unit=""):
    if x is None:
        return "-"
    if abs(x) >= 1000:
        s = f"{x:,.0f}"
    elif abs(x) >= 100:
        s = f"{x:.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.2f}"
    return s


def machine():
    model = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = int(open("/proc/meminfo").readline().split()[1]) // (1024 * 1024)
    def ver(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.splitlines()[0].strip()
        except Exception:  # noqa: BLE001
            return "?"
    return {
        "cpu": f"{os.cpu_count()} x {model}",
        "mem": f"{mem} GiB",
        "kernel": os.uname().release,
        "haproxy": ver(["haproxy", "-v"]).split(" - ")[0],
        "wrk": ver(["wrk", "-v"]).split(" Copyright")[0],
        "iperf3": ver(["iperf3", "-v"]),
        "iptables": ver(["iptables", "-V"]),
    }


def table(b):
    """{(topo, mode, test): [values]}"""
    t = {}
    for r in b.results:
        t.setdefault((r["topo"], r["mode"], r["test"]), []).append(r["value"])
    return t


def report(b):
    a = b.args
    t = table(b)
    m = machine()
    lines = []
    w = lines.append
    w("# meshwire benchmark")
    w("")
    w(f"Generated by `./bazelw run //tools/bench{' -- --quick' if a.quick else ''}` on "
      f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {m['cpu']}, {m['mem']}, Linux {m['kernel']}; "
      f"{m['haproxy']}, {m['wrk']}, {m['iperf3']}, {m['iptables']}." + (f" {a.note}" if a.note else ""))
    modes = [m_ for m_ in MODES if m_ in a.modes]
    if modes != MODES or len(a.topos) != len(TOPOS) or len(a.tests) != len(TEST_IDS):
        w(f"A partial run: modes {', '.join(modes)}; topologies {'; '.join(a.topos)}; measurements {', '.join(a.tests)}.")
    w(f"{a.reps} repetitions of every measurement ({a.seconds} s each), the {len(modes)} modes interleaved "
      f"(the order rotates every repetition); {b.elapsed:.0f} s in all. Each cell: the median, "
      "[min-max] over the repetitions, then the ratio of medians to iptables mode (`ipt`) and to direct (`dir`).")
    if b.load:
        w("")
        w(f"**Machine load during the run**: {b.load[0] * 100:.0f}% of its {os.cpu_count()} CPUs busy, "
          f"{b.load[1] * 100:.0f}% of them by processes other than this benchmark's pods (load average at the end "
          f"{' '.join(b.load[2])}). Other work on the machine inflates wall-clock figures (rates, round trips, "
          "unpinned p99 above all) and their spread; CPU time per request, connection, round trip or GB is "
          "measured per pod cgroup and holds up better.")
    w("")
    w("Setup: client pod and server pod(s) in network namespaces, each pod with an HAProxy sidecar "
      f"(`mode tcp`, `server s 0.0.0.0:0`, UID {UID}, one thread) on 127.0.0.1:{OUT_PORT} (outbound) and "
      f"0.0.0.0:{IN_PORT} (inbound); *same node*: both pods on one node netns; *two nodes*: node netns joined by a veth. "
      "`direct`: no interception (the sidecars idle); `floor`: no interception, the client dials its sidecar, which dials the server's sidecar, which dials the app, by static configuration; `iptables`: meshwire-loader with `interception.mode = \"iptables\"`; "
      "`ebpf`: the default mode; `ebpf+accel`: with `[acceleration] enabled = true`. A request crosses "
      "app -> client sidecar -> server sidecar -> app in every mode but direct. "
      "CPU figures are the usage of both pods' cgroups (client pod: load tool + sidecar; server pod: app + sidecar; "
      "softirq work is charged to the task it interrupts, this kernel has no IRQ time accounting) divided by "
      "requests, connections, round trips or GB. Pinned: every process of both pods and the client on CPU 0.")
    w("")
    w("Every run was checked for interception before its figures were kept: the client sidecar's outbound and "
      "the server sidecar's inbound session counts (HAProxy stats socket) equal the connections the load tool "
      "opened, and equal the REDIRECT rule hits (iptables) or the BPF counters connect_redirected, "
      "connect_inbound / tc_redirected and sockopt_answered (eBPF; with acceleration, accel_sock_added moved too); "
      "in direct mode the sidecars saw nothing. Exact for the round trips and iperf3; for wrk, up to the connections "
      f"torn down in flight when it stops (at most {WRK_CONNS + 1}: its {WRK_CONNS} connections and the one it opens "
      "first to check the address).")
    w("")
    figures = [x for x in TESTS if any(x[0] in TEST_IDS[i] for i in a.tests)]
    for topo, *_ in TOPOS:
        if topo not in a.topos:
            continue
        w(f"## {topo[0].upper() + topo[1:]}")
        w("")
        w("| figure | " + " | ".join(modes) + " |")
        w("|---|" + "---|" * len(modes))
        for key, title, unit, better in figures:
            cells = []
            base_ipt = med(t.get((topo, "iptables", key), []))
            base_dir = med(t.get((topo, "direct", key), []))
            for mode in modes:
                v = t.get((topo, mode, key), [])
                if not v:
                    cells.append("not reported")
                    continue
                c = f"**{fmt(med(v))}** [{fmt(min(v))}-{fmt(max(v))}]"
                rat = []
                if mode != "iptables" and base_ipt:
                    rat.append(f"{med(v) / base_ipt:.2f}x ipt")
                if mode != "direct" and base_dir:
                    rat.append(f"{med(v) / base_dir:.2f}x dir")
                if rat:
                    c += "<br>" + ", ".join(rat)
                cells.append(c)
            w(f"| {title} ({unit}) | " + " | ".join(cells) + " |")
        w("")
        w(f"Each interception's own overhead ({topo}): over the floor (the same sidecars wired statically); for the "
          "rates, the fraction of the floor's rate kept. In brackets, as a fraction of iptables mode's overhead.")
        w("")
        meshed = [m_ for m_ in modes if m_ not in ("direct", "floor")]
        w("| figure | " + " | ".join(meshed) + " |")
        w("|---|" + "---|" * len(meshed))
        for key, title, unit, better in figures:
            f = med(t.get((topo, "floor", key), []))
            i = med(t.get((topo, "iptables", key), []))
            cells = []
            for mode in meshed:
                x = med(t.get((topo, mode, key), []))
                if None in (f, x) or not f:
                    cells.append("-")
                elif better == "lower":
                    rel = f" ({(x - f) / (i - f):.2f}x ipt's)" if mode != "iptables" and i is not None and i - f > 0 else ""
                    cells.append(f"{x - f:+.3g} {unit}{rel}")
                else:
                    cells.append(f"{x / f:.2f}x floor")
            w(f"| {title} | " + " | ".join(cells) + " |")
        w("")
    accel_section(b, t, w, figures)
    targets_at = len(lines)
    # The performance targets (same node, acceleration on): overhead over direct at
    # most half iptables' (CPU per request, round trips), single-stream throughput
    # >= 1.5x and new connections/s >= 1.2x iptables mode's.
    w("## Against the targets (same node, ebpf+accel vs iptables mode)")
    w("")
    w("| target | measured | verdict |")
    w("|---|---|---|")
    topo = "same node"

    def g(mode, key):
        return med(t.get((topo, mode, key), []))

    # The modes run interleaved, so one repetition's figures were measured
    # side by side: the ratio per repetition shows how firmly a verdict holds.
    by_rep = {(r["topo"], r["mode"], r["test"], r["rep"]): r["value"] for r in b.results}
    reps = sorted({r["rep"] for r in b.results})

    def per_rep(key, ratio, modes=("direct", "iptables", "ebpf+accel")):
        out = []
        for rep in reps:
            v = [by_rep.get((topo, m_, key, rep)) for m_ in modes]
            r = None if None in v else ratio(*v)
            if r is not None:
                out.append(r)
        return out

    def overhead(d, i, x):
        return (x - d) / (i - d) if i - d > 0 else None

    for key, what in (("cpu_req", "CPU per keep-alive request"), ("rtt_pin", "p50 round trip, pinned"), ("rtt", "p50 round trip, unpinned")):
        d, i, x = g("direct", key), g("iptables", key), g("ebpf+accel", key)
        r = None if None in (d, i, x) else overhead(d, i, x)
        s_ = "-" if r is None else f"overhead over direct {x - d:.1f} us vs iptables' {i - d:.1f} us: {r:.2f}x"
        w(f"| {what}: overhead over direct <= 0.5x iptables' | {s_} | {verdict(r, per_rep(key, overhead), lambda v: v <= 0.5)} |")
    for key, what, goal in (("gbps", "single-stream throughput", 1.5), ("cps", "new connections/s", 1.2)):
        i, x = g("iptables", key), g("ebpf+accel", key)
        if None in (i, x):
            w(f"| {what} >= {goal}x iptables | - | no figures |")
        else:
            rs = per_rep(key, lambda d, i_, x_: x_ / i_)
            w(f"| {what} >= {goal}x iptables | {x / i:.2f}x ({fmt(x)} vs {fmt(i)}) | {verdict(x / i, rs, lambda v: v >= goal)} |")
    # Against the floor: the interception's own overhead, the sidecar pair's cost taken out.
    for key, what in (("cpu_req", "CPU per keep-alive request"), ("rtt_pin", "p50 round trip, pinned")):
        for mode, goal in (("ebpf+accel", 0.25), ("ebpf", 0.5)):
            f, i, x = g("floor", key), g("iptables", key), g(mode, key)
            r = None if None in (f, i, x) else overhead(f, i, x)
            s_ = "-" if r is None else f"{mode} {x - f:+.1f} us over the floor vs iptables' {i - f:+.1f} us: {r:.2f}x"
            rs = [v for v in per_rep(key, overhead, ("floor", "iptables", mode)) if v is not None]
            w(f"| {what}: {mode}'s overhead over the floor <= {goal}x iptables' | {s_} | {verdict(r, rs, lambda v: v <= goal)} |")
    f, d = g("floor", "rtt_pin"), g("direct", "rtt_pin")
    if None not in (f, d):
        i, x = g("iptables", "rtt_pin"), g("ebpf+accel", "rtt_pin")
        best = None if None in (i, x) else (f - d) / (i - d)
        w(f"| (the floor itself: pinned p50 {fmt(f)} us, {f - d:+.1f} us over direct: the sidecar pair alone is "
          f"{'-' if best is None else f'{best:.2f}x'} of iptables' overhead over direct, so no interception can bring "
          f"that ratio below it) | - | for reference |")
    for mode in ("ebpf",):
        for key, what in (("cpu_req", "CPU per keep-alive request"), ("gbps", "throughput"), ("cps", "new connections/s")):
            i, x = g("iptables", key), g(mode, key)
            if None not in (i, x):
                w(f"| (eBPF without acceleration: {what} vs iptables) | {x / i:.2f}x | for reference |")
    w("")
    ipv6_section(b, t, w, by_rep, reps)
    if modes != MODES or len(a.topos) != len(TOPOS):
        del lines[targets_at:]  # a partial run: those sections need every mode and topology
        w("(A partial run: no verdicts against the targets and no IPv6 section; they need every mode and topology.)")
        w("")
    w("## BPF programs' own cost (kernel.bpf_stats_enabled: run_time_ns / run_cnt, all runs of the mode)")
    w("")
    w("Every run of the mode, weighted by how often each test runs each program; per topology and test in the "
      "next table. Why these exceed `--mode hooks`' figures (set-up paths, cold caches): docs/benchmarking.md, "
      "\"Why the full benchmark reports 2-4x these figures\".")
    w("")
    w("| program | " + " | ".join(f"{m_} runs | {m_} ns/run" for m_ in ("ebpf", "ebpf+accel")) + " |")
    w("|---|" + "---|" * 4)
    progs = sorted({p for d in b.bpf_progs.values() for p in d})
    for p in progs:
        cells = []
        for m_ in ("ebpf", "ebpf+accel"):
            runs, ns = b.bpf_progs.get(m_, {}).get(p, [0, 0.0])
            cells += [f"{runs:,}", f"{ns / runs:.0f}" if runs else "-"]
        w(f"| `{p}` | " + " | ".join(cells) + " |")
    w("")
    tests_section(b, w)
    if b.profiles:
        w("## Where the time goes (perf" + (", same node, keep-alive)" if a.profile_of == ("same", "ka") else
                                           f", {TOPO_IDS[a.profile_of[0]]}, {a.profile_of[1]})"))
        w("")
        run_of = "same-node keep-alive wrk" if a.profile_of == ("same", "ka") else \
            f"{TOPO_IDS[a.profile_of[0]]} {dict(ka='keep-alive wrk', cc='new-connection wrk', iperf='iperf3')[a.profile_of[1]]}"
        w(f"`perf record -a` during one extra {run_of} run per mode after the last repetition (not a "
          "measured run), samples of the wrk and haproxy processes only (client, both sidecars and the HTTP app; softirq "
          "work is sampled in the task it interrupts), by symbol (>= 1% of those samples). The `IPv4 (mwtest)` and `IPv6 (mwtest)` "
          "rows: the same over the pods' mwtest sidecars (their threads' samples too), to the pod's IPv4 or IPv6 address. The split between the kernel and "
          "user space is the system-time row above.")
        w("")
        for mode in profile_labels(b.profiles):
            pr = b.profiles.get(mode)
            if not pr:
                continue
            sym = ", ".join(f"`{n[:60]}` {p:.1f}%" for p, n in pr.get("sym", []) if n != "[unknown]")
            w(f"- **{mode}**: {sym}")
        w("")
    if any(b.event_counts.values()):
        w("Per keep-alive request in the same run (`perf stat -a`, machine-wide, divided by wrk's requests; the "
          "syscall tracepoint this needs shows in the profile above as `perf_tp_event`). The syscalls the sidecar pair "
          "adds over direct are there whatever the interception: acceleration removes the TCP/IP stack under them, not "
          "them. Under this load the processes stay busy, so few requests cost a context switch.")
        w("")
        labels = [m for m in profile_labels(b.event_counts) if b.event_counts.get(m)]
        w("| per request | " + " | ".join(labels) + " |")
        w("|---|" + "---|" * len(labels))
        for ev, label in (("context-switches", "context switches"), ("raw_syscalls:sys_enter", "syscalls"),
                          ("cpu-migrations", "CPU migrations")):
            w(f"| {label} | " + " | ".join(f"{b.event_counts[m].get(ev, float('nan')):.1f}" for m in labels) + " |")
        w("")
    if b.notes:
        w("## Notes from the runs")
        w("")
        for n in sorted(set(b.notes)):
            w(f"- {n} ({b.notes.count(n)}x)")
        w("")
    w("## Runs not reported")
    w("")
    if not b.failures:
        w("None: every run passed its interception check.")
    else:
        w("| topology | mode | repetition | measurement | why |")
        w("|---|---|---|---|---|")
        for topo_, mode, rep, key, why in b.failures:
            w(f"| {topo_} | {mode} | {rep + 1} | {key} | {why.replace('|', '/')} |")
    w("")
    w(f"![benchmark]({os.path.splitext(os.path.basename(a.out))[0]}.svg)")
    w("")
    out = a.out
    import scale
    kept = scale.section_of(out)  # the last --mode scale run's table stays
    if kept:
        w(kept)
        w("")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(lines))
    svg = os.path.splitext(out)[0] + ".svg"
    with open(svg, "w") as f:
        f.write(plot(t))
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"machine": m, "results": b.results, "failures": b.failures, "bpf_progs": b.bpf_progs,
                   "bpf_tests": [{"mode": k[0], "topo": k[1], "test": k[2], "operation": PER_OP[k[2]],
                                  "progs": {p: {"runs": v[0], "run_time_ns": v[1], "operations": v[2]} for p, v in d.items()}}
                                 for k, d in b.bpf_tests.items()], "profiles": b.profiles,
                   "reps": a.reps, "seconds": a.seconds}, f, indent=1)
    log(f"wrote {out}, {svg} and {os.path.splitext(out)[0]}.json")
    print("\n".join(lines))


PER_OP = {"rtt": "round trip", "rtt_pin": "round trip", "rps": "request", "cps": "connection", "gbps": "MiB received"}
PER_OP_TEST = {"rtt": "round trips", "rtt_pin": "round trips, pinned", "rps": "keep-alive", "cps": "new connections",
               "gbps": "iperf3"}


def tests_section(b, w):
    """bpf_stats per measurement: which workload pays what per run."""
    if not b.bpf_tests:
        return
    w("## BPF programs' own cost per measurement (the same measure, per topology and test)")
    w("")
    w("Each program's run_time_ns / run_cnt over the measured runs of one test alone (all repetitions), and "
      "in brackets its runs per operation (round trip, request, connection, MiB received). The table above "
      "is the sum of these and of the runs outside them (sidecar start-up, checks).")
    w("")
    for mode in ("ebpf", "ebpf+accel"):
        rows = {k: v for k, v in b.bpf_tests.items() if k[0] == mode}
        if not rows:
            continue
        progs = sorted({p for v in rows.values() for p in v})
        w(f"{mode}:")
        w("")
        w("| topology | test | " + " | ".join(f"`{p}`" for p in progs) + " |")
        w("|---|---|" + "---|" * len(progs))
        order = list(TOPO_IDS.values())
        for (m_, topo, key) in sorted(rows, key=lambda k: (order.index(k[1]) if k[1] in order else 99, list(PER_OP).index(k[2]))):
            cells = []
            for p in progs:
                runs, ns, ops = rows[(m_, topo, key)].get(p, (0, 0, 0))
                cells.append(f"{ns / runs:.0f} ({runs / ops:.2g})" if runs and ops else "-")
            w(f"| {topo} | {PER_OP_TEST[key]} | " + " | ".join(cells) + " |")
        w("")


def accel_section(b, t, w, figures):
    """ebpf+accel against plain ebpf, per topology and figure, repetition by
    repetition (the modes of one repetition ran side by side)."""
    if not {"ebpf", "ebpf+accel"} <= set(b.args.modes):
        return
    w("## Acceleration against plain eBPF")
    w("")
    w("For every figure, `ebpf+accel` / `ebpf` per repetition (the two ran in the same repetition, interleaved with the "
      "other modes) and of the medians. Verdict: *better* or *worse* when every repetition's ratio is on that side of 1, "
      "*within the spread* when the repetitions fall on both sides (with one repetition: the side it fell on, tentative).")
    w("")
    by_rep = {(r["topo"], r["mode"], r["test"], r["rep"]): r["value"] for r in b.results}
    reps = sorted({r["rep"] for r in b.results})
    for topo, *_ in TOPOS:
        if topo not in b.args.topos:
            continue
        w(f"| {topo}: figure | ebpf | ebpf+accel | accel / ebpf (medians) | per repetition | verdict |")
        w("|---|---|---|---|---|---|")
        for key, title, unit, better in figures:
            e, x = med(t.get((topo, "ebpf", key), [])), med(t.get((topo, "ebpf+accel", key), []))
            rs = [by_rep[(topo, "ebpf+accel", key, r)] / by_rep[(topo, "ebpf", key, r)] for r in reps
                  if by_rep.get((topo, "ebpf", key, r)) and (topo, "ebpf+accel", key, r) in by_rep]
            if None in (e, x) or not e or not rs:
                w(f"| {title} ({unit}) | - | - | - | - | no figures |")
                continue
            good = (lambda v: v < 1) if better == "lower" else (lambda v: v > 1)
            n_good = sum(1 for v in rs if good(v))
            v_ = "better" if n_good == len(rs) else ("WORSE" if n_good == 0 else "within the spread")
            if len(rs) == 1:
                v_ += " (1 repetition)"
            w(f"| {title} ({unit}) | {fmt(e)} | {fmt(x)} | {x / e:.2f}x | {', '.join(f'{v:.2f}' for v in rs)} | {v_} |")
        w("")


def verdict(r, rs, ok):
    """A target's verdict on the median ratio r, with the ratios per repetition rs."""
    if r is None:
        return "no figures"
    held = sum(1 for x in rs if ok(x))
    spread = f" (per repetition {min(rs):.2f}-{max(rs):.2f}x, met in {held} of {len(rs)})" if rs else ""
    return ("met" if ok(r) else "NOT met") + spread


def profile_labels(d):
    """The profiles' labels in report order: HAProxy's per mode, then the
    mwtest-sidecar pair's IPv4 and IPv6 per mode."""
    order = MODES + [f"{m} IPv{f} (mwtest)" for m in MODES for f in (4, 6)]
    return [k for k in order if k in d] + sorted(k for k in d if k not in order)


def ipv6_section(b, t, w, by_rep, reps):
    """IPv6 against IPv4, same node, same (mwtest) sidecar: issue 13's targets."""
    v4, v6 = V4_TWIN, V6_TOPO
    g = lambda topo, mode, key: med(t.get((topo, mode, key), []))
    w("## IPv6, same node (against IPv4 with the same sidecar)")
    w("")
    w("The pods on node 1 are dual-stack (`fd00:232:1::2`, `fd00:232:2::2`), both loaders run with "
      "`[interception] ipv6 = \"intercept\"` (iptables mode then steers IPv6 with ip6tables REDIRECT, eBPF mode "
      "with connect6, getsockopt `IP6T_SO_ORIGINAL_DST` and, with acceleration, the IPv6 sockhash). HAProxy 2.6 "
      "cannot be the IPv6 sidecar: it asks for the original destination of IPv4 connections only "
      "(`getsockopt(SOL_IP, SO_ORIGINAL_DST)`); for an IPv6 connection `server s 0.0.0.0:0` (or `[::]:0`, or "
      "`transparent`) takes the accepted socket's own address (`getsockname()`), which after an ip6tables REDIRECT "
      "or a connect6 rewrite is `[::1]:15001`, its own listener (checked with strace: it dials itself; only TPROXY, "
      "which keeps the original address as the socket's own, would work, and meshwire does not use TPROXY). So the "
      "IPv6 run uses mwtest's sidecar (`mwtest sidecar`, the tests' sidecar: a thread per connection, reads "
      "`SO_ORIGINAL_DST` / `IP6T_SO_ORIGINAL_DST`, one log line per connection, which is its session count for the "
      "interception check), and so does an IPv4 twin run on the same pods in the same mode slot, so that IPv6 is "
      "compared with IPv4 through the same sidecar. Its figures are not comparable with HAProxy's above. No floor: "
      "mwtest's sidecar only forwards by original destination. Each IPv6 figure passed the same interception check "
      "as IPv4's (sidecar connection counts against the load tool, and against the ip6tables REDIRECT hits or the BPF "
      "counters connect_redirected, connect_inbound, sockopt_answered).")
    w("")
    w("| target | measured | verdict |")
    w("|---|---|---|")

    def per_rep(f):
        out = []
        for rep in reps:
            try:
                r = f(lambda topo, mode, key: by_rep[(topo, mode, key, rep)])
            except (KeyError, ZeroDivisionError):
                continue
            out.append(r)
        return out

    for mode in ("ebpf", "ebpf+accel"):
        f = lambda get, mode=mode: get(v6, mode, "cpu_req") / get(v4, mode, "cpu_req")
        x6, x4 = g(v6, mode, "cpu_req"), g(v4, mode, "cpu_req")
        r = None if None in (x6, x4) else x6 / x4
        s_ = "-" if r is None else f"IPv6 {fmt(x6)} us vs IPv4 {fmt(x4)} us: {r:.2f}x"
        target = "target" if mode == "ebpf" else "for reference"
        w(f"| {mode} IPv6 vs IPv4, CPU per keep-alive request: within 10% ({target}) | {s_} | "
          f"{verdict(r, per_rep(f), lambda v: v <= 1.10)} |")
    for mode in ("ebpf", "ebpf+accel"):
        for key, what in (("cpu_req", "CPU per keep-alive request"), ("rtt_pin", "p50 round trip, pinned"),
                          ("rps", "keep-alive requests/s"), ("cps", "new connections/s"), ("cpu_conn", "CPU per new connection")):
            vals = [g(v6, mode, key), g(v6, "iptables", key), g(v4, mode, key), g(v4, "iptables", key)]
            if None in vals or not vals[1] or not vals[3]:
                w(f"| {mode} / ip6tables vs {mode} / iptables, {what}: the same ratio | - | no figures |")
                continue
            r6, r4 = vals[0] / vals[1], vals[2] / vals[3]
            f = lambda get, mode=mode, key=key: (get(v6, mode, key) / get(v6, "iptables", key)) / (get(v4, mode, key) / get(v4, "iptables", key))
            rs = per_rep(f)
            w(f"| {mode} / ip6tables vs {mode} / iptables, {what}: the same ratio (within 10%) | IPv6 {r6:.2f}x, IPv4 {r4:.2f}x "
              f"(IPv6's ratio {r6 / r4:.2f}x IPv4's) | {verdict(r6 / r4, rs, lambda v: 0.9 <= v <= 1.1)} |")
    for mode in ("iptables", "direct"):
        x6, x4 = g(v6, mode, "cpu_req"), g(v4, mode, "cpu_req")
        if None not in (x6, x4):
            w(f"| ({mode} IPv6 vs IPv4, CPU per keep-alive request) | {fmt(x6)} us vs {fmt(x4)} us: {x6 / x4:.2f}x | for reference |")
    w("")


def plot(t):
    """Grouped bars: each figure relative to iptables mode (= 1), per topology, with min-max whiskers."""
    keys = [("rtt_pin", "RTT p50 pinned"), ("rtt", "RTT p50"), ("cpu_req", "CPU/request"), ("rps", "keep-alive req/s"),
            ("cps", "new conn/s"), ("cpu_conn", "CPU/conn"), ("gbps", "throughput"), ("cpu_gb", "CPU/GB")]
    colors = {"direct": "#9e9e9e", "floor": "#8c6d31", "iptables": "#e07b39", "ebpf": "#3b7dd8", "ebpf+accel": "#2ca25f"}
    W, top, left, panel_h, gap = 980, 78, 60, 250, 62
    H = top + len(TOPOS) * panel_h + (len(TOPOS) - 1) * gap + 56
    gw = (W - left - 20) / len(keys)
    bw = gw * 0.8 / len(MODES)
    ymax = 3.0
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="10" y="22" font-size="15" font-weight="bold">meshwire benchmark: each figure relative to iptables mode (1.0)</text>',
         '<text x="10" y="40">lower is better for RTT and CPU, higher for rates and throughput; bars: median, whiskers: min-max; capped at 3x</text>']
    for i, mode in enumerate(MODES):
        s.append(f'<rect x="{W - 520 + i * 100}" y="{H - 20}" width="12" height="12" fill="{colors[mode]}"/>'
                 f'<text x="{W - 504 + i * 100}" y="{H - 10}">{mode}</text>')
    for pi, (topo, *_) in enumerate(TOPOS):
        y0 = top + pi * (panel_h + gap)
        y = lambda v: y0 + panel_h - min(v, ymax) / ymax * panel_h
        s.append(f'<text x="{left}" y="{y0 - 12}" font-size="13" font-weight="bold">{topo}</text>')
        for g in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0):
            s.append(f'<line x1="{left}" x2="{W - 20}" y1="{y(g):.1f}" y2="{y(g):.1f}" stroke="{"#444" if g == 1 else "#ddd"}"/>'
                     f'<text x="{left - 6}" y="{y(g) + 4:.1f}" text-anchor="end">{g:g}x</text>')
        for ki, (key, label) in enumerate(keys):
            base = med(t.get((topo, "iptables", key), []))
            x0 = left + ki * gw + gw * 0.1
            s.append(f'<text x="{left + ki * gw + gw / 2:.1f}" y="{y0 + panel_h + 14}" text-anchor="middle">{label}</text>')
            for mi, mode in enumerate(MODES):
                v = t.get((topo, mode, key), [])
                x = x0 + mi * bw
                if not v or not base:
                    s.append(f'<text x="{x + bw / 2:.1f}" y="{y(0.05):.1f}" text-anchor="middle" font-size="9">n/a</text>')
                    continue
                r, lo, hi = med(v) / base, min(v) / base, max(v) / base
                s.append(f'<rect x="{x:.1f}" y="{y(r):.1f}" width="{bw - 2:.1f}" height="{y(0) - y(r):.1f}" fill="{colors[mode]}">'
                         f'<title>{topo}, {mode}, {label}: {med(v):.3g} ({r:.2f}x iptables)</title></rect>')
                s.append(f'<line x1="{x + bw / 2 - 1:.1f}" x2="{x + bw / 2 - 1:.1f}" y1="{y(lo):.1f}" y2="{y(hi):.1f}" stroke="black"/>')
    s.append("</svg>")
    return "\n".join(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loader", required=True)
    ap.add_argument("--mwtest", required=True)
    ap.add_argument("--cni", help="meshwire-cni (--mode scale, runtime)")
    ap.add_argument("--cni-timer", help="--mode runtime: cni_timer (//tools/bench:cni_timer)")
    ap.add_argument("--pause-image", help="--mode runtime: the sandbox image's tar (//test/cri:pause_image)")
    ap.add_argument("--containerd-node", help="--mode runtime: test/containerd_node.sh")
    ap.add_argument("--cri-py", help="--mode runtime: the CRI client, test/cri/cri.py")
    ap.add_argument("--containerd-env", action="append", metavar="KEY=VALUE",
                    help="--mode runtime: put KEY=VALUE in containerd's environment (its plugins inherit it), e.g. "
                         "GOMAXPROCS=8 to test whether the plugins' input wait is Go's scheduler; repeatable; none by default")
    ap.add_argument("--mode", choices=["compare", "scale", "runtime", "conns", "churn", "dns", "hooks"], default="compare",
                    help="compare: the modes side by side (default); scale: costs by pods meshed (scale.py); "
                         "runtime: CNI ADD/DEL and pod start with containerd driving the chain (runtime.py); "
                         "conns: live connections by thousands; churn: pods created and deleted under traffic (live.py); "
                         "dns: queries through the DNS proxy, iptables vs eBPF DNS capture (dnsbench.py); "
                         "hooks: each per-packet and per-message program's own cost beside its helpers' (hooks.py)")
    ap.add_argument("--levels", default="1000,16000,64000", help="--mode conns: connections open at once, comma-separated")
    ap.add_argument("--live-modes", default="iptables,ebpf,ebpf+accel", help="--mode conns: interception modes, in turn")
    ap.add_argument("--churn-rate", type=float, default=100, help="--mode churn: pods created (and deleted) per second")
    ap.add_argument("--churn-seconds", type=float, default=60, help="--mode churn: for how long")
    ap.add_argument("--churn-lifetime", type=float, default=1.0, help="--mode churn: seconds each pod lives")
    ap.add_argument("--churn-workers", type=int, default=8, help="--mode churn: threads creating (and as many deleting) pods")
    ap.add_argument("--churn-traffic", type=float, default=50, help="--mode churn: requests per second in each pod that stays")
    ap.add_argument("--sizes", default=None, help="--mode scale, runtime: pods meshed, comma-separated (default 1,100,1000,4000; runtime 1,100,1000)")
    ap.add_argument("--samples", type=int, default=None, help="--mode scale: ADD/DEL samples per size (default 200); "
                    "runtime: pods per turn and size (default 100)")
    ap.add_argument("--tc-attach", default="tcx,clsact", help="--mode scale: the [tc] attach modes measured, one after the other")
    ap.add_argument("--restarts", type=int, default=3, help="--mode scale: kill -9 and restart this many times per size (the median adoption counts)")
    ap.add_argument("--baseline-loader", default=None, help="--mode scale: another meshwire-loader binary whose adoption and cleanup are timed too, "
                    "its restarts in turns with the measured loader's on the same pods, its cleanups at the last size likewise")
    ap.add_argument("--baseline-note", default="", help="--mode scale: what the baseline loader is (e.g. its commit), for the report")
    ap.add_argument("--baseline", default=None, help="--mode hooks: git revision whose bpf/ is measured beside the working tree's "
                    "(none: the working tree's alone)")
    ap.add_argument("--rounds", type=int, default=7, help="--mode hooks: rounds (medians are over them)")
    ap.add_argument("--calls", type=int, default=20000, help="--mode hooks: program runs per row and round")
    ap.add_argument("--cpu", type=int, default=0, help="--mode hooks: the CPU it runs on")
    ap.add_argument("--no-connect", dest="hooks_connect", action="store_false",
                    help="--mode hooks: leave out connect4 and sockops (a cgroup of its own, real connections)")
    ap.add_argument("--no-veth", dest="hooks_veth", action="store_false",
                    help="--mode hooks: leave out tc on real packets (a veth to a namespace of its own)")
    ap.add_argument("--quick", action="store_true", help="about a minute: 1 repetition, 1 s measurements")
    ap.add_argument("--modes", default=",".join(MODES), help="compare: the modes run, comma-separated (default all: " + ",".join(MODES) + ")")
    ap.add_argument("--topos", default=",".join(TOPO_IDS), help="compare: the topologies run, comma-separated (default all: " + ",".join(TOPO_IDS) + ")")
    ap.add_argument("--tests", default=",".join(TEST_IDS), help="compare: the measurements run, comma-separated (default all: rtt = round trips, "
                    "ka = keep-alive requests, cc = new connections, iperf = single-stream throughput)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3; --quick 1)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per measurement (default 2; --quick 1)")
    ap.add_argument("--out", default=None, help="markdown report (default: docs/benchmark.md in the workspace); .svg and .json beside it")
    ap.add_argument("--no-profile", action="store_true", help="skip the perf profile taken after the last repetition")
    ap.add_argument("--profile-of", default="same:ka", help="compare: what the profile after the last repetition runs, TOPO:TEST "
                    "(default same:ka, same-node keep-alive, with the mwtest sidecars' IPv4 and IPv6 beside it; e.g. two:iperf)")
    ap.add_argument("--profile-callgraph", action="store_true", help="record call graphs in the profile (perf record -g; "
                    "with --keep-logs, perf-*.data stay in the work dir for perf report)")
    ap.add_argument("--note", default="", help="added to the report's first line (e.g. the commit measured)")
    ap.add_argument("--reuse-netns", action="store_true", help="compare: keep the pods' namespaces from one mode's slot to the next "
                    "(before 2026-12-06 always so: what a mode left, TIME_WAIT sockets above all, met the next; "
                    "each slot has fresh ones by default)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the work dir with every process's log")
    a = ap.parse_args()
    a.reps = a.reps or (1 if a.quick else 3)
    for opt, known in (("modes", MODES), ("topos", TOPO_IDS), ("tests", TEST_IDS)):
        got = [x for x in getattr(a, opt).split(",") if x]
        bad = [x for x in got if x not in known]
        if bad or not got:
            ap.error(f"--{opt} {getattr(a, opt)!r}: unknown {', '.join(bad) or '(none given)'}; known: {', '.join(known)}")
        setattr(a, opt, [x for x in known if x in got])  # in the report's order
    a.topos = [TOPO_IDS[x] for x in a.topos]
    a.profile_of = tuple(a.profile_of.split(":", 1))
    if len(a.profile_of) != 2 or a.profile_of[0] not in ("same", "two") or a.profile_of[1] not in ("ka", "cc", "iperf"):
        ap.error(f"--profile-of {':'.join(a.profile_of)!r}: expected TOPO:TEST with TOPO same or two, TEST ka, cc or iperf")
    a.seconds = a.seconds or (1.0 if a.quick else (5.0 if a.mode == "dns" else 2.0))
    ws = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
    # `bazel run` runs the bench in its runfiles: a relative --out is the caller's.
    if a.out and not os.path.isabs(a.out):
        a.out = os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", os.getcwd()), a.out)
    if a.mode == "runtime":
        try:
            import grpc  # noqa: F401  (cri.py's)
        except ImportError:
            import runtime
            py = runtime.venv_python()
            if not os.access(py, os.X_OK):
                ap.error(f"--mode runtime needs grpcio: no {py} (tools/setup.sh makes that venv; MESHWIRE_VENV names another)")
            os.execv(py, [py, "-B", os.path.abspath(__file__), *sys.argv[1:]])
        import runtime
        for opt in ("cni", "cni_timer", "pause_image", "containerd_node", "cri_py"):
            if not getattr(a, opt):
                ap.error(f"--mode runtime needs --{opt.replace('_', '-')} (`./bazelw run //tools/bench` passes it)")
        a.sizes = [int(x) for x in (a.sizes or "1,100,1000").split(",")]
        a.samples = a.samples or 100
        for kv in a.containerd_env or []:
            if "=" not in kv or not kv.split("=", 1)[0].isidentifier():
                ap.error(f"--containerd-env {kv!r}: give KEY=VALUE, e.g. GOMAXPROCS=8")
        a.out = a.out or os.path.join(ws, "docs", "benchmark-runtime.md")
        b = runtime.Runtime(a)
    elif a.mode == "scale":
        import scale
        a.sizes = [int(x) for x in (a.sizes or "1,100,1000,4000").split(",")]
        a.samples = a.samples or 200
        a.tc_attach = a.tc_attach.split(",")
        if a.restarts < 1:
            ap.error(f"--restarts {a.restarts}: at least one restart per size measures the adoption")
        a.out = a.out or os.path.join(ws, "docs", "benchmark-scale.md")
        b = scale.Scale(a)
    elif a.mode == "dns":
        import dnsbench
        a.out = a.out or os.path.join(ws, "docs", "benchmark-dns.md")
        b = dnsbench.Dns(a)
    elif a.mode == "hooks":
        import hooks
        a.out = a.out or os.path.join(ws, "docs", "benchmark-hooks.md")
        b = hooks.Hooks(a)
    elif a.mode in ("conns", "churn"):
        import live
        a.levels = [int(x) for x in a.levels.split(",")]
        a.live_modes = a.live_modes.split(",")
        a.tc_attach = a.tc_attach.split(",")
        a.out = a.out or os.path.join(ws, "docs", "benchmark-scale.md")
        b = live.Live(a)
    else:
        a.out = a.out or os.path.join(ws, "docs", "benchmark-quick.md" if a.quick else "benchmark.md")
        b = Bench(a)

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    rc = 0
    try:
        b.main()
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        rc = 130
    except Fatal as e:
        log(f"bench: ERROR: {e}")
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        b.cleanup()
    return rc


if __name__ == "__main__":
    # Run as the module `bench` that the modes (scale, live, dnsbench) import,
    # so that their Fatal is the one main() catches, not a second copy's.
    import bench
    sys.exit(bench.main())
