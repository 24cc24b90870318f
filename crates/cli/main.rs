//! # nbtrail (command-line tool)
//!
//! Every capability of nbtrail without a window, for auditors' scripts and automation. This binary owns
//! argument parsing, human and JSON rendering, progress bars and exit codes; all logic lives in the
//! library crates (`nbtrail-ingest`, `nbtrail-store`, …).
//!
//! Output contract: results go to stdout (human tables by default, `--json` for machines; `ingest`
//! always prints its JSON report), progress and diagnostics to stderr. Exit status 0 on success, 1 when the
//! input or the case is unusable (with a one-line `nbtrail: error: …` naming the file), 2 on bad usage.

mod analyze;
mod commands;
mod entity_command;
mod render;
mod search;

/// Ingest allocates on the reader thread and frees on the writer thread; mimalloc handles that pattern
/// far better than glibc's arenas (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nbtrail_store::{Case, EventFilter, SessionFilter};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

#[derive(Parser)]
#[command(name = "nbtrail", version, about = "Audit trails of notebook work: ingest, sessions, replay", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct CaseArg {
    /// The case folder (created by `ingest` when missing).
    #[arg(long, value_name = "DIR")]
    case: PathBuf,
}

#[derive(clap::Args)]
struct TimeRange {
    /// Only at or after this time (UTC): `2024-05-01`, `2024-05-01T14:00`, RFC 3339.
    #[arg(long, value_parser = parse_time)]
    from: Option<DateTime<Utc>>,
    /// Only before this time (UTC); a bare date means the end of that day.
    #[arg(long, value_parser = parse_time_end)]
    to: Option<DateTime<Utc>>,
}

/// A listing of a case's records by ingest run (`errors`, `conflicts`).
#[derive(clap::Args)]
struct RunListing {
    #[command(flatten)]
    case: CaseArg,
    /// Only this ingest run.
    #[arg(long)]
    run: Option<i64>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `nbtrail verify`'s exit status for an intact bundle whose signer is neither `--key` nor pinned.
const VERIFY_SIGNER_UNKNOWN: i32 = 3;

#[derive(Subcommand)]
enum Command {
    /// Ingest audit-log files or directories (recursive, .gz too) into a case, as one atomic run.
    ///
    /// Prints the JSON report on stdout: {files, lines, events, duplicates, conflicts, errors:[{file,line,message}], …}.
    /// `lines` counts records (JSON lines, array elements, CSV rows): lines = events + duplicates + conflicts + errors.
    Ingest(commands::ingest::Args),
    /// Read and validate audit logs without a case: counts and every rejected record (parse only).
    ///
    /// Prints JSON {files, lines, events, errors:[{file,line,message}], …}; duplicates need a case.
    Check(commands::check::Args),
    /// List notebook sessions.
    Sessions(commands::sessions::Args),
    /// Show a session's cells in execution order (a unique id prefix is enough).
    Replay(commands::replay::Args),
    /// List events with their provenance.
    Events(commands::events::Args),
    /// Case overview: events, users, sessions, trail gaps, notable events.
    Summary(commands::summary::Args),
    /// Find credential leaks, hardcoded credentials, insecure configuration, SQL injection, unsafe
    /// deserialization and data exfiltration: in a case's sessions (stored as findings), in notebook files
    /// (.ipynb, Databricks source .py, .py), or in sessions given as JSON lines on stdin (`--jsonl`).
    Analyze(commands::analyze::Args),
    /// List stored findings with their traces.
    Findings(commands::findings::Args),
    /// List ingest runs (who, when, what, counts).
    Runs(commands::runs::Args),
    /// Full-text search over the case's events, cells and outputs (see QUERY SYNTAX below).
    ///
    /// Prints the hits (newest first by default), facet counts (user, notebook, action, table, rule,
    /// status) and a time histogram over all hits. `--json` prints {total, hits:[{event_id, session_id,
    /// user, time, action, notebook_path, snippet:{text, ranges}, rules}], facets, histogram, warnings};
    /// snippet ranges are [start, end) character offsets into snippet.text.
    #[command(after_long_help = nbtrail_search::query::help_text())]
    Search(commands::search::Args),
    /// Tables read and written by the case's cells, with their readers and writers.
    Tables(commands::tables::Args),
    /// A user's page: activity over time, sessions with findings, tables, secrets, downloads, detections.
    User(commands::user::Args),
    /// A notebook's page (by id or any path it has had): activity, users, sessions, tables, findings.
    Notebook(commands::notebook::Args),
    /// A table's page: the cells and lineage rows that read or wrote it, who, when, in which sessions.
    Table(commands::table::Args),
    /// A secret scope's page: who read its secrets (API and code), when, and the sessions around.
    Scope(commands::scope::Args),
    /// Export a signed evidence bundle (BagIt zip) of sessions, a search, or events.
    ///
    /// The bundle holds each event's original record verbatim with provenance, session replays, findings
    /// (SARIF) with triage, the custody entries concerning the selection and a static report.html, signed
    /// with the examiner's ed25519 key (created on first use in the config dir). Recorded in the custody log.
    Export(commands::export::Args),
    /// Write events as a timeline other tools load: Timesketch JSONL or CSV (all, a search, sessions, ids).
    ///
    /// Timesketch lines carry its mandatory `message`, `datetime` and `timestamp_desc`, `timestamp` in µs and
    /// every field of the event with its source file and location. The CSV uses `system.access.audit`
    /// column names and reads back with `nbtrail ingest` as the same events. Streamed; no row cap.
    Timeline(commands::timeline::Args),
    /// Verify an evidence bundle: structure, every hash, completeness, signature. Exit 0 only if all hold.
    Verify(commands::verify::Args),
    /// Verify a capture log written by nbtrail-gateway: every hash link, sequence, segment boundary and
    /// checkpoint signature. Reports the first broken record; exit 0 only if the whole log holds.
    VerifyLog(commands::verify_log::Args),
    /// Show the case's custody log (who ingested, analyzed, triaged, noted, exported what, when).
    Custody(commands::custody::Args),
    /// Set a finding's triage status (recorded in the custody log).
    Triage(commands::triage::Args),
    /// Add an examiner's note, question or conclusion to the case (recorded in the custody log).
    Note(commands::note::Args),
    /// Star (or unstar) an event, session or finding (recorded in the custody log).
    Star(commands::star::Args),
    /// The case's notes, questions, conclusions and starred items.
    Notes(commands::notes::Args),
    /// Delete the case's search index and rebuild it from the case database.
    Reindex(commands::reindex::Args),
    /// List every rejected record with file, line and reason.
    Errors(commands::errors::Args),
    /// List every conflict: a record whose natural key is in the case with other content (another user,
    /// another response…), kept verbatim beside the stored event, with the fields that differ.
    Conflicts(commands::conflicts::Args),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SortArg {
    /// By event time.
    Time,
    /// By how well the event matches.
    Relevance,
}

/// A reader that stops early (`nbtrail events | head`) closes the pipe; `println!` then panics. That is
/// the reader's choice, not an error of ours: end quietly with the status a shell gives a closed pipe
/// (128 + SIGPIPE) instead of a panic message and a backtrace.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() {
    quiet_on_closed_pipe();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("NBTRAIL_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // One line: the chain joined, file names included by the errors themselves.
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("nbtrail: error: {}", render::visible(&msg));
        std::process::exit(1);
    }
}

fn open(case: &CaseArg) -> Result<Case> {
    Ok(Case::open(&case.case)?)
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ingest(args) => commands::ingest::run(args),
        Command::Search(args) => commands::search::run(args),
        Command::Tables(args) => commands::tables::run(args),
        Command::Reindex(args) => commands::reindex::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Timeline(args) => commands::timeline::run(args),
        Command::User(args) => commands::user::run(args),
        Command::Notebook(args) => commands::notebook::run(args),
        Command::Table(args) => commands::table::run(args),
        Command::Scope(args) => commands::scope::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::VerifyLog(args) => commands::verify_log::run(args),
        Command::Custody(args) => commands::custody::run(args),
        Command::Triage(args) => commands::triage::run(args),
        Command::Note(args) => commands::note::run(args),
        Command::Star(args) => commands::star::run(args),
        Command::Notes(args) => commands::notes::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Sessions(args) => commands::sessions::run(args),
        Command::Replay(args) => commands::replay::run(args),
        Command::Events(args) => commands::events::run(args),
        Command::Summary(args) => commands::summary::run(args),
        Command::Analyze(args) => commands::analyze::run(args),
        Command::Findings(args) => commands::findings::run(args),
        Command::Runs(args) => commands::runs::run(args),
        Command::Conflicts(args) => commands::conflicts::run(args),
        Command::Errors(args) => commands::errors::run(args),
    }
}

/// `2h`, `30m`, `90s`, `1d`, or plain seconds.
fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 2h, 30m, 90s)"))?;
    let mult = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("unknown unit in {s:?}: use s, m, h or d")),
    };
    if n <= 0 {
        return Err("the idle gap must be positive".into());
    }
    Ok(n * mult)
}

fn parse_time_inner(s: &str, end_of_day: bool) -> Result<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc());
        }
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").with_context(|| {
        format!("not a time: {s:?} (use 2024-05-01, 2024-05-01T14:00 or RFC 3339)")
    })?;
    let d = if end_of_day {
        d.succ_opt().unwrap_or(d)
    } else {
        d
    };
    Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time_inner(s, false).map_err(|e| e.to_string())
}

fn parse_time_end(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time_inner(s, true).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nbtrail_model::format_time;

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_duration_ms("90"), Ok(90_000));
        assert!(parse_duration_ms("2w").is_err());
        assert!(parse_duration_ms("0m").is_err());
        assert_eq!(
            format_time(parse_time("2024-05-01").unwrap()),
            "2024-05-01T00:00:00.000Z"
        );
        assert_eq!(
            format_time(parse_time_end("2024-05-01").unwrap()),
            "2024-05-02T00:00:00.000Z"
        );
        assert_eq!(
            format_time(parse_time("2024-05-01T14:30").unwrap()),
            "2024-05-01T14:30:00.000Z"
        );
        assert_eq!(
            format_time(parse_time("2024-05-01T14:30:00+02:00").unwrap()),
            "2024-05-01T12:30:00.000Z"
        );
        assert!(parse_time("yesterday").is_err());
    }
}
