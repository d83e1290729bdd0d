//! Every path meshwire pins under bpffs, in one place.
//!
//! ```text
//! <pin_dir>/maps/<map name>      maps, pinned by libbpf (LIBBPF_PIN_BY_NAME)
//! <pin_dir>/upgrade/<map name>   an earlier version's map during an upgrade
//! <pin_dir>/links/<program name> cgroup links: the attachment outlives the loader
//! <pin_dir>/progs/<program name> tc programs, attached per pod from these pins
//! <pin_dir>/pods/<cookie>/tc_ingress_<hex ifname>, tc_egress_<hex ifname>  (one pair per interface)
//!                                a pod's tcx links (netns cookie in decimal)
//! <pin_dir>/pods/<cookie>/clsact_qdisc_<hex ifname>
//!                                a directory: meshwire created the clsact qdisc
//!                                its tc filters are on (tc.rs, clsact.rs)
//! ```

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Maps shared by all objects (names as in bpf/lib/meshwire_maps.h).
pub const MAP_PODS: &str = "mw_pods";
pub const MAP_EXCL_PORTS: &str = "mw_excl_ports";
pub const MAP_EXCL_CIDR4: &str = "mw_excl_cidr4";
pub const MAP_INCL_CIDR4: &str = "mw_incl_cidr4";
pub const MAP_ORIG_SK: &str = "mw_orig_sk";
pub const MAP_ORIG_TUPLE4: &str = "mw_orig_tuple4";
pub const MAP_STATS: &str = "mw_stats";
pub const MAP_POD_IPS: &str = "mw_pod_ips";
pub const MAP_EXCL_IN4: &str = "mw_excl_in4";
pub const MAP_FLOW4: &str = "mw_flow4";
/// Private to the tc object (bpf/bpf_tc.c): closing state of mw_flow4's flows.
pub const MAP_FLOW4_FIN: &str = "mw_flow4_fin";
/// Private to the tc object: handshakes in progress (not yet in mw_flow4).
pub const MAP_FLOW4_SYN: &str = "mw_flow4_syn";
pub const MAP_SOCK_HASH: &str = "mw_sock_hash";
/// Private to acceleration (bpf/lib/meshwire_accel.h): shared by the sockops
/// and sk_msg objects, one entry per socket in mw_sock_hash.
pub const MAP_ACCEL_STATE: &str = "mw_accel_state";
/// Decision events (ring buffer) for `meshwire-loader trace`.
pub const MAP_EVENTS: &str = "mw_events";

pub const ALL_MAPS: &[&str] = &[
    MAP_PODS,
    MAP_POD_IPS,
    MAP_EXCL_PORTS,
    MAP_EXCL_CIDR4,
    MAP_INCL_CIDR4,
    MAP_EXCL_IN4,
    MAP_ORIG_SK,
    MAP_ORIG_TUPLE4,
    MAP_FLOW4,
    MAP_FLOW4_FIN,
    MAP_FLOW4_SYN,
    MAP_SOCK_HASH,
    MAP_ACCEL_STATE,
    MAP_STATS,
    MAP_EVENTS,
];

#[derive(Debug, Clone)]
pub struct Pins {
    root: PathBuf,
}

impl Pins {
    pub fn new(root: &Path) -> Pins {
        Pins { root: root.to_path_buf() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where an earlier version's map waits while an upgrade recreates it
    /// with another capacity (upgrade.rs). A directory of its own: bpffs
    /// refuses names with a dot, and no map name can collide there.
    pub fn map_set_aside(&self, name: &str) -> PathBuf {
        self.upgrade_dir().join(name)
    }

    pub fn upgrade_dir(&self) -> PathBuf {
        self.root.join("upgrade")
    }

    pub fn maps_dir(&self) -> PathBuf {
        self.root.join("maps")
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.maps_dir().join(name)
    }

    pub fn links_dir(&self) -> PathBuf {
        self.root.join("links")
    }

    pub fn link(&self, program: &str) -> PathBuf {
        self.links_dir().join(program)
    }

    pub fn progs_dir(&self) -> PathBuf {
        self.root.join("progs")
    }

    /// A program pinned so that it can be attached later (per pod).
    pub fn prog(&self, program: &str) -> PathBuf {
        self.progs_dir().join(program)
    }

    pub fn pods_dir(&self) -> PathBuf {
        self.root.join("pods")
    }

    /// A pod's own pins (its tc links), by netns cookie.
    pub fn pod_dir(&self, cookie: u64) -> PathBuf {
        self.pods_dir().join(cookie.to_string())
    }

    /// Create the directories (root only: mode 0700).
    pub fn create_dirs(&self) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        for dir in [self.root.clone(), self.maps_dir(), self.links_dir(), self.progs_dir(), self.pods_dir()] {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        }
        Ok(())
    }

    /// Serialise writers of the pins (daemon start, pod changes, cleanup).
    /// The lock is released when the returned guard is dropped.
    pub fn lock(&self) -> io::Result<PinLock> {
        let dir = File::open(&self.root)?;
        let lock = nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
        Ok(PinLock { _lock: lock })
    }
}

pub struct PinLock {
    _lock: nix::fcntl::Flock<File>,
}
