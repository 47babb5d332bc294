//! The `lazyspy` binary end to end on small data: every command's output checked against
//! the library, and error exits (status, one line naming the problem, never a panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lazyspy::filters::{GaussianParams, gaussian_filter};
use lazyspy::signal::{Signal, ZspyWriteOptions, open_zspy_data, write_zspy};
use lazyspy::{DynArray, ExecConfig, LazyArray};
use ndarray::ArrayD;

fn lazyspy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lazyspy"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/hyperspy")
        .join(name)
        .display()
        .to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed run: non-zero status and one line on stderr containing `needle`, no panic.
fn assert_fails(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected a failure; stdout {}",
        stdout(o)
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{err}");
    assert!(err.contains(needle), "'{needle}' not in: {err}");
}

fn read_values(path: &Path) -> DynArray {
    let (_, data) = open_zspy_data(path).unwrap().remove(0);
    data.compute_with(&ExecConfig::default()).unwrap()
}

/// A small float32 stack (5 images of 40x36) written as .zspy.
fn make_stack(dir: &Path) -> (PathBuf, ArrayD<f32>) {
    let values = ArrayD::from_shape_fn(vec![5, 40, 36], |ix| {
        ((ix[0] * 7 + ix[1] * 3 + ix[2]) % 17) as f32
    });
    let data = LazyArray::from_array(values.clone(), &[1, 40, 36]).unwrap();
    let path = dir.join("stack.zspy");
    write_zspy(
        &path,
        &Signal::from_lazy(data.into_dyn(), 2, "stack"),
        &ZspyWriteOptions::default(),
        &ExecConfig::default(),
    )
    .unwrap();
    (path, values)
}

#[test]
fn info_prints_text_and_json() {
    let o = lazyspy(&["info", &fixture("stem4d_u16.zspy")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "uint16",
        "[4, 5, 16, 16]",
        "kx",
        "1/nm",
        "navigate",
        "title",
    ] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
    let o = lazyspy(&["info", "--json", &fixture("image_u8.zspy")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &j["signals"][0];
    assert_eq!(j["format"], "zspy");
    assert_eq!(s["shape"], serde_json::json!([24, 32]));
    assert_eq!(s["dtype"], "uint8");
    assert_eq!(s["chunks"], serde_json::json!([24, 32]));
    assert_eq!(s["axes"][0]["name"], "kx");
    assert_eq!(s["axes"][1]["scale"], 0.01);
    assert_eq!(s["compressor"]["cname"], "zstd");
    assert_eq!(s["metadata"]["General"]["title"], "Image 2D");
}

#[test]
fn convert_rechunk_and_stats_keep_the_values() {
    let dir = tempfile::tempdir().unwrap();
    let (stack, values) = make_stack(dir.path());
    let out = dir.path().join("c.zspy");
    let o = lazyspy(&[
        "--no-progress",
        "convert",
        stack.to_str().unwrap(),
        out.to_str().unwrap(),
        "--compressor",
        "zstd:3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("wrote"), "{}", stdout(&o));
    assert_eq!(read_values(&out), DynArray::from_array(values.clone()));

    let re = dir.path().join("r.zspy");
    let o = lazyspy(&[
        "--quiet",
        "rechunk",
        out.to_str().unwrap(),
        re.to_str().unwrap(),
        "--chunks",
        "5,8,8",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "--quiet prints nothing");
    let (tree, _) = open_zspy_data(&re).unwrap().remove(0);
    assert_eq!(tree.data.chunks, vec![5, 8, 8]);
    assert_eq!(read_values(&re), DynArray::from_array(values.clone()));

    let o = lazyspy(&["stats", "--json", re.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &j["signals"][0];
    let sum: f64 = values.iter().map(|&v| v as f64).sum();
    assert_eq!(s["count"], values.len());
    assert_eq!(s["min"], 0.0);
    assert_eq!(s["max"], 16.0);
    assert_eq!(s["sum"], sum);
    assert!((s["mean"].as_f64().unwrap() - sum / values.len() as f64).abs() < 1e-12);
}

#[test]
fn filter_gaussian_equals_the_eager_filter() {
    let dir = tempfile::tempdir().unwrap();
    let (stack, values) = make_stack(dir.path());
    let out = dir.path().join("g.zspy");
    let o = lazyspy(&[
        "--json",
        "--memory-limit",
        "64MiB",
        "filter",
        "gaussian",
        "--sigma",
        "2,3",
        "--mode",
        "nearest",
        stack.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["chunks_written"], 5);
    let params = GaussianParams::new(vec![2.0, 3.0], vec![1, 2])
        .with_mode(lazyspy::filters::BoundaryMode::Nearest);
    let expected = gaussian_filter(values.view(), &params).unwrap();
    let got = read_values(&out).cast_to::<f32>();
    let worst = got
        .iter()
        .zip(expected.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "max difference {worst}");
}

#[test]
fn errors_are_one_line_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (stack, _) = make_stack(dir.path());
    let s = stack.to_str().unwrap();
    let out = dir.path().join("o.zspy");
    let o_ = out.to_str().unwrap();
    assert_fails(
        &lazyspy(&["info", "/nonexistent/x.zspy"]),
        "/nonexistent/x.zspy",
    );
    assert_fails(
        &lazyspy(&["convert", s, s, "--overwrite"]),
        "the output is the input",
    );
    assert_fails(&lazyspy(&["convert", s, "x.txt"]), ".zspy or .hspy");
    assert_fails(
        &lazyspy(&["convert", s, o_, "--compressor", "brotli:3"]),
        "unknown compressor",
    );
    assert_fails(
        &lazyspy(&["convert", s, o_, "--chunks", "1,0,4"]),
        "positive",
    );
    assert_fails(&lazyspy(&["convert", s, o_, "--chunks", "1,4"]), "chunks");
    assert!(!out.exists(), "failed writes leave no output");
    assert!(
        lazyspy(&["--no-progress", "convert", s, o_])
            .status
            .success()
    );
    assert_fails(&lazyspy(&["convert", s, o_]), "--overwrite");
    assert_fails(
        &lazyspy(&["filter", "gaussian", "--sigma", "1,2,3", s, "g.zspy"]),
        "--sigma has 3 values",
    );
    assert_fails(
        &lazyspy(&[
            "filter", "gaussian", "--sigma", "1", "--mode", "bogus", s, "g.zspy",
        ]),
        "--mode 'bogus'",
    );
    assert_fails(&lazyspy(&["--memory-limit", "lots", "info", s]), "lots");
    // A corrupt chunk fails the conversion naming the file and the chunk.
    let chunk = stack.join("Experiments/stack/data/2/0/0");
    std::fs::write(&chunk, b"not a blosc frame").unwrap();
    let bad = dir.path().join("bad.zspy");
    let o = lazyspy(&["convert", s, bad.to_str().unwrap()]);
    assert_fails(&o, "stack.zspy");
    assert!(
        stderr(&o).contains("2/0/0") || stderr(&o).contains("[2, 0, 0]"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn demo_runs_the_scan_map_job_on_a_small_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = lazyspy(&[
        "--no-progress",
        "demo",
        d,
        "--images",
        "3",
        "--size",
        "96",
        "--sigma",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("peak resident memory"),
        "{}",
        stdout(&o)
    );
    let got = read_values(&dir.path().join("filtered.zspy")).cast_to::<f32>();
    assert_eq!(got.shape(), &[3, 96, 96]);
    for i in 0..3 {
        let image = lazyspy::io::images::demo_scan_image(i, 96).into_dyn();
        let params = GaussianParams::new(vec![2.0, 2.0], vec![0, 1]);
        let expected = gaussian_filter(image.view(), &params).unwrap();
        let worst = got
            .index_axis(ndarray::Axis(0), i)
            .iter()
            .zip(expected.iter())
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "image {i}: relative difference {worst}");
    }
    // A second run reuses the scans and replaces the output.
    let o = lazyspy(&[
        "--quiet", "demo", d, "--images", "3", "--size", "96", "--sigma", "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_image_glob_converts_to_zspy_with_axes() {
    let dir = tempfile::tempdir().unwrap();
    let scans = dir.path().join("scans");
    lazyspy::io::images::make_demo_scans(&scans, 4, 32).unwrap();
    let pattern = format!("{}/*.tif", scans.display());
    let out = dir.path().join("stack.zspy");
    let o = lazyspy(&["--quiet", "convert", &pattern, out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = read_values(&out).cast_to::<f32>();
    for i in 0..4 {
        let expected = lazyspy::io::images::demo_scan_image(i, 32);
        assert_eq!(got.index_axis(ndarray::Axis(0), i), expected.into_dyn());
    }
    let o = lazyspy(&["info", "--json", out.to_str().unwrap()]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let axes = &j["signals"][0]["axes"];
    assert_eq!(axes[0]["navigate"], true);
    assert_eq!(axes[1]["navigate"], false);
    assert_eq!(axes[2]["navigate"], false);
    assert_fails(
        &lazyspy(&["info", &format!("{}/*.png", scans.display())]),
        "*.png",
    );
}
