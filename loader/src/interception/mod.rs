//! How a meshed pod's traffic is steered into its sidecar, behind one trait
//! the pod service uses ([`Interception`]):
//!
//! - [`ebpf::EbpfTc`] (`interception.mode = "ebpf"`): the pod's entries in the
//!   datapath's maps ([`pods`]), read by the cgroup hooks, and the tc programs
//!   on its interface for connections from other nodes;
//! - [`iptables::Iptables`] (`"iptables"`): netfilter rules in the pod's
//!   network namespace.

pub mod ebpf;
pub mod iptables;
pub mod pods;

use crate::config::{Config, Interception as Mode};
use crate::datapath::pins::Pins;
use pods::{MeshedPod, PodMaps};

/// One way of steering pods. `pod` is one attachment (a pod on two networks
/// has two); `siblings` are the pod's other attachments, which share its
/// network namespace and so its namespace-wide settings.
pub trait Interception: Send + Sync {
    /// Steer the attachment; applying again is fine. On error nothing of it
    /// is left (the siblings stay as they were).
    fn apply(&self, maps: &PodMaps, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), String>;
    /// Stop steering the attachment; the siblings stay steered. What is
    /// already gone (also the namespace) is fine.
    fn remove(&self, maps: &PodMaps, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), String>;
    /// Is the attachment steered as it should be? Err says what is not.
    fn check(&self, maps: &PodMaps, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), String>;
    /// After a restart: take away what none of the `known` attachments
    /// explains (a loader killed in the middle of an ADD).
    fn sweep(&self, maps: &PodMaps, known: &[MeshedPod]) -> Result<(), String>;
}

/// The interception `config` asks for.
pub fn of(config: &Config, pins: &Pins) -> Box<dyn Interception> {
    let ebpf = ebpf::EbpfTc::new(pins, config.tc_attach);
    match config.interception {
        Mode::Ebpf => Box::new(ebpf),
        Mode::Iptables => Box::new(iptables::Iptables::new(iptables::NodeRules::of(config), ebpf)),
    }
}
