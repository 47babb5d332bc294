//! The data of `.zspy` signals: a [`ChunkSource`] over one Zarr v2 array of a store (a
//! directory or a zip file, [`ZarrStore`]), decoded with the `zarrs` crate, and
//! [`open_zspy`], every signal of a file with its data. The same source opens Zarr v3
//! arrays (`zarr.json`, sharding included), as OME-Zarr 0.5 stores them.
//!
//! * [`ZspyArraySource`]: one numeric array (`<store>` + `/Experiments/<name>/data`).
//!   Opening reads only the `.zarray` metadata, never a chunk; chunks are decoded when the
//!   engine asks for them, from any number of threads. Every compressor HyperSpy writes
//!   (Blosc with zstd/lz4/blosclz/zlib and any shuffle, zlib, gzip, zstd, none), `.` and
//!   `/` chunk keys (the separator actually used is probed, spec §5.2), fill values for
//!   missing chunks and either byte order.
//! * [`open_zspy`]: every signal of a file: numeric data lazy ([`SignalData::Lazy`]),
//!   everything else (ragged/object cells, structured records such as RGB, strings,
//!   half-precision floats) read whole ([`SignalData::InMemory`]), as RosettaSciIO does.
//! * [`open_zspy_data`]: the numeric signals only, lazily (nothing but metadata read).
//!
//! Supported lazy element types: `bool`, `u8`..`u64`, `i8`..`i64`, `f32`, `f64`,
//! `complex64`, `complex128`, in either byte order (values are returned in native order).
//! [`ZspyArraySource::open`] rejects other types with [`SignalError::Unsupported`].
//! A store carrying lazyspy's incomplete marker gives [`SignalError::Incomplete`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::ArrayD;
use zarrs::array::data_type::{
    BoolDataType, Complex64DataType, Complex128DataType, ComplexFloat32DataType,
    ComplexFloat64DataType, Float32DataType, Float64DataType, Int8DataType, Int16DataType,
    Int32DataType, Int64DataType, UInt8DataType, UInt16DataType, UInt32DataType, UInt64DataType,
};
use zarrs::array::{Array, ArrayCreateError, ArrayMetadata, ArraySubset, DataType, ElementOwned};
use zarrs::metadata::v2::ArrayMetadataV2;
use zarrs::metadata::v3::ArrayMetadataV3;
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{MaybeBytesIterator, ReadableStorageTraits, StorageError, StoreKey};

use super::hierarchy::{DatasetValue, GroupRead, read_array};
use super::model::{Signal, SignalData};
use super::signal::{SignalTree, read_zspy_store};
use super::zarr::{ZarrArrayMeta, ZarrDirGroup};
use super::zarr_store::ZarrStore;
use super::{ArrayDType, Result, SignalError};
use crate::dtype::{DType, Element};
use crate::dynarray::DynArray;
use crate::error::BoxError;
use crate::graph::DynLazyArray;
use crate::grid::{ChunkGrid, Region};
use crate::io::ChunkSource;

/// The keys of one array of a store, seen by `zarrs` as a store whose root is the array
/// (zarrs rejects node paths with a `__` segment, e.g. `/Experiments/__unnamed__/data`,
/// which are reserved in Zarr v3 but common in HyperSpy files).
#[derive(Debug)]
struct ArrayStore {
    store: ZarrStore,
    /// The array's key prefix, with a trailing `/`.
    prefix: String,
}

impl ArrayStore {
    fn key(&self, key: &StoreKey) -> std::result::Result<StoreKey, StorageError> {
        StoreKey::new(format!("{}{}", self.prefix, key.as_str()))
            .map_err(|e| StorageError::Other(e.to_string()))
    }
}

impl ReadableStorageTraits for ArrayStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> std::result::Result<MaybeBytesIterator<'a>, StorageError> {
        self.store.get_partial_many(&self.key(key)?, byte_ranges)
    }

    fn size_key(&self, key: &StoreKey) -> std::result::Result<Option<u64>, StorageError> {
        self.store.size_key(&self.key(key)?)
    }

    fn supports_get_partial(&self) -> bool {
        self.store.supports_get_partial()
    }
}

/// One Zarr array of a store (directory or zip; v2 `.zarray`, or v3 `zarr.json`), read
/// chunk by chunk with `zarrs`.
///
/// Thread-safe: the executor may read different chunks from several threads at once.
pub struct ZspyArraySource {
    array: Array<ArrayStore>,
    file: String,
    array_path: String,
    dtype: DType,
    grid: ChunkGrid,
}

impl std::fmt::Debug for ZspyArraySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ZspyArraySource({}:{}, {}, {:?})",
            self.file,
            self.array_path,
            self.dtype,
            self.grid.shape()
        )
    }
}

/// Maps a zarrs data type to the engine's dtype (`None` when the engine has no such type).
fn map_dtype(dt: &DataType) -> Option<DType> {
    Some(if dt.is::<BoolDataType>() {
        DType::Bool
    } else if dt.is::<UInt8DataType>() {
        DType::U8
    } else if dt.is::<UInt16DataType>() {
        DType::U16
    } else if dt.is::<UInt32DataType>() {
        DType::U32
    } else if dt.is::<UInt64DataType>() {
        DType::U64
    } else if dt.is::<Int8DataType>() {
        DType::I8
    } else if dt.is::<Int16DataType>() {
        DType::I16
    } else if dt.is::<Int32DataType>() {
        DType::I32
    } else if dt.is::<Int64DataType>() {
        DType::I64
    } else if dt.is::<Float32DataType>() {
        DType::F32
    } else if dt.is::<Float64DataType>() {
        DType::F64
    } else if dt.is::<Complex64DataType>() || dt.is::<ComplexFloat32DataType>() {
        DType::C64
    } else if dt.is::<Complex128DataType>() || dt.is::<ComplexFloat64DataType>() {
        DType::C128
    } else {
        return None;
    })
}

const UNSUPPORTED_DTYPES: &str = "cannot be read lazily (object/ragged, structured, string, \
     datetime and half-precision arrays are not supported)";

fn to_usize(v: u64, file: &str, key: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| SignalError::Unsupported {
        file: file.to_string(),
        key: key.to_string(),
        msg: format!("dimension {v} does not fit in usize"),
    })
}

impl ZspyArraySource {
    /// Opens the array at `array_path` (e.g. `/Experiments/name/data`) of the store at
    /// `store` (a directory or a zip file). Reads the array metadata only.
    ///
    /// Errors name the store and the key: a missing store ([`SignalError::Io`]), an
    /// incomplete store ([`SignalError::Incomplete`]), a missing array
    /// ([`SignalError::Missing`]), an element type or codec this reader does not handle
    /// ([`SignalError::Unsupported`]), invalid metadata ([`SignalError::Invalid`],
    /// [`SignalError::Json`]).
    pub fn open(store: impl AsRef<Path>, array_path: &str) -> Result<Self> {
        let store = ZarrStore::open(store)?;
        store.check_complete()?;
        Self::open_in(&store, array_path)
    }

    /// [`open`](Self::open) on an opened store. Does not check the incomplete marker (a
    /// writer resuming its own output may read it).
    pub fn open_in(store: &ZarrStore, array_path: &str) -> Result<Self> {
        let file = store.file().to_string();
        let array_path = if array_path.starts_with('/') {
            array_path.to_string()
        } else {
            format!("/{array_path}")
        };
        let rel = array_path.trim_matches('/').to_string();
        // A Zarr v3 array (OME-Zarr 0.5 levels) has `zarr.json` in place of `.zarray`.
        let metadata = if !store.contains(&format!("{rel}/.zarray"))
            && store.contains(&format!("{rel}/zarr.json"))
        {
            ArrayMetadata::V3(v3_metadata(store, &rel)?)
        } else {
            ArrayMetadata::V2(Self::v2_metadata(store, &rel, &array_path)?)
        };
        let array = Array::new_with_metadata(
            Arc::new(ArrayStore {
                store: store.clone(),
                prefix: format!("{rel}/"),
            }),
            "/",
            metadata,
        )
        .map_err(|e| match e {
            ArrayCreateError::DataTypeCreateError(_)
            | ArrayCreateError::CodecsCreateError(_)
            | ArrayCreateError::UnsupportedZarrV2Array(_)
            | ArrayCreateError::StorageTransformersCreateError(_)
            | ArrayCreateError::ChunkKeyEncodingCreateError(_)
            | ArrayCreateError::ChunkGridCreateError(_) => SignalError::Unsupported {
                file: file.clone(),
                key: array_path.clone(),
                msg: e.to_string(),
            },
            e => SignalError::Invalid {
                file: file.clone(),
                key: array_path.clone(),
                msg: e.to_string(),
            },
        })?;
        Self::from_array(array, file, array_path)
    }

    /// The `.zarray` of the v2 array at `rel`, with the chunk key separator actually used.
    fn v2_metadata(store: &ZarrStore, rel: &str, array_path: &str) -> Result<ArrayMetadataV2> {
        let file = store.file().to_string();
        let array_path = array_path.to_string();
        let zarray_key = format!("/{rel}/.zarray");
        let invalid = |key: &str, msg: String| SignalError::Invalid {
            file: file.clone(),
            key: key.to_string(),
            msg,
        };
        let text = store
            .get(&zarray_key)?
            .ok_or_else(|| SignalError::Missing {
                file: file.clone(),
                key: zarray_key.clone(),
                what: "array metadata".into(),
            })?;
        let text = String::from_utf8(text)
            .map_err(|_| invalid(&zarray_key, ".zarray is not UTF-8".into()))?;
        let doc = super::json::parse(&text).map_err(|e| SignalError::Json {
            file: file.clone(),
            key: zarray_key.clone(),
            line: e.line,
            column: e.column,
            msg: e.msg,
        })?;
        let meta = ZarrArrayMeta::from_json(&doc).map_err(|e| invalid(&zarray_key, e))?;
        if meta.dtype.to_engine_dtype().is_none() || !meta.filters.is_empty() {
            return Err(SignalError::Unsupported {
                file: file.clone(),
                key: array_path.clone(),
                msg: format!(
                    "element type {} {UNSUPPORTED_DTYPES}",
                    match doc.get("dtype") {
                        Some(super::json::Json::Str(s)) => format!("'{s}'"),
                        Some(d) => format!("structured {}", super::json::to_zarr_string(d)),
                        None => "?".into(),
                    }
                ),
            });
        }
        // The separator actually used (spec §5.2: zarr < 2.8 did not record it).
        let mut separator = meta.dimension_separator.clone();
        if meta.shape.len() > 1 {
            let other = if separator == "/" { "." } else { "/" };
            let zeros = |sep: &str| vec!["0"; meta.shape.len()].join(sep);
            if !store.contains(&format!("{rel}/{}", zeros(&separator)))
                && store.contains(&format!("{rel}/{}", zeros(other)))
            {
                separator = other.to_string();
            }
        }
        let mut value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| invalid(&zarray_key, format!("not strict JSON: {e}")))?;
        if let Some(m) = value.as_object_mut() {
            m.insert("dimension_separator".into(), separator.into());
        }
        serde_json::from_value(value)
            .map_err(|e| invalid(&zarray_key, format!("invalid array metadata: {e}")))
    }

    /// The source over an opened array: its engine dtype and chunk grid.
    fn from_array(array: Array<ArrayStore>, file: String, array_path: String) -> Result<Self> {
        let dtype = map_dtype(array.data_type()).ok_or_else(|| SignalError::Unsupported {
            file: file.clone(),
            key: array_path.clone(),
            msg: format!("element type '{}' {UNSUPPORTED_DTYPES}", array.data_type()),
        })?;
        let shape = array
            .shape()
            .iter()
            .map(|&v| to_usize(v, &file, &array_path))
            .collect::<Result<Vec<_>>>()?;
        let origin = vec![0u64; shape.len()];
        let chunk = array
            .chunk_shape(&origin)
            .map_err(|e| SignalError::Invalid {
                file: file.clone(),
                key: array_path.clone(),
                msg: format!("chunk shape: {e}"),
            })?
            .iter()
            .map(|c| to_usize(c.get(), &file, &array_path))
            .collect::<Result<Vec<_>>>()?;
        let grid = ChunkGrid::regular(&shape, &chunk).map_err(|e| SignalError::Invalid {
            file: file.clone(),
            key: array_path.clone(),
            msg: e.to_string(),
        })?;
        Ok(ZspyArraySource {
            array,
            file,
            array_path,
            dtype,
            grid,
        })
    }

    /// The store, as given to [`open`](Self::open).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The array's path inside the store.
    pub fn array_path(&self) -> &str {
        &self.array_path
    }

    /// The store key of a chunk (e.g. `Experiments/name/data/0/1`).
    pub fn chunk_key(&self, index: &[usize]) -> String {
        let idx: Vec<u64> = index.iter().map(|&i| i as u64).collect();
        format!(
            "{}/{}",
            self.array_path.trim_matches('/'),
            self.array.chunk_key(&idx)
        )
    }

    fn retrieve(&self, subset: &ArraySubset) -> std::result::Result<DynArray, String> {
        fn typed<T: Element + ElementOwned>(
            a: &Array<ArrayStore>,
            s: &ArraySubset,
        ) -> std::result::Result<DynArray, String> {
            a.retrieve_array_subset::<ArrayD<T>>(s)
                .map(DynArray::from_array)
                .map_err(|e| e.to_string())
        }
        let a = &self.array;
        match self.dtype {
            DType::Bool => typed::<bool>(a, subset),
            DType::U8 => typed::<u8>(a, subset),
            DType::U16 => typed::<u16>(a, subset),
            DType::U32 => typed::<u32>(a, subset),
            DType::U64 => typed::<u64>(a, subset),
            DType::I8 => typed::<i8>(a, subset),
            DType::I16 => typed::<i16>(a, subset),
            DType::I32 => typed::<i32>(a, subset),
            DType::I64 => typed::<i64>(a, subset),
            DType::F32 => typed::<f32>(a, subset),
            DType::F64 => typed::<f64>(a, subset),
            DType::C64 => typed::<crate::dtype::C64>(a, subset),
            DType::C128 => typed::<crate::dtype::C128>(a, subset),
        }
    }

    fn check_region(&self, region: &Region) -> std::result::Result<(), SignalError> {
        let shape = self.grid.shape();
        let ok = region.start.len() == shape.len()
            && region.stop.len() == shape.len()
            && region
                .start
                .iter()
                .zip(&region.stop)
                .zip(&shape)
                .all(|((&a, &b), &n)| a <= b && b <= n);
        if ok {
            Ok(())
        } else {
            Err(SignalError::Invalid {
                file: self.file.clone(),
                key: self.array_path.clone(),
                msg: format!("region {region:?} is outside the array shape {shape:?}"),
            })
        }
    }
}

/// The `zarr.json` of the Zarr v3 array at `rel` (errors name the store and the key).
fn v3_metadata(store: &ZarrStore, rel: &str) -> Result<ArrayMetadataV3> {
    let key = format!("/{rel}/zarr.json");
    let text = store.get(&key)?.ok_or_else(|| SignalError::Missing {
        file: store.file().to_string(),
        key: key.clone(),
        what: "array metadata".into(),
    })?;
    serde_json::from_slice(&text).map_err(|e| SignalError::Json {
        file: store.file().to_string(),
        key,
        line: e.line(),
        column: e.column(),
        msg: format!("not Zarr v3 array metadata: {e}"),
    })
}

impl ChunkSource for ZspyArraySource {
    fn dtype(&self) -> DType {
        self.dtype
    }

    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn read_region(&self, region: &Region) -> std::result::Result<DynArray, BoxError> {
        self.check_region(region)?;
        if region.is_empty() {
            return Ok(DynArray::zeros(self.dtype, &region.shape()));
        }
        let ranges: Vec<_> = region
            .start
            .iter()
            .zip(&region.stop)
            .map(|(&a, &b)| a as u64..b as u64)
            .collect();
        let subset = ArraySubset::new_with_ranges(&ranges);
        self.retrieve(&subset).map_err(|msg| {
            Box::new(SignalError::Invalid {
                file: self.file.clone(),
                key: self.array_path.clone(),
                msg: format!(
                    "cannot read region {:?}..{:?}: {msg}",
                    region.start, region.stop
                ),
            }) as BoxError
        })
    }

    fn read_chunk(&self, index: &[usize]) -> std::result::Result<DynArray, BoxError> {
        let region = self.grid.chunk_region(index);
        if region.is_empty() {
            return Ok(DynArray::zeros(self.dtype, &region.shape()));
        }
        let idx: Vec<u64> = index.iter().map(|&i| i as u64).collect();
        let key = || format!("/{}", self.chunk_key(index));
        let subset = self.array.chunk_subset_bounded(&idx).map_err(|e| {
            Box::new(SignalError::Invalid {
                file: self.file.clone(),
                key: key(),
                msg: format!("chunk {index:?}: {e}"),
            }) as BoxError
        })?;
        self.retrieve(&subset).map_err(|msg| {
            Box::new(SignalError::Invalid {
                file: self.file.clone(),
                key: key(),
                msg: format!("cannot decode chunk {index:?}: {msg}"),
            }) as BoxError
        })
    }

    fn cheap_regions(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        format!("{}:{}", self.file, self.array_path)
    }
}

/// Whether the signal layer's dtype of a data set is one [`ZspyArraySource`] can read.
fn lazily_readable(d: &ArrayDType) -> bool {
    matches!(
        d,
        ArrayDType::Bool
            | ArrayDType::Int { .. }
            | ArrayDType::UInt { .. }
            | ArrayDType::Float { bytes: 4 | 8, .. }
            | ArrayDType::Complex { bytes: 8 | 16, .. }
    )
}

/// The lazy data of one signal of the `.zspy` store `path` (its array is
/// `<signal.group_path>/data`). Ragged (object), structured and string data give
/// [`SignalError::Unsupported`] naming the file and the array (use [`open_zspy`] for them).
pub fn open_zspy_signal(path: impl AsRef<Path>, signal: &SignalTree) -> Result<DynLazyArray> {
    let store = ZarrStore::open(path)?;
    store.check_complete()?;
    lazy_signal(&store, signal)
}

fn lazy_signal(store: &ZarrStore, signal: &SignalTree) -> Result<DynLazyArray> {
    let key = format!("{}/data", signal.group_path.trim_end_matches('/'));
    if signal.data.ragged_shapes || !lazily_readable(&signal.data.dtype) {
        return Err(SignalError::Unsupported {
            file: store.file().to_string(),
            key,
            msg: format!(
                "data of type {:?}{} cannot be read lazily",
                signal.data.dtype,
                if signal.data.ragged_shapes {
                    " (ragged)"
                } else {
                    ""
                }
            ),
        });
    }
    let source = ZspyArraySource::open_in(store, &key)?;
    Ok(DynLazyArray::from_source(Arc::new(source)))
}

/// Every numeric signal of the `.zspy` store `path` (as [`read_zspy_file`](super::read_zspy_file)
/// gives them, in the same order) paired with its lazy data. Nothing but metadata is read.
///
/// Signals whose data cannot be read lazily (ragged/object, structured and string dtypes)
/// are **left out**; [`open_zspy`] returns them too. Any other failure (a missing or
/// unreadable array, an unsupported codec) fails the whole call.
pub fn open_zspy_data(path: impl AsRef<Path>) -> Result<Vec<(SignalTree, DynLazyArray)>> {
    let path: PathBuf = path.as_ref().to_path_buf();
    let store = ZarrStore::open(&path)?;
    let file = read_zspy_store(&store)?;
    let mut out = Vec::with_capacity(file.signals.len());
    for signal in file.signals {
        if signal.data.ragged_shapes || !lazily_readable(&signal.data.dtype) {
            continue;
        }
        check_axes(&store, &signal)?;
        let data = lazy_signal(&store, &signal)?;
        out.push((signal, data));
    }
    Ok(out)
}

/// The axes must describe the stored array: one axis per dimension, each of the size of
/// its dimension (else HyperSpy could not build the signal).
fn check_axes(store: &ZarrStore, signal: &SignalTree) -> Result<()> {
    let shape = &signal.data.shape;
    let group = signal.group_path.trim_end_matches('/');
    if signal.axes.len() != shape.len() {
        return Err(SignalError::Invalid {
            file: store.file().to_string(),
            key: format!("{group}/data/.zarray"),
            msg: format!(
                "the data has {} dimensions {shape:?} but the signal has {} axes",
                shape.len(),
                signal.axes.len()
            ),
        });
    }
    for (i, (axis, &n)) in signal.axes.iter().zip(shape).enumerate() {
        if let Some(size) = axis.size()
            && size != n
        {
            return Err(SignalError::Invalid {
                file: store.file().to_string(),
                key: format!("{group}/axis-{i}"),
                msg: format!(
                    "axis size {size} disagrees with the data shape {shape:?} in \
                     '{group}/data/.zarray' (dimension {i} has {n})"
                ),
            });
        }
    }
    Ok(())
}

/// Every signal of the `.zspy` file `path` (a directory or a zip store), in the order
/// RosettaSciIO returns them, with its data: numeric data lazy ([`SignalData::Lazy`]:
/// only metadata is read here), anything else (ragged/object cells reshaped to their
/// stored shapes, structured records such as RGB, strings, half-precision floats) read
/// whole ([`SignalData::InMemory`]), as RosettaSciIO does.
///
/// Errors name the file and the key: a missing path, a store that is not zspy, an
/// incomplete store ([`SignalError::Incomplete`]), inconsistent metadata (axes that
/// disagree with the data shape), a corrupt chunk of in-memory data, an unsupported
/// element type or codec.
pub fn open_zspy(path: impl AsRef<Path>) -> Result<Vec<Signal>> {
    let store = ZarrStore::open(path)?;
    let file = read_zspy_store(&store)?;
    let root = ZarrDirGroup::open_store(store.clone())?;
    let mut out = Vec::with_capacity(file.signals.len());
    for tree in file.signals {
        check_axes(&store, &tree)?;
        let data = if !tree.data.ragged_shapes && lazily_readable(&tree.data.dtype) {
            SignalData::Lazy(lazy_signal(&store, &tree)?)
        } else {
            let key = format!("{}/data", tree.group_path.trim_end_matches('/'));
            let g = root
                .subgroup(&tree.group_path)?
                .ok_or_else(|| SignalError::Missing {
                    file: store.file().to_string(),
                    key: tree.group_path.clone(),
                    what: "experiment group".into(),
                })?;
            let children = g.children()?;
            match read_array(&g, "data", &children)? {
                DatasetValue::Loaded(a) => SignalData::InMemory(a),
                DatasetValue::Deferred(r) => {
                    return Err(SignalError::Unsupported {
                        file: store.file().to_string(),
                        key,
                        msg: format!("the data cannot be read: {}", r.reason),
                    });
                }
            }
        };
        out.push(Signal { tree, data });
    }
    Ok(out)
}
