//! Operator views of the datapath, read from the pins: they work while the
//! daemon runs and after it stopped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::datapath::{Hook, PROGRAMS};
use crate::datapath::layout::{Cidr4Key, Flow4, Flow4Key, Flow6Key, In4Key, Orig4, Orig6, PortKey, Sock6Key, SockKey, Tuple4, Tuple6, STAT_NAMES};
use crate::libbpf;
use crate::datapath::pins::{self, PinnedError, Pins};
use crate::error::Error;

/// One pinned map: entries (None when the type cannot be iterated) and capacity.
pub struct MapFill {
    pub name: &'static str,
    pub entries: Option<usize>,
    pub capacity: u32,
    /// Arrays always hold `capacity` entries: they cannot run out.
    pub fixed_size: bool,
}

pub fn map_fill(pins: &Pins) -> Result<Vec<MapFill>, Error> {
    let mut out = Vec::new();
    for name in pins::ALL_MAPS {
        if !pins.map(name).exists() {
            continue;
        }
        let map = pins.open_map(name)?;
        let info = map.info()?;
        // Socket storage is not iterated by key here; a ring buffer has no
        // keys (its capacity is in bytes).
        let countable = !matches!(info.map_type, libbpf_sys::BPF_MAP_TYPE_SK_STORAGE | libbpf_sys::BPF_MAP_TYPE_RINGBUF);
        let entries = if countable { Some(map.raw_keys()?.len()) } else { None };
        let fixed_size = matches!(info.map_type, libbpf_sys::BPF_MAP_TYPE_ARRAY | libbpf_sys::BPF_MAP_TYPE_PERCPU_ARRAY);
        out.push(MapFill { name, entries, capacity: info.max_entries, fixed_size });
    }
    Ok(out)
}

/// Per-hook counters summed over CPUs, by name (e.g. "connect_redirected").
pub fn counters(pins: &Pins) -> Result<Vec<(String, u64)>, Error> {
    let map = pins.open_map(pins::MAP_STATS)?;
    STAT_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let v = map.lookup_percpu_sum(&(i as u32))?;
            Ok((name.trim_start_matches("MW_STAT_").to_lowercase(), v))
        })
        .collect()
}

/// A program of the datapath as it is attached now.
pub struct ProgramState {
    pub name: &'static str,
    pub attached: &'static str,
    pub info: Option<libbpf::ProgInfo>,
    /// A tc program whose pin under progs/ cannot be opened (Missing when
    /// it is not there): why, with what to do.
    pub unpinned: Option<PinnedError>,
}

pub fn programs(pins: &Pins) -> Vec<ProgramState> {
    PROGRAMS
        .iter()
        .map(|spec| {
            let mut unpinned = None;
            let (attached, info) = match spec.hook {
                Hook::Cgroup => {
                    let info = libbpf::obj_get(&pins.link(spec.program))
                        .ok()
                        .and_then(|link| libbpf::link_prog_id(&link).ok())
                        .and_then(|id| libbpf::prog_by_id(id).ok())
                        .and_then(|fd| libbpf::prog_info(&fd).ok());
                    (if info.is_some() { "cgroup link" } else { "not attached" }, info)
                }
                Hook::Tc { .. } => match pins.open_prog(spec.program) {
                    Ok(fd) => {
                        let info = libbpf::prog_info(&fd).ok();
                        (if info.is_some() { "pinned, per pod" } else { "not loaded" }, info)
                    }
                    Err(e) => {
                        let attached = if matches!(e, PinnedError::Missing { .. }) { "not pinned" } else { "not loaded" };
                        unpinned = Some(e);
                        (attached, None)
                    }
                },
                Hook::SkMsg { maps } => {
                    let verdict = |map: &'static str| {
                        pins.open_map(map)
                            .ok()
                            .and_then(|m| libbpf::prog_query(&m, libbpf_sys::BPF_SK_MSG_VERDICT).ok())
                            .and_then(|ids| ids.first().copied())
                            .and_then(|id| libbpf::prog_by_id(id).ok())
                            .and_then(|fd| libbpf::prog_info(&fd).ok())
                    };
                    let infos: Vec<_> = maps.iter().map(|m| verdict(m)).collect();
                    let on = infos.iter().filter(|i| i.is_some()).count();
                    let attached = match on {
                        0 => "off",
                        n if n == maps.len() => "socket map verdict",
                        // An earlier version's datapath: its socket maps only.
                        _ => "socket map verdict, not on every family's map",
                    };
                    (attached, infos.into_iter().flatten().next())
                }
            };
            ProgramState { name: spec.program, attached, info, unpinned }
        })
        .collect()
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "unknown".into(), |s| s.trim().to_string())
}

fn bpf_stats_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").map(|s| s.trim() == "1").unwrap_or(false)
}

/// The views read the pins: without them, say where they were looked for
/// and what to check, rather than a bare "No such file or directory"
/// (NotFound: [`PinnedError::NoDatapath`]). A datapath pinned there
/// without one of its maps is named when a view opens that map.
pub fn require_datapath(pins: &Pins) -> Result<(), Error> {
    if pins.any_map_pinned() {
        return Ok(());
    }
    Err(PinnedError::NoDatapath { pin_dir: pins.root().to_path_buf() }.into())
}

/// What `status`, `pods` and `pod list` say of an attachment the loader
/// kept at its start without a look at its network namespace.
const UNCHECKED: &str = "kept as it was when the loader started, not steered again; a CHECK (or a restart) looks again";

/// What `pods` and `pod list` say of a pod adoption left unchecked (its
/// `unchecked`: what failed), None for the others.
fn unchecked_of(pod: &meshwire_api::PodRecord) -> Option<String> {
    pod.unchecked.as_ref().map(|why| format!("{why}; {UNCHECKED}"))
}

/// The `status` line of the loader that answered the API's status request,
/// then a line per attachment it kept unchecked (`unchecked`).
pub fn describe_loader(status: Option<&serde_json::Map<String, serde_json::Value>>, socket: &std::path::Path) -> String {
    let field = |k: &str| status.and_then(|s| s.get(k)).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
    let mut out = format!(
        "loader meshwire-loader {}, pid {}, {} pod attachment(s), api {}",
        field("version").unwrap_or_else(|| "of unknown version (its status does not say)".into()),
        field("pid").unwrap_or_else(|| "?".into()),
        field("pods").unwrap_or_else(|| "?".into()),
        socket.display()
    );
    // Older loaders do not say: nothing is shown.
    let unchecked = status.and_then(|s| s.get("unchecked")).and_then(|u| u.as_array());
    for u in unchecked.into_iter().flatten() {
        let text = |k: &str| u.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
        let ifname = Some(text("ifname")).filter(|i| !i.is_empty()).unwrap_or_else(|| "-".into());
        out.push_str(&format!("\nunchecked pod {} on {ifname}, netns {}: {}; {UNCHECKED}", text("container_id"), text("netns"), text("reason")));
    }
    out
}

/// `meshwire-loader status`: what [`status_view`] shows, then its error.
pub fn print_status(pins: &Pins, loader: &str) -> Result<(), Error> {
    let (text, read) = status_view(pins, loader);
    print!("{text}");
    read
}

/// `status`'s text, and then, when a map or a tc program of the datapath
/// pinned under `pins` is not (it shows as "not pinned"), the error naming
/// the first such map, else the first such program ([`PinnedError`]:
/// where, and what to do). Without a datapath there,
/// no text and NoDatapath; a map that cannot be read ends the text there.
pub fn status_view(pins: &Pins, loader: &str) -> (String, Result<(), Error>) {
    let mut out = String::new();
    let read = status_text(pins, loader, &mut out);
    (out, read)
}

fn status_text(pins: &Pins, loader: &str, out: &mut String) -> Result<(), Error> {
    use std::fmt::Write;
    require_datapath(pins)?;
    // Writing to a String cannot fail.
    let mut line = |l: String| {
        let _ = writeln!(out, "{l}");
    };
    line(loader.to_string());
    line(format!("kernel {}; bpf stats {}", kernel_release(), if bpf_stats_enabled() { "on" } else { "off (sysctl kernel.bpf_stats_enabled=1 to time programs)" }));
    line(format!("pins {}", pins.root().display()));
    for l in upgrade_pending(pins) {
        line(l);
    }
    line(String::new());
    line(format!("{:<20} {:<20} {:>6} {:>7} {:>12} {:>10}", "program", "attached", "id", "insns", "runs", "ns/run"));
    let mut unpinned = None;
    for p in programs(pins) {
        match p.info {
            Some(i) => {
                let per = if i.run_cnt > 0 { format!("{:.0}", i.run_time_ns as f64 / i.run_cnt as f64) } else { "-".into() };
                line(format!("{:<20} {:<20} {:>6} {:>7} {:>12} {:>10}", p.name, p.attached, i.id, i.verified_insns, i.run_cnt, per));
            }
            None => line(format!("{:<20} {:<20} {:>6} {:>7} {:>12} {:>10}", p.name, p.attached, "-", "-", "-", "-")),
        }
        unpinned = unpinned.or(p.unpinned);
    }
    line(String::new());
    line(format!("{:<16} {:>10} {:>10}", "map", "entries", "capacity"));
    for m in map_fill(pins)? {
        let e = m.entries.map_or("-".to_string(), |n| n.to_string());
        line(format!("{:<16} {e:>10} {:>10}", m.name, m.capacity));
    }
    for name in pins::ALL_MAPS.iter().filter(|m| !pins.map(m).exists()) {
        line(format!("{name:<16} {:>10} {:>10}", "not pinned", "-"));
    }
    line(String::new());
    for (name, v) in counters(pins)? {
        line(format!("{name:<28} {v}"));
    }
    // A map or a tc program not pinned: the view is shown, then what to do about it.
    pins.require_all_maps()?;
    unpinned.map_or(Ok(()), |e| Err(e.into()))
}

/// An upgrade's maps still waiting, one line each kind: set aside by a
/// start (under way, or one that died midway), or for the catch-up after
/// adoption. Empty when none: the usual case.
fn upgrade_pending(pins: &Pins) -> Vec<String> {
    let mut lines = Vec::new();
    let aside = pins.set_aside_maps();
    if !aside.is_empty() {
        lines.push(format!(
            "upgrade: earlier {} set aside under {} (a start under way, or one that died midway: the next start resumes it)",
            aside.join(", "),
            pins.upgrade_dir().display()
        ));
    }
    let staged: Vec<&str> = pins.staged_maps().into_iter().map(|(name, _)| name).collect();
    if !staged.is_empty() {
        lines.push(format!(
            "upgrade: earlier {} wait under {} for the catch-up after adoption (what pods' old clsact programs wrote; this loader runs it when its adoption is done, or the next start does)",
            staged.join(", "),
            pins.catch_up_dir().display()
        ));
    }
    lines
}

fn ip(net_order: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_be(net_order))
}

/// An IPv6 address as the datapath keeps it: four words in network order.
fn ip6(words: [u32; 4]) -> Ipv6Addr {
    let mut b = [0u8; 16];
    for (i, w) in words.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    Ipv6Addr::from(b)
}

/// One mw_orig_tuple6 entry as `conns` shows it.
fn tuple6_line(key: &Tuple6, o: &Orig6) -> String {
    format!(
        "  netns {:<8} [{}]:{} -> [{}]:{}  orig [{}]:{}",
        key.netns_cookie,
        ip6(key.client_ip6),
        key.client_port,
        ip6(key.server_ip6),
        key.server_port,
        ip6(o.ip6),
        u16::from_be(o.port)
    )
}

/// One inbound flow tc redirected, as `conns` shows it: peer -> pod address
/// and the port the peer dialled (mw_flow4 / mw_flow6; addresses [bracketed]
/// for IPv6).
fn flow_line(remote: IpAddr, remote_port: u16, local: IpAddr, f: &Flow4) -> String {
    let at = |a: IpAddr, p: u16| match a {
        IpAddr::V4(a) => format!("{a}:{p}"),
        IpAddr::V6(a) => format!("[{a}]:{p}"),
    };
    format!("  {} -> {}  flags {:#x}", at(remote, u16::from_be(remote_port)), at(local, u16::from_be(f.orig_port)), f.flags)
}

/// Original destinations in flight: app connections published by sockops
/// and not yet accepted by their sidecar, and inbound flows tc redirected.
pub fn print_conns(pins: &Pins) -> Result<(), Error> {
    let tuples = pins.open_map(pins::MAP_ORIG_TUPLE4)?;
    println!("awaiting accept (app -> sidecar, original destination):");
    for key in tuples.keys::<Tuple4>()? {
        if let Some(o) = tuples.lookup::<Tuple4, Orig4>(&key)? {
            println!(
                "  netns {:<8} {}:{} -> {}:{}  orig {}:{}{}",
                key.netns_cookie,
                ip(key.client_ip4),
                key.client_port,
                ip(key.server_ip4),
                key.server_port,
                ip(o.ip4),
                u16::from_be(o.port),
                if o.flags & crate::datapath::layout::ORIG_F_DNS != 0 { "  (DNS over TCP, to the DNS proxy)" } else { "" }
            );
        }
    }
    // Native IPv6 (interception.ipv6 = "intercept"); a datapath pinned before it has no such map.
    if let Ok(tuples6) = pins.open_map(pins::MAP_ORIG_TUPLE6) {
        for key in tuples6.keys::<Tuple6>()? {
            if let Some(o) = tuples6.lookup::<Tuple6, Orig6>(&key)? {
                println!("{}", tuple6_line(&key, &o));
            }
        }
    }
    let flows = pins.open_map(pins::MAP_FLOW4)?;
    println!("inbound flows redirected by tc (peer -> pod, dialled port):");
    for key in flows.keys::<Flow4Key>()? {
        if let Some(f) = flows.lookup::<Flow4Key, Flow4>(&key)? {
            println!("{}", flow_line(ip(key.remote_ip4).into(), key.remote_port, ip(key.local_ip4).into(), &f));
        }
    }
    // Native IPv6; a datapath pinned before it has no such map.
    if let Ok(flows6) = pins.open_map(pins::MAP_FLOW6) {
        for key in flows6.keys::<Flow6Key>()? {
            if let Some(f) = flows6.lookup::<Flow6Key, Flow4>(&key)? {
                println!("{}", flow_line(ip6(key.remote_ip6).into(), key.remote_port, ip6(key.local_ip6).into(), &f));
            }
        }
    }
    println!("(connections already accepted carry their destination on the sidecar's socket: ask the sidecar)");
    let socks = pins.open_map(pins::MAP_SOCK_HASH)?;
    println!("accelerated sockets (sk_msg hands their messages to the peer):");
    for k in socks.keys::<SockKey>()? {
        println!("  netns {:<8} {}:{} <-> {}:{}", k.netns_cookie, ip(k.local_ip4), k.local_port, ip(k.remote_ip4), k.remote_port);
    }
    // Native IPv6; a datapath pinned before it has no such map.
    if let Ok(socks6) = pins.open_map(pins::MAP_SOCK_HASH6) {
        for k in socks6.keys::<Sock6Key>()? {
            println!("  netns {:<8} [{}]:{} <-> [{}]:{}", k.netns_cookie, ip6(k.local_ip6), k.local_port, ip6(k.remote_ip6), k.remote_port);
        }
    }
    Ok(())
}

/// The node-wide exclusions as the datapath holds them (cookie 0, pod IP 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeExclusions {
    pub outbound_ports: Vec<u16>,
    pub outbound_cidrs: Vec<String>,
    pub inbound_ports: Vec<u16>,
    /// `[dns] servers`: the only resolvers captured (empty: any), IPv4 then IPv6.
    pub dns_servers: Vec<std::net::IpAddr>,
}

pub fn node_exclusions(pins: &Pins) -> Result<NodeExclusions, Error> {
    let open = |name| pins.open_map(name);
    let mut out = NodeExclusions::default();
    for k in open(pins::MAP_EXCL_PORTS)?.keys::<PortKey>()? {
        if k.netns_cookie == 0 && k.dir == crate::datapath::layout::DIR_OUT {
            out.outbound_ports.push(k.port);
        }
    }
    for k in open(pins::MAP_EXCL_CIDR4)?.keys::<Cidr4Key>()? {
        if k.cookie_hi == 0 && k.cookie_lo == 0 {
            out.outbound_cidrs.push(format!("{}/{}", ip(k.addr), k.prefixlen.saturating_sub(64)));
        }
    }
    for k in open(pins::MAP_EXCL_IN4)?.keys::<In4Key>()? {
        if k.pod_ip4 == 0 {
            out.inbound_ports.push(k.port);
        }
    }
    out.dns_servers = open(pins::MAP_DNS_SERVERS4)?.keys::<u32>()?.into_iter().map(|a| ip(a).into()).collect();
    let servers6 = open(pins::MAP_DNS_SERVERS6)?.keys::<crate::datapath::layout::Ip6Key>()?;
    out.dns_servers.extend(servers6.into_iter().map(|k| std::net::IpAddr::from(ip6(k.addr))));
    out.dns_servers.sort();
    out.outbound_ports.sort_unstable();
    out.outbound_cidrs.sort();
    out.inbound_ports.sort_unstable();
    Ok(out)
}

/// `meshwire-loader pod list`: a line per attachment (the short form of
/// [`describe_pods`]); an attachment adoption left unchecked says so at the
/// end of its line, with the words
/// `pods` uses ([`unchecked_of`]).
pub fn describe_pod_list(pods: &[meshwire_api::PodRecord]) -> String {
    let mut out = format!("{:<32} {:<20} {:<16} {:<8} netns\n", "id", "netns_cookie", "ips", "ifname");
    for p in pods {
        let ips: Vec<String> = p.spec.ips.iter().map(|i| i.to_string()).chain(p.spec.ips6.iter().map(|i| i.to_string())).collect();
        let ips = if ips.is_empty() { "-".to_string() } else { ips.join(",") };
        let ifname = if p.spec.ifname.is_empty() { "-" } else { &p.spec.ifname };
        out.push_str(&format!("{:<32} {:<20} {ips:<16} {ifname:<8} {}", p.spec.container_id, p.netns_cookie, p.spec.netns.display()));
        if let Some(note) = unchecked_of(p) {
            out.push_str(&format!("  unchecked: {note}"));
        }
        out.push('\n');
    }
    out
}

/// `meshwire-loader pods` (text): [`describe_pods`] with what the maps
/// hold, and then, when the datapath is pinned under `pins` but a map this
/// view reads is not (or cannot be read), the error naming it: the text
/// lacks what that map holds. Without any datapath there, the pods alone.
pub fn pods_view(pods: &[meshwire_api::PodRecord], pins: &Pins, dns_by_default: bool) -> (String, Result<(), Error>) {
    let pod_map = pins.open_map(pins::MAP_PODS);
    let node = node_exclusions(pins);
    let flags = |cookie: u64| pod_map.as_ref().ok()?.lookup::<u64, crate::datapath::layout::Pod>(&cookie).ok().flatten().map(|p| p.flags);
    let text = describe_pods(pods, node.as_ref().ok(), flags, dns_by_default);
    if !pins.any_map_pinned() {
        return (text, Ok(()));
    }
    (text, pod_map.map_err(Error::from).and(node).map(drop))
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    }
}

/// `meshwire-loader pods`: each meshed pod with its identity and exclusions,
/// then the node-wide exclusions every pod also has (when the maps are there).
/// `pod_flags`: a pod's `mw_pods` flags (eBPF mode), None when it has no entry
/// or the map cannot be read. `dns_by_default`: the node's `[dns] capture`.
pub fn describe_pods(
    pods: &[meshwire_api::PodRecord],
    node: Option<&NodeExclusions>,
    pod_flags: impl Fn(u64) -> Option<u32>,
    dns_by_default: bool,
) -> String {
    let unchecked = pods.iter().filter(|p| p.unchecked.is_some()).count();
    let mut out = match unchecked {
        0 => format!("{} meshed pod(s)\n", pods.len()),
        n => format!("{} meshed pod(s), {n} unchecked\n", pods.len()),
    };
    for p in pods {
        let s = &p.spec;
        let k8s = match (&s.namespace, &s.name) {
            (Some(ns), Some(n)) => format!(" ({ns}/{n})"),
            (None, Some(n)) => format!(" ({n})"),
            _ => String::new(),
        };
        out.push_str(&format!("\npod {}{k8s}\n", s.container_id));
        if let Some(note) = unchecked_of(p) {
            out.push_str(&format!("  unchecked         {note}\n"));
        }
        out.push_str(&format!("  netns cookie      {}\n", p.netns_cookie));
        out.push_str(&format!("  netns             {}\n", s.netns.display()));
        out.push_str(&format!("  ifname            {}\n", if s.ifname.is_empty() { "- (no tc: outbound and same-node inbound only)" } else { &s.ifname }));
        out.push_str(&format!("  ips               {}\n", list(&s.ips)));
        if !s.ips6.is_empty() {
            out.push_str(&format!("  ips6              {}\n", list(&s.ips6)));
        }
        out.push_str(&format!("  excluded outbound ports {}; cidrs {}\n", list(&s.exclude_outbound_ports), list(&s.exclude_outbound_cidrs)));
        if !s.exclude_outbound_cidrs6.is_empty() {
            out.push_str(&format!("  excluded outbound IPv6 cidrs {}\n", list(&s.exclude_outbound_cidrs6)));
        }
        out.push_str(&format!("  excluded inbound  ports {}\n", list(&s.exclude_inbound_ports)));
        if let Some(cidrs) = &s.include_outbound_cidrs {
            out.push_str(&format!("  included outbound cidrs {}; ports {} (nothing else steered)\n", list(cidrs), list(&s.include_outbound_ports)));
            if !s.include_outbound_cidrs6.is_empty() {
                out.push_str(&format!("  included outbound IPv6 cidrs {}\n", list(&s.include_outbound_cidrs6)));
            }
        }
        if let Some(ports) = &s.include_inbound_ports {
            out.push_str(&format!("  included inbound  ports {} (nothing else redirected)\n", list(ports)));
        }
        // What the datapath holds, and where the choice came from.
        let state = match pod_flags(p.netns_cookie) {
            Some(f) if f & crate::datapath::layout::POD_F_ACCEL != 0 => "on (when the node runs acceleration)",
            Some(_) => "off",
            None => "- (no mw_pods entry)",
        };
        let from = match s.accelerate {
            Some(_) => "the pod's own setting",
            None => "the node's choice, [acceleration] pods",
        };
        out.push_str(&format!("  acceleration      {state}: {from}\n"));
        // eBPF mode: what mw_pods holds; iptables mode (no entry): the
        // record, or the node's choice.
        let dns = match pod_flags(p.netns_cookie) {
            Some(f) => f & crate::datapath::layout::POD_F_DNS != 0,
            None => s.dns_capture.unwrap_or(dns_by_default),
        };
        let dns = if dns { "on" } else { "off" };
        let from = match s.dns_capture {
            Some(_) => "the pod's own setting",
            None => "the node's choice, [dns] capture",
        };
        out.push_str(&format!("  dns capture       {dns}: {from}\n"));
    }
    if let Some(n) = node {
        out.push_str(&format!(
            "\nnode-wide, for every pod: excluded outbound ports {}; cidrs {}; excluded inbound ports {} (127.0.0.0/8 and the sidecar's ports always)\n",
            list(&n.outbound_ports),
            list(&n.outbound_cidrs),
            list(&n.inbound_ports)
        ));
        out.push_str(&format!(
            "node-wide DNS capture ([dns] servers): {}\n",
            if n.dns_servers.is_empty() { "queries to any resolver on port 53".to_string() } else { format!("queries to {} only", list(&n.dns_servers)) }
        ));
    }
    out
}

#[cfg(test)]
mod v6_tests {
    use super::*;

    #[test]
    fn ipv6_connections_are_shown_with_their_addresses() {
        let w = |a: &str| -> [u32; 4] {
            let b = a.parse::<Ipv6Addr>().unwrap().octets();
            std::array::from_fn(|i| u32::from_ne_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]]))
        };
        let key = Tuple6 { netns_cookie: 4097, client_ip6: w("fd00:231:1::2"), server_ip6: w("::1"), client_port: 40000, server_port: 15001, pad: 0 };
        let orig = Orig6 { ip6: w("fd00:231::1"), port: 8080u16.to_be(), flags: 0, flowinfo: 0 };
        assert_eq!(tuple6_line(&key, &orig), "  netns 4097     [fd00:231:1::2]:40000 -> [::1]:15001  orig [fd00:231::1]:8080");
    }

    #[test]
    fn inbound_flows_of_both_families_are_shown_with_the_dialled_port() {
        let f = Flow4 { orig_port: 8080u16.to_be(), flags: 1, pad: 0 };
        let v4 = flow_line(Ipv4Addr::new(10, 231, 0, 1).into(), 40000u16.to_be(), Ipv4Addr::new(10, 231, 1, 2).into(), &f);
        assert_eq!(v4, "  10.231.0.1:40000 -> 10.231.1.2:8080  flags 0x1");
        let v6 = flow_line("fd00:231::1".parse::<Ipv6Addr>().unwrap().into(), 40000u16.to_be(), "fd00:231:1::2".parse::<Ipv6Addr>().unwrap().into(), &f);
        assert_eq!(v6, "  [fd00:231::1]:40000 -> [fd00:231:1::2]:8080  flags 0x1");
    }
}
