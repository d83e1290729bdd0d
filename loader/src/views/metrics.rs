//! Prometheus text exposition of the datapath's counters and map fill, on a
//! configurable local address (off by default), and a watchdog that logs
//! when a map nears its capacity.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::views::inspect;
use crate::datapath::pins::{self, Pins};
use crate::error::{Error, OrOs};

/// The hook a counter belongs to, from its name (connect_redirected -> connect4).
fn hook_of(counter: &str) -> &'static str {
    match counter.split('_').next() {
        Some("connect") => "connect4",
        Some("sockops") => "sockops",
        Some("sockopt") => "getsockopt",
        Some("tc") => "tc",
        Some("accel") => "sk_msg",
        Some("trace") => "trace",
        // DNS capture: sendmsg4/6 and connect4/6 redirect, recvmsg4/6 restore.
        Some("dns") => "dns",
        _ => "other",
    }
}

pub fn render(pins: &Pins, pods: usize) -> Result<String, Error> {
    let mut out = String::new();
    out.push_str("# HELP meshwire_datapath_events_total Decisions taken by the BPF programs.\n");
    out.push_str("# TYPE meshwire_datapath_events_total counter\n");
    for (name, v) in inspect::counters(pins)? {
        out.push_str(&format!("meshwire_datapath_events_total{{hook=\"{}\",event=\"{name}\"}} {v}\n", hook_of(&name)));
    }
    let fill = inspect::map_fill(pins)?;
    out.push_str("# HELP meshwire_map_entries Entries in a pinned map.\n# TYPE meshwire_map_entries gauge\n");
    for m in fill.iter().filter(|m| m.entries.is_some()) {
        out.push_str(&format!("meshwire_map_entries{{map=\"{}\"}} {}\n", m.name, m.entries.unwrap_or(0)));
    }
    out.push_str("# HELP meshwire_map_capacity Capacity of a pinned map.\n# TYPE meshwire_map_capacity gauge\n");
    for m in &fill {
        out.push_str(&format!("meshwire_map_capacity{{map=\"{}\"}} {}\n", m.name, m.capacity));
    }
    out.push_str("# HELP meshwire_pods Pods meshed on this node.\n# TYPE meshwire_pods gauge\n");
    out.push_str(&format!("meshwire_pods {pods}\n"));
    Ok(out)
}

fn answer(mut stream: TcpStream, pins: &Pins, pods: &dyn Fn() -> usize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request_line = String::new();
    if BufReader::new(&stream).read_line(&mut request_line).is_err() {
        return;
    }
    let (status, body) = match request_line.split_whitespace().nth(1) {
        Some("/metrics") => match render(pins, pods()) {
            Ok(b) => ("200 OK", b),
            Err(e) => ("503 Service Unavailable", format!("{e}\n")),
        },
        _ => ("404 Not Found", "only /metrics is served here\n".to_string()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Serve /metrics on `addr` from a thread of its own.
pub fn spawn(addr: SocketAddr, pins: Pins, pods: impl Fn() -> usize + Send + 'static) -> Result<(), Error> {
    let listener = TcpListener::bind(addr).or_os(|| format!("metrics address {addr}"))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                answer(stream, &pins, &pods);
            }
        })
        .or_os(|| "starting the metrics thread")?;
    log::info!("metrics on http://{addr}/metrics");
    Ok(())
}

/// Maps above this share of their capacity are logged.
const PRESSURE: f64 = 0.9;

/// What a full map means for the node.
fn when_full(map: &str) -> &'static str {
    match map {
        "mw_pods" | "mw_pod_ips" | "mw_pod_ips6" | "mw_pod_uid" => "new pods cannot be meshed (pod add fails); pods already meshed are unaffected",
        "mw_excl_ports" | "mw_excl_cidr4" | "mw_excl_cidr6" | "mw_excl_in4" | "mw_excl_in6" => "pods with exclusions of their own cannot be meshed (pod add fails); pods already meshed are unaffected",
        "mw_incl_cidr4" | "mw_incl_cidr6" => "pods with included ranges cannot be meshed (pod add fails); pods already meshed are unaffected",
        "mw_orig_tuple4" | "mw_orig_tuple6" => "LRU: the oldest connections not yet accepted by their sidecar lose their original destination",
        "mw_flow4" | "mw_flow4_fin" | "mw_flow6" | "mw_flow6_fin" => "LRU: the least recently used inbound flows are evicted and no longer rewritten",
        "mw_flow4_syn" | "mw_flow6_syn" => "LRU: the oldest inbound handshakes in progress are evicted (their peers retry); established flows are not affected",
        pins::MAP_SOCK_HASH | pins::MAP_ACCEL_STATE | pins::MAP_SOCK_HASH6 | pins::MAP_ACCEL_STATE6 => "new connections are not accelerated (counted in accel_error)",
        pins::MAP_ACCEL_HINTS => "LRU: the least recently reported destinations' hints are forgotten (their next connections are accelerated, as a new destination's)",
        _ => "new entries are refused",
    }
}

/// 0 below 90% of the capacity, 1 from 90%, 2 full.
fn level(entries: usize, capacity: u32) -> u8 {
    match capacity as usize {
        0 => 0,
        c if entries >= c => 2,
        c if entries as f64 >= PRESSURE * c as f64 => 1,
        _ => 0,
    }
}

/// The warning for a map whose level rose from `before`, if it did.
fn pressure_warning(map: &str, entries: usize, capacity: u32, before: u8) -> Option<String> {
    let now = level(entries, capacity);
    if now <= before {
        return None;
    }
    let raise = "raise its capacity in bpf/lib/meshwire_consts.h (docs/operating.md, Limits)";
    Some(match now {
        2 => format!("map {map} is full: {entries} of {capacity} entries; {}; {raise}", when_full(map)),
        _ => format!("map {map} holds {entries} of {capacity} entries; when full, {}; {raise}", when_full(map)),
    })
}

/// Every `period`, log a warning for each map that passes 90% of its
/// capacity, and again when it is full (once per crossing), so a full map
/// is noticed and its effect named.
pub fn watch_pressure(pins: Pins, period: Duration) {
    let _ = std::thread::Builder::new().name("map-pressure".into()).spawn(move || {
        let mut levels: std::collections::HashMap<&'static str, u8> = std::collections::HashMap::new();
        loop {
            std::thread::sleep(period);
            let Ok(fill) = inspect::map_fill(&pins) else { continue };
            for m in fill.into_iter().filter(|m| !m.fixed_size) {
                let Some(n) = m.entries else { continue };
                let before = levels.get(m.name).copied().unwrap_or(0);
                if let Some(w) = pressure_warning(m.name, n, m.capacity, before) {
                    log::warn!("{w}");
                }
                levels.insert(m.name, level(n, m.capacity));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_grouped_by_hook() {
        assert_eq!(hook_of("connect_redirected"), "connect4");
        assert_eq!(hook_of("sockopt_answered"), "getsockopt");
        assert_eq!(hook_of("tc_flow_closed"), "tc");
        assert_eq!(hook_of("accel_sock_added"), "sk_msg");
        assert_eq!(hook_of("dns_redirected"), "dns");
    }

    #[test]
    fn pressure_is_logged_once_per_crossing_and_a_full_map_says_what_it_means() {
        assert_eq!(pressure_warning("mw_pods", 100, 4096, 0), None);
        let w = pressure_warning("mw_pods", 3700, 4096, 0).unwrap();
        assert!(w.starts_with("map mw_pods holds 3700 of 4096 entries; when full, new pods cannot be meshed"), "{w}");
        assert_eq!(pressure_warning("mw_pods", 3800, 4096, level(3700, 4096)), None, "no second warning at the same level");
        let w = pressure_warning("mw_pods", 4096, 4096, level(3800, 4096)).unwrap();
        assert!(w.starts_with("map mw_pods is full: 4096 of 4096 entries; new pods cannot be meshed (pod add fails)"), "{w}");
        assert!(w.contains("bpf/lib/meshwire_consts.h"), "{w}");
        assert!(pressure_warning("mw_orig_tuple4", 65536, 65536, 0).unwrap().contains("LRU"));
        // IPv6's maps mean the same when full as IPv4's.
        assert_eq!(pressure_warning("mw_orig_tuple6", 65536, 65536, 0), pressure_warning("mw_orig_tuple4", 65536, 65536, 0).map(|w| w.replace("tuple4", "tuple6")));
        assert!(pressure_warning("mw_excl_cidr6", 4096, 4096, 0).unwrap().contains("pod add fails"));
        for (v6, v4) in [(pins::MAP_SOCK_HASH6, pins::MAP_SOCK_HASH), (pins::MAP_ACCEL_STATE6, pins::MAP_ACCEL_STATE)] {
            let w = pressure_warning(v6, 65536, 65536, 0).unwrap();
            assert_eq!(Some(w.clone()), pressure_warning(v4, 65536, 65536, 0).map(|w| w.replace(v4, v6)));
            assert!(w.contains("not accelerated (counted in accel_error)"), "{w}");
        }
        assert_eq!(pressure_warning("mw_incl_cidr6", 4096, 4096, 0), pressure_warning("mw_incl_cidr4", 4096, 4096, 0).map(|w| w.replace("cidr4", "cidr6")));
        assert!(pressure_warning("mw_incl_cidr4", 4096, 4096, 0).unwrap().contains("pod add fails"));
        assert_eq!(level(5, 0), 0, "a map without a capacity is never full");
    }

    #[test]
    fn without_a_datapath_render_says_so() {
        let pins = Pins::new(std::path::Path::new("/nonexistent/meshwire"));
        assert!(render(&pins, 0).is_err());
    }
}
