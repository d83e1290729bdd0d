//! CNI error objects: `{"cniVersion", "code", "msg", "details"}` on stdout,
//! with the codes of the specification's table (0-99) and two of our own
//! (100 and up, which the specification leaves to plugins).

use serde_json::json;

/// The CNI specification's well-known error codes, and meshwire-cni's own.
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist (the runtime need not clean up after it).
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (CNI_COMMAND, CNI_CONTAINERID ...).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure (reading stdin).
    pub const IO: u32 = 5;
    /// Failed to decode content (stdin is not a JSON object).
    pub const DECODE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later: the meshwire loader is unreachable or starting (failPolicy "closed").
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin is not available (the loader cannot take pods).
    pub const NOT_AVAILABLE: u32 = 50;
    /// meshwire-cni's own: the loader answered and refused the request.
    pub const LOADER_REFUSED: u32 = 100;
    /// meshwire-cni's own: CHECK found the pod not meshed as its ADD left it.
    pub const CHECK_FAILED: u32 = 101;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError { code, msg: msg.into(), details: String::new() }
    }

    pub fn details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// The error object, as one line of JSON, in the request's CNI version.
    pub fn to_json(&self, cni_version: &str) -> String {
        let mut v = json!({ "cniVersion": cni_version, "code": self.code, "msg": self.msg });
        if !self.details.is_empty() {
            v["details"] = self.details.clone().into();
        }
        v.to_string()
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (CNI error {})", self.msg, self.code)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_object_has_the_spec_fields() {
        let e = CniError::new(code::INVALID_CONFIG, "bad").details("why");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(v, json!({"cniVersion": "1.0.0", "code": 7, "msg": "bad", "details": "why"}));
        let v: serde_json::Value = serde_json::from_str(&CniError::new(code::IO, "x").to_json("0.3.1")).unwrap();
        assert_eq!(v, json!({"cniVersion": "0.3.1", "code": 5, "msg": "x"}));
    }
}
