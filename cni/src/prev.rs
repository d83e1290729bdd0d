//! The pod's addresses, from the previous plugin's result (prevResult).
//!
//! An address belongs to the pod when its `interface` index names the
//! interface CNI_IFNAME whose `sandbox` is CNI_NETNS. When no address of the
//! result names an interface at all (an IPAM-style result), every address is
//! the pod's. Both the 0.3/0.4 form (`"version": "4"`) and the 1.x form are read;
//! IPv4 and IPv6 addresses are the pod's alike (a dual-stack pod is meshed in
//! both families).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde_json::Value;

use crate::error::{code, CniError};

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

fn same_sandbox(sandbox: &str, netns: &Path) -> bool {
    if Path::new(sandbox) == netns {
        return true;
    }
    // Two paths to one namespace (a bind mount and /proc/PID/ns/net): same inode.
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(sandbox), std::fs::metadata(netns)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// A pod's addresses, by family, in the result's order, once each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIps {
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

/// The pod's addresses in `prev` for interface `ifname` in `netns`.
pub fn pod_ips(prev: &Value, ifname: &str, netns: &Path) -> Result<PodIps, CniError> {
    let interfaces = match prev.get("interfaces") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(invalid("prevResult.interfaces must be a list")),
    };
    let ours: Vec<bool> = interfaces
        .iter()
        .enumerate()
        .map(|(i, itf)| {
            let name = itf.get("name").and_then(Value::as_str).ok_or_else(|| invalid(format!("prevResult.interfaces[{i}] has no \"name\"")))?;
            let sandbox = itf.get("sandbox").and_then(Value::as_str).unwrap_or("");
            Ok(name == ifname && !sandbox.is_empty() && same_sandbox(sandbox, netns))
        })
        .collect::<Result<_, CniError>>()?;
    let ips = match prev.get("ips") {
        None | Some(Value::Null) => return Ok(PodIps::default()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid("prevResult.ips must be a list")),
    };
    let any_indexed = ips.iter().any(|ip| ip.get("interface").is_some_and(|v| !v.is_null()));
    let mut out = PodIps::default();
    for (i, ip) in ips.iter().enumerate() {
        let addr = ip.get("address").and_then(Value::as_str).ok_or_else(|| invalid(format!("prevResult.ips[{i}] has no \"address\"")))?;
        let host = addr.split_once('/').map_or(addr, |(a, _)| a);
        let parsed: IpAddr = host.parse().map_err(|_| invalid(format!("prevResult.ips[{i}].address {addr:?} is not an IP address in CIDR form")))?;
        let mine = match ip.get("interface") {
            None | Some(Value::Null) => !any_indexed,
            Some(v) => {
                let idx = v.as_u64().ok_or_else(|| invalid(format!("prevResult.ips[{i}].interface must be an index, not {v}")))? as usize;
                *ours.get(idx).ok_or_else(|| {
                    invalid(format!("prevResult.ips[{i}].interface {idx} is out of range ({} interfaces)", interfaces.len()))
                })?
            }
        };
        match (mine, parsed) {
            (true, IpAddr::V4(a)) if !out.v4.contains(&a) => out.v4.push(a),
            (true, IpAddr::V6(a)) if !out.v6.contains(&a) => out.v6.push(a),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NS: &str = "/var/run/netns/cni-1";

    /// What the bridge plugin returns: bridge, host veth, container veth.
    fn bridge_result() -> Value {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:02"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": NS}
            ],
            "ips": [
                {"address": "10.22.0.5/16", "gateway": "10.22.0.1", "interface": 2},
                {"address": "fd00::5/64", "interface": 2},
                {"address": "10.22.0.1/16", "interface": 0}
            ]
        })
    }

    #[test]
    fn addresses_of_the_sandbox_interface() {
        let ips = pod_ips(&bridge_result(), "eth0", Path::new(NS)).unwrap();
        assert_eq!(ips.v4, vec![Ipv4Addr::new(10, 22, 0, 5)]);
        assert_eq!(ips.v6, vec!["fd00::5".parse::<Ipv6Addr>().unwrap()], "a dual-stack pod's IPv6 address is its own too");
        // Same name, other sandbox; other name: nothing.
        assert_eq!(pod_ips(&bridge_result(), "eth0", Path::new("/var/run/netns/other")).unwrap(), PodIps::default());
        assert_eq!(pod_ips(&bridge_result(), "net1", Path::new(NS)).unwrap(), PodIps::default());
    }

    #[test]
    fn old_result_form_and_duplicates() {
        let r = json!({
            "cniVersion": "0.3.1",
            "interfaces": [{"name": "eth0", "sandbox": NS}],
            "ips": [
                {"version": "4", "address": "10.1.0.5/24", "interface": 0},
                {"version": "4", "address": "10.1.0.5/24", "interface": 0},
                {"version": "4", "address": "10.1.0.6/24", "interface": 0}
            ]
        });
        assert_eq!(pod_ips(&r, "eth0", Path::new(NS)).unwrap().v4, vec![Ipv4Addr::new(10, 1, 0, 5), Ipv4Addr::new(10, 1, 0, 6)]);
    }

    #[test]
    fn ipam_style_result_without_interfaces() {
        let r = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.9/24"}]});
        assert_eq!(pod_ips(&r, "eth0", Path::new(NS)).unwrap().v4, vec![Ipv4Addr::new(10, 1, 0, 9)]);
        assert_eq!(pod_ips(&json!({"cniVersion": "1.0.0"}), "eth0", Path::new(NS)).unwrap(), PodIps::default());
    }

    #[test]
    fn sandbox_paths_to_one_namespace_match() {
        // /proc/self/ns/net and /proc/thread-self/ns/net are links to one namespace.
        let r = json!({"interfaces": [{"name": "eth0", "sandbox": "/proc/self/ns/net"}], "ips": [{"address": "10.0.0.2/8", "interface": 0}]});
        assert_eq!(pod_ips(&r, "eth0", Path::new("/proc/thread-self/ns/net")).unwrap().v4, vec![Ipv4Addr::new(10, 0, 0, 2)]);
    }

    #[test]
    fn malformed_results_are_invalid_config() {
        let cases = [
            (json!({"ips": {}}), "prevResult.ips must be a list"),
            (json!({"interfaces": 1}), "prevResult.interfaces must be a list"),
            (json!({"interfaces": [{}]}), "prevResult.interfaces[0] has no \"name\""),
            (json!({"ips": [{"interface": 0}]}), "prevResult.ips[0] has no \"address\""),
            (json!({"ips": [{"address": "10.0.0.300/24"}]}), "is not an IP address"),
            (json!({"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.0.0.3/24", "interface": 1}]}), "interface 1 is out of range (1 interfaces)"),
            (json!({"ips": [{"address": "10.0.0.3/24", "interface": "eth0"}]}), "must be an index"),
        ];
        for (r, want) in cases {
            let e = pod_ips(&r, "eth0", Path::new(NS)).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG);
            assert!(e.msg.contains(want), "{r}: {e}");
        }
    }
}
