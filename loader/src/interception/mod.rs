//! How a meshed pod's traffic is steered into its sidecar, when not by the
//! eBPF datapath's own hooks: netfilter rules in the pod's namespace.

pub mod iptables;
