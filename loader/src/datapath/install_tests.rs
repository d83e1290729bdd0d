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
