//! Reading `.zspy` data ([`ZspyArraySource`], [`open_zspy`], [`open_zspy_data`]): every
//! fixture of `tests/data/hyperspy` and of `../shared/fixtures/{rsciio-legacy,
//! hyperspy-legacy}` (required when `CI=true`), directory or zip, is opened and its data
//! compared with its `.expected.json` sidecar (shape, dtype, SHA-256 of the bytes, first,
//! last and sum; every cell of ragged data); every compressor HyperSpy can write, both
//! chunk key separators, fill values and big-endian data; zip stores with duplicate and
//! deflated entries; the incomplete marker; corrupt and inconsistent input gives errors
//! naming the file and the key, never a panic.

mod support;

use std::path::Path;
use support::sidecar::*;

use lazyspy::signal::{
    Array, ArrayDType, ArrayData, Signal, SignalData, SignalError, ZspyArraySource, open_zspy,
    open_zspy_data, open_zspy_signal, read_zspy_file,
};
use lazyspy::{ChunkSource, DType, Error, ExecConfig, Region};
use serde_json::Value as J;

/// The packed bytes of a raw array in little-endian order (structured records field by
/// field), as the sidecars hash them.
fn le_bytes(a: &Array) -> Vec<u8> {
    let ArrayData::Raw(b) = &a.data else {
        panic!("not a raw array")
    };
    fn fields(d: &ArrayDType, out: &mut Vec<(usize, bool)>) {
        match d {
            ArrayDType::Struct(fs) => {
                for f in fs {
                    let n: usize = f.shape.iter().product();
                    for _ in 0..n.max(1) {
                        fields(&f.dtype, out);
                    }
                }
            }
            ArrayDType::Complex { bytes, big_endian } => {
                out.push((bytes / 2, *big_endian));
                out.push((bytes / 2, *big_endian));
            }
            ArrayDType::Int { bytes, big_endian }
            | ArrayDType::UInt { bytes, big_endian }
            | ArrayDType::Float { bytes, big_endian } => out.push((*bytes, *big_endian)),
            other => out.push((other.itemsize().unwrap(), false)),
        }
    }
    let mut words = Vec::new();
    fields(&a.dtype, &mut words);
    let mut out = b.clone();
    let mut at = 0;
    while at < out.len() {
        for &(n, big) in &words {
            if big {
                out[at..at + n].reverse();
            }
            at += n;
        }
    }
    out
}

/// Checks in-memory (ragged, structured) data against its sidecar entry.
fn check_in_memory(name: &str, a: &Array, exp: &J) -> Vec<String> {
    let mut errs = Vec::new();
    let shape: Vec<usize> = serde_json::from_value(exp["shape"].clone()).unwrap();
    if a.shape != shape {
        return vec![format!("{name}: shape {:?} != {shape:?}", a.shape)];
    }
    if let Some(r) = exp.get("ragged") {
        let ArrayData::Cells(cells) = &a.data else {
            return vec![format!("{name}: ragged data without cells")];
        };
        let exp_cells = r["cells"].as_array().unwrap();
        if cells.len() != exp_cells.len() {
            return vec![format!(
                "{name}: {} cells != {}",
                cells.len(),
                exp_cells.len()
            )];
        }
        let mut concat = Vec::new();
        for (i, (c, e)) in cells.iter().zip(exp_cells).enumerate() {
            let shape: Vec<usize> = serde_json::from_value(e["shape"].clone()).unwrap();
            if c.shape != shape {
                errs.push(format!("{name}: cell {i} shape {:?} != {shape:?}", c.shape));
            }
            if let Some(sha) = e.get("sha256").and_then(|v| v.as_str()) {
                let b = le_bytes(c);
                if sha256_hex(&b) != sha {
                    errs.push(format!("{name}: cell {i} sha256 differs"));
                }
                concat.extend(b);
            } else if let Some(values) = e.get("values") {
                // String cells: compare the values.
                let mine: Vec<J> = c
                    .values()
                    .into_iter()
                    .map(|v| J::from(v.as_str().unwrap_or_default().to_string()))
                    .collect();
                let mut flat = Vec::new();
                fn flatten(v: &J, out: &mut Vec<J>) {
                    match v {
                        J::Array(a) => a.iter().for_each(|x| flatten(x, out)),
                        other => out.push(other.clone()),
                    }
                }
                flatten(values, &mut flat);
                if mine != flat {
                    errs.push(format!("{name}: cell {i} values {mine:?} != {flat:?}"));
                }
            } else {
                errs.push(format!("{name}: cell {i}: nothing to compare"));
            }
        }
        if let Some(sha) = r.get("sha256_concat").and_then(|v| v.as_str())
            && !concat.is_empty()
            && sha256_hex(&concat) != sha
        {
            errs.push(format!("{name}: sha256_concat differs"));
        }
        return errs;
    }
    let sha = sha256_hex(&le_bytes(a));
    if sha != exp["sha256"].as_str().unwrap() {
        errs.push(format!("{name}: sha256 {sha} != {}", exp["sha256"]));
    }
    errs
}

/// Opens every signal of `p` with [`open_zspy`] and compares its data with the sidecar;
/// returns (signals checked, problems).
fn check_store(p: &Path, cfg: &ExecConfig) -> (usize, Vec<String>) {
    let name = p.file_name().unwrap().to_string_lossy().to_string();
    let side = sidecar(p).0;
    let exp_signals = side["signals"].as_array().unwrap();
    let signals: Vec<Signal> = open_zspy(p).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut failures = Vec::new();
    if signals.len() != exp_signals.len() {
        failures.push(format!(
            "{name}: {} signals, expected {}",
            signals.len(),
            exp_signals.len()
        ));
    }
    let mut checked = 0;
    for (s, exp) in signals.iter().zip(exp_signals) {
        let label = format!("{name}:{}", s.tree.group_path);
        assert_eq!(
            exp["experiment_group"].as_str(),
            Some(s.tree.group_path.as_str()),
            "{label}"
        );
        let errs = match &s.data {
            SignalData::Lazy(lazy) => {
                assert!(numeric(&exp["data"]), "{label}: lazy but not numeric");
                assert_eq!(lazy.shape(), s.tree.data.shape, "{label}");
                match lazy.compute_with(cfg) {
                    Ok(got) => check_data(&label, &got, &exp["data"]),
                    Err(e) => vec![format!("{label}: compute failed: {e}")],
                }
            }
            SignalData::InMemory(a) => {
                assert!(!numeric(&exp["data"]), "{label}: numeric data read whole");
                check_in_memory(&label, a, &exp["data"])
            }
        };
        if errs.is_empty() {
            checked += 1;
        }
        failures.extend(errs);
    }
    (checked, failures)
}

#[test]
fn every_zspy_fixture_matches_its_sidecar() {
    let cfg = ExecConfig::default().with_threads(2);
    let mut checked = 0;
    let mut failures = Vec::new();
    let fixtures = zspy_fixtures();
    assert_eq!(fixtures.len(), 23);
    for p in &fixtures {
        let (n, f) = check_store(p, &cfg);
        checked += n;
        failures.extend(f);
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // One signal per store, plus none left out: ragged, rgb8 and markers included.
    assert_eq!(checked, 23, "signals checked");
}

#[test]
fn legacy_zspy_data_matches_the_sidecars() {
    let cfg = ExecConfig::default().with_threads(2);
    let mut stores = 0;
    for folder in ["rsciio-legacy", "hyperspy-legacy"] {
        let Some(fixtures) = legacy_zspy(folder) else {
            continue;
        };
        for p in &fixtures {
            let (n, f) = check_store(p, &cfg);
            assert!(f.is_empty(), "{f:#?}");
            assert!(n >= 1, "{}", p.display());
            stores += 1;
        }
    }
    eprintln!("legacy .zspy stores checked: {stores}");
}

#[test]
fn open_zspy_data_leaves_out_what_is_not_numeric() {
    for p in zspy_fixtures() {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let side = sidecar(&p).0;
        let exp_signals = side["signals"].as_array().unwrap();
        let opened = open_zspy_data(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        let n_numeric = exp_signals.iter().filter(|s| numeric(&s["data"])).count();
        assert_eq!(opened.len(), n_numeric, "{name}: opened signals");
        let tree = read_zspy_file(&p).unwrap();
        for s in &tree.signals {
            let exp = exp_signals
                .iter()
                .find(|e| e["experiment_group"].as_str() == Some(s.group_path.as_str()))
                .unwrap();
            if numeric(&exp["data"]) {
                continue;
            }
            // Ragged, structured: a clear error naming the file and the array.
            let err = open_zspy_signal(&p, s).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, SignalError::Unsupported { .. }),
                "{name}: {msg}"
            );
            assert!(msg.contains(&format!("{}/data", s.group_path)), "{msg}");
            assert!(msg.contains(&name), "{msg}");
            let key = format!("{}/data", s.group_path);
            let err = ZspyArraySource::open(&p, &key).unwrap_err();
            assert!(
                matches!(err, SignalError::Unsupported { .. }),
                "{name}: {err}"
            );
            assert!(err.to_string().contains(&name), "{err}");
        }
    }
}

#[test]
fn chunks_are_clipped_at_the_edges_and_regions_match() {
    // shape [6, 5, 40], chunks [4, 3, 40]
    let p = fixtures_dir().join("lazy_irregular_chunks.zspy");
    let src = ZspyArraySource::open(&p, "/Experiments/lazy/data").unwrap();
    assert_eq!(src.dtype(), DType::F32);
    assert_eq!(src.grid().shape(), vec![6, 5, 40]);
    assert_eq!(src.grid().chunk_shape(&[0, 0, 0]), vec![4, 3, 40]);
    assert_eq!(src.grid().chunk_shape(&[1, 1, 0]), vec![2, 2, 40]);
    assert!(!src.cheap_regions());
    assert!(
        src.describe()
            .ends_with("lazy_irregular_chunks.zspy:/Experiments/lazy/data")
    );
    let whole = src
        .read_region(&Region::new(vec![0, 0, 0], vec![6, 5, 40]))
        .unwrap();
    for idx in [[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0]] {
        let region = src.grid().chunk_region(&idx);
        let chunk = src.read_chunk(&idx).unwrap();
        assert_eq!(chunk.shape(), region.shape().as_slice());
        assert_eq!(
            chunk.to_bytes(),
            whole.slice_region(&region, None).to_bytes()
        );
    }
    let r = Region::new(vec![3, 1, 7], vec![5, 4, 33]);
    assert_eq!(
        src.read_region(&r).unwrap().to_bytes(),
        whole.slice_region(&r, None).to_bytes()
    );
    // An empty region reads nothing.
    let r = Region::new(vec![2, 2, 2], vec![2, 4, 9]);
    assert_eq!(src.read_region(&r).unwrap().shape(), &[0, 2, 7]);
    // Outside the shape: an error, not a panic.
    assert!(
        src.read_region(&Region::new(vec![0, 0, 0], vec![7, 5, 40]))
            .is_err()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

#[test]
fn opening_reads_no_chunk_and_a_corrupt_chunk_fails_at_compute() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("explicit_chunks.zspy");
    copy_dir(&fixtures_dir().join("explicit_chunks.zspy"), &store);
    // shape [6, 5, 40], chunks [2, 2, 20]: truncate chunk (1, 2, 1)
    let chunk = store.join("Experiments/explicit chunks/data/1/2/1");
    let len = std::fs::metadata(&chunk).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&chunk)
        .unwrap();
    f.set_len(len / 3).unwrap();
    drop(f);

    let opened = open_zspy_data(&store).expect("opening reads metadata only");
    assert_eq!(opened.len(), 1);
    let lazy = &opened[0].1;
    assert_eq!(lazy.shape(), vec![6, 5, 40]);
    let err = lazy
        .compute_with(&ExecConfig::default().with_threads(2))
        .unwrap_err();
    let msg = err.to_string();
    match &err {
        Error::Task { chunk, .. } => assert_eq!(chunk, &vec![1, 2, 1], "{msg}"),
        other => panic!("expected Error::Task, got {other:?}"),
    }
    assert!(
        msg.contains("Experiments/explicit chunks/data/1/2/1"),
        "{msg}"
    );
    assert!(msg.contains("explicit_chunks.zspy"), "{msg}");

    // A missing chunk file reads as the fill value (as zarr does), not as an error.
    std::fs::remove_file(&chunk).unwrap();
    let a = lazy
        .compute_with(&ExecConfig::default().with_threads(2))
        .unwrap();
    let src = ZspyArraySource::open(&store, "Experiments/explicit chunks/data").unwrap();
    let c = src.read_chunk(&[1, 2, 1]).unwrap();
    assert!(c.cast_to::<f64>().iter().all(|&v| v == 0.0));
    assert_eq!(a.shape(), &[6, 5, 40]);
}

#[test]
fn missing_paths_are_errors_naming_the_path() {
    let missing = fixtures_dir().join("does_not_exist.zspy");
    let err = ZspyArraySource::open(&missing, "/Experiments/x/data").unwrap_err();
    assert!(matches!(err, SignalError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("does_not_exist.zspy"), "{err}");
    let err = open_zspy_data(&missing).unwrap_err();
    assert!(err.to_string().contains("does_not_exist.zspy"), "{err}");

    // A store that exists but has no such array.
    let p = fixtures_dir().join("sig1d_f64.zspy");
    let err = ZspyArraySource::open(&p, "/Experiments/nope/data").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SignalError::Missing { .. }), "{err:?}");
    assert!(
        msg.contains("sig1d_f64.zspy") && msg.contains("/Experiments/nope/data"),
        "{msg}"
    );

    // A zip store without that array: the same error.
    let err = ZspyArraySource::open(fixtures_dir().join("zip_store.zspy"), "/x").unwrap_err();
    assert!(matches!(err, SignalError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains("zip_store.zspy"), "{err}");
    // A file that is neither a directory nor a zip.
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("plain.zspy");
    std::fs::write(&f, b"not a store").unwrap();
    let err = open_zspy(&f).unwrap_err();
    assert!(matches!(err, SignalError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("plain.zspy"), "{err}");
}
