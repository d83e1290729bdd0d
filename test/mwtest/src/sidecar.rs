//! Sidecar: relays each redirected connection, outbound to its original
//! destination (or a load-balanced backend), inbound to the pod's app.
//!
//! Log lines (stdout, one per event, flushed at once):
//!
//! ```text
//! conn peer=127.0.0.1:40000 orig=10.231.0.1:8080            outbound connection
//! conn peer=[::1]:40000 orig=[fd00:231::1]:8080             ... over native IPv6 (--listen6)
//! route orig=10.96.0.10:8080 backend=10.244.1.3:8080        ... sent to a --route backend
//! inbound peer=10.231.2.2:40000 orig=10.231.1.2:8080        inbound connection
//! inbound peer=[fd00:231::2]:40000 orig=[fd00:231:1::2]:8080 ... over native IPv6 (--inbound-listen6)
//! probe peer=127.0.0.1:40000 null=EFAULT short=EINVAL        --probe-misuse (before conn)
//! answer6 peer=[::1]:40000 orig=[fd00:231::1]:8080 len28=28:0a00...  --answers6 (before conn):
//!   IP6T_SO_ORIGINAL_DST with zeroed buffers of 28, 64 and 200 bytes (optlen:
//!   the buffer in hex), of 27 bytes and NULL (the errno)
//! ```

use crate::net;
use std::collections::HashMap;
use std::fmt;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A relay idle for this long is torn down, so no thread lives forever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// `VIP:PORT=IP:PORT,IP:PORT...`: a service address and its backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub service: SocketAddrV4,
    pub backends: Vec<SocketAddr>,
}

impl FromStr for Route {
    type Err = String;

    fn from_str(s: &str) -> Result<Route, String> {
        let (service, backends) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected VIP:PORT=IP:PORT[,IP:PORT...]"))?;
        let service = service
            .trim()
            .parse()
            .map_err(|_| format!("{service:?} is not an IPv4 address with a port"))?;
        let backends = backends
            .split(',')
            .map(|b| b.trim().parse().map_err(|_| format!("backend {b:?} is not an address with a port")))
            .collect::<Result<Vec<SocketAddr>, String>>()?;
        if backends.is_empty() {
            return Err(format!("{s:?}: no backends"));
        }
        Ok(Route { service, backends })
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b: Vec<String> = self.backends.iter().map(|b| b.to_string()).collect();
        write!(f, "{}={}", self.service, b.join(","))
    }
}

pub struct Options {
    pub listen: SocketAddr,
    /// A second outbound listener, for native IPv6 ([::1]:15001).
    pub listen6: Option<SocketAddr>,
    /// Log every answer IP6T_SO_ORIGINAL_DST gives, byte for byte.
    pub answers6: bool,
    pub inbound_listen: Option<SocketAddr>,
    /// A second inbound listener, for native IPv6.
    pub inbound_listen6: Option<SocketAddr>,
    pub routes: Vec<Route>,
    /// Write the via-sidecar / via-inbound-sidecar line upstream first.
    pub marker: bool,
    /// Ask for SO_ORIGINAL_DST wrongly first (NULL, short buffer) and log the errors.
    pub probe_misuse: bool,
}

/// A route with its round-robin position.
struct Balancer {
    backends: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Balancer {
    fn pick(&self) -> SocketAddr {
        self.backends[self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len()]
    }
}

struct Shared {
    listen: SocketAddr,
    listen6: Option<SocketAddr>,
    answers6: bool,
    inbound_listen: Option<SocketAddr>,
    inbound_listen6: Option<SocketAddr>,
    routes: HashMap<SocketAddrV4, Balancer>,
    marker: bool,
    probe_misuse: bool,
}

#[derive(Clone, Copy)]
enum Direction {
    Outbound,
    Inbound,
}

pub fn run(opts: Options, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    let outbound = net::listen(opts.listen)?;
    let outbound6 = opts.listen6.map(net::listen).transpose()?;
    let inbound = opts.inbound_listen.map(net::listen).transpose()?;
    let inbound6 = opts.inbound_listen6.map(net::listen).transpose()?;
    if let Some(uid) = uid {
        net::drop_privileges(uid, gid.unwrap_or(uid))?;
    }
    let mut routes = HashMap::new();
    for r in &opts.routes {
        say(&format!("sidecar: route {r}"));
        routes.insert(r.service, Balancer { backends: r.backends.clone(), next: AtomicUsize::new(0) });
    }
    let shared = Arc::new(Shared {
        listen: opts.listen,
        listen6: opts.listen6,
        answers6: opts.answers6,
        inbound_listen: opts.inbound_listen,
        inbound_listen6: opts.inbound_listen6,
        routes,
        marker: opts.marker,
        probe_misuse: opts.probe_misuse,
    });
    let uid = nix::unistd::getuid();
    say(&format!("sidecar: listening on {} uid={uid}", outbound.local_addr()?));
    if let Some(l) = &outbound6 {
        say(&format!("sidecar: listening on {} uid={uid}", l.local_addr()?));
    }
    for l in inbound.iter().chain(inbound6.iter()) {
        say(&format!("sidecar: inbound listening on {} uid={uid}", l.local_addr()?));
    }
    let outbound6_thread = match outbound6 {
        Some(l) => {
            let shared = shared.clone();
            Some(thread::Builder::new().name("outbound6".into()).spawn(move || accept_loop(l, shared, Direction::Outbound))?)
        }
        None => None,
    };
    let mut inbound_threads = Vec::new();
    for (l, name) in [(inbound, "inbound"), (inbound6, "inbound6")] {
        if let Some(l) = l {
            let shared = shared.clone();
            inbound_threads.push(thread::Builder::new().name(name.into()).spawn(move || accept_loop(l, shared, Direction::Inbound))?);
        }
    }
    accept_loop(outbound, shared, Direction::Outbound);
    for t in inbound_threads.into_iter().chain(outbound6_thread) {
        let _ = t.join();
    }
    Ok(())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, dir: Direction) {
    net::serve_each(listener, "sidecar", move |stream| match dir {
        Direction::Outbound => handle_outbound(stream, &shared),
        Direction::Inbound => handle_inbound(stream, &shared),
    });
}

/// One line on stdout, flushed at once so a test reading the log sees it.
fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn peer_of(s: &TcpStream) -> String {
    s.peer_addr().map(|a| a.to_string()).unwrap_or_else(|e| format!("?({e})"))
}

fn errno_name(e: Option<i32>) -> String {
    e.map_or("ok".to_string(), |e| format!("{:?}", Errno::from_raw(e)))
}

/// Every answer of IP6T_SO_ORIGINAL_DST for this connection, one `answer6`
/// line: for buffers the sockaddr_in6 fits in, the optlen and the bytes;
/// for one too short and a NULL one, the errno.
fn log_answers6(client: &TcpStream, peer: &str) {
    let mut line = String::new();
    for len in [Some(net::SIN6_LEN), Some(64), Some(200), Some(net::SIN6_LEN - 1), None] {
        let name = len.map_or("null".to_string(), |l| format!("len{l}"));
        let answer = match net::original_dst6_raw(client, len) {
            Ok((buf, optlen)) => format!("{optlen}:{}", buf.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            Err(e) => errno_name(e.raw_os_error()),
        };
        line.push_str(&format!(" {name}={answer}"));
    }
    let orig = net::original_dst6(client).map_or_else(|e| format!("?({e})"), |o| o.to_string());
    say(&format!("answer6 peer={peer} orig={orig}{line}"));
}

fn handle_outbound(client: TcpStream, shared: &Shared) {
    let peer = peer_of(&client);
    let ipv6 = net::is_native_ipv6(&client);
    if shared.probe_misuse {
        let [null, short] = net::original_dst_misuse(&client, ipv6);
        say(&format!("probe peer={peer} null={} short={}", errno_name(null), errno_name(short)));
    }
    if ipv6 && shared.answers6 {
        log_answers6(&client, &peer);
    }
    let orig = match net::original_dst_any(&client) {
        Ok(o) => o,
        Err(e) => {
            say(&format!("sidecar: no original destination for {peer}: {e}"));
            return;
        }
    };
    say(&format!("conn peer={peer} orig={orig}"));
    if orig == shared.listen || Some(orig) == shared.listen6 || Some(orig) == shared.inbound_listen {
        say(&format!("sidecar: original destination of {peer} is the sidecar itself; closing"));
        return;
    }
    let route = match orig {
        SocketAddr::V4(o) => shared.routes.get(&o),
        SocketAddr::V6(_) => None,
    };
    let (target, marker) = match route {
        Some(balancer) => {
            let backend = balancer.pick();
            say(&format!("route orig={orig} backend={backend}"));
            (backend, format!("via-sidecar orig={orig} backend={backend}\n"))
        }
        None => (orig, format!("via-sidecar orig={orig}\n")),
    };
    forward(client, &peer, target, shared.marker.then_some(marker));
}

/// Inbound: hand the connection to the app on this pod's loopback at the
/// port the peer dialled, as real sidecars do.
fn handle_inbound(client: TcpStream, shared: &Shared) {
    let peer = peer_of(&client);
    let orig = match net::original_dst_any(&client) {
        Ok(o) => o,
        Err(e) => {
            say(&format!("sidecar: no original destination for inbound {peer}: {e}"));
            return;
        }
    };
    say(&format!("inbound peer={peer} orig={orig}"));
    let own = [shared.inbound_listen, shared.inbound_listen6].into_iter().flatten().any(|a| a.port() == orig.port());
    if own || orig.port() == shared.listen.port() {
        say(&format!("sidecar: inbound {peer} was for the sidecar's own port {}; closing", orig.port()));
        return;
    }
    // The app on the loopback of the connection's family.
    let target = match orig {
        SocketAddr::V4(_) => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, orig.port())),
        SocketAddr::V6(_) => SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), orig.port()),
    };
    let marker = format!("via-inbound-sidecar orig={orig}\n");
    forward(client, &peer, target, shared.marker.then_some(marker));
}

fn forward(client: TcpStream, peer: &str, target: SocketAddr, marker: Option<String>) {
    let mut upstream = match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            say(&format!("sidecar: connect to {target} for {peer} failed: {e}"));
            return;
        }
    };
    if let Some(m) = marker {
        if let Err(e) = upstream.write_all(m.as_bytes()) {
            say(&format!("sidecar: write to {target} for {peer} failed: {e}"));
            return;
        }
    }
    if let Err(e) = relay(client, upstream) {
        eprintln!("sidecar: relay {peer} <-> {target}: {e}");
    }
}

/// Copies bytes both ways in one thread, with non-blocking sockets and
/// poll(2), as real sidecars (Envoy, HAProxy) do: a read that finds nothing
/// waits for the next readiness instead of failing, which a socket in a
/// sockmap needs (docs/acceleration.md). EOF on one side becomes
/// shutdown(Write) on the other; an error, a reset or IDLE_TIMEOUT without
/// any readiness ends both.
fn relay(client: TcpStream, upstream: TcpStream) -> io::Result<()> {
    client.set_nonblocking(true)?;
    upstream.set_nonblocking(true)?;
    let socks = [&client, &upstream];
    // pipes[0]: client -> upstream, pipes[1]: upstream -> client.
    let mut pipes = [Pipe::default(), Pipe::default()];
    let timeout = PollTimeout::try_from(IDLE_TIMEOUT).unwrap_or(PollTimeout::MAX);
    let result = 'relay: loop {
        for (i, pipe) in pipes.iter_mut().enumerate() {
            if let Err(e) = pipe.pump(socks[i], socks[1 - i]) {
                break 'relay Err(e);
            }
        }
        if pipes.iter().all(|p| p.shut) {
            break Ok(());
        }
        let mut fds = [
            PollFd::new(client.as_fd(), pipes[0].wants_read() | pipes[1].wants_write()),
            PollFd::new(upstream.as_fd(), pipes[1].wants_read() | pipes[0].wants_write()),
        ];
        match poll(&mut fds, timeout) {
            Ok(0) => break Err(io::Error::new(io::ErrorKind::TimedOut, "idle")),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => break Err(e.into()),
        }
        for (i, f) in fds.iter().enumerate() {
            if f.revents().is_some_and(|r| r.contains(PollFlags::POLLERR)) {
                let e = socks[i].take_error()?.unwrap_or_else(|| io::Error::other("socket error"));
                break 'relay Err(e);
            }
        }
    };
    if result.is_err() {
        for s in socks {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
    result
}

/// One direction of a relay: what was read and not yet written on.
#[derive(Default)]
struct Pipe {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The source sent its FIN.
    eof: bool,
    /// ... and it was passed on as shutdown(Write): this direction is over.
    shut: bool,
}

impl Pipe {
    const SIZE: usize = 64 * 1024;

    /// Moves what it can without blocking.
    fn pump(&mut self, mut from: &TcpStream, mut to: &TcpStream) -> io::Result<()> {
        if self.buf.is_empty() {
            self.buf = vec![0; Self::SIZE];
        }
        while !self.shut {
            if self.start < self.end {
                match to.write(&self.buf[self.start..self.end]) {
                    Ok(n) => self.start += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            } else if self.eof {
                // ENOTCONN here only means the other side is already gone.
                let _ = to.shutdown(Shutdown::Write);
                self.shut = true;
            } else {
                match from.read(&mut self.buf) {
                    Ok(0) => self.eof = true,
                    Ok(n) => (self.start, self.end) = (0, n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn wants_read(&self) -> PollFlags {
        if !self.eof && self.start == self.end { PollFlags::POLLIN } else { PollFlags::empty() }
    }

    fn wants_write(&self) -> PollFlags {
        if self.start < self.end { PollFlags::POLLOUT } else { PollFlags::empty() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_parses_and_prints() {
        let r: Route = "10.96.0.10:8080=10.244.1.3:8080, 10.244.2.2:8080".parse().unwrap();
        assert_eq!(r.service, "10.96.0.10:8080".parse().unwrap());
        assert_eq!(r.backends.len(), 2);
        assert_eq!(r.to_string(), "10.96.0.10:8080=10.244.1.3:8080,10.244.2.2:8080");
    }

    #[test]
    fn bad_routes_are_refused() {
        assert!("10.96.0.10:8080".parse::<Route>().is_err());
        assert!("10.96.0.10=10.244.1.3:8080".parse::<Route>().is_err());
        assert!("10.96.0.10:8080=".parse::<Route>().is_err());
        assert!("10.96.0.10:8080=10.244.1.3".parse::<Route>().is_err());
    }

    #[test]
    fn round_robin_visits_every_backend_in_turn() {
        let r: Route = "10.96.0.10:8080=10.0.0.1:1,10.0.0.2:2".parse().unwrap();
        let b = Balancer { backends: r.backends.clone(), next: AtomicUsize::new(0) };
        let picks: Vec<SocketAddr> = (0..4).map(|_| b.pick()).collect();
        assert_eq!(picks, vec![r.backends[0], r.backends[1], r.backends[0], r.backends[1]]);
    }
}
