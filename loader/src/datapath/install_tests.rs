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
