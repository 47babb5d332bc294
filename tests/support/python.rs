//! Finding the Python interpreters for interop tests: HyperSpy 2.5.0 / RosettaSciIO 0.15.0
//! ([`require_python`]) and, in a venv of its own, the OME-Zarr stack ([`require_ome_python`]).
//!
//! Include it from a test file with
//!
//! ```ignore
//! #[path = "support/python.rs"]
//! mod python;
//!
//! #[test]
//! fn reads_back_in_hyperspy() {
//!     let Some(py) = python::require_python("reads_back_in_hyperspy") else {
//!         return; // skipped (not under CI): the note is already printed
//!     };
//!     let status = std::process::Command::new(&py).arg("-c").arg("import rsciio").status();
//!     // ...
//! }
//! ```
//!
//! (or put `pub mod python;` in a `tests/support/mod.rs` and use `mod support;`).
//!
//! The interpreter is `$LAZYSPY_PYTHON` if set, else `$HOME/.cache/lazyspy/venv/bin/python`
//! (the venv that `.ci/python-venv.sh` creates; `.ci/run` exports `LAZYSPY_PYTHON`), and it
//! counts only if it runs and imports `rsciio`. When there is none, [`require_python`] fails
//! the test under `CI=true` and otherwise prints a skip note and returns `None`.
#![allow(dead_code)] // each test binary uses only part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Whether the tests run under CI (`CI=true`): then a missing interpreter is a failure.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether `py` runs and can import RosettaSciIO.
fn usable(py: &Path) -> bool {
    Command::new(py)
        .args(["-c", "import rsciio"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The candidates in order, with where each came from (for messages).
fn candidates() -> Vec<(PathBuf, &'static str)> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("LAZYSPY_PYTHON").filter(|p| !p.is_empty()) {
        v.push((PathBuf::from(p), "$LAZYSPY_PYTHON"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        v.push((
            Path::new(&home).join(".cache/lazyspy/venv/bin/python"),
            "$HOME/.cache/lazyspy/venv",
        ));
    }
    v
}

/// The Python interpreter for interop tests, or `None` when no candidate runs and imports
/// `rsciio`. Looked up once per test binary.
pub fn python() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| candidates().into_iter().map(|(p, _)| p).find(|p| usable(p)))
        .clone()
}

/// The interpreter for the test `test_name`. Panics with a message saying how to get one
/// when `CI=true` and there is none; otherwise prints a skip note and returns `None`.
pub fn require_python(test_name: &str) -> Option<PathBuf> {
    if let Some(p) = python() {
        return Some(p);
    }
    let tried: Vec<String> = candidates()
        .iter()
        .map(|(p, from)| format!("{} ({from})", p.display()))
        .collect();
    let tried = if tried.is_empty() {
        "nothing (LAZYSPY_PYTHON and HOME unset)".to_string()
    } else {
        tried.join(", ")
    };
    let msg = format!(
        "{test_name}: no Python with RosettaSciIO: tried {tried}; run `bash .ci/python-venv.sh` \
         (creates $HOME/.cache/lazyspy/venv) or set LAZYSPY_PYTHON"
    );
    if ci() {
        panic!("{msg} (CI=true: interop tests must not be skipped)");
    }
    eprintln!("SKIPPED {msg}");
    None
}

/// Whether `py` runs and can import the OME-Zarr stack (ome-zarr-models, ome-zarr, zarr 3).
fn usable_ome(py: &Path) -> bool {
    Command::new(py)
        .args([
            "-c",
            "import ome_zarr_models, ome_zarr, zarr; assert zarr.__version__.startswith('3.')",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The OME-Zarr candidates in order, with where each came from (for messages).
fn ome_candidates() -> Vec<(PathBuf, &'static str)> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("LAZYSPY_OME_PYTHON").filter(|p| !p.is_empty()) {
        v.push((PathBuf::from(p), "$LAZYSPY_OME_PYTHON"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        v.push((
            Path::new(&home).join(".cache/lazyspy/ome-venv/bin/python"),
            "$HOME/.cache/lazyspy/ome-venv",
        ));
    }
    v
}

/// The Python interpreter for the OME-Zarr interop tests (ome-zarr-models 1.7, ome-zarr 0.18,
/// zarr-python 3: the venv of `.ci/ome-venv.sh`, a different one from [`python`]'s), or `None`
/// when no candidate (`$LAZYSPY_OME_PYTHON`, `$HOME/.cache/lazyspy/ome-venv/bin/python`) runs
/// and imports them. Looked up once per test binary.
pub fn ome_python() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            ome_candidates()
                .into_iter()
                .map(|(p, _)| p)
                .find(|p| usable_ome(p))
        })
        .clone()
}

/// The OME-Zarr interpreter for the test `test_name`. Panics with a message saying how to get
/// one when `CI=true` and there is none; otherwise prints a skip note and returns `None`.
pub fn require_ome_python(test_name: &str) -> Option<PathBuf> {
    if let Some(p) = ome_python() {
        return Some(p);
    }
    let tried: Vec<String> = ome_candidates()
        .iter()
        .map(|(p, from)| format!("{} ({from})", p.display()))
        .collect();
    let tried = if tried.is_empty() {
        "nothing (LAZYSPY_OME_PYTHON and HOME unset)".to_string()
    } else {
        tried.join(", ")
    };
    let msg = format!(
        "{test_name}: no Python with ome-zarr-models / ome-zarr / zarr 3: tried {tried}; run \
         `bash .ci/ome-venv.sh` (creates $HOME/.cache/lazyspy/ome-venv) or set LAZYSPY_OME_PYTHON"
    );
    if ci() {
        panic!("{msg} (CI=true: interop tests must not be skipped)");
    }
    eprintln!("SKIPPED {msg}");
    None
}
