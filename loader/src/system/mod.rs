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

/// Why the loader could not work in (or read) a network namespace. Each
/// names the namespace as the caller gave it (a path such as /run/netns/x or
/// /proc/PID/ns/net) and, where a system call failed, its errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsError {
    /// Nothing is at the path (ENOENT): the pod's namespace is gone.
    Gone { netns: PathBuf },
    /// The path is there but could not be opened.
    Open { netns: PathBuf, errno: i32 },
    /// The file is not a namespace file (not on nsfs).
    NotANamespace { netns: PathBuf },
    /// A namespace, of another kind than network (mount, uts, user...).
    NotNetwork { netns: PathBuf },
    /// setns() refused to enter it.
    Enter { netns: PathBuf, errno: i32 },
    /// Its cookie (SO_NETNS_COOKIE) could not be read; `netns` None: the
    /// namespace the loader itself runs in.
    Cookie { netns: Option<PathBuf>, errno: i32 },
    /// The calling thread's own namespace could not be opened, so it could
    /// not have come back: nothing was entered.
    Home { errno: i32 },
    /// The work done inside panicked; the thread went back.
    Panicked { netns: PathBuf },
}

impl NetnsError {
    /// The errno behind it, if a system call failed.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetnsError::Open { errno, .. } | NetnsError::Enter { errno, .. } | NetnsError::Cookie { errno, .. } | NetnsError::Home { errno } => Some(*errno),
            NetnsError::Gone { .. } => Some(libc::ENOENT),
            NetnsError::NotANamespace { .. } | NetnsError::NotNetwork { .. } | NetnsError::Panicked { .. } => None,
        }
    }
}

impl std::fmt::Display for NetnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let os = |errno: &i32| io::Error::from_raw_os_error(*errno);
        match self {
            NetnsError::Gone { netns } => {
                write!(f, "opening network namespace {}: it does not exist (the pod's sandbox is gone, or the path is wrong)", netns.display())
            }
            NetnsError::Open { netns, errno } => write!(f, "opening network namespace {}: {}", netns.display(), os(errno)),
            NetnsError::NotANamespace { netns } => write!(
                f,
                "{} is not a network namespace (not a namespace file of nsfs); give a path like /run/netns/NAME or /proc/PID/ns/net",
                netns.display()
            ),
            NetnsError::NotNetwork { netns } => {
                write!(f, "{} is a namespace, but not a network namespace; give the pod's network namespace (/proc/PID/ns/net, not another ns/ file)", netns.display())
            }
            NetnsError::Enter { netns, errno } => write!(f, "{} is not a network namespace I can enter: {} (setns)", netns.display(), os(errno)),
            NetnsError::Cookie { netns, errno } => {
                match netns {
                    Some(p) => write!(f, "reading the cookie of {}: {}", p.display(), os(errno))?,
                    None => write!(f, "reading the loader's own netns cookie: {}", os(errno))?,
                }
                match *errno {
                    libc::ENOPROTOOPT => f.write_str(" (kernel feature: SO_NETNS_COOKIE, Linux 5.14; run meshwire on a newer kernel)"),
                    libc::EMFILE | libc::ENFILE => f.write_str(" (out of file descriptors: raise the loader's open-files limit)"),
                    _ => Ok(()),
                }
            }
            NetnsError::Home { errno } => write!(f, "opening this thread's network namespace (/proc/thread-self/ns/net): {}; nothing was entered", os(errno)),
            NetnsError::Panicked { netns } => write!(f, "the work in network namespace {} panicked (a bug: see the loader's log)", netns.display()),
        }
    }
}

impl std::error::Error for NetnsError {}

/// By what the caller can do: a gone namespace is NetnsGone, a path that is
/// no network namespace Invalid, a failed system call Os (errno kept), a
/// panic Internal.
impl From<NetnsError> for Error {
    fn from(e: NetnsError) -> Error {
        let message = e.to_string();
        match e {
            NetnsError::Gone { .. } => Error::NetnsGone(message),
            NetnsError::NotANamespace { .. } | NetnsError::NotNetwork { .. } => Error::Invalid(message),
            NetnsError::Open { errno, .. } | NetnsError::Enter { errno, .. } | NetnsError::Cookie { errno, .. } | NetnsError::Home { errno } => {
                Error::Os { errno, message }
            }
            NetnsError::Panicked { .. } => Error::Internal(message),
        }
    }
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// Open `netns` and make sure it is a network namespace, without ever
/// blocking: O_NONBLOCK, so a FIFO (or a device) at that path cannot wedge
/// the caller, then nsfs (statfs) and NS_GET_NSTYPE = CLONE_NEWNET.
pub fn open_netns(netns: &Path) -> Result<File, NetnsError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703; // _IO(0xb7, 0x3)
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(netns)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => NetnsError::Gone { netns: netns.to_path_buf() },
            errno => NetnsError::Open { netns: netns.to_path_buf(), errno: errno.unwrap_or(libc::EIO) },
        })?;
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } != 0 {
        return Err(NetnsError::Open { netns: netns.to_path_buf(), errno: last_errno() });
    }
    if fs.f_type as i64 != NSFS_MAGIC {
        return Err(NetnsError::NotANamespace { netns: netns.to_path_buf() });
    }
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind != libc::CLONE_NEWNET {
        return Err(NetnsError::NotNetwork { netns: netns.to_path_buf() });
    }
    Ok(file)
}

/// The cookie of the network namespace behind `netns` (e.g. /run/netns/x or
/// /proc/PID/ns/net).
pub fn netns_cookie(netns: &Path) -> Result<u64, NetnsError> {
    run_in_netns(open_netns(netns)?, netns, |cookie| cookie)
}

/// The one way the loader works inside another network namespace: the
/// calling thread enters `netns` (an open namespace file, `path` naming it
/// in errors; setns() moves only the calling thread), runs `f` there and
/// goes back to the namespace it was in, also when `f` panics (a panic is
/// returned as [`NetnsError::Panicked`]). `f` is given the namespace's
/// cookie, so callers can check it is the namespace they mean before
/// touching anything. What `f` returns (its own Result, if it can fail) is
/// returned as is: Err is only for entering, reading the cookie or a panic.
///
/// It used to be a thread of its own per call: a spawn and a join are two
/// hand-offs to the scheduler, and on a busy node each waits for a CPU (a pod's
/// ADD made two such threads, its DEL one). A thread that cannot go back
/// would go on working in the pod's namespace, so the process aborts then
/// (a restarted loader adopts its pods); with the loader's own namespace file
/// open, setns() back has no reason to fail.
pub fn run_in_netns<T>(netns: File, path: &Path, f: impl FnOnce(u64) -> T) -> Result<T, NetnsError> {
    let home = File::open("/proc/thread-self/ns/net").map_err(|e| NetnsError::Home { errno: e.raw_os_error().unwrap_or(libc::EIO) })?;
    nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Enter { netns: path.to_path_buf(), errno: e as i32 })?;
    let _back = GoBack(home);
    let cookie = current_netns_cookie().map_err(|e| NetnsError::Cookie { netns: Some(path.to_path_buf()), errno: e.raw_os_error().unwrap_or(libc::EIO) })?;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(cookie))).map_err(|_| NetnsError::Panicked { netns: path.to_path_buf() })
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
    /// does) on this thread; its cookie. Gone when the path is gone.
    pub fn enter(&mut self, netns: &Path) -> Result<u64, NetnsError> {
        let file = open_netns(netns)?;
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Enter { netns: netns.to_path_buf(), errno: e as i32 })?;
        current_netns_cookie().map_err(|e| NetnsError::Cookie { netns: Some(netns.to_path_buf()), errno: e.raw_os_error().unwrap_or(libc::EIO) })
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
pub fn host_netns_cookies() -> Result<Vec<u64>, NetnsError> {
    static HOST: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    if let Some(c) = HOST.get() {
        return Ok(c.clone());
    }
    let own = current_netns_cookie().map_err(|e| NetnsError::Cookie { netns: None, errno: e.raw_os_error().unwrap_or(libc::EIO) })?;
    let mut cookies = vec![own];
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

    /// A network namespace of its own, held open: a thread unshares one and
    /// hands over its namespace file, then ends.
    fn fresh_netns() -> File {
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            File::open("/proc/thread-self/ns/net").unwrap()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_path_that_is_gone_is_gone_and_the_caller_sees_netns_gone() {
        let path = Path::new("/run/netns/meshwire-no-such-netns");
        let e = open_netns(path).unwrap_err();
        assert_eq!(e, NetnsError::Gone { netns: path.to_path_buf() });
        assert_eq!(netns_cookie(path).unwrap_err(), e);
        let loader = Error::from(e);
        assert!(matches!(&loader, Error::NetnsGone(m) if m.starts_with("opening network namespace /run/netns/meshwire-no-such-netns: it does not exist")), "{loader:?}");
    }

    #[test]
    fn a_path_that_cannot_be_opened_keeps_its_errno() {
        // A regular file's "child": ENOTDIR, not ENOENT (not gone).
        let path = Path::new("/proc/self/status/net");
        let e = open_netns(path).unwrap_err();
        assert_eq!(e, NetnsError::Open { netns: path.to_path_buf(), errno: libc::ENOTDIR });
        let loader = Error::from(e);
        assert_eq!(loader.errno(), Some(libc::ENOTDIR), "{loader:?}");
        assert!(loader.message().contains("/proc/self/status/net"), "{loader}");
    }

    #[test]
    fn a_file_that_is_no_namespace_and_a_namespace_of_another_kind_are_refused() {
        let e = netns_cookie(Path::new("/proc/self/status")).unwrap_err();
        assert_eq!(e, NetnsError::NotANamespace { netns: "/proc/self/status".into() });
        assert!(matches!(Error::from(e.clone()), Error::Invalid(m) if m.contains("is not a network namespace") && m.contains("/proc/PID/ns/net")), "{e}");
        let e = open_netns(Path::new("/proc/self/ns/uts")).unwrap_err();
        assert_eq!(e, NetnsError::NotNetwork { netns: "/proc/self/ns/uts".into() });
        assert!(matches!(Error::from(e), Error::Invalid(m) if m.contains("not a network namespace")));
    }

    #[test]
    fn run_in_netns_works_in_the_other_namespace_and_comes_back() {
        let own = current_netns_cookie().unwrap();
        let (there, seen) = run_in_netns(fresh_netns(), Path::new("fresh"), |cookie| (cookie, current_netns_cookie().unwrap())).unwrap();
        assert_eq!(there, seen, "f is given the cookie of the namespace it runs in");
        assert_ne!(there, own);
        assert_eq!(current_netns_cookie().unwrap(), own, "back home");
    }

    #[test]
    fn a_namespace_setns_refuses_is_an_enter_error_and_nothing_moves() {
        // Opened without open_netns's checks: setns(CLONE_NEWNET) on a UTS
        // namespace fails with EINVAL.
        let own = current_netns_cookie().unwrap();
        let uts = File::open("/proc/self/ns/uts").unwrap();
        let mut ran = false;
        let e = run_in_netns(uts, Path::new("/proc/self/ns/uts"), |_| ran = true).unwrap_err();
        assert_eq!(e, NetnsError::Enter { netns: "/proc/self/ns/uts".into(), errno: libc::EINVAL });
        assert!(!ran);
        assert_eq!(current_netns_cookie().unwrap(), own);
        assert!(matches!(Error::from(e), Error::Os { errno: libc::EINVAL, message } if message.contains("not a network namespace I can enter")));
    }

    #[test]
    fn work_that_panics_inside_is_a_panicked_error_and_the_thread_comes_back() {
        let own = current_netns_cookie().unwrap();
        let e = run_in_netns(fresh_netns(), Path::new("fresh"), |_| -> () { panic!("deliberately") }).unwrap_err();
        assert_eq!(e, NetnsError::Panicked { netns: "fresh".into() });
        assert_eq!(current_netns_cookie().unwrap(), own, "back home after the panic");
        assert!(matches!(Error::from(e), Error::Internal(m) if m.contains("panicked")));
    }

    /// Out of file descriptors (RLIMIT_NOFILE lowered to just above what is
    /// open), a cookie cannot be read: in a pod's namespace (its socket is
    /// refused once the thread's own namespace file is open), the loader's
    /// own (host_netns_cookies, not cached yet in a fresh process), and
    /// with no descriptor at all the thread's own namespace cannot be opened,
    /// so nothing is entered. The limit is the process's: this runs in a
    /// child process of its own (this test binary again, this test only).
    #[test]
    fn a_cookie_that_cannot_be_read_is_a_cookie_error() {
        if !crate::testutil::in_child_process("system::tests::a_cookie_that_cannot_be_read_is_a_cookie_error", "child: 3 cases checked") {
            return;
        }
        let own = current_netns_cookie().unwrap();
        let path = Path::new("/proc/self/ns/net");
        let (for_home, for_cookie) = (open_netns(path).unwrap(), open_netns(path).unwrap());
        let limit = crate::testutil::NofileLimit::new();
        let (set, lowest_free) = (|n| limit.set(n), || limit.lowest_free());

        set(lowest_free());
        let own_cookie = host_netns_cookies();
        set(lowest_free());
        let home = run_in_netns(for_home, path, |c| c);
        set(lowest_free() + 1);
        let cookie = run_in_netns(for_cookie, path, |c| c);
        limit.restore();

        let e = cookie.unwrap_err();
        assert_eq!(e, NetnsError::Cookie { netns: Some("/proc/self/ns/net".into()), errno: libc::EMFILE });
        assert!(e.to_string().contains("raise the loader's open-files limit"), "{e}");
        assert!(matches!(Error::from(e), Error::Os { errno: libc::EMFILE, .. }));
        assert_eq!(own_cookie.unwrap_err(), NetnsError::Cookie { netns: None, errno: libc::EMFILE });
        assert_eq!(home.unwrap_err(), NetnsError::Home { errno: libc::EMFILE });
        assert_eq!(current_netns_cookie().unwrap(), own);
        println!("child: 3 cases checked");
    }
}
