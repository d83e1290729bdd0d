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
        pub ipv6_refuse: u8,
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
    /// Key of `mw_flow4`: an inbound flow redirected by tc.
    "mw_flow4_key" => pub struct Flow4Key {
        pub remote_ip4: u32,
        pub local_ip4: u32,
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
    /// One decision from the `mw_events` ring buffer (`bpf.trace`).
    "mw_event" => pub struct Event {
        pub ts_ns: u64,
        pub netns_cookie: u64,
        pub src_ip4: u32,
        pub dst_ip4: u32,
        pub to_ip4: u32,
        pub src_port: u16,
        pub dst_port: u16,
        pub to_port: u16,
        pub hook: u8,
        pub decision: u8,
        pub pid: u32,
        pub uid: u32,
        pub pad: u32,
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

/// `mw_pod.flags`
pub const POD_F_MESHED: u32 = 1 << 0;
/// `mw_pod.flags`: the pod's mesh hops are accelerated (MW_POD_F_ACCEL).
pub const POD_F_ACCEL: u32 = 1 << 1;
/// `mw_pod.flags`: outbound, only included ports and ranges are steered.
pub const POD_F_OUT_SELECT: u32 = 1 << 2;
/// `mw_pod.flags`: inbound, only included ports are redirected.
pub const POD_F_IN_SELECT: u32 = 1 << 3;
/// `mw_port_key.dir`
pub const DIR_OUT: u8 = 1;
/// `mw_port_key.dir`: an included outbound port.
pub const DIR_OUT_INCL: u8 = 3;
/// `mw_port_key.dir`: an included inbound port.
pub const DIR_IN_INCL: u8 = 4;

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
];

/// Names of `enum mw_hook`, from value 1 on (checked against BTF).
pub const HOOK_NAMES: &[&str] = &["MW_HOOK_CONNECT4", "MW_HOOK_SOCKOPS", "MW_HOOK_GETSOCKOPT", "MW_HOOK_TC_INGRESS", "MW_HOOK_TC_EGRESS", "MW_HOOK_CONNECT6"];

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
];

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
    check(check_mirror::<Orig4>(btf));
    check(check_mirror::<Tuple4>(btf));
    check(check_mirror::<In4Key>(btf));
    check(check_mirror::<Flow4Key>(btf));
    check(check_mirror::<Flow4>(btf));
    check(check_mirror::<SockKey>(btf));
    check(check_mirror::<Event>(btf));
    check(check_enum(btf, "mw_stat", STAT_NAMES, 0, "MW_STAT_MAX"));
    check(check_enum(btf, "mw_hook", HOOK_NAMES, 1, "MW_HOOK_MAX"));
    check(check_enum(btf, "mw_decision", DECISION_NAMES, 1, "MW_DEC_MAX"));
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
        Object::open_mem("meshwire_alignchecker", objects::ALIGNCHECKER, None).expect("open alignchecker object")
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
    fn every_program_object_carries_the_settings_it_is_given() {
        for (name, elf) in objects::PROGRAMS {
            let mut obj = Object::open_mem(name, elf, None).unwrap();
            let btf = Btf::of_object(&obj).unwrap();
            check_mirror::<Settings>(&btf).unwrap_or_else(|e| panic!("{name}: {e}"));
            let s = Settings { sidecar_uid: 7, outbound_port: 1, inbound_port: 2, debug: 1, accel: 1, trace: 1, ipv6_refuse: 1 };
            obj.set_rodata("mw_cfg", s.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
