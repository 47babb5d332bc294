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
stamp="$venv/lazyspy-stamp.txt"
lock=/tmp/lazyspy-venv.lock

# Modules every interop test needs; the optional ones are only reported.
check_required='import hyperspy, rsciio, rsciio.zspy, rsciio.hspy, zarr, numcodecs, h5py, dask, dask.array, scipy, tifffile, imagecodecs, numpy
assert hyperspy.__version__ == "2.5.0", hyperspy.__version__
assert rsciio.__version__ == "0.15.0", rsciio.__version__
assert zarr.__version__.startswith("2.18."), zarr.__version__'
check_optional='import sys'

want_stamp() { cat "$req" "$opt"; }

venv_ok() {
  [ -x "$venv/bin/python" ] || return 1
  [ -f "$stamp" ] || return 1
  want_stamp | cmp -s - "$stamp" || return 1
  "$venv/bin/python" -c "$check_required" >/dev/null 2>&1
}

if venv_ok; then
  echo "python venv up to date: $venv" >&2
  echo "$venv/bin/python"
  exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$lock"
flock 9
# Someone else may have finished it while we waited for the lock.
if venv_ok; then
  echo "python venv up to date (made by another process): $venv" >&2
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
echo "python venv: creating $venv with $("$py" --version 2>&1) ($py)" >&2

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
if ! "$venv/bin/python" -m pip install -q --no-input -r "$opt" >&2; then
  echo "NOTE: optional Python packages ($opt) failed to install; tests that need them skip." >&2
fi
end=$(date +%s)
echo "python venv: pip install took $((end - start)) s" >&2

"$venv/bin/python" -c "$check_required" >&2
"$venv/bin/python" -c "$check_optional" >&2
want_stamp > "$stamp"
echo "$venv/bin/python"
