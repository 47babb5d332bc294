#!/usr/bin/env python3
"""The scan-map job, lazyspy against dask, on the same TIFFs in one run.

Job: a folder of N float32 2048x2048 TIFF scan images -> lazy stack -> Gaussian filter
(sigma 10 on the image axes, truncate 4, mode reflect) -> .zspy / Zarr (Blosc zstd level 1,
shuffle).

- lazyspy: ``<binary> --memory-limit 256MiB --no-progress filter gaussian --sigma 10
  --axes 1,2 'DIR/*.tif' OUT.zspy``
- dask: ``da.stack`` of ``da.from_delayed(dask.delayed(tifffile.imread)(f))`` (one chunk
  per image), ``map_overlap(scipy.ndimage.gaussian_filter, sigma=(0, 10, 10),
  mode="reflect")`` with ``depth={0: 0, 1: 40, 2: 40}`` and ``boundary="reflect"`` (dask's
  reflect padding repeats the edge sample, as SciPy's "reflect" does, and 40 = 4 sigma is
  the kernel radius, so each image is filtered exactly as SciPy filters it alone), then
  ``to_zarr`` with ``numcodecs.Blosc("zstd", 1, Blosc.SHUFFLE)``; dask's default threaded
  scheduler.

Each engine runs in a fresh child process. Reported per engine: wall time of the child
(``job_s``; for dask also ``compute_s``, measured inside the child around the computation
only, without interpreter start-up and imports), process CPU time, and peak memory (the
child's ``ru_maxrss`` from ``os.wait4``). Then the ratios, and whether the two outputs
agree: the maximum absolute difference over all images, divided by the maximum absolute
value (``max_rel_diff``; float32 rounding gives about 1e-7).

Inputs: ``--images DIR`` uses the TIFFs of an existing folder (e.g. the one ``lazyspy demo``
made; the first N in natural order are linked into the work folder), otherwise N images are
generated with tifffile (deterministic smooth field plus noise) into ``WORK/inputs`` and
reused by later runs.

Usage::

    python3 benches/scanmap_compare.py [--binary target/release/lazyspy] [--n 48]
        [--size 2048] [--images DIR] [--work /tmp/lazyspy-scanmap] [--memory-limit 256MiB]
        [--repeat 1] [--engines lazyspy,dask] [--json OUT.json] [--keep-outputs]

Python: runs under any interpreter that has numpy, scipy, dask, tifffile, zarr (2.x) and
numcodecs; otherwise re-executes itself under ``$LAZYSPY_PYTHON`` or
``$HOME/.cache/lazyspy/venv/bin/python``. The binary is built with ``cargo build --release``
(honours ``CARGO_TARGET_DIR``) when it does not exist.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import HS_VENV_PYTHON, REPO as CRATE, cargo_target_dir, ensure_modules, run_direct  # noqa: E402

SIGMA = 10.0
RADIUS = int(4.0 * SIGMA + 0.5)  # scipy: int(truncate * sigma + 0.5)


def natural_key(s):
    return [(0, int(t), t) if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s)]


def tiffs_in(folder):
    return sorted(glob.glob(os.path.join(folder, "*.tif")) +
                  glob.glob(os.path.join(folder, "*.tiff")), key=natural_key)


# --------------------------------------------------------------------------------------
# Inputs


def image_ok(path, size):
    import tifffile

    try:
        with tifffile.TiffFile(path) as t:
            p = t.pages[0]
            return len(t.pages) == 1 and p.shape == (size, size) and p.dtype.name == "float32"
    except Exception:
        return False


def synth_image(i, size):
    """Image i: a smooth separable field, two Gaussian blobs and uniform noise (float32)."""
    import numpy as np

    rng = np.random.default_rng(1000 + i)
    y = np.arange(size, dtype=np.float32)
    fy, fx, py, px = rng.uniform(1, 4), rng.uniform(1, 4), rng.uniform(0, 6.28), rng.uniform(0, 6.28)
    img = 1.0 + 0.4 * np.outer(np.sin(2 * np.pi * fy * y / size + py),
                               np.cos(2 * np.pi * fx * y / size + px)).astype(np.float32)
    for _ in range(2):
        cy, cx, s, a = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0.01, 0.06) * size, rng.uniform(0.5, 2)
        img += (a * np.outer(np.exp(-((y - cy) / s) ** 2 / 2), np.exp(-((y - cx) / s) ** 2 / 2))).astype(np.float32)
    img += rng.uniform(-0.05, 0.05, size=(size, size)).astype(np.float32)
    return img.astype(np.float32)


def prepare_inputs(args):
    import tifffile

    folder = os.path.join(args.work, "inputs")
    os.makedirs(folder, exist_ok=True)
    if args.images:
        src = tiffs_in(args.images)
        if len(src) < args.n:
            sys.exit("%s holds %d TIFFs, fewer than --n %d" % (args.images, len(src), args.n))
        for old in tiffs_in(folder):
            os.remove(old)
        for i, f in enumerate(src[: args.n]):
            os.symlink(os.path.abspath(f), os.path.join(folder, "scan_%03d.tif" % i))
        return folder
    made = 0
    for i in range(args.n):
        path = os.path.join(folder, "scan_%03d.tif" % i)
        if image_ok(path, args.size):
            continue
        tmp = path + ".tmp"
        tifffile.imwrite(tmp, synth_image(i, args.size), photometric="minisblack")
        os.replace(tmp, path)
        made += 1
    extra = tiffs_in(folder)[args.n:]
    for f in extra:
        os.remove(f)
    print("inputs: %s (%d generated, %d reused)" % (folder, made, args.n - made), file=sys.stderr)
    return folder


# --------------------------------------------------------------------------------------
# Children


def dask_child(folder, out):
    """The dask side (runs in its own process): prints a JSON line with compute_s."""
    import dask
    import dask.array as da
    import numcodecs
    import numpy as np
    import scipy.ndimage as ndi
    import tifffile

    t0 = time.perf_counter()
    files = tiffs_in(folder)
    with tifffile.TiffFile(files[0]) as t:
        shape, dtype = t.pages[0].shape, t.pages[0].dtype
    stack = da.stack([da.from_delayed(dask.delayed(tifffile.imread)(f), shape=shape, dtype=dtype)
                      for f in files])
    filtered = stack.map_overlap(
        ndi.gaussian_filter, depth={0: 0, 1: RADIUS, 2: RADIUS}, boundary="reflect",
        dtype=np.float32, sigma=(0, SIGMA, SIGMA), mode="reflect", truncate=4.0)
    compressor = numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE)
    filtered.to_zarr(out, compressor=compressor, overwrite=True)
    print(json.dumps({"compute_s": time.perf_counter() - t0, "shape": list(filtered.shape)}))


def find_data_array(store_path, shape):
    """The first array of the given shape in a Zarr store (the .zspy `data`)."""
    import zarr

    root = zarr.open(store_path, mode="r")
    if isinstance(root, zarr.Array):
        return root
    found = []

    def visit(name, obj):
        if isinstance(obj, zarr.Array) and tuple(obj.shape) == tuple(shape):
            found.append(obj)

    root.visititems(visit)
    if not found:
        raise SystemExit("no array of shape %s in %s" % (shape, store_path))
    return found[0]


def compare(lazy_out, dask_out, shape):
    import numpy as np
    import zarr

    a = find_data_array(lazy_out, shape)
    b = zarr.open(dask_out, mode="r")
    worst_abs, scale = 0.0, 0.0
    for i in range(shape[0]):
        x, y = np.asarray(a[i], dtype=np.float64), np.asarray(b[i], dtype=np.float64)
        worst_abs = max(worst_abs, float(np.max(np.abs(x - y))))
        scale = max(scale, float(np.max(np.abs(y))))
    return {"max_abs_diff": worst_abs, "max_rel_diff": worst_abs / scale if scale else worst_abs,
            "lazyspy_chunks": list(a.chunks), "dask_chunks": list(b.chunks)}


def default_binary():
    return os.path.join(cargo_target_dir(), "release", "lazyspy")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=None, help="lazyspy binary (default: target/release/lazyspy)")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--images", default=None, help="existing folder of TIFFs (e.g. lazyspy demo's)")
    ap.add_argument("--work", default="/tmp/lazyspy-scanmap")
    ap.add_argument("--memory-limit", default="256MiB")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--engines", default="lazyspy,dask")
    ap.add_argument("--json", default=None)
    ap.add_argument("--keep-outputs", action="store_true")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    ensure_modules(["dask.array", "numcodecs", "numpy", "scipy.ndimage", "tifffile", "zarr"],
                   env_var="LAZYSPY_PYTHON", default=HS_VENV_PYTHON,
                   hint="needs numpy, scipy, dask, tifffile, zarr and numcodecs; set LAZYSPY_PYTHON")
    if args.child:
        dask_child(*args.child)
        return

    engines = [e for e in args.engines.split(",") if e]
    binary = args.binary or default_binary()
    if "lazyspy" in engines and not os.path.exists(binary):
        if args.binary:
            sys.exit("no lazyspy binary at %s" % binary)
        print("building %s ..." % binary, file=sys.stderr)
        subprocess.check_call(["cargo", "build", "--release", "--bin", "lazyspy"], cwd=CRATE)

    os.makedirs(args.work, exist_ok=True)
    folder = prepare_inputs(args)
    import tifffile

    with tifffile.TiffFile(tiffs_in(folder)[0]) as t:
        shape = (args.n,) + tuple(t.pages[0].shape)
    outs = {"lazyspy": os.path.join(args.work, "out_lazyspy.zspy"),
            "dask": os.path.join(args.work, "out_dask.zarr")}
    results = {e: [] for e in engines}
    for rep in range(args.repeat):
        for engine in engines:
            out = outs[engine]
            shutil.rmtree(out, ignore_errors=True)
            if engine == "lazyspy":
                cmd = [binary, "--memory-limit", args.memory_limit, "--no-progress", "filter",
                       "gaussian", "--sigma", "%g" % SIGMA, "--axes", "1,2",
                       os.path.join(folder, "*.tif"), out]
            else:
                cmd = [sys.executable, os.path.abspath(__file__), "--child", folder, out]
            c = run_direct(cmd)
            rc, wall, cpu, rss, so, se = (c["code"], c["wall"], c["cpu"], c["rss_mib"],
                                          c["stdout"], c["stderr"])
            if rc != 0:
                sys.exit("%s failed (exit %d): %s\n%s" % (engine, rc, " ".join(cmd), se.strip()[-2000:]))
            r = {"job_s": wall, "cpu_s": cpu, "peak_rss_mib": rss}
            if engine == "dask":
                r["compute_s"] = json.loads(so.strip().splitlines()[-1])["compute_s"]
            results[engine].append(r)
            print("run %d %-8s wall %6.2f s  cpu %6.2f s  peak RSS %7.1f MiB" %
                  (rep + 1, engine, wall, cpu, rss), file=sys.stderr)

    report = {
        "job": "%d x float32 %dx%d TIFF -> gaussian sigma %g (radius %d, reflect) -> zarr blosc zstd 1"
               % (shape + (SIGMA, RADIUS)),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "memory_limit": args.memory_limit, "inputs": folder, "runs": results,
    }
    best = {e: min(results[e], key=lambda r: r["job_s"]) for e in engines}
    report["best"] = best
    if len(engines) == 2:
        lz, dk = best["lazyspy"], best["dask"]
        report["speedup_vs_dask"] = dk["job_s"] / lz["job_s"]
        report["speedup_vs_dask_compute_only"] = dk["compute_s"] / lz["job_s"]
        report["memory_ratio_dask_over_lazyspy"] = dk["peak_rss_mib"] / lz["peak_rss_mib"]
        report["agreement"] = compare(outs["lazyspy"], outs["dask"], shape)
        mb = shape[0] * shape[1] * shape[2] * 4 / 2**20
        print("\n%-8s %9s %9s %12s %11s" % ("engine", "wall s", "cpu s", "peak MiB", "MiB/s in"))
        for e in engines:
            r = best[e]
            print("%-8s %9.2f %9.2f %12.1f %11.0f" % (e, r["job_s"], r["cpu_s"], r["peak_rss_mib"], mb / r["job_s"]))
        print("dask compute only (no start-up): %.2f s" % dk["compute_s"])
        print("speed-up lazyspy vs dask: %.1fx (%.1fx vs dask's compute only); "
              "peak memory dask/lazyspy: %.1fx" % (report["speedup_vs_dask"],
                                                     report["speedup_vs_dask_compute_only"],
                                                     report["memory_ratio_dask_over_lazyspy"]))
        ag = report["agreement"]
        print("outputs agree: max abs diff %.3g, max rel diff %.3g" % (ag["max_abs_diff"], ag["max_rel_diff"]))
        if ag["max_rel_diff"] > 1e-5:
            print("WARNING: outputs differ by more than 1e-5 relative", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if not args.keep_outputs:
        for o in outs.values():
            shutil.rmtree(o, ignore_errors=True)
    if len(engines) == 2 and report["agreement"]["max_rel_diff"] > 1e-5:
        sys.exit(1)


if __name__ == "__main__":
    main()
