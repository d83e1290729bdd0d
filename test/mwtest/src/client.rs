//! Client: opens connections and checks that each one took the expected path.
//!
//! The reply the client sees is the server's line followed by the server's echo
//! of everything it received. Each sidecar on the way writes one line upstream
//! before relaying, so the echo starts with those lines, the one written by the
//! sidecar nearest the server first:
//!
//! ```text
//! server=P1 local=127.0.0.1:8080 peer=127.0.0.1:40001    <- server's line
//! via-inbound-sidecar orig=10.231.1.2:8080               <- the server pod's sidecar
//! via-sidecar orig=10.231.1.2:8080                       <- the client pod's sidecar
//! hello 7                                                <- written by this client
//! ```
//!
//! Directly, the echo is only `hello 7`. Through an inbound sidecar the server
//! sees the connection on 127.0.0.1:<the port dialled> (the sidecar's hand-off).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

// What every reply must show; also `mwtest client`'s --expect-* options
// (their ids are the flags' names, which main.rs's group and conflicts use).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Expect {
    /// Expect each connection to go through an outbound sidecar that saw this
    /// original destination.
    #[arg(long = "expect-orig", id = "expect_orig", value_name = "EXPECT_ORIG", conflicts_with = "expect_direct")]
    pub orig: Option<SocketAddr>,
    /// Expect each connection to reach the server inside the destination pod
    /// through its inbound sidecar, which saw this original destination (the
    /// server then sees the connection on 127.0.0.1:<its port>).
    #[arg(long = "expect-inbound-orig", id = "expect_inbound_orig", value_name = "EXPECT_INBOUND_ORIG", conflicts_with = "expect_direct")]
    pub inbound_orig: Option<SocketAddr>,
    /// Expect each connection to reach the server directly (no sidecar at all).
    // What neither orig nor inbound_orig already means: the flag says so,
    // for main.rs's group that wants some expectation named.
    #[arg(long = "expect-direct", id = "expect_direct")]
    pub direct: bool,
    /// Expect the reply to come from the server with this name.
    #[arg(long = "expect-server", id = "expect_server", value_name = "EXPECT_SERVER")]
    pub server: Option<String>,
}

/// IPv4 options for setsockopt(IP_OPTIONS), already padded to 4 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpOptions(pub Vec<u8>);

/// `nop`, `rr` (record route, 2 slots), `ts` (timestamps, 2 slots) or hex bytes.
pub fn parse_ip_options(s: &str) -> Result<IpOptions, String> {
    let mut bytes = match s {
        "nop" => vec![1, 1, 1, 1],
        // IPOPT_RR: type 7, length 11, pointer 4, two empty address slots.
        "rr" => vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0],
        // IPOPT_TIMESTAMP: type 68, length 12, pointer 5, flags 0 (timestamps only).
        "ts" => vec![68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        hex => {
            let hex = hex.trim_start_matches("0x");
            if hex.is_empty() || hex.len() % 2 != 0 {
                return Err(format!("{s:?}: expected nop, rr, ts or an even number of hex digits"));
            }
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| format!("{s:?} is not hex")))
                .collect::<Result<Vec<u8>, String>>()?
        }
    };
    while bytes.len() % 4 != 0 {
        bytes.push(0); // IPOPT_END
    }
    if bytes.len() > 40 {
        return Err(format!("{s:?}: IPv4 options are at most 40 bytes"));
    }
    Ok(IpOptions(bytes))
}

// What `mwtest client` does: its options as given (main.rs flattens this
// into the command, so each option is declared once, here).
#[derive(clap::Args)]
pub struct Options {
    #[arg(long)]
    pub connect: SocketAddr,
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    // 0 counts as 1 (run()).
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    #[command(flatten)]
    pub expect: Expect,
    /// Check that getpeername() returns exactly the --connect address.
    #[arg(long)]
    pub check_peer: bool,
    /// IPv4 options on every packet (setsockopt IP_OPTIONS): nop, rr (record
    /// route), ts (timestamp) or the option bytes in hex.
    #[arg(long, value_name = "nop|rr|ts|HEX", value_parser = parse_ip_options)]
    pub ip_options: Option<IpOptions>,
    /// Multipath TCP sockets (socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)).
    #[arg(long)]
    pub mptcp: bool,
    /// Bind each socket to this interface (SO_BINDTODEVICE) before connect().
    #[arg(long, value_name = "IFNAME")]
    pub bind_device: Option<String>,
    /// End each connection with a reset (SO_LINGER {1, 0}, then close) after
    /// sending its request, instead of a FIN; replies are not checked.
    #[arg(long, conflicts_with_all = ["expect_orig", "expect_inbound_orig", "expect_direct", "expect_server"])]
    pub rst: bool,
    /// Expect every connect() to fail: refused, not permitted, or timed out (--timeout).
    #[arg(long, conflicts_with_all = ["expect_orig", "expect_inbound_orig", "expect_direct", "expect_server", "rst", "check_peer"])]
    pub expect_no_connection: bool,
    /// With --expect-no-connection: each connect() must be refused (ECONNREFUSED, a
    /// reset answered the SYN), not time out nor be denied locally.
    #[arg(long, requires = "expect_no_connection")]
    pub refused: bool,
    /// Keep every connection open, its reply read and checked without a
    /// half-close, until all COUNT are; then close them all. Shows that COUNT
    /// connections were open at once. Needs an echo server (`mwtest echo`)
    /// at the far end; --expect-server does not apply.
    #[arg(long, conflicts_with_all = ["rst", "expect_no_connection", "expect_server", "expect_inbound_orig", "check_peer"])]
    pub hold: bool,
    /// Connection i dials --connect's port + i % PORTS; an --expect-orig is
    /// shifted alike.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: u16,
    /// Connect and read timeout in seconds.
    #[arg(long, value_name = "TIMEOUT", default_value = "5", value_parser = parse_timeout)]
    pub timeout: Duration,
}

/// --timeout: whole seconds, 0 taken as 1 (a zero timeout is an error for
/// connect_timeout and set_read_timeout).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: u64 = s.parse().map_err(|e: std::num::ParseIntError| e.to_string())?;
    Ok(Duration::from_secs(secs.max(1)))
}

const MAX_REPORTED: usize = 10;

impl Options {
    fn shift(&self, a: SocketAddr, i: usize) -> SocketAddr {
        let mut a = a;
        a.set_port(a.port().wrapping_add((i % usize::from(self.ports.max(1))) as u16));
        a
    }
    /// Where connection i goes.
    fn dest(&self, i: usize) -> SocketAddr {
        self.shift(self.connect, i)
    }
    /// What connection i must show.
    fn expect_for(&self, i: usize) -> Expect {
        Expect { orig: self.expect.orig.map(|a| self.shift(a, i)), ..self.expect.clone() }
    }
}

/// Runs all connections; Ok(true) when every one passed.
pub fn run(opts: &Options) -> io::Result<bool> {
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let held: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());
    thread::scope(|scope| -> io::Result<()> {
        for _ in 0..opts.parallel.max(1).min(opts.count.max(1)) {
            thread::Builder::new().stack_size(256 * 1024).spawn_scoped(scope, || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= opts.count {
                    break;
                }
                match one(opts, i) {
                    Ok(Some(s)) => held.lock().unwrap().push(s),
                    Ok(None) => {}
                    Err(msg) => failures.lock().unwrap().push((i, msg)),
                }
            })?;
        }
        Ok(())
    })?;
    let held = held.into_inner().unwrap();
    if opts.hold {
        // Still open, every one: a peer that closed would have sent a FIN.
        for (k, s) in held.iter().enumerate() {
            s.set_nonblocking(true)?;
            let mut b = [0u8; 1];
            match (&*s).read(&mut b) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => failures.lock().unwrap().push((k, format!("held connection closed or sent more: {other:?}"))),
            }
        }
        println!("client: {} connections open at once", held.len());
    }
    drop(held);
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|(i, _)| *i);
    for (i, msg) in failures.iter().take(MAX_REPORTED) {
        println!("client: FAIL connection {i}: {msg}");
    }
    if failures.len() > MAX_REPORTED {
        println!("client: ... and {} more failures", failures.len() - MAX_REPORTED);
    }
    let ok = opts.count - failures.len();
    let what = if opts.rst {
        "reset"
    } else if opts.refused {
        "refused, as expected"
    } else if opts.expect_no_connection {
        "not connected, as expected"
    } else {
        "ok"
    };
    println!("client: {ok}/{} {what}", opts.count);
    Ok(failures.is_empty())
}

/// Connects; with IP options, MPTCP or a device binding, on a socket set up
/// with them before the SYN.
fn connect(opts: &Options, to: SocketAddr) -> io::Result<TcpStream> {
    if opts.ip_options.is_none() && !opts.mptcp && opts.bind_device.is_none() {
        return TcpStream::connect_timeout(&to, opts.timeout);
    }
    let SocketAddr::V4(dst) = to else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "IP options, MPTCP and a device binding need an IPv4 address"));
    };
    let proto = if opts.mptcp { libc::IPPROTO_MPTCP } else { 0 };
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("socket(AF_INET, SOCK_STREAM, {proto}): {e}")));
    }
    // Owned from here on: closed on every error path.
    let s = unsafe { TcpStream::from_raw_fd(fd) };
    if let Some(ip_opts) = &opts.ip_options {
        setsockopt(&s, libc::IPPROTO_IP, libc::IP_OPTIONS, ip_opts.0.as_ptr(), ip_opts.0.len())
            .map_err(|e| io::Error::new(e.kind(), format!("setsockopt IP_OPTIONS: {e}")))?;
    }
    if let Some(dev) = &opts.bind_device {
        setsockopt(&s, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, dev.as_ptr(), dev.len())
            .map_err(|e| io::Error::new(e.kind(), format!("setsockopt SO_BINDTODEVICE {dev}: {e}")))?;
    }
    // A blocking connect() waits at most SO_SNDTIMEO.
    s.set_write_timeout(Some(opts.timeout))?;
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: dst.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*dst.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let rc = unsafe {
        libc::connect(
            s.as_raw_fd(),
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(s)
}

fn setsockopt<T>(s: &TcpStream, level: libc::c_int, name: libc::c_int, val: *const T, len: usize) -> io::Result<()> {
    let rc = unsafe { libc::setsockopt(s.as_raw_fd(), level, name, val as *const libc::c_void, len as libc::socklen_t) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One connection: send `hello <i>\n`, half-close, read the whole reply, check it.
/// With `rst`: send `hello <i>\n`, then reset the connection. With `hold`: read
/// the reply up to the echo without half-closing, and hand back the open stream.
fn one(opts: &Options, i: usize) -> Result<Option<TcpStream>, String> {
    let to = opts.dest(i);
    if opts.expect_no_connection {
        return match connect(opts, to) {
            Ok(s) => Err(format!("connected to {} from {:?}, expected no connection", to, s.local_addr().ok())),
            Err(e) if opts.refused && e.kind() != io::ErrorKind::ConnectionRefused => {
                Err(format!("connect {}: {e}, expected it refused (a reset)", to))
            }
            Err(_) => Ok(None),
        };
    }
    let mut s = connect(opts, to).map_err(|e| format!("connect {}: {e}", to))?;
    if opts.check_peer {
        let peer = s.peer_addr().map_err(|e| format!("getpeername: {e}"))?;
        if peer != to {
            return Err(format!("getpeername() is {peer}, dialled {}", to));
        }
    }
    s.set_read_timeout(Some(opts.timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(opts.timeout)).map_err(|e| e.to_string())?;
    s.write_all(format!("hello {i}\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    if opts.rst {
        // Let the far side accept and start relaying, then reset.
        thread::sleep(Duration::from_millis(20));
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        setsockopt(&s, libc::SOL_SOCKET, libc::SO_LINGER, &linger, std::mem::size_of::<libc::linger>())
            .map_err(|e| format!("setsockopt SO_LINGER: {e}"))?;
        drop(s);
        return Ok(None);
    }
    let mut reply = Vec::new();
    if opts.hold {
        // The reply ends with the echo of the request.
        let end = format!("hello {i}\n");
        let mut buf = [0u8; 4096];
        while !reply.ends_with(end.as_bytes()) {
            match s.read(&mut buf) {
                Ok(0) => return Err(format!("closed before the echo; reply so far {:?}", String::from_utf8_lossy(&reply))),
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("read: {e}; reply so far {:?}", String::from_utf8_lossy(&reply))),
            }
        }
    } else {
        s.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
        if let Err(e) = s.read_to_end(&mut reply) {
            return Err(format!("read: {e}; reply so far {:?}", String::from_utf8_lossy(&reply)));
        }
    }
    let text = String::from_utf8_lossy(&reply);
    if opts.hold {
        check_echo(&text, i, &opts.expect_for(i)).map_err(|why| format!("{why}; reply {text:?}"))?;
        return Ok(Some(s));
    }
    check_reply(&text, i, to, &opts.expect_for(i)).map_err(|why| format!("{why}; reply {text:?}"))?;
    Ok(None)
}

/// Checks a held connection's reply from an echo server (`mwtest echo`, which
/// answers as it reads): the outbound sidecar's line when one is expected,
/// then the request.
fn check_echo(reply: &str, i: usize, expect: &Expect) -> Result<(), String> {
    let want = match expect.orig {
        Some(orig) => format!("via-sidecar orig={orig}\nhello {i}\n"),
        None => format!("hello {i}\n"),
    };
    if reply != want {
        return Err(format!("expected {want:?} from an echo server"));
    }
    Ok(())
}

/// Checks one reply. `connect` is where the client connected; with a direct
/// path the server must have accepted on exactly that address.
pub fn check_reply(reply: &str, i: usize, connect: SocketAddr, expect: &Expect) -> Result<(), String> {
    let (server_line, echo) = reply
        .split_once('\n')
        .ok_or_else(|| "no complete server line".to_string())?;
    let fields = parse_server_line(server_line)?;
    if let Some(name) = &expect.server {
        if fields.name != name {
            return Err(format!("server is {:?}, expected {name:?}", fields.name));
        }
    }
    // The inbound sidecar is nearest the server: its line comes first.
    let echo = match expect.inbound_orig {
        Some(inb) => {
            let want = format!("via-inbound-sidecar orig={inb}\n");
            match echo.strip_prefix(&want) {
                Some(rest) => rest,
                None => {
                    return Err(match echo.lines().next() {
                        Some(l) if l.starts_with("via-inbound-sidecar ") => {
                            format!("through an inbound sidecar but {l:?}, expected orig={inb}")
                        }
                        _ => format!("no inbound sidecar, expected one with orig={inb}"),
                    })
                }
            }
        }
        None if echo.starts_with("via-inbound-sidecar ") => {
            return Err(format!("went through an inbound sidecar ({:?}), expected none", echo.lines().next().unwrap_or("")));
        }
        None => echo,
    };
    let hello = format!("hello {i}\n");
    match expect.orig {
        Some(orig) => {
            let want = format!("via-sidecar orig={orig}\n{hello}");
            if echo != want {
                return Err(match echo.lines().next() {
                    Some(l) if l.starts_with("via-sidecar ") => {
                        format!("through a sidecar but {l:?}, expected orig={orig}")
                    }
                    _ if echo == hello => "direct, expected a sidecar".to_string(),
                    _ => format!("echo is {echo:?}, expected {want:?}"),
                });
            }
        }
        None => {
            if echo != hello {
                return Err(if echo.starts_with("via-sidecar ") {
                    "went through a sidecar, expected direct".to_string()
                } else {
                    format!("echo is {echo:?}, expected {hello:?}")
                });
            }
        }
    }
    // Where the server must have accepted the connection.
    let local = match (expect.inbound_orig, expect.orig) {
        // The inbound sidecar hands it to the loopback of its family.
        (Some(SocketAddr::V4(inb)), _) => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, inb.port())),
        (Some(SocketAddr::V6(inb)), _) => SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), inb.port()),
        (None, Some(orig)) => orig,
        // A v4-mapped address (an AF_INET6 socket dialling IPv4) is accepted on the IPv4 one.
        (None, None) => match connect {
            SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                Some(ip) => SocketAddr::V4(SocketAddrV4::new(ip, v6.port())),
                None => connect,
            },
            v4 => v4,
        },
    };
    if fields.local != local.to_string() {
        return Err(format!("server accepted on {}, expected {local}", fields.local));
    }
    Ok(())
}

struct ServerLine<'a> {
    name: &'a str,
    local: &'a str,
}

/// Parses `server=NAME local=ADDR peer=ADDR`.
fn parse_server_line(line: &str) -> Result<ServerLine<'_>, String> {
    let mut it = line.split(' ');
    let mut field = |key: &str| {
        it.next()
            .and_then(|f| f.strip_prefix(key))
            .ok_or_else(|| format!("malformed server line {line:?}"))
    };
    let name = field("server=")?;
    let local = field("local=")?;
    field("peer=")?;
    Ok(ServerLine { name, local })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: &str = "10.231.0.1:8080";

    fn via(name: &str, orig: &str, local: &str, i: usize) -> String {
        format!("server={name} local={local} peer=10.231.1.2:40000\nvia-sidecar orig={orig}\nhello {i}\n")
    }
    fn direct(name: &str, local: &str, i: usize) -> String {
        format!("server={name} local={local} peer=10.231.1.2:40000\nhello {i}\n")
    }
    fn orig(name: Option<&str>) -> Expect {
        Expect { orig: Some(DST.parse().unwrap()), server: name.map(String::from), ..Expect::default() }
    }
    fn check(reply: &str, i: usize, expect: &Expect) -> Result<(), String> {
        check_reply(reply, i, DST.parse().unwrap(), expect)
    }

    #[test]
    fn sidecar_path_accepted() {
        assert_eq!(check(&via("A", DST, DST, 3), 3, &orig(Some("A"))), Ok(()));
    }

    #[test]
    fn direct_when_sidecar_expected() {
        let e = check(&direct("A", DST, 3), 3, &orig(None)).unwrap_err();
        assert!(e.contains("direct, expected a sidecar"), "{e}");
    }

    #[test]
    fn wrong_original_destination() {
        let e = check(&via("A", "10.231.0.1:9999", DST, 3), 3, &orig(None)).unwrap_err();
        assert!(e.contains("expected orig=10.231.0.1:8080"), "{e}");
    }

    #[test]
    fn sidecar_reached_another_address() {
        let e = check(&via("A", DST, "10.231.0.2:8080", 3), 3, &orig(None)).unwrap_err();
        assert!(e.contains("server accepted on 10.231.0.2:8080"), "{e}");
    }

    #[test]
    fn wrong_server_or_connection() {
        assert!(check(&via("B", DST, DST, 3), 3, &orig(Some("A"))).is_err());
        // Another connection's echo (mixed-up streams) is caught.
        assert!(check(&via("A", DST, DST, 4), 3, &orig(None)).is_err());
    }

    #[test]
    fn direct_path() {
        let none = Expect::default();
        assert_eq!(check(&direct("A", DST, 0), 0, &none), Ok(()));
        let e = check(&via("A", DST, DST, 0), 0, &none).unwrap_err();
        assert!(e.contains("through a sidecar, expected direct"), "{e}");
        assert!(check(&direct("A", "10.231.0.1:1", 0), 0, &none).is_err());
    }

    #[test]
    fn truncated_or_garbage() {
        assert!(check("", 0, &orig(None)).is_err());
        assert!(check("server=A local=x", 0, &orig(None)).is_err());
        assert!(check("via-sidecar orig=10.231.0.1:8080\nhello 0\n", 0, &orig(None)).is_err());
        assert!(check(&via("A", DST, DST, 0)[..60], 0, &orig(None)).is_err());
    }

    const POD: &str = "10.231.1.2:8080";

    fn inbound(outbound: bool, i: usize) -> String {
        let out = if outbound { format!("via-sidecar orig={POD}\n") } else { String::new() };
        format!("server=P1 local=127.0.0.1:8080 peer=127.0.0.1:40001\nvia-inbound-sidecar orig={POD}\n{out}hello {i}\n")
    }
    fn expect_inbound(outbound: bool) -> Expect {
        Expect {
            orig: outbound.then(|| POD.parse().unwrap()),
            inbound_orig: Some(POD.parse().unwrap()),
            server: Some("P1".into()),
            ..Expect::default()
        }
    }
    fn check_pod(reply: &str, i: usize, expect: &Expect) -> Result<(), String> {
        check_reply(reply, i, POD.parse().unwrap(), expect)
    }

    #[test]
    fn inbound_sidecar_path() {
        assert_eq!(check_pod(&inbound(false, 1), 1, &expect_inbound(false)), Ok(()));
        // Both sidecars: the client pod's outbound one, then the server pod's inbound one.
        assert_eq!(check_pod(&inbound(true, 1), 1, &expect_inbound(true)), Ok(()));
        let e = check_pod(&inbound(true, 1), 1, &expect_inbound(false)).unwrap_err();
        assert!(e.contains("went through a sidecar, expected direct"), "{e}");
        let e = check_pod(&inbound(false, 1), 1, &expect_inbound(true)).unwrap_err();
        assert!(e.contains("direct, expected a sidecar"), "{e}");
    }

    #[test]
    fn inbound_sidecar_missing_or_unexpected() {
        let direct = format!("server=P1 local={POD} peer=10.231.2.2:40000\nhello 1\n");
        let e = check_pod(&direct, 1, &expect_inbound(false)).unwrap_err();
        assert!(e.contains("no inbound sidecar"), "{e}");
        let e = check_pod(&inbound(false, 1), 1, &Expect::default()).unwrap_err();
        assert!(e.contains("went through an inbound sidecar"), "{e}");
        let wrong = inbound(false, 1).replace("orig=10.231.1.2:8080", "orig=10.231.1.2:9");
        let e = check_pod(&wrong, 1, &expect_inbound(false)).unwrap_err();
        assert!(e.contains("expected orig=10.231.1.2:8080"), "{e}");
        // The hand-off must be to the app on the pod's loopback at the dialled port.
        let moved = inbound(false, 1).replace("local=127.0.0.1:8080", "local=10.231.1.2:8080");
        assert!(check_pod(&moved, 1, &expect_inbound(false)).unwrap_err().contains("server accepted on"));
    }

    #[test]
    fn ip_options_are_padded() {
        assert_eq!(parse_ip_options("nop").unwrap().0, vec![1, 1, 1, 1]);
        assert_eq!(parse_ip_options("rr").unwrap().0.len(), 12);
        assert_eq!(parse_ip_options("ts").unwrap().0.len(), 12);
        assert_eq!(parse_ip_options("0x0101").unwrap().0, vec![1, 1, 0, 0]);
        assert!(parse_ip_options("abc").is_err());
        assert!(parse_ip_options(&"01".repeat(41)).is_err());
    }

    #[test]
    fn a_held_connection_echoes_the_sidecar_line_then_the_request() {
        let e = Expect { orig: Some("10.0.0.1:80".parse().unwrap()), ..Expect::default() };
        assert!(check_echo("via-sidecar orig=10.0.0.1:80\nhello 3\n", 3, &e).is_ok());
        assert!(check_echo("via-sidecar orig=10.0.0.2:80\nhello 3\n", 3, &e).is_err());
        assert!(check_echo("hello 3\n", 3, &e).is_err(), "no sidecar");
        assert!(check_echo("hello 3\n", 3, &Expect::default()).is_ok());
        assert!(check_echo("via-sidecar orig=10.0.0.1:80\nhello 3\n", 3, &Expect::default()).is_err());
    }
}
