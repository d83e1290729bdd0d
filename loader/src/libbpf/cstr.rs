//! C strings handed to and read back from libbpf.

use std::ffi::{c_char, CStr, CString};
use std::path::Path;

pub(super) fn cstring(s: &str) -> CString {
    CString::new(s).expect("names and paths given to libbpf contain no NUL byte")
}

pub(super) fn path_cstring(p: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).expect("paths contain no NUL byte")
}

pub(super) unsafe fn c_str_lossy(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
