//! The seam between bpf/ and the loader: every BPF object, program and
//! attachment, declared once here (map names: [`super::pins`], shared
//! structs and enums: [`super::layout`]). Loading, attaching, pinning,
//! upgrades, status, trace and cleanup all read these tables, and a unit
//! test compares them with the built objects: a `SEC()` program or a pinned
//! map of bpf/ without an entry here, or the other way round, fails it.
//!
//! The objects built by `//bpf` are embedded in the loader binary. Bazel
//! sets MESHWIRE_BPF_DIR to the directory holding them; to build with cargo
//! alone, point it at `bazel-bin/bpf` after `bazel build //bpf:objects`.

use std::collections::BTreeSet;
use std::path::Path;

use super::layout::Settings;
use crate::libbpf::{self, Btf, Object};

/// One BPF object, `bazel-bin/bpf/<name>.bpf.o`.
#[derive(Debug)]
pub struct ObjectSpec {
    pub name: &'static str,
    pub elf: &'static [u8],
}

impl ObjectSpec {
    /// Opens the embedded object (maps pinned under `pin_root`, if given).
    pub fn open(&self, pin_root: Option<&Path>) -> libbpf::Result<Object> {
        #[cfg(test)]
        failing_opens::next(self.name)?;
        #[allow(unused_mut)]
        let mut obj = Object::open_mem(self.name, self.elf, pin_root)?;
        #[cfg(test)]
        for (map, capacity) in other_capacities::current() {
            obj.set_max_entries(map, capacity)?;
        }
        Ok(obj)
    }
}

/// Tests: the objects as a version with other capacities would declare
/// them (bpf/lib/meshwire_consts.h changed), so that a whole start can run
/// as that version; the next start, as this one, then finds those maps.
#[cfg(test)]
pub mod other_capacities {
    use std::cell::RefCell;

    thread_local! {
        static CAPACITIES: RefCell<Vec<(&'static str, u32)>> = const { RefCell::new(Vec::new()) };
    }

    /// Runs `f` with every object this thread opens declaring `capacities`
    /// (map name, capacity) for those maps.
    pub fn with<T>(capacities: &[(&'static str, u32)], f: impl FnOnce() -> T) -> T {
        let before = CAPACITIES.with(|c| c.replace(capacities.to_vec()));
        let out = f();
        CAPACITIES.with(|c| *c.borrow_mut() = before);
        out
    }

    pub(super) fn current() -> Vec<(&'static str, u32)> {
        CAPACITIES.with(|c| c.borrow().clone())
    }
}

/// Tests: the next opens of this thread's objects fail, as libbpf's
/// would on a machine short of memory, so that what a start does when its
/// objects cannot be opened (once, then no more) can be shown.
#[cfg(test)]
pub mod failing_opens {
    use std::cell::Cell;

    thread_local! {
        static LEFT: Cell<u32> = const { Cell::new(0) };
    }

    /// Runs `f` with this thread's next `n` opens failing (ENOMEM).
    pub fn with<T>(n: u32, f: impl FnOnce() -> T) -> T {
        let before = LEFT.with(|c| c.replace(n));
        let out = f();
        LEFT.with(|c| c.set(before));
        out
    }

    pub(super) fn next(object: &str) -> crate::libbpf::Result<()> {
        if LEFT.with(|c| c.get()) == 0 {
            return Ok(());
        }
        LEFT.with(|c| c.set(c.get() - 1));
        Err(crate::libbpf::BpfError { what: format!("opening BPF object {object}"), source: std::io::Error::from_raw_os_error(libc::ENOMEM) })
    }
}

macro_rules! bpf_object {
    ($name:literal) => {
        ObjectSpec {
            name: $name,
            elf: include_bytes!(concat!(
                env!("MESHWIRE_BPF_DIR", "MESHWIRE_BPF_DIR is unset: build with `bazel build //loader`, or set it to bazel-bin/bpf"),
                "/",
                $name,
                ".bpf.o"
            )),
        }
    };
}

pub const SOCK: ObjectSpec = bpf_object!("meshwire_sock");
pub const SOCKOPS: ObjectSpec = bpf_object!("meshwire_sockops");
pub const SOCKOPT: ObjectSpec = bpf_object!("meshwire_sockopt");
pub const TC: ObjectSpec = bpf_object!("meshwire_tc");
/// Acceleration (sk_msg); loaded on its own so a kernel that refuses it only
/// loses acceleration (datapath::install).
pub const SKMSG: ObjectSpec = bpf_object!("meshwire_skmsg");
/// Never loaded: carries the BTF of the shared structs and enums (layout.rs).
pub const ALIGNCHECKER: ObjectSpec = bpf_object!("meshwire_alignchecker");

/// The objects every start loads, in order (acceleration's comes first, when on).
pub const CORE: &[&ObjectSpec] = &[&SOCK, &SOCKOPS, &SOCKOPT, &TC];
/// Every object holding programs.
pub const WITH_PROGRAMS: &[&ObjectSpec] = &[&SOCK, &SOCKOPS, &SOCKOPT, &TC, &SKMSG];

/// The `.rodata` variable the loader writes its settings into before load
/// (`mw_cfg`, bpf/lib/meshwire_config.h; layout::Settings is its layout).
pub const SETTINGS_VAR: &str = "mw_cfg";

/// Every program and every map of the datapath starts with this.
pub const NAME_PREFIX: &str = "mw_";

/// Where a program attaches, with what it needs to attach there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// cgroup/connect4|6, getpeername4|6, getsockopt, sockops: a cgroup v2 directory.
    Cgroup,
    /// tc (bpf/bpf_tc.c): pinned under progs/, attached per pod from there
    /// (`pod add --ifname`, tc::attach_pod), on the side `ingress` says; a
    /// pod's link is pinned as `pods/<cookie>/<link>`, and pods' links move
    /// to a new program.
    Tc { link: &'static str, ingress: bool },
    /// sk_msg verdict on socket maps (acceleration: one per family); each
    /// map holds its attachment, so it lives as long as the pinned map.
    SkMsg { maps: &'static [&'static str] },
}

/// One program of the datapath.
#[derive(Debug, Clone, Copy)]
pub struct ProgramSpec {
    pub object: &'static ObjectSpec,
    pub program: &'static str,
    pub hook: Hook,
}

const fn program(object: &'static ObjectSpec, program: &'static str, hook: Hook) -> ProgramSpec {
    ProgramSpec { object, program, hook }
}

pub const SOCK4_CONNECT: ProgramSpec = program(&SOCK, "mw_sock4_connect", Hook::Cgroup);
pub const SOCK4_GETPEERNAME: ProgramSpec = program(&SOCK, "mw_sock4_getpeername", Hook::Cgroup);
pub const SOCK6_CONNECT: ProgramSpec = program(&SOCK, "mw_sock6_connect", Hook::Cgroup);
pub const SOCK6_GETPEERNAME: ProgramSpec = program(&SOCK, "mw_sock6_getpeername", Hook::Cgroup);
/// DNS capture (`[dns]`): UDP queries to the DNS proxy, its answers from the resolver.
pub const SOCK4_SENDMSG: ProgramSpec = program(&SOCK, "mw_sock4_sendmsg", Hook::Cgroup);
pub const SOCK6_SENDMSG: ProgramSpec = program(&SOCK, "mw_sock6_sendmsg", Hook::Cgroup);
pub const SOCK4_RECVMSG: ProgramSpec = program(&SOCK, "mw_sock4_recvmsg", Hook::Cgroup);
pub const SOCK6_RECVMSG: ProgramSpec = program(&SOCK, "mw_sock6_recvmsg", Hook::Cgroup);
pub const SOCKOPS_PROG: ProgramSpec = program(&SOCKOPS, "mw_sockops", Hook::Cgroup);
pub const SOCKOPT_GET: ProgramSpec = program(&SOCKOPT, "mw_sockopt_get", Hook::Cgroup);
pub const TC_INGRESS: ProgramSpec = program(&TC, "mw_tc_ingress", Hook::Tc { link: "tc_ingress", ingress: true });
pub const TC_EGRESS: ProgramSpec = program(&TC, "mw_tc_egress", Hook::Tc { link: "tc_egress", ingress: false });
pub const SKMSG_REDIRECT: ProgramSpec = program(&SKMSG, "mw_skmsg_redirect", Hook::SkMsg { maps: &[super::pins::MAP_SOCK_HASH, super::pins::MAP_SOCK_HASH6] });

/// Every program, in attach order.
pub const PROGRAMS: &[ProgramSpec] =
    &[SOCK4_CONNECT, SOCK4_GETPEERNAME, SOCK6_CONNECT, SOCK6_GETPEERNAME, SOCK4_SENDMSG, SOCK6_SENDMSG, SOCK4_RECVMSG, SOCK6_RECVMSG, SOCKOPS_PROG, SOCKOPT_GET, TC_INGRESS, TC_EGRESS, SKMSG_REDIRECT];

/// One difference between the declarations of this file (and pins.rs's map
/// names) and a built object, as libbpf opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclarationMismatch {
    /// libbpf could not open the object (`error`: what it said).
    Unreadable { object: &'static str, error: String },
    /// A `SEC()` program of the object that no ProgramSpec declares.
    UndeclaredProgram { object: &'static str, program: String },
    /// A declared program the object does not have.
    ProgramNotBuilt { object: &'static str, program: String },
    /// A map of the object without LIBBPF_PIN_BY_NAME.
    MapNotPinned { object: &'static str, map: String },
    /// A program or map whose name lacks `prefix` ([`NAME_PREFIX`]).
    Unprefixed { object: &'static str, name: String, prefix: &'static str },
    /// An object without the settings variable, or with one of another size.
    NoSettings { object: &'static str },
    /// A map of the objects that pins.rs does not declare.
    UndeclaredMap { map: String },
    /// A map pins.rs declares that no object has.
    MapNotBuilt { map: String },
    /// A socket map that no Hook::SkMsg program is attached to.
    SocketMapWithoutSkMsg { map: String },
    /// A Hook::SkMsg attachment to a map that is no socket map.
    SkMsgOnOtherMap { map: String },
}

impl std::fmt::Display for DeclarationMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeclarationMismatch::Unreadable { object, error } => write!(f, "{object}: {error}"),
            DeclarationMismatch::UndeclaredProgram { object, program } => write!(f, "{object}: program {program} is not declared in loader/src/datapath/objects.rs"),
            DeclarationMismatch::ProgramNotBuilt { object, program } => {
                write!(f, "{object}: declared program {program} is not in the object (remove it from loader/src/datapath/objects.rs, or rebuild bpf/)")
            }
            DeclarationMismatch::MapNotPinned { object, map } => write!(
                f,
                "{object}: map {map} is not pinned by name: declare it with __uint(pinning, LIBBPF_PIN_BY_NAME), as bpf/lib/meshwire_maps.h does every map (the objects share a map, and a restarted loader finds it, through its pin)"
            ),
            DeclarationMismatch::Unprefixed { object, name, prefix } => write!(f, "{object}: {name} does not start with {prefix}"),
            DeclarationMismatch::NoSettings { object } => write!(f, "{object}: no .rodata variable {SETTINGS_VAR} of struct mw_settings's size"),
            DeclarationMismatch::UndeclaredMap { map } => write!(f, "map {map} is not declared in loader/src/datapath/pins.rs"),
            DeclarationMismatch::MapNotBuilt { map } => write!(f, "declared map {map} is in no object (remove it from loader/src/datapath/pins.rs, or rebuild bpf/)"),
            DeclarationMismatch::SocketMapWithoutSkMsg { map } => {
                write!(f, "socket map {map} has no sk_msg program attached (Hook::SkMsg in loader/src/datapath/objects.rs)")
            }
            DeclarationMismatch::SkMsgOnOtherMap { map } => write!(f, "Hook::SkMsg attaches to {map}, which is no socket map of the objects"),
        }
    }
}

impl std::error::Error for DeclarationMismatch {}

/// Every difference between the declarations above (and the map names of
/// [`super::pins::ALL_MAPS`]) and the built objects, as libbpf opens them:
/// a program or pinned map of bpf/ not declared, a declaration no object
/// has, a map not pinned by name, a name without the prefix, an object
/// without the settings variable, a socket map without the sk_msg program
/// (its sockets would read through tcp_bpf with nothing redirected to them)
/// or an sk_msg attachment to a map that is no socket map. Checked by the unit tests, and by every
/// install (a mixed build is refused before it touches the datapath).
pub fn check_declarations() -> Result<(), Vec<DeclarationMismatch>> {
    let errors = compare(WITH_PROGRAMS, PROGRAMS, super::pins::ALL_MAPS);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn compare(objects: &[&ObjectSpec], programs: &[ProgramSpec], maps: &[&str]) -> Vec<DeclarationMismatch> {
    compare_prefixed(objects, programs, maps, NAME_PREFIX)
}

/// [`compare`], with `prefix` for [`NAME_PREFIX`] (tests).
fn compare_prefixed(objects: &[&ObjectSpec], programs: &[ProgramSpec], maps: &[&str], prefix: &'static str) -> Vec<DeclarationMismatch> {
    use DeclarationMismatch as D;
    let mut errors = Vec::new();
    let mut built_maps = BTreeSet::new();
    let mut socket_maps = BTreeSet::new();
    for object in objects {
        let obj = match object.open(None) {
            Ok(obj) => obj,
            Err(e) => {
                errors.push(D::Unreadable { object: object.name, error: e.to_string() });
                continue;
            }
        };
        let built: BTreeSet<String> = obj.program_names().into_iter().collect();
        let declared: BTreeSet<String> = programs.iter().filter(|p| p.object.name == object.name).map(|p| p.program.to_string()).collect();
        for p in built.difference(&declared) {
            errors.push(D::UndeclaredProgram { object: object.name, program: p.clone() });
        }
        for p in declared.difference(&built) {
            errors.push(D::ProgramNotBuilt { object: object.name, program: p.clone() });
        }
        for (map, pinned) in obj.declared_maps() {
            if !pinned {
                errors.push(D::MapNotPinned { object: object.name, map: map.clone() });
            }
            built_maps.insert(map);
        }
        for def in obj.pinned_map_defs() {
            if matches!(def.map_type, libbpf_sys::BPF_MAP_TYPE_SOCKHASH | libbpf_sys::BPF_MAP_TYPE_SOCKMAP) {
                socket_maps.insert(def.name);
            }
        }
        for name in built.iter().chain(&built_maps) {
            if !name.starts_with(prefix) {
                errors.push(D::Unprefixed { object: object.name, name: name.clone(), prefix });
            }
        }
        let settings = Btf::of_object(&obj).and_then(|btf| btf.datasec_var(".rodata", SETTINGS_VAR));
        if settings.map(|(_, size)| size) != Some(std::mem::size_of::<Settings>()) {
            errors.push(D::NoSettings { object: object.name });
        }
    }
    let declared: BTreeSet<String> = maps.iter().map(|m| m.to_string()).collect();
    for m in built_maps.difference(&declared) {
        errors.push(D::UndeclaredMap { map: m.clone() });
    }
    for m in declared.difference(&built_maps) {
        errors.push(D::MapNotBuilt { map: m.clone() });
    }
    let verdict_maps: BTreeSet<String> = programs
        .iter()
        .filter_map(|p| match p.hook {
            Hook::SkMsg { maps } => Some(maps.iter().map(|m| m.to_string())),
            _ => None,
        })
        .flatten()
        .collect();
    for m in socket_maps.difference(&verdict_maps) {
        errors.push(D::SocketMapWithoutSkMsg { map: m.clone() });
    }
    for m in verdict_maps.difference(&socket_maps) {
        errors.push(D::SkMsgOnOtherMap { map: m.clone() });
    }
    errors
}

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
