//! Pinning BPF objects on bpffs and opening pins.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use libbpf_sys as sys;

use super::cstr::path_cstring;
use super::error::{Result, check, errno_error};

/// Open a pinned object (map, link, program) from bpffs.
pub fn obj_get(path: &Path) -> Result<OwnedFd> {
    let c = path_cstring(path);
    let fd = unsafe { sys::bpf_obj_get(c.as_ptr()) };
    if fd < 0 {
        return Err(errno_error(format!("opening pinned {}", path.display())));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Pin a BPF object (program, link, map) by descriptor at `path` on bpffs.
pub fn obj_pin(fd: &impl AsRawFd, path: &Path) -> Result<()> {
    let c = path_cstring(path);
    let ret = unsafe { sys::bpf_obj_pin(fd.as_raw_fd(), c.as_ptr()) };
    check(ret, || format!("pinning at {}", path.display()))?;
    Ok(())
}
