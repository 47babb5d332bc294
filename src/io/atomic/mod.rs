//! An atomic key-value store over a directory: the storage layer under the `.zspy` (Zarr v2
//! directory store) writer.
//!
//! Keys are `/`-separated relative paths such as `.zattrs` or
//! `Experiments/__unnamed__/data/0/1/2`; each key is one file under the store root.
//! [`AtomicDirStore`] guarantees that a file named by a key is, at every moment and after a
//! crash at any point, either its old complete content or its new complete content:
//!
//! 1. [`AtomicDirStore::set`] writes the bytes to a uniquely named hidden temporary file in
//!    the directory of the key (see [`temp_name`] for the pattern), `fsync`s it, renames it
//!    over the final name and `fsync`s the directory.
//! 2. Transient failures (sharing violations on Windows, `EBUSY`, `EAGAIN`, ...; see
//!    [`is_transient`]) are retried with exponential back-off for a bounded time
//!    ([`RetryPolicy`]); permanent failures fail at once with a [`StoreError`] that names the
//!    operation, the file and the number of attempts.
//! 3. A temporary file is removed on every error path, and [`AtomicDirStore::open`] sweeps
//!    temporary files left behind by crashed processes (see [`sweep`] for the rule).
//! 4. One writer per key: a [`WritePlan`] claims keys (two planned writers for one key are
//!    rejected), and an in-process per-key lock serialises writes to the same key.
//! 5. A [`FaultHook`] in [`StoreOptions`] can inject I/O errors before every file-system
//!    operation, for tests; it costs nothing when absent.
//! 6. A [`Committer`] writes values through a plan on a few background I/O threads, so
//!    compute threads never wait on `fsync`; its queue is bounded in bytes.
//! 7. An incomplete-marker protocol ([`AtomicDirStore::mark_incomplete`],
//!    [`AtomicDirStore::mark_complete`], see [`marker`]) lets an interrupted write be
//!    recognised and resumed.
//!
//! ```
//! use lazyspy::io::atomic::{AtomicDirStore, StoreOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = AtomicDirStore::open(dir.path(), StoreOptions::default()).unwrap();
//! store.set("data/0/0", b"chunk bytes").unwrap();
//! assert_eq!(store.get("data/0/0").unwrap().as_deref(), Some(&b"chunk bytes"[..]));
//! assert_eq!(store.list_prefix("data/").unwrap(), vec!["data/0/0".to_string()]);
//! ```

mod committer;
mod error;
mod fault;
mod key;
mod key_lock;
mod key_value;
pub mod marker;
mod operation;
mod plan;
mod retry;
mod store;
pub mod sweep;
pub mod temp_name;
mod write;

pub use committer::Committer;
pub use error::StoreError;
pub use fault::FaultHook;
pub use key::validate_key;
pub use key_value::KeyValueStore;
pub use marker::INCOMPLETE_MARKER;
pub use operation::Operation;
pub use plan::WritePlan;
pub use retry::{RetryPolicy, is_transient};
pub use store::{AtomicDirStore, DirListing, StoreOptions};
pub use sweep::SweepReport;
pub use temp_name::TEMP_SUFFIX;
