//! The loader's control API: a Unix socket (root only) speaking the
//! `meshwire-api` protocol, each connection on a thread of its own (bounded,
//! idle ones dropped, deadlines on reads and writes), so no client can hold
//! up another. This is the transport only: every request is answered by the
//! [`PodService`].

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use meshwire_api::{ErrorCode, Op, OpResult, PodSpec, Response, MAX_LINE};

use crate::error::{Error, OrOs};
use crate::service::pod_service::PodService;
use crate::timing;

type ApiResult = Result<OpResult, Response>;

fn invalid(msg: impl Into<String>) -> Response {
    Response::err(ErrorCode::InvalidRequest, msg)
}

fn internal(msg: impl Into<String>) -> Response {
    Response::err(ErrorCode::Internal, msg)
}

/// The code the API answers an error with: each kind its own, so that a
/// client can tell a full map or a vanished namespace from a bug.
fn code_of(e: &Error) -> ErrorCode {
    match e {
        Error::Invalid(_) => ErrorCode::InvalidRequest,
        Error::NotFound(_) => ErrorCode::NotFound,
        Error::MapFull { .. } => ErrorCode::MapFull,
        Error::NetnsGone(_) => ErrorCode::NetnsGone,
        Error::Inconsistent(_) => ErrorCode::Inconsistent,
        Error::Os { .. } | Error::Internal(_) => ErrorCode::Internal,
    }
}

impl From<Error> for Response {
    fn from(e: Error) -> Response {
        Response::err(code_of(&e), e.message())
    }
}

fn dispatch(service: &PodService, op: Op) -> ApiResult {
    Ok(match op {
        Op::AddPod { pod } => OpResult { pod: Some(service.add(pod)?), ..Default::default() },
        Op::DelPod { container_id, ifname } => OpResult { existed: Some(service.del(&container_id, ifname.as_deref())?), ..Default::default() },
        Op::CheckPod { container_id, ifname } => OpResult { pod: Some(service.check(&container_id, ifname.as_deref())?), ..Default::default() },
        Op::ListPods => OpResult { pods: Some(service.list()?), ..Default::default() },
        Op::Status => {
            let mut status = serde_json::Map::new();
            status.insert("pods".into(), service.count().into());
            status.insert("ready".into(), true.into());
            // Which loader answers: after an upgrade, the new one.
            status.insert("version".into(), crate::version::VERSION.as_str().into());
            status.insert("pid".into(), std::process::id().into());
            OpResult { status: Some(status), ..Default::default() }
        }
    })
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

/// How to take back an ADD whose caller turns out to have given up.
enum Undo {
    /// It meshed a new attachment: remove it (container ID, ifname).
    Remove(String, String),
    /// It replaced an attachment's settings: apply these again.
    Restore(PodSpec),
}

/// Answer one request. For an ADD that changed something, also how to take
/// it back should its caller turn out to have given up.
fn answer(service: &PodService, op: Op, conn: &UnixStream) -> (Response, Option<Undo>) {
    let Op::AddPod { pod } = op else {
        return (dispatch(service, op).map_or_else(|e| e, Response::ok), None);
    };
    // A caller that gave up (CNI's timeout) has its ADD reported as failed:
    // it must have no effect.
    if caller_gone(conn) {
        log::info!("pod {}: its caller hung up before the ADD was served; not meshed", pod.container_id);
        return (internal("the caller hung up"), None);
    }
    let undo = match service.attachment(&pod.container_id, &pod.ifname) {
        None => Some(Undo::Remove(pod.container_id.clone(), pod.ifname.clone())),
        Some(previous) if previous.spec != pod => Some(Undo::Restore(previous.spec)),
        Some(_) => None,
    };
    match dispatch(service, Op::AddPod { pod }) {
        Ok(result) => (Response::ok(result), undo),
        Err(e) => (e, None),
    }
}

/// The requests whose phases are logged (debug): pod changes.
fn timed_label(op: &Op) -> Option<String> {
    match op {
        Op::AddPod { pod } => Some(format!("add_pod {} {}", pod.container_id, pod.ifname)),
        Op::DelPod { container_id, ifname } => Some(format!("del_pod {container_id} {}", ifname.as_deref().unwrap_or("*"))),
        _ => None,
    }
}

/// Serve one connection: request lines in, response lines out. A request
/// is read only once the previous answer is written, so a client that
/// pipelines and never reads stops being served when the socket's buffer is
/// full (what it sends meanwhile waits in the kernel, not here), and is
/// dropped after `deadline` without progress.
fn serve(service: &PodService, stream: UnixStream, deadline: Duration) {
    let _ = stream.set_read_timeout(Some(deadline));
    let _ = stream.set_write_timeout(Some(deadline));
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
        let mut timed = None;
        let (response, undo) = match std::str::from_utf8(&raw) {
            Err(e) => (invalid(format!("request is not UTF-8 ({e})")), None),
            Ok(line) => match meshwire_api::parse_request(line.trim_end()) {
                Err(bad) => (bad, None),
                Ok(req) => {
                    timed = timed_label(&req.op);
                    timing::start();
                    answer(service, req.op, &writer)
                }
            },
        };
        let written = write_response(&mut writer, &response);
        if let (Some(label), Some(took)) = (timed, timing::finish()) {
            log::debug!("api: {label}: {took}");
        }
        if written.is_err() {
            // Its caller is gone and takes the ADD as failed: undo it.
            match undo {
                Some(Undo::Remove(id, ifname)) => match service.del(&id, Some(&ifname)) {
                    Ok(_) => log::info!("pod {id}: its caller was gone when the ADD was answered; taken out again"),
                    Err(e) => log::error!("pod {id}: its caller was gone when the ADD was answered, and taking it out failed: {e}"),
                },
                Some(Undo::Restore(previous)) => {
                    let id = previous.container_id.clone();
                    match service.add(previous) {
                        Ok(_) => log::info!("pod {id}: its caller was gone when the ADD was answered; its previous settings are in force again"),
                        Err(e) => log::error!("pod {id}: its caller was gone when the ADD was answered, and restoring its previous settings failed: {e}"),
                    }
                }
                None => {}
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
pub fn bind(path: &Path) -> Result<UnixListener, Error> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).or_os(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(Error::Invalid(format!("another loader is serving {}; stop it first", path.display())));
        }
        std::fs::remove_file(path).or_os(|| format!("removing stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).or_os(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).or_os(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

/// Accept on one thread and serve each connection on a thread of its own,
/// at most `max_connections` at a time: an idle or slow client ties up only
/// its own thread (and is dropped after [`IDLE`]), never another caller's
/// turn. Pod changes are serialised by the service itself. Returns when the
/// listener fails; the threads live as long as the process.
pub fn spawn(listener: UnixListener, service: Arc<PodService>, max_connections: usize) -> Result<(), Error> {
    spawn_with(listener, service, max_connections, IDLE)
}

/// [`spawn`] with another deadline than [`IDLE`] (tests).
fn spawn_with(listener: UnixListener, service: Arc<PodService>, max_connections: usize, deadline: Duration) -> Result<(), Error> {
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
                    serve(&service, s, deadline);
                    open.fetch_sub(1, Ordering::SeqCst);
                });
                if let Err(e) = started {
                    log::warn!("control connection: cannot start its thread: {e}");
                }
            }
        })
        .or_os(|| "starting API acceptor")?;
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
    use crate::datapath::pins::Pins;
    use crate::datapath::tc::TcAttach;
    use crate::interception::ebpf::EbpfTc;
    use meshwire_api::PodSpec;
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
            let interception = Box::new(EbpfTc::new(&pins, TcAttach::Auto));
            let service = Arc::new(PodService::new(&state, interception).unwrap());
            Fixture { state, service }
        }

        fn exchange(&self, lines: &[&str]) -> Vec<Response> {
            self.exchange_bytes(&lines.iter().map(|l| l.as_bytes()).collect::<Vec<_>>())
        }

        /// Send raw lines over a real socket pair served by `serve`; collect answers.
        fn exchange_bytes(&self, lines: &[&[u8]]) -> Vec<Response> {
            let (mut client, server) = UnixStream::pair().unwrap();
            let service = Arc::clone(&self.service);
            let worker = std::thread::spawn(move || serve(&service, server, IDLE));
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
        assert_eq!(code(&a[0]), Some(ErrorCode::NetnsGone), "{:?}", a[0]);
        assert_eq!(a[1].result.as_ref().unwrap().pods, Some(vec![]));
    }

    /// Each kind of error has its own code; only failed system calls and
    /// the unforeseen are Internal. The message goes as it is.
    #[test]
    fn each_kind_of_error_is_answered_with_its_own_code() {
        let cases = [
            (Error::Invalid("i".into()), ErrorCode::InvalidRequest),
            (Error::NotFound("n".into()), ErrorCode::NotFound),
            (Error::MapFull { map: "mw_pods", message: "mw_pods is full".into() }, ErrorCode::MapFull),
            (Error::NetnsGone("g".into()), ErrorCode::NetnsGone),
            (Error::Inconsistent("c".into()), ErrorCode::Inconsistent),
            (Error::os("opening x", &std::io::Error::from_raw_os_error(libc::EPERM)), ErrorCode::Internal),
            (Error::Internal("b".into()), ErrorCode::Internal),
        ];
        for (e, want) in cases {
            let r = Response::from(e.clone());
            let got = r.error.unwrap();
            assert_eq!((got.code, got.message.as_str()), (want, e.message()), "{e:?}");
        }
    }

    /// A node with a real datapath: installed as `run` installs it, on a
    /// private bpffs and a cgroup of the test's own, and a pod service on it.
    struct Node {
        _fs: crate::testutil::PrivateBpffs,
        _cg: crate::testutil::TempCgroup,
        pins: Pins,
        config: crate::config::Config,
        api: Fixture,
    }

    impl Node {
        fn new() -> Node {
            Node::with("")
        }

        /// With `more` added to the configuration (TOML sections).
        fn with(more: &str) -> Node {
            let fs = crate::testutil::PrivateBpffs::new();
            let cg = crate::testutil::TempCgroup::new();
            let pins = Pins::new(&fs.path().join("meshwire"));
            let config = crate::config::Config::parse(
                "t.toml",
                &format!("[bpf]\npin_dir = \"{}\"\ncgroup = \"{}\"\n{more}", pins.root().display(), cg.path().display()),
            )
            .unwrap();
            crate::datapath::install(&config).unwrap();
            let state = std::env::temp_dir().join(format!("meshwire-control-node-{}-{:?}", std::process::id(), std::thread::current().id()));
            let _ = std::fs::remove_dir_all(&state);
            let service = Arc::new(PodService::new(&state, crate::interception::of(&config, &pins)).unwrap());
            Node { _fs: fs, _cg: cg, pins, config, api: Fixture { state, service } }
        }

        fn add(&self, id: &str, netns: &Path, ifname: &str) -> Response {
            let req = serde_json::json!({"version": 1, "op": "add_pod", "pod": {"container_id": id, "netns": netns, "ifname": ifname, "ips": ["10.9.0.5"]}});
            self.api.exchange(&[&req.to_string()]).remove(0)
        }

        fn pods(&self) -> usize {
            self.pod_cookies().len()
        }

        fn pod_cookies(&self) -> Vec<u64> {
            let mut keys = crate::libbpf::MapFd::open_pinned(&self.pins.map(crate::datapath::pins::MAP_PODS)).unwrap().keys::<u64>().unwrap();
            keys.sort_unstable();
            keys
        }
    }

    impl Drop for Node {
        fn drop(&mut self) {
            let _ = crate::datapath::cleanup(self.pins.root());
        }
    }

    /// A network namespace of the test's own (`ip netns add`), deleted on drop.
    struct TestNetns(String);

    impl TestNetns {
        fn new(tag: &str) -> TestNetns {
            let name = format!("mwapi{}-{tag}", std::process::id());
            let ok = std::process::Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
            assert!(ok, "ip netns add {name} failed (root and iproute2 needed)");
            TestNetns(name)
        }

        fn path(&self) -> PathBuf {
            PathBuf::from(format!("/run/netns/{}", self.0))
        }
    }

    impl Drop for TestNetns {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    /// `ip -n NS ARGS...`
    fn ip_in(ns: &TestNetns, args: &[&str]) {
        let ok = std::process::Command::new("ip").arg("-n").arg(&ns.0).args(args).status().is_ok_and(|s| s.success());
        assert!(ok, "ip -n {} {args:?} failed", ns.0);
    }

    /// Adoption after a restart, on a real datapath with clsact filters: the
    /// datapath installed again (new tc programs, as a new loader loads
    /// them) and a new pod service on the same records adopts more pods
    /// than it has threads, one of them on two interfaces. Each live pod
    /// keeps its entries and gets the new programs on each interface; the
    /// pod whose namespace went is dropped, record and entries; the pod
    /// whose interface went fails alone: its record stays, nothing of it is
    /// in the maps or on bpffs.
    #[test]
    fn adoption_gives_live_pods_the_new_programs_and_drops_the_gone_one() {
        let node = Node::with("[tc]\nattach = \"clsact\"\n");
        let mut nss: Vec<Option<TestNetns>> = (0..9).map(|i| Some(TestNetns::new(&format!("adopt{i}")))).collect();
        let mut cookies = Vec::new();
        for (i, ns) in nss.iter().enumerate() {
            let ns = ns.as_ref().unwrap();
            let ifnames: &[&str] = if i == 8 { &["eth0", "net1"] } else { &["eth0"] };
            for (k, ifname) in ifnames.iter().enumerate() {
                let peer = format!("peer{k}");
                ip_in(ns, &["link", "add", ifname, "type", "veth", "peer", "name", &peer]);
                ip_in(ns, &["link", "set", ifname, "up"]);
                ip_in(ns, &["link", "set", &peer, "up"]);
                let req = serde_json::json!({"version": 1, "op": "add_pod", "pod": {"container_id": format!("a{i}"), "netns": ns.path(), "ifname": ifname, "ips": [format!("10.9.{k}.{i}")]}});
                let r = node.api.exchange(&[&req.to_string()]).remove(0);
                assert!(r.error.is_none(), "a{i} {ifname}: {r:?}");
            }
            cookies.push(crate::system::netns_cookie(&ns.path()).unwrap());
        }
        let tc_prog_ids = || -> Vec<u32> {
            crate::datapath::tc::TC_PROGRAMS.iter().map(|t| crate::libbpf::prog_id(std::os::fd::AsRawFd::as_raw_fd(&crate::libbpf::obj_get(&node.pins.prog(t.program)).unwrap())).unwrap()).collect()
        };
        let before = tc_prog_ids();

        // The restart.
        crate::datapath::install(&node.config).unwrap();
        let now = tc_prog_ids();
        assert!(before.iter().all(|id| !now.contains(id)), "new programs: {before:?} then {now:?}");
        let gone_path = nss[1].as_ref().unwrap().path();
        drop(nss[1].take());
        ip_in(nss[2].as_ref().unwrap(), &["link", "del", "eth0"]);
        let service = PodService::new(&node.api.state, crate::interception::of(&node.config, &node.pins)).unwrap();
        assert_eq!(service.adopt().unwrap(), (8, 1), "a0, a3-a7 and both of a8's kept; a1 dropped; a2 failed");

        let mut ids: Vec<String> = service.list().unwrap().into_iter().map(|r| format!("{}@{}", r.spec.container_id, r.spec.ifname)).collect();
        ids.sort();
        let mut want: Vec<String> = [0, 2, 3, 4, 5, 6, 7, 8].iter().map(|i| format!("a{i}@eth0")).collect();
        want.push("a8@net1".into());
        want.sort();
        assert_eq!(ids, want, "a1's record went with its namespace ({})", gone_path.display());
        let mut live: Vec<u64> = [0, 3, 4, 5, 6, 7, 8].iter().map(|&i| cookies[i]).collect();
        live.sort_unstable();
        assert_eq!(node.pod_cookies(), live, "mw_pods: neither a1 (gone) nor a2 (failed)");
        assert!(!node.pins.pod_dir(cookies[2]).exists() && !node.pins.pod_dir(cookies[1]).exists());
        for i in [0, 3, 4, 5, 6, 7, 8] {
            let ifnames: &[&str] = if i == 8 { &["eth0", "net1"] } else { &["eth0"] };
            for ifname in ifnames {
                let ifname = ifname.to_string();
                let slots = crate::testutil::in_netns(&nss[i].as_ref().unwrap().path(), move || {
                    let ifindex = nix::net::if_::if_nametoindex(ifname.as_str()).unwrap();
                    crate::datapath::tc::TC_PROGRAMS.iter().map(|t| crate::datapath::clsact::slot(ifindex, t.ingress, t.program).unwrap()).collect::<Vec<_>>()
                });
                let want: Vec<_> = now.iter().map(|&id| crate::datapath::clsact::Slot::Ours(id)).collect();
                assert_eq!(slots, want, "a{i}: the new programs on its interfaces");
            }
        }
    }

    /// The codes a CNI plugin (or an operator) can act on, from a real
    /// datapath over the socket: a full mw_pods is MapFull, a namespace that
    /// went is NetnsGone, an interface the pod lacks is NotFound; none of
    /// them leaves a record or a map entry.
    #[test]
    fn the_api_answers_map_full_netns_gone_and_unknown_interface_precisely() {
        let node = Node::new();
        let list = r#"{"version":1,"op":"list_pods"}"#;
        let ns = TestNetns::new("codes");

        // No interface nosuch0 in the pod's namespace.
        let r = node.add("c-if", &ns.path(), "nosuch0");
        assert_eq!(code(&r), Some(ErrorCode::NotFound), "{r:?}");
        assert!(r.error.as_ref().unwrap().message.contains("no interface nosuch0"), "{r:?}");
        assert_eq!(node.api.exchange(&[list])[0].result.as_ref().unwrap().pods, Some(vec![]));
        assert_eq!(node.pods(), 0, "its mw_pods entry went again");

        // The namespace went (its path with it).
        let gone = TestNetns::new("gone");
        let path = gone.path();
        drop(gone);
        let r = node.add("c-gone", &path, "");
        assert_eq!(code(&r), Some(ErrorCode::NetnsGone), "{r:?}");

        // mw_pods full: filled through its pin, as another loader could.
        let pods = crate::libbpf::MapFd::open_pinned(&node.pins.map(crate::datapath::pins::MAP_PODS)).unwrap();
        let capacity = u64::from(pods.info().unwrap().max_entries);
        let flags = crate::datapath::layout::Pod { flags: crate::datapath::layout::POD_F_MESHED };
        for cookie in 1..=capacity {
            pods.update(&(u64::MAX - cookie), &flags).unwrap();
        }
        let r = node.add("c-full", &ns.path(), "");
        assert_eq!(code(&r), Some(ErrorCode::MapFull), "{r:?}");
        assert!(r.error.as_ref().unwrap().message.contains("mw_pods is full"), "{r:?}");
        assert_eq!(node.api.exchange(&[list])[0].result.as_ref().unwrap().pods, Some(vec![]));
        assert_eq!(node.pods() as u64, capacity, "nothing of c-full in mw_pods");
    }

    /// An interface name no record can have is the request's fault, also
    /// when only the records look at it (DEL, CHECK): InvalidRequest, not
    /// Internal.
    #[test]
    fn an_ifname_no_record_can_have_is_an_invalid_request() {
        let f = Fixture::new();
        let a = f.exchange(&[
            r#"{"version":1,"op":"del_pod","container_id":"c","ifname":"a/b"}"#,
            r#"{"version":1,"op":"check_pod","container_id":"c","ifname":".."}"#,
        ]);
        for r in &a {
            assert_eq!(code(r), Some(ErrorCode::InvalidRequest), "{r:?}");
            assert!(r.error.as_ref().unwrap().message.contains("is not an interface name"), "{r:?}");
        }
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
                let _ = tx.send(service.add(spec).map(|_| ()).map_err(|e| Response::from(e).error.unwrap()));
            }
        });
        for p in [&fifo, &file] {
            let e = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| panic!("add with netns {} blocked", p.display())).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{e:?}");
            assert!(e.message.contains("not a network namespace"), "{e:?}");
        }
    }

    /// A client that pipelines requests and never reads an answer: the
    /// loader serves it until the socket's buffer is full, then reads no
    /// more from it (what it sends waits in the kernel: bounded), answers
    /// everyone else meanwhile, and drops it once the deadline passes
    /// without the client reading.
    #[test]
    fn a_client_that_pipelines_and_never_reads_holds_up_no_one_and_is_dropped() {
        use std::os::fd::AsFd;
        let f = Fixture::new();
        let path = f.state.join("api.sock");
        let deadline = Duration::from_secs(2);
        spawn_with(bind(&path).unwrap(), Arc::clone(&f.service), 16, deadline).unwrap();

        let mut hog = UnixStream::connect(&path).unwrap();
        hog.set_nonblocking(true).unwrap();
        // DEL takes the pods' lock, as other clients' changes do.
        let line = b"{\"version\":1,\"op\":\"del_pod\",\"container_id\":\"hog\"}\n".repeat(64);
        let started = std::time::Instant::now();
        let (mut sent, mut off, mut stalled_since) = (0usize, 0usize, None);
        let mut served_others = 0;
        while started.elapsed() < deadline * 4 {
            match hog.write(&line[off..]) {
                Ok(n) => {
                    sent += n;
                    off = (off + n) % line.len();
                    stalled_since = None;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    stalled_since.get_or_insert_with(std::time::Instant::now);
                }
                // Dropped by the loader.
                Err(_) => break,
            }
            // Everyone else is served promptly all along.
            if served_others < 20 {
                let t = std::time::Instant::now();
                let op = if served_others % 2 == 0 { Op::Status } else { Op::DelPod { container_id: "other".into(), ifname: None } };
                let answer = meshwire_api::call(&path, op, Duration::from_secs(5)).expect("another client is served");
                assert!(answer.is_ok(), "{answer:?}");
                assert!(t.elapsed() < Duration::from_secs(1), "another client waited {:?} while one pipelined", t.elapsed());
                served_others += 1;
            }
            // The loader no longer reads from it: dropped within the deadline.
            let mut fds = [nix::poll::PollFd::new(hog.as_fd(), nix::poll::PollFlags::empty())];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10u16));
            if fds[0].revents().is_some_and(|r| r.intersects(nix::poll::PollFlags::POLLHUP | nix::poll::PollFlags::POLLERR)) {
                break;
            }
        }
        assert_eq!(served_others, 20);
        let stalled = stalled_since.expect("the pipelining client was never held back: the loader reads without bound");
        assert!(sent < 16 << 20, "the loader took {sent} bytes of requests it could not answer");
        let mut fds = [nix::poll::PollFd::new(hog.as_fd(), nix::poll::PollFlags::empty())];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
        assert!(
            fds[0].revents().is_some_and(|r| r.intersects(nix::poll::PollFlags::POLLHUP | nix::poll::PollFlags::POLLERR)),
            "the pipelining client was not dropped {:?} after the loader stopped reading from it (deadline {deadline:?})",
            stalled.elapsed()
        );
        assert!(stalled.elapsed() < deadline * 3, "dropped only {:?} after it stalled", stalled.elapsed());
    }

    #[test]
    fn the_socket_is_root_only_and_a_live_one_is_not_stolen() {
        let f = Fixture::new();
        let path = f.state.join("api.sock");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(bind(&path).unwrap_err().message().contains("another loader"));
        drop(listener);
        // Stale socket file (nobody listening): replaced. A child another
        // test forks may hold the listener between its fork and exec (where
        // CLOEXEC closes it), and answer for that instant: try again.
        let mut last = Err(Error::Internal(String::new()));
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
