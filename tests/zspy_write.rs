//! The streaming `.zspy` writer ([`write_zspy`]): round trips of every dtype, chunking and
//! compressor through the reader; every directory fixture re-written keeps its tree and
//! data; consolidated metadata equals the documents on disk; fill-value chunks are written;
//! overwrite/resume rules; fault injection through the atomic store (transient faults are
//! retried, permanent ones leave an incomplete store that a resume completes to identical
//! bytes); zip output.

use std::io;
use std::path::{Path, PathBuf};

use lazyspy::io::atomic::{INCOMPLETE_MARKER, Operation, RetryPolicy, StoreOptions};
use lazyspy::signal::{
    Signal, SignalData, ZspyCompressor, ZspyWriteOptions, open_zspy, open_zspy_data,
    read_zspy_file, write_zspy, write_zspy_signals,
};

#[path = "support/quirks.rs"]
mod quirks;
#[path = "support/store_files.rs"]
mod store_files;
use lazyspy::{DType, DynArray, DynLazyArray, ExecConfig, LazyArray};
use ndarray::ArrayD;
use store_files::{busy, denied, fault, files, temporaries};

fn exec() -> ExecConfig {
    ExecConfig::default().with_threads(2)
}

/// A deterministic f64 value for element `i` (varied, non-trivially compressible).
fn value(i: usize) -> f64 {
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    (i % 97) as f64 * 0.5 + (x % 13) as f64
}

fn lazy_of(dtype: DType, shape: &[usize], chunks: &[usize]) -> DynLazyArray {
    let total: usize = shape.iter().product();
    let values: Vec<f64> = (0..total).map(value).collect();
    let a = ArrayD::from_shape_vec(shape.to_vec(), values).unwrap();
    let base = LazyArray::from_array(a, chunks).unwrap().into_dyn();
    lazyspy::with_dtype!(dtype, T => base.cast::<T>().into_dyn())
}

fn read_back(path: &Path) -> Vec<(Signal, DynArray)> {
    open_zspy_data(path)
        .unwrap()
        .into_iter()
        .map(|(tree, data)| {
            let values = data.compute_with(&exec()).unwrap();
            (
                Signal {
                    tree,
                    data: SignalData::Lazy(data),
                },
                values,
            )
        })
        .collect()
}

#[test]
fn every_dtype_round_trips_with_partial_edge_chunks() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in DType::ALL {
        let data = lazy_of(dtype, &[5, 7, 11], &[2, 3, 11]);
        let expected = data.compute_with(&exec()).unwrap();
        let signal = Signal::from_lazy(data, 1, &format!("t {dtype}"));
        let path = dir.path().join(format!("{dtype}.zspy"));
        let opts = ZspyWriteOptions {
            chunks: Some(vec![2, 4, 5]),
            ..ZspyWriteOptions::default()
        };
        let report = write_zspy(&path, &signal, &opts, &exec()).unwrap();
        assert_eq!(report.chunks, vec![2, 4, 5]);
        assert_eq!(report.chunks_written, 3 * 2 * 3, "{dtype}");
        let back = read_back(&path);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].1, expected, "{dtype}");
        assert_eq!(back[0].0.tree.data.chunks, vec![2, 4, 5]);
        assert_eq!(back[0].0.tree.axes, signal.tree.axes, "{dtype}");
        assert_eq!(back[0].0.tree.title(), Some(format!("t {dtype}").as_str()));
        assert!(!path.join(INCOMPLETE_MARKER).exists());
    }
}

#[test]
fn every_compressor_round_trips_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let data = lazy_of(DType::U16, &[6, 40, 40], &[3, 40, 40]);
    let expected = data.compute_with(&exec()).unwrap();
    for spec in [
        "blosc-zstd:1",
        "blosc-lz4:5",
        "blosc-lz4:5:bitshuffle",
        "blosc-blosclz:9:noshuffle",
        "blosc-zlib:3",
        "zstd:3",
        "gzip:4",
        "zlib:6",
        "none",
    ] {
        let compressor = ZspyCompressor::parse(spec).unwrap();
        let path = dir.path().join(format!("{}.zspy", spec.replace(':', "_")));
        let signal = Signal::from_lazy(data.clone(), 2, "c");
        let opts = ZspyWriteOptions {
            compressor: compressor.clone(),
            ..ZspyWriteOptions::default()
        };
        write_zspy(&path, &signal, &opts, &exec()).unwrap();
        let back = read_back(&path);
        assert_eq!(back[0].1, expected, "{spec}");
        let zarray: serde_json::Value = serde_json::from_slice(
            &std::fs::read(path.join("Experiments/c/data/.zarray")).unwrap(),
        )
        .unwrap();
        let recorded = &zarray["compressor"];
        match compressor {
            ZspyCompressor::None => assert!(recorded.is_null()),
            ZspyCompressor::Blosc { cname, .. } => assert_eq!(recorded["cname"], cname.as_str()),
            ZspyCompressor::Gzip(l) | ZspyCompressor::Zlib(l) => {
                assert_eq!(recorded["level"], l)
            }
            ZspyCompressor::Zstd(l) => assert_eq!(recorded["level"], l),
        }
    }
}

#[test]
fn defaults_match_rosettasciio_and_metadata_is_consolidated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.zspy");
    let data = lazy_of(DType::F32, &[4, 6, 32], &[2, 6, 32]);
    let signal = Signal::from_lazy(data, 1, "");
    let report = write_zspy(&path, &signal, &ZspyWriteOptions::default(), &exec()).unwrap();
    assert_eq!(report.chunks, vec![2, 6, 32], "lazy data keeps its chunks");
    let zarray =
        std::fs::read_to_string(path.join("Experiments/__unnamed__/data/.zarray")).unwrap();
    assert_eq!(
        zarray,
        "{\n    \"chunks\": [\n        2,\n        6,\n        32\n    ],\n    \"compressor\": {\n        \"blocksize\": 0,\n        \"clevel\": 1,\n        \"cname\": \"zstd\",\n        \"id\": \"blosc\",\n        \"shuffle\": 1\n    },\n    \"dimension_separator\": \"/\",\n    \"dtype\": \"<f4\",\n    \"fill_value\": 0.0,\n    \"filters\": null,\n    \"order\": \"C\",\n    \"shape\": [\n        4,\n        6,\n        32\n    ],\n    \"zarr_format\": 2\n}"
    );
    let root_attrs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path.join(".zattrs")).unwrap()).unwrap();
    assert_eq!(root_attrs["file_format"], "ZSpy");
    assert_eq!(root_attrs["file_format_version"], "3.3");
    // .zmetadata holds exactly the metadata documents on disk, parsed equal.
    let on_disk = files(&path);
    let zmeta: serde_json::Value = serde_json::from_slice(&on_disk[".zmetadata"]).unwrap();
    assert_eq!(zmeta["zarr_consolidated_format"], 1);
    let consolidated = zmeta["metadata"].as_object().unwrap();
    let docs: Vec<&String> = on_disk
        .keys()
        .filter(|k| {
            let n = k.rsplit('/').next().unwrap();
            n == ".zgroup" || n == ".zattrs" || n == ".zarray"
        })
        .collect();
    assert_eq!(consolidated.len(), docs.len());
    for k in docs {
        let file: serde_json::Value = serde_json::from_slice(&on_disk[k]).unwrap();
        assert_eq!(consolidated[k.as_str()], file, "{k}");
    }
    // No `_zarrs` attribute, no temporaries, no marker.
    assert!(
        !on_disk
            .values()
            .any(|v| v.windows(7).any(|w| w == b"\"_zarrs"))
    );
    assert!(
        !on_disk
            .keys()
            .any(|k| k.contains("lazyspy-tmp") || k == INCOMPLETE_MARKER)
    );
}

#[test]
fn chunks_equal_to_the_fill_value_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.zspy");
    let data = LazyArray::from_array(ArrayD::<f32>::zeros(vec![4, 8]), &[1, 8])
        .unwrap()
        .into_dyn();
    write_zspy(
        &path,
        &Signal::from_lazy(data, 1, "z"),
        &ZspyWriteOptions::default(),
        &exec(),
    )
    .unwrap();
    for i in 0..4 {
        assert!(path.join(format!("Experiments/z/data/{i}/0")).is_file());
    }
}

#[test]
fn every_fixture_rewritten_keeps_its_tree_and_data() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut names: Vec<PathBuf> = Vec::new();
    let legacy = root.join("../shared/fixtures/rsciio-legacy");
    for folder in [root.join("tests/data/hyperspy"), legacy.clone()] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{} is missing (CI=true)",
                folder.display()
            );
            eprintln!("SKIPPED {}: not found", folder.display());
            continue;
        };
        names.extend(
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "zspy")),
        );
    }
    names.sort();
    for fixture in names {
        let originals = open_zspy(&fixture).unwrap();
        let out = dir.path().join(fixture.file_name().unwrap());
        write_zspy_signals(&out, &originals, &ZspyWriteOptions::default(), &exec())
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
        let back = open_zspy(&out).unwrap();
        assert_eq!(back.len(), originals.len());
        for (a, b) in originals.iter().zip(&back) {
            let name = fixture.display();
            match (&a.data, &b.data) {
                (SignalData::Lazy(x), SignalData::Lazy(y)) => assert_eq!(
                    x.compute_with(&exec()).unwrap(),
                    y.compute_with(&exec()).unwrap(),
                    "{name}"
                ),
                (SignalData::InMemory(x), SignalData::InMemory(y)) => assert_eq!(x, y, "{name}"),
                other => panic!("{name}: data kinds differ: {other:?}"),
            }
            let mut a = a.tree.clone();
            for d in [
                &mut a.metadata,
                &mut a.original_metadata,
                &mut a.attributes,
                &mut a.models,
            ] {
                d.iter_mut().for_each(|(_, v)| quirks::q1_again(v));
            }
            let b = &b.tree;
            assert_eq!(a.axes, b.axes, "{name}");
            assert_eq!(a.metadata, b.metadata, "{name}");
            assert_eq!(a.original_metadata, b.original_metadata, "{name}");
            assert_eq!(a.attributes, b.attributes, "{name}");
            assert_eq!(a.models, b.models, "{name}");
            assert_eq!(a.data.chunks, b.data.chunks, "{name}");
            assert_eq!(a.data.dtype, b.data.dtype, "{name}");
        }
        checked += 1;
    }
    assert!(checked >= 23, "only {checked} fixtures were rewritten");
}

#[test]
fn an_existing_destination_needs_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.zspy");
    let signal = Signal::from_lazy(lazy_of(DType::I32, &[3, 5], &[1, 5]), 1, "o");
    write_zspy(&path, &signal, &ZspyWriteOptions::default(), &exec()).unwrap();
    let before = files(&path);
    let err = write_zspy(&path, &signal, &ZspyWriteOptions::default(), &exec()).unwrap_err();
    assert!(err.to_string().contains("--overwrite"), "{err}");
    assert_eq!(files(&path), before, "a refused write changes nothing");
    let err = write_zspy(
        &path,
        &signal,
        &ZspyWriteOptions {
            resume: true,
            ..ZspyWriteOptions::default()
        },
        &exec(),
    )
    .unwrap();
    assert_eq!(
        err.chunks_written, 0,
        "resuming a complete store of the same job does nothing"
    );
    assert_eq!(err.chunks_skipped, 3);
    assert_eq!(files(&path), before);
    let err = write_zspy(
        &path,
        &signal,
        &ZspyWriteOptions {
            resume: true,
            chunks: Some(vec![3, 5]),
            ..ZspyWriteOptions::default()
        },
        &exec(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("other arrays"), "{err}");
    let other = Signal::from_lazy(lazy_of(DType::F64, &[2, 2], &[1, 2]), 1, "o");
    write_zspy(
        &path,
        &other,
        &ZspyWriteOptions {
            overwrite: true,
            ..ZspyWriteOptions::default()
        },
        &exec(),
    )
    .unwrap();
    let back = read_back(&path);
    assert_eq!(back[0].1.dtype(), DType::F64);
    assert!(
        !path.join("Experiments/o/data/2/0").exists(),
        "old chunks are gone"
    );
}

#[test]
fn bad_chunks_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.zspy");
    let signal = Signal::from_lazy(lazy_of(DType::U8, &[3, 5], &[1, 5]), 1, "b");
    for chunks in [vec![1], vec![0, 5], vec![1, 2, 3]] {
        let err = write_zspy(
            &path,
            &signal,
            &ZspyWriteOptions {
                chunks: Some(chunks),
                ..ZspyWriteOptions::default()
            },
            &exec(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("chunks"), "{err}");
        assert!(!path.exists());
    }
}

#[test]
fn transient_faults_are_retried_and_the_output_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = lazy_of(DType::F32, &[8, 16, 16], &[1, 16, 16]);
    let signal = Signal::from_lazy(data, 2, "f");
    let clean = dir.path().join("clean.zspy");
    write_zspy(&clean, &signal, &ZspyWriteOptions::default(), &exec()).unwrap();
    for op in [
        Operation::Open,
        Operation::Write,
        Operation::Fsync,
        Operation::Rename,
    ] {
        let path = dir.path().join(format!("{op:?}.zspy"));
        let opts = ZspyWriteOptions {
            store: StoreOptions::default().with_fault(fault(op, 5, 3, busy)),
            ..ZspyWriteOptions::default()
        };
        write_zspy(&path, &signal, &opts, &exec()).unwrap();
        assert_eq!(files(&path), files(&clean), "{op:?}");
    }
}

#[test]
fn a_permanent_fault_leaves_an_incomplete_store_that_resume_completes_identically() {
    let dir = tempfile::tempdir().unwrap();
    let data = lazy_of(DType::U16, &[12, 16, 16], &[1, 16, 16]);
    let signal = Signal::from_lazy(data, 2, "p");
    let clean = dir.path().join("clean.zspy");
    write_zspy(&clean, &signal, &ZspyWriteOptions::default(), &exec()).unwrap();
    for (op, n) in [
        (Operation::Rename, 0),
        (Operation::Rename, 9),
        (Operation::Write, 14),
        (Operation::Fsync, 20),
        (Operation::Open, 25),
    ] {
        let path = dir.path().join(format!("{op:?}{n}.zspy"));
        let opts = ZspyWriteOptions {
            store: StoreOptions::default()
                .with_retry(RetryPolicy::no_retry())
                .with_fault(fault(op, n, u64::MAX, denied)),
            ..ZspyWriteOptions::default()
        };
        let err = write_zspy(&path, &signal, &opts, &exec()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            temporaries(&path).is_empty(),
            "{op:?}{n}: {:?}",
            temporaries(&path)
        );
        if n == 0 {
            // The marker itself failed: nothing at all was written.
            assert!(
                files(&path).is_empty(),
                "{op:?}{n}: {:?}",
                files(&path).keys()
            );
        } else {
            assert!(path.join(INCOMPLETE_MARKER).exists(), "{op:?}{n}");
        }
        assert!(
            !path.join(".zgroup").exists(),
            "{op:?}{n}: root .zgroup comes last"
        );
        let resume = ZspyWriteOptions {
            resume: true,
            ..ZspyWriteOptions::default()
        };
        let report = write_zspy(&path, &signal, &resume, &exec()).unwrap();
        assert_eq!(report.chunks_written + report.chunks_skipped, 12);
        assert_eq!(files(&path), files(&clean), "{op:?}{n}");
    }
}

#[test]
fn resume_refuses_a_different_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.zspy");
    let signal = Signal::from_lazy(lazy_of(DType::U8, &[6, 8], &[1, 8]), 1, "r");
    let opts = ZspyWriteOptions {
        store: StoreOptions::default()
            .with_retry(RetryPolicy::no_retry())
            .with_fault(fault(Operation::Rename, 12, u64::MAX, denied)),
        ..ZspyWriteOptions::default()
    };
    write_zspy(&path, &signal, &opts, &exec()).unwrap_err();
    let other = ZspyWriteOptions {
        resume: true,
        chunks: Some(vec![2, 8]),
        ..ZspyWriteOptions::default()
    };
    let err = write_zspy(&path, &signal, &other, &exec()).unwrap_err();
    assert!(err.to_string().contains("different job"), "{err}");
}

#[test]
fn metadata_only_writes_keep_the_data_and_refresh_zmetadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.zspy");
    let mut signal = Signal::from_lazy(lazy_of(DType::F64, &[3, 4], &[1, 4]), 1, "m");
    write_zspy(&path, &signal, &ZspyWriteOptions::default(), &exec()).unwrap();
    let chunk = std::fs::read(path.join("Experiments/m/data/1/0")).unwrap();
    signal
        .tree
        .metadata
        .set_path("General/notes", "second save");
    let opts = ZspyWriteOptions {
        write_dataset: false,
        ..ZspyWriteOptions::default()
    };
    write_zspy(&path, &signal, &opts, &exec()).unwrap();
    assert_eq!(
        std::fs::read(path.join("Experiments/m/data/1/0")).unwrap(),
        chunk
    );
    let file = read_zspy_file(&path).unwrap();
    assert_eq!(
        file.signals[0]
            .metadata
            .get_path("General/notes")
            .and_then(|v| v.as_str()),
        Some("second save")
    );
    let zmeta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path.join(".zmetadata")).unwrap()).unwrap();
    let attrs = &zmeta["metadata"]["Experiments/m/metadata/General/.zattrs"];
    assert_eq!(attrs["notes"], "second save");
}

#[test]
fn zip_output_holds_each_key_once_stored() {
    let dir = tempfile::tempdir().unwrap();
    let directory = dir.path().join("d.zspy");
    let zipped = dir.path().join("z.zspy");
    let signal = Signal::from_lazy(lazy_of(DType::I16, &[5, 9, 9], &[2, 9, 9]), 2, "zip me");
    write_zspy(&directory, &signal, &ZspyWriteOptions::default(), &exec()).unwrap();
    let opts = ZspyWriteOptions {
        zip: true,
        ..ZspyWriteOptions::default()
    };
    write_zspy(&zipped, &signal, &opts, &exec()).unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zipped).unwrap()).unwrap();
    let expected = files(&directory);
    assert_eq!(archive.len(), expected.len(), "each key once");
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        assert_eq!(entry.compression(), zip::CompressionMethod::Stored);
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        assert_eq!(&bytes, &expected[entry.name()], "{}", entry.name());
    }
    // Nothing left beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let err = write_zspy(&zipped, &signal, &opts, &exec()).unwrap_err();
    assert!(err.to_string().contains("--overwrite"));
}
