//! `nbtrail-samplegen`: writes the sample set or a benchmark corpus. See the crate docs.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use nbtrail_samplegen::{BenchShape, write_bench, write_sample_set};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "Deterministic generator of realistic Databricks audit logs"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Shape {
    Delivered,
    SystemTable,
    Azure,
    /// Shape B as Parquet.
    SystemTableParquet,
    /// Azure resource logs (what diagnostic settings stream), JSON lines.
    AzureResourceLog,
    /// Those resource logs as an Event Hubs Capture Avro file.
    EventHubsCapture,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write the sample set (all three shapes, the planted incident, MANIFEST.json) into a folder.
    Sample {
        /// Output folder (its previous contents are replaced).
        #[arg(long, default_value = "sample-logs")]
        out: PathBuf,
        /// Seed.
        #[arg(long, default_value_t = 2024)]
        seed: u64,
    },
    /// Stream a large corpus into one file (`.gz` compresses).
    Bench {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// At least this many events.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Shape.
        #[arg(long, value_enum, default_value_t = Shape::Delivered)]
        shape: Shape,
        /// Seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Sample { out, seed } => {
            for sub in ["delivered", "system-table", "azure", "event-hubs"] {
                let p = out.join(sub);
                if p.exists() {
                    std::fs::remove_dir_all(&p).with_context(|| format!("{}", p.display()))?;
                }
            }
            let t = write_sample_set(&out, seed).with_context(|| format!("{}", out.display()))?;
            eprintln!(
                "wrote {} files to {}: {} unique events, {} duplicates, {} malformed records",
                t.records.len(),
                out.display(),
                t.unique_events,
                t.duplicates,
                t.malformed.values().map(Vec::len).sum::<usize>()
            );
        }
        Cmd::Bench {
            out,
            events,
            shape,
            seed,
        } => {
            let shape = match shape {
                Shape::Delivered => BenchShape::Delivered,
                Shape::SystemTable => BenchShape::SystemTable,
                Shape::Azure => BenchShape::Azure,
                Shape::SystemTableParquet => BenchShape::SystemTableParquet,
                Shape::AzureResourceLog => BenchShape::AzureResourceLog,
                Shape::EventHubsCapture => BenchShape::EventHubsCapture,
            };
            let n = write_bench(&out, events, seed, shape)
                .with_context(|| format!("{}", out.display()))?;
            eprintln!("wrote {n} events to {}", out.display());
        }
    }
    Ok(())
}
