//! A small read-only zip reader for zarr's `ZipStore` (`.zspy` written with
//! `store_type="zip"`, spec §5.2).
//!
//! Only what zarr stores need: the central directory (zip64 included), entries STORED or
//! DEFLATED, CRC-32 checked on every read. **Duplicate entry names: the last entry in the
//! central directory wins**, as in Python's `zipfile` (zarr's `ZipStore` appends a new
//! `.zattrs` entry for every attribute update). Reads are positional (`pread`), so any
//! number of threads can read entries at once without a lock.
//!
//! Written here rather than taken from a crate so that the duplicate-name rule, the error
//! messages (file and entry name) and the absence of panics on corrupt input are ours to
//! guarantee; every length and offset read from the file is bounds-checked.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// What went wrong reading a zip file.
#[derive(Debug)]
pub enum ZipError {
    /// The file could not be read.
    Io(std::io::Error),
    /// The file is not a zip file, or its structure is corrupt.
    Corrupt(String),
    /// A feature this reader does not have (encryption, a compression method other than
    /// stored and deflate, multi-disk archives).
    Unsupported(String),
}

impl std::fmt::Display for ZipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ZipError::Io(e) => write!(f, "{e}"),
            ZipError::Corrupt(m) => write!(f, "corrupt zip file: {m}"),
            ZipError::Unsupported(m) => write!(f, "unsupported zip feature: {m}"),
        }
    }
}

impl std::error::Error for ZipError {}

impl From<std::io::Error> for ZipError {
    fn from(e: std::io::Error) -> Self {
        ZipError::Io(e)
    }
}

type ZResult<T> = std::result::Result<T, ZipError>;

fn corrupt<T>(msg: impl Into<String>) -> ZResult<T> {
    Err(ZipError::Corrupt(msg.into()))
}

/// One entry of the central directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipEntry {
    /// The entry name (`/`-separated key).
    pub name: String,
    /// Compression method (0 stored, 8 deflate).
    pub method: u16,
    /// General purpose flags.
    pub flags: u16,
    /// CRC-32 of the uncompressed bytes.
    pub crc32: u32,
    /// Compressed size.
    pub compressed_size: u64,
    /// Uncompressed size.
    pub size: u64,
    /// Offset of the local file header (already corrected for data prepended to the zip).
    pub header_offset: u64,
}

/// A zip file opened for reading: its central directory, indexed by name.
#[derive(Debug)]
pub struct ZipArchive {
    file: File,
    file_len: u64,
    /// Every central-directory entry, in order (duplicates included).
    entries: Vec<ZipEntry>,
    /// Name → index into `entries` of the **last** entry with that name.
    by_name: HashMap<String, usize>,
    /// Directory prefix (`""` for the root, else `a/b`) → names of its direct children.
    dirs: HashMap<String, BTreeSet<String>>,
}

fn u16_at(b: &[u8], at: usize) -> ZResult<u16> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_le_bytes([s[0], s[1]])),
        None => corrupt("record truncated"),
    }
}

fn u32_at(b: &[u8], at: usize) -> ZResult<u32> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        None => corrupt("record truncated"),
    }
}

fn u64_at(b: &[u8], at: usize) -> ZResult<u64> {
    match b.get(at..at + 8) {
        Some(s) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            Ok(u64::from_le_bytes(a))
        }
        None => corrupt("record truncated"),
    }
}

/// Reads exactly `buf.len()` bytes at `offset` without moving a shared cursor.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0usize;
        while done < buf.len() {
            let n = file.seek_read(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
    #[cfg(not(any(unix, windows)))]
    {
        use std::io::{Seek, SeekFrom};
        let mut f = file.try_clone()?;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

/// Code page 437 (the zip default name encoding), upper half.
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";

fn decode_name(raw: &[u8], utf8: bool) -> ZResult<String> {
    if utf8 || raw.is_ascii() {
        return match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => corrupt("entry name flagged UTF-8 is not UTF-8"),
        };
    }
    let high: Vec<char> = CP437_HIGH.chars().collect();
    Ok(raw
        .iter()
        .map(|&b| {
            if b < 0x80 {
                b as char
            } else {
                high[(b - 0x80) as usize]
            }
        })
        .collect())
}

impl ZipArchive {
    /// Opens `path` and reads its central directory.
    pub fn open(path: &Path) -> ZResult<ZipArchive> {
        let file = File::open(path)?;
        let file_len = file.metadata()?.len();
        // End of central directory: the last signature whose comment reaches the end.
        let tail_len = file_len.min(22 + 65_535);
        let tail_start = file_len - tail_len;
        let mut tail = vec![0u8; tail_len as usize];
        read_exact_at(&file, &mut tail, tail_start)?;
        if tail.len() < 22 {
            return corrupt("too short for a zip file");
        }
        let mut eocd_at = None;
        let mut i = (tail.len() - 22) as isize;
        while i >= 0 {
            let p = i as usize;
            if tail[p..p + 4] == *b"PK\x05\x06" {
                let comment = u16_at(&tail, p + 20)? as usize;
                if eocd_at.is_none() {
                    eocd_at = Some(p); // fallback: last signature found
                }
                if p + 22 + comment == tail.len() {
                    eocd_at = Some(p);
                    break;
                }
            }
            i -= 1;
        }
        let Some(e) = eocd_at else {
            return corrupt("no end-of-central-directory record");
        };
        let eocd_pos = tail_start + e as u64;
        let disk = u16_at(&tail, e + 4)?;
        let cd_disk = u16_at(&tail, e + 6)?;
        let mut n_entries = u16_at(&tail, e + 10)? as u64;
        let mut cd_size = u32_at(&tail, e + 12)? as u64;
        let mut cd_offset = u32_at(&tail, e + 16)? as u64;
        let mut cd_end = eocd_pos; // where the central directory should end
        // zip64: a locator right before the EOCD record.
        if e >= 20 && tail[e - 20..e - 16] == *b"PK\x06\x07" {
            // The zip64 record normally sits right before the locator; else trust the
            // locator's pointer.
            let mut rec = [0u8; 56];
            let mut found = None;
            let candidates = [
                eocd_pos.checked_sub(20 + 56),
                Some(u64_at(&tail, e - 20 + 8)?),
            ];
            for pos in candidates.into_iter().flatten() {
                if pos.checked_add(56).is_some_and(|end| end <= file_len) {
                    read_exact_at(&file, &mut rec, pos)?;
                    if rec[0..4] == *b"PK\x06\x06" {
                        found = Some(pos);
                        break;
                    }
                }
            }
            let Some(rec_pos) = found else {
                return corrupt("zip64 end-of-central-directory record not found");
            };
            n_entries = u64_at(&rec, 32)?;
            cd_size = u64_at(&rec, 40)?;
            cd_offset = u64_at(&rec, 48)?;
            cd_end = rec_pos;
        } else if disk != 0 || cd_disk != 0 {
            return Err(ZipError::Unsupported("multi-disk archive".into()));
        }
        // Data prepended to the archive shifts every offset (Python's `concat`).
        let Some(cd_start) = cd_end.checked_sub(cd_size) else {
            return corrupt("central directory larger than the file");
        };
        let Some(concat) = cd_start.checked_sub(cd_offset) else {
            return corrupt("central directory offset past its position");
        };
        if cd_size > file_len {
            return corrupt("central directory larger than the file");
        }
        let mut cd = vec![0u8; cd_size as usize];
        read_exact_at(&file, &mut cd, cd_start)?;
        let mut entries = Vec::with_capacity(n_entries.min(1 << 20) as usize);
        let mut at = 0usize;
        while at + 4 <= cd.len() && cd[at..at + 4] == *b"PK\x01\x02" {
            let flags = u16_at(&cd, at + 8)?;
            let method = u16_at(&cd, at + 10)?;
            let crc32 = u32_at(&cd, at + 16)?;
            let mut compressed_size = u32_at(&cd, at + 20)? as u64;
            let mut size = u32_at(&cd, at + 24)? as u64;
            let name_len = u16_at(&cd, at + 28)? as usize;
            let extra_len = u16_at(&cd, at + 30)? as usize;
            let comment_len = u16_at(&cd, at + 32)? as usize;
            let mut header_offset = u32_at(&cd, at + 42)? as u64;
            let name_at = at + 46;
            let Some(raw_name) = cd.get(name_at..name_at + name_len) else {
                return corrupt("central directory entry name truncated");
            };
            let name = decode_name(raw_name, flags & 0x0800 != 0)?;
            let Some(extra) = cd.get(name_at + name_len..name_at + name_len + extra_len) else {
                return corrupt(format!("extra field of '{name}' truncated"));
            };
            // zip64 extended information: only the fields that overflowed are present.
            let mut x = 0usize;
            while x + 4 <= extra.len() {
                let id = u16_at(extra, x)?;
                let len = u16_at(extra, x + 2)? as usize;
                let Some(body) = extra.get(x + 4..x + 4 + len) else {
                    return corrupt(format!("extra field of '{name}' truncated"));
                };
                if id == 0x0001 {
                    let mut k = 0usize;
                    for field in [&mut size, &mut compressed_size, &mut header_offset] {
                        if *field == 0xFFFF_FFFF {
                            *field = u64_at(body, k)?;
                            k += 8;
                        }
                    }
                }
                x += 4 + len;
            }
            let Some(header_offset) = header_offset.checked_add(concat) else {
                return corrupt(format!("offset of '{name}' out of range"));
            };
            entries.push(ZipEntry {
                name,
                method,
                flags,
                crc32,
                compressed_size,
                size,
                header_offset,
            });
            at = name_at + name_len + extra_len + comment_len;
        }
        if (entries.len() as u64) != n_entries {
            return corrupt(format!(
                "the central directory holds {} entries, its end record says {n_entries}",
                entries.len()
            ));
        }
        let mut by_name = HashMap::with_capacity(entries.len());
        let mut dirs: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_name.insert(e.name.clone(), i); // the last one wins
            let mut parent = String::new();
            for seg in e.name.split('/').filter(|s| !s.is_empty()) {
                dirs.entry(parent.clone())
                    .or_default()
                    .insert(seg.to_string());
                if !parent.is_empty() {
                    parent.push('/');
                }
                parent.push_str(seg);
            }
        }
        Ok(ZipArchive {
            file,
            file_len,
            entries,
            by_name,
            dirs,
        })
    }

    /// Every central-directory entry in order, duplicates included.
    pub fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }

    /// How many entries repeat the name of an earlier one.
    pub fn duplicate_count(&self) -> usize {
        self.entries.len() - self.by_name.len()
    }

    /// The valid (last) entry named `name`.
    pub fn entry(&self, name: &str) -> Option<&ZipEntry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// Whether an entry named `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The names of the direct children of the directory `dir` (`""` for the root, no
    /// trailing `/`): entries and implied sub-directories, sorted.
    pub fn list_dir(&self, dir: &str) -> Vec<String> {
        self.dirs
            .get(dir.trim_matches('/'))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The bytes of the valid (last) entry named `name`, decompressed and CRC-checked;
    /// `None` when there is no such entry.
    pub fn read(&self, name: &str) -> ZResult<Option<Vec<u8>>> {
        let Some(e) = self.entry(name) else {
            return Ok(None);
        };
        self.read_entry(e).map(Some)
    }

    /// The bytes of one entry.
    pub fn read_entry(&self, e: &ZipEntry) -> ZResult<Vec<u8>> {
        if e.flags & 0x0001 != 0 {
            return Err(ZipError::Unsupported(format!("'{}' is encrypted", e.name)));
        }
        let mut local = [0u8; 30];
        if e.header_offset
            .checked_add(30)
            .is_none_or(|end| end > self.file_len)
        {
            return corrupt(format!("local header of '{}' is past the end", e.name));
        }
        read_exact_at(&self.file, &mut local, e.header_offset)?;
        if local[0..4] != *b"PK\x03\x04" {
            return corrupt(format!("bad local header signature for '{}'", e.name));
        }
        let n = u16_at(&local, 26)? as u64;
        let x = u16_at(&local, 28)? as u64;
        let start = e.header_offset + 30 + n + x;
        if start
            .checked_add(e.compressed_size)
            .is_none_or(|end| end > self.file_len)
        {
            return corrupt(format!(
                "data of '{}' ({} bytes) runs past the end of the file",
                e.name, e.compressed_size
            ));
        }
        let mut raw = vec![0u8; e.compressed_size as usize];
        read_exact_at(&self.file, &mut raw, start)?;
        let data = match e.method {
            0 => raw,
            8 => {
                let mut out = Vec::with_capacity(e.size.min(1 << 30) as usize);
                let mut dec = flate2::read::DeflateDecoder::new(&raw[..]).take(e.size + 1);
                if let Err(err) = dec.read_to_end(&mut out) {
                    return corrupt(format!("cannot inflate '{}': {err}", e.name));
                }
                out
            }
            m => {
                return Err(ZipError::Unsupported(format!(
                    "'{}' uses compression method {m} (only stored and deflate are read)",
                    e.name
                )));
            }
        };
        if data.len() as u64 != e.size {
            return corrupt(format!(
                "'{}' holds {} bytes, its header says {}",
                e.name,
                data.len(),
                e.size
            ));
        }
        let mut crc = flate2::Crc::new();
        crc.update(&data);
        if crc.sum() != e.crc32 {
            return corrupt(format!("CRC-32 mismatch in '{}'", e.name));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip of STORED entries, in order (duplicates allowed).
    fn build(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cd = Vec::new();
        for (name, data) in entries {
            let mut crc = flate2::Crc::new();
            crc.update(data);
            let off = out.len() as u32;
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&crc.sum().to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            cd.extend_from_slice(b"PK\x01\x02");
            cd.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            cd.extend_from_slice(&crc.sum().to_le_bytes());
            cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
            cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
            cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
            cd.extend_from_slice(&[0; 12]);
            cd.extend_from_slice(&off.to_le_bytes());
            cd.extend_from_slice(name.as_bytes());
        }
        let cd_off = out.len() as u32;
        out.extend_from_slice(&cd);
        out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_off.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn last_duplicate_wins_and_listing_works() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.zip");
        std::fs::write(
            &p,
            build(&[
                ("a/.zattrs", b"first"),
                ("a/b/0", b"x"),
                ("a/.zattrs", b"second"),
            ]),
        )
        .unwrap();
        let z = ZipArchive::open(&p).unwrap();
        assert_eq!(z.entries().len(), 3);
        assert_eq!(z.duplicate_count(), 1);
        assert_eq!(z.read("a/.zattrs").unwrap().unwrap(), b"second");
        assert_eq!(z.read("nope").unwrap(), None);
        assert_eq!(z.list_dir(""), vec!["a"]);
        assert_eq!(z.list_dir("a"), vec![".zattrs", "b"]);
        assert_eq!(z.list_dir("a/b"), vec!["0"]);
    }

    #[test]
    fn corrupt_zips_are_errors_not_panics() {
        let good = build(&[("k", b"value"), ("k2", b"other")]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.zip");
        // Every truncation and every single-byte corruption: an error or a valid read.
        for cut in 0..good.len() {
            std::fs::write(&p, &good[..cut]).unwrap();
            if let Ok(z) = ZipArchive::open(&p) {
                let _ = z.read("k");
            }
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xA5;
            std::fs::write(&p, &bad).unwrap();
            if let Ok(z) = ZipArchive::open(&p) {
                for e in z.entries().to_vec() {
                    let _ = z.read_entry(&e);
                }
            }
        }
        // A flipped data byte is caught by the CRC.
        let mut bad = good.clone();
        let at = good.windows(5).position(|w| w == b"value").unwrap();
        bad[at] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        let z = ZipArchive::open(&p).unwrap();
        let err = z.read("k").unwrap_err().to_string();
        assert!(err.contains("CRC-32") && err.contains("'k'"), "{err}");
    }
}
