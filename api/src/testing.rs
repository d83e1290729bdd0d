//! Test fixtures for the crates that speak the protocol (feature `testing`,
//! enabled by their dev-dependencies): one typical pod, which each test
//! changes only where it is about something else.

use std::net::Ipv4Addr;

use crate::{PodRecord, PodSpec};

/// A meshed pod as the CNI plugin registers it: one attachment (eth0) in the
/// namespace /run/netns/<container_id>, one address, per-pod exclusions of
/// every kind, no include lists, acceleration and DNS capture left to the node.
pub fn pod(container_id: &str) -> PodSpec {
    PodSpec {
        container_id: container_id.into(),
        netns: format!("/run/netns/{container_id}").into(),
        ifname: "eth0".into(),
        ips: vec![Ipv4Addr::new(10, 1, 0, 5)],
        ips6: vec![],
        namespace: Some("default".into()),
        name: Some("curl".into()),
        exclude_outbound_ports: vec![22],
        exclude_outbound_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
        exclude_outbound_cidrs6: vec!["fd00:96::/64".parse().unwrap()],
        exclude_inbound_ports: vec![9090],
        accelerate: None,
        dns_capture: None,
        network: Some("mesh-net".into()),
        include_outbound_cidrs: None,
        include_outbound_cidrs6: vec![],
        include_outbound_ports: vec![],
        include_inbound_ports: None,
    }
}

/// [`pod`] as the loader records it, in the network namespace `netns_cookie`.
pub fn record(container_id: &str, netns_cookie: u64) -> PodRecord {
    PodRecord { spec: pod(container_id), netns_cookie, seq: 0, unchecked: None }
}
