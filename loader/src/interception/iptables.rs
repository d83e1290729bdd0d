//! The iptables interception mode (`interception.mode = "iptables"`): a meshed
//! pod gets netfilter rules in its own network namespace instead of BPF map
//! entries, like the default mode of osm-edge and istio-cni.
//!
//! docs/interception.md lists the rules a pod gets (nat: `MESHWIRE_INBOUND`,
//! `MESHWIRE_OUTPUT`; filter: the capture ports' guard `MESHWIRE_GUARD_IN`,
//! `MESHWIRE_GUARD_OUT`; IPv6; DNS capture's nat rules and raw zones) as
//! iptables-save prints them; the test `iptables_doc` below generates those
//! listings from a real namespace and fails when the doc differs.
//!
//! A pod with include lists (Istio's includeOutboundIPRanges,
//! includeOutboundPorts, includeInboundPorts) gets, in place of each final
//! REDIRECT, one per included port and range, as istio-iptables writes them;
//! what they do not name falls off the chain and goes direct:
//!
//! ```text
//! -A MESHWIRE_OUTPUT -p tcp -m tcp --dport 443 -j REDIRECT --to-ports 15001
//! -A MESHWIRE_OUTPUT -d 10.96.0.0/12 -p tcp -j REDIRECT --to-ports 15001
//! -A MESHWIRE_INBOUND -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 15003
//! ```
//!
//! A pod with DNS capture (`[dns] capture`, the pod's `dns_capture`) gets its
//! DNS to port 53 redirected to the sidecar's DNS proxy first, UDP through a
//! jump of its own, as istio-iptables does it (conntrack then answers with the
//! resolver's address); with `[dns] servers`, one pair per resolver, `-d`:
//!
//! ```text
//! -A OUTPUT -p udp -j MESHWIRE_OUTPUT
//! -A MESHWIRE_OUTPUT -p udp -m udp --dport 53 -m owner ! --uid-owner 1500 -j REDIRECT --to-ports 15053
//! -A MESHWIRE_OUTPUT -p tcp -m tcp --dport 53 -m owner ! --uid-owner 1500 -j REDIRECT --to-ports 15053
//! ```
//!
//! Those rules see IPv4 only (v4-mapped addresses included). Native IPv6
//! gets what `interception.ipv6` says:
//!
//! - `"intercept"` (the default): the same rules in the IPv6 tables (ip6tables nat, filter
//!   and raw), with `::1/128` for the loopback, the IPv6 exclusion ranges
//!   (`-d fd00::/8`) and the same chain names. REDIRECT sends outbound
//!   connections to `[::1]:15001` and inbound ones to the pod's own address at
//!   15003, and the kernel's conntrack answers `IP6T_SO_ORIGINAL_DST`. The
//!   include lists' IPv6 ranges go in the IPv6 rules, their IPv4 ranges in
//!   the IPv4 ones (with include lists, a family with no range listed is
//!   steered by the included ports alone). `[dns] servers` lists IPv4
//!   resolvers: with it, no IPv6 DNS is captured; without, DNS to any IPv6
//!   resolver goes to the DNS proxy at `[::1]:<port>`.
//! - `"refuse"`: refused, as the BPF programs refuse it in the
//!   eBPF mode, by rules in the pod's IPv6 filter table (`MESHWIRE_OUTPUT6`,
//!   `MESHWIRE_INBOUND6`, listed in docs/interception.md):
//!   connect() to a non-loopback IPv6 address by anyone but the sidecar gets
//!   ECONNREFUSED, and SYNs coming in are dropped. Only SYNs (without ACK) are
//!   rejected or dropped: the SYN-ACK answering a connection to an excluded
//!   inbound port, the sidecar's traffic and the RST of the REJECT itself go
//!   out through the same OUTPUT chain, and must pass.
//! - `"pass"`: no IPv6 rules (and ip6tables need not be installed); applying
//!   removes those a previous run left.
//!
//! A kernel without IPv6 has nothing to refuse or steer: no IPv6 rules
//! either; IPv6 without ip6tables (or, for "intercept", without the
//! kernel's IPv6 nat table) is an error that names what is missing and both
//! ways out, before any IPv4 rule is applied.
//!
//! The rules are written as iptables-save prints them, so [`check`] compares
//! them line by line. Everything runs inside the pod's namespace only: a
//! thread enters it with setns(), checks its cookie (the pod's, and never the
//! host's), and the iptables commands are children of that thread, each of
//! which checks again, before exec, that it sits in that namespace. Changes go
//! through `iptables-restore --noflush` and `ip6tables-restore --noflush`,
//! one atomic transaction per table (other rules of the tables are left
//! alone). [`apply`] does IPv6 first, and when a later table fails it puts
//! back what the earlier ones held: the pod never keeps one family's rules
//! without the other's, nor a mix of old and new. Applying is idempotent;
//! removing deletes the jumps and the chains of both families.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::config::{Cidr4, Cidr6, Config, Ipv6Policy};
use super::ebpf::EbpfTc;
use super::pods::{merged, MeshedPod};
use super::Interception;
use crate::error::{Error, OrOs};
use crate::system::{self, NetnsError};

pub const CHAIN_OUT: &str = "MESHWIRE_OUTPUT";
pub const CHAIN_IN: &str = "MESHWIRE_INBOUND";
pub const CHAIN_OUT6: &str = "MESHWIRE_OUTPUT6";
pub const CHAIN_IN6: &str = "MESHWIRE_INBOUND6";
pub const CHAIN_GUARD_OUT: &str = "MESHWIRE_GUARD_OUT";
pub const CHAIN_GUARD_IN: &str = "MESHWIRE_GUARD_IN";
pub const CHAIN_DNS_OUT: &str = "MESHWIRE_DNS_OUT";
pub const CHAIN_DNS_PRE: &str = "MESHWIRE_DNS_PRE";
/// How long iptables may wait for the xtables lock.
const LOCK_WAIT_SECS: &str = "10";
/// A TCP SYN without ACK (a connection's first packet), as iptables-save prints it.
const SYN_ONLY: &str = "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN";

/// One table's part: its commands, its table, our chains and the built-in
/// chains that jump to them.
#[derive(Debug, Clone, Copy)]
struct Family {
    save: &'static str,
    restore: &'static str,
    /// The table, as `-t` names it.
    table: &'static str,
    /// How messages name the table.
    label: &'static str,
    chain_out: &'static str,
    chain_in: &'static str,
    hook_out: &'static str,
    hook_in: &'static str,
    /// IPv6's: a file that exists, for the calling thread, when its network
    /// namespace has the family (a kernel without IPv6 has no
    /// /proc/net/if_inet6). None: IPv4's.
    proc_file: Option<&'static str>,
    /// Pods with DNS capture have UDP jump to `chain_out` too (nat).
    dns: bool,
    /// The protocol the jumps to our chains match.
    proto: &'static str,
}

const V4: Family = Family {
    save: "iptables-save",
    restore: "iptables-restore",
    table: "nat",
    label: "nat",
    chain_out: CHAIN_OUT,
    chain_in: CHAIN_IN,
    hook_out: "OUTPUT",
    hook_in: "PREROUTING",
    proc_file: None,
    dns: true,
    proto: "tcp",
};

/// The IPv4 filter table's guard of the sidecar's capture ports.
const GUARD: Family = Family {
    save: "iptables-save",
    restore: "iptables-restore",
    table: "filter",
    label: "filter",
    chain_out: CHAIN_GUARD_OUT,
    chain_in: CHAIN_GUARD_IN,
    hook_out: "OUTPUT",
    hook_in: "INPUT",
    proc_file: None,
    dns: false,
    proto: "tcp",
};

/// DNS capture's conntrack zones (raw table): the app's DNS flows and the
/// sidecar's own upstream queries are tracked apart.
const RAW: Family = Family {
    save: "iptables-save",
    restore: "iptables-restore",
    table: "raw",
    label: "raw",
    chain_out: CHAIN_DNS_OUT,
    chain_in: CHAIN_DNS_PRE,
    hook_out: "OUTPUT",
    hook_in: "PREROUTING",
    proc_file: None,
    dns: false,
    proto: "udp",
};

/// The IPv6 commands and the file saying the namespace has IPv6; tests
/// swap in missing ones.
#[derive(Debug, Clone, Copy)]
struct Ip6 {
    save: &'static str,
    restore: &'static str,
    /// thread-self: the thread's namespace (self/net is the main thread's).
    proc_file: &'static str,
}

const IP6: Ip6 = Ip6 { save: "ip6tables-save", restore: "ip6tables-restore", proc_file: "/proc/thread-self/net/if_inet6" };

impl Ip6 {
    /// `interception.ipv6 = "intercept"`: IPv4's nat table, guard and zones, in the IPv6 tables.
    fn nat(&self) -> Family {
        self.of(V4, "ip6tables nat")
    }

    fn guard(&self) -> Family {
        self.of(GUARD, "ip6tables filter")
    }

    fn raw(&self) -> Family {
        self.of(RAW, "ip6tables raw")
    }

    /// `interception.ipv6 = "refuse"`: the filter table's refusal.
    fn refuse(&self) -> Family {
        Family { chain_out: CHAIN_OUT6, chain_in: CHAIN_IN6, ..self.guard() }
    }

    fn of(&self, base: Family, label: &'static str) -> Family {
        Family { save: self.save, restore: self.restore, label, proc_file: Some(self.proc_file), ..base }
    }

    /// Every IPv6 table of ours, in the order removing takes them: the
    /// REDIRECTs before their guard and zones.
    fn all(&self) -> [Family; 4] {
        [self.nat(), self.guard(), self.raw(), self.refuse()]
    }

    /// Does the calling thread's namespace have IPv6?
    fn present(&self) -> bool {
        Path::new(self.proc_file).exists()
    }
}

impl Family {
    fn is_v6(&self) -> bool {
        self.proc_file.is_some()
    }

    /// The jumps, as iptables-save prints them.
    fn jump_out(&self) -> String {
        format!("-A {} -p {} -j {}", self.hook_out, self.proto, self.chain_out)
    }

    fn jump_in(&self) -> String {
        format!("-A {} -p {} -j {}", self.hook_in, self.proto, self.chain_in)
    }

    /// DNS capture's UDP jump.
    fn jump_out_udp(&self) -> String {
        format!("-A {} -p udp -j {}", self.hook_out, self.chain_out)
    }
}

/// What the rules take from the node's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRules {
    pub sidecar_uid: u32,
    pub outbound_port: u16,
    pub inbound_port: u16,
    pub out_ports: Vec<u16>,
    pub out_cidrs: Vec<Cidr4>,
    pub out_cidrs6: Vec<Cidr6>,
    pub in_ports: Vec<u16>,
    /// `interception.ipv6`: native IPv6 TCP refused, passed or steered (ip6tables).
    pub ipv6: Ipv6Policy,
    /// `[dns] port`: the sidecar's DNS proxy.
    pub dns_port: u16,
    /// `[dns] servers`: only DNS to these is captured (each family its
    /// own); empty: any.
    pub dns_servers: Vec<std::net::IpAddr>,
}

impl NodeRules {
    pub fn of(config: &Config) -> NodeRules {
        NodeRules {
            sidecar_uid: config.sidecar.uid,
            outbound_port: config.sidecar.outbound_port,
            inbound_port: config.sidecar.inbound_port,
            out_ports: config.outbound.exclude_ports.clone(),
            out_cidrs: config.outbound.exclude_cidrs.clone(),
            out_cidrs6: config.outbound.exclude_cidrs6.clone(),
            in_ports: config.inbound.exclude_ports.clone(),
            ipv6: config.ipv6,
            dns_port: config.dns.port,
            dns_servers: config.dns.servers.clone(),
        }
    }
}

/// An IP family, for the nat rules' addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ip {
    V4,
    V6,
}

impl Ip {
    /// The loopback network: always direct.
    fn loopback(self) -> &'static str {
        match self {
            Ip::V4 => "127.0.0.0/8",
            Ip::V6 => "::1/128",
        }
    }

    /// The excluded ranges: the node's, then the pod's, once each.
    fn excluded(self, node: &NodeRules, pod: &MeshedPod) -> Vec<String> {
        match self {
            Ip::V4 => strings(unique(&[&node.out_cidrs, &pod.out_cidrs])),
            Ip::V6 => strings(unique(&[&node.out_cidrs6, &pod.out_cidrs6])),
        }
    }

    /// The included ranges of the family (None: everything is steered).
    fn included(self, pod: &MeshedPod) -> Option<Vec<String>> {
        let cidrs = pod.incl_out_cidrs.as_ref()?;
        Some(match self {
            Ip::V4 => strings(unique(&[cidrs])),
            Ip::V6 => strings(unique(&[&pod.incl_out_cidrs6])),
        })
    }

    /// The resolvers DNS capture takes, as `-d` names them: each listed one
    /// of this family, or any (None). With a list that names none of this
    /// family, none of its DNS is captured.
    fn resolvers(self, node: &NodeRules) -> Vec<Option<String>> {
        if node.dns_servers.is_empty() {
            return vec![None];
        }
        let len = match self {
            Ip::V4 => 32,
            Ip::V6 => 128,
        };
        unique(&[&node.dns_servers]).into_iter().filter(|a| a.is_ipv6() == (self == Ip::V6)).map(|a| Some(format!("{a}/{len}"))).collect()
    }
}

fn strings<T: ToString>(items: Vec<T>) -> Vec<String> {
    items.iter().map(T::to_string).collect()
}

/// Each item once, in the order first seen.
fn unique<T: PartialEq + Copy>(lists: &[&[T]]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for item in lists.iter().flat_map(|l| l.iter()) {
        if !out.contains(item) {
            out.push(*item);
        }
    }
    out
}

/// DNS capture's rules: first in the chain, so that neither the loopback
/// nor the exclusions below keep a query from the DNS proxy.
fn dns_rules(node: &NodeRules, pod: &MeshedPod, ip: Ip) -> Vec<String> {
    if !pod.dns_capture {
        return Vec::new();
    }
    let mut r = Vec::new();
    for d in ip.resolvers(node) {
        let to = d.map_or(String::new(), |a| format!(" -d {a}"));
        for proto in ["udp", "tcp"] {
            r.push(format!(
                "-A {CHAIN_OUT}{to} -p {proto} -m {proto} --dport 53 -m owner ! --uid-owner {} -j REDIRECT --to-ports {}",
                node.sidecar_uid, node.dns_port
            ));
        }
    }
    r
}

/// DNS capture's conntrack zones (raw table), as istio-iptables sets them:
/// the sidecar's queries to the resolvers and their answers in zone 1, the
/// app's queries and the DNS proxy's answers to them in zone 2. Otherwise an
/// app query whose source port a recent upstream query of the proxy had
/// (same addresses, same ports) joins that flow and goes to the resolver,
/// past the REDIRECT, which only sees new flows.
pub fn zone_rules(node: &NodeRules, pod: &MeshedPod) -> Vec<String> {
    zone_rules_of(node, pod, Ip::V4)
}

fn zone_rules_of(node: &NodeRules, pod: &MeshedPod, ip: Ip) -> Vec<String> {
    let resolvers = ip.resolvers(node);
    if !pod.dns_capture || resolvers.is_empty() {
        return Vec::new();
    }
    let uid = node.sidecar_uid;
    let flag = |flag: &str, d: &Option<String>| d.as_ref().map_or(String::new(), |a| format!(" {flag} {a}"));
    let mut r = Vec::new();
    for d in &resolvers {
        r.push(format!("-A {CHAIN_DNS_OUT}{} -p udp -m udp --dport 53 -m owner --uid-owner {uid} -j CT --zone 1", flag("-d", d)));
    }
    r.push(format!("-A {CHAIN_DNS_OUT} -p udp -m udp --sport {} -m owner --uid-owner {uid} -j CT --zone 2", node.dns_port));
    for d in &resolvers {
        r.push(format!("-A {CHAIN_DNS_OUT}{} -p udp -m udp --dport 53 -m owner ! --uid-owner {uid} -j CT --zone 2", flag("-d", d)));
    }
    for d in &resolvers {
        r.push(format!("-A {CHAIN_DNS_PRE}{} -p udp -m udp --sport 53 -j CT --zone 1", flag("-s", d)));
    }
    r
}

/// The pod's IPv4 nat chain rules (`-A CHAIN ...`), in iptables-save's spelling.
pub fn chain_rules(node: &NodeRules, pod: &MeshedPod) -> Vec<String> {
    nat_rules(node, pod, Ip::V4)
}

/// The pod's nat chain rules of one family, in (ip6)tables-save's spelling:
/// the same shape for both, only the addresses differ.
pub fn nat_rules(node: &NodeRules, pod: &MeshedPod, ip: Ip) -> Vec<String> {
    let mut r = dns_rules(node, pod, ip);
    r.push(format!("-A {CHAIN_OUT} -d {} -j RETURN", ip.loopback()));
    r.push(format!("-A {CHAIN_OUT} -m owner --uid-owner {} -j RETURN", node.sidecar_uid));
    // Straight to a capture port of this pod: not steered, so the guard
    // (filter table) refuses it, rather than the sidecar dialling itself.
    for p in unique(&[&[node.outbound_port, node.inbound_port]]) {
        r.push(format!("-A {CHAIN_OUT} -p tcp -m tcp --dport {p} -m addrtype --dst-type LOCAL -j RETURN"));
    }
    for p in unique(&[&node.out_ports, &pod.out_ports]) {
        r.push(format!("-A {CHAIN_OUT} -p tcp -m tcp --dport {p} -j RETURN"));
    }
    for c in ip.excluded(node, pod) {
        r.push(format!("-A {CHAIN_OUT} -d {c} -j RETURN"));
    }
    // Include lists, as istio-iptables writes them: the included ports, then
    // the included ranges, are redirected; the rest falls off the chain.
    let out_redirect = format!("-j REDIRECT --to-ports {}", node.outbound_port);
    match ip.included(pod) {
        None => r.push(format!("-A {CHAIN_OUT} -p tcp {out_redirect}")),
        Some(cidrs) => {
            for p in unique(&[&pod.incl_out_ports]) {
                r.push(format!("-A {CHAIN_OUT} -p tcp -m tcp --dport {p} {out_redirect}"));
            }
            for c in cidrs {
                r.push(format!("-A {CHAIN_OUT} -d {c} -p tcp {out_redirect}"));
            }
        }
    }
    for p in unique(&[&[node.outbound_port, node.inbound_port], &node.in_ports, &pod.in_ports]) {
        r.push(format!("-A {CHAIN_IN} -p tcp -m tcp --dport {p} -j RETURN"));
    }
    let in_redirect = format!("-j REDIRECT --to-ports {}", node.inbound_port);
    match &pod.incl_in_ports {
        None => r.push(format!("-A {CHAIN_IN} -p tcp {in_redirect}")),
        Some(ports) => {
            for p in unique(&[ports]) {
                r.push(format!("-A {CHAIN_IN} -p tcp -m tcp --dport {p} {in_redirect}"));
            }
        }
    }
    r
}

/// The guard: a connection to the sidecar's capture ports that nat did not
/// REDIRECT there (straight from the app, the sidecar itself, another node)
/// has no original destination, and a proxy falling back to its own address
/// would dial itself in a loop: its SYN is answered with a reset, locally
/// (OUTPUT) and from outside (INPUT). The same for both families.
pub fn guard_rules(node: &NodeRules) -> Vec<String> {
    let mut r = Vec::new();
    for chain in [CHAIN_GUARD_OUT, CHAIN_GUARD_IN] {
        for p in unique(&[&[node.outbound_port, node.inbound_port]]) {
            r.push(format!(
                "-A {chain} -p tcp -m tcp --dport {p} --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack ! --ctstate DNAT -j REJECT --reject-with tcp-reset"
            ));
        }
    }
    r
}

/// `interception.ipv6 = "refuse"`: the pod's IPv6 refusal (filter table), in
/// ip6tables-save's spelling. Outbound, the excluded ports are the node's and
/// the pod's; inbound, only the node-wide ones (as in the eBPF mode).
pub fn refuse_rules6(node: &NodeRules, pod: &MeshedPod) -> Vec<String> {
    let mut r = vec![
        format!("-A {CHAIN_OUT6} -d ::1/128 -j RETURN"),
        format!("-A {CHAIN_OUT6} -m owner --uid-owner {} -j RETURN", node.sidecar_uid),
    ];
    for p in unique(&[&node.out_ports, &pod.out_ports]) {
        r.push(format!("-A {CHAIN_OUT6} -p tcp -m tcp --dport {p} -j RETURN"));
    }
    r.push(format!("-A {CHAIN_OUT6} {SYN_ONLY} -j REJECT --reject-with tcp-reset"));
    r.push(format!("-A {CHAIN_IN6} -i lo -j RETURN"));
    for p in unique(&[&node.in_ports]) {
        r.push(format!("-A {CHAIN_IN6} -p tcp -m tcp --dport {p} -j RETURN"));
    }
    r.push(format!("-A {CHAIN_IN6} {SYN_ONLY} -j DROP"));
    r
}

/// One table's part of a pod's state: exactly `want`, or (None) nothing of
/// ours, `why` saying why not.
struct Step {
    fam: Family,
    want: Option<Vec<String>>,
    why: &'static str,
}

impl Step {
    fn want(fam: Family, rules: Vec<String>) -> Step {
        Step { fam, want: Some(rules), why: "" }
    }

    fn none(fam: Family, why: &'static str) -> Step {
        Step { fam, want: None, why }
    }
}

/// One family's nat table, guard and DNS zones: the guard before the
/// REDIRECTs (no moment with steering unguarded), the zones before DNS
/// capture's REDIRECTs, and gone only after them.
fn steering(nat: Family, guard: Family, raw: Family, rules: Vec<String>, guards: Vec<String>, zones: Vec<String>) -> Vec<Step> {
    let mut s = vec![Step::want(guard, guards)];
    let dns = !zones.is_empty();
    if dns {
        s.push(Step::want(raw, zones));
    }
    s.push(Step::want(nat, rules));
    if !dns {
        s.push(Step::none(raw, "no DNS capture"));
    }
    s
}

/// IPv6 DNS capture in a family that is otherwise not steered
/// (`interception.ipv6` "refuse" or "pass"): the nat table holds DNS
/// capture's rules alone (its MESHWIRE_INBOUND stays empty), with their
/// zones; nothing without DNS capture (or with `[dns] servers` naming no
/// IPv6 resolver). IPv6 DNS is captured whatever the policy: the pod's
/// queries never bypass its DNS proxy for want of IPv4.
fn dns_only6(ip6: &Ip6, node: &NodeRules, pod: &MeshedPod, why: &'static str) -> Vec<Step> {
    let rules = dns_rules(node, pod, Ip::V6);
    if rules.is_empty() {
        return vec![Step::none(ip6.nat(), why), Step::none(ip6.raw(), why)];
    }
    vec![Step::want(ip6.raw(), zone_rules_of(node, pod, Ip::V6)), Step::want(ip6.nat(), rules)]
}

/// Every table's part of the pod's state, in the order applying takes them:
/// IPv6 first, so that when it cannot be done as told IPv4 is not touched.
/// `has_v6`: the namespace has IPv6.
fn plan(ip6: &Ip6, has_v6: bool, node: &NodeRules, pod: &MeshedPod) -> Vec<Step> {
    let mut s = match (node.ipv6, has_v6) {
        (Ipv6Policy::Intercept, true) => {
            let mut s = steering(ip6.nat(), ip6.guard(), ip6.raw(), nat_rules(node, pod, Ip::V6), guard_rules(node), zone_rules_of(node, pod, Ip::V6));
            s.push(Step::none(ip6.refuse(), "interception.ipv6 = \"intercept\""));
            s
        }
        (Ipv6Policy::Refuse, true) => {
            let why = "interception.ipv6 = \"refuse\"";
            let mut s = vec![Step::want(ip6.refuse(), refuse_rules6(node, pod)), Step::none(ip6.guard(), why)];
            s.extend(dns_only6(ip6, node, pod, why));
            s
        }
        (Ipv6Policy::Pass, true) => {
            let why = "interception.ipv6 = \"pass\"";
            let mut s = vec![Step::none(ip6.refuse(), why), Step::none(ip6.guard(), why)];
            s.extend(dns_only6(ip6, node, pod, why));
            s
        }
        (_, false) => ip6.all().map(|f| Step::none(f, "the namespace has no IPv6")).into(),
    };
    s.extend(steering(V4, GUARD, RAW, chain_rules(node, pod), guard_rules(node), zone_rules(node, pod)));
    s
}

/// What a table of a namespace holds of ours (from `iptables-save -t nat`,
/// `ip6tables-save -t filter`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Found {
    chain_out: bool,
    chain_in: bool,
    jumps_out: usize,
    jumps_in: usize,
    /// DNS capture's UDP jumps to the out chain.
    jumps_out_udp: usize,
    /// `-A MESHWIRE_...` lines, in order.
    rules: Vec<String>,
}

impl Found {
    fn anything(&self) -> bool {
        self.chain_out || self.chain_in || self.jumps_out > 0 || self.jumps_in > 0 || self.jumps_out_udp > 0
    }
}

fn parse_save(fam: &Family, save: &str) -> Found {
    let (jump_out, jump_in, jump_udp) = (fam.jump_out(), fam.jump_in(), fam.jump_out_udp());
    let (out, inb) = (fam.chain_out, fam.chain_in);
    let mut f = Found::default();
    for line in save.lines().map(str::trim_end) {
        if line.starts_with(&format!(":{out} ")) {
            f.chain_out = true;
        } else if line.starts_with(&format!(":{inb} ")) {
            f.chain_in = true;
        } else if line == jump_out {
            f.jumps_out += 1;
        } else if line == jump_in {
            f.jumps_in += 1;
        } else if fam.dns && line == jump_udp {
            f.jumps_out_udp += 1;
        } else if line.starts_with(&format!("-A {out} ")) || line.starts_with(&format!("-A {inb} ")) {
            f.rules.push(line.to_string());
        }
    }
    f
}

/// Do the rules ask for DNS capture's UDP jump?
fn wants_udp(rules: &[String]) -> bool {
    rules.iter().any(|r| r.contains(" -p udp "))
}

/// The restore script that makes the chains exactly `rules` and adds the
/// jumps that are missing (and DNS capture's UDP jump exactly when the rules
/// have UDP). Declaring a chain with --noflush flushes it.
fn install_script(fam: &Family, found: &Found, rules: &[String]) -> String {
    let (out, inb) = (fam.chain_out, fam.chain_in);
    let mut s = format!("*{}\n:{out} - [0:0]\n:{inb} - [0:0]\n", fam.table);
    for r in rules {
        s.push_str(r);
        s.push('\n');
    }
    if found.jumps_out == 0 {
        s.push_str(&format!("-I {} 1 -p {} -j {out}\n", fam.hook_out, fam.proto));
    }
    if found.jumps_in == 0 {
        s.push_str(&format!("-I {} 1 -p {} -j {inb}\n", fam.hook_in, fam.proto));
    }
    match (fam.dns && wants_udp(rules), found.jumps_out_udp) {
        (true, 0) => s.push_str(&format!("-I {} 1 -p udp -j {out}\n", fam.hook_out)),
        (true, _) => {}
        (false, n) => {
            for _ in 0..n {
                s.push_str(&format!("-D {} -p udp -j {out}\n", fam.hook_out));
            }
        }
    }
    s.push_str("COMMIT\n");
    s
}

/// The restore script that removes every jump and both chains; None when
/// nothing of ours is there.
fn remove_script(fam: &Family, found: &Found) -> Option<String> {
    if !found.anything() {
        return None;
    }
    let mut s = format!("*{}\n", fam.table);
    for _ in 0..found.jumps_out {
        s.push_str(&format!("-D {} -p {} -j {}\n", fam.hook_out, fam.proto, fam.chain_out));
    }
    for _ in 0..found.jumps_in {
        s.push_str(&format!("-D {} -p {} -j {}\n", fam.hook_in, fam.proto, fam.chain_in));
    }
    for _ in 0..found.jumps_out_udp {
        s.push_str(&format!("-D {} -p udp -j {}\n", fam.hook_out, fam.chain_out));
    }
    for (there, chain) in [(found.chain_out, fam.chain_out), (found.chain_in, fam.chain_in)] {
        if there {
            s.push_str(&format!("-F {chain}\n-X {chain}\n"));
        }
    }
    s.push_str("COMMIT\n");
    Some(s)
}
/// A network namespace entered on the calling thread, checked.
struct Entered {
    /// st_dev and st_ino of the namespace: what /proc/self/ns/net of a child must show.
    dev: u64,
    ino: u64,
    /// The user namespace owning it, when not the loader's: the commands run
    /// in it, as the kernel accepts owner matches only from there, and map
    /// `--uid-owner` through it (a pod's sidecar.uid, not the host's).
    userns: Option<File>,
}

/// Run `f` inside the namespace at `netns`, after checking that
/// it is the namespace with `cookie` and not the host's. Ok(None): the
/// namespace is gone (or the path now names another one), nothing was run.
fn in_pod_netns<T: Send + 'static>(
    netns: &Path,
    cookie: u64,
    f: impl FnOnce(&Entered) -> Result<T, Error> + Send + 'static,
) -> Result<Option<T>, Error> {
    // The loader's own namespace (and PID 1's): read here, before any setns.
    let host = system::host_netns_cookies()?;
    if host.contains(&cookie) {
        return Err(Error::Invalid(format!("netns cookie {cookie} is the host's network namespace; iptables rules are only ever installed in a pod's")));
    }
    let file = match system::open_netns(netns) {
        Ok(f) => f,
        Err(NetnsError::Gone { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata().or_os(|| format!("stat {}", netns.display()))?;
    let shown = netns.display().to_string();
    let userns = system::userns::owner_of(&file, netns)?;
    let entered = Entered { dev: meta.dev(), ino: meta.ino(), userns };
    system::run_in_netns(file, netns, move |now| {
        if host.contains(&now) {
            return Err(Error::Invalid(format!("{shown} is the host's network namespace; iptables rules are only ever installed in a pod's")));
        }
        if now != cookie {
            // The path names another namespace now: the pod's is gone.
            return Ok(None);
        }
        f(&entered).map(Some)
    })?
}

/// Why an iptables command did not do its job.
#[derive(Debug)]
struct IptError {
    msg: String,
    /// The program is not installed (not in the loader's PATH).
    not_installed: bool,
    /// What it printed on stderr, when it ran and failed.
    stderr: String,
}

/// A command that failed is the node's problem, not the request's.
impl From<IptError> for Error {
    fn from(e: IptError) -> Error {
        Error::Internal(e.msg)
    }
}

/// Does an ip(6)tables error say that the table, its chains or the whole
/// family are not there (nothing of ours can be there either)?
fn says_absent(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    ["does not exist", "do you need to insmod", "address family not supported", "protocol not supported", "if_inet6"]
        .iter()
        .any(|p| s.contains(p))
}

/// An iptables command, run as a child of the calling thread (which is in the
/// pod's namespace). The child checks before exec that it is in that
/// namespace, and refuses to run otherwise. Err says why it failed.
fn run(ns: &Entered, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, IptError> {
    let (dev, ino) = (ns.dev, ns.ino);
    let userns = ns.userns.as_ref().map(|f| f.as_raw_fd());
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: the closure only calls stat(2) on a static C string,
    // compares numbers and calls setns(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::stat(c"/proc/self/ns/net".as_ptr(), &mut st) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if st.st_dev != dev || st.st_ino != ino {
                return Err(std::io::Error::from_raw_os_error(libc::EPERM));
            }
            // Its root there: capabilities survive exec only for the
            // namespace's own root (the loader's UID 0 is not mapped there).
            if let Some(fd) = userns {
                if libc::setns(fd, libc::CLONE_NEWUSER) != 0 || libc::setresuid(0, 0, 0) != 0 {
                    // Not EPERM: that says "not in the pod's network namespace".
                    return Err(std::io::Error::from_raw_os_error(libc::EACCES));
                }
            }
            Ok(())
        });
    }
    let shown = format!("{program} {}", args.join(" "));
    let failed = |msg: String| IptError { msg, not_installed: false, stderr: String::new() };
    let mut child = cmd.spawn().map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) => failed(format!("{shown}: refused: the child was not in the pod's network namespace")),
        Some(libc::EACCES) if userns.is_some() => {
            failed(format!("{shown}: the child could not become root of the user namespace owning the pod's network namespace (is UID 0 mapped there?)"))
        }
        Some(libc::ENOENT) if program.starts_with("iptables") => IptError {
            not_installed: true,
            ..failed(format!("{shown}: {e} (interception.mode = \"iptables\" needs iptables installed, in the loader's PATH)"))
        },
        Some(libc::ENOENT) => IptError { not_installed: true, ..failed(format!("{shown}: {e} ({program} is not installed, in the loader's PATH)")) },
        _ => failed(format!("{shown}: {e}")),
    })?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("piped");
        pipe.write_all(text.as_bytes()).map_err(|e| failed(format!("{shown}: writing its input: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| failed(format!("{shown}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let input = stdin.map(|s| format!("; input was:\n{s}")).unwrap_or_default();
        return Err(IptError { msg: format!("{shown} failed ({}): {err}{input}", out.status), not_installed: false, stderr: err });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn save(ns: &Entered, fam: &Family) -> Result<Found, IptError> {
    Ok(parse_save(fam, &run(ns, fam.save, &["-t", fam.table], None).map_err(|e| missing_table(fam, e))?))
}

fn restore(ns: &Entered, fam: &Family, script: &str) -> Result<(), IptError> {
    run(ns, fam.restore, &["--noflush", "--wait", LOCK_WAIT_SECS], Some(script)).map(|_| ()).map_err(|e| missing_table(fam, e))
}

/// An IPv6 table the kernel does not have (ip6tables installed, the module
/// not): the error names the table and the modules that provide it.
fn missing_table(fam: &Family, e: IptError) -> IptError {
    if !fam.is_v6() || e.not_installed || !says_absent(&e.stderr) {
        return e;
    }
    let msg = format!(
        "{}: the kernel has no IPv6 {} table (modules ip6_tables and ip6table_{}{}, or nf_tables with IPv6 for iptables-nft)",
        e.msg,
        fam.table,
        fam.table,
        if fam.table == "nat" { " with nf_nat" } else { "" }
    );
    IptError { msg, ..e }
}


/// The family could not be done as `interception.ipv6` (and DNS capture)
/// say for want of `detail`: say what it needs and how to run without it.
fn ipv6_needs(policy: Ipv6Policy, detail: &str) -> String {
    let (what, instead) = match policy {
        Ipv6Policy::Intercept => ("interception.ipv6 = \"intercept\" cannot steer the pod's native IPv6 TCP", PASS_INSTEAD),
        Ipv6Policy::Refuse => ("interception.ipv6 = \"refuse\" cannot refuse the pod's native IPv6 TCP", PASS_INSTEAD),
        Ipv6Policy::Pass => (
            "DNS capture cannot capture the pod's IPv6 DNS",
            "or turn DNS capture off for the pod, or list only IPv4 resolvers in [dns] servers (its IPv6 queries then bypass the DNS proxy)",
        ),
    };
    format!(
        "{what}: {detail}. It needs ip6tables (ip6tables-save and ip6tables-restore, in the loader's PATH) and IPv6 netfilter in the kernel (its nat, filter and raw tables); {instead}"
    )
}

const PASS_INSTEAD: &str = "set interception.ipv6 = \"pass\" to run without them (native IPv6 TCP then bypasses the sidecars)";

/// What an IPv6 table holds of ours; None when there cannot be anything:
/// no IPv6 in the namespace, ip6tables not installed, or the table missing.
fn found_if_any(ns: &Entered, fam: &Family) -> Result<Option<Found>, Error> {
    if fam.proc_file.is_some_and(|f| !Path::new(f).exists()) {
        return Ok(None);
    }
    match save(ns, fam) {
        Ok(found) => Ok(Some(found)),
        Err(e) if e.not_installed || says_absent(&e.stderr) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a table holds of ours: an IPv6 table that is to hold nothing may be
/// missing altogether (and ip6tables with it).
fn found_for(ns: &Entered, fam: &Family, want: bool) -> Result<Found, Error> {
    match !want && fam.is_v6() {
        true => found_if_any(ns, fam).map(Option::unwrap_or_default),
        false => Ok(save(ns, fam)?),
    }
}

/// Bring one table to the step's state; Ok(what it held before).
fn take_step(ns: &Entered, step: &Step) -> Result<Found, Error> {
    let before = found_for(ns, &step.fam, step.want.is_some())?;
    let script = match &step.want {
        Some(rules) => Some(install_script(&step.fam, &before, rules)),
        None => remove_script(&step.fam, &before),
    };
    if let Some(script) = script {
        match restore(ns, &step.fam, &script) {
            // Removing from an IPv6 table that is not there: nothing to remove.
            Err(e) if step.want.is_none() && step.fam.is_v6() && says_absent(&e.stderr) => {}
            Err(e) => return Err(e.into()),
            Ok(()) => {}
        }
    }
    Ok(before)
}

/// Put a table back as it was (`before`).
fn put_back(ns: &Entered, fam: &Family, before: &Found) -> Result<(), Error> {
    let now = found_for(ns, fam, before.anything())?;
    let script = match before.anything() {
        true => Some(install_script(fam, &now, &before.rules)),
        false => remove_script(fam, &now),
    };
    script.map_or(Ok(()), |s| Ok(restore(ns, fam, &s)?))
}

/// After a step failed: the tables the steps before it changed are put
/// back, last first. Says how that went, for the error.
fn put_all_back(ns: &Entered, taken: &[(Family, Found)]) -> String {
    let failed: Vec<String> =
        taken.iter().rev().filter_map(|(fam, before)| put_back(ns, fam, before).err().map(|e| format!("{}: {e}", fam.label))).collect();
    match (taken.is_empty(), failed.is_empty()) {
        (true, _) => String::new(),
        (false, true) => "; the tables changed before it were put back as they were".to_string(),
        (false, false) => format!("; putting back the tables changed before it failed too: {}", failed.join("; ")),
    }
}

/// The pod's DNS flows conntrack holds (UDP to port 53, any zone) go, so
/// that changed DNS rules take effect at once: conntrack keeps a flow's NAT
/// (or none) for its life, and a resolver reuses its source port for the
/// next query. An answer in flight is lost; the resolver asks again. Without
/// the conntrack tool, said in the log: flows then end on their own (30 s).
fn forget_dns_flows(ns: &Entered, id: &str, has_v6: bool) {
    let families: &[&str] = if has_v6 { &["ipv4", "ipv6"] } else { &["ipv4"] };
    for family in families {
        match run(ns, "conntrack", &["-D", "-f", family, "-p", "udp", "--orig-port-dst", "53"], None) {
            Ok(_) => {}
            // Nothing to delete is exit status 1 too.
            Err(e) if e.stderr.contains("0 flow entries") => {}
            Err(e) => log::warn!(
                "pod {id}: DNS flows ({family}) tracked before its DNS capture rules changed were not removed ({}); \
                 they follow the old rules until conntrack forgets them (UDP: 30 s)",
                e.msg
            ),
        }
    }
}

/// Install (or bring back to exactly) the pod's rules, IPv6 first (by
/// `interception.ipv6`: steered, refused, or none), then IPv4. When a table
/// fails, those changed before it are put back as they were: when IPv6
/// cannot be done as told, IPv4 is not touched.
pub fn apply(node: &NodeRules, pod: &MeshedPod) -> Result<(), Error> {
    apply_with(IP6, node, pod)
}

fn apply_with(ip6: Ip6, node: &NodeRules, pod: &MeshedPod) -> Result<(), Error> {
    let (node, p) = (node.clone(), pod.clone());
    let done = in_pod_netns(&pod.netns, pod.cookie, move |ns| {
        let id = &p.container_id;
        let has_v6 = ip6.present();
        let steps = plan(&ip6, has_v6, &node, &p);
        let mut taken: Vec<(Family, Found)> = Vec::new();
        for step in &steps {
            match take_step(ns, step) {
                Ok(before) => taken.push((step.fam, before)),
                Err(e) => {
                    let e = e.map_message(|e| match (step.fam.is_v6(), step.want.is_some()) {
                        (true, true) => format!("{}; its IPv4 rules were not applied either", ipv6_needs(node.ipv6, &e)),
                        (true, false) => format!("removing its IPv6 rules ({}): {e}; its IPv4 rules were not applied either", step.why),
                        (false, _) => e,
                    });
                    let put_back = put_all_back(ns, &taken);
                    return Err(e.map_message(|e| format!("pod {id}: {e}{put_back}")));
                }
            }
        }
        let dns_before = taken.iter().any(|(fam, before)| (fam.table == "raw" && before.anything()) || before.jumps_out_udp > 0);
        let dns_now = steps.iter().any(|s| s.fam.table == "raw" && s.want.is_some());
        if dns_before || dns_now {
            forget_dns_flows(ns, id, has_v6);
        }
        Ok(())
    })?;
    done.ok_or_else(|| Error::NetnsGone(format!("pod {}: network namespace {} is gone", pod.container_id, pod.netns.display())))
}

/// Remove the pod's jumps and chains, of both families. A namespace that is
/// gone took its rules with it: Ok.
pub fn remove(pod: &MeshedPod) -> Result<(), Error> {
    remove_in_with(IP6, &pod.netns, pod.cookie).map(|_| ()).map_err(|e| e.context(format_args!("pod {}", pod.container_id)))
}

/// One table's part of an `iptables-save` of every table: from its `*table`
/// line to its COMMIT; empty when the dump has no such table.
fn table_of<'a>(dump: &'a str, table: &str) -> &'a str {
    let head = format!("*{table}\n");
    let Some(start) = dump.find(&head).filter(|&i| i == 0 || dump[..i].ends_with('\n')) else { return "" };
    let body = &dump[start..];
    body.find("\nCOMMIT").map_or(body, |end| &body[..end])
}

/// Removing reads each family once (`iptables-save` and `ip6tables-save`
/// of every table, one command each) and runs a restore only for a table
/// that holds something of ours: a namespace that never had rules of ours
/// (every pod of a node in the eBPF mode, at cleanup) costs one command
/// per family. Ok(Some(n)): n tables held rules of ours and were cleared;
/// Ok(None): the namespace is gone.
fn remove_in_with(ip6: Ip6, netns: &Path, cookie: u64) -> Result<Option<usize>, Error> {
    in_pod_netns(netns, cookie, move |ns| {
        let mut errors: Vec<Error> = Vec::new();
        let mut cleared = 0;
        // Every table, even when one fails; the REDIRECTs before their guard.
        let families: [(&'static str, Vec<Family>); 2] = [(ip6.save, ip6.all().to_vec()), (V4.save, vec![V4, GUARD, RAW])];
        for (program, tables) in families {
            let v6 = tables[0].is_v6();
            // No IPv6 in the namespace: no IPv6 table to hold anything.
            if v6 && !ip6.present() {
                continue;
            }
            let dump = match run(ns, program, &[], None) {
                Ok(dump) => dump,
                // ip6tables not installed or the kernel without IPv6 netfilter: nothing of ours there.
                Err(e) if v6 && (e.not_installed || says_absent(&e.stderr)) => continue,
                Err(e) => {
                    errors.push(e.into());
                    continue;
                }
            };
            for fam in &tables {
                let Some(script) = remove_script(fam, &parse_save(fam, table_of(&dump, fam.table))) else { continue };
                cleared += 1;
                match restore(ns, fam, &script) {
                    // Removing from an IPv6 table that is not there: nothing to remove.
                    Err(e) if v6 && says_absent(&e.stderr) => {}
                    Err(e) => errors.push(e.into()),
                    Ok(()) => {}
                }
            }
        }
        match errors.split_first() {
            None => Ok(cleared),
            // The first one's kind; every message.
            Some((first, _)) => Err(first.clone().map_message(|_| errors.iter().map(Error::message).collect::<Vec<_>>().join("; "))),
        }
    })
}

/// Are the pod's rules there, exactly, in both families? Err says what differs.
pub fn check(node: &NodeRules, pod: &MeshedPod) -> Result<(), Error> {
    check_with(IP6, node, pod)
}

fn check_with(ip6: Ip6, node: &NodeRules, pod: &MeshedPod) -> Result<(), Error> {
    let (node, p) = (node.clone(), pod.clone());
    in_pod_netns(&pod.netns, pod.cookie, move |ns| {
        let id = &p.container_id;
        let mut steps = plan(&ip6, ip6.present(), &node, &p);
        // Each family's REDIRECTs first, then its guard and zones: what
        // differs there says most.
        steps.sort_by_key(|s| (!s.fam.is_v6(), ["nat", "filter", "raw"].iter().position(|t| *t == s.fam.table)));
        for step in &steps {
            let found = found_for(ns, &step.fam, step.want.is_some()).map_err(|e| {
                e.map_message(|e| match step.fam.is_v6() {
                    true => format!("pod {id}: {}", ipv6_needs(node.ipv6, &e)),
                    false => format!("pod {id}: {e}"),
                })
            })?;
            match &step.want {
                Some(want) => compare(&step.fam, id, &found, want)?,
                None if found.anything() => {
                    return Err(Error::Inconsistent(format!(
                        "pod {id}: {}, but the {} table still has {} or {} (applying again removes them)",
                        step.why, step.fam.label, step.fam.chain_out, step.fam.chain_in
                    )))
                }
                None => {}
            }
        }
        Ok(())
    })?
    .ok_or_else(|| Error::NetnsGone(format!("pod {}: network namespace {} is gone", pod.container_id, pod.netns.display())))
}

/// Does one family's table hold exactly `want`, and the jumps?
fn compare(fam: &Family, id: &str, found: &Found, want: &[String]) -> Result<(), Error> {
    compare_rules(fam, id, found, want).map_err(Error::Inconsistent)
}

fn compare_rules(fam: &Family, id: &str, found: &Found, want: &[String]) -> Result<(), String> {
    if found.jumps_out == 0 {
        return Err(format!("pod {id}: {} {} has no jump to {}", fam.label, fam.hook_out, fam.chain_out));
    }
    if found.jumps_in == 0 {
        return Err(format!("pod {id}: {} {} has no jump to {}", fam.label, fam.hook_in, fam.chain_in));
    }
    match (fam.dns && wants_udp(want), found.jumps_out_udp) {
        (true, 0) => return Err(format!("pod {id}: {} {} has no UDP jump to {} (DNS capture)", fam.label, fam.hook_out, fam.chain_out)),
        (false, n) if n > 0 => {
            return Err(format!("pod {id}: {} {} has a UDP jump to {}, but the pod has no DNS capture", fam.label, fam.hook_out, fam.chain_out))
        }
        _ => {}
    }
    // iptables-save lists the chains by name: compare chain by chain.
    for chain in [fam.chain_out, fam.chain_in] {
        let prefix = format!("-A {chain} ");
        let of = |rules: &[String]| -> Vec<String> { rules.iter().filter(|r| r.starts_with(&prefix)).cloned().collect() };
        let (want, found) = (of(want), of(&found.rules));
        if found != want {
            let missing: Vec<&String> = want.iter().filter(|r| !found.contains(r)).collect();
            let extra: Vec<&String> = found.iter().filter(|r| !want.contains(r)).collect();
            return Err(format!("pod {id}: the {chain} rules differ (missing {missing:?}, unexpected {extra:?}, or out of order)"));
        }
    }
    Ok(())
}


/// The iptables interception: the pod's rules, one nat (and filter) table
/// per namespace, so they are the pod's, all attachments' together. Map
/// entries and tc attachments a loader in the eBPF mode left for the pod go.
pub struct Iptables {
    rules: NodeRules,
    ebpf: EbpfTc,
}

impl Iptables {
    pub fn new(rules: NodeRules, ebpf: EbpfTc) -> Iptables {
        Iptables { rules, ebpf }
    }
}

impl Interception for Iptables {
    fn apply(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        // A pod whose user namespace has no sidecar.uid is refused as in
        // eBPF mode, by name, rather than by the kernel's EINVAL.
        crate::system::userns::host_uid(&pod.netns, self.rules.sidecar_uid).map_err(|e| Error::from(e).context(format_args!("pod {}", pod.container_id)))?;
        // Not in the maps (a loader in eBPF mode may have put it there).
        self.ebpf.remove(pod, &[])?;
        apply(&self.rules, &merged(pod, siblings))
    }

    fn remove(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        match siblings.split_first() {
            None => remove(pod)?,
            // A namespace that is gone took its rules with it; one that
            // cannot be looked at is not taken for gone (nothing changes).
            Some((first, rest)) => match super::pods::netns_state(&pod.netns, pod.cookie) {
                super::pods::NetnsState::Gone => {}
                super::pods::NetnsState::Unknown(e) => return Err(Error::from(e).context(format_args!("pod {}", pod.container_id))),
                super::pods::NetnsState::Alive => apply(&self.rules, &merged(first, rest))?,
            },
        }
        self.ebpf.remove(pod, siblings)
    }

    /// CHECK answers whatever it could not confirm, also a namespace that
    /// is gone or rules it could not read, as Inconsistent.
    fn check(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        check(&self.rules, &merged(pod, siblings)).map_err(|e| match e {
            Error::Inconsistent(_) => e,
            other => Error::Inconsistent(other.message().to_string()),
        })
    }

    fn sweep(&self, known: &[MeshedPod]) -> Result<(), Error> {
        self.ebpf.sweep(known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::time::Duration;

    /// Native IPv6 refused (the default is "intercept": node_intercept()).
    fn node() -> NodeRules {
        NodeRules {
            sidecar_uid: 1500,
            outbound_port: 15001,
            inbound_port: 15003,
            out_ports: vec![8081, 22],
            out_cidrs: vec!["10.231.9.0/24".parse().unwrap()],
            out_cidrs6: vec!["fd00:231:9::/64".parse().unwrap()],
            in_ports: vec![9090],
            ipv6: Ipv6Policy::Refuse,
            dns_port: 15053,
            dns_servers: vec![],
        }
    }

    fn node_pass() -> NodeRules {
        NodeRules { ipv6: Ipv6Policy::Pass, ..node() }
    }

    fn node_intercept() -> NodeRules {
        NodeRules { ipv6: Ipv6Policy::Intercept, ..node() }
    }

    fn pod(netns: &Path, cookie: u64) -> MeshedPod {
        MeshedPod {
            container_id: "ipt-test".into(),
            netns: netns.to_path_buf(),
            ifname: String::new(),
            cookie,
            ips: vec![Ipv4Addr::new(10, 1, 0, 5)],
            ips6: vec![],
            out_ports: vec![22, 5432],
            out_cidrs: vec!["192.0.2.7/32".parse().unwrap()],
            out_cidrs6: vec![],
            in_ports: vec![9090, 8443],
            accelerate: false,
            dns_capture: false,
            incl_out_cidrs: None,
            incl_out_cidrs6: vec![],
            incl_out_ports: vec![],
            incl_in_ports: None,
        }
    }

    /// What `ip6tables-save -t filter` shows of ours for node() and pod(), in its order.
    const SAVED6: [&str; 14] = [
        ":MESHWIRE_INBOUND6 - [0:0]",
        ":MESHWIRE_OUTPUT6 - [0:0]",
        "-A INPUT -p tcp -j MESHWIRE_INBOUND6",
        "-A OUTPUT -p tcp -j MESHWIRE_OUTPUT6",
        "-A MESHWIRE_INBOUND6 -i lo -j RETURN",
        "-A MESHWIRE_INBOUND6 -p tcp -m tcp --dport 9090 -j RETURN",
        "-A MESHWIRE_INBOUND6 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP",
        "-A MESHWIRE_OUTPUT6 -d ::1/128 -j RETURN",
        "-A MESHWIRE_OUTPUT6 -m owner --uid-owner 1500 -j RETURN",
        "-A MESHWIRE_OUTPUT6 -p tcp -m tcp --dport 8081 -j RETURN",
        "-A MESHWIRE_OUTPUT6 -p tcp -m tcp --dport 22 -j RETURN",
        "-A MESHWIRE_OUTPUT6 -p tcp -m tcp --dport 5432 -j RETURN",
        "-A MESHWIRE_OUTPUT6 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j REJECT --reject-with tcp-reset",
        "COMMIT",
    ];

    #[test]
    fn rules_merge_node_and_pod_exclusions_once_each() {
        let r = chain_rules(&node(), &pod(Path::new("/x"), 1));
        let expected = [
            "-A MESHWIRE_OUTPUT -d 127.0.0.0/8 -j RETURN",
            "-A MESHWIRE_OUTPUT -m owner --uid-owner 1500 -j RETURN",
            "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 15001 -m addrtype --dst-type LOCAL -j RETURN",
            "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 15003 -m addrtype --dst-type LOCAL -j RETURN",
            "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 8081 -j RETURN",
            "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 22 -j RETURN",
            "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN",
            "-A MESHWIRE_OUTPUT -d 10.231.9.0/24 -j RETURN",
            "-A MESHWIRE_OUTPUT -d 192.0.2.7/32 -j RETURN",
            "-A MESHWIRE_OUTPUT -p tcp -j REDIRECT --to-ports 15001",
            "-A MESHWIRE_INBOUND -p tcp -m tcp --dport 15001 -j RETURN",
            "-A MESHWIRE_INBOUND -p tcp -m tcp --dport 15003 -j RETURN",
            "-A MESHWIRE_INBOUND -p tcp -m tcp --dport 9090 -j RETURN",
            "-A MESHWIRE_INBOUND -p tcp -m tcp --dport 8443 -j RETURN",
            "-A MESHWIRE_INBOUND -p tcp -j REDIRECT --to-ports 15003",
        ];
        assert_eq!(r, expected);
        // The IPv6 policy changes nothing of IPv4.
        assert_eq!(chain_rules(&node_pass(), &pod(Path::new("/x"), 1)), expected);
    }

    #[test]
    fn ipv6_rules_refuse_all_but_sidecar_loopback_and_excluded_ports() {
        let mut n = node();
        n.sidecar_uid = 1337;
        n.in_ports = vec![9090, 9091, 9090];
        let r = refuse_rules6(&n, &pod(Path::new("/x"), 1));
        let expected = [
            "-A MESHWIRE_OUTPUT6 -d ::1/128 -j RETURN",
            "-A MESHWIRE_OUTPUT6 -m owner --uid-owner 1337 -j RETURN",
            // Outbound: the node's excluded ports, then the pod's, once each.
            "-A MESHWIRE_OUTPUT6 -p tcp -m tcp --dport 8081 -j RETURN",
            "-A MESHWIRE_OUTPUT6 -p tcp -m tcp --dport 22 -j RETURN",
            "-A MESHWIRE_OUTPUT6 -p tcp -m tcp --dport 5432 -j RETURN",
            "-A MESHWIRE_OUTPUT6 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j REJECT --reject-with tcp-reset",
            // Inbound: the node-wide excluded ports only (not the pod's 8443,
            // not the sidecar's own ports).
            "-A MESHWIRE_INBOUND6 -i lo -j RETURN",
            "-A MESHWIRE_INBOUND6 -p tcp -m tcp --dport 9090 -j RETURN",
            "-A MESHWIRE_INBOUND6 -p tcp -m tcp --dport 9091 -j RETURN",
            "-A MESHWIRE_INBOUND6 -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DROP",
        ];
        assert_eq!(r, expected);
        let s = install_script(&IP6.refuse(), &Found::default(), &r);
        assert!(s.starts_with("*filter\n:MESHWIRE_OUTPUT6 - [0:0]\n:MESHWIRE_INBOUND6 - [0:0]\n"), "{s}");
        assert!(s.ends_with("-I OUTPUT 1 -p tcp -j MESHWIRE_OUTPUT6\n-I INPUT 1 -p tcp -j MESHWIRE_INBOUND6\nCOMMIT\n"), "{s}");
    }

    #[test]
    fn nodes_take_the_ipv6_policy_from_the_config() {
        let mut c = Config::default_config();
        assert_eq!(NodeRules::of(&c).ipv6, Ipv6Policy::Intercept);
        c.ipv6 = Ipv6Policy::Refuse;
        assert_eq!(NodeRules::of(&c).ipv6, Ipv6Policy::Refuse);
    }

    #[test]
    fn scripts_add_missing_jumps_only_and_remove_everything() {
        let rules = vec!["-A MESHWIRE_OUTPUT -d 127.0.0.0/8 -j RETURN".to_string()];
        let fresh = install_script(&V4, &Found::default(), &rules);
        assert!(fresh.starts_with("*nat\n:MESHWIRE_OUTPUT - [0:0]\n:MESHWIRE_INBOUND - [0:0]\n"), "{fresh}");
        assert!(fresh.contains("-I OUTPUT 1 -p tcp -j MESHWIRE_OUTPUT\n") && fresh.contains("-I PREROUTING 1 -p tcp -j MESHWIRE_INBOUND\n"));
        assert!(fresh.ends_with("COMMIT\n"));
        let there = Found { chain_out: true, chain_in: true, jumps_out: 1, jumps_in: 1, jumps_out_udp: 0, rules: rules.clone() };
        let again = install_script(&V4, &there, &rules);
        assert!(!again.contains("-I "), "no second jump: {again}");
        assert_eq!(remove_script(&V4, &Found::default()), None);
        let twice = Found { jumps_out: 2, ..there };
        let rm = remove_script(&V4, &twice).unwrap();
        assert_eq!(rm.matches("-D OUTPUT -p tcp -j MESHWIRE_OUTPUT\n").count(), 2);
        for l in ["-D PREROUTING -p tcp -j MESHWIRE_INBOUND", "-X MESHWIRE_OUTPUT", "-X MESHWIRE_INBOUND", "-F MESHWIRE_OUTPUT"] {
            assert!(rm.contains(l), "{rm}");
        }
        let rm6 = remove_script(&IP6.refuse(), &Found { chain_in: true, jumps_out: 1, ..Found::default() }).unwrap();
        assert_eq!(rm6, "*filter\n-D OUTPUT -p tcp -j MESHWIRE_OUTPUT6\n-F MESHWIRE_INBOUND6\n-X MESHWIRE_INBOUND6\nCOMMIT\n");
    }

    #[test]
    fn save_output_is_parsed() {
        let save = "# Generated by iptables-save v1.8.9 (nf_tables)\n*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                    :MESHWIRE_INBOUND - [0:0]\n:MESHWIRE_OUTPUT - [0:0]\n-A PREROUTING -p tcp -j MESHWIRE_INBOUND\n\
                    -A OUTPUT -p tcp -j MESHWIRE_OUTPUT\n-A OUTPUT -d 1.2.3.4/32 -j ACCEPT\n\
                    -A MESHWIRE_OUTPUT -p tcp -j REDIRECT --to-ports 15001\nCOMMIT\n";
        let f = parse_save(&V4, save);
        assert_eq!(
            f,
            Found { chain_out: true, chain_in: true, jumps_out: 1, jumps_in: 1, jumps_out_udp: 0, rules: vec!["-A MESHWIRE_OUTPUT -p tcp -j REDIRECT --to-ports 15001".into()] }
        );
        // The IPv4 chains' names are prefixes of the IPv6 ones: kept apart.
        let save6 = "*filter\n:INPUT ACCEPT [0:0]\n:MESHWIRE_OUTPUT6 - [0:0]\n-A OUTPUT -p tcp -j MESHWIRE_OUTPUT6\n\
                     -A MESHWIRE_OUTPUT6 -d ::1/128 -j RETURN\nCOMMIT\n";
        assert_eq!(parse_save(&V4, save6), Found::default());
        let f6 = parse_save(&IP6.refuse(), save6);
        assert_eq!(f6, Found { chain_out: true, jumps_out: 1, rules: vec!["-A MESHWIRE_OUTPUT6 -d ::1/128 -j RETURN".into()], ..Found::default() });
    }

    #[test]
    fn missing_tables_and_families_are_recognised() {
        for absent in [
            "ip6tables-save v1.8.9 (legacy): Cannot initialize: Table does not exist (do you need to insmod?)",
            "Table `filter' does not exist",
            "ip6tables-restore v1.8.7 (legacy): ip6tables-restore: unable to initialize table 'filter': Address family not supported by protocol",
            "Protocol not supported",
        ] {
            assert!(says_absent(absent), "{absent}");
        }
        for other in ["Another app is currently holding the xtables lock.", "Chain already exists", ""] {
            assert!(!says_absent(other), "{other}");
        }
    }

    /// A network namespace of the test's own (`ip netns add`), deleted on drop.
    struct TestNetns {
        name: String,
        path: PathBuf,
    }

    impl TestNetns {
        fn new(tag: &str) -> TestNetns {
            let name = format!("mwut{}-{tag}", std::process::id());
            let ok = Command::new("ip").args(["netns", "add", &name]).status().map(|s| s.success()).unwrap_or(false);
            assert!(ok, "ip netns add {name} failed (root and iproute2 needed)");
            TestNetns { path: PathBuf::from(format!("/run/netns/{name}")), name }
        }

        fn cookie(&self) -> u64 {
            system::netns_cookie(&self.path).unwrap()
        }

        fn save(&self, program: &str, table: &str) -> String {
            let out = Command::new("ip").args(["netns", "exec", &self.name, program, "-t", table]).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }

        fn nat(&self) -> String {
            self.save("iptables-save", "nat")
        }

        fn filter6(&self) -> String {
            self.save("ip6tables-save", "filter")
        }

        /// `ip -n <this namespace> args...`
        fn ip(&self, args: &[&str]) {
            let out = Command::new("ip").arg("-n").arg(&self.name).args(args).output().unwrap();
            assert!(out.status.success(), "ip -n {} {args:?}: {}", self.name, String::from_utf8_lossy(&out.stderr));
        }
    }

    impl Drop for TestNetns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        }
    }

    /// The machine's own table: it must be the same before and after.
    fn host_table(program: &str, table: &str) -> String {
        let out = Command::new(program).args(["-t", table]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n")
    }

    fn host_nat() -> String {
        host_table("iptables-save", "nat")
    }

    fn host_filter6() -> String {
        host_table("ip6tables-save", "filter")
    }

    /// The lines of ours in a save (and the COMMIT after them), in its order.
    fn ours(save: &str) -> Vec<&str> {
        save.lines().filter(|l| l.contains("MESHWIRE") || *l == "COMMIT").collect()
    }

    /// The IPv4 lines of ours in `iptables-save -t nat`.
    fn ours4(nat: &str) -> Vec<&str> {
        nat.lines().filter(|l| l.contains("MESHWIRE")).collect()
    }

    #[test]
    fn apply_check_and_remove_in_a_real_namespace() {
        let (host_before, host6_before) = (host_nat(), host_filter6());
        let ns = TestNetns::new("apply");
        let p = pod(&ns.path, ns.cookie());
        let n = node();
        apply(&n, &p).unwrap();
        apply(&n, &p).unwrap(); // idempotent
        let nat = ns.nat();
        assert_eq!(nat.matches("-A OUTPUT -p tcp -j MESHWIRE_OUTPUT").count(), 1, "{nat}");
        assert_eq!(nat.matches("-A PREROUTING -p tcp -j MESHWIRE_INBOUND").count(), 1, "{nat}");
        for r in chain_rules(&n, &p) {
            assert_eq!(nat.matches(&format!("{r}\n")).count(), 1, "{r} once in:\n{nat}");
        }
        check(&n, &p).unwrap();

        // A rule removed by hand is noticed, and a new apply brings it back.
        let del = Command::new("ip")
            .args(["netns", "exec", &ns.name, "iptables", "-t", "nat", "-D", CHAIN_OUT, "-p", "tcp", "-m", "tcp", "--dport", "5432", "-j", "RETURN"])
            .status()
            .unwrap();
        assert!(del.success());
        let e = check(&n, &p).unwrap_err();
        assert!(e.message().contains("--dport 5432"), "{e}");
        apply(&n, &p).unwrap();
        check(&n, &p).unwrap();

        // Other rules of the table are kept; ours go completely.
        let other = Command::new("ip").args(["netns", "exec", &ns.name, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", "192.0.2.1", "-j", "ACCEPT"]).status().unwrap();
        assert!(other.success());
        remove(&p).unwrap();
        remove(&p).unwrap(); // idempotent
        let nat = ns.nat();
        assert!(!nat.contains("MESHWIRE"), "{nat}");
        assert!(nat.contains("-A OUTPUT -d 192.0.2.1/32 -j ACCEPT"), "{nat}");
        assert!(!ns.filter6().contains("MESHWIRE"), "{}", ns.filter6());
        assert!(matches!(check(&n, &p).unwrap_err(), Error::Inconsistent(m) if m.contains("no jump")));
        assert_eq!(host_nat(), host_before, "the machine's nat table changed");
        assert_eq!(host_filter6(), host6_before, "the machine's IPv6 filter table changed");
    }

    /// Include lists: one REDIRECT per included port and range in place of
    /// the catch-all, written as iptables-save prints them (check compares
    /// them line by line), in a real namespace.
    #[test]
    fn include_lists_redirect_only_what_they_name() {
        let n = node();
        let mut p = pod(Path::new("/x"), 1);
        p.incl_out_cidrs = Some(vec!["10.96.0.0/12".parse().unwrap(), "10.96.0.0/12".parse().unwrap()]);
        p.incl_out_ports = vec![443];
        p.incl_in_ports = Some(vec![8080, 9091]);
        let r = chain_rules(&n, &p);
        let tail_out: Vec<&str> = r.iter().map(String::as_str).filter(|l| l.starts_with("-A MESHWIRE_OUTPUT") && l.contains("REDIRECT")).collect();
        assert_eq!(
            tail_out,
            ["-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 443 -j REDIRECT --to-ports 15001", "-A MESHWIRE_OUTPUT -d 10.96.0.0/12 -p tcp -j REDIRECT --to-ports 15001"]
        );
        let tail_in: Vec<&str> = r.iter().map(String::as_str).filter(|l| l.starts_with("-A MESHWIRE_INBOUND") && l.contains("REDIRECT")).collect();
        assert_eq!(
            tail_in,
            ["-A MESHWIRE_INBOUND -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 15003", "-A MESHWIRE_INBOUND -p tcp -m tcp --dport 9091 -j REDIRECT --to-ports 15003"]
        );
        // Empty lists: nothing redirected; the exclusions stay.
        p.incl_out_cidrs = Some(vec![]);
        p.incl_out_ports = vec![];
        p.incl_in_ports = Some(vec![]);
        assert!(!chain_rules(&n, &p).iter().any(|l| l.contains("REDIRECT")));

        let ns = TestNetns::new("incl");
        let mut p = pod(&ns.path, ns.cookie());
        p.incl_out_cidrs = Some(vec!["10.96.0.0/12".parse().unwrap()]);
        p.incl_out_ports = vec![443];
        p.incl_in_ports = Some(vec![8080]);
        apply(&n, &p).unwrap();
        let nat = ns.nat();
        for r in chain_rules(&n, &p) {
            assert_eq!(nat.matches(&format!("{r}\n")).count(), 1, "{r} once in:\n{nat}");
        }
        check(&n, &p).unwrap();
        // The pod's include lists changed: check notices, apply makes them so.
        let mut all = p.clone();
        all.incl_out_cidrs = None;
        all.incl_in_ports = None;
        assert!(check(&n, &all).is_err());
        apply(&n, &all).unwrap();
        check(&n, &all).unwrap();
        assert!(!ns.nat().contains("--dport 443 -j REDIRECT"), "{}", ns.nat());
        remove(&all).unwrap();
        assert!(!ns.nat().contains("MESHWIRE"));
    }

    /// DNS capture: its rules first, UDP jump and all, written as
    /// iptables-save prints them; switched off again, the UDP jump goes.
    #[test]
    fn dns_capture_redirects_port_53_first_and_only_to_listed_servers() {
        let mut n = node();
        let mut p = pod(Path::new("/x"), 1);
        assert!(!chain_rules(&n, &p).iter().any(|r| r.contains("--dport 53 ")), "off: no DNS rules");
        p.dns_capture = true;
        let r = chain_rules(&n, &p);
        assert_eq!(
            r[..3],
            [
                "-A MESHWIRE_OUTPUT -p udp -m udp --dport 53 -m owner ! --uid-owner 1500 -j REDIRECT --to-ports 15053",
                "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 53 -m owner ! --uid-owner 1500 -j REDIRECT --to-ports 15053",
                "-A MESHWIRE_OUTPUT -d 127.0.0.0/8 -j RETURN",
            ]
        );
        n.dns_servers = vec![Ipv4Addr::new(10, 96, 0, 10).into(), Ipv4Addr::new(192, 0, 2, 53).into(), Ipv4Addr::new(10, 96, 0, 10).into()];
        let dns: Vec<String> = chain_rules(&n, &p).into_iter().filter(|r| r.contains("--dport 53 ")).collect();
        assert_eq!(
            dns,
            [
                "-A MESHWIRE_OUTPUT -d 10.96.0.10/32 -p udp -m udp --dport 53 -m owner ! --uid-owner 1500 -j REDIRECT --to-ports 15053",
                "-A MESHWIRE_OUTPUT -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -m owner ! --uid-owner 1500 -j REDIRECT --to-ports 15053",
                "-A MESHWIRE_OUTPUT -d 192.0.2.53/32 -p udp -m udp --dport 53 -m owner ! --uid-owner 1500 -j REDIRECT --to-ports 15053",
                "-A MESHWIRE_OUTPUT -d 192.0.2.53/32 -p tcp -m tcp --dport 53 -m owner ! --uid-owner 1500 -j REDIRECT --to-ports 15053",
            ]
        );

        assert_eq!(
            zone_rules(&n, &p),
            [
                "-A MESHWIRE_DNS_OUT -d 10.96.0.10/32 -p udp -m udp --dport 53 -m owner --uid-owner 1500 -j CT --zone 1",
                "-A MESHWIRE_DNS_OUT -d 192.0.2.53/32 -p udp -m udp --dport 53 -m owner --uid-owner 1500 -j CT --zone 1",
                "-A MESHWIRE_DNS_OUT -p udp -m udp --sport 15053 -m owner --uid-owner 1500 -j CT --zone 2",
                "-A MESHWIRE_DNS_OUT -d 10.96.0.10/32 -p udp -m udp --dport 53 -m owner ! --uid-owner 1500 -j CT --zone 2",
                "-A MESHWIRE_DNS_OUT -d 192.0.2.53/32 -p udp -m udp --dport 53 -m owner ! --uid-owner 1500 -j CT --zone 2",
                "-A MESHWIRE_DNS_PRE -s 10.96.0.10/32 -p udp -m udp --sport 53 -j CT --zone 1",
                "-A MESHWIRE_DNS_PRE -s 192.0.2.53/32 -p udp -m udp --sport 53 -j CT --zone 1",
            ]
        );
        let host_before = host_nat();
        let ns = TestNetns::new("dns");
        let mut p = pod(&ns.path, ns.cookie());
        p.dns_capture = true;
        apply(&n, &p).unwrap();
        apply(&n, &p).unwrap();
        let nat = ns.nat();
        assert_eq!(nat.matches("-A OUTPUT -p udp -j MESHWIRE_OUTPUT\n").count(), 1, "{nat}");
        for r in chain_rules(&n, &p) {
            assert_eq!(nat.matches(&format!("{r}\n")).count(), 1, "{r} once in:\n{nat}");
        }
        check(&n, &p).unwrap();
        let raw = ns.save("iptables-save", "raw");
        assert_eq!(raw.matches("-A OUTPUT -p udp -j MESHWIRE_DNS_OUT\n").count(), 1, "{raw}");
        assert_eq!(raw.matches("-A PREROUTING -p udp -j MESHWIRE_DNS_PRE\n").count(), 1, "{raw}");
        for r in zone_rules(&n, &p) {
            assert_eq!(raw.matches(&format!("{r}\n")).count(), 1, "{r} once in:\n{raw}");
        }
        let mut off = p.clone();
        off.dns_capture = false;
        assert!(check(&n, &off).unwrap_err().message().contains("UDP jump"));
        apply(&n, &off).unwrap();
        check(&n, &off).unwrap();
        let nat = ns.nat();
        assert!(!nat.contains("-p udp") && !nat.contains("--dport 53 "), "{nat}");
        assert!(!ns.save("iptables-save", "raw").contains("MESHWIRE"), "zones gone with DNS capture");
        assert!(check(&n, &p).unwrap_err().message().contains("no UDP jump"));
        apply(&n, &p).unwrap();
        remove(&p).unwrap();
        assert!(!ns.nat().contains("MESHWIRE"), "{}", ns.nat());
        assert!(!ns.save("iptables-save", "raw").contains("MESHWIRE"));
        assert_eq!(host_nat(), host_before, "the machine's nat table changed");
    }

    /// A TCP connect() from the namespace at `path` (as `fsuid`, when given):
    /// Ok, or the error's kind.
    fn connect_from(path: &Path, to: &str, fsuid: Option<u32>) -> Result<(), std::io::ErrorKind> {
        let to: SocketAddr = to.parse().unwrap();
        crate::testutil::in_netns(path, move || {
            if let Some(uid) = fsuid {
                // This thread only (setfsuid is not glibc's process-wide
                // setxid): the socket's owner is its creator's fsuid.
                unsafe { libc::setfsuid(uid) };
                assert_eq!(unsafe { libc::setfsuid(u32::MAX) } as u32, uid);
            }
            TcpStream::connect_timeout(&to, Duration::from_millis(1500)).map(drop).map_err(|e| e.kind())
        })
    }

    /// A pod namespace (fd00:98::1 on mwa) linked to a peer (fd00:98::2 on mwb), loopbacks up.
    fn linked_pair(tag: &str) -> (TestNetns, TestNetns) {
        let ns = TestNetns::new(tag);
        let peer = TestNetns::new(&format!("{tag}p"));
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["link", "add", "mwa", "type", "veth", "peer", "name", "mwb", "netns", &peer.name]);
        ns.ip(&["addr", "add", "fd00:98::1/64", "dev", "mwa", "nodad"]);
        ns.ip(&["link", "set", "mwa", "up"]);
        peer.ip(&["link", "set", "lo", "up"]);
        peer.ip(&["addr", "add", "fd00:98::2/64", "dev", "mwb", "nodad"]);
        peer.ip(&["link", "set", "mwb", "up"]);
        (ns, peer)
    }

    #[test]
    fn native_ipv6_is_refused_in_a_real_namespace_and_passes_when_told() {
        use std::io::ErrorKind::{ConnectionRefused, TimedOut};
        let (host_before, host6_before) = (host_nat(), host_filter6());
        let (ns, peer) = linked_pair("v6");
        // The pod: lo with an address of its own too.
        ns.ip(&["addr", "add", "fd00:99::1/64", "dev", "lo", "nodad"]);
        let listen = ["[fd00:99::1]:7000", "[::1]:7000", "[fd00:99::1]:5432", "[fd00:98::1]:9090", "[fd00:98::1]:8443"];
        let _listeners: Vec<TcpListener> = crate::testutil::in_netns(&ns.path, move || listen.iter().map(|a| TcpListener::bind(a).unwrap()).collect());
        let _peer_listener = crate::testutil::in_netns(&peer.path, || TcpListener::bind("[fd00:98::2]:7000").unwrap());

        let p = pod(&ns.path, ns.cookie());
        let n = node();
        apply(&n, &p).unwrap();
        let first = ns.filter6();
        apply(&n, &p).unwrap(); // idempotent
        let saved = ns.filter6();
        assert_eq!(ours(&saved), SAVED6, "{saved}");
        assert_eq!(ours(&saved), ours(&first));
        check(&n, &p).unwrap();
        // The IPv4 rules are the same as without IPv6.
        let v4: Vec<String> = ours4(&ns.nat()).iter().map(|l| l.to_string()).collect();

        // connect() from the pod.
        assert_eq!(connect_from(&ns.path, "[fd00:99::1]:7000", None), Err(ConnectionRefused), "not the sidecar: refused");
        assert_eq!(connect_from(&ns.path, "[fd00:98::2]:7000", None), Err(ConnectionRefused), "to the peer: refused");
        assert_eq!(connect_from(&ns.path, "[::1]:7000", None), Ok(()), "loopback");
        assert_eq!(connect_from(&ns.path, "[fd00:99::1]:7000", Some(1500)), Ok(()), "the sidecar");
        assert_eq!(connect_from(&ns.path, "[fd00:99::1]:5432", None), Ok(()), "a port the pod excludes");
        // SYNs coming in: a node-wide excluded inbound port only (its
        // SYN-ACK goes out through MESHWIRE_OUTPUT6 and must pass).
        assert_eq!(connect_from(&peer.path, "[fd00:98::1]:9090", None), Ok(()), "a node-wide excluded inbound port");
        assert_eq!(connect_from(&peer.path, "[fd00:98::1]:8443", None), Err(TimedOut), "a port only the pod excludes: dropped");

        // A rule removed by hand is noticed, and a new apply brings it back.
        let del = Command::new("ip")
            .args(["netns", "exec", &ns.name, "ip6tables", "-D", CHAIN_IN6, "-i", "lo", "-j", "RETURN"])
            .status()
            .unwrap();
        assert!(del.success());
        let e = check(&n, &p).unwrap_err();
        assert!(e.message().contains("-A MESHWIRE_INBOUND6 -i lo -j RETURN"), "{e}");
        apply(&n, &p).unwrap();
        check(&n, &p).unwrap();

        // interception.ipv6 = "pass": a new apply removes the IPv6 chains and
        // keeps IPv4 as it was.
        let pass = node_pass();
        assert!(check(&pass, &p).unwrap_err().message().contains("interception.ipv6 = \"pass\""));
        apply(&pass, &p).unwrap();
        apply(&pass, &p).unwrap();
        let f6 = ns.filter6();
        assert!(!f6.contains("MESHWIRE"), "{f6}");
        assert_eq!(ours4(&ns.nat()), v4);
        check(&pass, &p).unwrap();
        assert!(check(&n, &p).unwrap_err().message().contains("ip6tables filter OUTPUT has no jump to MESHWIRE_OUTPUT6"));
        assert_eq!(connect_from(&ns.path, "[fd00:99::1]:7000", None), Ok(()), "passes");
        assert_eq!(connect_from(&peer.path, "[fd00:98::1]:8443", None), Ok(()), "passes");

        // And back; then remove leaves nothing of ours in either family.
        apply(&n, &p).unwrap();
        assert_eq!(ours(&ns.filter6()), SAVED6);
        remove(&p).unwrap();
        remove(&p).unwrap();
        assert!(!ns.nat().contains("MESHWIRE"), "{}", ns.nat());
        assert!(!ns.filter6().contains("MESHWIRE"), "{}", ns.filter6());
        assert_eq!(connect_from(&ns.path, "[fd00:99::1]:7000", None), Ok(()));
        assert_eq!(host_nat(), host_before, "the machine's nat table changed");
        assert_eq!(host_filter6(), host6_before, "the machine's IPv6 filter table changed");
    }

    /// The IPv6 nat rules: IPv4's shape, with ::1, the IPv6 ranges and the
    /// IPv6 include ranges only; DNS capture only when no IPv4 resolvers are listed.
    #[test]
    fn ipv6_nat_rules_have_the_ipv4_shape() {
        let n = NodeRules { ipv6: Ipv6Policy::Intercept, ..node() };
        let mut p = pod(Path::new("/x"), 1);
        p.out_cidrs6 = vec!["fd00:231::2/128".parse().unwrap(), "fd00:231:9::/64".parse().unwrap()];
        let v4 = chain_rules(&n, &p);
        let v6 = nat_rules(&n, &p, Ip::V6);
        assert_eq!(v6[0], "-A MESHWIRE_OUTPUT -d ::1/128 -j RETURN");
        let excluded: Vec<&str> = v6.iter().map(String::as_str).filter(|r| r.starts_with("-A MESHWIRE_OUTPUT -d ")).collect();
        assert_eq!(excluded, ["-A MESHWIRE_OUTPUT -d ::1/128 -j RETURN", "-A MESHWIRE_OUTPUT -d fd00:231:9::/64 -j RETURN", "-A MESHWIRE_OUTPUT -d fd00:231::2/128 -j RETURN"]);
        // Everything else is IPv4's, line for line.
        let rest = |r: &[String]| -> Vec<String> { r.iter().filter(|l| !l.starts_with("-A MESHWIRE_OUTPUT -d ")).cloned().collect() };
        assert_eq!(rest(&v6), rest(&v4));
        p.incl_out_cidrs = Some(vec!["10.96.0.0/12".parse().unwrap()]);
        p.incl_out_ports = vec![443];
        let redirects = |p: &MeshedPod, ip: Ip| -> Vec<String> { nat_rules(&n, p, ip).into_iter().filter(|r| r.starts_with("-A MESHWIRE_OUTPUT") && r.contains("REDIRECT")).collect() };
        assert_eq!(redirects(&p, Ip::V6), ["-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 443 -j REDIRECT --to-ports 15001"]);
        // A mixed include list: each family's ranges in its own table, once each.
        p.incl_out_cidrs6 = vec!["fd00:50::/32".parse().unwrap(), "2001:db8::7/128".parse().unwrap(), "fd00:50::/32".parse().unwrap()];
        assert_eq!(
            redirects(&p, Ip::V6),
            [
                "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 443 -j REDIRECT --to-ports 15001",
                "-A MESHWIRE_OUTPUT -d fd00:50::/32 -p tcp -j REDIRECT --to-ports 15001",
                "-A MESHWIRE_OUTPUT -d 2001:db8::7/128 -p tcp -j REDIRECT --to-ports 15001",
            ]
        );
        assert_eq!(
            redirects(&p, Ip::V4),
            [
                "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 443 -j REDIRECT --to-ports 15001",
                "-A MESHWIRE_OUTPUT -d 10.96.0.0/12 -p tcp -j REDIRECT --to-ports 15001",
            ]
        );
        p.incl_out_cidrs6.clear();
        p.dns_capture = true;
        assert_eq!(nat_rules(&n, &p, Ip::V6)[0], "-A MESHWIRE_OUTPUT -p udp -m udp --dport 53 -m owner ! --uid-owner 1500 -j REDIRECT --to-ports 15053");
        assert_eq!(zone_rules_of(&n, &p, Ip::V6), zone_rules(&n, &p));
        let listed = NodeRules { dns_servers: vec![Ipv4Addr::new(10, 96, 0, 10).into()], ..n.clone() };
        assert!(!nat_rules(&listed, &p, Ip::V6).iter().any(|r| r.contains("--dport 53 ")));
        assert!(zone_rules_of(&listed, &p, Ip::V6).is_empty());
        assert!(zone_rules(&listed, &p)[0].contains("-d 10.96.0.10/32"));
        // Each family takes its own listed resolvers.
        let both = NodeRules { dns_servers: vec![Ipv4Addr::new(10, 96, 0, 10).into(), "fd00:10:96::a".parse().unwrap()], ..n.clone() };
        let dns6: Vec<String> = nat_rules(&both, &p, Ip::V6).into_iter().filter(|r| r.contains("--dport 53 ")).collect();
        assert_eq!(
            dns6,
            [
                "-A MESHWIRE_OUTPUT -d fd00:10:96::a/128 -p udp -m udp --dport 53 -m owner ! --uid-owner 1500 -j REDIRECT --to-ports 15053",
                "-A MESHWIRE_OUTPUT -d fd00:10:96::a/128 -p tcp -m tcp --dport 53 -m owner ! --uid-owner 1500 -j REDIRECT --to-ports 15053",
            ]
        );
        assert!(chain_rules(&both, &p).iter().filter(|r| r.contains("--dport 53 ")).all(|r| r.contains("-d 10.96.0.10/32")));
        assert_eq!(zone_rules_of(&both, &p, Ip::V6).last().unwrap(), "-A MESHWIRE_DNS_PRE -s fd00:10:96::a/128 -p udp -m udp --sport 53 -j CT --zone 1");
    }

    /// IPv6 DNS is captured whatever interception.ipv6 says: with "refuse"
    /// and "pass" the ip6tables nat table holds DNS capture's rules alone
    /// (and the raw table its zones); without DNS capture, or with [dns]
    /// servers naming no IPv6 resolver, nothing.
    #[test]
    fn ipv6_dns_is_captured_with_every_ipv6_policy() {
        let mut p = pod(Path::new("/x"), 1);
        p.dns_capture = true;
        for policy in [Ipv6Policy::Refuse, Ipv6Policy::Pass, Ipv6Policy::Intercept] {
            let n = NodeRules { ipv6: policy, ..node() };
            let steps = plan(&IP6, true, &n, &p);
            let nat6 = steps.iter().find(|s| s.fam.label == "ip6tables nat").unwrap();
            let want = nat6.want.as_ref().unwrap_or_else(|| panic!("{policy:?}: no ip6tables nat rules"));
            assert_eq!(want[..2], dns_rules(&n, &p, Ip::V6)[..], "{policy:?}");
            if policy != Ipv6Policy::Intercept {
                assert_eq!(want.len(), 2, "{policy:?}: DNS capture's rules alone: {want:?}");
                assert!(steps.iter().any(|s| s.fam.label == "ip6tables filter" && s.fam.chain_out == CHAIN_GUARD_OUT && s.want.is_none()));
            }
            let raw6 = steps.iter().find(|s| s.fam.label == "ip6tables raw").unwrap();
            assert_eq!(raw6.want.as_deref(), Some(&zone_rules_of(&n, &p, Ip::V6)[..]), "{policy:?}");
            // The zones before the REDIRECTs.
            let pos = |label: &str| steps.iter().position(|s| s.fam.label == label).unwrap();
            assert!(pos("ip6tables raw") < pos("ip6tables nat"), "{policy:?}");
            let listed4 = NodeRules { dns_servers: vec![Ipv4Addr::new(10, 96, 0, 10).into()], ..n.clone() };
            let steps = plan(&IP6, true, &listed4, &p);
            if policy != Ipv6Policy::Intercept {
                assert!(steps.iter().filter(|s| s.fam.is_v6() && s.fam.table != "filter").all(|s| s.want.is_none()), "{policy:?}");
            }
        }
        let off = pod(Path::new("/x"), 1);
        assert!(plan(&IP6, true, &node_pass(), &off).iter().filter(|s| s.fam.is_v6()).all(|s| s.want.is_none()));
        assert!(plan(&IP6, false, &node_pass(), &p).iter().filter(|s| s.fam.is_v6()).all(|s| s.want.is_none()));
    }

    /// The same in a real namespace: "pass" with DNS capture puts only the
    /// DNS rules into ip6tables' nat table (and zones into raw); check
    /// holds; capture off takes them out again.
    #[test]
    fn ipv6_dns_rules_with_pass_in_a_real_namespace() {
        let ns = TestNetns::new("dns6p");
        let mut p = pod(&ns.path, ns.cookie());
        p.dns_capture = true;
        let n = node_pass();
        apply(&n, &p).unwrap();
        apply(&n, &p).unwrap();
        check(&n, &p).unwrap();
        let nat6 = ns.save("ip6tables-save", "nat");
        assert_eq!(nat6.matches("-A OUTPUT -p udp -j MESHWIRE_OUTPUT\n").count(), 1, "{nat6}");
        let ours: Vec<&str> = nat6.lines().filter(|l| l.starts_with("-A MESHWIRE_")).collect();
        assert_eq!(ours, dns_rules(&n, &p, Ip::V6), "{nat6}");
        let raw6 = ns.save("ip6tables-save", "raw");
        for r in zone_rules_of(&n, &p, Ip::V6) {
            assert_eq!(raw6.matches(&format!("{r}\n")).count(), 1, "{r} once in:\n{raw6}");
        }
        assert!(!ns.filter6().contains("MESHWIRE"), "pass: no refusal, no guard: {}", ns.filter6());
        let mut off = p.clone();
        off.dns_capture = false;
        assert!(check(&n, &off).is_err());
        apply(&n, &off).unwrap();
        check(&n, &off).unwrap();
        assert!(!ns.save("ip6tables-save", "nat").contains("MESHWIRE"));
        assert!(!ns.save("ip6tables-save", "raw").contains("MESHWIRE"));
        apply(&n, &p).unwrap();
        remove(&p).unwrap();
        assert!(!ns.save("ip6tables-save", "nat").contains("MESHWIRE"));
        assert!(!ns.save("ip6tables-save", "raw").contains("MESHWIRE"));
    }

    /// IP6T_SO_ORIGINAL_DST of an accepted socket, as the kernel's conntrack answers it.
    fn original_dst6(s: &TcpStream) -> std::io::Result<SocketAddr> {
        use std::os::fd::AsRawFd;
        let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        let rc = unsafe { libc::getsockopt(s.as_raw_fd(), libc::SOL_IPV6, 80, &mut sin6 as *mut _ as *mut libc::c_void, &mut len) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(SocketAddr::new(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).into(), u16::from_be(sin6.sin6_port)))
    }

    /// The next connection a listener got: its original destination.
    fn accepted_orig(l: &TcpListener) -> String {
        l.set_nonblocking(true).unwrap();
        for _ in 0..100 {
            match l.accept() {
                Ok((s, _)) => return original_dst6(&s).map_or_else(|e| format!("?{e}"), |a| a.to_string()),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        "nothing accepted".into()
    }

    /// interception.ipv6 = "intercept": the IPv6 nat table steers outbound to
    /// [::1]:15001 and inbound to 15003 (the kernel answers the original
    /// destination), with the exclusions; switching to "refuse" and "pass"
    /// and back leaves exactly one policy's rules.
    #[test]
    fn ipv6_is_steered_by_ip6tables_when_told() {
        use std::io::ErrorKind::ConnectionRefused;
        let (host_before, host6_before) = (host_nat(), host_filter6());
        let (ns, peer) = linked_pair("v6nat");
        peer.ip(&["addr", "add", "fd00:98::3/64", "dev", "mwb", "nodad"]);
        let (out_l, in_l, direct_in) = crate::testutil::in_netns(&ns.path, || {
            (TcpListener::bind("[::1]:15001").unwrap(), TcpListener::bind("[::]:15003").unwrap(), TcpListener::bind("[fd00:98::1]:9090").unwrap())
        });
        let _loop = crate::testutil::in_netns(&ns.path, || TcpListener::bind("[::1]:7000").unwrap());
        let _peer_l: Vec<TcpListener> =
            crate::testutil::in_netns(&peer.path, || ["[fd00:98::2]:7000", "[fd00:98::3]:7000", "[fd00:98::2]:22"].iter().map(|a| TcpListener::bind(a).unwrap()).collect());

        let n = NodeRules { ipv6: Ipv6Policy::Intercept, ..node() };
        let mut p = pod(&ns.path, ns.cookie());
        p.out_cidrs6 = vec!["fd00:98::3/128".parse().unwrap()];
        apply(&n, &p).unwrap();
        apply(&n, &p).unwrap(); // idempotent
        check(&n, &p).unwrap();
        let nat6 = ns.save("ip6tables-save", "nat");
        for r in nat_rules(&n, &p, Ip::V6).iter().chain(["-A OUTPUT -p tcp -j MESHWIRE_OUTPUT".to_string(), "-A PREROUTING -p tcp -j MESHWIRE_INBOUND".to_string()].iter()) {
            assert_eq!(nat6.matches(&format!("{r}\n")).count(), 1, "{r} once in:\n{nat6}");
        }
        let filter6 = ns.filter6();
        for r in guard_rules(&n) {
            assert_eq!(filter6.matches(&format!("{r}\n")).count(), 1, "{r} once in:\n{filter6}");
        }
        assert!(!filter6.contains(CHAIN_OUT6) && !filter6.contains(CHAIN_IN6), "no refusal: {filter6}");

        // Outbound: steered to [::1]:15001, the original destination answered by conntrack.
        assert_eq!(connect_from(&ns.path, "[fd00:98::2]:7000", None), Ok(()));
        assert_eq!(accepted_orig(&out_l), "[fd00:98::2]:7000");
        // Direct: the sidecar, ::1, an excluded port, the pod's excluded range.
        let direct = [("[fd00:98::2]:7000", Some(1500)), ("[::1]:7000", None), ("[fd00:98::2]:22", None), ("[fd00:98::3]:7000", None)];
        for (to, uid) in direct {
            assert_eq!(connect_from(&ns.path, to, uid), Ok(()), "{to}");
        }
        assert_eq!(accepted_orig(&out_l), "nothing accepted", "none of {direct:?} steered");
        // Straight to the capture port from the app: the guard resets it.
        assert_eq!(connect_from(&ns.path, "[::1]:15001", None), Err(ConnectionRefused));
        // Inbound: to the inbound port; a node-wide excluded inbound port direct.
        assert_eq!(connect_from(&peer.path, "[fd00:98::1]:8080", None), Ok(()));
        assert_eq!(accepted_orig(&in_l), "[fd00:98::1]:8080");
        assert_eq!(connect_from(&peer.path, "[fd00:98::1]:9090", None), Ok(()));
        assert_eq!(accepted_orig(&in_l), "nothing accepted");
        direct_in.set_nonblocking(true).unwrap();
        assert!(direct_in.accept().is_ok(), "9090 reached directly");
        // From another node straight to a capture port: reset.
        assert_eq!(connect_from(&peer.path, "[fd00:98::1]:15003", None), Err(ConnectionRefused));

        // "refuse": the steering goes, the refusal comes; and back.
        let refuse = NodeRules { ipv6: Ipv6Policy::Refuse, ..n.clone() };
        assert!(check(&refuse, &p).unwrap_err().message().contains("interception.ipv6 = \"refuse\", but the ip6tables nat table still has"));
        apply(&refuse, &p).unwrap();
        check(&refuse, &p).unwrap();
        assert!(!ns.save("ip6tables-save", "nat").contains("MESHWIRE"));
        assert!(!ns.filter6().contains(CHAIN_GUARD_OUT), "{}", ns.filter6());
        assert_eq!(connect_from(&ns.path, "[fd00:98::2]:7000", None), Err(ConnectionRefused));
        apply(&n, &p).unwrap();
        check(&n, &p).unwrap();
        assert!(!ns.filter6().contains(CHAIN_OUT6));
        assert_eq!(connect_from(&ns.path, "[fd00:98::2]:7000", None), Ok(()));
        assert_eq!(accepted_orig(&out_l), "[fd00:98::2]:7000");
        // "pass": no IPv6 rules at all.
        apply(&node_pass(), &p).unwrap();
        check(&node_pass(), &p).unwrap();
        for t in ["nat", "filter", "raw"] {
            assert!(!ns.save("ip6tables-save", t).contains("MESHWIRE"), "{t}");
        }
        apply(&n, &p).unwrap();
        remove(&p).unwrap();
        for t in ["nat", "filter", "raw"] {
            assert!(!ns.save("ip6tables-save", t).contains("MESHWIRE"), "{t}");
            assert!(!ns.save("iptables-save", t).contains("MESHWIRE"), "{t}");
        }
        assert_eq!(host_nat(), host_before, "the machine's nat table changed");
        assert_eq!(host_filter6(), host6_before, "the machine's IPv6 filter table changed");
    }

    /// A stand-in for an ip6tables program: SCRIPT as an executable file
    /// NAME in DIR, its path for an Ip6 field (leaked: the tests' Ip6 holds
    /// &'static str, as the real one's names are).
    fn stand_in(dir: &Path, name: &str, script: &str) -> &'static str {
        let path = dir.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
    }

    /// A table that fails half way: those changed before it are put back,
    /// the other family is not touched. ip6tables-restore here fails on the
    /// nat table (a wrapper script of the test's).
    #[test]
    fn a_failing_table_leaves_the_pod_as_it_was() {
        let dir = std::env::temp_dir().join(format!("mwut{}-v6fail", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = "#!/bin/sh\nin=$(cat)\ncase \"$in\" in *'*nat'*) echo 'nat: injected failure' >&2; exit 4;; esac\nprintf '%s\\n' \"$in\" | exec ip6tables-restore \"$@\"\n";
        let failing = Ip6 { restore: stand_in(&dir, "ip6tables-restore-fails-on-nat", script), ..IP6 };

        let ns = TestNetns::new("v6fail");
        let p = pod(&ns.path, ns.cookie());
        apply(&node(), &p).unwrap(); // refused, IPv4 steered
        // The tables without iptables-save's timestamped comments.
        let rules = |t: String| -> Vec<String> { t.lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect() };
        let (nat, filter6, nat6) = (rules(ns.nat()), rules(ns.filter6()), rules(ns.save("ip6tables-save", "nat")));
        let n = NodeRules { ipv6: Ipv6Policy::Intercept, ..node() };
        let mut changed = p.clone();
        changed.out_ports.push(6000);
        let e = apply_with(failing, &n, &changed).unwrap_err().to_string();
        for says in ["injected failure", "interception.ipv6 = \"intercept\"", "IPv4 rules were not applied", "put back as they were"] {
            assert!(e.contains(says), "{says} in: {e}");
        }
        assert_eq!(rules(ns.filter6()), filter6, "the IPv6 guard was not taken back");
        assert_eq!(rules(ns.save("ip6tables-save", "nat")), nat6);
        assert_eq!(rules(ns.nat()), nat, "IPv4 touched");
        check(&node(), &p).unwrap();
        remove(&p).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// ip6tables not installed.
    const NO_IP6TABLES: Ip6 = Ip6 { save: "meshwire-test-no-ip6tables-save", restore: "meshwire-test-no-ip6tables-restore", ..IP6 };
    /// A kernel without IPv6 (its /proc/net/if_inet6 absent).
    const NO_IPV6: Ip6 = Ip6 { proc_file: "/proc/thread-self/net/meshwire-test-no-if_inet6", ..IP6 };

    #[test]
    fn without_ipv6_in_the_kernel_there_is_nothing_to_refuse() {
        let ns = TestNetns::new("noip6k");
        let p = pod(&ns.path, ns.cookie());
        apply_with(NO_IPV6, &node(), &p).unwrap();
        check_with(NO_IPV6, &node(), &p).unwrap();
        assert_eq!(ours4(&ns.nat()).len(), chain_rules(&node(), &p).len() + 4, "{}", ns.nat());
        assert!(!ns.filter6().contains("MESHWIRE"), "{}", ns.filter6());
        remove_in_with(NO_IPV6, &ns.path, ns.cookie()).unwrap();
        assert!(!ns.nat().contains("MESHWIRE"), "{}", ns.nat());
    }

    /// Without ip6tables, "intercept" (the default) and "refuse" fail
    /// naming what is missing, before any IPv4 rule is applied.
    #[test]
    fn without_ip6tables_intercept_and_refuse_fail_before_ipv4_and_pass_works() {
        let host_before = host_nat();
        for (v6, missing, n, policy) in [
            (NO_IP6TABLES, "meshwire-test-no-ip6tables-save", node_intercept(), "interception.ipv6 = \"intercept\" cannot steer"),
            (NO_IP6TABLES, "meshwire-test-no-ip6tables-save", node(), "interception.ipv6 = \"refuse\" cannot refuse"),
        ] {
            let ns = TestNetns::new("noip6");
            let p = pod(&ns.path, ns.cookie());
            let e = apply_with(v6, &n, &p).unwrap_err().to_string();
            for says in [missing, "is not installed", policy, "interception.ipv6 = \"pass\"", "IPv4 rules were not applied", "pod ipt-test"] {
                assert!(e.contains(says), "{says} in: {e}");
            }
            assert!(!ns.nat().contains("MESHWIRE"), "IPv4 half applied: {}", ns.nat());
            assert!(!ns.save("iptables-save", "filter").contains("MESHWIRE"), "IPv4 guard half applied");
            let e = check_with(v6, &n, &p).unwrap_err();
            assert!(e.message().contains(missing), "{e}");

            apply_with(v6, &node_pass(), &p).unwrap();
            check_with(v6, &node_pass(), &p).unwrap();
            assert_eq!(ours4(&ns.nat()).len(), chain_rules(&node(), &p).len() + 4, "{}", ns.nat());
            remove_in_with(v6, &ns.path, ns.cookie()).unwrap();
            assert!(!ns.nat().contains("MESHWIRE"), "{}", ns.nat());
        }
        // Removing when there is nothing of IPv6 (never applied) is fine too.
        let ns = TestNetns::new("noip6b");
        let p = pod(&ns.path, ns.cookie());
        apply(&node_pass(), &p).unwrap();
        assert!(!ns.filter6().contains("MESHWIRE"));
        remove(&p).unwrap();
        assert_eq!(host_nat(), host_before, "the machine's nat table changed");
    }

    /// ip6tables installed but the kernel without the IPv6 nat table (no
    /// ip6table_nat module): "intercept" fails naming the table and the
    /// modules, and leaves no rule of either family. The stand-in
    /// ip6tables-save answers for nat as ip6tables does on such a kernel
    /// and runs the real one for the other tables.
    #[test]
    fn without_the_ipv6_nat_table_intercept_fails_naming_it() {
        let dir = std::env::temp_dir().join(format!("mwut{}-no-nat6", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = stand_in(
            &dir,
            "ip6tables-save",
            "#!/bin/sh\n[ \"$1 $2\" = \"-t nat\" ] || exec ip6tables-save \"$@\"\n\
             echo \"ip6tables-save v1.8.9 (legacy): Cannot initialize: Table does not exist (do you need to insmod?)\" >&2\nexit 1\n",
        );
        let no_nat6 = Ip6 { save: fake, ..IP6 };
        let host_before = host_nat();
        let ns = TestNetns::new("nonat6");
        let p = pod(&ns.path, ns.cookie());
        let e = apply_with(no_nat6, &node_intercept(), &p).unwrap_err().to_string();
        for says in [
            "interception.ipv6 = \"intercept\" cannot steer",
            "-t nat",
            "the kernel has no IPv6 nat table",
            "ip6table_nat",
            "IPv4 rules were not applied",
            "interception.ipv6 = \"pass\"",
        ] {
            assert!(e.contains(says), "{says} in: {e}");
        }
        assert!(!ns.nat().contains("MESHWIRE"), "IPv4 half applied: {}", ns.nat());
        assert!(!ns.filter6().contains("MESHWIRE"), "IPv6 guard half applied: {}", ns.filter6());
        let e = check_with(no_nat6, &node_intercept(), &p).unwrap_err();
        assert!(e.message().contains("ip6table_nat"), "{e}");
        // "refuse" needs only the filter table: it works there.
        apply_with(no_nat6, &node(), &p).unwrap();
        check_with(no_nat6, &node(), &p).unwrap();
        remove_in_with(no_nat6, &ns.path, ns.cookie()).unwrap();
        assert!(!ns.nat().contains("MESHWIRE") && !ns.filter6().contains("MESHWIRE"));
        assert_eq!(host_nat(), host_before, "the machine's nat table changed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_host_namespace_is_refused_before_anything_runs() {
        let (host_before, host6_before) = (host_nat(), host_filter6());
        let me = system::current_netns_cookie().unwrap();
        for path in ["/proc/self/ns/net", "/proc/1/ns/net"] {
            // PID 1's namespace may not be ours to open (then it is refused by cookie anyway).
            let Ok(cookie) = system::netns_cookie(Path::new(path)) else { continue };
            let p = pod(Path::new(path), cookie);
            let e = apply(&node(), &p).unwrap_err().to_string();
            assert!(e.contains("host"), "{path}: {e}");
            let e = apply(&node_pass(), &p).unwrap_err().to_string();
            assert!(e.contains("host"), "{path}: {e}");
        }
        // A record whose path now names the host's namespace: refused too.
        let ns = TestNetns::new("gone");
        let stale = pod(Path::new("/proc/self/ns/net"), ns.cookie());
        assert!(apply(&node(), &stale).unwrap_err().to_string().contains("host"));
        assert!(matches!(remove(&stale).unwrap_err(), Error::Invalid(m) if m.contains("host")));
        assert!(matches!(check(&node(), &stale).unwrap_err(), Error::Invalid(m) if m.contains("host")));
        // A path that now names another pod's namespace: left alone.
        let other = TestNetns::new("other");
        let moved = pod(&other.path, ns.cookie());
        assert!(matches!(apply(&node(), &moved).unwrap_err(), Error::NetnsGone(m) if m.contains("is gone")));
        remove(&moved).unwrap();
        assert!(!other.nat().contains("MESHWIRE"));
        assert!(!other.filter6().contains("MESHWIRE"));
        assert!(me != 0);
        assert_eq!(host_nat(), host_before, "the machine's nat table changed");
        assert_eq!(host_filter6(), host6_before, "the machine's IPv6 filter table changed");
    }

    #[test]
    fn a_child_outside_the_pod_namespace_refuses_to_run() {
        // Called from this thread (the host's namespace) with the test
        // namespace as the one expected: the child must not exec.
        let ns = TestNetns::new("child");
        let meta = std::fs::metadata(&ns.path).unwrap();
        let entered = Entered { dev: meta.dev(), ino: meta.ino(), userns: None };
        let e = run(&entered, "iptables-restore", &["--noflush"], Some("*nat\n:MESHWIRE_OUTPUT - [0:0]\nCOMMIT\n")).unwrap_err().msg;
        assert!(e.contains("refused"), "{e}");
        let e = run(&entered, "ip6tables-restore", &["--noflush"], Some("*filter\n:MESHWIRE_OUTPUT6 - [0:0]\nCOMMIT\n")).unwrap_err().msg;
        assert!(e.contains("refused"), "{e}");
        assert!(!host_nat().contains("MESHWIRE"));
        assert!(!host_filter6().contains("MESHWIRE"));
    }

    /// The configuration docs/interception.md's rule listings are for.
    const DOC_CONFIG: &str = "[outbound]\nexclude_ports = [22]\nexclude_cidrs = [\"10.96.0.0/12\", \"fd00:10:96::/112\"]\n";

    /// The doc's pod: its own settings exclude outbound port 5432 and inbound port 8443.
    fn doc_pod(ns: &TestNetns) -> MeshedPod {
        MeshedPod { out_ports: vec![5432], out_cidrs: vec![], in_ports: vec![8443], ..pod(&ns.path, ns.cookie()) }
    }

    /// Our part of one table's save: the table line, our chains, the rules
    /// naming them, COMMIT (built-in chains' counters vary; they are left out).
    fn ours_of_table(save: &str) -> Vec<String> {
        save.lines().filter(|l| l.starts_with('*') || l.contains("MESHWIRE") || *l == "COMMIT").map(str::to_string).collect()
    }

    /// `program -t table` in `ns`, as a listing: a comment naming the
    /// command, then our part of its output.
    fn listing(ns: &TestNetns, program: &str, table: &str) -> String {
        let mut out = format!("# {program} -t {table}\n");
        for l in ours_of_table(&ns.save(program, table)) {
            out += &l;
            out.push('\n');
        }
        out
    }

    /// The pod of DOC_CONFIG with `toml` added to it, its rules applied in
    /// a namespace of the test's own; `f` reads what it wants from there.
    fn applied_doc<T>(toml: &str, dns_capture: bool, f: impl FnOnce(&TestNetns) -> T) -> T {
        let config = Config::parse("docs/interception.md's example", &format!("{DOC_CONFIG}{toml}")).unwrap();
        let n = NodeRules::of(&config);
        let ns = TestNetns::new("doc");
        let p = MeshedPod { dns_capture, ..doc_pod(&ns) };
        apply(&n, &p).unwrap();
        check(&n, &p).unwrap();
        let out = f(&ns);
        remove(&p).unwrap();
        out
    }

    /// Every block of docs/interception.md between `<!-- BEGIN generated:
    /// NAME ... -->` and `<!-- END generated: NAME -->`: its name, the
    /// text between the marker lines, and where that text is.
    fn generated_blocks(doc: &str) -> Vec<(String, std::ops::Range<usize>)> {
        let mut blocks = Vec::new();
        let mut at = 0;
        while let Some(b) = doc[at..].find("<!-- BEGIN generated: ") {
            let begin = at + b;
            let line_end = begin + doc[begin..].find('\n').expect("a BEGIN marker ends its line");
            let name = doc[begin + "<!-- BEGIN generated: ".len()..line_end].split_whitespace().next().unwrap_or("").to_string();
            let end_marker = format!("<!-- END generated: {name} -->");
            let end = line_end + doc[line_end..].find(&end_marker).unwrap_or_else(|| panic!("docs/interception.md: block {name} has no \"{end_marker}\""));
            blocks.push((name, line_end + 1..end));
            at = end + end_marker.len();
        }
        blocks
    }

    /// docs/interception.md's rule listings are what this test sees: the
    /// rules applied for DOC_CONFIG in namespaces of the test's own, read
    /// back with iptables-save and ip6tables-save there. A listing that
    /// differs fails the test; MESHWIRE_BLESS_DOCS=1 rewrites the blocks.
    #[test]
    fn iptables_doc() {
        let (host_before, host6_before) = (host_nat(), host_filter6());
        let mut want: Vec<(&str, String)> = Vec::new();
        want.push(("config", format!("# meshwire.toml (the rest: config/default.toml)\n{DOC_CONFIG}")));
        // interception.ipv6 = "intercept" (the default): IPv6 as IPv4.
        let (v4, intercept6, nat_no_dns) = applied_doc("", false, |ns| {
            (
                listing(ns, "iptables-save", "nat") + &listing(ns, "iptables-save", "filter"),
                listing(ns, "ip6tables-save", "nat") + &listing(ns, "ip6tables-save", "filter"),
                ours_of_table(&ns.nat()),
            )
        });
        want.push(("ipv4", v4));
        want.push(("ipv6-intercept", intercept6));
        want.push(("ipv6-refuse", applied_doc("[interception]\nipv6 = \"refuse\"\n", false, |ns| listing(ns, "ip6tables-save", "filter"))));
        let dns = applied_doc("", true, |ns| {
            let added: Vec<String> = ours_of_table(&ns.nat()).into_iter().filter(|l| !nat_no_dns.contains(l)).collect();
            format!("# iptables-save -t nat: the lines DNS capture adds\n*nat\n{}\n", added.join("\n")) + &listing(ns, "iptables-save", "raw")
        });
        want.push(("dns", dns));
        assert_eq!(host_nat(), host_before, "the machine's nat table changed");
        assert_eq!(host_filter6(), host6_before, "the machine's IPv6 filter table changed");

        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/interception.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let blocks = generated_blocks(&doc);
        let names: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
        let wanted: Vec<&str> = want.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, wanted, "docs/interception.md's generated blocks, in order");
        let mut fresh = doc.clone();
        let mut stale = Vec::new();
        // From the last block back, so that the earlier ranges stay valid.
        for ((name, range), (_, body)) in blocks.iter().zip(&want).rev() {
            let text = format!("```text\n{body}```\n");
            if doc[range.clone()] != text {
                stale.push(format!("block {name} should read:\n{text}"));
                fresh.replace_range(range.clone(), &text);
            }
        }
        if stale.is_empty() {
            return;
        }
        if std::env::var_os("MESHWIRE_BLESS_DOCS").is_some_and(|v| v == "1") {
            std::fs::write(&path, fresh).unwrap();
            eprintln!("rewrote {} blocks of {}", stale.len(), path.display());
        } else {
            panic!(
                "docs/interception.md differs from the rules meshwire installs; rewrite it with\n  \
                 ./bazelw test //loader:unit_test --test_env=MESHWIRE_BLESS_DOCS=1 --test_arg=iptables_doc\n{}",
                stale.join("\n")
            );
        }
    }

    /// Removing reads each family once and restores only the tables that
    /// hold something of ours: a namespace with rules of ours (and a user's
    /// own) loses exactly ours, table by table; one without any gets no
    /// restore at all. The ip6tables commands are logged by stand-ins that
    /// run the real ones.
    #[test]
    fn removing_reads_each_family_once_and_restores_only_tables_with_rules_of_ours() {
        let dir = std::env::temp_dir().join(format!("mwut{}-rmlog", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let logging = |prog: &str| stand_in(&dir, prog, &format!("#!/bin/sh\necho \"{prog} $*\" >> {}\nexec {prog} \"$@\"\n", log.display()));
        let logged = Ip6 { save: logging("ip6tables-save"), restore: logging("ip6tables-restore"), ..IP6 };
        let calls = || {
            let c = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            c
        };
        let tables = [("iptables-save", "nat"), ("iptables-save", "filter"), ("iptables-save", "raw"), ("ip6tables-save", "nat"), ("ip6tables-save", "filter"), ("ip6tables-save", "raw")];

        let ns = TestNetns::new("rmleft");
        let p = pod(&ns.path, ns.cookie());
        apply(&node_intercept(), &p).unwrap();
        let user = |args: &[&str]| {
            let out = Command::new("ip").args(["netns", "exec", &ns.name, "iptables", "-t", "nat"]).args(args).output().unwrap();
            assert!(out.status.success(), "iptables {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        user(&["-N", "USER_CHAIN"]);
        user(&["-A", "OUTPUT", "-p", "tcp", "--dport", "9999", "-j", "USER_CHAIN"]);
        let ours = tables.iter().filter(|(prog, t)| ns.save(prog, t).contains("MESHWIRE")).count();
        assert!(ours >= 4, "intercept leaves IPv4 and IPv6 nat and filter rules: {ours} tables");
        calls();
        assert_eq!(remove_in_with(logged, &ns.path, ns.cookie()).unwrap(), Some(ours));
        for (prog, t) in tables {
            assert!(!ns.save(prog, t).contains("MESHWIRE"), "{prog} -t {t}: {}", ns.save(prog, t));
        }
        let nat = ns.nat();
        assert!(nat.contains(":USER_CHAIN") && nat.contains("-A OUTPUT -p tcp -m tcp --dport 9999 -j USER_CHAIN"), "the user's rules went: {nat}");
        let c = calls();
        assert_eq!(c.matches("ip6tables-save").count(), 1, "{c}");
        assert!(c.contains("ip6tables-restore --noflush"), "{c}");

        // Again: nothing of ours is left, so only the reads run.
        assert_eq!(remove_in_with(logged, &ns.path, ns.cookie()).unwrap(), Some(0));
        assert_eq!(calls(), "ip6tables-save \n");
        // A namespace that never had rules of ours: the same.
        let clean = TestNetns::new("rmnone");
        assert_eq!(remove_in_with(logged, &clean.path, clean.cookie()).unwrap(), Some(0));
        assert_eq!(calls(), "ip6tables-save \n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn table_of_takes_one_table_of_a_dump() {
        let dump = "# Generated\n*raw\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n*nat\n:MESHWIRE_OUTPUT - [0:0]\n-A OUTPUT -p tcp -j MESHWIRE_OUTPUT\nCOMMIT\n";
        assert_eq!(table_of(dump, "nat"), "*nat\n:MESHWIRE_OUTPUT - [0:0]\n-A OUTPUT -p tcp -j MESHWIRE_OUTPUT");
        assert_eq!(table_of(dump, "raw"), "*raw\n:OUTPUT ACCEPT [0:0]");
        assert_eq!(table_of(dump, "filter"), "");
        assert_eq!(parse_save(&V4, table_of(dump, "raw")), Found::default());
        assert_eq!(parse_save(&V4, table_of(dump, "nat")).jumps_out, 1);
    }

    #[test]
    fn a_namespace_that_is_gone_has_nothing_to_remove() {
        let ns = TestNetns::new("del");
        let p = pod(&ns.path, ns.cookie());
        apply(&node(), &p).unwrap();
        drop(ns);
        remove(&p).unwrap();
        assert!(matches!(check(&node(), &p).unwrap_err(), Error::NetnsGone(m) if m.contains("is gone")));
    }
}
