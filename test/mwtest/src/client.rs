//! Client: opens connections and checks that each one took the expected path.
//!
//! The reply the client sees is the server's line followed by the server's echo
//! of everything it received. Through a sidecar the echo starts with the line the
//! sidecar wrote upstream first:
//!
//! ```text
//! server=A local=10.231.0.1:8080 peer=10.231.1.2:40000   <- server's line
//! via-sidecar orig=10.231.0.1:8080                       <- written by the sidecar
//! hello 7                                                <- written by this client
//! ```
//!
//! Directly, the echo is only `hello 7`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

/// What every reply must show.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Some: through a sidecar that saw this original destination. None: direct.
    pub orig: Option<SocketAddrV4>,
    /// The server's name, if it matters.
    pub server: Option<String>,
}

pub struct Options {
    pub connect: SocketAddr,
    pub count: usize,
    pub parallel: usize,
    pub expect: Expect,
    pub timeout: Duration,
}

const MAX_REPORTED: usize = 10;

/// Runs all connections; Ok(true) when every one passed.
pub fn run(opts: &Options) -> io::Result<bool> {
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    thread::scope(|scope| -> io::Result<()> {
        for _ in 0..opts.parallel.min(opts.count.max(1)) {
            thread::Builder::new().stack_size(256 * 1024).spawn_scoped(scope, || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= opts.count {
                    break;
                }
                if let Err(msg) = one(opts, i) {
                    failures.lock().unwrap().push((i, msg));
                }
            })?;
        }
        Ok(())
    })?;
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|(i, _)| *i);
    for (i, msg) in failures.iter().take(MAX_REPORTED) {
        println!("client: FAIL connection {i}: {msg}");
    }
    if failures.len() > MAX_REPORTED {
        println!("client: ... and {} more failures", failures.len() - MAX_REPORTED);
    }
    let ok = opts.count - failures.len();
    println!("client: {ok}/{} ok", opts.count);
    Ok(failures.is_empty())
}

/// One connection: send `hello <i>\n`, half-close, read the whole reply, check it.
fn one(opts: &Options, i: usize) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&opts.connect, opts.timeout)
        .map_err(|e| format!("connect {}: {e}", opts.connect))?;
    s.set_read_timeout(Some(opts.timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(opts.timeout)).map_err(|e| e.to_string())?;
    s.write_all(format!("hello {i}\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    s.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
    let mut reply = Vec::new();
    if let Err(e) = s.read_to_end(&mut reply) {
        return Err(format!("read: {e}; reply so far {:?}", String::from_utf8_lossy(&reply)));
    }
    let reply = String::from_utf8_lossy(&reply);
    check_reply(&reply, i, opts.connect, &opts.expect)
        .map_err(|why| format!("{why}; reply {reply:?}"))
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
            if fields.local != orig.to_string() {
                return Err(format!("server accepted on {}, expected {orig}", fields.local));
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
            if fields.local != connect.to_string() {
                return Err(format!("server accepted on {}, expected {connect}", fields.local));
            }
        }
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
        Expect { orig: Some(DST.parse().unwrap()), server: name.map(String::from) }
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
}
