//! The meshwire-cni binary as a runtime runs it (environment, stdin, stdout,
//! exit status), against a small fake loader on a Unix socket that speaks the
//! meshwire-api protocol.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshwire_api::{parse_request, ErrorCode, Op, OpResult, Request, Response};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_meshwire-cni");
const NETNS: &str = "/proc/self/ns/net";

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!("meshwire-cni-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fake loader: records each request and answers with `answer` (None: say nothing and hang up).
struct FakeLoader {
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
    _dir: TempDir,
}

impl FakeLoader {
    fn start(answer: impl Fn(&Request) -> Option<String> + Send + 'static) -> FakeLoader {
        let dir = TempDir::new();
        let socket = dir.0.join("loader.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut line = String::new();
                if BufReader::new(&conn).read_line(&mut line).is_err() {
                    continue;
                }
                let req = match parse_request(&line) {
                    Ok(r) => r,
                    Err(resp) => {
                        let _ = writeln!(conn, "{}", serde_json::to_string(&resp).unwrap());
                        continue;
                    }
                };
                let reply = answer(&req);
                seen.lock().unwrap().push(req);
                if let Some(reply) = reply {
                    let _ = writeln!(conn, "{reply}");
                }
            }
        });
        FakeLoader { socket, requests, _dir: dir }
    }

    fn ok() -> FakeLoader {
        FakeLoader::start(|_| Some(serde_json::to_string(&Response::ok(OpResult::default())).unwrap()))
    }

    fn ops(&self) -> Vec<Op> {
        self.requests.lock().unwrap().iter().map(|r| r.op.clone()).collect()
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }
}

fn cni(command: &str, stdin: &str, extra_env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "ctr1")
        .env("CNI_NETNS", NETNS)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart")
        .env("CNI_PATH", "/opt/cni/bin");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // A plugin that fails early may not read all of stdin (EPIPE); runtimes ignore that too.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8(out.stdout).unwrap(), stderr: String::from_utf8(out.stderr).unwrap() }
}

fn prev() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": NETNS}],
        "ips": [{"address": "10.22.0.9/16", "gateway": "10.22.0.1", "interface": 1}]
    })
}

fn netconf(socket: &Path, extra: Value) -> String {
    let mut c = json!({"cniVersion": "1.0.0", "name": "mesh-net", "type": "meshwire-cni", "loaderSocket": socket, "prevResult": prev()});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.to_string()
}

#[test]
fn add_del_check_against_a_loader() {
    let loader = FakeLoader::ok();
    let r = cni("ADD", &netconf(&loader.socket, json!({})), &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json(), prev());
    match loader.ops().as_slice() {
        [Op::AddPod { pod }] => {
            assert_eq!(pod.container_id, "ctr1");
            assert_eq!(pod.netns, PathBuf::from(NETNS));
            assert_eq!(pod.ips, vec!["10.22.0.9".parse::<std::net::Ipv4Addr>().unwrap()]);
            assert_eq!((pod.namespace.as_deref(), pod.name.as_deref()), (Some("shop"), Some("cart")));
        }
        other => panic!("{other:?}"),
    }
    let r = cni("CHECK", &netconf(&loader.socket, json!({})), &[]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    let r = cni("DEL", &netconf(&loader.socket, json!({})), &[]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert_eq!(loader.ops()[1..], [Op::CheckPod { container_id: "ctr1".into(), ifname: Some("eth0".into()) }, Op::DelPod { container_id: "ctr1".into(), ifname: Some("eth0".into()) }]);
}

#[test]
fn no_loader_fail_closed_fail_open_and_del() {
    let dir = TempDir::new();
    let absent = dir.0.join("nobody.sock");
    let r = cni("ADD", &netconf(&absent, json!({})), &[]);
    assert_eq!(r.code, 1);
    let v = r.json();
    assert_eq!((v["code"].as_u64(), v["cniVersion"].as_str()), (Some(11), Some("1.0.0")), "{v}");
    assert!(v["msg"].as_str().unwrap().contains("failPolicy \"closed\""), "{v}");
    assert!(v["details"].as_str().unwrap().contains("nobody.sock"), "{v}");

    let r = cni("ADD", &netconf(&absent, json!({"failPolicy": "open"})), &[]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.json(), prev());
    assert!(r.stderr.contains("UN-MESHED"), "{}", r.stderr);

    let r = cni("DEL", &netconf(&absent, json!({})), &[]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    assert!(r.stderr.contains("succeeding"), "{}", r.stderr);
}

#[test]
fn a_loader_that_hangs_up_or_stalls_is_unavailable() {
    let hangs_up = FakeLoader::start(|_| None);
    let stalls = FakeLoader::start(|_| {
        std::thread::sleep(Duration::from_secs(3));
        None
    });
    let garbage = FakeLoader::start(|_| Some("this is not json".into()));
    for loader in [&hangs_up, &stalls, &garbage] {
        let t = Instant::now();
        let r = cni("ADD", &netconf(&loader.socket, json!({"loaderTimeoutSeconds": 1})), &[]);
        assert_eq!((r.code, r.json()["code"].as_u64()), (1, Some(11)), "{}", r.stdout);
        assert!(t.elapsed() < Duration::from_secs(3), "the timeout holds");
    }
}

#[test]
fn loader_errors_map_to_cni_codes() {
    let refuses = FakeLoader::start(|req| {
        let code = match req.op {
            Op::AddPod { .. } => ErrorCode::InvalidRequest,
            Op::CheckPod { .. } => ErrorCode::Inconsistent,
            _ => ErrorCode::TryAgain,
        };
        Some(serde_json::to_string(&Response::err(code, "no")).unwrap())
    });
    let r = cni("ADD", &netconf(&refuses.socket, json!({})), &[]);
    assert_eq!(r.json()["code"], 100);
    let r = cni("CHECK", &netconf(&refuses.socket, json!({})), &[]);
    assert_eq!(r.json()["code"], 101);
    let status = json!({"cniVersion": "1.1.0", "name": "mesh-net", "type": "meshwire-cni", "loaderSocket": refuses.socket}).to_string();
    let r = cni("STATUS", &status, &[]);
    assert_eq!((r.code, r.json()["code"].as_u64()), (1, Some(50)));
}

#[test]
fn version_and_bad_input() {
    let r = cni("VERSION", "{\"cniVersion\":\"0.3.1\"}", &[]);
    assert_eq!(r.code, 0);
    assert_eq!(r.json(), json!({"cniVersion": "0.3.1", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}));
    let r = cni("ADD", "{not json", &[]);
    assert_eq!((r.code, r.json()["code"].as_u64()), (1, Some(6)));
    let r = cni("FROB", "{}", &[]);
    assert_eq!((r.code, r.json()["code"].as_u64()), (1, Some(4)));
    // Without CNI_COMMAND it exits at once, without waiting for stdin.
    let out = Command::new(BIN).env_clear().stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}
