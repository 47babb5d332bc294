//! Reading `.hspy`/`.hdf5` files: every fixture written by HyperSpy 2.5 / RosettaSciIO 0.15
//! (`tests/data/hyperspy`) and every legacy file (`../shared/fixtures/{rsciio-legacy,
//! hyperspy-legacy}`, format versions 1.0 to 3.3) is read with [`read_hspy_file`] and
//! [`open_hspy`] and compared with its `.expected.json` sidecar: root attributes, version,
//! every signal's metadata, original_metadata, axes, attributes, models and storage, key
//! order, and the data (SHA-256 of the bytes, first, last, sum; ragged cells; RGB records).

mod support;

use std::path::{Path, PathBuf};

use lazyspy::signal::{SignalData, Value, open_hspy, read_hspy_file};
use lazyspy::{ChunkSource, ExecConfig, Region};
use support::sidecar::*;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hyperspy")
}

fn hdf5_files(dir: &Path) -> Vec<PathBuf> {
    files_with_ext(dir, &["hspy", "hdf5"])
}

/// Compares one file with its sidecar: tree and data. Returns the problems.
fn check_file(p: &Path) -> Vec<String> {
    let (exp, exp_ordered) = sidecar(p);
    let name = p.file_name().unwrap().to_string_lossy().to_string();
    let file = match read_hspy_file(p) {
        Ok(f) => f,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    let (tree_errors, deferred) = compare_file_tree(&file, &exp, &exp_ordered, |s| {
        let mut mine = signal_json(s, false);
        mine["storage"] = to_sidecar(&Value::Dict(s.data.storage.clone()));
        mine
    });
    let exp_signals = exp["signals"].as_array().expect("signals");
    let mut errors: Vec<String> = tree_errors.iter().map(|e| format!("{name}: {e}")).collect();
    errors.extend(
        deferred
            .iter()
            .map(|d| format!("{name}: values not read: {d}")),
    );

    // The data.
    let cfg = ExecConfig::default().with_threads(2);
    let signals = match open_hspy(p) {
        Ok(s) => s,
        Err(e) => {
            errors.push(format!("{name}: open_hspy: {e}"));
            return errors;
        }
    };
    assert_eq!(signals.len(), file.signals.len(), "{name}");
    for (s, e) in signals.iter().zip(exp_signals) {
        let tag = format!("{name}:{}", s.tree.group_path);
        assert_eq!(s.tree.group_path, e["experiment_group"].as_str().unwrap());
        match &s.data {
            SignalData::Lazy(a) => {
                if !numeric(&e["data"]) {
                    errors.push(format!("{tag}: lazy data for a non-numeric sidecar"));
                    continue;
                }
                match a.compute_with(&cfg) {
                    Ok(got) => errors.extend(check_data(&tag, &got, &e["data"])),
                    Err(err) => errors.push(format!("{tag}: compute: {err}")),
                }
            }
            SignalData::InMemory(a) => {
                if numeric(&e["data"]) {
                    errors.push(format!("{tag}: numeric data was not opened lazily"));
                    continue;
                }
                errors.extend(check_in_memory(&tag, a, &e["data"]));
            }
        }
    }
    errors
}

fn check_all(files: &[PathBuf]) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    for p in files {
        let errs = check_file(p);
        failures.extend(errs.into_iter().take(30));
    }
    (files.len(), failures)
}

#[test]
fn every_generated_hspy_fixture_matches_its_sidecar() {
    let files = hdf5_files(&fixtures_dir());
    let (n, failures) = check_all(&files);
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(n, 26, "generated .hspy fixtures checked");
}

#[test]
fn every_rsciio_legacy_file_matches_its_sidecar() {
    let Some(d) = legacy_dir("rsciio-legacy") else {
        return;
    };
    let files = hdf5_files(&d);
    let (n, failures) = check_all(&files);
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(n, 6, "rsciio legacy files checked");
}

#[test]
fn every_hyperspy_legacy_file_matches_its_sidecar() {
    let Some(d) = legacy_dir("hyperspy-legacy") else {
        return;
    };
    let files = hdf5_files(&d);
    let (n, failures) = check_all(&files);
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(n, 7, "hyperspy legacy files checked");
}

#[test]
fn comparison_catches_a_wrong_value() {
    let p = fixtures_dir().join("metadata_zoo.hspy");
    let (exp, _) = sidecar(&p);
    let file = read_hspy_file(&p).unwrap();
    let mut s = file.signals[0].clone();
    s.metadata.set_path("Zoo/int", Value::Int(43));
    let mut mine = signal_json(&s, false);
    mine["storage"] = to_sidecar(&Value::Dict(s.data.storage.clone()));
    let mut e = exp["signals"][0].clone();
    for k in ["sha256", "first", "last", "sum"] {
        e["data"].as_object_mut().unwrap().remove(k);
    }
    let mut c = Cmp::new();
    c.cmp("s", &mine, &e);
    assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
    assert!(c.errors[0].contains("Zoo/int"));
}

#[test]
fn chunks_are_clipped_at_the_edges_and_regions_match() {
    // (4, 40, 1024) float64 stored in (4, 30, 1024) chunks: a partial edge chunk.
    let p = fixtures_dir().join("default_chunk_grid.hspy");
    let signals = open_hspy(&p).unwrap();
    let SignalData::Lazy(lazy) = &signals[0].data else {
        panic!("not lazy")
    };
    assert_eq!(lazy.grid().axis_chunks(1), &[30, 10]);
    let whole = lazy
        .compute_with(&ExecConfig::default().with_threads(2))
        .unwrap();
    let src =
        lazyspy::signal::HspyArraySource::open(&p, &format!("{}/data", signals[0].tree.group_path))
            .unwrap();
    assert_eq!(src.layout().layout, "chunked");
    for idx in [[0, 0, 0], [0, 1, 0]] {
        let region = src.grid().chunk_region(&idx);
        let chunk = src.read_chunk(&idx).unwrap();
        assert_eq!(
            chunk.to_bytes(),
            whole.slice_region(&region, None).to_bytes()
        );
    }
    // An arbitrary region goes through the library's hyperslab read.
    let r = Region::new(vec![1, 25, 100], vec![3, 37, 900]);
    assert_eq!(
        src.read_region(&r).unwrap().to_bytes(),
        whole.slice_region(&r, None).to_bytes()
    );
    assert!(
        src.read_region(&Region::new(vec![0, 0, 0], vec![5, 40, 1024]))
            .is_err()
    );
}
