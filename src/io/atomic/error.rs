//! The error type of the atomic store.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::operation::Operation;
use super::retry::is_transient;

/// Everything that can go wrong in an [`AtomicDirStore`](crate::io::atomic::AtomicDirStore).
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// A file-system operation failed permanently, or stayed transiently failing until the
    /// retry budget was spent.
    #[error(
        "{operation} failed on {path}{for_target} after {attempts} attempt{plural} in {elapsed:.1?} ({why}): {source}",
        for_target = if path == target { String::new() } else { format!(" (key file {})", target.display()) },
        path = path.display(),
        plural = if *attempts == 1 { "" } else { "s" },
        why = if *transient { "still busy when the retry time ran out" } else { "permanent error, not retried" }
    )]
    Io {
        /// The operation that failed.
        operation: Operation,
        /// The file or directory operated on (a temporary file for open, write and fsync).
        path: PathBuf,
        /// The file of the key the call was about (equal to `path` when it is the same).
        target: PathBuf,
        /// How many times the operation was tried.
        attempts: u32,
        /// Time from the first attempt of the call to the failure.
        elapsed: Duration,
        /// Whether the last error was transient (the retry budget ran out).
        transient: bool,
        /// The operating system's (or the fault hook's) error.
        source: io::Error,
    },
    /// A key or prefix that cannot name a file of the store.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two writers for one key in one write plan.
    #[error("key {key:?} is planned to be written twice in one write plan")]
    DuplicateWriter {
        /// The key planned twice.
        key: String,
    },
    /// The key is claimed by another live write plan of this store.
    #[error("key {key:?} is already claimed by another write plan")]
    KeyClaimed {
        /// The claimed key.
        key: String,
    },
    /// A write plan was asked to write a key it did not claim.
    #[error("key {key:?} is not part of this write plan")]
    NotPlanned {
        /// The key outside the plan.
        key: String,
    },
    /// A background commit was refused because an earlier one of the same job failed
    /// (the first failure is reported by [`Committer::finish`](crate::io::atomic::Committer::finish)).
    #[error("not written: an earlier write of this job failed: {reason}")]
    Aborted {
        /// The earlier failure.
        reason: String,
    },
    /// The store root exists but is not a directory.
    #[error("store root {path} is not a directory")]
    NotADirectory {
        /// The root path.
        path: PathBuf,
    },
}

impl StoreError {
    /// An I/O failure of `operation` on `path` (for the key's file `target`).
    pub(super) fn io(
        operation: Operation,
        path: &Path,
        target: &Path,
        attempts: u32,
        elapsed: Duration,
        source: io::Error,
    ) -> Self {
        StoreError::Io {
            operation,
            path: path.to_path_buf(),
            target: target.to_path_buf(),
            attempts,
            elapsed,
            transient: is_transient(&source),
            source,
        }
    }

    /// An invalid key with the reason.
    pub(super) fn invalid_key(key: &str, reason: impl Into<String>) -> Self {
        StoreError::InvalidKey {
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    /// The failed operation, for an I/O error.
    pub fn operation(&self) -> Option<Operation> {
        match self {
            StoreError::Io { operation, .. } => Some(*operation),
            _ => None,
        }
    }
}

impl From<StoreError> for crate::error::Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Io {
                ref target,
                ref source,
                ..
            } => {
                let message = err.to_string();
                crate::error::Error::io(target.clone(), io::Error::new(source.kind(), message))
            }
            StoreError::NotADirectory { ref path } => {
                let message = err.to_string();
                crate::error::Error::io(
                    path.clone(),
                    io::Error::new(io::ErrorKind::NotADirectory, message),
                )
            }
            other => crate::error::Error::Invalid(other.to_string()),
        }
    }
}
