//! The engine's boundary with storage: [`ChunkSource`] (where data comes from) and
//! [`ChunkSink`] (where finished output chunks go), with in-memory implementations.
//! File formats implement these traits in their own modules.

pub mod atomic;
pub mod images;
mod memory;
pub(crate) mod spill;

pub use memory::{ArraySource, FnSource, MemorySink};

use crate::dtype::DType;
use crate::dynarray::DynArray;
use crate::error::BoxError;
use crate::grid::{ChunkGrid, Region};

/// Something chunked data can be read from: a file, an in-memory array, a generator.
///
/// Implementations must be thread-safe: the executor reads different chunks from several
/// threads at once. Reads must be pure (the same region always gives the same values), so a
/// task can be retried or run elsewhere.
pub trait ChunkSource: Send + Sync {
    /// The element type of the data.
    fn dtype(&self) -> DType;

    /// The native chunking of the data (its shape is the array shape).
    fn grid(&self) -> &ChunkGrid;

    /// Reads an arbitrary region (any box inside the shape).
    fn read_region(&self, region: &Region) -> Result<DynArray, BoxError>;

    /// Reads one native chunk. The default reads the chunk's region.
    fn read_chunk(&self, index: &[usize]) -> Result<DynArray, BoxError> {
        self.read_region(&self.grid().chunk_region(index))
    }

    /// Whether reading a region that is not a whole chunk costs about as much as the
    /// region's size (true for memory and generators; false for compressed chunked files,
    /// where a partial read decodes whole chunks). The planner reads regions directly from
    /// cheap sources and shares whole decoded chunks of the others.
    fn cheap_regions(&self) -> bool {
        false
    }

    /// A short description for plans and error messages (e.g. a file path and dataset).
    fn describe(&self) -> String {
        "source".to_string()
    }
}

/// Somewhere finished output chunks are written as soon as they are computed.
///
/// `write_chunk` is called from several worker threads at once, each chunk exactly once.
pub trait ChunkSink: Send + Sync {
    /// Called once before anything runs, with the dtype and chunking of the array that will
    /// be written. A sink rejects a layout it cannot write here, before any work is done.
    fn prepare(&self, dtype: DType, grid: &ChunkGrid) -> Result<(), BoxError> {
        let _ = (dtype, grid);
        Ok(())
    }

    /// Whether a chunk is already stored (for resuming an interrupted write). Chunks that
    /// are done are neither computed nor written again.
    fn is_done(&self, index: &[usize]) -> bool {
        let _ = index;
        false
    }

    /// Stores one finished chunk; `region` is where it lies in the array.
    fn write_chunk(&self, index: &[usize], region: &Region, data: DynArray)
    -> Result<(), BoxError>;

    /// Called once after every chunk was written successfully.
    fn finish(&self) -> Result<(), BoxError> {
        Ok(())
    }
}
