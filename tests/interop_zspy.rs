//! Interop with the reference implementation: what `lazyspy convert` writes must read back in
//! RosettaSciIO 0.15.0 / HyperSpy 2.5.0 exactly as the original HyperSpy file does.
//!
//! For every `.zspy` fixture of `tests/data/hyperspy` (and of `shared/fixtures/rsciio-legacy`,
//! which has sidecars too) the binary converts the fixture to a new `.zspy`, and
//! `tests/interop/zspy_check.py` loads the result with RosettaSciIO (eager and lazy) and
//! `hs.load`, comparing data (SHA-256 and summaries), axes, metadata, original_metadata,
//! attributes, learning_results and models with the fixture's `.expected.json` sidecar. The
//! `FileIO` record is ignored (`--ignore-fileio`): a writer may append its own. The
//! experiment groups' `package`/`package_version` must be kept as read (HyperSpy's own
//! re-save writes its version instead; the checker's `--ignore-package-version` would allow
//! that). A list stored as a `_list_N_` group of 11 or more items may come back either in the
//! sidecar's order or with quirk Q1 applied a second time, which is what HyperSpy's own
//! load + save gives (the checker prints a note).
//!
//! The checker itself is tested both ways: every untouched fixture passes it, and copies with
//! one chunk, one axis scale or one metadata value changed, or a stale `.zmetadata`, fail it.
//! Converted files must carry a `.zmetadata` consistent with their metadata files.
//!
//! Python comes from `support/python.rs`: with `CI=true` these tests fail when it is
//! missing, otherwise they print a skip note. The legacy fixtures are looked up in
//! `$LAZYSPY_SHARED_FIXTURES` or `../shared/fixtures` next to the repository; with `CI=true`
//! a missing directory fails the tests that use it.

#[path = "support/python.rs"]
mod python;
mod support;
use support::sidecar::{files_with_ext, fixtures_dir, legacy_dir, sidecar_of};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value as J;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn checker() -> PathBuf {
    manifest_dir().join("tests/interop/zspy_check.py")
}

fn lazyspy() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lazyspy"))
}

fn read_sidecar(file: &Path) -> J {
    let p = sidecar_of(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Fixtures in `dir` whose name ends in `.ext` and that have a sidecar, sorted.
fn fixtures_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v = files_with_ext(dir, &[ext]);
    v.retain(|p| sidecar_of(p).is_file());
    v
}

/// Every `.zspy` fixture with a sidecar: the generated ones, then the legacy ones.
fn all_zspy_fixtures() -> Vec<PathBuf> {
    let mut v = fixtures_in(&fixtures_dir(), "zspy");
    assert!(
        v.len() >= 20,
        "expected the HyperSpy .zspy fixtures in {}, found {}",
        fixtures_dir().display(),
        v.len()
    );
    if let Some(dir) = legacy_dir("rsciio-legacy") {
        v.extend(fixtures_in(&dir, "zspy"));
    }
    v
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the checker on `file` against `sidecar`: `Ok(report)` on exit 0, `Err(report)` on
/// exit 1 (differences found). Any other exit (usage error, crash) fails the test.
fn check(py: &Path, file: &Path, sidecar: &Path, extra: &[&str]) -> Result<String, String> {
    let out = Command::new(py)
        .arg(checker())
        .arg(file)
        .arg(sidecar)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run zspy_check.py");
    let text = output_text(&out);
    match out.status.code() {
        Some(0) => Ok(text),
        Some(1) => Err(text),
        other => panic!(
            "zspy_check.py {} exited with {other:?}:\n{text}",
            file.display()
        ),
    }
}

/// Runs `lazyspy ARGS` with no stdin.
fn run_lazyspy(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(lazyspy())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the lazyspy binary")
}

/// `lazyspy --no-progress convert IN OUT [extra]`: `Ok(())` or `Err(message)`.
fn convert(input: &Path, output: &Path, extra: &[&str]) -> Result<(), String> {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--no-progress".as_ref(),
        "convert".as_ref(),
        input.as_os_str(),
        output.as_os_str(),
    ];
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    let out = run_lazyspy(&args);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "lazyspy convert {} -> {} exited with {}: {}",
            input.display(),
            output.display(),
            out.status,
            output_text(&out).trim()
        ))
    }
}

fn fixture_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Converts every fixture in `inputs` to a `.zspy` (with `convert_args`) and checks the
/// result against the fixture's sidecar; returns one line per failure.
fn convert_and_check(
    py: &Path,
    inputs: &[PathBuf],
    convert_args: &[&str],
    out_name: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut passed = 0;
    for input in inputs {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join(out_name);
        if let Err(e) = convert(input, &out, convert_args) {
            failures.push(format!("{}: {e}", fixture_name(input)));
            continue;
        }
        match check(
            py,
            &out,
            &sidecar_of(input),
            &["--ignore-fileio", "--require-consolidated"],
        ) {
            Ok(_) => passed += 1,
            Err(report) => failures.push(format!(
                "{} (converted with {convert_args:?}): {report}",
                fixture_name(input)
            )),
        }
    }
    eprintln!(
        "{passed} of {} conversions with {convert_args:?} read back correctly",
        inputs.len()
    );
    failures
}

/// Panics listing `failures` (conversions that do not read back as the original).
fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} conversions do not read back in RosettaSciIO/HyperSpy as the original:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The checker itself
// ---------------------------------------------------------------------------------------------

/// Every fixture, untouched, passes the checker: the sidecars and the checker agree on what
/// HyperSpy's own files hold (so a failure after conversion is the converter's).
#[test]
fn checker_accepts_every_reference_fixture() {
    let Some(py) = python::require_python("checker_accepts_every_reference_fixture") else {
        return;
    };
    let fixtures = all_zspy_fixtures();
    let failures: Vec<String> = fixtures
        .iter()
        .filter_map(|f| check(&py, f, &sidecar_of(f), &[]).err())
        .collect();
    assert!(
        failures.is_empty(),
        "reference fixtures fail the checker:\n{}",
        failures.join("\n")
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn read_json(p: &Path) -> J {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn write_json(p: &Path, v: &J) {
    std::fs::write(p, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// Sets `key` of the attributes of `group` (a path relative to the store root) to `value`
/// in `group/.zattrs` and, if `consolidated`, in `.zmetadata` too; returns the old value.
fn set_attr(store: &Path, group: &str, key: &str, value: J, consolidated: bool) -> J {
    let zattrs = store.join(group).join(".zattrs");
    let mut attrs = read_json(&zattrs);
    let old = attrs[key].take();
    assert!(!old.is_null(), "{}: no attribute {key}", zattrs.display());
    attrs[key] = value.clone();
    write_json(&zattrs, &attrs);
    let zmeta = store.join(".zmetadata");
    if consolidated && zmeta.is_file() {
        let mut meta = read_json(&zmeta);
        let entry = &mut meta["metadata"][format!("{group}/.zattrs")];
        assert!(
            entry.is_object(),
            "{}: no entry for {group}",
            zmeta.display()
        );
        entry[key] = value;
        write_json(&zmeta, &meta);
    }
    old
}

/// Copies of a fixture with one chunk, one axis scale or one metadata value changed fail the
/// checker, each with a difference naming what changed; the unaltered copy passes.
#[test]
fn checker_rejects_altered_copies() {
    let Some(py) = python::require_python("checker_rejects_altered_copies") else {
        return;
    };
    let fixture = fixtures_dir().join("explicit_chunks.zspy");
    let sidecar = sidecar_of(&fixture);
    let exp = "Experiments/explicit chunks";

    let tmp = tempfile::tempdir().unwrap();
    let fresh = |name: &str| {
        let p = tmp.path().join(name).join("explicit_chunks.zspy");
        copy_dir(&fixture, &p);
        p
    };

    let same = fresh("same");
    if let Err(report) = check(&py, &same, &sidecar, &[]) {
        panic!("an unaltered copy fails the checker:\n{report}");
    }

    // One chunk: another valid chunk of the same array written over it.
    let chunk = fresh("chunk");
    let data = chunk.join(exp).join("data");
    let (a, b) = (data.join("0/0/0"), data.join("0/0/1"));
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::copy(&b, &a).unwrap();

    // One axis scale.
    let axis = fresh("axis");
    let old = set_attr(&axis, &format!("{exp}/axis-2"), "scale", J::from(0.3), true);
    assert_eq!(old, J::from(0.25), "fixture's axis-2 scale");

    // One metadata value.
    let meta = fresh("metadata");
    set_attr(
        &meta,
        &format!("{exp}/metadata/General"),
        "title",
        J::from("altered title"),
        true,
    );

    // A `.zmetadata` that no longer matches the files (zarr-python 3 would read stale
    // metadata): the reader here reads the files, so only the consistency check catches it.
    let stale = fresh("stale");
    set_attr(
        &stale,
        &format!("{exp}/metadata/General"),
        "title",
        J::from("explicit chunks"),
        false,
    );
    let zmeta = stale.join(".zmetadata");
    let mut consolidated = read_json(&zmeta);
    consolidated["metadata"][format!("{exp}/metadata/General/.zattrs")]["title"] = J::from("stale");
    write_json(&zmeta, &consolidated);

    for (store, must_name) in [
        (&chunk, "sha256"),
        (&axis, "axes[2]/scale"),
        (&meta, "metadata/General/title"),
        (&stale, ".zmetadata"),
    ] {
        match check(&py, store, &sidecar, &["--ignore-fileio"]) {
            Ok(report) => panic!(
                "the checker accepts an altered copy ({must_name}) of {}:\n{report}",
                fixture.display()
            ),
            Err(report) => assert!(
                report.contains(must_name),
                "the checker's report on the altered copy does not name {must_name}:\n{report}"
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// lazyspy convert -> RosettaSciIO
// ---------------------------------------------------------------------------------------------

/// Every `.zspy` fixture converted by `lazyspy convert` (default options: a directory store)
/// reads back in RosettaSciIO 0.15.0 and HyperSpy 2.5.0 as the original.
#[test]
fn converted_zspy_fixtures_read_back_in_rosettasciio() {
    let name = "converted_zspy_fixtures_read_back_in_rosettasciio";
    let Some(py) = python::require_python(name) else {
        return;
    };
    assert_no_failures(&convert_and_check(
        &py,
        &all_zspy_fixtures(),
        &[],
        "out.zspy",
    ));
}

/// `--zip` output (a single zip file) reads back too; options that change only the storage
/// (chunks, compressor) keep the content.
#[test]
fn converted_with_options_read_back_in_rosettasciio() {
    let name = "converted_with_options_read_back_in_rosettasciio";
    let Some(py) = python::require_python(name) else {
        return;
    };
    let pick = |n: &str| fixtures_dir().join(n);
    let some = [
        pick("sig1d_f64.zspy"),
        pick("stem4d_u16.zspy"),
        pick("metadata_zoo.zspy"),
        pick("zip_store.zspy"),
    ];
    let mut failures = convert_and_check(&py, &some, &["--zip"], "out.zspy");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("zipped.zspy");
    match convert(&some[0], &out, &["--zip"]) {
        Ok(()) if !out.is_file() => failures.push("--zip wrote a directory, not one file".into()),
        Ok(()) => {}
        Err(e) => failures.push(e),
    }
    failures.extend(convert_and_check(
        &py,
        &some,
        &["--compressor", "zstd:3"],
        "out.zspy",
    ));
    failures.extend(convert_and_check(
        &py,
        &some,
        &["--compressor", "none"],
        "out.zspy",
    ));
    failures.extend(convert_and_check(
        &py,
        &some[1..2],
        &["--chunks", "2,3,8,8"],
        "out.zspy",
    ));
    assert_no_failures(&failures);
}

/// Every `.hspy` fixture converted to `.zspy` reads back in RosettaSciIO / HyperSpy as the
/// original `.hspy` does (the `.hspy` sidecar describes the same content; the checker expects
/// `file_format` "ZSpy" at the root). `metadata_hspy_only.hspy` is left out: it holds values
/// zarr cannot store (bytes with NUL, complex and float16 attributes).
#[test]
fn converted_hspy_fixtures_read_back_in_rosettasciio() {
    let name = "converted_hspy_fixtures_read_back_in_rosettasciio";
    let Some(py) = python::require_python(name) else {
        return;
    };
    let inputs: Vec<PathBuf> = fixtures_in(&fixtures_dir(), "hspy")
        .into_iter()
        .filter(|p| fixture_name(p) != "metadata_hspy_only.hspy")
        .collect();
    assert!(inputs.len() >= 20, "found {} .hspy fixtures", inputs.len());
    assert_no_failures(&convert_and_check(&py, &inputs, &[], "out.zspy"));
}

// ---------------------------------------------------------------------------------------------
// lazyspy info --json
// ---------------------------------------------------------------------------------------------

/// `lazyspy info --json` on every `.zspy` fixture prints one JSON document giving, per
/// signal, the shape, dtype, chunks, compressor and axes the sidecar records.
#[test]
fn info_json_describes_every_zspy_fixture() {
    let mut failures = Vec::new();
    let fixtures = all_zspy_fixtures();
    for f in &fixtures {
        let out = run_lazyspy(&["info".as_ref(), f.as_os_str(), "--json".as_ref()]);
        let name = fixture_name(f);
        if !out.status.success() {
            failures.push(format!(
                "{name}: exit {}: {}",
                out.status,
                output_text(&out).trim()
            ));
            continue;
        }
        let info: J = match serde_json::from_slice(&out.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: stdout is not JSON ({e})"));
                continue;
            }
        };
        failures.extend(
            info_differences(&info, &read_sidecar(f))
                .into_iter()
                .map(|d| format!("{name}: {d}")),
        );
    }
    assert!(
        failures.is_empty(),
        "lazyspy info --json disagrees with the sidecars:\n{}",
        failures.join("\n")
    );
}

/// What in `info` disagrees with `side` (the CLI contract's fields only).
fn info_differences(info: &J, side: &J) -> Vec<String> {
    let mut d = Vec::new();
    if info["format"] != "zspy" {
        d.push(format!("format {} != \"zspy\"", info["format"]));
    }
    let empty = Vec::new();
    let signals = info["signals"].as_array().unwrap_or(&empty);
    let expected = side["signals"].as_array().unwrap();
    if signals.len() != expected.len() {
        d.push(format!(
            "{} signals != {} in the sidecar",
            signals.len(),
            expected.len()
        ));
        return d;
    }
    for (i, (s, e)) in signals.iter().zip(expected).enumerate() {
        let zarray = &e["storage"]["zarray"];
        if s["shape"] != e["data"]["shape"] {
            d.push(format!(
                "signals[{i}].shape {} != {}",
                s["shape"], e["data"]["shape"]
            ));
        }
        let dtype = e["data"]["dtype"].as_str().unwrap();
        match (dtype, s["dtype"].as_str()) {
            (_, None) => d.push(format!("signals[{i}].dtype missing: {}", s["dtype"])),
            // Structured and ragged dtypes have no single numpy name to agree on.
            ("struct" | "object", Some(_)) => {}
            (want, Some(got)) if got != want => {
                d.push(format!("signals[{i}].dtype {got:?} != {want:?}"))
            }
            _ => {}
        }
        if s["chunks"] != zarray["chunks"] {
            d.push(format!(
                "signals[{i}].chunks {} != {}",
                s["chunks"], zarray["chunks"]
            ));
        }
        if s["compressor"] != zarray["compressor"] {
            d.push(format!(
                "signals[{i}].compressor {} != {}",
                s["compressor"], zarray["compressor"]
            ));
        }
        let axes = s["axes"].as_array().unwrap_or(&empty);
        let want_axes = e["axes"].as_array().unwrap();
        if axes.len() != want_axes.len() {
            d.push(format!(
                "signals[{i}]: {} axes != {}",
                axes.len(),
                want_axes.len()
            ));
            continue;
        }
        for (k, (a, w)) in axes.iter().zip(want_axes).enumerate() {
            for key in [
                "_type",
                "name",
                "units",
                "size",
                "navigate",
                "is_binned",
                "scale",
                "offset",
                "index_in_array",
            ] {
                let want = &w[key];
                if want.is_null() && w.get(key).is_none() {
                    continue;
                }
                if !json_num_eq(&a[key], want) {
                    d.push(format!("signals[{i}].axes[{k}].{key} {} != {want}", a[key]));
                }
            }
        }
        let title = &e["metadata"]["General"]["title"];
        if !title.is_null() && &s["metadata"]["General"]["title"] != title {
            d.push(format!(
                "signals[{i}].metadata.General.title {} != {title}",
                s["metadata"]["General"]["title"]
            ));
        }
    }
    d
}

/// JSON equality where numbers compare by value (`1` equals `1.0`, `-0.0` equals `0.0`):
/// `info` is a description, the exact attribute types are the checker's business.
fn json_num_eq(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Number(x), J::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// lazyspy stats --json
// ---------------------------------------------------------------------------------------------

/// `lazyspy stats --json` reads every chunk: on every real-valued `.zspy` fixture its `sum`
/// agrees with the sidecar's (relative 1e-9), `mean` is `sum / size`, and `min <= first, last
/// <= max`. Complex, bool, structured and ragged data are left out (no single real sum).
#[test]
fn stats_json_agrees_with_every_numeric_fixture() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for f in all_zspy_fixtures() {
        let side = read_sidecar(&f);
        let name = fixture_name(&f);
        for (i, e) in side["signals"].as_array().unwrap().iter().enumerate() {
            let data = &e["data"];
            let dtype = data["dtype"].as_str().unwrap_or("");
            let real =
                dtype.starts_with("float") || dtype.starts_with("int") || dtype.starts_with("uint");
            if !real || data.get("sum").is_none() {
                continue;
            }
            let out = run_lazyspy(&["stats".as_ref(), f.as_os_str(), "--json".as_ref()]);
            if !out.status.success() {
                failures.push(format!(
                    "{name}: exit {}: {}",
                    out.status,
                    output_text(&out).trim()
                ));
                break;
            }
            let stats: J = match serde_json::from_slice(&out.stdout) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{name}: stdout is not JSON ({e})"));
                    break;
                }
            };
            checked += 1;
            let s = &stats["signals"][i];
            let num = |v: &J| v.as_f64();
            let size: f64 = data["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_f64().unwrap())
                .product();
            let want_sum = data["sum"].as_f64().unwrap();
            let (Some(sum), Some(mean), Some(min), Some(max)) = (
                num(&s["sum"]),
                num(&s["mean"]),
                num(&s["min"]),
                num(&s["max"]),
            ) else {
                failures.push(format!("{name}: signals[{i}] lacks sum/mean/min/max: {s}"));
                continue;
            };
            if s["shape"] != data["shape"] || s["dtype"] != data["dtype"] {
                failures.push(format!(
                    "{name}: shape/dtype {} {} != {} {}",
                    s["shape"], s["dtype"], data["shape"], data["dtype"]
                ));
            }
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
            if !close(sum, want_sum) {
                failures.push(format!("{name}: sum {sum} != {want_sum}"));
            }
            if !close(mean * size, sum) {
                failures.push(format!("{name}: mean {mean} != sum / size {}", sum / size));
            }
            for key in ["first", "last"] {
                if let Some(v) = data[key].as_f64()
                    && !(min <= v && v <= max)
                {
                    failures.push(format!("{name}: {key} {v} outside [min {min}, max {max}]"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "lazyspy stats --json disagrees with the sidecars:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 10, "only {checked} fixtures were checked");
}
