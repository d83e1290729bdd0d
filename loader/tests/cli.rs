//! The operator CLI as an operator meets it: the real binary, run as a
//! child process.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const LOADER: &str = env!("CARGO_BIN_EXE_meshwire-loader");

fn temp_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meshwire-cli-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn help_of(args: &[&str]) -> String {
    let out = Command::new(LOADER).args(args).arg("-h").output().unwrap();
    assert!(out.status.success(), "{args:?} -h: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `-h` lists each option as "[-x, ]--name <VALUE>" with its help after it
/// on the same line, or on the next when long.
#[test]
fn every_option_of_every_command_has_a_help_line() {
    let commands: &[&[&str]] = &[
        &[],
        &["run"],
        &["cleanup"],
        &["pod", "add"],
        &["pod", "del"],
        &["pod", "list"],
        &["stats"],
        &["maps"],
        &["status"],
        &["conns"],
        &["pods"],
        &["trace"],
    ];
    let mut bare = Vec::new();
    for args in commands {
        let help = help_of(args);
        let options = help.split("Options:").nth(1).unwrap_or_else(|| panic!("{args:?}: no options in\n{help}"));
        let lines: Vec<&str> = options.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        for (i, flag) in lines.iter().enumerate().filter(|(_, l)| l.starts_with('-')) {
            // The help is on the option's line after two spaces, or on the
            // next line when it is long.
            let next_is_help = lines.get(i + 1).is_some_and(|n| !n.starts_with('-'));
            if !flag.contains("  ") && !next_is_help {
                bare.push(format!("{args:?}: {flag}"));
            }
        }
    }
    assert!(bare.is_empty(), "options without a help line:\n{}", bare.join("\n"));
    let add = help_of(&["pod", "add"]);
    for flag in ["--netns", "--exclude-outbound-port", "--exclude-outbound-cidr", "--exclude-inbound-port"] {
        assert!(add.contains(flag), "pod add -h lacks {flag}:\n{add}");
    }
}

/// Each command shows the options it uses, and only those; one it does not
/// use is refused after it, but given before the command (as scripts give
/// them to every command) it is accepted.
#[test]
fn each_command_shows_only_the_options_it_uses() {
    let options = |args: &[&str]| -> Vec<String> {
        let help = help_of(args);
        let all = ["--config", "--log-level", "--cgroup", "--pin-dir", "--api-socket", "--state-dir"];
        all.iter().filter(|o| help.contains(&format!("{o} <"))).map(|o| o.to_string()).collect()
    };
    let expect: &[(&[&str], &[&str])] = &[
        (&["run"], &["--config", "--log-level", "--cgroup", "--pin-dir", "--api-socket", "--state-dir"]),
        (&["cleanup"], &["--config", "--log-level", "--pin-dir", "--state-dir"]),
        (&["pod", "add"], &["--config", "--log-level", "--api-socket"]),
        (&["pod", "del"], &["--config", "--log-level", "--api-socket"]),
        (&["pod", "list"], &["--config", "--log-level", "--api-socket"]),
        (&["stats"], &["--config", "--log-level", "--pin-dir"]),
        (&["maps"], &["--config", "--log-level", "--pin-dir"]),
        (&["status"], &["--config", "--log-level", "--pin-dir", "--api-socket"]),
        (&["conns"], &["--config", "--log-level", "--pin-dir"]),
        (&["trace"], &["--config", "--log-level", "--pin-dir"]),
        (&["pods"], &["--config", "--log-level", "--pin-dir", "--api-socket"]),
    ];
    for (args, want) in expect {
        assert_eq!(options(args), *want, "{args:?} -h");
    }
    let after = Command::new(LOADER).args(["pod", "list", "--cgroup", "/sys/fs/cgroup/x"]).output().unwrap();
    assert!(!after.status.success() && String::from_utf8_lossy(&after.stderr).contains("'--cgroup'"), "{after:?}");
    // Before the command: accepted (the socket is not there, so the call fails, naming it).
    let dir = temp_dir("before");
    let socket = dir.join("no.sock");
    let before = Command::new(LOADER).args(["--cgroup", "/sys/fs/cgroup/x", "--api-socket", socket.to_str().unwrap(), "pod", "list"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&before.stderr);
    assert!(!before.status.success() && stderr.contains(socket.to_str().unwrap()) && !stderr.contains("unexpected argument"), "{stderr}");
    // After the command it wins over before it.
    let other = dir.join("other.sock");
    let both = Command::new(LOADER).args(["--api-socket", socket.to_str().unwrap(), "pod", "list", "--api-socket", other.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&both.stderr).contains(other.to_str().unwrap()), "{both:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Against a pin directory with no datapath, the views say what to check,
/// once, instead of a bare ENOENT.
#[test]
fn views_without_a_datapath_say_what_to_check_once() {
    let dir = temp_dir("nopins");
    let pins = dir.join("no-such-pins");
    for view in ["stats", "maps", "status", "conns"] {
        let out = Command::new(LOADER).args(["--pin-dir", pins.to_str().unwrap(), view]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{view} succeeded without a datapath");
        assert!(stderr.contains(pins.to_str().unwrap()) && stderr.contains("--pin-dir") && stderr.contains("meshwire-loader run"), "{view}: {stderr}");
        assert!(!stderr.contains("No such file or directory"), "{view}: {stderr}");
        assert_eq!(stderr.matches("no meshwire datapath").count(), 1, "{view}: printed more than once:\n{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `meshwire-loader pods --json | head -1`, `pod list | head -1`: the
/// reader goes away, the loader ends quietly (no panic about a broken pipe).
#[test]
fn a_closed_stdout_ends_a_view_quietly() {
    for args in [&["pods", "--json"][..], &["pod", "list"][..]] {
        ends_quietly_into_a_closed_pipe(args);
    }
}

fn ends_quietly_into_a_closed_pipe(args: &[&str]) {
    let dir = temp_dir(&format!("pipe-{}", args.join("-")));
    let socket = dir.join("api.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    // A control socket answering LIST with enough pods to fill the pipe.
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(stream.try_clone().unwrap()).read_line(&mut line).unwrap();
        let request = meshwire_api::parse_request(line.trim_end()).unwrap();
        assert_eq!(request.op, meshwire_api::Op::ListPods);
        let pods = (0..5000)
            .map(|i| meshwire_api::testing::record(&format!("pod-{i}"), i))
            .collect();
        let answer = meshwire_api::Response::ok(meshwire_api::OpResult { pods: Some(pods), ..Default::default() });
        let mut w = stream;
        w.write_all(format!("{}\n", serde_json::to_string(&answer).unwrap()).as_bytes()).unwrap();
    });
    let mut child = Command::new(LOADER)
        .args(["--api-socket", socket.to_str().unwrap()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    server.join().unwrap();
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{args:?}: {status}: {stderr}");
    assert_ne!(status.code(), Some(101), "{args:?}: exit status of a panic: {stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
