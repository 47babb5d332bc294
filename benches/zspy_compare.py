#!/usr/bin/env python3
"""Writes and reads the same .zspy data with HyperSpy 2.5.0 and with lazyspy, side by side.

Cases (default settings on both sides, as the issue's benchmark asks):

- ``f32``: float32 (64, 64, 128, 128), 256 MiB: ``100 + 10 * N(0, 1)`` (noisy floats, so
  the compressor has real work and little to gain);
- ``u16``: uint16 (128, 128, 128, 128), 512 MiB: Poisson counts with mean 2 (a sparse,
  very compressible 4D-STEM-like dataset).

The input ``.zspy`` of each case is made once (kept in ``--workdir`` and reused while its
parameters do not change) by HyperSpy from a dask array, saved with
``compressor=Blosc(cname="lz4", clevel=5, shuffle=SHUFFLE)`` (``--input-compressor zlib``
for ``Zlib(level=1)``), so both writers must decode it and re-encode with the default
Blosc zstd level 1 + shuffle: converting is real work, not a copy.

Jobs, each in its own child process, best of ``--repeat`` (default 3):

- write, HyperSpy: ``hs.load(in, lazy=True).save(out_hs.zspy)``;
- write, lazyspy: ``lazyspy --no-progress [--memory-limit M] convert in out_lz.zspy``;
- read, HyperSpy: ``hs.load(out_hs, lazy=True).data.sum().compute()``;
- read, lazyspy: ``lazyspy --no-progress [--memory-limit M] stats out_lz.zspy --json``
  (reads every chunk: min, max, mean, sum).

Times: ``wall`` is the child's whole life (interpreter start, imports, everything);
for HyperSpy the script also reports ``work``, timed inside the child around load + save
(or load + sum) only, after ``import hyperspy.api, rsciio.zspy, dask.array, zarr``. The ratios use HyperSpy's ``work``
against lazyspy's whole ``wall`` (the conservative choice for lazyspy). Peak memory is the
child's ``ru_maxrss`` (``os.wait4`` in a small launcher process, so that this script's
own memory is not charged to the child; the floor is the launcher's ~9 MiB). Afterwards the two outputs are opened with zarr and
their data compared chunk by chunk (SHA-256 of each output's bytes in C order, which must be
equal), and lazyspy's ``sum`` is compared with HyperSpy's.

Usage::

    python3 benches/zspy_compare.py [--lazyspy target/release/lazyspy] [--repeat 3]
        [--cases f32,u16] [--memory-limit 2GiB] [--threads N] [--workdir DIR]
        [--input-compressor lz4|zlib] [--json OUT.json] [--small]

The script runs itself under the HyperSpy venv (``$LAZYSPY_PYTHON``, else
``$HOME/.cache/lazyspy/venv/bin/python``; ``.ci/python-venv.sh`` creates it). Build lazyspy
first: ``cargo build --release`` (``--lazyspy`` defaults to ``$CARGO_TARGET_DIR/release/
lazyspy``, else ``target/release/lazyspy``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import (HS_VENV_PYTHON, best, cargo_target_dir, du, ensure_modules,  # noqa: E402
                           last_json, remove, run_child, stamped_input)

warnings.filterwarnings("ignore", category=FutureWarning)  # zarr 2.18 deprecation notes

CASES = {
    "f32": {"shape": (64, 64, 128, 128), "dtype": "float32"},
    "u16": {"shape": (128, 128, 128, 128), "dtype": "uint16"},
}
# Chunks of the generating dask array (and so of the input file): 16 MiB or less.
GEN_CHUNKS = {"f32": (8, 8, 128, 128), "u16": (8, 16, 128, 128)}


HS_WRITE = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import hyperspy.api as hs
import rsciio.zspy, dask.array, zarr, numcodecs  # imports are not part of the work
hs.set_log_level("ERROR")
src, dst = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
s = hs.load(src, lazy=True)
s.save(dst, overwrite=True)
print(json.dumps({"work": time.perf_counter() - t0}))
"""

HS_READ = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import hyperspy.api as hs
import rsciio.zspy, dask.array, zarr, numcodecs  # imports are not part of the work
hs.set_log_level("ERROR")
t0 = time.perf_counter()
s = hs.load(sys.argv[1], lazy=True)
total = s.data.sum().compute()
print(json.dumps({"work": time.perf_counter() - t0, "sum": float(total)}))
"""

MAKE_INPUT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import numpy as np, dask.array as da, numcodecs
import hyperspy.api as hs
hs.set_log_level("ERROR")
path, dtype, shape, chunks, comp = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
def block(block_info=None):
    info = block_info[None]
    loc = info["chunk-location"]
    seed = int(np.ravel_multi_index(loc, info["num-chunks"]))
    rng = np.random.default_rng(seed)
    shp = info["chunk-shape"]
    if dtype == "float32":
        return (100 + 10 * rng.standard_normal(shp, dtype=np.float32)).astype(np.float32)
    return rng.poisson(2.0, size=shp).astype(np.uint16)
data = da.map_blocks(block, dtype=dtype, chunks=tuple(tuple([c] * (n // c)) for n, c in zip(shape, chunks)))
s = hs.signals.Signal2D(data).as_lazy()
s.metadata.General.title = "bench"
for i, ax in enumerate(s.axes_manager._axes):
    ax.name = "xyuv"[i]
    ax.scale = 0.5 + i
    ax.units = "nm"
if comp == "lz4":
    c = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
else:
    c = numcodecs.Zlib(level=1)
s.save(path, compressor=c, overwrite=True)
"""


def input_path(workdir, case, comp):
    return os.path.join(workdir, f"input_{case}_{comp}.zspy")


def make_input(py, workdir, case, comp) -> str:
    spec = json.dumps({"case": CASES[case], "gen_chunks": GEN_CHUNKS[case], "comp": comp,
                       "version": 1}, sort_keys=True)
    path = input_path(workdir, case, comp)
    return stamped_input(path, spec, lambda: [
        py, "-c", MAKE_INPUT, path, CASES[case]["dtype"], json.dumps(CASES[case]["shape"]),
        json.dumps(GEN_CHUNKS[case]), comp], "")


# --------------------------------------------------------------------------------------------
# Output comparison


def data_array(path):
    import zarr

    store = zarr.ZipStore(path, mode="r") if os.path.isfile(path) else zarr.NestedDirectoryStore(path)
    root = zarr.open_group(store, mode="r")
    names = sorted(root["Experiments"].group_keys())
    return root["Experiments"][names[0]]["data"], store


def digest(path):
    """SHA-256 of the data (C order, slab by slab along axis 0), dtype, shape, chunks."""
    import numpy as np

    arr, store = data_array(path)
    h = hashlib.sha256()
    step = max(1, arr.chunks[0])
    for i in range(0, arr.shape[0], step):
        h.update(np.ascontiguousarray(arr[i:i + step]).tobytes())
    info = {"sha256": h.hexdigest(), "dtype": str(arr.dtype), "shape": list(arr.shape),
            "chunks": list(arr.chunks), "compressor": arr.compressor.get_config()
            if arr.compressor else None, "bytes_on_disk": du(path)}
    if hasattr(store, "close"):
        store.close()
    return info


# --------------------------------------------------------------------------------------------


def print_run(case: str, key: str, i: int, r: dict) -> None:
    """One progress line (stderr) for run ``i`` of job ``key``, and its error if it failed."""
    print(f"  {case} {key} run {i + 1}: exit {r['code']}, {r['wall']:.2f} s wall"
          f"{', %.2f s work' % r['work'] if 'work' in r else ''}, "
          f"{r['rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
    if r["code"] != 0:
        print("    " + (r["stderr"].strip().splitlines() or ["?"])[-1], file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lazyspy", default=os.path.join(cargo_target_dir(), "release", "lazyspy"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cases", default="f32,u16")
    ap.add_argument("--memory-limit", default=None, help="passed to lazyspy, e.g. 2GiB")
    ap.add_argument("--threads", type=int, default=None, help="passed to lazyspy")
    ap.add_argument("--workdir", default="/tmp/lazyspy-zspy-bench")
    ap.add_argument("--input-compressor", choices=["lz4", "zlib"], default="lz4")
    ap.add_argument("--json", default=None, help="write all measurements here")
    ap.add_argument("--small", action="store_true",
                    help="smoke test: first two dimensions divided by 8 (not a measurement)")
    args = ap.parse_args()
    if args.small:
        for c in CASES.values():
            c["shape"] = (c["shape"][0] // 8, c["shape"][1] // 8) + tuple(c["shape"][2:])
        args.workdir = args.workdir.rstrip("/") + "-small"
    ensure_modules(["hyperspy", "zarr"], env_var="LAZYSPY_PYTHON", default=HS_VENV_PYTHON,
                   hint="HyperSpy is not importable: run `bash .ci/python-venv.sh` first "
                        "(or set LAZYSPY_PYTHON)")
    py = sys.executable
    os.makedirs(args.workdir, exist_ok=True)
    lz = os.path.abspath(args.lazyspy)
    if not os.access(lz, os.X_OK):
        sys.exit(f"{lz} is not an executable: build it with `cargo build --release` "
                 "or pass --lazyspy PATH")
    glob = ["--no-progress"]
    if args.memory_limit:
        glob += ["--memory-limit", args.memory_limit]
    if args.threads:
        glob += ["--threads", str(args.threads)]

    import dask
    import hyperspy
    import numcodecs
    import zarr

    print(f"HyperSpy {hyperspy.__version__}, dask {dask.__version__}, zarr {zarr.__version__}, "
          f"numcodecs {numcodecs.__version__}; lazyspy {lz}; {os.cpu_count()} CPUs; "
          f"best of {args.repeat}; input compressor {args.input_compressor}; "
          f"lazyspy options {' '.join(glob)}")
    results = {}
    for case in [c for c in args.cases.split(",") if c]:
        src = make_input(py, args.workdir, case, args.input_compressor)
        out_hs = os.path.join(args.workdir, f"out_{case}_hyperspy.zspy")
        out_lz = os.path.join(args.workdir, f"out_{case}_lazyspy.zspy")
        runs = {"hs_write": [], "lz_write": [], "hs_read": [], "lz_read": []}
        for i in range(args.repeat):
            for key, out, cmd in (
                ("hs_write", out_hs, [py, "-c", HS_WRITE, src, out_hs]),
                ("lz_write", out_lz, [lz, *glob, "convert", src, out_lz]),
            ):
                remove(out)
                r = run_child(cmd)
                if key.startswith("hs") and r["code"] == 0:
                    r["work"] = last_json(r["stdout"])["work"]
                runs[key].append(r)
                print_run(case, key, i, r)
            for key, cmd in (
                ("hs_read", [py, "-c", HS_READ, out_hs]),
                ("lz_read", [lz, *glob, "stats", out_lz, "--json"]),
            ):
                target_out = out_hs if key == "hs_read" else out_lz
                if not os.path.exists(target_out):
                    continue
                r = run_child(cmd)
                if r["code"] == 0:
                    if key == "hs_read":
                        last = last_json(r["stdout"])
                        r["work"], r["sum"] = last["work"], last["sum"]
                    else:
                        try:
                            st = json.loads(r["stdout"])["signals"][0]
                            r["sum"] = st.get("sum")
                            r["stats"] = {k: st.get(k) for k in ("min", "max", "mean", "sum")}
                        except (ValueError, KeyError, IndexError) as e:
                            r["parse_error"] = str(e)
                runs[key].append(r)
                print_run(case, key, i, r)

        res = {"shape": CASES[case]["shape"], "dtype": CASES[case]["dtype"],
               "input_bytes_on_disk": du(src), "runs": runs}
        for key in runs:
            for r in runs[key]:
                r.pop("stdout", None)
                r["stderr"] = r["stderr"][-2000:]
        # Identical data?
        check = {}
        try:
            check["input"] = digest(src)
            if os.path.exists(out_hs):
                check["hyperspy"] = digest(out_hs)
            if os.path.exists(out_lz):
                check["lazyspy"] = digest(out_lz)
        except Exception as e:  # noqa: BLE001
            check["error"] = f"{type(e).__name__}: {e}"
        res["outputs"] = check
        results[case] = res

    print_table(results, args.repeat)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
        print(f"measurements written to {args.json}")


def print_table(results, repeat):
    print()
    print(f"| case | job | HyperSpy work (wall) | HyperSpy CPU | HyperSpy peak RSS | "
          f"lazyspy wall | lazyspy CPU | lazyspy peak RSS | speed-up | target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case, res in results.items():
        mib = 1
        for n in res["shape"]:
            mib *= n
        mib = mib * (4 if res["dtype"] == "float32" else 2) / 2**20
        for job, target in (("write", 6.0), ("read", 3.0)):
            hs = best(res["runs"][f"hs_{job}"], "work")
            lz = best(res["runs"][f"lz_{job}"], "wall")
            hs_txt = f"{hs['work']:.2f} s ({hs['wall']:.2f} s)" if hs else "failed"
            hs_mem = f"{max(r['rss_mib'] for r in res['runs'][f'hs_{job}']):.0f} MiB" if hs else "-"
            lz_txt = f"{lz['wall']:.2f} s" if lz else "failed"
            lz_mem = f"{max(r['rss_mib'] for r in res['runs'][f'lz_{job}']):.0f} MiB" if lz else "-"
            if hs and lz:
                ratio = hs["work"] / lz["wall"]
                verdict = "met" if ratio >= target else "NOT met"
                ratio_txt = f"**{ratio:.1f}x**"
            else:
                ratio_txt, verdict = "-", "-"
            hs_cpu = f"{min(r['cpu'] for r in res['runs'][f'hs_{job}'] if r['code'] == 0):.2f} s" if hs else "-"
            lz_cpu = f"{min(r['cpu'] for r in res['runs'][f'lz_{job}'] if r['code'] == 0):.2f} s" if lz else "-"
            print(f"| {case} {res['dtype']} {tuple(res['shape'])} ({mib:.0f} MiB) | {job} | "
                  f"{hs_txt} | {hs_cpu} | {hs_mem} | {lz_txt} | {lz_cpu} | {lz_mem} | {ratio_txt} | "
                  f">= {target:.0f}x: {verdict} |")
    print()
    print("Peak RSS is the maximum over the runs; times are the best run. CPU is the child "
          "process's user + system time (HyperSpy's includes interpreter start and imports); "
          "on a shared machine wall-clock ratios are only as good as the load is low, "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.")
    for case, res in results.items():
        out = res["outputs"]
        if "error" in out:
            print(f"{case}: output comparison failed: {out['error']}")
            continue
        hs, lz, src = out.get("hyperspy"), out.get("lazyspy"), out.get("input")
        for name, o in (("input", src), ("hyperspy", hs), ("lazyspy", lz)):
            if o:
                print(f"{case} {name:8s}: sha256 {o['sha256'][:16]}..., chunks {o['chunks']}, "
                      f"compressor {o['compressor']}, {o['bytes_on_disk'] / 2**20:.1f} MiB on disk")
        if hs and lz:
            same = hs["sha256"] == lz["sha256"] and hs["sha256"] == src["sha256"]
            print(f"{case}: outputs hold identical data: {'YES' if same else 'NO (DIFFERENT)'}")
        hs_read = best(res["runs"]["hs_read"], "work")
        lz_read = best(res["runs"]["lz_read"], "wall")
        if hs_read and lz_read and lz_read.get("sum") is not None:
            a, b = float(hs_read["sum"]), float(lz_read["sum"])
            rel = abs(a - b) / max(1.0, abs(a))
            print(f"{case}: sum HyperSpy {a!r}, lazyspy {b!r} (relative difference {rel:.1e}); "
                  f"lazyspy stats {lz_read.get('stats')}")


if __name__ == "__main__":
    main()
