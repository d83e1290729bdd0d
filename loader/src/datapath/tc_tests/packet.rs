//! Packets for the tc programs, built field by field: IPv4 TCP/UDP segments
//! ([`Seg`]) and IPv6 frames with extension headers ([`frame6`]), in Ethernet
//! frames as the programs see them; and the addresses and ports of the test's
//! world (a remote peer, the meshed pod, its sidecar's ports).

use std::net::{Ipv4Addr, Ipv6Addr};

pub const TC_ACT_UNSPEC: i32 = -1;
pub const TC_ACT_SHOT: i32 = 2;
pub const TC_ACT_REDIRECT: i32 = 7;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

pub const REMOTE: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 7);
pub const POD: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 9);
pub const OTHER_POD: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 10);
pub const APP: u16 = 8080;
pub const INBOUND: u16 = 15003;
pub const OUTBOUND: u16 = 15001;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const ETH_HLEN: usize = 14;

pub fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    acc
}

pub fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The TCP/UDP checksum of `seg` (its checksum field zeroed), pseudo header included.
pub fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, seg: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    !fold(sum16(seg, sum16(&pseudo, 0)))
}

/// An IPv4 packet in an Ethernet frame, built field by field.
#[derive(Clone, Debug)]
pub struct Seg {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub payload: Vec<u8>,
    pub ip_opts: Vec<u8>,
    pub proto: u8,
    /// iphdr.frag_off, host order (MF 0x2000 | offset in 8-byte units)
    pub frag: u16,
}

impl Seg {
    pub fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Seg {
        Seg { src, dst, sport, dport, flags, seq: 1000, ack: 0, payload: Vec::new(), ip_opts: Vec::new(), proto: IPPROTO_TCP, frag: 0 }
    }

    /// From the remote peer to the pod's app port.
    pub fn inbound(sport: u16, flags: u8) -> Seg {
        Seg::tcp(REMOTE, sport, POD, APP, flags)
    }

    pub fn seq(mut self, seq: u32, ack: u32) -> Seg {
        self.seq = seq;
        self.ack = ack;
        self
    }

    pub fn payload(mut self, p: &[u8]) -> Seg {
        self.payload = p.to_vec();
        self
    }

    /// The same segment to another destination port (as a rewrite leaves it).
    pub fn to_port(mut self, dport: u16) -> Seg {
        self.dport = dport;
        self
    }

    /// The same segment from another source port.
    pub fn from_port(mut self, sport: u16) -> Seg {
        self.sport = sport;
        self
    }

    pub fn udp(mut self) -> Seg {
        self.proto = IPPROTO_UDP;
        self
    }

    /// iphdr.frag_off, host order.
    pub fn frag(mut self, frag: u16) -> Seg {
        self.frag = frag;
        self
    }

    pub fn ip_opts(mut self, o: &[u8]) -> Seg {
        assert_eq!(o.len() % 4, 0);
        self.ip_opts = o.to_vec();
        self
    }

    pub fn frame(&self) -> Vec<u8> {
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

/// The reset tc answers the SYN `syn` with, as the peer must receive it:
/// MACs, addresses and ports swapped, RST|ACK with seq 0 acknowledging the
/// SYN and its data, window 0, no TCP options or payload, the IPv4 header
/// (options too) otherwise the SYN's.
pub fn reset_of(syn: &Seg) -> Vec<u8> {
    let ack = syn.seq.wrapping_add(1 + syn.payload.len() as u32);
    let rst = Seg { src: syn.dst, dst: syn.src, sport: syn.dport, dport: syn.sport, flags: RST | ACK, seq: 0, ack, payload: Vec::new(), ..syn.clone() };
    let mut f = rst.frame();
    let o = l4_off(&f);
    f[o + 14..o + 16].copy_from_slice(&[0, 0]); // window
    f[o + 16..o + 18].copy_from_slice(&[0, 0]);
    let c = l4_checksum(rst.src, rst.dst, IPPROTO_TCP, &f[o..]);
    f[o + 16..o + 18].copy_from_slice(&c.to_be_bytes());
    let (dst_mac, src_mac) = (f[0..6].to_vec(), f[6..12].to_vec());
    f[0..6].copy_from_slice(&src_mac);
    f[6..12].copy_from_slice(&dst_mac);
    f
}

/// The TCP header's offset in a frame built by [`Seg::frame`].
pub fn l4_off(frame: &[u8]) -> usize {
    ETH_HLEN + (frame[ETH_HLEN] & 0x0f) as usize * 4
}

pub fn ports(frame: &[u8]) -> (u16, u16) {
    let o = l4_off(frame);
    (u16::from_be_bytes([frame[o], frame[o + 1]]), u16::from_be_bytes([frame[o + 2], frame[o + 3]]))
}

/// Recompute the TCP checksum of a frame (pseudo header included) and
/// compare it with the one it carries.
pub fn assert_tcp_checksum(frame: &[u8]) {
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
pub fn assert_only_port_changed(inp: &[u8], out: &[u8], port_off: usize) {
    assert_eq!(inp.len(), out.len());
    let o = l4_off(inp);
    let changed: Vec<usize> = (0..inp.len()).filter(|&i| inp[i] != out[i]).collect();
    let allowed = [o + port_off, o + port_off + 1, o + 16, o + 17];
    assert!(changed.iter().all(|i| allowed.contains(i)), "bytes {changed:?} changed; only {allowed:?} may");
}

// ---- IPv6 (interception.ipv6) ---------------------------------------------

pub const NEXTHDR_HOP: u8 = 0;
pub const NEXTHDR_ROUTING: u8 = 43;
pub const NEXTHDR_TCP: u8 = 6;
pub const NEXTHDR_FRAGMENT: u8 = 44;
pub const NEXTHDR_DEST: u8 = 60;

/// frame6's source address.
pub const FRAME6_SRC: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1);
/// frame6's destination.
pub const FRAME6_DST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 2);

/// An Ethernet + IPv6 frame: the extension headers `ext` (type, length in
/// bytes, for a fragment header its offset in 8-byte units), then a TCP
/// header from port 40000 to `dport` with `flags`.
pub fn frame6(ext: &[(u8, usize, u16)], dport: u16, flags: u8) -> Vec<u8> {
    Seg6::tcp(FRAME6_SRC, 40000, FRAME6_DST, dport, flags).seq(0, 0).ext(ext).frame()
}

pub const REMOTE6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 7);
pub const POD6: Ipv6Addr = Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 9);
pub const OTHER_POD6: Ipv6Addr = Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 10);

/// The TCP checksum of `seg` (its checksum field zeroed) with the IPv6 pseudo
/// header (RFC 8200 8.1).
pub fn l4_checksum6(src: Ipv6Addr, dst: Ipv6Addr, seg: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(seg.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_TCP]);
    !fold(sum16(seg, sum16(&pseudo, 0)))
}

/// An IPv6 TCP segment in an Ethernet frame, built field by field.
#[derive(Clone, Debug)]
pub struct Seg6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub payload: Vec<u8>,
    /// Extension headers, as for [`frame6`].
    pub ext: Vec<(u8, usize, u16)>,
}

impl Seg6 {
    pub fn tcp(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, flags: u8) -> Seg6 {
        Seg6 { src, dst, sport, dport, flags, seq: 1000, ack: 0, window: 0xffff, payload: Vec::new(), ext: Vec::new() }
    }

    /// From the remote peer to the pod's app port.
    pub fn inbound(sport: u16, flags: u8) -> Seg6 {
        Seg6::tcp(REMOTE6, sport, POD6, APP, flags)
    }

    /// From the pod's sidecar inbound port back to the remote peer.
    pub fn outbound(dport: u16, flags: u8) -> Seg6 {
        Seg6::tcp(POD6, INBOUND, REMOTE6, dport, flags)
    }

    pub fn seq(mut self, seq: u32, ack: u32) -> Seg6 {
        self.seq = seq;
        self.ack = ack;
        self
    }

    pub fn payload(mut self, p: &[u8]) -> Seg6 {
        self.payload = p.to_vec();
        self
    }

    pub fn ext(mut self, ext: &[(u8, usize, u16)]) -> Seg6 {
        self.ext = ext.to_vec();
        self
    }

    pub fn to_port(mut self, dport: u16) -> Seg6 {
        self.dport = dport;
        self
    }

    pub fn from_port(mut self, sport: u16) -> Seg6 {
        self.sport = sport;
        self
    }

    pub fn frame(&self) -> Vec<u8> {
        let mut chain = Vec::new();
        for (i, &(kind, len, frag_off)) in self.ext.iter().enumerate() {
            let next = self.ext.get(i + 1).map_or(NEXTHDR_TCP, |e| e.0);
            let mut h = vec![0u8; len];
            h[0] = next;
            match kind {
                NEXTHDR_FRAGMENT => h[2..4].copy_from_slice(&(frag_off << 3).to_be_bytes()),
                _ => h[1] = (len / 8 - 1) as u8,
            }
            chain.extend(h);
        }
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&self.sport.to_be_bytes());
        tcp.extend_from_slice(&self.dport.to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        tcp.extend_from_slice(&self.ack.to_be_bytes());
        tcp.extend_from_slice(&[5 << 4, self.flags]);
        tcp.extend_from_slice(&self.window.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        tcp.extend_from_slice(&self.payload);
        let c = l4_checksum6(self.src, self.dst, &tcp);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x86, 0xdd];
        f.extend([0x60, 0, 0, 0]);
        f.extend(((chain.len() + tcp.len()) as u16).to_be_bytes());
        f.push(self.ext.first().map_or(NEXTHDR_TCP, |e| e.0));
        f.push(64);
        f.extend(self.src.octets());
        f.extend(self.dst.octets());
        f.extend(chain);
        f.extend(tcp);
        f
    }
}

/// [`reset_of`] for an IPv6 SYN: the extension headers gone, the TCP header
/// right after the fixed header.
pub fn reset6_of(syn: &Seg6) -> Vec<u8> {
    let ack = syn.seq.wrapping_add(1 + syn.payload.len() as u32);
    let rst = Seg6 { src: syn.dst, dst: syn.src, sport: syn.dport, dport: syn.sport, flags: RST | ACK, seq: 0, ack, window: 0, payload: Vec::new(), ext: Vec::new() };
    let mut f = rst.frame();
    let (dst_mac, src_mac) = (f[0..6].to_vec(), f[6..12].to_vec());
    f[0..6].copy_from_slice(&src_mac);
    f[6..12].copy_from_slice(&dst_mac);
    f
}

/// The TCP checksum an IPv6 frame carries against one computed from its
/// bytes (the extension headers walked).
pub fn assert_tcp6_checksum(frame: &[u8]) {
    let ip = &frame[ETH_HLEN..];
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
    let (mut next, mut off) = (ip[6], 40);
    while next != NEXTHDR_TCP {
        let len = if next == NEXTHDR_FRAGMENT { 8 } else { (ip[off + 1] as usize + 1) * 8 };
        next = ip[off];
        off += len;
    }
    let end = 40 + u16::from_be_bytes([ip[4], ip[5]]) as usize;
    let mut seg = ip[off..end].to_vec();
    let carried = u16::from_be_bytes([seg[16], seg[17]]);
    seg[16] = 0;
    seg[17] = 0;
    let want = l4_checksum6(src, dst, &seg);
    assert_eq!(carried, want, "TCP checksum {carried:#06x}, recomputed {want:#06x}");
}

#[test]
fn the_builder_s_checksums_are_right() {
    // Reference values from an independent RFC 1071 sum (Python's struct and
    // socket modules) over the same fields.
    let syn = Seg::inbound(40000, SYN).frame();
    assert_eq!(&syn[ETH_HLEN + 10..ETH_HLEN + 12], &0x548au16.to_be_bytes(), "IPv4 header checksum");
    assert_eq!(&syn[ETH_HLEN + 20 + 16..ETH_HLEN + 20 + 18], &0xdc17u16.to_be_bytes(), "TCP checksum");
    let odd = Seg::inbound(40000, ACK | PSH).payload(b"odd").frame();
    assert_eq!(&odd[ETH_HLEN + 20 + 16..ETH_HLEN + 20 + 18], &0x089au16.to_be_bytes(), "TCP checksum, odd length");
    assert_tcp_checksum(&syn);
    assert_tcp_checksum(&odd);
}
