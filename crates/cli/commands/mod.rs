//! One file per command (ruff's layout): each has its `Args` and its `run`; `main.rs` only dispatches.

pub mod analyze;
pub mod check;
pub mod conflicts;
pub mod custody;
pub mod errors;
pub mod events;
pub mod export;
pub mod findings;
pub mod ingest;
pub mod note;
pub mod notebook;
pub mod reindex;
pub mod replay;
pub mod runs;
pub mod scope;
pub mod search;
pub mod sessions;
pub mod summary;
pub mod table;
pub mod tables;
pub mod timeline;
pub mod triage;
pub mod user;
pub mod verify;
pub mod verify_log;
