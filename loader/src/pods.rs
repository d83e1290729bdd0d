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

fn pod_ips_map(pins: &Pins) -> Result<MapFd, String> {
    MapFd::open_pinned(&pins.map(pins::MAP_POD_IPS)).map_err(|e| e.to_string())
}

/// Mesh the pod whose network namespace is at `netns`; returns its cookie.
/// With its IPv4 address known, inbound connections to it are intercepted too.
pub fn register(pins: &Pins, netns: &Path, ip4: Option<Ipv4Addr>) -> Result<u64, String> {
    let cookie = system::netns_cookie(netns)?;
    if system::host_netns_cookies()?.contains(&cookie) {
        return Err(format!("{} is the host's (or the loader's own) network namespace; meshwire only intercepts pods", netns.display()));
    }
    let map = pods_map(pins)?;
    let ips = pod_ips_map(pins)?;
    let _lock = pins.lock().map_err(|e| format!("locking {}: {e}", pins.root().display()))?;
    if let Some(ip) = ip4 {
        let key = u32::from(ip).to_be();
        if let Some(owner) = ips.lookup::<u32, u64>(&key).map_err(|e| e.to_string())? {
            if owner != cookie {
                return Err(format!("{ip} already belongs to the meshed pod with netns cookie {owner}; delete that pod first"));
            }
        }
    }
    let old = map.lookup::<u64, Pod>(&cookie).map_err(|e| e.to_string())?;
    let pod = Pod { flags: POD_F_MESHED, ip4: ip4.map_or(0, |a| u32::from(a).to_be()) };
    map.update(&cookie, &pod).map_err(|e| e.to_string())?;
    if pod.ip4 != 0 {
        if let Err(e) = ips.update(&pod.ip4, &cookie) {
            // Leave the pod as it was before this call.
            let _ = match old {
                Some(o) => map.update(&cookie, &o),
                None => map.delete(&cookie).map(|_| ()),
            };
            return Err(e.to_string());
        }
    }
    // A re-registration with another address drops the old one.
    if let Some(o) = old {
        if o.ip4 != 0 && o.ip4 != pod.ip4 {
            ips.delete(&o.ip4).map_err(|e| e.to_string())?;
        }
    }
    Ok(cookie)
}

/// Stop meshing a pod, by netns cookie. Ok(false): it was not meshed.
pub fn unregister(pins: &Pins, cookie: u64) -> Result<bool, String> {
    let map = pods_map(pins)?;
    let ips = pod_ips_map(pins)?;
    let _lock = pins.lock().map_err(|e| format!("locking {}: {e}", pins.root().display()))?;
    let Some(pod) = map.lookup::<u64, Pod>(&cookie).map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    if pod.ip4 != 0 && ips.lookup::<u32, u64>(&pod.ip4).map_err(|e| e.to_string())? == Some(cookie) {
        ips.delete(&pod.ip4).map_err(|e| e.to_string())?;
    }
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
