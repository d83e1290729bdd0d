//! meshwire-cni: a chained CNI plugin (CNI specification 1.1; versions
//! 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0) that asks the node's meshwire-loader,
//! over its control socket, to mesh each new pod.
//!
//! It goes after the plugin that creates the pod's interface (bridge, ptp,
//! a cluster network's own plugin) in a `.conflist`. On ADD it reads the pod's
//! IPv4 addresses from prevResult (the addresses of the interface CNI_IFNAME in
//! the sandbox CNI_NETNS), sends the loader an `add_pod` request and, once the
//! loader answers (the pod is intercepting), prints prevResult unchanged.
//! The full configuration reference, the decisions on what the specification
//! leaves open and the error codes are in `cni/README.md`.
//!
//! Layering: [`env`] and [`config`] turn raw input (environment, stdin) into
//! validated types, [`prev`] reads prevResult, and [`run`] executes a command
//! against a [`Loader`] (the real socket client, or a fake in tests).

use std::io;
use std::path::Path;
use std::time::Duration;

use meshwire_api::{ApiError, ErrorCode, Op, OpResult, PodSpec, Unreachable};
use serde_json::{json, Value};

pub mod annotations;
pub mod config;
pub mod env;
pub mod error;
pub mod prev;

use annotations::Decision;
use config::{FailPolicy, NetConf, PodOverride, Version, LATEST_VERSION, SUPPORTED_VERSIONS};
use env::{Attachment, Command, RawEnv};
use error::{code, CniError};

/// The loader's control API, as meshwire-cni uses it.
pub trait Loader {
    fn call(&self, socket: &Path, timeout: Duration, op: Op) -> Result<Result<OpResult, ApiError>, Unreachable>;
}

/// The real one: [`meshwire_api::call`] over the Unix socket.
pub struct SocketLoader;

impl Loader for SocketLoader {
    fn call(&self, socket: &Path, timeout: Duration, op: Op) -> Result<Result<OpResult, ApiError>, Unreachable> {
        meshwire_api::call(socket, op, timeout)
    }
}

/// What the plugin prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The result (ADD, VERSION), nothing, or a CNI error object.
    pub stdout: String,
    /// Notes for stderr (the runtime logs them).
    pub notes: Vec<String>,
    pub success: bool,
}

/// Runs one CNI command. `read_stdin` is not called without CNI_COMMAND, so a
/// bare run (someone trying the binary) does not wait for input.
pub fn run(env: &RawEnv, read_stdin: &mut dyn FnMut() -> io::Result<Vec<u8>>, loader: &dyn Loader) -> Outcome {
    let mut cx = Cx { notes: Vec::new(), error_version: LATEST_VERSION.to_string() };
    match execute(env, read_stdin, loader, &mut cx) {
        Ok(stdout) => Outcome { stdout, notes: cx.notes, success: true },
        Err(e) => Outcome { stdout: e.to_json(&cx.error_version), notes: cx.notes, success: false },
    }
}

struct Cx {
    notes: Vec<String>,
    /// The version error objects are written in: the request's, once known.
    error_version: String,
}

fn execute(env: &RawEnv, read_stdin: &mut dyn FnMut() -> io::Result<Vec<u8>>, loader: &dyn Loader, cx: &mut Cx) -> Result<String, CniError> {
    if env.command.is_none() {
        return Err(Command::parse(None).unwrap_err());
    }
    // Read stdin even for a command we do not know: the runtime is writing it.
    let bytes = read_stdin().map_err(|e| CniError::new(code::IO, format!("reading the network configuration from stdin: {e}")))?;
    let command = Command::parse(env.command.as_deref())?;
    let text = String::from_utf8(bytes).map_err(|_| CniError::new(code::DECODE, "the network configuration on stdin is not UTF-8"))?;
    if command == Command::Version {
        return version(&text, cx);
    }
    let obj = config::decode(&text)?;
    let version = config::version(&obj)?;
    cx.error_version = version.to_string();
    let needs = match command {
        Command::Check => Version::V0_4_0,
        Command::Gc | Command::Status => Version::V1_1_0,
        _ => Version(0, 0, 0),
    };
    if version < needs {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("{} needs cniVersion {needs} or later; the configuration says {version}", command.as_str()),
        ));
    }
    match command {
        Command::Add | Command::Del | Command::Check => {
            let att = env::attachment(env, command)?;
            let conf = config::parse(&text, &obj)?;
            match command {
                Command::Add => add(&conf, &att, loader, cx),
                Command::Del => del(&conf, &att, loader, cx),
                _ => check(&conf, &att, loader, cx),
            }
        }
        Command::Gc => gc(&config::parse(&text, &obj)?, loader, cx),
        Command::Status => status(&config::parse(&text, &obj)?, loader, cx),
        Command::Version => unreachable!("answered above"),
    }
}

/// VERSION answers in the request's cniVersion (or the newest one meshwire-cni
/// speaks when the request names none or one it does not speak).
fn version(text: &str, cx: &mut Cx) -> Result<String, CniError> {
    let requested = if text.trim().is_empty() {
        None
    } else {
        match config::decode(text)?.get("cniVersion") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(CniError::new(code::INVALID_CONFIG, format!("cniVersion must be a string, not {other}"))),
        }
    };
    let answer = match requested {
        Some(v) if SUPPORTED_VERSIONS.contains(&v.as_str()) => v,
        Some(v) => {
            cx.notes.push(format!("VERSION: cniVersion {v:?} is not supported; answering in {LATEST_VERSION}"));
            LATEST_VERSION.to_string()
        }
        None => LATEST_VERSION.to_string(),
    };
    Ok(json!({ "cniVersion": answer, "supportedVersions": SUPPORTED_VERSIONS }).to_string())
}

const CLONE_NEWNET: libc::c_int = 0x4000_0000;
const NS_GET_NSTYPE: libc::c_ulong = 0xb703; // _IO(0xb7, 0x3)

/// CNI_NETNS must be a network namespace that exists.
fn check_netns(path: &Path) -> Result<(), CniError> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CniError::new(code::UNKNOWN_CONTAINER, format!("CNI_NETNS={}: the network namespace does not exist", path.display())),
        _ => CniError::new(code::INVALID_ENV, format!("CNI_NETNS={}: cannot open it: {e}", path.display())),
    })?;
    let ty = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if ty < 0 {
        return Err(CniError::new(code::INVALID_ENV, format!("CNI_NETNS={} is not a namespace file (like /var/run/netns/NAME or /proc/PID/ns/net)", path.display())));
    }
    if ty != CLONE_NEWNET {
        return Err(CniError::new(code::INVALID_ENV, format!("CNI_NETNS={} is a namespace, but not a network namespace", path.display())));
    }
    Ok(())
}

/// "shop/cart-7d9 (container abc123)", or "container abc123".
fn pod_label(att: &Attachment) -> String {
    match (att.args.pod_namespace(), att.args.pod_name()) {
        (Some(ns), Some(n)) => format!("pod {ns}/{n} (container {})", att.container_id),
        _ => format!("container {}", att.container_id),
    }
}

/// Whether the pod is meshed, and which source decided, for stderr: its
/// per-pod `mesh: false`, `namespaces.exclude` (always), then the pod's
/// annotations when the runtime passed them, else the namespace lists.
/// A malformed `meshwire.io/mesh` is an error.
fn decide(conf: &NetConf, att: &Attachment) -> Result<(bool, String), CniError> {
    if conf.pod_override.mesh == Some(false) {
        return Ok((false, "its per-pod settings say \"mesh\": false".to_string()));
    }
    let namespace = att.args.pod_namespace();
    if let Some(reason) = conf.plugin.namespaces.excluded(namespace) {
        return Ok((false, reason));
    }
    let plugin = &conf.plugin;
    let why_lists = match &conf.annotations {
        Some(a) => match annotations::decide(a, &plugin.sidecar_annotations, &plugin.no_sidecar_annotations)? {
            Decision::Sidecar(why) => return Ok((true, format!("the pod's annotations decide: {why}"))),
            Decision::NoSidecar(why) => return Ok((false, format!("the pod's annotations decide: {why}"))),
            Decision::Undecided => "the namespace lists decide (sidecarAnnotations is empty)",
        },
        None => "the namespace lists decide (the runtime passed no pod annotations)",
    };
    Ok(match plugin.namespaces.skip_reason(namespace) {
        Some(reason) => (false, format!("{why_lists}: {reason}")),
        None => (true, why_lists.to_string()),
    })
}

fn refused(what: &str, e: &ApiError) -> CniError {
    CniError::new(code::LOADER_REFUSED, format!("the meshwire loader refused to {what}: {}", e.message)).details(format!("loader error code {:?}", e.code))
}

/// The loader cannot take the pod: fail closed (an error, try again later) or open.
fn unavailable(conf: &NetConf, pod: &str, why: String, cx: &mut Cx) -> Result<(), CniError> {
    match conf.plugin.fail_policy {
        FailPolicy::Closed => Err(CniError::new(
            code::TRY_AGAIN,
            format!("{pod} is not started: the meshwire loader cannot mesh it, and failPolicy \"closed\" starts no pod un-meshed; start meshwire-loader (or set failPolicy \"open\"): {why}"),
        )
        .details(why)),
        FailPolicy::Open => {
            cx.notes.push(format!("{pod} starts UN-MESHED (failPolicy \"open\"): {why}"));
            Ok(())
        }
    }
}

fn need_prev<'a>(conf: &'a NetConf, command: &str) -> Result<&'a config::PrevResult, CniError> {
    conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            format!("{command} without prevResult: meshwire-cni is a chained plugin; list it after the plugin that creates the pod's interface (bridge, ptp ...) in a .conflist"),
        )
    })
}

fn add(conf: &NetConf, att: &Attachment, loader: &dyn Loader, cx: &mut Cx) -> Result<String, CniError> {
    let prev = need_prev(conf, "ADD")?;
    let netns = att.netns.as_deref().expect("ADD has CNI_NETNS");
    check_netns(netns)?;
    let pod = pod_label(att);
    let (meshed, why) = decide(conf, att)?;
    if !meshed {
        cx.notes.push(format!("{pod} is not meshed: {why}"));
        return Ok(prev.raw.clone());
    }
    let over = pod_settings(conf)?;
    let ips = prev::pod_ips(&prev.value, &att.ifname, netns)?;
    cx.notes.push(format!("{pod} is meshed ({}): {why}", att.ifname));
    if ips.v4.is_empty() && ips.v6.is_empty() {
        cx.notes.push(format!("{pod}: prevResult has no IP address for {} in {}; meshing its outbound traffic only", att.ifname, netns.display()));
    }
    let ex = over.apply(&conf.plugin.exclusions);
    let (include_out_cidrs, include_out_cidrs6, include_out_ports, include_in_ports) = over.includes();
    let spec = PodSpec {
        container_id: att.container_id.clone(),
        netns: netns.to_path_buf(),
        ifname: att.ifname.clone(),
        ips: ips.v4,
        ips6: ips.v6,
        namespace: att.args.pod_namespace().map(str::to_string),
        name: att.args.pod_name().map(str::to_string),
        exclude_outbound_ports: ex.outbound_ports,
        exclude_outbound_cidrs: ex.outbound_cidrs,
        exclude_outbound_cidrs6: ex.outbound_cidrs6,
        exclude_inbound_ports: ex.inbound_ports,
        include_outbound_cidrs: include_out_cidrs,
        include_outbound_cidrs6: include_out_cidrs6,
        include_outbound_ports: include_out_ports,
        include_inbound_ports: include_in_ports,
        // The pod's own setting, else the network's, else the node's (None).
        accelerate: over.accelerate.or(conf.plugin.accelerate),
        dns_capture: over.dns_capture.or(conf.plugin.dns_capture),
        network: Some(conf.name.clone()),
    };
    match loader.call(&conf.plugin.loader_socket, conf.plugin.timeout, Op::AddPod { pod: spec }) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.code == ErrorCode::TryAgain => unavailable(conf, &pod, format!("the loader is not ready: {}", e.message), cx)?,
        Ok(Err(e)) => return Err(refused(&format!("mesh {pod}"), &e)),
        Err(u) => unavailable(conf, &pod, u.to_string(), cx)?,
    }
    Ok(prev.raw.clone())
}

/// The pod's settings: runtimeConfig.meshwire, then args.cni.meshwire, then
/// its annotations (meshwire's, then Istio's). A malformed annotation is an
/// error naming it: the pod is not started with other settings than it asked.
fn pod_settings(conf: &NetConf) -> Result<PodOverride, CniError> {
    let Some(a) = &conf.annotations else { return Ok(conf.pod_override.clone()) };
    let from_annotations = annotations::settings(a)?;
    Ok(conf.pod_override.clone().over(from_annotations))
}

/// A request about one attachment. A loader older than attachments refuses
/// the `ifname` field: ask it again without (it keys pods by container).
fn call_attachment(conf: &NetConf, att: &Attachment, loader: &dyn Loader, op: impl Fn(Option<String>) -> Op) -> Result<Result<OpResult, ApiError>, Unreachable> {
    let (socket, timeout) = (&conf.plugin.loader_socket, conf.plugin.timeout);
    match loader.call(socket, timeout, op(Some(att.ifname.clone()))) {
        Ok(Err(e)) if e.code == ErrorCode::InvalidRequest && e.message.contains("unknown field `ifname`") => loader.call(socket, timeout, op(None)),
        other => other,
    }
}

/// DEL always asks the loader (also for pods the namespace lists exclude:
/// the lists may have changed since ADD) and succeeds when the pod is gone.
fn del(conf: &NetConf, att: &Attachment, loader: &dyn Loader, cx: &mut Cx) -> Result<String, CniError> {
    let pod = pod_label(att);
    let id = &att.container_id;
    match call_attachment(conf, att, loader, |ifname| Op::DelPod { container_id: id.clone(), ifname }) {
        Ok(Ok(_)) => Ok(String::new()),
        Ok(Err(e)) if e.code == ErrorCode::NotFound => Ok(String::new()),
        Ok(Err(e)) if e.code == ErrorCode::TryAgain => {
            cx.notes.push(format!("DEL {pod}: the loader is not ready ({}); succeeding: it drops pods whose network namespace is gone when it starts, and GC removes the rest", e.message));
            Ok(String::new())
        }
        Ok(Err(e)) => Err(refused(&format!("delete {pod}"), &e)),
        Err(u) => {
            cx.notes.push(format!("DEL {pod}: {u}; succeeding: the loader drops pods whose network namespace is gone when it starts, and GC removes the rest"));
            Ok(String::new())
        }
    }
}

fn check(conf: &NetConf, att: &Attachment, loader: &dyn Loader, cx: &mut Cx) -> Result<String, CniError> {
    let prev = need_prev(conf, "CHECK")?;
    let netns = att.netns.as_deref().expect("CHECK has CNI_NETNS");
    check_netns(netns)?;
    let pod = pod_label(att);
    if !decide(conf, att)?.0 {
        return Ok(String::new());
    }
    let ips = prev::pod_ips(&prev.value, &att.ifname, netns)?;
    let failed = |msg: String| CniError::new(code::CHECK_FAILED, format!("CHECK {pod}: {msg}"));
    let id = &att.container_id;
    match call_attachment(conf, att, loader, |ifname| Op::CheckPod { container_id: id.clone(), ifname }) {
        Ok(Ok(r)) => {
            if let Some(rec) = r.pod {
                let mut want = ips.clone();
                let mut have = prev::PodIps { v4: rec.spec.ips.clone(), v6: rec.spec.ips6.clone() };
                for p in [&mut want, &mut have] {
                    p.v4.sort();
                    p.v6.sort();
                }
                if rec.spec.ifname != att.ifname || rec.spec.netns != netns || want != have {
                    return Err(failed(format!(
                        "the loader meshes it as {} in {} with {:?} {:?}, but prevResult says {} in {} with {:?} {:?}",
                        rec.spec.ifname,
                        rec.spec.netns.display(),
                        rec.spec.ips,
                        rec.spec.ips6,
                        att.ifname,
                        netns.display(),
                        ips.v4,
                        ips.v6
                    )));
                }
            }
            Ok(String::new())
        }
        Ok(Err(e)) if e.code == ErrorCode::NotFound && conf.plugin.fail_policy == FailPolicy::Open => {
            cx.notes.push(format!("CHECK {pod}: not meshed ({}); failPolicy \"open\" accepts that", e.message));
            Ok(String::new())
        }
        Ok(Err(e)) if matches!(e.code, ErrorCode::NotFound | ErrorCode::Inconsistent) => Err(failed(e.message)),
        Ok(Err(e)) if e.code == ErrorCode::TryAgain => unavailable(conf, &pod, format!("the loader is not ready: {}", e.message), cx).map(|_| String::new()),
        Ok(Err(e)) => Err(refused(&format!("check {pod}"), &e)),
        Err(u) => unavailable(conf, &pod, u.to_string(), cx).map(|_| String::new()),
    }
}

/// GC: every pod this network meshed (spec.network is its name) whose
/// (container ID, interface) is not in cni.dev/valid-attachments is deleted;
/// pods of other networks and pods registered by hand are not this GC's.
/// All are tried before an error.
fn gc(conf: &NetConf, loader: &dyn Loader, cx: &mut Cx) -> Result<String, CniError> {
    let valid = conf.valid_attachments.as_ref().ok_or_else(|| {
        CniError::new(code::INVALID_CONFIG, "GC without cni.dev/valid-attachments: refusing to guess which pods are still in use")
    })?;
    let (socket, timeout) = (&conf.plugin.loader_socket, conf.plugin.timeout);
    let unavailable = |why: String| CniError::new(code::TRY_AGAIN, format!("GC: the meshwire loader is unavailable: {why}")).details(why);
    let pods = match loader.call(socket, timeout, Op::ListPods) {
        Ok(Ok(r)) => r.pods.unwrap_or_default(),
        Ok(Err(e)) if e.code == ErrorCode::TryAgain => return Err(unavailable(e.message)),
        Ok(Err(e)) => return Err(refused("list pods for GC", &e)),
        Err(u) => return Err(unavailable(u.to_string())),
    };
    let mut failures = Vec::new();
    let mut transient = true;
    for p in pods {
        let key = (p.spec.container_id.clone(), p.spec.ifname.clone());
        if p.spec.network.as_deref() != Some(conf.name.as_str()) || valid.contains(&key) {
            continue;
        }
        match loader.call(socket, timeout, Op::DelPod { container_id: p.spec.container_id.clone(), ifname: Some(p.spec.ifname.clone()) }) {
            Ok(Ok(_)) => cx.notes.push(format!("GC: removed stale container {} ({})", key.0, key.1)),
            Ok(Err(e)) if e.code == ErrorCode::NotFound => {}
            Ok(Err(e)) => {
                transient &= e.code == ErrorCode::TryAgain;
                failures.push(format!("{}: {}", key.0, e.message));
            }
            Err(u) => failures.push(format!("{}: {u}", key.0)),
        }
    }
    if failures.is_empty() {
        return Ok(String::new());
    }
    let code = if transient { code::TRY_AGAIN } else { code::LOADER_REFUSED };
    Err(CniError::new(code, format!("GC could not remove {} stale pod(s)", failures.len())).details(failures.join("; ")))
}

fn status(conf: &NetConf, loader: &dyn Loader, cx: &mut Cx) -> Result<String, CniError> {
    let why = match loader.call(&conf.plugin.loader_socket, conf.plugin.timeout, Op::Status) {
        Ok(Ok(_)) => return Ok(String::new()),
        Ok(Err(e)) => format!("the loader answers: {}", e.message),
        Err(u) => u.to_string(),
    };
    match conf.plugin.fail_policy {
        FailPolicy::Closed => Err(CniError::new(
            code::NOT_AVAILABLE,
            format!("meshwire-cni cannot mesh pods: {why}; with failPolicy \"closed\" every ADD fails until meshwire-loader is up"),
        )
        .details(why)),
        FailPolicy::Open => {
            cx.notes.push(format!("STATUS: {why}; new pods start un-meshed (failPolicy \"open\")"));
            Ok(String::new())
        }
    }
}

#[cfg(test)]
mod tests;
