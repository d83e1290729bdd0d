//! `meshwire-loader trace`: the datapath's decisions, live, from the pinned
//! `mw_events` ring buffer (bpf/lib/meshwire_trace.h). One line per event, or
//! one JSON object per line with `--json`. It reads the pins, so it works
//! while the daemon runs and after it stopped; the programs emit events only
//! when they were loaded with `bpf.trace = true`.

use std::cell::Cell;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::datapath::{Hook, PROGRAMS};
use crate::datapath::layout::{Event, Settings, DECISION_NAMES, HOOK_NAMES, STAT_NAMES};
use crate::libbpf::{self, MapFd, RingBuffer};
use crate::datapath::objects;
use crate::datapath::pins::{self, Pins};
use crate::error::{Error, OrOs};

/// What to follow and how to print it.
#[derive(Debug, Clone, Default)]
pub struct TraceOpts {
    pub json: bool,
    /// Only events of this network namespace (cookie).
    pub netns_cookie: Option<u64>,
    /// Stop after this many events.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Also print the events written before the trace started (the ring
    /// buffer keeps what no reader took, up to its size).
    pub backlog: bool,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGINT/SIGTERM end the trace cleanly (summary, exit 0). No SA_RESTART:
/// the signal interrupts the ring buffer's epoll_wait.
fn catch_stop_signals() -> Result<(), Error> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(SigHandler::Handler(on_stop_signal), SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(sig, &action) }.or_os(|| format!("installing a {sig} handler"))?;
    }
    Ok(())
}

pub fn hook_name(hook: u8) -> String {
    match HOOK_NAMES.get((hook as usize).wrapping_sub(1)) {
        Some(n) => n.trim_start_matches("MW_HOOK_").to_lowercase(),
        None => format!("hook{hook}"),
    }
}

pub fn decision_name(decision: u8) -> String {
    match DECISION_NAMES.get((decision as usize).wrapping_sub(1)) {
        Some(n) => n.trim_start_matches("MW_DEC_").to_lowercase(),
        None => format!("decision{decision}"),
    }
}

/// An event's address and port as `addr:port` (IPv6: `[addr]:port`); None
/// when the hook knew neither.
fn endpoint(e: &Event, ip: &[u32; 4], port: u16) -> Option<String> {
    if e.ip6 == 0 {
        return (ip[0] != 0 || port != 0).then(|| format!("{}:{port}", Ipv4Addr::from(u32::from_be(ip[0]))));
    }
    let mut bytes = [0u8; 16];
    for (i, w) in ip.iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    (ip.iter().any(|w| *w != 0) || port != 0).then(|| format!("[{}]:{port}", Ipv6Addr::from(bytes)))
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// CLOCK_REALTIME - CLOCK_MONOTONIC, to turn bpf_ktime_get_ns() into wall time.
fn monotonic_to_realtime_ns() -> i128 {
    clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC)
}

/// RFC 3339 UTC with microseconds, from nanoseconds since the epoch.
pub fn rfc3339(epoch_ns: i128) -> String {
    let secs = epoch_ns.div_euclid(1_000_000_000) as i64;
    let micros = epoch_ns.rem_euclid(1_000_000_000) / 1000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// One event as a line of text.
pub fn format_text(e: &Event, time: &str) -> String {
    let mut line = format!("{time} {:<10} {:<20} netns {:<8}", hook_name(e.hook), decision_name(e.decision), e.netns_cookie);
    if e.pid != 0 || e.uid != 0 {
        line.push_str(&format!(" pid {} uid {}", e.pid, e.uid));
    }
    if let Some(s) = endpoint(e, &e.src_ip, e.src_port) {
        line.push_str(&format!(" src {s}"));
    }
    if let Some(d) = endpoint(e, &e.dst_ip, e.dst_port) {
        line.push_str(&format!(" dst {d}"));
    }
    if let Some(t) = endpoint(e, &e.to_ip, e.to_port) {
        line.push_str(&format!(" -> {t}"));
    }
    line
}

/// One event as a JSON object (one line).
pub fn format_json(e: &Event, time: &str) -> String {
    serde_json::json!({
        "time": time,
        "ts_ns": e.ts_ns,
        "hook": hook_name(e.hook),
        "decision": decision_name(e.decision),
        "netns_cookie": e.netns_cookie,
        "pid": e.pid,
        "uid": e.uid,
        "family": if e.ip6 != 0 { "ipv6" } else { "ipv4" },
        "src": endpoint(e, &e.src_ip, e.src_port),
        "dst": endpoint(e, &e.dst_ip, e.dst_port),
        "to": endpoint(e, &e.to_ip, e.to_port),
    })
    .to_string()
}

fn dropped(stats: &MapFd) -> u64 {
    let i = STAT_NAMES.iter().position(|n| *n == "MW_STAT_TRACE_DROPPED").expect("the stat exists") as u32;
    stats.lookup_percpu_sum(&i).unwrap_or(0)
}

/// Whether the attached connect4 program was loaded with `bpf.trace` on,
/// read from its .rodata; None when that cannot be told.
pub fn loaded_with_trace(pins: &Pins) -> Option<bool> {
    let spec = PROGRAMS.iter().find(|p| p.hook == Hook::Cgroup)?;
    let link = libbpf::obj_get(&pins.link(spec.program)).ok()?;
    let prog = libbpf::link_program(&link).ok()?;
    let obj = spec.object.open(None).ok()?;
    let (offset, size) = libbpf::Btf::of_object(&obj)?.datasec_var(".rodata", objects::SETTINGS_VAR)?;
    if size != std::mem::size_of::<Settings>() {
        return None;
    }
    for id in libbpf::prog_map_ids(&prog).ok()? {
        let Ok(map) = MapFd::from_id(id) else { continue };
        let Ok(info) = map.info() else { continue };
        if !info.name.ends_with(".rodata") || info.key_size != 4 {
            continue;
        }
        let value = map.lookup_raw(&0u32.to_ne_bytes()).ok()??;
        return value.get(offset + std::mem::offset_of!(Settings, trace)).map(|b| *b != 0);
    }
    None
}

/// Follow the events until Ctrl-C (or --count / --duration).
pub fn run(pins: &Pins, opts: &TraceOpts) -> Result<(), Error> {
    // Not pinned there: no datapath, or one without these maps (named).
    let events = pins.open_map(pins::MAP_EVENTS)?;
    let stats = pins.open_map(pins::MAP_STATS)?;
    // A ring buffer has one consumer position: two readers would steal
    // each other's events. One `trace` at a time per pin directory.
    let maps_dir = std::fs::File::open(pins.maps_dir()).or_os(|| format!("opening {}", pins.maps_dir().display()))?;
    let _one_reader = nix::fcntl::Flock::lock(maps_dir, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| Error::Internal(format!("another `meshwire-loader trace` is reading {}; one reader at a time", pins.map(pins::MAP_EVENTS).display())))?;
    match loaded_with_trace(pins) {
        Some(false) => eprintln!(
            "meshwire-loader trace: the loaded programs emit no events: set `trace = true` under [bpf] in the configuration and restart `meshwire-loader run`"
        ),
        None => eprintln!("meshwire-loader trace: cannot tell whether the loaded programs emit events (no connect4 link under {})", pins.links_dir().display()),
        Some(true) => {}
    }
    catch_stop_signals()?;

    let offset = monotonic_to_realtime_ns();
    let started_ns = clock_ns(libc::CLOCK_MONOTONIC) as u64;
    let (shown, earlier, broken_pipe) = (Cell::new(0u64), Cell::new(0u64), Cell::new(false));
    let mut out = std::io::stdout().lock();
    let limit = opts.count.unwrap_or(u64::MAX);
    let mut rb = RingBuffer::new(&events, |record| {
        if shown.get() >= limit || broken_pipe.get() {
            return;
        }
        let Some(e) = Event::from_bytes(record) else { return };
        if !opts.backlog && e.ts_ns < started_ns {
            earlier.set(earlier.get() + 1);
            return;
        }
        if opts.netns_cookie.is_some_and(|c| c != e.netns_cookie) {
            return;
        }
        let time = rfc3339(e.ts_ns as i128 + offset);
        let line = if opts.json { format_json(&e, &time) } else { format_text(&e, &time) };
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            broken_pipe.set(true); // `trace | head`: stop quietly
            return;
        }
        shown.set(shown.get() + 1);
    })
    ?;

    let dropped_at_start = dropped(&stats);
    let mut dropped_seen = dropped_at_start;
    let started = Instant::now();
    let mut last_check = Instant::now();
    loop {
        rb.poll(200)?;
        if STOP.load(Ordering::SeqCst) || opts.duration.is_some_and(|d| started.elapsed() >= d) {
            // What was already written before the stop.
            rb.consume()?;
            break;
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            let now = dropped(&stats);
            if now > dropped_seen {
                eprintln!("meshwire-loader trace: {} events dropped: the ring buffer was full (reader too slow)", now - dropped_seen);
                dropped_seen = now;
            }
        }
        if shown.get() >= limit || broken_pipe.get() {
            break;
        }
    }
    drop(rb);
    if !broken_pipe.get() {
        let earlier = match earlier.get() {
            0 => String::new(),
            n => format!(" ({n} from before the trace started not shown: --backlog shows them)"),
        };
        eprintln!("meshwire-loader trace: {} events{earlier}; {} dropped by the datapath meanwhile", shown.get(), dropped(&stats) - dropped_at_start);
    }
    Ok(())
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
