//! Comparison of what lazyspy reads with the fixtures' `.expected.json` sidecars (what
//! RosettaSciIO returns), shared by the format tests: the tree → sidecar-JSON conversion,
//! a structural comparison with float tolerance, key-order checks and data checks.
//!
//! (Factored from `tests/signal_metadata.rs` and `tests/zspy_data.rs`.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub use lazyspy::signal::json::{self as sjson, Json};
use lazyspy::signal::{Array, ArrayDType, ArrayData, SignalTree, Value};
use lazyspy::{C128, DType, DynArray};
use serde_json::{Value as J, json};

/// `<file>.expected.json` next to `file`.
pub fn sidecar_of(file: &Path) -> PathBuf {
    let name = format!(
        "{}.expected.json",
        file.file_name().unwrap().to_string_lossy()
    );
    file.with_file_name(name)
}

/// The sidecar of fixture `p`, as serde JSON and as the ordered JSON of the library.
pub fn sidecar(p: &Path) -> (J, Json) {
    let text = std::fs::read_to_string(sidecar_of(p)).expect("sidecar");
    (
        serde_json::from_str(&text).expect("sidecar JSON"),
        sjson::parse(&text).expect("sidecar JSON (ordered)"),
    )
}
// ------------------------------------------------------------------------------------
// SHA-256 (the sidecars hash array bytes)
// ------------------------------------------------------------------------------------

/// SHA-256 of `data` as lowercase hex (the sidecars' `sha256`).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ------------------------------------------------------------------------------------
// Tree → the sidecar's JSON conventions
// ------------------------------------------------------------------------------------

pub fn num_f64(x: f64) -> J {
    if x.is_nan() {
        json!({"__float__": "nan"})
    } else if x.is_infinite() {
        json!({"__float__": if x > 0.0 { "inf" } else { "-inf" }})
    } else {
        J::from(x)
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn dtype_descr(d: &ArrayDType) -> J {
    match d {
        ArrayDType::Struct(fields) => J::Array(
            fields
                .iter()
                .map(|f| {
                    let mut v = vec![J::from(f.name.clone()), dtype_descr(&f.dtype)];
                    if !f.shape.is_empty() {
                        v.push(json!(f.shape));
                    }
                    J::Array(v)
                })
                .collect(),
        ),
        ArrayDType::VlenStr => J::from("|O"),
        other => J::from(other.typestr().unwrap()),
    }
}

/// Scalar element as the sidecar writes `values` (struct records as objects).
pub fn elem_json(v: &Value) -> J {
    match v {
        Value::Dict(d) => J::Object(
            d.iter()
                .map(|(k, v)| (k.to_string(), elem_json(v)))
                .collect(),
        ),
        Value::Array(a) => nested_values(a),
        other => to_sidecar(other),
    }
}

pub fn nested_values(a: &Array) -> J {
    fn rec(a: &Array, vals: &[Value], dim: usize, off: usize, stride: &[usize]) -> J {
        if dim == a.shape.len() {
            return elem_json(&vals[off]);
        }
        J::Array(
            (0..a.shape[dim])
                .map(|k| rec(a, vals, dim + 1, off + k * stride[dim], stride))
                .collect(),
        )
    }
    let vals = a.values();
    let mut stride = vec![1usize; a.shape.len()];
    for d in (0..a.shape.len().saturating_sub(1)).rev() {
        stride[d] = stride[d + 1] * a.shape[d + 1];
    }
    rec(a, &vals, 0, 0, &stride)
}

pub fn raw_bytes(a: &Array) -> Option<&[u8]> {
    match &a.data {
        ArrayData::Raw(b) => Some(b),
        _ => None,
    }
}

pub fn array_json(a: &Array) -> J {
    if a.dtype == ArrayDType::Object {
        let ArrayData::Cells(cells) = &a.data else {
            panic!("object array without cells")
        };
        let mut concat = Vec::new();
        let mut out_cells = Vec::new();
        let n = cells.len();
        for (flat, c) in cells.iter().enumerate() {
            let mut index = vec![0usize; a.shape.len()];
            let mut rem = flat;
            for d in (0..a.shape.len()).rev() {
                index[d] = rem % a.shape[d];
                rem /= a.shape[d];
            }
            let mut cell = serde_json::Map::new();
            cell.insert("index".into(), json!(index));
            cell.insert("shape".into(), json!(c.shape));
            cell.insert("dtype".into(), J::from(c.dtype.numpy_name()));
            let is_str = matches!(
                c.dtype,
                ArrayDType::FixedBytes(_) | ArrayDType::FixedUnicode(_) | ArrayDType::VlenStr
            );
            if !is_str {
                // The sidecars give string cells' values only.
                cell.insert("dtype_descr".into(), dtype_descr(&c.dtype));
            }
            if let Some(b) = raw_bytes(c) {
                cell.insert("sha256".into(), J::from(sha256_hex(b)));
                concat.extend_from_slice(b);
            }
            if c.len() <= 256 {
                cell.insert("values".into(), nested_values(c));
            }
            out_cells.push(J::Object(cell));
        }
        assert_eq!(n, a.len());
        return json!({"__ndarray__": {"ragged": {
            "outer_shape": a.shape, "cells": out_cells, "sha256_concat": sha256_hex(&concat)}}});
    }
    let mut m = serde_json::Map::new();
    m.insert("shape".into(), json!(a.shape));
    m.insert("dtype".into(), J::from(a.dtype.numpy_name()));
    m.insert("dtype_descr".into(), dtype_descr(&a.dtype));
    if let Some(b) = raw_bytes(a)
        && !matches!(a.dtype, ArrayDType::FixedBytes(_))
    {
        m.insert("sha256".into(), J::from(sha256_hex(b)));
    }
    let is_str = matches!(
        a.dtype,
        ArrayDType::FixedBytes(_) | ArrayDType::FixedUnicode(_) | ArrayDType::VlenStr
    );
    if a.len() <= 256 || is_str {
        m.insert("values".into(), nested_values(a));
    }
    json!({ "__ndarray__": m })
}

/// Summary of a signal's data as the sidecar gives it.
pub fn data_json(d: &lazyspy::signal::DataDesc, with_values: bool) -> J {
    let mut m = serde_json::Map::new();
    m.insert("shape".into(), json!(d.shape));
    m.insert("dtype".into(), J::from(d.dtype.numpy_name()));
    m.insert("dtype_descr".into(), dtype_descr(&d.dtype));
    if let Some(size) = d.dtype.itemsize() {
        m.insert(
            "nbytes".into(),
            J::from(size * d.shape.iter().product::<usize>()),
        );
    }
    if with_values && let Some(Value::Array(a)) = &d.values {
        if let Some(b) = raw_bytes(a) {
            m.insert("sha256".into(), J::from(sha256_hex(b)));
        }
        let vals = a.values();
        if let (Some(f), Some(l)) = (vals.first(), vals.last()) {
            m.insert("first".into(), elem_json(f));
            m.insert("last".into(), elem_json(l));
        }
        if let Some(f) = a.to_f64_vec() {
            m.insert("sum".into(), J::from(f.iter().sum::<f64>()));
        }
    }
    J::Object(m)
}

pub fn signal_json(s: &SignalTree, nested: bool) -> J {
    let attributes = to_sidecar(&Value::Dict(s.attributes.clone()));
    let mut m = serde_json::Map::new();
    m.insert("package".into(), J::from(s.package.clone()));
    m.insert("package_version".into(), J::from(s.package_version.clone()));
    m.insert("data".into(), data_json(&s.data, nested));
    m.insert(
        "axes".into(),
        J::Array(
            s.axes
                .iter()
                .map(|a| to_sidecar(&Value::Dict(a.to_dict())))
                .collect(),
        ),
    );
    m.insert(
        "metadata".into(),
        to_sidecar(&Value::Dict(s.metadata.clone())),
    );
    m.insert(
        "original_metadata".into(),
        to_sidecar(&Value::Dict(s.original_metadata.clone())),
    );
    m.insert("attributes".into(), attributes);
    if !nested {
        m.insert("models".into(), to_sidecar(&Value::Dict(s.models.clone())));
        m.insert("experiment_group".into(), J::from(s.group_path.clone()));
        m.insert(
            "storage".into(),
            json!({"zarray": to_sidecar(&Value::Dict(s.data.storage.clone()))}),
        );
    }
    J::Object(m)
}

pub fn to_sidecar(v: &Value) -> J {
    match v {
        Value::None => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::UInt(u) => J::from(*u),
        Value::Float(f) => num_f64(*f),
        Value::Complex(r, i) => json!({"__complex__": [r, i]}),
        Value::Str(s) => J::from(s.clone()),
        Value::Bytes(b) => json!({"__bytes_hex__": hex(b)}),
        Value::List(items) => J::Array(items.iter().map(to_sidecar).collect()),
        Value::Tuple(items) => {
            json!({"__tuple__": items.iter().map(to_sidecar).collect::<Vec<_>>()})
        }
        Value::Dict(d) => J::Object(
            d.iter()
                .map(|(k, v)| (k.to_string(), to_sidecar(v)))
                .collect(),
        ),
        Value::Array(a) => array_json(a),
        Value::ArrayRef(r) => json!({"__ndarray__": {
            "shape": r.shape, "dtype": r.dtype.numpy_name(), "dtype_descr": dtype_descr(&r.dtype),
            "__deferred__": r.reason}}),
        Value::Signal(s) => json!({ "__signal__": signal_json(s, true) }),
    }
}

// ------------------------------------------------------------------------------------
// Structural comparison
// ------------------------------------------------------------------------------------

pub struct Cmp {
    /// Differences found.
    pub errors: Vec<String>,
    /// Arrays whose values were not read.
    pub deferred: Vec<String>,
}

impl Cmp {
    pub fn new() -> Self {
        Cmp {
            errors: vec![],
            deferred: vec![],
        }
    }

    pub fn cmp(&mut self, path: &str, mine: &J, exp: &J) {
        match (mine, exp) {
            (J::Object(a), J::Object(b)) => {
                if let Some(J::String(reason)) = a.get("__deferred__") {
                    // Values not read: shape and type must still match.
                    self.deferred.push(format!("{path}: {reason}"));
                    for k in ["shape", "dtype", "dtype_descr"] {
                        match (a.get(k), b.get(k)) {
                            (Some(x), Some(y)) => self.cmp(&format!("{path}/{k}"), x, y),
                            _ => self.errors.push(format!("{path}: missing '{k}'")),
                        }
                    }
                    return;
                }
                for k in b.keys() {
                    if !a.contains_key(k) {
                        self.errors.push(format!("{path}: missing key '{k}'"));
                    }
                }
                for (k, v) in a {
                    match b.get(k) {
                        Some(w) => self.cmp(&format!("{path}/{k}"), v, w),
                        None => self
                            .errors
                            .push(format!("{path}: unexpected key '{k}' = {v}")),
                    }
                }
            }
            // A sub-array field of a structured value: the sidecar keeps only its repr.
            (J::Array(_), J::Object(b))
                if b.get("__type__").and_then(|t| t.as_str()) == Some("ndarray")
                    && b.contains_key("__repr__") => {}
            // ... and describes the field as a void of the sub-array's size.
            (J::Array(a), J::Array(b))
                if a.len() == 3
                    && b.len() == 2
                    && b[1].as_str().is_some_and(|t| t.starts_with("|V")) =>
            {
                let n: usize = b[1].as_str().unwrap()[2..].parse().unwrap_or(0);
                let item: usize = a[1].as_str().and_then(|t| t[2..].parse().ok()).unwrap_or(0);
                let count: usize = a[2]
                    .as_array()
                    .map(|d| d.iter().map(|x| x.as_u64().unwrap_or(0) as usize).product())
                    .unwrap_or(0);
                if a[0] != b[0] || item * count != n {
                    self.errors
                        .push(format!("{path}: sub-array field {a:?} != expected {b:?}"));
                }
            }
            (J::Array(a), J::Array(b)) => {
                if a.len() != b.len() {
                    self.errors
                        .push(format!("{path}: {} items, expected {}", a.len(), b.len()));
                    return;
                }
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    self.cmp(&format!("{path}/{i}"), x, y);
                }
            }
            (J::Number(x), J::Number(y)) => {
                let ok = if x.is_f64() || y.is_f64() {
                    // Python int vs float must agree, values within float tolerance.
                    let (xf, yf) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                    x.is_f64() == y.is_f64()
                        && (xf == yf || (xf - yf).abs() <= 1e-9 * xf.abs().max(yf.abs()))
                } else {
                    x == y
                };
                if !ok {
                    self.errors.push(format!("{path}: {x} != expected {y}"));
                }
            }
            (a, b) => {
                if a != b {
                    self.errors.push(format!("{path}: {a} != expected {b}"));
                }
            }
        }
    }
}

/// Dict key order must be the reader's (attributes sorted, then children sorted, ...).
pub fn check_order(path: &str, mine: &Value, exp: &Json, errors: &mut Vec<String>) {
    match (mine, exp) {
        (Value::Dict(d), Json::Object(m)) => {
            let a: Vec<&str> = d.keys().collect();
            let b: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
            if a != b {
                errors.push(format!("{path}: key order {a:?} != expected {b:?}"));
            }
            for (k, v) in d.iter() {
                if let Some(e) = exp.get(k) {
                    check_order(&format!("{path}/{k}"), v, e, errors);
                }
            }
        }
        (Value::List(items), Json::Array(e)) => {
            for (i, (x, y)) in items.iter().zip(e).enumerate() {
                check_order(&format!("{path}/{i}"), x, y, errors);
            }
        }
        (Value::Tuple(items), Json::Object(_)) => {
            if let Some(Json::Array(e)) = exp.get("__tuple__") {
                for (i, (x, y)) in items.iter().zip(e).enumerate() {
                    check_order(&format!("{path}/{i}"), x, y, errors);
                }
            }
        }
        (Value::Signal(s), Json::Object(_)) => {
            if let Some(inner) = exp.get("__signal__") {
                signal_order(path, s, inner, errors);
            }
        }
        _ => {}
    }
}

pub fn signal_order(path: &str, s: &SignalTree, exp: &Json, errors: &mut Vec<String>) {
    for (name, d) in [
        ("metadata", &s.metadata),
        ("original_metadata", &s.original_metadata),
        ("attributes", &s.attributes),
        ("models", &s.models),
    ] {
        if let Some(e) = exp.get(name) {
            check_order(
                &format!("{path}/{name}"),
                &Value::Dict(d.clone()),
                e,
                errors,
            );
        }
    }
    if let Some(Json::Array(axes)) = exp.get("axes") {
        for (i, (a, e)) in s.axes.iter().zip(axes).enumerate() {
            check_order(
                &format!("{path}/axes/{i}"),
                &Value::Dict(a.to_dict()),
                e,
                errors,
            );
        }
    }
}

// ------------------------------------------------------------------------------------
// Data
// ------------------------------------------------------------------------------------

fn dtype_of(name: &str) -> Option<DType> {
    DType::ALL.into_iter().find(|d| d.name() == name)
}

/// Whether the sidecar's data is numeric (what the engine holds lazily).
pub fn numeric(data: &J) -> bool {
    data["dtype"].as_str().and_then(dtype_of).is_some()
}

/// The array's bytes in the byte order of the sidecar's `dtype_descr`, C order.
pub fn bytes_in_order(a: &DynArray, descr: &str) -> Vec<u8> {
    let mut b = a.to_bytes();
    let big = descr.starts_with('>');
    let word = match a.dtype() {
        DType::C64 => 4,
        DType::C128 => 8,
        d => d.size(),
    };
    if word > 1 && big != cfg!(target_endian = "big") {
        for w in b.chunks_mut(word) {
            w.reverse();
        }
    }
    b
}

fn scalar(v: &J) -> C128 {
    match v {
        J::Bool(b) => C128::new(f64::from(u8::from(*b)), 0.0),
        J::Number(n) => C128::new(n.as_f64().unwrap(), 0.0),
        J::Array(a) if a.len() == 2 => C128::new(a[0].as_f64().unwrap(), a[1].as_f64().unwrap()),
        J::Object(m) if m.contains_key("__complex__") => scalar(&m["__complex__"]),
        J::Object(m) if m.contains_key("__float__") => {
            let f = match m["__float__"].as_str().unwrap() {
                "nan" => f64::NAN,
                "inf" => f64::INFINITY,
                _ => f64::NEG_INFINITY,
            };
            C128::new(f, 0.0)
        }
        _ => panic!("unexpected sidecar value {v}"),
    }
}

fn close(a: C128, b: C128, scale: f64) -> bool {
    let tol = 1e-9 * scale.max(1.0);
    let eq = |x: f64, y: f64| x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= tol;
    eq(a.re, b.re) && eq(a.im, b.im)
}

/// Checks computed numeric data against the sidecar's `data` entry (shape, dtype, SHA-256
/// in the stored byte order, first, last, sum); returns the problems.
pub fn check_data(name: &str, got: &DynArray, exp: &J) -> Vec<String> {
    let mut errs = Vec::new();
    let shape: Vec<usize> = exp["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    if got.shape() != shape.as_slice() {
        errs.push(format!("{name}: shape {:?} != {shape:?}", got.shape()));
        return errs;
    }
    let dtype = exp["dtype"].as_str().unwrap();
    if got.dtype().name() != dtype {
        errs.push(format!("{name}: dtype {} != {dtype}", got.dtype().name()));
        return errs;
    }
    let descr = exp["dtype_descr"].as_str().unwrap_or("<");
    let sha = sha256_hex(&bytes_in_order(got, descr));
    if sha != exp["sha256"].as_str().unwrap() {
        errs.push(format!("{name}: sha256 {sha} != {}", exp["sha256"]));
    }
    let vals = got.cast_to::<C128>();
    let vals: Vec<C128> = vals.iter().copied().collect();
    if let (Some(first), Some(last)) = (vals.first(), vals.last()) {
        for (what, mine) in [("first", *first), ("last", *last)] {
            let e = scalar(&exp[what]);
            if !close(mine, e, e.norm()) {
                errs.push(format!("{name}: {what} {mine} != {e}"));
            }
        }
    }
    let sum: C128 = vals.iter().sum();
    let scale: f64 = vals
        .iter()
        .map(|v| v.norm())
        .filter(|v| v.is_finite())
        .sum();
    let e = scalar(&exp["sum"]);
    if !close(sum, e, scale * 1e3) {
        errs.push(format!("{name}: sum {sum} != {e}"));
    }
    errs
}

/// Checks in-memory data (ragged cells, structured records) against the sidecar's `data`.
pub fn check_in_memory(name: &str, a: &Array, exp: &J) -> Vec<String> {
    let mut errs = Vec::new();
    let mine = array_json(a);
    let m = &mine["__ndarray__"];
    if let Some(r) = exp.get("ragged") {
        let mut c = Cmp::new();
        c.cmp(&format!("{name}/ragged"), &m["ragged"], r);
        errs.extend(c.errors);
        return errs;
    }
    for k in ["shape", "dtype", "dtype_descr"] {
        let mut c = Cmp::new();
        c.cmp(&format!("{name}/{k}"), &m[k], &exp[k]);
        errs.extend(c.errors);
    }
    if let (ArrayData::Raw(b), Some(sha)) = (&a.data, exp["sha256"].as_str())
        && sha256_hex(b) != sha
    {
        errs.push(format!("{name}: sha256 {} != {sha}", sha256_hex(b)));
    }
    let _ = ArrayDType::Bool;
    errs
}

/// The HyperSpy fixtures copied into the repository.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hyperspy")
}

/// The `.zspy` fixtures (directories and zip), sorted.
pub fn zspy_fixtures() -> Vec<PathBuf> {
    files_with_ext(&fixtures_dir(), &["zspy"])
}

/// The entries of `dir` whose extension is one of `exts`, sorted.
pub fn files_with_ext(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| exts.iter().any(|x| e == *x)))
        .collect();
    v.sort();
    v
}

/// The `.zspy` stores (directories and zip files) of the legacy fixture folder `name`
/// (see [`legacy_dir`]: `None` outside CI when it is missing, a failure under `CI=true`).
pub fn legacy_zspy(name: &str) -> Option<Vec<PathBuf>> {
    legacy_dir(name).map(|d| files_with_ext(&d, &["zspy"]))
}

/// Where the shared fixtures live: `$LAZYSPY_SHARED_FIXTURES`, else `../shared/fixtures`
/// next to the repository (as in CI).
pub fn shared_fixtures() -> PathBuf {
    match std::env::var_os("LAZYSPY_SHARED_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"),
    }
}

/// The legacy fixture folder `name` of [`shared_fixtures`]; `None` (with a note) when it is
/// absent, a failure when `CI=true` (the legacy sets must be checked in CI).
pub fn legacy_dir(name: &str) -> Option<PathBuf> {
    let d = shared_fixtures().join(name);
    if d.is_dir() {
        return Some(d);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("legacy fixtures {} missing (CI=true)", d.display());
    }
    eprintln!("note: legacy fixtures {} not found; skipped", d.display());
    None
}

/// Compares the tree of a whole file (root attributes, format version, every signal's
/// description, standalone models) with its sidecar `exp` / `exp_ordered` (key order
/// included). `mine_of` gives a signal's sidecar JSON; the top-level data values are not
/// compared here (only their description). Returns (errors, deferred arrays).
pub fn compare_file_tree(
    file: &lazyspy::signal::HierarchicalFile,
    exp: &J,
    exp_ordered: &Json,
    mine_of: impl Fn(&SignalTree) -> J,
) -> (Vec<String>, Vec<String>) {
    let mut c = Cmp::new();
    c.cmp(
        "root_attributes",
        &to_sidecar(&Value::Dict(file.root_attributes.clone())),
        &exp["root_attributes"],
    );
    c.cmp(
        "format_version_as_read",
        &J::from(file.version.to_string()),
        &exp["format_version_as_read"],
    );
    let exp_signals = exp["signals"].as_array().expect("signals");
    if exp_signals.len() != file.signals.len() {
        c.errors.push(format!(
            "{} signals, expected {}",
            file.signals.len(),
            exp_signals.len()
        ));
    }
    let mut order_errors = Vec::new();
    for (i, (s, e)) in file.signals.iter().zip(exp_signals).enumerate() {
        let mut e = e.clone();
        let ed = e["data"].as_object_mut().unwrap();
        for k in ["sha256", "first", "last", "sum", "ragged"] {
            ed.remove(k);
        }
        c.cmp(&format!("signals/{i}"), &mine_of(s), &e);
        if let Some(Json::Array(sigs)) = exp_ordered.get("signals") {
            signal_order(&format!("signals/{i}"), s, &sigs[i], &mut order_errors);
        }
    }
    c.cmp(
        "standalone_models",
        &J::Array(
            file.standalone_models
                .iter()
                .map(|d| to_sidecar(&Value::Dict(d.clone())))
                .collect(),
        ),
        &exp["standalone_models"],
    );
    c.errors.extend(order_errors);
    (c.errors, c.deferred)
}
