//! `nbtrail replay`: Show a session's cells in execution order (a unique id prefix is enough).

use crate::*;

/// The arguments of `nbtrail replay`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// The session id.
    session_id: String,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Colour and syntax highlighting.
    #[arg(long, value_enum, default_value_t = render::ColorChoice::Auto)]
    color: render::ColorChoice,
}

/// Runs the command.
pub fn run(
    Args {
        case,
        session_id,
        json,
        color,
    }: Args,
) -> Result<()> {
    let c = open(&case)?;
    let r = nbtrail_ops::replay(&c, &session_id)?;
    if json {
        print_json(&r)
    } else {
        render::replay(&r, color.enabled())
    }
}
