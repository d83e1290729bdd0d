//! Reading an object's BTF (struct layouts, enums, datasec variables).


use libbpf_sys as sys;

use super::cstr::{c_str_lossy, cstring};
use super::object::Object;

/// Read-only view of an object's BTF.
pub struct Btf<'a> {
    pub(super) ptr: *const sys::btf,
    pub(super) _obj: &'a Object,
}

/// One member of a BTF struct: name, byte offset, byte size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfMember {
    pub name: String,
    pub offset: usize,
    pub size: usize,
}

pub(super) const BTF_KIND_STRUCT: u32 = 4;
pub(super) const BTF_KIND_ENUM: u32 = 6;
pub(super) const BTF_KIND_DATASEC: u32 = 15;

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
