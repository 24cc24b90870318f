//! Generates the app's permissions: one `allow-<command>` per command below, so the capability file can
//! grant exactly the commands the UI uses (and only to the app's own window).

/// Every command the shell defines; keep in step with `src/commands.rs`.
const COMMANDS: &[&str] = &[
    "startup_case",
    "recent_cases",
    "open_case",
    "case_info",
    "ingest",
    "cancel_ingest",
    "analyze",
    "search",
    "sessions",
    "replay",
    "highlight",
    "context",
    "event",
    "findings",
    "set_triage",
    "export_bundle",
    "verify_bundle",
];

fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri build");
}
