"""Writes the TIFF/NPY/JPEG variants that tests/images.rs reads, each image next to a
reference `.npy` holding numpy's values (little-endian, C order).

Usage: python images_gen.py OUT_DIR   (needs numpy, tifffile and imagecodecs)
Prints one JSON line: {"variants": [[file, reference, dtype], ...]}.
"""

import json
import os
import sys

import imagecodecs  # noqa: F401  (LZW, zstd, JPEG codecs of tifffile)
import numpy as np
import tifffile

out = sys.argv[1]
rng = np.random.default_rng(20261121)
H, W = 37, 53
variants = []


def data(dtype, shape=(H, W)):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = rng.standard_normal(shape) * 1000.0
        a.flat[0] = 0.0
        a.flat[1] = -1.5
        return a.astype(dt)
    info = np.iinfo(dt)
    a = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)
    a.flat[0] = info.min
    a.flat[1] = info.max
    return a


def ref(name, arr):
    path = os.path.join(out, name + ".ref.npy")
    np.save(path, np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"))))
    return path


def tif(name, arr, **kw):
    path = os.path.join(out, name + ".tif")
    kw.setdefault("photometric", "minisblack")
    tifffile.imwrite(path, arr, **kw)
    # Check tifffile reads back what was meant (the reference is the array itself).
    back = tifffile.imread(path)
    assert back.shape == arr.shape and np.array_equal(back, arr), name
    variants.append([path, ref(name, arr), str(arr.dtype.newbyteorder("="))])


def imagej(name, arr):
    path = os.path.join(out, name + ".tif")
    tifffile.imwrite(path, arr, imagej=True, metadata={"axes": "ZYX"})
    with tifffile.TiffFile(path) as t:
        assert t.is_imagej and len(t.pages) == arr.shape[0], name
    variants.append([path, ref(name, arr), str(arr.dtype)])


# Sample types, uncompressed, striped.
for dt in ["uint8", "uint16", "int32", "float32", "float64",
           "int8", "int16", "uint32", "int64", "uint64"]:
    tif("plain_" + dt, data(dt))
# Compressions and predictors.
tif("deflate_u16", data("uint16"), compression="zlib")
tif("deflate_f64", data("float64"), compression="zlib")
tif("lzw_f32", data("float32"), compression="lzw")
tif("lzw_u8", data("uint8"), compression="lzw")
tif("zstd_u16", data("uint16"), compression="zstd")
tif("zstd_f64", data("float64"), compression="zstd")
tif("packbits_u8", data("uint8"), compression="packbits")
tif("predictor2_lzw_u16", data("uint16"), compression="lzw", predictor=2)
tif("predictor2_deflate_i32", data("int32"), compression="zlib", predictor=2)
tif("predictor2_zstd_u8", data("uint8"), compression="zstd", predictor=2)
tif("predictor3_deflate_f32", data("float32"), compression="zlib", predictor=3)
tif("predictor3_lzw_f32", data("float32"), compression="lzw", predictor=3)
tif("predictor3_zstd_f64", data("float64"), compression="zstd", predictor=3)
# Layouts.
tif("strips5_f32", data("float32"), rowsperstrip=5)
tif("strips7_deflate_u16", data("uint16"), rowsperstrip=7, compression="zlib")
tif("tiled_u16", data("uint16"), tile=(16, 16))
tif("tiled_deflate_pred3_f32", data("float32"), tile=(16, 32), compression="zlib", predictor=3)
tif("tiled_zstd_i16", data("int16"), tile=(32, 16), compression="zstd")
tif("bigtiff_f32", data("float32"), bigtiff=True)
tif("bigtiff_tiled_lzw_u16", data("uint16", (48, 64)), bigtiff=True, tile=(16, 16), compression="lzw")
tif("tiled_lzw_bottom_edge_f32", data("float32", (40, 64)), tile=(16, 32), compression="lzw", predictor=3)
# Tiles cut by the right edge (the tiff crate's own whole-image read fails on LZW ones).
tif("tiled_right_edge_lzw_u16", data("uint16"), tile=(16, 16), compression="lzw")
tif("tiled_right_edge_lzw_pred2_i32", data("int32"), tile=(16, 32), compression="lzw", predictor=2)
tif("tiled_right_edge_lzw_pred3_f64", data("float64"), tile=(32, 16), compression="lzw", predictor=3, byteorder=">")
tif("tiled_right_edge_zstd_pred3_f32", data("float32"), tile=(16, 16), compression="zstd", predictor=3)
tif("bigendian_u16", data("uint16"), byteorder=">")
tif("bigendian_deflate_f64", data("float64"), byteorder=">", compression="zlib")
# Multi-page and ImageJ stacks.
tif("multipage_f32", data("float32", (3, H, W)))
tif("multipage_deflate_u16", data("uint16", (4, H, W)), compression="zlib")
tif("multipage_bigtiff_tiled_f64", data("float64", (2, H, W)), bigtiff=True, tile=(16, 16))
imagej("imagej_f32", data("float32", (5, H, W)))
imagej("imagej_u16", data("uint16", (6, H, W)))
imagej("imagej_u8", data("uint8", (2, H, W)))
# ImageJ stacks with a single directory (as ImageJ and tifffile write stacks over 4 GB).
for name, arr, order in [("imagej_onedir_f32", data("float32", (4, H, W)), "<"),
                         ("imagej_onedir_bigendian_u16", data("uint16", (3, H, W)), ">")]:
    path = os.path.join(out, name + ".tif")
    tifffile.imwrite(path, arr, imagej=True, truncate=True, byteorder=order, metadata={"axes": "ZYX"})
    with tifffile.TiffFile(path) as t:
        assert t.is_imagej and len(t.pages) == 1, name
        assert np.array_equal(t.asarray(), arr), name
    variants.append([path, ref(name, arr), str(arr.dtype.newbyteorder("="))])

# NPY inputs numpy writes in other layouts: big-endian, Fortran order, 3-D.
def npy(name, arr, stored):
    path = os.path.join(out, name + ".npy")
    np.save(path, stored)
    variants.append([path, ref(name, arr), str(arr.dtype.newbyteorder("="))])


a = data("float32")
npy("npy_bigendian_f4", a, a.astype(">f4"))
a = data("float64")
npy("npy_fortran_f8", a, np.asfortranarray(a))
a = data("int16", (3, H, W))
npy("npy_stack_i2", a, a)
a = data("uint16", (2, H, W))
npy("npy_stack_bigendian_u2", a, a.astype(">u2"))

# A grayscale JPEG (reference: imagecodecs' libjpeg decode; decoders may differ by 1).
gray = (np.add.outer(np.arange(H) * 3, np.arange(W) * 2) % 256).astype("uint8")
jpg = os.path.join(out, "gray.jpg")
with open(jpg, "wb") as f:
    f.write(imagecodecs.jpeg8_encode(gray, level=90))
with open(jpg, "rb") as f:
    dec = imagecodecs.jpeg8_decode(f.read())
assert dec.shape == (H, W), dec.shape
np.save(jpg + ".ref.npy", dec)
# Colour images, which the stack rejects.
rgb = np.stack([gray, gray[::-1], 255 - gray], axis=-1)
with open(os.path.join(out, "rgb.jpg"), "wb") as f:
    f.write(imagecodecs.jpeg8_encode(rgb, level=90))
tifffile.imwrite(os.path.join(out, "rgb.tif"), rgb, photometric="rgb")
tifffile.imwrite(os.path.join(out, "rgb_planar.tif"), np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
# Two 3-page files as one (2, 3, H, W) stack.
os.makedirs(os.path.join(out, "mp"), exist_ok=True)
both = data("float32", (2, 3, H, W))
for i in range(2):
    tifffile.imwrite(os.path.join(out, "mp", "part%d.tif" % (i + 1)), both[i], photometric="minisblack", compression="zlib")
np.save(os.path.join(out, "mp.ref.npy"), both)

print(json.dumps({"variants": variants}))
