#!/usr/bin/env python3
"""Checks an OME-Zarr image pyramid (v0.4 or v0.5) against lazyspy's OME-Zarr contract.

    ome_check.py PATH [--method mean|gaussian|nearest] [--expect-levels N] [--source NPY]
                 [--expect-version 0.4|0.5] [--axes I,J] [--chunks C] [--shard S]
                 [--compressor blosc-zstd:1|none|any] [--expect-axes SPEC]
                 [--expect-scale0 A,B,..] [--expect-translation0 A,B,..] [--expect-name NAME]
                 [--no-values]

Runs with zarr-python 3, ome-zarr-models 1.7 and ome-zarr 0.18 (the venv of .ci/ome-venv.sh).
What it verifies, in order (every failure is collected; exit 1 lists them all, exit 0 prints
a one-line summary; usage errors exit 2):

1. the store is complete: no `.lazyspy-incomplete` marker; the root group document is the
   version's (v0.4: `.zgroup` + `.zattrs` with `multiscales`, Zarr v2; v0.5: root `zarr.json`
   of a group with `attributes.ome.version == "0.5"`, Zarr v3);
2. ome-zarr-models validates it (`ome_zarr_models.v04.image.Image.from_zarr` /
   `ome_zarr_models.v05.image.Image.from_zarr` on `zarr.open_group(PATH, mode="r")`);
3. the multiscales metadata: one multiscale, `version` "0.4" inside it for v0.4 and absent
   for v0.5, a string `name`, no top-level `coordinateTransformations`, no `omero`; datasets
   at paths "0", "1", ... each with exactly a `scale` then a `translation`;
4. the axes, in array order: distinct non-empty names; units only from the OME-NGFF
   (UDUNITS) space/time lists; the types the contract derives from the units and the
   downsampled axes (`--axes`, default the last two): downsampled axes are "space", plus the
   axis just before two downsampled axes when its unit is a length; an axis with a time unit
   is "time" and first; of the others the last has no `type` and the one before it is
   "channel" (no more); `--expect-axes "name:type:unit,..."` (empty for absent) checks them
   exactly;
5. every level's array (zarr-python): Zarr format of the version, shape (ceil halving of the
   downsampled axes from the level above, others unchanged), the dtype of level 0 (and of
   `--source`), fill value 0, chunks (`--chunks C`: min(C, length) on downsampled axes, 1
   elsewhere; with `--shard S` (v0.5) the inner chunks are that and the shard is a multiple
   of them of at most S x C), v0.4 `dimension_separator` "/", v0.5 default chunk key encoding
   and `dimension_names` equal to the axis names, compressor (`--compressor`, default Blosc
   zstd level 1 with byte shuffle; v0.5 codecs `bytes` little endian then `blosc`);
6. scale and translation of every level: scale_k = scale_0 x 2^k on the downsampled axes and
   scale_0 elsewhere; translation_{k+1} = translation_k + 0.5 x scale_k on the downsampled
   axes for `mean`, unchanged for `nearest` / `gaussian` (and unchanged elsewhere);
   `--expect-scale0` / `--expect-translation0` check level 0's;
7. values (unless `--no-values`): level 0 equals `--source` exactly (same dtype); level k+1
   equals the NumPy/SciPy reference downsampling of level k as stored (`reference_level`
   below: mean = float64 mean of the samples present in each 2-block; nearest = [::2];
   gaussian = scipy.ndimage.gaussian_filter(float64, sigma 2/3 on the downsampled axes,
   mode "reflect", truncate 4) then [::2]; cast back: floats plain, integers np.rint).
   Exact for nearest and for integer dtypes of mean; floats within 1e-6 x max(1, |ref|)
   (gaussian 1e-5); integers of gaussian within 0.5 + 1e-5 x max(1, |ref|) of the unrounded
   reference (a different side of a .5 tie is not a bug of the writer);
8. ome-zarr-py's reader (`ome_zarr.reader.Reader(ome_zarr.io.parse_url(PATH))`) finds one
   image node whose multiscale data has the same number of levels, the same shapes and
   (unless `--no-values`) the same values as zarr-python reads.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import warnings

import numpy as np

# OME-NGFF 0.4/0.5 axis units (UDUNITS-2 names).
LENGTH_UNITS = {
    "angstrom", "attometer", "centimeter", "decimeter", "exameter", "femtometer", "foot",
    "gigameter", "hectometer", "inch", "kilometer", "megameter", "meter", "micrometer", "mile",
    "millimeter", "nanometer", "parsec", "petameter", "picometer", "terameter", "yard",
    "yoctometer", "yottameter", "zeptometer", "zettameter",
}
TIME_UNITS = {
    "attosecond", "centisecond", "day", "decisecond", "exasecond", "femtosecond", "gigasecond",
    "hectosecond", "hour", "kilosecond", "megasecond", "microsecond", "millisecond", "minute",
    "nanosecond", "petasecond", "picosecond", "second", "terasecond", "yoctosecond",
    "yottasecond", "zeptosecond", "zettasecond",
}

GAUSSIAN_SIGMA = 2.0 / 3.0
# ome-zarr-py logs a "version mismatch" warning when its default (0.5) is not the store's.
logging.getLogger("ome_zarr").setLevel(logging.ERROR)
MARKER = ".lazyspy-incomplete"


class Failures:
    """Collects failures; `ok()` is true while none was added."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        self.items.append(msg)

    def ok(self) -> bool:
        return not self.items


# ---------------------------------------------------------------------------------------------
# The reference downsampling (the contract's "What a pyramid is (values)").


def reference_level_f64(level: np.ndarray, axes: list[int], method: str) -> np.ndarray:
    """Level k+1 from level k (as stored) in float64, before the cast back to the dtype."""
    x = np.asarray(level)
    if method == "nearest":
        sl = tuple(slice(None, None, 2) if a in axes else slice(None) for a in range(x.ndim))
        return x[sl].astype(np.float64)
    if method == "gaussian":
        from scipy.ndimage import gaussian_filter

        sigma = [GAUSSIAN_SIGMA if a in axes else 0.0 for a in range(x.ndim)]
        f = gaussian_filter(x.astype(np.float64), sigma=sigma, mode="reflect", truncate=4.0)
        sl = tuple(slice(None, None, 2) if a in axes else slice(None) for a in range(x.ndim))
        return f[sl]
    if method == "mean":
        x = x.astype(np.float64)
        out_shape = tuple((n + 1) // 2 if a in axes else n for a, n in enumerate(x.shape))
        total = np.zeros(out_shape, np.float64)
        count = np.zeros(out_shape, np.float64)
        # Offsets in C order of a block, (0,0), (0,1), (1,0), (1,1): the order in which
        # NumPy sums `level[2i:2i+2, 2j:2j+2].mean()`.
        for combo in np.ndindex(*([2] * len(axes))):
            off = dict(zip(axes, combo))
            src = tuple(
                slice(off[a], None, 2) if a in axes else slice(None) for a in range(x.ndim)
            )
            part = x[src]
            dst = tuple(slice(0, m) for m in part.shape)
            total[dst] += part
            count[dst] += 1.0
        return total / count
    raise ValueError(f"unknown method {method!r}")


def cast_back(ref: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The contract's cast of a float64 level to the pyramid's dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return ref.astype(dtype)
    return np.rint(ref).astype(dtype)


def reference_level(level: np.ndarray, axes: list[int], method: str) -> np.ndarray:
    """Level k+1 from level k as the writer must store it (same dtype)."""
    return cast_back(reference_level_f64(level, axes, method), level.dtype)


def compare_level(actual: np.ndarray, level_above: np.ndarray, axes: list[int], method: str,
                  label: str, fails: Failures) -> None:
    ref64 = reference_level_f64(level_above, axes, method)
    if actual.shape != ref64.shape:
        fails.add(f"{label}: shape {actual.shape} but the reference has {ref64.shape}")
        return
    dtype = actual.dtype
    expected = cast_back(ref64, dtype)
    if dtype.kind == "f":
        a = actual.astype(np.float64)
        b = expected.astype(np.float64)
        rel = 1e-5 if method == "gaussian" else 1e-6
        both_nan = np.isnan(a) & np.isnan(b)
        with np.errstate(invalid="ignore"):
            bad = ~((np.abs(a - b) <= rel * np.maximum(1.0, np.abs(b))) | both_nan)
        tol = f"|a-b| <= {rel:g}*max(1,|b|)"
    elif method == "gaussian":
        a = actual.astype(np.float64)
        b = ref64
        bad = ~(np.abs(a - b) <= 0.5 + 1e-5 * np.maximum(1.0, np.abs(b)))
        tol = "within 0.5 + 1e-5*max(1,|ref|) of the unrounded reference"
    else:
        a, b = actual, expected
        bad = a != b
        tol = "exactly"
    n = int(np.count_nonzero(bad))
    if n:
        idx = tuple(int(i[0]) for i in np.nonzero(bad))
        fails.add(
            f"{label}: {n} of {actual.size} values differ from the {method} reference of the "
            f"level above ({tol}); first at index {idx}: stored {actual[idx]!r}, reference "
            f"{expected[idx]!r} (float64 {ref64[idx]!r})"
        )


# ---------------------------------------------------------------------------------------------
# Metadata helpers.


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def expected_types(units: list[str | None], down: list[int], fails: Failures) -> list | None:
    """The axis types the contract gives these units and downsampled axes (None = no type)."""
    ndim = len(units)
    types: list[str | None] = [None] * ndim
    space = set(down)
    if len(down) == 2 and min(down) >= 1 and units[min(down) - 1] in LENGTH_UNITS:
        space.add(min(down) - 1)
    if sorted(space) != list(range(ndim - len(space), ndim)):
        fails.add(f"the space axes {sorted(space)} are not the last axes of {ndim}")
        return None
    for a in space:
        types[a] = "space"
    others = []
    for a in range(ndim):
        if a in space:
            continue
        if units[a] in TIME_UNITS:
            if a != 0:
                fails.add(f"axis {a} has a time unit ({units[a]}) but is not the first axis")
            types[a] = "time"
        else:
            others.append(a)
    if len(others) > 2:
        fails.add(f"axes {others} are neither space nor time: at most 2 may be (custom, channel)")
        return None
    if others:
        types[others[-1]] = None
    if len(others) == 2:
        types[others[0]] = "channel"
    return types


def parse_floats(text: str | None) -> list[float] | None:
    if text is None:
        return None
    return [float(v) for v in text.split(",")]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def check_compressor(meta: dict, version: str, want: str, label: str, fails: Failures) -> None:
    if want == "any":
        return
    if version == "0.4":
        comp = meta.get("compressor")
        if want == "none":
            if comp is not None:
                fails.add(f"{label}: compressor {comp} but none was expected")
            return
        ok = (
            isinstance(comp, dict)
            and comp.get("id") == "blosc"
            and comp.get("cname") == "zstd"
            and comp.get("clevel") == 1
            and comp.get("shuffle") == 1
        )
        if not ok:
            fails.add(f"{label}: compressor {comp}, expected Blosc zstd level 1 byte shuffle")
        if meta.get("filters") not in (None, []):
            fails.add(f"{label}: filters {meta.get('filters')}, expected none")
        return
    codecs = meta.get("codecs") or []
    if len(codecs) == 1 and codecs[0].get("name") == "sharding_indexed":
        codecs = codecs[0].get("configuration", {}).get("codecs") or []
    names = [c.get("name") for c in codecs]
    if not names or names[0] != "bytes":
        fails.add(f"{label}: codecs {names}: the first must be `bytes`")
        return
    if (codecs[0].get("configuration") or {}).get("endian", "little") != "little":
        fails.add(f"{label}: bytes codec {codecs[0]} is not little endian")
    if want == "none":
        if len(codecs) != 1:
            fails.add(f"{label}: codecs {names}, expected `bytes` alone")
        return
    if len(codecs) != 2 or names[1] != "blosc":
        fails.add(f"{label}: codecs {names}, expected `bytes` then `blosc`")
        return
    cfg = codecs[1].get("configuration") or {}
    if cfg.get("cname") != "zstd" or cfg.get("clevel") != 1 or cfg.get("shuffle") != "shuffle":
        fails.add(f"{label}: blosc configuration {cfg}, expected zstd level 1 shuffle")


# ---------------------------------------------------------------------------------------------


def check(args: argparse.Namespace) -> tuple[Failures, str]:
    import zarr

    fails = Failures()
    path = args.path.rstrip("/")
    if not os.path.isdir(path):
        fails.add(f"{path}: not a directory")
        return fails, ""
    if os.path.exists(os.path.join(path, MARKER)):
        fails.add(f"{path}: the incomplete marker {MARKER} is still there")

    # 1. Version and root document.
    if os.path.isfile(os.path.join(path, "zarr.json")):
        root = read_json(os.path.join(path, "zarr.json"))
        if root.get("zarr_format") != 3 or root.get("node_type") != "group":
            fails.add(f"{path}/zarr.json: not a Zarr v3 group: {root}")
        ome = (root.get("attributes") or {}).get("ome")
        if not isinstance(ome, dict):
            fails.add(f"{path}/zarr.json: no `ome` attributes")
            return fails, ""
        version = ome.get("version")
        if version != "0.5":
            fails.add(f"{path}/zarr.json: ome.version {version!r}, expected '0.5'")
            return fails, ""
        extra = set(ome) - {"version", "multiscales"}
        if extra:
            fails.add(f"{path}/zarr.json: unexpected ome keys {sorted(extra)}")
        ms_list = ome.get("multiscales")
    elif os.path.isfile(os.path.join(path, ".zgroup")) and os.path.isfile(
        os.path.join(path, ".zattrs")
    ):
        version = "0.4"
        zattrs = read_json(os.path.join(path, ".zattrs"))
        extra = set(zattrs) - {"multiscales"}
        if extra:
            fails.add(f"{path}/.zattrs: unexpected keys {sorted(extra)} (e.g. omero)")
        ms_list = zattrs.get("multiscales")
    else:
        fails.add(f"{path}: no root group document (zarr.json, or .zgroup + .zattrs)")
        return fails, ""
    if args.expect_version and version != args.expect_version:
        fails.add(f"version {version}, expected {args.expect_version}")
    zarr_format = 2 if version == "0.4" else 3

    # 2. ome-zarr-models.
    try:
        group = zarr.open_group(path, mode="r", zarr_format=zarr_format)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if version == "0.4":
                from ome_zarr_models.v04.image import Image
            else:
                from ome_zarr_models.v05.image import Image
            Image.from_zarr(group)
    except Exception as e:  # noqa: BLE001 -- any rejection is a failure to report
        fails.add(f"ome-zarr-models {version} rejects {path}: {type(e).__name__}: {e}")

    # 3. multiscales.
    if not isinstance(ms_list, list) or len(ms_list) != 1:
        fails.add(f"multiscales must be a list of one entry, got {ms_list!r}")
        return fails, version
    m = ms_list[0]
    if version == "0.4" and m.get("version") != "0.4":
        fails.add(f"multiscales[0].version {m.get('version')!r}, expected '0.4'")
    if version == "0.5" and "version" in m:
        fails.add("multiscales[0] has a `version` key (v0.5 puts it in `ome` only)")
    if not isinstance(m.get("name"), str) or not m.get("name"):
        fails.add(f"multiscales[0].name {m.get('name')!r} is not a non-empty string")
    if args.expect_name is not None and m.get("name") != args.expect_name:
        fails.add(f"multiscales[0].name {m.get('name')!r}, expected {args.expect_name!r}")
    if "coordinateTransformations" in m:
        fails.add("multiscales[0] has top-level coordinateTransformations")
    extra = set(m) - {"name", "axes", "datasets", "version"}
    if extra:
        fails.add(f"multiscales[0] has unexpected keys {sorted(extra)}")
    axes_meta = m.get("axes") or []
    datasets = m.get("datasets") or []
    ndim = len(axes_meta)

    # 4. axes.
    names = [a.get("name") for a in axes_meta]
    types = [a.get("type") for a in axes_meta]
    units = [a.get("unit") for a in axes_meta]
    if any(not isinstance(n, str) or not n for n in names) or len(set(names)) != len(names):
        fails.add(f"axis names {names} are not distinct non-empty strings")
    for i, u in enumerate(units):
        if u is not None and u not in LENGTH_UNITS and u not in TIME_UNITS:
            fails.add(f"axis {i} ({names[i]}): unit {u!r} is not an OME-NGFF space/time unit")
    for i, a in enumerate(axes_meta):
        extra = set(a) - {"name", "type", "unit"}
        if extra:
            fails.add(f"axis {i}: unexpected keys {sorted(extra)}")
    down = [int(v) for v in args.axes.split(",")] if args.axes else [ndim - 2, ndim - 1]
    down = [d + ndim if d < 0 else d for d in down]
    if ndim < 2 or any(d < 0 or d >= ndim for d in down):
        fails.add(f"downsampled axes {down} do not fit {ndim} axes")
        return fails, version
    want_types = expected_types(units, down, fails)
    if want_types is not None and want_types != types:
        fails.add(f"axis types {types}, but the contract gives {want_types} for units {units} "
                  f"and downsampled axes {down}")
    if args.expect_axes is not None:
        want = []
        for spec in args.expect_axes.split(","):
            parts = spec.split(":")
            if len(parts) != 3:
                raise SystemExit(f"--expect-axes: bad item {spec!r} (name:type:unit)")
            want.append(tuple(p or None for p in parts))
        got = list(zip(names, types, units))
        if got != want:
            fails.add(f"axes (name, type, unit) {got}, expected {want}")

    # 5./6. levels.
    n_levels = len(datasets)
    if args.expect_levels is not None and n_levels != args.expect_levels:
        fails.add(f"{n_levels} levels, expected {args.expect_levels}")
    scales, translations = [], []
    for k, ds in enumerate(datasets):
        if ds.get("path") != str(k):
            fails.add(f"dataset {k}: path {ds.get('path')!r}, expected {str(k)!r}")
        ct = ds.get("coordinateTransformations") or []
        if [t.get("type") for t in ct] != ["scale", "translation"]:
            fails.add(f"dataset {k}: transformations {[t.get('type') for t in ct]}, expected "
                      "['scale', 'translation']")
            return fails, version
        scales.append([float(v) for v in ct[0]["scale"]])
        translations.append([float(v) for v in ct[1]["translation"]])
        if len(scales[-1]) != ndim or len(translations[-1]) != ndim:
            fails.add(f"dataset {k}: scale/translation lengths differ from {ndim} axes")
            return fails, version
    if n_levels == 0:
        fails.add("no datasets")
        return fails, version
    for what, want, got in (("scale", parse_floats(args.expect_scale0), scales[0]),
                            ("translation", parse_floats(args.expect_translation0),
                             translations[0])):
        if want is not None and (len(want) != ndim or
                                 not all(close(a, b) for a, b in zip(got, want))):
            fails.add(f"level 0 {what} {got}, expected {want}")
    for k in range(1, n_levels):
        for a in range(ndim):
            f = 2.0**k if a in down else 1.0
            if not close(scales[k][a], scales[0][a] * f):
                fails.add(f"level {k} axis {a} ({names[a]}): scale {scales[k][a]}, expected "
                          f"{scales[0][a] * f} (level 0 scale x {f:g})")
            t = translations[k - 1][a]
            if a in down and args.method == "mean":
                t += 0.5 * scales[k - 1][a]
            if not close(translations[k][a], t):
                why = ("translation of the level above + 0.5 x its scale (mean: block centre)"
                       if a in down and args.method == "mean" else
                       "the translation of the level above")
                fails.add(f"level {k} axis {a} ({names[a]}): translation {translations[k][a]}, "
                          f"expected {t} = {why}")

    arrays = []
    for k in range(n_levels):
        label = f"level {k}"
        sub = os.path.join(path, str(k))
        doc = os.path.join(sub, ".zarray" if zarr_format == 2 else "zarr.json")
        if not os.path.isfile(doc):
            fails.add(f"{label}: no {doc}")
            return fails, version
        meta = read_json(doc)
        try:
            arr = zarr.open_array(sub, mode="r", zarr_format=zarr_format)
        except Exception as e:  # noqa: BLE001
            fails.add(f"{label}: zarr-python cannot open {sub}: {type(e).__name__}: {e}")
            return fails, version
        arrays.append(arr)
        if arr.ndim != ndim:
            fails.add(f"{label}: {arr.ndim} dimensions but {ndim} axes")
            return fails, version
        if k == 0:
            level0_dtype = arr.dtype
        elif arr.dtype != level0_dtype:
            fails.add(f"{label}: dtype {arr.dtype}, level 0 has {level0_dtype}")
        if k > 0:
            prev = arrays[k - 1].shape
            want = tuple((n + 1) // 2 if a in down else n for a, n in enumerate(prev))
            if arr.shape != want:
                fails.add(f"{label}: shape {arr.shape}, expected {want} (ceil halving of "
                          f"{prev} on axes {down})")
        fill = meta.get("fill_value")
        if fill not in (0, 0.0, "0", "0.0"):
            fails.add(f"{label}: fill_value {fill!r}, expected 0")
        if zarr_format == 2:
            if meta.get("dimension_separator") != "/":
                fails.add(f"{label}: dimension_separator {meta.get('dimension_separator')!r}, "
                          "expected '/'")
            if os.path.isfile(os.path.join(sub, ".zattrs")) and read_json(
                os.path.join(sub, ".zattrs")
            ):
                fails.add(f"{label}: non-empty array .zattrs")
        else:
            if meta.get("dimension_names") != names:
                fails.add(f"{label}: dimension_names {meta.get('dimension_names')}, expected "
                          f"the axis names {names}")
            cke = meta.get("chunk_key_encoding") or {}
            if cke.get("name") != "default" or (cke.get("configuration") or {}).get(
                "separator", "/"
            ) != "/":
                fails.add(f"{label}: chunk_key_encoding {cke}, expected default with '/'")
        check_compressor(meta, version, args.compressor, label, fails)
        if args.chunks is not None:
            want_inner = tuple(min(args.chunks, n) if a in down else 1
                               for a, n in enumerate(arr.shape))
            if arr.chunks != want_inner:
                fails.add(f"{label}: chunks {arr.chunks}, expected {want_inner}")
            shards = getattr(arr, "shards", None)
            if args.shard is not None:
                ok = shards is not None and all(
                    (s == 1 and a not in down)
                    or (a in down and s % c == 0 and c <= s <= args.shard * c)
                    for a, (s, c) in enumerate(zip(shards, want_inner))
                )
                if version != "0.5" or not ok:
                    fails.add(f"{label}: shards {shards}, expected multiples of the chunks "
                              f"{want_inner} of at most {args.shard}x on the downsampled axes")
            elif shards is not None:
                fails.add(f"{label}: sharded ({shards}) but no --shard was expected")
    if args.source:
        src = np.load(args.source, mmap_mode="r")
        if src.shape != arrays[0].shape or src.dtype != arrays[0].dtype:
            fails.add(f"level 0: {arrays[0].shape} {arrays[0].dtype}, the source is "
                      f"{src.shape} {src.dtype}")

    # 7. values.
    levels = []
    if not args.no_values and fails.ok():
        levels = [np.asarray(a[...]) for a in arrays]
        if args.source:
            src = np.load(args.source)
            if not np.array_equal(levels[0], src, equal_nan=levels[0].dtype.kind == "f"):
                bad = np.nonzero(levels[0] != src)
                idx = tuple(int(i[0]) for i in bad)
                fails.add(f"level 0 differs from the source in {len(bad[0])} values; first at "
                          f"{idx}: {levels[0][idx]!r} vs {src[idx]!r}")
        for k in range(1, n_levels):
            compare_level(levels[k], levels[k - 1], down, args.method, f"level {k}", fails)

    # 8. ome-zarr-py's reader.
    try:
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Multiscales, Reader

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loc = parse_url(path, mode="r")
            if loc is None:
                raise ValueError("parse_url found no Zarr here")
            nodes = [n for n in Reader(loc)() if any(isinstance(s, Multiscales) for s in n.specs)]
        if len(nodes) != 1:
            fails.add(f"ome-zarr reader: {len(nodes)} multiscale image nodes, expected 1")
        else:
            data = nodes[0].data
            if len(data) != n_levels:
                fails.add(f"ome-zarr reader: {len(data)} levels, expected {n_levels}")
            for k, d in enumerate(data[:n_levels]):
                if tuple(d.shape) != arrays[k].shape:
                    fails.add(f"ome-zarr reader: level {k} shape {d.shape}, zarr-python "
                              f"{arrays[k].shape}")
                elif levels and not np.array_equal(np.asarray(d.compute()), levels[k],
                                                   equal_nan=levels[k].dtype.kind == "f"):
                    fails.add(f"ome-zarr reader: level {k} values differ from zarr-python's")
            axes_read = nodes[0].metadata.get("axes")
            if axes_read is not None:
                got = [a["name"] if isinstance(a, dict) else a for a in axes_read]
                if got != names:
                    fails.add(f"ome-zarr reader: axes {got}, expected {names}")
    except Exception as e:  # noqa: BLE001
        fails.add(f"ome-zarr reader fails on {path}: {type(e).__name__}: {e}")

    summary = (f"v{version}, {n_levels} levels, shapes "
               f"{[tuple(a.shape) for a in arrays]}, {arrays[0].dtype}, method {args.method}, "
               f"axes {list(zip(names, types, units))}")
    return fails, summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path")
    p.add_argument("--method", choices=["mean", "gaussian", "nearest"], default="mean")
    p.add_argument("--expect-levels", type=int)
    p.add_argument("--expect-version", choices=["0.4", "0.5"])
    p.add_argument("--source", help="an .npy file that level 0 must equal")
    p.add_argument("--axes", help="downsampled axes, by array index (default: the last two)")
    p.add_argument("--chunks", type=int, help="expected chunk length on downsampled axes")
    p.add_argument("--shard", type=int, help="expected shard factor (v0.5)")
    p.add_argument("--compressor", choices=["blosc-zstd:1", "none", "any"],
                   default="blosc-zstd:1")
    p.add_argument("--expect-axes", help="name:type:unit,... (empty for absent)")
    p.add_argument("--expect-scale0")
    p.add_argument("--expect-translation0")
    p.add_argument("--expect-name")
    p.add_argument("--no-values", action="store_true", help="skip the value checks (big data)")
    args = p.parse_args(argv)
    fails, summary = check(args)
    if not fails.ok():
        print(f"FAIL {args.path}: {len(fails.items)} problem(s)")
        for f in fails.items:
            print(f"  - {f}")
        return 1
    print(f"OK {args.path}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
