//! meshwire-cni: see the crate documentation (src/lib.rs) and cni/README.md.

use std::io::{Read, Write};
use std::process::ExitCode;

use meshwire_cni::env::RawEnv;
use meshwire_cni::{run, SocketLoader};

fn main() -> ExitCode {
    let env = RawEnv::from_process();
    let mut read_stdin = || {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    };
    let out = run(&env, &mut read_stdin, &SocketLoader);
    for note in &out.notes {
        eprintln!("meshwire-cni: {note}");
    }
    let mut stdout = std::io::stdout().lock();
    if !out.stdout.is_empty() && (writeln!(stdout, "{}", out.stdout).is_err() || stdout.flush().is_err()) {
        eprintln!("meshwire-cni: could not write the result to stdout");
        return ExitCode::FAILURE;
    }
    if out.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
