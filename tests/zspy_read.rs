//! The `.zspy` reader on inputs made here: every compressor HyperSpy can write, both byte
//! orders, both chunk key separators (recorded or not), missing chunks; zip stores with
//! duplicate entry names (the last one wins) and deflated entries; the incomplete marker;
//! corrupt chunks (fuzzed), wrong chunk sizes, unsupported dtypes and inconsistent
//! metadata, which must give errors naming the file and the key, never a panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lazyspy::signal::{
    DatasetValue, GroupRead, SignalData, SignalError, ZarrDirGroup, ZarrStore, ZspyArraySource,
    open_zspy, open_zspy_data, open_zspy_signal, read_zspy_file,
};
use lazyspy::{ChunkSource, ExecConfig, Region};
use serde_json::json;
use zarrs::array::{Array, ArrayMetadata};
use zarrs::filesystem::FilesystemStore;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hyperspy")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
            let mut perm = std::fs::metadata(&dst).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&dst, perm).unwrap();
        }
    }
}

/// Every file of a directory store as (key, bytes), sorted by key.
fn store_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let key = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((key, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn exec() -> ExecConfig {
    ExecConfig::default().with_threads(2)
}

// ------------------------------------------------------------------------------------
// Compressors, byte orders, separators, fill values
// ------------------------------------------------------------------------------------

/// Writes a one-array store: root `.zgroup`, `a/.zarray` as given (so the document is
/// exactly what zarr-python writes), chunks encoded by zarrs with the same metadata.
fn write_array_store(root: &Path, zarray: &serde_json::Value, values: &[f64]) {
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    std::fs::write(
        root.join("a/.zarray"),
        serde_json::to_string_pretty(zarray).unwrap(),
    )
    .unwrap();
    let mut meta = zarray.clone();
    if meta.get("dimension_separator").is_none() {
        meta["dimension_separator"] = json!(".");
    }
    let meta: zarrs::metadata::v2::ArrayMetadataV2 = serde_json::from_value(meta).unwrap();
    let fs = Arc::new(FilesystemStore::new(root).unwrap());
    let array = Array::new_with_metadata(fs, "/a", ArrayMetadata::V2(meta)).unwrap();
    let subset = array.subset_all();
    let dtype = zarray["dtype"].as_str().unwrap();
    match &dtype[1..] {
        "f4" => array
            .store_array_subset(
                &subset,
                values.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            )
            .unwrap(),
        "f8" => array.store_array_subset(&subset, values.to_vec()).unwrap(),
        "i2" => array
            .store_array_subset(
                &subset,
                values.iter().map(|&v| v as i16).collect::<Vec<_>>(),
            )
            .unwrap(),
        "u4" => array
            .store_array_subset(
                &subset,
                values.iter().map(|&v| v as u32).collect::<Vec<_>>(),
            )
            .unwrap(),
        "b1" => array
            .store_array_subset(
                &subset,
                values.iter().map(|&v| v != 0.0).collect::<Vec<_>>(),
            )
            .unwrap(),
        other => panic!("dtype {other}"),
    }
}

/// The array read lazily (zarrs path) and whole (metadata path), as f64.
fn read_both_ways(root: &Path) -> (Vec<f64>, Vec<f64>) {
    let store = ZarrStore::open(root).unwrap();
    let src = ZspyArraySource::open_in(&store, "a").unwrap();
    let shape = src.grid().shape();
    let lazy = src
        .read_region(&Region::new(vec![0; shape.len()], shape.clone()))
        .unwrap()
        .cast_to::<f64>()
        .iter()
        .copied()
        .collect();
    let g = ZarrDirGroup::open(root).unwrap();
    let whole = match g.read_dataset("a").unwrap() {
        DatasetValue::Loaded(a) => a.to_f64_vec().unwrap(),
        DatasetValue::Deferred(r) => panic!("not read: {}", r.reason),
    };
    (lazy, whole)
}

/// 7 × 5 values with chunk (1, *) rows all zero: zarrs does not write chunks equal to
/// the fill value, so those are missing and must read as the fill value.
fn sample_values() -> Vec<f64> {
    (0..35)
        .map(|i| {
            if (6..15).contains(&i) {
                0.0
            } else {
                (i * 7 % 23) as f64 - 5.0
            }
        })
        .collect()
}

#[test]
fn every_compressor_hyperspy_can_write_reads_back() {
    let mut compressors = vec![
        json!(null),
        json!({"id": "zlib", "level": 6}),
        json!({"id": "gzip", "level": 5}),
        json!({"id": "zstd", "level": 3}),
    ];
    for cname in ["zstd", "lz4", "lz4hc", "blosclz", "zlib"] {
        for shuffle in [0, 1, 2] {
            compressors.push(json!({"id": "blosc", "cname": cname, "clevel": 5,
                                    "shuffle": shuffle, "blocksize": 0}));
        }
    }
    let values = sample_values();
    let tmp = tempfile::tempdir().unwrap();
    for (i, c) in compressors.iter().enumerate() {
        for dtype in ["<f4", ">f8", "<i2", ">u4", "|b1"] {
            let root = tmp.path().join(format!("c{i}{}.zspy", &dtype[1..]));
            let zarray = json!({"chunks": [3, 2], "compressor": c, "dimension_separator": "/",
                "dtype": dtype, "fill_value": 0, "filters": null, "order": "C",
                "shape": [7, 5], "zarr_format": 2});
            let expected: Vec<f64> = values
                .iter()
                .map(|&v| match &dtype[1..] {
                    "u4" => (v.max(0.0) as u32) as f64,
                    "b1" => f64::from(u8::from(v != 0.0)),
                    _ => v,
                })
                .collect();
            let src_values: Vec<f64> = if dtype == ">u4" {
                values.iter().map(|v| v.max(0.0)).collect()
            } else {
                values.clone()
            };
            write_array_store(&root, &zarray, &src_values);
            let (lazy, whole) = read_both_ways(&root);
            assert_eq!(lazy, expected, "{c} {dtype} lazily");
            assert_eq!(whole, expected, "{c} {dtype} whole");
        }
    }
}

#[test]
fn missing_chunks_read_as_the_fill_value() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("f.zspy");
    let zarray = json!({"chunks": [3, 2], "compressor": {"id": "blosc", "cname": "zstd",
        "clevel": 1, "shuffle": 1, "blocksize": 0}, "dimension_separator": "/",
        "dtype": "<f8", "fill_value": "NaN", "filters": null, "order": "C",
        "shape": [7, 5], "zarr_format": 2});
    let values: Vec<f64> = (0..35).map(|i| i as f64).collect();
    write_array_store(&root, &zarray, &values);
    // Remove chunk (1, 1): rows 3..6, columns 2..4.
    std::fs::remove_file(root.join("a/1/1")).unwrap();
    let (lazy, whole) = read_both_ways(&root);
    for (k, (&a, &b)) in lazy.iter().zip(&whole).enumerate() {
        let (r, c) = (k / 5, k % 5);
        if (3..6).contains(&r) && (2..4).contains(&c) {
            assert!(a.is_nan() && b.is_nan(), "{k}: {a} {b}");
        } else {
            assert_eq!((a, b), (k as f64, k as f64));
        }
    }
}

#[test]
fn chunk_keys_with_either_separator_recorded_or_not() {
    let values = sample_values();
    let tmp = tempfile::tempdir().unwrap();
    for (written, recorded) in [
        ("/", Some("/")),
        (".", Some(".")),
        (".", None), // DirectoryStore of old zarr: no key, '.' keys
        ("/", None), // zarr < 2.8 NestedDirectoryStore: '/' keys, separator not recorded
    ] {
        let root = tmp
            .path()
            .join(format!("s{}{}.zspy", written == "/", recorded.is_some()));
        let mut zarray = json!({"chunks": [3, 2], "compressor": {"id": "zlib", "level": 1},
            "dimension_separator": written, "dtype": "<f8", "fill_value": 0.0,
            "filters": null, "order": "C", "shape": [7, 5], "zarr_format": 2});
        write_array_store(&root, &zarray, &values);
        match recorded {
            Some(_) => {}
            None => {
                zarray
                    .as_object_mut()
                    .unwrap()
                    .remove("dimension_separator");
                std::fs::write(root.join("a/.zarray"), zarray.to_string()).unwrap();
            }
        }
        let files: Vec<String> = store_files(&root).into_iter().map(|(k, _)| k).collect();
        assert!(
            files
                .iter()
                .any(|k| k.starts_with(&format!("a/2{written}"))),
            "{files:?}"
        );
        let (lazy, whole) = read_both_ways(&root);
        assert_eq!(lazy, values, "{written} {recorded:?}");
        assert_eq!(whole, values, "{written} {recorded:?}");
    }
}

// ------------------------------------------------------------------------------------
// Zip stores
// ------------------------------------------------------------------------------------

/// A zip file of the given entries, in order (duplicate names allowed), each STORED or
/// DEFLATED.
fn build_zip(entries: &[(String, Vec<u8>)], deflate: bool) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let (method, body) = if deflate {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(data).unwrap();
            (8u16, e.finish().unwrap())
        } else {
            (0u16, data.clone())
        };
        let flags: u16 = if name.is_ascii() { 0 } else { 0x0800 };
        let off = out.len() as u32;
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 4]); // time, date
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&body);
        cd.extend_from_slice(b"PK\x01\x02");
        cd.extend_from_slice(&20u16.to_le_bytes());
        cd.extend_from_slice(&20u16.to_le_bytes());
        cd.extend_from_slice(&flags.to_le_bytes());
        cd.extend_from_slice(&method.to_le_bytes());
        cd.extend_from_slice(&[0; 4]);
        cd.extend_from_slice(&crc.sum().to_le_bytes());
        cd.extend_from_slice(&(body.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&[0; 12]); // extra, comment, disk, attributes
        cd.extend_from_slice(&off.to_le_bytes());
        cd.extend_from_slice(name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn title_of(p: &Path) -> String {
    read_zspy_file(p).unwrap().signals[0]
        .title()
        .unwrap()
        .to_string()
}

fn data_bytes(p: &Path) -> Vec<u8> {
    let signals = open_zspy(p).unwrap();
    match &signals[0].data {
        SignalData::Lazy(l) => l.compute_with(&exec()).unwrap().to_bytes(),
        SignalData::InMemory(a) => panic!("in memory: {a:?}"),
    }
}

#[test]
fn zip_duplicate_entries_the_last_one_wins() {
    let dir = fixtures_dir().join("spectrum_image_f32.zspy");
    let files = store_files(&dir);
    let real_title = title_of(&dir);
    let key = files
        .iter()
        .map(|(k, _)| k)
        .find(|k| k.ends_with("metadata/General/.zattrs"))
        .unwrap()
        .clone();
    let real = files.iter().find(|(k, _)| *k == key).unwrap().1.clone();
    let text = String::from_utf8(real.clone()).unwrap();
    let stale = text.replace(&real_title, "a stale title").into_bytes();
    assert_ne!(stale, real);
    let tmp = tempfile::tempdir().unwrap();

    // The stale document first, the valid one last (as zarr's ZipStore leaves them).
    let mut entries = vec![(key.clone(), stale.clone())];
    entries.extend(files.iter().cloned());
    let p = tmp.path().join("last_valid.zspy");
    std::fs::write(&p, build_zip(&entries, false)).unwrap();
    let store = ZarrStore::open(&p).unwrap();
    assert!(store.is_zip());
    assert_eq!(store.zip().unwrap().duplicate_count(), 1);
    assert_eq!(title_of(&p), real_title);
    assert_eq!(data_bytes(&p), data_bytes(&dir));

    // The other way round: the stale one is last, so it is what a reader must return.
    let mut entries = files.clone();
    entries.push((key.clone(), stale));
    let p = tmp.path().join("last_stale.zspy");
    std::fs::write(&p, build_zip(&entries, false)).unwrap();
    assert_eq!(title_of(&p), "a stale title");
}

#[test]
fn deflated_zip_entries_and_non_ascii_names_read() {
    // unicode.zspy has non-ASCII group names (UTF-8 flag set in the zip).
    for name in [
        "unicode.zspy",
        "ragged.zspy",
        "rgb8.zspy",
        "metadata_zoo.zspy",
    ] {
        let dir = fixtures_dir().join(name);
        let files = store_files(&dir);
        let tmp = tempfile::tempdir().unwrap();
        for deflate in [false, true] {
            let p = tmp.path().join(format!("{deflate}{name}"));
            std::fs::write(&p, build_zip(&files, deflate)).unwrap();
            let a = read_zspy_file(&dir).unwrap();
            let b = read_zspy_file(&p).unwrap();
            assert_eq!(a.signals.len(), b.signals.len());
            for (x, y) in a.signals.iter().zip(&b.signals) {
                assert_eq!(x.metadata, y.metadata, "{name} deflate={deflate}");
                assert_eq!(x.axes, y.axes, "{name}");
            }
            let sa = open_zspy(&dir).unwrap();
            let sb = open_zspy(&p).unwrap();
            for (x, y) in sa.iter().zip(&sb) {
                match (&x.data, &y.data) {
                    (SignalData::Lazy(l), SignalData::Lazy(m)) => assert_eq!(
                        l.compute_with(&exec()).unwrap().to_bytes(),
                        m.compute_with(&exec()).unwrap().to_bytes(),
                        "{name}"
                    ),
                    (SignalData::InMemory(l), SignalData::InMemory(m)) => {
                        assert_eq!(l, m, "{name}")
                    }
                    _ => panic!("{name}: different kinds of data"),
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------
// Incomplete stores
// ------------------------------------------------------------------------------------

fn assert_incomplete(err: SignalError, store: &str) {
    let msg = err.to_string();
    assert!(matches!(err, SignalError::Incomplete { .. }), "{msg}");
    assert!(msg.contains(store), "{msg}");
    assert!(
        msg.contains("--resume") && msg.contains("--overwrite"),
        "{msg}"
    );
}

#[test]
fn an_incomplete_store_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("partial.zspy");
    copy_dir(&fixtures_dir().join("sig1d_f64.zspy"), &p);
    let tree = read_zspy_file(&p).unwrap();
    let signal = tree.signals[0].clone();
    let key = format!("{}/data", signal.group_path);
    std::fs::write(p.join(lazyspy::io::atomic::INCOMPLETE_MARKER), b"job").unwrap();
    assert_incomplete(read_zspy_file(&p).unwrap_err(), "partial.zspy");
    assert_incomplete(open_zspy(&p).unwrap_err(), "partial.zspy");
    assert_incomplete(open_zspy_data(&p).unwrap_err(), "partial.zspy");
    assert_incomplete(open_zspy_signal(&p, &signal).unwrap_err(), "partial.zspy");
    assert_incomplete(ZspyArraySource::open(&p, &key).unwrap_err(), "partial.zspy");
    // The writer commits the root .zgroup last: still "incomplete", not "missing".
    std::fs::remove_file(p.join(".zgroup")).unwrap();
    assert_incomplete(read_zspy_file(&p).unwrap_err(), "partial.zspy");
    // A writer resuming its own output may still read it.
    let store = ZarrStore::open(&p).unwrap();
    assert!(store.is_incomplete());
    ZspyArraySource::open_in(&store, &key).unwrap();
    // Once finished (marker removed, .zgroup back) it opens.
    std::fs::write(p.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    std::fs::remove_file(p.join(lazyspy::io::atomic::INCOMPLETE_MARKER)).unwrap();
    assert_eq!(open_zspy(&p).unwrap().len(), 1);
}

// ------------------------------------------------------------------------------------
// Bad input
// ------------------------------------------------------------------------------------

/// A deterministic byte generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Corruptions of a chunk: truncations, flipped bytes, bad Blosc headers, garbage.
/// Returns (description, bytes, must_fail).
fn corruptions(good: &[u8], rng: &mut Lcg) -> Vec<(String, Vec<u8>, bool)> {
    let n = good.len();
    let mut out = Vec::new();
    for cut in [0, 1, 4, 15, 16, 17, n / 2, n - 1] {
        if cut < n {
            out.push((format!("truncated to {cut}"), good[..cut].to_vec(), true));
        }
    }
    for i in 0..n.min(48) {
        let mut b = good.to_vec();
        b[i] ^= 0xFF;
        out.push((format!("byte {i} flipped"), b, false));
    }
    for _ in 0..40 {
        let mut b = good.to_vec();
        let i = (rng.next() as usize) % n;
        b[i] = rng.next() as u8;
        out.push((format!("byte {i} changed"), b, false));
    }
    let garbage: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    out.push(("random bytes".into(), garbage, false));
    let mut longer = good.to_vec();
    longer.extend_from_slice(&[7; 13]);
    out.push(("13 bytes appended".into(), longer, false));
    out
}

#[test]
fn corrupt_chunks_are_errors_naming_file_and_key_never_panics() {
    let mut rng = Lcg(42);
    let tmp = tempfile::tempdir().unwrap();
    let mut failures_seen = 0;
    for fixture in [
        "explicit_chunks.zspy",
        "compressor_zlib.zspy",
        "compressor_blosc_lz4_bitshuffle.zspy",
        "stem4d_u16.zspy",
    ] {
        let p = tmp.path().join(fixture);
        copy_dir(&fixtures_dir().join(fixture), &p);
        let signal = read_zspy_file(&p).unwrap().signals[0].clone();
        let key = format!("{}/data", signal.group_path);
        let src = ZspyArraySource::open(&p, &key).unwrap();
        let index = vec![0; src.grid().shape().len()];
        let chunk_key = src.chunk_key(&index);
        let chunk_path = p.join(&chunk_key);
        let good = std::fs::read(&chunk_path).unwrap();
        let good_values = src.read_chunk(&index).unwrap().to_bytes();
        for (what, bytes, must_fail) in corruptions(&good, &mut rng) {
            std::fs::write(&chunk_path, &bytes).unwrap();
            match src.read_chunk(&index) {
                Err(e) => {
                    failures_seen += 1;
                    let msg = e.to_string();
                    assert!(msg.contains(fixture), "{fixture} {what}: {msg}");
                    assert!(msg.contains(&chunk_key), "{fixture} {what}: {msg}");
                }
                Ok(a) => {
                    assert!(!must_fail, "{fixture} {what}: read without error");
                    assert_eq!(
                        a.shape(),
                        src.grid().chunk_region(&index).shape().as_slice()
                    );
                }
            }
        }
        std::fs::write(&chunk_path, &good).unwrap();
        assert_eq!(src.read_chunk(&index).unwrap().to_bytes(), good_values);
    }
    assert!(
        failures_seen > 40,
        "only {failures_seen} corruptions detected"
    );
}

#[test]
fn corrupt_metadata_array_chunks_are_errors_naming_the_key() {
    let mut rng = Lcg(7);
    let tmp = tempfile::tempdir().unwrap();
    // The non-uniform axis vector, a metadata array (Blosc zstd).
    let p = tmp.path().join("nonuniform_signal_axis.zspy");
    copy_dir(&fixtures_dir().join("nonuniform_signal_axis.zspy"), &p);
    let files = store_files(&p);
    let (key, good) = files
        .iter()
        .find(|(k, _)| k.ends_with("axis-1/axis/0"))
        .cloned()
        .unwrap();
    let path = p.join(&key);
    let mut errors = 0;
    for (what, bytes, must_fail) in corruptions(&good, &mut rng) {
        std::fs::write(&path, &bytes).unwrap();
        match read_zspy_file(&p) {
            Err(e) => {
                errors += 1;
                let msg = e.to_string();
                assert!(msg.contains("nonuniform_signal_axis.zspy"), "{what}: {msg}");
                assert!(msg.contains("axis-1/axis"), "{what}: {msg}");
            }
            Ok(_) => assert!(!must_fail, "{what}: read without error"),
        }
    }
    assert!(errors > 10, "{errors}");
}

/// A store with one uncompressed array `a` described by `zarray`, whose chunk `0` holds
/// `chunk`.
fn raw_store(root: &Path, zarray: &str, chunk: &[u8]) {
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    std::fs::write(root.join("a/.zarray"), zarray).unwrap();
    std::fs::write(root.join("a/0"), chunk).unwrap();
}

#[test]
fn wrong_chunk_sizes_and_unsupported_dtypes_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let zarray = r#"{"chunks": [4], "compressor": null, "dtype": "<f4", "fill_value": 0.0,
        "filters": null, "order": "C", "shape": [4], "zarr_format": 2}"#;
    for len in [0usize, 12, 15, 20] {
        let root = tmp.path().join(format!("w{len}.zspy"));
        raw_store(&root, zarray, &vec![1u8; len]);
        let store = ZarrStore::open(&root).unwrap();
        let src = ZspyArraySource::open_in(&store, "a").unwrap();
        let msg = src.read_chunk(&[0]).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("w{len}.zspy")) && msg.contains("/a/0"),
            "{msg}"
        );
        let g = ZarrDirGroup::open(&root).unwrap();
        let msg = g.read_dataset("a").unwrap_err().to_string();
        assert!(
            msg.contains("wrong chunk size") && msg.contains("/a/0"),
            "{msg}"
        );
    }
    // Unsupported element types: a clear error when opened lazily.
    for dtype in ["<M8[ns]", "<f2", "|V4"] {
        let root = tmp.path().join(format!("d{}.zspy", dtype.len()));
        let z = zarray.replace("<f4", dtype);
        raw_store(&root, &z, &[0u8; 32]);
        let store = ZarrStore::open(&root).unwrap();
        let err = ZspyArraySource::open_in(&store, "a").unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                SignalError::Unsupported { .. } | SignalError::Invalid { .. }
            ),
            "{msg}"
        );
        assert!(msg.contains("/a"), "{msg}");
    }
    // A bad .zarray: chunks that do not fit the shape; invalid JSON.
    let root = tmp.path().join("bad.zspy");
    raw_store(
        &root,
        &zarray.replace("\"chunks\": [4]", "\"chunks\": [0]"),
        &[0; 16],
    );
    let store = ZarrStore::open(&root).unwrap();
    let msg = ZspyArraySource::open_in(&store, "a")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("/a/.zarray"), "{msg}");
    std::fs::write(root.join("a/.zarray"), "{\"shape\": [4],").unwrap();
    let err = ZspyArraySource::open_in(&store, "a").unwrap_err();
    assert!(matches!(err, SignalError::Json { .. }), "{err}");
    assert!(err.to_string().contains("/a/.zarray"), "{err}");
}

#[test]
fn axes_that_disagree_with_the_data_shape_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("inconsistent.zspy");
    copy_dir(&fixtures_dir().join("spectrum_image_f32.zspy"), &p);
    let s = read_zspy_file(&p).unwrap().signals[0].clone();
    let zarray_path = p.join(format!(
        "{}/data/.zarray",
        s.group_path.trim_start_matches('/')
    ));
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&zarray_path).unwrap()).unwrap();
    let n = doc["shape"][1].as_u64().unwrap();
    doc["shape"][1] = json!(n + 1);
    std::fs::write(&zarray_path, doc.to_string()).unwrap();
    for err in [open_zspy(&p).unwrap_err(), open_zspy_data(&p).unwrap_err()] {
        let msg = err.to_string();
        assert!(matches!(err, SignalError::Invalid { .. }), "{msg}");
        assert!(msg.contains("inconsistent.zspy"), "{msg}");
        assert!(msg.contains(&format!("{}/axis-1", s.group_path)), "{msg}");
        assert!(msg.contains("data/.zarray"), "{msg}");
    }
}

#[test]
fn corrupt_zip_stores_are_errors_never_panics() {
    let good = std::fs::read(fixtures_dir().join("zip_store.zspy")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("zip_store.zspy");
    let mut rng = Lcg(3);
    let n = good.len();
    // The central directory and end record (the last ~4 KiB), every byte; elsewhere a
    // sample; and truncations.
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for i in n.saturating_sub(4096)..n {
        let mut b = good.clone();
        b[i] ^= 0x5A;
        cases.push((format!("byte {i} flipped"), b));
    }
    for _ in 0..300 {
        let i = (rng.next() as usize) % n;
        let mut b = good.clone();
        b[i] = rng.next() as u8;
        cases.push((format!("byte {i} changed"), b));
    }
    for cut in [0, 3, 21, 22, 100, n / 2, n - 22, n - 1] {
        cases.push((format!("truncated to {cut}"), good[..cut].to_vec()));
    }
    let mut errors = 0;
    for (what, bytes) in cases {
        std::fs::write(&p, &bytes).unwrap();
        let result = open_zspy(&p).and_then(|signals| {
            for s in signals {
                if let SignalData::Lazy(l) = s.data {
                    l.compute_with(&exec()).map_err(|e| SignalError::Compute {
                        file: "zip_store.zspy".into(),
                        source: e,
                    })?;
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            errors += 1;
            let msg = e.to_string();
            assert!(msg.contains("zip_store.zspy"), "{what}: {msg}");
        }
    }
    assert!(errors > 100, "only {errors} corruptions detected");
}
