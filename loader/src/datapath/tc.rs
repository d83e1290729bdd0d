//! tc on meshed pods' interfaces: connections from other nodes are steered
//! into the sidecar's inbound port (bpf/bpf_tc.c).
//!
//! `datapath::install` loads the tc programs and pins them under
//! `<pin_dir>/progs/` ([`pin_program`]). `pod add --ifname IF` attaches them
//! from those pins to the pod's interface, inside its network namespace
//! ([`attach_pod`]), in one of two ways (`[tc] attach`, [`TcAttach`]):
//!
//! - tcx links (Linux 6.6), pinned under `<pin_dir>/pods/<cookie>/`; a
//!   restarted loader pins its new programs and moves every pod's links onto
//!   them ([`pin_program`]; back again if its start fails).
//! - clsact (crate::datapath::clsact), for older kernels: direct-action filters at a
//!   fixed priority and handle on the interface's clsact qdisc. They are not
//!   BPF links and need no pins: they stay on the qdisc, independent of the
//!   loader. A restarted loader moves them onto its programs when it applies
//!   its pods again (`PodService::adopt` calls [`attach_pod`], which replaces
//!   meshwire's filters in place). When meshwire created the qdisc, the
//!   directory `pods/<cookie>/clsact_qdisc` says so (bpffs holds no regular
//!   files), so that detaching deletes it again once no other filter is on it.
//!
//! "auto" (the default) is clsact on every kernel: a tcx link costs an RCU
//! grace period under RTNL to attach and another to detach (kernel/bpf/tcx.c,
//! `tcx_entry_sync`), two per pod's ADD and two per DEL, which alone exceed a
//! CNI ADD's latency budget (docs/interception.md). "tcx" asks the kernel once
//! whether it has tcx links and refuses, naming the feature, when it has not.
//! Attaching a pod one way takes away what the other way left (a changed
//! mode, or a kernel upgrade). [`detach_pod`] unpins the links and, given the pod's netns
//! and interface, looks there for meshwire's filters (bpf_tc_query) and
//! removes them; nothing else on the interface is touched.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::datapath::clsact;
use crate::datapath::Moved;
pub use crate::config::TcAttach;
use crate::libbpf;
use crate::datapath::objects::{self, Hook, ProgramSpec};
use crate::datapath::pins::{temp_pin, PodPins, Pins};
use crate::timing;
use crate::error::{Error, OrOs};
use crate::system::{self, NetnsError};

/// A tc program of the datapath and where a pod's link to it is pinned.
#[derive(Debug, Clone, Copy)]
pub struct TcProgram {
    pub program: &'static str,
    /// File name of the pod's link, under `pods/<cookie>/`.
    pub link: &'static str,
    pub ingress: bool,
}

impl TcProgram {
    /// The tc side of a program declared in [`objects`].
    const fn of(spec: &ProgramSpec) -> TcProgram {
        match spec.hook {
            Hook::Tc { link, ingress } => TcProgram { program: spec.program, link, ingress },
            _ => panic!("not a tc program"),
        }
    }
}

pub const TC_PROGRAMS: &[TcProgram] = &[TcProgram::of(&objects::TC_INGRESS), TcProgram::of(&objects::TC_EGRESS)];

/// Linux limits interface names to IFNAMSIZ - 1 bytes.
const IFNAMSIZ: usize = 16;

/// How a pod's programs are attached, once "auto" is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Tcx,
    Clsact,
}

/// The kernel's answer to "tcx links?", asked once per process.
static HAS_TCX: OnceLock<bool> = OnceLock::new();

/// What `mode` means on this kernel. "auto" is clsact (see the module
/// documentation); "tcx" is checked against the kernel once, with `prog_fd`
/// (a tc program), so that a kernel without tcx links fails before anything
/// is attached, naming what it lacks.
pub fn method(mode: TcAttach, prog_fd: RawFd) -> Result<Method, Error> {
    match mode {
        TcAttach::Auto | TcAttach::Clsact => Ok(Method::Clsact),
        TcAttach::Tcx => {
            let has_tcx = match HAS_TCX.get() {
                Some(&known) => known,
                None => {
                    let answer = libbpf::tcx_supported(prog_fd)?;
                    let _ = HAS_TCX.set(answer);
                    answer
                }
            };
            if has_tcx {
                Ok(Method::Tcx)
            } else {
                let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "?".to_string(), |r| r.trim().to_string());
                Err(Error::Invalid(format!(
                    "[tc] attach = \"tcx\": this kernel ({release}) lacks tcx links (Linux 6.6); use \"auto\" or \"clsact\" (filters on a clsact qdisc)"
                )))
            }
        }
    }
}

/// Pin `fd` at `path`, replacing what is there in one step: pin to a
/// temporary name, then rename(2) over the old pin (bpffs supports it), so
/// the path never goes missing and the old object's pin reference is dropped.
pub(super) fn replace_pin(fd: &impl AsRawFd, path: &Path) -> Result<(), Error> {
    let tmp = temp_pin(path);
    remove_if_present(&tmp)?;
    libbpf::obj_pin(fd, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::os(format_args!("renaming {} to {}", tmp.display(), path.display()), &e)
    })
}

/// Ok(true): removed; Ok(false): was not there.
fn remove_if_present(path: &Path) -> Result<bool, Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::os(format_args!("removing {}", path.display()), &e)),
    }
}

fn tc_program(program: &str) -> Result<&'static TcProgram, Error> {
    TC_PROGRAMS.iter().find(|p| p.program == program).ok_or_else(|| Error::Invalid(format!("{program} is not a tc program of meshwire")))
}

/// Install step of a tc program (called with the pin lock held): pin it at
/// `progs/<program>`, replacing an earlier pin atomically, and move every
/// pod's link of this program onto it. Ok(true) when the pin is new. The
/// program pinned before and each link moved go into `moved`, for a failed
/// start to put back. (clsact filters are not touched here: adoption moves
/// them, once the start committed.)
pub fn pin_program(pins: &Pins, program: &'static str, prog_fd: RawFd, moved: &mut Vec<Moved>) -> Result<bool, Error> {
    let tc = tc_program(program)?;
    let path = pins.prog(program);
    let old = if path.exists() { Some(pins.open_prog(program)?) } else { None };
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(prog_fd) };
    replace_pin(&fd, &path).map_err(|e| e.context(program))?;
    let existed = old.is_some();
    if let Some(old) = old {
        moved.push(Moved::Pin { path, old });
    }
    update_pod_links(pins, tc, prog_fd, moved);
    Ok(!existed)
}

/// The pods that have tc pins, by netns cookie.
pub fn pod_cookies(pins: &Pins) -> Vec<u64> {
    pins.pod_cookies()
}

/// Point every pod's link of `tc` at `prog_fd`, each link moved recorded in
/// `moved` with the program it had. A pod whose link cannot be
/// updated keeps the program it has (it shares the pinned maps); a defunct
/// link (the pod's interface is gone) waits for `pod del`.
fn update_pod_links(pins: &Pins, tc: &TcProgram, prog_fd: RawFd, moved: &mut Vec<Moved>) {
    let paths = pod_cookies(pins).into_iter().flat_map(|cookie| pins.pod(cookie).links_of(tc.link).into_iter().map(move |p| (cookie, p)));
    for (cookie, path) in paths {
        let link = match libbpf::obj_get(&path) {
            Ok(l) => l,
            Err(e) if e.source.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                log::warn!("pod {cookie}: {e}; it keeps its current {}", tc.program);
                continue;
            }
        };
        // A link whose program cannot be kept to go back to is left as it is.
        let old = match libbpf::link_program(&link) {
            Ok(old) => old,
            Err(e) => {
                log::warn!("pod {cookie}: {e}; it keeps its current {}", tc.program);
                continue;
            }
        };
        match libbpf::link_update(&link, prog_fd, tc.program) {
            Ok(()) => {
                log::info!("pod {cookie}: {} replaced behind {}", tc.program, path.display());
                moved.push(Moved::Link { hook: format!("pod {cookie}: {} (link {})", tc.program, path.display()), link, old });
            }
            Err(e) if e.source.raw_os_error() == Some(libc::ENOLINK) => {
                log::warn!("pod {cookie}: its interface is gone ({} is defunct); run `meshwire-loader pod del --cookie {cookie}`", path.display())
            }
            Err(e) => log::warn!("pod {cookie}: {e}; it keeps its current {}", tc.program),
        }
    }
}

/// The outcome of work inside a pod's network namespace.
enum Reach<T> {
    Done(T),
    /// Not done, and why: the namespace is gone (or its path names another
    /// one now: NetnsGone), or it has no such interface (NotFound).
    Unreachable(Error),
}

/// Run `f` with the index of `ifname` inside the network
/// namespace at `netns`, once its cookie is checked to be `cookie`.
fn in_pod_netns<T: Send + 'static>(
    netns: &Path,
    cookie: u64,
    ifname: &str,
    f: impl FnOnce(u32) -> Result<T, Error> + Send + 'static,
) -> Result<Reach<T>, Error> {
    let file = match system::open_netns(netns) {
        Ok(f) => f,
        Err(gone @ NetnsError::Gone { .. }) => return Ok(Reach::Unreachable(gone.into())),
        // The pod's cookie was read through this path when it was meshed, so
        // it was a namespace then: now unmounted, its file not yet removed
        // (`ip netns del` and runtimes unmount first, then unlink), the
        // namespace is gone from it just the same.
        Err(NetnsError::NotANamespace { netns }) => {
            return Ok(Reach::Unreachable(Error::NetnsGone(format!("{} is no longer a network namespace (unmounted: the pod's sandbox is being deleted)", netns.display()))));
        }
        Err(e) => return Err(e.into()),
    };
    let shown = netns.display().to_string();
    let ifname = ifname.to_string();
    system::run_in_netns(file, netns, move |here| {
        if here != cookie {
            return Ok(Reach::Unreachable(Error::NetnsGone(format!("{shown} has netns cookie {here}, not {cookie}"))));
        }
        let ifindex = match ifindex_here(&ifname, &shown) {
            Ok(i) => i,
            Err(why) => return Ok(Reach::Unreachable(why)),
        };
        f(ifindex).map(Reach::Done).map_err(|e| e.context(format_args!("{ifname} in {shown}")))
    })?
}

/// The index of `ifname` in the calling thread's network namespace (`shown`);
/// NotFound when it has no such interface.
fn ifindex_here(ifname: &str, shown: &str) -> Result<u32, Error> {
    nix::net::if_::if_nametoindex(ifname).map_err(|e| Error::NotFound(format!("no interface {ifname} in network namespace {shown}: {e}")))
}

fn lock(pins: &Pins) -> Result<crate::datapath::pins::PinLock, Error> {
    pins.lock().or_os(|| format!("locking {}", pins.root().display()))
}

fn check_ifname(ifname: &str) -> Result<(), Error> {
    if ifname.is_empty() || ifname.len() >= IFNAMSIZ || ifname.contains(['/', '\0']) || ifname.chars().any(char::is_whitespace) {
        return Err(Error::Invalid(format!("{ifname:?} is not an interface name")));
    }
    Ok(())
}

/// Attach the tc programs to `ifname` in the pod's network namespace
/// `netns` (whose cookie is `cookie`), from their pins, the way `mode` says:
/// tcx links pinned under `pods/<cookie>/`, or meshwire's clsact filters.
/// Attaching again is fine: what is there gets the current programs. On
/// error the pod has no tc attachment left.
pub fn attach_pod(pins: &Pins, cookie: u64, netns: &Path, ifname: &str, mode: TcAttach) -> Result<(), Error> {
    check_ifname(ifname)?;
    let attacher = std::sync::Arc::new(Attacher::new(pins, mode)?);
    let (inside, ifname_owned) = (std::sync::Arc::clone(&attacher), ifname.to_string());
    let reached = in_pod_netns(netns, cookie, ifname, move |ifindex| inside.attach_at(cookie, &ifname_owned, ifindex));
    timing::mark("tc attach (in the netns)");
    let result = match reached {
        Ok(Reach::Done(())) => Ok(()),
        Ok(Reach::Unreachable(why)) => Err(why),
        Err(e) => Err(e),
    };
    result.inspect_err(|_| attacher.undo(cookie, netns, ifname))
}

/// [`attach_pod`] from a thread that is inside the pod's network namespace
/// already (its cookie checked to be `cookie`): an ADD enters it once.
pub fn attach_pod_here(pins: &Pins, cookie: u64, netns: &Path, ifname: &str, mode: TcAttach) -> Result<(), Error> {
    check_ifname(ifname)?;
    let attached = Attacher::new(pins, mode)?.attach_here(cookie, netns, ifname);
    timing::mark("tc attach (in the netns)");
    attached
}

/// The tc programs opened from their pins, how they go on, and the pin lock:
/// what attaching pods needs, once for any number of them (adoption attaches
/// thousands with one).
pub struct Attacher {
    pins: Pins,
    progs: Vec<(&'static TcProgram, OwnedFd)>,
    method: Method,
    _lock: crate::datapath::pins::PinLock,
}

impl Attacher {
    pub fn new(pins: &Pins, mode: TcAttach) -> Result<Attacher, Error> {
        let mut progs = Vec::new();
        for tc in TC_PROGRAMS {
            progs.push((tc, pins.open_prog(tc.program)?));
        }
        let method = method(mode, progs[0].1.as_raw_fd())?;
        timing::mark("tc programs open");
        let lock = lock(pins)?;
        Ok(Attacher { pins: pins.clone(), progs, method, _lock: lock })
    }

    /// For a thread already inside the pod's network namespace `netns` (its
    /// cookie checked to be `cookie`): attach to `ifname` there, as
    /// [`attach_pod`] does; on error the pod has no tc attachment left.
    pub fn attach_here(&self, cookie: u64, netns: &Path, ifname: &str) -> Result<(), Error> {
        let shown = netns.display().to_string();
        check_ifname(ifname)
            .and_then(|()| ifindex_here(ifname, &shown))
            .and_then(|ifindex| self.attach_at(cookie, ifname, ifindex).map_err(|e| e.context(format_args!("{ifname} in {shown}"))))
            .inspect_err(|_| self.undo(cookie, netns, ifname))
    }

    /// After a failed attach: nothing of the pod's tc attachment is left.
    fn undo(&self, cookie: u64, netns: &Path, ifname: &str) {
        if let Err(e2) = detach_locked(&self.pins, cookie, Some((netns, ifname))) {
            log::warn!("removing the tc attachment of pod {cookie} after a failed attach: {e2}");
        }
    }

    /// In the pod's network namespace: the programs onto `ifindex`.
    fn attach_at(&self, cookie: u64, ifname: &str, ifindex: u32) -> Result<(), Error> {
        let pod = self.pins.pod(cookie);
        {
            use std::os::unix::fs::DirBuilderExt;
            let dir = pod.dir();
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).or_os(|| format!("creating {}", dir.display()))?;
        }
        // The previous layout's qdisc marker becomes this interface's.
        let legacy_marker = pod.legacy_qdisc_marker();
        if pod.qdisc_marker_for(ifname) == legacy_marker {
            std::fs::rename(&legacy_marker, pod.qdisc_marker(ifname)).or_os(|| format!("renaming {}", legacy_marker.display()))?;
        }
        let marker = pod.qdisc_marker(ifname);
        match self.method {
            Method::Tcx => {
                for (tc, prog) in &self.progs {
                    attach_one(&pod, tc, prog, ifindex, ifname).map_err(|e| e.context(tc.program))?;
                }
                remove_filters_here(ifindex, &marker)
            }
            Method::Clsact => {
                if clsact::ensure_qdisc(ifindex)? {
                    std::fs::create_dir_all(&marker).or_os(|| format!("creating {}", marker.display()))?;
                }
                let on_if = pod.clsact_if_marker(ifname);
                std::fs::create_dir_all(&on_if).or_os(|| format!("creating {}", on_if.display()))?;
                for (tc, prog) in &self.progs {
                    clsact::attach(ifindex, tc.ingress, tc.program, prog.as_raw_fd()).map_err(|e| e.context(tc.program))?;
                }
                // tcx links this interface had (this layout's or the previous one's) go.
                for tc in TC_PROGRAMS {
                    take_legacy_link(&pod, tc, ifindex, None)?;
                }
                remove_iface_links(&pod, ifname).map(|_| ())
            }
        }
    }
}

/// In the pod's netns: the previous layout's link of `tc`, if it runs on
/// `ifindex`, is moved to `to` (renamed: it stays attached), or detached and
/// unpinned when `to` is None.
fn take_legacy_link(pod: &PodPins, tc: &TcProgram, ifindex: u32, to: Option<&Path>) -> Result<(), Error> {
    let legacy = pod.legacy_link(tc.link);
    let Ok(link) = libbpf::obj_get(&legacy) else { return Ok(()) };
    match libbpf::link_tcx_info(&link) {
        Ok(Some(info)) if info.ifindex == ifindex && info.ingress == tc.ingress => {}
        _ => return Ok(()),
    }
    match to {
        Some(to) => std::fs::rename(&legacy, to).or_os(|| format!("renaming {} to {}", legacy.display(), to.display())),
        None => {
            libbpf::detach_pinned_link(&legacy)?;
            remove_if_present(&legacy).map(|_| ())
        }
    }
}

/// One link, in the pod's netns: keep (and refresh) a live link on this
/// interface (also one the previous layout pinned), else create one and pin
/// it over whatever was there.
fn attach_one(pod: &PodPins, tc: &TcProgram, prog: &OwnedFd, ifindex: u32, ifname: &str) -> Result<(), Error> {
    let path = pod.link(tc.link, ifname);
    if !path.exists() {
        take_legacy_link(pod, tc, ifindex, Some(&path))?;
    }
    if let Ok(link) = libbpf::obj_get(&path) {
        if let Ok(Some(info)) = libbpf::link_tcx_info(&link) {
            if info.ifindex == ifindex && info.ingress == tc.ingress {
                return Ok(libbpf::link_update(&link, prog.as_raw_fd(), tc.program)?);
            }
        }
    }
    let link = libbpf::tcx_link_create(prog.as_raw_fd(), ifindex, tc.ingress).map_err(|e| {
        if matches!(e.source.raw_os_error(), Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)) {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "?".to_string(), |r| r.trim().to_string());
            Error::from(e).map_message(|m| format!("{m}: this kernel ({release}) may lack tcx links (Linux 6.6); set [tc] attach = \"auto\" or \"clsact\" to use a clsact qdisc instead"))
        } else {
            Error::from(e)
        }
    })?;
    replace_pin(&link, &path)
}

/// Take a pod's programs off its interface: its tcx links (unpinning the
/// last reference detaches them; a link whose netns is gone is defunct and
/// just unpinned) and its directory, and, given `iface` (the pod's netns path
/// and interface name), meshwire's clsact filters there, with the qdisc when
/// meshwire created it and nothing else is on it. Detaching a pod that has
/// none, or whose namespace is gone, is fine.
pub fn detach_pod(pins: &Pins, cookie: u64, iface: Option<(&Path, &str)>) -> Result<(), Error> {
    if !pins.root().exists() {
        // Nothing pinned (cleaned up): filters are all there can be.
        return remove_filters(pins, cookie, iface);
    }
    let _lock = lock(pins)?;
    let detached = detach_locked(pins, cookie, iface);
    timing::mark("tc detach");
    detached
}

/// With `iface`, that interface's attachment only (the pod's directory goes
/// with its last interface); without, everything of the pod's pins.
fn detach_locked(pins: &Pins, cookie: u64, iface: Option<(&Path, &str)>) -> Result<(), Error> {
    remove_filters(pins, cookie, iface)?;
    remove_pins_of(pins, cookie, iface.map(|(_, i)| i))
}

/// The pins of the pod's interface `ifname` (its tcx links, its markers;
/// the pod's directory with its last interface), or without one all the
/// pod's pins.
fn remove_pins_of(pins: &Pins, cookie: u64, ifname: Option<&str>) -> Result<(), Error> {
    let pod = pins.pod(cookie);
    if let Some(ifname) = ifname.filter(|i| !i.is_empty()) {
        remove_iface_links(&pod, ifname)?;
        remove_dir_if_present(&pod.qdisc_marker(ifname))?;
        remove_dir_if_present(&pod.clsact_if_marker(ifname))?;
        // Its only interface (a pod's usual DEL): the directory is empty now
        // and goes in one step, not listed four times over for what a
        // previous layout may have left there.
        match std::fs::remove_dir(pod.dir()) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(_) => {}
        }
        if pod.has_iface_pins(&link_names()) {
            return Ok(());
        }
    }
    remove_pod_pins(pins, cookie).map(|_| ())
}

/// A clsact qdisc meshwire created on a pod's interface, left there bare by
/// [`detach_pod_leaving_qdisc`] (a DEL) for [`remove_left_qdisc`] to delete
/// once the DEL is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftQdisc {
    pub cookie: u64,
    pub netns: PathBuf,
    pub ifname: String,
}

/// [`detach_pod`] of one interface for a DEL that is answered before the
/// qdisc goes: meshwire's filters, tcx links, and with them everything that
/// steers the pod, go now; a clsact qdisc meshwire created, with nothing
/// else on it, stays bare and is returned, to be deleted by
/// [`remove_left_qdisc`] after the answer. Deleting a qdisc of an interface
/// that is up waits for an RCU grace period under RTNL (the kernel's
/// `dev_deactivate`, `synchronize_rcu_expedited`), which taking its filters
/// off does not: on a busy node that wait, and the wait for a CPU after it,
/// were most of a DEL's tail. The qdisc's markers stay until then, so a
/// loader killed in between finds the qdisc at its restart as it finds the
/// filters of any pod without a record ([`detach_orphans`], adoption's
/// sweep); a bare clsact qdisc steers nothing meanwhile, and goes with the
/// interface when the runtime deletes the pod's namespace.
pub fn detach_pod_leaving_qdisc(pins: &Pins, cookie: u64, netns: &Path, ifname: &str) -> Result<Option<LeftQdisc>, Error> {
    if ifname.is_empty() || !pins.root().exists() {
        detach_pod(pins, cookie, Some((netns, ifname)))?;
        return Ok(None);
    }
    let _lock = lock(pins)?;
    let marker = pins.pod(cookie).qdisc_marker_for(ifname);
    let reached = in_pod_netns(netns, cookie, ifname, move |ifindex| remove_filters_leaving_qdisc(ifindex, &marker));
    let left = match reached? {
        Reach::Done(left) => left,
        Reach::Unreachable(why) => {
            log::debug!("pod {cookie}: no clsact filters to remove ({why})");
            false
        }
    };
    let removed = if left {
        remove_iface_links(&pins.pod(cookie), ifname).map(|_| ())
    } else {
        remove_pins_of(pins, cookie, Some(ifname))
    };
    timing::mark("tc detach");
    removed.map(|()| left.then(|| LeftQdisc { cookie, netns: netns.to_path_buf(), ifname: ifname.to_string() }))
}

/// In the pod's netns: as [`remove_filters_here`], but a qdisc meshwire
/// created with no other filter on it keeps its place: meshwire's filters
/// are taken off it (what deleting it would have removed) and it stays.
/// Ok(true): it was left so.
fn remove_filters_leaving_qdisc(ifindex: u32, marker: &Path) -> Result<bool, Error> {
    if marker.exists() && clsact::other_filters(ifindex)?.is_empty() {
        for tc in TC_PROGRAMS {
            clsact::remove_at_place(ifindex, tc.ingress)?;
        }
        return Ok(true);
    }
    remove_filters_here(ifindex, marker).map(|()| false)
}

/// After the DEL's answer: the qdisc [`detach_pod_leaving_qdisc`] left goes
/// if it is still bare, with its markers (and the pod's directory with its
/// last interface). Meshed again since (meshwire's filter on it): it stays,
/// markers and all. Someone else's filters on it: theirs now, it stays and
/// its markers go, as in [`remove_filters_here`]. Gone with the namespace or
/// the interface, or removed already (a restart's sweep, `cleanup`): only
/// what is left of the markers goes.
pub fn remove_left_qdisc(pins: &Pins, left: &LeftQdisc) -> Result<(), Error> {
    let _lock = lock(pins)?;
    let marker = pins.pod(left.cookie).qdisc_marker_for(&left.ifname);
    if !marker.exists() {
        return Ok(());
    }
    let reached = in_pod_netns(&left.netns, left.cookie, &left.ifname, |ifindex| {
        Ok(match clsact::holds(ifindex)? {
            clsact::Holds::Nothing => {
                clsact::remove_qdisc(ifindex)?;
                true
            }
            clsact::Holds::Ours => false,
            clsact::Holds::OthersOnly => true,
        })
    })?;
    match reached {
        Reach::Done(false) => Ok(()),
        Reach::Done(true) | Reach::Unreachable(_) => remove_pins_of(pins, left.cookie, Some(&left.ifname)),
    }
}

/// The link names of the tc programs (pins.rs's pod layout is by them).
fn link_names() -> Vec<&'static str> {
    TC_PROGRAMS.iter().map(|tc| tc.link).collect()
}

/// meshwire's clsact filters on the pod's interface, if it is still there.
fn remove_filters(pins: &Pins, cookie: u64, iface: Option<(&Path, &str)>) -> Result<(), Error> {
    let Some((netns, ifname)) = iface.filter(|(_, i)| !i.is_empty()) else {
        return Ok(());
    };
    let marker = pins.pod(cookie).qdisc_marker_for(ifname);
    match in_pod_netns(netns, cookie, ifname, move |ifindex| remove_filters_here(ifindex, &marker))? {
        Reach::Done(()) => Ok(()),
        Reach::Unreachable(why) => {
            log::debug!("pod {cookie}: no clsact filters to remove ({why})");
            Ok(())
        }
    }
}

/// In the pod's netns: meshwire's filters off the interface, then the qdisc
/// if `marker` says meshwire created it and no other filter is on it (with
/// other filters there it is theirs now: the marker goes, the qdisc stays).
/// When the qdisc goes, its filters go with it in the same netlink request:
/// meshwire's are not taken off one by one first (a pod's DEL is then three
/// netlink requests, not nine).
fn remove_filters_here(ifindex: u32, marker: &Path) -> Result<(), Error> {
    if marker.exists() {
        let others = clsact::other_filters(ifindex)?;
        if others.is_empty() {
            clsact::remove_qdisc(ifindex)?;
            return remove_dir_if_present(marker);
        }
        log::info!("ifindex {ifindex}: keeping the clsact qdisc meshwire created, other filters are on it: {}", others.join("; "));
    }
    for tc in TC_PROGRAMS {
        clsact::detach(ifindex, tc.ingress, tc.program)?;
    }
    remove_dir_if_present(marker)
}

fn remove_dir_if_present(path: &Path) -> Result<(), Error> {
    match std::fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::os(format_args!("removing {}", path.display()), &e)),
    }
}

/// For CHECK: the pod's programs are attached, as both tcx links (pinned) or
/// else as both of meshwire's clsact filters on its interface.
/// Err: Inconsistent, saying what is not in place, or the reason it could
/// not be looked at.
pub fn check_pod(pins: &Pins, cookie: u64, netns: &Path, ifname: &str) -> Result<(), Error> {
    let pod = pins.pod(cookie);
    let links: Vec<PathBuf> = TC_PROGRAMS.iter().map(|tc| pod.link(tc.link, ifname)).collect();
    match links.iter().find(|l| !l.exists()) {
        None => return Ok(()),
        Some(missing) if links.iter().any(|l| l.exists()) => return Err(Error::Inconsistent(format!("tc link {} is missing", missing.display()))),
        Some(_) => {}
    }
    let slots = match in_pod_netns(netns, cookie, ifname, |ifindex| TC_PROGRAMS.iter().map(|tc| clsact::slot(ifindex, tc.ingress, tc.program)).collect::<Result<Vec<_>, _>>())? {
        Reach::Done(s) => s,
        // Not attached where it should be: CHECK says so.
        Reach::Unreachable(why) => return Err(Error::Inconsistent(why.message().to_string())),
    };
    for (tc, slot) in TC_PROGRAMS.iter().zip(slots) {
        let side = if tc.ingress { "ingress" } else { "egress" };
        match slot {
            clsact::Slot::Ours(_) => {}
            clsact::Slot::Empty => {
                return Err(Error::Inconsistent(format!("{} is attached neither as a tcx link ({} is missing) nor as meshwire's clsact {side} filter on {ifname}", tc.program, pod.link(tc.link, ifname).display())))
            }
            clsact::Slot::Other(what) => return Err(Error::Inconsistent(format!("{ifname}: meshwire's clsact {side} place holds {what}, not {}", tc.program))),
        }
    }
    Ok(())
}

/// Links at `paths`, detached and unpinned; returns the paths removed.
fn remove_link_pins(paths: impl Iterator<Item = PathBuf>) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    for path in paths {
        remove_if_present(&temp_pin(&path))?;
        libbpf::detach_pinned_link(&path)?;
        if remove_if_present(&path)? {
            removed.push(path);
        }
    }
    Ok(removed)
}

/// One interface's tcx links.
fn remove_iface_links(pod: &PodPins, ifname: &str) -> Result<Vec<PathBuf>, Error> {
    remove_link_pins(TC_PROGRAMS.iter().map(|tc| pod.link(tc.link, ifname)))
}

/// Every tcx link of a pod (both layouts).
fn remove_links(pod: &PodPins) -> Result<Vec<PathBuf>, Error> {
    let legacy = TC_PROGRAMS.iter().map(|tc| pod.legacy_link(tc.link));
    let suffixed = TC_PROGRAMS.iter().flat_map(|tc| pod.links_of(tc.link).into_iter().filter(|p| *p != pod.legacy_link(tc.link)));
    remove_link_pins(legacy.chain(suffixed))
}

/// What `detach_pod` removes from bpffs, without taking the lock; returns
/// the paths. The qdisc marker goes too: who asks this without the pod's
/// interface cannot reach the qdisc anyway.
fn remove_pod_pins(pins: &Pins, cookie: u64) -> Result<Vec<PathBuf>, Error> {
    let pod = pins.pod(cookie);
    let dir = pod.dir();
    let removed = remove_links(&pod)?;
    remove_dir_if_present(&pod.legacy_qdisc_marker())?;
    for ifname in pod.clsact_ifnames() {
        remove_dir_if_present(&pod.clsact_if_marker(&ifname))?;
    }
    for m in pod.qdisc_markers() {
        remove_dir_if_present(&m)?;
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::os(format_args!("removing {}", dir.display()), &e).map_message(|m| format!("{m} (files there are not meshwire's)"))),
    }
    Ok(removed)
}

/// For `cleanup`, after the pods with records were detached: pods whose
/// pins say they have clsact filters but no record said where (the records
/// were lost). Their namespaces are looked for, by cookie, among those mounted
/// in `netns_dirs` (where CNI runtimes mount pods' namespaces, /run/netns);
/// the filters found go as `detach_pod` removes them. Returns the pods
/// detached; a pod whose namespace is not found keeps nothing but its pins,
/// which cleanup removes next. Also for adoption's sweep, with the cookies
/// of the pods it has records of in `known` (those are left alone): a loader
/// killed in the middle of an ADD may have attached the filters and not
/// written the record.
pub fn detach_orphans(pins: &Pins, netns_dirs: &[&Path], known: &[u64]) -> Result<usize, Error> {
    let orphans: Vec<(u64, Vec<String>)> = pod_cookies(pins)
        .into_iter()
        .filter(|c| !known.contains(c))
        .map(|c| (c, pins.pod(c).clsact_ifnames()))
        .filter(|(_, ifs)| !ifs.is_empty())
        .collect();
    if orphans.is_empty() {
        return Ok(0);
    }
    // Each mounted namespace's cookie, read once (entering it), whatever
    // the number of orphans: a loader killed right after a burst of DELs
    // leaves one per DEL of its last second (their qdiscs, queued for the
    // reaper), and reading every namespace's cookie again for each of them
    // made a restart on a node of 1,000 pods take seconds. The first path
    // of a namespace mounted twice (/var/run is usually /run) names it.
    let mut mounted: HashMap<u64, PathBuf> = HashMap::new();
    for dir in netns_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for path in entries.flatten().map(|e| e.path()) {
            if let Ok(cookie) = system::netns_cookie(&path) {
                mounted.entry(cookie).or_insert(path);
            }
        }
    }
    let mut detached = 0;
    for (cookie, ifnames) in orphans {
        let Some(netns) = mounted.get(&cookie) else {
            log::info!("pod {cookie}: clsact filters recorded on {ifnames:?}, but no network namespace with that cookie is mounted under {netns_dirs:?}");
            continue;
        };
        for ifname in &ifnames {
            detach_pod(pins, cookie, Some((netns, ifname)))?;
        }
        log::info!("pod {cookie}: removed meshwire's clsact filters on {ifnames:?} in {} (no pod record)", netns.display());
        detached += 1;
    }
    Ok(detached)
}

/// For `datapath::cleanup` (lock held): every pod's links and the program
/// pins. Returns the paths removed.
pub fn remove_all_pins(pins: &Pins) -> Result<Vec<PathBuf>, Error> {
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
#[path = "tc_tests/mod.rs"]
pub(super) mod tests;
