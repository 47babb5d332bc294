//! [`SignalTree`]: one stored signal as the reader of spec §2.6 produces it, and
//! [`read_zspy_file`] / [`read_zspy_metadata`] for `.zspy` stores (directories and zip
//! files).

use std::path::Path;

use crate::signal::Result;
use crate::signal::axes::Axis;
use crate::signal::hierarchy::{HierarchicalFile, read_hierarchical};
use crate::signal::tree::{ArrayDType, Dict, Value};
use crate::signal::zarr::ZarrDirGroup;
use crate::signal::zarr_store::ZarrStore;

/// The description of a signal's `data` dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct DataDesc {
    /// Element type (`|O` data is [`ArrayDType::Object`], ragged).
    pub dtype: ArrayDType,
    /// Shape (the outer shape for ragged data).
    pub shape: Vec<usize>,
    /// Chunk shape.
    pub chunks: Vec<usize>,
    /// Backend description (zspy: the whole `.zarray` document: compressor, filters,
    /// fill value, dimension separator, ...).
    pub storage: Dict,
    /// Whether `_ragged_shapes_data` (or the old `ragged_shapes`) is next to it.
    pub ragged_shapes: bool,
    /// The values, for signals nested in metadata (read non-lazily, as RosettaSciIO does):
    /// [`Value::Array`], or [`Value::ArrayRef`] when a codec is missing. `None` for the
    /// top-level signals, whose chunks are read by the engine.
    pub values: Option<Value>,
}

/// One signal: everything of an experiment group (or of a `_sig_` group in metadata).
#[derive(Clone, Debug, PartialEq)]
pub struct SignalTree {
    /// The group's path (`/Experiments/<name>`).
    pub group_path: String,
    /// Attribute `package` of the experiment group (`""` when absent).
    pub package: String,
    /// Attribute `package_version` (`""` when absent).
    pub package_version: String,
    /// The data dataset.
    pub data: DataDesc,
    /// One axis per data dimension, in array order.
    pub axes: Vec<Axis>,
    /// `metadata` (old format versions already converted, spec §8).
    pub metadata: Dict,
    /// `original_metadata`.
    pub original_metadata: Dict,
    /// The `attributes` group (`_lazy` set to false as the reader does, `ragged`) plus
    /// `learning_results` (and `peak_learning_results`), as RosettaSciIO returns them.
    pub attributes: Dict,
    /// The stored models attached to this signal (`/Analysis/models/<name>` whose
    /// `_signal` is this group).
    pub models: Dict,
}

impl SignalTree {
    /// The experiment name (the last path segment of the group).
    pub fn experiment_name(&self) -> &str {
        self.group_path.rsplit('/').next().unwrap_or("")
    }

    /// `metadata.General.title`.
    pub fn title(&self) -> Option<&str> {
        self.metadata
            .get_path("General/title")
            .and_then(|v| v.as_str())
    }

    /// `metadata.Signal.signal_type`.
    pub fn signal_type(&self) -> Option<&str> {
        self.metadata
            .get_path("Signal/signal_type")
            .and_then(|v| v.as_str())
    }

    /// `metadata.Signal.record_by` (old files).
    pub fn record_by(&self) -> Option<&str> {
        self.metadata
            .get_path("Signal/record_by")
            .and_then(|v| v.as_str())
    }

    /// `attributes.ragged`.
    pub fn is_ragged(&self) -> bool {
        self.attributes
            .get("ragged")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// `attributes.learning_results`.
    pub fn learning_results(&self) -> Option<&Dict> {
        self.attributes
            .get("learning_results")
            .and_then(|v| v.as_dict())
    }

    /// HyperSpy's signal dimension (spec §2.4): the number of `navigate == false` axes when
    /// every axis has `navigate`; else 1/2 from `record_by`; else every axis.
    pub fn signal_dimension(&self) -> usize {
        if self.axes.iter().all(|a| a.navigate().is_some()) {
            return self
                .axes
                .iter()
                .filter(|a| a.navigate() == Some(false))
                .count();
        }
        match self.record_by() {
            Some("spectrum") => 1.min(self.axes.len()),
            Some("image") => 2.min(self.axes.len()),
            _ => self.axes.len(),
        }
    }

    /// Whether axis `i` (array order) is a signal axis.
    pub fn is_signal_axis(&self, i: usize) -> bool {
        if self.axes.iter().all(|a| a.navigate().is_some()) {
            return self.axes.get(i).and_then(|a| a.navigate()) == Some(false);
        }
        i >= self.axes.len() - self.signal_dimension()
    }

    /// Path access: `"metadata/General/title"`, `"attributes/learning_results/factors"`.
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        let (head, rest) = path.split_once('/').unwrap_or((path, ""));
        let d = match head {
            "metadata" => &self.metadata,
            "original_metadata" => &self.original_metadata,
            "attributes" => &self.attributes,
            "models" => &self.models,
            "data" if rest.is_empty() => return self.data.values.as_ref(),
            _ => return None,
        };
        if rest.is_empty() {
            return None;
        }
        d.get_path(rest)
    }
}

/// Reads everything but the chunk data of a `.zspy` store, a directory or a zip file
/// (detected automatically): root attributes, version, signals (metadata, axes,
/// attributes, models, data description) and standalone models.
///
/// A store that carries lazyspy's incomplete marker (an interrupted write) gives
/// [`SignalError::Incomplete`](crate::signal::SignalError::Incomplete).
pub fn read_zspy_file(path: impl AsRef<Path>) -> Result<HierarchicalFile> {
    let store = ZarrStore::open(path)?;
    read_zspy_store(&store)
}

/// [`read_zspy_file`] on an opened store (checks the incomplete marker too).
pub fn read_zspy_store(store: &ZarrStore) -> Result<HierarchicalFile> {
    store.check_complete()?;
    let root = ZarrDirGroup::open_store(store.clone())?;
    read_hierarchical(&root)
}

/// The signals of a `.zspy` store, with everything except the chunk data.
pub fn read_zspy_metadata(path: impl AsRef<Path>) -> Result<Vec<SignalTree>> {
    Ok(read_zspy_file(path)?.signals)
}
