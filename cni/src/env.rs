//! The CNI_* environment: read raw, then validated per command.

use std::path::PathBuf;

use crate::error::{code, CniError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }

    pub fn parse(raw: Option<&str>) -> Result<Command, CniError> {
        match raw {
            None | Some("") => Err(CniError::new(
                code::INVALID_ENV,
                "CNI_COMMAND is not set: meshwire-cni is a CNI plugin, run by a container runtime with CNI_COMMAND=ADD, DEL, CHECK, GC, STATUS or VERSION",
            )),
            Some("ADD") => Ok(Command::Add),
            Some("DEL") => Ok(Command::Del),
            Some("CHECK") => Ok(Command::Check),
            Some("GC") => Ok(Command::Gc),
            Some("STATUS") => Ok(Command::Status),
            Some("VERSION") => Ok(Command::Version),
            Some(other) => Err(CniError::new(
                code::INVALID_ENV,
                format!("unknown CNI_COMMAND {other:?}: expected ADD, DEL, CHECK, GC, STATUS or VERSION"),
            )),
        }
    }
}

/// The CNI_* variables as given (unset and empty are both None).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEnv {
    pub command: Option<String>,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: Option<String>,
    pub path: Option<String>,
}

impl RawEnv {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> RawEnv {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        RawEnv {
            command: get("CNI_COMMAND"),
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: get("CNI_ARGS"),
            path: get("CNI_PATH"),
        }
    }

    pub fn from_process() -> RawEnv {
        RawEnv::from_lookup(|k| std::env::var(k).ok())
    }
}

/// What ADD, DEL and CHECK are about: one attachment of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
    /// Always set for ADD and CHECK; DEL may come without it.
    pub netns: Option<PathBuf>,
    pub args: CniArgs,
}

/// Validates the variables `command` needs. CNI_PATH is not required:
/// meshwire-cni delegates to no other plugin.
pub fn attachment(raw: &RawEnv, command: Command) -> Result<Attachment, CniError> {
    let need_netns = matches!(command, Command::Add | Command::Check);
    let mut missing = Vec::new();
    if raw.container_id.is_none() {
        missing.push("CNI_CONTAINERID");
    }
    if need_netns && raw.netns.is_none() {
        missing.push("CNI_NETNS");
    }
    if raw.ifname.is_none() {
        missing.push("CNI_IFNAME");
    }
    if !missing.is_empty() {
        return Err(CniError::new(code::INVALID_ENV, format!("{} needs {} in the environment", command.as_str(), missing.join(", "))));
    }
    let container_id = raw.container_id.clone().unwrap_or_default();
    validate_container_id(&container_id)?;
    let ifname = raw.ifname.clone().unwrap_or_default();
    validate_ifname(&ifname)?;
    let netns = match &raw.netns {
        None => None,
        Some(p) if !p.starts_with('/') => {
            return Err(CniError::new(code::INVALID_ENV, format!("CNI_NETNS={p:?} is not an absolute path to a network namespace")))
        }
        Some(p) => Some(PathBuf::from(p)),
    };
    let args = CniArgs::parse(raw.args.as_deref().unwrap_or(""))?;
    Ok(Attachment { container_id, ifname, netns, args })
}

/// The specification's rule: an alphanumeric first character, then
/// alphanumerics, '_', '.' or '-'.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_CONTAINERID={id:?} is not a container ID (an alphanumeric character, then alphanumerics, '_', '.' or '-')"),
        ))
    }
}

/// Linux interface names: 1 to 15 bytes, not "." or "..", no '/', ':' or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let why = if name.len() > 15 {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("\".\" and \"..\" are not interface names")
    } else if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        Some("contains '/', ':' or whitespace")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(CniError::new(code::INVALID_ENV, format!("CNI_IFNAME={name:?} is not an interface name: {why}"))),
    }
}

/// CNI_ARGS: `K=V` pairs separated by ';'. Keys meshwire-cni does not know
/// (IgnoreUnknown, K8S_POD_UID ...) are kept and ignored, never refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    pub fn parse(s: &str) -> Result<CniArgs, CniError> {
        let mut pairs = Vec::new();
        for item in s.split(';').filter(|i| !i.is_empty()) {
            match item.split_once('=') {
                Some((k, v)) if !k.is_empty() => pairs.push((k.to_string(), v.to_string())),
                _ => {
                    return Err(CniError::new(
                        code::INVALID_ENV,
                        format!("CNI_ARGS: {item:?} is not KEY=VALUE (CNI_ARGS is KEY=VALUE pairs separated by ';')"),
                    ))
                }
            }
        }
        Ok(CniArgs { pairs })
    }

    /// The value of `key`; the last one when it is given more than once.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    pub fn pod_namespace(&self) -> Option<&str> {
        self.get("K8S_POD_NAMESPACE")
    }

    pub fn pod_name(&self) -> Option<&str> {
        self.get("K8S_POD_NAME")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> RawEnv {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        RawEnv::from_lookup(move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    fn full() -> RawEnv {
        env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc123"),
            ("CNI_NETNS", "/var/run/netns/cni-1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-7d9;K8S_POD_UID=u"),
            ("CNI_PATH", "/opt/cni/bin"),
        ])
    }

    #[test]
    fn commands() {
        assert_eq!(Command::parse(Some("ADD")).unwrap(), Command::Add);
        assert_eq!(Command::parse(Some("GC")).unwrap(), Command::Gc);
        assert_eq!(Command::parse(Some("STATUS")).unwrap(), Command::Status);
        let e = Command::parse(Some("add")).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("unknown CNI_COMMAND \"add\""), "{e}");
        assert!(Command::parse(None).unwrap_err().msg.contains("CNI_COMMAND is not set"));
        assert_eq!(Command::parse(Some("")).unwrap_err().code, code::INVALID_ENV);
    }

    #[test]
    fn a_runtime_s_environment() {
        let a = attachment(&full(), Command::Add).unwrap();
        assert_eq!(a.container_id, "abc123");
        assert_eq!(a.ifname, "eth0");
        assert_eq!(a.netns, Some(PathBuf::from("/var/run/netns/cni-1")));
        assert_eq!(a.args.pod_namespace(), Some("shop"));
        assert_eq!(a.args.pod_name(), Some("cart-7d9"));
        assert_eq!(a.args.get("IgnoreUnknown"), Some("1"));
    }

    #[test]
    fn missing_variables_are_named() {
        let mut r = full();
        r.netns = None;
        r.container_id = None;
        let e = attachment(&r, Command::Add).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("CNI_CONTAINERID, CNI_NETNS"), "{e}");
        // DEL may come without a netns, CHECK may not.
        let mut r = full();
        r.netns = None;
        assert_eq!(attachment(&r, Command::Del).unwrap().netns, None);
        assert!(attachment(&r, Command::Check).unwrap_err().msg.contains("CNI_NETNS"));
        let mut r = full();
        r.ifname = None;
        assert!(attachment(&r, Command::Del).unwrap_err().msg.contains("CNI_IFNAME"));
        // Empty counts as unset; CNI_PATH is not needed.
        let r = env(&[("CNI_CONTAINERID", ""), ("CNI_NETNS", "/x"), ("CNI_IFNAME", "eth0")]);
        assert!(attachment(&r, Command::Add).unwrap_err().msg.contains("CNI_CONTAINERID"));
    }

    #[test]
    fn bad_values_are_refused() {
        for id in ["-abc", "a b", "a/b", "_x", "ä"] {
            let mut r = full();
            r.container_id = Some(id.into());
            let e = attachment(&r, Command::Add).unwrap_err();
            assert_eq!(e.code, code::INVALID_ENV, "{id}");
            assert!(e.msg.contains("CNI_CONTAINERID"), "{e}");
        }
        for name in ["this-is-16-bytes", ".", "..", "a/b", "a:b", "a b"] {
            let mut r = full();
            r.ifname = Some(name.into());
            let e = attachment(&r, Command::Add).unwrap_err();
            assert!(e.msg.contains("CNI_IFNAME"), "{name}: {e}");
        }
        let mut r = full();
        r.ifname = Some("fifteen-bytes-x".into());
        assert!(attachment(&r, Command::Add).is_ok());
        let mut r = full();
        r.netns = Some("run/netns/x".into());
        assert!(attachment(&r, Command::Add).unwrap_err().msg.contains("not an absolute path"));
    }

    #[test]
    fn cni_args() {
        let a = CniArgs::parse("A=1;B=;C=x=y;A=2;").unwrap();
        assert_eq!(a.get("A"), Some("2"));
        assert_eq!(a.get("B"), None);
        assert_eq!(a.get("C"), Some("x=y"));
        assert_eq!(a.get("D"), None);
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
        for bad in ["K8S_POD_NAMESPACE", "A=1;junk", "=v"] {
            let e = CniArgs::parse(bad).unwrap_err();
            assert_eq!(e.code, code::INVALID_ENV, "{bad}");
            assert!(e.msg.starts_with("CNI_ARGS:"), "{e}");
        }
    }
}
