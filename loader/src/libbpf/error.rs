//! What a libbpf call or BPF syscall failed with, and the checks that turn
//! libbpf's return conventions into it.

use std::ffi::c_int;
use std::fmt;
use std::io;

/// An error from libbpf or a BPF syscall, with what we were doing.
#[derive(Debug)]
pub struct BpfError {
    pub what: String,
    pub source: io::Error,
}

impl fmt::Display for BpfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for BpfError {}

impl From<BpfError> for crate::error::Error {
    fn from(e: BpfError) -> crate::error::Error {
        crate::error::Error::os(&e.what, &e.source)
    }
}

pub type Result<T> = std::result::Result<T, BpfError>;

pub(super) fn errno_error(what: impl Into<String>) -> BpfError {
    BpfError { what: what.into(), source: io::Error::last_os_error() }
}

/// libbpf returns -errno and also sets errno; prefer the return value.
pub(super) fn check(ret: c_int, what: impl FnOnce() -> String) -> Result<c_int> {
    if ret < 0 {
        Err(BpfError { what: what(), source: io::Error::from_raw_os_error(-ret) })
    } else {
        Ok(ret)
    }
}
