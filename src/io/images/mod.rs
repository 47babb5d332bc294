//! Image stacks: a folder of image files (TIFF, NPY, PNG, JPEG) read lazily as one array.
//!
//! [`ImageStack::open`] takes a list of paths, a glob pattern (`"scans/*.tif"`, expanded
//! with the `glob` crate) or a folder, sorts the files in natural order (`img2` before
//! `img10`, see [`natural_cmp`]) and reads every file's *header* (never its pixels): every
//! file must have the shape, dtype and page count of the first, or opening fails with an
//! [`ImageError`] naming the file. Pixels are decoded only when a chunk is computed, one
//! image (one TIFF page) per task.
//!
//! Shapes: `N` single-image files give `(N, H, W)`; `N` files of `P` pages each (multi-page
//! TIFF, ImageJ stacks, 3-D `.npy`) give `(N, P, H, W)`; a single file of `P > 1` pages gives
//! `(P, H, W)`. The chunk grid has one image per chunk: `(1, H, W)` or `(1, 1, H, W)`.
//!
//! Formats and sample types:
//! - TIFF and BigTIFF through the `tiff` crate: 8/16/32/64-bit signed and unsigned integers,
//!   32/64-bit floats; uncompressed, deflate, LZW, zstd, PackBits (and JPEG-in-TIFF), with
//!   horizontal or floating-point predictors; striped or tiled; any number of pages (every
//!   page the same shape and dtype).
//! - NPY (`ndarray-npy`): 2-D (one image) or 3-D (pages), bool, integers, float32/64, C or
//!   Fortran order, either byte order.
//! - PNG: 8- and 16-bit grayscale. JPEG (`zune-jpeg`): 8-bit grayscale.
//!
//! **Colour images are rejected** with [`ImageError::Unsupported`] (RGB, RGBA,
//! grayscale+alpha, palette, CMYK, YCbCr, and colour JPEGs): the stack is a stack of
//! single-channel images; split channels into separate files first.
//!
//! A file that is corrupt beyond its header (a truncated strip, bad compressed data) is
//! found when its chunk is computed: the task fails with an error whose message names the
//! file (an [`ImageError`] boxed into the engine's task error).
//!
//! ```no_run
//! use lazyspy::io::images::ImageStack;
//! let stack = ImageStack::open("scans/*.tif").unwrap();
//! println!("{} files, shape {:?}, {}", stack.paths().len(), stack.shape(), stack.dtype());
//! let signal = lazyspy::io::images::from_files("scans/*.tif").unwrap();
//! ```

mod formats;
mod natural;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

pub use formats::{ImageFormat, ImageHeader};
pub use natural::{natural_cmp, natural_path_cmp, natural_sort};
pub use writer::{
    DemoScanConfig, TiffCompression, TiffElement, TiffWriteOptions, demo_scan_image,
    make_demo_scans, make_demo_scans_with, write_tiff, write_tiff_f32,
};

use crate::dtype::DType;
use crate::dynarray::DynArray;
use crate::error::BoxError;
use crate::graph::DynLazyArray;
use crate::grid::{ChunkGrid, Region};
use crate::io::ChunkSource;
use crate::signal::Signal;
use crate::signal::axes::Axis;
use crate::signal::tree::{Dict, Value};

/// Everything that can go wrong opening, reading or writing image files. Every variant
/// names the file (or the pattern) concerned.
#[derive(thiserror::Error, Debug)]
pub enum ImageError {
    /// The glob pattern is malformed.
    #[error("invalid file pattern '{pattern}': {reason}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The pattern, folder or list matched no image file.
    #[error("no image files match '{pattern}'")]
    NoFiles {
        /// The pattern, folder or description of the input.
        pattern: String,
    },
    /// A file is missing or cannot be read (permissions, I/O error).
    #[error("cannot read image file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a valid image of its format (bad header, truncated, corrupt data).
    #[error("invalid image file {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A valid image of a kind the stack does not read (colour, unusual bit depth).
    #[error("unsupported image file {path}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is not supported.
        reason: String,
    },
    /// A file differs from the first file of the stack in shape, dtype or page count.
    #[error(
        "image file {path} is {found} but the first file {first} is {expected}; every image of a stack must have the same shape and dtype"
    )]
    Mismatch {
        /// The file that differs.
        path: PathBuf,
        /// The first file of the stack.
        first: PathBuf,
        /// What the first file is (dtype, pages, shape).
        expected: String,
        /// What this file is.
        found: String,
    },
    /// Writing an image file failed.
    #[error("cannot write image file {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl ImageError {
    /// The file the error is about, if it concerns one file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ImageError::Io { path, .. }
            | ImageError::Format { path, .. }
            | ImageError::Unsupported { path, .. }
            | ImageError::Mismatch { path, .. }
            | ImageError::Write { path, .. } => Some(path),
            ImageError::Pattern { .. } | ImageError::NoFiles { .. } => None,
        }
    }
}

/// What to open: explicit paths (or one folder), or a glob pattern.
#[derive(Clone, Debug)]
pub enum ImageInput {
    /// These files (sorted naturally). A single folder means every image file in it.
    Paths(Vec<PathBuf>),
    /// A glob pattern such as `scans/*.tif` (`*`, `?`, `[...]`, `**`). A string without
    /// glob characters is taken as one path.
    Pattern(String),
}

impl From<&str> for ImageInput {
    fn from(s: &str) -> Self {
        ImageInput::Pattern(s.to_string())
    }
}
impl From<String> for ImageInput {
    fn from(s: String) -> Self {
        ImageInput::Pattern(s)
    }
}
impl From<&Path> for ImageInput {
    fn from(p: &Path) -> Self {
        ImageInput::Paths(vec![p.to_path_buf()])
    }
}
impl From<PathBuf> for ImageInput {
    fn from(p: PathBuf) -> Self {
        ImageInput::Paths(vec![p])
    }
}
impl From<Vec<PathBuf>> for ImageInput {
    fn from(p: Vec<PathBuf>) -> Self {
        ImageInput::Paths(p)
    }
}
impl From<&[PathBuf]> for ImageInput {
    fn from(p: &[PathBuf]) -> Self {
        ImageInput::Paths(p.to_vec())
    }
}
impl<const N: usize> From<[PathBuf; N]> for ImageInput {
    fn from(p: [PathBuf; N]) -> Self {
        ImageInput::Paths(p.to_vec())
    }
}

/// File extensions (lower case) of the formats an image stack reads; used to pick the
/// files of a folder and by [`looks_like_image_input`].
pub const IMAGE_EXTENSIONS: &[&str] = &["tif", "tiff", "btf", "tf8", "npy", "png", "jpg", "jpeg"];

/// Whether `s` contains glob metacharacters (`*`, `?`, `[`).
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Whether a command-line input names images rather than a `.zspy`/`.hspy` file: a glob
/// pattern, or a path with an image extension ([`IMAGE_EXTENSIONS`]).
pub fn looks_like_image_input(s: &str) -> bool {
    is_glob(s) || has_image_extension(Path::new(s))
}

fn has_image_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Expands an input to a naturally sorted list of files (without reading them).
pub fn resolve_input(input: &ImageInput) -> Result<Vec<PathBuf>, ImageError> {
    let mut paths = match input {
        ImageInput::Pattern(p) if is_glob(p) => {
            let entries = glob::glob(p).map_err(|e| ImageError::Pattern {
                pattern: p.clone(),
                reason: e.to_string(),
            })?;
            let mut out = Vec::new();
            for entry in entries {
                let path = entry.map_err(|e| ImageError::Io {
                    path: e.path().to_path_buf(),
                    source: std::io::Error::new(e.error().kind(), e.error().to_string()),
                })?;
                if !path.is_dir() {
                    out.push(path);
                }
            }
            if out.is_empty() {
                return Err(ImageError::NoFiles { pattern: p.clone() });
            }
            out
        }
        ImageInput::Pattern(p) => expand_paths(&[PathBuf::from(p)])?,
        ImageInput::Paths(v) => expand_paths(v)?,
    };
    natural_sort(&mut paths);
    Ok(paths)
}

fn expand_paths(v: &[PathBuf]) -> Result<Vec<PathBuf>, ImageError> {
    if v.is_empty() {
        return Err(ImageError::NoFiles {
            pattern: "(empty list of files)".into(),
        });
    }
    if let [dir] = v
        && dir.is_dir()
    {
        let rd = std::fs::read_dir(dir).map_err(|e| ImageError::Io {
            path: dir.clone(),
            source: e,
        })?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| ImageError::Io {
                path: dir.clone(),
                source: e,
            })?;
            let p = entry.path();
            if !p.is_dir() && has_image_extension(&p) {
                out.push(p);
            }
        }
        if out.is_empty() {
            return Err(ImageError::NoFiles {
                pattern: dir.display().to_string(),
            });
        }
        return Ok(out);
    }
    Ok(v.to_vec())
}

/// A lazily read stack of image files (see the module documentation).
#[derive(Clone, Debug)]
pub struct ImageStack {
    inner: Arc<StackSource>,
    title: String,
}

#[derive(Debug)]
struct StackSource {
    paths: Vec<PathBuf>,
    headers: Vec<ImageHeader>,
    /// Whether the array has a leading file axis.
    file_axis: bool,
    /// Whether the array has a page axis.
    page_axis: bool,
    dtype: DType,
    grid: ChunkGrid,
}

fn describe_header(h: &ImageHeader) -> String {
    if h.pages > 1 {
        format!("{} {} pages of {}x{}", h.dtype, h.pages, h.height, h.width)
    } else {
        format!("{} {}x{}", h.dtype, h.height, h.width)
    }
}

impl ImageStack {
    /// Opens a stack: resolves the input, sorts it naturally and checks every file's header
    /// against the first (in parallel; no pixel data is decoded).
    pub fn open(input: impl Into<ImageInput>) -> Result<ImageStack, ImageError> {
        let input = input.into();
        let paths = resolve_input(&input)?;
        let headers: Vec<Result<ImageHeader, ImageError>> =
            paths.par_iter().map(|p| formats::probe(p)).collect();
        let mut ok = Vec::with_capacity(headers.len());
        for h in headers {
            ok.push(h?);
        }
        let first = &ok[0];
        for (p, h) in paths.iter().zip(&ok).skip(1) {
            if (h.pages, h.height, h.width, h.dtype)
                != (first.pages, first.height, first.width, first.dtype)
            {
                return Err(ImageError::Mismatch {
                    path: p.clone(),
                    first: paths[0].clone(),
                    expected: describe_header(first),
                    found: describe_header(h),
                });
            }
        }
        let (n, pages, h, w) = (paths.len(), first.pages, first.height, first.width);
        let file_axis = n > 1 || pages == 1;
        let page_axis = pages > 1;
        let mut chunks: Vec<Vec<usize>> = Vec::new();
        if file_axis {
            chunks.push(vec![1; n]);
        }
        if page_axis {
            chunks.push(vec![1; pages]);
        }
        chunks.push(vec![h]);
        chunks.push(vec![w]);
        let grid = ChunkGrid::from_chunks(chunks).map_err(|e| ImageError::Format {
            path: paths[0].clone(),
            reason: e.to_string(),
        })?;
        let title = stack_title(&input, &paths);
        let dtype = first.dtype;
        Ok(ImageStack {
            inner: Arc::new(StackSource {
                paths,
                headers: ok,
                file_axis,
                page_axis,
                dtype,
                grid,
            }),
            title,
        })
    }

    /// The files, in stack order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.inner.paths
    }

    /// The header read from each file (same order as [`ImageStack::paths`]).
    pub fn headers(&self) -> &[ImageHeader] {
        &self.inner.headers
    }

    /// The array shape: `(N, H, W)`, `(N, P, H, W)` or `(P, H, W)`.
    pub fn shape(&self) -> Vec<usize> {
        self.inner.grid.shape()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.inner.dtype
    }

    /// Whether the array has a page axis (the files have several pages each).
    pub fn has_page_axis(&self) -> bool {
        self.inner.page_axis
    }

    /// Whether the array has a file axis (false only for a single multi-page file).
    pub fn has_file_axis(&self) -> bool {
        self.inner.file_axis
    }

    /// A title for the stack: the folder name of the files (or the file stem of a single
    /// file, or the pattern).
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The stack as a chunk source (one image per chunk).
    pub fn source(&self) -> Arc<dyn ChunkSource> {
        self.inner.clone()
    }

    /// The stack as a lazy array; nothing is read until it is computed.
    pub fn into_lazy(self) -> DynLazyArray {
        DynLazyArray::from_source(self.inner)
    }

    /// The stack as a [`Signal`]: navigation axes over files (`"image"`) and pages
    /// (`"page"`), signal axes `"y"` and `"x"` (scale 1, no units), titled after the folder.
    pub fn into_signal(self) -> Signal {
        let src = &self.inner;
        let mut axes = Vec::new();
        let shape = src.grid.shape();
        let mut k = 0;
        if src.file_axis {
            axes.push(Axis::uniform(Some("image"), None, shape[k], 1.0, 0.0, true));
            k += 1;
        }
        if src.page_axis {
            axes.push(Axis::uniform(Some("page"), None, shape[k], 1.0, 0.0, true));
            k += 1;
        }
        axes.push(Axis::uniform(Some("y"), None, shape[k], 1.0, 0.0, false));
        axes.push(Axis::uniform(
            Some("x"),
            None,
            shape[k + 1],
            1.0,
            0.0,
            false,
        ));
        let first = &src.headers[0];
        let mut om = Dict::new()
            .with("format", first.format.name())
            .with("n_files", src.paths.len() as i64)
            .with("pages_per_file", first.pages as i64)
            .with("first_file", src.paths[0].display().to_string());
        om = om.with(
            "last_file",
            Value::Str(src.paths[src.paths.len() - 1].display().to_string()),
        );
        let title = self.title.clone();
        let mut signal = Signal::with_axes(self.into_lazy(), axes, &title, "");
        signal.tree.original_metadata = Dict::new().with("ImageStack", om);
        signal
    }
}

/// Opens an image stack and returns it as a lazy [`Signal`] (see
/// [`ImageStack::into_signal`]).
pub fn from_files(input: impl Into<ImageInput>) -> Result<Signal, ImageError> {
    Ok(ImageStack::open(input)?.into_signal())
}

fn stack_title(input: &ImageInput, paths: &[PathBuf]) -> String {
    if let ([p], ImageInput::Paths(_) | ImageInput::Pattern(_)) = (paths, input)
        && !matches!(input, ImageInput::Pattern(s) if is_glob(s))
        && let Some(stem) = p.file_stem()
    {
        return stem.to_string_lossy().into_owned();
    }
    let parent = paths[0].parent().map(Path::to_path_buf).unwrap_or_default();
    if paths.iter().all(|p| p.parent() == Some(parent.as_path())) {
        let dir = if parent.as_os_str().is_empty() {
            std::env::current_dir().ok()
        } else {
            std::fs::canonicalize(&parent).ok().or(Some(parent))
        };
        if let Some(name) = dir.as_deref().and_then(Path::file_name) {
            return name.to_string_lossy().into_owned();
        }
    }
    match input {
        ImageInput::Pattern(p) => p.clone(),
        ImageInput::Paths(_) => "images".to_string(),
    }
}

impl StackSource {
    /// The (file, page) of a leading index pair.
    fn locate(&self, lead: &[usize]) -> (usize, usize) {
        match (self.file_axis, self.page_axis) {
            (true, true) => (lead[0], lead[1]),
            (true, false) => (lead[0], 0),
            (false, true) => (0, lead[0]),
            (false, false) => (0, 0),
        }
    }

    fn lead_ndim(&self) -> usize {
        self.file_axis as usize + self.page_axis as usize
    }
}

impl ChunkSource for StackSource {
    fn dtype(&self) -> DType {
        self.dtype
    }

    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }

    fn read_region(&self, region: &Region) -> Result<DynArray, BoxError> {
        let lead = self.lead_ndim();
        let (ys, xs) = (region.range(lead), region.range(lead + 1));
        // Every leading index inside the region, row-major.
        let lead_ranges: Vec<std::ops::Range<usize>> = (0..lead).map(|a| region.range(a)).collect();
        let mut indices: Vec<Vec<usize>> = vec![vec![]];
        for r in &lead_ranges {
            indices = indices
                .into_iter()
                .flat_map(|prefix| {
                    r.clone().map(move |i| {
                        let mut v = prefix.clone();
                        v.push(i);
                        v
                    })
                })
                .collect();
        }
        let mut pieces = Vec::with_capacity(indices.len());
        for idx in indices {
            let (file, page) = self.locate(&idx);
            let path = &self.paths[file];
            let image = formats::decode_page(path, &self.headers[file], page)
                .map_err(|e| Box::new(e) as BoxError)?;
            let window = Region::new(vec![ys.start, xs.start], vec![ys.end, xs.end]);
            let mut piece = image.slice_region(&window, None);
            for _ in 0..lead {
                piece = piece.insert_axis(0);
            }
            let mut start = idx.clone();
            start.extend([ys.start, xs.start]);
            let mut stop: Vec<usize> = idx.iter().map(|i| i + 1).collect();
            stop.extend([ys.end, xs.end]);
            pieces.push((Region::new(start, stop), piece));
        }
        Ok(DynArray::assemble(self.dtype, region, &pieces)?)
    }

    fn describe(&self) -> String {
        let n = self.paths.len();
        if n == 1 {
            format!("image {}", self.paths[0].display())
        } else {
            format!(
                "images {} .. {} ({n} files)",
                self.paths[0].display(),
                self.paths[n - 1].display()
            )
        }
    }
}
