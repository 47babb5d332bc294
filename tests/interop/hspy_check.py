"""Checks `.hspy` files written by lazyspy with the reference implementation.

Usage: python hspy_check.py MANIFEST.json

The manifest is a list of entries:
    {"written": path, "original": path, "index": i, "sha256": hex or null,
     "chunks": [..] or null, "direct_chunks": bool}

For every entry:
* RosettaSciIO 0.15.0 (`rsciio.hspy.file_reader`, lazy=False) loads the written file and
  the original fixture; signal `index` of the original must equal the written file's only
  signal: data (bit for bit, NaN equal, ragged cells cell by cell), axes, metadata,
  original_metadata, attributes, models, package and package_version. Lists of more than
  ten items stored as groups come back reordered once more (quirk Q1), so those lists are
  compared as multisets.
* h5py reads the written `data` dataset (chunks stored by lazyspy's H5Dwrite_chunk path)
  and its SHA-256 (little-endian C-order bytes) must equal `sha256`, the hash of the data
  lazyspy computed; the dataset must be gzip + shuffle with the given chunks.
* HyperSpy 2.5.0 `hs.load` must load the written file.

Prints one line per problem and exits 1 if there is any.
"""

import hashlib
import json
import math
import sys
import warnings

import h5py
import numpy as np

warnings.filterwarnings("ignore")
import logging

logging.disable(logging.CRITICAL)

from rsciio.hspy import file_reader  # noqa: E402


def same(a, b, path, errors):
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            errors.append(f"{path}: keys {sorted(set(a) ^ set(b))} differ")
        for k in set(a) & set(b):
            same(a[k], b[k], f"{path}/{k}", errors)
        return
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            errors.append(f"{path}: {type(a).__name__}[{len(a)}] != {type(b).__name__}[{len(b)}]")
            return
        if len(a) > 10:
            ra = sorted(repr(x) for x in a)
            rb = sorted(repr(x) for x in b)
            if ra != rb:
                errors.append(f"{path}: items differ")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}/{i}", errors)
        return
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype == object or b.dtype == object:
            if a.shape != b.shape:
                errors.append(f"{path}: shape {a.shape} != {b.shape}")
                return
            for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())):
                same(np.asarray(x), np.asarray(y), f"{path}[{i}]", errors)
            return
        if a.shape != b.shape or a.dtype != b.dtype:
            errors.append(f"{path}: {a.dtype}{a.shape} != {b.dtype}{b.shape}")
            return
        if a.dtype.names:
            if a.tobytes() != b.tobytes():
                errors.append(f"{path}: structured values differ")
            return
        if a.dtype.kind in "fc":
            ok = np.array_equal(a, b, equal_nan=True)
        else:
            ok = np.array_equal(a, b)
        if not ok:
            errors.append(f"{path}: values differ")
        return
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    if isinstance(a, dict) or isinstance(b, dict):
        # A signal nested in metadata.
        errors.append(f"{path}: {type(a).__name__} != {type(b).__name__}")
        return
    try:
        eq = a == b
        if isinstance(eq, np.ndarray):
            eq = eq.all()
    except Exception:  # noqa: BLE001
        eq = False
    if not eq or type(a) is not type(b) and not (
        isinstance(a, (int, float, np.number, bool, np.bool_))
        and isinstance(b, (int, float, np.number, bool, np.bool_))
    ):
        errors.append(f"{path}: {a!r} ({type(a).__name__}) != {b!r} ({type(b).__name__})")


def le_bytes(a):
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return a.tobytes()


def main():
    manifest = json.load(open(sys.argv[1]))
    problems = []
    import hyperspy.api as hs

    for e in manifest:
        tag = e["written"]
        errors = []
        try:
            w = file_reader(e["written"], lazy=False)
            o = file_reader(e["original"], lazy=False)
        except Exception as ex:  # noqa: BLE001
            problems.append(f"{tag}: rsciio cannot read: {ex!r}")
            continue
        w = [d for d in w if "metadata" in d]
        o = [d for d in o if "metadata" in d]
        if len(w) != 1:
            problems.append(f"{tag}: {len(w)} signals written")
            continue
        ws, os_ = w[0], o[e["index"]]
        # The writer always writes a learning_results group; files from HyperSpy < 1.x
        # have none (RosettaSciIO's own writer adds it too).
        if "learning_results" not in os_.get("attributes", {}):
            if ws.get("attributes", {}).get("learning_results") == {}:
                del ws["attributes"]["learning_results"]
        for k in sorted(set(ws) | set(os_)):
            if k not in ws or k not in os_:
                errors.append(f"key {k} only in one file")
                continue
            same(ws[k], os_[k], k, errors)
        with h5py.File(e["written"], "r") as f:
            exps = f["Experiments"]
            (name,) = list(exps)
            ds = exps[name]["data"]
            if e.get("direct_chunks"):
                if ds.compression != "gzip" or not ds.shuffle:
                    errors.append(f"h5py: data filters {ds.compression}, shuffle={ds.shuffle}")
                if e.get("chunks") is not None and list(ds.chunks) != e["chunks"]:
                    errors.append(f"h5py: chunks {ds.chunks} != {e['chunks']}")
            if e.get("sha256"):
                sha = hashlib.sha256(le_bytes(ds[()])).hexdigest()
                if sha != e["sha256"]:
                    errors.append(f"h5py: data sha256 {sha} != {e['sha256']}")
        try:
            kw = {"file_format": "HSPY"} if e["written"].endswith(".hdf5") else {}
            s = hs.load(e["written"], **kw)
            del s
        except Exception as ex:  # noqa: BLE001
            errors.append(f"hs.load failed: {ex!r}")
        problems.extend(f"{tag}: {x}" for x in errors[:20])
    for p in problems:
        print(p)
    print(f"checked {len(manifest)} files, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
