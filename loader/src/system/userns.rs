//! Which host UID is a pod's sidecar: a pod's network namespace may belong to
//! a user namespace of its own (Kubernetes `hostUsers: false`), whose UIDs
//! map to other host UIDs. iptables' owner match maps the rule's UID through
//! the namespace's owner; the eBPF datapath compares host UIDs, so the loader
//! maps `sidecar.uid` the same way when it meshes the pod.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::NetnsError;
use crate::error::Error;

/// Why the host UID of a pod's sidecar could not be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernsError {
    /// The pod's network namespace could not be opened.
    Netns(NetnsError),
    /// NS_GET_USERNS on it failed: which user namespace owns it is unknown.
    Owner { netns: PathBuf, errno: i32 },
    /// A user namespace could not be looked at (`what`: which one).
    Stat { what: String, errno: i32 },
    /// The uid_map of its user namespace could not be read (`step`: what
    /// failed; errno when a system call did).
    UidMap { netns: PathBuf, step: String, errno: Option<i32> },
    /// Its user namespace does not map `uid` (`map`: the uid_map's ranges).
    Unmapped { netns: PathBuf, uid: u32, map: String },
}

impl std::fmt::Display for UsernsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let os = |errno: &i32| io::Error::from_raw_os_error(*errno);
        match self {
            UsernsError::Netns(e) => e.fmt(f),
            UsernsError::Owner { netns, errno } => write!(f, "{}: its owning user namespace (NS_GET_USERNS): {}", netns.display(), os(errno)),
            UsernsError::Stat { what, errno } => write!(f, "stat of {what}: {}", os(errno)),
            UsernsError::UidMap { netns, step, errno: Some(errno) } => write!(f, "{}: the uid_map of its user namespace: {step}: {}", netns.display(), os(errno)),
            UsernsError::UidMap { netns, step, errno: None } => write!(f, "{}: the uid_map of its user namespace: {step}", netns.display()),
            UsernsError::Unmapped { netns, uid, map } => write!(
                f,
                "{} belongs to a user namespace whose uid_map ({map}) does not map sidecar.uid {uid}: no sidecar can run as it there, so none could be exempt from interception; give the pod a sidecar.uid its user namespace maps",
                netns.display()
            ),
        }
    }
}

impl std::error::Error for UsernsError {}

impl From<NetnsError> for UsernsError {
    fn from(e: NetnsError) -> UsernsError {
        UsernsError::Netns(e)
    }
}

/// An unmapped UID is the request's problem (Invalid); the namespace's as
/// [`NetnsError`] says; a failed system call Os with its errno.
impl From<UsernsError> for Error {
    fn from(e: UsernsError) -> Error {
        let message = e.to_string();
        match e {
            UsernsError::Netns(e) => e.into(),
            UsernsError::Unmapped { .. } => Error::Invalid(message),
            UsernsError::Owner { errno, .. } | UsernsError::Stat { errno, .. } | UsernsError::UidMap { errno: Some(errno), .. } => Error::Os { errno, message },
            UsernsError::UidMap { errno: None, .. } => Error::Internal(message),
        }
    }
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// _IO(0xb7, 0x1): the user namespace owning a namespace, as a new fd.
const NS_GET_USERNS: libc::c_ulong = 0xb701;

/// The user namespace owning the network namespace `netns` (an open nsfs
/// file), when it is not the loader's own; None when it is.
pub fn owner_of(netns: &File, path: &Path) -> Result<Option<File>, UsernsError> {
    let fd = unsafe { libc::ioctl(netns.as_raw_fd(), NS_GET_USERNS as _) };
    if fd < 0 {
        return Err(UsernsError::Owner { netns: path.to_path_buf(), errno: errno_of(&io::Error::last_os_error()) });
    }
    let userns = unsafe { File::from_raw_fd(fd) };
    let theirs = userns.metadata().map_err(|e| UsernsError::Stat { what: format!("the user namespace of {}", path.display()), errno: errno_of(&e) })?;
    let ours = std::fs::metadata("/proc/self/ns/user").map_err(|e| UsernsError::Stat { what: "/proc/self/ns/user".into(), errno: errno_of(&e) })?;
    Ok(((theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino())).then_some(userns))
}

/// `uid` of a uid_map (lines "inside outside count") as the outside sees it.
pub fn map_uid(uid_map: &str, uid: u32) -> Option<u32> {
    uid_map.lines().find_map(|line| {
        let f: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        let [inside, outside, count] = f[..] else { return None };
        let uid = u64::from(uid);
        (uid >= inside && uid - inside < count).then(|| u32::try_from(outside + (uid - inside)).ok()).flatten()
    })
}

/// The uid_map of `userns` relative to the loader's own user namespace: a
/// child process enters it and waits while this one reads
/// /proc/CHILD/uid_map (read from another user namespace, the map's second
/// column is in the reader's).
fn uid_map_of(userns: &File, netns: &Path) -> Result<String, UsernsError> {
    let failed = |step: String, errno: Option<i32>| UsernsError::UidMap { netns: netns.to_path_buf(), step, errno };
    let pipe = || -> Result<(OwnedFd, OwnedFd), UsernsError> {
        let mut fds = [0; 2];
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(failed("pipe".into(), Some(errno_of(&io::Error::last_os_error()))));
        }
        Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
    };
    let (ready_r, ready_w) = pipe()?;
    let (done_r, done_w) = pipe()?;
    let ns = userns.as_raw_fd();
    // SAFETY: the child calls only async-signal-safe system calls, then _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(failed("fork".into(), Some(errno_of(&io::Error::last_os_error()))));
    }
    if pid == 0 {
        unsafe {
            let status: u8 = if libc::setns(ns, libc::CLONE_NEWUSER) == 0 { 0 } else { *libc::__errno_location() as u8 };
            libc::write(ready_w.as_raw_fd(), &status as *const u8 as *const libc::c_void, 1);
            drop(ready_w);
            drop(done_w);
            let mut b = 0u8;
            // Until the parent closes its end (it read the map, or failed).
            libc::read(done_r.as_raw_fd(), &mut b as *mut u8 as *mut libc::c_void, 1);
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(done_r);
    let mut status = 0u8;
    let n = unsafe { libc::read(ready_r.as_raw_fd(), &mut status as *mut u8 as *mut libc::c_void, 1) };
    let result = match (n, status) {
        (1, 0) => std::fs::read_to_string(format!("/proc/{pid}/uid_map")).map_err(|e| failed(format!("reading /proc/{pid}/uid_map"), Some(errno_of(&e)))),
        (1, errno) => Err(failed("entering it (setns)".into(), Some(errno.into()))),
        _ => Err(failed("the child that enters it exited early".into(), None)),
    };
    drop(done_w);
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    result
}

/// The host UID of `uid` for processes of the pod whose network namespace
/// is `netns`: None when that namespace belongs to the loader's own user
/// namespace (the UID is the host's), Err when the pod's user namespace does
/// not map it (no process there can run as it).
pub fn host_uid(netns: &Path, uid: u32) -> Result<Option<u32>, UsernsError> {
    let file = super::open_netns(netns)?;
    let Some(userns) = owner_of(&file, netns)? else { return Ok(None) };
    let map = uid_map_of(&userns, netns)?;
    match map_uid(&map, uid) {
        Some(host) => Ok(Some(host)),
        None => Err(UsernsError::Unmapped {
            netns: netns.to_path_buf(),
            uid,
            map: map.split_whitespace().collect::<Vec<_>>().chunks(3).map(|c| c.join(" ")).collect::<Vec<_>>().join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_map_through_each_range_and_only_inside_it() {
        let map = "         0     100000      65536\n     65536      10000          1\n";
        assert_eq!(map_uid(map, 0), Some(100000));
        assert_eq!(map_uid(map, 1500), Some(101500));
        assert_eq!(map_uid(map, 65535), Some(165535));
        assert_eq!(map_uid(map, 65536), Some(10000));
        assert_eq!(map_uid(map, 65537), None);
        assert_eq!(map_uid("0 0 4294967295\n", 1500), Some(1500), "the initial namespace's map");
        assert_eq!(map_uid("", 1500), None);
    }

    #[test]
    fn the_loader_s_own_network_namespace_has_no_mapping() {
        assert_eq!(host_uid(Path::new("/proc/self/ns/net"), 1500).unwrap(), None);
    }

    /// A network namespace owned by a new user namespace mapping 0-65535 to
    /// 200000-265535: sidecar.uid 1500 is host 201500 there, 70000 unmapped.
    #[test]
    fn a_namespace_of_a_user_namespace_of_its_own_maps_the_uid() {
        let mut child = std::process::Command::new("unshare").args(["--user", "--net", "sleep", "30"]).spawn().expect("unshare(1)");
        let pid = child.id();
        let ns = format!("/proc/{pid}/ns/user");
        // Until the child has unshared (its user namespace differs from ours).
        let ours = std::fs::metadata("/proc/self/ns/user").unwrap().ino();
        for _ in 0..100 {
            if std::fs::metadata(&ns).map(|m| m.ino() != ours).unwrap_or(false) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::fs::write(format!("/proc/{pid}/uid_map"), "0 200000 65536\n").expect("writing uid_map");
        let netns = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
        let got = host_uid(&netns, 1500);
        let unmapped = host_uid(&netns, 70000);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(got.unwrap(), Some(201500));
        let e = unmapped.unwrap_err();
        assert_eq!(e, UsernsError::Unmapped { netns: netns.clone(), uid: 70000, map: "0 200000 65536".into() });
        assert!(e.to_string().contains("does not map sidecar.uid 70000"), "{e}");
        assert!(matches!(Error::from(e), Error::Invalid(m) if m.contains("0 200000 65536")));
    }

    #[test]
    fn a_gone_namespace_and_a_file_that_is_none_are_told_apart() {
        let gone = Path::new("/run/netns/meshwire-no-such-netns");
        let e = host_uid(gone, 1500).unwrap_err();
        assert_eq!(e, UsernsError::Netns(NetnsError::Gone { netns: gone.to_path_buf() }));
        assert!(matches!(Error::from(e), Error::NetnsGone(_)));
        // NS_GET_USERNS on a file that is no namespace: ENOTTY, a failed system call.
        let status = Path::new("/proc/self/status");
        let e = owner_of(&File::open(status).unwrap(), status).unwrap_err();
        assert_eq!(e, UsernsError::Owner { netns: status.to_path_buf(), errno: libc::ENOTTY });
        assert!(matches!(Error::from(e), Error::Os { errno: libc::ENOTTY, message } if message.contains("NS_GET_USERNS")));
    }
}
