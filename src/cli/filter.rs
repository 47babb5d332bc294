//! `lazyspy filter gaussian --sigma 10[,10] [--axes 1,2] [--mode reflect] IN OUT`: an exact
//! (SciPy-equal) Gaussian filter of every signal, streamed from IN to OUT.

use std::path::PathBuf;

use lazyspy::filters::{BoundaryMode, GaussianParams, lazy_gaussian};
use lazyspy::signal::{Signal, SignalData};
use lazyspy::{DType, LazyArray};

use super::convert::write_with_summary;
use super::inputs::{WriteChoices, open_signals, positive};
use super::{CliError, GlobalOptions};

/// Arguments of `lazyspy filter`.
#[derive(clap::Args, Debug)]
pub struct FilterArgs {
    #[command(subcommand)]
    kind: FilterKind,
}

/// The filters.
#[derive(clap::Subcommand, Debug)]
enum FilterKind {
    /// Gaussian filter, equal to scipy.ndimage.gaussian_filter (float32 output, float64
    /// for float64 input).
    Gaussian(GaussianArgs),
}

/// Arguments of `lazyspy filter gaussian`.
#[derive(clap::Args, Debug)]
pub struct GaussianArgs {
    /// Standard deviation in pixels: one value for every filtered axis, or one per axis
    /// (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    sigma: Vec<f64>,
    /// The filtered axes (array indices; default: the signal axes).
    #[arg(long, value_delimiter = ',')]
    axes: Option<Vec<usize>>,
    /// Boundary mode: reflect (SciPy's default), mirror, nearest, wrap, constant.
    #[arg(long, default_value = "reflect")]
    mode: String,
    /// Constant value outside the array for --mode constant.
    #[arg(long, default_value_t = 0.0)]
    cval: f64,
    /// Kernel radius in sigmas (SciPy's truncate).
    #[arg(long, default_value_t = 4.0)]
    truncate: f64,
    /// Input: a .zspy store, a .hspy file, or image files (a quoted glob).
    input: String,
    /// Output: .zspy or .hspy.
    output: PathBuf,
    /// Chunk shape of the output (default: the input's chunks).
    #[arg(long, value_delimiter = ',', value_parser = positive)]
    chunks: Option<Vec<usize>>,
    /// Compressor of the output (see `lazyspy convert --help`).
    #[arg(long)]
    compressor: Option<String>,
    /// Replace an existing output.
    #[arg(long)]
    overwrite: bool,
}

fn mode(name: &str, cval: f64) -> Result<BoundaryMode, CliError> {
    Ok(match name {
        "reflect" => BoundaryMode::Reflect,
        "mirror" => BoundaryMode::Mirror,
        "nearest" => BoundaryMode::Nearest,
        "wrap" => BoundaryMode::Wrap,
        "constant" => BoundaryMode::Constant(cval),
        other => {
            return Err(CliError::Usage(format!(
                "--mode '{other}': expected reflect, mirror, nearest, wrap or constant"
            )));
        }
    })
}

/// Gaussian-filters every signal (float32 output; float64 for float64 input). `axes`:
/// default the signal axes of each signal.
pub fn gaussian_signals(
    signals: &[Signal],
    sigma: &[f64],
    axes: Option<&[usize]>,
    mode: BoundaryMode,
    truncate: f64,
    path: &str,
) -> Result<Vec<Signal>, CliError> {
    signals
        .iter()
        .map(|s| gaussian_signal(s, sigma, axes, mode, truncate, path))
        .collect()
}

fn gaussian_signal(
    s: &Signal,
    sigma: &[f64],
    axes: Option<&[usize]>,
    mode: BoundaryMode,
    truncate: f64,
    path: &str,
) -> Result<Signal, CliError> {
    let SignalData::Lazy(data) = &s.data else {
        return Err(CliError::Input {
            path: path.into(),
            msg: format!(
                "experiment '{}' does not hold numeric data",
                s.tree.experiment_name()
            ),
        });
    };
    let axes = axes
        .map(<[usize]>::to_vec)
        .unwrap_or_else(|| s.signal_axes());
    if axes.is_empty() {
        return Err(CliError::Usage(
            "the signal has no signal axis; give --axes".into(),
        ));
    }
    if let Some(&bad) = axes.iter().find(|&&a| a >= data.shape().len()) {
        return Err(CliError::Usage(format!(
            "--axes: axis {bad} does not exist (the data has {} axes)",
            data.shape().len()
        )));
    }
    let sigma = match sigma.len() {
        1 => vec![sigma[0]; axes.len()],
        n if n == axes.len() => sigma.to_vec(),
        n => {
            return Err(CliError::Usage(format!(
                "--sigma has {n} values for {} axes",
                axes.len()
            )));
        }
    };
    if let Some(bad) = sigma.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
        return Err(CliError::Usage(format!(
            "--sigma {bad}: must be a finite value >= 0"
        )));
    }
    let params = GaussianParams::new(sigma, axes)
        .with_mode(mode)
        .with_truncate(truncate);
    let compute = |e| CliError::Compute {
        path: path.into(),
        source: e,
    };
    let filtered = if data.dtype() == DType::F64 {
        let typed: LazyArray<f64> = data.cast();
        lazy_gaussian(&typed, &params).map_err(compute)?.into_dyn()
    } else {
        let typed: LazyArray<f32> = data.cast();
        lazy_gaussian(&typed, &params).map_err(compute)?.into_dyn()
    };
    s.clone().with_data(filtered).map_err(CliError::Usage)
}

/// Runs `lazyspy filter`.
pub fn run(args: &FilterArgs, global: &GlobalOptions) -> Result<(), CliError> {
    let FilterKind::Gaussian(g) = &args.kind;
    let (_, signals) = open_signals(&g.input)?;
    let filtered = gaussian_signals(
        &signals,
        &g.sigma,
        g.axes.as_deref(),
        mode(&g.mode, g.cval)?,
        g.truncate,
        &g.input,
    )?;
    let choices = WriteChoices {
        chunks: g.chunks.clone(),
        compressor: g.compressor.clone(),
        zip: false,
        overwrite: g.overwrite,
        resume: global.resume,
    };
    write_with_summary("gaussian", &g.input, &g.output, &filtered, &choices, global)
}
