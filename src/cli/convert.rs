//! `lazyspy convert IN OUT` and `lazyspy rechunk IN OUT --chunks ...`: read every signal
//! of IN lazily and stream it to OUT (the format follows OUT's extension), with a progress
//! bar and a summary of time, throughput and peak memory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lazyspy::signal::Signal;
use serde_json::json;

use super::inputs::{WriteChoices, check_distinct, open_signals, positive, write_signals};
use super::progress::TaskBar;
use super::{CliError, GlobalOptions};

/// Arguments of `lazyspy convert`.
#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// Input: a .zspy store, a .hspy file, or image files (a quoted glob such as 'scans/*.tif').
    input: String,
    /// Output: .zspy (directory store, or zip with --zip) or .hspy.
    output: PathBuf,
    /// Chunk shape of the output data, e.g. 4,4,128,128 (default: the input's chunks).
    #[arg(long, value_delimiter = ',', value_parser = positive)]
    chunks: Option<Vec<usize>>,
    /// Compressor: blosc-zstd:1 (default for .zspy), blosc-lz4:5[:bitshuffle], zstd:3,
    /// gzip:4 (default for .hspy), zlib:6, none.
    #[arg(long)]
    compressor: Option<String>,
    /// Write a zip .zspy (one file) instead of a directory store.
    #[arg(long)]
    zip: bool,
    /// Replace an existing output.
    #[arg(long)]
    overwrite: bool,
}

/// Arguments of `lazyspy rechunk`.
#[derive(clap::Args, Debug)]
pub struct RechunkArgs {
    /// Input (as for convert).
    input: String,
    /// Output (as for convert).
    output: PathBuf,
    /// The new chunk shape, e.g. 64,256,256.
    #[arg(long, value_delimiter = ',', value_parser = positive, required = true)]
    chunks: Vec<usize>,
    /// Compressor (as for convert).
    #[arg(long)]
    compressor: Option<String>,
    /// Replace an existing output.
    #[arg(long)]
    overwrite: bool,
}

/// Runs `lazyspy convert`.
pub fn run(args: &ConvertArgs, global: &GlobalOptions) -> Result<(), CliError> {
    let (_, signals) = open_signals(&args.input)?;
    let choices = WriteChoices {
        chunks: args.chunks.clone(),
        compressor: args.compressor.clone(),
        zip: args.zip,
        overwrite: args.overwrite,
        resume: global.resume,
    };
    write_with_summary(
        "convert",
        &args.input,
        &args.output,
        &signals,
        &choices,
        global,
    )
}

/// Runs `lazyspy rechunk`.
pub fn run_rechunk(args: &RechunkArgs, global: &GlobalOptions) -> Result<(), CliError> {
    let (_, signals) = open_signals(&args.input)?;
    let choices = WriteChoices {
        chunks: Some(args.chunks.clone()),
        compressor: args.compressor.clone(),
        zip: false,
        overwrite: args.overwrite,
        resume: global.resume,
    };
    write_with_summary(
        "rechunk",
        &args.input,
        &args.output,
        &signals,
        &choices,
        global,
    )
}

/// Writes `signals` to `output` with a progress bar, then prints a summary line (or JSON).
pub fn write_with_summary(
    label: &str,
    input: &str,
    output: &Path,
    signals: &[Signal],
    choices: &WriteChoices,
    global: &GlobalOptions,
) -> Result<(), CliError> {
    check_distinct(input, output)?;
    let bar = TaskBar::new(label, global.show_progress());
    let config = global.exec_config().with_progress(bar.callback());
    let started = Instant::now();
    let written = write_signals(output, signals, choices, &config);
    bar.finish();
    let written = written?;
    let seconds = started.elapsed().as_secs_f64();
    let logical: u64 = signals
        .iter()
        .filter_map(|s| s.data.as_lazy())
        .map(|a| (a.shape().iter().product::<usize>() * a.dtype().size()) as u64)
        .sum();
    let peak = lazyspy::exec::peak_resident_bytes();
    for (path, why) in &written.dropped {
        eprintln!("lazyspy: warning: {path} not stored: {why}");
    }
    if global.json {
        println!(
            "{}",
            json!({
                "command": label,
                "input": input,
                "output": output.display().to_string(),
                "chunks_written": written.chunks_written,
                "chunks_skipped": written.chunks_skipped,
                "bytes_stored": written.bytes_stored,
                "data_bytes": logical,
                "seconds": seconds,
                "peak_rss_bytes": peak,
            })
        );
    } else if !global.quiet {
        println!(
            "{label}: wrote {} ({} chunks{}, {} of data stored as {}) in {seconds:.2} s, \
             {}/s, peak memory {}",
            output.display(),
            written.chunks_written,
            if written.chunks_skipped > 0 {
                format!(", {} already done", written.chunks_skipped)
            } else {
                String::new()
            },
            bytesize::ByteSize::b(logical).display().iec(),
            bytesize::ByteSize::b(written.bytes_stored).display().iec(),
            bytesize::ByteSize::b((logical as f64 / seconds.max(1e-9)) as u64)
                .display()
                .iec(),
            peak.map(|b| bytesize::ByteSize::b(b).display().iec().to_string())
                .unwrap_or_else(|| "unknown".into()),
        );
    }
    Ok(())
}
