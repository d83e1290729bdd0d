//! Someone else's tc program, assembled instruction by instruction, to share
//! the pod's interface with meshwire's filters.

use std::os::fd::{AsRawFd, OwnedFd};

use super::harness::Tc;
use super::veth::{on_pod_eth0, NetnsPair};
use crate::libbpf::{self, MapFd};

/// Someone else's tc program: counts the packets it sees (wherever it is
/// attached, into one counter) and returns TC_ACT_UNSPEC, like meshwire's.
pub struct OtherProg {
    pub prog: OwnedFd,
    pub counts: MapFd,
}

/// struct bpf_insn as a little-endian u64.
pub fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    code as u64 | ((dst | src << 4) as u64) << 8 | (off as u16 as u64) << 16 | (imm as u32 as u64) << 32
}

impl OtherProg {
    pub fn new(tc: &Tc) -> OtherProg {
        let map = libbpf::array_map_create("other_counts", 8, 1).unwrap();
        let map_path = tc.fs.path().join("other_counts");
        libbpf::obj_pin(&map, &map_path).unwrap();
        let counts = MapFd::open_pinned(&map_path).unwrap();
        let insns = [
            insn(0x62, 10, 0, -4, 0),             // *(u32 *)(r10 - 4) = 0
            insn(0xbf, 2, 10, 0, 0),              // r2 = r10
            insn(0x07, 2, 0, 0, -4),              // r2 += -4
            insn(0x18, 1, 1, 0, map.as_raw_fd()), // r1 = the map (BPF_PSEUDO_MAP_FD)
            0,                                    //   (ld_imm64, second half)
            insn(0x85, 0, 0, 0, 1),               // call bpf_map_lookup_elem
            insn(0x15, 0, 0, 2, 0),               // if r0 == 0 goto +2
            insn(0xb7, 1, 0, 0, 1),               // r1 = 1
            insn(0xdb, 0, 1, 0, 0),               // lock *(u64 *)(r0 + 0) += r1
            insn(0xb7, 0, 0, 0, -1),              // r0 = TC_ACT_UNSPEC
            insn(0x95, 0, 0, 0, 0),               // exit
        ];
        let prog = libbpf::prog_load_insns(libbpf_sys::BPF_PROG_TYPE_SCHED_CLS, "other_tc", &insns).unwrap();
        OtherProg { prog, counts }
    }

    pub fn count(&self) -> u64 {
        self.counts.lookup::<u32, u64>(&0).unwrap().unwrap()
    }

    /// Attach it to the pod's eth0 (clsact qdisc there) at `priority`, handle 1.
    pub fn attach(&self, pair: &NetnsPair, ingress: bool, priority: u16, handle: u32) -> u32 {
        let fd = self.prog.as_raw_fd();
        on_pod_eth0(pair, move |ifindex| libbpf::tc_attach(ifindex, ingress, priority, handle, fd).unwrap())
    }
}
