"""Which step of a clsact attach grows with the pods on the machine?

    python3 tools/bench/clsact_repro.py --sizes 0,1000,4000 --samples 100 [--bare | --host-shared-block] [--settle 30] [--qdisc ingress]

Root. Makes pod namespaces with --mode scale's maker (scale.VethPods: a
veth eth0 in each, its peer in a node namespace, both up); the background
pods get what meshwire's clsact attach leaves (a clsact qdisc with a
direct-action bpf filter on each side at priority 0x4d57, handle 0x4d57),
or nothing with --bare (namespaces and veths only). Then, at each size, in
fresh probe pods, times each step meshwire's ADD does in the pod's
namespace, with raw rtnetlink and bpf(2) (no libbpf, no loader): qdisc
dump, clsact create, filter dump, filter add, filter get, prog by id; and
the qdisc's delete (DEL), also of the oldest background pods' qdiscs (put
back right after). Medians in microseconds. docs/benchmarking.md (Node
scale) says what it found: the clsact create walks a list of every tc block
bound on the machine (net/core/flow_offload.c).
With --host-shared-block it also times the alternative at each size, with
the same pods: the background pods' qdiscs moved from their namespaces to
their host-side veths in the node namespace (v<i>), all bound to one shared
block pair (`tc qdisc add dev v<i> ingress_block 19799 egress_block 19800
clsact`) that holds the two bpf filters once (`tc filter add block ...`),
and in the probe pods the same qdisc create on their host-side veth (and
the filters' add on the blocks, only when no other veth holds them: at 0
background pods) and its delete, also of the oldest background pods'
(put back right after); then the background is put back as before for the
next size. A second table.
With --qdisc ingress every qdisc made here (background and probes) is an
`ingress` qdisc (sch_ingress: one block, so one bpf filter, on the ingress
side) instead of clsact (two blocks, two filters): what a pod's attach
would cost with no tc egress program. Same steps, same table.
Everything made here carries the prefix mwrp<PID>- and is removed on exit;
the kernel tears the namespaces down for a while after (wait before the next
run: that work holds RTNL).
"""

import argparse
import ctypes
import os
import socket
import statistics
import struct
import subprocess
import sys
import time

from scale import F_ACK, F_CREATE, F_DUMP, F_EXCL, F_REQUEST, Rtnl, VethPods, in_netns, libc, nla

libc.syscall.restype = ctypes.c_long
NR_BPF = 321  # x86_64
P = f"mwrp{os.getpid()}-"

RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTM_NEWTFILTER, RTM_GETTFILTER = 44, 46
TCA_INGRESS_BLOCK, TCA_EGRESS_BLOCK = 13, 14
BLOCK_IN, BLOCK_EG = 0x4D57, 0x4D58  # the node namespace's shared blocks (--host-shared-block)
ON_BLOCK = -1  # TCM_IFINDEX_MAGIC_BLOCK: tcm_parent is then a block's index
TC_H_CLSACT, INGRESS, EGRESS = 0xFFFFFFF1, 0xFFFFFFF2, 0xFFFFFFF3
PRIO = HANDLE = 0x4D57
# The qdisc each pod gets and the sides its filters go on (--qdisc): clsact
# (ingress and egress blocks) or ingress (one block; its filters' parent
# ffff:fff2 as `tc filter add dev X ingress` gives).
QDISC = {"clsact": (INGRESS, EGRESS), "ingress": (INGRESS,)}
KIND, SIDES = "clsact", QDISC["clsact"]


class NL(Rtnl):
    def req(self, mtype, flags, ifindex, handle, parent, info, attrs=b""):
        """A tc request: struct tcmsg and attrs."""
        return self.request(mtype, flags, struct.pack("BxxxiIII", 0, ifindex, handle, parent, info) + attrs)

    def qdisc_dump(self, ifindex):
        return self.req(RTM_GETQDISC, F_REQUEST | F_DUMP, ifindex, 0, 0, 0)

    def clsact_add(self, ifindex):
        """The pod's qdisc, KIND (clsact, or ingress with --qdisc ingress:
        both at ffff: under TC_H_CLSACT == TC_H_INGRESS)."""
        self.req(RTM_NEWQDISC, F_REQUEST | F_ACK | F_CREATE | F_EXCL, ifindex, 0xFFFF0000, TC_H_CLSACT, 0,
                 nla(1, KIND.encode() + b"\0"))

    def clsact_add_shared(self, ifindex):
        """A clsact qdisc whose ingress and egress are the shared blocks
        BLOCK_IN and BLOCK_EG (`tc qdisc add dev X ingress_block .. egress_block .. clsact`)."""
        self.req(RTM_NEWQDISC, F_REQUEST | F_ACK | F_CREATE | F_EXCL, ifindex, 0xFFFF0000, TC_H_CLSACT, 0,
                 nla(1, b"clsact\0") + nla(TCA_INGRESS_BLOCK, struct.pack("I", BLOCK_IN))
                 + nla(TCA_EGRESS_BLOCK, struct.pack("I", BLOCK_EG)))

    def clsact_del(self, ifindex):
        self.req(RTM_DELQDISC, F_REQUEST | F_ACK, ifindex, 0xFFFF0000, TC_H_CLSACT, 0)

    def filter_dump(self, ifindex, parent):
        return self.req(RTM_GETTFILTER, F_REQUEST | F_DUMP, ifindex, 0, parent, 0)

    def filter_add(self, ifindex, parent, fd):
        opts = nla(6, struct.pack("I", fd)) + nla(7, b"mw_repro\0") + nla(8, struct.pack("I", 1))
        self.req(RTM_NEWTFILTER, F_REQUEST | F_ACK | F_CREATE | F_EXCL, ifindex, HANDLE, parent,
                 (PRIO << 16) | socket.htons(3), nla(1, b"bpf\0") + nla(2 | 0x8000, opts))

    def filter_get(self, ifindex, parent):
        """The bpf program id of meshwire's place (TCA_OPTIONS / TCA_BPF_ID)."""
        msgs = self.req(RTM_GETTFILTER, F_REQUEST, ifindex, HANDLE, parent, (PRIO << 16) | socket.htons(3))
        for m in msgs:
            at = 16 + 20
            while at + 4 <= len(m):
                ln, t = struct.unpack_from("HH", m, at)
                if t & 0x7FFF == 2:
                    sub = at + 4
                    while sub + 4 <= at + ln:
                        sl, st = struct.unpack_from("HH", m, sub)
                        if st == 11:
                            return struct.unpack_from("I", m, sub + 4)[0]
                        sub += (sl + 3) & ~3
                at += (ln + 3) & ~3
        return None


def bpf(cmd, attr):
    r = libc.syscall(NR_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
    return r


def load_prog():
    insns = struct.pack("<BBhi", 0xB7, 0, 0, -1) + struct.pack("<BBhi", 0x95, 0, 0, 0)  # r0 = TC_ACT_UNSPEC; exit
    ibuf = ctypes.create_string_buffer(insns)
    lic = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("IIQQ", attr, 0, 3, 2, ctypes.addressof(ibuf), ctypes.addressof(lic))  # BPF_PROG_TYPE_SCHED_CLS
    attr[48:56] = b"mw_repro"
    return bpf(5, attr)


def prog_name_by_id(pid):
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("I", attr, 0, pid)
    fd = bpf(13, attr)  # BPF_PROG_GET_FD_BY_ID
    try:
        info = ctypes.create_string_buffer(256)
        attr = ctypes.create_string_buffer(128)
        struct.pack_into("IIQ", attr, 0, fd, 256, ctypes.addressof(info))
        bpf(15, attr)  # BPF_OBJ_GET_INFO_BY_FD
        return info.raw[64:80].split(b"\0")[0].decode()
    finally:
        os.close(fd)


def run(cmd, inp=None):
    subprocess.run(cmd, input=inp, text=True, check=True, capture_output=True)


class Pods(VethPods):
    """--mode scale's pods (scale.VethPods), under this run's prefix."""

    def __init__(self):
        run(["ip", "netns", "add", P + "node"])
        super().__init__(run, P + "node", lambda i: f"{P}p{i}")
        self.index = {}

    def veth(self, m):
        """Pod namespace m's host-side veth in the node namespace (v<i>)."""
        if m not in self.index:
            self.index = {n: i for i, n in enumerate(self.names)}
        return f"v{self.index[m]}"

    def cleanup(self):
        # Newest first, the order in which unbinding each clsact qdisc's
        # blocks finds them nearest the list's head (the kernel tears
        # namespaces down in batches of its own: a hint, not a guarantee).
        subprocess.run(["ip", "-force", "-b", "-"], input="".join(f"netns del {m}\n" for m in self.names[::-1] + [P + "node"]),
                       text=True, capture_output=True)


STEPS = ("qdisc dump", "clsact create", "filter dump x2", "filter add x2", "filter get + prog by id x2", "clsact delete (DEL)")
OLD = "clsact delete, oldest pods (DEL)"


def attach(nl, ifindex, fd, times=None):
    t = [time.perf_counter()]
    nl.qdisc_dump(ifindex); t.append(time.perf_counter())
    nl.clsact_add(ifindex); t.append(time.perf_counter())
    for p in SIDES:
        nl.filter_dump(ifindex, p)
    t.append(time.perf_counter())
    for p in SIDES:
        nl.filter_add(ifindex, p, fd)
    t.append(time.perf_counter())
    for p in SIDES:
        assert prog_name_by_id(nl.filter_get(ifindex, p)) == "mw_repro"
    t.append(time.perf_counter())
    if times is not None:
        for name, a, b in zip(STEPS, t, t[1:]):
            times.setdefault(name, []).append((b - a) * 1e6)


HSTEPS = ("host clsact create (shared blocks)", "filter add x2 on the blocks (new blocks only)", "host clsact delete (DEL)")
HOLD = "host clsact delete, oldest pods (DEL)"


def host_attach(nl, ifindex, fd, times=None):
    """The probe's (or a background pod's) host-side veth onto the shared
    blocks; their filters added only when this made the blocks (no other
    veth holds them), and then checked."""
    t0 = time.perf_counter()
    nl.clsact_add_shared(ifindex)
    t1 = time.perf_counter()
    if not nl.filter_dump(ON_BLOCK, BLOCK_IN):
        t2 = time.perf_counter()
        for b in (BLOCK_IN, BLOCK_EG):
            nl.filter_add(ON_BLOCK, b, fd)
        if times is not None:
            times.setdefault(HSTEPS[1], []).append((time.perf_counter() - t2) * 1e6)
    if times is not None:
        times.setdefault(HSTEPS[0], []).append((t1 - t0) * 1e6)


def check_blocks(nl, ifindex):
    """The shared blocks hold meshwire's two filters, and the qdisc on
    `ifindex` is bound to them (its TCA_INGRESS_BLOCK / TCA_EGRESS_BLOCK)."""
    for b in (BLOCK_IN, BLOCK_EG):
        assert prog_name_by_id(nl.filter_get(ON_BLOCK, b)) == "mw_repro", f"block {b} has no mw_repro filter"
    blocks = {}
    for m in nl.qdisc_dump(ifindex):
        if struct.unpack_from("iI", m, 16 + 4) != (ifindex, 0xFFFF0000):
            continue
        at = 16 + 20
        while at + 4 <= len(m):
            ln, t = struct.unpack_from("HH", m, at)
            if t in (TCA_INGRESS_BLOCK, TCA_EGRESS_BLOCK):
                blocks[t] = struct.unpack_from("I", m, at + 4)[0]
            at += (ln + 3) & ~3
    assert blocks == {TCA_INGRESS_BLOCK: BLOCK_IN, TCA_EGRESS_BLOCK: BLOCK_EG}, f"ifindex {ifindex}: blocks {blocks}"


def pod_qdiscs(pods, fd, off):
    """Every background pod's qdisc and filters in its namespace (meshwire
    today) in `pods`' order, or (off) gone, newest first."""
    for m in pods[::-1] if off else pods:
        with in_netns(m):
            nl = NL()
            ifi = socket.if_nametoindex("eth0")
            nl.clsact_del(ifi) if off else attach(nl, ifi, fd)
            nl.close()


def host_qdiscs(veths, fd, off):
    """Every background pod's host-side veth onto the shared blocks, in
    `veths`' order, or (off) off them, newest first."""
    with in_netns(P + "node"):
        nl = NL()
        for v in veths[::-1] if off else veths:
            ifi = socket.if_nametoindex(v)
            nl.clsact_del(ifi) if off else host_attach(nl, ifi, fd)
        nl.close()


def host_probe(pods, oldest, probes, fd, times, settle):
    """--host-shared-block at one size: the background's qdiscs moved to the
    host-side veths on the shared blocks; the probes' host-side veths timed
    onto them and off again, and the oldest background pods' off and on."""
    veths = [pods.veth(m) for m in oldest]
    pod_qdiscs(oldest, fd, off=True)
    host_qdiscs(veths, fd, off=False)
    time.sleep(settle)  # as after making pods: the 2N qdiscs and filters just deleted leave the kernel work
    with in_netns(P + "node"):
        nl = NL()
        if veths:
            check_blocks(nl, socket.if_nametoindex(veths[0]))
        for v in veths[:20]:
            ifi = socket.if_nametoindex(v)
            t0 = time.perf_counter()
            nl.clsact_del(ifi)
            times.setdefault(HOLD, []).append((time.perf_counter() - t0) * 1e6)
            host_attach(nl, ifi, fd)
        for i, m in enumerate(probes):
            ifi = socket.if_nametoindex(pods.veth(m))
            host_attach(nl, ifi, fd, times)
            if i == 0:
                check_blocks(nl, ifi)
            t0 = time.perf_counter()
            nl.clsact_del(ifi)
            times.setdefault(HSTEPS[-1], []).append((time.perf_counter() - t0) * 1e6)
        nl.close()
    return veths


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="0,1000,4000")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--bare", action="store_true", help="background pods without a clsact qdisc")
    ap.add_argument("--host-shared-block", action="store_true",
                    help="also time, at each size, the qdisc on the pod's host-side veth in the node namespace, "
                         "every host-side veth on one shared ingress and egress block (a second table)")
    ap.add_argument("--qdisc", choices=sorted(QDISC), default="clsact",
                    help="the qdisc every pod gets: clsact (two blocks, a filter on each) or ingress (one block, one filter)")
    ap.add_argument("--settle", type=float, default=0, metavar="SECONDS",
                    help="wait this long after making each size's pods (and after moving the qdiscs) before timing: RTNL is busy with other work "
                         "for a while after thousands of interfaces come up or filters go (default 0: time at once)")
    a = ap.parse_args()
    if a.bare and a.host_shared_block:
        ap.error("--host-shared-block moves the background pods' qdiscs to their host-side veths; "
                 "--bare background pods have none: use one of the two")
    if a.host_shared_block and a.qdisc != "clsact":
        ap.error("--host-shared-block times clsact qdiscs on shared block pairs; drop --qdisc ingress or --host-shared-block")
    global KIND, SIDES
    KIND, SIDES = a.qdisc, QDISC[a.qdisc]
    sizes = [int(x) for x in a.sizes.split(",")]
    fd = load_prog()
    pods = Pods()
    try:
        probes = pods.make(a.samples)
        bg = 0
        rows, hrows = [], []
        oldest = []  # background pods with a qdisc, the longest there first
        for size in sizes:
            for m in pods.make(size - bg) if size > bg else []:
                if not a.bare:
                    with in_netns(m):
                        nl = NL()
                        attach(nl, socket.if_nametoindex("eth0"), fd)
                        nl.close()
                    oldest.append(m)
            bg = max(bg, size)
            time.sleep(a.settle)
            times = {}
            # The qdisc of the oldest background pods: a DEL of a pod meshed
            # long ago (put back at once, so the count holds).
            for _ in range(min(20, len(oldest))):
                m = oldest.pop(0)
                with in_netns(m):
                    nl = NL()
                    ifi = socket.if_nametoindex("eth0")
                    t0 = time.perf_counter()
                    nl.clsact_del(ifi)
                    times.setdefault(OLD, []).append((time.perf_counter() - t0) * 1e6)
                    attach(nl, ifi, fd)
                    nl.close()
                oldest.append(m)
            for m in probes:
                with in_netns(m):
                    nl = NL()
                    ifi = socket.if_nametoindex("eth0")
                    attach(nl, ifi, fd, times)
                    t0 = time.perf_counter()
                    nl.clsact_del(ifi)
                    times.setdefault(STEPS[-1], []).append((time.perf_counter() - t0) * 1e6)
                    nl.close()
            rows.append((size, {k: statistics.median(v) for k, v in times.items()}))
            if a.host_shared_block:
                htimes = {}
                veths = host_probe(pods, oldest, probes, fd, htimes, a.settle)
                hrows.append((size, {k: statistics.median(v) for k, v in htimes.items()}))
                if size != sizes[-1]:  # the next size starts from today's placement again
                    host_qdiscs(veths, fd, off=True)
                    pod_qdiscs(oldest, fd, off=False)
            print(f"{size} background pods done", file=sys.stderr, flush=True)
        n = len(SIDES)
        print(f"median us per step, {a.samples} probe pods; qdisc {KIND}, {n} bpf filter(s); "
              f"background pods {'bare (netns + veth)' if a.bare else f'with {KIND} + {n} bpf filter(s)'}; "
              + (f"{a.settle:g} s settle after making them; " if a.settle else "") + f"load {open('/proc/loadavg').read().split()[:3]}")
        print("| step | " + " | ".join(f"{s:,} pods" for s, _ in rows) + " |")
        print("|---|" + "---|" * len(rows))
        for st in STEPS + (OLD,):
            label = st.replace("x2", f"x{n}").replace("clsact", KIND)  # the step as done with --qdisc
            print(f"| {label} | " + " | ".join(f"{r[st]:.0f}" if st in r else "-" for _, r in rows) + " |")
        if hrows:
            print(f"\n--host-shared-block: the background pods' qdiscs on their host-side veths in the node namespace, "
                  f"all on shared blocks {BLOCK_IN} (ingress) / {BLOCK_EG} (egress) with the 2 bpf filters; median us per step, "
                  f"{a.samples} probe pods' host-side veths")
            print("| step | " + " | ".join(f"{s:,} pods" for s, _ in hrows) + " |")
            print("|---|" + "---|" * len(hrows))
            for st in HSTEPS + (HOLD,):
                print(f"| {st} | " + " | ".join(f"{r[st]:.0f}" if st in r else "-" for _, r in hrows) + " |")
    finally:
        pods.cleanup()


if __name__ == "__main__":
    main()
