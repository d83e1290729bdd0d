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

use crate::pods;

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
        Ok(self.dir.join(format!("{container_id}.json")))
    }

    pub fn save(&self, record: &PodRecord) -> Result<(), String> {
        let path = self.path(&record.spec.container_id)?;
        let tmp = self.dir.join(format!(".{}.tmp", record.spec.container_id));
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
            let Some(id) = name.strip_suffix(".json") else { continue };
            match self.load(id) {
                Ok(Some(r)) if r.spec.container_id == id => records.push(r),
                Ok(Some(_)) => broken.push(format!("{}: container_id does not match the file name", entry.path().display())),
                Ok(None) => {}
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
    fn path_traversal_ids_are_refused() {
        let dir = temp();
        let r = Records::open(&dir).unwrap();
        assert!(r.load("../../etc/passwd").is_err());
        assert!(r.save(&record("../x")).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
