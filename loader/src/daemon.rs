//! The node daemon: install the datapath, then wait for a stop signal.
//!
//! The signal thread hands its stop signal over a crossbeam channel.

use crossbeam_channel::{bounded, Receiver};
use nix::sys::signal::{SigSet, Signal};

use std::sync::Arc;

use crate::config::Config;
use crate::datapath;
use crate::interception;
use crate::interception::pods::PodDefaults;
use crate::service::control::{self, ApiPaths};
use crate::service::pod_service::PodService;
use crate::views::metrics;
use crate::datapath::pins::Pins;
use crate::error::{Error, OrOs};

/// API connections open at once (idle ones are dropped after 30 s; they
/// wait in the API's epoll set, not on a thread each): room for a node's CNI
/// calls and more than a thousand idle or slow clients.
const API_MAX_CONNECTIONS: usize = 4096;

/// At a stop signal, the bare clsact qdiscs DELs left and the reaper has not
/// deleted yet (each waits about a second, crate::datapath::reaper) are
/// deleted before the loader exits, for at most this long: a few
/// milliseconds each, and a stop is not held up by many (a DaemonSet pod
/// gets 30 s). What is left then keeps its markers on bpffs, and the next
/// start's sweep deletes it, as after a kill.
const STOP_REMOVALS_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Block the stop signals in every thread and deliver them on a channel.
fn stop_signals() -> Result<Receiver<Signal>, Error> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block().or_os(|| "blocking signals")?;
    let (tx, rx) = bounded(1);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            match set.wait() {
                Ok(sig) => {
                    let _ = tx.send(sig);
                    return;
                }
                Err(e) => log::warn!("sigwait: {e}"),
            }
        })
        .or_os(|| "starting the signal thread")?;
    Ok(rx)
}

/// Every API connection is a file descriptor: raise the soft limit on them
/// to the hard one (no privilege needed), as far as the kernel allows.
fn raise_open_files() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            log::warn!("raising the open-files limit: {}", std::io::Error::last_os_error());
        }
    }
}

/// Install the datapath, adopt the pods a previous loader left, serve the
/// API, and wait for a stop signal. The socket appears only once pods can be
/// served, so a CNI call made earlier fails fast and is retried.
pub fn run(config: &Config, api: &ApiPaths, wait_for_lock: bool) -> Result<(), Error> {
    let stop = stop_signals()?;
    // Before anything touches the pins, the cgroup or the maps: another
    // loader serving this node keeps it until it stops (lock.rs).
    let _lock = crate::lock::acquire(&api.state_dir, wait_for_lock, || !stop.is_empty())?;
    // Read the host's netns cookies now, on the main thread, which never
    // enters another namespace (they are cached for the process's life).
    crate::system::host_netns_cookies()?;
    let catch_up = datapath::install_before_adoption(config)?;
    let pins = Pins::new(&config.bpf.pin_dir);
    let service = PodService::new(&api.state_dir, interception::of(config, &pins))?
        .with_pod_defaults(PodDefaults { accelerate: config.acceleration.pods.by_default(), dns_capture: config.dns.capture });
    let service = Arc::new(service);
    // Pods' clsact filters have moved to the new programs (those adoption
    // reached): what their old programs wrote meanwhile is carried over.
    let adopted = service.adopt();
    catch_up.run();
    let (kept, dropped, unchecked) = adopted?;
    if kept + dropped + unchecked > 0 {
        log::info!("adopted {kept} pod(s) from {}, dropped {dropped} whose network namespace is gone", api.state_dir.display());
    }
    if unchecked > 0 {
        log::warn!("kept {unchecked} pod(s) whose network namespace could not be checked (see the errors above), as they were and not steered again; `meshwire-loader pods` and `status` show them unchecked until a CHECK (or a restart) looks again");
    }
    if config.ipv6 == crate::config::Ipv6Policy::Pass {
        log::warn!("interception.ipv6 = \"pass\": meshed pods' native IPv6 TCP goes direct, bypassing their sidecars");
    }
    let listener = control::bind(&api.socket)?;
    if let Some(addr) = config.metrics {
        let pods = Arc::clone(&service);
        metrics::spawn(addr, pins.clone(), move || pods.count())?;
    }
    metrics::watch_pressure(pins.clone(), std::time::Duration::from_secs(10));
    raise_open_files();
    control::spawn(listener, Arc::clone(&service), API_MAX_CONNECTIONS)?;
    log::info!(
        "meshwire-loader: ready (version {}, interception {}, ipv6 {}, tc attach {}, cgroup {}, pins {}, api {}, sidecar uid {} outbound port {} inbound port {})",
        crate::version::VERSION.as_str(),
        config.interception.as_str(),
        config.ipv6.as_str(),
        config.tc_attach.as_str(),
        datapath::target_cgroup(config)?.display(),
        config.bpf.pin_dir.display(),
        api.socket.display(),
        config.sidecar.uid,
        config.sidecar.outbound_port,
        config.sidecar.inbound_port
    );
    let sig = stop.recv().map_err(|e| Error::Internal(format!("signal channel: {e}")))?;
    let _ = std::fs::remove_file(&api.socket);
    log::info!("meshwire-loader: {sig} received; the datapath and its pods stay attached and pinned (`meshwire-loader cleanup` removes them)");
    let finished = service.finish_removals(STOP_REMOVALS_WITHIN);
    if finished.deleted > 0 {
        log::info!("deleted {} clsact qdisc(s) that DELs left, before stopping", finished.deleted);
    }
    if finished.left > 0 {
        log::warn!(
            "{} clsact qdisc(s) that DELs left were not deleted within {} s; they steer nothing, and the next start deletes them",
            finished.left,
            STOP_REMOVALS_WITHIN.as_secs()
        );
    }
    Ok(())
}
