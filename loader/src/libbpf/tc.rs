//! tc attachment: tcx links (Linux 6.6) and clsact filters through libbpf's
//! netlink (bpf_tc_*).

use std::ffi::c_int;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use libbpf_sys as sys;

use super::error::{BpfError, Result, check};
use super::link::link_info;

/// Attach a program to a network device of the calling thread's netns
/// through a tcx link (Linux 6.6), after the programs already there. The
/// program stays attached while the link has a reference (descriptor, pin).
pub fn tcx_link_create(prog_fd: RawFd, ifindex: u32, ingress: bool) -> Result<OwnedFd> {
    let attach_type = if ingress { sys::BPF_TCX_INGRESS } else { sys::BPF_TCX_EGRESS };
    let fd = unsafe { sys::bpf_link_create(prog_fd, ifindex as c_int, attach_type, ptr::null()) };
    let fd = check(fd, || format!("creating a tcx {} link on ifindex {ifindex}", if ingress { "ingress" } else { "egress" }))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Where a tcx link is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcxLinkInfo {
    pub id: u32,
    /// 0 once the device is gone (the link is defunct).
    pub ifindex: u32,
    pub ingress: bool,
    pub prog_id: u32,
}

/// The attachment of a tcx link, or None for other links.
pub fn link_tcx_info(link: &impl AsRawFd) -> Result<Option<TcxLinkInfo>> {
    let info = link_info(link)?;
    if info.type_ != sys::BPF_LINK_TYPE_TCX {
        return Ok(None);
    }
    let tcx = unsafe { info.__bindgen_anon_1.tcx };
    Ok(Some(TcxLinkInfo { id: info.id, ifindex: tcx.ifindex, ingress: tcx.attach_type == sys::BPF_TCX_INGRESS, prog_id: info.prog_id }))
}


/// Whether this kernel has tcx links (Linux 6.6), asked without attaching
/// anything: a tcx link on ifindex 0 fails with ENODEV where tcx exists and
/// with EINVAL (an unknown attach type) or EOPNOTSUPP where it does not.
/// `prog_fd` must be a sched_cls program.
pub fn tcx_supported(prog_fd: RawFd) -> Result<bool> {
    match tcx_link_create(prog_fd, 0, true) {
        // No device has index 0; were one found, the link goes with the fd.
        Ok(_) => Ok(true),
        Err(e) => match e.source.raw_os_error() {
            Some(libc::ENODEV) => Ok(true),
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(false),
            _ => Err(BpfError { what: format!("probing for tcx links: {}", e.what), source: e.source }),
        },
    }
}

// ---- clsact: tc filters through libbpf's netlink (bpf_tc_*) ----------------
//
// These act on the calling thread's network namespace. A filter is named by
// its direction (ingress or egress of the clsact qdisc), priority and handle.

pub(super) fn tc_hook(ifindex: u32, attach_point: sys::bpf_tc_attach_point) -> sys::bpf_tc_hook {
    sys::bpf_tc_hook {
        sz: std::mem::size_of::<sys::bpf_tc_hook>() as sys::size_t,
        ifindex: ifindex as c_int,
        attach_point,
        ..Default::default()
    }
}

pub(super) fn tc_point(ingress: bool) -> sys::bpf_tc_attach_point {
    if ingress {
        sys::BPF_TC_INGRESS
    } else {
        sys::BPF_TC_EGRESS
    }
}

pub(super) fn tc_opts(handle: u32, priority: u16) -> sys::bpf_tc_opts {
    sys::bpf_tc_opts {
        sz: std::mem::size_of::<sys::bpf_tc_opts>() as sys::size_t,
        handle,
        priority: priority as u32,
        ..Default::default()
    }
}

pub(super) fn tc_dir(ingress: bool) -> &'static str {
    if ingress {
        "ingress"
    } else {
        "egress"
    }
}

/// Create the clsact qdisc of a device. Ok(true): created; Ok(false): the
/// device already had one (or another qdisc at its place, EEXIST).
pub fn tc_qdisc_create(ifindex: u32) -> Result<bool> {
    let mut hook = tc_hook(ifindex, sys::BPF_TC_INGRESS);
    let ret = unsafe { sys::bpf_tc_hook_create(&mut hook) };
    if ret == -libc::EEXIST {
        return Ok(false);
    }
    check(ret, || format!("creating the clsact qdisc of ifindex {ifindex}"))?;
    Ok(true)
}

/// Delete the clsact qdisc of a device, with every filter still on it.
pub fn tc_qdisc_destroy(ifindex: u32) -> Result<()> {
    let mut hook = tc_hook(ifindex, sys::BPF_TC_INGRESS | sys::BPF_TC_EGRESS);
    let ret = unsafe { sys::bpf_tc_hook_destroy(&mut hook) };
    check(ret, || format!("deleting the clsact qdisc of ifindex {ifindex}"))?;
    Ok(())
}

/// Attach `prog_fd` as a direct-action bpf filter, replacing the filter with
/// that priority and handle if there is one. Returns the attached program's id.
pub fn tc_attach(ifindex: u32, ingress: bool, priority: u16, handle: u32, prog_fd: RawFd) -> Result<u32> {
    let hook = tc_hook(ifindex, tc_point(ingress));
    let mut opts = tc_opts(handle, priority);
    opts.prog_fd = prog_fd;
    opts.flags = sys::BPF_TC_F_REPLACE;
    let ret = unsafe { sys::bpf_tc_attach(&hook, &mut opts) };
    check(ret, || format!("attaching a tc {} filter (priority {priority}, handle {handle:#x}) on ifindex {ifindex}", tc_dir(ingress)))?;
    Ok(opts.prog_id)
}

/// The program id of the bpf filter with that priority and handle; None when
/// there is none (or no clsact qdisc). A filter of another kind at that
/// priority is an error (EINVAL from the kernel).
pub fn tc_query(ifindex: u32, ingress: bool, priority: u16, handle: u32) -> Result<Option<u32>> {
    let hook = tc_hook(ifindex, tc_point(ingress));
    let mut opts = tc_opts(handle, priority);
    let ret = unsafe { sys::bpf_tc_query(&hook, &mut opts) };
    if ret == -libc::ENOENT {
        return Ok(None);
    }
    check(ret, || format!("querying the tc {} filter (priority {priority}, handle {handle:#x}) on ifindex {ifindex}", tc_dir(ingress)))?;
    Ok(Some(opts.prog_id))
}

/// Remove the bpf filter with that priority and handle. Ok(false): there was none.
pub fn tc_detach(ifindex: u32, ingress: bool, priority: u16, handle: u32) -> Result<bool> {
    let hook = tc_hook(ifindex, tc_point(ingress));
    let opts = tc_opts(handle, priority);
    let ret = unsafe { sys::bpf_tc_detach(&hook, &opts) };
    if ret == -libc::ENOENT {
        return Ok(false);
    }
    check(ret, || format!("removing the tc {} filter (priority {priority}, handle {handle:#x}) on ifindex {ifindex}", tc_dir(ingress)))?;
    Ok(true)
}
