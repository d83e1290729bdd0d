//! The node daemon: install the datapath, then wait for a stop signal.
//!
//! Threads talk over crossbeam channels; the signal thread is the only one so
//! far, the control API's workers will join it.

use crossbeam_channel::{bounded, Receiver};
use nix::sys::signal::{SigSet, Signal};

use crate::config::Config;
use crate::datapath;

/// Block the stop signals in every thread and deliver them on a channel.
fn stop_signals() -> Result<Receiver<Signal>, String> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block().map_err(|e| format!("blocking signals: {e}"))?;
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
        .map_err(|e| format!("starting the signal thread: {e}"))?;
    Ok(rx)
}

pub fn run(config: &Config) -> Result<(), String> {
    let stop = stop_signals()?;
    datapath::install(config)?;
    log::info!(
        "meshwire-loader: ready (cgroup {}, pins {}, sidecar uid {} outbound port {})",
        datapath::target_cgroup(config)?.display(),
        config.bpf.pin_dir.display(),
        config.sidecar.uid,
        config.sidecar.outbound_port
    );
    let sig = stop.recv().map_err(|e| format!("signal channel: {e}"))?;
    log::info!("meshwire-loader: {sig} received; the datapath stays attached and pinned (`meshwire-loader cleanup` removes it)");
    Ok(())
}
