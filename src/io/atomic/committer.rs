//! Background commits: compute threads hand finished values to a few I/O threads that
//! write them through a [`WritePlan`], so a worker never waits on `fsync`.
//!
//! The queue is bounded in bytes (a value larger than the bound is still accepted when the
//! queue is empty), so the memory held by queued values stays within a known limit. The
//! first error is kept: later submissions fail with it, and [`Committer::finish`] reports
//! it after every queued value was attempted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam::channel::{Sender, bounded};
use parking_lot::{Condvar, Mutex};

use super::error::StoreError;
use super::plan::WritePlan;

/// A key and the value to commit under it.
type KeyValue = (String, Vec<u8>);

/// Bytes waiting in the queue, with a condition variable to wait for room.
struct Queued {
    bytes: Mutex<u64>,
    room: Condvar,
}

/// A pool of I/O threads committing `(key, value)` pairs through a [`WritePlan`].
///
/// ```
/// use lazyspy::io::atomic::{AtomicDirStore, Committer, StoreOptions};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = AtomicDirStore::open(dir.path(), StoreOptions::default()).unwrap();
/// let plan = store.begin_writes(["a/0", "a/1"]).unwrap();
/// let committer = Committer::new(plan, 2, 1 << 20);
/// committer.submit("a/0".into(), b"x".to_vec()).unwrap();
/// committer.submit("a/1".into(), b"y".to_vec()).unwrap();
/// let (count, bytes) = committer.finish().unwrap();
/// assert_eq!((count, bytes), (2, 2));
/// assert_eq!(store.get("a/1").unwrap().as_deref(), Some(&b"y"[..]));
/// ```
pub struct Committer {
    plan: Arc<WritePlan>,
    /// `None` once finished.
    sender: Mutex<Option<Sender<KeyValue>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    queued: Arc<Queued>,
    limit: u64,
    error: Arc<Mutex<Option<StoreError>>>,
    committed: Arc<AtomicUsize>,
    committed_bytes: Arc<AtomicU64>,
}

impl Committer {
    /// Starts `threads` I/O threads (at least one) writing through `plan`, with at most
    /// `queue_bytes` of values waiting.
    pub fn new(plan: WritePlan, threads: usize, queue_bytes: u64) -> Committer {
        let plan = Arc::new(plan);
        let threads = threads.max(1);
        let (sender, receiver) = bounded::<(String, Vec<u8>)>(threads * 4);
        let queued = Arc::new(Queued {
            bytes: Mutex::new(0),
            room: Condvar::new(),
        });
        let error = Arc::new(Mutex::new(None));
        let committed = Arc::new(AtomicUsize::new(0));
        let committed_bytes = Arc::new(AtomicU64::new(0));
        let handles = (0..threads)
            .map(|i| {
                let receiver = receiver.clone();
                let (plan, queued, error) = (plan.clone(), queued.clone(), error.clone());
                let (committed, committed_bytes) = (committed.clone(), committed_bytes.clone());
                std::thread::Builder::new()
                    .name(format!("lazyspy-commit-{i}"))
                    .spawn(move || {
                        for (key, value) in receiver {
                            let len = value.len() as u64;
                            if error.lock().is_none() {
                                match plan.write(&key, &value) {
                                    Ok(()) => {
                                        committed.fetch_add(1, Ordering::Relaxed);
                                        committed_bytes.fetch_add(len, Ordering::Relaxed);
                                    }
                                    Err(e) => {
                                        error.lock().get_or_insert(e);
                                    }
                                }
                            }
                            drop(value);
                            *queued.bytes.lock() -= len;
                            queued.room.notify_all();
                        }
                    })
                    .expect("spawning an I/O thread")
            })
            .collect();
        Committer {
            plan,
            sender: Mutex::new(Some(sender)),
            threads: Mutex::new(handles),
            queued,
            limit: queue_bytes,
            error,
            committed,
            committed_bytes,
        }
    }

    /// The plan the values are written through.
    pub fn plan(&self) -> &WritePlan {
        &self.plan
    }

    /// Queues `value` for `key`, waiting while the queue is full. Fails with the first
    /// error of an earlier commit, or when the committer was finished.
    pub fn submit(&self, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        let len = value.len() as u64;
        {
            let mut bytes = self.queued.bytes.lock();
            while *bytes > 0 && *bytes + len > self.limit && self.error.lock().is_none() {
                self.queued.room.wait(&mut bytes);
            }
            *bytes += len;
        }
        if let Some(e) = self.error.lock().as_ref() {
            *self.queued.bytes.lock() -= len;
            return Err(StoreError::Aborted {
                reason: e.to_string(),
            });
        }
        let sender = self.sender.lock().clone();
        let sent = match sender {
            Some(sender) => sender
                .send((key, value))
                .map_err(|_| "the I/O threads stopped"),
            None => Err("the committer was finished"),
        };
        sent.map_err(|reason| {
            *self.queued.bytes.lock() -= len;
            StoreError::Aborted {
                reason: reason.into(),
            }
        })
    }

    /// Waits until every queued value was written; returns how many values and bytes were
    /// committed, or the first error. Later submissions fail; calling it again returns the
    /// same totals (the error only once).
    pub fn finish(&self) -> Result<(usize, u64), StoreError> {
        self.close();
        if let Some(e) = self.error.lock().take() {
            return Err(e);
        }
        Ok((
            self.committed.load(Ordering::Relaxed),
            self.committed_bytes.load(Ordering::Relaxed),
        ))
    }

    /// Values committed so far.
    pub fn committed(&self) -> usize {
        self.committed.load(Ordering::Relaxed)
    }

    /// Values and bytes committed so far.
    pub fn totals(&self) -> (usize, u64) {
        (
            self.committed.load(Ordering::Relaxed),
            self.committed_bytes.load(Ordering::Relaxed),
        )
    }

    fn close(&self) {
        self.sender.lock().take();
        let threads: Vec<JoinHandle<()>> = self.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.close();
    }
}
