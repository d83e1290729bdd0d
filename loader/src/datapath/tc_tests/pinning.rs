//! Pinning the tc programs, and attaching or detaching a pod with nothing there.

use std::os::fd::AsRawFd;
use std::path::Path;

use super::super::*;
use super::harness::{load_tc, test_settings, Tc};
use crate::datapath::objects;
use crate::libbpf;

#[test]
fn a_program_pin_is_replaced_in_place() {
    let tc = Tc::new();
    let first = tc.obj.program(objects::TC_INGRESS.program).unwrap().fd();
    assert!(pin_program(&tc.pins, objects::TC_INGRESS.program, first, &mut Vec::new()).unwrap(), "a new pin");
    let pinned_id = |pins: &Pins| libbpf::prog_id(libbpf::obj_get(&pins.prog(objects::TC_INGRESS.program)).unwrap().as_raw_fd()).unwrap();
    assert_eq!(pinned_id(&tc.pins), libbpf::prog_id(first).unwrap());

    // A restarted loader's program takes the pin's place.
    let again = load_tc(&tc.pins, &test_settings(false));
    let second = again.program(objects::TC_INGRESS.program).unwrap().fd();
    assert!(!pin_program(&tc.pins, objects::TC_INGRESS.program, second, &mut Vec::new()).unwrap(), "the pin existed");
    assert_eq!(pinned_id(&tc.pins), libbpf::prog_id(second).unwrap());
    let names: Vec<_> = std::fs::read_dir(tc.pins.progs_dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from(objects::TC_INGRESS.program)], "no temporary pin left");
    assert!(pin_program(&tc.pins, objects::SOCKOPS_PROG.program, second, &mut Vec::new()).is_err());

    let removed = remove_all_pins(&tc.pins).unwrap();
    assert_eq!(removed, vec![tc.pins.prog(objects::TC_INGRESS.program)]);
}

#[test]
fn detaching_a_pod_that_has_nothing_is_fine() {
    let tc = Tc::new();
    detach_pod(&tc.pins, 12345, None).unwrap();
    detach_pod(&tc.pins, 12345, Some((Path::new("/run/netns/meshwire-no-such-ns"), "eth0"))).unwrap();
    detach_pod(&Pins::new(&tc.pins.root().join("absent")), 1, None).unwrap();
}

/// The tc programs' pins missing while the maps are pinned (removed by
/// hand): PinnedError::Missing naming the first program, the progs
/// directory and what to do, Internal; with nothing pinned at all,
/// NoDatapath (NotFound).
#[test]
fn attaching_without_pinned_programs_says_so() {
    use crate::datapath::pins::{Pinned, PinnedError};
    let tc = Tc::new();
    assert!(tc.pins.any_map_pinned() && !tc.pins.prog(TC_PROGRAMS[0].program).exists());
    let e = attach_pod(&tc.pins, 1, Path::new("/proc/self/ns/net"), "lo", TcAttach::Auto).unwrap_err();
    let missing = PinnedError::Missing { pin: Pinned::TcProgram(TC_PROGRAMS[0].program), pin_dir: tc.pins.root().to_path_buf() };
    assert_eq!(e, Error::from(missing.clone()));
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    let m = missing.to_string();
    assert!(m.starts_with(&format!("tc program {} is not pinned under {}, though the datapath's maps are", TC_PROGRAMS[0].program, tc.pins.progs_dir().display())), "{m}");
    assert!(m.contains(&format!("Restart `meshwire-loader run` with this pin directory: it pins {} again", TC_PROGRAMS[0].program)), "{m}");

    let nothing = Pins::new(&tc.pins.root().join("absent"));
    let e = attach_pod(&nothing, 1, Path::new("/proc/self/ns/net"), "lo", TcAttach::Auto).unwrap_err();
    assert_eq!(e, Error::from(PinnedError::NoDatapath { pin_dir: nothing.root().to_path_buf() }));
    assert!(matches!(&e, Error::NotFound(m) if m.starts_with("no meshwire datapath is pinned under ")), "{e:?}");
    let e = attach_pod(&tc.pins, 1, Path::new("/proc/self/ns/net"), "a/b", TcAttach::Auto).unwrap_err().to_string();
    assert!(e.contains("not an interface name"), "{e}");
}
