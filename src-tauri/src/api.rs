//! What the commands do, as plain Rust: no Tauri types here, so every command's behaviour is tested
//! without a window or a webview (the Yaak pattern). `commands.rs` only moves arguments and progress
//! between this module and the IPC layer.

use nbtrail_model::TrailGap;
use nbtrail_ops::highlight::HighlightedCell;
use nbtrail_search::{SearchIndex, SearchRequest, SearchResult, Sort};
use nbtrail_store::{Case, EventFilter, EventRow, SessionFilter};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// An error as the UI receives it: `{kind, message}`.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    /// `no_case`, `not_found`, `bad_input`, `cancelled`, `store`, `search`, `evidence`, `internal`.
    pub kind: String,
    /// One line for a person, naming the file or id concerned.
    pub message: String,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl From<nbtrail_store::StoreError> for ApiError {
    fn from(e: nbtrail_store::StoreError) -> Self {
        use nbtrail_store::StoreError as E;
        let kind = match &e {
            E::NotFound(_) => "not_found",
            E::Cancelled => "cancelled",
            E::NotACase(_) | E::Input(_) | E::NotALog { .. } => "bad_input",
            _ => "store",
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<nbtrail_search::SearchError> for ApiError {
    fn from(e: nbtrail_search::SearchError) -> Self {
        match e {
            nbtrail_search::SearchError::Store(s) => s.into(),
            e => ApiError::new("search", e.to_string()),
        }
    }
}

impl From<nbtrail_ops::OpsError> for ApiError {
    fn from(e: nbtrail_ops::OpsError) -> Self {
        use nbtrail_ops::OpsError as E;
        match e {
            E::Store(s) => s.into(),
            E::Search(s) => s.into(),
            E::Usage(m) => ApiError::new("bad_input", m),
            e => ApiError::new("bad_input", e.to_string()),
        }
    }
}

impl From<nbtrail_evidence::EvidenceError> for ApiError {
    fn from(e: nbtrail_evidence::EvidenceError) -> Self {
        ApiError::new("evidence", e.to_string())
    }
}

/// Result with [`ApiError`].
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

struct Open {
    dir: PathBuf,
    case: Case,
    index: SearchIndex,
}

/// The app's state: the open case (one at a time) and the running ingest's cancel flag.
pub struct AppState {
    open: Mutex<Option<Open>>,
    cancel: Arc<AtomicBool>,
    config_dir: PathBuf,
    startup: Option<PathBuf>,
}

impl AppState {
    /// State keeping recent cases and the examiner's signing key in `config_dir`; `startup` is the case to open first (command line).
    pub fn new(config_dir: PathBuf, startup: Option<PathBuf>) -> AppState {
        AppState {
            open: Mutex::new(None),
            cancel: Arc::new(AtomicBool::new(false)),
            config_dir,
            startup,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Open>> {
        // A panic while holding the lock leaves a case that is still consistent (SQLite transactions).
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with_case<T>(&self, f: impl FnOnce(&mut Open) -> Result<T>) -> Result<T> {
        let mut g = self.lock();
        match g.as_mut() {
            Some(o) => f(o),
            None => Err(ApiError::new("no_case", "no case is open")),
        }
    }

    fn case_dir(&self) -> Result<PathBuf> {
        self.with_case(|o| Ok(o.dir.clone()))
    }
}

/// The case given on the command line, if any.
pub fn startup_case(st: &AppState) -> Option<String> {
    st.startup.as_ref().map(|p| p.display().to_string())
}

/// A recently opened case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct RecentCase {
    /// Its folder.
    pub dir: String,
    /// When it was last opened (RFC 3339).
    pub opened_at: String,
}

const RECENT_FILE: &str = "recent-cases.json";

/// Recently opened cases, newest first (those whose folder is gone are left out).
pub fn recent_cases(st: &AppState) -> Vec<RecentCase> {
    let list: Vec<RecentCase> = std::fs::read(st.config_dir.join(RECENT_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    list.into_iter()
        .filter(|r| Path::new(&r.dir).join("case.sqlite").is_file())
        .collect()
}

fn remember(st: &AppState, dir: &Path) {
    let dir = dir.display().to_string();
    let mut list = recent_cases(st);
    list.retain(|r| r.dir != dir);
    list.insert(
        0,
        RecentCase {
            dir,
            opened_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
    );
    list.truncate(10);
    if std::fs::create_dir_all(&st.config_dir).is_ok() {
        let _ = std::fs::write(
            st.config_dir.join(RECENT_FILE),
            serde_json::to_vec_pretty(&list).unwrap_or_default(),
        );
    }
}

/// Findings per severity.
#[derive(Debug, Clone, Default, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct SeverityCounts {
    /// High.
    pub high: u64,
    /// Medium.
    pub medium: u64,
    /// Low.
    pub low: u64,
}

/// The case home's content.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct CaseInfo {
    /// The folder.
    pub dir: String,
    /// Counts, time span, notable events.
    pub summary: nbtrail_store::CaseSummary,
    /// Holes in the trail.
    pub gaps: Vec<TrailGap>,
    /// Findings by severity.
    pub findings: SeverityCounts,
    /// Whether the analyzer has run on this case.
    pub analyzed: bool,
    /// Triage states a finding can take.
    pub triage_states: Vec<String>,
}

fn case_info_of(o: &Open) -> Result<CaseInfo> {
    let mut sev = SeverityCounts::default();
    for (severity, n) in o.case.finding_counts()? {
        match severity.as_str() {
            "high" => sev.high = n,
            "medium" => sev.medium = n,
            _ => sev.low = n,
        }
    }
    Ok(CaseInfo {
        dir: o.dir.display().to_string(),
        summary: o.case.summary()?,
        gaps: o.case.trail_gaps()?,
        findings: sev,
        analyzed: o.case.analysis_runs()? > 0,
        triage_states: nbtrail_store::TRIAGE
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
    })
}

/// Opens (or with `create`, creates) the case in `dir`, bringing its search index up to date.
pub fn open_case(
    st: &AppState,
    dir: &str,
    create: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<CaseInfo> {
    let dir = PathBuf::from(dir);
    let mut case = if create {
        Case::create(&dir)?
    } else {
        Case::open(&dir)?
    };
    let (index, _) = nbtrail_ops::open_index(&mut case, &mut |p| progress(p.done, p.total))?;
    // While the window shows the case home, a thread with its own connection does what the first search
    // would otherwise do first (finding codes, the index's columns): first results at 10M events.
    let warmer = index.warmer();
    let warm_dir = dir.clone();
    std::thread::spawn(move || {
        // A failure here only means the first search does this work itself.
        if let Ok(case) = Case::open(&warm_dir) {
            let _ = warmer.warm(&case);
        }
    });
    let open = Open { dir, case, index };
    let info = case_info_of(&open)?;
    remember(st, &open.dir);
    *st.lock() = Some(open);
    Ok(info)
}

/// The open case's home.
pub fn case_info(st: &AppState) -> Result<CaseInfo> {
    st.with_case(|o| case_info_of(o))
}

/// Progress of an ingest, as the UI shows it: the store's counters (files, bytes, events, duplicates,
/// errors, current file) flattened in, plus the phase and the index/analyze counts.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct IngestProgress {
    /// `store`, `index` or `analyze`.
    pub phase: String,
    /// The store phase's counters (the last ones once it is over).
    #[serde(flatten)]
    pub store: nbtrail_store::Progress,
    /// Items done in the index/analyze phase.
    pub done: u64,
    /// Items in the index/analyze phase.
    pub total: u64,
    /// Seconds since the start.
    pub elapsed_s: f64,
}

/// What an ingest did.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct IngestResult {
    /// Store and index outcome (the report's counts add up; every rejected line is listed).
    #[serde(flatten)]
    pub outcome: nbtrail_ops::IngestOutcome,
    /// Findings after the analyzer ran on the case.
    pub findings: u64,
    /// The case's home afterwards.
    pub case: CaseInfo,
}

/// Ingests `paths` into the open case (one atomic run), indexes and analyzes it. Cancellable with
/// [`cancel_ingest`] until the store commits; a cancelled run leaves the case unchanged.
pub fn ingest(
    st: &AppState,
    paths: &[String],
    progress: &mut dyn FnMut(&IngestProgress),
) -> Result<IngestResult> {
    let dir = st.case_dir()?;
    if paths.is_empty() {
        return Err(ApiError::new("bad_input", "no files to ingest"));
    }
    st.cancel.store(false, Ordering::SeqCst);
    // A connection of its own: the open case keeps answering searches while this writes (WAL).
    let mut case = Case::open(&dir)?;
    let started = std::time::Instant::now();
    let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    let mut last = IngestProgress {
        phase: "store".into(),
        store: nbtrail_store::Progress::default(),
        done: 0,
        total: 0,
        elapsed_s: 0.0,
    };
    let outcome =
        nbtrail_ops::ingest_and_index(&mut case, &paths, &[], true, &st.cancel, &mut |step| {
            match step {
                nbtrail_ops::Step::Store(p) => {
                    last.phase = "store".into();
                    last.store = p.clone();
                }
                nbtrail_ops::Step::Index { done, total } => {
                    last.phase = "index".into();
                    last.done = done;
                    last.total = total;
                }
            }
            last.elapsed_s = started.elapsed().as_secs_f64();
            progress(&last);
        })?;
    let findings = analyze_with(&mut case, &mut |d, t| {
        last.phase = "analyze".into();
        last.done = d;
        last.total = t;
        last.elapsed_s = started.elapsed().as_secs_f64();
        progress(&last);
    })?;
    drop(case);
    // Reopen so the open case sees the new events, index segments and findings.
    let info = open_case(st, &dir.display().to_string(), false, &mut |_, _| {})?;
    Ok(IngestResult {
        outcome,
        findings,
        case: info,
    })
}

fn analyze_with(case: &mut Case, progress: &mut dyn FnMut(u64, u64)) -> Result<u64> {
    let (rules, sha) = nbtrail_ops::load_rules(&[], false)?;
    // The shipped event rules and the case folder's own (`detections/`), as `nbtrail analyze --case`.
    let own = case.dir().join("detections");
    let dirs: Vec<std::path::PathBuf> = own.is_dir().then_some(own).into_iter().collect();
    let detections = nbtrail_detect::RuleSet::load(&dirs)
        .map_err(|e| ApiError::new("bad_input", e.to_string()))?;
    let done =
        nbtrail_ops::analyze_case(case, &[], &rules, &sha, Some(&detections), false, progress)?;
    Ok(done.findings)
}

/// Asks the running ingest to stop; it rolls back.
pub fn cancel_ingest(st: &AppState) {
    st.cancel.store(true, Ordering::SeqCst);
}

/// Runs the analyzer on every session of the open case (triage is kept by fingerprint).
pub fn analyze(st: &AppState, progress: &mut dyn FnMut(u64, u64)) -> Result<CaseInfo> {
    st.with_case(|o| {
        analyze_with(&mut o.case, progress)?;
        case_info_of(o)
    })
}

/// A search as the UI asks it.
#[derive(Debug, Clone, Deserialize)]
pub struct SearchArgs {
    /// The query (README's syntax).
    pub query: String,
    /// Hits per page.
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Hits to skip.
    #[serde(default)]
    pub offset: usize,
    /// `newest`, `oldest` or `relevance`.
    #[serde(default)]
    pub sort: Option<String>,
}

fn default_limit() -> usize {
    200
}

/// Searches the open case.
pub fn search(st: &AppState, args: &SearchArgs) -> Result<SearchResult> {
    let sort = match args.sort.as_deref() {
        None | Some("newest") => Sort::Newest,
        Some("oldest") => Sort::Oldest,
        Some("relevance") => Sort::Relevance,
        Some(s) => return Err(ApiError::new("bad_input", format!("unknown sort `{s}`"))),
    };
    st.with_case(|o| {
        Ok(o.index.search(
            &o.case,
            &SearchRequest {
                query: args.query.clone(),
                limit: args.limit.min(10_000),
                offset: args.offset,
                sort,
                now_ms: None,
                facet_limit: 50,
            },
        )?)
    })
}

/// Sessions, optionally of one user or notebook, with their findings and secret reads; `sort` is
/// `findings` (most severe first) or anything else for oldest first.
pub fn sessions(
    st: &AppState,
    user: Option<String>,
    notebook: Option<String>,
    sort: Option<String>,
) -> Result<Vec<nbtrail_ops::SessionWithFindings>> {
    let order = if sort.as_deref() == Some("findings") {
        nbtrail_ops::SessionOrder::Findings
    } else {
        nbtrail_ops::SessionOrder::Start
    };
    st.with_case(|o| {
        Ok(nbtrail_ops::session_list(
            &o.case,
            &SessionFilter {
                user: user.filter(|s| !s.is_empty()),
                notebook: notebook.filter(|s| !s.is_empty()),
                ..SessionFilter::default()
            },
            order,
        )?)
    })
}

pub use nbtrail_ops::{FindingFilter, FindingRow};

pub use nbtrail_ops::Replay;

/// Event detections per bucket of the search timeline (`first_ms`, `interval_ms`, `buckets` as the
/// histogram has them).
pub fn detection_marks(
    st: &AppState,
    first_ms: i64,
    interval_ms: i64,
    buckets: u32,
) -> Result<Vec<nbtrail_ops::DetectionMark>> {
    st.with_case(|o| {
        Ok(nbtrail_ops::detection_marks(
            &o.case,
            first_ms,
            interval_ms,
            buckets,
        )?)
    })
}

/// An entity's page: `kind` is `user`, `notebook`, `table` or `secret_scope`.
pub fn entity(st: &AppState, kind: &str, name: &str) -> Result<nbtrail_ops::EntityPage> {
    let entity = match kind {
        "user" => nbtrail_store::Entity::User(name.into()),
        "notebook" => nbtrail_store::Entity::Notebook(name.into()),
        "table" => nbtrail_store::Entity::Table(name.into()),
        "secret_scope" => nbtrail_store::Entity::SecretScope(name.into()),
        other => {
            return Err(ApiError::new(
                "bad_input",
                format!("unknown entity kind {other:?}: user, notebook, table or secret_scope"),
            ));
        }
    };
    st.with_case(|o| Ok(nbtrail_ops::entity_page(&o.case, &entity)?))
}

/// A session's cells and findings.
pub fn replay(st: &AppState, session_id: &str) -> Result<Replay> {
    st.with_case(|o| Ok(nbtrail_ops::replay(&o.case, session_id)?))
}

/// Highlights cells of a session, named by event id (the code never travels back from the UI), with the
/// marks of the session's findings.
pub fn highlight(
    st: &AppState,
    session_id: &str,
    event_ids: &[i64],
) -> Result<Vec<HighlightedCell>> {
    st.with_case(|o| {
        Ok(nbtrail_ops::highlight::highlight_cells(
            &o.case, session_id, event_ids,
        )?)
    })
}

/// Kinds of events the context strip shows (everything but cells, which the replay shows itself).
fn is_context(e: &EventRow) -> bool {
    !(e.action == "runCommand" || e.service == "jupyter")
}

/// The same user's other events within `minutes` of `event_id`'s time (not cells): secret reads,
/// downloads, exports, attach/detach, logins.
pub fn context(st: &AppState, event_id: i64, minutes: i64) -> Result<Vec<EventRow>> {
    st.with_case(|o| {
        let e = o.case.event(event_id)?;
        let Some(user) = e.user.clone() else {
            return Ok(Vec::new());
        };
        let span = chrono::Duration::minutes(minutes.clamp(1, 24 * 60));
        let mut rows = o.case.events(&EventFilter {
            user: Some(user),
            from: Some(e.time - span),
            to: Some(e.time + span),
            limit: Some(2_000),
            ..EventFilter::default()
        })?;
        rows.retain(is_context);
        for r in &mut rows {
            r.raw.clear();
        }
        Ok(rows)
    })
}

/// One event with its provenance and raw record.
pub fn event(st: &AppState, id: i64) -> Result<EventRow> {
    st.with_case(|o| Ok(o.case.event(id)?))
}

/// All findings matching `f`, with their session's notebook and users and their cell's time.
pub fn findings(st: &AppState, f: &FindingFilter) -> Result<Vec<FindingRow>> {
    st.with_case(|o| Ok(nbtrail_ops::findings(&o.case, f)?))
}

/// Changes a finding's triage status (recorded in the custody log).
pub fn set_triage(st: &AppState, finding_id: i64, status: &str, note: Option<&str>) -> Result<()> {
    st.with_case(|o| {
        o.case
            .set_triage(finding_id, status, note.filter(|n| !n.is_empty()))?;
        Ok(())
    })
}

/// The case's notes and what is starred now.
#[derive(Debug, Clone, serde::Serialize, ts_rs::TS)]
#[ts(export)]
pub struct CaseNotes {
    /// Every note, oldest first (stars and unstars included).
    pub notes: Vec<nbtrail_store::NoteRow>,
    /// Targets starred now.
    pub starred: Vec<String>,
}

/// The case's notes and stars.
pub fn notes(st: &AppState) -> Result<CaseNotes> {
    st.with_case(|o| {
        Ok(CaseNotes {
            notes: o.case.notes(None)?,
            starred: o.case.starred()?,
        })
    })
}

/// Adds a case note (`note`, `question`, `conclusion`, `star`, `unstar`) on `target`; custody-logged.
pub fn add_note(st: &AppState, target: &str, kind: &str, text: &str) -> Result<i64> {
    st.with_case(|o| Ok(o.case.add_case_note(target, kind, text)?))
}

/// What goes into a bundle: the basket's content.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExportArgs {
    /// Whole sessions.
    #[serde(default)]
    pub sessions: Vec<String>,
    /// Single events (cells, findings' cells, search hits).
    #[serde(default)]
    pub events: Vec<i64>,
    /// Whole searches: every event each matches.
    #[serde(default)]
    pub queries: Vec<String>,
    /// Examiner name.
    pub examiner: String,
    /// Notes.
    pub notes: Option<String>,
    /// Where to write the bundle (`.zip`).
    pub output: String,
}

/// Exports the basket as a signed evidence bundle.
pub fn export_bundle(
    st: &AppState,
    args: &ExportArgs,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<nbtrail_evidence::ExportReport> {
    if args.examiner.trim().is_empty() {
        return Err(ApiError::new(
            "bad_input",
            "the examiner's name is required",
        ));
    }
    if args.output.trim().is_empty() {
        return Err(ApiError::new(
            "bad_input",
            "choose where to write the bundle",
        ));
    }
    st.with_case(|o| {
        let mut events = args.events.clone();
        for q in &args.queries {
            let (ids, _) = o.index.matching_ids(&o.case, q)?;
            events.extend(ids);
        }
        events.sort_unstable();
        events.dedup();
        if args.sessions.is_empty() && events.is_empty() {
            return Err(ApiError::new("bad_input", "the basket is empty"));
        }
        let key = nbtrail_evidence::keys::load_or_create(&st.config_dir)?;
        let query = (!args.queries.is_empty()).then(|| args.queries.join(" ; "));
        Ok(nbtrail_evidence::export(
            &mut o.case,
            &nbtrail_evidence::Selection {
                sessions: args.sessions.clone(),
                query,
                events,
            },
            &nbtrail_evidence::ExportOptions {
                examiner: args.examiner.trim().to_string(),
                notes: args.notes.clone().filter(|n| !n.is_empty()),
            },
            &key,
            Path::new(&args.output),
            &mut |p| progress(p.done, p.total),
        )?)
    })
}

/// Verifies a bundle (needs no case), trusting the examiners pinned in the app's config directory (and
/// the examiner's own key there): the verdict says whether the signer is pinned.
pub fn verify_bundle(
    st: &AppState,
    path: &str,
    key: Option<&str>,
) -> Result<nbtrail_evidence::Verdict> {
    let pinned = nbtrail_evidence::keys::default_trusted(&st.config_dir)?;
    Ok(nbtrail_evidence::verify(
        Path::new(path),
        key.filter(|k| !k.is_empty()),
        &pinned,
    )?)
}
