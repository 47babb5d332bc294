//! Store-level helpers of the writer tests: every file of a store as key → bytes, and
//! fault hooks for the atomic store.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lazyspy::io::atomic::Operation;

/// Every file under `root` as key → bytes.
pub fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let key = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(key, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Fails the `n`-th `op` (counting from 0) with `make()`, `times` times in a row.
pub fn fault(
    op: Operation,
    n: u64,
    times: u64,
    make: fn() -> io::Error,
) -> Arc<dyn lazyspy::io::atomic::FaultHook> {
    let seen = Arc::new(AtomicU64::new(0));
    Arc::new(move |o: Operation, _p: &Path, _c: u64| {
        if o != op {
            return None;
        }
        let k = seen.fetch_add(1, Ordering::SeqCst);
        (k >= n && k < n.saturating_add(times)).then(make)
    })
}

pub fn busy() -> io::Error {
    io::Error::from_raw_os_error(libc_ebusy())
}

fn libc_ebusy() -> i32 {
    16 // EBUSY on Linux
}

pub fn denied() -> io::Error {
    io::Error::other("disk on fire")
}

pub fn temporaries(root: &Path) -> Vec<String> {
    files(root)
        .into_keys()
        .filter(|k| k.contains("lazyspy-tmp"))
        .collect()
}
