//! [`Signal`]: a signal ready to compute or write — its stored description
//! ([`SignalTree`]: axes, metadata, original_metadata, attributes, models) paired with its
//! data ([`SignalData`]: a lazy array, or the in-memory cells of ragged and other
//! non-numeric data). Readers of every format produce it; writers of every format take it.
//!
//! Also here: [`get_signal_chunks`], RosettaSciIO's default chunking of `data` (spec §6.1),
//! shared by the `.zspy` and `.hspy` writers.

use crate::dtype::DType;
use crate::graph::DynLazyArray;
use crate::signal::axes::Axis;
use crate::signal::signal::{DataDesc, SignalTree};
use crate::signal::tree::{Array, ArrayDType, Dict, Value};

/// `ZspyWriter.target_size`: the byte target of one default `.zspy` data chunk.
pub const ZSPY_TARGET_CHUNK_BYTES: f64 = 1e8;
/// `HyperspyWriter.target_size`: the byte target of one default `.hspy` data chunk.
pub const HSPY_TARGET_CHUNK_BYTES: f64 = 1e6;

/// The values of a signal.
#[derive(Clone)]
pub enum SignalData {
    /// Numeric data, computed or read chunk by chunk on demand.
    Lazy(DynLazyArray),
    /// Data the engine cannot hold (ragged/object cells, strings, structured records such
    /// as RGB), read whole, as RosettaSciIO does for such data.
    InMemory(Array),
}

impl std::fmt::Debug for SignalData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignalData::Lazy(a) => write!(f, "Lazy({}, {:?})", a.dtype(), a.shape()),
            SignalData::InMemory(a) => write!(f, "InMemory({}, {:?})", a.dtype, a.shape),
        }
    }
}

impl SignalData {
    /// The array shape (the outer shape for ragged data).
    pub fn shape(&self) -> Vec<usize> {
        match self {
            SignalData::Lazy(a) => a.shape().to_vec(),
            SignalData::InMemory(a) => a.shape.clone(),
        }
    }

    /// The lazy array, when the data is numeric.
    pub fn as_lazy(&self) -> Option<&DynLazyArray> {
        match self {
            SignalData::Lazy(a) => Some(a),
            SignalData::InMemory(_) => None,
        }
    }
}

/// A signal: its description and its data.
#[derive(Clone, Debug)]
pub struct Signal {
    /// Axes, metadata, original_metadata, attributes, models and the stored data layout.
    pub tree: SignalTree,
    /// The values.
    pub data: SignalData,
}

impl Signal {
    /// A signal over `data` with default uniform axes (scale 1, offset 0, no name or units):
    /// the last `signal_dims` axes are signal axes, the others navigation axes. The
    /// metadata holds `General/title` and `Signal/signal_type` (empty), as HyperSpy gives a
    /// new signal.
    ///
    /// ```
    /// use lazyspy::LazyArray;
    /// use lazyspy::signal::Signal;
    ///
    /// let data = LazyArray::from_array(ndarray::ArrayD::<f32>::zeros(vec![4, 8, 8]), &[1, 8, 8]).unwrap();
    /// let s = Signal::from_lazy(data.into_dyn(), 2, "scan");
    /// assert_eq!(s.tree.signal_dimension(), 2);
    /// assert_eq!(s.tree.title(), Some("scan"));
    /// ```
    pub fn from_lazy(data: DynLazyArray, signal_dims: usize, title: &str) -> Signal {
        let shape = data.shape();
        let nav = shape.len().saturating_sub(signal_dims);
        let axes = shape
            .iter()
            .enumerate()
            .map(|(i, &n)| Axis::uniform(None, None, n, 1.0, 0.0, i < nav))
            .collect();
        Signal::with_axes(data, axes, title, "")
    }

    /// A signal over `data` with the given axes (one per dimension, array order), title
    /// and `signal_type`.
    pub fn with_axes(
        data: DynLazyArray,
        axes: Vec<Axis>,
        title: &str,
        signal_type: &str,
    ) -> Signal {
        let metadata = Dict::new()
            .with("General", Dict::new().with("title", title))
            .with("Signal", Dict::new().with("signal_type", signal_type));
        let attributes = Dict::new()
            .with("_lazy", false)
            .with("ragged", false)
            .with("learning_results", Dict::new());
        let tree = SignalTree {
            group_path: format!(
                "/Experiments/{}",
                crate::signal::hierarchy::experiment_name(title)
            ),
            package: "hyperspy".into(),
            package_version: HYPERSPY_VERSION.into(),
            data: data_desc_of(&data),
            axes,
            metadata,
            original_metadata: Dict::new(),
            attributes,
            models: Dict::new(),
        };
        Signal {
            tree,
            data: SignalData::Lazy(data),
        }
    }

    /// Replaces the data by `data` of the same number of dimensions, keeping the tree, and
    /// updates the stored layout (dtype, shape, chunks) and the axis sizes. Errors when the
    /// number of dimensions differs.
    pub fn with_data(mut self, data: DynLazyArray) -> Result<Signal, String> {
        if data.shape().len() != self.tree.axes.len() {
            return Err(format!(
                "the new data has {} dimensions, the signal has {} axes",
                data.shape().len(),
                self.tree.axes.len()
            ));
        }
        for (axis, &n) in self.tree.axes.iter_mut().zip(data.shape().iter()) {
            if axis.size() != Some(n) {
                axis.dict_mut().insert("size", Value::Int(n as i64));
            }
        }
        self.tree.data = data_desc_of(&data);
        self.data = SignalData::Lazy(data);
        Ok(self)
    }

    /// The array indices of the signal axes (`navigate == false`), as `get_signal_chunks`
    /// takes them.
    pub fn signal_axes(&self) -> Vec<usize> {
        (0..self.tree.axes.len())
            .filter(|&i| self.tree.is_signal_axis(i))
            .collect()
    }
}

/// The HyperSpy version recorded as `package_version` of signals made here.
pub const HYPERSPY_VERSION: &str = "2.5.0";

/// The stored-layout description of a lazy array (no storage details yet).
pub fn data_desc_of(data: &DynLazyArray) -> DataDesc {
    let grid = data.grid();
    DataDesc {
        dtype: ArrayDType::from_engine_dtype(data.dtype()),
        shape: data.shape(),
        chunks: (0..grid.ndim())
            .map(|d| grid.axis_chunks(d).first().copied().unwrap_or(1))
            .collect(),
        storage: Dict::new(),
        ragged_shapes: false,
        values: None,
    }
}

impl ArrayDType {
    /// The little-endian stored type of an engine dtype.
    pub fn from_engine_dtype(d: DType) -> ArrayDType {
        let le = false;
        match d {
            DType::Bool => ArrayDType::Bool,
            DType::I8 => ArrayDType::Int {
                bytes: 1,
                big_endian: le,
            },
            DType::I16 => ArrayDType::Int {
                bytes: 2,
                big_endian: le,
            },
            DType::I32 => ArrayDType::Int {
                bytes: 4,
                big_endian: le,
            },
            DType::I64 => ArrayDType::Int {
                bytes: 8,
                big_endian: le,
            },
            DType::U8 => ArrayDType::UInt {
                bytes: 1,
                big_endian: le,
            },
            DType::U16 => ArrayDType::UInt {
                bytes: 2,
                big_endian: le,
            },
            DType::U32 => ArrayDType::UInt {
                bytes: 4,
                big_endian: le,
            },
            DType::U64 => ArrayDType::UInt {
                bytes: 8,
                big_endian: le,
            },
            DType::F32 => ArrayDType::Float {
                bytes: 4,
                big_endian: le,
            },
            DType::F64 => ArrayDType::Float {
                bytes: 8,
                big_endian: le,
            },
            DType::C64 => ArrayDType::Complex {
                bytes: 8,
                big_endian: le,
            },
            DType::C128 => ArrayDType::Complex {
                bytes: 16,
                big_endian: le,
            },
        }
    }
}

/// RosettaSciIO's `get_signal_chunks` (spec §6.1): the default chunk shape of `data`, at
/// least one whole signal per chunk, about `target_bytes` per chunk
/// ([`ZSPY_TARGET_CHUNK_BYTES`] or [`HSPY_TARGET_CHUNK_BYTES`]). `signal_axes` are array
/// indices. Returns `None` where the reference falls back to the library's guess (`shape ==
/// (0,)`).
///
/// ```
/// use lazyspy::signal::model::{get_signal_chunks, HSPY_TARGET_CHUNK_BYTES};
/// assert_eq!(get_signal_chunks(&[100, 100, 2048], 8, &[2], HSPY_TARGET_CHUNK_BYTES),
///            Some(vec![7, 7, 2048]));
/// ```
pub fn get_signal_chunks(
    shape: &[usize],
    itemsize: usize,
    signal_axes: &[usize],
    target_bytes: f64,
) -> Option<Vec<usize>> {
    if shape == [0] {
        return None;
    }
    let bytes_per_signal: f64 = signal_axes
        .iter()
        .map(|&i| shape[i] as f64)
        .product::<f64>()
        * itemsize as f64;
    let signals_per_chunk = (target_bytes / bytes_per_signal).floor();
    let nav_axes: Vec<usize> = (0..shape.len())
        .filter(|i| !signal_axes.contains(i))
        .collect();
    let num_signals: f64 = nav_axes.iter().map(|&i| shape[i] as f64).product();
    let mut chunks = shape.to_vec();
    if signals_per_chunk < 2.0 || nav_axes.is_empty() {
        for &i in &nav_axes {
            chunks[i] = 1;
        }
        return Some(chunks);
    }
    if signals_per_chunk > num_signals {
        return Some(chunks);
    }
    let mut small: Vec<usize> = Vec::new();
    let mut c;
    loop {
        let small_product: f64 = small.iter().map(|&i| shape[i] as f64).product();
        let k = (nav_axes.len() - small.len()) as f64;
        c = (signals_per_chunk / small_product).powf(1.0 / k).floor();
        let newly: Vec<usize> = nav_axes
            .iter()
            .copied()
            .filter(|i| !small.contains(i) && (shape[*i] as f64) < c)
            .collect();
        if newly.is_empty() || small.len() + newly.len() == nav_axes.len() {
            small.extend(newly);
            break;
        }
        small.extend(newly);
    }
    for &i in &nav_axes {
        if !small.contains(&i) {
            chunks[i] = (c as usize).max(1);
        }
    }
    Some(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_chunks_match_the_spec_table() {
        let h = HSPY_TARGET_CHUNK_BYTES;
        let z = ZSPY_TARGET_CHUNK_BYTES;
        type Case<'a> = (&'a [usize], usize, &'a [usize], &'a [usize], &'a [usize]);
        let cases: &[Case] = &[
            (&[100, 100, 2048], 8, &[2], &[7, 7, 2048], &[78, 78, 2048]),
            (
                &[100, 100, 2048],
                4,
                &[2],
                &[11, 11, 2048],
                &[100, 100, 2048],
            ),
            (
                &[100, 100, 2048],
                2,
                &[2],
                &[15, 15, 2048],
                &[100, 100, 2048],
            ),
            (&[1000, 3, 2048], 8, &[2], &[20, 3, 2048], &[1000, 3, 2048]),
            (
                &[64, 64, 256, 256],
                2,
                &[2, 3],
                &[2, 2, 256, 256],
                &[27, 27, 256, 256],
            ),
            (
                &[64, 64, 256, 256],
                4,
                &[2, 3],
                &[1, 1, 256, 256],
                &[19, 19, 256, 256],
            ),
            (
                &[10, 20, 30, 40, 50],
                4,
                &[3, 4],
                &[4, 4, 4, 40, 50],
                &[10, 20, 30, 40, 50],
            ),
            (
                &[5, 1000, 1000],
                4,
                &[1, 2],
                &[1, 1000, 1000],
                &[5, 1000, 1000],
            ),
            (&[2, 100000], 8, &[1], &[1, 100000], &[2, 100000]),
            (&[4, 40, 1024], 8, &[2], &[4, 30, 1024], &[4, 40, 1024]),
            (&[20, 20, 512], 8, &[2], &[15, 15, 512], &[20, 20, 512]),
            (&[20, 30, 40], 4, &[], &[20, 30, 40], &[20, 30, 40]),
            (&[512, 512], 1, &[0, 1], &[512, 512], &[512, 512]),
        ];
        for (shape, item, sig, hspy, zspy) in cases {
            assert_eq!(
                get_signal_chunks(shape, *item, sig, h).as_deref(),
                Some(*hspy),
                "hspy {shape:?}"
            );
            assert_eq!(
                get_signal_chunks(shape, *item, sig, z).as_deref(),
                Some(*zspy),
                "zspy {shape:?}"
            );
        }
        assert_eq!(get_signal_chunks(&[0], 8, &[], h), None);
    }
}
