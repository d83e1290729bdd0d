//! Pod annotations, as containerd (1.5 and later) and CRI-O pass them in
//! `runtimeConfig` to a plugin that declares the capability
//! [`CAPABILITY`]: whether the pod has a sidecar ([`decide`]) and its
//! interception settings ([`settings`]). docs/annotations.md lists them all.
//!
//! Values follow Istio's annotations (`traffic.sidecar.istio.io/...`), so a
//! mesh's existing pods keep their meaning: comma-separated lists, `*` for
//! "all" where Istio allows it, an empty value for an empty list. A value that
//! does not parse refuses the pod (error 7, naming the annotation and the
//! value): a pod never starts with settings other than the ones it asked for.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::config::{Cidr4, Cidr6, PodOverride, Range, Select};
use crate::error::{code, CniError};

/// The capability under which the runtime passes the pod's annotations.
pub const CAPABILITY: &str = "io.kubernetes.cri.pod-annotations";

/// A pod's annotations, key to value.
pub type Annotations = BTreeMap<String, String>;

pub const MESH: &str = "meshwire.io/mesh";
pub const ISTIO_STATUS: &str = "sidecar.istio.io/status";
pub const ISTIO_INJECT: &str = "sidecar.istio.io/inject";

/// Annotations that mean "no sidecar" whatever else the pod says or the
/// network configures: meshwire's own opt-out and Istio's.
const NEVER_MESHED: &[(&str, &str)] = &[(MESH, "false"), (ISTIO_INJECT, "false")];

/// The defaults of `sidecarAnnotations`: Istio's injector marks every pod it
/// injected with `sidecar.istio.io/status`; meshwire's own opt-in.
pub const DEFAULT_SIDECAR: &[&str] = &[ISTIO_STATUS, "meshwire.io/mesh=true"];

/// `key` (the annotation is present, whatever its value) or `key=value` (its
/// value, compared ignoring ASCII case, as "true" and "True" are both given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub key: String,
    pub value: Option<String>,
}

impl Matcher {
    pub fn parse(s: &str, path: &str) -> Result<Matcher, CniError> {
        let (key, value) = match s.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (s, None),
        };
        // Kubernetes' rule for annotation keys: [prefix/]name, name 1-63 of
        // alphanumerics, '-', '_', '.', alphanumeric at both ends.
        let name = key.rsplit('/').next().unwrap_or("");
        let ok = !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric())
            && key.matches('/').count() <= 1
            && !key.starts_with('/');
        if !ok {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("{path}: {s:?} is not an annotation key (\"prefix/name\") or \"key=value\""),
            ));
        }
        Ok(Matcher { key: key.to_string(), value })
    }

    fn matches(&self, a: &Annotations) -> bool {
        match (a.get(&self.key), &self.value) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have.trim().eq_ignore_ascii_case(want),
            (None, _) => false,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            None => write!(f, "{} is set", self.key),
            Some(v) => write!(f, "{}: {v:?}", self.key),
        }
    }
}

pub fn default_sidecar() -> Vec<Matcher> {
    DEFAULT_SIDECAR.iter().map(|s| Matcher::parse(s, "sidecarAnnotations").expect("the defaults parse")).collect()
}

/// The annotations of `runtimeConfig`, when the runtime passed them: an
/// object of strings (null: a pod without annotations, as containerd sends it).
pub fn from_runtime_config(v: &Value) -> Result<Annotations, CniError> {
    let path = format!("runtimeConfig.{CAPABILITY}");
    match v {
        Value::Null => Ok(Annotations::new()),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(CniError::new(code::INVALID_CONFIG, format!("{path}: annotation {k:?} must be a string, not {other}"))),
            })
            .collect(),
        other => Err(CniError::new(code::INVALID_CONFIG, format!("{path} must be an object of the pod's annotations, not {other}"))),
    }
}

/// What the annotations say about the sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The pod has a sidecar: mesh it (why).
    Sidecar(String),
    /// It has none, or opted out (why).
    NoSidecar(String),
    /// `sidecarAnnotations` is empty: the namespace lists decide (opt-outs
    /// were checked).
    Undecided,
}

fn malformed(key: &str, value: &str, why: impl fmt::Display) -> CniError {
    CniError::new(code::INVALID_CONFIG, format!("annotation {key}: {value:?} {why}"))
}

/// Opt-outs first (meshwire's and Istio's, then `no_sidecar`), then the
/// first of `sidecar` that matches. `meshwire.io/mesh` must be "true" or
/// "false".
pub fn decide(a: &Annotations, sidecar: &[Matcher], no_sidecar: &[Matcher]) -> Result<Decision, CniError> {
    if let Some(v) = a.get(MESH) {
        if !v.trim().eq_ignore_ascii_case("true") && !v.trim().eq_ignore_ascii_case("false") {
            return Err(malformed(MESH, v, "is neither \"true\" nor \"false\""));
        }
    }
    let never = NEVER_MESHED.iter().map(|(k, v)| Matcher { key: k.to_string(), value: Some(v.to_string()) });
    if let Some(m) = never.chain(no_sidecar.iter().cloned()).find(|m| m.matches(a)) {
        return Ok(Decision::NoSidecar(format!("annotation {m}")));
    }
    if sidecar.is_empty() {
        return Ok(Decision::Undecided);
    }
    match sidecar.iter().find(|m| m.matches(a)) {
        Some(m) => Ok(Decision::Sidecar(format!("annotation {m}"))),
        None => Ok(Decision::NoSidecar(format!(
            "no annotation says it has a sidecar (sidecarAnnotations: {})",
            sidecar.iter().map(|m| match &m.value {
                None => m.key.clone(),
                Some(v) => format!("{}={v}", m.key),
            }).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// One interception setting: meshwire's annotation, and Istio's for the same.
struct Setting {
    ours: &'static str,
    istio: Option<&'static str>,
}

const EXCLUDE_OUTBOUND_PORTS: Setting =
    Setting { ours: "meshwire.io/exclude-outbound-ports", istio: Some("traffic.sidecar.istio.io/excludeOutboundPorts") };
const EXCLUDE_OUTBOUND_CIDRS: Setting =
    Setting { ours: "meshwire.io/exclude-outbound-cidrs", istio: Some("traffic.sidecar.istio.io/excludeOutboundIPRanges") };
const EXCLUDE_INBOUND_PORTS: Setting =
    Setting { ours: "meshwire.io/exclude-inbound-ports", istio: Some("traffic.sidecar.istio.io/excludeInboundPorts") };
const INCLUDE_OUTBOUND_CIDRS: Setting =
    Setting { ours: "meshwire.io/include-outbound-cidrs", istio: Some("traffic.sidecar.istio.io/includeOutboundIPRanges") };
const INCLUDE_OUTBOUND_PORTS: Setting =
    Setting { ours: "meshwire.io/include-outbound-ports", istio: Some("traffic.sidecar.istio.io/includeOutboundPorts") };
const INCLUDE_INBOUND_PORTS: Setting =
    Setting { ours: "meshwire.io/include-inbound-ports", istio: Some("traffic.sidecar.istio.io/includeInboundPorts") };
const ACCELERATE: Setting = Setting { ours: "meshwire.io/accelerate", istio: None };
const DNS_CAPTURE: Setting = Setting { ours: "meshwire.io/dns-capture", istio: None };

/// Every annotation [`settings`] reads, meshwire's then Istio's.
pub const SETTING_KEYS: &[&str] = &[
    "meshwire.io/exclude-outbound-ports",
    "meshwire.io/exclude-outbound-cidrs",
    "meshwire.io/exclude-inbound-ports",
    "meshwire.io/include-outbound-cidrs",
    "meshwire.io/include-outbound-ports",
    "meshwire.io/include-inbound-ports",
    "meshwire.io/accelerate",
    "meshwire.io/dns-capture",
    "traffic.sidecar.istio.io/excludeOutboundPorts",
    "traffic.sidecar.istio.io/excludeOutboundIPRanges",
    "traffic.sidecar.istio.io/excludeInboundPorts",
    "traffic.sidecar.istio.io/includeOutboundIPRanges",
    "traffic.sidecar.istio.io/includeOutboundPorts",
    "traffic.sidecar.istio.io/includeInboundPorts",
];

impl Setting {
    /// (key, value) of the annotation that sets it: meshwire's wins.
    fn find<'a>(&self, a: &'a Annotations) -> Option<(&'static str, &'a str)> {
        if let Some(v) = a.get(self.ours) {
            return Some((self.ours, v));
        }
        let istio = self.istio?;
        a.get(istio).map(|v| (istio, v.as_str()))
    }
}

/// A comma-separated list; `*` alone is All when `wildcard`. An empty value
/// is an empty list; an empty item ("80,,90", "80,") is malformed.
fn list<T>(key: &str, value: &str, wildcard: bool, mut item: impl FnMut(&str) -> Result<Option<T>, String>) -> Result<Select<T>, CniError> {
    let v = value.trim();
    if v == "*" {
        if wildcard {
            return Ok(Select::All);
        }
        return Err(malformed(key, value, "cannot be \"*\" here: list the ports or ranges"));
    }
    let mut out = Vec::new();
    if v.is_empty() {
        return Ok(Select::Only(out));
    }
    for (i, raw) in v.split(',').enumerate() {
        let it = raw.trim();
        if it.is_empty() {
            return Err(malformed(key, value, format!("has an empty item (number {}) in its comma-separated list", i + 1)));
        }
        if it == "*" {
            return Err(malformed(key, value, "mixes \"*\" with a list: \"*\" stands alone"));
        }
        match item(it) {
            Ok(Some(x)) => out.push(x),
            Ok(None) => {}
            Err(why) => return Err(malformed(key, value, format!("has {it:?}, which {why}"))),
        }
    }
    Ok(Select::Only(out))
}

fn port(s: &str) -> Result<Option<u16>, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(Some(n as u16)),
        _ => Err("is not a port (1-65535)".to_string()),
    }
}

/// A range as Istio reads it (`net.ParseCIDR`: host bits are dropped), of
/// either family.
fn any_range(s: &str) -> Result<Range, String> {
    let (addr, len) = s.split_once('/').ok_or_else(|| "is not a range in CIDR form (like 10.96.0.0/12)".to_string())?;
    if let Ok(a) = addr.parse::<Ipv4Addr>() {
        let len: u8 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(|| "has a prefix length that is not 0-32".to_string())?;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        return Ok(Range::V4(Cidr4 { addr: Ipv4Addr::from(u32::from(a) & mask), len }));
    }
    if let (Ok(a), Some(len)) = (addr.parse::<Ipv6Addr>(), len.parse::<u8>().ok().filter(|l| *l <= 128)) {
        let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
        return Ok(Range::V6(Cidr6 { addr: Ipv6Addr::from(u128::from(a) & mask), len }));
    }
    Err("is not a range in CIDR form (like 10.96.0.0/12)".to_string())
}

fn only<T>(key: &str, value: &str, s: Select<T>) -> Result<Vec<T>, CniError> {
    match s {
        Select::Only(v) => Ok(v),
        Select::All => Err(malformed(key, value, "cannot be \"*\" here")),
    }
}

/// The pod's interception settings from its annotations, as a per-pod
/// override (keys not annotated stay None).
pub fn settings(a: &Annotations) -> Result<PodOverride, CniError> {
    let mut o = PodOverride::default();
    if let Some((k, v)) = EXCLUDE_OUTBOUND_PORTS.find(a) {
        o.outbound_ports = Some(only(k, v, list(k, v, false, port)?)?);
    }
    if let Some((k, v)) = EXCLUDE_INBOUND_PORTS.find(a) {
        o.inbound_ports = Some(only(k, v, list(k, v, false, port)?)?);
    }
    if let Some((k, v)) = EXCLUDE_OUTBOUND_CIDRS.find(a) {
        // Both families: IPv6 ranges apply with interception.ipv6 = "intercept".
        let mut v6 = Vec::new();
        let v4 = only(
            k,
            v,
            list(k, v, false, |s| {
                Ok(match any_range(s)? {
                    Range::V4(c) => Some(c),
                    Range::V6(c) => {
                        v6.push(c);
                        None
                    }
                })
            })?,
        )?;
        o.outbound_cidrs = Some(v4);
        o.outbound_cidrs6 = Some(v6);
    }
    if let Some((k, v)) = INCLUDE_OUTBOUND_CIDRS.find(a) {
        // Both families: IPv6 ranges apply with interception.ipv6 = "intercept".
        o.include_outbound_cidrs = Some(list(k, v, true, |s| any_range(s).map(Some))?);
    }
    if let Some((k, v)) = INCLUDE_OUTBOUND_PORTS.find(a) {
        o.include_outbound_ports = Some(list(k, v, true, port)?);
    }
    if let Some((k, v)) = INCLUDE_INBOUND_PORTS.find(a) {
        o.include_inbound_ports = Some(list(k, v, true, port)?);
    }
    if let Some((k, v)) = ACCELERATE.find(a) {
        o.accelerate = Some(boolean(k, v)?);
    }
    if let Some((k, v)) = DNS_CAPTURE.find(a) {
        o.dns_capture = Some(boolean(k, v)?);
    }
    Ok(o)
}

/// "true" or "false", in any case, as Kubernetes annotations spell booleans.
fn boolean(key: &str, value: &str) -> Result<bool, CniError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(malformed(key, value, "is neither \"true\" nor \"false\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> Annotations {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn cidr(s: &str) -> Cidr4 {
        s.parse().unwrap()
    }

    fn decided(pairs: &[(&str, &str)]) -> Decision {
        decide(&ann(pairs), &default_sidecar(), &[]).unwrap()
    }

    #[test]
    fn the_defaults_recognise_istio_s_injector_and_meshwire_s_opt_in() {
        assert!(matches!(decided(&[(ISTIO_STATUS, r#"{"containers":["istio-proxy"]}"#)]), Decision::Sidecar(w) if w.contains(ISTIO_STATUS)));
        assert!(matches!(decided(&[(MESH, "true")]), Decision::Sidecar(w) if w.contains(MESH)));
        assert!(matches!(decided(&[(MESH, "True")]), Decision::Sidecar(_)));
        assert!(matches!(decided(&[]), Decision::NoSidecar(w) if w.contains("no annotation says")));
        assert!(matches!(decided(&[("app", "x"), (ISTIO_INJECT, "true")]), Decision::NoSidecar(_)));
    }

    #[test]
    fn opt_outs_win_over_everything() {
        for opt_out in [(MESH, "false"), (ISTIO_INJECT, "false"), (ISTIO_INJECT, "FALSE")] {
            let d = decided(&[(ISTIO_STATUS, "{}"), opt_out]);
            assert!(matches!(&d, Decision::NoSidecar(w) if w.contains(opt_out.0)), "{opt_out:?}: {d:?}");
        }
        // Even with sidecarAnnotations emptied (the namespace lists decide).
        assert!(matches!(decide(&ann(&[(MESH, "false")]), &[], &[]).unwrap(), Decision::NoSidecar(_)));
        assert_eq!(decide(&ann(&[(MESH, "true")]), &[], &[]).unwrap(), Decision::Undecided);
        // And extra opt-outs configured.
        let extra = [Matcher::parse("example.com/batch", "x").unwrap()];
        assert!(matches!(decide(&ann(&[(ISTIO_STATUS, "{}"), ("example.com/batch", "")]), &default_sidecar(), &extra).unwrap(), Decision::NoSidecar(w) if w.contains("example.com/batch")));
    }

    #[test]
    fn configured_matchers() {
        let sidecar = [Matcher::parse("linkerd.io/proxy-version", "s").unwrap(), Matcher::parse("example.com/mesh=on", "s").unwrap()];
        assert!(matches!(decide(&ann(&[("linkerd.io/proxy-version", "stable")]), &sidecar, &[]).unwrap(), Decision::Sidecar(_)));
        assert!(matches!(decide(&ann(&[("example.com/mesh", "ON")]), &sidecar, &[]).unwrap(), Decision::Sidecar(_)));
        assert!(matches!(decide(&ann(&[("example.com/mesh", "off")]), &sidecar, &[]).unwrap(), Decision::NoSidecar(_)));
        // Istio's annotation is not a default any more once replaced.
        assert!(matches!(decide(&ann(&[(ISTIO_STATUS, "{}")]), &sidecar, &[]).unwrap(), Decision::NoSidecar(_)));
        for bad in ["", "=x", "a/b/c", "/x", "-x", "x-", "a b"] {
            let e = Matcher::parse(bad, "sidecarAnnotations[0]").unwrap_err();
            assert!(e.msg.starts_with("sidecarAnnotations[0]"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_malformed_mesh_annotation_is_refused_naming_it() {
        let e = decide(&ann(&[(MESH, "yes")]), &default_sidecar(), &[]).unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(e.msg.contains("meshwire.io/mesh") && e.msg.contains("\"yes\""), "{e}");
    }

    #[test]
    fn istio_s_settings() {
        let o = settings(&ann(&[
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "5432, 6379"),
            ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.96.0.0/12,169.254.169.254/32"),
            ("traffic.sidecar.istio.io/excludeInboundPorts", "15020"),
            ("traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/8"),
            ("traffic.sidecar.istio.io/includeOutboundPorts", "443"),
            ("traffic.sidecar.istio.io/includeInboundPorts", "8080,9090"),
        ]))
        .unwrap();
        assert_eq!(o.outbound_ports, Some(vec![5432, 6379]));
        assert_eq!(o.outbound_cidrs, Some(vec![cidr("10.96.0.0/12"), cidr("169.254.169.254/32")]));
        assert_eq!(o.inbound_ports, Some(vec![15020]));
        assert_eq!(o.include_outbound_cidrs, Some(Select::Only(vec![Range::V4(cidr("10.0.0.0/8"))])));
        assert_eq!(o.include_outbound_ports, Some(Select::Only(vec![443])));
        assert_eq!(o.include_inbound_ports, Some(Select::Only(vec![8080, 9090])));
        assert_eq!(o.mesh, None);
        assert_eq!(o.accelerate, None);
    }

    #[test]
    fn wildcards_and_empty_values_mean_what_istio_says() {
        let o = settings(&ann(&[
            ("traffic.sidecar.istio.io/includeOutboundIPRanges", "*"),
            ("traffic.sidecar.istio.io/includeInboundPorts", ""),
            ("traffic.sidecar.istio.io/includeOutboundPorts", " "),
            ("traffic.sidecar.istio.io/excludeOutboundPorts", ""),
        ]))
        .unwrap();
        assert_eq!(o.include_outbound_cidrs, Some(Select::All));
        assert_eq!(o.include_inbound_ports, Some(Select::Only(vec![])), "empty: no inbound redirection");
        assert_eq!(o.include_outbound_ports, Some(Select::Only(vec![])));
        assert_eq!(o.outbound_ports, Some(vec![]));
        let o = settings(&ann(&[("traffic.sidecar.istio.io/includeOutboundIPRanges", "")])).unwrap();
        assert_eq!(o.include_outbound_cidrs, Some(Select::Only(vec![])), "empty: no outbound redirection");
        let o = settings(&ann(&[])).unwrap();
        assert_eq!(o, PodOverride::default());
    }

    #[test]
    fn meshwire_s_own_keys_win_over_istio_s() {
        let o = settings(&ann(&[
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "1"),
            ("meshwire.io/exclude-outbound-ports", "2"),
            ("meshwire.io/exclude-outbound-cidrs", "192.0.2.0/24"),
            ("meshwire.io/exclude-inbound-ports", "3"),
            ("meshwire.io/include-outbound-cidrs", "*"),
            ("meshwire.io/include-outbound-ports", "4"),
            ("meshwire.io/include-inbound-ports", "*"),
            ("meshwire.io/accelerate", "False"),
            ("meshwire.io/dns-capture", " TRUE"),
        ]))
        .unwrap();
        assert_eq!(o.outbound_ports, Some(vec![2]));
        assert_eq!(o.outbound_cidrs, Some(vec![cidr("192.0.2.0/24")]));
        assert_eq!(o.inbound_ports, Some(vec![3]));
        assert_eq!(o.include_outbound_cidrs, Some(Select::All));
        assert_eq!(o.include_outbound_ports, Some(Select::Only(vec![4])));
        assert_eq!(o.include_inbound_ports, Some(Select::All));
        assert_eq!(o.accelerate, Some(false));
        assert_eq!(o.dns_capture, Some(true));
        let o = settings(&ann(&[("meshwire.io/dns-capture", "false")])).unwrap();
        assert_eq!(o.dns_capture, Some(false));
    }

    #[test]
    fn ranges_are_read_as_istio_reads_them() {
        let o = settings(&ann(&[
            ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.1.2.3/8,fd00::/108"),
            ("traffic.sidecar.istio.io/includeOutboundIPRanges", "fd00::/8, 10.50.1.2/16,fd00:50::1/32"),
        ]))
        .unwrap();
        assert_eq!(o.outbound_cidrs, Some(vec![cidr("10.0.0.0/8")]), "host bits dropped, as net.ParseCIDR does");
        assert_eq!(o.outbound_cidrs6, Some(vec!["fd00::/108".parse().unwrap()]), "IPv6 exclusions are kept");
        let v6 = |s: &str| Range::V6(s.parse().unwrap());
        assert_eq!(
            o.include_outbound_cidrs,
            Some(Select::Only(vec![v6("fd00::/8"), Range::V4(cidr("10.50.0.0/16")), v6("fd00:50::/32")])),
            "IPv6 inclusions are kept too, in the list's order, host bits dropped"
        );
        let (out4, out6, _, _) = o.includes();
        assert_eq!(out4, Some(vec![cidr("10.50.0.0/16")]), "split by family");
        assert_eq!(out6, vec!["fd00::/8".parse().unwrap(), "fd00:50::/32".parse().unwrap()]);
        let o = settings(&ann(&[("traffic.sidecar.istio.io/includeOutboundIPRanges", "fd00:50::/32")])).unwrap();
        assert_eq!(o.includes().0, Some(vec![]), "IPv6 ranges only: no IPv4 address is steered");
        let o = settings(&ann(&[("traffic.sidecar.istio.io/excludeOutboundIPRanges", "fd00:1:2::3/48")])).unwrap();
        assert_eq!(o.outbound_cidrs6, Some(vec!["fd00:1:2::/48".parse().unwrap()]), "IPv6 host bits dropped too");
        assert_eq!(o.outbound_cidrs, Some(vec![]), "the list replaces both families");
    }

    #[test]
    fn every_malformed_value_is_refused_naming_the_annotation_and_the_value() {
        let cases: &[(&str, &str)] = &[
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "80,x"),
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "0"),
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "65536"),
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "*"),
            ("traffic.sidecar.istio.io/excludeOutboundPorts", "80,"),
            ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.0.0.0"),
            ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.0.0.0/33"),
            ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "*"),
            ("traffic.sidecar.istio.io/excludeInboundPorts", "-1"),
            ("traffic.sidecar.istio.io/includeOutboundIPRanges", "*,10.0.0.0/8"),
            ("traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0/8"),
            ("traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/8,fd00::/129"),
            ("meshwire.io/include-outbound-cidrs", "fd00:50::/32,fd00::zz/8"),
            ("meshwire.io/include-outbound-cidrs", "fd00:50::"),
            ("traffic.sidecar.istio.io/includeOutboundPorts", "443;80"),
            ("traffic.sidecar.istio.io/includeInboundPorts", "http"),
            ("meshwire.io/exclude-outbound-ports", "1-100"),
            ("meshwire.io/exclude-outbound-cidrs", "::1"),
            ("meshwire.io/exclude-inbound-ports", ",,"),
            ("meshwire.io/include-outbound-cidrs", "10.0.0.0/8,,"),
            ("meshwire.io/include-outbound-ports", "99999"),
            ("meshwire.io/include-inbound-ports", "8080 9090"),
            ("meshwire.io/accelerate", "maybe"),
            ("meshwire.io/dns-capture", "yes"),
        ];
        for (k, v) in cases {
            let e = settings(&ann(&[(k, v)])).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{k}={v}");
            assert!(e.msg.contains(k) && e.msg.contains(&format!("{v:?}")), "{k}={v}: {e}");
        }
        // Every annotation read is in SETTING_KEYS, and every one is tested.
        for k in SETTING_KEYS {
            assert!(cases.iter().any(|(c, _)| c == k), "{k} has no malformed case");
        }
    }

    #[test]
    fn runtime_config_annotations() {
        let a = from_runtime_config(&serde_json::json!({"a": "1", ISTIO_STATUS: "{}"})).unwrap();
        assert_eq!(a.get("a").map(String::as_str), Some("1"));
        assert_eq!(from_runtime_config(&Value::Null).unwrap(), Annotations::new());
        let e = from_runtime_config(&serde_json::json!({"a": 1})).unwrap_err();
        assert!(e.msg.contains("\"a\" must be a string"), "{e}");
        let e = from_runtime_config(&serde_json::json!(["a"])).unwrap_err();
        assert!(e.msg.contains("must be an object"), "{e}");
    }
}
