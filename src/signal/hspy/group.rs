//! [`HspyGroup`]: an HDF5 group as a [`GroupRead`] and a [`GroupWrite`], with the types
//! h5py reads and writes (spec §4.2): vlen UTF-8 string attributes, enum bools,
//! `{r, i}` complex compounds, opaque `_bs_` bytes, vlen string list datasets, VLEN ragged
//! datasets, and gzip + shuffle chunked metadata arrays with h5py's guessed chunks.

use std::sync::Arc;

use hdf5_sys::h5d::{H5D_layout_t, H5Dget_create_plist, H5Dget_space, H5Dget_type};
use hdf5_sys::h5p::{H5Pget_chunk, H5Pget_filter2, H5Pget_layout, H5Pget_nfilters};

use super::ffi::{self, Hid, Storage, h5};
use crate::signal::hierarchy::{
    AttrWrite, DatasetInfo, DatasetValue, GroupRead, GroupWrite, NodeKind,
};
use crate::signal::tree::{Array, ArrayDType, ArrayData, Dict, Value};
use crate::signal::{Location, Result, SignalError};

/// One filter of a dataset's pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterInfo {
    /// HDF5 filter id (1 deflate, 2 shuffle, 3 fletcher32, 32000 lzf, 32001 blosc, ...).
    pub id: i32,
    /// The filter's name as stored.
    pub name: String,
    /// Flags (1: optional).
    pub flags: u32,
    /// Client data values.
    pub cd_values: Vec<u32>,
}

/// Layout and filters of a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetLayout {
    /// `"chunked"`, `"contiguous"`, `"compact"` or `"virtual"`.
    pub layout: &'static str,
    /// Chunk shape (chunked layout only).
    pub chunks: Option<Vec<usize>>,
    /// The filter pipeline, in write order.
    pub filters: Vec<FilterInfo>,
}

/// Reads the layout of dataset `ds`. Under the lock.
pub(crate) fn dataset_layout(ds: &Hid) -> std::result::Result<DatasetLayout, String> {
    // SAFETY: `ds` is a dataset; the property list is owned.
    let dcpl = ffi::check_id(
        unsafe { H5Dget_create_plist(ds.id()) },
        "H5Dget_create_plist",
    )?;
    let layout = unsafe { H5Pget_layout(dcpl.id()) };
    let (name, chunks) = match layout {
        H5D_layout_t::H5D_CHUNKED => {
            let mut dims = [0u64; 32];
            let nd = unsafe { H5Pget_chunk(dcpl.id(), 32, dims.as_mut_ptr()) };
            if nd < 0 {
                return Err(ffi::h5_error("H5Pget_chunk"));
            }
            (
                "chunked",
                Some(dims[..nd as usize].iter().map(|&d| d as usize).collect()),
            )
        }
        H5D_layout_t::H5D_CONTIGUOUS => ("contiguous", None),
        H5D_layout_t::H5D_COMPACT => ("compact", None),
        _ => ("virtual", None),
    };
    let n = unsafe { H5Pget_nfilters(dcpl.id()) }.max(0) as u32;
    let mut filters = Vec::new();
    for i in 0..n {
        let mut flags = 0u32;
        let mut nelmts: usize = 16;
        let mut cd = [0u32; 16];
        let mut fname = [0 as std::ffi::c_char; 64];
        let mut config = 0u32;
        // SAFETY: every out-buffer is as large as said.
        let id = unsafe {
            H5Pget_filter2(
                dcpl.id(),
                i,
                &mut flags,
                &mut nelmts,
                cd.as_mut_ptr(),
                fname.len(),
                fname.as_mut_ptr(),
                &mut config,
            )
        };
        if id < 0 {
            return Err(ffi::h5_error("H5Pget_filter2"));
        }
        // SAFETY: the library NUL-terminates the name within the buffer.
        let name = unsafe { std::ffi::CStr::from_ptr(fname.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        filters.push(FilterInfo {
            id,
            name,
            flags,
            cd_values: cd[..nelmts.min(16)].to_vec(),
        });
    }
    Ok(DatasetLayout {
        layout: name,
        chunks,
        filters,
    })
}

/// The storage description of a dataset, as the fixtures' sidecars give it (h5py's
/// `compression`, `compression_opts`, `shuffle` and the raw filter pipeline).
pub(crate) fn storage_dict(l: &DatasetLayout) -> Dict {
    let mut d = Dict::new().with("layout", l.layout);
    d.insert(
        "chunks",
        match &l.chunks {
            Some(c) => Value::List(c.iter().map(|&x| Value::Int(x as i64)).collect()),
            None => Value::None,
        },
    );
    let comp = l.filters.iter().find_map(|f| match f.id {
        1 => Some(("gzip", f)),
        32000 => Some(("lzf", f)),
        4 => Some(("szip", f)),
        _ => None,
    });
    match comp {
        Some(("gzip", f)) => {
            d.insert("compression", "gzip");
            d.insert(
                "compression_opts",
                f.cd_values
                    .first()
                    .map_or(Value::None, |&v| Value::Int(v as i64)),
            );
        }
        Some((name, _)) => {
            d.insert("compression", name);
            d.insert("compression_opts", Value::None);
        }
        None if l.filters.iter().any(|f| !matches!(f.id, 2 | 3 | 5 | 6)) => {
            // A compressor h5py does not know (Blosc, ...).
            d.insert("compression", "unknown");
            d.insert("compression_opts", Value::None);
        }
        None => {
            d.insert("compression", Value::None);
            d.insert("compression_opts", Value::None);
        }
    }
    d.insert("shuffle", l.filters.iter().any(|f| f.id == 2));
    d.insert(
        "filters",
        Value::List(
            l.filters
                .iter()
                .map(|f| {
                    Value::Dict(
                        Dict::new()
                            .with("id", Value::Int(f.id as i64))
                            .with("name", f.name.as_str())
                            .with("flags", Value::Int(f.flags as i64))
                            .with(
                                "cd_values",
                                Value::List(
                                    f.cd_values.iter().map(|&v| Value::Int(v as i64)).collect(),
                                ),
                            ),
                    )
                })
                .collect(),
        ),
    );
    d
}

/// h5py's `guess_chunk` (spec §6.3): BASE 16 KiB, MIN 8 KiB, MAX 1 MiB.
pub fn h5py_guess_chunk(shape: &[usize], itemsize: usize) -> Vec<usize> {
    const BASE: f64 = 16.0 * 1024.0;
    const MIN: f64 = 8.0 * 1024.0;
    const MAX: f64 = 1024.0 * 1024.0;
    if shape.is_empty() {
        return vec![];
    }
    let mut chunks: Vec<f64> = shape
        .iter()
        .map(|&x| if x == 0 { 1024.0 } else { x as f64 })
        .collect();
    let ndims = chunks.len();
    let typesize = itemsize.max(1) as f64;
    let dset_size = chunks.iter().product::<f64>() * typesize;
    let target = (BASE * 2f64.powf((dset_size / (1024.0 * 1024.0)).log10())).clamp(MIN, MAX);
    let mut idx = 0;
    loop {
        let chunk_bytes = chunks.iter().product::<f64>() * typesize;
        if (chunk_bytes < target || (chunk_bytes - target).abs() / target < 0.5)
            && chunk_bytes < MAX
        {
            break;
        }
        if chunks.iter().product::<f64>() == 1.0 {
            break;
        }
        chunks[idx % ndims] = (chunks[idx % ndims] / 2.0).ceil();
        idx += 1;
    }
    chunks.iter().map(|&c| c as usize).collect()
}

/// Dataset creation options applied to every dataset of a file written here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetFilters {
    /// Deflate level (`None`: no compression).
    pub gzip: Option<u32>,
    /// Byte shuffle before compression.
    pub shuffle: bool,
    /// LZF compression instead of deflate.
    pub lzf: bool,
}

impl Default for DatasetFilters {
    fn default() -> Self {
        DatasetFilters {
            gzip: Some(4),
            shuffle: true,
            lzf: false,
        }
    }
}

/// A group of an HDF5 file (a cheap handle: clones share the identifier).
#[derive(Clone, Debug)]
pub struct HspyGroup {
    id: Arc<Hid>,
    file: String,
    path: String,
    filters: DatasetFilters,
}

impl HspyGroup {
    pub(crate) fn new(id: Hid, file: String, path: String, filters: DatasetFilters) -> Self {
        HspyGroup {
            id: Arc::new(id),
            file,
            path,
            filters,
        }
    }

    /// The raw identifier.
    pub(crate) fn raw(&self) -> i64 {
        self.id.id()
    }

    fn loc(&self) -> Location {
        Location::new(self.file.clone(), self.path.clone())
    }

    /// The file, as given when it was opened.
    pub(crate) fn location_file(&self) -> String {
        self.file.clone()
    }

    fn err(&self, name: &str, msg: String) -> SignalError {
        SignalError::invalid(&self.loc().child(name), msg)
    }

    fn child(&self, id: Hid, name: &str) -> HspyGroup {
        HspyGroup {
            id: Arc::new(id),
            file: self.file.clone(),
            path: self.loc().child(name).path,
            filters: self.filters,
        }
    }

    /// Deletes the member `name` (used to rewrite axis groups, spec §4.5).
    pub fn delete(&mut self, name: &str) -> Result<()> {
        let id = self.raw();
        h5(|| ffi::delete_link(id, name)).map_err(|e| self.err(name, e))
    }

    /// Creates the dataset `name` for a signal's `data` of type `dtype`, `shape` and
    /// `chunks`, with this file's filters; returns its identifier.
    pub(crate) fn create_data_dataset(
        &self,
        name: &str,
        dtype: &ArrayDType,
        shape: &[usize],
        chunks: &[usize],
    ) -> Result<Hid> {
        let id = self.raw();
        let storage = Storage {
            chunks: Some(chunks.to_vec()),
            gzip: self.filters.gzip,
            shuffle: self.filters.shuffle,
            lzf: self.filters.lzf,
        };
        h5(|| {
            if ffi::link_exists(id, name)? {
                ffi::delete_link(id, name)?;
            }
            let t = ffi::create_type(dtype)?;
            ffi::create_dataset(id, name, t.id(), shape, &storage)
        })
        .map_err(|e| SignalError::write(&self.loc().child(name), e))
    }
}

fn unsupported(loc: &Location, msg: String) -> SignalError {
    SignalError::unsupported(loc, msg)
}

impl GroupRead for HspyGroup {
    fn location(&self) -> Location {
        self.loc()
    }

    fn attrs(&self) -> Result<Vec<(String, Value)>> {
        let id = self.raw();
        let names = h5(|| ffi::attr_names(id)).map_err(|e| self.err("", e))?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let v = h5(|| ffi::read_attr(id, &name)).map_err(|e| {
                unsupported(
                    &self.loc().child(&name),
                    format!("cannot read the attribute: {e}"),
                )
            })?;
            out.push((name, ffi::attr_value(v)));
        }
        Ok(out)
    }

    fn children(&self) -> Result<Vec<(String, NodeKind)>> {
        let id = self.raw();
        h5(|| {
            let names = ffi::link_names(id)?;
            let mut out = Vec::with_capacity(names.len());
            for n in names {
                match ffi::obj_type(id, &n)? {
                    Some(ffi::ObjType::Group) => out.push((n, NodeKind::Group)),
                    Some(ffi::ObjType::Dataset) => out.push((n, NodeKind::Dataset)),
                    _ => {}
                }
            }
            Ok(out)
        })
        .map_err(|e: String| self.err("", e))
    }

    fn group(&self, name: &str) -> Result<Option<Self>> {
        let id = self.raw();
        let g = h5(|| -> std::result::Result<Option<Hid>, String> {
            if !ffi::link_exists(id, name)? || ffi::obj_type(id, name)? != Some(ffi::ObjType::Group)
            {
                return Ok(None);
            }
            ffi::open_group(id, name).map(Some)
        })
        .map_err(|e| self.err(name, e))?;
        Ok(g.map(|g| self.child(g, name)))
    }

    fn dataset_info(&self, name: &str) -> Result<Option<DatasetInfo>> {
        let id = self.raw();
        let loc = self.loc().child(name);
        h5(
            || -> std::result::Result<Option<DatasetInfo>, SignalError> {
                let e = |m: String| SignalError::invalid(&loc, m);
                if !ffi::link_exists(id, name).map_err(e)?
                    || ffi::obj_type(id, name).map_err(e)? != Some(ffi::ObjType::Dataset)
                {
                    return Ok(None);
                }
                let ds = ffi::open_dataset(id, name).map_err(e)?;
                // SAFETY: `ds` is a dataset; the type and space are owned.
                let t = ffi::check_id(unsafe { H5Dget_type(ds.id()) }, "H5Dget_type").map_err(e)?;
                let s =
                    ffi::check_id(unsafe { H5Dget_space(ds.id()) }, "H5Dget_space").map_err(e)?;
                let kind = ffi::describe_type(t.id())
                    .map_err(|m| SignalError::unsupported(&loc, format!("element type: {m}")))?;
                let shape = ffi::space_shape(s.id()).map_err(e)?.unwrap_or_default();
                let layout = dataset_layout(&ds).map_err(e)?;
                Ok(Some(DatasetInfo {
                    dtype: kind.dtype(),
                    chunks: layout.chunks.clone().unwrap_or_else(|| shape.clone()),
                    shape,
                    storage: storage_dict(&layout),
                }))
            },
        )
    }

    fn read_dataset(&self, name: &str) -> Result<DatasetValue> {
        let id = self.raw();
        let loc = self.loc().child(name);
        let v = h5(|| {
            let ds = ffi::open_dataset(id, name)?;
            ffi::read_dataset_all(ds.id())
        })
        .map_err(|e| SignalError::invalid(&loc, format!("cannot read the dataset: {e}")))?;
        Ok(DatasetValue::Loaded(Array {
            dtype: v.dtype,
            shape: v.shape.unwrap_or_default(),
            data: v.data,
        }))
    }

    fn list_strings_as_str(&self) -> bool {
        true
    }
}

fn scalar_array(v: &Value) -> Option<Array> {
    let mut a = match v {
        Value::Str(s) => Array::from_strings(vec![s.clone()]),
        Value::Int(i) => Array::from_i64(&[*i]),
        Value::UInt(u) => Array::from_u64(&[*u]),
        Value::Float(f) => Array::from_f64(&[*f]),
        Value::Bool(b) => Array::from_bool(&[*b]),
        Value::Complex(r, i) => Array::from_c128(&[(*r, *i)]),
        Value::Bytes(b) => Array {
            dtype: ArrayDType::Void(b.len().max(1)),
            shape: vec![1],
            data: ArrayData::Raw(if b.is_empty() { vec![0] } else { b.clone() }),
        },
        _ => return None,
    };
    a.shape = vec![];
    Some(a)
}

impl GroupWrite for HspyGroup {
    fn location(&self) -> Location {
        self.loc()
    }

    fn require_group(&mut self, name: &str) -> Result<Self> {
        let id = self.raw();
        let g = h5(|| {
            if ffi::link_exists(id, name)? {
                ffi::open_group(id, name)
            } else {
                ffi::create_group(id, name)
            }
        })
        .map_err(|e| SignalError::write(&self.loc().child(name), e))?;
        Ok(self.child(g, name))
    }

    fn set_attr(&mut self, name: &str, value: &Value) -> Result<AttrWrite> {
        let Some(a) = scalar_array(value) else {
            return Ok(AttrWrite::Dropped(format!(
                "a {} cannot be stored as an HDF5 attribute",
                value.kind()
            )));
        };
        let id = self.raw();
        h5(|| ffi::write_attr(id, name, &a))
            .map_err(|e| SignalError::write(&self.loc().child(name), e))?;
        Ok(AttrWrite::Written)
    }

    fn write_dataset(
        &mut self,
        name: &str,
        value: &DatasetValue,
        chunks: Option<&[usize]>,
    ) -> Result<()> {
        let loc = self.loc().child(name);
        let a = match value {
            DatasetValue::Loaded(a) => a,
            DatasetValue::Deferred(r) => {
                return Err(SignalError::write(
                    &loc,
                    format!(
                        "the values were never read ({}); they cannot be copied",
                        r.reason
                    ),
                ));
            }
        };
        let itemsize = a.dtype.itemsize().unwrap_or(8);
        let filtered = self.filters.gzip.is_some() || self.filters.shuffle || self.filters.lzf;
        let is_list = name.starts_with("_list_") || name.starts_with("_tuple_");
        let storage = if a.shape.is_empty() || (is_list && !filtered) {
            // h5py's plain `create_dataset` of a list without filters is contiguous (Q15).
            Storage {
                chunks: None,
                gzip: None,
                shuffle: false,
                lzf: false,
            }
        } else {
            let c = match chunks {
                Some(c) => c.to_vec(),
                None => h5py_guess_chunk(&a.shape, itemsize),
            };
            // Shuffle does nothing on variable-length data but h5py keeps it in the pipeline.
            Storage {
                chunks: Some(c),
                gzip: self.filters.gzip,
                shuffle: self.filters.shuffle,
                lzf: self.filters.lzf,
            }
        };
        let id = self.raw();
        h5(|| {
            if ffi::link_exists(id, name)? {
                ffi::delete_link(id, name)?;
            }
            let (t, buf) = ffi::prepare_write(a)?;
            let ds = ffi::create_dataset(id, name, t.id(), &a.shape, &storage)?;
            if !a.is_empty() {
                ffi::write_dataset_all(ds.id(), t.id(), &buf)?;
            }
            Ok(())
        })
        .map_err(|e: String| SignalError::write(&loc, e))
    }

    fn contains(&self, name: &str) -> Result<bool> {
        let id = self.raw();
        h5(|| ffi::link_exists(id, name)).map_err(|e| self.err(name, e))
    }
}
