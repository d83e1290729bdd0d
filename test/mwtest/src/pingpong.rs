//! Round-trip latency on one persistent connection (for tools/bench).
//!
//! * `echo`: writes back every byte it reads, on each connection, until EOF.
//! * `pingpong`: connects once, then sends a message of `--size` bytes and
//!   reads the whole echo, again and again for `--seconds` (after `--warmup`
//!   untimed round trips); prints one JSON line:
//!
//! ```text
//! {"round_trips":41234,"p50_us":23.1,"p90_us":25.0,"p99_us":61.7,"mean_us":24.2,"min_us":19.8,"max_us":812.0}
//! ```

use crate::net;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub fn echo(listen: SocketAddr) -> io::Result<()> {
    let listener = net::listen(listen)?;
    println!("echo: listening on {}", listener.local_addr()?);
    net::serve_each(listener, "echo", |mut s: TcpStream| {
        let _ = s.set_nodelay(true);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(())
}

pub struct Options {
    pub connect: SocketAddr,
    pub size: usize,
    pub seconds: f64,
    pub warmup: usize,
    pub timeout: Duration,
}

/// The q-quantile (0..=1) of sorted samples, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn run(opts: &Options) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&opts.connect, opts.timeout)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(opts.timeout))?;
    s.set_write_timeout(Some(opts.timeout))?;
    let msg: Vec<u8> = (0..opts.size.max(1)).map(|i| b'a' + (i % 26) as u8).collect();
    let mut back = vec![0u8; msg.len()];
    let mut once = |s: &mut TcpStream| -> io::Result<()> {
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
        if back != msg {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the echo differs from the message"));
        }
        Ok(())
    };
    for _ in 0..opts.warmup {
        once(&mut s)?;
    }
    let mut samples: Vec<f64> = Vec::with_capacity(1 << 16);
    let end = Instant::now() + Duration::from_secs_f64(opts.seconds);
    loop {
        let t = Instant::now();
        if t >= end {
            break;
        }
        once(&mut s)?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let n = samples.len();
    let mean = samples.iter().sum::<f64>() / n.max(1) as f64;
    samples.sort_by(|a, b| a.total_cmp(b));
    Ok(format!(
        "{{\"round_trips\":{n},\"p50_us\":{:.2},\"p90_us\":{:.2},\"p99_us\":{:.2},\"mean_us\":{mean:.2},\"min_us\":{:.2},\"max_us\":{:.2}}}",
        quantile(&samples, 0.5),
        quantile(&samples, 0.9),
        quantile(&samples, 0.99),
        samples.first().copied().unwrap_or(f64::NAN),
        samples.last().copied().unwrap_or(f64::NAN),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn round_trips_over_loopback() {
        let listener = net::listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        std::thread::spawn(move || echo(addr));
        std::thread::sleep(Duration::from_millis(100));
        let out = run(&Options { connect: addr, size: 100, seconds: 0.2, warmup: 10, timeout: Duration::from_secs(5) }).unwrap();
        assert!(out.starts_with("{\"round_trips\":"), "{out}");
        let n: usize = out["{\"round_trips\":".len()..].split(',').next().unwrap().parse().unwrap();
        assert!(n > 10, "{out}");
    }
}
