//! The hierarchical mapping shared by `.zspy` and `.hspy`: the container traits and
//! RosettaSciIO's write rules (`dict2group`, `parse_structure`, spec §3.1–3.2) and read
//! rules (`_group2dict`, `group2signaldict`, `read`, spec §2.6, §3.3, §8), quirks included:
//!
//! * list/tuple items stored as a `_list_<n>_<key>` group come back sorted by key *as
//!   strings* (`0, 1, 10, 11, 2, ...`, quirk Q1);
//! * lists are homogenized as numpy does before being stored as one dataset (Q2);
//! * `_sig_` groups are signals and keep their prefix in the tree; `_bs_` attributes are
//!   bytes; `"_None_"` is `None`; `_list_empty_`/`_tuple_empty_` are empty sequences;
//!   `_datetime_*` attributes of old files become ISO strings;
//! * `_ragged_shapes_<key>` (or the pre-3.3 `ragged_shapes`) reshapes ragged cells.

use std::cmp::Ordering;

use crate::signal::axes::Axis;
use crate::signal::json::{py_float_format, py_float_repr, py_str_cmp};
use crate::signal::signal::{DataDesc, SignalTree};
use crate::signal::tree::{Array, ArrayDType, ArrayData, ArrayRef, Dict, SeqKind, Value};
use crate::signal::{Location, Result, SignalError};

/// The current format version written (`rsciio/_hierarchical.py` → `version`).
pub const FORMAT_VERSION: &str = "3.3";

/// What a child of a group is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A group.
    Group,
    /// A dataset (Zarr array).
    Dataset,
}

/// The description of a dataset, without its values.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetInfo {
    /// Element type.
    pub dtype: ArrayDType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Chunk shape (the shape for contiguous datasets).
    pub chunks: Vec<usize>,
    /// Backend-specific storage description (zspy: the whole `.zarray` document).
    pub storage: Dict,
}

/// The values of a dataset: read, or deferred (a reference to read later).
#[derive(Clone, Debug, PartialEq)]
pub enum DatasetValue {
    /// The values were read.
    Loaded(Array),
    /// The values were not read; the reference says where they are and why.
    Deferred(ArrayRef),
}

impl DatasetValue {
    /// As a tree value ([`Value::Array`] or [`Value::ArrayRef`]).
    pub fn into_value(self) -> Value {
        match self {
            DatasetValue::Loaded(a) => Value::Array(a),
            DatasetValue::Deferred(r) => Value::ArrayRef(r),
        }
    }

    /// Element type.
    pub fn dtype(&self) -> &ArrayDType {
        match self {
            DatasetValue::Loaded(a) => &a.dtype,
            DatasetValue::Deferred(r) => &r.dtype,
        }
    }

    /// Shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            DatasetValue::Loaded(a) => &a.shape,
            DatasetValue::Deferred(r) => &r.shape,
        }
    }
}

/// The read side of a hierarchical container (an HDF5 file, a Zarr store, memory).
pub trait GroupRead: Sized {
    /// The file and path of this group (for error messages and `_signal` matching).
    fn location(&self) -> Location;
    /// The attributes, in the library's iteration order (Zarr: the `.zattrs` order, which
    /// is sorted; HDF5: by name). Values as stored: strings, numbers, bools, bytes, lists
    /// (JSON arrays), dicts (JSON objects), arrays (HDF5 array attributes).
    fn attrs(&self) -> Result<Vec<(String, Value)>>;
    /// The children in the library's iteration order (alphabetical for h5py and zarr).
    fn children(&self) -> Result<Vec<(String, NodeKind)>>;
    /// The child group `name`, if there is one.
    fn group(&self, name: &str) -> Result<Option<Self>>;
    /// The description of the child dataset `name`, if there is one.
    fn dataset_info(&self, name: &str) -> Result<Option<DatasetInfo>>;
    /// The values of the child dataset `name` (object arrays as cells, not yet reshaped).
    fn read_dataset(&self, name: &str) -> Result<DatasetValue>;
    /// Whether fixed-length string datasets read as `str` in `_list_`/`_tuple_` datasets
    /// (h5py's `asstr()`, true for HDF5); Zarr `S` lists give bytes (spec §3.3).
    fn list_strings_as_str(&self) -> bool {
        false
    }
}

/// What happened to an attribute the writer was given.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrWrite {
    /// Stored.
    Written,
    /// The backend cannot store this kind of value; the reference writer logs and skips
    /// it (zspy: complex scalars, spec §3.1).
    Dropped(String),
}

/// The write side of a hierarchical container.
pub trait GroupWrite: Sized {
    /// The file and path of this group.
    fn location(&self) -> Location;
    /// The child group `name`, created if needed (`require_group`).
    fn require_group(&mut self, name: &str) -> Result<Self>;
    /// Sets a scalar attribute (`Str`, `Int`, `UInt`, `Float`, `Bool`, `Complex`, and
    /// `Bytes` for `_bs_` attributes).
    fn set_attr(&mut self, name: &str, value: &Value) -> Result<AttrWrite>;
    /// Creates (or replaces) the dataset `name`. `chunks` is `None` for metadata arrays
    /// (the library guesses, spec §6.3).
    fn write_dataset(
        &mut self,
        name: &str,
        value: &DatasetValue,
        chunks: Option<&[usize]>,
    ) -> Result<()>;
    /// Whether a child named `name` exists.
    fn contains(&self, name: &str) -> Result<bool>;
}

/// A format version (`file_format_version`), compared as PEP 440 release numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatVersion(Vec<u64>);

impl FormatVersion {
    /// Parses `"3.3"`, `"2.1"`, `"1.0"`.
    pub fn parse(s: &str) -> Option<FormatVersion> {
        let s = s.trim();
        let parts: Option<Vec<u64>> = s.split('.').map(|p| p.parse().ok()).collect();
        let parts = parts?;
        if parts.is_empty() {
            return None;
        }
        Some(FormatVersion(parts))
    }

    /// The version `major.minor`.
    pub fn new(major: u64, minor: u64) -> FormatVersion {
        FormatVersion(vec![major, minor])
    }

    /// Whether this version is older than `major.minor`.
    pub fn lt(&self, major: u64, minor: u64) -> bool {
        self.cmp(&FormatVersion::new(major, minor)) == Ordering::Less
    }
}

impl PartialOrd for FormatVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FormatVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.0.len().max(other.0.len());
        for i in 0..n {
            let a = self.0.get(i).copied().unwrap_or(0);
            let b = other.0.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}

impl std::fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s: Vec<String> = self.0.iter().map(|p| p.to_string()).collect();
        f.write_str(&s.join("."))
    }
}

/// Options of the reader.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// The file's format version (decides the old-format conversions of spec §8).
    pub version: FormatVersion,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            version: FormatVersion::parse(FORMAT_VERSION).expect("valid"),
        }
    }
}

/// Everything the reader gets out of a file, except the chunk data of the signals.
#[derive(Clone, Debug, PartialEq)]
pub struct HierarchicalFile {
    /// The file or store.
    pub file: String,
    /// The attributes of the root (`file_format`, `file_format_version`), as stored.
    pub root_attributes: Dict,
    /// The format version as the reader works it out (spec §2.1).
    pub version: FormatVersion,
    /// One signal per experiment group holding `data`, in the library's order.
    pub signals: Vec<SignalTree>,
    /// Models whose `_signal` matches no experiment (or that have none).
    pub standalone_models: Vec<Dict>,
    /// Non-fatal findings (a version newer than 3.3, ...).
    pub warnings: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// Reads a whole file: version, models, experiments (RosettaSciIO `HierarchicalReader.read`
/// with `lazy=True` as far as `data` goes: the data is described, not read).
pub fn read_hierarchical<G: GroupRead>(root: &G) -> Result<HierarchicalFile> {
    let loc = root.location();
    let root_attrs: Dict = root.attrs()?.into_iter().collect();
    let root_children = root.children()?;
    let has_child = |n: &str| root_children.iter().any(|(k, _)| k == n);
    let mut warnings = Vec::new();

    let version = match root_attrs.get("file_format_version") {
        Some(v) => {
            let s = match v {
                Value::Str(s) => s.clone(),
                Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                Value::Float(f) => py_float_repr((f * 100.0).round() / 100.0),
                Value::Int(i) => i.to_string(),
                other => {
                    return Err(SignalError::Version {
                        file: loc.file.clone(),
                        key: "/.file_format_version".into(),
                        version: format!("{other:?}"),
                    });
                }
            };
            FormatVersion::parse(&s).ok_or_else(|| SignalError::Version {
                file: loc.file.clone(),
                key: "/file_format_version".into(),
                version: s.clone(),
            })?
        }
        None if has_child("Experiments") => FormatVersion::new(1, 0),
        None if has_child("Analysis") => FormatVersion::new(2, 0),
        None => {
            return Err(SignalError::invalid(
                &loc,
                "not a valid HyperSpy file: no file_format_version attribute, no /Experiments and no /Analysis group",
            ));
        }
    };
    let current = FormatVersion::parse(FORMAT_VERSION).expect("valid");
    if version > current {
        warnings.push(format!(
            "file format version {version} is newer than {FORMAT_VERSION}; reading it anyway"
        ));
    }
    let opts = ReadOptions {
        version: version.clone(),
    };

    // Models (spec §2.7).
    let mut models_with_signals: Vec<(String, String, Dict)> = Vec::new();
    let mut standalone_models = Vec::new();
    if let Some(analysis) = root.group("Analysis")?
        && let Some(models) = analysis.group("models")?
    {
        for (name, kind) in models.children()? {
            if kind != NodeKind::Group {
                continue;
            }
            let Some(mg) = models.group(&name)? else {
                continue;
            };
            let mut d = group2dict(&mg, &opts)?;
            match d.remove("_signal") {
                Some(Value::Str(s)) => models_with_signals.push((s, name, d)),
                Some(Value::Bytes(b)) => {
                    models_with_signals.push((String::from_utf8_lossy(&b).into_owned(), name, d))
                }
                Some(_) | None => standalone_models.push(Dict::new().with(name, d)),
            }
        }
    }

    // Experiments.
    let mut signals = Vec::new();
    if let Some(exps) = root.group("Experiments")? {
        for (name, kind) in exps.children()? {
            if kind != NodeKind::Group {
                continue;
            }
            let Some(eg) = exps.group(&name)? else {
                continue;
            };
            if !eg.children()?.iter().any(|(k, _)| k == "data") {
                continue;
            }
            let mut sig = group2signaldict(&eg, &opts, false)?;
            let path = format!("/Experiments/{name}");
            let mut models = Dict::new();
            // `for key, _dict in reversed(models_with_signals): if key == exg.name: update`
            let mut keep = Vec::new();
            for (key, mname, md) in models_with_signals.drain(..).rev() {
                if key == path {
                    models.insert(mname, md);
                } else {
                    keep.push((key, mname, md));
                }
            }
            keep.reverse();
            models_with_signals = keep;
            sig.models = models;
            signals.push(sig);
        }
    }
    for (_, name, d) in models_with_signals {
        standalone_models.push(Dict::new().with(name, d));
    }
    if signals.is_empty() && standalone_models.is_empty() {
        return Err(SignalError::invalid(
            &loc,
            "not a valid HyperSpy file: no experiment group with a 'data' member and no model",
        ));
    }
    Ok(HierarchicalFile {
        file: loc.file,
        root_attributes: root_attrs,
        version,
        signals,
        standalone_models,
        warnings,
    })
}

fn preprocess_attr(key: &str, value: Value) -> Value {
    let value = match value {
        Value::Bytes(b) if !key.starts_with("_bs_") => match String::from_utf8(b) {
            Ok(s) => Value::Str(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        },
        v => v,
    };
    match value {
        Value::Str(s) if s == "_None_" => Value::None,
        Value::Array(a) if matches!(a.dtype, ArrayDType::FixedBytes(_)) => {
            match a.bytes_to_unicode() {
                Some(u) if u.dtype == ArrayDType::FixedUnicode(1) => u.to_list(),
                Some(u) => Value::Array(u),
                None => Value::Array(a),
            }
        }
        v => v,
    }
}

fn datetime_args(loc: &Location, key: &str, value: &Value) -> Result<Vec<u32>> {
    let bad = || {
        SignalError::invalid(
            &loc.child(key),
            format!("cannot parse {value:?} as a datetime repr"),
        )
    };
    let s = value.as_str().ok_or_else(bad)?;
    let start = s.find('(').ok_or_else(bad)?;
    let inner = s[start..]
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')');
    inner
        .split(',')
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().map_err(|_| bad()))
        .collect()
}

fn sorted_values(d: Dict) -> Vec<Value> {
    let mut entries = d.into_entries();
    entries.sort_by(|a, b| py_str_cmp(&a.0, &b.0));
    entries.into_iter().map(|(_, v)| v).collect()
}

/// `key[7 + key[6:].find("_"):]` for `_list_<n>_<key>` (and the tuple analogue), on chars.
fn strip_seq_group_name(key: &str, prefix_len: usize) -> String {
    let chars: Vec<char> = key.chars().collect();
    let rest: String = chars[prefix_len..].iter().collect();
    let start = match rest.chars().position(|c| c == '_') {
        Some(p) => prefix_len + 1 + p,
        None => prefix_len,
    };
    chars[start..].iter().collect()
}

/// Reads a dataset, rebuilding ragged cells from `_ragged_shapes_<key>` (or the pre-3.3
/// `ragged_shapes`, which wins when present, spec §3.8).
pub fn read_array<G: GroupRead>(
    g: &G,
    key: &str,
    children: &[(String, NodeKind)],
) -> Result<DatasetValue> {
    let data = g.read_dataset(key)?;
    let shapes_key = if children.iter().any(|(k, _)| k == "ragged_shapes") {
        "ragged_shapes".to_string()
    } else {
        format!("_ragged_shapes_{key}")
    };
    if !children
        .iter()
        .any(|(k, kind)| *k == shapes_key && *kind == NodeKind::Dataset)
        || shapes_key == key
    {
        return Ok(data);
    }
    let DatasetValue::Loaded(data) = data else {
        return Ok(data);
    };
    if data.dtype != ArrayDType::Object {
        return Ok(DatasetValue::Loaded(data));
    }
    let shapes = match g.read_dataset(&shapes_key)? {
        DatasetValue::Loaded(s) => s,
        DatasetValue::Deferred(r) => {
            return Ok(DatasetValue::Deferred(ArrayRef {
                reason: format!("ragged shapes '{shapes_key}' not read: {}", r.reason),
                ..deferred_of(&g.location().child(key), &data)
            }));
        }
    };
    let loc = g.location().child(key);
    let (ArrayData::Cells(cells), ArrayData::Cells(shape_cells)) = (data.data, shapes.data) else {
        return Err(SignalError::invalid(
            &loc,
            "ragged data or shapes are not object arrays",
        ));
    };
    if cells.len() != shape_cells.len() {
        return Err(SignalError::invalid(
            &loc,
            format!(
                "{} cells but {} ragged shapes",
                cells.len(),
                shape_cells.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(cells.len());
    for (mut cell, shp) in cells.into_iter().zip(shape_cells) {
        let dims: Option<Vec<usize>> = shp
            .values()
            .iter()
            .map(|v| v.as_i64().and_then(|i| usize::try_from(i).ok()))
            .collect();
        let dims = dims.ok_or_else(|| SignalError::invalid(&loc, "bad ragged shape"))?;
        if dims.iter().product::<usize>() != cell.len() {
            return Err(SignalError::invalid(
                &loc,
                format!(
                    "cell of {} values cannot take the shape {dims:?}",
                    cell.len()
                ),
            ));
        }
        cell.shape = dims;
        out.push(cell);
    }
    Ok(DatasetValue::Loaded(Array {
        dtype: ArrayDType::Object,
        shape: data.shape,
        data: ArrayData::Cells(out),
    }))
}

fn deferred_of(loc: &Location, a: &Array) -> ArrayRef {
    ArrayRef {
        file: loc.file.clone(),
        path: loc.path.clone(),
        dtype: a.dtype.clone(),
        shape: a.shape.clone(),
        chunks: a.shape.clone(),
        reason: String::new(),
        sequence: None,
    }
}

fn dataset_to_seq(g_strings_as_str: bool, dat: DatasetValue, kind: SeqKind) -> Value {
    match dat {
        DatasetValue::Deferred(mut r) => {
            r.sequence = Some(kind);
            Value::ArrayRef(r)
        }
        DatasetValue::Loaded(a) => {
            let a = if g_strings_as_str && matches!(a.dtype, ArrayDType::FixedBytes(_)) {
                // h5py asstr(): decode as UTF-8.
                let items: Vec<String> = a
                    .values()
                    .into_iter()
                    .map(|v| match v {
                        Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                        _ => String::new(),
                    })
                    .collect();
                Array {
                    dtype: ArrayDType::VlenStr,
                    shape: a.shape.clone(),
                    data: ArrayData::Strings(items),
                }
            } else {
                a
            };
            let items = match a.to_list() {
                Value::List(v) => v,
                scalar => vec![scalar], // 0-d: `tolist()` gives a scalar; keep it as one item
            };
            match kind {
                SeqKind::List => Value::List(items),
                SeqKind::Tuple => Value::Tuple(items),
            }
        }
    }
}

/// RosettaSciIO `_group2dict`: decodes a group into a dict (spec §3.3).
pub fn group2dict<G: GroupRead>(g: &G, opts: &ReadOptions) -> Result<Dict> {
    let loc = g.location();
    let mut d = Dict::new();
    for (key, value) in g.attrs()? {
        let value = preprocess_attr(&key, value);
        if key.starts_with("_sig_") {
            continue;
        } else if let Some(k) = key.strip_prefix("_list_empty_") {
            d.insert(k, Value::List(vec![]));
        } else if let Some(k) = key.strip_prefix("_tuple_empty_") {
            d.insert(k, Value::Tuple(vec![]));
        } else if let Some(k) = key.strip_prefix("_bs_") {
            let bytes = match value {
                Value::Bytes(b) => b,
                Value::Str(s) => s.into_bytes(),
                Value::Array(a) => match a.data {
                    ArrayData::Raw(b) => b,
                    _ => Vec::new(),
                },
                other => {
                    return Err(SignalError::invalid(
                        &loc.child(&key),
                        format!("a _bs_ attribute holds a {}", other.kind()),
                    ));
                }
            };
            d.insert(k, Value::Bytes(bytes));
        } else if key.starts_with("_datetime_date") {
            let a = datetime_args(&loc, &key, &value)?;
            let (y, m, dd) = (
                a.first().copied().unwrap_or(1),
                a.get(1).copied().unwrap_or(1),
                a.get(2).copied().unwrap_or(1),
            );
            d.insert(
                key.replace("_datetime_", ""),
                Value::Str(format!("{y:04}-{m:02}-{dd:02}")),
            );
        } else if key.starts_with("_datetime_time") {
            let a = datetime_args(&loc, &key, &value)?;
            let at = |i: usize| a.get(i).copied().unwrap_or(0);
            let mut s = format!("{:02}:{:02}:{:02}", at(0), at(1), at(2));
            if at(3) != 0 {
                s.push_str(&format!(".{:06}", at(3)));
            }
            d.insert(key.replace("_datetime_", ""), Value::Str(s));
        } else {
            d.insert(key, value);
        }
    }
    let children = g.children()?;
    for (key, kind) in &children {
        let key = key.as_str();
        if key.starts_with("_ragged_shapes_") {
            continue;
        } else if key.starts_with("_sig_") {
            let child = g.group(key)?.ok_or_else(|| {
                SignalError::invalid(&loc.child(key), "a _sig_ member is not a group")
            })?;
            let sig = group2signaldict(&child, opts, true)?;
            d.insert(key, Value::Signal(Box::new(sig)));
        } else if *kind == NodeKind::Dataset {
            let dat = read_array(g, key, &children)?;
            if let Some(kn) = key.strip_prefix("_list_") {
                d.insert(
                    kn,
                    dataset_to_seq(g.list_strings_as_str(), dat, SeqKind::List),
                );
            } else if let Some(kn) = key.strip_prefix("_tuple_") {
                d.insert(
                    kn,
                    dataset_to_seq(g.list_strings_as_str(), dat, SeqKind::Tuple),
                );
            } else {
                let v = match dat {
                    DatasetValue::Loaded(a) if matches!(a.dtype, ArrayDType::FixedBytes(_)) => {
                        match a.bytes_to_unicode() {
                            Some(u) => Value::Array(u),
                            None => Value::Array(a),
                        }
                    }
                    other => other.into_value(),
                };
                d.insert(key, v);
            }
        } else {
            let child = g
                .group(key)?
                .ok_or_else(|| SignalError::missing(&loc.child(key), "group"))?;
            if key.starts_with("_hspy_AxesManager_") {
                d.insert(key, Value::List(sorted_values(group2dict(&child, opts)?)));
            } else if key.starts_with("_list_") {
                let name = strip_seq_group_name(key, 6);
                d.insert(name, Value::List(sorted_values(group2dict(&child, opts)?)));
            } else if key.starts_with("_tuple_") {
                let name = strip_seq_group_name(key, 7);
                d.insert(name, Value::Tuple(sorted_values(group2dict(&child, opts)?)));
            } else {
                d.insert(key, Value::Dict(group2dict(&child, opts)?));
            }
        }
    }
    Ok(d)
}

/// RosettaSciIO `group2signaldict`: reads an experiment group (or a `_sig_` group).
/// `load_data` reads the values of `data` (nested signals are read non-lazily); otherwise
/// `data` is only described.
pub fn group2signaldict<G: GroupRead>(
    g: &G,
    opts: &ReadOptions,
    load_data: bool,
) -> Result<SignalTree> {
    let loc = g.location();
    let old = opts.version.lt(1, 2);
    let (md_name, omd_name) = if old {
        ("mapped_parameters", "original_parameters")
    } else {
        ("metadata", "original_metadata")
    };
    let md_group = g
        .group(md_name)?
        .ok_or_else(|| SignalError::missing(&loc.child(md_name), "group"))?;
    let mut metadata = group2dict(&md_group, opts)?;
    let omd_group = g
        .group(omd_name)?
        .ok_or_else(|| SignalError::missing(&loc.child(omd_name), "group"))?;
    let original_metadata = group2dict(&omd_group, opts)?;
    let mut attributes = match g.group("attributes")? {
        Some(a) => group2dict(&a, opts)?,
        None => Dict::new(),
    };
    let own_attrs: Dict = g.attrs()?.into_iter().collect();
    let as_string = |v: &Value| match v {
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::None => String::new(),
        other => format!("{other:?}"),
    };
    let (package, package_version) = match own_attrs.get("package") {
        Some(p) => {
            let pv = own_attrs
                .get("package_version")
                .ok_or_else(|| SignalError::missing(&loc.child("package_version"), "attribute"))?;
            (as_string(p), as_string(pv))
        }
        None => (String::new(), String::new()),
    };

    let children = g.children()?;
    let info = g
        .dataset_info("data")?
        .ok_or_else(|| SignalError::missing(&loc.child("data"), "dataset"))?;
    let ragged_shapes = children
        .iter()
        .any(|(k, _)| k == "_ragged_shapes_data" || k == "ragged_shapes");
    let values = if load_data {
        Some(read_array(g, "data", &children)?.into_value())
    } else {
        None
    };
    let ndim = info.shape.len();
    let data = DataDesc {
        dtype: info.dtype,
        shape: info.shape,
        chunks: info.chunks,
        storage: info.storage,
        ragged_shapes,
        values,
    };
    attributes.insert("_lazy", false);

    let mut axis_dicts = Vec::new();
    for i in 0..ndim {
        match g.group(&format!("axis-{i}"))? {
            Some(ag) => axis_dicts.push((format!("axis-{i}"), group2dict(&ag, opts)?)),
            None => break,
        }
    }
    if axis_dicts.len() != ndim {
        let name = format!("_list_{ndim}_axes");
        let lg = g.group(&name)?.ok_or_else(|| {
            SignalError::invalid(
                &loc,
                format!(
                    "not a valid HyperSpy file: data has {ndim} dimensions but only {} axis-<i> groups and no '{name}' group",
                    axis_dicts.len()
                ),
            )
        })?;
        axis_dicts = Vec::new();
        for (i, v) in sorted_values(group2dict(&lg, opts)?)
            .into_iter()
            .enumerate()
        {
            match v {
                Value::Dict(d) => axis_dicts.push((format!("{name}/{i}"), d)),
                other => {
                    return Err(SignalError::invalid(
                        &loc.child(&name),
                        format!("axis item {i} is a {}, not a group", other.kind()),
                    ));
                }
            }
        }
    }
    let mut axes = Vec::with_capacity(axis_dicts.len());
    for (key, d) in axis_dicts {
        axes.push(Axis::from_dict(d).map_err(|e| SignalError::invalid(&loc.child(&key), e))?);
    }

    if let Some(lr) = g.group("learning_results")? {
        attributes.insert("learning_results", group2dict(&lr, opts)?);
    }
    if let Some(plr) = g.group("peak_learning_results")? {
        attributes.insert("peak_learning_results", group2dict(&plr, opts)?);
    }
    if let Some(Value::Dict(general)) = metadata.get_mut("General")
        && general.get("title").and_then(|t| t.as_str()) == Some("__unnamed__")
    {
        general.insert("title", "");
    }
    if opts.version.lt(1, 1) {
        if let Some(mva) = g.group("mva_results")? {
            attributes.insert("learning_results", group2dict(&mva, opts)?);
        }
        if let Some(pmva) = g.group("peak_mva_results")? {
            attributes.insert("peak_learning_results", group2dict(&pmva, opts)?);
        }
    }
    convert_old_metadata(&mut metadata, &opts.version);

    Ok(SignalTree {
        group_path: loc.path.clone(),
        package,
        package_version,
        data,
        axes,
        metadata,
        original_metadata,
        attributes,
        models: Dict::new(),
    })
}

fn take(d: &mut Dict, key: &str) -> Option<Value> {
    d.remove(key)
}

fn sub<'a>(d: &'a mut Dict, key: &str) -> &'a mut Dict {
    if !matches!(d.get(key), Some(Value::Dict(_))) {
        d.insert(key, Dict::new());
    }
    d.get_mut(key)
        .and_then(|v| v.as_dict_mut())
        .expect("just inserted")
}

/// The version-dependent metadata conversions of spec §8 (< 1.1, < 1.2, < 3.0), in the
/// reader's order.
pub fn convert_old_metadata(md: &mut Dict, version: &FormatVersion) {
    if version.lt(1, 1) {
        if let Some(v) = take(md, "signal") {
            sub(md, "Signal").insert("signal_type", v);
        }
        if let Some(v) = take(md, "name") {
            sub(md, "General").insert("title", v);
        }
    }
    if version.lt(1, 2) {
        if let Some(v) = take(md, "_internal_parameters") {
            md.insert("_HyperSpy", v);
            if let Some(Value::Dict(h)) = md.get_mut("_HyperSpy") {
                if let Some(v) = take(h, "stacking_history") {
                    h.insert("Stacking_history", v);
                }
                if let Some(v) = take(h, "folding") {
                    h.insert("Folding", v);
                }
            }
        }
        if let Some(v) = take(md, "Variance_estimation") {
            sub(md, "Noise_properties").insert("Variance_linear_model", v);
        }
        if let Some(v) = take(md, "TEM") {
            sub(md, "Acquisition_instrument").insert("TEM", v);
            if let Some(Value::Dict(tem)) = sub(md, "Acquisition_instrument").get_mut("TEM") {
                if tem.contains_key("EELS") {
                    for k in [
                        "dwell_time",
                        "dwell_time_units",
                        "exposure",
                        "exposure_units",
                    ] {
                        if let Some(v) = take(tem, k) {
                            sub(tem, "EELS").insert(k, v);
                        }
                    }
                    let eels = take(tem, "EELS").unwrap_or(Value::Dict(Dict::new()));
                    tem.insert("Detector", eels);
                }
                if let Some(eds) = take(tem, "EDS") {
                    sub(tem, "Detector").insert("EDS", eds);
                }
            }
        }
        if let Some(v) = take(md, "SEM") {
            sub(md, "Acquisition_instrument").insert("SEM", v);
            if let Some(Value::Dict(sem)) = sub(md, "Acquisition_instrument").get_mut("SEM")
                && let Some(eds) = take(sem, "EDS")
            {
                sub(sem, "Detector").insert("EDS", eds);
            }
        }
        if let Some(Value::Dict(sample)) = md.get_mut("Sample")
            && let Some(v) = take(sample, "Xray_lines")
        {
            sample.insert("xray_lines", v);
        }
        for key in ["title", "date", "time", "original_filename"] {
            if let Some(v) = take(md, key) {
                sub(md, "General").insert(key, v);
            }
        }
        for key in ["record_by", "signal_origin", "signal_type"] {
            if let Some(v) = take(md, key) {
                sub(md, "Signal").insert(key, v);
            }
        }
    }
    if version.lt(3, 0)
        && let Some(Value::Dict(ai)) = md.get_mut("Acquisition_instrument")
    {
        if let Some(Value::Dict(tem)) = ai.get_mut("TEM") {
            if let Some(v) = take(tem, "tilt_stage") {
                tem.insert("Stage", Dict::new().with("tilt_alpha", v));
            }
            let exposure = if tem.contains_key("exposure_time") {
                Some("exposure_time")
            } else if tem.contains_key("exposure") {
                Some("exposure")
            } else {
                None
            };
            if let Some(k) = exposure {
                let v = take(tem, k).expect("present");
                sub(tem, "Detector").insert("Camera", Dict::new().with("exposure", v));
            }
        }
        if let Some(Value::Dict(sem)) = ai.get_mut("SEM")
            && let Some(v) = take(sem, "tilt_stage")
        {
            sem.insert("Stage", Dict::new().with("tilt_alpha", v));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// What the writer skipped (the reference writer logs these and goes on).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteReport {
    /// `(path, reason)` of every value not stored.
    pub dropped: Vec<(String, String)>,
}

/// The outcome of numpy's `np.array(list)` for a list of values (spec §3.2).
#[derive(Clone, Debug, PartialEq)]
pub enum Homogenized {
    /// Object dtype, ndim ≠ 1, a signal inside, or numpy raises: a `_list_<n>_` group.
    Group,
    /// A unicode array: a string dataset (path b).
    Strings(Vec<String>),
    /// A numeric/bool/bytes array (path c).
    Array(Array),
}

/// Python's `str()` of a scalar, as numpy uses when it makes strings of mixed items.
fn py_str(v: &Value) -> Option<String> {
    Some(match v {
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => py_float_repr(*f),
        Value::Complex(re, im) => py_complex_repr(*re, *im),
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => {
            if !b.is_ascii() {
                return None;
            }
            String::from_utf8(b.clone()).ok()?
        }
        _ => return None,
    })
}

/// Python's `repr(complex)`: `(1+2j)`, `2j`, `(1-0j)`.
pub fn py_complex_repr(re: f64, im: f64) -> String {
    let imag = |x: f64| py_float_format(x, false);
    if re == 0.0 && re.is_sign_positive() {
        return format!("{}j", imag(im));
    }
    let sign = if im.is_sign_negative() && !im.is_nan() {
        '-'
    } else {
        '+'
    };
    format!(
        "({}{}{}j)",
        py_float_format(re, false),
        sign,
        imag(im.abs())
    )
}

fn is_big_uint(v: &Value) -> bool {
    matches!(v, Value::UInt(u) if *u > i64::MAX as u64)
}

/// numpy's choice of array type for a list/tuple (spec §3.2), `Err` when numpy raises
/// something other than the `ValueError` that makes a group (non-ASCII bytes with str).
pub fn homogenize(items: &[Value]) -> std::result::Result<Homogenized, String> {
    let scalar = |v: &Value| {
        matches!(
            v,
            Value::Bool(_)
                | Value::Int(_)
                | Value::UInt(_)
                | Value::Float(_)
                | Value::Complex(..)
                | Value::Str(_)
                | Value::Bytes(_)
        )
    };
    if items.is_empty() || !items.iter().all(scalar) {
        return Ok(Homogenized::Group);
    }
    let has = |f: fn(&Value) -> bool| items.iter().any(f);
    let has_str = has(|v| matches!(v, Value::Str(_)));
    let has_bytes = has(|v| matches!(v, Value::Bytes(_)));
    if has_str {
        let s: Option<Vec<String>> = items.iter().map(py_str).collect();
        return s
            .map(Homogenized::Strings)
            .ok_or_else(|| "bytes that are not ASCII mixed with str (numpy raises)".into());
    }
    if has_bytes {
        let b: Option<Vec<Vec<u8>>> = items
            .iter()
            .map(|v| match v {
                Value::Bytes(b) => Some(b.clone()),
                other => py_str(other).map(String::into_bytes),
            })
            .collect();
        return Ok(Homogenized::Array(Array::from_fixed_bytes(
            &b.ok_or("unexpected item")?,
        )));
    }
    if has(|v| matches!(v, Value::Complex(..))) {
        let c: Vec<(f64, f64)> = items
            .iter()
            .map(|v| match v {
                Value::Complex(r, i) => (*r, *i),
                other => (other.as_f64().unwrap_or(f64::NAN), 0.0),
            })
            .collect();
        return Ok(Homogenized::Array(Array::from_c128(&c)));
    }
    let has_float = has(|v| matches!(v, Value::Float(_)));
    let has_big = has(is_big_uint);
    let has_small_int = items
        .iter()
        .any(|v| matches!(v, Value::Int(_)) || (matches!(v, Value::UInt(_)) && !is_big_uint(v)));
    if has_float || (has_big && has_small_int) {
        let f: Vec<f64> = items
            .iter()
            .map(|v| v.as_f64().unwrap_or(f64::NAN))
            .collect();
        return Ok(Homogenized::Array(Array::from_f64(&f)));
    }
    if has_big {
        let u: Vec<u64> = items
            .iter()
            .map(|v| match v {
                Value::UInt(u) => *u,
                Value::Bool(b) => *b as u64,
                _ => 0,
            })
            .collect();
        return Ok(Homogenized::Array(Array::from_u64(&u)));
    }
    if has_small_int {
        let i: Vec<i64> = items.iter().map(|v| v.as_i64().unwrap_or(0)).collect();
        return Ok(Homogenized::Array(Array::from_i64(&i)));
    }
    let b: Vec<bool> = items.iter().map(|v| v.as_bool().unwrap_or(false)).collect();
    Ok(Homogenized::Array(Array::from_bool(&b)))
}

/// Flattens ragged cells to 1-D and builds the `_ragged_shapes_` object array.
fn flatten_ragged(a: &Array) -> Option<(Array, Array)> {
    let ArrayData::Cells(cells) = &a.data else {
        return None;
    };
    let flat: Vec<Array> = cells
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.shape = vec![c.len()];
            c
        })
        .collect();
    let shapes: Vec<Array> = cells
        .iter()
        .map(|c| Array::from_i64(&c.shape.iter().map(|&s| s as i64).collect::<Vec<_>>()))
        .collect();
    Some((
        Array::from_cells(a.shape.clone(), flat),
        Array::from_cells(a.shape.clone(), shapes),
    ))
}

/// `overwrite_dataset` (spec §3.6): unicode → ASCII bytes, ragged → flattened cells plus
/// `_ragged_shapes_<key>`, 0-d arrays refused. Writers use it for in-memory `data` too.
pub fn overwrite_dataset<W: GroupWrite>(
    w: &mut W,
    key: &str,
    value: &DatasetValue,
    chunks: Option<&[usize]>,
) -> Result<()> {
    let loc = w.location().child(key);
    match value {
        DatasetValue::Deferred(_) => w.write_dataset(key, value, chunks),
        DatasetValue::Loaded(a) => {
            if a.shape.is_empty() {
                return Err(SignalError::write(
                    &loc,
                    "a 0-d array cannot be stored (scalar datasets cannot be chunked; the reference save fails too)",
                ));
            }
            if !a.is_consistent() {
                return Err(SignalError::write(
                    &loc,
                    "array data does not match its dtype and shape",
                ));
            }
            match &a.dtype {
                ArrayDType::FixedUnicode(_) => {
                    let b = a.unicode_to_bytes().ok_or_else(|| {
                        SignalError::write(
                            &loc,
                            "a numpy unicode array with non-ASCII characters cannot be stored (astype(\"S\") fails)",
                        )
                    })?;
                    w.write_dataset(key, &DatasetValue::Loaded(b), chunks)
                }
                ArrayDType::Object => {
                    let (flat, shapes) = flatten_ragged(a)
                        .ok_or_else(|| SignalError::write(&loc, "object array without cells"))?;
                    w.write_dataset(key, &DatasetValue::Loaded(flat), chunks)?;
                    w.write_dataset(
                        &format!("_ragged_shapes_{key}"),
                        &DatasetValue::Loaded(shapes),
                        Some(&a.shape),
                    )
                }
                _ => w.write_dataset(key, value, chunks),
            }
        }
    }
}

/// The dict HyperSpy's `_to_dictionary` makes of a signal nested in metadata.
fn nested_signal_dict(s: &SignalTree, loc: &Location) -> Result<Dict> {
    let data = match &s.data.values {
        Some(v @ (Value::Array(_) | Value::ArrayRef(_))) => v.clone(),
        _ => {
            return Err(SignalError::write(
                loc,
                "the data of a signal nested in metadata was not read; it cannot be written",
            ));
        }
    };
    let mut attributes = s.attributes.clone();
    let learning_results = attributes
        .remove("learning_results")
        .unwrap_or(Value::Dict(Dict::new()));
    attributes.remove("peak_learning_results");
    Ok(Dict::new()
        .with("data", data)
        .with(
            "axes",
            Value::List(s.axes.iter().map(|a| Value::Dict(a.to_dict())).collect()),
        )
        .with("metadata", s.metadata.clone())
        .with("original_metadata", s.original_metadata.clone())
        .with("tmp_parameters", Dict::new())
        .with("attributes", attributes)
        .with("learning_results", learning_results))
}

/// RosettaSciIO `dict2group` (spec §3.1): writes `dict` into `group`.
pub fn dict2group<W: GroupWrite>(dict: &Dict, group: &mut W) -> Result<WriteReport> {
    let mut report = WriteReport::default();
    dict2group_into(dict, group, &mut report)?;
    Ok(report)
}

fn set_attr<W: GroupWrite>(
    w: &mut W,
    key: &str,
    v: &Value,
    report: &mut WriteReport,
) -> Result<()> {
    if let AttrWrite::Dropped(reason) = w.set_attr(key, v)? {
        report.dropped.push((w.location().child(key).path, reason));
    }
    Ok(())
}

fn dict2group_into<W: GroupWrite>(dict: &Dict, w: &mut W, report: &mut WriteReport) -> Result<()> {
    for (key, value) in dict.iter() {
        write_item(w, key, value, report)?;
    }
    Ok(())
}

fn write_item<W: GroupWrite>(
    w: &mut W,
    key: &str,
    value: &Value,
    report: &mut WriteReport,
) -> Result<()> {
    let loc = w.location().child(key);
    match value {
        Value::Dict(d) => {
            let mut g = w.require_group(key)?;
            dict2group_into(d, &mut g, report)
        }
        Value::Signal(s) => {
            let name = if key.starts_with("_sig_") {
                key.to_string()
            } else {
                format!("_sig_{key}")
            };
            let d = nested_signal_dict(s, &loc)?;
            let mut g = w.require_group(&name)?;
            if !s.package.is_empty() {
                set_attr(&mut g, "package", &Value::Str(s.package.clone()), report)?;
                set_attr(
                    &mut g,
                    "package_version",
                    &Value::Str(s.package_version.clone()),
                    report,
                )?;
            }
            dict2group_into(&d, &mut g, report)
        }
        Value::Array(a) => overwrite_dataset(w, key, &DatasetValue::Loaded(a.clone()), None),
        Value::ArrayRef(r) => {
            let name = match r.sequence {
                Some(kind) => format!("{}{key}", kind.prefix()),
                None => key.to_string(),
            };
            overwrite_dataset(w, &name, &DatasetValue::Deferred(r.clone()), None)
        }
        Value::None => set_attr(w, key, &Value::Str("_None_".into()), report),
        Value::Bytes(b) => {
            if b.contains(&0) {
                set_attr(w, &format!("_bs_{key}"), value, report)
            } else {
                let s = String::from_utf8(b.clone()).map_err(|_| {
                    SignalError::write(&loc, "bytes that are not UTF-8 (value.decode() fails)")
                })?;
                set_attr(w, key, &Value::Str(s), report)
            }
        }
        Value::Str(_) => set_attr(w, key, value, report),
        Value::List(items) | Value::Tuple(items) => {
            let kind = if matches!(value, Value::List(_)) {
                SeqKind::List
            } else {
                SeqKind::Tuple
            };
            if items.is_empty() {
                return set_attr(
                    w,
                    &format!("{}empty_{key}", kind.prefix()),
                    &Value::Str("_None_".into()),
                    report,
                );
            }
            parse_structure(w, key, items, kind, report)
        }
        Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::Float(_) | Value::Complex(..) => {
            set_attr(w, key, value, report)
        }
    }
}

/// RosettaSciIO `parse_structure` (spec §3.2).
fn parse_structure<W: GroupWrite>(
    w: &mut W,
    key: &str,
    items: &[Value],
    kind: SeqKind,
    report: &mut WriteReport,
) -> Result<()> {
    let loc = w.location().child(key);
    let has_signal = items.iter().any(|v| match v {
        Value::Signal(_) => true,
        Value::Dict(d) => d.contains_key("_sig_"),
        _ => false,
    });
    let h = if has_signal {
        Homogenized::Group
    } else {
        homogenize(items).map_err(|e| SignalError::write(&loc, e))?
    };
    let prefix = kind.prefix();
    match h {
        Homogenized::Group => {
            let mut g = w.require_group(&format!("{prefix}{}_{key}", items.len()))?;
            for (i, item) in items.iter().enumerate() {
                let k = i.to_string();
                match item {
                    // A signal item is the dict {"_sig_": signal} (spec §3.7).
                    Value::Signal(s) => {
                        let wrapper = Dict::new().with("_sig_", Value::Signal(s.clone()));
                        write_item(&mut g, &k, &Value::Dict(wrapper), report)?;
                    }
                    other => write_item(&mut g, &k, other, report)?,
                }
            }
            Ok(())
        }
        Homogenized::Strings(s) => w.write_dataset(
            &format!("{prefix}{key}"),
            &DatasetValue::Loaded(Array::from_strings(s)),
            None,
        ),
        Homogenized::Array(a) => {
            w.write_dataset(&format!("{prefix}{key}"), &DatasetValue::Loaded(a), None)
        }
    }
}

/// The experiment group name for a title: `__unnamed__` when empty, `/` → `-` (§2.2).
pub fn experiment_name(title: &str) -> String {
    if title.is_empty() {
        "__unnamed__".to_string()
    } else {
        title.replace('/', "-")
    }
}

/// Writes everything of `signal` except its `data` (`write_signal` without the dataset):
/// root attributes, `/Experiments/<name>` with `package` attributes, `axis-<i>` groups,
/// `metadata`, `original_metadata`, `learning_results`, `attributes` and the models (with
/// `_signal`). Returns the experiment group (to write `data` into) and the report.
pub fn write_signal_metadata<W: GroupWrite>(
    root: &mut W,
    signal: &SignalTree,
    file_format: &str,
) -> Result<(W, WriteReport)> {
    let mut report = WriteReport::default();
    set_attr(
        root,
        "file_format",
        &Value::Str(file_format.into()),
        &mut report,
    )?;
    set_attr(
        root,
        "file_format_version",
        &Value::Str(FORMAT_VERSION.into()),
        &mut report,
    )?;
    let name = experiment_name(signal.title().unwrap_or(""));
    let mut exps = root.require_group("Experiments")?;
    let mut g = exps.require_group(&name)?;
    set_attr(
        &mut g,
        "package",
        &Value::Str(signal.package.clone()),
        &mut report,
    )?;
    set_attr(
        &mut g,
        "package_version",
        &Value::Str(signal.package_version.clone()),
        &mut report,
    )?;
    for (i, axis) in signal.axes.iter().enumerate() {
        let mut ag = g.require_group(&format!("axis-{i}"))?;
        dict2group_into(axis.dict(), &mut ag, &mut report)?;
    }
    let mut mg = g.require_group("metadata")?;
    dict2group_into(&signal.metadata, &mut mg, &mut report)?;
    let mut og = g.require_group("original_metadata")?;
    dict2group_into(&signal.original_metadata, &mut og, &mut report)?;
    let mut attributes = signal.attributes.clone();
    let lr = match attributes.remove("learning_results") {
        Some(Value::Dict(d)) => d,
        _ => Dict::new(),
    };
    let mut lg = g.require_group("learning_results")?;
    dict2group_into(&lr, &mut lg, &mut report)?;
    if let Some(Value::Dict(plr)) = attributes.remove("peak_learning_results") {
        let mut pg = g.require_group("peak_learning_results")?;
        dict2group_into(&plr, &mut pg, &mut report)?;
    }
    let mut atg = g.require_group("attributes")?;
    dict2group_into(&attributes, &mut atg, &mut report)?;
    if !signal.models.is_empty() {
        let mut an = root.require_group("Analysis")?;
        let mut models = an.require_group("models")?;
        dict2group_into(&signal.models, &mut models, &mut report)?;
        let path = format!("/Experiments/{name}");
        for (mname, _) in signal.models.iter() {
            let mut mg = models.require_group(mname)?;
            set_attr(&mut mg, "_signal", &Value::Str(path.clone()), &mut report)?;
        }
    }
    Ok((g, report))
}
