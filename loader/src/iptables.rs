//! The iptables interception mode (`interception.mode = "iptables"`): a meshed
//! pod gets netfilter rules in its own network namespace instead of BPF map
//! entries, like the default mode of osm-edge and istio-cni.
//!
//! ```text
//! *nat
//! -A PREROUTING -p tcp -j MESHWIRE_INBOUND
//! -A OUTPUT -p tcp -j MESHWIRE_OUTPUT
//! -A MESHWIRE_INBOUND -p tcp -m tcp --dport 15001 -j RETURN     the sidecar's own ports,
//! -A MESHWIRE_INBOUND -p tcp -m tcp --dport 15003 -j RETURN     excluded inbound ports
//! -A MESHWIRE_INBOUND -p tcp -j REDIRECT --to-ports 15003
//! -A MESHWIRE_OUTPUT -d 127.0.0.0/8 -j RETURN
//! -A MESHWIRE_OUTPUT -m owner --uid-owner 1500 -j RETURN         the sidecar
//! -A MESHWIRE_OUTPUT -p tcp -m tcp --dport 22 -j RETURN          excluded ports,
//! -A MESHWIRE_OUTPUT -d 10.96.0.0/12 -j RETURN                   excluded CIDRs
//! -A MESHWIRE_OUTPUT -p tcp -j REDIRECT --to-ports 15001
//! ```
//!
//! The rules are written as iptables-save prints them, so [`check`] compares
//! them line by line. Everything runs inside the pod's namespace only: a
//! thread enters it with setns(), checks its cookie (the pod's, and never the
//! host's), and the iptables commands are children of that thread, each of
//! which checks again, before exec, that it sits in that namespace. Changes go
//! through `iptables-restore --noflush` (one atomic transaction; other rules of
//! the nat table are left alone). Applying is idempotent; removing deletes the
//! jumps and both chains.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::config::{Cidr4, Config};
use crate::pods::MeshedPod;
use crate::system;

pub const CHAIN_OUT: &str = "MESHWIRE_OUTPUT";
pub const CHAIN_IN: &str = "MESHWIRE_INBOUND";
/// The jumps, as iptables-save prints them.
const JUMP_OUT: &str = "-A OUTPUT -p tcp -j MESHWIRE_OUTPUT";
const JUMP_IN: &str = "-A PREROUTING -p tcp -j MESHWIRE_INBOUND";
/// How long iptables may wait for the xtables lock.
const LOCK_WAIT_SECS: &str = "10";

/// What the rules take from the node's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRules {
    pub sidecar_uid: u32,
    pub outbound_port: u16,
    pub inbound_port: u16,
    pub out_ports: Vec<u16>,
    pub out_cidrs: Vec<Cidr4>,
    pub in_ports: Vec<u16>,
}

impl NodeRules {
    pub fn of(config: &Config) -> NodeRules {
        NodeRules {
            sidecar_uid: config.sidecar.uid,
            outbound_port: config.sidecar.outbound_port,
            inbound_port: config.sidecar.inbound_port,
            out_ports: config.outbound.exclude_ports.clone(),
            out_cidrs: config.outbound.exclude_cidrs.clone(),
            in_ports: config.inbound.exclude_ports.clone(),
        }
    }
}

/// Each item once, in the order first seen.
fn unique<T: PartialEq + Copy>(lists: &[&[T]]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for item in lists.iter().flat_map(|l| l.iter()) {
        if !out.contains(item) {
            out.push(*item);
        }
    }
    out
}

/// The pod's chain rules (`-A CHAIN ...`), in iptables-save's spelling.
pub fn chain_rules(node: &NodeRules, pod: &MeshedPod) -> Vec<String> {
    let mut r = vec![
        format!("-A {CHAIN_OUT} -d 127.0.0.0/8 -j RETURN"),
        format!("-A {CHAIN_OUT} -m owner --uid-owner {} -j RETURN", node.sidecar_uid),
    ];
    for p in unique(&[&node.out_ports, &pod.out_ports]) {
        r.push(format!("-A {CHAIN_OUT} -p tcp -m tcp --dport {p} -j RETURN"));
    }
    for c in unique(&[&node.out_cidrs, &pod.out_cidrs]) {
        r.push(format!("-A {CHAIN_OUT} -d {c} -j RETURN"));
    }
    r.push(format!("-A {CHAIN_OUT} -p tcp -j REDIRECT --to-ports {}", node.outbound_port));
    for p in unique(&[&[node.outbound_port, node.inbound_port], &node.in_ports, &pod.in_ports]) {
        r.push(format!("-A {CHAIN_IN} -p tcp -m tcp --dport {p} -j RETURN"));
    }
    r.push(format!("-A {CHAIN_IN} -p tcp -j REDIRECT --to-ports {}", node.inbound_port));
    r
}

/// What the nat table of a namespace holds of ours (from `iptables-save -t nat`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    chain_out: bool,
    chain_in: bool,
    jumps_out: usize,
    jumps_in: usize,
    /// `-A MESHWIRE_...` lines, in order.
    rules: Vec<String>,
}

fn parse_save(save: &str) -> Found {
    let mut f = Found::default();
    for line in save.lines().map(str::trim_end) {
        if line.starts_with(&format!(":{CHAIN_OUT} ")) {
            f.chain_out = true;
        } else if line.starts_with(&format!(":{CHAIN_IN} ")) {
            f.chain_in = true;
        } else if line == JUMP_OUT {
            f.jumps_out += 1;
        } else if line == JUMP_IN {
            f.jumps_in += 1;
        } else if line.starts_with(&format!("-A {CHAIN_OUT} ")) || line.starts_with(&format!("-A {CHAIN_IN} ")) {
            f.rules.push(line.to_string());
        }
    }
    f
}

/// The restore script that makes the chains exactly `rules` and adds the
/// jumps that are missing. Declaring a chain with --noflush flushes it.
fn install_script(found: &Found, rules: &[String]) -> String {
    let mut s = format!("*nat\n:{CHAIN_OUT} - [0:0]\n:{CHAIN_IN} - [0:0]\n");
    for r in rules {
        s.push_str(r);
        s.push('\n');
    }
    if found.jumps_out == 0 {
        s.push_str(&format!("-I OUTPUT 1 -p tcp -j {CHAIN_OUT}\n"));
    }
    if found.jumps_in == 0 {
        s.push_str(&format!("-I PREROUTING 1 -p tcp -j {CHAIN_IN}\n"));
    }
    s.push_str("COMMIT\n");
    s
}

/// The restore script that removes every jump and both chains; None when
/// nothing of ours is there.
fn remove_script(found: &Found) -> Option<String> {
    if !found.chain_out && !found.chain_in && found.jumps_out == 0 && found.jumps_in == 0 {
        return None;
    }
    let mut s = String::from("*nat\n");
    for _ in 0..found.jumps_out {
        s.push_str(&format!("-D OUTPUT -p tcp -j {CHAIN_OUT}\n"));
    }
    for _ in 0..found.jumps_in {
        s.push_str(&format!("-D PREROUTING -p tcp -j {CHAIN_IN}\n"));
    }
    for (there, chain) in [(found.chain_out, CHAIN_OUT), (found.chain_in, CHAIN_IN)] {
        if there {
            s.push_str(&format!("-F {chain}\n-X {chain}\n"));
        }
    }
    s.push_str("COMMIT\n");
    Some(s)
}

/// A network namespace entered on the calling thread, checked.
struct Entered {
    /// st_dev and st_ino of the namespace: what /proc/self/ns/net of a child must show.
    dev: u64,
    ino: u64,
}

/// Run `f` on a thread inside the namespace at `netns`, after checking that
/// it is the namespace with `cookie` and not the host's. Ok(None): the
/// namespace is gone (or the path now names another one), nothing was run.
fn in_pod_netns<T: Send + 'static>(
    netns: &Path,
    cookie: u64,
    f: impl FnOnce(&Entered) -> Result<T, String> + Send + 'static,
) -> Result<Option<T>, String> {
    // The loader's own namespace (and PID 1's): read here, before any setns.
    let host = system::host_netns_cookies()?;
    if host.contains(&cookie) {
        return Err(format!("netns cookie {cookie} is the host's network namespace; iptables rules are only ever installed in a pod's"));
    }
    let file = match File::open(netns) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("opening network namespace {}: {e}", netns.display())),
    };
    let meta = file.metadata().map_err(|e| format!("stat {}: {e}", netns.display()))?;
    let entered = Entered { dev: meta.dev(), ino: meta.ino() };
    let shown = netns.display().to_string();
    std::thread::spawn(move || -> Result<Option<T>, String> {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("{shown} is not a network namespace I can enter: {e}"))?;
        let now = system::current_netns_cookie().map_err(|e| format!("reading the cookie of {shown}: {e}"))?;
        if host.contains(&now) {
            return Err(format!("{shown} is the host's network namespace; iptables rules are only ever installed in a pod's"));
        }
        if now != cookie {
            // The path names another namespace now: the pod's is gone.
            return Ok(None);
        }
        f(&entered).map(Some)
    })
    .join()
    .map_err(|_| "netns thread panicked".to_string())?
}

/// An iptables command, run as a child of the calling thread (which is in the
/// pod's namespace). The child checks before exec that it is in that
/// namespace, and refuses to run otherwise.
fn ipt(ns: &Entered, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let (dev, ino) = (ns.dev, ns.ino);
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: the closure only calls stat(2) on a static C string and
    // compares numbers, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::stat(c"/proc/self/ns/net".as_ptr(), &mut st) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if st.st_dev != dev || st.st_ino != ino {
                return Err(std::io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(())
        });
    }
    let shown = format!("{program} {}", args.join(" "));
    let mut child = cmd.spawn().map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) => format!("{shown}: refused: the child was not in the pod's network namespace"),
        Some(libc::ENOENT) => format!("{shown}: {e} (interception.mode = \"iptables\" needs iptables installed, in the loader's PATH)"),
        _ => format!("{shown}: {e}"),
    })?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("piped");
        pipe.write_all(text.as_bytes()).map_err(|e| format!("{shown}: writing its input: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("{shown}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let input = stdin.map(|s| format!("; input was:\n{s}")).unwrap_or_default();
        return Err(format!("{shown} failed ({}): {}{input}", out.status, err.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn save(ns: &Entered) -> Result<Found, String> {
    Ok(parse_save(&ipt(ns, "iptables-save", &["-t", "nat"], None)?))
}

fn restore(ns: &Entered, script: &str) -> Result<(), String> {
    ipt(ns, "iptables-restore", &["--noflush", "--wait", LOCK_WAIT_SECS], Some(script)).map(|_| ())
}

/// Install (or bring back to exactly) the pod's rules.
pub fn apply(node: &NodeRules, pod: &MeshedPod) -> Result<(), String> {
    let rules = chain_rules(node, pod);
    let done = in_pod_netns(&pod.netns, pod.cookie, move |ns| {
        let found = save(ns)?;
        restore(ns, &install_script(&found, &rules))
    })?;
    done.ok_or_else(|| format!("pod {}: network namespace {} is gone", pod.container_id, pod.netns.display()))
}

/// Remove the pod's jumps and chains. A namespace that is gone took its
/// rules with it: Ok.
pub fn remove(pod: &MeshedPod) -> Result<(), String> {
    remove_in(&pod.netns, pod.cookie).map_err(|e| format!("pod {}: {e}", pod.container_id))
}

/// [`remove`] by namespace path and cookie (`meshwire-loader cleanup`).
pub fn remove_in(netns: &Path, cookie: u64) -> Result<(), String> {
    in_pod_netns(netns, cookie, |ns| match remove_script(&save(ns)?) {
        Some(script) => restore(ns, &script),
        None => Ok(()),
    })
    .map(|_| ())
}

/// Are the pod's rules there, exactly? Err says what differs.
pub fn check(node: &NodeRules, pod: &MeshedPod) -> Result<(), String> {
    let found = in_pod_netns(&pod.netns, pod.cookie, |ns| save(ns))?
        .ok_or_else(|| format!("pod {}: network namespace {} is gone", pod.container_id, pod.netns.display()))?;
    let id = &pod.container_id;
    if found.jumps_out == 0 {
        return Err(format!("pod {id}: nat OUTPUT has no jump to {CHAIN_OUT}"));
    }
    if found.jumps_in == 0 {
        return Err(format!("pod {id}: nat PREROUTING has no jump to {CHAIN_IN}"));
    }
    let want = chain_rules(node, pod);
    // iptables-save lists the chains by name: compare chain by chain.
    for chain in [CHAIN_OUT, CHAIN_IN] {
        let prefix = format!("-A {chain} ");
        let of = |rules: &[String]| -> Vec<String> { rules.iter().filter(|r| r.starts_with(&prefix)).cloned().collect() };
        let (want, found) = (of(&want), of(&found.rules));
        if found != want {
            let missing: Vec<&String> = want.iter().filter(|r| !found.contains(r)).collect();
            let extra: Vec<&String> = found.iter().filter(|r| !want.contains(r)).collect();
            return Err(format!("pod {id}: the {chain} rules differ (missing {missing:?}, unexpected {extra:?}, or out of order)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::path::PathBuf;

    fn node() -> NodeRules {
        NodeRules {
            sidecar_uid: 1500,
            outbound_port: 15001,
            inbound_port: 15003,
            out_ports: vec![8081, 22],
            out_cidrs: vec!["10.231.9.0/24".parse().unwrap()],
            in_ports: vec![9090],
        }
    }

    fn pod(netns: &Path, cookie: u64) -> MeshedPod {
        MeshedPod {
            container_id: "ipt-test".into(),
            netns: netns.to_path_buf(),
            ifname: String::new(),
            cookie,
            ips: vec![Ipv4Addr::new(10, 1, 0, 5)],
            out_ports: vec![22, 5432],
            out_cidrs: vec!["192.0.2.7/32".parse().unwrap()],
            in_ports: vec![9090, 8443],
            accelerate: false,
        }
    }

    #[test]
    fn rules_merge_node_and_pod_exclusions_once_each() {
        let r = chain_rules(&node(), &pod(Path::new("/x"), 1));
        let expected = [
            "-A MESHWIRE_OUTPUT -d 127.0.0.0/8 -j RETURN",
            "-A MESHWIRE_OUTPUT -m owner --uid-owner 1500 -j RETURN",
            "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 8081 -j RETURN",
            "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 22 -j RETURN",
            "-A MESHWIRE_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN",
            "-A MESHWIRE_OUTPUT -d 10.231.9.0/24 -j RETURN",
            "-A MESHWIRE_OUTPUT -d 192.0.2.7/32 -j RETURN",
            "-A MESHWIRE_OUTPUT -p tcp -j REDIRECT --to-ports 15001",
            "-A MESHWIRE_INBOUND -p tcp -m tcp --dport 15001 -j RETURN",
            "-A MESHWIRE_INBOUND -p tcp -m tcp --dport 15003 -j RETURN",
            "-A MESHWIRE_INBOUND -p tcp -m tcp --dport 9090 -j RETURN",
            "-A MESHWIRE_INBOUND -p tcp -m tcp --dport 8443 -j RETURN",
            "-A MESHWIRE_INBOUND -p tcp -j REDIRECT --to-ports 15003",
        ];
        assert_eq!(r, expected);
    }

    #[test]
    fn scripts_add_missing_jumps_only_and_remove_everything() {
        let rules = vec!["-A MESHWIRE_OUTPUT -d 127.0.0.0/8 -j RETURN".to_string()];
        let fresh = install_script(&Found::default(), &rules);
        assert!(fresh.starts_with("*nat\n:MESHWIRE_OUTPUT - [0:0]\n:MESHWIRE_INBOUND - [0:0]\n"), "{fresh}");
        assert!(fresh.contains("-I OUTPUT 1 -p tcp -j MESHWIRE_OUTPUT\n") && fresh.contains("-I PREROUTING 1 -p tcp -j MESHWIRE_INBOUND\n"));
        assert!(fresh.ends_with("COMMIT\n"));
        let there = Found { chain_out: true, chain_in: true, jumps_out: 1, jumps_in: 1, rules: rules.clone() };
        let again = install_script(&there, &rules);
        assert!(!again.contains("-I "), "no second jump: {again}");
        assert_eq!(remove_script(&Found::default()), None);
        let twice = Found { jumps_out: 2, ..there };
        let rm = remove_script(&twice).unwrap();
        assert_eq!(rm.matches("-D OUTPUT -p tcp -j MESHWIRE_OUTPUT\n").count(), 2);
        for l in ["-D PREROUTING -p tcp -j MESHWIRE_INBOUND", "-X MESHWIRE_OUTPUT", "-X MESHWIRE_INBOUND", "-F MESHWIRE_OUTPUT"] {
            assert!(rm.contains(l), "{rm}");
        }
    }

    #[test]
    fn save_output_is_parsed() {
        let save = "# Generated by iptables-save v1.8.9 (nf_tables)\n*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                    :MESHWIRE_INBOUND - [0:0]\n:MESHWIRE_OUTPUT - [0:0]\n-A PREROUTING -p tcp -j MESHWIRE_INBOUND\n\
                    -A OUTPUT -p tcp -j MESHWIRE_OUTPUT\n-A OUTPUT -d 1.2.3.4/32 -j ACCEPT\n\
                    -A MESHWIRE_OUTPUT -p tcp -j REDIRECT --to-ports 15001\nCOMMIT\n";
        let f = parse_save(save);
        assert_eq!(
            f,
            Found { chain_out: true, chain_in: true, jumps_out: 1, jumps_in: 1, rules: vec!["-A MESHWIRE_OUTPUT -p tcp -j REDIRECT --to-ports 15001".into()] }
        );
    }

    /// A network namespace of the test's own (`ip netns add`), deleted on drop.
    struct TestNetns {
        name: String,
        path: PathBuf,
    }

    impl TestNetns {
        fn new(tag: &str) -> TestNetns {
            let name = format!("mwut{}-{tag}", std::process::id());
            let ok = Command::new("ip").args(["netns", "add", &name]).status().map(|s| s.success()).unwrap_or(false);
            assert!(ok, "ip netns add {name} failed (root and iproute2 needed)");
            TestNetns { path: PathBuf::from(format!("/run/netns/{name}")), name }
        }

        fn cookie(&self) -> u64 {
            system::netns_cookie(&self.path).unwrap()
        }

        fn nat(&self) -> String {
            let out = Command::new("ip").args(["netns", "exec", &self.name, "iptables-save", "-t", "nat"]).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    }

    impl Drop for TestNetns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        }
    }

    /// The machine's own nat table: it must be the same before and after.
    fn host_nat() -> String {
        let out = Command::new("iptables-save").args(["-t", "nat"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn apply_check_and_remove_in_a_real_namespace() {
        let host_before = host_nat();
        let ns = TestNetns::new("apply");
        let p = pod(&ns.path, ns.cookie());
        let n = node();
        apply(&n, &p).unwrap();
        apply(&n, &p).unwrap(); // idempotent
        let nat = ns.nat();
        assert_eq!(nat.matches("-A OUTPUT -p tcp -j MESHWIRE_OUTPUT").count(), 1, "{nat}");
        assert_eq!(nat.matches("-A PREROUTING -p tcp -j MESHWIRE_INBOUND").count(), 1, "{nat}");
        for r in chain_rules(&n, &p) {
            assert_eq!(nat.matches(&format!("{r}\n")).count(), 1, "{r} once in:\n{nat}");
        }
        check(&n, &p).unwrap();

        // A rule removed by hand is noticed, and a new apply brings it back.
        let del = Command::new("ip")
            .args(["netns", "exec", &ns.name, "iptables", "-t", "nat", "-D", CHAIN_OUT, "-p", "tcp", "-m", "tcp", "--dport", "5432", "-j", "RETURN"])
            .status()
            .unwrap();
        assert!(del.success());
        let e = check(&n, &p).unwrap_err();
        assert!(e.contains("--dport 5432"), "{e}");
        apply(&n, &p).unwrap();
        check(&n, &p).unwrap();

        // Other rules of the table are kept; ours go completely.
        let other = Command::new("ip").args(["netns", "exec", &ns.name, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", "192.0.2.1", "-j", "ACCEPT"]).status().unwrap();
        assert!(other.success());
        remove(&p).unwrap();
        remove(&p).unwrap(); // idempotent
        let nat = ns.nat();
        assert!(!nat.contains("MESHWIRE"), "{nat}");
        assert!(nat.contains("-A OUTPUT -d 192.0.2.1/32 -j ACCEPT"), "{nat}");
        assert!(check(&n, &p).unwrap_err().contains("no jump"));
        assert_eq!(host_nat(), host_before, "the machine's nat table changed");
    }

    #[test]
    fn the_host_namespace_is_refused_before_anything_runs() {
        let host_before = host_nat();
        let me = system::current_netns_cookie().unwrap();
        for path in ["/proc/self/ns/net", "/proc/1/ns/net"] {
            // PID 1's namespace may not be ours to open (then it is refused by cookie anyway).
            let Ok(cookie) = system::netns_cookie(Path::new(path)) else { continue };
            let p = pod(Path::new(path), cookie);
            let e = apply(&node(), &p).unwrap_err();
            assert!(e.contains("host"), "{path}: {e}");
        }
        // A record whose path now names the host's namespace: refused too.
        let ns = TestNetns::new("gone");
        let stale = pod(Path::new("/proc/self/ns/net"), ns.cookie());
        assert!(apply(&node(), &stale).unwrap_err().contains("host"));
        assert!(remove(&stale).unwrap_err().contains("host"));
        assert!(check(&node(), &stale).unwrap_err().contains("host"));
        // A path that now names another pod's namespace: left alone.
        let other = TestNetns::new("other");
        let moved = pod(&other.path, ns.cookie());
        assert!(apply(&node(), &moved).unwrap_err().contains("is gone"));
        remove(&moved).unwrap();
        assert!(!other.nat().contains("MESHWIRE"));
        assert!(me != 0);
        assert_eq!(host_nat(), host_before, "the machine's nat table changed");
    }

    #[test]
    fn a_child_outside_the_pod_namespace_refuses_to_run() {
        // Called from this thread (the host's namespace) with the test
        // namespace as the one expected: the child must not exec.
        let ns = TestNetns::new("child");
        let meta = std::fs::metadata(&ns.path).unwrap();
        let entered = Entered { dev: meta.dev(), ino: meta.ino() };
        let e = ipt(&entered, "iptables-restore", &["--noflush"], Some("*nat\n:MESHWIRE_OUTPUT - [0:0]\nCOMMIT\n")).unwrap_err();
        assert!(e.contains("refused"), "{e}");
        assert!(!host_nat().contains("MESHWIRE"));
    }

    #[test]
    fn a_namespace_that_is_gone_has_nothing_to_remove() {
        let ns = TestNetns::new("del");
        let p = pod(&ns.path, ns.cookie());
        apply(&node(), &p).unwrap();
        drop(ns);
        remove(&p).unwrap();
        assert!(check(&node(), &p).unwrap_err().contains("is gone"));
    }
}
