//! `nbtrail summary`: Case overview: events, users, sessions, trail gaps, notable events.

use crate::*;

/// The arguments of `nbtrail summary`.
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
    let s = c.summary()?;
    if json {
        print_json(&s)
    } else {
        let sessions = c.newest_sessions(10)?;
        let findings = (c.analysis_runs()? > 0)
            .then(|| c.finding_counts())
            .transpose()?;
        render::summary(&s, &sessions, findings.as_deref());
        Ok(())
    }
}
