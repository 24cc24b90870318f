//! Helpers shared by the end-to-end tests: run the real `nbtrail` binary and read its output.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The committed sample logs.
pub fn sample_logs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-logs")
}

/// The generator's ground truth for the sample logs.
pub fn manifest() -> Value {
    let text = std::fs::read_to_string(sample_logs().join("MANIFEST.json")).expect("MANIFEST.json");
    serde_json::from_str(&text).expect("manifest is JSON")
}

/// Runs `nbtrail ARGS` and returns its output.
pub fn nbtrail<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_nbtrail"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("NBTRAIL_EXAMINER", "test-examiner")
        .output()
        .expect("nbtrail runs")
}

/// Runs `nbtrail ARGS`, asserts success and parses stdout as JSON.
pub fn json<I, S>(args: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = nbtrail(args);
    assert!(
        out.status.success(),
        "nbtrail failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// `nbtrail search --case CASE --json --limit 100000 -- Q`, parsed.
pub fn search(case: &Path, q: &str) -> Value {
    json([
        "search",
        "--case",
        case.to_str().unwrap(),
        "--json",
        "--limit",
        "100000",
        "--",
        q,
    ])
}

/// A new case holding the sample logs; returns (tempdir guard, case dir, ingest report).
pub fn sample_case() -> (tempfile::TempDir, PathBuf, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let case = dir.path().join("case");
    let report = json([
        "ingest".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        sample_logs().as_os_str(),
    ]);
    (dir, case, report)
}

pub fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// The case's declared foreign keys hold: no row points at a missing parent. (The store writes with
/// enforcement off during ingests and sessions rebuilds, for speed; this is the check that it is right.)
pub fn assert_no_dangling_rows(case: &Path) {
    let conn = rusqlite::Connection::open(case.join("case.sqlite")).expect("open case");
    let mut st = conn
        .prepare("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check")
        .unwrap();
    let dangling: Vec<(String, Option<i64>, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(dangling.is_empty(), "rows pointing nowhere: {dangling:?}");
}
