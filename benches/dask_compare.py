#!/usr/bin/env python3
"""Runs the same jobs through dask and through lazyspy on this machine and compares wall
time and peak resident memory.

Jobs (each engine runs each job in a fresh child process; peak memory is the child's
``ru_maxrss`` from ``os.wait4``, time is measured inside the child around the computation
only, so interpreter start-up, imports and the cargo build are not timed):

- ``rechunk``: 1 GiB float32 (64, 2048, 2048) from (1, 2048, 2048) chunks to
  (64, 256, 256) chunks, every output chunk summed in float64 (a checksum) and dropped.
  lazyspy: ``examples/memory_job.rs rechunk`` under a 256 MiB budget (a generator behind
  a copying ``map_blocks``, so the rechunk is staged through disk). dask: the same values
  from a ``da.map_blocks`` generator, ``.rechunk(...)``, ``da.store`` into a target whose
  ``__setitem__`` sums the chunk. Both generate
  ``((h0[k] ^ h1[i] ^ h2[j]) >> 8).astype(float32)`` (per-axis 32-bit hashes), integers
  below 2**24, so the two checksums must be exactly equal.
  ``--dask-source random`` uses ``da.random.random(...).astype('f4')`` instead (dask's
  own generator; the checksums then differ).
- ``overlap``: float32 (32, 2048, 2048) (512 MiB) in (16, 512, 512) chunks, ``map_overlap``
  with depth (1, 2, 2) and reflect boundaries applying a 3-point mean along the last axis,
  then the sum over all axes (checksums agree to float rounding).

Usage::

    python3 benches/dask_compare.py [--jobs rechunk,overlap] [--repeat N]
        [--rechunk-shape 64,2048,2048] [--overlap-shape 32,2048,2048]
        [--dask-source hash|random] [--crate DIR] [--json OUT.json]

Without dask importable, the script creates ``/tmp/lazyspy-bench-venv``
(``python3 -m venv`` + ``pip install "dask[array]" numpy``) and re-runs itself there.
lazyspy's example is built with ``cargo build --release --example memory_job`` (honours
``CARGO_TARGET_DIR``).
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_support import REPO, ensure_modules, last_json, run_direct  # noqa: E402

VENV = "/tmp/lazyspy-bench-venv"


# --------------------------------------------------------------------------------------
# The dask side, run in a child process: `python3 dask_compare.py --child JOB JSON_ARGS`.

MULT = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D)


def axis_hashes(np, shape):
    """Per-axis hashes: rotl((n + 1) * MULT[a] mod 2**32, 7a + 3), as in memory_job.rs."""
    out = []
    for a in range(3):
        n = np.arange(1, shape[a] + 1, dtype=np.uint64)
        h = (n * np.uint64(MULT[a])) & np.uint64(0xFFFFFFFF)
        r = 7 * a + 3
        h = ((h << np.uint64(r)) | (h >> np.uint64(32 - r))) & np.uint64(0xFFFFFFFF)
        out.append(h.astype(np.uint32))
    return out


def dask_source(np, da, shape, chunks, kind):
    if kind == "random":
        return da.random.random(shape, chunks=chunks).astype("f4")
    h0, h1, h2 = axis_hashes(np, shape)

    def block(block_info=None):
        loc = block_info[None]["array-location"]
        (k0, k1), (i0, i1), (j0, j1) = loc
        v = h0[k0:k1, None, None] ^ h1[None, i0:i1, None] ^ h2[None, None, j0:j1]
        return (v >> np.uint32(8)).astype(np.float32)

    # Without input arrays, map_blocks takes the full chunks (a tuple per axis).
    full = da.core.normalize_chunks(chunks, shape, dtype=np.float32)
    return da.map_blocks(block, dtype=np.float32, chunks=full)


def child_main(job, params):
    import threading

    import dask
    import dask.array as da
    import numpy as np

    shape = tuple(params["shape"])
    if job == "rechunk":
        x = dask_source(np, da, shape, tuple(params["from"]), params["source"])
        y = x.rechunk(tuple(params["to"]))

        class ChecksumTarget:
            def __init__(self):
                self.total = 0.0
                self.chunks = 0
                self.lock = threading.Lock()

            def __setitem__(self, key, value):
                s = float(np.sum(value, dtype=np.float64))
                with self.lock:
                    self.total += s
                    self.chunks += 1

        target = ChecksumTarget()
        t0 = time.perf_counter()
        da.store(y, target, lock=False)
        secs = time.perf_counter() - t0
        checksum = target.total
        extra = {"chunks_written": target.chunks}
    elif job == "overlap":
        x = dask_source(np, da, shape, tuple(params["chunks"]), params["source"])
        third = np.float32(1.0 / 3.0)

        def mean3(b):
            out = b.copy()
            out[..., 1:-1] = (b[..., :-2] + b[..., 1:-1] + b[..., 2:]) * third
            return out

        y = x.map_overlap(
            mean3, depth={0: 1, 1: 2, 2: 2}, boundary="reflect", dtype=np.float32
        )
        t0 = time.perf_counter()
        checksum = float(y.sum(dtype=np.float64).compute())
        secs = time.perf_counter() - t0
        extra = {}
    else:
        raise SystemExit("unknown job %r" % job)
    nbytes = int(np.prod(shape)) * 4
    print(
        json.dumps(
            dict(
                engine="dask",
                dask_version=dask.__version__,
                job=job,
                shape=list(shape),
                nbytes=nbytes,
                secs=round(secs, 3),
                gib_per_s=round(nbytes / 2**30 / secs, 3),
                checksum=checksum,
                threads=os.cpu_count(),
                **extra,
            )
        )
    )


# --------------------------------------------------------------------------------------
# The parent: runs both engines, collects time and peak memory.


def run_child(cmd):
    """Runs `cmd`; returns the last JSON line of its stdout, its ru_maxrss in MiB and its
    user + system CPU seconds (whole process, start-up and imports included)."""
    r = run_direct(cmd, capture_stderr=False)
    if r["code"] != 0:
        raise SystemExit("child failed (%d): %s\n%s" % (r["code"], cmd, r["stdout"]))
    return last_json(r["stdout"]), r["rss_mib"], round(r["cpu"], 2)


def build_lazyspy(crate):
    subprocess.check_call(
        ["cargo", "build", "--release", "--quiet", "--example", "memory_job"], cwd=crate
    )
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(crate, "target"))
    return os.path.join(target, "release", "examples", "memory_job")


def dims(s):
    return [int(v) for v in s.split(",")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", nargs=2, metavar=("JOB", "PARAMS"), help=argparse.SUPPRESS)
    ap.add_argument("--jobs", default="rechunk,overlap")
    ap.add_argument("--repeat", type=int, default=1, help="runs per engine and job (best time kept)")
    ap.add_argument("--rechunk-shape", default="64,2048,2048")
    ap.add_argument("--overlap-shape", default="32,2048,2048")
    ap.add_argument("--dask-source", choices=["hash", "random"], default="hash")
    ap.add_argument("--budget-mib", type=int, default=256)
    ap.add_argument("--crate", default=REPO)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--binary", help="a built memory_job example to use instead of building one")
    ap.add_argument("--skip-dask", action="store_true", help="run lazyspy only")
    args = ap.parse_args()
    if args.child:
        child_main(args.child[0], json.loads(args.child[1]))
        return
    ensure_modules(["dask.array", "numpy"], env_var=None, default=VENV + "/bin/python",
                   hint="dask is not importable even inside %s" % VENV,
                   create_with=["dask[array]", "numpy"])
    binary = args.binary or build_lazyspy(args.crate)
    rshape, oshape = dims(args.rechunk_shape), dims(args.overlap_shape)
    jobs = {
        "rechunk": {"shape": rshape, "from": [1] + rshape[1:], "to": [rshape[0], 256, 256],
                    "source": args.dask_source},
        "overlap": {"shape": oshape, "chunks": [16, 512, 512], "source": args.dask_source},
    }
    load = os.getloadavg()[0]
    print("%d cores, load average %.1f at start%s" % (
        os.cpu_count(), load,
        " (busy machine: wall times are inflated)" if load > 0.5 * os.cpu_count() else ""),
        file=sys.stderr)
    results = []
    for job in args.jobs.split(","):
        params = jobs[job]
        lazy_cmd = [binary, job, "--shape", ",".join(map(str, params["shape"])),
                    "--budget-mib", str(args.budget_mib)]
        if job == "rechunk":
            lazy_cmd += ["--from", ",".join(map(str, params["from"])), "--to", ",".join(map(str, params["to"]))]
        else:
            lazy_cmd += ["--chunks", ",".join(map(str, params["chunks"]))]
        dask_cmd = [sys.executable, os.path.abspath(__file__), "--child", job, json.dumps(params)]
        row = {"job": job, "params": params}
        engines = [("lazyspy", lazy_cmd)] + ([] if args.skip_dask else [("dask", dask_cmd)])
        for engine, cmd in engines:
            runs = []
            for _ in range(args.repeat):
                out, peak, cpu = run_child(cmd)
                out["peak_rss_mib_wait4"] = round(peak, 1)
                out["process_cpu_s"] = cpu
                runs.append(out)
                print("  %-7s %-7s %6.2f s  cpu %6.2f s  peak %7.1f MiB  checksum %r"
                      % (engine, job, out["secs"], cpu, peak, out["checksum"]), file=sys.stderr)
            best = min(runs, key=lambda r: r["secs"])
            best["peak_rss_mib_max"] = max(r["peak_rss_mib_wait4"] for r in runs)
            best["all_secs"] = [r["secs"] for r in runs]
            row[engine] = best
        results.append(row)
        if args.skip_dask:
            continue
        lz, dk = row["lazyspy"], row["dask"]
        row["speedup"] = round(dk["secs"] / lz["secs"], 2)
        row["memory_ratio"] = round(lz["peak_rss_mib_max"] / dk["peak_rss_mib_max"], 3)
        rel = abs(lz["checksum"] - dk["checksum"]) / max(abs(dk["checksum"]), 1e-300)
        row["checksum_rel_diff"] = rel
    print()
    print("%-8s %-8s %10s %12s %14s %10s"
          % ("job", "engine", "time [s]", "proc CPU [s]", "peak RSS [MiB]", "GiB/s"))
    for row in results:
        for engine in [e for e in ("lazyspy", "dask") if e in row]:
            r = row[engine]
            print("%-8s %-8s %10.2f %12.2f %14.1f %10.3f"
                  % (row["job"], engine, r["secs"], r["process_cpu_s"], r["peak_rss_mib_max"],
                     r["gib_per_s"]))
        if "speedup" not in row:
            continue
        print("%-8s lazyspy is %.2fx faster than dask, with %.1f%% of its peak memory; "
              "checksums differ by %.1e (relative)"
              % (row["job"], row["speedup"], 100 * row["memory_ratio"], row["checksum_rel_diff"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    keys = ("job", "speedup", "memory_ratio", "checksum_rel_diff")
    print(json.dumps({"results": [{k: row[k] for k in keys if k in row} for row in results]}))


if __name__ == "__main__":
    main()
