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
    Ingest {
        #[command(flatten)]
        case: CaseArg,
        /// Files or directories to read.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Idle time that ends a notebook session (e.g. `2h`, `30m`); stored in the case.
        #[arg(long, value_parser = parse_duration_ms, value_name = "DURATION")]
        idle_gap: Option<i64>,
        /// No human summary on stderr.
        #[arg(long, short)]
        quiet: bool,
        /// Do not update the search index now (the next `search`, `tables` or `reindex` catches up).
        #[arg(long)]
        no_index: bool,
        /// Require capture logs to be signed by this gateway key (64 hex digits; repeatable): records of a
        /// segment signed by another key, or unsigned, are rejected.
        #[arg(long = "capture-key", value_name = "HEX")]
        capture_keys: Vec<String>,
    },
    /// Read and validate audit logs without a case: counts and every rejected record (parse only).
    ///
    /// Prints JSON {files, lines, events, errors:[{file,line,message}], …}; duplicates need a case.
    Check {
        /// Files or directories to read.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// No human summary on stderr.
        #[arg(long, short)]
        quiet: bool,
    },
    /// List notebook sessions.
    Sessions {
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
    },
    /// Show a session's cells in execution order (a unique id prefix is enough).
    Replay {
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
    },
    /// List events with their provenance.
    Events {
        #[command(flatten)]
        case: CaseArg,
        /// Events of this user (e-mail).
        #[arg(long)]
        user: Option<String>,
        /// `action` or `service.action`, e.g. `getSecret` or `secrets.getSecret`.
        #[arg(long)]
        action: Option<String>,
        /// A notebook id or path.
        #[arg(long)]
        notebook: Option<String>,
        #[command(flatten)]
        range: TimeRange,
        /// Only the newest N (still listed oldest first).
        #[arg(long)]
        limit: Option<u64>,
        /// Include the raw record in human output (always in JSON).
        #[arg(long)]
        raw: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Case overview: events, users, sessions, trail gaps, notable events.
    Summary {
        #[command(flatten)]
        case: CaseArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Find credential leaks, hardcoded credentials, insecure configuration, SQL injection, unsafe
    /// deserialization and data exfiltration: in a case's sessions (stored as findings), in notebook files
    /// (.ipynb, Databricks source .py, .py), or in sessions given as JSON lines on stdin (`--jsonl`).
    Analyze {
        /// Analyze this case's sessions and store the findings.
        #[arg(long, value_name = "DIR")]
        case: Option<PathBuf>,
        /// With --case: session ids (default: all). Without: notebook files.
        targets: Vec<String>,
        /// Rules file to add to the defaults (repeatable).
        #[arg(long = "rules", value_name = "FILE")]
        rules: Vec<PathBuf>,
        /// Use only the --rules files.
        #[arg(long)]
        no_default_rules: bool,
        /// Read sessions as JSON lines on stdin, write findings as JSON lines on stdout.
        #[arg(long, conflicts_with_all = ["case", "targets"])]
        jsonl: bool,
        /// Also write SARIF 2.1.0 to this file.
        #[arg(long, value_name = "FILE")]
        sarif: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = analyze::Format::Text)]
        format: analyze::Format,
        /// Same as --format json.
        #[arg(long)]
        json: bool,
    },
    /// List stored findings with their traces.
    Findings {
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
    },
    /// List ingest runs (who, when, what, counts).
    Runs {
        #[command(flatten)]
        case: CaseArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Full-text search over the case's events, cells and outputs (see QUERY SYNTAX below).
    ///
    /// Prints the hits (newest first by default), facet counts (user, notebook, action, table, rule,
    /// status) and a time histogram over all hits. `--json` prints {total, hits:[{event_id, session_id,
    /// user, time, action, notebook_path, snippet:{text, ranges}, rules}], facets, histogram, warnings};
    /// snippet ranges are [start, end) character offsets into snippet.text.
    #[command(after_long_help = nbtrail_search::query::help_text())]
    Search {
        #[command(flatten)]
        case: CaseArg,
        /// The query; several arguments are joined with spaces. Empty: every event.
        #[arg(value_name = "QUERY")]
        query: Vec<String>,
        /// Hits to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Hits to skip (paging).
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Order: by time (newest first; `--oldest` to reverse) or by relevance.
        #[arg(long, value_enum, default_value_t = SortArg::Time)]
        sort: SortArg,
        /// With `--sort time`: oldest first.
        #[arg(long)]
        oldest: bool,
        /// Values per facet.
        #[arg(long, default_value_t = 20)]
        facets: usize,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Tables read and written by the case's cells, with their readers and writers.
    Tables {
        #[command(flatten)]
        case: CaseArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Export a signed evidence bundle (BagIt zip) of sessions, a search, or events.
    ///
    /// The bundle holds each event's original record verbatim with provenance, session replays, findings
    /// (SARIF) with triage, the custody entries concerning the selection and a static report.html, signed
    /// with the examiner's ed25519 key (created on first use in the config dir). Recorded in the custody log.
    Export {
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
    },
    /// Verify an evidence bundle: structure, every hash, completeness, signature. Exit 0 only if all hold.
    Verify {
        /// The bundle.
        bundle: PathBuf,
        /// The expected signer: key fingerprint (SHA256:…, ≥16 hex digits) or public key (hex).
        #[arg(long)]
        key: Option<String>,
        /// Trusted examiners file (`<key or SHA256:fingerprint> <name>` per line); default:
        /// trusted-examiners.txt in the config directory, plus the examiner's own key.
        #[arg(long, value_name = "FILE")]
        trusted: Option<PathBuf>,
        /// Machine-readable verdict.
        #[arg(long)]
        json: bool,
    },
    /// Verify a capture log written by nbtrail-gateway: every hash link, sequence, segment boundary and
    /// checkpoint signature. Reports the first broken record; exit 0 only if the whole log holds.
    VerifyLog {
        /// The gateway's --log-dir.
        dir: PathBuf,
        /// The gateway's public key (hex, as printed by `nbtrail-gateway --generate-key`, or a .pub file):
        /// every segment must name it and at least one checkpoint must verify with it.
        #[arg(long)]
        key: Option<String>,
        /// Machine-readable report.
        #[arg(long)]
        json: bool,
    },
    /// Show the case's custody log (who ingested, analyzed, triaged, noted, exported what, when).
    Custody {
        #[command(flatten)]
        case: CaseArg,
        /// Verify the hash chain; exit 1 at the first broken entry.
        #[arg(long)]
        verify: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Set a finding's triage status (recorded in the custody log).
    Triage {
        #[command(flatten)]
        case: CaseArg,
        /// Finding id (from `nbtrail findings --format json`).
        finding: i64,
        /// uncategorized, valid, false_positive, accepted_risk, bad_practice or do_not_care.
        status: String,
        /// Why.
        #[arg(long)]
        note: Option<String>,
    },
    /// Add an examiner's note to the case (recorded in the custody log).
    Note {
        #[command(flatten)]
        case: CaseArg,
        /// What it is about: `case`, `event:ID`, `session:ID`, `finding:ID`.
        target: String,
        /// The note.
        text: String,
    },
    /// Delete the case's search index and rebuild it from the case database.
    Reindex {
        #[command(flatten)]
        case: CaseArg,
    },
    /// List every rejected record with file, line and reason.
    Errors {
        #[command(flatten)]
        list: RunListing,
    },
    /// List every conflict: a record whose natural key is in the case with other content (another user,
    /// another response…), kept verbatim beside the stored event, with the fields that differ.
    Conflicts {
        #[command(flatten)]
        list: RunListing,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SortArg {
    /// By event time.
    Time,
    /// By how well the event matches.
    Relevance,
}

fn main() {
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
        Command::Ingest {
            case,
            paths,
            idle_gap,
            quiet,
            no_index,
            capture_keys,
        } => {
            for p in &paths {
                if !p.exists() {
                    bail!("{}: no such file or directory", p.display());
                }
            }
            for k in &capture_keys {
                if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!("--capture-key {k:?}: expected 64 hex digits (the gateway's .pub file)");
                }
            }
            let mut c = Case::create(&case.case)?;
            c.set_capture_keys(capture_keys);
            if let Some(ms) = idle_gap {
                c.set_idle_gap_ms(ms)?;
            }
            let bar =
                ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {bytes}/{total_bytes} [{wide_bar}] {msg} ETA {eta}",
                )
                .expect("template"),
            );
            let started = std::time::Instant::now();
            let cancel = AtomicBool::new(false);
            // Test hook: die between the store's commit and the index's, as a crash or kill would.
            let fault = std::env::var_os("NBTRAIL_FAULT_EXIT_BEFORE_INDEX").is_some();
            let mut indexing = false;
            let outcome = nbtrail_ops::ingest_and_index(
                &mut c,
                &paths,
                !no_index && !fault,
                &cancel,
                &mut |step| match step {
                    nbtrail_ops::Step::Store(p) => {
                        bar.set_length(p.bytes_total);
                        bar.set_position(p.bytes_read);
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        bar.set_message(format!(
                            "file {}/{} · {} events ({:.0}/s) · {} dup · {} err",
                            p.files_done,
                            p.files_total,
                            p.events,
                            p.events as f64 / secs,
                            p.duplicates,
                            p.errors
                        ));
                    }
                    nbtrail_ops::Step::Index { done, total } => {
                        if !indexing {
                            indexing = true;
                            bar.set_style(
                                ProgressStyle::with_template(
                                    "{spinner} indexing {pos}/{len} events [{wide_bar}] ETA {eta}",
                                )
                                .expect("template"),
                            );
                        }
                        bar.set_length(total);
                        bar.set_position(done);
                    }
                },
            );
            bar.finish_and_clear();
            let outcome = outcome?;
            if fault {
                std::process::exit(3);
            }
            let report = &outcome.report;
            let mut json = serde_json::to_value(report)?;
            if let Some(ix) = &outcome.index {
                json["index"] = serde_json::to_value(ix)?;
            }
            print_json(&json)?;
            if !quiet {
                render::ingest_summary(report);
                if let Some(ix) = &outcome.index {
                    eprintln!(
                        "indexed {} event(s) for search ({} table facts); index holds {}",
                        ix.indexed, ix.table_facts, ix.documents
                    );
                }
            }
            Ok(())
        }
        Command::Search {
            case,
            query,
            limit,
            offset,
            sort,
            oldest,
            facets,
            json,
        } => {
            let mut c = open(&case)?;
            let (index, _) = search::open_index(&mut c)?;
            let req = nbtrail_search::SearchRequest {
                query: query.join(" "),
                limit,
                offset,
                sort: match (sort, oldest) {
                    (SortArg::Relevance, _) => nbtrail_search::Sort::Relevance,
                    (SortArg::Time, true) => nbtrail_search::Sort::Oldest,
                    (SortArg::Time, false) => nbtrail_search::Sort::Newest,
                },
                now_ms: None,
                facet_limit: facets,
            };
            let result = index.search(&c, &req)?;
            if json {
                print_json(&result)
            } else {
                search::print_result(&result);
                Ok(())
            }
        }
        Command::Tables { case, json } => {
            let mut c = open(&case)?;
            // Table facts are derived while indexing: bring the index up to date first.
            search::open_index(&mut c)?;
            let tables = c.table_usage()?;
            if json {
                print_json(&tables)
            } else {
                search::print_tables(&tables);
                Ok(())
            }
        }
        Command::Reindex { case } => {
            let mut c = open(&case)?;
            let started = std::time::Instant::now();
            let (index, sync) = search::reindex(&mut c)?;
            eprintln!(
                "indexed {} event(s) ({} table facts) in {:.1}s; index {} bytes",
                sync.indexed,
                sync.table_facts,
                started.elapsed().as_secs_f64(),
                index.size_bytes()
            );
            Ok(())
        }
        Command::Export {
            case,
            sessions,
            query,
            events,
            output,
            examiner,
            notes,
        } => {
            let mut c = open(&case)?;
            let mut ids = events;
            if let Some(q) = &query {
                let (index, _) = search::open_index(&mut c)?;
                let (found, warnings) = index.matching_ids(&c, q)?;
                for w in warnings {
                    eprintln!("nbtrail: warning: {}", render::visible(&w));
                }
                ids.extend(found);
            }
            if sessions.is_empty() && ids.is_empty() {
                bail!(
                    "nothing to export: give --session, --query or --events (a query that matches nothing selects nothing)"
                );
            }
            let key =
                nbtrail_evidence::keys::load_or_create(&nbtrail_evidence::keys::config_dir())?;
            let bar =
                ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} exporting [{wide_bar}] {pos}/{len} ETA {eta}",
                )
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
        Command::Verify {
            bundle,
            key,
            trusted,
            json,
        } => {
            let pinned = match &trusted {
                Some(f) => nbtrail_evidence::keys::load_trusted(f)?,
                None => {
                    nbtrail_evidence::keys::default_trusted(&nbtrail_evidence::keys::config_dir())?
                }
            };
            let v = nbtrail_evidence::verify(&bundle, key.as_deref(), &pinned)?;
            let signer = v.signer.as_deref().unwrap_or("?");
            if json {
                print_json(&v)?;
            } else if v.intact {
                let who = match (v.trust, &v.pinned_as) {
                    (nbtrail_evidence::Trust::Expected, _) => "the expected key".to_string(),
                    (_, Some(name)) => format!("pinned examiner {}", render::visible(name)),
                    _ => "a key nobody pinned".to_string(),
                };
                println!(
                    "{}: {} — {} data file(s) match the manifest, the manifest is complete, signed by {signer} ({who})",
                    if v.ok {
                        "VERIFIED"
                    } else {
                        "INTACT, SIGNER UNKNOWN"
                    },
                    render::visible(&bundle.display().to_string()),
                    v.files_checked,
                );
                if !v.ok {
                    println!(
                        "  anyone can sign an altered bundle with a key of their own: check the signer with \
                         --key, or pin it in {}",
                        nbtrail_evidence::keys::config_dir()
                            .join(nbtrail_evidence::keys::TRUSTED_FILE)
                            .display()
                    );
                }
                for k in [
                    "Contact-Name",
                    "Nbtrail-Created-UTC",
                    "Nbtrail-Events",
                    "Nbtrail-Findings",
                    "Nbtrail-Selection-Query",
                    "Nbtrail-Selection-Sessions",
                ] {
                    if let Some(val) = v.info.get(k).filter(|x| !x.is_empty()) {
                        println!("  {k}: {}", render::visible(val));
                    }
                }
            } else {
                println!(
                    "NOT VERIFIED: {} — {}",
                    render::visible(&bundle.display().to_string()),
                    render::visible(v.problem.as_deref().unwrap_or("?"))
                );
            }
            if !v.intact {
                std::process::exit(1);
            }
            if !v.ok {
                std::process::exit(VERIFY_SIGNER_UNKNOWN);
            }
            Ok(())
        }
        Command::VerifyLog { dir, key, json } => {
            let key = match key {
                Some(k) if Path::new(&k).is_file() => {
                    Some(std::fs::read_to_string(&k)?.trim().to_string())
                }
                k => k,
            };
            let r = nbtrail_capture::verify_dir(&dir, key.as_deref())?;
            let name = render::visible(&dir.display().to_string());
            if json {
                print_json(&r)?;
            } else if r.ok {
                println!(
                    "VERIFIED: {name} — {} record(s) in {} segment(s), sequence 1..{} unbroken, {} checkpoint(s){}",
                    r.records,
                    r.segments,
                    r.last_seq,
                    r.checkpoints,
                    r.signer
                        .as_deref()
                        .map(|s| format!(" signed by {s}"))
                        .unwrap_or_default()
                );
                if let (Some(a), Some(b)) = (&r.first_time, &r.last_time) {
                    println!("  from {a} to {b}");
                }
                for n in &r.notes {
                    println!("  note: {}", render::visible(n));
                }
            } else {
                let p = r
                    .problem
                    .as_ref()
                    .map(std::string::ToString::to_string)
                    .unwrap_or_default();
                println!("NOT VERIFIED: {name} — {}", render::visible(&p));
                println!("  {} record(s) verified before the problem", r.records);
            }
            if !r.ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Custody { case, verify, json } => {
            let c = open(&case)?;
            let log = c.custody_log()?;
            let check = nbtrail_store::custody::verify_chain(&log);
            if json {
                print_json(&serde_json::json!({
                    "entries": log,
                    "chain_ok": check.is_ok(),
                    "problem": check.as_ref().err(),
                }))?;
            } else {
                for e in &log {
                    println!(
                        "#{:<4} {}  {:<8} {:<16} {}  {}",
                        e.seq,
                        e.at,
                        e.action,
                        render::visible(&e.examiner),
                        &e.hash[..12],
                        render::visible(&e.details.to_string())
                    );
                }
                match &check {
                    Ok(()) => eprintln!("custody log: {} entries, hash chain intact", log.len()),
                    Err(p) => eprintln!("custody log: CHAIN BROKEN: {}", render::visible(p)),
                }
            }
            if verify && check.is_err() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Triage {
            case,
            finding,
            status,
            note,
        } => {
            let mut c = open(&case)?;
            c.set_triage(finding, &status, note.as_deref())?;
            eprintln!("finding {finding}: triage set to {status} (recorded in the custody log)");
            Ok(())
        }
        Command::Note { case, target, text } => {
            let mut c = open(&case)?;
            let id = c.add_note(&target, &text)?;
            eprintln!(
                "note {id} added to {} (recorded in the custody log)",
                render::visible(&target)
            );
            Ok(())
        }
        Command::Check { paths, quiet } => {
            let report = nbtrail_store::check(&paths)?;
            print_json(&report)?;
            if !quiet {
                eprintln!(
                    "checked {} file(s): {} records = {} events + {} errors in {:.1}s",
                    report.files,
                    report.lines,
                    report.events,
                    report.error_count,
                    report.elapsed_ms as f64 / 1000.0
                );
            }
            Ok(())
        }
        Command::Sessions {
            case,
            user,
            notebook,
            range,
            json,
        } => {
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
        Command::Replay {
            case,
            session_id,
            json,
            color,
        } => {
            let c = open(&case)?;
            let r = nbtrail_ops::replay(&c, &session_id)?;
            if json {
                print_json(&r)
            } else {
                render::replay(&r, color.enabled())
            }
        }
        Command::Events {
            case,
            user,
            action,
            notebook,
            range,
            limit,
            raw,
            json,
        } => {
            let c = open(&case)?;
            let ev = c.events(&EventFilter {
                user,
                action,
                notebook,
                from: range.from,
                to: range.to,
                limit,
            })?;
            if json {
                print_json(&ev)
            } else {
                render::events(&ev, raw);
                Ok(())
            }
        }
        Command::Summary { case, json } => {
            let c = open(&case)?;
            let s = c.summary()?;
            if json {
                print_json(&s)
            } else {
                let sessions = c.sessions(&SessionFilter::default())?;
                let findings = (c.analysis_runs()? > 0)
                    .then(|| c.finding_counts())
                    .transpose()?;
                render::summary(&s, &sessions, findings.as_deref());
                Ok(())
            }
        }
        Command::Analyze {
            case,
            targets,
            rules,
            no_default_rules,
            jsonl,
            sarif,
            format,
            json,
        } => {
            let format = if json { analyze::Format::Json } else { format };
            // Exit status: 0 no findings, 1 findings, 2 error, 3 files: the analysis is incomplete (a file
            // unreadable or a cell not analyzed), whatever was found (a CI gate).
            let result = (|| -> Result<(usize, bool)> {
                let (rules, sha) = analyze::load_rules(&rules, no_default_rules)?;
                if jsonl {
                    Ok((analyze::analyze_pipe(&rules)?, false))
                } else if let Some(dir) = case {
                    Ok((
                        analyze::analyze_case(
                            &dir,
                            &targets,
                            &rules,
                            &sha,
                            format,
                            sarif.as_deref(),
                        )?,
                        false,
                    ))
                } else if targets.is_empty() {
                    bail!("nothing to analyze: give --case DIR, notebook files, or --jsonl")
                } else {
                    let o = analyze::analyze_files(&targets, &rules, format, sarif.as_deref())?;
                    Ok((o.findings, o.incomplete))
                }
            })();
            match result {
                Ok((_, true)) => std::process::exit(3),
                Ok((0, false)) => Ok(()),
                Ok(_) => std::process::exit(1),
                Err(e) => {
                    let msg = format!("{e:#}").replace('\n', " ");
                    eprintln!("nbtrail: error: {}", render::visible(&msg));
                    std::process::exit(2);
                }
            }
        }
        Command::Findings {
            case,
            session,
            rule,
            user,
            severity,
            notebook,
            status,
            format,
            json,
        } => {
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
        Command::Runs { case, json } => {
            let c = open(&case)?;
            let r = c.runs()?;
            if json {
                print_json(&r)
            } else {
                for r in &r {
                    println!(
                        "run {}  {} → {}  by {}@{}  files {}  lines {}  events {}  duplicates {}  conflicts {}  errors {}",
                        r.id,
                        r.started_at,
                        r.finished_at.as_deref().unwrap_or("?"),
                        render::visible(&r.examiner),
                        render::visible(&r.host),
                        r.files,
                        r.lines,
                        r.events,
                        r.duplicates,
                        r.conflicts,
                        r.errors
                    );
                }
                Ok(())
            }
        }
        Command::Conflicts {
            list: RunListing { case, run, json },
        } => {
            let c = open(&case)?;
            let rows = c.conflicts(run, None)?;
            if json {
                return print_json(&rows);
            }
            for r in &rows {
                println!(
                    "{}: conflicts with event {} ({})",
                    render::visible(&r.location),
                    r.event_id,
                    render::visible(&r.event_source)
                );
                for f in r.fields.as_array().into_iter().flatten() {
                    println!(
                        "  {}: stored {} / this record {}",
                        f["field"].as_str().unwrap_or("?"),
                        render::visible(&f["stored"].to_string()),
                        render::visible(&f["record"].to_string())
                    );
                }
            }
            Ok(())
        }
        Command::Errors {
            list: RunListing { case, run, json },
        } => {
            let c = open(&case)?;
            let e = c.ingest_errors(run)?;
            if json {
                print_json(&e)
            } else {
                for e in &e {
                    println!(
                        "{}: {}",
                        render::visible(&e.location),
                        render::visible(&e.message)
                    );
                }
                Ok(())
            }
        }
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
