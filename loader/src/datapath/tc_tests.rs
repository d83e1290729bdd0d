//! The tc programs on crafted packets (BPF_PROG_TEST_RUN), and attached for
//! real to a veth pair between two network namespaces of the test's own.
//! Run as root; every test mounts a private bpffs (never /sys/fs/bpf).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use crate::config::Config;
use crate::datapath;
use crate::datapath::layout::{Flow4, Flow4Key, In4Key, Settings, FLOW_F_FIN_IN, FLOW_F_FIN_OUT, STAT_NAMES};
use crate::libbpf::{MapFd, Object};
use crate::datapath::objects;
use crate::datapath::pins;
use crate::testutil::{in_netns, PrivateBpffs};

const TC_ACT_UNSPEC: i32 = -1;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

const REMOTE: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 7);
const POD: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 9);
const OTHER_POD: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 10);
const APP: u16 = 8080;
const INBOUND: u16 = 15003;
const OUTBOUND: u16 = 15001;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const ETH_HLEN: usize = 14;

// ---- packets -------------------------------------------------------------

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The TCP/UDP checksum of `seg` (its checksum field zeroed), pseudo header included.
fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, seg: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    !fold(sum16(seg, sum16(&pseudo, 0)))
}

/// An IPv4 packet in an Ethernet frame, built field by field.
#[derive(Clone, Debug)]
struct Seg {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: Vec<u8>,
    ip_opts: Vec<u8>,
    proto: u8,
    /// iphdr.frag_off, host order (MF 0x2000 | offset in 8-byte units)
    frag: u16,
}

impl Seg {
    fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Seg {
        Seg { src, dst, sport, dport, flags, seq: 1000, ack: 0, payload: Vec::new(), ip_opts: Vec::new(), proto: IPPROTO_TCP, frag: 0 }
    }

    /// From the remote peer to the pod's app port.
    fn inbound(sport: u16, flags: u8) -> Seg {
        Seg::tcp(REMOTE, sport, POD, APP, flags)
    }

    fn seq(mut self, seq: u32, ack: u32) -> Seg {
        self.seq = seq;
        self.ack = ack;
        self
    }

    fn payload(mut self, p: &[u8]) -> Seg {
        self.payload = p.to_vec();
        self
    }

    fn ip_opts(mut self, o: &[u8]) -> Seg {
        assert_eq!(o.len() % 4, 0);
        self.ip_opts = o.to_vec();
        self
    }

    fn frame(&self) -> Vec<u8> {
        let mut l4 = Vec::new();
        if self.proto == IPPROTO_UDP {
            l4.extend_from_slice(&self.sport.to_be_bytes());
            l4.extend_from_slice(&self.dport.to_be_bytes());
            l4.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
            l4.extend_from_slice(&self.payload);
            let c = l4_checksum(self.src, self.dst, self.proto, &l4);
            l4[6..8].copy_from_slice(&c.to_be_bytes());
        } else {
            l4.extend_from_slice(&self.sport.to_be_bytes());
            l4.extend_from_slice(&self.dport.to_be_bytes());
            l4.extend_from_slice(&self.seq.to_be_bytes());
            l4.extend_from_slice(&self.ack.to_be_bytes());
            l4.extend_from_slice(&[5 << 4, self.flags]);
            l4.extend_from_slice(&0xffffu16.to_be_bytes()); // window
            l4.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
            l4.extend_from_slice(&self.payload);
            let c = l4_checksum(self.src, self.dst, self.proto, &l4);
            l4[16..18].copy_from_slice(&c.to_be_bytes());
        }
        let ihl = 5 + self.ip_opts.len() / 4;
        let tot_len = (ihl * 4 + l4.len()) as u16;
        let mut ip = vec![0x40 | ihl as u8, 0];
        ip.extend_from_slice(&tot_len.to_be_bytes());
        ip.extend_from_slice(&0x1234u16.to_be_bytes());
        ip.extend_from_slice(&self.frag.to_be_bytes());
        ip.extend_from_slice(&[64, self.proto, 0, 0]);
        ip.extend_from_slice(&self.src.octets());
        ip.extend_from_slice(&self.dst.octets());
        ip.extend_from_slice(&self.ip_opts);
        let c = !fold(sum16(&ip, 0));
        ip[10..12].copy_from_slice(&c.to_be_bytes());

        let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
        f.extend_from_slice(&ip);
        f.extend_from_slice(&l4);
        f
    }
}

/// The TCP header's offset in a frame built by [`Seg::frame`].
fn l4_off(frame: &[u8]) -> usize {
    ETH_HLEN + (frame[ETH_HLEN] & 0x0f) as usize * 4
}

fn ports(frame: &[u8]) -> (u16, u16) {
    let o = l4_off(frame);
    (u16::from_be_bytes([frame[o], frame[o + 1]]), u16::from_be_bytes([frame[o + 2], frame[o + 3]]))
}

/// Recompute the TCP checksum of a frame (pseudo header included) and
/// compare it with the one it carries.
fn assert_tcp_checksum(frame: &[u8]) {
    let ip = &frame[ETH_HLEN..];
    let tot_len = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let ihl = (ip[0] & 0x0f) as usize * 4;
    let mut seg = ip[ihl..tot_len].to_vec();
    let carried = u16::from_be_bytes([seg[16], seg[17]]);
    seg[16] = 0;
    seg[17] = 0;
    let want = l4_checksum(src, dst, IPPROTO_TCP, &seg);
    assert_eq!(carried, want, "TCP checksum {carried:#06x}, recomputed {want:#06x}");
    assert_eq!(fold(sum16(&ip[..ihl], 0)), 0xffff, "IPv4 header checksum");
}

/// `out` equals `inp` but for the 2-byte port at `port_off` in the TCP
/// header and the checksum.
fn assert_only_port_changed(inp: &[u8], out: &[u8], port_off: usize) {
    assert_eq!(inp.len(), out.len());
    let o = l4_off(inp);
    let changed: Vec<usize> = (0..inp.len()).filter(|&i| inp[i] != out[i]).collect();
    let allowed = [o + port_off, o + port_off + 1, o + 16, o + 17];
    assert!(changed.iter().all(|i| allowed.contains(i)), "bytes {changed:?} changed; only {allowed:?} may");
}

// ---- the programs, loaded in a private bpffs -------------------------------

struct Tc {
    obj: Object,
    pins: Pins,
    // Dropped last: unmounts the bpffs.
    _fs: PrivateBpffs,
}

fn test_settings(debug: bool) -> Settings {
    let mut s = datapath::settings_of(&Config::default_config());
    s.debug = debug as u8;
    assert_eq!((s.inbound_port, s.outbound_port), (INBOUND, OUTBOUND));
    s
}

fn load_tc(pins: &Pins, settings: &Settings) -> Object {
    let mut obj = objects::TC.open(Some(&pins.maps_dir())).expect("open meshwire_tc");
    obj.set_rodata(objects::SETTINGS_VAR, settings.as_bytes()).expect("rodata");
    obj.load().expect("load meshwire_tc (see the verifier log above)");
    obj
}

impl Tc {
    fn new() -> Tc {
        Tc::with_debug(false)
    }

    fn with_debug(debug: bool) -> Tc {
        Tc::with_settings(&test_settings(debug))
    }

    fn with_settings(settings: &Settings) -> Tc {
        let fs = PrivateBpffs::new();
        let pins = Pins::new(&fs.path().join("meshwire"));
        pins.create_dirs().expect("pin dirs");
        let obj = load_tc(&pins, settings);
        let tc = Tc { obj, pins, _fs: fs };
        tc.mesh(POD, 77);
        tc
    }

    fn map(&self, name: &str) -> MapFd {
        MapFd::open_pinned(&self.pins.map(name)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn mesh(&self, ip: Ipv4Addr, cookie: u64) {
        self.map(pins::MAP_POD_IPS).update(&u32::from(ip).to_be(), &cookie).unwrap();
    }

    /// None: node-wide.
    fn exclude(&self, pod: Option<Ipv4Addr>, port: u16) {
        let key = In4Key { pod_ip4: pod.map_or(0, |ip| u32::from(ip).to_be()), port, pad: 0 };
        self.map(pins::MAP_EXCL_IN4).update(&key, &1u8).unwrap();
    }

    fn run(&self, program: &str, frame: &[u8]) -> Vec<u8> {
        let prog = self.obj.program(program).unwrap();
        let (ret, out) = prog.test_run(frame).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ret, TC_ACT_UNSPEC, "{program} must return TC_ACT_UNSPEC");
        out
    }

    /// The program's verdict on a frame (TC_ACT_UNSPEC or TC_ACT_SHOT).
    fn verdict(&self, program: &str, frame: &[u8]) -> i32 {
        self.obj.program(program).unwrap().test_run(frame).unwrap_or_else(|e| panic!("{e}")).0
    }

    fn ingress(&self, s: &Seg) -> Vec<u8> {
        self.run(objects::TC_INGRESS.program, &s.frame())
    }

    /// The ingress program must leave this frame exactly as it was.
    fn ingress_untouched(&self, frame: &[u8]) {
        assert_eq!(self.run(objects::TC_INGRESS.program, frame), frame, "ingress changed a packet it must leave alone");
    }

    fn flow(&self, remote: Ipv4Addr, remote_port: u16) -> Option<Flow4> {
        let key = Flow4Key { remote_ip4: u32::from(remote).to_be(), local_ip4: u32::from(POD).to_be(), remote_port: remote_port.to_be(), pad: 0 };
        self.map(pins::MAP_FLOW4).lookup(&key).unwrap()
    }

    /// The handshake in progress from this peer port, as (dialled port, SYN-ACK seen).
    fn handshake(&self, remote: Ipv4Addr, remote_port: u16) -> Option<(u16, bool)> {
        // struct mw_flow4_key as bytes: addresses and port in network order, pad.
        let key: Vec<u8> = [&remote.octets()[..], &POD.octets(), &remote_port.to_be_bytes(), &[0, 0]].concat();
        // struct mw_flow4_syn: orig_port (network order), flags (MW_SYN_F_SYNACK = 1), synack_end.
        self.map(pins::MAP_FLOW4_SYN).lookup_raw(&key).unwrap().map(|v| (u16::from_be_bytes([v[0], v[1]]), u16::from_ne_bytes([v[2], v[3]]) & 1 != 0))
    }

    fn count(&self, map: &str) -> usize {
        self.map(map).raw_keys().unwrap().len()
    }

    fn stat(&self, name: &str) -> u64 {
        let i = STAT_NAMES.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no stat {name}")) as u32;
        self.map(pins::MAP_STATS).lookup_percpu_sum(&i).unwrap()
    }
}

/// One redirected connection, driven packet by packet with real sequence
/// numbers. Every packet is checked: ingress ones reach the sidecar's port,
/// egress ones leave from the app's port, checksums are right.
struct Conn<'a> {
    tc: &'a Tc,
    remote: Ipv4Addr,
    rport: u16,
    /// Next sequence number of each side.
    rseq: u32,
    pseq: u32,
}

impl<'a> Conn<'a> {
    fn open(tc: &'a Tc, remote: Ipv4Addr, rport: u16) -> Conn<'a> {
        let mut c = Conn { tc, remote, rport, rseq: 0x1000_0000u32.wrapping_add(rport as u32 * 7919), pseq: 0xfff0_0000 };
        c.remote_sends(SYN, b"");
        c.pod_sends(SYN | ACK, b"");
        c.remote_sends(ACK, b"");
        c
    }

    fn remote_sends(&mut self, flags: u8, payload: &[u8]) -> Vec<u8> {
        let s = Seg::tcp(self.remote, self.rport, POD, APP, flags).seq(self.rseq, if flags & ACK != 0 { self.pseq } else { 0 }).payload(payload);
        self.rseq = self.rseq.wrapping_add(payload.len() as u32 + (flags & (SYN | FIN) != 0) as u32);
        let inp = s.frame();
        let out = self.tc.run(objects::TC_INGRESS.program, &inp);
        assert_eq!(ports(&out), (self.rport, INBOUND), "ingress {flags:#04x} reaches the sidecar");
        assert_only_port_changed(&inp, &out, 2);
        assert_tcp_checksum(&out);
        out
    }

    fn pod_sends(&mut self, flags: u8, payload: &[u8]) -> Vec<u8> {
        self.pod_sends_acking(flags, payload, self.rseq)
    }

    fn pod_sends_acking(&mut self, flags: u8, payload: &[u8], ack: u32) -> Vec<u8> {
        let s = Seg::tcp(POD, INBOUND, self.remote, self.rport, flags).seq(self.pseq, ack).payload(payload);
        self.pseq = self.pseq.wrapping_add(payload.len() as u32 + (flags & (SYN | FIN) != 0) as u32);
        let inp = s.frame();
        let out = self.tc.run(objects::TC_EGRESS.program, &inp);
        assert_eq!(ports(&out), (APP, self.rport), "egress {flags:#04x} leaves from the dialled port");
        assert_only_port_changed(&inp, &out, 0);
        assert_tcp_checksum(&out);
        out
    }

    fn flow(&self) -> Option<Flow4> {
        self.tc.flow(self.remote, self.rport)
    }
}

// ---- redirect --------------------------------------------------------------

#[test]
fn a_syn_to_an_app_port_goes_to_the_sidecar() {
    let tc = Tc::new();
    let inp = Seg::inbound(40000, SYN).frame();
    assert_tcp_checksum(&inp);
    let out = tc.run(objects::TC_INGRESS.program, &inp);
    assert_eq!(ports(&out), (40000, INBOUND));
    assert_only_port_changed(&inp, &out, 2);
    assert_tcp_checksum(&out);
    // A handshake, not a flow yet: only the peer's ACK of the SYN-ACK makes one.
    assert_eq!(tc.handshake(REMOTE, 40000), Some((APP, false)));
    assert_eq!(tc.flow(REMOTE, 40000), None);
    assert_eq!(tc.stat("MW_STAT_TC_REDIRECTED"), 1);
    assert_eq!(tc.stat("MW_STAT_TC_ERROR"), 0);
}

#[test]
fn the_ack_of_the_sidecar_s_syn_ack_makes_the_flow() {
    let tc = Tc::new();
    let mut c = Conn { tc: &tc, remote: REMOTE, rport: 40002, rseq: 100, pseq: 5000 };
    c.remote_sends(SYN, b"");
    c.pod_sends(SYN | ACK, b"");
    assert_eq!(tc.handshake(REMOTE, 40002), Some((APP, true)));
    // An ACK that does not acknowledge the SYN-ACK (a guess) is rewritten, so
    // the sidecar's stack answers it, but makes no flow.
    let guess = Seg::inbound(40002, ACK).seq(c.rseq, 4242).frame();
    assert_eq!(ports(&tc.run(objects::TC_INGRESS.program, &guess)), (40002, INBOUND));
    assert_eq!(c.flow(), None);
    c.remote_sends(ACK, b"");
    assert_eq!(c.flow(), Some(Flow4 { orig_port: APP.to_be(), flags: 0, pad: 0 }));
    assert_eq!(tc.handshake(REMOTE, 40002), None);
    assert_eq!(tc.count(pins::MAP_FLOW4_SYN), 0);
}

#[test]
fn a_syn_flood_does_not_evict_established_flows() {
    let tc = Tc::new();
    let mut c = Conn::open(&tc, REMOTE, 40003);
    // More SYNs than mw_flow4 holds, from other peers, never completed.
    let n = 70_000u32;
    for i in 0..n {
        let peer = Ipv4Addr::new(10, 2, (i >> 8) as u8, i as u8);
        tc.run(objects::TC_INGRESS.program, &Seg::tcp(peer, 1024 + (i % 60000) as u16, POD, APP, SYN).frame());
    }
    assert!(tc.count(pins::MAP_FLOW4_SYN) < n as usize, "the handshakes' LRU evicts");
    assert_eq!(c.flow(), Some(Flow4 { orig_port: APP.to_be(), flags: 0, pad: 0 }), "the established flow stays");
    c.remote_sends(ACK | PSH, b"still here");
    c.pod_sends(ACK | PSH, b"and answered");
}

#[test]
fn a_spoofed_syn_does_not_take_an_established_flow_over() {
    let tc = Tc::new();
    let mut c = Conn::open(&tc, REMOTE, 40004);
    // A SYN with the peer's address and port, to another app port.
    let out = tc.ingress(&Seg::tcp(REMOTE, 40004, POD, 8081, SYN).seq(999, 0));
    assert_eq!(ports(&out), (40004, INBOUND));
    assert_eq!(c.flow(), Some(Flow4 { orig_port: APP.to_be(), flags: 0, pad: 0 }));
    // Its blind ACK (no SYN-ACK seen, or a wrong number) completes nothing.
    tc.ingress(&Seg::tcp(REMOTE, 40004, POD, 8081, ACK).seq(1000, 77));
    assert_eq!(c.flow(), Some(Flow4 { orig_port: APP.to_be(), flags: 0, pad: 0 }));
    // The real connection goes on, rewritten both ways as before.
    c.remote_sends(ACK | PSH, b"data");
    c.pod_sends(ACK | PSH, b"reply");
}

#[test]
fn later_packets_are_rewritten_both_ways() {
    let tc = Tc::new();
    let mut c = Conn::open(&tc, REMOTE, 40001);
    c.remote_sends(ACK | PSH, b"GET / HTTP/1.1\r\n\r\n");
    c.pod_sends(ACK | PSH, b"HTTP/1.1 200 OK\r\n\r\n");
    c.remote_sends(ACK, b"");
    // An odd-length payload: the checksum covers a padded last byte.
    c.remote_sends(ACK | PSH, b"odd");
    assert_eq!(c.flow(), Some(Flow4 { orig_port: APP.to_be(), flags: 0, pad: 0 }));
    assert_eq!(tc.stat("MW_STAT_TC_REDIRECTED"), 1, "counted once per connection");
}

#[test]
fn ip_options_do_not_move_the_tcp_header_out_of_sight() {
    let tc = Tc::new();
    // IHL 6: NOP NOP NOP EOL.
    let short = [1u8, 1, 1, 0];
    // IHL 15, the most there is: record route with room for 9 addresses, EOL.
    let mut longest = vec![7u8, 39, 4];
    longest.resize(40, 0);
    for (rport, opts) in [(40010u16, &short[..]), (40011, &longest[..])] {
        let syn = Seg::inbound(rport, SYN).ip_opts(opts);
        let inp = syn.frame();
        assert_tcp_checksum(&inp);
        let out = tc.run(objects::TC_INGRESS.program, &inp);
        assert_eq!(ports(&out), (rport, INBOUND), "IHL {}", 5 + opts.len() / 4);
        assert_only_port_changed(&inp, &out, 2);
        assert_tcp_checksum(&out);
        assert!(tc.handshake(REMOTE, rport).is_some());

        let reply = Seg::tcp(POD, INBOUND, REMOTE, rport, SYN | ACK).seq(7, 1001).ip_opts(opts);
        let inp = reply.frame();
        let out = tc.run(objects::TC_EGRESS.program, &inp);
        assert_eq!(ports(&out), (APP, rport));
        assert_only_port_changed(&inp, &out, 0);
        assert_tcp_checksum(&out);
    }
}

#[test]
fn a_new_syn_from_the_same_peer_port_starts_over() {
    let tc = Tc::new();
    let mut c = Conn::open(&tc, REMOTE, 40020);
    c.remote_sends(FIN | ACK, b"");
    assert_eq!(c.flow().unwrap().flags, FLOW_F_FIN_IN);
    // The peer reuses its port for another app port: the closing flow is over.
    let out = tc.ingress(&Seg::tcp(REMOTE, 40020, POD, 8081, SYN).seq(5000, 0));
    assert_eq!(ports(&out), (40020, INBOUND));
    assert_eq!(c.flow(), None);
    assert_eq!(tc.count(pins::MAP_FLOW4_FIN), 0, "the old closing state went with the old connection");
    let synack = Seg::tcp(POD, INBOUND, REMOTE, 40020, SYN | ACK).seq(9000, 5001).frame();
    assert_eq!(ports(&tc.run(objects::TC_EGRESS.program, &synack)), (8081, 40020));
    tc.ingress(&Seg::tcp(REMOTE, 40020, POD, 8081, ACK).seq(5001, 9001));
    assert_eq!(c.flow(), Some(Flow4 { orig_port: 8081u16.to_be(), flags: 0, pad: 0 }));
}

#[test]
fn the_traces_verify_and_run_with_debug_on() {
    let tc = Tc::with_debug(true);
    let mut c = Conn::open(&tc, REMOTE, 40030);
    c.remote_sends(RST, b"");
    tc.exclude(None, 9000);
    tc.ingress_untouched(&Seg::tcp(REMOTE, 40031, POD, 9000, SYN).frame());
    let mut bad = Seg::inbound(40032, SYN).frame();
    bad[ETH_HLEN] = 0x44;
    tc.ingress_untouched(&bad);
}

// ---- what is left alone ----------------------------------------------------

#[test]
fn excluded_ports_are_left_alone() {
    let tc = Tc::new();
    tc.mesh(OTHER_POD, 78);
    tc.exclude(None, 9000);
    tc.exclude(Some(POD), 9001);
    tc.exclude(Some(OTHER_POD), 9002);
    for (i, port) in [9000u16, 9001].into_iter().enumerate() {
        tc.ingress_untouched(&Seg::tcp(REMOTE, 41000 + i as u16, POD, port, SYN).frame());
        assert_eq!(tc.flow(REMOTE, 41000 + i as u16), None, "port {port}");
    }
    assert_eq!(tc.stat("MW_STAT_TC_EXCLUDED"), 2);
    // Straight to the sidecar's capture ports: nothing steered them, dropped.
    for (i, port) in [INBOUND, OUTBOUND].into_iter().enumerate() {
        assert_eq!(tc.verdict("mw_tc_ingress", &Seg::tcp(REMOTE, 41005 + i as u16, POD, port, SYN).frame()), TC_ACT_SHOT, "port {port}");
    }
    assert_eq!(tc.stat("MW_STAT_LOOP_REFUSED"), 2);
    // From a meshed pod of this node it is one connect4 steered: it passes.
    tc.ingress_untouched(&Seg::tcp(OTHER_POD, 41020, POD, INBOUND, SYN).frame());
    assert_eq!(tc.stat("MW_STAT_LOOP_REFUSED"), 2);
    assert_eq!(tc.count(pins::MAP_FLOW4), 0);
    // Another pod's own exclusion is not this pod's.
    let out = tc.ingress(&Seg::tcp(REMOTE, 41010, POD, 9002, SYN));
    assert_eq!(ports(&out), (41010, INBOUND));
    // ... but it is that pod's.
    let syn = Seg::tcp(REMOTE, 41011, OTHER_POD, 9002, SYN);
    tc.ingress_untouched(&syn.frame());
    // The sidecar's own replies from an excluded port pass too.
    let reply = Seg::tcp(POD, 9000, REMOTE, 41000, SYN | ACK).frame();
    assert_eq!(tc.run(objects::TC_EGRESS.program, &reply), reply);
}

#[test]
fn addresses_that_are_not_meshed_pods_are_left_alone() {
    let tc = Tc::new();
    tc.ingress_untouched(&Seg::tcp(REMOTE, 42000, Ipv4Addr::new(10, 2, 0, 99), APP, SYN).frame());
    assert_eq!(tc.count(pins::MAP_FLOW4), 0);
    assert_eq!(tc.stat("MW_STAT_TC_REDIRECTED") + tc.stat("MW_STAT_TC_EXCLUDED"), 0);
}

#[test]
fn other_protocols_and_malformed_packets_pass_untouched() {
    let tc = Tc::new();
    let mut udp = Seg::inbound(43000, SYN);
    udp.proto = IPPROTO_UDP;
    tc.ingress_untouched(&udp.frame());

    // ARP request who-has 10.2.0.9.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06]);
    arp.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 0x01, 10, 1, 0, 7, 0, 0, 0, 0, 0, 0, 10, 2, 0, 9]);
    tc.ingress_untouched(&arp);

    // (IPv6 TCP: see the IPv6 tests at the end.)

    // IHL below 5 and a version that is not 4.
    for first in [0x44u8, 0x45 | 0x10] {
        let mut bad = Seg::inbound(43002, SYN).frame();
        bad[ETH_HLEN] = first;
        tc.ingress_untouched(&bad);
    }
    // Cut inside the TCP header.
    let full = Seg::inbound(43003, SYN).frame();
    tc.ingress_untouched(&full[..ETH_HLEN + 20 + 10]);
    // IHL pointing past the end of the packet.
    let mut long_ihl = Seg::inbound(43004, SYN).frame();
    long_ihl[ETH_HLEN] = 0x4f;
    tc.ingress_untouched(&long_ihl[..ETH_HLEN + 40]);

    assert_eq!(tc.count(pins::MAP_FLOW4), 0);
    assert_eq!(tc.stat("MW_STAT_TC_ERROR"), 0);
}

#[test]
fn only_the_first_fragment_carries_the_tcp_header() {
    let tc = Tc::new();
    // A later fragment whose payload happens to look like a SYN to 8080.
    let mut later = Seg::inbound(44000, SYN);
    later.frag = 185;
    tc.ingress_untouched(&later.frame());
    later.frag = 0x2000 | 185;
    tc.ingress_untouched(&later.frame());
    assert_eq!(tc.count(pins::MAP_FLOW4), 0);
    // The first fragment (MF set, offset 0) has the header: redirected.
    let mut first = Seg::inbound(44001, SYN).payload(&[0; 64]);
    first.frag = 0x2000;
    let out = tc.ingress(&first);
    assert_eq!(ports(&out), (44001, INBOUND));
}

#[test]
fn packets_of_other_connections_pass_untouched() {
    let tc = Tc::new();
    // No flow: a stray ACK.
    tc.ingress_untouched(&Seg::inbound(45000, ACK).frame());
    let _c = Conn::open(&tc, REMOTE, 45001);
    // Same peer and port, another local port (excluded, so not redirected).
    tc.exclude(None, 22);
    tc.ingress_untouched(&Seg::tcp(REMOTE, 45001, POD, 22, SYN).frame());
    tc.ingress_untouched(&Seg::tcp(REMOTE, 45001, POD, 22, ACK).frame());
    // A packet that already carries the sidecar's port is not rewritten again.
    tc.ingress_untouched(&Seg::tcp(REMOTE, 45001, POD, INBOUND, ACK).frame());
    // Egress: from the sidecar's port to a peer without a flow, and from the app's port.
    let e1 = Seg::tcp(POD, INBOUND, REMOTE, 45999, ACK).frame();
    assert_eq!(tc.run(objects::TC_EGRESS.program, &e1), e1);
    let e2 = Seg::tcp(POD, APP, REMOTE, 45001, ACK).frame();
    assert_eq!(tc.run(objects::TC_EGRESS.program, &e2), e2);
    assert_eq!(tc.count(pins::MAP_FLOW4), 1);
}

// ---- the end of a flow -------------------------------------------------------

#[test]
fn a_reset_from_either_side_forgets_the_flow() {
    let tc = Tc::new();
    let mut c = Conn::open(&tc, REMOTE, 46000);
    c.remote_sends(RST, b"");
    assert_eq!(c.flow(), None);
    let mut c = Conn::open(&tc, REMOTE, 46001);
    c.pod_sends(RST | ACK, b"");
    assert_eq!(c.flow(), None);
    // The sidecar not listening: the SYN is answered by a reset.
    let mut c = Conn { tc: &tc, remote: REMOTE, rport: 46002, rseq: 5, pseq: 9 };
    c.remote_sends(SYN, b"");
    c.pod_sends(RST | ACK, b"");
    assert_eq!(c.flow(), None);
    assert_eq!(tc.stat("MW_STAT_TC_FLOW_CLOSED"), 3);
    assert_eq!(tc.count(pins::MAP_FLOW4), 0);
    assert_eq!(tc.count(pins::MAP_FLOW4_SYN), 0);
}

#[test]
fn a_close_begun_by_the_peer_ends_with_its_last_ack() {
    let tc = Tc::new();
    let mut c = Conn::open(&tc, REMOTE, 47000);
    c.remote_sends(ACK | PSH, b"request");
    c.remote_sends(FIN | ACK, b"");
    assert_eq!(c.flow().unwrap().flags, FLOW_F_FIN_IN);
    let acked_before_fin = c.rseq;
    // The sidecar answers, then closes its side; the peer's ACKs of the
    // answer arrive after the sidecar's FIN went out.
    c.pod_sends(ACK | PSH, b"response part 1");
    let after_part1 = c.pseq;
    c.pod_sends(ACK | PSH, b"response part 2");
    c.pod_sends(FIN | ACK, b"");
    assert_eq!(c.flow().unwrap().flags, FLOW_F_FIN_IN | FLOW_F_FIN_OUT);
    assert_eq!(acked_before_fin, c.rseq, "the peer sends nothing new after its FIN");
    let late_ack = Seg::inbound(47000, ACK).seq(c.rseq, after_part1).frame();
    let out = tc.run(objects::TC_INGRESS.program, &late_ack);
    assert_eq!(ports(&out), (47000, INBOUND));
    assert!(c.flow().is_some(), "an ACK of data before the FIN does not end the flow");
    // The last ACK: still rewritten, then the flow is gone.
    let out = c.remote_sends(ACK, b"");
    assert_eq!(ports(&out), (47000, INBOUND));
    assert_eq!(c.flow(), None);
    assert_eq!(tc.count(pins::MAP_FLOW4_FIN), 0);
    assert_eq!(tc.stat("MW_STAT_TC_FLOW_CLOSED"), 1);
}

#[test]
fn a_close_begun_by_the_pod_ends_with_its_last_ack() {
    let tc = Tc::new();
    let mut c = Conn::open(&tc, REMOTE, 47100);
    c.remote_sends(ACK | PSH, b"request");
    c.pod_sends(FIN | ACK | PSH, b"response and goodbye");
    assert_eq!(c.flow().unwrap().flags, FLOW_F_FIN_OUT);
    c.remote_sends(ACK, b"");
    assert!(c.flow().is_some(), "half closed");
    c.remote_sends(FIN | ACK, b"");
    assert_eq!(c.flow().unwrap().flags, FLOW_F_FIN_IN | FLOW_F_FIN_OUT);
    let out = c.pod_sends(ACK, b"");
    assert_eq!(ports(&out), (APP, 47100), "the last ACK leaves from the dialled port");
    assert_eq!(c.flow(), None);
    assert_eq!(tc.count(pins::MAP_FLOW4_FIN), 0);
}

#[test]
fn a_simultaneous_close_ends_when_both_fins_are_acknowledged() {
    let tc = Tc::new();
    let mut c = Conn::open(&tc, REMOTE, 47200);
    let pod_before_fin = c.pseq;
    let remote_before_fin = c.rseq;
    c.pod_sends(FIN | ACK, b"");
    // The peer's FIN crossed ours: it does not acknowledge it.
    let fin = Seg::inbound(47200, FIN | ACK).seq(remote_before_fin, pod_before_fin).frame();
    c.rseq = c.rseq.wrapping_add(1);
    tc.run(objects::TC_INGRESS.program, &fin);
    assert_eq!(c.flow().unwrap().flags, FLOW_F_FIN_IN | FLOW_F_FIN_OUT);
    c.pod_sends(ACK, b"");
    assert!(c.flow().is_some(), "the pod's FIN is not acknowledged yet");
    c.remote_sends(ACK, b"");
    assert_eq!(c.flow(), None);
}

#[test]
fn ten_thousand_flows_opened_and_closed_leave_no_state() {
    let tc = Tc::new();
    let n = 10_000u32;
    for i in 0..n {
        let remote = Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8);
        let mut c = Conn::open(&tc, remote, 20000 + (i % 40000) as u16);
        c.remote_sends(ACK | PSH, b"hello");
        c.pod_sends(ACK | PSH, b"world");
        match i % 3 {
            0 => {
                c.remote_sends(FIN | ACK, b"");
                c.pod_sends(FIN | ACK, b"");
                c.remote_sends(ACK, b"");
            }
            1 => {
                c.pod_sends(FIN | ACK, b"");
                c.remote_sends(FIN | ACK, b"");
                c.pod_sends(ACK, b"");
            }
            _ => {
                c.remote_sends(RST, b"");
            }
        }
        assert_eq!(c.flow(), None, "flow {i}");
    }
    assert_eq!(tc.count(pins::MAP_FLOW4), 0);
    assert_eq!(tc.count(pins::MAP_FLOW4_FIN), 0);
    assert_eq!(tc.count(pins::MAP_FLOW4_SYN), 0);
    assert_eq!(tc.stat("MW_STAT_TC_REDIRECTED"), n as u64);
    assert_eq!(tc.stat("MW_STAT_TC_FLOW_CLOSED"), n as u64);
    assert_eq!(tc.stat("MW_STAT_TC_ERROR"), 0);
}

// ---- pins ------------------------------------------------------------------

#[test]
fn a_program_pin_is_replaced_in_place() {
    let tc = Tc::new();
    let first = tc.obj.program(objects::TC_INGRESS.program).unwrap().fd();
    assert!(pin_program(&tc.pins, objects::TC_INGRESS.program, first).unwrap(), "a new pin");
    let pinned_id = |pins: &Pins| libbpf::prog_id(libbpf::obj_get(&pins.prog(objects::TC_INGRESS.program)).unwrap().as_raw_fd()).unwrap();
    assert_eq!(pinned_id(&tc.pins), libbpf::prog_id(first).unwrap());

    // A restarted loader's program takes the pin's place.
    let again = load_tc(&tc.pins, &test_settings(false));
    let second = again.program(objects::TC_INGRESS.program).unwrap().fd();
    assert!(!pin_program(&tc.pins, objects::TC_INGRESS.program, second).unwrap(), "the pin existed");
    assert_eq!(pinned_id(&tc.pins), libbpf::prog_id(second).unwrap());
    let names: Vec<_> = std::fs::read_dir(tc.pins.progs_dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from(objects::TC_INGRESS.program)], "no temporary pin left");
    assert!(pin_program(&tc.pins, objects::SOCKOPS_PROG.program, second).is_err());

    let removed = remove_all_pins(&tc.pins).unwrap();
    assert_eq!(removed, vec![tc.pins.prog(objects::TC_INGRESS.program)]);
}

#[test]
fn detaching_a_pod_that_has_nothing_is_fine() {
    let tc = Tc::new();
    detach_pod(&tc.pins, 12345, None).unwrap();
    detach_pod(&tc.pins, 12345, Some((Path::new("/run/netns/meshwire-no-such-ns"), "eth0"))).unwrap();
    detach_pod(&Pins::new(&tc.pins.root().join("absent")), 1, None).unwrap();
}

#[test]
fn attaching_without_pinned_programs_says_so() {
    let tc = Tc::new();
    let e = attach_pod(&tc.pins, 1, Path::new("/proc/self/ns/net"), "lo", TcAttach::Auto).unwrap_err();
    assert!(e.contains("is the loader running"), "{e}");
    let e = attach_pod(&tc.pins, 1, Path::new("/proc/self/ns/net"), "a/b", TcAttach::Auto).unwrap_err();
    assert!(e.contains("not an interface name"), "{e}");
}

// ---- for real: two namespaces joined by a veth pair ----------------------------

/// Two network namespaces of our own, "remote" (192.0.2.1) and "pod"
/// (192.0.2.2, interface eth0), joined by a veth pair. Deleted on drop.
struct NetnsPair {
    remote: String,
    pod: String,
}

const VETH_REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const VETH_POD: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl NetnsPair {
    fn new() -> NetnsPair {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let tag = format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let pair = NetnsPair { remote: format!("mwtc-r-{tag}"), pod: format!("mwtc-p-{tag}") };
        ip(&["netns", "add", &pair.remote]);
        ip(&["netns", "add", &pair.pod]);
        ip(&["-n", &pair.remote, "link", "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", &pair.pod]);
        ip(&["-n", &pair.remote, "addr", "add", "192.0.2.1/24", "dev", "veth0"]);
        ip(&["-n", &pair.pod, "addr", "add", "192.0.2.2/24", "dev", "eth0"]);
        for (ns, dev) in [(&pair.remote, "veth0"), (&pair.pod, "eth0")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    fn path(name: &str) -> PathBuf {
        Path::new("/run/netns").join(name)
    }

    fn pod_path(&self) -> PathBuf {
        NetnsPair::path(&self.pod)
    }

    fn remote_path(&self) -> PathBuf {
        NetnsPair::path(&self.remote)
    }

    fn delete_pod(&self) {
        ip(&["netns", "del", &self.pod]);
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.remote, &self.pod] {
            if NetnsPair::path(ns).exists() {
                let _ = std::process::Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
    }
}

fn dial(pair: &NetnsPair, port: u16) -> std::io::Result<TcpStream> {
    in_netns(&pair.remote_path(), move || {
        let s = TcpStream::connect_timeout(&SocketAddr::from((VETH_POD, port)), Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        Ok(s)
    })
}

fn pod_links(pins: &Pins, cookie: u64) -> Vec<libbpf::TcxLinkInfo> {
    TC_PROGRAMS
        .iter()
        .map(|tc| libbpf::link_tcx_info(&libbpf::obj_get(&pins.pod_dir(cookie).join(link_name(tc, "eth0"))).unwrap()).unwrap().expect("a tcx link"))
        .collect()
}

/// What `datapath::install` does for the tc programs of `obj`.
fn pin_programs(pins: &Pins, obj: &Object) {
    for p in TC_PROGRAMS {
        pin_program(pins, p.program, obj.program(p.program).unwrap().fd()).unwrap();
    }
}

/// Programs pinned, a netns pair with the pod's address meshed, and the
/// sidecar listening on the inbound port in the pod (nothing on 8080).
fn veth_pod() -> (Tc, NetnsPair, u64, TcpListener) {
    let tc = Tc::new();
    pin_programs(&tc.pins, &tc.obj);
    let pair = NetnsPair::new();
    let cookie = system::netns_cookie(&pair.pod_path()).unwrap();
    tc.mesh(VETH_POD, cookie);
    let sidecar = in_netns(&pair.pod_path(), || TcpListener::bind(("0.0.0.0", INBOUND)).unwrap());
    (tc, pair, cookie, sidecar)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn across_a_veth_inbound_connections_reach_the_sidecar() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    assert_eq!(dial(&pair, APP).unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused, "before attaching");

    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    let links = pod_links(&tc.pins, cookie);
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).expect("attaching twice is fine");
    assert_eq!(pod_links(&tc.pins, cookie), links, "the same links stay");
    assert!(links[0].ingress && !links[1].ingress && links[0].ifindex != 0);

    let (client, server, peer) = redirected_connection(&pair, &sidecar);
    let flow_key = Flow4Key {
        remote_ip4: u32::from(VETH_REMOTE).to_be(),
        local_ip4: u32::from(VETH_POD).to_be(),
        remote_port: peer.port().to_be(),
        pad: 0,
    };
    let flows = tc.map(pins::MAP_FLOW4);
    assert_eq!(flows.lookup::<Flow4Key, Flow4>(&flow_key).unwrap().map(|f| u16::from_be(f.orig_port)), Some(APP));
    // The peer's last ACK ends the flow.
    talk_and_close(client, server);
    wait_for("the flow to be forgotten", || flows.lookup::<Flow4Key, Flow4>(&flow_key).unwrap().is_none());
    assert_eq!(tc.count(pins::MAP_FLOW4_FIN), 0);
    assert_eq!(tc.stat("MW_STAT_TC_REDIRECTED"), 1);
    assert_eq!(tc.stat("MW_STAT_TC_FLOW_CLOSED"), 1);
    assert_eq!(tc.stat("MW_STAT_TC_ERROR"), 0);

    // A restarted loader moves the pod's links onto its programs.
    let newer = load_tc(&tc.pins, &test_settings(false));
    pin_programs(&tc.pins, &newer);
    let moved = pod_links(&tc.pins, cookie);
    for (link, p) in moved.iter().zip(TC_PROGRAMS) {
        assert_eq!(link.prog_id, libbpf::prog_id(newer.program(p.program).unwrap().fd()).unwrap(), "{}", p.program);
    }
    drop(newer);
    one_redirected_connection(&pair, &sidecar);

    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(!tc.pins.pod_dir(cookie).exists());
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).expect("detaching twice is fine");
    assert_eq!(dial(&pair, APP).unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused, "after detaching");

    // Failed attaches leave no pins behind.
    let e = attach_pod(&tc.pins, cookie, &pair.pod_path(), "nope0", TcAttach::Tcx).unwrap_err();
    assert!(e.contains("no interface nope0"), "{e}");
    assert!(!tc.pins.pod_dir(cookie).exists());
    let e = attach_pod(&tc.pins, cookie + 1, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap_err();
    assert!(e.contains(&format!("not {}", cookie + 1)), "{e}");
    assert!(!tc.pins.pod_dir(cookie + 1).exists());

    // The pod's netns goes away with its links pinned: they are defunct,
    // the loader's restart step skips them, and detaching just unpins.
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    drop(sidecar);
    pair.delete_pod();
    wait_for("the pod's links to become defunct", || pod_links(&tc.pins, cookie).iter().all(|l| l.ifindex == 0));
    pin_programs(&tc.pins, &tc.obj);
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(!tc.pins.pod_dir(cookie).exists());
    assert_eq!(std::fs::read_dir(tc.pins.pods_dir()).unwrap().count(), 0);
}

/// A pod attached by the previous version (one pair of links per pod,
/// pinned as `tc_ingress` and `tc_egress`) keeps its links when this
/// version attaches it again: they move to this interface's names, and
/// detaching the interface removes them.
#[test]
fn links_of_the_previous_layout_are_adopted_not_doubled() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    let links = pod_links(&tc.pins, cookie);
    let dir = tc.pins.pod_dir(cookie);
    for p in TC_PROGRAMS {
        std::fs::rename(dir.join(link_name(p, "eth0")), dir.join(p.link)).unwrap();
    }
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    assert_eq!(pod_links(&tc.pins, cookie), links, "the same links, under this interface's names");
    for p in TC_PROGRAMS {
        assert!(!dir.join(p.link).exists(), "{} moved", p.link);
    }
    one_redirected_connection(&pair, &sidecar);
    // The previous layout's pins go with the pod's last interface.
    for p in TC_PROGRAMS {
        std::fs::rename(dir.join(link_name(p, "eth0")), dir.join(p.link)).unwrap();
    }
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(!dir.exists());
    wait_for("the links to detach", || matches!(dial(&pair, APP), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused));
}

#[test]
fn cleanup_detaches_the_pods_and_removes_the_tc_pins() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    let client = dial(&pair, APP).expect("redirected while attached");
    drop((client, sidecar.accept().unwrap()));

    let removed = datapath::cleanup(tc.pins.root()).unwrap();
    for p in TC_PROGRAMS {
        assert!(removed.contains(&tc.pins.prog(p.program)), "{removed:?}");
        assert!(removed.contains(&tc.pins.pod_dir(cookie).join(link_name(p, "eth0"))), "{removed:?}");
    }
    assert!(removed.contains(&tc.pins.map(pins::MAP_FLOW4_FIN)), "{removed:?}");
    assert!(!tc.pins.progs_dir().exists() && !tc.pins.pods_dir().exists(), "the tc directories are gone");
    // The links went with their pins: nothing redirects any more. (The
    // kernel frees a released link from a work item: give it a moment.)
    wait_for("the links to detach", || matches!(dial(&pair, APP), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused));
}

// ---- clsact: meshwire's filters on the pod's clsact qdisc ----------------------

/// `tc -n NS ARGS...` (iproute2), in a namespace of the test's own; its output.
fn tc_in(ns: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("tc").arg("-n").arg(ns).args(args).output().expect("run tc (iproute2)");
    assert!(out.status.success(), "tc -n {ns} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The pod's qdiscs on eth0, as `tc qdisc show` prints them.
fn qdiscs(pair: &NetnsPair) -> String {
    tc_in(&pair.pod, &["qdisc", "show", "dev", "eth0"])
}

fn has_clsact(pair: &NetnsPair) -> bool {
    qdiscs(pair).contains("qdisc clsact")
}

/// `f(ifindex of eth0)` inside the pod's namespace.
fn on_pod_eth0<T: Send + 'static>(pair: &NetnsPair, f: impl FnOnce(u32) -> T + Send + 'static) -> T {
    in_netns(&pair.pod_path(), move || f(nix::net::if_::if_nametoindex("eth0").expect("eth0 in the pod")))
}

/// What sits at meshwire's place on ingress and on egress of the pod's eth0.
fn slots(pair: &NetnsPair) -> Vec<clsact::Slot> {
    on_pod_eth0(pair, |ifindex| TC_PROGRAMS.iter().map(|tc| clsact::slot(ifindex, tc.ingress, tc.program).unwrap()).collect())
}

/// Every filter on the pod's eth0: (ingress, priority, handle, kind).
fn all_filters(pair: &NetnsPair) -> Vec<(bool, u16, u32, String)> {
    on_pod_eth0(pair, |ifindex| {
        [true, false]
            .into_iter()
            .flat_map(|ingress| clsact::dump_filters(ifindex, ingress).unwrap().into_iter().map(move |f| (ingress, f.priority, f.handle, f.kind)))
            .filter(|f| f.2 != 0)
            .collect()
    })
}

/// meshwire's filters run the programs of `obj`.
fn assert_filters_run(pair: &NetnsPair, obj: &Object) {
    let want: Vec<clsact::Slot> =
        TC_PROGRAMS.iter().map(|p| clsact::Slot::Ours(libbpf::prog_id(obj.program(p.program).unwrap().fd()).unwrap())).collect();
    assert_eq!(slots(pair), want);
}

fn no_tcx_links(pins: &Pins, cookie: u64) -> bool {
    TC_PROGRAMS.iter().all(|p| !pins.pod_dir(cookie).join(p.link).exists() && !pins.pod_dir(cookie).join(link_name(p, "eth0")).exists())
}

fn marker(pins: &Pins, cookie: u64) -> PathBuf {
    pins.pod_dir(cookie).join(qdisc_marker_name("eth0"))
}

/// A connection from the remote namespace to the pod's 8080, accepted by the
/// sidecar on 15003 through meshwire's programs: (client, server, the peer
/// address the sidecar saw).
fn redirected_connection(pair: &NetnsPair, sidecar: &TcpListener) -> (TcpStream, TcpStream, SocketAddr) {
    let client = dial(pair, APP).expect("connect to 8080, answered by the sidecar");
    let (server, peer) = sidecar.accept().unwrap();
    server.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    assert_eq!(server.local_addr().unwrap(), SocketAddr::from((VETH_POD, INBOUND)));
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(client.peer_addr().unwrap(), SocketAddr::from((VETH_POD, APP)), "the peer sees the port it dialled");
    (client, server, peer)
}

/// Ping and pong through the rewrite; then the peer closes first and the
/// sidecar answers and closes.
fn talk_and_close(mut client: TcpStream, mut server: TcpStream) {
    use std::io::{Read, Write};
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").unwrap();
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).unwrap();
    drop(server);
    assert_eq!(client.read(&mut buf).unwrap(), 0, "EOF from the sidecar, through the rewrite");
}

fn one_redirected_connection(pair: &NetnsPair, sidecar: &TcpListener) {
    let (client, server, _) = redirected_connection(pair, sidecar);
    talk_and_close(client, server);
}

fn refused(pair: &NetnsPair) -> bool {
    matches!(dial(pair, APP), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// Someone else's tc program: counts the packets it sees (wherever it is
/// attached, into one counter) and returns TC_ACT_UNSPEC, like meshwire's.
struct OtherProg {
    prog: OwnedFd,
    counts: MapFd,
}

/// struct bpf_insn as a little-endian u64.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    code as u64 | ((dst | src << 4) as u64) << 8 | (off as u16 as u64) << 16 | (imm as u32 as u64) << 32
}

impl OtherProg {
    fn new(tc: &Tc) -> OtherProg {
        let map = libbpf::array_map_create("other_counts", 8, 1).unwrap();
        let map_path = tc._fs.path().join("other_counts");
        libbpf::obj_pin(&map, &map_path).unwrap();
        let counts = MapFd::open_pinned(&map_path).unwrap();
        let insns = [
            insn(0x62, 10, 0, -4, 0),             // *(u32 *)(r10 - 4) = 0
            insn(0xbf, 2, 10, 0, 0),              // r2 = r10
            insn(0x07, 2, 0, 0, -4),              // r2 += -4
            insn(0x18, 1, 1, 0, map.as_raw_fd()), // r1 = the map (BPF_PSEUDO_MAP_FD)
            0,                                    //   (ld_imm64, second half)
            insn(0x85, 0, 0, 0, 1),               // call bpf_map_lookup_elem
            insn(0x15, 0, 0, 2, 0),               // if r0 == 0 goto +2
            insn(0xb7, 1, 0, 0, 1),               // r1 = 1
            insn(0xdb, 0, 1, 0, 0),               // lock *(u64 *)(r0 + 0) += r1
            insn(0xb7, 0, 0, 0, -1),              // r0 = TC_ACT_UNSPEC
            insn(0x95, 0, 0, 0, 0),               // exit
        ];
        let prog = libbpf::prog_load_insns(libbpf_sys::BPF_PROG_TYPE_SCHED_CLS, "other_tc", &insns).unwrap();
        OtherProg { prog, counts }
    }

    fn count(&self) -> u64 {
        self.counts.lookup::<u32, u64>(&0).unwrap().unwrap()
    }

    /// Attach it to the pod's eth0 (clsact qdisc there) at `priority`, handle 1.
    fn attach(&self, pair: &NetnsPair, ingress: bool, priority: u16, handle: u32) -> u32 {
        let fd = self.prog.as_raw_fd();
        on_pod_eth0(pair, move |ifindex| libbpf::tc_attach(ifindex, ingress, priority, handle, fd).unwrap())
    }
}

#[test]
fn clsact_across_a_veth_inbound_connections_reach_the_sidecar() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    assert!(!has_clsact(&pair));
    assert!(refused(&pair), "before attaching");

    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert_filters_run(&pair, &tc.obj);
    assert!(no_tcx_links(&tc.pins, cookie), "clsact filters are not pinned");
    assert!(has_clsact(&pair) && marker(&tc.pins, cookie).is_dir(), "meshwire created the qdisc, and says so");
    let ours = vec![(true, clsact::PRIORITY, clsact::HANDLE, "bpf".to_string()), (false, clsact::PRIORITY, clsact::HANDLE, "bpf".to_string())];
    assert_eq!(all_filters(&pair), ours);
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).expect("attaching twice is fine");
    assert_eq!(all_filters(&pair), ours, "still one filter on each side");
    assert!(marker(&tc.pins, cookie).is_dir(), "the qdisc is still meshwire's");
    check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap();

    one_redirected_connection(&pair, &sidecar);
    let flows = tc.map(pins::MAP_FLOW4);
    wait_for("the flow to be forgotten", || flows.raw_keys().unwrap().is_empty());
    assert_eq!(tc.stat("MW_STAT_TC_REDIRECTED"), 1);
    assert_eq!(tc.stat("MW_STAT_TC_FLOW_CLOSED"), 1);

    // A restarted loader pins its programs, then applies its pods again:
    // meshwire's filters are replaced in place with the new programs.
    let newer = load_tc(&tc.pins, &test_settings(false));
    pin_programs(&tc.pins, &newer);
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert_filters_run(&pair, &newer);
    assert_eq!(all_filters(&pair), ours);
    drop(newer);
    one_redirected_connection(&pair, &sidecar);

    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert_eq!(slots(&pair), vec![clsact::Slot::Empty, clsact::Slot::Empty]);
    assert!(!has_clsact(&pair), "the qdisc meshwire created went with its filters: {}", qdiscs(&pair));
    assert!(!tc.pins.pod_dir(cookie).exists());
    let e = check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap_err();
    assert!(e.contains("neither as a tcx link") && e.contains("clsact ingress filter"), "{e}");
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).expect("detaching twice is fine");
    assert!(refused(&pair), "after detaching");

    // Failed attaches leave nothing behind.
    let e = attach_pod(&tc.pins, cookie, &pair.pod_path(), "nope0", TcAttach::Clsact).unwrap_err();
    assert!(e.contains("no interface nope0"), "{e}");
    let e = attach_pod(&tc.pins, cookie + 1, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap_err();
    assert!(e.contains(&format!("not {}", cookie + 1)), "{e}");
    assert!(!has_clsact(&pair));
    assert_eq!(std::fs::read_dir(tc.pins.pods_dir()).unwrap().count(), 0);
}

#[test]
fn clsact_leaves_other_filters_and_qdiscs_alone_and_they_still_run() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    // Someone else's: the clsact qdisc, a root qdisc, and a filter on each
    // side: after meshwire's on ingress (a priority the kernel would choose),
    // before it on egress.
    tc_in(&pair.pod, &["qdisc", "add", "dev", "eth0", "clsact"]);
    tc_in(&pair.pod, &["qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb"]);
    let other = OtherProg::new(&tc);
    let other_id = other.attach(&pair, true, 49152, 1);
    other.attach(&pair, false, 1, 1);
    let theirs = vec![(true, 49152, 1, "bpf".to_string()), (false, 1, 1, "bpf".to_string())];
    assert_eq!(all_filters(&pair), theirs);

    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert!(!marker(&tc.pins, cookie).exists(), "the qdisc was there: not meshwire's");
    assert_filters_run(&pair, &tc.obj);
    assert_eq!(all_filters(&pair).len(), 4);
    check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap();

    // Both run on every packet: meshwire's TC_ACT_UNSPEC goes on to the next
    // filter, and the filter before meshwire's does not keep it from running.
    let before = other.count();
    one_redirected_connection(&pair, &sidecar);
    let seen = other.count() - before;
    assert!(seen >= 8, "the other filters saw {seen} packets of a whole connection");
    assert_eq!(tc.stat("MW_STAT_TC_REDIRECTED"), 1);

    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert_eq!(all_filters(&pair), theirs, "only meshwire's filters went");
    let q = qdiscs(&pair);
    assert!(q.contains("qdisc clsact") && q.contains("qdisc htb 1: root"), "{q}");
    assert_eq!(on_pod_eth0(&pair, |i| libbpf::tc_query(i, true, 49152, 1).unwrap()), Some(other_id));
    let before = other.count();
    assert!(refused(&pair), "after detaching");
    assert!(other.count() > before, "the other filter still runs");
}

#[test]
fn a_clsact_qdisc_meshwire_created_stays_while_another_filter_is_on_it() {
    let (tc, pair, cookie, _sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert!(marker(&tc.pins, cookie).is_dir());
    // Another component adds its filter to meshwire's qdisc.
    let other = OtherProg::new(&tc);
    other.attach(&pair, false, 49152, 1);
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(has_clsact(&pair), "in use by another filter: kept");
    assert_eq!(all_filters(&pair), vec![(false, 49152, 1, "bpf".to_string())]);
    assert!(!tc.pins.pod_dir(cookie).exists(), "and no longer meshwire's");

    // Attached to a qdisc that was there, detached: the qdisc stays, even empty.
    on_pod_eth0(&pair, |i| libbpf::tc_detach(i, false, 49152, 1).unwrap());
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert!(!marker(&tc.pins, cookie).exists());
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(has_clsact(&pair) && all_filters(&pair).is_empty(), "{}", qdiscs(&pair));
}

#[test]
fn a_filter_of_someone_else_at_meshwires_place_is_left_alone() {
    let (tc, pair, cookie, _sidecar) = veth_pod();
    tc_in(&pair.pod, &["qdisc", "add", "dev", "eth0", "clsact"]);
    let other = OtherProg::new(&tc);
    let other_id = other.attach(&pair, true, clsact::PRIORITY, clsact::HANDLE);
    let e = attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap_err();
    assert!(e.contains("other_tc") && e.contains("left alone"), "{e}");
    assert_eq!(slots(&pair), vec![clsact::Slot::Other(format!("a bpf filter running program other_tc (id {other_id})")), clsact::Slot::Empty]);
    assert!(!tc.pins.pod_dir(cookie).exists());
    let e = check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap_err();
    assert!(e.contains("other_tc"), "{e}");
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert_eq!(on_pod_eth0(&pair, |i| libbpf::tc_query(i, true, clsact::PRIORITY, clsact::HANDLE).unwrap()), Some(other_id));
    assert!(has_clsact(&pair));
}

#[test]
fn clsact_detach_when_the_pods_netns_is_gone() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert!(marker(&tc.pins, cookie).is_dir());
    drop(sidecar);
    pair.delete_pod();
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(!tc.pins.pod_dir(cookie).exists(), "the marker went with the pod");
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).expect("detaching twice is fine");
    let e = check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap_err();
    assert!(e.contains("opening network namespace"), "{e}");
}

#[test]
fn changing_the_attach_mode_moves_the_pod() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    assert_eq!(pod_links(&tc.pins, cookie).len(), 2);
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert!(no_tcx_links(&tc.pins, cookie), "the tcx links went");
    assert_filters_run(&pair, &tc.obj);
    one_redirected_connection(&pair, &sidecar);

    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    assert_eq!(pod_links(&tc.pins, cookie).len(), 2);
    assert!(all_filters(&pair).is_empty() && !has_clsact(&pair), "meshwire's filters and qdisc went: {}", qdiscs(&pair));
    assert!(!marker(&tc.pins, cookie).exists());
    one_redirected_connection(&pair, &sidecar);
    check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap();
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    wait_for("the links to detach", || refused(&pair));
}

#[test]
fn auto_is_tcx_on_a_kernel_that_has_it() {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release.trim().split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap(), v.next().unwrap());
    let (tc, pair, cookie, _sidecar) = veth_pod();
    let prog = tc.obj.program(objects::TC_INGRESS.program).unwrap().fd();
    assert_eq!(libbpf::tcx_supported(prog).unwrap(), (major, minor) >= (6, 6), "kernel {}", release.trim());
    let want = if (major, minor) >= (6, 6) { Method::Tcx } else { Method::Clsact };
    assert_eq!(method(TcAttach::Auto, prog).unwrap(), want);
    assert_eq!(method(TcAttach::Clsact, prog).unwrap(), Method::Clsact);
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Auto).unwrap();
    if want == Method::Tcx {
        assert_eq!(pod_links(&tc.pins, cookie).len(), 2);
        assert!(all_filters(&pair).is_empty());
    } else {
        assert_filters_run(&pair, &tc.obj);
    }
    check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap();
}

#[test]
fn cleanup_with_clsact_pods_then_their_filters() {
    let (tc, pair, cookie, _sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    // What `meshwire-loader cleanup` does when no record names the pod: the
    // pins (the qdisc marker among them) go, the filters stay.
    datapath::cleanup(tc.pins.root()).unwrap();
    assert!(!tc.pins.pods_dir().exists());
    assert_eq!(all_filters(&pair).len(), 2);
    // Without pins, detaching still finds and removes meshwire's filters;
    // nothing says the qdisc is meshwire's any more, so it stays.
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(all_filters(&pair).is_empty());
    assert!(has_clsact(&pair));
}

#[test]
fn cleanup_finds_clsact_filters_whose_pod_record_is_gone() {
    let (tc, pair, cookie, _sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert_eq!(all_filters(&pair).len(), 2);
    // The namespaces looked through: only this test's pod (a symlink to its mount).
    let dir = std::env::temp_dir().join(format!("meshwire-netns-{}-{cookie}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(pair.pod_path(), dir.join("pod")).unwrap();
    let empty = dir.join("none");
    std::fs::create_dir_all(&empty).unwrap();
    // Not found among the mounted namespaces: nothing is touched.
    let missed = detach_orphans(&tc.pins, &[&empty]);
    let found = detach_orphans(&tc.pins, &[&dir]);
    let filters_after = all_filters(&pair).len();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(missed.unwrap(), 0);
    assert_eq!(found.unwrap(), 1);
    assert_eq!(filters_after, 0, "meshwire's filters are gone");
    assert!(!has_clsact(&pair), "the qdisc meshwire created went with them");
    assert!(!tc.pins.pod_dir(cookie).exists());
}

// ---- IPv6 (interception.ipv6) ------------------------------------------------

const TC_ACT_SHOT: i32 = 2;
const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_TCP: u8 = 6;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_DEST: u8 = 60;

/// An Ethernet + IPv6 frame to the pod: the extension headers `ext` (type,
/// length in bytes, for a fragment header its offset in 8-byte units), then a
/// TCP header to `dport` with `flags`.
fn frame6(ext: &[(u8, usize, u16)], dport: u16, flags: u8) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd];
    let mut chain = Vec::new();
    for (i, &(kind, len, frag_off)) in ext.iter().enumerate() {
        let next = ext.get(i + 1).map_or(NEXTHDR_TCP, |e| e.0);
        let mut h = vec![0u8; len];
        h[0] = next;
        match kind {
            NEXTHDR_FRAGMENT => h[2..4].copy_from_slice(&(frag_off << 3).to_be_bytes()),
            _ => h[1] = (len / 8 - 1) as u8,
        }
        chain.extend(h);
    }
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let payload = (chain.len() + tcp.len()) as u16;
    f.extend([0x60, 0, 0, 0]);
    f.extend(payload.to_be_bytes());
    f.push(ext.first().map_or(NEXTHDR_TCP, |e| e.0));
    f.push(64);
    f.extend([0xfd, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend([0xfd, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend(chain);
    f.extend(tcp);
    f
}

#[test]
fn ipv6_syns_to_the_pod_are_dropped_and_other_ipv6_packets_pass() {
    let tc = Tc::new();
    assert_eq!(tc.verdict(objects::TC_INGRESS.program, &frame6(&[], APP, SYN)), TC_ACT_SHOT);
    // Behind extension headers: hop-by-hop and destination options, and the
    // first fragment of a fragmented SYN.
    let behind = frame6(&[(NEXTHDR_HOP, 8, 0), (NEXTHDR_DEST, 16, 0)], APP, SYN);
    assert_eq!(tc.verdict(objects::TC_INGRESS.program, &behind), TC_ACT_SHOT);
    let first_fragment = frame6(&[(NEXTHDR_FRAGMENT, 8, 0)], APP, SYN);
    assert_eq!(tc.verdict(objects::TC_INGRESS.program, &first_fragment), TC_ACT_SHOT);
    assert_eq!(tc.stat("MW_STAT_TC6_DROPPED"), 3);
    // Not a connection's first packet, a later fragment, not TCP: untouched.
    tc.ingress_untouched(&frame6(&[], APP, SYN | ACK));
    tc.ingress_untouched(&frame6(&[], APP, ACK));
    tc.ingress_untouched(&frame6(&[(NEXTHDR_FRAGMENT, 8, 100)], APP, SYN));
    let mut udp = frame6(&[], APP, SYN);
    udp[14 + 6] = 17;
    tc.ingress_untouched(&udp);
    // The node-wide excluded inbound ports are let through (kubelet probes).
    tc.exclude(None, 9000);
    tc.ingress_untouched(&frame6(&[], 9000, SYN));
    // Egress is not concerned.
    let out = frame6(&[], APP, SYN);
    assert_eq!(tc.run(objects::TC_EGRESS.program, &out), out);
    assert_eq!(tc.stat("MW_STAT_TC6_DROPPED"), 3);
    assert_eq!(tc.stat("MW_STAT_TC_ERROR"), 0);
}

#[test]
fn with_ipv6_passed_an_ipv6_syn_goes_through() {
    let mut settings = test_settings(false);
    settings.ipv6_refuse = 0;
    let tc = Tc::with_settings(&settings);
    tc.ingress_untouched(&frame6(&[], APP, SYN));
    assert_eq!(tc.stat("MW_STAT_TC6_DROPPED"), 0);
}
