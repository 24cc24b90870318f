//! Unusable input and the atomicity of an ingest: clear one-line errors with the file named, a non-zero
//! exit, and a case that is left exactly as it was — also when the process is killed mid-ingest.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn missing_file_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("c");
    let out = nbtrail([
        "ingest",
        "--case",
        case.to_str().unwrap(),
        "/no/such/audit.json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("nbtrail: error: /no/such/audit.json"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_log_fails_the_run_and_changes_nothing() {
    let (_d, case, _) = sample_case();
    let before = json([
        "summary".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "dear diary\nthis is not an audit log\n").unwrap();
    let good = sample_logs().join("system-table/audit_2024-05-10_2024-05-21.csv");
    // A good file and a bad one in the same run: the run is one unit, so nothing of it lands.
    let out = nbtrail([
        "ingest".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        good.as_os_str(),
        junk.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("notes.txt: not a Databricks audit log"),
        "{err}"
    );
    assert!(err.contains("line 1"), "{err}");
    let after = json([
        "summary".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(before, after);
}

#[test]
fn a_folder_that_is_not_a_case_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = nbtrail(["sessions", "--case", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not an nbtrail case"), "{err}");
    // A corrupt database is reported, not panicked on.
    std::fs::write(dir.path().join("case.sqlite"), b"this is not sqlite at all, just bytes...............................................................").unwrap();
    let out = nbtrail(["sessions", "--case", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("nbtrail: error: case database"), "{err}");
}

#[test]
fn hostile_text_cannot_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.json");
    let line = r#"{"timestamp":1714557661000,"userIdentity":{"email":"eve@example.com\u001b]0;pwned\u0007"},"serviceName":"notebook","actionName":"runCommand","requestId":"r1","requestParams":{"notebookId":"1","clusterId":"c","commandId":"1","commandText":"print(1)\u001b[2J\r<script>alert(1)</script>"}}"#;
    std::fs::write(&log, format!("{line}\n")).unwrap();
    let case = dir.path().join("c");
    json([
        "ingest".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        log.as_os_str(),
    ]);
    let sessions = json(["sessions", "--case", case.to_str().unwrap(), "--json"]);
    let id = s(&sessions[0]["id"]).to_string();
    for args in [
        vec![
            "replay",
            "--case",
            case.to_str().unwrap(),
            &id,
            "--color",
            "always",
        ],
        vec!["sessions", "--case", case.to_str().unwrap()],
        vec!["events", "--case", case.to_str().unwrap(), "--raw"],
    ] {
        let out = nbtrail(&args);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            !text.contains("\u{7}") && !text.contains('\r') && !text.contains("\u{1b}]0"),
            "{args:?}: {text:?}"
        );
        assert!(!text.contains("\u{1b}[2J"), "{args:?}");
        assert!(
            text.contains("\\u{1b}"),
            "{args:?}: control characters are shown, escaped"
        );
    }
}

/// Kills `nbtrail ingest` with SIGKILL in the middle of a large ingest: the case must be exactly as before,
/// and a re-run must end with the same counts as an uninterrupted run. The run is stopped at a known point
/// inside its transaction (after 60,000 of 100,000 records, bulk-load path) by a fault-injection variable,
/// then killed for real.
#[test]
fn kill_9_during_ingest_leaves_the_case_consistent() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    let n =
        nbtrail_samplegen::write_bench(&big, 100_000, 11, nbtrail_samplegen::BenchShape::Delivered)
            .unwrap();
    let (_d, case, _) = sample_case();
    let summary = || {
        json([
            "summary".as_ref(),
            "--case".as_ref(),
            case.as_os_str(),
            "--json".as_ref(),
        ])
    };
    let before = summary();

    let mut child = Command::new(env!("CARGO_BIN_EXE_nbtrail"))
        .args([
            "ingest".as_ref(),
            "--case".as_ref(),
            case.as_os_str(),
            big.as_os_str(),
            "-q".as_ref(),
        ])
        .env("NBTRAIL_FAULT_PAUSE_AFTER_RECORDS", "60000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let t0 = Instant::now();
    let mut paused = false;
    for line in stderr.lines() {
        if line.unwrap().contains("fault injection: paused") {
            paused = true;
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(300));
    }
    assert!(paused, "the ingest ended before reaching the pause point");
    assert!(child.try_wait().unwrap().is_none());
    // A bulk load runs with a rollback journal (not the WAL): the kill leaves a hot journal behind, which
    // the next open rolls back.
    assert!(case.join("case.sqlite-journal").exists());
    child.kill().unwrap(); // SIGKILL, mid-transaction
    child.wait().unwrap();
    assert_eq!(
        summary(),
        before,
        "a killed ingest must leave the case as it was"
    );

    let rerun = json([
        "ingest".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        big.as_os_str(),
        "-q".as_ref(),
    ]);
    assert_eq!(u(&rerun["lines"]), n);
    assert_eq!(u(&rerun["events"]) + u(&rerun["duplicates"]), n);
    assert_eq!(u(&rerun["error_count"]), 0);
    // Back in WAL mode for readers once the bulk load is over.
    let mode: String = rusqlite::Connection::open(case.join("case.sqlite"))
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_no_dangling_rows(&case);

    // The same ingest into a fresh copy of the starting state, never interrupted, gives the same counts.
    let (_d2, clean, _) = sample_case();
    let straight = json([
        "ingest".as_ref(),
        "--case".as_ref(),
        clean.as_os_str(),
        big.as_os_str(),
        "-q".as_ref(),
    ]);
    for k in [
        "lines",
        "events",
        "duplicates",
        "error_count",
        "sessions",
        "trail_gaps",
    ] {
        assert_eq!(rerun[k], straight[k], "{k}");
    }
    let a = summary();
    let b = json([
        "summary".as_ref(),
        "--case".as_ref(),
        clean.as_os_str(),
        "--json".as_ref(),
    ]);
    for k in [
        "events",
        "users",
        "notebooks",
        "commands",
        "sessions",
        "runs",
        "errors",
        "duplicates",
    ] {
        assert_eq!(a[k], b[k], "{k}");
    }
    // Raw records survive the compressed payload store byte for byte.
    let text = std::fs::read_to_string(&big).unwrap();
    let evs = json([
        "events",
        "--case",
        case.to_str().unwrap(),
        "--limit",
        "300",
        "--json",
    ]);
    for e in evs.as_array().unwrap() {
        if s(&e["file"]) == big.to_str().unwrap() {
            let line = text.lines().nth(u(&e["line"]) as usize - 1).unwrap();
            assert_eq!(s(&e["raw"]), line);
        }
    }
}
