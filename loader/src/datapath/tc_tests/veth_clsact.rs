//! clsact filters on a real veth pair: meshwire's filters beside other
//! components' filters and qdiscs, the qdisc meshwire created, mode changes,
//! cleanup.

use std::time::{Duration, Instant};

use super::super::*;
use super::harness::{load_tc, test_settings};
use super::other_prog::OtherProg;
use super::veth::*;
use crate::datapath;
use crate::datapath::pins;
use crate::libbpf;

#[test]
fn clsact_across_a_veth_inbound_connections_reach_the_sidecar() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    assert!(!has_clsact(&pair));
    assert!(refused(&pair), "before attaching");

    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert_filters_run(&pair, &tc.obj);
    assert!(no_tcx_links(&tc.pins, cookie), "clsact filters are not pinned");
    assert!(has_clsact(&pair) && marker(&tc.pins, cookie).is_dir(), "meshwire created the qdisc, and says so");
    let ours = vec![(true, clsact::PRIORITY, clsact::HANDLE, "bpf".to_string()), (false, clsact::PRIORITY, clsact::HANDLE, "bpf".to_string())];
    assert_eq!(all_filters(&pair), ours);
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).expect("attaching twice is fine");
    assert_eq!(all_filters(&pair), ours, "still one filter on each side");
    assert!(marker(&tc.pins, cookie).is_dir(), "the qdisc is still meshwire's");
    check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap();

    one_redirected_connection(&pair, &sidecar);
    let flows = tc.map(pins::MAP_FLOW4);
    wait_for("the flow to be forgotten", || flows.raw_keys().unwrap().is_empty());
    assert_eq!(tc.stat("MW_STAT_TC_REDIRECTED"), 1);
    assert_eq!(tc.stat("MW_STAT_TC_FLOW_CLOSED"), 1);

    // A restarted loader pins its programs, then applies its pods again:
    // meshwire's filters are replaced in place with the new programs.
    let newer = load_tc(&tc.pins, &test_settings(false));
    pin_programs(&tc.pins, &newer);
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert_filters_run(&pair, &newer);
    assert_eq!(all_filters(&pair), ours);
    drop(newer);
    one_redirected_connection(&pair, &sidecar);

    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert_eq!(slots(&pair), vec![clsact::Slot::Empty, clsact::Slot::Empty]);
    assert!(!has_clsact(&pair), "the qdisc meshwire created went with its filters: {}", qdiscs(&pair));
    assert!(!tc.pins.pod_dir(cookie).exists());
    let e = check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap_err().to_string();
    assert!(e.contains("neither as a tcx link") && e.contains("clsact ingress filter"), "{e}");
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).expect("detaching twice is fine");
    assert!(refused(&pair), "after detaching");

    // Failed attaches leave nothing behind.
    let e = attach_pod(&tc.pins, cookie, &pair.pod_path(), "nope0", TcAttach::Clsact).unwrap_err().to_string();
    assert!(e.contains("no interface nope0"), "{e}");
    let e = attach_pod(&tc.pins, cookie + 1, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap_err().to_string();
    assert!(e.contains(&format!("not {}", cookie + 1)), "{e}");
    assert!(!has_clsact(&pair));
    assert_eq!(std::fs::read_dir(tc.pins.pods_dir()).unwrap().count(), 0);
}

#[test]
fn clsact_leaves_other_filters_and_qdiscs_alone_and_they_still_run() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    // Someone else's: the clsact qdisc, a root qdisc, and a filter on each
    // side: after meshwire's on ingress (a priority the kernel would choose),
    // before it on egress.
    tc_in(&pair.pod, &["qdisc", "add", "dev", "eth0", "clsact"]);
    tc_in(&pair.pod, &["qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb"]);
    let other = OtherProg::new(&tc);
    let other_id = other.attach(&pair, true, 49152, 1);
    other.attach(&pair, false, 1, 1);
    let theirs = vec![(true, 49152, 1, "bpf".to_string()), (false, 1, 1, "bpf".to_string())];
    assert_eq!(all_filters(&pair), theirs);

    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert!(!marker(&tc.pins, cookie).exists(), "the qdisc was there: not meshwire's");
    assert_filters_run(&pair, &tc.obj);
    assert_eq!(all_filters(&pair).len(), 4);
    check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap();

    // Both run on every packet: meshwire's TC_ACT_UNSPEC goes on to the next
    // filter, and the filter before meshwire's does not keep it from running.
    let before = other.count();
    one_redirected_connection(&pair, &sidecar);
    let seen = other.count() - before;
    assert!(seen >= 8, "the other filters saw {seen} packets of a whole connection");
    assert_eq!(tc.stat("MW_STAT_TC_REDIRECTED"), 1);

    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert_eq!(all_filters(&pair), theirs, "only meshwire's filters went");
    let q = qdiscs(&pair);
    assert!(q.contains("qdisc clsact") && q.contains("qdisc htb 1: root"), "{q}");
    assert_eq!(on_pod_eth0(&pair, |i| libbpf::tc_query(i, true, 49152, 1).unwrap()), Some(other_id));
    let before = other.count();
    assert!(refused(&pair), "after detaching");
    assert!(other.count() > before, "the other filter still runs");
}

#[test]
fn a_clsact_qdisc_meshwire_created_stays_while_another_filter_is_on_it() {
    let (tc, pair, cookie, _sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert!(marker(&tc.pins, cookie).is_dir());
    // Another component adds its filter to meshwire's qdisc.
    let other = OtherProg::new(&tc);
    other.attach(&pair, false, 49152, 1);
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(has_clsact(&pair), "in use by another filter: kept");
    assert_eq!(all_filters(&pair), vec![(false, 49152, 1, "bpf".to_string())]);
    assert!(!tc.pins.pod_dir(cookie).exists(), "and no longer meshwire's");

    // Attached to a qdisc that was there, detached: the qdisc stays, even empty.
    on_pod_eth0(&pair, |i| libbpf::tc_detach(i, false, 49152, 1).unwrap());
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert!(!marker(&tc.pins, cookie).exists());
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(has_clsact(&pair) && all_filters(&pair).is_empty(), "{}", qdiscs(&pair));
}

#[test]
fn a_filter_of_someone_else_at_meshwires_place_is_left_alone() {
    let (tc, pair, cookie, _sidecar) = veth_pod();
    tc_in(&pair.pod, &["qdisc", "add", "dev", "eth0", "clsact"]);
    let other = OtherProg::new(&tc);
    let other_id = other.attach(&pair, true, clsact::PRIORITY, clsact::HANDLE);
    let e = attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap_err().to_string();
    assert!(e.contains("other_tc") && e.contains("left alone"), "{e}");
    assert_eq!(slots(&pair), vec![clsact::Slot::Other(format!("a bpf filter running program other_tc (id {other_id})")), clsact::Slot::Empty]);
    assert!(!tc.pins.pod_dir(cookie).exists());
    let e = check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap_err().to_string();
    assert!(e.contains("other_tc"), "{e}");
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert_eq!(on_pod_eth0(&pair, |i| libbpf::tc_query(i, true, clsact::PRIORITY, clsact::HANDLE).unwrap()), Some(other_id));
    assert!(has_clsact(&pair));
}

#[test]
fn clsact_detach_when_the_pods_netns_is_gone() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert!(marker(&tc.pins, cookie).is_dir());
    drop(sidecar);
    pair.delete_pod();
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(!tc.pins.pod_dir(cookie).exists(), "the marker went with the pod");
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).expect("detaching twice is fine");
    let e = check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap_err();
    assert!(matches!(&e, Error::Inconsistent(m) if m.starts_with("opening network namespace") && m.contains("does not exist")), "{e:?}");
    // A path that is there but is no network namespace is the caller's
    // mistake (system::NetnsError::NotNetwork), not a pod that went.
    let e = check_pod(&tc.pins, cookie, Path::new("/proc/self/ns/uts"), "eth0").unwrap_err();
    assert!(matches!(&e, Error::Invalid(m) if m.contains("/proc/self/ns/uts is a namespace, but not a network namespace")), "{e:?}");
}

#[test]
fn changing_the_attach_mode_moves_the_pod() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    assert_eq!(pod_links(&tc.pins, cookie).len(), 2);
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert!(no_tcx_links(&tc.pins, cookie), "the tcx links went");
    assert_filters_run(&pair, &tc.obj);
    one_redirected_connection(&pair, &sidecar);

    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Tcx).unwrap();
    assert_eq!(pod_links(&tc.pins, cookie).len(), 2);
    assert!(all_filters(&pair).is_empty() && !has_clsact(&pair), "meshwire's filters and qdisc went: {}", qdiscs(&pair));
    assert!(!marker(&tc.pins, cookie).exists());
    one_redirected_connection(&pair, &sidecar);
    check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap();
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    wait_for("the links to detach", || refused(&pair));
}

#[test]
fn auto_is_clsact_and_tcx_is_refused_only_where_the_kernel_lacks_it() {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = release.trim().split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap(), v.next().unwrap());
    let has_tcx = (major, minor) >= (6, 6);
    let (tc, pair, cookie, _sidecar) = veth_pod();
    let prog = tc.obj.program(objects::TC_INGRESS.program).unwrap().fd();
    assert_eq!(libbpf::tcx_supported(prog).unwrap(), has_tcx, "kernel {}", release.trim());
    assert_eq!(method(TcAttach::Auto, prog).unwrap(), Method::Clsact);
    assert_eq!(method(TcAttach::Clsact, prog).unwrap(), Method::Clsact);
    match method(TcAttach::Tcx, prog) {
        Ok(m) => assert!(has_tcx && m == Method::Tcx, "kernel {}: {m:?}", release.trim()),
        Err(e) => assert!(!has_tcx && e.to_string().contains("lacks tcx links (Linux 6.6)"), "kernel {}: {e}", release.trim()),
    }
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Auto).unwrap();
    assert!(no_tcx_links(&tc.pins, cookie), "auto pins no tcx link");
    assert_filters_run(&pair, &tc.obj);
    check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap();
}

#[test]
fn cleanup_with_clsact_pods_then_their_filters() {
    let (tc, pair, cookie, _sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    // What `meshwire-loader cleanup` does when no record names the pod: the
    // pins (the qdisc marker among them) go, the filters stay.
    datapath::cleanup(tc.pins.root()).unwrap();
    assert!(!tc.pins.pods_dir().exists());
    assert_eq!(all_filters(&pair).len(), 2);
    // Without pins, detaching still finds and removes meshwire's filters;
    // nothing says the qdisc is meshwire's any more, so it stays.
    detach_pod(&tc.pins, cookie, Some((&pair.pod_path(), "eth0"))).unwrap();
    assert!(all_filters(&pair).is_empty());
    assert!(has_clsact(&pair));
}

#[test]
fn cleanup_finds_clsact_filters_whose_pod_record_is_gone() {
    let (tc, pair, cookie, _sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert_eq!(all_filters(&pair).len(), 2);
    // The namespaces looked through: only this test's pod (a symlink to its mount).
    let dir = std::env::temp_dir().join(format!("meshwire-netns-{}-{cookie}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(pair.pod_path(), dir.join("pod")).unwrap();
    let empty = dir.join("none");
    std::fs::create_dir_all(&empty).unwrap();
    // Not found among the mounted namespaces: nothing is touched.
    let missed = detach_orphans(&tc.pins, &[&empty], &[]);
    let kept = detach_orphans(&tc.pins, &[&dir], &[cookie]);
    let found = detach_orphans(&tc.pins, &[&dir], &[]);
    let filters_after = all_filters(&pair).len();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(missed.unwrap(), 0);
    assert_eq!(kept.unwrap(), 0, "a pod with a record (known) is left alone");
    assert_eq!(found.unwrap(), 1);
    assert_eq!(filters_after, 0, "meshwire's filters are gone");
    assert!(!has_clsact(&pair), "the qdisc meshwire created went with them");
    assert!(!tc.pins.pod_dir(cookie).exists());
}

/// A DEL answered before its qdisc goes: meshwire's filters are off at
/// once (nothing steers the pod), the bare qdisc meshwire created stays with
/// its markers until `remove_left_qdisc`, which then takes both.
#[test]
fn a_del_takes_the_filters_off_at_once_and_the_qdisc_after_its_answer() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    one_redirected_connection(&pair, &sidecar);
    let left = detach_pod_leaving_qdisc(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap();
    assert_eq!(left, Some(LeftQdisc { cookie, netns: pair.pod_path(), ifname: "eth0".into() }));
    assert!(all_filters(&pair).is_empty(), "meshwire's filters went before the answer");
    assert!(refused(&pair), "nothing steers the pod any more");
    assert!(has_clsact(&pair) && marker(&tc.pins, cookie).is_dir(), "the bare qdisc and its marker wait: {}", qdiscs(&pair));
    assert!(check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").is_err());
    remove_left_qdisc(&tc.pins, left.as_ref().unwrap()).unwrap();
    assert!(!has_clsact(&pair), "{}", qdiscs(&pair));
    assert!(!tc.pins.pod_dir(cookie).exists());
    remove_left_qdisc(&tc.pins, left.as_ref().unwrap()).expect("removing it twice is fine");

    // Meshed again before the qdisc went (an ADD after the DEL): it stays,
    // with the new filters and its marker, for the next DEL.
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    let left = detach_pod_leaving_qdisc(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap().unwrap();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    remove_left_qdisc(&tc.pins, &left).unwrap();
    assert_filters_run(&pair, &tc.obj);
    assert!(marker(&tc.pins, cookie).is_dir());
    one_redirected_connection(&pair, &sidecar);
    check_pod(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap();

    // Another component's filter on it meanwhile: the qdisc is theirs now.
    let left = detach_pod_leaving_qdisc(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap().unwrap();
    let other = OtherProg::new(&tc);
    other.attach(&pair, false, 49152, 1);
    remove_left_qdisc(&tc.pins, &left).unwrap();
    assert_eq!(all_filters(&pair), vec![(false, 49152, 1, "bpf".to_string())]);
    assert!(!tc.pins.pod_dir(cookie).exists(), "and no longer meshwire's");

    // With another filter on it at the DEL, nothing is left for later:
    // meshwire's filters go, the qdisc is theirs (as detach_pod does).
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    assert_eq!(detach_pod_leaving_qdisc(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap(), None);
    assert_eq!(all_filters(&pair), vec![(false, 49152, 1, "bpf".to_string())]);
    assert!(!tc.pins.pod_dir(cookie).exists());
}

/// Regression (the churn benchmark, issue 15): the runtime deletes the pod's
/// namespace right after the DEL's answer, so the qdisc left for later finds
/// the path unmounted but not yet removed (`ip netns del` unmounts, then
/// unlinks). That namespace is gone from the path: its pins go, and no
/// error leaves a pod directory behind on bpffs for every such pod.
#[test]
fn churn_a_left_qdisc_whose_namespace_was_unmounted_leaves_no_pins() {
    let (tc, pair, cookie, sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    let left = detach_pod_leaving_qdisc(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap().unwrap();
    assert!(marker(&tc.pins, cookie).is_dir());
    nix::mount::umount2(&pair.pod_path(), nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert!(pair.pod_path().is_file(), "the namespace's file stays, unmounted");
    let removed = remove_left_qdisc(&tc.pins, &left);
    drop(sidecar);
    pair.delete_pod();
    removed.expect("an unmounted namespace is a gone one");
    assert!(!tc.pins.pod_dir(cookie).exists(), "the pod's pins went");
}

/// A loader killed between a DEL's answer and the qdisc's removal: the
/// record and map entries are gone, the bare qdisc and its markers are not.
/// The restarted loader's sweep (no record explains the pod) finds the
/// namespace by cookie and deletes the qdisc and the pins; the namespace
/// gone meanwhile, the qdisc went with it and the pins go.
#[test]
fn a_qdisc_left_by_a_del_whose_loader_was_killed_goes_at_the_restart() {
    let (tc, pair, cookie, _sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    // The loader dies holding it: nothing of it is kept outside the pins.
    drop(detach_pod_leaving_qdisc(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap().unwrap());
    assert!(has_clsact(&pair) && all_filters(&pair).is_empty());
    assert_eq!(swept_with_pod_mounted(&tc.pins, &pair, cookie), 1);
    assert!(!has_clsact(&pair), "{}", qdiscs(&pair));
    assert!(!tc.pins.pod_dir(cookie).exists());

    let (tc, pair, cookie, sidecar) = veth_pod();
    attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    drop(detach_pod_leaving_qdisc(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap().unwrap());
    drop(sidecar);
    pair.delete_pod();
    assert_eq!(detach_orphans(&tc.pins, &[], &[]).unwrap(), 0, "no namespace to look in");
    // What the sweep does next for a cookie no record explains.
    for c in pod_cookies(&tc.pins) {
        detach_pod(&tc.pins, c, None).unwrap();
    }
    assert!(!tc.pins.pod_dir(cookie).exists());
}

/// The reaper, to which the API's DELs hand the bare qdiscs they leave:
/// each goes its delay after its DEL, not before, those due together in one
/// batch; one meshed again meanwhile keeps its qdisc, filters and marker;
/// `finish` (a clean stop) deletes what is queued at once; a reaper that
/// goes with qdiscs queued (a killed loader) leaves them bare with their
/// markers, for the restart's sweep.
#[test]
fn the_reaper_deletes_left_qdiscs_a_delay_after_their_dels() {
    use crate::datapath::reaper::{Finished, Reaper};
    let (tc, a, ca, sidecar) = veth_pod();
    let (b, c) = (NetnsPair::new(), NetnsPair::new());
    let (cb, cc) = (system::netns_cookie(&b.pod_path()).unwrap(), system::netns_cookie(&c.pod_path()).unwrap());
    let pods = [(&a, ca), (&b, cb), (&c, cc)];
    for (pair, cookie) in pods {
        attach_pod(&tc.pins, cookie, &pair.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    }
    let delay = Duration::from_millis(800);
    let reaper = Reaper::spawn(tc.pins.clone(), delay).unwrap();
    let handed = Instant::now();
    for (pair, cookie) in pods {
        reaper.hand(detach_pod_leaving_qdisc(&tc.pins, cookie, &pair.pod_path(), "eth0").unwrap().unwrap());
    }
    // c meshed again before its time (an ADD right after the DEL).
    attach_pod(&tc.pins, cc, &c.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    std::thread::sleep(delay / 4);
    for (pair, cookie) in pods {
        assert!(has_clsact(pair) && marker(&tc.pins, cookie).is_dir(), "{} ms after the DELs: {}", handed.elapsed().as_millis(), qdiscs(pair));
    }
    assert!(all_filters(&a).is_empty() && all_filters(&b).is_empty(), "the DELs took meshwire's filters off at once");
    wait_for("a's and b's qdiscs to go", || !has_clsact(&a) && !has_clsact(&b));
    let took = handed.elapsed();
    assert!(took >= delay, "deleted {} ms after the DELs, before their delay", took.as_millis());
    assert!(!tc.pins.pod_dir(ca).exists() && !tc.pins.pod_dir(cb).exists(), "their pins went with them");
    std::thread::sleep(delay / 4);
    assert_filters_run(&c, &tc.obj);
    assert!(marker(&tc.pins, cc).is_dir(), "c's qdisc is meshwire's again, for its next DEL");
    check_pod(&tc.pins, cc, &c.pod_path(), "eth0").unwrap();

    // A clean stop: what is queued goes now.
    reaper.hand(detach_pod_leaving_qdisc(&tc.pins, cc, &c.pod_path(), "eth0").unwrap().unwrap());
    let stopping = Instant::now();
    assert_eq!(reaper.finish(Duration::from_secs(5)), Finished { deleted: 1, left: 0 });
    assert!(stopping.elapsed() < delay / 2, "finish waited {} ms", stopping.elapsed().as_millis());
    assert!(!has_clsact(&c) && !tc.pins.pod_dir(cc).exists(), "{}", qdiscs(&c));
    assert_eq!(reaper.finish(Duration::from_secs(5)), Finished::default(), "nothing queued");

    // The reaper goes with one queued: it stays bare, its markers with it,
    // and the restart's sweep finds it.
    attach_pod(&tc.pins, ca, &a.pod_path(), "eth0", TcAttach::Clsact).unwrap();
    reaper.hand(detach_pod_leaving_qdisc(&tc.pins, ca, &a.pod_path(), "eth0").unwrap().unwrap());
    drop(reaper);
    std::thread::sleep(delay * 2);
    assert!(has_clsact(&a) && all_filters(&a).is_empty() && marker(&tc.pins, ca).is_dir(), "{}", qdiscs(&a));
    assert_eq!(swept_with_pod_mounted(&tc.pins, &a, ca), 1);
    assert!(!has_clsact(&a) && !tc.pins.pod_dir(ca).exists(), "{}", qdiscs(&a));
    drop(sidecar);
}

/// A restarted loader's sweep with the pod's namespace mounted where it
/// looks (as under /run/netns) and no record of the pod: the pods whose
/// filters or qdisc it found and removed ([`detach_orphans`]).
fn swept_with_pod_mounted(pins: &Pins, pair: &NetnsPair, cookie: u64) -> usize {
    let dir = std::env::temp_dir().join(format!("meshwire-netns-left-{}-{cookie}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(pair.pod_path(), dir.join("pod")).unwrap();
    let found = detach_orphans(pins, &[&dir], &[]);
    let _ = std::fs::remove_dir_all(&dir);
    found.unwrap()
}
