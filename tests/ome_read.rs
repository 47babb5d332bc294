//! Reading OME-Zarr images ([`OmeImage`], [`open_ome_zarr`]): small stores built here with
//! `zarrs` (arrays) and hand-written NGFF metadata (v0.4 on Zarr v2 with `/` and `.` chunk
//! keys, v0.5 on Zarr v3, sharded v3, a 5-axis `tczyx` image, multiscale-level
//! transformations, v0.3 string axes). Every level's shape, chunks, dtype, values and axes
//! (name, scale, offset, units, navigate) are checked against what was written; bad stores
//! give errors naming the store and the key, never a panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lazyspy::signal::ome_zarr::{OmeAxisType, OmeImage, is_ome_zarr, open_ome_zarr};
use lazyspy::signal::{Signal, SignalError};
use lazyspy::{DType, ExecConfig};
use ndarray::{ArrayD, IxDyn, Slice};
use serde_json::{Value as J, json};
use zarrs::array::{Array, ArrayBuilder, ArrayMetadata, ArrayMetadataOptions};
use zarrs::filesystem::FilesystemStore;
use zarrs::metadata::FillValueMetadata;

// ------------------------------------------------------------------------------------
// Building stores
// ------------------------------------------------------------------------------------

/// Element types used here, with their Zarr v2 typestr and v3 data type name.
trait Elem: lazyspy::Element + zarrs::array::Element + Copy + PartialEq + std::fmt::Debug {
    const V2: &'static str;
    const V3: &'static str;
    fn from_index(i: usize) -> Self;
}

impl Elem for u16 {
    const V2: &'static str = "<u2";
    const V3: &'static str = "uint16";
    fn from_index(i: usize) -> Self {
        (i * 7 % 65521) as u16
    }
}

impl Elem for f32 {
    const V2: &'static str = "<f4";
    const V3: &'static str = "float32";
    fn from_index(i: usize) -> Self {
        i as f32 * 0.25 - 3.0
    }
}

impl Elem for u8 {
    const V2: &'static str = "|u1";
    const V3: &'static str = "uint8";
    fn from_index(i: usize) -> Self {
        (i * 13 % 251) as u8
    }
}

fn ramp<T: Elem>(shape: &[usize]) -> ArrayD<T> {
    let mut k = 0;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        k += 1;
        T::from_index(k)
    })
}

/// `level[..., ::2, ::2]` (nearest downsampling of the last two axes).
fn halve<T: Elem>(a: &ArrayD<T>) -> ArrayD<T> {
    let nd = a.ndim();
    a.slice_each_axis(|ax| {
        if ax.axis.index() + 2 >= nd {
            Slice::new(0, None, 2)
        } else {
            Slice::from(..)
        }
    })
    .to_owned()
}

/// The levels of a nearest pyramid of `n` levels over `a`.
fn pyramid<T: Elem>(a: ArrayD<T>, n: usize) -> Vec<ArrayD<T>> {
    let mut out = vec![a];
    while out.len() < n {
        let next = halve(out.last().unwrap());
        out.push(next);
    }
    out
}

fn fs(root: &Path) -> Arc<FilesystemStore> {
    Arc::new(FilesystemStore::new(root).unwrap())
}

/// A Zarr v2 array at `root/path` (Blosc zstd, fill 0) with the given chunk separator.
fn write_v2<T: Elem>(root: &Path, path: &str, data: &ArrayD<T>, chunks: &[usize], sep: &str) {
    let zarray = json!({
        "zarr_format": 2,
        "shape": data.shape(),
        "chunks": chunks,
        "dtype": T::V2,
        "compressor": {"id": "blosc", "cname": "zstd", "clevel": 1, "shuffle": 1, "blocksize": 0},
        "fill_value": 0,
        "order": "C",
        "filters": null,
        "dimension_separator": sep,
    });
    std::fs::create_dir_all(root.join(path)).unwrap();
    std::fs::write(root.join(path).join(".zarray"), zarray.to_string()).unwrap();
    let meta: zarrs::metadata::v2::ArrayMetadataV2 = serde_json::from_value(zarray).unwrap();
    let array =
        Array::new_with_metadata(fs(root), &format!("/{path}"), ArrayMetadata::V2(meta)).unwrap();
    array
        .store_array_subset(&array.subset_all(), data.as_standard_layout().to_owned())
        .unwrap();
}

/// A Zarr v3 array at `root/path` (default `c/` chunk keys, gzip), sharded when `inner`
/// is given (`chunks` is then the shard shape).
fn write_v3<T: Elem>(
    root: &Path,
    path: &str,
    data: &ArrayD<T>,
    chunks: &[usize],
    inner: Option<&[usize]>,
    names: &[&str],
) {
    let shape: Vec<u64> = data.shape().iter().map(|&n| n as u64).collect();
    let chunks: Vec<u64> = chunks.iter().map(|&n| n as u64).collect();
    let fill: FillValueMetadata = serde_json::from_value(json!(0)).unwrap();
    let mut b = ArrayBuilder::new(shape, chunks, T::V3, fill);
    b.bytes_to_bytes_codecs(vec![Arc::new(
        zarrs::array::codec::GzipCodec::new(3).unwrap(),
    )])
    .dimension_names(Some(names.to_vec()));
    if let Some(inner) = inner {
        b.subchunk_shape(inner.iter().map(|&n| n as u64).collect::<Vec<_>>());
    }
    let array = b.build(fs(root), &format!("/{path}")).unwrap();
    array
        .store_metadata_opt(&ArrayMetadataOptions::default().with_include_zarrs_metadata(false))
        .unwrap();
    array
        .store_array_subset(&array.subset_all(), data.as_standard_layout().to_owned())
        .unwrap();
}

/// One NGFF dataset entry: `path`, a scale and (when given) a translation.
fn dataset(path: &str, scale: &[f64], translation: Option<&[f64]>) -> J {
    let mut t = vec![json!({"type": "scale", "scale": scale})];
    if let Some(tr) = translation {
        t.push(json!({"type": "translation", "translation": tr}));
    }
    json!({"path": path, "coordinateTransformations": t})
}

fn write_root_v04(root: &Path, multiscale: J) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    let attrs = json!({"multiscales": [multiscale]});
    std::fs::write(root.join(".zattrs"), attrs.to_string()).unwrap();
}

fn write_root_v05(root: &Path, multiscale: J) {
    std::fs::create_dir_all(root).unwrap();
    let doc = json!({
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {"ome": {"version": "0.5", "multiscales": [multiscale]}},
    });
    std::fs::write(root.join("zarr.json"), doc.to_string()).unwrap();
}

// ------------------------------------------------------------------------------------
// Checking signals
// ------------------------------------------------------------------------------------

fn exec() -> ExecConfig {
    ExecConfig::default().with_threads(2)
}

fn values<T: Elem>(s: &Signal) -> ArrayD<T> {
    let a = s.data.as_lazy().expect("lazy data");
    a.compute_with(&exec())
        .unwrap()
        .into_typed::<T>()
        .unwrap()
        .into_owned()
}

/// One expected axis: name, units, scale, offset, navigate.
type Ax<'a> = (&'a str, Option<&'a str>, f64, f64, bool);

fn check_axes(s: &Signal, expected: &[Ax]) {
    let axes = &s.tree.axes;
    assert_eq!(axes.len(), expected.len());
    let shape = s.data.shape();
    for (i, (a, e)) in axes.iter().zip(expected).enumerate() {
        assert_eq!(a.name(), Some(e.0), "axis {i} name");
        assert_eq!(a.units(), e.1, "axis {i} units");
        let (scale, offset) = (a.scale().unwrap(), a.offset().unwrap());
        assert!(
            (scale - e.2).abs() < 1e-12,
            "axis {i} scale {scale} != {}",
            e.2
        );
        assert!(
            (offset - e.3).abs() < 1e-12,
            "axis {i} offset {offset} != {}",
            e.3
        );
        assert_eq!(a.navigate(), Some(e.4), "axis {i} navigate");
        assert_eq!(a.size(), Some(shape[i]), "axis {i} size");
    }
}

fn err_text(e: &SignalError) -> String {
    e.to_string()
}

// ------------------------------------------------------------------------------------
// v0.4 on Zarr v2
// ------------------------------------------------------------------------------------

/// A 3-level v0.4 pyramid `c,y,x` (uint16) with units and a translation.
fn make_v04(root: &Path, sep: &str) -> Vec<ArrayD<u16>> {
    let levels = pyramid(ramp::<u16>(&[2, 21, 18]), 3);
    let mut datasets = vec![];
    for (k, a) in levels.iter().enumerate() {
        let f = (1u32 << k) as f64;
        write_v2(root, &k.to_string(), a, &[1, 8, 8], sep);
        datasets.push(dataset(
            &k.to_string(),
            &[1.0, 0.5 * f, 0.25 * f],
            Some(&[0.0, 10.0, -3.0]),
        ));
    }
    write_root_v04(
        root,
        json!({
            "version": "0.4",
            "name": "cells",
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": datasets,
            "type": "nearest",
        }),
    );
    levels
}

fn check_v04(root: &Path, levels: &[ArrayD<u16>]) {
    let image = OmeImage::open(root).unwrap();
    assert_eq!(image.version(), "0.4");
    assert_eq!(image.name(), Some("cells"));
    let names: Vec<_> = image.axes().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["c", "y", "x"]);
    assert_eq!(image.axes()[1].unit.as_deref(), Some("micrometer"));
    assert_eq!(image.axes()[0].kind, OmeAxisType::Channel);
    assert_eq!(image.levels().len(), 3);
    for (k, expected) in levels.iter().enumerate() {
        let lv = &image.levels()[k];
        let f = (1u32 << k) as f64;
        assert_eq!(lv.path, k.to_string());
        assert_eq!(lv.shape, expected.shape());
        let chunks: Vec<usize> = expected
            .shape()
            .iter()
            .zip([1, 8, 8])
            .map(|(&n, c)| c.min(n))
            .collect();
        assert_eq!(lv.chunks, chunks);
        assert_eq!(lv.dtype, DType::U16);
        assert_eq!(lv.scale, [1.0, 0.5 * f, 0.25 * f]);
        assert_eq!(lv.translation, [0.0, 10.0, -3.0]);
        let s = image.signal(k).unwrap();
        assert_eq!(s.data.shape(), expected.shape());
        assert_eq!(values::<u16>(&s), *expected, "level {k}");
        check_axes(
            &s,
            &[
                ("c", None, 1.0, 0.0, true),
                ("y", Some("µm"), 0.5 * f, 10.0, false),
                ("x", Some("µm"), 0.25 * f, -3.0, false),
            ],
        );
        assert_eq!(s.tree.title(), Some("cells"));
        assert_eq!(s.tree.signal_dimension(), 2);
        let om = &s.tree.original_metadata;
        assert_eq!(
            om.get_path("OME/version").and_then(|v| v.as_str()),
            Some("0.4")
        );
        assert_eq!(
            om.get_path("OME/level").and_then(|v| v.as_i64()),
            Some(k as i64)
        );
        assert_eq!(
            om.get_path("OME/path").and_then(|v| v.as_str()),
            Some(&*k.to_string())
        );
        assert_eq!(om.get_path("OME/levels").and_then(|v| v.as_i64()), Some(3));
        assert_eq!(
            om.get_path("OME/axes/y/unit").and_then(|v| v.as_str()),
            Some("micrometer")
        );
        assert_eq!(
            om.get_path("OME/axes/c/type").and_then(|v| v.as_str()),
            Some("channel")
        );
    }
}

#[test]
fn v04_pyramid_with_slash_keys_reads_every_level() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("img.ome.zarr");
    let levels = make_v04(&root, "/");
    assert!(root.join("0/0/0/0").is_file(), "chunks use '/' keys");
    check_v04(&root, &levels);
}

#[test]
fn v04_pyramid_with_dot_keys_reads_every_level() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("img.ome.zarr");
    let levels = make_v04(&root, ".");
    assert!(root.join("0/0.0.0").is_file(), "chunks use '.' keys");
    check_v04(&root, &levels);
    assert!(is_ome_zarr(&root));
}

#[test]
fn v04_dot_keys_without_recorded_separator_are_found() {
    // zarr < 2.8 wrote no `dimension_separator`; the default is '.'.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("old.zarr");
    let levels = make_v04(&root, ".");
    for k in 0..3 {
        let p = root.join(format!("{k}/.zarray"));
        let mut doc: J = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        doc.as_object_mut().unwrap().remove("dimension_separator");
        std::fs::write(&p, doc.to_string()).unwrap();
    }
    check_v04(&root, &levels);
}

#[test]
fn open_ome_zarr_gives_the_chosen_level() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("img.ome.zarr");
    let levels = make_v04(&root, "/");
    let s = open_ome_zarr(&root, 2).unwrap();
    assert_eq!(values::<u16>(&s), levels[2]);
    assert_eq!(s.tree.axes[2].scale(), Some(1.0));
    assert_eq!(
        s.tree
            .metadata
            .get_path("General/original_filename")
            .and_then(|v| v.as_str()),
        Some("img.ome.zarr")
    );
}

/// A 5-axis `tczyx` image (float32, v0.4), 2 levels: time in milliseconds, z in
/// nanometres (a third space axis that stays a navigation axis).
#[test]
fn v04_tczyx_five_axes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tczyx.ome.zarr");
    let levels = pyramid(ramp::<f32>(&[3, 2, 4, 12, 10]), 2);
    let mut datasets = vec![];
    for (k, a) in levels.iter().enumerate() {
        let f = (1u32 << k) as f64;
        write_v2(root.as_path(), &k.to_string(), a, &[1, 1, 2, 5, 5], "/");
        datasets.push(dataset(
            &k.to_string(),
            &[40.0, 1.0, 200.0, 65.0 * f, 65.0 * f],
            Some(&[1000.0, 0.0, -400.0, 32.5 * (f - 1.0), 32.5 * (f - 1.0)]),
        ));
    }
    write_root_v04(
        &root,
        json!({
            "version": "0.4",
            "name": "timelapse",
            "axes": [
                {"name": "t", "type": "time", "unit": "millisecond"},
                {"name": "c", "type": "channel"},
                {"name": "z", "type": "space", "unit": "nanometer"},
                {"name": "y", "type": "space", "unit": "nanometer"},
                {"name": "x", "type": "space", "unit": "nanometer"},
            ],
            "datasets": datasets,
        }),
    );
    let image = OmeImage::open(&root).unwrap();
    for (k, expected) in levels.iter().enumerate() {
        let f = (1u32 << k) as f64;
        let s = image.signal(k).unwrap();
        assert_eq!(values::<f32>(&s), *expected);
        assert_eq!(image.levels()[k].dtype, DType::F32);
        let t = 32.5 * (f - 1.0);
        check_axes(
            &s,
            &[
                ("t", Some("ms"), 40.0, 1000.0, true),
                ("c", None, 1.0, 0.0, true),
                ("z", Some("nm"), 200.0, -400.0, true),
                ("y", Some("nm"), 65.0 * f, t, false),
                ("x", Some("nm"), 65.0 * f, t, false),
            ],
        );
    }
}

/// v0.3: axes are plain names (types implied), no transformations (scale 1).
#[test]
fn v03_string_axes_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("v03.zarr");
    let a = ramp::<u8>(&[3, 9, 7]);
    write_v2(&root, "0", &a, &[3, 4, 4], "/");
    write_root_v04(
        &root,
        json!({"version": "0.3", "axes": ["z", "y", "x"], "datasets": [{"path": "0"}]}),
    );
    let s = open_ome_zarr(&root, 0).unwrap();
    assert_eq!(values::<u8>(&s), a);
    check_axes(
        &s,
        &[
            ("z", None, 1.0, 0.0, true),
            ("y", None, 1.0, 0.0, false),
            ("x", None, 1.0, 0.0, false),
        ],
    );
    assert_eq!(s.tree.title(), Some(""));
}

// ------------------------------------------------------------------------------------
// v0.5 on Zarr v3
// ------------------------------------------------------------------------------------

/// A v0.5 image `c,z,y,x` (float32) of 3 levels with multiscale-level transformations:
/// the level's scale is multiplied by the multiscale's, its translation scaled then
/// shifted.
#[test]
fn v05_pyramid_with_multiscale_transforms() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("img.ome.zarr");
    let levels = pyramid(ramp::<f32>(&[2, 3, 17, 22]), 3);
    let names = ["c", "z", "y", "x"];
    let mut datasets = vec![];
    for (k, a) in levels.iter().enumerate() {
        let f = (1u32 << k) as f64;
        write_v3(&root, &k.to_string(), a, &[1, 1, 8, 8], None, &names);
        datasets.push(dataset(
            &k.to_string(),
            &[1.0, 2.0, 0.5 * f, 0.5 * f],
            Some(&[0.0, 0.0, 0.25 * (f - 1.0), 0.25 * (f - 1.0)]),
        ));
    }
    write_root_v05(
        &root,
        json!({
            "name": "v3 image",
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "z", "type": "space", "unit": "micrometer"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": datasets,
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, 1.0, 3.0, 3.0]},
                {"type": "translation", "translation": [0.0, 5.0, 7.0, -1.0]},
            ],
        }),
    );
    assert!(root.join("0/c/0/0/0/0").is_file(), "default v3 chunk keys");
    assert!(is_ome_zarr(&root));
    let image = OmeImage::open(&root).unwrap();
    assert_eq!(image.version(), "0.5");
    assert_eq!(image.name(), Some("v3 image"));
    for (k, expected) in levels.iter().enumerate() {
        let f = (1u32 << k) as f64;
        let lv = &image.levels()[k];
        assert_eq!(lv.shape, expected.shape());
        assert_eq!(lv.chunks[..2], [1, 1]);
        assert_eq!(lv.dtype, DType::F32);
        let s = image.signal(k).unwrap();
        assert_eq!(values::<f32>(&s), *expected, "level {k}");
        let t = 0.25 * (f - 1.0) * 3.0;
        check_axes(
            &s,
            &[
                ("c", None, 1.0, 0.0, true),
                ("z", Some("µm"), 2.0, 5.0, true),
                ("y", Some("µm"), 1.5 * f, t + 7.0, false),
                ("x", Some("µm"), 1.5 * f, t - 1.0, false),
            ],
        );
        assert_eq!(
            s.tree
                .original_metadata
                .get_path("OME/version")
                .and_then(|v| v.as_str()),
            Some("0.5")
        );
    }
}

/// A sharded v3 level (shards of 16x16, inner chunks of 4x4, partial edge shards): the
/// engine's chunk is the shard.
#[test]
fn v05_sharded_levels() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sharded.ome.zarr");
    let levels = pyramid(ramp::<u8>(&[30, 37]), 2);
    let mut datasets = vec![];
    for (k, a) in levels.iter().enumerate() {
        let f = (1u32 << k) as f64;
        write_v3(
            &root,
            &k.to_string(),
            a,
            &[16, 16],
            Some(&[4, 4]),
            &["y", "x"],
        );
        datasets.push(dataset(&k.to_string(), &[f, f], None));
    }
    write_root_v05(
        &root,
        json!({
            "axes": [
                {"name": "y", "type": "space", "unit": "angstrom"},
                {"name": "x", "type": "space", "unit": "angstrom"},
            ],
            "datasets": datasets,
        }),
    );
    let meta: J =
        serde_json::from_str(&std::fs::read_to_string(root.join("0/zarr.json")).unwrap()).unwrap();
    assert_eq!(
        meta["codecs"][0]["name"], "sharding_indexed",
        "the level is sharded"
    );
    let image = OmeImage::open(&root).unwrap();
    for (k, expected) in levels.iter().enumerate() {
        let f = (1u32 << k) as f64;
        let chunks: Vec<usize> = expected.shape().iter().map(|&n| n.min(16)).collect();
        assert_eq!(image.levels()[k].chunks, chunks, "the shard is the chunk");
        let s = image.signal(k).unwrap();
        assert_eq!(values::<u8>(&s), *expected, "level {k}");
        check_axes(
            &s,
            &[
                ("y", Some("Å"), f, 0.0, false),
                ("x", Some("Å"), f, 0.0, false),
            ],
        );
        // A region across shard borders, read through the source.
        let lazy = image.lazy(k).unwrap();
        let src = lazy.into_typed::<u8>().unwrap();
        let all = src.compute_with(&exec()).unwrap();
        assert_eq!(all, *expected);
    }
}

// ------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------

/// A valid one-level v0.4 image `y,x` to break in the error tests.
fn small_v04(root: &Path) -> PathBuf {
    let a = ramp::<u16>(&[6, 5]);
    write_v2(root, "0", &a, &[4, 4], "/");
    write_root_v04(
        root,
        json!({
            "version": "0.4",
            "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": [dataset("0", &[1.0, 1.0], None)],
        }),
    );
    root.to_path_buf()
}

fn set_multiscale(root: &Path, edit: impl FnOnce(&mut J)) {
    let p = root.join(".zattrs");
    let mut doc: J = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut doc["multiscales"][0]);
    std::fs::write(&p, doc.to_string()).unwrap();
}

fn open_err(root: &Path) -> SignalError {
    match OmeImage::open(root) {
        Ok(i) => panic!("expected an error, opened {i:?}"),
        Err(e) => e,
    }
}

#[test]
fn not_an_ome_zarr_store() {
    let dir = tempfile::tempdir().unwrap();
    // A plain Zarr group with other attributes (a .zspy root).
    let root = dir.path().join("plain.zarr");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join(".zgroup"), r#"{"zarr_format": 2}"#).unwrap();
    std::fs::write(
        root.join(".zattrs"),
        r#"{"file_format": "ZSpy", "file_format_version": "3.3"}"#,
    )
    .unwrap();
    let e = open_err(&root);
    assert!(
        matches!(e, SignalError::Invalid { ref key, .. } if key == "/.zattrs"),
        "{e}"
    );
    assert!(err_text(&e).contains("not an OME-Zarr image"), "{e}");
    assert!(err_text(&e).contains("plain.zarr"), "{e}");
    assert!(!is_ome_zarr(&root));
    // An empty multiscales list is not an image either.
    std::fs::write(root.join(".zattrs"), r#"{"multiscales": []}"#).unwrap();
    assert!(err_text(&open_err(&root)).contains("not an OME-Zarr image"));
    // A v3 group without `ome`.
    let v3 = dir.path().join("v3.zarr");
    std::fs::create_dir_all(&v3).unwrap();
    std::fs::write(
        v3.join("zarr.json"),
        r#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#,
    )
    .unwrap();
    let e = open_err(&v3);
    assert!(
        matches!(e, SignalError::Invalid { ref key, .. } if key == "/zarr.json"),
        "{e}"
    );
    // No root metadata at all.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(matches!(open_err(&empty), SignalError::Missing { .. }));
    assert!(!is_ome_zarr(&empty));
    // No such path.
    let e = open_err(&dir.path().join("nope.ome.zarr"));
    assert!(matches!(e, SignalError::Io { .. }), "{e}");
    assert!(!is_ome_zarr(dir.path().join("nope.ome.zarr")));
    // A .zspy fixture of the repository.
    let zspy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hyperspy");
    if let Some(f) = std::fs::read_dir(&zspy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "zspy") && p.is_dir())
    {
        assert!(!is_ome_zarr(&f), "{}", f.display());
        assert!(err_text(&open_err(&f)).contains("not an OME-Zarr image"));
    }
}

#[test]
fn invalid_root_json_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = small_v04(&dir.path().join("a.zarr"));
    std::fs::write(root.join(".zattrs"), r#"{"multiscales": [ {"#).unwrap();
    let e = open_err(&root);
    assert!(
        matches!(e, SignalError::Json { ref key, .. } if key == "/.zattrs"),
        "{e}"
    );
    assert!(!is_ome_zarr(&root));
}

#[test]
fn unsupported_or_missing_versions() {
    let dir = tempfile::tempdir().unwrap();
    for (i, v) in [json!("0.6"), json!("0.5-dev"), json!(4), J::Null]
        .into_iter()
        .enumerate()
    {
        let root = small_v04(&dir.path().join(format!("v{i}.zarr")));
        set_multiscale(&root, |m| {
            if v.is_null() {
                m.as_object_mut().unwrap().remove("version");
            } else {
                m["version"] = v.clone();
            }
        });
        let e = open_err(&root);
        assert!(
            matches!(e, SignalError::Unsupported { ref key, .. } if key == "/.zattrs"),
            "{e}"
        );
        assert!(err_text(&e).contains("version"), "{e}");
    }
    // A v0.5 root whose `ome.version` is something else.
    let root = dir.path().join("v3.zarr");
    write_v3(&root, "0", &ramp::<u8>(&[4, 4]), &[4, 4], None, &["y", "x"]);
    write_root_v05(
        &root,
        json!({"axes": [{"name": "y"}, {"name": "x"}], "datasets": [dataset("0", &[1.0, 1.0], None)]}),
    );
    assert!(OmeImage::open(&root).is_ok());
    let p = root.join("zarr.json");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"0.5\"", "\"0.9\"");
    std::fs::write(&p, text).unwrap();
    let e = open_err(&root);
    assert!(err_text(&e).contains("'0.9'"), "{e}");
}

#[test]
fn level_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let root = small_v04(&dir.path().join("a.zarr"));
    let image = OmeImage::open(&root).unwrap();
    for level in [1, 7] {
        let e = image.signal(level).unwrap_err();
        assert!(matches!(e, SignalError::Invalid { .. }), "{e}");
        assert!(
            err_text(&e).contains(&format!("level {level} is out of range")),
            "{e}"
        );
    }
    assert!(open_ome_zarr(&root, 3).is_err());
}

#[test]
fn missing_dataset_array() {
    let dir = tempfile::tempdir().unwrap();
    let root = small_v04(&dir.path().join("a.zarr"));
    set_multiscale(&root, |m| {
        m["datasets"]
            .as_array_mut()
            .unwrap()
            .push(dataset("1", &[2.0, 2.0], None))
    });
    let e = open_err(&root);
    assert!(
        matches!(e, SignalError::Missing { ref key, .. } if key == "/1"),
        "{e}"
    );
    // A dataset without a path.
    set_multiscale(&root, |m| {
        m["datasets"][1] = json!({"coordinateTransformations": []})
    });
    let e = open_err(&root);
    assert!(err_text(&e).contains("datasets[1]"), "{e}");
    // No datasets at all.
    set_multiscale(&root, |m| m["datasets"] = json!([]));
    assert!(err_text(&open_err(&root)).contains("datasets"));
}

#[test]
fn axes_count_must_match_the_array() {
    let dir = tempfile::tempdir().unwrap();
    let root = small_v04(&dir.path().join("a.zarr"));
    set_multiscale(&root, |m| {
        m["axes"] = json!([{"name": "z", "type": "space"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]);
        m["datasets"] = json!([dataset("0", &[1.0, 1.0, 1.0], None)]);
    });
    let e = open_err(&root);
    assert!(
        matches!(e, SignalError::Invalid { ref key, .. } if key == "/0"),
        "{e}"
    );
    assert!(err_text(&e).contains("3 axes"), "{e}");
    // Axes with a repeated or missing name, or not a list.
    for axes in [
        json!([{"name": "x"}, {"name": "x"}]),
        json!([{"type": "space"}, {"name": "x"}]),
        json!([{"name": 3}, {"name": "x"}]),
        json!("yx"),
    ] {
        set_multiscale(&root, |m| {
            m["axes"] = axes.clone();
            m["datasets"] = json!([dataset("0", &[1.0, 1.0], None)]);
        });
        let e = open_err(&root);
        assert!(
            matches!(e, SignalError::Invalid { ref key, .. } if key == "/.zattrs"),
            "{axes}: {e}"
        );
        assert!(err_text(&e).contains("axes"), "{e}");
    }
}

#[test]
fn bad_transformations() {
    let dir = tempfile::tempdir().unwrap();
    let root = small_v04(&dir.path().join("a.zarr"));
    let cases = [
        // Wrong length.
        json!([{"type": "scale", "scale": [1.0]}]),
        // Translation first.
        json!([{"type": "translation", "translation": [1.0, 1.0]}, {"type": "scale", "scale": [1.0, 1.0]}]),
        // Not numbers.
        json!([{"type": "scale", "scale": ["a", 1.0]}]),
        // No scale.
        json!([]),
        // Not a list.
        json!({"type": "scale", "scale": [1.0, 1.0]}),
    ];
    for t in cases {
        set_multiscale(&root, |m| {
            m["datasets"][0]["coordinateTransformations"] = t.clone()
        });
        let e = open_err(&root);
        assert!(
            matches!(e, SignalError::Invalid { ref key, .. } if key == "/.zattrs"),
            "{t}: {e}"
        );
        assert!(
            err_text(&e).contains("datasets[0].coordinateTransformations"),
            "{e}"
        );
    }
    // Missing altogether (required from 0.4 on).
    set_multiscale(&root, |m| {
        m["datasets"][0]
            .as_object_mut()
            .unwrap()
            .remove("coordinateTransformations");
    });
    assert!(err_text(&open_err(&root)).contains("coordinateTransformations"));
    // A transformation stored in a file, and an unknown type: unsupported.
    for t in [
        json!([{"type": "scale", "path": "scale.bin"}]),
        json!([{"type": "scale", "scale": [1.0, 1.0]}, {"type": "affine", "affine": []}]),
    ] {
        set_multiscale(&root, |m| {
            m["datasets"][0]["coordinateTransformations"] = t.clone()
        });
        assert!(
            matches!(open_err(&root), SignalError::Unsupported { .. }),
            "{t}"
        );
    }
    // A bad multiscale-level list.
    set_multiscale(&root, |m| {
        m["datasets"][0]["coordinateTransformations"] =
            json!([{"type": "scale", "scale": [1.0, 1.0]}]);
        m["coordinateTransformations"] = json!([{"type": "scale", "scale": [1.0, 2.0, 3.0]}]);
    });
    let e = open_err(&root);
    assert!(
        err_text(&e).contains("multiscales[0].coordinateTransformations"),
        "{e}"
    );
}

#[test]
fn an_incomplete_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = small_v04(&dir.path().join("a.zarr"));
    std::fs::write(root.join(lazyspy::io::atomic::INCOMPLETE_MARKER), "{}").unwrap();
    assert!(matches!(open_err(&root), SignalError::Incomplete { .. }));
}

#[test]
fn a_corrupt_chunk_fails_the_computation_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = small_v04(&dir.path().join("a.zarr"));
    std::fs::write(root.join("0/1/0"), b"not blosc").unwrap();
    let s = open_ome_zarr(&root, 0).unwrap();
    let e = s.data.as_lazy().unwrap().compute_with(&exec()).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("a.zarr") && text.contains("0/1/0"), "{text}");
}

// ------------------------------------------------------------------------------------
// Command line: an OME-Zarr directory is an input (level 0)
// ------------------------------------------------------------------------------------

fn lazyspy_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lazyspy"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn ok_stdout(o: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "failed: {err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn cli_info_shows_the_levels() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("img.ome.zarr");
    make_v04(&root, "/");
    let p = root.to_str().unwrap();
    let text = ok_stdout(&lazyspy_cli(&["info", p]));
    assert!(text.contains("(ome-zarr)"), "{text}");
    assert!(
        text.contains("OME-Zarr v0.4, 3 level(s): 0 (2,21,18) 1 (2,11,9) 2 (2,6,5)"),
        "{text}"
    );
    assert!(text.contains("µm"), "{text}");
    let doc: J = serde_json::from_str(&ok_stdout(&lazyspy_cli(&["info", p, "--json"]))).unwrap();
    assert_eq!(doc["format"], "ome-zarr");
    assert_eq!(doc["ome"]["version"], "0.4");
    assert_eq!(doc["ome"]["name"], "cells");
    assert_eq!(
        doc["ome"]["axes"][1],
        json!({"name": "y", "type": "space", "unit": "micrometer"})
    );
    let levels = doc["ome"]["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 3);
    assert_eq!(levels[1]["shape"], json!([2, 11, 9]));
    assert_eq!(levels[1]["chunks"], json!([1, 8, 8]));
    assert_eq!(levels[1]["dtype"], "uint16");
    assert_eq!(levels[2]["scale"], json!([1.0, 2.0, 1.0]));
    assert_eq!(levels[2]["translation"], json!([0.0, 10.0, -3.0]));
    assert_eq!(doc["signals"][0]["shape"], json!([2, 21, 18]));
}

#[test]
fn cli_stats_and_convert_read_level_zero() {
    let dir = tempfile::tempdir().unwrap();
    // v0.5 (Zarr v3), named without any Zarr extension: detected by its attributes.
    let root = dir.path().join("image_folder");
    let levels = pyramid(ramp::<f32>(&[3, 20, 26]), 2);
    for (k, a) in levels.iter().enumerate() {
        write_v3(
            &root,
            &k.to_string(),
            a,
            &[1, 8, 8],
            Some(&[1, 4, 4]),
            &["z", "y", "x"],
        );
    }
    write_root_v05(
        &root,
        json!({
            "name": "stack",
            "axes": [
                {"name": "z", "type": "space", "unit": "nanometer"},
                {"name": "y", "type": "space", "unit": "nanometer"},
                {"name": "x", "type": "space", "unit": "nanometer"},
            ],
            "datasets": [
                dataset("0", &[5.0, 0.5, 0.5], Some(&[1.0, 2.0, 3.0])),
                dataset("1", &[5.0, 1.0, 1.0], Some(&[1.0, 2.25, 3.25])),
            ],
        }),
    );
    let p = root.to_str().unwrap();
    let stats: J = serde_json::from_str(&ok_stdout(&lazyspy_cli(&["stats", p, "--json"]))).unwrap();
    let row = &stats["signals"][0];
    let l0 = &levels[0];
    assert_eq!(row["count"], json!(l0.len()));
    let min = l0.iter().cloned().fold(f32::INFINITY, f32::min) as f64;
    let max = l0.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = l0.iter().map(|&v| v as f64).sum();
    assert_eq!(row["min"].as_f64(), Some(min));
    assert_eq!(row["max"].as_f64(), Some(max));
    assert!((row["sum"].as_f64().unwrap() - sum).abs() < 1e-6 * sum.abs().max(1.0));

    let expected_axes: [Ax; 3] = [
        ("z", Some("nm"), 5.0, 1.0, true),
        ("y", Some("nm"), 0.5, 2.0, false),
        ("x", Some("nm"), 0.5, 3.0, false),
    ];
    let zspy = dir.path().join("out.zspy");
    ok_stdout(&lazyspy_cli(&[
        "convert",
        p,
        zspy.to_str().unwrap(),
        "--no-progress",
    ]));
    let s = lazyspy::signal::open_zspy(&zspy).unwrap().remove(0);
    assert_eq!(values::<f32>(&s), *l0);
    check_axes(&s, &expected_axes);
    assert_eq!(s.tree.title(), Some("stack"));
    assert_eq!(
        s.tree
            .original_metadata
            .get_path("OME/version")
            .and_then(|v| v.as_str()),
        Some("0.5")
    );
    let hspy = dir.path().join("out.hspy");
    ok_stdout(&lazyspy_cli(&[
        "convert",
        p,
        hspy.to_str().unwrap(),
        "--no-progress",
    ]));
    let s = lazyspy::signal::open_hspy(&hspy).unwrap().remove(0);
    assert_eq!(values::<f32>(&s), *l0);
    check_axes(&s, &expected_axes);
}

#[test]
fn cli_refuses_an_incomplete_ome_zarr() {
    let dir = tempfile::tempdir().unwrap();
    let root = small_v04(&dir.path().join("a.ome.zarr"));
    std::fs::write(root.join(lazyspy::io::atomic::INCOMPLETE_MARKER), "{}").unwrap();
    let o = lazyspy_cli(&["info", root.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("incomplete"), "{err}");
}

// ------------------------------------------------------------------------------------
// Round trip through lazyspy's own pyramid writer (the contract of both sides)
// ------------------------------------------------------------------------------------

/// `level[..., 2i:2i+2, 2j:2j+2].mean()` of the samples that exist, in float64, cast back.
fn mean_halve(a: &ArrayD<f32>) -> ArrayD<f32> {
    let (nz, ny, nx) = (a.shape()[0], a.shape()[1], a.shape()[2]);
    ArrayD::from_shape_fn(IxDyn(&[nz, ny.div_ceil(2), nx.div_ceil(2)]), |ix| {
        let (mut sum, mut n) = (0f64, 0f64);
        for y in 2 * ix[1]..(2 * ix[1] + 2).min(ny) {
            for x in 2 * ix[2]..(2 * ix[2] + 2).min(nx) {
                sum += a[[ix[0], y, x]] as f64;
                n += 1.0;
            }
        }
        (sum / n) as f32
    })
}

#[test]
fn reads_what_the_pyramid_writer_wrote() {
    use lazyspy::signal::Axis;
    use lazyspy::signal::ome_zarr::{OmeVersion, PyramidMethod, PyramidOptions, write_ome_zarr};
    let data = ramp::<f32>(&[3, 37, 30]);
    let lazy = lazyspy::LazyArray::from_array(data.clone(), &[1, 16, 16]).unwrap();
    let axes = vec![
        Axis::uniform(Some("z"), Some("nm"), 3, 2.0, 1.0, true),
        Axis::uniform(Some("y"), Some("nm"), 37, 0.5, 10.0, false),
        Axis::uniform(Some("x"), Some("nm"), 30, 0.25, -3.0, false),
    ];
    let signal = Signal::with_axes(lazy.into_dyn(), axes, "round trip", "");
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (OmeVersion::V04, PyramidMethod::Mean, None),
        (OmeVersion::V05, PyramidMethod::Nearest, None),
        (OmeVersion::V05, PyramidMethod::Mean, Some(2)),
    ];
    for (i, (version, method, shard)) in cases.into_iter().enumerate() {
        let root = dir.path().join(format!("rt{i}.ome.zarr"));
        let opts = PyramidOptions {
            version,
            method,
            levels: Some(3),
            chunk: 8,
            shard,
            ..PyramidOptions::default()
        };
        write_ome_zarr(&root, &signal, &opts, &exec()).unwrap();
        let image = OmeImage::open(&root).unwrap();
        let case = format!("{version:?} {method:?} shard {shard:?}");
        assert_eq!(image.version(), version.as_str(), "{case}");
        assert_eq!(image.name(), Some("round trip"), "{case}");
        assert_eq!(image.levels().len(), 3, "{case}");
        let mut expected = data.clone();
        let (mut sy, mut sx, mut oy, mut ox) = (0.5, 0.25, 10.0, -3.0);
        for k in 0..3 {
            if k > 0 {
                if method == PyramidMethod::Mean {
                    expected = mean_halve(&expected);
                    oy += 0.5 * sy;
                    ox += 0.5 * sx;
                } else {
                    expected = halve(&expected);
                }
                sy *= 2.0;
                sx *= 2.0;
            }
            let s = image.signal(k).unwrap();
            assert_eq!(values::<f32>(&s), expected, "{case} level {k}");
            check_axes(
                &s,
                &[
                    ("z", Some("nm"), 2.0, 1.0, true),
                    ("y", Some("nm"), sy, oy, false),
                    ("x", Some("nm"), sx, ox, false),
                ],
            );
        }
    }
}
