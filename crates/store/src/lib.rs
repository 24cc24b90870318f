//! # nbtrail-store
//!
//! The **case**: a folder holding `case.sqlite` (SQLite, WAL, versioned migrations), the source of record
//! for everything nbtrail knows about an investigation. Indexes and reports elsewhere are derived from it
//! and can always be rebuilt from it. This crate owns:
//!
//! * opening/creating a case and migrating its schema ([`Case::open`], [`Case::create`]);
//! * **ingest runs** ([`Case::ingest`]): reading inputs through `nbtrail-ingest` on one thread while this
//!   one writes (and a helper thread compresses payload blocks), deduplicating by natural key (unique index
//!   on `(time_ms, natural_key)`: inputs arrive roughly in time order, so the index stays hot), recording
//!   every file (path, SHA-256, counts), every rejected record (file, line, byte offset, reason), every
//!   duplicate (which event it repeats) and every **conflict** (see below);
//! * the derived tables brought up to date at the end of every run: notebook id → path history, sessions
//!   ([`sessions`]), and the trail's holes (verbose audit logging switched off). A first or bulk load
//!   rebuilds them; a later run adds its new path events and re-sessionizes only the notebooks its new
//!   events touch, then ages the other notebooks' open sessions against the new end of the trail — the
//!   same result as a rebuild (tested), at the cost of the run rather than of the case;
//! * the read side the CLI and the app use: sessions, replay cells, events, runs, errors, case summary.
//!
//! ## Atomicity
//! An ingest is one SQLite transaction (`BEGIN IMMEDIATE` … `COMMIT`): derived tables are rebuilt inside it.
//! A crash, a `kill -9` or a cancellation before the commit leaves the case exactly as it was; SQLite's
//! journal rolls the partial work back on the next open. Re-running the same ingest then gives the same
//! counts as an uninterrupted run.
//!
//! A **bulk load** (a run bringing more records than the case holds) drops the secondary indexes and
//! rebuilds them by sorting, and runs with a rollback journal instead of the WAL when no other connection
//! has the case open: its pages are mostly new, which a rollback journal need not copy, where the WAL would
//! write every page twice. The case returns to WAL mode after the run (or at the next open after a crash).
//!
//! Ingests and sessions rebuilds run with SQLite's foreign-key *enforcement* off (the keys stay declared):
//! they write child rows whose parents they wrote or read in the same transaction, and enforcement would
//! look every parent up again (it made writing session cells four times slower). The tests run
//! `foreign_key_check` after every kind of ingest.
//!
//! ## Accounting
//! For every run and every file: `lines = events + duplicates + conflicts + errors`, where `lines` counts
//! records (a JSON line, an array element, a CSV data row, or a structural problem such as a truncated
//! array); blank lines and CSV headers are counted separately.
//!
//! ## Duplicates and conflicts
//! A record whose natural key is already in the case is a **duplicate** only when its content agrees with
//! the stored event's; otherwise it is a **conflict**: kept verbatim (file, line, offset, raw record) with
//! the fields that differ, linked to the stored event, and counted apart — never dropped. (Otherwise a
//! forged file read first could push out the genuine record, and records with no request id that share a
//! time and action would vanish.) Compared: [`CONFLICT_FIELDS`] — who, from where, the response, and what
//! ran — which every export shape carries, so one record having a value the other lacks (an error message
//! in one, none in the other) is a difference too. Allowed to differ between two deliveries of one event:
//! how it was delivered (shape, the raw bytes, file and line), and fields some export shapes do not carry
//! or write differently — notebook path, workspace id, user agent, web session id, duration.

/// The condition that makes an event a SQL warehouse statement, as SQL text: one text for the store's
/// queries ([`WAREHOUSE_STATEMENT_SQL`]) and the condition of the partial index they read
/// (`schema::SECONDARY_INDEXES`, `events_warehouse`) — SQLite uses a partial index only for a query whose
/// condition implies the index's. A macro, not a constant, so that the index definition can `concat!` it
/// (defined before the modules that use it).
macro_rules! warehouse_statement_sql {
    () => {
        "action IN ('commandSubmit', 'queryHistory') AND service = 'databrickssql' AND cluster_id IS NOT NULL AND notebook_id IS NULL"
    };
}

pub mod custody;
pub use custody::{NOTE_KINDS, NoteRow};
mod detect_feed;
mod entity;
mod findings;
mod index_feed;
pub mod payload;
mod query;
mod schema;
pub mod sessions;
mod tables;

pub use entity::*;
pub use findings::*;
pub use index_feed::{HitRow, IndexRow};
pub use query::*;
pub use tables::*;

use nbtrail_ingest::{IngestError, Item, Record, RecordError, RecordStream};
use nbtrail_model::{Event, format_time};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// File name of the database inside a case folder.
pub const DB_FILE: &str = "case.sqlite";

/// Errors of the case store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("case database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The folder is not a case.
    #[error(
        "{0}: not an nbtrail case (no {DB_FILE}); create one with `nbtrail ingest --case DIR PATH…`"
    )]
    NotACase(PathBuf),
    /// The case was written by a newer nbtrail.
    #[error(
        "{path}: case schema version {found} is newer than this nbtrail understands ({known}); upgrade nbtrail"
    )]
    TooNew {
        /// The case.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// Reading an input failed as a whole.
    #[error(transparent)]
    Input(#[from] IngestError),
    /// A file that holds no audit record at all.
    #[error(
        "{file}: not a Databricks audit log: none of its {records} records is an audit event (line {line}: {message}); expected audit records as JSON lines, a JSON array, JSON documents (pretty-printed or concatenated), {{\"records\":[…]}} batches, CSV with a header, or a capture log"
    )]
    NotALog {
        /// The file.
        file: String,
        /// Records read.
        records: u64,
        /// First error's line.
        line: u64,
        /// First error's message.
        message: String,
    },
    /// The ingest was cancelled; the case is unchanged.
    #[error("ingest cancelled; the case is unchanged")]
    Cancelled,
    /// A schema migration could not be applied (the case is left at its previous version).
    #[error("{path}: schema migration {version} failed: {message}")]
    Migration {
        /// The case.
        path: PathBuf,
        /// The migration's number.
        version: usize,
        /// What went wrong.
        message: String,
    },
    /// Creating the case folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Nothing found under that id.
    #[error("{0}")]
    NotFound(String),
    /// An argument the store cannot accept (a note kind, a target of the wrong form).
    #[error("{0}")]
    Invalid(String),
    /// Writing what a caller streams events into (an export) failed.
    #[error("writing output: {0}")]
    Output(std::io::Error),
}

impl StoreError {
    /// Wraps an I/O error of a caller's output (for callbacks of [`Case::for_each_event`]).
    pub fn from_io(e: std::io::Error) -> StoreError {
        StoreError::Output(e)
    }
}

/// Result alias for this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An open case.
pub struct Case {
    conn: Connection,
    dir: PathBuf,
}

impl Case {
    /// Opens an existing case folder.
    pub fn open(dir: &Path) -> Result<Case> {
        let db = dir.join(DB_FILE);
        if !db.is_file() {
            return Err(StoreError::NotACase(dir.to_path_buf()));
        }
        Case::connect(dir)
    }

    /// Opens a case folder, creating it (and its database) if needed.
    pub fn create(dir: &Path) -> Result<Case> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Case::connect(dir)
    }

    fn connect(dir: &Path) -> Result<Case> {
        let conn = Connection::open(dir.join(DB_FILE))?;
        // 16 KiB pages for a new case (SQLite ignores this for an existing one): a bulk load's index builds
        // and commit touch a quarter as many pages as with the default 4 KiB (index builds 1.65 -> 1.55 s,
        // commit 0.47 -> 0.27 s per 1M events).
        conn.pragma_update(None, "page_size", 16_384)?;
        // WAL, so readers never wait for a writer. While another process bulk-loads the case (which runs
        // with a rollback journal, see `ingest`) the switch is refused at once; the case is then used in
        // the mode it is in, and the next open switches it back.
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                tracing::debug!("case is busy; staying in its current journal mode");
            }
            other => other?,
        }
        conn.busy_timeout(Duration::from_secs(30))?;
        // One commit per ingest: full durability costs nothing measurable.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
        let mut case = Case {
            conn,
            dir: dir.to_path_buf(),
        };
        case.migrate()?;
        Ok(case)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = schema::MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: self.dir.clone(),
                found: version,
                known,
            });
        }
        if version == known {
            return Ok(());
        }
        // Foreign keys are off while migrations run (a table rebuild drops and renames tables, which they
        // would turn into cascading deletes) and checked inside each migration's transaction instead.
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        let result = (|| -> Result<()> {
            for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
                let tx = self.conn.transaction()?;
                tx.execute_batch(sql)?;
                with_sort_cache(&tx, || {
                    Ok(tx.execute_batch(&schema::create_secondary_indexes())?)
                })?;
                let broken: Option<String> = tx
                    .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                    .optional()?;
                if let Some(table) = broken {
                    return Err(StoreError::Migration {
                        path: self.dir.clone(),
                        version: i + 1,
                        message: format!("rows of {table} would point nowhere"),
                    });
                }
                tx.pragma_update(None, "user_version", (i + 1) as i64)?;
                tx.commit()?;
            }
            Ok(())
        })();
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        result
    }

    /// The case folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The idle gap that ends a session (ms), from the case's settings.
    pub fn idle_gap_ms(&self) -> Result<i64> {
        let v: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM settings WHERE key='idle_gap_ms'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.and_then(|s| s.parse().ok())
            .unwrap_or(sessions::DEFAULT_IDLE_GAP_MS))
    }

    /// Changes the idle gap and rebuilds sessions with it (one transaction).
    pub fn set_idle_gap_ms(&mut self, ms: i64) -> Result<()> {
        self.without_foreign_key_enforcement(|case| {
            let tx = case.conn.transaction()?;
            tx.execute(
                "INSERT INTO settings(key, value) VALUES('idle_gap_ms', ?1)
                 ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                [ms.to_string()],
            )?;
            rebuild_derived(&tx, ms, Derive::All)?;
            query::refresh_summary(&tx)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Runs `f` (which opens and ends its own transaction) with foreign-key enforcement off, and turns it
    /// back on after. For the store's own bulk writes only: an ingest and a sessions rebuild write rows
    /// whose parents they have just written or read in the same transaction, and with enforcement on SQLite
    /// looks every parent up again — two lookups per session cell, which made writing the cells four times
    /// slower, and a row-by-row delete of the derived tables instead of a truncate. The declared keys stay
    /// in the schema; the tests check them with `foreign_key_check` after every kind of ingest. (The pragma
    /// is ignored inside a transaction, hence a wrapper around one.)
    fn without_foreign_key_enforcement<T>(
        &mut self,
        f: impl FnOnce(&mut Case) -> Result<T>,
    ) -> Result<T> {
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        let result = f(self);
        let back = self.conn.pragma_update(None, "foreign_keys", "ON");
        let value = result?;
        back?;
        Ok(value)
    }

    /// Stores the records of `stream` (what `nbtrail_ingest::RecordStream::open` reads) as one atomic run.
    /// `progress` is called from this thread now and then; setting `cancel` stops the run and leaves the
    /// case unchanged.
    pub fn ingest(
        &mut self,
        stream: RecordStream,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<IngestReport> {
        let started = Instant::now();
        let bytes_total = stream.bytes_total();
        // Bulk load: when this run brings more records than the case holds (estimated from the input size),
        // maintaining the secondary indexes row by row costs more than rebuilding them by sorting at the end,
        // and a rollback journal costs less than the WAL: a transaction that mostly appends new pages
        // journals almost nothing, where the WAL would write every page twice (log, then checkpoint).
        let existing: i64 =
            self.conn
                .query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))?;
        let bulk = bytes_total / 400 > existing as u64 && bytes_total > 16 << 20;
        // Only possible while no other connection has the case open (the app's own reader, say); otherwise
        // the run simply stays in WAL mode.
        let rollback_journal = bulk
            && self
                .conn
                .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0))
                .is_ok_and(|m| m.eq_ignore_ascii_case("delete"));
        // Everything new, or a bulk load: rebuild the derived tables from scratch (sorted loads). Otherwise
        // only the notebooks this run's new events touch are re-sessionized.
        let incremental = !bulk && existing > 0;
        let result = self.without_foreign_key_enforcement(|case| {
            case.ingest_run(
                &stream,
                bytes_total,
                bulk,
                incremental,
                started,
                cancel,
                progress,
            )
        });
        if rollback_journal {
            // Back to WAL for readers; a failure here leaves a correct case in rollback mode, and the next
            // open sets WAL again.
            if let Err(e) = self.conn.pragma_update(None, "journal_mode", "WAL") {
                tracing::warn!("could not switch the case back to WAL mode: {e}");
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn ingest_run(
        &mut self,
        stream: &RecordStream,
        bytes_total: u64,
        bulk: bool,
        incremental: bool,
        started: Instant,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<IngestReport> {
        let idle_gap = self.idle_gap_ms()?;
        let inputs = stream.inputs();
        let paths = stream.paths();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // What counts as new is decided inside the transaction: another process may have committed a run
        // since `ingest` looked, and its events are already derived.
        let derive_scope = if incremental {
            Derive::Since(
                tx.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))?,
            )
        } else {
            Derive::All
        };
        let started_at = format_time(chrono::Utc::now());
        tx.execute(
            "INSERT INTO ingest_runs(started_at, examiner, host, tool_version, inputs) VALUES(?1,?2,?3,?4,?5)",
            params![
                started_at,
                examiner(),
                host(),
                env!("CARGO_PKG_VERSION"),
                serde_json::to_string(&paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>())
                    .unwrap_or_default()
            ],
        )?;
        let run_id = tx.last_insert_rowid();
        if bulk {
            tx.execute_batch(&schema::drop_secondary_indexes())?;
        }

        let mut report = IngestReport {
            run_id,
            files: inputs.files.len() as u64,
            skipped_files: skipped_by_name(inputs),
            ..IngestReport::default()
        };
        let mut writer = Writer::new(&tx, run_id)?;
        let mut prog = Progress {
            files_total: inputs.files.len() as u64,
            bytes_total,
            ..Progress::default()
        };
        let mut last_progress = Instant::now();
        let mut waited = Duration::ZERO;
        // Fault injection for crash tests (`tests/bad_input.rs`): stop inside the transaction after this many
        // records and wait to be killed. Debug builds only: a release build (what auditors run) ignores the
        // variable, so no environment can make a production ingest hang.
        let pause_after: Option<u64> = if cfg!(debug_assertions) {
            std::env::var("NBTRAIL_FAULT_PAUSE_AFTER_RECORDS")
                .ok()
                .and_then(|v| v.parse().ok())
        } else {
            None
        };
        let outcome: Result<()> = (|| {
            loop {
                // The reader thread parses while this thread writes.
                let t_wait = Instant::now();
                let Some(msg) = stream.recv() else { break };
                waited += t_wait.elapsed();
                if cancel.load(Ordering::Relaxed) {
                    return Err(StoreError::Cancelled);
                }
                match msg {
                    Record::FileStart(file) => {
                        prog.current_file = file.path.display().to_string();
                        writer.start_file(&file)?;
                        // Every file start is reported (besides the 100 ms ticks): the progress bar names
                        // the file at once, and a cancel requested from the callback is seen during the
                        // run even when the whole run takes less than a tick.
                        prog.counts(&report, stream.bytes_read());
                        progress(&prog);
                    }
                    Record::Item(item, key) => {
                        writer.item(item, key, &mut report)?;
                        if pause_after
                            == Some(
                                report.events
                                    + report.duplicates
                                    + report.conflicts
                                    + report.error_count,
                            )
                        {
                            eprintln!(
                                "nbtrail: fault injection: paused inside the ingest transaction"
                            );
                            loop {
                                std::thread::sleep(Duration::from_secs(3600));
                            }
                        }
                    }
                    Record::FileEnd(summary) => {
                        prog.files_done += 1;
                        match writer.end_file(summary?, &mut report)? {
                            FileOutcome::Read(f) => report.file_reports.push(f),
                            FileOutcome::Skipped(s) => report.skipped_files.push(s),
                        }
                    }
                }
                if last_progress.elapsed() > Duration::from_millis(100) {
                    last_progress = Instant::now();
                    prog.counts(&report, stream.bytes_read());
                    progress(&prog);
                }
            }
            Ok(())
        })();
        let outcome = outcome.and_then(|()| writer.finish_blocks());
        drop(writer);
        outcome?; // dropping `tx` rolls back
        report.files = report.file_reports.len() as u64;
        let t_written = started.elapsed();
        report.lines = report.events + report.duplicates + report.conflicts + report.error_count;
        tx.execute(
            "UPDATE ingest_runs SET finished_at=?2, files=?3, lines=?4, events=?5, duplicates=?6,
                 errors=?7, blank_lines=?8, header_lines=?9, conflicts=?10 WHERE id=?1",
            params![
                run_id,
                format_time(chrono::Utc::now()),
                report.files,
                report.lines,
                report.events,
                report.duplicates,
                report.error_count,
                report.blank_lines,
                report.header_lines,
                report.conflicts
            ],
        )?;
        let t_index = Instant::now();
        // The reader thread is done: let SQLite's sorter use the second core for the index builds.
        tx.pragma_update(None, "threads", 2)?;
        with_sort_cache(&tx, || {
            Ok(tx.execute_batch(&schema::create_secondary_indexes())?)
        })?;
        let index = t_index.elapsed();
        let t_derive = Instant::now();
        let derived = rebuild_derived(&tx, idle_gap, derive_scope)?;
        report.sessions = derived.0;
        report.trail_gaps = derived.1;
        let derive = t_derive.elapsed();
        custody::append(
            &tx,
            "ingest",
            serde_json::json!({
                "run_id": run_id,
                "files": report.file_reports.iter().map(|f| serde_json::json!({
                    "file": f.file, "sha256": f.sha256, "lines": f.lines, "events": f.events,
                    "duplicates": f.duplicates, "conflicts": f.conflicts, "errors": f.errors,
                })).collect::<Vec<_>>(),
                "lines": report.lines,
                "events": report.events,
                "duplicates": report.duplicates,
                "conflicts": report.conflicts,
                "errors": report.error_count,
            }),
        )?;
        // The home view's summary, cached for this data (computing it is linear in the case).
        query::refresh_summary(&tx)?;
        let t_commit = Instant::now();
        tx.commit()?;
        tracing::debug!(
            ?t_written,
            ?waited,
            bulk,
            ?index,
            ?derive,
            commit = ?t_commit.elapsed(),
            "ingest phases (waited: writer idle, waiting for the reader)"
        );
        prog.counts(&report, stream.bytes_read());
        prog.files_done = prog.files_total;
        progress(&prog);
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }
}

/// Reads `paths` as an ingest would, without a case: every record parsed and normalized, nothing stored,
/// no duplicate detection. Files from directories that are not logs are skipped as in an ingest; a named
/// file that is not a log is an error. The parse-only baseline of the ingest benchmark, too.
pub fn check(paths: &[PathBuf]) -> Result<IngestReport> {
    let started = Instant::now();
    let stream = RecordStream::open(paths, &[])?;
    let mut report = IngestReport {
        skipped_files: skipped_by_name(stream.inputs()),
        ..IngestReport::default()
    };
    let mut current: Option<(nbtrail_ingest::InputFile, FileReport, Vec<RecordError>)> = None;
    while let Some(record) = stream.recv() {
        let (file, mut f, errors, sum) = match record {
            Record::FileStart(file) => {
                let name = file.path.display().to_string();
                current = Some((
                    file,
                    FileReport {
                        file: name,
                        ..FileReport::default()
                    },
                    Vec::new(),
                ));
                continue;
            }
            Record::Item(item, _) => {
                let Some((_, f, errors)) = current.as_mut() else {
                    continue;
                };
                f.lines += 1;
                match item {
                    Item::Event(_) => f.events += 1,
                    Item::Error(e) => {
                        f.errors += 1;
                        if errors.len() < REPORT_ERROR_CAP {
                            errors.push(e);
                        }
                    }
                }
                continue;
            }
            Record::FileEnd(summary) => {
                let Some((file, f, errors)) = current.take() else {
                    continue;
                };
                (file, f, errors, summary?)
            }
        };
        let name = f.file.clone();
        if f.events == 0 && f.errors > 0 {
            let first = errors.first().cloned().unwrap_or(RecordError {
                line: 0,
                byte_offset: 0,
                message: String::new(),
            });
            let err = StoreError::NotALog {
                file: name.clone(),
                records: f.lines,
                line: first.line,
                message: first.message,
            };
            if !file.from_directory {
                return Err(err);
            }
            report.skipped_files.push(skipped_as_not_a_log(err));
            continue;
        }
        f.sha256 = sum.sha256;
        f.size_bytes = sum.size_bytes;
        f.gzip = sum.gzip;
        f.framing = framing_name(sum.framing).into();
        f.blank_lines = sum.blank_lines;
        f.header_lines = sum.header_lines;
        report.lines += f.lines;
        report.events += f.events;
        report.error_count += f.errors;
        report.blank_lines += f.blank_lines;
        report.header_lines += f.header_lines;
        for e in errors {
            if report.errors.len() < REPORT_ERROR_CAP {
                report.errors.push(ErrorEntry {
                    location: nbtrail_model::locate(&name, &f.framing, e.line, e.byte_offset),
                    file: name.clone(),
                    line: e.line,
                    byte_offset: e.byte_offset,
                    message: e.message,
                });
            } else {
                report.errors_truncated = true;
            }
        }
        report.file_reports.push(f);
    }
    report.files = report.file_reports.len() as u64;
    report.errors_truncated |= report.errors.len() as u64 != report.error_count;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Makes the temporary table `temp.{table}` (one `id` column of SQL type `id_type`, its primary key) hold
/// exactly `ids`, repeats once: what a query joins from to follow a selection rather than walk the case.
/// `table` and `id_type` are this crate's own literals.
fn fill_temp_ids<T: rusqlite::ToSql>(
    conn: &Connection,
    table: &str,
    id_type: &str,
    ids: impl IntoIterator<Item = T>,
) -> Result<()> {
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {table}(id {id_type} PRIMARY KEY); DELETE FROM temp.{table};"
    ))?;
    let mut ins = conn.prepare(&format!(
        "INSERT OR IGNORE INTO temp.{table}(id) VALUES (?1)"
    ))?;
    for id in ids {
        ins.execute([id])?;
    }
    Ok(())
}

/// Files a directory walk left out because of their names.
fn skipped_by_name(inputs: &nbtrail_ingest::Inputs) -> Vec<SkippedFile> {
    inputs
        .skipped
        .iter()
        .map(|(p, r)| SkippedFile {
            file: p.display().to_string(),
            reason: r.clone(),
        })
        .collect()
}

/// A file from a directory that turned out to hold no audit record: skipped, with the reason.
fn skipped_as_not_a_log(err: StoreError) -> SkippedFile {
    match err {
        StoreError::NotALog { ref file, .. } => {
            let text = err.to_string();
            let reason = text
                .strip_prefix(&format!("{file}: "))
                .unwrap_or(&text)
                .to_string();
            SkippedFile {
                file: file.clone(),
                reason,
            }
        }
        other => SkippedFile {
            file: String::new(),
            reason: other.to_string(),
        },
    }
}

fn framing_name(f: nbtrail_ingest::framing::Framing) -> &'static str {
    match f {
        nbtrail_ingest::framing::Framing::JsonLines => "json_lines",
        nbtrail_ingest::framing::Framing::JsonArray => "json_array",
        nbtrail_ingest::framing::Framing::JsonDocuments => "json_documents",
        nbtrail_ingest::framing::Framing::Parquet => "parquet",
        nbtrail_ingest::framing::Framing::Avro => "avro",
        nbtrail_ingest::framing::Framing::AvroCapture => "avro_capture",
        nbtrail_ingest::framing::Framing::Csv => "csv",
    }
}

/// Errors kept in the in-memory report; all of them are always in the case (`ingest_errors`).
pub const REPORT_ERROR_CAP: usize = 10_000;

/// A file found in a directory but not read.
#[derive(Debug, Clone, Default, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct SkippedFile {
    /// The path.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// One rejected record.
#[derive(Debug, Clone, Default, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct ErrorEntry {
    /// The file.
    pub file: String,
    /// 1-based line where the record starts.
    pub line: u64,
    /// Byte offset where the record starts (decompressed).
    pub byte_offset: u64,
    /// Why it was rejected.
    pub message: String,
    /// Where, as shown to people ([`nbtrail_model::locate`]: `file:line`, or a row group / event).
    pub location: String,
}

/// Per-file accounting.
#[derive(Debug, Clone, Default, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct FileReport {
    /// The path.
    pub file: String,
    /// SHA-256 of the file as stored.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Whether gzip-compressed.
    pub gzip: bool,
    /// `json_lines`, `json_array` or `csv`.
    pub framing: String,
    /// Records read (= events + duplicates + conflicts + errors).
    pub lines: u64,
    /// New events stored.
    pub events: u64,
    /// Records already in the case.
    pub duplicates: u64,
    /// Records whose natural key is in the case with other content (kept in `conflicts`).
    pub conflicts: u64,
    /// Rejected records.
    pub errors: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// CSV header rows.
    pub header_lines: u64,
}

/// What an ingest run did. `lines == events + duplicates + conflicts + error_count` always holds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct IngestReport {
    /// The run's id in the case.
    pub run_id: i64,
    /// Files read.
    pub files: u64,
    /// Records read (see the crate docs).
    pub lines: u64,
    /// New events stored.
    pub events: u64,
    /// Records that were already in the case (or earlier in this run).
    pub duplicates: u64,
    /// Records whose natural key was already in the case with other content: kept, see [`Case::conflicts`].
    pub conflicts: u64,
    /// Rejected records: the first [`REPORT_ERROR_CAP`]; all are in the case.
    pub errors: Vec<ErrorEntry>,
    /// Number of rejected records.
    pub error_count: u64,
    /// True when `errors` holds fewer than `error_count`.
    pub errors_truncated: bool,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// CSV header rows.
    pub header_lines: u64,
    /// Per file.
    pub file_reports: Vec<FileReport>,
    /// Files in directories that were not read.
    pub skipped_files: Vec<SkippedFile>,
    /// Sessions in the case after the run.
    pub sessions: u64,
    /// Trail gaps in the case after the run.
    pub trail_gaps: u64,
    /// Wall-clock time of the run.
    pub elapsed_ms: u64,
}

/// Progress of a running ingest.
#[derive(Debug, Clone, Default, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Progress {
    /// Files finished.
    pub files_done: u64,
    /// Files to read.
    pub files_total: u64,
    /// Raw bytes read.
    pub bytes_read: u64,
    /// Raw bytes to read.
    pub bytes_total: u64,
    /// Events stored so far.
    pub events: u64,
    /// Duplicates so far.
    pub duplicates: u64,
    /// Conflicts so far.
    pub conflicts: u64,
    /// Errors so far.
    pub errors: u64,
    /// File being read.
    pub current_file: String,
}

impl Progress {
    /// Takes the run's counters so far.
    fn counts(&mut self, report: &IngestReport, bytes_read: u64) {
        self.bytes_read = bytes_read;
        self.events = report.events;
        self.duplicates = report.duplicates;
        self.conflicts = report.conflicts;
        self.errors = report.error_count;
    }
}

/// Records of a file held back until the file proves to be a log (its first event or duplicate).
const HOLD_BACK_LIMIT: usize = 10_000;

struct Writer<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    run_id: i64,
    insert: rusqlite::Statement<'a>,
    insert_block: rusqlite::Statement<'a>,
    /// Blocks to compress go to a helper thread (whichever core is idle does the work) and come back
    /// compressed on `compressed`; the order blocks are stored in does not matter.
    to_compress: Option<mpsc::SyncSender<payload::PlainBlock>>,
    compressed: mpsc::Receiver<std::io::Result<payload::Block>>,
    compressor_thread: Option<std::thread::JoinHandle<()>>,
    /// The open payload block: the payloads of new events (duplicates' are not kept).
    blocks: payload::BlockBuilder,
    find: rusqlite::Statement<'a>,
    conflict: rusqlite::Statement<'a>,
    dup: rusqlite::Statement<'a>,
    err: rusqlite::Statement<'a>,
    file_id: i64,
    file_name: String,
    cur: FileReport,
    /// Errors of the current file not yet written (until it is known to be a log).
    held: Vec<RecordError>,
    proven: bool,
    /// The current file came from a directory walk (skip it, rather than fail, if it is not a log).
    from_directory: bool,
    /// The current file was found not to be a log; its remaining records are ignored.
    skipping: Option<SkippedFile>,
}

/// What became of a file.
enum FileOutcome {
    Read(FileReport),
    Skipped(SkippedFile),
}

impl<'a> Writer<'a> {
    fn new(tx: &'a rusqlite::Transaction<'a>, run_id: i64) -> Result<Self> {
        let mut compressor = payload::Compressor::new().map_err(zstd_error)?;
        let (to_compress, plain_blocks) = mpsc::sync_channel::<payload::PlainBlock>(8);
        let (send_compressed, compressed) = mpsc::channel();
        let compressor_thread = std::thread::Builder::new()
            .name("nbtrail-zstd".into())
            .spawn(move || {
                for block in plain_blocks {
                    if send_compressed.send(compressor.compress(&block)).is_err() {
                        return;
                    }
                }
            })
            .map_err(zstd_error)?;
        Ok(Writer {
            tx,
            run_id,
            insert: tx.prepare(
                "INSERT INTO events(natural_key, time_ms, user, workspace_id, service, action, notebook_id,
                    notebook_path, cluster_id, command_id, language, command_text, status, duration_ms,
                    source_ip, user_agent, request_id, web_session_id, response_status, response_error,
                    shape, source_file_id, line, byte_offset, payload_block, payload_index)
                 VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26)
                 ON CONFLICT(time_ms, natural_key) DO NOTHING",
            )?,
            insert_block: tx.prepare(payload::INSERT_BLOCK)?,
            to_compress: Some(to_compress),
            compressed,
            compressor_thread: Some(compressor_thread),
            blocks: payload::BlockBuilder::new(payload::BlockBuilder::first_free_id(tx)?),
            find: tx.prepare(&format!(
                "SELECT id, {} FROM events WHERE time_ms=?1 AND natural_key=?2",
                CONFLICT_FIELDS
                    .iter()
                    .map(|(column, _)| *column)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))?,
            conflict: tx.prepare(
                "INSERT INTO conflicts(event_id, source_file_id, line, byte_offset, fields, raw)
                 VALUES(?1,?2,?3,?4,?5,?6)",
            )?,
            dup: tx.prepare(
                "INSERT INTO duplicates(source_file_id, line, byte_offset, event_id) VALUES(?1,?2,?3,?4)",
            )?,
            err: tx.prepare(
                "INSERT INTO ingest_errors(source_file_id, line, byte_offset, message) VALUES(?1,?2,?3,?4)",
            )?,
            file_id: 0,
            file_name: String::new(),
            cur: FileReport::default(),
            held: Vec::new(),
            proven: false,
            from_directory: false,
            skipping: None,
        })
    }

    fn start_file(&mut self, file: &nbtrail_ingest::InputFile) -> Result<()> {
        self.file_name = file.path.display().to_string();
        self.from_directory = file.from_directory;
        self.skipping = None;
        // The hash is filled in when the file has been read in full (same transaction).
        self.tx.execute(
            "INSERT INTO source_files(run_id, path, sha256, size_bytes, gzip, framing, lines, events,
                 duplicates, errors, blank_lines, header_lines) VALUES(?1, ?2, '', 0, 0, '', 0,0,0,0,0,0)",
            params![self.run_id, self.file_name],
        )?;
        self.file_id = self.tx.last_insert_rowid();
        self.cur = FileReport {
            file: self.file_name.clone(),
            ..FileReport::default()
        };
        self.held.clear();
        self.proven = false;
        Ok(())
    }

    /// Closes the open block if it is full (or `now`), has it compressed, and stores the blocks compressed
    /// so far.
    fn cut_block(&mut self, now: bool) -> Result<()> {
        if now || self.blocks.is_full() {
            if let Some(block) = self.blocks.finish_block() {
                let sent = self
                    .to_compress
                    .as_ref()
                    .is_some_and(|c| c.send(block).is_ok());
                if !sent {
                    return Err(self.compressor_gone());
                }
            }
            while let Ok(done) = self.compressed.try_recv() {
                self.store_block(done)?;
            }
        }
        Ok(())
    }

    fn store_block(&mut self, done: std::io::Result<payload::Block>) -> Result<()> {
        payload::insert_block(&mut self.insert_block, &done.map_err(zstd_error)?)
    }

    fn compressor_gone(&mut self) -> StoreError {
        let _ = self
            .compressor_thread
            .take()
            .map(std::thread::JoinHandle::join);
        zstd_error(std::io::Error::other("the compression thread stopped"))
    }

    /// Closes the last block, waits for the blocks still being compressed and stores them.
    fn finish_blocks(&mut self) -> Result<()> {
        self.cut_block(true)?;
        self.to_compress = None;
        while let Ok(done) = self.compressed.recv() {
            self.store_block(done)?;
        }
        if let Some(t) = self.compressor_thread.take()
            && t.join().is_err()
        {
            return Err(self.compressor_gone());
        }
        Ok(())
    }

    fn item(
        &mut self,
        item: Item,
        key: Option<nbtrail_model::NaturalKey>,
        report: &mut IngestReport,
    ) -> Result<()> {
        if self.skipping.is_some() {
            return Ok(());
        }
        self.cur.lines += 1;
        match item {
            Item::Event(ev) => {
                self.prove(report)?;
                let key = key.unwrap_or_else(|| ev.natural_key());
                match self.store(&ev, key)? {
                    Stored::New => {
                        self.cur.events += 1;
                        report.events += 1;
                    }
                    Stored::Duplicate => {
                        self.cur.duplicates += 1;
                        report.duplicates += 1;
                    }
                    Stored::Conflict => {
                        self.cur.conflicts += 1;
                        report.conflicts += 1;
                    }
                }
            }
            Item::Error(e) => {
                self.cur.errors += 1;
                if self.proven {
                    report.error_count += 1;
                    self.write_error(&e, report)?;
                } else {
                    self.held.push(e);
                    if self.held.len() >= HOLD_BACK_LIMIT {
                        self.reject()?;
                    }
                }
            }
        }
        Ok(())
    }

    fn not_a_log(&self) -> StoreError {
        let first = self.held.first();
        StoreError::NotALog {
            file: self.file_name.clone(),
            records: self.cur.lines,
            line: first.map_or(0, |e| e.line),
            message: first.map_or_else(String::new, |e| e.message.clone()),
        }
    }

    /// The current file holds no audit record: fail the run for a file the user named, skip (and report)
    /// one found in a directory. Nothing of it has been written but its `source_files` row.
    fn reject(&mut self) -> Result<()> {
        let err = self.not_a_log();
        if !self.from_directory {
            return Err(err);
        }
        self.tx
            .execute("DELETE FROM source_files WHERE id = ?1", [self.file_id])?;
        self.held.clear();
        self.skipping = Some(skipped_as_not_a_log(err));
        Ok(())
    }

    fn prove(&mut self, report: &mut IngestReport) -> Result<()> {
        if !self.proven {
            self.proven = true;
            for e in std::mem::take(&mut self.held) {
                report.error_count += 1;
                self.write_error(&e, report)?;
            }
        }
        Ok(())
    }

    fn write_error(&mut self, e: &RecordError, report: &mut IngestReport) -> Result<()> {
        self.err
            .execute(params![self.file_id, e.line, e.byte_offset, e.message])?;
        if report.errors.len() < REPORT_ERROR_CAP {
            // Located when the file's framing is known (its end).
            report.errors.push(ErrorEntry {
                file: self.file_name.clone(),
                line: e.line,
                byte_offset: e.byte_offset,
                message: e.message.clone(),
                location: String::new(),
            });
        } else {
            report.errors_truncated = true;
        }
        Ok(())
    }

    /// Stores an event; when its natural key is already in the case, records it as a duplicate of the
    /// stored event, or — when a compared field differs — as a conflict with it.
    fn store(&mut self, e: &Event, key: nbtrail_model::NaturalKey) -> Result<Stored> {
        // The payload's place if the event is new: the next entry of the open block.
        let (block, index) = self.blocks.next_entry();
        let n = self.insert.execute(params![
            &key.0[..],
            e.time.timestamp_millis(),
            e.user,
            e.workspace_id,
            e.service,
            e.action,
            e.notebook_id,
            e.notebook_path,
            e.cluster_id,
            e.command_id,
            e.language,
            e.command_text,
            e.status,
            e.duration_ms,
            e.source_ip,
            e.user_agent,
            e.request_id,
            e.web_session_id,
            e.response_status,
            e.response_error,
            e.shape.as_str(),
            self.file_id,
            e.provenance.line,
            e.provenance.byte_offset,
            block,
            index,
        ])?;
        if n == 1 {
            self.blocks.push(&params_json(e), &e.raw);
            self.cut_block(false)?;
            return Ok(Stored::New);
        }
        let (original, stored): (i64, Vec<SqlValue>) =
            self.find
                .query_row(params![e.time.timestamp_millis(), &key.0[..]], |r| {
                    Ok((
                        r.get(0)?,
                        (1..=CONFLICT_FIELDS.len())
                            .map(|i| r.get(i))
                            .collect::<rusqlite::Result<_>>()?,
                    ))
                })?;
        let differing = differing_fields(e, &stored);
        if differing.is_empty() {
            self.dup.execute(params![
                self.file_id,
                e.provenance.line,
                e.provenance.byte_offset,
                original
            ])?;
            return Ok(Stored::Duplicate);
        }
        self.conflict.execute(params![
            original,
            self.file_id,
            e.provenance.line,
            e.provenance.byte_offset,
            serde_json::Value::Array(differing).to_string(),
            e.raw
        ])?;
        Ok(Stored::Conflict)
    }

    fn end_file(
        &mut self,
        summary: nbtrail_ingest::FileSummary,
        report: &mut IngestReport,
    ) -> Result<FileOutcome> {
        if !self.proven && !self.held.is_empty() {
            self.reject()?;
        }
        if let Some(s) = self.skipping.take() {
            return Ok(FileOutcome::Skipped(s));
        }
        let framing = framing_name(summary.framing);
        for e in report
            .errors
            .iter_mut()
            .rev()
            .take_while(|e| e.location.is_empty())
        {
            e.location = nbtrail_model::locate(&e.file, framing, e.line, e.byte_offset);
        }
        self.cur.sha256 = summary.sha256;
        self.cur.size_bytes = summary.size_bytes;
        self.cur.gzip = summary.gzip;
        self.cur.framing = framing.into();
        self.cur.blank_lines = summary.blank_lines;
        self.cur.header_lines = summary.header_lines;
        report.blank_lines += summary.blank_lines;
        report.header_lines += summary.header_lines;
        let c = &self.cur;
        self.tx.execute(
            "UPDATE source_files SET sha256=?2, size_bytes=?3, gzip=?4, framing=?5, lines=?6, events=?7,
                 duplicates=?8, errors=?9, blank_lines=?10, header_lines=?11, conflicts=?12 WHERE id=?1",
            params![
                self.file_id,
                c.sha256,
                c.size_bytes,
                c.gzip,
                c.framing,
                c.lines,
                c.events,
                c.duplicates,
                c.errors,
                c.blank_lines,
                c.header_lines,
                c.conflicts
            ],
        )?;
        Ok(FileOutcome::Read(self.cur.clone()))
    }
}

/// What became of one event record.
enum Stored {
    New,
    Duplicate,
    Conflict,
}

/// The event columns compared between a record and the stored event with its natural key (see the
/// crate docs, "Duplicates and conflicts"), each with how the record's value is read: a difference in any of
/// them (a value against none included) is a conflict.
pub const CONFLICT_FIELDS: &[(&str, FieldOf)] = &[
    ("user", |e| text(&e.user)),
    ("source_ip", |e| text(&e.source_ip)),
    ("response_status", |e| {
        e.response_status.map_or(SqlValue::Null, SqlValue::Integer)
    }),
    ("response_error", |e| text(&e.response_error)),
    ("status", |e| text(&e.status)),
    ("command_text", |e| text(&e.command_text)),
    ("language", |e| text(&e.language)),
    ("notebook_id", |e| text(&e.notebook_id)),
    ("cluster_id", |e| text(&e.cluster_id)),
    ("command_id", |e| text(&e.command_id)),
    ("request_id", |e| text(&e.request_id)),
];

/// How a compared field's value is read from a record.
pub type FieldOf = fn(&Event) -> SqlValue;

fn text(v: &Option<String>) -> SqlValue {
    v.clone().map_or(SqlValue::Null, SqlValue::Text)
}

/// The compared fields that differ between `e` and the stored values (in [`CONFLICT_FIELDS`] order), as
/// `{field, stored, record}` objects.
fn differing_fields(e: &Event, stored: &[SqlValue]) -> Vec<serde_json::Value> {
    let show = |v: &SqlValue| match v {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(i) => (*i).into(),
        SqlValue::Real(f) => (*f).into(),
        SqlValue::Text(t) => t.clone().into(),
        SqlValue::Blob(b) => hex::encode(b).into(),
    };
    CONFLICT_FIELDS
        .iter()
        .zip(stored)
        .filter_map(|((name, of), stored)| {
            let mine = of(e);
            (mine != *stored).then(
                || serde_json::json!({"field": name, "stored": show(stored), "record": show(&mine)}),
            )
        })
        .collect()
}

/// A failure of payload compression (the zstd context or its thread).
fn zstd_error(source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: "zstd".into(),
        source,
    }
}

/// Who is acting: `NBTRAIL_EXAMINER`, else the OS user.
pub fn examiner() -> String {
    std::env::var("NBTRAIL_EXAMINER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// This machine's name (for custody entries and bundles).
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// The `notebook_id` of a SQL warehouse session starts with this: `sql-warehouse/<warehouse>/<user>`.
pub const WAREHOUSE_SESSION_PREFIX: &str = "sql-warehouse/";
/// The events that are SQL warehouse statements (cells of warehouse sessions).
/// (`commandSubmit` from the audit log, `queryHistory` rows from `system.query.history`.)
/// A history row of a statement a notebook ran has the notebook's id and is that notebook's event.
const WAREHOUSE_STATEMENT_SQL: &str = warehouse_statement_sql!();
/// A statement event's warehouse session key, in SQL.
const WAREHOUSE_KEY_SQL: &str = "('sql-warehouse/' || cluster_id || '/' || coalesce(user, ''))";

/// What the derived tables (notebook paths, sessions, trail gaps) must be brought up to date with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Derive {
    /// Rebuild them from all events.
    All,
    /// Events with an id above this one are new; everything else was derived before. Paths of the new
    /// events are added, and only the notebooks they touch are re-sessionized: a session depends only on
    /// its own notebook's events and paths, and on the end of the trail, which decides whether the last
    /// session of a notebook is still `open` or went `idle` (updated for the untouched ones). Gives exactly
    /// what `All` gives (tested by ingesting the sample logs in pieces).
    Since(i64),
}

/// The page cache of a case's connection, in KiB: the write path's hot pages (the tail of the events
/// table and of its (time, key) index) and the readers' working set.
const PAGE_CACHE_KIB: i64 = 262_144;

/// The page cache while SQLite sorts for a bulk index build or an `ORDER BY` load, in KiB. SQLite sizes
/// the sorter's in-memory runs from the cache size (one run per cache's worth of keys, sorted as a linked
/// list, then merged from temporary files): runs of 256 MB sort far outside the CPU's caches, while runs of
/// 16 MB stay inside them, and the merge of the extra runs costs less than it saves. Measured on the
/// 10M-event bench case (2026-11-30): the covering notebook index builds in 4.3 s instead of 8.0 s (1M:
/// 0.4 s instead of 0.7 s), peak memory 82 MB instead of 855 MB.
const SORT_CACHE_KIB: i64 = 16_384;

/// Runs `f` with the page cache at [`SORT_CACHE_KIB`], then restores [`PAGE_CACHE_KIB`] (also when `f`
/// fails; its error wins).
fn with_sort_cache<T>(c: &rusqlite::Connection, f: impl FnOnce() -> Result<T>) -> Result<T> {
    c.pragma_update(None, "cache_size", -SORT_CACHE_KIB)?;
    let out = f();
    let restored = c.pragma_update(None, "cache_size", -PAGE_CACHE_KIB);
    let out = out?;
    restored?;
    Ok(out)
}

/// The text of [`SESSION_ROWS_SQL`] with a filter on the notebooks (`AND …`), one place for both scopes.
macro_rules! session_rows_sql {
    ($filter:literal) => {
        concat!(
            "SELECT id, notebook_id, coalesce(cluster_id, ''), action, time_ms, duration_ms, command_id, user,
                    service, shape = 'jupyter_capture', natural_key
             FROM events WHERE notebook_id IS NOT NULL",
            $filter,
            " ORDER BY notebook_id, coalesce(cluster_id, ''), time_ms"
        )
    };
}

/// The rows sessionization reads, in its order: a walk of the partial notebook index in its own order (no
/// sort), reading nothing else (the index covers every column named here, including the capture test —
/// it must stay the index's expression, word for word; `sessionization_reads_only_the_notebook_index`
/// checks the plan). The few non-session actions that carry a notebook id are skipped by the caller rather
/// than in SQL, which would make SQLite sort instead.
const SESSION_ROWS_SQL: &str = session_rows_sql!("");

/// The notebook paths recorded by the events after `?1`, read by id range (`NOT INDEXED`): SQLite would
/// otherwise walk every attach and detach of the whole case through the action index and look each one up
/// in the table — 2.6 s in a 10M-event case, even for an incremental ingest of a few events.
const NEW_PATHS_SQL: &str = "INSERT INTO notebook_paths(notebook_id, path, time_ms, event_id, action)
       SELECT notebook_id, notebook_path, time_ms, id, action FROM events NOT INDEXED
       WHERE id > ?1 AND notebook_id IS NOT NULL AND notebook_path IS NOT NULL
         AND action IN ('attachNotebook','createNotebook','renameNotebook','moveNotebook','importNotebook',
                        'cloneNotebook','restoreNotebook','detachNotebook','deleteNotebook')";

/// [`SESSION_ROWS_SQL`] for the notebooks an incremental ingest touched.
const SESSION_ROWS_TOUCHED_SQL: &str =
    session_rows_sql!(" AND notebook_id IN temp.touched_notebooks");

/// The rows of SQL warehouse sessions, in their order, from the warehouse statement index alone (named:
/// without statistics SQLite prefers the action index and a table lookup per statement; checked by
/// `sessionization_reads_only_the_notebook_index`).
fn warehouse_rows_sql(scope: Derive) -> String {
    format!(
        "SELECT id, cluster_id, coalesce(user, ''), time_ms, command_id, action, duration_ms, natural_key
         FROM events INDEXED BY events_warehouse WHERE {WAREHOUSE_STATEMENT_SQL} {}
         ORDER BY cluster_id, coalesce(user, ''), time_ms",
        match scope {
            Derive::All => String::new(),
            Derive::Since(_) => format!("AND {WAREHOUSE_KEY_SQL} IN temp.touched_notebooks"),
        }
    )
}

/// Brings notebook paths, sessions and trail gaps up to date with the events. Returns (sessions, gaps).
fn rebuild_derived(
    tx: &rusqlite::Transaction<'_>,
    idle_gap_ms: i64,
    scope: Derive,
) -> Result<(u64, u64)> {
    use sessions::{ConfEdit, Row, RowKind};
    let t0 = Instant::now();
    let new_since = match scope {
        Derive::All => {
            tx.execute_batch(
                "DELETE FROM session_cells; DELETE FROM sessions; DELETE FROM notebook_paths;",
            )?;
            0
        }
        Derive::Since(id) => {
            tx.execute_batch(
                "DROP TABLE IF EXISTS temp.touched_notebooks;
                 CREATE TEMP TABLE touched_notebooks(notebook_id TEXT PRIMARY KEY) WITHOUT ROWID;",
            )?;
            // The new events by id range (`NOT INDEXED`), not every notebook or warehouse event of the
            // case through a partial index.
            tx.execute(
                "INSERT OR IGNORE INTO temp.touched_notebooks(notebook_id)
                   SELECT notebook_id FROM events NOT INDEXED WHERE id > ?1 AND notebook_id IS NOT NULL",
                [id],
            )?;
            tx.execute(
                &format!(
                    "INSERT OR IGNORE INTO temp.touched_notebooks(notebook_id)
                       SELECT {WAREHOUSE_KEY_SQL} FROM events NOT INDEXED
                       WHERE id > ?1 AND {WAREHOUSE_STATEMENT_SQL}"
                ),
                [id],
            )?;
            tx.execute_batch(
                "DELETE FROM session_cells WHERE session_id IN
                   (SELECT id FROM sessions WHERE notebook_id IN temp.touched_notebooks);
                 DELETE FROM sessions WHERE notebook_id IN temp.touched_notebooks;",
            )?;
            id
        }
    };
    tx.execute("DELETE FROM trail_gaps", [])?;
    tx.execute(NEW_PATHS_SQL, [new_since])?;
    let trail_end: i64 = tx.query_row("SELECT coalesce(max(time_ms), 0) FROM events", [], |r| {
        r.get(0)
    })?;

    let t_paths = t0.elapsed();
    // Path history per notebook, for naming sessions.
    let mut paths: std::collections::HashMap<String, Vec<(i64, String)>> = Default::default();
    {
        let mut st = tx.prepare(match scope {
            Derive::All => "SELECT notebook_id, time_ms, path FROM notebook_paths ORDER BY notebook_id, time_ms, event_id",
            Derive::Since(_) => "SELECT notebook_id, time_ms, path FROM notebook_paths
                 WHERE notebook_id IN temp.touched_notebooks ORDER BY notebook_id, time_ms, event_id",
        })?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            paths
                .entry(r.get(0)?)
                .or_default()
                .push((r.get(1)?, r.get(2)?));
        }
    }
    // The path a notebook had at `t`: its last recorded path at or before `t`, else its first one. The
    // history is in time order (the query sorts it), so this is a binary search.
    let path_at = |nb: &str, t: i64| -> Option<String> {
        let hist = paths.get(nb)?;
        let after = hist.partition_point(|(ht, _)| *ht <= t);
        hist.get(after.saturating_sub(1)).map(|(_, p)| p.clone())
    };

    let mut ins_s = tx.prepare(
        "INSERT INTO sessions(id, notebook_id, notebook_path, cluster_id, users, start_ms, end_ms, cells, attached, end_reason)
         VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
    )?;
    // A full rebuild writes cells to a scratch table in the order sessions are found (appends), and from
    // there into `session_cells` sorted by its key, with its event index rebuilt afterwards: inserting them
    // directly, in session-id (hash) order, costs a random B-tree insert in two trees per cell. An
    // incremental one writes its few cells directly.
    let mut ins_c = match scope {
        Derive::All => {
            tx.execute_batch(
                "DROP INDEX IF EXISTS session_cells_event;
                 CREATE TEMP TABLE IF NOT EXISTS new_session_cells(session_id TEXT, seq INTEGER, event_id INTEGER);
                 DELETE FROM temp.new_session_cells;",
            )?;
            tx.prepare(
                "INSERT INTO temp.new_session_cells(session_id, seq, event_id) VALUES(?1,?2,?3)",
            )?
        }
        Derive::Since(_) => {
            tx.prepare("INSERT INTO session_cells(session_id, seq, event_id) VALUES(?1,?2,?3)")?
        }
    };
    let mut st = tx.prepare(match scope {
        Derive::All => SESSION_ROWS_SQL,
        Derive::Since(_) => SESSION_ROWS_TOUCHED_SQL,
    })?;
    let mut rows = st.query([])?;
    let mut group: Option<(String, String)> = None;
    let mut buf: Vec<Row> = Vec::new();
    let mut n_sessions = 0u64;
    // A group holding captured events is one kernel: its sessions are the kernel's lifetimes.
    let mut kernel_lifetime = false;
    let mut flush = |key: &(String, String), buf: Vec<Row>, kernel_lifetime: bool| -> Result<()> {
        let cluster = (!key.1.is_empty()).then_some(key.1.as_str());
        let warehouse = key.0.starts_with(WAREHOUSE_SESSION_PREFIX);
        for s in sessions::sessionize(
            &key.0,
            cluster,
            buf,
            kernel_lifetime,
            idle_gap_ms,
            trail_end,
        ) {
            ins_s.execute(params![
                s.id,
                key.0,
                if warehouse {
                    Some(format!("SQL warehouse {}", key.1))
                } else {
                    path_at(&key.0, s.start_ms)
                },
                cluster,
                serde_json::to_string(&s.users).unwrap_or_default(),
                s.start_ms,
                s.end_ms,
                s.cells.len() as i64,
                s.attached,
                s.end_reason.as_str()
            ])?;
            for (i, ev) in s.cells.iter().enumerate() {
                ins_c.execute(params![s.id, (i + 1) as i64, ev])?;
            }
            n_sessions += 1;
        }
        Ok(())
    };
    // Text columns are compared in place (`get_ref`); only a new group's key and the kept rows' command id
    // and user are copied out.
    fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str> {
        Ok(r.get_ref(i)?.as_str().map_err(rusqlite::Error::from)?)
    }
    // A natural key as stored (16 bytes; anything else is a damaged case, reported, not guessed at).
    fn key16(r: &rusqlite::Row<'_>, i: usize) -> Result<[u8; 16]> {
        let blob = r.get_ref(i)?.as_blob().map_err(rusqlite::Error::from)?;
        <[u8; 16]>::try_from(blob).map_err(|_| {
            StoreError::Invalid(format!(
                "an event's natural key is {} bytes, not 16",
                blob.len()
            ))
        })
    }
    while let Some(r) = rows.next()? {
        let (notebook, cluster) = (text(r, 1)?, text(r, 2)?);
        if group
            .as_ref()
            .is_none_or(|(n, c)| n != notebook || c != cluster)
        {
            if let Some(k) = group.take() {
                flush(&k, std::mem::take(&mut buf), kernel_lifetime)?;
            }
            group = Some((notebook.to_owned(), cluster.to_owned()));
            kernel_lifetime = false;
        }
        let action = text(r, 3)?;
        let service = text(r, 8)?;
        let session_row = match action {
            "runCommand" => service == "notebook" || service == "jobs",
            "attachNotebook" | "detachNotebook" => service == "notebook",
            _ => false,
        };
        if !session_row {
            continue;
        }
        kernel_lifetime |= r.get::<_, bool>(9)?;
        buf.push(Row {
            event_id: r.get(0)?,
            kind: match action {
                "attachNotebook" => RowKind::Attach,
                "detachNotebook" => RowKind::Detach,
                _ => RowKind::Command,
            },
            time_ms: r.get(4)?,
            duration_ms: r.get(5)?,
            command_id: r.get(6)?,
            user: r.get(7)?,
            natural_key: key16(r, 10)?,
        });
    }
    if let Some(k) = group.take() {
        flush(&k, buf, kernel_lifetime)?;
    }
    drop(rows);
    drop(st);
    // SQL warehouse work: the statements one user submits to one warehouse are a session of their own
    // (keyed `sql-warehouse/<warehouse>/<user>`; there is no attach, so the idle gap splits them), replayed
    // in order like cells; each statement's status and duration come from its `commandFinish`
    // ([`Case::session_cells`]).
    {
        let mut st = tx.prepare(&warehouse_rows_sql(scope))?;
        let mut rows = st.query([])?;
        let mut group: Option<(String, String)> = None;
        let mut buf: Vec<Row> = Vec::new();
        // A statement both submitted (audit log) and in the query history is one cell: the history row,
        // which knows its status, duration and rows.
        let mut history: std::collections::HashSet<String> = Default::default();
        let one_each = |buf: Vec<Row>, history: &mut std::collections::HashSet<String>| {
            let kept: Vec<Row> = buf
                .into_iter()
                .filter(|r| {
                    r.duration_ms.is_some()
                        || r.command_id.as_ref().is_none_or(|c| !history.contains(c))
                })
                .collect();
            history.clear();
            kept
        };
        while let Some(r) = rows.next()? {
            let (warehouse, user): (String, String) = (r.get(1)?, r.get(2)?);
            let key = format!("{WAREHOUSE_SESSION_PREFIX}{warehouse}/{user}");
            if group.as_ref().is_none_or(|(k, _)| *k != key) {
                if let Some(k) = group.take() {
                    flush(&k, one_each(std::mem::take(&mut buf), &mut history), false)?;
                }
                group = Some((key, warehouse));
            }
            let command_id: Option<String> = r.get(4)?;
            let from_history = text(r, 5)? == "queryHistory";
            if from_history && let Some(c) = &command_id {
                history.insert(c.clone());
            }
            buf.push(Row {
                event_id: r.get(0)?,
                kind: RowKind::Command,
                time_ms: r.get(3)?,
                // A history row's time is its end, its duration places its start; a submit is its start.
                duration_ms: if from_history {
                    Some(r.get::<_, Option<i64>>(6)?.unwrap_or(0))
                } else {
                    None
                },
                command_id,
                user: (!user.is_empty()).then_some(user),
                natural_key: key16(r, 7)?,
            });
        }
        if let Some(k) = group.take() {
            flush(&k, one_each(buf, &mut history), false)?;
        }
    }
    drop(ins_s);
    drop(ins_c);
    let t_sessions = t0.elapsed();
    match scope {
        Derive::All => with_sort_cache(tx, || {
            Ok(tx.execute_batch(
                "INSERT INTO session_cells(session_id, seq, event_id)
                   SELECT session_id, seq, event_id FROM temp.new_session_cells ORDER BY session_id, seq;
                 DROP TABLE temp.new_session_cells;
                 CREATE INDEX session_cells_event ON session_cells(event_id);",
            )?)
        })?,
        Derive::Since(_) => {
            // The untouched notebooks' last sessions: still open, or idle now that the trail goes further?
            // (An open session's last activity is its end.)
            tx.execute(
                "UPDATE sessions SET end_reason = ?1 WHERE end_reason = ?2 AND ?3 - end_ms > ?4",
                params![
                    nbtrail_model::SessionEnd::Idle.as_str(),
                    nbtrail_model::SessionEnd::Open.as_str(),
                    trail_end,
                    idle_gap_ms
                ],
            )?;
            tx.execute_batch("DROP TABLE temp.touched_notebooks;")?;
            n_sessions = tx.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))?;
        }
    }
    tracing::debug!(?t_paths, ?t_sessions, cells = ?t0.elapsed(), "derive phases");

    // Verbose audit logging switched off / on.
    let mut edits = Vec::new();
    {
        let mut st = tx.prepare(
            "SELECT id, time_ms, workspace_id, user, payload_block, payload_index
             FROM events WHERE action = 'workspaceConfEdit' ORDER BY id",
        )?;
        let mut rows = st.query([])?;
        let mut payloads = payload::BlockReader::default();
        while let Some(r) = rows.next()? {
            let p = payloads.get(tx, r.get(4)?, r.get(5)?)?;
            let params: serde_json::Value = serde_json::from_str(&p.params).unwrap_or_default();
            let text = |k: &str| {
                params
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let (keys, values) = (text("workspaceConfKeys"), text("workspaceConfValues"));
            if let Some(enabled) = verbose_logging_value(&keys, &values) {
                edits.push(ConfEdit {
                    event_id: r.get(0)?,
                    time_ms: r.get(1)?,
                    workspace_id: r.get(2)?,
                    user: r.get(3)?,
                    enabled,
                });
            }
        }
    }
    let gaps = sessions::find_gaps(edits);
    for g in &gaps {
        tx.execute(
            "INSERT INTO trail_gaps(workspace_id, start_ms, end_ms, off_event_id, on_event_id, off_by, on_by)
             VALUES(?1,?2,?3,?4,?5,?6,?7)",
            params![g.workspace_id, g.start_ms, g.end_ms, g.off_event_id, g.on_event_id, g.off_by, g.on_by],
        )?;
    }
    Ok((n_sessions, gaps.len() as u64))
}

/// The request parameters as stored: a JSON object of strings without `commandText` (kept in its own
/// column).
fn params_json(e: &Event) -> String {
    let without_code: std::collections::BTreeMap<&str, &str> = e
        .params
        .iter()
        .filter(|(k, _)| *k != "commandText")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    serde_json::to_string(&without_code).unwrap_or_else(|_| "{}".into())
}

/// The new value of `enableVerboseAuditLogs` set by a `workspaceConfEdit` with these (comma-separated,
/// parallel) keys and values, if it sets it.
fn verbose_logging_value(keys: &str, values: &str) -> Option<bool> {
    let pos = keys
        .split(',')
        .position(|k| k.trim() == "enableVerboseAuditLogs")?;
    let val = values.split(',').nth(pos)?.trim();
    Some(val.eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::{
        Case, Derive, NEW_PATHS_SQL, PAGE_CACHE_KIB, SESSION_ROWS_SQL, SESSION_ROWS_TOUCHED_SQL,
        SORT_CACHE_KIB, warehouse_rows_sql, with_sort_cache,
    };

    /// SQLite's plan for `sql`, one line per step (its parameters, if any, bound to NULL).
    pub(crate) fn plan(c: &rusqlite::Connection, sql: &str) -> Vec<String> {
        let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Null; st.parameter_count()];
        st.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// Regression (issue 21, found with perf on a ten-million-event ingest): sessionization read each
    /// notebook event's `shape` from the table, which the covering notebook index did not hold — five
    /// million table lookups at 10M events. Every column it reads must come from the index.
    #[test]
    fn sessionization_reads_only_the_notebook_index() {
        let dir = tempfile::tempdir().unwrap();
        let case = Case::create(dir.path()).unwrap();
        case.conn
            .execute_batch(
                "CREATE TEMP TABLE touched_notebooks(notebook_id TEXT PRIMARY KEY) WITHOUT ROWID;",
            )
            .unwrap();
        for (sql, index) in [
            (SESSION_ROWS_SQL.to_string(), "events_notebook"),
            (SESSION_ROWS_TOUCHED_SQL.to_string(), "events_notebook"),
            (warehouse_rows_sql(Derive::All), "events_warehouse"),
            (warehouse_rows_sql(Derive::Since(0)), "events_warehouse"),
        ] {
            let sql = sql.as_str();
            let plan = plan(&case.conn, sql);
            assert!(
                plan.iter()
                    .any(|l| l.contains(&format!("USING COVERING INDEX {index}"))),
                "{plan:?}"
            );
            assert!(
                !plan.iter().any(|l| l.contains("TEMP B-TREE")),
                "no sort: {plan:?}"
            );
            assert!(
                !plan.iter().any(|l| l.contains("SCAN events")
                    || (l.contains("events USING INDEX") && !l.contains("COVERING"))),
                "{plan:?}"
            );
        }
    }

    /// Sorts run with the small cache, and the case's page cache comes back afterwards — also when the
    /// work inside fails (a failed index build must not leave a case connection with a 16 MB cache).
    #[test]
    fn sort_cache_is_restored_after_the_sort_even_when_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        let case = Case::create(dir.path()).unwrap();
        let cache = |c: &rusqlite::Connection| -> i64 {
            c.pragma_query_value(None, "cache_size", |r| r.get(0))
                .unwrap()
        };
        assert_eq!(cache(&case.conn), -PAGE_CACHE_KIB);
        let inside = with_sort_cache(&case.conn, || Ok(cache(&case.conn))).unwrap();
        assert_eq!(inside, -SORT_CACHE_KIB);
        assert_eq!(cache(&case.conn), -PAGE_CACHE_KIB);
        let failed: crate::Result<()> = with_sort_cache(&case.conn, || {
            Ok(case
                .conn
                .execute_batch("CREATE INDEX x ON no_such_table(y)")?)
        });
        assert!(failed.is_err());
        assert_eq!(cache(&case.conn), -PAGE_CACHE_KIB);
    }

    /// Regression (issue 21): the notebook paths of an ingest's new events were found by walking every
    /// attach and detach in the case through the action index, with a table lookup each.
    #[test]
    fn new_notebook_paths_are_read_by_id_range() {
        let dir = tempfile::tempdir().unwrap();
        let case = Case::create(dir.path()).unwrap();
        let plan = plan(&case.conn, &NEW_PATHS_SQL.replace("?1", "5"));
        assert!(
            plan.iter()
                .any(|l| l.contains("events USING INTEGER PRIMARY KEY (rowid>?)")),
            "{plan:?}"
        );
    }
}
