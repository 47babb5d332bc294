#!/usr/bin/env python3
"""Tests `ome_check.py` both ways, without lazyspy: pyramids written by `ome_reference.py`
(both OME-Zarr versions, every method, float32 and uint16, odd sizes, several and edge
chunks, a sharded v0.5) must pass it, and altered copies must fail it with the expected
message: one chunk changed (level 0 against --source, and a downsampled level), integer
means floored instead of rounded, a wrong scale, a missing half-pixel translation, a wrong
axis type, wrong dimension_names, a missing level, the incomplete marker, and a pyramid
checked with the wrong method.

    ome_check_selftest.py WORKDIR

Exit 0 when every case behaves, 1 otherwise (each case is printed).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ome_check  # noqa: E402
from ome_check import reference_level_f64  # noqa: E402
from ome_reference import write_pyramid  # noqa: E402

CHECKER = os.path.join(HERE, "ome_check.py")
problems: list[str] = []


def run_check(path: str, *extra: str, subprocess_run: bool = False) -> tuple[int, str]:
    """Runs the checker in this process (fast), or as a command to see its real exit code."""
    if subprocess_run:
        p = subprocess.run([sys.executable, CHECKER, path, *extra], capture_output=True,
                           text=True)
        return p.returncode, p.stdout + p.stderr
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = ome_check.main([path, *extra])
    return code, buf.getvalue()


def expect_ok(path: str, *extra: str, subprocess_run: bool = False) -> None:
    code, out = run_check(path, *extra, subprocess_run=subprocess_run)
    status = "ok" if code == 0 else "WRONG (rejected)"
    print(f"accept {os.path.basename(path)} {' '.join(extra)}: {status}")
    if code != 0:
        problems.append(f"pristine {path} rejected:\n{out}")


def expect_fail(what: str, path: str, needle: str, *extra: str,
                subprocess_run: bool = False) -> None:
    code, out = run_check(path, *extra, subprocess_run=subprocess_run)
    good = code == 1 and needle in out
    print(f"reject {what}: {'ok' if good else 'WRONG'}"
          + ("" if good else f" (exit {code}, wanted {needle!r}):\n{out}"))
    if good:
        first = [ln for ln in out.splitlines() if ln.startswith("  - ")][:1]
        print(f"    {first[0].strip() if first else ''}"[:220])
    else:
        problems.append(f"{what}: exit {code}, expected exit 1 with {needle!r}")


def root_doc(path: str) -> str:
    z = os.path.join(path, "zarr.json")
    return z if os.path.isfile(z) else os.path.join(path, ".zattrs")


def edit_multiscale(path: str, fn) -> None:
    doc = root_doc(path)
    with open(doc) as f:
        j = json.load(f)
    m = j["attributes"]["ome"]["multiscales"][0] if doc.endswith("zarr.json") \
        else j["multiscales"][0]
    fn(m)
    with open(doc, "w") as f:
        json.dump(j, f, indent=2)


def copy(src: str, dst: str) -> str:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


def main() -> int:
    import zarr

    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(6)
    y, x = np.mgrid[0:301, 0:517]
    smooth = np.sin(y / 17.0) * np.cos(x / 23.0) * 1000.0
    f32 = np.stack([smooth + k * 10 + rng.normal(0, 5, smooth.shape) for k in range(3)])
    f32 = f32.astype(np.float32)
    u16 = rng.integers(0, 65535, (2, 301, 517), dtype=np.uint16)
    np.save(os.path.join(work, "f32.npy"), f32)
    np.save(os.path.join(work, "u16.npy"), u16)
    common = ["--expect-levels", "4", "--chunks", "64",
              "--expect-axes", "page::,y:space:,x:space:",
              "--expect-scale0", "1,1,1", "--expect-translation0", "0,0,0"]

    # Pristine pyramids pass.
    made = {}
    for version in ("0.4", "0.5"):
        for method in ("mean", "nearest", "gaussian"):
            for name, data in (("f32", f32), ("u16", u16)):
                out = os.path.join(work, f"{name}_{method}_v{version}.ome.zarr")
                write_pyramid(out, data, version=version, method=method, levels=4, chunks=64)
                made[(name, method, version)] = out
                expect_ok(out, "--method", method, "--expect-version", version,
                          "--source", os.path.join(work, f"{name}.npy"), *common)
    sharded = os.path.join(work, "f32_mean_v0.5_shard2.ome.zarr")
    write_pyramid(sharded, f32, version="0.5", method="mean", levels=4, chunks=64, shard=2)
    expect_ok(sharded, "--shard", "2", "--source", os.path.join(work, "f32.npy"), *common)
    expect_fail("a sharded pyramid checked as unsharded", sharded, "sharded", *common)
    # The command itself: exit 0 on a good pyramid, 1 on a bad one.
    expect_ok(sharded, "--shard", "2", *common, subprocess_run=True)
    expect_fail("(as a command) a sharded pyramid checked as unsharded", sharded, "sharded",
                *common, subprocess_run=True)

    for version in ("0.4", "0.5"):
        base = made[("f32", "mean", version)]
        src = ["--source", os.path.join(work, "f32.npy")]
        tag = f"v{version}"

        # One chunk of level 0 changed: only --source can see it... and level 1 then differs.
        p = copy(base, os.path.join(work, f"alt_chunk0_{tag}"))
        a = zarr.open_array(os.path.join(p, "0"), mode="r+")
        a[1, 64:128, 128:192] = a[1, 64:128, 128:192] + 1.0
        expect_fail(f"{tag} one level-0 chunk changed", p, "differs from the source", *src,
                    *common)
        # One chunk of level 2 changed (an edge chunk, one value).
        p = copy(base, os.path.join(work, f"alt_chunk2_{tag}"))
        a = zarr.open_array(os.path.join(p, "2"), mode="r+")
        a[2, 75, 129] = a[2, 75, 129] * 1.001 + 0.01
        expect_fail(f"{tag} one value of a level-2 edge chunk changed", p,
                    "level 2: 1 of", *common)
        # A wrong scale.
        p = copy(base, os.path.join(work, f"alt_scale_{tag}"))
        edit_multiscale(p, lambda m: m["datasets"][2]["coordinateTransformations"][0]
                        .__setitem__("scale", [1.0, 4.0, 4.5]))
        expect_fail(f"{tag} wrong scale at level 2", p, "level 2 axis 2 (x): scale 4.5",
                    *common)
        # The half-pixel translation of mean missing.
        p = copy(base, os.path.join(work, f"alt_trans_{tag}"))
        edit_multiscale(p, lambda m: [d["coordinateTransformations"][1].__setitem__(
            "translation", [0.0, 0.0, 0.0]) for d in m["datasets"]])
        expect_fail(f"{tag} mean without the half-pixel translation", p,
                    "+ 0.5 x its scale", *common)
        # ...while nearest must not have it.
        p = copy(made[("f32", "nearest", version)], os.path.join(work, f"alt_trans_n_{tag}"))
        edit_multiscale(p, lambda m: m["datasets"][1]["coordinateTransformations"][1]
                        .__setitem__("translation", [0.0, 0.5, 0.5]))
        expect_fail(f"{tag} nearest with a half-pixel translation", p,
                    "translation of the level above", "--method", "nearest", *common)
        # A wrong axis type (the custom "page" axis typed as channel, y typed as time).
        p = copy(base, os.path.join(work, f"alt_type_{tag}"))
        edit_multiscale(p, lambda m: m["axes"][0].__setitem__("type", "channel"))
        expect_fail(f"{tag} custom axis typed channel", p, "axis types", *common)
        p = copy(base, os.path.join(work, f"alt_type2_{tag}"))
        edit_multiscale(p, lambda m: m["axes"][1].__setitem__("type", "time"))
        expect_fail(f"{tag} space axis typed time", p, "axis types", *common)
        # A unit that OME-NGFF does not know.
        p = copy(base, os.path.join(work, f"alt_unit_{tag}"))
        edit_multiscale(p, lambda m: m["axes"][2].__setitem__("unit", "nm"))
        expect_fail(f"{tag} short unit nm", p, "not an OME-NGFF space/time unit", *common)
        # A level dropped from the metadata.
        p = copy(base, os.path.join(work, f"alt_levels_{tag}"))
        edit_multiscale(p, lambda m: m["datasets"].pop())
        expect_fail(f"{tag} a level missing", p, "3 levels, expected 4", *common)
        # The incomplete marker left behind.
        p = copy(base, os.path.join(work, f"alt_marker_{tag}"))
        open(os.path.join(p, ".lazyspy-incomplete"), "w").write("{}")
        expect_fail(f"{tag} incomplete marker", p, "incomplete marker", *common)
        # Checked with the wrong method.
        expect_fail(f"{tag} gaussian pyramid checked as nearest",
                    made[("f32", "gaussian", version)], "differ from the nearest reference",
                    "--method", "nearest", *common)
        # Integer means truncated instead of rounded half to even.
        p = copy(made[("u16", "mean", version)], os.path.join(work, f"alt_floor_{tag}"))
        l0 = zarr.open_array(os.path.join(p, "0"), mode="r")[...]
        a = zarr.open_array(os.path.join(p, "1"), mode="r+")
        a[...] = np.floor(reference_level_f64(l0, [1, 2], "mean")).astype(np.uint16)
        expect_fail(f"{tag} uint16 mean floored", p, "level 1:", *common)

    # v0.5 only: dimension_names not the axis names.
    p = copy(made[("f32", "mean", "0.5")], os.path.join(work, "alt_dimnames"))
    z = os.path.join(p, "1", "zarr.json")
    j = json.load(open(z))
    j["dimension_names"] = ["page", "x", "y"]
    json.dump(j, open(z, "w"))
    expect_fail("v0.5 wrong dimension_names", p, "dimension_names", *common)
    # v0.4 only: the version key missing from the multiscale (ome-zarr-models rejects it too).
    p = copy(made[("f32", "mean", "0.4")], os.path.join(work, "alt_version"))
    edit_multiscale(p, lambda m: m.pop("version"))
    expect_fail("v0.4 without multiscales version", p, "version", *common)

    if problems:
        print(f"\n{len(problems)} case(s) misbehaved:")
        for pr in problems:
            print(f"- {pr}")
        return 1
    print("\nall cases behave")
    return 0


if __name__ == "__main__":
    sys.exit(main())
