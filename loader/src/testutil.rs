//! Test fixtures that touch the real kernel and clean up after themselves.
//! Unit tests run as root (CI does); they never use /sys/fs/bpf or the
//! root cgroup directly.

use std::path::{Path, PathBuf};

use crate::system;

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("meshwire-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A bpffs mounted on a fresh temporary directory, unmounted on drop.
pub struct PrivateBpffs {
    dir: PathBuf,
}

impl PrivateBpffs {
    pub fn new() -> PrivateBpffs {
        let dir = std::env::temp_dir().join(unique("bpffs"));
        std::fs::create_dir_all(&dir).expect("create temp dir for bpffs");
        nix::mount::mount(Some("bpf"), &dir, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>)
            .unwrap_or_else(|e| panic!("mount bpffs at {} (kernel feature: bpffs; tests need root): {e}", dir.display()));
        PrivateBpffs { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PrivateBpffs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// An empty cgroup v2 directory under the cgroup2 mount, removed on drop.
pub struct TempCgroup {
    dir: PathBuf,
}

impl TempCgroup {
    pub fn new() -> TempCgroup {
        let root = system::cgroup2_mount().expect("cgroup2 mount (kernel feature: cgroup v2)");
        let dir = root.join(unique("cg"));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create cgroup {}: {e}", dir.display()));
        TempCgroup { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Run `f` on a thread of its own inside the (test's) network namespace at
/// `netns` (tests change per-thread state there, e.g. setfsuid); sockets
/// made there stay there.
pub fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(netns).unwrap();
    let path = netns.to_path_buf();
    std::thread::spawn(move || system::run_in_netns(file, &path, move |_| f()).unwrap()).join().unwrap()
}

/// Run the test `name` (its full path) again, alone, in a child process of
/// this test binary with `CHILD` set; true in that child (the caller then
/// does the work), false in the parent once the child passed and printed
/// `marker`. For what changes the whole process (RLIMIT_NOFILE).
pub fn in_child_process(name: &str, marker: &str) -> bool {
    const CHILD: &str = "MESHWIRE_TEST_CHILD";
    if std::env::var(CHILD).is_ok_and(|n| n == name) {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains(marker) && text.contains("1 passed"), "the child run of {name} failed:\n{text}");
    false
}

/// The process's open-files limit, lowered and put back (in a child
/// process: [`in_child_process`]).
pub struct NofileLimit(libc::rlimit);

impl NofileLimit {
    pub fn new() -> NofileLimit {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        NofileLimit(limit)
    }

    pub fn set(&self, n: u64) {
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &libc::rlimit { rlim_cur: n, rlim_max: self.0.rlim_max }) }, 0);
    }

    /// The limit put back as it was.
    pub fn restore(&self) {
        self.set(self.0.rlim_cur);
    }

    /// The lowest free descriptor (descriptors are given lowest first: with
    /// the limit there, no descriptor can be had; one above it, one can).
    pub fn lowest_free(&self) -> u64 {
        self.restore();
        std::os::fd::AsRawFd::as_raw_fd(&std::fs::File::open("/").unwrap()) as u64
    }
}
