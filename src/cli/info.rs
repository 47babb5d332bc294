//! `lazyspy info PATH [--json]`: shape, dtype, chunks, compressor, axes and the metadata
//! tree of every signal, reading metadata only.

use super::inputs::{Format, open_signals};
use super::{CliError, GlobalOptions, json_out};
use lazyspy::signal::SignalData;
use lazyspy::signal::ome_zarr::OmeImage;
use serde_json::json;

/// Arguments of `lazyspy info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// A .zspy store, a .hspy file, an OME-Zarr image, or image files (a quoted glob).
    path: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `lazyspy info`.
pub fn run(args: &InfoArgs, global: &GlobalOptions) -> Result<(), CliError> {
    let (format, signals) = open_signals(&args.path)?;
    let ome = match format {
        Format::OmeZarr => Some(OmeImage::open(&args.path)?),
        _ => None,
    };
    if args.json || global.json {
        let mut doc = json!({
            "file": args.path,
            "format": format.name(),
            "signals": signals
                .iter()
                .map(|s| {
                    let mut j = json_out::signal_tree(&s.tree, true);
                    j["shape"] = json!(s.data.shape());
                    if let SignalData::Lazy(a) = &s.data {
                        j["dtype"] = json!(a.dtype().name());
                    }
                    j
                })
                .collect::<Vec<_>>(),
        });
        if let Some(img) = &ome {
            doc["ome"] = ome_json(img);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON values serialise")
        );
        return Ok(());
    }
    let mut out = String::new();
    out.push_str(&format!(
        "{} ({}), {} signal(s)\n",
        args.path,
        format.name(),
        signals.len()
    ));
    if let Some(img) = &ome {
        out.push_str(&ome_text(img));
    }
    for s in &signals {
        let t = &s.tree;
        let dtype = match &s.data {
            SignalData::Lazy(a) => a.dtype().name().to_string(),
            SignalData::InMemory(a) => a.dtype.numpy_name(),
        };
        let total: usize = s.data.shape().iter().product();
        out.push_str(&format!(
            "\n[{}] title {:?}, signal_type {:?}\n  data: {} {:?}, chunks {:?}{}\n",
            t.experiment_name(),
            t.title().unwrap_or(""),
            t.signal_type().unwrap_or(""),
            dtype,
            s.data.shape(),
            t.data.chunks,
            if t.is_ragged() { ", ragged" } else { "" },
        ));
        if let SignalData::Lazy(a) = &s.data {
            out.push_str(&format!(
                "  size: {} elements, {}\n",
                total,
                bytesize::ByteSize::b((total * a.dtype().size()) as u64)
                    .display()
                    .iec()
            ));
        }
        if let Some(c) = t.data.storage.get("compressor") {
            out.push_str(&format!("  compressor: {}\n", json_out::value(c)));
        }
        out.push_str("  axes:\n");
        for (i, a) in t.axes.iter().enumerate() {
            let kind = match (a.scale(), a.offset()) {
                (Some(scale), Some(offset)) => format!("scale {scale}, offset {offset}"),
                _ => a.class_name().to_string(),
            };
            out.push_str(&format!(
                "    {i}: {:<12} size {:<6} {:<10} {:<10} {}\n",
                a.name().unwrap_or("<undefined>"),
                a.size().map(|n| n.to_string()).unwrap_or_default(),
                if a.navigate() == Some(true) {
                    "navigate"
                } else {
                    "signal"
                },
                a.units().unwrap_or(""),
                kind
            ));
        }
        out.push_str("  metadata:\n");
        json_out::tree_text(&t.metadata, 4, &mut out);
        if !t.original_metadata.is_empty() {
            out.push_str("  original_metadata:\n");
            json_out::tree_text(&t.original_metadata, 4, &mut out);
        }
    }
    if !global.quiet {
        print!("{out}");
    }
    Ok(())
}

/// The OME-Zarr summary of `info --json`: version, name, axes and levels (the signal shown
/// is level 0).
fn ome_json(img: &OmeImage) -> serde_json::Value {
    json!({
        "version": img.version(),
        "name": img.name(),
        "level": 0,
        "axes": img.axes().iter().map(|a| json!({
            "name": a.name, "type": a.kind.as_str(), "unit": a.unit,
        })).collect::<Vec<_>>(),
        "levels": img.levels().iter().map(|l| json!({
            "path": l.path, "shape": l.shape, "chunks": l.chunks, "dtype": l.dtype.name(),
            "scale": l.scale, "translation": l.translation,
        })).collect::<Vec<_>>(),
    })
}

/// `OME-Zarr v0.4, 3 level(s): 0 (2,21,18) 1 (2,11,9) 2 (2,6,5); axes c y[micrometer] x[micrometer]`
fn ome_text(img: &OmeImage) -> String {
    let dims = |v: &[usize]| {
        v.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let levels: Vec<String> = img
        .levels()
        .iter()
        .map(|l| format!("{} ({})", l.path, dims(&l.shape)))
        .collect();
    let axes: Vec<String> = img
        .axes()
        .iter()
        .map(|a| match &a.unit {
            Some(u) => format!("{}[{u}]", a.name),
            None => a.name.clone(),
        })
        .collect();
    format!(
        "OME-Zarr v{}, {} level(s): {}; axes {} (showing level 0)\n",
        img.version(),
        img.levels().len(),
        levels.join(" "),
        axes.join(" ")
    )
}
