//! What the loader needs from the host: bpffs, the cgroup2 mount, netns cookies.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub mod userns;

use crate::error::{Error, OrOs};

fn statfs_magic(path: &Path) -> io::Result<i64> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64)
}

/// The nearest existing directory at or above `path`.
fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/"))
}

/// Make sure `pin_dir` will be on bpffs: mount /sys/fs/bpf when it is the
/// standard mount point and nothing is mounted there yet.
pub fn ensure_bpffs(pin_dir: &Path) -> Result<(), Error> {
    let anc = existing_ancestor(pin_dir);
    let magic = statfs_magic(anc).or_os(|| format!("statfs {}", anc.display()))?;
    if magic == libc::BPF_FS_MAGIC as i64 {
        return Ok(());
    }
    // Only the standard mount point is mounted on the user's behalf.
    let std_mount = Path::new("/sys/fs/bpf");
    if pin_dir.starts_with(std_mount) && std_mount.is_dir() && (anc == std_mount || std_mount.starts_with(anc)) {
        nix::mount::mount(Some("bpf"), std_mount, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>)
            .or_os(|| format!("mounting bpffs at {}", std_mount.display()))?;
        log::info!("mounted bpffs at {}", std_mount.display());
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "pin directory {} is not on a bpffs mount; mount one (mount -t bpf bpf DIR) or set bpf.pin_dir under /sys/fs/bpf",
        pin_dir.display()
    )))
}

/// The cgroup2 mount point, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> Result<PathBuf, Error> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").or_os(|| "reading /proc/self/mountinfo")?;
    parse_cgroup2_mount(&text)
        .ok_or_else(|| Error::NotFound("no cgroup2 filesystem is mounted (kernel feature: cgroup v2); mount one with `mount -t cgroup2 none DIR`".to_string()))
}

fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (pre, post) = line.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        // Field 5 is the mount point; octal escapes as in \040 for spaces.
        let mnt = pre.split_whitespace().nth(4)?;
        Some(PathBuf::from(mnt.replace("\\040", " ")))
    })
}

/// An open cgroup v2 directory and its id.
pub struct Cgroup {
    pub path: PathBuf,
    pub file: File,
    pub id: u64,
}

impl Cgroup {
    pub fn open(path: &Path) -> Result<Cgroup, Error> {
        let magic = statfs_magic(path).or_os(|| format!("cgroup {}", path.display()))?;
        if magic != libc::CGROUP2_SUPER_MAGIC as i64 {
            let mount = cgroup2_mount().map(|p| p.display().to_string()).unwrap_or_else(|e| e.to_string());
            return Err(Error::Invalid(format!("{} is not a cgroup v2 directory (the cgroup2 mount is at {mount})", path.display())));
        }
        let file = File::open(path).or_os(|| format!("opening cgroup {}", path.display()))?;
        // On cgroup2 the directory's inode number is the cgroup id.
        let id = file.metadata().or_os(|| format!("stat {}", path.display()))?.ino();
        Ok(Cgroup { path: path.to_path_buf(), file, id })
    }
}

impl std::os::fd::AsRawFd for Cgroup {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

/// Open `netns` and make sure it is a network namespace, without ever
/// blocking: O_NONBLOCK, so a FIFO (or a device) at that path cannot wedge
/// the caller, then nsfs (statfs) and NS_GET_NSTYPE = CLONE_NEWNET.
pub fn open_netns(netns: &Path) -> Result<File, Error> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703; // _IO(0xb7, 0x3)
    let shown = netns.display();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(netns)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NetnsGone(format!("opening network namespace {shown}: {e}")),
            _ => Error::os(format_args!("opening network namespace {shown}"), &e),
        })?;
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } != 0 {
        return Err(Error::os(format_args!("{shown}: statfs"), &io::Error::last_os_error()));
    }
    if fs.f_type as i64 != NSFS_MAGIC {
        return Err(Error::Invalid(format!("{shown} is not a network namespace (not a namespace file of nsfs)")));
    }
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind != libc::CLONE_NEWNET {
        return Err(Error::Invalid(format!("{shown} is a namespace, but not a network namespace")));
    }
    Ok(file)
}

/// The cookie of the network namespace behind `netns` (e.g. /run/netns/x or
/// /proc/PID/ns/net).
pub fn netns_cookie(netns: &Path) -> Result<u64, Error> {
    run_in_netns(open_netns(netns)?, &netns.display().to_string(), Ok)
}

/// The one way the loader works inside another network namespace: the
/// calling thread enters `netns` (an open namespace file, shown as `shown`
/// in errors; setns() moves only the calling thread), runs `f` there and
/// goes back to the namespace it was in, also when `f` fails or panics (a
/// panic is returned as an error). `f` is given the namespace's cookie, so
/// callers can check it is the namespace they mean before touching anything.
/// `E`: the caller's error type (its own failures are said in words).
///
/// It used to be a thread of its own per call: a spawn and a join are two
/// hand-offs to the scheduler, and on a busy node each waits for a CPU (a pod's
/// ADD made two such threads, its DEL one). A thread that cannot go back
/// would go on working in the pod's namespace, so the process aborts then
/// (a restarted loader adopts its pods); with the loader's own namespace file
/// open, setns() back has no reason to fail.
pub fn run_in_netns<T, E: From<String>>(netns: File, shown: &str, f: impl FnOnce(u64) -> Result<T, E>) -> Result<T, E> {
    let home = File::open("/proc/thread-self/ns/net").map_err(|e| format!("opening this thread's network namespace: {e}"))?;
    nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("{shown} is not a network namespace I can enter: {e}"))?;
    let _back = GoBack(home);
    let cookie = current_netns_cookie().map_err(|e| format!("reading the cookie of {shown}: {e} (kernel feature: SO_NETNS_COOKIE, Linux 5.14)"))?;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(cookie))).map_err(|_| E::from(format!("the work in network namespace {shown} panicked")))?
}

/// Takes the thread back to the network namespace it came from when dropped.
struct GoBack(File);

impl Drop for GoBack {
    fn drop(&mut self) {
        if let Err(e) = nix::sched::setns(self.0.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET) {
            log::error!("cannot go back to the loader's network namespace after working in a pod's ({e}); aborting rather than work in the wrong one");
            std::process::abort();
        }
    }
}

/// A thread of [`each_in_netns`]'s, which the work moves from one network
/// namespace to another.
pub struct NetnsThread {
    _only_each_in_netns: (),
}

impl NetnsThread {
    /// Enter the network namespace at `netns` (checked as [`open_netns`]
    /// does) on this thread; its cookie. NetnsGone when the path is gone.
    pub fn enter(&mut self, netns: &Path) -> Result<u64, Error> {
        let file = open_netns(netns)?;
        let shown = netns.display();
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Internal(format!("{shown} is not a network namespace I can enter: {e}")))?;
        current_netns_cookie().map_err(|e| Error::Internal(format!("reading the cookie of {shown}: {e} (kernel feature: SO_NETNS_COOKIE, Linux 5.14)")))
    }
}

/// `f` for each of `items`, on `threads` threads of their own that `f` moves
/// between network namespaces ([`NetnsThread::enter`]) and that end with the
/// work, so the rest of the process stays where it is (setns() moves only
/// the calling thread). Thousands of pods cost `threads` threads rather than
/// one each, and their namespaces are worked in at once. Answers in the
/// items' order; None for an item whose thread panicked before answering.
pub fn each_in_netns<I: Sync, T: Send>(items: &[I], threads: usize, f: impl Fn(&mut NetnsThread, &I) -> T + Sync) -> Vec<Option<T>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let mut answers: Vec<Option<T>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    let done: Vec<Vec<(usize, T)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.clamp(1, items.len().max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut thread = NetnsThread { _only_each_in_netns: () };
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { return out };
                        out.push((i, f(&mut thread, item)));
                    }
                })
            })
            .collect();
        workers.into_iter().filter_map(|w| w.join().ok()).collect()
    });
    for (i, t) in done.into_iter().flatten() {
        answers[i] = Some(t);
    }
    answers
}

/// Cookie of the calling thread's network namespace.
pub fn current_netns_cookie() -> io::Result<u64> {
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    let ret = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, 71 /* SO_NETNS_COOKIE */, &mut cookie as *mut u64 as *mut libc::c_void, &mut len) };
    let err = io::Error::last_os_error();
    unsafe { libc::close(fd) };
    if ret != 0 {
        return Err(err);
    }
    Ok(cookie)
}

/// Cookies of namespaces that must never be meshed: the one the loader runs
/// in (the host's, on a node) and PID 1's when this process may read it.
/// Neither changes while the process lives: read once.
pub fn host_netns_cookies() -> Result<Vec<u64>, String> {
    static HOST: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    if let Some(c) = HOST.get() {
        return Ok(c.clone());
    }
    let mut cookies = vec![current_netns_cookie().map_err(|e| format!("reading the loader's own netns cookie: {e}"))?];
    if let Ok(c) = netns_cookie(Path::new("/proc/1/ns/net")) {
        cookies.push(c);
    }
    Ok(HOST.get_or_init(|| cookies).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_in_hybrid_mountinfo() {
        let mi = "25 30 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                  26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
                  27 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(parse_cgroup2_mount(mi), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(parse_cgroup2_mount("25 30 0:22 / /sys/fs/cgroup rw - cgroup cgroup rw\n"), None);
    }

    #[test]
    fn netns_cookie_of_self_matches_current() {
        let via_path = netns_cookie(Path::new("/proc/self/ns/net")).unwrap();
        assert_eq!(via_path, current_netns_cookie().unwrap());
        assert_ne!(via_path, 0);
    }

    #[test]
    fn netns_cookie_of_a_regular_file_is_refused() {
        let e = netns_cookie(Path::new("/proc/self/status")).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)) && e.message().contains("not a network namespace"), "{e:?}");
    }
}
