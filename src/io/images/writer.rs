//! Writing single-channel TIFFs (atomically) and making the deterministic synthetic scan
//! folder used by `lazyspy demo` and the benchmarks.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2, ArrayView3};
use rayon::prelude::*;
use tiff::encoder::{Compression, DeflateLevel, TiffEncoder, TiffKind, colortype};
use tiff::tags::Predictor;

use super::ImageError;
use crate::dtype::{DType, Element};

/// Compression of a written TIFF.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TiffCompression {
    /// No compression (fastest to write and read).
    #[default]
    None,
    /// Deflate (zlib), fast level.
    Deflate,
    /// LZW.
    Lzw,
    /// PackBits.
    PackBits,
}

/// How [`write_tiff`] writes a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TiffWriteOptions {
    /// The compression of every strip.
    pub compression: TiffCompression,
    /// Horizontal differencing predictor (integer samples only; the `tiff` crate cannot
    /// write the floating-point predictor).
    pub horizontal_predictor: bool,
    /// Write BigTIFF (64-bit offsets) instead of classic TIFF.
    pub bigtiff: bool,
}

/// Element types [`write_tiff`] can write (integers of 8 to 64 bits, float32, float64).
pub trait TiffElement: Element {
    /// Appends one page (`width` × `height`, row-major `data`) to the encoder.
    #[doc(hidden)]
    fn write_page<W: Write + Seek, K: TiffKind>(
        enc: &mut TiffEncoder<W, K>,
        width: u32,
        height: u32,
        data: &[Self],
    ) -> tiff::TiffResult<()>;
}

macro_rules! tiff_element {
    ($t:ty, $c:ty) => {
        impl TiffElement for $t {
            fn write_page<W: Write + Seek, K: TiffKind>(
                enc: &mut TiffEncoder<W, K>,
                width: u32,
                height: u32,
                data: &[Self],
            ) -> tiff::TiffResult<()> {
                enc.write_image::<$c>(width, height, data)
            }
        }
    };
}
tiff_element!(u8, colortype::Gray8);
tiff_element!(u16, colortype::Gray16);
tiff_element!(u32, colortype::Gray32);
tiff_element!(u64, colortype::Gray64);
tiff_element!(i8, colortype::GrayI8);
tiff_element!(i16, colortype::GrayI16);
tiff_element!(i32, colortype::GrayI32);
tiff_element!(i64, colortype::GrayI64);
tiff_element!(f32, colortype::Gray32Float);
tiff_element!(f64, colortype::Gray64Float);

fn werr(path: &Path, reason: impl std::fmt::Display) -> ImageError {
    ImageError::Write {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Writes `data` to `path` atomically: into a temporary file in the same folder, flushed
/// and synced, then renamed over `path` (a reader never sees a partial file; on error the
/// temporary file is removed and `path` is untouched).
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> Result<(), String>,
) -> Result<(), ImageError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| werr(path, "the path has no file name"))?
        .to_string_lossy()
        .into_owned();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| {
            werr(
                path,
                format!("cannot create a temporary file in {}: {e}", dir.display()),
            )
        })?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        write(&mut w).map_err(|e| werr(path, e))?;
        w.flush().map_err(|e| werr(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| werr(path, e))?;
    tmp.persist(path).map_err(|e| werr(path, e.error))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes a single- or multi-page TIFF: `pages` is `(P, H, W)`; each page becomes one
/// image directory. Written atomically (temporary file + rename).
pub fn write_tiff<T: TiffElement>(
    path: &Path,
    pages: ArrayView3<T>,
    options: TiffWriteOptions,
) -> Result<(), ImageError> {
    let (p, h, w) = pages.dim();
    if p == 0 || h == 0 || w == 0 {
        return Err(werr(
            path,
            format!("cannot write an empty image of shape {:?}", [p, h, w]),
        ));
    }
    let (h32, w32) = (
        u32::try_from(h).map_err(|_| werr(path, "image too tall"))?,
        u32::try_from(w).map_err(|_| werr(path, "image too wide"))?,
    );
    if options.horizontal_predictor && matches!(T::DTYPE, DType::F32 | DType::F64) {
        return Err(werr(
            path,
            "the horizontal predictor applies to integer samples only",
        ));
    }
    let compression = match options.compression {
        TiffCompression::None => Compression::Uncompressed,
        TiffCompression::Deflate => Compression::Deflate(DeflateLevel::Fast),
        TiffCompression::Lzw => Compression::Lzw,
        TiffCompression::PackBits => Compression::Packbits,
    };
    let predictor = if options.horizontal_predictor {
        Predictor::Horizontal
    } else {
        Predictor::None
    };
    let pages = pages.as_standard_layout();
    let data = pages.as_slice().expect("standard layout is contiguous");
    write_atomically(path, |out| {
        fn run<W: Write + Seek, K: TiffKind, T: TiffElement>(
            enc: TiffEncoder<W, K>,
            compression: Compression,
            predictor: Predictor,
            data: &[T],
            page_len: usize,
            w: u32,
            h: u32,
        ) -> Result<(), String> {
            let mut enc = enc.with_compression(compression).with_predictor(predictor);
            for page in data.chunks(page_len) {
                T::write_page(&mut enc, w, h, page).map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        if options.bigtiff {
            let enc = TiffEncoder::new_big(out).map_err(|e| e.to_string())?;
            run(enc, compression, predictor, data, h * w, w32, h32)
        } else {
            let enc = TiffEncoder::new(out).map_err(|e| e.to_string())?;
            run(enc, compression, predictor, data, h * w, w32, h32)
        }
    })
}

/// Writes one float32 image as an uncompressed single-page TIFF, atomically.
pub fn write_tiff_f32(path: &Path, image: ArrayView2<f32>) -> Result<(), ImageError> {
    write_tiff(
        path,
        image.insert_axis(ndarray::Axis(0)),
        TiffWriteOptions::default(),
    )
}

/// The synthetic scan folder of `lazyspy demo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoScanConfig {
    /// Number of images.
    pub count: usize,
    /// Width and height of each image.
    pub size: usize,
    /// Compression of the files.
    pub compression: TiffCompression,
}

impl Default for DemoScanConfig {
    /// 64 uncompressed float32 images of 2048 × 2048.
    fn default() -> Self {
        DemoScanConfig {
            count: 64,
            size: 2048,
            compression: TiffCompression::None,
        }
    }
}

/// SplitMix64: a fast, well-mixed 64-bit hash.
#[inline]
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform value in `[0, 1)` from a hash.
#[inline]
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Image `index` of the synthetic scan map: a smooth separable sinusoid, a few Gaussian
/// blobs and hash-based white noise (deterministic: the same arguments always give the
/// same bits). Values lie roughly in `[0, 3]`.
pub fn demo_scan_image(index: usize, size: usize) -> Array2<f32> {
    let seed = splitmix(0x5CA7_u64 ^ ((index as u64) << 20));
    let r = |k: u64| unit(splitmix(seed ^ k.wrapping_mul(0xA24B_AED4_963E_E407)));
    let n = size.max(1) as f64;
    let tau = std::f64::consts::TAU;
    // Smooth part: 1 + 0.4 sin(2π fy y/n + φ) cos(2π fx x/n + ψ), separable.
    let (fy, fx) = (1.0 + 3.0 * r(1), 1.0 + 3.0 * r(2));
    let (py, px) = (tau * r(3), tau * r(4));
    let rows: Vec<f32> = (0..size)
        .map(|y| (0.4 * (tau * fy * y as f64 / n + py).sin()) as f32)
        .collect();
    let cols: Vec<f32> = (0..size)
        .map(|x| (tau * fx * x as f64 / n + px).cos() as f32)
        .collect();
    let mut img = Array2::<f32>::zeros((size, size));
    // Noise: a 32-bit hash of (index, y, x), scaled to ±0.05.
    let base = (index as u32).wrapping_mul(0x9E37_79B1);
    for (y, mut row) in img.rows_mut().into_iter().enumerate() {
        let ry = rows[y];
        let hy = base ^ (y as u32).wrapping_mul(0x85EB_CA77);
        let out = row.as_slice_mut().expect("contiguous row");
        for (x, (o, &c)) in out.iter_mut().zip(&cols).enumerate() {
            let mut h = hy ^ (x as u32).wrapping_mul(0xC2B2_AE3D);
            h ^= h >> 15;
            h = h.wrapping_mul(0x2C1B_3C6D);
            h ^= h >> 12;
            h = h.wrapping_mul(0x297A_2D39);
            h ^= h >> 15;
            let noise = (h >> 8) as f32 * (0.1 / (1u32 << 24) as f32) - 0.05;
            *o = 1.0 + ry * c + noise;
        }
    }
    // Gaussian blobs: separable, added inside their ±4σ box.
    for b in 0..6u64 {
        let amp = (0.5 + 1.5 * r(10 + 4 * b)) as f32;
        let cy = r(11 + 4 * b) * n;
        let cx = r(12 + 4 * b) * n;
        let s = n * (0.01 + 0.05 * r(13 + 4 * b));
        let (y0, y1) = (
            ((cy - 4.0 * s).floor().max(0.0)) as usize,
            ((cy + 4.0 * s).ceil().min(n)) as usize,
        );
        let (x0, x1) = (
            ((cx - 4.0 * s).floor().max(0.0)) as usize,
            ((cx + 4.0 * s).ceil().min(n)) as usize,
        );
        let gx: Vec<f32> = (x0..x1)
            .map(|x| (-((x as f64 - cx) / s).powi(2) / 2.0).exp() as f32)
            .collect();
        for y in y0..y1 {
            let gy = amp * (-((y as f64 - cy) / s).powi(2) / 2.0).exp() as f32;
            let mut row = img.row_mut(y);
            let out = &mut row.as_slice_mut().expect("contiguous row")[x0..x1];
            for (o, &g) in out.iter_mut().zip(&gx) {
                *o += gy * g;
            }
        }
    }
    img
}

/// The file name of demo image `index` of `count` (`scan_007.tif`).
fn demo_name(index: usize, count: usize) -> String {
    let digits = count.saturating_sub(1).to_string().len().max(3);
    format!("scan_{index:0digits$}.tif")
}

/// Whether `path` already holds a complete demo image of this configuration: a valid
/// single-page float32 TIFF of the right size (files are written atomically, so a valid
/// header means a whole file; an uncompressed one must also be long enough).
fn demo_file_ok(path: &Path, config: &DemoScanConfig) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let Ok(h) = super::formats::probe(path) else {
        return false;
    };
    let size = config.size;
    h.format == super::ImageFormat::Tiff
        && h.pages == 1
        && (h.height, h.width, h.dtype) == (size, size, DType::F32)
        && (config.compression != TiffCompression::None || meta.len() >= (size * size * 4) as u64)
}

/// Makes (or reuses) the synthetic scan folder: `n` float32 `size` × `size` uncompressed
/// TIFFs named `scan_000.tif`, ... in `dir` (created if needed), generated in parallel.
/// Files already present and complete (a valid single-page float32 TIFF of the right size)
/// are kept; missing or damaged ones are (re)written atomically. Returns the paths in
/// order.
pub fn make_demo_scans(dir: &Path, n: usize, size: usize) -> Result<Vec<PathBuf>, ImageError> {
    make_demo_scans_with(
        dir,
        DemoScanConfig {
            count: n,
            size,
            ..DemoScanConfig::default()
        },
    )
}

/// [`make_demo_scans`] with every option.
pub fn make_demo_scans_with(
    dir: &Path,
    config: DemoScanConfig,
) -> Result<Vec<PathBuf>, ImageError> {
    std::fs::create_dir_all(dir).map_err(|e| werr(dir, e))?;
    let paths: Vec<PathBuf> = (0..config.count)
        .map(|i| dir.join(demo_name(i, config.count)))
        .collect();
    paths.par_iter().enumerate().try_for_each(|(i, path)| {
        if demo_file_ok(path, &config) {
            return Ok(());
        }
        let img = demo_scan_image(i, config.size);
        write_tiff(
            path,
            img.view().insert_axis(ndarray::Axis(0)),
            TiffWriteOptions {
                compression: config.compression,
                ..TiffWriteOptions::default()
            },
        )
    })?;
    Ok(paths)
}
