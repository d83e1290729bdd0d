//! The tc programs (bpf/bpf_tc.c) under test, in a real kernel. Run as root;
//! every test mounts a private bpffs (never /sys/fs/bpf) and makes its own
//! network namespaces.
//!
//! - fixtures.rs: single packets as table rows (what the maps hold, input
//!   packet, verdict, output packet), each run through the real program with
//!   BPF_PROG_TEST_RUN. A new packet case is a new row.
//! - flows.rs: connections over several packets, through BPF_PROG_TEST_RUN.
//! - veth_tcx.rs, veth_clsact.rs: the programs attached to a veth pair
//!   between two network namespaces, real connections through them.
//! - pinning.rs: program pins, attaching and detaching with nothing there.
//! - packet.rs (the packet builder), harness.rs (the programs loaded, a
//!   connection driven packet by packet), veth.rs (the namespace pair),
//!   other_prog.rs (another component's tc program).

mod fixtures;
mod flows;
mod harness;
mod other_prog;
mod packet;
mod pinning;
// install_tests.rs makes a pod of it too.
pub(in crate::datapath) mod veth;
mod veth_clsact;
mod veth_tcx;
