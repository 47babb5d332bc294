//! `lazyspy demo [DIR]`: the scan-map job end to end on a synthetic folder of scan images.
//!
//! Makes (once; reused on later runs) 64 smooth-plus-noise float32 2048x2048 TIFF images in
//! `DIR` (default: `lazyspy-demo-scans` in the system temporary directory), then runs
//! image stack -> exact Gaussian filter (sigma 10, SciPy's reflect boundary) -> `.zspy`
//! (Blosc zstd 1 + shuffle, one chunk per image) streamed within the memory budget, and
//! prints time, throughput and peak memory. The same job from the command line is
//! `lazyspy filter gaussian --sigma 10 'DIR/*.tif' DIR/filtered.zspy`.

use std::path::PathBuf;
use std::time::Instant;

use lazyspy::io::images::{from_files, make_demo_scans};

use super::filter::gaussian_signals;
use super::inputs::{WriteChoices, write_signals};
use super::progress::TaskBar;
use super::{CliError, GlobalOptions};

/// Arguments of `lazyspy demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Folder of the synthetic scans and of the output (default: `lazyspy-demo-scans` in
    /// the system temporary directory).
    dir: Option<PathBuf>,
    /// Number of images.
    #[arg(long, default_value_t = 64)]
    images: usize,
    /// Image side length in pixels.
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Sigma of the Gaussian filter (pixels; truncated at 4 sigma).
    #[arg(long, default_value_t = 10.0)]
    sigma: f64,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// Runs the demo.
pub fn run(args: &DemoArgs, global: &GlobalOptions) -> Result<(), CliError> {
    if args.images == 0 || args.size == 0 {
        return Err(CliError::Usage(
            "demo needs at least one image of at least one pixel".into(),
        ));
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("lazyspy-demo-scans"));
    let scans = dir.join("scans");
    let say = |text: String| {
        if !global.quiet {
            println!("{text}");
        }
    };
    let t = Instant::now();
    let paths = make_demo_scans(&scans, args.images, args.size)
        .map_err(|e| CliError::Other(e.to_string()))?;
    say(format!(
        "{} scan images ({}x{} float32) ready in {} ({:.2} s)",
        paths.len(),
        args.size,
        args.size,
        scans.display(),
        t.elapsed().as_secs_f64()
    ));

    let t = Instant::now();
    let pattern = format!("{}/*.tif", scans.display());
    let stack = from_files(pattern.as_str()).map_err(|e| CliError::Other(e.to_string()))?;
    let bytes = stack
        .data
        .as_lazy()
        .map(|a| (a.shape().iter().product::<usize>() * a.dtype().size()) as u64)
        .unwrap_or(0);
    let filtered = gaussian_signals(
        &[stack],
        &[args.sigma],
        Some(&[1, 2]),
        lazyspy::filters::BoundaryMode::Reflect,
        4.0,
        &pattern,
    )?;
    let out = dir.join("filtered.zspy");
    let config = global.exec_config();
    say(format!(
        "stack {:?} -> Gaussian sigma {} -> {} (memory budget {:.0} MiB, {} threads)",
        filtered[0].data.shape(),
        args.sigma,
        out.display(),
        mib(config.memory_budget),
        config.threads
    ));
    let bar = TaskBar::new("demo", global.show_progress());
    let config = config.with_progress(bar.callback());
    let choices = WriteChoices {
        overwrite: true,
        ..WriteChoices::default()
    };
    let written = write_signals(&out, &filtered, &choices, &config);
    bar.finish();
    let written = written?;
    let secs = t.elapsed().as_secs_f64();
    say(format!(
        "done in {secs:.2} s: {} images, {:.0} MiB read, {:.0} MiB written as {:.0} MiB, \
         {:.0} MiB/s ({:.1} images/s)",
        written.chunks_written,
        mib(bytes),
        mib(bytes),
        mib(written.bytes_stored),
        mib(bytes) / secs,
        written.chunks_written as f64 / secs,
    ));
    if let Some(peak) = lazyspy::exec::peak_resident_bytes() {
        say(format!("peak resident memory: {:.0} MiB", mib(peak)));
    }
    Ok(())
}
