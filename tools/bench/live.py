"""meshwire with many live connections, and under pod churn (issue 15, item 5).

    ./bazelw run //tools/bench -- --mode conns    1,000, 16,000, 64,000 connections open at once
    ./bazelw run //tools/bench -- --mode churn    pods created and deleted while traffic runs

Both write their section of docs/benchmark-scale.md (the --mode scale report
keeps them) and docs/benchmark-scale-<mode>.json.

conns: for each level and each interception mode in turn (iptables, eBPF,
eBPF with acceleration, side by side in one run), a fresh client pod (a
network namespace with a veth to the server namespace, meshed through its
mode's loader) with HAProxy sidecars opens N connections to 32 destinations
(8 addresses x 4 ports) in the server namespace and keeps them all open. The
server writes each connection the local address it was accepted on first,
so the client checks, connection by connection, that its sidecar dialled the
original destination (HAProxy's `server s 0.0.0.0:0` forwards to
SO_ORIGINAL_DST). Then, all open, every connection does a round trip (none
lost), the map fill is read (and conntrack's count in iptables mode), all
are closed and the fill is read again. No process may hold more than 20,000
file descriptors on this VM (RLIMIT_NOFILE's hard limit, and no
CAP_SYS_RESOURCE to raise it), so the client, the server and HAProxy are
several processes: clients of at most 16,000 connections, servers of at most
16,000, HAProxy sidecars of at most 9,000 proxied connections (two
descriptors each) sharing the listener with SO_REUSEPORT.

churn: a loader (eBPF mode) with two pods that stay, each with an HAProxy
sidecar and a client making a new connection per request through it (every
reply checked as above); meanwhile pods are created (namespace and veth made
in-process as a container runtime makes them, then CNI ADD by an exec of
meshwire-cni), live --churn-lifetime seconds and are deleted (CNI DEL,
namespace unmounted) at --churn-rate per second for --churn-seconds. Then:
failed requests in the pods that stay (must be none), and what is left
(mw_pods entries, records, tc links, namespaces and, once the kernel has torn
them down, their veths: only the pods that stay), and where the CPU went.

Each row gets a verdict; when any is a failure, the report is written all the
same and the bench exits 1 naming each failed row (failed_rows).
"""

import json
import math
import os
import queue
import re
import resource
import socket
import statistics
import subprocess
import threading
import time

from bench import Bench, Fatal, OUT_PORT, UID, log, machine, machine_busy, fmt
from scale import in_netns, netns_del, netns_dir_shared, new_netns, pct, veth_add, with_section
import svgplot

NET = "10.241"
DEST_IPS = [f"{NET}.1.{i}" for i in range(1, 9)]
DEST_PORTS = [8001, 8002, 8003, 8004]
DESTS = [(ip, port) for ip in DEST_IPS for port in DEST_PORTS]
SERVERS = 4                 # server processes; destination k is served by k % SERVERS
PER_CLIENT = 16000          # connections per client process (fd limit 20,000)
PER_HAPROXY = 6000          # expected connections per HAProxy process (maxconn 9,000)
MODE_NODE = {"iptables": "ipt", "ebpf": "ebpf", "ebpf+accel": "accel"}

# The server: listens on its destinations, writes each accepted connection
# the address it was accepted on, then echoes. Args: ip:port ...
SERVER = r"""
import resource, selectors, socket, sys
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
sel = selectors.EpollSelector()
for a in sys.argv[1:]:
    ip, port = a.rsplit(":", 1)
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((ip, int(port)))
    l.listen(4096)
    l.setblocking(False)
    sel.register(l, selectors.EVENT_READ, None)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if key.data is None:
            for _ in range(256):
                try:
                    c, _ = s.accept()
                except (BlockingIOError, OSError):
                    break
                c.setblocking(False)
                c.send(("%s:%d\n" % c.getsockname()).encode())
                sel.register(c, selectors.EVENT_READ, 1)
            continue
        try:
            d = s.recv(4096)
        except OSError:
            d = b""
        if d:
            s.send(d)
        else:
            sel.unregister(s)
            s.close()
"""

# The client: COUNT connections over the destinations (round robin from
# OFFSET), driven by commands on stdin, one JSON line per command:
#   open   connect them all (at most 256 in flight); each must read back the
#          address it dialled
#   check  one round trip on every open connection
#   close  close them all
CLIENT = r"""
import errno, json, resource, selectors, socket, sys, time
h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
count, offset = int(sys.argv[1]), int(sys.argv[2])
dests = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in sys.argv[3:]]
conns, sel = [], selectors.EpollSelector()

def drive(want, on_data, on_fail, timeout=60):
    last = time.monotonic()
    while want():
        ev = sel.select(1)
        if ev:
            last = time.monotonic()
        for key, _ in ev:
            try:
                d = key.fileobj.recv(256)
            except OSError as e:
                d = e
            if isinstance(d, bytes) and d:
                on_data(key, d)
            else:
                on_fail(key, d)
        if time.monotonic() - last > timeout:
            return False
    return True

def do_open():
    st = {"opened": 0, "failed": 0, "wrong": 0, "examples": []}
    pend = {}
    i = [0]
    def fill():
        while i[0] < count and len(pend) < 256:
            dst = dests[(offset + i[0]) % len(dests)]
            i[0] += 1
            s = socket.socket()
            s.setblocking(False)
            err = s.connect_ex(dst)
            if err not in (0, errno.EINPROGRESS):
                st["failed"] += 1
                st["examples"].append("connect %s:%d: %s" % (dst + (errno.errorcode.get(err, err),)))
                s.close()
                continue
            pend[s] = [dst, b""]
            sel.register(s, selectors.EVENT_READ, pend[s])
    def done(s):
        sel.unregister(s)
        del pend[s]
    def on_data(key, d):
        s, st_ = key.fileobj, key.data
        st_[1] += d
        if b"\n" in st_[1]:
            got = st_[1].split(b"\n")[0].decode()
            done(s)
            if got == "%s:%d" % st_[0]:
                st["opened"] += 1
                conns.append(s)
            else:
                st["wrong"] += 1
                st["examples"].append("dialled %s:%d, reached %s" % (st_[0] + (got,)))
                s.close()
        fill()
    def on_fail(key, d):
        st["failed"] += 1
        st["examples"].append("%s:%d: %s" % (key.data[0] + (d or "closed",)))
        done(key.fileobj)
        key.fileobj.close()
        fill()
    fill()
    if not drive(lambda: pend or i[0] < count, on_data, on_fail):
        # Those pending and those never tried count as failed.
        st["failed"] += len(pend) + count - i[0]
        st["examples"].append("%d connections got no answer in 60 s, %d not tried" % (len(pend), count - i[0]))
        for s in list(pend):
            done(s)
            s.close()
    st["examples"] = st["examples"][:5]
    return st

def do_check():
    st = {"ok": 0, "lost": 0}
    left = set()
    for s in conns:
        try:
            s.send(b"x")
            sel.register(s, selectors.EVENT_READ, None)
            left.add(s)
        except OSError:
            st["lost"] += 1
    def on_data(key, d):
        st["ok"] += 1
        sel.unregister(key.fileobj)
        left.discard(key.fileobj)
    def on_fail(key, d):
        st["lost"] += 1
        sel.unregister(key.fileobj)
        left.discard(key.fileobj)
    drive(lambda: left, on_data, on_fail)
    st["lost"] += len(left)
    for s in left:
        sel.unregister(s)
    return st

print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    cmd = line.strip()
    t0 = time.monotonic()
    if cmd == "open":
        r = do_open()
    elif cmd == "check":
        r = do_check()
    elif cmd == "close":
        for s in conns:
            s.close()
        r = {"closed": len(conns)}
        conns = []
    else:
        break
    r["secs"] = time.monotonic() - t0
    print(json.dumps(r), flush=True)
"""

# The stay pods' traffic in churn mode: a new connection per request, to the
# destinations in turn, each reply checked; paced at RATE per second until
# stdin closes, then one JSON line: ok, failed, examples.
TRAFFIC = r"""
import json, socket, sys, threading, time
rate = float(sys.argv[1])
dests = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in sys.argv[2:]]
st = {"ok": 0, "failed": 0, "examples": []}
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
print("ready", flush=True)
t0, i = time.monotonic(), 0
while not stop.is_set():
    dst = dests[i % len(dests)]
    i += 1
    try:
        with socket.create_connection(dst, timeout=5) as s:
            f = s.makefile("rb")
            got = f.readline().decode().strip()
            s.sendall(b"ping\n")
            echo = f.readline()
            if got != "%s:%d" % dst or echo != b"ping\n":
                raise ValueError("dialled %s:%d, reached %r, echo %r" % (dst + (got, echo)))
        st["ok"] += 1
    except Exception as e:
        st["failed"] += 1
        if len(st["examples"]) < 5:
            st["examples"].append("%s: %s" % (type(e).__name__, e))
    delay = t0 + i / rate - time.monotonic()
    if delay > 0:
        stop.wait(delay)
print(json.dumps(st), flush=True)
"""


class Live(Bench):
    def __init__(self, args):
        super().__init__(args)
        self.cni_bin = os.path.realpath(args.cni) if args.cni else None
        self.rows = []
        self.churn = []
        self.servers = []

    # ------------------------------------------------------------------- setup
    def setup(self, nodes):
        cg2 = self.prepare(self.args.mode, ("ip", "haproxy", "python3", "iptables-save"),
                           ("loader", "cni_bin") if self.cni_bin else ("loader",))
        self.cg_root = f"{cg2}/{self.P}-{self.args.mode}"
        for d in ["", "/srv"] + [f"/mesh-{n}" for n in nodes]:
            os.mkdir(self.cg_root + d)
            self.cgroups.append(self.cg_root + d)
        # The server namespace: the destinations on its loopback.
        srv = self.ns("srv")
        self.run(["ip", "netns", "add", srv])
        self.ns_made.append(srv)
        cmds = "link set lo up\n" + "".join(f"addr add {ip}/32 dev lo\n" for ip in DEST_IPS)
        self.run(["ip", "-n", srv, "-b", "-"], input=cmds)
        for k in range(SERVERS):
            dests = [f"{ip}:{port}" for j, (ip, port) in enumerate(DESTS) if j % SERVERS == k]
            p = self.start(f"server{k}", self.in_cg(f"{self.cg_root}/srv", srv, ["python3", "-c", SERVER, *dests]))
            self.servers.append(p)
        for k, p in enumerate(self.servers):
            self.wait_listen("srv", DEST_PORTS[-1] if k else DEST_PORTS[0], p, "server")
        time.sleep(0.3)

    def in_cg(self, cg, ns, cmd):
        return ["sh", "-c", 'echo $$ >"$1/cgroup.procs" || exit 125; shift; exec "$@"', "in-pod", cg,
                "ip", "netns", "exec", ns, *cmd]

    def start_loader(self, node, mode, extra=""):
        cfg = self.loader_cfg(node, mode)
        if extra:
            with open(cfg, "a") as f:
                f.write(extra)
        p = self.start(f"loader-{node}", [self.loader, "--config", cfg, "--log-level", "info", "run"])
        self.loaders[node] = p
        for _ in range(400):
            if "meshwire-loader: ready" in open(self.procs_log(p)).read():
                return cfg
            if p.poll() is not None:
                raise Fatal(f"loader {node} exited: {open(self.procs_log(p)).read()[-1500:]}")
            time.sleep(0.05)
        raise Fatal(f"loader {node} not ready after 20 s")

    def api(self, node, op):
        """One request on a connection of its own (the loader closes idle ones)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(120)
            s.connect(f"{self.work}/{node}/api.sock")
            s.sendall((json.dumps({"version": 1, **op}) + "\n").encode())
            r = json.loads(s.makefile("r").readline())
        if r.get("error"):
            raise Fatal(f"loader {node}: {op['op']}: {r['error']}")
        return r["result"]

    def pod_net(self, pod, k):
        """The client pod `pod` (a fresh netns) wired to the server namespace
        by a veth: 10.241.(10+k).2 in the pod, .1 on the server's side."""
        ns, srv = self.ns(pod), self.ns("srv")
        self.run(["ip", "netns", "add", ns])
        self.ns_made.append(ns)
        self.run(["ip", "-n", ns, "-b", "-"], input=(
            f"link set lo up\nlink add eth0 type veth peer name v{pod} netns {srv}\n"
            f"addr add {NET}.{10 + k}.2/24 dev eth0\nlink set eth0 up\nroute add {NET}.1.0/24 via {NET}.{10 + k}.1\n"))
        self.run(["ip", "-n", srv, "-b", "-"], input=f"addr add {NET}.{10 + k}.1/24 dev v{pod}\nlink set v{pod} up\n")
        # Every local port for the connections to the one sidecar address (eBPF
        # mode) or for conntrack's reply tuples to it (iptables mode).
        self.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535"])
        return f"{NET}.{10 + k}.2"

    def drop_pod(self, pod):
        subprocess.run(["ip", "netns", "del", self.ns(pod)], capture_output=True)

    def start_haproxies(self, pod, cg, n):
        """n HAProxy sidecar processes on 127.0.0.1:15001 (SO_REUSEPORT)."""
        procs = []
        for k in range(n):
            cfg = f"{self.work}/{pod}-hap{k}.cfg"
            with open(cfg, "w") as f:
                f.write(f"""global
    maxconn 9000
    nbthread 1
    uid {UID}
    gid {UID}
    stats socket {self.work}/{pod}-hap{k}.sock mode 600 level admin
defaults
    mode tcp
    maxconn 9000
    timeout connect 5s
    timeout client 10m
    timeout server 10m
frontend out
    bind 127.0.0.1:{OUT_PORT}
    backlog 4096
    default_backend orig
backend orig
    server s 0.0.0.0:0
""")
            p = self.start(f"{pod}-hap{k}", self.in_cg(cg, self.ns(pod), ["haproxy", "-db", "-f", cfg]))
            procs.append(p)
        for k, p in enumerate(procs):
            for _ in range(200):
                if os.path.exists(f"{self.work}/{pod}-hap{k}.sock"):
                    break
                if p.poll() is not None:
                    raise Fatal(f"HAProxy in {pod} exited: {open(self.procs_log(p)).read()[-800:]}")
                time.sleep(0.05)
        self.wait_listen(pod, OUT_PORT, procs[0], "HAProxy sidecar")
        return procs

    def hap_sessions(self, pod, n):
        """(current, total) sessions of the frontend `out` over the n sidecars."""
        cur = tot = 0
        for k in range(n):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(f"{self.work}/{pod}-hap{k}.sock")
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            s.close()
            lines = data.decode().splitlines()
            head = lines[0].lstrip("# ").split(",")
            for line in lines[1:]:
                f = dict(zip(head, line.split(",")))
                if f.get("pxname") == "out" and f.get("svname") == "FRONTEND":
                    cur += int(f["scur"] or 0)
                    tot += int(f["stot"] or 0)
        return cur, tot

    def fill(self, node):
        """{map: entries} of the node's pinned maps (`meshwire-loader maps`)."""
        out = self.mwl(node, "maps")
        r = {}
        for line in out.splitlines():
            f = line.split()
            if len(f) == 3:
                r[f[0]] = (None if f[1] == "-" else int(f[1]), int(f[2]))
        return r

    def conntrack(self, pod):
        out = self.run(["ip", "netns", "exec", self.ns(pod), "cat", "/proc/sys/net/netfilter/nf_conntrack_count"], check=False)
        return int(out) if out.strip().isdigit() else None

    def conntrack_stats(self, pod):
        """{column: sum over CPUs} of the pod netns' /proc/net/stat/nf_conntrack."""
        out = self.run(["ip", "netns", "exec", self.ns(pod), "cat", "/proc/net/stat/nf_conntrack"], check=False)
        lines = out.split("\n")
        head, tot = lines[0].split(), {}
        for line in lines[1:]:
            for k, v in zip(head, line.split()):
                tot[k] = tot.get(k, 0) + int(v, 16)
        return {k: tot.get(k, 0) for k in ("insert_failed", "drop", "early_drop", "clashres")}

    def cg_usec(self, cg):
        st = dict(l.split() for l in open(f"{cg}/cpu.stat") if len(l.split()) == 2)
        return int(st["usage_usec"])

    # ------------------------------------------------------------------- conns
    def level(self, mode, n, seq):
        node = MODE_NODE[mode]
        pod = f"c{seq}"
        cg = f"{self.cg_root}/mesh-{node}/{pod}"
        os.mkdir(cg)
        self.cgroups.append(cg)
        ip = self.pod_net(pod, seq % 200)
        self.api(node, {"op": "add_pod", "pod": {"container_id": pod, "netns": f"/run/netns/{self.ns(pod)}",
                                                 "ifname": "eth0", "ips": [ip]}})
        row = {"mode": mode, "conns": n}
        procs = []
        try:
            nhap = max(1, math.ceil(n / PER_HAPROXY))
            procs += self.start_haproxies(pod, cg, nhap)
            nclients = max(1, math.ceil(n / PER_CLIENT))
            clients = []
            for k in range(nclients):
                share = n // nclients + (1 if k < n % nclients else 0)
                p = subprocess.Popen(self.in_cg(cg, self.ns(pod), ["python3", "-c", CLIENT, str(share), str(k),
                                                                   *[f"{a}:{b}" for a, b in DESTS]]),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                self.procs.append(p)
                clients.append(p)
                procs.append(p)
            for p in clients:
                if not json.loads(p.stdout.readline() or "{}").get("ready"):
                    raise Fatal(f"client in {pod} did not start")

            def each(cmd):
                for p in clients:
                    p.stdin.write(cmd + "\n")
                    p.stdin.flush()
                out = []
                for p in clients:
                    line = p.stdout.readline()
                    if not line:
                        raise Fatal(f"client in {pod} exited during {cmd}")
                    out.append(json.loads(line))
                return out

            before = self.counters(mode, node, pod)
            cpu0 = (self.cg_usec(cg), self.cg_usec(f"{self.cg_root}/srv"))
            busy0, t0 = machine_busy(), time.monotonic()
            opened = each("open")
            secs = time.monotonic() - t0
            busy = (machine_busy() - busy0) / secs / os.cpu_count()
            cpu1 = (self.cg_usec(cg), self.cg_usec(f"{self.cg_root}/srv"))
            row["opened"] = sum(r["opened"] for r in opened)
            row["failed"] = sum(r["failed"] for r in opened)
            row["wrong"] = sum(r["wrong"] for r in opened)
            row["examples"] = [e for r in opened for e in r["examples"]][:5]
            row["open_s"], row["load"] = secs, busy
            row["cpu_pod_us"] = (cpu1[0] - cpu0[0]) / n
            row["cpu_srv_us"] = (cpu1[1] - cpu0[1]) / n
            time.sleep(1.0)  # all open for a while before the round trips
            row["cur_sessions"], tot = self.hap_sessions(pod, nhap)
            row["sidecars"], row["clients"] = nhap, nclients
            chk = each("check")
            row["alive"] = sum(r["ok"] for r in chk)
            row["lost"] = sum(r["lost"] for r in chk)
            after = self.counters(mode, node, pod)
            row["intercepted"] = {k: after[k] - before.get(k, 0) for k in after}
            row["sessions"] = tot
            row["fill_open"] = self.fill(node) if mode != "iptables" else {}
            row["conntrack_open"] = self.conntrack(pod) if mode == "iptables" else None
            each("close")
            # The sidecars and the server close their side in turn; wait for it.
            t1 = time.monotonic()
            while self.hap_sessions(pod, nhap)[0] and time.monotonic() - t1 < 30:
                time.sleep(0.2)
            row["cur_after_close"] = self.hap_sessions(pod, nhap)[0]
            time.sleep(0.5)
            row["fill_closed"] = self.fill(node) if mode != "iptables" else {}
            row["conntrack_closed"] = self.conntrack(pod) if mode == "iptables" else None
            row["verdict"] = self.conn_verdict(row)
        finally:
            for p in procs:
                self.stop(p)
            try:
                self.api(node, {"op": "del_pod", "container_id": pod})
            except Exception as e:  # noqa: BLE001 - the level's own error matters more; cleanup removes the rest
                log(f"  warning: del_pod {pod}: {e}")
            self.drop_pod(pod)
            try:
                os.rmdir(cg)
                self.cgroups.remove(cg)
            except OSError:
                pass
        self.rows.append(row)
        fo = row["fill_open"].get("mw_orig_tuple4", (None,))[0]
        fs = row["fill_open"].get("mw_sock_hash", (None,))[0]
        log(f"  {mode:<10} {n:>6,} conns: opened {row['opened']:,} in {row['open_s']:.1f} s, failed {row['failed']}, wrong {row['wrong']}, "
            f"alive {row['alive']:,}, lost {row['lost']}; CPU/conn {row['cpu_pod_us'] + row['cpu_srv_us']:.0f} us; "
            f"mw_orig_tuple4 {fo}, mw_sock_hash {fs}, conntrack {row['conntrack_open']}; {row['verdict'] or 'ok'}")

    def counters(self, mode, node, pod):
        if mode == "iptables":
            return {"redirects": self.redirects(pod)["MESHWIRE_OUTPUT"], **self.conntrack_stats(pod)}
        st = self.bpf_stats(node)
        keys = ("connect_redirected", "sockopt_answered", "sockopt_unknown", "connect_error", "sockops_error",
                "accel_sock_added", "accel_error")
        return {k: st.get(k, 0) for k in keys}

    @staticmethod
    def conn_verdict(r):
        """"" if the level kept every connection and proved its interception, else why not."""
        n, why = r["conns"], []
        if r["opened"] != n or r["failed"] or r["wrong"]:
            why.append(f"{r['opened']:,} of {n:,} opened ({r['failed']} failed, {r['wrong']} reached the wrong address)")
        if r["alive"] != r["opened"] or r["lost"]:
            why.append(f"{r['lost']} lost while open")
        if r["sessions"] != n or r["cur_sessions"] != n:
            why.append(f"the sidecars accepted {r['sessions']:,} ({r['cur_sessions']:,} open at once), {n:,} opened")
        i = r["intercepted"]
        if r["mode"] == "iptables":
            if i.get("redirects", 0) < n:
                why.append(f"the REDIRECT rule counted {i.get('redirects', 0):,}")
        else:
            if i["connect_redirected"] != n or i["sockopt_answered"] != n:
                why.append(f"connect_redirected {i['connect_redirected']:,}, sockopt_answered {i['sockopt_answered']:,}")
            if i["sockopt_unknown"] or i["connect_error"] or i["sockops_error"]:
                why.append(f"sockopt_unknown {i['sockopt_unknown']}, errors {i['connect_error'] + i['sockops_error']}")
        if r["cur_after_close"]:
            why.append(f"{r['cur_after_close']} sessions still open after close")
        for name in ("mw_orig_tuple4", "mw_sock_hash"):
            left = r["fill_closed"].get(name, (0,))[0]
            if left:
                why.append(f"{name} kept {left} entries after close")
        return "; ".join(why)

    def main_conns(self):
        a = self.args
        modes = a.live_modes
        self.setup([MODE_NODE[m] for m in modes])
        for m in modes:
            self.start_loader(MODE_NODE[m], m)
        log(f"conns: levels {a.levels}, modes {modes}; work dir {self.work}")
        t0 = time.monotonic()
        seq = 0
        for n in a.levels:
            for m in modes:
                seq += 1
                self.level(m, n, seq)
        self.elapsed = time.monotonic() - t0
        report_conns(self)
        failed_rows(self, self.rows, lambda r: f"{r['mode']} {r['conns']:,} conns")

    # ------------------------------------------------------------------- churn
    def main_churn(self):
        a = self.args
        tcs = a.tc_attach
        self.setup([f"ch-{tc}" for tc in tcs])
        self.run(["ip", "netns", "add", self.ns("node")])
        self.ns_made.append(self.ns("node"))
        netns_dir_shared()  # as `ip netns add` left it: the churn's pods are mounted there in-process
        self.node_fd = os.open(f"/run/netns/{self.ns('node')}", os.O_RDONLY)
        log(f"churn: {a.churn_rate}/s for {a.churn_seconds} s, pods live {a.churn_lifetime} s, tc {tcs}; work dir {self.work}")
        t0 = time.monotonic()
        for k, tc in enumerate(tcs):
            node = f"ch-{tc}"
            self.start_loader(node, "ebpf", f'[tc]\nattach = "{tc}"\n')
            self.churn.append(self.churn_run(node, tc, k))
            self.stop(self.loaders.pop(node), 10)
            self.mwl(node, "cleanup", timeout=300)
        self.elapsed = time.monotonic() - t0
        os.close(self.node_fd)
        report_churn(self)
        failed_rows(self, self.churn, lambda r: f"churn tc {r['tc']}")

    def leftovers(self, node):
        """What meshes pods: mw_pods entries, records, tc links of the node's programs, our namespaces."""
        fill = self.fill(node)
        recs = os.listdir(f"{self.work}/{node}/state/pods") if os.path.isdir(f"{self.work}/{node}/state/pods") else []
        # This loader's own programs: other loaders on the machine have tc links too.
        pins = f"{self.bpffs}/{node}"
        progs = {json.loads(self.run(["bpftool", "-j", "prog", "show", "pinned", f"{pins}/progs/{f}"]))["id"]
                 for f in os.listdir(f"{pins}/progs")}
        links = json.loads(self.run(["bpftool", "-j", "link", "show"]) or "[]")
        # Debian's bpftool names no tcx link type: BPF_LINK_TYPE_TCX is 11.
        tcx = sum(1 for l in links if l.get("type") in ("tcx", 11) and l.get("prog_id") in progs)
        pod_pins = len(os.listdir(f"{pins}/pods")) if os.path.isdir(f"{pins}/pods") else 0
        nets = [l.split()[0] for l in self.run(["ip", "netns", "list"]).splitlines() if l.startswith(f"{self.P}-k")]
        return {"mw_pods": fill.get("mw_pods", (None,))[0], "mw_pod_ips": fill.get("mw_pod_ips", (None,))[0],
                "mw_pod_uid": fill.get("mw_pod_uid", (None,))[0], "records": len(recs), "tcx_links": tcx, "pod_pins": pod_pins,
                "netns": len(nets), "veth_peers": self.churn_peers()}

    def churn_peers(self):
        """The churned pods' veth peers still in the node namespace: a pod's
        veth goes when the kernel tears its namespace down, after its unmount."""
        with in_netns(self.ns("node")):
            return sum(1 for _, name in socket.if_nameindex() if re.fullmatch(r"k\d+x\d+", name))

    def churn_run(self, node, tc, k):
        a = self.args
        stay = []
        for j in range(2):
            pod = f"s{k}{j}"
            cg = f"{self.cg_root}/mesh-{node}/{pod}"
            os.mkdir(cg)
            self.cgroups.append(cg)
            ip = self.pod_net(pod, 100 + 2 * k + j)
            self.api(node, {"op": "add_pod", "pod": {"container_id": pod, "netns": f"/run/netns/{self.ns(pod)}",
                                                     "ifname": "eth0", "ips": [ip]}})
            hap = self.start_haproxies(pod, cg, 1)
            stay.append((pod, cg, hap))
        before = self.leftovers(node)
        st0 = self.bpf_stats(node)
        sess0 = sum(self.hap_sessions(pod, 1)[1] for pod, _, _ in stay)
        traffic = []
        for pod, cg, _ in stay:
            p = subprocess.Popen(self.in_cg(cg, self.ns(pod), ["python3", "-c", TRAFFIC, str(a.churn_traffic),
                                                               *[f"{x}:{y}" for x, y in DESTS]]),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.procs.append(p)
            traffic.append(p)
            if p.stdout.readline().strip() != "ready":
                raise Fatal(f"traffic in {pod} did not start")
        # Pods: created by `workers` threads at the paced rate, deleted by as
        # many after their lifetime.
        made, gone, errors = [], [], []
        todo = queue.Queue()
        total = int(a.churn_rate * a.churn_seconds)
        cpu0 = self.churn_cpu(node, stay)
        busy0, t0 = machine_busy(), time.monotonic()
        next_i = [0]
        lock = threading.Lock()

        def creator():
            while True:
                with lock:
                    i = next_i[0]
                    next_i[0] += 1
                if i >= total or time.monotonic() - t0 >= a.churn_seconds:
                    return
                wait = t0 + i / a.churn_rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    c0 = time.perf_counter()
                    self.churn_netns(i, k)
                    c1 = time.perf_counter()
                    self.cni(node, "ADD", i, k)
                    c2 = time.perf_counter()
                    with lock:
                        made.append((time.monotonic() - t0, (c1 - c0) * 1e3, (c2 - c1) * 1e3))
                    todo.put((i, time.monotonic()))
                except Exception as e:  # noqa: BLE001 - counted, the churn goes on
                    errors.append(f"create {i}: {e}")
                    todo.put((i, time.monotonic()))

        def deleter():
            while True:
                item = todo.get()
                if item is None:
                    return
                i, born = item
                wait = born + a.churn_lifetime - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    d0 = time.perf_counter()
                    self.cni(node, "DEL", i, k)
                    d1 = time.perf_counter()
                    netns_del(self.ns(f"k{k}-{i}"))
                    d2 = time.perf_counter()
                    with lock:
                        gone.append((time.monotonic() - t0, (d1 - d0) * 1e3, (d2 - d1) * 1e3))
                except Exception as e:  # noqa: BLE001
                    errors.append(f"delete {i}: {e}")

        cs = [threading.Thread(target=creator) for _ in range(a.churn_workers)]
        ds = [threading.Thread(target=deleter) for _ in range(a.churn_workers)]
        for t in cs + ds:
            t.start()
        for t in cs:
            t.join()
        t_created = time.monotonic() - t0
        for _ in ds:
            todo.put(None)
        for t in ds:
            t.join()
        secs = time.monotonic() - t0
        busy = (machine_busy() - busy0) / secs / os.cpu_count()
        # The kernel tears the namespaces down after their unmount: how many
        # are still to go (their veths in the node namespace), and how long
        # until none are.
        backlog = self.churn_peers()
        left = backlog
        while left and time.monotonic() - t0 - secs < 120:
            time.sleep(0.05)
            left = self.churn_peers()
        drain = time.monotonic() - t0 - secs
        cpu1 = self.churn_cpu(node, stay)
        cpu = {key: cpu1[key] - cpu0[key] for key in cpu0}
        cpu["secs"] = secs + drain
        time.sleep(1.0)
        res = []
        for p in traffic:
            p.stdin.close()
            res.append(json.loads(p.stdout.readline() or '{"ok": 0, "failed": -1, "examples": ["no answer"]}'))
            p.wait(10)
            self.procs.remove(p)
        time.sleep(0.3)
        sess = sum(self.hap_sessions(pod, 1)[1] for pod, _, _ in stay) - sess0
        st1 = self.bpf_stats(node)
        after = self.leftovers(node)
        # The pins of the last DELs' bare clsact qdiscs go about 1 s after
        # them (the loader's reaper thread): allow it 5 s.
        t1 = time.monotonic()
        while after["pod_pins"] > before["pod_pins"] and time.monotonic() - t1 < 5:
            time.sleep(0.1)
            after = self.leftovers(node)
        for pod, cg, hap in stay:
            for p in hap:
                self.stop(p)
            self.api(node, {"op": "del_pod", "container_id": pod})
            self.drop_pod(pod)
            os.rmdir(cg)
            self.cgroups.remove(cg)
        ok, failed = sum(r["ok"] for r in res), sum(r["failed"] for r in res)
        row = {"tc": tc, "target_rate": a.churn_rate, "seconds": a.churn_seconds, "lifetime": a.churn_lifetime,
               "workers": a.churn_workers, "planned": total, "created": len(made), "deleted": len(gone),
               "create_s": t_created, "secs": secs, "load": busy, "errors": errors[:5], "n_errors": len(errors),
               "netns_ms": [m[1] for m in made], "add_ms": [m[2] for m in made], "del_ms": [g[1] for g in gone],
               "netns_del_ms": [g[2] for g in gone], "ok": ok, "failed": failed,
               "examples": [e for r in res for e in r["examples"]][:5], "sessions": sess,
               "redirected": st1.get("connect_redirected", 0) - st0.get("connect_redirected", 0),
               "answered": st1.get("sockopt_answered", 0) - st0.get("sockopt_answered", 0),
               "before": before, "after": after, "teardown_backlog": backlog, "teardown_s": drain, "cpu": cpu}
        why = []
        if failed:
            why.append(f"{failed} failed requests in the pods that stay")
        if not (sess == ok == row["redirected"] == row["answered"]):
            why.append(f"requests ok {ok}, sidecar sessions {sess}, connect_redirected {row['redirected']}, "
                       f"sockopt_answered {row['answered']}")
        if after != before:
            why.append(f"left after the churn: {after} (before: {before})")
        if errors:
            why.append(f"{len(errors)} pod changes failed: {errors[0]}")
        row["verdict"] = "; ".join(why)
        log(f"  churn tc {tc}: {len(made)} pods created in {t_created:.1f} s ({len(made) / t_created:.1f}/s), "
            f"{len(gone)} deleted; requests ok {ok}, failed {failed}; left {after}; {row['verdict'] or 'ok'}")
        return row

    def churn_netns(self, i, k):
        """Pod i's namespace with a veth eth0 (up), its peer k<k>x<i> in the
        node namespace: made in this thread, no process started."""
        ns = self.ns(f"k{k}-{i}")
        self.ns_made.append(ns)
        with new_netns(ns):
            veth_add("eth0", f"k{k}x{i}", self.node_fd)

    def churn_cpu(self, node, stay):
        """CPU seconds so far: this process (the pods' namespaces and veths,
        the Python threads), the meshwire-cni execs (children reaped), the
        loader, the pods that stay (sidecars and clients), kernel threads
        (kworkers: the netns teardown, cleanup_net; RCU; softirq) and the
        whole machine."""
        return {"bench": proc_cpu("self"), "cni": sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]),
                "loader": proc_cpu(self.loaders[node].pid),
                "stay": sum(self.cg_usec(cg) for _, cg, _ in stay) / 1e6, "kthreads": kthreads_cpu(),
                "machine": machine_busy()}

    def cni(self, node, cmd, i, k):
        ns = self.ns(f"k{k}-{i}")
        ip = f"10.242.{i // 250 % 250}.{i % 250 + 2}"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": cmd, "CNI_CONTAINERID": f"k{i}",
               "CNI_NETNS": f"/run/netns/{ns}", "CNI_IFNAME": "eth0", "CNI_PATH": os.path.dirname(self.cni_bin),
               "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=churn;K8S_POD_NAME=k{i}"}
        prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": f"/run/netns/{ns}"}],
                "ips": [{"address": f"{ip}/16", "interface": 0}]}
        conf = json.dumps({"cniVersion": "1.0.0", "name": "churn", "type": "meshwire-cni",
                           "loaderSocket": f"{self.work}/{node}/api.sock", "prevResult": prev})
        p = subprocess.run([self.cni_bin], input=conf, env=env, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise Fatal(f"meshwire-cni {cmd} k{i}: exit {p.returncode}: {p.stdout.strip()} {p.stderr.strip()}")

    # ------------------------------------------------------------------ common
    def main(self):
        if self.args.mode == "conns":
            self.main_conns()
        else:
            if not self.cni_bin:
                raise Fatal("--mode churn needs --cni (bazel run passes it)")
            self.main_churn()

    def cleanup_loaders(self):
        for node in os.listdir(self.work) if self.work else []:
            if os.path.exists(f"{self.work}/{node}/meshwire.toml"):
                subprocess.run([self.loader, "--config", f"{self.work}/{node}/meshwire.toml", "cleanup"],
                               capture_output=True, timeout=300)


def proc_cpu(pid):
    """utime + stime of process `pid` (all its threads; "self": this one), in seconds."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def kthreads_cpu():
    """CPU seconds of the kernel threads alive now (PF_KTHREAD): one that
    exits takes its time with it, so a difference of two is a lower bound."""
    tot = 0
    for pid in os.listdir("/proc"):
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split() if pid.isdigit() else None
        except OSError:
            continue
        if f and int(f[6]) & 0x200000:
            tot += int(f[11]) + int(f[12])
    return tot / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------- report
SECTIONS = {"conns": ("<!-- live connections: written by --mode conns -->", "<!-- /live connections -->"),
            "churn": ("<!-- churn: written by --mode churn -->", "<!-- /churn -->")}


def head(s, title, rows, extra=""):
    """A section's title and its first paragraph: the command, the machine, how busy it was."""
    a, m = s.args, machine()
    return [f"## {title}", "",
            f"From `./bazelw run //tools/bench -- --mode {a.mode}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
            f"{' (' + a.note + ')' if a.note else ''}: {m['cpu']}, Linux {m['kernel']}{extra}; {s.elapsed:.0f} s in all. "
            f"**Machine load**: {', '.join(format(r['load'], '.0%') for r in rows)} of the machine's {os.cpu_count()} CPUs "
            f"busy while they ran (all processes, this run's included; load average at the end "
            f"{' '.join(open('/proc/loadavg').read().split()[:3])}). How it measures: "
            "[benchmarking.md](benchmarking.md#live-connections-and-churn).", ""]


def conn_lines(s):
    rows = s.rows
    L = head(s, "Live connections", rows, f", {machine()['haproxy']}") + [
         "| mode | connections | opened / failed / wrong address | alive after all opened | sidecars (HAProxy processes) | "
         "open time (s) | CPU per new connection, client pod + server (us) | `mw_orig_tuple4` open / closed | "
         "`mw_sock_hash` open / closed | accelerated sockets added / refused (`accel_error`) | conntrack open / closed | verdict |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fo, fc = r["fill_open"], r["fill_closed"]
        f = lambda d, k: "-" if k not in d or d[k][0] is None else f"{d[k][0]:,}"
        ct = "-" if r["conntrack_open"] is None else f"{r['conntrack_open']:,} / {r['conntrack_closed']:,}"
        i = r["intercepted"]
        acc = f"{i['accel_sock_added']:,} / {i['accel_error']:,}" if r["mode"] == "ebpf+accel" else "-"
        if r["mode"] == "iptables":
            ct += f" (REDIRECT hits {i['redirects']:,}; insert_failed {i['insert_failed']}, drop {i['drop']})"
        L.append(f"| {r['mode']} | {r['conns']:,} | {r['opened']:,} / {r['failed']} / {r['wrong']} | {r['alive']:,} | "
                 f"{r['sidecars']} | {r['open_s']:.1f} | {fmt(r['cpu_pod_us'] + r['cpu_srv_us'])} "
                 f"({fmt(r['cpu_pod_us'])} + {fmt(r['cpu_srv_us'])}) | {f(fo, 'mw_orig_tuple4')} / {f(fc, 'mw_orig_tuple4')} | "
                 f"{f(fo, 'mw_sock_hash')} / {f(fc, 'mw_sock_hash')} | {acc} | {ct} | {r['verdict'] or 'kept, proved'} |")
    caps = {k: v[1] for r in rows for k, v in r["fill_open"].items()}
    L += ["", f"Capacities: `mw_orig_tuple4` {caps.get('mw_orig_tuple4', '-'):,}, `mw_sock_hash` "
          f"{caps.get('mw_sock_hash', '-'):,}; nf_conntrack_max {open('/proc/sys/net/netfilter/nf_conntrack_max').read().strip()} "
          "(one value for the machine, counted per network namespace).", ""]
    for mode in dict.fromkeys(r["mode"] for r in rows):
        v = [r["cpu_pod_us"] + r["cpu_srv_us"] for r in rows if r["mode"] == mode]
        if len(v) > 1 and min(v) > 0:
            L.append(f"- {mode}: CPU per new connection from {fmt(v[0])} to {fmt(v[-1])} us "
                     f"(largest / smallest {max(v) / min(v):.2f}x; the target is flat within 20%).")
    return L + ["", "![CPU per new connection by live connections](benchmark-scale-conns.svg)", ""]


COLORS = {"iptables": "#e07b39", "ebpf": "#3b7dd8", "ebpf+accel": "#2ca25f", "tcx": "#d62728", "clsact": "#1f77b4"}


def conns_plot(rows):
    """CPU per new connection against connections open at once, one line per mode."""
    series = [(mode, COLORS.get(mode, "#555"),
               [(r["conns"], r["cpu_pod_us"] + r["cpu_srv_us"]) for r in rows if r["mode"] == mode], "")
              for mode in dict.fromkeys(r["mode"] for r in rows)]
    return svgplot.lines("CPU per new connection (us, client pod + server) by connections open at once",
                         "target: flat within 20% from the smallest level; hover a point for its value",
                         series, "connections open at once (log scale)", "us")


def churn_plot(rows):
    """Each tc attach mode's latencies under churn, side by side."""
    what = [("netns+veth", "netns_ms"), ("CNI ADD", "add_ms"), ("CNI DEL", "del_ms"), ("netns del", "netns_del_ms")]
    groups = [f"{name} p{p}" for name, _ in what for p in (50, 99)]
    series = [(f"{r['tc']} ({r['created'] / r['create_s']:.1f} pods/s)", COLORS.get(r["tc"], "#555"),
               [pct(r[key], p) for _, key in what for p in (50, 99)]) for r in rows]
    return svgplot.bars("Pod churn: latencies while pods are created and deleted under traffic (ms)",
                        "one bar per tc attach mode; the legend gives the creation rate each achieved",
                        groups, series, "ms", W=1060)


def churn_lines(s):
    rows = s.churn
    L = head(s, "Pod churn", rows) + [
         "| tc attach | target | pods created / deleted | achieved (created per s) | netns+veth p50 / p99 (ms) | "
         "CNI ADD p50 / p99 (ms) | CNI DEL p50 / p99 (ms) | netns del p50 / p99 (ms) | kernel teardown: namespaces "
         "left to tear down when the last was deleted, time until none (s) | requests in the pods that stay: "
         "ok / failed | left after (mw_pods, records, pod pin dirs, tcx links, netns, veth peers) | verdict |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pp = lambda v: f"{fmt(pct(v, 50))} / {fmt(pct(v, 99))}"
        aft = r["after"]
        L.append(f"| {r['tc']} | {r['target_rate']}/s for {r['seconds']} s, {r['workers']} workers | {r['created']:,} / "
                 f"{r['deleted']:,} | {r['created'] / r['create_s']:.1f} | {pp(r['netns_ms'])} | {pp(r['add_ms'])} | "
                 f"{pp(r['del_ms'])} | {pp(r['netns_del_ms'])} | {r['teardown_backlog']:,}, {r['teardown_s']:.1f} | "
                 f"{r['ok']:,} / {r['failed']} | {aft['mw_pods']}, {aft['records']}, {aft['pod_pins']}, {aft['tcx_links']}, "
                 f"{aft['netns']}, {aft['veth_peers']} | {r['verdict'] or 'none failed, nothing left'} |")
    L += ["", "Left after: the counts equal those before the churn (the two pods that stay) in a clean run. "
          "The pods' namespaces and veths are made in the bench's own threads (unshare, bind mount, one RTM_NEWLINK) "
          "and deleted by unmount, as a container runtime does; CNI ADD and DEL are execs of meshwire-cni.", "",
          "Where the CPU went, from the churn's start until the kernel had torn every namespace down "
          f"(CPU seconds; the machine has {os.cpu_count()} CPUs):", ""]
    for r in rows:
        c, n = r["cpu"], r["created"] + r["deleted"]
        known = c["bench"] + c["cni"] + c["loader"] + c["stay"] + c["kthreads"]
        L.append(f"- {r['tc']}: {c['secs']:.0f} s, the machine busy {c['machine']:.1f} s: meshwire-cni execs {c['cni']:.1f} "
                 f"({fmt(c['cni'] / n * 1e3)} ms per ADD or DEL), the loader {c['loader']:.1f} ({fmt(c['loader'] / n * 1e3)} ms "
                 f"per ADD or DEL), the bench's own process {c['bench']:.1f} ({fmt(c['bench'] / r['created'] * 1e3)} ms per pod: "
                 f"its threads make and delete the namespaces and veths and start the execs), kernel threads {c['kthreads']:.1f} "
                 f"(kworkers: the namespaces' teardown; RCU; softirq), the pods that stay {c['stay']:.1f}, "
                 f"the rest {c['machine'] - known:.1f} (other processes on the machine).")
    L += ["", "![Latencies under pod churn](benchmark-scale-churn.svg)", ""]
    return L


def write_section(s, kind, lines):
    a = s.args
    begin, end = SECTIONS[kind]
    out = a.out
    text = open(out).read() if os.path.exists(out) else "# meshwire at node scale\n"
    with open(out, "w") as f:
        f.write(with_section(text, "\n".join([begin, *lines, end]), begin, end))
    with open(os.path.splitext(out)[0] + f"-{kind}.json", "w") as f:
        # The binaries' paths are the run's runfiles, nothing a reader can open.
        json.dump({"args": {k: v for k, v in vars(a).items()
                            if isinstance(v, (int, float, str, list)) and k not in ("loader", "mwtest", "cni")},
                   "rows": s.rows if kind == "conns" else s.churn}, f, indent=1)
    with open(os.path.splitext(out)[0] + f"-{kind}.svg", "w") as f:
        f.write(conns_plot(s.rows) if kind == "conns" else churn_plot(s.churn))
    log(f"wrote {out} ({kind} section), {os.path.splitext(out)[0]}-{kind}.json and .svg")


def failed_rows(s, rows, name):
    """After the report is written: a Fatal (the bench exits 1) naming each row whose verdict is a failure."""
    bad = [f"{name(r)}: {r['verdict']}" for r in rows if r["verdict"]]
    if bad:
        raise Fatal(f"{len(bad)} of {len(rows)} rows failed (report kept: {s.args.out}): " + " | ".join(bad))


def report_conns(s):
    write_section(s, "conns", conn_lines(s))


def report_churn(s):
    write_section(s, "churn", churn_lines(s))
