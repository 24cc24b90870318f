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
}

/// Runs the command.
pub fn run(Args { case, target, text }: Args) -> Result<()> {
    let mut c = open(&case)?;
    let id = c.add_note(&target, &text)?;
    eprintln!(
        "note {id} added to {} (recorded in the custody log)",
        render::visible(&target)
    );
    Ok(())
}
