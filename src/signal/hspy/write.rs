//! [`write_hspy`]: a [`Signal`] into a new `.hspy` file, streamed chunk by chunk.
//!
//! **Data.** The lazy array is rechunked to the stored chunk shape (RosettaSciIO's default:
//! `get_signal_chunks` with the 1 MB hspy target, spec §6.1) and stored through a
//! [`ChunkSink`]: the engine's worker threads pad edge chunks to the full chunk shape (as
//! HDF5 stores them), byte-shuffle and deflate them (libdeflate, a zlib stream, exactly
//! what HDF5's deflate filter reads), and hand the finished chunks through a bounded
//! channel to **one** writer thread, which stores each with `H5Dwrite_chunk` under the HDF5
//! lock. The channel's bound keeps memory within the engine's budget plus a few chunks.
//! With [`HspyCompression::Lzf`] (no Rust codec here) the writer thread hands the raw
//! chunks to the library, which filters them itself.
//!
//! **Atomicity.** HDF5 cannot commit a chunk atomically, so the whole file is the unit:
//! it is written to a temporary file in the destination's directory, named as the atomic
//! store names its temporary files (`.<name>.<host>.<pid>-<counter>-<random>.lazyspy-tmp`,
//! see [`crate::io::atomic::temp_name`]), closed, `fsync`ed, renamed over the destination
//! (transient failures retried with the [`RetryPolicy`]) and the directory `fsync`ed. A
//! killed write leaves the destination absent or intact; its temporary file is removed by
//! the next write to the same destination (same host and a dead writer, or older than ten
//! minutes). With `overwrite = false` an existing destination is an error before any work.
//!
//! **`write_dataset = false`** (spec §4.5): the existing file is copied to the temporary
//! file, its axis groups are rewritten and its metadata written over key by key (stale
//! keys stay, as in RosettaSciIO), and the copy replaces the file as above.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hdf5_sys::h5::hsize_t;
use hdf5_sys::h5d::H5Dwrite_chunk;
use hdf5_sys::h5f::{H5F_ACC_EXCL, H5F_ACC_RDWR, H5F_close_degree_t, H5Fclose, H5Fcreate, H5Fopen};
use hdf5_sys::h5p::{H5P_DEFAULT, H5Pset_fclose_degree};

use super::ffi::{self, Hid, h5};
use super::group::{DatasetFilters, HspyGroup};
use super::source::{pad_to_chunk, shuffle, shuffle_into};
use crate::dtype::DType;
use crate::dynarray::DynArray;
use crate::error::BoxError;
use crate::exec::{ExecConfig, ExecStats};
use crate::graph::DynLazyArray;
use crate::grid::{ChunkGrid, Region};
use crate::io::ChunkSink;
use crate::io::atomic::sweep::process_is_alive;
use crate::io::atomic::temp_name::{TempName, host_tag};
use crate::io::atomic::{Operation, RetryPolicy, StoreError, is_transient};
use crate::signal::hierarchy::{DatasetValue, GroupRead, GroupWrite, write_signal_metadata};
use crate::signal::model::{HSPY_TARGET_CHUNK_BYTES, Signal, SignalData, get_signal_chunks};
use crate::signal::tree::{Array, ArrayDType, ArrayData};
use crate::signal::{Location, Result, SignalError};

/// The compression of every dataset of the file (spec §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HspyCompression {
    /// No compression (h5py `compression=None`; the shuffle option still applies, Q8).
    None,
    /// Deflate (h5py `"gzip"`) at this level, 0–9.
    Gzip(u32),
    /// LZF (h5py's filter 32000, bundled here). There is no Rust LZF codec in this crate,
    /// so the library compresses these chunks itself, one at a time, on the writer thread.
    Lzf,
}

/// How [`write_hspy`] writes. `Default` is RosettaSciIO's: default chunks, gzip level 4
/// with shuffle, no overwrite, data written.
#[derive(Clone, Debug)]
pub struct HspyWriteOptions {
    /// Chunk shape of `data` (`None`: `get_signal_chunks` with the hspy 1 MB target).
    pub chunks: Option<Vec<usize>>,
    /// Compression of every dataset.
    pub compression: HspyCompression,
    /// Byte shuffle before compression (h5py's default: on).
    pub shuffle: bool,
    /// Replace an existing destination (otherwise an existing one is an error).
    pub overwrite: bool,
    /// Write `data` (false: rewrite the metadata of the existing file only, spec §4.5).
    pub write_dataset: bool,
    /// Retries of transient failures of the final rename.
    pub retry: RetryPolicy,
}

impl Default for HspyWriteOptions {
    fn default() -> Self {
        HspyWriteOptions {
            chunks: None,
            compression: HspyCompression::Gzip(4),
            shuffle: true,
            overwrite: false,
            write_dataset: true,
            retry: RetryPolicy::default(),
        }
    }
}

/// What [`write_hspy`] did.
#[derive(Clone, Debug, Default)]
pub struct HspyWriteReport {
    /// The destination.
    pub path: PathBuf,
    /// The chunk shape of `data` (empty when no data was written).
    pub chunks: Vec<usize>,
    /// Chunks stored with `H5Dwrite_chunk`.
    pub chunks_written: usize,
    /// Bytes of data before compression.
    pub bytes_uncompressed: u64,
    /// Bytes of data handed to HDF5: the compressed chunks (for LZF, which the library
    /// compresses itself, the uncompressed values).
    pub bytes_stored: u64,
    /// Metadata values the backend cannot store (logged and skipped, as RosettaSciIO does).
    pub dropped: Vec<(String, String)>,
    /// Temporary files of crashed earlier writes removed before writing.
    pub swept: Vec<PathBuf>,
    /// The engine's statistics of the data write.
    pub stats: Option<ExecStats>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Longest part of the destination name kept in a temporary name (as the atomic store).
const MAX_NAME_BYTES: usize = 64;
/// Age after which any temporary file of a destination is stale.
const STALE_AFTER: Duration = Duration::from_secs(600);

fn shorten(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn temp_name_for(dest_name: &str) -> String {
    let counter = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(counter);
    if let Ok(now) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        h.write_u128(now.as_nanos());
    }
    TempName {
        name: shorten(dest_name, MAX_NAME_BYTES).to_string(),
        host: host_tag(),
        pid: std::process::id(),
        counter,
        random: h.finish(),
    }
    .file_name()
}

/// Removes the temporary files of earlier, crashed writes of `dest` (same host and dead
/// writer, or older than ten minutes); nothing else is touched.
fn sweep(dir: &Path, dest_name: &str) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    let host = host_tag();
    let me = std::process::id();
    let short = shorten(dest_name, MAX_NAME_BYTES);
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(t) = TempName::parse(&name) else {
            continue;
        };
        if t.name != short {
            continue;
        }
        let age = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or(Duration::ZERO);
        let dead = t.host == host && t.pid != me && process_is_alive(t.pid) == Some(false);
        if (dead || age >= STALE_AFTER) && std::fs::remove_file(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    if !removed.is_empty() {
        let _ = sync_dir(dir);
    }
    removed
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Removes the temporary file on drop unless committed.
struct TempGuard {
    path: PathBuf,
    committed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn store_err(
    op: Operation,
    path: &Path,
    target: &Path,
    attempts: u32,
    started: Instant,
    e: std::io::Error,
) -> StoreError {
    StoreError::Io {
        operation: op,
        path: path.to_path_buf(),
        target: target.to_path_buf(),
        attempts,
        elapsed: started.elapsed(),
        transient: is_transient(&e),
        source: e,
    }
}

/// Runs `f` until it succeeds, fails permanently or the retry budget is spent.
fn retry_io<T>(
    policy: &RetryPolicy,
    op: Operation,
    path: &Path,
    target: &Path,
    mut f: impl FnMut() -> std::io::Result<T>,
) -> std::result::Result<T, StoreError> {
    let started = Instant::now();
    let mut delay = policy.initial_delay;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if is_transient(&e) && started.elapsed() < policy.timeout => {
                let left = policy.timeout.saturating_sub(started.elapsed());
                std::thread::sleep(delay.min(left));
                delay = (delay * 2).min(policy.max_delay);
            }
            Err(e) => return Err(store_err(op, path, target, attempts, started, e)),
        }
    }
}

/// A chunk ready for `H5Dwrite_chunk`, or (`library = Some(shape)`) the raw values of a
/// region for the library to filter and write (LZF).
struct EncodedChunk {
    offset: Vec<hsize_t>,
    bytes: Vec<u8>,
    library: Option<Vec<usize>>,
}

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<(i32, libdeflater::Compressor)>> =
        const { std::cell::RefCell::new(None) };
}

/// Shuffles and deflates `data` (a full chunk) as HDF5's pipeline would. The shuffled
/// bytes and the deflate output go through per-thread scratch buffers; only the result is
/// a new allocation.
fn encode(
    data: &[u8],
    elem: usize,
    shuffle_on: bool,
    level: Option<u32>,
) -> std::result::Result<Vec<u8>, String> {
    let Some(level) = level else {
        return Ok(if shuffle_on && elem > 1 {
            shuffle(data, elem)
        } else {
            data.to_vec()
        });
    };
    let lvl = libdeflate_level(level);
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(l, _)| *l) != Some(lvl) {
            let l = libdeflater::CompressionLvl::new(lvl)
                .map_err(|e| format!("compression level {level}: {e:?}"))?;
            *c = Some((lvl, libdeflater::Compressor::new(l)));
        }
        let (_, comp) = c.as_mut().expect("set above");
        SCRATCH.with(|sc| {
            let (shuf, out) = &mut *sc.borrow_mut();
            let input: &[u8] = if shuffle_on && elem > 1 && data.len().is_multiple_of(elem) {
                shuf.resize(data.len(), 0);
                shuffle_into(data, elem, shuf);
                shuf
            } else {
                data
            };
            let bound = comp.zlib_compress_bound(input.len());
            if out.len() < bound {
                out.resize(bound, 0);
            }
            let n = comp
                .zlib_compress(input, &mut out[..bound])
                .map_err(|e| format!("deflate: {e:?}"))?;
            Ok(out[..n].to_vec())
        })
    })
}

thread_local! {
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The bytes of a contiguous array, without a copy.
fn contiguous_bytes(a: &DynArray) -> Option<&[u8]> {
    crate::with_dyn!(a, x, T => {
        x.as_slice().map(|s| {
            // SAFETY: every element type is plain old data without padding; the length is
            // the slice's size in bytes.
            unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val::<[T]>(s)) }
        })
    })
}

/// The sink: encodes on the worker threads, sends to the writer thread.
struct DirectChunkSink {
    tx: Mutex<Option<SyncSender<EncodedChunk>>>,
    chunk: Vec<usize>,
    elem: usize,
    shuffle: bool,
    level: Option<u32>,
    lzf: bool,
    writer_error: Arc<Mutex<Option<String>>>,
    loc: Location,
    uncompressed: AtomicU64,
    stored: AtomicU64,
    written: AtomicUsize,
}

impl DirectChunkSink {
    fn err(&self, msg: String) -> BoxError {
        Box::new(SignalError::write(&self.loc, msg))
    }
}

impl ChunkSink for DirectChunkSink {
    fn prepare(&self, _dtype: DType, grid: &ChunkGrid) -> std::result::Result<(), BoxError> {
        let ok = (0..grid.ndim()).all(|d| {
            let c = grid.axis_chunks(d);
            c.iter()
                .take(c.len().saturating_sub(1))
                .all(|&x| x == self.chunk[d])
                && c.last().is_none_or(|&x| x <= self.chunk[d])
        });
        if ok {
            Ok(())
        } else {
            Err(self.err(format!(
                "the data's chunks {:?} are not the stored chunk shape {:?}",
                grid.chunks(),
                self.chunk
            )))
        }
    }

    fn write_chunk(
        &self,
        index: &[usize],
        region: &Region,
        data: DynArray,
    ) -> std::result::Result<(), BoxError> {
        let shape = region.shape();
        let owned;
        let raw: &[u8] = match contiguous_bytes(&data) {
            Some(b) => b,
            None => {
                owned = data.to_bytes();
                &owned
            }
        };
        let n_raw = raw.len() as u64;
        let offset: Vec<hsize_t> = region.start.iter().map(|&s| s as hsize_t).collect();
        if self.lzf {
            self.uncompressed.fetch_add(n_raw, Ordering::Relaxed);
            self.stored.fetch_add(n_raw, Ordering::Relaxed);
            return self.send(
                index,
                EncodedChunk {
                    offset,
                    bytes: raw.to_vec(),
                    library: Some(shape),
                },
            );
        }
        let full;
        let input: &[u8] = if shape == self.chunk {
            raw
        } else {
            full = pad_to_chunk(raw, &self.chunk, &shape, self.elem);
            &full
        };
        let bytes = encode(input, self.elem, self.shuffle, self.level)
            .map_err(|e| self.err(format!("chunk {index:?}: {e}")))?;
        self.uncompressed.fetch_add(n_raw, Ordering::Relaxed);
        self.stored.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.send(
            index,
            EncodedChunk {
                offset,
                bytes,
                library: None,
            },
        )
    }
}

impl DirectChunkSink {
    fn send(&self, index: &[usize], c: EncodedChunk) -> std::result::Result<(), BoxError> {
        let tx = self.tx.lock().expect("sender lock").clone();
        let sent = match tx {
            Some(tx) => tx.send(c).is_ok(),
            None => false,
        };
        if !sent {
            let why = self
                .writer_error
                .lock()
                .expect("error lock")
                .clone()
                .unwrap_or_else(|| "the writer thread stopped".into());
            return Err(self.err(format!("chunk {index:?}: {why}")));
        }
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The writer thread: stores every received chunk with `H5Dwrite_chunk` (or, for the
/// library's own filters, with a hyperslab write of values of type `mem`).
fn writer_loop(
    ds: i64,
    mem: ArrayDType,
    rx: Receiver<EncodedChunk>,
    error: Arc<Mutex<Option<String>>>,
) {
    for c in rx {
        if let Some(shape) = &c.library {
            let r = h5(|| super::source::write_hyperslab(ds, &mem, &c.offset, shape, &c.bytes));
            if let Err(e) = r {
                *error.lock().expect("error lock") = Some(e);
                return;
            }
            continue;
        }
        let r = h5(|| {
            // SAFETY: `ds` is a chunked dataset open for writing; `offset` has one entry per
            // dimension and `bytes` is the chunk's filtered content.
            let status = unsafe {
                H5Dwrite_chunk(
                    ds,
                    H5P_DEFAULT,
                    0,
                    c.offset.as_ptr(),
                    c.bytes.len(),
                    c.bytes.as_ptr().cast(),
                )
            };
            ffi::check(status, "H5Dwrite_chunk")
        });
        if let Err(e) = r {
            *error.lock().expect("error lock") = Some(e);
            return;
        }
    }
}

fn rechunk_to(data: &DynLazyArray, chunks: &[usize]) -> crate::Result<DynLazyArray> {
    let g = data.grid();
    let same = (0..g.ndim()).all(|d| {
        let c = g.axis_chunks(d);
        c.iter()
            .take(c.len().saturating_sub(1))
            .all(|&x| x == chunks[d])
            && c.last().is_none_or(|&x| x <= chunks[d])
    });
    if same {
        return Ok(data.clone());
    }
    crate::with_dtype!(data.dtype(), T => {
        Ok(data.clone().into_typed::<T>()?.rechunk(chunks)?.into_dyn())
    })
}

fn flatten_ragged(a: &Array) -> Option<(Array, Array)> {
    let ArrayData::Cells(cells) = &a.data else {
        return None;
    };
    let flat = cells
        .iter()
        .map(|c| Array {
            shape: vec![c.len()],
            ..c.clone()
        })
        .collect();
    let shapes = cells
        .iter()
        .map(|c| Array::from_i64(&c.shape.iter().map(|&s| s as i64).collect::<Vec<_>>()))
        .collect();
    Some((
        Array::from_cells(a.shape.clone(), flat),
        Array::from_cells(a.shape.clone(), shapes),
    ))
}

fn create_file(path: &Path, loc: &Location, append: bool) -> Result<Hid> {
    let c = ffi::cstr(&path.to_string_lossy()).map_err(|e| SignalError::write(loc, e))?;
    h5(|| -> std::result::Result<Hid, String> {
        // SAFETY: owned property list; the file identifier is owned.
        let fapl = ffi::file_access_plist()?;
        ffi::check(
            unsafe { H5Pset_fclose_degree(fapl.id(), H5F_close_degree_t::H5F_CLOSE_STRONG) },
            "H5Pset_fclose_degree",
        )?;
        if append {
            ffi::check_id(
                unsafe { H5Fopen(c.as_ptr(), H5F_ACC_RDWR, fapl.id()) },
                "H5Fopen",
            )
        } else {
            ffi::check_id(
                unsafe { H5Fcreate(c.as_ptr(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.id()) },
                "H5Fcreate",
            )
        }
    })
    .map_err(|e| SignalError::write(loc, e))
}

fn close_file(f: Hid, loc: &Location) -> Result<()> {
    let id = f.0;
    std::mem::forget(f);
    // SAFETY: `id` is the file identifier owned by `f`, closed exactly once here.
    h5(|| ffi::check(unsafe { H5Fclose(id) }, "H5Fclose")).map_err(|e| SignalError::write(loc, e))
}

/// Writes `signal` to the `.hspy` file `path` (see the module documentation).
///
/// Errors name the file and the object: an existing destination without `overwrite`, a
/// missing one with `write_dataset = false`, an engine failure ([`SignalError::Compute`]),
/// an HDF5 failure ([`SignalError::Write`]), a failed rename ([`SignalError::Store`]). On
/// every error the temporary file is removed and the destination is untouched.
pub fn write_hspy(
    path: impl AsRef<Path>,
    signal: &Signal,
    opts: &HspyWriteOptions,
    cfg: &ExecConfig,
) -> Result<HspyWriteReport> {
    let dest = path.as_ref().to_path_buf();
    let file = dest.display().to_string();
    let loc = Location::new(file.clone(), "/");
    if signal.tree.axes.len() != signal.data.shape().len() {
        return Err(SignalError::write(
            &loc.child("Experiments"),
            format!(
                "the signal has {} axes but its data has {} dimensions",
                signal.tree.axes.len(),
                signal.data.shape().len()
            ),
        ));
    }
    let exists = dest.exists();
    if opts.write_dataset && exists && !opts.overwrite {
        return Err(SignalError::write(
            &loc,
            "the destination exists (set overwrite to replace it)",
        ));
    }
    if !opts.write_dataset && !exists {
        return Err(SignalError::missing(
            &loc,
            "file (write_dataset=false rewrites the metadata of an existing file)",
        ));
    }
    let dest_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| SignalError::write(&loc, "the destination has no file name"))?;
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut report = HspyWriteReport {
        path: dest.clone(),
        swept: sweep(&dir, &dest_name),
        ..Default::default()
    };
    let level = match opts.compression {
        HspyCompression::None | HspyCompression::Lzf => None,
        HspyCompression::Gzip(l) => {
            if l > 9 {
                return Err(SignalError::write(
                    &loc,
                    format!("gzip level {l} is not in 0..=9"),
                ));
            }
            Some(l)
        }
    };
    let filters = DatasetFilters {
        gzip: level,
        shuffle: opts.shuffle,
        lzf: opts.compression == HspyCompression::Lzf,
    };
    let temp = dir.join(temp_name_for(&dest_name));
    let mut guard = TempGuard {
        path: temp.clone(),
        committed: false,
    };
    if !opts.write_dataset {
        std::fs::copy(&dest, &temp).map_err(|e| SignalError::io(&loc, e))?;
    }
    let f = create_file(&temp, &loc, !opts.write_dataset)?;
    {
        let root_id =
            h5(|| ffi::open_group(f.id(), "/")).map_err(|e| SignalError::write(&loc, e))?;
        let mut root = HspyGroup::new(root_id, file.clone(), "/".into(), filters);
        if !opts.write_dataset {
            // RosettaSciIO deletes every axis group before writing them again.
            let name = crate::signal::hierarchy::experiment_name(signal.tree.title().unwrap_or(""));
            if let Some(exps) = root.group("Experiments")?
                && let Some(mut g) = exps.group(&name)?
            {
                for (child, _) in g.children()? {
                    if child.starts_with("axis-") {
                        g.delete(&child)?;
                    }
                }
            }
        }
        let (mut g, wr) = write_signal_metadata(&mut root, &signal.tree, "HyperSpy")?;
        report.dropped = wr.dropped;
        if opts.write_dataset {
            write_data(&mut g, signal, opts, &filters, cfg, &mut report)?;
        }
    }
    close_file(f, &loc)?;
    // Durable before it becomes visible.
    let started = Instant::now();
    std::fs::File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(|e| SignalError::Store {
            file: file.clone(),
            source: store_err(Operation::Fsync, &temp, &dest, 1, started, e),
        })?;
    retry_io(&opts.retry, Operation::Rename, &temp, &dest, || {
        std::fs::rename(&temp, &dest)
    })
    .map_err(|e| SignalError::Store {
        file: file.clone(),
        source: e,
    })?;
    guard.committed = true;
    retry_io(&opts.retry, Operation::DirFsync, &dir, &dest, || {
        sync_dir(&dir)
    })
    .map_err(|e| SignalError::Store {
        file: file.clone(),
        source: e,
    })?;
    Ok(report)
}

fn write_data(
    g: &mut HspyGroup,
    signal: &Signal,
    opts: &HspyWriteOptions,
    filters: &DatasetFilters,
    cfg: &ExecConfig,
    report: &mut HspyWriteReport,
) -> Result<()> {
    let loc = GroupRead::location(g).child("data");
    let shape = signal.data.shape();
    let signal_axes = signal.signal_axes();
    match &signal.data {
        SignalData::InMemory(a) => {
            let itemsize = a.dtype.itemsize().unwrap_or(8);
            let chunks = match &opts.chunks {
                Some(c) => c.clone(),
                None => get_signal_chunks(&shape, itemsize, &signal_axes, HSPY_TARGET_CHUNK_BYTES)
                    .unwrap_or_else(|| super::h5py_guess_chunk(&shape, itemsize)),
            };
            check_chunks(&loc, &shape, &chunks)?;
            report.chunks = chunks.clone();
            if a.dtype == ArrayDType::Object {
                let (flat, shapes) = flatten_ragged(a)
                    .ok_or_else(|| SignalError::write(&loc, "object data without cells"))?;
                g.write_dataset("data", &DatasetValue::Loaded(flat), Some(&chunks))?;
                g.write_dataset(
                    "_ragged_shapes_data",
                    &DatasetValue::Loaded(shapes),
                    Some(&chunks),
                )?;
            } else {
                g.write_dataset("data", &DatasetValue::Loaded(a.clone()), Some(&chunks))?;
            }
            Ok(())
        }
        SignalData::Lazy(data) => {
            if shape.is_empty() || shape.contains(&0) {
                return Err(SignalError::write(
                    &loc,
                    format!("data of shape {shape:?} cannot be stored in chunks"),
                ));
            }
            let itemsize = data.dtype().size();
            let chunks = match &opts.chunks {
                Some(c) => c.clone(),
                None => get_signal_chunks(&shape, itemsize, &signal_axes, HSPY_TARGET_CHUNK_BYTES)
                    .unwrap_or_else(|| super::h5py_guess_chunk(&shape, itemsize)),
            };
            check_chunks(&loc, &shape, &chunks)?;
            report.chunks = chunks.clone();
            let stored = ArrayDType::from_engine_dtype(data.dtype());
            let ds = g.create_data_dataset("data", &stored, &shape, &chunks)?;
            let data = rechunk_to(data, &chunks).map_err(|e| SignalError::Compute {
                file: loc.file.clone(),
                source: e,
            })?;
            let (tx, rx) = sync_channel::<EncodedChunk>(cfg.threads.max(1) * 2);
            let writer_error = Arc::new(Mutex::new(None));
            let sink = DirectChunkSink {
                tx: Mutex::new(Some(tx)),
                chunk: chunks.clone(),
                elem: itemsize,
                shuffle: filters.shuffle,
                level: filters.gzip,
                lzf: filters.lzf,
                writer_error: writer_error.clone(),
                loc: loc.clone(),
                uncompressed: AtomicU64::new(0),
                stored: AtomicU64::new(0),
                written: AtomicUsize::new(0),
            };
            let ds_id = ds.id();
            let result = std::thread::scope(|s| {
                let we = writer_error.clone();
                let mem = stored.clone();
                let writer = s.spawn(move || writer_loop(ds_id, mem, rx, we));
                let r = data.store(&sink, cfg);
                // Closing the channel lets the writer finish the queued chunks.
                sink.tx.lock().expect("sender lock").take();
                let joined = writer.join();
                (r, joined.is_ok())
            });
            let (r, writer_ok) = result;
            if let Some(e) = writer_error.lock().expect("error lock").clone() {
                return Err(SignalError::write(&loc, e));
            }
            if !writer_ok {
                return Err(SignalError::write(&loc, "the writer thread panicked"));
            }
            let stats = r.map_err(|e| SignalError::Compute {
                file: loc.file.clone(),
                source: e,
            })?;
            report.chunks_written = sink.written.load(Ordering::Relaxed);
            report.bytes_uncompressed = sink.uncompressed.load(Ordering::Relaxed);
            report.bytes_stored = sink.stored.load(Ordering::Relaxed);
            report.stats = Some(stats);
            drop(ds);
            Ok(())
        }
    }
}

fn check_chunks(loc: &Location, shape: &[usize], chunks: &[usize]) -> Result<()> {
    if chunks.len() != shape.len() || chunks.contains(&0) {
        return Err(SignalError::write(
            loc,
            format!("chunk shape {chunks:?} does not fit data of shape {shape:?}"),
        ));
    }
    Ok(())
}

/// The libdeflate level that compresses like zlib's `level`. libdeflate's levels are its
/// own: measured on shuffled float32 and uint16 chunks (shared/notes/codecs.md), its level
/// 1 already gives zlib level 4's ratio (1.348 vs 1.350 on f32, 2.491 vs 2.480 on u16) at
/// about 1.4x the speed of its level 4. So zlib levels 1–4 use libdeflate level 1; higher
/// levels keep their number (libdeflate's 5–9 compress at least as well as zlib's). The
/// streams are standard zlib streams whatever the level (the level in the HDF5 filter is
/// advisory).
pub(crate) fn libdeflate_level(zlib_level: u32) -> i32 {
    match zlib_level {
        0 => 0,
        1..=4 => 1,
        l => l.min(12) as i32,
    }
}
