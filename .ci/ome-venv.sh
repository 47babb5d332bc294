#!/usr/bin/env bash
# Creates (or reuses) the Python virtual environment that the OME-Zarr interop tests
# (tests/interop_ome.rs, tests/interop/ome_check.py) and benches/pyramid_compare.py run
# ome-zarr-models / ome-zarr-py / zarr-python 3 from, and prints its interpreter path on the
# last line of standard output. A venv of its own because RosettaSciIO 0.15 (the other venv,
# .ci/python-venv.sh) needs zarr 2 while ome-zarr-models needs zarr 3.
#
#   venv dir:  ${LAZYSPY_OME_VENV:-$HOME/.cache/lazyspy/ome-venv}
#   pins:      .ci/ome-requirements.txt
#   stamp:     <venv>/lazyspy-stamp.txt = the pinned list it was built from; when the stamp
#              matches and every module imports, nothing is installed again.
#
# Creation is serialised with `flock /tmp/lazyspy-ome-venv.lock` because several processes
# may want the same venv at once. Safe to run with no stdin.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
home="${HOME:-$(cd ~ && pwd)}"
venv="${LAZYSPY_OME_VENV:-$home/.cache/lazyspy/ome-venv}"
req="$here/ome-requirements.txt"
lock=/tmp/lazyspy-ome-venv.lock
label="ome venv"
opt=""

check_required='import ome_zarr_models, ome_zarr_models.v04.image, ome_zarr_models.v05.image, ome_zarr, ome_zarr.reader, ome_zarr.writer, ome_zarr.scale, zarr, numcodecs, dask, dask.array, scipy.ndimage, numpy, psutil
from importlib.metadata import version
assert version("ome-zarr-models") == "1.7", version("ome-zarr-models")
assert version("ome-zarr") == "0.18.0", version("ome-zarr")
assert zarr.__version__.startswith("3."), zarr.__version__'

# shellcheck source=venv-common.sh
source "$here/venv-common.sh"
