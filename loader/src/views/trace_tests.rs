//! The decision events against the real kernel: the tc program run on crafted
//! SYNs (BPF_PROG_TEST_RUN) in a private bpffs, read back through the pinned
//! ring buffer with the libbpf wrapper; and `loaded_with_trace` on a connect4
//! program attached to a temporary cgroup. Root; never /sys/fs/bpf nor the
//! root cgroup.

use std::net::Ipv4Addr;

use super::*;
use crate::config::Config;
use crate::datapath;
use crate::datapath::layout::Settings;
use crate::libbpf::{MapFd, Object};
use crate::datapath::objects::{self, ObjectSpec};
use crate::datapath::pins::{self, Pins};
use crate::testutil::{PrivateBpffs, TempCgroup};

const REMOTE: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 7);
const POD: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 9);

fn settings(trace: bool) -> Settings {
    let mut s = datapath::settings_of(&Config::default_config());
    s.trace = trace as u8;
    s
}

struct Loaded {
    obj: Object,
    pins: Pins,
    _fs: PrivateBpffs,
}

fn load(object: &ObjectSpec, trace: bool) -> Loaded {
    let fs = PrivateBpffs::new();
    let pins = Pins::new(&fs.path().join("meshwire"));
    pins.create_dirs().unwrap();
    let mut obj = object.open(Some(&pins.maps_dir())).unwrap();
    obj.set_rodata(objects::SETTINGS_VAR, settings(trace).as_bytes()).unwrap();
    obj.load().unwrap_or_else(|e| panic!("load {} with trace {trace} (see the verifier log): {e}", object.name));
    Loaded { obj, pins, _fs: fs }
}

/// An Ethernet frame with an IPv4 TCP SYN. Checksums are left 0: the
/// program parses and rewrites, it does not validate them.
fn syn(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&tcp);
    frame
}

impl Loaded {
    fn map(&self, name: &str) -> MapFd {
        MapFd::open_pinned(&self.pins.map(name)).unwrap()
    }

    fn mesh_pod_ip(&self) {
        self.map(pins::MAP_POD_IPS).update(&u32::from(POD).to_be(), &77u64).unwrap();
    }

    fn ingress(&self, frame: &[u8]) {
        self.obj.program(objects::TC_INGRESS.program).unwrap().test_run(frame).unwrap();
    }

    /// Every event waiting in the ring buffer.
    fn drain(&self) -> Vec<Event> {
        let events = self.map(pins::MAP_EVENTS);
        let mut got = Vec::new();
        let mut rb = RingBuffer::new(&events, |r| got.push(Event::from_bytes(r).expect("an mw_event"))).unwrap();
        rb.consume().unwrap();
        drop(rb);
        got
    }

    fn dropped(&self) -> u64 {
        dropped(&self.map(pins::MAP_STATS))
    }
}

#[test]
fn the_ring_buffer_is_pinned_with_the_other_maps() {
    let l = load(&objects::TC, false);
    let info = l.map(pins::MAP_EVENTS).info().unwrap();
    assert_eq!(info.map_type, libbpf_sys::BPF_MAP_TYPE_RINGBUF);
    assert_eq!(info.max_entries, 256 * 1024);
}

#[test]
fn with_trace_off_no_event_is_written() {
    let l = load(&objects::TC, false);
    l.mesh_pod_ip();
    l.ingress(&syn(REMOTE, 40000, POD, 8080));
    assert_eq!(l.drain().len(), 0);
    assert_eq!(l.dropped(), 0);
}

#[test]
fn a_redirected_syn_is_one_event_with_its_addresses() {
    let l = load(&objects::TC, true);
    l.mesh_pod_ip();
    let before = now_monotonic_ns();
    l.ingress(&syn(REMOTE, 40000, POD, 8080));
    let got = l.drain();
    assert_eq!(got.len(), 1, "{got:?}");
    let e = got[0];
    assert_eq!((hook_name(e.hook).as_str(), decision_name(e.decision).as_str()), ("tc_ingress", "tc_redirected"));
    assert_eq!((Ipv4Addr::from(u32::from_be(e.src_ip[0])), e.src_port), (REMOTE, 40000));
    assert_eq!((Ipv4Addr::from(u32::from_be(e.dst_ip[0])), e.dst_port), (POD, 8080));
    assert_eq!((Ipv4Addr::from(u32::from_be(e.to_ip[0])), e.to_port), (POD, 15003));
    assert_eq!((e.ip6, &e.src_ip[1..], &e.dst_ip[1..], &e.to_ip[1..]), (0, &[0u32; 3][..], &[0u32; 3][..], &[0u32; 3][..]), "IPv4: one word each");
    assert_eq!((e.netns_cookie, e.pid, e.uid), (0, 0, 0), "tc knows no cookie nor task");
    assert!(e.ts_ns >= before && e.ts_ns <= now_monotonic_ns(), "bpf_ktime_get_ns is CLOCK_MONOTONIC");

    // An excluded port and a pod that is not meshed.
    let key = crate::datapath::layout::In4Key { pod_ip4: 0, port: 9090, pad: 0 };
    l.map(pins::MAP_EXCL_IN4).update(&key, &1u8).unwrap();
    l.ingress(&syn(REMOTE, 40001, POD, 9090));
    l.ingress(&syn(REMOTE, 40002, Ipv4Addr::new(10, 2, 0, 99), 8080));
    let got = l.drain();
    assert_eq!(got.iter().map(|e| decision_name(e.decision)).collect::<Vec<_>>(), ["tc_excluded"], "no event for a pod that is not meshed");
    assert_eq!(got[0].dst_port, 9090);
    assert_eq!(got[0].to_port, 0, "not redirected: no `to`");
}

fn now_monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[test]
fn a_full_ring_buffer_drops_events_counts_them_and_never_blocks() {
    let l = load(&objects::TC, true);
    l.mesh_pod_ip();
    let frame = syn(REMOTE, 40000, POD, 8080);
    // An event and the record's 8-byte header (96 bytes): 2730 fit in 256 KiB.
    let fit = 256 * 1024 / (std::mem::size_of::<Event>() + 8);
    assert_eq!(fit, 2730);
    let runs = 6000;
    for _ in 0..runs {
        l.ingress(&frame);
    }
    let got = l.drain();
    let dropped = l.dropped();
    assert!(got.len() > fit * 9 / 10 && got.len() <= fit, "{} events kept", got.len());
    assert_eq!(got.len() as u64 + dropped, runs as u64, "every event is either kept or counted as dropped");
    // Read, the buffer takes events again.
    l.ingress(&frame);
    assert_eq!(l.drain().len(), 1);
    assert_eq!(l.dropped(), dropped);
}

#[test]
fn the_connect4_program_s_trace_setting_is_read_back_from_its_rodata() {
    for trace in [false, true] {
        let l = load(&objects::SOCK, trace);
        let cg = TempCgroup::new();
        let cgroup = crate::system::Cgroup::open(cg.path()).unwrap();
        let mut link = l.obj.program(objects::SOCK4_CONNECT.program).unwrap().attach_cgroup(&cgroup).unwrap();
        std::fs::create_dir_all(l.pins.links_dir()).unwrap();
        link.pin(&l.pins.link(objects::SOCK4_CONNECT.program)).unwrap();
        assert_eq!(loaded_with_trace(&l.pins), Some(trace));
        crate::libbpf::detach_pinned_link(&l.pins.link(objects::SOCK4_CONNECT.program)).unwrap();
        std::fs::remove_file(l.pins.link(objects::SOCK4_CONNECT.program)).unwrap();
        drop(link);
    }
    let fs = PrivateBpffs::new();
    assert_eq!(loaded_with_trace(&Pins::new(fs.path())), None, "nothing attached: cannot tell");
}

#[test]
fn events_print_as_text_and_json() {
    let e = Event {
        ts_ns: 1,
        netns_cookie: 4099,
        src_ip: [0; 4],
        dst_ip: [u32::from(Ipv4Addr::new(10, 0, 0, 7)).to_be(), 0, 0, 0],
        to_ip: [u32::from(Ipv4Addr::LOCALHOST).to_be(), 0, 0, 0],
        src_port: 0,
        dst_port: 8080,
        to_port: 15001,
        hook: 1,
        decision: 1,
        pid: 42,
        uid: 1000,
        ip6: 0,
        pad: [0; 7],
    };
    let time = rfc3339(1_764_158_400_123_456_789);
    assert_eq!(time, "2025-11-26T12:00:00.123456Z");
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
    assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
    let text = format_text(&e, &time);
    assert!(text.starts_with("2025-11-26T12:00:00.123456Z connect4"), "{text}");
    assert!(text.contains("connect_redirected") && text.contains("netns 4099") && text.contains("pid 42 uid 1000"), "{text}");
    assert!(text.ends_with("dst 10.0.0.7:8080 -> 127.0.0.1:15001"), "{text}");
    assert!(!text.contains("src"), "an unknown source is left out: {text}");
    let v: serde_json::Value = serde_json::from_str(&format_json(&e, &time)).unwrap();
    assert_eq!(v["hook"], "connect4");
    assert_eq!(v["decision"], "connect_redirected");
    assert_eq!(v["netns_cookie"], 4099);
    assert_eq!(v["src"], serde_json::Value::Null);
    assert_eq!(v["dst"], "10.0.0.7:8080");
    assert_eq!(v["to"], "127.0.0.1:15001");
    assert_eq!(decision_name(200), "decision200", "a newer datapath's decision still prints");
    assert_eq!(v["family"], "ipv4");
    assert_eq!(Event::from_bytes(&[0u8; 47]), None);

    // IPv6: [addr]:port, from the four network-order words.
    let words = |a: std::net::Ipv6Addr| -> [u32; 4] {
        let o = a.octets();
        std::array::from_fn(|i| u32::from_ne_bytes([o[i * 4], o[i * 4 + 1], o[i * 4 + 2], o[i * 4 + 3]]))
    };
    let e6 = Event {
        hook: 6,
        src_ip: words("fd00:231:1::2".parse().unwrap()),
        src_port: 40000,
        dst_ip: words("2001:db8::7".parse().unwrap()),
        to_ip: words(std::net::Ipv6Addr::LOCALHOST),
        ip6: 1,
        ..e
    };
    let text = format_text(&e6, &time);
    assert!(text.contains("connect6") && text.ends_with("src [fd00:231:1::2]:40000 dst [2001:db8::7]:8080 -> [::1]:15001"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&format_json(&e6, &time)).unwrap();
    assert_eq!((v["family"].as_str(), v["dst"].as_str(), v["to"].as_str()), (Some("ipv6"), Some("[2001:db8::7]:8080"), Some("[::1]:15001")));
    let none6 = Event { src_ip: [0; 4], src_port: 0, ..e6 };
    assert!(!format_text(&none6, &time).contains("src"), "an unknown IPv6 source is left out too");
}

#[test]
fn every_object_verifies_with_trace_on() {
    // The event calls are dead code with trace off and verified with it on:
    // the helpers they use must be allowed in each program type.
    for object in objects::WITH_PROGRAMS {
        let _ = load(object, true);
    }
}
