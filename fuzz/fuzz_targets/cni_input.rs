//! meshwire-cni's whole input boundary: the CNI_* environment and the
//! network configuration on stdin, through `meshwire_cni::run` against a fake
//! loader. Never a panic; a failure is one CNI error object with a code and a
//! message; ADD succeeds only with prevResult handed back byte for byte.
//!
//! Input: `KEY=VALUE` lines (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
//! CNI_IFNAME, CNI_ARGS, CNI_PATH, and FUZZ_LOADER=0..5 choosing the fake
//! loader's answer), an empty line, then stdin. CNI_NETNS is opened by the
//! plugin: an absolute path other than the two namespace files below is
//! moved under a directory that does not exist, so the fuzzer never opens
//! anything else on the machine.
#![no_main]

use std::path::Path;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use meshwire_api::{ApiError, ErrorCode, Op, OpResult, PodRecord, Unreachable};
use meshwire_cni::env::RawEnv;
use meshwire_cni::{run, Loader};

const SAFE_NETNS: &[&str] = &["/proc/self/ns/net", "/proc/self/ns/uts"];

struct FakeLoader(u8);

impl Loader for FakeLoader {
    fn call(&self, _socket: &Path, _timeout: Duration, op: Op) -> Result<Result<OpResult, ApiError>, Unreachable> {
        let err = |code, message: &str| Ok(Err(ApiError { code, message: message.to_string() }));
        match self.0 % 6 {
            0 => Ok(Ok(match op {
                Op::ListPods => {
                    let pods: Vec<PodRecord> = serde_json::from_str(
                        r#"[{"container_id":"c1","netns":"/x","ifname":"eth0","netns_cookie":7},
                            {"container_id":"c2","netns":"/y","ifname":"net1","network":"n","netns_cookie":8}]"#,
                    )
                    .expect("fixed records parse");
                    OpResult { pods: Some(pods), ..Default::default() }
                }
                _ => OpResult::default(),
            })),
            1 => err(ErrorCode::NotFound, "no such pod"),
            2 => err(ErrorCode::TryAgain, "starting"),
            3 => err(ErrorCode::InvalidRequest, "refused"),
            4 => err(ErrorCode::Inconsistent, "half there"),
            _ => Err(Unreachable("fake loader: connection refused".into())),
        }
    }
}

fn safe_netns(v: &str) -> String {
    if v.starts_with('/') && !SAFE_NETNS.contains(&v) {
        format!("/nonexistent-meshwire-fuzz{v}")
    } else {
        v.to_string()
    }
}

fuzz_target!(|data: &[u8]| {
    let (head, stdin) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &b""[..]),
    };
    let Ok(head) = std::str::from_utf8(head) else { return };
    let vars: Vec<(&str, &str)> = head.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| vars.iter().rev().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
    let env = RawEnv::from_lookup(|k| match k {
        "CNI_NETNS" => get(k).map(|v| safe_netns(&v)),
        _ => get(k),
    });
    if let Some(n) = &env.netns {
        assert!(!n.starts_with('/') || SAFE_NETNS.contains(&n.as_str()) || n.starts_with("/nonexistent-meshwire-fuzz/"));
    }
    let loader = FakeLoader(get("FUZZ_LOADER").and_then(|v| v.parse().ok()).unwrap_or(0));
    let mut read_stdin = || Ok(stdin.to_vec());
    let out = run(&env, &mut read_stdin, &loader);

    if out.success {
        if env.command.as_deref() == Some("ADD") {
            // The previous plugin's result, unchanged.
            let text = std::str::from_utf8(stdin).expect("ADD succeeded on UTF-8 stdin");
            let conf: serde_json::Value = serde_json::from_str(text).expect("ADD succeeded on JSON stdin");
            let prev = conf.get("prevResult").expect("ADD succeeded with a prevResult");
            let printed: serde_json::Value = serde_json::from_str(&out.stdout).expect("ADD prints JSON");
            assert_eq!(&printed, prev, "ADD must print prevResult as it came");
        }
    } else {
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("a failure prints a CNI error object");
        let code = v.get("code").and_then(|c| c.as_u64()).expect("the error object has a numeric code");
        assert!(code > 0, "{v}");
        assert!(v.get("msg").and_then(|m| m.as_str()).is_some_and(|m| !m.is_empty()), "{v}");
        assert!(v.get("cniVersion").and_then(|m| m.as_str()).is_some(), "{v}");
    }
});
