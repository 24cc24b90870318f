//! `nbtrail runs`: List ingest runs (who, when, what, counts).

use crate::*;

/// The arguments of `nbtrail runs`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(Args { case, json }: Args) -> Result<()> {
    let c = open(&case)?;
    let r = c.runs()?;
    if json {
        print_json(&r)
    } else {
        for r in &r {
            println!(
                "run {}  {} → {}  by {}@{}  files {}  lines {}  events {}  duplicates {}  conflicts {}  errors {}",
                r.id,
                r.started_at,
                r.finished_at.as_deref().unwrap_or("?"),
                render::visible(&r.examiner),
                render::visible(&r.host),
                r.files,
                r.lines,
                r.events,
                r.duplicates,
                r.conflicts,
                r.errors
            );
        }
        Ok(())
    }
}
