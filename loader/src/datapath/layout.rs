//! `#[repr(C)]` mirrors of `bpf/lib/meshwire_structs.h`.
//!
//! The C header is the one definition. Each mirror lists its fields once, and
//! `check_against_btf` compares names, offsets and sizes with the BTF of the
//! built objects, so a drift between C and Rust fails the unit tests.

use crate::libbpf::{Btf, BtfMember};

/// A Rust struct that mirrors a C struct of the datapath.
pub trait Mirror: Copy + Default {
    const C_NAME: &'static str;
    fn members() -> Vec<BtfMember>;
}

macro_rules! mirror {
    ($(#[$meta:meta])* $c:literal => pub struct $name:ident { $(pub $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name { $(pub $field: $ty,)* }

        impl Mirror for $name {
            const C_NAME: &'static str = $c;
            fn members() -> Vec<BtfMember> {
                vec![$(BtfMember {
                    name: stringify!($field).to_string(),
                    offset: std::mem::offset_of!($name, $field),
                    size: std::mem::size_of::<$ty>(),
                },)*]
            }
        }
    };
}

mirror! {
    /// Load-time settings written into each object's .rodata.
    "mw_settings" => pub struct Settings {
        pub sidecar_uid: u32,
        pub outbound_port: u16,
        pub inbound_port: u16,
        pub debug: u8,
        pub accel: u8,
        pub trace: u8,
        pub ipv6: u8,
        pub dns_port: u16,
        pub dns_servers: u8,
        pub out_sources: u8,
    }
}

mirror! {
    /// Value of `mw_pods`, keyed by netns cookie.
    "mw_pod" => pub struct Pod {
        pub flags: u32,
    }
}

mirror! {
    /// Key of `mw_excl_ports`.
    "mw_port_key" => pub struct PortKey {
        pub netns_cookie: u64,
        pub port: u16,
        pub dir: u8,
        pub pad: [u8; 5],
    }
}

mirror! {
    /// Key of the `mw_excl_cidr4` LPM trie.
    "mw_cidr4_key" => pub struct Cidr4Key {
        pub prefixlen: u32,
        pub cookie_hi: u32,
        pub cookie_lo: u32,
        pub addr: u32,
    }
}

mirror! {
    /// Key of the `mw_excl_cidr6` LPM trie (prefixlen 64 + the CIDR's length).
    "mw_cidr6_key" => pub struct Cidr6Key {
        pub prefixlen: u32,
        pub cookie_hi: u32,
        pub cookie_lo: u32,
        pub addr: [u32; 4],
    }
}

mirror! {
    /// An original IPv6 destination (`mw_orig6_sk`, `mw_orig_tuple6`).
    "mw_orig6" => pub struct Orig6 {
        pub ip6: [u32; 4],
        pub port: u16,
        pub flags: u16,
        pub flowinfo: u32,
    }
}

mirror! {
    /// Key of `mw_orig_tuple6`.
    "mw_tuple6" => pub struct Tuple6 {
        pub netns_cookie: u64,
        pub client_ip6: [u32; 4],
        pub server_ip6: [u32; 4],
        pub client_port: u16,
        pub server_port: u16,
        pub pad: u32,
    }
}

mirror! {
    /// An original destination (network-order address and port).
    "mw_orig4" => pub struct Orig4 {
        pub ip4: u32,
        pub port: u16,
        pub flags: u16,
    }
}

mirror! {
    /// Key of `mw_orig_tuple4`.
    "mw_tuple4" => pub struct Tuple4 {
        pub netns_cookie: u64,
        pub client_ip4: u32,
        pub server_ip4: u32,
        pub client_port: u16,
        pub server_port: u16,
        pub pad: u32,
    }
}

mirror! {
    /// Key of `mw_excl_in4` (inbound exclusions by pod IP; 0 = node-wide).
    "mw_in4_key" => pub struct In4Key {
        pub pod_ip4: u32,
        pub port: u16,
        pub pad: u16,
    }
}

mirror! {
    /// Key of `mw_pod_ips6`: a meshed pod's IPv6 address (network order words).
    "mw_ip6_key" => pub struct Ip6Key {
        pub addr: [u32; 4],
    }
}

mirror! {
    /// Key of `mw_excl_in6` (inbound exclusions by pod IPv6 address).
    "mw_in6_key" => pub struct In6Key {
        pub pod_ip6: [u32; 4],
        pub port: u16,
        pub pad: u16,
    }
}

mirror! {
    /// Key of `mw_flow4`: an inbound flow redirected by tc.
    "mw_flow4_key" => pub struct Flow4Key {
        pub remote_ip4: u32,
        pub local_ip4: u32,
        pub remote_port: u16,
        pub pad: u16,
    }
}

mirror! {
    /// Key of `mw_flow6`, `mw_flow6_fin` and `mw_flow6_syn`: an inbound IPv6 flow.
    "mw_flow6_key" => pub struct Flow6Key {
        pub remote_ip6: [u32; 4],
        pub local_ip6: [u32; 4],
        pub remote_port: u16,
        pub pad: u16,
    }
}

mirror! {
    /// Value of `mw_flow4`.
    "mw_flow4" => pub struct Flow4 {
        pub orig_port: u16,
        pub flags: u16,
        pub pad: u32,
    }
}

mirror! {
    /// Value of `mw_flow4_fin`: closing state of a redirected flow.
    "mw_flow4_fin" => pub struct Flow4Fin {
        pub in_end: u32,
        pub out_end: u32,
        pub acked: u32,
        pub pad: u32,
    }
}

mirror! {
    /// Value of `mw_flow4_syn`: an inbound handshake in progress.
    "mw_flow4_syn" => pub struct Flow4Syn {
        pub orig_port: u16,
        pub flags: u16,
        pub synack_end: u32,
    }
}

mirror! {
    /// Key of `mw_sock_hash`: an accelerated socket, seen from itself.
    "mw_sock_key" => pub struct SockKey {
        pub netns_cookie: u64,
        pub local_ip4: u32,
        pub remote_ip4: u32,
        pub local_port: u32,
        pub remote_port: u32,
    }
}

mirror! {
    /// Key of `mw_sock_hash6`: an accelerated native IPv6 socket, seen from itself.
    "mw_sock6_key" => pub struct Sock6Key {
        pub netns_cookie: u64,
        pub local_ip6: [u32; 4],
        pub remote_ip6: [u32; 4],
        pub local_port: u32,
        pub remote_port: u32,
    }
}

mirror! {
    /// Value of `mw_accel_state` and `mw_accel_state6` (acceleration). Only
    /// an upgrade touches it (upgrade.rs): `lock` is the BPF spin lock, which
    /// the kernel neither reads out nor writes from userspace.
    "mw_accel_state" => pub struct AccelState {
        pub lock: u32,
        pub flags: u32,
        pub psock: u64,
    }
}

mirror! {
    /// One decision from the `mw_events` ring buffer (`bpf.trace`); addresses
    /// in network order, IPv4 in word 0 (ip6 0) or IPv6 (ip6 1).
    "mw_event" => pub struct Event {
        pub ts_ns: u64,
        pub netns_cookie: u64,
        pub src_ip: [u32; 4],
        pub dst_ip: [u32; 4],
        pub to_ip: [u32; 4],
        pub src_port: u16,
        pub dst_port: u16,
        pub to_port: u16,
        pub hook: u8,
        pub decision: u8,
        pub pid: u32,
        pub uid: u32,
        pub ip6: u8,
        pub pad: [u8; 7],
    }
}

impl Event {
    /// Decode one ring buffer record; None when it is not an event's size.
    pub fn from_bytes(b: &[u8]) -> Option<Event> {
        if b.len() != std::mem::size_of::<Event>() {
            return None;
        }
        // SAFETY: repr(C) of plain integers (every bit pattern valid), length checked.
        Some(unsafe { std::ptr::read_unaligned(b.as_ptr() as *const Event) })
    }
}

/// A C enum of bpf/lib/meshwire_consts.h as the loader mirrors it: every
/// constant with its C name and value, compared with the objects' BTF.
#[derive(Debug)]
pub struct CEnum {
    pub name: &'static str,
    pub values: &'static [(&'static str, i64)],
}

/// Declares each constant of a C enum once, and the [`CEnum`] that checks them.
macro_rules! c_enum {
    ($(#[$meta:meta])* $cname:literal => $list:ident: $ty:ty { $($(#[$doc:meta])* $konst:ident = $c:literal = $val:expr,)* }) => {
        $($(#[$doc])* pub const $konst: $ty = $val;)*
        $(#[$meta])*
        pub const $list: CEnum = CEnum { name: $cname, values: &[$(($c, $konst as i64),)*] };
    };
}

c_enum! {
    /// Map capacities (the loader reads them from the maps; checked only).
    "mw_capacity" => CAPACITIES: u32 {
        MAX_PODS = "MW_MAX_PODS" = 4096,
        MAX_EXCL_PORTS = "MW_MAX_EXCL_PORTS" = 4096,
        MAX_EXCL_CIDRS = "MW_MAX_EXCL_CIDRS" = 4096,
        MAX_TUPLES = "MW_MAX_TUPLES" = 65536,
        MAX_POD_IPS = "MW_MAX_POD_IPS" = 4096,
        MAX_EXCL_IN = "MW_MAX_EXCL_IN" = 4096,
        MAX_INCL_CIDRS = "MW_MAX_INCL_CIDRS" = 4096,
        MAX_FLOWS = "MW_MAX_FLOWS" = 65536,
        MAX_SOCKS = "MW_MAX_SOCKS" = 65536,
        MAX_DNS_SERVERS = "MW_MAX_DNS_SERVERS" = crate::config::MAX_DNS_SERVERS as u32,
        EVENTS_BYTES = "MW_EVENTS_BYTES" = 256 * 1024,
    }
}

c_enum! {
    /// `mw_pod.flags`
    "mw_pod_flag" => POD_FLAGS: u32 {
        POD_F_MESHED = "MW_POD_F_MESHED" = 1 << 0,
        /// The pod's mesh hops are accelerated.
        POD_F_ACCEL = "MW_POD_F_ACCEL" = 1 << 1,
        /// Outbound, only included ports and ranges are steered.
        POD_F_OUT_SELECT = "MW_POD_F_OUT_SELECT" = 1 << 2,
        /// Inbound, only included ports are redirected.
        POD_F_IN_SELECT = "MW_POD_F_IN_SELECT" = 1 << 3,
        /// DNS to port 53 goes to the sidecar's DNS proxy (`[dns] capture`).
        POD_F_DNS = "MW_POD_F_DNS" = 1 << 4,
    }
}

c_enum! {
    /// `mw_port_key.dir`
    "mw_dir" => DIRS: u8 {
        DIR_OUT = "MW_DIR_OUT" = 1,
        DIR_IN = "MW_DIR_IN" = 2,
        /// An included outbound port.
        DIR_OUT_INCL = "MW_DIR_OUT_INCL" = 3,
        /// An included inbound port.
        DIR_IN_INCL = "MW_DIR_IN_INCL" = 4,
    }
}

c_enum! {
    /// `mw_orig4.flags`
    "mw_orig_flag" => ORIG_FLAGS: u16 {
        ORIG_F_CONNECT = "MW_ORIG_F_CONNECT" = 1 << 0,
        ORIG_F_ACCEPTED = "MW_ORIG_F_ACCEPTED" = 1 << 1,
        ORIG_F_DELIVER = "MW_ORIG_F_DELIVER" = 1 << 2,
        ORIG_F_DNS = "MW_ORIG_F_DNS" = 1 << 3,
    }
}

c_enum! {
    /// `mw_flow4.flags`
    "mw_flow_flag" => FLOW_FLAGS: u16 {
        FLOW_F_FIN_IN = "MW_FLOW_F_FIN_IN" = 1 << 0,
        FLOW_F_FIN_OUT = "MW_FLOW_F_FIN_OUT" = 1 << 1,
    }
}

c_enum! {
    /// `mw_flow4_fin.acked`
    "mw_fin_acked" => FIN_ACKED: u32 {
        FIN_ACKED_IN = "MW_FIN_ACKED_IN" = 1 << 0,
        FIN_ACKED_OUT = "MW_FIN_ACKED_OUT" = 1 << 1,
    }
}

c_enum! {
    /// `mw_flow4_syn.flags`
    "mw_syn_flag" => SYN_FLAGS: u16 {
        SYN_F_SYNACK = "MW_SYN_F_SYNACK" = 1 << 0,
    }
}

c_enum! {
    /// `mw_settings.ipv6`: `interception.ipv6`.
    "mw_ipv6_policy" => IPV6_POLICIES: u8 {
        IPV6_PASS = "MW_IPV6_PASS" = 0,
        IPV6_REFUSE = "MW_IPV6_REFUSE" = 1,
        IPV6_INTERCEPT = "MW_IPV6_INTERCEPT" = 2,
    }
}

/// Every mirrored C enum of bpf/lib/meshwire_consts.h.
pub const C_ENUMS: &[&CEnum] =
    &[&CAPACITIES, &POD_FLAGS, &DIRS, &ORIG_FLAGS, &FLOW_FLAGS, &FIN_ACKED, &SYN_FLAGS, &IPV6_POLICIES];

/// Names of `enum mw_stat`, in index order (checked against BTF).
pub const STAT_NAMES: &[&str] = &[
    "MW_STAT_CONNECT_REDIRECTED",
    "MW_STAT_CONNECT_EXCLUDED",
    "MW_STAT_CONNECT_SIDECAR",
    "MW_STAT_CONNECT_ERROR",
    "MW_STAT_SOCKOPS_TUPLE_ADDED",
    "MW_STAT_SOCKOPS_ACCEPT_BOUND",
    "MW_STAT_SOCKOPS_CLOSED",
    "MW_STAT_SOCKOPS_ERROR",
    "MW_STAT_SOCKOPT_ANSWERED",
    "MW_STAT_SOCKOPT_UNKNOWN",
    "MW_STAT_CONNECT_INBOUND",
    "MW_STAT_TC_REDIRECTED",
    "MW_STAT_TC_EXCLUDED",
    "MW_STAT_TC_FLOW_CLOSED",
    "MW_STAT_TC_ERROR",
    "MW_STAT_ACCEL_SOCK_ADDED",
    "MW_STAT_ACCEL_ERROR",
    "MW_STAT_TRACE_DROPPED",
    "MW_STAT_CONNECT6_REFUSED",
    "MW_STAT_TC6_DROPPED",
    "MW_STAT_LOOP_REFUSED",
    "MW_STAT_DNS_REDIRECTED",
    "MW_STAT_DNS_RESTORED",
    "MW_STAT_DNS_ERROR",
    "MW_STAT_ACCEL_LAGGED",
    "MW_STAT_ACCEL_BULK",
];

/// Names of `enum mw_hook`, from value 1 on (checked against BTF).
pub const HOOK_NAMES: &[&str] = &["MW_HOOK_CONNECT4", "MW_HOOK_SOCKOPS", "MW_HOOK_GETSOCKOPT", "MW_HOOK_TC_INGRESS", "MW_HOOK_TC_EGRESS", "MW_HOOK_CONNECT6", "MW_HOOK_SENDMSG4", "MW_HOOK_RECVMSG4", "MW_HOOK_SENDMSG6", "MW_HOOK_RECVMSG6"];

/// Names of `enum mw_decision`, from value 1 on (checked against BTF).
pub const DECISION_NAMES: &[&str] = &[
    "MW_DEC_CONNECT_REDIRECTED",
    "MW_DEC_CONNECT_INBOUND",
    "MW_DEC_CONNECT_EXCLUDED",
    "MW_DEC_CONNECT_REFUSED",
    "MW_DEC_SOCKOPS_PUBLISHED",
    "MW_DEC_SOCKOPT_ANSWERED",
    "MW_DEC_TC_REDIRECTED",
    "MW_DEC_TC_EXCLUDED",
    "MW_DEC_TC_NO_FLOW",
    "MW_DEC_TC_REWRITE_FAILED",
    "MW_DEC_TC_FLOW_CLOSED",
    "MW_DEC_TC_MALFORMED",
    "MW_DEC_CONNECT6_REFUSED",
    "MW_DEC_TC6_DROPPED",
    "MW_DEC_LOOP_REFUSED",
    "MW_DEC_DNS_REDIRECTED",
    "MW_DEC_DNS_RESTORED",
    "MW_DEC_DNS_REFUSED",
];

impl Cidr4Key {
    /// The LPM key of `cidr` for a pod (`cookie`), or node-wide (0).
    pub fn of(cookie: u64, cidr: &crate::config::Cidr4) -> Cidr4Key {
        Cidr4Key { prefixlen: 64 + u32::from(cidr.len), cookie_hi: (cookie >> 32) as u32, cookie_lo: cookie as u32, addr: u32::from(cidr.addr).to_be() }
    }
}

/// An IPv6 address as four network-order words, as the programs read it.
pub fn ip6_words(addr: &std::net::Ipv6Addr) -> [u32; 4] {
    let o = addr.octets();
    let word = |i: usize| u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]);
    [word(0), word(1), word(2), word(3)]
}

impl Cidr6Key {
    /// The LPM key of `cidr` for a pod (`cookie`), or node-wide (0).
    pub fn of(cookie: u64, cidr: &crate::config::Cidr6) -> Cidr6Key {
        Cidr6Key { prefixlen: 64 + u32::from(cidr.len), cookie_hi: (cookie >> 32) as u32, cookie_lo: cookie as u32, addr: ip6_words(&cidr.addr) }
    }
}

impl Ip6Key {
    pub fn of(addr: &std::net::Ipv6Addr) -> Ip6Key {
        Ip6Key { addr: ip6_words(addr) }
    }
}

impl In6Key {
    pub fn of(addr: &std::net::Ipv6Addr, port: u16) -> In6Key {
        In6Key { pod_ip6: ip6_words(addr), port, pad: 0 }
    }
}

impl Settings {
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: repr(C), plain integers, explicit padding fields.
        unsafe { std::slice::from_raw_parts(self as *const Self as *const u8, std::mem::size_of::<Self>()) }
    }
}

/// Compare one mirror with the BTF of an object; Err says what differs.
pub fn check_mirror<M: Mirror>(btf: &Btf) -> Result<(), String> {
    let (size, c_members) = btf
        .struct_layout(M::C_NAME)
        .ok_or_else(|| format!("struct {} is not in the object's BTF", M::C_NAME))?;
    let rust_members = M::members();
    if size != std::mem::size_of::<M>() {
        return Err(format!("struct {}: C size {size}, Rust size {}", M::C_NAME, std::mem::size_of::<M>()));
    }
    if c_members != rust_members {
        return Err(format!("struct {}: C fields {c_members:?}\n  Rust fields {rust_members:?}", M::C_NAME));
    }
    Ok(())
}

/// `enum name` must be `names` numbered from `first`, then `max`.
fn check_enum(btf: &Btf, name: &str, names: &[&str], first: i64, max: &str) -> Result<(), String> {
    let vals = btf.enum_values(name).ok_or_else(|| format!("enum {name} is not in the object's BTF"))?;
    let expected: Vec<(String, i64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), first + i as i64))
        .chain(std::iter::once((max.to_string(), first + names.len() as i64)))
        .collect();
    if vals != expected {
        return Err(format!("enum {name}: C {vals:?}\n  Rust {expected:?}"));
    }
    Ok(())
}

/// `enum name` must hold each of `values` (it may hold more).
fn check_values(btf: &Btf, name: &str, values: &[(&str, i64)]) -> Result<(), String> {
    let vals = btf.enum_values(name).ok_or_else(|| format!("enum {name} is not in the object's BTF"))?;
    for (n, v) in values {
        if !vals.iter().any(|(cn, cv)| cn == n && cv == v) {
            return Err(format!("enum {name}: Rust has {n} = {v}, C {vals:?}"));
        }
    }
    Ok(())
}

/// A mirrored C enum must hold exactly the C enum's names and values.
pub fn check_c_enum(btf: &Btf, e: &CEnum) -> Result<(), String> {
    let mut c = btf.enum_values(e.name).ok_or_else(|| format!("enum {} is not in the object's BTF", e.name))?;
    let mut rust: Vec<(String, i64)> = e.values.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    c.sort();
    rust.sort();
    if c != rust {
        return Err(format!("enum {}: C {c:?}\n  Rust {rust:?}", e.name));
    }
    Ok(())
}

/// Check every mirror and the enums; returns all differences.
pub fn check_against_btf(btf: &Btf) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let mut check = |r: Result<(), String>| {
        if let Err(e) = r {
            errors.push(e)
        }
    };
    check(check_mirror::<Settings>(btf));
    check(check_mirror::<Pod>(btf));
    check(check_mirror::<PortKey>(btf));
    check(check_mirror::<Cidr4Key>(btf));
    check(check_mirror::<Cidr6Key>(btf));
    check(check_mirror::<Orig6>(btf));
    check(check_mirror::<Tuple6>(btf));
    check(check_mirror::<Orig4>(btf));
    check(check_mirror::<Tuple4>(btf));
    check(check_mirror::<In4Key>(btf));
    check(check_mirror::<Ip6Key>(btf));
    check(check_mirror::<In6Key>(btf));
    check(check_mirror::<Flow4Key>(btf));
    check(check_mirror::<Flow6Key>(btf));
    check(check_mirror::<Flow4>(btf));
    check(check_mirror::<Flow4Fin>(btf));
    check(check_mirror::<Flow4Syn>(btf));
    check(check_mirror::<SockKey>(btf));
    check(check_mirror::<Sock6Key>(btf));
    check(check_mirror::<AccelState>(btf));
    check(check_mirror::<Event>(btf));
    check(check_enum(btf, "mw_stat", STAT_NAMES, 0, "MW_STAT_MAX"));
    check(check_enum(btf, "mw_hook", HOOK_NAMES, 1, "MW_HOOK_MAX"));
    check(check_enum(btf, "mw_decision", DECISION_NAMES, 1, "MW_DEC_MAX"));
    for e in C_ENUMS {
        check(check_c_enum(btf, e));
    }
    check(check_values(
        btf,
        "mw_pod_flag",
        &[
            ("MW_POD_F_MESHED", POD_F_MESHED.into()),
            ("MW_POD_F_ACCEL", POD_F_ACCEL.into()),
            ("MW_POD_F_OUT_SELECT", POD_F_OUT_SELECT.into()),
            ("MW_POD_F_IN_SELECT", POD_F_IN_SELECT.into()),
        ],
    ));
    check(check_values(
        btf,
        "mw_dir",
        &[("MW_DIR_OUT", DIR_OUT.into()), ("MW_DIR_OUT_INCL", DIR_OUT_INCL.into()), ("MW_DIR_IN_INCL", DIR_IN_INCL.into())],
    ));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::libbpf::Object;
    use crate::datapath::objects;

    fn alignchecker() -> Object {
        objects::ALIGNCHECKER.open(None).expect("open alignchecker object")
    }

    #[test]
    fn mirrors_match_the_c_header() {
        let obj = alignchecker();
        let btf = Btf::of_object(&obj).expect("alignchecker object has BTF");
        if let Err(errors) = check_against_btf(&btf) {
            panic!("layout drift between bpf/lib/meshwire_structs.h and loader/src/datapath/layout.rs:\n{}", errors.join("\n"));
        }
    }

    #[test]
    fn a_drifted_mirror_is_caught() {
        // A mirror with a field in the wrong place must be reported.
        mirror! {
            "mw_orig4" => pub struct WrongOrig4 {
                pub ip4: u32,
                pub flags: u16,
                pub port: u16,
            }
        }
        let obj = alignchecker();
        let btf = Btf::of_object(&obj).unwrap();
        let err = check_mirror::<WrongOrig4>(&btf).unwrap_err();
        assert!(err.contains("mw_orig4"), "{err}");
    }

    #[test]
    fn a_drifted_enum_mirror_is_caught() {
        let obj = alignchecker();
        let btf = Btf::of_object(&obj).unwrap();
        let wrong = CEnum { name: "mw_flow_flag", values: &[("MW_FLOW_F_FIN_IN", 1), ("MW_FLOW_F_FIN_OUT", 4)] };
        let err = check_c_enum(&btf, &wrong).unwrap_err();
        assert!(err.contains("mw_flow_flag"), "{err}");
        let missing = CEnum { name: "mw_flow_flag", values: &[("MW_FLOW_F_FIN_IN", 1)] };
        assert!(check_c_enum(&btf, &missing).is_err(), "a C value without a Rust mirror");
    }

    #[test]
    fn every_program_object_carries_the_settings_it_is_given() {
        for object in objects::WITH_PROGRAMS {
            let name = object.name;
            let mut obj = object.open(None).unwrap();
            let btf = Btf::of_object(&obj).unwrap();
            check_mirror::<Settings>(&btf).unwrap_or_else(|e| panic!("{name}: {e}"));
            let s = Settings { sidecar_uid: 7, outbound_port: 1, inbound_port: 2, debug: 1, accel: 1, trace: 1, ipv6: IPV6_INTERCEPT, dns_port: 3, dns_servers: 1, out_sources: 1 };
            obj.set_rodata(objects::SETTINGS_VAR, s.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
