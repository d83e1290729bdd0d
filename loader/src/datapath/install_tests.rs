//! What `install` refuses, by kind, with what to do, and that a refusal
//! leaves the pins as they were. Real kernel: a private bpffs, temporary
//! cgroups.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::datapath::{cleanup, install, pins::Pins};
use crate::error::Error;
use crate::testutil::{PrivateBpffs, TempCgroup};

fn config(pin_dir: &Path, cgroup: &Path) -> Config {
    Config::parse("t.toml", &format!("[bpf]\npin_dir = \"{}\"\ncgroup = \"{}\"\n", pin_dir.display(), cgroup.display())).unwrap()
}

fn files(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meshwire-install-{tag}-{}-{:?}", std::process::id(), std::thread::current().id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Links an earlier loader attached to one cgroup, a start configured for
/// another: not taken over, nothing moved, and the error says to clean up.
#[test]
fn links_left_on_another_cgroup_are_inconsistent_and_kept() {
    let fs = PrivateBpffs::new();
    let (first, second) = (TempCgroup::new(), TempCgroup::new());
    let pins = Pins::new(&fs.path().join("meshwire"));
    install(&config(pins.root(), first.path())).unwrap();
    let (links, maps) = (files(&pins.links_dir()), files(&pins.maps_dir()));
    let refused = install(&config(pins.root(), second.path()));
    let after = (files(&pins.links_dir()), files(&pins.maps_dir()));
    let cleaned = cleanup(pins.root());

    let e = refused.unwrap_err();
    assert!(matches!(e, Error::Inconsistent(_)), "{e:?}");
    let m = e.message();
    assert!(m.contains(" is attached to another cgroup than ") && m.contains(&second.path().display().to_string()), "{m}");
    assert!(m.contains("run `meshwire-loader cleanup`"), "{m}");
    assert!(!links.is_empty() && after == (links, maps), "the refused start changed the pins");
    cleaned.unwrap();
}

#[test]
fn a_pin_dir_or_cgroup_that_cannot_serve_is_invalid_and_nothing_is_created() {
    let cg = TempCgroup::new();
    let plain = temp_dir("plain");

    // A pin directory on no bpffs (and not under /sys/fs/bpf, which install would mount).
    let e = install(&config(&plain.join("meshwire"), cg.path())).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert!(e.message().contains("is not on a bpffs mount") && e.message().contains("bpf.pin_dir"), "{e}");
    assert!(files(&plain).is_empty(), "created {:?}", files(&plain));

    // A configured cgroup that is an ordinary directory, or is not there.
    let fs = PrivateBpffs::new();
    let pin_dir = fs.path().join("meshwire");
    let e = install(&config(&pin_dir, &plain)).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert!(e.message().contains(&format!("{} is not a cgroup v2 directory (the cgroup2 mount is at ", plain.display())), "{e}");
    let e = install(&config(&pin_dir, &cg.path().join("absent"))).unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENOENT), "{e:?}");
    assert!(!pin_dir.exists(), "created {}", pin_dir.display());
    std::fs::remove_dir_all(&plain).unwrap();
}

/// struct mw_orig4 is { __u32 ip4; __u16 port; __u16 flags; } in C; a
/// loader whose mirror lists port and flags the other way round (as one
/// built from another checkout than its objects might).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct SwappedOrig4 {
    pub ip4: u32,
    pub flags: u16,
    pub port: u16,
}

impl crate::datapath::layout::Mirror for SwappedOrig4 {
    const C_NAME: &'static str = "mw_orig4";
    fn members() -> Vec<crate::libbpf::BtfMember> {
        let member = |name: &str, offset, size| crate::libbpf::BtfMember { name: name.into(), offset, size };
        vec![
            member("ip4", std::mem::offset_of!(SwappedOrig4, ip4), 4),
            member("flags", std::mem::offset_of!(SwappedOrig4, flags), 2),
            member("port", std::mem::offset_of!(SwappedOrig4, port), 2),
        ]
    }
}

/// The check every install makes first, against the real alignchecker
/// object's BTF: a wrong mirror is BuildMismatch::Differs naming the struct
/// and each field at both places (nothing of the declarations, which
/// match), and as an Error it is Internal, saying to rebuild from one
/// checkout. The loader's own mirrors and declarations pass.
#[test]
fn a_wrong_layout_is_a_build_mismatch_naming_the_struct_and_field() {
    use crate::datapath::layout::{check_mirror, FieldAt, LayoutMismatch};
    use crate::datapath::{check_layouts, check_layouts_with, objects, BuildMismatch};

    assert_eq!(check_layouts(), Ok(()));
    let e = check_layouts_with(&objects::ALIGNCHECKER, check_mirror::<SwappedOrig4>, objects::check_declarations).unwrap_err();
    let at = |offset, size| Some(FieldAt { offset, size });
    assert_eq!(
        e,
        BuildMismatch::Differs {
            layout: vec![
                LayoutMismatch::Field { c_struct: "mw_orig4", field: "port".into(), c: at(4, 2), rust: at(6, 2) },
                LayoutMismatch::Field { c_struct: "mw_orig4", field: "flags".into(), c: at(6, 2), rust: at(4, 2) },
            ],
            declarations: vec![],
        }
    );
    let e = Error::from(e);
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    assert_eq!(
        e.message().lines().take(2).collect::<Vec<_>>(),
        [
            "this loader does not match its BPF objects (a mixed build?): rebuild both from one checkout (bazel build //loader):",
            "struct mw_orig4: field port is at offset 4 (2 bytes) in C but at offset 6 (2 bytes) in Rust: make loader/src/datapath/layout.rs match bpf/lib/meshwire_structs.h (the C header is the one definition)",
        ]
    );
    assert_eq!(e.message().lines().count(), 3, "{e}");
}

/// An object libbpf cannot open is Unreadable, with what libbpf said; the
/// mirrors are not looked at.
#[test]
fn an_unreadable_btf_object_is_named_with_what_libbpf_said() {
    use crate::datapath::{check_layouts_with, objects, BuildMismatch};
    let broken = objects::ObjectSpec { name: "meshwire_broken", elf: b"not an ELF object" };
    let e = check_layouts_with(&broken, |_| panic!("no BTF to check"), || Ok(())).unwrap_err();
    let BuildMismatch::Unreadable { object: "meshwire_broken", errno: Some(errno), error } = &e else { panic!("{e:?}") };
    assert!(error.starts_with("opening BPF object meshwire_broken: "), "{error}");
    let errno = *errno;
    let e = Error::from(e);
    assert_eq!(e.errno(), Some(errno), "{e:?}");
    assert!(e.message().ends_with("this loader cannot read its own BPF object meshwire_broken (a broken build: rebuild it, bazel build //loader)"), "{e}");
}

/// A datapath installed on a bpffs and cgroup of the test's own (kept alive
/// by the first two), with the map definitions of its objects.
fn installed_with_definitions() -> (PrivateBpffs, TempCgroup, Pins, Config, Vec<crate::libbpf::MapInfo>) {
    let (fs, cg, pins, config) = installed_as(&[]);
    let defs = crate::datapath::upgrade::definitions(crate::datapath::objects::WITH_PROGRAMS).unwrap();
    (fs, cg, pins, config, defs)
}

/// A datapath installed as a version whose maps have the `capacities`
/// given (map name, capacity) would install it, on a bpffs and cgroup of
/// the test's own.
fn installed_as(capacities: &[(&'static str, u32)]) -> (PrivateBpffs, TempCgroup, Pins, Config) {
    let fs = PrivateBpffs::new();
    let cg = TempCgroup::new();
    let pins = Pins::new(&fs.path().join("meshwire"));
    let config = config(pins.root(), cg.path());
    crate::datapath::objects::other_capacities::with(capacities, || install(&config)).unwrap();
    (fs, cg, pins, config)
}

/// Every pin and directory under the pin directory's maps/, links/,
/// progs/ and upgrade/ (whether upgrade/ is there: the last item).
fn pin_state(pins: &Pins) -> (BTreeSet<PathBuf>, bool) {
    let all = [pins.maps_dir(), pins.links_dir(), pins.progs_dir(), pins.upgrade_dir()].iter().flat_map(|d| files(d)).collect();
    (all, pins.upgrade_dir().exists())
}

/// Removes the pin of the map `name` (the attached programs still hold it);
/// returns the map's id.
fn unpin(pins: &Pins, name: &'static str) -> u32 {
    let id = pins.open_map(name).unwrap().id();
    std::fs::remove_file(pins.map(name)).unwrap();
    id
}

/// mw_pods entries, cookie `c` with flags `c`, for each cookie of `cookies`.
fn fill_pods(map: &crate::libbpf::MapFd, cookies: std::ops::RangeInclusive<u64>) {
    use crate::datapath::layout::Pod;
    for c in cookies {
        map.update(&c, &Pod { flags: c as u32 }).unwrap();
    }
}

/// How many of mw_pods' entries `cookies` are there, each with its flags.
fn pods_kept(map: &crate::libbpf::MapFd, cookies: std::ops::RangeInclusive<u64>) -> usize {
    use crate::datapath::layout::Pod;
    cookies.filter(|&c| map.lookup::<u64, Pod>(&c).unwrap() == Some(Pod { flags: c as u32 })).count()
}


/// Puts an entry (every key byte 0x11, every value byte 0x22) into the
/// pinned map `name`, then removes its pin (the attached programs still
/// hold the map). Returns the map's id, the key and the value.
fn fill_and_unpin(pins: &Pins, name: &'static str) -> (u32, Vec<u8>, Vec<u8>) {
    let map = pins.open_map(name).unwrap();
    let info = map.info().unwrap();
    let (key, value) = (vec![0x11u8; info.key_size as usize], vec![0x22u8; info.value_size as usize]);
    map.update_raw(&key, &value).unwrap();
    std::fs::remove_file(pins.map(name)).unwrap();
    (map.id(), key, value)
}

/// Two maps' pins removed while the datapath is attached (by hand, a
/// half-cleaned bpffs), each map with an entry put in before:
/// mw_flow4_syn, which only the tc programs (pinned under progs/) use, and
/// mw_orig_tuple4, which sockops (behind its cgroup link under links/)
/// uses. repin_live_maps finds each through those pins and pins it again;
/// a start as `run` makes does the same: the same map ids, with their
/// entries, and no temporary pin left. When the programs holding a map are
/// gone too (progs/ emptied: the tc programs attach to no pod here), the
/// start pins a new, empty one (NotFound).
/// The two fallbacks of a start that finds a map's pin removed, proven on
/// the live map: it is not the shape this version declares and cannot
/// become it (here its definition is given a value 4 bytes longer; one
/// differing only in capacity is carried over, see below), or it cannot be pinned
/// again at its place (a directory stands there). Either way nothing is
/// pinned in its name, no temporary `~new` pin is left, the live map keeps
/// its entry (the programs still hold it), and the log line says which.
#[test]
fn a_start_that_cannot_reuse_the_live_map_pins_nothing_in_its_name() {
    use crate::datapath::pins::MAP_ORIG_TUPLE4;
    use crate::datapath::repin::{repin_live_maps, Unpinned};
    let (_fs, _cg, pins, _config, defs) = installed_with_definitions();
    let (id, key, value) = fill_and_unpin(&pins, MAP_ORIG_TUPLE4);
    let live = crate::libbpf::MapFd::from_id(id).unwrap();

    // Another layout: the definition wants a longer value.
    let mut bigger = defs.clone();
    bigger.iter_mut().find(|d| d.name == MAP_ORIG_TUPLE4).unwrap().value_size += 4;
    let mut created = Vec::new();
    let differs = repin_live_maps(&pins, &[MAP_ORIG_TUPLE4], &bigger, &mut created);
    let pinned_after_differs = pins.map(MAP_ORIG_TUPLE4).exists();

    // Its place taken by a directory: the rename over it fails.
    std::fs::create_dir_all(pins.map(MAP_ORIG_TUPLE4).join("taken")).unwrap();
    let unpinnable = repin_live_maps(&pins, &[MAP_ORIG_TUPLE4], &defs, &mut created);
    let leftover: Vec<PathBuf> = files(&pins.maps_dir()).into_iter().filter(|p| p.to_string_lossy().ends_with("~new")).collect();
    let kept = live.lookup_raw(&key).unwrap();
    std::fs::remove_dir_all(pins.map(MAP_ORIG_TUPLE4)).unwrap();
    let cleaned = cleanup(pins.root());

    match &differs[..] {
        [Unpinned::Differs { map, id: got, found, want }] => {
            assert_eq!((*map, *got), (MAP_ORIG_TUPLE4, id));
            assert_ne!(found, want, "the two shapes are told apart");
            assert!(differs[0].describe(&pins).contains("pinned a new, empty mw_orig_tuple4"), "{}", differs[0].describe(&pins));
        }
        other => panic!("expected Differs, got {other:?}"),
    }
    assert!(!pinned_after_differs, "nothing pinned in its name");
    match &unpinnable[..] {
        [Unpinned::Unpinnable { map, id: got, error }] => {
            assert_eq!((*map, *got), (MAP_ORIG_TUPLE4, id));
            assert!(error.contains("renaming"), "{error}");
        }
        other => panic!("expected Unpinnable, got {other:?}"),
    }
    assert!(created.is_empty(), "no pin for a failed start to remove: {created:?}");
    assert!(leftover.is_empty(), "{leftover:?}");
    assert_eq!(kept, Some(value), "the live map keeps its entry");
    cleaned.unwrap();
}

#[test]
fn a_start_pins_again_the_live_map_whose_pin_was_removed_with_its_entries() {
    use crate::datapath::pins::{MAP_FLOW4_SYN, MAP_ORIG_TUPLE4};
    use crate::datapath::repin::{repin_live_maps, Unpinned};
    use crate::datapath::{objects, tc, unpinned_maps};
    let (_fs, _cg, pins, config, defs) = installed_with_definitions();
    let open = |name| crate::libbpf::MapFd::open_pinned(&pins.map(name)).unwrap();

    // Found through the pinned programs, pinned again.
    let (syn, orig) = (fill_and_unpin(&pins, MAP_FLOW4_SYN), fill_and_unpin(&pins, MAP_ORIG_TUPLE4));
    let unpinned = unpinned_maps(&pins);
    assert_eq!(unpinned, [MAP_ORIG_TUPLE4, MAP_FLOW4_SYN]);
    let mut created = Vec::new();
    let done = repin_live_maps(&pins, &unpinned, &defs, &mut created);
    let via_link = pins.link(objects::SOCKOPS_PROG.program);
    let via_tc = tc::TC_PROGRAMS.iter().map(|t| pins.prog(t.program)).find(|p| matches!(&done[1], Unpinned::Repinned { via, .. } if via == p));
    assert_eq!(
        done,
        [
            Unpinned::Repinned { map: MAP_ORIG_TUPLE4, id: orig.0, via: via_link },
            Unpinned::Repinned { map: MAP_FLOW4_SYN, id: syn.0, via: via_tc.expect("found through a tc program's pin") },
        ]
    );
    assert_eq!(created, [pins.map(MAP_ORIG_TUPLE4), pins.map(MAP_FLOW4_SYN)]);
    assert_eq!((open(MAP_FLOW4_SYN).id(), open(MAP_ORIG_TUPLE4).id()), (syn.0, orig.0));

    // The whole start, as `run` makes it.
    let (syn, orig) = (fill_and_unpin(&pins, MAP_FLOW4_SYN), fill_and_unpin(&pins, MAP_ORIG_TUPLE4));
    let started = install(&config);
    let after = |name, (id, key, _): &(u32, Vec<u8>, Vec<u8>)| {
        crate::libbpf::MapFd::open_pinned(&pins.map(name)).map(|m| (m.id() == *id, m.lookup_raw(key).unwrap()))
    };
    let kept = (after(MAP_FLOW4_SYN, &syn), after(MAP_ORIG_TUPLE4, &orig));
    let leftover: Vec<PathBuf> = files(&pins.maps_dir()).into_iter().filter(|p| p.to_string_lossy().ends_with("~new")).collect();

    // The programs holding mw_flow4_syn gone too: a new, empty map.
    for t in tc::TC_PROGRAMS {
        std::fs::remove_file(pins.prog(t.program)).unwrap();
    }
    let gone = fill_and_unpin(&pins, MAP_FLOW4_SYN);
    let none = repin_live_maps(&pins, &[MAP_FLOW4_SYN], &defs, &mut Vec::new());
    let restarted = install(&config);
    let fresh = after(MAP_FLOW4_SYN, &gone);
    let cleaned = cleanup(pins.root());

    started.unwrap();
    assert_eq!(kept.0.unwrap(), (true, Some(syn.2)), "mw_flow4_syn: the same map, its entry kept");
    assert_eq!(kept.1.unwrap(), (true, Some(orig.2)), "mw_orig_tuple4: the same map, its entry kept");
    assert!(leftover.is_empty(), "{leftover:?}");
    assert_eq!(none, [Unpinned::NotFound { map: MAP_FLOW4_SYN }]);
    restarted.unwrap();
    assert_eq!(fresh.unwrap(), (false, None), "a new, empty mw_flow4_syn");
    cleaned.unwrap();
}

/// A start that fails after it pinned the live maps again (here: its links
/// are on another cgroup than the one configured, found once the objects
/// are loaded and the upgrade carried over) leaves the pins as they were:
/// the map it pinned again at its place (mw_orig_tuple4) and the one it set
/// aside for the upgrade (mw_pods, of another capacity: as an earlier
/// version pinned it) are unpinned again, as before; no `~new` pin, no
/// new map's pin, no upgrade/ directory. Both live maps keep their entries,
/// still held by the attached programs, and the next start (configured
/// right) finds them: mw_orig_tuple4 the same map, mw_pods' entries carried
/// into this version's.
#[test]
fn a_start_that_fails_after_pinning_the_live_maps_again_leaves_them_as_they_were() {
    use crate::datapath::pins::{MAP_ORIG_TUPLE4, MAP_PODS};
    let (_fs, _cg, pins, config) = installed_as(&[(MAP_PODS, 2048)]);
    let other = TempCgroup::new();
    fill_pods(&pins.open_map(MAP_PODS).unwrap(), 1..=100);
    let pods_id = unpin(&pins, MAP_PODS);
    let (orig_id, key, value) = fill_and_unpin(&pins, MAP_ORIG_TUPLE4);
    let before = pin_state(&pins);

    let failed = install(&self::config(pins.root(), other.path()));
    let after_failure = pin_state(&pins);
    let live_pods = crate::libbpf::MapFd::from_id(pods_id).map(|m| pods_kept(&m, 1..=100));
    let live_orig = crate::libbpf::MapFd::from_id(orig_id).map(|m| m.lookup_raw(&key).unwrap());

    let restarted = install(&config);
    let orig = pins.open_map(MAP_ORIG_TUPLE4).map(|m| (m.id(), m.lookup_raw(&key).unwrap()));
    let pods = pins.open_map(MAP_PODS).map(|m| (m.info().unwrap().max_entries, pods_kept(&m, 1..=100)));
    let after_restart = pin_state(&pins);
    let cleaned = cleanup(pins.root());

    let e = failed.unwrap_err();
    assert!(matches!(e, Error::Inconsistent(_)) && e.message().contains(" is attached to another cgroup than "), "{e:?}");
    assert_eq!(after_failure, before, "the failed start changed the pins");
    assert!(!before.0.contains(&pins.map(MAP_ORIG_TUPLE4)) && !before.0.contains(&pins.map(MAP_PODS)) && !before.1);
    assert_eq!(live_pods.unwrap(), 100, "the live mw_pods keeps its entries");
    assert_eq!(live_orig.unwrap(), Some(value.clone()), "the live mw_orig_tuple4 keeps its entry");
    restarted.unwrap();
    assert_eq!(orig.unwrap(), (orig_id, Some(value)), "the next start pins the same mw_orig_tuple4 again");
    assert_eq!(pods.unwrap(), (pods_capacity(), 100), "the next start carries mw_pods' entries into this version's");
    assert!(!after_restart.1 && !after_restart.0.iter().any(|p| p.to_string_lossy().ends_with("~new")), "{after_restart:?}");
    cleaned.unwrap();
}

/// This version's capacity of mw_pods (bpf/lib/meshwire_consts.h).
fn pods_capacity() -> u32 {
    let defs = crate::datapath::upgrade::definitions(crate::datapath::objects::WITH_PROGRAMS).unwrap();
    defs.iter().find(|d| d.name == crate::datapath::pins::MAP_PODS).unwrap().max_entries
}

/// A map whose capacity is all that differs, its pin in place (an earlier
/// version's limit, bpf/lib/meshwire_consts.h): a start as this version
/// carries its entries into this version's map, also into a smaller one
/// when they fit. When they do not (one more entry than this version's
/// capacity), the start is refused naming the map, both capacities and
/// what to do, and nothing changed: the same map pinned, every entry in
/// it, nothing set aside. With one entry removed, they fit: all carried.
#[test]
fn a_start_carries_a_resized_maps_entries_and_refuses_when_they_do_not_fit() {
    use crate::datapath::pins::MAP_PODS;
    let capacity = pods_capacity();
    let n = capacity as u64 + 1;

    // Raised: an earlier version's 2048.
    let (_fs, _cg, pins, config) = installed_as(&[(MAP_PODS, 2048)]);
    fill_pods(&pins.open_map(MAP_PODS).unwrap(), 1..=2048);
    let raised = install(&config);
    let carried = pins.open_map(MAP_PODS).map(|m| (m.info().unwrap().max_entries, pods_kept(&m, 1..=2048)));
    let cleaned = cleanup(pins.root());
    raised.unwrap();
    assert_eq!(carried.unwrap(), (capacity, 2048));
    cleaned.unwrap();

    // Lowered: an earlier version's twice as many, one entry too many.
    let (_fs, _cg, pins, config) = installed_as(&[(MAP_PODS, capacity * 2)]);
    let old = pins.open_map(MAP_PODS).unwrap();
    fill_pods(&old, 1..=n);
    let before = pin_state(&pins);
    let refused = install(&config);
    let after = pin_state(&pins);
    let kept = pins.open_map(MAP_PODS).map(|m| (m.id(), pods_kept(&m, 1..=n)));
    old.delete(&n).unwrap();
    let fits = install(&config);
    let carried = pins.open_map(MAP_PODS).map(|m| (m.info().unwrap().max_entries, pods_kept(&m, 1..=n)));
    let cleaned = cleanup(pins.root());

    let e = refused.unwrap_err();
    assert!(matches!(e, Error::Inconsistent(_)), "{e:?}");
    let m = e.message();
    let says = [
        format!("map mw_pods under {} holds {n} entries, more than this version's capacity of {capacity} (the one in use has a capacity of {})", pins.maps_dir().display(), capacity * 2),
        "nothing was changed".to_string(),
        "bpf/lib/meshwire_consts.h".to_string(),
        format!("remove entries until at most {capacity} remain"),
        "`meshwire-loader cleanup`".to_string(),
    ];
    for s in says {
        assert!(m.contains(&s), "{s:?} not in: {m}");
    }
    assert_eq!(after, before, "the refused start changed the pins");
    assert_eq!(kept.unwrap(), (old.id(), n as usize), "the same map, every entry in it");
    fits.unwrap();
    assert_eq!(carried.unwrap(), (capacity, n as usize - 1), "all carried into the smaller map");
    cleaned.unwrap();
}

/// The same with the map's pin removed (the attached programs still hold
/// it, found through them by repin.rs): a map differing only in capacity
/// had been replaced by a new, empty one; its entries are now carried into
/// this version's map, pinned at its place. One holding more entries than
/// this version's capacity refuses the start as above, and nothing is
/// pinned in its name: the live map is as it was, unpinned, every entry
/// in it.
#[test]
fn a_start_carries_the_entries_of_a_live_map_of_another_capacity_whose_pin_was_removed() {
    use crate::datapath::pins::MAP_PODS;
    let capacity = pods_capacity();
    let n = capacity as u64 + 1;

    let (_fs, _cg, pins, config) = installed_as(&[(MAP_PODS, 2048)]);
    fill_pods(&pins.open_map(MAP_PODS).unwrap(), 1..=2048);
    let id = unpin(&pins, MAP_PODS);
    let started = install(&config);
    let carried = pins.open_map(MAP_PODS).map(|m| (m.id() != id, m.info().unwrap().max_entries, pods_kept(&m, 1..=2048)));
    let after = pin_state(&pins);
    let cleaned = cleanup(pins.root());
    started.unwrap();
    assert_eq!(carried.unwrap(), (true, capacity, 2048), "a new map of this version's capacity, every entry carried");
    assert!(!after.1 && !after.0.iter().any(|p| p.to_string_lossy().ends_with("~new")), "{after:?}");
    cleaned.unwrap();

    let (_fs, _cg, pins, config) = installed_as(&[(MAP_PODS, capacity * 2)]);
    fill_pods(&pins.open_map(MAP_PODS).unwrap(), 1..=n);
    let id = unpin(&pins, MAP_PODS);
    let before = pin_state(&pins);
    let refused = install(&config);
    let after = pin_state(&pins);
    let live = crate::libbpf::MapFd::from_id(id).map(|m| pods_kept(&m, 1..=n));
    let cleaned = cleanup(pins.root());

    let e = refused.unwrap_err();
    assert!(matches!(e, Error::Inconsistent(_)), "{e:?}");
    assert!(e.message().contains(&format!("map mw_pods under {} holds {n} entries, more than this version's capacity of {capacity}", pins.maps_dir().display())), "{e}");
    assert_eq!(after, before, "the refused start changed the pins");
    assert!(!after.0.contains(&pins.map(MAP_PODS)), "nothing pinned in its name");
    assert_eq!(live.unwrap(), n as usize, "the live map keeps every entry");
    cleaned.unwrap();
}

/// Every hook of the datapath under `pins` and the program it runs (by
/// id): the cgroup links, the tc programs pinned under progs/ (pods attach
/// from those), the pod `cookie`'s tcx links and the socket maps' sk_msg
/// verdicts.
fn hooks(pins: &Pins, cookie: u64) -> Vec<(String, u32)> {
    use crate::datapath::{pins as names, tc::TC_PROGRAMS};
    use crate::libbpf;
    use std::os::fd::AsRawFd;
    let mut hooks = Vec::new();
    for p in files(&pins.links_dir()) {
        hooks.push((p.display().to_string(), libbpf::link_prog_id(&libbpf::obj_get(&p).unwrap()).unwrap()));
    }
    for p in files(&pins.progs_dir()).into_iter().filter(|p| !p.is_dir()) {
        hooks.push((p.display().to_string(), libbpf::prog_id(libbpf::obj_get(&p).unwrap().as_raw_fd()).unwrap()));
    }
    for p in TC_PROGRAMS.iter().flat_map(|tc| pins.pod(cookie).links_of(tc.link)) {
        hooks.push((p.display().to_string(), libbpf::link_prog_id(&libbpf::obj_get(&p).unwrap()).unwrap()));
    }
    for map in [names::MAP_SOCK_HASH, names::MAP_SOCK_HASH6] {
        for id in libbpf::prog_query(&pins.open_map(map).unwrap(), libbpf_sys::BPF_SK_MSG_VERDICT).unwrap() {
            hooks.push((format!("sk_msg verdict of {map}"), id));
        }
    }
    hooks
}

/// A pod in a netns pair of its own (VETH_POD meshed in mw_pod_ips), its
/// sidecar listening on the inbound port, tc attached by `mode`.
fn meshed_pod(pins: &Pins, config: &Config, mode: crate::datapath::tc::TcAttach) -> (crate::datapath::tc::tests::veth::NetnsPair, u64, std::net::TcpListener) {
    use crate::datapath::tc::tests::veth::{NetnsPair, VETH_POD};
    let pair = NetnsPair::new();
    let cookie = crate::system::netns_cookie(&pair.pod_path()).unwrap();
    pins.open_map(crate::datapath::pins::MAP_POD_IPS).unwrap().update(&u32::from(VETH_POD).to_be(), &cookie).unwrap();
    let inbound = config.sidecar.inbound_port;
    let sidecar = crate::testutil::in_netns(&pair.pod_path(), move || std::net::TcpListener::bind(("0.0.0.0", inbound)).unwrap());
    crate::datapath::tc::attach_pod(pins, cookie, &pair.pod_path(), "eth0", mode).unwrap();
    (pair, cookie, sidecar)
}

/// The mw_flow4 key of a connection from the remote namespace (`peer`) into the pod.
fn flow_of(peer: std::net::SocketAddr) -> crate::datapath::layout::Flow4Key {
    use crate::datapath::tc::tests::veth::{VETH_POD, VETH_REMOTE};
    crate::datapath::layout::Flow4Key { remote_ip4: u32::from(VETH_REMOTE).to_be(), local_ip4: u32::from(VETH_POD).to_be(), remote_port: peer.port().to_be(), pad: 0 }
}

/// A connection from the remote namespace to the pod's 8080, which its
/// sidecar accepts: the client's end, the sidecar's, the flow's mw_flow4 key.
fn connect_to_pod(pair: &crate::datapath::tc::tests::veth::NetnsPair, sidecar: &std::net::TcpListener) -> std::io::Result<(std::net::TcpStream, std::net::TcpStream, crate::datapath::layout::Flow4Key)> {
    crate::datapath::tc::tests::veth::dial(pair, 8080).map(|client| {
        let (server, peer) = sidecar.accept().unwrap();
        (client, server, flow_of(peer))
    })
}

/// The sidecar answers "pong" on `server`: what `client` reads (the egress
/// rewrites the reply from the flow).
fn pong(mut client: std::net::TcpStream, mut server: std::net::TcpStream) -> std::io::Result<[u8; 4]> {
    use std::io::{Read, Write};
    server.write_all(b"pong")?;
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).map(|()| buf)
}

/// A start that upgrades in place (mw_flow4 pinned by an earlier version
/// with another capacity) and fails after it moved hooks onto its programs:
/// here mw_tc_egress's pin is in the way (a directory), so every cgroup
/// link, both sk_msg verdicts, mw_tc_ingress's pin and the pod's ingress
/// tcx link have moved when it fails. Each goes back to the program it had
/// (the same program ids as before, on every hook), the old mw_flow4 is
/// pinned again with the flow it held, and the pins are as they were: no
/// `~new`, no upgrade/. A connection into the pod after the failure is
/// steered by the old programs, its flow written into the pinned map; the
/// next start (nothing in the way) carries both flows into this version's
/// mw_flow4. Before, the moved links kept running the new programs, whose
/// mw_flow4 the rollback unpinned: the pod's ingress wrote its flows there,
/// lost at the next start, while its egress ran the old program on the old
/// map.
#[test]
fn a_start_that_fails_after_moving_hooks_moves_each_back_to_its_program() {
    use crate::datapath::layout::{Flow4, Flow4Key};
    use crate::datapath::objects::{self, Hook, PROGRAMS};
    use crate::datapath::pins::MAP_FLOW4;
    use crate::datapath::tc::{self, TcAttach};
    let fs = PrivateBpffs::new();
    let cg = TempCgroup::new();
    let pins = Pins::new(&fs.path().join("meshwire"));
    let toml = format!("[bpf]\npin_dir = \"{}\"\ncgroup = \"{}\"\n[acceleration]\nenabled = true\n", pins.root().display(), cg.path().display());
    let config = Config::parse("t.toml", &toml).unwrap();
    crate::datapath::objects::other_capacities::with(&[(MAP_FLOW4, 1024)], || install(&config)).unwrap();
    let earlier = pins.open_map(MAP_FLOW4).unwrap();
    let old_flow = (Flow4Key { remote_ip4: 0x0a00_0001, local_ip4: 0x0a00_0002, remote_port: 4000, pad: 0 }, Flow4 { orig_port: 8080u16.to_be(), flags: 0, pad: 0 });
    earlier.update(&old_flow.0, &old_flow.1).unwrap();

    // A pod meshed with tcx links, its sidecar listening.
    let (pair, cookie, sidecar) = meshed_pod(&pins, &config, TcAttach::Tcx);
    let egress_pin = pins.prog(objects::TC_EGRESS.program);
    std::fs::remove_file(&egress_pin).unwrap();
    std::fs::create_dir(&egress_pin).unwrap();
    let pod_pins = || files(&pins.pod(cookie).dir());
    let before = (hooks(&pins, cookie), pin_state(&pins), pod_pins());

    let failed = install(&config);
    let after = (hooks(&pins, cookie), pin_state(&pins), pod_pins());
    let pinned = pins.open_map(MAP_FLOW4).map(|m| (m.id(), m.lookup::<Flow4Key, Flow4>(&old_flow.0).unwrap()));
    // A connection from the remote namespace to the pod's 8080, which the
    // sidecar accepts: its flow, as the pinned mw_flow4 has it.
    let connected = connect_to_pod(&pair, &sidecar);
    let new_flow = connected.as_ref().ok().map(|(_, _, key)| (*key, pins.open_map(MAP_FLOW4).unwrap().lookup::<Flow4Key, Flow4>(key).unwrap()));

    std::fs::remove_dir(&egress_pin).unwrap();
    let restarted = install(&config);
    let carried = pins.open_map(MAP_FLOW4).map(|m| {
        let get = |k: &Flow4Key| m.lookup::<Flow4Key, Flow4>(k).unwrap();
        (m.info().unwrap().max_entries, get(&old_flow.0), new_flow.as_ref().map(|(k, _)| get(k)))
    });
    drop(connected);
    let detached = tc::detach_pod(&pins, cookie, Some((&pair.pod_path(), "eth0")));
    let cleaned = cleanup(pins.root());

    let e = failed.unwrap_err();
    assert!(e.message().contains(objects::TC_EGRESS.program) && !e.message().contains("could not be moved back"), "{e}");
    let cgroup_links = PROGRAMS.iter().filter(|p| p.hook == Hook::Cgroup).count();
    assert_eq!(before.0.len(), cgroup_links + 1 + 2 + 2, "cgroup links, mw_tc_ingress's pin, the pod's two tcx links, two sk_msg verdicts: {:?}", before.0);
    assert_eq!(after.0, before.0, "every hook runs the program it had");
    assert_eq!((after.1, after.2), (before.1, before.2), "the failed start changed the pins");
    assert_eq!(pinned.unwrap(), (earlier.id(), Some(old_flow.1)), "the earlier mw_flow4 is pinned again, with its flow");
    assert_eq!(new_flow.as_ref().expect("a connection to the pod after the failed start").1.map(|f| u16::from_be(f.orig_port)), Some(8080), "the old ingress wrote its flow into the pinned mw_flow4");
    restarted.unwrap();
    let capacity = crate::datapath::upgrade::definitions(objects::WITH_PROGRAMS).unwrap().into_iter().find(|d| d.name == MAP_FLOW4).unwrap().max_entries;
    let (max, old, new) = carried.unwrap();
    assert_eq!((max, old, new.flatten().map(|f| u16::from_be(f.orig_port))), (capacity, Some(old_flow.1), Some(8080)), "the next start carries both flows");
    detached.unwrap();
    cleaned.unwrap();
}

/// A rollback moves each hook back, the last moved first; one that cannot
/// go back (here a cgroup link given a tc program as "the program it had":
/// the kernel refuses) is named, with what the kernel said, and the start's
/// error says so, keeping its kind. The others still go back.
#[test]
fn a_hook_that_cannot_be_moved_back_is_named_in_the_error() {
    use crate::datapath::objects::{SOCKOPT, SOCKOPS_PROG, SOCKOPT_GET, TC_INGRESS};
    use crate::datapath::{load_object, settings_of, with_stuck_hooks, Created, Moved};
    use crate::libbpf::{self, link_prog_id, obj_get};
    use std::os::fd::AsRawFd;
    let (_fs, _cg, pins, config, _defs) = installed_with_definitions();
    let link = |name| obj_get(&pins.link(name)).unwrap();
    let runs = |name| link_prog_id(&link(name)).unwrap();
    let before = (runs(SOCKOPS_PROG.program), runs(SOCKOPT_GET.program));
    // mw_sockopt_get moved to a newer program, as a start moves it.
    let newer = load_object(&SOCKOPT, &settings_of(&config), &pins, &Default::default(), &mut Created::default()).unwrap();
    let sockopt = link(SOCKOPT_GET.program);
    let sockopt_had = libbpf::prog_by_id(before.1).unwrap();
    libbpf::link_update(&sockopt, newer.program(SOCKOPT_GET.program).unwrap().fd(), "test").unwrap();
    let moved = runs(SOCKOPT_GET.program);
    let mut created = Created::default();
    created.moved.push(Moved::Link { hook: "mw_sockopt_get (test)".into(), link: sockopt, old: sockopt_had });
    created.moved.push(Moved::Link { hook: "mw_sockops (test)".into(), link: link(SOCKOPS_PROG.program), old: pins.open_prog(TC_INGRESS.program).unwrap() });
    let stuck = created.roll_back();
    let after = (runs(SOCKOPS_PROG.program), runs(SOCKOPT_GET.program));
    let newer_id = libbpf::prog_id(newer.program(SOCKOPT_GET.program).unwrap().fd().as_raw_fd()).unwrap();
    drop(newer);
    let cleaned = cleanup(pins.root());

    assert_eq!(moved, newer_id, "mw_sockopt_get had moved");
    assert_eq!(after, before, "mw_sockops kept its program, mw_sockopt_get went back to its own");
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert!(stuck[0].starts_with("mw_sockops (test): replacing the program of link mw_sockops (test): "), "{stuck:?}");
    let e = with_stuck_hooks(Error::Inconsistent("it failed".into()), &stuck);
    assert!(matches!(e, Error::Inconsistent(_)), "{e:?}");
    assert!(e.message().starts_with("it failed; and rolling back, 1 hook(s) could not be moved back to the program they had, so they still run this start's"), "{e}");
    assert!(e.message().contains(&stuck[0]) && e.message().contains("`meshwire-loader cleanup`"), "{e}");
    assert_eq!(with_stuck_hooks(Error::Inconsistent("it failed".into()), &[]).message(), "it failed");
    cleaned.unwrap();
}

/// Acceleration turned on by a start that then fails: the socket maps had
/// no sk_msg verdict before (the datapath ran without acceleration), so the
/// rollback detaches the one the start attached, from both maps.
#[test]
fn a_failed_start_detaches_the_sk_msg_verdict_it_attached_where_there_was_none() {
    use crate::datapath::pins::{MAP_SOCK_HASH, MAP_SOCK_HASH6};
    use crate::datapath::{attach_sk_msg, load_object, objects, settings_of, Created};
    let (_fs, _cg, pins, config, _defs) = installed_with_definitions();
    let verdicts = || [MAP_SOCK_HASH, MAP_SOCK_HASH6].map(|m| crate::libbpf::prog_query(&pins.open_map(m).unwrap(), libbpf_sys::BPF_SK_MSG_VERDICT).unwrap());
    let before = verdicts();
    let mut created = Created::default();
    let skmsg = load_object(&objects::SKMSG, &settings_of(&config), &pins, &Default::default(), &mut Created::default()).unwrap();
    attach_sk_msg(&skmsg, &pins, &mut created.moved).unwrap();
    let attached = verdicts();
    let stuck = created.roll_back();
    let after = verdicts();
    let id = crate::libbpf::prog_id(skmsg.program(objects::SKMSG_REDIRECT.program).unwrap().fd()).unwrap();
    drop(skmsg);
    let cleaned = cleanup(pins.root());

    assert_eq!(before, [Vec::<u32>::new(), Vec::new()], "no verdict before");
    assert_eq!(attached, [vec![id], vec![id]]);
    assert!(stuck.is_empty(), "{stuck:?}");
    assert_eq!(after, before, "the verdict the start attached is detached again");
    cleaned.unwrap();
}

/// A start that upgrades mw_flow4 in place while a pod is meshed with clsact
/// filters (the default attach mode): the start does not move those (the
/// daemon's adoption does, after it committed), so a connection into the
/// pod in between is steered by the old ingress, which writes its flow
/// into the old mw_flow4, no longer pinned, its entries already carried
/// over. Once adoption has moved the pod's filters (here `attach_pod`
/// again, as adoption does) and the start's catch-up ran, the flow is in
/// the pinned mw_flow4 and the sidecar's reply reaches the peer from the
/// port it dialled, through the new egress. Before, the flow was lost when
/// the filters moved: not in the pinned map, the reply not rewritten.
#[test]
fn a_flow_a_pods_old_clsact_filter_writes_before_adoption_is_carried_over() {
    use crate::datapath::layout::{Flow4, Flow4Key};
    use crate::datapath::pins::MAP_FLOW4;
    use crate::datapath::tc::{self, TcAttach};
    let (_fs, _cg, pins, config) = installed_as(&[(MAP_FLOW4, 1024)]);
    let earlier = pins.open_map(MAP_FLOW4).unwrap();
    let (pair, cookie, sidecar) = meshed_pod(&pins, &config, TcAttach::Clsact);

    let started = crate::datapath::install_before_adoption(&config);
    let upgraded = pins.open_map(MAP_FLOW4).map(|m| m.id() != earlier.id());
    // Committed, not adopted yet: the pod's old ingress steers this one.
    let connected = connect_to_pod(&pair, &sidecar);
    let in_old_map = connected.as_ref().ok().map(|(_, _, key)| earlier.lookup::<Flow4Key, Flow4>(key).unwrap().is_some());
    // Adoption moves the pod's filters to the new programs; then the catch-up.
    let adopted = tc::attach_pod(&pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact);
    let caught_up = started.map(crate::datapath::upgrade::CatchUp::run);
    let pinned = connected.as_ref().ok().map(|(_, _, key)| pins.open_map(MAP_FLOW4).unwrap().lookup::<Flow4Key, Flow4>(key).unwrap());
    // The sidecar answers: the new egress rewrites the reply from the flow.
    let reply = connected.map(|(client, server, _)| pong(client, server));
    let detached = tc::detach_pod(&pins, cookie, Some((&pair.pod_path(), "eth0")));
    let cleaned = cleanup(pins.root());

    caught_up.unwrap();
    assert!(upgraded.unwrap(), "the start recreated mw_flow4");
    adopted.unwrap();
    assert_eq!(in_old_map, Some(true), "the old ingress wrote the flow into the old mw_flow4");
    assert_eq!(pinned.expect("a connection to the pod").map(|f| u16::from_be(f.orig_port)), Some(8080), "the flow is in the pinned mw_flow4 after adoption");
    assert_eq!(reply.unwrap().expect("the sidecar's reply, through the new egress"), *b"pong");
    detached.unwrap();
    cleaned.unwrap();
}

/// The index of the counter `name` in mw_stats (enum mw_stat).
fn stat(name: &str) -> u32 {
    crate::datapath::layout::STAT_NAMES.iter().position(|n| *n == name).unwrap() as u32
}

/// mw_stats's capacity in this version (MW_STAT_MAX).
fn stats_capacity() -> u32 {
    crate::datapath::upgrade::definitions(crate::datapath::objects::WITH_PROGRAMS).unwrap().into_iter().find(|d| d.name == crate::datapath::pins::MAP_STATS).unwrap().max_entries
}

/// Adds `per_cpu(cpu)` to the counter `slot` of `map` on each CPU, as
/// programs counting on those CPUs would.
fn count_on_each_cpu(map: &crate::libbpf::MapFd, slot: u32, per_cpu: impl Fn(u64) -> u64) {
    let ncpu = unsafe { libbpf_sys::libbpf_num_possible_cpus() } as u64;
    let key = slot.to_ne_bytes();
    let entries = map.raw_entries().unwrap();
    let now = &entries.iter().find(|(k, _)| *k == key).unwrap().1;
    let now: Vec<u64> = now.chunks_exact(8).map(|w| u64::from_ne_bytes(w.try_into().unwrap())).collect();
    let value: Vec<u8> = (0..ncpu).flat_map(|c| (now[c as usize] + per_cpu(c)).to_ne_bytes()).collect();
    map.update_raw(&key, &value).unwrap();
}

/// A start killed (kill -9) midway through moving hooks, run here step by
/// step: the maps whose capacity changed set aside, this version's objects
/// loaded (their maps pinned), the entries carried over, the configured
/// exclusions written and sockops' cgroup link moved to its program; then
/// dropped, nothing rolled back, nothing finished. Returns that link's
/// program and the id of the program it now runs.
fn start_killed_while_moving_hooks(pins: &Pins, config: &Config) -> (&'static str, u32) {
    use crate::datapath::objects::{self, Hook, PROGRAMS};
    use crate::datapath::upgrade::Upgrade;
    use crate::datapath::{load_object, settings_of, sync_node_exclusions, Created};
    use crate::libbpf::{link_prog_id, link_update, obj_get};
    let killed = Upgrade::prepare(pins, objects::WITH_PROGRAMS).unwrap();
    let mut created = Created::default();
    let loaded: Vec<_> = objects::CORE.iter().map(|spec| load_object(spec, &settings_of(config), pins, &Default::default(), &mut created).unwrap()).collect();
    killed.carry_over().unwrap();
    sync_node_exclusions(config, pins).unwrap();
    let moved = PROGRAMS.iter().find(|p| p.hook == Hook::Cgroup && p.object.name == objects::SOCK.name).unwrap();
    let prog = loaded.iter().find(|o| o.name() == moved.object.name).unwrap().program(moved.program).unwrap();
    let link = obj_get(&pins.link(moved.program)).unwrap();
    link_update(&link, prog.fd(), moved.program).unwrap();
    let runs = link_prog_id(&link).unwrap();
    drop((killed, created, loaded));
    (moved.program, runs)
}

/// The mw_flow4 key of a flow from 10.0.0.1:`port` to 10.0.0.2.
fn flow_key(port: u16) -> crate::datapath::layout::Flow4Key {
    crate::datapath::layout::Flow4Key { remote_ip4: 0x0a00_0001, local_ip4: 0x0a00_0002, remote_port: port, pad: 0 }
}

/// A flow whose original destination port is `port`.
fn flow_to(port: u16) -> crate::datapath::layout::Flow4 {
    crate::datapath::layout::Flow4 { orig_port: port.to_be(), flags: 0, pad: 0 }
}

/// The original destination ports of the flows `ports` (flow_key) in the
/// pinned mw_flow4, with its capacity.
fn pinned_flows<const N: usize>(pins: &Pins, ports: [u16; N]) -> Result<(u32, [Option<u16>; N]), Error> {
    use crate::datapath::layout::{Flow4, Flow4Key};
    let m = pins.open_map(crate::datapath::pins::MAP_FLOW4)?;
    Ok((m.info()?.max_entries, ports.map(|p| m.lookup::<Flow4Key, Flow4>(&flow_key(p)).unwrap().map(|f| u16::from_be(f.orig_port)))))
}

/// A start that dies (kill -9) midway through moving hooks, after it loaded
/// and carried the earlier version's maps over (mw_flow4, mw_stats and
/// mw_excl_ports recreated with another capacity): the new programs on the
/// hooks it moved write this version's maps, the old ones on the others
/// the earlier maps, set aside. The start that resumes keeps the new
/// map's value of a flow both maps hold (the new programs'), carries the
/// flows only the old map has, keeps those only the new one has; adds to
/// each counter what the old programs counted since the copy (the new ones'
/// counts kept); and leaves the node-wide exclusions the configured ones
/// (the loader's own entries: one the dead start removed is not brought
/// back). Before, the old map's entries were copied over the new ones: the
/// flow's older value won and the new programs' counts were lost.
#[test]
fn a_start_resuming_one_killed_while_moving_hooks_keeps_what_the_new_programs_wrote() {
    use crate::datapath::layout::{Flow4, Flow4Key, PortKey, DIR_OUT};
    use crate::datapath::pins::{MAP_EXCL_PORTS, MAP_FLOW4, MAP_STATS};
    let (_fs, cg, pins, config) = installed_as(&[(MAP_FLOW4, 1024), (MAP_STATS, stats_capacity() - 1), (MAP_EXCL_PORTS, 64)]);
    let (flow, dst) = (flow_key, flow_to);
    let (both, only_old, only_new) = (flow(4000), flow(4001), flow(4002));
    let slot = stat("MW_STAT_TC_REDIRECTED");
    let earlier = (pins.open_map(MAP_FLOW4).unwrap(), pins.open_map(MAP_STATS).unwrap());
    earlier.0.update(&both, &dst(8080)).unwrap();
    count_on_each_cpu(&earlier.1, slot, |c| 100 * (c + 1));
    let excluded = PortKey { netns_cookie: 0, port: 9999, dir: DIR_OUT, pad: [0; 5] };
    pins.open_map(MAP_EXCL_PORTS).unwrap().update(&excluded, &1u8).unwrap();

    start_killed_while_moving_hooks(&pins, &config);
    let status_killed = crate::views::inspect::status_view(&pins, "loader").0;
    // The new programs write this version's maps, the old ones the earlier.
    let new = (pins.open_map(MAP_FLOW4).unwrap(), pins.open_map(MAP_STATS).unwrap());
    new.0.update(&both, &dst(9090)).unwrap();
    new.0.update(&only_new, &dst(9091)).unwrap();
    count_on_each_cpu(&new.1, slot, |_| 10);
    earlier.0.update(&only_old, &dst(8081)).unwrap();
    count_on_each_cpu(&earlier.1, slot, |_| 1);

    let resumed = install(&config);
    let status_resumed = crate::views::inspect::status_view(&pins, "loader").0;
    let flows = pins.open_map(MAP_FLOW4).map(|m| [both, only_old, only_new].map(|k| m.lookup::<Flow4Key, Flow4>(&k).unwrap().map(|f| u16::from_be(f.orig_port))));
    let counted = pins.open_map(MAP_STATS).map(|m| m.lookup_percpu_sum(&slot).unwrap());
    let exclusion = pins.open_map(MAP_EXCL_PORTS).map(|m| m.lookup::<PortKey, u8>(&excluded).unwrap());
    let leftover = pin_state(&pins).1;
    let cleaned = cleanup(pins.root());
    drop(cg);

    resumed.unwrap();
    let upgrade_lines = |text: &str| text.lines().filter(|l| l.starts_with("upgrade: ")).map(str::to_string).collect::<Vec<_>>();
    let aside = upgrade_lines(&status_killed);
    assert!(
        aside.len() == 1 && [MAP_FLOW4, MAP_STATS, MAP_EXCL_PORTS].iter().all(|m| aside[0].contains(m)) && aside[0].contains("the next start resumes it"),
        "status names what the killed start set aside: {status_killed}"
    );
    assert_eq!(upgrade_lines(&status_resumed), Vec::<String>::new(), "and nothing once resumed: {status_resumed}");
    assert_eq!(flows.unwrap(), [Some(9090), Some(8081), Some(9091)], "both: the new programs' value; each map's own flows carried");
    let ncpu = unsafe { libbpf_sys::libbpf_num_possible_cpus() } as u64;
    assert_eq!(counted.unwrap(), (1..=ncpu).map(|c| 100 * c + 10 + 1).sum::<u64>(), "carried, plus the new programs' and the old programs' counts since");
    assert_eq!(exclusion.unwrap(), None, "an exclusion the configuration no longer has is not brought back");
    assert!(!leftover, "nothing left under upgrade/");
    cleaned.unwrap();
}

/// Counters the pods' old clsact programs add to between a start that
/// recreates mw_stats (a counter added) and adoption: a connection into a
/// meshed pod in that window is counted by the old ingress
/// (MW_STAT_TC_REDIRECTED) in the old mw_stats, after its values were
/// carried over. The catch-up adds what the old map counted since the copy:
/// the pinned counter is the old one's, none lost, none counted twice.
/// Before, that count was lost (the pinned counter stayed at the copy).
#[test]
fn counts_pods_old_clsact_programs_make_before_adoption_are_caught_up() {
    use crate::datapath::pins::MAP_STATS;
    use crate::datapath::tc::{self, TcAttach};
    let (_fs, _cg, pins, config) = installed_as(&[(MAP_STATS, stats_capacity() - 1)]);
    let slot = stat("MW_STAT_TC_REDIRECTED");
    let earlier = pins.open_map(MAP_STATS).unwrap();
    count_on_each_cpu(&earlier, slot, |c| 5 * (c + 1));
    let (pair, cookie, sidecar) = meshed_pod(&pins, &config, TcAttach::Clsact);
    let carried = earlier.lookup_percpu_sum(&slot).unwrap();

    let started = crate::datapath::install_before_adoption(&config);
    let upgraded = pins.open_map(MAP_STATS).map(|m| m.id() != earlier.id());
    // Committed, not adopted yet: the pod's old ingress counts this one.
    let connected = connect_to_pod(&pair, &sidecar);
    let old_counted = earlier.lookup_percpu_sum(&slot).unwrap();
    let adopted = tc::attach_pod(&pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact);
    let caught_up = started.map(crate::datapath::upgrade::CatchUp::run);
    let pinned = pins.open_map(MAP_STATS).map(|m| m.lookup_percpu_sum(&slot).unwrap());
    drop(connected);
    let detached = tc::detach_pod(&pins, cookie, Some((&pair.pod_path(), "eth0")));
    let cleaned = cleanup(pins.root());

    caught_up.unwrap();
    assert!(upgraded.unwrap(), "the start recreated mw_stats");
    adopted.unwrap();
    assert!(old_counted > carried, "the old ingress counted the connection in the old mw_stats ({carried} -> {old_counted})");
    assert_eq!(pinned.unwrap(), old_counted, "the pinned counter has every count of the old one");
    detached.unwrap();
    cleaned.unwrap();
}

/// A start that finds maps unpinned while the others are pinned searches
/// the attached programs for them with its objects' map definitions. When
/// those objects cannot be opened (here the first open fails, as on a
/// machine short of memory), the start fails at once, naming the maps and
/// what failed, and changes nothing: the live map is not replaced by a new,
/// empty one, and the next start pins it again with its entries. Before,
/// the search silently found nothing, and when the objects opened again
/// for the upgrade's plan the start pinned a new, empty map: the live
/// map's entries were lost.
#[test]
fn a_start_whose_objects_cannot_be_opened_to_find_live_maps_fails_and_changes_nothing() {
    use crate::datapath::objects::failing_opens;
    use crate::datapath::pins::MAP_ORIG_TUPLE4;
    let (_fs, _cg, pins, config, _defs) = installed_with_definitions();
    let (id, key, value) = fill_and_unpin(&pins, MAP_ORIG_TUPLE4);
    let before = pin_state(&pins);

    let failed = failing_opens::with(1, || install(&config));
    let after = pin_state(&pins);
    let restarted = install(&config);
    let repinned = pins.open_map(MAP_ORIG_TUPLE4).map(|m| (m.id(), m.lookup_raw(&key).unwrap()));
    let cleaned = cleanup(pins.root());

    let e = failed.expect_err("the start cannot find the live map: it fails");
    assert_eq!(e.errno(), Some(libc::ENOMEM), "{e:?}");
    let m = e.message();
    assert!(m.starts_with(&format!("map(s) {MAP_ORIG_TUPLE4} not pinned under {} though the others are", pins.maps_dir().display())), "{m}");
    assert!(m.contains("could not be opened (opening BPF object ") && m.contains("Nothing was changed"), "{m}");
    assert_eq!(after, before, "the failed start changed the pins");
    restarted.unwrap();
    assert_eq!(repinned.unwrap(), (id, Some(value)), "the next start pins the live map again, with its entry");
    cleaned.unwrap();
}

/// A loader that stops (killed, or its adoption failed) between a start
/// that recreated mw_flow4 and mw_stats and the end of adoption: a
/// connection into a clsact pod in that window has its flow written and
/// counted by the pod's old ingress into the old maps, and the catch-up
/// never runs. The old maps stay pinned under catch-up/ (the old mw_stats
/// with the values carried from it), so the next start (the same version:
/// nothing to upgrade) catches up from them after its own adoption: the flow
/// is in the pinned mw_flow4, the sidecar's reply comes back through the
/// new egress, the counter has the old ingress's count, and catch-up/ is
/// gone. Before, the old maps were held only by the dead loader's
/// descriptors: the flow and the count were lost.
#[test]
fn what_pods_old_clsact_programs_write_before_a_loader_dies_in_adoption_is_caught_up_by_the_next_start() {
    use crate::datapath::layout::{Flow4, Flow4Key};
    use crate::datapath::pins::{MAP_FLOW4, MAP_STATS};
    use crate::datapath::tc::{self, TcAttach};
    use crate::datapath::upgrade::CatchUp;
    let (_fs, _cg, pins, config) = installed_as(&[(MAP_FLOW4, 1024), (MAP_STATS, stats_capacity() - 1)]);
    let slot = stat("MW_STAT_TC_REDIRECTED");
    let earlier = (pins.open_map(MAP_FLOW4).unwrap(), pins.open_map(MAP_STATS).unwrap());
    let (pair, cookie, sidecar) = meshed_pod(&pins, &config, TcAttach::Clsact);

    let started = crate::datapath::install_before_adoption(&config);
    let connected = connect_to_pod(&pair, &sidecar);
    let in_old_map = connected.as_ref().ok().map(|(_, _, key)| earlier.0.lookup::<Flow4Key, Flow4>(key).unwrap().is_some());
    let old_counted = earlier.1.lookup_percpu_sum(&slot).unwrap();
    let staged = files(&pins.catch_up_dir()).len();
    // The loader dies before its adoption is done: no catch-up.
    let died = started.map(drop);
    drop(earlier);
    let status_died = crate::views::inspect::status_view(&pins, "loader").0;

    let restarted = crate::datapath::install_before_adoption(&config);
    let adopted = tc::attach_pod(&pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact);
    let caught_up = restarted.map(CatchUp::run);
    let pinned = connected.as_ref().ok().map(|(_, _, key)| pins.open_map(MAP_FLOW4).unwrap().lookup::<Flow4Key, Flow4>(key).unwrap());
    let counted = pins.open_map(MAP_STATS).map(|m| m.lookup_percpu_sum(&slot).unwrap());
    let left = pins.catch_up_dir().exists();
    let reply = connected.map(|(client, server, _)| pong(client, server));
    let detached = tc::detach_pod(&pins, cookie, Some((&pair.pod_path(), "eth0")));
    let cleaned = cleanup(pins.root());

    died.unwrap();
    caught_up.unwrap();
    adopted.unwrap();
    assert_eq!(in_old_map, Some(true), "the old ingress wrote the flow into the old mw_flow4");
    assert_eq!(pinned.expect("a connection to the pod").map(|f| u16::from_be(f.orig_port)), Some(8080), "the next start caught the flow up");
    assert_eq!(counted.unwrap(), old_counted, "and the old ingress's count");
    assert_eq!(staged, 3, "the old mw_flow4, the old mw_stats and its carried values wait under catch-up/");
    let waiting: Vec<&str> = status_died.lines().filter(|l| l.starts_with("upgrade: ")).collect();
    assert!(
        waiting.len() == 1 && waiting[0].contains(&format!("earlier {MAP_FLOW4}, {MAP_STATS} wait under")) && waiting[0].contains("catch-up"),
        "status names the maps waiting for the catch-up: {status_died}"
    );
    assert!(!left, "catch-up/ is gone once it ran");
    assert_eq!(reply.unwrap().expect("the sidecar's reply, through the new egress"), *b"pong");
    detached.unwrap();
    cleaned.unwrap();
}

/// A start that resumes one killed while moving hooks (mw_flow4 and
/// mw_stats recreated with another capacity) and fails itself after it
/// moved hooks (mw_tc_egress's pin is in the way, a directory): each hook
/// goes back to the program it had, the dead start's on the link it moved,
/// and the pins are as the dead start left them: this version's mw_flow4
/// and mw_stats pinned, which that program writes, the earlier ones still
/// set aside under upgrade/, mw_stats's carried values with them. What
/// both sides write after the failure is kept: the next start resumes
/// again, with every flow of both maps and every count, none twice (the
/// failed start's copy added the old map's counts since the dead start's,
/// and moved the carried values on). Before, the rollback put the earlier
/// maps back in their place: the maps the dead start's programs write were
/// unpinned, their flows and counts lost at the next start.
#[test]
fn a_failed_start_resuming_a_killed_one_leaves_what_the_killed_one_left() {
    use crate::datapath::objects::TC_EGRESS;
    use crate::datapath::pins::{MAP_FLOW4, MAP_STATS};
    use crate::libbpf::{link_prog_id, obj_get, MapFd};
    let (_fs, cg, pins, config) = installed_as(&[(MAP_FLOW4, 1024), (MAP_STATS, stats_capacity() - 1)]);
    let slot = stat("MW_STAT_TC_REDIRECTED");
    let earlier = (pins.open_map(MAP_FLOW4).unwrap(), pins.open_map(MAP_STATS).unwrap());
    earlier.0.update(&flow_key(4000), &flow_to(8080)).unwrap();
    count_on_each_cpu(&earlier.1, slot, |c| 100 * (c + 1));
    let (hook, dead_prog) = start_killed_while_moving_hooks(&pins, &config);
    let new = (pins.open_map(MAP_FLOW4).unwrap(), pins.open_map(MAP_STATS).unwrap());
    new.0.update(&flow_key(4001), &flow_to(9091)).unwrap();
    count_on_each_cpu(&new.1, slot, |_| 10);
    count_on_each_cpu(&earlier.1, slot, |_| 1);
    let egress_pin = pins.prog(TC_EGRESS.program);
    std::fs::remove_file(&egress_pin).unwrap();
    std::fs::create_dir(&egress_pin).unwrap();
    let before = pin_state(&pins);

    let failed = install(&config);
    let after = pin_state(&pins);
    let runs = link_prog_id(&obj_get(&pins.link(hook)).unwrap()).unwrap();
    let id = |p: PathBuf| MapFd::open_pinned(&p).map(|m| m.id()).ok();
    let pinned = (id(pins.map(MAP_FLOW4)), id(pins.map(MAP_STATS)));
    let aside = (id(pins.map_set_aside(MAP_FLOW4)), id(pins.map_set_aside(MAP_STATS)));
    // After the failure: the dead start's program writes this version's
    // maps, the old programs on the other hooks the earlier ones.
    new.0.update(&flow_key(4002), &flow_to(9092)).unwrap();
    count_on_each_cpu(&new.1, slot, |_| 20);
    earlier.0.update(&flow_key(4003), &flow_to(8083)).unwrap();
    count_on_each_cpu(&earlier.1, slot, |_| 2);
    std::fs::remove_dir(&egress_pin).unwrap();
    let restarted = install(&config);
    let flows = pinned_flows(&pins, [4000, 4001, 4002, 4003]);
    let counted = pins.open_map(MAP_STATS).map(|m| m.lookup_percpu_sum(&slot).unwrap());
    let leftover = pin_state(&pins).1;
    let cleaned = cleanup(pins.root());
    drop(cg);

    let e = failed.unwrap_err();
    assert!(e.message().contains(TC_EGRESS.program) && !e.message().contains("could not be moved back"), "{e}");
    assert_eq!(after, before, "the failed start left the pins as the killed one left them");
    assert_eq!(runs, dead_prog, "the link the killed start moved runs its program again");
    assert_eq!(pinned, (Some(new.0.id()), Some(new.1.id())), "this version's maps stay pinned, where that program writes");
    assert_eq!(aside, (Some(earlier.0.id()), Some(earlier.1.id())), "the earlier maps stay set aside");
    restarted.unwrap();
    assert_eq!(flows.unwrap().1, [Some(8080), Some(9091), Some(9092), Some(8083)], "every flow of both maps");
    let ncpu = unsafe { libbpf_sys::libbpf_num_possible_cpus() } as u64;
    assert_eq!(counted.unwrap(), (1..=ncpu).map(|c| 100 * c + 10 + 1 + 20 + 2).sum::<u64>(), "every count of both maps, none twice");
    assert!(!leftover, "nothing left under upgrade/");
    cleaned.unwrap();
}

/// A start killed while moving hooks as a version whose mw_flow4 has
/// another capacity (2048) than the earlier one's (1024), then a start of
/// a third version (this one's capacity): the map pinned is the dead
/// start's, which its program on the link it moved writes, and the earlier
/// one is set aside; this version can take over neither without losing
/// the other's entries. It is refused before anything moves, naming the map,
/// both pins and shapes and what to do, and the pins are as the dead start
/// left them. The version that died then resumes (both maps' flows kept),
/// and this version upgrades from it. Before, libbpf refused to reuse the
/// pinned map and the rollback put the earlier one back in its place: the
/// dead start's map was unpinned, its flows lost.
#[test]
fn a_third_version_after_a_start_killed_while_moving_hooks_is_refused_and_both_maps_kept() {
    use crate::datapath::objects::other_capacities;
    use crate::datapath::pins::MAP_FLOW4;
    use crate::libbpf::{link_prog_id, obj_get};
    let (_fs, cg, pins, config) = installed_as(&[(MAP_FLOW4, 1024)]);
    pins.open_map(MAP_FLOW4).unwrap().update(&flow_key(4000), &flow_to(8080)).unwrap();
    let died = [(MAP_FLOW4, 2048)];
    let (hook, dead_prog) = other_capacities::with(&died, || start_killed_while_moving_hooks(&pins, &config));
    let dead_map = pins.open_map(MAP_FLOW4).unwrap();
    dead_map.update(&flow_key(4001), &flow_to(9091)).unwrap();
    let before = pin_state(&pins);

    let refused = install(&config);
    let after = pin_state(&pins);
    let runs = link_prog_id(&obj_get(&pins.link(hook)).unwrap()).unwrap();
    let pinned = pins.open_map(MAP_FLOW4).map(|m| m.id());
    let resumed = other_capacities::with(&died, || install(&config));
    let as_died = pinned_flows(&pins, [4000, 4001]);
    let upgraded = install(&config);
    let flows = pinned_flows(&pins, [4000, 4001]);
    let cleaned = cleanup(pins.root());
    drop(cg);

    let e = refused.expect_err("a third version over a dead start's map is refused");
    assert!(matches!(e, Error::Inconsistent(_)), "{e:?}");
    let m = e.message();
    for part in [
        format!("map {MAP_FLOW4}: a start of another version died"),
        format!("{} (type", pins.map(MAP_FLOW4).display()),
        format!("{} (type", pins.map_set_aside(MAP_FLOW4).display()),
        "capacity 2048".to_string(),
        "capacity 1024".to_string(),
        "nothing was changed".to_string(),
        "Start the version that died again".to_string(),
        "`meshwire-loader cleanup`".to_string(),
    ] {
        assert!(m.contains(&part), "{part:?} not in: {m}");
    }
    assert_eq!(after, before, "the refused start left the pins as the killed one left them");
    assert_eq!(runs, dead_prog, "the link the killed start moved runs its program");
    assert_eq!(pinned.unwrap(), dead_map.id(), "the killed start's map stays pinned");
    resumed.unwrap();
    assert_eq!(as_died.unwrap(), (2048, [Some(8080), Some(9091)]), "the version that died resumes with both maps' flows");
    upgraded.unwrap();
    let (capacity, kept) = flows.unwrap();
    assert_ne!(capacity, 2048);
    assert_eq!(kept, [Some(8080), Some(9091)], "then this version upgrades from it, with both");
    cleaned.unwrap();
}
