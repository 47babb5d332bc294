//! Metadata trees as JSON (for `--json` output) and as indented text.

use lazyspy::signal::{Array, Axis, Dict, SignalTree, Value};
use serde_json::{Map, Value as J, json};

/// A float as JSON: non-finite values become the strings `"NaN"`, `"Infinity"`,
/// `"-Infinity"` (JSON has no such numbers).
fn float(x: f64) -> J {
    if x.is_finite() {
        json!(x)
    } else if x.is_nan() {
        json!("NaN")
    } else if x > 0.0 {
        json!("Infinity")
    } else {
        json!("-Infinity")
    }
}

/// A metadata value as JSON. Arrays become nested lists; tuples become lists; complex
/// numbers `{"real", "imag"}`; bytes a list of integers; a signal inside metadata
/// `{"signal": {...}}`; an array whose values were not read `{"array_ref": ...}`.
pub fn value(v: &Value) -> J {
    match v {
        Value::None => J::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        Value::Float(f) => float(*f),
        Value::Complex(re, im) => json!({"real": float(*re), "imag": float(*im)}),
        Value::Str(s) => json!(s),
        Value::Bytes(b) => json!(b),
        Value::List(items) | Value::Tuple(items) => J::Array(items.iter().map(value).collect()),
        Value::Array(a) => array(a),
        Value::ArrayRef(r) => json!({
            "array_ref": r.path,
            "dtype": r.dtype.to_string(),
            "shape": r.shape,
            "reason": r.reason,
        }),
        Value::Dict(d) => dict(d),
        Value::Signal(s) => json!({"signal": signal_tree(s, true)}),
    }
}

fn array(a: &Array) -> J {
    value(&a.to_list())
}

/// A dict as a JSON object (insertion order kept).
pub fn dict(d: &Dict) -> J {
    let mut m = Map::new();
    for (k, v) in d.iter() {
        m.insert(k.to_string(), value(v));
    }
    J::Object(m)
}

/// An axis as JSON (its stored dict).
pub fn axis(a: &Axis) -> J {
    dict(a.dict())
}

/// A signal's description as JSON; `with_metadata` adds metadata and original_metadata.
pub fn signal_tree(s: &SignalTree, with_metadata: bool) -> J {
    let mut m = Map::new();
    m.insert("experiment".into(), json!(s.experiment_name()));
    m.insert("title".into(), json!(s.title().unwrap_or("")));
    m.insert("signal_type".into(), json!(s.signal_type().unwrap_or("")));
    m.insert("shape".into(), json!(s.data.shape));
    m.insert("dtype".into(), json!(s.data.dtype.numpy_name()));
    m.insert("chunks".into(), json!(s.data.chunks));
    m.insert(
        "compressor".into(),
        s.data
            .storage
            .get("compressor")
            .map(value)
            .unwrap_or(J::Null),
    );
    m.insert("ragged".into(), json!(s.is_ragged()));
    m.insert("axes".into(), J::Array(s.axes.iter().map(axis).collect()));
    if with_metadata {
        m.insert("metadata".into(), dict(&s.metadata));
        m.insert("original_metadata".into(), dict(&s.original_metadata));
        m.insert("attributes".into(), dict(&s.attributes));
        if !s.models.is_empty() {
            m.insert("models".into(), dict(&s.models));
        }
    }
    J::Object(m)
}

/// A short one-line rendering of a value for the text tree.
fn short(v: &Value) -> String {
    match v {
        Value::Array(a) => {
            let n = a.len();
            if n <= 6 {
                value(v).to_string()
            } else {
                format!("array {} {:?}", a.dtype, a.shape)
            }
        }
        Value::ArrayRef(r) => format!("array {} {:?} (not read: {})", r.dtype, r.shape, r.reason),
        Value::Signal(s) => format!("signal {} {:?}", s.data.dtype, s.data.shape),
        Value::Str(s) => format!("{s:?}"),
        other => {
            let t = value(other).to_string();
            if t.len() > 100 {
                format!("{}…", &t[..t.floor_char_boundary(100)])
            } else {
                t
            }
        }
    }
}

/// The tree as indented text, one key per line.
pub fn tree_text(d: &Dict, indent: usize, out: &mut String) {
    for (k, v) in d.iter() {
        match v {
            Value::Dict(sub) => {
                out.push_str(&format!("{:indent$}{k}/\n", ""));
                tree_text(sub, indent + 2, out);
            }
            _ => out.push_str(&format!("{:indent$}{k} = {}\n", "", short(v))),
        }
    }
}
