"""Helpers shared by the Python benchmark scripts in ``benches/``.

- Child processes: :func:`run_child` runs a command through a tiny isolated launcher so
  that the peak RSS measured is the command's own; :func:`run_direct` forks the command
  from this process (as ``dask_compare.py``, ``hspy_compare.py`` and
  ``scanmap_compare.py`` always did). Both return the same dict: ``wall`` (s), ``cpu``
  (user + system s), ``rss_mib`` (``ru_maxrss`` from ``os.wait4``), ``code``, ``stdout``,
  ``stderr``. :func:`last_json` reads the JSON line a child prints last.
- Interpreters: :func:`venv_python` finds a venv's interpreter (an environment variable,
  else a default path such as :data:`HS_VENV_PYTHON`); :func:`ensure_modules` re-executes
  the running script under it when the modules it needs are not importable here.
- Files: :func:`du`, :func:`remove`, :func:`stamped_input` (an input made once by a child
  and reused while its spec does not change); runs: :func:`best`; builds:
  :func:`cargo_target_dir`.

The scripts import it with ``sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))``
so that they run from any working directory.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Mapping, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The venvs of `.ci/python-venv.sh` (HyperSpy 2.5.0) and `.ci/ome-venv.sh` (ome-zarr-py).
HS_VENV_PYTHON = "~/.cache/lazyspy/venv/bin/python"
OME_VENV_PYTHON = "~/.cache/lazyspy/ome-venv/bin/python"

# Set in the environment of a re-executed script, so that it never re-executes again.
REEXEC_GUARD = "_LAZYSPY_BENCH_REEXEC"


def cargo_target_dir() -> str:
    """``$CARGO_TARGET_DIR``, else the crate's ``target`` folder."""
    return os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))


# --------------------------------------------------------------------------------------
# Child processes

# The peak RSS of a child must not include this process's memory: a child forked (or
# vforked) from here is charged with our resident set when it execs (Linux accounts the old
# address space's high-water mark into ru_maxrss at exec). So a tiny launcher, an isolated
# Python without site packages (about 9 MiB), forks the measured command and reports its
# rusage from wait4; the floor of any measurement is the launcher's own size.
LAUNCHER = r"""
import json, os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"wall": time.perf_counter() - t0, "maxrss_kib": ru.ru_maxrss,
               "cpu": ru.ru_utime + ru.ru_stime, "code": os.waitstatus_to_exitcode(status)}, f)
"""


def run_child(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> dict:
    """Runs ``cmd`` through :data:`LAUNCHER` (with ``env``, else this process's
    environment); returns ``wall`` (the launcher's fork to wait4), ``rss_mib``, ``cpu``,
    ``code``, ``stdout`` and ``stderr`` of the command. Raises if the launcher fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".json") as rep:
        r = subprocess.run([sys.executable, "-I", "-S", "-c", LAUNCHER, rep.name, *cmd],
                           stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"the launcher failed for {list(cmd)}")
        with open(rep.name) as f:
            m = json.load(f)
        out.seek(0)
        err.seek(0)
        return {
            "wall": m["wall"],
            "rss_mib": m["maxrss_kib"] / 1024.0,  # KiB on Linux
            "cpu": m["cpu"],
            "code": m["code"],
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


def run_direct(cmd: Sequence[str], env: Mapping[str, str] | None = None,
               capture_stderr: bool = True) -> dict:
    """Runs ``cmd`` as a child of this process and reaps it with ``os.wait4``; returns the
    same dict as :func:`run_child` (``wall`` from spawning to reaping). Without
    ``capture_stderr`` the child's stderr goes to ours and ``stderr`` is ``""``."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(list(cmd), stdout=subprocess.PIPE,
                             stderr=err if capture_stderr else None, env=env)
        out = p.stdout.read()  # read before reaping: the child never blocks on a full pipe
        p.stdout.close()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return {
            "wall": wall,
            "rss_mib": ru.ru_maxrss / 1024.0,  # KiB on Linux
            "cpu": ru.ru_utime + ru.ru_stime,
            "code": p.returncode,
            "stdout": out.decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


def last_json(stdout: str) -> dict:
    """The last line of ``stdout`` that starts with ``{``, parsed."""
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def best(runs: Sequence[dict], key: str) -> dict | None:
    """The run with the smallest ``key`` among those that exited with 0, else None."""
    ok = [r for r in runs if r["code"] == 0]
    return min(ok, key=lambda r: r[key]) if ok else None


# --------------------------------------------------------------------------------------
# Interpreters


def venv_python(env_var: str | None, default: str, must_exist: bool = True) -> str | None:
    """The interpreter named by ``$env_var``, else ``default`` (``~`` expanded). With
    ``must_exist``, the first of the two that is an executable, else None; without, the
    variable's value if it is set, else the default, neither checked."""
    candidates = [os.environ.get(env_var) if env_var else None, os.path.expanduser(default)]
    if not must_exist:
        return next(p for p in candidates if p)
    return next((p for p in candidates if p and os.access(p, os.X_OK)), None)


def missing_modules(modules: Sequence[str], versions: Mapping[str, str] = {}) -> str | None:
    """Why ``modules`` cannot be used here (an import error, or a module of ``versions``
    whose ``__version__`` does not start with the given prefix), else None."""
    try:
        for name in modules:
            importlib.import_module(name)
        for name, prefix in versions.items():
            v = getattr(importlib.import_module(name), "__version__", "")
            if not v.startswith(prefix):
                return f"{name} {v} is not {prefix}x"
    except ImportError as e:
        return str(e)
    return None


def ensure_modules(modules: Sequence[str], *, env_var: str | None, default: str, hint: str,
                   versions: Mapping[str, str] = {},
                   create_with: Sequence[str] = ()) -> None:
    """Returns when ``modules`` (and ``versions``, see :func:`missing_modules`) import here;
    otherwise re-executes the running script, same arguments, under
    :func:`venv_python` ``(env_var, default)``. With ``create_with``, a missing venv at
    ``default`` is first made (``python3 -m venv``) and these packages are pip-installed
    into it. Exits with ``hint`` (and the reason) when there is no such interpreter, when
    it is this one, or when this process already is a re-execution."""
    reason = missing_modules(modules, versions)
    if reason is None:
        return
    py = os.path.expanduser(default)
    if create_with and not os.environ.get(REEXEC_GUARD) and \
            os.path.abspath(sys.executable) != os.path.abspath(py):
        venv = os.path.dirname(os.path.dirname(py))
        if not os.path.exists(py):
            print("creating %s ..." % venv, file=sys.stderr)
            subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([py, "-m", "pip", "install", "-q", *create_with])
    py = venv_python(env_var, default)
    if py is None or os.path.abspath(py) == os.path.abspath(sys.executable) \
            or os.environ.get(REEXEC_GUARD):
        sys.exit(f"{hint} ({reason})")
    os.environ[REEXEC_GUARD] = "1"
    os.execv(py, [py] + sys.argv)


# --------------------------------------------------------------------------------------
# Files


def du(path: str) -> int:
    """Bytes in the file ``path``, or in all files below the folder ``path``."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def remove(path: str) -> None:
    """Removes the file or folder ``path``, if there is one."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def stamped_input(path: str, spec: str, command: Callable[[], Sequence[str]], what: str) -> str:
    """Returns ``path`` if it was made with ``spec`` (kept in ``path + ".stamp"``);
    otherwise removes it, runs ``command()`` through :func:`run_child` to make it (progress
    on stderr, ``what`` naming it), writes the stamp, and returns ``path``. Exits if the
    command fails."""
    stamp = path + ".stamp"
    if os.path.isdir(path) and os.path.exists(stamp) and open(stamp).read() == spec:
        return path
    cmd = command()
    shutil.rmtree(path, ignore_errors=True)
    print(f"making input {path}{what} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    r = run_child(cmd)
    if r["code"] != 0:
        sys.exit(f"making the input failed:\n{r['stderr']}")
    with open(stamp, "w") as f:
        f.write(spec)
    print(f"  made in {time.perf_counter() - t0:.1f} s ({du(path) / 2**20:.0f} MiB on disk)",
          file=sys.stderr, flush=True)
    return path
