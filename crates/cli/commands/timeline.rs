//! `nbtrail timeline`: Write events as a Timesketch JSONL or CSV timeline (all, a search, sessions, events).

use crate::*;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Timesketch JSON lines (`message`, `datetime`, `timestamp_desc`, `timestamp` and the event's fields).
    Timesketch,
    /// CSV with `system.access.audit` column names (reads back with `nbtrail ingest`).
    Csv,
}

/// The arguments of `nbtrail timeline`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    case: CaseArg,
    /// Format.
    #[arg(long, value_enum, default_value_t = Format::Timesketch)]
    format: Format,
    /// Events matching this search (see `nbtrail search --help`).
    #[arg(long, value_name = "QUERY")]
    query: Option<String>,
    /// The cells of this session (repeatable; id or unique prefix).
    #[arg(long = "session", value_name = "ID")]
    sessions: Vec<String>,
    /// These event ids (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    events: Vec<i64>,
    /// Write here instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Runs the command. Without a selection, every event of the case is written.
pub fn run(
    Args {
        case,
        format,
        query,
        sessions,
        events,
        output,
    }: Args,
) -> Result<()> {
    let mut c = open(&case)?;
    let selected = query.is_some() || !sessions.is_empty() || !events.is_empty();
    let mut ids = events;
    if let Some(q) = &query {
        ids.extend(search::query_ids(&mut c, q)?);
    }
    for s in &sessions {
        let session = c.session(s)?;
        ids.extend(
            c.session_cells(&session.id)?
                .into_iter()
                .map(|x| x.event_id),
        );
    }
    let format = match format {
        Format::Timesketch => nbtrail_ops::timeline::TimelineFormat::Timesketch,
        Format::Csv => nbtrail_ops::timeline::TimelineFormat::Csv,
    };
    let mut sink: Box<dyn std::io::Write> = match &output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| p.display().to_string())?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let n = nbtrail_ops::timeline::write_timeline(
        &c,
        selected.then_some(ids.as_slice()),
        format,
        &mut *sink,
        &mut |_| {},
    )?;
    eprintln!("{n} event(s) written");
    Ok(())
}
