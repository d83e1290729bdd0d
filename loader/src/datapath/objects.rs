//! The BPF objects built by `//bpf`, embedded in the loader binary.
//!
//! Bazel sets MESHWIRE_BPF_DIR to the directory holding the objects; to build
//! with cargo alone, point it at `bazel-bin/bpf` after `bazel build //bpf:objects`.

macro_rules! bpf_object {
    ($file:literal) => {
        include_bytes!(concat!(
            env!("MESHWIRE_BPF_DIR", "MESHWIRE_BPF_DIR is unset: build with `bazel build //loader`, or set it to bazel-bin/bpf"),
            "/",
            $file
        ))
    };
}

pub const SOCK: &[u8] = bpf_object!("meshwire_sock.bpf.o");
pub const SOCKOPS: &[u8] = bpf_object!("meshwire_sockops.bpf.o");
pub const SOCKOPT: &[u8] = bpf_object!("meshwire_sockopt.bpf.o");
pub const TC: &[u8] = bpf_object!("meshwire_tc.bpf.o");
/// Acceleration (sk_msg); loaded on its own so a kernel that refuses it only
/// loses acceleration (datapath::install).
pub const SKMSG: &[u8] = bpf_object!("meshwire_skmsg.bpf.o");
/// Never loaded: carries the BTF of the shared structs (see layout.rs).
pub const ALIGNCHECKER: &[u8] = bpf_object!("meshwire_alignchecker.bpf.o");

/// Every object holding programs, by name.
pub const PROGRAMS: &[(&str, &[u8])] = &[
    ("meshwire_sock", SOCK),
    ("meshwire_sockops", SOCKOPS),
    ("meshwire_sockopt", SOCKOPT),
    ("meshwire_tc", TC),
];
