//! One long-lived connection, for tests that change things under it (a
//! loader killed and restarted): every `--interval` it sends `tick N` to an
//! echo server and waits for it to come back, for `--seconds`.
//!
//! Lines the sidecar writes upstream (`via-sidecar orig=...`) come back
//! through the echo server first; with `--expect-orig` the first of them must
//! name that destination, which proves the connection went through the
//! sidecar. An inbound sidecar's `via-inbound-sidecar` line (an echo server
//! in a meshed pod) is skipped. Prints `session: N ticks ok` and exits 0, or says which tick
//! failed and how.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub struct Options {
    pub connect: SocketAddr,
    pub seconds: f64,
    pub interval: Duration,
    pub expect_orig: Option<SocketAddr>,
    pub timeout: Duration,
}

/// What a received line means for the session.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Marker(String),
    InboundMarker,
    Tick(u64),
    Other(String),
}

fn classify(line: &str) -> Line {
    let line = line.trim_end();
    if let Some(orig) = line.strip_prefix("via-sidecar orig=") {
        return Line::Marker(orig.to_string());
    }
    if line.starts_with("via-inbound-sidecar ") {
        return Line::InboundMarker;
    }
    match line.strip_prefix("tick ").and_then(|n| n.parse().ok()) {
        Some(n) => Line::Tick(n),
        None => Line::Other(line.to_string()),
    }
}

pub fn run(opts: &Options) -> Result<String, String> {
    let err = |what: &str, e: io::Error| format!("session {}: {what}: {e}", opts.connect);
    let stream = TcpStream::connect_timeout(&opts.connect, opts.timeout).map_err(|e| err("connect", e))?;
    stream.set_read_timeout(Some(opts.timeout)).map_err(|e| err("set timeout", e))?;
    let mut writer = stream.try_clone().map_err(|e| err("clone", e))?;
    let mut reader = BufReader::new(stream);
    let mut seen_marker: Option<String> = None;
    let end = Instant::now() + Duration::from_secs_f64(opts.seconds);
    let mut n: u64 = 0;
    while Instant::now() < end {
        writer.write_all(format!("tick {n}\n").as_bytes()).map_err(|e| err(&format!("send tick {n}"), e))?;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => return Err(format!("session {}: closed by the peer while waiting for tick {n}", opts.connect)),
                Ok(_) => {}
                Err(e) => return Err(err(&format!("wait for tick {n}"), e)),
            }
            match classify(&line) {
                Line::Marker(orig) => {
                    seen_marker.get_or_insert(orig);
                }
                Line::InboundMarker => {}
                Line::Tick(m) if m == n => break,
                other => return Err(format!("session {}: expected tick {n}, got {other:?}", opts.connect)),
            }
        }
        n += 1;
        std::thread::sleep(opts.interval);
    }
    if let Some(want) = opts.expect_orig {
        match &seen_marker {
            Some(orig) if *orig == want.to_string() => {}
            Some(orig) => return Err(format!("session: the sidecar saw orig={orig}, expected {want}")),
            None => return Err(format!("session: no sidecar marker came back; the connection to {} did not go through the sidecar", opts.connect)),
        }
    }
    Ok(format!("session: {n} ticks ok"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_told_apart() {
        assert_eq!(classify("via-sidecar orig=10.0.0.1:80\n"), Line::Marker("10.0.0.1:80".into()));
        assert_eq!(classify("via-inbound-sidecar orig=10.0.0.1:80\n"), Line::InboundMarker);
        assert_eq!(classify("tick 7\n"), Line::Tick(7));
        assert_eq!(classify("tick x"), Line::Other("tick x".into()));
        assert_eq!(classify("hello"), Line::Other("hello".into()));
    }
}
