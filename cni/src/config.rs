//! The network configuration on stdin: decoded as JSON first (code 6), then
//! checked key by key into [`NetConf`] (unsupported version 1, unknown key 2,
//! anything else 7), each error naming the key and what was wrong.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::annotations::{self, Annotations, Matcher};
use crate::error::{code, CniError};

/// The CNI specification versions meshwire-cni speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const LATEST_VERSION: &str = "1.1.0";

/// Keys the specification defines for a plugin's configuration. meshwire-cni
/// uses some and tolerates the rest; keys starting with "cni.dev/" are the
/// runtime's and tolerated too.
const SPEC_KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "args",
    "capabilities",
    "runtimeConfig",
    "prevResult",
    "ipMasq",
    "ipam",
    "dns",
];
/// meshwire-cni's own keys (see the crate documentation).
const PLUGIN_KEYS: &[&str] = &[
    "loaderSocket",
    "loaderTimeoutSeconds",
    "failPolicy",
    "namespaces",
    "excludeOutboundPorts",
    "excludeOutboundCIDRs",
    "excludeInboundPorts",
    "accelerate",
    "dnsCapture",
    "sidecarAnnotations",
    "noSidecarAnnotations",
];
const NAMESPACES_KEYS: &[&str] = &["include", "exclude"];
const OVERRIDE_KEYS: &[&str] = &["mesh", "excludeOutboundPorts", "excludeOutboundCIDRs", "excludeInboundPorts", "accelerate", "dnsCapture"];

pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
const MAX_TIMEOUT_SECONDS: u64 = 300;

/// A CNI specification version, e.g. 0.4.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub const V0_4_0: Version = Version(0, 4, 0);
    pub const V1_1_0: Version = Version(1, 1, 0);

    /// A version meshwire-cni supports, or None.
    pub fn supported(s: &str) -> Option<Version> {
        if !SUPPORTED_VERSIONS.contains(&s) {
            return None;
        }
        let mut it = s.split('.').map(|p| p.parse::<u32>().expect("supported versions are numeric"));
        Some(Version(it.next()?, it.next()?, it.next()?))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// "closed": no pod is started un-meshed; "open": a pod the loader cannot take
/// is started un-meshed, with a note on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPolicy {
    Closed,
    Open,
}

pub use meshwire_api::{Cidr4, Cidr6};

/// Per-pod exclusions sent to the loader (on top of its node-wide lists).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusions {
    pub outbound_ports: Vec<u16>,
    pub outbound_cidrs: Vec<Cidr4>,
    /// The IPv6 entries of the same list.
    pub outbound_cidrs6: Vec<Cidr6>,
    pub inbound_ports: Vec<u16>,
}

/// Which Kubernetes namespaces are meshed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl Namespaces {
    /// Some(reason) when `namespaces.exclude` lists the namespace: never
    /// meshed, whatever the pod's annotations say.
    pub fn excluded(&self, namespace: Option<&str>) -> Option<String> {
        let ns = namespace?;
        self.exclude.iter().any(|e| e == ns).then(|| format!("namespace {ns:?} is in namespaces.exclude"))
    }

    /// None: meshed. Some(reason): not meshed, and why.
    pub fn skip_reason(&self, namespace: Option<&str>) -> Option<String> {
        if let Some(why) = self.excluded(namespace) {
            return Some(why);
        }
        match namespace {
            Some(ns) if !self.include.is_empty() && !self.include.iter().any(|i| i == ns) => {
                Some(format!("namespace {ns:?} is not in namespaces.include"))
            }
            None if !self.include.is_empty() => {
                Some("CNI_ARGS has no K8S_POD_NAMESPACE and namespaces.include is set".to_string())
            }
            _ => None,
        }
    }
}

/// meshwire-cni's own settings, from the plugin's entry in the network configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    pub loader_socket: PathBuf,
    pub timeout: Duration,
    pub fail_policy: FailPolicy,
    pub namespaces: Namespaces,
    pub exclusions: Exclusions,
    /// Socket-level acceleration of this network's pods (the loader's
    /// `PodSpec.accelerate`); None: the loader's `[acceleration] pods` decides.
    pub accelerate: Option<bool>,
    /// DNS capture for this network's pods (the loader's
    /// `PodSpec.dns_capture`); None: the loader's `[dns] capture` decides.
    pub dns_capture: Option<bool>,
    /// Pod annotations that mean "this pod has a sidecar" (when the runtime
    /// passes annotations); empty: the namespace lists decide.
    pub sidecar_annotations: Vec<Matcher>,
    /// More annotations that mean "no sidecar", on top of the two that always do.
    pub no_sidecar_annotations: Vec<Matcher>,
}

/// A range of either family, as an include list holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    V4(Cidr4),
    V6(Cidr6),
}

/// An include list: everything (Istio's `*`) or only these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select<T> {
    All,
    Only(Vec<T>),
}

/// Per-pod settings from runtimeConfig.meshwire, args.cni.meshwire or the
/// pod's annotations; a key given there replaces the network's value for
/// that pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodOverride {
    pub mesh: Option<bool>,
    pub outbound_ports: Option<Vec<u16>>,
    pub outbound_cidrs: Option<Vec<Cidr4>>,
    /// Some whenever `outbound_cidrs` is: one list of both families replaces both.
    pub outbound_cidrs6: Option<Vec<Cidr6>>,
    pub inbound_ports: Option<Vec<u16>>,
    pub accelerate: Option<bool>,
    pub dns_capture: Option<bool>,
    /// The include lists (annotations only); None: not given, which is All.
    /// The ranges of both families in one list, split when sent.
    pub include_outbound_cidrs: Option<Select<Range>>,
    pub include_outbound_ports: Option<Select<u16>>,
    pub include_inbound_ports: Option<Select<u16>>,
}

impl PodOverride {
    /// `self` over `under`, key by key.
    pub fn over(self, under: PodOverride) -> PodOverride {
        PodOverride {
            mesh: self.mesh.or(under.mesh),
            outbound_ports: self.outbound_ports.or(under.outbound_ports),
            outbound_cidrs: self.outbound_cidrs.or(under.outbound_cidrs),
            outbound_cidrs6: self.outbound_cidrs6.or(under.outbound_cidrs6),
            inbound_ports: self.inbound_ports.or(under.inbound_ports),
            accelerate: self.accelerate.or(under.accelerate),
            dns_capture: self.dns_capture.or(under.dns_capture),
            include_outbound_cidrs: self.include_outbound_cidrs.or(under.include_outbound_cidrs),
            include_outbound_ports: self.include_outbound_ports.or(under.include_outbound_ports),
            include_inbound_ports: self.include_inbound_ports.or(under.include_inbound_ports),
        }
    }

    /// The include lists as the loader takes them: outbound, None (all) or
    /// the CIDRs (IPv4, then the IPv6 ones of the same list) and the ports
    /// steered whatever the address (Istio's includeOutboundPorts); inbound,
    /// None (all) or the ports.
    #[allow(clippy::type_complexity)]
    pub fn includes(&self) -> (Option<Vec<Cidr4>>, Vec<Cidr6>, Vec<u16>, Option<Vec<u16>>) {
        let out_ports = match &self.include_outbound_ports {
            Some(Select::Only(p)) => p.clone(),
            _ => Vec::new(),
        };
        let out = match (&self.include_outbound_cidrs, &self.include_outbound_ports) {
            // All ports steered whatever the address: everything is.
            (_, Some(Select::All)) | (None | Some(Select::All), _) => None,
            (Some(Select::Only(c)), _) => Some(c.clone()),
        };
        let out_ports = if out.is_some() { out_ports } else { Vec::new() };
        let (mut out4, mut out6) = (Vec::new(), Vec::new());
        for r in out.iter().flatten() {
            match *r {
                Range::V4(c) if !out4.contains(&c) => out4.push(c),
                Range::V6(c) if !out6.contains(&c) => out6.push(c),
                _ => {}
            }
        }
        let out = out.map(|_| out4);
        let inbound = match &self.include_inbound_ports {
            Some(Select::Only(p)) => Some(p.clone()),
            _ => None,
        };
        (out, out6, out_ports, inbound)
    }

    pub fn apply(&self, base: &Exclusions) -> Exclusions {
        Exclusions {
            outbound_ports: self.outbound_ports.clone().unwrap_or_else(|| base.outbound_ports.clone()),
            outbound_cidrs: self.outbound_cidrs.clone().unwrap_or_else(|| base.outbound_cidrs.clone()),
            outbound_cidrs6: self.outbound_cidrs6.clone().unwrap_or_else(|| base.outbound_cidrs6.clone()),
            inbound_ports: self.inbound_ports.clone().unwrap_or_else(|| base.inbound_ports.clone()),
        }
    }
}

/// The previous plugin's result: its exact text (handed back on ADD) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct PrevResult {
    pub raw: String,
    pub value: Value,
}

/// GC's list of attachments still in use: (containerID, ifname).
pub type Attachments = Vec<(String, String)>;

/// The validated network configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: Version,
    pub name: String,
    pub plugin: PluginConfig,
    pub pod_override: PodOverride,
    /// The pod's annotations, when the runtime passed them
    /// (`runtimeConfig["io.kubernetes.cri.pod-annotations"]`).
    pub annotations: Option<Annotations>,
    pub prev_result: Option<PrevResult>,
    pub valid_attachments: Option<Attachments>,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

/// Decodes stdin into a JSON object (code 6 when it is not one).
pub fn decode(stdin: &str) -> Result<Map<String, Value>, CniError> {
    if stdin.trim().is_empty() {
        return Err(CniError::new(code::DECODE, "no network configuration on stdin (expected a JSON object)"));
    }
    match serde_json::from_str::<Value>(stdin) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(CniError::new(
            code::DECODE,
            format!("the network configuration on stdin must be a JSON object, not {}", kind(&other)),
        )),
        Err(e) => Err(CniError::new(code::DECODE, format!("the network configuration on stdin is not valid JSON: {e}"))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The configuration's cniVersion, if it is one meshwire-cni supports.
pub fn version(obj: &Map<String, Value>) -> Result<Version, CniError> {
    match obj.get("cniVersion") {
        None | Some(Value::Null) => Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("the network configuration has no cniVersion (that means 0.1.0); meshwire-cni supports {}", SUPPORTED_VERSIONS.join(", ")),
        )),
        Some(Value::String(s)) => Version::supported(s).ok_or_else(|| {
            CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("cniVersion {s:?} is not supported; meshwire-cni supports {}", SUPPORTED_VERSIONS.join(", ")),
            )
        }),
        Some(other) => Err(invalid(format!("cniVersion must be a string like \"1.0.0\", not {}", kind(other)))),
    }
}

fn unknown_keys(obj: &Map<String, Value>, known: &[&[&str]], path: &str) -> Result<(), CniError> {
    for key in obj.keys() {
        if key.starts_with("cni.dev/") && path.is_empty() {
            continue;
        }
        if known.iter().any(|set| set.contains(&key.as_str())) {
            continue;
        }
        let mut msg = format!("unsupported field {:?} in the meshwire-cni configuration", join(path, key));
        if let Some(k) = known.iter().flat_map(|s| s.iter()).find(|k| k.eq_ignore_ascii_case(key)) {
            msg.push_str(&format!("; did you mean {k:?}?"));
        } else {
            let ours: Vec<&str> = known.iter().flat_map(|s| s.iter().copied()).filter(|k| !SPEC_KEYS.contains(k)).collect();
            msg.push_str(&format!(" (meshwire-cni's keys here: {})", ours.join(", ")));
        }
        return Err(CniError::new(code::UNSUPPORTED_FIELD, msg));
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, CniError> {
    v.as_object().ok_or_else(|| invalid(format!("{path} must be an object, not {}", kind(v))))
}

fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, CniError> {
    v.as_str().ok_or_else(|| invalid(format!("{path} must be a string, not {}", kind(v))))
}

fn boolean(v: &Value, path: &str) -> Result<bool, CniError> {
    v.as_bool().ok_or_else(|| invalid(format!("{path} must be true or false, not {}", kind(v))))
}

fn array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, CniError> {
    v.as_array().ok_or_else(|| invalid(format!("{path} must be a list, not {}", kind(v))))
}

fn ports(v: &Value, path: &str) -> Result<Vec<u16>, CniError> {
    let mut out = Vec::new();
    for (i, p) in array(v, path)?.iter().enumerate() {
        let port = p.as_u64().filter(|n| (1..=65535).contains(n)).ok_or_else(|| invalid(format!("{path}[{i}]: {p} is not a port (1-65535)")))?;
        if !out.contains(&(port as u16)) {
            out.push(port as u16);
        }
    }
    Ok(out)
}

/// A list of CIDRs of both families, split by family, duplicates dropped.
fn cidrs(v: &Value, path: &str) -> Result<(Vec<Cidr4>, Vec<Cidr6>), CniError> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for (i, c) in array(v, path)?.iter().enumerate() {
        let s = string(c, &format!("{path}[{i}]"))?;
        let (a, b) = meshwire_api::split_families([s]).map_err(|m| invalid(format!("{path}[{i}]: {m}")))?;
        for c in a {
            if !v4.contains(&c) {
                v4.push(c);
            }
        }
        for c in b {
            if !v6.contains(&c) {
                v6.push(c);
            }
        }
    }
    Ok((v4, v6))
}

fn names(v: &Value, path: &str) -> Result<Vec<String>, CniError> {
    let mut out = Vec::new();
    for (i, n) in array(v, path)?.iter().enumerate() {
        let s = string(n, &format!("{path}[{i}]"))?;
        if s.is_empty() {
            return Err(invalid(format!("{path}[{i}]: empty namespace name")));
        }
        out.push(s.to_string());
    }
    Ok(out)
}

/// The specification's rule for network names.
fn network_name(obj: &Map<String, Value>) -> Result<String, CniError> {
    let v = obj.get("name").ok_or_else(|| invalid("the network configuration has no \"name\""))?;
    let s = string(v, "name")?;
    let ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(invalid(format!(
            "name {s:?} is not a network name (an alphanumeric character, then alphanumerics, '_', '.' or '-')"
        )));
    }
    Ok(s.to_string())
}

fn plugin_config(obj: &Map<String, Value>) -> Result<PluginConfig, CniError> {
    let loader_socket = match obj.get("loaderSocket") {
        None => PathBuf::from(meshwire_api::DEFAULT_SOCKET),
        Some(v) => {
            let s = string(v, "loaderSocket")?;
            if !s.starts_with('/') {
                return Err(invalid(format!("loaderSocket {s:?} must be an absolute path (the loader's [api] socket)")));
            }
            PathBuf::from(s)
        }
    };
    let timeout = match obj.get("loaderTimeoutSeconds") {
        None => Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_TIMEOUT_SECONDS).contains(&n) => Duration::from_secs(n),
            _ => return Err(invalid(format!("loaderTimeoutSeconds: {v} is not a whole number of seconds from 1 to {MAX_TIMEOUT_SECONDS}"))),
        },
    };
    let fail_policy = match obj.get("failPolicy") {
        None => FailPolicy::Closed,
        Some(v) => match string(v, "failPolicy")? {
            "closed" => FailPolicy::Closed,
            "open" => FailPolicy::Open,
            other => return Err(invalid(format!("failPolicy {other:?} is neither \"closed\" (the default) nor \"open\""))),
        },
    };
    let namespaces = match obj.get("namespaces") {
        None => Namespaces::default(),
        Some(v) => {
            let m = object(v, "namespaces")?;
            unknown_keys(m, &[NAMESPACES_KEYS], "namespaces")?;
            Namespaces {
                include: m.get("include").map(|v| names(v, "namespaces.include")).transpose()?.unwrap_or_default(),
                exclude: m.get("exclude").map(|v| names(v, "namespaces.exclude")).transpose()?.unwrap_or_default(),
            }
        }
    };
    let (outbound_cidrs, outbound_cidrs6) =
        obj.get("excludeOutboundCIDRs").map(|v| cidrs(v, "excludeOutboundCIDRs")).transpose()?.unwrap_or_default();
    let exclusions = Exclusions {
        outbound_ports: obj.get("excludeOutboundPorts").map(|v| ports(v, "excludeOutboundPorts")).transpose()?.unwrap_or_default(),
        outbound_cidrs,
        outbound_cidrs6,
        inbound_ports: obj.get("excludeInboundPorts").map(|v| ports(v, "excludeInboundPorts")).transpose()?.unwrap_or_default(),
    };
    let accelerate = obj.get("accelerate").map(|v| boolean(v, "accelerate")).transpose()?;
    let dns_capture = obj.get("dnsCapture").map(|v| boolean(v, "dnsCapture")).transpose()?;
    let matchers = |key: &str| -> Result<Option<Vec<Matcher>>, CniError> {
        let Some(v) = obj.get(key) else { return Ok(None) };
        let mut out = Vec::new();
        for (i, m) in array(v, key)?.iter().enumerate() {
            let p = format!("{key}[{i}]");
            out.push(Matcher::parse(string(m, &p)?, &p)?);
        }
        Ok(Some(out))
    };
    let sidecar_annotations = matchers("sidecarAnnotations")?.unwrap_or_else(annotations::default_sidecar);
    let no_sidecar_annotations = matchers("noSidecarAnnotations")?.unwrap_or_default();
    Ok(PluginConfig { loader_socket, timeout, fail_policy, namespaces, exclusions, accelerate, dns_capture, sidecar_annotations, no_sidecar_annotations })
}

fn pod_override(v: &Value, path: &str) -> Result<PodOverride, CniError> {
    let m = object(v, path)?;
    unknown_keys(m, &[OVERRIDE_KEYS], path)?;
    let (outbound_cidrs, outbound_cidrs6) =
        m.get("excludeOutboundCIDRs").map(|v| cidrs(v, &format!("{path}.excludeOutboundCIDRs"))).transpose()?.unzip();
    Ok(PodOverride {
        include_outbound_cidrs: None,
        include_outbound_ports: None,
        include_inbound_ports: None,
        mesh: m.get("mesh").map(|v| boolean(v, &format!("{path}.mesh"))).transpose()?,
        outbound_ports: m.get("excludeOutboundPorts").map(|v| ports(v, &format!("{path}.excludeOutboundPorts"))).transpose()?,
        outbound_cidrs,
        outbound_cidrs6,
        inbound_ports: m.get("excludeInboundPorts").map(|v| ports(v, &format!("{path}.excludeInboundPorts"))).transpose()?,
        accelerate: m.get("accelerate").map(|v| boolean(v, &format!("{path}.accelerate"))).transpose()?,
        dns_capture: m.get("dnsCapture").map(|v| boolean(v, &format!("{path}.dnsCapture"))).transpose()?,
    })
}

/// runtimeConfig.meshwire over args.cni.meshwire. Other keys of runtimeConfig
/// and args belong to the runtime and are left alone.
fn pod_overrides(obj: &Map<String, Value>) -> Result<PodOverride, CniError> {
    let mut from_args = PodOverride::default();
    if let Some(args) = obj.get("args") {
        if let Some(cni) = object(args, "args")?.get("cni") {
            if let Some(m) = object(cni, "args.cni")?.get("meshwire") {
                from_args = pod_override(m, "args.cni.meshwire")?;
            }
        }
    }
    let mut from_runtime = PodOverride::default();
    if let Some(rc) = obj.get("runtimeConfig") {
        if let Some(m) = object(rc, "runtimeConfig")?.get("meshwire") {
            from_runtime = pod_override(m, "runtimeConfig.meshwire")?;
        }
    }
    Ok(from_runtime.over(from_args))
}

/// The pod's annotations, if the runtime passed them (the capability
/// `io.kubernetes.cri.pod-annotations`).
fn pod_annotations(obj: &Map<String, Value>) -> Result<Option<Annotations>, CniError> {
    let Some(rc) = obj.get("runtimeConfig") else { return Ok(None) };
    object(rc, "runtimeConfig")?.get(annotations::CAPABILITY).map(annotations::from_runtime_config).transpose()
}

fn attachments(v: &Value, path: &str) -> Result<Attachments, CniError> {
    let mut out = Vec::new();
    for (i, a) in array(v, path)?.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let m = object(a, &p)?;
        let field = |k: &str| -> Result<String, CniError> {
            let v = m.get(k).ok_or_else(|| invalid(format!("{p} has no {k:?}")))?;
            Ok(string(v, &format!("{p}.{k}"))?.to_string())
        };
        out.push((field("containerID")?, field("ifname")?));
    }
    Ok(out)
}

#[derive(Deserialize)]
struct RawPrev<'a> {
    #[serde(rename = "prevResult", borrow, default)]
    prev: Option<&'a RawValue>,
}

/// Checks the decoded configuration into a [`NetConf`]. `stdin` is the text
/// `obj` was decoded from (for prevResult's exact text).
pub fn parse(stdin: &str, obj: &Map<String, Value>) -> Result<NetConf, CniError> {
    let cni_version = version(obj)?;
    unknown_keys(obj, &[SPEC_KEYS, PLUGIN_KEYS], "")?;
    let name = network_name(obj)?;
    match obj.get("type") {
        None => return Err(invalid("the network configuration has no \"type\"")),
        Some(v) if string(v, "type")?.is_empty() => return Err(invalid("\"type\" is empty")),
        Some(_) => {}
    }
    let plugin = plugin_config(obj)?;
    let pod_override = pod_overrides(obj)?;
    let annotations = pod_annotations(obj)?;
    let prev_result = match obj.get("prevResult") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => {
            let raw: RawPrev = serde_json::from_str(stdin).map_err(|e| CniError::new(code::DECODE, format!("prevResult: {e}")))?;
            let raw = raw.prev.map(|r| r.get().to_string()).unwrap_or_default();
            Some(PrevResult { raw, value: v.clone() })
        }
        Some(other) => return Err(invalid(format!("prevResult must be an object (the previous plugin's result), not {}", kind(other)))),
    };
    // libcni sends the list under both names (a typo in an early 1.1 draft).
    let valid_attachments = match obj.get("cni.dev/valid-attachments").or_else(|| obj.get("cni.dev/attachments")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(attachments(v, "cni.dev/valid-attachments")?),
    };
    Ok(NetConf { cni_version, name, plugin, pod_override, annotations, prev_result, valid_attachments })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use serde_json::json;

    fn conf(v: Value) -> Result<NetConf, CniError> {
        let s = v.to_string();
        parse(&s, &decode(&s)?)
    }

    fn base() -> Value {
        json!({"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "meshwire-cni"})
    }

    fn with(extra: Value) -> Value {
        let mut b = base();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    }

    fn err(v: Value) -> CniError {
        conf(v).unwrap_err()
    }

    #[test]
    fn minimal_configuration_has_the_defaults() {
        let c = conf(base()).unwrap();
        assert_eq!(c.cni_version, Version(1, 0, 0));
        assert_eq!(c.name, "k8s-pod-network");
        assert_eq!(c.plugin.loader_socket, PathBuf::from("/run/meshwire/loader.sock"));
        assert_eq!(c.plugin.timeout, Duration::from_secs(10));
        assert_eq!(c.plugin.fail_policy, FailPolicy::Closed);
        assert_eq!(c.plugin.namespaces, Namespaces::default());
        assert_eq!(c.plugin.exclusions, Exclusions::default());
        assert_eq!(c.plugin.accelerate, None);
        assert_eq!(c.pod_override, PodOverride::default());
        assert_eq!(c.prev_result, None);
        assert_eq!(c.valid_attachments, None);
    }

    #[test]
    fn every_key() {
        let c = conf(with(json!({
            "loaderSocket": "/run/mw/x.sock",
            "loaderTimeoutSeconds": 3,
            "failPolicy": "open",
            "namespaces": {"include": ["shop", "pay"], "exclude": ["kube-system"]},
            "excludeOutboundPorts": [22, 22, 443],
            "excludeOutboundCIDRs": ["10.96.0.0/12", "192.0.2.7", "fd00:96::/108"],
            "excludeInboundPorts": [9090],
            "accelerate": false,
            "capabilities": {"meshwire": true},
            "ipam": {}, "dns": {}, "ipMasq": false, "cniVersions": ["1.0.0"],
            "cni.dev/something-new": 1,
        })))
        .unwrap();
        assert_eq!(c.plugin.loader_socket, PathBuf::from("/run/mw/x.sock"));
        assert_eq!(c.plugin.timeout, Duration::from_secs(3));
        assert_eq!(c.plugin.fail_policy, FailPolicy::Open);
        assert_eq!(c.plugin.namespaces.include, vec!["shop", "pay"]);
        assert_eq!(c.plugin.namespaces.exclude, vec!["kube-system"]);
        assert_eq!(c.plugin.exclusions.outbound_ports, vec![22, 443]);
        assert_eq!(
            c.plugin.exclusions.outbound_cidrs,
            vec![Cidr4 { addr: Ipv4Addr::new(10, 96, 0, 0), len: 12 }, Cidr4 { addr: Ipv4Addr::new(192, 0, 2, 7), len: 32 }]
        );
        assert_eq!(c.plugin.exclusions.outbound_cidrs6, vec!["fd00:96::/108".parse::<Cidr6>().unwrap()]);
        assert_eq!(c.plugin.exclusions.inbound_ports, vec![9090]);
        assert_eq!(c.plugin.accelerate, Some(false));
    }

    #[test]
    fn versions() {
        for v in SUPPORTED_VERSIONS {
            assert_eq!(conf(with(json!({"cniVersion": v}))).unwrap().cni_version.to_string(), *v);
        }
        for v in ["0.2.0", "0.1.0", "2.0.0", "1.0", ""] {
            let e = err(with(json!({"cniVersion": v})));
            assert_eq!(e.code, code::INCOMPATIBLE_VERSION, "{v}");
            assert!(e.msg.contains("0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"), "{e}");
        }
        let mut no_version = base();
        no_version.as_object_mut().unwrap().remove("cniVersion");
        assert_eq!(err(no_version).code, code::INCOMPATIBLE_VERSION);
        assert_eq!(err(with(json!({"cniVersion": 1}))).code, code::INVALID_CONFIG);
    }

    #[test]
    fn decode_failures() {
        for bad in ["", "  \n", "{", "not json", "{\"a\":1}}"] {
            assert_eq!(decode(bad).unwrap_err().code, code::DECODE, "{bad:?}");
        }
        let e = decode("[1,2]").unwrap_err();
        assert_eq!(e.code, code::DECODE);
        assert!(e.msg.contains("must be a JSON object, not an array"), "{e}");
    }

    #[test]
    fn missing_and_bad_standard_fields() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("name");
        assert!(err(v).msg.contains("has no \"name\""));
        let mut v = base();
        v.as_object_mut().unwrap().remove("type");
        assert!(err(v).msg.contains("has no \"type\""));
        assert!(err(with(json!({"name": "bad name"}))).msg.contains("is not a network name"));
        assert_eq!(err(with(json!({"name": 5}))).code, code::INVALID_CONFIG);
        assert!(err(with(json!({"type": ""}))).msg.contains("\"type\" is empty"));
        assert!(err(with(json!({"prevResult": [1]}))).msg.contains("prevResult must be an object"));
    }

    #[test]
    fn unknown_keys_are_code_2_with_a_hint() {
        let e = err(with(json!({"failpolicy": "open"})));
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("\"failpolicy\"") && e.msg.contains("did you mean \"failPolicy\"?"), "{e}");
        let e = err(with(json!({"frobnicate": 1})));
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("loaderSocket"), "{e}");
        let e = err(with(json!({"namespaces": {"inclde": []}})));
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("namespaces.inclde"), "{e}");
        let e = err(with(json!({"runtimeConfig": {"meshwire": {"excludePorts": [1]}}})));
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("runtimeConfig.meshwire.excludePorts"), "{e}");
        let e = err(with(json!({"args": {"cni": {"meshwire": {"Accelerate": true}}}})));
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("args.cni.meshwire.Accelerate") && e.msg.contains("did you mean \"accelerate\"?"), "{e}");
        // Other runtimeConfig and args keys are the runtime's business.
        assert!(conf(with(json!({"runtimeConfig": {"portMappings": []}, "args": {"cni": {"x": 1}, "k8s": 2}}))).is_ok());
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (json!({"loaderSocket": "run/x.sock"}), "loaderSocket \"run/x.sock\" must be an absolute path"),
            (json!({"loaderSocket": 1}), "loaderSocket must be a string"),
            (json!({"loaderTimeoutSeconds": 0}), "loaderTimeoutSeconds: 0 is not"),
            (json!({"loaderTimeoutSeconds": 1.5}), "loaderTimeoutSeconds: 1.5 is not"),
            (json!({"failPolicy": "ignore"}), "failPolicy \"ignore\" is neither"),
            (json!({"namespaces": ["a"]}), "namespaces must be an object"),
            (json!({"namespaces": {"include": "a"}}), "namespaces.include must be a list"),
            (json!({"namespaces": {"exclude": [""]}}), "namespaces.exclude[0]: empty namespace name"),
            (json!({"namespaces": {"exclude": [1]}}), "namespaces.exclude[0] must be a string"),
            (json!({"excludeOutboundPorts": [80, 0]}), "excludeOutboundPorts[1]: 0 is not a port"),
            (json!({"excludeOutboundPorts": [65536]}), "excludeOutboundPorts[0]: 65536 is not a port"),
            (json!({"excludeInboundPorts": ["80"]}), "excludeInboundPorts[0]: \"80\" is not a port"),
            (json!({"excludeOutboundCIDRs": ["10.1.2.3/16"]}), "did you mean \"10.1.0.0/16\"?"),
            (json!({"excludeOutboundCIDRs": ["10.0.0.0/33"]}), "prefix length 33"),
            (json!({"excludeOutboundCIDRs": ["fd00::1/8"]}), "has host bits set"),
            (json!({"excludeOutboundCIDRs": "10.0.0.0/8"}), "excludeOutboundCIDRs must be a list"),
            (json!({"runtimeConfig": []}), "runtimeConfig must be an object"),
            (json!({"runtimeConfig": {"meshwire": {"mesh": "no"}}}), "runtimeConfig.meshwire.mesh must be true or false"),
            (json!({"accelerate": "yes"}), "accelerate must be true or false, not a string"),
            (json!({"accelerate": 1}), "accelerate must be true or false, not a number"),
            (json!({"runtimeConfig": {"meshwire": {"accelerate": "yes"}}}), "runtimeConfig.meshwire.accelerate must be true or false, not a string"),
            (json!({"args": {"cni": {"meshwire": {"accelerate": null}}}}), "args.cni.meshwire.accelerate must be true or false, not null"),
            (json!({"args": {"cni": {"meshwire": {"excludeOutboundPorts": [-1]}}}}), "args.cni.meshwire.excludeOutboundPorts[0]: -1"),
            (json!({"args": {"cni": 3}}), "args.cni must be an object"),
            (json!({"cni.dev/valid-attachments": [{"containerID": "a"}]}), "cni.dev/valid-attachments[0] has no \"ifname\""),
            (json!({"cni.dev/valid-attachments": {}}), "cni.dev/valid-attachments must be a list"),
        ];
        for (extra, want) in cases {
            let e = err(with(extra.clone()));
            assert_eq!(e.code, code::INVALID_CONFIG, "{extra}: {e}");
            assert!(e.msg.contains(want), "{extra}: {e} (wanted {want:?})");
        }
    }

    #[test]
    fn pod_overrides_runtime_config_over_args_over_network() {
        let c = conf(with(json!({
            "excludeOutboundPorts": [22],
            "excludeOutboundCIDRs": ["10.0.0.0/8"],
            "excludeInboundPorts": [9090],
            "accelerate": true,
            "args": {"cni": {"meshwire": {"excludeOutboundPorts": [1, 2], "excludeInboundPorts": [], "mesh": false, "accelerate": true}}},
            "runtimeConfig": {"meshwire": {"excludeOutboundPorts": [3], "mesh": true, "accelerate": false}},
        })))
        .unwrap();
        assert_eq!(c.pod_override.mesh, Some(true));
        assert_eq!(c.plugin.accelerate, Some(true));
        assert_eq!(c.pod_override.accelerate, Some(false));
        let ex = c.pod_override.apply(&c.plugin.exclusions);
        assert_eq!(ex.outbound_ports, vec![3]);
        assert_eq!(ex.outbound_cidrs, c.plugin.exclusions.outbound_cidrs);
        assert_eq!(ex.inbound_ports, Vec::<u16>::new());
    }

    #[test]
    fn namespace_selection() {
        let all = Namespaces::default();
        assert_eq!(all.skip_reason(Some("a")), None);
        assert_eq!(all.skip_reason(None), None);
        let ex = Namespaces { include: vec![], exclude: vec!["kube-system".into()] };
        assert!(ex.skip_reason(Some("kube-system")).unwrap().contains("namespaces.exclude"));
        assert_eq!(ex.skip_reason(Some("shop")), None);
        assert_eq!(ex.skip_reason(None), None);
        let inc = Namespaces { include: vec!["shop".into()], exclude: vec!["shop".into()] };
        assert!(inc.skip_reason(Some("shop")).unwrap().contains("exclude"), "exclude wins");
        let inc = Namespaces { include: vec!["shop".into()], exclude: vec![] };
        assert_eq!(inc.skip_reason(Some("shop")), None);
        assert!(inc.skip_reason(Some("pay")).unwrap().contains("not in namespaces.include"));
        assert!(inc.skip_reason(None).unwrap().contains("no K8S_POD_NAMESPACE"));
    }

    #[test]
    fn prev_result_keeps_its_exact_text() {
        let stdin = "{\"cniVersion\":\"0.4.0\",\"name\":\"n\",\"type\":\"meshwire-cni\",\n \"prevResult\": {\"cniVersion\":\"0.4.0\", \"ips\" : [ ],\"z\":1,\"a\":2} }";
        let c = parse(stdin, &decode(stdin).unwrap()).unwrap();
        let p = c.prev_result.unwrap();
        assert_eq!(p.raw, "{\"cniVersion\":\"0.4.0\", \"ips\" : [ ],\"z\":1,\"a\":2}");
        assert_eq!(p.value["z"], 1);
        assert_eq!(conf(with(json!({"prevResult": null}))).unwrap().prev_result, None);
    }

    #[test]
    fn gc_attachments_under_either_name() {
        let list = json!([{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c2", "ifname": "net1"}]);
        let want = Some(vec![("c1".to_string(), "eth0".to_string()), ("c2".to_string(), "net1".to_string())]);
        assert_eq!(conf(with(json!({"cni.dev/valid-attachments": list}))).unwrap().valid_attachments, want);
        assert_eq!(conf(with(json!({"cni.dev/attachments": list}))).unwrap().valid_attachments, want);
        assert_eq!(conf(with(json!({"cni.dev/valid-attachments": []}))).unwrap().valid_attachments, Some(vec![]));
    }
}
