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

/// Declares each map name once, and ALL_MAPS with every one of them.
macro_rules! maps {
    ($($(#[$doc:meta])* $konst:ident = $name:literal,)*) => {
        $($(#[$doc])* pub const $konst: &str = $name;)*
        /// Every pinned map of the datapath; a unit test (objects_tests.rs)
        /// compares it with the maps of the built objects.
        pub const ALL_MAPS: &[&str] = &[$($konst,)*];
    };
}

// The pinned maps, as bpf/lib/meshwire_maps.h declares them.
maps! {
    MAP_PODS = "mw_pods",
    MAP_POD_IPS = "mw_pod_ips",
    /// The sidecar's host UID of pods in a user namespace of their own.
    MAP_POD_UID = "mw_pod_uid",
    MAP_EXCL_PORTS = "mw_excl_ports",
    MAP_EXCL_CIDR4 = "mw_excl_cidr4",
    MAP_INCL_CIDR4 = "mw_incl_cidr4",
    MAP_EXCL_IN4 = "mw_excl_in4",
    MAP_ORIG_SK = "mw_orig_sk",
    MAP_ORIG_TUPLE4 = "mw_orig_tuple4",
    MAP_FLOW4 = "mw_flow4",
    /// Used by tc only (bpf/bpf_tc.c): closing state of mw_flow4's flows.
    MAP_FLOW4_FIN = "mw_flow4_fin",
    /// Used by tc only: handshakes in progress (not yet in mw_flow4).
    MAP_FLOW4_SYN = "mw_flow4_syn",
    MAP_SOCK_HASH = "mw_sock_hash",
    /// Used by acceleration only (sockops and sk_msg): one entry per socket
    /// in mw_sock_hash.
    MAP_ACCEL_STATE = "mw_accel_state",
    /// `[dns] servers`: the resolvers whose queries are captured.
    MAP_DNS_SERVERS4 = "mw_dns_servers4",
    MAP_STATS = "mw_stats",
    /// Decision events (ring buffer) for `meshwire-loader trace`.
    MAP_EVENTS = "mw_events",
}

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
