//! Writing `.hspy` files with [`write_hspy`]:
//!
//! * every fixture (generated and legacy) read here, written here and read here again gives
//!   the same tree and the same data;
//! * the written files load in RosettaSciIO 0.15.0 / HyperSpy 2.5.0 identically to the
//!   original fixtures, and h5py reads the chunks stored by the direct-chunk path to the
//!   same bytes (Python interop, `tests/interop/hspy_check.py`);
//! * options: explicit chunks, no compression, overwrite refused, `write_dataset=false`;
//! * a writer killed with SIGKILL leaves the destination absent or intact, and the next
//!   write removes its temporary file;
//! * bad input gives clear errors.

#[path = "support/quirks.rs"]
mod quirks;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Dimension;

use lazyspy::signal::{
    Dict, HspyCompression, HspyWriteOptions, Signal, SignalData, SignalError, SignalTree, Value,
    open_hspy, read_hspy_file, write_hspy,
};
use lazyspy::{DynArray, ExecConfig, LazyArray};
use support::sidecar::{fixtures_dir, legacy_dir, sha256_hex};

fn hdf5_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hspy" || e == "hdf5"))
        .collect();
    v.sort();
    v
}

fn all_fixtures() -> Vec<PathBuf> {
    let mut v = hdf5_files(&fixtures_dir());
    for d in ["rsciio-legacy", "hyperspy-legacy"] {
        if let Some(d) = legacy_dir(d) {
            v.extend(hdf5_files(&d));
        }
    }
    v
}

fn cfg() -> ExecConfig {
    ExecConfig::default().with_threads(2)
}

/// The interpreter of the Python venv (`LAZYSPY_PYTHON`, else the cache venv); `None` with
/// a note when absent, a failure when CI=true.
fn python() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("LAZYSPY_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/lazyspy/venv/bin/python")),
        )
        .collect();
    for c in candidates {
        let ok = Command::new(&c)
            .args(["-c", "import rsciio, h5py, hyperspy"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(c);
        }
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("no Python with rsciio/h5py/hyperspy (set LAZYSPY_PYTHON); CI=true");
    }
    eprintln!("note: no Python venv with rsciio/h5py/hyperspy; interop check skipped");
    None
}

// ------------------------------------------------------------------------------------
// Tree comparison after a round trip
// ------------------------------------------------------------------------------------

fn normalize(v: &mut Value) {
    match v {
        Value::Dict(d) => d.iter_mut().for_each(|(_, v)| normalize(v)),
        Value::List(items) | Value::Tuple(items) => items.iter_mut().for_each(normalize),
        Value::Signal(s) => normalize_signal(s),
        _ => {}
    }
}

fn normalize_signal(s: &mut SignalTree) {
    s.data.storage = Dict::new();
    s.data.chunks = vec![];
    for d in [
        &mut s.metadata,
        &mut s.original_metadata,
        &mut s.attributes,
        &mut s.models,
    ] {
        d.iter_mut().for_each(|(_, v)| normalize(v));
    }
}

/// Sorts dict keys recursively: a written file is read back in HDF5's name order, while
/// the old-format conversions of spec §8 append keys in their own order.
fn sort_keys(v: &mut Value) {
    match v {
        Value::Dict(d) => sort_dict(d),
        Value::List(items) | Value::Tuple(items) => items.iter_mut().for_each(sort_keys),
        Value::Signal(s) => {
            for d in [
                &mut s.metadata,
                &mut s.original_metadata,
                &mut s.attributes,
                &mut s.models,
            ] {
                sort_dict(d);
            }
        }
        _ => {}
    }
}

fn sort_dict(d: &mut Dict) {
    let mut entries = std::mem::take(d).into_entries();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (k, mut v) in entries {
        sort_keys(&mut v);
        d.insert(k, v);
    }
}

fn same_tree(name: &str, a: &SignalTree, b: &SignalTree) -> Vec<String> {
    let (mut a, mut b) = (a.clone(), b.clone());
    // The writer always writes a `learning_results` group (RosettaSciIO does too), which
    // files older than HyperSpy 1.x lack.
    if !a.attributes.contains_key("learning_results") {
        a.attributes.insert("learning_results", Dict::new());
    }
    for s in [&mut a, &mut b] {
        for d in [
            &mut s.metadata,
            &mut s.original_metadata,
            &mut s.attributes,
            &mut s.models,
        ] {
            sort_dict(d);
        }
    }
    for d in [
        &mut a.metadata,
        &mut a.original_metadata,
        &mut a.attributes,
        &mut a.models,
    ] {
        d.iter_mut().for_each(|(_, v)| quirks::q1_again(v));
    }
    normalize_signal(&mut a);
    normalize_signal(&mut b);
    let mut errs = Vec::new();
    let mut check = |what: &str, ok: bool| {
        if !ok {
            errs.push(format!("{name}: {what} differs"));
        }
    };
    check("metadata", a.metadata == b.metadata);
    check(
        "original_metadata",
        a.original_metadata == b.original_metadata,
    );
    check("attributes", a.attributes == b.attributes);
    check("axes", a.axes == b.axes);
    check("models", a.models == b.models);
    check(
        "package",
        (a.package, a.package_version, a.group_path)
            == (b.package, b.package_version, b.group_path),
    );
    check(
        "data layout",
        (&a.data.dtype, &a.data.shape) == (&b.data.dtype, &b.data.shape),
    );
    if a.attributes != b.attributes {
        errs.push(format!(
            "{name}: attributes {:?} != {:?}",
            a.attributes, b.attributes
        ));
    }
    if a.metadata != b.metadata {
        for (k, v) in a.metadata.iter() {
            if b.metadata.get(k) != Some(v) {
                errs.push(format!(
                    "{name}: metadata/{k}: {v:?} != {:?}",
                    b.metadata.get(k)
                ));
            }
        }
    }
    errs
}

enum Data {
    Bytes(Vec<u8>),
    Other(lazyspy::signal::Array),
}

fn data_of(s: &Signal) -> Data {
    match &s.data {
        SignalData::Lazy(a) => Data::Bytes(a.compute_with(&cfg()).unwrap().to_bytes()),
        SignalData::InMemory(a) => Data::Other(a.clone()),
    }
}

fn same_data(a: &Data, b: &Data) -> bool {
    match (a, b) {
        (Data::Bytes(x), Data::Bytes(y)) => x == y,
        (Data::Other(x), Data::Other(y)) => x == y,
        _ => false,
    }
}

#[test]
fn every_fixture_round_trips_and_loads_in_rosettasciio() {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut manifest = Vec::new();
    let mut written = 0;
    for p in all_fixtures() {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let signals = open_hspy(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (i, s) in signals.iter().enumerate() {
            let out = tmp.path().join(format!("{i}_{name}"));
            let report = match write_hspy(&out, s, &HspyWriteOptions::default(), &cfg()) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{name}[{i}]: write: {e}"));
                    continue;
                }
            };
            written += 1;
            if let Some(keep) = std::env::var_os("LAZYSPY_HSPY_KEEP") {
                // For inspection: keep a copy of every written file.
                std::fs::copy(&out, Path::new(&keep).join(out.file_name().unwrap())).unwrap();
            }
            let back = open_hspy(&out).unwrap_or_else(|e| panic!("{name}: reading back: {e}"));
            assert_eq!(back.len(), 1, "{name}");
            failures.extend(same_tree(&format!("{name}[{i}]"), &s.tree, &back[0].tree));
            let (d0, d1) = (data_of(s), data_of(&back[0]));
            if !same_data(&d0, &d1) {
                failures.push(format!("{name}[{i}]: data differs after the round trip"));
            }
            let sha = match &d0 {
                Data::Bytes(b) => Some(sha256_hex(b)),
                Data::Other(_) => None,
            };
            let lazy = matches!(s.data, SignalData::Lazy(_));
            if lazy {
                assert!(report.chunks_written > 0, "{name}: no chunk written");
                assert!(report.bytes_stored > 0);
            }
            manifest.push(serde_json::json!({
                "written": out.display().to_string(),
                "original": p.display().to_string(),
                "index": i,
                "sha256": sha,
                "chunks": if lazy { Some(report.chunks.clone()) } else { None },
                "direct_chunks": lazy,
            }));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(written >= 40, "only {written} signals written");
    // Never a temporary file left behind.
    for e in std::fs::read_dir(tmp.path()).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(!n.ends_with(".lazyspy-tmp"), "stray temporary file {n}");
    }
    let Some(py) = python() else {
        return;
    };
    let mf = tmp.path().join("manifest.json");
    std::fs::write(&mf, serde_json::to_string(&manifest).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/hspy_check.py");
    let out = Command::new(py).arg(script).arg(&mf).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "RosettaSciIO/h5py check failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("checked {} files, 0 problems", manifest.len())),
        "{stdout}"
    );
}

fn ramp_signal(shape: &[usize], chunks: &[usize]) -> Signal {
    let data = LazyArray::<f32>::from_fn(shape, chunks, |r| {
        Ok(ndarray::ArrayD::from_shape_fn(
            ndarray::IxDyn(&r.shape()),
            |i| {
                let mut v = 0f32;
                for (d, &x) in i.slice().iter().enumerate() {
                    v = v * 7.0 + (r.start[d] + x) as f32;
                }
                v.sin() * 100.0
            },
        ))
    })
    .unwrap();
    Signal::from_lazy(data.into_dyn(), 2, "ramp")
}

#[test]
fn options_chunks_compression_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ramp_signal(&[5, 7, 32, 48], &[2, 3, 32, 48]);
    let dest = tmp.path().join("r.hspy");
    // Default: get_signal_chunks with the 1 MB target: 6144 B per signal → 162 signals → 7?
    let r = write_hspy(&dest, &s, &HspyWriteOptions::default(), &cfg()).unwrap();
    assert_eq!(r.chunks, vec![5, 7, 32, 48]);
    let f = read_hspy_file(&dest).unwrap();
    let st = &f.signals[0].data.storage;
    assert_eq!(st.get("compression"), Some(&Value::from("gzip")));
    assert_eq!(st.get("shuffle"), Some(&Value::Bool(true)));
    assert!(r.bytes_stored < r.bytes_uncompressed);
    let want = s.data.as_lazy().unwrap().compute_with(&cfg()).unwrap();
    let got = |p: &Path| -> DynArray {
        open_hspy(p).unwrap()[0]
            .data
            .as_lazy()
            .unwrap()
            .compute_with(&cfg())
            .unwrap()
    };
    assert_eq!(got(&dest).to_bytes(), want.to_bytes());

    // An existing destination is refused without overwrite, before any work.
    let before = std::fs::read(&dest).unwrap();
    let e = write_hspy(&dest, &s, &HspyWriteOptions::default(), &cfg()).unwrap_err();
    assert!(
        e.to_string().contains("exists") && e.to_string().contains("r.hspy"),
        "{e}"
    );
    assert_eq!(std::fs::read(&dest).unwrap(), before);

    // Explicit chunks with partial edge chunks, no compression (shuffle stays, Q8).
    let opts = HspyWriteOptions {
        chunks: Some(vec![2, 2, 16, 20]),
        compression: HspyCompression::None,
        overwrite: true,
        ..Default::default()
    };
    let r = write_hspy(&dest, &s, &opts, &cfg()).unwrap();
    assert_eq!(r.chunks_written, 3 * 4 * 2 * 3);
    let f = read_hspy_file(&dest).unwrap();
    let st = &f.signals[0].data.storage;
    assert_eq!(st.get("compression"), Some(&Value::None));
    assert_eq!(st.get("shuffle"), Some(&Value::Bool(true)));
    assert_eq!(f.signals[0].data.chunks, vec![2, 2, 16, 20]);
    assert_eq!(got(&dest).to_bytes(), want.to_bytes());

    // LZF (h5py's filter, compressed by the library on the writer thread).
    let opts = HspyWriteOptions {
        chunks: Some(vec![2, 3, 32, 48]),
        compression: HspyCompression::Lzf,
        overwrite: true,
        ..Default::default()
    };
    let r = write_hspy(&dest, &s, &opts, &cfg()).unwrap();
    assert_eq!(r.chunks_written, 3 * 3);
    let f = read_hspy_file(&dest).unwrap();
    assert_eq!(
        f.signals[0].data.storage.get("compression"),
        Some(&Value::from("lzf"))
    );
    assert_eq!(got(&dest).to_bytes(), want.to_bytes());
    if let Some(py) = python() {
        let code = "import h5py,hashlib,sys,numpy as np\n\
                    f=h5py.File(sys.argv[1],'r');d=f['Experiments/ramp/data']\n\
                    assert d.compression=='lzf', d.compression\n\
                    print(hashlib.sha256(np.ascontiguousarray(d[()]).tobytes()).hexdigest())";
        let out = Command::new(py)
            .args(["-c", code])
            .arg(&dest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            sha256_hex(&want.to_bytes())
        );
    }

    // gzip 9 without shuffle.
    let opts = HspyWriteOptions {
        compression: HspyCompression::Gzip(9),
        shuffle: false,
        overwrite: true,
        ..Default::default()
    };
    write_hspy(&dest, &s, &opts, &cfg()).unwrap();
    let f = read_hspy_file(&dest).unwrap();
    assert_eq!(
        f.signals[0].data.storage.get("shuffle"),
        Some(&Value::Bool(false))
    );
    assert_eq!(got(&dest).to_bytes(), want.to_bytes());
}

#[test]
fn write_dataset_false_rewrites_metadata_and_keeps_data() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = ramp_signal(&[3, 4, 8, 8], &[3, 4, 8, 8]);
    s.tree
        .metadata
        .set_path("General/Notes", Dict::new().with("old_key", 1i64));
    let dest = tmp.path().join("w.hspy");
    write_hspy(&dest, &s, &HspyWriteOptions::default(), &cfg()).unwrap();
    let mut s2 = s.clone();
    s2.tree
        .metadata
        .set_path("General/Notes", Dict::new().with("new_key", "x"));
    s2.tree.axes[0]
        .dict_mut()
        .insert("units", Value::from("nm"));
    let opts = HspyWriteOptions {
        write_dataset: false,
        ..Default::default()
    };
    let r = write_hspy(&dest, &s2, &opts, &cfg()).unwrap();
    assert_eq!(r.chunks_written, 0);
    let back = open_hspy(&dest).unwrap();
    let md = &back[0].tree.metadata;
    // Stale keys stay (Q6), new ones are added, axes are rewritten.
    assert_eq!(md.get_path("General/Notes/old_key"), Some(&Value::Int(1)));
    assert_eq!(
        md.get_path("General/Notes/new_key"),
        Some(&Value::from("x"))
    );
    assert_eq!(back[0].tree.axes[0].units(), Some("nm"));
    let a = back[0]
        .data
        .as_lazy()
        .unwrap()
        .compute_with(&cfg())
        .unwrap();
    let b = s.data.as_lazy().unwrap().compute_with(&cfg()).unwrap();
    assert_eq!(a.to_bytes(), b.to_bytes());
    // write_dataset=false needs an existing file.
    let e = write_hspy(tmp.path().join("none.hspy"), &s2, &opts, &cfg()).unwrap_err();
    assert!(matches!(e, SignalError::Missing { .. }), "{e}");
}

// ------------------------------------------------------------------------------------
// Crash safety
// ------------------------------------------------------------------------------------

const CHILD_ENV: &str = "LAZYSPY_HSPY_CRASH_CHILD";

/// The child writer: writes a slow 64 MiB signal to the path in `LAZYSPY_HSPY_CRASH_CHILD`.
/// Without the variable this test does nothing.
#[test]
fn crash_child_process() {
    let Some(dest) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let data = LazyArray::<f32>::from_fn(&[64, 512, 512], &[1, 512, 512], |r| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        // Noise, so that the file grows as it is written.
        let mut x = 0x9e3779b97f4a7c15u64 ^ r.start[0] as u64;
        Ok(ndarray::ArrayD::from_shape_simple_fn(
            ndarray::IxDyn(&r.shape()),
            || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32
            },
        ))
    })
    .unwrap();
    let s = Signal::from_lazy(data.into_dyn(), 2, "crash");
    let opts = HspyWriteOptions {
        overwrite: true,
        ..Default::default()
    };
    println!("LAZYSPY_CHILD_STARTED");
    write_hspy(
        PathBuf::from(dest),
        &s,
        &opts,
        &ExecConfig::default().with_threads(1),
    )
    .unwrap();
    println!("LAZYSPY_CHILD_DONE");
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".lazyspy-tmp"))
        .collect()
}

/// Starts the child writing `dest`, waits until its temporary file exists and is growing,
/// then kills it with SIGKILL.
fn kill_child_mid_write(dest: &Path) {
    let dir = dest.parent().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dest)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let t = temp_files(dir);
        if let Some(name) = t.first() {
            let len = std::fs::metadata(dir.join(name))
                .map(|m| m.len())
                .unwrap_or(0);
            if len > 1 << 20 {
                break;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child finished before it was killed: {status}");
        }
        assert!(
            start.elapsed().as_secs() < 120,
            "the child never started writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

#[test]
fn a_killed_writer_leaves_no_broken_destination() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // 1. No destination before: none after.
    let dest = tmp.path().join("big.hspy");
    kill_child_mid_write(&dest);
    assert!(!dest.exists(), "a killed write left a destination");
    assert_eq!(
        temp_files(tmp.path()).len(),
        1,
        "the killed writer's temporary file"
    );

    // 2. An existing destination stays intact, byte for byte.
    let small = ramp_signal(&[2, 3, 8, 8], &[2, 3, 8, 8]);
    let r = write_hspy(&dest, &small, &HspyWriteOptions::default(), &cfg()).unwrap();
    // The next write removed the dead writer's temporary file.
    assert_eq!(r.swept.len(), 1, "{:?}", r.swept);
    assert!(temp_files(tmp.path()).is_empty());
    let before = std::fs::read(&dest).unwrap();
    kill_child_mid_write(&dest);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        before,
        "the old file was touched"
    );
    let back = open_hspy(&dest).unwrap();
    assert_eq!(back[0].tree.title(), Some("ramp"));

    // 3. The next write cleans up and succeeds.
    let opts = HspyWriteOptions {
        overwrite: true,
        ..Default::default()
    };
    let r = write_hspy(&dest, &small, &opts, &cfg()).unwrap();
    assert_eq!(r.swept.len(), 1);
    assert!(
        temp_files(tmp.path()).is_empty(),
        "{:?}",
        temp_files(tmp.path())
    );
}

// ------------------------------------------------------------------------------------
// Bad input
// ------------------------------------------------------------------------------------

#[test]
fn bad_input_gives_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let msg = |e: SignalError| e.to_string();
    // Missing file.
    let e = read_hspy_file(tmp.path().join("nope.hspy")).unwrap_err();
    assert!(matches!(e, SignalError::Io { .. }) && msg(e).contains("nope.hspy"));
    // Not an HDF5 file.
    let p = tmp.path().join("text.hspy");
    std::fs::write(&p, b"this is not HDF5 at all").unwrap();
    let e = msg(read_hspy_file(&p).unwrap_err());
    assert!(
        e.contains("not an HDF5 file") && e.contains("text.hspy"),
        "{e}"
    );
    // Truncated file.
    let src = std::fs::read(fixtures_dir().join("stem4d_u16.hspy")).unwrap();
    for cut in [src.len() / 2, 600] {
        let p = tmp.path().join(format!("cut{cut}.hspy"));
        std::fs::write(&p, &src[..cut]).unwrap();
        let r = open_hspy(&p).and_then(|sigs| {
            for s in sigs {
                if let SignalData::Lazy(a) = &s.data {
                    a.compute_with(&cfg()).map_err(|e| SignalError::Compute {
                        file: p.display().to_string(),
                        source: e,
                    })?;
                }
            }
            Ok(())
        });
        let e = msg(r.unwrap_err());
        assert!(e.contains(&format!("cut{cut}.hspy")), "{e}");
    }
    // An HDF5 file that is not HyperSpy's, and an unknown version.
    let plain = tmp.path().join("plain.h5");
    {
        let f = hdf5::File::create(&plain).unwrap();
        f.create_group("something").unwrap();
    }
    let e = msg(read_hspy_file(&plain).unwrap_err());
    assert!(
        e.contains("not a valid HyperSpy file") && e.contains("plain.h5"),
        "{e}"
    );
    {
        let f = hdf5::File::open_rw(&plain).unwrap();
        let v: hdf5::types::VarLenUnicode = "three".parse().unwrap();
        f.new_attr::<hdf5::types::VarLenUnicode>()
            .create("file_format_version")
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    }
    let e = read_hspy_file(&plain).unwrap_err();
    assert!(matches!(e, SignalError::Version { .. }), "{e}");
    // A missing data dataset / axis group / metadata group.
    let copy = tmp.path().join("missing.hspy");
    std::fs::copy(fixtures_dir().join("sig1d_f64.hspy"), &copy).unwrap();
    {
        let f = hdf5::File::open_rw(&copy).unwrap();
        let exps = f.group("Experiments").unwrap();
        let name = exps.member_names().unwrap()[0].clone();
        exps.group(&name).unwrap().unlink("metadata").unwrap();
    }
    let e = msg(read_hspy_file(&copy).unwrap_err());
    assert!(e.contains("metadata") && e.contains("missing.hspy"), "{e}");
    let e = lazyspy::signal::HspyArraySource::open(&copy, "/Experiments/nope/data").unwrap_err();
    assert!(matches!(e, SignalError::Missing { .. }), "{e}");
    // A directory is not an HDF5 file.
    let e = msg(read_hspy_file(tmp.path()).unwrap_err());
    assert!(e.contains("directory"), "{e}");
    // Writing: bad chunk shape, bad gzip level, missing directory; nothing is left behind.
    let s = ramp_signal(&[3, 4, 8, 8], &[3, 4, 8, 8]);
    let out = tmp.path().join("out.hspy");
    let opts = HspyWriteOptions {
        chunks: Some(vec![1, 2]),
        ..Default::default()
    };
    assert!(msg(write_hspy(&out, &s, &opts, &cfg()).unwrap_err()).contains("chunk shape"));
    let opts = HspyWriteOptions {
        compression: HspyCompression::Gzip(12),
        ..Default::default()
    };
    assert!(write_hspy(&out, &s, &opts, &cfg()).is_err());
    assert!(!out.exists());
    assert!(temp_files(tmp.path()).is_empty());
    let e = write_hspy(
        tmp.path().join("no/such/dir/x.hspy"),
        &s,
        &HspyWriteOptions::default(),
        &cfg(),
    )
    .unwrap_err();
    assert!(msg(e).contains("x.hspy"));
    // A failing computation: the engine's error, no destination.
    let bad = LazyArray::<f32>::from_fn(&[4, 8, 8], &[1, 8, 8], |r| {
        if r.start[0] == 2 {
            Err("sensor exploded".into())
        } else {
            Ok(ndarray::ArrayD::zeros(ndarray::IxDyn(&r.shape())))
        }
    })
    .unwrap();
    let s = Signal::from_lazy(bad.into_dyn(), 2, "bad");
    let opts = HspyWriteOptions {
        chunks: Some(vec![1, 8, 8]),
        ..Default::default()
    };
    let e = write_hspy(&out, &s, &opts, &cfg()).unwrap_err();
    assert!(matches!(e, SignalError::Compute { .. }), "{e}");
    assert!(msg(e).contains("sensor exploded"));
    assert!(!out.exists());
    assert!(temp_files(tmp.path()).is_empty());
}

// ------------------------------------------------------------------------------------
// .zspy → .hspy
// ------------------------------------------------------------------------------------

#[test]
fn zspy_fixtures_convert_to_hspy_keeping_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let mut converted = 0;
    let mut failures = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "zspy") && p.is_dir())
        .collect();
    dirs.sort();
    for p in dirs {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        for (tree, lazy) in lazyspy::signal::open_zspy_data(&p).unwrap() {
            let s = Signal {
                tree,
                data: SignalData::Lazy(lazy),
            };
            let out = tmp.path().join(format!("{name}.hspy"));
            match write_hspy(&out, &s, &HspyWriteOptions::default(), &cfg()) {
                Ok(_) => {}
                Err(e) => {
                    // The one metadata array the .zspy reader cannot decode (zstd) cannot be
                    // copied: a clear error naming it, never a partial file.
                    let msg = e.to_string();
                    assert!(msg.contains("never read"), "{name}: {msg}");
                    assert!(!out.exists());
                    continue;
                }
            }
            let back = open_hspy(&out).unwrap();
            let mut zt = s.tree.clone();
            // .zspy drops values .hspy keeps; the tree read from .zspy has none of them.
            zt.data.storage = Dict::new();
            failures.extend(same_tree(&name, &zt, &back[0].tree));
            if !same_data(&data_of(&s), &data_of(&back[0])) {
                failures.push(format!("{name}: data differs"));
            }
            converted += 1;
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(converted >= 15, "only {converted} .zspy signals converted");
}
