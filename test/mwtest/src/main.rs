//! mwtest: test peers for meshwire's end-to-end suite and demo.
//!
//! * `sidecar`: accepts redirected connections, asks the kernel for the original
//!   destination (getsockopt SOL_IP/SO_ORIGINAL_DST, as netfilter REDIRECT provides
//!   and meshwire emulates) and relays bytes both ways. Outbound (`--listen`) it
//!   connects to the original destination (or, with `--route`, to the next backend
//!   of that service) and announces itself upstream with
//!   `via-sidecar orig=<ip:port>\n`; inbound (`--inbound-listen`) it hands the
//!   connection to the app at 127.0.0.1:<original port> after
//!   `via-inbound-sidecar orig=<ip:port>\n`. `--no-marker` leaves the markers out.
//! * `server`: reads a request until EOF and replies with
//!   `server=NAME local=<local> peer=<peer>\n` followed by the bytes received.
//! * `http`: answers every HTTP request with 200 and a fixed body (for curl);
//!   sidecar marker lines before the request line are logged and skipped.
//! * `client`: opens N connections and checks that each reply shows the expected path.
//! * `bulk-server` and `bulk-client`: transfers checked by SHA-256, sent with write,
//!   sendfile or splice (test/accel_e2e.sh).
//! * `echo` and `pingpong`: round-trip latency on one persistent connection
//!   (tools/bench).

use clap::{ArgGroup, Parser, Subcommand};
use std::net::SocketAddr;
use std::process::ExitCode;

mod bulk;
mod client;
mod http;
mod net;
mod pingpong;
mod server;
mod session;
mod sidecar;

#[derive(Parser)]
#[command(name = "mwtest", about = "Test peers for meshwire's end-to-end suite")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Transparent proxy: outbound forwards to SO_ORIGINAL_DST, inbound hands to the app.
    Sidecar {
        /// Outbound listener (connections meshwire redirected from the pod's apps).
        #[arg(long, default_value = "127.0.0.1:15001")]
        listen: SocketAddr,
        /// A second outbound listener, for native IPv6 (e.g. [::1]:15001); its
        /// connections' destination is read with IP6T_SO_ORIGINAL_DST.
        #[arg(long)]
        listen6: Option<SocketAddr>,
        /// Before each native IPv6 connection's IP6T_SO_ORIGINAL_DST, ask for it
        /// with buffers of 28, 64, 200 and 27 bytes and a NULL one, and log every
        /// answer byte for byte (`answer6 ...`).
        #[arg(long)]
        answers6: bool,
        /// Inbound listener (connections to the pod's app ports), e.g. 0.0.0.0:15003.
        /// Each is handed to 127.0.0.1:<original port>.
        #[arg(long)]
        inbound_listen: Option<SocketAddr>,
        /// A second inbound listener, for native IPv6 ([::]:15003): each connection is
        /// handed to [::1]:<original port>.
        #[arg(long)]
        inbound_listen6: Option<SocketAddr>,
        /// Load balancing: outbound connections whose original destination is VIP:PORT
        /// go to the listed backends in turn (round robin). Repeatable.
        #[arg(long, value_name = "VIP:PORT=IP:PORT,IP:PORT...")]
        route: Vec<sidecar::Route>,
        /// Write no via-sidecar / via-inbound-sidecar marker upstream (pure relay).
        #[arg(long)]
        no_marker: bool,
        /// Before each outbound connection's SO_ORIGINAL_DST, ask for it with a NULL
        /// buffer and with a short one, and log both errors (`probe ... null= short=`).
        #[arg(long)]
        probe_misuse: bool,
        /// Drop to this UID after listening (the mesh's bypass UID).
        #[arg(long)]
        uid: Option<u32>,
        /// Group to drop to (defaults to --uid).
        #[arg(long)]
        gid: Option<u32>,
    },
    /// Echo server that reports its name and the connection's addresses.
    Server {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        name: String,
    },
    /// Writes back every byte it reads (for pingpong and session).
    Echo {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Round trips on one persistent connection to an echo server; prints JSON
    /// with the round-trip time's percentiles in microseconds.
    Pingpong {
        #[arg(long)]
        connect: SocketAddr,
        /// Bytes per message.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// How long to measure.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Untimed round trips first.
        #[arg(long, default_value_t = 1000)]
        warmup: usize,
    },
    /// One long-lived connection to an echo server: `tick N` every --interval-ms
    /// for --seconds, each echoed back (see session.rs).
    Session {
        #[arg(long)]
        connect: SocketAddr,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        /// The sidecar's marker must name this original destination.
        #[arg(long)]
        expect_orig: Option<SocketAddr>,
    },
    /// HTTP/1.1 responder: 200 with BODY and a newline to every request, then close.
    Http {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        body: String,
    },
    /// Bulk transfer server: "up" hashes what it receives, "down" sends (see bulk.rs).
    BulkServer {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Bulk transfers checked by SHA-256, COUNT connections, PARALLEL at a time.
    BulkClient {
        #[arg(long)]
        connect: SocketAddr,
        #[arg(long, value_enum)]
        mode: bulk::Mode,
        /// Payload bytes per connection.
        #[arg(long)]
        bytes: u64,
        /// How the sender writes the payload.
        #[arg(long, value_enum, default_value = "write")]
        method: bulk::Method,
        /// Bytes per write() with --method write.
        #[arg(long, default_value_t = 1 << 20)]
        chunk: usize,
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        /// Connect and read/write timeout in seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Opens connections and checks every reply.
    #[command(group(
        ArgGroup::new("expectation")
            .required(true)
            .multiple(true)
            .args(["expect_orig", "expect_direct", "expect_inbound_orig", "rst", "expect_no_connection"])
    ))]
    Client {
        #[command(flatten)]
        opts: client::Options,
        /// Run as this UID (e.g. the sidecar's bypass UID).
        #[arg(long)]
        uid: Option<u32>,
        /// Group to run as (defaults to --uid).
        #[arg(long)]
        gid: Option<u32>,
        /// Then setresuid(REAL, EFFECTIVE, SAVED): e.g. 1500,0,0 is a root process
        /// whose real UID is the sidecar's (its sockets are root's: the filesystem
        /// UID follows the effective one).
        #[arg(long, value_name = "REAL,EFFECTIVE,SAVED", value_parser = net::parse_resuid)]
        resuid: Option<(u32, u32, u32)>,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().cmd {
        Cmd::Sidecar { listen, listen6, answers6, inbound_listen, inbound_listen6, route, no_marker, probe_misuse, uid, gid } => {
            let opts = sidecar::Options { listen, listen6, answers6, inbound_listen, inbound_listen6, routes: route, marker: !no_marker, probe_misuse };
            sidecar::run(opts, uid, gid)
        }
        Cmd::Server { listen, name } => server::run(listen, &name),
        Cmd::Http { listen, body } => http::run(listen, &body),
        Cmd::BulkServer { listen } => bulk::serve(listen),
        Cmd::BulkClient { connect, mode, bytes, method, chunk, count, parallel, timeout } => {
            let opts = bulk::ClientOptions {
                connect,
                mode,
                bytes,
                method,
                chunk,
                count,
                parallel,
                timeout: std::time::Duration::from_secs(timeout.max(1)),
            };
            return match bulk::run_client(&opts) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("bulk-client: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Cmd::Echo { listen } => pingpong::echo(listen),
        Cmd::Session { connect, seconds, interval_ms, expect_orig } => {
            let opts = session::Options {
                connect,
                seconds,
                interval: std::time::Duration::from_millis(interval_ms),
                expect_orig,
                timeout: std::time::Duration::from_secs(5),
            };
            match session::run(&opts) {
                Ok(line) => {
                    println!("{line}");
                    Ok(())
                }
                Err(e) => Err(std::io::Error::other(e)),
            }
        }
        Cmd::Pingpong { connect, size, seconds, warmup } => {
            let opts = pingpong::Options { connect, size, seconds, warmup, timeout: std::time::Duration::from_secs(5) };
            pingpong::run(&opts).map(|line| println!("{line}")).map_err(|e| std::io::Error::new(e.kind(), format!("pingpong {connect}: {e}")))
        }
        Cmd::Client { opts, uid, gid, resuid } => {
            if let Some(uid) = uid {
                if let Err(e) = net::drop_privileges(uid, gid.unwrap_or(uid)) {
                    eprintln!("client: cannot drop privileges to uid {uid}: {e}");
                    return ExitCode::from(2);
                }
            }
            if let Some((r, e, s)) = resuid {
                if let Err(err) = net::set_resuid(r, e, s) {
                    eprintln!("client: setresuid({r}, {e}, {s}): {err}");
                    return ExitCode::from(2);
                }
            }
            return match client::run(&opts) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("client: {e}");
                    ExitCode::from(2)
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mwtest: {e}");
            ExitCode::from(2)
        }
    }
}
