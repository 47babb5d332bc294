"""Save and load of `.hspy` files: lazyspy against HyperSpy 2.5.0, same data, one run.

    python benches/hspy_compare.py [--binary PATH] [--tmp DIR] [--repeat N] [--json OUT]
                                   [--cases f32,u16] [--ops save,load]

Cases (default gzip 4 + shuffle, RosettaSciIO's default chunks, from memory):
  f32: float32 (64, 64, 128, 128)  = 256 MiB,  200 + 100 sin(i/9) cos(j/13) + N(0, 5)
  u16: uint16 (128, 128, 128, 128) = 512 MiB,  Poisson-like counts, lambda 10..90

The data is generated once with numpy (fixed seed) and saved as .npy. Every operation
runs in a fresh child process; the time reported is the operation itself, measured inside
the child (so interpreter start-up and imports are not counted), and the peak memory is
the child's maximum resident set size (`ru_maxrss` from `os.wait4`):
  lazyspy save: `examples/hspy_bench save DATA.npy OUT.hspy` (reading the .npy is not timed)
  HyperSpy save: `hs.signals.Signal2D(np.load(DATA.npy)).save(OUT.hspy)` (load not timed)
  lazyspy load: `hspy_bench load IN.hspy` (open + compute the data into memory)
  HyperSpy load: `hs.load(IN.hspy)` (non-lazy: the data is read into memory)
Each engine loads the file the *other* engine wrote as well, and the checksums (f64 sums)
of all loads of one case must agree.

Python: $LAZYSPY_PYTHON or ~/.cache/lazyspy/venv/bin/python (hyperspy 2.5.0, rsciio 0.15.0).
The lazyspy binary is built with `cargo build --release --example hspy_bench` unless
--binary is given (CARGO_TARGET_DIR is honoured).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import HS_VENV_PYTHON, cargo_target_dir, last_json, run_direct, venv_python  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

HS_SAVE = r"""
import sys, time, json, warnings, logging
warnings.filterwarnings("ignore"); logging.disable(logging.CRITICAL)
import numpy as np, hyperspy.api as hs
data = np.load(sys.argv[1])
s = hs.signals.Signal2D(data)
t, c = time.perf_counter(), time.process_time()
s.save(sys.argv[2], overwrite=True)
dt, dc = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"op": "save", "seconds": dt, "cpu_seconds": dc}))
"""

HS_LOAD = r"""
import sys, time, json, warnings, logging
warnings.filterwarnings("ignore"); logging.disable(logging.CRITICAL)
import numpy as np, hyperspy.api as hs
t, c = time.perf_counter(), time.process_time()
s = hs.load(sys.argv[1])
dt, dc = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"op": "load", "seconds": dt, "cpu_seconds": dc,
                  "checksum": float(s.data.sum(dtype=np.float64))}))
"""


def run(cmd):
    """Runs cmd; returns (json line, wall seconds, max RSS MiB of the child)."""
    r = run_direct(cmd)
    if r["code"] != 0:
        raise RuntimeError(f"{cmd} failed:\n{r['stdout']}\n{r['stderr']}")
    return last_json(r["stdout"]), r["wall"], r["rss_mib"]


def make_data(case, path):
    import numpy as np

    rng = np.random.default_rng(12345)
    if case == "f32":
        shape = (64, 64, 128, 128)
        i = np.arange(128)[:, None]
        j = np.arange(128)[None, :]
        frame = (200 + 100 * np.sin(i / 9) * np.cos(j / 13)).astype(np.float32)
        data = np.empty(shape, np.float32)
        for a in range(shape[0]):
            data[a] = frame + rng.normal(0, 5, size=shape[1:]).astype(np.float32)
    else:
        shape = (128, 128, 128, 128)
        i = np.arange(128)[:, None]
        j = np.arange(128)[None, :]
        lam = 50 + 40 * np.sin(i / 9) * np.cos(j / 13)
        data = np.empty(shape, np.uint16)
        for a in range(shape[0]):
            x = lam + np.sqrt(lam) * rng.normal(size=shape[1:])
            data[a] = np.clip(np.round(x), 0, 65535).astype(np.uint16)
    np.save(path, data)
    return data.nbytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary")
    ap.add_argument("--tmp")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json")
    ap.add_argument("--cases", default="f32,u16")
    ap.add_argument("--ops", default="save,load",
                    help="save,load (default) or one of them; with load only, the files "
                         "are written once without being timed")
    args = ap.parse_args()
    ops = args.ops.split(",")
    py = venv_python("LAZYSPY_PYTHON", HS_VENV_PYTHON, must_exist=False)
    if args.binary:
        binary = args.binary
    else:
        subprocess.run(
            ["cargo", "build", "--release", "--example", "hspy_bench"], cwd=REPO, check=True
        )
        binary = str(Path(cargo_target_dir()) / "release/examples/hspy_bench")
    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="hspy-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    results = []
    for case in args.cases.split(","):
        npy = tmp / f"{case}.npy"
        nbytes = make_data(case, npy)
        ls_out = tmp / f"{case}_lazyspy.hspy"
        hs_out = tmp / f"{case}_hyperspy.hspy"
        best = {}
        checks = []
        saves = [
            ("lazyspy save", [binary, "save", str(npy), str(ls_out)]),
            ("hyperspy save", [py, "-c", HS_SAVE, str(npy), str(hs_out)]),
        ]
        loads = [
            ("lazyspy load", [binary, "load", str(ls_out)]),
            ("hyperspy load", [py, "-c", HS_LOAD, str(hs_out)]),
            ("lazyspy load (HyperSpy's file)", [binary, "load", str(hs_out)]),
            ("hyperspy load (lazyspy's file)", [py, "-c", HS_LOAD, str(ls_out)]),
        ]
        if "save" not in ops:
            # The files are still written (once, not reported) for the loads.
            for _, cmd in saves:
                run(cmd)
        steps = (saves if "save" in ops else []) + (loads if "load" in ops else [])
        for _ in range(args.repeat):
            for key, cmd in steps:
                res, wall, rss = run(cmd)
                if "checksum" in res:
                    checks.append(res["checksum"])
                prev = best.get(key)
                if prev is None or res["seconds"] < prev[0]:
                    best[key] = (res["seconds"], rss, res.get("cpu_seconds", float("nan")))
        sizes = {
            "lazyspy": os.path.getsize(ls_out),
            "hyperspy": os.path.getsize(hs_out),
        }
        # Saves alone give no checksums (nothing to compare).
        ok = not checks or max(checks) - min(checks) <= 1e-9 * max(abs(c) for c in checks)
        print(f"\n== {case} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores): {nbytes / 2**20:.0f} MiB, files: lazyspy {sizes['lazyspy'] / 2**20:.1f} MiB, "
              f"HyperSpy {sizes['hyperspy'] / 2**20:.1f} MiB, checksums agree: {ok if checks else 'n/a'}")
        print(f"{'operation':34s} {'seconds':>8s} {'MB/s':>8s} {'CPU s':>7s} {'peak RSS MiB':>13s}")
        for k, (s, rss, cpu) in best.items():
            print(f"{k:34s} {s:8.2f} {nbytes / 1e6 / s:8.0f} {cpu:7.2f} {rss:13.0f}")
        for op in ops:
            h, l = best[f"hyperspy {op}"], best[f"lazyspy {op}"]
            print(f"ratio {op}: lazyspy is {h[0] / l[0]:.2f}x faster (wall), needs "
                  f"{h[2] / l[2]:.2f}x less CPU time, {h[1] / l[1]:.2f}x less peak memory")
        results.append({"case": case, "bytes": nbytes, "sizes": sizes, "checksums_agree": ok,
                        "load_average": os.getloadavg(),
                        "best": {k: {"seconds": v[0], "peak_rss_mib": v[1], "cpu_seconds": v[2]}
                                 for k, v in best.items()}})
        if not ok:
            print("CHECKSUM MISMATCH", checks)
        for p in [npy, ls_out, hs_out]:
            p.unlink(missing_ok=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    sys.exit(0 if all(r["checksums_agree"] for r in results) else 1)


if __name__ == "__main__":
    main()
