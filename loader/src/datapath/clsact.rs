//! The clsact way of attaching the tc programs, for kernels without tcx links
//! (before Linux 6.6) or with `[tc] attach = "clsact"`: direct-action bpf
//! filters on the clsact qdisc of a pod's interface, through libbpf's
//! bpf_tc_* calls (`libbpf::tc_*`).
//!
//! meshwire's filters sit at one fixed place on each side of the qdisc,
//! [`PRIORITY`] and [`HANDLE`], and run meshwire's pinned programs; only a
//! filter at that place whose program is meshwire's (by name) is ever
//! replaced or removed. Other software's filters (any other priority or
//! handle) are listed ([`other_filters`]) but never touched.
//!
//! meshwire's filters run before those with a higher priority number, e.g.
//! every filter whose priority the kernel chose (49152 and below by one for
//! each). They return TC_ACT_UNSPEC, which in direct-action mode goes on to
//! the next filter, as TCX_NEXT does for tcx links.
//!
//! Everything here acts on the calling thread's network namespace: tc.rs
//! calls it from a thread that entered the pod's.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, OrOs};
use crate::libbpf;

/// The handle of meshwire's filters ("MW" in ASCII).
pub const HANDLE: u32 = 0x4d57;
/// The priority of meshwire's filters (0x4d57).
pub const PRIORITY: u16 = 19799;

/// What sits at meshwire's place on one side of the qdisc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Nothing (or no clsact qdisc at all).
    Empty,
    /// meshwire's filter, running the program with this id.
    Ours(u32),
    /// Someone else's filter, described.
    Other(String),
}

fn side(ingress: bool) -> &'static str {
    if ingress {
        "ingress"
    } else {
        "egress"
    }
}

/// What is at meshwire's place on one side (`ingress` or egress) of the
/// interface's qdisc, given the program meshwire puts there.
/// (The kernel's list first: asking libbpf about an empty place makes it
/// log the kernel's complaint as a warning.)
pub fn slot(ifindex: u32, ingress: bool, program: &str) -> Result<Slot, Error> {
    let at_ours: Vec<Filter> = dump_filters(ifindex, ingress).or_os(|| "listing tc filters")?.into_iter().filter(|f| f.priority == PRIORITY).collect();
    if let Some(f) = at_ours.iter().find(|f| f.kind != "bpf") {
        return Ok(Slot::Other(format!("a {} filter", f.kind)));
    }
    if !at_ours.iter().any(|f| f.handle == HANDLE) {
        return Ok(Slot::Empty);
    }
    match libbpf::tc_query(ifindex, ingress, PRIORITY, HANDLE)? {
        None => Ok(Slot::Empty),
        Some(id) => {
            let name = libbpf::prog_name_by_id(id)?;
            Ok(if name == program { Slot::Ours(id) } else { Slot::Other(format!("a bpf filter running program {name} (id {id})")) })
        }
    }
}

/// Create the interface's clsact qdisc unless it has one. Ok(true): created here.
pub fn ensure_qdisc(ifindex: u32) -> Result<bool, Error> {
    if has_qdisc(ifindex).or_os(|| "listing qdiscs")? {
        return Ok(false);
    }
    Ok(libbpf::tc_qdisc_create(ifindex)?)
}

/// Put `prog_fd` (the program named `program`) at meshwire's place on its side: a new
/// filter, or the program of meshwire's filter replaced in one step. A filter
/// of someone else's at that place is refused, and left as it is.
pub fn attach(ifindex: u32, ingress: bool, program: &str, prog_fd: RawFd) -> Result<(), Error> {
    if let Slot::Other(what) = slot(ifindex, ingress, program)? {
        return Err(Error::Internal(format!(
            "the {} place meshwire's filters use (priority {PRIORITY}, handle {HANDLE:#x}) holds {what}, not {}; another program uses it, and it is left alone",
            side(ingress),
            program
        )));
    }
    libbpf::tc_attach(ifindex, ingress, PRIORITY, HANDLE, prog_fd)?;
    Ok(())
}

/// Remove meshwire's filter running `program` on one side. Ok(false): it was not there (a filter
/// of someone else's at that place stays).
pub fn detach(ifindex: u32, ingress: bool, program: &str) -> Result<bool, Error> {
    match slot(ifindex, ingress, program)? {
        Slot::Ours(_) => Ok(libbpf::tc_detach(ifindex, ingress, PRIORITY, HANDLE)?),
        Slot::Other(what) => {
            log::warn!("ifindex {ifindex}: leaving {what} at meshwire's {} place; it is not {}", side(ingress), program);
            Ok(false)
        }
        Slot::Empty => Ok(false),
    }
}

/// The filters on the interface's clsact qdisc, both sides, that are not
/// meshwire's, described ("ingress priority 49152 handle 0x1 u32").
pub fn other_filters(ifindex: u32) -> Result<Vec<String>, Error> {
    let mut others = Vec::new();
    // Both sides' lists over one netlink socket.
    let sock = netlink_socket().or_os(|| "opening a netlink socket")?;
    for ingress in [true, false] {
        for f in dump_filters_on(&sock, ifindex, ingress).or_os(|| "listing tc filters")? {
            // The kernel lists each priority's classifier once on its own (handle 0).
            if f.priority == PRIORITY && (f.handle == HANDLE || f.handle == 0) {
                continue;
            }
            others.push(format!("{} priority {} handle {:#x} {}", side(ingress), f.priority, f.handle, f.kind));
        }
    }
    Ok(others)
}

/// Remove the filter at meshwire's place on one side, whatever it runs:
/// only for a qdisc meshwire created with no other filter on it, whose
/// deletion would take it too. Ok(false): nothing was there.
pub fn remove_at_place(ifindex: u32, ingress: bool) -> Result<bool, Error> {
    Ok(libbpf::tc_detach(ifindex, ingress, PRIORITY, HANDLE)?)
}

/// What is on the interface's clsact qdisc, both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// No filter (or no clsact qdisc).
    Nothing,
    /// A filter at meshwire's place, on either side (others maybe too).
    Ours,
    /// Filters, none of them at meshwire's place.
    OthersOnly,
}

pub fn holds(ifindex: u32) -> Result<Holds, Error> {
    let sock = netlink_socket().or_os(|| "opening a netlink socket")?;
    let mut any = false;
    for ingress in [true, false] {
        for f in dump_filters_on(&sock, ifindex, ingress).or_os(|| "listing tc filters")? {
            if f.priority == PRIORITY {
                return Ok(Holds::Ours);
            }
            any = true;
        }
    }
    Ok(if any { Holds::OthersOnly } else { Holds::Nothing })
}

/// Delete the interface's clsact qdisc. Call only when meshwire created it
/// and [`other_filters`] is empty. Ok(false): it was gone already.
pub fn remove_qdisc(ifindex: u32) -> Result<bool, Error> {
    match libbpf::tc_qdisc_destroy(ifindex) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.source.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINVAL)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

// ---- listing filters and qdiscs (rtnetlink dumps) ------------------------------
//
// libbpf finds a filter by priority and handle only; whether anything else is
// left on the qdisc needs the kernel's list of them.

/// One entry of the kernel's filter list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub priority: u16,
    pub handle: u32,
    pub kind: String,
}

const NLMSG_HDRLEN: usize = 16;
const TCMSG_LEN: usize = 20;
const TCA_KIND: u16 = 1;
/// TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS / TC_H_MIN_EGRESS)
const PARENT_INGRESS: u32 = 0xffff_fff2;
const PARENT_EGRESS: u32 = 0xffff_fff3;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

/// The filters on one side of the interface's clsact qdisc (none when it has
/// no clsact qdisc).
pub fn dump_filters(ifindex: u32, ingress: bool) -> io::Result<Vec<Filter>> {
    dump_filters_on(&netlink_socket()?, ifindex, ingress)
}

fn dump_filters_on(sock: &OwnedFd, ifindex: u32, ingress: bool) -> io::Result<Vec<Filter>> {
    let parent = if ingress { PARENT_INGRESS } else { PARENT_EGRESS };
    Ok(dump(sock, libc::RTM_GETTFILTER, ifindex, parent)?
        .into_iter()
        .map(|e| Filter { priority: (e.info >> 16) as u16, handle: e.handle, kind: e.kind })
        .collect())
}

/// Whether the interface has a clsact qdisc.
pub fn has_qdisc(ifindex: u32) -> io::Result<bool> {
    Ok(dump(&netlink_socket()?, libc::RTM_GETQDISC, ifindex, 0)?.iter().any(|e| e.ifindex == ifindex && e.kind == "clsact"))
}

/// One tcmsg of a dump, with its TCA_KIND.
struct Entry {
    ifindex: u32,
    handle: u32,
    info: u32,
    kind: String,
}

/// An rtnetlink socket in the calling thread's network namespace.
fn netlink_socket() -> io::Result<OwnedFd> {
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An rtnetlink dump of `msg_type` (RTM_GETTFILTER, RTM_GETQDISC) for one
/// interface, over `sock` (its network namespace's), read to its end, so
/// the socket can carry the next one.
fn dump(sock: &OwnedFd, msg_type: u16, ifindex: u32, parent: u32) -> io::Result<Vec<Entry>> {
    let mut req = Vec::with_capacity(NLMSG_HDRLEN + TCMSG_LEN);
    req.extend(((NLMSG_HDRLEN + TCMSG_LEN) as u32).to_ne_bytes());
    req.extend(msg_type.to_ne_bytes());
    req.extend(((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req.extend(1u32.to_ne_bytes()); // sequence
    req.extend(0u32.to_ne_bytes()); // port id: the kernel fills it in
    req.extend([0u8; 4]); // tcm_family AF_UNSPEC, padding
    req.extend((ifindex as i32).to_ne_bytes());
    req.extend(0u32.to_ne_bytes()); // tcm_handle
    req.extend(parent.to_ne_bytes());
    req.extend(0u32.to_ne_bytes()); // tcm_info
    if unsafe { libc::send(sock.as_raw_fd(), req.as_ptr() as *const libc::c_void, req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let msgs = &buf[..n as usize];
        let mut off = 0;
        while off + NLMSG_HDRLEN <= msgs.len() {
            let len = u32_at(msgs, off) as usize;
            if len < NLMSG_HDRLEN || off + len > msgs.len() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated netlink message"));
            }
            let msg = &msgs[off..off + len];
            match u16_at(msg, 4) {
                t if t == libc::NLMSG_DONE as u16 => {
                    let err = if len >= NLMSG_HDRLEN + 4 { u32_at(msg, NLMSG_HDRLEN) as i32 } else { 0 };
                    return if err < 0 { Err(io::Error::from_raw_os_error(-err)) } else { Ok(entries) };
                }
                t if t == libc::NLMSG_ERROR as u16 => {
                    let err = u32_at(msg, NLMSG_HDRLEN) as i32;
                    if err < 0 {
                        return Err(io::Error::from_raw_os_error(-err));
                    }
                }
                // The answers are RTM_NEWTFILTER, RTM_NEWQDISC: the request's type - 2.
                t if t == msg_type - 2 && len >= NLMSG_HDRLEN + TCMSG_LEN => entries.push(parse_entry(msg)),
                _ => {}
            }
            off += align4(len);
        }
    }
}

/// An RTM_NEWTFILTER or RTM_NEWQDISC message: tcmsg, then attributes
/// (TCA_KIND among them).
fn parse_entry(msg: &[u8]) -> Entry {
    let tcm = NLMSG_HDRLEN;
    let mut f = Entry { ifindex: u32_at(msg, tcm + 4), handle: u32_at(msg, tcm + 8), info: u32_at(msg, tcm + 16), kind: String::new() };
    let mut at = tcm + TCMSG_LEN;
    while at + 4 <= msg.len() {
        let alen = u16_at(msg, at) as usize;
        if alen < 4 || at + alen > msg.len() {
            break;
        }
        if u16_at(msg, at + 2) == TCA_KIND {
            let v = &msg[at + 4..at + alen];
            f.kind = String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or_default()).into_owned();
        }
        at += align4(alen);
    }
    f
}
