//! `nbtrail check`: Read and validate audit logs without a case: counts and every rejected record (parse only).

use crate::*;

/// The arguments of `nbtrail check`.
#[derive(clap::Args)]
pub struct Args {
    /// Files or directories to read.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// No human summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs the command.
pub fn run(Args { paths, quiet }: Args) -> Result<()> {
    let report = nbtrail_store::check(&paths)?;
    print_json(&report)?;
    if !quiet {
        eprintln!(
            "checked {} file(s): {} records = {} events + {} errors in {:.1}s",
            report.files,
            report.lines,
            report.events,
            report.error_count,
            report.elapsed_ms as f64 / 1000.0
        );
    }
    Ok(())
}
