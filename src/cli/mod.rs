//! Command-line interface: argument parsing, progress bars, one-line errors.
//!
//! Every command returns a `Result`; `main` prints an error as one line on stderr and
//! exits with status 1 (2 for usage errors, from clap). No user mistake reaches a panic.

mod convert;
mod demo;
mod filter;
mod info;
mod inputs;
mod json_out;
mod progress;
mod pyramid;
mod stats;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

/// A failed command, printed as one line.
#[derive(thiserror::Error, Debug)]
pub enum CliError {
    /// A wrong combination of arguments or values.
    #[error("{0}")]
    Usage(String),
    /// An input that cannot be used.
    #[error("{path}: {msg}")]
    Input {
        /// The input as given.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// Reading or writing a HyperSpy file failed (the error names the file and key).
    #[error(transparent)]
    Signal(#[from] lazyspy::signal::SignalError),
    /// Computing failed (the error names the node and chunk).
    #[error("{path}: {source}")]
    Compute {
        /// The input or output involved.
        path: String,
        /// The engine's error.
        #[source]
        source: lazyspy::Error,
    },
    /// Any other error of a command.
    #[error("{0}")]
    Other(String),
}

/// Options shared by every command.
#[derive(clap::Args, Debug, Clone)]
pub struct GlobalOptions {
    /// Memory budget for chunk data, e.g. 256MiB or 2GiB (default: half the RAM).
    #[arg(long, global = true, value_parser = parse_bytes)]
    pub memory_limit: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Do not show progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Complete an interrupted write of the same job (chunks already written are kept).
    #[arg(long, global = true)]
    pub resume: bool,
    /// Print nothing but errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print machine-readable JSON where a command has a result to report.
    #[arg(long, global = true)]
    pub json: bool,
}

impl GlobalOptions {
    /// The execution configuration these options ask for.
    pub fn exec_config(&self) -> lazyspy::ExecConfig {
        let mut config = lazyspy::ExecConfig::default();
        if let Some(bytes) = self.memory_limit {
            config = config.with_memory_budget(bytes);
        }
        if let Some(threads) = self.threads {
            config = config.with_threads(threads);
        }
        config
    }

    /// Whether to draw progress bars: not asked away, and stderr is a terminal.
    pub fn show_progress(&self) -> bool {
        !self.no_progress && !self.quiet && std::io::stderr().is_terminal()
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "lazyspy",
    version,
    about = "Lazy, out-of-core processing of HyperSpy signals within a memory budget"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalOptions,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show shape, dtype, chunks, compressor, axes and metadata of a file (metadata only).
    Info(info::InfoArgs),
    /// Convert between .zspy, .hspy and image stacks (the format follows the extension).
    Convert(convert::ConvertArgs),
    /// Write a copy with another chunk shape, within the memory budget.
    Rechunk(convert::RechunkArgs),
    /// Filter every signal (exact SciPy-equal kernels) and write the result.
    Filter(filter::FilterArgs),
    /// Write an OME-Zarr multiscale image (0.4 or 0.5) of a signal, all levels in one pass.
    Pyramid(pyramid::PyramidArgs),
    /// Minimum, maximum, mean and sum of every signal's data, in one streaming pass.
    Stats(stats::StatsArgs),
    /// The scan-map job on a synthetic folder of 64 TIFF scans (made once): stack ->
    /// Gaussian sigma 10 -> .zspy, reporting time, throughput and peak memory.
    Demo(demo::DemoArgs),
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("'{text}' is not a size like 256MiB or 2GiB: {e}"))
}

/// Runs the command line; returns the process exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let outcome = match &cli.command {
        Command::Info(args) => info::run(args, &cli.global),
        Command::Convert(args) => convert::run(args, &cli.global),
        Command::Rechunk(args) => convert::run_rechunk(args, &cli.global),
        Command::Filter(args) => filter::run(args, &cli.global),
        Command::Stats(args) => stats::run(args, &cli.global),
        Command::Pyramid(args) => pyramid::run(args, &cli.global),
        Command::Demo(args) => demo::run(args, &cli.global),
    };
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("lazyspy: error: {e}");
            1
        }
    }
}
