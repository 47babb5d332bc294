#!/usr/bin/env bash
# Creates (or reuses) the Python virtual environment that the interop tests and
# benches/zspy_compare.py run HyperSpy / RosettaSciIO from, and prints its interpreter path
# on the last line of standard output.
#
#   venv dir:  ${LAZYSPY_VENV:-$HOME/.cache/lazyspy/venv}
#   pins:      .ci/python-requirements.txt (required) and .ci/python-optional.txt (best effort)
#   stamp:     <venv>/lazyspy-stamp.txt = the pinned lists it was built from; when the stamp
#              matches and every module imports, nothing is installed again.
#
# Creation is serialised with `flock /tmp/lazyspy-venv.lock` because several processes
# (CI, developers' worktrees) may want the same venv at once. Safe to run with no stdin.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
home="${HOME:-$(cd ~ && pwd)}"
venv="${LAZYSPY_VENV:-$home/.cache/lazyspy/venv}"
req="$here/python-requirements.txt"
opt="$here/python-optional.txt"
lock=/tmp/lazyspy-venv.lock
label="python venv"

# Modules every interop test needs; the optional ones are only reported.
check_required='import hyperspy, rsciio, rsciio.zspy, rsciio.hspy, zarr, numcodecs, h5py, dask, dask.array, scipy, tifffile, imagecodecs, numpy
assert hyperspy.__version__ == "2.5.0", hyperspy.__version__
assert rsciio.__version__ == "0.15.0", rsciio.__version__
assert zarr.__version__.startswith("2.18."), zarr.__version__'

# shellcheck source=venv-common.sh
source "$here/venv-common.sh"
