//! `nbtrail note`: Add an examiner's note to the case (recorded in the custody log).

use crate::*;

/// The arguments of `nbtrail note`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// What it is about: `case`, `event:ID`, `session:ID`, `finding:ID`.
    target: String,
    /// The note.
    text: String,
    /// `note`, `question` (something the case must answer) or `conclusion` (what the examiner concluded).
    #[arg(long, default_value = "note", value_parser = ["note", "question", "conclusion"])]
    kind: String,
}

/// Runs the command.
pub fn run(
    Args {
        case,
        target,
        text,
        kind,
    }: Args,
) -> Result<()> {
    let mut c = open(&case)?;
    let id = c.add_case_note(&target, &kind, &text)?;
    eprintln!(
        "{kind} {id} added to {} (recorded in the custody log)",
        render::visible(&target)
    );
    Ok(())
}
