//! The HyperSpy metadata layer against the fixtures written by HyperSpy 2.5 /
//! RosettaSciIO 0.15 (`tests/data/hyperspy`) and the legacy stores of
//! `../shared/fixtures/{rsciio-legacy,hyperspy-legacy}` (required when `CI=true`): every
//! `.zspy` store, directory or zip, is read and compared with its `.expected.json` sidecar
//! (what the reference reader returns), and trees are written back (in memory and to a
//! Zarr directory) and read again.

#[path = "support/quirks.rs"]
mod quirks;
mod support;

use support::sidecar::*;

use std::path::{Path, PathBuf};

use lazyspy::signal::hierarchy::{read_hierarchical, write_signal_metadata};
use lazyspy::signal::{
    Array, ArrayDType, ArrayData, DatasetValue, Dict, GroupWrite, MemFlavor, MemGroup, SignalError,
    SignalTree, Value, ZarrDirWriter, dict2group, group2dict, read_zspy_file,
};
use serde_json::json;

// ------------------------------------------------------------------------------------
// Fixture checks
// ------------------------------------------------------------------------------------

/// Compares one fixture with its sidecar; returns (errors, deferred arrays).
fn check_fixture(p: &Path) -> (Vec<String>, Vec<String>) {
    let (exp, exp_ordered) = sidecar(p);
    let file = read_zspy_file(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let out = compare_file_tree(&file, &exp, &exp_ordered, |s| signal_json(s, false));
    // Typed views agree with the dicts.
    for s in &file.signals {
        assert_eq!(s.axes.len(), s.data.shape.len(), "{}", p.display());
        for (k, ax) in s.axes.iter().enumerate() {
            assert_eq!(ax.size(), Some(s.data.shape[k]), "{} axis {k}", p.display());
        }
    }
    out
}

fn check_all(fixtures: &[PathBuf]) -> (usize, Vec<String>, Vec<String>) {
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut all_deferred = Vec::new();
    for p in fixtures {
        let (errors, deferred) = check_fixture(p);
        checked += 1;
        for d in deferred {
            all_deferred.push(format!("{}: {d}", p.file_name().unwrap().to_string_lossy()));
        }
        if !errors.is_empty() {
            failures.push(format!(
                "{}:\n  {}",
                p.display(),
                errors
                    .iter()
                    .take(40)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    (checked, failures, all_deferred)
}

#[test]
fn every_zspy_fixture_matches_its_sidecar() {
    let fixtures = zspy_fixtures();
    let (checked, failures, deferred) = check_all(&fixtures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // 22 directory stores and the zip store.
    assert_eq!(checked, 23, "fixtures checked");
    assert!(
        fixtures.iter().any(|p| p.is_file()),
        "the zip store is checked"
    );
    // Every metadata array is read, whatever its compressor.
    assert!(deferred.is_empty(), "{deferred:#?}");
}

#[test]
fn legacy_zspy_fixtures_match_their_sidecars() {
    let mut total = 0;
    for folder in ["rsciio-legacy", "hyperspy-legacy"] {
        let Some(fixtures) = legacy_zspy(folder) else {
            continue;
        };
        let (checked, failures, deferred) = check_all(&fixtures);
        assert!(failures.is_empty(), "{folder}: {}", failures.join("\n"));
        assert!(deferred.is_empty(), "{folder}: {deferred:#?}");
        total += checked;
    }
    eprintln!("legacy .zspy stores checked: {total}");
    if legacy_zspy("rsciio-legacy").is_some() {
        // RosettaSciIO's three stores: a DirectoryStore and two zip stores.
        assert!(total >= 3, "only {total} legacy stores");
    }
}

#[test]
fn comparison_catches_a_wrong_value() {
    // The checker must be able to fail: alter a value and a key order.
    let p = fixtures_dir().join("metadata_zoo.zspy");
    let (exp, _) = sidecar(&p);
    let file = read_zspy_file(&p).unwrap();
    let mut s = file.signals[0].clone();
    s.metadata.set_path("Zoo/int", Value::Int(43));
    let mut c = Cmp::new();
    let mut e = exp["signals"][0].clone();
    for k in ["sha256", "first", "last", "sum"] {
        e["data"].as_object_mut().unwrap().remove(k);
    }
    c.cmp("s", &signal_json(&s, false), &e);
    assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
    assert!(c.errors[0].contains("Zoo/int"));
    let mut c = Cmp::new();
    c.cmp("x", &json!(1.0), &json!(1));
    assert_eq!(c.errors.len(), 1, "int vs float must differ");
}

#[test]
fn zip_stores_read_their_last_duplicate_entries() {
    let mut zips: Vec<PathBuf> = zspy_fixtures()
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    zips.extend(
        legacy_zspy("rsciio-legacy")
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.is_file()),
    );
    assert!(!zips.is_empty());
    for p in zips {
        let (exp, _) = sidecar(&p);
        let store = lazyspy::signal::ZarrStore::open(&p).unwrap();
        assert!(store.is_zip(), "{}", p.display());
        let zip = store.zip().unwrap();
        assert_eq!(
            zip.entries().len() as u64,
            exp["zip_entries"].as_u64().unwrap(),
            "{}",
            p.display()
        );
        assert_eq!(
            zip.duplicate_count() as u64,
            exp["zip_duplicate_entry_names"].as_u64().unwrap(),
            "{}",
            p.display()
        );
        // The duplicated documents really differ, and the last one is what is read.
        let dup = zip
            .entries()
            .iter()
            .enumerate()
            .find(|(i, e)| {
                zip.entries()[..*i].iter().any(|f| f.name == e.name)
                    && zip.read_entry(e).unwrap()
                        != zip
                            .read_entry(zip.entries().iter().find(|f| f.name == e.name).unwrap())
                            .unwrap()
            })
            .map(|(_, e)| e.name.clone());
        if let Some(name) = dup {
            let last = zip.entries().iter().rev().find(|e| e.name == name).unwrap();
            assert_eq!(
                store.get(&name).unwrap().unwrap(),
                zip.read_entry(last).unwrap()
            );
        }
        read_zspy_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

#[test]
fn errors_name_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    // No .zgroup.
    let e = read_zspy_file(dir.path()).unwrap_err();
    assert!(matches!(e, SignalError::Missing { .. }), "{e}");
    assert!(e.to_string().contains(".zgroup"), "{e}");
    // Bad JSON in an attribute document.
    let store = dir.path().join("bad.zspy");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(store.join(".zgroup"), "{\"zarr_format\": 2}").unwrap();
    std::fs::write(store.join(".zattrs"), "{\"file_format_version\": \"3.3\",}").unwrap();
    let e = read_zspy_file(&store).unwrap_err();
    assert!(matches!(e, SignalError::Json { .. }), "{e}");
    assert!(e.to_string().contains("/.zattrs"), "{e}");
    // Unknown version.
    std::fs::write(
        store.join(".zattrs"),
        "{\"file_format_version\": \"three\"}",
    )
    .unwrap();
    let e = read_zspy_file(&store).unwrap_err();
    assert!(matches!(e, SignalError::Version { .. }), "{e}");
    // Nothing HyperSpy in it.
    std::fs::write(store.join(".zattrs"), "{}").unwrap();
    let e = read_zspy_file(&store).unwrap_err();
    assert!(e.to_string().contains("not a valid HyperSpy file"), "{e}");
    // Missing path.
    let e = read_zspy_file(dir.path().join("nope.zspy")).unwrap_err();
    assert!(matches!(e, SignalError::Io { .. }), "{e}");
}

#[test]
fn typed_views_of_fixtures() {
    let f = read_zspy_file(fixtures_dir().join("functional_axis.zspy")).unwrap();
    let s = &f.signals[0];
    assert_eq!(s.axes[1].class_name(), "FunctionalDataAxis");
    match s.axes[1].kind() {
        lazyspy::signal::AxisKind::Functional {
            expression,
            parameters,
            x,
        } => {
            assert_eq!(expression, "a / (x + 1) + b");
            assert_eq!(parameters, vec![("a", 10.0), ("b", 0.5)]);
            assert_eq!(x.unwrap().size(), Some(16));
        }
        other => panic!("{other:?}"),
    }
    assert!(s.axes[0].is_binned());
    assert_eq!(s.signal_dimension(), 1);
    let f = read_zspy_file(fixtures_dir().join("nonuniform_signal_axis.zspy")).unwrap();
    let v = f.signals[0].axes[1].values().unwrap();
    assert_eq!(v.len(), 25);
    assert_eq!(v[0], 0.1);
    let f = read_zspy_file(fixtures_dir().join("unicode.zspy")).unwrap();
    assert_eq!(f.signals[0].experiment_name(), "Spéctre - µ-ß 測定");
    assert_eq!(f.signals[0].axes[0].units(), Some("µm"));
    let f = read_zspy_file(fixtures_dir().join("stem4d_u16.zspy")).unwrap();
    let s = &f.signals[0];
    assert_eq!(s.signal_dimension(), 2);
    assert_eq!(s.data.dtype.to_engine_dtype(), Some(lazyspy::DType::U16));
    assert_eq!(
        s.data.storage.get_path("compressor/cname"),
        Some(&Value::from("zstd"))
    );
    let f = read_zspy_file(fixtures_dir().join("ragged.zspy")).unwrap();
    assert!(f.signals[0].is_ragged() && f.signals[0].data.ragged_shapes);
    let f = read_zspy_file(fixtures_dir().join("metadata_zoo.zspy")).unwrap();
    let s = &f.signals[0];
    assert_eq!(s.title(), Some("Metadata zoo"));
    let var = s
        .metadata
        .get_path("Signal/Noise_properties/_sig_variance")
        .and_then(|v| v.as_signal())
        .unwrap();
    assert_eq!(var.title(), Some("variance"));
    assert_eq!(
        s.metadata
            .get_path("Signal/Noise_properties/_sig_variance/metadata/General/title"),
        Some(&Value::from("variance"))
    );
    assert_eq!(
        s.metadata.get_path("Zoo/list_of_dicts/1/b"),
        Some(&Value::from("x"))
    );
}

// ------------------------------------------------------------------------------------
// Round trips
// ------------------------------------------------------------------------------------

/// Clears what depends on the backend (storage description, chunking) in nested signals.
fn normalize(v: &mut Value) {
    match v {
        Value::Dict(d) => normalize_dict(d),
        Value::List(items) | Value::Tuple(items) => items.iter_mut().for_each(normalize),
        Value::Signal(s) => normalize_signal(s),
        _ => {}
    }
}

fn normalize_dict(d: &mut Dict) {
    for (_, v) in d.iter_mut() {
        normalize(v);
    }
}

fn normalize_signal(s: &mut SignalTree) {
    s.data.storage = Dict::new();
    s.data.chunks = vec![];
    normalize_dict(&mut s.metadata);
    normalize_dict(&mut s.original_metadata);
    normalize_dict(&mut s.attributes);
    normalize_dict(&mut s.models);
}

/// Replaces unread arrays by zeros of the same type (for backends that need values).
fn fill_refs(v: &mut Value) {
    match v {
        Value::ArrayRef(r) => {
            let size = r.dtype.itemsize().unwrap();
            let a = Array {
                dtype: r.dtype.clone(),
                shape: r.shape.clone(),
                data: ArrayData::Raw(vec![0; size * r.shape.iter().product::<usize>()]),
            };
            *v = Value::Array(a);
        }
        Value::Dict(d) => d.iter_mut().for_each(|(_, v)| fill_refs(v)),
        Value::List(items) | Value::Tuple(items) => items.iter_mut().for_each(fill_refs),
        Value::Signal(s) => {
            for d in [&mut s.metadata, &mut s.original_metadata, &mut s.attributes] {
                d.iter_mut().for_each(|(_, v)| fill_refs(v));
            }
            if let Some(v) = s.data.values.as_mut() {
                fill_refs(v);
            }
        }
        _ => {}
    }
}

fn write_signal<W: GroupWrite>(root: &mut W, s: &SignalTree, data: DatasetValue) {
    let (mut g, report) = write_signal_metadata(root, s, "ZSpy").unwrap();
    assert!(report.dropped.is_empty(), "{:?}", report.dropped);
    g.write_dataset("data", &data, Some(&s.data.chunks))
        .unwrap();
}

/// Writing a list read from a `_list_<n>_` group of 11+ items and reading it again
/// reorders it once more (quirk Q1): the expected tree after a round trip.
fn assert_same_signal(a: &SignalTree, b: &SignalTree) {
    let mut a = a.clone();
    for d in [
        &mut a.metadata,
        &mut a.original_metadata,
        &mut a.attributes,
        &mut a.models,
    ] {
        d.iter_mut().for_each(|(_, v)| quirks::q1_again(v));
    }
    assert_same_signal_exact(&a, b);
}

fn assert_same_signal_exact(a: &SignalTree, b: &SignalTree) {
    let (mut a, mut b) = (a.clone(), b.clone());
    normalize_signal(&mut a);
    normalize_signal(&mut b);
    assert_eq!(a.metadata, b.metadata);
    assert_eq!(a.original_metadata, b.original_metadata);
    assert_eq!(a.attributes, b.attributes);
    assert_eq!(a.axes, b.axes);
    assert_eq!(a.models, b.models);
    assert_eq!(
        (a.package, a.package_version, a.group_path),
        (b.package, b.package_version, b.group_path)
    );
    assert_eq!((a.data.dtype, a.data.shape), (b.data.dtype, b.data.shape));
}

fn dummy_data(s: &SignalTree) -> DatasetValue {
    DatasetValue::Loaded(Array {
        dtype: s.data.dtype.clone(),
        shape: s.data.shape.clone(),
        data: ArrayData::Raw(vec![
            0;
            s.data.dtype.itemsize().unwrap()
                * s.data.shape.iter().product::<usize>()
        ]),
    })
}

#[test]
fn every_fixture_round_trips_through_memory() {
    for p in zspy_fixtures() {
        let file = read_zspy_file(&p).unwrap();
        for s in &file.signals {
            if s.data.dtype == ArrayDType::Object {
                continue; // ragged top-level data has no dummy
            }
            let mut root = MemGroup::new(MemFlavor::Zarr);
            write_signal(&mut root, s, dummy_data(s));
            let back = read_hierarchical(&root).unwrap();
            assert_eq!(back.signals.len(), 1, "{}", p.display());
            assert_same_signal(s, &back.signals[0]);
        }
    }
}

#[test]
fn metadata_zoo_round_trips_through_a_zarr_directory_with_identical_documents() {
    let p = fixtures_dir().join("metadata_zoo.zspy");
    let file = read_zspy_file(&p).unwrap();
    let mut s = file.signals[0].clone();
    for d in [&mut s.metadata, &mut s.original_metadata] {
        d.iter_mut().for_each(|(_, v)| fill_refs(v));
    }
    // Write the list HyperSpy had in memory (before Q1 reordered it on reading).
    let original_12: Vec<Value> = std::iter::once(Value::None)
        .chain((1..12).map(Value::Int))
        .collect();
    let mut written = s.clone();
    written
        .metadata
        .set_path("Zoo/list_12_mixed", Value::List(original_12));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("zoo.zspy");
    let mut root = ZarrDirWriter::create(&out).unwrap();
    write_signal(&mut root, &written, dummy_data(&s));
    let back = read_zspy_file(&out).unwrap();
    assert_same_signal_exact(&s, &back.signals[0]);
    // The JSON documents are the ones zarr-python wrote, byte for byte.
    let exp = "Experiments/Metadata zoo";
    for doc in [
        ".zattrs",
        "Experiments/Metadata zoo/.zattrs",
        "Experiments/Metadata zoo/axis-0/.zattrs",
        "Experiments/Metadata zoo/axis-1/.zattrs",
        "Experiments/Metadata zoo/attributes/.zattrs",
        "Experiments/Metadata zoo/metadata/Zoo/.zattrs",
        "Experiments/Metadata zoo/metadata/General/.zattrs",
        "Experiments/Metadata zoo/metadata/Zoo/_list_12_list_12_mixed/.zattrs",
        "Experiments/Metadata zoo/metadata/Zoo/_list_3_list_with_none/.zattrs",
        "Experiments/Metadata zoo/metadata/Zoo/_list_2_list_of_empty_lists/.zattrs",
        "Experiments/Metadata zoo/original_metadata/Header/.zattrs",
        "Experiments/Metadata zoo/metadata/Zoo/_list_list_int/.zarray",
        "Experiments/Metadata zoo/metadata/Zoo/_list_list_str/.zarray",
        "Experiments/Metadata zoo/metadata/Zoo/_list_list_mixed_num_str/.zarray",
        "Experiments/Metadata zoo/metadata/Zoo/_tuple_tuple_mixed/.zarray",
        "Experiments/Metadata zoo/metadata/Zoo/array_int16_2d/.zarray",
        "Experiments/Metadata zoo/metadata/Zoo/array_ascii_str/.zarray",
        "Experiments/Metadata zoo/metadata/Zoo/array_large_float32/.zarray",
        "Experiments/Metadata zoo/metadata/Zoo/array_empty/.zarray",
        "Experiments/Metadata zoo/metadata/Signal/Noise_properties/_sig_variance/data/.zarray",
        "Experiments/Metadata zoo/metadata/Signal/Noise_properties/_sig_variance/_list_1_axes/0/.zattrs",
    ] {
        let a = std::fs::read_to_string(p.join(doc)).unwrap();
        let b = std::fs::read_to_string(out.join(doc))
            .unwrap_or_else(|e| panic!("{doc} not written: {e}"));
        assert_eq!(b, a, "{doc}");
    }
    // Same set of groups and arrays as HyperSpy's own save.
    let list = |root: &Path| {
        let mut v = Vec::new();
        let mut stack = vec![root.join(exp)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.join(".zgroup").exists() || p.join(".zarray").exists() {
                    v.push(p.strip_prefix(root).unwrap().to_path_buf());
                    if p.join(".zgroup").exists() {
                        stack.push(p);
                    }
                }
            }
        }
        v.sort();
        v
    };
    assert_eq!(list(&out), list(&p));
}

#[test]
fn quirks_of_the_write_rules() {
    let mut root = MemGroup::new(MemFlavor::Zarr);
    let items12: Vec<Value> = std::iter::once(Value::None)
        .chain((1..12).map(Value::Int))
        .collect();
    let d = Dict::new()
        .with(
            "mixed",
            Value::List(vec![1.into(), 2.5.into(), "three".into()]),
        )
        .with("int_float", Value::List(vec![1.into(), 2.5.into()]))
        .with("bool_int", Value::List(vec![true.into(), 2.into()]))
        .with("tuple_mixed", Value::Tuple(vec![1.into(), "a".into()]))
        .with("list12", Value::List(items12))
        .with(
            "big",
            Value::List(vec![Value::UInt(1 << 63), Value::UInt(u64::MAX)]),
        )
        .with(
            "big_small",
            Value::List(vec![Value::UInt(1 << 63), 1.into()]),
        )
        .with(
            "floats_str",
            Value::List(vec![1e-7.into(), f64::NAN.into(), "x".into()]),
        )
        .with(
            "bytes",
            Value::List(vec![Value::Bytes(b"ab".to_vec()), 3.into()]),
        )
        .with(
            "nested",
            Value::Tuple(vec![Value::Tuple(vec![1.into(), 2.into()])]),
        )
        .with("complex", Value::Complex(1.0, 2.0))
        .with("nul", Value::Bytes(b"a\0b".to_vec()))
        .with("empty", Value::List(vec![]));
    // zspy: NUL bytes make the write fail (reference: the whole save fails).
    let err = dict2group(&d, &mut root).unwrap_err();
    assert!(err.to_string().contains("_bs_nul"), "{err}");
    let mut d2 = d.clone();
    d2.remove("nul");
    let mut root = MemGroup::new(MemFlavor::Zarr);
    let report = dict2group(&d2, &mut root).unwrap();
    assert_eq!(
        report.dropped.len(),
        1,
        "complex attribute dropped: {report:?}"
    );
    assert!(root.dataset("_list_mixed").is_some());
    assert!(root.dataset("_list_big").is_some());
    assert_eq!(root.attr("_list_empty_empty"), Some(Value::from("_None_")));
    let back = group2dict(&root, &Default::default()).unwrap();
    let s = |x: &str| Value::from(x);
    assert_eq!(
        back.get("mixed"),
        Some(&Value::List(vec![s("1"), s("2.5"), s("three")]))
    );
    assert_eq!(
        back.get("int_float"),
        Some(&Value::List(vec![1.0.into(), 2.5.into()]))
    );
    assert_eq!(
        back.get("bool_int"),
        Some(&Value::List(vec![1.into(), 2.into()]))
    );
    assert_eq!(
        back.get("tuple_mixed"),
        Some(&Value::Tuple(vec![s("1"), s("a")]))
    );
    assert_eq!(
        back.get("floats_str"),
        Some(&Value::List(vec![s("1e-07"), s("nan"), s("x")]))
    );
    assert_eq!(
        back.get("big"),
        Some(&Value::List(vec![
            Value::UInt(1 << 63),
            Value::UInt(u64::MAX)
        ]))
    );
    assert_eq!(
        back.get("big_small"),
        Some(&Value::List(vec![
            (9223372036854775808.0).into(),
            1.0.into()
        ]))
    );
    // zarr S lists read back as bytes.
    assert_eq!(
        back.get("bytes"),
        Some(&Value::List(vec![
            Value::Bytes(b"ab".to_vec()),
            Value::Bytes(b"3".to_vec())
        ]))
    );
    let order: Vec<Value> = [None, Some(1), Some(10), Some(11)]
        .into_iter()
        .chain((2..10).map(Some))
        .map(|x| x.map_or(Value::None, Value::Int))
        .collect();
    assert_eq!(back.get("list12"), Some(&Value::List(order)), "Q1 order");
    assert_eq!(
        back.get("nested"),
        Some(&Value::Tuple(vec![Value::Tuple(vec![1.into(), 2.into()])]))
    );
    assert!(back.get("complex").is_none());
    assert_eq!(back.get("empty"), Some(&Value::List(vec![])));
    // hspy flavour keeps complex and NUL bytes; fixed strings in lists read as str.
    let mut root = MemGroup::new(MemFlavor::Hdf5);
    dict2group(&d, &mut root).unwrap();
    let back = group2dict(&root, &Default::default()).unwrap();
    assert_eq!(back.get("complex"), Some(&Value::Complex(1.0, 2.0)));
    assert_eq!(back.get("nul"), Some(&Value::Bytes(b"a\0b".to_vec())));
    assert_eq!(back.get("bytes"), Some(&Value::List(vec![s("ab"), s("3")])));
    // Invalid arrays are refused as the reference refuses them.
    let mut root = MemGroup::new(MemFlavor::Zarr);
    let zero_d = Dict::new().with("x", Array::from_f64_shaped(vec![], &[5.0]));
    assert!(dict2group(&zero_d, &mut root).is_err());
    let non_ascii = Dict::new().with("x", Array::from_unicode(vec!["é".into()]));
    assert!(dict2group(&non_ascii, &mut root).is_err());
    let ascii = Dict::new().with("x", Array::from_unicode(vec!["ab".into(), "c".into()]));
    dict2group(&ascii, &mut root).unwrap();
    let back = group2dict(&root, &Default::default()).unwrap();
    assert_eq!(
        back.get("x"),
        Some(&Value::Array(Array::from_unicode(vec![
            "ab".into(),
            "c".into()
        ])))
    );
}

#[test]
fn ragged_metadata_arrays_round_trip() {
    let cell = |v: &[f64], shape: Vec<usize>| Array {
        shape,
        ..Array::from_f64(v)
    };
    let ragged = Array::from_cells(
        vec![3],
        vec![
            cell(&[1.0, 2.0, 3.0, 4.0], vec![2, 2]),
            cell(&[5.0], vec![1, 1]),
            cell(&[], vec![0, 2]),
        ],
    );
    let d = Dict::new().with("offsets", ragged.clone());
    for flavor in [MemFlavor::Zarr, MemFlavor::Hdf5] {
        let mut root = MemGroup::new(flavor);
        dict2group(&d, &mut root).unwrap();
        assert!(root.dataset("_ragged_shapes_offsets").is_some());
        let back = group2dict(&root, &Default::default()).unwrap();
        assert_eq!(back, d);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut root = ZarrDirWriter::create(dir.path().join("r.zspy")).unwrap();
    dict2group(&d, &mut root).unwrap();
    let g = lazyspy::signal::ZarrDirGroup::open(dir.path().join("r.zspy")).unwrap();
    assert_eq!(group2dict(&g, &Default::default()).unwrap(), d);
}

#[test]
fn old_format_conversions() {
    // A format-1.0-like tree (mapped_parameters, flat keys) through the in-memory backend.
    let mut root = MemGroup::new(MemFlavor::Hdf5);
    let mut exps = root.require_group("Experiments").unwrap();
    let mut e = exps.require_group("old").unwrap();
    e.write_dataset(
        "data",
        &DatasetValue::Loaded(Array::from_f64(&[1.0, 2.0])),
        None,
    )
    .unwrap();
    let mut ax = e.require_group("axis-0").unwrap();
    ax.set_attr("size", &Value::Int(2)).unwrap();
    ax.set_attr("index_in_array", &Value::Int(0)).unwrap();
    let mut mp = e.require_group("mapped_parameters").unwrap();
    for (k, v) in [
        ("name", "A title"),
        ("signal", "EELS"),
        ("record_by", "spectrum"),
        ("_datetime_date", "datetime.date(2012, 12, 21)"),
        ("_datetime_time", "datetime.time(12, 0)"),
    ] {
        mp.set_attr(k, &Value::from(v)).unwrap();
    }
    let mut tem = mp.require_group("TEM").unwrap();
    tem.set_attr("tilt_stage", &Value::Float(10.0)).unwrap();
    tem.set_attr("exposure", &Value::Float(0.5)).unwrap();
    e.require_group("original_parameters").unwrap();
    let f = read_hierarchical(&root).unwrap();
    assert_eq!(f.version.to_string(), "1.0");
    let s = &f.signals[0];
    let md = &s.metadata;
    assert_eq!(md.get_path("General/title"), Some(&Value::from("A title")));
    assert_eq!(
        md.get_path("General/date"),
        Some(&Value::from("2012-12-21"))
    );
    assert_eq!(md.get_path("General/time"), Some(&Value::from("12:00:00")));
    assert_eq!(
        md.get_path("Signal/signal_type"),
        Some(&Value::from("EELS"))
    );
    assert_eq!(
        md.get_path("Signal/record_by"),
        Some(&Value::from("spectrum"))
    );
    assert_eq!(
        md.get_path("Acquisition_instrument/TEM/Stage/tilt_alpha"),
        Some(&Value::Float(10.0))
    );
    assert_eq!(
        md.get_path("Acquisition_instrument/TEM/Detector/Camera/exposure"),
        Some(&Value::Float(0.5))
    );
    assert!(md.get("name").is_none() && md.get("TEM").is_none());
    assert_eq!(s.axes[0].index_in_array(), Some(0));
    assert_eq!(s.signal_dimension(), 1); // record_by, no navigate
}

// ------------------------------------------------------------------------------------
// Property test: arbitrary trees survive dict2group → group2dict.
// ------------------------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-zA-Z0-9 éµ測_.-]{1,8}")
            .unwrap()
            .prop_filter("reserved prefixes and names", |k| {
                ![
                    "_list_",
                    "_tuple_",
                    "_sig_",
                    "_bs_",
                    "_ragged_shapes_",
                    "_hspy_AxesManager_",
                    "_datetime_",
                ]
                .iter()
                .any(|p| k.starts_with(p))
                    && !k.starts_with('.')
                    && k != "ragged_shapes"
            })
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
            -1e6..1e6f64
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-zé µ\\n\"\\\\]{0,6}".prop_filter("not the None marker", |s| s != "_None_")
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::None),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            ((1u64 << 63)..=u64::MAX).prop_map(Value::UInt),
            float().prop_map(Value::Float),
            text().prop_map(Value::Str),
        ]
    }

    /// Lists that numpy keeps as they are: homogeneous, or group lists of ≤ 10 items.
    fn seq(inner: BoxedStrategy<Value>) -> impl Strategy<Value = Vec<Value>> {
        prop_oneof![
            prop::collection::vec(any::<i64>().prop_map(Value::Int), 1..5),
            prop::collection::vec(float().prop_map(Value::Float), 1..5),
            prop::collection::vec(any::<bool>().prop_map(Value::Bool), 1..5),
            prop::collection::vec(text().prop_map(Value::Str), 1..5),
            // A None first forces a group; then anything goes.
            prop::collection::vec(inner, 0..9).prop_map(|mut v| {
                v.insert(0, Value::None);
                v
            }),
            Just(vec![]),
        ]
    }

    fn array() -> impl Strategy<Value = Value> {
        prop_oneof![
            prop::collection::vec(any::<i64>(), 1..6)
                .prop_map(|v| Value::Array(Array::from_i64(&v))),
            prop::collection::vec(float(), 0..6).prop_map(|v| Value::Array(Array::from_f64(&v))),
            prop::collection::vec(-100i64..100, 6)
                .prop_map(|v| Value::Array(Array::from_i64_shaped(vec![2, 3], &v))),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![scalar(), array()];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec((key(), inner.clone()), 0..5)
                    .prop_map(|kv| Value::Dict(kv.into_iter().collect())),
                seq(inner.clone()).prop_map(Value::List),
                seq(inner).prop_map(Value::Tuple),
            ]
        })
    }

    fn tree() -> impl Strategy<Value = Dict> {
        prop::collection::vec((key(), value()), 0..8).prop_map(|kv| kv.into_iter().collect())
    }

    /// The reader's order: attributes first (sorted), then members (sorted by stored
    /// name); lists/tuples of homogeneous items are members (datasets).
    fn reader_order(d: &Dict) -> Dict {
        let stored_name = |k: &str, v: &Value| -> (bool, String) {
            match v {
                Value::Dict(_) | Value::Array(_) => (true, k.to_string()),
                Value::List(items) | Value::Tuple(items) if !items.is_empty() => {
                    let p = if matches!(v, Value::List(_)) {
                        "_list_"
                    } else {
                        "_tuple_"
                    };
                    if items.first().is_some_and(|x| x.is_none()) {
                        (true, format!("{p}{}_{k}", items.len()))
                    } else {
                        (true, format!("{p}{k}"))
                    }
                }
                Value::List(_) => (false, format!("_list_empty_{k}")),
                Value::Tuple(_) => (false, format!("_tuple_empty_{k}")),
                _ => (false, k.to_string()),
            }
        };
        let mut entries: Vec<((bool, String), String, Value)> = d
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Dict(inner) => Value::Dict(reader_order(inner)),
                    Value::List(items) => Value::List(items.iter().map(fix).collect()),
                    Value::Tuple(items) => Value::Tuple(items.iter().map(fix).collect()),
                    other => other.clone(),
                };
                (stored_name(k, &v), k.to_string(), v)
            })
            .collect();
        entries.sort_by(|a, b| {
            a.0.0
                .cmp(&b.0.0)
                .then(a.0.1.as_bytes().cmp(b.0.1.as_bytes()))
        });
        entries.into_iter().map(|(_, k, v)| (k, v)).collect()
    }

    fn fix(v: &Value) -> Value {
        match v {
            Value::Dict(d) => Value::Dict(reader_order(d)),
            Value::List(items) => Value::List(items.iter().map(fix).collect()),
            Value::Tuple(items) => Value::Tuple(items.iter().map(fix).collect()),
            other => other.clone(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn trees_round_trip_in_memory(d in tree()) {
            for flavor in [MemFlavor::Zarr, MemFlavor::Hdf5] {
                let mut root = MemGroup::new(flavor);
                let report = dict2group(&d, &mut root).unwrap();
                prop_assert!(report.dropped.is_empty());
                let back = group2dict(&root, &Default::default()).unwrap();
                prop_assert_eq!(&back, &reader_order(&d));
            }
        }

        #[test]
        fn trees_round_trip_through_zarr_json(d in tree()) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.zspy");
            let mut root = ZarrDirWriter::create(&path).unwrap();
            let keys_ok = d.keys().all(|k| k != "." && k != "..");
            prop_assume!(keys_ok);
            dict2group(&d, &mut root).unwrap();
            let g = lazyspy::signal::ZarrDirGroup::open(&path).unwrap();
            let back = group2dict(&g, &Default::default()).unwrap();
            prop_assert_eq!(&back, &reader_order(&d));
        }
    }
}
