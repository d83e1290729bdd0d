//! The tc programs' decisions on one packet, as tables (the way Katran keeps
//! its fixtures): each row says what the maps hold, the packet, the verdict
//! and the packet that must come out, and runs through the real program
//! (BPF_PROG_TEST_RUN) in a datapath of its own. Beyond the packet, a row
//! names the counters and map entries its packet changes; every other
//! counter and the flow maps' sizes must stay as they were.
//!
//! Connections over several packets (handshakes, closes, floods) are in
//! flows.rs.

use std::net::Ipv4Addr;

use super::harness::{test_settings, Conn, Tc};
use super::packet::*;
use crate::datapath::layout::{Settings, STAT_NAMES};
use crate::datapath::objects;
use crate::datapath::pins;

#[derive(Clone, Copy, Debug)]
pub enum Prog {
    Ingress,
    Egress,
}

impl Prog {
    fn name(self) -> &'static str {
        match self {
            Prog::Ingress => objects::TC_INGRESS.program,
            Prog::Egress => objects::TC_EGRESS.program,
        }
    }
}

/// What holds before the row's packet. POD is always meshed.
pub enum Given {
    /// A setting, before the programs load.
    Setting(fn(&mut Settings)),
    /// Another meshed pod of this node.
    Meshed(Ipv4Addr, u64),
    /// Another meshed pod's IPv6 address.
    Meshed6(std::net::Ipv6Addr, u64),
    /// An excluded inbound port of one pod IPv6 address.
    Excluded6(std::net::Ipv6Addr, u16),
    /// An excluded inbound port: node-wide (None) or one pod's.
    Excluded(Option<Ipv4Addr>, u16),
    /// A redirected connection from this peer port to APP, its handshake
    /// driven through the programs.
    Connection(Ipv4Addr, u16),
    /// A packet that went through before (the program must pass it).
    Sent(Prog, Vec<u8>),
}

/// What the row's packet changes besides itself.
pub enum Then {
    /// A counter (enum mw_stat) goes up by this much.
    Stat(&'static str, u64),
    /// A map gains (or loses) this many entries.
    Entries(&'static str, i64),
    /// The handshake from this peer port afterwards: (dialled port, SYN-ACK seen).
    Handshake(Ipv4Addr, u16, Option<(u16, bool)>),
}

pub struct Case {
    pub what: String,
    pub given: Vec<Given>,
    pub prog: Prog,
    pub input: Vec<u8>,
    pub verdict: i32,
    pub output: Vec<u8>,
    pub then: Vec<Then>,
}

impl Case {
    /// A packet the program passes untouched, changing nothing, until said otherwise.
    fn new(what: impl Into<String>, prog: Prog, input: Vec<u8>) -> Case {
        Case { what: what.into(), given: Vec::new(), prog, output: input.clone(), input, verdict: TC_ACT_UNSPEC, then: Vec::new() }
    }

    pub fn ingress(what: impl Into<String>, input: Vec<u8>) -> Case {
        Case::new(what, Prog::Ingress, input)
    }

    pub fn egress(what: impl Into<String>, input: Vec<u8>) -> Case {
        Case::new(what, Prog::Egress, input)
    }

    pub fn given(mut self, g: Given) -> Case {
        self.given.push(g);
        self
    }

    pub fn givens(mut self, g: Vec<Given>) -> Case {
        self.given.extend(g);
        self
    }

    /// The packet that must come out.
    pub fn out(mut self, frame: Vec<u8>) -> Case {
        self.output = frame;
        self
    }

    /// Answered with `reset`, sent back out of the interface (TC_ACT_REDIRECT).
    pub fn reset(mut self, reset: Vec<u8>) -> Case {
        self.verdict = TC_ACT_REDIRECT;
        self.output = reset;
        self
    }

    /// TC_ACT_SHOT, the packet as it came.
    pub fn dropped(mut self) -> Case {
        self.verdict = TC_ACT_SHOT;
        self
    }

    pub fn stat(mut self, name: &'static str, by: u64) -> Case {
        assert!(STAT_NAMES.contains(&name), "no counter {name}");
        self.then.push(Then::Stat(name, by));
        self
    }

    pub fn entries(mut self, map: &'static str, by: i64) -> Case {
        self.then.push(Then::Entries(map, by));
        self
    }

    pub fn handshake(mut self, remote: Ipv4Addr, rport: u16, h: Option<(u16, bool)>) -> Case {
        self.then.push(Then::Handshake(remote, rport, h));
        self
    }
}

/// The maps whose sizes every row checks.
const FLOW_MAPS: [&str; 6] = [pins::MAP_FLOW4, pins::MAP_FLOW4_SYN, pins::MAP_FLOW4_FIN, pins::MAP_FLOW6, pins::MAP_FLOW6_SYN, pins::MAP_FLOW6_FIN];

fn stats(tc: &Tc) -> Vec<u64> {
    STAT_NAMES.iter().map(|n| tc.stat(n)).collect()
}

fn sizes(tc: &Tc) -> Vec<i64> {
    FLOW_MAPS.iter().map(|m| tc.count(m) as i64).collect()
}

/// The bytes where two frames differ, for a readable failure.
fn diff(got: &[u8], want: &[u8]) -> String {
    let at: Vec<String> = (0..got.len().max(want.len()))
        .filter(|&i| got.get(i) != want.get(i))
        .map(|i| format!("[{i}] {:02x?} want {:02x?}", got.get(i), want.get(i)))
        .collect();
    format!("{} bytes, want {}; {}", got.len(), want.len(), at.join(", "))
}

fn run_case(c: &Case) {
    let mut settings = test_settings(false);
    for g in &c.given {
        if let Given::Setting(set) = g {
            set(&mut settings);
        }
    }
    let tc = Tc::with_settings(&settings);
    for g in &c.given {
        match g {
            Given::Setting(_) => {}
            Given::Meshed(ip, cookie) => tc.mesh(*ip, *cookie),
            Given::Meshed6(ip, cookie) => tc.mesh6(*ip, *cookie),
            Given::Excluded6(ip, port) => tc.exclude6(*ip, *port),
            Given::Excluded(pod, port) => tc.exclude(*pod, *port),
            Given::Connection(remote, rport) => {
                Conn::open(&tc, *remote, *rport);
            }
            Given::Sent(prog, frame) => {
                tc.run(prog.name(), frame);
            }
        }
    }
    let (stats_before, sizes_before) = (stats(&tc), sizes(&tc));
    let (verdict, out) = tc.test_run(c.prog.name(), &c.input);
    assert_eq!(verdict, c.verdict, "verdict");
    assert!(out == c.output, "packet out: {}", diff(&out, &c.output));
    let (stats_after, sizes_after) = (stats(&tc), sizes(&tc));
    for (i, name) in STAT_NAMES.iter().enumerate() {
        let want = c.then.iter().find_map(|t| match t {
            Then::Stat(n, by) if n == name => Some(*by),
            _ => None,
        });
        assert_eq!(stats_after[i] - stats_before[i], want.unwrap_or(0), "{name}");
    }
    for (i, map) in FLOW_MAPS.iter().enumerate() {
        let want = c.then.iter().find_map(|t| match t {
            Then::Entries(m, by) if m == map => Some(*by),
            _ => None,
        });
        assert_eq!(sizes_after[i] - sizes_before[i], want.unwrap_or(0), "entries in {map}");
    }
    for t in &c.then {
        match t {
            Then::Handshake(remote, rport, want) => assert_eq!(tc.handshake(*remote, *rport), *want, "handshake from port {rport}"),
            Then::Entries(map, _) => assert!(FLOW_MAPS.contains(map), "entries of {map} are not checked"),
            Then::Stat(..) => {}
        }
    }
}

/// Run every row; report all that fail, by name.
pub fn run_table(table: Vec<Case>) {
    assert!(!table.is_empty());
    let failed: Vec<String> = table
        .iter()
        .filter_map(|c| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(c)))
                .err()
                .map(|e| format!("{}: {}", c.what, e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()))
        })
        .collect();
    assert!(failed.is_empty(), "{} of {} rows failed:\n  {}", failed.len(), table.len(), failed.join("\n  "));
}

const REDIRECTED: &str = "MW_STAT_TC_REDIRECTED";
const EXCLUDED: &str = "MW_STAT_TC_EXCLUDED";

/// IP options: IHL 6 (NOP NOP NOP EOL) and IHL 15, the most there is
/// (record route with room for 9 addresses, EOL).
fn ip_options() -> [(&'static str, Vec<u8>); 2] {
    let mut longest = vec![7u8, 39, 4];
    longest.resize(40, 0);
    [("IHL 6", vec![1, 1, 1, 0]), ("IHL 15", longest)]
}

// ---- the tables ----------------------------------------------------------------

/// Steered to the sidecar (ingress) or back from the dialled port (egress).
pub fn redirected() -> Vec<Case> {
    let mut t = vec![Case::ingress("a SYN to an app port goes to the sidecar; a handshake, not a flow yet", Seg::inbound(40000, SYN).frame())
        .out(Seg::inbound(40000, SYN).to_port(INBOUND).frame())
        .stat(REDIRECTED, 1)
        .entries(pins::MAP_FLOW4_SYN, 1)
        .handshake(REMOTE, 40000, Some((APP, false)))];
    for (i, (ihl, opts)) in ip_options().into_iter().enumerate() {
        let rport = 40010 + i as u16;
        let syn = Seg::inbound(rport, SYN).ip_opts(&opts);
        t.push(
            Case::ingress(format!("IP options ({ihl}) do not hide the TCP header"), syn.frame())
                .out(syn.clone().to_port(INBOUND).frame())
                .stat(REDIRECTED, 1)
                .entries(pins::MAP_FLOW4_SYN, 1)
                .handshake(REMOTE, rport, Some((APP, false))),
        );
        let synack = Seg::tcp(POD, INBOUND, REMOTE, rport, SYN | ACK).seq(7, 1001).ip_opts(&opts);
        t.push(
            Case::egress(format!("the sidecar's SYN-ACK leaves from the dialled port, IP options ({ihl})"), synack.frame())
                .given(Given::Sent(Prog::Ingress, syn.frame()))
                .out(synack.from_port(APP).frame())
                .handshake(REMOTE, rport, Some((APP, true))),
        );
    }
    let first_fragment = Seg::inbound(44001, SYN).payload(&[0; 64]).frag(0x2000);
    t.push(
        Case::ingress("the first fragment (MF set, offset 0) has the TCP header: redirected", first_fragment.frame())
            .out(first_fragment.to_port(INBOUND).frame())
            .stat(REDIRECTED, 1)
            .entries(pins::MAP_FLOW4_SYN, 1),
    );
    let syn = Seg::tcp(REMOTE, 41010, POD, 9002, SYN);
    t.push(
        Case::ingress("another pod's excluded port is not this pod's", syn.frame())
            .given(Given::Meshed(OTHER_POD, 78))
            .given(Given::Excluded(Some(OTHER_POD), 9002))
            .out(syn.to_port(INBOUND).frame())
            .stat(REDIRECTED, 1)
            .entries(pins::MAP_FLOW4_SYN, 1),
    );
    t
}

/// Passed as they are, or dropped: exclusions, capture ports, other
/// connections and addresses.
pub fn left_alone() -> Vec<Case> {
    vec![
        Case::ingress("a node-wide excluded port", Seg::tcp(REMOTE, 41000, POD, 9000, SYN).frame()).given(Given::Excluded(None, 9000)).stat(EXCLUDED, 1),
        Case::ingress("this pod's excluded port", Seg::tcp(REMOTE, 41001, POD, 9001, SYN).frame()).given(Given::Excluded(Some(POD), 9001)).stat(EXCLUDED, 1),
        Case::ingress("another pod's excluded port, to that pod", Seg::tcp(REMOTE, 41011, OTHER_POD, 9002, SYN).frame())
            .given(Given::Meshed(OTHER_POD, 78))
            .given(Given::Excluded(Some(OTHER_POD), 9002))
            .stat(EXCLUDED, 1),
        Case::egress("the sidecar's reply from an excluded port", Seg::tcp(POD, 9000, REMOTE, 41000, SYN | ACK).frame()).given(Given::Excluded(None, 9000)),
        Case::ingress("an address that is not a meshed pod", Seg::tcp(REMOTE, 42000, Ipv4Addr::new(10, 2, 0, 99), APP, SYN).frame()),
        Case::ingress("a SYN straight to the sidecar's inbound port from another node: nothing steered it, reset", Seg::tcp(REMOTE, 41005, POD, INBOUND, SYN).frame())
            .reset(reset_of(&Seg::tcp(REMOTE, 41005, POD, INBOUND, SYN)))
            .stat("MW_STAT_LOOP_REFUSED", 1),
        Case::ingress("a SYN straight to the sidecar's outbound port from another node: reset", Seg::tcp(REMOTE, 41006, POD, OUTBOUND, SYN).frame())
            .reset(reset_of(&Seg::tcp(REMOTE, 41006, POD, OUTBOUND, SYN)))
            .stat("MW_STAT_LOOP_REFUSED", 1),
        Case::ingress(
            "a SYN with data (Fast Open) and IP options straight to the inbound port: reset, acknowledging the data, without it",
            Seg::tcp(REMOTE, 41007, POD, INBOUND, SYN).seq(77, 0).payload(b"GET / HTTP/1.1\r\n").ip_opts(&[1, 1, 1, 0]).frame(),
        )
        .reset(reset_of(&Seg::tcp(REMOTE, 41007, POD, INBOUND, SYN).seq(77, 0).payload(b"GET / HTTP/1.1\r\n").ip_opts(&[1, 1, 1, 0])))
        .stat("MW_STAT_LOOP_REFUSED", 1),
        // The capture ports count among the excluded ones (meshwire_policy.h).
        Case::ingress("to the inbound port from a meshed pod of this node (a connect4 steered it): passes", Seg::tcp(OTHER_POD, 41020, POD, INBOUND, SYN).frame())
            .given(Given::Meshed(OTHER_POD, 78))
            .stat(EXCLUDED, 1),
        Case::ingress("to the outbound port from a meshed pod of this node: passes, never steered to the inbound port", Seg::tcp(OTHER_POD, 41021, POD, OUTBOUND, SYN).frame())
            .given(Given::Meshed(OTHER_POD, 78))
            .stat(EXCLUDED, 1),
        Case::ingress("a stray ACK of no connection", Seg::inbound(45000, ACK).frame()),
        Case::ingress("a redirected connection's peer port, SYN to another (excluded) port", Seg::tcp(REMOTE, 45001, POD, 22, SYN).frame())
            .given(Given::Connection(REMOTE, 45001))
            .given(Given::Excluded(None, 22))
            .stat(EXCLUDED, 1),
        Case::ingress("a redirected connection's peer port, ACK to another (excluded) port", Seg::tcp(REMOTE, 45001, POD, 22, ACK).frame())
            .given(Given::Connection(REMOTE, 45001))
            .given(Given::Excluded(None, 22)),
        Case::ingress("a packet that already carries the sidecar's port is not rewritten again", Seg::tcp(REMOTE, 45001, POD, INBOUND, ACK).frame())
            .given(Given::Connection(REMOTE, 45001)),
        Case::egress("from the sidecar's port to a peer without a flow", Seg::tcp(POD, INBOUND, REMOTE, 45999, ACK).frame()).given(Given::Connection(REMOTE, 45001)),
        Case::egress("from the app's port itself", Seg::tcp(POD, APP, REMOTE, 45001, ACK).frame()).given(Given::Connection(REMOTE, 45001)),
        // The flow key has no local port: only the sidecar's inbound port may be
        // rewritten back (the row above cannot tell, its rewrite would change nothing).
        Case::egress("from another port of the pod to a redirected connection's peer port", Seg::tcp(POD, 9999, REMOTE, 45001, ACK).frame())
            .given(Given::Connection(REMOTE, 45001)),
        Case::ingress("a handshake's peer port, ACK to another port: not that handshake's", Seg::tcp(REMOTE, 45002, POD, 22, ACK).seq(1001, 7).frame())
            .given(Given::Sent(Prog::Ingress, Seg::inbound(45002, SYN).frame())),
        Case::ingress("a later fragment whose payload looks like a SYN to 8080", Seg::inbound(44000, SYN).frag(185).frame()),
        Case::ingress("a later fragment, MF set", Seg::inbound(44000, SYN).frag(0x2000 | 185).frame()),
    ]
}

/// Other protocols and malformed IPv4 packets: passed untouched, no error counted.
pub fn malformed() -> Vec<Case> {
    // ARP request who-has 10.2.0.9.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 0x01, 10, 1, 0, 7, 0, 0, 0, 0, 0, 0, 10, 2, 0, 9]);
    let with_first_byte = |b: u8| {
        let mut f = Seg::inbound(43002, SYN).frame();
        f[ETH_HLEN] = b;
        f
    };
    let mut long_ihl = Seg::inbound(43004, SYN).frame();
    long_ihl[ETH_HLEN] = 0x4f;
    long_ihl.truncate(ETH_HLEN + 40);
    let mut cut = Seg::inbound(43003, SYN).frame();
    cut.truncate(ETH_HLEN + 20 + 10);
    vec![
        Case::ingress("UDP", Seg::inbound(43000, SYN).udp().frame()),
        Case::ingress("ARP", arp),
        Case::ingress("IHL below 5", with_first_byte(0x44)),
        Case::ingress("IP version 5", with_first_byte(0x55)),
        Case::ingress("cut inside the TCP header", cut),
        Case::ingress("IHL pointing past the end of the packet", long_ihl),
    ]
}

const TC6_DROPPED: &str = "MW_STAT_TC6_DROPPED";

/// IPv6 (interception.ipv6): a connection's first packet to a pod is dropped
/// unless IPv6 is passed; everything else passes.
pub fn ipv6() -> Vec<Case> {
    let mut udp = frame6(&[], APP, SYN);
    udp[ETH_HLEN + 6] = IPPROTO_UDP;
    vec![
        Case::ingress("an IPv6 SYN to the pod is dropped", frame6(&[], APP, SYN)).dropped().stat(TC6_DROPPED, 1),
        Case::ingress("an IPv6 SYN behind hop-by-hop and destination options is dropped", frame6(&[(NEXTHDR_HOP, 8, 0), (NEXTHDR_DEST, 16, 0)], APP, SYN))
            .dropped()
            .stat(TC6_DROPPED, 1),
        Case::ingress("the first fragment of a fragmented IPv6 SYN is dropped", frame6(&[(NEXTHDR_FRAGMENT, 8, 0)], APP, SYN)).dropped().stat(TC6_DROPPED, 1),
        Case::ingress("an IPv6 SYN-ACK passes", frame6(&[], APP, SYN | ACK)),
        Case::ingress("an IPv6 ACK passes", frame6(&[], APP, ACK)),
        Case::ingress("a later IPv6 fragment passes", frame6(&[(NEXTHDR_FRAGMENT, 8, 100)], APP, SYN)),
        Case::ingress("IPv6 UDP passes", udp),
        Case::ingress("an IPv6 SYN to a node-wide excluded port (kubelet probes) passes", frame6(&[], 9000, SYN)).given(Given::Excluded(None, 9000)),
        Case::egress("egress is not concerned with IPv6", frame6(&[], APP, SYN)),
        Case::ingress("with IPv6 passed, an IPv6 SYN goes through", frame6(&[], APP, SYN)).given(Given::Setting(|s| s.ipv6 = crate::datapath::layout::IPV6_PASS)),
        // "intercept": an address of the pod that is not registered is not steered but refused.
        Case::ingress("with IPv6 intercepted, an IPv6 SYN to an address of the pod not registered is dropped", frame6(&[], APP, SYN))
            .given(Given::Setting(|s| s.ipv6 = crate::datapath::layout::IPV6_INTERCEPT))
            .dropped()
            .stat(TC6_DROPPED, 1),
        // Same-node inbound: connect6 steered a meshed pod's sidecar to the inbound port.
        Case::ingress("with IPv6 intercepted, a SYN to the inbound port from a meshed pod's IPv6 address passes", frame6(&[], INBOUND, SYN))
            .given(Given::Setting(|s| s.ipv6 = crate::datapath::layout::IPV6_INTERCEPT))
            .given(Given::Meshed6(FRAME6_SRC, 78))
            .given(Given::Meshed6(FRAME6_DST, 77))
            .stat(EXCLUDED, 1),
        Case::ingress("with IPv6 refused, a SYN to the inbound port from a meshed pod's IPv6 address is dropped", frame6(&[], INBOUND, SYN))
            .given(Given::Meshed6(FRAME6_SRC, 78))
            .dropped()
            .stat(TC6_DROPPED, 1),
    ]
}

/// A row of the IPv6 tables: interception.ipv6 = "intercept", POD6 meshed.
fn v6(c: Case) -> Case {
    c.given(Given::Setting(|s| s.ipv6 = crate::datapath::layout::IPV6_INTERCEPT)).given(Given::Meshed6(POD6, 77))
}

/// The packets of a redirected IPv6 connection from `rport`, through the programs
/// as they went: the SYN, the sidecar's SYN-ACK (seq 5000), the peer's ACK.
fn established6(rport: u16) -> Vec<Given> {
    vec![
        Given::Sent(Prog::Ingress, Seg6::inbound(rport, SYN).frame()),
        Given::Sent(Prog::Egress, Seg6::outbound(rport, SYN | ACK).seq(5000, 1001).frame()),
        Given::Sent(Prog::Ingress, Seg6::inbound(rport, ACK).seq(1001, 5001).frame()),
    ]
}

const FLOW6: &str = pins::MAP_FLOW6;
const FLOW6_SYN: &str = pins::MAP_FLOW6_SYN;
const FLOW6_FIN: &str = pins::MAP_FLOW6_FIN;
const HOP_ROUTING_DEST: [(u8, usize, u16); 3] = [(NEXTHDR_HOP, 8, 0), (NEXTHDR_ROUTING, 24, 0), (NEXTHDR_DEST, 16, 0)];

/// Inbound IPv6 from another node (interception.ipv6 = "intercept"): the
/// IPv4 rows' decisions, with extension headers, checksums (every output
/// frame is built with its checksum computed whole: equal bytes are a right
/// checksum) and the IPv6 flow maps.
pub fn inbound6() -> Vec<Case> {
    let syn = Seg6::inbound(41000, SYN);
    let mut udp = syn.frame();
    udp[ETH_HLEN + 6] = IPPROTO_UDP;
    let syn_ext = Seg6::inbound(41001, SYN).ext(&HOP_ROUTING_DEST);
    let straight = Seg6::inbound(41002, SYN).to_port(INBOUND).payload(b"x");
    let straight_ext = Seg6::inbound(41003, SYN).to_port(OUTBOUND).ext(&HOP_ROUTING_DEST);
    let flood: Vec<Given> = (0..64).map(|i| Given::Sent(Prog::Ingress, Seg6::inbound(50000 + i, SYN).frame())).collect();
    vec![
        v6(Case::ingress("a SYN to the pod's app port goes to the inbound port", syn.frame()))
            .out(syn.clone().to_port(INBOUND).frame())
            .stat(REDIRECTED, 1)
            .entries(FLOW6_SYN, 1),
        v6(Case::ingress("a SYN behind hop-by-hop, routing and destination options goes to the inbound port", syn_ext.frame()))
            .out(syn_ext.clone().to_port(INBOUND).frame())
            .stat(REDIRECTED, 1)
            .entries(FLOW6_SYN, 1),
        v6(Case::ingress("the first fragment (offset 0) of a SYN goes to the inbound port", Seg6::inbound(41004, SYN).ext(&[(NEXTHDR_FRAGMENT, 8, 0)]).frame()))
            .out(Seg6::inbound(41004, SYN).ext(&[(NEXTHDR_FRAGMENT, 8, 0)]).to_port(INBOUND).frame())
            .stat(REDIRECTED, 1)
            .entries(FLOW6_SYN, 1),
        v6(Case::ingress("a later fragment is untouched", Seg6::inbound(41005, SYN).ext(&[(NEXTHDR_FRAGMENT, 8, 100)]).frame())),
        v6(Case::ingress("UDP is untouched", udp)),
        v6(Case::ingress("a SYN to a node-wide excluded port passes", Seg6::inbound(41006, SYN).to_port(9000).frame()))
            .given(Given::Excluded(None, 9000))
            .stat(EXCLUDED, 1),
        v6(Case::ingress("a SYN to the pod's own excluded port (by its IPv6 address) passes", Seg6::inbound(41007, SYN).to_port(9090).frame()))
            .given(Given::Excluded6(POD6, 9090))
            .stat(EXCLUDED, 1),
        v6(Case::ingress("another pod's excluded port is not this pod's", Seg6::inbound(41008, SYN).to_port(9090).frame()))
            .given(Given::Excluded6(OTHER_POD6, 9090))
            .out(Seg6::inbound(41008, SYN).to_port(INBOUND).frame())
            .stat(REDIRECTED, 1)
            .entries(FLOW6_SYN, 1),
        v6(Case::ingress("a SYN straight to the inbound port from another node: reset", straight.frame()))
            .reset(reset6_of(&straight))
            .stat("MW_STAT_LOOP_REFUSED", 1),
        v6(Case::ingress("a SYN straight to the outbound port behind extension headers: reset without them", straight_ext.frame()))
            .reset(reset6_of(&straight_ext))
            .stat("MW_STAT_LOOP_REFUSED", 1),
        v6(Case::ingress("a SYN to the inbound port from a meshed pod of this node passes (connect6 steered it)", Seg6::inbound(41009, SYN).to_port(INBOUND).frame()))
            .given(Given::Meshed6(REMOTE6, 78))
            .stat(EXCLUDED, 1),
        v6(Case::ingress("a SYN to an IPv6 address of the pod not registered is dropped", Seg6::tcp(REMOTE6, 41010, OTHER_POD6, APP, SYN).frame()))
            .dropped()
            .stat(TC6_DROPPED, 1),
        v6(Case::egress("the sidecar's SYN-ACK leaves from the dialled port", Seg6::outbound(41000, SYN | ACK).seq(5000, 1001).frame()))
            .given(Given::Sent(Prog::Ingress, syn.frame()))
            .out(Seg6::outbound(41000, SYN | ACK).seq(5000, 1001).from_port(APP).frame()),
        v6(Case::egress("a SYN-ACK of no handshake is untouched", Seg6::outbound(41011, SYN | ACK).seq(5000, 1001).frame())),
        v6(Case::egress("from another port of the pod to an established flow's peer port is untouched", Seg6::tcp(POD6, 9999, REMOTE6, 41023, ACK).seq(1, 1).frame()))
            .givens(established6(41023)),
        v6(Case::ingress("a handshake's peer port, ACK to another port: not that handshake's", Seg6::inbound(41024, ACK).seq(1001, 7).to_port(22).frame()))
            .given(Given::Sent(Prog::Ingress, Seg6::inbound(41024, SYN).frame())),
        v6(Case::ingress("the peer's ACK of the SYN-ACK moves the handshake into mw_flow6", Seg6::inbound(41012, ACK).seq(1001, 5001).frame()))
            .given(Given::Sent(Prog::Ingress, Seg6::inbound(41012, SYN).frame()))
            .given(Given::Sent(Prog::Egress, Seg6::outbound(41012, SYN | ACK).seq(5000, 1001).frame()))
            .out(Seg6::inbound(41012, ACK).seq(1001, 5001).to_port(INBOUND).frame())
            .entries(FLOW6, 1)
            .entries(FLOW6_SYN, -1),
        v6(Case::ingress("an ACK that does not acknowledge the SYN-ACK leaves the handshake as it is", Seg6::inbound(41013, ACK).seq(1001, 4000).frame()))
            .given(Given::Sent(Prog::Ingress, Seg6::inbound(41013, SYN).frame()))
            .given(Given::Sent(Prog::Egress, Seg6::outbound(41013, SYN | ACK).seq(5000, 1001).frame()))
            .out(Seg6::inbound(41013, ACK).seq(1001, 4000).to_port(INBOUND).frame()),
        v6(Case::ingress("data of an established flow goes to the inbound port", Seg6::inbound(41014, ACK | PSH).seq(1001, 5001).payload(b"GET / odd").frame()))
            .givens(established6(41014))
            .out(Seg6::inbound(41014, ACK | PSH).seq(1001, 5001).payload(b"GET / odd").to_port(INBOUND).frame()),
        v6(Case::egress("the sidecar's data leaves from the dialled port", Seg6::outbound(41015, ACK | PSH).seq(5001, 1001).payload(b"200 OK").frame()))
            .givens(established6(41015))
            .out(Seg6::outbound(41015, ACK | PSH).seq(5001, 1001).payload(b"200 OK").from_port(APP).frame()),
        v6(Case::ingress("a RST from the peer ends the flow (rewritten, then forgotten)", Seg6::inbound(41016, RST).seq(1001, 0).frame()))
            .givens(established6(41016))
            .out(Seg6::inbound(41016, RST).seq(1001, 0).to_port(INBOUND).frame())
            .stat("MW_STAT_TC_FLOW_CLOSED", 1)
            .entries(FLOW6, -1),
        v6(Case::egress("a RST from the sidecar ends the flow", Seg6::outbound(41017, RST | ACK).seq(5001, 1001).frame()))
            .givens(established6(41017))
            .out(Seg6::outbound(41017, RST | ACK).seq(5001, 1001).from_port(APP).frame())
            .stat("MW_STAT_TC_FLOW_CLOSED", 1)
            .entries(FLOW6, -1),
        v6(Case::ingress("the ACK of both FINs ends the flow", Seg6::inbound(41018, ACK).seq(1002, 5002).frame()))
            .givens(established6(41018))
            .given(Given::Sent(Prog::Ingress, Seg6::inbound(41018, FIN | ACK).seq(1001, 5001).frame()))
            .given(Given::Sent(Prog::Egress, Seg6::outbound(41018, FIN | ACK).seq(5001, 1002).frame()))
            .out(Seg6::inbound(41018, ACK).seq(1002, 5002).to_port(INBOUND).frame())
            .stat("MW_STAT_TC_FLOW_CLOSED", 1)
            .entries(FLOW6, -1)
            .entries(FLOW6_FIN, -1),
        v6(Case::ingress("one FIN only: the flow stays", Seg6::inbound(41019, ACK).seq(1002, 5001).frame()))
            .givens(established6(41019))
            .given(Given::Sent(Prog::Ingress, Seg6::inbound(41019, FIN | ACK).seq(1001, 5001).frame()))
            .out(Seg6::inbound(41019, ACK).seq(1002, 5001).to_port(INBOUND).frame()),
        v6(Case::ingress("a spoofed SYN from an established flow's peer port does not take its entry over", Seg6::inbound(41020, SYN).seq(777, 0).frame()))
            .givens(established6(41020))
            .out(Seg6::inbound(41020, SYN).seq(777, 0).to_port(INBOUND).frame())
            .stat(REDIRECTED, 1)
            .entries(FLOW6_SYN, 1),
        v6(Case::ingress("after a SYN flood an established flow is still rewritten", Seg6::inbound(41021, ACK | PSH).seq(1001, 5001).payload(b"ok").frame()))
            .givens(established6(41021))
            .givens(flood)
            .out(Seg6::inbound(41021, ACK | PSH).seq(1001, 5001).payload(b"ok").to_port(INBOUND).frame()),
        v6(Case::egress("IPv4 egress is unchanged beside IPv6 flows", Seg::tcp(POD, INBOUND, REMOTE, 41022, SYN | ACK).frame()))
            .givens(established6(41022)),
    ]
}

#[test]
fn inbound_ipv6_packets() {
    run_table(inbound6());
}

/// The rewritten and reset IPv6 frames carry the checksum recomputed from their bytes.
#[test]
fn ipv6_rewrites_and_resets_carry_right_checksums() {
    let settings = {
        let mut s = test_settings(false);
        s.ipv6 = crate::datapath::layout::IPV6_INTERCEPT;
        s
    };
    let tc = Tc::with_settings(&settings);
    tc.mesh6(POD6, 77);
    let syn = Seg6::inbound(42000, SYN).ext(&HOP_ROUTING_DEST).payload(b"odd");
    let (verdict, out) = tc.test_run(objects::TC_INGRESS.program, &syn.frame());
    assert_eq!(verdict, TC_ACT_UNSPEC);
    assert_tcp6_checksum(&out);
    assert_eq!(&out[out.len() - 3 - 20 + 2..out.len() - 3 - 20 + 4], &INBOUND.to_be_bytes(), "destination port");
    let straight = Seg6::inbound(42001, SYN).to_port(INBOUND).ext(&HOP_ROUTING_DEST).payload(b"data");
    let (verdict, out) = tc.test_run(objects::TC_INGRESS.program, &straight.frame());
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_tcp6_checksum(&out);
    assert_eq!(out.len(), ETH_HLEN + 40 + 20, "reset: fixed header and TCP header only");
}

#[test]
fn redirected_packets() {
    run_table(redirected());
}

#[test]
fn packets_left_alone() {
    run_table(left_alone());
}

#[test]
fn other_protocols_and_malformed_packets() {
    run_table(malformed());
}

#[test]
fn ipv6_packets() {
    run_table(ipv6());
}
