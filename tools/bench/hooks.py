"""Each per-packet and per-message BPF program's own cost (issue 15, item 3),
beside the cost of the helpers it calls measured alone, for two builds of
the datapath side by side in one run (or the working tree's alone).

    ./bazelw run //tools/bench -- --mode hooks --baseline REV   -> docs/benchmark-hooks.md, .json

Not a test: it measures. The datapath's C sources are compiled with
tools/bpf_cc.sh (the compiler and flags the build uses) twice: from the
working tree ("new") and from git revision REV ("old"); without --baseline,
the working tree's alone (what //test:bench_smoke_e2e runs: under `bazel
test` there is no checkout to take a revision from). The working tree is
BUILD_WORKSPACE_DIRECTORY under `bazel run`, else the current directory
(a test's runfiles, which //tools/bench's data fills with bpf/'s sources and
tools/bpf_cc.sh); tools/bench/hooks_floor.c holds the floor programs.
Everything runs in a mount and network namespace of this process's own, each
build with a fresh bpffs of its own (maps pinned by name stay apart), so
nothing is attached to the machine; its cgroups and work dir carry the
bench's prefix mwb<PID>- and the clean-up says whether anything is left.

- tc (mw_tc_ingress, mw_tc_egress) through BPF_PROG_TEST_RUN on fixture
  frames (IPv4 and IPv6, the pod meshed, one established redirected flow):
  a packet of that flow each way, a SYN to the pod, a reply to one of the
  pod's own outbound connections (no flow: what most of a pod's ingress
  is), the pod's own outbound packet on egress, UDP. One run per call
  (repeat 1, a fresh frame each time, as each packet is: the rewrite is not
  idempotent), CALLS calls per frame and round.
- tc on real packets (--no-veth leaves it out): a veth from this run's
  network namespace (the pod: mwh0, POD) to a child process's (the peer),
  each build's two programs attached to mwh0 with tcx in turn; the peer
  opens a connection to POD:APP_PORT, which tc steers to a listener on the
  inbound port (each connection is counted where it was accepted: one the
  datapath did not steer there fails the run), and makes 64-byte round
  trips on it (its handshake and close included). The floor's pass-through
  programs (empty, a flow lookup, the rewrite helpers writing back what is
  there) on the same traffic, to a
  listener on APP_PORT itself (each connection from a peer port of its own,
  its flow put into the floor's flow map first, so that the floor's lookup
  finds an entry as the datapath's does). The same with 64 KiB writes each
  way, which TCP sends over the veth as GSO packets (what iperf3 makes), on
  connections of two lengths (LONG times as many round trips): their
  difference splits a program's cost into each packet's and each
  connection's (set-up, close, first packets on cold caches). And short
  connections (connect, one 64-byte round trip, FIN close; from the peer's
  ephemeral ports), what a whole connection costs each program.
- inbound without a rewrite (FLOOR_ASSIGN, a design meshwire does not use):
  floor_tc_sk_assign gives a SYN to APP_PORT to the listener on INBOUND with
  bpf_sk_assign at tc ingress, passes everything else, and has no egress
  program; floor_tc_sk_assign_every looks every packet to APP_PORT up by its
  own 4-tuple as well. On the fixture frames (a flow packet, a SYN: a test
  run's skb is not at tc ingress, so there the assign is refused; the report
  says what it answered) and on the veth rows and short connections above,
  with no egress program. Before the app's listener on APP_PORT is made, a
  proof: the peer's connect() there is refused without the program and
  accepted by the listener on INBOUND with it, its getsockname() APP_PORT;
  every connection of those rows is checked the same way (the listeners
  count their accepts by local port), the app's listener accepting none.
- sk_msg (mw_skmsg_redirect) over real messages: a TCP pair on 127.0.0.1,
  both sockets in mw_sock_hash with their mw_accel_state entries, as sockops
  puts them there; each send() runs the program and is redirected to the
  peer (proved for every sk_msg row, the floor's too: the sending sockets'
  tcpi_bytes_sent, TCP_INFO, stays flat around its messages, and
  floor_skmsg_empty's, which redirects nothing, all go through TCP;
  redirected()); 64-byte, 16 KiB (HAProxy's writes) and 64 KiB messages; and, with
  the connect4 rows below, the first message each way of a new meshed
  connection whose ends sockops put into the maps (state and psock entries
  too). The floor's sk_msg programs also on the first message each way of
  a new pair made from user space (no psock entries: the datapath's
  program would look one up in a bucket nothing touched, which no real
  connection does), made, used once and closed per run. sk_msg programs
  cannot be test-run.
- caches cold: a tc flow packet (test run), a 64-byte sk_msg message and a
  connect4 connect() again, with 4 MiB of this process's memory written
  over before each run, which evicts what the program and its helpers touch
  from the CPU's caches, as the rest of a node's work does between two runs
  of a program in the full benchmark (a tight loop keeps it all cached).
- connect4 (mw_sock4_connect) and sockops (mw_sockops) over real
  connections (--no-connect leaves them out): each build's programs
  attached to a cgroup of this run's own under the cgroup2 mount (never the
  root), this process's netns registered as a meshed pod in mw_pods; the
  process enters the cgroup, connects to 10.9.9.9:80 (an address that
  exists nowhere), which connect4 steers to a listener on 127.0.0.1:15001
  made in that cgroup (an accepted socket is in its listener's cgroup:
  only so does sockops run on both ends), accepts, resets both ends (SO_LINGER 0), and goes back to its cgroup.
  sockops runs on both ends' callbacks. Cannot be test-run either. Twice:
  as by default, and with acceleration on (mw_cfg.accel set in the
  objects' .rodata as the loader writes it, the pod's MW_POD_F_ACCEL).
  With acceleration on also: connections to a destination of their own
  that carry a message each way and close with FINs (the same with
  acceleration off beside them), so that sockops
  learns them short (short_connections = "learn", the default) and leaves
  them out but for a probe per 200 ms (mw_stats' accel_sock_added and
  accel_skipped_short read around each run say how many went in); and
  sk_msg on the steady messages of one connection sockops accelerated
  (its psock recorded, so every message reads the peer's backlog).
- the floor: tools/bench/hooks_floor.c, run the same way on the same frames,
  the same socket pair and the same connections: an empty program, the two
  bpf_skb_load_bytes of the headers, one LRU-hash lookup (and the same in a
  plain hash map), the port rewrite
  (bpf_skb_store_bytes + bpf_l4_csum_replace), bpf_msg_redirect_hash alone,
  with a state lookup, with the spin lock; for connect4 the socket storage
  created (bpf_sk_storage_get) and the source bound (bpf_bind) alone; for
  sockops each end put into a sockhash (bpf_sock_hash_update) alone; the
  original destination's store (ORIGIN_STORES), each part: connect4
  putting it in socket storage or, as the reference implementations keep
  it, in a hash map keyed by the socket's cookie (LRU, and plain
  preallocated; the LRU again on a map filled first, where each insert
  evicts), and sockops reading it at established and doing at the
  close what that store needs (a cookie map's entry deleted; storage's free
  counted once by deleting it there), and the plain hash's entry deleted at
  each socket's release instead (cgroup/sock_release); and
  each path's helpers together, what the program cannot do without and
  nothing else: sk_msg's two state lookups, the backlog read and the
  redirect (floor_skmsg_path), sockops' publish and hand-over
  (floor_sockops_plain_path: socket storage read and created, an LRU insert,
  lookup and delete) and with acceleration's on top (floor_sockops_accel_path:
  the pod, the hint or the peer's state looked up, each end into the
  sockhash, which has an empty sk_msg program attached as the datapath's
  has its own, and its state entry inserted, deleted at its close).

Each figure is bpf_stats' run_time_ns / run_cnt (the same measure as the
benchmark's "BPF programs' own cost" table; stats are switched on with
BPF_ENABLE_STATS for this process only, kernel.bpf_stats_enabled is not
touched), median over rounds; the builds alternate within each round, every
other round in the reverse order. The
empty program's figure is the measure's own overhead (two clock reads).
The process is pinned to one CPU; how busy the machine was meanwhile is
reported (its 2 CPUs are shared).
"""

import ctypes
import json
import os
import socket
import statistics
import struct
import subprocess
import tempfile
import threading
import time

from bench import Fatal, cgroup2_mount, log, machine_busy

libc = ctypes.CDLL(None, use_errno=True)
SYS_BPF = 321
BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_OBJ_GET, BPF_PROG_ATTACH, BPF_PROG_DETACH = 2, 3, 7, 8, 9
BPF_PROG_TEST_RUN, BPF_ENABLE_STATS = 10, 32
BPF_TCX_INGRESS, BPF_TCX_EGRESS = 46, 47
CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
SO_NETNS_COOKIE = 71

POD, POD6 = "10.0.0.2", "fd00::2"
REMOTE, REMOTE6 = "10.1.0.9", "fd00:1::9"
APP_PORT, INBOUND, RPORT = 8080, 15003, 40000
COOKIE = 77

# The programs measured: (object source, program, kind)
DATAPATH = [("bpf_tc.c", "mw_tc_ingress", "tc"), ("bpf_tc.c", "mw_tc_egress", "tc"),
            ("bpf_skmsg.c", "mw_skmsg_redirect", "sk_msg")]
FLOOR_TC = ["floor_tc_empty", "floor_tc_load_bytes", "floor_tc_flow_lookup", "floor_tc_flow_lookup_hash",
            "floor_tc_rewrite", "floor_tc_rewrite_same"]
FLOOR_TC_REAL = ["floor_tc_empty", "floor_tc_flow_lookup", "floor_tc_flow_lookup_hash",
                 "floor_tc_rewrite_same"]  # they steer nothing
FLOOR_SKMSG = ["floor_skmsg_empty", "floor_skmsg_redirect", "floor_skmsg_lookup_redirect",
               "floor_skmsg_lock_redirect", "floor_skmsg_path"]
FLOOR_CONNECT = ["floor_connect4_empty", "floor_connect4_storage", "floor_connect4_bind",
                 "floor_connect4_cookie_lru", "floor_connect4_cookie_hash"]
# Where the original destination is kept, each store's parts: (store, the connect4 floor that
# stores it, the sockops floor that reads it at established and does what the store needs at the
# close, the sock_release floor that deletes it instead or None). Socket storage twice: as the
# datapath leaves it (the kernel frees it with the socket, outside any program) and with that free
# made visible (deleted at the close).
ORIGIN_STORES = [("socket storage", "floor_connect4_storage", "floor_sockops_orig_storage", None),
                 ("socket storage, its free counted", "floor_connect4_storage", "floor_sockops_orig_storage_free", None),
                 ("LRU hash by cookie, deleted at the close", "floor_connect4_cookie_lru",
                  "floor_sockops_orig_cookie_lru", None),
                 ("plain hash by cookie, deleted at the close", "floor_connect4_cookie_hash",
                  "floor_sockops_orig_cookie_hash", None),
                 ("plain hash by cookie, deleted at each socket's release", "floor_connect4_cookie_hash",
                  "floor_sockops_orig_cookie_hash_read", "floor_release_cookie_hash")]
FLOOR_SOCKOPS = ["floor_sockops_empty", "floor_sockops_sockhash", "floor_sockops_plain_path",
                 "floor_sockops_accel_path"] + [s for _, _, s, _ in ORIGIN_STORES]
FLOOR_RELEASE = ["floor_release_empty"] + [r for _, _, _, r in ORIGIN_STORES if r]
# the connect4 floor each sockops and sock_release floor runs behind (else floor_connect4_empty):
# floor_connect4_storage leaves the original destination on the socket as connect4 does
FLOOR_STEER = {"floor_sockops_plain_path": "floor_connect4_storage", "floor_sockops_accel_path": "floor_connect4_storage",
               **{s: c for _, c, s, _ in ORIGIN_STORES}, **{r: c for _, c, _, r in ORIGIN_STORES if r}}


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(bytes(attr), len(attr))
    r = libc.syscall(SYS_BPF, cmd, buf, len(attr))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
    return r, buf


def map_delete(fd, key):
    k = ctypes.create_string_buffer(key, len(key))
    bpf(BPF_MAP_DELETE_ELEM, struct.pack("IIQ", fd, 0, ctypes.addressof(k)))


def obj_get(path):
    p = ctypes.create_string_buffer(path.encode())
    fd, _ = bpf(BPF_OBJ_GET, struct.pack("QIIi", ctypes.addressof(p), 0, 0, 0))
    return fd


def ncpus_possible():
    n = 0
    for part in open("/sys/devices/system/cpu/possible").read().strip().split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def stat_sum(fd, index):
    """mw_stats[index] (a per-CPU array of u64) summed over the CPUs."""
    n = ncpus_possible()
    k = ctypes.create_string_buffer(struct.pack("I", index), 4)
    v = ctypes.create_string_buffer(8 * n)
    bpf(1, struct.pack("IIQQQ", fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0))  # BPF_MAP_LOOKUP_ELEM
    return sum(struct.unpack(f"{n}Q", v.raw))


def tcp_bytes_sent(*socks):
    """The data bytes socks sent through TCP, all of them together (TCP_INFO's tcpi_bytes_sent)."""
    n = 0
    for sk in socks:
        info = sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCPI_BYTES_SENT + 8)
        if len(info) < TCPI_BYTES_SENT + 8:
            raise Fatal(f"TCP_INFO gave {len(info)} bytes, no tcpi_bytes_sent (Linux 4.19 or later has it): "
                        "the sk_msg rows cannot prove their messages were redirected")
        n += struct.unpack_from("Q", info, TCPI_BYTES_SENT)[0]
    return n


def map_update(fd, key, value):
    k, v = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value, len(value))
    bpf(BPF_MAP_UPDATE_ELEM, struct.pack("IIQQQ", fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0))


def set_accel(obj):
    """The object's mw_cfg.accel (struct mw_settings, offset 9) set to 1 in its .rodata, as the
    loader writes it before load with [acceleration] on; bpftool loads .rodata as it is."""
    data = bytearray(open(obj, "rb").read())
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)
    secs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]

    def name(off, strsec):
        at = strsec[4] + off
        return data[at:data.index(b"\0", at)].decode()
    symtab = next(x for x in secs if name(x[0], secs[shstrndx]) == ".symtab")
    for j in range(symtab[5] // 24):
        st_name, _, _, st_shndx, st_value, _ = struct.unpack_from("<IBBHQQ", data, symtab[4] + j * 24)
        if name(st_name, secs[symtab[6]]) == "mw_cfg":
            data[secs[st_shndx][4] + st_value + 9] = 1
            out = obj[:-6] + "-accel.bpf.o"
            open(out, "wb").write(data)
            return out
    raise Fatal(f"{obj}: no mw_cfg")


class TestRun:
    """BPF_PROG_TEST_RUN of one frame, repeat 1, as fast as Python allows."""

    def __init__(self, prog_fd, frame):
        self.din = ctypes.create_string_buffer(frame, len(frame))
        self.dout = ctypes.create_string_buffer(len(frame) + 256)
        self.attr = ctypes.create_string_buffer(80)
        struct.pack_into("IIIIQQII", self.attr, 0, prog_fd, 0, len(frame), len(self.dout),
                         ctypes.addressof(self.din), ctypes.addressof(self.dout), 1, 0)
        self.syscall = libc.syscall

    def run(self, n):
        attr, sc = self.attr, self.syscall
        for _ in range(n):
            if sc(SYS_BPF, BPF_PROG_TEST_RUN, attr, 80) < 0:
                e = ctypes.get_errno()
                raise Fatal(f"BPF_PROG_TEST_RUN: {os.strerror(e)}")
        return struct.unpack_from("I", attr, 4)[0]  # retval


# ---- frames ----

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff


def frame(src, sport, dst, dport, flags, payload=b"", proto=6):
    """An Ethernet frame with a correct IPv4/IPv6 and TCP (or UDP) header."""
    six = ":" in src
    if proto == 6:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 0x10000000, 0x20000000 if flags & 0x10 else 0,
                         5 << 4, flags, 65535, 0, 0) + payload
        coff = 16
    else:
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        coff = 6
    if six:
        s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
        pseudo = s + d + struct.pack("!IxxxB", len(l4), proto)
        ip = struct.pack("!IHBB", 6 << 28, len(l4), proto, 64) + s + d
        etype = 0x86dd
    else:
        s, d = socket.inet_aton(src), socket.inet_aton(dst)
        pseudo = s + d + struct.pack("!xBH", proto, len(l4))
        ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(l4), 1, 0x4000, 64, proto, 0) + s + d
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        etype = 0x0800
    c = csum(pseudo + l4)
    l4 = l4[:coff] + struct.pack("!H", c) + l4[coff + 2:]
    return b"\x02\0\0\0\0\x01" + b"\x02\0\0\0\0\x02" + struct.pack("!H", etype) + ip + l4


ACK, SYN, PSH = 0x10, 0x02, 0x08
REAL_IN = "real packets in: a connection over a veth, 64-byte round trips"
REAL_OUT = "real packets out: the same connection's"
REAL_BOTH = "real packets, both ways, as above (attached ingress and egress)"
CONNECT, SOCKOPS = "a meshed pod's connect()", "its callbacks (both ends)"
CONNECT_ACCEL = "a meshed pod's connect(), acceleration on"
SOCKOPS_ACCEL = "its callbacks, acceleration on (both ends enter mw_sock_hash)"
# Short connections learned (short_connections = "learn", the default): a message each way, then
# closed with FINs (the accepted end first, so that TIME_WAIT stays on the listener's side); the
# connecting end's FIN reports its hop short, and after four such reports its destination's
# connections stay out of the socket map (accel_skipped_short) but for a probe per 200 ms.
# A destination of its own (DEST_LEARN): the hint it learns leaves the other rows' alone.
SOCKOPS_LEARN = ("its callbacks, acceleration on, short connections learned (a message each way, "
                 "closed with FINs: after four, left out but for a probe per 200 ms)")
# SOCKOPS_LEARN's connections with acceleration off: what learning costs over plain eBPF on them.
SOCKOPS_FIN = "its callbacks, connections as the learned row's below (a message each way, closed with FINs)"
SKMSG_STEADY = "64-byte message of a connection sockops accelerated (its psock recorded, its hop counted)"
DEST, DEST_LEARN, DEST_STEADY = "10.9.9.9", "10.9.9.10", "10.9.9.11"
MW_STAT_ACCEL_SOCK_ADDED, MW_STAT_ACCEL_SKIPPED_SHORT = 15, 26  # enum mw_stat
# sk_msg message sizes -> how many fewer messages than 64-byte ones a round sends (a 64 KiB
# message is one run: tcp_bpf gathers a send of up to MAX_SKB_FRAGS pages into one sk_msg).
SKMSG_SIZES = {64: 1, 16384: 8, 65536: 16}
COLD_BYTES, COLD_DIV = 4 << 20, 16  # written over before each message of the cold row
SKMSG_COLD = "64-byte message, caches cold (4 MiB written before each)"
SKMSG_FRESH = "64-byte message, the first each way of a new pair"
SKMSG_NEWCONN = "the first message each way of a new meshed connection (sockops put its ends in the maps)"
FRESH_DIV = 40  # new pairs per round: 1/40 of the runs of a 64-byte row
# struct tcp_info's tcpi_bytes_sent (linux/tcp.h, since 4.19): the data bytes a socket sent through
# TCP. A message sk_msg redirects never enters the sender's TCP stack, so it stays flat (and the
# peer's tcpi_bytes_received with it: on 6.18 both do, as do tcpi_segs_out and tcpi_bytes_acked).
TCPI_BYTES_SENT = 200


TC_COLD = "flow packet in, caches cold (4 MiB written before each)"
CONNECT_COLD = "a meshed pod's connect(), caches cold (4 MiB written before each)"
CONNECT_FLOOR_COLD = "a connect(), caches cold (4 MiB written before each)"
SOCKOPS_FLOOR = "a connection's callbacks (both ends)"
COOKIE_MAP_ENTRIES = 65536  # hooks_floor.c's cookie maps: MW_MAX_TUPLES, as mw_orig_tuple4
CONNECT_FLOOR_FULL = f"a connect(), the map full ({COOKIE_MAP_ENTRIES:,} entries put in first: each insert evicts one)"
RELEASE_FLOOR = "a connection's sockets released (both ends)"


def cold(fn, div=COLD_DIV):
    """fn run once at a time, a 4 MiB buffer written over before each run (its caches evicted,
    as the rest of a node's work does between two runs of a program in the full benchmark);
    1/div of the runs of a hot row."""
    buf = ctypes.create_string_buffer(COLD_BYTES)

    def run(n):
        for i in range(max(1, n // div)):
            ctypes.memset(ctypes.addressof(buf), i & 0xff, COLD_BYTES)
            fn(1)
    return run


def skmsg_what(size):
    return "64-byte message" if size == 64 else f"{size // 1024} KiB message"


BULK = 65536  # the bulk veth rows' writes: TCP sends them over the veth as GSO packets
REAL_BULK_IN = "real packets in: the same, 64 KiB writes each way (GSO packets)"
REAL_BULK_OUT = "real packets out: the same bulk connection's"
REAL_BULK_BOTH = "real packets, both ways, 64 KiB writes each way (GSO)"
REAL_BULK_IN_ONLY = "real packets in, 64 KiB writes each way (GSO; attached on ingress only)"
# The GSO rows again on connections LONG times longer: the two lengths split a row's cost into
# what each packet costs (the marginal cost) and what each connection costs once (its set-up
# and close, and its first packets after the client's start, on cold caches).
LONG = 8
REAL_BULK_LONG = {REAL_BULK_IN: f"real packets in: the same, connections {LONG} times longer",
                  REAL_BULK_OUT: f"real packets out: the same, connections {LONG} times longer",
                  REAL_BULK_BOTH: f"real packets, both ways, 64 KiB writes, connections {LONG} times longer",
                  REAL_BULK_IN_ONLY: f"real packets in, 64 KiB writes (ingress only), connections {LONG} times longer"}
# Inbound without a rewrite (hooks_floor.c: floor_tc_sk_assign): the peer's connection to POD:APP_PORT
# given at tc ingress to the listener on INBOUND with bpf_sk_assign; no egress program. The app's port
# has its own listener, as in a pod (made after the proof that nothing but the program steers).
FLOOR_ASSIGN = ["floor_tc_sk_assign", "floor_tc_sk_assign_every"]
ASSIGN_IN = (f"real packets in: a connection to port {APP_PORT} accepted by the listener on {INBOUND} "
             "(sk_assign), 64-byte round trips; no egress program")
ASSIGN_BULK = "real packets in: the same, 64 KiB writes each way (GSO); no egress program"
REAL_BULK_LONG[ASSIGN_BULK] = f"real packets in: the sk_assign connection, 64 KiB writes, connections {LONG} times longer"
# Short connections (connect, one 64-byte round trip, closed with FINs; SHORT_DIV times fewer than
# a row's runs, from the peer's ephemeral ports): what a connection costs each program in all.
SHORT_DIV = 200
SHORT_IN = "short connections' packets in (connect, one 64-byte round trip, FIN close)"
SHORT_OUT = "short connections' packets out"
SHORT_BOTH = "short connections' packets, both ways (attached ingress and egress)"
SHORT_ASSIGN = f"short connections' packets in, accepted by the listener on {INBOUND} (sk_assign); no egress program"
SHORT = (SHORT_IN, SHORT_OUT, SHORT_BOTH, SHORT_ASSIGN)
PEER = "10.0.0.9"  # the peer's address on the veth
BODY = b"x" * 100
# (name, program, frame): what each tc program meets, most common first.
TC_FRAMES = [
    ("flow packet in", "ingress", frame(REMOTE, RPORT, POD, APP_PORT, ACK | PSH, BODY)),
    ("flow packet out", "egress", frame(POD, INBOUND, REMOTE, RPORT, ACK | PSH, BODY)),
    ("reply to the pod's own connection", "ingress", frame(REMOTE, 443, POD, 50000, ACK | PSH, BODY)),
    ("the pod's own packet out", "egress", frame(POD, 50000, REMOTE, 443, ACK | PSH, BODY)),
    ("SYN to the pod", "ingress", frame(REMOTE, RPORT + 1, POD, APP_PORT, SYN)),
    ("UDP in", "ingress", frame(REMOTE, 53, POD, 50001, 0, BODY, proto=17)),
    ("IPv6 flow packet in", "ingress", frame(REMOTE6, RPORT, POD6, APP_PORT, ACK | PSH, BODY)),
    ("IPv6 flow packet out", "egress", frame(POD6, INBOUND, REMOTE6, RPORT, ACK | PSH, BODY)),
]


def flow4_key(remote, local, rport):
    return socket.inet_aton(remote) + socket.inet_aton(local) + struct.pack("!H", rport) + b"\0\0"


def flow6_key(remote, local, rport):
    return (socket.inet_pton(socket.AF_INET6, remote) + socket.inet_pton(socket.AF_INET6, local)
            + struct.pack("!H", rport) + b"\0\0")


FLOW_VALUE = struct.pack("!H", APP_PORT) + b"\0" * 6  # mw_flow4: orig_port (network order), flags 0


def veth_client(size):
    """The peer's side of a veth row, a Python script: python3 -c SCRIPT N PEER_PORT [PORT]:
    one connection from PEER:PEER_PORT to POD:PORT (default APP_PORT), N round trips of
    size bytes each way, closed."""
    return ("import socket,sys\n"
            "c=socket.socket();c.setsockopt(1,2,1);c.bind(('%s',int(sys.argv[2])))\n"
            "c.connect(('%s',int(sys.argv[3]) if len(sys.argv)>3 else %d));c.setsockopt(6,1,1)\n"
            "for _ in range(int(sys.argv[1])):\n"
            " c.sendall(b'm'*%d);g=0\n"
            " while g<%d:\n"
            "  b=c.recv(%d-g)\n"
            "  assert b\n"
            "  g+=len(b)\n"
            "c.close()\n") % (PEER, POD, APP_PORT, size, size, size)


def short_client(size=64):
    """The peer's side of the short-connection rows: python3 -c SCRIPT N: N connections to
    POD:APP_PORT from ephemeral ports, one round trip of size bytes each, closed (FIN)."""
    return ("import socket,sys\n"
            "for _ in range(int(sys.argv[1])):\n"
            " c=socket.create_connection(('%s',%d));c.setsockopt(6,1,1)\n"
            " c.sendall(b'm'*%d);g=0\n"
            " while g<%d:\n"
            "  b=c.recv(%d-g)\n"
            "  assert b\n"
            "  g+=len(b)\n"
            " c.close()\n") % (POD, APP_PORT, size, size, size)


class Loaded(dict):
    """A load's programs or maps by name; a name it lacks (a program or map renamed in bpf/ or
    hooks_floor.c, and hooks.py not told) is an error naming both."""

    def __init__(self, objects, kind):
        super().__init__()
        self.objects, self.kind = objects, kind

    def __missing__(self, name):
        have = sorted(k for k in self if not k.endswith(":path"))
        raise Fatal(f"{self.objects}: no {self.kind} {name!r} (it has: {', '.join(have)}); "
                    "renamed? tools/bench/hooks.py names the programs and maps it measures")


def p_name(direction):
    return f"mw_tc_{direction}"


class Hooks:
    def __init__(self, a):
        self.a = a
        self.ws = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
        self.prefix = f"mwb{os.getpid()}-hooks"  # the bench's prefix: what is left is found by it
        self.work = tempfile.mkdtemp(prefix=self.prefix + "-")
        self.peer = None
        self.fds = []
        self.accepted = {}  # (listener's port, accepted socket's local port) -> accepts (listen)
        self.listening = set()  # listen_app
        self.assign_proof = self.assign_test_run = None
        self.socks = []
        self.learned = {}  # build -> [connections, sockets entered, hops left out] of SOCKOPS_LEARN
        self.listener, self.listen_cg = None, None  # listener_in
        self.cgroups = []
        self.stats_fd = None
        self.value_sizes = {}  # map pin -> value size (bpftool)
        self.tally = None  # ping()'s count while an sk_msg row runs (redirected)
        self.redirect_proof = {}  # floor_skmsg_empty's rows or not -> [messages each way, bytes, through TCP]
        self.peer_port = 42000  # the veth peer's fixed ports (next_peer_port), below its ephemeral ones

    def run(self, cmd, **kw):
        r = subprocess.run(cmd, capture_output=True, text=True, **kw)
        if r.returncode:
            raise Fatal(f"{' '.join(cmd)}: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    # -- building --

    def sources(self, label, rev):
        """bpf/ (and tools/bpf_cc.sh) of the working tree (rev None) or of rev."""
        d = os.path.join(self.work, label)
        os.makedirs(d)
        if rev is None:
            # -L: in a test's runfiles, the files are links to the sources
            self.run(["cp", "-rL", os.path.join(self.ws, "bpf"), d])
        else:
            arch = subprocess.run(["git", "-C", self.ws, "archive", rev, "bpf"], capture_output=True)
            if arch.returncode:
                raise Fatal(f"git archive {rev} bpf: {arch.stderr.decode().strip()}")
            subprocess.run(["tar", "-x", "-C", d], input=arch.stdout, check=True)
        return os.path.join(d, "bpf")

    def compile(self, src, out, extra=()):
        self.run([os.path.join(self.ws, "tools", "bpf_cc.sh"), out, src, *extra])
        return out

    # -- loading, each build in a bpffs of its own --

    def load(self, label, obj):
        """Loads an object (or a list of objects sharing their maps) into a fresh bpffs, mounted
        on top of the last one's so maps pinned by name stay apart; returns program name ->
        {fd, id, path, xlated}, map name -> fd (and name:path -> its pin)."""
        self.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"])
        pins = []
        for i, o in enumerate(obj if isinstance(obj, list) else [obj]):
            pins.append(f"/sys/fs/bpf/{label}-progs{i}")
            self.run(["bpftool", "prog", "loadall", o, pins[-1]])
        what = ", ".join(os.path.basename(o) for o in (obj if isinstance(obj, list) else [obj]))
        progs, maps = Loaded(what, "program"), Loaded(what, "map")
        for pin, name in [(p, n) for p in pins for n in os.listdir(p)]:
            path = os.path.join(pin, name)
            fd = obj_get(path)
            self.fds.append(fd)
            info = json.loads(self.run(["bpftool", "-j", "prog", "show", "pinned", path]))
            progs[name] = {"fd": fd, "id": info["id"], "path": path, "name": name,
                           "xlated": info.get("bytes_xlated", 0) // 8, "jited": info.get("bytes_jited", 0)}
        for name in os.listdir("/sys/fs/bpf"):  # the maps, pinned by name
            path = os.path.join("/sys/fs/bpf", name)
            if not os.path.isdir(path) and not name.endswith(".debug"):  # bpffs preloads maps.debug, progs.debug
                try:
                    maps[name] = obj_get(path)
                except OSError as e:
                    raise Fatal(f"{path}: {e}")
                self.fds.append(maps[name])
                maps[name + ":path"] = path
        return progs, maps

    def stats(self, prog_id):
        info = json.loads(self.run(["bpftool", "-j", "prog", "show", "id", str(prog_id)]))
        return info.get("run_time_ns", 0), info.get("run_cnt", 0)

    # -- the tc state: the pod meshed, one flow of each family established --

    def tc_state(self, maps, flows=True):
        map_update(maps["mw_pod_ips"], socket.inet_aton(POD), struct.pack("Q", COOKIE))
        map_update(maps["mw_pod_ips6"], socket.inet_pton(socket.AF_INET6, POD6), struct.pack("Q", COOKIE))
        map_update(maps["mw_flow4"], flow4_key(REMOTE, POD, RPORT), FLOW_VALUE)
        map_update(maps["mw_flow6"], flow6_key(REMOTE6, POD6, RPORT), FLOW_VALUE)

    # -- sk_msg: a loopback pair, both sockets accelerated --

    def skmsg_pair(self, maps, keep=True):
        """A loopback pair in maps' mw_sock_hash, with their mw_accel_state entries (all zero:
        its flags and, since the psock address moved there, psock 0: no backlog to read, as a
        build before that finds no entry in mw_accel_psock). keep False: the caller closes it;
        returns the pair and its two keys."""
        sock_map, state_map = maps["mw_sock_hash"], maps.get("mw_accel_state")
        state_size = 0
        if state_map is not None:
            path = maps["mw_accel_state:path"]
            if path not in self.value_sizes:
                info = json.loads(self.run(["bpftool", "-j", "map", "show", "pinned", path]))
                self.value_sizes[path] = info["bytes_value"]
            state_size = self.value_sizes[path]
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        c = socket.create_connection(ls.getsockname())
        s, _ = ls.accept()
        ls.close()
        for x in (c, s):
            x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cookie = c.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8)
        lo = socket.inet_aton("127.0.0.1")

        def key(sk):
            return cookie + lo + lo + struct.pack("II", sk.getsockname()[1], sk.getpeername()[1])
        for sk in (c, s):
            if state_map is not None:
                map_update(state_map, key(sk), b"\0" * state_size)
            map_update(sock_map, key(sk), struct.pack("Q", sk.fileno()))
        if not keep:
            return c, s, [key(c), key(s)]
        self.socks += [c, s]
        return c, s

    def fresh_pinger(self, maps):
        """Each call a new accelerated pair (its entries put in as sockops does), one 64-byte
        message each way (each socket's first: the first redirect to a peer takes its lock),
        then both closed and their state entries removed."""
        def run(n):
            for _ in range(max(1, n // FRESH_DIV)):
                c, s, keys = self.skmsg_pair(maps, keep=False)
                try:
                    self.ping(c, s, 1)
                finally:
                    c.close()
                    s.close()
                    for k in keys:
                        map_delete(maps["mw_accel_state"], k)
        return run

    def attach_skmsg(self, prog, sock_map_path):
        self.run(["bpftool", "prog", "attach", "pinned", prog["path"], "msg_verdict", "pinned", sock_map_path])

    def ping(self, c, s, n, size=64, cold=None):
        """n messages each way; each read must get what was sent (redirected or not).
        cold: a buffer written over before each message (its caches evicted, as the rest of
        a node's work does between two messages of one connection). While an sk_msg row runs
        (self.tally, see redirected), what the messages carried and what of it went through TCP
        is added up."""
        msg = b"m" * size
        tcp0 = tcp_bytes_sent(c, s) if self.tally is not None else 0
        for i in range(n):
            if cold is not None:
                ctypes.memset(ctypes.addressof(cold), i & 0xff, len(cold))
            c.sendall(msg)
            got = 0
            while got < size:
                got += len(s.recv(size - got))
            s.sendall(msg)
            got = 0
            while got < size:
                got += len(c.recv(size - got))
        if self.tally is not None:
            self.tally[0] += n
            self.tally[1] += 2 * n * size
            self.tally[2] += tcp_bytes_sent(c, s) - tcp0

    def redirected(self, key, fn, calls):
        """fn(calls) run, an sk_msg row, then the proof that its program redirected every message
        it measured: ping() adds up the bytes its messages carried each way and the sockets'
        tcpi_bytes_sent (TCP_INFO) around them, and a redirected message never goes through the
        sender's TCP. No row passes a message on purpose: each pair's state entries (and, for
        the datapath's, its peer's) are there before its first message, so mw_skmsg_redirect
        redirects that one too (bpf_skmsg.c). floor_skmsg_empty redirects nothing: all its bytes
        must have gone through TCP, which proves the count sees them."""
        self.tally = [0, 0, 0]  # messages each way, bytes both ways, of them through TCP
        try:
            fn(calls)
            msgs, sent, tcp = self.tally
        finally:
            self.tally = None
        if key[1] == "floor_skmsg_empty":
            want, how = sent, ("floor_skmsg_empty redirects nothing, so tcpi_bytes_sent does not count what "
                               "went through TCP and no row's zero proves a redirect")
        else:
            want, how = 0, "the program did not redirect them"
        if not sent or tcp != want:
            raise Fatal(f"{key[0]} {key[1]}, {key[2]}: of {msgs:,} messages each way ({sent:,} bytes), {tcp:,} bytes "
                        f"went through TCP (the sockets' tcpi_bytes_sent), {want:,} expected: "
                        + (how if sent else "no message was sent through ping(), which this check reads"))
        got = self.redirect_proof.setdefault(key[1] == "floor_skmsg_empty", [0, 0, 0])
        for i, x in enumerate((msgs, sent, tcp)):
            got[i] += x

    # -- connect4 and sockops: connections of this process, in a cgroup of its own --

    def cgroup(self, label):
        cg = os.path.join(cgroup2_mount(), f"{self.prefix}-{label}")
        os.mkdir(cg)
        self.cgroups.append(cg)
        return cg

    def connect4_cgroup(self, label, prog):
        """A cgroup of this run's own (label) with prog attached as its connect4."""
        cg = self.cgroup(label)
        self.run(["bpftool", "cgroup", "attach", cg, "connect4", "pinned", prog["path"]])
        return cg

    def enter(self, cg):
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def listener_in(self, cg):
        """The listener on 127.0.0.1:15001 (the outbound port connect4 steers to), made while
        this process is in cg (call it there): an accepted socket is in its listener's cgroup,
        so sockops runs on both ends of a connection only when its listener was made in the
        cgroup the programs are attached to (until 2026-12-06 21:00 one listener, made outside,
        served every row: sockops ran on the connecting end alone). Made again when the row's
        cgroup changes; the connections it accepted stay."""
        if self.listen_cg != cg:
            if self.listener is not None:
                self.listener.close()
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", 15001))
            ls.listen(128)
            self.listener, self.listen_cg = ls, cg
        return self.listener

    def connector(self, cg, message=False, dest=DEST, fin=False):
        """n connections to an address that exists nowhere (dest:80), steered by connect4 to
        the listener on the outbound port, accepted and reset (no TIME_WAIT left). message: a
        64-byte message each way first (with acceleration on, each end's first sk_msg run).
        fin: closed with FINs instead, the accepted end first (its TIME_WAIT on the listener's
        side), then the connecting end, whose FIN (LAST_ACK) reports its hop's length."""
        def run(n):
            self.enter(cg)
            try:
                listener = self.listener_in(cg)
                for _ in range(n):
                    c = socket.socket()
                    if not fin:
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    c.connect((dest, 80))
                    a, _ = listener.accept()
                    if message:
                        self.ping(c, a, 1)
                    if not fin:
                        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    a.close()
                    if fin:
                        try:
                            c.recv(1)  # the accepted end's FIN: c is in CLOSE_WAIT
                        except BlockingIOError:
                            pass  # tcp_bpf's EAGAIN on a wake-up without data (docs/acceleration.md): c's FIN first
                    c.close()
            finally:
                self.enter(self.home)
        return run

    def learner(self, label, cg, stats_fd):
        """SOCKOPS_LEARN's connections, counting how many entered the socket map (both ends:
        2 per accelerated connection) and how many were left out."""
        fn = self.connector(cg, message=True, dest=DEST_LEARN, fin=True)

        def run(n):
            a0, s0 = stat_sum(stats_fd, MW_STAT_ACCEL_SOCK_ADDED), stat_sum(stats_fd, MW_STAT_ACCEL_SKIPPED_SHORT)
            fn(n)
            got = self.learned.setdefault(label, [0, 0, 0])
            got[0] += n
            got[1] += stat_sum(stats_fd, MW_STAT_ACCEL_SOCK_ADDED) - a0
            got[2] += stat_sum(stats_fd, MW_STAT_ACCEL_SKIPPED_SHORT) - s0
        return run

    def accel_pair(self, cg):
        """One connection made like the connector's, to DEST_STEADY, kept open: sockops put
        both ends into the maps (each end's psock recorded in its state entry), and six
        messages each way carried its connecting end's count past MW_ACCEL_SHORT_MSGS."""
        self.enter(cg)
        try:
            listener = self.listener_in(cg)
            c = socket.socket()
            c.connect((DEST_STEADY, 80))
            a, _ = listener.accept()
        finally:
            self.enter(self.home)
        for x in (c, a):
            x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socks += [c, a]
        self.ping(c, a, 6)
        return c, a

    # -- tc on real packets: a veth to a peer namespace, a connection through it --

    def veth(self):
        """mwh0 here as the pod's eth0 (10.0.0.2/24, POD), its peer mwh1 (10.0.0.9) in the
        network namespace of a child process; a listener on the inbound port echoes."""
        self.peer = subprocess.Popen(["unshare", "-n", "sleep", "infinity"])
        own = os.readlink("/proc/self/ns/net")
        for _ in range(100):
            try:
                if os.readlink(f"/proc/{self.peer.pid}/ns/net") != own:
                    break
            except OSError:
                pass
            time.sleep(0.02)
        else:
            raise Fatal("the peer namespace did not come up")
        ns = ["nsenter", "-t", str(self.peer.pid), "-n"]
        self.run(["ip", "link", "add", "mwh0", "type", "veth", "peer", "name", "mwh1"])
        self.run(["ip", "link", "set", "mwh1", "netns", str(self.peer.pid)])
        self.run(["ip", "addr", "add", f"{POD}/24", "dev", "mwh0"])
        self.run(["ip", "link", "set", "mwh0", "up"])
        self.run(ns + ["ip", "addr", "add", "10.0.0.9/24", "dev", "mwh1"])
        self.run(ns + ["ip", "link", "set", "mwh1", "up"])
        self.run(ns + ["ip", "link", "set", "lo", "up"])
        # the short connections' ephemeral ports above the fixed ones the other rows bind (a port
        # connect() picked cannot be bound while its connection is in TIME_WAIT)
        self.run(ns + ["sysctl", "-qw", "net.ipv4.ip_local_port_range=50000 65000"])
        self.ifindex = socket.if_nametoindex("mwh0")
        self.listen(INBOUND)  # APP_PORT's: listen_app, once the sk_assign proof is done
        return ns

    def listen(self, port, echo=True):
        """A listener on 0.0.0.0:port whose thread echoes what each accepted connection sends,
        counting its accepts by their local port (getsockname()) in self.accepted."""
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("0.0.0.0", port))
        srv.listen(16)
        self.socks.append(srv)
        if echo:
            threading.Thread(target=self.echo, args=(srv, port), daemon=True).start()

    def listen_app(self):
        """The app's listener on APP_PORT, as a pod has one (the floor's pass-through programs
        steer nothing: their connections go to it)."""
        if APP_PORT not in self.listening:
            self.listening.add(APP_PORT)
            self.listen(APP_PORT, echo=self.a.hooks_veth)

    def echo(self, srv, port):
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            local = c.getsockname()[1]
            self.accepted[(port, local)] = self.accepted.get((port, local), 0) + 1
            with c:
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    c.sendall(b)

    def tcx(self, cmd, prog, attach_type):
        bpf(cmd, struct.pack("IIIIIIQ", self.ifindex, prog["fd"], attach_type, 0, 0, 0, 0))

    def attach(self, ingress, egress):
        self.tcx(BPF_PROG_ATTACH, ingress, BPF_TCX_INGRESS)
        if egress is not None:
            self.tcx(BPF_PROG_ATTACH, egress, BPF_TCX_EGRESS)

    def detach(self, ingress, egress):
        self.tcx(BPF_PROG_DETACH, ingress, BPF_TCX_INGRESS)
        if egress is not None:
            self.tcx(BPF_PROG_DETACH, egress, BPF_TCX_EGRESS)

    def steered(self, fn, conns, name):
        """fn() run, then the proof that ingress steered each of its conns connections: the
        listener on INBOUND accepted them, the app's listener on APP_PORT none. Their local
        address (getsockname()): APP_PORT after an sk_assign floor, INBOUND after the
        datapath's port rewrite (mw_tc_ingress)."""
        local, how = (APP_PORT, "sk_assign") if name in FLOOR_ASSIGN else (INBOUND, "the port rewrite")
        inb, app = (INBOUND, local), sum(v for (port, _), v in self.accepted.items() if port == APP_PORT)
        before = self.accepted.get(inb, 0)
        fn()
        got = self.accepted.get(inb, 0) - before
        stray = sum(v for (port, _), v in self.accepted.items() if port == APP_PORT) - app
        if got != conns or stray:
            raise Fatal(f"{name}: of {conns} connections to port {APP_PORT}, the listener on {INBOUND} accepted "
                        f"{got} with local port {local}, the app's listener {stray}: {how} did not steer them")

    def next_peer_port(self):
        """A peer port no earlier connection of the run used (its flow's key is its own)."""
        self.peer_port += 1
        return self.peer_port

    def attached(self, ingress, egress, go, conns):
        """go() with the build's programs attached to mwh0 (egress None: none there); an ingress
        that steers (the datapath's port rewrite, an sk_assign floor) proved to have steered
        each of go's conns connections."""
        self.attach(ingress, egress)
        try:
            if ingress["name"] in FLOOR_ASSIGN or ingress["name"] == "mw_tc_ingress":
                self.steered(go, conns, ingress["name"])
            else:
                go()
        finally:
            self.detach(ingress, egress)

    def veth_traffic(self, ns, ingress, egress, size=64, long=False, flow_map=None):
        """One connection from the peer to POD:APP_PORT (steered by tc to the listener), n
        round trips of size bytes (BULK: n // 20 of them, long: LONG times as many), closed;
        the build's programs attached to mwh0 meanwhile (egress None: none there; ingress
        the datapath's or an sk_assign floor: each connection proved steered). Each
        connection from a peer port of its own; flow_map (a floor's mw_flow4): its flow put
        there first, so that the floor's lookup finds the entry, as the datapath's does."""
        client = veth_client(size)
        div = 20 if size == BULK else 1

        def run(n):
            n = max(1, n * (LONG if long else 1) // div)
            port = self.next_peer_port()
            key = flow4_key(PEER, POD, port)
            if flow_map is not None:
                map_update(flow_map, key, FLOW_VALUE)
            try:
                self.attached(ingress, egress, lambda: self.run(ns + ["python3", "-c", client, str(n), str(port)],
                                                                timeout=120), 1)
            finally:
                if flow_map is not None:
                    map_delete(flow_map, key)
        return run

    def short_traffic(self, ns, ingress, egress):
        """n short connections from the peer to POD:APP_PORT (short_client), the programs
        attached meanwhile; the datapath's and an sk_assign floor's proved steered, as in veth_traffic."""
        client = short_client()

        def run(n):
            self.attached(ingress, egress, lambda: self.run(ns + ["python3", "-c", client, str(n)], timeout=300), n)
        return run

    def prove_assign(self, ns, prog):
        """Before the app's listener exists: a connection to POD:APP_PORT is refused without
        prog, and with prog on mwh0's ingress it is accepted by the listener on INBOUND with
        APP_PORT as its local address. Returns what it saw, for the report."""
        client = veth_client(64)
        r = subprocess.run(ns + ["python3", "-c", client, "1", str(self.next_peer_port())], capture_output=True, text=True,
                           timeout=60)
        if r.returncode == 0 or "ConnectionRefusedError" not in r.stderr:
            raise Fatal(f"nothing should listen on {POD}:{APP_PORT} yet, but a connection there "
                        f"{'succeeded' if r.returncode == 0 else 'failed otherwise: ' + r.stderr.strip()[-200:]}")
        port = self.next_peer_port()
        self.attached(prog, None, lambda: self.run(ns + ["python3", "-c", client, "1", str(port)], timeout=60), 1)
        return (f"with nothing listening on port {APP_PORT}, the peer's connect() to {POD}:{APP_PORT} was refused "
                f"without the program; with `{prog['name']}` on the veth's ingress the same connect() was accepted by the "
                f"listener on {INBOUND}, and the accepted socket's getsockname() gave port {APP_PORT}")

    # -- the run --

    def main(self):
        a = self.a
        need = ["bpf/lib", "tools/bpf_cc.sh", "tools/bench/hooks_floor.c"]
        missing = [x for x in need if not os.path.exists(os.path.join(self.ws, x))]
        if missing:
            raise Fatal(f"--mode hooks compiles the working tree's bpf/: no {', '.join(missing)} in {self.ws} "
                        "(run it with `./bazelw run //tools/bench -- --mode hooks`, or from the workspace)")
        os.sched_setaffinity(0, {a.cpu})
        if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
            raise Fatal(f"unshare: {os.strerror(ctypes.get_errno())}")
        if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            raise Fatal(f"mount --make-rprivate /: {os.strerror(ctypes.get_errno())}")
        self.run(["ip", "link", "set", "lo", "up"])

        builds = [("new", None)] + ([("old", a.baseline)] if a.baseline else [])
        floor_obj = self.compile(os.path.join(self.ws, "tools", "bench", "hooks_floor.c"),
                                 os.path.join(self.work, "floor.bpf.o"),
                                 ["-I", os.path.join(self.ws, "bpf", "lib")])
        runners = {}  # (build, program, what) -> (prog, callable; None: measured with its leader's)
        self.programs = {}
        self.companions = {}  # leader -> the rows its runs measure too
        ns = None
        for label, rev in builds:
            src = self.sources(label, rev)
            for f in ("bpf_tc.c", "bpf_skmsg.c"):
                obj = self.compile(os.path.join(src, f), os.path.join(self.work, f"{label}-{f[:-2]}.bpf.o"))
                progs, maps = self.load(f"{label}-{f[4:-2]}", obj)
                for n, p in progs.items():
                    self.programs[(label, n)] = p
                if f == "bpf_tc.c":
                    self.tc_state(maps)
                    for what, prog, fr in TC_FRAMES:
                        p = progs[f"mw_tc_{prog}"]
                        runners[(label, p_name(prog), what)] = (p, TestRun(p["fd"], fr).run)
                    p = progs["mw_tc_ingress"]
                    runners[(label, "mw_tc_ingress", TC_COLD)] = (p, cold(TestRun(p["fd"], TC_FRAMES[0][2]).run))
                    if a.hooks_veth:
                        ns = ns or self.veth()
                        lead = (label, "mw_tc_ingress", REAL_IN)
                        runners[lead] = (progs["mw_tc_ingress"],
                                         self.veth_traffic(ns, progs["mw_tc_ingress"], progs["mw_tc_egress"]))
                        runners[(label, "mw_tc_egress", REAL_OUT)] = (progs["mw_tc_egress"], None)
                        self.companions[lead] = [(label, "mw_tc_egress", REAL_OUT)]
                        for long in (False, True):
                            bin_, bout = ((REAL_BULK_LONG[REAL_BULK_IN], REAL_BULK_LONG[REAL_BULK_OUT]) if long
                                          else (REAL_BULK_IN, REAL_BULK_OUT))
                            lead = (label, "mw_tc_ingress", bin_)
                            runners[lead] = (progs["mw_tc_ingress"],
                                             self.veth_traffic(ns, progs["mw_tc_ingress"], progs["mw_tc_egress"], BULK, long))
                            runners[(label, "mw_tc_egress", bout)] = (progs["mw_tc_egress"], None)
                            self.companions[lead] = [(label, "mw_tc_egress", bout)]
                        lead = (label, "mw_tc_ingress", SHORT_IN)
                        runners[lead] = (progs["mw_tc_ingress"],
                                         self.short_traffic(ns, progs["mw_tc_ingress"], progs["mw_tc_egress"]))
                        runners[(label, "mw_tc_egress", SHORT_OUT)] = (progs["mw_tc_egress"], None)
                        self.companions[lead] = [(label, "mw_tc_egress", SHORT_OUT)]
                else:
                    p = progs["mw_skmsg_redirect"]
                    self.attach_skmsg(p, maps["mw_sock_hash:path"])
                    c, s = self.skmsg_pair(maps)
                    for k, fn in self.skmsg_rows(label, "mw_skmsg_redirect", c, s):
                        runners[k] = (p, fn)
        if a.hooks_connect:
            self.home = [ln.split("::", 1)[1].strip() for ln in open("/proc/self/cgroup") if ln.startswith("0::")][0]
            self.home = cgroup2_mount() + self.home
            cookie = self.listener_in(self.home).getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8)
            for (label, rev), accel in [(b, x) for x in (False, True) for b in builds]:
                src = os.path.join(self.work, label, "bpf")
                # with acceleration, sk_msg on the same maps: sockops puts both ends in mw_sock_hash
                objs = [self.compile(os.path.join(src, f), os.path.join(self.work, f"{label}-{f[:-2]}.bpf.o"))
                        for f in ("bpf_sock.c", "bpf_sockops.c") + (("bpf_skmsg.c",) if accel else ())]
                if accel:
                    objs = [set_accel(o) for o in objs]
                progs, maps = self.load(f"{label}-sock{'-accel' if accel else ''}", objs)
                if accel:
                    self.attach_skmsg(progs["mw_skmsg_redirect"], maps["mw_sock_hash:path"])
                # MW_POD_F_MESHED, and MW_POD_F_ACCEL with acceleration
                map_update(maps["mw_pods"], cookie, struct.pack("I", 3 if accel else 1))
                cg = self.cgroup(label + ("-accel" if accel else ""))
                self.run(["bpftool", "cgroup", "attach", cg, "connect4", "pinned", progs["mw_sock4_connect"]["path"]])
                self.run(["bpftool", "cgroup", "attach", cg, "sock_ops", "pinned", progs["mw_sockops"]["path"]])
                fn = self.connector(cg)
                for n in ("mw_sock4_connect", "mw_sockops"):
                    self.programs[(label, n)] = progs[n]
                lead = (label, "mw_sock4_connect", CONNECT_ACCEL if accel else CONNECT)
                runners[lead] = (progs["mw_sock4_connect"], fn)
                runners[(label, "mw_sockops", SOCKOPS_ACCEL if accel else SOCKOPS)] = (progs["mw_sockops"], None)
                self.companions[lead] = [(label, "mw_sockops", SOCKOPS_ACCEL if accel else SOCKOPS)]
                if not accel:
                    runners[(label, "mw_sock4_connect", CONNECT_COLD)] = (progs["mw_sock4_connect"], cold(fn))
                    runners[(label, "mw_sockops", SOCKOPS_FIN)] = (
                        progs["mw_sockops"], self.connector(cg, message=True, dest=DEST_LEARN, fin=True))
                else:
                    runners[(label, "mw_skmsg_redirect", SKMSG_NEWCONN)] = (progs["mw_skmsg_redirect"],
                                                                        self.connector(cg, message=True))
                    c, s = self.accel_pair(cg)
                    runners[(label, "mw_skmsg_redirect", SKMSG_STEADY)] = (progs["mw_skmsg_redirect"], self.pinger(c, s))
                    runners[(label, "mw_sockops", SOCKOPS_LEARN)] = (progs["mw_sockops"],
                                                                    self.learner(label, cg, maps["mw_stats"]))
        if not a.hooks_veth:  # the sk_assign floor's lookups find listeners in test runs too
            self.listen(INBOUND, echo=False)
        for fname in FLOOR_TC + FLOOR_ASSIGN + FLOOR_SKMSG + (FLOOR_CONNECT + FLOOR_SOCKOPS + FLOOR_RELEASE if a.hooks_connect else []):
            # one load per program: a sockhash takes one sk_msg verdict program
            progs, maps = self.load(fname, floor_obj)
            p = progs[fname]
            self.programs[("floor", fname)] = p
            if fname in FLOOR_TC:
                # the flow map its lookup reads (floor_tc_flow_lookup_hash: a plain hash)
                fm = maps["floor_flow4_hash" if fname == "floor_tc_flow_lookup_hash" else "mw_flow4"]
                map_update(fm, flow4_key(REMOTE, POD, RPORT), FLOW_VALUE)
                runners[("floor", fname, TC_FRAMES[0][0])] = (p, TestRun(p["fd"], TC_FRAMES[0][2]).run)
                if fname in FLOOR_TC_REAL:
                    runners[("floor", fname, TC_COLD)] = (p, cold(TestRun(p["fd"], TC_FRAMES[0][2]).run))
                if a.hooks_veth and fname in FLOOR_TC_REAL:
                    runners[("floor", fname, REAL_BOTH)] = (p, self.veth_traffic(ns, p, p, flow_map=fm))
                    if fname == "floor_tc_empty":  # the measure's own cost on the short connections
                        runners[("floor", fname, SHORT_BOTH)] = (p, self.short_traffic(ns, p, p))
                    for long in (False, True):
                        both = REAL_BULK_LONG[REAL_BULK_BOTH] if long else REAL_BULK_BOTH
                        runners[("floor", fname, both)] = (p, self.veth_traffic(ns, p, p, BULK, long, fm))
                        if fname != "floor_tc_empty":  # ingress alone (the empty program on egress)
                            empty = self.programs[("floor", "floor_tc_empty")]
                            only = REAL_BULK_LONG[REAL_BULK_IN_ONLY] if long else REAL_BULK_IN_ONLY
                            runners[("floor", fname, only)] = (p, self.veth_traffic(ns, p, empty, BULK, long, fm))
            elif fname in FLOOR_ASSIGN:
                if a.hooks_veth and not self.listening:  # before the app's listener exists
                    self.assign_proof = self.prove_assign(ns, p)
                self.listen_app()
                syn = next(fr for what, _, fr in TC_FRAMES if what == "SYN to the pod")
                if fname == FLOOR_ASSIGN[0]:  # what its SYN's bpf_sk_assign answers in a test run
                    self.assign_test_run = TestRun(p["fd"], syn).run(1)
                    for what, _, fr in TC_FRAMES:
                        if what in ("flow packet in", "SYN to the pod"):
                            runners[("floor", fname, what)] = (p, TestRun(p["fd"], fr).run)
                if a.hooks_veth:
                    runners[("floor", fname, ASSIGN_IN)] = (p, self.veth_traffic(ns, p, None))
                    for long in (False, True):
                        w = REAL_BULK_LONG[ASSIGN_BULK] if long else ASSIGN_BULK
                        runners[("floor", fname, w)] = (p, self.veth_traffic(ns, p, None, BULK, long))
                    runners[("floor", fname, SHORT_ASSIGN)] = (p, self.short_traffic(ns, p, None))
            elif fname in FLOOR_SOCKOPS or fname in FLOOR_RELEASE:
                # steered by a connect4 floor of the same object (FLOOR_STEER), measured alone
                cg = self.connect4_cgroup(fname, progs[FLOOR_STEER.get(fname, "floor_connect4_empty")])
                release = fname in FLOOR_RELEASE
                self.run(["bpftool", "cgroup", "attach", cg, "sock_release" if release else "sock_ops", "pinned", p["path"]])
                if fname == "floor_sockops_accel_path":  # a verdict program on its sockhash, as the datapath's
                    self.attach_skmsg(progs["floor_skmsg_empty"], maps["mw_sock_hash:path"])
                runners[("floor", fname, RELEASE_FLOOR if release else SOCKOPS_FLOOR)] = (p, self.connector(cg))
            elif fname in FLOOR_CONNECT:
                cg = self.connect4_cgroup(fname, p)
                runners[("floor", fname, "a connect()")] = (p, self.connector(cg))
                runners[("floor", fname, CONNECT_FLOOR_COLD)] = (p, cold(self.connector(cg)))
                if fname == "floor_connect4_cookie_lru":  # again on a map filled first: each insert evicts
                    full, full_maps = self.load(fname + "-full", floor_obj)
                    for i in range(COOKIE_MAP_ENTRIES):  # cookies no socket has (they count up from 1)
                        map_update(full_maps["floor_orig_cookie_lru"], struct.pack("Q", 1 << 62 | i), b"\0" * 8)
                    runners[("floor", fname, CONNECT_FLOOR_FULL)] = (
                        full[fname], self.connector(self.connect4_cgroup(fname + "-full", full[fname])))
            else:
                self.attach_skmsg(p, maps["mw_sock_hash:path"])
                c, s = self.skmsg_pair(maps)
                if fname in ("floor_skmsg_empty", "floor_skmsg_lookup_redirect"):
                    for k, fn in self.skmsg_rows("floor", fname, c, s, floor=True):
                        runners[k] = (p, fn)
                else:
                    runners[("floor", fname, skmsg_what(64))] = (p, self.pinger(c, s))
                runners[("floor", fname, SKMSG_FRESH)] = (p, self.fresh_pinger(maps))

        self.stats_fd, _ = bpf(BPF_ENABLE_STATS, struct.pack("I", 0))
        busy0, t0 = machine_busy(), time.time()
        res = {}
        order = list(runners)
        self.per_call = {}  # runs of the program per connection (message, frame) made
        self.per_conn = {}  # the GSO rows: (ns, runs) of each round's one connection
        for r in range(a.rounds):
            # every other round in the reverse order: neither build always goes first
            for key in (order if r % 2 == 0 else order[::-1]):
                p, fn = runners[key]
                if fn is None:
                    continue  # measured with the row before it
                with_it = [(k, runners[k][0]) for k in self.companions.get(key, [])]
                per_conn = key[1] in ("mw_sock4_connect",) \
                    or key[1].startswith(("floor_connect4", "floor_sockops", "floor_release")) \
                    or key[2] in (REAL_IN, REAL_BOTH, REAL_BULK_IN, REAL_BULK_BOTH, REAL_BULK_IN_ONLY, SKMSG_NEWCONN,
                                  ASSIGN_IN, ASSIGN_BULK,
                                  SOCKOPS_LEARN, SOCKOPS_FIN) \
                    or key[2] in REAL_BULK_LONG.values()
                before = {k: self.stats(q["id"]) for k, q in [(key, p)] + with_it}
                calls = max(1, a.calls // SHORT_DIV) if key[2] in SHORT else max(1, a.calls // 20) if per_conn else a.calls
                if key[1] == "mw_skmsg_redirect" or key[1] in FLOOR_SKMSG:
                    self.redirected(key, fn, calls)
                else:
                    fn(calls)
                for k, q in [(key, p)] + with_it:
                    rt1, n1 = self.stats(q["id"])
                    rt0, n0 = before[k]
                    if n1 <= n0:
                        raise Fatal(f"{k}: the program did not run")
                    res.setdefault(k, []).append((rt1 - rt0) / (n1 - n0))
                    self.per_call.setdefault(k, []).append((n1 - n0) / calls)
                    if k[2] in REAL_BULK_LONG or k[2] in REAL_BULK_LONG.values():
                        self.per_conn.setdefault(k, []).append((rt1 - rt0, n1 - n0))
            log(f"hooks: round {r + 1}/{a.rounds}")
        self.busy = (machine_busy() - busy0) / (time.time() - t0) / os.cpu_count()
        self.res = res
        self.report()

    def pinger(self, c, s, size=64, cold=False):
        buf = ctypes.create_string_buffer(COLD_BYTES) if cold else None
        div = 4 * (SKMSG_SIZES[size] if not cold else COLD_DIV)
        return lambda n: self.ping(c, s, max(1, n // div), size, buf)

    def skmsg_rows(self, label, p, c, s, floor=False):
        """(key, runner) of each sk_msg row: the message sizes, and 64 bytes with cold caches."""
        rows = [((label, p, skmsg_what(size)), self.pinger(c, s, size)) for size in SKMSG_SIZES
                if not floor or size in (64, 65536)]
        rows.append(((label, p, SKMSG_COLD), self.pinger(c, s, 64, cold=True)))
        return rows

    def report(self):
        a, res = self.a, self.res
        med = {k: statistics.median(v) for k, v in res.items()}
        rng = {k: (min(v), max(v)) for k, v in res.items()}
        floor = {k[1]: med[k] for k in med if k[0] == "floor" and k[2] in (TC_FRAMES[0][0], skmsg_what(64), "a connect()",
                                                                             SOCKOPS_FLOOR, RELEASE_FLOOR)}
        empty_tc, empty_msg = floor["floor_tc_empty"], floor["floor_skmsg_empty"]
        old = a.baseline
        L = [f"# Each hook's own cost (`--mode hooks`){' — ' + a.note if a.note else ''}", ""]
        L.append(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; kernel {os.uname().release}, "
                 f"{os.cpu_count()} CPUs shared with other work: the machine was {self.busy:.0%} busy "
                 f"while it ran (this process pinned to CPU {a.cpu}). {a.rounds} rounds of {a.calls:,} runs "
                 f"per row (sk_msg: {max(1, a.calls // 4):,} messages each way; connect4 and sockops: "
                 f"{max(1, a.calls // 20):,} connections; 16 and 64 KiB messages 8 and 16 times fewer, the "
                 f"GSO rows' 64 KiB round trips 20 times fewer, the caches-cold rows {COLD_DIV} times fewer runs, "
                 f"new sk_msg pairs {FRESH_DIV} times fewer); "
                 + ("the builds alternate within each round. " if old else "")
                 + f"Figures: bpf_stats run_time_ns / run_cnt, ns per run, median of the rounds (min-max); every other round runs the rows in the reverse order.")
        L.append("")
        L.append((f"new: the working tree; old: `{old}`." if old else
                  "new: the working tree, alone (no --baseline: nothing to compare it with).")
                 + " The measure's own overhead, what an empty program "
                 f"costs measured this way: {empty_tc:.0f} ns (tc), {empty_msg:.0f} ns (sk_msg)"
                 + (f", {floor['floor_connect4_empty']:.0f} ns (connect4)" if "floor_connect4_empty" in floor else "")
                 + "; "
                 "every figure below includes it.")
        L.append("")
        L.append("## The programs")
        L.append("")
        hdr = "| program | what it runs on | " + ("old ns | " if old else "") + "new ns |" + (" new / old |" if old else "")
        L.append(hdr)
        L.append("|---|---|" + ("---|" if old else "") + "---|" + ("---|" if old else ""))
        for k in sorted({(k[1], k[2]) for k in med if k[0] == "new"}, key=lambda x: list(med).index(("new",) + x)):
            n = med[("new",) + k]
            row = f"| `{k[0]}` | {k[1]} | "
            if old:
                o = med[("old",) + k]
                row += f"{o:.0f} ({rng[('old',) + k][0]:.0f}-{rng[('old',) + k][1]:.0f}) | "
            row += f"{n:.0f} ({rng[('new',) + k][0]:.0f}-{rng[('new',) + k][1]:.0f}) |"
            if old:
                row += f" {n / o:.2f}x |"
            L.append(row)
        L.append("")
        sk = [k for k in med if k[1].endswith("sockops") or k[1].startswith(("floor_sockops", "floor_release"))]
        if sk:
            tag = {SOCKOPS_ACCEL: " (acceleration on)", SOCKOPS_LEARN: " (acceleration on, short connections learned)",
                   SOCKOPS_FIN: " (the learned row's connections, acceleration off)"}
            L.append("sockops (and sock_release) runs per connection (both ends' callbacks; ns per connection = ns per run x runs): "
                     + "; ".join(f"{k[0]} `{k[1]}`{tag.get(k[2], '')} "
                                 f"{statistics.median(self.per_call[k]):.1f}, "
                                 f"{med[k] * statistics.median(self.per_call[k]):.0f} ns per connection"
                                 for k in sk) + ".")
            L.append("")
        if self.learned:
            L.append("Short connections learned, what sockops decided (all rounds; `meshwire-loader stats`' counters "
                     "read before and after each run): "
                     + "; ".join(f"{b}: {n:,} connections, {added // 2:,} accelerated (accel_sock_added {added:,}, "
                                 f"both ends), {skipped:,} left out (accel_skipped_short)"
                                 for b, (n, added, skipped) in self.learned.items()) + ".")
            L.append("")
        done, empty = self.redirect_proof.get(False, [0, 0, 0]), self.redirect_proof.get(True, [0, 0, 0])
        L.append(f"Every sk_msg row's messages were redirected (all rounds; the sending sockets' TCP_INFO "
                 f"tcpi_bytes_sent read around them): {done[0]:,} messages each way, {done[1]:,} bytes, {done[2]:,} "
                 f"of them through TCP; `floor_skmsg_empty`, which redirects nothing: {empty[0]:,} messages each way, "
                 f"{empty[1]:,} bytes, {empty[2]:,} of them through TCP.")
        L.append("")
        L.append("Instructions after the verifier (`bpftool prog show`: xlated), whole program:")
        L.append("")
        for name in ("mw_tc_ingress", "mw_tc_egress", "mw_skmsg_redirect", "mw_sock4_connect", "mw_sockops"):
            L.append(f"- `{name}`: " + ", ".join(f"{b} {self.programs[(b, name)]['xlated']}"
                                              for b in ("old", "new") if (b, name) in self.programs))
        L.append("")
        L.append("## The floor: one helper alone, measured the same way")
        L.append("")
        L.append("`tools/bench/hooks_floor.c`, on the datapath's own map definitions: tc ones on the first frame "
                 "above, sk_msg ones on the same kind of socket pair, connect4 ones on the same connections (each "
                 "steers to the listener, as connect4 does). 'alone' is the figure minus the empty program's of "
                 "its kind.")
        L.append("")
        L.append("| program | what it runs on | ns per run | alone |")
        L.append("|---|---|---|---|")
        for k in med:
            if k[0] != "floor":
                continue
            e = med.get(("floor", f"floor_{k[1].split('_')[1]}_empty",
                         {REAL_BULK_IN_ONLY: REAL_BULK_BOTH,
                          REAL_BULK_LONG[REAL_BULK_IN_ONLY]: REAL_BULK_LONG[REAL_BULK_BOTH],
                          ASSIGN_IN: REAL_BOTH, ASSIGN_BULK: REAL_BULK_BOTH,
                          REAL_BULK_LONG[ASSIGN_BULK]: REAL_BULK_LONG[REAL_BULK_BOTH],
                          SHORT_ASSIGN: SHORT_BOTH}.get(k[2], k[2])))
            e = e if e is not None else floor[f"floor_{k[1].split('_')[1]}_empty"]
            L.append(f"| `{k[1]}` | {k[2]} | {med[k]:.0f} ({rng[k][0]:.0f}-{rng[k][1]:.0f}) | {med[k] - e:.0f} |")
        L.append("")
        L += self.origin_store_report(med)
        L += self.per_packet_report()
        L += self.assign_report(med)
        out = a.out
        with open(out, "w") as f:
            f.write("\n".join(L))
        with open(os.path.splitext(out)[0] + ".json", "w") as f:
            json.dump({"busy": self.busy, "rounds": a.rounds, "calls": a.calls, "baseline": old,
                       "ns_per_run": [{"build": k[0], "program": k[1], "what": k[2], "rounds": v}
                                      for k, v in res.items()],
                       "xlated": {f"{b}:{n}": p["xlated"] for (b, n), p in self.programs.items()}}, f, indent=1)
        log("\n".join(L))
        log(f"hooks: wrote {out}")

    def origin_store_report(self, med):
        """ORIGIN_STORES per connection: each store's connect4 floor (one run per connection), sockops
        floor and sock_release floor (their runs per connection), each alone: minus the empty
        program of its kind for as many runs."""
        def alone(fname, what, empty, per_connection=True):
            k, e = ("floor", fname, what), ("floor", empty, what)
            if k not in med or e not in med:
                return None
            return (med[k] - med[e]) * (statistics.median(self.per_call[k]) if per_connection else 1)
        rows = []
        for store, c4, so, rel in ORIGIN_STORES:
            # connect4: one run per connect() (the cold rows make fewer connect()s than calls)
            hot, cold_ = (alone(c4, w, "floor_connect4_empty", False) for w in ("a connect()", CONNECT_FLOOR_COLD))
            sockops = alone(so, SOCKOPS_FLOOR, "floor_sockops_empty")
            released = alone(rel, RELEASE_FLOOR, "floor_release_empty") if rel else 0
            if None in (hot, sockops, released):
                continue
            rows.append(f"| {store} | `{c4}` {hot:.0f} / {cold_:.0f} | `{so}` {sockops:.0f} | "
                        + (f"`{rel}` {released:.0f} | " if rel else "- | ") + f"{hot + sockops + released:.0f} |")
        if not rows:
            return []
        L = ["## The original destination's store, per connection", "",
             "Each store's parts, each alone (its floor minus the empty program of its kind, for as many "
             "runs): connect4 stores the destination; sockops reads it at the connecting end's established, asks "
             "for its close and does there what the store needs (socket storage: nothing, the kernel frees it "
             "with the socket outside any program; or that free counted: the storage deleted at the close; a "
             "cookie map: the entry deleted, there or as each of the connection's sockets is released, "
             "cgroup/sock_release, where the accepted end's delete misses). ns per connection.", "",
             "| store | connect4: stored (hot / caches cold) | sockops: read, and the close's part | sock_release "
             "| per connection, hot |", "|---|---|---|---|---|"] + rows + [""]
        full = med.get(("floor", "floor_connect4_cookie_lru", CONNECT_FLOOR_FULL))
        if full is not None:
            L += [f"The LRU hash full (a failed connect's entry is never deleted at a close: they fill it, and from then on "
                  f"each insert evicts the least recently used entry, a live socket's as well): "
                  f"`floor_connect4_cookie_lru` {full - med[('floor', 'floor_connect4_empty', 'a connect()')]:.0f} ns "
                  f"alone per connect().", ""]
        k = ("floor", "floor_release_empty", RELEASE_FLOOR)
        if k in med:
            L += [f"sock_release's delete is on top of a program run on each socket released: "
                  f"{med[k] * statistics.median(self.per_call[k]):.0f} ns per connection for the empty one, "
                  f"the measure included.", ""]
        return L

    def split(self, k):
        """A GSO row k at both lengths: runs per connection (n, nl), ns per connection (t, tl) and
        each packet's cost (P); None without both."""
        pc = self.per_conn
        kl = k[:2] + (REAL_BULK_LONG.get(k[2]),)
        if k not in pc or kl not in pc:
            return None
        t, n = (statistics.median(x) for x in zip(*pc[k]))
        tl, nl = (statistics.median(x) for x in zip(*pc[kl]))
        return (n, nl, t, tl, (tl - t) / (nl - n)) if nl > n else None

    def assign_report(self, med):
        """floor_tc_sk_assign (and _every) beside the working tree's mw_tc_ingress and mw_tc_egress on
        the same traffic: per packet (test run, real 64-byte, each GSO packet's P), per SYN (test
        run), per short connection (ns per run x runs per connection)."""
        A, E = FLOOR_ASSIGN

        def ns(b, prog, what):
            return med.get((b, prog, what))

        def per_conn(b, prog, what):
            k = (b, prog, what)
            return med[k] * statistics.median(self.per_call[k]) if k in med else None

        def gso(b, prog, what):
            x = self.split((b, prog, what))
            return x[4] if x else None

        def f(x):
            return "-" if x is None else f"{x:,.0f}"

        def both(x, y):
            return None if x is None or y is None else x + y
        rows = []
        for label, get, i_what, o_what, a_what in [
                ("a flow's packet, test run (ns)", ns, "flow packet in", "flow packet out", "flow packet in"),
                ("a SYN, test run (ns)", ns, "SYN to the pod", None, "SYN to the pod"),
                ("real packets, 64-byte round trips (ns per packet)", ns, REAL_IN, REAL_OUT, ASSIGN_IN),
                ("real GSO packets, each packet's cost P (ns)", gso, REAL_BULK_IN, REAL_BULK_OUT, ASSIGN_BULK),
                ("a short connection, all its packets (ns per connection)", per_conn, SHORT_IN, SHORT_OUT, SHORT_ASSIGN)]:
            i = get("new", "mw_tc_ingress", i_what)
            o = get("new", "mw_tc_egress", o_what) if o_what else None
            x, y = get("floor", A, a_what), get("floor", E, a_what)
            if i is None and x is None:
                continue
            rows.append(f"| {label} | {f(i)} | {f(o)} | {f(both(i, o) if o_what else i)} | {f(x)} | {f(y)} |")
        if not rows:
            return []
        runs = {k[1]: statistics.median(self.per_call[k]) for k in self.per_call
                if k[2] in SHORT and k[0] in ("new", "floor")}
        L = ["## Inbound without a rewrite: bpf_sk_assign's floor beside today's tc programs", "",
             f"`{A}` (hooks_floor.c): at tc ingress a SYN to port {APP_PORT} is given to the listener on {INBOUND} "
             "with `bpf_sk_assign` (its own 4-tuple looked up first, then the listener, `bpf_skc_lookup_tcp`); "
             "every other packet is parsed and passed, no egress program. "
             f"`{E}`: the same with every packet to port {APP_PORT} looked up by its own 4-tuple (what the kernel's "
             "selftest and TPROXY do; it closes the SYN-cookie gap, at a lookup per packet). Today's programs: the "
             "working tree's, on the same traffic in the same rounds; the app's port has a listener of its own, as in a pod.",
             ""]
        if self.assign_proof:
            L += [f"Proof of the steering: {self.assign_proof}; and in every round every connection of the sk_assign rows "
                  f"was accepted by the listener on {INBOUND} with local port {APP_PORT}, none by the app's listener.", ""]
        if self.assign_test_run is not None:
            L += ["In a test run (`BPF_PROG_TEST_RUN`) the SYN's `bpf_sk_assign` "
                  + ("was refused (the program dropped it as `TC_ACT_STOLEN`: the helper answers -EOPNOTSUPP "
                     "outside tc ingress, and a test run's skb is not at ingress): the test-run SYN row is the parse "
                     "and the two lookups with a refused assign; the assign's own cost is in the real-packet rows only."
                     if self.assign_test_run == 4 else
                     "found no listener (`TC_ACT_SHOT`)." if self.assign_test_run == 2 else
                     f"succeeded (verdict {self.assign_test_run})."), ""]
        L += ["Per packet, today's two columns are a packet in and a packet out (a round trip's pair); the sk_assign "
              "floors have no program out (0 ns there). The SYN's row has no packet out (the SYN-ACK is not a fixture "
              "frame). Every figure includes the measure's own cost (the empty program's, above).", "",
              "| what | `mw_tc_ingress` | `mw_tc_egress` | today, in + out | "
              f"`{A}`, in (out: no program) | `{E}`, in (out: no program) |", "|---|---|---|---|---|---|"] + rows + [""]
        if runs:
            L += ["Runs per short connection (both directions' where attached): "
                  + ", ".join(f"`{n}` {r:.1f}" for n, r in runs.items()) + ".", ""]
        return L

    def per_packet_report(self):
        """The GSO rows at both connection lengths: a connection of n runs costs F + n x P, so
        P (each packet's cost) = the difference of their costs per connection over the
        difference of their runs, F = what a connection costs once beyond that."""
        rows = []
        for k in self.per_conn:
            if k[2] not in REAL_BULK_LONG or not self.split(k):
                continue
            n, nl, t, tl, p = self.split(k)
            rows.append(f"| {k[0]} `{k[1]}` | {k[2].split(':')[0].replace(', 64 KiB writes each way (GSO', ' (GSO')} | "
                        f"{n:.0f} / {nl:.0f} | {t / n:.0f} / {tl / nl:.0f} | {p:.0f} | {(t - n * p) / 1000:.1f} |")
        if not rows:
            return []
        return ["## GSO packets: each packet's cost and each connection's", "",
                f"The 64 KiB rows above again on connections {LONG} times longer (one connection per row "
                "and round, from a peer port of its own; the floor's `mw_flow4` holds that connection's flow, "
                "so its lookup finds the entry as the datapath's does). A connection of n runs costs F + n x P: "
                "P, each packet's cost, from the two lengths' medians; F, what a connection costs once beyond "
                "its packets (set-up and close, and the first packets after the client's start, on cold caches).",
                "", "| build, program | what it runs on | runs per connection | ns per run | each packet (P, ns) "
                "| each connection (F, us) |", "|---|---|---|---|---|---|"] + rows + [""]

    def cleanup(self):
        for x in self.socks + ([self.listener] if self.listener is not None else []):
            x.close()
        if self.peer is not None:
            self.peer.kill()
            self.peer.wait()
        for fd in self.fds:
            os.close(fd)
        if self.stats_fd is not None:
            os.close(self.stats_fd)
        for cg in self.cgroups:  # their programs go with them
            try:
                os.rmdir(cg)
            except OSError as e:
                log(f"hooks: could not remove {cg}: {e}")
        subprocess.run(["rm", "-rf", self.work])
        # The namespaces and bpffs mounts are this process's and the peer's: they go with them.
        left = [cg for cg in self.cgroups if os.path.exists(cg)] + [self.work] * os.path.exists(self.work)
        if self.peer is not None and self.peer.poll() is None:
            left.append(f"the peer's namespace (process {self.peer.pid})")
        log("clean-up: nothing left" if not left else f"clean-up LEFT: {left}")
