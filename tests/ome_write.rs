//! The OME-Zarr pyramid writer ([`write_ome_zarr`]) through real stores: every level read
//! back with zarrs equals the reduction of the level above (both versions, every method,
//! float and integer data, partial edge chunks, shards); the NGFF metadata; the
//! incomplete-marker protocol under injected faults and its resume to identical bytes;
//! errors before anything is written; and the memory bound on an input four times the
//! budget (in a child process, whose `VmHWM` is measured).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use lazyspy::filters::{GaussianParams, downsample_mean, gaussian_filter};
use lazyspy::io::atomic::{INCOMPLETE_MARKER, Operation, RetryPolicy, StoreOptions};
use lazyspy::signal::ome_zarr::{
    GAUSSIAN_SIGMA, OmeVersion, PyramidMethod, PyramidOptions, write_ome_zarr,
};
use lazyspy::signal::{Axis, Signal, ZspyCompressor};
use lazyspy::{DType, DynLazyArray, ExecConfig, LazyArray};
use ndarray::{ArrayD, IxDyn, Slice};
use zarrs::filesystem::FilesystemStore;

#[path = "support/store_files.rs"]
mod store_files;
use store_files::{busy, denied, fault, files, temporaries};

fn exec() -> ExecConfig {
    ExecConfig::default().with_threads(2)
}

/// A smooth-plus-jagged test image, cast to `dtype`.
fn lazy_of(dtype: DType, shape: &[usize], chunks: &[usize]) -> DynLazyArray {
    let a = ArrayD::from_shape_fn(IxDyn(shape), |ix| {
        let (z, y, x) = (ix[0] as f64, ix[1] as f64, ix[2] as f64);
        1000.0
            + 300.0 * (y / 7.0).sin() * (x / 11.0).cos()
            + 17.0 * z
            + ((y * 31.0 + x * 17.0) % 23.0)
    });
    let base = LazyArray::from_array(a, chunks).unwrap().into_dyn();
    lazyspy::with_dtype!(dtype, T => base.cast::<T>().into_dyn())
}

fn signal_of(dtype: DType, shape: &[usize]) -> Signal {
    let data = lazy_of(dtype, shape, &[1, shape[1], shape[2]]);
    let axes = vec![
        Axis::uniform(Some("image"), None, shape[0], 1.0, 0.0, true),
        Axis::uniform(Some("y"), Some("nm"), shape[1], 0.5, 10.0, false),
        Axis::uniform(Some("x"), Some("nm"), shape[2], 0.25, -3.0, false),
    ];
    Signal::with_axes(data, axes, "scan", "")
}

/// Level `k` of the pyramid at `root`, read with zarrs, as f64.
fn read_level(root: &Path, k: usize, dtype: DType) -> ArrayD<f64> {
    let store = Arc::new(FilesystemStore::new(root).unwrap());
    let array = zarrs::array::Array::open(store, &format!("/{k}")).unwrap();
    let all = array.subset_all();
    match dtype {
        DType::F32 => array
            .retrieve_array_subset::<ArrayD<f32>>(&all)
            .unwrap()
            .mapv(f64::from),
        DType::U16 => array
            .retrieve_array_subset::<ArrayD<u16>>(&all)
            .unwrap()
            .mapv(f64::from),
        other => panic!("no reader for {other}"),
    }
}

/// The contract's reduction of a whole level (axes 1 and 2), rounded to `dtype`.
fn reference(level: &ArrayD<f64>, method: PyramidMethod, dtype: DType) -> ArrayD<f64> {
    let reduced = match method {
        PyramidMethod::Mean => downsample_mean(level.view(), &[1, 2, 2]).unwrap(),
        PyramidMethod::Gaussian | PyramidMethod::Nearest => {
            let base = if method == PyramidMethod::Gaussian {
                let p = GaussianParams::new(vec![GAUSSIAN_SIGMA; 2], vec![1, 2]);
                gaussian_filter(level.view(), &p).unwrap()
            } else {
                level.clone()
            };
            let mut v = base.view();
            for a in [1, 2] {
                v.slice_axis_inplace(ndarray::Axis(a), Slice::new(0, None, 2));
            }
            v.to_owned()
        }
    };
    reduced.mapv(|x| match dtype {
        DType::F32 => x as f32 as f64,
        _ => x.round_ties_even(),
    })
}

#[test]
fn every_level_equals_the_reduction_of_the_level_above() {
    let dir = tempfile::tempdir().unwrap();
    let shape = [2, 37, 53];
    for version in [OmeVersion::V04, OmeVersion::V05] {
        for method in [
            PyramidMethod::Mean,
            PyramidMethod::Gaussian,
            PyramidMethod::Nearest,
        ] {
            for dtype in [DType::F32, DType::U16] {
                let shard = (version == OmeVersion::V05 && dtype == DType::U16).then_some(2);
                let path = dir.path().join(format!(
                    "{}-{}-{dtype}.ome.zarr",
                    version.as_str(),
                    method.as_str()
                ));
                let opts = PyramidOptions {
                    version,
                    method,
                    levels: Some(4),
                    chunk: 8,
                    shard,
                    ..PyramidOptions::default()
                };
                let signal = signal_of(dtype, &shape);
                let report = write_ome_zarr(&path, &signal, &opts, &exec()).unwrap();
                let what = format!("{} {method:?} {dtype} shard {shard:?}", version.as_str());
                assert_eq!(report.levels.len(), 4, "{what}");
                let source = signal
                    .data
                    .as_lazy()
                    .unwrap()
                    .compute_with(&exec())
                    .unwrap();
                let mut above = source
                    .cast(DType::F64)
                    .into_typed::<f64>()
                    .unwrap()
                    .into_owned();
                assert_eq!(read_level(&path, 0, dtype), above, "{what}: level 0");
                for k in 1..4 {
                    let got = read_level(&path, k, dtype);
                    let want = reference(&above, method, dtype);
                    assert_eq!(got.shape(), want.shape(), "{what}: level {k}");
                    let worst = got
                        .iter()
                        .zip(&want)
                        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                        .fold(0.0, f64::max);
                    assert!(worst <= 1e-6, "{what}: level {k} differs by {worst}");
                    assert_eq!(report.levels[k].shape, want.shape(), "{what}");
                    above = got;
                }
                assert!(!path.join(INCOMPLETE_MARKER).exists(), "{what}");
            }
        }
    }
}

fn json_at(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn metadata_follows_ome_ngff_for_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let signal = signal_of(DType::F32, &[3, 40, 64]);
    let opts = PyramidOptions {
        levels: Some(3),
        chunk: 16,
        ..PyramidOptions::default()
    };
    let v4 = dir.path().join("v4.ome.zarr");
    write_ome_zarr(&v4, &signal, &opts, &exec()).unwrap();
    assert_eq!(json_at(&v4.join(".zgroup"))["zarr_format"], 2);
    let m = &json_at(&v4.join(".zattrs"))["multiscales"][0];
    assert_eq!(m["version"], "0.4");
    assert_eq!(m["name"], "scan");
    assert_eq!(
        m["axes"],
        serde_json::json!([
            {"name": "image"},
            {"name": "y", "type": "space", "unit": "nanometer"},
            {"name": "x", "type": "space", "unit": "nanometer"},
        ])
    );
    let level = |m: &serde_json::Value, k: usize| {
        let t = &m["datasets"][k]["coordinateTransformations"];
        assert_eq!(m["datasets"][k]["path"], k.to_string());
        (t[0]["scale"].clone(), t[1]["translation"].clone())
    };
    assert_eq!(
        level(m, 0),
        (
            serde_json::json!([1.0, 0.5, 0.25]),
            serde_json::json!([0.0, 10.0, -3.0])
        )
    );
    // The mean of 2 samples sits half a sample of the level above further on.
    assert_eq!(
        level(m, 1),
        (
            serde_json::json!([1.0, 1.0, 0.5]),
            serde_json::json!([0.0, 10.25, -2.875])
        )
    );
    assert_eq!(
        level(m, 2),
        (
            serde_json::json!([1.0, 2.0, 1.0]),
            serde_json::json!([0.0, 10.75, -2.625])
        )
    );
    assert_eq!(
        json_at(&v4.join("1/.zarray"))["shape"],
        serde_json::json!([3, 20, 32])
    );

    let v5 = dir.path().join("v5.ome.zarr");
    let opts5 = PyramidOptions {
        version: OmeVersion::V05,
        method: PyramidMethod::Nearest,
        ..opts
    };
    write_ome_zarr(&v5, &signal, &opts5, &exec()).unwrap();
    let root = json_at(&v5.join("zarr.json"));
    assert_eq!(root["node_type"], "group");
    assert_eq!(root["attributes"]["ome"]["version"], "0.5");
    let m = &root["attributes"]["ome"]["multiscales"][0];
    assert!(m.get("version").is_none());
    assert_eq!(
        level(m, 2),
        (
            serde_json::json!([1.0, 2.0, 1.0]),
            serde_json::json!([0.0, 10.0, -3.0])
        )
    );
    let array = json_at(&v5.join("2/zarr.json"));
    assert_eq!(
        array["dimension_names"],
        serde_json::json!(["image", "y", "x"])
    );
    assert_eq!(array["shape"], serde_json::json!([3, 10, 16]));
    assert!(v5.join("2/c/0/0/0").is_file());
}

#[test]
fn transient_faults_are_retried_and_the_pyramid_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    let signal = signal_of(DType::U16, &[2, 30, 30]);
    let opts = PyramidOptions {
        chunk: 8,
        ..PyramidOptions::default()
    };
    let clean = dir.path().join("clean.ome.zarr");
    write_ome_zarr(&clean, &signal, &opts, &exec()).unwrap();
    for op in [
        Operation::Open,
        Operation::Write,
        Operation::Fsync,
        Operation::Rename,
    ] {
        let path = dir.path().join(format!("{op:?}.ome.zarr"));
        let faulty = PyramidOptions {
            store: StoreOptions::default().with_fault(fault(op, 5, 3, busy)),
            ..opts.clone()
        };
        write_ome_zarr(&path, &signal, &faulty, &exec()).unwrap();
        assert_eq!(files(&path), files(&clean), "{op:?}");
    }
}

#[test]
fn a_failed_write_is_no_image_and_resume_completes_it_identically() {
    let dir = tempfile::tempdir().unwrap();
    let signal = signal_of(DType::F32, &[3, 45, 37]);
    for version in [OmeVersion::V04, OmeVersion::V05] {
        let opts = PyramidOptions {
            version,
            method: PyramidMethod::Gaussian,
            chunk: 8,
            levels: Some(4),
            ..PyramidOptions::default()
        };
        let root_doc = match version {
            OmeVersion::V04 => ".zattrs",
            OmeVersion::V05 => "zarr.json",
        };
        let clean = dir
            .path()
            .join(format!("clean-{}.ome.zarr", version.as_str()));
        let report = write_ome_zarr(&clean, &signal, &opts, &exec()).unwrap();
        let total = report.chunks_written;
        for n in [0, 3, 40, 90, total as u64] {
            let path = dir
                .path()
                .join(format!("{}-{n}.ome.zarr", version.as_str()));
            let faulty = PyramidOptions {
                store: StoreOptions::default()
                    .with_retry(RetryPolicy::no_retry())
                    .with_fault(fault(Operation::Rename, n, u64::MAX, denied)),
                ..opts.clone()
            };
            let err = write_ome_zarr(&path, &signal, &faulty, &exec()).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(
                temporaries(&path).is_empty(),
                "{n}: {:?}",
                temporaries(&path)
            );
            assert!(
                !path.join(root_doc).exists(),
                "{n}: the root document comes last"
            );
            assert!(!path.join(".zgroup").exists(), "{n}");
            if n > 0 {
                assert!(path.join(INCOMPLETE_MARKER).exists(), "{n}");
            }
            let resume = PyramidOptions {
                resume: true,
                ..opts.clone()
            };
            let report = write_ome_zarr(&path, &signal, &resume, &exec()).unwrap();
            assert_eq!(report.chunks_written + report.chunks_skipped, total, "{n}");
            assert_eq!(
                files(&path),
                files(&clean),
                "{} after {n}",
                version.as_str()
            );
            // A finished pyramid of the same job: resume has nothing to do.
            let again = write_ome_zarr(&path, &signal, &resume, &exec()).unwrap();
            assert_eq!((again.chunks_written, again.chunks_skipped), (0, total));
        }
    }
}

#[test]
fn bad_requests_fail_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let f32_signal = signal_of(DType::F32, &[2, 16, 16]);
    let complex = Signal::from_lazy(lazy_of(DType::C64, &[2, 8, 8], &[1, 8, 8]), 2, "c");
    let cases: Vec<(&str, Signal, PyramidOptions, &str)> = vec![
        (
            "complex",
            complex,
            PyramidOptions::default(),
            "real numbers",
        ),
        (
            "shard-v04",
            f32_signal.clone(),
            PyramidOptions {
                shard: Some(2),
                ..PyramidOptions::default()
            },
            "Zarr v3",
        ),
        (
            "zlib-v05",
            f32_signal.clone(),
            PyramidOptions {
                version: OmeVersion::V05,
                compressor: ZspyCompressor::Zlib(6),
                ..PyramidOptions::default()
            },
            "zlib",
        ),
        (
            "first-axis",
            f32_signal.clone(),
            PyramidOptions {
                axes: Some(vec![0, 1]),
                ..PyramidOptions::default()
            },
            "last",
        ),
    ];
    for (name, signal, opts, why) in cases {
        let path = dir.path().join(format!("{name}.ome.zarr"));
        let err = write_ome_zarr(&path, &signal, &opts, &exec())
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{name}: {err}");
        assert!(err.contains(&path.display().to_string()), "{name}: {err}");
        assert!(!path.exists(), "{name}: something was written");
    }
    let path = dir.path().join("exists.ome.zarr");
    write_ome_zarr(&path, &f32_signal, &PyramidOptions::default(), &exec()).unwrap();
    let before = files(&path);
    let err = write_ome_zarr(&path, &f32_signal, &PyramidOptions::default(), &exec()).unwrap_err();
    assert!(err.to_string().contains("--overwrite"), "{err}");
    assert_eq!(files(&path), before);
}

const ENV_JOB: &str = "LAZYSPY_OME_MEMORY_JOB";
const ENV_OUT: &str = "LAZYSPY_OME_MEMORY_OUT";
const BUDGET: u64 = 128 << 20;

/// The child side of the memory tests: does nothing unless the parent set the variables.
/// `stack`: 512 MiB of float32 (32, 2048, 2048) in one-image chunks. `wide`: one 1 GiB
/// float32 image (16384 x 16384) made in 256 x 256 chunks, whose pyramid has 7 levels.
#[test]
fn memory_job_child() {
    let (Ok(job), Ok(out)) = (std::env::var(ENV_JOB), std::env::var(ENV_OUT)) else {
        return;
    };
    let (shape, chunks, levels) = match job.as_str() {
        "stack" => ([32usize, 2048, 2048], [1usize, 2048, 2048], Some(4)),
        "wide" => ([1, 16384, 16384], [1, 256, 256], None),
        other => panic!("unknown job {other}"),
    };
    let data = LazyArray::<f32>::from_fn(&shape, &chunks, |r| {
        Ok(ArrayD::from_shape_fn(IxDyn(&r.shape()), |ix| {
            ((ix[1] + r.start[1]) % 97 + (ix[2] + r.start[2]) % 89 + r.start[0]) as f32
        }))
    })
    .unwrap();
    let signal = Signal::from_lazy(data.into_dyn(), 2, "big");
    let opts = PyramidOptions {
        levels,
        ..PyramidOptions::default()
    };
    let config = ExecConfig::default()
        .with_threads(2)
        .with_memory_budget(BUDGET);
    let report = write_ome_zarr(&out, &signal, &opts, &config)
        .unwrap_or_else(|e| panic!("the pyramid write failed: {e}"));
    let top = report.levels.last().unwrap();
    assert!(
        top.shape[1] <= 256 && top.shape[2] <= 256,
        "{:?}",
        top.shape
    );
    let peak = lazyspy::exec::peak_resident_bytes().expect("VmHWM in /proc/self/status");
    println!("OMEMEM {peak} {}", report.fold_peak_bytes);
}

/// Runs `job` in a child process; returns its peak RSS.
#[cfg(target_os = "linux")]
fn memory_job(job: &str, out: &Path) -> u64 {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "memory_job_child",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ENV_JOB, job)
        .env(ENV_OUT, out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split("OMEMEM ").nth(1))
        .unwrap_or_else(|| panic!("no OMEMEM line in {stdout}"));
    let mut parts = line.split_whitespace().map(|x| x.parse::<u64>().unwrap());
    let (peak, fold) = (parts.next().unwrap(), parts.next().unwrap());
    eprintln!(
        "pyramid job {job} under a {} MiB budget: peak RSS {} MiB (accumulators {} MiB)",
        BUDGET >> 20,
        peak >> 20,
        fold >> 20
    );
    assert!(
        peak < BUDGET,
        "{job}: peak RSS {} MiB over the {} MiB budget",
        peak >> 20,
        BUDGET >> 20
    );
    peak
}

#[test]
#[cfg(target_os = "linux")]
fn a_pyramid_of_four_times_the_budget_stays_within_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.ome.zarr");
    memory_job("stack", &out);
    // Every level was really written: the last one holds 32 x 1 x 1 chunks of 256².
    assert!(out.join("3/31/0/0").is_file());
}

/// One image 8 times the budget, made in small chunks: the engine's blocks are square
/// tiles, so the accumulators of the upper levels do not stay open across whole rows of
/// the image.
#[test]
#[cfg(target_os = "linux")]
fn a_pyramid_of_one_image_eight_times_the_budget_stays_within_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wide.ome.zarr");
    memory_job("wide", &out);
    assert!(out.join("6/0/0/0").is_file());
    assert!(out.join("0/0/63/63").is_file());
}
