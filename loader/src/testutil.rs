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
