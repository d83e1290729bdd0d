//! A meshed pod's entries in the datapath maps.
//!
//! A pod is meshed when its netns cookie is in `mw_pods`; its IPv4 addresses
//! map back to the cookie in `mw_pod_ips` (same-node inbound), and its own
//! exclusions sit next to the node-wide ones, keyed by cookie (outbound) or by
//! pod IP (inbound, which tc matches by address). [`install`] and [`remove`]
//! are idempotent, and a failed install takes back what it wrote.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use meshwire_api::PodSpec;

use crate::config::{Cidr4, Cidr6};
use crate::error::Error;
use crate::datapath::layout::{Cidr4Key, Cidr6Key, In4Key, In6Key, Ip6Key, Pod, PortKey, DIR_IN_INCL, DIR_OUT, DIR_OUT_INCL, POD_F_ACCEL, POD_F_DNS, POD_F_IN_SELECT, POD_F_MESHED, POD_F_OUT_SELECT};
use crate::libbpf::MapFd;
use crate::datapath::pins::{self, PinnedError, Pins};
use crate::timing;
use crate::system::{self, NetnsError};

/// A pod spec that passed validation, with its netns cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshedPod {
    pub container_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    pub cookie: u64,
    pub ips: Vec<Ipv4Addr>,
    /// Its IPv6 addresses (`mw_pod_ips6`, `mw_excl_in6`).
    pub ips6: Vec<Ipv6Addr>,
    pub out_ports: Vec<u16>,
    pub out_cidrs: Vec<Cidr4>,
    /// IPv6 exclusions (native IPv6 is steered with interception.ipv6 = "intercept").
    pub out_cidrs6: Vec<Cidr6>,
    pub in_ports: Vec<u16>,
    /// Include lists (Istio's): None steers all. Outbound, the ranges and
    /// the ports steered whatever the address; inbound, the ports.
    pub incl_out_cidrs: Option<Vec<Cidr4>>,
    /// The IPv6 ranges of the same list (`mw_incl_cidr6`); with
    /// `incl_out_cidrs` None, empty.
    pub incl_out_cidrs6: Vec<Cidr6>,
    pub incl_out_ports: Vec<u16>,
    pub incl_in_ports: Option<Vec<u16>>,
    /// Its mesh hops are accelerated (when the node runs acceleration).
    pub accelerate: bool,
    /// Its DNS to port 53 goes to its sidecar's DNS proxy.
    pub dns_capture: bool,
}

/// The node's choices for a pod that does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodDefaults {
    /// `[acceleration] pods`.
    pub accelerate: bool,
    /// `[dns] capture`.
    pub dns_capture: bool,
}

impl Default for PodDefaults {
    /// As config/default.toml has them.
    fn default() -> PodDefaults {
        PodDefaults { accelerate: true, dns_capture: false }
    }
}

impl MeshedPod {
    /// A validated spec (or the record of one) in the namespace `cookie`.
    pub fn of(spec: &PodSpec, cookie: u64, defaults: PodDefaults) -> MeshedPod {
        MeshedPod {
            container_id: spec.container_id.clone(),
            netns: spec.netns.clone(),
            ifname: spec.ifname.clone(),
            cookie,
            ips: spec.ips.clone(),
            ips6: spec.ips6.clone(),
            out_ports: spec.exclude_outbound_ports.clone(),
            out_cidrs: spec.exclude_outbound_cidrs.clone(),
            out_cidrs6: spec.exclude_outbound_cidrs6.clone(),
            in_ports: spec.exclude_inbound_ports.clone(),
            incl_out_cidrs: spec.include_outbound_cidrs.clone(),
            incl_out_cidrs6: if spec.include_outbound_cidrs.is_some() { spec.include_outbound_cidrs6.clone() } else { Vec::new() },
            // Without restricted ranges everything is steered: no ports to list.
            incl_out_ports: if spec.include_outbound_cidrs.is_some() { spec.include_outbound_ports.clone() } else { Vec::new() },
            incl_in_ports: spec.include_inbound_ports.clone(),
            accelerate: spec.accelerate.unwrap_or(defaults.accelerate),
            dns_capture: spec.dns_capture.unwrap_or(defaults.dns_capture),
        }
    }

    /// Its `mw_pods` entry.
    fn entry(&self) -> Pod {
        let mut flags = POD_F_MESHED;
        if self.accelerate {
            flags |= POD_F_ACCEL;
        }
        if self.incl_out_cidrs.is_some() {
            flags |= POD_F_OUT_SELECT;
        }
        if self.incl_in_ports.is_some() {
            flags |= POD_F_IN_SELECT;
        }
        if self.dns_capture {
            flags |= POD_F_DNS;
        }
        Pod { flags }
    }

    /// Its per-cookie port entries of `mw_excl_ports`: excluded outbound,
    /// included outbound and inbound ports.
    fn port_keys(&self) -> Vec<PortKey> {
        let out = self.out_ports.iter().map(|&p| port_key(self.cookie, p, DIR_OUT));
        let incl_out = self.incl_out_ports.iter().map(|&p| port_key(self.cookie, p, DIR_OUT_INCL));
        let incl_in = self.incl_in_ports.iter().flatten().map(|&p| port_key(self.cookie, p, DIR_IN_INCL));
        out.chain(incl_out).chain(incl_in).collect()
    }
}

/// Each item of `more` not in `into` yet, appended.
fn union<T: PartialEq + Clone>(into: &mut Vec<T>, more: &[T]) {
    for x in more {
        if !into.contains(x) {
            into.push(x.clone());
        }
    }
}

/// Two include lists together: None (everything) when either is.
fn union_of_includes<T: PartialEq + Clone>(a: Option<Vec<T>>, b: &Option<Vec<T>>) -> Option<Vec<T>> {
    let (mut a, b) = (a?, b.as_ref()?);
    union(&mut a, b);
    Some(a)
}

/// The pod as its netns-cookie entries see it: `pod` and the other
/// attachments of the same pod (a pod on two networks), whose settings are
/// combined: the exclusions of any, the inclusions of any (everything when
/// one of them includes everything), accelerated and DNS captured when one
/// asks it.
pub fn merged(pod: &MeshedPod, siblings: &[MeshedPod]) -> MeshedPod {
    let mut m = pod.clone();
    for s in siblings {
        union(&mut m.out_ports, &s.out_ports);
        union(&mut m.out_cidrs, &s.out_cidrs);
        union(&mut m.out_cidrs6, &s.out_cidrs6);
        m.incl_out_cidrs = union_of_includes(m.incl_out_cidrs.take(), &s.incl_out_cidrs);
        union(&mut m.incl_out_ports, &s.incl_out_ports);
        union(&mut m.incl_out_cidrs6, &s.incl_out_cidrs6);
        m.incl_in_ports = union_of_includes(m.incl_in_ports.take(), &s.incl_in_ports);
        m.accelerate |= s.accelerate;
        m.dns_capture |= s.dns_capture;
    }
    if m.incl_out_cidrs.is_none() {
        m.incl_out_ports.clear();
        m.incl_out_cidrs6.clear();
    }
    m
}

/// A pod's entries keyed by its netns cookie.
struct CookieKeys {
    ports: Vec<PortKey>,
    out_cidrs: Vec<Cidr4Key>,
    out_cidrs6: Vec<Cidr6Key>,
    incl_cidrs: Vec<Cidr4Key>,
    incl_cidrs6: Vec<Cidr6Key>,
}

impl MeshedPod {
    fn cookie_keys(&self) -> CookieKeys {
        CookieKeys {
            ports: self.port_keys(),
            out_cidrs: self.out_cidrs.iter().map(|c| Cidr4Key::of(self.cookie, c)).collect(),
            out_cidrs6: self.out_cidrs6.iter().map(|c| Cidr6Key::of(self.cookie, c)).collect(),
            incl_cidrs: self.incl_out_cidrs.iter().flatten().map(|c| Cidr4Key::of(self.cookie, c)).collect(),
            incl_cidrs6: self.incl_out_cidrs6.iter().map(|c| Cidr6Key::of(self.cookie, c)).collect(),
        }
    }
}

/// Characters CNI allows in a container ID; also keeps record file names safe.
fn valid_container_id(id: &str) -> bool {
    id.len() <= MAX_CONTAINER_ID && valid_id_chars(id)
}

/// The longest container ID a pod can be added under.
const MAX_CONTAINER_ID: usize = 256;

fn valid_id_chars(id: &str) -> bool {
    !id.is_empty() && !id.starts_with('.') && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// An ID of valid characters, longer than any pod can be added under.
pub fn too_long_container_id(id: &str) -> bool {
    id.len() > MAX_CONTAINER_ID && valid_id_chars(id)
}

pub fn check_container_id(id: &str) -> Result<(), Error> {
    if valid_container_id(id) {
        Ok(())
    } else {
        Err(Error::Invalid(format!("container_id {id:?} is not valid: use 1-256 of A-Z a-z 0-9 _ . - (not starting with '.')")))
    }
}

/// Validate a spec without touching the system (no netns access).
pub fn validate(spec: &PodSpec) -> Result<(), Error> {
    check_container_id(&spec.container_id)?;
    if !spec.netns.is_absolute() {
        return Err(Error::Invalid(format!("netns {:?} must be an absolute path", spec.netns)));
    }
    let ifname = &spec.ifname;
    if !ifname.is_empty() && (ifname.len() > 15 || ifname.contains(['/', ' ', '\0']) || ifname == "." || ifname == "..") {
        return Err(Error::Invalid(format!("ifname {ifname:?} is not a valid interface name (up to 15 characters, no '/' or spaces)")));
    }
    for (what, ports) in [("exclude_outbound_ports", &spec.exclude_outbound_ports), ("exclude_inbound_ports", &spec.exclude_inbound_ports)] {
        if ports.contains(&0) {
            return Err(Error::Invalid(format!("{what}: port 0 is not a port; use 1-65535")));
        }
    }
    for (what, ports) in [("include_outbound_ports", &spec.include_outbound_ports), ("include_inbound_ports", &spec.include_inbound_ports.clone().unwrap_or_default())] {
        if ports.contains(&0) {
            return Err(Error::Invalid(format!("{what}: port 0 is not a port; use 1-65535")));
        }
    }
    if spec.include_outbound_cidrs.is_none() && !spec.include_outbound_cidrs6.is_empty() {
        let shown: Vec<String> = spec.include_outbound_cidrs6.iter().map(|c| c.to_string()).collect();
        return Err(Error::Invalid(format!(
            "include_outbound_cidrs6 [{}] without include_outbound_cidrs: the include list is one for both families; \
             give include_outbound_cidrs (its IPv4 ranges, [] for none) or leave both out to steer all",
            shown.join(", ")
        )));
    }
    for ip in &spec.ips {
        if ip.is_unspecified() || ip.is_loopback() || ip.is_broadcast() || ip.is_multicast() {
            return Err(Error::Invalid(format!("ips: {ip} cannot be a pod address")));
        }
    }
    for ip in &spec.ips6 {
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.to_ipv4_mapped().is_some() {
            return Err(Error::Invalid(format!("ips6: {ip} cannot be a pod address (IPv4-mapped addresses go in ips)")));
        }
    }
    Ok(())
}

/// The validated `spec` in the network namespace whose cookie is `cookie`
/// (read from inside it, system::run_in_netns), refused when that is one of
/// `hosts` (system::host_netns_cookies, read outside it). `defaults`: the
/// node's choices for a spec that does not say.
pub fn resolve(spec: &PodSpec, cookie: u64, hosts: &[u64], defaults: PodDefaults) -> Result<MeshedPod, Error> {
    if hosts.contains(&cookie) {
        return Err(Error::Invalid(format!("{} is the host's (or the loader's own) network namespace; meshwire only intercepts pods", spec.netns.display())));
    }
    Ok(MeshedPod::of(spec, cookie, defaults))
}

/// The maps a pod's entries live in.
pub struct PodMaps {
    pods: MapFd,
    uids: MapFd,
    ips: MapFd,
    out_ports: MapFd,
    out_cidrs: MapFd,
    out_cidrs6: MapFd,
    incl_cidrs: MapFd,
    incl_cidrs6: MapFd,
    in_ports: MapFd,
    ips6: MapFd,
    in_ports6: MapFd,
    /// Each pin and its inode (device, inode) as it was before it was opened.
    pinned: Vec<(PathBuf, Option<(u64, u64)>)>,
}

/// bpffs gives every pin an inode of its own: a map pinned anew at the same
/// path (an upgrade moving a map, `cleanup` and a new start) has another.
fn pin_inode(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl PodMaps {
    /// Every pod map from its pin; the first that cannot be opened is
    /// named (a pin that is not there: Missing, or NoDatapath when none is).
    pub fn open(pins: &Pins) -> Result<PodMaps, PinnedError> {
        let mut pinned = Vec::new();
        let mut open = |name: &'static str| {
            let path = pins.map(name);
            // The inode before the open: if the pin is replaced in between,
            // `current` says so next time and the maps are opened again.
            pinned.push((path.clone(), pin_inode(&path)));
            pins.open_map(name)
        };
        Ok(PodMaps {
            pods: open(pins::MAP_PODS)?,
            uids: open(pins::MAP_POD_UID)?,
            ips: open(pins::MAP_POD_IPS)?,
            out_ports: open(pins::MAP_EXCL_PORTS)?,
            out_cidrs: open(pins::MAP_EXCL_CIDR4)?,
            out_cidrs6: open(pins::MAP_EXCL_CIDR6)?,
            incl_cidrs: open(pins::MAP_INCL_CIDR4)?,
            incl_cidrs6: open(pins::MAP_INCL_CIDR6)?,
            in_ports: open(pins::MAP_EXCL_IN4)?,
            ips6: open(pins::MAP_POD_IPS6)?,
            in_ports6: open(pins::MAP_EXCL_IN6)?,
            pinned,
        })
    }

    /// Are these still the maps pinned (one stat per map, no BPF calls)?
    pub fn current(&self) -> bool {
        self.pinned.iter().all(|(path, inode)| inode.is_some() && pin_inode(path) == *inode)
    }
}

fn port_key(cookie: u64, port: u16, dir: u8) -> PortKey {
    PortKey { netns_cookie: cookie, port, dir, pad: [0; 5] }
}

fn in_key(ip: Ipv4Addr, port: u16) -> In4Key {
    In4Key { pod_ip4: u32::from(ip).to_be(), port, pad: 0 }
}

/// A pod address's entries: its key in the family's address map (value:
/// the netns cookie), how it is shown, and its excluded inbound ports' keys.
struct Addr<K, E> {
    key: K,
    shown: String,
    in_keys: Vec<E>,
}

/// One family's maps of pod addresses: mw_pod_ips and mw_excl_in4, or
/// mw_pod_ips6 and mw_excl_in6. The same rules for both.
struct AddrMaps<'a> {
    ips: (&'a MapFd, &'static str),
    in_ports: (&'a MapFd, &'static str),
}

impl AddrMaps<'_> {
    /// Err when an address belongs to another meshed pod.
    fn check_owner<K: Copy, E>(&self, addrs: &[Addr<K, E>], cookie: u64) -> Result<(), Error> {
        for a in addrs {
            if let Some(owner) = self.ips.0.lookup::<K, u64>(&a.key)? {
                if owner != cookie {
                    return Err(Error::Invalid(format!("{} already belongs to the meshed pod with netns cookie {owner}", a.shown)));
                }
            }
        }
        Ok(())
    }

    fn install<K: Copy, E: Copy>(&self, addrs: &[Addr<K, E>], cookie: u64) -> Result<(), Error> {
        let ((ips, ips_name), (in_ports, in_name)) = (self.ips, self.in_ports);
        for a in addrs {
            for k in &a.in_keys {
                in_ports.update(k, &1u8).map_err(|e| update_error(in_ports, in_name, e))?;
            }
            ips.update(&a.key, &cookie).map_err(|e| update_error(ips, ips_name, e))?;
        }
        Ok(())
    }

    /// Only our own address entries: another pod may hold one now.
    fn remove<K: Copy, E: Copy>(&self, addrs: &[Addr<K, E>], cookie: u64, note: &mut impl FnMut(Result<bool, crate::libbpf::BpfError>)) {
        for a in addrs {
            if self.ips.0.lookup::<K, u64>(&a.key).ok().flatten() == Some(cookie) {
                note(self.ips.0.delete(&a.key));
            }
            for k in &a.in_keys {
                note(self.in_ports.0.delete(k));
            }
        }
    }

    /// Entries of addresses none of `cookies` owns (`addr_of`: an excluded
    /// port's address, None for the node-wide list). Returns how many went.
    fn sweep<K: Copy + Default + PartialEq, E: Copy + Default>(&self, cookies: &[u64], addr_of: impl Fn(&E) -> Option<K>) -> Result<usize, Error> {
        let e = Error::from;
        let mut removed = 0;
        let mut known = Vec::new();
        for ip in self.ips.0.keys::<K>().map_err(e)? {
            match self.ips.0.lookup::<K, u64>(&ip).map_err(e)? {
                Some(c) if !cookies.contains(&c) => {
                    if self.ips.0.delete(&ip).map_err(e)? {
                        removed += 1;
                    }
                }
                Some(_) => known.push(ip),
                None => {}
            }
        }
        for k in self.in_ports.0.keys::<E>().map_err(e)? {
            if addr_of(&k).is_some_and(|a| !known.contains(&a)) && self.in_ports.0.delete(&k).map_err(e)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn check<K: Copy, E>(&self, addrs: &[Addr<K, E>], cookie: u64, pod: &str) -> Result<(), Error> {
        for a in addrs {
            if self.ips.0.lookup::<K, u64>(&a.key)? != Some(cookie) {
                return Err(Error::Inconsistent(format!("pod {pod}: {} entry for {} is missing", self.ips.1, a.shown)));
            }
        }
        Ok(())
    }
}

impl PodMaps {
    fn addr_maps4(&self) -> AddrMaps<'_> {
        AddrMaps { ips: (&self.ips, pins::MAP_POD_IPS), in_ports: (&self.in_ports, pins::MAP_EXCL_IN4) }
    }

    fn addr_maps6(&self) -> AddrMaps<'_> {
        AddrMaps { ips: (&self.ips6, pins::MAP_POD_IPS6), in_ports: (&self.in_ports6, pins::MAP_EXCL_IN6) }
    }
}

impl MeshedPod {
    fn addrs4(&self) -> Vec<Addr<u32, In4Key>> {
        let addr = |ip: &Ipv4Addr| Addr { key: u32::from(*ip).to_be(), shown: ip.to_string(), in_keys: self.in_ports.iter().map(|&p| in_key(*ip, p)).collect() };
        self.ips.iter().map(addr).collect()
    }

    fn addrs6(&self) -> Vec<Addr<Ip6Key, In6Key>> {
        let addr = |ip: &Ipv6Addr| Addr { key: Ip6Key::of(ip), shown: ip.to_string(), in_keys: self.in_ports.iter().map(|&p| In6Key::of(ip, p)).collect() };
        self.ips6.iter().map(addr).collect()
    }
}

/// A failed map update; a full map (E2BIG; ENOSPC from an LPM trie, the
/// CIDR maps) is said to be full, and logged: the pod is refused, the pods
/// already meshed keep their entries.
fn update_error(map: &MapFd, name: &'static str, e: crate::libbpf::BpfError) -> Error {
    if !matches!(e.source.raw_os_error(), Some(libc::E2BIG | libc::ENOSPC)) {
        return Error::from(e).context(name);
    }
    let capacity = map.info().map_or_else(|_| "?".to_string(), |i| i.max_entries.to_string());
    let msg = format!(
        "{name} is full ({capacity} entries): this pod cannot be meshed until pods are removed or the capacity is raised \
         (bpf/lib/meshwire_consts.h, docs/operating.md \"Limits\"); pods already meshed are unaffected"
    );
    log::error!("{msg}");
    Error::MapFull { map: name, message: msg }
}

/// Write every entry of the attachment `pod`, its netns-cookie entries from
/// it and its `siblings` together; the mw_pods entry last, so the datapath
/// never sees the pod meshed without its exclusions nor its sidecar's UID
/// (`sidecar_uid`: the host UID of a pod in a user namespace of its own, see
/// [`crate::system::userns::host_uid`]). On error, the entries written are
/// removed again (the siblings' stay as they were).
pub fn install(maps: &PodMaps, pod: &MeshedPod, siblings: &[MeshedPod], sidecar_uid: Option<u32>) -> Result<(), Error> {
    let (addrs4, addrs6) = (pod.addrs4(), pod.addrs6());
    maps.addr_maps4().check_owner(&addrs4, pod.cookie)?;
    maps.addr_maps6().check_owner(&addrs6, pod.cookie)?;
    let view = merged(pod, siblings);
    let result = (|| -> Result<(), Error> {
        let keys = view.cookie_keys();
        for k in &keys.ports {
            maps.out_ports.update(k, &1u8).map_err(|e| update_error(&maps.out_ports, pins::MAP_EXCL_PORTS, e))?;
        }
        for k in &keys.out_cidrs {
            maps.out_cidrs.update(k, &1u8).map_err(|e| update_error(&maps.out_cidrs, pins::MAP_EXCL_CIDR4, e))?;
        }
        for k in &keys.out_cidrs6 {
            maps.out_cidrs6.update(k, &1u8).map_err(|e| update_error(&maps.out_cidrs6, pins::MAP_EXCL_CIDR6, e))?;
        }
        for k in &keys.incl_cidrs {
            maps.incl_cidrs.update(k, &1u8).map_err(|e| update_error(&maps.incl_cidrs, pins::MAP_INCL_CIDR4, e))?;
        }
        for k in &keys.incl_cidrs6 {
            maps.incl_cidrs6.update(k, &1u8).map_err(|e| update_error(&maps.incl_cidrs6, pins::MAP_INCL_CIDR6, e))?;
        }
        maps.addr_maps4().install(&addrs4, pod.cookie)?;
        maps.addr_maps6().install(&addrs6, pod.cookie)?;
        match sidecar_uid {
            Some(uid) => maps.uids.update(&pod.cookie, &uid).map_err(|e| update_error(&maps.uids, pins::MAP_POD_UID, e))?,
            None => {
                maps.uids.delete(&pod.cookie).map_err(|e| Error::from(e).context(pins::MAP_POD_UID))?;
            }
        }
        maps.pods.update(&pod.cookie, &view.entry()).map_err(|e| update_error(&maps.pods, pins::MAP_PODS, e))
    })();
    timing::mark("map updates");
    if let Err(e) = result {
        let _ = remove(maps, pod, siblings);
        return Err(e.context(format_args!("pod {}", pod.container_id)));
    }
    Ok(())
}

/// Remove the entries of the attachment `pod` (absent entries are fine).
/// Without `siblings` its netns-cookie entries go too, mw_pods first, so the
/// datapath stops treating the pod as meshed before its exclusions go; with
/// them, those entries become the siblings' alone.
pub fn remove(maps: &PodMaps, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
    let mut first_err = None;
    let mut note = |r: Result<bool, crate::libbpf::BpfError>| {
        if let Err(e) = r {
            first_err.get_or_insert(Error::from(e));
        }
    };
    let before = merged(pod, siblings).cookie_keys();
    let after = match siblings.split_first() {
        None => {
            note(maps.pods.delete(&pod.cookie));
            note(maps.uids.delete(&pod.cookie));
            CookieKeys { ports: Vec::new(), out_cidrs: Vec::new(), out_cidrs6: Vec::new(), incl_cidrs: Vec::new(), incl_cidrs6: Vec::new() }
        }
        Some((first, rest)) => {
            let view = merged(first, rest);
            note(maps.pods.update(&pod.cookie, &view.entry()).map(|()| true));
            view.cookie_keys()
        }
    };
    maps.addr_maps4().remove(&pod.addrs4(), pod.cookie, &mut note);
    maps.addr_maps6().remove(&pod.addrs6(), pod.cookie, &mut note);
    for k in before.ports.iter().filter(|k| !after.ports.contains(k)) {
        note(maps.out_ports.delete(k));
    }
    for k in before.out_cidrs.iter().filter(|k| !after.out_cidrs.contains(k)) {
        note(maps.out_cidrs.delete(k));
    }
    for k in before.out_cidrs6.iter().filter(|k| !after.out_cidrs6.contains(k)) {
        note(maps.out_cidrs6.delete(k));
    }
    for k in before.incl_cidrs.iter().filter(|k| !after.incl_cidrs.contains(k)) {
        note(maps.incl_cidrs.delete(k));
    }
    for k in before.incl_cidrs6.iter().filter(|k| !after.incl_cidrs6.contains(k)) {
        note(maps.incl_cidrs6.delete(k));
    }
    timing::mark("map updates");
    match first_err {
        None => Ok(()),
        Some(e) => Err(e.context(format_args!("pod {}", pod.container_id))),
    }
}

/// Remove every pod-scoped entry that none of `known` owns: what a loader
/// killed between writing a pod's entries and its record leaves behind.
/// Node-wide entries (cookie 0, pod IP 0) are the config's and stay.
/// Returns how many entries went.
pub fn sweep(maps: &PodMaps, known: &[MeshedPod]) -> Result<usize, Error> {
    let cookies: Vec<u64> = known.iter().map(|p| p.cookie).collect();
    let mut removed = 0;
    let e = Error::from;
    for cookie in maps.pods.keys::<u64>().map_err(e)? {
        if !cookies.contains(&cookie) && maps.pods.delete(&cookie).map_err(e)? {
            removed += 1;
        }
    }
    for cookie in maps.uids.keys::<u64>().map_err(e)? {
        if !cookies.contains(&cookie) && maps.uids.delete(&cookie).map_err(e)? {
            removed += 1;
        }
    }
    for k in maps.out_ports.keys::<PortKey>().map_err(e)? {
        if k.netns_cookie != 0 && !cookies.contains(&k.netns_cookie) && maps.out_ports.delete(&k).map_err(e)? {
            removed += 1;
        }
    }
    for map in [&maps.out_cidrs, &maps.incl_cidrs] {
        for k in map.keys::<Cidr4Key>().map_err(e)? {
            let cookie = (u64::from(k.cookie_hi) << 32) | u64::from(k.cookie_lo);
            if cookie != 0 && !cookies.contains(&cookie) && map.delete(&k).map_err(e)? {
                removed += 1;
            }
        }
    }
    for map in [&maps.out_cidrs6, &maps.incl_cidrs6] {
        for k in map.keys::<Cidr6Key>().map_err(e)? {
            let cookie = (u64::from(k.cookie_hi) << 32) | u64::from(k.cookie_lo);
            if cookie != 0 && !cookies.contains(&cookie) && map.delete(&k).map_err(e)? {
                removed += 1;
            }
        }
    }
    // Node-wide inbound ports (pod address 0, IPv4 map only) are the config's.
    removed += maps.addr_maps4().sweep(&cookies, |k: &In4Key| (k.pod_ip4 != 0).then_some(k.pod_ip4))?;
    removed += maps.addr_maps6().sweep(&cookies, |k: &In6Key| Some(Ip6Key { addr: k.pod_ip6 }))?;
    Ok(removed)
}

/// Is every entry of the attachment in place (its cookie's as it and its
/// siblings want them, `sidecar_uid` as for [`install`])? Err names the
/// first missing or different one (Inconsistent), or says the maps could
/// not be read.
pub fn check(maps: &PodMaps, pod: &MeshedPod, siblings: &[MeshedPod], sidecar_uid: Option<u32>) -> Result<(), Error> {
    let missing = |what: String| Err(Error::Inconsistent(format!("pod {}: {what} is missing", pod.container_id)));
    let want = merged(pod, siblings).entry().flags;
    match maps.pods.lookup::<u64, Pod>(&pod.cookie)? {
        None => return missing(format!("{} entry for netns cookie {}", pins::MAP_PODS, pod.cookie)),
        Some(e) if e.flags != want => {
            return Err(Error::Inconsistent(format!("pod {}: {} entry has flags {:#x}, expected {:#x}", pod.container_id, pins::MAP_PODS, e.flags, want)))
        }
        Some(_) => {}
    }
    let uid = maps.uids.lookup::<u64, u32>(&pod.cookie)?;
    if uid != sidecar_uid {
        let shown = |u: Option<u32>| u.map_or("none (sidecar.uid applies)".to_string(), |u| u.to_string());
        return Err(Error::Inconsistent(format!("pod {}: {} entry is {}, expected {}", pod.container_id, pins::MAP_POD_UID, shown(uid), shown(sidecar_uid))));
    }
    maps.addr_maps4().check(&pod.addrs4(), pod.cookie, &pod.container_id)?;
    maps.addr_maps6().check(&pod.addrs6(), pod.cookie, &pod.container_id)
}

/// What became of a pod's network namespace, as far as can be proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsState {
    /// The path still names the namespace with the pod's cookie.
    Alive,
    /// Proven gone: nothing is at the path (ENOENT), or the path names
    /// another namespace now (its cookie differs).
    Gone,
    /// It could not be looked at (out of descriptors, setns refused, ...):
    /// the pod may well be alive, so nothing of it may be dropped.
    Unknown(NetnsError),
}

impl NetnsState {
    /// Of what entering (or reading the cookie of) the namespace answered.
    pub fn of(entered: Result<u64, NetnsError>, cookie: u64) -> NetnsState {
        match entered {
            Ok(c) if c == cookie => NetnsState::Alive,
            Ok(_) | Err(NetnsError::Gone { .. }) => NetnsState::Gone,
            Err(e) => NetnsState::Unknown(e),
        }
    }
}

/// Is `netns` still the namespace with this cookie? (It may be gone, or the
/// path may have been reused for a new namespace, or it could not be read.)
pub fn netns_state(netns: &Path, cookie: u64) -> NetnsState {
    NetnsState::of(system::netns_cookie(netns), cookie)
}

/// Network namespaces are entered this many at once when thousands of pods
/// are looked at (adoption): the work mostly waits for the kernel.
pub const NETNS_THREADS: usize = 4;

/// [`netns_state`] of each pod, a few at once ([`NETNS_THREADS`]), in the
/// pods' order. A pod whose thread panicked is Unknown (Panicked) rather
/// than dropped.
pub fn netns_state_all(pods: &[&MeshedPod]) -> Vec<NetnsState> {
    system::each_in_netns(pods, NETNS_THREADS, |thread, pod| NetnsState::of(thread.enter(&pod.netns), pod.cookie))
        .into_iter()
        .zip(pods)
        .map(|(state, pod)| state.unwrap_or_else(|| NetnsState::Unknown(NetnsError::Panicked { netns: pod.netns.clone() })))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PodSpec {
        // An ID with every kind of character an ID may hold.
        meshwire_api::testing::pod("abc-123_x.y")
    }

    /// Checked a few at a time (more pods than threads), answered in the pods' order.
    #[test]
    fn namespaces_are_checked_for_every_pod_in_order() {
        let here = system::current_netns_cookie().unwrap();
        let pods: Vec<MeshedPod> = (0..9u64)
            .map(|i| {
                let mut s = spec();
                s.netns = if i == 4 { "/nonexistent/netns".into() } else { "/proc/self/ns/net".into() };
                MeshedPod::of(&s, if i % 3 == 0 { here + 1 } else { here }, NODE)
            })
            .collect();
        let want: Vec<NetnsState> = (0..9).map(|i| if i % 3 != 0 && i != 4 { NetnsState::Alive } else { NetnsState::Gone }).collect();
        assert_eq!(netns_state_all(&pods.iter().collect::<Vec<_>>()), want);
        assert!(netns_state_all(&[]).is_empty());
    }

    /// Out of file descriptors, a live pod's namespace cannot be looked at:
    /// it is Unknown, naming its path and EMFILE, never Gone (the path cannot
    /// be opened; opened, its cookie cannot be read); alive again once
    /// descriptors can be had. The limit is the process's: in a child run.
    #[test]
    fn a_live_namespace_that_cannot_be_looked_at_is_unknown_not_gone() {
        if !crate::testutil::in_child_process("interception::pods::tests::a_live_namespace_that_cannot_be_looked_at_is_unknown_not_gone", "child: unknown, not gone") {
            return;
        }
        let here = system::current_netns_cookie().unwrap();
        let mut s = spec();
        s.netns = "/proc/self/ns/net".into();
        let pod = MeshedPod::of(&s, here, NODE);
        let limit = crate::testutil::NofileLimit::new();
        limit.set(limit.lowest_free());
        let (one, all) = (netns_state(&pod.netns, pod.cookie), netns_state_all(&[&pod]));
        limit.set(limit.lowest_free() + 1);
        let cookie = netns_state_all(&[&pod]);
        limit.restore();

        let open = NetnsError::Open { netns: "/proc/self/ns/net".into(), errno: libc::EMFILE };
        assert_eq!(one, NetnsState::Unknown(open.clone()));
        assert_eq!(all, vec![NetnsState::Unknown(open)]);
        assert_eq!(cookie, vec![NetnsState::Unknown(NetnsError::Cookie { netns: Some("/proc/self/ns/net".into()), errno: libc::EMFILE })]);
        assert_eq!(netns_state_all(&[&pod]), vec![NetnsState::Alive], "alive once descriptors can be had");
        println!("child: unknown, not gone");
    }

    /// A namespace removed (`ip netns del`) is Gone; its path given to a new
    /// namespace (added again under the same name) is Gone too: the path
    /// names another namespace, its cookie differs.
    #[test]
    fn a_removed_namespace_and_a_path_another_namespace_took_are_gone() {
        let name = format!("mwpods{}-reuse", std::process::id());
        let ip = |op: &str| assert!(std::process::Command::new("ip").args(["netns", op, &name]).status().is_ok_and(|s| s.success()), "ip netns {op} {name}");
        let path = PathBuf::from(format!("/run/netns/{name}"));
        ip("add");
        let cookie = system::netns_cookie(&path).unwrap();
        let mut s = spec();
        s.netns = path.clone();
        let pod = MeshedPod::of(&s, cookie, NODE);
        let alive = (netns_state(&path, cookie), netns_state_all(&[&pod]));
        ip("del");
        let removed = (netns_state(&path, cookie), netns_state_all(&[&pod]));
        ip("add");
        let other = system::netns_cookie(&path);
        let reused = (netns_state(&path, cookie), netns_state_all(&[&pod]));
        ip("del");

        assert_eq!(alive, (NetnsState::Alive, vec![NetnsState::Alive]));
        assert_eq!(removed, (NetnsState::Gone, vec![NetnsState::Gone]), "{} removed", path.display());
        assert_ne!(other.unwrap(), cookie, "a new namespace at the same path");
        assert_eq!(reused, (NetnsState::Gone, vec![NetnsState::Gone]), "{} names another namespace", path.display());
    }

    #[test]
    fn a_pod_s_own_accelerate_wins_over_the_node_s_default() {
        let mut s = spec();
        let flags = |s: &PodSpec, accelerate| MeshedPod::of(s, 7, PodDefaults { accelerate, dns_capture: false }).entry().flags;
        assert_eq!(flags(&s, true), POD_F_MESHED | POD_F_ACCEL);
        assert_eq!(flags(&s, false), POD_F_MESHED);
        s.accelerate = Some(false);
        assert_eq!(flags(&s, true), POD_F_MESHED);
        s.accelerate = Some(true);
        assert_eq!(flags(&s, false), POD_F_MESHED | POD_F_ACCEL);
    }

    const NODE: PodDefaults = PodDefaults { accelerate: false, dns_capture: false };

    #[test]
    fn a_pod_s_own_dns_capture_wins_over_the_node_s_default() {
        let mut s = spec();
        let flags = |s: &PodSpec, dns_capture| MeshedPod::of(s, 7, PodDefaults { accelerate: false, dns_capture }).entry().flags;
        assert_eq!(flags(&s, true), POD_F_MESHED | POD_F_DNS);
        assert_eq!(flags(&s, false), POD_F_MESHED);
        s.dns_capture = Some(false);
        assert_eq!(flags(&s, true), POD_F_MESHED);
        s.dns_capture = Some(true);
        assert_eq!(flags(&s, false), POD_F_MESHED | POD_F_DNS);
        let other = MeshedPod::of(&spec(), 7, NODE);
        assert!(merged(&other, &[MeshedPod::of(&s, 7, NODE)]).dns_capture, "captured when one attachment asks");
    }

    #[test]
    fn attachments_of_one_pod_combine_their_settings() {
        let a = MeshedPod::of(&spec(), 7, NODE);
        let mut s2 = spec();
        s2.ifname = "net1".into();
        s2.ips = vec![Ipv4Addr::new(10, 2, 0, 5)];
        s2.exclude_outbound_ports = vec![22, 5432];
        s2.include_inbound_ports = Some(vec![8080]);
        s2.accelerate = Some(true);
        let b = MeshedPod::of(&s2, 7, NODE);
        let m = merged(&a, std::slice::from_ref(&b));
        assert_eq!(m.out_ports, vec![22, 5432], "exclusions of either");
        assert_eq!(m.incl_in_ports, None, "a includes everything inbound: so does the pod");
        assert!(m.accelerate);
        assert_eq!(m.ips, a.ips, "addresses stay the attachment's own");
        let mut s3 = s2.clone();
        s3.include_inbound_ports = Some(vec![9090]);
        s3.include_outbound_cidrs = Some(vec!["10.0.0.0/8".parse().unwrap()]);
        s3.include_outbound_ports = vec![443];
        let m = merged(&b, &[MeshedPod::of(&s3, 7, NODE)]);
        assert_eq!(m.incl_in_ports, Some(vec![8080, 9090]), "inclusions of either");
        assert_eq!((m.incl_out_cidrs, m.incl_out_ports), (None, vec![]), "b steers all outbound");
        assert_eq!(merged(&a, &[]), a);
        // IPv6 ranges go with the IPv4 ones: of either attachment, none when one steers all.
        let mut s4 = s3.clone();
        s4.include_outbound_cidrs6 = vec!["fd00:50::/32".parse().unwrap()];
        let mut s5 = s3.clone();
        s5.include_outbound_cidrs = Some(vec![]);
        s5.include_outbound_cidrs6 = vec!["fd00:51::/32".parse().unwrap(), "fd00:50::/32".parse().unwrap()];
        let m = merged(&MeshedPod::of(&s4, 7, NODE), &[MeshedPod::of(&s5, 7, NODE)]);
        assert_eq!(m.incl_out_cidrs6, vec!["fd00:50::/32".parse().unwrap(), "fd00:51::/32".parse().unwrap()]);
        assert_eq!(merged(&MeshedPod::of(&s4, 7, NODE), std::slice::from_ref(&b)).incl_out_cidrs6, vec![], "b steers all");
    }

    /// What an upgrade or a restart after `cleanup` does to a pin: a new map
    /// at the same path. Held maps notice, and opening again finds the new one.
    #[test]
    fn held_maps_notice_when_their_pins_are_replaced() {
        use crate::libbpf::{map_create_like, obj_pin};
        let fs = crate::testutil::PrivateBpffs::new();
        let pins = Pins::new(fs.path());
        pins.create_dirs().unwrap();
        let defs: Vec<_> = crate::datapath::objects::CORE.iter().flat_map(|o| o.open(None).unwrap().pinned_map_defs()).collect();
        let pin_new = |name: &str| {
            let def = defs.iter().find(|d| d.name == name).unwrap();
            obj_pin(&map_create_like(def, def.max_entries).unwrap(), &pins.map(name)).unwrap();
        };
        let names = [pins::MAP_PODS, pins::MAP_POD_UID, pins::MAP_POD_IPS, pins::MAP_EXCL_PORTS, pins::MAP_EXCL_CIDR4, pins::MAP_EXCL_CIDR6, pins::MAP_INCL_CIDR4, pins::MAP_INCL_CIDR6, pins::MAP_EXCL_IN4, pins::MAP_POD_IPS6, pins::MAP_EXCL_IN6];
        for name in names {
            pin_new(name);
        }
        let held = PodMaps::open(&pins).unwrap();
        assert!(held.current());
        std::fs::rename(pins.map(pins::MAP_EXCL_IN4), fs.path().join("aside")).unwrap();
        pin_new(pins::MAP_EXCL_IN4);
        assert!(!held.current(), "a map pinned anew is not the one held");
        let again = PodMaps::open(&pins).unwrap();
        assert!(again.current());
        std::fs::remove_file(pins.map(pins::MAP_PODS)).unwrap();
        assert!(!again.current(), "a pin that is gone");
    }

    #[test]
    fn a_good_spec_validates() {
        validate(&spec()).unwrap();
        let mut s = spec();
        s.ifname = "fifteen-chars-x".into();
        validate(&s).unwrap();
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let bad = |f: fn(&mut PodSpec), needle: &str| {
            let mut s = spec();
            f(&mut s);
            let e = validate(&s).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)) && e.message().contains(needle), "{e:?} should mention {needle:?}");
        };
        bad(|s| s.container_id = "../etc/passwd".into(), "container_id");
        bad(|s| s.container_id = String::new(), "container_id");
        bad(|s| s.container_id = ".hidden".into(), "container_id");
        bad(|s| s.netns = "run/netns/p".into(), "netns");
        bad(|s| s.ifname = "a-very-long-interface-name".into(), "ifname");
        bad(|s| s.ifname = "a/b".into(), "ifname");
        // IFNAMSIZ is 16 with the terminating NUL: 15 characters at most.
        bad(|s| s.ifname = "sixteen-chars-xx".into(), "ifname");
        bad(|s| s.include_outbound_ports = vec![0], "include_outbound_ports");
        bad(|s| s.include_inbound_ports = Some(vec![443, 0]), "include_inbound_ports");
        bad(|s| s.ips = vec![Ipv4Addr::BROADCAST], "ips: 255.255.255.255 cannot be a pod address");
        bad(|s| s.ips = vec![Ipv4Addr::new(224, 0, 0, 1)], "ips: 224.0.0.1 cannot be a pod address");
        bad(|s| s.exclude_outbound_ports = vec![0], "exclude_outbound_ports");
        bad(|s| s.exclude_inbound_ports = vec![0], "exclude_inbound_ports");
        bad(|s| s.ips = vec![Ipv4Addr::LOCALHOST], "cannot be a pod address");
        bad(|s| s.ips6 = vec![Ipv6Addr::LOCALHOST], "ips6: ::1 cannot be a pod address");
        bad(|s| s.ips6 = vec!["::ffff:10.1.0.5".parse().unwrap()], "IPv4-mapped addresses go in ips");
        bad(|s| s.ips6 = vec!["ff02::1".parse().unwrap()], "cannot be a pod address");
        bad(|s| s.include_outbound_cidrs6 = vec!["fd00:50::/32".parse().unwrap()], "include_outbound_cidrs6 [fd00:50::/32] without include_outbound_cidrs");
    }

    /// The datapath's maps, pinned in a private bpffs, with their objects loaded.
    fn loaded_maps(fs: &crate::testutil::PrivateBpffs) -> (Vec<crate::libbpf::Object>, PodMaps) {
        use crate::datapath::objects;
        let pins = Pins::new(fs.path());
        pins.create_dirs().unwrap();
        let objs: Vec<_> = objects::CORE
            .iter()
            .map(|spec| {
                let mut obj = spec.open(Some(&pins.maps_dir())).unwrap();
                let s = crate::datapath::settings_of(&crate::config::Config::default_config());
                obj.set_rodata(objects::SETTINGS_VAR, s.as_bytes()).unwrap();
                obj.load().unwrap_or_else(|e| panic!("{}: {e}", spec.name));
                obj
            })
            .collect();
        (objs, PodMaps::open(&pins).unwrap())
    }

    /// A dual-stack pod's IPv6 addresses and their excluded inbound ports
    /// go in, are checked, refused to another pod, taken out and swept as
    /// the IPv4 ones are (real maps).
    #[test]
    fn ipv6_addresses_are_installed_checked_removed_and_swept() {
        let fs = crate::testutil::PrivateBpffs::new();
        let (_objs, maps) = loaded_maps(&fs);
        let addr: Ipv6Addr = "fd00:10:1::5".parse().unwrap();
        let mut s = spec();
        s.ips6 = vec![addr];
        let pod = MeshedPod::of(&s, 41, PodDefaults::default());
        install(&maps, &pod, &[], None).unwrap();
        assert_eq!(maps.ips6.lookup::<Ip6Key, u64>(&Ip6Key::of(&addr)).unwrap(), Some(41));
        assert_eq!(maps.in_ports6.keys::<In6Key>().unwrap(), vec![In6Key::of(&addr, 9090)], "its excluded inbound port, by IPv6 address");
        assert_eq!(maps.ips.keys::<u32>().unwrap().len(), 1, "its IPv4 address too");
        check(&maps, &pod, &[], None).unwrap();

        let mut other = spec();
        other.container_id = "other".into();
        other.ips = vec![];
        other.ips6 = vec![addr];
        let e = install(&maps, &MeshedPod::of(&other, 42, PodDefaults::default()), &[], None).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)) && e.message().contains("fd00:10:1::5 already belongs to the meshed pod with netns cookie 41"), "{e:?}");

        maps.ips6.delete(&Ip6Key::of(&addr)).unwrap();
        let e = check(&maps, &pod, &[], None).unwrap_err();
        assert!(e.message().contains("mw_pod_ips6 entry for fd00:10:1::5 is missing"), "{e:?}");
        install(&maps, &pod, &[], None).unwrap();
        remove(&maps, &pod, &[]).unwrap();
        assert_eq!(maps.ips6.keys::<Ip6Key>().unwrap(), vec![], "its IPv6 address went");
        assert_eq!(maps.in_ports6.keys::<In6Key>().unwrap(), vec![], "its IPv6 inbound exclusions went");

        install(&maps, &pod, &[], None).unwrap();
        assert_eq!(sweep(&maps, std::slice::from_ref(&pod)).unwrap(), 0, "a known pod's entries stay");
        let swept = sweep(&maps, &[]).unwrap();
        assert_eq!(maps.ips6.keys::<Ip6Key>().unwrap(), vec![], "swept: its IPv6 address");
        assert_eq!(maps.in_ports6.keys::<In6Key>().unwrap(), vec![], "swept: its IPv6 inbound exclusions");
        assert!(swept >= 2, "{swept} entries swept");
    }

    /// A pod's own exclusions go in under its netns cookie, each in its map:
    /// outbound ports and ranges of both families, inbound ports by its
    /// address. Under cookie 0 they would be node-wide, excluded for every
    /// pod, which no lookup of this pod's own would notice (real maps).
    #[test]
    fn a_pod_s_exclusions_are_keyed_by_its_netns_cookie() {
        let fs = crate::testutil::PrivateBpffs::new();
        let (_objs, maps) = loaded_maps(&fs);
        let s = spec();
        let pod = MeshedPod::of(&s, 44, PodDefaults::default());
        install(&maps, &pod, &[], None).unwrap();
        assert_eq!(maps.out_ports.keys::<PortKey>().unwrap(), vec![port_key(44, 22, DIR_OUT)], "its excluded outbound port");
        assert_eq!(maps.out_cidrs.keys::<Cidr4Key>().unwrap(), vec![Cidr4Key::of(44, &s.exclude_outbound_cidrs[0])], "its excluded IPv4 range");
        assert_eq!(maps.out_cidrs6.keys::<Cidr6Key>().unwrap(), vec![Cidr6Key::of(44, &s.exclude_outbound_cidrs6[0])], "its excluded IPv6 range");
        assert_eq!(maps.in_ports.keys::<In4Key>().unwrap(), vec![in_key(s.ips[0], 9090)], "its excluded inbound port, by its address");
        remove(&maps, &pod, &[]).unwrap();
        assert_eq!(maps.out_ports.keys::<PortKey>().unwrap(), vec![], "removed with the pod");
        assert_eq!(maps.out_cidrs.keys::<Cidr4Key>().unwrap(), vec![], "removed with the pod");
        assert_eq!(maps.out_cidrs6.keys::<Cidr6Key>().unwrap(), vec![], "removed with the pod");
        assert_eq!(maps.in_ports.keys::<In4Key>().unwrap(), vec![], "removed with the pod");
    }

    /// A pod's included IPv6 ranges go into mw_incl_cidr4's twin keyed by its
    /// cookie, with its IPv4 ranges in mw_incl_cidr4; removed and swept alike
    /// (real maps). A full mw_incl_cidr6 refuses the pod and leaves nothing.
    #[test]
    fn included_ipv6_ranges_are_installed_removed_and_swept() {
        let fs = crate::testutil::PrivateBpffs::new();
        let (_objs, maps) = loaded_maps(&fs);
        let mut s = spec();
        s.include_outbound_cidrs = Some(vec!["10.50.0.0/16".parse().unwrap()]);
        s.include_outbound_cidrs6 = vec!["fd00:50::/32".parse().unwrap(), "2001:db8::7".parse().unwrap()];
        let pod = MeshedPod::of(&s, 43, PodDefaults::default());
        install(&maps, &pod, &[], None).unwrap();
        let mut keys = maps.incl_cidrs6.keys::<Cidr6Key>().unwrap();
        keys.sort_by_key(|k| k.prefixlen);
        let want: Vec<Cidr6Key> = ["fd00:50::/32", "2001:db8::7/128"].iter().map(|c| Cidr6Key::of(43, &c.parse().unwrap())).collect();
        assert_eq!(keys, want);
        assert_eq!((keys[0].prefixlen, keys[1].prefixlen), (64 + 32, 64 + 128));
        assert_eq!(maps.incl_cidrs.keys::<Cidr4Key>().unwrap().len(), 1, "its IPv4 range");
        assert_eq!(maps.pods.lookup::<u64, Pod>(&43).unwrap().map(|p| p.flags & POD_F_OUT_SELECT), Some(POD_F_OUT_SELECT));
        remove(&maps, &pod, &[]).unwrap();
        assert_eq!(maps.incl_cidrs6.keys::<Cidr6Key>().unwrap(), vec![], "removed with the pod");
        install(&maps, &pod, &[], None).unwrap();
        assert_eq!(sweep(&maps, std::slice::from_ref(&pod)).unwrap(), 0, "a known pod's ranges stay");
        sweep(&maps, &[]).unwrap();
        assert_eq!(maps.incl_cidrs6.keys::<Cidr6Key>().unwrap(), vec![], "swept");

        let capacity = maps.incl_cidrs6.info().unwrap().max_entries;
        assert_eq!(capacity, maps.incl_cidrs.info().unwrap().max_entries, "mw_incl_cidr4's capacity");
        for i in 0..capacity {
            let c = Cidr6 { addr: Ipv6Addr::from(0xfd00_0000_0000_0000_0000_0000_0000_0000u128 | u128::from(i)), len: 128 };
            maps.incl_cidrs6.update(&Cidr6Key::of(99, &c), &1u8).unwrap();
        }
        let e = install(&maps, &pod, &[], None).unwrap_err();
        assert!(matches!(&e, Error::MapFull { map, .. } if *map == pins::MAP_INCL_CIDR6), "{e:?}");
        assert!(e.message().contains(&format!("{} is full ({capacity} entries)", pins::MAP_INCL_CIDR6)), "{e}");
        assert_eq!(maps.pods.lookup::<u64, Pod>(&43).unwrap(), None, "not meshed");
        assert_eq!(maps.incl_cidrs.keys::<Cidr4Key>().unwrap(), vec![], "its IPv4 range taken back");
        assert_eq!(maps.ips.keys::<u32>().unwrap(), Vec::<u32>::new(), "its address taken back");
    }

    /// A full map refuses the pod as MapFull, naming the map, and leaves
    /// nothing of it (real maps, in a private bpffs).
    #[test]
    fn a_full_map_refuses_the_pod_as_map_full_and_leaves_nothing() {
        let fs = crate::testutil::PrivateBpffs::new();
        let (_objs, maps) = loaded_maps(&fs);
        let capacity = maps.pods.info().unwrap().max_entries as u64;
        for cookie in 1..=capacity {
            maps.pods.update(&cookie, &Pod { flags: POD_F_MESHED }).unwrap();
        }
        let pod = MeshedPod::of(&spec(), capacity + 1, PodDefaults::default());
        let e = install(&maps, &pod, &[], None).unwrap_err();
        assert!(matches!(&e, Error::MapFull { map, .. } if *map == pins::MAP_PODS), "{e:?}");
        assert!(e.message().contains(&format!("{} is full ({capacity} entries)", pins::MAP_PODS)), "{e}");
        assert_eq!(maps.ips.keys::<u32>().unwrap(), Vec::<u32>::new(), "the pod's address entry was taken back");
        assert_eq!(maps.out_ports.keys::<PortKey>().unwrap(), Vec::<PortKey>::new(), "its port entries too");
    }
}
