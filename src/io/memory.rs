//! In-memory sources and sinks: an ndarray as a source, a generator closure as a source,
//! and a sink that assembles the output into one ndarray.

use std::sync::Arc;

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use ndarray::{ArcArray, ArrayD, IxDyn};

use crate::dtype::{DType, Element};
use crate::dynarray::DynArray;
use crate::error::BoxError;
use crate::grid::{ChunkGrid, Region, for_each_index};
use crate::io::{ChunkSink, ChunkSource};

/// An in-memory array used as a chunked source (the array is shared, never copied whole).
pub struct ArraySource {
    data: DynArray,
    grid: ChunkGrid,
}

impl ArraySource {
    /// A source over `data` with the given chunking (its shape must be the array's).
    pub fn new(data: DynArray, grid: ChunkGrid) -> Self {
        ArraySource { data, grid }
    }
}

impl ChunkSource for ArraySource {
    fn dtype(&self) -> DType {
        self.data.dtype()
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn read_region(&self, region: &Region) -> Result<DynArray, BoxError> {
        Ok(self.data.slice_region(region, None))
    }
    fn cheap_regions(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        format!("memory {} {:?}", self.data.dtype(), self.data.shape())
    }
}

/// The closure type of [`FnSource`]: gives the values of any region.
pub type RegionFn<T> = dyn Fn(&Region) -> Result<ArrayD<T>, BoxError> + Send + Sync;

/// A virtual array whose values a closure computes for any region on demand.
pub struct FnSource<T: Element> {
    func: Arc<RegionFn<T>>,
    grid: ChunkGrid,
}

impl<T: Element> FnSource<T> {
    /// A generator source; `func` must return an array of exactly the region's shape.
    pub fn new(grid: ChunkGrid, func: Arc<RegionFn<T>>) -> Self {
        FnSource { func, grid }
    }
}

impl<T: Element> ChunkSource for FnSource<T> {
    fn dtype(&self) -> DType {
        T::DTYPE
    }
    fn grid(&self) -> &ChunkGrid {
        &self.grid
    }
    fn read_region(&self, region: &Region) -> Result<DynArray, BoxError> {
        let a = (self.func)(region)?;
        if a.shape() != region.shape().as_slice() {
            return Err(format!(
                "generator returned shape {:?} for region {region:?} of shape {:?}",
                a.shape(),
                region.shape()
            )
            .into());
        }
        Ok(DynArray::from_array(a))
    }
    fn cheap_regions(&self) -> bool {
        true
    }
    fn describe(&self) -> String {
        format!("generator {} {:?}", T::DTYPE, self.grid.shape())
    }
}

/// A sink that writes every chunk into one in-memory array (what `compute()` uses).
///
/// The array is allocated without a zero fill and each chunk is copied straight into its
/// place, from the writing worker, without a lock: [`prepare`](ChunkSink::prepare) fixes
/// the chunk grid, every `write_chunk` must be one chunk of that grid (its exact region),
/// and each chunk may be written once (an atomic flag per chunk claims it), so no two
/// writers ever touch the same element. [`into_inner`](MemorySink::into_inner) fills every
/// chunk that was not written completely (a run that failed or stopped early) with the
/// default value, so uninitialised memory is never read or returned.
pub struct MemorySink<T: Element> {
    shape: Vec<usize>,
    /// The array's elements, C order; written through `&self` (each element by at most one
    /// writer, see above), read only by `into_inner`, which owns the sink.
    buf: Box<[UnsafeCell<MaybeUninit<T>>]>,
    layout: OnceLock<SinkLayout>,
}

/// The chunk grid of a prepared [`MemorySink`] and the state of each chunk.
struct SinkLayout {
    grid: ChunkGrid,
    /// One of `EMPTY`, `CLAIMED`, `WRITTEN` per chunk, by row-major chunk number.
    state: Box<[AtomicU8]>,
}

const EMPTY: u8 = 0;
const CLAIMED: u8 = 1;
const WRITTEN: u8 = 2;

// SAFETY: `&self` methods only write the buffer, and only inside a chunk region that the
// writing thread alone claimed through its atomic flag (the chunks of a grid are
// disjoint); `T: Send + Sync` (Element).
unsafe impl<T: Element> Sync for MemorySink<T> {}

impl<T: Element> MemorySink<T> {
    /// A sink for an array of the given shape.
    pub fn new(shape: &[usize]) -> Self {
        let len: usize = shape.iter().product();
        let buf: Box<[MaybeUninit<T>]> = Box::new_uninit_slice(len);
        // SAFETY: `UnsafeCell<U>` has the same layout as `U` (repr(transparent)).
        let buf = unsafe { Box::from_raw(Box::into_raw(buf) as *mut [UnsafeCell<MaybeUninit<T>>]) };
        MemorySink {
            shape: shape.to_vec(),
            buf,
            layout: OnceLock::new(),
        }
    }

    /// The assembled array. Chunks that were not written hold the default value (zero).
    pub fn into_inner(self) -> ArrayD<T> {
        let MemorySink { shape, buf, layout } = self;
        // SAFETY: `UnsafeCell<U>` has the same layout as `U`; the sink is owned here, so no
        // writer is left.
        let mut buf = unsafe { Box::from_raw(Box::into_raw(buf) as *mut [MaybeUninit<T>]) };
        match layout.into_inner() {
            None => buf.fill(MaybeUninit::new(T::default())),
            Some(l) => {
                let strides = c_strides(&shape);
                for (k, st) in l.state.iter().enumerate() {
                    if st.load(Ordering::Acquire) != WRITTEN {
                        let region = l.grid.chunk_region(&l.grid.unravel(k));
                        for_each_run(&region, &shape, &strides, |dst, _, run| {
                            buf[dst..dst + run].fill(MaybeUninit::new(T::default()));
                        });
                    }
                }
            }
        }
        // SAFETY: every element is initialised: the chunks of the grid tile the array, and
        // each was either written whole by `write_chunk` (state WRITTEN, stored after its
        // copy finished) or filled just above; an unprepared sink was filled whole.
        let buf: Box<[T]> = unsafe { buf.assume_init() };
        ArrayD::from_shape_vec(IxDyn(&shape), buf.into_vec()).expect("length matches the shape")
    }
}

/// Row-major element strides of `shape`.
fn c_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    strides
}

/// Calls `f(dst, src, run)` for each contiguous run of `region` inside a C-order array of
/// `shape` (element `strides`): `dst` is the run's offset in the array, `src` its offset in
/// the region's own C-order layout. Trailing axes the region covers whole are merged into
/// one run.
fn for_each_run(
    region: &Region,
    shape: &[usize],
    strides: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let rshape = region.shape();
    if rshape.contains(&0) {
        return;
    }
    let nd = rshape.len();
    // Axes `inner..` form one contiguous run.
    let mut inner = nd;
    while inner > 0 {
        inner -= 1;
        if rshape[inner] != shape[inner] {
            break;
        }
    }
    let run: usize = rshape[inner.min(nd)..].iter().product();
    let outer: Vec<Range<usize>> = (0..inner.min(nd)).map(|a| 0..rshape[a]).collect();
    let base: usize = (0..nd).map(|a| region.start[a] * strides[a]).sum();
    let mut src = 0;
    for_each_index(&outer, |idx| {
        let dst = base + idx.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>();
        f(dst, src, run);
        src += run;
    });
}

impl<T: Element> ChunkSink for MemorySink<T> {
    fn prepare(&self, dtype: DType, grid: &ChunkGrid) -> Result<(), BoxError> {
        if dtype != T::DTYPE {
            return Err(format!("sink holds {} but the array is {dtype}", T::DTYPE).into());
        }
        if grid.shape() != self.shape {
            return Err(format!(
                "sink shape {:?} differs from {:?}",
                self.shape,
                grid.shape()
            )
            .into());
        }
        let layout = SinkLayout {
            grid: grid.clone(),
            state: (0..grid.num_chunks())
                .map(|_| AtomicU8::new(EMPTY))
                .collect(),
        };
        self.layout
            .set(layout)
            .map_err(|_| -> BoxError { "a memory sink can be filled only once".into() })
    }

    fn write_chunk(
        &self,
        index: &[usize],
        region: &Region,
        data: DynArray,
    ) -> Result<(), BoxError> {
        let layout = self
            .layout
            .get()
            .ok_or("memory sink written before prepare")?;
        let grid = &layout.grid;
        let valid = index.len() == grid.ndim()
            && index
                .iter()
                .enumerate()
                .all(|(a, &i)| i < grid.axis_chunks(a).len());
        if !valid || grid.chunk_region(index) != *region {
            return Err(format!(
                "region {region:?} is not chunk {index:?} of the sink's grid {grid:?}"
            )
            .into());
        }
        let src: ArcArray<T, IxDyn> = data.into_typed::<T>()?;
        if src.shape() != region.shape().as_slice() {
            return Err(format!(
                "chunk of shape {:?} written to region {region:?}",
                src.shape()
            )
            .into());
        }
        let src = src.as_standard_layout();
        let src = src.as_slice().expect("standard layout");
        let state = &layout.state[grid.ravel(index)];
        state
            .compare_exchange(EMPTY, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| format!("chunk {index:?} written twice"))?;
        let strides = c_strides(&self.shape);
        // A pointer to the whole buffer (writes through it are allowed: UnsafeCell).
        let base = UnsafeCell::raw_get(self.buf.as_ptr());
        for_each_run(region, &self.shape, &strides, |dst, s, run| {
            // SAFETY: the run lies inside the array (the region is a chunk of a grid of
            // the array's shape) and inside this chunk's region, which this thread alone
            // claimed above; `src` holds the region's elements in C order.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    src[s..s + run].as_ptr().cast::<MaybeUninit<T>>(),
                    base.add(dst),
                    run,
                );
            }
        });
        state.store(WRITTEN, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Dimension;

    fn chunk(grid: &ChunkGrid, index: &[usize], f: impl Fn(&[usize]) -> f32) -> DynArray {
        let region = grid.chunk_region(index);
        let a = ArrayD::from_shape_fn(IxDyn(&region.shape()), |i| {
            let pos: Vec<usize> = (0..i.ndim()).map(|a| region.start[a] + i[a]).collect();
            f(&pos)
        });
        DynArray::from_array(a)
    }

    fn value(pos: &[usize]) -> f32 {
        pos.iter().fold(1.0, |acc, &p| acc * 7.0 + p as f32)
    }

    /// Chunks of an irregular grid (edge chunks, partial and whole trailing axes), written
    /// from several threads in any order, land where they belong.
    #[test]
    fn chunks_from_several_threads_assemble_the_array() {
        for (shape, chunks) in [
            (vec![7, 5, 6], vec![3, 5, 4]),
            (vec![4, 9], vec![4, 2]),
            (vec![10], vec![3]),
            (vec![3, 4, 5], vec![3, 4, 5]),
        ] {
            let grid = ChunkGrid::regular(&shape, &chunks).unwrap();
            let sink = MemorySink::<f32>::new(&shape);
            sink.prepare(DType::F32, &grid).unwrap();
            let indices: Vec<Vec<usize>> = grid.indices().collect();
            std::thread::scope(|s| {
                for part in [0, 1, 2] {
                    let (sink, grid, indices) = (&sink, &grid, &indices);
                    s.spawn(move || {
                        for idx in indices.iter().rev().skip(part).step_by(3) {
                            let region = grid.chunk_region(idx);
                            sink.write_chunk(idx, &region, chunk(grid, idx, value))
                                .unwrap();
                        }
                    });
                }
            });
            let want = ArrayD::from_shape_fn(IxDyn(&shape), |i| {
                value(i.as_array_view().as_slice().unwrap())
            });
            assert_eq!(sink.into_inner(), want, "shape {shape:?} chunks {chunks:?}");
        }
    }

    /// A zero-dimensional array is one chunk of one element.
    #[test]
    fn scalar_array() {
        let grid = ChunkGrid::regular(&[], &[]).unwrap();
        let sink = MemorySink::<f32>::new(&[]);
        sink.prepare(DType::F32, &grid).unwrap();
        let data = DynArray::from_array(ArrayD::from_elem(IxDyn(&[]), 2.5f32));
        sink.write_chunk(&[], &grid.chunk_region(&[]), data)
            .unwrap();
        assert_eq!(sink.into_inner()[IxDyn(&[])], 2.5);
    }

    /// Writes that are not one chunk of the prepared grid are refused, so no two writers
    /// can share memory; chunks never written come back as zeros, never uninitialised.
    #[test]
    fn bad_writes_are_refused_and_unwritten_chunks_are_zero() {
        let grid = ChunkGrid::regular(&[4, 6], &[2, 3]).unwrap();
        let ones = |idx: &[usize]| chunk(&grid, idx, |_| 1.0);

        let unprepared = MemorySink::<f32>::new(&[4, 6]);
        let err = unprepared
            .write_chunk(&[0, 0], &grid.chunk_region(&[0, 0]), ones(&[0, 0]))
            .unwrap_err();
        assert!(err.to_string().contains("before prepare"), "{err}");
        assert_eq!(
            unprepared.into_inner(),
            ArrayD::<f32>::zeros(IxDyn(&[4, 6]))
        );

        let sink = MemorySink::<f32>::new(&[4, 6]);
        assert!(sink.prepare(DType::F64, &grid).is_err());
        assert!(
            sink.prepare(DType::F32, &ChunkGrid::regular(&[4, 5], &[2, 3]).unwrap())
                .is_err()
        );
        sink.prepare(DType::F32, &grid).unwrap();
        assert!(sink.prepare(DType::F32, &grid).is_err(), "prepared twice");
        // A region that is not the chunk's, an index outside the grid, a wrong shape or
        // dtype.
        let r00 = grid.chunk_region(&[0, 0]);
        let other = Region::new(vec![0, 1], vec![2, 4]);
        assert!(sink.write_chunk(&[0, 0], &other, ones(&[0, 1])).is_err());
        assert!(sink.write_chunk(&[2, 0], &r00, ones(&[0, 0])).is_err());
        assert!(sink.write_chunk(&[0], &r00, ones(&[0, 0])).is_err());
        assert!(sink.write_chunk(&[0, 0], &r00, ones(&[1, 1])).is_ok());
        let r01 = grid.chunk_region(&[0, 1]);
        let wrong = DynArray::from_array(ArrayD::<f32>::ones(IxDyn(&[3, 2])));
        assert!(sink.write_chunk(&[0, 1], &r01, wrong).is_err(), "shape");
        let f64s = DynArray::from_array(ArrayD::<f64>::ones(IxDyn(&[2, 3])));
        assert!(sink.write_chunk(&[0, 1], &r01, f64s).is_err(), "dtype");
        // Each chunk once.
        let err = sink.write_chunk(&[0, 0], &r00, ones(&[0, 0])).unwrap_err();
        assert!(err.to_string().contains("written twice"), "{err}");
        sink.write_chunk(&[1, 1], &grid.chunk_region(&[1, 1]), ones(&[1, 1]))
            .unwrap();
        let mut want = ArrayD::<f32>::zeros(IxDyn(&[4, 6]));
        want.slice_mut(ndarray::s![0..2, 0..3]).fill(1.0);
        want.slice_mut(ndarray::s![2..4, 3..6]).fill(1.0);
        assert_eq!(sink.into_inner(), want);
    }
}
