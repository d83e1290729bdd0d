//! Outbound sidecar: forwards each accepted connection to its original destination.

use crate::net;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A relay direction idle for this long is torn down, so no thread lives forever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(listen: SocketAddr, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    let listener = net::listen(listen)?;
    if let Some(uid) = uid {
        net::drop_privileges(uid, gid.unwrap_or(uid))?;
    }
    say(&format!(
        "sidecar: listening on {} uid={}",
        listener.local_addr()?,
        nix::unistd::getuid()
    ));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sidecar: accept: {e}");
                continue;
            }
        };
        let spawned = thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || handle(stream, listen));
        if let Err(e) = spawned {
            eprintln!("sidecar: cannot start a thread: {e}");
        }
    }
    Ok(())
}

/// One line on stdout, flushed at once so a test reading the log sees it.
fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn handle(client: TcpStream, listen: SocketAddr) {
    let peer = client
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|e| format!("?({e})"));
    let orig = match net::original_dst(&client) {
        Ok(o) => o,
        Err(e) => {
            say(&format!("sidecar: no original destination for {peer}: {e}"));
            return;
        }
    };
    say(&format!("conn peer={peer} orig={orig}"));
    if SocketAddr::V4(orig) == listen {
        say(&format!("sidecar: original destination of {peer} is the sidecar itself; closing"));
        return;
    }
    let mut upstream = match TcpStream::connect_timeout(&SocketAddr::V4(orig), CONNECT_TIMEOUT) {
        Ok(s) => s,
        Err(e) => {
            say(&format!("sidecar: connect to {orig} for {peer} failed: {e}"));
            return;
        }
    };
    if let Err(e) = upstream.write_all(format!("via-sidecar orig={orig}\n").as_bytes()) {
        say(&format!("sidecar: write to {orig} for {peer} failed: {e}"));
        return;
    }
    if let Err(e) = relay(client, upstream) {
        eprintln!("sidecar: relay {peer} <-> {orig}: {e}");
    }
}

/// Copies bytes both ways; EOF on one side becomes shutdown(Write) on the other.
fn relay(client: TcpStream, upstream: TcpStream) -> io::Result<()> {
    for s in [&client, &upstream] {
        s.set_read_timeout(Some(IDLE_TIMEOUT))?;
        s.set_write_timeout(Some(IDLE_TIMEOUT))?;
    }
    let (c2, u2) = (client.try_clone()?, upstream.try_clone()?);
    let up = thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || pump(c2, u2))?;
    let down = pump(upstream, client);
    let up = up.join().unwrap_or_else(|_| Err(io::Error::other("relay thread panicked")));
    down.and(up)
}

fn pump(mut from: TcpStream, mut to: TcpStream) -> io::Result<()> {
    match io::copy(&mut from, &mut to) {
        Ok(_) => {
            // ENOTCONN here only means the other side is already gone.
            let _ = to.shutdown(Shutdown::Write);
            Ok(())
        }
        Err(e) => {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            Err(e)
        }
    }
}
