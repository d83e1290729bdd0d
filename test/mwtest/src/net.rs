//! Small socket and process helpers shared by the peers.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;

/// SO_ORIGINAL_DST from <linux/netfilter_ipv4.h>; valid at level SOL_IP.
const SO_ORIGINAL_DST: libc::c_int = 80;

/// Binds a listener with a backlog large enough for hundreds of parallel connects.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    // Calling listen() again on a listening socket only raises its backlog.
    if unsafe { libc::listen(listener.as_raw_fd(), 4096) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(listener)
}

/// Accepts forever, handling each connection on a thread of its own.
/// `who` prefixes the error messages.
pub fn serve_each<F>(listener: TcpListener, who: &str, handle: F)
where
    F: Fn(TcpStream) + Clone + Send + 'static,
{
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{who}: accept: {e}");
                continue;
            }
        };
        let handle = handle.clone();
        if let Err(e) = thread::Builder::new().stack_size(128 * 1024).spawn(move || handle(stream)) {
            eprintln!("{who}: cannot start a thread: {e}");
        }
    }
}

/// getsockopt(SOL_IP, SO_ORIGINAL_DST): the destination the client asked for
/// before it was redirected to us.
pub fn original_dst(sock: &impl AsRawFd) -> io::Result<SocketAddrV4> {
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_IP,
            SO_ORIGINAL_DST,
            &mut sin as *mut libc::sockaddr_in as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if sin.sin_family != libc::AF_INET as libc::sa_family_t {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("SO_ORIGINAL_DST returned address family {}", sin.sin_family),
        ));
    }
    Ok(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
        u16::from_be(sin.sin_port),
    ))
}

/// getsockopt(SOL_IP, SO_ORIGINAL_DST) the way careless callers make it: with a
/// NULL buffer (`len` 16), and with a buffer too short for a sockaddr_in (8).
/// Each is the errno it failed with, or None if it succeeded; netfilter's
/// answers are EFAULT and EINVAL.
pub fn original_dst_misuse(sock: &impl AsRawFd) -> [Option<i32>; 2] {
    let mut out = [None, None];
    let mut buf = [0u8; 8];
    for (i, (ptr, len)) in [(std::ptr::null_mut(), 16), (buf.as_mut_ptr(), 8)].into_iter().enumerate() {
        let mut len: libc::socklen_t = len;
        let rc = unsafe { libc::getsockopt(sock.as_raw_fd(), libc::SOL_IP, SO_ORIGINAL_DST, ptr as *mut libc::c_void, &mut len) };
        if rc != 0 {
            out[i] = io::Error::last_os_error().raw_os_error();
        }
    }
    out
}

/// Drops all supplementary groups, then the group, then the user.
pub fn drop_privileges(uid: u32, gid: u32) -> io::Result<()> {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    setgroups(&[]).map_err(io::Error::from)?;
    setgid(Gid::from_raw(gid)).map_err(io::Error::from)?;
    setuid(Uid::from_raw(uid)).map_err(io::Error::from)?;
    Ok(())
}

/// "R,E,S": three UIDs for setresuid.
pub fn parse_resuid(s: &str) -> Result<(u32, u32, u32), String> {
    let ids: Vec<u32> = s.split(',').map(|w| w.trim().parse::<u32>().map_err(|e| format!("{w:?}: {e}"))).collect::<Result<_, _>>()?;
    match ids[..] {
        [r, e, s] => Ok((r, e, s)),
        _ => Err(format!("{s:?}: give REAL,EFFECTIVE,SAVED")),
    }
}

/// setresuid(2); the filesystem UID follows the effective one. Checked
/// afterwards, so a test never runs as other UIDs than it says.
pub fn set_resuid(real: u32, effective: u32, saved: u32) -> io::Result<()> {
    use nix::unistd::{getresuid, setresuid, Uid};
    setresuid(Uid::from_raw(real), Uid::from_raw(effective), Uid::from_raw(saved)).map_err(io::Error::from)?;
    let got = getresuid().map_err(io::Error::from)?;
    if (got.real.as_raw(), got.effective.as_raw(), got.saved.as_raw()) != (real, effective, saved) {
        return Err(io::Error::other(format!("getresuid says {got:?}")));
    }
    Ok(())
}
