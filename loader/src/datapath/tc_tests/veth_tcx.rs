//! tcx links on a real veth pair: connections reach the sidecar, restarts
//! move the links, the previous pin layout is adopted, cleanup detaches.

use super::super::*;
use super::harness::{load_tc, test_settings};
use super::packet::APP;
use super::veth::*;
use crate::datapath;
use crate::datapath::layout::{Flow4, Flow4Key};
use crate::datapath::pins;
use crate::libbpf;

#[test]
fn across_a_veth_inbound_connections_reach_the_sidecar() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    assert_eq!(dial(&pair, APP).unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused, "before attaching");

    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    let links = pod_links(&tc.pins, cookie);
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).expect("attaching twice is fine");
    assert_eq!(pod_links(&tc.pins, cookie), links, "the same links stay");
    assert!(links[0].ingress && !links[1].ingress && links[0].ifindex != 0);

    let (client, server, peer) = redirected_connection(&pair, &sidecar);
    let flow_key = Flow4Key {
        remote_ip4: u32::from(VETH_REMOTE).to_be(),
        local_ip4: u32::from(VETH_POD).to_be(),
        remote_port: peer.port().to_be(),
        pad: 0,
    };
    let flows = tc.map(pins::MAP_FLOW4);
    assert_eq!(flows.lookup::<Flow4Key, Flow4>(&flow_key).unwrap().map(|f| u16::from_be(f.orig_port)), Some(APP));
    // The peer's last ACK ends the flow.
    talk_and_close(client, server);
    wait_for("the flow to be forgotten", || flows.lookup::<Flow4Key, Flow4>(&flow_key).unwrap().is_none());
    assert_eq!(tc.count(pins::MAP_FLOW4_FIN), 0);
    assert_eq!(tc.stat("MW_STAT_TC_REDIRECTED"), 1);
    assert_eq!(tc.stat("MW_STAT_TC_FLOW_CLOSED"), 1);
    assert_eq!(tc.stat("MW_STAT_TC_ERROR"), 0);

    // A restarted loader moves the pod's links onto its programs.
    let newer = load_tc(&tc.pins, &test_settings(false));
    pin_programs(&tc.pins, &newer);
    let moved = pod_links(&tc.pins, cookie);
    for (link, p) in moved.iter().zip(TC_PROGRAMS) {
        assert_eq!(link.prog_id, libbpf::prog_id(newer.program(p.program).unwrap().fd()).unwrap(), "{}", p.program);
    }
    drop(newer);
    one_redirected_connection(&pair, &sidecar);

    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(!tc.pins.pod_dir(cookie).exists());
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).expect("detaching twice is fine");
    assert_eq!(dial(&pair, APP).unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused, "after detaching");

    // Failed attaches leave no pins behind.
    let e = attach_pod(&tc.pins, cookie, &pair.pod_path(), "nope0", TcAttach::Tcx).unwrap_err().to_string();
    assert!(e.contains("no interface nope0"), "{e}");
    assert!(!tc.pins.pod_dir(cookie).exists());
    let e = attach_pod(&tc.pins, cookie + 1, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap_err().to_string();
    assert!(e.contains(&format!("not {}", cookie + 1)), "{e}");
    assert!(!tc.pins.pod_dir(cookie + 1).exists());

    // The pod's netns goes away with its links pinned: they are defunct,
    // the loader's restart step skips them, and detaching just unpins.
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    drop(sidecar);
    pair.delete_pod();
    wait_for("the pod's links to become defunct", || pod_links(&tc.pins, cookie).iter().all(|l| l.ifindex == 0));
    pin_programs(&tc.pins, &tc.obj);
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(!tc.pins.pod_dir(cookie).exists());
    assert_eq!(std::fs::read_dir(tc.pins.pods_dir()).unwrap().count(), 0);
}

/// A pod attached by the previous version (one pair of links per pod,
/// pinned as `tc_ingress` and `tc_egress`) keeps its links when this
/// version attaches it again: they move to this interface's names, and
/// detaching the interface removes them.
#[test]
fn links_of_the_previous_layout_are_adopted_not_doubled() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    let links = pod_links(&tc.pins, cookie);
    let dir = tc.pins.pod(cookie);
    for p in TC_PROGRAMS {
        std::fs::rename(dir.link(p.link, "eth0"), dir.legacy_link(p.link)).unwrap();
    }
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    assert_eq!(pod_links(&tc.pins, cookie), links, "the same links, under this interface's names");
    for p in TC_PROGRAMS {
        assert!(!dir.legacy_link(p.link).exists(), "{} moved", p.link);
    }
    one_redirected_connection(&pair, &sidecar);
    // The previous layout's pins go with the pod's last interface.
    for p in TC_PROGRAMS {
        std::fs::rename(dir.link(p.link, "eth0"), dir.legacy_link(p.link)).unwrap();
    }
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(!dir.dir().exists());
    wait_for("the links to detach", || matches!(dial(&pair, APP), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused));
}

#[test]
fn cleanup_detaches_the_pods_and_removes_the_tc_pins() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    let client = dial(&pair, APP).expect("redirected while attached");
    drop((client, sidecar.accept().unwrap()));

    let removed = datapath::cleanup(tc.pins.root()).unwrap();
    for p in TC_PROGRAMS {
        assert!(removed.contains(&tc.pins.prog(p.program)), "{removed:?}");
        assert!(removed.contains(&tc.pins.pod(cookie).link(p.link, "eth0")), "{removed:?}");
    }
    assert!(removed.contains(&tc.pins.map(pins::MAP_FLOW4_FIN)), "{removed:?}");
    assert!(!tc.pins.progs_dir().exists() && !tc.pins.pods_dir().exists(), "the tc directories are gone");
    // The links went with their pins: nothing redirects any more. (The
    // kernel frees a released link from a work item: give it a moment.)
    wait_for("the links to detach", || matches!(dial(&pair, APP), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused));
}
