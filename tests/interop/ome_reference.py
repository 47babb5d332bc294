#!/usr/bin/env python3
"""A tiny reference OME-Zarr pyramid writer (zarr-python 3) that follows lazyspy's contract.

It exists to test `ome_check.py` independently of lazyspy's own writer: pyramids written here
must pass the checker, and altered copies must fail it (see `ome_check_selftest.py`). It is
not a fast writer: every level is computed in memory with the checker's reference
downsampling.

    ome_reference.py IN.npy OUT [--version 0.4|0.5] [--method M] [--levels N] [--chunks C]
                     [--shard S]

writes the (P, H, W) or (H, W) array of IN.npy with axes named like lazyspy names an .npy
input ("page", "y", "x"; scale 1, translation 0).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ome_check import reference_level  # noqa: E402


def write_pyramid(path: str, data: np.ndarray, *, version: str = "0.4", method: str = "mean",
                  levels: int = 4, chunks: int = 64, shard: int | None = None,
                  axes: list[dict] | None = None, scale0: list[float] | None = None,
                  translation0: list[float] | None = None, name: str = "image",
                  down: list[int] | None = None) -> None:
    """Writes `data` as an OME-Zarr pyramid of `levels` levels at `path` (replaced)."""
    import numcodecs
    import zarr
    from zarr.codecs import BloscCodec

    ndim = data.ndim
    down = down or [ndim - 2, ndim - 1]
    if axes is None:
        default = ["page", "y", "x"][-ndim:] if ndim <= 3 else [f"dim{i}" for i in range(ndim)]
        axes = [{"name": n} for n in default]
        for a in down:
            axes[a]["type"] = "space"
    scale = list(scale0 or [1.0] * ndim)
    trans = list(translation0 or [0.0] * ndim)
    zf = 2 if version == "0.4" else 3
    group = zarr.open_group(path, mode="w", zarr_format=zf)
    datasets = []
    level = np.asarray(data)
    for k in range(levels):
        if k > 0:
            new_trans = list(trans)
            if method == "mean":
                for a in down:
                    new_trans[a] = trans[a] + 0.5 * scale[a]
            trans = new_trans
            scale = [s * 2 if a in down else s for a, s in enumerate(scale)]
            level = reference_level(level, down, method)
        ch = tuple(min(chunks, n) if a in down else 1 for a, n in enumerate(level.shape))
        kw: dict = dict(name=str(k), shape=level.shape, dtype=level.dtype, chunks=ch,
                        fill_value=0)
        if zf == 2:
            kw.update(compressors=numcodecs.Blosc(cname="zstd", clevel=1,
                                                   shuffle=numcodecs.Blosc.SHUFFLE),
                      chunk_key_encoding={"name": "v2", "separator": "/"})
        else:
            kw.update(compressors=BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"),
                      dimension_names=[a["name"] for a in axes])
            if shard:
                kw["shards"] = tuple(
                    min(c * shard, -(-n // c) * c) if a in down else 1
                    for a, (c, n) in enumerate(zip(ch, level.shape)))
        arr = group.create_array(**kw)
        arr[...] = level
        datasets.append({"path": str(k), "coordinateTransformations": [
            {"type": "scale", "scale": scale},
            {"type": "translation", "translation": trans}]})
    m = {"name": name, "axes": axes, "datasets": datasets}
    if version == "0.4":
        group.attrs.update({"multiscales": [{**m, "version": "0.4"}]})
    else:
        group.attrs.update({"ome": {"version": "0.5", "multiscales": [m]}})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--version", choices=["0.4", "0.5"], default="0.4")
    p.add_argument("--method", choices=["mean", "gaussian", "nearest"], default="mean")
    p.add_argument("--levels", type=int, default=4)
    p.add_argument("--chunks", type=int, default=64)
    p.add_argument("--shard", type=int)
    a = p.parse_args()
    write_pyramid(a.output, np.load(a.input), version=a.version, method=a.method,
                  levels=a.levels, chunks=a.chunks, shard=a.shard)
    return 0


if __name__ == "__main__":
    sys.exit(main())
