//! The pod service: pods validated, steered by the node's interception
//! (crate::interception) and recorded, so that the datapath, the pods'
//! namespaces and the records stay in step. The control API
//! (crate::service::control) serves it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use meshwire_api::{PodRecord, PodSpec};

use crate::interception::pods::{self, MeshedPod, PodDefaults};
use crate::interception::{Adopted, Adopting, Interception};
use crate::error::Error;
use crate::service::records::Records;
use crate::system::{self, NetnsError};
use crate::timing;

/// Pods: validated, steered, recorded. Mutations are
/// serialised; a failed add leaves nothing behind.
pub struct PodService {
    records: Records,
    /// Held by every mutation; what it guards mirrors the records.
    mutate: Mutex<Meshed>,
    /// How pods are steered (`interception.mode`).
    interception: Box<dyn Interception>,
    /// What a pod that does not say gets (`[acceleration] pods`, `[dns] capture`).
    defaults: PodDefaults,
    /// The attachments adoption kept without being able to look at their
    /// network namespace, by (container ID, ifname), until a CHECK looks at
    /// it or an ADD or DEL changes the attachment. This process's view
    /// only: a restart looks again, so it is not recorded. A lock of its own
    /// (held for a map operation only), so a CHECK does not wait for ADDs.
    unchecked: Mutex<HashMap<(String, String), Unchecked>>,
}

/// An attachment adoption kept as it was: its network namespace could not
/// be looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unchecked {
    pub container_id: String,
    pub ifname: String,
    pub netns: PathBuf,
    /// What failed.
    pub error: NetnsError,
}

/// How an attachment is taken out: all of it before answering, or (a DEL)
/// what may wait until after the answer left for later.
#[derive(Debug, Clone, Copy)]
enum Removal {
    Whole,
    AnswerFirst,
}

/// Which container each meshed network namespace (by cookie) belongs to, and
/// how many of its attachments are there, so an ADD can refuse a namespace
/// meshed under another container ID without reading every record; and the
/// highest `seq` recorded, the next attachment's being one more. Kept in
/// step with the records under the mutex.
#[derive(Default)]
struct Meshed {
    by_cookie: HashMap<u64, (String, usize)>,
    last_seq: u64,
}

impl Meshed {
    fn of(records: &[PodRecord]) -> Meshed {
        let mut m = Meshed::default();
        for r in records {
            m.add(r);
        }
        m
    }

    fn add(&mut self, record: &PodRecord) {
        self.last_seq = self.last_seq.max(record.seq);
        let entry = self.by_cookie.entry(record.netns_cookie).or_insert_with(|| (record.spec.container_id.clone(), 0));
        if entry.0 == record.spec.container_id {
            entry.1 += 1;
        }
    }

    /// The container meshing `cookie`, if it is not `container_id`.
    fn other_owner(&self, cookie: u64, container_id: &str) -> Option<&str> {
        self.by_cookie.get(&cookie).map(|(owner, _)| owner.as_str()).filter(|owner| *owner != container_id)
    }

    /// One attachment of the record's container went; the namespace is free
    /// once its last one has.
    fn forget(&mut self, record: &PodRecord) {
        if let Some((owner, n)) = self.by_cookie.get_mut(&record.netns_cookie) {
            if *owner == record.spec.container_id {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.by_cookie.remove(&record.netns_cookie);
                }
            }
        }
    }
}

impl PodService {
    pub fn new(state_dir: &Path, interception: Box<dyn Interception>) -> Result<PodService, Error> {
        let records = Records::open(state_dir)?;
        let meshed = Meshed::of(&records.all()?.0);
        Ok(PodService { records, mutate: Mutex::new(meshed), interception, defaults: PodDefaults::default(), unchecked: Mutex::default() })
    }

    /// `[acceleration] pods` (default "all") and `[dns] capture` (default false).
    pub fn with_pod_defaults(mut self, defaults: PodDefaults) -> PodService {
        self.defaults = defaults;
        self
    }

    /// The datapath's view of a recorded pod.
    fn meshed_of(&self, record: &PodRecord) -> MeshedPod {
        MeshedPod::of(&record.spec, record.netns_cookie, self.defaults)
    }

    /// The other attachments of the record's pod (same container, same
    /// network namespace), as the datapath sees them.
    fn siblings(&self, container_id: &str, ifname: &str, cookie: u64) -> Result<Vec<MeshedPod>, Error> {
        Ok(self
            .records
            .others_of_container(container_id, ifname)?
            .iter()
            .filter(|r| r.netns_cookie == cookie)
            .map(|r| self.meshed_of(r))
            .collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Meshed> {
        // A panicking worker must not wedge every later request.
        self.mutate.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn unchecked_lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Unchecked>> {
        self.unchecked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The attachment's namespace has been looked at (or the attachment changed).
    fn checked(&self, container_id: &str, ifname: &str) {
        let mut unchecked = self.unchecked_lock();
        if !unchecked.is_empty() {
            unchecked.remove(&(container_id.to_string(), ifname.to_string()));
        }
    }

    /// The attachments adoption kept unchecked that no CHECK, ADD or DEL
    /// has looked at since, by container ID and ifname.
    pub fn unchecked(&self) -> Vec<Unchecked> {
        let mut all: Vec<Unchecked> = self.unchecked_lock().values().cloned().collect();
        all.sort_by(|a, b| (&a.container_id, &a.ifname).cmp(&(&b.container_id, &b.ifname)));
        all
    }

    /// Mesh the attachment `spec` (again: the same spec answers the same,
    /// a changed one replaces it, all or nothing). The request's thread
    /// enters the pod's network namespace once and does the whole ADD from
    /// there: its cookie is read there, and the tc programs go on its
    /// interface without entering it again (maps, pins and records do not
    /// depend on the network namespace).
    pub fn add(&self, spec: PodSpec) -> Result<PodRecord, Error> {
        pods::validate(&spec)?;
        // The namespace is opened (never blocking) and checked before the
        // lock: a bad path cannot hold up other pods' changes.
        let netns = system::open_netns(&spec.netns)?;
        // Outside the pod's namespace: read once, then kept.
        let hosts = system::host_netns_cookies()?;
        let path = spec.netns.clone();
        system::run_in_netns(netns, &path, |cookie| {
            timing::mark("netns cookie");
            let pod = pods::resolve(&spec, cookie, &hosts, self.defaults)?;
            self.add_here(spec, pod)
        })?
    }

    /// [`add`](Self::add)'s work, on a thread inside the pod's network
    /// namespace (`pod.cookie` is its cookie).
    fn add_here(&self, spec: PodSpec, pod: MeshedPod) -> Result<PodRecord, Error> {
        let mut meshed = self.lock();
        timing::mark("lock wait");

        if let Some(other) = meshed.other_owner(pod.cookie, &spec.container_id) {
            return Err(Error::Invalid(format!("{} is already meshed as container {other}", spec.netns.display())));
        }
        // A container is in one network namespace: each of its attachments says which.
        let attachments = self.records.of_container(&spec.container_id)?;
        if let Some(elsewhere) = attachments.iter().find(|r| r.spec.netns != spec.netns || r.netns_cookie != pod.cookie) {
            return Err(Error::Invalid(format!(
                "container {} is already meshed with network namespace {} (cookie {}); this one is {} (cookie {}): delete it first",
                spec.container_id,
                elsewhere.spec.netns.display(),
                elsewhere.netns_cookie,
                spec.netns.display(),
                pod.cookie
            )));
        }
        let Some(existing) = attachments.into_iter().find(|r| r.spec.ifname == spec.ifname) else {
            return self.install(&mut meshed, spec, &pod);
        };
        if existing.spec == spec {
            // CNI may repeat an ADD: make sure it is all there, answer the same.
            self.apply(&pod)?;
            self.checked(&spec.container_id, &spec.ifname);
            return Ok(existing);
        }
        // Same attachment, new spec: replace it; if the new one cannot be
        // installed, the previous one is put back (all or nothing).
        self.teardown(&mut meshed, &existing)?;
        self.install(&mut meshed, spec, &pod).inspect_err(|_| {
            let previous = self.meshed_of(&existing);
            let restored = self.apply(&previous).and_then(|()| self.records.save(&existing));
            match restored {
                Ok(()) => {
                    meshed.add(&existing);
                    log::info!("pod {}: the change failed; its previous settings are in force again", existing.spec.container_id);
                }
                Err(e) => log::error!("pod {}: the change failed and its previous settings could not be put back: {e}", existing.spec.container_id),
            }
        })
    }

    /// Apply a new pod and record it; on failure nothing of it is left.
    fn install(&self, meshed: &mut Meshed, spec: PodSpec, pod: &MeshedPod) -> Result<PodRecord, Error> {
        self.apply(pod)?;
        let record = PodRecord { spec, netns_cookie: pod.cookie, seq: meshed.last_seq + 1, unchecked: None };
        if let Err(e) = self.records.save(&record) {
            let _ = self.teardown(meshed, &record);
            return Err(e);
        }
        meshed.add(&record);
        self.checked(&record.spec.container_id, &record.spec.ifname);
        log::info!(
            "pod {} meshed on {:?} (netns cookie {}, ips {:?})",
            record.spec.container_id,
            record.spec.ifname,
            pod.cookie,
            record.spec.ips
        );
        Ok(record)
    }

    /// Steer the attachment, with what its siblings share, from a thread
    /// inside its network namespace ([`add`](Self::add)'s).
    fn apply(&self, pod: &MeshedPod) -> Result<(), Error> {
        let siblings = self.siblings(&pod.container_id, &pod.ifname, pod.cookie)?;
        self.interception.apply_here(pod, &siblings)
    }

    /// One attachment goes; the pod's other attachments stay meshed.
    fn teardown(&self, meshed: &mut Meshed, record: &PodRecord) -> Result<(), Error> {
        self.teardown_with(meshed, record, Removal::Whole)
    }

    /// `teardown`, all of it now, or (a DEL's) what may wait for its answer left
    /// to be done in the background (crate::datapath::reaper).
    fn teardown_with(&self, meshed: &mut Meshed, record: &PodRecord, how: Removal) -> Result<(), Error> {
        let pod = self.meshed_of(record);
        let siblings = self.siblings(&pod.container_id, &pod.ifname, pod.cookie)?;
        match how {
            Removal::Whole => self.interception.remove(&pod, &siblings)?,
            Removal::AnswerFirst => self.interception.remove_answering_first(&pod, &siblings)?,
        }
        self.records.remove(&record.spec.container_id, &record.spec.ifname)?;
        meshed.forget(record);
        self.checked(&record.spec.container_id, &record.spec.ifname);
        Ok(())
    }

    /// The records of `container_id`: the attachment `ifname`, or all of
    /// them when None.
    fn load(&self, container_id: &str, ifname: Option<&str>) -> Result<Vec<PodRecord>, Error> {
        pods::check_container_id(container_id)?;
        match ifname {
            Some(i) => Ok(self.records.load(container_id, i)?.into_iter().collect()),
            None => Ok(self.records.of_container(container_id)?),
        }
    }

    /// Ok(false): the pod was not known (CNI DEL is idempotent). Without
    /// `ifname`, every attachment of the container goes.
    pub fn del(&self, container_id: &str, ifname: Option<&str>) -> Result<bool, Error> {
        self.del_with(container_id, ifname, Removal::Whole)
    }

    /// [`del`](Self::del) as the API's DEL does it: what steers the pod,
    /// its map entries and its record go before this returns; what a crash
    /// would not lose (a bare clsact qdisc meshwire created, whose deletion
    /// waits for an RCU grace period) is deleted by a thread of its own a
    /// moment later (crate::datapath::reaper), out of the DEL's way.
    pub fn del_answering_first(&self, container_id: &str, ifname: Option<&str>) -> Result<bool, Error> {
        self.del_with(container_id, ifname, Removal::AnswerFirst)
    }

    /// At a clean stop: what [`del_answering_first`](Self::del_answering_first)
    /// left for later is done now, taking at most `within`.
    pub fn finish_removals(&self, within: std::time::Duration) -> crate::datapath::reaper::Finished {
        self.interception.finish_removals(within)
    }

    fn del_with(&self, container_id: &str, ifname: Option<&str>, how: Removal) -> Result<bool, Error> {
        if pods::too_long_container_id(container_id) {
            // No pod can have been added under it: nothing to delete.
            return Ok(false);
        }
        let mut meshed = self.lock();
        let records = self.load(container_id, ifname)?;
        if records.is_empty() {
            return Ok(false);
        }
        for record in &records {
            self.teardown_with(&mut meshed, record, how)?;
            log::info!("pod {container_id} removed from {:?}", record.spec.ifname);
        }
        Ok(true)
    }

    /// Every pod goes (`meshwire-loader cleanup`), each as `del` takes it
    /// away, the last meshed first (highest `seq`; records without one
    /// last): removing a clsact qdisc walks the kernel's list of tc blocks
    /// from its newest entry, so in that order each removal finds its
    /// blocks at the head of the list instead of behind every pod meshed
    /// after it. One that cannot be torn down stays recorded, and the
    /// others go on. Returns the records removed, in the order they went,
    /// and the failures.
    pub fn del_all(&self) -> Result<(Vec<PodRecord>, Vec<String>), Error> {
        let mut meshed = self.lock();
        let (mut records, broken) = self.records.all()?;
        records.sort_by_key(|r| std::cmp::Reverse(r.seq));
        let mut failed: Vec<String> = broken.into_iter().map(|b| format!("unreadable pod record: {b}")).collect();
        let mut removed = Vec::new();
        for record in records {
            match self.teardown(&mut meshed, &record) {
                Ok(()) => removed.push(record),
                Err(e) => failed.push(format!("pod {}: {e}", record.spec.container_id)),
            }
        }
        Ok((removed, failed))
    }

    /// CHECK of one attachment (without `ifname`, of each of the container's;
    /// the first is answered).
    pub fn check(&self, container_id: &str, ifname: Option<&str>) -> Result<PodRecord, Error> {
        let records = self.load(container_id, ifname)?;
        let Some(first) = records.first().cloned() else {
            return Err(Error::NotFound(format!("no pod with container id {container_id}{}", ifname.map(|i| format!(" on {i}")).unwrap_or_default())));
        };
        for record in &records {
            self.check_one(record)?;
        }
        Ok(first)
    }

    fn check_one(&self, record: &PodRecord) -> Result<(), Error> {
        let container_id = &record.spec.container_id;
        let state = pods::netns_state(&record.spec.netns, record.netns_cookie);
        if !matches!(state, pods::NetnsState::Unknown(_)) {
            // Looked at: an attachment adoption kept unchecked no longer is.
            self.checked(container_id, &record.spec.ifname);
        }
        match state {
            pods::NetnsState::Alive => {}
            // What CHECK looks for: the pod is not as it was set up.
            pods::NetnsState::Gone => {
                return Err(Error::Inconsistent(format!("pod {container_id}: network namespace {} is gone", record.spec.netns.display())))
            }
            // Not known to be inconsistent: the error says what failed.
            pods::NetnsState::Unknown(e) => return Err(Error::from(e).context(format_args!("pod {container_id}"))),
        }
        let pod = self.meshed_of(record);
        let siblings = self.siblings(container_id, &record.spec.ifname, record.netns_cookie)?;
        self.interception.check(&pod, &siblings)
    }

    /// Is this attachment meshed (recorded)?
    pub fn attachment(&self, container_id: &str, ifname: &str) -> Option<PodRecord> {
        self.records.load(container_id, ifname).ok().flatten()
    }

    /// How many attachments are meshed (recorded), without reading the records.
    pub fn count(&self) -> usize {
        self.records.count()
    }

    /// The records, each attachment adoption kept unchecked saying what
    /// failed (`unchecked`).
    pub fn list(&self) -> Result<Vec<PodRecord>, Error> {
        let mut records = self.records.all()?.0;
        let unchecked = self.unchecked_lock();
        if !unchecked.is_empty() {
            for r in &mut records {
                r.unchecked = unchecked.get(&(r.spec.container_id.clone(), r.spec.ifname.clone())).map(|u| u.error.to_string());
            }
        }
        Ok(records)
    }

    /// After a (re)start: keep the pods whose namespace is still there,
    /// re-applying their entries; drop those whose namespace is proven gone,
    /// and map entries no record explains. A pod whose namespace could not
    /// be looked at is kept as it was, record and entries, its error logged
    /// naming it (adoption goes on: failing the loader would leave every
    /// pod unserved for one that may be fine), and listed as unchecked
    /// ([`unchecked`](Self::unchecked), `list`) until a CHECK looks. Returns
    /// (kept, dropped, unchecked): kept were steered again, unchecked kept
    /// unverified.
    pub fn adopt(&self) -> Result<(usize, usize, usize), Error> {
        timing::start();
        let adopted = self.adopt_timed();
        if let (Ok((kept, dropped, unchecked)), Some(took)) = (&adopted, timing::finish()) {
            log::info!("adoption of {kept} pod(s), {dropped} dropped, {unchecked} kept unchecked: {took}");
        }
        adopted
    }

    fn adopt_timed(&self) -> Result<(usize, usize, usize), Error> {
        let mut meshed = self.lock();
        let (records, broken) = self.records.all()?;
        timing::mark("records read");
        for b in broken {
            log::warn!("ignoring unreadable pod record: {b}");
        }
        // Siblings from the records in hand (sorted by container, so a
        // container's attachments are next to each other), not read again.
        let adopting: Vec<Adopting> = records
            .chunk_by(|a, b| a.spec.container_id == b.spec.container_id)
            .flat_map(|container| {
                container.iter().map(|r| {
                    let siblings = container.iter().filter(|o| o.spec.ifname != r.spec.ifname && o.netns_cookie == r.netns_cookie);
                    Adopting { pod: self.meshed_of(r), siblings: siblings.map(|o| self.meshed_of(o)).collect() }
                })
            })
            .collect();
        let adopted = self.interception.adopt(&adopting);
        timing::mark("netns check + map updates + tc attach");
        let (mut kept, mut dropped) = (0, 0);
        let mut unchecked = HashMap::new();
        let mut live = Vec::with_capacity(records.len());
        for (record, adopted) in records.into_iter().zip(adopted) {
            let id = &record.spec.container_id;
            match adopted {
                Adopted::Kept => kept += 1,
                Adopted::Failed(e) => log::error!("pod {id}: could not restore: {e}"),
                Adopted::Unknown(e) => {
                    log::error!(
                        "pod {id}: network namespace {} could not be checked ({e}); keeping the pod, its record and entries as they were, not steered again",
                        record.spec.netns.display()
                    );
                    let (container_id, ifname) = (id.clone(), record.spec.ifname.clone());
                    let kept_unchecked = Unchecked { container_id, ifname, netns: record.spec.netns.clone(), error: e };
                    unchecked.insert((kept_unchecked.container_id.clone(), kept_unchecked.ifname.clone()), kept_unchecked);
                }
                Adopted::Gone => {
                    log::info!("pod {id}: network namespace {} is gone; removing it", record.spec.netns.display());
                    self.teardown(&mut meshed, &record)?;
                    dropped += 1;
                    continue;
                }
            }
            live.push(record);
        }
        timing::mark("gone pods removed");
        let unchecked_count = unchecked.len();
        *self.unchecked_lock() = unchecked;
        // What no record explains: a loader killed in the middle of an ADD.
        *meshed = Meshed::of(&live);
        let known: Vec<MeshedPod> = live.iter().map(|r| self.meshed_of(r)).collect();
        self.interception.sweep(&known)?;
        timing::mark("sweep");
        Ok((kept, dropped, unchecked_count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshwire_api::testing::record;

    #[test]
    fn a_namespace_has_one_owner_and_forgetting_another_owner_keeps_it() {
        let mut m = Meshed::of(&[record("a", 7), record("b", 8)]);
        assert_eq!(m.other_owner(7, "a"), None, "re-adding the owner is not a conflict");
        assert_eq!(m.other_owner(7, "c"), Some("a"));
        assert_eq!(m.other_owner(9, "c"), None);
        // A record of "c" with cookie 7 (never the owner) going does not free 7.
        m.forget(&record("c", 7));
        assert_eq!(m.other_owner(7, "c"), Some("a"));
        m.forget(&record("a", 7));
        assert_eq!(m.other_owner(7, "c"), None);
    }

    /// A pod on two networks: its namespace stays its container's until the
    /// last attachment goes.
    #[test]
    fn a_namespace_stays_owned_until_its_last_attachment_goes() {
        let mut net1 = record("a", 7);
        net1.spec.ifname = "net1".into();
        let mut m = Meshed::of(&[record("a", 7), net1.clone()]);
        m.forget(&record("a", 7));
        assert_eq!(m.other_owner(7, "b"), Some("a"), "net1 still meshes it");
        m.forget(&net1);
        assert_eq!(m.other_owner(7, "b"), None);
    }

    /// `cleanup` takes every pod out the way `del` does; pods whose
    /// namespace is gone (nothing left to detach there) go too.
    #[test]
    fn del_all_takes_out_every_recorded_attachment() {
        use crate::datapath::{pins::Pins, tc::TcAttach};
        let state = std::env::temp_dir().join(format!("meshwire-pod-service-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        // No datapath behind these pins: nothing pinned, nothing to detach.
        let pins = Pins::new(&state.join("no-bpffs"));
        let service = PodService::new(&state, Box::new(crate::interception::ebpf::EbpfTc::new(&pins, TcAttach::Auto))).unwrap();
        for (id, ifname) in [("a", "eth0"), ("a", "net1"), ("b", "")] {
            let mut r = record(id, 7);
            r.spec.netns = "/run/netns/meshwire-no-such-ns".into();
            r.spec.ifname = ifname.into();
            service.records.save(&r).unwrap();
        }
        let (removed, failed) = service.del_all().unwrap();
        assert_eq!(failed, Vec::<String>::new());
        let mut ids: Vec<(String, String)> = removed.into_iter().map(|r| (r.spec.container_id, r.spec.ifname)).collect();
        ids.sort();
        assert_eq!(ids, [("a", "eth0"), ("a", "net1"), ("b", "")].map(|(i, f)| (i.to_string(), f.to_string())));
        assert_eq!(service.list().unwrap(), vec![]);
        let _ = std::fs::remove_dir_all(&state);
    }
}
