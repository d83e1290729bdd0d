"""Where tc ingress's time goes on real GSO packets: bpf/bpf_tc.c with one part of its path
cut at a time, beside the floor's helpers, on the same traffic, in one run.

    python3 tools/bench/tc_ablate.py [--rounds 9] [--short 50] [--long 400] [--variants a,b]

Root; run from the workspace (it compiles the working tree's bpf/ with tools/bpf_cc.sh).
Not a test and not a shipped path: each variant below is an edit of a copy of the sources
that breaks what the datapath must do (no close, no rewrite ...), made only to see what
that part costs. Uses --mode hooks' machinery (tools/bench/hooks.py): its own mount and
network namespaces, a veth to a peer process, each program attached with tcx in turn,
bpf_stats switched on for this process only, pinned to CPU 0.

The traffic: connections from the peer, 64 KiB written and read back each way (TCP sends
them over the veth as GSO packets), each from a peer port of its own. Every variant but
"steered" gets a connection that goes straight to POD:INBOUND, its flow put into mw_flow4
beforehand with orig_port = INBOUND, and the pod's address not registered, so its SYN is
not steered and every later packet takes the established path, whose rewrite writes back
the port that is there: every variant passes the same traffic, whatever it cuts.
"steered" is the real thing: the pod registered, the connection to POD:APP_PORT, its SYN
steered to the inbound port by the program. The floor: tools/bench/hooks_floor.c's empty
program, flow lookup (its mw_flow4 holds the connection's flow: the lookup finds it) and
rewrite (the same port written back), on ingress, the empty program on egress.

Each variant runs connections of two lengths (--short and --long round trips): a
connection of n runs costs F + n x P; P (each packet's cost) and F (what a connection
costs once: set-up, close, and its first packets after the client's start, on cold
caches) come from the medians of the two.
"""

import argparse
import os
import socket
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hooks  # noqa: E402
from bench import Fatal, machine_busy  # noqa: E402
from hooks import (BPF_ENABLE_STATS, BPF_PROG_ATTACH, BPF_PROG_DETACH, BPF_TCX_EGRESS,  # noqa: E402
                   BPF_TCX_INGRESS, CLONE_NEWNET, CLONE_NEWNS, MS_PRIVATE, MS_REC, Hooks, bpf,
                   flow4_key, libc, map_update)

# name -> (what it cuts, [(text in bpf_tc.c or lib/meshwire_l4.h, replacement)])
VARIANTS = {
    "steered": ("nothing; the connection's SYN steered by the program", []),
    "steered_no_excl": ("steered; the SYN's excluded-port checks (mw_excl_in4, mw_pods)", [
        ("\tif (mw_in_port_excluded_at(mw_tc_daddr(t, is6), is6, *pod_cookie, port)) {",
         "\tif (0 && mw_in_port_excluded_at(mw_tc_daddr(t, is6), is6, *pod_cookie, port)) {")]),
    "steered_no_fin_delete": ("steered; the handshake's mw_flow4_fin delete", [
        ("\tbpf_map_delete_elem(mw_flow_fins(is6), key);\n\tbpf_map_delete_elem(mw_flow_syns(is6), key);\n\tflow =",
         "\tbpf_map_delete_elem(mw_flow_syns(is6), key);\n\tflow =")]),
    "steered_no_old": ("steered; the SYN's lookup of an earlier flow", [
        ("\told = bpf_map_lookup_elem(mw_flows(is6), key);\n\tif (old &&", "\told = NULL;\n\tif (old &&")]),
    "full": ("nothing; the flow put there beforehand", []),
    "parse_only": ("all after the parse and the flow key", [
        ("\treturn mw_tc_ingress_tcp(skb, &t, &key, 0);\n}\n\nSEC(\"tc\")\nint mw_tc_egress",
         "\treturn key.remote_port == 1 ? TC_ACT_OK : TC_ACT_UNSPEC;\n}\n\nSEC(\"tc\")\nint mw_tc_egress")]),
    "copy_parse": ("the parse in place (bpf_skb_load_bytes instead)", [
        ("\tparsed = mw_parse_tcp4(skb, &t);",
         "\tparsed = skb->protocol == bpf_htons(ETH_P_IP) ? mw_parse_tcp4_copy(skb, &t) : MW_PARSE_OTHER;")]),
    "parse_lookup": ("all after the flow lookup", [
        ("\tflow = bpf_map_lookup_elem(mw_flows(is6), key);\n\t/* Same peer",
         "\tflow = bpf_map_lookup_elem(mw_flows(is6), key);\n\tif (flow)\n\t\treturn TC_ACT_UNSPEC;\n\t/* Same peer")]),
    "no_close": ("the close tracking (mw_flow4_fin)", [
        ("\tint over = mw_flow_track_close(key, flow, t, ingress, is6);",
         "\tint over = 0 && mw_flow_track_close(key, flow, t, ingress, is6);")]),
    "no_rewrite": ("ingress's rewrite (store and checksum)", [
        ("\tif (mw_tc_rewrite(skb, t, orig_port, ingress, is6))\n\t\treturn TC_ACT_SHOT;\n\tif (over) {",
         "\tif (!ingress && mw_tc_rewrite(skb, t, orig_port, ingress, is6))\n\t\treturn TC_ACT_SHOT;\n\tif (over) {")]),
    "no_store": ("bpf_skb_store_bytes of the port", [
        ("\tif (bpf_skb_store_bytes(skb, t->l4_off + port_off, &to, sizeof(to), 0))\n\t\treturn -1;\n", "")]),
    "no_csum": ("bpf_l4_csum_replace", [
        ("\tif (bpf_l4_csum_replace(skb, t->l4_off + MW_TCP_CSUM_OFF, from, to, sizeof(to)))\n\t\treturn -1;\n", "")]),
}
FLOOR = ["floor_tc_empty", "floor_tc_flow_lookup", "floor_tc_flow_lookup_hash", "floor_tc_rewrite_same"]


def variant_src(h, name):
    """A copy of bpf_tc.c and bpf/lib with the variant's edits; each must match once."""
    d = os.path.join(h.work, "v-" + name)
    os.makedirs(d)
    h.run(["cp", "-r", os.path.join(h.ws, "bpf", "lib"), os.path.join(h.ws, "bpf", "bpf_tc.c"), d])
    files = [os.path.join(d, "bpf_tc.c"), os.path.join(d, "lib", "meshwire_l4.h")]
    texts = {f: open(f).read() for f in files}
    for old, new in VARIANTS[name][1]:
        hit = [f for f in files if texts[f].count(old) == 1]
        if len(hit) != 1:
            raise Fatal(f"variant {name}: its edit no longer matches the sources: {old[:60]!r}")
        texts[hit[0]] = texts[hit[0]].replace(old, new)
    for f in files:
        open(f, "w").write(texts[f])
    return files[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--short", type=int, default=50, help="round trips of the short connections")
    ap.add_argument("--long", type=int, default=400, help="round trips of the long connections")
    ap.add_argument("--size", type=int, default=65536, help="bytes written each way per round trip")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    a = ap.parse_args()
    names = a.variants.split(",")
    for n in names:
        if n not in VARIANTS:
            raise SystemExit(f"tc_ablate: no variant {n!r} (known: {', '.join(VARIANTS)})")
    h = Hooks(a)
    os.sched_setaffinity(0, {0})
    if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0 or \
            libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise SystemExit("tc_ablate: unshare or mount failed (root?)")
    try:
        run(h, a, names)
    finally:
        h.cleanup()


def run(h, a, names):
    h.run(["ip", "link", "set", "lo", "up"])
    ns = h.veth()
    loaded = {}
    for name in names:
        obj = h.compile(variant_src(h, name), os.path.join(h.work, f"{name}.bpf.o"))
        loaded[name] = h.load(name, obj)
    floor_obj = h.compile(os.path.join(h.ws, "tools", "bench", "hooks_floor.c"), os.path.join(h.work, "floor.bpf.o"),
                          ["-I", os.path.join(h.ws, "bpf", "lib")])
    for f in FLOOR:
        progs, maps = h.load(f, floor_obj)
        loaded[f] = ({"mw_tc_ingress": progs[f], "mw_tc_egress": None}, maps)
    empty = loaded["floor_tc_empty"][0]["mw_tc_ingress"]
    for name in loaded:
        if name.startswith("steered"):
            map_update(loaded[name][1]["mw_pod_ips"], socket.inet_aton(hooks.POD), struct.pack("Q", hooks.COOKIE))
    client = hooks.veth_client(a.size)
    stats_fd, _ = bpf(BPF_ENABLE_STATS, struct.pack("I", 0))
    h.fds.append(stats_fd)
    res = {}  # (variant, round trips, in/out) -> [(ns, runs) per connection]
    busy0, t0 = machine_busy(), time.time()
    order = [(v, k) for v in loaded for k in (a.short, a.long)]
    port = 43000
    for r in range(a.rounds):
        for name, k in (order if r % 2 == 0 else order[::-1]):  # every other round reversed
            progs, maps = loaded[name]
            ing, eg = progs["mw_tc_ingress"], progs["mw_tc_egress"] or empty
            port += 1
            dport = hooks.APP_PORT if name.startswith("steered") else hooks.INBOUND
            if not name.startswith("steered"):
                fmap = maps["floor_flow4_hash" if name == "floor_tc_flow_lookup_hash" else "mw_flow4"]
                map_update(fmap, flow4_key(hooks.PEER, hooks.POD, port),
                           struct.pack("!H", hooks.INBOUND) + b"\0" * 6)
            before = [h.stats(p["id"]) for p in (ing, eg)]
            h.tcx(BPF_PROG_ATTACH, ing, BPF_TCX_INGRESS)
            h.tcx(BPF_PROG_ATTACH, eg, BPF_TCX_EGRESS)
            try:
                h.run(ns + ["python3", "-c", client, str(k), str(port), str(dport)], timeout=120)
            finally:
                h.tcx(BPF_PROG_DETACH, ing, BPF_TCX_INGRESS)
                h.tcx(BPF_PROG_DETACH, eg, BPF_TCX_EGRESS)
            after = [h.stats(p["id"]) for p in (ing, eg)]
            for d, b, e in zip(("in", "out"), before, after):
                if d == "out" and progs["mw_tc_egress"] is None:
                    continue
                if e[1] <= b[1]:
                    raise Fatal(f"{name}: the program did not run")
                res.setdefault((name, k, d), []).append((e[0] - b[0], e[1] - b[1]))
    busy = (machine_busy() - busy0) / (time.time() - t0) / os.cpu_count()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, main's bpf/ in the working tree; the machine "
          f"{busy:.0%} busy; {a.rounds} rounds; connections of {a.short} and {a.long} round trips of "
          f"{a.size} bytes each way; ns per run: bpf_stats, median of the rounds (min-max)\n")
    print(f"| variant (what it cuts) | dir | ns per run, {a.short} round trips | {a.long} round trips | "
          "runs per connection | each packet (P, ns) | each connection (F, us) |")
    print("|---|---|---|---|---|---|---|")
    for name in loaded:
        for d in ("in", "out"):
            if (name, a.short, d) not in res:
                continue
            lo, hi = res[(name, a.short, d)], res[(name, a.long, d)]
            per = [[t / c for t, c in v] for v in (lo, hi)]
            tl, cl = (statistics.median(x) for x in zip(*lo))
            th, ch = (statistics.median(x) for x in zip(*hi))
            p = (th - tl) / (ch - cl)
            what = VARIANTS[name][0] if name in VARIANTS else "floor"
            print(f"| {name} ({what}) | {d} | " + " | ".join(
                f"{statistics.median(x):.0f} ({min(x):.0f}-{max(x):.0f})" for x in per)
                + f" | {cl:.0f} / {ch:.0f} | {p:.0f} | {(tl - cl * p) / 1000:.1f} |")


if __name__ == "__main__":
    main()
