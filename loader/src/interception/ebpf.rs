//! The eBPF interception: a pod is steered by its entries in the datapath's
//! maps (the cgroup hooks read them, [`pods`]) and, when it names its
//! interface, by the tc programs attached there (crate::datapath::tc).

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::pods::{self, MeshedPod, PodMaps};
use super::{Adopted, Adopting, Interception};
use crate::datapath::pins::{PinnedError, Pins};
use crate::datapath::reaper::{self, Finished, Reaper};
use crate::error::Error;
use crate::datapath::tc::{self, TcAttach};
use crate::system::{self, userns, NetnsThread};

pub struct EbpfTc {
    pins: Pins,
    /// How tc programs go on pods' interfaces (`[tc] attach`).
    tc_attach: TcAttach,
    /// `sidecar.uid`, as a pod's own user namespace sees it.
    sidecar_uid: u32,
    /// The pod maps, opened once and kept while their pins name them
    /// (PodMaps::current), so a request does not reopen six pins.
    maps: Mutex<Option<Arc<PodMaps>>>,
    /// The thread deleting the bare clsact qdiscs DELs leave
    /// ([`tc::detach_pod_leaving_qdisc`]), started at the first; Err: it
    /// could not be, and each DEL deletes its qdisc before answering.
    reaper: OnceLock<Result<Reaper, Error>>,
    /// For `meshwire-loader cleanup` ([`Self::for_cleanup`]).
    cleaning_up: bool,
}

impl EbpfTc {
    pub fn new(pins: &Pins, tc_attach: TcAttach) -> EbpfTc {
        EbpfTc {
            pins: pins.clone(),
            tc_attach,
            sidecar_uid: crate::config::Config::default_config().sidecar.uid,
            maps: Mutex::new(None),
            reaper: OnceLock::new(),
            cleaning_up: false,
        }
    }

    /// For `meshwire-loader cleanup`, which unpins every map after the pods
    /// went: a removal goes on without the map entries when a pod map's pin
    /// is missing (the entries go with the maps).
    pub fn for_cleanup(mut self) -> EbpfTc {
        self.cleaning_up = true;
        self
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
        userns::host_uid(&pod.netns, self.sidecar_uid).map_err(|e| Error::from(e).context(format_args!("pod {}", pod.container_id)))
    }

    /// The maps held, or opened (again) when their pins changed: a new
    /// loader's install may have moved a map (an upgrade) or pinned new
    /// ones (after `cleanup`).
    fn maps(&self) -> Result<Arc<PodMaps>, PinnedError> {
        let mut held = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(maps) = held.as_ref().filter(|m| m.current()) {
            return Ok(Arc::clone(maps));
        }
        let maps = Arc::new(PodMaps::open(&self.pins)?);
        *held = Some(Arc::clone(&maps));
        Ok(maps)
    }
}

impl EbpfTc {
    /// The maps a removal takes the attachment's entries out of, opened
    /// before anything is removed (a removal that cannot reach them changes
    /// nothing): None when no datapath is pinned (cleaned up: its entries
    /// went with the maps), and for `cleanup` when a pin is missing.
    fn maps_to_remove_from(&self) -> Result<Option<Arc<PodMaps>>, Error> {
        match self.maps() {
            Ok(maps) => Ok(Some(maps)),
            Err(PinnedError::NoDatapath { .. }) => Ok(None),
            Err(PinnedError::Missing { .. }) if self.cleaning_up => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The attachment's map entries go (`remove`'s last step).
    fn remove_entries(maps: Option<Arc<PodMaps>>, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        maps.map_or(Ok(()), |maps| pods::remove(&maps, pod, siblings))
    }

    /// `apply`'s work: the maps (the pod's cookie entries from all its
    /// attachments), then tc on this attachment's interface (`attach`); on
    /// a tc failure the map entries go again.
    fn steer(&self, pod: &MeshedPod, siblings: &[MeshedPod], attach: impl FnOnce(&Pins, TcAttach) -> Result<(), Error>) -> Result<(), Error> {
        let maps = self.maps()?;
        pods::install(&maps, pod, siblings, self.sidecar_host_uid(pod)?)?;
        if pod.ifname.is_empty() {
            return Ok(());
        }
        if let Err(e) = attach(&self.pins, self.tc_attach) {
            let _ = pods::remove(&maps, pod, siblings);
            return Err(e);
        }
        Ok(())
    }

    /// One pod of [`Interception::adopt`]'s, on a thread of its.
    fn adopt_one(&self, thread: &mut NetnsThread, maps: &PodMaps, tc: Option<&Result<tc::Attacher, Error>>, a: &Adopting) -> Adopted {
        let pod = &a.pod;
        // As pods::netns_state: gone only when proven; a namespace that
        // cannot be looked at keeps the pod as it is.
        match pods::NetnsState::of(thread.enter(&pod.netns), pod.cookie) {
            pods::NetnsState::Alive => {}
            pods::NetnsState::Gone => return Adopted::Gone,
            pods::NetnsState::Unknown(e) => return Adopted::Unknown(e),
        }
        let steered = self.sidecar_host_uid(pod).and_then(|uid| pods::install(maps, pod, &a.siblings, uid)).and_then(|()| {
            let Some(tc) = tc.filter(|_| !pod.ifname.is_empty()) else { return Ok(()) };
            tc.as_ref().map_err(Error::clone).and_then(|tc| tc.attach_here(pod.cookie, &pod.netns, &pod.ifname)).inspect_err(|_| {
                let _ = pods::remove(maps, pod, &a.siblings);
            })
        });
        steered.map_or_else(Adopted::Failed, |()| Adopted::Kept)
    }
}

impl Interception for EbpfTc {
    /// See `steer`.
    fn apply(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        self.steer(pod, siblings, |pins, mode| tc::attach_pod(pins, pod.cookie, &pod.netns, &pod.ifname, mode))
    }

    /// As `apply`, with tc attached from the calling thread, already in the
    /// pod's namespace.
    fn apply_here(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        self.steer(pod, siblings, |pins, mode| tc::attach_pod_here(pins, pod.cookie, &pod.netns, &pod.ifname, mode))
    }

    fn remove(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        let maps = self.maps_to_remove_from()?;
        tc::detach_pod(&self.pins, pod.cookie, Some((&pod.netns, &pod.ifname)))?;
        Self::remove_entries(maps, pod, siblings)
    }

    /// As `remove`, but a clsact qdisc meshwire created is left bare, its
    /// filters gone, and handed to the reaper thread, which deletes it a
    /// [`reaper::DELAY`] later (`finish_removals` at once).
    fn remove_answering_first(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        let maps = self.maps_to_remove_from()?;
        if let Some(left) = tc::detach_pod_leaving_qdisc(&self.pins, pod.cookie, &pod.netns, &pod.ifname)? {
            match self.reaper.get_or_init(|| Reaper::spawn(self.pins.clone(), reaper::DELAY)) {
                Ok(reaper) => reaper.hand(left),
                Err(e) => {
                    log::warn!("{e}: pod {}: deleting its clsact qdisc before answering", pod.container_id);
                    tc::remove_left_qdisc(&self.pins, &left)?;
                }
            }
        }
        Self::remove_entries(maps, pod, siblings)
    }

    fn finish_removals(&self, within: Duration) -> Finished {
        match self.reaper.get() {
            Some(Ok(reaper)) => reaper.finish(within),
            _ => Finished::default(),
        }
    }

    fn check(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        pods::check(&*self.maps()?, pod, siblings, self.sidecar_host_uid(pod)?)?;
        if !pod.ifname.is_empty() {
            tc::check_pod(&self.pins, pod.cookie, &pod.netns, &pod.ifname).map_err(|e| e.context(format_args!("pod {}", pod.container_id)))?;
        }
        Ok(())
    }

    /// Each pod is looked at on one of a few threads ([`pods::NETNS_THREADS`])
    /// that enter one pod's namespace after another: its cookie checked,
    /// then, as `apply` does, its entries and its tc programs, attached from
    /// within (the pin lock and the programs' pins taken once for all). A
    /// container's attachments go on one thread, in turn.
    fn adopt(&self, pods: &[Adopting]) -> Vec<Adopted> {
        let maps = match self.maps() {
            Ok(m) => m,
            Err(e) => return pods.iter().map(|_| Adopted::Failed(e.clone().into())).collect(),
        };
        // Without the programs' pins, the pods with an interface fail as `apply` would.
        let tc = pods.iter().any(|a| !a.pod.ifname.is_empty()).then(|| tc::Attacher::new(&self.pins, self.tc_attach));
        let by_container: Vec<&[Adopting]> = pods.chunk_by(|a, b| a.pod.container_id == b.pod.container_id).collect();
        let answers = system::each_in_netns(&by_container, pods::NETNS_THREADS, |thread, container| {
            container.iter().map(|a| self.adopt_one(thread, &maps, tc.as_ref(), a)).collect::<Vec<Adopted>>()
        });
        by_container
            .iter()
            .zip(answers)
            .flat_map(|(container, answer)| {
                answer.unwrap_or_else(|| container.iter().map(|_| Adopted::Failed(Error::Internal("the thread adopting it panicked".into()))).collect())
            })
            .collect()
    }

    /// Map entries and tc pins of network namespaces no attachment has.
    fn sweep(&self, known: &[MeshedPod]) -> Result<(), Error> {
        let swept = pods::sweep(&*self.maps()?, known)?;
        if swept > 0 {
            log::info!("removed {swept} map entries that no pod record explains");
        }
        // clsact filters of a pod whose ADD was cut short (attached, no
        // record): found by cookie among the namespaces runtimes mount.
        let cookies: Vec<u64> = known.iter().map(|p| p.cookie).collect();
        let netns_dirs = [Path::new("/run/netns"), Path::new("/var/run/netns")];
        match tc::detach_orphans(&self.pins, &netns_dirs, &cookies) {
            Ok(0) => {}
            Ok(n) => log::info!("removed meshwire's clsact filters of {n} network namespace(s) that no pod record explains"),
            Err(e) => log::warn!("removing clsact filters that no pod record explains: {e}"),
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
