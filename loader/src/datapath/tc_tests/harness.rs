//! The tc programs loaded in a private bpffs ([`Tc`]), with the pod POD
//! meshed, and [`Conn`], a redirected connection driven through them packet
//! by packet.

use std::net::Ipv4Addr;

use super::packet::*;
use crate::config::Config;
use crate::datapath;
use crate::datapath::layout::{Flow4, Flow4Key, In4Key, Settings, STAT_NAMES};
use crate::datapath::objects;
use crate::datapath::pins::{self, Pins};
use crate::libbpf::{MapFd, Object};
use crate::testutil::PrivateBpffs;

pub struct Tc {
    pub obj: Object,
    pub pins: Pins,
    // Dropped last: unmounts the bpffs.
    pub fs: PrivateBpffs,
}

pub fn test_settings(debug: bool) -> Settings {
    let mut s = datapath::settings_of(&Config::default_config());
    s.debug = debug as u8;
    assert_eq!((s.inbound_port, s.outbound_port), (INBOUND, OUTBOUND));
    s
}

pub fn load_tc(pins: &Pins, settings: &Settings) -> Object {
    let mut obj = objects::TC.open(Some(&pins.maps_dir())).expect("open meshwire_tc");
    obj.set_rodata(objects::SETTINGS_VAR, settings.as_bytes()).expect("rodata");
    obj.load().expect("load meshwire_tc (see the verifier log above)");
    obj
}

impl Tc {
    pub fn new() -> Tc {
        Tc::with_debug(false)
    }

    pub fn with_debug(debug: bool) -> Tc {
        Tc::with_settings(&test_settings(debug))
    }

    pub fn with_settings(settings: &Settings) -> Tc {
        let fs = PrivateBpffs::new();
        let pins = Pins::new(&fs.path().join("meshwire"));
        pins.create_dirs().expect("pin dirs");
        let obj = load_tc(&pins, settings);
        let tc = Tc { obj, pins, fs };
        tc.mesh(POD, 77);
        tc
    }

    pub fn map(&self, name: &str) -> MapFd {
        MapFd::open_pinned(&self.pins.map(name)).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn mesh(&self, ip: Ipv4Addr, cookie: u64) {
        self.map(pins::MAP_POD_IPS).update(&u32::from(ip).to_be(), &cookie).unwrap();
    }

    pub fn mesh6(&self, ip: std::net::Ipv6Addr, cookie: u64) {
        self.map(pins::MAP_POD_IPS6).update(&crate::datapath::layout::Ip6Key::of(&ip), &cookie).unwrap();
    }

    /// An excluded inbound port of one pod IPv6 address (mw_excl_in6).
    pub fn exclude6(&self, pod: std::net::Ipv6Addr, port: u16) {
        self.map(pins::MAP_EXCL_IN6).update(&crate::datapath::layout::In6Key::of(&pod, port), &1u8).unwrap();
    }

    /// None: node-wide.
    pub fn exclude(&self, pod: Option<Ipv4Addr>, port: u16) {
        let key = In4Key { pod_ip4: pod.map_or(0, |ip| u32::from(ip).to_be()), port, pad: 0 };
        self.map(pins::MAP_EXCL_IN4).update(&key, &1u8).unwrap();
    }

    /// The program's verdict on a frame and the frame it leaves (BPF_PROG_TEST_RUN).
    pub fn test_run(&self, program: &str, frame: &[u8]) -> (i32, Vec<u8>) {
        self.obj.program(program).unwrap().test_run(frame).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The frame a program passes (TC_ACT_UNSPEC).
    pub fn run(&self, program: &str, frame: &[u8]) -> Vec<u8> {
        let (ret, out) = self.test_run(program, frame);
        assert_eq!(ret, TC_ACT_UNSPEC, "{program} must return TC_ACT_UNSPEC");
        out
    }

    pub fn ingress(&self, s: &Seg) -> Vec<u8> {
        self.run(objects::TC_INGRESS.program, &s.frame())
    }

    /// The ingress program must leave this frame exactly as it was.
    pub fn ingress_untouched(&self, frame: &[u8]) {
        assert_eq!(self.run(objects::TC_INGRESS.program, frame), frame, "ingress changed a packet it must leave alone");
    }

    pub fn flow(&self, remote: Ipv4Addr, remote_port: u16) -> Option<Flow4> {
        let key = Flow4Key { remote_ip4: u32::from(remote).to_be(), local_ip4: u32::from(POD).to_be(), remote_port: remote_port.to_be(), pad: 0 };
        self.map(pins::MAP_FLOW4).lookup(&key).unwrap()
    }

    /// The handshake in progress from this peer port, as (dialled port, SYN-ACK seen).
    pub fn handshake(&self, remote: Ipv4Addr, remote_port: u16) -> Option<(u16, bool)> {
        // struct mw_flow4_key as bytes: addresses and port in network order, pad.
        let key: Vec<u8> = [&remote.octets()[..], &POD.octets(), &remote_port.to_be_bytes(), &[0, 0]].concat();
        // struct mw_flow4_syn: orig_port (network order), flags (MW_SYN_F_SYNACK = 1), synack_end.
        self.map(pins::MAP_FLOW4_SYN).lookup_raw(&key).unwrap().map(|v| (u16::from_be_bytes([v[0], v[1]]), u16::from_ne_bytes([v[2], v[3]]) & 1 != 0))
    }

    pub fn count(&self, map: &str) -> usize {
        self.map(map).raw_keys().unwrap().len()
    }

    pub fn stat(&self, name: &str) -> u64 {
        let i = STAT_NAMES.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no stat {name}")) as u32;
        self.map(pins::MAP_STATS).lookup_percpu_sum(&i).unwrap()
    }
}

/// One redirected connection, driven packet by packet with real sequence
/// numbers. Every packet is checked: ingress ones reach the sidecar's port,
/// egress ones leave from the app's port, checksums are right.
pub struct Conn<'a> {
    pub tc: &'a Tc,
    pub remote: Ipv4Addr,
    pub rport: u16,
    /// Next sequence number of each side.
    pub rseq: u32,
    pub pseq: u32,
}

impl<'a> Conn<'a> {
    pub fn open(tc: &'a Tc, remote: Ipv4Addr, rport: u16) -> Conn<'a> {
        let mut c = Conn { tc, remote, rport, rseq: 0x1000_0000u32.wrapping_add(rport as u32 * 7919), pseq: 0xfff0_0000 };
        c.remote_sends(SYN, b"");
        c.pod_sends(SYN | ACK, b"");
        c.remote_sends(ACK, b"");
        c
    }

    pub fn remote_sends(&mut self, flags: u8, payload: &[u8]) -> Vec<u8> {
        let s = Seg::tcp(self.remote, self.rport, POD, APP, flags).seq(self.rseq, if flags & ACK != 0 { self.pseq } else { 0 }).payload(payload);
        self.rseq = self.rseq.wrapping_add(payload.len() as u32 + (flags & (SYN | FIN) != 0) as u32);
        let inp = s.frame();
        let out = self.tc.run(objects::TC_INGRESS.program, &inp);
        assert_eq!(ports(&out), (self.rport, INBOUND), "ingress {flags:#04x} reaches the sidecar");
        assert_only_port_changed(&inp, &out, 2);
        assert_tcp_checksum(&out);
        out
    }

    pub fn pod_sends(&mut self, flags: u8, payload: &[u8]) -> Vec<u8> {
        self.pod_sends_acking(flags, payload, self.rseq)
    }

    pub fn pod_sends_acking(&mut self, flags: u8, payload: &[u8], ack: u32) -> Vec<u8> {
        let s = Seg::tcp(POD, INBOUND, self.remote, self.rport, flags).seq(self.pseq, ack).payload(payload);
        self.pseq = self.pseq.wrapping_add(payload.len() as u32 + (flags & (SYN | FIN) != 0) as u32);
        let inp = s.frame();
        let out = self.tc.run(objects::TC_EGRESS.program, &inp);
        assert_eq!(ports(&out), (APP, self.rport), "egress {flags:#04x} leaves from the dialled port");
        assert_only_port_changed(&inp, &out, 0);
        assert_tcp_checksum(&out);
        out
    }

    pub fn flow(&self) -> Option<Flow4> {
        self.tc.flow(self.remote, self.rport)
    }
}
