//! `lazyspy info PATH [--json]`: shape, dtype, chunks, compressor, axes and the metadata
//! tree of every signal, reading metadata only.

use super::inputs::open_signals;
use super::{CliError, GlobalOptions, json_out};
use lazyspy::signal::SignalData;
use serde_json::json;

/// Arguments of `lazyspy info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// A .zspy store, a .hspy file, or image files (a quoted glob).
    path: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `lazyspy info`.
pub fn run(args: &InfoArgs, global: &GlobalOptions) -> Result<(), CliError> {
    let (format, signals) = open_signals(&args.path)?;
    if args.json || global.json {
        let doc = json!({
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
