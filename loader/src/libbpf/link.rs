//! BPF links (attachments owned through a descriptor or a pin) and
//! attaching programs to other BPF objects.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::ptr;

use libbpf_sys as sys;

use super::cstr::path_cstring;
use super::error::{Result, check};
use super::pin::obj_get;

/// A BPF link owned by this process. Dropping it detaches the program,
/// unless the link was pinned (the pin keeps it) or kept.
pub struct Link {
    pub(super) ptr: *mut sys::bpf_link,
    pub(super) what: String,
}

unsafe impl Send for Link {}

impl Link {
    pub fn pin(&mut self, path: &Path) -> Result<()> {
        let c = path_cstring(path);
        let ret = unsafe { sys::bpf_link__pin(self.ptr, c.as_ptr()) };
        check(ret, || format!("pinning link {} at {}", self.what, path.display()))?;
        Ok(())
    }

    #[cfg(test)]
    pub fn fd(&self) -> RawFd {
        unsafe { sys::bpf_link__fd(self.ptr) }
    }

    /// Leave the program attached after this process lets go of the link.
    pub fn keep(self) {
        unsafe { sys::bpf_link__disconnect(self.ptr) };
        drop(self);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        unsafe { sys::bpf_link__destroy(self.ptr) };
    }
}

/// Replace the program behind an existing (e.g. pinned) link atomically.
pub fn link_update(link: &impl AsRawFd, prog_fd: RawFd, what: &str) -> Result<()> {
    let ret = unsafe { sys::bpf_link_update(link.as_raw_fd(), prog_fd, ptr::null()) };
    check(ret, || format!("replacing the program of link {what}"))?;
    Ok(())
}

pub(super) fn link_info(link: &impl AsRawFd) -> Result<sys::bpf_link_info> {
    let mut info = sys::bpf_link_info::default();
    let mut len = std::mem::size_of::<sys::bpf_link_info>() as u32;
    let ret = unsafe { sys::bpf_link_get_info_by_fd(link.as_raw_fd(), &mut info, &mut len) };
    check(ret, || "reading link info".to_string())?;
    Ok(info)
}

/// Attach a program to a target fd the old way (BPF_PROG_ATTACH), as sk_msg
/// verdicts attach to socket maps. Attaching again replaces the program.
pub fn prog_attach(prog_fd: RawFd, target: &impl AsRawFd, attach_type: sys::bpf_attach_type, what: &str) -> Result<()> {
    let ret = unsafe { sys::bpf_prog_attach(prog_fd, target.as_raw_fd(), attach_type, 0) };
    check(ret, || format!("attaching {what}"))?;
    Ok(())
}

/// Detach `prog_fd` attached the old way to a target fd (an sk_msg verdict
/// from a socket map); the program must be the one attached there.
pub fn prog_detach(prog_fd: RawFd, target: &impl AsRawFd, attach_type: sys::bpf_attach_type, what: &str) -> Result<()> {
    let ret = unsafe { sys::bpf_prog_detach2(prog_fd, target.as_raw_fd(), attach_type) };
    check(ret, || format!("detaching {what}"))?;
    Ok(())
}

/// The cgroup id a cgroup link is attached to, or None for other links.
pub fn link_cgroup_id(link: &impl AsRawFd) -> Result<Option<u64>> {
    let info = link_info(link)?;
    if info.type_ != sys::BPF_LINK_TYPE_CGROUP {
        return Ok(None);
    }
    Ok(Some(unsafe { info.__bindgen_anon_1.cgroup.cgroup_id }))
}

/// Detach a pinned link now. Unpinning alone lets the kernel release the
/// link later (after RCU and a workqueue), so for a while the program would
/// still run; a detached link stays a valid, defunct object until unpinned.
/// A link whose target is already gone (a deleted netns) is fine.
pub fn detach_pinned_link(path: &Path) -> Result<()> {
    let fd = match obj_get(path) {
        Ok(fd) => fd,
        Err(e) if e.source.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let ret = unsafe { sys::bpf_link_detach(fd.as_raw_fd()) };
    // ENOLINK/EINVAL: already detached (defunct); nothing to do.
    if ret == -libc::ENOLINK || ret == -libc::EINVAL {
        return Ok(());
    }
    check(ret, || format!("detaching link {}", path.display()))?;
    Ok(())
}

/// The program a link runs.
pub fn link_prog_id(link: &impl AsRawFd) -> Result<u32> {
    Ok(link_info(link)?.prog_id)
}

/// The program a link runs, opened (by its id).
pub fn link_program(link: &impl AsRawFd) -> Result<std::os::fd::OwnedFd> {
    link_prog_id(link).and_then(super::prog_by_id)
}
