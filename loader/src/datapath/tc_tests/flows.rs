//! Connections over several packets through the tc programs: handshakes,
//! spoofed and repeated SYNs, floods, the ways a flow ends. Every packet of a
//! [`Conn`] is checked on the way (ports, checksums).

use std::net::Ipv4Addr;

use super::harness::{Conn, Tc};
use super::packet::*;
use crate::datapath::layout::{Flow4, FLOW_F_FIN_IN, FLOW_F_FIN_OUT};
use crate::datapath::objects;
use crate::datapath::pins;

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
