//! End to end: `nbtrail timeline` on the sample case — Timesketch JSONL with the importer's mandatory
//! fields on every line, a search's events only, and a CSV that reads back through `nbtrail ingest` as the
//! very same events (a round trip adds nothing, changes nothing).
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

mod common;

use common::*;
use serde_json::Value;

fn timeline(case: &std::path::Path, args: &[&str], out: &std::path::Path) -> String {
    let mut a = vec![
        "timeline",
        "--case",
        case.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    a.extend_from_slice(args);
    let o = nbtrail(a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn timesketch_jsonl_has_the_mandatory_fields_on_every_line_for_every_event() {
    let (d, case, _) = sample_case();
    let summary = json(["summary", "--case", case.to_str().unwrap(), "--json"]);
    let events = u(&summary["events"]);
    let text = timeline(&case, &[], &d.path().join("all.jsonl"));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, events);
    let mut last = i64::MIN;
    for l in &lines {
        // Timesketch's importer needs these three; `timestamp` (µs) orders them.
        for k in ["message", "datetime", "timestamp_desc"] {
            assert!(
                l[k].as_str().is_some_and(|s| !s.is_empty()),
                "{k} missing: {l}"
            );
        }
        let dt = chrono::DateTime::parse_from_rfc3339(s(&l["datetime"])).unwrap();
        assert_eq!(dt.timestamp_micros(), l["timestamp"].as_i64().unwrap());
        assert!(l["timestamp"].as_i64().unwrap() >= last, "time order");
        last = l["timestamp"].as_i64().unwrap();
        assert!(l["source_file"].as_str().is_some() && l["source_location"].as_str().is_some());
    }
    // A cell's message carries its code's first line; untrusted text stays data (JSON-escaped).
    assert!(
        lines
            .iter()
            .any(|l| s(&l["message"]).contains("crm_token = dbutils.secrets.get"))
    );
    // A search selects exactly its hits.
    let hits = json([
        "search",
        "--case",
        case.to_str().unwrap(),
        "action:getSecret",
        "--json",
    ]);
    let sel = timeline(
        &case,
        &["--query", "action:getSecret"],
        &d.path().join("sel.jsonl"),
    );
    assert_eq!(sel.lines().count() as u64, u(&hits["total"]));
    assert!(sel.lines().all(|l| l.contains("\"action\":\"getSecret\"")));
}

#[test]
fn csv_timeline_reads_back_as_the_same_events() {
    let (d, case, _) = sample_case();
    let c = case.to_str().unwrap();
    let csv_path = d.path().join("all.csv");
    let text = timeline(&case, &["--format", "csv"], &csv_path);
    let rows = text.lines().count() - 1; // header
    let summary = json(["summary", "--case", c, "--json"]);
    assert_eq!(rows as u64, u(&summary["events"]));
    // Into the same case: every row is a duplicate of the event it came from; no conflict, no error.
    let out = nbtrail(["ingest", "--case", c, csv_path.to_str().unwrap(), "-q"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u(&rep["events"]), 0, "{rep:#}");
    assert_eq!(u(&rep["duplicates"]), rows as u64, "{rep:#}");
    assert_eq!(u(&rep["conflicts"]), 0);
    assert_eq!(u(&rep["error_count"]), 0);
    // Into a new case: the same number of events, the same users, actions and code.
    let fresh = d.path().join("fresh.case");
    let out = nbtrail([
        "ingest",
        "--case",
        fresh.to_str().unwrap(),
        csv_path.to_str().unwrap(),
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = json(["summary", "--case", fresh.to_str().unwrap(), "--json"]);
    for k in ["events", "users", "commands"] {
        assert_eq!(again[k], summary[k], "{k}");
    }
}
