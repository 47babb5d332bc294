//! A Zarr v2 backend of [`GroupRead`] / [`GroupWrite`] for metadata.
//!
//! Reading ([`ZarrDirGroup`], directory and zip stores alike through [`ZarrStore`]):
//! `.zgroup`/`.zattrs`/`.zarray` JSON (bare `NaN`/`Infinity` accepted), children listed
//! from the store (only members with `.zgroup` or `.zarray` exist for zarr), and the
//! values of whole arrays (metadata arrays, and signal data the engine cannot hold:
//! ragged, structured, strings): chunks are decompressed with `zarrs`' codecs (Blosc with
//! any inner codec and shuffle, zlib, gzip, zstd, none), then decoded by dtype or by the
//! `vlen-utf8`, `vlen-array` and `msgpack2` object codecs. Missing chunks read as the fill
//! value; `.` and `/` chunk keys are both found (spec §5.2). A compressor `zarrs` does not
//! have, or `order: "F"`, makes the dataset a [`DatasetValue::Deferred`] reference;
//! corrupt chunks are errors naming the file and the chunk key.
//!
//! Writing lives in [`crate::signal::zarr_write`].

use std::path::Path;
use std::sync::Arc;

use zarrs::array::codec::api::{BytesRepresentation, BytesToBytesCodecTraits, Codec, CodecOptions};
use zarrs::convert::codec_metadata_v2_to_v3;
use zarrs::metadata::v2::{ArrayMetadataV2Order, MetadataV2};
use zarrs::metadata::v3::MetadataV3;

use crate::signal::hierarchy::{DatasetInfo, DatasetValue, GroupRead, NodeKind};
use crate::signal::json::{self, Json};
use crate::signal::tree::{Array, ArrayDType, ArrayData, ArrayRef, Dict, StructField, Value};
use crate::signal::zarr_store::ZarrStore;
use crate::signal::{Location, Result, SignalError};

/// The parsed `.zarray` of an array.
#[derive(Clone, Debug, PartialEq)]
pub struct ZarrArrayMeta {
    /// Shape.
    pub shape: Vec<usize>,
    /// Chunk shape.
    pub chunks: Vec<usize>,
    /// Element type (`|O` resolved by the filter: `vlen-utf8` gives
    /// [`ArrayDType::VlenStr`], others [`ArrayDType::Object`]).
    pub dtype: ArrayDType,
    /// The compressor config (`None` for `null`).
    pub compressor: Option<Json>,
    /// The filters (object codecs).
    pub filters: Vec<Json>,
    /// `fill_value` as stored.
    pub fill_value: Json,
    /// `order` (`"C"`).
    pub order: String,
    /// The chunk key separator (`"."` when absent).
    pub dimension_separator: String,
    /// The whole document.
    pub raw: Json,
}

fn parse_dtype(j: &Json) -> Option<ArrayDType> {
    match j {
        Json::Str(s) => ArrayDType::from_typestr(s),
        Json::Array(fields) => {
            let mut out = Vec::new();
            for f in fields {
                let Json::Array(parts) = f else { return None };
                let name = parts.first()?.as_str()?.to_string();
                let dtype = parse_dtype(parts.get(1)?)?;
                let shape = match parts.get(2) {
                    Some(s) => s.as_usize_vec()?,
                    None => vec![],
                };
                out.push(StructField { name, dtype, shape });
            }
            Some(ArrayDType::Struct(out))
        }
        _ => None,
    }
}

pub(crate) fn dtype_to_json(d: &ArrayDType) -> Json {
    match d {
        ArrayDType::Struct(fields) => Json::Array(
            fields
                .iter()
                .map(|f| {
                    let mut parts = vec![Json::Str(f.name.clone()), dtype_to_json(&f.dtype)];
                    if !f.shape.is_empty() {
                        parts.push(Json::Array(
                            f.shape.iter().map(|&s| Json::Int(s as i64)).collect(),
                        ));
                    }
                    Json::Array(parts)
                })
                .collect(),
        ),
        other => Json::Str(other.typestr().unwrap_or_default()),
    }
}

impl ZarrArrayMeta {
    /// Parses a `.zarray` document.
    pub fn from_json(j: &Json) -> std::result::Result<ZarrArrayMeta, String> {
        if j.get("zarr_format").and_then(|v| v.as_usize()) != Some(2) {
            return Err("zarr_format is not 2".into());
        }
        let shape = j
            .get("shape")
            .and_then(|v| v.as_usize_vec())
            .ok_or("bad or missing 'shape'")?;
        let chunks = j
            .get("chunks")
            .and_then(|v| v.as_usize_vec())
            .ok_or("bad or missing 'chunks'")?;
        if chunks.len() != shape.len() || chunks.contains(&0) {
            return Err(format!("chunks {chunks:?} do not fit shape {shape:?}"));
        }
        let dj = j.get("dtype").ok_or("missing 'dtype'")?;
        let mut dtype = parse_dtype(dj).ok_or_else(|| format!("unsupported dtype {dj:?}"))?;
        let compressor = match j.get("compressor") {
            None | Some(Json::Null) => None,
            Some(c) => Some(c.clone()),
        };
        let filters = match j.get("filters") {
            None | Some(Json::Null) => vec![],
            Some(Json::Array(f)) => f.clone(),
            Some(other) => return Err(format!("bad 'filters' {other:?}")),
        };
        if dtype == ArrayDType::Object
            && filters
                .first()
                .and_then(|f| f.get("id"))
                .and_then(|i| i.as_str())
                == Some("vlen-utf8")
        {
            dtype = ArrayDType::VlenStr;
        }
        Ok(ZarrArrayMeta {
            shape,
            chunks,
            dtype,
            compressor,
            filters,
            fill_value: j.get("fill_value").cloned().unwrap_or(Json::Null),
            order: j
                .get("order")
                .and_then(|v| v.as_str())
                .unwrap_or("C")
                .to_string(),
            dimension_separator: j
                .get("dimension_separator")
                .and_then(|v| v.as_str())
                .unwrap_or(".")
                .to_string(),
            raw: j.clone(),
        })
    }
}

/// Converts attribute JSON to a tree value (JSON arrays are Python lists, objects dicts).
pub fn json_to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::None,
        Json::Bool(b) => Value::Bool(*b),
        Json::Int(i) => Value::Int(*i),
        Json::UInt(u) => Value::UInt(*u),
        Json::BigInt(s) => Value::Float(s.parse().unwrap_or(f64::NAN)),
        Json::Float(f) => Value::Float(*f),
        Json::Str(s) => Value::Str(s.clone()),
        Json::Array(v) => Value::List(v.iter().map(json_to_value).collect()),
        Json::Object(m) => Value::Dict(
            m.iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        ),
    }
}

fn json_to_dict(j: &Json) -> Dict {
    match json_to_value(j) {
        Value::Dict(d) => d,
        _ => Dict::new(),
    }
}

/// A group of a Zarr v2 store (read side): a directory or a zip file
/// ([`ZarrStore`], detected automatically).
#[derive(Clone, Debug)]
pub struct ZarrDirGroup {
    store: ZarrStore,
    /// The group's path relative to the store root (`""` for the root).
    rel: String,
}

/// Parses a JSON document (`.zgroup`, `.zattrs`, `.zarray`) read from `key`.
fn parse_json_doc(loc: &Location, text: Vec<u8>, key: &str) -> Result<Json> {
    let text = String::from_utf8(text).map_err(|_| SignalError::Json {
        file: loc.file.clone(),
        key: key.into(),
        line: 0,
        column: 0,
        msg: "not UTF-8".into(),
    })?;
    json::parse(&text).map_err(|e| SignalError::Json {
        file: loc.file.clone(),
        key: key.into(),
        line: e.line,
        column: e.column,
        msg: e.msg,
    })
}

impl ZarrDirGroup {
    /// Opens the root group of the store at `path`, a directory or a zip file (it must
    /// hold a v2 `.zgroup`).
    pub fn open(path: impl AsRef<Path>) -> Result<ZarrDirGroup> {
        Self::open_store(ZarrStore::open(path)?)
    }

    /// The root group of an opened store.
    pub fn open_store(store: ZarrStore) -> Result<ZarrDirGroup> {
        let g = ZarrDirGroup {
            store,
            rel: String::new(),
        };
        let file = g.store.file().to_string();
        match g.doc(".zgroup")? {
            Some(j) => {
                if j.get("zarr_format").and_then(|v| v.as_usize()) != Some(2) {
                    return Err(SignalError::unsupported(
                        &Location::new(file, "/.zgroup"),
                        format!("zarr_format is not 2 ({:?})", j.get("zarr_format")),
                    ));
                }
            }
            None => {
                if g.store.contains("zarr.json") {
                    return Err(SignalError::unsupported(
                        &Location::new(file, "/zarr.json"),
                        "Zarr v3 stores are not supported (RosettaSciIO writes v2)",
                    ));
                }
                return Err(SignalError::missing(
                    &Location::new(file, "/.zgroup"),
                    "Zarr group document",
                ));
            }
        }
        Ok(g)
    }

    /// The store this group belongs to.
    pub fn store(&self) -> &ZarrStore {
        &self.store
    }

    /// The group at `path` (`/`-separated, relative to this group, e.g.
    /// `Experiments/name`), if every step is a group.
    pub fn subgroup(&self, path: &str) -> Result<Option<ZarrDirGroup>> {
        let mut g = self.clone();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            match g.group(seg)? {
                Some(c) => g = c,
                None => return Ok(None),
            }
        }
        Ok(Some(g))
    }

    /// The store key of the member `name` of this group.
    fn key(&self, name: &str) -> String {
        if self.rel.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.rel)
        }
    }

    /// The JSON document `name` of this group (`None` when absent).
    fn doc(&self, name: &str) -> Result<Option<Json>> {
        let key = self.key(name);
        let loc = self.location();
        match self.store.get(&key)? {
            None => Ok(None),
            Some(text) => parse_json_doc(&loc, text, &format!("/{key}")).map(Some),
        }
    }

    pub(crate) fn valid_name(name: &str) -> bool {
        !name.is_empty() && name != "." && name != ".." && !name.contains('/')
    }

    /// The parsed `.zarray` of the child array `name`.
    pub fn array_meta(&self, name: &str) -> Result<Option<ZarrArrayMeta>> {
        if !Self::valid_name(name) {
            return Ok(None);
        }
        let loc = self.location().child(name);
        let key = format!("{}/.zarray", loc.path);
        let Some(j) = self.doc(&format!("{name}/.zarray"))? else {
            return Ok(None);
        };
        ZarrArrayMeta::from_json(&j)
            .map(Some)
            .map_err(|e| SignalError::invalid(&Location::new(loc.file.clone(), key), e))
    }
}

impl GroupRead for ZarrDirGroup {
    fn location(&self) -> Location {
        Location::new(self.store.file(), format!("/{}", self.rel))
    }

    fn attrs(&self) -> Result<Vec<(String, Value)>> {
        let loc = self.location();
        let key = format!("{}/.zattrs", loc.path.trim_end_matches('/'));
        match self.doc(".zattrs")? {
            None => Ok(vec![]),
            Some(Json::Object(m)) => Ok(m
                .iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect()),
            Some(_) => Err(SignalError::invalid(
                &Location::new(loc.file.clone(), key),
                ".zattrs is not a JSON object",
            )),
        }
    }

    fn children(&self) -> Result<Vec<(String, NodeKind)>> {
        let mut out = Vec::new();
        for name in self.store.list_dir(&self.rel)? {
            if name.starts_with('.') {
                continue;
            }
            let key = self.key(&name);
            if self.store.contains(&format!("{key}/.zgroup")) {
                out.push((name, NodeKind::Group));
            } else if self.store.contains(&format!("{key}/.zarray")) {
                out.push((name, NodeKind::Dataset));
            }
        }
        out.sort_by(|a, b| json::py_str_cmp(&a.0, &b.0));
        Ok(out)
    }

    fn group(&self, name: &str) -> Result<Option<Self>> {
        if !Self::valid_name(name) || !self.store.contains(&self.key(&format!("{name}/.zgroup"))) {
            return Ok(None);
        }
        Ok(Some(ZarrDirGroup {
            store: self.store.clone(),
            rel: self.key(name),
        }))
    }

    fn dataset_info(&self, name: &str) -> Result<Option<DatasetInfo>> {
        Ok(self.array_meta(name)?.map(|m| DatasetInfo {
            dtype: m.dtype.clone(),
            shape: m.shape.clone(),
            chunks: m.chunks.clone(),
            storage: json_to_dict(&m.raw),
        }))
    }

    fn read_dataset(&self, name: &str) -> Result<DatasetValue> {
        let loc = self.location().child(name);
        let meta = self
            .array_meta(name)?
            .ok_or_else(|| SignalError::missing(&loc, "array"))?;
        read_zarr_array(&self.store, &self.key(name), &loc, &meta)
    }
}

// ---------------------------------------------------------------------------------------
// Chunk decoding
// ---------------------------------------------------------------------------------------

enum Decoded {
    Raw(Vec<u8>),
    Strings(Vec<String>),
    Cells(Vec<Array>),
}

fn deferred(loc: &Location, meta: &ZarrArrayMeta, reason: String) -> DatasetValue {
    DatasetValue::Deferred(ArrayRef {
        file: loc.file.clone(),
        path: loc.path.clone(),
        dtype: meta.dtype.clone(),
        shape: meta.shape.clone(),
        chunks: meta.chunks.clone(),
        reason,
        sequence: None,
    })
}

/// The compressor of an array, built once per array with `zarrs` (Blosc with every
/// inner codec and shuffle mode, zlib, gzip, zstd, ...).
struct Decompressor(Option<Arc<dyn BytesToBytesCodecTraits>>);

impl Decompressor {
    /// `Err(reason)` when `zarrs` has no such codec (or the configuration is invalid).
    fn new(meta: &ZarrArrayMeta) -> std::result::Result<Decompressor, String> {
        let Some(c) = &meta.compressor else {
            return Ok(Decompressor(None));
        };
        let text = json::to_zarr_string(c);
        let v2: MetadataV2 = serde_json::from_str(&text)
            .map_err(|e| format!("invalid compressor configuration {text}: {e}"))?;
        // zarrs' own v2 → v3 conversion (it maps numcodecs' Blosc configuration); the
        // compressor is the last codec of the chain.
        let chain = codec_metadata_v2_to_v3(
            ArrayMetadataV2Order::C,
            1,
            &MetadataV3::new("uint8"),
            None,
            &None,
            &Some(v2.clone()),
        )
        .map_err(|e| format!("compressor '{}' not available: {e}", v2.id()))?;
        let Some(v3) = chain.last() else {
            return Err(format!("compressor '{}' not available", v2.id()));
        };
        match Codec::from_metadata(v3) {
            Ok(Codec::BytesToBytes(codec)) => Ok(Decompressor(Some(codec))),
            Ok(_) => Err(format!("compressor '{}' is not a bytes codec", v2.id())),
            Err(e) => Err(format!("compressor '{}' not available: {e}", v2.id())),
        }
    }

    /// Decompresses one chunk (`Err` for corrupt data).
    fn decode(&self, bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
        match &self.0 {
            None => Ok(bytes),
            Some(codec) => codec
                .decode(
                    std::borrow::Cow::Owned(bytes),
                    &BytesRepresentation::UnboundedSize,
                    &CodecOptions::default(),
                )
                .map(|b| b.into_owned())
                .map_err(|e| format!("cannot decompress: {e}")),
        }
    }
}

fn le_u32(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at + 4)
        .map(|x| u32::from_le_bytes(x.try_into().expect("4 bytes")) as usize)
}

fn decode_vlen_utf8(b: &[u8]) -> std::result::Result<Vec<String>, String> {
    let n = le_u32(b, 0).ok_or("vlen-utf8: no item count")?;
    let mut at = 4;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = le_u32(b, at).ok_or("vlen-utf8: truncated")?;
        at += 4;
        let s = b.get(at..at + len).ok_or("vlen-utf8: truncated")?;
        out.push(String::from_utf8(s.to_vec()).map_err(|_| "vlen-utf8: item is not UTF-8")?);
        at += len;
    }
    Ok(out)
}

fn decode_vlen_array(b: &[u8], dtype: &ArrayDType) -> std::result::Result<Vec<Array>, String> {
    let size = dtype
        .itemsize()
        .ok_or("vlen-array of a variable-size type")?;
    let n = le_u32(b, 0).ok_or("vlen-array: no item count")?;
    let mut at = 4;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = le_u32(b, at).ok_or("vlen-array: truncated")?;
        at += 4;
        let bytes = b.get(at..at + len).ok_or("vlen-array: truncated")?;
        if len % size != 0 {
            return Err("vlen-array: item length is not a multiple of the item size".into());
        }
        out.push(Array {
            dtype: dtype.clone(),
            shape: vec![len / size],
            data: ArrayData::Raw(bytes.to_vec()),
        });
        at += len;
    }
    Ok(out)
}

/// A minimal MessagePack decoder (what numcodecs' `MsgPack` writes).
fn msgpack_value(b: &[u8], at: &mut usize) -> std::result::Result<Value, String> {
    let take = |at: &mut usize, n: usize| -> std::result::Result<&[u8], String> {
        let s = b.get(*at..*at + n).ok_or("msgpack: truncated")?;
        *at += n;
        Ok(s)
    };
    let be = |s: &[u8]| s.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64);
    let tag = *b.get(*at).ok_or("msgpack: truncated")?;
    *at += 1;
    let array = |at: &mut usize, n: usize| -> std::result::Result<Value, String> {
        let mut v = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            v.push(msgpack_value(b, at)?);
        }
        Ok(Value::List(v))
    };
    let map = |at: &mut usize, n: usize| -> std::result::Result<Value, String> {
        let mut d = Dict::new();
        for _ in 0..n {
            let k = msgpack_value(b, at)?;
            let v = msgpack_value(b, at)?;
            let k = match k {
                Value::Str(s) => s,
                other => format!("{other:?}"),
            };
            d.insert(k, v);
        }
        Ok(Value::Dict(d))
    };
    let string = |s: &[u8]| {
        String::from_utf8(s.to_vec())
            .map(Value::Str)
            .map_err(|_| "msgpack: bad str".to_string())
    };
    Ok(match tag {
        0x00..=0x7f => Value::Int(tag as i64),
        0x80..=0x8f => map(at, (tag & 0x0f) as usize)?,
        0x90..=0x9f => array(at, (tag & 0x0f) as usize)?,
        0xa0..=0xbf => string(take(at, (tag & 0x1f) as usize)?)?,
        0xc0 => Value::None,
        0xc2 => Value::Bool(false),
        0xc3 => Value::Bool(true),
        0xc4..=0xc6 => {
            let n = be(take(at, 1 << (tag - 0xc4))?) as usize;
            Value::Bytes(take(at, n)?.to_vec())
        }
        0xca => Value::Float(f32::from_bits(be(take(at, 4)?) as u32) as f64),
        0xcb => Value::Float(f64::from_bits(be(take(at, 8)?))),
        0xcc..=0xcf => {
            let u = be(take(at, 1 << (tag - 0xcc))?);
            i64::try_from(u).map(Value::Int).unwrap_or(Value::UInt(u))
        }
        0xd0..=0xd3 => {
            let n = 1usize << (tag - 0xd0);
            let u = be(take(at, n)?);
            let shift = 64 - 8 * n as u32;
            Value::Int(((u << shift) as i64) >> shift)
        }
        0xd9..=0xdb => {
            let n = be(take(at, 1 << (tag - 0xd9))?) as usize;
            string(take(at, n)?)?
        }
        0xdc | 0xdd => {
            let n = be(take(at, if tag == 0xdc { 2 } else { 4 })?) as usize;
            array(at, n)?
        }
        0xde | 0xdf => {
            let n = be(take(at, if tag == 0xde { 2 } else { 4 })?) as usize;
            map(at, n)?
        }
        0xe0..=0xff => Value::Int((tag as i8) as i64),
        other => return Err(format!("msgpack: unsupported type byte 0x{other:02x}")),
    })
}

/// A cell as numpy makes it (`np.array(item)`): strings give a unicode array.
fn cell_from_value(v: Value) -> std::result::Result<Array, String> {
    let items = match v {
        Value::List(items) => items,
        scalar => vec![scalar],
    };
    match crate::signal::hierarchy::homogenize(&items)? {
        crate::signal::hierarchy::Homogenized::Strings(s) => Ok(Array::from_unicode(s)),
        crate::signal::hierarchy::Homogenized::Array(a) => Ok(a),
        crate::signal::hierarchy::Homogenized::Group if items.is_empty() => {
            Ok(Array::from_f64(&[]))
        }
        crate::signal::hierarchy::Homogenized::Group => {
            Err("msgpack2 cell that is not a flat list of scalars".into())
        }
    }
}

fn decode_msgpack2(b: &[u8], chunk_shape: &[usize]) -> std::result::Result<Vec<Array>, String> {
    let mut at = 0;
    let Value::List(mut top) = msgpack_value(b, &mut at)? else {
        return Err("msgpack2: chunk is not an array".into());
    };
    if top.len() < 2 {
        return Err("msgpack2: chunk lacks its dtype and shape".into());
    }
    top.truncate(top.len() - 2); // drop "|O" and the shape
    // For n-d chunks the items are nested arrays in C order.
    fn flatten(v: Vec<Value>, depth: usize, out: &mut Vec<Value>) {
        for item in v {
            match item {
                Value::List(inner) if depth > 1 => flatten(inner, depth - 1, out),
                other => out.push(other),
            }
        }
    }
    let mut flat = Vec::new();
    flatten(top, chunk_shape.len().max(1), &mut flat);
    flat.into_iter().map(cell_from_value).collect()
}

fn decode_chunk(
    meta: &ZarrArrayMeta,
    codec: &Decompressor,
    bytes: Vec<u8>,
) -> std::result::Result<std::result::Result<Decoded, String>, String> {
    // Outer Err: corrupt chunk. Inner Err: a codec this layer does not have.
    let raw = codec.decode(bytes)?;
    let chunk_len: usize = meta.chunks.iter().product();
    if let Some(filter) = meta.filters.first() {
        let id = filter.get("id").and_then(|i| i.as_str()).unwrap_or("");
        return Ok(Ok(match id {
            "vlen-utf8" => Decoded::Strings(decode_vlen_utf8(&raw)?),
            "vlen-array" => {
                let dt = filter
                    .get("dtype")
                    .and_then(|d| d.as_str())
                    .and_then(ArrayDType::from_typestr)
                    .ok_or("vlen-array filter without a valid dtype")?;
                Decoded::Cells(decode_vlen_array(&raw, &dt)?)
            }
            "msgpack2" => Decoded::Cells(decode_msgpack2(&raw, &meta.chunks)?),
            other => return Ok(Err(format!("filter '{other}' not available in this layer"))),
        }));
    }
    let size = meta
        .dtype
        .itemsize()
        .ok_or("variable-size dtype without an object codec")?;
    if raw.len() != chunk_len * size {
        return Err(format!(
            "wrong chunk size: the chunk holds {} bytes, expected {}",
            raw.len(),
            chunk_len * size
        ));
    }
    Ok(Ok(Decoded::Raw(raw)))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let s: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

pub(crate) fn base64_encode(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= (c as u32) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((acc >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn encode_number(dtype: &ArrayDType, v: f64, i: i128) -> Vec<u8> {
    let order = |mut b: Vec<u8>, be: bool| {
        if be {
            b.reverse();
        }
        b
    };
    match dtype {
        ArrayDType::Bool => vec![(i != 0 || (v != 0.0 && !v.is_nan())) as u8],
        ArrayDType::Int { bytes, big_endian } | ArrayDType::UInt { bytes, big_endian } => {
            order(i.to_le_bytes()[..*bytes].to_vec(), *big_endian)
        }
        ArrayDType::Float { bytes, big_endian } => order(
            match bytes {
                4 => (v as f32).to_le_bytes().to_vec(),
                8 => v.to_le_bytes().to_vec(),
                _ => vec![0; *bytes],
            },
            *big_endian,
        ),
        other => vec![0; other.itemsize().unwrap_or(0)],
    }
}

/// The bytes of one element equal to `fill_value` (zeros when absent or unknown).
fn fill_bytes(dtype: &ArrayDType, fill: &Json) -> Vec<u8> {
    let size = dtype.itemsize().unwrap_or(0);
    let num = |f: f64, i: i128| encode_number(dtype, f, i);
    let mut b = match fill {
        Json::Int(i) => num(*i as f64, *i as i128),
        Json::UInt(u) => num(*u as f64, *u as i128),
        Json::Float(f) => num(*f, *f as i128),
        Json::Bool(x) => num(*x as i64 as f64, *x as i128),
        Json::Str(s) if s == "NaN" => num(f64::NAN, 0),
        Json::Str(s) if s == "Infinity" => num(f64::INFINITY, 0),
        Json::Str(s) if s == "-Infinity" => num(f64::NEG_INFINITY, 0),
        Json::Str(s) => base64_decode(s).unwrap_or_default(),
        Json::Array(parts) if matches!(dtype, ArrayDType::Complex { .. }) => {
            let half = match dtype {
                ArrayDType::Complex { bytes, big_endian } => ArrayDType::Float {
                    bytes: bytes / 2,
                    big_endian: *big_endian,
                },
                _ => unreachable!(),
            };
            let f = |j: Option<&Json>| match j {
                Some(Json::Float(f)) => *f,
                Some(Json::Int(i)) => *i as f64,
                _ => 0.0,
            };
            let mut v = encode_number(&half, f(parts.first()), 0);
            v.extend(encode_number(&half, f(parts.get(1)), 0));
            v
        }
        _ => vec![],
    };
    b.resize(size, 0);
    b
}

/// Calls `f(local_flat, global_flat)` for every element of chunk `cidx` inside the array.
pub(crate) fn for_each_in_chunk(
    cidx: &[usize],
    chunks: &[usize],
    shape: &[usize],
    mut f: impl FnMut(usize, usize),
) {
    let nd = shape.len();
    let total: usize = chunks.iter().product();
    let mut local = vec![0usize; nd];
    for lflat in 0..total {
        // local index from lflat (C order)
        let mut rem = lflat;
        for d in (0..nd).rev() {
            local[d] = rem % chunks[d];
            rem /= chunks[d];
        }
        let mut gflat = 0usize;
        let mut inside = true;
        for d in 0..nd {
            let g = cidx[d] * chunks[d] + local[d];
            if g >= shape[d] {
                inside = false;
                break;
            }
            gflat = gflat * shape[d] + g;
        }
        if inside {
            f(lflat, gflat);
        }
    }
}

fn read_zarr_array(
    store: &ZarrStore,
    array_key: &str,
    loc: &Location,
    meta: &ZarrArrayMeta,
) -> Result<DatasetValue> {
    if meta.order != "C" {
        return Ok(deferred(
            loc,
            meta,
            format!("order '{}' not supported", meta.order),
        ));
    }
    let codec = match Decompressor::new(meta) {
        Ok(c) => c,
        Err(reason) => return Ok(deferred(loc, meta, reason)),
    };
    let n: usize = meta.shape.iter().product();
    let nd = meta.shape.len();
    let grid: Vec<usize> = meta
        .shape
        .iter()
        .zip(&meta.chunks)
        .map(|(s, c)| s.div_ceil(*c))
        .collect();
    let nchunks: usize = if nd == 0 { 1 } else { grid.iter().product() };
    let size = meta.dtype.itemsize();
    let is_object = matches!(meta.dtype, ArrayDType::Object | ArrayDType::VlenStr);
    let mut raw: Vec<u8> = Vec::new();
    if !is_object {
        let fill = fill_bytes(&meta.dtype, &meta.fill_value);
        raw.reserve(n * fill.len());
        for _ in 0..n {
            raw.extend_from_slice(&fill);
        }
    }
    let mut strings: Vec<Option<String>> = if meta.dtype == ArrayDType::VlenStr {
        vec![None; n]
    } else {
        vec![]
    };
    let mut cells: Vec<Option<Array>> = if meta.dtype == ArrayDType::Object {
        vec![None; n]
    } else {
        vec![]
    };
    let mut cidx = vec![0usize; nd];
    for c in 0..nchunks {
        let mut rem = c;
        for d in (0..nd).rev() {
            cidx[d] = rem % grid[d];
            rem /= grid[d];
        }
        let key = if nd == 0 {
            "0".to_string()
        } else {
            cidx.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(&meta.dimension_separator)
        };
        let mut chunk_key = format!("{array_key}/{key}");
        if nd > 1 && !store.contains(&chunk_key) {
            // Robustness (spec §5.2): old zarr did not record the separator.
            let other = if meta.dimension_separator == "/" {
                "."
            } else {
                "/"
            };
            let alt = format!(
                "{array_key}/{}",
                cidx.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(other)
            );
            if store.contains(&alt) {
                chunk_key = alt;
            }
        }
        let bytes = match store.get(&chunk_key)? {
            Some(b) => b,
            None => {
                if is_object {
                    return Ok(deferred(
                        loc,
                        meta,
                        format!("chunk '{key}' of an object array is missing"),
                    ));
                }
                continue; // fill value
            }
        };
        let decoded = decode_chunk(meta, &codec, bytes)
            .map_err(|e| SignalError::invalid(&loc.child(&key), e))?;
        let decoded = match decoded {
            Ok(d) => d,
            Err(reason) => return Ok(deferred(loc, meta, reason)),
        };
        let chunk_len: usize = meta.chunks.iter().product();
        match decoded {
            Decoded::Raw(b) => {
                let size = size.expect("fixed size");
                for_each_in_chunk(&cidx, &meta.chunks, &meta.shape, |l, g| {
                    raw[g * size..(g + 1) * size].copy_from_slice(&b[l * size..(l + 1) * size]);
                });
            }
            Decoded::Strings(s) => {
                if s.len() < chunk_len || strings.is_empty() {
                    return Err(SignalError::invalid(
                        &loc.child(&key),
                        "string chunk of the wrong length",
                    ));
                }
                let mut s: Vec<Option<String>> = s.into_iter().map(Some).collect();
                for_each_in_chunk(&cidx, &meta.chunks, &meta.shape, |l, g| {
                    strings[g] = s[l].take();
                });
            }
            Decoded::Cells(cs) => {
                if cs.len() < chunk_len || cells.is_empty() {
                    return Err(SignalError::invalid(
                        &loc.child(&key),
                        "object chunk of the wrong length or type",
                    ));
                }
                let mut cs: Vec<Option<Array>> = cs.into_iter().map(Some).collect();
                for_each_in_chunk(&cidx, &meta.chunks, &meta.shape, |l, g| {
                    cells[g] = cs[l].take();
                });
            }
        }
    }
    let data = match meta.dtype {
        ArrayDType::VlenStr => {
            ArrayData::Strings(strings.into_iter().map(Option::unwrap_or_default).collect())
        }
        ArrayDType::Object => {
            let cells: Option<Vec<Array>> = cells.into_iter().collect();
            match cells {
                Some(c) => ArrayData::Cells(c),
                None => return Ok(deferred(loc, meta, "object array with unread cells".into())),
            }
        }
        _ => ArrayData::Raw(raw),
    };
    Ok(DatasetValue::Loaded(Array {
        dtype: meta.dtype.clone(),
        shape: meta.shape.clone(),
        data,
    }))
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// zarr 2.18 `guess_chunks` (spec §6.3).
pub fn zarr_guess_chunks(shape: &[usize], itemsize: usize) -> Vec<usize> {
    const BASE: f64 = 256.0 * 1024.0;
    const MIN: f64 = 128.0 * 1024.0;
    const MAX: f64 = 64.0 * 1024.0 * 1024.0;
    let ndims = shape.len();
    if ndims == 0 {
        return vec![];
    }
    let mut chunks: Vec<f64> = shape
        .iter()
        .map(|&s| if s == 0 { 1.0 } else { s as f64 })
        .collect();
    let dset_size = chunks.iter().product::<f64>() * itemsize as f64;
    let target = (BASE * 2f64.powf((dset_size / (1024.0 * 1024.0)).log10())).clamp(MIN, MAX);
    let mut idx = 0usize;
    loop {
        let chunk_bytes = chunks.iter().product::<f64>() * itemsize as f64;
        if (chunk_bytes < target || ((chunk_bytes - target).abs() / target) < 0.5)
            && chunk_bytes < MAX
        {
            break;
        }
        if chunks.iter().product::<f64>() == 1.0 {
            break;
        }
        let i = idx % ndims;
        chunks[i] = (chunks[i] / 2.0).ceil();
        idx += 1;
    }
    chunks.into_iter().map(|c| c as usize).collect()
}
