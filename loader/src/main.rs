//! meshwire-loader: the node daemon and its operator commands.

mod cni_install;
mod config;
mod daemon;
mod datapath;
mod error;
mod interception;
mod libbpf;
mod lock;
mod service;
mod system;
mod timing;
mod version;
mod views;
#[cfg(test)]
mod testutil;
#[cfg(test)]
mod layering_tests;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use config::Config;
use datapath::pins::Pins;
use datapath::tc;
use service::control;
use service::pod_service::PodService;
use views::{inspect, trace};

#[derive(Parser)]
#[command(
    name = "meshwire-loader",
    version = version::VERSION.as_str(),
    about = "meshwire node daemon: steers meshed pods' TCP traffic into their sidecar with eBPF",
    after_help = "Options given before the command are used by the commands that take them (`meshwire-loader COMMAND -h` lists those) and ignored by the others."
)]
struct Cli {
    #[command(flatten)]
    given: Given,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Options every command reads.
#[derive(clap::Args, Clone, Default)]
struct Common {
    /// Configuration file (TOML); without it the embedded config/default.toml is used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// error, warn, info, debug or trace (overrides log.level).
    #[arg(long, value_name = "LEVEL", value_parser = config::parse_level)]
    log_level: Option<log::LevelFilter>,
}

#[derive(clap::Args, Clone, Default)]
struct CgroupOpt {
    /// cgroup v2 directory to attach to (overrides bpf.cgroup).
    #[arg(long, value_name = "DIR")]
    cgroup: Option<PathBuf>,
}

#[derive(clap::Args, Clone, Default)]
struct PinOpt {
    /// bpffs directory for pins (overrides bpf.pin_dir).
    #[arg(long, value_name = "DIR")]
    pin_dir: Option<PathBuf>,
}

#[derive(clap::Args, Clone, Default)]
struct ApiOpt {
    /// The control API's Unix socket (overrides api.socket).
    #[arg(long, value_name = "PATH")]
    api_socket: Option<PathBuf>,
}

#[derive(clap::Args, Clone, Default)]
struct StateOpt {
    /// Where pod records are kept (overrides api.state_dir).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// Every option a command may read: those given before the command (Cli)
/// and all of `run`'s; Given::of merges them with the command's own.
#[derive(clap::Args, Clone, Default)]
struct Given {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    cgroup: CgroupOpt,
    #[command(flatten)]
    pins: PinOpt,
    #[command(flatten)]
    api: ApiOpt,
    #[command(flatten)]
    state: StateOpt,
}

impl Given {
    /// The options given, before the command and after it (which wins).
    fn of(cli: &Cli) -> Given {
        let top = cli.given.clone();
        let Some(command) = &cli.command else { return top };
        let own = command.given();
        Given {
            common: Common { config: own.common.config.or(top.common.config), log_level: own.common.log_level.or(top.common.log_level) },
            cgroup: CgroupOpt { cgroup: own.cgroup.cgroup.or(top.cgroup.cgroup) },
            pins: PinOpt { pin_dir: own.pins.pin_dir.or(top.pins.pin_dir) },
            api: ApiOpt { api_socket: own.api.api_socket.or(top.api.api_socket) },
            state: StateOpt { state_dir: own.state.state_dir.or(top.state.state_dir) },
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Load and attach the datapath, then run until SIGINT/SIGTERM (the default).
    /// Another loader serving the same state dir: wait for it to stop, then take over.
    Run {
        /// Exit at once, naming the running loader, instead of waiting for it.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        given: Given,
    },
    /// Detach the programs and remove every pin under the pin directory.
    Cleanup {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        pins: PinOpt,
        #[command(flatten)]
        state: StateOpt,
    },
    /// Register, unregister and list meshed pods.
    #[command(subcommand)]
    Pod(PodCommand),
    /// Install meshwire-cni into a node's CNI configuration (and uninstall it).
    #[command(subcommand)]
    Cni(cni_install::CniCommand),
    /// Show the datapath's counters.
    Stats {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        pins: PinOpt,
    },
    /// Show each pinned map with its entry count and capacity.
    Maps {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        pins: PinOpt,
    },
    /// The running loader (version, PID), programs (attachment, runs, cost per run), maps (fill), counters, kernel.
    Status {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        pins: PinOpt,
        #[command(flatten)]
        api: ApiOpt,
    },
    /// Original destinations in flight (awaiting the sidecar's accept, tc flows).
    Conns {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        pins: PinOpt,
    },
    /// Meshed pods (from the daemon): cookies, netns, interface, IPs and exclusions.
    Pods {
        /// One JSON array of the pod records.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        api: ApiOpt,
        #[command(flatten)]
        pins: PinOpt,
    },
    /// Follow the datapath's decisions live (needs `bpf.trace = true`), until Ctrl-C.
    Trace {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Only this network namespace's events (its cookie, as `pods` shows it).
        #[arg(long, value_name = "COOKIE")]
        netns_cookie: Option<u64>,
        /// Stop after N events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,
        /// Also print the events still in the ring buffer from before the trace started.
        #[arg(long)]
        backlog: bool,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        pins: PinOpt,
    },
}

#[derive(Subcommand)]
enum PodCommand {
    /// Mesh the pod whose network namespace is at --netns (through the running daemon).
    Add {
        /// The pod's network namespace (a bind mount such as /run/netns/NAME, or /proc/PID/ns/net).
        #[arg(long, value_name = "PATH")]
        netns: PathBuf,
        /// The pod's address(es), IPv4 or IPv6 (repeatable): inbound connections to them are
        /// intercepted (IPv6 with interception.ipv6 = "intercept").
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        /// The pod's interface in its netns: tc intercepts inbound traffic from other nodes there.
        #[arg(long, default_value = "")]
        ifname: String,
        /// The pod's identity (CNI uses the container ID); default: derived from --netns.
        #[arg(long)]
        id: Option<String>,
        /// Never steer this pod's outbound connections to this port (repeatable).
        #[arg(long = "exclude-outbound-port", value_name = "PORT")]
        exclude_outbound_ports: Vec<u16>,
        /// Never steer this pod's outbound connections to this network, IPv4
        /// or IPv6 (repeatable).
        #[arg(long = "exclude-outbound-cidr", value_name = "CIDR")]
        exclude_outbound_cidrs: Vec<String>,
        /// Never redirect inbound connections to this port of the pod to its sidecar (repeatable).
        #[arg(long = "exclude-inbound-port", value_name = "PORT")]
        exclude_inbound_ports: Vec<u16>,
        /// Steer only outbound connections to these CIDRs, IPv4 or IPv6 (and to
        /// --include-outbound-port); "*" (the default) steers all, "" none (Istio's
        /// includeOutboundIPRanges).
        #[arg(long = "include-outbound-cidrs", value_name = "CIDR,...")]
        include_outbound_cidrs: Option<String>,
        /// Outbound ports steered whatever the address (Istio's includeOutboundPorts).
        #[arg(long = "include-outbound-port", value_name = "PORT")]
        include_outbound_ports: Vec<u16>,
        /// Redirect only inbound connections to these ports; "*" (the default) all, "" none
        /// (Istio's includeInboundPorts).
        #[arg(long = "include-inbound-ports", value_name = "PORT,...")]
        include_inbound_ports: Option<String>,
        /// Accelerate this pod's mesh hops (true) or not (false), when the node runs acceleration;
        /// default: the node's `[acceleration] pods`.
        #[arg(long, value_name = "BOOL")]
        accelerate: Option<bool>,
        /// Send this pod's DNS (port 53, UDP and TCP) to its sidecar's DNS proxy (true) or not
        /// (false); default: the node's `[dns] capture`.
        #[arg(long = "dns-capture", value_name = "BOOL")]
        dns_capture: Option<bool>,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        api: ApiOpt,
    },
    /// Stop meshing a pod, by --id or --netns.
    Del {
        /// The network namespace of the pod to unmesh (as given to `pod add --netns`).
        #[arg(long, value_name = "PATH", required_unless_present = "id", conflicts_with = "id")]
        netns: Option<PathBuf>,
        /// The pod's identity (as `pod add --id` set it, or `pod list` shows it).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        api: ApiOpt,
    },
    /// List meshed pods.
    List {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        api: ApiOpt,
    },
}

impl Command {
    /// The options given after the command (those it has).
    fn given(&self) -> Given {
        let mut g = Given::default();
        match self {
            Command::Run { given, .. } => g = given.clone(),
            Command::Cleanup { common, pins, state } => (g.common, g.pins, g.state) = (common.clone(), pins.clone(), state.clone()),
            Command::Stats { common, pins } | Command::Maps { common, pins } | Command::Conns { common, pins } | Command::Trace { common, pins, .. } => {
                (g.common, g.pins) = (common.clone(), pins.clone())
            }
            Command::Pods { common, api, pins, .. } | Command::Status { common, api, pins } => (g.common, g.api, g.pins) = (common.clone(), api.clone(), pins.clone()),
            Command::Pod(PodCommand::Add { common, api, .. } | PodCommand::Del { common, api, .. } | PodCommand::List { common, api }) => {
                (g.common, g.api) = (common.clone(), api.clone())
            }
            Command::Cni(_) => {}
        }
        g
    }
}

/// A comma-separated include list of `pod add`: None for "*" (or not given),
/// Some(items) otherwise ("" is the empty list).
fn cli_list(flag: &str, given: Option<String>) -> Result<Option<Vec<String>>, String> {
    let Some(v) = given else { return Ok(None) };
    let v = v.trim();
    if v == "*" {
        return Ok(None);
    }
    if v.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let items: Vec<String> = v.split(',').map(|i| i.trim().to_string()).collect();
    if items.iter().any(|i| i.is_empty() || i == "*") {
        return Err(format!("{flag} {v:?}: a comma-separated list, or \"*\" alone"));
    }
    Ok(Some(items))
}

/// `pod add` without --id: a stable identity from the netns path, one per
/// path: '/' becomes '_', letters, digits and '-' stay, every other byte is
/// '.' and its two hex digits (so /run/netns/a.b and a_b stay apart).
fn cli_pod_id(netns: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let raw = netns.as_os_str().as_bytes();
    let start = raw.iter().position(|&b| b != b'/').unwrap_or(raw.len());
    let mut id = String::from("cli-");
    for &b in &raw[start..] {
        match b {
            b'/' => id.push('_'),
            b'-' => id.push('-'),
            _ if b.is_ascii_alphanumeric() => id.push(b as char),
            _ => id.push_str(&format!(".{b:02x}")),
        }
    }
    id
}

fn api_call(socket: &std::path::Path, op: meshwire_api::Op) -> Result<meshwire_api::OpResult, String> {
    match meshwire_api::call(socket, op, std::time::Duration::from_secs(30)) {
        Err(unreachable) => Err(format!("{unreachable}; is `meshwire-loader run` running with --api-socket {}?", socket.display())),
        Ok(Err(api_error)) => Err(api_error.to_string()),
        Ok(Ok(result)) => Ok(result),
    }
}

fn config_of(cli: &Given) -> Result<Config, String> {
    let mut config = match &cli.common.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default_config(),
    };
    if let Some(c) = &cli.cgroup.cgroup {
        if !c.is_absolute() {
            return Err(format!("--cgroup {}: give an absolute cgroup v2 directory", c.display()));
        }
        config.bpf.cgroup = Some(c.clone());
    }
    if let Some(p) = &cli.pins.pin_dir {
        if !p.is_absolute() {
            return Err(format!("--pin-dir {}: give an absolute directory on bpffs", p.display()));
        }
        config.bpf.pin_dir = p.clone();
    }
    for (flag, given, slot) in [
        ("--api-socket", &cli.api.api_socket, &mut config.api.socket),
        ("--state-dir", &cli.state.state_dir, &mut config.api.state_dir),
    ] {
        if let Some(p) = given {
            if !p.is_absolute() {
                return Err(format!("{flag} {}: give an absolute path", p.display()));
            }
            *slot = p.clone();
        }
    }
    if let Some(l) = cli.common.log_level {
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
    let config = match config_of(&Given::of(&cli)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meshwire-loader: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_level);
    if prints_a_view(cli.command.as_ref()) {
        // Rust ignores SIGPIPE, so a closed stdout (`maps | head`) would make
        // println! panic; a view just ends quietly, as other commands do.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let api = control::ApiPaths { socket: config.api.socket.clone(), state_dir: config.api.state_dir.clone() };
    let run = || Command::Run { no_wait: false, given: Given::default() };
    match execute(cli.command.unwrap_or_else(run), &config, &api) {
        Ok(()) => ExitCode::SUCCESS,
        // Printed once: not also as a log line.
        Err(e) => {
            eprintln!("meshwire-loader: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The commands whose output is a view of the datapath or of the pods
/// (often piped into `head` or `grep`).
fn prints_a_view(command: Option<&Command>) -> bool {
    matches!(
        command,
        Some(
            Command::Stats { .. }
                | Command::Maps { .. }
                | Command::Status { .. }
                | Command::Conns { .. }
                | Command::Pods { .. }
                | Command::Pod(PodCommand::List { .. })
                | Command::Trace { .. }
        )
    )
}

fn execute(command: Command, config: &Config, api: &control::ApiPaths) -> Result<(), String> {
    let pins = Pins::new(&config.bpf.pin_dir);
    match command {
        Command::Run { no_wait, .. } => Ok(daemon::run(config, api, !no_wait)?),
        Command::Cleanup { .. } => {
            // The pods first, each as `pod del` takes it away, while their
            // records say where their tc filters (not pinned) and rules are.
            let mut failed = Vec::new();
            if api.state_dir.join("pods").is_dir() {
                let service = PodService::new(&api.state_dir, interception::for_cleanup(config, &pins))?;
                let (removed, not_removed) = service.del_all()?;
                for r in removed {
                    println!("removed pod record {}", r.spec.container_id);
                }
                for e in &not_removed {
                    log::warn!("{e}");
                }
                failed = not_removed;
            }
            // Pods with clsact filters whose records are gone: found by cookie
            // among the namespaces CNI runtimes mount.
            let netns_dirs = [std::path::Path::new("/run/netns"), std::path::Path::new("/var/run/netns")];
            tc::detach_orphans(&pins, &netns_dirs, &[])?;
            for p in datapath::cleanup(pins.root())? {
                println!("removed {}", p.display());
            }
            match failed.len() {
                0 => Ok(()),
                n => Err(format!("{n} pod(s) could not be taken out (their records stay): {}", failed.join("; "))),
            }
        }
        Command::Pod(PodCommand::Add {
            netns,
            ips,
            ifname,
            id,
            exclude_outbound_ports,
            exclude_outbound_cidrs,
            exclude_inbound_ports,
            include_outbound_cidrs,
            include_outbound_ports,
            include_inbound_ports,
            accelerate,
            dns_capture,
            ..
        }) => {
            let include_inbound_ports = match cli_list("--include-inbound-ports", include_inbound_ports)? {
                None => None,
                Some(v) => Some(v.iter().map(|p| p.parse::<u16>().map_err(|_| format!("--include-inbound-ports: {p:?} is not a port"))).collect::<Result<Vec<_>, _>>()?),
            };
            let (exclude_outbound_cidrs, exclude_outbound_cidrs6) =
                meshwire_api::split_families(exclude_outbound_cidrs.iter().map(String::as_str))
                    .map_err(|e| format!("--exclude-outbound-cidr: {e}"))?;
            let (include_outbound_cidrs, include_outbound_cidrs6) = match cli_list("--include-outbound-cidrs", include_outbound_cidrs)? {
                None => (None, Vec::new()),
                Some(v) => {
                    let (v4, v6) = meshwire_api::split_families(v.iter().map(String::as_str))
                        .map_err(|e| format!("--include-outbound-cidrs: {e}"))?;
                    (Some(v4), v6)
                }
            };
            let pod = meshwire_api::PodSpec {
                container_id: id.unwrap_or_else(|| cli_pod_id(&netns)),
                netns,
                ifname,
                ips: ips.iter().filter_map(|ip| match ip { IpAddr::V4(a) => Some(*a), IpAddr::V6(_) => None }).collect(),
                ips6: ips.iter().filter_map(|ip| match ip { IpAddr::V6(a) => Some(*a), IpAddr::V4(_) => None }).collect(),
                namespace: None,
                name: None,
                exclude_outbound_ports,
                exclude_outbound_cidrs,
                exclude_outbound_cidrs6,
                exclude_inbound_ports,
                include_outbound_cidrs,
                include_outbound_cidrs6,
                include_outbound_ports,
                include_inbound_ports,
                accelerate,
                dns_capture,
                network: None,
            };
            let result = api_call(&api.socket, meshwire_api::Op::AddPod { pod })?;
            println!("{}", result.pod.map_or(0, |p| p.netns_cookie));
            Ok(())
        }
        Command::Pod(PodCommand::Del { netns, id, .. }) => {
            let container_id = match (id, netns) {
                (Some(id), _) => id,
                (None, Some(ns)) => {
                    let pods = api_call(&api.socket, meshwire_api::Op::ListPods)?.pods.unwrap_or_default();
                    match pods.into_iter().find(|p| p.spec.netns == ns) {
                        Some(p) => p.spec.container_id,
                        None => {
                            println!("no meshed pod has netns {}", ns.display());
                            return Ok(());
                        }
                    }
                }
                (None, None) => unreachable!("clap requires one"),
            };
            let result = api_call(&api.socket, meshwire_api::Op::DelPod { container_id: container_id.clone(), ifname: None })?;
            if result.existed != Some(true) {
                println!("pod {container_id} was not meshed");
            }
            Ok(())
        }
        Command::Pod(PodCommand::List { .. }) => {
            let pods = api_call(&api.socket, meshwire_api::Op::ListPods)?.pods.unwrap_or_default();
            print!("{}", inspect::describe_pod_list(&pods));
            Ok(())
        }
        Command::Cni(c) => cni_install::execute(c, &api.socket).map_err(|e| e.to_string()),
        Command::Stats { .. } => {
            inspect::require_datapath(&pins)?;
            for (name, v) in inspect::counters(&pins)? {
                println!("{name} {v}");
            }
            Ok(())
        }
        Command::Maps { .. } => {
            inspect::require_datapath(&pins)?;
            for m in inspect::map_fill(&pins)? {
                println!("{} {} {}", m.name, m.entries.map_or("-".to_string(), |n| n.to_string()), m.capacity);
            }
            // A map not pinned is not listed: named, with what to do.
            Ok(pins.require_all_maps().map_err(error::Error::from)?)
        }
        Command::Status { .. } => {
            // The loader serving the API: its version says which one runs
            // (after an upgrade, the new one). Not running is a fact, not an error.
            let loader = match meshwire_api::call(&api.socket, meshwire_api::Op::Status, std::time::Duration::from_secs(5)) {
                Ok(Ok(r)) => inspect::describe_loader(r.status.as_ref(), &api.socket),
                Ok(Err(e)) => format!("loader answers on {} with an error: {e}", api.socket.display()),
                Err(u) => format!("loader not answering: {u}"),
            };
            Ok(inspect::print_status(&pins, &loader)?)
        }
        Command::Conns { .. } => {
            inspect::require_datapath(&pins)?;
            Ok(inspect::print_conns(&pins)?)
        }
        Command::Pods { json, .. } => {
            let pods = api_call(&api.socket, meshwire_api::Op::ListPods)?.pods.unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&pods).map_err(|e| e.to_string())?);
                return Ok(());
            }
            let (text, read) = inspect::pods_view(&pods, &pins, config.dns.capture);
            print!("{text}");
            Ok(read?)
        }
        Command::Trace { json, netns_cookie, count, duration, backlog, .. } => {
            let duration = match duration {
                Some(d) if !(d.is_finite() && d > 0.0) => return Err(format!("--duration {d}: give a positive number of seconds")),
                d => d.map(std::time::Duration::from_secs_f64),
            };
            Ok(trace::run(&pins, &trace::TraceOpts { json, netns_cookie, count, duration, backlog })?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cli_pod_id;
    use std::path::Path;

    #[test]
    fn netns_paths_give_different_ids() {
        let ids: Vec<String> =
            ["/var/run/netns/a.b", "/var/run/netns/a_b", "/var/run/netns/a/b", "/var/run/netns/a-b", "/var/run/netns/a.2eb"].iter().map(|p| cli_pod_id(Path::new(p))).collect();
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b, "{ids:?}");
            }
        }
        assert_eq!(cli_pod_id(Path::new("/run/netns/mw1-pod2")), "cli-run_netns_mw1-pod2");
        assert_eq!(ids[0], "cli-var_run_netns_a.2eb");
    }
}
