//! The `.hspy` format (HyperSpy's HDF5 files, spec §4): every format version 1.0–3.3,
//! `.hspy` and `.hdf5`.
//!
//! * Reading: [`read_hspy_file`] gives everything but the chunk data, through the shared
//!   hierarchical mapping ([`read_hierarchical`]) over [`HspyGroup`]. [`open_hspy`] pairs
//!   every signal with its data: numeric data as a lazy array over an
//!   [`HspyArraySource`] (direct chunk reads, decoded in parallel in Rust), ragged,
//!   string and structured (RGB) data read whole.
//! * Writing: [`write_hspy`] streams a [`Signal`]'s lazy data into a new file, compressing
//!   chunks in parallel and handing them to one writer thread that stores them with
//!   `H5Dwrite_chunk`; the file is written under a temporary name and renamed over the
//!   destination only when complete (see [`write`]).
//!
//! HDF5 calls go through hdf5-metno's process-wide lock; the C library is Debian's
//! `libhdf5` (1.10.x or later).

mod ffi;
pub mod group;
pub mod source;
pub mod write;

use std::path::Path;

pub use group::{DatasetFilters, DatasetLayout, FilterInfo, HspyGroup, h5py_guess_chunk};
pub use source::HspyArraySource;
pub use write::{HspyCompression, HspyWriteOptions, HspyWriteReport, write_hspy};

use hdf5_sys::h5f::{H5F_ACC_RDONLY, H5Fis_hdf5, H5Fopen};

use crate::graph::DynLazyArray;
use crate::signal::hierarchy::{
    DatasetValue, GroupRead, HierarchicalFile, read_array, read_hierarchical,
};
use crate::signal::model::{Signal, SignalData};
use crate::signal::{Location, Result, SignalError};
use ffi::h5;

/// Opens the root group of the HDF5 file `path` read-only.
pub(crate) fn open_root(path: &Path) -> Result<HspyGroup> {
    let file = path.display().to_string();
    let loc = Location::new(file.clone(), "/");
    let md = std::fs::metadata(path).map_err(|e| SignalError::io(&loc, e))?;
    if md.is_dir() {
        return Err(SignalError::invalid(
            &loc,
            "a directory, not an HDF5 file (a .zspy store?)",
        ));
    }
    let c = ffi::cstr(&path.to_string_lossy()).map_err(|e| SignalError::invalid(&loc, e))?;
    let root = h5(|| -> std::result::Result<ffi::Hid, String> {
        // SAFETY: `c` is a valid path; identifiers are owned.
        let is = unsafe { H5Fis_hdf5(c.as_ptr()) };
        if is <= 0 {
            return Err("not an HDF5 file (no HDF5 signature found)".into());
        }
        let fapl = ffi::file_access_plist()?;
        let f = ffi::check_id(
            unsafe { H5Fopen(c.as_ptr(), H5F_ACC_RDONLY, fapl.id()) },
            "H5Fopen",
        )
        .map_err(|e| format!("cannot open the HDF5 file (truncated or corrupt?): {e}"))?;
        ffi::open_group(f.id(), "/")
    })
    .map_err(|e| SignalError::invalid(&loc, e))?;
    Ok(HspyGroup::new(
        root,
        file,
        "/".into(),
        DatasetFilters::default(),
    ))
}

/// Reads everything but the chunk data of an `.hspy`/`.hdf5` file: root attributes,
/// version, signals (metadata, axes, attributes, models, data description) and standalone
/// models. Not an HDF5 file, not a HyperSpy file, a truncated file, missing members or an
/// unknown version give an error naming the file and the object.
pub fn read_hspy_file(path: impl AsRef<Path>) -> Result<HierarchicalFile> {
    let root = open_root(path.as_ref())?;
    read_hierarchical(&root)
}

/// Every signal of an `.hspy`/`.hdf5` file with its data, in the reader's order (the order
/// of [`read_hspy_file`]). Numeric data is lazy ([`HspyArraySource`]: nothing but metadata
/// is read here); ragged, string and structured data (RGB) is read whole, as RosettaSciIO
/// does for it.
pub fn open_hspy(path: impl AsRef<Path>) -> Result<Vec<Signal>> {
    let path = path.as_ref();
    let root = open_root(path)?;
    let file = read_hierarchical(&root)?;
    let mut out = Vec::with_capacity(file.signals.len());
    for tree in file.signals {
        let name = tree.experiment_name().to_string();
        let loc = Location::new(file.file.clone(), format!("{}/data", tree.group_path));
        let exps = root
            .group("Experiments")?
            .ok_or_else(|| SignalError::missing(&loc, "group /Experiments"))?;
        let g = exps
            .group(&name)?
            .ok_or_else(|| SignalError::missing(&loc, "experiment group"))?;
        let lazy = !tree.data.ragged_shapes && source::engine_dtype(&tree.data.dtype).is_some();
        let data = if lazy {
            let ds = h5(|| ffi::open_dataset(g.raw(), "data"))
                .map_err(|e| SignalError::invalid(&loc, e))?;
            let src = HspyArraySource::from_dataset(ds, loc.file.clone(), loc.path.clone())?;
            SignalData::Lazy(DynLazyArray::from_source(std::sync::Arc::new(src)))
        } else {
            match read_array(&g, "data", &g.children()?)? {
                DatasetValue::Loaded(a) => SignalData::InMemory(a),
                DatasetValue::Deferred(r) => {
                    return Err(SignalError::unsupported(&loc, r.reason));
                }
            }
        };
        out.push(Signal { tree, data });
    }
    Ok(out)
}
