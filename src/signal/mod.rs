//! The HyperSpy signal model and the hierarchical mapping shared by `.zspy` and `.hspy`.
//!
//! HyperSpy stores a signal as a tree of groups, datasets and attributes (see
//! `shared/spec/hyperspy-formats.md`, sections 2 and 3). This module holds:
//!
//! * [`tree`]: the metadata value model ([`Value`], [`Dict`], [`Array`], ...), able to hold
//!   every kind of value HyperSpy stores, with path access (`dict.get_path("General/title")`).
//! * [`axes`]: the axis model ([`Axis`]): uniform, non-uniform and functional axes, parsed
//!   from and rendered to the attribute form of the `axis-<i>` groups.
//! * [`hierarchy`]: the container traits ([`GroupRead`], [`GroupWrite`]) and the one
//!   implementation of RosettaSciIO's write rules (`dict2group`, `parse_structure`) and
//!   read rules (`_group2dict`, `group2signaldict`), quirks included.
//! * [`zarr`]: a Zarr v2 backend of those traits (metadata, small arrays), reading
//!   directory and zip stores alike through [`zarr_store`] ([`ZarrStore`]; zip files are
//!   read by [`zip`]).
//! * [`zspy_data`]: the data of `.zspy` signals ([`ZspyArraySource`], a chunk source
//!   decoded with `zarrs`; [`open_zspy`], every signal of a file with its data).
//! * [`model`]: [`Signal`] (a [`SignalTree`] with its data) and RosettaSciIO's default
//!   data chunking ([`get_signal_chunks`]).
//! * [`zspy_write`] / [`zspy_zip`]: the streaming `.zspy` writer (directory and zip
//!   stores) over the atomic store.
//! * [`hspy`]: the `.hspy` (HDF5) format: [`read_hspy_file`], [`open_hspy`] (lazy data
//!   through [`HspyArraySource`]) and the streaming writer [`write_hspy`].
//! * [`memory`]: an in-memory backend, for tests and for building trees before writing.
//! * [`signal`](mod@signal): [`SignalTree`], the description of one stored signal, and
//!   [`read_zspy_metadata`].
//! * [`json`]: the JSON reader/writer used for Zarr attributes (bare `NaN`/`Infinity`,
//!   insertion order kept, Python's `json.dumps` layout on output).

pub mod axes;
pub mod destination;
pub mod hierarchy;
pub mod hspy;
pub mod json;
pub mod memory;
pub mod model;
pub mod ome_zarr;
#[allow(clippy::module_inception)]
pub mod signal;
pub mod tree;
pub mod zarr;
pub mod zarr_store;
pub mod zarr_write;
pub mod zip;
pub mod zspy_data;
pub mod zspy_write;
pub mod zspy_zip;

use std::fmt;

pub use axes::{Axis, AxisKind};
pub use hierarchy::{
    AttrWrite, DatasetInfo, DatasetValue, FormatVersion, GroupRead, GroupWrite, HierarchicalFile,
    NodeKind, ReadOptions, dict2group, group2dict, group2signaldict, read_hierarchical,
    write_signal_metadata,
};
pub use hspy::{
    HspyArraySource, HspyCompression, HspyWriteOptions, HspyWriteReport, open_hspy, read_hspy_file,
    write_hspy,
};
pub use memory::{MemFlavor, MemGroup};
pub use model::{Signal, SignalData, get_signal_chunks};
pub use signal::{DataDesc, SignalTree, read_zspy_file, read_zspy_metadata, read_zspy_store};
pub use tree::{Array, ArrayDType, ArrayData, ArrayRef, Dict, SeqKind, StructField, Value};
pub use zarr::{ZarrArrayMeta, ZarrDirGroup};
pub use zarr_store::ZarrStore;
pub use zarr_write::{DirKeys, MemKeys, ZarrDirWriter, ZarrKeys};
pub use zspy_data::{ZspyArraySource, open_zspy, open_zspy_data, open_zspy_signal};
pub use zspy_write::{
    ZspyCompressor, ZspyWriteOptions, ZspyWriteReport, write_zspy, write_zspy_signals,
};

/// Where something is: a file (or store) and a path (key) inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file or store, as given by the caller (`<memory>` for in-memory trees).
    pub file: String,
    /// The path inside the file, `/`-separated, `/` for the root.
    pub path: String,
}

impl Location {
    /// A location in `file` at `path`.
    pub fn new(file: impl Into<String>, path: impl Into<String>) -> Self {
        Location {
            file: file.into(),
            path: path.into(),
        }
    }

    /// The location of the child `name` of this location.
    pub fn child(&self, name: &str) -> Location {
        let path = if self.path.is_empty() || self.path == "/" {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.path)
        };
        Location {
            file: self.file.clone(),
            path,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.path)
    }
}

/// Errors of the signal layer. Every variant names the file and the key involved.
#[derive(thiserror::Error, Debug)]
pub enum SignalError {
    /// A required member (group, dataset, attribute, `.zgroup` ...) is absent.
    #[error("{file}: missing {what} '{key}'")]
    Missing {
        /// The file or store.
        file: String,
        /// The key (path) that was looked for.
        key: String,
        /// What kind of member was expected.
        what: String,
    },
    /// A JSON document (`.zgroup`, `.zattrs`, `.zarray`) could not be parsed.
    #[error("{file}: invalid JSON in '{key}' at line {line}, column {column}: {msg}")]
    Json {
        /// The file or store.
        file: String,
        /// The JSON document's key.
        key: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong.
        msg: String,
    },
    /// A filesystem error.
    #[error("{file}: I/O error on '{key}': {source}")]
    Io {
        /// The file or store.
        file: String,
        /// The key being accessed.
        key: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `file_format_version` that cannot be understood.
    #[error("{file}: unknown HyperSpy format version '{version}' at '{key}'")]
    Version {
        /// The file or store.
        file: String,
        /// Where the version was read.
        key: String,
        /// The version as stored.
        version: String,
    },
    /// The file is not a valid HyperSpy file, or a member has an unexpected form.
    #[error("{file}: invalid content at '{key}': {msg}")]
    Invalid {
        /// The file or store.
        file: String,
        /// The offending key.
        key: String,
        /// What is wrong.
        msg: String,
    },
    /// A feature this layer does not support (yet).
    #[error("{file}: unsupported at '{key}': {msg}")]
    Unsupported {
        /// The file or store.
        file: String,
        /// The offending key.
        key: String,
        /// What is not supported.
        msg: String,
    },
    /// The store carries lazyspy's incomplete marker: a write was interrupted.
    #[error(
        "{file}: the store is incomplete: an interrupted lazyspy write; run the same command again with --resume, or --overwrite"
    )]
    Incomplete {
        /// The store.
        file: String,
    },
    /// Computing or storing the data failed (a task error, the memory budget, a sink
    /// error while writing chunks).
    #[error("{file}: {source}")]
    Compute {
        /// The file or store being read or written.
        file: String,
        /// The engine's error (it names the node and chunk).
        #[source]
        source: crate::Error,
    },
    /// A storage operation of the atomic store failed (it names the operation and path).
    #[error("{file}: {source}")]
    Store {
        /// The store being written.
        file: String,
        /// The store's error.
        #[source]
        source: crate::io::atomic::StoreError,
    },
    /// A value that cannot be written (the reference writer fails on it too).
    #[error("{file}: cannot write '{key}': {msg}")]
    Write {
        /// The file or store.
        file: String,
        /// The key being written.
        key: String,
        /// Why.
        msg: String,
    },
}

impl SignalError {
    pub(crate) fn invalid(loc: &Location, msg: impl Into<String>) -> Self {
        SignalError::Invalid {
            file: loc.file.clone(),
            key: loc.path.clone(),
            msg: msg.into(),
        }
    }

    pub(crate) fn missing(loc: &Location, what: &str) -> Self {
        SignalError::Missing {
            file: loc.file.clone(),
            key: loc.path.clone(),
            what: what.to_string(),
        }
    }

    pub(crate) fn unsupported(loc: &Location, msg: impl Into<String>) -> Self {
        SignalError::Unsupported {
            file: loc.file.clone(),
            key: loc.path.clone(),
            msg: msg.into(),
        }
    }

    pub(crate) fn write(loc: &Location, msg: impl Into<String>) -> Self {
        SignalError::Write {
            file: loc.file.clone(),
            key: loc.path.clone(),
            msg: msg.into(),
        }
    }

    pub(crate) fn io(loc: &Location, source: std::io::Error) -> Self {
        SignalError::Io {
            file: loc.file.clone(),
            key: loc.path.clone(),
            source,
        }
    }
}

/// Result alias of the signal layer.
pub type Result<T, E = SignalError> = std::result::Result<T, E>;
