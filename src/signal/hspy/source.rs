//! [`HspyArraySource`]: the numeric `data` dataset of an `.hspy` signal as a
//! [`ChunkSource`].
//!
//! HDF5 calls are serialised by one process-wide lock, so chunks are not decoded by the
//! library: each chunk is fetched raw with `H5Dread_chunk` (after
//! `H5Dget_chunk_info_by_coord` gives its size and filter mask) under the lock, and the
//! filters are undone in Rust outside it, in parallel on the engine's threads: deflate
//! (libdeflate), shuffle and fletcher32, skipping every filter whose bit is set in the
//! chunk's filter mask (spec §4.3: HDF5 skips optional filters that fail, so a chunk may be
//! stored without them). Chunks whose pipeline holds another filter (lzf, Blosc, szip,
//! scale-offset, ...), chunks never written (fill value), contiguous and compact datasets,
//! and regions that are not whole chunks are read by the library with a hyperslab
//! selection instead.

use std::ffi::c_void;
use std::path::Path;

use hdf5_sys::h5::hsize_t;
use hdf5_sys::h5d::{H5Dget_chunk_info_by_coord, H5Dget_space, H5Dread, H5Dread_chunk1};
use hdf5_sys::h5p::H5P_DEFAULT;
use hdf5_sys::h5s::{H5S_seloper_t, H5Sselect_hyperslab};

use super::ffi::{self, Hid, h5};
use super::group::{DatasetLayout, dataset_layout};
use crate::dtype::DType;
use crate::dynarray::DynArray;
use crate::error::BoxError;
use crate::grid::{ChunkGrid, Region};
use crate::io::ChunkSource;
use crate::signal::tree::ArrayDType;
use crate::signal::{Result, SignalError};

/// The `data` dataset of an `.hspy` signal, read chunk by chunk.
///
/// Thread-safe: the engine reads different chunks from several threads; only the raw read
/// of each chunk holds the HDF5 lock.
pub struct HspyArraySource {
    ds: Hid,
    file: String,
    path: String,
    dtype: DType,
    stored: ArrayDType,
    grid: ChunkGrid,
    layout: DatasetLayout,
}

impl std::fmt::Debug for HspyArraySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HspyArraySource({}:{}, {}, {:?}, {})",
            self.file,
            self.path,
            self.dtype,
            self.grid.shape(),
            self.layout.layout
        )
    }
}

/// Whether the engine can hold data of this stored type.
pub(crate) fn engine_dtype(d: &ArrayDType) -> Option<DType> {
    match d {
        ArrayDType::Float { bytes: 2, .. } => None,
        other => other.to_engine_dtype(),
    }
}

impl HspyArraySource {
    /// Opens the dataset `path` (e.g. `/Experiments/name/data`) of the HDF5 file `file`.
    /// Reads the dataset's description only.
    ///
    /// Errors name the file and the dataset: a file that is not HDF5 or cannot be opened,
    /// a missing dataset ([`SignalError::Missing`]), an element type the engine cannot hold
    /// (structured, string, ragged, half: [`SignalError::Unsupported`]).
    pub fn open(file: impl AsRef<Path>, path: &str) -> Result<Self> {
        let root = super::open_root(file.as_ref())?;
        let loc = crate::signal::Location::new(root.location_file(), path);
        let id = root.raw();
        let rel = path.trim_start_matches('/').to_string();
        let ds = h5(|| -> std::result::Result<Option<Hid>, String> {
            if !link_path_exists(id, &rel)? {
                return Ok(None);
            }
            ffi::open_dataset(id, &rel).map(Some)
        })
        .map_err(|e| SignalError::invalid(&loc, e))?
        .ok_or_else(|| SignalError::missing(&loc, "dataset"))?;
        Self::from_dataset(ds, loc.file, loc.path)
    }

    pub(crate) fn from_dataset(ds: Hid, file: String, path: String) -> Result<Self> {
        let loc = crate::signal::Location::new(file.clone(), path.clone());
        let (stored, shape, layout) = h5(|| -> std::result::Result<_, SignalError> {
            let e = |m: String| SignalError::invalid(&loc, m);
            // SAFETY: `ds` is a dataset; the type and space are owned.
            let t = ffi::check_id(
                unsafe { hdf5_sys::h5d::H5Dget_type(ds.id()) },
                "H5Dget_type",
            )
            .map_err(e)?;
            let s = ffi::check_id(unsafe { H5Dget_space(ds.id()) }, "H5Dget_space").map_err(e)?;
            let kind = ffi::describe_type(t.id())
                .map_err(|m| SignalError::unsupported(&loc, format!("element type: {m}")))?;
            let shape = ffi::space_shape(s.id()).map_err(e)?.unwrap_or_default();
            let layout = dataset_layout(&ds).map_err(e)?;
            Ok((kind.dtype(), shape, layout))
        })?;
        let dtype = engine_dtype(&stored).ok_or_else(|| {
            SignalError::unsupported(
                &loc,
                format!(
                    "element type {stored} cannot be read lazily (ragged, structured, string and half-precision data are read whole)"
                ),
            )
        })?;
        if shape.is_empty() {
            return Err(SignalError::unsupported(
                &loc,
                "a scalar dataset is not signal data",
            ));
        }
        let chunk = match &layout.chunks {
            Some(c) if c.len() == shape.len() => c.clone(),
            _ => contiguous_chunks(&shape, dtype.size()),
        };
        let grid = ChunkGrid::regular(&shape, &chunk)
            .map_err(|e| SignalError::invalid(&loc, e.to_string()))?;
        Ok(HspyArraySource {
            ds,
            file,
            path,
            dtype,
            stored,
            grid,
            layout,
        })
    }

    /// The file, as given to [`open`](Self::open).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The dataset's path inside the file.
    pub fn dataset_path(&self) -> &str {
        &self.path
    }

    /// The stored layout: `"chunked"`, `"contiguous"`, ... with the chunk shape and the
    /// filter pipeline.
    pub fn layout(&self) -> &DatasetLayout {
        &self.layout
    }

    fn err(&self, msg: String) -> BoxError {
        Box::new(SignalError::Invalid {
            file: self.file.clone(),
            key: self.path.clone(),
            msg,
        })
    }

    /// Reads `region` through the library (hyperslab selection, HDF5's own filters).
    fn read_hyperslab(&self, region: &Region) -> std::result::Result<DynArray, BoxError> {
        let shape = region.shape();
        let native = ArrayDType::from_engine_dtype(self.dtype);
        let ds = self.ds.id();
        DynArray::from_bytes_with(self.dtype, &shape, |buf| {
            h5(|| -> std::result::Result<(), String> {
                let mt = ffi::create_type(&native)?;
                let start: Vec<hsize_t> = region.start.iter().map(|&v| v as hsize_t).collect();
                let (fs, ms) = hyperslab_spaces(ds, &start, &shape)?;
                // SAFETY: `ds` is valid; spaces are owned; `buf` holds the region.
                ffi::check(
                    unsafe {
                        H5Dread(
                            ds,
                            mt.id(),
                            ms.id(),
                            fs.id(),
                            H5P_DEFAULT,
                            buf.as_mut_ptr().cast::<c_void>(),
                        )
                    },
                    "H5Dread",
                )
            })
            .map_err(std::io::Error::other)
        })
        .map_err(|e| {
            self.err(format!(
                "cannot read region {:?}..{:?}: {e}",
                region.start, region.stop
            ))
        })
    }

    /// The raw stored bytes of chunk `index` and its filter mask (`None`: never written).
    fn raw_chunk(&self, index: &[usize]) -> std::result::Result<Option<(Vec<u8>, u32)>, String> {
        let chunk = self.layout.chunks.as_ref().expect("chunked");
        let offset: Vec<hsize_t> = index
            .iter()
            .zip(chunk)
            .map(|(&i, &c)| (i * c) as hsize_t)
            .collect();
        let ds = self.ds.id();
        h5(|| {
            let mut mask = 0u32;
            let mut addr = 0u64;
            let mut size: hsize_t = 0;
            // SAFETY: `offset` has one entry per dimension; out-pointers are valid.
            let r = unsafe {
                H5Dget_chunk_info_by_coord(ds, offset.as_ptr(), &mut mask, &mut addr, &mut size)
            };
            if r < 0 {
                return Err(ffi::h5_error("H5Dget_chunk_info_by_coord"));
            }
            if addr == u64::MAX || size == 0 {
                return Ok(None);
            }
            // A reused buffer: no zero fill of the whole chunk under the lock.
            let mut buf = spare_raw_buffer(size as usize);
            let mut mask2 = 0u32;
            // SAFETY: `buf` holds the chunk's stored size.
            let r = unsafe {
                H5Dread_chunk1(
                    ds,
                    H5P_DEFAULT,
                    offset.as_ptr(),
                    &mut mask2,
                    buf.as_mut_ptr().cast(),
                )
            };
            if r < 0 {
                return Err(ffi::h5_error("H5Dread_chunk"));
            }
            Ok(Some((buf, mask2)))
        })
    }

    /// Undoes the filters of a stored chunk; `None` when a filter is not handled here.
    /// The last step, when it is an unshuffle, is left to the caller (returned as the
    /// element size), so that it can write straight into the output array.
    fn decode(
        &self,
        raw: Vec<u8>,
        mask: u32,
        full: usize,
    ) -> std::result::Result<Option<Decoded>, String> {
        let filters = &self.layout.filters;
        // Sizes before each filter in write order (None after a compressor).
        let mut before = Vec::with_capacity(filters.len());
        let mut size = Some(full);
        for (i, f) in filters.iter().enumerate() {
            before.push(size);
            if mask & (1 << i) != 0 {
                continue;
            }
            size = match f.id {
                2 => size,
                3 => size.map(|s| s + 4),
                _ => None,
            };
        }
        let mut data = raw;
        for (i, f) in filters.iter().enumerate().rev() {
            if mask & (1 << i) != 0 {
                continue;
            }
            match f.id {
                1 => {
                    let Some(expected) = before[i] else {
                        return Ok(None);
                    };
                    let mut out = spare_buffer(expected);
                    let n = DECOMPRESSOR
                        .with(|d| d.borrow_mut().zlib_decompress(&data, &mut out))
                        .map_err(|e| format!("deflate stream: {e:?}"))?;
                    if n != expected {
                        return Err(format!("inflated to {n} bytes, expected {expected}"));
                    }
                    return_raw_buffer(std::mem::replace(&mut data, out));
                }
                2 => {
                    let elem = f
                        .cd_values
                        .first()
                        .map_or(self.elem_size(), |&v| v as usize);
                    if i == 0 && data.len() == full {
                        return Ok(Some((data, Some(elem))));
                    }
                    data = unshuffle(&data, elem);
                }
                3 => {
                    if data.len() < 4 {
                        return Err("fletcher32 chunk shorter than its checksum".into());
                    }
                    data.truncate(data.len() - 4);
                }
                _ => return Ok(None),
            }
        }
        if data.len() != full {
            return Err(format!(
                "decoded chunk has {} bytes, expected {full}",
                data.len()
            ));
        }
        Ok(Some((data, None)))
    }

    fn elem_size(&self) -> usize {
        self.stored.itemsize().unwrap_or(1)
    }

    fn big_endian(&self) -> bool {
        matches!(
            self.stored,
            ArrayDType::Int {
                big_endian: true,
                ..
            } | ArrayDType::UInt {
                big_endian: true,
                ..
            } | ArrayDType::Float {
                big_endian: true,
                ..
            } | ArrayDType::Complex {
                big_endian: true,
                ..
            }
        )
    }
}

/// A decoded chunk, and the element size of a final unshuffle still to do (if any).
type Decoded = (Vec<u8>, Option<usize>);

thread_local! {
    static DECOMPRESSOR: std::cell::RefCell<libdeflater::Decompressor> =
        std::cell::RefCell::new(libdeflater::Decompressor::new());
    /// One inflate buffer per thread, reused from chunk to chunk: a fresh buffer per chunk
    /// costs a zero fill and page faults (about a tenth of a load's CPU time).
    static SPARE: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
    /// Likewise for the stored (compressed) bytes read from the file.
    static SPARE_RAW: std::cell::RefCell<Option<Vec<u8>>> =
        const { std::cell::RefCell::new(None) };
}

/// A buffer of `len` bytes (contents unspecified: the caller overwrites all of them).
fn spare_buffer(len: usize) -> Vec<u8> {
    take_spare(&SPARE, len)
}

/// Hands a buffer back for the next [`spare_buffer`] of this thread.
fn return_buffer(v: Vec<u8>) {
    SPARE.with(|s| *s.borrow_mut() = Some(v));
}

/// A buffer of `len` bytes for a chunk's stored bytes (contents unspecified).
fn spare_raw_buffer(len: usize) -> Vec<u8> {
    take_spare(&SPARE_RAW, len)
}

/// Hands a buffer back for the next [`spare_raw_buffer`] of this thread.
fn return_raw_buffer(v: Vec<u8>) {
    SPARE_RAW.with(|s| *s.borrow_mut() = Some(v));
}

/// The buffer in `slot` (or a new one) resized to `len`: only bytes beyond its previous
/// length are zeroed.
fn take_spare(
    slot: &'static std::thread::LocalKey<std::cell::RefCell<Option<Vec<u8>>>>,
    len: usize,
) -> Vec<u8> {
    let mut v = slot.with(|s| s.borrow_mut().take()).unwrap_or_default();
    v.resize(len, 0);
    v
}

/// HDF5's byte shuffle: byte `k` of every element, element after element.
pub(crate) fn shuffle(data: &[u8], elem: usize) -> Vec<u8> {
    if elem <= 1 || !data.len().is_multiple_of(elem) {
        return data.to_vec();
    }
    let mut out = vec![0u8; data.len()];
    shuffle_into(data, elem, &mut out);
    out
}

/// [`shuffle`] into `out` (of the same length; `data.len()` a multiple of `elem` > 1).
pub(crate) fn shuffle_into(data: &[u8], elem: usize, out: &mut [u8]) {
    if data.is_empty() {
        return;
    }
    match elem {
        2 => shuffle_n::<2>(data, out),
        4 => shuffle_n::<4>(data, out),
        8 => shuffle_n::<8>(data, out),
        _ => {
            let n = data.len() / elem;
            for (k, plane) in out.chunks_exact_mut(n).enumerate() {
                for (i, b) in plane.iter_mut().enumerate() {
                    *b = data[i * elem + k];
                }
            }
        }
    }
}

fn shuffle_n<const E: usize>(data: &[u8], out: &mut [u8]) {
    let n = data.len() / E;
    let mut planes: Vec<&mut [u8]> = out.chunks_exact_mut(n).collect();
    for (i, e) in data.chunks_exact(E).enumerate() {
        for k in 0..E {
            planes[k][i] = e[k];
        }
    }
}

fn unshuffle_n<const E: usize>(data: &[u8], out: &mut [u8]) {
    let n = data.len() / E;
    let planes: [&[u8]; E] = std::array::from_fn(|k| &data[k * n..(k + 1) * n]);
    let done = unshuffle_simd::<E>(&planes, &mut out[..n * E]);
    unshuffle_blocks::<E>(&planes, done, &mut out[done * E..n * E]);
}

/// Unshuffles elements `first..` of the byte `planes` into `out` in blocks of B elements:
/// each plane's B bytes are read as one fixed-size array, so the inner loops have no
/// bounds checks on the source and unroll.
fn unshuffle_blocks<const E: usize>(planes: &[&[u8]; E], first: usize, out: &mut [u8]) {
    const B: usize = 64;
    let n = out.len() / E;
    let full = n / B * B;
    for (bi, block) in out[..full * E].chunks_exact_mut(B * E).enumerate() {
        let base = first + bi * B;
        for (k, plane) in planes.iter().enumerate() {
            let src: &[u8; B] = plane[base..base + B].try_into().expect("B bytes");
            for (j, &b) in src.iter().enumerate() {
                block[j * E + k] = b;
            }
        }
    }
    for i in full..n {
        for (k, plane) in planes.iter().enumerate() {
            out[i * E + k] = plane[first + i];
        }
    }
}

/// Unshuffles the leading elements of the byte `planes` (each of the same length) into
/// `out` (planes × E bytes) with SSE2 byte interleaves, 16 elements at a time (for E = 2,
/// 4 and 8); returns how many elements it did (the rest is left to the caller).
#[cfg(target_arch = "x86_64")]
fn unshuffle_simd<const E: usize>(planes: &[&[u8]; E], out: &mut [u8]) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_storeu_si128, _mm_unpackhi_epi8, _mm_unpackhi_epi16,
        _mm_unpackhi_epi32, _mm_unpacklo_epi8, _mm_unpacklo_epi16, _mm_unpacklo_epi32,
    };
    let n = planes[0].len();
    assert!(planes.iter().all(|p| p.len() == n) && out.len() == n * E);
    let blocks = n / 16;
    let o = out.as_mut_ptr().cast::<__m128i>();
    let load = |k: usize, b: usize| -> __m128i {
        // SAFETY: b < n / 16, so bytes 16b..16b+16 lie inside plane k (of n bytes);
        // unaligned load; SSE2 is part of the x86_64 baseline.
        unsafe { _mm_loadu_si128(planes[k].as_ptr().add(16 * b).cast::<__m128i>()) }
    };
    // SAFETY: the byte interleaves are SSE2 (x86_64 baseline); block b stores 16·E bytes
    // at byte 16·E·b of `out`, inside its n·E bytes; unaligned stores.
    unsafe {
        match E {
            2 => {
                for b in 0..blocks {
                    let (p0, p1) = (load(0, b), load(1, b));
                    _mm_storeu_si128(o.add(2 * b), _mm_unpacklo_epi8(p0, p1));
                    _mm_storeu_si128(o.add(2 * b + 1), _mm_unpackhi_epi8(p0, p1));
                }
            }
            4 => {
                for b in 0..blocks {
                    let (p0, p1, p2, p3) = (load(0, b), load(1, b), load(2, b), load(3, b));
                    let (l01, h01) = (_mm_unpacklo_epi8(p0, p1), _mm_unpackhi_epi8(p0, p1));
                    let (l23, h23) = (_mm_unpacklo_epi8(p2, p3), _mm_unpackhi_epi8(p2, p3));
                    _mm_storeu_si128(o.add(4 * b), _mm_unpacklo_epi16(l01, l23));
                    _mm_storeu_si128(o.add(4 * b + 1), _mm_unpackhi_epi16(l01, l23));
                    _mm_storeu_si128(o.add(4 * b + 2), _mm_unpacklo_epi16(h01, h23));
                    _mm_storeu_si128(o.add(4 * b + 3), _mm_unpackhi_epi16(h01, h23));
                }
            }
            8 => {
                for b in 0..blocks {
                    let p: [__m128i; 8] = std::array::from_fn(|k| load(k, b));
                    // Pairs of planes interleaved, then pairs of pairs (bytes 0-3 and
                    // 4-7 of each element), then the two halves of each element.
                    let pair = |k: usize| {
                        (
                            _mm_unpacklo_epi8(p[k], p[k + 1]),
                            _mm_unpackhi_epi8(p[k], p[k + 1]),
                        )
                    };
                    let (l01, h01) = pair(0);
                    let (l23, h23) = pair(2);
                    let (l45, h45) = pair(4);
                    let (l67, h67) = pair(6);
                    for (h, (a, c, e, g)) in [(l01, l23, l45, l67), (h01, h23, h45, h67)]
                        .into_iter()
                        .enumerate()
                    {
                        let (q0, q1) = (_mm_unpacklo_epi16(a, c), _mm_unpackhi_epi16(a, c));
                        let (r0, r1) = (_mm_unpacklo_epi16(e, g), _mm_unpackhi_epi16(e, g));
                        let base = 8 * b + 4 * h;
                        _mm_storeu_si128(o.add(base), _mm_unpacklo_epi32(q0, r0));
                        _mm_storeu_si128(o.add(base + 1), _mm_unpackhi_epi32(q0, r0));
                        _mm_storeu_si128(o.add(base + 2), _mm_unpacklo_epi32(q1, r1));
                        _mm_storeu_si128(o.add(base + 3), _mm_unpackhi_epi32(q1, r1));
                    }
                }
            }
            _ => return 0,
        }
    }
    blocks * 16
}

#[cfg(not(target_arch = "x86_64"))]
fn unshuffle_simd<const E: usize>(_planes: &[&[u8]; E], _out: &mut [u8]) -> usize {
    0
}

/// The inverse of [`shuffle`]. HDF5 leaves trailing bytes that do not fill an element as
/// they are; so does this.
pub(crate) fn unshuffle(data: &[u8], elem: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    unshuffle_into(data, elem, &mut out);
    out
}

/// [`unshuffle`] into `out` (of the same length).
pub(crate) fn unshuffle_into(data: &[u8], elem: usize, out: &mut [u8]) {
    let n = data.len().checked_div(elem).unwrap_or(0);
    if elem <= 1 || n == 0 {
        out.copy_from_slice(data);
        return;
    }
    match elem {
        2 => unshuffle_n::<2>(data, out),
        4 => unshuffle_n::<4>(data, out),
        8 => unshuffle_n::<8>(data, out),
        _ => {
            for (i, o) in out[..n * elem].chunks_exact_mut(elem).enumerate() {
                for (k, b) in o.iter_mut().enumerate() {
                    *b = data[k * n + i];
                }
            }
        }
    }
    out[n * elem..].copy_from_slice(&data[n * elem..]);
}

/// One chunk along the first axis of about 1 MiB, for contiguous datasets.
fn contiguous_chunks(shape: &[usize], itemsize: usize) -> Vec<usize> {
    let row: usize = shape[1..].iter().product::<usize>().max(1) * itemsize.max(1);
    let rows = ((1usize << 20) / row).clamp(1, shape[0].max(1));
    let mut c = shape.to_vec();
    c[0] = rows;
    c.iter().map(|&x| x.max(1)).collect()
}

/// Whether every component of the relative `path` exists (`H5Lexists` fails on a missing
/// intermediate group).
fn link_path_exists(root: i64, path: &str) -> std::result::Result<bool, String> {
    let mut prefix = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if !ffi::link_exists(root, &prefix)? {
            return Ok(false);
        }
    }
    Ok(true)
}

impl ChunkSource for HspyArraySource {
    fn dtype(&self) -> DType {
        self.dtype
    }

    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn read_region(&self, region: &Region) -> std::result::Result<DynArray, BoxError> {
        let shape = self.grid.shape();
        let ok = region.start.len() == shape.len()
            && region.stop.len() == shape.len()
            && region
                .start
                .iter()
                .zip(&region.stop)
                .zip(&shape)
                .all(|((&a, &b), &n)| a <= b && b <= n);
        if !ok {
            return Err(self.err(format!(
                "region {region:?} is outside the array shape {shape:?}"
            )));
        }
        if region.is_empty() {
            return Ok(DynArray::zeros(self.dtype, &region.shape()));
        }
        if let Some(idx) = self.grid.chunk_at(region)
            && self.grid.chunk_region(&idx) == *region
        {
            return self.read_chunk(&idx);
        }
        self.read_hyperslab(region)
    }

    fn read_chunk(&self, index: &[usize]) -> std::result::Result<DynArray, BoxError> {
        let region = self.grid.chunk_region(index);
        if region.is_empty() {
            return Ok(DynArray::zeros(self.dtype, &region.shape()));
        }
        let Some(chunk) = self.layout.chunks.clone() else {
            return self.read_hyperslab(&region);
        };
        let key = || format!("chunk {index:?}");
        let Some((raw, mask)) = self
            .raw_chunk(index)
            .map_err(|e| self.err(format!("{}: {e}", key())))?
        else {
            return self.read_hyperslab(&region);
        };
        let elem = self.elem_size();
        let full = chunk.iter().product::<usize>() * elem;
        let Some((bytes, unshuffle_elem)) = self
            .decode(raw, mask, full)
            .map_err(|e| self.err(format!("cannot decode {}: {e}", key())))?
        else {
            return self.read_hyperslab(&region);
        };
        let rshape = region.shape();
        let swap = self.big_endian();
        let word = match self.stored {
            ArrayDType::Complex { bytes, .. } => bytes / 2,
            _ => elem,
        };
        let result = DynArray::from_bytes_with(self.dtype, &rshape, |out| {
            match unshuffle_elem {
                Some(e) if rshape == chunk => unshuffle_into(&bytes, e, out),
                Some(e) => copy_subchunk(&unshuffle(&bytes, e), &chunk, &rshape, elem, out),
                None if rshape == chunk => out.copy_from_slice(&bytes),
                None => copy_subchunk(&bytes, &chunk, &rshape, elem, out),
            }
            if swap && word > 1 {
                for w in out.chunks_exact_mut(word) {
                    w.reverse();
                }
            }
            Ok(())
        })
        .map_err(|e| self.err(format!("{}: {e}", key())));
        return_buffer(bytes);
        result
    }

    fn cheap_regions(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        format!("{}:{}", self.file, self.path)
    }
}

/// The file space of dataset `ds` with the box at `start` of `shape` selected, and a
/// memory space of that shape: the two spaces of a hyperslab read or write.
fn hyperslab_spaces(
    ds: i64,
    start: &[hsize_t],
    shape: &[usize],
) -> std::result::Result<(ffi::Hid, ffi::Hid), String> {
    // SAFETY: `ds` is a valid dataset id; the returned space is owned by `Hid`.
    let fs = ffi::check_id(unsafe { H5Dget_space(ds) }, "H5Dget_space")?;
    let count: Vec<hsize_t> = shape.iter().map(|&v| v as hsize_t).collect();
    ffi::check(
        // SAFETY: `start` and `count` hold one value per dimension of the space.
        unsafe {
            H5Sselect_hyperslab(
                fs.id(),
                H5S_seloper_t::H5S_SELECT_SET,
                start.as_ptr(),
                std::ptr::null(),
                count.as_ptr(),
                std::ptr::null(),
            )
        },
        "H5Sselect_hyperslab",
    )?;
    Ok((fs, ffi::create_space(shape)?))
}

/// Writes `bytes` (native values of type `mem`, C order, shape `shape`) at `offset` of
/// dataset `ds` through the library's filters. Under the lock.
pub(crate) fn write_hyperslab(
    ds: i64,
    mem: &ArrayDType,
    offset: &[hsize_t],
    shape: &[usize],
    bytes: &[u8],
) -> std::result::Result<(), String> {
    let mt = ffi::create_type(mem)?;
    let (fs, ms) = hyperslab_spaces(ds, offset, shape)?;
    // SAFETY: `ds` is valid; spaces are owned; `bytes` holds the region.
    ffi::check(
        unsafe {
            hdf5_sys::h5d::H5Dwrite(
                ds,
                mt.id(),
                ms.id(),
                fs.id(),
                H5P_DEFAULT,
                bytes.as_ptr().cast::<c_void>(),
            )
        },
        "H5Dwrite",
    )
}

/// Copies the leading `sub` part of a C-order block of shape `full` into `out`.
pub(crate) fn copy_subchunk(
    src: &[u8],
    full: &[usize],
    sub: &[usize],
    elem: usize,
    out: &mut [u8],
) {
    let nd = full.len();
    if nd == 0 {
        out.copy_from_slice(&src[..elem]);
        return;
    }
    let row = sub[nd - 1] * elem;
    let mut fstride = vec![elem; nd];
    for d in (0..nd - 1).rev() {
        fstride[d] = fstride[d + 1] * full[d + 1];
    }
    let rows: usize = sub[..nd - 1].iter().product();
    let mut idx = vec![0usize; nd.saturating_sub(1)];
    for r in 0..rows {
        let off: usize = idx.iter().zip(&fstride).map(|(i, s)| i * s).sum();
        out[r * row..(r + 1) * row].copy_from_slice(&src[off..off + row]);
        for d in (0..nd - 1).rev() {
            idx[d] += 1;
            if idx[d] < sub[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Copies `src` of shape `sub` into the leading part of a zeroed block of shape `full`.
pub(crate) fn pad_to_chunk(src: &[u8], full: &[usize], sub: &[usize], elem: usize) -> Vec<u8> {
    let nd = full.len();
    let total: usize = full.iter().product::<usize>() * elem;
    let mut out = vec![0u8; total];
    if nd == 0 {
        out.copy_from_slice(&src[..elem]);
        return out;
    }
    let row = sub[nd - 1] * elem;
    let mut fstride = vec![elem; nd];
    for d in (0..nd - 1).rev() {
        fstride[d] = fstride[d + 1] * full[d + 1];
    }
    let rows: usize = sub[..nd - 1].iter().product();
    let mut idx = vec![0usize; nd - 1];
    for r in 0..rows {
        let off: usize = idx.iter().zip(&fstride).map(|(i, s)| i * s).sum();
        out[off..off + row].copy_from_slice(&src[r * row..(r + 1) * row]);
        for d in (0..nd - 1).rev() {
            idx[d] += 1;
            if idx[d] < sub[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_round_trips() {
        let data: Vec<u8> = (0..103u32).map(|i| (i * 7) as u8).collect();
        for elem in [1, 2, 3, 4, 8] {
            let s = shuffle(&data[..(data.len() / elem) * elem], elem);
            assert_eq!(unshuffle(&s, elem), data[..(data.len() / elem) * elem]);
        }
        assert_eq!(shuffle(&[1, 2, 3, 4], 2), vec![1, 3, 2, 4]);
    }

    /// The vectorised and blocked unshuffles agree with the definition (byte k of element
    /// i is byte i of plane k; trailing bytes that fill no element stay in place) for
    /// lengths around the 16-element vector and 64-element block sizes.
    #[test]
    fn unshuffle_matches_the_definition() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for elem in [1usize, 2, 3, 4, 5, 8, 16] {
            for n in [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1000, 4099] {
                for extra in [0, elem.saturating_sub(1)] {
                    let data: Vec<u8> = (0..n * elem + extra)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            x as u8
                        })
                        .collect();
                    let mut want = data.clone();
                    for i in 0..n {
                        for k in 0..elem {
                            want[i * elem + k] = data[k * n + i];
                        }
                    }
                    assert_eq!(unshuffle(&data, elem), want, "elem {elem}, n {n}, +{extra}");
                    if extra == 0 {
                        assert_eq!(shuffle(&want, elem), data, "elem {elem}, n {n}");
                    }
                }
            }
        }
    }

    #[test]
    fn pad_and_copy_are_inverse() {
        let full = [3, 4];
        let sub = [2, 3];
        let src: Vec<u8> = (0..6).collect();
        let padded = pad_to_chunk(&src, &full, &sub, 1);
        assert_eq!(padded, vec![0, 1, 2, 0, 3, 4, 5, 0, 0, 0, 0, 0]);
        let mut out = vec![0u8; 6];
        copy_subchunk(&padded, &full, &sub, 1, &mut out);
        assert_eq!(out, src);
    }
}
