//! Small socket and process helpers shared by the peers.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;

/// SO_ORIGINAL_DST from <linux/netfilter_ipv4.h>; valid at level SOL_IP.
const SO_ORIGINAL_DST: libc::c_int = 80;
/// IP6T_SO_ORIGINAL_DST from <linux/netfilter_ipv6/ip6_tables.h>; valid at level SOL_IPV6.
const IP6T_SO_ORIGINAL_DST: libc::c_int = 80;
/// sizeof(struct sockaddr_in6).
pub const SIN6_LEN: usize = 28;

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

/// getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST) into a zeroed buffer of `len`
/// bytes (None: a NULL buffer, with optlen 28): the buffer and the optlen the
/// kernel gave back, or the error.
pub fn original_dst6_raw(sock: &impl AsRawFd, len: Option<usize>) -> io::Result<(Vec<u8>, usize)> {
    let mut buf = vec![0u8; len.unwrap_or(0)];
    let ptr = if len.is_some() { buf.as_mut_ptr() as *mut libc::c_void } else { std::ptr::null_mut() };
    let mut optlen = len.unwrap_or(SIN6_LEN) as libc::socklen_t;
    let rc = unsafe { libc::getsockopt(sock.as_raw_fd(), libc::SOL_IPV6, IP6T_SO_ORIGINAL_DST, ptr, &mut optlen) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((buf, optlen as usize))
}

/// getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST): the IPv6 destination the
/// client asked for before it was redirected to us.
pub fn original_dst6(sock: &impl AsRawFd) -> io::Result<SocketAddrV6> {
    let (b, _) = original_dst6_raw(sock, Some(SIN6_LEN))?;
    let family = u16::from_ne_bytes([b[0], b[1]]);
    if family != libc::AF_INET6 as u16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("IP6T_SO_ORIGINAL_DST returned address family {family}"),
        ));
    }
    let addr: [u8; 16] = b[8..24].try_into().expect("16 bytes");
    Ok(SocketAddrV6::new(
        Ipv6Addr::from(addr),
        u16::from_be_bytes([b[2], b[3]]),
        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_ne_bytes([b[24], b[25], b[26], b[27]]),
    ))
}

/// Was this accepted connection dialled over native IPv6 (not v4-mapped)?
pub fn is_native_ipv6(sock: &TcpStream) -> bool {
    matches!(sock.local_addr(), Ok(SocketAddr::V6(a)) if a.ip().to_ipv4_mapped().is_none())
}

/// The original destination of an accepted connection, asked for in its family.
pub fn original_dst_any(sock: &TcpStream) -> io::Result<SocketAddr> {
    if is_native_ipv6(sock) {
        original_dst6(sock).map(SocketAddr::V6)
    } else {
        original_dst(sock).map(SocketAddr::V4)
    }
}

/// getsockopt(SO_ORIGINAL_DST, or IP6T_SO_ORIGINAL_DST with `ipv6`) the way
/// careless callers make it: with a NULL buffer (`len` a sockaddr's), and
/// with a buffer too short for the sockaddr (8). Each is the errno it failed
/// with, or None if it succeeded; netfilter's answers are EFAULT and EINVAL.
pub fn original_dst_misuse(sock: &impl AsRawFd, ipv6: bool) -> [Option<i32>; 2] {
    let (level, name, full) =
        if ipv6 { (libc::SOL_IPV6, IP6T_SO_ORIGINAL_DST, SIN6_LEN as libc::socklen_t) } else { (libc::SOL_IP, SO_ORIGINAL_DST, 16) };
    let mut out = [None, None];
    let mut buf = [0u8; 8];
    for (i, (ptr, len)) in [(std::ptr::null_mut(), full), (buf.as_mut_ptr(), 8)].into_iter().enumerate() {
        let mut len: libc::socklen_t = len;
        let rc = unsafe { libc::getsockopt(sock.as_raw_fd(), level, name, ptr as *mut libc::c_void, &mut len) };
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
