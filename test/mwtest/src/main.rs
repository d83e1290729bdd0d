//! mwtest: test peers for meshwire's end-to-end suite.
//!
//! * `sidecar`: accepts redirected connections, asks the kernel for the original
//!   destination (getsockopt SOL_IP/SO_ORIGINAL_DST, as netfilter REDIRECT provides
//!   and meshwire emulates), connects there, announces itself upstream with
//!   `via-sidecar orig=<ip:port>\n` and relays bytes both ways.
//! * `server`: reads a request until EOF and replies with
//!   `server=NAME local=<local> peer=<peer>\n` followed by the bytes received.
//! * `client`: opens N connections and checks that each reply shows the expected path.

use clap::{Parser, Subcommand};
use std::net::{SocketAddr, SocketAddrV4};
use std::process::ExitCode;

mod client;
mod net;
mod server;
mod sidecar;

#[derive(Parser)]
#[command(name = "mwtest", about = "Test peers for meshwire's end-to-end suite")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Transparent outbound proxy that forwards to SO_ORIGINAL_DST.
    Sidecar {
        #[arg(long, default_value = "127.0.0.1:15001")]
        listen: SocketAddr,
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
    /// Opens connections and checks every reply.
    Client {
        #[arg(long)]
        connect: SocketAddr,
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        /// Expect each connection to go through a sidecar that saw this original destination.
        #[arg(long, conflicts_with = "expect_direct", required_unless_present = "expect_direct")]
        expect_orig: Option<SocketAddrV4>,
        /// Expect each connection to reach the server directly (no sidecar).
        #[arg(long)]
        expect_direct: bool,
        /// Expect the reply to come from the server with this name.
        #[arg(long)]
        expect_server: Option<String>,
        /// Connect and read timeout in seconds.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
        /// Run as this UID (e.g. the sidecar's bypass UID).
        #[arg(long)]
        uid: Option<u32>,
        /// Group to run as (defaults to --uid).
        #[arg(long)]
        gid: Option<u32>,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().cmd {
        Cmd::Sidecar { listen, uid, gid } => sidecar::run(listen, uid, gid),
        Cmd::Server { listen, name } => server::run(listen, &name),
        Cmd::Client { connect, count, parallel, expect_orig, expect_direct: _, expect_server, timeout, uid, gid } => {
            let opts = client::Options {
                connect,
                count,
                parallel: parallel.max(1),
                expect: client::Expect { orig: expect_orig, server: expect_server },
                timeout: std::time::Duration::from_secs(timeout.max(1)),
            };
            if let Some(uid) = uid {
                if let Err(e) = net::drop_privileges(uid, gid.unwrap_or(uid)) {
                    eprintln!("client: cannot drop privileges to uid {uid}: {e}");
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
