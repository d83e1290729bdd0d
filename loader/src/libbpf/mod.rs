//! The one place that calls libbpf through raw `libbpf-sys` FFI.
//!
//! Everything else in the loader uses these RAII types: an [`Object`] closes
//! its programs and maps on drop, a [`Link`] detaches on drop unless it was
//! pinned or [`Link::keep`] was called, and [`MapFd`] closes its descriptor.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::ptr;

use libbpf_sys as sys;

#[cfg(test)]
mod tests;

/// An error from libbpf or a BPF syscall, with what we were doing.
#[derive(Debug)]
pub struct BpfError {
    pub what: String,
    pub source: io::Error,
}

impl fmt::Display for BpfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for BpfError {}

impl From<BpfError> for crate::error::Error {
    fn from(e: BpfError) -> crate::error::Error {
        crate::error::Error::os(&e.what, &e.source)
    }
}

pub type Result<T> = std::result::Result<T, BpfError>;

fn errno_error(what: impl Into<String>) -> BpfError {
    BpfError { what: what.into(), source: io::Error::last_os_error() }
}

/// libbpf returns -errno and also sets errno; prefer the return value.
fn check(ret: c_int, what: impl FnOnce() -> String) -> Result<c_int> {
    if ret < 0 {
        Err(BpfError { what: what(), source: io::Error::from_raw_os_error(-ret) })
    } else {
        Ok(ret)
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s).expect("names and paths given to libbpf contain no NUL byte")
}

fn path_cstring(p: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).expect("paths contain no NUL byte")
}

unsafe fn c_str_lossy(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

extern "C" {
    fn vsnprintf(buf: *mut c_char, n: usize, fmt: *const c_char, ap: *mut sys::__va_list_tag) -> c_int;
}

unsafe extern "C" fn libbpf_log(
    level: sys::libbpf_print_level,
    fmt: *const c_char,
    ap: *mut sys::__va_list_tag,
) -> c_int {
    // Verifier logs arrive as one message; keep enough of them to act on.
    let mut buf = vec![0 as c_char; 64 * 1024];
    let n = vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap);
    if n < 0 {
        return n;
    }
    let msg = c_str_lossy(buf.as_ptr());
    let msg = msg.trim_end();
    match level {
        sys::LIBBPF_WARN => log::warn!(target: "libbpf", "{msg}"),
        sys::LIBBPF_INFO => log::debug!(target: "libbpf", "{msg}"),
        _ => log::trace!(target: "libbpf", "{msg}"),
    }
    n
}

/// Route libbpf's own messages (verifier logs included) into `log`.
pub fn route_libbpf_logs() {
    unsafe {
        sys::libbpf_set_print(Some(libbpf_log));
    }
}

/// An opened (and after [`Object::load`], loaded) BPF object.
pub struct Object {
    ptr: *mut sys::bpf_object,
    name: String,
}

// libbpf objects are not shared between threads concurrently; moving one is fine.
unsafe impl Send for Object {}

impl Object {
    /// Open an ELF image held in memory. Maps declared with
    /// `LIBBPF_PIN_BY_NAME` are pinned under (and reused from) `pin_root`.
    pub fn open_mem(name: &str, elf: &[u8], pin_root: Option<&Path>) -> Result<Object> {
        let cname = cstring(name);
        let pin_root_c = pin_root.map(path_cstring);
        let opts = sys::bpf_object_open_opts {
            sz: std::mem::size_of::<sys::bpf_object_open_opts>() as sys::size_t,
            object_name: cname.as_ptr(),
            pin_root_path: pin_root_c.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
            ..Default::default()
        };
        let ptr = unsafe { sys::bpf_object__open_mem(elf.as_ptr() as *const c_void, elf.len() as sys::size_t, &opts) };
        if ptr.is_null() {
            return Err(errno_error(format!("opening BPF object {name}")));
        }
        Ok(Object { ptr, name: name.to_string() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Write a `const volatile` global of `.rodata` before load.
    pub fn set_rodata(&mut self, var: &str, bytes: &[u8]) -> Result<()> {
        let what = format!("{}: setting {var}", self.name);
        let (data, size) = self.rodata_var(var, &what)?;
        if size != bytes.len() {
            return Err(BpfError {
                what,
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("size mismatch: object has {size} bytes, loader has {}", bytes.len()),
                ),
            });
        }
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data, size) };
        Ok(())
    }

    /// The value a `const volatile` global of `.rodata` has now (before load:
    /// the one the C source initialises it with, unless set). Tests compare
    /// the C side's defaults with the configuration's.
    #[cfg(test)]
    pub fn rodata(&self, var: &str) -> Result<Vec<u8>> {
        let (data, size) = self.rodata_var(var, &format!("{}: reading {var}", self.name))?;
        Ok(unsafe { std::slice::from_raw_parts(data, size) }.to_vec())
    }

    /// Where `var` sits in the object's .rodata image, and its size (BTF).
    fn rodata_var(&self, var: &str, what: &str) -> Result<(*mut u8, usize)> {
        let fail = |kind, msg: &str| BpfError { what: what.to_string(), source: io::Error::new(kind, msg.to_string()) };
        let btf = Btf::of_object(self).ok_or_else(|| fail(io::ErrorKind::NotFound, "object has no BTF (build with -g)"))?;
        let (offset, size) = btf.datasec_var(".rodata", var).ok_or_else(|| fail(io::ErrorKind::NotFound, "no such variable in .rodata"))?;
        let map = self.map_ptr(".rodata").ok_or_else(|| fail(io::ErrorKind::NotFound, "object has no .rodata"))?;
        let mut total: sys::size_t = 0;
        let data = unsafe { sys::bpf_map__initial_value(map, &mut total) } as *mut u8;
        if data.is_null() || offset + size > total as usize {
            return Err(fail(io::ErrorKind::InvalidData, ".rodata smaller than its BTF says"));
        }
        Ok((unsafe { data.add(offset) }, size))
    }

    fn map_ptr(&self, name: &str) -> Option<*mut sys::bpf_map> {
        // .rodata's internal name is "<obj>.rodata"; match on the suffix too.
        let mut m = unsafe { sys::bpf_object__next_map(self.ptr, ptr::null()) };
        while !m.is_null() {
            let n = unsafe { c_str_lossy(sys::bpf_map__name(m)) };
            if n == name || (name.starts_with('.') && n.ends_with(name)) {
                return Some(m);
            }
            m = unsafe { sys::bpf_object__next_map(self.ptr, m) };
        }
        None
    }

    /// Load every program into the kernel (creating or reusing pinned maps).
    pub fn load(&mut self) -> Result<()> {
        let ret = unsafe { sys::bpf_object__load(self.ptr) };
        check(ret, || format!("loading BPF object {} (see the libbpf messages above)", self.name))?;
        Ok(())
    }

    pub fn program(&self, name: &str) -> Result<Program<'_>> {
        let c = cstring(name);
        let ptr = unsafe { sys::bpf_object__find_program_by_name(self.ptr, c.as_ptr()) };
        if ptr.is_null() {
            return Err(BpfError {
                what: format!("{}: program {name}", self.name),
                source: io::Error::new(io::ErrorKind::NotFound, "not in the object"),
            });
        }
        Ok(Program { ptr, name: name.to_string(), _obj: self })
    }

    /// The definitions of the object's maps that are pinned by name, as
    /// libbpf will create them (before load).
    pub fn pinned_map_defs(&self) -> Vec<MapInfo> {
        let mut out = Vec::new();
        let mut m = unsafe { sys::bpf_object__next_map(self.ptr, ptr::null()) };
        while !m.is_null() {
            if unsafe { !sys::bpf_map__pin_path(m).is_null() } {
                out.push(unsafe {
                    MapInfo {
                        name: c_str_lossy(sys::bpf_map__name(m)),
                        map_type: sys::bpf_map__type(m),
                        key_size: sys::bpf_map__key_size(m),
                        value_size: sys::bpf_map__value_size(m),
                        max_entries: sys::bpf_map__max_entries(m),
                        map_flags: sys::bpf_map__map_flags(m),
                    }
                });
            }
            m = unsafe { sys::bpf_object__next_map(self.ptr, m) };
        }
        out
    }

    /// Names of the object's maps that are pinned by name (not .rodata/.bss).
    pub fn pinned_map_names(&self) -> Vec<String> {
        self.pinned_map_defs().into_iter().map(|d| d.name).collect()
    }

    /// Names of the object's programs (its `SEC()` functions).
    pub fn program_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut p = unsafe { sys::bpf_object__next_program(self.ptr, ptr::null_mut()) };
        while !p.is_null() {
            out.push(unsafe { c_str_lossy(sys::bpf_program__name(p)) });
            p = unsafe { sys::bpf_object__next_program(self.ptr, p) };
        }
        out
    }

    /// The object's own maps (those in `.maps`, not libbpf's internal
    /// .rodata/.bss/.data ones), each with whether it is pinned by name.
    pub fn declared_maps(&self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let mut m = unsafe { sys::bpf_object__next_map(self.ptr, ptr::null()) };
        while !m.is_null() {
            if unsafe { !sys::bpf_map__is_internal(m) } {
                out.push(unsafe { (c_str_lossy(sys::bpf_map__name(m)), !sys::bpf_map__pin_path(m).is_null()) });
            }
            m = unsafe { sys::bpf_object__next_map(self.ptr, m) };
        }
        out
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        unsafe { sys::bpf_object__close(self.ptr) };
    }
}

/// A program inside a loaded [`Object`].
pub struct Program<'a> {
    ptr: *mut sys::bpf_program,
    name: String,
    _obj: &'a Object,
}

impl Program<'_> {
    pub fn fd(&self) -> RawFd {
        unsafe { sys::bpf_program__fd(self.ptr) }
    }

    /// Attach to a cgroup v2 directory through a BPF link (multi-attach).
    pub fn attach_cgroup(&self, cgroup: &impl AsRawFd) -> Result<Link> {
        let ptr = unsafe { sys::bpf_program__attach_cgroup(self.ptr, cgroup.as_raw_fd()) };
        if ptr.is_null() {
            return Err(errno_error(format!("attaching {} to the cgroup", self.name)));
        }
        Ok(Link { ptr, what: self.name.clone() })
    }
}

/// A BPF link owned by this process. Dropping it detaches the program,
/// unless the link was pinned (the pin keeps it) or kept.
pub struct Link {
    ptr: *mut sys::bpf_link,
    what: String,
}

unsafe impl Send for Link {}

impl Link {
    pub fn pin(&mut self, path: &Path) -> Result<()> {
        let c = path_cstring(path);
        let ret = unsafe { sys::bpf_link__pin(self.ptr, c.as_ptr()) };
        check(ret, || format!("pinning link {} at {}", self.what, path.display()))?;
        Ok(())
    }

    #[cfg(test)]
    pub fn fd(&self) -> RawFd {
        unsafe { sys::bpf_link__fd(self.ptr) }
    }

    /// Leave the program attached after this process lets go of the link.
    pub fn keep(self) {
        unsafe { sys::bpf_link__disconnect(self.ptr) };
        drop(self);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        unsafe { sys::bpf_link__destroy(self.ptr) };
    }
}

/// Replace the program behind an existing (e.g. pinned) link atomically.
pub fn link_update(link: &impl AsRawFd, prog_fd: RawFd, what: &str) -> Result<()> {
    let ret = unsafe { sys::bpf_link_update(link.as_raw_fd(), prog_fd, ptr::null()) };
    check(ret, || format!("replacing the program of link {what}"))?;
    Ok(())
}

fn link_info(link: &impl AsRawFd) -> Result<sys::bpf_link_info> {
    let mut info = sys::bpf_link_info::default();
    let mut len = std::mem::size_of::<sys::bpf_link_info>() as u32;
    let ret = unsafe { sys::bpf_link_get_info_by_fd(link.as_raw_fd(), &mut info, &mut len) };
    check(ret, || "reading link info".to_string())?;
    Ok(info)
}

/// Attach a program to a target fd the old way (BPF_PROG_ATTACH), as sk_msg
/// verdicts attach to socket maps. Attaching again replaces the program.
pub fn prog_attach(prog_fd: RawFd, target: &impl AsRawFd, attach_type: sys::bpf_attach_type, what: &str) -> Result<()> {
    let ret = unsafe { sys::bpf_prog_attach(prog_fd, target.as_raw_fd(), attach_type, 0) };
    check(ret, || format!("attaching {what}"))?;
    Ok(())
}

/// The cgroup id a cgroup link is attached to, or None for other links.
pub fn link_cgroup_id(link: &impl AsRawFd) -> Result<Option<u64>> {
    let info = link_info(link)?;
    if info.type_ != sys::BPF_LINK_TYPE_CGROUP {
        return Ok(None);
    }
    Ok(Some(unsafe { info.__bindgen_anon_1.cgroup.cgroup_id }))
}

/// Detach a pinned link now. Unpinning alone lets the kernel release the
/// link later (after RCU and a workqueue), so for a while the program would
/// still run; a detached link stays a valid, defunct object until unpinned.
/// A link whose target is already gone (a deleted netns) is fine.
pub fn detach_pinned_link(path: &Path) -> Result<()> {
    let fd = match obj_get(path) {
        Ok(fd) => fd,
        Err(e) if e.source.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let ret = unsafe { sys::bpf_link_detach(fd.as_raw_fd()) };
    // ENOLINK/EINVAL: already detached (defunct); nothing to do.
    if ret == -libc::ENOLINK || ret == -libc::EINVAL {
        return Ok(());
    }
    check(ret, || format!("detaching link {}", path.display()))?;
    Ok(())
}

/// The program a link runs.
pub fn link_prog_id(link: &impl AsRawFd) -> Result<u32> {
    Ok(link_info(link)?.prog_id)
}

/// What the kernel reports of a loaded program; run_cnt and run_time_ns
/// count only while kernel.bpf_stats_enabled is 1.
#[derive(Debug, Clone)]
pub struct ProgInfo {
    pub id: u32,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub verified_insns: u32,
}

pub fn prog_info(prog: &impl AsRawFd) -> Result<ProgInfo> {
    let mut info = sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    let ret = unsafe { sys::bpf_prog_get_info_by_fd(prog.as_raw_fd(), &mut info, &mut len) };
    check(ret, || "reading program info".to_string())?;
    Ok(ProgInfo {
        id: info.id,
        run_cnt: info.run_cnt,
        run_time_ns: info.run_time_ns,
        verified_insns: info.verified_insns,
    })
}

/// Ids of the maps a loaded program uses (its .rodata among them).
pub fn prog_map_ids(prog: &impl AsRawFd) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut info = sys::bpf_prog_info { nr_map_ids: ids.len() as u32, map_ids: ids.as_mut_ptr() as u64, ..Default::default() };
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    let ret = unsafe { sys::bpf_prog_get_info_by_fd(prog.as_raw_fd(), &mut info, &mut len) };
    check(ret, || "reading the maps of a program".to_string())?;
    ids.truncate((info.nr_map_ids as usize).min(64));
    Ok(ids)
}

/// Programs attached to a target (cgroup, socket map ...) for one attach type.
pub fn prog_query(target: &impl AsRawFd, attach_type: sys::bpf_attach_type) -> Result<Vec<u32>> {
    let mut ids = [0u32; 64];
    let mut cnt = ids.len() as u32;
    let mut flags = 0u32;
    let ret = unsafe { sys::bpf_prog_query(target.as_raw_fd(), attach_type, 0, &mut flags, ids.as_mut_ptr(), &mut cnt) };
    check(ret, || "querying attached programs".to_string())?;
    Ok(ids[..cnt.min(64) as usize].to_vec())
}

pub fn prog_by_id(id: u32) -> Result<OwnedFd> {
    let fd = unsafe { sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return Err(errno_error(format!("opening program id {id}")));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open a pinned object (map, link, program) from bpffs.
pub fn obj_get(path: &Path) -> Result<OwnedFd> {
    let c = path_cstring(path);
    let fd = unsafe { sys::bpf_obj_get(c.as_ptr()) };
    if fd < 0 {
        return Err(errno_error(format!("opening pinned {}", path.display())));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

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
    fd: OwnedFd,
    path: PathBuf,
    info: MapInfo,
}

impl MapFd {
    fn new(fd: OwnedFd, path: PathBuf) -> Result<MapFd> {
        let mut info = sys::bpf_map_info::default();
        let mut len = std::mem::size_of::<sys::bpf_map_info>() as u32;
        let ret = unsafe { sys::bpf_map_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
        check(ret, || format!("reading info of map {}", path.display()))?;
        let info = MapInfo {
            name: unsafe { c_str_lossy(info.name.as_ptr()) },
            map_type: info.type_,
            key_size: info.key_size,
            value_size: info.value_size,
            max_entries: info.max_entries,
            map_flags: info.map_flags,
        };
        Ok(MapFd { fd, path, info })
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

    /// The value at `key` as bytes (value_size of them), None when absent.
    pub fn lookup_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let info = self.info()?;
        if key.len() != info.key_size as usize {
            return Err(BpfError {
                what: format!("map {}", self.path.display()),
                source: io::Error::new(io::ErrorKind::InvalidInput, format!("key of {} bytes, the map's are {}", key.len(), info.key_size)),
            });
        }
        let mut value = vec![0u8; info.value_size as usize];
        let ret = unsafe { sys::bpf_map_lookup_elem(self.fd.as_raw_fd(), key.as_ptr() as *const c_void, value.as_mut_ptr() as *mut c_void) };
        if ret == -libc::ENOENT {
            return Ok(None);
        }
        check(ret, || format!("looking up map {}", self.path.display()))?;
        Ok(Some(value))
    }

    pub fn info(&self) -> Result<MapInfo> {
        Ok(self.info.clone())
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

    /// Copies every entry into `dst` (same type and sizes, a capacity of its
    /// own); returns how many. Per-CPU values are copied CPU by CPU.
    pub fn copy_entries_into(&self, dst: &MapFd) -> Result<usize> {
        let (from, to) = (&self.info, &dst.info);
        if (from.map_type, from.key_size, from.value_size) != (to.map_type, to.key_size, to.value_size) || !from.entries_copyable() {
            return Err(BpfError {
                what: format!("copying map {} into {}", self.path.display(), dst.path.display()),
                source: io::Error::new(io::ErrorKind::InvalidInput, "the maps differ in type or sizes, or entries of this type cannot be copied"),
            });
        }
        let value_len = if from.is_percpu() {
            let ncpu = unsafe { sys::libbpf_num_possible_cpus() };
            let ncpu = check(ncpu, || "counting possible CPUs".to_string())? as usize;
            (from.value_size as usize).div_ceil(8) * 8 * ncpu
        } else {
            from.value_size as usize
        };
        let mut value = vec![0u8; value_len.max(1)];
        let mut copied = 0;
        for key in self.raw_keys()? {
            let ret = unsafe { sys::bpf_map_lookup_elem(self.fd.as_raw_fd(), key.as_ptr() as *const c_void, value.as_mut_ptr() as *mut c_void) };
            if ret == -libc::ENOENT {
                continue; // gone since the walk (an LRU eviction, a close)
            }
            check(ret, || format!("looking up map {}", self.path.display()))?;
            let ret = unsafe {
                sys::bpf_map_update_elem(dst.fd.as_raw_fd(), key.as_ptr() as *const c_void, value.as_ptr() as *const c_void, sys::BPF_ANY as u64)
            };
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
type SampleFn<'a> = Box<dyn FnMut(&[u8]) + 'a>;

/// A consumer of a BPF ring buffer map (`BPF_MAP_TYPE_RINGBUF`): libbpf's
/// `ring_buffer`, which maps the buffer and calls back once per record.
/// Freed on drop; the callback lives as long as the consumer.
pub struct RingBuffer<'a> {
    ptr: *mut sys::ring_buffer,
    // Boxed twice: libbpf holds a thin pointer to the inner box.
    _cb: Box<SampleFn<'a>>,
}

unsafe extern "C" fn ring_buffer_sample(ctx: *mut c_void, data: *mut c_void, size: sys::size_t) -> c_int {
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

/// Read-only view of an object's BTF.
pub struct Btf<'a> {
    ptr: *const sys::btf,
    _obj: &'a Object,
}

/// One member of a BTF struct: name, byte offset, byte size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfMember {
    pub name: String,
    pub offset: usize,
    pub size: usize,
}

const BTF_KIND_STRUCT: u32 = 4;
const BTF_KIND_ENUM: u32 = 6;
const BTF_KIND_DATASEC: u32 = 15;

impl<'a> Btf<'a> {
    pub fn of_object(obj: &'a Object) -> Option<Btf<'a>> {
        let ptr = unsafe { sys::bpf_object__btf(obj.ptr) };
        (!ptr.is_null()).then_some(Btf { ptr, _obj: obj })
    }

    fn find(&self, name: &str, kind: u32) -> Option<*const sys::btf_type> {
        let c = cstring(name);
        let id = unsafe { sys::btf__find_by_name_kind(self.ptr, c.as_ptr(), kind) };
        if id <= 0 {
            return None;
        }
        let t = unsafe { sys::btf__type_by_id(self.ptr, id as u32) };
        (!t.is_null()).then_some(t)
    }

    fn name(&self, off: u32) -> String {
        unsafe { c_str_lossy(sys::btf__name_by_offset(self.ptr, off)) }
    }

    fn vlen(t: *const sys::btf_type) -> usize {
        (unsafe { (*t).info } & 0xffff) as usize
    }

    /// Size and members of `struct name`, None when absent.
    pub fn struct_layout(&self, name: &str) -> Option<(usize, Vec<BtfMember>)> {
        let t = self.find(name, BTF_KIND_STRUCT)?;
        let size = unsafe { (*t).__bindgen_anon_1.size } as usize;
        let kind_flag = unsafe { (*t).info } >> 31 == 1;
        let members = unsafe { (t.add(1)) as *const sys::btf_member };
        let out = (0..Self::vlen(t))
            .map(|i| {
                let m = unsafe { &*members.add(i) };
                let bit_off = if kind_flag { m.offset & 0x00ff_ffff } else { m.offset };
                let msize = unsafe { sys::btf__resolve_size(self.ptr, m.type_) };
                BtfMember { name: self.name(m.name_off), offset: (bit_off / 8) as usize, size: msize.max(0) as usize }
            })
            .collect();
        Some((size, out))
    }

    /// Name/value pairs of `enum name`, None when absent.
    pub fn enum_values(&self, name: &str) -> Option<Vec<(String, i64)>> {
        let t = self.find(name, BTF_KIND_ENUM)?;
        let vals = unsafe { (t.add(1)) as *const sys::btf_enum };
        Some(
            (0..Self::vlen(t))
                .map(|i| {
                    let e = unsafe { &*vals.add(i) };
                    (self.name(e.name_off), e.val as i64)
                })
                .collect(),
        )
    }

    /// Offset and size of a variable inside a data section.
    pub fn datasec_var(&self, sec: &str, var: &str) -> Option<(usize, usize)> {
        // libbpf renames sections internally; look for the DATASEC by name.
        let t = self.find(sec, BTF_KIND_DATASEC)?;
        let infos = unsafe { (t.add(1)) as *const sys::btf_var_secinfo };
        (0..Self::vlen(t)).find_map(|i| {
            let si = unsafe { &*infos.add(i) };
            let vt = unsafe { sys::btf__type_by_id(self.ptr, si.type_) };
            if vt.is_null() {
                return None;
            }
            (self.name(unsafe { (*vt).name_off }) == var).then_some((si.offset as usize, si.size as usize))
        })
    }
}

impl Program<'_> {
    /// Run the program once on the packet `data` (BPF_PROG_TEST_RUN; for tc
    /// programs an Ethernet frame). Returns the program's return value and
    /// the packet as the program left it.
    #[allow(dead_code)] // the tc unit tests' way into the programs
    pub fn test_run(&self, data: &[u8]) -> Result<(i32, Vec<u8>)> {
        prog_test_run(self.fd(), data).map_err(|e| BpfError { what: format!("{} ({})", e.what, self.name), source: e.source })
    }
}

/// BPF_PROG_TEST_RUN of the program behind `prog_fd` on one packet.
pub fn prog_test_run(prog_fd: RawFd, data: &[u8]) -> Result<(i32, Vec<u8>)> {
    // Room for a program that grows the packet (encapsulation, options).
    let mut out = vec![0u8; data.len() + 512];
    let mut opts = sys::bpf_test_run_opts {
        sz: std::mem::size_of::<sys::bpf_test_run_opts>() as sys::size_t,
        data_in: data.as_ptr() as *const c_void,
        data_size_in: data.len() as u32,
        data_out: out.as_mut_ptr() as *mut c_void,
        data_size_out: out.len() as u32,
        repeat: 1,
        ..Default::default()
    };
    let ret = unsafe { sys::bpf_prog_test_run_opts(prog_fd, &mut opts) };
    check(ret, || "test run".to_string())?;
    out.truncate(opts.data_size_out as usize);
    Ok((opts.retval as i32, out))
}

/// Pin a BPF object (program, link, map) by descriptor at `path` on bpffs.
pub fn obj_pin(fd: &impl AsRawFd, path: &Path) -> Result<()> {
    let c = path_cstring(path);
    let ret = unsafe { sys::bpf_obj_pin(fd.as_raw_fd(), c.as_ptr()) };
    check(ret, || format!("pinning at {}", path.display()))?;
    Ok(())
}

/// Attach a program to a network device of the calling thread's netns
/// through a tcx link (Linux 6.6), after the programs already there. The
/// program stays attached while the link has a reference (descriptor, pin).
pub fn tcx_link_create(prog_fd: RawFd, ifindex: u32, ingress: bool) -> Result<OwnedFd> {
    let attach_type = if ingress { sys::BPF_TCX_INGRESS } else { sys::BPF_TCX_EGRESS };
    let fd = unsafe { sys::bpf_link_create(prog_fd, ifindex as c_int, attach_type, ptr::null()) };
    let fd = check(fd, || format!("creating a tcx {} link on ifindex {ifindex}", if ingress { "ingress" } else { "egress" }))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Where a tcx link is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcxLinkInfo {
    pub id: u32,
    /// 0 once the device is gone (the link is defunct).
    pub ifindex: u32,
    pub ingress: bool,
    pub prog_id: u32,
}

/// The attachment of a tcx link, or None for other links.
pub fn link_tcx_info(link: &impl AsRawFd) -> Result<Option<TcxLinkInfo>> {
    let info = link_info(link)?;
    if info.type_ != sys::BPF_LINK_TYPE_TCX {
        return Ok(None);
    }
    let tcx = unsafe { info.__bindgen_anon_1.tcx };
    Ok(Some(TcxLinkInfo { id: info.id, ifindex: tcx.ifindex, ingress: tcx.attach_type == sys::BPF_TCX_INGRESS, prog_id: info.prog_id }))
}

/// The kernel id of a loaded program.
#[allow(dead_code)] // used by the tc unit tests
pub fn prog_id(prog_fd: RawFd) -> Result<u32> {
    let mut info = sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    let ret = unsafe { sys::bpf_prog_get_info_by_fd(prog_fd, &mut info, &mut len) };
    check(ret, || "reading program info".to_string())?;
    Ok(info.id)
}

/// Whether this kernel has tcx links (Linux 6.6), asked without attaching
/// anything: a tcx link on ifindex 0 fails with ENODEV where tcx exists and
/// with EINVAL (an unknown attach type) or EOPNOTSUPP where it does not.
/// `prog_fd` must be a sched_cls program.
pub fn tcx_supported(prog_fd: RawFd) -> Result<bool> {
    match tcx_link_create(prog_fd, 0, true) {
        // No device has index 0; were one found, the link goes with the fd.
        Ok(_) => Ok(true),
        Err(e) => match e.source.raw_os_error() {
            Some(libc::ENODEV) => Ok(true),
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(false),
            _ => Err(BpfError { what: format!("probing for tcx links: {}", e.what), source: e.source }),
        },
    }
}

// ---- clsact: tc filters through libbpf's netlink (bpf_tc_*) ----------------
//
// These act on the calling thread's network namespace. A filter is named by
// its direction (ingress or egress of the clsact qdisc), priority and handle.

fn tc_hook(ifindex: u32, attach_point: sys::bpf_tc_attach_point) -> sys::bpf_tc_hook {
    sys::bpf_tc_hook {
        sz: std::mem::size_of::<sys::bpf_tc_hook>() as sys::size_t,
        ifindex: ifindex as c_int,
        attach_point,
        ..Default::default()
    }
}

fn tc_point(ingress: bool) -> sys::bpf_tc_attach_point {
    if ingress {
        sys::BPF_TC_INGRESS
    } else {
        sys::BPF_TC_EGRESS
    }
}

fn tc_opts(handle: u32, priority: u16) -> sys::bpf_tc_opts {
    sys::bpf_tc_opts {
        sz: std::mem::size_of::<sys::bpf_tc_opts>() as sys::size_t,
        handle,
        priority: priority as u32,
        ..Default::default()
    }
}

fn tc_dir(ingress: bool) -> &'static str {
    if ingress {
        "ingress"
    } else {
        "egress"
    }
}

/// Create the clsact qdisc of a device. Ok(true): created; Ok(false): the
/// device already had one (or another qdisc at its place, EEXIST).
pub fn tc_qdisc_create(ifindex: u32) -> Result<bool> {
    let mut hook = tc_hook(ifindex, sys::BPF_TC_INGRESS);
    let ret = unsafe { sys::bpf_tc_hook_create(&mut hook) };
    if ret == -libc::EEXIST {
        return Ok(false);
    }
    check(ret, || format!("creating the clsact qdisc of ifindex {ifindex}"))?;
    Ok(true)
}

/// Delete the clsact qdisc of a device, with every filter still on it.
pub fn tc_qdisc_destroy(ifindex: u32) -> Result<()> {
    let mut hook = tc_hook(ifindex, sys::BPF_TC_INGRESS | sys::BPF_TC_EGRESS);
    let ret = unsafe { sys::bpf_tc_hook_destroy(&mut hook) };
    check(ret, || format!("deleting the clsact qdisc of ifindex {ifindex}"))?;
    Ok(())
}

/// Attach `prog_fd` as a direct-action bpf filter, replacing the filter with
/// that priority and handle if there is one. Returns the attached program's id.
pub fn tc_attach(ifindex: u32, ingress: bool, priority: u16, handle: u32, prog_fd: RawFd) -> Result<u32> {
    let hook = tc_hook(ifindex, tc_point(ingress));
    let mut opts = tc_opts(handle, priority);
    opts.prog_fd = prog_fd;
    opts.flags = sys::BPF_TC_F_REPLACE;
    let ret = unsafe { sys::bpf_tc_attach(&hook, &mut opts) };
    check(ret, || format!("attaching a tc {} filter (priority {priority}, handle {handle:#x}) on ifindex {ifindex}", tc_dir(ingress)))?;
    Ok(opts.prog_id)
}

/// The program id of the bpf filter with that priority and handle; None when
/// there is none (or no clsact qdisc). A filter of another kind at that
/// priority is an error (EINVAL from the kernel).
pub fn tc_query(ifindex: u32, ingress: bool, priority: u16, handle: u32) -> Result<Option<u32>> {
    let hook = tc_hook(ifindex, tc_point(ingress));
    let mut opts = tc_opts(handle, priority);
    let ret = unsafe { sys::bpf_tc_query(&hook, &mut opts) };
    if ret == -libc::ENOENT {
        return Ok(None);
    }
    check(ret, || format!("querying the tc {} filter (priority {priority}, handle {handle:#x}) on ifindex {ifindex}", tc_dir(ingress)))?;
    Ok(Some(opts.prog_id))
}

/// Remove the bpf filter with that priority and handle. Ok(false): there was none.
pub fn tc_detach(ifindex: u32, ingress: bool, priority: u16, handle: u32) -> Result<bool> {
    let hook = tc_hook(ifindex, tc_point(ingress));
    let opts = tc_opts(handle, priority);
    let ret = unsafe { sys::bpf_tc_detach(&hook, &opts) };
    if ret == -libc::ENOENT {
        return Ok(false);
    }
    check(ret, || format!("removing the tc {} filter (priority {priority}, handle {handle:#x}) on ifindex {ifindex}", tc_dir(ingress)))?;
    Ok(true)
}

/// The name of a loaded program (at most 15 bytes, as the kernel keeps it).
pub fn prog_name_by_id(id: u32) -> Result<String> {
    let fd = prog_by_id(id)?;
    let mut info = sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<sys::bpf_prog_info>() as u32;
    let ret = unsafe { sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    check(ret, || format!("reading the info of program id {id}"))?;
    Ok(unsafe { c_str_lossy(info.name.as_ptr()) })
}

/// For tests: an array map with u32 keys.
#[cfg(test)]
pub fn array_map_create(name: &str, value_size: u32, max_entries: u32) -> Result<OwnedFd> {
    let c = cstring(name);
    let fd = unsafe { sys::bpf_map_create(sys::BPF_MAP_TYPE_ARRAY, c.as_ptr(), 4, value_size, max_entries, ptr::null()) };
    let fd = check(fd, || format!("creating array map {name}"))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// For tests: a map shaped like `def` but with `max_entries` (an earlier
/// version's pin).
#[cfg(test)]
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

/// For tests: load a program from raw instructions (struct bpf_insn, as u64s).
#[cfg(test)]
pub fn prog_load_insns(prog_type: sys::bpf_prog_type, name: &str, insns: &[u64]) -> Result<OwnedFd> {
    let c = cstring(name);
    let license = cstring("GPL");
    let mut opts = sys::bpf_prog_load_opts { sz: std::mem::size_of::<sys::bpf_prog_load_opts>() as sys::size_t, ..Default::default() };
    let fd = unsafe {
        sys::bpf_prog_load(prog_type, c.as_ptr(), license.as_ptr(), insns.as_ptr() as *const sys::bpf_insn, insns.len() as sys::size_t, &mut opts)
    };
    let fd = check(fd, || format!("loading program {name}"))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
