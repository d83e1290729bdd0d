//! Pod records: what the loader was asked to do for each pod, persisted so a
//! restarted loader (also after kill -9) knows its pods.
//!
//! One JSON file per attachment (a pod on two networks has two),
//! `<state_dir>/pods/<container_id>@<ifname>.json` (`@` is not allowed in a
//! container ID), written to a temporary name and renamed into place, so a
//! crash never leaves half a file. Records of the previous layout,
//! `<container_id>.json`, are renamed to theirs when the records are opened,
//! so an upgraded loader adopts the pods an older one meshed.
//! The state dir is on tmpfs (/run) by default: after a reboot the pods'
//! namespaces are gone too.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use meshwire_api::PodRecord;

use crate::error::{Error, OrOs};
use crate::interception::pods;
use crate::timing;

/// Longest interface name (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;
/// Longest container part of a record's file name: `.<stem>@<ifname>.tmp`
/// fits in a file name (NAME_MAX, 255 bytes).
const MAX_STEM: usize = 255 - 1 - 1 - MAX_IFNAME - 4;
/// The same for the previous layout's `.<stem>.tmp` (records to migrate).
const MAX_STEM_UNATTACHED: usize = 250;

/// The file name of a container's record, without `.json`: its ID, or for an
/// ID too long for that, a prefix of it, '~' (never in an ID) and a 64-bit
/// FNV-1a hash of the whole ID. The record inside names the ID in full.
fn file_stem(container_id: &str) -> String {
    stem_within(container_id, MAX_STEM)
}

/// The name a record is written under before its rename into place.
pub(crate) fn temp_name(container_id: &str, ifname: &str) -> String {
    format!(".{}@{ifname}.tmp", file_stem(container_id))
}

fn stem_within(container_id: &str, max: usize) -> String {
    if container_id.len() <= max {
        return container_id.to_string();
    }
    let hash = container_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("{}~{hash:016x}", &container_id[..max - 17])
}

fn read_record(path: &Path) -> Result<PodRecord, Error> {
    let text = fs::read_to_string(path).or_os(|| format!("reading {}", path.display()))?;
    parse_record(path, &text)
}

/// A record's text; one that does not parse is named with its path.
fn parse_record(path: &Path, text: &str) -> Result<PodRecord, Error> {
    // `unchecked` is the running loader's view (PodService), never a record's.
    let unchecked = |r: PodRecord| PodRecord { unchecked: None, ..r };
    serde_json::from_str::<PodRecord>(text).map(unchecked).map_err(|e| Error::Internal(format!("pod record {}: {e}", path.display())))
}

pub struct Records {
    dir: PathBuf,
    /// The interface names each container has a record for, by file stem:
    /// read from the directory when the records are opened, then kept in
    /// step by `save` and `remove` (the loader holding the node's lock is the
    /// only writer), so that finding a container's records costs the same
    /// with 4,000 pods as with one, instead of listing the directory.
    attachments: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl Records {
    pub fn open(state_dir: &Path) -> Result<Records, Error> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = state_dir.join("pods");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).or_os(|| format!("creating {}", dir.display()))?;
        let records = Records { dir, attachments: Mutex::new(HashMap::new()) };
        records.migrate()?;
        let entries = fs::read_dir(&records.dir).or_os(|| format!("reading {}", records.dir.display()))?;
        let mut index = records.index();
        for name in entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()) {
            if let Some((stem, ifname)) = name.strip_suffix(".json").filter(|_| !name.starts_with('.')).and_then(|n| n.split_once('@')) {
                index.entry(stem.to_string()).or_default().insert(ifname.to_string());
            }
        }
        drop(index);
        Ok(records)
    }

    fn index(&self) -> MutexGuard<'_, HashMap<String, BTreeSet<String>>> {
        self.attachments.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many attachments have records (without reading them).
    pub fn count(&self) -> usize {
        self.index().values().map(BTreeSet::len).sum()
    }

    /// `<container_id>.json` (one attachment per container) becomes
    /// `<container_id>@<ifname>.json`; an unreadable one is left for `all`
    /// to report.
    fn migrate(&self) -> Result<(), Error> {
        let entries = fs::read_dir(&self.dir).or_os(|| format!("reading {}", self.dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json").filter(|id| !id.contains('@') && !name.starts_with('.')) else { continue };
            let Ok(record) = read_record(&entry.path()) else { continue };
            if stem_within(&record.spec.container_id, MAX_STEM_UNATTACHED) != stem {
                continue;
            }
            let to = self.path(&record.spec.container_id, &record.spec.ifname)?;
            fs::rename(entry.path(), &to).or_os(|| format!("renaming pod record {} to {}", entry.path().display(), to.display()))?;
            log::info!("pod record {} is now {}", entry.path().display(), to.display());
        }
        Ok(())
    }

    fn path(&self, container_id: &str, ifname: &str) -> Result<PathBuf, Error> {
        pods::check_container_id(container_id)?;
        if ifname.contains(['/', '\0']) || ifname == "." || ifname == ".." || ifname.len() > MAX_IFNAME {
            return Err(Error::Invalid(format!("ifname {ifname:?} is not an interface name")));
        }
        Ok(self.dir.join(format!("{}@{ifname}.json", file_stem(container_id))))
    }

    pub fn save(&self, record: &PodRecord) -> Result<(), Error> {
        let path = self.path(&record.spec.container_id, &record.spec.ifname)?;
        let tmp = self.dir.join(temp_name(&record.spec.container_id, &record.spec.ifname));
        let text = match record.unchecked {
            None => serde_json::to_string_pretty(record),
            // The running loader's view (PodService), never written.
            Some(_) => serde_json::to_string_pretty(&PodRecord { unchecked: None, ..record.clone() }),
        }
        .expect("records serialize");
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            self.index().entry(file_stem(&record.spec.container_id)).or_default().insert(record.spec.ifname.clone());
            Ok(())
        };
        let written = write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::os(format_args!("writing pod record {}", path.display()), &e)
        });
        timing::mark("record write");
        written
    }

    /// The record of one attachment.
    pub fn load(&self, container_id: &str, ifname: &str) -> Result<Option<PodRecord>, Error> {
        let path = self.path(container_id, ifname)?;
        match fs::read_to_string(&path) {
            Ok(text) => parse_record(&path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::os(format_args!("reading {}", path.display()), &e)),
        }
    }

    /// Every attachment of a container, by interface name.
    pub fn of_container(&self, container_id: &str) -> Result<Vec<PodRecord>, Error> {
        self.of_container_but(container_id, None)
    }

    /// Every attachment of a container but the one on `ifname`, whose
    /// record is not read (a DEL has it in hand).
    pub fn others_of_container(&self, container_id: &str, ifname: &str) -> Result<Vec<PodRecord>, Error> {
        self.of_container_but(container_id, Some(ifname))
    }

    fn of_container_but(&self, container_id: &str, but: Option<&str>) -> Result<Vec<PodRecord>, Error> {
        pods::check_container_id(container_id)?;
        let ifnames: Vec<String> =
            self.index().get(&file_stem(container_id)).map(|s| s.iter().filter(|i| Some(i.as_str()) != but).cloned().collect()).unwrap_or_default();
        let mut out = Vec::new();
        for ifname in ifnames {
            // Another container whose long ID shares the stem: not this one's.
            if let Some(r) = self.load(container_id, &ifname)?.filter(|r| r.spec.container_id == container_id) {
                out.push(r);
            }
        }
        timing::mark("records read");
        Ok(out)
    }

    /// Ok(false) when there was no record.
    pub fn remove(&self, container_id: &str, ifname: &str) -> Result<bool, Error> {
        let path = self.path(container_id, ifname)?;
        let removed = fs::remove_file(&path);
        timing::mark("record remove");
        let gone = match removed {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::os(format_args!("removing {}", path.display()), &e)),
        };
        let stem = file_stem(container_id);
        let mut index = self.index();
        if let Some(ifnames) = index.get_mut(&stem) {
            ifnames.remove(ifname);
            if ifnames.is_empty() {
                index.remove(&stem);
            }
        }
        Ok(gone)
    }

    /// Every record, sorted by container id; unreadable files are reported
    /// (with their path) rather than silently skipped.
    pub fn all(&self) -> Result<(Vec<PodRecord>, Vec<String>), Error> {
        let mut records = Vec::new();
        let mut broken = Vec::new();
        let entries = fs::read_dir(&self.dir).or_os(|| format!("reading {}", self.dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                // A temporary file of a write that never finished.
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let Some((stem, ifname)) = name.strip_suffix(".json").and_then(|n| n.split_once('@')) else {
                if name.ends_with(".json") {
                    broken.push(format!("{}: not a record this loader can read (not <container_id>@<ifname>.json)", entry.path().display()));
                }
                continue;
            };
            let path = entry.path();
            match read_record(&path) {
                Ok(r) if file_stem(&r.spec.container_id) == stem && r.spec.ifname == ifname && pods::check_container_id(&r.spec.container_id).is_ok() => {
                    records.push(r)
                }
                Ok(_) => broken.push(format!("{}: container_id or ifname does not match the file name", path.display())),
                Err(e) => broken.push(e.to_string()),
            }
        }
        records.sort_by(|a, b| (&a.spec.container_id, &a.spec.ifname).cmp(&(&b.spec.container_id, &b.spec.ifname)));
        Ok((records, broken))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> PodRecord {
        meshwire_api::testing::record(id, 77)
    }

    fn temp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("meshwire-records-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    /// What a running loader could not look at (`unchecked`) is never
    /// written, nor taken from a file that holds it.
    #[test]
    fn unchecked_is_neither_written_nor_read() {
        let dir = temp();
        let r = Records::open(&dir).unwrap();
        let mut unchecked = record("a");
        unchecked.unchecked = Some("opening network namespace /run/netns/x: Too many open files (os error 24)".into());
        r.save(&unchecked).unwrap();
        let path = r.path("a", "eth0").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("unchecked"), "{text}");
        fs::write(&path, serde_json::to_string(&unchecked).unwrap()).unwrap();
        assert_eq!(r.load("a", "eth0").unwrap(), Some(record("a")));
        assert_eq!(r.all().unwrap().0, vec![record("a")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn save_load_list_remove() {
        let dir = temp();
        let r = Records::open(&dir).unwrap();
        r.save(&record("b")).unwrap();
        r.save(&record("a")).unwrap();
        assert_eq!(r.load("a", "eth0").unwrap(), Some(record("a")));
        assert_eq!(r.load("a", "net1").unwrap(), None);
        let (all, broken) = r.all().unwrap();
        assert_eq!(all.iter().map(|r| r.spec.container_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(broken.is_empty());
        assert!(r.remove("a", "eth0").unwrap());
        assert!(!r.remove("a", "eth0").unwrap());
        assert_eq!(r.load("a", "eth0").unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A pod on two networks: one record per attachment, by interface.
    #[test]
    fn attachments_of_one_container() {
        let dir = temp();
        let r = Records::open(&dir).unwrap();
        let mut net1 = record("c");
        net1.spec.ifname = "net1".into();
        r.save(&record("c")).unwrap();
        r.save(&net1).unwrap();
        r.save(&record("c2")).unwrap();
        let ifs: Vec<String> = r.of_container("c").unwrap().into_iter().map(|r| r.spec.ifname).collect();
        assert_eq!(ifs, ["eth0", "net1"]);
        assert_eq!(r.count(), 3);
        let reopened = Records::open(&dir).unwrap();
        assert_eq!(reopened.of_container("c").unwrap().len(), 2, "found again from the directory");
        assert_eq!(reopened.count(), 3);
        assert!(r.remove("c", "eth0").unwrap());
        assert_eq!(r.of_container("c").unwrap(), vec![net1]);
        assert_eq!(r.all().unwrap().0.len(), 2);
        assert_eq!(r.count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Records the previous version wrote (`<container_id>.json`) are
    /// adopted: renamed to their attachment's name, content unchanged.
    #[test]
    fn records_of_the_previous_layout_are_adopted() {
        let dir = temp();
        fs::create_dir_all(dir.join("pods")).unwrap();
        let old = serde_json::to_string_pretty(&record("old")).unwrap();
        fs::write(dir.join("pods/old.json"), &old).unwrap();
        fs::write(dir.join("pods/junk.json"), "not json").unwrap();
        let r = Records::open(&dir).unwrap();
        assert_eq!(fs::read_to_string(dir.join("pods/old@eth0.json")).unwrap(), old);
        assert!(!dir.join("pods/old.json").exists());
        let (all, broken) = r.all().unwrap();
        assert_eq!(all, vec![record("old")]);
        assert_eq!(broken.len(), 1, "the unreadable one is reported: {broken:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_record_whose_cidr_does_not_parse_is_reported_never_kept_without_it() {
        let dir = temp();
        let r = Records::open(&dir).unwrap();
        let mut text = serde_json::to_value(record("edited")).unwrap();
        text["exclude_outbound_cidrs"] = serde_json::json!(["10.96.0.0/12", "10.1.2.3/8"]);
        fs::write(dir.join("pods/edited@eth0.json"), text.to_string()).unwrap();
        let (all, broken) = r.all().unwrap();
        assert!(all.is_empty(), "kept {all:?}");
        assert!(broken.len() == 1 && broken[0].contains("10.1.2.3/8") && broken[0].contains("host bits"), "{broken:?}");
        assert!(r.load("edited", "eth0").unwrap_err().message().contains("10.1.2.3/8"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn torn_writes_and_garbage_are_handled() {
        let dir = temp();
        let r = Records::open(&dir).unwrap();
        fs::write(dir.join("pods/.x.tmp"), "{half").unwrap();
        fs::write(dir.join("pods/bad@eth0.json"), "not json").unwrap();
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
            assert_eq!(r.load(id, "eth0").unwrap().unwrap().spec.container_id, *id);
            assert_eq!(r.of_container(id).unwrap().len(), 1);
        }
        let (all, broken) = r.all().unwrap();
        assert_eq!(all.len(), long.len() + 1, "{broken:?}");
        assert!(broken.is_empty(), "{broken:?}");
        for id in long.iter().chain([&twin]) {
            assert!(r.remove(id, "eth0").unwrap());
        }
        assert!(!r.remove(&long[6], "eth0").unwrap(), "removing it again: nothing there");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn path_traversal_ids_are_refused() {
        let dir = temp();
        let r = Records::open(&dir).unwrap();
        // Refused as invalid input, never as a failed system call.
        assert!(matches!(r.load("../../etc/passwd", "eth0"), Err(Error::Invalid(_))));
        assert!(matches!(r.load("c", "../x"), Err(Error::Invalid(_))));
        assert!(matches!(r.save(&record("../x")), Err(Error::Invalid(_))));
        fs::remove_dir_all(&dir).unwrap();
    }
}
