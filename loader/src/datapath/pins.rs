//! Every path meshwire pins under bpffs, in one place.
//!
//! ```text
//! <pin_dir>/maps/<map name>      maps, pinned by libbpf (LIBBPF_PIN_BY_NAME)
//! <pin_dir>/upgrade/<map name>   an earlier version's map during an upgrade
//! <pin_dir>/upgrade/<map name>~carried
//!                                a counters map's values the upgrade carried over
//! <pin_dir>/catch-up/<map name>~<map id>, <map name>~<map id>~carried
//!                                an upgraded map's earlier one (and its carried values)
//!                                from the start's commit to the catch-up after adoption
//! <pin_dir>/links/<program name> cgroup links: the attachment outlives the loader
//! <pin_dir>/progs/<program name> tc programs, attached per pod from these pins
//! <pin_dir>/pods/<cookie>/tc_ingress_<hex ifname>, tc_egress_<hex ifname>  (one pair per interface)
//!                                a pod's tcx links (netns cookie in decimal)
//! <pin_dir>/pods/<cookie>/clsact_qdisc_<hex ifname>
//!                                a directory: meshwire created the clsact qdisc
//!                                its tc filters are on (tc.rs, clsact.rs)
//! <pin_dir>/pods/<cookie>/clsact_if_<hex ifname>
//!                                a directory: meshwire's clsact filters (not pinned)
//!                                are on that interface ([`PodPins`])
//! ```

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::libbpf::{obj_get, BpfError, MapFd};

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
    MAP_EXCL_CIDR6 = "mw_excl_cidr6",
    /// mw_incl_cidr4's twin: a pod's included IPv6 ranges.
    MAP_INCL_CIDR6 = "mw_incl_cidr6",
    MAP_EXCL_IN4 = "mw_excl_in4",
    /// Native IPv6 inbound: mw_pod_ips and mw_excl_in4's twins, by IPv6 address.
    MAP_POD_IPS6 = "mw_pod_ips6",
    MAP_EXCL_IN6 = "mw_excl_in6",
    MAP_ORIG_SK = "mw_orig_sk",
    MAP_ORIG_TUPLE4 = "mw_orig_tuple4",
    /// Native IPv6 (interception.ipv6 = "intercept"): mw_orig_sk and
    /// mw_orig_tuple4's twins.
    MAP_ORIG6_SK = "mw_orig6_sk",
    MAP_ORIG_TUPLE6 = "mw_orig_tuple6",
    MAP_FLOW4 = "mw_flow4",
    /// Used by tc only (bpf/bpf_tc.c): closing state of mw_flow4's flows.
    MAP_FLOW4_FIN = "mw_flow4_fin",
    /// Used by tc only: handshakes in progress (not yet in mw_flow4).
    MAP_FLOW4_SYN = "mw_flow4_syn",
    /// mw_flow4, mw_flow4_fin and mw_flow4_syn for inbound IPv6 flows.
    MAP_FLOW6 = "mw_flow6",
    MAP_FLOW6_FIN = "mw_flow6_fin",
    MAP_FLOW6_SYN = "mw_flow6_syn",
    MAP_SOCK_HASH = "mw_sock_hash",
    /// Used by acceleration only (sockops and sk_msg): one entry per socket
    /// in mw_sock_hash.
    MAP_ACCEL_STATE = "mw_accel_state",
    /// mw_sock_hash and mw_accel_state for native IPv6 sockets (v4-mapped
    /// ones are in mw_sock_hash).
    MAP_SOCK_HASH6 = "mw_sock_hash6",
    MAP_ACCEL_STATE6 = "mw_accel_state6",
    /// Acceleration's learning (sockops): per pod and destination, whether
    /// its recent accelerated connections were short.
    MAP_ACCEL_HINTS = "mw_accel_hints",
    /// `[dns] servers`: the resolvers whose queries are captured, by family.
    MAP_DNS_SERVERS4 = "mw_dns_servers4",
    MAP_DNS_SERVERS6 = "mw_dns_servers6",
    MAP_STATS = "mw_stats",
    /// Decision events (ring buffer) for `meshwire-loader trace`.
    MAP_EVENTS = "mw_events",
}

/// Maps an earlier version pinned that this one no longer has. Their pins
/// go at the end of a start that replaced the programs using them
/// ([`super::upgrade::Upgrade::finish`]) and in `cleanup`.
pub const RETIRED_MAPS: &[&str] = &[
    // Each accelerated socket's psock address (since ec81600), now in its
    // mw_accel_state entry (struct mw_accel_state.psock).
    "mw_accel_psock",
    "mw_accel_psock6",
];

/// A map, or a tc program (pinned under progs/ for per-pod attach), of the
/// datapath: what a [`PinnedError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinned {
    Map(&'static str),
    TcProgram(&'static str),
}

impl std::fmt::Display for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pinned::Map(name) => write!(f, "map {name}"),
            Pinned::TcProgram(name) => write!(f, "tc program {name}"),
        }
    }
}

/// Why a map or tc program of the datapath could not be opened from its pin
/// ([`Pins::open_map`], [`Pins::open_prog`]). `From` makes it an [`Error`]:
/// Missing is Internal (the node's datapath lacks a pin: the request cannot
/// be served, and a CNI DEL is not taken for done), NoDatapath NotFound,
/// Unopenable Os with its errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinnedError {
    /// The datapath is pinned under `pin_dir` (maps of it are there) but
    /// `pin` is not: its pin was removed (by hand, a half-cleaned bpffs; the
    /// programs still hold a map), or an earlier version without the map
    /// pinned them. `run` pins a map the programs hold again
    /// (datapath::repin), or a new one when none does; a tc program again.
    Missing { pin: Pinned, pin_dir: PathBuf },
    /// No map of the datapath is pinned under `pin_dir`.
    NoDatapath { pin_dir: PathBuf },
    /// The pin of `pin` is there but could not be opened.
    Unopenable { pin: Pinned, errno: Option<i32>, error: String },
}

impl std::fmt::Display for PinnedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PinnedError::Missing { pin: Pinned::Map(map), pin_dir } => write!(
                f,
                "map {map} is not pinned under {}, though the datapath's other maps are: its pin was removed (by hand, a half-cleaned bpffs), \
                 or they were pinned by an earlier version without it. \
                 Restart `meshwire-loader run` with this pin directory: it pins again the {map} the attached programs still use, with what it holds \
                 (only when none of them uses one, a new, empty {map}, into which it writes the pods' and the node's entries again: \
                 what the datapath kept there for connections in flight is then lost; its log says which); \
                 or `meshwire-loader cleanup`, then `run`, to start over",
                Pins::new(pin_dir).maps_dir().display()
            ),
            PinnedError::Missing { pin: Pinned::TcProgram(program), pin_dir } => write!(
                f,
                "tc program {program} is not pinned under {}, though the datapath's maps are: its pin was removed (by hand, a half-cleaned bpffs), \
                 so no pod can get tc attached (an ADD with an interface, adoption). \
                 Restart `meshwire-loader run` with this pin directory: it pins {program} again and moves the pods' tc onto it \
                 (nothing is lost: the maps and the attached pods' tc stay); or `meshwire-loader cleanup`, then `run`, to start over",
                Pins::new(pin_dir).progs_dir().display()
            ),
            PinnedError::NoDatapath { pin_dir } => write!(
                f,
                "no meshwire datapath is pinned under {}: is `meshwire-loader run` running (or has it run) on this node with this pin directory? Check --pin-dir (and bpf.pin_dir in the --config file)",
                pin_dir.display()
            ),
            PinnedError::Unopenable { pin, error, .. } => write!(f, "{pin}: {error}"),
        }
    }
}

impl std::error::Error for PinnedError {}

impl From<PinnedError> for Error {
    fn from(e: PinnedError) -> Error {
        match e {
            PinnedError::Missing { .. } => Error::Internal(e.to_string()),
            PinnedError::NoDatapath { .. } => Error::NotFound(e.to_string()),
            PinnedError::Unopenable { errno: Some(errno), .. } => Error::Os { errno, message: e.to_string() },
            PinnedError::Unopenable { .. } => Error::Internal(e.to_string()),
        }
    }
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

    /// Where an upgrade keeps, for a map of counters ([`super::upgrade::COUNTERS`]),
    /// the values it carried over from the earlier map: what that map had
    /// counted when the copy was made, so that a start resuming one that
    /// died, and the catch-up after adoption, add only what it counted since.
    pub fn map_carried(&self, name: &str) -> PathBuf {
        self.upgrade_dir().join(format!("{name}~carried"))
    }

    /// Where an upgrade's earlier maps that pods' clsact filters still
    /// write wait, from the start's commit until the catch-up after
    /// adoption has carried what they wrote (upgrade::CatchUp): a loader
    /// that dies before that leaves them for the next start to catch up.
    pub fn catch_up_dir(&self) -> PathBuf {
        self.root.join("catch-up")
    }

    /// The earlier map `name` (kernel id `id`) waiting for the catch-up;
    /// the id tells apart two that wait for the same name (a second
    /// upgrade before a catch-up was done).
    pub fn map_staged(&self, name: &str, id: u32) -> PathBuf {
        self.catch_up_dir().join(format!("{name}~{id}"))
    }

    /// The values an upgrade carried over from the counters map staged at
    /// `staged` ([`Self::map_staged`]).
    pub fn staged_carried(staged: &Path) -> PathBuf {
        let name = staged.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        staged.with_file_name(format!("{name}~carried"))
    }

    /// The maps waiting for the catch-up: (map name, pin), in order.
    pub fn staged_maps(&self) -> Vec<(&'static str, PathBuf)> {
        let Ok(dir) = std::fs::read_dir(self.catch_up_dir()) else {
            return Vec::new();
        };
        let mut staged: Vec<(&'static str, PathBuf)> = dir
            .filter_map(|e| {
                let e = e.ok()?;
                let file = e.file_name().into_string().ok()?;
                let (name, id) = file.rsplit_once('~')?;
                id.parse::<u32>().ok()?;
                Some((*ALL_MAPS.iter().find(|m| **m == name)?, e.path()))
            })
            .collect();
        staged.sort();
        staged
    }

    /// The maps an upgrade set aside ([`Self::map_set_aside`]): a start is
    /// under way, or one died midway and the next start resumes it.
    pub fn set_aside_maps(&self) -> Vec<&'static str> {
        ALL_MAPS.iter().copied().filter(|m| self.map_set_aside(m).exists()).collect()
    }

    pub fn upgrade_dir(&self) -> PathBuf {
        self.root.join("upgrade")
    }

    pub fn maps_dir(&self) -> PathBuf {
        self.root.join("maps")
    }

    /// Is any map of the datapath pinned here?
    pub fn any_map_pinned(&self) -> bool {
        ALL_MAPS.iter().any(|m| self.map(m).exists())
    }

    /// The first map of the datapath not pinned here, when others are
    /// (Missing), or NoDatapath when none is.
    pub fn require_all_maps(&self) -> Result<(), PinnedError> {
        match ALL_MAPS.iter().find(|m| !self.map(m).exists()) {
            None => Ok(()),
            Some(_) if !self.any_map_pinned() => Err(PinnedError::NoDatapath { pin_dir: self.root.clone() }),
            Some(map) => Err(PinnedError::Missing { pin: Pinned::Map(map), pin_dir: self.root.clone() }),
        }
    }

    /// Opens the datapath's map `name` from its pin; a pin that is not
    /// there is named, with what to do ([`PinnedError`]).
    pub fn open_map(&self, name: &'static str) -> Result<MapFd, PinnedError> {
        MapFd::open_pinned(&self.map(name)).map_err(|e| self.open_failure(Pinned::Map(name), e))
    }

    /// Opens the datapath's tc program `program` from its pin under
    /// progs/; a pin that is not there is named, with what to do
    /// ([`PinnedError`]).
    pub fn open_prog(&self, program: &'static str) -> Result<OwnedFd, PinnedError> {
        obj_get(&self.prog(program)).map_err(|e| self.open_failure(Pinned::TcProgram(program), e))
    }

    /// A pin that is not there is Missing when the datapath's maps are
    /// pinned, NoDatapath when none is.
    fn open_failure(&self, pin: Pinned, e: BpfError) -> PinnedError {
        match e.source.raw_os_error() {
            Some(libc::ENOENT) if self.any_map_pinned() => PinnedError::Missing { pin, pin_dir: self.root.clone() },
            Some(libc::ENOENT) => PinnedError::NoDatapath { pin_dir: self.root.clone() },
            errno => PinnedError::Unopenable { pin, errno, error: e.to_string() },
        }
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

    /// A pod's own pins, by netns cookie.
    pub fn pod(&self, cookie: u64) -> PodPins {
        PodPins { dir: self.pod_dir(cookie) }
    }

    /// The pods that have pins, by netns cookie, in order.
    pub fn pod_cookies(&self) -> Vec<u64> {
        let Ok(dir) = std::fs::read_dir(self.pods_dir()) else {
            return Vec::new();
        };
        let mut cookies: Vec<u64> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        cookies.sort_unstable();
        cookies
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

/// Where a pin is written before it is renamed over `path` in one step
/// (bpffs refuses names with a '.').
pub fn temp_pin(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{name}~new"))
}

/// `clsact_qdisc_<hex of the interface name>`: meshwire created the clsact
/// qdisc of that interface. (`clsact_qdisc` alone is the previous layout's,
/// one interface per pod.)
const QDISC_MARKER: &str = "clsact_qdisc";
/// `clsact_if_<hex of the interface name>`: meshwire's clsact filters are on
/// that interface (they are not pinned), so cleanup finds them without the
/// pod's record.
const CLSACT_IF_PREFIX: &str = "clsact_if_";

/// An interface name as pin names hold it (bpffs refuses names with a dot).
fn hex(ifname: &str) -> String {
    ifname.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Is `name` a pod's pin of the tcx link `link` (either layout)?
pub fn is_link_name(link: &str, name: &str) -> bool {
    name == link || name.strip_prefix(link).is_some_and(|rest| rest.starts_with('_') && !rest.ends_with("~new"))
}

/// A pod's own pins, `<pin_dir>/pods/<cookie>/` (datapath::tc): per interface
/// a pair of tcx links `<link>_<hex ifname>` and the marker directories
/// `clsact_qdisc_<hex ifname>` and `clsact_if_<hex ifname>`. The previous
/// layout, one interface per pod, named the links `<link>` and the qdisc
/// marker `clsact_qdisc`.
#[derive(Debug, Clone)]
pub struct PodPins {
    dir: PathBuf,
}

impl PodPins {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The interface's tcx link of the program whose link name is `link`.
    pub fn link(&self, link: &str, ifname: &str) -> PathBuf {
        self.dir.join(format!("{link}_{}", hex(ifname)))
    }

    /// The previous layout's tcx link.
    pub fn legacy_link(&self, link: &str) -> PathBuf {
        self.dir.join(link)
    }

    /// Every pin of the tcx link `link` there is (either layout).
    pub fn links_of(&self, link: &str) -> Vec<PathBuf> {
        self.names().into_iter().filter(|n| is_link_name(link, n)).map(|n| self.dir.join(n)).collect()
    }

    /// The interface's qdisc marker.
    pub fn qdisc_marker(&self, ifname: &str) -> PathBuf {
        self.dir.join(format!("{QDISC_MARKER}_{}", hex(ifname)))
    }

    pub fn legacy_qdisc_marker(&self) -> PathBuf {
        self.dir.join(QDISC_MARKER)
    }

    /// The qdisc marker that speaks for `ifname`: its own, or the previous
    /// layout's when no other interface of the pod is recorded.
    pub fn qdisc_marker_for(&self, ifname: &str) -> PathBuf {
        let own = self.qdisc_marker(ifname);
        let legacy = self.legacy_qdisc_marker();
        if !own.exists() && legacy.exists() && self.clsact_ifnames().iter().all(|i| i == ifname) {
            return legacy;
        }
        own
    }

    /// Every interface's qdisc marker there is (this layout's).
    pub fn qdisc_markers(&self) -> Vec<PathBuf> {
        self.names().into_iter().filter(|n| n.starts_with(&format!("{QDISC_MARKER}_"))).map(|n| self.dir.join(n)).collect()
    }

    pub fn clsact_if_marker(&self, ifname: &str) -> PathBuf {
        self.dir.join(format!("{CLSACT_IF_PREFIX}{}", hex(ifname)))
    }

    /// The interface names the markers say carry meshwire's clsact filters.
    pub fn clsact_ifnames(&self) -> Vec<String> {
        self.names()
            .into_iter()
            .filter_map(|name| {
                let hex = name.strip_prefix(CLSACT_IF_PREFIX)?;
                let bytes = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect::<Option<Vec<u8>>>()?;
                String::from_utf8(bytes).ok()
            })
            .collect()
    }

    /// Does it hold a pin of some interface (this layout's names, which end
    /// in an interface name), a link of one of `links` or a marker?
    pub fn has_iface_pins(&self, links: &[&str]) -> bool {
        self.names().iter().any(|n| {
            n.starts_with(CLSACT_IF_PREFIX) || n.starts_with(&format!("{QDISC_MARKER}_")) || links.iter().any(|l| n != l && is_link_name(l, n))
        })
    }

    fn names(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir).map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect()).unwrap_or_default()
    }
}
