//! Loaded programs seen from the kernel: info, ids, names, queries, test runs.

use std::ffi::c_void;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use libbpf_sys as sys;

#[cfg(test)]
use super::cstr::cstring;
use super::cstr::c_str_lossy;
use super::error::{BpfError, Result, check, errno_error};
use super::object::Program;

/// What the kernel reports of a loaded program; run_cnt and run_time_ns
/// count only while kernel.bpf_stats_enabled is 1.
#[derive(Debug, Clone)]
pub struct ProgInfo {
    pub id: u32,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub verified_insns: u32,
}

pub fn prog_info(prog: &impl AsRawFd) -> Result<ProgInfo> {
    let mut info = sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    let ret = unsafe { sys::bpf_prog_get_info_by_fd(prog.as_raw_fd(), &mut info, &mut len) };
    check(ret, || "reading program info".to_string())?;
    Ok(ProgInfo {
        id: info.id,
        run_cnt: info.run_cnt,
        run_time_ns: info.run_time_ns,
        verified_insns: info.verified_insns,
    })
}

/// Ids of the maps a loaded program uses (its .rodata among them).
pub fn prog_map_ids(prog: &impl AsRawFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut info = sys::bpf_prog_info { nr_map_ids: ids.len() as u32, map_ids: ids.as_mut_ptr() as u64, ..Default::default() };
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    let ret = unsafe { sys::bpf_prog_get_info_by_fd(prog.as_raw_fd(), &mut info, &mut len) };
    check(ret, || "reading the maps of a program".to_string())?;
    ids.truncate((info.nr_map_ids as usize).min(64));
    Ok(ids)
}

/// Programs attached to a target (cgroup, socket map ...) for one attach type.
pub fn prog_query(target: &impl AsRawFd, attach_type: sys::bpf_attach_type) -> Result<Vec<u32>> {
    let mut ids = [0u32; 64];
    let mut cnt = ids.len() as u32;
    let mut flags = 0u32;
    let ret = unsafe { sys::bpf_prog_query(target.as_raw_fd(), attach_type, 0, &mut flags, ids.as_mut_ptr(), &mut cnt) };
    check(ret, || "querying attached programs".to_string())?;
    Ok(ids[..cnt.min(64) as usize].to_vec())
}

pub fn prog_by_id(id: u32) -> Result<OwnedFd> {
    let fd = unsafe { sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return Err(errno_error(format!("opening program id {id}")));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Program<'_> {
    /// Run the program once on the packet `data` (BPF_PROG_TEST_RUN; for tc
    /// programs an Ethernet frame). Returns the program's return value and
    /// the packet as the program left it.
    #[allow(dead_code)] // the tc unit tests' way into the programs
    pub fn test_run(&self, data: &[u8]) -> Result<(i32, Vec<u8>)> {
        prog_test_run(self.fd(), data).map_err(|e| BpfError { what: format!("{} ({})", e.what, self.name), source: e.source })
    }
}

/// BPF_PROG_TEST_RUN of the program behind `prog_fd` on one packet.
pub fn prog_test_run(prog_fd: RawFd, data: &[u8]) -> Result<(i32, Vec<u8>)> {
    // Room for a program that grows the packet (encapsulation, options).
    let mut out = vec![0u8; data.len() + 512];
    let mut opts = sys::bpf_test_run_opts {
        sz: std::mem::size_of::<sys::bpf_test_run_opts>() as sys::size_t,
        data_in: data.as_ptr() as *const c_void,
        data_size_in: data.len() as u32,
        data_out: out.as_mut_ptr() as *mut c_void,
        data_size_out: out.len() as u32,
        repeat: 1,
        ..Default::default()
    };
    let ret = unsafe { sys::bpf_prog_test_run_opts(prog_fd, &mut opts) };
    check(ret, || "test run".to_string())?;
    out.truncate(opts.data_size_out as usize);
    Ok((opts.retval as i32, out))
}

/// The kernel id of a loaded program.
#[allow(dead_code)] // used by the tc unit tests
pub fn prog_id(prog_fd: RawFd) -> Result<u32> {
    let mut info = sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    let ret = unsafe { sys::bpf_prog_get_info_by_fd(prog_fd, &mut info, &mut len) };
    check(ret, || "reading program info".to_string())?;
    Ok(info.id)
}

/// The name of a loaded program (at most 15 bytes, as the kernel keeps it).
pub fn prog_name_by_id(id: u32) -> Result<String> {
    let fd = prog_by_id(id)?;
    let mut info = sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    let ret = unsafe { sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    check(ret, || format!("reading the info of program id {id}"))?;
    Ok(unsafe { c_str_lossy(info.name.as_ptr()) })
}

/// For tests: load a program from raw instructions (struct bpf_insn, as u64s).
#[cfg(test)]
pub fn prog_load_insns(prog_type: sys::bpf_prog_type, name: &str, insns: &[u64]) -> Result<OwnedFd> {
    let c = cstring(name);
    let license = cstring("GPL");
    let mut opts = sys::bpf_prog_load_opts { sz: std::mem::size_of::<sys::bpf_prog_load_opts>() as sys::size_t, ..Default::default() };
    let fd = unsafe {
        sys::bpf_prog_load(prog_type, c.as_ptr(), license.as_ptr(), insns.as_ptr() as *const sys::bpf_insn, insns.len() as sys::size_t, &mut opts)
    };
    let fd = check(fd, || format!("loading program {name}"))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
