//! The geometry of a multiscale pyramid and the streaming fold that builds it.
//!
//! Level 0 is the data. Level `k + 1` halves level `k` along the downsampled axes
//! (`ceil(n / 2)` samples) with a [`PyramidMethod`]; the other axes are kept. Each level is
//! stored in chunks (the *write chunks*: the shards of a sharded array, else the chunks).
//!
//! [`PyramidFold`] builds the levels in one pass: every finished write chunk of level `k`
//! is copied into the accumulators of the level-`k + 1` write chunks that need it (its
//! source region, plus the Gaussian's halo). When an accumulator has received every chunk
//! it needs, it is reduced to its level-`k + 1` chunk, handed to the output, and folded in
//! turn into level `k + 2`. Level 0 is never read twice, and only the accumulators of
//! chunks in progress are in memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{ArrayD, ArrayViewD, IxDyn, Slice};
use parking_lot::Mutex;

use crate::dtype::{DType, Element};
use crate::dynarray::DynArray;
use crate::error::BoxError;
use crate::filters::{GaussianParams, downsample_mean, gaussian_filter, gaussian_radius};
use crate::grid::{ChunkGrid, Region};

/// How one level is computed from the level above.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PyramidMethod {
    /// The mean of each 2-sample block (of the samples that exist at an odd edge).
    #[default]
    Mean,
    /// A Gaussian of sigma [`GAUSSIAN_SIGMA`] (reflect boundaries, truncate 4), then every
    /// second sample.
    Gaussian,
    /// Every second sample.
    Nearest,
}

impl PyramidMethod {
    /// Parses `mean`, `gaussian` or `nearest`.
    pub fn parse(text: &str) -> Option<PyramidMethod> {
        match text {
            "mean" => Some(PyramidMethod::Mean),
            "gaussian" => Some(PyramidMethod::Gaussian),
            "nearest" => Some(PyramidMethod::Nearest),
            _ => None,
        }
    }

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PyramidMethod::Mean => "mean",
            PyramidMethod::Gaussian => "gaussian",
            PyramidMethod::Nearest => "nearest",
        }
    }

    /// The shift of the first sample of the next level, in samples of this level: 0.5 for
    /// the mean (the centre of a 2-sample block), 0 for the others.
    pub fn shift(self) -> f64 {
        match self {
            PyramidMethod::Mean => 0.5,
            PyramidMethod::Gaussian | PyramidMethod::Nearest => 0.0,
        }
    }

    /// Samples beyond a block that the method reads (the Gaussian kernel's radius).
    pub fn halo(self) -> usize {
        match self {
            PyramidMethod::Gaussian => {
                gaussian_radius(GAUSSIAN_SIGMA, 4.0).expect("a valid constant sigma")
            }
            PyramidMethod::Mean | PyramidMethod::Nearest => 0,
        }
    }
}

/// The Gaussian's sigma for a factor of 2: `2 * 2 / 6`, scikit-image's `pyramid_reduce`
/// default.
pub const GAUSSIAN_SIGMA: f64 = 2.0 / 3.0;

/// The shape and chunking of one level.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelGeometry {
    /// The level's shape.
    pub shape: Vec<usize>,
    /// The chunk shape readers see (the inner chunk of a shard).
    pub chunks: Vec<usize>,
    /// The stored chunk: the shard when sharded, else `chunks`.
    pub write_chunks: Vec<usize>,
    /// The grid of `write_chunks`.
    pub grid: ChunkGrid,
}

/// The levels of a pyramid and how they depend on each other.
#[derive(Clone, Debug)]
pub struct PyramidGeometry {
    /// Level 0 first.
    pub levels: Vec<LevelGeometry>,
    /// The downsampled axes (array indices, ascending).
    pub downsampled: Vec<usize>,
    /// The reduction.
    pub method: PyramidMethod,
}

impl PyramidGeometry {
    /// Plans the levels of `shape`: `chunk` samples per chunk along the downsampled axes
    /// (clipped to each level's length), 1 along the others; shards of `shard` chunks per
    /// downsampled axis when given. `levels`: how many (level 0 included); `None` adds
    /// levels until every downsampled axis fits in one chunk.
    ///
    /// ```
    /// use lazyspy::signal::ome_zarr::{PyramidGeometry, PyramidMethod};
    ///
    /// let g = PyramidGeometry::plan(&[3, 1000, 600], &[1, 2], 256, None, None, PyramidMethod::Mean)?;
    /// let shapes: Vec<_> = g.levels.iter().map(|l| l.shape.clone()).collect();
    /// assert_eq!(shapes, [vec![3, 1000, 600], vec![3, 500, 300], vec![3, 250, 150]]);
    /// assert_eq!(g.levels[2].chunks, [1, 250, 150]);
    /// # Ok::<(), String>(())
    /// ```
    pub fn plan(
        shape: &[usize],
        downsampled: &[usize],
        chunk: usize,
        shard: Option<usize>,
        levels: Option<usize>,
        method: PyramidMethod,
    ) -> Result<PyramidGeometry, String> {
        if chunk == 0 || shard == Some(0) || levels == Some(0) {
            return Err("chunks, shards and levels must be positive".into());
        }
        if downsampled.is_empty()
            || downsampled.windows(2).any(|w| w[0] >= w[1])
            || downsampled.iter().any(|&a| a >= shape.len())
        {
            return Err(format!(
                "the downsampled axes {downsampled:?} are not distinct ascending axes of an \
                 array of {} dimensions",
                shape.len()
            ));
        }
        if shape.contains(&0) {
            return Err(format!("an empty array (shape {shape:?}) has no pyramid"));
        }
        let fits = |s: &[usize]| downsampled.iter().all(|&a| s[a] <= chunk);
        let mut shapes = vec![shape.to_vec()];
        loop {
            let last = shapes.last().expect("level 0 is there");
            let more = match levels {
                Some(n) => shapes.len() < n,
                None => !fits(last),
            };
            if !more {
                break;
            }
            let mut next = last.clone();
            for &a in downsampled {
                next[a] = next[a].div_ceil(2);
            }
            shapes.push(next);
        }
        let mut out = Vec::with_capacity(shapes.len());
        for s in shapes {
            let chunks: Vec<usize> = (0..s.len())
                .map(|a| {
                    if downsampled.contains(&a) {
                        chunk.min(s[a])
                    } else {
                        1
                    }
                })
                .collect();
            let write_chunks: Vec<usize> = (0..s.len())
                .map(|a| match shard {
                    Some(k) if downsampled.contains(&a) => {
                        chunks[a] * k.min(s[a].div_ceil(chunks[a]))
                    }
                    _ => chunks[a],
                })
                .collect();
            let grid = ChunkGrid::regular(&s, &write_chunks).map_err(|e| e.to_string())?;
            out.push(LevelGeometry {
                shape: s,
                chunks,
                write_chunks,
                grid,
            });
        }
        Ok(PyramidGeometry {
            levels: out,
            downsampled: downsampled.to_vec(),
            method,
        })
    }

    fn is_downsampled(&self, axis: usize) -> bool {
        self.downsampled.contains(&axis)
    }

    /// The region of level `level - 1` that the write chunk `index` of `level` (> 0) is
    /// computed from: its blocks plus the method's halo, clipped to the level.
    pub fn source_region(&self, level: usize, index: &[usize]) -> Region {
        let below = &self.levels[level - 1].shape;
        let region = self.levels[level].grid.chunk_region(index);
        let halo = self.method.halo();
        let (mut start, mut stop) = (region.start.clone(), region.stop.clone());
        for a in 0..region.ndim() {
            if self.is_downsampled(a) {
                start[a] = (2 * region.start[a]).saturating_sub(halo);
                stop[a] = (2 * region.stop[a] + halo).min(below[a]);
            }
        }
        Region::new(start, stop)
    }

    /// The write chunks of `level + 1` whose source region meets `region` of `level`.
    pub fn targets(&self, level: usize, region: &Region) -> Vec<Vec<usize>> {
        let Some(above) = self.levels.get(level + 1) else {
            return Vec::new();
        };
        let halo = self.method.halo();
        let mut start = region.start.clone();
        let mut stop = region.stop.clone();
        for a in 0..region.ndim() {
            if self.is_downsampled(a) {
                // Output sample i reads [2i - halo, 2i + 1 + halo].
                start[a] = (region.start[a].saturating_sub(halo + 1)).div_ceil(2);
                stop[a] = ((region.stop[a] - 1 + halo) / 2 + 1).min(above.shape[a]);
            }
        }
        let ranges = above.grid.chunks_touching(&Region::new(start, stop));
        cartesian(&ranges)
    }

    /// How many write chunks of `level - 1` the write chunk `index` of `level` needs.
    pub fn contributions(&self, level: usize, index: &[usize]) -> usize {
        let source = self.source_region(level, index);
        self.levels[level - 1]
            .grid
            .chunks_touching(&source)
            .iter()
            .map(|r| r.len())
            .product()
    }

    /// Scale and translation of every level, from those of level 0.
    pub fn transforms(&self, scale: &[f64], offset: &[f64]) -> Vec<(Vec<f64>, Vec<f64>)> {
        let mut out = vec![(scale.to_vec(), offset.to_vec())];
        for _ in 1..self.levels.len() {
            let (s, t) = out.last().expect("level 0 is there").clone();
            let mut next = (s.clone(), t.clone());
            for &a in &self.downsampled {
                next.1[a] = t[a] + self.method.shift() * s[a];
                next.0[a] = 2.0 * s[a];
            }
            out.push(next);
        }
        out
    }
}

/// Every index of the box of index ranges, in C order.
pub(crate) fn cartesian(ranges: &[std::ops::Range<usize>]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::with_capacity(ranges.len())];
    for r in ranges {
        let mut next = Vec::with_capacity(out.len() * r.len());
        for prefix in &out {
            for i in r.clone() {
                let mut v = prefix.clone();
                v.push(i);
                next.push(v);
            }
        }
        out = next;
    }
    out
}

/// Rounds a float64 value to what `dtype` stores (NumPy: `np.rint` for integers, plain
/// rounding for floats), returned as float64 again.
pub fn quantize(dtype: DType, x: f64) -> f64 {
    match dtype {
        DType::F64 => x,
        DType::F32 => x as f32 as f64,
        _ => x.round_ties_even(),
    }
}

/// Where finished chunks of the levels above 0 go.
pub trait LevelOutput: Send + Sync {
    /// Stores the finished write chunk `index` of `level` (> 0): `values` are already
    /// rounded to the dtype.
    fn emit(
        &self,
        level: usize,
        index: &[usize],
        region: &Region,
        values: ArrayViewD<'_, f64>,
    ) -> Result<(), BoxError>;
}

/// The accumulators in progress of one level, by write-chunk index.
type OpenChunks = HashMap<Vec<usize>, Arc<Mutex<Accumulator>>>;

/// A level chunk in the making: its source region, filled as chunks arrive.
struct Accumulator {
    /// The level-below region it is made from.
    source: Region,
    /// The source region's values, or (reducing on arrival) the output chunk's.
    buffer: ArrayD<f64>,
    received: usize,
    expected: usize,
}

/// The streaming fold of a pyramid (see the module documentation).
pub struct PyramidFold {
    geometry: PyramidGeometry,
    dtype: DType,
    /// Per level above 0, the accumulators in progress.
    open: Vec<Mutex<OpenChunks>>,
    /// Per level, whether each write chunk (linear index) must be produced; `None`: all.
    needed: Option<Vec<Vec<bool>>>,
    open_bytes: AtomicU64,
    peak_bytes: AtomicU64,
    /// Whether every 2-sample block lies inside one chunk of its level (chunk boundaries
    /// even along the downsampled axes) and the method needs no halo: then each arriving
    /// chunk is reduced at once and an accumulator holds only its output chunk.
    reduce_on_arrival: bool,
}

impl PyramidFold {
    /// A fold over `geometry` for data of `dtype`. `needed` (per level, per linear write
    /// chunk index) limits the work to the chunks a resumed write still needs.
    pub fn new(geometry: PyramidGeometry, dtype: DType, needed: Option<Vec<Vec<bool>>>) -> Self {
        let open = (0..geometry.levels.len())
            .map(|_| Mutex::new(HashMap::new()))
            .collect();
        let even_blocks = geometry.levels.iter().all(|l| {
            geometry
                .downsampled
                .iter()
                .all(|&a| l.write_chunks[a] % 2 == 0 || l.grid.axis_chunks(a).len() == 1)
        });
        PyramidFold {
            reduce_on_arrival: even_blocks && geometry.method != PyramidMethod::Gaussian,
            geometry,
            dtype,
            open,
            needed,
            open_bytes: AtomicU64::new(0),
            peak_bytes: AtomicU64::new(0),
        }
    }

    /// The geometry.
    pub fn geometry(&self) -> &PyramidGeometry {
        &self.geometry
    }

    /// The largest number of bytes the accumulators held at once.
    pub fn peak_bytes(&self) -> u64 {
        self.peak_bytes.load(Ordering::Relaxed)
    }

    /// Accumulators still open (after a complete run: none).
    pub fn open_count(&self) -> usize {
        self.open.iter().map(|m| m.lock().len()).sum()
    }

    fn is_needed(&self, level: usize, index: &[usize]) -> bool {
        match &self.needed {
            None => true,
            Some(n) => n[level][self.geometry.levels[level].grid.ravel(index)],
        }
    }

    /// Folds the finished write chunk of `level` over `region` (`values`, of the data's
    /// dtype or float64, already rounded to the dtype) into the levels above; every level
    /// chunk that this completes is emitted to `out` and folded further.
    pub fn push(
        &self,
        level: usize,
        region: &Region,
        values: &DynArray,
        out: &dyn LevelOutput,
    ) -> Result<(), BoxError> {
        let up = level + 1;
        for target in self.geometry.targets(level, region) {
            if !self.is_needed(up, &target) {
                continue;
            }
            let acc = {
                let mut open = self.open[up].lock();
                open.entry(target.clone())
                    .or_insert_with(|| {
                        let source = self.geometry.source_region(up, &target);
                        let held = self.held_shape(up, &target, &source);
                        let bytes = (held.iter().product::<usize>() * 8) as u64;
                        let now = self.open_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
                        self.peak_bytes.fetch_max(now, Ordering::Relaxed);
                        Arc::new(Mutex::new(Accumulator {
                            buffer: ArrayD::zeros(IxDyn(&held)),
                            expected: self.geometry.contributions(up, &target),
                            source,
                            received: 0,
                        }))
                    })
                    .clone()
            };
            // The complete accumulator's contents, taken out under its lock (another
            // contributor may still hold a reference to the emptied accumulator).
            let complete = {
                let mut a = acc.lock();
                let Some(common) = a.source.intersect(region) else {
                    continue;
                };
                let from = common.relative_to(&region.start);
                if self.reduce_on_arrival {
                    let part: ArrayD<f64> = crate::with_dyn!(values, v, T => {
                        slice_view(v.view(), &from).mapv(|s: T| s.cast::<f64>())
                    });
                    let reduced = self.reduce_blocks(&part)?;
                    let target_start = self.geometry.levels[up].grid.chunk_region(&target).start;
                    let start: Vec<usize> = (0..common.ndim())
                        .map(|d| {
                            let s = if self.geometry.is_downsampled(d) {
                                common.start[d] / 2
                            } else {
                                common.start[d]
                            };
                            s - target_start[d]
                        })
                        .collect();
                    let stop = start
                        .iter()
                        .zip(reduced.shape())
                        .map(|(s, n)| s + n)
                        .collect();
                    slice_mut(&mut a.buffer, &Region::new(start, stop)).assign(&reduced);
                } else {
                    let into = common.relative_to(&a.source.start);
                    let mut dst = slice_mut(&mut a.buffer, &into);
                    crate::with_dyn!(values, v, T => {
                        let src = slice_view(v.view(), &from);
                        dst.zip_mut_with(&src, |d, s: &T| *d = s.cast::<f64>());
                    });
                }
                a.received += 1;
                (a.received == a.expected).then(|| {
                    let buffer = std::mem::replace(&mut a.buffer, ArrayD::zeros(IxDyn(&[0])));
                    (buffer, a.source.clone())
                })
            };
            if let Some((buffer, source)) = complete {
                self.open[up].lock().remove(&target);
                self.open_bytes
                    .fetch_sub((buffer.len() * 8) as u64, Ordering::Relaxed);
                let chunk_region = self.geometry.levels[up].grid.chunk_region(&target);
                let reduced = if self.reduce_on_arrival {
                    let dtype = self.dtype;
                    buffer.mapv_into(|x| quantize(dtype, x))
                } else {
                    let reduced = self.reduce(up, &buffer, &source, &chunk_region)?;
                    drop(buffer);
                    reduced
                };
                let reduced = DynArray::from_array(reduced);
                let view = f64::view_dyn(&reduced).ok_or("a reduced level chunk is not float64")?;
                out.emit(up, &target, &chunk_region, view.view())?;
                self.push(up, &chunk_region, &reduced, out)?;
            }
        }
        Ok(())
    }

    /// An estimate of the accumulators' memory at its highest: per level above 0, two rows
    /// of chunks across the plane plus two per worker.
    pub fn reserve_bytes(&self, threads: usize) -> u64 {
        let g = &self.geometry;
        (1..g.levels.len())
            .map(|k| {
                let level = &g.levels[k];
                let grid = level.grid.grid_shape();
                let row: usize = g.downsampled[1..].iter().map(|&a| grid[a]).product();
                let open = (2 * row + 2 * threads).min(level.grid.num_chunks()) as u64;
                let first = vec![0; level.shape.len()];
                let held = self.held_shape(k, &first, &g.source_region(k, &first));
                open * held.iter().product::<usize>() as u64 * 8
            })
            .sum()
    }

    /// The shape an accumulator of the write chunk `index` of `level` holds.
    fn held_shape(&self, level: usize, index: &[usize], source: &Region) -> Vec<usize> {
        if self.reduce_on_arrival {
            self.geometry.levels[level].grid.chunk_shape(index)
        } else {
            source.shape()
        }
    }

    /// Mean or nearest of whole 2-sample blocks of `part` (starting on a block; a trailing
    /// odd sample is the level's last and forms a block of its own).
    fn reduce_blocks(&self, part: &ArrayD<f64>) -> Result<ArrayD<f64>, BoxError> {
        let g = &self.geometry;
        let ndim = part.ndim();
        Ok(match g.method {
            PyramidMethod::Mean if g.downsampled == [ndim - 2, ndim - 1] => {
                mean_of_pairs_in_plane(part)
            }
            PyramidMethod::Mean => {
                let factors: Vec<usize> = (0..ndim)
                    .map(|a| if g.is_downsampled(a) { 2 } else { 1 })
                    .collect();
                downsample_mean(part.view(), &factors)?
            }
            PyramidMethod::Nearest | PyramidMethod::Gaussian => {
                let mut view = part.view();
                for &a in &g.downsampled {
                    view.slice_axis_inplace(ndarray::Axis(a), Slice::new(0, None, 2));
                }
                view.to_owned()
            }
        })
    }

    /// The level-`level` chunk over `region` from its complete accumulator.
    fn reduce(
        &self,
        level: usize,
        buffer: &ArrayD<f64>,
        source: &Region,
        region: &Region,
    ) -> Result<ArrayD<f64>, BoxError> {
        let g = &self.geometry;
        let ndim = region.ndim();
        let reduced = match g.method {
            PyramidMethod::Mean if g.downsampled == [ndim - 2, ndim - 1] => {
                mean_of_pairs_in_plane(buffer)
            }
            PyramidMethod::Mean => {
                let factors: Vec<usize> = (0..ndim)
                    .map(|a| if g.is_downsampled(a) { 2 } else { 1 })
                    .collect();
                downsample_mean(buffer.view(), &factors)?
            }
            PyramidMethod::Nearest | PyramidMethod::Gaussian => {
                let smoothed;
                let base = if g.method == PyramidMethod::Gaussian {
                    let p = GaussianParams::new(
                        vec![GAUSSIAN_SIGMA; g.downsampled.len()],
                        g.downsampled.clone(),
                    );
                    smoothed = gaussian_filter(buffer.view(), &p)?;
                    &smoothed
                } else {
                    buffer
                };
                let mut view = base.view();
                for a in 0..ndim {
                    if g.is_downsampled(a) {
                        let first = 2 * region.start[a] - source.start[a];
                        let n = region.stop[a] - region.start[a];
                        view.slice_axis_inplace(
                            ndarray::Axis(a),
                            Slice::new(first as isize, Some((first + 2 * n - 1) as isize), 2),
                        );
                    }
                }
                view.to_owned()
            }
        };
        if reduced.shape() != region.shape().as_slice() {
            return Err(format!(
                "level {level}: a reduced chunk has shape {:?}, expected {:?}",
                reduced.shape(),
                region.shape()
            )
            .into());
        }
        let dtype = self.dtype;
        Ok(reduced.mapv_into(|x| quantize(dtype, x)))
    }
}

/// The means of 2 x 2 blocks over the last two axes of a C-ordered `buffer` (a trailing
/// block of one row or column averages the samples present): the same values, in the same
/// order of operations, as [`downsample_mean`] with factors `[1, .., 1, 2, 2]`, without
/// its intermediate copies.
fn mean_of_pairs_in_plane(buffer: &ArrayD<f64>) -> ArrayD<f64> {
    let shape = buffer.shape();
    let nd = shape.len();
    let (h, w) = (shape[nd - 2], shape[nd - 1]);
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    let mut out_shape = shape.to_vec();
    out_shape[nd - 2] = oh;
    out_shape[nd - 1] = ow;
    let planes: usize = shape[..nd - 2].iter().product();
    let input = buffer.as_standard_layout();
    let input = input.as_slice().expect("standard layout");
    let mut out = Vec::with_capacity(planes * oh * ow);
    let mut column_means = vec![0.0f64; w];
    for plane in input.chunks_exact(h * w.max(1)).take(planes) {
        for i in 0..oh {
            let top = &plane[2 * i * w..(2 * i + 1) * w];
            if 2 * i + 1 < h {
                let bottom = &plane[(2 * i + 1) * w..(2 * i + 2) * w];
                for ((m, a), b) in column_means.iter_mut().zip(top).zip(bottom) {
                    *m = (a + b) / 2.0;
                }
            } else {
                column_means.copy_from_slice(top);
            }
            let pairs = column_means.chunks_exact(2);
            let last = pairs.remainder().first().copied();
            out.extend(pairs.map(|p| (p[0] + p[1]) / 2.0));
            out.extend(last);
        }
    }
    ArrayD::from_shape_vec(IxDyn(&out_shape), out).expect("the output shape holds its values")
}

fn slice_view<'a, T>(mut v: ArrayViewD<'a, T>, r: &Region) -> ArrayViewD<'a, T> {
    for ax in 0..r.ndim() {
        v.slice_axis_inplace(ndarray::Axis(ax), Slice::from(r.start[ax]..r.stop[ax]));
    }
    v
}

#[cfg(test)]
fn slice<'a>(a: &'a ArrayD<f64>, r: &Region) -> ndarray::ArrayViewD<'a, f64> {
    let mut v = a.view();
    for ax in 0..r.ndim() {
        v.slice_axis_inplace(ndarray::Axis(ax), Slice::from(r.start[ax]..r.stop[ax]));
    }
    v
}

fn slice_mut<'a>(a: &'a mut ArrayD<f64>, r: &Region) -> ndarray::ArrayViewMutD<'a, f64> {
    let mut v = a.view_mut();
    for ax in 0..r.ndim() {
        v.slice_axis_inplace(ndarray::Axis(ax), Slice::from(r.start[ax]..r.stop[ax]));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Dimension;

    /// Collects emitted chunks into whole levels.
    struct Collect {
        levels: Vec<Mutex<ArrayD<f64>>>,
    }

    impl Collect {
        /// Every level of `g`, NaN until emitted.
        fn nan(g: &PyramidGeometry) -> Collect {
            Collect {
                levels: g
                    .levels
                    .iter()
                    .map(|l| Mutex::new(ArrayD::from_elem(IxDyn(&l.shape), f64::NAN)))
                    .collect(),
            }
        }
    }

    impl LevelOutput for Collect {
        fn emit(
            &self,
            level: usize,
            _index: &[usize],
            region: &Region,
            values: ArrayViewD<'_, f64>,
        ) -> Result<(), BoxError> {
            let mut l = self.levels[level].lock();
            slice_mut(&mut l, region).assign(&values);
            Ok(())
        }
    }

    fn run(
        input: &ArrayD<f64>,
        down: &[usize],
        chunk: usize,
        method: PyramidMethod,
        dtype: DType,
    ) -> Vec<ArrayD<f64>> {
        let g = PyramidGeometry::plan(input.shape(), down, chunk, None, Some(4), method).unwrap();
        let out = Collect::nan(&g);
        let fold = PyramidFold::new(g.clone(), dtype, None);
        // Level 0 in reverse chunk order: completion must not depend on the order.
        let mut indices: Vec<Vec<usize>> = g.levels[0].grid.indices().collect();
        indices.reverse();
        for ix in indices {
            let r = g.levels[0].grid.chunk_region(&ix);
            let v = slice(input, &r).to_owned();
            out.emit(0, &ix, &r, v.view()).unwrap();
            fold.push(0, &r, &DynArray::from_array(v), &out).unwrap();
        }
        assert_eq!(fold.open_count(), 0);
        out.levels.into_iter().map(|m| m.into_inner()).collect()
    }

    fn input(shape: &[usize]) -> ArrayD<f64> {
        ArrayD::from_shape_fn(IxDyn(shape), |ix| {
            let s: usize = ix
                .as_array_view()
                .iter()
                .enumerate()
                .map(|(a, &i)| (a + 3) * i * i)
                .sum();
            (s % 101) as f64 + 0.25
        })
    }

    fn whole(level: &ArrayD<f64>, down: &[usize], method: PyramidMethod) -> ArrayD<f64> {
        let ndim = level.ndim();
        match method {
            PyramidMethod::Mean => {
                let f: Vec<usize> = (0..ndim)
                    .map(|a| if down.contains(&a) { 2 } else { 1 })
                    .collect();
                downsample_mean(level.view(), &f).unwrap()
            }
            PyramidMethod::Nearest | PyramidMethod::Gaussian => {
                let base = if method == PyramidMethod::Gaussian {
                    let p = GaussianParams::new(vec![GAUSSIAN_SIGMA; down.len()], down.to_vec());
                    gaussian_filter(level.view(), &p).unwrap()
                } else {
                    level.clone()
                };
                let mut v = base.view();
                for &a in down {
                    v.slice_axis_inplace(ndarray::Axis(a), Slice::new(0, None, 2));
                }
                v.to_owned()
            }
        }
    }

    #[test]
    fn chunked_levels_equal_whole_array_reductions() {
        let x = input(&[2, 37, 53]);
        // Odd chunks: blocks straddle chunks (whole-region accumulators); even chunks: each
        // chunk is reduced on arrival (except the Gaussian, which needs its halo).
        let methods = [
            PyramidMethod::Mean,
            PyramidMethod::Nearest,
            PyramidMethod::Gaussian,
        ];
        let cases = [5, 4].into_iter().flat_map(|c| methods.map(|m| (c, m)));
        for (chunk, method) in cases {
            let levels = run(&x, &[1, 2], chunk, method, DType::F64);
            assert_eq!(levels[0], x);
            for k in 1..levels.len() {
                let want = whole(&levels[k - 1], &[1, 2], method);
                assert_eq!(
                    levels[k].shape(),
                    want.shape(),
                    "{method:?} {chunk} level {k}"
                );
                let err = levels[k]
                    .iter()
                    .zip(want.iter())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(err < 1e-12, "{method:?} level {k}: max error {err}");
            }
        }
    }

    #[test]
    fn integer_levels_round_half_to_even() {
        let x = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.0, 2.0, 2.0, 2.0]).unwrap();
        // Mean 1.75 -> 2; a block [1, 2] alone would give 1.5 -> 2, [2, 3] 2.5 -> 2.
        let levels = run(&x, &[0, 1], 1, PyramidMethod::Mean, DType::U16);
        assert_eq!(levels[1][[0, 0]], 2.0);
        assert_eq!(quantize(DType::U8, 2.5), 2.0);
        assert_eq!(quantize(DType::U8, 3.5), 4.0);
        assert_eq!(quantize(DType::F32, 0.1), 0.1f32 as f64);
    }

    #[test]
    fn transforms_shift_by_half_a_sample_for_the_mean() {
        let g =
            PyramidGeometry::plan(&[8, 8], &[0, 1], 2, None, Some(3), PyramidMethod::Mean).unwrap();
        let t = g.transforms(&[0.5, 1.0], &[10.0, 0.0]);
        assert_eq!(t[1], (vec![1.0, 2.0], vec![10.25, 0.5]));
        assert_eq!(t[2], (vec![2.0, 4.0], vec![10.75, 1.5]));
        let g = PyramidGeometry::plan(&[8, 8], &[0, 1], 2, None, Some(2), PyramidMethod::Nearest)
            .unwrap();
        assert_eq!(
            g.transforms(&[0.5, 1.0], &[10.0, 0.0])[1].1,
            vec![10.0, 0.0]
        );
    }

    #[test]
    fn default_levels_stop_when_a_chunk_holds_the_plane() {
        let g = PyramidGeometry::plan(
            &[64, 2048, 2048],
            &[1, 2],
            256,
            None,
            None,
            PyramidMethod::Mean,
        )
        .unwrap();
        assert_eq!(g.levels.len(), 4);
        assert_eq!(g.levels[3].shape, [64, 256, 256]);
        let g = PyramidGeometry::plan(&[100, 100], &[0, 1], 256, None, None, PyramidMethod::Mean)
            .unwrap();
        assert_eq!(g.levels.len(), 1);
        let g = PyramidGeometry::plan(
            &[1000, 1000],
            &[0, 1],
            64,
            Some(4),
            Some(3),
            PyramidMethod::Mean,
        )
        .unwrap();
        assert_eq!(g.levels[0].write_chunks, [256, 256]);
        assert_eq!(g.levels[2].write_chunks, [256, 256]);
        assert_eq!(g.levels[2].chunks, [64, 64]);
        assert!(
            PyramidGeometry::plan(&[10, 10], &[1, 0], 4, None, None, PyramidMethod::Mean).is_err()
        );
    }

    #[test]
    fn needed_sets_limit_the_work() {
        let x = input(&[16, 16]);
        let g = PyramidGeometry::plan(&[16, 16], &[0, 1], 4, None, Some(3), PyramidMethod::Mean)
            .unwrap();
        // A resume where level 2 and level-1 chunk (0, 0) are stored: nothing may be folded
        // into them, and every other level-1 chunk is still made.
        let mut needed: Vec<Vec<bool>> = g
            .levels
            .iter()
            .map(|l| vec![true; l.grid.num_chunks()])
            .collect();
        needed[1][0] = false;
        needed[2][0] = false;
        let fold = PyramidFold::new(g.clone(), DType::F64, Some(needed));
        let out = Collect::nan(&g);
        for ix in g.levels[0].grid.indices() {
            let r = g.levels[0].grid.chunk_region(&ix);
            let v = DynArray::from_array(slice(&x, &r).to_owned());
            fold.push(0, &r, &v, &out).unwrap();
        }
        assert_eq!(fold.open_count(), 0);
        let level1 = out.levels[1].lock();
        let want = whole(&x, &[0, 1], PyramidMethod::Mean);
        for ((i, j), v) in level1
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap()
            .indexed_iter()
        {
            if i < 4 && j < 4 {
                assert!(v.is_nan(), "stored chunk (0, 0) was made again");
            } else {
                assert_eq!(*v, want[[i, j]]);
            }
        }
        assert!(out.levels[2].lock().iter().all(|v| v.is_nan()));
    }
}
