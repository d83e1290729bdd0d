"""meshwire at node scale: `./bazelw run //tools/bench -- --mode scale`.

How the costs grow with the number of pods meshed on one node (1, 100,
1,000, 4,000 by default): CNI ADD and DEL latency from the exec of
meshwire-cni to its exit (p50/p99, with the loader's own account of where
its part of the time went), the loader's RSS, the pinned maps' memory, the
latency of `meshwire-loader pods` and `status`, and how long a loader
restarted after kill -9 takes to adopt every pod (and its RSS then).

One loader (eBPF mode, tc attached as the kernel allows) with its own
cgroup, pins on a private bpffs and API socket. Every pod is a network
namespace made here with a veth `eth0` (its peer in a node namespace), so
each ADD attaches tc there and writes its record, as on a node. The pods
that make up the count are meshed through the API; the pods measured are
added by meshwire-cni as a runtime runs it (environment, netconf with
prevResult on stdin), and deleted again right after, so the count holds.

A figure is kept only from a run that proved its interception: the loader
answers CHECK (map entries and tc links in place) for every measured pod,
and at each size one measured pod's connection to an address outside it
is redirected to its sidecar port, whose accept reads the address dialled
back with getsockopt(SO_ORIGINAL_DST). Adoption must report every pod
kept. Root; everything made here carries the prefix mwb<PID>- and is
removed on exit, also when interrupted.
"""

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import random
import re
import socket
import statistics
import struct
import subprocess
import time

from bench import Bench, Fatal, OUT_PORT, log, machine, machine_busy, fmt
import svgplot

NODE = "n1"


def pod_ip(i):
    """10.240.0.0/16, unique for i < 16,000."""
    return f"10.240.{i // 250}.{i % 250 + 2}"


def took(text):
    """{phase: ms} of the loader's "2.41 ms (netns cookie 0.31, ..., other 0.12)"."""
    total, _, parts = text.partition(" ms (")
    out = {"total (loader)": float(total)}
    for part in parts.rstrip(")").split(", "):
        name, _, ms = part.rpartition(" ")
        out[name] = float(ms)
    return out


ADOPTION_LINE = re.compile(r"adoption of (\d+) pod\(s\), (\d+) dropped(?:, (\d+) kept unchecked)?: (.*)$")


def adoption_phases(line, size):
    """{phase: ms} of the loader's "adoption of N pod(s), D dropped, U kept
    unchecked: <took>" line (older loaders have no "kept unchecked"), after
    checking that all `size` pods were adopted and none left unchecked."""
    m = ADOPTION_LINE.search(line)
    if not m:
        raise Fatal(f"the loader's adoption line is not in the form this benchmark reads: {line!r}")
    kept, dropped, unchecked = int(m[1]), int(m[2]), int(m[3] or 0)
    if (kept, dropped, unchecked) != (size, 0, 0):
        raise Fatal(f"adoption kept {kept}, dropped {dropped}, left {unchecked} unchecked of {size} pods: {line!r}")
    return took(m[4])


def spawn_ms(path, env, stdin):
    """Exec `path` as a runtime does (vfork + exec through posix_spawn, the
    netconf on a pipe, stdout and stderr on another) and wait for its exit:
    (ms from just before the spawn to its reaped exit, exit status, output).
    subprocess.run would add its own work in this process (about 0.25 ms per
    run here, measured against /bin/true), which is not meshwire-cni's."""
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    acts = [(os.POSIX_SPAWN_DUP2, r_in, 0), (os.POSIX_SPAWN_DUP2, w_out, 1), (os.POSIX_SPAWN_DUP2, w_out, 2),
            (os.POSIX_SPAWN_CLOSE, r_in), (os.POSIX_SPAWN_CLOSE, w_in), (os.POSIX_SPAWN_CLOSE, r_out), (os.POSIX_SPAWN_CLOSE, w_out)]
    out = b""
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(path, [path], env, file_actions=acts)
        os.close(r_in)
        os.close(w_out)
        r_in = w_out = None
        try:
            os.write(w_in, stdin)  # well under a pipe's 64 KiB
        except BrokenPipeError:
            pass
        os.close(w_in)
        w_in = None
        while chunk := os.read(r_out, 65536):
            out += chunk
        _, status = os.waitpid(pid, 0)
        ms = (time.perf_counter() - t0) * 1e3
    finally:
        for fd in (r_in, w_in, r_out, w_out):
            if fd is not None:
                os.close(fd)
    return ms, os.waitstatus_to_exitcode(status), out.decode(errors="replace")


libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
MS_BIND, MS_REC, MS_SHARED, MNT_DETACH = 0x1000, 0x4000, 0x100000, 2
NETNS_DIR = "/run/netns"


def _check(r, what):
    """Raise OSError (errno and `what`) when the libc call's result r is not 0."""
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _setns(fd, what):
    _check(libc.setns(fd, CLONE_NEWNET), f"setns to {what}")


@contextlib.contextmanager
def in_netns(name):
    """This thread in the network namespace /run/netns/<name> for the block
    (setns: only the calling thread moves), then back in its own."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(fd, name)
        finally:
            os.close(fd)
        try:
            yield
        finally:
            _setns(home, "the thread's own network namespace")
    finally:
        os.close(home)


def netns_dir_shared():
    """NETNS_DIR a shared mount point, as `ip netns add` leaves it (bound onto
    itself first when it is no mount point), so that a namespace mounted there
    later also appears in the mount namespaces copied from this one (`ip netns
    exec`'s) and its unmount leaves them too: no such copy keeps a deleted
    namespace alive. Under a lock on the directory, as two `ip`s may do it at once."""
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    lock = os.open(NETNS_DIR, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        d = NETNS_DIR.encode()
        if libc.mount(b"none", d, b"none", MS_SHARED | MS_REC, None) != 0:
            e = ctypes.get_errno()
            if e != errno.EINVAL:  # EINVAL: no mount point
                raise OSError(e, f"mount --make-rshared {NETNS_DIR}: {os.strerror(e)}")
            _check(libc.mount(d, d, b"none", MS_BIND | MS_REC, None), f"mount --rbind {NETNS_DIR} onto itself")
            _check(libc.mount(b"none", d, b"none", MS_SHARED | MS_REC, None), f"mount --make-rshared {NETNS_DIR}")
    finally:
        os.close(lock)


@contextlib.contextmanager
def new_netns(name):
    """A new network namespace NETNS_DIR/<name>, made in-process as a
    container runtime makes a pod's, with this thread in it for the block,
    then back in its own: the thread unshares CLONE_NEWNET (only the calling
    thread moves) and its namespace is bind-mounted onto the file. The
    namespace stays, also when the block fails, until netns_del(name).
    Call netns_dir_shared() once before."""
    path = f"{NETNS_DIR}/{name}"
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        try:
            _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        except OSError:
            os.unlink(path)
            raise
        try:
            try:
                _check(libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None),
                       f"bind mount of a new network namespace onto {path}")
            except OSError:
                os.unlink(path)
                raise
            yield
        finally:
            _setns(home, "the thread's own network namespace")
    finally:
        os.close(home)


def netns_del(name):
    """What `ip netns del` does: NETNS_DIR/<name> unmounted (MNT_DETACH) and
    removed. The kernel tears the namespace down once nothing holds it any
    more, later, in a workqueue (cleanup_net)."""
    path = f"{NETNS_DIR}/{name}"
    _check(libc.umount2(path.encode(), MNT_DETACH), f"umount {path}")
    os.unlink(path)


F_REQUEST, F_ACK, F_EXCL, F_CREATE, F_DUMP = 1, 4, 0x200, 0x400, 0x300
RTM_NEWLINK, IFLA_IFNAME, IFLA_LINKINFO, IFLA_NET_NS_FD = 16, 3, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1


def nla(t, payload):
    """A netlink attribute of type t."""
    n = 4 + len(payload)
    return struct.pack("HH", n, t) + payload + b"\0" * ((-n) % 4)


class Rtnl:
    """A NETLINK_ROUTE socket, in the network namespace of the thread that
    opened it (for good)."""

    def __init__(self):
        self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.s.bind((0, 0))
        self.seq = 0

    def close(self):
        self.s.close()

    def request(self, mtype, flags, body):
        """Send one request (its body after the netlink header); the messages
        answered: up to DONE for a dump, up to the ACK with F_ACK, else the first.
        A netlink error raises OSError."""
        self.seq += 1
        self.s.send(struct.pack("IHHII", 16 + len(body), mtype, flags, self.seq, 0) + body)
        out = []
        while True:
            buf = self.s.recv(65536)
            off = 0
            while off < len(buf):
                ln, t = struct.unpack_from("IH", buf, off)
                if t == 3:  # DONE
                    return out
                if t == 2:  # ERROR / ACK
                    err = struct.unpack_from("i", buf, off + 16)[0]
                    if err:
                        raise OSError(-err, f"netlink {mtype}: {os.strerror(-err)}")
                    return out
                out.append(buf[off:off + ln])
                off += (ln + 3) & ~3
                if not (flags & F_DUMP) and not (flags & F_ACK):
                    return out


def ifinfomsg(flags=0):
    """struct ifinfomsg: AF_UNSPEC, no index; `flags` set (and changed)."""
    return struct.pack("BxHiII", socket.AF_UNSPEC, 0, 0, flags, flags)


def veth_add(ifname, peer, peer_netns_fd):
    """`ip link add IFNAME up type veth peer name PEER netns NS` in one
    RTM_NEWLINK from this thread's network namespace: `ifname` here and up,
    its peer in the namespace of the descriptor peer_netns_fd, down."""
    peer_msg = ifinfomsg() + nla(IFLA_IFNAME, peer.encode() + b"\0") + nla(IFLA_NET_NS_FD, struct.pack("I", peer_netns_fd))
    info = nla(IFLA_INFO_KIND, b"veth") + nla(IFLA_INFO_DATA, nla(VETH_INFO_PEER, peer_msg))
    nl = Rtnl()
    try:
        nl.request(RTM_NEWLINK, F_REQUEST | F_ACK | F_CREATE | F_EXCL,
                   ifinfomsg(IFF_UP) + nla(IFLA_IFNAME, ifname.encode() + b"\0") + nla(IFLA_LINKINFO, info))
    finally:
        nl.close()


def link_up(ifname):
    """Bring `ifname` up in this thread's network namespace."""
    with socket.socket() as s:
        ifr = struct.pack("16sH", ifname.encode(), 0) + b"\0" * 22
        flags = struct.unpack_from("H", fcntl.ioctl(s, SIOCGIFFLAGS, ifr), 16)[0]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", ifname.encode(), flags | IFF_UP) + b"\0" * 22)


class VethPods:
    """Pod network namespaces as a node has them: pod i's, name(i), has a
    veth eth0 whose peer v<i> is in the node's namespace `node_ns`, both up
    (as the runtime's network plugin leaves them: a clsact qdisc on an
    interface that is up costs more to add and remove). `run(cmd, text)`
    runs a command with `text` on its stdin, failing loudly. Shared by
    --mode scale and clsact_repro.py."""

    def __init__(self, run, node_ns, name):
        self.run, self.node_ns, self.name = run, node_ns, name
        self.names = []  # every pod namespace made, oldest first

    def make(self, n):
        """n more pods; their namespaces' names."""
        first = len(self.names)
        names = [self.name(i) for i in range(first, first + n)]
        self.names += names  # before: a failure part-way leaves them to the caller's cleanup
        self.run(["ip", "-b", "-"], "".join(f"netns add {m}\n" for m in names))
        self.run(["ip", "-n", self.node_ns, "-b", "-"],
                 "".join(f"link add v{i} type veth peer name eth0 netns {m}\nlink set v{i} up\n" for i, m in enumerate(names, first)))
        for m in names:
            with in_netns(m):
                link_up("eth0")
        return names


def pct(v, p):
    """The p-th percentile (nearest rank) of v."""
    s = sorted(v)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))] if s else None


# What a measured pod runs inside its namespace and the loader's cgroup to
# prove the interception: a listener on the sidecar's outbound port, a
# connection to an address that exists nowhere, and the original destination
# its accept reads back (as a sidecar does).
PROOF = r"""
import socket, struct, sys
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", int(sys.argv[1]))); lst.listen(1)
c = socket.create_connection(("10.99.0.1", 8080), timeout=3)
s, _ = lst.accept()
raw = s.getsockopt(socket.SOL_IP, 80, 16)
port, addr = struct.unpack("!H4s", raw[2:8])
print(socket.inet_ntoa(addr), port)
"""


def prove_redirect(cgroup, enter, what, note=""):
    """PROOF in a pod: run in `cgroup` (the loader's) and in the pod's
    network namespace (the command prefix `enter` gets it there), a
    connection to an address that exists nowhere must reach the sidecar's
    port, whose accept reads the address back with SO_ORIGINAL_DST; a Fatal
    naming `what` (and `note`) otherwise. --mode scale and --mode runtime."""
    cmd = ["sh", "-c", 'echo $$ >"$1/cgroup.procs" || exit 125; shift; exec "$@"', "in-pod", cgroup,
           *enter, "python3", "-c", PROOF, str(OUT_PORT)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if out.returncode != 0 or out.stdout.split() != ["10.99.0.1", "8080"]:
        raise Fatal(f"{what} was not intercepted: exit {out.returncode}: {out.stdout} {out.stderr[-600:]} {note}")


class Scale(Bench):
    def __init__(self, args):
        super().__init__(args)
        self.cni_bin = os.path.realpath(args.cni)
        self.baseline = os.path.realpath(args.baseline_loader) if args.baseline_loader else None
        self.meshed_bg = 0
        self.bg_order = []       # the background pods meshed, oldest first
        self.bg_cid = {}         # background pod -> its container ID now
        self.bg_gen = 0
        self.conn = None
        self.rows = []           # one dict per size
        self.cleanups = []       # one dict per tc attach mode
        self.loader_p = None
        self.tc = None
        self.state_mounted = False

    # -------------------------------------------------------------------- setup
    def setup(self):
        cg2 = self.prepare("scale", ("ip", "bpftool", "python3"), ("loader", "cni_bin") + (("baseline",) if self.baseline else ()))
        self.cg_root = f"{cg2}/{self.P}-scale"
        for d in (self.cg_root, f"{self.cg_root}/mesh-{NODE}"):
            os.mkdir(d)
            self.cgroups.append(d)
        self.run(["ip", "netns", "add", self.ns(NODE)])
        self.ns_made.append(self.ns(NODE))
        self.pods = VethPods(lambda cmd, text: self.run(cmd, input=text, timeout=600), self.ns(NODE), lambda i: self.ns(f"p{i}"))
        self.cfg = self.loader_cfg(NODE, "ebpf")
        with open(self.cfg) as f:
            self.cfg_text = f.read()
        # Records on tmpfs, as in the default state dir /run/meshwire on a node.
        self.state = f"{self.work}/{NODE}/state"
        os.mkdir(self.state)
        self.run(["mount", "-t", "tmpfs", "-o", "mode=0700", f"{self.P}-state", self.state])
        self.state_mounted = True

    def use_tc(self, mode):
        """A fresh loader state (no pods, no pins) whose [tc] attach is `mode`."""
        if self.loader_p:
            self.kill_loader()
            self.run([self.loader, "--config", self.cfg, "cleanup"], timeout=600)
            subprocess.run(["find", self.state, "-mindepth", "1", "-delete"], check=True)
        with open(self.cfg, "w") as f:
            f.write(self.cfg_text + f'[tc]\nattach = "{mode}"\n')
        self.meshed_bg = 0
        self.bg_order = []
        self.start_loader()

    def make_pods(self, n):
        """n more pod namespaces, each with a veth eth0 whose peer is in the node's."""
        first = len(self.pods.names)
        self.ns_made.extend(self.pods.name(i) for i in range(first, first + n))  # removed on exit, also after a failure
        self.pods.make(n)
        return list(range(first, first + n))

    # ------------------------------------------------------------------- loader
    def start_loader(self, binary=None):
        """Start `run` (of `binary`, the loader measured by default); seconds
        until it said ready, and its log text."""
        t0 = time.monotonic()
        self.loader_p = self.start("loader", [binary or self.loader, "--config", self.cfg, "--log-level", "debug", "run"])
        logf = self.procs_log(self.loader_p)
        while time.monotonic() - t0 < 120:
            text = open(logf).read()
            if "meshwire-loader: ready" in text:
                return time.monotonic() - t0, text
            if self.loader_p.poll() is not None:
                raise Fatal(f"the loader exited: {text[-1500:]}")
            time.sleep(0.005)
        raise Fatal("the loader was not ready after 120 s")

    def kill_loader(self):
        self.loader_p.kill()
        self.loader_p.wait(10)
        self.procs.remove(self.loader_p)
        if self.conn:
            self.conn.close()
            self.conn = None

    def cpu_ms(self):
        """The loader's CPU time so far (user + system, all its threads)."""
        st = open(f"/proc/{self.loader_p.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) * 1e3 / os.sysconf("SC_CLK_TCK")

    def rss_kib(self):
        st = dict(l.split(":", 1) for l in open(f"/proc/{self.loader_p.pid}/status"))
        return int(st["VmRSS"].split()[0]), int(st["VmHWM"].split()[0])

    def api(self, op):
        """One request on a kept connection to the loader's API."""
        if self.conn is None:
            self.conn = socket.socket(socket.AF_UNIX)
            self.conn.connect(f"{self.work}/{NODE}/api.sock")
            self.reader = self.conn.makefile("r")
        self.conn.sendall((json.dumps({"version": 1, **op}) + "\n").encode())
        r = json.loads(self.reader.readline())
        if r.get("error"):
            raise Fatal(f"loader: {op['op']}: {r['error']}")
        return r["result"]

    def maps_memory(self):
        """(bytes of every pinned map, {name: (entries' capacity, bytes)})."""
        total, each = 0, {}
        pin_maps = f"{self.bpffs}/{NODE}/maps"
        for name in sorted(os.listdir(pin_maps)):
            info = json.loads(self.run(["bpftool", "-j", "map", "show", "pinned", f"{pin_maps}/{name}"]))
            total += info.get("bytes_memlock", 0)
            each[name] = (info.get("max_entries"), info.get("bytes_memlock", 0))
        return total, each

    # --------------------------------------------------------------------- pods
    def netconf(self, i):
        prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": f"/run/netns/{self.ns(f'p{i}')}"}],
                "ips": [{"address": f"{pod_ip(i)}/16", "interface": 0}]}
        return json.dumps({"cniVersion": "1.0.0", "name": "scale", "type": "meshwire-cni",
                           "loaderSocket": f"{self.work}/{NODE}/api.sock", "prevResult": prev})

    def cni(self, cmd, i, cid=None):
        """Run meshwire-cni as a runtime does for pod i (container ID `cid`,
        m<i> by default); milliseconds from exec to exit. VERSION is the
        floor: the same process start, stdin, JSON and stdout, without the
        loader."""
        cid = cid or f"m{i}"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": cmd, "CNI_CONTAINERID": cid,
               "CNI_NETNS": f"/run/netns/{self.ns(f'p{i}')}", "CNI_IFNAME": "eth0", "CNI_PATH": os.path.dirname(self.cni_bin),
               "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=scale;K8S_POD_NAME={cid}"}
        ms, rc, out = spawn_ms(self.cni_bin, env, self.netconf(i).encode())
        if rc != 0:
            raise Fatal(f"meshwire-cni {cmd} {cid}: exit {rc}: {out.strip()}")
        return ms

    def mesh_bg(self, i):
        """Mesh background pod i, under a container ID of its own each time
        (the loader's log lines of each DEL are then told apart)."""
        self.bg_gen += 1
        cid = f"bg{i}" if i not in self.bg_cid else f"bg{i}g{self.bg_gen}"
        self.api({"op": "add_pod", "pod": {"container_id": cid, "netns": f"/run/netns/{self.ns(f'p{i}')}",
                                            "ifname": "eth0", "ips": [pod_ip(i)]}})
        self.bg_cid[i] = cid
        self.bg_order.append(i)

    def grow_to(self, n):
        """Mesh background pods through the API until n are meshed."""
        todo = n - self.meshed_bg
        if todo <= 0:
            return
        for i in self.make_pods(todo):
            self.mesh_bg(i)
        self.meshed_bg = n

    def del_meshed(self, rng):
        """CNI DEL of a background pod picked uniformly at random among those
        meshed, then meshed again (through the API, not timed), so the count
        holds: (ms from exec to exit, how many meshed pods are newer than it,
        the container ID deleted).
        Why uniformly: a node deletes pods of every age, and with lifetimes
        that do not depend on age each meshed pod is as likely as any other
        to be the next to go. The kernel's list of tc blocks is walked from
        the newest entry to the deleted pod's, so the DEL of the pod just
        added (the other DEL figure) is the best case, and the oldest pod's
        the worst."""
        k = rng.randrange(len(self.bg_order))
        i = self.bg_order.pop(k)
        cid = self.bg_cid[i]
        ms = self.cni("DEL", i, cid)
        self.mesh_bg(i)
        return ms, len(self.bg_order) - 1 - k, cid

    def prove(self, i):
        """A connection from the measured pod i is steered to its sidecar
        port and SO_ORIGINAL_DST gives the address dialled."""
        p = subprocess.run(["ip", "-n", self.ns(f"p{i}"), "link", "set", "lo", "up"], capture_output=True, text=True)
        prove_redirect(f"{self.cg_root}/mesh-{NODE}", ["ip", "netns", "exec", self.ns(f"p{i}")], f"pod m{i}", p.stderr)

    def phases(self, text, what, ids):
        """{phase: [ms]} from the loader's `api: add_pod|del_pod ID ...` lines for these IDs."""
        out = {}
        for line in text.splitlines():
            k = line.find(f"api: {what} ")
            if k < 0:
                continue
            rest = line[k + len(f"api: {what} "):]
            cid = rest.split(" ", 1)[0]
            if cid not in ids:
                continue
            for name, ms in took(rest.split(": ", 1)[1]).items():
                out.setdefault(name, []).append(ms)
        return out

    def slowest_dels(self, text, cids, dels, vers):
        """The slowest 1% of the DELs (at least 2), each with the VERSION run
        just before its pod's ADD (the exec floor of that moment), the
        loader's phases for it and what it did after answering (`api: after
        del_pod ...`): where a p99 DEL's time went."""
        mine, after = {}, {}
        for line in text.splitlines():
            for prefix, into in (("api: del_pod ", mine), ("api: after del_pod ", after)):
                k = line.find(prefix)
                if k >= 0:
                    rest = line[k + len(prefix):]
                    into[rest.split(" ", 1)[0]] = rest.split(": ", 1)[1]
        worst = sorted(range(len(dels)), key=lambda k: -dels[k])[:max(2, len(dels) // 100)]
        return [{"id": cids[k], "ms": dels[k], "version_ms": vers[k], "phases": took(mine[cids[k]]) if cids[k] in mine else {},
                 "after_ms": float(after[cids[k]].split()[0]) if cids[k] in after else None} for k in worst]

    def cli_ms(self, *args, n=10):
        v = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.run([self.loader, "--config", self.cfg, *args], timeout=60)
            v.append((time.perf_counter() - t0) * 1e3)
        return v

    def measure(self, size, pool):
        a = self.args
        self.grow_to(size)
        busy0, t0 = machine_busy(), time.monotonic()
        adds, dels, newest, vers, newer = [], [], [], [], []
        logf = self.procs_log(self.loader_p)
        rng = random.Random(size)  # the same picks in every run
        deleted = []  # the container ID of each sample's random DEL
        for k, i in enumerate(pool):
            vers.append(self.cni("VERSION", i))
            adds.append(self.cni("ADD", i))
            self.api({"op": "check_pod", "container_id": f"m{i}", "ifname": "eth0"})
            if k == 0:
                self.prove(i)
            newest.append(self.cni("DEL", i))
            ms, walked, cid = self.del_meshed(rng)
            dels.append(ms)
            newer.append(walked)
            deleted.append(cid)
        busy = (machine_busy() - busy0) / (time.monotonic() - t0) / os.cpu_count()
        text = open(logf).read()
        ids = {f"m{i}" for i in pool}
        row = {"tc": self.tc, "pods": size, "adds": adds, "dels": dels, "dels_newest": newest, "del_newer": newer,
               "versions": vers, "load": busy, "add_phases": self.phases(text, "add_pod", ids),
               "del_phases": self.phases(text, "del_pod", set(deleted)), "del_newest_phases": self.phases(text, "del_pod", ids),
               "del_slowest": self.slowest_dels(text, deleted, dels, vers)}
        row["rss_kib"], row["hwm_kib"] = self.rss_kib()
        row["maps_bytes"], row["maps"] = self.maps_memory()
        row["pods_ms"] = self.cli_ms("pods")
        row["status_ms"] = self.cli_ms("status")
        listed = len(self.api({"op": "list_pods"})["pods"])
        if listed != size:
            raise Fatal(f"the loader lists {listed} pods, {size} meshed")
        # Restarts after kill -9: each new loader adopts every pod. The
        # median restart (by time to ready) gives the figures.
        # With --baseline-loader, that loader's restarts alternate with the
        # measured one's (baseline first: the measured loader serves the next size).
        restarts, base = [], []
        for _ in range(a.restarts):
            for binary, into in ((self.baseline, base), (self.loader, restarts)):
                if not binary:
                    continue
                self.kill_loader()
                ready_s, text = self.start_loader(binary)
                kept = [l for l in text.splitlines() if "adopted " in l]
                want = f"adopted {size} pod(s)"
                if not kept or want not in kept[-1]:
                    raise Fatal(f"after kill -9 the new loader ({binary}) did not adopt {size} pods: {kept[-1:] or text[-800:]}")
                line = [l for l in text.splitlines() if "adoption of " in l][-1]
                into.append({"ready_s": ready_s, "cpu_ms": self.cpu_ms(), "rss_kib": self.rss_kib()[0],
                             "phases": adoption_phases(line, size)})
        row["restarts"], row["baseline_restarts"] = restarts, base
        median = sorted(restarts, key=lambda r: r["ready_s"])[(len(restarts) - 1) // 2]
        row["adopt_s"], row["adopt_cpu_ms"] = median["ready_s"], median["cpu_ms"]
        row["adopt_rss_kib"], row["adopt_phases"] = median["rss_kib"], median["phases"]
        if base:
            median = sorted(base, key=lambda r: r["ready_s"])[(len(base) - 1) // 2]
            row["base_adopt_s"], row["base_adopt_cpu_ms"], row["base_adopt_phases"] = median["ready_s"], median["cpu_ms"], median["phases"]
        self.rows.append(row)
        log(f"  {self.tc:<6} {size:>5} pods: ADD p50 {pct(adds, 50):.2f} p95 {pct(adds, 95):.2f} p99 {pct(adds, 99):.2f} ms, "
            f"DEL of a random meshed pod p50 {pct(dels, 50):.2f} p95 {pct(dels, 95):.2f} p99 {pct(dels, 99):.2f} ms "
            f"(median {statistics.median(newer):.0f} pods meshed after it), of the pod just added p50 {pct(newest, 50):.2f} "
            f"p99 {pct(newest, 99):.2f} ms, VERSION p50 {pct(vers, 50):.2f} "
            f"p99 {pct(vers, 99):.2f} ms, RSS {row['rss_kib'] / 1024:.1f} MiB, maps {row['maps_bytes'] / 2**20:.1f} MiB, "
            f"adoption {row['adopt_s'] * 1e3:.0f} ms, CPU {row['adopt_cpu_ms']:.0f} ms (median of {a.restarts}; "
            f"{', '.join(format(r['ready_s'] * 1e3, '.0f') for r in restarts)})"
            + (f"; baseline {row['base_adopt_s'] * 1e3:.0f} ms, CPU {row['base_adopt_cpu_ms']:.0f} ms" if base else "")
            + f" (machine {busy:.0%} busy)")

    def main(self):
        a = self.args
        t_start = time.monotonic()
        self.setup()
        log(f"scale: tc attach {a.tc_attach}, sizes {a.sizes}, {a.samples} ADD/DEL samples each; work dir {self.work}")
        pool = self.make_pods(a.samples)
        for self.tc in a.tc_attach:
            self.use_tc(self.tc)
            for size in a.sizes:
                self.measure(size, pool)
            self.measure_cleanup()
        self.elapsed = time.monotonic() - t_start
        report(self)

    def timed_cleanup(self, binary, n):
        """`meshwire-loader cleanup` by `binary` (no loader running) of the n
        pods meshed: {s: seconds, user_ms and sys_ms: its own CPU time (the
        kernel's walks of its list of tc blocks are system time of the
        process asking), children_ms: the CPU time of the processes it ran
        (iptables, looking for rules an iptables-mode run left)}, read from
        /proc/PID/stat once it has exited, before it is reaped."""
        tick = 1e3 / os.sysconf("SC_CLK_TCK")
        t0 = time.monotonic()
        p = subprocess.Popen([binary, "--config", self.cfg, "cleanup"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            out = p.stdout.read()
            os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
            took = time.monotonic() - t0
            st = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
        finally:
            p.stdout.close()
            p.wait()
        removed = out.count("removed pod record ")
        if p.returncode != 0 or removed != n:
            raise Fatal(f"cleanup by {binary}: exit {p.returncode}, {removed} pod records removed of {n}: {out[-800:]}")
        return {"s": took, "user_ms": int(st[11]) * tick, "sys_ms": int(st[12]) * tick, "children_ms": (int(st[13]) + int(st[14])) * tick}

    def measure_cleanup(self):
        """How long `cleanup` takes to take every pod out at the last size;
        with --baseline-loader, that loader's cleanup too, in turns
        (baseline first, --restarts times each), the pods meshed again by
        the measured loader before each. The loader serves no pod after."""
        a = self.args
        n, ids = self.meshed_bg, sorted(self.bg_order)
        runs = {"measured": [], "baseline": []}
        for r in range(a.restarts if self.baseline else 1):
            for name, binary in (("baseline", self.baseline), ("measured", self.loader)):
                if not binary:
                    continue
                if self.loader_p is None:
                    self.start_loader()
                    for i in ids:  # oldest first, as they were meshed
                        self.mesh_bg(i)
                self.kill_loader()
                self.loader_p = None
                self.bg_order = []
                runs[name].append(self.timed_cleanup(binary, n))
        self.start_loader()
        self.meshed_bg = 0
        row = {"tc": self.tc, "pods": n, "runs": runs["measured"], "baseline_runs": runs["baseline"]}
        self.cleanups.append(row)
        each = lambda v: "; ".join(f"{x['s'] * 1e3:.0f} ms, user {x['user_ms']:.0f} sys {x['sys_ms']:.0f} children {x['children_ms']:.0f}" for x in v)
        log(f"  {self.tc:<6} cleanup of {n} pods: {each(runs['measured'])}" + (f"; baseline: {each(runs['baseline'])}" if runs["baseline"] else ""))

    def cleanup_system(self):
        if self.state_mounted:
            subprocess.run(["umount", self.state], capture_output=True)
        super().cleanup_system()

    def cleanup_loaders(self):
        if self.work and os.path.exists(self.cfg):
            subprocess.run([self.loader, "--config", self.cfg, "cleanup"], capture_output=True, timeout=300)


# ---------------------------------------------------------------------- report
def report(s):
    a = s.args
    m = machine()
    rows = s.rows
    L = [f"# meshwire at node scale",
         "",
         f"Generated by `./bazelw run //tools/bench -- --mode scale` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
         f"{' (' + a.note + ')' if a.note else ''}: {m['cpu']}, {m['mem']}, Linux {m['kernel']}; {s.elapsed:.0f} s in all.",
         "",
         f"**Machine load**: while the samples ran, {', '.join(format(r['load'], '.0%') for r in rows)} of the machine's "
         f"{os.cpu_count()} CPUs were busy (all processes, this run's included; load average at the end "
         f"{' '.join(open('/proc/loadavg').read().split()[:3])}). Latencies are wall-clock: other work on the machine "
         "lengthens them, the tail above all.",
         "",
         "How it measures: [benchmarking.md](benchmarking.md#node-scale). ADD and DEL: from the exec of meshwire-cni "
         f"to its exit, {a.samples} of each per size: each measured pod is added and deleted again (DEL of the pod just "
         "added: its tc blocks are the newest on the kernel's list, which a deletion walks from the newest entry, the best "
         "case), then a pod picked uniformly at random among those meshed is deleted (DEL of a random meshed pod: a node "
         "deletes pods of every age) and meshed again, so the count holds; before each ADD, "
         "a VERSION (the same process start, stdin, JSON and stdout, no loader): the floor any exec has on this machine "
         "at that moment. Every measured "
         "pod passed CHECK after its ADD; one per size had a connection steered to its sidecar port with SO_ORIGINAL_DST "
         f"answered; every restart adopted all pods. Adoption: {a.restarts} restarts (kill -9, then `run` until it says ready) "
         "per size, the median by time to ready; the loader's CPU time is its own from exec to ready (loading the datapath "
         "included), all its threads, which other work on the machine does not lengthen as it does the time.",
         "",
         *main_table(rows)]
    for what, key, times in (("ADD", "add_phases", "adds"), ("DEL of a random meshed pod", "del_phases", "dels"),
                             ("DEL of the pod just added", "del_newest_phases", "dels_newest")):
        names = []
        for r in rows:
            names += [n for n in r.get(key, {}) if n not in names]
        L += ["", f"Where the loader's part of {what} goes (median ms per request; the rest of the exec-to-exit time is "
              "meshwire-cni's process start, its parsing and the socket round trip):", "",
              "| phase | " + " | ".join(f"{r['tc']}, {r['pods']:,} pods" for r in rows) + " |",
              "|---|" + "---|" * len(rows)]
        for n in names:
            L.append(f"| {n} | " + " | ".join(fmt(statistics.median(r[key][n])) if r[key].get(n) else "-" for r in rows) + " |")
        L.append(f"| exec to exit (p50) | " + " | ".join(fmt(pct(r[times], 50)) for r in rows) + " |")
    L += ["", "The slowest DELs of a random meshed pod (the slowest 1%, at least 2, per size): exec to exit, the VERSION run in the same round "
          "(the exec floor then), the loader's part and its phases (ms), and the work it did after answering (a bare "
          "clsact qdisc's deletion, by loaders before its reaper thread; '-' when none was logged):", "",
          "| tc attach | pods meshed | DEL (ms) | VERSION (ms) | loader (ms) | loader's phases | after the answer (ms) |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        for w in r.get("del_slowest", []):
            ph = w["phases"]
            parts = ", ".join(f"{n} {fmt(v)}" for n, v in ph.items() if n != "total (loader)")
            L.append(f"| {r['tc']} | {r['pods']:,} | {fmt(w['ms'])} | {fmt(w['version_ms'])} | {fmt(ph.get('total (loader)'))} | "
                     f"{parts or '-'} | {fmt(w['after_ms']) if w['after_ms'] is not None else '-'} |")
    if any("base_adopt_s" in r for r in rows):
        L += ["", f"Adoption against the baseline loader (`--baseline-loader {os.path.basename(a.baseline_loader)}`{' (' + a.baseline_note + ')' if a.baseline_note else ''}): "
              f"the same pods, {a.restarts} restarts of each per size in turns (baseline first), medians by time to ready:", "",
              "| tc attach | pods meshed | adoption (ms) | baseline (ms) | ratio | loader CPU to ready (ms) | baseline (ms) | ratio |",
              "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            L.append(f"| {r['tc']} | {r['pods']:,} | {fmt(r['adopt_s'] * 1e3)} | {fmt(r['base_adopt_s'] * 1e3)} | "
                     f"{r['adopt_s'] / r['base_adopt_s']:.2f}x | {fmt(r['adopt_cpu_ms'])} | {fmt(r['base_adopt_cpu_ms'])} | "
                     f"{r['adopt_cpu_ms'] / r['base_adopt_cpu_ms']:.2f}x |")
    L += ["", "Where adoption after kill -9 goes (ms, all pods; the rest of the time to ready is loading the datapath):", "",
          "| phase | " + " | ".join(f"{r['tc']}, {r['pods']:,} pods" for r in rows) + " |", "|---|" + "---|" * len(rows)]
    names = []
    for r in rows:
        names += [n for n in r["adopt_phases"] if n not in names]
    for n in names:
        L.append(f"| {n} | " + " | ".join(fmt(r["adopt_phases"].get(n)) for r in rows) + " |")
    if s.cleanups:
        with_base = any(c["baseline_runs"] for c in s.cleanups)
        L += ["", "`meshwire-loader cleanup` of every pod at the last size (no loader running; its records say which pods; it "
              "takes them out newest first, then every pin): time, its own CPU time, user and system (the kernel's walks of "
              "its list of tc blocks are its system time), and the CPU time of the processes it ran (iptables, looking in each "
              "pod for rules an iptables-mode run left)" + (f"; against the baseline loader's (`--baseline-loader`), "
              f"{a.restarts} of each in turns, baseline first, the pods meshed again before each" if with_base else "") +
              "; medians, ms:", "",
              "| tc attach | pods | loader | cleanup | user | system | its children |", "|---|---|---|---|---|---|---|"]
        for c in s.cleanups:
            for who, runs in (("measured", c["runs"]), ("baseline", c["baseline_runs"])):
                if runs:
                    m = {k: statistics.median(x[k] for x in runs) for k in ("s", "user_ms", "sys_ms", "children_ms")}
                    L.append(f"| {c['tc']} | {c['pods']:,} | {who} | {fmt(m['s'] * 1e3)} | {fmt(m['user_ms'])} | {fmt(m['sys_ms'])} | {fmt(m['children_ms'])} |")
    last = rows[-1]
    L += ["", f"Pinned maps at {last['pods']:,} pods (capacity, bytes as the kernel accounts them):", "",
          "| map | capacity | KiB |", "|---|---|---|"]
    for name, (cap, b) in last["maps"].items():
        L.append(f"| `{name}` | {cap:,} | {fmt(b / 1024)} |")
    L += ["", "![ADD and DEL latency by pods meshed](benchmark-scale.svg)", ""]
    base = os.path.splitext(a.out)[0]
    from live import SECTIONS  # the live connections' and churn's sections stay
    kept = [k for k in (section_of(a.out, *SECTIONS[m]) for m in SECTIONS) if k]
    with open(a.out, "w") as f:
        f.write("\n".join(L + [x for k in kept for x in (k, "")]))
    summary = os.path.join(os.path.dirname(a.out), "benchmark.md")
    if os.path.exists(summary):
        with open(summary) as f:
            text = f.read()
        section = [BEGIN, "## Node scale", "", f"From `./bazelw run //tools/bench -- --mode scale` ({L[2].split(': ', 1)[0].split(' on ', 1)[1]}; "
                   f"machine {', '.join(format(r['load'], '.0%') for r in rows)} busy while it ran): CNI ADD and DEL from the exec of "
                   f"meshwire-cni to its exit, the loader's costs, by pods meshed and tc attach mode. Where the time goes, the pinned "
                   f"maps and the plot: [benchmark-scale.md]({os.path.basename(a.out)}).", "", *main_table(rows), "", END]
        with open(summary, "w") as f:
            f.write(with_section(text, "\n".join(section)))
    with open(base + ".json", "w") as f:
        json.dump({"tc_attach": a.tc_attach, "sizes": a.sizes, "samples": a.samples, "rows": rows, "cleanups": s.cleanups}, f, indent=1)
    with open(base + ".svg", "w") as f:
        f.write(plot(rows))
    log(f"wrote {a.out}, {base}.json, {base}.svg")


BEGIN, END = "<!-- node scale: written by --mode scale -->", "<!-- /node scale -->"


def with_section(text, section, begin=BEGIN, end=END):
    """text (docs/benchmark.md) with its section between `begin` and `end`
    (the node-scale one by default) replaced by (or ending with) `section`."""
    head, found, rest = text.partition(begin)
    tail = rest.partition(end)[2] if found else ""
    return head.rstrip("\n") + "\n\n" + section + ("\n" + tail.lstrip("\n") if tail.strip() else "\n")


def section_of(path, begin=BEGIN, end=END):
    """The section between `begin` and `end` (the node-scale one by default)
    of an existing report ("" without), for another mode's report to keep."""
    try:
        text = open(path).read()
    except OSError:
        return ""
    _, found, rest = text.partition(begin)
    return begin + rest.partition(end)[0] + end if found and end in rest else ""


def main_table(rows):
    L = ["| tc attach | pods meshed | ADD p50 / p95 / p99 (ms) | DEL of a random meshed pod: p50 / p95 / p99 (ms) "
         "| DEL of the pod just added: p50 / p95 / p99 (ms) | VERSION, no loader: p50 / p99 (ms) "
         "| loader RSS (MiB) | pinned maps (MiB) | `pods` (ms) | `status` (ms) | adoption after kill -9 (ms) | loader CPU to ready (ms) "
         "| RSS after adoption (MiB) |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        v = r.get("versions")
        L.append(f"| {r['tc']} | {r['pods']:,} | {' / '.join(fmt(pct(r['adds'], p)) for p in (50, 95, 99))} | "
                 f"{' / '.join(fmt(pct(r['dels'], p)) for p in (50, 95, 99))} | "
                 f"{' / '.join(fmt(pct(r['dels_newest'], p)) for p in (50, 95, 99)) if r.get('dels_newest') else '-'} | "
                 f"{' / '.join(fmt(pct(v, p)) for p in (50, 99)) if v else '-'} | {fmt(r['rss_kib'] / 1024)} | {fmt(r['maps_bytes'] / 2**20)} | "
                 f"{fmt(statistics.median(r['pods_ms']))} | {fmt(statistics.median(r['status_ms']))} | "
                 f"{fmt(r['adopt_s'] * 1e3)} | {fmt(r['adopt_cpu_ms'])} | {fmt(r['adopt_rss_kib'] / 1024)} |")
    return L


def plot(rows):
    """ADD/DEL p50 and p99 against pods meshed (log scale), with the targets."""
    colors = {("tcx", "ADD"): "#d62728", ("tcx", "DEL"): "#ff9896", ("clsact", "ADD"): "#1f77b4", ("clsact", "DEL"): "#9ecae1"}
    series = []
    for tc in dict.fromkeys(r["tc"] for r in rows):
        rs = [r for r in rows if r["tc"] == tc]
        for what, key in (("ADD", "adds"), ("DEL", "dels")):
            for p, dash in ((99, "6 3"), (50, "")):
                series.append((f"{tc} {what}{' random' if what == 'DEL' else ''} p{p}", colors.get((tc, what), "#555"),
                               [(r["pods"], pct(r[key], p)) for r in rs], dash))
        series.append((f"{tc} DEL newest p50", colors.get((tc, "DEL"), "#555"), [(r["pods"], pct(r["dels_newest"], 50)) for r in rs], "2 2"))
    return svgplot.lines("CNI ADD and DEL, exec of meshwire-cni to exit (ms), by pods meshed",
                         "targets: ADD p99 10 ms, DEL p99 5 ms (dotted lines); DEL random: a random meshed pod, newest: the pod just added", series, "pods meshed (log scale)", "ms",
                         hlines=[(10, "ADD p99 target"), (5, "DEL p99 target")])
