//! Loading, attaching and removing the BPF datapath.
//!
//! `install` reads as one sequence: check the host, open and configure the
//! objects, load them (maps are created or reused from their pins), write the
//! node-wide exclusions, then attach each program through a pinned link, or
//! swap the program behind a link a previous loader left. Anything this run
//! created is removed again if a later step fails, and every hook it moved
//! to its programs goes back to the program it had ([`Moved`]).
//!
//! Its parts: the embedded objects and their programs ([`objects`]), the
//! pin paths ([`pins`]), the shared struct layouts ([`layout`]), carrying maps
//! across an upgrade ([`upgrade`]), pinning again a map whose pin was removed
//! ([`repin`]) and tc on pods' interfaces ([`tc`], [`clsact`]; the bare qdiscs
//! DELs leave are deleted later by [`reaper`]).

pub mod clsact;
#[cfg(test)]
mod install_tests;
pub mod layout;
pub mod objects;
pub mod pins;
pub mod reaper;
pub mod repin;
pub mod tc;
pub mod upgrade;

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::config::{Config, ShortConnections};
use crate::error::{Error, OrOs};
use crate::libbpf::{self, MapFd, Object};
use crate::system::{self, Cgroup};
use layout::{Cidr4Key, Cidr6Key, In4Key, Ip6Key, PortKey, Settings, ACCEL_SHORT_ACCELERATE, ACCEL_SHORT_LEARN, DIR_OUT};
use pins::Pins;
use upgrade::Upgrade;

pub use objects::{Hook, ObjectSpec, PROGRAMS};

/// The cgroup the programs attach to: the configured one, or the cgroup2 root.
pub fn target_cgroup(config: &Config) -> Result<PathBuf, Error> {
    match &config.bpf.cgroup {
        Some(p) => Ok(p.clone()),
        None => system::cgroup2_mount(),
    }
}

/// `mw_settings.ipv6` (enum mw_ipv6_policy).
fn ipv6_policy_of(policy: crate::config::Ipv6Policy) -> u8 {
    use crate::config::Ipv6Policy;
    use layout::{IPV6_INTERCEPT, IPV6_PASS, IPV6_REFUSE};
    match policy {
        Ipv6Policy::Refuse => IPV6_REFUSE,
        Ipv6Policy::Pass => IPV6_PASS,
        Ipv6Policy::Intercept => IPV6_INTERCEPT,
    }
}

pub fn settings_of(config: &Config) -> Settings {
    Settings {
        sidecar_uid: config.sidecar.uid,
        outbound_port: config.sidecar.outbound_port,
        inbound_port: config.sidecar.inbound_port,
        debug: config.bpf.debug as u8,
        accel: config.acceleration.enabled as u8,
        trace: config.bpf.trace as u8,
        ipv6: ipv6_policy_of(config.ipv6),
        dns_port: config.dns.port,
        dns_servers: !config.dns.servers.is_empty() as u8,
        out_sources: config.outbound_sources,
        accel_short: match config.acceleration.short_connections {
            ShortConnections::Learn => ACCEL_SHORT_LEARN,
            ShortConnections::Accelerate => ACCEL_SHORT_ACCELERATE,
        },
        pad: [0; 3],
    }
}

/// Undo list for what one `install` created, and for the hooks it moved
/// onto its programs.
#[derive(Default)]
struct Created {
    pins: Vec<PathBuf>,
    /// In the order they moved. Each keeps the program the hook had open
    /// until the start commits: once a link runs the new program, nothing
    /// else may hold the old one (an upgrade's old maps are only held by
    /// their programs), and a failed start must put it back.
    moved: Vec<Moved>,
}

impl Created {
    /// Every hook moved goes back to the program it had (before the maps'
    /// pins go: those programs use the maps an upgrade puts back), then the
    /// pins this start made go. Returns the hooks that could not be moved
    /// back, each named with why.
    fn roll_back(&mut self) -> Vec<String> {
        let stuck: Vec<String> = self.moved.drain(..).rev().filter_map(|m| m.undo().err()).collect();
        for p in self.pins.iter().rev() {
            if let Err(e) = std::fs::remove_file(p) {
                log::warn!("rolling back {}: {e}", p.display());
            }
        }
        stuck
    }
}

/// A hook a start moved to its program, with the program it had. Until the
/// start commits, a failure moves it back ([`Moved::undo`]): otherwise it
/// would keep running the new program, which writes the new maps, and a
/// failed upgrade unpins those (their entries are lost at the next start)
/// while the other hooks run the old programs on the old maps.
pub enum Moved {
    /// A link (a cgroup link under links/, a pod's tcx link under pods/),
    /// moved with bpf_link_update; `hook` names it.
    Link { hook: String, link: OwnedFd, old: OwnedFd },
    /// A program pin (progs/, where pods' tc programs attach from) that now
    /// pins the new program.
    Pin { path: PathBuf, old: OwnedFd },
    /// The sk_msg verdict of the socket map `map`: the new program `new`
    /// attached in place of `old` (None: the map had none; Err: the kernel
    /// would not say, BPF_PROG_QUERY on a socket map, and why).
    SkMsg { map: &'static str, map_fd: MapFd, old: Result<Option<OwnedFd>, String>, new: OwnedFd },
}

impl Moved {
    /// The hook's program from before this start, again. Err names the hook
    /// and what the kernel said.
    fn undo(self) -> Result<(), String> {
        let done = match &self {
            Moved::Link { hook, link, old } => libbpf::link_update(link, old.as_raw_fd(), hook).map_err(|e| format!("{hook}: {e}")),
            Moved::Pin { path, old } => tc::replace_pin(old, path).map_err(|e| format!("{}: {e}", path.display())),
            Moved::SkMsg { map, map_fd, old, new } => {
                let what = format!("the sk_msg verdict of {map}");
                match old {
                    Ok(Some(old)) => libbpf::prog_attach(old.as_raw_fd(), map_fd, libbpf_sys::BPF_SK_MSG_VERDICT, &what).map_err(|e| format!("{what}: {e}")),
                    Ok(None) => libbpf::prog_detach(new.as_raw_fd(), map_fd, libbpf_sys::BPF_SK_MSG_VERDICT, &what).map_err(|e| format!("{what}: {e}")),
                    Err(why) => Err(format!("{what}: the program it had is not known ({why})")),
                }
            }
        };
        match &done {
            Ok(()) => log::info!("rolling back: {} runs its program from before this start again", self.hook()),
            Err(e) => log::error!("rolling back: {e}"),
        }
        done
    }

    fn hook(&self) -> String {
        match self {
            Moved::Link { hook, .. } => hook.clone(),
            Moved::Pin { path, .. } => path.display().to_string(),
            Moved::SkMsg { map, .. } => format!("the sk_msg verdict of {map}"),
        }
    }
}

/// A failed start's error `e`, with the hooks its rollback could not move
/// back (`stuck`, from [`Created::roll_back`]) named after it.
fn with_stuck_hooks(e: Error, stuck: &[String]) -> Error {
    if stuck.is_empty() {
        return e;
    }
    e.map_message(|m| {
        format!(
            "{m}; and rolling back, {} hook(s) could not be moved back to the program they had, so they still run this start's, whose maps may no longer be pinned: {}. Start again (a start moves every hook onto its programs), or `meshwire-loader cleanup`, then start",
            stuck.len(),
            stuck.join("; ")
        )
    })
}

fn existing_pins(pins: &Pins) -> HashSet<PathBuf> {
    [pins.maps_dir(), pins.links_dir()]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect()
}

/// Tests: [`install_before_adoption`] with its catch-up run at once (the
/// daemon adopts pods between the two).
#[cfg(test)]
pub fn install(config: &Config) -> Result<(), Error> {
    install_before_adoption(config).map(upgrade::CatchUp::run)
}

/// Load, configure and attach the datapath. On error nothing this call
/// created is left behind (pins that existed before are kept). The error's
/// kind: Invalid (the configured pin directory or cgroup cannot serve),
/// NotFound (no cgroup2 mount), Inconsistent (pins an earlier loader left
/// that this one cannot take over: `meshwire-loader cleanup`), Os (a system
/// call or the kernel refused, its errno kept), Internal (a mixed build:
/// [`BuildMismatch`]). Returns the maps an upgrade recreated with their old
/// ones, which pods' clsact filters keep writing until adoption moves them
/// to the new programs: run it once adoption is done ([`upgrade::CatchUp`]).
pub fn install_before_adoption(config: &Config) -> Result<upgrade::CatchUp, Error> {
    let pins = Pins::new(&config.bpf.pin_dir);
    let cgroup_path = target_cgroup(config)?;
    let cgroup = Cgroup::open(&cgroup_path)?;
    system::ensure_bpffs(pins.root())?;
    let root_existed = pins.root().exists();
    pins.create_dirs().or_os(|| format!("creating {}", pins.root().display()))?;
    let _lock = pins.lock().or_os(|| format!("locking {}", pins.root().display()))?;
    let unpinned = unpinned_maps(&pins);
    let mut created = Created::default();
    // Whatever fails from here leaves the pins as they were: what this start
    // pinned goes (a map it pinned again is then unpinned, as before, still
    // held by the attached programs, for the next start to find), the maps
    // an upgrade set aside go back (but where it resumed a start that died:
    // that start's maps stay pinned, its programs back on the hooks it
    // moved write them, the earlier ones stay aside). Before them, every hook moved to this
    // start's programs goes back to the program it had; one that cannot is
    // named in the error (it runs this start's program, on maps no longer
    // pinned).
    let fail = |created: &mut Created, upgrade: Option<&Upgrade>, e: Error| {
        let stuck = created.roll_back();
        if let Some(upgrade) = upgrade {
            upgrade.put_back();
        }
        let _ = std::fs::remove_dir(pins.upgrade_dir());
        if !root_existed {
            remove_empty_dirs(&pins);
        }
        with_stuck_hooks(e, &stuck)
    };
    // A map whose pin was removed while the programs hold it is pinned again
    // (repin.rs), or set aside for the upgrade when only its capacity
    // differs; only the others are created anew, empty. Before the upgrade
    // plans, so that it carries what the programs' map holds. Without the
    // definitions the search would find nothing and the start pin new,
    // empty maps in place of the live ones: it fails here instead.
    let defs = if unpinned.is_empty() {
        Vec::new()
    } else {
        match upgrade::definitions(objects::WITH_PROGRAMS) {
            Ok(defs) => defs,
            Err(e) => {
                let e = e.map_message(|m| {
                    format!(
                        "map(s) {} not pinned under {} though the others are: finding the ones the attached programs use needs this loader's BPF objects, which could not be opened ({m}). Nothing was changed (those maps stay held by the attached programs): start again",
                        unpinned.join(", "),
                        pins.maps_dir().display()
                    )
                });
                return Err(fail(&mut created, None, e));
            }
        }
    };
    let unpinned = repin::repin_live_maps(&pins, &unpinned, &defs, &mut created.pins);

    // Maps an earlier version pinned with another capacity are recreated,
    // their entries carried over (refused when they would not fit).
    let upgrade = match Upgrade::prepare(&pins, objects::WITH_PROGRAMS) {
        Ok(u) => u,
        Err(e) => return Err(fail(&mut created, None, e)),
    };
    // After the upgrade set maps aside: libbpf pins their new ones, which
    // this start then created.
    let before = existing_pins(&pins);
    match install_locked(config, &pins, &cgroup, &before, &mut created, &upgrade) {
        Ok(()) => {
            // Committed: the old programs are let go with `created` (pods'
            // clsact filters keep theirs until adoption moves them).
            let catch_up = upgrade.finish(&pins);
            for u in unpinned {
                log::warn!("{}", u.describe(&pins));
            }
            Ok(catch_up)
        }
        Err(e) => Err(fail(&mut created, Some(&upgrade), e)),
    }
}

/// The datapath's maps not pinned under `pins` (nor set aside by an
/// upgrade) when others are: the maps a start pins again from the attached
/// programs ([`repin`]), or anew, empty.
pub fn unpinned_maps(pins: &Pins) -> Vec<&'static str> {
    if !pins.any_map_pinned() {
        return Vec::new();
    }
    pins::ALL_MAPS.iter().copied().filter(|m| !pins.map(m).exists() && !pins.map_set_aside(m).exists()).collect()
}

/// Open, configure and load one object; maps it pins are recorded as created.
fn load_object(spec: &ObjectSpec, settings: &Settings, pins: &Pins, before: &HashSet<PathBuf>, created: &mut Created) -> Result<Object, Error> {
    let mut obj = spec.open(Some(&pins.maps_dir()))?;
    obj.set_rodata(objects::SETTINGS_VAR, settings.as_bytes())?;
    let load = obj.load();
    // libbpf pins maps as it creates them, also when a later step fails.
    for map in obj.pinned_map_names() {
        let p = pins.map(&map);
        if !before.contains(&p) && p.exists() && !created.pins.contains(&p) {
            created.pins.push(p);
        }
    }
    load.map_err(|e| {
        Error::from(e).map_message(|m| {
            format!("{m}. If a previous meshwire version pinned incompatible maps under {}, run `meshwire-loader cleanup` first", pins.maps_dir().display())
        })
    })?;
    Ok(obj)
}

/// Why a loader refuses to touch the datapath before it loads anything:
/// its Rust mirrors or declarations differ from the BPF objects built into
/// it (a mixed build), or the object carrying the shared structs' BTF
/// cannot be read. `From` makes it an [`Error`]: Internal (a build to redo),
/// or Os when libbpf said an errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildMismatch {
    /// libbpf could not open `object` (`error`: what it said).
    Unreadable { object: &'static str, errno: Option<i32>, error: String },
    /// `object` carries no BTF to compare the mirrors with.
    NoBtf { object: &'static str },
    /// Every difference found: the mirrors' ([`layout::check_against_btf`]),
    /// then the declarations' ([`objects::check_declarations`]).
    Differs { layout: Vec<layout::LayoutMismatch>, declarations: Vec<objects::DeclarationMismatch> },
}

impl std::fmt::Display for BuildMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildMismatch::Unreadable { object, error, .. } => write!(f, "{error}: this loader cannot read its own BPF object {object} (a broken build: rebuild it, bazel build //loader)"),
            BuildMismatch::NoBtf { object } => write!(f, "the {object} object has no BTF (a broken build: rebuild bpf/, bazel build //loader)"),
            BuildMismatch::Differs { layout, declarations } => {
                f.write_str("this loader does not match its BPF objects (a mixed build?): rebuild both from one checkout (bazel build //loader):")?;
                for found in layout.iter().map(ToString::to_string).chain(declarations.iter().map(ToString::to_string)) {
                    write!(f, "\n{found}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for BuildMismatch {}

impl From<BuildMismatch> for Error {
    fn from(e: BuildMismatch) -> Error {
        match e {
            BuildMismatch::Unreadable { errno: Some(errno), .. } => Error::Os { errno, message: e.to_string() },
            _ => Error::Internal(e.to_string()),
        }
    }
}

/// The Rust mirrors (structs, enums) and declarations (programs, maps)
/// must match the objects they were built with; refuse to touch the
/// datapath otherwise (a mixed build).
fn check_layouts() -> Result<(), BuildMismatch> {
    check_layouts_with(&objects::ALIGNCHECKER, layout::check_against_btf, objects::check_declarations)
}

/// [`check_layouts`] of the mirrors `layout` checks against the BTF of
/// `btf_object`, and of `declarations` (tests give other ones).
fn check_layouts_with(
    btf_object: &ObjectSpec,
    layout: impl FnOnce(&libbpf::Btf<'_>) -> Result<(), Vec<layout::LayoutMismatch>>,
    declarations: impl FnOnce() -> Result<(), Vec<objects::DeclarationMismatch>>,
) -> Result<(), BuildMismatch> {
    let object = btf_object.name;
    let obj = btf_object.open(None).map_err(|e| BuildMismatch::Unreadable { object, errno: e.source.raw_os_error(), error: e.to_string() })?;
    let btf = libbpf::Btf::of_object(&obj).ok_or(BuildMismatch::NoBtf { object })?;
    let layout = layout(&btf).err().unwrap_or_default();
    let declarations = declarations().err().unwrap_or_default();
    if layout.is_empty() && declarations.is_empty() {
        return Ok(());
    }
    Err(BuildMismatch::Differs { layout, declarations })
}

fn install_locked(config: &Config, pins: &Pins, cgroup: &Cgroup, before: &HashSet<PathBuf>, created: &mut Created, upgrade: &Upgrade) -> Result<(), Error> {
    check_layouts()?;
    let mut settings = settings_of(config);
    let mut loaded = Vec::new();
    // Acceleration first: when this kernel cannot load or attach it, sockops
    // must be told not to fill the socket map (a socket in a sockmap without
    // the verdict program would only pick up tcp_bpf's receive path).
    if config.acceleration.enabled {
        let mut moved = Vec::new();
        match load_object(&objects::SKMSG, &settings, pins, before, created).and_then(|obj| attach_sk_msg(&obj, pins, &mut moved).map(|()| obj)) {
            Ok(obj) => {
                loaded.push(obj);
                created.moved.append(&mut moved);
            }
            Err(e) => {
                // Off: a map it was attached to already has its program back.
                for m in moved.into_iter().rev() {
                    let _ = m.undo();
                }
                log::warn!(
                    "acceleration is off: this kernel cannot run it ({e}); meshed traffic is intercepted as usual, through the TCP/IP stack"
                );
                settings.accel = 0;
            }
        }
    } else {
        log::info!("acceleration is off (acceleration.enabled = false)");
    }
    for spec in objects::CORE {
        loaded.push(load_object(spec, &settings, pins, before, created)?);
    }
    // Before any link moves to the new programs (the old ones still write
    // the old maps until then).
    upgrade.carry_over()?;

    sync_node_exclusions(config, pins)?;

    for spec in PROGRAMS {
        let Some(obj) = loaded.iter().find(|o| o.name() == spec.object.name) else {
            // Only the acceleration object may be absent (disabled or refused).
            continue;
        };
        let prog = obj.program(spec.program)?;
        let link_pin = pins.link(spec.program);
        match spec.hook {
            Hook::Cgroup => {
                if link_pin.exists() {
                    created.moved.push(replace_cgroup_program(&link_pin, cgroup, prog.fd(), spec.program)?);
                    log::info!("{}: replaced the program behind {}", spec.program, link_pin.display());
                } else {
                    let mut link = prog.attach_cgroup(cgroup)?;
                    link.pin(&link_pin)?;
                    created.pins.push(link_pin.clone());
                    link.keep();
                    log::info!("{}: attached to {} (link {})", spec.program, cgroup.path.display(), link_pin.display());
                }
            }
            Hook::SkMsg { maps } => {
                // Attached right after loading (attach_sk_msg).
                log::info!("{}: attached to {} (acceleration on)", spec.program, maps.join(" and "));
            }
            Hook::Tc { .. } => {
                if tc::pin_program(pins, spec.program, prog.fd(), &mut created.moved)? {
                    created.pins.push(pins.prog(spec.program));
                }
                log::info!("{}: pinned at {}", spec.program, pins.prog(spec.program).display());
            }
        }
    }
    Ok(())
}

/// Attaches the acceleration verdict program to its socket maps (replacing
/// the one a previous loader attached, recorded in `moved`). Each map holds
/// its attachment, so it lives as long as the pinned map. (A socket added
/// to the map keeps the verdict it was added with: putting the old one back
/// reaches only the sockets added after.)
fn attach_sk_msg(obj: &Object, pins: &Pins, moved: &mut Vec<Moved>) -> Result<(), Error> {
    for spec in PROGRAMS {
        if let Hook::SkMsg { maps } = spec.hook {
            let prog = obj.program(spec.program)?;
            for map in maps {
                let sockhash = pins.open_map(map)?;
                // What to put back if the start fails. A kernel that cannot
                // tell still accelerates; only that rollback is then named
                // as impossible.
                let old = libbpf::prog_query(&sockhash, libbpf_sys::BPF_SK_MSG_VERDICT)
                    .and_then(|ids| ids.first().map(|&id| libbpf::prog_by_id(id)).transpose())
                    .map_err(|e| e.to_string());
                let new = unsafe { std::os::fd::BorrowedFd::borrow_raw(prog.fd()) }.try_clone_to_owned().or_os(|| format!("duplicating {}", spec.program))?;
                libbpf::prog_attach(prog.fd(), &sockhash, libbpf_sys::BPF_SK_MSG_VERDICT, spec.program).map_err(|e| Error::from(e).context(map))?;
                moved.push(Moved::SkMsg { map, map_fd: sockhash, old, new });
            }
        }
    }
    Ok(())
}

/// A link left by a previous loader: keep the attachment, swap the program.
/// Returns the link with the program it had, for a failed start to put back.
fn replace_cgroup_program(link_pin: &Path, cgroup: &Cgroup, prog_fd: i32, name: &str) -> Result<Moved, Error> {
    let link = libbpf::obj_get(link_pin)?;
    match libbpf::link_cgroup_id(&link)? {
        Some(id) if id == cgroup.id => {}
        Some(_) => {
            return Err(Error::Inconsistent(format!(
                "{} is attached to another cgroup than {}; run `meshwire-loader cleanup` to detach it, then start again",
                link_pin.display(),
                cgroup.path.display()
            )))
        }
        None => {
            return Err(Error::Inconsistent(format!(
                "{} is not a cgroup link; run `meshwire-loader cleanup` to remove it, then start again",
                link_pin.display()
            )))
        }
    }
    let old = libbpf::link_program(&link)?;
    libbpf::link_update(&link, prog_fd, name)?;
    Ok(Moved::Link { hook: format!("{name} (link {})", link_pin.display()), link, old })
}

/// Make the node-wide (cookie 0, pod IP 0) exclusion entries exactly the configured ones.
pub fn sync_node_exclusions(config: &Config, pins: &Pins) -> Result<(), Error> {
    let open = |name: &'static str| pins.open_map(name);
    let ports: Vec<PortKey> = config
        .outbound
        .exclude_ports
        .iter()
        .map(|&port| PortKey { netns_cookie: 0, port, dir: DIR_OUT, pad: [0; 5] })
        .collect();
    sync_node_wide(&open(pins::MAP_EXCL_PORTS)?, &ports, |k| k.netns_cookie == 0)?;

    let cidrs: Vec<Cidr4Key> = config.outbound.exclude_cidrs.iter().map(|c| Cidr4Key::of(0, c)).collect();
    sync_node_wide(&open(pins::MAP_EXCL_CIDR4)?, &cidrs, |k| k.cookie_hi == 0 && k.cookie_lo == 0)?;
    let cidrs6: Vec<Cidr6Key> = config.outbound.exclude_cidrs6.iter().map(|c| Cidr6Key::of(0, c)).collect();
    sync_node_wide(&open(pins::MAP_EXCL_CIDR6)?, &cidrs6, |k| k.cookie_hi == 0 && k.cookie_lo == 0)?;

    let inbound: Vec<In4Key> = config.inbound.exclude_ports.iter().map(|&port| In4Key { pod_ip4: 0, port, pad: 0 }).collect();
    sync_node_wide(&open(pins::MAP_EXCL_IN4)?, &inbound, |k| k.pod_ip4 == 0)?;

    let dns_servers: Vec<u32> = config.dns.servers4().iter().map(|a| u32::from(*a).to_be()).collect();
    sync_node_wide(&open(pins::MAP_DNS_SERVERS4)?, &dns_servers, |_| true)?;
    let dns_servers6: Vec<Ip6Key> = config.dns.servers6().iter().map(Ip6Key::of).collect();
    sync_node_wide(&open(pins::MAP_DNS_SERVERS6)?, &dns_servers6, |_| true)
}

/// Make the entries of `map` that `node_wide` selects exactly `want`.
fn sync_node_wide<K: Copy + PartialEq>(map: &MapFd, want: &[K], node_wide: impl Fn(&K) -> bool) -> Result<(), Error> {
    for key in map.keys::<K>()? {
        if node_wide(&key) && !want.contains(&key) {
            map.delete(&key)?;
        }
    }
    for key in want {
        map.update(key, &1u8)?;
    }
    Ok(())
}

fn remove_empty_dirs(pins: &Pins) {
    for dir in [pins.links_dir(), pins.maps_dir(), pins.progs_dir(), pins.pods_dir(), pins.upgrade_dir(), pins.catch_up_dir(), pins.root().to_path_buf()] {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Detach every program and unpin every map meshwire pinned under the pin
/// directory. Files there that are not meshwire's are left alone.
pub fn cleanup(pin_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let pins = Pins::new(pin_dir);
    if !pins.root().exists() {
        return Ok(Vec::new());
    }
    let _lock = pins.lock().or_os(|| format!("locking {}", pins.root().display()))?;
    let mut removed = tc::remove_all_pins(&pins)?;
    let links = PROGRAMS.iter().filter(|p| p.hook == Hook::Cgroup).map(|p| pins.link(p.program));
    let maps = pins::ALL_MAPS.iter().flat_map(|m| [pins.map(m), pins.map_set_aside(m), pins.map_carried(m)]).chain(pins::RETIRED_MAPS.iter().map(|m| pins.map(m)));
    let staged = pins.staged_maps().into_iter().flat_map(|(_, p)| [Pins::staged_carried(&p), p]);
    for path in links.chain(maps).chain(staged) {
        if path.starts_with(pins.links_dir()) {
            // Detach at once rather than when the kernel gets round to it.
            libbpf::detach_pinned_link(&path)?;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::os(format_args!("removing {}", path.display()), &e)),
        }
    }
    remove_empty_dirs(&pins);
    Ok(removed)
}
