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
    /// Order: `start` (oldest first) or `findings` (most high findings, findings, secret reads first).
    #[arg(long, default_value = "start", value_parser = ["start", "findings"])]
    sort: String,
}

/// Runs the command.
pub fn run(
    Args {
        case,
        user,
        notebook,
        range,
        json,
        sort,
    }: Args,
) -> Result<()> {
    let c = open(&case)?;
    let order = if sort == "findings" {
        nbtrail_ops::SessionOrder::Findings
    } else {
        nbtrail_ops::SessionOrder::Start
    };
    let rows = nbtrail_ops::session_list(
        &c,
        &SessionFilter {
            user,
            notebook,
            from: range.from,
            to: range.to,
        },
        order,
    )?;
    if json {
        // The documented shape: the sessions themselves, in the order asked.
        let s: Vec<&nbtrail_model::Session> = rows.iter().map(|r| &r.session).collect();
        print_json(&s)
    } else {
        render::sessions(&rows);
        Ok(())
    }
}
