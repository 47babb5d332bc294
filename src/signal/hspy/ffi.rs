//! The thin layer over the HDF5 C API (`hdf5-metno-sys`) used by the `.hspy` backend:
//! owned identifiers, error capture, the mapping between HDF5 datatypes and
//! [`ArrayDType`] (h5py's conventions: enum bools, `{r, i}` complex compounds, vlen UTF-8
//! strings, VLEN ragged cells), and whole-object reads and writes of attributes and
//! datasets.
//!
//! Every call into the library runs inside [`h5`], which takes hdf5-metno's process-wide
//! lock (the library is not re-entrant across threads without it), initialises the library
//! on first use and silences HDF5's own error printing on the calling thread.

use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr;

use hdf5_sys::h5::{H5free_memory, hsize_t};
use hdf5_sys::h5a::{
    H5A_info_t, H5Acreate2, H5Adelete, H5Aexists, H5Aget_space, H5Aget_type, H5Aiterate2, H5Aopen,
    H5Aread, H5Awrite,
};
use hdf5_sys::h5d::{H5Dcreate2, H5Dget_space, H5Dget_type, H5Dread, H5Dwrite};
use hdf5_sys::h5g::{H5G_info_t, H5Gcreate2, H5Gget_info, H5Gopen2};
use hdf5_sys::h5i::{H5I_type_t, H5Idec_ref, H5Iget_type, hid_t};
use hdf5_sys::h5l::{H5Ldelete, H5Lexists, H5Lget_name_by_idx};
use hdf5_sys::h5o::H5Oopen;
use hdf5_sys::h5p::{
    H5P_CLS_DATASET_CREATE, H5P_CLS_LINK_CREATE, H5P_DEFAULT, H5Pcreate, H5Pset_char_encoding,
    H5Pset_chunk, H5Pset_deflate, H5Pset_shuffle,
};
use hdf5_sys::h5s::{
    H5S_ALL, H5S_class_t, H5Screate, H5Screate_simple, H5Sget_simple_extent_dims,
    H5Sget_simple_extent_ndims, H5Sget_simple_extent_type,
};
use hdf5_sys::h5t::{
    H5T_C_S1, H5T_IEEE_F32BE, H5T_IEEE_F32LE, H5T_IEEE_F64BE, H5T_IEEE_F64LE, H5T_NATIVE_INT8,
    H5T_STD_I8BE, H5T_STD_I8LE, H5T_STD_I16BE, H5T_STD_I16LE, H5T_STD_I32BE, H5T_STD_I32LE,
    H5T_STD_I64BE, H5T_STD_I64LE, H5T_STD_U8BE, H5T_STD_U8LE, H5T_STD_U16BE, H5T_STD_U16LE,
    H5T_STD_U32BE, H5T_STD_U32LE, H5T_STD_U64BE, H5T_STD_U64LE, H5T_VARIABLE, H5T_class_t,
    H5T_cset_t, H5T_order_t, H5T_sign_t, H5T_str_t, H5Tarray_create2, H5Tcopy, H5Tcreate,
    H5Tenum_create, H5Tenum_insert, H5Tget_array_dims2, H5Tget_array_ndims, H5Tget_class,
    H5Tget_cset, H5Tget_member_name, H5Tget_member_offset, H5Tget_member_type, H5Tget_nmembers,
    H5Tget_order, H5Tget_sign, H5Tget_size, H5Tget_super, H5Tinsert, H5Tis_variable_str,
    H5Tset_cset, H5Tset_ebias, H5Tset_fields, H5Tset_order, H5Tset_size, H5Tset_strpad, H5Tset_tag,
    H5Tvlen_create, hvl_t,
};

use crate::signal::tree::{Array, ArrayDType, ArrayData, StructField, Value, decode_scalar};

/// Runs `f` under hdf5-metno's global lock (initialising the library and silencing its
/// error printing on this thread first).
pub(crate) fn h5<T>(f: impl FnOnce() -> T) -> T {
    hdf5::sync::sync(f)
}

/// An HDF5 failure: which call, and the library's error stack.
pub(crate) fn h5_error(call: &str) -> String {
    match hdf5::Error::query() {
        Ok(e) => format!("{call} failed: {e}"),
        Err(_) => format!("{call} failed"),
    }
}

/// Checks an identifier returned by the library.
pub(crate) fn check_id(id: hid_t, call: &str) -> Result<Hid, String> {
    if id < 0 {
        Err(h5_error(call))
    } else {
        Ok(Hid(id))
    }
}

/// Checks a status code returned by the library.
pub(crate) fn check(status: i32, call: &str) -> Result<(), String> {
    if status < 0 {
        Err(h5_error(call))
    } else {
        Ok(())
    }
}

/// An owned HDF5 identifier (file, group, dataset, attribute, datatype, dataspace or
/// property list); its reference is released on drop (under the lock).
#[derive(Debug)]
pub(crate) struct Hid(pub(crate) hid_t);

impl Hid {
    /// The raw identifier.
    pub(crate) fn id(&self) -> hid_t {
        self.0
    }
}

impl Drop for Hid {
    fn drop(&mut self) {
        if self.0 > 0 {
            let id = self.0;
            // SAFETY: `id` is a valid identifier owned by this value.
            h5(|| unsafe {
                H5Idec_ref(id);
            });
        }
    }
}

/// A file access property list without HDF5's file locking. HDF5 takes an `flock` on
/// every file it opens, through a descriptor without close-on-exec: a child process
/// started while a file is open inherits the descriptor and keeps the lock for its whole
/// life, so that a later open of the same file (even read-only, even after it was closed
/// and renamed here) fails with "unable to lock file". lazyspy does not rely on these
/// advisory locks: writers go through a temporary file and a rename. Under the lock.
pub(crate) fn file_access_plist() -> Result<Hid, String> {
    // SAFETY: creating and setting an owned property list.
    let p = check_id(
        unsafe { H5Pcreate(*hdf5_sys::h5p::H5P_CLS_FILE_ACCESS) },
        "H5Pcreate",
    )?;
    check(
        unsafe { hdf5_sys::h5p::H5Pset_file_locking(p.id(), 0, 1) },
        "H5Pset_file_locking",
    )?;
    Ok(p)
}

/// A C string of `s`; an error for interior NULs.
pub(crate) fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("the name {s:?} contains a NUL character"))
}

// ---------------------------------------------------------------------------------------
// Datatypes
// ---------------------------------------------------------------------------------------

/// What a stored datatype holds, as far as reading goes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    /// Fixed-size elements read as raw bytes in the layout of the [`ArrayDType`].
    /// `file_layout` is true when the memory type must be a copy of the file type (fixed
    /// strings, opaque, non-boolean enums), false when it is built from the dtype.
    Fixed {
        dtype: ArrayDType,
        file_layout: bool,
    },
    /// Variable-length strings.
    VlenStr { utf8: bool },
    /// Variable-length sequences (ragged cells) of a base kind.
    Vlen(Box<Kind>),
}

impl Kind {
    /// The signal layer's dtype of this kind.
    pub(crate) fn dtype(&self) -> ArrayDType {
        match self {
            Kind::Fixed { dtype, .. } => dtype.clone(),
            Kind::VlenStr { .. } => ArrayDType::VlenStr,
            Kind::Vlen(_) => ArrayDType::Object,
        }
    }
}

fn member_name(t: hid_t, i: u32) -> String {
    // SAFETY: `t` is a compound or enum type and `i` one of its member indices; the
    // returned string is allocated by the library and freed here.
    unsafe {
        let p = H5Tget_member_name(t, i);
        if p.is_null() {
            return String::new();
        }
        let s = CStr::from_ptr(p).to_string_lossy().into_owned();
        H5free_memory(p.cast());
        s
    }
}

/// Describes the datatype `t`. Must run under the lock.
pub(crate) fn describe_type(t: hid_t) -> Result<Kind, String> {
    // SAFETY: `t` is a valid datatype identifier; every call only inspects it.
    unsafe {
        let class = H5Tget_class(t);
        let size = H5Tget_size(t);
        let be = H5Tget_order(t) == H5T_order_t::H5T_ORDER_BE;
        let fixed = |dtype| Kind::Fixed {
            dtype,
            file_layout: false,
        };
        match class {
            H5T_class_t::H5T_INTEGER => {
                if !matches!(size, 1 | 2 | 4 | 8) {
                    return Err(format!("{size}-byte integers are not supported"));
                }
                let big_endian = be && size > 1;
                Ok(fixed(if H5Tget_sign(t) == H5T_sign_t::H5T_SGN_NONE {
                    ArrayDType::UInt {
                        bytes: size,
                        big_endian,
                    }
                } else {
                    ArrayDType::Int {
                        bytes: size,
                        big_endian,
                    }
                }))
            }
            H5T_class_t::H5T_FLOAT => {
                if !matches!(size, 2 | 4 | 8) {
                    return Err(format!("{size}-byte floats are not supported"));
                }
                Ok(fixed(ArrayDType::Float {
                    bytes: size,
                    big_endian: be,
                }))
            }
            H5T_class_t::H5T_ENUM => {
                let n = H5Tget_nmembers(t);
                let names: Vec<String> = (0..n.max(0) as u32).map(|i| member_name(t, i)).collect();
                if size == 1 && names.len() == 2 && names.contains(&"FALSE".to_string()) {
                    Ok(fixed(ArrayDType::Bool))
                } else {
                    let base = Hid(H5Tget_super(t));
                    match describe_type(base.id())? {
                        Kind::Fixed { dtype, .. } => Ok(Kind::Fixed {
                            dtype,
                            file_layout: true,
                        }),
                        other => Ok(other),
                    }
                }
            }
            H5T_class_t::H5T_STRING => {
                let utf8 = H5Tget_cset(t) == H5T_cset_t::H5T_CSET_UTF8;
                if H5Tis_variable_str(t) > 0 {
                    Ok(Kind::VlenStr { utf8 })
                } else {
                    Ok(Kind::Fixed {
                        dtype: ArrayDType::FixedBytes(size),
                        file_layout: true,
                    })
                }
            }
            H5T_class_t::H5T_OPAQUE => Ok(Kind::Fixed {
                dtype: ArrayDType::Void(size),
                file_layout: true,
            }),
            H5T_class_t::H5T_COMPOUND => {
                let n = H5Tget_nmembers(t).max(0) as u32;
                let mut fields = Vec::new();
                let mut members: Vec<(usize, String, ArrayDType, Vec<usize>)> = Vec::new();
                for i in 0..n {
                    let name = member_name(t, i);
                    let off = H5Tget_member_offset(t, i);
                    let mt = Hid(H5Tget_member_type(t, i));
                    let (dt, shape) = member_dtype(mt.id())?;
                    members.push((off, name, dt, shape));
                }
                members.sort_by_key(|m| m.0);
                let floats_ri = members.len() == 2
                    && members[0].1 == "r"
                    && members[1].1 == "i"
                    && members[0].3.is_empty()
                    && members[1].3.is_empty()
                    && members[0].2 == members[1].2
                    && matches!(members[0].2, ArrayDType::Float { bytes: 4 | 8, .. });
                if floats_ri && let ArrayDType::Float { bytes, big_endian } = members[0].2 {
                    return Ok(fixed(ArrayDType::Complex {
                        bytes: 2 * bytes,
                        big_endian,
                    }));
                }
                for (_, name, dtype, shape) in members {
                    fields.push(StructField { name, dtype, shape });
                }
                Ok(fixed(ArrayDType::Struct(fields)))
            }
            H5T_class_t::H5T_VLEN => {
                let base = Hid(H5Tget_super(t));
                let k = describe_type(base.id())?;
                if matches!(k, Kind::Vlen(_)) {
                    return Err("nested variable-length sequences are not supported".into());
                }
                Ok(Kind::Vlen(Box::new(k)))
            }
            H5T_class_t::H5T_ARRAY => {
                Err("array-typed elements are only supported inside compound types".into())
            }
            H5T_class_t::H5T_BITFIELD => Err("bitfield types are not supported".into()),
            H5T_class_t::H5T_REFERENCE => Err("reference types are not supported".into()),
            H5T_class_t::H5T_TIME => Err("time types are not supported".into()),
            _ => Err("unknown datatype class".into()),
        }
    }
}

/// The dtype and sub-array shape of a compound member.
unsafe fn member_dtype(t: hid_t) -> Result<(ArrayDType, Vec<usize>), String> {
    // SAFETY: `t` is a valid datatype identifier.
    unsafe {
        if H5Tget_class(t) == H5T_class_t::H5T_ARRAY {
            let nd = H5Tget_array_ndims(t).max(0) as usize;
            let mut dims = vec![0 as hsize_t; nd];
            H5Tget_array_dims2(t, dims.as_mut_ptr());
            let base = Hid(H5Tget_super(t));
            match describe_type(base.id())? {
                Kind::Fixed { dtype, .. } => {
                    Ok((dtype, dims.iter().map(|&d| d as usize).collect()))
                }
                _ => Err("variable-length members of compound types are not supported".into()),
            }
        } else {
            match describe_type(t)? {
                Kind::Fixed { dtype, .. } => Ok((dtype, vec![])),
                _ => Err("variable-length members of compound types are not supported".into()),
            }
        }
    }
}

fn copy_static(t: hid_t) -> Result<Hid, String> {
    // SAFETY: copying a predefined type.
    check_id(unsafe { H5Tcopy(t) }, "H5Tcopy")
}

/// The HDF5 type h5py uses for `dtype` (little- or big-endian as the dtype says). Must run
/// under the lock.
pub(crate) fn create_type(dtype: &ArrayDType) -> Result<Hid, String> {
    // SAFETY: building new datatypes from predefined ones; every identifier is owned.
    unsafe {
        match dtype {
            ArrayDType::Bool => {
                let t = check_id(H5Tenum_create(*H5T_NATIVE_INT8), "H5Tenum_create")?;
                for (name, v) in [("FALSE", 0i8), ("TRUE", 1i8)] {
                    let n = cstr(name)?;
                    check(
                        H5Tenum_insert(t.id(), n.as_ptr(), (&v as *const i8).cast()),
                        "H5Tenum_insert",
                    )?;
                }
                Ok(t)
            }
            ArrayDType::Int { bytes, big_endian } => copy_static(match (bytes, big_endian) {
                (1, false) => *H5T_STD_I8LE,
                (1, true) => *H5T_STD_I8BE,
                (2, false) => *H5T_STD_I16LE,
                (2, true) => *H5T_STD_I16BE,
                (4, false) => *H5T_STD_I32LE,
                (4, true) => *H5T_STD_I32BE,
                (8, false) => *H5T_STD_I64LE,
                (8, true) => *H5T_STD_I64BE,
                _ => return Err(format!("no HDF5 type for {dtype}")),
            }),
            ArrayDType::UInt { bytes, big_endian } => copy_static(match (bytes, big_endian) {
                (1, false) => *H5T_STD_U8LE,
                (1, true) => *H5T_STD_U8BE,
                (2, false) => *H5T_STD_U16LE,
                (2, true) => *H5T_STD_U16BE,
                (4, false) => *H5T_STD_U32LE,
                (4, true) => *H5T_STD_U32BE,
                (8, false) => *H5T_STD_U64LE,
                (8, true) => *H5T_STD_U64BE,
                _ => return Err(format!("no HDF5 type for {dtype}")),
            }),
            ArrayDType::Float { bytes, big_endian } => match bytes {
                2 => {
                    // h5py's half: IEEE_F32LE reshaped to 1+5+10 bits.
                    let t = copy_static(*H5T_IEEE_F32LE)?;
                    check(H5Tset_fields(t.id(), 15, 10, 5, 0, 10), "H5Tset_fields")?;
                    check(H5Tset_size(t.id(), 2), "H5Tset_size")?;
                    check(H5Tset_ebias(t.id(), 15), "H5Tset_ebias")?;
                    if *big_endian {
                        check(
                            H5Tset_order(t.id(), H5T_order_t::H5T_ORDER_BE),
                            "H5Tset_order",
                        )?;
                    }
                    Ok(t)
                }
                4 => copy_static(if *big_endian {
                    *H5T_IEEE_F32BE
                } else {
                    *H5T_IEEE_F32LE
                }),
                8 => copy_static(if *big_endian {
                    *H5T_IEEE_F64BE
                } else {
                    *H5T_IEEE_F64LE
                }),
                _ => Err(format!("no HDF5 type for {dtype}")),
            },
            ArrayDType::Complex { bytes, big_endian } => {
                let half = ArrayDType::Float {
                    bytes: bytes / 2,
                    big_endian: *big_endian,
                };
                let f = create_type(&half)?;
                let t = check_id(H5Tcreate(H5T_class_t::H5T_COMPOUND, *bytes), "H5Tcreate")?;
                for (name, off) in [("r", 0usize), ("i", bytes / 2)] {
                    let n = cstr(name)?;
                    check(H5Tinsert(t.id(), n.as_ptr(), off, f.id()), "H5Tinsert")?;
                }
                Ok(t)
            }
            ArrayDType::FixedBytes(n) => {
                let t = copy_static(*H5T_C_S1)?;
                check(H5Tset_size(t.id(), (*n).max(1)), "H5Tset_size")?;
                check(
                    H5Tset_strpad(t.id(), H5T_str_t::H5T_STR_NULLPAD),
                    "H5Tset_strpad",
                )?;
                Ok(t)
            }
            ArrayDType::VlenStr => {
                let t = copy_static(*H5T_C_S1)?;
                check(H5Tset_size(t.id(), H5T_VARIABLE), "H5Tset_size")?;
                check(
                    H5Tset_cset(t.id(), H5T_cset_t::H5T_CSET_UTF8),
                    "H5Tset_cset",
                )?;
                Ok(t)
            }
            ArrayDType::Void(n) => {
                let t = check_id(H5Tcreate(H5T_class_t::H5T_OPAQUE, (*n).max(1)), "H5Tcreate")?;
                let tag = cstr("")?;
                H5Tset_tag(t.id(), tag.as_ptr());
                Ok(t)
            }
            ArrayDType::Struct(fields) => {
                let size = dtype
                    .itemsize()
                    .ok_or_else(|| format!("structured type {dtype} has no fixed size"))?;
                let t = check_id(H5Tcreate(H5T_class_t::H5T_COMPOUND, size), "H5Tcreate")?;
                let mut off = 0;
                for f in fields {
                    let base = create_type(&f.dtype)?;
                    let ft = if f.shape.is_empty() {
                        base
                    } else {
                        let dims: Vec<hsize_t> = f.shape.iter().map(|&d| d as hsize_t).collect();
                        check_id(
                            H5Tarray_create2(base.id(), dims.len() as u32, dims.as_ptr()),
                            "H5Tarray_create2",
                        )?
                    };
                    let n = cstr(&f.name)?;
                    check(H5Tinsert(t.id(), n.as_ptr(), off, ft.id()), "H5Tinsert")?;
                    off += H5Tget_size(ft.id());
                }
                Ok(t)
            }
            ArrayDType::FixedUnicode(_) | ArrayDType::Object => {
                Err(format!("no HDF5 element type for {dtype}"))
            }
        }
    }
}

/// The memory type to read elements of `kind` with (`file_type` for file-layout kinds).
fn mem_type(kind: &Kind, file_type: hid_t) -> Result<Hid, String> {
    match kind {
        Kind::Fixed {
            file_layout: true, ..
        } => copy_static(file_type),
        Kind::Fixed { dtype, .. } => create_type(dtype),
        Kind::VlenStr { utf8 } => {
            let t = copy_static(*H5T_C_S1)?;
            // SAFETY: `t` is an owned string type.
            unsafe {
                check(H5Tset_size(t.id(), H5T_VARIABLE), "H5Tset_size")?;
                if *utf8 {
                    check(
                        H5Tset_cset(t.id(), H5T_cset_t::H5T_CSET_UTF8),
                        "H5Tset_cset",
                    )?;
                }
            }
            Ok(t)
        }
        Kind::Vlen(base) => {
            // SAFETY: `file_type` is a VLEN type; its super type is owned here.
            let fbase = check_id(unsafe { H5Tget_super(file_type) }, "H5Tget_super")?;
            let b = mem_type(base, fbase.id())?;
            check_id(unsafe { H5Tvlen_create(b.id()) }, "H5Tvlen_create")
        }
    }
}

/// The shape of a dataspace (`None` for a null dataspace). Must run under the lock.
pub(crate) fn space_shape(space: hid_t) -> Result<Option<Vec<usize>>, String> {
    // SAFETY: `space` is a valid dataspace identifier.
    unsafe {
        match H5Sget_simple_extent_type(space) {
            H5S_class_t::H5S_SCALAR => Ok(Some(vec![])),
            H5S_class_t::H5S_NULL => Ok(None),
            H5S_class_t::H5S_SIMPLE => {
                let nd = H5Sget_simple_extent_ndims(space);
                if nd < 0 {
                    return Err(h5_error("H5Sget_simple_extent_ndims"));
                }
                let mut dims = vec![0 as hsize_t; nd as usize];
                if nd > 0 {
                    H5Sget_simple_extent_dims(space, dims.as_mut_ptr(), ptr::null_mut());
                }
                Ok(Some(dims.iter().map(|&d| d as usize).collect()))
            }
            _ => Err("invalid dataspace".into()),
        }
    }
}

/// Takes ownership of a library-allocated C string.
unsafe fn take_cstring(p: *mut c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: `p` is a NUL-terminated string allocated by the library.
    unsafe {
        let s = CStr::from_ptr(p).to_string_lossy().into_owned();
        H5free_memory(p.cast());
        s
    }
}

/// Reads all elements of an attribute (`attr = true`) or a dataset with the given file type
/// and element count; returns the values in C order. Must run under the lock.
fn read_all(
    obj: hid_t,
    attr: bool,
    kind: &Kind,
    file_type: hid_t,
    n: usize,
) -> Result<ArrayData, String> {
    let mt = mem_type(kind, file_type)?;
    let read = |buf: *mut c_void| -> Result<(), String> {
        // SAFETY: `buf` holds `n` elements of the memory type `mt`.
        let status = unsafe {
            if attr {
                H5Aread(obj, mt.id(), buf)
            } else {
                H5Dread(obj, mt.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)
            }
        };
        check(status, if attr { "H5Aread" } else { "H5Dread" })
    };
    match kind {
        Kind::Fixed { .. } => {
            // SAFETY: `mt` is a valid type.
            let size = unsafe { H5Tget_size(mt.id()) };
            let mut buf = vec![0u8; size * n];
            if n > 0 {
                read(buf.as_mut_ptr().cast())?;
            }
            Ok(ArrayData::Raw(buf))
        }
        Kind::VlenStr { .. } => {
            let mut ptrs: Vec<*mut c_char> = vec![ptr::null_mut(); n];
            if n > 0 {
                read(ptrs.as_mut_ptr().cast())?;
            }
            // SAFETY: each pointer was allocated by the library for this read.
            Ok(ArrayData::Strings(
                ptrs.into_iter()
                    .map(|p| unsafe { take_cstring(p) })
                    .collect(),
            ))
        }
        Kind::Vlen(base) => {
            let mut seqs: Vec<hvl_t> = vec![
                hvl_t {
                    len: 0,
                    p: ptr::null_mut()
                };
                n
            ];
            if n > 0 {
                read(seqs.as_mut_ptr().cast())?;
            }
            // SAFETY: the super type of the memory type describes the cell elements.
            let base_mt = check_id(unsafe { H5Tget_super(mt.id()) }, "H5Tget_super")?;
            let esize = unsafe { H5Tget_size(base_mt.id()) };
            let mut cells = Vec::with_capacity(n);
            let mut failure = None;
            for s in seqs {
                let cell = match &**base {
                    Kind::Fixed { dtype, .. } => {
                        let bytes = if s.len == 0 || s.p.is_null() {
                            vec![]
                        } else {
                            // SAFETY: the library filled `len` elements of `esize` bytes.
                            unsafe { std::slice::from_raw_parts(s.p.cast::<u8>(), s.len * esize) }
                                .to_vec()
                        };
                        Array {
                            dtype: dtype.clone(),
                            shape: vec![s.len],
                            data: ArrayData::Raw(bytes),
                        }
                    }
                    Kind::VlenStr { .. } => {
                        let strs: Vec<String> = (0..s.len)
                            // SAFETY: `p` holds `len` string pointers owned by us now.
                            .map(|i| unsafe { take_cstring(*s.p.cast::<*mut c_char>().add(i)) })
                            .collect();
                        let width = strs.iter().map(|x| x.chars().count()).max().unwrap_or(0);
                        Array {
                            dtype: ArrayDType::FixedUnicode(width.max(1)),
                            shape: vec![s.len],
                            data: ArrayData::Strings(strs),
                        }
                    }
                    Kind::Vlen(_) => {
                        failure = Some("nested variable-length sequences".to_string());
                        Array::from_f64(&[])
                    }
                };
                if !s.p.is_null() {
                    // SAFETY: the sequence buffer was allocated by the library.
                    unsafe { H5free_memory(s.p) };
                }
                cells.push(cell);
            }
            if let Some(f) = failure {
                return Err(f);
            }
            Ok(ArrayData::Cells(cells))
        }
    }
}

/// An attribute's or dataset's values: its dtype, shape and values.
pub(crate) struct ReadValues {
    pub(crate) dtype: ArrayDType,
    /// `None` for a null dataspace (an empty attribute).
    pub(crate) shape: Option<Vec<usize>>,
    pub(crate) data: ArrayData,
}

/// Reads the attribute `name` of `obj`. Must run under the lock.
pub(crate) fn read_attr(obj: hid_t, name: &str) -> Result<ReadValues, String> {
    let n = cstr(name)?;
    // SAFETY: `obj` is a valid object; every identifier opened here is owned.
    let a = check_id(unsafe { H5Aopen(obj, n.as_ptr(), H5P_DEFAULT) }, "H5Aopen")?;
    let t = check_id(unsafe { H5Aget_type(a.id()) }, "H5Aget_type")?;
    let s = check_id(unsafe { H5Aget_space(a.id()) }, "H5Aget_space")?;
    let kind = describe_type(t.id())?;
    let shape = space_shape(s.id())?;
    let Some(shape) = shape else {
        return Ok(ReadValues {
            dtype: kind.dtype(),
            shape: None,
            data: ArrayData::Raw(vec![]),
        });
    };
    let count = shape.iter().product();
    let data = read_all(a.id(), true, &kind, t.id(), count)?;
    Ok(ReadValues {
        dtype: kind.dtype(),
        shape: Some(shape),
        data,
    })
}

/// Reads a whole dataset. Must run under the lock.
pub(crate) fn read_dataset_all(ds: hid_t) -> Result<ReadValues, String> {
    // SAFETY: `ds` is a valid dataset.
    let t = check_id(unsafe { H5Dget_type(ds) }, "H5Dget_type")?;
    let s = check_id(unsafe { H5Dget_space(ds) }, "H5Dget_space")?;
    let kind = describe_type(t.id())?;
    let shape = space_shape(s.id())?.unwrap_or_else(|| vec![0]);
    let count = shape.iter().product();
    let data = read_all(ds, false, &kind, t.id(), count)?;
    Ok(ReadValues {
        dtype: kind.dtype(),
        shape: Some(shape),
        data,
    })
}

/// An attribute's values as a tree value (scalars decoded, arrays kept as arrays).
pub(crate) fn attr_value(v: ReadValues) -> Value {
    let Some(shape) = v.shape else {
        return Value::None;
    };
    if shape.is_empty() {
        return match v.data {
            ArrayData::Raw(b) => decode_scalar(&v.dtype, &b).unwrap_or(Value::Bytes(b)),
            ArrayData::Strings(mut s) => Value::Str(s.pop().unwrap_or_default()),
            ArrayData::Cells(mut c) => c.pop().map_or(Value::None, Value::Array),
        };
    }
    Value::Array(Array {
        dtype: v.dtype,
        shape,
        data: v.data,
    })
}

// ---------------------------------------------------------------------------------------
// Groups and links
// ---------------------------------------------------------------------------------------

/// Whether `obj` has a link `name`. Must run under the lock.
pub(crate) fn link_exists(obj: hid_t, name: &str) -> Result<bool, String> {
    let n = cstr(name)?;
    // SAFETY: valid object and name.
    Ok(unsafe { H5Lexists(obj, n.as_ptr(), H5P_DEFAULT) } > 0)
}

/// What a link points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ObjType {
    Group,
    Dataset,
    Other,
}

/// The type of the object at link `name` (`None` for a dangling link). Under the lock.
pub(crate) fn obj_type(obj: hid_t, name: &str) -> Result<Option<ObjType>, String> {
    let n = cstr(name)?;
    // SAFETY: valid object and name; the opened object is owned and closed.
    let id = unsafe { H5Oopen(obj, n.as_ptr(), H5P_DEFAULT) };
    if id < 0 {
        return Ok(None);
    }
    let o = Hid(id);
    Ok(Some(match unsafe { H5Iget_type(o.id()) } {
        H5I_type_t::H5I_GROUP => ObjType::Group,
        H5I_type_t::H5I_DATASET => ObjType::Dataset,
        _ => ObjType::Other,
    }))
}

/// The link names of a group, in name order (h5py's iteration order). Under the lock.
pub(crate) fn link_names(g: hid_t) -> Result<Vec<String>, String> {
    let mut info = H5G_info_t {
        storage_type: hdf5_sys::h5g::H5G_storage_type_t::H5G_STORAGE_TYPE_COMPACT,
        nlinks: 0,
        max_corder: 0,
        mounted: 0,
    };
    // SAFETY: `g` is a group; `info` is a valid out-pointer.
    check(unsafe { H5Gget_info(g, &mut info) }, "H5Gget_info")?;
    let dot = cstr(".")?;
    let mut names = Vec::with_capacity(info.nlinks as usize);
    for i in 0..info.nlinks {
        // SAFETY: querying the size first, then filling a buffer of that size + 1.
        let len = unsafe {
            H5Lget_name_by_idx(
                g,
                dot.as_ptr(),
                hdf5_sys::h5::H5_index_t::H5_INDEX_NAME,
                hdf5_sys::h5::H5_iter_order_t::H5_ITER_INC,
                i,
                ptr::null_mut(),
                0,
                H5P_DEFAULT,
            )
        };
        if len < 0 {
            return Err(h5_error("H5Lget_name_by_idx"));
        }
        let mut buf = vec![0u8; len as usize + 1];
        let r = unsafe {
            H5Lget_name_by_idx(
                g,
                dot.as_ptr(),
                hdf5_sys::h5::H5_index_t::H5_INDEX_NAME,
                hdf5_sys::h5::H5_iter_order_t::H5_ITER_INC,
                i,
                buf.as_mut_ptr().cast(),
                buf.len(),
                H5P_DEFAULT,
            )
        };
        if r < 0 {
            return Err(h5_error("H5Lget_name_by_idx"));
        }
        buf.truncate(len as usize);
        names.push(String::from_utf8_lossy(&buf).into_owned());
    }
    Ok(names)
}

unsafe extern "C" fn collect_attr_name(
    _loc: hid_t,
    name: *const c_char,
    _info: *const H5A_info_t,
    data: *mut c_void,
) -> i32 {
    // SAFETY: `data` is the `Vec<String>` passed to `H5Aiterate2` below; `name` is a valid
    // NUL-terminated string during the callback.
    unsafe {
        let v = &mut *data.cast::<Vec<String>>();
        v.push(CStr::from_ptr(name).to_string_lossy().into_owned());
    }
    0
}

/// The attribute names of an object, in name order. Under the lock.
pub(crate) fn attr_names(obj: hid_t) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    let mut idx: hsize_t = 0;
    // SAFETY: the callback only appends to `names`, which outlives the call.
    let r = unsafe {
        H5Aiterate2(
            obj,
            hdf5_sys::h5::H5_index_t::H5_INDEX_NAME,
            hdf5_sys::h5::H5_iter_order_t::H5_ITER_INC,
            &mut idx,
            Some(collect_attr_name),
            (&mut names as *mut Vec<String>).cast(),
        )
    };
    check(r, "H5Aiterate2")?;
    Ok(names)
}

/// Opens the group `name` of `obj`. Under the lock.
pub(crate) fn open_group(obj: hid_t, name: &str) -> Result<Hid, String> {
    let n = cstr(name)?;
    // SAFETY: valid object and name.
    check_id(
        unsafe { H5Gopen2(obj, n.as_ptr(), H5P_DEFAULT) },
        "H5Gopen2",
    )
}

/// Opens the dataset `name` of `obj`. Under the lock.
pub(crate) fn open_dataset(obj: hid_t, name: &str) -> Result<Hid, String> {
    let n = cstr(name)?;
    // SAFETY: valid object and name.
    check_id(
        unsafe { hdf5_sys::h5d::H5Dopen2(obj, n.as_ptr(), H5P_DEFAULT) },
        "H5Dopen2",
    )
}

/// A link creation property list with UTF-8 names (as h5py makes). Under the lock.
fn utf8_lcpl() -> Result<Hid, String> {
    // SAFETY: creating and setting an owned property list.
    let p = check_id(unsafe { H5Pcreate(*H5P_CLS_LINK_CREATE) }, "H5Pcreate")?;
    check(
        unsafe { H5Pset_char_encoding(p.id(), H5T_cset_t::H5T_CSET_UTF8) },
        "H5Pset_char_encoding",
    )?;
    Ok(p)
}

/// Creates the group `name` in `obj`. Under the lock.
pub(crate) fn create_group(obj: hid_t, name: &str) -> Result<Hid, String> {
    let n = cstr(name)?;
    let lcpl = utf8_lcpl()?;
    // SAFETY: valid object, name and property list.
    check_id(
        unsafe { H5Gcreate2(obj, n.as_ptr(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT) },
        "H5Gcreate2",
    )
}

/// Deletes the link `name` of `obj`. Under the lock.
pub(crate) fn delete_link(obj: hid_t, name: &str) -> Result<(), String> {
    let n = cstr(name)?;
    // SAFETY: valid object and name.
    check(
        unsafe { H5Ldelete(obj, n.as_ptr(), H5P_DEFAULT) },
        "H5Ldelete",
    )
}

// ---------------------------------------------------------------------------------------
// Writing attributes and datasets
// ---------------------------------------------------------------------------------------

/// A dataspace of `shape` (scalar for `[]`). Under the lock.
pub(crate) fn create_space(shape: &[usize]) -> Result<Hid, String> {
    if shape.is_empty() {
        // SAFETY: creating an owned dataspace.
        return check_id(unsafe { H5Screate(H5S_class_t::H5S_SCALAR) }, "H5Screate");
    }
    let dims: Vec<hsize_t> = shape.iter().map(|&d| d as hsize_t).collect();
    // SAFETY: `dims` has `len` entries.
    check_id(
        unsafe { H5Screate_simple(dims.len() as i32, dims.as_ptr(), ptr::null()) },
        "H5Screate_simple",
    )
}

/// Element buffers ready to hand to `H5Awrite`/`H5Dwrite`, keeping C strings and VLEN
/// buffers alive.
pub(crate) struct WriteBuf {
    bytes: Vec<u8>,
    _strings: Vec<CString>,
    _ptrs: Vec<*const c_char>,
    _cells: Vec<Vec<u8>>,
    _cell_ptrs: Vec<Vec<*const c_char>>,
    ptr: *const c_void,
}

impl WriteBuf {
    pub(crate) fn as_ptr(&self) -> *const c_void {
        self.ptr
    }
}

fn c_strings(items: &[String]) -> Result<(Vec<CString>, Vec<*const c_char>), String> {
    let cs: Vec<CString> = items
        .iter()
        .map(|s| cstr(s))
        .collect::<Result<Vec<_>, _>>()?;
    let ps = cs.iter().map(|c| c.as_ptr()).collect();
    Ok((cs, ps))
}

/// The file type and the element buffer for writing `a` (numbers, bools, complex, structs,
/// fixed/variable strings, ragged cells). Under the lock.
pub(crate) fn prepare_write(a: &Array) -> Result<(Hid, WriteBuf), String> {
    match (&a.dtype, &a.data) {
        (ArrayDType::VlenStr, ArrayData::Strings(items)) => {
            let (cs, ps) = c_strings(items)?;
            let ptr = ps.as_ptr().cast();
            Ok((
                create_type(&ArrayDType::VlenStr)?,
                WriteBuf {
                    bytes: vec![],
                    _strings: cs,
                    _ptrs: ps,
                    _cells: vec![],
                    _cell_ptrs: vec![],
                    ptr,
                },
            ))
        }
        (ArrayDType::Object, ArrayData::Cells(cells)) => {
            // The element type is that of the first cell (RosettaSciIO `_get_object_dset`).
            let first = cells
                .first()
                .map(|c| c.dtype.clone())
                .unwrap_or(ArrayDType::F64);
            let strings = matches!(first, ArrayDType::VlenStr | ArrayDType::FixedUnicode(_));
            let base = if strings {
                create_type(&ArrayDType::VlenStr)?
            } else {
                create_type(&first)?
            };
            // SAFETY: building an owned VLEN type.
            let t = check_id(unsafe { H5Tvlen_create(base.id()) }, "H5Tvlen_create")?;
            let mut cell_bytes = Vec::new();
            let mut cell_ptrs = Vec::new();
            let mut all_strings = Vec::new();
            for c in cells {
                if strings {
                    let items: Vec<String> = match &c.data {
                        ArrayData::Strings(s) => s.clone(),
                        _ => return Err("a string cell without strings".into()),
                    };
                    let (cs, ps) = c_strings(&items)?;
                    all_strings.extend(cs);
                    cell_ptrs.push(ps);
                } else {
                    if c.dtype != first {
                        return Err(format!(
                            "ragged cells of different types ({} and {first}) cannot be stored",
                            c.dtype
                        ));
                    }
                    match &c.data {
                        ArrayData::Raw(b) => cell_bytes.push(b.clone()),
                        _ => return Err("a numeric cell without raw values".into()),
                    }
                }
            }
            let mut seqs: Vec<hvl_t> = Vec::with_capacity(cells.len());
            if strings {
                for ps in &cell_ptrs {
                    seqs.push(hvl_t {
                        len: ps.len(),
                        p: ps.as_ptr() as *mut c_void,
                    });
                }
            } else {
                for (b, c) in cell_bytes.iter().zip(cells) {
                    seqs.push(hvl_t {
                        len: c.len(),
                        p: b.as_ptr() as *mut c_void,
                    });
                }
            }
            let n = seqs.len() * std::mem::size_of::<hvl_t>();
            let mut bytes = vec![0u8; n];
            // SAFETY: copying `seqs` (plain old data) into a byte buffer of the same size.
            unsafe {
                ptr::copy_nonoverlapping(seqs.as_ptr().cast::<u8>(), bytes.as_mut_ptr(), n);
            }
            let ptr = bytes.as_ptr().cast();
            Ok((
                t,
                WriteBuf {
                    bytes,
                    _strings: all_strings,
                    _ptrs: vec![],
                    _cells: cell_bytes,
                    _cell_ptrs: cell_ptrs,
                    ptr,
                },
            ))
        }
        (dtype, ArrayData::Raw(b)) => {
            let t = create_type(dtype)?;
            let bytes = b.clone();
            let ptr = bytes.as_ptr().cast();
            Ok((
                t,
                WriteBuf {
                    bytes,
                    _strings: vec![],
                    _ptrs: vec![],
                    _cells: vec![],
                    _cell_ptrs: vec![],
                    ptr,
                },
            ))
        }
        (dtype, _) => Err(format!("values of type {dtype} cannot be written")),
    }
}

/// Writes (replacing) the attribute `name` of `obj`. Under the lock.
pub(crate) fn write_attr(obj: hid_t, name: &str, a: &Array) -> Result<(), String> {
    let n = cstr(name)?;
    // SAFETY: valid object and name; every identifier is owned.
    unsafe {
        if H5Aexists(obj, n.as_ptr()) > 0 {
            check(H5Adelete(obj, n.as_ptr()), "H5Adelete")?;
        }
    }
    let (t, buf) = prepare_write(a)?;
    let space = create_space(&a.shape)?;
    let attr = check_id(
        unsafe {
            H5Acreate2(
                obj,
                n.as_ptr(),
                t.id(),
                space.id(),
                H5P_DEFAULT,
                H5P_DEFAULT,
            )
        },
        "H5Acreate2",
    )?;
    check(
        unsafe { H5Awrite(attr.id(), t.id(), buf.as_ptr()) },
        "H5Awrite",
    )?;
    let _ = buf.bytes.len();
    Ok(())
}

/// Dataset storage options.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Storage {
    /// Chunk shape (`None`: contiguous).
    pub(crate) chunks: Option<Vec<usize>>,
    /// Deflate level.
    pub(crate) gzip: Option<u32>,
    /// Byte shuffle before compression.
    pub(crate) shuffle: bool,
    /// LZF compression (h5py's filter 32000, optional).
    pub(crate) lzf: bool,
}

/// Creates the dataset `name` of type `t` and `shape` with `storage`. Under the lock.
pub(crate) fn create_dataset(
    obj: hid_t,
    name: &str,
    t: hid_t,
    shape: &[usize],
    storage: &Storage,
) -> Result<Hid, String> {
    let n = cstr(name)?;
    let space = create_space(shape)?;
    let lcpl = utf8_lcpl()?;
    // SAFETY: creating an owned property list and dataset.
    let dcpl = check_id(unsafe { H5Pcreate(*H5P_CLS_DATASET_CREATE) }, "H5Pcreate")?;
    if let Some(chunks) = &storage.chunks {
        let dims: Vec<hsize_t> = chunks.iter().map(|&c| c.max(1) as hsize_t).collect();
        unsafe {
            check(
                H5Pset_chunk(dcpl.id(), dims.len() as i32, dims.as_ptr()),
                "H5Pset_chunk",
            )?;
            if storage.shuffle {
                check(H5Pset_shuffle(dcpl.id()), "H5Pset_shuffle")?;
            }
            if let Some(level) = storage.gzip {
                check(H5Pset_deflate(dcpl.id(), level), "H5Pset_deflate")?;
            }
            if storage.lzf {
                check(
                    hdf5_sys::h5p::H5Pset_filter(
                        dcpl.id(),
                        32000,
                        hdf5_sys::h5z::H5Z_FLAG_OPTIONAL,
                        0,
                        ptr::null(),
                    ),
                    "H5Pset_filter(lzf)",
                )?;
            }
        }
    }
    check_id(
        unsafe {
            H5Dcreate2(
                obj,
                n.as_ptr(),
                t,
                space.id(),
                lcpl.id(),
                dcpl.id(),
                H5P_DEFAULT,
            )
        },
        "H5Dcreate2",
    )
}

/// Writes all of `buf` into the dataset `ds` with memory type `t`. Under the lock.
pub(crate) fn write_dataset_all(ds: hid_t, t: hid_t, buf: &WriteBuf) -> Result<(), String> {
    // SAFETY: `buf` holds every element of the dataset in the layout of `t`.
    check(
        unsafe { H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.as_ptr()) },
        "H5Dwrite",
    )
}
