//! Image stacks (`lazyspy::io::images`): every TIFF variant tifffile writes (compared with
//! numpy's values), NPY/PNG/JPEG, natural order, and the errors for mismatched, corrupt and
//! missing files. Python-made fixtures need the test venv (numpy, tifffile, imagecodecs):
//! `LAZYSPY_PYTHON`, else `$HOME/.cache/lazyspy/venv/bin/python`; without it the Python
//! test fails when `CI=true` and is skipped with a note otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use lazyspy::io::images::{
    self, ImageError, ImageFormat, ImageStack, TiffCompression, TiffElement, TiffWriteOptions,
    demo_scan_image, from_files, make_demo_scans, write_tiff, write_tiff_f32,
};
use lazyspy::{DType, DynArray, Element, ExecConfig, Region};
use ndarray::{Array2, Array3, ArrayD};
use ndarray_npy::{ReadNpyExt, write_npy};

const H: usize = 37;
const W: usize = 53;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Computes a whole stack into one in-memory array.
fn compute(stack: &ImageStack) -> Result<DynArray, lazyspy::Error> {
    let lazy = stack.clone().into_lazy();
    let config = ExecConfig::default().with_memory_budget(64 << 20);
    macro_rules! go {
        ($t:ty) => {
            DynArray::from_array(lazy.into_typed::<$t>()?.compute_with(&config)?)
        };
    }
    Ok(match stack.dtype() {
        DType::Bool => go!(bool),
        DType::U8 => go!(u8),
        DType::U16 => go!(u16),
        DType::U32 => go!(u32),
        DType::U64 => go!(u64),
        DType::I8 => go!(i8),
        DType::I16 => go!(i16),
        DType::I32 => go!(i32),
        DType::I64 => go!(i64),
        DType::F32 => go!(f32),
        DType::F64 => go!(f64),
        other => panic!("unexpected dtype {other}"),
    })
}

fn read_ref(path: &Path, dtype: DType) -> DynArray {
    let f = std::fs::File::open(path).unwrap();
    macro_rules! rd {
        ($t:ty) => {
            DynArray::from_array(ArrayD::<$t>::read_npy(f).unwrap())
        };
    }
    match dtype {
        DType::U8 => rd!(u8),
        DType::U16 => rd!(u16),
        DType::U32 => rd!(u32),
        DType::U64 => rd!(u64),
        DType::I8 => rd!(i8),
        DType::I16 => rd!(i16),
        DType::I32 => rd!(i32),
        DType::I64 => rd!(i64),
        DType::F32 => rd!(f32),
        DType::F64 => rd!(f64),
        other => panic!("unexpected dtype {other}"),
    }
}

/// A deterministic test image with values spread over the type's range.
fn pattern<T: Element>(pages: usize, seed: u64) -> Array3<T> {
    Array3::from_shape_fn((pages, H, W), |(p, y, x)| {
        let mut h =
            seed ^ ((p * 1_000_003 + y * 1009 + x) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 32;
        // Signed values around zero, within ±2^20 (exact in f32), cast with NumPy rules.
        let v = (h % (1 << 21)) as i64 - (1 << 20);
        T::from_pivot(lazyspy::dtype::Pivot::Signed(v))
    })
}

// -----------------------------------------------------------------------------------------
// Python-made fixtures

fn python() -> Option<PathBuf> {
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    let candidate = std::env::var_os("LAZYSPY_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let p = PathBuf::from(std::env::var_os("HOME")?).join(".cache/lazyspy/venv/bin/python");
            p.exists().then_some(p)
        });
    let ok = candidate.as_ref().is_some_and(|p| {
        Command::new(p)
            .args(["-c", "import numpy, tifffile, imagecodecs"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    });
    if ok {
        return candidate;
    }
    let msg = format!(
        "no Python with numpy, tifffile and imagecodecs (tried {candidate:?}; set LAZYSPY_PYTHON)"
    );
    if ci {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

struct PyFixtures {
    dir: tempfile::TempDir,
    variants: Vec<(PathBuf, PathBuf, DType)>,
}

fn py_fixtures() -> Option<PyFixtures> {
    let py = python()?;
    let dir = tmp();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/images_gen.py");
    let out = Command::new(py)
        .arg(script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "images_gen.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let variants = json["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                PathBuf::from(v[0].as_str().unwrap()),
                PathBuf::from(v[1].as_str().unwrap()),
                DType::from_name(v[2].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    Some(PyFixtures { dir, variants })
}

#[test]
fn every_tifffile_variant_matches_numpy() {
    let Some(fx) = py_fixtures() else { return };
    // The script must have made every kind the issue lists.
    let names: Vec<String> = fx
        .variants
        .iter()
        .map(|v| v.0.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for must in [
        "plain_uint8.tif",
        "plain_uint16.tif",
        "plain_int32.tif",
        "plain_float32.tif",
        "plain_float64.tif",
        "deflate_u16.tif",
        "lzw_f32.tif",
        "zstd_f64.tif",
        "predictor2_lzw_u16.tif",
        "predictor3_deflate_f32.tif",
        "strips5_f32.tif",
        "tiled_u16.tif",
        "tiled_right_edge_lzw_u16.tif",
        "tiled_right_edge_lzw_pred3_f64.tif",
        "bigtiff_f32.tif",
        "multipage_f32.tif",
        "imagej_f32.tif",
        "imagej_onedir_f32.tif",
        "imagej_onedir_bigendian_u16.tif",
        "npy_bigendian_f4.npy",
        "npy_fortran_f8.npy",
        "npy_stack_i2.npy",
    ] {
        assert!(names.iter().any(|n| n == must), "fixture {must} missing");
    }
    assert!(fx.variants.len() >= 40, "{} variants", fx.variants.len());
    for (file, reference, dtype) in &fx.variants {
        let stack =
            ImageStack::open(file.as_path()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(stack.dtype(), *dtype, "{}", file.display());
        let expected = read_ref(reference, *dtype);
        // One single-page file is (1, H, W); a multi-page file is (P, H, W).
        let expected = if expected.ndim() == 2 {
            expected.insert_axis(0)
        } else {
            expected
        };
        assert_eq!(stack.shape(), expected.shape(), "{}", file.display());
        let got = compute(&stack).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(got == expected, "values differ for {}", file.display());
    }
    eprintln!("checked {} tifffile/numpy variants", fx.variants.len());

    // Two 3-page files: (2, 3, H, W) with a page axis.
    let mp = ImageStack::open(format!("{}/mp/part*.tif", fx.dir.path().display())).unwrap();
    assert_eq!(mp.shape(), [2, 3, H, W]);
    assert!(mp.has_page_axis() && mp.has_file_axis());
    let expected = read_ref(&fx.dir.path().join("mp.ref.npy"), DType::F32);
    assert!(compute(&mp).unwrap() == expected);
    let s = from_files(format!("{}/mp/*.tif", fx.dir.path().display())).unwrap();
    let names: Vec<_> = s
        .tree
        .axes
        .iter()
        .map(|a| a.name().unwrap().to_string())
        .collect();
    assert_eq!(names, ["image", "page", "y", "x"]);
    assert_eq!(s.tree.title(), Some("mp"));

    // The grayscale JPEG: libjpeg and zune-jpeg may round a few pixels differently by 1.
    let jpg = fx.dir.path().join("gray.jpg");
    let stack = ImageStack::open(jpg.as_path()).unwrap();
    assert_eq!((stack.shape(), stack.dtype()), (vec![1, H, W], DType::U8));
    assert_eq!(stack.headers()[0].format, ImageFormat::Jpeg);
    let got = compute(&stack).unwrap().into_typed::<u8>().unwrap();
    let expected = read_ref(&fx.dir.path().join("gray.jpg.ref.npy"), DType::U8)
        .into_typed::<u8>()
        .unwrap();
    let worst = got
        .iter()
        .zip(expected.iter())
        .map(|(a, b)| (*a as i32 - *b as i32).abs())
        .max()
        .unwrap();
    assert!(worst <= 2, "JPEG differs from libjpeg by {worst}");

    // Colour images are rejected at open, naming the file.
    for name in ["rgb.jpg", "rgb.tif", "rgb_planar.tif"] {
        let p = fx.dir.path().join(name);
        let err = ImageStack::open(p.as_path()).unwrap_err();
        assert!(
            matches!(err, ImageError::Unsupported { .. }),
            "{name}: {err}"
        );
        assert_eq!(err.path(), Some(p.as_path()));
        assert!(err.to_string().contains(name), "{err}");
    }
}

// -----------------------------------------------------------------------------------------
// Files written in Rust (no Python needed)

fn roundtrip<T: TiffElement>(dir: &Path, name: &str, pages: usize, options: TiffWriteOptions) {
    let data = pattern::<T>(pages, name.len() as u64);
    let path = dir.join(format!("{name}.tif"));
    write_tiff(&path, data.view(), options).unwrap();
    let stack = ImageStack::open(path.as_path()).unwrap();
    assert_eq!(stack.dtype(), T::DTYPE, "{name}");
    assert_eq!(stack.shape(), [pages, H, W], "{name}");
    let got = compute(&stack).unwrap();
    assert!(
        got == DynArray::from_array(data.into_dyn()),
        "{name}: values differ"
    );
}

#[test]
fn tiffs_written_by_the_tiff_crate_round_trip() {
    let dir = tmp();
    let d = dir.path();
    let compressions = [
        TiffCompression::None,
        TiffCompression::Deflate,
        TiffCompression::Lzw,
        TiffCompression::PackBits,
    ];
    for (ci, &compression) in compressions.iter().enumerate() {
        for bigtiff in [false, true] {
            let o = TiffWriteOptions {
                compression,
                horizontal_predictor: false,
                bigtiff,
            };
            let p = TiffWriteOptions {
                horizontal_predictor: true,
                ..o
            };
            let tag = format!("c{ci}_b{}", bigtiff as u8);
            roundtrip::<u8>(d, &format!("u8_{tag}"), 1, o);
            roundtrip::<u16>(d, &format!("u16_{tag}"), 2, p);
            roundtrip::<u32>(d, &format!("u32_{tag}"), 1, o);
            roundtrip::<u64>(d, &format!("u64_{tag}"), 1, p);
            roundtrip::<i8>(d, &format!("i8_{tag}"), 1, p);
            roundtrip::<i16>(d, &format!("i16_{tag}"), 3, o);
            roundtrip::<i32>(d, &format!("i32_{tag}"), 1, p);
            roundtrip::<i64>(d, &format!("i64_{tag}"), 1, o);
            roundtrip::<f32>(d, &format!("f32_{tag}"), 2, o);
            roundtrip::<f64>(d, &format!("f64_{tag}"), 1, o);
        }
    }
    // The float writer refuses the horizontal predictor instead of writing a bad file.
    let err = write_tiff(
        &d.join("bad.tif"),
        pattern::<f32>(1, 0).view(),
        TiffWriteOptions {
            horizontal_predictor: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ImageError::Write { .. }) && err.to_string().contains("bad.tif"));
    assert!(!d.join("bad.tif").exists());
}

#[test]
fn write_tiff_f32_is_atomic_and_overwrites() {
    let dir = tmp();
    let path = dir.path().join("img.tif");
    let a = Array2::from_shape_fn((H, W), |(y, x)| (y * W + x) as f32 * 0.5 - 7.25);
    write_tiff_f32(&path, a.view()).unwrap();
    let b = a.mapv(|v| -v);
    write_tiff_f32(&path, b.view()).unwrap();
    // Only the file itself is left: no temporary files.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["img.tif"]);
    let got = compute(&ImageStack::open(path.as_path()).unwrap()).unwrap();
    assert!(got == DynArray::from_array(b.insert_axis(ndarray::Axis(0)).into_dyn()));
    // A write into a missing folder fails naming the file and leaves nothing behind.
    let bad = dir.path().join("no/such/dir/x.tif");
    let err = write_tiff_f32(&bad, a.view()).unwrap_err();
    assert!(err.to_string().contains("x.tif"), "{err}");
}

#[test]
fn npy_files_and_stacks() {
    let dir = tmp();
    let d = dir.path();
    let imgs: Vec<Array2<f64>> = (0..3)
        .map(|i| Array2::from_shape_fn((H, W), |(y, x)| (i * 10000 + y * W + x) as f64 / 3.0))
        .collect();
    for (i, a) in imgs.iter().enumerate() {
        write_npy(d.join(format!("frame{}.npy", i + 1)), a).unwrap();
    }
    let stack = ImageStack::open(format!("{}/frame*.npy", d.display())).unwrap();
    assert_eq!((stack.shape(), stack.dtype()), (vec![3, H, W], DType::F64));
    assert_eq!(stack.headers()[0].format, ImageFormat::Npy);
    let got = compute(&stack).unwrap().into_typed::<f64>().unwrap();
    for (i, a) in imgs.iter().enumerate() {
        assert_eq!(got.index_axis(ndarray::Axis(0), i), a.view().into_dyn());
    }
    // A 3-D .npy is a page stack; pages are read one by one.
    let pages = pattern::<u16>(4, 9);
    write_npy(d.join("pages.npy"), &pages).unwrap();
    let stack = ImageStack::open(d.join("pages.npy")).unwrap();
    assert_eq!(stack.shape(), [4, H, W]);
    assert!(stack.has_page_axis() && !stack.has_file_axis());
    let got = compute(&stack).unwrap();
    assert!(got == DynArray::from_array(pages.into_dyn()));
    // A 1-D .npy is not an image.
    write_npy(d.join("line.npy"), &ndarray::arr1(&[1.0f32, 2.0])).unwrap();
    let err = ImageStack::open(d.join("line.npy")).unwrap_err();
    assert!(matches!(err, ImageError::Unsupported { .. }) && err.to_string().contains("line.npy"));
}

fn write_png(
    path: &Path,
    width: usize,
    height: usize,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = png::Encoder::new(f, width as u32, height as u32);
    enc.set_color(color);
    enc.set_depth(depth);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(data).unwrap();
    w.finish().unwrap();
}

#[test]
fn png_grayscale_8_and_16_bit() {
    let dir = tmp();
    let d = dir.path();
    let a8 = Array2::from_shape_fn((H, W), |(y, x)| ((y * 7 + x * 3) % 256) as u8);
    write_png(
        &d.join("a8.png"),
        W,
        H,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        a8.as_slice().unwrap(),
    );
    let got = compute(&ImageStack::open(d.join("a8.png")).unwrap()).unwrap();
    assert!(got == DynArray::from_array(a8.insert_axis(ndarray::Axis(0)).into_dyn()));

    let a16 = Array2::from_shape_fn((H, W), |(y, x)| (y * 1500 + x * 17) as u16);
    let be: Vec<u8> = a16.iter().flat_map(|v| v.to_be_bytes()).collect();
    for i in 0..2 {
        write_png(
            &d.join(format!("b{i}.png")),
            W,
            H,
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            &be,
        );
    }
    let stack = ImageStack::open(format!("{}/b*.png", d.display())).unwrap();
    assert_eq!((stack.shape(), stack.dtype()), (vec![2, H, W], DType::U16));
    let got = compute(&stack).unwrap().into_typed::<u16>().unwrap();
    assert_eq!(got.index_axis(ndarray::Axis(0), 1), a16.view().into_dyn());

    let rgb = vec![7u8; H * W * 3];
    write_png(
        &d.join("rgb.png"),
        W,
        H,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &rgb,
    );
    let err = ImageStack::open(d.join("rgb.png")).unwrap_err();
    assert!(matches!(err, ImageError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("rgb.png"), "{err}");
}

// -----------------------------------------------------------------------------------------
// Order, shape, signal

/// Writes `names` as float32 images whose every pixel is the number in the name.
fn numbered(dir: &Path, names: &[&str]) {
    for n in names {
        let v: f32 = n
            .trim_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap();
        write_tiff_f32(&dir.join(n), Array2::from_elem((H, W), v).view()).unwrap();
    }
}

#[test]
fn files_are_in_natural_order() {
    let dir = tmp();
    let d = dir.path();
    numbered(
        d,
        &[
            "img10.tif",
            "img2.tif",
            "img1.tif",
            "img100.tif",
            "img20.tif",
            "img3.tif",
        ],
    );
    let stack = ImageStack::open(format!("{}/img*.tif", d.display())).unwrap();
    let names: Vec<_> = stack
        .paths()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "img1.tif",
            "img2.tif",
            "img3.tif",
            "img10.tif",
            "img20.tif",
            "img100.tif"
        ]
    );
    // The data follows the same order.
    let got = compute(&stack).unwrap().into_typed::<f32>().unwrap();
    let firsts: Vec<f32> = (0..6).map(|i| got[[i, 0, 0]]).collect();
    assert_eq!(firsts, [1.0, 2.0, 3.0, 10.0, 20.0, 100.0]);
    // An explicit list in shell (lexicographic) order is sorted too.
    let list: Vec<PathBuf> = ["img1.tif", "img10.tif", "img100.tif", "img2.tif"]
        .iter()
        .map(|n| d.join(n))
        .collect();
    let s2 = ImageStack::open(list).unwrap();
    assert_eq!(s2.paths()[1], d.join("img2.tif"));
    // A folder means every image file in it.
    std::fs::write(d.join("notes.txt"), "not an image").unwrap();
    let s3 = ImageStack::open(d).unwrap();
    assert_eq!(s3.paths(), stack.paths());
}

#[test]
fn chunks_are_whole_images_and_regions_cross_files() {
    let dir = tmp();
    numbered(dir.path(), &["s1.tif", "s2.tif", "s3.tif"]);
    let stack = ImageStack::open(format!("{}/s*.tif", dir.path().display())).unwrap();
    let src = stack.source();
    assert_eq!(src.grid().axis_chunks(0), &[1, 1, 1]);
    assert_eq!(src.grid().axis_chunks(1), &[H]);
    assert_eq!(src.grid().axis_chunks(2), &[W]);
    assert!(src.describe().contains("s1.tif"));
    let r = src
        .read_region(&Region::new(vec![1, 5, 7], vec![3, 9, 8]))
        .unwrap()
        .into_typed::<f32>()
        .unwrap();
    assert_eq!(r.shape(), [2, 4, 1]);
    assert!(r.index_axis(ndarray::Axis(0), 0).iter().all(|&v| v == 2.0));
    assert!(r.index_axis(ndarray::Axis(0), 1).iter().all(|&v| v == 3.0));
}

#[test]
fn from_files_gives_a_signal_with_axes() {
    let dir = tmp();
    let folder = dir.path().join("scan_map");
    std::fs::create_dir(&folder).unwrap();
    numbered(&folder, &["a1.tif", "a2.tif"]);
    let s = from_files(format!("{}/*.tif", folder.display())).unwrap();
    assert_eq!(s.data.shape(), [2, H, W]);
    assert_eq!(s.tree.title(), Some("scan_map"));
    assert_eq!(s.tree.signal_dimension(), 2);
    let axes = &s.tree.axes;
    assert_eq!(axes.len(), 3);
    assert_eq!(
        axes.iter()
            .map(|a| (a.name().unwrap(), a.navigate().unwrap(), a.size().unwrap()))
            .collect::<Vec<_>>(),
        [("image", true, 2), ("y", false, H), ("x", false, W)]
    );
    assert_eq!(s.signal_axes(), [1, 2]);
    assert_eq!(s.tree.data.chunks, [1, H, W]);
    // A single multi-page file: (P, H, W), titled after the file.
    let p = folder.join("multi.tif");
    write_tiff(&p, pattern::<f32>(3, 1).view(), TiffWriteOptions::default()).unwrap();
    let s = from_files(p.as_path()).unwrap();
    assert_eq!(s.data.shape(), [3, H, W]);
    assert_eq!(s.tree.title(), Some("multi"));
    assert_eq!(s.tree.axes[0].name(), Some("page"));
}

// -----------------------------------------------------------------------------------------
// Errors name the file

#[test]
fn a_file_of_another_shape_or_dtype_is_named() {
    let dir = tmp();
    let d = dir.path();
    numbered(d, &["m1.tif", "m2.tif", "m3.tif"]);
    // Another shape.
    write_tiff_f32(&d.join("m2.tif"), Array2::<f32>::zeros((H, W + 1)).view()).unwrap();
    let err = ImageStack::open(format!("{}/m*.tif", d.display())).unwrap_err();
    assert!(matches!(err, ImageError::Mismatch { .. }), "{err}");
    assert_eq!(err.path(), Some(d.join("m2.tif").as_path()));
    let msg = err.to_string();
    assert!(
        msg.contains("m2.tif") && msg.contains("m1.tif") && msg.contains("37x54"),
        "{msg}"
    );
    // Another dtype.
    write_tiff(
        &d.join("m2.tif"),
        pattern::<u16>(1, 0).view(),
        TiffWriteOptions::default(),
    )
    .unwrap();
    let err = ImageStack::open(format!("{}/m*.tif", d.display())).unwrap_err();
    assert_eq!(err.path(), Some(d.join("m2.tif").as_path()));
    assert!(
        err.to_string().contains("uint16") && err.to_string().contains("float32"),
        "{err}"
    );
    // Another page count.
    write_tiff(
        &d.join("m2.tif"),
        pattern::<f32>(2, 0).view(),
        TiffWriteOptions::default(),
    )
    .unwrap();
    let err = ImageStack::open(format!("{}/m*.tif", d.display())).unwrap_err();
    assert_eq!(err.path(), Some(d.join("m2.tif").as_path()));
    assert!(err.to_string().contains("2 pages"), "{err}");
}

#[test]
fn missing_and_unreadable_files_are_named() {
    let dir = tmp();
    let d = dir.path();
    numbered(d, &["f1.tif"]);
    let missing = d.join("f2.tif");
    let err = ImageStack::open(vec![d.join("f1.tif"), missing.clone()]).unwrap_err();
    assert!(
        matches!(&err, ImageError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err}"
    );
    assert_eq!(err.path(), Some(missing.as_path()));
    assert!(err.to_string().contains("f2.tif"));
    // A single path without glob characters that does not exist.
    let err = ImageStack::open(format!("{}/nope.tif", d.display())).unwrap_err();
    assert!(err.to_string().contains("nope.tif"), "{err}");
    // A pattern matching nothing, and a malformed pattern.
    let err = ImageStack::open(format!("{}/*.png", d.display())).unwrap_err();
    assert!(
        matches!(err, ImageError::NoFiles { .. }) && err.to_string().contains("*.png"),
        "{err}"
    );
    let err = ImageStack::open(format!("{}/[*.tif", d.display())).unwrap_err();
    assert!(matches!(err, ImageError::Pattern { .. }), "{err}");
    // Not an image at all; an empty file.
    std::fs::write(d.join("f3.tif"), b"hello, not a tiff").unwrap();
    let err = ImageStack::open(d.join("f3.tif")).unwrap_err();
    assert!(
        matches!(err, ImageError::Unsupported { .. }) && err.to_string().contains("f3.tif"),
        "{err}"
    );
    std::fs::write(d.join("f4.tif"), b"").unwrap();
    let err = ImageStack::open(d.join("f4.tif")).unwrap_err();
    assert!(
        matches!(err, ImageError::Format { .. }) && err.to_string().contains("f4.tif"),
        "{err}"
    );
}

#[test]
fn truncated_files_fail_at_open_naming_the_file() {
    let dir = tmp();
    let d = dir.path();
    numbered(d, &["t1.tif", "t2.tif", "t3.tif"]);
    // The tiff crate writes the pixel data before the directory: cutting the file loses
    // the directory, which opening reads.
    let victim = d.join("t2.tif");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let err = ImageStack::open(format!("{}/t*.tif", d.display())).unwrap_err();
    assert_eq!(err.path(), Some(victim.as_path()), "{err}");
    assert!(err.to_string().contains("t2.tif"));
    // A truncated .npy is caught at open from its announced size.
    let a = Array2::<f32>::ones((H, W));
    write_npy(d.join("n1.npy"), &a).unwrap();
    let bytes = std::fs::read(d.join("n1.npy")).unwrap();
    std::fs::write(d.join("n1.npy"), &bytes[..bytes.len() - 10]).unwrap();
    let err = ImageStack::open(d.join("n1.npy")).unwrap_err();
    assert!(
        matches!(err, ImageError::Format { .. }) && err.to_string().contains("n1.npy"),
        "{err}"
    );
}

#[test]
fn corrupt_pixel_data_fails_at_compute_naming_the_file() {
    let dir = tmp();
    let d = dir.path();
    let opts = TiffWriteOptions {
        compression: TiffCompression::Deflate,
        ..Default::default()
    };
    for i in 1..=3 {
        write_tiff(
            &d.join(format!("c{i}.tif")),
            pattern::<f32>(1, i).view(),
            opts,
        )
        .unwrap();
    }
    // Overwrite the start of the compressed strips of c2 (right after the 8-byte header).
    let victim = d.join("c2.tif");
    let mut bytes = std::fs::read(&victim).unwrap();
    for b in &mut bytes[8..208] {
        *b = 0xA5;
    }
    std::fs::write(&victim, &bytes).unwrap();
    // Opening reads headers only, so it succeeds...
    let stack = ImageStack::open(format!("{}/c*.tif", d.display())).unwrap();
    assert_eq!(stack.shape(), [3, H, W]);
    // ...and computing fails with an error that names the file.
    let err = compute(&stack).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("c2.tif"), "{msg}");
    let err = stack.source().read_chunk(&[1, 0, 0]).unwrap_err();
    let img = err.downcast_ref::<ImageError>().expect("an ImageError");
    assert_eq!(img.path(), Some(victim.as_path()));
    // The other files are fine.
    assert!(stack.source().read_chunk(&[2, 0, 0]).is_ok());
}

#[test]
fn opening_does_not_decode_pixels() {
    // A header that announces a 100000 x 100000 float64 image (80 GB) with no data: the
    // stack opens (shape known from the header), and only reading fails.
    let dir = tmp();
    let p = dir.path().join("huge.tif");
    let mut t: Vec<u8> = b"II*\0".to_vec();
    t.extend(8u32.to_le_bytes());
    let entries: [(u16, u16, u32, u32); 8] = [
        (256, 4, 1, 100_000),                  // ImageWidth
        (257, 4, 1, 100_000),                  // ImageLength
        (258, 3, 1, 64),                       // BitsPerSample
        (259, 3, 1, 1),                        // Compression none
        (262, 3, 1, 1),                        // BlackIsZero
        (273, 4, 1, 200),                      // StripOffsets
        (278, 4, 1, 100_000),                  // RowsPerStrip
        (279, 4, 1, 80_000_000_000u64 as u32), // StripByteCounts (wrapped; never used)
    ];
    t.extend((entries.len() as u16 + 1).to_le_bytes());
    for (tag, ty, n, v) in entries {
        t.extend(tag.to_le_bytes());
        t.extend(ty.to_le_bytes());
        t.extend(n.to_le_bytes());
        if ty == 3 {
            t.extend((v as u16).to_le_bytes());
            t.extend([0, 0]);
        } else {
            t.extend(v.to_le_bytes());
        }
    }
    // SampleFormat = IEEE float.
    t.extend(339u16.to_le_bytes());
    t.extend(3u16.to_le_bytes());
    t.extend(1u32.to_le_bytes());
    t.extend(3u16.to_le_bytes());
    t.extend([0, 0]);
    t.extend(0u32.to_le_bytes());
    std::fs::write(&p, &t).unwrap();
    let stack = ImageStack::open(p.as_path()).unwrap();
    assert_eq!(stack.shape(), [1, 100_000, 100_000]);
    assert_eq!(stack.dtype(), DType::F64);
    let err = stack
        .source()
        .read_region(&Region::new(vec![0, 0, 0], vec![1, 1, 1]))
        .unwrap_err();
    assert!(err.to_string().contains("huge.tif"), "{err}");
}

// -----------------------------------------------------------------------------------------
// Demo scans

#[test]
fn demo_scans_are_deterministic_and_reused() {
    let a = tmp();
    let b = tmp();
    let pa = make_demo_scans(a.path(), 3, 64).unwrap();
    let pb = make_demo_scans(b.path(), 3, 64).unwrap();
    assert_eq!(
        pa.iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect::<Vec<_>>(),
        ["scan_000.tif", "scan_001.tif", "scan_002.tif"]
    );
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
    }
    // Images differ from one another, hold the documented values, and are smooth plus
    // a little noise.
    let stack = ImageStack::open(a.path()).unwrap();
    assert_eq!(
        (stack.shape(), stack.dtype()),
        (vec![3, 64, 64], DType::F32)
    );
    let got = compute(&stack).unwrap().into_typed::<f32>().unwrap();
    for i in 0..3 {
        let want = demo_scan_image(i, 64);
        assert_eq!(got.index_axis(ndarray::Axis(0), i), want.view().into_dyn());
        assert!(
            want.iter()
                .all(|v| v.is_finite() && (-1.0..6.0).contains(v))
        );
    }
    assert_ne!(demo_scan_image(0, 64), demo_scan_image(1, 64));
    // Present, complete files are kept (same inode and mtime); a damaged one is rewritten.
    let before = std::fs::metadata(&pa[0]).unwrap().modified().unwrap();
    std::fs::write(&pa[1], b"garbage").unwrap();
    std::fs::remove_file(&pa[2]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    make_demo_scans(a.path(), 3, 64).unwrap();
    assert_eq!(
        std::fs::metadata(&pa[0]).unwrap().modified().unwrap(),
        before
    );
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
    }
    // A different size is not "complete": files are regenerated at the new size.
    make_demo_scans(a.path(), 3, 32).unwrap();
    assert_eq!(ImageStack::open(a.path()).unwrap().shape(), [3, 32, 32]);
}

#[test]
fn looks_like_image_input_recognises_globs_and_extensions() {
    assert!(images::looks_like_image_input("scans/*.tif"));
    assert!(images::looks_like_image_input("a/b.TIFF"));
    assert!(images::looks_like_image_input("x.npy"));
    assert!(!images::looks_like_image_input("out.zspy"));
    assert!(!images::looks_like_image_input("data.hspy"));
}
