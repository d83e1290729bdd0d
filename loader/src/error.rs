//! The loader's errors, by what a caller can do about them. The control API
//! answers each kind with its own code (service::control), so a client can
//! tell "map full" or "namespace gone" from a bug.

use std::fmt;
use std::io;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The request (or input) cannot be served as given; the message names
    /// what is wrong.
    Invalid(String),
    /// What the request names is not there.
    NotFound(String),
    /// A datapath map has no room for the entry (the kernel said E2BIG).
    MapFull { map: &'static str, message: String },
    /// The pod's network namespace is gone (or its path names another one).
    NetnsGone(String),
    /// What is in force differs from what was asked for (CHECK).
    Inconsistent(String),
    /// A system call failed; its errno is kept.
    Os { errno: i32, message: String },
    /// Anything else.
    Internal(String),
}

impl Error {
    /// A failed system call, `what` saying what was tried.
    pub fn os(what: impl fmt::Display, e: &io::Error) -> Error {
        match e.raw_os_error() {
            Some(errno) => Error::Os { errno, message: format!("{what}: {e}") },
            None => Error::Internal(format!("{what}: {e}")),
        }
    }

    /// The errno behind it, if a system call failed.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Os { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Error::Invalid(m) | Error::NotFound(m) | Error::NetnsGone(m) | Error::Inconsistent(m) | Error::Internal(m) => m,
            Error::MapFull { message, .. } | Error::Os { message, .. } => message,
        }
    }

    /// The same kind, its message prefixed by `what` ("pod c1: ...").
    pub fn context(self, what: impl fmt::Display) -> Error {
        self.map_message(|m| format!("{what}: {m}"))
    }

    /// The same kind, its message rewritten.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Error {
        match self {
            Error::Invalid(m) => Error::Invalid(f(m)),
            Error::NotFound(m) => Error::NotFound(f(m)),
            Error::MapFull { map, message } => Error::MapFull { map, message: f(message) },
            Error::NetnsGone(m) => Error::NetnsGone(f(m)),
            Error::Inconsistent(m) => Error::Inconsistent(f(m)),
            Error::Os { errno, message } => Error::Os { errno, message: f(message) },
            Error::Internal(m) => Error::Internal(f(m)),
        }
    }
}

/// A failed system call (`io::Result`) as an [`Error`], saying what was
/// tried: `.or_os(|| format!("removing {}", path.display()))`. The errno is
/// kept, and ENOENT on a pod's network namespace is for the caller to judge.
pub trait OrOs<T> {
    fn or_os<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T, Error>;
}

impl<T> OrOs<T> for io::Result<T> {
    fn or_os<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T, Error> {
        self.map_err(|e| Error::os(what(), &e))
    }
}

impl<T> OrOs<T> for nix::Result<T> {
    fn or_os<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T, Error> {
        self.map_err(|e| Error::os(what(), &io::Error::from(e)))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}


/// Callers that still speak in strings (the operator commands).
impl From<Error> for String {
    fn from(e: Error) -> String {
        e.message().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_kind_and_the_errno() {
        let e = Error::os("opening /x", &io::Error::from_raw_os_error(libc::ENOENT)).context("pod c1");
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(e.to_string().starts_with("pod c1: opening /x: "), "{e}");
        let full = Error::MapFull { map: "mw_pods", message: "mw_pods is full".into() }.context("pod c1");
        assert_eq!(full, Error::MapFull { map: "mw_pods", message: "pod c1: mw_pods is full".into() });
    }
}
