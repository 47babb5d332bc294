//! [`LazyArray<T>`]: the typed handle users build computations with, and
//! [`DynLazyArray`], its dtype-erased form at file boundaries.
//!
//! ```
//! use lazyspy::{LazyArray, Boundary};
//! use ndarray::{ArrayD, IxDyn};
//!
//! let data = ArrayD::from_shape_fn(IxDyn(&[6, 8]), |i| (i[0] * 8 + i[1]) as f64);
//! let a = LazyArray::from_array(data.clone(), &[4, 3]).unwrap();
//! let doubled = (&a * 2.0).rechunk(&[6, 8]).unwrap();
//! assert_eq!(doubled.compute().unwrap(), data.mapv(|v| v * 2.0));
//! let total = a.sum(&[0, 1]).unwrap().compute().unwrap();
//! assert_eq!(total[[]], data.sum());
//! ```

use std::marker::PhantomData;
use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};

use crate::dtype::{DType, Element, Numeric, Ordered, Real, Summable};
use crate::dynarray::DynArray;
use crate::error::{BoxError, Error, Result};
use crate::exec::{ExecConfig, ExecStats};
use crate::graph::node::{BlockFn, BlockInfo, Node, NodeRef, Op};
use crate::graph::overlap::Boundary;
use crate::graph::reduce::{self, Moment};
use crate::graph::slice::{SliceArg, SlicePlan};
use crate::grid::{ChunkGrid, Region};
use crate::io::{ArraySource, ChunkSink, ChunkSource, FnSource, MemorySink};

/// A lazy n-dimensional array of `T`: a node of the computation graph. Operations build new
/// nodes; nothing is read or computed until a sink ([`LazyArray::compute`],
/// [`LazyArray::store`]) asks for chunks.
pub struct LazyArray<T: Element> {
    node: NodeRef,
    _type: PhantomData<fn() -> T>,
}

impl<T: Element> Clone for LazyArray<T> {
    fn clone(&self) -> Self {
        LazyArray::wrap(self.node.clone())
    }
}

impl<T: Element> std::fmt::Debug for LazyArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LazyArray<{}>({}, {:?})",
            T::DTYPE,
            self.node.name,
            self.node.grid
        )
    }
}

/// How `map_blocks_with` changes the block layout.
#[derive(Clone, Debug, Default)]
pub struct BlockLayout {
    /// Input axes the function removes (the input is first merged to one chunk along them).
    pub drop_axes: Vec<usize>,
    /// Output axes the function adds, as `(position in the output, length)`.
    pub new_axes: Vec<(usize, usize)>,
    /// Output chunk sizes of the kept input axes (same count of chunks as the input along
    /// each); `None` keeps the input's.
    pub kept_chunks: Option<Vec<Vec<usize>>>,
    /// Output dtype name for the plan; informational.
    pub label: Option<String>,
}

impl<T: Element> LazyArray<T> {
    pub(crate) fn wrap(node: NodeRef) -> Self {
        debug_assert_eq!(node.dtype, T::DTYPE);
        LazyArray {
            node,
            _type: PhantomData,
        }
    }

    /// An in-memory array cut into chunks of shape `chunks`.
    pub fn from_array(data: ArrayD<T>, chunks: &[usize]) -> Result<Self> {
        let grid = ChunkGrid::regular(data.shape(), chunks)?;
        Self::from_array_grid(data, grid)
    }

    /// An in-memory array with an explicit (possibly irregular) chunk grid.
    pub fn from_array_grid(data: ArrayD<T>, grid: ChunkGrid) -> Result<Self> {
        if grid.shape() != data.shape() {
            return Err(Error::Chunks(format!(
                "grid of shape {:?} for an array of shape {:?}",
                grid.shape(),
                data.shape()
            )));
        }
        Self::from_source(Arc::new(ArraySource::new(DynArray::from_array(data), grid)))
    }

    /// A virtual array whose values `func` computes for any region on demand: data far
    /// larger than memory that costs nothing until computed. `func` must return an array of
    /// exactly the region's shape (and may be called with any region, not only chunks).
    ///
    /// ```
    /// use lazyspy::LazyArray;
    /// use ndarray::{ArrayD, IxDyn};
    /// // a 1 TiB virtual array; only the 10 x 10 corner is ever generated
    /// let big = LazyArray::<f32>::from_fn(&[1 << 20, 1 << 18], &[1024, 1024], |r| {
    ///     Ok(ArrayD::from_shape_fn(IxDyn(&r.shape()), |i| (r.start[0] + i[0]) as f32))
    /// }).unwrap();
    /// let corner = big.slice(&[(0..10).into(), (0..10).into()]).unwrap().compute().unwrap();
    /// assert_eq!(corner[[9, 0]], 9.0);
    /// ```
    pub fn from_fn<F>(shape: &[usize], chunks: &[usize], func: F) -> Result<Self>
    where
        F: Fn(&Region) -> Result<ArrayD<T>, BoxError> + Send + Sync + 'static,
    {
        let grid = ChunkGrid::regular(shape, chunks)?;
        Self::from_source(Arc::new(FnSource::new(grid, Arc::new(func))))
    }

    /// An array read from a [`ChunkSource`] (a file backend), with its native chunking.
    pub fn from_source(source: Arc<dyn ChunkSource>) -> Result<Self> {
        if source.dtype() != T::DTYPE {
            return Err(Error::DType {
                expected: T::DTYPE,
                found: source.dtype(),
            });
        }
        Ok(DynLazyArray::from_source(source).into_typed_unchecked())
    }

    /// The array shape.
    pub fn shape(&self) -> Vec<usize> {
        self.node.grid.shape()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.node.grid.ndim()
    }

    /// The chunk grid.
    pub fn grid(&self) -> &ChunkGrid {
        &self.node.grid
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// Size of the whole array in bytes.
    pub fn nbytes(&self) -> u64 {
        self.shape().iter().product::<usize>() as u64 * T::DTYPE.size() as u64
    }

    /// The graph node behind this array.
    pub fn node(&self) -> &NodeRef {
        &self.node
    }

    /// Forgets the static element type.
    pub fn into_dyn(self) -> DynLazyArray {
        DynLazyArray { node: self.node }
    }

    /// Basic indexing: ranges (with positive steps), integer indices (drop the axis) and new
    /// axes; trailing axes not named are taken whole.
    pub fn slice(&self, args: &[SliceArg]) -> Result<Self> {
        let plan = SlicePlan::new(&self.shape(), args)?;
        let grid = plan.output_grid(&self.node.grid)?;
        Ok(Self::wrap(Node::new(
            "slice",
            T::DTYPE,
            grid,
            Op::Slice {
                input: self.node.clone(),
                plan,
            },
        )))
    }

    /// Stacks arrays of one shape along a new axis at position `axis`; chunks are unified to
    /// the first array's.
    pub fn stack(arrays: &[LazyArray<T>], axis: usize) -> Result<Self> {
        let first = arrays
            .first()
            .ok_or_else(|| Error::Invalid("stack needs at least one array".into()))?;
        if axis > first.ndim() {
            return Err(Error::Invalid(format!(
                "stack axis {axis} out of range for {} axes",
                first.ndim()
            )));
        }
        let mut inputs = vec![];
        for (k, a) in arrays.iter().enumerate() {
            if a.shape() != first.shape() {
                return Err(Error::Shape(format!(
                    "stack: array {k} has shape {:?}, array 0 has {:?}",
                    a.shape(),
                    first.shape()
                )));
            }
            inputs.push(a.rechunk_grid(first.grid().clone())?.node);
        }
        let grid = first.grid().insert_axis(axis, vec![1; arrays.len()])?;
        Ok(Self::wrap(Node::new(
            "stack",
            T::DTYPE,
            grid,
            Op::Stack { inputs, axis },
        )))
    }

    /// Joins arrays along an existing axis; the other axes are unified to the first array's
    /// chunks.
    pub fn concatenate(arrays: &[LazyArray<T>], axis: usize) -> Result<Self> {
        let first = arrays
            .first()
            .ok_or_else(|| Error::Invalid("concatenate needs at least one array".into()))?;
        if axis >= first.ndim() {
            return Err(Error::Invalid(format!(
                "concatenate axis {axis} out of range for {} axes",
                first.ndim()
            )));
        }
        let mut inputs = vec![];
        let mut along = vec![];
        for (k, a) in arrays.iter().enumerate() {
            let (mut s, mut s0) = (a.shape(), first.shape());
            if s.len() != s0.len() || {
                s[axis] = 0;
                s0[axis] = 0;
                s != s0
            } {
                return Err(Error::Shape(format!(
                    "concatenate: array {k} has shape {:?}, incompatible with {:?} along axis {axis}",
                    a.shape(),
                    first.shape()
                )));
            }
            let mut chunks = first.grid().chunks().to_vec();
            chunks[axis] = a.grid().axis_chunks(axis).to_vec();
            let a = a.rechunk_grid(ChunkGrid::from_chunks(chunks)?)?;
            along.extend(
                a.grid()
                    .axis_chunks(axis)
                    .iter()
                    .copied()
                    .filter(|&c| c > 0),
            );
            inputs.push(a.node);
        }
        let mut chunks = first.grid().chunks().to_vec();
        chunks[axis] = along;
        let grid = ChunkGrid::from_chunks(chunks)?;
        Ok(Self::wrap(Node::new(
            "concatenate",
            T::DTYPE,
            grid,
            Op::Concat { inputs, axis },
        )))
    }

    /// The same values in chunks of shape `chunks` (regular).
    pub fn rechunk(&self, chunks: &[usize]) -> Result<Self> {
        self.rechunk_grid(ChunkGrid::regular(&self.shape(), chunks)?)
    }

    /// The same values in an explicit chunk grid.
    pub fn rechunk_grid(&self, grid: ChunkGrid) -> Result<Self> {
        if grid.shape() != self.shape() {
            return Err(Error::Chunks(format!(
                "rechunk to a grid of shape {:?} from an array of shape {:?}",
                grid.shape(),
                self.shape()
            )));
        }
        if grid == self.node.grid {
            return Ok(self.clone());
        }
        Ok(Self::wrap(Node::new(
            "rechunk",
            T::DTYPE,
            grid,
            Op::Rechunk {
                input: self.node.clone(),
            },
        )))
    }

    /// Rechunks to chunks of about `target_bytes`, keeping the axes in `keep_whole` unsplit.
    pub fn rechunk_auto(&self, target_bytes: usize, keep_whole: &[usize]) -> Result<Self> {
        self.rechunk_grid(ChunkGrid::auto(
            &self.shape(),
            T::DTYPE.size(),
            target_bytes,
            keep_whole,
        )?)
    }

    /// Applies `func` to every block; the result must have the block's shape. The closure
    /// sees where the block sits through [`BlockInfo`].
    pub fn map_blocks<U, F>(&self, func: F) -> LazyArray<U>
    where
        U: Element,
        F: Fn(ArrayViewD<T>, &BlockInfo) -> Result<ArrayD<U>, BoxError> + Send + Sync + 'static,
    {
        self.map_blocks_with(BlockLayout::default(), func)
            .expect("the default layout is always valid")
    }

    /// Applies `func` to every block with a changed layout: axes dropped or added, or other
    /// block lengths (declared in `layout`, checked when each block is produced).
    pub fn map_blocks_with<U, F>(&self, layout: BlockLayout, func: F) -> Result<LazyArray<U>>
    where
        U: Element,
        F: Fn(ArrayViewD<T>, &BlockInfo) -> Result<ArrayD<U>, BoxError> + Send + Sync + 'static,
    {
        let ndim = self.ndim();
        let mut drop_axes = layout.drop_axes.clone();
        drop_axes.sort_unstable();
        drop_axes.dedup();
        if let Some(bad) = drop_axes.iter().find(|&&a| a >= ndim) {
            return Err(Error::Invalid(format!(
                "drop axis {bad} out of range for {ndim} axes"
            )));
        }
        // Merge the dropped axes into one chunk each.
        let input = if drop_axes
            .iter()
            .any(|&a| self.grid().axis_chunks(a).len() > 1)
        {
            let mut chunks = self.grid().chunks().to_vec();
            for &a in &drop_axes {
                chunks[a] = vec![self.shape()[a]];
            }
            self.rechunk_grid(ChunkGrid::from_chunks(chunks)?)?
        } else {
            self.clone()
        };
        let kept: Vec<usize> = (0..ndim).filter(|a| !drop_axes.contains(a)).collect();
        let mut chunks: Vec<Vec<usize>> = match &layout.kept_chunks {
            Some(c) => {
                if c.len() != kept.len()
                    || c.iter()
                        .zip(&kept)
                        .any(|(c, &a)| c.len() != input.grid().axis_chunks(a).len())
                {
                    return Err(Error::Chunks(format!(
                        "map_blocks output chunks {c:?} do not match the input's chunk counts on the kept axes"
                    )));
                }
                c.clone()
            }
            None => kept
                .iter()
                .map(|&a| input.grid().axis_chunks(a).to_vec())
                .collect(),
        };
        let mut new_axes: Vec<(usize, usize)> = layout.new_axes.clone();
        new_axes.sort_unstable();
        for &(pos, len) in &new_axes {
            if pos > chunks.len() {
                return Err(Error::Invalid(format!(
                    "new axis position {pos} out of range"
                )));
            }
            chunks.insert(pos, vec![len]);
        }
        let grid = ChunkGrid::from_chunks(chunks)?;
        let func: BlockFn = Arc::new(move |inputs, info| {
            let block = inputs[0].clone().into_typed::<T>()?;
            Ok(DynArray::from_array(func(block.view(), info)?))
        });
        Ok(LazyArray::wrap(Node::new(
            layout.label.unwrap_or_else(|| "map_blocks".into()),
            U::DTYPE,
            grid,
            Op::MapBlocks {
                input: input.node.clone(),
                drop_axes,
                new_axes: new_axes.iter().map(|(p, _)| *p).collect(),
                func,
            },
        )))
    }

    /// Applies `func` to every block extended by `depth[a]` neighbouring elements on both
    /// sides of each axis (taken from the neighbouring chunks, or made by `boundary` at the
    /// array edges); `func` returns either an array of the padded block's shape, which is
    /// trimmed back to the block, or one of the block's own shape (a function that trims
    /// its halo itself, like [`crate::filters::gaussian_filter_interior`]). The same as
    /// applying `func` to the whole padded array, chunk by chunk, as long as `func`'s reach
    /// is within `depth`.
    pub fn map_overlap<U, F>(
        &self,
        depth: &[usize],
        boundary: &[Boundary],
        func: F,
    ) -> Result<LazyArray<U>>
    where
        U: Element,
        F: Fn(ArrayViewD<T>, &BlockInfo) -> Result<ArrayD<U>, BoxError> + Send + Sync + 'static,
    {
        let ndim = self.ndim();
        if depth.len() != ndim {
            return Err(Error::Invalid(format!(
                "depth {depth:?} for an array of {ndim} axes"
            )));
        }
        let boundary: Vec<Boundary> = match boundary.len() {
            1 => vec![boundary[0]; ndim],
            n if n == ndim => boundary.to_vec(),
            _ => {
                return Err(Error::Invalid(format!(
                    "{} boundary modes for an array of {ndim} axes (give 1 or {ndim})",
                    boundary.len()
                )));
            }
        };
        let func: BlockFn = Arc::new(move |inputs, info| {
            let block = inputs[0].clone().into_typed::<T>()?;
            Ok(DynArray::from_array(func(block.view(), info)?))
        });
        Ok(LazyArray::wrap(Node::new(
            "map_overlap",
            U::DTYPE,
            self.node.grid.clone(),
            Op::Overlap {
                input: self.node.clone(),
                depth: depth.to_vec(),
                boundary,
                func,
            },
        )))
    }

    /// Applies a function to every element.
    pub fn map<U, F>(&self, func: F) -> LazyArray<U>
    where
        U: Element,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        self.map_named("map", func)
    }

    fn map_named<U, F>(&self, name: &str, func: F) -> LazyArray<U>
    where
        U: Element,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        let func: BlockFn = Arc::new(move |inputs, _| {
            let a = inputs[0].clone().into_typed::<T>()?;
            Ok(DynArray::from_array(a.map(|&v| func(v))))
        });
        LazyArray::wrap(Node::new(
            name,
            U::DTYPE,
            self.node.grid.clone(),
            Op::Elementwise {
                inputs: vec![self.node.clone()],
                func,
            },
        ))
    }

    /// Casts to another element type (NumPy `astype` semantics).
    pub fn astype<U: Element>(&self) -> LazyArray<U> {
        if T::DTYPE == U::DTYPE {
            return LazyArray::wrap(self.node.clone());
        }
        self.map_named(&format!("astype({})", U::DTYPE), |v| v.cast::<U>())
    }

    /// Combines two arrays elementwise after broadcasting them together (NumPy rules).
    pub fn zip_with<U, V, F>(&self, other: &LazyArray<U>, func: F) -> Result<LazyArray<V>>
    where
        U: Element,
        V: Element,
        F: Fn(T, U) -> V + Send + Sync + 'static,
    {
        self.zip_named("zip_with", other, func)
    }

    fn zip_named<U, V, F>(&self, name: &str, other: &LazyArray<U>, func: F) -> Result<LazyArray<V>>
    where
        U: Element,
        V: Element,
        F: Fn(T, U) -> V + Send + Sync + 'static,
    {
        let (inputs, grid) = unify_broadcast(&[self.node.clone(), other.node.clone()])?;
        let func: BlockFn = Arc::new(move |inputs, info| {
            let shape = IxDyn(&info.region.shape());
            let a = inputs[0].clone().into_typed::<T>()?;
            let b = inputs[1].clone().into_typed::<U>()?;
            let (a, b) = match (a.broadcast(shape.clone()), b.broadcast(shape)) {
                (Some(a), Some(b)) => (a, b),
                _ => return Err("operands do not broadcast to the block".into()),
            };
            Ok(DynArray::from_array(
                Zip::from(&a).and(&b).map_collect(|&x, &y| func(x, y)),
            ))
        });
        Ok(LazyArray::wrap(Node::new(
            name,
            V::DTYPE,
            grid,
            Op::Elementwise { inputs, func },
        )))
    }

    /// Computes the whole array into memory with the default configuration.
    pub fn compute(&self) -> Result<ArrayD<T>> {
        self.compute_with(&ExecConfig::default())
    }

    /// Computes the whole array into memory.
    pub fn compute_with(&self, config: &ExecConfig) -> Result<ArrayD<T>> {
        let sink = MemorySink::<T>::new(&self.shape());
        self.store(&sink, config)?;
        Ok(sink.into_inner())
    }

    /// Streams every output chunk to `sink` as soon as it is computed.
    pub fn store(&self, sink: &dyn ChunkSink, config: &ExecConfig) -> Result<ExecStats> {
        crate::exec::run(&self.node, sink, config)
    }

    /// The execution plan as text: nodes, chunk and task counts, projected peak memory.
    pub fn explain(&self, config: &ExecConfig) -> Result<String> {
        Ok(crate::plan::Plan::build(&self.node, config, None)?.explain())
    }
}

impl<T: Numeric> LazyArray<T> {
    /// `self + other`, broadcasting.
    pub fn add(&self, other: &LazyArray<T>) -> Result<LazyArray<T>> {
        self.zip_named("add", other, T::add)
    }
    /// `self - other`, broadcasting.
    pub fn sub(&self, other: &LazyArray<T>) -> Result<LazyArray<T>> {
        self.zip_named("sub", other, T::sub)
    }
    /// `self * other`, broadcasting.
    pub fn mul(&self, other: &LazyArray<T>) -> Result<LazyArray<T>> {
        self.zip_named("mul", other, T::mul)
    }
    /// `self / other`, broadcasting (integer division by zero gives 0).
    pub fn div(&self, other: &LazyArray<T>) -> Result<LazyArray<T>> {
        self.zip_named("div", other, T::div)
    }
}

macro_rules! scalar_op {
    ($trait:ident, $method:ident, $f:path, $name:literal) => {
        impl<T: Numeric> std::ops::$trait<T> for &LazyArray<T> {
            type Output = LazyArray<T>;
            fn $method(self, rhs: T) -> LazyArray<T> {
                self.map_named($name, move |v| $f(v, rhs))
            }
        }
        impl<T: Numeric> std::ops::$trait<T> for LazyArray<T> {
            type Output = LazyArray<T>;
            fn $method(self, rhs: T) -> LazyArray<T> {
                std::ops::$trait::$method(&self, rhs)
            }
        }
    };
}
scalar_op!(Add, add, Numeric::add, "add_scalar");
scalar_op!(Sub, sub, Numeric::sub, "sub_scalar");
scalar_op!(Mul, mul, Numeric::mul, "mul_scalar");
scalar_op!(Div, div, Numeric::div, "div_scalar");

impl<T: Summable> LazyArray<T> {
    /// Sum over `axes` (integers sum to 64-bit integers; floats accumulate in `f64`).
    pub fn sum(&self, axes: &[usize]) -> Result<LazyArray<T::Output>> {
        let axes = reduce::normalize_axes(self.ndim(), axes)?;
        let node = reduce::build("sum", &self.node, &axes, reduce::sum_kernels::<T>(&axes))?;
        Ok(LazyArray::wrap(node))
    }
}

impl<T: Ordered> LazyArray<T> {
    /// Minimum over `axes` (NaN propagates). An empty reduction is an error.
    pub fn min(&self, axes: &[usize]) -> Result<LazyArray<T>> {
        self.extremum("min", axes, false)
    }
    /// Maximum over `axes` (NaN propagates). An empty reduction is an error.
    pub fn max(&self, axes: &[usize]) -> Result<LazyArray<T>> {
        self.extremum("max", axes, true)
    }
    fn extremum(&self, name: &str, axes: &[usize], is_max: bool) -> Result<LazyArray<T>> {
        let axes = reduce::normalize_axes(self.ndim(), axes)?;
        let shape = self.shape();
        if axes.iter().any(|&a| shape[a] == 0) {
            return Err(Error::Invalid(format!(
                "{name} over an empty axis of shape {shape:?} has no identity"
            )));
        }
        let node = reduce::build(
            name,
            &self.node,
            &axes,
            reduce::extremum_kernels::<T>(&axes, is_max),
        )?;
        Ok(LazyArray::wrap(node))
    }
}

impl<T: Real> LazyArray<T> {
    /// Mean over `axes` (`f64` for integers, the float type for floats).
    pub fn mean(&self, axes: &[usize]) -> Result<LazyArray<T::Stat>> {
        let axes = reduce::normalize_axes(self.ndim(), axes)?;
        let shape = self.shape();
        let count = axes.iter().map(|&a| shape[a]).product();
        let node = reduce::build(
            "mean",
            &self.node,
            &axes,
            reduce::mean_kernels::<T>(&axes, count),
        )?;
        Ok(LazyArray::wrap(node))
    }
    /// Variance over `axes` with `ddof` delta degrees of freedom (NumPy's `var`).
    pub fn var(&self, axes: &[usize], ddof: f64) -> Result<LazyArray<T::Stat>> {
        self.moment("var", axes, Moment::Var { ddof })
    }
    /// Standard deviation over `axes` with `ddof` delta degrees of freedom.
    pub fn std(&self, axes: &[usize], ddof: f64) -> Result<LazyArray<T::Stat>> {
        self.moment("std", axes, Moment::Std { ddof })
    }
    fn moment(&self, name: &str, axes: &[usize], moment: Moment) -> Result<LazyArray<T::Stat>> {
        let axes = reduce::normalize_axes(self.ndim(), axes)?;
        let node = reduce::build(
            name,
            &self.node,
            &axes,
            reduce::moment_kernels::<T>(&axes, moment),
        )?;
        Ok(LazyArray::wrap(node))
    }
}

/// The broadcast shape of several shapes (NumPy rules).
pub fn broadcast_shapes(shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
    let ndim = shapes.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = vec![1; ndim];
    for shape in shapes {
        let offset = ndim - shape.len();
        for (j, &n) in shape.iter().enumerate() {
            let o = &mut out[j + offset];
            if *o == 1 {
                *o = n;
            } else if n != 1 && n != *o {
                return Err(Error::Shape(format!(
                    "shapes {shapes:?} do not broadcast together"
                )));
            }
        }
    }
    Ok(out)
}

/// Broadcasts nodes together: the output grid takes each axis's chunks from the first
/// operand that spans that axis; other spanning operands are rechunked to match.
fn unify_broadcast(nodes: &[NodeRef]) -> Result<(Vec<NodeRef>, ChunkGrid)> {
    let shapes: Vec<Vec<usize>> = nodes.iter().map(|n| n.grid.shape()).collect();
    let out_shape = broadcast_shapes(&shapes)?;
    let ndim = out_shape.len();
    let mut out_chunks: Vec<Option<Vec<usize>>> = vec![None; ndim];
    for node in nodes {
        let offset = ndim - node.grid.ndim();
        for j in 0..node.grid.ndim() {
            let o = j + offset;
            if out_chunks[o].is_none() && node.grid.shape()[j] == out_shape[o] {
                out_chunks[o] = Some(node.grid.axis_chunks(j).to_vec());
            }
        }
    }
    let out_chunks: Vec<Vec<usize>> = out_chunks
        .into_iter()
        .zip(&out_shape)
        .map(|(c, &n)| c.unwrap_or_else(|| vec![n]))
        .collect();
    let grid = ChunkGrid::from_chunks(out_chunks.clone())?;
    let mut inputs = vec![];
    for node in nodes {
        let offset = ndim - node.grid.ndim();
        let shape = node.grid.shape();
        let wanted: Vec<Vec<usize>> = (0..node.grid.ndim())
            .map(|j| {
                if shape[j] == out_shape[j + offset] {
                    out_chunks[j + offset].clone()
                } else {
                    vec![shape[j]]
                }
            })
            .collect();
        let wanted = ChunkGrid::from_chunks(wanted)?;
        let node = if wanted == node.grid {
            node.clone()
        } else {
            Node::new(
                "rechunk",
                node.dtype,
                wanted,
                Op::Rechunk {
                    input: node.clone(),
                },
            )
        };
        inputs.push(node);
    }
    Ok((inputs, grid))
}

/// A lazy array whose element type is known only at run time (what file readers return).
#[derive(Clone)]
pub struct DynLazyArray {
    node: NodeRef,
}

impl std::fmt::Debug for DynLazyArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DynLazyArray<{}>({}, {:?})",
            self.node.dtype, self.node.name, self.node.grid
        )
    }
}

impl DynLazyArray {
    /// An array read from a [`ChunkSource`].
    pub fn from_source(source: Arc<dyn ChunkSource>) -> Self {
        let name = format!("read {}", source.describe());
        let node = Node::new(
            name,
            source.dtype(),
            source.grid().clone(),
            Op::Source(source),
        );
        DynLazyArray { node }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.node.dtype
    }

    /// The shape.
    pub fn shape(&self) -> Vec<usize> {
        self.node.grid.shape()
    }

    /// The chunk grid.
    pub fn grid(&self) -> &ChunkGrid {
        &self.node.grid
    }

    /// The graph node behind this array.
    pub fn node(&self) -> &NodeRef {
        &self.node
    }

    /// The typed array; an error if the dtype is not `T`.
    pub fn into_typed<T: Element>(self) -> Result<LazyArray<T>> {
        if self.node.dtype != T::DTYPE {
            return Err(Error::DType {
                expected: T::DTYPE,
                found: self.node.dtype,
            });
        }
        Ok(LazyArray::wrap(self.node))
    }

    fn into_typed_unchecked<T: Element>(self) -> LazyArray<T> {
        LazyArray::wrap(self.node)
    }

    /// Casts to `T` whatever the stored dtype (NumPy `astype` semantics).
    pub fn cast<T: Element>(&self) -> LazyArray<T> {
        if self.node.dtype == T::DTYPE {
            return LazyArray::wrap(self.node.clone());
        }
        let func: BlockFn = Arc::new(|inputs, _| Ok(inputs[0].cast(T::DTYPE)));
        LazyArray::wrap(Node::new(
            format!("astype({})", T::DTYPE),
            T::DTYPE,
            self.node.grid.clone(),
            Op::Elementwise {
                inputs: vec![self.node.clone()],
                func,
            },
        ))
    }

    /// The same values in regular chunks of `chunks` (any dtype).
    pub fn rechunk(&self, chunks: &[usize]) -> Result<DynLazyArray> {
        crate::with_dtype!(self.node.dtype, T => {
            Ok(LazyArray::<T>::wrap(self.node.clone()).rechunk(chunks)?.into_dyn())
        })
    }

    /// Streams every chunk to `sink` (any dtype).
    pub fn store(&self, sink: &dyn ChunkSink, config: &ExecConfig) -> Result<ExecStats> {
        crate::exec::run(&self.node, sink, config)
    }

    /// Computes into a [`DynArray`].
    pub fn compute_with(&self, config: &ExecConfig) -> Result<DynArray> {
        crate::with_dtype!(self.node.dtype, T => {
            let a = LazyArray::<T>::wrap(self.node.clone()).compute_with(config)?;
            Ok(DynArray::from_array(a))
        })
    }
}
