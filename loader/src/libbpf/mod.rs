//! The one place that calls libbpf through raw `libbpf-sys` FFI.
//!
//! Everything else in the loader uses these RAII types: an [`Object`] closes
//! its programs and maps on drop, a [`Link`] detaches on drop unless it was
//! pinned or [`Link::keep`] was called, and [`MapFd`] closes its descriptor.
//! One file per role; this one only re-exports them.

mod btf;
mod cstr;
mod error;
mod link;
mod logging;
mod map;
mod object;
mod pin;
mod prog;
mod tc;

#[cfg(test)]
mod tests;

pub use btf::{Btf, BtfMember};
pub use error::{BpfError, Result};
#[allow(unused_imports)] // Link: callers hold one without naming it
pub use link::{detach_pinned_link, link_cgroup_id, link_prog_id, link_program, link_update, prog_attach, prog_detach, Link};
pub use logging::route_libbpf_logs;
#[cfg(test)]
pub use map::{array_map_create, map_create_like};
pub use map::{CopyMode, MapFd, MapInfo, RingBuffer};
#[allow(unused_imports)] // Program: callers hold one without naming it
pub use object::{Object, Program};
pub use pin::{obj_get, obj_pin};
#[cfg(test)]
pub use prog::{prog_id, prog_load_insns};
pub use prog::{prog_by_id, prog_info, prog_map_ids, prog_name_by_id, prog_query, ProgInfo};
#[cfg(test)]
pub use tc::TcxLinkInfo;
pub use tc::{link_tcx_info, tc_attach, tc_detach, tc_qdisc_create, tc_qdisc_destroy, tc_query, tcx_link_create, tcx_supported};
