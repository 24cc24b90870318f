//! # nbtrail-ops
//!
//! The case-level operations that both front ends run — the `nbtrail` command line and the desktop app —
//! so that they do exactly the same thing and neither owns logic the other lacks:
//!
//! - [`ingest_and_index`]: one atomic ingest run into the store, then the search index brought up to date
//!   in the same go (were the index step interrupted, the next open of the index repairs it, see
//!   `nbtrail-search`).
//! - [`load_rules`] and [`analyze_case`]: run the analyzer over a case's sessions (each session's cells, in
//!   execution order, as one program) and store the findings, keeping earlier triage by fingerprint.
//! - [`views_of_stored`]: findings as front ends show them — cells named by their position and command id
//!   in their session, spans, the trace from source to sink, triage status.
//!
//! - [`highlight`]: code as syntect tokens with colours and marks, for front ends that render text nodes.
//!
//! Progress is reported through callbacks and cancellation through an [`AtomicBool`]: the CLI draws
//! progress bars from them, the app streams them to its window. This crate owns no rendering.

pub mod highlight;
pub mod timeline;

use nbtrail_analyzer::{Analysis, Cell, Finding, Rules, analyze};
use nbtrail_search::{SearchIndex, SyncProgress, SyncReport};
use nbtrail_store::{Case, IngestReport, Progress, SessionFilter, StoredFinding};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// Everything that can go wrong in a case-level operation.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The case store.
    #[error(transparent)]
    Store(#[from] nbtrail_store::StoreError),
    /// The search index.
    #[error(transparent)]
    Search(#[from] nbtrail_search::SearchError),
    /// A rules file.
    #[error(transparent)]
    Rules(#[from] nbtrail_analyzer::rules::RulesError),
    /// A file that could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Unusable arguments.
    #[error("{0}")]
    Usage(String),
}

/// Result with [`OpsError`].
pub type Result<T, E = OpsError> = std::result::Result<T, E>;

/// What [`ingest_and_index`] did.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct IngestOutcome {
    /// The store's report (counts add up: lines = events + duplicates + conflicts + errors).
    pub report: IngestReport,
    /// The index update, when it ran.
    pub index: Option<IndexOutcome>,
}

/// An index update.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct IndexOutcome {
    /// Events indexed now.
    pub indexed: u64,
    /// Table facts derived now.
    pub table_facts: u64,
    /// Why the index was rebuilt from scratch, when it was.
    pub rebuilt: Option<String>,
    /// Documents in the index after the update.
    pub documents: u64,
    /// Time taken.
    pub elapsed_ms: u64,
}

/// A step of a long operation, for progress displays.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Step<'a> {
    /// Reading and storing.
    Store(&'a Progress),
    /// Indexing what was stored.
    Index {
        /// Events indexed so far.
        done: u64,
        /// Events to index.
        total: u64,
    },
}

/// Ingests `paths` into `case` as one atomic run, then (unless `index` is false) brings the search index
/// up to date. The one hand-off: `nbtrail_ingest::RecordStream` reads, the store writes what it streams,
/// then the index catches up. Missing paths and malformed keys are refused before anything is read.
/// Capture logs must be signed by one of `capture_keys` (64 hex digits each) when any is given. Setting
/// `cancel` during the store phase leaves the case as it was.
pub fn ingest_and_index(
    case: &mut Case,
    paths: &[PathBuf],
    capture_keys: &[String],
    index: bool,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Step<'_>),
) -> Result<IngestOutcome> {
    for p in paths {
        if !p.exists() {
            return Err(OpsError::Usage(format!(
                "{}: no such file or directory",
                p.display()
            )));
        }
    }
    for k in capture_keys {
        if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(OpsError::Usage(format!(
                "capture key {k:?}: expected 64 hex digits (the gateway's .pub file)"
            )));
        }
    }
    let stream = nbtrail_ingest::RecordStream::open(paths, capture_keys)
        .map_err(nbtrail_store::StoreError::from)?;
    let report = case.ingest(stream, cancel, &mut |p| progress(Step::Store(p)))?;
    let index = if index {
        let started = std::time::Instant::now();
        let (ix, sync) = open_index(case, &mut |p| {
            progress(Step::Index {
                done: p.done,
                total: p.total,
            });
        })?;
        Some(IndexOutcome {
            indexed: sync.indexed,
            table_facts: sync.table_facts,
            rebuilt: sync.rebuilt,
            documents: ix.num_docs(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    } else {
        None
    };
    Ok(IngestOutcome { report, index })
}

/// Opens the case's index and brings it up to date with the store.
pub fn open_index(
    case: &mut Case,
    progress: &mut dyn FnMut(SyncProgress),
) -> Result<(SearchIndex, SyncReport)> {
    Ok(SearchIndex::open_with_progress(case, progress)?)
}

/// Loads the rules: the defaults (unless `no_default`) then each file in order. Returns the rules and the
/// SHA-256 of their texts (stored with each analysis run).
pub fn load_rules(files: &[PathBuf], no_default: bool) -> Result<(Rules, String)> {
    let mut texts: Vec<(String, String)> = Vec::new();
    if !no_default {
        texts.push((
            "default.toml".into(),
            nbtrail_analyzer::rules::DEFAULT_RULES.into(),
        ));
    }
    for f in files {
        let t = std::fs::read_to_string(f).map_err(|source| OpsError::Io {
            path: f.display().to_string(),
            source,
        })?;
        texts.push((f.display().to_string(), t));
    }
    if texts.is_empty() {
        return Err(OpsError::Usage(
            "no rules: --no-default-rules needs at least one --rules FILE".into(),
        ));
    }
    let mut h = Sha256::new();
    for (_, t) in &texts {
        h.update(t.as_bytes());
    }
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    Ok((Rules::load(&refs)?, hex::encode(h.finalize())))
}

/// What [`analyze_case`] did.
#[derive(Debug, Default)]
pub struct CaseAnalysis {
    /// Sessions analyzed.
    pub sessions: u64,
    /// Cells analyzed.
    pub cells: u64,
    /// Findings stored.
    pub findings: u64,
    /// Cells with syntax errors.
    pub diagnostics: u64,
    /// Findings whose earlier triage was kept.
    pub triage_kept: u64,
    /// Analyzer time (without storing).
    pub elapsed_ms: u64,
    /// The session ids analyzed.
    pub session_ids: Vec<String>,
    /// Whole analyses, per session, when asked for (for SARIF).
    pub analyses: Vec<(String, Analysis)>,
    /// Event detections stored (included in `findings`).
    pub detections: u64,
    /// Events the detection rules were evaluated on.
    pub events_evaluated: u64,
}

/// Analyzes sessions of `case` (all when `ids` is empty; a unique id prefix is enough) and stores the
/// findings. `keep_analyses` keeps each session's whole analysis (for SARIF); memory then grows with the
/// findings. `progress(done, total)` after each session.
///
/// With `detections`, the event rules ([`nbtrail_detect`]) are evaluated over every event of the case in
/// time order too, and what fires is stored as findings in the same run: at the session of the cell that
/// completed it (else of any cell among its events), or case-wide (session id `""`) when none of its
/// events is a cell. When only some sessions are analyzed, only their detections are replaced.
pub fn analyze_case(
    case: &mut Case,
    ids: &[String],
    rules: &Rules,
    rules_sha: &str,
    detections: Option<&nbtrail_detect::RuleSet>,
    keep_analyses: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<CaseAnalysis> {
    let all = case.sessions(&SessionFilter::default())?;
    let wanted: Option<std::collections::HashSet<String>> = if ids.is_empty() {
        None
    } else {
        Some(
            ids.iter()
                .map(|i| case.session(i).map(|s| s.id))
                .collect::<Result<_, _>>()?,
        )
    };
    // The unit of analysis is the interpreter's lifetime: sessions of one notebook on one cluster that an
    // idle gap split, with no attach in between, share the REPL's variables (a secret read at 10:00 and
    // printed at 13:00 is one trace).
    let units: Vec<Vec<nbtrail_model::Session>> = interpreter_lifetimes(all)
        .into_iter()
        .filter(|u| {
            wanted
                .as_ref()
                .is_none_or(|w| u.iter().any(|s| w.contains(&s.id)))
        })
        .collect();
    let started = std::time::Instant::now();
    let mut out = CaseAnalysis::default();
    let mut per_session = Vec::new();
    let total = units.len() as u64;
    // One deep stack for every unit's analysis (`guard::deep_stack_scope`), not one per unit.
    nbtrail_analyzer::guard::deep_stack_scope(|| -> Result<()> {
        for (k, unit) in units.iter().enumerate() {
            let mut cells: Vec<Cell> = Vec::new();
            // cell id → index of its session in the unit
            let mut session_of: HashMap<String, usize> = HashMap::new();
            for (j, s) in unit.iter().enumerate() {
                for c in case.session_cells(&s.id)? {
                    let id = c.event_id.to_string();
                    session_of.insert(id.clone(), j);
                    cells.push(Cell::new(
                        id,
                        c.code.unwrap_or_default(),
                        c.language.as_deref(),
                    ));
                }
            }
            out.cells += cells.len() as u64;
            let a = analyze(&cells, rules);
            out.diagnostics += a.diagnostics.len() as u64;
            // Each finding belongs to the session of the cell it is reported at.
            let mut by_session: Vec<(String, Vec<StoredFinding>)> =
                unit.iter().map(|s| (s.id.clone(), Vec::new())).collect();
            for f in &a.findings {
                let j = session_of.get(&f.location.cell_id).copied().unwrap_or(0);
                by_session[j].1.push(stored(&unit[j].id, f));
            }
            per_session.extend(by_session);
            if keep_analyses {
                out.analyses.push((unit[0].id.clone(), a));
            }
            progress(k as u64 + 1, total);
        }
        Ok(())
    })?;
    let mut rules_sha = rules_sha.to_string();
    if let Some(set) = detections {
        let (found, evaluated) = detect_case(case, set)?;
        out.events_evaluated = evaluated;
        rules_sha = format!("{rules_sha}+detect:{}", set.sha256());
        let mut at: HashMap<String, usize> = per_session
            .iter()
            .enumerate()
            .map(|(i, (s, _))| (s.clone(), i))
            .collect();
        for (session, f) in found {
            let i = match at.get(&session) {
                Some(&i) => i,
                // Only the sessions analyzed are replaced; case-wide ones only in a whole-case run.
                None if wanted.is_some() => continue,
                None => {
                    per_session.push((session.clone(), Vec::new()));
                    at.insert(session, per_session.len() - 1);
                    per_session.len() - 1
                }
            };
            per_session[i].1.push(f);
            out.detections += 1;
        }
    }
    out.elapsed_ms = started.elapsed().as_millis() as u64;
    let report = case.save_findings(&rules_sha, &per_session, out.diagnostics)?;
    // Case-wide detections are kept under the session id "": not a session.
    out.sessions = per_session.iter().filter(|(s, _)| !s.is_empty()).count() as u64;
    out.findings = report.findings;
    out.diagnostics = report.diagnostics;
    out.triage_kept = report.triage_kept;
    out.session_ids = per_session.into_iter().map(|(s, _)| s).collect();
    Ok(out)
}

/// Evaluates the event rules over every event of `case` in time order. Returns each detection as a
/// stored finding with the session it belongs to (`""`: case-wide), and how many events were evaluated.
pub fn detect_case(
    case: &Case,
    set: &nbtrail_detect::RuleSet,
) -> Result<(Vec<(String, StoredFinding)>, u64)> {
    let mut detector = set.detector();
    let mut fired: Vec<nbtrail_detect::Detection> = Vec::new();
    let mut who: HashMap<i64, (String, String)> = HashMap::new();
    let mut evaluated = 0u64;
    case.scan_events_by_time(|ev, params| -> Result<()> {
        evaluated += 1;
        let json = nbtrail_detect::event_json(ev.id, &ev.fields, &params);
        let got = detector.process(&json, ev.time.timestamp_millis());
        if !got.is_empty() {
            who.insert(
                ev.id,
                (
                    ev.user.clone().unwrap_or_default(),
                    format!("{}.{}", ev.service, ev.action),
                ),
            );
        }
        fired.extend(got);
        Ok(())
    })?;
    let ids: Vec<i64> = fired
        .iter()
        .flat_map(|d| d.event_ids.iter().copied())
        .collect();
    let sessions = case.sessions_of_cells(&ids)?;
    // A cell among a detection's events is marked over its first line (where the replay shows it).
    let mut width: HashMap<i64, u32> = HashMap::new();
    for (&id, session) in &sessions {
        if let Some(Some((code, _))) = case.cell_code(session, &[id])?.into_iter().next() {
            let first = code.lines().next().unwrap_or("").chars().count() as u32;
            width.insert(id, first.max(1) + 1);
        }
    }
    let end_col = |e: i64| width.get(&e).copied().unwrap_or(1);
    let mut out = Vec::with_capacity(fired.len());
    let mut seen = std::collections::HashSet::new();
    for d in fired {
        let fp = d.fingerprint();
        if !seen.insert(fp.clone()) {
            continue;
        }
        let last = d.event_ids.last().copied();
        let session = last
            .and_then(|e| sessions.get(&e))
            .or_else(|| d.event_ids.iter().find_map(|e| sessions.get(e)))
            .cloned()
            .unwrap_or_default();
        let (user, kind) = last.and_then(|e| who.get(&e)).cloned().unwrap_or_default();
        let mut message = format!(
            "{} — {kind} by {}",
            d.rule.title,
            if user.is_empty() { "?" } else { &user }
        );
        if !d.detail.is_empty() {
            message.push_str(&format!(" — {}", d.detail));
        }
        let step = |e: i64, note: String| nbtrail_store::TraceStepRecord {
            event_id: Some(e),
            line: 1,
            col: 1,
            end_line: 1,
            end_col: end_col(e),
            note,
        };
        let n = d.event_ids.len();
        out.push((
            session.clone(),
            StoredFinding {
                id: 0,
                session_id: session,
                event_id: last,
                source_event_id: d.event_ids.first().copied(),
                code: d.rule.code.clone(),
                rule: d.rule.name.clone(),
                severity: d.rule.severity.clone(),
                message,
                line: 1,
                col: 1,
                end_line: 1,
                end_col: last.map_or(1, end_col),
                trace: d
                    .event_ids
                    .iter()
                    .enumerate()
                    .map(|(i, &e)| {
                        step(
                            e,
                            if i + 1 == n {
                                format!("event {e}: completes {}", d.rule.code)
                            } else {
                                format!("event {e}: part of {}", d.rule.code)
                            },
                        )
                    })
                    .collect(),
                fingerprint: fp,
                triage: "uncategorized".into(),
                time_ms: None,
            },
        ));
    }
    Ok((out, evaluated))
}

/// Groups sessions into interpreter lifetimes: consecutive sessions of one notebook on one cluster where
/// the earlier ended only by an idle gap and the later began without an attach (so the same REPL went on).
/// Each group is in start order; groups keep the order of their first session.
pub fn interpreter_lifetimes(
    mut sessions: Vec<nbtrail_model::Session>,
) -> Vec<Vec<nbtrail_model::Session>> {
    sessions.sort_by(|a, b| {
        (&a.notebook_id, &a.cluster_id, a.start, &a.id).cmp(&(
            &b.notebook_id,
            &b.cluster_id,
            b.start,
            &b.id,
        ))
    });
    let mut units: Vec<Vec<nbtrail_model::Session>> = Vec::new();
    for s in sessions {
        if let Some(unit) = units.last_mut()
            && let Some(prev) = unit.last()
            && prev.notebook_id == s.notebook_id
            && prev.cluster_id == s.cluster_id
            && prev.cluster_id.is_some()
            && prev.end_reason == nbtrail_model::SessionEnd::Idle
            && !s.attached
        {
            unit.push(s);
            continue;
        }
        units.push(vec![s]);
    }
    units.sort_by(|a, b| (a[0].start, &a[0].id).cmp(&(b[0].start, &b[0].id)));
    units
}

fn fingerprint(session: &str, f: &Finding) -> String {
    let s = &f.trace[0].loc;
    let mut h = Sha256::new();
    for part in [
        f.code.as_str(),
        session,
        &f.location.cell_id,
        &f.location.start.to_string(),
        &f.location.end.to_string(),
        &s.cell_id,
        &s.start.to_string(),
        &f.source_kind,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

fn stored(session: &str, f: &Finding) -> StoredFinding {
    let ev = |id: &str| id.parse::<i64>().ok();
    StoredFinding {
        id: 0,
        session_id: session.to_string(),
        event_id: ev(&f.location.cell_id),
        source_event_id: ev(&f.trace[0].loc.cell_id),
        code: f.code.clone(),
        rule: f.rule.clone(),
        severity: f.severity.clone(),
        message: f.message.clone(),
        line: f.location.line,
        col: f.location.col,
        end_line: f.location.end_line,
        end_col: f.location.end_col,
        trace: f
            .trace
            .iter()
            .map(|s| nbtrail_store::TraceStepRecord {
                event_id: ev(&s.loc.cell_id),
                line: s.loc.line,
                col: s.loc.col,
                end_line: s.loc.end_line,
                end_col: s.loc.end_col,
                note: s.note.clone(),
            })
            .collect(),
        fingerprint: fingerprint(session, f),
        triage: "uncategorized".into(),
        time_ms: None,
    }
}

/// A session to replay — the one replay shape, for the CLI (`replay --json`), the app and tests: its
/// cells in execution order (code as text; the app asks [`highlight`] to colour the visible ones), the
/// attaches while it lasted, and its findings as views.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Replay {
    /// The session.
    pub session: nbtrail_model::Session,
    /// Cells in execution order.
    pub cells: Vec<nbtrail_model::SessionCell>,
    /// Attaches while the session lasted: its start, then each reconnect (captured kernels).
    pub attachments: Vec<nbtrail_model::Attachment>,
    /// Findings in this session.
    pub findings: Vec<FindingView>,
}

/// The one finding filter of both front ends (`nbtrail findings`, the app's findings view); an empty or
/// absent field matches everything.
#[derive(Debug, Clone, Default, serde::Deserialize, ts_rs::TS)]
#[ts(export, optional_fields)]
pub struct FindingFilter {
    /// A session id or unique prefix.
    pub session: Option<String>,
    /// Rule code (`NBT001`, any case) or rule name (`secret-leak`).
    pub rule: Option<String>,
    /// `high`, `medium`, `low`.
    pub severity: Option<String>,
    /// A user of the finding's session: a case-insensitive part of the e-mail (`alice` matches
    /// `alice.nguyen@example.com`).
    pub user: Option<String>,
    /// The session's notebook: a part of its path, or its id.
    pub notebook: Option<String>,
    /// Triage status.
    pub status: Option<String>,
}

/// A finding with where and whose it is, for lists.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct FindingRow {
    /// The finding.
    #[serde(flatten)]
    pub view: FindingView,
    /// The session's notebook path.
    pub notebook_path: Option<String>,
    /// The session's users.
    pub users: Vec<String>,
    /// When the finding's cell ran (a case-wide detection: when its last event happened), RFC 3339.
    pub time: Option<String>,
}

/// All findings matching `f`, in the store's order (session start, cell, position), with their session's
/// notebook and users and their cell's time.
pub fn findings(case: &Case, f: &FindingFilter) -> Result<Vec<FindingRow>> {
    fn some(o: &Option<String>) -> Option<&str> {
        o.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    let session = match some(&f.session) {
        Some(s) => Some(case.session(s)?.id),
        None => None,
    };
    let (rule, sev, status) = (some(&f.rule), some(&f.severity), some(&f.status));
    let user = some(&f.user).map(str::to_lowercase);
    let notebook = some(&f.notebook);
    let stored: Vec<_> = case
        .findings(session.as_deref())?
        .into_iter()
        .filter(|x| rule.is_none_or(|r| x.code.eq_ignore_ascii_case(r) || x.rule == r))
        .filter(|x| sev.is_none_or(|s| x.severity == s))
        .filter(|x| status.is_none_or(|s| x.triage == s))
        .collect();
    rows_of_stored(case, &stored, user.as_deref(), notebook)
}

/// List rows of stored findings (their views with their session's notebook and users), kept when the
/// session's users include `user` (lower case, a part of the e-mail) and its notebook is `notebook` (id, or
/// a part of its path). Views are built only for the findings given.
fn rows_of_stored(
    case: &Case,
    stored: &[StoredFinding],
    user: Option<&str>,
    notebook: Option<&str>,
) -> Result<Vec<FindingRow>> {
    let views = views_of_stored(case, stored)?;
    let mut sessions: HashMap<String, nbtrail_model::Session> = HashMap::new();
    let mut out = Vec::new();
    for v in views {
        // A case-wide event detection (session id "") has no session: its user is in its message.
        if v.session_id.is_empty() {
            if user.is_some_and(|u| !v.message.to_lowercase().contains(u)) || notebook.is_some() {
                continue;
            }
            out.push(FindingRow {
                notebook_path: None,
                users: Vec::new(),
                time: v.time.clone(),
                view: v,
            });
            continue;
        }
        if !sessions.contains_key(&v.session_id) {
            sessions.insert(v.session_id.clone(), case.session(&v.session_id)?);
        }
        let sess = &sessions[&v.session_id];
        if let Some(u) = user
            && !sess.users.iter().any(|x| x.to_lowercase().contains(u))
        {
            continue;
        }
        if let Some(n) = notebook
            && sess.notebook_id != n
            && !sess.notebook_path.as_deref().unwrap_or("").contains(n)
        {
            continue;
        }
        out.push(FindingRow {
            notebook_path: sess.notebook_path.clone(),
            users: sess.users.clone(),
            time: v.time.clone(),
            view: v,
        });
    }
    Ok(out)
}

/// A session (by id or unique prefix) to replay.
pub fn replay(case: &Case, session_id: &str) -> Result<Replay> {
    let session = case.session(session_id)?;
    let mut cells = case.session_cells(&session.id)?;
    case.join_lineage(&session, &mut cells)?;
    let attachments = case.session_attachments(&session.id)?;
    let stored = case.findings(Some(&session.id))?;
    let findings = views_of_stored(case, &stored)?;
    Ok(Replay {
        session,
        cells,
        attachments,
        findings,
    })
}

/// A cell as findings name it.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct CellRef {
    /// Position in the session (1-based).
    pub seq: u64,
    /// `commandId` (case) or the cell's id (files).
    pub command_id: Option<String>,
    /// The cell's event id (case findings only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub event_id: Option<i64>,
}

/// A span within a cell: 1-based lines, 1-based columns in characters, end exclusive.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Span {
    /// Start line.
    pub line: u32,
    /// Start column.
    pub col: u32,
    /// End line.
    pub end_line: u32,
    /// End column.
    pub end_col: u32,
}

/// A trace step.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct TraceStep {
    /// The cell.
    pub cell: CellRef,
    /// Where in it.
    pub span: Span,
    /// What happened there.
    pub label: String,
}

/// The JSON shape of a finding.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct FindingView {
    /// Id (case) or position in the output (files).
    pub id: i64,
    /// Rule code, e.g. `NBT001`.
    pub rule: String,
    /// Rule name, e.g. `secret-leak`.
    pub rule_name: String,
    /// `high`, `medium`, `low`.
    pub severity: String,
    /// Message.
    pub message: String,
    /// Session id, or the file for standalone files.
    pub session_id: String,
    /// The cell of the finding.
    pub cell: CellRef,
    /// Its span.
    pub span: Span,
    /// From source to sink.
    pub trace: Vec<TraceStep>,
    /// Triage status.
    pub status: String,
    /// The cell's code (text output only).
    #[serde(skip)]
    pub code: String,
    /// When the finding's cell ran, or a case-wide detection's last event happened (RFC 3339, ms), for
    /// case findings (not in the JSON shape).
    #[serde(skip)]
    pub time: Option<String>,
}

/// A cell's position, command id, code and time, by event id.
type SessionCellInfo = (u64, Option<String>, String);

/// Views of stored findings, with cells named by their position and command id in their session.
pub fn views_of_stored(case: &Case, findings: &[StoredFinding]) -> Result<Vec<FindingView>> {
    let mut cells: HashMap<String, HashMap<i64, SessionCellInfo>> = HashMap::new();
    let mut out = Vec::new();
    for f in findings {
        if !cells.contains_key(&f.session_id) {
            let m = case
                .session_cells(&f.session_id)?
                .into_iter()
                .map(|c| {
                    (
                        c.event_id,
                        (c.seq, c.command_id, c.code.unwrap_or_default()),
                    )
                })
                .collect();
            cells.insert(f.session_id.clone(), m);
        }
        let m = &cells[&f.session_id];
        let cell = |e: Option<i64>| match e.and_then(|e| m.get(&e).map(|c| (e, c))) {
            Some((e, (seq, cmd, _))) => CellRef {
                seq: *seq,
                command_id: cmd.clone(),
                event_id: Some(e),
            },
            None => CellRef {
                seq: 0,
                command_id: None,
                event_id: e,
            },
        };
        out.push(FindingView {
            id: f.id,
            rule: f.code.clone(),
            rule_name: f.rule.clone(),
            severity: f.severity.clone(),
            message: f.message.clone(),
            session_id: f.session_id.clone(),
            cell: cell(f.event_id),
            span: Span {
                line: f.line,
                col: f.col,
                end_line: f.end_line,
                end_col: f.end_col,
            },
            trace: f
                .trace
                .iter()
                .map(|s| TraceStep {
                    cell: cell(s.event_id),
                    span: Span {
                        line: s.line,
                        col: s.col,
                        end_line: s.end_line,
                        end_col: s.end_col,
                    },
                    label: s.note.clone(),
                })
                .collect(),
            status: f.triage.clone(),
            code: f
                .event_id
                .and_then(|e| m.get(&e))
                .map(|c| c.2.clone())
                .unwrap_or_default(),
            // The event's time, stored with the finding (a cell's, or a case-wide detection's event).
            time: f
                .time_ms
                .and_then(nbtrail_model::time_from_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        });
    }
    Ok(out)
}

/// Views of a standalone analysis (notebook files): cells named by their position in `cells`.
pub fn views_of_analysis(
    file: &str,
    a: &Analysis,
    cells: &[Cell],
    first_id: i64,
) -> Vec<FindingView> {
    let cell = |i: u32| CellRef {
        seq: i as u64 + 1,
        command_id: cells.get(i as usize).map(|c| c.id.clone()),
        event_id: None,
    };
    let span = |l: &nbtrail_analyzer::Loc| Span {
        line: l.line,
        col: l.col,
        end_line: l.end_line,
        end_col: l.end_col,
    };
    a.findings
        .iter()
        .enumerate()
        .map(|(k, f)| FindingView {
            id: first_id + k as i64,
            rule: f.code.clone(),
            rule_name: f.rule.clone(),
            severity: f.severity.clone(),
            message: f.message.clone(),
            session_id: file.to_string(),
            cell: cell(f.location.cell),
            span: span(&f.location),
            trace: f
                .trace
                .iter()
                .map(|s| TraceStep {
                    cell: cell(s.loc.cell),
                    span: span(&s.loc),
                    label: s.note.clone(),
                })
                .collect(),
            status: "uncategorized".into(),
            code: cells
                .get(f.location.cell as usize)
                .map(|c| c.code.clone())
                .unwrap_or_default(),
            time: None,
        })
        .collect()
}

/// A session as an entity page lists it: with its findings, most severe counted apart.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct SessionWithFindings {
    /// The session.
    pub session: nbtrail_model::Session,
    /// Its findings (analyzer and event detections).
    pub findings: u64,
    /// Of them, high severity.
    pub high: u64,
    /// Its cells that read a secret (sensitive activity).
    pub secret_reads: u64,
}

/// How [`session_list`] orders sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionOrder {
    /// Oldest first (the case's order).
    #[default]
    Start,
    /// Most high findings first, then most findings, then most secret reads, then oldest.
    Findings,
}

/// Event detections in one bucket of a timeline (the search histogram's buckets).
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct DetectionMark {
    /// Bucket index: the bucket starts at `first_ms + index × interval_ms`.
    pub index: u32,
    /// Detections in it.
    pub count: u64,
    /// Their rule codes, sorted, each once.
    pub codes: Vec<String>,
    /// The highest severity among them.
    pub severity: String,
}

/// Event detections bucketed like a histogram of `buckets` buckets of `interval_ms` from `first_ms` (the
/// search timeline draws them over its bars). One indexed query and a pass over the detections in range,
/// however many findings the case has.
pub fn detection_marks(
    case: &Case,
    first_ms: i64,
    interval_ms: i64,
    buckets: u32,
) -> Result<Vec<DetectionMark>> {
    if interval_ms <= 0 || buckets == 0 {
        return Ok(Vec::new());
    }
    let buckets = buckets.min(10_000);
    let end = first_ms.saturating_add(interval_ms.saturating_mul(i64::from(buckets)));
    let rank = |s: &str| match s {
        "high" => 3,
        "medium" => 2,
        _ => 1,
    };
    let mut marks: std::collections::BTreeMap<u32, DetectionMark> = Default::default();
    for (t, code, severity) in case.detection_times(first_ms, end.saturating_sub(1))? {
        let index = ((t - first_ms) / interval_ms) as u32;
        let m = marks.entry(index).or_insert_with(|| DetectionMark {
            index,
            count: 0,
            codes: Vec::new(),
            severity: "low".into(),
        });
        m.count += 1;
        if let Err(at) = m.codes.binary_search(&code) {
            m.codes.insert(at, code);
        }
        if rank(&severity) > rank(&m.severity) {
            m.severity = severity;
        }
    }
    Ok(marks.into_values().collect())
}

/// Sessions matching `filter` with their findings and sensitive activity, in `order`: the session list of
/// both front ends.
pub fn session_list(
    case: &Case,
    filter: &SessionFilter,
    order: SessionOrder,
) -> Result<Vec<SessionWithFindings>> {
    let activity = case.session_activity()?;
    let mut out: Vec<SessionWithFindings> = case
        .sessions(filter)?
        .into_iter()
        .map(|session| {
            let a = activity.get(&session.id).copied().unwrap_or_default();
            SessionWithFindings {
                session,
                findings: a.findings,
                high: a.high,
                secret_reads: a.secret_reads,
            }
        })
        .collect();
    if order == SessionOrder::Findings {
        // Stable: equal rows keep the case's (start) order.
        out.sort_by(|a, b| {
            (b.high, b.findings, b.secret_reads).cmp(&(a.high, a.findings, a.secret_reads))
        });
    }
    Ok(out)
}

/// What one user, notebook, table or secret scope did or had done to it: the entity page of the CLI
/// (`nbtrail user EMAIL`, …) and the app.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct EntityPage {
    /// `user`, `notebook`, `table`, `secret_scope`.
    pub kind: String,
    /// The entity as asked for.
    pub name: String,
    /// Activity, first and last seen, tables, secrets, downloads.
    pub facts: nbtrail_store::EntityFacts,
    /// Sessions its events belong to, oldest first, with finding counts.
    pub sessions: Vec<SessionWithFindings>,
    /// Findings in those sessions, and case-wide detections that name the entity.
    pub findings: Vec<FindingRow>,
}

/// Builds the entity page of `entity`.
pub fn entity_page(case: &Case, entity: &nbtrail_store::Entity) -> Result<EntityPage> {
    let facts = case.entity_facts(entity)?;
    let wanted: std::collections::HashSet<&str> =
        facts.session_ids.iter().map(String::as_str).collect();
    let name = entity.name().to_lowercase();
    // Only the findings of the page get views (building one loads its session's cells).
    let stored: Vec<StoredFinding> = case
        .findings(None)?
        .into_iter()
        .filter(|f| {
            wanted.contains(f.session_id.as_str())
                || (f.session_id.is_empty() && f.message.to_lowercase().contains(&name))
        })
        .collect();
    let findings = rows_of_stored(case, &stored, None, None)?;
    let activity = case.session_activity()?;
    let mut sessions = Vec::with_capacity(facts.session_ids.len());
    for id in &facts.session_ids {
        let a = activity.get(id).copied().unwrap_or_default();
        sessions.push(SessionWithFindings {
            session: case.session(id)?,
            findings: a.findings,
            high: a.high,
            secret_reads: a.secret_reads,
        });
    }
    Ok(EntityPage {
        kind: entity.kind().to_string(),
        name: entity.name().to_string(),
        facts,
        sessions,
        findings,
    })
}
