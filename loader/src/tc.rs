//! tc on meshed pods' interfaces: connections from other nodes are steered
//! into the sidecar's inbound port (bpf/bpf_tc.c).
//!
//! `datapath::install` loads the tc programs and pins them under
//! `<pin_dir>/progs/` ([`pin_program`]). `pod add --ifname IF` attaches them
//! from those pins to the pod's interface as tcx links, pinned under
//! `<pin_dir>/pods/<cookie>/` ([`attach_pod`]); `pod del` unpins them, which
//! detaches them ([`detach_pod`]). A restarted loader pins its new programs
//! and moves every pod's links onto them, so attachments survive restarts.
//!
//! Only tcx links (Linux 6.6) are used. A clsact fallback for older kernels
//! (bpf_tc_hook_create + bpf_tc_attach, remembered outside bpffs so that it
//! can be detached) is not implemented; attaching fails with a message that
//! names the missing kernel feature.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::libbpf;
use crate::pins::Pins;
use crate::system;

/// A tc program of the datapath and where a pod's link to it is pinned.
#[derive(Debug, Clone, Copy)]
pub struct TcProgram {
    pub program: &'static str,
    /// File name of the pod's link, under `pods/<cookie>/`.
    pub link: &'static str,
    pub ingress: bool,
}

pub const TC_PROGRAMS: &[TcProgram] = &[
    TcProgram { program: "mw_tc_ingress", link: "tc_ingress", ingress: true },
    TcProgram { program: "mw_tc_egress", link: "tc_egress", ingress: false },
];

/// Linux limits interface names to IFNAMSIZ - 1 bytes.
const IFNAMSIZ: usize = 16;

/// Where a pin is written before it is renamed over `path` (bpffs refuses
/// names with a '.').
fn temp_pin(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{name}~new"))
}

/// Pin `fd` at `path`, replacing what is there in one step: pin to a
/// temporary name, then rename(2) over the old pin (bpffs supports it), so
/// the path never goes missing and the old object's pin reference is dropped.
fn replace_pin(fd: &impl AsRawFd, path: &Path) -> Result<(), String> {
    let tmp = temp_pin(path);
    remove_if_present(&tmp)?;
    libbpf::obj_pin(fd, &tmp).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("renaming {} to {}: {e}", tmp.display(), path.display())
    })
}

/// Ok(true): removed; Ok(false): was not there.
fn remove_if_present(path: &Path) -> Result<bool, String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("removing {}: {e}", path.display())),
    }
}

fn tc_program(program: &str) -> Result<&'static TcProgram, String> {
    TC_PROGRAMS.iter().find(|p| p.program == program).ok_or_else(|| format!("{program} is not a tc program of meshwire"))
}

/// Install step of a tc program (called with the pin lock held): pin it at
/// `progs/<program>`, replacing an earlier pin atomically, and move every
/// pod's link of this program onto it. Ok(true) when the pin is new.
pub fn pin_program(pins: &Pins, program: &str, prog_fd: RawFd) -> Result<bool, String> {
    let tc = tc_program(program)?;
    let path = pins.prog(program);
    let existed = path.exists();
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(prog_fd) };
    replace_pin(&fd, &path).map_err(|e| format!("{program}: {e}"))?;
    update_pod_links(pins, tc, prog_fd);
    Ok(!existed)
}

/// The pods that have tc pins, by netns cookie.
pub fn pod_cookies(pins: &Pins) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(pins.pods_dir()) else {
        return Vec::new();
    };
    let mut cookies: Vec<u64> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    cookies.sort_unstable();
    cookies
}

/// Point every pod's link of `tc` at `prog_fd`. A pod whose link cannot be
/// updated keeps the program it has (it shares the pinned maps); a defunct
/// link (the pod's interface is gone) waits for `pod del`.
fn update_pod_links(pins: &Pins, tc: &TcProgram, prog_fd: RawFd) {
    for cookie in pod_cookies(pins) {
        let path = pins.pod_dir(cookie).join(tc.link);
        let link = match libbpf::obj_get(&path) {
            Ok(l) => l,
            Err(e) if e.source.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                log::warn!("pod {cookie}: {e}; it keeps its current {}", tc.program);
                continue;
            }
        };
        match libbpf::link_update(&link, prog_fd, tc.program) {
            Ok(()) => log::info!("pod {cookie}: {} replaced behind {}", tc.program, path.display()),
            Err(e) if e.source.raw_os_error() == Some(libc::ENOLINK) => {
                log::warn!("pod {cookie}: its interface is gone ({} is defunct); run `meshwire-loader pod del --cookie {cookie}`", path.display())
            }
            Err(e) => log::warn!("pod {cookie}: {e}; it keeps its current {}", tc.program),
        }
    }
}

/// Attach the tc programs to `ifname` in the pod's network namespace
/// `netns` (whose cookie is `cookie`), from their pins, as tcx links pinned
/// under `pods/<cookie>/`. Attaching again is fine: links already on that
/// interface get the current programs, others are replaced. On error the
/// pod has no tc pins left.
pub fn attach_pod(pins: &Pins, cookie: u64, netns: &Path, ifname: &str) -> Result<(), String> {
    if ifname.is_empty() || ifname.len() >= IFNAMSIZ || ifname.contains(['/', '\0']) || ifname.chars().any(char::is_whitespace) {
        return Err(format!("{ifname:?} is not an interface name"));
    }
    let mut progs = Vec::new();
    for tc in TC_PROGRAMS {
        let path = pins.prog(tc.program);
        let fd = libbpf::obj_get(&path)
            .map_err(|e| format!("{e}; is the loader running (or was it started) with pin directory {}?", pins.root().display()))?;
        progs.push((tc, fd));
    }
    let netns_file = File::open(netns).map_err(|e| format!("opening network namespace {}: {e}", netns.display()))?;
    let _lock = pins.lock().map_err(|e| format!("locking {}: {e}", pins.root().display()))?;
    let dir = pins.pod_dir(cookie);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }

    let shown = netns.display().to_string();
    let ifname_owned = ifname.to_string();
    let dir_owned = dir.clone();
    let result = std::thread::spawn(move || -> Result<(), String> {
        nix::sched::setns(netns_file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("{shown} is not a network namespace I can enter: {e}"))?;
        let here = system::current_netns_cookie().map_err(|e| format!("reading the cookie of {shown}: {e}"))?;
        if here != cookie {
            return Err(format!("{shown} has netns cookie {here}, not {cookie}"));
        }
        let ifindex = nix::net::if_::if_nametoindex(ifname_owned.as_str())
            .map_err(|e| format!("no interface {ifname_owned} in network namespace {shown}: {e}"))?;
        for (tc, prog) in &progs {
            attach_one(&dir_owned, tc, prog, ifindex).map_err(|e| format!("{} on {ifname_owned} in {shown}: {e}", tc.program))?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| "netns thread panicked".to_string())?;

    if let Err(e) = result {
        if let Err(e2) = remove_pod_pins(pins, cookie) {
            log::warn!("removing the tc pins of pod {cookie} after a failed attach: {e2}");
        }
        return Err(e);
    }
    Ok(())
}

/// One link, in the pod's netns: keep (and refresh) a live link on this
/// interface, else create one and pin it over whatever was there.
fn attach_one(dir: &Path, tc: &TcProgram, prog: &OwnedFd, ifindex: u32) -> Result<(), String> {
    let path = dir.join(tc.link);
    if let Ok(link) = libbpf::obj_get(&path) {
        if let Ok(Some(info)) = libbpf::link_tcx_info(&link) {
            if info.ifindex == ifindex && info.ingress == tc.ingress {
                return libbpf::link_update(&link, prog.as_raw_fd(), tc.program).map_err(|e| e.to_string());
            }
        }
    }
    let link = libbpf::tcx_link_create(prog.as_raw_fd(), ifindex, tc.ingress).map_err(|e| {
        if matches!(e.source.raw_os_error(), Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)) {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "?".to_string(), |r| r.trim().to_string());
            format!("{e}: this kernel ({release}) may lack tcx links (Linux 6.6), which inbound interception needs (no clsact fallback yet)")
        } else {
            e.to_string()
        }
    })?;
    replace_pin(&link, &path)
}

/// Remove a pod's tc links (unpinning the last reference detaches them; a
/// link whose netns is gone is defunct and just unpinned) and its directory.
/// Detaching a pod that has none is fine.
pub fn detach_pod(pins: &Pins, cookie: u64) -> Result<(), String> {
    if !pins.root().exists() {
        return Ok(());
    }
    let _lock = pins.lock().map_err(|e| format!("locking {}: {e}", pins.root().display()))?;
    remove_pod_pins(pins, cookie).map(|_| ())
}

/// What `detach_pod` removes, without taking the lock; returns the paths.
fn remove_pod_pins(pins: &Pins, cookie: u64) -> Result<Vec<PathBuf>, String> {
    let dir = pins.pod_dir(cookie);
    let mut removed = Vec::new();
    for tc in TC_PROGRAMS {
        let path = dir.join(tc.link);
        remove_if_present(&temp_pin(&path))?;
        libbpf::detach_pinned_link(&path).map_err(|e| e.to_string())?;
        if remove_if_present(&path)? {
            removed.push(path);
        }
    }
    match std::fs::remove_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing {}: {e} (files there are not meshwire's)", dir.display())),
    }
    Ok(removed)
}

/// For `datapath::cleanup` (lock held): every pod's links and the program
/// pins. Returns the paths removed.
pub fn remove_all_pins(pins: &Pins) -> Result<Vec<PathBuf>, String> {
    let mut removed = Vec::new();
    for cookie in pod_cookies(pins) {
        removed.extend(remove_pod_pins(pins, cookie)?);
    }
    for tc in TC_PROGRAMS {
        let path = pins.prog(tc.program);
        remove_if_present(&temp_pin(&path))?;
        if remove_if_present(&path)? {
            removed.push(path);
        }
    }
    Ok(removed)
}

#[cfg(test)]
#[path = "tc_tests.rs"]
mod tests;
