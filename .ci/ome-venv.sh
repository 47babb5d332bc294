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
stamp="$venv/lazyspy-stamp.txt"
lock=/tmp/lazyspy-ome-venv.lock

check_required='import ome_zarr_models, ome_zarr_models.v04.image, ome_zarr_models.v05.image, ome_zarr, ome_zarr.reader, ome_zarr.writer, ome_zarr.scale, zarr, numcodecs, dask, dask.array, scipy.ndimage, numpy, psutil
from importlib.metadata import version
assert version("ome-zarr-models") == "1.7", version("ome-zarr-models")
assert version("ome-zarr") == "0.18.0", version("ome-zarr")
assert zarr.__version__.startswith("3."), zarr.__version__'

venv_ok() {
  [ -x "$venv/bin/python" ] || return 1
  [ -f "$stamp" ] || return 1
  cmp -s "$req" "$stamp" || return 1
  "$venv/bin/python" -c "$check_required" >/dev/null 2>&1
}

if venv_ok; then
  echo "ome venv up to date: $venv" >&2
  echo "$venv/bin/python"
  exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$lock"
flock 9
# Someone else may have finished it while we waited for the lock.
if venv_ok; then
  echo "ome venv up to date (made by another process): $venv" >&2
  echo "$venv/bin/python"
  exit 0
fi

py=""
for cand in python3.11 python3; do
  if command -v "$cand" >/dev/null 2>&1; then py="$(command -v "$cand")"; break; fi
done
if [ -z "$py" ]; then
  echo "installing python3" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends python3 python3-venv python3-pip >&2
  py="$(command -v python3)"
fi
echo "ome venv: creating $venv with $("$py" --version 2>&1) ($py)" >&2

# A venv without a stamp, with another stamp, or that fails the import check is incomplete:
# start again from scratch rather than patch an unknown state.
rm -rf "$venv"
if ! "$py" -m venv "$venv" >&2 2>&1; then
  rm -rf "$venv"
  echo "python3 -m venv failed: installing python3-venv" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  pyver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  apt-get install -y -q --no-install-recommends python3-venv >&2 \
    || apt-get install -y -q --no-install-recommends "python${pyver}-venv" >&2
  "$py" -m venv "$venv" >&2
fi

start=$(date +%s)
"$venv/bin/python" -m pip install -q --upgrade pip >&2 || true
"$venv/bin/python" -m pip install -q --no-input -r "$req" >&2
end=$(date +%s)
echo "ome venv: pip install took $((end - start)) s" >&2

"$venv/bin/python" -c "$check_required" >&2
cp "$req" "$stamp"
echo "$venv/bin/python"
