//! Writing HyperSpy trees into Zarr v2 stores: [`ZarrDirWriter`], the [`GroupWrite`]
//! backend of the `.zspy` writer, over a small key-value interface ([`ZarrKeys`]).
//!
//! Groups, attributes (zarr-python's JSON layout, byte for byte) and small arrays (each chunk
//! in a memcpyed Blosc frame recorded with HyperSpy's default compressor configuration,
//! Blosc zstd level 1 byte shuffle, which every Blosc reader decodes). Where the documents
//! go is the [`ZarrKeys`] implementation's business: [`DirKeys`] writes plain files into a
//! directory; [`MemKeys`] collects them in memory over an optional base (the `.zspy` writer
//! flushes them through the atomic store and builds `.zmetadata` from them).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::signal::hierarchy::{AttrWrite, DatasetValue, GroupWrite};
use crate::signal::json::{self, Json};
use crate::signal::tree::{ArrayDType, ArrayData, Value};
use crate::signal::zarr::{
    ZarrDirGroup, base64_encode, dtype_to_json, for_each_in_chunk, zarr_guess_chunks,
};
use crate::signal::{Location, Result, SignalError};

/// The key-value interface a [`ZarrDirWriter`] writes through. Keys are `/`-separated paths
/// relative to the store root (`Experiments/x/.zattrs`).
pub trait ZarrKeys: Send + Sync {
    /// The value of `key`, if any.
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Stores `value` under `key`.
    fn set(&self, key: &str, value: Vec<u8>) -> io::Result<()>;
    /// Removes every key under `prefix` (a directory-like prefix ending in `/`).
    fn erase_prefix(&self, prefix: &str) -> io::Result<()>;
}

/// Plain files under a directory (not atomic; for metadata-only stores and tests).
#[derive(Clone, Debug)]
pub struct DirKeys {
    root: PathBuf,
}

impl DirKeys {
    /// Keys as files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirKeys { root: root.into() }
    }
}

impl ZarrKeys for DirKeys {
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.root.join(key)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn set(&self, key: &str, value: Vec<u8>) -> io::Result<()> {
        let p = self.root.join(key);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, value)
    }

    fn erase_prefix(&self, prefix: &str) -> io::Result<()> {
        let dir = self.root.join(prefix.trim_end_matches('/'));
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// A key set to a value (`Some`) or erased (`None`).
pub type KeyChange = (String, Option<Vec<u8>>);

/// Documents collected in memory, over an optional base store whose keys show through
/// until they are overwritten or erased (used by `write_dataset=False`, which updates an
/// existing store's metadata key by key).
#[derive(Default)]
pub struct MemKeys {
    base: Option<Arc<dyn ZarrKeys>>,
    map: Mutex<BTreeMap<String, Option<Vec<u8>>>>,
    erased_prefixes: Mutex<Vec<String>>,
}

impl MemKeys {
    /// An empty collection over `base`.
    pub fn over(base: Option<Arc<dyn ZarrKeys>>) -> Self {
        MemKeys {
            base,
            ..MemKeys::default()
        }
    }

    /// The changes: keys set (with `Some`) or erased (`None`), sorted, and the prefixes
    /// erased (to apply first).
    pub fn take(&self) -> (Vec<String>, Vec<KeyChange>) {
        let prefixes = std::mem::take(&mut *self.erased_prefixes.lock());
        let map = std::mem::take(&mut *self.map.lock());
        (prefixes, map.into_iter().collect())
    }
}

impl ZarrKeys for MemKeys {
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        if let Some(v) = self.map.lock().get(key) {
            return Ok(v.clone());
        }
        if self
            .erased_prefixes
            .lock()
            .iter()
            .any(|p| key.starts_with(p.as_str()))
        {
            return Ok(None);
        }
        match &self.base {
            Some(b) => b.get(key),
            None => Ok(None),
        }
    }

    fn set(&self, key: &str, value: Vec<u8>) -> io::Result<()> {
        self.map.lock().insert(key.to_string(), Some(value));
        Ok(())
    }

    fn erase_prefix(&self, prefix: &str) -> io::Result<()> {
        self.map.lock().retain(|k, _| !k.starts_with(prefix));
        self.erased_prefixes.lock().push(prefix.to_string());
        Ok(())
    }
}

/// A group of a Zarr v2 store being written.
#[derive(Clone)]
pub struct ZarrDirWriter {
    keys: Arc<dyn ZarrKeys>,
    file: Arc<String>,
    /// The group's key prefix (`""` for the root, else `a/b/`).
    prefix: String,
}

impl std::fmt::Debug for ZarrDirWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZarrDirWriter({}:/{})", self.file, self.prefix)
    }
}

fn default_compressor() -> Json {
    Json::Object(vec![
        ("blocksize".into(), Json::Int(0)),
        ("clevel".into(), Json::Int(1)),
        ("cname".into(), Json::Str("zstd".into())),
        ("id".into(), Json::Str("blosc".into())),
        ("shuffle".into(), Json::Int(1)),
    ])
}

/// A memcpyed Blosc frame (flags as numcodecs writes them for Blosc/zstd byte-shuffle).
fn blosc_frame(data: &[u8], typesize: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(16 + data.len());
    f.push(2); // format version
    f.push(1); // zstd format version
    f.push(0x93); // zstd | don't split | memcpyed | byte shuffle
    f.push(if typesize <= 255 { typesize as u8 } else { 1 });
    let n = data.len() as u32;
    f.extend_from_slice(&n.to_le_bytes()); // nbytes
    f.extend_from_slice(&n.to_le_bytes()); // blocksize
    f.extend_from_slice(&(n + 16).to_le_bytes()); // cbytes
    f.extend_from_slice(data);
    f
}

impl ZarrDirWriter {
    /// Creates a new store at `path` (which must not exist) with a root `.zgroup`, written
    /// as plain files ([`DirKeys`]).
    pub fn create(path: impl AsRef<Path>) -> Result<ZarrDirWriter> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let loc = Location::new(file.clone(), "/");
        if path.exists() {
            return Err(SignalError::write(&loc, "the store already exists"));
        }
        std::fs::create_dir_all(path).map_err(|e| SignalError::io(&loc, e))?;
        let w = ZarrDirWriter::on_keys(Arc::new(DirKeys::new(path)), file);
        w.write_doc(".zgroup", &zgroup_doc())?;
        Ok(w)
    }

    /// The root group of a store behind `keys` (`file` names it in errors). Writes nothing:
    /// the caller writes the root `.zgroup` when it chooses.
    pub fn on_keys(keys: Arc<dyn ZarrKeys>, file: impl Into<String>) -> ZarrDirWriter {
        ZarrDirWriter {
            keys,
            file: Arc::new(file.into()),
            prefix: String::new(),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn child(&self, name: &str) -> ZarrDirWriter {
        ZarrDirWriter {
            keys: self.keys.clone(),
            file: self.file.clone(),
            prefix: format!("{}{name}/", self.prefix),
        }
    }

    fn exists(&self, key: &str) -> Result<bool> {
        self.keys
            .get(key)
            .map(|v| v.is_some())
            .map_err(|e| SignalError::io(&self.location_of(key), e))
    }

    fn location_of(&self, key: &str) -> Location {
        Location::new(self.file.as_str(), format!("/{key}"))
    }

    fn write_doc(&self, name: &str, j: &Json) -> Result<()> {
        let key = self.key(name);
        self.keys
            .set(&key, json::to_zarr_string(j).into_bytes())
            .map_err(|e| SignalError::io(&self.location_of(&key), e))
    }

    fn read_doc(&self, name: &str) -> Result<Option<Json>> {
        let key = self.key(name);
        let loc = self.location_of(&key);
        let Some(bytes) = self.keys.get(&key).map_err(|e| SignalError::io(&loc, e))? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes).map_err(|_| SignalError::invalid(&loc, "not UTF-8"))?;
        json::parse(&text).map(Some).map_err(|e| SignalError::Json {
            file: loc.file.clone(),
            key: loc.path.clone(),
            line: e.line,
            column: e.column,
            msg: e.msg,
        })
    }

    fn check_name(&self, name: &str) -> Result<()> {
        if !ZarrDirGroup::valid_name(name) || name.starts_with('.') {
            return Err(SignalError::write(
                &self.location().child(name),
                "this key cannot be a Zarr directory name",
            ));
        }
        Ok(())
    }
}

fn value_to_attr_json(v: &Value) -> std::result::Result<Option<Json>, String> {
    Ok(Some(match v {
        Value::Str(s) => Json::Str(s.clone()),
        Value::Int(i) => Json::Int(*i),
        Value::UInt(u) => Json::UInt(*u),
        Value::Float(f) => Json::Float(*f),
        Value::Bool(b) => Json::Bool(*b),
        Value::Complex(..) => return Ok(None),
        Value::Bytes(_) => {
            return Err("bytes containing NUL cannot be stored in a Zarr attribute (the reference zspy save fails too)".into());
        }
        other => return Err(format!("a {} is not an attribute value", other.kind())),
    }))
}

impl GroupWrite for ZarrDirWriter {
    fn location(&self) -> Location {
        Location::new(
            self.file.as_str(),
            format!("/{}", self.prefix.trim_end_matches('/')),
        )
    }

    fn require_group(&mut self, name: &str) -> Result<Self> {
        self.check_name(name)?;
        let loc = self.location().child(name);
        let child = self.child(name);
        if self.exists(&child.key(".zarray"))? {
            return Err(SignalError::write(&loc, "an array of that name exists"));
        }
        if !self.exists(&child.key(".zgroup"))? {
            child.write_doc(".zgroup", &zgroup_doc())?;
        }
        Ok(child)
    }

    fn set_attr(&mut self, name: &str, value: &Value) -> Result<AttrWrite> {
        let loc = self.location().child(name);
        let j = match value_to_attr_json(value) {
            Ok(Some(j)) => j,
            Ok(None) => {
                return Ok(AttrWrite::Dropped(format!(
                    "a {} cannot be stored in Zarr attributes (zarr's JSON encoder drops it)",
                    value.kind()
                )));
            }
            Err(e) => return Err(SignalError::write(&loc, e)),
        };
        let mut members = match self.read_doc(".zattrs")? {
            Some(Json::Object(m)) => m,
            _ => vec![],
        };
        if let Some(slot) = members.iter_mut().find(|(k, _)| k == name) {
            slot.1 = j;
        } else {
            members.push((name.to_string(), j));
        }
        self.write_doc(".zattrs", &Json::Object(members))?;
        Ok(AttrWrite::Written)
    }

    fn write_dataset(
        &mut self,
        name: &str,
        value: &DatasetValue,
        chunks: Option<&[usize]>,
    ) -> Result<()> {
        self.check_name(name)?;
        let loc = self.location().child(name);
        let a = match value {
            DatasetValue::Loaded(a) => a,
            DatasetValue::Deferred(r) => {
                return Err(SignalError::write(
                    &loc,
                    format!(
                        "the values of '{}' were not read ({}); they cannot be written",
                        r.path, r.reason
                    ),
                ));
            }
        };
        let child = self.child(name);
        if self.exists(&child.key(".zgroup"))? {
            return Err(SignalError::write(&loc, "a group of that name exists"));
        }
        self.keys
            .erase_prefix(&child.prefix)
            .map_err(|e| SignalError::io(&loc, e))?;
        // Element layout.
        let (dtype_json, filters, fill, typesize) = match (&a.dtype, &a.data) {
            (ArrayDType::VlenStr | ArrayDType::FixedUnicode(_), ArrayData::Strings(_)) => (
                Json::Str("|O".into()),
                Json::Array(vec![Json::Object(vec![(
                    "id".into(),
                    Json::Str("vlen-utf8".into()),
                )])]),
                Json::Int(0),
                1,
            ),
            (ArrayDType::Object, ArrayData::Cells(cells)) => {
                let cell_dtype = cells
                    .first()
                    .map(|c| c.dtype.clone())
                    .unwrap_or(ArrayDType::F64);
                let Some(ts) = cell_dtype.typestr().filter(|_| cell_dtype.is_raw()) else {
                    return Err(SignalError::unsupported(
                        &loc,
                        "ragged cells of strings (msgpack2) cannot be written yet",
                    ));
                };
                (
                    Json::Str("|O".into()),
                    Json::Array(vec![Json::Object(vec![
                        ("dtype".into(), Json::Str(ts)),
                        ("id".into(), Json::Str("vlen-array".into())),
                    ])]),
                    Json::Int(0),
                    1,
                )
            }
            (dt, ArrayData::Raw(_)) => {
                let fill = match dt {
                    ArrayDType::Bool => Json::Bool(false),
                    ArrayDType::Int { .. } | ArrayDType::UInt { .. } => Json::Int(0),
                    ArrayDType::Float { .. } => Json::Float(0.0),
                    ArrayDType::Complex { .. } => {
                        Json::Array(vec![Json::Float(0.0), Json::Float(0.0)])
                    }
                    ArrayDType::FixedBytes(_) => Json::Str(String::new()),
                    other => Json::Str(base64_encode(&vec![0u8; other.itemsize().unwrap_or(0)])),
                };
                (
                    dtype_to_json(dt),
                    Json::Null,
                    fill,
                    dt.itemsize().unwrap_or(1),
                )
            }
            _ => {
                return Err(SignalError::write(
                    &loc,
                    "array data does not match its dtype",
                ));
            }
        };
        let chunks: Vec<usize> = match chunks {
            Some(c) => c.to_vec(),
            None => zarr_guess_chunks(&a.shape, a.dtype.itemsize().unwrap_or(8)),
        };
        let doc = Json::Object(vec![
            (
                "chunks".into(),
                Json::Array(chunks.iter().map(|&c| Json::Int(c as i64)).collect()),
            ),
            ("compressor".into(), default_compressor()),
            ("dimension_separator".into(), Json::Str("/".into())),
            ("dtype".into(), dtype_json),
            ("fill_value".into(), fill),
            ("filters".into(), filters),
            ("order".into(), Json::Str("C".into())),
            (
                "shape".into(),
                Json::Array(a.shape.iter().map(|&s| Json::Int(s as i64)).collect()),
            ),
            ("zarr_format".into(), Json::Int(2)),
        ]);
        child.write_doc(".zarray", &doc)?;
        // Chunks (full size, padded at the edges).
        let nd = a.shape.len();
        let grid: Vec<usize> = a
            .shape
            .iter()
            .zip(&chunks)
            .map(|(s, c)| s.div_ceil(*c))
            .collect();
        let nchunks: usize = if a.shape.contains(&0) {
            0
        } else {
            grid.iter().product()
        };
        let chunk_len: usize = chunks.iter().product();
        let mut cidx = vec![0usize; nd];
        for c in 0..nchunks {
            let mut rem = c;
            for d in (0..nd).rev() {
                cidx[d] = rem % grid[d];
                rem /= grid[d];
            }
            let payload = match &a.data {
                ArrayData::Raw(b) => {
                    let size = typesize;
                    let mut out = vec![0u8; chunk_len * size];
                    for_each_in_chunk(&cidx, &chunks, &a.shape, |l, g| {
                        out[l * size..(l + 1) * size].copy_from_slice(&b[g * size..(g + 1) * size]);
                    });
                    out
                }
                ArrayData::Strings(s) => {
                    let mut items = vec![String::new(); chunk_len];
                    for_each_in_chunk(&cidx, &chunks, &a.shape, |l, g| items[l] = s[g].clone());
                    let mut out = (chunk_len as u32).to_le_bytes().to_vec();
                    for it in items {
                        out.extend_from_slice(&(it.len() as u32).to_le_bytes());
                        out.extend_from_slice(it.as_bytes());
                    }
                    out
                }
                ArrayData::Cells(cs) => {
                    let mut items: Vec<Vec<u8>> = vec![Vec::new(); chunk_len];
                    for_each_in_chunk(&cidx, &chunks, &a.shape, |l, g| {
                        if let ArrayData::Raw(b) = &cs[g].data {
                            items[l] = b.clone();
                        }
                    });
                    let mut out = (chunk_len as u32).to_le_bytes().to_vec();
                    for it in items {
                        out.extend_from_slice(&(it.len() as u32).to_le_bytes());
                        out.extend_from_slice(&it);
                    }
                    out
                }
            };
            let key = cidx
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("/");
            let full = child.key(&key);
            self.keys
                .set(&full, blosc_frame(&payload, typesize))
                .map_err(|e| SignalError::io(&self.location_of(&full), e))?;
        }
        Ok(())
    }

    fn contains(&self, name: &str) -> Result<bool> {
        let child = self.child(name);
        Ok(self.exists(&child.key(".zgroup"))? || self.exists(&child.key(".zarray"))?)
    }
}

/// `{"zarr_format": 2}`, the `.zgroup` document.
pub fn zgroup_doc() -> Json {
    Json::Object(vec![("zarr_format".into(), Json::Int(2))])
}
