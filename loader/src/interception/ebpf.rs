//! The eBPF interception: a pod is steered by its entries in the datapath's
//! maps (the cgroup hooks read them, [`pods`]) and, when it names its
//! interface, by the tc programs attached there (crate::datapath::tc).

use std::sync::{Arc, Mutex};

use super::pods::{self, MeshedPod, PodMaps};
use super::Interception;
use crate::datapath::pins::{self, Pins};
use crate::error::Error;
use crate::datapath::tc::{self, TcAttach};
use crate::system::userns;

pub struct EbpfTc {
    pins: Pins,
    /// How tc programs go on pods' interfaces (`[tc] attach`).
    tc_attach: TcAttach,
    /// `sidecar.uid`, as a pod's own user namespace sees it.
    sidecar_uid: u32,
    /// The pod maps, opened once and kept while their pins name them
    /// (PodMaps::current), so a request does not reopen six pins.
    maps: Mutex<Option<Arc<PodMaps>>>,
}

impl EbpfTc {
    pub fn new(pins: &Pins, tc_attach: TcAttach) -> EbpfTc {
        EbpfTc { pins: pins.clone(), tc_attach, sidecar_uid: crate::config::Config::default_config().sidecar.uid, maps: Mutex::new(None) }
    }

    /// `sidecar.uid` (the default configuration's otherwise).
    pub fn with_sidecar_uid(mut self, uid: u32) -> EbpfTc {
        self.sidecar_uid = uid;
        self
    }

    /// The host UID of the pod's sidecar when its network namespace belongs
    /// to a user namespace of its own, for mw_pod_uid (None: sidecar.uid
    /// itself); as iptables' owner match maps it ([`userns::host_uid`]).
    fn sidecar_host_uid(&self, pod: &MeshedPod) -> Result<Option<u32>, Error> {
        userns::host_uid(&pod.netns, self.sidecar_uid).map_err(|e| Error::Invalid(format!("pod {}: {e}", pod.container_id)))
    }

    /// The maps held, or opened (again) when their pins changed: a new
    /// loader's install may have moved a map (an upgrade) or pinned new
    /// ones (after `cleanup`).
    fn maps(&self) -> Result<Arc<PodMaps>, Error> {
        let mut held = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(maps) = held.as_ref().filter(|m| m.current()) {
            return Ok(Arc::clone(maps));
        }
        let maps = Arc::new(PodMaps::open(&self.pins)?);
        *held = Some(Arc::clone(&maps));
        Ok(maps)
    }
}

impl Interception for EbpfTc {
    /// Maps (the pod's cookie entries from all its attachments), then tc on
    /// this attachment's interface; on a tc failure the map entries go again.
    fn apply(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        let maps = self.maps()?;
        pods::install(&maps, pod, siblings, self.sidecar_host_uid(pod)?)?;
        if pod.ifname.is_empty() {
            return Ok(());
        }
        if let Err(e) = tc::attach_pod(&self.pins, pod.cookie, &pod.netns, &pod.ifname, self.tc_attach) {
            let _ = pods::remove(&maps, pod, siblings);
            return Err(e);
        }
        Ok(())
    }

    fn remove(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        tc::detach_pod(&self.pins, pod.cookie, Some((&pod.netns, &pod.ifname)))?;
        if !self.pins.map(pins::MAP_PODS).exists() {
            // No datapath pinned (cleaned up): its entries went with the maps.
            return Ok(());
        }
        pods::remove(&*self.maps()?, pod, siblings)
    }

    fn check(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        pods::check(&*self.maps()?, pod, siblings, self.sidecar_host_uid(pod)?)?;
        if !pod.ifname.is_empty() {
            tc::check_pod(&self.pins, pod.cookie, &pod.netns, &pod.ifname).map_err(|e| e.context(format_args!("pod {}", pod.container_id)))?;
        }
        Ok(())
    }

    /// Map entries and tc pins of network namespaces no attachment has.
    fn sweep(&self, known: &[MeshedPod]) -> Result<(), Error> {
        let swept = pods::sweep(&*self.maps()?, known)?;
        if swept > 0 {
            log::info!("removed {swept} map entries that no pod record explains");
        }
        for cookie in tc::pod_cookies(&self.pins) {
            if !known.iter().any(|p| p.cookie == cookie) {
                log::info!("removing tc links of netns cookie {cookie}, which no pod record explains");
                // No record, so no netns to look in: only its pins can go.
                tc::detach_pod(&self.pins, cookie, None)?;
            }
        }
        Ok(())
    }
}
