//! libbpf's own messages, routed into `log`.

use std::ffi::{c_char, c_int};

use libbpf_sys as sys;

use super::cstr::c_str_lossy;

extern "C" {
    fn vsnprintf(buf: *mut c_char, n: usize, fmt: *const c_char, ap: *mut sys::__va_list_tag) -> c_int;
}

pub(super) unsafe extern "C" fn libbpf_log(
    level: sys::libbpf_print_level,
    fmt: *const c_char,
    ap: *mut sys::__va_list_tag,
) -> c_int {
    // Verifier logs arrive as one message; keep enough of them to act on.
    let mut buf = vec![0 as c_char; 64 * 1024];
    let n = vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap);
    if n < 0 {
        return n;
    }
    let msg = c_str_lossy(buf.as_ptr());
    let msg = msg.trim_end();
    match level {
        sys::LIBBPF_WARN => log::warn!(target: "libbpf", "{msg}"),
        sys::LIBBPF_INFO => log::debug!(target: "libbpf", "{msg}"),
        _ => log::trace!(target: "libbpf", "{msg}"),
    }
    n
}

/// Route libbpf's own messages (verifier logs included) into `log`.
pub fn route_libbpf_logs() {
    unsafe {
        sys::libbpf_set_print(Some(libbpf_log));
    }
}
