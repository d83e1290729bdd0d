//! Pod records: what the loader was asked to do for each pod, persisted so a
//! restarted loader (also after kill -9) knows its pods.
//!
//! One JSON file per pod, `<state_dir>/pods/<container_id>.json`, written to a
//! temporary name and renamed into place, so a crash never leaves half a file.
//! The state dir is on tmpfs (/run) by default: after a reboot the pods'
//! namespaces are gone too.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use meshwire_api::PodRecord;

use crate::service::pods;

/// Longest record file stem: `.<stem>.tmp` and `<stem>.json` fit in a file
/// name (NAME_MAX, 255 bytes).
const MAX_STEM: usize = 250;

/// The file name of a container's record, without `.json`: its ID, or for an
/// ID too long for that, a prefix of it, '~' (never in an ID) and a 64-bit
/// FNV-1a hash of the whole ID. The record inside names the ID in full.
fn file_stem(container_id: &str) -> String {
    if container_id.len() <= MAX_STEM {
        return container_id.to_string();
    }
    let hash = container_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("{}~{hash:016x}", &container_id[..MAX_STEM - 17])
}

pub struct Records {
    dir: PathBuf,
}

impl Records {
    pub fn open(state_dir: &Path) -> Result<Records, String> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = state_dir.join("pods");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(Records { dir })
    }

    fn path(&self, container_id: &str) -> Result<PathBuf, String> {
        pods::check_container_id(container_id)?;
        Ok(self.dir.join(format!("{}.json", file_stem(container_id))))
    }

    pub fn save(&self, record: &PodRecord) -> Result<(), String> {
        let path = self.path(&record.spec.container_id)?;
        let tmp = self.dir.join(format!(".{}.tmp", file_stem(&record.spec.container_id)));
        let text = serde_json::to_string_pretty(record).expect("records serialize");
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("writing pod record {}: {e}", path.display())
        })
    }

    pub fn load(&self, container_id: &str) -> Result<Option<PodRecord>, String> {
        let path = self.path(container_id)?;
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| format!("pod record {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    /// Ok(false) when there was no record.
    pub fn remove(&self, container_id: &str) -> Result<bool, String> {
        let path = self.path(container_id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("removing {}: {e}", path.display())),
        }
    }

    /// Every record, sorted by container id; unreadable files are reported
    /// (with their path) rather than silently skipped.
    pub fn all(&self) -> Result<(Vec<PodRecord>, Vec<String>), String> {
        let mut records = Vec::new();
        let mut broken = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(|e| format!("reading {}: {e}", self.dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                // A temporary file of a write that never finished.
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let Some(stem) = name.strip_suffix(".json") else { continue };
            let path = entry.path();
            let read = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()));
            match read.and_then(|t| serde_json::from_str::<PodRecord>(&t).map_err(|e| format!("pod record {}: {e}", path.display()))) {
                Ok(r) if file_stem(&r.spec.container_id) == stem && pods::check_container_id(&r.spec.container_id).is_ok() => records.push(r),
                Ok(_) => broken.push(format!("{}: container_id does not match the file name", path.display())),
                Err(e) => broken.push(e),
            }
        }
        records.sort_by(|a, b| a.spec.container_id.cmp(&b.spec.container_id));
        Ok((records, broken))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshwire_api::PodSpec;

    fn record(id: &str) -> PodRecord {
        PodRecord {
            spec: PodSpec {
                container_id: id.into(),
                netns: "/run/netns/x".into(),
                ifname: "eth0".into(),
                ips: vec!["10.0.0.9".parse().unwrap()],
                namespace: Some("ns".into()),
                name: Some("n".into()),
                network: Some("mesh-net".into()),
                ..Default::default()
            },
            netns_cookie: 77,
        }
    }

    fn temp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("meshwire-records-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn save_load_list_remove() {
        let dir = temp();
        let r = Records::open(&dir).unwrap();
        r.save(&record("b")).unwrap();
        r.save(&record("a")).unwrap();
        assert_eq!(r.load("a").unwrap(), Some(record("a")));
        let (all, broken) = r.all().unwrap();
        assert_eq!(all.iter().map(|r| r.spec.container_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(broken.is_empty());
        assert!(r.remove("a").unwrap());
        assert!(!r.remove("a").unwrap());
        assert_eq!(r.load("a").unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn torn_writes_and_garbage_are_handled() {
        let dir = temp();
        let r = Records::open(&dir).unwrap();
        fs::write(dir.join("pods/.x.tmp"), "{half").unwrap();
        fs::write(dir.join("pods/bad.json"), "not json").unwrap();
        r.save(&record("good")).unwrap();
        let (all, broken) = r.all().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(!dir.join("pods/.x.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ids_of_up_to_256_characters_have_records() {
        let dir = temp();
        let r = Records::open(&dir).unwrap();
        let long: Vec<String> = (250..=256).map(|n| "c".repeat(n - 1) + "x").collect();
        for id in &long {
            r.save(&record(id)).unwrap();
        }
        // Two IDs that share the kept prefix stay apart.
        let twin = "c".repeat(255) + "y";
        r.save(&record(&twin)).unwrap();
        for id in long.iter().chain([&twin]) {
            assert_eq!(r.load(id).unwrap().unwrap().spec.container_id, *id);
        }
        let (all, broken) = r.all().unwrap();
        assert_eq!(all.len(), long.len() + 1, "{broken:?}");
        assert!(broken.is_empty(), "{broken:?}");
        for id in long.iter().chain([&twin]) {
            assert!(r.remove(id).unwrap());
        }
        assert!(!r.remove(&long[6]).unwrap(), "removing it again: nothing there");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn path_traversal_ids_are_refused() {
        let dir = temp();
        let r = Records::open(&dir).unwrap();
        assert!(r.load("../../etc/passwd").is_err());
        assert!(r.save(&record("../x")).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
