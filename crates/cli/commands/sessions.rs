//! `nbtrail sessions`: List notebook sessions.

use crate::*;

/// The arguments of `nbtrail sessions`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// Sessions of this user (e-mail).
    #[arg(long)]
    user: Option<String>,
    /// A notebook id, path, or path prefix ending in `/`.
    #[arg(long)]
    notebook: Option<String>,
    #[command(flatten)]
    range: TimeRange,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(
    Args {
        case,
        user,
        notebook,
        range,
        json,
    }: Args,
) -> Result<()> {
    let c = open(&case)?;
    let s = c.sessions(&SessionFilter {
        user,
        notebook,
        from: range.from,
        to: range.to,
    })?;
    if json {
        print_json(&s)
    } else {
        render::sessions(&s);
        Ok(())
    }
}
