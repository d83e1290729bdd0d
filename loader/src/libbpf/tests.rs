//! Tests of the safe libbpf wrapper against the real kernel (run as root).

use std::path::Path;

use libbpf_sys as sys;

use super::*;
use crate::datapath::layout::{PortKey, Settings};
use crate::datapath::objects;
use crate::datapath::pins;
use crate::testutil::{PrivateBpffs, TempCgroup};

fn loaded_sock(pin_root: &Path) -> Object {
    let mut obj = objects::SOCK.open(Some(pin_root)).expect("open");
    let s = Settings { sidecar_uid: 1500, outbound_port: 15001, inbound_port: 15003, debug: 0, accel: 0, trace: 0, ipv6: crate::datapath::layout::IPV6_REFUSE, dns_port: 15053, dns_servers: 0, out_sources: 1, accel_short: 1, pad: [0; 3] };
    obj.set_rodata(objects::SETTINGS_VAR, s.as_bytes()).expect("rodata");
    obj.load().expect("load meshwire_sock");
    obj
}

#[test]
fn load_pins_maps_by_name_under_the_pin_root() {
    let fs = PrivateBpffs::new();
    let obj = loaded_sock(fs.path());
    let mut names = obj.pinned_map_names();
    names.sort();
    assert!(names.contains(&pins::MAP_PODS.to_string()), "{names:?}");
    for n in &names {
        assert!(fs.path().join(n).exists(), "{n} pinned");
    }
}

#[test]
fn a_second_object_reuses_the_pinned_maps() {
    let fs = PrivateBpffs::new();
    let _a = loaded_sock(fs.path());
    let pods = MapFd::open_pinned(&fs.path().join(pins::MAP_PODS)).unwrap();
    pods.update(&42u64, &crate::datapath::layout::Pod { flags: 1 }).unwrap();
    // Loading again must reuse (not replace) the pinned map: the entry stays.
    let _b = loaded_sock(fs.path());
    let again = MapFd::open_pinned(&fs.path().join(pins::MAP_PODS)).unwrap();
    assert_eq!(again.lookup::<u64, crate::datapath::layout::Pod>(&42).unwrap(), Some(crate::datapath::layout::Pod { flags: 1 }));
}

#[test]
fn map_update_lookup_delete_and_keys() {
    let fs = PrivateBpffs::new();
    let _obj = loaded_sock(fs.path());
    let ports = MapFd::open_pinned(&fs.path().join(pins::MAP_EXCL_PORTS)).unwrap();
    let k1 = PortKey { netns_cookie: 0, port: 22, dir: 1, pad: [0; 5] };
    let k2 = PortKey { netns_cookie: 9, port: 443, dir: 1, pad: [0; 5] };
    assert_eq!(ports.lookup::<PortKey, u8>(&k1).unwrap(), None);
    ports.update(&k1, &1u8).unwrap();
    ports.update(&k2, &1u8).unwrap();
    let mut keys = ports.keys::<PortKey>().unwrap();
    keys.sort_by_key(|k| k.port);
    assert_eq!(keys, vec![k1, k2]);
    assert!(ports.delete(&k1).unwrap());
    assert!(!ports.delete(&k1).unwrap(), "second delete reports absence");
    assert_eq!(ports.raw_keys().unwrap().len(), 1);
}

#[test]
fn typed_access_with_the_wrong_layout_is_refused() {
    let fs = PrivateBpffs::new();
    let _obj = loaded_sock(fs.path());
    let pods = MapFd::open_pinned(&fs.path().join(pins::MAP_PODS)).unwrap();
    let err = pods.update(&1u32, &1u8).unwrap_err();
    assert!(err.to_string().contains("do not match"), "{err}");
}

#[test]
fn percpu_counters_sum_over_cpus() {
    let fs = PrivateBpffs::new();
    let _obj = loaded_sock(fs.path());
    let stats = MapFd::open_pinned(&fs.path().join(pins::MAP_STATS)).unwrap();
    assert_eq!(stats.lookup_percpu_sum(&0u32).unwrap(), 0);
    assert_eq!(stats.info().unwrap().max_entries as usize, crate::datapath::layout::STAT_NAMES.len());
}

#[test]
fn rodata_of_unknown_variable_or_wrong_size_is_refused() {
    let mut obj = objects::SOCK.open(None).unwrap();
    assert!(obj.set_rodata("no_such_var", &[0u8; 4]).unwrap_err().to_string().contains("no such variable"));
    assert!(obj.set_rodata(objects::SETTINGS_VAR, &[0u8; 3]).unwrap_err().to_string().contains("size mismatch"));
}

#[test]
fn a_garbage_object_is_refused() {
    assert!(Object::open_mem("garbage", b"not an ELF file", None).is_err());
}

#[test]
fn cgroup_link_pins_keep_the_attachment_and_update_swaps_the_program() {
    let fs = PrivateBpffs::new();
    let cg = TempCgroup::new();
    let cgroup = crate::system::Cgroup::open(cg.path()).unwrap();
    let obj = loaded_sock(fs.path());
    let prog = obj.program(objects::SOCK4_CONNECT.program).unwrap();
    let pin = fs.path().join("link");
    let mut link = prog.attach_cgroup(&cgroup).unwrap();
    link.pin(&pin).unwrap();
    link.keep();

    // The pinned link still points at our cgroup after the Link is gone.
    let fd = obj_get(&pin).unwrap();
    assert_eq!(link_cgroup_id(&fd).unwrap(), Some(cgroup.id));
    // Swapping in a freshly loaded program keeps the attachment.
    let obj2 = loaded_sock(fs.path());
    link_update(&fd, obj2.program(objects::SOCK4_CONNECT.program).unwrap().fd(), "test").unwrap();
    assert_eq!(link_cgroup_id(&fd).unwrap(), Some(cgroup.id));
    // Unpinning and closing the last reference detaches: the cgroup can go.
    std::fs::remove_file(&pin).unwrap();
    drop(fd);
}

#[test]
fn a_dropped_unpinned_link_detaches() {
    let fs = PrivateBpffs::new();
    let cg = TempCgroup::new();
    let cgroup = crate::system::Cgroup::open(cg.path()).unwrap();
    let obj = loaded_sock(fs.path());
    let link = obj.program(objects::SOCK4_CONNECT.program).unwrap().attach_cgroup(&cgroup).unwrap();
    let id = {
        let mut info = sys::bpf_link_info::default();
        let mut len = std::mem::size_of::<sys::bpf_link_info>() as u32;
        assert_eq!(unsafe { sys::bpf_link_get_info_by_fd(link.fd(), &mut info, &mut len) }, 0);
        info.id
    };
    drop(link);
    // The link id no longer resolves once it is released.
    let fd = unsafe { sys::bpf_link_get_fd_by_id(id) };
    assert!(fd < 0, "link {id} still exists after drop");
}
