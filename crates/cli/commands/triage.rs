//! `nbtrail triage`: Set a finding's triage status (recorded in the custody log).

use crate::*;

/// The arguments of `nbtrail triage`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// Finding id (from `nbtrail findings --format json`).
    finding: i64,
    /// uncategorized, valid, false_positive, accepted_risk, bad_practice or do_not_care.
    status: String,
    /// Why.
    #[arg(long)]
    note: Option<String>,
}

/// Runs the command.
pub fn run(
    Args {
        case,
        finding,
        status,
        note,
    }: Args,
) -> Result<()> {
    let mut c = open(&case)?;
    c.set_triage(finding, &status, note.as_deref())?;
    eprintln!("finding {finding}: triage set to {status} (recorded in the custody log)");
    Ok(())
}
