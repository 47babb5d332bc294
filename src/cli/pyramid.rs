//! `lazyspy pyramid IN OUT`: an OME-Zarr multiscale image of IN's first signal (OME-NGFF
//! 0.4 on Zarr v2 or 0.5 on Zarr v3), all levels in one streaming pass within the memory
//! budget, with a progress bar and a summary.

use std::path::PathBuf;
use std::time::Instant;

use lazyspy::signal::ZspyCompressor;
use lazyspy::signal::ome_zarr::{OmeVersion, PyramidMethod, PyramidOptions, write_ome_zarr};
use serde_json::json;

use super::inputs::{check_distinct, open_signals, positive};
use super::progress::TaskBar;
use super::{CliError, GlobalOptions};

/// Arguments of `lazyspy pyramid`.
#[derive(clap::Args, Debug)]
pub struct PyramidArgs {
    /// Input: a .zspy store, a .hspy file, or image files (as for convert).
    input: String,
    /// Output directory (e.g. image.ome.zarr).
    output: PathBuf,
    /// Number of levels, level 0 included (default: until one chunk holds a level's plane).
    #[arg(long, value_parser = positive)]
    levels: Option<usize>,
    /// How each level is made from the one above: mean (2x2 block mean), gaussian
    /// (sigma 2/3, then every second sample) or nearest (every second sample).
    #[arg(long, default_value = "mean", value_parser = parse_method)]
    method: PyramidMethod,
    /// OME-NGFF version: 0.4 (Zarr v2) or 0.5 (Zarr v3).
    #[arg(long, default_value = "0.4", value_parser = parse_version)]
    version: OmeVersion,
    /// Chunk length along the downsampled axes (1 along the others).
    #[arg(long, default_value_t = 256, value_parser = positive)]
    chunks: usize,
    /// Version 0.5: store shards of this many chunks per downsampled axis.
    #[arg(long, value_parser = positive)]
    shard: Option<usize>,
    /// The downsampled (space) axes, array indices, e.g. 1,2 (default: the last two).
    #[arg(long, value_delimiter = ',')]
    axes: Option<Vec<usize>>,
    /// Compressor: blosc-zstd:1 (default), blosc-lz4:5[:bitshuffle], zstd:3, gzip:4, none
    /// (zlib:6 for 0.4 only).
    #[arg(long)]
    compressor: Option<String>,
    /// Replace an existing output.
    #[arg(long)]
    overwrite: bool,
}

fn parse_method(text: &str) -> Result<PyramidMethod, String> {
    PyramidMethod::parse(text).ok_or_else(|| format!("'{text}' is not mean, gaussian or nearest"))
}

fn parse_version(text: &str) -> Result<OmeVersion, String> {
    OmeVersion::parse(text).ok_or_else(|| format!("'{text}' is not 0.4 or 0.5"))
}

/// Runs `lazyspy pyramid`.
pub fn run(args: &PyramidArgs, global: &GlobalOptions) -> Result<(), CliError> {
    check_distinct(&args.input, &args.output)?;
    let (_, signals) = open_signals(&args.input)?;
    let signal = signals.first().ok_or_else(|| CliError::Input {
        path: args.input.clone(),
        msg: "holds no signal".into(),
    })?;
    let compressor = match &args.compressor {
        Some(text) => ZspyCompressor::parse(text).map_err(CliError::Usage)?,
        None => ZspyCompressor::default(),
    };
    let options = PyramidOptions {
        version: args.version,
        method: args.method,
        levels: args.levels,
        chunk: args.chunks,
        shard: args.shard,
        axes: args.axes.clone(),
        compressor,
        overwrite: args.overwrite,
        resume: global.resume,
        ..PyramidOptions::default()
    };
    let bar = TaskBar::new("pyramid", global.show_progress());
    let config = global.exec_config().with_progress(bar.callback());
    let started = Instant::now();
    let report = write_ome_zarr(&args.output, signal, &options, &config);
    bar.finish();
    let report = report?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = lazyspy::exec::peak_resident_bytes();
    if global.json {
        let levels: Vec<_> = report
            .levels
            .iter()
            .map(|l| {
                json!({
                    "path": l.path,
                    "shape": l.shape,
                    "chunks": l.chunks,
                    "stored_chunks": l.stored_chunks,
                    "scale": l.scale,
                    "translation": l.translation,
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "command": "pyramid",
                "input": args.input,
                "output": args.output.display().to_string(),
                "version": args.version.as_str(),
                "method": args.method.as_str(),
                "levels": levels,
                "chunks_written": report.chunks_written,
                "chunks_skipped": report.chunks_skipped,
                "bytes_stored": report.bytes_stored,
                "fold_peak_bytes": report.fold_peak_bytes,
                "seconds": seconds,
                "peak_rss_bytes": peak,
            })
        );
    } else if !global.quiet {
        let shapes: Vec<String> = report
            .levels
            .iter()
            .map(|l| format!("{:?}", l.shape))
            .collect();
        println!(
            "pyramid: wrote {} (OME-NGFF {}, {} levels: {}; {} chunks{}, {} stored) in \
             {seconds:.2} s, peak memory {}",
            args.output.display(),
            args.version.as_str(),
            report.levels.len(),
            shapes.join(" "),
            report.chunks_written,
            if report.chunks_skipped > 0 {
                format!(", {} already done", report.chunks_skipped)
            } else {
                String::new()
            },
            bytesize::ByteSize::b(report.bytes_stored).display().iec(),
            peak.map_or("unknown".to_string(), |p| bytesize::ByteSize::b(p)
                .display()
                .iec()
                .to_string()),
        );
    }
    Ok(())
}
