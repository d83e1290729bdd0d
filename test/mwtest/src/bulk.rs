//! Bulk transfers checked by SHA-256, for the acceleration suite (test/accel_e2e.sh).
//!
//! The payload is a deterministic byte stream (xorshift64, seeded by its
//! length), so both ends know what must arrive without storing it.
//!
//! Protocol, one request line from the client, then:
//!
//! ```text
//! up\n<payload>          client sends, shut down its write side (half-close),
//!                        reads "<sha256 hex> <bytes>\n" back
//! down N METHOD [close]\n
//!                        server sends N bytes with METHOD (write, sendfile,
//!                        splice); then it reads until the client closes (or
//!                        half-closes: the client may do so right after its
//!                        request), or, with "close", closes first
//! ```
//!
//! The client sends with `write` (in `--chunk`-byte writes), `sendfile` or
//! `splice` (a memfd through a pipe), and reads with plain reads.

use crate::net;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// How the sending side puts the payload on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    Write,
    Sendfile,
    Splice,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Write => "write",
            Method::Sendfile => "sendfile",
            Method::Splice => "splice",
        }
    }

    fn parse(s: &str) -> Option<Method> {
        [Method::Write, Method::Sendfile, Method::Splice].into_iter().find(|m| m.name() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Client -> server, then half-close and read the server's hash.
    Up,
    /// Server -> client; the client closes first.
    Down,
    /// Server -> client; the server closes first.
    DownServerCloses,
    /// Server -> client; the client half-closes right after its request and
    /// reads the payload to EOF (the server closes after the client's EOF).
    DownHalfClosed,
}

pub struct ClientOptions {
    pub connect: SocketAddr,
    pub mode: Mode,
    pub bytes: u64,
    pub method: Method,
    pub chunk: usize,
    pub count: usize,
    pub parallel: usize,
    pub timeout: Duration,
}

// ---------------------------------------------------------------------------
// Payload

/// The payload of a transfer of `len` bytes, generated 8 bytes at a time.
pub struct Payload {
    state: u64,
    left: u64,
}

impl Payload {
    pub fn new(len: u64) -> Payload {
        Payload { state: len ^ 0x9e37_79b9_7f4a_7c15, left: len }
    }

    /// Fills `buf` (a multiple of 8 bytes long, except at the end).
    pub fn fill(&mut self, buf: &mut [u8]) -> usize {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            chunk.copy_from_slice(&self.state.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n as u64;
        n
    }

    /// SHA-256 of the whole payload.
    pub fn digest(len: u64) -> String {
        let mut p = Payload::new(len);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = p.fill(&mut buf);
            if n == 0 {
                return h.hex();
            }
            h.update(&buf[..n]);
        }
    }
}

/// The payload in a memfd, for sendfile and splice.
fn payload_memfd(len: u64) -> io::Result<OwnedFd> {
    let fd = unsafe { libc::memfd_create(c"mwtest-bulk".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd.try_clone()?);
    let mut p = Payload::new(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = p.fill(&mut buf);
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
    }
    Ok(fd)
}

// ---------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), so that the peers need no extra crate.

pub struct Sha256 {
    h: [u32; 8],
    buf: [u8; 64],
    buf_len: usize,
    total: u64,
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
    0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
    0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

impl Sha256 {
    pub fn new() -> Sha256 {
        Sha256 {
            h: [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19],
            buf: [0; 64],
            buf_len: 0,
            total: 0,
        }
    }

    fn block(&mut self, b: &[u8]) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b_, mut c, mut d, mut e, mut f, mut g, mut h] = self.h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b_) ^ (a & c) ^ (b_ & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b_;
            b_ = a;
            a = t1.wrapping_add(t2);
        }
        for (s, v) in self.h.iter_mut().zip([a, b_, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 64 {
                return;
            }
            let b = self.buf;
            self.block(&b);
            self.buf_len = 0;
        }
        let mut blocks = data.chunks_exact(64);
        for b in &mut blocks {
            self.block(b);
        }
        let rest = blocks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub fn hex(mut self) -> String {
        let bits = self.total.wrapping_mul(8);
        let mut pad = vec![0x80u8];
        pad.resize(if self.buf_len < 56 { 56 - self.buf_len } else { 120 - self.buf_len }, 0);
        pad.extend_from_slice(&bits.to_be_bytes());
        let total = self.total;
        self.update(&pad);
        self.total = total;
        let mut out = String::new();
        for v in self.h {
            let _ = write!(out, "{v:08x}");
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Sending

/// Sends the payload of `len` bytes on `s` with `method`.
fn send_payload(s: &TcpStream, len: u64, method: Method, chunk: usize) -> io::Result<()> {
    match method {
        Method::Write => {
            let mut p = Payload::new(len);
            let mut buf = vec![0u8; chunk.max(8) / 8 * 8];
            let mut w = s;
            loop {
                let n = p.fill(&mut buf);
                if n == 0 {
                    return Ok(());
                }
                w.write_all(&buf[..n])?;
            }
        }
        Method::Sendfile => {
            let fd = payload_memfd(len)?;
            let mut off: libc::off_t = 0;
            while (off as u64) < len {
                let want = ((len - off as u64) as usize).min(1 << 30);
                let n = unsafe { libc::sendfile(s.as_raw_fd(), fd.as_raw_fd(), &mut off, want) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(io::Error::new(e.kind(), format!("sendfile: {e}")));
                }
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::WriteZero, "sendfile sent nothing"));
                }
            }
            Ok(())
        }
        Method::Splice => {
            let fd = payload_memfd(len)?;
            let mut p = [0 as RawFd; 2];
            if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
            let mut off: libc::loff_t = 0;
            while (off as u64) < len {
                let want = ((len - off as u64) as usize).min(1 << 16);
                let n = unsafe { libc::splice(fd.as_raw_fd(), &mut off, wr.as_raw_fd(), std::ptr::null_mut(), want, 0) };
                if n <= 0 {
                    return Err(io::Error::new(io::ErrorKind::Other, format!("splice file->pipe: {}", io::Error::last_os_error())));
                }
                let mut left = n as usize;
                while left > 0 {
                    let m = unsafe {
                        libc::splice(rd.as_raw_fd(), std::ptr::null_mut(), s.as_raw_fd(), std::ptr::null_mut(), left, 0)
                    };
                    if m <= 0 {
                        let e = io::Error::last_os_error();
                        return Err(io::Error::new(e.kind(), format!("splice pipe->socket: {e}")));
                    }
                    left -= m as usize;
                }
            }
            Ok(())
        }
    }
}

/// Reads until EOF (or `limit` bytes when given), hashing; returns (hex, bytes).
fn read_hashing(s: &mut impl Read, limit: Option<u64>) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let want = match limit {
            Some(l) if l == total => break,
            Some(l) => ((l - total) as usize).min(buf.len()),
            None => buf.len(),
        };
        let n = match s.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("read after {total} bytes: {e}"))),
        };
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((h.hex(), total))
}

// ---------------------------------------------------------------------------
// Server

pub fn serve(listen: SocketAddr) -> io::Result<()> {
    let listener = net::listen(listen)?;
    println!("bulk-server: listening on {}", listener.local_addr()?);
    let _ = io::stdout().flush();
    net::serve_each(listener, "bulk-server", |stream| {
        if let Err(e) = serve_one(stream) {
            println!("bulk-server: connection: {e}");
            let _ = io::stdout().flush();
        }
    });
    Ok(())
}

fn serve_one(stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.set_write_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::with_capacity(1 << 16, stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["up"] => {
            let (hex, n) = read_hashing(&mut reader, None)?;
            (&stream).write_all(format!("{hex} {n}\n").as_bytes())?;
            Ok(())
        }
        ["down", n, method, rest @ ..] => {
            let n: u64 = n.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad length in {line:?}")))?;
            let method = Method::parse(method).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad method in {line:?}")))?;
            send_payload(&stream, n, method, 1 << 20)?;
            if rest.first() == Some(&"close") {
                return Ok(()); // the server closes first
            }
            // The client closes first: wait for its EOF.
            let (_, extra) = read_hashing(&mut reader, None)?;
            if extra != 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{extra} unexpected bytes after the request")));
            }
            Ok(())
        }
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad request line {line:?}"))),
    }
}

// ---------------------------------------------------------------------------
// Client

pub fn run_client(opts: &ClientOptions) -> io::Result<bool> {
    let expected = Payload::digest(opts.bytes);
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let start = Instant::now();
    thread::scope(|scope| -> io::Result<()> {
        for _ in 0..opts.parallel.clamp(1, opts.count.max(1)) {
            thread::Builder::new().stack_size(256 * 1024).spawn_scoped(scope, || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= opts.count {
                    break;
                }
                if let Err(msg) = client_one(opts, &expected) {
                    failures.lock().unwrap().push((i, msg));
                }
            })?;
        }
        Ok(())
    })?;
    let secs = start.elapsed().as_secs_f64();
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|(i, _)| *i);
    for (i, msg) in failures.iter().take(10) {
        println!("bulk: FAIL connection {i}: {msg}");
    }
    let ok = opts.count - failures.len();
    let mib = (opts.bytes * ok as u64) as f64 / (1 << 20) as f64;
    println!(
        "bulk: {ok}/{} ok ({:?}, {} bytes each with {}, sha256 {}, {mib:.0} MiB in {secs:.1} s)",
        opts.count,
        opts.mode,
        opts.bytes,
        opts.method.name(),
        &expected[..16]
    );
    Ok(failures.is_empty())
}

fn client_one(opts: &ClientOptions, expected: &str) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&opts.connect, opts.timeout).map_err(|e| format!("connect {}: {e}", opts.connect))?;
    s.set_read_timeout(Some(opts.timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(opts.timeout)).map_err(|e| e.to_string())?;
    match opts.mode {
        Mode::Up => {
            s.write_all(b"up\n").map_err(|e| format!("write: {e}"))?;
            send_payload(&s, opts.bytes, opts.method, opts.chunk).map_err(|e| format!("send: {e}"))?;
            s.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
            let mut reply = String::new();
            s.read_to_string(&mut reply).map_err(|e| format!("read reply: {e}; so far {reply:?}"))?;
            let want = format!("{expected} {}\n", opts.bytes);
            if reply != want {
                return Err(format!("server saw {reply:?}, sent {want:?}"));
            }
        }
        Mode::Down | Mode::DownServerCloses | Mode::DownHalfClosed => {
            let close = if opts.mode == Mode::DownServerCloses { " close" } else { "" };
            s.write_all(format!("down {} {}{close}\n", opts.bytes, opts.method.name()).as_bytes())
                .map_err(|e| format!("write: {e}"))?;
            if opts.mode == Mode::DownHalfClosed {
                s.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
            }
            // The client closes first: read exactly the payload, then close.
            // The server closes first: read until its EOF.
            let limit = (opts.mode == Mode::Down).then_some(opts.bytes);
            let (hex, n) = read_hashing(&mut s, limit).map_err(|e| e.to_string())?;
            if n != opts.bytes || hex != expected {
                return Err(format!("received {n} bytes with sha256 {hex}, sent {} with {expected}", opts.bytes));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vectors() {
        let h = |d: &[u8]| {
            let mut s = Sha256::new();
            s.update(d);
            s.hex()
        };
        assert_eq!(h(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(h(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(h(long), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
        // Split updates give the same digest.
        let mut s = Sha256::new();
        for part in long.chunks(7) {
            s.update(part);
        }
        assert_eq!(s.hex(), h(long));
    }

    #[test]
    fn payload_is_deterministic_and_sized() {
        let mut a = Payload::new(1001);
        let mut buf = vec![0u8; 4096];
        assert_eq!(a.fill(&mut buf), 1001);
        assert_eq!(a.fill(&mut buf), 0);
        let mut b = Payload::new(1001);
        let mut buf2 = vec![0u8; 4096];
        b.fill(&mut buf2);
        assert_eq!(buf[..1001], buf2[..1001]);
        assert_ne!(Payload::digest(1000), Payload::digest(1001));
    }
}
