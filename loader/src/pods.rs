//! Which network namespaces are meshed: the `mw_pods` map, keyed by netns cookie.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::layout::{Pod, POD_F_MESHED};
use crate::libbpf::MapFd;
use crate::pins::{self, Pins};
use crate::system;

fn pods_map(pins: &Pins) -> Result<MapFd, String> {
    MapFd::open_pinned(&pins.map(pins::MAP_PODS))
        .map_err(|e| format!("{e}; is the loader running (or was it started) with pin directory {}?", pins.root().display()))
}

/// Mesh the pod whose network namespace is at `netns`; returns its cookie.
pub fn register(pins: &Pins, netns: &Path, ip4: Option<Ipv4Addr>) -> Result<u64, String> {
    let cookie = system::netns_cookie(netns)?;
    if system::host_netns_cookies()?.contains(&cookie) {
        return Err(format!("{} is the host's (or the loader's own) network namespace; meshwire only intercepts pods", netns.display()));
    }
    let map = pods_map(pins)?;
    let _lock = pins.lock().map_err(|e| format!("locking {}: {e}", pins.root().display()))?;
    let pod = Pod { flags: POD_F_MESHED, ip4: ip4.map_or(0, |a| u32::from(a).to_be()) };
    map.update(&cookie, &pod).map_err(|e| e.to_string())?;
    Ok(cookie)
}

/// Stop meshing a pod, by netns path or cookie. Ok(false): it was not meshed.
pub fn unregister(pins: &Pins, cookie: u64) -> Result<bool, String> {
    let map = pods_map(pins)?;
    let _lock = pins.lock().map_err(|e| format!("locking {}: {e}", pins.root().display()))?;
    map.delete(&cookie).map_err(|e| e.to_string())
}

pub fn list(pins: &Pins) -> Result<Vec<(u64, Pod)>, String> {
    let map = pods_map(pins)?;
    let mut out = Vec::new();
    for cookie in map.keys::<u64>().map_err(|e| e.to_string())? {
        if let Some(pod) = map.lookup::<u64, Pod>(&cookie).map_err(|e| e.to_string())? {
            out.push((cookie, pod));
        }
    }
    out.sort_by_key(|(c, _)| *c);
    Ok(out)
}
