# Shared body of .ci/python-venv.sh and .ci/ome-venv.sh (sourced, not run): creates or
# reuses the venv "$venv" from the pins "$req" (and best-effort "$opt", may be empty),
# checks it with the Python snippet "$check_required", stamps it with the pins, and prints
# its interpreter path on the last line of standard output. Creation is serialised with
# `flock "$lock"`. Expects: label, venv, req, opt, lock, check_required; sets stamp.
stamp="$venv/lazyspy-stamp.txt"

want_stamp() { if [ -n "$opt" ]; then cat "$req" "$opt"; else cat "$req"; fi; }

venv_ok() {
  [ -x "$venv/bin/python" ] || return 1
  [ -f "$stamp" ] || return 1
  want_stamp | cmp -s - "$stamp" || return 1
  "$venv/bin/python" -c "$check_required" >/dev/null 2>&1
}

if venv_ok; then
  echo "$label up to date: $venv" >&2
  echo "$venv/bin/python"
  exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$lock"
flock 9
# Someone else may have finished it while we waited for the lock.
if venv_ok; then
  echo "$label up to date (made by another process): $venv" >&2
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
echo "$label: creating $venv with $("$py" --version 2>&1) ($py)" >&2

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
if [ -n "$opt" ] && ! "$venv/bin/python" -m pip install -q --no-input -r "$opt" >&2; then
  echo "NOTE: optional Python packages ($opt) failed to install; tests that need them skip." >&2
fi
end=$(date +%s)
echo "$label: pip install took $((end - start)) s" >&2

"$venv/bin/python" -c "$check_required" >&2
want_stamp > "$stamp"
echo "$venv/bin/python"
