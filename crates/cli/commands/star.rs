//! `nbtrail star`: Star (or with `--remove`, unstar) an event, session or finding (recorded in the custody log).

use crate::*;

/// The arguments of `nbtrail star`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// What to star: `event:ID`, `session:ID`, `finding:ID`.
    target: String,
    /// Take the star off.
    #[arg(long)]
    remove: bool,
}

/// Runs the command.
pub fn run(
    Args {
        case,
        target,
        remove,
    }: Args,
) -> Result<()> {
    let mut c = open(&case)?;
    let kind = if remove { "unstar" } else { "star" };
    c.add_case_note(&target, kind, "")?;
    eprintln!(
        "{} {} (recorded in the custody log)",
        if remove { "unstarred" } else { "starred" },
        render::visible(&target)
    );
    Ok(())
}
