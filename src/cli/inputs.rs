//! Where signals come from and go to: the format of a path (by extension, or by content
//! for directories), opening every signal of an input and writing signals to an output.

use std::path::Path;

use lazyspy::ExecConfig;
use lazyspy::signal::{
    HspyCompression, HspyWriteOptions, Signal, ZspyWriteOptions, ZspyWriteReport, open_hspy,
    open_zspy, write_hspy, write_zspy_signals,
};

use lazyspy::signal::ome_zarr::{is_ome_zarr, open_ome_zarr};

use super::CliError;

/// The formats the command line reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// HyperSpy's Zarr format (directory or zip).
    Zspy,
    /// HyperSpy's HDF5 format (`.hspy`, `.hdf5`).
    Hspy,
    /// A stack of image files (a glob, a folder, or one image file).
    Images,
    /// An OME-Zarr multiscale image (a directory whose root has OME `multiscales`).
    OmeZarr,
}

impl Format {
    /// The name used in messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Format::Zspy => "zspy",
            Format::Hspy => "hspy",
            Format::Images => "images",
            Format::OmeZarr => "ome-zarr",
        }
    }
}

const IMAGE_EXTENSIONS: [&str; 7] = ["tif", "tiff", "npy", "png", "jpg", "jpeg", "btf"];

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// The format of an input: a glob or image extension is a stack of images, a directory
/// whose root attributes hold OME `multiscales` is an OME-Zarr image (whatever its name),
/// `.zspy` and `.hspy`/`.hdf5` by extension, another directory by its content (`.zgroup`:
/// Zarr; image files: a stack).
pub fn input_format(spec: &str) -> Result<Format, CliError> {
    if spec.contains(['*', '?', '[']) {
        return Ok(Format::Images);
    }
    let path = Path::new(spec);
    if path.is_dir() && is_ome_zarr(path) {
        return Ok(Format::OmeZarr);
    }
    match extension(path).as_deref() {
        Some("zspy") | Some("zarr") => return Ok(Format::Zspy),
        Some("hspy") | Some("hdf5") | Some("h5") => return Ok(Format::Hspy),
        Some(e) if IMAGE_EXTENSIONS.contains(&e) => return Ok(Format::Images),
        _ => {}
    }
    if !path.exists() {
        return Err(CliError::Input {
            path: spec.into(),
            msg: "no such file or directory".into(),
        });
    }
    if path.is_dir() {
        if path.join(".zgroup").exists() || path.join(".zmetadata").exists() {
            return Ok(Format::Zspy);
        }
        return Ok(Format::Images);
    }
    Err(CliError::Input {
        path: spec.into(),
        msg: "unknown format (expected .zspy, .hspy/.hdf5, or image files: .tif, .npy, \
              .png, .jpg, or a quoted glob such as 'scans/*.tif')"
            .into(),
    })
}

/// The format of an output, from its extension.
pub fn output_format(path: &Path) -> Result<Format, CliError> {
    match extension(path).as_deref() {
        Some("zspy") | Some("zarr") => Ok(Format::Zspy),
        Some("hspy") | Some("hdf5") | Some("h5") => Ok(Format::Hspy),
        _ => Err(CliError::Usage(format!(
            "{}: the output format follows the extension: .zspy or .hspy",
            path.display()
        ))),
    }
}

/// Every signal of `spec` (lazy: only metadata is read).
pub fn open_signals(spec: &str) -> Result<(Format, Vec<Signal>), CliError> {
    let format = input_format(spec)?;
    let signals: Vec<Signal> = match format {
        Format::Zspy => open_zspy(spec)?,
        Format::Hspy => open_hspy(spec)?,
        Format::OmeZarr => vec![open_ome_zarr(spec, 0)?],
        Format::Images => {
            vec![
                lazyspy::io::images::from_files(spec).map_err(|e| CliError::Input {
                    path: spec.into(),
                    msg: e.to_string(),
                })?,
            ]
        }
    };
    if signals.is_empty() {
        return Err(CliError::Input {
            path: spec.into(),
            msg: "holds no signal".into(),
        });
    }
    Ok((format, signals))
}

/// How to write an output.
#[derive(Clone, Debug, Default)]
pub struct WriteChoices {
    /// Chunk shape of `data` (default: the data's own).
    pub chunks: Option<Vec<usize>>,
    /// The compressor, as given on the command line.
    pub compressor: Option<String>,
    /// A zip `.zspy`.
    pub zip: bool,
    /// Replace an existing output.
    pub overwrite: bool,
    /// Complete an interrupted write.
    pub resume: bool,
}

/// What a write did, for the summary line.
pub struct Written {
    /// Data chunks written.
    pub chunks_written: usize,
    /// Data chunks skipped (resume).
    pub chunks_skipped: usize,
    /// Bytes stored.
    pub bytes_stored: u64,
    /// Values the format could not hold.
    pub dropped: Vec<(String, String)>,
}

impl From<ZspyWriteReport> for Written {
    fn from(r: ZspyWriteReport) -> Self {
        Written {
            chunks_written: r.chunks_written,
            chunks_skipped: r.chunks_skipped,
            bytes_stored: r.bytes_stored,
            dropped: r.dropped,
        }
    }
}

/// Writes `signals` to `out` in the format of its extension.
pub fn write_signals(
    out: &Path,
    signals: &[Signal],
    choices: &WriteChoices,
    exec: &ExecConfig,
) -> Result<Written, CliError> {
    match output_format(out)? {
        Format::Zspy => {
            let mut opts = ZspyWriteOptions {
                chunks: choices.chunks.clone(),
                zip: choices.zip,
                overwrite: choices.overwrite,
                resume: choices.resume,
                ..ZspyWriteOptions::default()
            };
            if let Some(c) = &choices.compressor {
                opts.compressor = lazyspy::signal::ZspyCompressor::parse(c)
                    .map_err(|e| CliError::Usage(format!("--compressor {e}")))?;
            }
            Ok(write_zspy_signals(out, signals, &opts, exec)?.into())
        }
        Format::Hspy => {
            if choices.zip {
                return Err(CliError::Usage(
                    "--zip applies to .zspy outputs only".into(),
                ));
            }
            if choices.resume {
                return Err(CliError::Usage(format!(
                    "{}: an .hspy file is written whole to a temporary file and renamed \
                     when complete, so there is nothing to resume: run without --resume",
                    out.display()
                )));
            }
            let [signal] = signals else {
                return Err(CliError::Usage(format!(
                    "{}: the .hspy writer writes one signal and the input holds {}; \
                     write a .zspy, which keeps every experiment",
                    out.display(),
                    signals.len()
                )));
            };
            let mut opts = HspyWriteOptions {
                chunks: choices.chunks.clone(),
                overwrite: choices.overwrite,
                ..HspyWriteOptions::default()
            };
            if let Some(c) = &choices.compressor {
                opts.compression = parse_hspy_compression(c)?;
            }
            let r = write_hspy(out, signal, &opts, exec)?;
            Ok(Written {
                chunks_written: r.chunks_written,
                chunks_skipped: 0,
                bytes_stored: r.bytes_stored,
                dropped: r.dropped,
            })
        }
        Format::Images | Format::OmeZarr => unreachable!("output_format gives zspy or hspy"),
    }
}

/// `gzip:4`, `gzip` (level 4), `lzf`, `none`.
fn parse_hspy_compression(text: &str) -> Result<HspyCompression, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "--compressor '{text}': an .hspy output takes gzip:0..9, lzf or none"
        ))
    };
    match text.split_once(':') {
        None if text == "gzip" => Ok(HspyCompression::Gzip(4)),
        None if text == "lzf" => Ok(HspyCompression::Lzf),
        None if text == "none" => Ok(HspyCompression::None),
        Some(("gzip", level)) => match level.parse::<u32>() {
            Ok(l) if l <= 9 => Ok(HspyCompression::Gzip(l)),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// Refuses to write over the input itself (an overwrite would delete what is being read).
pub fn check_distinct(input: &str, out: &Path) -> Result<(), CliError> {
    let a = std::fs::canonicalize(input).ok();
    let b = std::fs::canonicalize(out).ok();
    if a.is_some() && a == b {
        return Err(CliError::Usage(format!(
            "{}: the output is the input; write to another path",
            out.display()
        )));
    }
    Ok(())
}

/// Parses one chunk length (a positive integer).
pub fn positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("chunk lengths must be positive".into()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("'{text}' is not a positive integer")),
    }
}
