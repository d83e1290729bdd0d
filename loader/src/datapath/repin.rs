//! A map whose pin was removed (by hand, a half-cleaned bpffs) while the
//! datapath's programs still hold it: `run` finds it through the programs
//! pinned under the pin directory (the cgroup links, the tc programs, the
//! pods' tcx links) and pins it again at its place, so that the start reuses
//! it with what it holds (flows, original destinations in flight, the pods'
//! entries). One that differs from this version's only in capacity (a
//! version with another limit, in bpf/lib/meshwire_consts.h), or in a value
//! that grew at its end, is pinned where an upgrade sets an earlier map
//! aside: the upgrade (upgrade.rs) then carries its entries into this
//! version's new map, or refuses the start when they do not fit. Only when
//! no such map is found, or it cannot become this version's, does the start
//! pin a new, empty one.
//!
//! A start that fails after this removes those pins again (they are among
//! what it created): the map is then as it was, held by the attached
//! programs (those the start replaced use it too), and the next start finds
//! it again.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, OrOs};
use crate::libbpf::{self, MapFd, MapInfo};

use super::pins::Pins;
use super::tc::replace_pin;
use super::upgrade::{carriable, describe};

/// What a start did about one map not pinned though others were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpinned {
    /// The map the attached programs use (kernel `id`, found through the
    /// program pinned at `via`) is pinned again, with its entries.
    Repinned { map: &'static str, id: u32, via: PathBuf },
    /// The map the programs use (`id`, found through `via`) differs from
    /// this version's only in capacity (or in a value that grew at its
    /// end: `found` against `want`): it is pinned aside, and the upgrade
    /// carries its entries into this version's new map.
    Carried { map: &'static str, id: u32, via: PathBuf, found: String, want: String },
    /// No program pinned there uses a map of that name: a new, empty one.
    NotFound { map: &'static str },
    /// The map of that name the programs use (`id`) is not this version's
    /// and cannot become it (`found` against `want`): a new, empty one.
    Differs { map: &'static str, id: u32, found: String, want: String },
    /// The map the programs use (`id`) could not be pinned again (`error`):
    /// a new, empty one.
    Unpinnable { map: &'static str, id: u32, error: String },
}

impl Unpinned {
    /// A line for the log: what the start did, and what that means.
    pub fn describe(&self, pins: &Pins) -> String {
        let dir = pins.maps_dir();
        let lost = "the pods' and the node's entries are written again, what the datapath kept there for connections in flight is lost";
        match self {
            Unpinned::Repinned { map, id, via } => format!(
                "map {map} was not pinned under {} though the datapath's other maps were (its pin was removed): this start pinned the map the attached programs use again (id {id}, found through {}), with its entries: nothing is lost",
                dir.display(),
                via.display()
            ),
            Unpinned::Carried { map, id, via, found, want } => format!(
                "map {map} was not pinned under {} though the datapath's other maps were (its pin was removed), and the one the attached programs use (id {id}, found through {}: {found}) differs from this version's ({want}) only in capacity (or in a value grown at its end): this start carried its entries into a new {map} of this version's (the upgrade lines say how many): nothing is lost",
                dir.display(),
                via.display()
            ),
            Unpinned::NotFound { map } => format!(
                "map {map} was not pinned under {} though the datapath's other maps were, and no program pinned under {} uses one (its programs were detached too, or an earlier version had no such map): this start pinned a new, empty {map}; {lost}",
                dir.display(),
                pins.root().display()
            ),
            Unpinned::Differs { map, id, found, want } => format!(
                "map {map} was not pinned under {} though the datapath's other maps were, and the one the attached programs use (id {id}: {found}) is not this version's ({want}): this start pinned a new, empty {map}; {lost}",
                dir.display()
            ),
            Unpinned::Unpinnable { map, id, error } => format!(
                "map {map} was not pinned under {} though the datapath's other maps were, and the one the attached programs use (id {id}) could not be pinned again ({error}): this start pinned a new, empty {map}; {lost}",
                dir.display()
            ),
        }
    }
}

/// For each map of `unpinned` (whose definitions are among `defs`): the
/// live map of that name the programs pinned under `pins` use, pinned again
/// at its place when it matches its definition (type, key and value sizes,
/// capacity, flags: what libbpf checks before it reuses a pin), or set
/// aside for the upgrade ([`super::upgrade::Upgrade::prepare`], which must
/// come after this) when only its capacity differs. The pins written are
/// added to `created` (a failed start removes them again: the map is then
/// unpinned, as before).
pub fn repin_live_maps(pins: &Pins, unpinned: &[&'static str], defs: &[MapInfo], created: &mut Vec<PathBuf>) -> Vec<Unpinned> {
    if unpinned.is_empty() {
        return Vec::new();
    }
    let live = live_maps(pins, unpinned);
    let mut done = Vec::new();
    for &map in unpinned {
        let Some(def) = defs.iter().find(|d| d.name == map) else {
            done.push(Unpinned::NotFound { map });
            continue;
        };
        let Some(live) = live.iter().find(|l| l.info.name == kernel_name(map)) else {
            done.push(Unpinned::NotFound { map });
            continue;
        };
        let id = live.fd.id();
        let (found, want) = (describe(&live.info), describe(def));
        let (pin, unpinned) = if live.info.same_shape(def) {
            (pins.map(map), Unpinned::Repinned { map, id, via: live.via.clone() })
        } else if carriable(&live.info, def).is_ok() {
            // Where an upgrade sets an earlier version's map aside: the
            // upgrade's plan takes it from there, as after a start that
            // died mid-upgrade.
            (pins.map_set_aside(map), Unpinned::Carried { map, id, via: live.via.clone(), found, want })
        } else {
            done.push(Unpinned::Differs { map, id, found, want });
            continue;
        };
        match pin_at(&live.fd, &pin, pins) {
            Ok(()) => {
                created.push(pin);
                done.push(unpinned);
            }
            Err(e) => done.push(Unpinned::Unpinnable { map, id, error: e.to_string() }),
        }
    }
    done
}

/// Pins `fd` at `pin` in one step (no half-made pin under its name), the
/// upgrade directory made first when it goes there.
fn pin_at(fd: &MapFd, pin: &Path, pins: &Pins) -> Result<(), Error> {
    if pin.starts_with(pins.upgrade_dir()) {
        std::fs::create_dir_all(pins.upgrade_dir()).or_os(|| format!("creating {}", pins.upgrade_dir().display()))?;
    }
    replace_pin(fd, pin)
}

/// A live map, its facts, and the pin of the program it was found through.
struct Live {
    fd: MapFd,
    info: MapInfo,
    via: PathBuf,
}

/// The kernel's name of the map `name` (it keeps at most 15 bytes).
fn kernel_name(name: &str) -> &str {
    &name[..name.len().min(15)]
}

/// The maps the programs pinned under `pins` use, once per kernel id,
/// each with the pin of the first program found using it (the cgroup
/// links first, then the tc programs, then the pods' tcx links), until one
/// of each name of `wanted` is found.
fn live_maps(pins: &Pins, wanted: &[&str]) -> Vec<Live> {
    let mut found: Vec<Live> = Vec::new();
    for (path, prog) in pinned_programs(pins) {
        if wanted.iter().all(|w| found.iter().any(|l| l.info.name == kernel_name(w))) {
            break;
        }
        let ids = match libbpf::prog_map_ids(&prog) {
            Ok(ids) => ids,
            Err(e) => {
                log::warn!("{}: {e}", path.display());
                continue;
            }
        };
        for id in ids {
            if found.iter().any(|l| l.fd.id() == id) {
                continue;
            }
            // A map freed meanwhile is not there to find.
            let Ok(fd) = MapFd::from_id(id) else { continue };
            let Ok(info) = fd.info() else { continue };
            found.push(Live { fd, info, via: path.clone() });
        }
    }
    found
}

/// The programs pinned under `pins`, each with the pin it was found
/// through: behind each link of links/, each program of progs/, behind each
/// pod's tcx links (opened as they are asked for).
fn pinned_programs(pins: &Pins) -> impl Iterator<Item = (PathBuf, OwnedFd)> + '_ {
    let cgroup = files(&pins.links_dir()).into_iter().filter_map(program_behind_link);
    let tc = files(&pins.progs_dir()).into_iter().filter_map(|path| Some((path.clone(), libbpf::obj_get(&path).ok()?)));
    let pods = pins.pod_cookies().into_iter().flat_map(|c| files(&pins.pod_dir(c))).filter_map(program_behind_link);
    cgroup.chain(tc).chain(pods)
}

/// The program behind the link pinned at `path`.
fn program_behind_link(path: PathBuf) -> Option<(PathBuf, OwnedFd)> {
    let link = libbpf::obj_get(&path).ok()?;
    let prog = libbpf::link_program(&link).ok()?;
    Some((path, prog))
}

/// The files (pins) of a directory, sorted; markers (directories) and
/// temporary pins left out.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()) && !e.file_name().to_string_lossy().ends_with("~new"))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}
