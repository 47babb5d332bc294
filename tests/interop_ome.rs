//! OME-Zarr interop (issue 6): pyramids written by `lazyspy pyramid` validate with the
//! `ome-zarr-models` Python package for both versions (0.4 on Zarr v2, 0.5 on Zarr v3) and
//! read back with `ome-zarr` (ome-zarr-py) and zarr-python 3 with the expected shapes, scales,
//! translations, axes and values: `tests/interop/ome_check.py` checks each level against a
//! NumPy/SciPy reference downsampling of the level above (the contract of
//! `src/signal/ome_zarr`), and level 0 against the input.
//!
//! Inputs: `.npy` stacks made here with odd sizes (several chunks of 64 and edge chunks) in
//! float32 and uint16, for every method and both versions, a sharded v0.5 pyramid, and
//! HyperSpy `.zspy` fixtures with units, offsets and 3 to 5 axes (their axes give the OME axis
//! names, types and units the contract derives). The other way round, images written by
//! ome-zarr-py (v0.4 and v0.5, dataset paths `s0`, `s1`, ...) are read by `lazyspy info` and
//! `lazyspy stats`.
//!
//! The checker itself is tested both ways without lazyspy (`ome_check_selftest.py`): pyramids
//! from a reference writer pass, altered copies (a chunk, a scale, a translation, an axis
//! type, dimension names, a level, the incomplete marker, rounding) fail.
//!
//! Python is the OME venv of `.ci/ome-venv.sh` (ome-zarr-models 1.7, ome-zarr 0.18,
//! zarr 3.1), found by `support/python.rs`: with `CI=true` these tests fail when it is
//! missing, otherwise they print a skip note.

#[path = "support/python.rs"]
mod python;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value as J;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn interop(file: &str) -> PathBuf {
    manifest_dir().join("tests/interop").join(file)
}

fn lazyspy() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lazyspy"))
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_lazyspy<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(lazyspy())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run lazyspy")
}

/// Runs `lazyspy ARGS` and parses its standard output as JSON; panics on failure.
fn lazyspy_json<S: AsRef<OsStr>>(args: &[S]) -> J {
    let out = run_lazyspy(args);
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    assert!(
        out.status.success(),
        "lazyspy {} failed:\n{}",
        shown.join(" "),
        output_text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "lazyspy {}: stdout is not JSON ({e}):\n{}",
            shown.join(" "),
            output_text(&out)
        )
    })
}

/// Runs a Python snippet (`-c`) with arguments; returns stdout, panics on failure.
fn run_py(py: &Path, code: &str, args: &[&OsStr]) -> String {
    let out = Command::new(py)
        .arg("-c")
        .arg(code)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python snippet failed:\n{code}\n{}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `ome_check.py PATH EXTRA...`: `Ok(report)` on exit 0, `Err(report)` on exit 1; any
/// other exit (usage error, crash) panics.
fn ome_check(py: &Path, path: &Path, extra: &[String]) -> Result<String, String> {
    let out = Command::new(py)
        .arg(interop("ome_check.py"))
        .arg(path)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run ome_check.py");
    let text = output_text(&out);
    match out.status.code() {
        Some(0) => Ok(text),
        Some(1) => Err(text),
        c => panic!("ome_check.py {} exited with {c:?}:\n{text}", path.display()),
    }
}

// ---------------------------------------------------------------------------------------------
// What the contract says the OME axes of a HyperSpy signal are.

/// The contract's HyperSpy unit -> UDUNITS name; `None` for a unit without one.
fn udunits(u: &str) -> Option<&'static str> {
    Some(match u {
        "nm" | "nanometer" => "nanometer",
        "µm" | "um" | "μm" | "micrometer" => "micrometer",
        "mm" | "millimeter" => "millimeter",
        "m" | "meter" => "meter",
        "pm" | "picometer" => "picometer",
        "Å" | "A" | "angstrom" => "angstrom",
        "s" | "second" => "second",
        "ms" | "millisecond" => "millisecond",
        "µs" | "us" | "microsecond" => "microsecond",
        "ns" | "nanosecond" => "nanosecond",
        "ps" | "picosecond" => "picosecond",
        "min" | "minute" => "minute",
        "h" | "hour" => "hour",
        _ => return None,
    })
}

fn is_length(u: Option<&str>) -> bool {
    matches!(
        u,
        Some("nanometer" | "micrometer" | "millimeter" | "meter" | "picometer" | "angstrom")
    )
}

fn is_time(u: Option<&str>) -> bool {
    matches!(
        u,
        Some(
            "second"
                | "millisecond"
                | "microsecond"
                | "nanosecond"
                | "picosecond"
                | "minute"
                | "hour"
        )
    )
}

/// One expected OME axis.
#[derive(Debug, Clone)]
struct OmeAxis {
    name: String,
    kind: Option<&'static str>,
    unit: Option<&'static str>,
    scale: f64,
    offset: f64,
}

/// The OME axes the contract gives the HyperSpy axes `axes` (as `lazyspy info --json` lists
/// them, in array order) when the last two are downsampled.
fn expected_axes(axes: &[J]) -> Vec<OmeAxis> {
    let n = axes.len();
    let units: Vec<Option<&'static str>> = axes
        .iter()
        .map(|a| a["units"].as_str().and_then(udunits))
        .collect();
    let mut kinds: Vec<Option<&'static str>> = vec![None; n];
    let mut space = vec![n - 2, n - 1];
    if n >= 3 && is_length(units[n - 3]) {
        space.insert(0, n - 3);
    }
    for &a in &space {
        kinds[a] = Some("space");
    }
    let mut others = Vec::new();
    for a in 0..space[0] {
        if is_time(units[a]) {
            assert_eq!(a, 0, "test input with a time axis that is not first");
            kinds[a] = Some("time");
        } else {
            others.push(a);
        }
    }
    assert!(others.len() <= 2, "test input with too many non-space axes");
    if others.len() == 2 {
        kinds[others[0]] = Some("channel");
    }
    let hs_names: Vec<&str> = axes
        .iter()
        .map(|a| a["name"].as_str().unwrap_or(""))
        .collect();
    let distinct = hs_names
        .iter()
        .enumerate()
        .all(|(i, x)| !hs_names[..i].contains(x));
    let keep = distinct
        && hs_names
            .iter()
            .all(|x| !x.is_empty() && *x != "<undefined>");
    let names: Vec<String> = (0..n)
        .map(|a| {
            if keep {
                return hs_names[a].to_string();
            }
            match kinds[a] {
                Some("space") => ["z", "y", "x"][3 - (n - a)].to_string(),
                Some("time") => "t".into(),
                Some("channel") => "c".into(),
                _ => format!("dim{a}"),
            }
        })
        .collect();
    (0..n)
        .map(|a| OmeAxis {
            name: names[a].clone(),
            kind: kinds[a],
            unit: units[a],
            scale: axes[a]["scale"].as_f64().unwrap_or(1.0),
            offset: axes[a]["offset"].as_f64().unwrap_or(0.0),
        })
        .collect()
}

/// `ome_check.py` options that pin the axes, level-0 scale and translation.
fn axes_args(axes: &[OmeAxis]) -> Vec<String> {
    let spec: Vec<String> = axes
        .iter()
        .map(|a| {
            format!(
                "{}:{}:{}",
                a.name,
                a.kind.unwrap_or(""),
                a.unit.unwrap_or("")
            )
        })
        .collect();
    let join = |f: &dyn Fn(&OmeAxis) -> f64| -> String {
        axes.iter()
            .map(|a| format!("{:?}", f(a)))
            .collect::<Vec<_>>()
            .join(",")
    };
    // `--opt=value`: a value may start with '-' (a negative offset).
    vec![
        format!("--expect-axes={}", spec.join(",")),
        format!("--expect-scale0={}", join(&|a| a.scale)),
        format!("--expect-translation0={}", join(&|a| a.offset)),
    ]
}

/// The first signal's axes and shape as `lazyspy info --json` gives them.
fn info_axes(input: &Path) -> (Vec<J>, Vec<u64>) {
    let info = lazyspy_json(&[OsStr::new("info"), OsStr::new("--json"), input.as_os_str()]);
    let s = &info["signals"][0];
    let axes = s["axes"].as_array().expect("axes").clone();
    let shape = s["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    (axes, shape)
}

/// Runs `lazyspy pyramid IN OUT --levels 4 --chunks 64 --method M --version V EXTRA --json`,
/// checks its JSON report's level paths and shapes, and returns OUT.
fn pyramid(input: &Path, out: &Path, method: &str, version: &str, extra: &[&str]) -> PathBuf {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("pyramid"),
        input.as_os_str(),
        out.as_os_str(),
        OsStr::new("--levels"),
        OsStr::new("4"),
        OsStr::new("--method"),
        OsStr::new(method),
        OsStr::new("--version"),
        OsStr::new(version),
        OsStr::new("--chunks"),
        OsStr::new("64"),
        OsStr::new("--no-progress"),
        OsStr::new("--json"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    let report = lazyspy_json(&args);
    let (_, shape0) = info_axes(input);
    let levels = report["levels"]
        .as_array()
        .unwrap_or_else(|| panic!("pyramid --json has no levels: {report}"));
    assert_eq!(levels.len(), 4, "{report}");
    let n = shape0.len();
    let mut shape = shape0;
    for (k, l) in levels.iter().enumerate() {
        assert_eq!(l["path"], J::from(k.to_string()), "{report}");
        let got: Vec<u64> = l["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(got, shape, "level {k} shape in the --json report: {report}");
        shape[n - 2] = shape[n - 2].div_ceil(2);
        shape[n - 1] = shape[n - 1].div_ceil(2);
    }
    assert!(report["seconds"].is_number(), "{report}");
    assert!(report["peak_rss_bytes"].is_number(), "{report}");
    out.to_path_buf()
}

/// The checker options for a pyramid of `input` made by [`pyramid`]: levels, chunks, level 0
/// equal to `source`, the axes the contract derives from the input's, and the multiscale's
/// name (the signal's title, or "image" when it has none).
fn check_args(input: &Path, source: &Path, method: &str, version: &str) -> Vec<String> {
    let info = lazyspy_json(&[OsStr::new("info"), OsStr::new("--json"), input.as_os_str()]);
    let title = info["signals"][0]["title"].as_str().unwrap_or("");
    let name = if title.is_empty() { "image" } else { title };
    let (axes, _) = info_axes(input);
    let mut v: Vec<String> = [
        "--method",
        method,
        "--expect-version",
        version,
        "--expect-levels",
        "4",
        "--chunks",
        "64",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("--source".into());
    v.push(source.display().to_string());
    v.extend(axes_args(&expected_axes(&axes)));
    v.push(format!("--expect-name={name}"));
    v
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lazyspy-ome-")
        .tempdir()
        .expect("temp dir")
}

/// Deterministic `.npy` inputs with odd sizes: `f32.npy` (3, 301, 517) float32, smooth plus
/// noise with a few negative values, and `u16.npy` (2, 301, 517) uint16 over the full range.
fn make_npy_inputs(py: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let code = r#"
import sys, os
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(6)
y, x = np.mgrid[0:301, 0:517]
smooth = np.sin(y / 17.0) * np.cos(x / 23.0) * 1000.0
f32 = np.stack([smooth + k * 10 + rng.normal(0, 5, smooth.shape) for k in range(3)])
np.save(os.path.join(d, "f32.npy"), f32.astype(np.float32))
np.save(os.path.join(d, "u16.npy"), rng.integers(0, 65536, (2, 301, 517), dtype=np.uint16))
"#;
    run_py(py, code, &[dir.as_os_str()]);
    (dir.join("f32.npy"), dir.join("u16.npy"))
}

fn assert_no_failures(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{what}: {} failure(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------

/// The checker accepts contract pyramids and rejects altered copies (no lazyspy involved).
#[test]
fn ome_check_accepts_reference_pyramids_and_rejects_altered_ones() {
    let Some(py) = python::require_ome_python("ome_check_accepts_reference_pyramids") else {
        return;
    };
    let dir = tempdir();
    let out = Command::new(&py)
        .arg(interop("ome_check_selftest.py"))
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run ome_check_selftest.py");
    let text = output_text(&out);
    assert!(out.status.success(), "checker self-test failed:\n{text}");
    // The self-test must really have run its cases (both ways).
    assert!(text.matches("accept ").count() >= 13, "{text}");
    assert!(text.matches("reject ").count() >= 20, "{text}");
}

/// Every method x version x dtype on odd-sized `.npy` stacks with several and edge chunks.
#[test]
fn npy_pyramids_validate_with_ome_zarr_models_and_read_back() {
    let Some(py) = python::require_ome_python("npy_pyramids_validate") else {
        return;
    };
    let dir = tempdir();
    let (f32_npy, u16_npy) = make_npy_inputs(&py, dir.path());
    let mut failures = Vec::new();
    for version in ["0.4", "0.5"] {
        for method in ["mean", "nearest", "gaussian"] {
            for input in [&f32_npy, &u16_npy] {
                let stem = input.file_stem().unwrap().to_string_lossy().into_owned();
                let out = dir
                    .path()
                    .join(format!("{stem}-{method}-v{version}.ome.zarr"));
                pyramid(input, &out, method, version, &[]);
                let args = check_args(input, input, method, version);
                if let Err(report) = ome_check(&py, &out, &args) {
                    failures.push(format!("{stem} {method} v{version}:\n{report}"));
                }
            }
        }
    }
    assert_no_failures("npy pyramids", &failures);
}

/// v0.5 with `--shard 2`: shards of 2 x 2 chunks, inner chunks of 64.
#[test]
fn sharded_v05_pyramid_validates() {
    let Some(py) = python::require_ome_python("sharded_v05_pyramid_validates") else {
        return;
    };
    let dir = tempdir();
    let (f32_npy, u16_npy) = make_npy_inputs(&py, dir.path());
    let mut failures = Vec::new();
    for (input, method) in [(&f32_npy, "mean"), (&u16_npy, "gaussian")] {
        let out = dir.path().join(format!("{method}-sharded.ome.zarr"));
        pyramid(input, &out, method, "0.5", &["--shard", "2"]);
        let mut args = check_args(input, input, method, "0.5");
        args.extend(["--shard".to_string(), "2".to_string()]);
        if let Err(report) = ome_check(&py, &out, &args) {
            failures.push(report);
        }
    }
    assert_no_failures("sharded v0.5 pyramids", &failures);
}

/// HyperSpy `.zspy` fixtures with units and offsets: a 3-D spectrum image (its axis before
/// the downsampled ones is a length: three space axes), a 4-D STEM stack in uint16 (a custom
/// axis before three space axes) and a 5-D int32 stack (channel, custom, three space axes).
#[test]
fn hyperspy_fixture_pyramids_validate_with_their_axes() {
    let Some(py) = python::require_ome_python("hyperspy_fixture_pyramids_validate") else {
        return;
    };
    let dir = tempdir();
    let fixtures = manifest_dir().join("tests/data/hyperspy");
    let mut failures = Vec::new();
    for (name, group) in [
        ("spectrum_image_f32", "Spectrum image"),
        ("stem4d_u16", "4D-STEM"),
        ("nd5_i32", "Five dimensional"),
    ] {
        let input = fixtures.join(format!("{name}.zspy"));
        // Level 0 must equal the fixture's data array (zarr-python 3 reads Zarr v2).
        let source = dir.path().join(format!("{name}.npy"));
        let data = input.join("Experiments").join(group).join("data");
        run_py(
            &py,
            "import sys, numpy as np, zarr\n\
             np.save(sys.argv[2], zarr.open_array(sys.argv[1], mode='r', zarr_format=2)[...])",
            &[data.as_os_str(), source.as_os_str()],
        );
        for version in ["0.4", "0.5"] {
            for method in ["mean", "nearest"] {
                let out = dir
                    .path()
                    .join(format!("{name}-{method}-v{version}.ome.zarr"));
                pyramid(&input, &out, method, version, &[]);
                let args = check_args(&input, &source, method, version);
                if let Err(report) = ome_check(&py, &out, &args) {
                    failures.push(format!("{name} {method} v{version}:\n{report}"));
                }
            }
        }
    }
    assert_no_failures("fixture pyramids", &failures);
}

/// Images written by ome-zarr-py (its `write_image`, local mean, dataset paths `s0`, `s1`,
/// `s2`) read in lazyspy: `info --json` gives level 0's shape, axes (names, scales,
/// translations as offsets, units mapped back, the last two axes in the signal space) and
/// `stats --json` its sum.
#[test]
fn ome_zarr_py_images_read_in_lazyspy() {
    let Some(py) = python::require_ome_python("ome_zarr_py_images_read_in_lazyspy") else {
        return;
    };
    let dir = tempdir();
    let code = r#"
import json, sys, warnings
import numpy as np, zarr
from ome_zarr.writer import write_image
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.scale import Methods
warnings.simplefilter("ignore")
out, ver = sys.argv[1], sys.argv[2]
y, x = np.mgrid[0:100, 0:130]
data = np.stack([np.sin(y / 7) * np.cos(x / 5) * 100 + k for k in range(2)]).astype(np.float32)
fmt = FormatV04() if ver == "0.4" else FormatV05()
root = zarr.open_group(out, mode="w", zarr_format=fmt.zarr_format)
write_image(data, root, fmt=fmt, axes=["c", "y", "x"], scale={"y": 0.5, "x": 0.25},
            axes_units={"y": "micrometer", "x": "micrometer"}, scale_factors=[2, 4],
            method=Methods.LOCAL_MEAN, storage_options=dict(chunks=(1, 64, 64)))
print(json.dumps({"sum": float(data.astype(np.float64).sum()), "shape": list(data.shape)}))
"#;
    let mut failures = Vec::new();
    for version in ["0.4", "0.5"] {
        let out = dir.path().join(format!("ome-zarr-py-v{version}.ome.zarr"));
        let made: J =
            serde_json::from_str(run_py(&py, code, &[out.as_os_str(), OsStr::new(version)]).trim())
                .expect("snippet prints JSON");
        let info = run_lazyspy(&[OsStr::new("info"), OsStr::new("--json"), out.as_os_str()]);
        if !info.status.success() {
            failures.push(format!("v{version}: lazyspy info:\n{}", output_text(&info)));
            continue;
        }
        let info: J = serde_json::from_slice(&info.stdout).expect("info JSON");
        let s = &info["signals"][0];
        if s["shape"] != made["shape"] {
            failures.push(format!(
                "v{version}: info shape {} != {}",
                s["shape"], made["shape"]
            ));
        }
        let axes = s["axes"].as_array().cloned().unwrap_or_default();
        let want = [
            ("c", 1.0, true, None),
            ("y", 0.5, false, Some("µm")),
            ("x", 0.25, false, Some("µm")),
        ];
        if axes.len() != 3 {
            failures.push(format!("v{version}: axes {axes:?}"));
        } else {
            for (a, (name, scale, navigate, unit)) in axes.iter().zip(want) {
                let ok = a["name"] == name
                    && a["scale"].as_f64() == Some(scale)
                    && a["offset"].as_f64() == Some(0.0)
                    && a["navigate"] == navigate
                    && (unit.is_none() || a["units"] == unit.unwrap());
                if !ok {
                    failures.push(format!(
                        "v{version}: axis {a}, expected name {name} scale {scale} offset 0 \
                         navigate {navigate} units {unit:?}"
                    ));
                }
            }
        }
        let stats = run_lazyspy(&[
            OsStr::new("stats"),
            OsStr::new("--json"),
            OsStr::new("--no-progress"),
            out.as_os_str(),
        ]);
        if !stats.status.success() {
            failures.push(format!(
                "v{version}: lazyspy stats:\n{}",
                output_text(&stats)
            ));
            continue;
        }
        let stats: J = serde_json::from_slice(&stats.stdout).expect("stats JSON");
        let got = stats["signals"][0]["sum"].as_f64();
        let want = made["sum"].as_f64().unwrap();
        if !got.is_some_and(|g| (g - want).abs() <= 1e-9 * want.abs().max(1.0)) {
            failures.push(format!("v{version}: stats sum {got:?}, expected {want}"));
        }
        if stats["signals"][0]["shape"] != made["shape"] {
            failures.push(format!(
                "v{version}: stats shape {}",
                stats["signals"][0]["shape"]
            ));
        }
    }
    assert_no_failures("ome-zarr-py images in lazyspy", &failures);
}
