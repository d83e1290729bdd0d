//! `meshwire-loader cni install|uninstall`: put meshwire-cni into a node's CNI
//! setup and take it out again.
//!
//! install:
//! 1. copies the plugin binary into the CNI bin directory atomically (a
//!    temporary file in that directory, then rename), so a runtime never runs
//!    a half-written plugin;
//! 2. finds the active network configuration the way kubelet and containerd
//!    do: the files of the conf directory ending in .conf, .conflist or .json,
//!    in lexical order, the first that loads (a .conflist with plugins; a
//!    .conf/.json with a type);
//! 3. appends `{"type": "meshwire-cni", ...}` to its plugins, keeping the
//!    original bytes in `<conf-dir>/.meshwire-backup/` (runtimes skip
//!    directories). A .conflist is rewritten in place; a single-plugin .conf
//!    (or .json) becomes `<stem>.conflist` with the original as its first
//!    plugin, as libcni's ConfListFromConf does, and the .conf moves into the
//!    backup (it would otherwise sort, and load, first).
//!
//! Everything is checked before anything is written. A configuration that
//! already chains meshwire-cni is left alone, so install is idempotent.
//! uninstall restores the original file byte for byte (and its mode), removes
//! the file install wrote and the binary; it refuses when the chained file was
//! changed since install (someone else's edit would be lost) unless --force.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

pub const PLUGIN_TYPE: &str = "meshwire-cni";
pub const BACKUP_DIR: &str = ".meshwire-backup";
const MANIFEST: &str = "manifest.json";
const ORIGINAL: &str = "original";
const WRITTEN: &str = "written";
const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";
/// The CNI versions meshwire-cni speaks (a chain needs 0.3.0 or later).
const CHAINABLE_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Why `cni install` or `cni uninstall` refused or failed. Each says what is
/// wrong and what to do about it. The refusals (all but [`CniError::Io`])
/// come before anything is written.
#[derive(Debug)]
pub enum CniError {
    /// No --plugin, and no meshwire-cni beside this executable or in the bin directory.
    NoPlugin { beside: PathBuf, installed: PathBuf },
    /// The meshwire-cni binary to install cannot be read.
    PluginUnreadable { path: PathBuf, source: io::Error },
    /// --plugin-config is not JSON.
    PluginConfigNotJson(serde_json::Error),
    /// --plugin-config is JSON but not an object.
    PluginConfigNotObject,
    /// --plugin-config gives another "type" than meshwire-cni.
    PluginConfigType,
    /// --plugin-config gives "capabilities" that are not an object.
    PluginConfigCapabilities,
    /// The CNI bin directory is not there.
    NoBinDir(PathBuf),
    /// The CNI configuration directory cannot be listed.
    ConfDirUnreadable { dir: PathBuf, source: io::Error },
    /// No file of the configuration directory loads: there is no network to chain into.
    NoNetwork { conf_dir: PathBuf, skipped: Vec<BadConf> },
    /// An earlier install's backup is there, but the active file does not chain meshwire-cni.
    StaleBackup { backup: PathBuf, active: PathBuf },
    /// The active network's cniVersion predates chaining.
    Unchainable { path: PathBuf, version: String },
    /// The single-plugin file would become a .conflist that already exists.
    ConflistExists { conf: PathBuf, conflist: PathBuf },
    /// The record `cni install` keeps in the backup directory is damaged.
    BadManifest { path: PathBuf, problem: String },
    /// The chained file was changed since install, and --force was not given.
    ChangedSinceInstall { written: PathBuf, original: PathBuf },
    /// A file system call failed; `what` names it and its path.
    Io { what: String, source: io::Error },
}

/// A configuration file runtimes would skip, and why.
#[derive(Debug)]
pub struct BadConf {
    pub path: PathBuf,
    pub problem: ConfProblem,
}

#[derive(Debug)]
pub enum ConfProblem {
    Unreadable(io::Error),
    NotJson(serde_json::Error),
    NotObject,
    /// A .conflist without a non-empty "plugins".
    NoPlugins,
    /// A .conf or .json without a "type".
    NoType,
}

impl fmt::Display for BadConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.problem {
            ConfProblem::Unreadable(e) => write!(f, "{path}: {e}"),
            ConfProblem::NotJson(e) => write!(f, "{path}: not JSON: {e}"),
            ConfProblem::NotObject => write!(f, "{path}: not a JSON object"),
            ConfProblem::NoPlugins => write!(f, "{path}: a .conflist without plugins"),
            ConfProblem::NoType => write!(f, "{path}: a network configuration without \"type\""),
        }
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CniError::NoPlugin { beside, installed } => {
                write!(f, "no meshwire-cni at {} or {}: give it with --plugin", beside.display(), installed.display())
            }
            CniError::PluginUnreadable { path, source } => write!(f, "the meshwire-cni binary {}: {source} (give it with --plugin)", path.display()),
            CniError::PluginConfigNotJson(e) => write!(f, "--plugin-config is not JSON: {e}"),
            CniError::PluginConfigNotObject => f.write_str("--plugin-config must be a JSON object of meshwire-cni keys"),
            CniError::PluginConfigType => write!(f, "--plugin-config: \"type\" is {PLUGIN_TYPE:?} (leave it out)"),
            CniError::PluginConfigCapabilities => f.write_str("--plugin-config: \"capabilities\" must be an object, like {\"meshwire\": true}"),
            CniError::NoBinDir(dir) => write!(f, "CNI bin directory {} does not exist: give the runtime's with --bin-dir", dir.display()),
            CniError::ConfDirUnreadable { dir, source } => {
                write!(f, "reading CNI configuration directory {}: {source} (give the runtime's with --conf-dir)", dir.display())
            }
            CniError::NoNetwork { conf_dir, skipped } => {
                write!(
                    f,
                    "no CNI network configuration in {} (a *.conf, *.conflist or *.json that loads): install the node's network plugin first, then meshwire-cni",
                    conf_dir.display()
                )?;
                if let Some((first, rest)) = skipped.split_first() {
                    write!(f, "; skipped: {first}")?;
                    for s in rest {
                        write!(f, "; {s}")?;
                    }
                }
                Ok(())
            }
            CniError::StaleBackup { backup, active } => write!(
                f,
                "{} holds the backup of an earlier `cni install`, but {} does not chain meshwire-cni; run `cni uninstall` (or look at the backup) first",
                backup.display(),
                active.display()
            ),
            CniError::Unchainable { path, version } => write!(
                f,
                "{}: cniVersion {version:?} cannot chain meshwire-cni (it needs one of {})",
                path.display(),
                CHAINABLE_VERSIONS.join(", ")
            ),
            CniError::ConflistExists { conf, conflist } => {
                write!(f, "{} would replace {}, which exists; move one of them away", conf.display(), conflist.display())
            }
            CniError::BadManifest { path, problem } => {
                let backup = path.parent().unwrap_or(path);
                write!(
                    f,
                    "{}: {problem}: the record of `cni install` is damaged; restore the network configuration by hand from {} and remove {}",
                    path.display(),
                    backup.join(ORIGINAL).display(),
                    backup.display()
                )
            }
            CniError::ChangedSinceInstall { written, original } => write!(
                f,
                "{} changed since `cni install`; restoring the original would lose that change (the original is {}; --force restores it anyway)",
                written.display(),
                original.display()
            ),
            CniError::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for CniError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CniError::PluginUnreadable { source, .. } | CniError::ConfDirUnreadable { source, .. } | CniError::Io { source, .. } => Some(source),
            CniError::PluginConfigNotJson(e) => Some(e),
            _ => None,
        }
    }
}

/// A failed file system call as [`CniError::Io`], `what` naming it: `.map_err(io_failed(format!("creating {}", p.display())))`.
fn io_failed(what: impl fmt::Display) -> impl FnOnce(io::Error) -> CniError {
    let what = what.to_string();
    move |source| CniError::Io { what, source }
}

#[derive(clap::Subcommand)]
pub enum CniCommand {
    /// Install meshwire-cni into the CNI bin directory and chain it into the active network configuration.
    Install {
        /// CNI plugin directory.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_BIN_DIR)]
        bin_dir: PathBuf,
        /// CNI network configuration directory.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_CONF_DIR)]
        conf_dir: PathBuf,
        /// The meshwire-cni binary to install; default: meshwire-cni next to this executable, else
        /// the one already in --bin-dir (where the Debian package puts it), which is then left in place.
        #[arg(long, value_name = "PATH")]
        plugin: Option<PathBuf>,
        /// More keys for meshwire-cni's entry, as a JSON object, e.g. '{"namespaces":{"exclude":["kube-system"]}}'.
        #[arg(long, value_name = "JSON")]
        plugin_config: Option<String>,
    },
    /// Restore the network configuration install changed and remove the binary.
    Uninstall {
        #[arg(long, value_name = "DIR", default_value = DEFAULT_BIN_DIR)]
        bin_dir: PathBuf,
        #[arg(long, value_name = "DIR", default_value = DEFAULT_CONF_DIR)]
        conf_dir: PathBuf,
        /// Restore the original even if the chained file was changed since install.
        #[arg(long)]
        force: bool,
    },
}

/// Runs the subcommand; `loader_socket` (the API socket) goes into the entry.
pub fn execute(command: CniCommand, loader_socket: &Path) -> Result<(), CniError> {
    let report = match command {
        CniCommand::Install { bin_dir, conf_dir, plugin, plugin_config } => {
            let plugin = match plugin {
                Some(p) => p,
                None => default_plugin(&bin_dir)?,
            };
            let entry = plugin_entry(loader_socket, plugin_config.as_deref())?;
            install(&bin_dir, &conf_dir, &plugin, &entry)?
        }
        CniCommand::Uninstall { bin_dir, conf_dir, force } => uninstall(&bin_dir, &conf_dir, force)?,
    };
    for line in report {
        println!("{line}");
    }
    Ok(())
}

fn default_plugin(bin_dir: &Path) -> Result<PathBuf, CniError> {
    let exe = std::env::current_exe().map_err(io_failed("finding this executable"))?;
    let beside = exe.with_file_name(PLUGIN_TYPE);
    let installed = bin_dir.join(PLUGIN_TYPE);
    if beside.is_file() {
        return Ok(beside);
    }
    if installed.is_file() {
        return Ok(installed);
    }
    Err(CniError::NoPlugin { beside, installed })
}

/// Whether `a` and `b` are one file (the plugin given is the installed one).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The capability under which containerd (1.5+) and CRI-O pass a pod's
/// annotations to the plugins that declare it: meshwire-cni reads from them
/// whether the pod has a sidecar (docs/annotations.md).
pub const POD_ANNOTATIONS: &str = "io.kubernetes.cri.pod-annotations";

/// `{"type": "meshwire-cni", "capabilities": {POD_ANNOTATIONS: true}}`, the
/// loader's socket when it is not the plugin's default, and the operator's
/// extra keys (capabilities they give are added to that one).
pub fn plugin_entry(loader_socket: &Path, extra: Option<&str>) -> Result<Map<String, Value>, CniError> {
    let mut entry = Map::new();
    entry.insert("type".into(), PLUGIN_TYPE.into());
    entry.insert("capabilities".into(), json!({ POD_ANNOTATIONS: true }));
    if loader_socket != Path::new(meshwire_api::DEFAULT_SOCKET) {
        entry.insert("loaderSocket".into(), loader_socket.to_string_lossy().into_owned().into());
    }
    if let Some(extra) = extra {
        let v: Value = serde_json::from_str(extra).map_err(CniError::PluginConfigNotJson)?;
        let Value::Object(m) = v else {
            return Err(CniError::PluginConfigNotObject);
        };
        for (k, v) in m {
            if k == "type" && v != PLUGIN_TYPE {
                return Err(CniError::PluginConfigType);
            }
            if k == "capabilities" {
                let Value::Object(caps) = v else {
                    return Err(CniError::PluginConfigCapabilities);
                };
                let ours = entry.get_mut("capabilities").and_then(Value::as_object_mut).expect("set above");
                ours.extend(caps);
                continue;
            }
            entry.insert(k, v);
        }
    }
    Ok(entry)
}

/// The network configuration files of `conf_dir`, in the order runtimes read them.
fn conf_files(conf_dir: &Path) -> Result<Vec<PathBuf>, CniError> {
    let rd = fs::read_dir(conf_dir).map_err(|source| CniError::ConfDirUnreadable { dir: conf_dir.to_path_buf(), source })?;
    let mut files = Vec::new();
    for entry in rd {
        let entry = entry.map_err(io_failed(format_args!("reading {}", conf_dir.display())))?;
        let path = entry.path();
        let is_conf = matches!(path.extension().and_then(|e| e.to_str()), Some("conf" | "conflist" | "json"));
        if is_conf && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn is_list(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "conflist")
}

/// Loads a configuration file as a runtime would: a .conflist needs a
/// non-empty "plugins", a .conf/.json a "type".
fn load(path: &Path) -> Result<Map<String, Value>, BadConf> {
    let bad = |problem| BadConf { path: path.to_path_buf(), problem };
    let text = fs::read_to_string(path).map_err(|e| bad(ConfProblem::Unreadable(e)))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(ConfProblem::NotJson(e)))?;
    let Value::Object(m) = v else {
        return Err(bad(ConfProblem::NotObject));
    };
    if is_list(path) {
        match m.get("plugins") {
            Some(Value::Array(p)) if !p.is_empty() => {}
            _ => return Err(bad(ConfProblem::NoPlugins)),
        }
    } else if m.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(bad(ConfProblem::NoType));
    }
    Ok(m)
}

/// The active configuration file, its content, and the files skipped before it (with why).
type Active = (PathBuf, Map<String, Value>, Vec<BadConf>);

fn active(conf_dir: &Path) -> Result<Active, CniError> {
    let mut skipped = Vec::new();
    for path in conf_files(conf_dir)? {
        match load(&path) {
            Ok(m) => return Ok((path, m, skipped)),
            Err(e) => skipped.push(e),
        }
    }
    Err(CniError::NoNetwork { conf_dir: conf_dir.to_path_buf(), skipped })
}

fn chains_meshwire(conf: &Map<String, Value>) -> bool {
    match conf.get("plugins") {
        Some(Value::Array(plugins)) => plugins.iter().any(|p| p.get("type").and_then(Value::as_str) == Some(PLUGIN_TYPE)),
        _ => conf.get("type").and_then(Value::as_str) == Some(PLUGIN_TYPE),
    }
}

/// The chained configuration: `conf` (a list, or a single plugin made a list) plus `entry`.
fn chained(conf: &Map<String, Value>, list: bool, entry: &Map<String, Value>) -> Value {
    let mut out = if list {
        conf.clone()
    } else {
        let mut l = Map::new();
        l.insert("cniVersion".into(), conf.get("cniVersion").cloned().unwrap_or(Value::Null));
        l.insert("name".into(), conf.get("name").cloned().unwrap_or(Value::Null));
        l.insert("plugins".into(), json!([Value::Object(conf.clone())]));
        l
    };
    if let Some(Value::Array(plugins)) = out.get_mut("plugins") {
        plugins.push(Value::Object(entry.clone()));
    }
    Value::Object(out)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CniError> {
    let writing = || format!("writing {}", path.display());
    let dir = path.parent().ok_or_else(|| CniError::Io { what: writing(), source: io::Error::new(io::ErrorKind::InvalidInput, "the path has no directory") })?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.meshwire-tmp.{}", std::process::id()));
    let result = (|| -> io::Result<()> {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable once the directory is.
        fs::File::open(dir)?.sync_all()
    })();
    if let Err(source) = result {
        let _ = fs::remove_file(&tmp);
        return Err(CniError::Io { what: writing(), source });
    }
    Ok(())
}

fn mode_of(path: &Path) -> Result<u32, CniError> {
    Ok(fs::metadata(path).map_err(io_failed(path.display()))?.permissions().mode() & 0o7777)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

pub fn install(bin_dir: &Path, conf_dir: &Path, plugin: &Path, entry: &Map<String, Value>) -> Result<Vec<String>, CniError> {
    let mut report = Vec::new();
    // --- Check everything first.
    let binary = fs::read(plugin).map_err(|source| CniError::PluginUnreadable { path: plugin.to_path_buf(), source })?;
    if !bin_dir.is_dir() {
        return Err(CniError::NoBinDir(bin_dir.to_path_buf()));
    }
    let (path, conf, skipped) = active(conf_dir)?;
    for s in skipped {
        report.push(format!("skipped (runtimes skip it too): {s}"));
    }
    let already = chains_meshwire(&conf);
    let list = is_list(&path);
    let backup = conf_dir.join(BACKUP_DIR);
    // A single plugin's file becomes the .conflist of its name.
    let written = if list { path.clone() } else { path.with_extension("conflist") };
    if !already {
        if backup.exists() {
            // An earlier install's chaining is gone (another file loads first, or
            // the file was rewritten): its backup may hold the only copy of a file.
            return Err(CniError::StaleBackup { backup, active: path });
        }
        let version = conf.get("cniVersion").and_then(Value::as_str).unwrap_or("");
        if !CHAINABLE_VERSIONS.contains(&version) {
            return Err(CniError::Unchainable { path, version: version.to_string() });
        }
        if !list && written.exists() {
            return Err(CniError::ConflistExists { conf: path, conflist: written });
        }
    }

    // --- The binary, atomically; one already there (a package's) is not ours
    // to remove at uninstall, which the manifest remembers.
    let target = bin_dir.join(PLUGIN_TYPE);
    let binary_was_there = target.exists();
    if same_file(plugin, &target) {
        report.push(format!("{} is already in place", target.display()));
    } else {
        write_atomic(&target, &binary, 0o755)?;
        report.push(format!("installed {}", target.display()));
    }

    // --- The configuration.
    if already {
        report.push(format!("{} already chains meshwire-cni; left as it is", path.display()));
        return Ok(report);
    }
    let mut text = serde_json::to_string_pretty(&chained(&conf, list, entry)).expect("JSON values serialize");
    text.push('\n');
    let original = fs::read(&path).map_err(io_failed(path.display()))?;
    let mode = mode_of(&path)?;
    fs::create_dir(&backup).map_err(io_failed(format_args!("creating {}", backup.display())))?;
    fs::set_permissions(&backup, fs::Permissions::from_mode(0o700)).map_err(io_failed(backup.display()))?;
    write_atomic(&backup.join(ORIGINAL), &original, 0o600)?;
    write_atomic(&backup.join(WRITTEN), text.as_bytes(), 0o600)?;
    let manifest = json!({"version": 1, "original": file_name(&path), "mode": mode, "written": file_name(&written),
                          "binary_installed": !binary_was_there});
    write_atomic(&backup.join(MANIFEST), format!("{manifest:#}\n").as_bytes(), 0o600)?;
    write_atomic(&written, text.as_bytes(), mode)?;
    if written != path {
        fs::remove_file(&path).map_err(io_failed(format_args!("removing {} (kept in {})", path.display(), backup.display())))?;
        report.push(format!("{} is now {} (the original is kept in {})", path.display(), written.display(), backup.display()));
    } else {
        report.push(format!("chained meshwire-cni into {} (the original is kept in {})", path.display(), backup.display()));
    }
    // What runtimes load now must be what was written.
    let (now, _, _) = active(conf_dir)?;
    if now != written {
        report.push(format!("WARNING: runtimes load {} first, not {}", now.display(), written.display()));
    }
    Ok(report)
}

pub fn uninstall(bin_dir: &Path, conf_dir: &Path, force: bool) -> Result<Vec<String>, CniError> {
    let mut report = Vec::new();
    let backup = conf_dir.join(BACKUP_DIR);
    let manifest_path = backup.join(MANIFEST);
    // Without a record of install, the binary is not known to be ours.
    let mut remove_binary = false;
    if manifest_path.exists() {
        let text = fs::read_to_string(&manifest_path).map_err(io_failed(manifest_path.display()))?;
        let damaged = |problem: String| CniError::BadManifest { path: manifest_path.clone(), problem };
        let m: Value = serde_json::from_str(&text).map_err(|e| damaged(format!("not JSON: {e}")))?;
        let name = |k: &str| -> Result<String, CniError> {
            let n = m.get(k).and_then(Value::as_str).unwrap_or("");
            if n.is_empty() || n.contains('/') || n.starts_with('.') {
                return Err(damaged(format!("bad {k:?}")));
            }
            Ok(n.to_string())
        };
        let original_path = conf_dir.join(name("original")?);
        let written_path = conf_dir.join(name("written")?);
        let mode = m.get("mode").and_then(Value::as_u64).ok_or_else(|| damaged("no \"mode\"".into()))? as u32;
        // Manifests from before the key was written: install always copied.
        remove_binary = m.get("binary_installed").and_then(Value::as_bool).unwrap_or(true);
        let original = fs::read(backup.join(ORIGINAL)).map_err(io_failed(backup.join(ORIGINAL).display()))?;
        let written = fs::read(backup.join(WRITTEN)).map_err(io_failed(backup.join(WRITTEN).display()))?;
        match fs::read(&written_path) {
            Ok(now) if now != written && !force => {
                return Err(CniError::ChangedSinceInstall { written: written_path, original: backup.join(ORIGINAL) })
            }
            _ => {}
        }
        write_atomic(&original_path, &original, mode)?;
        if written_path != original_path {
            match fs::remove_file(&written_path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_failed(format_args!("removing {}", written_path.display()))(e)),
            }
        }
        fs::remove_dir_all(&backup).map_err(io_failed(format_args!("removing {}", backup.display())))?;
        report.push(format!("restored {}", original_path.display()));
    } else {
        report.push(format!("no meshwire-cni install recorded in {}; the configuration is left as it is", conf_dir.display()));
        if let Ok((path, conf, _)) = active(conf_dir) {
            if chains_meshwire(&conf) {
                report.push(format!("note: {} chains meshwire-cni, but not through `cni install`; edit it by hand", path.display()));
            }
        }
    }
    let target = bin_dir.join(PLUGIN_TYPE);
    if !remove_binary {
        if target.exists() {
            report.push(format!("left {} in place: `cni install` did not put it there", target.display()));
        }
        return Ok(report);
    }
    match fs::remove_file(&target) {
        Ok(()) => report.push(format!("removed {}", target.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_failed(format_args!("removing {}", target.display()))(e)),
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A temporary node: bin dir, conf dir and a plugin binary; removed on drop.
    struct Node {
        root: PathBuf,
        bin: PathBuf,
        conf: PathBuf,
        plugin: PathBuf,
    }

    impl Node {
        fn new() -> Node {
            static N: AtomicUsize = AtomicUsize::new(0);
            let root = std::env::temp_dir().join(format!("meshwire-cni-install-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
            let (bin, conf) = (root.join("bin"), root.join("net.d"));
            fs::create_dir_all(&bin).unwrap();
            fs::create_dir_all(&conf).unwrap();
            let plugin = root.join("meshwire-cni");
            fs::write(&plugin, b"#!/bin/sh\necho plugin\n").unwrap();
            Node { root, bin, conf, plugin }
        }

        fn put(&self, name: &str, text: &str, mode: u32) {
            let p = self.conf.join(name);
            fs::write(&p, text).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }

        fn install(&self) -> Result<Vec<String>, CniError> {
            install(&self.bin, &self.conf, &self.plugin, &plugin_entry(Path::new("/run/meshwire/loader.sock"), None).unwrap())
        }

        fn uninstall(&self, force: bool) -> Result<Vec<String>, CniError> {
            uninstall(&self.bin, &self.conf, force)
        }

        /// Every file under the conf dir (and the bin dir) with its bytes and mode.
        fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
            fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, u32)>) {
                for e in fs::read_dir(dir).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        walk(&p, out);
                    } else {
                        out.insert(p.clone(), (fs::read(&p).unwrap(), mode_of(&p).unwrap()));
                    }
                }
            }
            let mut out = BTreeMap::new();
            walk(&self.conf, &mut out);
            walk(&self.bin, &mut out);
            out
        }

        fn json(&self, name: &str) -> Value {
            serde_json::from_str(&fs::read_to_string(self.conf.join(name)).unwrap()).unwrap()
        }
    }

    impl Drop for Node {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    const CONFLIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.22.0.0/16"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
"#;
    const CONF: &str = "{ \"cniVersion\": \"0.4.0\", \"name\": \"bridge-net\", \"type\": \"bridge\",\n  \"ipam\": {\"type\": \"host-local\", \"subnet\": \"10.88.0.0/16\"} }";

    fn types(v: &Value) -> Vec<String> {
        v["plugins"].as_array().unwrap().iter().map(|p| p["type"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn conflist_is_chained_in_place_and_restored_byte_for_byte() {
        let node = Node::new();
        node.put("10-net.conflist", CONFLIST, 0o640);
        node.put("99-other.conf", CONF, 0o644);
        let before = node.snapshot();
        let report = node.install().unwrap();
        assert!(report.iter().any(|l| l.contains("chained meshwire-cni into")), "{report:?}");
        let v = node.json("10-net.conflist");
        assert_eq!(types(&v), ["bridge", "portmap", "meshwire-cni"]);
        assert_eq!(v["plugins"][2], json!({"type": "meshwire-cni", "capabilities": {"io.kubernetes.cri.pod-annotations": true}}));
        assert_eq!(v["plugins"][0], serde_json::from_str::<Value>(CONFLIST).unwrap()["plugins"][0]);
        assert_eq!(mode_of(&node.conf.join("10-net.conflist")).unwrap(), 0o640);
        assert_eq!(fs::read(node.bin.join("meshwire-cni")).unwrap(), fs::read(&node.plugin).unwrap());
        assert_eq!(mode_of(&node.bin.join("meshwire-cni")).unwrap(), 0o755);
        assert_eq!(fs::read(node.conf.join("99-other.conf")).unwrap(), CONF.as_bytes(), "other files untouched");

        node.uninstall(false).unwrap();
        assert_eq!(node.snapshot(), before, "uninstall restores every byte and mode, and removes the rest");
    }

    /// The Debian package's layout: meshwire-cni already in the bin dir, and
    /// install given that very file (its default there).
    #[test]
    fn a_plugin_already_in_the_bin_dir_is_used_in_place_and_left_by_uninstall() {
        let node = Node::new();
        node.put("10-net.conflist", CONFLIST, 0o644);
        let packaged = node.bin.join("meshwire-cni");
        fs::write(&packaged, b"packaged").unwrap();
        assert_eq!(default_plugin(&node.bin).unwrap(), packaged, "nothing beside the test binary: the bin dir's");
        let entry = plugin_entry(Path::new("/run/meshwire/loader.sock"), None).unwrap();
        let report = install(&node.bin, &node.conf, &packaged, &entry).unwrap();
        assert!(report.iter().any(|l| l.contains("already in place")), "{report:?}");
        let report = node.uninstall(false).unwrap();
        assert!(report.iter().any(|l| l.contains("left") && l.contains("in place")), "{report:?}");
        assert_eq!(fs::read(&packaged).unwrap(), b"packaged", "the package's binary survives uninstall");
        assert_eq!(fs::read(node.conf.join("10-net.conflist")).unwrap(), CONFLIST.as_bytes());
    }

    #[test]
    fn without_a_plugin_anywhere_install_says_where_it_looked() {
        let node = Node::new();
        let e = default_plugin(&node.bin).unwrap_err();
        assert!(matches!(e, CniError::NoPlugin { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains(&node.bin.join("meshwire-cni").display().to_string()) && e.contains("--plugin"), "{e}");
    }

    #[test]
    fn install_is_idempotent() {
        let node = Node::new();
        node.put("10-net.conflist", CONFLIST, 0o644);
        node.install().unwrap();
        let once = node.snapshot();
        let report = node.install().unwrap();
        assert!(report.iter().any(|l| l.contains("already chains meshwire-cni")), "{report:?}");
        assert_eq!(node.snapshot(), once);
        assert_eq!(types(&node.json("10-net.conflist")).iter().filter(|t| *t == "meshwire-cni").count(), 1);
        // And uninstall twice: the second finds nothing to do.
        node.uninstall(false).unwrap();
        let report = node.uninstall(false).unwrap();
        assert!(report[0].contains("no meshwire-cni install recorded"), "{report:?}");
        assert_eq!(fs::read(node.conf.join("10-net.conflist")).unwrap(), CONFLIST.as_bytes());
    }

    #[test]
    fn single_conf_becomes_a_conflist_and_comes_back() {
        let node = Node::new();
        node.put("10-bridge.conf", CONF, 0o600);
        node.put("20-later.conflist", CONFLIST, 0o644);
        let before = node.snapshot();
        let report = node.install().unwrap();
        assert!(report.iter().any(|l| l.contains("is now")), "{report:?}");
        assert!(!node.conf.join("10-bridge.conf").exists(), "the .conf would load first");
        let v = node.json("10-bridge.conflist");
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["name"], "bridge-net");
        assert_eq!(types(&v), ["bridge", "meshwire-cni"]);
        assert_eq!(v["plugins"][0], serde_json::from_str::<Value>(CONF).unwrap(), "the original conf is the first plugin");
        assert_eq!(mode_of(&node.conf.join("10-bridge.conflist")).unwrap(), 0o600);
        assert_eq!(active(&node.conf).unwrap().0, node.conf.join("10-bridge.conflist"));
        assert!(!report.iter().any(|l| l.contains("WARNING")), "{report:?}");
        assert_eq!(types(&node.json("20-later.conflist")), ["bridge", "portmap"], "only the active file changes");

        node.install().unwrap();
        node.uninstall(false).unwrap();
        assert_eq!(node.snapshot(), before);
    }

    #[test]
    fn the_active_file_is_the_first_that_loads() {
        let node = Node::new();
        node.put("00-broken.conflist", "{not json", 0o644);
        node.put("05-empty.conflist", r#"{"cniVersion": "1.0.0", "name": "x", "plugins": []}"#, 0o644);
        node.put("06-notype.conf", r#"{"cniVersion": "1.0.0", "name": "x"}"#, 0o644);
        node.put("07-readme.txt", "not a conf", 0o644);
        fs::create_dir(node.conf.join("08-dir.conf")).unwrap();
        node.put("10-net.json", CONF, 0o644);
        node.put("20-net.conflist", CONFLIST, 0o644);
        let report = node.install().unwrap();
        assert_eq!(report.iter().filter(|l| l.starts_with("skipped")).count(), 3, "{report:?}");
        assert_eq!(types(&node.json("10-net.conflist")), ["bridge", "meshwire-cni"]);
        assert!(!node.conf.join("10-net.json").exists());
        node.uninstall(false).unwrap();
        assert_eq!(fs::read(node.conf.join("10-net.json")).unwrap(), CONF.as_bytes());
        assert!(!node.conf.join("10-net.conflist").exists());
    }

    #[test]
    fn already_chained_by_hand_is_left_alone() {
        let node = Node::new();
        let by_hand = CONFLIST.replace(r#"{"type": "portmap", "capabilities": {"portMappings": true}}"#, r#"{"type": "meshwire-cni", "failPolicy": "open"}"#);
        node.put("10-net.conflist", &by_hand, 0o644);
        let report = node.install().unwrap();
        assert!(report.iter().any(|l| l.contains("already chains")), "{report:?}");
        assert_eq!(fs::read(node.conf.join("10-net.conflist")).unwrap(), by_hand.as_bytes());
        assert!(!node.conf.join(BACKUP_DIR).exists());
        let report = node.uninstall(false).unwrap();
        assert!(report.iter().any(|l| l.contains("not through `cni install`")), "{report:?}");
        assert_eq!(fs::read(node.conf.join("10-net.conflist")).unwrap(), by_hand.as_bytes());
        // Nothing recorded that install owns the binary, and the chain by
        // hand still names it: it stays, and the report says so.
        assert!(node.bin.join("meshwire-cni").exists());
        assert!(report.iter().any(|l| l.contains("left") && l.contains("in place")), "{report:?}");
    }

    #[test]
    fn errors_are_clear_and_change_nothing() {
        let node = Node::new();
        let e = node.install().unwrap_err();
        assert!(matches!(&e, CniError::NoNetwork { skipped, .. } if skipped.is_empty()), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("no CNI network configuration in") && e.contains("install the node's network plugin first"), "{e}");
        assert!(!e.contains("skipped"), "{e}");
        node.put("00-broken.conflist", "[]", 0o644);
        node.put("01-broken.conf", "{\"name\": \"x\"}", 0o644);
        let e = node.install().unwrap_err();
        assert!(matches!(&e, CniError::NoNetwork { skipped, .. } if matches!(skipped[..], [BadConf { problem: ConfProblem::NotObject, .. }, BadConf { problem: ConfProblem::NoType, .. }])), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("; skipped: ") && e.contains("00-broken.conflist: not a JSON object; "), "{e}");
        assert!(e.ends_with("01-broken.conf: a network configuration without \"type\""), "{e}");
        assert!(!node.bin.join("meshwire-cni").exists(), "nothing installed");

        let node = Node::new();
        node.put("10-old.conf", r#"{"cniVersion": "0.2.0", "name": "old", "type": "bridge"}"#, 0o644);
        let before = node.snapshot();
        let e = node.install().unwrap_err();
        assert!(matches!(&e, CniError::Unchainable { version, .. } if version == "0.2.0"), "{e:?}");
        assert!(e.to_string().contains("cniVersion \"0.2.0\" cannot chain meshwire-cni (it needs one of 0.3.0,"), "{e}");
        assert_eq!(node.snapshot(), before);

        let node = Node::new();
        node.put("10-net.conflist", CONFLIST, 0o644);
        let before = node.snapshot();
        let e = install(&node.bin, &node.conf, &node.root.join("absent"), &Map::new()).unwrap_err();
        assert!(matches!(e, CniError::PluginUnreadable { .. }), "{e:?}");
        assert!(e.to_string().contains("the meshwire-cni binary") && e.to_string().contains("--plugin"), "{e}");
        let e = install(&node.root.join("nobin"), &node.conf, &node.plugin, &Map::new()).unwrap_err();
        assert!(matches!(e, CniError::NoBinDir(_)), "{e:?}");
        assert!(e.to_string().contains("CNI bin directory") && e.to_string().contains("--bin-dir"), "{e}");
        let e = install(&node.bin, &node.root.join("noconf"), &node.plugin, &Map::new()).unwrap_err();
        assert!(matches!(e, CniError::ConfDirUnreadable { .. }), "{e:?}");
        assert!(e.to_string().contains("reading CNI configuration directory") && e.to_string().contains("--conf-dir"), "{e}");
        assert_eq!(node.snapshot(), before);

        // A .conf whose .conflist twin exists.
        let node = Node::new();
        node.put("10-a.conf", CONF, 0o644);
        node.put("10-a.conflist", CONFLIST, 0o644);
        let e = node.install().unwrap_err();
        assert!(matches!(e, CniError::ConflistExists { .. }), "{e:?}");
        assert!(e.to_string().contains("10-a.conf would replace") && e.to_string().contains("move one of them away"), "{e}");
        assert!(!node.conf.join(BACKUP_DIR).exists() && !node.bin.join("meshwire-cni").exists(), "nothing installed");
    }

    #[test]
    fn a_stale_backup_is_never_overwritten() {
        let node = Node::new();
        node.put("10-bridge.conf", CONF, 0o644);
        node.install().unwrap();
        // Another network now loads first; the .conf exists only in the backup.
        node.put("05-new.conflist", CONFLIST, 0o644);
        let before = node.snapshot();
        let e = node.install().unwrap_err();
        assert!(matches!(e, CniError::StaleBackup { .. }), "{e:?}");
        assert!(e.to_string().contains("holds the backup of an earlier `cni install`") && e.to_string().contains("run `cni uninstall`"), "{e}");
        assert_eq!(node.snapshot(), before);
        node.uninstall(false).unwrap();
        assert_eq!(fs::read(node.conf.join("10-bridge.conf")).unwrap(), CONF.as_bytes());
    }

    #[test]
    fn uninstall_refuses_to_lose_a_later_edit_unless_forced() {
        let node = Node::new();
        node.put("10-net.conflist", CONFLIST, 0o644);
        node.install().unwrap();
        let edited = fs::read_to_string(node.conf.join("10-net.conflist")).unwrap().replace("cni0", "cni1");
        fs::write(node.conf.join("10-net.conflist"), &edited).unwrap();
        let e = node.uninstall(false).unwrap_err();
        assert!(matches!(e, CniError::ChangedSinceInstall { .. }), "{e:?}");
        assert!(e.to_string().contains("changed since `cni install`") && e.to_string().contains("--force"), "{e}");
        assert_eq!(fs::read_to_string(node.conf.join("10-net.conflist")).unwrap(), edited);
        node.uninstall(true).unwrap();
        assert_eq!(fs::read(node.conf.join("10-net.conflist")).unwrap(), CONFLIST.as_bytes());
    }

    #[test]
    fn a_damaged_install_record_is_refused_naming_the_backup() {
        let node = Node::new();
        node.put("10-net.conflist", CONFLIST, 0o644);
        node.install().unwrap();
        let manifest = node.conf.join(BACKUP_DIR).join(MANIFEST);
        let text = fs::read_to_string(&manifest).unwrap().replace("\"10-net.conflist\"", "\"../10-net.conflist\"");
        fs::write(&manifest, text).unwrap();
        let before = node.snapshot();
        let e = node.uninstall(false).unwrap_err();
        assert!(matches!(&e, CniError::BadManifest { problem, .. } if problem == "bad \"original\""), "{e:?}");
        let backup = node.conf.join(BACKUP_DIR);
        assert!(e.to_string().contains(&format!("restore the network configuration by hand from {}", backup.join(ORIGINAL).display())), "{e}");
        assert_eq!(node.snapshot(), before, "nothing restored or removed");
    }

    #[test]
    fn plugin_entries() {
        let annotations = json!({"io.kubernetes.cri.pod-annotations": true});
        assert_eq!(
            Value::Object(plugin_entry(Path::new("/run/meshwire/loader.sock"), None).unwrap()),
            json!({"type": "meshwire-cni", "capabilities": annotations})
        );
        let e = plugin_entry(Path::new("/run/mw/api.sock"), Some(r#"{"failPolicy": "open", "namespaces": {"exclude": ["kube-system"]}}"#)).unwrap();
        assert_eq!(
            Value::Object(e),
            json!({"type": "meshwire-cni", "capabilities": annotations, "loaderSocket": "/run/mw/api.sock", "failPolicy": "open", "namespaces": {"exclude": ["kube-system"]}})
        );
        // The operator's capabilities join ours.
        let e = plugin_entry(Path::new("/run/meshwire/loader.sock"), Some(r#"{"capabilities": {"meshwire": true}}"#)).unwrap();
        assert_eq!(e["capabilities"], json!({"io.kubernetes.cri.pod-annotations": true, "meshwire": true}));
        let bad = |extra: &str| plugin_entry(Path::new("/x"), Some(extra)).unwrap_err();
        let e = bad(r#"{"capabilities": true}"#);
        assert!(matches!(e, CniError::PluginConfigCapabilities) && e.to_string().contains("\"capabilities\" must be an object"), "{e}");
        let e = bad("[1]");
        assert!(matches!(e, CniError::PluginConfigNotObject) && e.to_string().contains("JSON object"), "{e}");
        let e = bad("{");
        assert!(matches!(e, CniError::PluginConfigNotJson(_)) && e.to_string().starts_with("--plugin-config is not JSON: "), "{e}");
        let e = bad(r#"{"type": "bridge"}"#);
        assert!(matches!(e, CniError::PluginConfigType) && e.to_string().contains("\"meshwire-cni\""), "{e}");
    }
}
