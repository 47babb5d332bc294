//! One `.hspy` save or load per process, for `benches/hspy_compare.py`.
//!
//! ```text
//! cargo run --release --example hspy_bench -- save DATA.npy OUT.hspy [--threads N]
//! cargo run --release --example hspy_bench -- load IN.hspy [--threads N]
//! ```
//!
//! `save` reads a float32 or uint16 `.npy` array into memory (not timed), wraps it as a
//! signal with two signal axes (as `hs.signals.Signal2D(data)`), and writes it with the
//! default options (RosettaSciIO's chunks, gzip 4 + shuffle). `load` opens the file and
//! computes the first signal's data into memory (as `hs.load(path)`). Both print one JSON
//! line: `{"op", "seconds", "cpu_seconds", "bytes", "stored_bytes", "peak_rss_mib",
//! "checksum"}`, where `seconds` is the timed operation only (for a load, `open_seconds` of
//! it are the opening of the file and its metadata), `cpu_seconds` the process's user +
//! system CPU time over it, and `checksum` the sum of all values as f64 (not timed).
//!
//! The allocator is tuned as the `lazyspy` binary tunes it (set
//! `HSPY_BENCH_DEFAULT_MALLOC=1` for glibc's defaults).

use std::path::PathBuf;
use std::time::Instant;

use lazyspy::signal::{HspyWriteOptions, Signal, SignalData, open_hspy, write_hspy};
use lazyspy::{DynArray, ExecConfig, LazyArray};

fn peak_rss_mib() -> f64 {
    lazyspy::exec::peak_resident_bytes().map_or(f64::NAN, |b| b as f64 / (1 << 20) as f64)
}

/// The f64 sum of all values, without a converted copy of the array.
/// User + system CPU seconds of this process so far.
fn cpu() -> f64 {
    lazyspy::exec::process_cpu_seconds().map_or(f64::NAN, |(u, s)| u + s)
}

fn checksum(a: &DynArray) -> f64 {
    match a {
        DynArray::F32(x) => x.iter().map(|&v| v as f64).sum(),
        DynArray::U16(x) => x.iter().map(|&v| v as f64).sum(),
        other => other.cast_to::<f64>().iter().sum(),
    }
}

/// The allocator tuning of the `lazyspy` binary (`src/main.rs`): keep large chunk buffers
/// in one untrimmed heap instead of an mmap/munmap (and page faults) per chunk.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    const ONE_GIB: libc::c_int = 1 << 30;
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread
    // starts, and a rejected value leaves the default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, ONE_GIB);
        libc::mallopt(libc::M_TRIM_THRESHOLD, ONE_GIB);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() {
    if std::env::var_os("HSPY_BENCH_DEFAULT_MALLOC").is_none() {
        tune_allocator();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut pos = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--threads" {
            threads = args[i + 1].parse().expect("--threads N");
            i += 2;
        } else {
            pos.push(args[i].clone());
            i += 1;
        }
    }
    let cfg = ExecConfig::default().with_threads(threads);
    match pos.first().map(String::as_str) {
        Some("save") => {
            let npy = PathBuf::from(&pos[1]);
            let out = PathBuf::from(&pos[2]);
            let signal = if let Ok(a) = ndarray_npy::read_npy::<_, ndarray::ArrayD<f32>>(&npy) {
                let chunks = a.shape().to_vec();
                Signal::from_lazy(LazyArray::from_array(a, &chunks).unwrap().into_dyn(), 2, "")
            } else {
                let a: ndarray::ArrayD<u16> = ndarray_npy::read_npy(&npy).expect("f32 or u16 .npy");
                let chunks = a.shape().to_vec();
                Signal::from_lazy(LazyArray::from_array(a, &chunks).unwrap().into_dyn(), 2, "")
            };
            let bytes = signal.data.as_lazy().unwrap().dtype().size() as u64
                * signal.data.shape().iter().product::<usize>() as u64;
            let opts = HspyWriteOptions {
                overwrite: true,
                ..Default::default()
            };
            let (t, c) = (Instant::now(), cpu());
            let r = write_hspy(&out, &signal, &opts, &cfg).expect("write");
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{{\"op\": \"save\", \"seconds\": {secs:.4}, \"cpu_seconds\": {:.3}, \"bytes\": {bytes}, \"stored_bytes\": {}, \"chunks\": {:?}, \"peak_rss_mib\": {:.1}}}",
                cpu() - c,
                r.bytes_stored,
                r.chunks,
                peak_rss_mib()
            );
        }
        Some("load") => {
            let path = PathBuf::from(&pos[1]);
            let (t, c) = (Instant::now(), cpu());
            let signals = open_hspy(&path).expect("open");
            let open_secs = t.elapsed().as_secs_f64();
            let SignalData::Lazy(lazy) = &signals[0].data else {
                panic!("not numeric data")
            };
            let a = lazy.compute_with(&cfg).expect("compute");
            let secs = t.elapsed().as_secs_f64();
            let cpu_secs = cpu() - c;
            println!(
                "{{\"op\": \"load\", \"seconds\": {secs:.4}, \"open_seconds\": {open_secs:.4}, \"cpu_seconds\": {cpu_secs:.3}, \"bytes\": {}, \"peak_rss_mib\": {:.1}, \"checksum\": {}}}",
                a.nbytes(),
                peak_rss_mib(),
                checksum(&a)
            );
        }
        _ => {
            eprintln!("usage: hspy_bench save DATA.npy OUT.hspy | load IN.hspy [--threads N]");
            std::process::exit(2);
        }
    }
}
