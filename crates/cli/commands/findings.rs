//! `nbtrail findings`: List stored findings with their traces.

use crate::*;

/// The arguments of `nbtrail findings`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// Only this session.
    #[arg(long)]
    session: Option<String>,
    /// Only this rule (code like NBT001, or name like secret-leak).
    #[arg(long)]
    rule: Option<String>,
    /// Only sessions of this user (any part of the e-mail, any case: `alice`).
    #[arg(long)]
    user: Option<String>,
    /// Only this severity (`high`, `medium`, `low`).
    #[arg(long)]
    severity: Option<String>,
    /// Only sessions of this notebook (a part of its path, or its id).
    #[arg(long)]
    notebook: Option<String>,
    /// Only this triage status.
    #[arg(long)]
    status: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = analyze::Format::Text)]
    format: analyze::Format,
    /// Same as --format json.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(
    Args {
        case,
        session,
        rule,
        user,
        severity,
        notebook,
        status,
        format,
        json,
    }: Args,
) -> Result<()> {
    let c = open(&case)?;
    // The same filter, with the same meaning of each field, as the app's findings view.
    let rows = nbtrail_ops::findings(
        &c,
        &nbtrail_ops::FindingFilter {
            session,
            rule,
            severity,
            user,
            notebook,
            status,
        },
    )?;
    if json || format == analyze::Format::Json {
        return print_json(&rows);
    }
    if format == analyze::Format::Sarif {
        bail!("SARIF comes from `nbtrail analyze --format sarif` (it needs the analyses)")
    }
    let views: Vec<_> = rows.into_iter().map(|r| r.view).collect();
    analyze::print_text(&views);
    Ok(())
}
