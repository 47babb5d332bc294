//! Per-format header probing (no pixel data decoded) and page decoding.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use ndarray::{Array2, ArrayD};

use super::ImageError;
use crate::dtype::DType;
use crate::dynarray::DynArray;

/// The file formats an image stack can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// TIFF or BigTIFF (any number of pages).
    Tiff,
    /// NumPy `.npy` (2-D: one image; 3-D: pages).
    Npy,
    /// PNG (grayscale, 8 or 16 bits).
    Png,
    /// JPEG (grayscale).
    Jpeg,
}

impl ImageFormat {
    /// The format's usual name.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Tiff => "TIFF",
            ImageFormat::Npy => "NPY",
            ImageFormat::Png => "PNG",
            ImageFormat::Jpeg => "JPEG",
        }
    }
}

/// What opening a file learns from its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// The file format.
    pub format: ImageFormat,
    /// Number of pages (1 for a single image).
    pub pages: usize,
    /// Image height (rows).
    pub height: usize,
    /// Image width (columns).
    pub width: usize,
    /// Element type.
    pub dtype: DType,
    /// For an ImageJ stack stored with one directory (pages contiguous and uncompressed
    /// after the first page's data): the byte offset of page 0 and whether the samples are
    /// big-endian.
    pub(crate) contiguous: Option<(u64, bool)>,
}

fn io_err(path: &Path, source: std::io::Error) -> ImageError {
    ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> ImageError {
    ImageError::Format {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn unsupported(path: &Path, reason: impl Into<String>) -> ImageError {
    ImageError::Unsupported {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn open(path: &Path) -> Result<BufReader<File>, ImageError> {
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(bad(path, "is a directory, not an image file"));
    }
    Ok(BufReader::new(f))
}

/// Recognises the format from the file's first bytes.
pub fn sniff(path: &Path) -> Result<ImageFormat, ImageError> {
    let mut r = open(path)?;
    let mut magic = [0u8; 8];
    let mut n = 0;
    while n < magic.len() {
        match r.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path, e)),
        }
    }
    let m = &magic[..n];
    if m.starts_with(b"II*\0")
        || m.starts_with(b"MM\0*")
        || m.starts_with(b"II+\0")
        || m.starts_with(b"MM\0+")
    {
        Ok(ImageFormat::Tiff)
    } else if m.starts_with(b"\x93NUMPY") {
        Ok(ImageFormat::Npy)
    } else if m.starts_with(b"\x89PNG\r\n\x1a\n") {
        Ok(ImageFormat::Png)
    } else if m.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Ok(ImageFormat::Jpeg)
    } else if n == 0 {
        Err(bad(path, "the file is empty"))
    } else {
        Err(unsupported(
            path,
            "not a TIFF, NPY, PNG or JPEG file (unrecognised signature)",
        ))
    }
}

/// Reads the header of a file (all pages' headers for a TIFF), never its pixel data.
pub fn probe(path: &Path) -> Result<ImageHeader, ImageError> {
    match sniff(path)? {
        ImageFormat::Tiff => probe_tiff(path),
        ImageFormat::Npy => probe_npy(path),
        ImageFormat::Png => probe_png(path),
        ImageFormat::Jpeg => probe_jpeg(path),
    }
}

/// Decodes page `page` of a file as a 2-D array `(height, width)`, checking it against the
/// header the stack was opened with.
pub fn decode_page(path: &Path, header: &ImageHeader, page: usize) -> Result<DynArray, ImageError> {
    let a = match header.format {
        ImageFormat::Tiff => match header.contiguous {
            Some((offset, big)) => decode_contiguous(path, header, page, offset, big)?,
            None => decode_tiff(path, page)?,
        },
        ImageFormat::Npy => decode_npy(path, page)?,
        ImageFormat::Png => decode_png(path)?,
        ImageFormat::Jpeg => decode_jpeg(path)?,
    };
    if a.shape() != [header.height, header.width] || a.dtype() != header.dtype {
        return Err(bad(
            path,
            format!(
                "page {page} decoded as {} {:?}, but the header said {} {:?} (was the file changed after the stack was opened?)",
                a.dtype(),
                a.shape(),
                header.dtype,
                [header.height, header.width]
            ),
        ));
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------
// TIFF

use tiff::ColorType;
use tiff::decoder::{Decoder, Limits};
use tiff::tags::SampleFormat;

fn tiff_decoder(path: &Path) -> Result<Decoder<BufReader<File>>, ImageError> {
    let r = open(path)?;
    Ok(Decoder::new(r)
        .map_err(|e| tiff_err(path, e))?
        .with_limits(Limits::unlimited()))
}

fn tiff_err(path: &Path, e: tiff::TiffError) -> ImageError {
    match e {
        tiff::TiffError::IoError(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => {
            io_err(path, io)
        }
        tiff::TiffError::IoError(io) => bad(path, format!("truncated TIFF ({io})")),
        tiff::TiffError::UnsupportedError(u) => unsupported(path, format!("TIFF: {u}")),
        other => bad(path, format!("TIFF: {other}")),
    }
}

/// The dtype and shape of the decoder's current page.
fn tiff_page(
    path: &Path,
    dec: &mut Decoder<BufReader<File>>,
    page: usize,
) -> Result<(usize, usize, DType), ImageError> {
    let (w, h) = dec.dimensions().map_err(|e| tiff_err(path, e))?;
    let color = dec.colortype().map_err(|e| tiff_err(path, e))?;
    let bits = match color {
        ColorType::Gray(b) => b,
        ColorType::Multiband {
            bit_depth,
            num_samples: 1,
        } => bit_depth,
        ColorType::Palette(_) => {
            return Err(unsupported(
                path,
                format!(
                    "page {page} is a palette (colour-mapped) image; only single-channel images are supported"
                ),
            ));
        }
        other => {
            return Err(unsupported(
                path,
                format!(
                    "page {page} has colour type {other:?}; only single-channel (grayscale) images are supported (split the channels into separate files)"
                ),
            ));
        }
    };
    let layout = dec.image_buffer_layout().map_err(|e| tiff_err(path, e))?;
    let dtype = match (layout.sample_format, bits) {
        (SampleFormat::Uint, 8) => DType::U8,
        (SampleFormat::Uint, 16) => DType::U16,
        (SampleFormat::Uint, 32) => DType::U32,
        (SampleFormat::Uint, 64) => DType::U64,
        (SampleFormat::Int, 8) => DType::I8,
        (SampleFormat::Int, 16) => DType::I16,
        (SampleFormat::Int, 32) => DType::I32,
        (SampleFormat::Int, 64) => DType::I64,
        (SampleFormat::IEEEFP, 32) => DType::F32,
        (SampleFormat::IEEEFP, 64) => DType::F64,
        (fmt, bits) => {
            return Err(unsupported(
                path,
                format!(
                    "page {page}: {bits}-bit samples of format {fmt:?} (supported: 8/16/32/64-bit integers, 32/64-bit floats)"
                ),
            ));
        }
    };
    Ok((h as usize, w as usize, dtype))
}

fn probe_tiff(path: &Path) -> Result<ImageHeader, ImageError> {
    let mut dec = tiff_decoder(path)?;
    let (height, width, dtype) = tiff_page(path, &mut dec, 0)?;
    let mut pages = 1;
    while dec.more_images() {
        dec.next_image().map_err(|e| tiff_err(path, e))?;
        let (h, w, d) = tiff_page(path, &mut dec, pages)?;
        if (h, w, d) != (height, width, dtype) {
            return Err(bad(
                path,
                format!(
                    "page {pages} is {d} {:?} but page 0 is {dtype} {:?}; every page of a multi-page TIFF must have the same shape and dtype",
                    [h, w],
                    [height, width]
                ),
            ));
        }
        pages += 1;
    }
    let mut contiguous = None;
    if pages == 1 {
        dec.seek_to_image(0).map_err(|e| tiff_err(path, e))?;
        if let Some(n) = imagej_images(&mut dec)
            && n > 1
        {
            contiguous = Some(imagej_contiguous(
                path,
                &mut dec,
                n,
                height * width * dtype.size(),
            )?);
            pages = n;
        }
    }
    Ok(ImageHeader {
        format: ImageFormat::Tiff,
        pages,
        height,
        width,
        dtype,
        contiguous,
    })
}

/// The `images=N` of an ImageJ description (`ImageJ=...` in tag ImageDescription).
fn imagej_images(dec: &mut Decoder<BufReader<File>>) -> Option<usize> {
    let desc = dec
        .get_tag_ascii_string(tiff::tags::Tag::ImageDescription)
        .ok()?;
    if !desc.starts_with("ImageJ=") {
        return None;
    }
    desc.lines()
        .find_map(|l| l.strip_prefix("images="))
        .and_then(|v| v.trim().parse().ok())
}

/// An ImageJ stack of `n` pages written with a single directory (as ImageJ and tifffile do
/// for stacks over 4 GB): the pages follow one another, uncompressed, from the first
/// page's first strip. Returns that offset and whether the data is big-endian.
fn imagej_contiguous(
    path: &Path,
    dec: &mut Decoder<BufReader<File>>,
    n: usize,
    page_bytes: usize,
) -> Result<(u64, bool), ImageError> {
    use tiff::tags::Tag;
    let compression: u16 = dec
        .find_tag_unsigned(Tag::Compression)
        .map_err(|e| tiff_err(path, e))?
        .unwrap_or(1);
    if compression != 1 {
        return Err(unsupported(
            path,
            format!("ImageJ stack of {n} images in one compressed directory"),
        ));
    }
    if dec.find_tag(Tag::TileOffsets).ok().flatten().is_some() {
        return Err(unsupported(
            path,
            format!("tiled ImageJ stack of {n} images in one directory"),
        ));
    }
    let offsets = dec
        .get_tag_u64_vec(Tag::StripOffsets)
        .map_err(|e| tiff_err(path, e))?;
    let counts = dec
        .get_tag_u64_vec(Tag::StripByteCounts)
        .map_err(|e| tiff_err(path, e))?;
    let first = *offsets
        .first()
        .ok_or_else(|| bad(path, "no strip offsets"))?;
    let mut next = first;
    for (o, c) in offsets.iter().zip(&counts) {
        if *o != next {
            return Err(unsupported(
                path,
                format!("ImageJ stack of {n} images in one directory with non-contiguous strips"),
            ));
        }
        next = o + c;
    }
    let need = first + (n * page_bytes) as u64;
    let len = std::fs::metadata(path).map_err(|e| io_err(path, e))?.len();
    if len < need {
        return Err(bad(
            path,
            format!("truncated ImageJ stack: {len} bytes, {n} images need {need}"),
        ));
    }
    let big = dec.byte_order() == tiff::tags::ByteOrder::BigEndian;
    Ok((first, big))
}

/// Reads page `page` of a contiguous ImageJ stack directly.
fn decode_contiguous(
    path: &Path,
    header: &ImageHeader,
    page: usize,
    offset: u64,
    big: bool,
) -> Result<DynArray, ImageError> {
    let (h, w, dtype) = (header.height, header.width, header.dtype);
    let n = h * w * dtype.size();
    let mut r = open(path)?;
    r.seek(SeekFrom::Start(offset + (page * n) as u64))
        .map_err(|e| io_err(path, e))?;
    let mut bytes = vec![0u8; n];
    r.read_exact(&mut bytes).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            bad(path, format!("truncated ImageJ stack (page {page})"))
        } else {
            io_err(path, e)
        }
    })?;
    if big != cfg!(target_endian = "big") && dtype.size() > 1 {
        for c in bytes.chunks_exact_mut(dtype.size()) {
            c.reverse();
        }
    }
    DynArray::from_bytes(dtype, &[h, w], &bytes).map_err(|e| bad(path, e))
}

/// Sample types a TIFF page decodes to: plain numbers, every bit pattern a valid value.
trait TiffSample: Copy + Default + crate::dtype::Element {}
impl TiffSample for u8 {}
impl TiffSample for u16 {}
impl TiffSample for u32 {}
impl TiffSample for u64 {}
impl TiffSample for i8 {}
impl TiffSample for i16 {}
impl TiffSample for i32 {}
impl TiffSample for i64 {}
impl TiffSample for f32 {}
impl TiffSample for f64 {}

fn sample_bytes_mut<T: TiffSample>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: `TiffSample` types are integers and floats: no padding, and every bit
    // pattern the decoder writes is a valid value. The length is the slice's byte size.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// Decodes the current page into a fresh `(h, w)` array; the buffer is allocated
/// fallibly, so a header announcing an impossible size gives an error, not an abort.
fn read_tiff_page<T: TiffSample>(
    path: &Path,
    dec: &mut Decoder<BufReader<File>>,
    page: usize,
    h: usize,
    w: usize,
) -> Result<DynArray, ImageError> {
    let n = h
        .checked_mul(w)
        .ok_or_else(|| bad(path, format!("page {page}: {h}x{w} is too large")))?;
    let mut v: Vec<T> = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        bad(
            path,
            format!(
                "page {page}: cannot allocate {} bytes for a {h}x{w} image",
                n as u128 * std::mem::size_of::<T>() as u128
            ),
        )
    })?;
    v.resize(n, T::default());
    let tiled = dec.get_chunk_type() == tiff::decoder::ChunkType::Tile;
    let (tile_w, tile_h) = if tiled {
        dec.chunk_dimensions()
    } else {
        (0, 0)
    };
    if tiled && tile_w > 0 && !w.is_multiple_of(tile_w as usize) {
        read_tiles_whole::<T>(path, dec, &mut v, w, tile_w as usize, tile_h as usize)?;
    } else {
        dec.read_image_bytes(sample_bytes_mut(&mut v))
            .map_err(|e| tiff_err(path, e))?;
    }
    Ok(DynArray::from_array(
        Array2::from_shape_vec((h, w), v)
            .map_err(|e| bad(path, e))?
            .into_dyn(),
    ))
}

/// Reads a tiled image whose right column of tiles sticks out of the image, one whole tile
/// at a time (padding included) and copies the data part of each into `out` (`w` wide).
///
/// Works around the `tiff` crate 0.11.3, whose whole-image read decodes such edge tiles
/// row by row and fails on LZW tiles ("no lzw end code found"); reading full-width tile
/// rows takes its other path.
fn read_tiles_whole<T: TiffSample>(
    path: &Path,
    dec: &mut Decoder<BufReader<File>>,
    out: &mut [T],
    w: usize,
    tile_w: usize,
    tile_h: usize,
) -> Result<(), ImageError> {
    let size = std::mem::size_of::<T>();
    let across = w.div_ceil(tile_w);
    let tiles = dec.tile_count().map_err(|e| tiff_err(path, e))? as usize;
    let mut buf = tiff::decoder::DecodingResult::U8(Vec::new());
    for t in 0..tiles {
        let (dw, dh) = dec.chunk_data_dimensions(t as u32);
        let (dw, dh) = (dw as usize, dh as usize);
        dec.read_chunk_to_buffer(&mut buf, t as u32, tile_w * size)
            .map_err(|e| tiff_err(path, e))?;
        let decoded = buf.as_buffer(0);
        let bytes = decoded.as_bytes();
        let (y0, x0) = ((t / across) * tile_h, (t % across) * tile_w);
        for r in 0..dh {
            let src = bytes
                .get(r * tile_w * size..(r * tile_w + dw) * size)
                .ok_or_else(|| bad(path, format!("tile {t} decoded short")))?;
            let start = (y0 + r) * w + x0;
            let dst = out
                .get_mut(start..start + dw)
                .ok_or_else(|| bad(path, format!("tile {t} lies outside the image")))?;
            sample_bytes_mut(dst).copy_from_slice(src);
        }
    }
    Ok(())
}

fn decode_tiff(path: &Path, page: usize) -> Result<DynArray, ImageError> {
    let mut dec = tiff_decoder(path)?;
    if page > 0 {
        dec.seek_to_image(page).map_err(|e| tiff_err(path, e))?;
    }
    let (h, w, dtype) = tiff_page(path, &mut dec, page)?;
    match dtype {
        DType::U8 => read_tiff_page::<u8>(path, &mut dec, page, h, w),
        DType::U16 => read_tiff_page::<u16>(path, &mut dec, page, h, w),
        DType::U32 => read_tiff_page::<u32>(path, &mut dec, page, h, w),
        DType::U64 => read_tiff_page::<u64>(path, &mut dec, page, h, w),
        DType::I8 => read_tiff_page::<i8>(path, &mut dec, page, h, w),
        DType::I16 => read_tiff_page::<i16>(path, &mut dec, page, h, w),
        DType::I32 => read_tiff_page::<i32>(path, &mut dec, page, h, w),
        DType::I64 => read_tiff_page::<i64>(path, &mut dec, page, h, w),
        DType::F32 => read_tiff_page::<f32>(path, &mut dec, page, h, w),
        DType::F64 => read_tiff_page::<f64>(path, &mut dec, page, h, w),
        other => Err(unsupported(path, format!("{other} samples"))),
    }
}

// ---------------------------------------------------------------------------------------
// NPY

use ndarray_npy::npy::header::Header as NpyHeader;

fn npy_dtype(path: &Path, descr: &str) -> Result<DType, ImageError> {
    // `descr` is a Python literal such as '<f4'; structured dtypes are lists.
    let d = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let (order, code) = match d.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &d[1..]),
        _ => ('|', d),
    };
    let _ = order;
    Ok(match code {
        "b1" | "?" => DType::Bool,
        "u1" | "B" => DType::U8,
        "u2" => DType::U16,
        "u4" => DType::U32,
        "u8" => DType::U64,
        "i1" | "b" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "f4" => DType::F32,
        "f8" => DType::F64,
        _ => {
            return Err(unsupported(
                path,
                format!("NPY dtype {descr} (supported: bool, integers, float32, float64)"),
            ));
        }
    })
}

/// The parsed header, the dtype, and the byte offset where the data starts.
fn npy_header(path: &Path) -> Result<(NpyHeader, DType, u64), ImageError> {
    let mut r = open(path)?;
    let header =
        NpyHeader::from_reader(&mut r).map_err(|e| bad(path, format!("NPY header: {e}")))?;
    let data_start = r.stream_position().map_err(|e| io_err(path, e))?;
    let dtype = npy_dtype(path, &header.type_descriptor.to_string())?;
    Ok((header, dtype, data_start))
}

fn probe_npy(path: &Path) -> Result<ImageHeader, ImageError> {
    let (header, dtype, data_start) = npy_header(path)?;
    let (pages, height, width) = match header.shape[..] {
        [h, w] => (1, h, w),
        [p, h, w] => (p, h, w),
        ref s => {
            return Err(unsupported(
                path,
                format!("NPY array of shape {s:?}; an image file must be 2-D (or 3-D: pages)"),
            ));
        }
    };
    // The data must be all there: a truncated file is caught at open, not at compute time.
    let need = data_start + (pages * height * width * dtype.size()) as u64;
    let len = std::fs::metadata(path).map_err(|e| io_err(path, e))?.len();
    if len < need {
        return Err(bad(
            path,
            format!("truncated NPY file: {len} bytes, the header announces {need}"),
        ));
    }
    Ok(ImageHeader {
        format: ImageFormat::Npy,
        pages,
        height,
        width,
        dtype,
        contiguous: None,
    })
}

fn decode_npy(path: &Path, page: usize) -> Result<DynArray, ImageError> {
    use ndarray_npy::ReadNpyExt;
    let (header, dtype, data_start) = npy_header(path)?;
    if header.shape.len() == 3 && !header.layout.is_fortran() && dtype != DType::Bool {
        // One page of a C-order stack: read just its bytes.
        let (h, w) = (header.shape[1], header.shape[2]);
        let n = h * w * dtype.size();
        let mut r = open(path)?;
        r.seek(SeekFrom::Start(data_start + (page * n) as u64))
            .map_err(|e| io_err(path, e))?;
        let mut bytes = vec![0u8; n];
        r.read_exact(&mut bytes).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                bad(path, format!("truncated NPY file (page {page})"))
            } else {
                io_err(path, e)
            }
        })?;
        let descr = header.type_descriptor.to_string();
        let big = descr
            .trim_matches(|c| c == '\'' || c == '"')
            .starts_with('>');
        if big != cfg!(target_endian = "big") && dtype.size() > 1 {
            for c in bytes.chunks_exact_mut(dtype.size()) {
                c.reverse();
            }
        }
        return DynArray::from_bytes(dtype, &[h, w], &bytes).map_err(|e| bad(path, e));
    }
    let r = open(path)?;
    macro_rules! rd {
        ($t:ty) => {{
            let a = ArrayD::<$t>::read_npy(r).map_err(|e| bad(path, format!("NPY: {e}")))?;
            let a = if header.shape.len() == 3 {
                a.index_axis_move(ndarray::Axis(0), page)
            } else {
                a
            };
            DynArray::from_array(a.as_standard_layout().into_owned())
        }};
    }
    Ok(match dtype {
        DType::Bool => rd!(bool),
        DType::U8 => rd!(u8),
        DType::U16 => rd!(u16),
        DType::U32 => rd!(u32),
        DType::U64 => rd!(u64),
        DType::I8 => rd!(i8),
        DType::I16 => rd!(i16),
        DType::I32 => rd!(i32),
        DType::I64 => rd!(i64),
        DType::F32 => rd!(f32),
        DType::F64 => rd!(f64),
        DType::C64 | DType::C128 => return Err(unsupported(path, "complex NPY data")),
    })
}

// ---------------------------------------------------------------------------------------
// PNG

fn png_reader(path: &Path) -> Result<png::Reader<BufReader<File>>, ImageError> {
    let mut dec = png::Decoder::new_with_limits(open(path)?, png::Limits { bytes: usize::MAX });
    dec.set_transformations(png::Transformations::IDENTITY);
    dec.read_info().map_err(|e| png_err(path, e))
}

fn png_err(path: &Path, e: png::DecodingError) -> ImageError {
    match e {
        png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            bad(path, format!("truncated PNG ({io})"))
        }
        png::DecodingError::IoError(io) => io_err(path, io),
        other => bad(path, format!("PNG: {other}")),
    }
}

fn probe_png(path: &Path) -> Result<ImageHeader, ImageError> {
    let reader = png_reader(path)?;
    let info = reader.info();
    let dtype = match (info.color_type, info.bit_depth) {
        (png::ColorType::Grayscale, png::BitDepth::Eight) => DType::U8,
        (png::ColorType::Grayscale, png::BitDepth::Sixteen) => DType::U16,
        (ct, bd) => {
            return Err(unsupported(
                path,
                format!(
                    "PNG of colour type {ct:?} with {bd:?} bits; only 8- and 16-bit grayscale PNGs are supported"
                ),
            ));
        }
    };
    Ok(ImageHeader {
        format: ImageFormat::Png,
        pages: 1,
        height: info.height as usize,
        width: info.width as usize,
        dtype,
        contiguous: None,
    })
}

fn decode_png(path: &Path) -> Result<DynArray, ImageError> {
    let mut reader = png_reader(path)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad(path, "PNG image too large"))?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf).map_err(|e| png_err(path, e))?;
    let (h, w) = (frame.height as usize, frame.width as usize);
    let line = frame.line_size;
    match frame.bit_depth {
        png::BitDepth::Eight => {
            let mut v = Vec::with_capacity(h * w);
            for row in buf.chunks(line).take(h) {
                v.extend_from_slice(&row[..w]);
            }
            Ok(DynArray::from_array(
                Array2::from_shape_vec((h, w), v)
                    .map_err(|e| bad(path, e))?
                    .into_dyn(),
            ))
        }
        png::BitDepth::Sixteen => {
            let mut v = Vec::with_capacity(h * w);
            for row in buf.chunks(line).take(h) {
                v.extend(
                    row[..2 * w]
                        .chunks_exact(2)
                        .map(|b| u16::from_be_bytes([b[0], b[1]])),
                );
            }
            Ok(DynArray::from_array(
                Array2::from_shape_vec((h, w), v)
                    .map_err(|e| bad(path, e))?
                    .into_dyn(),
            ))
        }
        other => Err(unsupported(path, format!("PNG bit depth {other:?}"))),
    }
}

// ---------------------------------------------------------------------------------------
// JPEG

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

fn jpeg_decoder(path: &Path) -> Result<JpegDecoder<BufReader<File>>, ImageError> {
    let options = DecoderOptions::default()
        .set_max_width(1 << 16)
        .set_max_height(1 << 16)
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut dec = JpegDecoder::new_with_options(open(path)?, options);
    dec.decode_headers()
        .map_err(|e| bad(path, format!("JPEG: {e:?}")))?;
    let comps = dec.info().map(|i| i.components).unwrap_or(0);
    if comps != 1 {
        return Err(unsupported(
            path,
            format!("JPEG with {comps} colour components; only grayscale JPEGs are supported"),
        ));
    }
    Ok(dec)
}

fn probe_jpeg(path: &Path) -> Result<ImageHeader, ImageError> {
    let dec = jpeg_decoder(path)?;
    let info = dec
        .info()
        .ok_or_else(|| bad(path, "JPEG: no frame header"))?;
    Ok(ImageHeader {
        format: ImageFormat::Jpeg,
        pages: 1,
        height: info.height as usize,
        width: info.width as usize,
        dtype: DType::U8,
        contiguous: None,
    })
}

fn decode_jpeg(path: &Path) -> Result<DynArray, ImageError> {
    let mut dec = jpeg_decoder(path)?;
    let pixels = dec
        .decode()
        .map_err(|e| bad(path, format!("JPEG: {e:?}")))?;
    let info = dec
        .info()
        .ok_or_else(|| bad(path, "JPEG: no frame header"))?;
    let (h, w) = (info.height as usize, info.width as usize);
    if pixels.len() != h * w {
        return Err(bad(
            path,
            format!("JPEG decoded to {} bytes, expected {}", pixels.len(), h * w),
        ));
    }
    Ok(DynArray::from_array(
        Array2::from_shape_vec((h, w), pixels)
            .map_err(|e| bad(path, e))?
            .into_dyn(),
    ))
}
