//! For real: two network namespaces of the test's own joined by a veth pair,
//! the pod's side meshed with the tc programs pinned, and what the tests ask
//! of them (connections through the rewrite, the pod's qdiscs and filters).

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::super::*;
use super::harness::Tc;
use super::packet::{APP, INBOUND};
use crate::libbpf::{self, Object};
use crate::testutil::in_netns;

/// Two network namespaces of our own, "remote" (192.0.2.1) and "pod"
/// (192.0.2.2, interface eth0), joined by a veth pair. Deleted on drop.
pub struct NetnsPair {
    pub remote: String,
    pub pod: String,
}

pub const VETH_REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const VETH_POD: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

pub fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl NetnsPair {
    pub fn new() -> NetnsPair {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let tag = format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let pair = NetnsPair { remote: format!("mwtc-r-{tag}"), pod: format!("mwtc-p-{tag}") };
        ip(&["netns", "add", &pair.remote]);
        ip(&["netns", "add", &pair.pod]);
        ip(&["-n", &pair.remote, "link", "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", &pair.pod]);
        ip(&["-n", &pair.remote, "addr", "add", "192.0.2.1/24", "dev", "veth0"]);
        ip(&["-n", &pair.pod, "addr", "add", "192.0.2.2/24", "dev", "eth0"]);
        for (ns, dev) in [(&pair.remote, "veth0"), (&pair.pod, "eth0")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    pub fn path(name: &str) -> PathBuf {
        Path::new("/run/netns").join(name)
    }

    pub fn pod_path(&self) -> PathBuf {
        NetnsPair::path(&self.pod)
    }

    pub fn remote_path(&self) -> PathBuf {
        NetnsPair::path(&self.remote)
    }

    pub fn delete_pod(&self) {
        ip(&["netns", "del", &self.pod]);
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.remote, &self.pod] {
            if NetnsPair::path(ns).exists() {
                let _ = std::process::Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
    }
}

pub fn dial(pair: &NetnsPair, port: u16) -> std::io::Result<TcpStream> {
    in_netns(&pair.remote_path(), move || {
        let s = TcpStream::connect_timeout(&SocketAddr::from((VETH_POD, port)), Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        Ok(s)
    })
}

pub fn pod_links(pins: &Pins, cookie: u64) -> Vec<libbpf::TcxLinkInfo> {
    TC_PROGRAMS
        .iter()
        .map(|tc| libbpf::link_tcx_info(&libbpf::obj_get(&pins.pod(cookie).link(tc.link, "eth0")).unwrap()).unwrap().expect("a tcx link"))
        .collect()
}

/// What `datapath::install` does for the tc programs of `obj`.
pub fn pin_programs(pins: &Pins, obj: &Object) {
    for p in TC_PROGRAMS {
        pin_program(pins, p.program, obj.program(p.program).unwrap().fd(), &mut Vec::new()).unwrap();
    }
}

/// Programs pinned, a netns pair with the pod's address meshed, and the
/// sidecar listening on the inbound port in the pod (nothing on 8080).
pub fn veth_pod() -> (Tc, NetnsPair, u64, TcpListener) {
    let tc = Tc::new();
    pin_programs(&tc.pins, &tc.obj);
    let pair = NetnsPair::new();
    let cookie = system::netns_cookie(&pair.pod_path()).unwrap();
    tc.mesh(VETH_POD, cookie);
    let sidecar = in_netns(&pair.pod_path(), || TcpListener::bind(("0.0.0.0", INBOUND)).unwrap());
    (tc, pair, cookie, sidecar)
}

pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}


// ---- the pod's clsact qdisc and filters -------------------------------------

/// `tc -n NS ARGS...` (iproute2), in a namespace of the test's own; its output.
pub fn tc_in(ns: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("tc").arg("-n").arg(ns).args(args).output().expect("run tc (iproute2)");
    assert!(out.status.success(), "tc -n {ns} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The pod's qdiscs on eth0, as `tc qdisc show` prints them.
pub fn qdiscs(pair: &NetnsPair) -> String {
    tc_in(&pair.pod, &["qdisc", "show", "dev", "eth0"])
}

pub fn has_clsact(pair: &NetnsPair) -> bool {
    qdiscs(pair).contains("qdisc clsact")
}

/// `f(ifindex of eth0)` inside the pod's namespace.
pub fn on_pod_eth0<T: Send + 'static>(pair: &NetnsPair, f: impl FnOnce(u32) -> T + Send + 'static) -> T {
    in_netns(&pair.pod_path(), move || f(nix::net::if_::if_nametoindex("eth0").expect("eth0 in the pod")))
}

/// What sits at meshwire's place on ingress and on egress of the pod's eth0.
pub fn slots(pair: &NetnsPair) -> Vec<clsact::Slot> {
    on_pod_eth0(pair, |ifindex| TC_PROGRAMS.iter().map(|tc| clsact::slot(ifindex, tc.ingress, tc.program).unwrap()).collect())
}

/// Every filter on the pod's eth0: (ingress, priority, handle, kind).
pub fn all_filters(pair: &NetnsPair) -> Vec<(bool, u16, u32, String)> {
    on_pod_eth0(pair, |ifindex| {
        [true, false]
            .into_iter()
            .flat_map(|ingress| clsact::dump_filters(ifindex, ingress).unwrap().into_iter().map(move |f| (ingress, f.priority, f.handle, f.kind)))
            .filter(|f| f.2 != 0)
            .collect()
    })
}

/// meshwire's filters run the programs of `obj`.
pub fn assert_filters_run(pair: &NetnsPair, obj: &Object) {
    let want: Vec<clsact::Slot> =
        TC_PROGRAMS.iter().map(|p| clsact::Slot::Ours(libbpf::prog_id(obj.program(p.program).unwrap().fd()).unwrap())).collect();
    assert_eq!(slots(pair), want);
}

pub fn no_tcx_links(pins: &Pins, cookie: u64) -> bool {
    TC_PROGRAMS.iter().all(|p| !pins.pod(cookie).legacy_link(p.link).exists() && !pins.pod(cookie).link(p.link, "eth0").exists())
}

pub fn marker(pins: &Pins, cookie: u64) -> PathBuf {
    pins.pod(cookie).qdisc_marker("eth0")
}

/// A connection from the remote namespace to the pod's 8080, accepted by the
/// sidecar on 15003 through meshwire's programs: (client, server, the peer
/// address the sidecar saw).
pub fn redirected_connection(pair: &NetnsPair, sidecar: &TcpListener) -> (TcpStream, TcpStream, SocketAddr) {
    let client = dial(pair, APP).expect("connect to 8080, answered by the sidecar");
    let (server, peer) = sidecar.accept().unwrap();
    server.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    assert_eq!(server.local_addr().unwrap(), SocketAddr::from((VETH_POD, INBOUND)));
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(client.peer_addr().unwrap(), SocketAddr::from((VETH_POD, APP)), "the peer sees the port it dialled");
    (client, server, peer)
}

/// Ping and pong through the rewrite; then the peer closes first and the
/// sidecar answers and closes.
pub fn talk_and_close(mut client: TcpStream, mut server: TcpStream) {
    use std::io::{Read, Write};
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").unwrap();
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).unwrap();
    drop(server);
    assert_eq!(client.read(&mut buf).unwrap(), 0, "EOF from the sidecar, through the rewrite");
}

pub fn one_redirected_connection(pair: &NetnsPair, sidecar: &TcpListener) {
    let (client, server, _) = redirected_connection(pair, sidecar);
    talk_and_close(client, server);
}

pub fn refused(pair: &NetnsPair) -> bool {
    matches!(dial(pair, APP), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}
