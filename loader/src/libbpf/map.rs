//! Maps: their kernel facts, typed element access, ring buffers.

use std::ffi::{c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::ptr;

use libbpf_sys as sys;

use super::cstr::{c_str_lossy, cstring};
use super::error::{BpfError, Result, check, errno_error};
use super::pin::obj_get;

/// Static facts about a map, from the kernel.
#[derive(Debug, Clone)]
pub struct MapInfo {
    /// The kernel's copy of the name (at most 15 bytes).
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

impl MapInfo {
    /// What libbpf compares before it reuses a pinned map for a definition.
    pub fn same_shape(&self, def: &MapInfo) -> bool {
        (self.map_type, self.key_size, self.value_size, self.max_entries, self.map_flags)
            == (def.map_type, def.key_size, def.value_size, def.max_entries, def.map_flags)
    }

    /// Whether userspace can copy this type's entries into another map of
    /// the same type and sizes (socket maps hold sockets, socket storage
    /// cannot be walked by key, a ring buffer has no entries).
    pub fn entries_copyable(&self) -> bool {
        !matches!(
            self.map_type,
            sys::BPF_MAP_TYPE_SOCKHASH | sys::BPF_MAP_TYPE_SOCKMAP | sys::BPF_MAP_TYPE_SK_STORAGE | sys::BPF_MAP_TYPE_RINGBUF
        )
    }

    fn is_percpu(&self) -> bool {
        matches!(
            self.map_type,
            sys::BPF_MAP_TYPE_PERCPU_ARRAY | sys::BPF_MAP_TYPE_PERCPU_HASH | sys::BPF_MAP_TYPE_LRU_PERCPU_HASH
        )
    }
}

/// A map descriptor (usually from a pin), with typed element access.
/// A map's type and sizes never change, so they are read once, at open.
pub struct MapFd {
    pub(super) fd: OwnedFd,
    path: PathBuf,
    pub(super) info: MapInfo,
    id: u32,
}

impl MapFd {
    fn new(fd: OwnedFd, path: PathBuf) -> Result<MapFd> {
        let mut info = sys::bpf_map_info::default();
        let mut len = std::mem::size_of::<sys::bpf_map_info>() as u32;
        let ret = unsafe { sys::bpf_map_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
        check(ret, || format!("reading info of map {}", path.display()))?;
        let map_info = MapInfo {
            name: unsafe { c_str_lossy(info.name.as_ptr()) },
            map_type: info.type_,
            key_size: info.key_size,
            value_size: info.value_size,
            max_entries: info.max_entries,
            map_flags: info.map_flags,
        };
        Ok(MapFd { fd, path, info: map_info, id: info.id })
    }

    pub fn open_pinned(path: &Path) -> Result<MapFd> {
        MapFd::new(obj_get(path)?, path.to_path_buf())
    }

    /// A map by kernel id (e.g. one a loaded program uses).
    pub fn from_id(id: u32) -> Result<MapFd> {
        let fd = unsafe { sys::bpf_map_get_fd_by_id(id) };
        if fd < 0 {
            return Err(errno_error(format!("opening map id {id}")));
        }
        MapFd::new(unsafe { OwnedFd::from_raw_fd(fd) }, PathBuf::from(format!("<map id {id}>")))
    }

    /// The value at `key` as bytes ([`Self::value_len`] of them: a per-CPU
    /// value with every CPU's), None when absent.
    pub fn lookup_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if key.len() != self.info.key_size as usize {
            return Err(BpfError {
                what: format!("map {}", self.path.display()),
                source: io::Error::new(io::ErrorKind::InvalidInput, format!("key of {} bytes, the map's are {}", key.len(), self.info.key_size)),
            });
        }
        let mut value = vec![0u8; self.value_len()?.max(1)];
        Ok(self.lookup_into(key, &mut value)?.then_some(value))
    }

    /// Reads the value at `key` into the beginning of `value` (at least
    /// [`Self::value_len`] bytes); Ok(false) when absent (gone since a
    /// walk: an LRU eviction, a close).
    fn lookup_into(&self, key: &[u8], value: &mut [u8]) -> Result<bool> {
        let ret = unsafe { sys::bpf_map_lookup_elem(self.fd.as_raw_fd(), key.as_ptr() as *const c_void, value.as_mut_ptr() as *mut c_void) };
        if ret == -libc::ENOENT {
            return Ok(false);
        }
        check(ret, || format!("looking up map {}", self.path.display()))?;
        Ok(true)
    }

    pub fn info(&self) -> Result<MapInfo> {
        Ok(self.info.clone())
    }

    /// The map's kernel id (the same for every descriptor and pin of it).
    pub fn id(&self) -> u32 {
        self.id
    }

    fn check_sizes<K, V>(&self, value_size: usize) -> Result<()> {
        let info = self.info()?;
        if info.key_size as usize != std::mem::size_of::<K>() || info.value_size as usize != value_size {
            return Err(BpfError {
                what: format!("map {}", self.path.display()),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "key/value sizes {}/{} do not match the loader's {}/{}: was it pinned by another meshwire version?",
                        info.key_size,
                        info.value_size,
                        std::mem::size_of::<K>(),
                        value_size
                    ),
                ),
            });
        }
        Ok(())
    }

    pub fn update<K: Copy, V: Copy>(&self, key: &K, value: &V) -> Result<()> {
        self.check_sizes::<K, V>(std::mem::size_of::<V>())?;
        let ret = unsafe {
            sys::bpf_map_update_elem(
                self.fd.as_raw_fd(),
                key as *const K as *const c_void,
                value as *const V as *const c_void,
                sys::BPF_ANY as u64,
            )
        };
        check(ret, || format!("updating map {}", self.path.display()))?;
        Ok(())
    }

    pub fn lookup<K: Copy, V: Copy + Default>(&self, key: &K) -> Result<Option<V>> {
        self.check_sizes::<K, V>(std::mem::size_of::<V>())?;
        let mut value = V::default();
        let ret = unsafe {
            sys::bpf_map_lookup_elem(
                self.fd.as_raw_fd(),
                key as *const K as *const c_void,
                &mut value as *mut V as *mut c_void,
            )
        };
        if ret == -libc::ENOENT {
            return Ok(None);
        }
        check(ret, || format!("looking up map {}", self.path.display()))?;
        Ok(Some(value))
    }

    /// Sum of a per-CPU u64 slot over all possible CPUs.
    pub fn lookup_percpu_sum<K: Copy>(&self, key: &K) -> Result<u64> {
        let ncpu = unsafe { sys::libbpf_num_possible_cpus() };
        let ncpu = check(ncpu, || "counting possible CPUs".to_string())? as usize;
        self.check_sizes::<K, u64>(8)?;
        let mut values = vec![0u64; ncpu];
        let ret = unsafe {
            sys::bpf_map_lookup_elem(
                self.fd.as_raw_fd(),
                key as *const K as *const c_void,
                values.as_mut_ptr() as *mut c_void,
            )
        };
        check(ret, || format!("looking up map {}", self.path.display()))?;
        Ok(values.iter().sum())
    }

    /// Delete a key; Ok(false) when it was not there.
    pub fn delete<K: Copy>(&self, key: &K) -> Result<bool> {
        let ret = unsafe { sys::bpf_map_delete_elem(self.fd.as_raw_fd(), key as *const K as *const c_void) };
        if ret == -libc::ENOENT {
            return Ok(false);
        }
        check(ret, || format!("deleting from map {}", self.path.display()))?;
        Ok(true)
    }

    /// All keys, as raw bytes (works for any key type, e.g. for counting).
    pub fn raw_keys(&self) -> Result<Vec<Vec<u8>>> {
        let key_size = self.info()?.key_size as usize;
        let mut keys = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        loop {
            let mut next = vec![0u8; key_size.max(1)];
            let prev = cur.as_ref().map_or(ptr::null(), |k| k.as_ptr() as *const c_void);
            let ret = unsafe { sys::bpf_map_get_next_key(self.fd.as_raw_fd(), prev, next.as_mut_ptr() as *mut c_void) };
            if ret == -libc::ENOENT {
                return Ok(keys);
            }
            check(ret, || format!("iterating map {}", self.path.display()))?;
            keys.push(next.clone());
            cur = Some(next);
        }
    }

    /// How many bytes one value takes in a lookup or update: value_size,
    /// or for a per-CPU map every possible CPU's, each rounded up to 8.
    fn value_len(&self) -> Result<usize> {
        if !self.info.is_percpu() {
            return Ok(self.info.value_size as usize);
        }
        let ncpu = unsafe { sys::libbpf_num_possible_cpus() };
        let ncpu = check(ncpu, || "counting possible CPUs".to_string())? as usize;
        Ok((self.info.value_size as usize).div_ceil(8) * 8 * ncpu)
    }

    /// Every entry, as raw bytes: (key, value), a per-CPU value with every
    /// CPU's (as [`Self::value_len`]). An entry gone during the walk is left out.
    pub fn raw_entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let len = self.value_len()?;
        let mut entries = Vec::new();
        for key in self.raw_keys()? {
            let mut value = vec![0u8; len.max(1)];
            if self.lookup_into(&key, &mut value)? {
                entries.push((key, value));
            }
        }
        Ok(entries)
    }

    /// Writes `entries` (as [`Self::raw_entries`] gives them), replacing
    /// the values of keys the map holds.
    pub fn update_raw_entries(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        let len = self.value_len()?;
        for (key, value) in entries {
            if key.len() != self.info.key_size as usize || value.len() != len {
                return Err(BpfError {
                    what: format!("updating map {}", self.path.display()),
                    source: io::Error::new(io::ErrorKind::InvalidInput, format!("an entry of {}/{} bytes, the map's are {}/{len}", key.len(), value.len(), self.info.key_size)),
                });
            }
            let ret = unsafe { sys::bpf_map_update_elem(self.fd.as_raw_fd(), key.as_ptr() as *const c_void, value.as_ptr() as *const c_void, sys::BPF_ANY as u64) };
            check(ret, || format!("updating map {}", self.path.display()))?;
        }
        Ok(())
    }

    /// For counters (u64 values, per CPU or not, in maps of the same type
    /// and sizes): adds to each entry of `dst` what this map's counted since
    /// `since` (its [`Self::raw_entries`] earlier; a key not there counts
    /// from 0), u64 by u64, CPU by CPU. Returns this map's entries as they
    /// were read (the next `since`). A count `dst`'s programs make between
    /// the read and the write of an entry is lost (a userspace update
    /// writes the whole value).
    pub fn add_counts_since_into(&self, since: &[(Vec<u8>, Vec<u8>)], dst: &MapFd) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (from, to) = (&self.info, &dst.info);
        if (from.map_type, from.key_size, from.value_size) != (to.map_type, to.key_size, to.value_size) || from.value_size % 8 != 0 || !from.entries_copyable() {
            return Err(BpfError {
                what: format!("adding the counts of map {} into {}", self.path.display(), dst.path.display()),
                source: io::Error::new(io::ErrorKind::InvalidInput, "the maps differ in type or sizes, or their values are not u64 counters"),
            });
        }
        let now = self.raw_entries()?;
        let words = |v: &[u8]| v.chunks_exact(8).map(|w| u64::from_ne_bytes(w.try_into().unwrap())).collect::<Vec<u64>>();
        for (key, value) in &now {
            let before = since.iter().find(|(k, _)| k == key).map(|(_, v)| words(v)).unwrap_or_default();
            let mut sum = vec![0u8; value.len()];
            dst.lookup_into(key, &mut sum)?;
            let added: Vec<u8> = words(&sum)
                .iter()
                .zip(words(value))
                .enumerate()
                .flat_map(|(i, (&have, counted))| have.wrapping_add(counted.wrapping_sub(before.get(i).copied().unwrap_or(0))).to_ne_bytes())
                .collect();
            let ret = unsafe { sys::bpf_map_update_elem(dst.fd.as_raw_fd(), key.as_ptr() as *const c_void, added.as_ptr() as *const c_void, sys::BPF_ANY as u64) };
            check(ret, || format!("updating map {}", dst.path.display()))?;
        }
        Ok(now)
    }

    /// A new map (not pinned) with `info`'s type, sizes, capacity and flags.
    pub fn create_like(info: &MapInfo) -> Result<MapFd> {
        let fd = map_create_like(info, info.max_entries)?;
        MapFd::new(fd, PathBuf::from(format!("<a new {}>", info.name)))
    }

    /// Copies every entry into `dst` (same type and key size, a capacity of
    /// its own; the same value size, or a longer one with `mode.widen`), as
    /// `mode` says; returns how many were written. Per-CPU values are copied
    /// CPU by CPU.
    pub fn copy_entries_into(&self, dst: &MapFd, mode: CopyMode) -> Result<usize> {
        let CopyMode { widen, only_missing } = mode;
        let (from, to) = (&self.info, &dst.info);
        let sizes_fit = if widen { from.value_size < to.value_size && !from.is_percpu() } else { from.value_size == to.value_size };
        if (from.map_type, from.key_size) != (to.map_type, to.key_size) || !sizes_fit || !from.entries_copyable() {
            return Err(BpfError {
                what: format!("copying map {} into {}", self.path.display(), dst.path.display()),
                source: io::Error::new(io::ErrorKind::InvalidInput, "the maps differ in type or sizes, or entries of this type cannot be copied"),
            });
        }
        let value_len = if from.is_percpu() { self.value_len()? } else { to.value_size as usize };
        let mut value = vec![0u8; value_len.max(1)];
        let mut copied = 0;
        let flags = if only_missing { sys::BPF_NOEXIST } else { sys::BPF_ANY } as u64;
        for key in self.raw_keys()? {
            // The old value fills the beginning; a widened value's tail stays 0.
            value.fill(0);
            if !self.lookup_into(&key, &mut value)? {
                continue;
            }
            let ret = unsafe {
                sys::bpf_map_update_elem(dst.fd.as_raw_fd(), key.as_ptr() as *const c_void, value.as_ptr() as *const c_void, flags)
            };
            if only_missing && ret == -libc::EEXIST {
                continue;
            }
            check(ret, || format!("updating map {}", dst.path.display()))?;
            copied += 1;
        }
        Ok(copied)
    }

    /// For tests: set a value from raw bytes (per-CPU maps: every CPU's).
    #[cfg(test)]
    pub fn update_raw(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let ret = unsafe { sys::bpf_map_update_elem(self.fd.as_raw_fd(), key.as_ptr() as *const c_void, value.as_ptr() as *const c_void, sys::BPF_ANY as u64) };
        check(ret, || format!("updating map {}", self.path.display()))?;
        Ok(())
    }

    /// All keys of a typed map.
    pub fn keys<K: Copy>(&self) -> Result<Vec<K>> {
        self.check_sizes::<K, ()>(self.info()?.value_size as usize)?;
        Ok(self
            .raw_keys()?
            .into_iter()
            .map(|raw| unsafe { ptr::read_unaligned(raw.as_ptr() as *const K) })
            .collect())
    }
}

impl AsRawFd for MapFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// What a [`RingBuffer`] callback does with one record.
pub(super) type SampleFn<'a> = Box<dyn FnMut(&[u8]) + 'a>;

/// A consumer of a BPF ring buffer map (`BPF_MAP_TYPE_RINGBUF`): libbpf's
/// `ring_buffer`, which maps the buffer and calls back once per record.
/// Freed on drop; the callback lives as long as the consumer.
pub struct RingBuffer<'a> {
    pub(super) ptr: *mut sys::ring_buffer,
    // Boxed twice: libbpf holds a thin pointer to the inner box.
    pub(super) _cb: Box<SampleFn<'a>>,
}

pub(super) unsafe extern "C" fn ring_buffer_sample(ctx: *mut c_void, data: *mut c_void, size: sys::size_t) -> c_int {
    // SAFETY: ctx is the Box<SampleFn> owned by the RingBuffer being polled;
    // data/size is one record, valid during this call.
    let cb = unsafe { &mut *(ctx as *mut SampleFn) };
    let record = unsafe { std::slice::from_raw_parts(data as *const u8, size as usize) };
    // A panic must not unwind into libbpf's C frames.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(record))) {
        Ok(()) => 0,
        Err(_) => -libc::ECANCELED,
    }
}

impl<'a> RingBuffer<'a> {
    /// Consume the ring buffer `map`, calling `on_record` for each record.
    pub fn new(map: &MapFd, on_record: impl FnMut(&[u8]) + 'a) -> Result<RingBuffer<'a>> {
        let info = map.info()?;
        if info.map_type != sys::BPF_MAP_TYPE_RINGBUF {
            return Err(BpfError {
                what: format!("map {}", map.path.display()),
                source: io::Error::new(io::ErrorKind::InvalidInput, format!("map type {} is not a ring buffer", info.map_type)),
            });
        }
        let mut cb: Box<SampleFn<'a>> = Box::new(Box::new(on_record));
        let ctx = &mut *cb as *mut SampleFn<'a> as *mut c_void;
        let ptr = unsafe { sys::ring_buffer__new(map.as_raw_fd(), Some(ring_buffer_sample), ctx, ptr::null()) };
        if ptr.is_null() {
            return Err(errno_error(format!("opening ring buffer {}", map.path.display())));
        }
        Ok(RingBuffer { ptr, _cb: cb })
    }

    /// Wait up to `timeout_ms` (-1: forever) for records and consume them all.
    /// Returns how many were consumed; a signal ends the wait with Ok(0).
    pub fn poll(&mut self, timeout_ms: i32) -> Result<usize> {
        let ret = unsafe { sys::ring_buffer__poll(self.ptr, timeout_ms) };
        if ret == -libc::EINTR {
            return Ok(0);
        }
        Ok(check(ret, || "polling a ring buffer".to_string())? as usize)
    }

    /// Consume what is there now without waiting.
    pub fn consume(&mut self) -> Result<usize> {
        let ret = unsafe { sys::ring_buffer__consume(self.ptr) };
        Ok(check(ret, || "reading a ring buffer".to_string())? as usize)
    }
}

impl Drop for RingBuffer<'_> {
    fn drop(&mut self) {
        unsafe { sys::ring_buffer__free(self.ptr) };
    }
}

/// For tests: an array map with u32 keys.
#[cfg(test)]
pub fn array_map_create(name: &str, value_size: u32, max_entries: u32) -> Result<OwnedFd> {
    let c = cstring(name);
    let fd = unsafe { sys::bpf_map_create(sys::BPF_MAP_TYPE_ARRAY, c.as_ptr(), 4, value_size, max_entries, ptr::null()) };
    let fd = check(fd, || format!("creating array map {name}"))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How [`MapFd::copy_entries_into`] writes each entry; the default copies
/// every entry over whatever `dst` holds at its key.
#[derive(Clone, Copy, Debug, Default)]
pub struct CopyMode {
    /// `dst`'s values are longer (not per-CPU): each is copied to the
    /// beginning of the new one, the rest zeroed.
    pub widen: bool,
    /// Only the keys `dst` does not hold (BPF_NOEXIST: a key `dst` has keeps
    /// its value). An array holds every index, so nothing is added to one.
    pub only_missing: bool,
}

/// A map shaped like `def` but with `max_entries` (tests: an earlier
/// version's pin).
pub fn map_create_like(def: &MapInfo, max_entries: u32) -> Result<OwnedFd> {
    let c = cstring(&def.name);
    let opts = sys::bpf_map_create_opts {
        sz: std::mem::size_of::<sys::bpf_map_create_opts>() as sys::size_t,
        map_flags: def.map_flags,
        ..Default::default()
    };
    let fd = unsafe { sys::bpf_map_create(def.map_type, c.as_ptr(), def.key_size, def.value_size, max_entries, &opts) };
    let fd = check(fd, || format!("creating map {}", def.name))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
