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
use crate::error::Error;
use crate::datapath::pins::Pins;
use crate::datapath::reaper::Finished;
use pods::MeshedPod;

/// One way of steering pods. `pod` is one attachment (a pod on two networks
/// has two); `siblings` are the pod's other attachments, which share its
/// network namespace and so its namespace-wide settings.
pub trait Interception: Send + Sync {
    /// Steer the attachment; applying again is fine. On error nothing of it
    /// is left (the siblings stay as they were).
    fn apply(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error>;
    /// [`apply`](Self::apply) from a thread that is inside the attachment's
    /// network namespace (its cookie is `pod.cookie`): what is done in the
    /// namespace is done there, without entering it again.
    fn apply_here(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        self.apply(pod, siblings)
    }
    /// Stop steering the attachment; the siblings stay steered. What is
    /// already gone (also the namespace) is fine.
    fn remove(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error>;
    /// [`remove`](Self::remove) for a DEL that is answered before all of
    /// it is done: what steers the attachment goes now, what a crash would
    /// not lose (nothing steers by it, and a restarted loader finds and
    /// removes it) may be done later, in the background
    /// ([`crate::datapath::reaper`]).
    fn remove_answering_first(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        self.remove(pod, siblings)
    }
    /// At a clean stop: what [`remove_answering_first`](Self::remove_answering_first)
    /// left for later is done now, taking at most `within`; what is not
    /// done by then is left to the next start's sweep.
    fn finish_removals(&self, _within: std::time::Duration) -> Finished {
        Finished::default()
    }
    /// Is the attachment steered as it should be? Err says what is not
    /// (Inconsistent), or that it could not be read.
    fn check(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error>;
    /// After a restart: take away what none of the `known` attachments
    /// explains (a loader killed in the middle of an ADD).
    fn sweep(&self, known: &[MeshedPod]) -> Result<(), Error>;
    /// After a restart: each attachment whose network namespace is still
    /// the one recorded is steered again, as `apply` does; answers in
    /// `pods`' order. `pods` come by container (a container's attachments
    /// next to each other). This way checks the namespaces a few at once,
    /// then applies the live ones in turn.
    fn adopt(&self, pods: &[Adopting]) -> Vec<Adopted> {
        let states = pods::netns_state_all(&pods.iter().map(|a| &a.pod).collect::<Vec<_>>());
        pods.iter()
            .zip(states)
            .map(|(a, state)| match state {
                pods::NetnsState::Gone => Adopted::Gone,
                pods::NetnsState::Unknown(e) => Adopted::Unknown(e),
                pods::NetnsState::Alive => self.apply(&a.pod, &a.siblings).map_or_else(Adopted::Failed, |()| Adopted::Kept),
            })
            .collect()
    }
}

/// An attachment to adopt after a restart, with its siblings.
pub struct Adopting {
    pub pod: MeshedPod,
    pub siblings: Vec<MeshedPod>,
}

/// What adoption did with one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adopted {
    /// Steered again.
    Kept,
    /// Its network namespace is gone: nothing is at its path (ENOENT), or
    /// the path names another namespace now (its cookie differs). Nothing
    /// was done; its record and entries can go.
    Gone,
    /// Its network namespace could not be looked at (out of descriptors,
    /// setns refused, ...): the pod may be alive, so it is kept as it was
    /// (its record, its entries and filters from before the restart),
    /// not steered again. The error names its path and what failed.
    Unknown(crate::system::NetnsError),
    /// It could not be steered again; as after a failed `apply`, nothing of
    /// it is left (the siblings stay as they were).
    Failed(Error),
}

/// The interception `config` asks for.
pub fn of(config: &Config, pins: &Pins) -> Box<dyn Interception> {
    let ebpf = ebpf::EbpfTc::new(pins, config.tc_attach).with_sidecar_uid(config.sidecar.uid);
    match config.interception {
        Mode::Ebpf => Box::new(ebpf),
        Mode::Iptables => Box::new(iptables::Iptables::new(iptables::NodeRules::of(config), ebpf)),
    }
}

/// For `meshwire-loader cleanup`: the configured interception, which in the
/// eBPF mode also takes away the netfilter rules a run in the iptables mode
/// may have left (as far as it can: without iptables there are none). Its
/// removals go on when a map's pin is missing ([`ebpf::EbpfTc::for_cleanup`]).
pub fn for_cleanup(config: &Config, pins: &Pins) -> Box<dyn Interception> {
    let ebpf = ebpf::EbpfTc::new(pins, config.tc_attach).for_cleanup();
    match config.interception {
        Mode::Ebpf => Box::new(WithLeftoverRules(ebpf)),
        Mode::Iptables => Box::new(iptables::Iptables::new(iptables::NodeRules::of(config), ebpf)),
    }
}

struct WithLeftoverRules(ebpf::EbpfTc);

impl Interception for WithLeftoverRules {
    fn apply(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        self.0.apply(pod, siblings)
    }

    fn remove(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        if let Err(e) = iptables::remove(pod) {
            log::debug!("no iptables-mode rules removed: {e}");
        }
        self.0.remove(pod, siblings)
    }

    fn check(&self, pod: &MeshedPod, siblings: &[MeshedPod]) -> Result<(), Error> {
        self.0.check(pod, siblings)
    }

    fn sweep(&self, known: &[MeshedPod]) -> Result<(), Error> {
        self.0.sweep(known)
    }
}
