//! The node's loader lock: one `meshwire-loader run` at a time per state
//! directory (its pods, and so the pins and cgroup it serves).
//!
//! Taken before anything is read from or written to the pins, the cgroup or
//! the maps, so a second loader (a DaemonSet surge, an overlapping restart)
//! changes nothing while the first runs. It is a `flock` on
//! `<state_dir>/loader.lock`, which the kernel drops when the holder exits
//! however it exits (kill -9 included); the holder writes its PID and its
//! version ("PID VERSION") into the file so that a waiting loader can name it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, OrOs};

/// Held for the life of the process (dropping it releases the lock).
pub struct LoaderLock {
    _file: File,
}

pub const LOCK_FILE: &str = "loader.lock";

/// How often a waiting loader tries again (and looks for a stop signal).
const POLL: Duration = Duration::from_millis(100);

fn try_flock(f: &File, path: &Path) -> Result<bool, Error> {
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(Error::os(format_args!("loader lock {}: flock", path.display()), &e))
    }
}

/// Who holds the lock, as its file says: "pid N (comm), version V" (an
/// older loader wrote its PID only: then no version).
pub fn holder(path: &Path) -> String {
    let mut text = String::new();
    let _ = File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    let mut words = text.split_whitespace();
    match words.next().map(str::parse::<u32>) {
        Some(Ok(pid)) => {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let comm = comm.trim();
            let who = if comm.is_empty() { format!("pid {pid}") } else { format!("pid {pid} ({comm})") };
            match words.next() {
                Some(version) => format!("{who}, version {version}"),
                None => who,
            }
        }
        _ => "a process that has not written its PID yet".to_string(),
    }
}

/// Take the lock in `state_dir`. Held by another loader: with `wait`, try
/// again until it is free (logging the holder once) or `stop()` says to give
/// up; without, fail at once naming the holder.
pub fn acquire(state_dir: &Path, wait: bool, stop: impl Fn() -> bool) -> Result<LoaderLock, Error> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .or_os(|| format!("creating {}", state_dir.display()))?;
    let path: PathBuf = state_dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .or_os(|| format!("opening the loader lock {}", path.display()))?;
    if !try_flock(&file, &path)? {
        let who = holder(&path);
        if !wait {
            return Err(Error::Os {
                errno: libc::EWOULDBLOCK,
                message: format!("another meshwire-loader, {who}, holds the loader lock {}; not starting (--no-wait)", path.display()),
            });
        }
        log::info!("another meshwire-loader, {who}, holds the loader lock {}; waiting for it to stop", path.display());
        loop {
            if stop() {
                return Err(Error::Internal(format!("stopped while waiting for the loader lock {} ({who})", path.display())));
            }
            std::thread::sleep(POLL);
            if try_flock(&file, &path)? {
                break;
            }
        }
        log::info!("took over the loader lock {} from {who}", path.display());
    }
    let me = std::process::id();
    let write = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        f.write_all(format!("{me} {}\n", *crate::version::VERSION).as_bytes())
    };
    write(&mut file).or_os(|| format!("writing {}", path.display()))?;
    Ok(LoaderLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("meshwire-lock-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_held_lock_is_refused_at_once_naming_the_holder_or_waited_for() {
        let dir = temp();
        // Held by another open file (flock locks belong to open files, so
        // this conflicts with acquire's own open, as another process would),
        // whose holder wrote its PID as a loader does.
        let held = acquire(&dir, false, || false).expect("a free lock is taken");
        let me = std::process::id();
        let e = acquire(&dir, false, || false).err().expect("the lock is held");
        assert_eq!(e.errno(), Some(libc::EWOULDBLOCK), "{e}");
        let e = e.to_string();
        assert!(e.contains(&format!("pid {me} (")) && e.contains("--no-wait"), "{e}");
        assert!(e.contains(&format!("), version {},", *crate::version::VERSION)), "{e}");

        // Waiting: a stop request ends the wait without the lock.
        let stopped = acquire(&dir, true, || true).err().expect("stopped");
        assert!(stopped.to_string().contains("stopped while waiting"), "{stopped}");

        // Waiting: the holder goes, the waiter takes it.
        let d2 = dir.clone();
        let waiter = std::thread::spawn(move || acquire(&d2, true, || false));
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiter.is_finished(), "took a held lock");
        drop(held);
        let lock = waiter.join().unwrap().expect("taken over");
        assert_eq!(std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap(), format!("{me} {}\n", *crate::version::VERSION));
        drop(lock);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
