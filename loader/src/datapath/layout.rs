//! `#[repr(C)]` mirrors of `bpf/lib/meshwire_structs.h`.
//!
//! The C header is the one definition. Each mirror lists its fields once, and
//! `check_against_btf` compares names, offsets and sizes with the BTF of the
//! built objects, so a drift between C and Rust fails the unit tests.

use std::fmt;

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
        pub accel_short: u8,
        pub pad: [u8; 3],
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
        pub msgs: u32,
        pub pad: u32,
    }
}

mirror! {
    /// Key of `mw_accel_hints`: a hop's destination, per deciding pod
    /// (acceleration's learning of short connections; only the datapath
    /// reads and writes it).
    "mw_accel_hint_key" => pub struct AccelHintKey {
        pub netns_cookie: u64,
        pub ip: [u32; 4],
        pub port: u32,
        pub flags: u32,
    }
}

mirror! {
    /// Value of `mw_accel_hints`.
    "mw_accel_hint" => pub struct AccelHint {
        pub last_short_ns: u64,
        pub score: u32,
        pub pad: u32,
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
        MAX_ACCEL_HINTS = "MW_MAX_ACCEL_HINTS" = 16384,
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

c_enum! {
    /// `mw_settings.accel_short`: `acceleration.short_connections`.
    "mw_accel_short" => ACCEL_SHORTS: u8 {
        ACCEL_SHORT_ACCELERATE = "MW_ACCEL_SHORT_ACCELERATE" = 0,
        ACCEL_SHORT_LEARN = "MW_ACCEL_SHORT_LEARN" = 1,
    }
}

/// Every mirrored C enum of bpf/lib/meshwire_consts.h.
pub const C_ENUMS: &[&CEnum] =
    &[&CAPACITIES, &POD_FLAGS, &DIRS, &ORIG_FLAGS, &FLOW_FLAGS, &FIN_ACKED, &SYN_FLAGS, &IPV6_POLICIES, &ACCEL_SHORTS];

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
    "MW_STAT_ACCEL_SKIPPED_SHORT",
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

/// Where the mirrors are, and what to do about a difference (the C header
/// is the one definition).
const FIX: &str = "make loader/src/datapath/layout.rs match bpf/lib/meshwire_structs.h (the C header is the one definition)";

/// A field of a struct: byte offset and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldAt {
    pub offset: usize,
    pub size: usize,
}

impl fmt::Display for FieldAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {} ({} bytes)", self.offset, self.size)
    }
}

/// One difference between a Rust mirror of this file and the C struct or
/// enum it mirrors, as the BTF of a built object describes the C side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutMismatch {
    /// The object's BTF has no `struct NAME` (`is_enum`: no `enum NAME`).
    Missing { name: String, is_enum: bool },
    /// The struct's sizes differ.
    Size { c_struct: &'static str, c: usize, rust: usize },
    /// A field is in C only (`rust` None), in Rust only (`c` None), or at
    /// another offset or of another size.
    Field { c_struct: &'static str, field: String, c: Option<FieldAt>, rust: Option<FieldAt> },
    /// The same fields at the same places, listed in another order.
    FieldOrder { c_struct: &'static str, c: Vec<String>, rust: Vec<String> },
    /// An enum constant in C only (`rust` None), in Rust only (`c` None),
    /// or with another value.
    EnumValue { c_enum: String, name: String, c: Option<i64>, rust: Option<i64> },
}

impl fmt::Display for LayoutMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutMismatch::Missing { name, is_enum: false } => {
                write!(f, "struct {name} is not in the object's BTF: declare it in bpf/lib/meshwire_structs.h with an MW_LAYOUT in bpf/bpf_alignchecker.c, or drop its mirror from loader/src/datapath/layout.rs")
            }
            LayoutMismatch::Missing { name, is_enum: true } => {
                write!(f, "enum {name} is not in the object's BTF: declare it in bpf/lib/meshwire_structs.h (used in bpf/bpf_alignchecker.c), or drop its mirror from loader/src/datapath/layout.rs")
            }
            LayoutMismatch::Size { c_struct, c, rust } => write!(f, "struct {c_struct}: C size {c}, Rust size {rust}: {FIX}"),
            LayoutMismatch::Field { c_struct, field, c: Some(c), rust: Some(rust) } => {
                write!(f, "struct {c_struct}: field {field} is {c} in C but {rust} in Rust: {FIX}")
            }
            LayoutMismatch::Field { c_struct, field, c: Some(c), rust: None } => write!(f, "struct {c_struct}: field {field} ({c}) is in C only: {FIX}"),
            LayoutMismatch::Field { c_struct, field, c: None, rust: Some(rust) } => write!(f, "struct {c_struct}: field {field} ({rust}) is in Rust only: {FIX}"),
            LayoutMismatch::Field { c_struct, field, c: None, rust: None } => write!(f, "struct {c_struct}: field {field} is in neither"),
            LayoutMismatch::FieldOrder { c_struct, c, rust } => write!(f, "struct {c_struct}: C lists its fields as {c:?}, Rust as {rust:?}: {FIX}"),
            LayoutMismatch::EnumValue { c_enum, name, c: Some(c), rust: Some(rust) } => write!(f, "enum {c_enum}: {name} is {c} in C but {rust} in Rust: {FIX}"),
            LayoutMismatch::EnumValue { c_enum, name, c: Some(c), rust: None } => write!(f, "enum {c_enum}: {name} = {c} is in C only: {FIX}"),
            LayoutMismatch::EnumValue { c_enum, name, c: None, rust: Some(rust) } => write!(f, "enum {c_enum}: {name} = {rust} is in Rust only: {FIX}"),
            LayoutMismatch::EnumValue { c_enum, name, c: None, rust: None } => write!(f, "enum {c_enum}: {name} is in neither"),
        }
    }
}

impl std::error::Error for LayoutMismatch {}

/// Compare one mirror with the BTF of an object: every difference.
pub fn check_mirror<M: Mirror>(btf: &Btf) -> Result<(), Vec<LayoutMismatch>> {
    let Some((size, c_members)) = btf.struct_layout(M::C_NAME) else {
        return Err(vec![LayoutMismatch::Missing { name: M::C_NAME.to_string(), is_enum: false }]);
    };
    let rust_members = M::members();
    let mut found = Vec::new();
    if size != std::mem::size_of::<M>() {
        found.push(LayoutMismatch::Size { c_struct: M::C_NAME, c: size, rust: std::mem::size_of::<M>() });
    }
    let at = |members: &[BtfMember], name: &str| members.iter().find(|m| m.name == name).map(|m| FieldAt { offset: m.offset, size: m.size });
    // C's fields in C's order, then those only Rust has.
    let names = c_members.iter().chain(rust_members.iter().filter(|r| !c_members.iter().any(|c| c.name == r.name))).map(|m| &m.name);
    for name in names {
        let (c, rust) = (at(&c_members, name), at(&rust_members, name));
        if c != rust {
            found.push(LayoutMismatch::Field { c_struct: M::C_NAME, field: name.clone(), c, rust });
        }
    }
    if found.is_empty() && c_members != rust_members {
        let names = |members: &[BtfMember]| members.iter().map(|m| m.name.clone()).collect();
        found.push(LayoutMismatch::FieldOrder { c_struct: M::C_NAME, c: names(&c_members), rust: names(&rust_members) });
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(found)
    }
}

/// The constants of `enum name` against `rust` (name, value); `exact`:
/// C must hold no others.
fn compare_enum(btf: &Btf, name: &str, rust: &[(String, i64)], exact: bool) -> Result<(), Vec<LayoutMismatch>> {
    let c = btf.enum_values(name).ok_or_else(|| vec![LayoutMismatch::Missing { name: name.to_string(), is_enum: true }])?;
    let value = |list: &[(String, i64)], n: &str| list.iter().find(|(ln, _)| ln == n).map(|(_, v)| *v);
    // Exact: C's names in C's order, then those only Rust has; else Rust's.
    let c_names = c.iter().filter(|_| exact).map(|(n, _)| n);
    let names = c_names.chain(rust.iter().filter(|(n, _)| !exact || value(&c, n).is_none()).map(|(n, _)| n));
    let found: Vec<LayoutMismatch> = names
        .filter_map(|n| {
            let (cv, rv) = (value(&c, n), value(rust, n));
            (cv != rv).then(|| LayoutMismatch::EnumValue { c_enum: name.to_string(), name: n.clone(), c: cv, rust: rv })
        })
        .collect();
    if found.is_empty() {
        Ok(())
    } else {
        Err(found)
    }
}

/// `enum name` must be `names` numbered from `first`, then `max`.
fn check_enum(btf: &Btf, name: &str, names: &[&str], first: i64, max: &str) -> Result<(), Vec<LayoutMismatch>> {
    let expected: Vec<(String, i64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), first + i as i64))
        .chain(std::iter::once((max.to_string(), first + names.len() as i64)))
        .collect();
    compare_enum(btf, name, &expected, true)
}

/// `enum name` must hold each of `values` (it may hold more).
fn check_values(btf: &Btf, name: &str, values: &[(&str, i64)]) -> Result<(), Vec<LayoutMismatch>> {
    let rust: Vec<(String, i64)> = values.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    compare_enum(btf, name, &rust, false)
}

/// A mirrored C enum must hold exactly the C enum's names and values.
pub fn check_c_enum(btf: &Btf, e: &CEnum) -> Result<(), Vec<LayoutMismatch>> {
    let rust: Vec<(String, i64)> = e.values.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    compare_enum(btf, e.name, &rust, true)
}

/// Check every mirror and the enums; returns all differences.
pub fn check_against_btf(btf: &Btf) -> Result<(), Vec<LayoutMismatch>> {
    let mut errors = Vec::new();
    let mut check = |r: Result<(), Vec<LayoutMismatch>>| {
        if let Err(e) = r {
            errors.extend(e)
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
    check(check_mirror::<AccelHintKey>(btf));
    check(check_mirror::<AccelHint>(btf));
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

    fn btf_of(obj: &Object) -> Btf<'_> {
        Btf::of_object(obj).expect("alignchecker object has BTF")
    }

    #[test]
    fn mirrors_match_the_c_header() {
        let obj = alignchecker();
        if let Err(errors) = check_against_btf(&btf_of(&obj)) {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("layout drift between bpf/lib/meshwire_structs.h and loader/src/datapath/layout.rs:\n{}", errors.join("\n"));
        }
    }

    fn at(offset: usize, size: usize) -> Option<FieldAt> {
        Some(FieldAt { offset, size })
    }

    /// struct mw_orig4 is { __u32 ip4; __u16 port; __u16 flags; } in C.
    #[test]
    fn a_mirror_with_fields_swapped_names_each_field_at_both_places() {
        mirror! {
            "mw_orig4" => pub struct WrongOrig4 {
                pub ip4: u32,
                pub flags: u16,
                pub port: u16,
            }
        }
        let obj = alignchecker();
        let errors = check_mirror::<WrongOrig4>(&btf_of(&obj)).unwrap_err();
        assert_eq!(
            errors,
            vec![
                LayoutMismatch::Field { c_struct: "mw_orig4", field: "port".into(), c: at(4, 2), rust: at(6, 2) },
                LayoutMismatch::Field { c_struct: "mw_orig4", field: "flags".into(), c: at(6, 2), rust: at(4, 2) },
            ]
        );
        let text = errors[0].to_string();
        assert_eq!(
            text,
            "struct mw_orig4: field port is at offset 4 (2 bytes) in C but at offset 6 (2 bytes) in Rust: make loader/src/datapath/layout.rs match bpf/lib/meshwire_structs.h (the C header is the one definition)"
        );
    }

    #[test]
    fn a_field_only_rust_has_changes_the_size_and_one_only_c_has_is_named() {
        mirror! {
            "mw_orig4" => pub struct LongerOrig4 {
                pub ip4: u32,
                pub port: u16,
                pub flags: u16,
                pub extra: u32,
            }
        }
        mirror! {
            "mw_orig4" => pub struct ShorterOrig4 {
                pub ip4: u32,
                pub port: u16,
            }
        }
        let obj = alignchecker();
        let btf = btf_of(&obj);
        assert_eq!(
            check_mirror::<LongerOrig4>(&btf).unwrap_err(),
            vec![
                LayoutMismatch::Size { c_struct: "mw_orig4", c: 8, rust: 12 },
                LayoutMismatch::Field { c_struct: "mw_orig4", field: "extra".into(), c: None, rust: at(8, 4) },
            ]
        );
        // Rust pads it to 8 bytes too: only the field tells.
        let errors = check_mirror::<ShorterOrig4>(&btf).unwrap_err();
        assert_eq!(errors, vec![LayoutMismatch::Field { c_struct: "mw_orig4", field: "flags".into(), c: at(6, 2), rust: None }]);
        assert!(errors[0].to_string().starts_with("struct mw_orig4: field flags (at offset 6 (2 bytes)) is in C only: make loader/src/datapath/layout.rs match"), "{}", errors[0]);
    }

    #[test]
    fn a_mirror_of_a_struct_the_object_lacks_is_missing() {
        mirror! {
            "mw_no_such_struct" => pub struct Nothing {
                pub x: u32,
            }
        }
        let obj = alignchecker();
        let errors = check_mirror::<Nothing>(&btf_of(&obj)).unwrap_err();
        assert_eq!(errors, vec![LayoutMismatch::Missing { name: "mw_no_such_struct".into(), is_enum: false }]);
        assert!(errors[0].to_string().contains("MW_LAYOUT in bpf/bpf_alignchecker.c"), "{}", errors[0]);
    }

    /// enum mw_flow_flag is { MW_FLOW_F_FIN_IN = 1, MW_FLOW_F_FIN_OUT = 2 } in C.
    #[test]
    fn a_drifted_enum_mirror_names_each_constant() {
        let obj = alignchecker();
        let btf = btf_of(&obj);
        let wrong = CEnum { name: "mw_flow_flag", values: &[("MW_FLOW_F_FIN_IN", 1), ("MW_FLOW_F_FIN_OUT", 4)] };
        let errors = check_c_enum(&btf, &wrong).unwrap_err();
        assert_eq!(errors, vec![LayoutMismatch::EnumValue { c_enum: "mw_flow_flag".into(), name: "MW_FLOW_F_FIN_OUT".into(), c: Some(2), rust: Some(4) }]);
        assert!(errors[0].to_string().starts_with("enum mw_flow_flag: MW_FLOW_F_FIN_OUT is 2 in C but 4 in Rust: "), "{}", errors[0]);
        let missing = CEnum { name: "mw_flow_flag", values: &[("MW_FLOW_F_FIN_IN", 1), ("MW_FLOW_F_GONE", 8)] };
        assert_eq!(
            check_c_enum(&btf, &missing).unwrap_err(),
            vec![
                LayoutMismatch::EnumValue { c_enum: "mw_flow_flag".into(), name: "MW_FLOW_F_FIN_OUT".into(), c: Some(2), rust: None },
                LayoutMismatch::EnumValue { c_enum: "mw_flow_flag".into(), name: "MW_FLOW_F_GONE".into(), c: None, rust: Some(8) },
            ]
        );
        let absent = CEnum { name: "mw_no_such_enum", values: &[] };
        assert_eq!(check_c_enum(&btf, &absent).unwrap_err(), vec![LayoutMismatch::Missing { name: "mw_no_such_enum".into(), is_enum: true }]);
    }

    #[test]
    fn an_enum_numbered_in_order_or_holding_values_is_checked_constant_by_constant() {
        let obj = alignchecker();
        let btf = btf_of(&obj);
        // One name fewer on the Rust side: C's last hook is not mirrored and MAX moves.
        let fewer = &HOOK_NAMES[..HOOK_NAMES.len() - 1];
        let n = HOOK_NAMES.len() as i64;
        assert_eq!(
            check_enum(&btf, "mw_hook", fewer, 1, "MW_HOOK_MAX").unwrap_err(),
            vec![
                LayoutMismatch::EnumValue { c_enum: "mw_hook".into(), name: HOOK_NAMES[HOOK_NAMES.len() - 1].into(), c: Some(n), rust: None },
                LayoutMismatch::EnumValue { c_enum: "mw_hook".into(), name: "MW_HOOK_MAX".into(), c: Some(n + 1), rust: Some(n) },
            ]
        );
        // check_values: C may hold more, but what Rust names must be there, with its value.
        assert_eq!(check_values(&btf, "mw_pod_flag", &[("MW_POD_F_MESHED", POD_F_MESHED.into())]), Ok(()));
        assert_eq!(
            check_values(&btf, "mw_pod_flag", &[("MW_POD_F_MESHED", 1 << 20), ("MW_POD_F_GONE", 1)]).unwrap_err(),
            vec![
                LayoutMismatch::EnumValue { c_enum: "mw_pod_flag".into(), name: "MW_POD_F_MESHED".into(), c: Some(POD_F_MESHED.into()), rust: Some(1 << 20) },
                LayoutMismatch::EnumValue { c_enum: "mw_pod_flag".into(), name: "MW_POD_F_GONE".into(), c: None, rust: Some(1) },
            ]
        );
    }

    #[test]
    fn every_program_object_carries_the_settings_it_is_given() {
        for object in objects::WITH_PROGRAMS {
            let name = object.name;
            let mut obj = object.open(None).unwrap();
            let btf = Btf::of_object(&obj).unwrap();
            check_mirror::<Settings>(&btf).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let s = Settings { sidecar_uid: 7, outbound_port: 1, inbound_port: 2, debug: 1, accel: 1, trace: 1, ipv6: IPV6_INTERCEPT, dns_port: 3, dns_servers: 1, out_sources: 1, accel_short: 1, pad: [0; 3] };
            obj.set_rodata(objects::SETTINGS_VAR, s.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
