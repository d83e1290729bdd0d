//! A tiny HTTP/1.1 responder: every request gets `200 OK` with a fixed body,
//! then the connection is closed. Enough for curl as a real client.
//!
//! mwtest sidecars write a marker line (`via-sidecar ...`,
//! `via-inbound-sidecar ...`) upstream before the client's bytes. Lines starting
//! with `via-` before the request line are taken off, logged and returned in an
//! `X-Mwtest-Via` header, so the body stays exactly the configured text.
//!
//! Log line per request (stdout, flushed):
//!
//! ```text
//! http: peer=127.0.0.1:40000 local=127.0.0.1:8080 request="GET / HTTP/1.1" via="via-inbound-sidecar orig=..."
//! ```

use crate::net;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Request line and headers together may not exceed this.
const MAX_HEAD: usize = 64 * 1024;
/// A request body larger than this is not read (the connection closes anyway).
const MAX_BODY: u64 = 1024 * 1024;

pub fn run(listen: SocketAddr, body: &str) -> io::Result<()> {
    let listener = net::listen(listen)?;
    let body: Arc<str> = Arc::from(format!("{body}\n"));
    say(&format!("http: listening on {}", listener.local_addr()?));
    net::serve_each(listener, "http", move |stream| {
        if let Err(e) = serve(stream, &body) {
            eprintln!("http: connection: {e}");
        }
    });
    Ok(())
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// What came before the response: sidecar markers, the request line, the body length.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub via: Vec<String>,
    pub request_line: String,
    pub content_length: u64,
}

/// Reads markers, request line and headers up to the empty line.
/// Ok(None): the peer closed before sending a request line.
pub fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut head = Head::default();
    let mut total = 0;
    let mut line = String::new();
    // One line without its end; None at EOF.
    let mut next_line = |line: &mut String| -> io::Result<Option<String>> {
        line.clear();
        let n = r.read_line(line)?;
        total += n;
        if total > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too large"));
        }
        Ok((n > 0).then(|| line.trim_end_matches(['\r', '\n']).to_string()))
    };
    loop {
        match next_line(&mut line)? {
            None => return Ok(None),
            Some(l) if l.starts_with("via-") => head.via.push(l),
            Some(l) if l.is_empty() => {}
            Some(l) => {
                head.request_line = l;
                break;
            }
        }
    }
    while let Some(l) = next_line(&mut line)? {
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                head.content_length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    Ok(Some(head))
}

pub fn response(body: &str, via: &[String]) -> String {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !via.is_empty() {
        r.push_str(&format!("X-Mwtest-Via: {}\r\n", via.join(" | ")));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}

fn serve(stream: TcpStream, body: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let local = stream.local_addr()?;
    let peer = stream.peer_addr()?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    io::copy(&mut (&mut reader).take(head.content_length.min(MAX_BODY)), &mut io::sink())?;
    say(&format!(
        "http: peer={peer} local={local} request={:?} via={:?}",
        head.request_line,
        head.via.join(" | ")
    ));
    let mut w = stream;
    w.write_all(response(body, &head.via).as_bytes())?;
    w.flush()?;
    // Read what the client may still send, so closing does not reset it.
    let _ = w.shutdown(std::net::Shutdown::Write);
    let _ = io::copy(&mut (&mut reader).take(MAX_BODY), &mut io::sink());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Option<Head> {
        read_head(&mut text.as_bytes()).unwrap()
    }

    #[test]
    fn plain_curl_request() {
        let h = head("GET / HTTP/1.1\r\nHost: pipy-ok:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n").unwrap();
        assert_eq!(h.request_line, "GET / HTTP/1.1");
        assert!(h.via.is_empty());
        assert_eq!(h.content_length, 0);
    }

    #[test]
    fn sidecar_markers_are_taken_off() {
        let h = head(
            "via-inbound-sidecar orig=10.244.1.3:8080\nvia-sidecar orig=10.96.0.10:8080 backend=10.244.1.3:8080\n\
             POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        )
        .unwrap();
        assert_eq!(h.request_line, "POST /x HTTP/1.1");
        assert_eq!(h.via.len(), 2);
        assert_eq!(h.content_length, 3);
    }

    #[test]
    fn closed_before_a_request() {
        assert_eq!(head(""), None);
        assert_eq!(head("via-sidecar orig=1.2.3.4:80\n"), None);
    }

    #[test]
    fn response_has_the_exact_body() {
        let r = response("Hi, I am pipy ok v1 !\n", &[]);
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(r.contains("Content-Length: 22\r\n"));
        assert!(r.ends_with("\r\n\r\nHi, I am pipy ok v1 !\n"));
        assert!(!r.contains("X-Mwtest-Via"));
        assert!(response("b", &["via-sidecar orig=1.2.3.4:80".into()]).contains("X-Mwtest-Via: via-sidecar orig=1.2.3.4:80\r\n"));
    }
}
