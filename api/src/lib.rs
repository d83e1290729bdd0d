//! meshwire's control protocol, shared by the loader (server) and its clients
//! (the CNI plugin, the loader's own subcommands).
//!
//! Transport: a Unix stream socket (default [`DEFAULT_SOCKET`], root only).
//! The client writes one request as a single line of JSON and reads one
//! response line; a connection may carry several request/response pairs in
//! turn. Every message carries `"version": PROTOCOL_VERSION`; a server
//! answers a version it does not speak with [`ErrorCode::UnsupportedVersion`].
//!
//! ```text
//! -> {"version":1,"op":"add_pod","pod":{"container_id":"c1","netns":"/run/netns/p1","ifname":"eth0","ips":["10.1.0.5"]}}
//! <- {"version":1,"ok":true,"result":{"pod":{...,"netns_cookie":4099}}}
//! -> {"version":1,"op":"del_pod","container_id":"c1"}
//! <- {"version":1,"ok":false,"error":{"code":"not_found","message":"no pod c1"}}
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod cidr;
pub use cidr::{split_families, Cidr4, Cidr6};
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub const PROTOCOL_VERSION: u32 = 1;
pub const DEFAULT_SOCKET: &str = "/run/meshwire/loader.sock";
/// Longest request line a server reads; longer ones are refused.
pub const MAX_LINE: usize = 64 * 1024;

/// What a pod asks of the datapath. (`container_id`, `ifname`) (CNI_CONTAINERID,
/// CNI_IFNAME) is the attachment's identity: DEL may arrive without a netns,
/// and a pod on two networks has two attachments in one network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    pub container_id: String,
    /// The pod's network namespace (CNI_NETNS), e.g. /var/run/netns/cni-...
    pub netns: PathBuf,
    /// The pod's interface inside that namespace (CNI_IFNAME); tc attaches
    /// there for inbound traffic from other nodes. Empty: no tc attachment
    /// (outbound and same-node inbound interception only).
    #[serde(default)]
    pub ifname: String,
    /// The pod's IPv4 addresses (from the previous plugin's result).
    #[serde(default)]
    pub ips: Vec<Ipv4Addr>,
    /// Its IPv6 addresses: inbound IPv6 to them is steered with
    /// `interception.ipv6 = "intercept"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips6: Vec<Ipv6Addr>,
    /// Kubernetes namespace and name, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Per-pod exclusions, on top of the node-wide lists.
    #[serde(default)]
    pub exclude_outbound_ports: Vec<u16>,
    /// CIDRs as "a.b.c.d/len" (or a bare address) on the wire.
    #[serde(default)]
    pub exclude_outbound_cidrs: Vec<Cidr4>,
    /// IPv6 CIDRs ("fd00::/8", or a bare address), steered by
    /// `interception.ipv6 = "intercept"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_outbound_cidrs6: Vec<Cidr6>,
    #[serde(default)]
    pub exclude_inbound_ports: Vec<u16>,
    /// Outbound, Istio's `includeOutboundIPRanges`: Some(list) steers only
    /// connections to these CIDRs (and to `include_outbound_ports`); None
    /// steers all ("*"). Exclusions win over both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_outbound_cidrs: Option<Vec<Cidr4>>,
    /// The IPv6 ranges of the same include list ("fd00::/8", or a bare
    /// address), for native IPv6 (`interception.ipv6 = "intercept"`); only
    /// with `include_outbound_cidrs` (which restricts both families: an IPv6
    /// destination in none of these goes direct, unless its port is included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_outbound_cidrs6: Vec<Cidr6>,
    /// Outbound, Istio's `includeOutboundPorts`: ports steered whatever the
    /// destination address; they matter only with `include_outbound_cidrs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_outbound_ports: Vec<u16>,
    /// Inbound, Istio's `includeInboundPorts`: Some(list) redirects only these
    /// ports to the sidecar; None redirects all ("*").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_inbound_ports: Option<Vec<u16>>,
    /// Socket-level acceleration of this pod's mesh hops, when the node runs
    /// it (`[acceleration] enabled`): Some(true) on, Some(false) off, None
    /// the node's choice (`[acceleration] pods`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerate: Option<bool>,
    /// DNS capture: this pod's DNS to port 53 goes to its sidecar's DNS
    /// proxy (`[dns] port`): Some(true) on, Some(false) off, None the node's
    /// choice (`[dns] capture`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_capture: Option<bool>,
    /// The CNI network that meshed the pod (its configuration's `name`);
    /// None for pods registered by hand. CNI GC only collects its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// A registered pod, as the loader records it.
// No deny_unknown_fields with flatten (serde cannot combine them); the
// flattened PodSpec is strict itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    #[serde(flatten)]
    pub spec: PodSpec,
    pub netns_cookie: u64,
    /// When the attachment was meshed among the node's others: one more than
    /// the highest in the records then (0 in records of loaders before it,
    /// which are older than any that has one). Taking many pods out goes from
    /// the highest down: each pod's clsact qdisc puts its tc blocks on one
    /// list for the whole machine, which removing a qdisc walks from the
    /// newest entry (docs/benchmarking.md, Node scale).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u64,
    /// In `list_pods` answers only, never in the records on disk: the
    /// loader's start kept this attachment without being able to look at
    /// its network namespace (what failed, e.g. out of file descriptors),
    /// as it was before, not steered again. Gone once a CHECK has looked at
    /// the namespace (or a restart has). Older clients ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchecked: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Mesh a pod. Answers only once the pod is intercepting. Adding the same
    /// container again with the same spec succeeds (idempotent).
    AddPod { pod: PodSpec },
    /// Stop meshing a pod's attachment `ifname` (every attachment of the
    /// container when None) and remove everything of it. Succeeds when it is
    /// unknown (CNI DEL is idempotent): `result.existed` says which.
    DelPod {
        container_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ifname: Option<String>,
    },
    /// Is the attachment still fully set up (maps, tc links, record)? With
    /// no `ifname`, the container's only attachment.
    CheckPod {
        container_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ifname: Option<String>,
    },
    ListPods,
    /// Liveness/readiness: the daemon's view of its datapath.
    Status,
}

// Strictness comes from Op (deny_unknown_fields cannot be combined with flatten).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request could not be parsed or failed validation.
    InvalidRequest,
    UnsupportedVersion,
    NotFound,
    /// The pod is not (fully) set up: CHECK's failure.
    Inconsistent,
    /// A datapath map has no room for the pod's entries: nothing changed;
    /// pods must go (or the capacity be raised) before it can be meshed.
    MapFull,
    /// The pod's network namespace is gone (or its path names another one).
    NetnsGone,
    /// Transient: the daemon is starting or overloaded; try again later.
    TryAgain,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OpResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<Vec<PodRecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existed: Option<bool>,
    /// Status: free-form facts (mode, programs attached, map fill ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub version: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<OpResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Response {
    pub fn ok(result: OpResult) -> Response {
        Response { version: PROTOCOL_VERSION, ok: true, result: Some(result), error: None }
    }

    pub fn err(code: ErrorCode, message: impl Into<String>) -> Response {
        Response { version: PROTOCOL_VERSION, ok: false, result: None, error: Some(ApiError { code, message: message.into() }) }
    }

    pub fn into_result(self) -> Result<OpResult, ApiError> {
        match (self.ok, self.error) {
            (true, _) => Ok(self.result.unwrap_or_default()),
            (false, Some(e)) => Err(e),
            (false, None) => Err(ApiError { code: ErrorCode::Internal, message: "error response without an error".into() }),
        }
    }
}

/// Parse one request line, with an error response ready when it is bad.
pub fn parse_request(line: &str) -> Result<Request, Response> {
    // Read the version first, so a newer client gets the right error.
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| Response::err(ErrorCode::InvalidRequest, format!("request is not JSON: {e}")))?;
    match v.get("version").and_then(|v| v.as_u64()) {
        Some(n) if n == PROTOCOL_VERSION as u64 => {}
        Some(n) => {
            return Err(Response::err(
                ErrorCode::UnsupportedVersion,
                format!("protocol version {n} is not supported; this loader speaks version {PROTOCOL_VERSION}"),
            ))
        }
        None => return Err(Response::err(ErrorCode::InvalidRequest, "request has no numeric \"version\"")),
    }
    let req: Request =
        serde_json::from_value(v.clone()).map_err(|e| Response::err(ErrorCode::InvalidRequest, format!("invalid request: {e}")))?;
    // serde cannot refuse unknown top-level fields through the flattened,
    // tagged Op: anything the parsed request would not write back is unknown.
    let known = serde_json::to_value(&req).expect("requests serialize");
    if let (Some(given), Some(known)) = (v.as_object(), known.as_object()) {
        if let Some(k) = given.keys().find(|k| !known.contains_key(*k)) {
            return Err(Response::err(ErrorCode::InvalidRequest, format!("invalid request: unknown field `{k}`")));
        }
    }
    Ok(req)
}

/// Failure to talk to the loader at all (as opposed to an error answer).
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A blocking client: one request, one response.
pub fn call(socket: &Path, op: Op, timeout: Duration) -> Result<Result<OpResult, ApiError>, Unreachable> {
    let unreachable = |what: &str, e: std::io::Error| Unreachable(format!("meshwire loader at {}: {what}: {e}", socket.display()));
    let mut stream = UnixStream::connect(socket).map_err(|e| unreachable("connect", e))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| unreachable("set timeout", e))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| unreachable("set timeout", e))?;
    let mut line = serde_json::to_string(&Request { version: PROTOCOL_VERSION, op }).expect("requests serialize");
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(|e| unreachable("send", e))?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer).map_err(|e| unreachable("receive", e))?;
    if answer.is_empty() {
        return Err(Unreachable(format!("meshwire loader at {} closed the connection without answering", socket.display())));
    }
    let resp: Response = serde_json::from_str(&answer)
        .map_err(|e| Unreachable(format!("meshwire loader at {} sent an unreadable answer: {e}", socket.display())))?;
    Ok(resp.into_result())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field set, so that round trips cover them all.
    fn spec() -> PodSpec {
        PodSpec {
            include_outbound_cidrs: Some(vec!["10.0.0.0/8".parse().unwrap()]),
            include_outbound_cidrs6: vec!["fd00:50::/32".parse().unwrap()],
            include_outbound_ports: vec![443],
            include_inbound_ports: Some(vec![]),
            dns_capture: Some(true),
            ..testing::pod("c1")
        }
    }

    #[test]
    fn a_cidr_that_does_not_parse_refuses_the_request_naming_it() {
        for (field, good, bad, why) in [
            ("exclude_outbound_cidrs", "10.0.0.0/8", "10.1.2.3/8", "host bits"),
            ("include_outbound_cidrs", "10.0.0.0/8", "nonsense", "not an IPv4"),
            ("exclude_outbound_cidrs", "10.0.0.0/8", "10.0.0.0/40", "over 32"),
            ("include_outbound_cidrs6", "fd00:50::/32", "fd00:50::1/32", "host bits"),
            ("include_outbound_cidrs6", "fd00:50::/32", "10.0.0.0/8", "not an IPv6"),
            ("include_outbound_cidrs6", "fd00:50::/32", "fd00::/129", "over 128"),
        ] {
            let line = format!(r#"{{"version":1,"op":"add_pod","pod":{{"container_id":"c1","netns":"/run/netns/p1","{field}":["{good}","{bad}"]}}}}"#);
            let refused = parse_request(&line).unwrap_err();
            let message = refused.error.as_ref().map(|e| e.message.clone()).unwrap_or_default();
            assert_eq!(refused.error.as_ref().map(|e| e.code), Some(ErrorCode::InvalidRequest), "{line}");
            assert!(message.contains(bad) && message.contains(why), "{line}: {message}");
        }
    }

    #[test]
    fn requests_round_trip_as_one_line() {
        for op in [
            Op::AddPod { pod: spec() },
            Op::DelPod { container_id: "c1".into(), ifname: None },
            Op::DelPod { container_id: "c1".into(), ifname: Some("net1".into()) },
            Op::CheckPod { container_id: "c1".into(), ifname: Some("eth0".into()) },
            Op::ListPods,
            Op::Status,
        ] {
            let req = Request { version: PROTOCOL_VERSION, op };
            let line = serde_json::to_string(&req).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(parse_request(&line).unwrap(), req);
        }
    }

    /// What an older client sends (no attachment, no include lists) still parses.
    #[test]
    fn older_clients_requests_parse() {
        let r = parse_request(r#"{"version":1,"op":"del_pod","container_id":"c1"}"#).unwrap();
        assert_eq!(r.op, Op::DelPod { container_id: "c1".into(), ifname: None });
        let line = serde_json::to_string(&Request { version: 1, op: Op::AddPod { pod: PodSpec { container_id: "c".into(), ..Default::default() } } }).unwrap();
        assert!(!line.contains("include"), "unset include lists are not sent: {line}");
    }

    #[test]
    fn documented_example_parses() {
        let r = parse_request(r#"{"version":1,"op":"add_pod","pod":{"container_id":"c1","netns":"/run/netns/p1","ifname":"eth0","ips":["10.1.0.5"]}}"#).unwrap();
        match r.op {
            Op::AddPod { pod } => assert_eq!(pod.ips, vec![Ipv4Addr::new(10, 1, 0, 5)]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_requests_get_precise_errors() {
        let code = |line: &str| parse_request(line).unwrap_err().error.unwrap().code;
        assert_eq!(code("{"), ErrorCode::InvalidRequest);
        assert_eq!(code(r#"{"op":"list_pods"}"#), ErrorCode::InvalidRequest);
        assert_eq!(code(r#"{"version":2,"op":"list_pods"}"#), ErrorCode::UnsupportedVersion);
        assert_eq!(code(r#"{"version":1,"op":"explode"}"#), ErrorCode::InvalidRequest);
        assert_eq!(code(r#"{"version":1,"op":"del_pod"}"#), ErrorCode::InvalidRequest);
        assert_eq!(code(r#"{"version":1,"op":"list_pods","extra":1}"#), ErrorCode::InvalidRequest);
        assert_eq!(
            code(r#"{"version":1,"op":"add_pod","pod":{"container_id":"c","netns":"/x","ifname":"eth0","ips":["10.0.0.300"]}}"#),
            ErrorCode::InvalidRequest
        );
    }

    /// The error codes' names on the wire are the protocol (clients outside
    /// this workspace and test/netns_e2e.sh match them): renaming a variant
    /// or the serde case must not change them.
    #[test]
    fn error_codes_keep_their_wire_names() {
        for (c, wire) in [
            (ErrorCode::InvalidRequest, "invalid_request"),
            (ErrorCode::UnsupportedVersion, "unsupported_version"),
            (ErrorCode::NotFound, "not_found"),
            (ErrorCode::Inconsistent, "inconsistent"),
            (ErrorCode::MapFull, "map_full"),
            (ErrorCode::NetnsGone, "netns_gone"),
            (ErrorCode::TryAgain, "try_again"),
            (ErrorCode::Internal, "internal"),
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!(wire), "{c:?}");
            assert_eq!(serde_json::from_value::<ErrorCode>(serde_json::json!(wire)).unwrap(), c, "{wire}");
        }
    }

    #[test]
    fn responses_round_trip() {
        let ok = Response::ok(OpResult { pod: Some(PodRecord { spec: spec(), netns_cookie: 7, seq: 0, unchecked: None }), ..Default::default() });
        let line = serde_json::to_string(&ok).unwrap();
        assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), ok);
        let err = Response::err(ErrorCode::TryAgain, "starting");
        assert_eq!(err.clone().into_result().unwrap_err().code, ErrorCode::TryAgain);
    }

    /// A listed record's `unchecked` goes over the wire only when set, and a
    /// client reads records with fields it does not know (as one built
    /// before `unchecked` reads a newer loader's answer).
    #[test]
    fn unchecked_is_sent_when_set_and_unknown_record_fields_are_ignored() {
        let mut r = testing::record("c1", 7);
        assert!(!serde_json::to_string(&r).unwrap().contains("unchecked"));
        r.unchecked = Some("opening network namespace /run/netns/p1: Too many open files (os error 24)".into());
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<PodRecord>(&line).unwrap(), r);
        let newer = line.replace(r#""unchecked""#, r#""not_known_here""#);
        let read = serde_json::from_str::<PodRecord>(&newer).unwrap();
        assert_eq!(read, PodRecord { unchecked: None, ..r });
    }
}
