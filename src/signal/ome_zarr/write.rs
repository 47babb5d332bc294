//! Writing OME-Zarr multiscale images: [`write_ome_zarr`] streams a [`Signal`] into a
//! pyramid (OME-NGFF 0.4 on Zarr v2, or 0.5 on Zarr v3) in one pass over the data.
//!
//! # What a write does, in order
//!
//! 1. Plans the levels ([`PyramidGeometry`]) and the OME-NGFF axes, and checks the
//!    destination (see [`crate::signal::destination`]). Nothing is written before every
//!    check passed.
//! 2. Writes the incomplete marker with a manifest of the job, then the metadata of every
//!    level's array (`.zarray`, or the array `zarr.json` with `dimension_names`).
//! 3. Streams level 0 through the engine in blocks of whole level-0 chunks. Each chunk is
//!    encoded and committed atomically as soon as it is computed, and folded into the
//!    levels above ([`PyramidFold`]); a level chunk is written as soon as all the chunks
//!    below it have arrived. Memory holds the engine's blocks, the chunks being encoded,
//!    and the accumulators of the level chunks in progress.
//! 4. Writes the root group (`.zattrs` then `.zgroup` for 0.4, `zarr.json` for 0.5) last, then
//!    removes the marker: an unfinished pyramid is no OME-Zarr image for any reader.
//!
//! A killed write run again with `resume` keeps every chunk already stored, recomputes
//! only the level-0 blocks that a missing chunk (of any level) depends on, and ends with
//! the same bytes as an uninterrupted write.
//!
//! ```no_run
//! use lazyspy::signal::Signal;
//! use lazyspy::signal::ome_zarr::{PyramidOptions, write_ome_zarr};
//! use lazyspy::{ExecConfig, LazyArray};
//!
//! let data = LazyArray::from_fn(&[4, 1024, 1024], &[1, 1024, 1024], |r| {
//!     Ok(ndarray::ArrayD::<f32>::from_elem(r.shape(), 1.0))
//! }).unwrap();
//! let signal = Signal::from_lazy(data.into_dyn(), 2, "ones");
//! let report = write_ome_zarr("ones.ome.zarr", &signal, &PyramidOptions::default(), &ExecConfig::default())?;
//! assert_eq!(report.levels.len(), 3); // 1024, 512, 256
//! # Ok::<(), lazyspy::signal::SignalError>(())
//! ```

use std::path::Path;
use std::sync::Arc;

use ndarray::ArrayViewD;
use rayon::prelude::*;
use zarrs::array::{Array as ZarrsArray, ArrayMetadata};
use zarrs::storage::store::MemoryStore;

use super::ngff::{
    LevelTransform, OmeAxis, OmeVersion, multiscale_json, ome_axes, root_attributes,
};
use super::pyramid::{LevelOutput, PyramidFold, PyramidGeometry, PyramidMethod, cartesian};
use crate::dtype::{DType, Element};
use crate::dynarray::DynArray;
use crate::error::BoxError;
use crate::exec::{ExecConfig, ExecStats};
use crate::grid::{ChunkGrid, Region};
use crate::io::ChunkSink;
use crate::io::atomic::{AtomicDirStore, Committer, StoreOptions};
use crate::signal::destination::{Destination, DestinationRules, open_destination};
use crate::signal::json::{self, Json};
use crate::signal::model::{Signal, SignalData};
use crate::signal::zspy_write::{ZspyCompressor, encode_chunk, zarray_doc, zarrs_encoder};
use crate::signal::{Result, SignalError};

/// Options of [`write_ome_zarr`].
#[derive(Clone, Debug)]
pub struct PyramidOptions {
    /// OME-NGFF version (0.4 on Zarr v2, 0.5 on Zarr v3).
    pub version: OmeVersion,
    /// How each level is computed from the one above.
    pub method: PyramidMethod,
    /// Number of levels, level 0 included; `None`: until a chunk holds the downsampled
    /// extent.
    pub levels: Option<usize>,
    /// Chunk length along the downsampled axes (1 along the others).
    pub chunk: usize,
    /// Version 0.5 only: shards of this many chunks per downsampled axis.
    pub shard: Option<usize>,
    /// The downsampled (space) axes, array indices; `None`: the last two.
    pub axes: Option<Vec<usize>>,
    /// The compressor (Blosc, Zstd, Gzip or none; Zlib only for 0.4).
    pub compressor: ZspyCompressor,
    /// Replace an existing destination.
    pub overwrite: bool,
    /// Complete an unfinished pyramid of the same job.
    pub resume: bool,
    /// Retry and sweep settings of the atomic store.
    pub store: StoreOptions,
}

impl Default for PyramidOptions {
    fn default() -> Self {
        PyramidOptions {
            version: OmeVersion::V04,
            method: PyramidMethod::Mean,
            levels: None,
            chunk: 256,
            shard: None,
            axes: None,
            compressor: ZspyCompressor::default(),
            overwrite: false,
            resume: false,
            store: StoreOptions::default(),
        }
    }
}

/// One level as written.
#[derive(Clone, Debug, PartialEq)]
pub struct PyramidLevel {
    /// The dataset path (`"0"`, `"1"`, ...).
    pub path: String,
    /// The level's shape.
    pub shape: Vec<usize>,
    /// The chunk shape readers see.
    pub chunks: Vec<usize>,
    /// The stored chunk shape (the shard when sharded).
    pub stored_chunks: Vec<usize>,
    /// Scale of each axis.
    pub scale: Vec<f64>,
    /// Translation of each axis.
    pub translation: Vec<f64>,
}

/// What [`write_ome_zarr`] did.
#[derive(Clone, Debug, Default)]
pub struct PyramidReport {
    /// The levels, level 0 first.
    pub levels: Vec<PyramidLevel>,
    /// The OME-NGFF axes.
    pub axes: Vec<OmeAxis>,
    /// Chunks (shards) written by this run, all levels.
    pub chunks_written: usize,
    /// Chunks found stored and kept (resume).
    pub chunks_skipped: usize,
    /// Encoded bytes written.
    pub bytes_stored: u64,
    /// The most memory the level accumulators held at once.
    pub fold_peak_bytes: u64,
    /// The engine's statistics (absent when there was nothing to do).
    pub exec: Option<ExecStats>,
}

fn write_err(file: &str, key: &str, msg: impl Into<String>) -> SignalError {
    SignalError::Write {
        file: file.into(),
        key: key.into(),
        msg: msg.into(),
    }
}

fn store_err(file: &str) -> impl Fn(crate::io::atomic::StoreError) -> SignalError + '_ {
    move |source| SignalError::Store {
        file: file.to_string(),
        source,
    }
}

/// The planned job: levels, axes, array documents and chunk keys.
struct Job {
    version: OmeVersion,
    dtype: DType,
    geometry: PyramidGeometry,
    axes: Vec<OmeAxis>,
    transforms: Vec<(Vec<f64>, Vec<f64>)>,
    /// Per level: the array document key and its bytes.
    array_docs: Vec<(String, Vec<u8>)>,
    /// Per level: the root document(s), in write order.
    root_docs: Vec<(String, Vec<u8>)>,
}

impl Job {
    fn plan(signal: &Signal, opts: &PyramidOptions, file: &str) -> Result<Job> {
        let SignalData::Lazy(data) = &signal.data else {
            return Err(write_err(file, "/", "the signal's data is not numeric"));
        };
        let dtype = data.dtype();
        if matches!(dtype, DType::Bool | DType::C64 | DType::C128) {
            return Err(write_err(
                file,
                "/",
                format!("a pyramid of {dtype} data cannot be downsampled (real numbers only)"),
            ));
        }
        let shape = data.shape();
        let ndim = shape.len();
        let downsampled = match &opts.axes {
            Some(a) => a.clone(),
            None if ndim >= 2 => vec![ndim - 2, ndim - 1],
            None => return Err(write_err(file, "/", "an image needs at least 2 dimensions")),
        };
        if opts.shard.is_some() && opts.version == OmeVersion::V04 {
            return Err(write_err(
                file,
                "/",
                "sharding needs Zarr v3: use version 0.5",
            ));
        }
        let geometry = PyramidGeometry::plan(
            &shape,
            &downsampled,
            opts.chunk,
            opts.shard,
            opts.levels,
            opts.method,
        )
        .map_err(|m| write_err(file, "/", m))?;
        let axes =
            ome_axes(&signal.tree.axes, &downsampled).map_err(|m| write_err(file, "/", m))?;
        let scale: Vec<f64> = signal
            .tree
            .axes
            .iter()
            .map(|a| a.scale().unwrap_or(1.0))
            .collect();
        let offset: Vec<f64> = signal
            .tree
            .axes
            .iter()
            .map(|a| a.offset().unwrap_or(0.0))
            .collect();
        if let Some(i) = scale.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(write_err(
                file,
                &format!("axis {i}"),
                format!("OME-Zarr needs a positive scale; axis {i} has {}", scale[i]),
            ));
        }
        let transforms = geometry.transforms(&scale, &offset);
        let names: Vec<String> = axes.iter().map(|a| a.name.clone()).collect();
        let mut array_docs = Vec::new();
        for (k, level) in geometry.levels.iter().enumerate() {
            let (key, doc) = match opts.version {
                OmeVersion::V04 => (
                    format!("{k}/.zarray"),
                    zarray_doc(dtype, &level.shape, &level.chunks, &opts.compressor),
                ),
                OmeVersion::V05 => (
                    format!("{k}/zarr.json"),
                    v3_array_doc(dtype, level, &opts.compressor, &names, opts.shard.is_some())
                        .map_err(|m| write_err(file, &format!("{k}/zarr.json"), m))?,
                ),
            };
            array_docs.push((key, json::to_zarr_string(&doc).into_bytes()));
        }
        let title = signal
            .tree
            .title()
            .filter(|t| !t.is_empty())
            .unwrap_or("image");
        let levels: Vec<LevelTransform> = transforms
            .iter()
            .enumerate()
            .map(|(k, (s, t))| LevelTransform {
                path: k.to_string(),
                scale: s.clone(),
                translation: t.clone(),
            })
            .collect();
        let attrs = root_attributes(
            opts.version,
            multiscale_json(opts.version, title, &axes, &levels),
        );
        let root_docs = match opts.version {
            OmeVersion::V04 => vec![
                (
                    ".zattrs".to_string(),
                    json::to_zarr_string(&attrs).into_bytes(),
                ),
                (
                    ".zgroup".to_string(),
                    json::to_zarr_string(&crate::signal::zarr_write::zgroup_doc()).into_bytes(),
                ),
            ],
            OmeVersion::V05 => vec![(
                "zarr.json".to_string(),
                json::to_zarr_string(&Json::Object(vec![
                    ("attributes".into(), attrs),
                    ("node_type".into(), Json::Str("group".into())),
                    ("zarr_format".into(), Json::Int(3)),
                ]))
                .into_bytes(),
            )],
        };
        Ok(Job {
            version: opts.version,
            dtype,
            geometry,
            axes,
            transforms,
            array_docs,
            root_docs,
        })
    }

    /// The marker's manifest: everything that decides the bytes written.
    fn manifest(&self, method: PyramidMethod) -> Vec<u8> {
        let mut text = format!(
            "{{\"format\": \"ome-zarr\", \"version\": \"{}\", \"method\": \"{}\", \"dtype\": \"{}\"}}\n",
            self.version.as_str(),
            method.as_str(),
            self.dtype
        );
        for (k, v) in self.array_docs.iter().chain(&self.root_docs) {
            text.push_str(k);
            text.push('\n');
            text.push_str(&String::from_utf8_lossy(v));
            text.push('\n');
        }
        text.into_bytes()
    }

    fn chunk_key(&self, level: usize, index: &[usize]) -> String {
        let mut key = level.to_string();
        if self.version == OmeVersion::V05 {
            key.push_str("/c");
        }
        for i in index {
            key.push('/');
            key.push_str(&i.to_string());
        }
        key
    }

    fn encoders(&self, file: &str) -> Result<Vec<ZarrsArray<MemoryStore>>> {
        self.array_docs
            .iter()
            .map(|(key, bytes)| {
                let text = String::from_utf8_lossy(bytes);
                let made = match self.version {
                    OmeVersion::V04 => {
                        let doc = json::parse(&text).map_err(|e| e.msg);
                        doc.and_then(|d| zarrs_encoder(&d))
                    }
                    OmeVersion::V05 => serde_json::from_str(&text)
                        .map_err(|e| format!("zarrs cannot read the zarr.json: {e}"))
                        .and_then(|meta| {
                            ZarrsArray::new_with_metadata(
                                Arc::new(MemoryStore::new()),
                                "/level",
                                ArrayMetadata::V3(meta),
                            )
                            .map_err(|e| format!("zarrs cannot encode this array: {e}"))
                        }),
                };
                made.map_err(|m| write_err(file, key, m))
            })
            .collect()
    }
}

/// The Zarr v3 `zarr.json` of one level.
fn v3_array_doc(
    dtype: DType,
    level: &super::pyramid::LevelGeometry,
    compressor: &ZspyCompressor,
    names: &[String],
    sharded: bool,
) -> std::result::Result<Json, String> {
    let ints = |v: &[usize]| Json::Array(v.iter().map(|&c| Json::Int(c as i64)).collect());
    let bytes = if dtype.size() == 1 {
        Json::Object(vec![("name".into(), Json::Str("bytes".into()))])
    } else {
        Json::Object(vec![
            ("name".into(), Json::Str("bytes".into())),
            (
                "configuration".into(),
                Json::Object(vec![("endian".into(), Json::Str("little".into()))]),
            ),
        ])
    };
    let named = |name: &str, config: Vec<(&str, Json)>| {
        Json::Object(vec![
            ("name".into(), Json::Str(name.into())),
            (
                "configuration".into(),
                Json::Object(
                    config
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                ),
            ),
        ])
    };
    let mut codecs = vec![bytes];
    match compressor {
        ZspyCompressor::Blosc {
            cname,
            clevel,
            shuffle,
        } => codecs.push(named(
            "blosc",
            vec![
                ("cname", Json::Str(cname.clone())),
                ("clevel", Json::Int(*clevel as i64)),
                (
                    "shuffle",
                    Json::Str(
                        match shuffle {
                            0 => "noshuffle",
                            2 => "bitshuffle",
                            _ => "shuffle",
                        }
                        .into(),
                    ),
                ),
                ("typesize", Json::Int(dtype.size() as i64)),
                ("blocksize", Json::Int(0)),
            ],
        )),
        ZspyCompressor::Zstd(level) => codecs.push(named(
            "zstd",
            vec![
                ("level", Json::Int(*level as i64)),
                ("checksum", Json::Bool(false)),
            ],
        )),
        ZspyCompressor::Gzip(level) => {
            codecs.push(named("gzip", vec![("level", Json::Int(*level as i64))]))
        }
        ZspyCompressor::Zlib(_) => {
            return Err("Zarr v3 has no zlib codec: use gzip, zstd or blosc".into());
        }
        ZspyCompressor::None => {}
    }
    let codecs = if sharded {
        let index_bytes = named("bytes", vec![("endian", Json::Str("little".into()))]);
        let crc = Json::Object(vec![("name".into(), Json::Str("crc32c".into()))]);
        vec![named(
            "sharding_indexed",
            vec![
                ("chunk_shape", ints(&level.chunks)),
                ("codecs", Json::Array(codecs)),
                ("index_codecs", Json::Array(vec![index_bytes, crc])),
                ("index_location", Json::Str("end".into())),
            ],
        )]
    } else {
        codecs
    };
    let fill = match dtype {
        DType::F32 | DType::F64 => Json::Float(0.0),
        _ => Json::Int(0),
    };
    Ok(Json::Object(vec![
        ("attributes".into(), Json::Object(vec![])),
        (
            "chunk_grid".into(),
            named("regular", vec![("chunk_shape", ints(&level.write_chunks))]),
        ),
        (
            "chunk_key_encoding".into(),
            named("default", vec![("separator", Json::Str("/".into()))]),
        ),
        ("codecs".into(), Json::Array(codecs)),
        ("data_type".into(), Json::Str(dtype.name().into())),
        (
            "dimension_names".into(),
            Json::Array(names.iter().map(|n| Json::Str(n.clone())).collect()),
        ),
        ("fill_value".into(), fill),
        ("node_type".into(), Json::Str("array".into())),
        ("shape".into(), ints(&level.shape)),
        ("zarr_format".into(), Json::Int(3)),
    ]))
}

/// Background I/O threads committing chunks, so the engine's workers never wait on `fsync`.
const COMMIT_THREADS: usize = 8;

/// The engine's sink: splits blocks into level-0 chunks, writes them, and drives the fold.
struct PyramidSink<'a> {
    job: &'a Job,
    file: String,
    fold: PyramidFold,
    encoders: Vec<ZarrsArray<MemoryStore>>,
    committer: Committer,
    /// Per level, the chunks stored before this run (resume).
    stored: Option<Vec<Vec<bool>>>,
    /// Per level, the chunks this run must produce (resume).
    needed: Option<Vec<Vec<bool>>>,
    /// The engine's block grid over level 0.
    blocks: ChunkGrid,
}

impl PyramidSink<'_> {
    fn is_stored(&self, level: usize, index: &[usize]) -> bool {
        self.stored
            .as_ref()
            .is_some_and(|s| s[level][self.job.geometry.levels[level].grid.ravel(index)])
    }

    fn commit(
        &self,
        level: usize,
        index: &[usize],
        shape: &[usize],
        raw: Vec<u8>,
    ) -> std::result::Result<(), BoxError> {
        if self.is_stored(level, index) {
            return Ok(());
        }
        let key = self.job.chunk_key(level, index);
        let chunks = &self.job.geometry.levels[level].write_chunks;
        let encoded = encode_chunk(&self.encoders[level], chunks, shape, raw)
            .map_err(|m| format!("{}: cannot encode chunk '{key}': {m}", self.file))?;
        self.committer
            .submit(key, encoded)
            .map_err(|e| format!("{}: {e}", self.file))?;
        Ok(())
    }
}

impl LevelOutput for PyramidSink<'_> {
    fn emit(
        &self,
        level: usize,
        index: &[usize],
        region: &Region,
        values: ArrayViewD<'_, f64>,
    ) -> std::result::Result<(), BoxError> {
        if self.is_stored(level, index) {
            return Ok(());
        }
        // The values are already rounded to the dtype: the cast is exact.
        let raw = crate::with_dtype!(self.job.dtype, T => {
            DynArray::from_array(values.mapv(|x| x.cast::<T>())).to_bytes()
        });
        self.commit(level, index, &region.shape(), raw)
    }
}

impl ChunkSink for PyramidSink<'_> {
    fn prepare(&self, dtype: DType, grid: &ChunkGrid) -> std::result::Result<(), BoxError> {
        let level0 = &self.job.geometry.levels[0];
        if dtype != self.job.dtype || grid.shape() != level0.shape {
            return Err(format!(
                "{}: the data ({dtype}, {:?}) does not match the planned level 0 ({}, {:?})",
                self.file,
                grid.shape(),
                self.job.dtype,
                level0.shape
            )
            .into());
        }
        Ok(())
    }

    fn is_done(&self, index: &[usize]) -> bool {
        // A block is done when none of its level-0 chunks is needed (resume only).
        let Some(needed) = &self.needed else {
            return false;
        };
        let level0 = &self.job.geometry.levels[0];
        let region = self.blocks.chunk_region(index);
        cartesian(&level0.grid.chunks_touching(&region))
            .iter()
            .all(|ix| !needed[0][level0.grid.ravel(ix)])
    }

    fn write_chunk(
        &self,
        _index: &[usize],
        region: &Region,
        data: DynArray,
    ) -> std::result::Result<(), BoxError> {
        let level0 = &self.job.geometry.levels[0];
        let ranges = level0.grid.chunks_touching(region);
        for index in cartesian(&ranges) {
            if let Some(needed) = &self.needed
                && !needed[0][level0.grid.ravel(&index)]
            {
                continue;
            }
            let chunk = level0.grid.chunk_region(&index);
            let within = chunk.relative_to(&region.start);
            let part = data.slice_region(&within, None);
            self.commit(0, &index, &chunk.shape(), part.to_bytes())?;
            if self.job.geometry.levels.len() > 1 {
                self.fold.push(0, &chunk, &part, self)?;
            }
        }
        Ok(())
    }

    fn finish(&self) -> std::result::Result<(), BoxError> {
        self.committer
            .finish()
            .map_err(|e| format!("{}: {e}", self.file))?;
        Ok(())
    }
}

/// One flag per write chunk (linear index) of every level.
type ChunkFlags = Vec<Vec<bool>>;

/// Which chunks are stored (`stored`) and which this run must produce (`needed`: missing,
/// or folded into a needed chunk of the level above).
fn resume_sets(job: &Job, store: &AtomicDirStore, file: &str) -> Result<(ChunkFlags, ChunkFlags)> {
    let g = &job.geometry;
    let mut stored = Vec::with_capacity(g.levels.len());
    for (k, level) in g.levels.iter().enumerate() {
        let keys: Vec<String> = level
            .grid
            .indices()
            .map(|ix| job.chunk_key(k, &ix))
            .collect();
        let present: Vec<bool> = keys
            .par_iter()
            .map(|key| store.exists(key))
            .collect::<std::result::Result<_, _>>()
            .map_err(store_err(file))?;
        stored.push(present);
    }
    let top = g.levels.len() - 1;
    let mut needed: Vec<Vec<bool>> = vec![Vec::new(); g.levels.len()];
    needed[top] = stored[top].iter().map(|s| !s).collect();
    for k in (0..top).rev() {
        let level = &g.levels[k];
        needed[k] = level
            .grid
            .indices()
            .enumerate()
            .map(|(lin, ix)| {
                !stored[k][lin]
                    || g.targets(k, &level.grid.chunk_region(&ix))
                        .iter()
                        .any(|t| needed[k + 1][g.levels[k + 1].grid.ravel(t)])
            })
            .collect();
    }
    Ok((stored, needed))
}

/// The engine's blocks: whole level-0 chunks, as many per axis as the data's own chunks
/// hold (so each source chunk is read once), and along the downsampled axes up to the
/// footprint of one top-level chunk (square tiles, so that a block completes whole chunks
/// of every level up to the top instead of leaving a row of accumulators open across the
/// image); at most an eighth of the memory budget, shrinking the other axes first.
fn block_shape(job: &Job, data_grid: &ChunkGrid, budget: u64) -> Vec<usize> {
    let g = &job.geometry;
    let level0 = &g.levels[0];
    let ndim = level0.shape.len();
    let top = 1usize
        .checked_shl((g.levels.len() - 1) as u32)
        .unwrap_or(usize::MAX);
    let mut mult: Vec<usize> = (0..ndim)
        .map(|a| {
            let w = level0.write_chunks[a];
            let own = data_grid.axis_chunks(a).first().copied().unwrap_or(1);
            let wanted = if g.downsampled.contains(&a) {
                (own / w).max(top)
            } else {
                own / w
            };
            wanted.clamp(1, level0.shape[a].div_ceil(w))
        })
        .collect();
    let bytes = |m: &[usize]| -> u64 {
        (0..m.len())
            .map(|a| (m[a] * level0.write_chunks[a]).min(level0.shape[a]) as u64)
            .product::<u64>()
            * job.dtype.size() as u64
    };
    while bytes(&mult) > (budget / 8).max(1) {
        let shrink = (0..ndim)
            .filter(|&a| mult[a] > 1 && !g.downsampled.contains(&a))
            .max_by_key(|&a| mult[a])
            .or_else(|| (0..ndim).filter(|&a| mult[a] > 1).max_by_key(|&a| mult[a]));
        let Some(a) = shrink else {
            break;
        };
        mult[a] /= 2;
    }
    (0..ndim)
        .map(|a| (mult[a] * level0.write_chunks[a]).min(level0.shape[a]))
        .collect()
}

/// Writes `signal` as an OME-Zarr multiscale image at `path` (see the module
/// documentation for the protocol). Errors name the file and the key; on error nothing is
/// left that a reader could take for a complete image.
pub fn write_ome_zarr(
    path: impl AsRef<Path>,
    signal: &Signal,
    opts: &PyramidOptions,
    exec: &ExecConfig,
) -> Result<PyramidReport> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let job = Job::plan(signal, opts, &file)?;
    let encoders = job.encoders(&file)?;
    let manifest = job.manifest(opts.method);
    let root_name = job
        .root_docs
        .last()
        .map(|(k, _)| k.clone())
        .unwrap_or_default();
    let rules = DestinationRules {
        overwrite: opts.overwrite,
        resume: opts.resume,
        store: &opts.store,
        root_document: &root_name,
    };
    let mut report = PyramidReport {
        levels: job
            .geometry
            .levels
            .iter()
            .zip(&job.transforms)
            .enumerate()
            .map(|(k, (l, (s, t)))| PyramidLevel {
                path: k.to_string(),
                shape: l.shape.clone(),
                chunks: l.chunks.clone(),
                stored_chunks: l.write_chunks.clone(),
                scale: s.clone(),
                translation: t.clone(),
            })
            .collect(),
        axes: job.axes.clone(),
        ..PyramidReport::default()
    };
    let same_job = |p: &Path| {
        job.array_docs
            .iter()
            .chain(&job.root_docs)
            .all(|(k, v)| std::fs::read(p.join(k)).is_ok_and(|found| &found == v))
    };
    let (store, resuming) = match open_destination(path, &manifest, &rules, same_job)? {
        Destination::Fresh(store) => (store, false),
        Destination::Resume(store) => (store, true),
        Destination::Complete => {
            report.chunks_skipped = job
                .geometry
                .levels
                .iter()
                .map(|l| l.grid.num_chunks())
                .sum();
            return Ok(report);
        }
    };
    job.array_docs
        .par_iter()
        .try_for_each(|(k, v)| store.set(k, v))
        .map_err(store_err(&file))?;

    let (stored, needed) = if resuming {
        let (s, n) = resume_sets(&job, &store, &file)?;
        (Some(s), Some(n))
    } else {
        (None, None)
    };
    report.chunks_skipped = stored
        .iter()
        .flatten()
        .map(|l| l.iter().filter(|&&s| s).count())
        .sum();
    let mut keys = Vec::new();
    for (k, level) in job.geometry.levels.iter().enumerate() {
        keys.extend(level.grid.indices().map(|ix| job.chunk_key(k, &ix)));
    }
    let plan = store.begin_writes(&keys).map_err(store_err(&file))?;
    let fold = PyramidFold::new(job.geometry.clone(), job.dtype, needed.clone());
    let reserve = fold.reserve_bytes(exec.threads);
    let queue_bytes = (exec.memory_budget / 8).max(1);
    let mut engine = exec.clone();
    engine.memory_budget = exec
        .memory_budget
        .saturating_sub(reserve + queue_bytes)
        .max(exec.memory_budget / 4);
    let SignalData::Lazy(data) = &signal.data else {
        return Err(write_err(&file, "/", "the signal's data is not numeric"));
    };
    let block = block_shape(&job, data.grid(), engine.memory_budget);
    let compute = |source| SignalError::Compute {
        file: file.clone(),
        source,
    };
    let blocks = data.rechunk(&block).map_err(compute)?;
    let sink = PyramidSink {
        job: &job,
        file: file.clone(),
        fold,
        encoders,
        committer: Committer::new(plan, COMMIT_THREADS, queue_bytes),
        stored,
        needed,
        blocks: blocks.grid().clone(),
    };
    let stats = blocks.store(&sink, &engine).map_err(compute)?;
    if sink.fold.open_count() != 0 {
        return Err(write_err(
            &file,
            "/",
            format!(
                "{} level chunks never received all their data (an internal error); the \
                 pyramid is left unfinished",
                sink.fold.open_count()
            ),
        ));
    }
    (report.chunks_written, report.bytes_stored) = sink.committer.totals();
    report.fold_peak_bytes = sink.fold.peak_bytes();
    report.exec = Some(stats);
    for (k, v) in &job.root_docs {
        store.set(k, v).map_err(store_err(&file))?;
    }
    store.mark_complete().map_err(store_err(&file))?;
    Ok(report)
}
