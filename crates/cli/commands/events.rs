//! `nbtrail events`: List events with their provenance.

use crate::*;

/// The arguments of `nbtrail events`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// Events of this user (e-mail).
    #[arg(long)]
    user: Option<String>,
    /// `action` or `service.action`, e.g. `getSecret` or `secrets.getSecret`.
    #[arg(long)]
    action: Option<String>,
    /// A notebook id or path.
    #[arg(long)]
    notebook: Option<String>,
    #[command(flatten)]
    range: TimeRange,
    /// Only the newest N (still listed oldest first).
    #[arg(long)]
    limit: Option<u64>,
    /// Include the raw record in human output (always in JSON).
    #[arg(long)]
    raw: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(
    Args {
        case,
        user,
        action,
        notebook,
        range,
        limit,
        raw,
        json,
    }: Args,
) -> Result<()> {
    let c = open(&case)?;
    let ev = c.events(&EventFilter {
        user,
        action,
        notebook,
        from: range.from,
        to: range.to,
        limit,
    })?;
    if json {
        print_json(&ev)
    } else {
        render::events(&ev, raw);
        Ok(())
    }
}
