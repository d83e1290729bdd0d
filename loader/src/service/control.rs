//! The loader's control API: a Unix socket (root only) speaking the
//! `meshwire-api` protocol, its connections served by a fixed pool of
//! threads (bounded, idle ones dropped, a deadline on every wait for a
//! client), so no client can hold up another. This is the transport only: every request is answered by the
//! [`PodService`].

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(test)]
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

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
        Op::DelPod { container_id, ifname } => {
            OpResult { existed: Some(service.del_answering_first(&container_id, ifname.as_deref())?), ..Default::default() }
        }
        Op::CheckPod { container_id, ifname } => OpResult { pod: Some(service.check(&container_id, ifname.as_deref())?), ..Default::default() },
        Op::ListPods => OpResult { pods: Some(service.list()?), ..Default::default() },
        Op::Status => {
            let mut status = serde_json::Map::new();
            status.insert("pods".into(), service.count().into());
            status.insert("ready".into(), true.into());
            // Which loader answers: after an upgrade, the new one.
            status.insert("version".into(), crate::version::VERSION.as_str().into());
            status.insert("pid".into(), std::process::id().into());
            // Attachments kept at the start without a look at their namespace.
            let unchecked: Vec<serde_json::Value> = service
                .unchecked()
                .into_iter()
                .map(|u| serde_json::json!({"container_id": u.container_id, "ifname": u.ifname, "netns": u.netns, "reason": u.error.to_string()}))
                .collect();
            status.insert("unchecked".into(), unchecked.into());
            OpResult { status: Some(status), ..Default::default() }
        }
    })
}

/// A connection is dropped after this long without progress: an idle one
/// without a request, one whose answer the client does not read.
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

/// Threads that answer requests. Pod changes take the service's lock one at
/// a time anyway; more than one thread lets `status`, `pods` and CHECK go
/// past a change in progress, and a slow request (a long pod list) past the
/// others.
const WORKERS: usize = 4;

/// The listening socket's token in the epoll set; connections count from 1.
const LISTENER: u64 = 0;

/// How the listening socket waits: for one connect, which wakes one thread.
fn listening() -> EpollEvent {
    EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT, LISTENER)
}

/// One client connection, either waiting for its client (in the server's
/// `waiting`) or in the hands of the one thread serving it (while one of
/// its requests is read or answered): never both. A request is read only
/// once the previous answer is written, so a client that pipelines and
/// never reads stops being served when the socket's buffer is full (what
/// it sends meanwhile waits in the kernel, not here), and is dropped after
/// the deadline without progress.
struct Conn {
    token: u64,
    /// Non-blocking: no read or write ever waits in a thread.
    stream: UnixStream,
    /// In the epoll set (after its first wait for the client).
    registered: bool,
    /// What was read of the next request (at most MAX_LINE + 1 bytes).
    input: Vec<u8>,
    /// The answer being written, and how much of it is.
    output: Vec<u8>,
    written: usize,
    /// How to take back the ADD answered in `output` if the answer cannot
    /// be written (its caller is gone and takes the ADD as failed).
    undo: Option<Undo>,
    /// The end of the input was read, or the request was refused as too
    /// long: close once the answer is written.
    closing: bool,
    /// The last byte read or written.
    progress: Instant,
    /// Counts the connection as open while it lives.
    _open: OpenSlot,
}

/// One of the `max_connections` places, given back when the connection goes.
struct OpenSlot(Arc<AtomicUsize>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What one step of writing the pending answer came to.
enum Flushed {
    Done,
    /// The socket's buffer is full: wait until the client reads.
    Blocked,
    Failed,
}

/// What one step of reading the next request came to.
enum Reading {
    Line(Vec<u8>),
    /// Nothing complete yet: wait for the client.
    Wait,
    /// The client closed its end, nothing left to answer.
    End,
    /// More than MAX_LINE bytes without a newline.
    Overlong,
}

/// The control API's connections and the threads that serve them: a fixed
/// pool of [`WORKERS`] threads, all waiting on one epoll instance that holds
/// the listening socket and every connection whose client has yet to send
/// or to read. Whichever thread an event wakes serves it: a connect wakes
/// one, which accepts the connection and reads and answers its request
/// itself (no hand-off to another thread);
/// a connection whose client is not ready goes back into the epoll set, and
/// the thread its client's next step wakes goes on with it.
///
/// - Every event is served by one thread: the listening socket and the
///   connections are armed with EPOLLONESHOT, and each `epoll_wait` takes
///   one event. The listening socket is armed again as soon as its thread
///   has accepted one connection, before that thread reads the request: a
///   connect meanwhile wakes another thread.
/// - No thread is started per connection, and no connection holds a
///   thread while its client is idle or slow: an idle client costs a file
///   descriptor and its buffers, nothing else.
/// - Every wait ends after a tick at most; after each, the first thread to
///   find a sweep of the deadlines due drops the connections that made no
///   progress within the deadline: they go whether the threads are idle or
///   all busy.
/// - A request that panics costs its connection, not its thread.
struct Server {
    service: Arc<PodService>,
    epoll: Epoll,
    /// The API socket, in the epoll set with EPOLLONESHOT (tests: none).
    listener: Option<UnixListener>,
    /// Connections waiting for their client, by token (in the epoll set
    /// with EPOLLONESHOT: each wakes one thread once per wait).
    waiting: Mutex<HashMap<u64, Box<Conn>>>,
    next_token: AtomicU64,
    open: Arc<AtomicUsize>,
    max_connections: usize,
    /// A connection without progress this long is dropped.
    deadline: Duration,
    /// How often the deadlines are looked at (a connection goes at most
    /// this late), and when they last were.
    tick: Duration,
    swept: Mutex<Instant>,
    #[cfg(test)]
    stopped: AtomicBool,
}

impl Server {
    /// Start the threads; with `listener`, they accept its connections.
    fn start(listener: Option<UnixListener>, service: Arc<PodService>, max_connections: usize, deadline: Duration) -> Result<Arc<Server>, Error> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).or_os(|| "creating the API's epoll instance")?;
        if let Some(l) = &listener {
            l.set_nonblocking(true).or_os(|| "making the API socket non-blocking")?;
            epoll.add(l, listening()).or_os(|| "watching the API socket")?;
        }
        let server = Arc::new(Server {
            service,
            epoll,
            listener,
            waiting: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(LISTENER + 1),
            open: Arc::new(AtomicUsize::new(0)),
            max_connections,
            deadline,
            // A connection goes at most a quarter of its deadline late.
            tick: (deadline / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
            swept: Mutex::new(Instant::now()),
            #[cfg(test)]
            stopped: AtomicBool::new(false),
        });
        for i in 0..WORKERS {
            let server = Arc::clone(&server);
            std::thread::Builder::new().name(format!("api-worker-{i}")).spawn(move || server.work()).or_os(|| "starting an API worker")?;
        }
        Ok(server)
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<u64, Box<Conn>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A thread of the pool: serve what one wait brings, then the deadlines
    /// if they are due, and again. A request that panics costs its
    /// connection (dropped as the panic unwinds), not the thread.
    fn work(&self) {
        // One event per wait: the others are left to the other threads.
        let mut events = [EpollEvent::empty()];
        loop {
            #[cfg(test)]
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            let ready = match self.epoll.wait(&mut events, u16::try_from(self.tick.as_millis()).unwrap_or(1000)) {
                Ok(1) => Some(events[0].data()),
                Ok(_) | Err(nix::errno::Errno::EINTR) => None,
                Err(e) => {
                    log::error!("control API: epoll_wait: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    None
                }
            };
            let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                match ready {
                    Some(LISTENER) => self.accept(),
                    Some(token) => {
                        let conn = self.waiting().remove(&token);
                        // None: the sweep took it meanwhile.
                        if let Some(conn) = conn {
                            self.turn(conn);
                        }
                    }
                    None => {}
                }
                self.sweep();
            }));
            if served.is_err() {
                log::error!("control connection: serving a request panicked; its connection was dropped");
            }
        }
    }

    /// A connect woke this thread: accept one connection, arm the listening
    /// socket again (the next connect wakes another thread), then serve the
    /// connection here: its request is likely there already (a CNI plugin
    /// writes it right after connecting).
    fn accept(&self) {
        let Some(listener) = &self.listener else { return };
        let accepted = loop {
            match listener.accept() {
                Ok((s, _)) => break Some(s),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break None,
                Err(e) => {
                    log::warn!("control socket accept: {e}");
                    // EMFILE and the like: do not spin.
                    std::thread::sleep(Duration::from_millis(10));
                    break None;
                }
            }
        };
        if let Err(e) = self.epoll.modify(listener, &mut listening()) {
            log::error!("control API: cannot wait for connections any more ({e}); restart the loader");
        }
        if let Some(conn) = accepted.and_then(|s| self.admit(s)) {
            self.turn(conn);
        }
    }

    /// A new connection: root's, and within `max_connections`, or refused
    /// with an answer saying why.
    fn admit(&self, mut s: UnixStream) -> Option<Box<Conn>> {
        if !peer_is_root(&s) {
            let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = write_response(&mut s, &Response::err(ErrorCode::InvalidRequest, "only root may use the meshwire loader's API"));
            return None;
        }
        if self.open.fetch_add(1, Ordering::SeqCst) >= self.max_connections {
            self.open.fetch_sub(1, Ordering::SeqCst);
            let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = write_response(&mut s, &internal(format!("the loader serves {} connections already; try again", self.max_connections)));
            return None;
        }
        let open = OpenSlot(Arc::clone(&self.open));
        if let Err(e) = s.set_nonblocking(true) {
            log::warn!("control connection: {e}");
            return None;
        }
        Some(Box::new(Conn {
            token: self.next_token.fetch_add(1, Ordering::Relaxed),
            stream: s,
            registered: false,
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            undo: None,
            closing: false,
            progress: Instant::now(),
            _open: open,
        }))
    }

    /// Drop the connections that made no progress within the deadline, if
    /// a tick has passed since the last look (by any thread).
    fn sweep(&self) {
        {
            let mut swept = self.swept.lock().unwrap_or_else(|p| p.into_inner());
            if swept.elapsed() < self.tick {
                return;
            }
            *swept = Instant::now();
        }
        let expired: Vec<Box<Conn>> = {
            let mut waiting = self.waiting();
            let gone: Vec<u64> = waiting.iter().filter(|(_, c)| c.progress.elapsed() >= self.deadline).map(|(t, _)| *t).collect();
            gone.iter().filter_map(|t| waiting.remove(t)).collect()
        };
        for conn in expired {
            log::debug!("control connection {}: no progress in {:?}; dropped", conn.token, self.deadline);
            self.close(conn);
        }
    }

    /// Back into the epoll set until the client can be read from (`out`:
    /// written to) again, or hangs up.
    fn park(&self, conn: Box<Conn>, out: bool) {
        let flags = EpollFlags::EPOLLONESHOT | EpollFlags::EPOLLRDHUP | if out { EpollFlags::EPOLLOUT } else { EpollFlags::EPOLLIN };
        let mut event = EpollEvent::new(flags, conn.token);
        let mut conn = conn;
        // Under the lock: no thread can take it (woken, or expired) before
        // it is in the map.
        let mut waiting = self.waiting();
        let armed = if conn.registered { self.epoll.modify(&conn.stream, &mut event) } else { self.epoll.add(&conn.stream, event) };
        match armed {
            Ok(()) => {
                conn.registered = true;
                waiting.insert(conn.token, conn);
            }
            Err(e) => {
                drop(waiting);
                log::warn!("control connection: cannot wait for its client: {e}");
                self.close(conn);
            }
        }
    }

    /// The connection goes; an ADD whose answer was not written is taken
    /// back first.
    fn close(&self, mut conn: Box<Conn>) {
        match conn.undo.take() {
            Some(Undo::Remove(id, ifname)) => match self.service.del(&id, Some(&ifname)) {
                Ok(_) => log::info!("pod {id}: its caller was gone when the ADD was answered; taken out again"),
                Err(e) => log::error!("pod {id}: its caller was gone when the ADD was answered, and taking it out failed: {e}"),
            },
            Some(Undo::Restore(previous)) => {
                let id = previous.container_id.clone();
                match self.service.add(previous) {
                    Ok(_) => log::info!("pod {id}: its caller was gone when the ADD was answered; its previous settings are in force again"),
                    Err(e) => log::error!("pod {id}: its caller was gone when the ADD was answered, and restoring its previous settings failed: {e}"),
                }
            }
            None => {}
        }
    }

    /// Write what is left of the answer, as far as the socket takes it.
    fn flush(conn: &mut Conn) -> Flushed {
        while conn.written < conn.output.len() {
            match conn.stream.write(&conn.output[conn.written..]) {
                Ok(0) => return Flushed::Failed,
                Ok(n) => {
                    conn.written += n;
                    conn.progress = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(_) => return Flushed::Failed,
            }
        }
        conn.output.clear();
        conn.written = 0;
        // Written whole: the ADD stands.
        conn.undo = None;
        Flushed::Done
    }

    /// The next request line, as far as the client has sent it; at most
    /// MAX_LINE + 1 bytes are ever held.
    fn read_line(conn: &mut Conn) -> Reading {
        loop {
            if let Some(end) = conn.input.iter().position(|&b| b == b'\n') {
                if end + 1 > MAX_LINE {
                    return Reading::Overlong;
                }
                let rest = conn.input.split_off(end + 1);
                return Reading::Line(std::mem::replace(&mut conn.input, rest));
            }
            if conn.input.len() > MAX_LINE {
                return Reading::Overlong;
            }
            let room = MAX_LINE + 1 - conn.input.len();
            let mut chunk = [0u8; 16 * 1024];
            let want = room.min(chunk.len());
            match conn.stream.read(&mut chunk[..want]) {
                // The client's last request may lack its newline.
                Ok(0) if conn.input.is_empty() => return Reading::End,
                Ok(0) => {
                    conn.closing = true;
                    return Reading::Line(std::mem::take(&mut conn.input));
                }
                Ok(n) => {
                    conn.input.extend_from_slice(&chunk[..n]);
                    conn.progress = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Reading::Wait,
                Err(_) => return Reading::End,
            }
        }
    }

    /// One step of a connection: finish writing the last answer, then read
    /// and answer one request. A client with more requests already read
    /// waits until it can take the next answer (at once, usually), behind
    /// the other clients ready meanwhile.
    fn turn(&self, mut conn: Box<Conn>) {
        match Self::flush(&mut conn) {
            Flushed::Done => {}
            Flushed::Blocked => return self.park(conn, true),
            Flushed::Failed => return self.close(conn),
        }
        if conn.closing {
            return self.close(conn);
        }
        let raw = match Self::read_line(&mut conn) {
            Reading::Line(raw) => raw,
            Reading::Wait => return self.park(conn, false),
            Reading::End => return self.close(conn),
            Reading::Overlong => {
                // Answered, then the connection goes.
                conn.closing = true;
                conn.input = Vec::new();
                conn.output = response_line(&invalid(format!("request longer than {MAX_LINE} bytes")));
                return match Self::flush(&mut conn) {
                    Flushed::Blocked => self.park(conn, true),
                    Flushed::Done | Flushed::Failed => self.close(conn),
                };
            }
        };
        let mut timed = None;
        let (response, undo) = match std::str::from_utf8(&raw) {
            Err(e) => (invalid(format!("request is not UTF-8 ({e})")), None),
            Ok(line) => match meshwire_api::parse_request(line.trim_end()) {
                Err(bad) => (bad, None),
                Ok(req) => {
                    timed = timed_label(&req.op);
                    timing::start();
                    answer(&self.service, req.op, &conn.stream)
                }
            },
        };
        conn.output = response_line(&response);
        conn.undo = undo;
        let flushed = Self::flush(&mut conn);
        if let (Some(label), Some(took)) = (timed.as_ref(), timing::finish()) {
            log::debug!("api: {label}: {took}");
        }
        match flushed {
            Flushed::Done if conn.closing => self.close(conn),
            Flushed::Done => {
                let more = conn.input.contains(&b'\n');
                self.park(conn, more)
            }
            Flushed::Blocked => self.park(conn, true),
            Flushed::Failed => self.close(conn),
        }
    }

    /// Serve `stream` as an accepted connection (tests: one end of a pair).
    #[cfg(test)]
    fn serve(&self, stream: UnixStream) {
        if let Some(conn) = self.admit(stream) {
            self.park(conn, false);
        }
    }

    /// Tests: the threads end, each after its current wait (a tick at
    /// most); the connections still waiting go with the server.
    #[cfg(test)]
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

fn response_line(r: &Response) -> Vec<u8> {
    let mut line = serde_json::to_vec(r).expect("responses serialize");
    line.push(b'\n');
    line
}
fn write_response(w: &mut UnixStream, r: &Response) -> std::io::Result<()> {
    w.write_all(&response_line(r))
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

/// Serve the API on `listener` ([`Server`]: [`WORKERS`] threads waiting
/// on one epoll instance, no thread per connection), at most
/// `max_connections` connections open at a time (past that a connection is
/// answered with an error and closed); a connection without progress for
/// [`IDLE`] is dropped: an idle or slow client holds a file descriptor,
/// never another caller's turn. Pod changes are serialised by the service
/// itself. The threads live as long as the process.
pub fn spawn(listener: UnixListener, service: Arc<PodService>, max_connections: usize) -> Result<(), Error> {
    spawn_with(listener, service, max_connections, IDLE).map(|_| ())
}

/// [`spawn`] with another deadline than [`IDLE`] (tests).
fn spawn_with(listener: UnixListener, service: Arc<PodService>, max_connections: usize, deadline: Duration) -> Result<Arc<Server>, Error> {
    Server::start(Some(listener), service, max_connections, deadline)
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
        /// Serves the connections `exchange` makes, as the daemon's API does.
        api: Arc<Server>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let state = std::env::temp_dir().join(format!("meshwire-control-{}-{:?}", std::process::id(), std::thread::current().id()));
            let _ = std::fs::remove_dir_all(&state);
            // No datapath behind these pins: the requests tested never reach the maps.
            let pins = Pins::new(&state.join("no-bpffs"));
            let interception = Box::new(EbpfTc::new(&pins, TcAttach::Auto));
            let service = Arc::new(PodService::new(&state, interception).unwrap());
            Fixture::on(state, service)
        }

        fn on(state: PathBuf, service: Arc<PodService>) -> Fixture {
            let api = Server::start(None, Arc::clone(&service), 64, IDLE).unwrap();
            Fixture { state, service, api }
        }

        fn exchange(&self, lines: &[&str]) -> Vec<Response> {
            self.exchange_bytes(&lines.iter().map(|l| l.as_bytes()).collect::<Vec<_>>())
        }

        /// Send raw lines over a real socket pair served by the API's threads; collect answers.
        fn exchange_bytes(&self, lines: &[&[u8]]) -> Vec<Response> {
            let (mut client, server) = UnixStream::pair().unwrap();
            self.api.serve(server);
            for l in lines {
                // The server may hang up first (an overlong line): then the
                // rest of the write fails and the answers already sent count.
                if client.write_all(l).and_then(|_| client.write_all(b"\n")).is_err() {
                    break;
                }
            }
            let _ = client.shutdown(std::net::Shutdown::Write);
            // A server that hangs up with some of a line unread (an overlong
            // one) resets the connection (ECONNRESET) once its answers are read.
            BufReader::new(client).lines().map_while(Result::ok).map(|l| serde_json::from_str(&l).unwrap()).collect()
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            self.api.stop();
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
            Node { _fs: fs, _cg: cg, pins, config, api: Fixture::on(state, service) }
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
        assert_eq!(service.adopt().unwrap(), (8, 1, 0), "a0, a3-a7 and both of a8's kept; a1 dropped; a2 failed");

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

    /// Adoption after a restart with the loader out of file descriptors: a
    /// live pod's namespace cannot be opened, so adopting it answers
    /// Unknown, naming its path and EMFILE, not Gone; nothing of it is
    /// touched (its entries and clsact filters stay and check out once
    /// descriptors can be had), and its record stays. Then, with
    /// descriptors, a pod service adopts it (kept). In a child run: the
    /// limit is the process's.
    #[test]
    fn adoption_out_of_descriptors_keeps_a_live_pod() {
        if !crate::testutil::in_child_process("service::control::tests::adoption_out_of_descriptors_keeps_a_live_pod", "child: kept unchecked") {
            return;
        }
        let node = Node::with("[tc]\nattach = \"clsact\"\n");
        let ns = TestNetns::new("nofile");
        ip_in(&ns, &["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"]);
        ip_in(&ns, &["link", "set", "eth0", "up"]);
        let r = node.add("n0", &ns.path(), "eth0");
        assert!(r.error.is_none(), "{r:?}");
        let service = PodService::new(&node.api.state, crate::interception::of(&node.config, &node.pins)).unwrap();
        let record = service.list().unwrap().remove(0);
        let pod = crate::interception::pods::MeshedPod::of(&record.spec, record.netns_cookie, Default::default());
        let interception = crate::interception::of(&node.config, &node.pins);
        interception.check(&pod, &[]).unwrap(); // its maps opened, before the limit

        let limit = crate::testutil::NofileLimit::new();
        limit.set(limit.lowest_free());
        let adopted = interception.adopt(&[crate::interception::Adopting { pod: pod.clone(), siblings: vec![] }]);
        limit.restore();

        let want = crate::system::NetnsError::Open { netns: ns.path(), errno: libc::EMFILE };
        assert_eq!(adopted, vec![crate::interception::Adopted::Unknown(want)], "not Gone: the namespace is alive");
        interception.check(&pod, &[]).unwrap();
        assert_eq!(node.pod_cookies(), vec![record.netns_cookie], "its mw_pods entry stays");
        assert_eq!(service.list().unwrap(), vec![record.clone()], "its record stays");
        assert_eq!(service.adopt().unwrap(), (1, 0, 0), "with descriptors: adopted");
        println!("child: kept unchecked");
    }

    /// The node's interception, its adoption run out of file descriptors
    /// (as a loader at its open-files limit): the pod maps are opened
    /// first (a CHECK of each pod), then the limit is lowered to the lowest
    /// free descriptor for the adoption, and put back. In a child run.
    struct OutOfDescriptorsAtAdoption(Box<dyn crate::interception::Interception>);

    impl crate::interception::Interception for OutOfDescriptorsAtAdoption {
        fn apply(&self, pod: &crate::interception::pods::MeshedPod, siblings: &[crate::interception::pods::MeshedPod]) -> Result<(), Error> {
            self.0.apply(pod, siblings)
        }
        fn apply_here(&self, pod: &crate::interception::pods::MeshedPod, siblings: &[crate::interception::pods::MeshedPod]) -> Result<(), Error> {
            self.0.apply_here(pod, siblings)
        }
        fn remove(&self, pod: &crate::interception::pods::MeshedPod, siblings: &[crate::interception::pods::MeshedPod]) -> Result<(), Error> {
            self.0.remove(pod, siblings)
        }
        fn check(&self, pod: &crate::interception::pods::MeshedPod, siblings: &[crate::interception::pods::MeshedPod]) -> Result<(), Error> {
            self.0.check(pod, siblings)
        }
        fn sweep(&self, known: &[crate::interception::pods::MeshedPod]) -> Result<(), Error> {
            self.0.sweep(known)
        }
        fn adopt(&self, pods: &[crate::interception::Adopting]) -> Vec<crate::interception::Adopted> {
            for a in pods {
                self.0.check(&a.pod, &a.siblings).unwrap();
            }
            let limit = crate::testutil::NofileLimit::new();
            limit.set(limit.lowest_free());
            let adopted = self.0.adopt(pods);
            limit.restore();
            adopted
        }
    }

    /// Pods adoption keeps unchecked (out of descriptors: their namespaces
    /// alive but not opened) are shown where operators look, with what
    /// failed, until a CHECK looks: a pod service on a real datapath adopts
    /// two pods so, then over the API socket `list_pods` gives each its
    /// `unchecked` (what `pods --json` prints; `pods` shows it as a line of
    /// the pod's) and `status` lists both (its text a line each); the pod
    /// records on disk do not hold it. A CHECK of the live one passes and
    /// one of the pod whose namespace went since is Inconsistent: neither
    /// is unchecked then. In a child run: the limit is the process's.
    #[test]
    fn pods_kept_unchecked_are_listed_and_in_status_until_a_check_looks() {
        if !crate::testutil::in_child_process("service::control::tests::pods_kept_unchecked_are_listed_and_in_status_until_a_check_looks", "child: unchecked shown") {
            return;
        }
        let node = Node::new();
        let (live, going) = (TestNetns::new("unchecked-live"), TestNetns::new("unchecked-going"));
        for (id, ns, ip) in [("u-live", &live, "10.9.0.5"), ("u-going", &going, "10.9.0.6")] {
            let req = serde_json::json!({"version": 1, "op": "add_pod", "pod": {"container_id": id, "netns": ns.path(), "ips": [ip]}});
            let r = node.api.exchange(&[&req.to_string()]).remove(0);
            assert!(r.error.is_none(), "{id}: {r:?}");
        }
        // The restart, its adoption out of descriptors.
        let interception = Box::new(OutOfDescriptorsAtAdoption(crate::interception::of(&node.config, &node.pins)));
        let service = Arc::new(PodService::new(&node.api.state, interception).unwrap());
        assert_eq!(service.adopt().unwrap(), (0, 0, 2), "both kept unchecked");
        let api = Fixture::on(node.api.state.clone(), Arc::clone(&service));
        let why = |ns: &TestNetns| crate::system::NetnsError::Open { netns: ns.path(), errno: libc::EMFILE }.to_string();
        assert!(why(&live).ends_with(": Too many open files (os error 24)"), "{}", why(&live));
        let list = || api.exchange(&[r#"{"version":1,"op":"list_pods"}"#]).remove(0).result.unwrap().pods.unwrap();
        let status = || api.exchange(&[r#"{"version":1,"op":"status"}"#]).remove(0).result.unwrap().status.unwrap();

        let pods = list();
        let unchecked: Vec<(&str, Option<&str>)> = pods.iter().map(|p| (p.spec.container_id.as_str(), p.unchecked.as_deref())).collect();
        assert_eq!(unchecked, [("u-going", Some(why(&going).as_str())), ("u-live", Some(why(&live).as_str()))]);
        let json = serde_json::to_value(&pods).unwrap();
        assert_eq!(json[1]["unchecked"], serde_json::Value::from(why(&live)), "pods --json");
        let text = crate::views::inspect::describe_pods(&pods, None, |_| None, false);
        assert!(text.starts_with("2 meshed pod(s), 2 unchecked\n"), "{text}");
        let line = format!("\npod u-live\n  unchecked         {}; kept as it was when the loader started, not steered again; a CHECK (or a restart) looks again\n", why(&live));
        assert!(text.contains(&line), "{text}");
        // `pod list`: a line per attachment, an unchecked one saying so at its end.
        let short = crate::views::inspect::describe_pod_list(&pods);
        let rows: Vec<&str> = short.lines().collect();
        assert_eq!(rows.len(), 3, "a heading, then a line per attachment: {short}");
        for (row, pod, ns, ip) in [(rows[1], &pods[0], &going, "10.9.0.6"), (rows[2], &pods[1], &live, "10.9.0.5")] {
            let columns: Vec<String> = row.split_whitespace().take(5).map(str::to_string).collect();
            let want = [pod.spec.container_id.clone(), pod.netns_cookie.to_string(), ip.to_string(), "-".to_string(), ns.path().display().to_string()];
            assert_eq!(columns, want, "{short}");
            let note = format!("{}  unchecked: {}; kept as it was when the loader started, not steered again; a CHECK (or a restart) looks again", ns.path().display(), why(ns));
            assert!(row.ends_with(&note), "{row}");
        }
        let s = status();
        let entry = |id: &str, ns: &TestNetns| serde_json::json!({"container_id": id, "ifname": "", "netns": ns.path(), "reason": why(ns)});
        assert_eq!(s["unchecked"], serde_json::json!([entry("u-going", &going), entry("u-live", &live)]));
        let text = crate::views::inspect::describe_loader(Some(&s), Path::new("/run/test.sock"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[2], format!("unchecked pod u-live on -, netns {}: {}; kept as it was when the loader started, not steered again; a CHECK (or a restart) looks again", live.path().display(), why(&live)));
        for entry in std::fs::read_dir(node.api.state.join("pods")).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(!text.contains(r#""unchecked""#), "a record holds it: {text}");
        }

        // CHECKs look: the live pod passes, the gone one is inconsistent.
        drop(going);
        let check = |id: &str| api.exchange(&[&format!(r#"{{"version":1,"op":"check_pod","container_id":"{id}"}}"#)]).remove(0);
        let r = check("u-live");
        assert!(r.error.is_none(), "{r:?}");
        assert_eq!(list().iter().map(|p| p.unchecked.is_some()).collect::<Vec<_>>(), [true, false], "u-going still unchecked");
        let r = check("u-going");
        assert_eq!(code(&r), Some(ErrorCode::Inconsistent), "{r:?}");
        assert!(list().iter().all(|p| p.unchecked.is_none()));
        assert_eq!(status()["unchecked"], serde_json::json!([]));
        assert!(!crate::views::inspect::describe_pods(&list(), None, |_| None, false).contains("  unchecked "));
        let short = crate::views::inspect::describe_pod_list(&list());
        assert!(short.lines().count() == 3 && !short.contains("  unchecked: "), "{short}");
        println!("child: unchecked shown");
    }

    /// `meshwire-loader cleanup` takes pods out newest first, on a real
    /// datapath with clsact filters: the pods meshed in the order c, a, d
    /// (over the socket), then b by a pod service opened afterwards on the
    /// same records (as another loader process would, which carries the
    /// order on from them), go in the order b, d, a, c, neither their
    /// container IDs' order nor the records directory's; every qdisc and map
    /// entry goes with them.
    #[test]
    fn cleanup_takes_pods_out_newest_first() {
        let node = Node::with("[tc]\nattach = \"clsact\"\n");
        let ids = ["c", "a", "d", "b"];
        let nss: Vec<TestNetns> = ids.iter().map(|id| TestNetns::new(&format!("order-{id}"))).collect();
        for ns in &nss {
            ip_in(ns, &["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"]);
            ip_in(ns, &["link", "set", "eth0", "up"]);
            ip_in(ns, &["link", "set", "peer0", "up"]);
        }
        let spec = |k: usize| serde_json::json!({"container_id": ids[k], "netns": nss[k].path(), "ifname": "eth0", "ips": [format!("10.9.0.{}", k + 1)]});
        for k in 0..3 {
            let r = node.api.exchange(&[&serde_json::json!({"version": 1, "op": "add_pod", "pod": spec(k)}).to_string()]).remove(0);
            assert!(r.error.is_none(), "{}: {r:?}", ids[k]);
        }
        let service = PodService::new(&node.api.state, crate::interception::of(&node.config, &node.pins)).unwrap();
        service.add(serde_json::from_value(spec(3)).unwrap()).unwrap();
        let mut seqs: Vec<(String, u64)> = service.list().unwrap().into_iter().map(|r| (r.spec.container_id, r.seq)).collect();
        seqs.sort();
        assert_eq!(seqs, [("a", 2), ("b", 4), ("c", 1), ("d", 3)].map(|(i, n)| (i.to_string(), n)));
        assert_eq!(node.pods(), 4);

        let cleanup = PodService::new(&node.api.state, crate::interception::for_cleanup(&node.config, &node.pins)).unwrap();
        let (removed, failed) = cleanup.del_all().unwrap();
        assert_eq!(failed, Vec::<String>::new());
        let order: Vec<&str> = removed.iter().map(|r| r.spec.container_id.as_str()).collect();
        assert_eq!(order, ["b", "d", "a", "c"]);
        assert_eq!(node.pods(), 0);
        for (id, ns) in ids.iter().zip(&nss) {
            let out = std::process::Command::new("tc").args(["-n", &ns.0, "qdisc", "show", "dev", "eth0"]).output().unwrap();
            assert!(out.status.success(), "tc -n {}: {out:?}", ns.0);
            assert!(!String::from_utf8_lossy(&out.stdout).contains("clsact"), "{id}: {}", String::from_utf8_lossy(&out.stdout));
        }
    }

    /// An ADD whose answer cannot be written (its caller stopped reading,
    /// as meshwire-cni does at its timeout) is taken back once the
    /// connection goes: a new attachment is removed again (record and
    /// mw_pods entry), one whose settings it replaced has its previous
    /// ones back. The fast twin of cni_e2e's case 8b.
    #[test]
    fn an_add_whose_answer_cannot_be_written_is_taken_back() {
        let node = Node::new();
        let ns = TestNetns::new("late");
        // Sends an ADD of pod "late", stops reading (shutdown(SHUT_RD): not
        // a hang-up, so it is served) and waits until the API closes the
        // connection, which it does once the undo is done.
        let deaf_add = |ports: &[u16]| {
            let req = serde_json::json!({"version": 1, "op": "add_pod", "pod": {"container_id": "late", "netns": ns.path(), "ifname": "", "ips": ["10.9.0.5"], "exclude_outbound_ports": ports}});
            let (mut client, server) = UnixStream::pair().unwrap();
            client.write_all(format!("{req}\n").as_bytes()).unwrap();
            client.shutdown(std::net::Shutdown::Read).unwrap();
            node.api.api.serve(server);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !caller_gone(&client) {
                assert!(Instant::now() < deadline, "the API did not close the connection of an ADD it could not answer");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let records = || node.api.service.list().unwrap();

        deaf_add(&[23]);
        assert_eq!(records(), vec![], "a new pod whose ADD was not answered stays");
        assert_eq!(node.pods(), 0, "its mw_pods entry stays");

        let r = node.add("late", &ns.path(), "");
        assert!(r.error.is_none(), "{r:?}");
        let before = records();
        assert_eq!(before.len(), 1);
        deaf_add(&[23]);
        let after = records();
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(after[0].spec, before[0].spec, "the replaced settings are not back");
        assert!(after[0].seq > before[0].seq + 1, "replaced, then restored: {after:?}");
        assert_eq!(node.pods(), 1);
    }

    /// A pod whose record cannot be written (here its temporary file's
    /// name is taken by a directory) is refused and leaves nothing: the
    /// datapath entries installed before the write are taken out again.
    #[test]
    fn an_add_whose_record_cannot_be_written_leaves_nothing() {
        let node = Node::new();
        let ns = TestNetns::new("nowrite");
        let blocker = node.api.state.join("pods").join(crate::service::records::temp_name("nowrite", ""));
        std::fs::create_dir_all(blocker.join("x")).unwrap();
        let r = node.add("nowrite", &ns.path(), "");
        assert_eq!(code(&r), Some(ErrorCode::Internal), "{r:?}");
        assert!(r.error.as_ref().unwrap().message.contains("writing pod record"), "{r:?}");
        assert_eq!(node.api.service.list().unwrap(), vec![]);
        assert_eq!(node.pods(), 0, "its mw_pods entry stays");
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

    /// One map's pin missing from a pinned datapath (removed by hand, a
    /// half-cleaned bpffs), on a real datapath: each entry point names the
    /// map, the pin directory and what to do, and changes nothing. Over the
    /// API, as the CNI plugin calls the daemon: without mw_pod_ips an ADD is
    /// refused (Internal) leaving no record and no map entry, a DEL (also
    /// the service's whole removal) and a CHECK of a meshed pod are refused
    /// and it stays meshed (record,
    /// mw_pods and mw_pod_ips entries, tc pins). The views: `stats`,
    /// `status`, `trace` and `maps` without mw_stats; `pods` without mw_pods
    /// (its text shown, then the error). Each pin is put back (the map held
    /// by the test) before the next goes. Then a start as `run` makes it
    /// pins the programs' mw_pod_ips again, adoption keeps the pod's address
    /// in it and an ADD goes through; `cleanup` with a pin missing takes
    /// every pod out.
    #[test]
    fn a_missing_map_pin_is_named_by_every_entry_point_and_changes_nothing() {
        use crate::datapath::pins::{self as p, PinnedError};
        use crate::views::{inspect, trace};
        let node = Node::new();
        let (ns, other) = (TestNetns::new("pinless"), TestNetns::new("pinless-new"));
        ip_in(&ns, &["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"]);
        ip_in(&ns, &["link", "set", "eth0", "up"]);
        let r = node.add("m-kept", &ns.path(), "eth0");
        assert!(r.error.is_none(), "{r:?}");
        let cookie = crate::system::netns_cookie(&ns.path()).unwrap();
        let missing = |map: &'static str| PinnedError::Missing { pin: p::Pinned::Map(map), pin_dir: node.pins.root().to_path_buf() };
        // The pin goes; the test holds the map to pin it back.
        let unpin = |map: &'static str| {
            let held = node.pins.open_map(map).unwrap();
            std::fs::remove_file(node.pins.map(map)).unwrap();
            held
        };
        let repin = |map: &'static str, held: crate::libbpf::MapFd| crate::libbpf::obj_pin(&held, &node.pins.map(map)).unwrap();
        let ask = |api: &Fixture, line: String| api.exchange(&[&line]).remove(0);
        let list = |api: &Fixture| -> Vec<String> {
            ask(api, r#"{"version":1,"op":"list_pods"}"#.into()).result.unwrap().pods.unwrap().into_iter().map(|p| p.spec.container_id).collect()
        };
        let add_other = |api: &Fixture| ask(api, serde_json::json!({"version": 1, "op": "add_pod", "pod": {"container_id": "m-new", "netns": other.path(), "ips": ["10.9.0.6"]}}).to_string());
        let pod_pins = || -> std::collections::BTreeSet<PathBuf> { std::fs::read_dir(node.pins.pod_dir(cookie)).unwrap().map(|e| e.unwrap().path()).collect() };
        let tc_pins = pod_pins();
        assert!(!tc_pins.is_empty());

        let ips = unpin(p::MAP_POD_IPS);
        let want = missing(p::MAP_POD_IPS).to_string();
        assert!(want.starts_with(&format!("map mw_pod_ips is not pinned under {}, though the datapath's other maps are", node.pins.maps_dir().display())), "{want}");
        assert!(want.contains("Restart `meshwire-loader run` with this pin directory: it pins again the mw_pod_ips the attached programs still use, with what it holds"), "{want}");
        let refused = |r: Response| r.error.map(|e| (e.code, e.message));
        assert_eq!(refused(add_other(&node.api)), Some((ErrorCode::Internal, want.clone())), "ADD");
        assert_eq!(list(&node.api), ["m-kept"], "no record of m-new");
        assert_eq!(node.pod_cookies(), [cookie], "nothing of m-new in mw_pods");
        let del = ask(&node.api, r#"{"version":1,"op":"del_pod","container_id":"m-kept"}"#.into());
        assert_eq!(refused(del), Some((ErrorCode::Internal, want.clone())), "DEL");
        // So is the whole removal (the undo of an unanswered ADD).
        let whole = node.api.service.del("m-kept", None);
        assert!(matches!(&whole, Err(e) if e.message().contains(&want)), "DEL by the service: {whole:?}");
        let check = ask(&node.api, r#"{"version":1,"op":"check_pod","container_id":"m-kept"}"#.into());
        assert_eq!(refused(check), Some((ErrorCode::Internal, want.clone())), "CHECK");
        assert_eq!((list(&node.api), node.pod_cookies(), pod_pins()), (vec!["m-kept".to_string()], vec![cookie], tc_pins.clone()), "m-kept stays meshed");
        assert_eq!(ips.raw_keys().unwrap().len(), 1, "m-kept's address stays in the map the programs use");
        repin(p::MAP_POD_IPS, ips);

        let stats = unpin(p::MAP_STATS);
        let want = Error::from(missing(p::MAP_STATS));
        assert!(matches!(&want, Error::Internal(m) if m.starts_with("map mw_stats is not pinned under ")), "{want:?}");
        assert_eq!(inspect::counters(&node.pins).unwrap_err(), want, "stats");
        assert_eq!(inspect::print_status(&node.pins, "loader").unwrap_err(), want, "status");
        let opts = trace::TraceOpts { json: false, netns_cookie: None, count: Some(1), duration: Some(Duration::from_millis(10)), backlog: false };
        assert_eq!(trace::run(&node.pins, &opts).unwrap_err(), want, "trace");
        assert_eq!(node.pins.require_all_maps().map_err(Error::from), Err(want), "maps");
        repin(p::MAP_STATS, stats);

        let pods = unpin(p::MAP_PODS);
        assert_eq!(inspect::require_datapath(&node.pins), Ok(()), "a datapath is pinned there: the map is named, not the datapath said to be absent");
        let records = node.api.service.list().unwrap();
        let (text, read) = inspect::pods_view(&records, &node.pins, false);
        assert!(text.contains("\npod m-kept\n") && text.contains("  acceleration      - (no mw_pods entry)"), "{text}");
        assert_eq!(read, Err(Error::from(missing(p::MAP_PODS))), "pods");
        repin(p::MAP_PODS, pods);
        assert_eq!(inspect::pods_view(&records, &node.pins, false).1, Ok(()));

        // The repair the message names: a start as `run` makes it, pinning
        // again the map the programs hold (m-kept's address still in it).
        let id = unpin(p::MAP_POD_IPS).id(); // no longer held by the test
        assert_eq!(crate::datapath::unpinned_maps(&node.pins), [p::MAP_POD_IPS]);
        crate::datapath::install(&node.config).unwrap();
        assert_eq!(node.pins.require_all_maps(), Ok(()));
        assert_eq!(node.pins.open_map(p::MAP_POD_IPS).unwrap().id(), id, "the same mw_pod_ips");
        let service = Arc::new(PodService::new(&node.api.state, crate::interception::of(&node.config, &node.pins)).unwrap());
        assert_eq!(service.adopt().unwrap(), (1, 0, 0));
        assert_eq!(node.pins.open_map(p::MAP_POD_IPS).unwrap().raw_keys().unwrap().len(), 1, "m-kept's address is in the new mw_pod_ips");
        let api = Fixture::on(node.api.state.clone(), Arc::clone(&service));
        let r = add_other(&api);
        assert!(r.error.is_none(), "{r:?}");

        // `cleanup` with a pin missing: every pod goes, then every pin.
        drop(unpin(p::MAP_INCL_CIDR4));
        let cleanup = PodService::new(&node.api.state, crate::interception::for_cleanup(&node.config, &node.pins)).unwrap();
        let (removed, failed) = cleanup.del_all().unwrap();
        assert_eq!(failed, Vec::<String>::new());
        let mut removed: Vec<String> = removed.into_iter().map(|r| r.spec.container_id).collect();
        removed.sort();
        assert_eq!(removed, ["m-kept", "m-new"]);
        assert!(!node.pins.pod_dir(cookie).exists(), "m-kept's tc pins went");
        crate::datapath::cleanup(node.pins.root()).unwrap();
        assert!(!node.pins.any_map_pinned());
    }

    /// A tc program's pin missing under progs/ (removed by hand) while the
    /// datapath runs: an ADD with an interface, over the API as the CNI
    /// plugin calls the daemon, is refused (Internal) with exactly
    /// PinnedError::Missing's text, naming the program, and leaves no
    /// record, no map entry and no tc pins; `status` shows the program "not
    /// pinned", then fails with the same text. A start as `run` makes pins
    /// the program again, `status` shows it pinned and the same ADD goes
    /// through.
    #[test]
    fn a_missing_tc_program_pin_is_named_and_a_start_pins_it_again() {
        use crate::datapath::pins::{Pinned, PinnedError};
        use crate::datapath::tc::TC_PROGRAMS;
        use crate::views::inspect;
        let node = Node::new();
        let ns = TestNetns::new("progless");
        ip_in(&ns, &["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"]);
        ip_in(&ns, &["link", "set", "eth0", "up"]);
        let cookie = crate::system::netns_cookie(&ns.path()).unwrap();
        // The second: the first one's pin opens, then this one is missing.
        let program = TC_PROGRAMS[1].program;
        std::fs::remove_file(node.pins.prog(program)).unwrap();

        let want = PinnedError::Missing { pin: Pinned::TcProgram(program), pin_dir: node.pins.root().to_path_buf() }.to_string();
        let r = node.add("p-tc", &ns.path(), "eth0");
        assert_eq!(r.error.map(|e| (e.code, e.message)), Some((ErrorCode::Internal, want.clone())));
        assert!(node.api.service.list().unwrap().is_empty(), "no record");
        assert_eq!(node.pods(), 0, "nothing in mw_pods");
        assert!(!node.pins.pod_dir(cookie).exists(), "no tc pins");

        // `status`: each tc program's row, then the missing one named.
        let tc_rows = |text: &str| -> Vec<(String, String)> {
            TC_PROGRAMS
                .iter()
                .map(|t| {
                    let row = text.lines().find(|l| l.split_whitespace().next() == Some(t.program)).unwrap_or_else(|| panic!("no row of {}: {text}", t.program));
                    let attached = row[t.program.len()..].trim_start().split("  ").next().unwrap_or_default();
                    (t.program.to_string(), attached.to_string())
                })
                .collect()
        };
        let state = |p: &str| if p == program { "not pinned" } else { "pinned, per pod" };
        let (text, read) = inspect::status_view(&node.pins, "loader");
        assert_eq!(read, Err(Error::Internal(want)), "status: {text}");
        assert_eq!(tc_rows(&text), TC_PROGRAMS.iter().map(|t| (t.program.to_string(), state(t.program).to_string())).collect::<Vec<_>>(), "{text}");
        assert!(text.contains("\nmap ") && text.contains("\nmw_pods "), "the maps are shown before the error: {text}");

        crate::datapath::install(&node.config).unwrap();
        assert!(node.pins.prog(program).exists());
        let (text, read) = inspect::status_view(&node.pins, "loader");
        assert_eq!(read, Ok(()), "status after the start: {text}");
        assert_eq!(tc_rows(&text), TC_PROGRAMS.iter().map(|t| (t.program.to_string(), "pinned, per pod".to_string())).collect::<Vec<_>>(), "{text}");
        let r = node.add("p-tc", &ns.path(), "eth0");
        assert!(r.error.is_none(), "{r:?}");
        assert_eq!(node.pod_cookies(), [cookie]);
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

    /// The API's threads are a fixed few ([`WORKERS`]): clients that hold
    /// connections open and idle, and clients that send half a request and
    /// stall, many more of each than there are threads, hold up no one:
    /// another client is answered at once, and a stalled one that finishes
    /// its request is answered then.
    #[test]
    fn idle_and_stalled_clients_beyond_the_threads_hold_up_no_one() {
        let f = Fixture::new();
        let path = f.state.join("api.sock");
        spawn_with(bind(&path).unwrap(), Arc::clone(&f.service), 256, Duration::from_secs(20)).unwrap();
        let idle: Vec<UnixStream> = (0..WORKERS * 8).map(|_| UnixStream::connect(&path).unwrap()).collect();
        let half = br#"{"version":1,"op":"#;
        let mut stalled: Vec<UnixStream> = (0..WORKERS * 8)
            .map(|_| {
                let mut s = UnixStream::connect(&path).unwrap();
                s.write_all(half).unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        for _ in 0..5 {
            let t = Instant::now();
            let answer = meshwire_api::call(&path, Op::Status, Duration::from_secs(5)).expect("another client is served");
            assert!(answer.is_ok(), "{answer:?}");
            assert!(t.elapsed() < Duration::from_secs(1), "a status call took {:?} beside idle and stalled clients", t.elapsed());
        }
        for s in &mut stalled {
            s.write_all(b"\"list_pods\"}\n").unwrap();
        }
        for s in stalled {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).unwrap();
            let r: Response = serde_json::from_str(&line).unwrap();
            assert_eq!(r.result.and_then(|r| r.pods), Some(vec![]), "{line}");
        }
        drop(idle);
    }

    /// At most `max_connections` open at once: one more is answered with an
    /// error naming the limit and closed; a connection that goes gives its
    /// place back. A connection idle past the deadline is dropped.
    #[test]
    fn connections_are_bounded_and_an_idle_one_is_dropped_after_the_deadline() {
        let f = Fixture::new();
        let path = f.state.join("api.sock");
        let deadline = Duration::from_secs(2);
        spawn_with(bind(&path).unwrap(), Arc::clone(&f.service), 2, deadline).unwrap();
        let first = UnixStream::connect(&path).unwrap();
        let opened = Instant::now();
        let _second = UnixStream::connect(&path).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // The refusal is written at once, before any request.
        let third = UnixStream::connect(&path).unwrap();
        third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        BufReader::new(&third).read_line(&mut line).unwrap();
        let refused: Response = serde_json::from_str(&line).unwrap();
        assert!(refused.error.as_ref().is_some_and(|e| e.message.contains("serves 2 connections already")), "{line}");

        // The idle ones go once the deadline passes without progress.
        first.set_read_timeout(Some(deadline * 3)).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!((&first).read(&mut buf).unwrap(), 0, "dropped: end of file");
        let after = opened.elapsed();
        assert!(after >= deadline && after < deadline * 2, "an idle connection was dropped after {after:?} (deadline {deadline:?})");
        // Their places are free again.
        let served = (0..50).any(|_| {
            let ok = matches!(meshwire_api::call(&path, Op::Status, Duration::from_secs(5)), Ok(Ok(_)));
            if !ok {
                std::thread::sleep(Duration::from_millis(20));
            }
            ok
        });
        assert!(served, "no place was given back");
    }

    /// Clients that connect at once, many more than the threads, are all
    /// served, each by the thread its connect woke: the listening socket is
    /// armed again after each accept, so a connect wakes another thread
    /// while the first reads its request. Ten rounds of a fresh connection
    /// each, two requests on it, answered in order.
    #[test]
    fn clients_that_connect_at_once_are_all_served() {
        let f = Fixture::new();
        let path = f.state.join("api.sock");
        spawn_with(bind(&path).unwrap(), Arc::clone(&f.service), 256, Duration::from_secs(20)).unwrap();
        let clients = WORKERS * 8;
        let start = Arc::new(std::sync::Barrier::new(clients));
        let threads: Vec<_> = (0..clients)
            .map(|i| {
                let (path, start) = (path.clone(), Arc::clone(&start));
                std::thread::spawn(move || {
                    for round in 0..10 {
                        start.wait();
                        let mut s = UnixStream::connect(&path).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let del = format!(r#"{{"version":1,"op":"del_pod","container_id":"c{i}-{round}"}}"#);
                        s.write_all(format!("{del}\n{{\"version\":1,\"op\":\"status\"}}\n").as_bytes()).unwrap();
                        let mut lines = BufReader::new(s).lines();
                        let mut next = || -> Response {
                            let line = lines.next().unwrap_or_else(|| panic!("client {i}, round {round}: no answer")).unwrap();
                            serde_json::from_str(&line).unwrap()
                        };
                        let (del, status) = (next(), next());
                        assert_eq!(del.result.and_then(|r| r.existed), Some(false), "client {i}, round {round}");
                        assert_eq!(status.result.and_then(|r| r.status).map(|s| s["ready"].clone()), Some(true.into()), "client {i}, round {round}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    /// The deadlines are kept also while every thread is kept busy (a
    /// client per thread and more, calling without a pause: their waits
    /// hardly ever time out): an idle connection is dropped within the
    /// deadline and a tick or two, and the busy clients are served all along.
    #[test]
    fn an_idle_connection_is_dropped_while_every_thread_is_busy() {
        let f = Fixture::new();
        let path = f.state.join("api.sock");
        let deadline = Duration::from_secs(1);
        spawn_with(bind(&path).unwrap(), Arc::clone(&f.service), 64, deadline).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let busy: Vec<_> = (0..WORKERS * 2)
            .map(|_| {
                let (path, done) = (path.clone(), Arc::clone(&done));
                std::thread::spawn(move || {
                    let mut calls = 0;
                    while !done.load(Ordering::SeqCst) {
                        let answer = meshwire_api::call(&path, Op::Status, Duration::from_secs(5)).expect("a busy client is served");
                        assert!(answer.is_ok(), "{answer:?}");
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let idle = UnixStream::connect(&path).unwrap();
        let opened = Instant::now();
        idle.set_read_timeout(Some(deadline * 4)).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!((&idle).read(&mut buf).unwrap(), 0, "dropped: end of file");
        let after = opened.elapsed();
        done.store(true, Ordering::SeqCst);
        let calls: Vec<usize> = busy.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(after >= deadline && after < deadline * 2, "an idle connection was dropped after {after:?} (deadline {deadline:?}) among busy ones");
        assert!(calls.iter().all(|&n| n >= 10), "busy clients' calls meanwhile: {calls:?}");
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
