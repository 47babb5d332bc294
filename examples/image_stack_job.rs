//! The read-and-filter half of the scan-map job on real files: make (or reuse) the demo
//! scan folder, open it as a lazy image stack, Gaussian-filter every image (sigma 10) and
//! stream the results into a checksum sink. Prints one JSON line with the time to make
//! the folder, the job time, CPU time and peak RSS.
//!
//! `cargo run --release --example image_stack_job -- [DIR] [N] [SIZE] [BUDGET_MIB] [read-only]`
//! (defaults: /tmp/lazyspy-demo-scans 64 2048 256).

use std::time::Instant;

use lazyspy::filters::{GaussianParams, lazy_gaussian};
use lazyspy::io::ChunkSink;
use lazyspy::io::images::{ImageStack, make_demo_scans};
use lazyspy::{BoxError, DynArray, ExecConfig, Region};
use parking_lot::Mutex;

struct ChecksumSink(Mutex<f64>);

impl ChunkSink for ChecksumSink {
    fn write_chunk(&self, _: &[usize], _: &Region, data: DynArray) -> Result<(), BoxError> {
        let s: f64 = data.into_typed::<f32>()?.iter().map(|&v| v as f64).sum();
        *self.0.lock() += s;
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .map_or("/tmp/lazyspy-demo-scans", String::as_str);
    let n: usize = args.get(2).map_or(Ok(64), |s| s.parse())?;
    let size: usize = args.get(3).map_or(Ok(2048), |s| s.parse())?;
    let budget: u64 = args.get(4).map_or(Ok(256), |s| s.parse())?;

    let t = Instant::now();
    let paths = make_demo_scans(std::path::Path::new(dir), n, size)?;
    let make_s = t.elapsed().as_secs_f64();

    let cpu0 = lazyspy::exec::process_cpu_seconds().map_or(0.0, |(u, s)| u + s);
    let t = Instant::now();
    let stack = ImageStack::open(paths)?;
    let open_s = t.elapsed().as_secs_f64();
    let data = stack.into_lazy().into_typed::<f32>()?;
    let filtered = if args.get(5).is_some_and(|a| a == "read-only") {
        data
    } else {
        lazy_gaussian(&data, &GaussianParams::new(vec![10.0, 10.0], vec![1, 2]))?
    };
    let sink = ChecksumSink(Mutex::new(0.0));
    let config = ExecConfig::default().with_memory_budget(budget << 20);
    filtered.store(&sink, &config)?;
    let job_s = t.elapsed().as_secs_f64();
    let cpu = lazyspy::exec::process_cpu_seconds().map_or(0.0, |(u, s)| u + s) - cpu0;
    println!(
        "{{\"images\": {n}, \"size\": {size}, \"make_or_reuse_s\": {make_s:.3}, \"open_s\": {open_s:.4}, \"job_s\": {job_s:.3}, \"job_cpu_s\": {cpu:.3}, \"peak_rss_mib\": {:.1}, \"checksum\": {:e}}}",
        lazyspy::exec::peak_resident_bytes().unwrap_or(0) as f64 / 1048576.0,
        *sink.0.lock()
    );
    Ok(())
}
