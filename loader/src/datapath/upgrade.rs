//! Upgrading pinned maps whose capacity changed between versions.
//!
//! libbpf reuses a pinned map only if its type, key and value sizes,
//! capacity and flags all match the object's definition. A new version that
//! raises a capacity (or adds a counter to `mw_stats`) would otherwise be
//! refused until `meshwire-loader cleanup`, which throws away live state:
//! cross-node flows in `mw_flow4`, counters, original destinations in flight.
//!
//! So before the objects load, a pinned map that differs only in capacity is
//! set aside (moved to `<pin_dir>/upgrade/<name>`); libbpf then creates and pins the new
//! one, [`Upgrade::carry_over`] copies the entries across, and
//! [`Upgrade::finish`] removes the old pin once the new datapath is in place
//! (the old programs keep their own reference until their links move).
//! Entries the old programs write between the copy and that move are lost:
//! a few microseconds of new connections' state, at most. Pods' clsact
//! filters move later, in adoption: what their old programs write until
//! then is carried over once it is done ([`CatchUp`]). Counters
//! ([`COUNTERS`]) are carried by adding, from the values the copy took
//! (pinned at [`Pins::map_carried`] until the start commits): a start that
//! resumes one that died, and the catch-up, add what the old map counted
//! since. A start that resumes one that died after it loaded (this
//! version's map already pinned, written by the new programs on the hooks
//! it moved) copies only the keys that map lacks: its value is the newer.
//!
//! One change of value layout is carried over too: a map in [`WIDENED`],
//! whose value an earlier version had shorter, gets each entry with the old
//! value at its beginning and the rest zeroed (what the datapath reads as
//! "not known yet"). A map that differs in anything else (type, key or value
//! layout) cannot be carried over: the start is refused, naming the map,
//! before anything moves. Socket maps cannot be copied from userspace, so
//! they are refused too, and so is a capacity smaller than the entries the
//! map holds: the copy would drop some (a full hash map refuses the rest,
//! an LRU map evicts), so the start is refused naming the map and both
//! capacities, before anything moves. On any failure [`Upgrade::put_back`] restores the
//! old pins, once `datapath::install` moved every hook it had moved back to
//! its old program (`datapath::Moved`): those use the old maps. A map the
//! start resumed stays as the dead start left it (its map pinned: the
//! hooks that start moved run its programs again, which write it; the
//! earlier one aside), for the next start to resume again. A start of
//! another version that died after it loaded left a map of another shape
//! pinned: refused before anything moves, naming both maps.
//! Maps an earlier version pinned and this one no longer has
//! ([`pins::RETIRED_MAPS`]) lose their pins once the start succeeded.

use std::path::PathBuf;

use crate::datapath::layout::AccelState;
use crate::datapath::objects::ObjectSpec;
use crate::datapath::pins::{self, Pins};
use crate::error::{Error, OrOs};
use crate::libbpf::{CopyMode, MapFd, MapInfo};

/// Maps whose value grew at its end, with each value size an earlier
/// version pinned them with: `mw_accel_state(6)` before the socket's psock
/// address moved into it (struct mw_accel_state.psock; 0 there means no
/// backlog bound towards that socket, as for one whose psock was never
/// recorded), and before the hop's message count (msgs; 0 with no
/// MW_ACCEL_CONNECT flag: a socket from before learning reports nothing at
/// its FIN).
pub const WIDENED: &[(&str, usize)] = &[
    (pins::MAP_ACCEL_STATE, std::mem::offset_of!(AccelState, psock)),
    (pins::MAP_ACCEL_STATE6, std::mem::offset_of!(AccelState, psock)),
    (pins::MAP_ACCEL_STATE, std::mem::offset_of!(AccelState, msgs)),
    (pins::MAP_ACCEL_STATE6, std::mem::offset_of!(AccelState, msgs)),
];

/// `old` is `def` as an earlier version pinned it, before its value grew.
fn widened(old: &MapInfo, def: &MapInfo) -> bool {
    WIDENED.iter().any(|&(name, size)| name == def.name && old.value_size as usize == size && size < def.value_size as usize)
        && (old.map_type, old.key_size, old.map_flags) == (def.map_type, def.key_size, def.map_flags)
}

/// Maps of counters (u64 per CPU, which the programs only ever add to):
/// carried over by adding, not by copying ([`Upgrade::carry_over`],
/// [`CatchUp`]), so that a counter neither goes back nor loses a count.
pub const COUNTERS: &[&str] = &[pins::MAP_STATS];

/// One map being upgraded.
#[derive(Debug)]
struct Moved {
    name: String,
    pin: PathBuf,
    aside: PathBuf,
    /// A map of [`COUNTERS`]: where the values carried over are pinned.
    carried: Option<PathBuf>,
    old: MapInfo,
    /// The value grew at its end ([`WIDENED`]).
    widened: bool,
    /// A start that died after it loaded left this version's map pinned
    /// (and set the earlier one aside): the new programs on the hooks it
    /// moved may have written it since.
    resumed: bool,
}

/// The maps set aside for this start; empty when nothing changed.
#[derive(Debug, Default)]
pub struct Upgrade {
    moved: Vec<Moved>,
}

pub(super) fn describe(m: &MapInfo) -> String {
    format!("type {}, key {} B, value {} B, capacity {}, flags {:#x}", m.map_type, m.key_size, m.value_size, m.max_entries, m.map_flags)
}

/// The pinned map definitions of every object, once per name.
pub(super) fn definitions(objects: &[&ObjectSpec]) -> Result<Vec<MapInfo>, Error> {
    let mut defs: Vec<MapInfo> = Vec::new();
    for spec in objects {
        let obj = spec.open(None)?;
        for d in obj.pinned_map_defs() {
            if !defs.iter().any(|x| x.name == d.name) {
                defs.push(d);
            }
        }
    }
    Ok(defs)
}

/// Whether `old` (an earlier version's map, or one the attached programs
/// use: datapath::repin) can become `def` by [`Upgrade::carry_over`]:
/// Ok(whether its values widen, [`WIDENED`]) when it differs from `def`
/// only in capacity or in a value that grew at its end; Err(why not)
/// otherwise: another type, key or value layout, or a socket map (its
/// entries cannot be copied from userspace).
pub(super) fn carriable(old: &MapInfo, def: &MapInfo) -> Result<bool, String> {
    let widened = widened(old, def);
    let same_layout = widened || (old.map_type, old.key_size, old.value_size, old.map_flags) == (def.map_type, def.key_size, def.value_size, def.map_flags);
    let movable = old.entries_copyable() || old.map_type == libbpf_sys::BPF_MAP_TYPE_RINGBUF;
    if !same_layout || !movable {
        return Err(format!(
            "({}) cannot become this version's ({}){}",
            describe(old),
            describe(def),
            if same_layout { ", a socket map's entries cannot be moved" } else { "" }
        ));
    }
    Ok(widened)
}

/// Which pinned maps must be recreated for `objects`; Err when one cannot be
/// (Inconsistent: the pinned map is not one this version can take over, or
/// it holds more entries than this version's capacity: carrying them over
/// would drop some, so nothing moves).
fn plan(pins: &Pins, objects: &[&ObjectSpec]) -> Result<Vec<Moved>, Error> {
    let mut plan = Vec::new();
    for def in definitions(objects)? {
        let (pin, aside) = (pins.map(&def.name), pins.map_set_aside(&def.name));
        // A start that died mid-upgrade left the old map aside: carry over
        // from it again (the new map may or may not have its entries yet).
        // A map the programs use whose pin was removed is set aside too
        // (repin.rs), when only its capacity differs.
        let current = if aside.exists() { &aside } else if pin.exists() { &pin } else { continue };
        let fd = MapFd::open_pinned(current)?;
        let old = fd.info()?;
        if current == &pin && old.same_shape(&def) {
            continue;
        }
        // Both pinned: a start that died after it loaded. Its map is this
        // version's (resumed), or another version's, which the programs on
        // the hooks it moved write: refused, nothing moves (both kept).
        let resumed = current == &aside && pin.exists() && {
            let died = MapFd::open_pinned(&pin)?.info()?;
            if !died.same_shape(&def) {
                return Err(a_start_of_another_version_died(&def, &pin, &died, &aside, &old));
            }
            true
        };
        let widened = carriable(&old, &def).map_err(|why| {
            Error::Inconsistent(format!(
                "pinned map {} {why}: run `meshwire-loader cleanup`, then start again (pods come back from their records; live connections' state in the maps is lost)",
                current.display()
            ))
        })?;
        refuse_if_it_does_not_fit(pins, &fd, &old, &def)?;
        let carried = (COUNTERS.contains(&def.name.as_str()) && !widened).then(|| pins.map_carried(&def.name));
        plan.push(Moved { name: def.name, pin, aside, carried, old, widened, resumed });
    }
    Ok(plan)
}

/// A start of another version died mid-upgrade, after it loaded: its map
/// `died` is pinned at `pin` (the programs on the hooks it moved write it),
/// the earlier one `old` set aside at `aside`. This version can take over
/// neither without losing what the other holds: the start is refused,
/// before anything moves, naming both and what to do.
fn a_start_of_another_version_died(def: &MapInfo, pin: &std::path::Path, died: &MapInfo, aside: &std::path::Path, old: &MapInfo) -> Error {
    Error::Inconsistent(format!(
        "map {name}: a start of another version died while upgrading it, leaving its map pinned at {pin} ({died}; the programs on the hooks that start moved write it) \
         and the earlier one set aside at {aside} ({old}); this version's ({def}) cannot take over both, so nothing was changed. \
         Start the version that died again (it resumes its upgrade and keeps both maps' entries), then this one; \
         or `meshwire-loader cleanup`, then start (the entries of both maps are lost)",
        name = def.name,
        pin = pin.display(),
        died = describe(died),
        aside = aside.display(),
        old = describe(old),
        def = describe(def),
    ))
}

/// A smaller capacity than the entries `fd` holds would drop some of them
/// (a hash map refuses the rest, an LRU map evicts, an array has no index
/// for them): the start is refused, naming the map, both capacities and
/// what to do, before anything moves. Entries written meanwhile can still
/// make the copy fail; the start then fails and the old map is put back.
fn refuse_if_it_does_not_fit(pins: &Pins, fd: &MapFd, old: &MapInfo, def: &MapInfo) -> Result<(), Error> {
    if !old.entries_copyable() || old.max_entries <= def.max_entries {
        return Ok(());
    }
    let held = fd.raw_keys().map_err(|e| Error::from(e).context(format_args!("upgrade: counting the entries of map {}", def.name)))?.len();
    if held <= def.max_entries as usize {
        return Ok(());
    }
    Err(Error::Inconsistent(format!(
        "map {name} under {dir} holds {held} entries, more than this version's capacity of {new} (the one in use has a capacity of {was}): \
         they would not fit, and this start drops none, so nothing was changed. \
         Start a version whose {name} holds at least {held} (its capacity is in bpf/lib/meshwire_consts.h), \
         or remove entries until at most {new} remain (for mw_pods and the maps of pods: remove pods), then start again; \
         or `meshwire-loader cleanup`, then start (the map's entries are lost)",
        name = def.name,
        dir = pins.maps_dir().display(),
        new = def.max_entries,
        was = old.max_entries,
    )))
}

impl Upgrade {
    /// Sets aside every pinned map whose capacity differs from `objects`'
    /// definitions. Nothing moves when one cannot be upgraded.
    pub fn prepare(pins: &Pins, objects: &[&ObjectSpec]) -> Result<Upgrade, Error> {
        let mut done = Upgrade::default();
        let plan = plan(pins, objects)?;
        if !plan.is_empty() {
            std::fs::create_dir_all(pins.upgrade_dir()).or_os(|| format!("creating {}", pins.upgrade_dir().display()))?;
        }
        for m in plan {
            if !m.aside.exists() {
                if let Err(e) = std::fs::rename(&m.pin, &m.aside) {
                    done.put_back();
                    return Err(Error::os(format_args!("setting {} aside for the upgrade", m.pin.display()), &e));
                }
            }
            let what = if m.widened { "layout: its value grew at the end" } else { "capacity" };
            log::info!("upgrade: map {} is recreated ({} -> this version's {what})", m.name, describe(&m.old));
            done.moved.push(m);
        }
        Ok(done)
    }

    /// After the objects loaded (libbpf created and pinned the new maps):
    /// copies every entry of the old maps into the new ones. Resuming a
    /// start that died after it loaded (`resumed`), the new map may hold
    /// what the new programs wrote on the hooks that start moved: only the
    /// keys it lacks are copied (its value is the newer; the loader's own
    /// entries, the pods' and exclusions, are written again by this start
    /// and adoption after the copy). Counters are added ([`COUNTERS`]).
    pub fn carry_over(&self) -> Result<(), Error> {
        for m in &self.moved {
            let old = MapFd::open_pinned(&m.aside)?;
            let new = MapFd::open_pinned(&m.pin)?;
            let capacity = new.info()?.max_entries;
            if !m.old.entries_copyable() {
                log::info!("upgrade: map {} starts empty (capacity {} -> {capacity}; it holds no entries to carry)", m.name, m.old.max_entries);
                continue;
            }
            let n = match &m.carried {
                Some(carried) => carry_counts(&old, &new, carried, m.resumed),
                None => old.copy_entries_into(&new, CopyMode { widen: m.widened, only_missing: m.resumed }).map_err(Error::from),
            };
            let n = n.map_err(|e| e.context(format_args!("upgrade: map {}", m.name)))?;
            let how = if m.resumed { ", resuming a start that died: keys this version's map held kept its values" } else { "" };
            log::info!("upgrade: map {}: {n} entries carried over (capacity {} -> {capacity}, value {} -> {} B{how})", m.name, m.old.max_entries, m.old.value_size, new.info()?.value_size);
        }
        Ok(())
    }

    /// The start failed: the new maps' pins are gone (rolled back); the old
    /// ones go back where they were. A map this start resumed stays as the
    /// start that died left it: its map pinned (the rollback put that
    /// start's programs back on the hooks it moved, and they write it), the
    /// earlier one set aside, the counters' carried values pinned (this
    /// start's copy added to the map what they say), so that the next start
    /// resumes again and loses nothing.
    pub fn put_back(&self) {
        for m in self.moved.iter().filter(|m| !m.resumed) {
            remove_carried(m);
            if !m.aside.exists() {
                continue;
            }
            if m.pin.exists() {
                let _ = std::fs::remove_file(&m.pin);
            }
            if let Err(e) = std::fs::rename(&m.aside, &m.pin) {
                log::warn!("upgrade: putting {} back: {e}", m.pin.display());
            }
        }
        if let Some(dir) = self.moved.first().and_then(|m| m.aside.parent()) {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// The new datapath is in place: the old maps' pins go, and those of
    /// maps this version no longer has (the programs that used them were
    /// replaced; a map lives on while a program still holds it). The old
    /// maps pods' clsact filters may still write are pinned under
    /// [`Pins::catch_up_dir`] instead, until the catch-up; returns it
    /// ([`CatchUp`]), with those an earlier loader left there.
    pub fn finish(self, pins: &Pins) -> CatchUp {
        let mut unstaged = Vec::new();
        for m in &self.moved {
            if caught_up(m) {
                match stage(pins, m) {
                    Ok(()) => continue,
                    Err(e) => {
                        log::warn!("upgrade: map {}: keeping the earlier map for the catch-up after adoption: {e}; if this loader stops before that, what pods' old clsact programs write meanwhile is lost", m.name);
                        unstaged.extend(Staged::open(&m.name, &m.aside, &m.pin, m.carried.as_deref()).ok().map(|s| Staged { pins: Vec::new(), ..s }));
                    }
                }
            }
            remove_carried(m);
            if let Err(e) = std::fs::remove_file(&m.aside) {
                log::warn!("upgrade: removing {}: {e}", m.aside.display());
            }
        }
        let _ = std::fs::remove_dir(pins.upgrade_dir());
        for name in pins::RETIRED_MAPS {
            match std::fs::remove_file(pins.map(name)) {
                Ok(()) => log::info!("upgrade: map {name} is no longer used: its pin {} is removed", pins.map(name).display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("upgrade: removing {}: {e}", pins.map(name).display()),
            }
        }
        CatchUp::of(pins, unstaged)
    }
}

/// Whether pods' clsact filters may write the old map `m` until adoption:
/// [`WRITTEN_BY_TC`] and [`COUNTERS`] (the others are the loader's, or
/// only cgroup programs write them), copyable.
fn caught_up(m: &Moved) -> bool {
    (WRITTEN_BY_TC.contains(&m.name.as_str()) || m.carried.is_some()) && !m.widened && m.old.entries_copyable()
}

/// Moves the old map `m` (and its carried values) from upgrade/ to where
/// it waits for the catch-up ([`Pins::map_staged`]).
fn stage(pins: &Pins, m: &Moved) -> Result<(), Error> {
    let staged = pins.map_staged(&m.name, MapFd::open_pinned(&m.aside)?.id());
    std::fs::create_dir_all(pins.catch_up_dir()).or_os(|| format!("creating {}", pins.catch_up_dir().display()))?;
    let rename = |from: &std::path::Path, to: &std::path::Path| std::fs::rename(from, to).or_os(|| format!("renaming {} to {}", from.display(), to.display()));
    if let Some(carried) = &m.carried {
        rename(carried, &Pins::staged_carried(&staged))?;
    }
    rename(&m.aside, &staged).inspect_err(|_| {
        if let Some(carried) = &m.carried {
            let _ = std::fs::rename(Pins::staged_carried(&staged), carried);
        }
    })
}

/// Carries the counters of `old` into `new` (a map of [`COUNTERS`]):
/// `new` gets what `old` counted, and the values carried are pinned at
/// `carried` (before any hook moves to the new programs). Resuming a start
/// that died after that (`resumed`, `carried` pinned), `new` holds those
/// values plus what the new programs counted since: only what `old` counted
/// since is added. Returns how many entries.
fn carry_counts(old: &MapFd, new: &MapFd, carried: &std::path::Path, resumed: bool) -> Result<usize, Error> {
    if resumed {
        if let Ok(baseline) = MapFd::open_pinned(carried) {
            let now = old.add_counts_since_into(&baseline.raw_entries()?, new)?;
            baseline.update_raw_entries(&now)?;
            return Ok(now.len());
        }
        // The start that died had not pinned them: no hook had moved yet,
        // the new programs counted nothing.
    }
    let now = old.raw_entries()?;
    new.update_raw_entries(&now)?;
    let baseline = MapFd::create_like(&old.info()?)?;
    baseline.update_raw_entries(&now)?;
    super::tc::replace_pin(&baseline, carried)?;
    Ok(now.len())
}

fn remove_carried(m: &Moved) {
    if let Some(carried) = &m.carried {
        match std::fs::remove_file(carried) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("upgrade: removing {}: {e}", carried.display()),
        }
    }
}

/// The maps only the tc programs write (bpf/bpf_tc.c): inbound flows, their
/// handshakes and closings.
const WRITTEN_BY_TC: &[&str] =
    &[pins::MAP_FLOW4, pins::MAP_FLOW4_FIN, pins::MAP_FLOW4_SYN, pins::MAP_FLOW6, pins::MAP_FLOW6_FIN, pins::MAP_FLOW6_SYN];

/// The old maps of an upgrade that pods' clsact filters still write after
/// the start committed, pinned under [`Pins::catch_up_dir`] until adoption
/// has moved those filters to the new programs; [`CatchUp::run`] then
/// copies what they wrote meanwhile, and removes those pins.
///
/// A start moves every cgroup link and pod's tcx link to its programs
/// before it commits, but not clsact filters (the default attach mode):
/// those sit in each pod's network namespace, on an interface only the
/// pod's record names, and adoption (after the start) replaces them. Until
/// it reaches a pod, the pod's old tc programs keep writing the old maps,
/// whose entries were already carried over: the flow of a connection into
/// the pod in that window (0.1-0.7 s at thousands of pods) was lost once
/// its filters moved, its replies no longer reverse-rewritten. Keeping the
/// old maps and copying, after adoption, the keys the new map lacks (the
/// upgrade's own copy, BPF_NOEXIST) is simpler and cheaper than moving
/// clsact filters inside the start, which would enter every pod's namespace
/// under the pins lock, need the records there, and put filters back on a
/// failure. Only [`WRITTEN_BY_TC`] maps: the others are the loader's (pods,
/// exclusions), which adoption rewrites and deletes from; copying them back
/// would bring back what it removed. A key both maps hold keeps the new
/// map's value (the new programs' is newer); a flow the new programs closed
/// meanwhile may come back, as a stale entry of an LRU map that the tuple's
/// next SYN replaces.
///
/// The counters ([`COUNTERS`]) the old tc programs add to meanwhile are
/// caught up too: the new map gets what the old one counted since the
/// values the start carried over (pinned beside it).
///
/// The old maps stay pinned until the catch-up ran: a loader that stops
/// before (killed, or its adoption failed) leaves them, and the next start
/// catches up from them after its own adoption, into the maps then pinned.
#[derive(Default)]
#[must_use = "run it once adoption has moved every clsact filter"]
pub struct CatchUp {
    maps: Vec<Staged>,
    /// [`Pins::catch_up_dir`].
    dir: PathBuf,
}

/// An old map waiting for the catch-up, with the map pinned now in its
/// name and, for counters, the values carried over from it.
struct Staged {
    name: String,
    old: MapFd,
    new: MapFd,
    carried: Option<MapFd>,
    /// Its pins under catch-up/, removed once it ran.
    pins: Vec<PathBuf>,
}

impl Staged {
    fn open(name: &str, old: &std::path::Path, new: &std::path::Path, carried: Option<&std::path::Path>) -> Result<Staged, Error> {
        Ok(Staged {
            name: name.to_string(),
            old: MapFd::open_pinned(old)?,
            new: MapFd::open_pinned(new)?,
            carried: carried.map(MapFd::open_pinned).transpose()?,
            pins: [Some(old.to_path_buf()), carried.map(|c| c.to_path_buf())].into_iter().flatten().collect(),
        })
    }
}

impl CatchUp {
    /// Every map waiting under [`Pins::catch_up_dir`] (this start's, and
    /// those a loader that stopped before its catch-up left), with
    /// `unstaged` (held open only).
    fn of(pins: &Pins, mut maps: Vec<Staged>) -> CatchUp {
        for (name, pin) in pins.staged_maps() {
            let carried = COUNTERS.contains(&name).then(|| Pins::staged_carried(&pin));
            match Staged::open(name, &pin, &pins.map(name), carried.as_deref()) {
                Ok(staged) => maps.push(staged),
                Err(e) => {
                    log::warn!("upgrade: map {name}: what pods' clsact filters wrote before adoption moved them cannot be carried over ({e}); {} is removed", pin.display());
                    remove_staged([Some(pin), carried].into_iter().flatten(), &pins.catch_up_dir());
                }
            }
        }
        CatchUp { maps, dir: pins.catch_up_dir() }
    }

    /// Adoption has moved every pod's clsact filters to the new programs:
    /// the entries the old programs wrote into the old maps meanwhile, and
    /// the new maps lack, are copied, and what they counted is added; then
    /// the old maps' pins go.
    pub fn run(self) {
        let mut done = Vec::new();
        for Staged { name, old, new, carried, pins } in self.maps {
            done.extend(pins);
            let copied = match &carried {
                Some(carried) => carried.raw_entries().and_then(|since| old.add_counts_since_into(&since, &new)).map(|_| 0),
                None => old.copy_entries_into(&new, CopyMode { only_missing: true, ..CopyMode::default() }),
            };
            match copied {
                Ok(0) => {}
                Ok(n) => log::info!("upgrade: map {name}: {n} entries written by pods' old tc programs before adoption moved them, carried over"),
                Err(e) => log::warn!("upgrade: map {name}: carrying over what was written before adoption: {e}"),
            }
        }
        remove_staged(done, &self.dir);
    }
}

/// Removes pins under catch-up/ (`dir`), and the directory once empty.
fn remove_staged(paths: impl IntoIterator<Item = PathBuf>, dir: &std::path::Path) {
    for p in paths {
        if let Err(e) = std::fs::remove_file(&p) {
            log::warn!("upgrade: removing {}: {e}", p.display());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::layout::{Pod, Settings};
    use crate::libbpf::{map_create_like, obj_pin, Object};
    use crate::datapath::objects;
    use crate::testutil::PrivateBpffs;

    const SOCK: &[&ObjectSpec] = &[&objects::SOCK];

    /// A private bpffs with meshwire's pin directories at its root.
    fn fresh_pins() -> (PrivateBpffs, Pins) {
        let fs = PrivateBpffs::new();
        let pins = Pins::new(fs.path());
        pins.create_dirs().unwrap();
        (fs, pins)
    }

    fn def(name: &str) -> MapInfo {
        definitions(SOCK).unwrap().into_iter().find(|d| d.name == name).unwrap()
    }

    /// What an earlier version would have pinned: `name` with another capacity.
    fn pin_old(pins: &Pins, name: &str, max_entries: u32) -> MapFd {
        let fd = map_create_like(&def(name), max_entries).unwrap();
        obj_pin(&fd, &pins.map(name)).unwrap();
        MapFd::open_pinned(&pins.map(name)).unwrap()
    }

    fn load_sock(pins: &Pins) -> Object {
        let mut obj = objects::SOCK.open(Some(&pins.maps_dir())).unwrap();
        let s = Settings { sidecar_uid: 1500, outbound_port: 15001, inbound_port: 15003, debug: 0, accel: 0, trace: 0, ipv6: crate::datapath::layout::IPV6_REFUSE, dns_port: 15053, dns_servers: 0, out_sources: 1, accel_short: 1, pad: [0; 3] };
        obj.set_rodata(objects::SETTINGS_VAR, s.as_bytes()).unwrap();
        obj.load().unwrap();
        obj
    }

    #[test]
    fn a_map_with_another_capacity_is_recreated_with_its_entries() {
        let (_fs, pins) = fresh_pins();
        let old = pin_old(&pins, "mw_pods", 16);
        for cookie in 1..=10u64 {
            old.update(&cookie, &Pod { flags: cookie as u32 }).unwrap();
        }
        drop(old);

        let up = Upgrade::prepare(&pins, SOCK).unwrap();
        assert!(!pins.map("mw_pods").exists() && pins.map_set_aside("mw_pods").exists(), "set aside before load");
        let _obj = load_sock(&pins);
        up.carry_over().unwrap();
        up.finish(&pins).run();

        let new = MapFd::open_pinned(&pins.map("mw_pods")).unwrap();
        assert_eq!(new.info().unwrap().max_entries, def("mw_pods").max_entries);
        for cookie in 1..=10u64 {
            assert_eq!(new.lookup::<u64, Pod>(&cookie).unwrap(), Some(Pod { flags: cookie as u32 }));
        }
        assert!(!pins.map_set_aside("mw_pods").exists(), "the old pin is gone after finish");
    }

    #[test]
    fn per_cpu_counters_are_carried_over_cpu_by_cpu() {
        let (_fs, pins) = fresh_pins();
        let stats = def("mw_stats");
        assert_eq!(stats.map_type, libbpf_sys::BPF_MAP_TYPE_PERCPU_ARRAY);
        let old = pin_old(&pins, "mw_stats", stats.max_entries - 1);
        let ncpu = unsafe { libbpf_sys::libbpf_num_possible_cpus() } as u64;
        let per_cpu: Vec<u8> = (1..=ncpu).flat_map(|c| (c * 10).to_ne_bytes()).collect();
        old.update_raw(&2u32.to_ne_bytes(), &per_cpu).unwrap();
        drop(old);
        let up = Upgrade::prepare(&pins, SOCK).unwrap();
        let _obj = load_sock(&pins);
        up.carry_over().unwrap();
        up.finish(&pins).run();
        let new = MapFd::open_pinned(&pins.map("mw_stats")).unwrap();
        assert_eq!(new.info().unwrap().max_entries, stats.max_entries);
        assert_eq!(new.lookup_percpu_sum(&2u32).unwrap(), (1..=ncpu).map(|c| c * 10).sum::<u64>());
        assert_eq!(new.lookup_percpu_sum(&(stats.max_entries - 1)).unwrap(), 0, "the new slot starts at 0");
    }

    #[test]
    fn a_failed_start_puts_the_old_map_back() {
        let (_fs, pins) = fresh_pins();
        pin_old(&pins, "mw_pods", 16).update(&7u64, &Pod { flags: 1 }).unwrap();
        let up = Upgrade::prepare(&pins, SOCK).unwrap();
        // (The new map would be pinned and then rolled back here.)
        up.put_back();
        let back = MapFd::open_pinned(&pins.map("mw_pods")).unwrap();
        assert_eq!(back.info().unwrap().max_entries, 16);
        assert_eq!(back.lookup::<u64, Pod>(&7).unwrap(), Some(Pod { flags: 1 }));
        assert!(!pins.map_set_aside("mw_pods").exists());
    }

    #[test]
    fn a_start_that_died_mid_upgrade_carries_over_from_the_map_set_aside() {
        let (_fs, pins) = fresh_pins();
        pin_old(&pins, "mw_pods", 16).update(&7u64, &Pod { flags: 1 }).unwrap();
        Upgrade::prepare(&pins, SOCK).unwrap(); // then the loader died
        let up = Upgrade::prepare(&pins, SOCK).unwrap();
        let _obj = load_sock(&pins);
        up.carry_over().unwrap();
        up.finish(&pins).run();
        let new = MapFd::open_pinned(&pins.map("mw_pods")).unwrap();
        assert_eq!(new.lookup::<u64, Pod>(&7).unwrap(), Some(Pod { flags: 1 }));
        assert!(!pins.map_set_aside("mw_pods").exists());
    }

    #[test]
    fn a_map_with_another_layout_is_refused_and_nothing_moves() {
        let (_fs, pins) = fresh_pins();
        let mut other = def("mw_pods");
        other.value_size += 4;
        let fd = map_create_like(&other, other.max_entries).unwrap();
        obj_pin(&fd, &pins.map("mw_pods")).unwrap();
        let e = Upgrade::prepare(&pins, SOCK).unwrap_err();
        assert!(matches!(e, Error::Inconsistent(_)), "{e:?}");
        assert!(e.message().contains("mw_pods") && e.message().contains("cleanup"), "{e}");
        assert!(pins.map("mw_pods").exists() && !pins.map_set_aside("mw_pods").exists());
    }

    fn tc_def(name: &str) -> MapInfo {
        definitions(&[&objects::TC]).unwrap().into_iter().find(|d| d.name == name).unwrap()
    }

    /// A private bpffs and cgroup for a whole start, meshwire's pin
    /// directories under the bpffs.
    fn real_start_dirs() -> (PrivateBpffs, crate::testutil::TempCgroup, Pins) {
        let fs = PrivateBpffs::new();
        let cg = crate::testutil::TempCgroup::new();
        let pins = Pins::new(&fs.path().join("meshwire"));
        pins.create_dirs().unwrap();
        (fs, cg, pins)
    }

    /// The configuration of a whole start on those, with `extra` TOML.
    fn real_start_config(pins: &Pins, cg: &crate::testutil::TempCgroup, extra: &str) -> crate::config::Config {
        let toml = format!("[bpf]\npin_dir = \"{}\"\ncgroup = \"{}\"\n{extra}", pins.root().display(), cg.path().display());
        crate::config::Config::parse("t.toml", &toml).unwrap()
    }

    /// The whole start, as the daemon runs it: an earlier version's smaller
    /// mw_flow4 (a live cross-node flow in it) is replaced by this version's,
    /// the flow carried over, the programs attached, nothing left aside.
    #[test]
    fn a_real_start_upgrades_a_resized_map_and_keeps_its_flows() {
        use crate::datapath::layout::{Flow4, Flow4Key};
        let (_fs, cg, pins) = real_start_dirs();
        let flows = tc_def("mw_flow4");
        let fd = map_create_like(&flows, 1024).unwrap();
        obj_pin(&fd, &pins.map("mw_flow4")).unwrap();
        let key = Flow4Key { remote_ip4: 0x0a00_0001, local_ip4: 0x0a00_0002, remote_port: 4000, pad: 0 };
        let flow = Flow4 { orig_port: 8080u16.to_be(), flags: 0, pad: 0 };
        MapFd::open_pinned(&pins.map("mw_flow4")).unwrap().update(&key, &flow).unwrap();
        let config = real_start_config(&pins, &cg, "");

        let started = crate::datapath::install(&config);
        let after = MapFd::open_pinned(&pins.map("mw_flow4")).map(|m| (m.info().unwrap().max_entries, m.lookup::<Flow4Key, Flow4>(&key).unwrap()));
        let leftover = pins.upgrade_dir().exists();
        crate::datapath::cleanup(pins.root()).unwrap();
        started.unwrap();
        assert_eq!(after.unwrap(), (flows.max_entries, Some(flow)));
        assert!(!leftover, "the old map's pin is gone");
    }

    fn sockops_def(name: &str) -> MapInfo {
        definitions(&[&objects::SOCKOPS]).unwrap().into_iter().find(|d| d.name == name).unwrap()
    }

    /// mw_accel_state as the version before struct mw_accel_state.psock
    /// pinned it: 8-byte values (lock, flags).
    fn pin_accel_state_before_psock(pins: &Pins) -> MapFd {
        let mut earlier = sockops_def(pins::MAP_ACCEL_STATE);
        assert_eq!(earlier.value_size as usize, std::mem::size_of::<crate::datapath::layout::AccelState>());
        earlier.value_size = 8;
        let fd = map_create_like(&earlier, earlier.max_entries).unwrap();
        obj_pin(&fd, &pins.map(pins::MAP_ACCEL_STATE)).unwrap();
        MapFd::open_pinned(&pins.map(pins::MAP_ACCEL_STATE)).unwrap()
    }

    /// mw_accel_psock(6) as the version before pinned it: the state map's
    /// key, the psock address (8 bytes) as value.
    fn pin_retired(pins: &Pins, name: &str) {
        let mut retired = sockops_def(if name.ends_with('6') { pins::MAP_ACCEL_STATE6 } else { pins::MAP_ACCEL_STATE });
        retired.name = name.to_string();
        retired.value_size = 8;
        obj_pin(&map_create_like(&retired, retired.max_entries).unwrap(), &pins.map(name)).unwrap();
    }

    fn sock_key(port: u32) -> crate::datapath::layout::SockKey {
        crate::datapath::layout::SockKey { netns_cookie: 7, local_ip4: 0x0100_007f, remote_ip4: 0x0100_007f, local_port: port, remote_port: 15001 }
    }

    #[test]
    fn an_accel_state_value_that_grew_is_refused_unless_it_is_the_earlier_layout() {
        use crate::datapath::layout::AccelState;
        let (_fs, pins) = fresh_pins();
        let mut other = sockops_def(pins::MAP_ACCEL_STATE);
        other.value_size = 12;
        let fd = map_create_like(&other, other.max_entries).unwrap();
        obj_pin(&fd, &pins.map(pins::MAP_ACCEL_STATE)).unwrap();
        let e = Upgrade::prepare(&pins, &[&objects::SOCKOPS]).unwrap_err();
        assert!(matches!(e, Error::Inconsistent(_)), "{e:?}");
        let e = e.message();
        assert!(e.contains("mw_accel_state") && e.contains("value 12 B") && e.contains("cleanup"), "{e}");
        assert!(pins.map(pins::MAP_ACCEL_STATE).exists() && !pins.map_set_aside(pins::MAP_ACCEL_STATE).exists());
        std::fs::remove_file(pins.map(pins::MAP_ACCEL_STATE)).unwrap();

        let old = pin_accel_state_before_psock(&pins);
        old.update(&sock_key(40000), &[0u32, 1]).unwrap();
        drop(old);
        let up = Upgrade::prepare(&pins, &[&objects::SOCKOPS]).unwrap();
        assert!(up.moved.iter().any(|m| m.name == pins::MAP_ACCEL_STATE && m.widened), "{up:?}");
        up.put_back();
        let back = MapFd::open_pinned(&pins.map(pins::MAP_ACCEL_STATE)).unwrap();
        assert_eq!(back.info().unwrap().value_size, 8, "a failed start leaves the earlier map as it was");
        assert_eq!(back.lookup::<_, [u32; 2]>(&sock_key(40000)).unwrap(), Some([0, 1]));
        assert!(std::mem::size_of::<AccelState>() > 8);
    }

    /// A start over what the version before struct mw_accel_state.psock
    /// left pinned: mw_accel_state with 8-byte values (two accelerated
    /// sockets' flags in it) and mw_accel_psock with their psock addresses.
    /// The state is recreated with each entry's flags and psock 0 (no
    /// backlog bound towards it: the address is not known), and the
    /// retired map's pin is gone; cleanup then leaves nothing behind.
    #[test]
    fn a_real_start_over_the_layout_before_psock_widens_the_state_and_drops_the_psock_map() {
        use crate::datapath::layout::AccelState;
        let (_fs, cg, pins) = real_start_dirs();
        let old = pin_accel_state_before_psock(&pins);
        for (port, flags) in [(40000u32, 1u32), (40001, 4)] {
            old.update(&sock_key(port), &[0u32, flags]).unwrap();
        }
        drop(old);
        for name in pins::RETIRED_MAPS {
            pin_retired(&pins, name);
        }
        let config = real_start_config(&pins, &cg, "[acceleration]\nenabled = true\n");

        let started = crate::datapath::install(&config);
        let state = MapFd::open_pinned(&pins.map(pins::MAP_ACCEL_STATE)).map(|m| {
            let v = |port| m.lookup::<_, AccelState>(&sock_key(port)).unwrap();
            (m.info().unwrap().value_size as usize, v(40000), v(40001))
        });
        let retired_left: Vec<_> = pins::RETIRED_MAPS.iter().filter(|m| pins.map(m).exists()).collect();
        let leftover = pins.upgrade_dir().exists();
        let removed = crate::datapath::cleanup(pins.root());
        started.unwrap();
        let (size, a, b) = state.unwrap();
        assert_eq!(size, std::mem::size_of::<AccelState>());
        assert_eq!(a, Some(AccelState { lock: 0, flags: 1, psock: 0, msgs: 0, pad: 0 }));
        assert_eq!(b, Some(AccelState { lock: 0, flags: 4, psock: 0, msgs: 0, pad: 0 }));
        assert!(retired_left.is_empty(), "retired maps still pinned after the start: {retired_left:?}");
        assert!(!leftover, "the old map's pin is gone");
        assert!(removed.unwrap().contains(&pins.map(pins::MAP_ACCEL_STATE)));
    }

    /// A start over what the version before struct mw_accel_state.msgs left
    /// pinned: both state maps with 16-byte values (lock, flags, psock).
    /// Each entry is carried over with its flags and psock address and a
    /// message count of 0 (those sockets have no MW_ACCEL_CONNECT: they
    /// report nothing at their FIN), in both families' maps.
    #[test]
    fn a_real_start_over_the_layout_before_msgs_widens_the_state_keeping_flags_and_psock() {
        use crate::datapath::layout::{AccelState, Sock6Key};
        let (_fs, cg, pins) = real_start_dirs();
        let before_msgs = |name: &str| {
            let mut earlier = sockops_def(name);
            assert_eq!(earlier.value_size as usize, std::mem::size_of::<AccelState>());
            earlier.value_size = std::mem::offset_of!(AccelState, msgs) as u32;
            assert_eq!(earlier.value_size, 16);
            obj_pin(&map_create_like(&earlier, earlier.max_entries).unwrap(), &pins.map(name)).unwrap();
            MapFd::open_pinned(&pins.map(name)).unwrap()
        };
        let key6 = Sock6Key { netns_cookie: 7, local_ip6: [0, 0, 0, 1u32.to_be()], remote_ip6: [0, 0, 0, 1u32.to_be()], local_port: 40002, remote_port: 15001 };
        let old4 = before_msgs(pins::MAP_ACCEL_STATE);
        old4.update(&sock_key(40000), &[0u32, 1, 0xdead_0000, 0xffff_8880]).unwrap();
        old4.update(&sock_key(40001), &[0u32, 4, 0, 0]).unwrap();
        before_msgs(pins::MAP_ACCEL_STATE6).update(&key6, &[0u32, 9, 0xbeef_0000, 0xffff_8881]).unwrap();
        drop(old4);
        let config = real_start_config(&pins, &cg, "[acceleration]\nenabled = true\n");

        let started = crate::datapath::install(&config);
        let read = |name: &str| MapFd::open_pinned(&pins.map(name)).map(|m| m.info().unwrap().value_size as usize);
        let sizes = (read(pins::MAP_ACCEL_STATE), read(pins::MAP_ACCEL_STATE6));
        let v4 = MapFd::open_pinned(&pins.map(pins::MAP_ACCEL_STATE))
            .map(|m| (m.lookup::<_, AccelState>(&sock_key(40000)).unwrap(), m.lookup::<_, AccelState>(&sock_key(40001)).unwrap()));
        let v6 = MapFd::open_pinned(&pins.map(pins::MAP_ACCEL_STATE6)).map(|m| m.lookup::<_, AccelState>(&key6).unwrap());
        let leftover = pins.upgrade_dir().exists();
        crate::datapath::cleanup(pins.root()).unwrap();
        started.unwrap();
        let want = std::mem::size_of::<AccelState>();
        assert_eq!((sizes.0.unwrap(), sizes.1.unwrap()), (want, want));
        let psock = |lo: u64, hi: u64| hi << 32 | lo;
        assert_eq!(v4.unwrap(), (
            Some(AccelState { lock: 0, flags: 1, psock: psock(0xdead_0000, 0xffff_8880), msgs: 0, pad: 0 }),
            Some(AccelState { lock: 0, flags: 4, psock: 0, msgs: 0, pad: 0 }),
        ));
        assert_eq!(v6.unwrap(), Some(AccelState { lock: 0, flags: 9, psock: psock(0xbeef_0000, 0xffff_8881), msgs: 0, pad: 0 }));
        assert!(!leftover, "the old maps' pins are gone");
    }

    #[test]
    fn cleanup_removes_a_retired_maps_pin() {
        let (_fs, pins) = fresh_pins();
        pin_retired(&pins, pins::RETIRED_MAPS[0]);
        let removed = crate::datapath::cleanup(pins.root()).unwrap();
        assert!(removed.contains(&pins.map(pins::RETIRED_MAPS[0])), "{removed:?}");
        assert!(!pins.map(pins::RETIRED_MAPS[0]).exists());
    }

    /// Old maps a loader that stopped before its catch-up left under
    /// catch-up/ (with a counters map's carried values) go with `cleanup`,
    /// and the directory with them.
    #[test]
    fn cleanup_removes_the_maps_waiting_for_a_catch_up() {
        let (_fs, pins) = fresh_pins();
        std::fs::create_dir_all(pins.catch_up_dir()).unwrap();
        let stats = def(pins::MAP_STATS);
        let staged = pins.map_staged(pins::MAP_STATS, 7);
        obj_pin(&map_create_like(&stats, stats.max_entries - 1).unwrap(), &staged).unwrap();
        obj_pin(&map_create_like(&stats, stats.max_entries - 1).unwrap(), &Pins::staged_carried(&staged)).unwrap();
        assert_eq!(pins.staged_maps(), vec![(pins::MAP_STATS, staged.clone())], "the carried values are not a map waiting of their own");
        let removed = crate::datapath::cleanup(pins.root()).unwrap();
        assert!(removed.contains(&staged) && removed.contains(&Pins::staged_carried(&staged)), "{removed:?}");
        assert!(!pins.catch_up_dir().exists());
    }

    #[test]
    fn unchanged_maps_are_left_alone() {
        let (_fs, pins) = fresh_pins();
        let _obj = load_sock(&pins);
        let up = Upgrade::prepare(&pins, SOCK).unwrap();
        assert!(up.moved.is_empty(), "{up:?}");
    }
}
