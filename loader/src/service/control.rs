//! The loader's control API: a Unix socket (root only) speaking the
//! `meshwire-api` protocol, each connection on a thread of its own (bounded,
//! idle ones dropped), so no client can hold up another. Pod changes go through [`PodService`], which keeps the
//! maps, the tc attachments and the persisted records in step.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshwire_api::{ErrorCode, Op, OpResult, PodRecord, PodSpec, Response, MAX_LINE};

use crate::interception::iptables;
use crate::datapath::pins::Pins;
use crate::service::pods::{self, MeshedPod, PodMaps};
use crate::service::records::Records;
use crate::datapath::tc;

type ApiResult = Result<OpResult, Response>;

fn invalid(msg: impl Into<String>) -> Response {
    Response::err(ErrorCode::InvalidRequest, msg)
}

fn internal(msg: impl Into<String>) -> Response {
    Response::err(ErrorCode::Internal, msg)
}

/// Pods: validated, applied to the datapath, recorded. Mutations are
/// serialised; a failed add leaves nothing behind.
pub struct PodService {
    pins: Pins,
    records: Records,
    /// Held by every mutation; what it guards mirrors the records.
    mutate: Mutex<Meshed>,
    /// Some: iptables mode, pods get these netfilter rules instead of map entries.
    iptables: Option<iptables::NodeRules>,
    /// How tc programs go on pods' interfaces (`[tc] attach`).
    tc_attach: tc::TcAttach,
    /// Whether a pod that does not say is accelerated (`[acceleration] pods`).
    accelerate_by_default: bool,
}

/// Which container each meshed network namespace (by cookie) belongs to, and
/// how many of its attachments are there, so an ADD can refuse a namespace
/// meshed under another container ID without reading every record. Kept in
/// step with the records under the mutex.
#[derive(Default)]
struct Meshed {
    by_cookie: HashMap<u64, (String, usize)>,
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
    pub fn new(pins: &Pins, state_dir: &Path) -> Result<PodService, String> {
        let records = Records::open(state_dir)?;
        let meshed = Meshed::of(&records.all()?.0);
        Ok(PodService { pins: pins.clone(), records, mutate: Mutex::new(meshed), iptables: None, tc_attach: tc::TcAttach::Auto, accelerate_by_default: true })
    }

    /// iptables mode (`interception.mode = "iptables"`).
    pub fn with_iptables(mut self, rules: iptables::NodeRules) -> PodService {
        self.iptables = Some(rules);
        self
    }

    /// `[acceleration] pods` (default "all").
    pub fn with_accelerate_by_default(mut self, on: bool) -> PodService {
        self.accelerate_by_default = on;
        self
    }

    /// `[tc] attach` (default "auto").
    pub fn with_tc_attach(mut self, mode: tc::TcAttach) -> PodService {
        self.tc_attach = mode;
        self
    }

    /// The datapath's view of a recorded pod.
    fn meshed_of(&self, record: &PodRecord) -> MeshedPod {
        MeshedPod::of(&record.spec, record.netns_cookie, self.accelerate_by_default)
    }

    /// The other attachments of the record's pod (same container, same
    /// network namespace), as the datapath sees them.
    fn siblings(&self, container_id: &str, ifname: &str, cookie: u64) -> Result<Vec<MeshedPod>, String> {
        Ok(self
            .records
            .of_container(container_id)?
            .iter()
            .filter(|r| r.spec.ifname != ifname && r.netns_cookie == cookie)
            .map(|r| self.meshed_of(r))
            .collect())
    }

    fn maps(&self) -> Result<PodMaps, Response> {
        PodMaps::open(&self.pins).map_err(internal)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Meshed> {
        // A panicking worker must not wedge every later request.
        self.mutate.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, spec: PodSpec) -> Result<PodRecord, Response> {
        pods::validate(&spec).map_err(invalid)?;
        // The namespace is opened (never blocking) and checked before the
        // lock: a bad path cannot hold up other pods' changes.
        let pod = pods::resolve(&spec, self.accelerate_by_default).map_err(invalid)?;
        let mut meshed = self.lock();
        let maps = self.maps()?;

        if let Some(other) = meshed.other_owner(pod.cookie, &spec.container_id) {
            return Err(invalid(format!("{} is already meshed as container {other}", spec.netns.display())));
        }
        // A container is in one network namespace: each of its attachments says which.
        let attachments = self.records.of_container(&spec.container_id).map_err(internal)?;
        if let Some(elsewhere) = attachments.iter().find(|r| r.spec.netns != spec.netns || r.netns_cookie != pod.cookie) {
            return Err(invalid(format!(
                "container {} is already meshed with network namespace {} (cookie {}); this one is {} (cookie {}): delete it first",
                spec.container_id,
                elsewhere.spec.netns.display(),
                elsewhere.netns_cookie,
                spec.netns.display(),
                pod.cookie
            )));
        }
        let Some(existing) = attachments.into_iter().find(|r| r.spec.ifname == spec.ifname) else {
            return self.install(&mut meshed, &maps, spec, &pod);
        };
        if existing.spec == spec {
            // CNI may repeat an ADD: make sure it is all there, answer the same.
            self.apply(&maps, &pod)?;
            return Ok(existing);
        }
        // Same attachment, new spec: replace it; if the new one cannot be
        // installed, the previous one is put back (all or nothing).
        self.teardown(&mut meshed, &maps, &existing)?;
        self.install(&mut meshed, &maps, spec, &pod).inspect_err(|_| {
            let previous = self.meshed_of(&existing);
            let restored = self
                .apply(&maps, &previous)
                .map_err(|e| e.error.map(|e| e.message).unwrap_or_default())
                .and_then(|()| self.records.save(&existing));
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
    fn install(&self, meshed: &mut Meshed, maps: &PodMaps, spec: PodSpec, pod: &MeshedPod) -> Result<PodRecord, Response> {
        self.apply(maps, pod)?;
        let record = PodRecord { spec, netns_cookie: pod.cookie };
        if let Err(e) = self.records.save(&record) {
            let _ = self.teardown(meshed, maps, &record);
            return Err(internal(e));
        }
        meshed.add(&record);
        log::info!(
            "pod {} meshed on {:?} (netns cookie {}, ips {:?})",
            record.spec.container_id,
            record.spec.ifname,
            pod.cookie,
            record.spec.ips
        );
        Ok(record)
    }

    /// Maps (the pod's cookie entries from all its attachments), then tc on
    /// this attachment's interface; on a tc failure the map entries go again.
    fn apply(&self, maps: &PodMaps, pod: &MeshedPod) -> Result<(), Response> {
        let siblings = self.siblings(&pod.container_id, &pod.ifname, pod.cookie).map_err(internal)?;
        if let Some(rules) = &self.iptables {
            // Not in the maps (a loader in eBPF mode may have put it there).
            tc::detach_pod(&self.pins, pod.cookie, Some((&pod.netns, &pod.ifname))).map_err(internal)?;
            pods::remove(maps, pod, &[]).map_err(internal)?;
            // One nat table per namespace: its rules are the pod's, all attachments'.
            return iptables::apply(rules, &pods::merged(pod, &siblings)).map_err(internal);
        }
        pods::install(maps, pod, &siblings).map_err(internal)?;
        if pod.ifname.is_empty() {
            return Ok(());
        }
        if let Err(e) = tc::attach_pod(&self.pins, pod.cookie, &pod.netns, &pod.ifname, self.tc_attach) {
            let _ = pods::remove(maps, pod, &siblings);
            return Err(internal(e));
        }
        Ok(())
    }

    /// One attachment goes; the pod's other attachments stay meshed.
    fn teardown(&self, meshed: &mut Meshed, maps: &PodMaps, record: &PodRecord) -> Result<(), Response> {
        let pod = self.meshed_of(record);
        let siblings = self.siblings(&pod.container_id, &pod.ifname, pod.cookie).map_err(internal)?;
        if let Some(rules) = &self.iptables {
            match siblings.split_first() {
                None => iptables::remove(&pod).map_err(internal)?,
                Some((first, rest)) => iptables::apply(rules, &pods::merged(first, rest)).map_err(internal)?,
            }
        }
        tc::detach_pod(&self.pins, pod.cookie, Some((&pod.netns, &pod.ifname))).map_err(internal)?;
        pods::remove(maps, &pod, &siblings).map_err(internal)?;
        self.records.remove(&record.spec.container_id, &record.spec.ifname).map_err(internal)?;
        meshed.forget(record);
        Ok(())
    }

    /// The records of `container_id`: the attachment `ifname`, or all of
    /// them when None.
    fn load(&self, container_id: &str, ifname: Option<&str>) -> Result<Vec<PodRecord>, Response> {
        pods::check_container_id(container_id).map_err(invalid)?;
        match ifname {
            Some(i) => Ok(self.records.load(container_id, i).map_err(internal)?.into_iter().collect()),
            None => self.records.of_container(container_id).map_err(internal),
        }
    }

    /// Ok(false): the pod was not known (CNI DEL is idempotent). Without
    /// `ifname`, every attachment of the container goes.
    pub fn del(&self, container_id: &str, ifname: Option<&str>) -> Result<bool, Response> {
        if pods::too_long_container_id(container_id) {
            // No pod can have been added under it: nothing to delete.
            return Ok(false);
        }
        let mut meshed = self.lock();
        let records = self.load(container_id, ifname)?;
        if records.is_empty() {
            return Ok(false);
        }
        let maps = self.maps()?;
        for record in &records {
            self.teardown(&mut meshed, &maps, record)?;
            log::info!("pod {container_id} removed from {:?}", record.spec.ifname);
        }
        Ok(true)
    }

    /// CHECK of one attachment (without `ifname`, of each of the container's;
    /// the first is answered).
    pub fn check(&self, container_id: &str, ifname: Option<&str>) -> Result<PodRecord, Response> {
        let records = self.load(container_id, ifname)?;
        let Some(first) = records.first().cloned() else {
            return Err(Response::err(ErrorCode::NotFound, format!("no pod with container id {container_id}{}", ifname.map(|i| format!(" on {i}")).unwrap_or_default())));
        };
        for record in &records {
            self.check_one(record)?;
        }
        Ok(first)
    }

    fn check_one(&self, record: &PodRecord) -> Result<(), Response> {
        let container_id = &record.spec.container_id;
        let inconsistent = |m: String| Response::err(ErrorCode::Inconsistent, m);
        if !pods::netns_alive(&record.spec.netns, record.netns_cookie) {
            return Err(inconsistent(format!("pod {container_id}: network namespace {} is gone", record.spec.netns.display())));
        }
        let pod = self.meshed_of(record);
        let siblings = self.siblings(container_id, &record.spec.ifname, record.netns_cookie).map_err(internal)?;
        if let Some(rules) = &self.iptables {
            return iptables::check(rules, &pods::merged(&pod, &siblings)).map_err(inconsistent);
        }
        pods::check(&self.maps()?, &pod, &siblings).map_err(inconsistent)?;
        if !record.spec.ifname.is_empty() {
            tc::check_pod(&self.pins, record.netns_cookie, &record.spec.netns, &record.spec.ifname)
                .map_err(|e| inconsistent(format!("pod {container_id}: {e}")))?;
        }
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<PodRecord>, Response> {
        Ok(self.records.all().map_err(internal)?.0)
    }

    /// After a (re)start: keep the pods whose namespace is still there,
    /// re-applying their entries; drop those whose namespace is gone, and map
    /// entries no record explains. Returns (kept, dropped).
    pub fn adopt(&self) -> Result<(usize, usize), String> {
        let mut meshed = self.lock();
        let maps = PodMaps::open(&self.pins)?;
        let (records, broken) = self.records.all()?;
        for b in broken {
            log::warn!("ignoring unreadable pod record: {b}");
        }
        let (mut kept, mut dropped) = (0, 0);
        for record in &records {
            let pod = self.meshed_of(record);
            if pods::netns_alive(&pod.netns, pod.cookie) {
                match self.apply(&maps, &pod) {
                    Ok(()) => kept += 1,
                    Err(e) => log::error!("pod {}: could not restore: {:?}", pod.container_id, e.error),
                }
            } else {
                log::info!("pod {}: network namespace {} is gone; removing it", pod.container_id, pod.netns.display());
                self.teardown(&mut meshed, &maps, record).map_err(|e| format!("{:?}", e.error))?;
                dropped += 1;
            }
        }
        // What no record explains: a loader killed in the middle of an ADD.
        let (live, _) = self.records.all()?;
        *meshed = Meshed::of(&live);
        let known: Vec<MeshedPod> = live.iter().map(|r| self.meshed_of(r)).collect();
        let swept = pods::sweep(&maps, &known)?;
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
        Ok((kept, dropped))
    }
}

fn dispatch(service: &PodService, op: Op) -> ApiResult {
    match op {
        Op::AddPod { pod } => service.add(pod).map(|r| OpResult { pod: Some(r), ..Default::default() }),
        Op::DelPod { container_id, ifname } => service.del(&container_id, ifname.as_deref()).map(|existed| OpResult { existed: Some(existed), ..Default::default() }),
        Op::CheckPod { container_id, ifname } => service.check(&container_id, ifname.as_deref()).map(|r| OpResult { pod: Some(r), ..Default::default() }),
        Op::ListPods => service.list().map(|p| OpResult { pods: Some(p), ..Default::default() }),
        Op::Status => {
            let mut status = serde_json::Map::new();
            status.insert("pods".into(), service.list()?.len().into());
            status.insert("ready".into(), true.into());
            Ok(OpResult { status: Some(status), ..Default::default() })
        }
    }
}

/// An idle connection is closed after this long without a request, and a
/// response that cannot be written within it ends the connection.
const IDLE: Duration = Duration::from_secs(30);

/// Has the caller closed its end (hung up, not just half-closed)?
fn caller_gone(conn: &UnixStream) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(conn.as_fd(), PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0].revents().is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// Answer one request. For an ADD that meshed a new pod, also the pod to
/// take out again should its caller turn out to have given up.
fn answer(service: &PodService, op: Op, conn: &UnixStream) -> (Response, Option<(String, String)>) {
    let Op::AddPod { pod } = op else {
        return (dispatch(service, op).map_or_else(|e| e, Response::ok), None);
    };
    // A caller that gave up (CNI's timeout) has its ADD reported as failed:
    // it must have no effect.
    if caller_gone(conn) {
        log::info!("pod {}: its caller hung up before the ADD was served; not meshed", pod.container_id);
        return (internal("the caller hung up"), None);
    }
    let new = service.records.load(&pod.container_id, &pod.ifname).ok().flatten().is_none();
    let undo = new.then(|| (pod.container_id.clone(), pod.ifname.clone()));
    match dispatch(service, Op::AddPod { pod }) {
        Ok(result) => (Response::ok(result), undo),
        Err(e) => (e, None),
    }
}

/// Serve one connection: request lines in, response lines out.
fn serve(service: &PodService, stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_write_timeout(Some(IDLE));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => return log::warn!("control connection: {e}"),
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut raw = Vec::new();
        // Bound what one line may take, then refuse anything longer.
        match (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut raw) {
            Ok(0) => return,
            Ok(_) if raw.len() > MAX_LINE => {
                let _ = write_response(&mut writer, &invalid(format!("request longer than {MAX_LINE} bytes")));
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
        let (response, undo) = match std::str::from_utf8(&raw) {
            Err(e) => (invalid(format!("request is not UTF-8 ({e})")), None),
            Ok(line) => match meshwire_api::parse_request(line.trim_end()) {
                Err(bad) => (bad, None),
                Ok(req) => answer(service, req.op, &writer),
            },
        };
        if write_response(&mut writer, &response).is_err() {
            // Its caller is gone and takes the ADD as failed: undo it.
            if let Some((id, ifname)) = undo {
                match service.del(&id, Some(&ifname)) {
                    Ok(_) => log::info!("pod {id}: its caller was gone when the ADD was answered; taken out again"),
                    Err(e) => log::error!("pod {id}: its caller was gone when the ADD was answered, and taking it out failed: {:?}", e.error),
                }
            }
            return;
        }
    }
}

fn write_response(w: &mut UnixStream, r: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_string(r).expect("responses serialize");
    line.push('\n');
    w.write_all(line.as_bytes())
}

/// Only root may talk to the loader (the socket is 0600 too).
fn peer_is_root(stream: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials).map(|c| c.uid() == 0).unwrap_or(false)
}

/// Bind the socket: directory 0700, socket 0600, a stale socket replaced.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!("another loader is serving {}; stop it first", path.display()));
        }
        std::fs::remove_file(path).map_err(|e| format!("removing stale socket {}: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("binding {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| format!("chmod {}: {e}", path.display()))?;
    Ok(listener)
}

/// Accept on one thread and serve each connection on a thread of its own,
/// at most `max_connections` at a time: an idle or slow client ties up only
/// its own thread (and is dropped after [`IDLE`]), never another caller's
/// turn. Pod changes are serialised by the service itself. Returns when the
/// listener fails; the threads live as long as the process.
pub fn spawn(listener: UnixListener, service: Arc<PodService>, max_connections: usize) -> Result<(), String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("api-accept".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let mut s = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        log::warn!("control socket accept: {e}");
                        // EMFILE and the like: do not spin.
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                if !peer_is_root(&s) {
                    let _ = write_response(&mut s, &Response::err(ErrorCode::InvalidRequest, "only root may use the meshwire loader's API"));
                    continue;
                }
                if open.fetch_add(1, Ordering::SeqCst) >= max_connections {
                    open.fetch_sub(1, Ordering::SeqCst);
                    let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
                    let _ = write_response(&mut s, &internal(format!("the loader serves {max_connections} connections already; try again")));
                    continue;
                }
                let (service, open) = (Arc::clone(&service), Arc::clone(&open));
                let started = std::thread::Builder::new().name("api-conn".into()).stack_size(256 * 1024).spawn(move || {
                    serve(&service, s);
                    open.fetch_sub(1, Ordering::SeqCst);
                });
                if let Err(e) = started {
                    log::warn!("control connection: cannot start its thread: {e}");
                }
            }
        })
        .map_err(|e| format!("starting API acceptor: {e}"))?;
    Ok(())
}

/// Where the API socket and records live.
#[derive(Debug, Clone)]
pub struct ApiPaths {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    struct Fixture {
        state: PathBuf,
        service: Arc<PodService>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let state = std::env::temp_dir().join(format!("meshwire-control-{}-{:?}", std::process::id(), std::thread::current().id()));
            let _ = std::fs::remove_dir_all(&state);
            // No datapath behind these pins: the requests tested never reach the maps.
            let pins = Pins::new(&state.join("no-bpffs"));
            let service = Arc::new(PodService::new(&pins, &state).unwrap());
            Fixture { state, service }
        }

        fn exchange(&self, lines: &[&str]) -> Vec<Response> {
            self.exchange_bytes(&lines.iter().map(|l| l.as_bytes()).collect::<Vec<_>>())
        }

        /// Send raw lines over a real socket pair served by `serve`; collect answers.
        fn exchange_bytes(&self, lines: &[&[u8]]) -> Vec<Response> {
            let (mut client, server) = UnixStream::pair().unwrap();
            let service = Arc::clone(&self.service);
            let worker = std::thread::spawn(move || serve(&service, server));
            for l in lines {
                // The server may hang up first (an overlong line): then the
                // rest of the write fails and the answers already sent count.
                if client.write_all(l).and_then(|_| client.write_all(b"\n")).is_err() {
                    break;
                }
            }
            let _ = client.shutdown(std::net::Shutdown::Write);
            let answers: Vec<Response> =
                BufReader::new(client).lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
            worker.join().unwrap();
            answers
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }

    fn code(r: &Response) -> Option<ErrorCode> {
        r.error.as_ref().map(|e| e.code)
    }

    #[test]
    fn one_connection_carries_several_requests_in_order() {
        let f = Fixture::new();
        let a = f.exchange(&[r#"{"version":1,"op":"list_pods"}"#, r#"{"version":1,"op":"del_pod","container_id":"nope"}"#]);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].result.as_ref().unwrap().pods, Some(vec![]));
        assert_eq!(a[1].result.as_ref().unwrap().existed, Some(false), "DEL of an unknown pod succeeds");
    }

    #[test]
    fn bad_requests_are_answered_and_the_connection_goes_on() {
        let f = Fixture::new();
        let a = f.exchange(&[
            "not json",
            r#"{"version":9,"op":"list_pods"}"#,
            r#"{"version":1,"op":"check_pod","container_id":"ghost"}"#,
            r#"{"version":1,"op":"del_pod","container_id":"../../etc"}"#,
            r#"{"version":1,"op":"add_pod","pod":{"container_id":"c","netns":"relative","ifname":"eth0"}}"#,
            r#"{"version":1,"op":"list_pods"}"#,
        ]);
        let codes: Vec<_> = a.iter().map(code).collect();
        assert_eq!(
            codes,
            vec![
                Some(ErrorCode::InvalidRequest),
                Some(ErrorCode::UnsupportedVersion),
                Some(ErrorCode::NotFound),
                Some(ErrorCode::InvalidRequest),
                Some(ErrorCode::InvalidRequest),
                None
            ]
        );
        assert!(a[4].error.as_ref().unwrap().message.contains("netns"), "{:?}", a[4]);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_answered_and_the_connection_goes_on() {
        let f = Fixture::new();
        let a = f.exchange_bytes(&[b"{\"version\":1,\"op\":\"list_pods\xff\"}", br#"{"version":1,"op":"list_pods"}"#]);
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(code(&a[0]), Some(ErrorCode::InvalidRequest));
        assert!(a[0].error.as_ref().unwrap().message.contains("not UTF-8"), "{:?}", a[0]);
        assert_eq!(a[1].result.as_ref().unwrap().pods, Some(vec![]));
    }

    #[test]
    fn an_overlong_line_is_refused() {
        let f = Fixture::new();
        let long = format!(r#"{{"version":1,"op":"list_pods","x":"{}"}}"#, "a".repeat(MAX_LINE));
        let a = f.exchange(&[&long]);
        assert_eq!(code(&a[0]), Some(ErrorCode::InvalidRequest));
        assert!(a[0].error.as_ref().unwrap().message.contains("longer than"));
    }

    #[test]
    fn adding_a_namespace_that_does_not_exist_changes_nothing() {
        let f = Fixture::new();
        let a = f.exchange(&[
            r#"{"version":1,"op":"add_pod","pod":{"container_id":"c1","netns":"/run/netns/meshwire-no-such-ns","ifname":"eth0"}}"#,
            r#"{"version":1,"op":"list_pods"}"#,
        ]);
        assert_eq!(code(&a[0]), Some(ErrorCode::InvalidRequest));
        assert_eq!(a[1].result.as_ref().unwrap().pods, Some(vec![]));
    }

    #[test]
    fn del_of_an_id_too_long_for_any_pod_succeeds_as_nothing_there() {
        let f = Fixture::new();
        let long = "d".repeat(300);
        let a = f.exchange(&[&format!(r#"{{"version":1,"op":"del_pod","container_id":"{long}"}}"#)]);
        assert_eq!(a[0].result.as_ref().map(|r| r.existed), Some(Some(false)), "{:?}", a[0]);
    }

    #[test]
    fn a_netns_path_that_is_a_fifo_or_a_file_is_refused_without_blocking() {
        let f = Fixture::new();
        let fifo = f.state.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let file = f.state.join("file");
        std::fs::write(&file, "x").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let service = Arc::clone(&f.service);
        let paths = [fifo.clone(), file.clone()];
        std::thread::spawn(move || {
            for p in paths {
                let spec = PodSpec { container_id: "c".into(), netns: p, ..Default::default() };
                let _ = tx.send(service.add(spec).map(|_| ()).map_err(|e| e.error.unwrap()));
            }
        });
        for p in [&fifo, &file] {
            let e = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| panic!("add with netns {} blocked", p.display())).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{e:?}");
            assert!(e.message.contains("not a network namespace"), "{e:?}");
        }
    }

    fn record(id: &str, cookie: u64) -> PodRecord {
        let spec = PodSpec { container_id: id.into(), netns: "/run/netns/x".into(), ..Default::default() };
        PodRecord { spec, netns_cookie: cookie }
    }

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

    #[test]
    fn the_socket_is_root_only_and_a_live_one_is_not_stolen() {
        let f = Fixture::new();
        let path = f.state.join("api.sock");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(bind(&path).unwrap_err().contains("another loader"));
        drop(listener);
        // Stale socket file (nobody listening): replaced. A child another
        // test forks may hold the listener between its fork and exec (where
        // CLOEXEC closes it), and answer for that instant: try again.
        let mut last = Err(String::new());
        for _ in 0..100 {
            last = bind(&path);
            if last.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        last.unwrap();
    }
}
