//! `nbtrail export`: Export a signed evidence bundle (BagIt zip) of sessions, a search, or events.

use crate::*;

/// The arguments of `nbtrail export`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// Sessions (ids or unique prefixes).
    #[arg(long = "session", value_name = "ID")]
    sessions: Vec<String>,
    /// Every event this search matches (see `nbtrail search --help`).
    #[arg(long, value_name = "QUERY")]
    query: Option<String>,
    /// Event ids, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    events: Vec<i64>,
    /// The bundle to write (must not exist).
    #[arg(short, long, value_name = "FILE.zip")]
    output: PathBuf,
    /// Examiner name (default: NBTRAIL_EXAMINER or the OS user).
    #[arg(long)]
    examiner: Option<String>,
    /// Notes for bag-info.txt and the report.
    #[arg(long)]
    notes: Option<String>,
}

/// Runs the command.
pub fn run(
    Args {
        case,
        sessions,
        query,
        events,
        output,
        examiner,
        notes,
    }: Args,
) -> Result<()> {
    let mut c = open(&case)?;
    let mut ids = events;
    if let Some(q) = &query {
        ids.extend(search::query_ids(&mut c, q)?);
    }
    if sessions.is_empty() && ids.is_empty() {
        bail!(
            "nothing to export: give --session, --query or --events (a query that matches nothing selects nothing)"
        );
    }
    let key = nbtrail_evidence::keys::load_or_create(&nbtrail_evidence::keys::config_dir())?;
    let bar = ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} exporting [{wide_bar}] {pos}/{len} ETA {eta}")
            .expect("template"),
    );
    let report = nbtrail_evidence::export(
        &mut c,
        &nbtrail_evidence::Selection {
            sessions,
            query,
            events: ids,
        },
        &nbtrail_evidence::ExportOptions {
            examiner: examiner.unwrap_or_else(nbtrail_store::examiner),
            notes,
        },
        &key,
        &output,
        &mut |p| {
            bar.set_length(p.total);
            bar.set_position(p.done);
        },
    );
    bar.finish_and_clear();
    print_json(&report?)
}
