//! The node configuration: TOML parsed into raw serde structs, then validated
//! into [`Config`]. Every error names the file, the line and the key.
//!
//! The defaults live in `config/default.toml`, embedded in the binary; a key
//! missing from a user's file takes its default.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

/// The embedded default configuration (also the reference documentation).
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub sidecar: Sidecar,
    pub outbound: Outbound,
    pub inbound: Inbound,
    pub bpf: BpfSettings,
    pub api: Api,
    /// Socket-level acceleration (sockops + sk_msg) between peers on the node.
    pub acceleration: Acceleration,
    /// How meshed pods' connections are steered into their sidecar.
    pub interception: Interception,
    /// `interception.ipv6`: what happens to meshed pods' native IPv6 TCP.
    pub ipv6: Ipv6Policy,
    /// `interception.outbound_sources`: loopback source addresses (from
    /// 127.128.0.1) an app's steered IPv4 connections spread over (eBPF mode).
    pub outbound_sources: u8,
    /// `[tc] attach`: how the tc programs are attached to pods' interfaces.
    pub tc_attach: TcAttach,
    /// `[dns]`: meshed pods' DNS to their sidecar's DNS proxy.
    pub dns: Dns,
    /// Where Prometheus metrics are served; None: off.
    pub metrics: Option<std::net::SocketAddr>,
    pub log_level: log::LevelFilter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// The control API's Unix socket (root only).
    pub socket: PathBuf,
    /// Pod records live in `<state_dir>/pods`.
    pub state_dir: PathBuf,
}

/// Entries one node-wide exclusion list may hold (MW_MAX_EXCL_* in
/// bpf/lib/meshwire_consts.h, shared with per-pod entries).
pub const MAX_LIST: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// The sidecar's UID: its connections are never intercepted.
    pub uid: u32,
    pub outbound_port: u16,
    pub inbound_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub exclude_ports: Vec<u16>,
    pub exclude_cidrs: Vec<Cidr4>,
    /// The IPv6 entries of `outbound.exclude_cidrs` (::1 is always excluded).
    pub exclude_cidrs6: Vec<Cidr6>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Node-wide: pods' ports reached directly from other nodes.
    pub exclude_ports: Vec<u16>,
}

/// `[dns]`: DNS capture, as Istio's DNS proxying does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    /// Whether a pod that does not say has its DNS captured (default false).
    pub capture: bool,
    /// The sidecar's DNS proxy, at 127.0.0.1 in the pod (UDP and TCP).
    pub port: u16,
    /// Only queries to these resolvers (IPv4 or IPv6) are captured; empty:
    /// any on port 53, in both families.
    pub servers: Vec<std::net::IpAddr>,
}

impl Dns {
    /// `servers`' IPv4 resolvers, in order.
    pub fn servers4(&self) -> Vec<std::net::Ipv4Addr> {
        self.servers.iter().filter_map(|a| match a { std::net::IpAddr::V4(a) => Some(*a), _ => None }).collect()
    }

    /// `servers`' IPv6 resolvers, in order.
    pub fn servers6(&self) -> Vec<std::net::Ipv6Addr> {
        self.servers.iter().filter_map(|a| match a { std::net::IpAddr::V6(a) => Some(*a), _ => None }).collect()
    }
}

/// Resolvers `[dns] servers` may list: mw_dns_servers4's (and
/// mw_dns_servers6's) capacity
/// (MW_MAX_DNS_SERVERS; a unit test holds them equal). A literal, as this
/// file is also built alone (fuzz/).
pub const MAX_DNS_SERVERS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfSettings {
    pub pin_dir: PathBuf,
    /// None: the cgroup2 mount's root.
    pub cgroup: Option<PathBuf>,
    pub debug: bool,
    /// Decision events into the `mw_events` ring buffer (`meshwire-loader trace`).
    pub trace: bool,
}

pub use meshwire_api::{Cidr4, Cidr6};

/// `interception.mode`: BPF map entries (the default) or netfilter rules in
/// each pod's network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interception {
    Ebpf,
    Iptables,
}

impl Interception {
    pub fn as_str(self) -> &'static str {
        match self {
            Interception::Ebpf => "ebpf",
            Interception::Iptables => "iptables",
        }
    }
}

impl FromStr for Interception {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ebpf" => Ok(Interception::Ebpf),
            "iptables" => Ok(Interception::Iptables),
            other => Err(format!("{other:?} is not an interception mode; use \"ebpf\" or \"iptables\"")),
        }
    }
}

/// `interception.ipv6`: what a meshed pod's native IPv6 TCP meets. IPv4
/// (v4-mapped addresses included) is always steered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Policy {
    /// Steer it both ways, as IPv4 (the default): outbound to the sidecar at
    /// `[::1]:<outbound_port>` (eBPF: connect6, sockops, getsockopt
    /// IP6T_SO_ORIGINAL_DST), inbound to the inbound port (connect6 on the
    /// same node, tc across nodes); iptables mode: ip6tables.
    Intercept,
    /// Refuse it (fail closed): connect() to a non-loopback IPv6 address by
    /// anyone but the sidecar fails, and IPv6 SYNs to the pod are dropped
    /// (node-wide excluded inbound ports and loopback excepted).
    Refuse,
    /// Let it through, unmeshed.
    Pass,
}

impl Ipv6Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Ipv6Policy::Refuse => "refuse",
            Ipv6Policy::Pass => "pass",
            Ipv6Policy::Intercept => "intercept",
        }
    }
}

impl FromStr for Ipv6Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "refuse" => Ok(Ipv6Policy::Refuse),
            "pass" => Ok(Ipv6Policy::Pass),
            "intercept" => Ok(Ipv6Policy::Intercept),
            other => Err(format!(
                "{other:?} is not an IPv6 policy; use \"intercept\" (meshed pods' native IPv6 TCP is steered to and from the sidecars, the default), \"refuse\" (it fails) or \"pass\" (it goes direct, bypassing the sidecars)"
            )),
        }
    }
}

/// `[acceleration]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acceleration {
    /// Load and attach the sockops/sk_msg acceleration (default false).
    pub enabled: bool,
    /// Which meshed pods get it when a pod does not say (default all).
    pub pods: AccelPods,
    /// Whether hops to destinations whose connections are short are
    /// accelerated (default learn: not while they are short).
    pub short_connections: ShortConnections,
}

/// `acceleration.short_connections`: what a mesh hop to a destination whose
/// recent accelerated connections were short (a request or two each) gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShortConnections {
    /// Learned per destination: not accelerated while its connections are
    /// short (docs/acceleration.md, "Short connections").
    Learn,
    /// Every mesh hop is accelerated (the behaviour before learning).
    Accelerate,
}

impl FromStr for ShortConnections {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "learn" => Ok(ShortConnections::Learn),
            "accelerate" => Ok(ShortConnections::Accelerate),
            other => Err(format!(
                "{other:?} is not a choice of short_connections; use \"learn\" (hops to destinations whose connections are short are not accelerated) or \"accelerate\" (every mesh hop is)"
            )),
        }
    }
}

/// `acceleration.pods`: the default for a pod registered without `accelerate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelPods {
    /// Every meshed pod, unless it says `accelerate = false`.
    All,
    /// Only pods that say `accelerate = true`.
    OptIn,
}

impl AccelPods {
    /// Whether a pod that does not say is accelerated.
    pub fn by_default(self) -> bool {
        self == AccelPods::All
    }
}

impl FromStr for AccelPods {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(AccelPods::All),
            "opt-in" => Ok(AccelPods::OptIn),
            other => Err(format!(
                "{other:?} is not a choice of pods; use \"all\" (every meshed pod unless it opts out) or \"opt-in\" (only pods registered with accelerate = true)"
            )),
        }
    }
}

/// `tc.attach`: how the tc programs are attached to a pod's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcAttach {
    /// clsact: what a pod's ADD and DEL can afford (tcx links cost two RCU
    /// grace periods each way; crate::datapath::tc).
    Auto,
    /// tcx links only (pinned under `<pin_dir>/pods/<cookie>/`).
    Tcx,
    /// Direct-action bpf filters on the interface's clsact qdisc.
    Clsact,
}

impl TcAttach {
    pub fn as_str(self) -> &'static str {
        match self {
            TcAttach::Auto => "auto",
            TcAttach::Tcx => "tcx",
            TcAttach::Clsact => "clsact",
        }
    }
}

impl FromStr for TcAttach {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(TcAttach::Auto),
            "tcx" => Ok(TcAttach::Tcx),
            "clsact" => Ok(TcAttach::Clsact),
            other => Err(format!(
                "{other:?} is not a tc attach mode; use \"auto\" (clsact filters), \"tcx\" or \"clsact\""
            )),
        }
    }
}

/// A configuration error, located in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    sidecar: RawSidecar,
    outbound: RawOutbound,
    inbound: RawInbound,
    bpf: RawBpf,
    api: RawApi,
    acceleration: RawAcceleration,
    interception: RawInterception,
    tc: RawTc,
    dns: RawDns,
    metrics: RawMetrics,
    log: RawLog,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    address: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawApi {
    socket: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawInterception {
    mode: Option<Spanned<String>>,
    ipv6: Option<Spanned<String>>,
    outbound_sources: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawDns {
    capture: Option<bool>,
    port: Option<Spanned<u16>>,
    servers: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTc {
    attach: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawAcceleration {
    enabled: Option<bool>,
    pods: Option<Spanned<String>>,
    short_connections: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSidecar {
    uid: Option<Spanned<u32>>,
    outbound_port: Option<Spanned<u16>>,
    inbound_port: Option<Spanned<u16>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawOutbound {
    exclude_ports: Option<Vec<Spanned<u16>>>,
    exclude_cidrs: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawInbound {
    exclude_ports: Option<Vec<Spanned<u16>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawBpf {
    pin_dir: Option<Spanned<String>>,
    cgroup: Option<Spanned<String>>,
    debug: Option<bool>,
    trace: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    level: Option<Spanned<String>>,
}

/// Where a parse or validation error is, from a byte offset in the source.
struct Source<'a> {
    name: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }

    fn error_at(&self, offset: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.name.to_string(),
            line: Some(self.line_of(offset)),
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    /// `section.key` of the assignment on a line, for serde's errors.
    fn key_on_line(&self, line: usize) -> Option<String> {
        let mut section = String::new();
        for (i, l) in self.text.lines().enumerate() {
            let t = l.trim();
            if t.starts_with('[') && t.ends_with(']') {
                section = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            }
            if i + 1 == line {
                let key = t.split_once('=').map(|(k, _)| k.trim().to_string())?;
                return Some(if section.is_empty() { key } else { format!("{section}.{key}") });
            }
        }
        None
    }
}

/// The most a configuration file may hold (the reference one is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Config {
    /// The embedded defaults.
    pub fn default_config() -> Config {
        Config::parse("<embedded config/default.toml>", DEFAULT_TOML).expect("the embedded default configuration is valid")
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let error = |message: String| ConfigError { file: path.display().to_string(), line: None, key: None, message };
        // Bounded: a path such as /dev/zero must not be read until memory runs out.
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text))
            .map_err(|e| error(format!("cannot read: {e}")))?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(error(format!("larger than {MAX_CONFIG_BYTES} bytes: not a meshwire configuration")));
        }
        Config::parse(&path.display().to_string(), &text)
    }

    /// Parse and validate; keys missing from `text` take the defaults.
    pub fn parse(name: &str, text: &str) -> Result<Config, ConfigError> {
        let src = Source { name, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| src.line_of(s.start));
            ConfigError {
                file: name.to_string(),
                line,
                key: line.and_then(|l| src.key_on_line(l)),
                message: syntax_message(e.message(), e.span().and_then(|s| text.get(s.start..))),
            }
        })?;
        let defaults = Defaults::get();

        let uid = raw.sidecar.uid.map_or(Ok(defaults.uid), |v| {
            if *v.get_ref() == 0 {
                Err(src.error_at(v.span().start, "sidecar.uid", "0 would exempt every root process from interception; use the sidecar's own UID"))
            } else {
                Ok(*v.get_ref())
            }
        })?;
        let port = |v: Option<Spanned<u16>>, key: &str, default: u16| -> Result<u16, ConfigError> {
            match v {
                None => Ok(default),
                Some(p) if *p.get_ref() == 0 => Err(src.error_at(p.span().start, key, "port 0 is not a port; use 1-65535")),
                Some(p) => Ok(*p.get_ref()),
            }
        };
        let outbound_port = port(raw.sidecar.outbound_port, "sidecar.outbound_port", defaults.outbound_port)?;
        let inbound_port = port(raw.sidecar.inbound_port, "sidecar.inbound_port", defaults.inbound_port)?;
        if outbound_port == inbound_port {
            return Err(ConfigError {
                file: name.to_string(),
                line: None,
                key: Some("sidecar.inbound_port".into()),
                message: format!("equals sidecar.outbound_port ({outbound_port}); the sidecar needs two distinct ports"),
            });
        }

        let too_long = |key: &str, n: usize| ConfigError {
            file: name.to_string(),
            line: None,
            key: Some(key.to_string()),
            message: format!("{n} entries; at most {MAX_LIST} are supported"),
        };
        let port_list = |v: Option<Vec<Spanned<u16>>>, key: &str, default: &[u16]| -> Result<Vec<u16>, ConfigError> {
            match v {
                None => Ok(default.to_vec()),
                Some(list) if list.len() > MAX_LIST => Err(too_long(key, list.len())),
                Some(list) => list.into_iter().map(|p| port(Some(p), key, 0)).collect(),
            }
        };
        let exclude_ports = port_list(raw.outbound.exclude_ports, "outbound.exclude_ports", &defaults.exclude_ports)?;
        let in_exclude_ports = port_list(raw.inbound.exclude_ports, "inbound.exclude_ports", &defaults.in_exclude_ports)?;
        // One list of both families, as Istio's excludeOutboundIPRanges.
        let (exclude_cidrs, exclude_cidrs6) = match raw.outbound.exclude_cidrs {
            None => (defaults.exclude_cidrs.clone(), Vec::new()),
            Some(list) if list.len() > MAX_LIST => return Err(too_long("outbound.exclude_cidrs", list.len())),
            Some(list) => {
                let (mut v4, mut v6) = (Vec::new(), Vec::new());
                for c in list {
                    let (a, b) = meshwire_api::split_families([c.get_ref().as_str()])
                        .map_err(|m| src.error_at(c.span().start, "outbound.exclude_cidrs", m))?;
                    v4.extend(a);
                    v6.extend(b);
                }
                (v4, v6)
            }
        };

        let pin_dir = match raw.bpf.pin_dir {
            None => defaults.pin_dir.clone(),
            Some(p) => {
                let path = PathBuf::from(p.get_ref());
                if !path.is_absolute() || path == Path::new("/") {
                    return Err(src.error_at(p.span().start, "bpf.pin_dir", format!("{:?} must be an absolute directory on bpffs, e.g. /sys/fs/bpf/meshwire", p.get_ref())));
                }
                path
            }
        };
        let cgroup = match raw.bpf.cgroup {
            None => defaults.cgroup.clone(),
            Some(c) if c.get_ref().is_empty() => None,
            Some(c) => {
                let path = PathBuf::from(c.get_ref());
                if !path.is_absolute() {
                    return Err(src.error_at(c.span().start, "bpf.cgroup", format!("{:?} must be an absolute cgroup v2 directory, or \"\" for the cgroup2 root", c.get_ref())));
                }
                Some(path)
            }
        };
        let debug = raw.bpf.debug.unwrap_or(defaults.debug);
        let trace = raw.bpf.trace.unwrap_or(defaults.trace);
        let abs_path = |v: Option<Spanned<String>>, key: &str, default: &Path| -> Result<PathBuf, ConfigError> {
            match v {
                None => Ok(default.to_path_buf()),
                Some(p) if Path::new(p.get_ref()).is_absolute() && p.get_ref() != "/" => Ok(PathBuf::from(p.get_ref())),
                Some(p) => Err(src.error_at(p.span().start, key, format!("{:?} must be an absolute path", p.get_ref()))),
            }
        };
        let api = Api {
            socket: abs_path(raw.api.socket, "api.socket", &defaults.api_socket)?,
            state_dir: abs_path(raw.api.state_dir, "api.state_dir", &defaults.state_dir)?,
        };
        let acceleration = Acceleration {
            enabled: raw.acceleration.enabled.unwrap_or(defaults.acceleration.enabled),
            pods: match raw.acceleration.pods {
                None => defaults.acceleration.pods,
                Some(p) => p.get_ref().parse().map_err(|e: String| src.error_at(p.span().start, "acceleration.pods", e))?,
            },
            short_connections: match raw.acceleration.short_connections {
                None => defaults.acceleration.short_connections,
                Some(p) => p.get_ref().parse().map_err(|e: String| src.error_at(p.span().start, "acceleration.short_connections", e))?,
            },
        };
        let interception = match raw.interception.mode {
            None => defaults.interception,
            Some(m) => m.get_ref().parse().map_err(|e: String| src.error_at(m.span().start, "interception.mode", e))?,
        };
        let ipv6 = match raw.interception.ipv6 {
            None => defaults.ipv6,
            Some(p) => p.get_ref().parse().map_err(|e: String| src.error_at(p.span().start, "interception.ipv6", e))?,
        };
        let outbound_sources = match raw.interception.outbound_sources {
            None => defaults.outbound_sources,
            Some(n) => u8::try_from(*n.get_ref()).ok().filter(|&n| n >= 1).ok_or_else(|| {
                src.error_at(n.span().start, "interception.outbound_sources", format!("{} is out of range: 1 to 255 addresses", n.get_ref()))
            })?,
        };
        let tc_attach = match raw.tc.attach {
            None => defaults.tc_attach,
            Some(a) => a.get_ref().parse().map_err(|e: String| src.error_at(a.span().start, "tc.attach", e))?,
        };
        let dns_port = port(raw.dns.port, "dns.port", defaults.dns.port)?;
        if dns_port == outbound_port || dns_port == inbound_port {
            return Err(ConfigError {
                file: name.to_string(),
                line: None,
                key: Some("dns.port".into()),
                message: format!("{dns_port} is one of the sidecar's TCP capture ports; the DNS proxy needs a port of its own"),
            });
        }
        let dns_servers = match raw.dns.servers {
            None => defaults.dns.servers.clone(),
            Some(list) if list.len() > MAX_DNS_SERVERS => {
                return Err(ConfigError {
                    file: name.to_string(),
                    line: None,
                    key: Some("dns.servers".into()),
                    message: format!("{} entries; at most {MAX_DNS_SERVERS} are supported", list.len()),
                })
            }
            Some(list) => list
                .into_iter()
                .map(|a| {
                    // A v4-mapped address (::ffff:a.b.c.d) is the IPv4 resolver it names.
                    a.get_ref().parse::<std::net::IpAddr>().map(|a| a.to_canonical()).map_err(|_| {
                        src.error_at(
                            a.span().start,
                            "dns.servers",
                            format!("{:?} is not an IPv4 or IPv6 address such as \"10.96.0.10\" or \"fd00:10:96::a\"", a.get_ref()),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let dns = Dns { capture: raw.dns.capture.unwrap_or(defaults.dns.capture), port: dns_port, servers: dns_servers };
        let metrics = match raw.metrics.address {
            None => None,
            Some(a) if a.get_ref().is_empty() => None,
            Some(a) => Some(a.get_ref().parse::<std::net::SocketAddr>().map_err(|_| {
                src.error_at(a.span().start, "metrics.address", format!("{:?} is not an address:port such as \"127.0.0.1:9464\"", a.get_ref()))
            })?),
        };
        let log_level = match raw.log.level {
            None => defaults.log_level,
            Some(l) => parse_level(l.get_ref()).map_err(|m| src.error_at(l.span().start, "log.level", m))?,
        };

        Ok(Config {
            sidecar: Sidecar { uid, outbound_port, inbound_port },
            outbound: Outbound { exclude_ports, exclude_cidrs, exclude_cidrs6 },
            inbound: Inbound { exclude_ports: in_exclude_ports },
            bpf: BpfSettings { pin_dir, cgroup, debug, trace },
            api,
            acceleration,
            interception,
            ipv6,
            outbound_sources,
            tc_attach,
            dns,
            metrics,
            log_level,
        })
    }
}

/// toml's message, or (it has none for a stray character, found by the
/// config fuzz target, fuzz/fuzz_targets/config.rs) what is at the error's place.
fn syntax_message(message: &str, at: Option<&str>) -> String {
    let message = message.trim();
    if !message.is_empty() {
        return message.to_string();
    }
    match at.and_then(|t| t.chars().next()) {
        Some(c) if c.is_control() => format!("control character U+{:04X} is not allowed in TOML, not even in a comment", c as u32),
        Some(c) => format!("unexpected character {c:?}"),
        None => "unexpected end of the file".to_string(),
    }
}

pub fn parse_level(s: &str) -> Result<log::LevelFilter, String> {
    match s {
        "error" => Ok(log::LevelFilter::Error),
        "warn" => Ok(log::LevelFilter::Warn),
        "info" => Ok(log::LevelFilter::Info),
        "debug" => Ok(log::LevelFilter::Debug),
        "trace" => Ok(log::LevelFilter::Trace),
        other => Err(format!("{other:?} is not a log level; use error, warn, info, debug or trace")),
    }
}

/// Defaults of keys absent from a file. config/default.toml spells out
/// the same values (a unit test keeps the two in agreement).
struct Defaults {
    uid: u32,
    outbound_port: u16,
    inbound_port: u16,
    exclude_ports: Vec<u16>,
    exclude_cidrs: Vec<Cidr4>,
    in_exclude_ports: Vec<u16>,
    pin_dir: PathBuf,
    cgroup: Option<PathBuf>,
    debug: bool,
    trace: bool,
    api_socket: PathBuf,
    state_dir: PathBuf,
    acceleration: Acceleration,
    interception: Interception,
    ipv6: Ipv6Policy,
    outbound_sources: u8,
    tc_attach: TcAttach,
    dns: Dns,
    log_level: log::LevelFilter,
}

impl Defaults {
    fn get() -> Defaults {
        Defaults {
            uid: 1500,
            outbound_port: 15001,
            inbound_port: 15003,
            exclude_ports: Vec::new(),
            exclude_cidrs: Vec::new(),
            in_exclude_ports: Vec::new(),
            pin_dir: PathBuf::from("/sys/fs/bpf/meshwire"),
            cgroup: None,
            debug: false,
            trace: false,
            api_socket: PathBuf::from("/run/meshwire/loader.sock"),
            state_dir: PathBuf::from("/run/meshwire"),
            acceleration: Acceleration { enabled: false, pods: AccelPods::All, short_connections: ShortConnections::Learn },
            interception: Interception::Ebpf,
            ipv6: Ipv6Policy::Intercept,
            outbound_sources: 16,
            tc_attach: TcAttach::Auto,
            dns: Dns { capture: false, port: 15053, servers: Vec::new() },
            log_level: log::LevelFilter::Info,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn an_endless_file_is_read_only_up_to_the_cap() {
        let e = Config::load(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains(&format!("larger than {MAX_CONFIG_BYTES} bytes")), "{e}");
    }

    fn err(text: &str) -> ConfigError {
        Config::parse("test.toml", text).unwrap_err()
    }

    #[test]
    fn embedded_default_file_spells_out_the_builtin_defaults() {
        assert_eq!(Config::parse("default.toml", DEFAULT_TOML).unwrap(), Config::parse("empty.toml", "").unwrap());
    }

    /// The defaults are written down once for the operator (config/default.toml,
    /// tied to the built-in ones above) and once for the BPF programs
    /// (bpf/lib/meshwire_config.h's initial `mw_cfg`, which a program sees
    /// unless the loader writes it): the built objects must agree. (The
    /// DaemonSet's ConfigMap is checked against default.toml by
    /// //deploy:manifests_test.)
    #[test]
    fn the_objects_built_in_settings_are_the_configuration_defaults() {
        let want = crate::datapath::settings_of(&Config::default_config());
        for spec in crate::datapath::objects::CORE {
            let obj = spec.open(None).unwrap();
            let got = obj.rodata(crate::datapath::objects::SETTINGS_VAR).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
            assert_eq!(got, want.as_bytes(), "{}: mw_cfg in bpf/lib/meshwire_config.h differs from the configuration's defaults ({want:?})", spec.name);
        }
    }

    #[test]
    fn defaults() {
        let c = Config::default_config();
        assert_eq!(c.sidecar, Sidecar { uid: 1500, outbound_port: 15001, inbound_port: 15003 });
        assert_eq!(c.bpf.pin_dir, PathBuf::from("/sys/fs/bpf/meshwire"));
        assert_eq!(c.bpf.cgroup, None);
        assert!(!c.bpf.debug);
        assert!(!c.bpf.trace);
        assert_eq!(c.log_level, log::LevelFilter::Info);
    }

    #[test]
    fn a_partial_file_keeps_other_defaults() {
        let c = Config::parse(
            "t.toml",
            "[sidecar]\nuid = 1337\n[outbound]\nexclude_ports = [22, 8443]\nexclude_cidrs = [\"10.0.0.0/8\", \"192.0.2.7\"]\n[bpf]\ncgroup = \"/sys/fs/cgroup/unified/x\"\ndebug = true\n",
        )
        .unwrap();
        assert_eq!(c.sidecar.uid, 1337);
        assert_eq!(c.sidecar.outbound_port, 15001);
        assert_eq!(c.outbound.exclude_ports, vec![22, 8443]);
        assert_eq!(
            c.outbound.exclude_cidrs,
            vec![Cidr4 { addr: Ipv4Addr::new(10, 0, 0, 0), len: 8 }, Cidr4 { addr: Ipv4Addr::new(192, 0, 2, 7), len: 32 }]
        );
        assert_eq!(c.bpf.cgroup, Some(PathBuf::from("/sys/fs/cgroup/unified/x")));
        assert!(c.bpf.debug);
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let e = err("[sidecar]\nuid = 1500\noutbound_port = = 3\n");
        assert_eq!(e.file, "test.toml");
        assert_eq!(e.line, Some(3));
        assert!(e.to_string().starts_with("test.toml:3"), "{e}");
    }

    #[test]
    fn a_control_character_is_named_even_in_a_comment() {
        let e = err("[sidecar]\n# a comment with \u{1} in it\nuid = 1500\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("U+0001"), "{e}");
    }

    #[test]
    fn unknown_key_is_refused_with_its_line() {
        let e = err("[sidecar]\nuid = 1500\noutbond_port = 3\n");
        assert_eq!(e.line, Some(3));
        assert_eq!(e.key.as_deref(), Some("sidecar.outbond_port"));
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn unknown_section_is_refused() {
        let e = err("[sidecars]\nuid = 1\n");
        assert!(e.message.contains("unknown field `sidecars`"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = err("[sidecar]\nuid = \"envoy\"\n");
        assert_eq!(e.line, Some(2));
        assert_eq!(e.key.as_deref(), Some("sidecar.uid"));
    }

    #[test]
    fn out_of_range_port_is_refused() {
        let e = err("[sidecar]\noutbound_port = 70000\n");
        assert_eq!(e.key.as_deref(), Some("sidecar.outbound_port"));
        let e = err("[sidecar]\noutbound_port = 0\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("sidecar.outbound_port")));
    }

    #[test]
    fn inbound_exclusions_are_ports() {
        let c = Config::parse("t.toml", "[inbound]\nexclude_ports = [9090, 8081]\n").unwrap();
        assert_eq!(c.inbound.exclude_ports, vec![9090, 8081]);
        assert_eq!(c.outbound.exclude_ports, Vec::<u16>::new(), "the outbound list is another list");
        assert_eq!(Config::default_config().inbound.exclude_ports, Vec::<u16>::new());
        let e = err("[inbound]\nexclude_ports = [\n  9090,\n  0,\n]\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("inbound.exclude_ports")));
        assert!(e.message.contains("port 0"), "{e}");
        let e = err("[inbound]\nexclude_ports = [70000]\n");
        assert_eq!(e.key.as_deref(), Some("inbound.exclude_ports"));
        let e = err("[inbound]\nexclude_cidrs = []\n");
        assert!(e.message.contains("unknown field `exclude_cidrs`"), "{e}");
    }

    #[test]
    fn uid_zero_is_refused() {
        let e = err("[sidecar]\nuid = 0\n");
        assert_eq!(e.key.as_deref(), Some("sidecar.uid"));
        assert!(e.message.contains("root"), "{e}");
    }

    #[test]
    fn equal_sidecar_ports_are_refused() {
        let e = err("[sidecar]\noutbound_port = 15003\n");
        assert_eq!(e.key.as_deref(), Some("sidecar.inbound_port"));
    }

    #[test]
    fn bad_cidrs_say_what_is_wrong() {
        let e = err("[outbound]\nexclude_cidrs = [\n  \"10.0.0.0/8\",\n  \"10.1.2.3/16\",\n]\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("outbound.exclude_cidrs")));
        assert!(e.message.contains("did you mean \"10.1.0.0/16\""), "{e}");
        assert!(err("[outbound]\nexclude_cidrs = [\"10.0.0.0/33\"]").message.contains("over 32"));
        assert!(err("[outbound]\nexclude_cidrs = [\"fd00::1/8\"]").message.contains("did you mean \"fd00::/8\""));
        assert!(err("[outbound]\nexclude_cidrs = [\"fd00::/129\"]").message.contains("over 128"));
        assert!(err("[outbound]\nexclude_cidrs = [\"10.0.0.0:8\"]").message.contains("not an IPv6"));
    }

    #[test]
    fn exclude_cidrs_take_both_families() {
        let c = Config::parse("t.toml", "[outbound]\nexclude_cidrs = [\"10.0.0.0/8\", \"fd00:96::/64\", \"2001:db8::7\"]\n").unwrap();
        assert_eq!(c.outbound.exclude_cidrs, vec![Cidr4 { addr: Ipv4Addr::new(10, 0, 0, 0), len: 8 }]);
        assert_eq!(
            c.outbound.exclude_cidrs6.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            ["fd00:96::/64", "2001:db8::7/128"]
        );
    }

    #[test]
    fn relative_paths_are_refused() {
        assert_eq!(err("[bpf]\npin_dir = \"meshwire\"").key.as_deref(), Some("bpf.pin_dir"));
        assert_eq!(err("[bpf]\ncgroup = \"kubepods\"").key.as_deref(), Some("bpf.cgroup"));
    }

    #[test]
    fn api_and_acceleration() {
        let c = Config::parse("t.toml", "[api]\nsocket = \"/tmp/x.sock\"\nstate_dir = \"/tmp/st\"\n[acceleration]\nenabled = false\n").unwrap();
        assert_eq!(c.api, Api { socket: "/tmp/x.sock".into(), state_dir: "/tmp/st".into() });
        assert!(!c.acceleration.enabled);
        assert_eq!(Config::default_config().acceleration, Acceleration { enabled: false, pods: AccelPods::All, short_connections: ShortConnections::Learn });
        let e = err("[api]\nsocket = \"loader.sock\"");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("api.socket")));
    }

    #[test]
    fn outbound_sources_default_to_16_and_take_1_to_255() {
        assert_eq!(Config::default_config().outbound_sources, 16);
        assert_eq!(Config::parse("t.toml", "[interception]\noutbound_sources = 1\n").unwrap().outbound_sources, 1);
        assert_eq!(Config::parse("t.toml", "[interception]\noutbound_sources = 255\n").unwrap().outbound_sources, 255);
        for bad in ["0", "256", "-1"] {
            let e = err(&format!("[interception]\noutbound_sources = {bad}\n"));
            assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("interception.outbound_sources")), "{bad}");
            assert!(e.message.contains("1 to 255"), "{bad}: {e}");
        }
    }

    #[test]
    fn ipv6_is_intercepted_by_default_or_refused_or_passed() {
        assert_eq!(Config::default_config().ipv6, Ipv6Policy::Intercept);
        let c = Config::parse("t.toml", "[interception]\nipv6 = \"refuse\"\n").unwrap();
        assert_eq!(c.ipv6, Ipv6Policy::Refuse);
        let c = Config::parse("t.toml", "[interception]\nipv6 = \"pass\"\n").unwrap();
        assert_eq!(c.ipv6, Ipv6Policy::Pass);
        let c = Config::parse("t.toml", "[interception]\nipv6 = \"intercept\"\n").unwrap();
        assert_eq!(c.ipv6, Ipv6Policy::Intercept);
        let e = err("[interception]\nipv6 = \"drop\"\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("interception.ipv6")));
        assert!(e.message.contains("\"refuse\"") && e.message.contains("\"pass\"") && e.message.contains("\"intercept\""), "{}", e.message);
    }

    #[test]
    fn acceleration_pods_is_all_or_opt_in() {
        let c = Config::parse("t.toml", "[acceleration]\nenabled = true\npods = \"opt-in\"\n").unwrap();
        assert_eq!(c.acceleration, Acceleration { enabled: true, pods: AccelPods::OptIn, short_connections: ShortConnections::Learn });
        assert!(!c.acceleration.pods.by_default());
        assert!(AccelPods::All.by_default());
        let e = err("[acceleration]\nenabled = true\npods = \"some\"\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("acceleration.pods")));
        assert!(e.message.contains("\"all\"") && e.message.contains("\"opt-in\""), "{}", e.message);
    }

    #[test]
    fn acceleration_short_connections_is_learn_or_accelerate() {
        let c = Config::parse("t.toml", "[acceleration]\nenabled = true\nshort_connections = \"accelerate\"\n").unwrap();
        assert_eq!(c.acceleration.short_connections, ShortConnections::Accelerate);
        assert_eq!(crate::datapath::settings_of(&c).accel_short, crate::datapath::layout::ACCEL_SHORT_ACCELERATE);
        let c = Config::parse("t.toml", "[acceleration]\nshort_connections = \"learn\"\n").unwrap();
        assert_eq!(c.acceleration.short_connections, ShortConnections::Learn);
        assert_eq!(crate::datapath::settings_of(&c).accel_short, crate::datapath::layout::ACCEL_SHORT_LEARN);
        assert_eq!(Config::default_config().acceleration.short_connections, ShortConnections::Learn);
        let e = err("[acceleration]\nenabled = true\nshort_connections = \"never\"\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("acceleration.short_connections")));
        assert!(e.message.contains("\"never\"") && e.message.contains("\"learn\"") && e.message.contains("\"accelerate\""), "{}", e.message);
    }

    #[test]
    fn overlong_lists_are_refused_before_anything_is_loaded() {
        let ports: Vec<String> = (1..=(MAX_LIST as u32 + 1)).map(|p| p.to_string()).collect();
        let e = err(&format!("[outbound]\nexclude_ports = [{}]", ports.join(",")));
        assert_eq!(e.key.as_deref(), Some("outbound.exclude_ports"));
        assert!(e.message.contains("at most"), "{e}");
        // Exactly MAX_LIST is taken.
        let c = Config::parse("t.toml", &format!("[outbound]\nexclude_ports = [{}]", ports[..MAX_LIST].join(","))).unwrap();
        assert_eq!(c.outbound.exclude_ports.len(), MAX_LIST);
    }

    #[test]
    fn metrics_address() {
        assert_eq!(Config::default_config().metrics, None);
        let c = Config::parse("t.toml", "[metrics]\naddress = \"127.0.0.1:9464\"").unwrap();
        assert_eq!(c.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        let e = err("[metrics]\naddress = \"localhost\"");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("metrics.address")));
    }

    #[test]
    fn interception_mode() {
        assert_eq!(Config::default_config().interception, Interception::Ebpf);
        assert_eq!(Config::parse("t.toml", "").unwrap().interception, Interception::Ebpf);
        let c = Config::parse("t.toml", "[interception]\nmode = \"iptables\"\n").unwrap();
        assert_eq!(c.interception, Interception::Iptables);
        assert_eq!(c.sidecar.uid, 1500, "other keys keep their defaults");
        assert_eq!(Config::parse("t.toml", "[interception]\nmode = \"ebpf\"\n").unwrap().interception, Interception::Ebpf);
        let e = err("[sidecar]\nuid = 1500\n[interception]\nmode = \"nftables\"\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("interception.mode")));
        assert!(e.message.contains("\"ebpf\" or \"iptables\""), "{e}");
        assert!(e.to_string().starts_with("test.toml:4: interception.mode: "), "{e}");
        let e = err("[interception]\nmode = \"IPTABLES\"\n");
        assert_eq!(e.key.as_deref(), Some("interception.mode"), "modes are lower case");
        let e = err("[interception]\nmode = 1\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("interception.mode")));
        let e = err("[interception]\nmodes = \"ebpf\"\n");
        assert!(e.message.contains("unknown field `modes`"), "{e}");
    }

    #[test]
    fn trace_events() {
        let c = Config::parse("t.toml", "[bpf]\ntrace = true\n").unwrap();
        assert!(c.bpf.trace);
        assert!(!c.bpf.debug, "trace and debug are separate switches");
        let e = err("[bpf]\ntrace = \"yes\"\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("bpf.trace")));
    }

    #[test]
    fn tc_attach_mode() {
        assert_eq!(Config::default_config().tc_attach, TcAttach::Auto);
        for (text, want) in [("auto", TcAttach::Auto), ("tcx", TcAttach::Tcx), ("clsact", TcAttach::Clsact)] {
            let c = Config::parse("t.toml", &format!("[tc]\nattach = \"{text}\"\n")).unwrap();
            assert_eq!(c.tc_attach, want);
            assert_eq!(want.as_str(), text);
        }
        let c = Config::parse("t.toml", "[tc]\nattach = \"clsact\"\n").unwrap();
        assert_eq!(c.interception, Interception::Ebpf, "other keys keep their defaults");
        let e = err("[sidecar]\nuid = 1500\n[tc]\nattach = \"tc\"\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("tc.attach")));
        assert!(e.message.contains("\"auto\"") && e.message.contains("\"tcx\" or \"clsact\""), "{e}");
        assert!(e.to_string().starts_with("test.toml:4: tc.attach: "), "{e}");
        let e = err("[tc]\nattach = \"CLSACT\"\n");
        assert_eq!(e.key.as_deref(), Some("tc.attach"), "modes are lower case");
        let e = err("[tc]\nattach = true\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("tc.attach")));
        let e = err("[tc]\nmode = \"tcx\"\n");
        assert!(e.message.contains("unknown field `mode`"), "{e}");
    }

    #[test]
    fn dns_capture() {
        let c = Config::default_config();
        assert_eq!(c.dns, Dns { capture: false, port: 15053, servers: vec![] });
        let c = Config::parse("t.toml", "[dns]\ncapture = true\nport = 5353\nservers = [\"10.96.0.10\", \"192.0.2.53\"]\n").unwrap();
        assert_eq!(c.dns, Dns { capture: true, port: 5353, servers: vec![Ipv4Addr::new(10, 96, 0, 10).into(), Ipv4Addr::new(192, 0, 2, 53).into()] });
        let c = Config::parse("t.toml", "[dns]\nservers = [\"fd00:10:96::a\", \"10.96.0.10\", \"::ffff:10.96.0.11\"]\n").unwrap();
        let v6: std::net::Ipv6Addr = "fd00:10:96::a".parse().unwrap();
        assert_eq!(c.dns.servers4(), vec![Ipv4Addr::new(10, 96, 0, 10), Ipv4Addr::new(10, 96, 0, 11)], "a v4-mapped resolver is its IPv4 one");
        assert_eq!(c.dns.servers6(), vec![v6]);
        let e = err("[dns]\nservers = [\"10.96.0.10\", \"10.96.0.0/12\"]\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("dns.servers")));
        assert!(e.message.contains("\"10.96.0.0/12\" is not an IPv4 or IPv6 address"), "{e}");
        let e = err("[dns]\nservers = [\"fd00:10:96::a/64\"]\n");
        assert!(e.message.contains("is not an IPv4 or IPv6 address"), "{e}");
        let e = err("[dns]\nport = 0\n");
        assert_eq!(e.key.as_deref(), Some("dns.port"));
        let e = err("[dns]\nport = 15001\n");
        assert!(e.key.as_deref() == Some("dns.port") && e.message.contains("capture ports"), "{e}");
        let many: Vec<String> = (0..=MAX_DNS_SERVERS).map(|i| format!("\"10.0.{}.{}\"", i / 256, i % 256)).collect();
        let e = err(&format!("[dns]\nservers = [{}]\n", many.join(",")));
        assert!(e.message.contains("at most 256"), "{e}");
    }

    #[test]
    fn bad_log_level_is_refused() {
        let e = err("[log]\nlevel = \"loud\"");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("log.level")));
    }
}
