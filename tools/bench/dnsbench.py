"""DNS capture's cost (issue 14): queries/s and CPU per query through the
pod's DNS proxy, iptables mode and eBPF mode side by side in one run.

    ./bazelw run //tools/bench -- --mode dns    -> docs/benchmark-dns.md, docs/benchmark-dns.json

Topology (10.242.0.0/16 and fd00:242::/48, in namespaces made here):

    plain 10.242.1.2 fd00:242:1::2 \
    ipt   10.242.2.2 fd00:242:2::2 -- node: the real resolver (dnsmasq) on
    ebpf  10.242.3.2 fd00:242:3::2 /        10.242.0.53 and fd00:242::53

Each pod runs the DNS proxy its sidecar would (dnsmasq as UID 1500 on
127.0.0.1:15053 and [::1]:15053, no cache: it answers bench.mesh.test itself
and would forward any other name to the resolver) and dnsperf (UDP, one
client socket, 16 queries outstanding), both pinned to CPU 0 so that the
CPU per query holds from run to run (docs/benchmarking.md says why):

    direct    pod plain, not meshed: dnsperf asks the proxy at 127.0.0.1:15053
              ([::1]:15053) itself: what the proxy and the client cost alone
    iptables  pod ipt, meshed with DNS capture by a loader in iptables mode:
              dnsperf asks the resolver, nat REDIRECT (ip6tables for IPv6) and
              conntrack take each query to the proxy and its answer back
    ebpf      pod ebpf, meshed with DNS capture by a loader in eBPF mode:
              cgroup/sendmsg4/6 and recvmsg4/6 do the same per datagram

The modes are interleaved (their order rotates every repetition), IPv4 then
IPv6 in each. CPU per query is the pod's cgroup CPU time (client and proxy)
over the queries dnsperf completed. Every measured run proves its path: the
proxy's own count of queries it answered (dnsmasq's statistics, SIGUSR1)
grew by at least the queries dnsperf completed, the real resolver logged no
query for the name, dnsperf lost none; in eBPF mode dns_redirected grew by
at least as many and dns_error did not (dns_restored is shown: dnsperf reads
its answers without asking for their source, so recvmsg has nothing to
restore); in iptables mode the pod's REDIRECT rule saw the flow (dnsperf
sends from one socket: one conntrack flow). UDP only: dnsmasq answers DNS
over TCP in child processes whose counts its statistics do not hold. A run that fails its proof is not
a figure.
"""

import json
import os
import re
import statistics
import time

from bench import Fatal, UID, log, machine, machine_busy, fmt
from live import Live

NET, NET6 = "10.242", "fd00:242"
RESOLVER, RESOLVER6 = f"{NET}.0.53", f"{NET6}::53"
NAME, PROXY_ANSWER = "bench.mesh.test", f"{NET}.77.2"
DNS_PORT = 15053
PODS = {"plain": 1, "ipt": 2, "ebpf": 3}
MODE_POD = {"direct": "plain", "iptables": "ipt", "ebpf": "ebpf"}
MODES = ["direct", "iptables", "ebpf"]
FAMILIES = ["IPv4", "IPv6"]
OUTSTANDING = 16
DNSMASQ = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
           "--pid-file=", "--bind-interfaces"]


class Dns(Live):
    def __init__(self, args):
        super().__init__(args)
        self.rows = []           # one per measured run
        self.proxies = {}        # pod -> Popen
        self.resolver = None

    # ------------------------------------------------------------------- setup
    def cgroup(self, pod):
        return f"{self.cg_root}/mesh-{pod}/{pod}" if pod != "plain" else f"{self.cg_root}/plain/{pod}"

    def in_pod(self, pod, mode, cmd, pin=None):
        pre = ["sh", "-c", 'echo $$ >"$1/cgroup.procs" || exit 125; shift; exec "$@"', "in-pod", self.cgroup(pod),
               "ip", "netns", "exec", self.ns(pod)]
        return pre + (["taskset", "-c", str(pin)] if pin is not None else []) + cmd

    def setup(self):
        cg2 = self.prepare("dns", ("dnsmasq", "dnsperf", "ip", "taskset", "iptables-save", "ip6tables-save"), ("loader",))
        self.cg_root = f"{cg2}/{self.P}-dns"
        for d in ["", "/plain", "/plain/plain", "/mesh-ipt", "/mesh-ipt/ipt", "/mesh-ebpf", "/mesh-ebpf/ebpf", "/node"]:
            os.mkdir(self.cg_root + d)
            self.cgroups.append(self.cg_root + d)
        node = self.ns("node")
        self.run(["ip", "netns", "add", node])
        self.ns_made.append(node)
        self.run(["ip", "-n", node, "-b", "-"], input=f"link set lo up\naddr add {RESOLVER}/32 dev lo\naddr add {RESOLVER6}/128 dev lo\n")
        for pod, k in PODS.items():
            ns = self.ns(pod)
            self.run(["ip", "netns", "add", ns])
            self.ns_made.append(ns)
            self.run(["ip", "-n", ns, "-b", "-"], input=(
                f"link set lo up\nlink add eth0 type veth peer name v{pod} netns {node}\n"
                f"addr add {NET}.{k}.2/24 dev eth0\naddr add {NET6}:{k}::2/64 dev eth0 nodad\nlink set eth0 up\n"
                f"route add default via {NET}.{k}.1\nroute add default via {NET6}:{k}::1 dev eth0\n"))
            self.run(["ip", "-n", node, "-b", "-"], input=(
                f"addr add {NET}.{k}.1/24 dev v{pod}\naddr add {NET6}:{k}::1/64 dev v{pod} nodad\nlink set v{pod} up\n"))
        # The real resolver: it must never see the benchmark's name.
        self.resolver_log = f"{self.work}/resolver-queries.log"
        self.resolver = self.start("resolver", ["sh", "-c", 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"', "cg",
                                                f"{self.cg_root}/node", "ip", "netns", "exec", node, *DNSMASQ,
                                                "--user=root", f"--listen-address={RESOLVER}", f"--listen-address={RESOLVER6}",
                                                "--port=53", f"--address=/{NAME}/{NET}.77.1", "--log-queries",
                                                f"--log-facility={self.resolver_log}"])
        self.wait_listen("node", 53, self.resolver, "the real resolver (dnsmasq)")
        os.chmod(self.work, 0o711)
        for pod in PODS:
            self.start_proxy(pod)
        self.start_loader("ipt", "iptables")
        self.start_loader("ebpf", "ebpf")
        with open(f"{self.work}/queries.txt", "w") as f:
            f.write(f"{NAME} A\n")

    def start_proxy(self, pod):
        logf = f"{self.work}/proxy-{pod}.log"
        open(logf, "w").close()
        os.chmod(logf, 0o666)
        cmd = ["setpriv", "--reuid", str(UID), "--regid", str(UID), "--clear-groups", *DNSMASQ,
               "--listen-address=127.0.0.1", "--listen-address=::1", f"--port={DNS_PORT}", "--cache-size=0",
               f"--address=/{NAME}/{PROXY_ANSWER}", f"--server={RESOLVER}", f"--log-facility={logf}"]
        p = self.start(f"proxy-{pod}", self.in_pod(pod, None, cmd, pin=0))
        self.proxies[pod] = (p, logf)
        self.wait_listen(pod, DNS_PORT, p, "the DNS proxy (dnsmasq)")

    def start_loader(self, node, mode):
        """A loader of its own (live.py's), in `mode`, with DNS capture's port;
        its pod meshed with DNS capture. interception.ipv6 stays the default
        ("intercept"): IPv6 DNS is captured whatever it says."""
        Live.start_loader(self, node, mode, extra=f"[dns]\nport = {DNS_PORT}\n")
        k = PODS[node]
        self.mwl(node, "pod", "add", "--netns", f"/run/netns/{self.ns(node)}", "--ip", f"{NET}.{k}.2",
                 "--ip", f"{NET6}:{k}::2", "--dns-capture", "true", "--id", f"bench-{node}")

    # ------------------------------------------------------------------ proofs
    def proxy_answered(self, pod):
        """The proxy's own count of the queries it answered (SIGUSR1 statistics)."""
        p, logf = self.proxies[pod]
        before = open(logf).read().count("queries answered locally")
        os.kill(self.proxy_pid(p), 10)
        for _ in range(100):
            text = open(logf).read()
            if text.count("queries answered locally") > before:
                return int(re.findall(r"queries answered locally (\d+)", text)[-1])
            time.sleep(0.02)
        raise Fatal(f"the DNS proxy of {pod} printed no statistics (see {logf})")

    def proxy_pid(self, p):
        """dnsmasq's PID: the wrapper shell exec()s through ip netns exec,
        taskset and setpriv, so it is the process started here."""
        comm = open(f"/proc/{p.pid}/comm").read().strip()
        if comm != "dnsmasq":
            raise Fatal(f"process {p.pid} started as the DNS proxy is {comm}, not dnsmasq")
        return p.pid

    def resolver_saw(self):
        try:
            return len(re.findall(rf"query\[\w+\] {re.escape(NAME)} from", open(self.resolver_log).read()))
        except OSError:
            return 0

    def bpf(self):
        out = self.mwl("ebpf", "stats")
        return {k: int(v) for k, v in (l.split() for l in out.splitlines() if len(l.split()) == 2)}

    def redirect_hits(self, v6):
        save = "ip6tables-save" if v6 else "iptables-save"
        out = self.run(["ip", "netns", "exec", self.ns("ipt"), save, "-c", "-t", "nat"], check=False)
        return sum(int(m.group(1)) for m in re.finditer(r"\[(\d+):\d+\] -A MESHWIRE_OUTPUT .*-p udp .*--dport 53 .*REDIRECT", out))

    def cpu(self, pod):
        st = dict(l.split() for l in open(f"{self.cgroup(pod)}/cpu.stat") if len(l.split()) == 2)
        return int(st["usage_usec"]), int(st["system_usec"])

    # ------------------------------------------------------------- measurement
    def measure(self, mode, family, rep):
        pod, v6 = MODE_POD[mode], family == "IPv6"
        server = ("::1" if v6 else "127.0.0.1") if mode == "direct" else (RESOLVER6 if v6 else RESOLVER)
        port = DNS_PORT if mode == "direct" else 53
        cmd = ["dnsperf", "-f", "inet6" if v6 else "inet", "-s", server, "-p", str(port), "-d", f"{self.work}/queries.txt",
               "-l", str(max(1, round(self.args.seconds))), "-c", "1", "-q", str(OUTSTANDING), "-t", "2"]
        row = {"mode": mode, "family": family, "rep": rep}
        answered, seen = self.proxy_answered(pod), self.resolver_saw()
        b = self.bpf() if mode == "ebpf" else None
        hits = self.redirect_hits(v6) if mode == "iptables" else None
        (u0, s0), busy0, t0 = self.cpu(pod), machine_busy(), time.monotonic()
        p = self.run(self.in_pod(pod, mode, cmd, pin=0), timeout=self.args.seconds + 60, check=False)
        (u1, s1), busy1, t1 = self.cpu(pod), machine_busy(), time.monotonic()
        m = {k: re.search(rf"{k}:\s+([\d.]+)", p) for k in ("Queries completed", "Queries lost", "Queries per second")}
        if any(v is None for v in m.values()):
            row["error"] = f"dnsperf said: {p.strip()[-300:]}"
            return row
        done, lost, qps = int(m["Queries completed"].group(1)), int(m["Queries lost"].group(1)), float(m["Queries per second"].group(1))
        row.update(queries=done, lost=lost, qps=qps, cpu_us=(u1 - u0) / max(done, 1), sys_us=(s1 - s0) / max(done, 1),
                   load=(busy1 - busy0) / max((t1 - t0) * os.cpu_count(), 1e-9))
        proofs = []
        got = self.proxy_answered(pod) - answered
        row["proxy_answered"] = got
        if got < done:
            proofs.append(f"the proxy answered {got} queries, dnsperf completed {done}")
        row["resolver_saw"] = self.resolver_saw() - seen
        if row["resolver_saw"]:
            proofs.append(f"the real resolver saw {row['resolver_saw']} queries for {NAME}")
        if lost:
            proofs.append(f"dnsperf lost {lost} queries")
        if b is not None:
            a = self.bpf()
            d = {k: a.get(k, 0) - b.get(k, 0) for k in ("dns_redirected", "dns_restored", "dns_error")}
            row.update(d)
            # dnsperf reads answers without asking where they came from
            # (recvfrom with no address), so recvmsg's restore does not run.
            if d["dns_redirected"] < done or d["dns_error"]:
                proofs.append(f"BPF counters {d} for {done} queries")
        if hits is not None:
            row["redirect_hits"] = self.redirect_hits(v6) - hits
            if row["redirect_hits"] < 1:
                proofs.append("the pod's REDIRECT rule saw no flow")
        if proofs:
            row["error"] = "; ".join(proofs)
        return row

    def main(self):
        t0 = time.monotonic()
        self.setup()
        for rep in range(self.args.reps):
            order = MODES[rep % len(MODES):] + MODES[:rep % len(MODES)]
            for family in FAMILIES:
                for mode in order:
                    row = self.measure(mode, family, rep)
                    self.rows.append(row)
                    log(f"rep {rep + 1} {family} {mode:8s} " + (f"FAILED: {row['error']}" if "error" in row else
                        f"{row['qps']:9.0f} q/s  {row['cpu_us']:6.1f} us CPU/query  proxy answered {row['proxy_answered']}"))
        self.elapsed = time.monotonic() - t0
        report(self)


# ---------------------------------------------------------------------- report
def report(s):
    a, m = s.args, machine()
    good = [r for r in s.rows if "error" not in r]
    med = lambda mode, fam, key: [r[key] for r in good if r["mode"] == mode and r["family"] == fam]

    def cell(v):
        return f"{fmt(statistics.median(v))} ({fmt(min(v))}-{fmt(max(v))})" if v else "-"

    L = ["# DNS capture: queries through the pod's DNS proxy", "",
         f"From `./bazelw run //tools/bench -- --mode dns` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
         f"{' (' + a.note + ')' if a.note else ''}: {m['cpu']}, Linux {m['kernel']}; {a.reps} repetitions of "
         f"{a.seconds:g} s per mode and family, {s.elapsed:.0f} s in all. dnsperf (UDP, {OUTSTANDING} queries outstanding) "
         "and the DNS proxy (dnsmasq, UID 1500, answering the name itself) in one pod, both pinned to CPU 0; "
         "**direct**: dnsperf asks the proxy at its own address (no capture: the floor); **iptables** and **ebpf**: "
         "dnsperf asks the resolver and meshwire's DNS capture takes the query to the proxy and the answer back. "
         "Median (min-max) over the repetitions; CPU is the pod's (client and proxy) per completed query. "
         "How it measures and what proves each run: [benchmarking.md](benchmarking.md#dns-capture).", "",
         "| family | mode | queries/s | CPU per query (us) | of which system (us) | over direct (us CPU) | machine busy |",
         "|---|---|---|---|---|---|---|"]
    for fam in FAMILIES:
        base = med("direct", fam, "cpu_us")
        for mode in MODES:
            cpu = med(mode, fam, "cpu_us")
            over = fmt(statistics.median(cpu) - statistics.median(base)) if cpu and base and mode != "direct" else "-"
            busy = med(mode, fam, "load")
            L.append(f"| {fam} | {mode} | {cell(med(mode, fam, 'qps'))} | {cell(cpu)} | {cell(med(mode, fam, 'sys_us'))} | "
                     f"{over} | {fmt(100 * statistics.median(busy)) + ' %' if busy else '-'} |")
    L += [""]
    for fam in FAMILIES:
        ipt, ebpf, base = (med(x, fam, "cpu_us") for x in ("iptables", "ebpf", "direct"))
        qi, qe = med("iptables", fam, "qps"), med("ebpf", fam, "qps")
        if ipt and ebpf and base:
            oi, oe = statistics.median(ipt) - statistics.median(base), statistics.median(ebpf) - statistics.median(base)
            L.append(f"- **{fam}**: eBPF mode {fmt(statistics.median(qe))} queries/s, iptables mode {fmt(statistics.median(qi))} "
                     f"({fmt(statistics.median(qe) / statistics.median(qi))}x); CPU per query {fmt(statistics.median(ebpf))} us vs "
                     f"{fmt(statistics.median(ipt))} us: capture costs {fmt(oe)} us per query over direct in eBPF mode, "
                     f"{fmt(oi)} us in iptables mode.")
    L += ["", "queries/s is wall-clock: the pinned CPU also ran whatever else the machine did (the machine busy column: "
          "all processes, this run's included), so it moves from one repetition to the next; the CPU per query holds "
          "and is the figure to compare.",
          "", "Each run's proof (the proxy's own answered count, the real resolver's log, the BPF counters or the "
          "REDIRECT rule's hits):", "",
          "| rep | family | mode | queries | proxy answered | resolver saw | eBPF dns_redirected / dns_restored / dns_error | REDIRECT flows | verdict |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in s.rows:
        bpf = f"{r['dns_redirected']} / {r['dns_restored']} / {r['dns_error']}" if "dns_redirected" in r else "-"
        L.append(f"| {r['rep'] + 1} | {r['family']} | {r['mode']} | {r.get('queries', '-')} | {r.get('proxy_answered', '-')} | "
                 f"{r.get('resolver_saw', '-')} | {bpf} | {r.get('redirect_hits', '-')} | {'FAILED: ' + r['error'] if 'error' in r else 'ok'} |")
    out = a.out
    with open(out, "w") as f:
        f.write("\n".join(L) + "\n")
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"machine": m, "rows": s.rows, "seconds": a.seconds, "reps": a.reps}, f, indent=1)
    log(f"report: {out}")
    if len(good) != len(s.rows):
        raise Fatal(f"{len(s.rows) - len(good)} runs failed their proof (see {out})")
