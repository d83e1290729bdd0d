//! meshwire-loader: the node daemon and its operator commands.

mod config;
mod daemon;
mod datapath;
mod layout;
mod libbpf;
mod objects;
mod pins;
mod pods;
mod system;
mod tc;
#[cfg(test)]
mod testutil;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use config::Config;
use pins::Pins;

#[derive(Parser)]
#[command(name = "meshwire-loader", version, about = "meshwire node daemon: steers meshed pods' TCP traffic into their sidecar with eBPF")]
struct Cli {
    /// Configuration file (TOML); without it the embedded config/default.toml is used.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// cgroup v2 directory to attach to (overrides bpf.cgroup).
    #[arg(long, global = true, value_name = "DIR")]
    cgroup: Option<PathBuf>,
    /// bpffs directory for pins (overrides bpf.pin_dir).
    #[arg(long, global = true, value_name = "DIR")]
    pin_dir: Option<PathBuf>,
    /// error, warn, info, debug or trace (overrides log.level).
    #[arg(long, global = true, value_name = "LEVEL", value_parser = config::parse_level)]
    log_level: Option<log::LevelFilter>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Load and attach the datapath, then run until SIGINT/SIGTERM (the default).
    Run,
    /// Detach the programs and remove every pin under the pin directory.
    Cleanup,
    /// Register, unregister and list meshed pods.
    #[command(subcommand)]
    Pod(PodCommand),
    /// Show the datapath's counters.
    Stats,
    /// Show each pinned map with its entry count and capacity.
    Maps,
}

#[derive(Subcommand)]
enum PodCommand {
    /// Mesh the pod whose network namespace is at --netns.
    Add {
        #[arg(long, value_name = "PATH")]
        netns: PathBuf,
        /// The pod's IPv4 address: connections to it are intercepted inbound.
        #[arg(long)]
        ip: Option<Ipv4Addr>,
        /// The pod's interface (in its netns): attach tc there so that
        /// connections from other nodes reach the sidecar (needs --ip).
        #[arg(long, value_name = "IF", requires = "ip")]
        ifname: Option<String>,
    },
    /// Stop meshing a pod.
    Del {
        #[arg(long, value_name = "PATH", required_unless_present = "cookie", conflicts_with = "cookie")]
        netns: Option<PathBuf>,
        #[arg(long)]
        cookie: Option<u64>,
    },
    /// List meshed pods.
    List,
}

fn config_of(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default_config(),
    };
    if let Some(c) = &cli.cgroup {
        if !c.is_absolute() {
            return Err(format!("--cgroup {}: give an absolute cgroup v2 directory", c.display()));
        }
        config.bpf.cgroup = Some(c.clone());
    }
    if let Some(p) = &cli.pin_dir {
        if !p.is_absolute() {
            return Err(format!("--pin-dir {}: give an absolute directory on bpffs", p.display()));
        }
        config.bpf.pin_dir = p.clone();
    }
    if let Some(l) = cli.log_level {
        config.log_level = l;
    }
    Ok(config)
}

fn init_logging(level: log::LevelFilter) {
    let cfg = simplelog::ConfigBuilder::new().set_time_format_rfc3339().build();
    let _ = simplelog::TermLogger::init(level, cfg, simplelog::TerminalMode::Stderr, simplelog::ColorChoice::Never);
    libbpf::route_libbpf_logs();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config_of(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meshwire-loader: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_level);
    match execute(cli.command.unwrap_or(Command::Run), &config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("meshwire-loader: {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command, config: &Config) -> Result<(), String> {
    let pins = Pins::new(&config.bpf.pin_dir);
    match command {
        Command::Run => daemon::run(config),
        Command::Cleanup => {
            for p in datapath::cleanup(pins.root())? {
                println!("removed {}", p.display());
            }
            Ok(())
        }
        Command::Pod(PodCommand::Add { netns, ip, ifname }) => {
            let cookie = pods::register(&pins, &netns, ip)?;
            if let Some(ifname) = ifname {
                if let Err(e) = tc::attach_pod(&pins, cookie, &netns, &ifname) {
                    // No half-meshed pod: take the registration back.
                    if let Err(e2) = pods::unregister(&pins, cookie) {
                        log::warn!("unregistering pod {cookie} after the failed tc attach: {e2}");
                    }
                    return Err(e);
                }
            }
            println!("{cookie}");
            Ok(())
        }
        Command::Pod(PodCommand::Del { netns, cookie }) => {
            let cookie = match (netns, cookie) {
                (_, Some(c)) => c,
                (Some(ns), None) => system::netns_cookie(&ns)?,
                (None, None) => unreachable!("clap requires one"),
            };
            let was_meshed = pods::unregister(&pins, cookie)?;
            tc::detach_pod(&pins, cookie)?;
            if !was_meshed {
                println!("pod with netns cookie {cookie} was not meshed");
            }
            Ok(())
        }
        Command::Pod(PodCommand::List) => {
            println!("{:<20} {:<8} ip", "netns_cookie", "flags");
            for (cookie, pod) in pods::list(&pins)? {
                let ip = if pod.ip4 == 0 { "-".to_string() } else { Ipv4Addr::from(u32::from_be(pod.ip4)).to_string() };
                println!("{cookie:<20} {:<8} {ip}", format!("{:#x}", pod.flags));
            }
            Ok(())
        }
        Command::Stats => {
            let map = libbpf::MapFd::open_pinned(&pins.map(pins::MAP_STATS)).map_err(|e| e.to_string())?;
            for (i, name) in layout::STAT_NAMES.iter().enumerate() {
                let v = map.lookup_percpu_sum(&(i as u32)).map_err(|e| e.to_string())?;
                println!("{} {v}", name.trim_start_matches("MW_STAT_").to_lowercase());
            }
            Ok(())
        }
        Command::Maps => {
            for name in pins::ALL_MAPS {
                let map = libbpf::MapFd::open_pinned(&pins.map(name)).map_err(|e| e.to_string())?;
                let info = map.info().map_err(|e| e.to_string())?;
                // Socket storage cannot be iterated by key; it lives and dies with its sockets.
                let count = if info.map_type == libbpf_sys::BPF_MAP_TYPE_SK_STORAGE {
                    "-".to_string()
                } else {
                    map.raw_keys().map_err(|e| e.to_string())?.len().to_string()
                };
                println!("{name} {count} {}", info.max_entries);
            }
            Ok(())
        }
    }
}
