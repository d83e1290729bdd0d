//! This build's version, as `--version`, the daemon's log and the API's
//! `status` answer give it.
//!
//! The Cargo workspace's version (`[workspace.package]` in the root
//! Cargo.toml, the one place meshwire is versioned; packaging/build_deb.sh
//! names the .deb after it), followed by the suffix a build may stamp at
//! compile time in `MESHWIRE_VERSION_SUFFIX` (tools/cargo.bzl's
//! `version_suffix`): `//test:loader_older` is this source stamped
//! `<version>~e2e.older`, which Debian orders just below `<version>`, so the
//! end-to-end suite can hand a node over from it to the .deb's loader as an
//! upgrade.

use std::sync::LazyLock;

/// The suffix stamped at compile time ("" for a release build).
const SUFFIX: &str = match option_env!("MESHWIRE_VERSION_SUFFIX") {
    Some(s) => s,
    None => "",
};

pub static VERSION: LazyLock<String> = LazyLock::new(|| format!("{}{SUFFIX}", env!("CARGO_PKG_VERSION")));

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_the_workspace_version_with_the_stamped_suffix() {
        assert!(super::VERSION.starts_with(env!("CARGO_PKG_VERSION")), "{}", *super::VERSION);
        assert_eq!(&super::VERSION[env!("CARGO_PKG_VERSION").len()..], super::SUFFIX);
    }
}
