//! # nbtrail-app
//!
//! The desktop review app's shell. It will hold Tauri v2 commands that call the core crates and nothing
//! else (see ARCHITECTURE.md). Until the app issue lands it is an empty crate that builds, so the layout
//! the client asked for (`src-tauri/`) exists and stays in the workspace's build and lint checks; it
//! deliberately has no Tauri dependency yet, which keeps CI free of WebKitGTK until the shell exists.

/// Name the app will show in its window title.
pub const APP_NAME: &str = "nbtrail";
