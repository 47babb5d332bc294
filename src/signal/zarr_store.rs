//! [`ZarrStore`]: the read-only key/value view of a `.zspy` store, a directory
//! (`NestedDirectoryStore`/`DirectoryStore`) or a zip file (`ZipStore`, spec §5.2),
//! detected automatically.
//!
//! The metadata reader ([`ZarrDirGroup`](crate::signal::ZarrDirGroup)) and the chunk
//! reader ([`ZspyArraySource`](crate::signal::ZspyArraySource), through `zarrs`, for which
//! this type implements [`ReadableStorageTraits`]) both read through it, so every feature
//! works the same on both layouts. Keys are `/`-separated and relative to the store root
//! (`Experiments/x/data/.zarray`). Cloning is cheap (shared).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zarrs::storage::byte_range::{ByteRangeIterator, InvalidByteRangeError};
use zarrs::storage::{Bytes, MaybeBytesIterator, ReadableStorageTraits, StorageError, StoreKey};

use crate::io::atomic::INCOMPLETE_MARKER;
use crate::signal::zip::{ZipArchive, ZipError};
use crate::signal::{Result, SignalError};

#[derive(Debug)]
enum Backend {
    Dir(PathBuf),
    Zip(ZipArchive),
}

#[derive(Debug)]
struct Inner {
    file: String,
    backend: Backend,
}

/// A read-only Zarr store: a directory or a zip file.
#[derive(Clone, Debug)]
pub struct ZarrStore {
    inner: Arc<Inner>,
}

/// Whether `path` is a zip file, as Python's `zipfile.is_zipfile` decides (an
/// end-of-central-directory record near the end, or a zip signature at the start).
pub fn is_zip(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = [0u8; 4];
    if len >= 4 {
        f.read_exact(&mut head)?;
        if &head == b"PK\x03\x04" || &head == b"PK\x05\x06" {
            return Ok(true);
        }
    }
    let tail_len = len.min(65_557);
    f.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    f.read_to_end(&mut tail)?;
    Ok(tail.windows(4).any(|w| w == b"PK\x05\x06"))
}

/// Whether a key is safe to join to a directory (no `..`, no absolute path).
fn safe_key(key: &str) -> bool {
    !key.split('/').any(|s| s == "..") && !key.starts_with('/') && !key.contains('\\')
}

impl ZarrStore {
    /// Opens the store at `path`: a directory, or a zip file (detected by its content,
    /// whatever its extension). Reads the zip's central directory; nothing else.
    ///
    /// This does not check the incomplete marker; see [`check_complete`](Self::check_complete).
    pub fn open(path: impl AsRef<Path>) -> Result<ZarrStore> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let io = |e| SignalError::Io {
            file: file.clone(),
            key: "/".into(),
            source: e,
        };
        let md = std::fs::metadata(path).map_err(io)?;
        let backend = if md.is_dir() {
            Backend::Dir(path.to_path_buf())
        } else if is_zip(path).map_err(io)? {
            Backend::Zip(ZipArchive::open(path).map_err(|e| zip_error(&file, "/", e))?)
        } else {
            return Err(SignalError::Invalid {
                file,
                key: "/".into(),
                msg: "not a directory store and not a zip file".into(),
            });
        };
        Ok(ZarrStore {
            inner: Arc::new(Inner { file, backend }),
        })
    }

    /// The store's path, as given to [`open`](Self::open) (used in every error message).
    pub fn file(&self) -> &str {
        &self.inner.file
    }

    /// Whether the store is a zip file.
    pub fn is_zip(&self) -> bool {
        matches!(self.inner.backend, Backend::Zip(_))
    }

    /// The zip archive, for a zip store.
    pub fn zip(&self) -> Option<&ZipArchive> {
        match &self.inner.backend {
            Backend::Zip(z) => Some(z),
            Backend::Dir(_) => None,
        }
    }

    /// The value of `key`, `None` when it does not exist. Errors (I/O, corrupt zip entry)
    /// name the store and the key.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.trim_start_matches('/');
        match &self.inner.backend {
            Backend::Dir(root) => {
                if !safe_key(key) {
                    return Ok(None);
                }
                match std::fs::read(root.join(key)) {
                    Ok(b) => Ok(Some(b)),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
                        ) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(SignalError::Io {
                        file: self.inner.file.clone(),
                        key: format!("/{key}"),
                        source: e,
                    }),
                }
            }
            Backend::Zip(z) => z
                .read(key)
                .map_err(|e| zip_error(&self.inner.file, &format!("/{key}"), e)),
        }
    }

    /// Whether `key` exists (as a value, not a directory).
    pub fn contains(&self, key: &str) -> bool {
        let key = key.trim_start_matches('/');
        match &self.inner.backend {
            Backend::Dir(root) => safe_key(key) && root.join(key).is_file(),
            Backend::Zip(z) => z.contains(key),
        }
    }

    /// The names of the direct children (values and sub-directories) of the directory
    /// `dir` (`""` for the root), sorted.
    pub fn list_dir(&self, dir: &str) -> Result<Vec<String>> {
        let dir = dir.trim_matches('/');
        match &self.inner.backend {
            Backend::Dir(root) => {
                if !safe_key(dir) {
                    return Ok(vec![]);
                }
                let path = if dir.is_empty() {
                    root.clone()
                } else {
                    root.join(dir)
                };
                let io = |e| SignalError::Io {
                    file: self.inner.file.clone(),
                    key: format!("/{dir}"),
                    source: e,
                };
                let mut out = Vec::new();
                for entry in std::fs::read_dir(&path).map_err(io)? {
                    if let Ok(name) = entry.map_err(io)?.file_name().into_string() {
                        out.push(name);
                    }
                }
                out.sort();
                Ok(out)
            }
            Backend::Zip(z) => Ok(z.list_dir(dir)),
        }
    }

    /// Whether the store carries lazyspy's incomplete marker ([`INCOMPLETE_MARKER`]): an
    /// interrupted write.
    pub fn is_incomplete(&self) -> bool {
        self.contains(INCOMPLETE_MARKER)
    }

    /// [`SignalError::Incomplete`] when the store carries the incomplete marker.
    pub fn check_complete(&self) -> Result<()> {
        if self.is_incomplete() {
            return Err(SignalError::Incomplete {
                file: self.inner.file.clone(),
            });
        }
        Ok(())
    }
}

fn zip_error(file: &str, key: &str, e: ZipError) -> SignalError {
    match e {
        ZipError::Io(source) => SignalError::Io {
            file: file.to_string(),
            key: key.to_string(),
            source,
        },
        ZipError::Corrupt(msg) => SignalError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            msg: format!("corrupt zip store: {msg}"),
        },
        ZipError::Unsupported(msg) => SignalError::Unsupported {
            file: file.to_string(),
            key: key.to_string(),
            msg,
        },
    }
}

/// The byte ranges of the file `key` of a directory store (`None` when it does not exist).
fn read_ranges<'a>(
    root: &Path,
    key: &str,
    byte_ranges: ByteRangeIterator<'a>,
) -> std::result::Result<MaybeBytesIterator<'a>, StorageError> {
    use std::io::{Read, Seek, SeekFrom};
    if !safe_key(key) {
        return Ok(None);
    }
    let mut file = match std::fs::File::open(root.join(key)) {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(StorageError::IOError(Arc::new(e))),
    };
    let io = |e| StorageError::IOError(Arc::new(e));
    let md = file.metadata().map_err(io)?;
    if md.is_dir() {
        return Ok(None);
    }
    let len = md.len();
    let mut out = Vec::new();
    for r in byte_ranges {
        let (start, end) = (r.start(len), r.end(len));
        if end > len || start > end {
            out.push(Err(InvalidByteRangeError::new(r, len).into()));
            continue;
        }
        let mut buf = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        file.read_exact(&mut buf).map_err(io)?;
        out.push(Ok(Bytes::from(buf)));
    }
    Ok(Some(Box::new(out.into_iter())))
}

impl ReadableStorageTraits for ZarrStore {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> std::result::Result<MaybeBytesIterator<'a>, StorageError> {
        if let Backend::Dir(root) = &self.inner.backend {
            // Read only the requested ranges: a sharded Zarr v3 array (OME-Zarr 0.5) asks
            // for the shard index, then one range per inner chunk, of the same file.
            return read_ranges(root, key.as_str(), byte_ranges);
        }
        let Some(data) = self
            .get(key.as_str())
            .map_err(|e| StorageError::Other(e.to_string()))?
        else {
            return Ok(None);
        };
        let data = Bytes::from(data);
        let len = data.len() as u64;
        Ok(Some(Box::new(byte_ranges.map(move |r| {
            let (start, end) = (r.start(len), r.end(len));
            if end > len || start > end {
                Err(InvalidByteRangeError::new(r, len).into())
            } else {
                Ok(data.slice(start as usize..end as usize))
            }
        }))))
    }

    fn size_key(&self, key: &StoreKey) -> std::result::Result<Option<u64>, StorageError> {
        let k = key.as_str();
        match &self.inner.backend {
            Backend::Dir(root) => {
                if !safe_key(k) {
                    return Ok(None);
                }
                match std::fs::metadata(root.join(k)) {
                    Ok(m) if m.is_file() => Ok(Some(m.len())),
                    Ok(_) => Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(StorageError::IOError(Arc::new(e))),
                }
            }
            Backend::Zip(z) => Ok(z.entry(k).map(|e| e.size)),
        }
    }

    fn supports_get_partial(&self) -> bool {
        false
    }
}
