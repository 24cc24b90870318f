//! The IPC commands: each moves its arguments to [`crate::api`] on a blocking worker thread (never the
//! main thread, which runs the window) and streams progress over a [`Channel`]. No logic lives here.

use crate::api::{self, ApiError, AppState, Result};
use serde::Serialize;
use std::sync::Arc;
use tauri::State;
use tauri::ipc::Channel;

/// Shared state handed to commands.
pub type Shared = Arc<AppState>;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tauri::async_runtime::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new("internal", format!("worker failed: {e}")))?
}

/// Progress of a counted job (`done` of `total`).
#[derive(Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Count {
    /// Done.
    pub done: u64,
    /// Total.
    pub total: u64,
}

/// The case named on the command line.
#[tauri::command]
pub async fn startup_case(state: State<'_, Shared>) -> Result<Option<String>> {
    Ok(api::startup_case(&state))
}

/// Recently opened cases.
#[tauri::command]
pub async fn recent_cases(state: State<'_, Shared>) -> Result<Vec<api::RecentCase>> {
    let st = state.inner().clone();
    blocking(move || Ok(api::recent_cases(&st))).await
}

/// Opens or creates a case.
#[tauri::command]
pub async fn open_case(
    state: State<'_, Shared>,
    dir: String,
    create: bool,
    on_progress: Channel<Count>,
) -> Result<api::CaseInfo> {
    let st = state.inner().clone();
    blocking(move || {
        api::open_case(&st, &dir, create, &mut |done, total| {
            let _ = on_progress.send(Count { done, total });
        })
    })
    .await
}

/// The open case's home.
#[tauri::command]
pub async fn case_info(state: State<'_, Shared>) -> Result<api::CaseInfo> {
    let st = state.inner().clone();
    blocking(move || api::case_info(&st)).await
}

/// Ingests files into the open case, then indexes and analyzes.
#[tauri::command]
pub async fn ingest(
    state: State<'_, Shared>,
    paths: Vec<String>,
    on_progress: Channel<api::IngestProgress>,
) -> Result<api::IngestResult> {
    let st = state.inner().clone();
    blocking(move || {
        let mut last = std::time::Instant::now() - std::time::Duration::from_secs(1);
        api::ingest(&st, &paths, &mut |p| {
            // At most ~20 updates a second: the window repaints, the ingest does not wait on it.
            if last.elapsed().as_millis() >= 50 || p.phase != "store" {
                last = std::time::Instant::now();
                let _ = on_progress.send(p.clone());
            }
        })
    })
    .await
}

/// Stops the running ingest (it rolls back).
#[tauri::command]
pub async fn cancel_ingest(state: State<'_, Shared>) -> Result<()> {
    api::cancel_ingest(&state);
    Ok(())
}

/// Re-runs the analyzer on the open case.
#[tauri::command]
pub async fn analyze(
    state: State<'_, Shared>,
    on_progress: Channel<Count>,
) -> Result<api::CaseInfo> {
    let st = state.inner().clone();
    blocking(move || {
        api::analyze(&st, &mut |done, total| {
            let _ = on_progress.send(Count { done, total });
        })
    })
    .await
}

/// Searches the open case.
#[tauri::command]
pub async fn search(
    state: State<'_, Shared>,
    args: api::SearchArgs,
) -> Result<nbtrail_search::SearchResult> {
    let st = state.inner().clone();
    blocking(move || api::search(&st, &args)).await
}

/// Lists sessions.
#[tauri::command]
pub async fn sessions(
    state: State<'_, Shared>,
    user: Option<String>,
    notebook: Option<String>,
    sort: Option<String>,
) -> Result<Vec<nbtrail_ops::SessionWithFindings>> {
    let st = state.inner().clone();
    blocking(move || api::sessions(&st, user, notebook, sort)).await
}

/// The case's notes and stars.
#[tauri::command]
pub async fn notes(state: State<'_, Shared>) -> Result<api::CaseNotes> {
    let st = state.inner().clone();
    blocking(move || api::notes(&st)).await
}

/// Adds a note, question, conclusion, star or unstar on a target (recorded in the custody log).
#[tauri::command]
pub async fn add_note(
    state: State<'_, Shared>,
    target: String,
    kind: String,
    text: String,
) -> Result<i64> {
    let st = state.inner().clone();
    blocking(move || api::add_note(&st, &target, &kind, &text)).await
}

/// Event detections per bucket of the search timeline.
#[tauri::command]
pub async fn detection_marks(
    state: State<'_, Shared>,
    first_ms: i64,
    interval_ms: i64,
    buckets: u32,
) -> Result<Vec<nbtrail_ops::DetectionMark>> {
    let st = state.inner().clone();
    blocking(move || api::detection_marks(&st, first_ms, interval_ms, buckets)).await
}

/// An entity's page (user, notebook, table, secret scope).
#[tauri::command]
pub async fn entity(
    state: State<'_, Shared>,
    kind: String,
    name: String,
) -> Result<nbtrail_ops::EntityPage> {
    let st = state.inner().clone();
    blocking(move || api::entity(&st, &kind, &name)).await
}

/// A session's cells and findings.
#[tauri::command]
pub async fn replay(state: State<'_, Shared>, session_id: String) -> Result<api::Replay> {
    let st = state.inner().clone();
    blocking(move || api::replay(&st, &session_id)).await
}

/// Syntax-highlights cells of a session as tokens, by event id.
#[tauri::command]
pub async fn highlight(
    state: State<'_, Shared>,
    session_id: String,
    event_ids: Vec<i64>,
) -> Result<Vec<nbtrail_ops::highlight::HighlightedCell>> {
    let st = state.inner().clone();
    blocking(move || api::highlight(&st, &session_id, &event_ids)).await
}

/// The same user's other events around an event.
#[tauri::command]
pub async fn context(
    state: State<'_, Shared>,
    event_id: i64,
    minutes: i64,
) -> Result<Vec<nbtrail_store::EventRow>> {
    let st = state.inner().clone();
    blocking(move || api::context(&st, event_id, minutes)).await
}

/// One event with its raw record.
#[tauri::command]
pub async fn event(state: State<'_, Shared>, id: i64) -> Result<nbtrail_store::EventRow> {
    let st = state.inner().clone();
    blocking(move || api::event(&st, id)).await
}

/// Findings with filters.
#[tauri::command]
pub async fn findings(
    state: State<'_, Shared>,
    filter: api::FindingFilter,
) -> Result<Vec<api::FindingRow>> {
    let st = state.inner().clone();
    blocking(move || api::findings(&st, &filter)).await
}

/// Changes a finding's triage status.
#[tauri::command]
pub async fn set_triage(
    state: State<'_, Shared>,
    finding_id: i64,
    status: String,
    note: Option<String>,
) -> Result<()> {
    let st = state.inner().clone();
    blocking(move || api::set_triage(&st, finding_id, &status, note.as_deref())).await
}

/// Exports the basket as a signed bundle.
#[tauri::command]
pub async fn export_bundle(
    state: State<'_, Shared>,
    args: api::ExportArgs,
    on_progress: Channel<Count>,
) -> Result<nbtrail_evidence::ExportReport> {
    let st = state.inner().clone();
    blocking(move || {
        api::export_bundle(&st, &args, &mut |done, total| {
            let _ = on_progress.send(Count { done, total });
        })
    })
    .await
}

/// Verifies a bundle.
#[tauri::command]
pub async fn verify_bundle(
    state: State<'_, Shared>,
    path: String,
    key: Option<String>,
) -> Result<nbtrail_evidence::Verdict> {
    let st = state.inner().clone();
    blocking(move || api::verify_bundle(&st, &path, key.as_deref())).await
}
