//! `.zspy` zip stores (`store_type="zip"`, spec §5.2): written as a directory store in a
//! hidden temporary directory beside the destination, then packed into a temporary zip
//! (entries STORED, zip64 when needed, each key once), fsynced and renamed over the
//! destination. The destination is therefore either absent, its old content, or the
//! complete new zip; a killed write leaves only temporaries, removed by the next write.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::exec::ExecConfig;
use crate::io::atomic::RetryPolicy;
use crate::signal::model::Signal;
use crate::signal::zspy_write::{ZspyWriteOptions, ZspyWriteReport, write_zspy_signals};
use crate::signal::{Result, SignalError};

/// The temporary names used beside `dest`: `.NAME.lazyspy-zipdir` (the directory store)
/// and `.NAME.lazyspy-zip` (the zip being packed).
fn temp_paths(dest: &Path) -> (PathBuf, PathBuf) {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out.zspy".into());
    let dir = dest.parent().unwrap_or(Path::new("."));
    (
        dir.join(format!(".{name}.lazyspy-zipdir")),
        dir.join(format!(".{name}.lazyspy-zip")),
    )
}

/// Writes `signals` as a zip `.zspy` at `path` (see the module documentation).
pub fn write_zspy_zip(
    path: &Path,
    signals: &[Signal],
    opts: &ZspyWriteOptions,
    exec: &ExecConfig,
) -> Result<ZspyWriteReport> {
    let file = path.display().to_string();
    let io = |key: &str| {
        let (file, key) = (file.clone(), key.to_string());
        move |source| SignalError::Io {
            file: file.clone(),
            key: key.clone(),
            source,
        }
    };
    if !opts.write_dataset || opts.resume {
        return Err(SignalError::Write {
            file,
            key: "/".into(),
            msg: "zip stores cannot be updated or resumed (zarr's ZipStore cannot either); \
                  write a directory store, or the whole zip again"
                .into(),
        });
    }
    if path.exists() && !opts.overwrite {
        return Err(SignalError::Write {
            file,
            key: "/".into(),
            msg: "the destination exists; use --overwrite to replace it".into(),
        });
    }
    if path.is_dir() {
        return Err(SignalError::Write {
            file,
            key: "/".into(),
            msg: "the destination is a directory; a zip store is one file".into(),
        });
    }
    let (tmp_dir, tmp_zip) = temp_paths(path);
    // Leftovers of a killed run.
    if tmp_dir.exists() {
        std::fs::remove_dir_all(&tmp_dir).map_err(io("/"))?;
    }
    if tmp_zip.exists() {
        std::fs::remove_file(&tmp_zip).map_err(io("/"))?;
    }
    let dir_opts = ZspyWriteOptions {
        zip: false,
        overwrite: false,
        ..opts.clone()
    };
    let result = (|| {
        let report = write_zspy_signals(&tmp_dir, signals, &dir_opts, exec)?;
        pack(&tmp_dir, &tmp_zip).map_err(io("/"))?;
        rename_with_retry(&tmp_zip, path, &opts.store.retry).map_err(io("/"))?;
        if let Some(parent) = path.parent() {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io("/"))?;
        }
        Ok(report)
    })();
    let _ = std::fs::remove_dir_all(&tmp_dir);
    let _ = std::fs::remove_file(&tmp_zip);
    result
}

/// Packs the directory store `dir` into the zip `out` (entries STORED, sorted keys,
/// metadata first so a reader streaming the zip sees groups before chunks).
fn pack(dir: &Path, out: &Path) -> std::io::Result<()> {
    let mut keys = Vec::new();
    collect(dir, "", &mut keys)?;
    keys.sort_by_key(|k| {
        let name = k.rsplit('/').next().unwrap_or(k);
        (!name.starts_with('.'), k.clone())
    });
    let f = File::create(out)?;
    let mut zip = zip::ZipWriter::new(BufWriter::new(f));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    for key in &keys {
        let bytes = std::fs::read(dir.join(key))?;
        let options = options.large_file(bytes.len() as u64 >= u32::MAX as u64);
        zip.start_file(key.as_str(), options)
            .map_err(std::io::Error::other)?;
        zip.write_all(&bytes)?;
    }
    let w = zip.finish().map_err(std::io::Error::other)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()
}

fn collect(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type()?.is_dir() {
            collect(&entry.path(), &key, out)?;
        } else {
            out.push(key);
        }
    }
    Ok(())
}

fn rename_with_retry(from: &Path, to: &Path, retry: &RetryPolicy) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    let mut delay = retry.initial_delay;
    loop {
        match std::fs::rename(from, to) {
            Ok(()) => return Ok(()),
            Err(e) if crate::io::atomic::is_transient(&e) && started.elapsed() < retry.timeout => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(retry.max_delay);
            }
            Err(e) => return Err(e),
        }
    }
}
