//! A BPF object file (ELF) opened, loaded and closed through libbpf, and its
//! programs.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::ptr;

use libbpf_sys as sys;

use super::btf::Btf;
use super::cstr::{c_str_lossy, cstring, path_cstring};
use super::error::{BpfError, Result, check, errno_error};
use super::link::Link;
use super::map::MapInfo;

/// An opened (and after [`Object::load`], loaded) BPF object.
pub struct Object {
    pub(super) ptr: *mut sys::bpf_object,
    pub(super) name: String,
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

    /// Before load: the capacity of the object's map `name`, when it has
    /// one of that name (tests: a version with another capacity).
    #[cfg(test)]
    pub fn set_max_entries(&mut self, name: &str, max_entries: u32) -> Result<()> {
        let Some(map) = self.map_ptr(name) else { return Ok(()) };
        let ret = unsafe { sys::bpf_map__set_max_entries(map, max_entries) };
        check(ret, || format!("{}: setting the capacity of {name}", self.name))?;
        Ok(())
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
    pub(super) ptr: *mut sys::bpf_program,
    pub(super) name: String,
    pub(super) _obj: &'a Object,
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
