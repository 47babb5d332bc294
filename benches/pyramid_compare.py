#!/usr/bin/env python3
"""OME-Zarr pyramid of a (64, 2048, 2048) float32 stack, 4 levels: lazyspy against ome-zarr-py.

Input (made once, cached in ``--workdir``, default ``$TMPDIR/lazyspy-pyramid-bench``, and
reused while its parameters do not change): a ``.zspy`` written by HyperSpy 2.5.0 (the venv
of ``.ci/python-venv.sh``) from a dask array, one image per chunk ``(1, 2048, 2048)``
(16 MiB), Blosc lz4 level 5 + shuffle. Values: a smooth pattern
``1000 sin(y/97 + z/7) cos(x/131) + 10 z`` plus Gaussian noise (sigma 5), the noise seeded by
the image index (deterministic). Both tools read the very same Zarr v2 array
``Experiments/bench/data`` (lazyspy as a ``.zspy``, ome-zarr-py with
``dask.array.from_zarr``), so both decode the same bytes.

Jobs, each in its own child process, best of ``--repeat`` (default 1):

- ome-zarr-py 0.18: ``ome_zarr.writer.write_image(dask_array, zarr v2 group, fmt=FormatV04(),
  axes=["z", "y", "x"], scale_factors=[2, 4, 8], method=Methods.LOCAL_MEAN,
  storage_options=dict(chunks=(1, 256, 256), compressor=Blosc(zstd, 1, SHUFFLE)))`` with dask's
  default (threaded) scheduler. In 0.18 ``Scaler`` is deprecated: ``scaler=Scaler(max_layer=3,
  method="local_mean")`` is translated by ``write_image`` into exactly these
  ``scale_factors`` (2^i on y and x, 1 on z) and ``Methods.LOCAL_MEAN``;
- lazyspy: ``lazyspy --memory-limit 256MiB --no-progress pyramid IN OUT --levels 4
  --method mean --version 0.4 --chunks 256 --json``.

Both write OME-Zarr 0.4 (Zarr v2, dimension separator "/") with 4 levels, chunks
(1, 256, 256), Blosc zstd 1 + shuffle. Times: ``wall`` is the child's whole life (interpreter
start and imports included); for ome-zarr-py the child also reports ``work``, timed around
``from_zarr`` + ``write_image`` only, and the ratio uses that (the conservative choice for
lazyspy). ``cpu`` is user + system time of the child; peak memory is its ``ru_maxrss``
(``os.wait4`` in a tiny launcher, so this script's memory is not charged to the child).

Semantics: ome-zarr-py's ``local_mean`` is ``skimage.transform.downscale_local_mean`` on each
level (from the level above, like lazyspy's), i.e. ``np.mean`` of each 2 x 2 block *in
float32* (NumPy's float32 accumulation) then cast back; lazyspy's ``mean`` is the float64
mean cast to float32. So values can differ by about one float32 ulp; both add the half-pixel
translation (0.5 x scale) per level. Other differences that do not matter here (2048 is a
power of two): ome-zarr-py's level shapes are ``floor(n / 2)`` with the missing samples of an
odd edge padded with 0 by skimage, lazyspy's are ``ceil(n / 2)`` with the mean of the samples
present. After the runs the outputs are compared: same number of levels and shapes, level 0
equal to the input, and every level equal within 4 float32 ulps of the plane's largest
magnitude on ``--compare-planes`` planes (default 4 spread over z).

Usage::

    python3 benches/pyramid_compare.py [--lazyspy PATH] [--repeat N] [--memory-limit 256MiB]
        [--workdir DIR] [--json OUT.json] [--small] [--skip-ome-zarr-py] [--skip-lazyspy]

The script re-executes itself under the OME venv (``$LAZYSPY_OME_PYTHON``, else
``$HOME/.cache/lazyspy/ome-venv/bin/python``; ``.ci/ome-venv.sh`` creates it) and makes the
input with the HyperSpy venv (``$LAZYSPY_PYTHON``, else ``$HOME/.cache/lazyspy/venv``).
Build lazyspy first: ``cargo build --release`` (``--lazyspy`` defaults to
``$CARGO_TARGET_DIR/release/lazyspy``, else ``target/release/lazyspy``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import (HS_VENV_PYTHON, OME_VENV_PYTHON, best, cargo_target_dir,  # noqa: E402
                           ensure_modules, last_json, run_child, stamped_input, venv_python)

SHAPE = (64, 2048, 2048)
SMALL_SHAPE = (8, 512, 512)
LEVELS = 4
CHUNK = 256


MAKE_INPUT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import numpy as np, dask.array as da, numcodecs
import hyperspy.api as hs
hs.set_log_level("ERROR")
path, shape = sys.argv[1], tuple(json.loads(sys.argv[2]))
nz, ny, nx = shape
def block(block_info=None):
    z = block_info[None]["chunk-location"][0]
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float32)
    smooth = 1000.0 * np.sin(y / 97.0 + z / 7.0) * np.cos(x / 131.0) + 10.0 * z
    noise = np.random.default_rng(z).normal(0.0, 5.0, (ny, nx))
    return (smooth + noise).astype(np.float32)[None]
data = da.map_blocks(block, dtype="float32", chunks=((1,) * nz, (ny,), (nx,)))
s = hs.signals.Signal2D(data).as_lazy()
s.metadata.General.title = "bench"
for ax, name in zip(s.axes_manager._axes, "zyx"):
    ax.name = name
s.save(path, chunks=(1, ny, nx), overwrite=True,
       compressor=numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE))
"""

OME_ZARR_PY = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import dask, dask.array as da, numcodecs, zarr
from ome_zarr.format import FormatV04
from ome_zarr.scale import Methods
from ome_zarr.writer import write_image  # imports are not part of the work
src, dst, levels, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
arr = da.from_zarr(zarr.open_array(src, mode="r", zarr_format=2))
root = zarr.open_group(dst, mode="w", zarr_format=2)
write_image(arr, root, fmt=FormatV04(), axes=["z", "y", "x"],
            scale_factors=[2 ** i for i in range(1, levels)], method=Methods.LOCAL_MEAN,
            storage_options=dict(chunks=(1, chunk, chunk), compressor=numcodecs.Blosc(
                cname="zstd", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE)))
print(json.dumps({"work": time.perf_counter() - t0, "scheduler": str(dask.config.get("scheduler", "default"))}))
"""


def make_input(workdir: str, shape) -> str:
    spec = json.dumps({"shape": shape, "chunks": [1, shape[1], shape[2]], "comp": "lz4-5",
                       "values": "smooth+noise v1"}, sort_keys=True)
    path = os.path.join(workdir, "input.zspy")

    def command() -> list[str]:
        py = venv_python("LAZYSPY_PYTHON", HS_VENV_PYTHON)
        if py is None:
            sys.exit("no HyperSpy venv to make the input: run `bash .ci/python-venv.sh` first "
                     "(or set LAZYSPY_PYTHON)")
        return [py, "-c", MAKE_INPUT, path, json.dumps(list(shape))]

    return stamped_input(path, spec, command, f" {tuple(shape)} float32")


def level_arrays(path: str):
    """The level arrays of an OME-Zarr 0.4 image, in multiscales order."""
    import zarr

    root = zarr.open_group(path, mode="r", zarr_format=2)
    ms = root.attrs["multiscales"][0]
    return [root[d["path"]] for d in ms["datasets"]], ms


def compare(input_data_path: str, a_path: str, b_path: str, planes: int) -> list[str]:
    """Differences between the two pyramids (and level 0 against the input); [] if none."""
    import numpy as np
    import zarr

    problems = []
    src = zarr.open_array(input_data_path, mode="r", zarr_format=2)
    a_levels, a_ms = level_arrays(a_path)
    b_levels, b_ms = level_arrays(b_path)
    if len(a_levels) != len(b_levels):
        return [f"{len(a_levels)} levels against {len(b_levels)}"]
    for k, (a, b) in enumerate(zip(a_levels, b_levels)):
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"level {k}: {a.shape} {a.dtype} against {b.shape} {b.dtype}")
            continue
        ta = a_ms["datasets"][k]["coordinateTransformations"]
        tb = b_ms["datasets"][k]["coordinateTransformations"]
        if ta != tb:
            problems.append(f"level {k}: transformations {ta} against {tb}")
        zs = sorted({int(round(i * (a.shape[0] - 1) / max(1, planes - 1)))
                     for i in range(planes)})
        for z in zs:
            pa, pb = np.asarray(a[z]), np.asarray(b[z])
            if k == 0:
                ps = np.asarray(src[z])
                if not (np.array_equal(pa, ps) and np.array_equal(pb, ps)):
                    problems.append(f"level 0 plane {z} differs from the input")
            # ome-zarr-py sums each block in float32: its error is relative to the block's
            # samples, not to their mean (which can be near 0), so the tolerance is a few
            # float32 ulps of the plane's largest magnitude.
            big = np.float32(max(np.abs(pa).max(), np.abs(pb).max(), 1.0))
            tol = 4.0 * float(np.spacing(big))
            d = np.abs(pa.astype(np.float64) - pb.astype(np.float64))
            if np.any(d > tol):
                problems.append(f"level {k} plane {z}: {int(np.sum(d > tol))} values differ "
                                f"by more than {tol:.3g} (max |diff| {d.max():.3g})")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lazyspy", default=os.path.join(cargo_target_dir(), "release", "lazyspy"))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--memory-limit", default="256MiB", help="passed to lazyspy")
    ap.add_argument("--threads", type=int, default=None, help="passed to lazyspy")
    ap.add_argument("--workdir",
                    default=os.path.join(tempfile.gettempdir(), "lazyspy-pyramid-bench"))
    ap.add_argument("--compare-planes", type=int, default=4)
    ap.add_argument("--json", default=None, help="write all measurements here")
    ap.add_argument("--small", action="store_true",
                    help=f"smoke test on {SMALL_SHAPE} (not a measurement)")
    ap.add_argument("--skip-ome-zarr-py", action="store_true")
    ap.add_argument("--skip-lazyspy", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the outputs")
    args = ap.parse_args()
    ensure_modules(["ome_zarr", "zarr"], versions={"zarr": "3."}, env_var="LAZYSPY_OME_PYTHON",
                   default=OME_VENV_PYTHON,
                   hint="ome-zarr / zarr 3 are not importable: run `bash .ci/ome-venv.sh` "
                        "first (or set LAZYSPY_OME_PYTHON)")
    shape = SMALL_SHAPE if args.small else SHAPE
    if args.small:
        args.workdir = args.workdir.rstrip("/") + "-small"
    os.makedirs(args.workdir, exist_ok=True)
    inp = make_input(args.workdir, shape)
    data_path = os.path.join(inp, "Experiments", "bench", "data")
    if not os.path.isdir(data_path):
        sys.exit(f"{data_path}: not found (the input layout changed?)")

    lz = os.path.abspath(args.lazyspy)
    have_lazyspy = not args.skip_lazyspy
    if have_lazyspy:
        if not os.access(lz, os.X_OK):
            sys.exit(f"{lz} is not an executable: build it with `cargo build --release` "
                     "or pass --lazyspy PATH")
        probe = subprocess.run([lz, "pyramid", "--help"], capture_output=True)
        if probe.returncode != 0:
            print(f"NOTE: {lz} has no `pyramid` subcommand: lazyspy is not measured",
                  file=sys.stderr)
            have_lazyspy = False

    out_ozp = os.path.join(args.workdir, "out_ome_zarr_py.ome.zarr")
    out_lz = os.path.join(args.workdir, "out_lazyspy.ome.zarr")
    results = {"ome-zarr-py": [], "lazyspy": []}
    for rep in range(args.repeat):
        if not args.skip_ome_zarr_py:
            shutil.rmtree(out_ozp, ignore_errors=True)
            r = run_child([sys.executable, "-c", OME_ZARR_PY, data_path, out_ozp,
                           str(LEVELS), str(CHUNK)])
            if r["code"] == 0:
                r.update(last_json(r["stdout"]))
            else:
                print(f"ome-zarr-py failed:\n{r['stderr'][-3000:]}", file=sys.stderr)
            results["ome-zarr-py"].append(r)
            print(f"run {rep + 1}: ome-zarr-py wall {r['wall']:.1f} s, work "
                  f"{r.get('work', float('nan')):.1f} s, cpu {r['cpu']:.1f} s, peak RSS "
                  f"{r['rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
        if have_lazyspy:
            shutil.rmtree(out_lz, ignore_errors=True)
            cmd = [lz, "--no-progress", "--memory-limit", args.memory_limit]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            cmd += ["pyramid", inp, out_lz, "--levels", str(LEVELS), "--method", "mean",
                    "--version", "0.4", "--chunks", str(CHUNK), "--json"]
            r = run_child(cmd)
            if r["code"] == 0:
                try:
                    r["report"] = json.loads(r["stdout"])
                except json.JSONDecodeError:
                    pass
            else:
                print(f"lazyspy failed:\n{r['stderr'][-3000:]}", file=sys.stderr)
            results["lazyspy"].append(r)
            print(f"run {rep + 1}: lazyspy wall {r['wall']:.1f} s, cpu {r['cpu']:.1f} s, peak "
                  f"RSS {r['rss_mib']:.0f} MiB", file=sys.stderr, flush=True)

    b_ozp = best(results["ome-zarr-py"], "work")
    b_lz = best(results["lazyspy"], "wall")
    print()
    print(f"OME-Zarr 0.4 pyramid, {LEVELS} levels, float32 {shape}, chunks (1, {CHUNK}, "
          f"{CHUNK}), Blosc zstd 1 + shuffle; best of {args.repeat}; {os.cpu_count()} cores")
    print(f"{'tool':<14} {'wall s':>8} {'work s':>8} {'CPU s':>8} {'peak RSS MiB':>13}")
    for name, b in (("ome-zarr-py", b_ozp), ("lazyspy", b_lz)):
        if b is None:
            print(f"{name:<14} {'-':>8} {'-':>8} {'-':>8} {'-':>13}")
            continue
        work = b.get("work", b["wall"])
        print(f"{name:<14} {b['wall']:>8.2f} {work:>8.2f} {b['cpu']:>8.2f} "
              f"{b['rss_mib']:>13.0f}")
    summary = {"shape": list(shape), "levels": LEVELS, "chunk": CHUNK,
               "memory_limit": args.memory_limit, "runs": results}
    if b_ozp and b_lz:
        ratio = b_ozp["work"] / b_lz["wall"]
        summary["speedup"] = ratio
        summary["rss_ratio"] = b_ozp["rss_mib"] / b_lz["rss_mib"]
        print(f"speed-up (ome-zarr-py work / lazyspy wall): {ratio:.2f}x; peak RSS: lazyspy "
              f"{b_lz['rss_mib']:.0f} MiB (limit {args.memory_limit}), ome-zarr-py "
              f"{b_ozp['rss_mib']:.0f} MiB")
        problems = compare(data_path, out_lz, out_ozp, args.compare_planes)
        summary["output_differences"] = problems
        if problems:
            print("OUTPUTS DIFFER:")
            for p in problems:
                print(f"  - {p}")
        else:
            print(f"outputs agree: same levels, shapes and transformations; level 0 equals "
                  f"the input; every level within 4 float32 ulps on {args.compare_planes} "
                  "planes")
    if args.json:
        for runs in results.values():
            for r in runs:
                r["stderr"] = r["stderr"][-2000:]
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    if not args.keep:
        for p in (out_ozp, out_lz):
            shutil.rmtree(p, ignore_errors=True)
    failed = any(r["code"] != 0 for runs in results.values() for r in runs)
    return 1 if failed or summary.get("output_differences") else 0


if __name__ == "__main__":
    sys.exit(main())
