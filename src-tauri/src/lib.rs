//! # nbtrail-app
//!
//! The desktop review app's shell (Tauri v2): glue only. It owns the window, the IPC commands and the
//! app's state (which case is open); everything the commands do is in the core crates, reached through
//! [`api`] — plain Rust, tested without a window — and [`commands`], which moves arguments and progress
//! between the UI and [`api`] on worker threads.
//!
//! Security: the UI (`ui/`, Svelte) is embedded in the binary and runs under a strict CSP
//! (`tauri.conf.json`: scripts and styles only from the app itself, no remote origins, no frames); the
//! capability file (`capabilities/default.json`) grants the window labelled `main` exactly the commands
//! listed in `build.rs` plus the open/save dialogs and event listening. Untrusted content (code, outputs,
//! file and user names) reaches the UI as data — strings and highlight tokens — and is rendered as text.

pub mod api;
pub mod commands;

use std::path::PathBuf;
use std::sync::Arc;

/// Name shown in the window title.
pub const APP_NAME: &str = "nbtrail";

/// `base` with the state and every command registered (used by `run`, and by the IPC tests with Tauri's
/// mock builder).
pub fn builder<R: tauri::Runtime>(
    base: tauri::Builder<R>,
    state: commands::Shared,
) -> tauri::Builder<R> {
    base.manage(state).invoke_handler(tauri::generate_handler![
        commands::startup_case,
        commands::recent_cases,
        commands::open_case,
        commands::case_info,
        commands::ingest,
        commands::cancel_ingest,
        commands::analyze,
        commands::search,
        commands::sessions,
        commands::replay,
        commands::highlight,
        commands::context,
        commands::event,
        commands::findings,
        commands::set_triage,
        commands::export_bundle,
        commands::verify_bundle,
    ])
}

/// Runs the app; `case` (from the command line) is opened first.
pub fn run(case: Option<PathBuf>) {
    let state = Arc::new(api::AppState::new(
        nbtrail_evidence::keys::config_dir(),
        case,
    ));
    builder(tauri::Builder::default(), state)
        .plugin(tauri_plugin_dialog::init())
        .run(tauri::generate_context!())
        .expect("error while running the nbtrail app");
}
