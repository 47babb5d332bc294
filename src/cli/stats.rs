//! `lazyspy stats PATH [--json]`: one streaming pass over every signal's data giving the
//! element count, NaN count, minimum, maximum, sum and mean (complex data: real part).

use std::time::Instant;

use lazyspy::io::ChunkSink;
use lazyspy::signal::SignalData;
use lazyspy::{BoxError, DynArray, Region};
use parking_lot::Mutex;
use serde_json::json;

use super::inputs::open_signals;
use super::progress::TaskBar;
use super::{CliError, GlobalOptions};

/// Arguments of `lazyspy stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// A .zspy store, a .hspy file, or image files (a quoted glob).
    path: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Running totals (merged from every chunk).
#[derive(Clone, Copy, Debug)]
struct Totals {
    count: u64,
    nans: u64,
    min: f64,
    max: f64,
    sum: f64,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            count: 0,
            nans: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
        }
    }
}

impl Totals {
    fn merge(&mut self, o: &Totals) {
        self.count += o.count;
        self.nans += o.nans;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
    }
}

/// A sink that folds every chunk into [`Totals`] as it arrives.
#[derive(Default)]
struct StatsSink {
    totals: Mutex<Totals>,
}

impl ChunkSink for StatsSink {
    fn write_chunk(&self, _: &[usize], _: &Region, data: DynArray) -> Result<(), BoxError> {
        // Element by element, without a converted copy of the chunk.
        let t = lazyspy::with_dyn!(&data, a, _T => {
            let mut t = Totals::default();
            for v in a.iter() {
                let v: f64 = lazyspy::Element::cast(*v);
                t.count += 1;
                if v.is_nan() {
                    t.nans += 1;
                } else {
                    t.min = t.min.min(v);
                    t.max = t.max.max(v);
                    t.sum += v;
                }
            }
            t
        });
        self.totals.lock().merge(&t);
        Ok(())
    }
}

fn num(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        serde_json::Value::Null
    }
}

/// Runs `lazyspy stats`.
pub fn run(args: &StatsArgs, global: &GlobalOptions) -> Result<(), CliError> {
    let (_, signals) = open_signals(&args.path)?;
    let mut rows = Vec::new();
    for s in &signals {
        let SignalData::Lazy(data) = &s.data else {
            rows.push(json!({
                "experiment": s.tree.experiment_name(),
                "shape": s.data.shape(),
                "dtype": "object",
                "skipped": "not numeric data",
            }));
            continue;
        };
        let bar = TaskBar::new("stats", global.show_progress());
        let config = global.exec_config().with_progress(bar.callback());
        let sink = StatsSink::default();
        let started = Instant::now();
        let result = data.store(&sink, &config);
        bar.finish();
        result.map_err(|e| CliError::Compute {
            path: args.path.clone(),
            source: e,
        })?;
        let t = *sink.totals.lock();
        let valid = t.count - t.nans;
        rows.push(json!({
            "experiment": s.tree.experiment_name(),
            "shape": data.shape(),
            "dtype": data.dtype().name(),
            "count": t.count,
            "nan_count": t.nans,
            "min": if valid > 0 { num(t.min) } else { serde_json::Value::Null },
            "max": if valid > 0 { num(t.max) } else { serde_json::Value::Null },
            "sum": num(t.sum),
            "mean": if valid > 0 { num(t.sum / valid as f64) } else { serde_json::Value::Null },
            "seconds": started.elapsed().as_secs_f64(),
        }));
    }
    if args.json || global.json {
        println!("{}", json!({"file": args.path, "signals": rows}));
    } else if !global.quiet {
        for r in rows {
            println!(
                "[{}] {} {}: min {} max {} mean {} sum {} ({} NaN) in {:.2} s",
                r["experiment"].as_str().unwrap_or(""),
                r["dtype"].as_str().unwrap_or(""),
                r["shape"],
                r["min"],
                r["max"],
                r["mean"],
                r["sum"],
                r["nan_count"],
                r["seconds"].as_f64().unwrap_or(0.0),
            );
        }
    }
    Ok(())
}
