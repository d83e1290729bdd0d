//! run() against a fake loader: every command, every error path, and that
//! an error changes nothing (no loader call).

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::json;

use super::*;

type Answer = Result<Result<OpResult, ApiError>, Unreachable>;

/// Records each call; answers with `answer`.
struct Fake {
    calls: RefCell<Vec<(PathBuf, Op)>>,
    answer: Box<dyn Fn(&Op) -> Answer>,
}

impl Fake {
    fn new(answer: impl Fn(&Op) -> Answer + 'static) -> Fake {
        Fake { calls: RefCell::new(Vec::new()), answer: Box::new(answer) }
    }
    fn ok() -> Fake {
        Fake::new(|_| Ok(Ok(OpResult::default())))
    }
    fn err(code: ErrorCode) -> Fake {
        Fake::new(move |_| Ok(Err(ApiError { code, message: format!("{code:?} from the fake") })))
    }
    fn down() -> Fake {
        Fake::new(|_| Err(Unreachable("meshwire loader at /run/x.sock: connect: No such file or directory (os error 2)".into())))
    }
    fn ops(&self) -> Vec<Op> {
        self.calls.borrow().iter().map(|(_, op)| op.clone()).collect()
    }
}

impl Loader for Fake {
    fn call(&self, socket: &Path, _timeout: Duration, op: Op) -> Answer {
        self.calls.borrow_mut().push((socket.to_path_buf(), op.clone()));
        (self.answer)(&op)
    }
}

const NETNS: &str = "/proc/self/ns/net";

fn env(command: &str) -> RawEnv {
    RawEnv {
        command: Some(command.into()),
        container_id: Some("c0ffee".into()),
        netns: Some(NETNS.into()),
        ifname: Some("eth0".into()),
        args: Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-1;K8S_POD_INFRA_CONTAINER_ID=c0ffee".into()),
        path: Some("/opt/cni/bin".into()),
    }
}

fn prev(version: &str) -> Value {
    json!({
        "cniVersion": version,
        "interfaces": [
            {"name": "cni0", "mac": "aa:bb:cc:dd:ee:01"},
            {"name": "veth01", "mac": "aa:bb:cc:dd:ee:02"},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "sandbox": NETNS}
        ],
        "ips": [{"address": "10.22.0.5/16", "gateway": "10.22.0.1", "interface": 2}],
        "dns": {}
    })
}

fn conf(extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": "mesh-net", "type": "meshwire-cni", "loaderSocket": "/run/x.sock", "prevResult": prev("1.0.0")});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn run_with(env: &RawEnv, stdin: &str, loader: &dyn Loader) -> Outcome {
    let bytes = stdin.as_bytes().to_vec();
    run(env, &mut || Ok(bytes.clone()), loader)
}

/// The error object of a failed run, checked for the spec's shape.
fn error_of(out: &Outcome) -> (u32, String, String) {
    assert!(!out.success, "expected a failure: {out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("error object is JSON");
    assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    (v["code"].as_u64().unwrap() as u32, v["msg"].as_str().unwrap().to_string(), v["cniVersion"].as_str().unwrap().to_string())
}

fn added_spec(fake: &Fake) -> PodSpec {
    match fake.ops().as_slice() {
        [Op::AddPod { pod }] => pod.clone(),
        other => panic!("expected one add_pod, got {other:?}"),
    }
}

#[test]
fn add_meshes_the_pod_and_hands_prev_result_back_byte_for_byte() {
    let fake = Fake::ok();
    let prev_text = "{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":\"/proc/self/ns/net\"}],  \"ips\":[{\"address\":\"10.22.0.5/16\",\"interface\":0}],\"zz\":{\"b\":1,\"a\":2}}";
    let stdin = format!(
        "{{\"cniVersion\":\"1.0.0\",\"name\":\"mesh-net\",\"type\":\"meshwire-cni\",\"loaderSocket\":\"/run/x.sock\",\
         \"excludeOutboundPorts\":[22],\"excludeOutboundCIDRs\":[\"10.96.0.0/12\",\"fd00:96::/64\"],\"excludeInboundPorts\":[9090],\"prevResult\":{prev_text}}}"
    );
    let out = run_with(&env("ADD"), &stdin, &fake);
    assert!(out.success, "{out:?}");
    assert_eq!(out.stdout, prev_text);
    assert_eq!(fake.calls.borrow()[0].0, PathBuf::from("/run/x.sock"));
    let spec = added_spec(&fake);
    assert_eq!(
        spec,
        // The fixture's interface, exclusions and network are those of the
        // configuration above.
        PodSpec {
            netns: NETNS.into(),
            ips: vec![Ipv4Addr::new(10, 22, 0, 5)],
            namespace: Some("shop".into()),
            name: Some("cart-1".into()),
            ..meshwire_api::testing::pod("c0ffee")
        }
    );
}

#[test]
fn add_in_every_supported_version() {
    for v in SUPPORTED_VERSIONS {
        let fake = Fake::ok();
        let mut p = prev(v);
        if v.starts_with("0.") {
            p["ips"][0]["version"] = "4".into();
        }
        let out = run_with(&env("ADD"), &conf(json!({"cniVersion": v, "prevResult": p})).to_string(), &fake);
        assert!(out.success, "{v}: {out:?}");
        assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), p, "{v}");
        assert_eq!(added_spec(&fake).ips, vec![Ipv4Addr::new(10, 22, 0, 5)], "{v}");
    }
}

#[test]
fn per_pod_overrides_reach_the_loader() {
    let fake = Fake::ok();
    let c = conf(json!({
        "excludeOutboundPorts": [22],
        "args": {"cni": {"meshwire": {"excludeOutboundCIDRs": ["192.0.2.0/24"]}}},
        "runtimeConfig": {"meshwire": {"excludeOutboundPorts": [5432, 6379]}},
    }));
    assert!(run_with(&env("ADD"), &c.to_string(), &fake).success);
    let spec = added_spec(&fake);
    assert_eq!(spec.exclude_outbound_ports, vec![5432, 6379]);
    assert_eq!(spec.exclude_outbound_cidrs, vec!["192.0.2.0/24".parse().unwrap()]);
    assert_eq!(spec.exclude_inbound_ports, Vec::<u16>::new());
}

#[test]
fn boolean_settings_pod_over_network_over_the_node() {
    let settings: [(&str, fn(&PodSpec) -> Option<bool>); 2] = [("accelerate", |s| s.accelerate), ("dnsCapture", |s| s.dns_capture)];
    for (key, of) in settings {
        let net = |v: bool| json!({ key: v });
        let args = |v: bool| json!({"cni": {"meshwire": { key: v }}});
        let runtime = |v: bool| json!({"meshwire": { key: v }});
        let with = |base: serde_json::Value, more: &[(&str, serde_json::Value)]| {
            let mut o = base;
            for (k, v) in more {
                o[*k] = v.clone();
            }
            o
        };
        let cases = [
            (json!({}), None),
            (net(true), Some(true)),
            (net(false), Some(false)),
            (json!({"args": args(true)}), Some(true)),
            (json!({"runtimeConfig": runtime(false)}), Some(false)),
            (with(net(true), &[("args", args(false))]), Some(false)),
            (with(net(false), &[("runtimeConfig", runtime(true))]), Some(true)),
            (with(net(false), &[("args", args(false)), ("runtimeConfig", runtime(true))]), Some(true)),
            (json!({"args": args(true), "runtimeConfig": runtime(false)}), Some(false)),
            // A per-pod block without the key keeps the network's value.
            (with(net(true), &[("runtimeConfig", json!({"meshwire": {"excludeInboundPorts": [9090]}}))]), Some(true)),
        ];
        for (extra, want) in cases {
            let fake = Fake::ok();
            let out = run_with(&env("ADD"), &conf(extra.clone()).to_string(), &fake);
            assert!(out.success, "{extra}: {out:?}");
            assert_eq!(of(&added_spec(&fake)), want, "{extra}");
        }
    }
}

#[test]
fn pods_that_are_not_meshed_get_prev_result_and_no_loader_call() {
    let cases = [
        json!({"namespaces": {"exclude": ["shop"]}}),
        json!({"namespaces": {"include": ["pay"]}}),
        json!({"runtimeConfig": {"meshwire": {"mesh": false}}}),
        json!({"args": {"cni": {"meshwire": {"mesh": false}}}}),
    ];
    for extra in cases {
        let fake = Fake::down();
        let out = run_with(&env("ADD"), &conf(extra.clone()).to_string(), &fake);
        assert!(out.success, "{extra}: {out:?}");
        assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), prev("1.0.0"));
        assert!(fake.ops().is_empty(), "{extra}");
        assert!(out.notes[0].contains("pod shop/cart-1 (container c0ffee) is not meshed"), "{:?}", out.notes);
        // CHECK of such a pod passes without the loader too.
        let out = run_with(&env("CHECK"), &conf(extra.clone()).to_string(), &fake);
        assert!(out.success && out.stdout.is_empty(), "{extra}: {out:?}");
        assert!(fake.ops().is_empty());
    }
    // Without K8S_POD_NAMESPACE and with an include list: not meshed.
    let mut e = env("ADD");
    e.args = None;
    let fake = Fake::ok();
    assert!(run_with(&e, &conf(json!({"namespaces": {"include": ["shop"]}})).to_string(), &fake).success);
    assert!(fake.ops().is_empty());
}

#[test]
fn add_fails_closed_by_default_when_the_loader_is_unavailable() {
    for fake in [Fake::down(), Fake::err(ErrorCode::TryAgain)] {
        let out = run_with(&env("ADD"), &conf(json!({})).to_string(), &fake);
        let (code, msg, version) = error_of(&out);
        assert_eq!(code, code::TRY_AGAIN);
        assert_eq!(version, "1.0.0");
        assert!(msg.contains("pod shop/cart-1 (container c0ffee) is not started") && msg.contains("failPolicy \"closed\""), "{msg}");
    }
}

#[test]
fn add_fails_open_when_configured() {
    for fake in [Fake::down(), Fake::err(ErrorCode::TryAgain)] {
        let out = run_with(&env("ADD"), &conf(json!({"failPolicy": "open"})).to_string(), &fake);
        assert!(out.success, "{out:?}");
        assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), prev("1.0.0"));
        assert!(out.notes.iter().any(|n| n.contains("UN-MESHED")), "{:?}", out.notes);
    }
    // A loader that answers and refuses is an error under either policy.
    let out = run_with(&env("ADD"), &conf(json!({"failPolicy": "open"})).to_string(), &Fake::err(ErrorCode::InvalidRequest));
    let (code, msg, _) = error_of(&out);
    assert_eq!(code, code::LOADER_REFUSED);
    assert!(msg.contains("refused to mesh pod shop/cart-1"), "{msg}");
}

#[test]
fn add_of_an_ipv6_only_pod_records_its_ipv6_address() {
    let fake = Fake::ok();
    let p = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": NETNS}], "ips": [{"address": "fd00::5/64", "interface": 0}]});
    let out = run_with(&env("ADD"), &conf(json!({"prevResult": p})).to_string(), &fake);
    assert!(out.success);
    assert_eq!(added_spec(&fake).ips, Vec::<Ipv4Addr>::new());
    assert_eq!(added_spec(&fake).ips6, vec!["fd00::5".parse::<std::net::Ipv6Addr>().unwrap()]);
    assert!(!out.notes.iter().any(|n| n.contains("no IP address")), "{:?}", out.notes);
}

#[test]
fn add_without_addresses_meshes_outbound_only() {
    let fake = Fake::ok();
    let p = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": NETNS}], "ips": []});
    let out = run_with(&env("ADD"), &conf(json!({"prevResult": p})).to_string(), &fake);
    assert!(out.success);
    assert_eq!((added_spec(&fake).ips.len(), added_spec(&fake).ips6.len()), (0, 0));
    assert!(out.notes.iter().any(|n| n.contains("no IP address for eth0")), "{:?}", out.notes);
}

/// Each bad input: its code, a message naming the problem, and no loader call.
#[test]
fn add_errors_change_nothing() {
    let good = conf(json!({})).to_string();
    let with_env = |f: &dyn Fn(&mut RawEnv)| {
        let mut e = env("ADD");
        f(&mut e);
        e
    };
    let cases: Vec<(RawEnv, String, u32, &str)> = vec![
        (env("ADD"), "{\"cniVersion\":".into(), code::DECODE, "not valid JSON"),
        (env("ADD"), "[]".into(), code::DECODE, "must be a JSON object"),
        (env("ADD"), "".into(), code::DECODE, "no network configuration"),
        (env("ADD"), conf(json!({"cniVersion": "0.2.0"})).to_string(), code::INCOMPATIBLE_VERSION, "\"0.2.0\" is not supported"),
        (env("ADD"), conf(json!({"name": null})).to_string(), code::INVALID_CONFIG, "no \"name\""),
        (env("ADD"), conf(json!({"prevResult": null})).to_string(), code::INVALID_CONFIG, "ADD without prevResult"),
        (env("ADD"), conf(json!({"failPolicy": "maybe"})).to_string(), code::INVALID_CONFIG, "failPolicy \"maybe\""),
        (env("ADD"), conf(json!({"loaderSockett": "/x"})).to_string(), code::UNSUPPORTED_FIELD, "\"loaderSockett\""),
        (env("ADD"), conf(json!({"accelerate": "yes"})).to_string(), code::INVALID_CONFIG, "accelerate must be true or false, not a string"),
        (
            env("ADD"),
            conf(json!({"runtimeConfig": {"meshwire": {"accelerate": "yes"}}})).to_string(),
            code::INVALID_CONFIG,
            "runtimeConfig.meshwire.accelerate must be true or false, not a string",
        ),
        (
            env("ADD"),
            conf(json!({"args": {"cni": {"meshwire": {"accelerate": 1}}}})).to_string(),
            code::INVALID_CONFIG,
            "args.cni.meshwire.accelerate must be true or false, not a number",
        ),
        (env("ADD"), conf(json!({"prevResult": {"ips": [{"address": "nope"}]}})).to_string(), code::INVALID_CONFIG, "prevResult.ips[0].address"),
        (with_env(&|e| e.netns = None), good.clone(), code::INVALID_ENV, "ADD needs CNI_NETNS"),
        (with_env(&|e| e.container_id = None), good.clone(), code::INVALID_ENV, "CNI_CONTAINERID"),
        (with_env(&|e| e.ifname = Some("way-too-long-name".into())), good.clone(), code::INVALID_ENV, "CNI_IFNAME"),
        (with_env(&|e| e.args = Some("K8S_POD_NAMESPACE".into())), good.clone(), code::INVALID_ENV, "CNI_ARGS"),
        (with_env(&|e| e.netns = Some("/var/run/netns/meshwire-test-absent".into())), good.clone(), code::UNKNOWN_CONTAINER, "does not exist"),
        (with_env(&|e| e.netns = Some("/proc/self/status".into())), good.clone(), code::INVALID_ENV, "is not a namespace file"),
        (with_env(&|e| e.netns = Some("/proc/self/ns/uts".into())), good.clone(), code::INVALID_ENV, "not a network namespace"),
    ];
    for (e, stdin, want_code, want_msg) in cases {
        let fake = Fake::ok();
        let out = run_with(&e, &stdin, &fake);
        let (code, msg, _) = error_of(&out);
        assert_eq!(code, want_code, "{stdin}: {msg}");
        assert!(msg.contains(want_msg), "{msg} (wanted {want_msg:?})");
        assert!(fake.ops().is_empty(), "{msg}: the loader was called");
    }
}

#[test]
fn command_and_stdin_errors() {
    let fake = Fake::ok();
    let mut read = false;
    let out = run(&RawEnv::default(), &mut || {
        read = true;
        Ok(Vec::new())
    }, &fake);
    assert_eq!(error_of(&out).0, code::INVALID_ENV);
    assert!(!read, "stdin is not read without CNI_COMMAND");
    let out = run_with(&env("EXPLODE"), "{}", &fake);
    let (code, msg, version) = error_of(&out);
    assert_eq!((code, version.as_str()), (code::INVALID_ENV, LATEST_VERSION));
    assert!(msg.contains("unknown CNI_COMMAND \"EXPLODE\""), "{msg}");
    let out = run(&env("ADD"), &mut || Err(io::Error::other("boom")), &fake);
    assert_eq!(error_of(&out).0, code::IO);
    let out = run(&env("ADD"), &mut || Ok(vec![0xff, 0xfe]), &fake);
    assert_eq!(error_of(&out).0, code::DECODE);
    assert!(fake.ops().is_empty());
}

#[test]
fn commands_newer_than_the_configuration_s_version() {
    for (cmd, version) in [("CHECK", "0.3.1"), ("GC", "1.0.0"), ("STATUS", "0.4.0")] {
        let fake = Fake::ok();
        let out = run_with(&env(cmd), &conf(json!({"cniVersion": version, "cni.dev/valid-attachments": []})).to_string(), &fake);
        let (code, msg, v) = error_of(&out);
        assert_eq!(code, code::INCOMPATIBLE_VERSION, "{cmd}");
        assert_eq!(v, version);
        assert!(msg.contains(&format!("{cmd} needs cniVersion")), "{msg}");
        assert!(fake.ops().is_empty());
    }
}

#[test]
fn version_echoes_the_request() {
    let fake = Fake::ok();
    for (stdin, want) in [("{\"cniVersion\":\"0.4.0\"}", "0.4.0"), ("{\"cniVersion\":\"1.1.0\"}", "1.1.0"), ("", "1.1.0"), ("{}", "1.1.0"), ("{\"cniVersion\":\"9.9.9\"}", "1.1.0")] {
        let out = run_with(&env("VERSION"), stdin, &fake);
        assert!(out.success, "{out:?}");
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v, json!({"cniVersion": want, "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}), "{stdin}");
    }
    assert_eq!(error_of(&run_with(&env("VERSION"), "{", &fake)).0, code::DECODE);
    assert!(fake.ops().is_empty());
}

#[test]
fn del_is_idempotent() {
    let c = conf(json!({})).to_string();
    let fake = Fake::ok();
    let out = run_with(&env("DEL"), &c, &fake);
    assert!(out.success && out.stdout.is_empty(), "{out:?}");
    assert_eq!(fake.ops(), vec![Op::DelPod { container_id: "c0ffee".into(), ifname: Some("eth0".into()) }]);
    // The pod is unknown; the netns is gone; no netns nor prevResult given.
    let mut gone = env("DEL");
    gone.netns = Some("/var/run/netns/meshwire-test-absent".into());
    let mut bare = env("DEL");
    bare.netns = None;
    for e in [&env("DEL"), &gone, &bare] {
        let out = run_with(e, &conf(json!({"prevResult": null})).to_string(), &Fake::err(ErrorCode::NotFound));
        assert!(out.success && out.stdout.is_empty(), "{out:?}");
    }
    // The loader is down or starting: success, with a note.
    for fake in [Fake::down(), Fake::err(ErrorCode::TryAgain)] {
        let out = run_with(&env("DEL"), &c, &fake);
        assert!(out.success, "{out:?}");
        assert!(out.notes[0].contains("succeeding"), "{:?}", out.notes);
    }
    // A real refusal is an error.
    assert_eq!(error_of(&run_with(&env("DEL"), &c, &Fake::err(ErrorCode::Internal))).0, code::LOADER_REFUSED);
    // Excluded namespaces are still deleted (the lists may have changed since ADD).
    let fake = Fake::ok();
    assert!(run_with(&env("DEL"), &conf(json!({"namespaces": {"exclude": ["shop"]}})).to_string(), &fake).success);
    assert_eq!(fake.ops().len(), 1);
    // DEL still validates its environment.
    let mut e = env("DEL");
    e.container_id = None;
    assert_eq!(error_of(&run_with(&e, &c, &Fake::ok())).0, code::INVALID_ENV);
}

fn record(ips: Vec<Ipv4Addr>, netns: &str) -> OpResult {
    let mut pod = meshwire_api::testing::record("c0ffee", 1);
    pod.spec.ips = ips;
    pod.spec.netns = netns.into();
    OpResult { pod: Some(pod), ..Default::default() }
}

#[test]
fn check() {
    let c = conf(json!({})).to_string();
    let ok = Fake::new(|_| Ok(Ok(record(vec![Ipv4Addr::new(10, 22, 0, 5)], NETNS))));
    let out = run_with(&env("CHECK"), &c, &ok);
    assert!(out.success && out.stdout.is_empty(), "{out:?}");
    assert_eq!(ok.ops(), vec![Op::CheckPod { container_id: "c0ffee".into(), ifname: Some("eth0".into()) }]);
    // A bare ok (no record in the answer) passes too.
    assert!(run_with(&env("CHECK"), &c, &Fake::ok()).success);
    // The loader's record disagrees with prevResult.
    let wrong = Fake::new(|_| Ok(Ok(record(vec![Ipv4Addr::new(10, 22, 0, 6)], NETNS))));
    let (code, msg, _) = error_of(&run_with(&env("CHECK"), &c, &wrong));
    assert_eq!(code, code::CHECK_FAILED);
    assert!(msg.contains("10.22.0.6") && msg.contains("prevResult says"), "{msg}");
    // ... or meshes it in another network namespace, or on another interface.
    let elsewhere = Fake::new(|_| Ok(Ok(record(vec![Ipv4Addr::new(10, 22, 0, 5)], "/var/run/netns/other"))));
    let (code, msg, _) = error_of(&run_with(&env("CHECK"), &c, &elsewhere));
    assert_eq!(code, code::CHECK_FAILED);
    assert!(msg.contains("/var/run/netns/other") && msg.contains("prevResult says"), "{msg}");
    let other_if = Fake::new(|_| {
        let mut r = record(vec![Ipv4Addr::new(10, 22, 0, 5)], NETNS);
        r.pod.as_mut().unwrap().spec.ifname = "net1".into();
        Ok(Ok(r))
    });
    let (code, msg, _) = error_of(&run_with(&env("CHECK"), &c, &other_if));
    assert_eq!(code, code::CHECK_FAILED);
    assert!(msg.contains("as net1 in"), "{msg}");
    for e in [ErrorCode::NotFound, ErrorCode::Inconsistent] {
        assert_eq!(error_of(&run_with(&env("CHECK"), &c, &Fake::err(e))).0, code::CHECK_FAILED);
    }
    assert_eq!(error_of(&run_with(&env("CHECK"), &c, &Fake::down())).0, code::TRY_AGAIN);
    assert_eq!(error_of(&run_with(&env("CHECK"), &c, &Fake::err(ErrorCode::Internal))).0, code::LOADER_REFUSED);
    // failPolicy open: a pod the loader never got (or cannot be asked about) passes.
    let open = conf(json!({"failPolicy": "open"})).to_string();
    assert!(run_with(&env("CHECK"), &open, &Fake::err(ErrorCode::NotFound)).success);
    assert!(run_with(&env("CHECK"), &open, &Fake::down()).success);
    assert_eq!(error_of(&run_with(&env("CHECK"), &open, &Fake::err(ErrorCode::Inconsistent))).0, code::CHECK_FAILED);
    // CHECK needs prevResult and an existing netns.
    assert_eq!(error_of(&run_with(&env("CHECK"), &conf(json!({"prevResult": null})).to_string(), &Fake::ok())).0, code::INVALID_CONFIG);
    let mut gone = env("CHECK");
    gone.netns = Some("/var/run/netns/meshwire-test-absent".into());
    assert_eq!(error_of(&run_with(&gone, &c, &Fake::ok())).0, code::UNKNOWN_CONTAINER);
}

fn pods(list: &[(&str, &str)]) -> OpResult {
    let pods = list
        .iter()
        .map(|(id, ifname)| {
            let mut r = record(vec![], NETNS).pod.unwrap();
            r.spec.container_id = id.to_string();
            r.spec.ifname = ifname.to_string();
            r
        })
        .collect();
    OpResult { pods: Some(pods), ..Default::default() }
}

#[test]
fn gc_deletes_what_is_not_valid() {
    let gc_conf = |valid: Value| json!({"cniVersion": "1.1.0", "name": "mesh-net", "type": "meshwire-cni", "cni.dev/valid-attachments": valid}).to_string();
    let fake = Fake::new(|op| match op {
        Op::ListPods => Ok(Ok(pods(&[("keep", "eth0"), ("stale", "eth0"), ("keep", "net1")]))),
        _ => Ok(Ok(OpResult::default())),
    });
    let mut e = RawEnv { command: Some("GC".into()), path: Some("/opt/cni/bin".into()), ..Default::default() };
    let out = run_with(&e, &gc_conf(json!([{"containerID": "keep", "ifname": "eth0"}])), &fake);
    assert!(out.success && out.stdout.is_empty(), "{out:?}");
    assert_eq!(
        fake.ops(),
        vec![Op::ListPods, Op::DelPod { container_id: "stale".into(), ifname: Some("eth0".into()) }, Op::DelPod { container_id: "keep".into(), ifname: Some("net1".into()) }]
    );
    // Pods of another network and pods registered by hand are not this GC's.
    let fake = Fake::new(|op| match op {
        Op::ListPods => {
            let mut r = pods(&[("other-net", "eth0"), ("by-hand", "eth0"), ("mine", "eth0")]);
            let list = r.pods.as_mut().unwrap();
            list[0].spec.network = Some("another-net".into());
            list[1].spec.network = None;
            Ok(Ok(r))
        }
        _ => Ok(Ok(OpResult::default())),
    });
    let out = run_with(&e, &gc_conf(json!([])), &fake);
    assert!(out.success, "{out:?}");
    assert_eq!(fake.ops(), vec![Op::ListPods, Op::DelPod { container_id: "mine".into(), ifname: Some("eth0".into()) }]);
    // Without the list nothing is deleted.
    let fake = Fake::ok();
    e.path = None;
    let bare = json!({"cniVersion": "1.1.0", "name": "mesh-net", "type": "meshwire-cni"}).to_string();
    let (code, msg, _) = error_of(&run_with(&e, &bare, &fake));
    assert_eq!(code, code::INVALID_CONFIG);
    assert!(msg.contains("cni.dev/valid-attachments"), "{msg}");
    assert!(fake.ops().is_empty());
    // Loader down: try again later.
    assert_eq!(error_of(&run_with(&e, &gc_conf(json!([])), &Fake::down())).0, code::TRY_AGAIN);
    // One deletion fails: the others are still tried, the error names it.
    let fake = Fake::new(|op| match op {
        Op::ListPods => Ok(Ok(pods(&[("a", "eth0"), ("b", "eth0")]))),
        Op::DelPod { container_id, .. } if container_id == "a" => Ok(Err(ApiError { code: ErrorCode::Internal, message: "tc says no".into() })),
        _ => Ok(Ok(OpResult::default())),
    });
    let out = run_with(&e, &gc_conf(json!([])), &fake);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["code"], code::LOADER_REFUSED);
    assert!(v["details"].as_str().unwrap().contains("a: tc says no"), "{v}");
    assert_eq!(fake.ops().len(), 3);
    // A pod gone meanwhile (its DEL came between the list and GC's delete) is no failure.
    let fake = Fake::new(|op| match op {
        Op::ListPods => Ok(Ok(pods(&[("gone", "eth0"), ("b", "eth0")]))),
        Op::DelPod { container_id, .. } if container_id == "gone" => Ok(Err(ApiError { code: ErrorCode::NotFound, message: "no pod gone".into() })),
        _ => Ok(Ok(OpResult::default())),
    });
    let out = run_with(&e, &gc_conf(json!([])), &fake);
    assert!(out.success && out.stdout.is_empty(), "{out:?}");
    assert_eq!(fake.ops().len(), 3);
}

#[test]
fn status() {
    let e = RawEnv { command: Some("STATUS".into()), ..Default::default() };
    let c = json!({"cniVersion": "1.1.0", "name": "mesh-net", "type": "meshwire-cni"}).to_string();
    let fake = Fake::ok();
    let out = run_with(&e, &c, &fake);
    assert!(out.success && out.stdout.is_empty(), "{out:?}");
    assert_eq!(fake.ops(), vec![Op::Status]);
    for fake in [Fake::down(), Fake::err(ErrorCode::TryAgain)] {
        let (code, msg, v) = error_of(&run_with(&e, &c, &fake));
        assert_eq!((code, v.as_str()), (code::NOT_AVAILABLE, "1.1.0"));
        assert!(msg.contains("cannot mesh pods"), "{msg}");
    }
    let open = json!({"cniVersion": "1.1.0", "name": "mesh-net", "type": "meshwire-cni", "failPolicy": "open"}).to_string();
    let out = run_with(&e, &open, &Fake::down());
    assert!(out.success, "{out:?}");
    assert!(out.notes[0].contains("un-meshed"), "{:?}", out.notes);
}

/// A configuration whose runtimeConfig carries the pod's annotations, as
/// containerd passes them to a plugin with the capability.
fn annotated(annotations: Value, extra: Value) -> String {
    let mut c = conf(extra);
    c["capabilities"] = json!({"io.kubernetes.cri.pod-annotations": true});
    c["runtimeConfig"] = json!({"io.kubernetes.cri.pod-annotations": annotations});
    c.to_string()
}

#[test]
fn annotations_decide_which_pods_have_a_sidecar() {
    let istio = json!({"sidecar.istio.io/status": "{\"containers\":[\"istio-proxy\"]}"});
    for (annotations, extra, meshed, says) in [
        (istio.clone(), json!({}), true, "the pod's annotations decide: annotation sidecar.istio.io/status is set"),
        (json!({"meshwire.io/mesh": "true"}), json!({}), true, "annotation meshwire.io/mesh: \"true\""),
        (json!({}), json!({}), false, "no annotation says it has a sidecar"),
        // containerd passes null for a pod without annotations.
        (Value::Null, json!({}), false, "no annotation says it has a sidecar"),
        (json!({"sidecar.istio.io/status": "{}", "sidecar.istio.io/inject": "false"}), json!({}), false, "sidecar.istio.io/inject: \"false\""),
        (json!({"sidecar.istio.io/status": "{}", "meshwire.io/mesh": "false"}), json!({}), false, "meshwire.io/mesh: \"false\""),
        // Annotations decide over namespaces.include; namespaces.exclude always wins.
        (json!({"meshwire.io/mesh": "true"}), json!({"namespaces": {"include": ["pay"]}}), true, "annotations decide"),
        (json!({"meshwire.io/mesh": "true"}), json!({"namespaces": {"exclude": ["shop"]}}), false, "namespace \"shop\" is in namespaces.exclude"),
        // Configured matchers.
        (json!({"example.com/proxy": "v1"}), json!({"sidecarAnnotations": ["example.com/proxy"]}), true, "annotation example.com/proxy is set"),
        (istio.clone(), json!({"sidecarAnnotations": ["example.com/proxy"]}), false, "sidecarAnnotations: example.com/proxy"),
        (json!({"meshwire.io/mesh": "true", "batch": "yes"}), json!({"noSidecarAnnotations": ["batch=yes"]}), false, "annotation batch: \"yes\""),
        // sidecarAnnotations empty: the namespace lists decide, opt-outs still count.
        (json!({}), json!({"sidecarAnnotations": []}), true, "the namespace lists decide (sidecarAnnotations is empty)"),
        (json!({}), json!({"sidecarAnnotations": [], "namespaces": {"include": ["pay"]}}), false, "sidecarAnnotations is empty): namespace \"shop\" is not in"),
        (json!({"meshwire.io/mesh": "false"}), json!({"sidecarAnnotations": []}), false, "meshwire.io/mesh: \"false\""),
    ] {
        let fake = Fake::ok();
        let stdin = annotated(annotations.clone(), extra.clone());
        let out = run_with(&env("ADD"), &stdin, &fake);
        assert!(out.success, "{annotations} {extra}: {out:?}");
        assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), prev("1.0.0"));
        assert_eq!(fake.ops().len(), meshed as usize, "{annotations} {extra}: {:?}", fake.ops());
        let want = if meshed { "is meshed (eth0): " } else { "is not meshed: " };
        assert!(out.notes.iter().any(|n| n.contains(want) && n.contains(says)), "{annotations} {extra}: {:?}", out.notes);
        // CHECK decides the same way: a pod passed through is not asked about.
        let fake = Fake::ok();
        assert!(run_with(&env("CHECK"), &stdin, &fake).success);
        assert_eq!(fake.ops().len(), meshed as usize, "CHECK {annotations} {extra}");
    }
    // No annotations passed (podman, an older CRI-O): the namespace lists, and stderr says so.
    let fake = Fake::ok();
    let out = run_with(&env("ADD"), &conf(json!({})).to_string(), &fake);
    assert_eq!(fake.ops().len(), 1);
    assert!(out.notes.iter().any(|n| n.contains("the namespace lists decide (the runtime passed no pod annotations)")), "{:?}", out.notes);
}

#[test]
fn annotated_settings_reach_the_loader() {
    let fake = Fake::ok();
    let stdin = annotated(
        json!({
            "sidecar.istio.io/status": "{}",
            "traffic.sidecar.istio.io/excludeOutboundPorts": "5432",
            "traffic.sidecar.istio.io/excludeOutboundIPRanges": "169.254.169.254/32",
            "traffic.sidecar.istio.io/excludeInboundPorts": "15020,15021",
            "traffic.sidecar.istio.io/includeOutboundIPRanges": "10.96.0.0/12,fd00:96::/112",
            "traffic.sidecar.istio.io/includeOutboundPorts": "443",
            "traffic.sidecar.istio.io/includeInboundPorts": "8080",
            "meshwire.io/accelerate": "false",
            "meshwire.io/dns-capture": "true",
        }),
        json!({"excludeOutboundPorts": [22], "excludeOutboundCIDRs": ["10.0.0.0/8"], "dnsCapture": false}),
    );
    assert!(run_with(&env("ADD"), &stdin, &fake).success);
    let spec = added_spec(&fake);
    assert_eq!(spec.exclude_outbound_ports, vec![5432], "the pod's list replaces the network's");
    assert_eq!(spec.exclude_outbound_cidrs, vec!["169.254.169.254/32".parse().unwrap()]);
    assert_eq!(spec.exclude_inbound_ports, vec![15020, 15021]);
    assert_eq!(spec.include_outbound_cidrs, Some(vec!["10.96.0.0/12".parse().unwrap()]));
    assert_eq!(spec.include_outbound_cidrs6, vec!["fd00:96::/112".parse().unwrap()], "the list's IPv6 ranges, split off");
    assert_eq!(spec.include_outbound_ports, vec![443]);
    assert_eq!(spec.include_inbound_ports, Some(vec![8080]));
    assert_eq!(spec.accelerate, Some(false));
    assert_eq!(spec.dns_capture, Some(true), "the pod's annotation over the network's dnsCapture");

    // Not annotated: the network's lists, everything steered.
    let fake = Fake::ok();
    let stdin = annotated(json!({"meshwire.io/mesh": "true"}), json!({"excludeOutboundPorts": [22]}));
    assert!(run_with(&env("ADD"), &stdin, &fake).success);
    let spec = added_spec(&fake);
    assert_eq!(spec.exclude_outbound_ports, vec![22]);
    assert_eq!((spec.include_outbound_cidrs, spec.include_outbound_ports, spec.include_inbound_ports), (None, vec![], None));
    assert_eq!(spec.include_outbound_cidrs6, vec![]);

    // IPv6 ranges only: IPv4 restricted to none of its addresses, IPv6 to the range; "*" ports: all of both.
    for (ports, out_cidrs, out_cidrs6) in [("80", Some(vec![]), vec!["fd00:50::/32".parse().unwrap()]), ("*", None, vec![])] {
        let fake = Fake::ok();
        let a = json!({"meshwire.io/mesh": "true", "meshwire.io/include-outbound-cidrs": "fd00:50::/32", "meshwire.io/include-outbound-ports": ports});
        assert!(run_with(&env("ADD"), &annotated(a, json!({})), &fake).success);
        let spec = added_spec(&fake);
        assert_eq!((spec.include_outbound_cidrs, spec.include_outbound_cidrs6), (out_cidrs, out_cidrs6), "ports {ports}");
    }

    // "*" for the ranges, or for the ports: all of it; "" for inbound: none.
    for (annotations, out_cidrs, out_ports, inbound) in [
        (json!({"traffic.sidecar.istio.io/includeOutboundIPRanges": "*", "traffic.sidecar.istio.io/includeOutboundPorts": "443"}), None, vec![], None),
        (json!({"traffic.sidecar.istio.io/includeOutboundIPRanges": "", "traffic.sidecar.istio.io/includeOutboundPorts": "*"}), None, vec![], None),
        (json!({"traffic.sidecar.istio.io/includeOutboundIPRanges": "", "traffic.sidecar.istio.io/includeOutboundPorts": "80"}), Some(vec![]), vec![80], None),
        (json!({"traffic.sidecar.istio.io/includeInboundPorts": ""}), None, vec![], Some(vec![])),
        (json!({"traffic.sidecar.istio.io/includeInboundPorts": "*"}), None, vec![], None),
    ] {
        let mut a = annotations.clone();
        a["meshwire.io/mesh"] = "true".into();
        let fake = Fake::ok();
        assert!(run_with(&env("ADD"), &annotated(a, json!({})), &fake).success);
        let spec = added_spec(&fake);
        assert_eq!((spec.include_outbound_cidrs, spec.include_outbound_ports, spec.include_inbound_ports), (out_cidrs, out_ports, inbound), "{annotations}");
    }

    // runtimeConfig.meshwire still wins over the annotations.
    let fake = Fake::ok();
    let mut c: Value = serde_json::from_str(&annotated(json!({"meshwire.io/mesh": "true", "meshwire.io/exclude-outbound-ports": "1"}), json!({}))).unwrap();
    c["runtimeConfig"]["meshwire"] = json!({"excludeOutboundPorts": [2]});
    assert!(run_with(&env("ADD"), &c.to_string(), &fake).success);
    assert_eq!(added_spec(&fake).exclude_outbound_ports, vec![2]);
}

#[test]
fn a_malformed_annotation_refuses_the_pod_and_registers_nothing() {
    for (key, value) in [
        ("traffic.sidecar.istio.io/excludeOutboundPorts", "80,http"),
        ("traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.0/40"),
        ("traffic.sidecar.istio.io/includeOutboundIPRanges", "10.96.0.0/12,fd00:96::/200"),
        ("traffic.sidecar.istio.io/includeInboundPorts", "0"),
        ("meshwire.io/mesh", "yes"),
    ] {
        let mut a = json!({"sidecar.istio.io/status": "{}"});
        a[key] = value.into();
        let fake = Fake::ok();
        let (code, msg, _) = error_of(&run_with(&env("ADD"), &annotated(a, json!({})), &fake));
        assert_eq!(code, code::INVALID_CONFIG, "{key}");
        assert!(msg.contains(key) && msg.contains(&format!("{value:?}")), "{msg}");
        assert!(fake.ops().is_empty(), "{key}: nothing registered");
    }
    // A pod that is not meshed is not refused for settings it does not use.
    let fake = Fake::ok();
    let a = json!({"traffic.sidecar.istio.io/excludeOutboundPorts": "junk"});
    assert!(run_with(&env("ADD"), &annotated(a, json!({})), &fake).success);
    assert!(fake.ops().is_empty());
    // Annotations that are not strings, or bad matchers in the configuration.
    let (code, msg, _) = error_of(&run_with(&env("ADD"), &annotated(json!({"a": 1}), json!({})), &Fake::ok()));
    assert_eq!(code, code::INVALID_CONFIG);
    assert!(msg.contains("io.kubernetes.cri.pod-annotations"), "{msg}");
    let (code, msg, _) = error_of(&run_with(&env("ADD"), &annotated(json!({}), json!({"sidecarAnnotations": ["a/b/c"]})), &Fake::ok()));
    assert_eq!(code, code::INVALID_CONFIG);
    assert!(msg.contains("sidecarAnnotations[0]"), "{msg}");
}

#[test]
fn del_and_check_name_the_attachment_and_fall_back_for_an_older_loader() {
    let old = Fake::new(|op| match op {
        Op::DelPod { ifname: Some(_), .. } | Op::CheckPod { ifname: Some(_), .. } => Ok(Err(ApiError {
            code: ErrorCode::InvalidRequest,
            message: "invalid request: unknown field `ifname`, expected `container_id`".into(),
        })),
        _ => Ok(Ok(OpResult::default())),
    });
    let mut e = env("DEL");
    e.ifname = Some("net1".into());
    assert!(run_with(&e, &conf(json!({})).to_string(), &old).success);
    assert_eq!(
        old.ops(),
        vec![Op::DelPod { container_id: "c0ffee".into(), ifname: Some("net1".into()) }, Op::DelPod { container_id: "c0ffee".into(), ifname: None }]
    );
}
