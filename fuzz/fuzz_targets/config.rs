//! The loader's configuration parser (loader/src/config.rs, included as is):
//! any text is either a valid Config or an error that names a place in it.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../loader/src/config.rs"]
#[allow(dead_code)]
mod config;

use config::{Config, MAX_LIST};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse("fuzz.toml", text) {
        Ok(c) => {
            // What validation promises to everything after it.
            assert_ne!(c.sidecar.uid, 0, "uid 0 accepted");
            assert!(c.sidecar.outbound_port != 0 && c.sidecar.inbound_port != 0, "port 0 accepted");
            assert_ne!(c.sidecar.outbound_port, c.sidecar.inbound_port, "equal sidecar ports accepted");
            assert!(c.outbound.exclude_ports.iter().chain(&c.inbound.exclude_ports).all(|p| *p != 0), "excluded port 0 accepted");
            assert!(c.outbound.exclude_ports.len() <= MAX_LIST && c.outbound.exclude_cidrs.len() <= MAX_LIST);
            assert!(c.inbound.exclude_ports.len() <= MAX_LIST);
            assert!(c.bpf.pin_dir.is_absolute() && c.bpf.pin_dir != std::path::Path::new("/"), "pin_dir {:?}", c.bpf.pin_dir);
            assert!(c.bpf.cgroup.as_ref().is_none_or(|p| p.is_absolute()), "cgroup {:?}", c.bpf.cgroup);
            assert!(c.api.socket.is_absolute() && c.api.state_dir.is_absolute());
            for cidr in &c.outbound.exclude_cidrs {
                let mask = if cidr.len == 0 { 0 } else { u32::MAX << (32 - cidr.len) };
                assert!(cidr.len <= 32 && u32::from(cidr.addr) & !mask == 0, "CIDR with host bits accepted: {cidr}");
            }
            // Parsing is a function of the text.
            assert_eq!(Config::parse("fuzz.toml", text).unwrap(), c);
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.starts_with("fuzz.toml"), "the error names the file: {shown}");
            if let Some(line) = e.line {
                assert!(line >= 1 && line <= text.lines().count() + 1, "line {line} of a {}-line text", text.lines().count());
            }
            assert!(!e.message.is_empty(), "empty message: {e:?}");
        }
    }
});
