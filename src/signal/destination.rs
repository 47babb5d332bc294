//! The destination of a store write (`.zspy`, OME-Zarr): the checks made before anything
//! is written, shared by every writer that uses the incomplete-marker protocol.
//!
//! * A missing path, an empty directory, or one holding only lazyspy temporaries (a write
//!   killed before its marker landed) is a fresh destination.
//! * An unfinished store (with the marker) is resumed when `resume` is set and its manifest
//!   is this job's; another job's is refused and points to `--overwrite`.
//! * A complete store is left alone when `resume` is set and it holds this job's result;
//!   otherwise `overwrite` removes it first, and without `overwrite` it is an error.

use std::path::Path;

use crate::io::atomic::{AtomicDirStore, INCOMPLETE_MARKER, StoreOptions};
use crate::signal::{Result, SignalError};

/// What a write finds at its destination.
pub enum Destination {
    /// Nothing there (or it was removed): the store is open and marked incomplete.
    Fresh(AtomicDirStore),
    /// An unfinished store of the same job: complete what is missing.
    Resume(AtomicDirStore),
    /// A complete store of the same job: nothing to do.
    Complete,
}

/// The write-side options that decide what happens to an existing destination.
pub struct DestinationRules<'a> {
    /// Replace an existing destination.
    pub overwrite: bool,
    /// Complete an unfinished store of the same job.
    pub resume: bool,
    /// Retry and sweep settings of the atomic store.
    pub store: &'a StoreOptions,
    /// The document whose presence makes the store complete (`.zgroup`, `zarr.json`).
    pub root_document: &'a str,
}

/// Checks `path` and opens it for a write of the job described by `manifest`.
/// `is_same_complete_job` tells whether a complete store at `path` is this job's result.
pub fn open_destination(
    path: &Path,
    manifest: &[u8],
    rules: &DestinationRules<'_>,
    is_same_complete_job: impl FnOnce(&Path) -> bool,
) -> Result<Destination> {
    let file = path.display().to_string();
    let mut resuming = false;
    let only_temporaries = std::fs::read_dir(path).is_ok_and(|d| {
        d.flatten()
            .all(|e| crate::io::atomic::temp_name::is_temp_name(&e.file_name().to_string_lossy()))
    });
    if only_temporaries {
        // As good as no destination.
    } else if let Ok(md) = std::fs::symlink_metadata(path) {
        let marker = path.join(INCOMPLETE_MARKER);
        if rules.resume && md.is_dir() && marker.exists() {
            let found = std::fs::read(&marker).map_err(|source| SignalError::Io {
                file: file.clone(),
                key: INCOMPLETE_MARKER.into(),
                source,
            })?;
            if found != manifest {
                return Err(write_err(
                    &file,
                    INCOMPLETE_MARKER,
                    "the unfinished store was started by a different job (other data, \
                     chunks or compressor); use --overwrite to start again",
                ));
            }
            resuming = true;
        } else if rules.overwrite {
            remove_path(path).map_err(|source| SignalError::Io {
                file: file.clone(),
                key: "/".into(),
                source,
            })?;
        } else if rules.resume && md.is_dir() && path.join(rules.root_document).is_file() {
            if is_same_complete_job(path) {
                return Ok(Destination::Complete);
            }
            return Err(write_err(
                &file,
                "/",
                "the store exists and is complete, with other arrays than this job's \
                 (nothing to resume); use --overwrite to replace it",
            ));
        } else {
            return Err(write_err(
                &file,
                "/",
                "the destination exists; use --overwrite to replace it",
            ));
        }
    }
    let store =
        AtomicDirStore::open(path, rules.store.clone().with_create(true)).map_err(|source| {
            SignalError::Store {
                file: file.clone(),
                source,
            }
        })?;
    if resuming {
        return Ok(Destination::Resume(store));
    }
    store
        .mark_incomplete(manifest)
        .map_err(|source| SignalError::Store { file, source })?;
    Ok(Destination::Fresh(store))
}

fn write_err(file: &str, key: &str, msg: &str) -> SignalError {
    SignalError::Write {
        file: file.into(),
        key: key.into(),
        msg: msg.into(),
    }
}

/// Removes a file or a directory tree.
pub fn remove_path(path: &Path) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(path)?;
    if md.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}
