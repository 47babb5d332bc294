//! Writing `.zspy` stores: [`write_zspy`] streams a [`Signal`]'s data chunk by chunk into a
//! Zarr v2 directory store (or a zip of one) through the atomic store
//! ([`AtomicDirStore`]), with RosettaSciIO 0.15.0's defaults.
//!
//! # What a write does, in order
//!
//! 1. Plans the layout (chunks, compressor, the data `.zarray`) and checks the destination:
//!    an existing path is an error unless `overwrite` (it is removed first) or `resume`
//!    (an unfinished store of the same job is completed). Nothing is written before these
//!    checks pass.
//! 2. Writes the incomplete marker ([`crate::io::atomic::INCOMPLETE_MARKER`]) with a manifest of the job.
//! 3. Writes every metadata document (groups, attributes, axes, metadata arrays, the data
//!    `.zarray`), each atomically, except the root `.zgroup`.
//! 4. Streams the data: each output chunk is encoded (zarrs' codecs, on the engine's worker
//!    threads) and committed atomically (temporary file, fsync, rename, directory fsync) as
//!    soon as it is computed. Memory stays within the engine's budget.
//! 5. Writes the consolidated `.zmetadata` (built from exactly the documents written),
//!    then the root `.zgroup`, then removes the marker.
//!
//! A store whose root `.zgroup` is missing is not a Zarr group, so zarr-python (and
//! HyperSpy) refuse to open an unfinished store instead of reading missing chunks as fill
//! values; lazyspy's reader reports the marker. A killed write run again with `resume`
//! skips the chunks whose files exist (each is complete, being atomic) and produces the
//! same bytes as an uninterrupted run.
//!
//! ```no_run
//! use lazyspy::signal::{Signal, zspy_write::{write_zspy, ZspyWriteOptions}};
//! use lazyspy::{ExecConfig, LazyArray};
//!
//! let data = LazyArray::from_fn(&[8, 64, 64], &[1, 64, 64], |r| {
//!     Ok(ndarray::ArrayD::<f32>::zeros(r.shape()))
//! }).unwrap();
//! let signal = Signal::from_lazy(data.into_dyn(), 2, "zeros");
//! write_zspy("out.zspy", &signal, &ZspyWriteOptions::default(), &ExecConfig::default()).unwrap();
//! ```

use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use zarrs::array::{Array as ZarrsArray, ArrayBytes, ArrayMetadata};
use zarrs::storage::store::MemoryStore;

use crate::dtype::DType;
use crate::dynarray::DynArray;
use crate::error::BoxError;
use crate::exec::{ExecConfig, ExecStats};
use crate::grid::{ChunkGrid, Region};
use crate::io::ChunkSink;
use crate::io::atomic::{AtomicDirStore, Committer, StoreOptions};
use crate::signal::destination::{Destination, DestinationRules, open_destination};
use crate::signal::hierarchy::{DatasetValue, overwrite_dataset, write_signal_metadata};
use crate::signal::json::{self, Json};
use crate::signal::model::{Signal, SignalData};
use crate::signal::tree::ArrayDType;
use crate::signal::zarr::dtype_to_json;
use crate::signal::zarr_write::{DirKeys, MemKeys, ZarrDirWriter, ZarrKeys, zgroup_doc};
use crate::signal::{Result, SignalError};

/// A numcodecs compressor for the chunks of `data` (spec §5.4).
#[derive(Clone, Debug, PartialEq)]
pub enum ZspyCompressor {
    /// `numcodecs.Blosc` with an inner codec (`zstd`, `lz4`, `lz4hc`, `blosclz`, `zlib`),
    /// a level 0–9 and a shuffle (0 none, 1 byte, 2 bit).
    Blosc {
        /// The inner codec name.
        cname: String,
        /// Compression level.
        clevel: u8,
        /// Shuffle mode: 0 none, 1 byte, 2 bit.
        shuffle: u8,
    },
    /// `numcodecs.Zstd` at a level.
    Zstd(i32),
    /// `numcodecs.GZip` at a level.
    Gzip(u32),
    /// `numcodecs.Zlib` at a level.
    Zlib(u32),
    /// No compressor (`"compressor": null`; RosettaSciIO itself cannot write this).
    None,
}

impl Default for ZspyCompressor {
    /// RosettaSciIO's default: Blosc zstd level 1 with byte shuffle.
    fn default() -> Self {
        ZspyCompressor::Blosc {
            cname: "zstd".into(),
            clevel: 1,
            shuffle: 1,
        }
    }
}

impl ZspyCompressor {
    /// Parses `blosc-zstd:1`, `blosc-lz4:5:bitshuffle`, `zstd:3`, `gzip:4`, `zlib:6`,
    /// `none`. The level may be omitted (`blosc-zstd`, `zstd`: the numcodecs default).
    ///
    /// ```
    /// use lazyspy::signal::zspy_write::ZspyCompressor;
    /// assert_eq!(ZspyCompressor::parse("blosc-zstd:1").unwrap(), ZspyCompressor::default());
    /// assert_eq!(ZspyCompressor::parse("gzip:4").unwrap(), ZspyCompressor::Gzip(4));
    /// assert!(ZspyCompressor::parse("brotli:3").is_err());
    /// ```
    pub fn parse(spec: &str) -> std::result::Result<ZspyCompressor, String> {
        let mut parts = spec.split(':');
        let name = parts.next().unwrap_or("").to_ascii_lowercase();
        let level = parts.next();
        let extra = parts.next();
        if parts.next().is_some() {
            return Err(format!("'{spec}': too many ':' parts"));
        }
        let num = |default: i64, lo: i64, hi: i64| -> std::result::Result<i64, String> {
            match level {
                None => Ok(default),
                Some(s) => {
                    let v: i64 = s
                        .parse()
                        .map_err(|_| format!("'{spec}': level '{s}' is not an integer"))?;
                    if v < lo || v > hi {
                        return Err(format!("'{spec}': level {v} is outside {lo}..={hi}"));
                    }
                    Ok(v)
                }
            }
        };
        if let Some(cname) = name.strip_prefix("blosc-") {
            if !["zstd", "lz4", "lz4hc", "blosclz", "zlib"].contains(&cname) {
                return Err(format!(
                    "'{spec}': unknown Blosc codec '{cname}' (zstd, lz4, lz4hc, blosclz, zlib)"
                ));
            }
            let shuffle = match extra {
                None | Some("shuffle") => 1,
                Some("noshuffle") => 0,
                Some("bitshuffle") => 2,
                Some(s) => {
                    return Err(format!(
                        "'{spec}': shuffle '{s}' is not shuffle, bitshuffle or noshuffle"
                    ));
                }
            };
            return Ok(ZspyCompressor::Blosc {
                cname: cname.into(),
                clevel: num(5, 0, 9)? as u8,
                shuffle,
            });
        }
        if extra.is_some() {
            return Err(format!("'{spec}': only Blosc takes a shuffle part"));
        }
        match name.as_str() {
            "zstd" => Ok(ZspyCompressor::Zstd(num(1, -131072, 22)? as i32)),
            "gzip" => Ok(ZspyCompressor::Gzip(num(5, 0, 9)? as u32)),
            "zlib" => Ok(ZspyCompressor::Zlib(num(1, 0, 9)? as u32)),
            "none" if level.is_none() => Ok(ZspyCompressor::None),
            _ => Err(format!(
                "'{spec}': unknown compressor (blosc-zstd:1, blosc-lz4:5, zstd:3, gzip:4, \
                 zlib:6, none)"
            )),
        }
    }

    /// The `.zarray` `compressor` entry, as numcodecs' `get_config()` gives it.
    pub fn to_json(&self) -> Json {
        let obj = |pairs: Vec<(&str, Json)>| {
            Json::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        };
        match self {
            ZspyCompressor::Blosc {
                cname,
                clevel,
                shuffle,
            } => obj(vec![
                ("blocksize", Json::Int(0)),
                ("clevel", Json::Int(*clevel as i64)),
                ("cname", Json::Str(cname.clone())),
                ("id", Json::Str("blosc".into())),
                ("shuffle", Json::Int(*shuffle as i64)),
            ]),
            ZspyCompressor::Zstd(level) => obj(vec![
                ("checksum", Json::Bool(false)),
                ("id", Json::Str("zstd".into())),
                ("level", Json::Int(*level as i64)),
            ]),
            ZspyCompressor::Gzip(level) => obj(vec![
                ("id", Json::Str("gzip".into())),
                ("level", Json::Int(*level as i64)),
            ]),
            ZspyCompressor::Zlib(level) => obj(vec![
                ("id", Json::Str("zlib".into())),
                ("level", Json::Int(*level as i64)),
            ]),
            ZspyCompressor::None => Json::Null,
        }
    }
}

/// Options of [`write_zspy`]. The default is RosettaSciIO's `save` with no arguments.
#[derive(Clone, Debug)]
pub struct ZspyWriteOptions {
    /// Chunk shape of `data`. `None`: the data's own chunking (the first chunk length of
    /// every axis, as RosettaSciIO does for lazy signals, spec §6.2).
    pub chunks: Option<Vec<usize>>,
    /// The compressor of `data`.
    pub compressor: ZspyCompressor,
    /// Write a zip file (`store_type="zip"`) instead of a directory store.
    pub zip: bool,
    /// Replace an existing destination.
    pub overwrite: bool,
    /// Complete an unfinished store of the same job (directory stores only).
    pub resume: bool,
    /// `false`: rewrite the axes and metadata of an existing store and leave `data` alone
    /// (`write_dataset=False`, spec §5.8).
    pub write_dataset: bool,
    /// Retry and sweep settings of the atomic store.
    pub store: StoreOptions,
}

impl Default for ZspyWriteOptions {
    fn default() -> Self {
        ZspyWriteOptions {
            chunks: None,
            compressor: ZspyCompressor::default(),
            zip: false,
            overwrite: false,
            resume: false,
            write_dataset: true,
            store: StoreOptions::default(),
        }
    }
}

/// What [`write_zspy`] did.
#[derive(Clone, Debug, Default)]
pub struct ZspyWriteReport {
    /// The chunk shape of `data`.
    pub chunks: Vec<usize>,
    /// Data chunks written by this run.
    pub chunks_written: usize,
    /// Data chunks found complete and skipped (resume).
    pub chunks_skipped: usize,
    /// Encoded bytes of the data chunks written.
    pub bytes_stored: u64,
    /// Metadata documents written.
    pub documents: usize,
    /// Metadata values the format cannot hold (dropped, as RosettaSciIO drops them).
    pub dropped: Vec<(String, String)>,
    /// The engine's statistics (absent for metadata-only writes).
    pub exec: Option<ExecStats>,
}

fn store_err(file: &str) -> impl Fn(crate::io::atomic::StoreError) -> SignalError + '_ {
    move |source| SignalError::Store {
        file: file.to_string(),
        source,
    }
}

fn io_err(file: &str, key: &str) -> impl Fn(std::io::Error) -> SignalError {
    let (file, key) = (file.to_string(), key.to_string());
    move |source| SignalError::Io {
        file: file.clone(),
        key: key.clone(),
        source,
    }
}

fn write_err(file: &str, key: &str, msg: impl Into<String>) -> SignalError {
    SignalError::Write {
        file: file.into(),
        key: key.into(),
        msg: msg.into(),
    }
}

/// The stored layout of `data`: element type, shape, chunks and `.zarray`.
struct DataLayout {
    dtype: DType,
    shape: Vec<usize>,
    chunks: Vec<usize>,
    zarray: Json,
}

impl DataLayout {
    fn plan(signal: &Signal, opts: &ZspyWriteOptions, file: &str, key: &str) -> Result<Self> {
        let SignalData::Lazy(data) = &signal.data else {
            return Err(write_err(file, key, "not numeric data"));
        };
        let shape = data.shape();
        let chunks: Vec<usize> = match &opts.chunks {
            Some(c) => {
                if c.len() != shape.len() || c.contains(&0) {
                    return Err(write_err(
                        file,
                        key,
                        format!(
                            "chunks {c:?} do not fit data of shape {shape:?} (one positive \
                             length per axis)"
                        ),
                    ));
                }
                c.clone()
            }
            None => (0..shape.len())
                .map(|d| {
                    data.grid()
                        .axis_chunks(d)
                        .first()
                        .copied()
                        .unwrap_or(1)
                        .max(1)
                })
                .collect(),
        };
        let dtype = data.dtype();
        let zarray = zarray_doc(dtype, &shape, &chunks, &opts.compressor);
        Ok(DataLayout {
            dtype,
            shape,
            chunks,
            zarray,
        })
    }
}

/// The `.zarray` document of a Zarr v2 array as zarr-python 2.18 writes it: C order, fill
/// value 0, dimension separator `/`.
pub(crate) fn zarray_doc(
    dtype: DType,
    shape: &[usize],
    chunks: &[usize],
    compressor: &ZspyCompressor,
) -> Json {
    let stored = ArrayDType::from_engine_dtype(dtype);
    let fill = match dtype {
        DType::Bool => Json::Bool(false),
        DType::F32 | DType::F64 => Json::Float(0.0),
        DType::C64 | DType::C128 => Json::Array(vec![Json::Float(0.0), Json::Float(0.0)]),
        _ => Json::Int(0),
    };
    let ints = |v: &[usize]| Json::Array(v.iter().map(|&c| Json::Int(c as i64)).collect());
    Json::Object(vec![
        ("chunks".into(), ints(chunks)),
        ("compressor".into(), compressor.to_json()),
        ("dimension_separator".into(), Json::Str("/".into())),
        ("dtype".into(), dtype_to_json(&stored)),
        ("fill_value".into(), fill),
        ("filters".into(), Json::Null),
        ("order".into(), Json::Str("C".into())),
        ("shape".into(), ints(shape)),
        ("zarr_format".into(), Json::Int(2)),
    ])
}

/// Writes `signal` to the `.zspy` store `path` (see the module documentation for the
/// protocol). Errors name the file and the key; on error nothing is left that a reader
/// could take for a complete store.
pub fn write_zspy(
    path: impl AsRef<Path>,
    signal: &Signal,
    opts: &ZspyWriteOptions,
    exec: &ExecConfig,
) -> Result<ZspyWriteReport> {
    write_zspy_signals(path, std::slice::from_ref(signal), opts, exec)
}

/// Writes several signals (experiments) into one `.zspy` store, as [`write_zspy`] does for
/// one. Their titles must give distinct experiment names. `opts.chunks` applies to the
/// `data` of each.
pub fn write_zspy_signals(
    path: impl AsRef<Path>,
    signals: &[Signal],
    opts: &ZspyWriteOptions,
    exec: &ExecConfig,
) -> Result<ZspyWriteReport> {
    let path = path.as_ref();
    let file = path.display().to_string();
    if signals.is_empty() {
        return Err(write_err(&file, "/", "no signal to write"));
    }
    let mut names: Vec<String> = signals.iter().map(signal_group_key).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(write_err(
            &file,
            &w[0],
            "two signals have the same experiment name (title)",
        ));
    }
    if opts.zip {
        return crate::signal::zspy_zip::write_zspy_zip(path, signals, opts, exec);
    }
    if !opts.write_dataset {
        return write_metadata_only(path, signals, opts);
    }
    let mut layouts = Vec::with_capacity(signals.len());
    for signal in signals {
        let data_key = format!("{}/data", signal_group_key(signal));
        layouts.push(match &signal.data {
            SignalData::Lazy(_) => Some(DataLayout::plan(signal, opts, &file, &data_key)?),
            SignalData::InMemory(_) => None,
        });
    }
    let manifest = manifest(signals, opts, &layouts);

    // 1. The destination.
    let rules = DestinationRules {
        overwrite: opts.overwrite,
        resume: opts.resume,
        store: &opts.store,
        root_document: ".zgroup",
    };
    let mut complete = None;
    let destination = open_destination(path, manifest.as_bytes(), &rules, |p| {
        complete = already_complete(p, signals, &layouts);
        complete.is_some()
    })?;
    let (store, resuming) = match destination {
        Destination::Fresh(store) => (store, false),
        Destination::Resume(store) => (store, true),
        Destination::Complete => return Ok(complete.unwrap_or_default()),
    };

    // 2. Metadata, collected in memory, then committed key by key.
    let mem = Arc::new(MemKeys::over(None));
    let mut root = ZarrDirWriter::on_keys(mem.clone(), file.clone());
    let mut out = ZspyWriteReport::default();
    for (signal, layout) in signals.iter().zip(&layouts) {
        let (mut exp, report) = write_signal_metadata(&mut root, &signal.tree, "ZSpy")?;
        out.dropped.extend(report.dropped);
        match (&signal.data, layout) {
            (SignalData::Lazy(_), Some(layout)) => {
                let key = format!("{}/data/.zarray", signal_group_key(signal));
                mem.set(&key, json::to_zarr_string(&layout.zarray).into_bytes())
                    .map_err(io_err(&file, &key))?;
            }
            (SignalData::InMemory(array), _) => {
                let chunks = opts.chunks.clone().unwrap_or_else(|| array.shape.clone());
                overwrite_dataset(
                    &mut exp,
                    "data",
                    &DatasetValue::Loaded(array.clone()),
                    Some(&chunks),
                )?;
            }
            (SignalData::Lazy(_), None) => {
                return Err(write_err(&file, "data", "no layout was planned"));
            }
        }
    }
    let (_, mut docs) = mem.take();
    // The root `.zgroup` marks the store complete for Zarr readers: it goes last.
    docs.retain(|(k, _)| k != ".zgroup");
    out.documents = commit_documents(&store, &file, &docs)?;

    // 3. The data, signal by signal.
    for (signal, layout) in signals.iter().zip(&layouts) {
        match (&signal.data, layout) {
            (SignalData::Lazy(data), Some(layout)) => {
                if out.chunks.is_empty() {
                    out.chunks = layout.chunks.clone();
                }
                let compute = |source| SignalError::Compute {
                    file: file.clone(),
                    source,
                };
                let data = data.rechunk(&layout.chunks).map_err(compute)?;
                let data_key = format!("{}/data", signal_group_key(signal));
                let queue_bytes = (exec.memory_budget / 8).max(1);
                let sink =
                    ZspyDataSink::new(&store, &file, &data_key, layout, resuming, queue_bytes)?;
                let stats = data.store(&sink, exec).map_err(compute)?;
                let (written, bytes) = sink.committer.totals();
                out.chunks_written += written;
                out.chunks_skipped += stats.chunks_skipped;
                out.bytes_stored += bytes;
                out.exec = Some(match out.exec.take() {
                    None => stats,
                    Some(prev) => merge_stats(prev, stats),
                });
            }
            (SignalData::InMemory(a), _) => {
                if out.chunks.is_empty() {
                    out.chunks = opts.chunks.clone().unwrap_or_else(|| a.shape.clone());
                }
            }
            (SignalData::Lazy(_), None) => {}
        }
    }

    // 4. Consolidated metadata, the root group, the end of the marker.
    let mut all: Vec<(String, Vec<u8>)> = docs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .filter(|(k, _)| is_metadata_key(k))
        .collect();
    let zgroup = json::to_zarr_string(&zgroup_doc()).into_bytes();
    all.push((".zgroup".into(), zgroup.clone()));
    let zmetadata = consolidated(&file, &all)?;
    store
        .set(".zmetadata", zmetadata.as_bytes())
        .map_err(store_err(&file))?;
    store.set(".zgroup", &zgroup).map_err(store_err(&file))?;
    store.mark_complete().map_err(store_err(&file))?;
    out.documents += 2;
    Ok(out)
}

/// When `path` is a complete store whose data arrays are exactly those this job plans
/// (same `.zarray` documents, every chunk present), the report of a write with nothing left
/// to do.
fn already_complete(
    path: &Path,
    signals: &[Signal],
    layouts: &[Option<DataLayout>],
) -> Option<ZspyWriteReport> {
    let mut out = ZspyWriteReport::default();
    for (signal, layout) in signals.iter().zip(layouts) {
        let layout = layout.as_ref()?;
        let data_key = format!("{}/data", signal_group_key(signal));
        let found = std::fs::read(path.join(&data_key).join(".zarray")).ok()?;
        if found != json::to_zarr_string(&layout.zarray).into_bytes() {
            return None;
        }
        let grid = ChunkGrid::regular(&layout.shape, &layout.chunks).ok()?;
        for index in grid.indices() {
            if !path.join(chunk_key(&data_key, &index)).is_file() {
                return None;
            }
            out.chunks_skipped += 1;
        }
        if out.chunks.is_empty() {
            out.chunks = layout.chunks.clone();
        }
    }
    Some(out)
}

fn merge_stats(a: ExecStats, b: ExecStats) -> ExecStats {
    ExecStats {
        tasks: a.tasks + b.tasks,
        chunks_written: a.chunks_written + b.chunks_written,
        chunks_skipped: a.chunks_skipped + b.chunks_skipped,
        bytes_read: a.bytes_read + b.bytes_read,
        bytes_written: a.bytes_written + b.bytes_written,
        bytes_spilled: a.bytes_spilled + b.bytes_spilled,
        peak_tracked_bytes: a.peak_tracked_bytes.max(b.peak_tracked_bytes),
        budget_overruns: a.budget_overruns + b.budget_overruns,
        elapsed: a.elapsed + b.elapsed,
    }
}

/// `write_dataset=False`: rewrites the metadata of an existing complete store; `data` is
/// left as it is. Attributes are updated key by key, so stale ones stay (quirk Q6).
fn write_metadata_only(
    path: &Path,
    signals: &[Signal],
    opts: &ZspyWriteOptions,
) -> Result<ZspyWriteReport> {
    let file = path.display().to_string();
    if !path.join(".zgroup").is_file() {
        return Err(write_err(
            &file,
            "/.zgroup",
            "write_dataset=false needs an existing, complete .zspy directory store",
        ));
    }
    let store = AtomicDirStore::open(path, opts.store.clone().with_create(false))
        .map_err(store_err(&file))?;
    let base: Arc<dyn ZarrKeys> = Arc::new(DirKeys::new(path));
    let mem = Arc::new(MemKeys::over(Some(base)));
    let mut root = ZarrDirWriter::on_keys(mem.clone(), file.clone());
    let mut dropped = Vec::new();
    for signal in signals {
        let (_, report) = write_signal_metadata(&mut root, &signal.tree, "ZSpy")?;
        dropped.extend(report.dropped);
    }
    let (erased, docs) = mem.take();
    for prefix in &erased {
        store.erase_prefix(prefix).map_err(store_err(&file))?;
    }
    let documents = commit_documents(&store, &file, &docs)?;
    // Consolidate what the store holds now.
    let keys = store.list_prefix("").map_err(store_err(&file))?;
    let mut all = Vec::new();
    for k in keys.into_iter().filter(|k| is_metadata_key(k)) {
        if let Some(v) = store.get(&k).map_err(store_err(&file))? {
            all.push((k, v));
        }
    }
    let zmetadata = consolidated(&file, &all)?;
    store
        .set(".zmetadata", zmetadata.as_bytes())
        .map_err(store_err(&file))?;
    Ok(ZspyWriteReport {
        chunks: signals[0].tree.data.chunks.clone(),
        documents: documents + 1,
        dropped,
        ..ZspyWriteReport::default()
    })
}

/// The key of the experiment group (`Experiments/<name>`), as `write_signal_metadata`
/// names it.
fn signal_group_key(signal: &Signal) -> String {
    format!(
        "Experiments/{}",
        crate::signal::hierarchy::experiment_name(signal.tree.title().unwrap_or(""))
    )
}

fn is_metadata_key(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    matches!(name, ".zgroup" | ".zattrs" | ".zarray")
}

/// Commits documents (set or erase) in parallel; returns how many were set.
fn commit_documents(
    store: &AtomicDirStore,
    file: &str,
    docs: &[crate::signal::zarr_write::KeyChange],
) -> Result<usize> {
    docs.par_iter().try_for_each(|(k, v)| -> Result<()> {
        match v {
            Some(bytes) => store.set(k, bytes).map_err(store_err(file)),
            None => store.erase(k).map(|_| ()).map_err(store_err(file)),
        }
    })?;
    Ok(docs.iter().filter(|(_, v)| v.is_some()).count())
}

/// `.zmetadata` of the given documents (zarr 2.18's `consolidate_metadata` layout).
fn consolidated(file: &str, docs: &[(String, Vec<u8>)]) -> Result<String> {
    let mut entries: Vec<(String, Json)> = Vec::with_capacity(docs.len());
    for (k, v) in docs {
        let text = std::str::from_utf8(v).map_err(|_| write_err(file, k, "not UTF-8"))?;
        let j = json::parse(text).map_err(|e| write_err(file, k, e.msg))?;
        entries.push((k.clone(), j));
    }
    entries.sort_by(|a, b| json::py_str_cmp(&a.0, &b.0));
    Ok(json::to_zarr_string(&Json::Object(vec![
        ("metadata".into(), Json::Object(entries)),
        ("zarr_consolidated_format".into(), Json::Int(1)),
    ])))
}

/// The job description kept in the incomplete marker: a resume must match it.
fn manifest(signals: &[Signal], opts: &ZspyWriteOptions, layouts: &[Option<DataLayout>]) -> String {
    let mut experiments = Vec::new();
    for (signal, layout) in signals.iter().zip(layouts) {
        let mut fields = vec![(
            "experiment".to_string(),
            Json::Str(signal_group_key(signal)),
        )];
        if let Some(l) = layout {
            fields.push(("zarray".to_string(), l.zarray.clone()));
            fields.push(("dtype".to_string(), Json::Str(l.dtype.to_string())));
        }
        experiments.push(Json::Object(fields));
    }
    json::to_zarr_string(&Json::Object(vec![
        ("format".to_string(), Json::Str("zspy".into())),
        ("compressor".to_string(), opts.compressor.to_json()),
        ("experiments".to_string(), Json::Array(experiments)),
    ]))
}

/// The sink of the data chunks: encodes each with zarrs' codec chain and commits it
/// through a [`WritePlan`] of the atomic store.
struct ZspyDataSink {
    committer: Committer,
    store: AtomicDirStore,
    file: String,
    prefix: String,
    encoder: ZarrsArray<MemoryStore>,
    dtype: DType,
    shape: Vec<usize>,
    chunks: Vec<usize>,
    resuming: bool,
}

/// Background I/O threads committing data chunks, so the engine's workers never wait on
/// `fsync`.
const COMMIT_THREADS: usize = 2;

impl ZspyDataSink {
    fn new(
        store: &AtomicDirStore,
        file: &str,
        data_key: &str,
        layout: &DataLayout,
        resuming: bool,
        queue_bytes: u64,
    ) -> Result<Self> {
        let encoder = zarrs_encoder(&layout.zarray)
            .map_err(|msg| write_err(file, &format!("{data_key}/.zarray"), msg))?;
        let grid = ChunkGrid::regular(&layout.shape, &layout.chunks)
            .map_err(|e| write_err(file, data_key, e.to_string()))?;
        let keys: Vec<String> = grid.indices().map(|ix| chunk_key(data_key, &ix)).collect();
        let plan = store.begin_writes(&keys).map_err(store_err(file))?;
        Ok(ZspyDataSink {
            committer: Committer::new(plan, COMMIT_THREADS, queue_bytes),
            store: store.clone(),
            file: file.to_string(),
            prefix: data_key.to_string(),
            encoder,
            dtype: layout.dtype,
            shape: layout.shape.clone(),
            chunks: layout.chunks.clone(),
            resuming,
        })
    }

    fn encode(&self, region: &Region, data: &DynArray) -> std::result::Result<Vec<u8>, String> {
        encode_chunk(
            &self.encoder,
            &self.chunks,
            &region.shape(),
            data.to_bytes(),
        )
    }
}

/// Encodes one chunk of raw C-order bytes over `shape` with `encoder`'s codec chain; a
/// partial edge chunk is first padded with zeros to the full `chunks` (Zarr stores edge
/// chunks full size).
pub(crate) fn encode_chunk(
    encoder: &ZarrsArray<MemoryStore>,
    chunks: &[usize],
    shape: &[usize],
    raw: Vec<u8>,
) -> std::result::Result<Vec<u8>, String> {
    let itemsize = encoder
        .data_type()
        .fixed_size()
        .ok_or("not a fixed-size data type")?;
    let full = if shape == chunks {
        raw
    } else {
        pad_chunk(&raw, shape, chunks, itemsize)
    };
    let chunk_shape: Vec<std::num::NonZeroU64> = chunks
        .iter()
        .map(|&c| std::num::NonZeroU64::new(c as u64).ok_or("a chunk length is 0"))
        .collect::<std::result::Result<_, _>>()?;
    use zarrs::array::ArrayToBytesCodecTraits;
    let encoded = encoder
        .codecs()
        .encode(
            ArrayBytes::new_flen(full),
            &chunk_shape,
            encoder.data_type(),
            encoder.fill_value(),
            &zarrs::array::CodecOptions::default().with_concurrent_target(1),
        )
        .map_err(|e| e.to_string())?;
    Ok(encoded.into_owned())
}

/// Copies a partial edge chunk (`shape`) into a zero-filled full chunk (`chunks`), C order:
/// Zarr v2 stores edge chunks full size.
pub(crate) fn pad_chunk(raw: &[u8], shape: &[usize], chunks: &[usize], itemsize: usize) -> Vec<u8> {
    let total: usize = chunks.iter().product::<usize>() * itemsize;
    let mut out = vec![0u8; total];
    let nd = shape.len();
    if nd == 0 || shape.contains(&0) {
        return out;
    }
    let row = shape[nd - 1] * itemsize;
    let rows: usize = shape[..nd - 1].iter().product();
    let mut idx = vec![0usize; nd.saturating_sub(1)];
    for r in 0..rows {
        // Destination offset of this row in the full chunk.
        let mut off = 0usize;
        for d in 0..nd - 1 {
            off = off * chunks[d] + idx[d];
        }
        let dst = off * chunks[nd - 1] * itemsize;
        out[dst..dst + row].copy_from_slice(&raw[r * row..(r + 1) * row]);
        for d in (0..nd - 1).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

pub(crate) fn chunk_key(prefix: &str, index: &[usize]) -> String {
    let mut k = String::with_capacity(prefix.len() + 4 * index.len());
    k.push_str(prefix);
    if index.is_empty() {
        k.push_str("/0");
    }
    for i in index {
        k.push('/');
        k.push_str(&i.to_string());
    }
    k
}

/// A zarrs array (over an unused memory store) whose codec chain encodes our chunks.
pub(crate) fn zarrs_encoder(zarray: &Json) -> std::result::Result<ZarrsArray<MemoryStore>, String> {
    let text = json::to_zarr_string(zarray);
    let meta: zarrs::metadata::v2::ArrayMetadataV2 =
        serde_json::from_str(&text).map_err(|e| format!("zarrs cannot read the .zarray: {e}"))?;
    ZarrsArray::new_with_metadata(
        Arc::new(MemoryStore::new()),
        "/data",
        ArrayMetadata::V2(meta),
    )
    .map_err(|e| format!("zarrs cannot encode this array: {e}"))
}

impl ChunkSink for ZspyDataSink {
    fn prepare(&self, dtype: DType, grid: &ChunkGrid) -> std::result::Result<(), BoxError> {
        if dtype != self.dtype || grid.shape() != self.shape {
            return Err(format!(
                "{}: the data ({dtype}, {:?}) does not match the planned array ({}, {:?})",
                self.file,
                grid.shape(),
                self.dtype,
                self.shape
            )
            .into());
        }
        Ok(())
    }

    fn is_done(&self, index: &[usize]) -> bool {
        self.resuming
            && self
                .store
                .exists(&chunk_key(&self.prefix, index))
                .unwrap_or(false)
    }

    fn write_chunk(
        &self,
        index: &[usize],
        region: &Region,
        data: DynArray,
    ) -> std::result::Result<(), BoxError> {
        let key = chunk_key(&self.prefix, index);
        let encoded = self
            .encode(region, &data)
            .map_err(|msg| format!("{}: cannot encode chunk '{key}': {msg}", self.file))?;
        self.committer
            .submit(key, encoded)
            .map_err(|e| format!("{}: {e}", self.file))?;
        Ok(())
    }

    fn finish(&self) -> std::result::Result<(), BoxError> {
        self.committer
            .finish()
            .map_err(|e| format!("{}: {e}", self.file))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_edge_chunks_in_c_order() {
        // A 2x3 region of u8 inside 3x4 chunks.
        let raw: Vec<u8> = (1..=6).collect();
        let out = pad_chunk(&raw, &[2, 3], &[3, 4], 1);
        assert_eq!(out, vec![1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn chunk_keys_use_slashes() {
        assert_eq!(chunk_key("E/x/data", &[1, 0, 12]), "E/x/data/1/0/12");
        assert_eq!(chunk_key("E/x/data", &[]), "E/x/data/0");
    }

    #[test]
    fn compressor_configs_are_numcodecs_ones() {
        assert_eq!(
            json::to_zarr_string(&ZspyCompressor::default().to_json()),
            "{\n    \"blocksize\": 0,\n    \"clevel\": 1,\n    \"cname\": \"zstd\",\n    \"id\": \"blosc\",\n    \"shuffle\": 1\n}"
        );
        assert_eq!(
            ZspyCompressor::parse("blosc-lz4:5:bitshuffle").unwrap(),
            ZspyCompressor::Blosc {
                cname: "lz4".into(),
                clevel: 5,
                shuffle: 2
            }
        );
        assert!(ZspyCompressor::parse("gzip:12").is_err());
        assert!(ZspyCompressor::parse("zstd:3:bitshuffle").is_err());
    }
}
