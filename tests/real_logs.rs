//! Ingest on audit records nobody on this project wrote: `../shared/real-logs/` (third-party connector
//! fixtures, vendor and Microsoft documentation, issue reports; see its README). One test per folder,
//! asserting the events the README lists, and that the malformed samples are reported, not fatal.
//!
//! The samples are not copied into the repository. Where they are absent (`NBTRAIL_REAL_LOGS` or
//! `<workspace>/../shared/real-logs`), each test says so on stderr and passes without checking.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;

fn real_logs() -> Option<PathBuf> {
    let dir = std::env::var_os("NBTRAIL_REAL_LOGS").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("shared")
                .join("real-logs")
        },
        PathBuf::from,
    );
    if dir.join("README.md").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: the third-party samples are not at {} (set NBTRAIL_REAL_LOGS)",
            dir.display()
        );
        None
    }
}

/// Ingests `folder` into a new case; returns the case dir (kept alive by the TempDir), the report and
/// every event.
fn ingest_folder(folder: &str) -> Option<(tempfile::TempDir, Value, Vec<Value>)> {
    let src = real_logs()?.join(folder);
    let d = tempfile::tempdir().unwrap();
    let case = d.path().join("case");
    let report = json([
        "ingest".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        src.as_os_str(),
    ]);
    // Every record is an event, a duplicate, a conflict or an error, and the counts add up.
    let sum = ["events", "duplicates", "conflicts", "error_count"]
        .iter()
        .map(|k| report[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(report["lines"].as_u64().unwrap(), sum, "{report}");
    let events = json([
        "events".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    Some((d, report, events.as_array().unwrap().clone()))
}

fn one<'a>(events: &'a [Value], service: &str, action: &str) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["service"] == service && e["action"] == action)
        .collect();
    assert_eq!(found.len(), 1, "{service}.{action}: {events:?}");
    found[0]
}

#[test]
fn ibm_guardium_databricks_records_including_a_raw_newline_in_sql() {
    let Some((_d, report, events)) = ingest_folder("ibm-guardium-databricks/records") else {
        return;
    };
    // 12 records: 11 events and one conflict (testParseExceptionNoErrMessage is testParseException — a
    // commandFinish — without its error message: same request, time and ids, a different response).
    assert_eq!(report["error_count"], 0, "{report}");
    assert_eq!(
        report["skipped_files"].as_array().unwrap().len(),
        0,
        "{report}"
    );
    assert_eq!(
        (report["events"].as_u64(), report["conflicts"].as_u64()),
        (Some(11), Some(1))
    );
    let count = |s: &str, a: &str| {
        events
            .iter()
            .filter(|e| e["service"] == s && e["action"] == a)
            .count()
    };
    assert_eq!(count("accounts", "tokenLogin"), 2);
    assert_eq!(count("databrickssql", "commandSubmit"), 7);
    // The second commandFinish is the conflict.
    assert_eq!(count("databrickssql", "commandFinish"), 1);
    let logins: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "tokenLogin")
        .collect();
    assert_eq!(logins[0]["request_id"], logins[1]["request_id"]);
    assert_ne!(logins[0]["time"], logins[1]["time"]);
    let run = one(&events, "notebook", "runCommand");
    assert_eq!(run["notebook_id"], "3116387834167860");
    assert_eq!(run["command_id"], "7254928687120170");
    assert_eq!(run["status"], "failed");
    assert_eq!(run["time"], "2025-06-19T14:38:01Z");
    // Records sharing requestId and commandId but differing in SQL text are distinct events.
    let shared: Vec<&Value> = events
        .iter()
        .filter(|e| e["command_id"] == "01f03a48-406e-17df-9a82-7335f9404a69")
        .collect();
    assert_eq!(shared.len(), 2);
    assert_ne!(shared[0]["command_text"], shared[1]["command_text"]);
    // The record with a raw newline inside its SQL (not strict JSON) is read, and says so.
    let show = events
        .iter()
        .find(|e| {
            e["command_text"]
                .as_str()
                .is_some_and(|t| t.contains("\nshow functions;"))
        })
        .expect("the record whose SQL holds a raw newline");
    assert!(
        show["raw"].as_str().unwrap().contains('\n'),
        "the raw record is kept as written"
    );
    assert_eq!(
        show["params"]["nbtrail_lenient"],
        "raw control character inside a string, read escaped"
    );
}

#[test]
fn ibm_guardium_databricks_single_line_file_repeats_the_records() {
    let Some((_d, report, events)) = ingest_folder("ibm-guardium-databricks") else {
        return;
    };
    // The folder again, with records_single_line_valid.jsonl: its 11 lines repeat 11 of the 12 records.
    assert_eq!(report["events"], 11, "{report}");
    assert_eq!(report["error_count"], 0, "{report}");
    assert_eq!(
        report["duplicates"].as_u64().unwrap() + report["conflicts"].as_u64().unwrap(),
        12,
        "{report}"
    );
    assert_eq!(events.len(), 11);
    let finish = events
        .iter()
        .filter(|e| e["action"] == "commandFinish")
        .collect::<Vec<_>>();
    assert!(finish.iter().all(|e| e["user"] == "System-User"));
}

#[test]
fn unity_catalog_eventhub_pretty_printed_records_batch() {
    let Some((_d, report, events)) = ingest_folder("unity-catalog-setup-eventhub") else {
        return;
    };
    assert_eq!(
        (report["events"].as_u64(), report["error_count"].as_u64()),
        (Some(1), Some(0))
    );
    let e = one(&events, "accounts", "aadBrowserLogin");
    assert_eq!(e["user"], "vuong.nguyen@databricks.com");
    assert_eq!(e["time"], "2021-10-06T09:06:41Z");
    // The port suffix is dropped from the address; the raw record keeps it.
    assert_eq!(e["source_ip"], "18.193.11.166");
    assert!(e["raw"].as_str().unwrap().contains("18.193.11.166:0"));
    // Provenance: the line where the record starts inside the batch, not the batch's first line.
    assert!(e["line"].as_u64().unwrap() > 1, "{e}");
    assert_eq!(report["file_reports"][0]["framing"], "json_documents");
}

#[test]
fn log_analytics_pretty_printed_pascal_case_row() {
    let Some((_d, report, events)) = ingest_folder("mc-docs-zh-cn-loganalytics") else {
        return;
    };
    assert_eq!(
        (report["events"].as_u64(), report["error_count"].as_u64()),
        (Some(1), Some(0))
    );
    let e = one(&events, "jobs", "create");
    assert_eq!(e["user"], "mail@contoso.com");
    assert_eq!(e["time"], "2019-05-01T00:18:58Z");
}

#[test]
fn sumologic_system_table_row_with_json_string_fields() {
    let Some((_d, report, events)) = ingest_folder("sumologic-databricks-audit-app") else {
        return;
    };
    assert_eq!(
        (report["events"].as_u64(), report["error_count"].as_u64()),
        (Some(1), Some(0))
    );
    let e = one(&events, "accounts", "tokenLogin");
    // A service principal's id where an e-mail is expected.
    assert_eq!(e["user"], "ddb92362-81fa-4f41-b5d3-e5a747e0b2f5");
    assert_eq!(e["time"], "2025-10-23T09:11:56.509Z");
    assert_eq!(e["response_status"], 200);
    assert_eq!(e["workspace_id"], "4150696479394378");
}

#[test]
fn eventhub_jobs_record_with_the_workspace_only_in_org_id() {
    let Some((_d, report, events)) = ingest_folder("go-enrich-test-eventhub-jobs") else {
        return;
    };
    assert_eq!(
        (report["events"].as_u64(), report["error_count"].as_u64()),
        (Some(1), Some(0))
    );
    let e = one(&events, "jobs", "runSucceeded");
    assert_eq!(e["user"], "System-User");
    assert_eq!(e["time"], "2025-05-15T15:58:35Z");
    assert!(e["source_ip"].is_null() && e["user_agent"].is_null());
    let org = e["params"]["orgId"].as_str().expect("orgId param");
    assert_eq!(e["workspace_id"], org);
}

#[test]
fn malformed_and_non_audit_samples_are_reported_not_fatal() {
    for folder in [
        "azure-docs-issue-111699",
        "jupyter-vscode-jupyter-hub-issue74",
        "jupyter-jpraher-ipython-xlang-kernel",
    ] {
        let Some((_d, report, events)) = ingest_folder(folder) else {
            return;
        };
        assert!(events.is_empty(), "{folder}: {events:?}");
        let skipped = report["skipped_files"].as_array().unwrap();
        assert!(!skipped.is_empty(), "{folder}: {report}");
        for s in skipped {
            let reason = s["reason"].as_str().unwrap();
            assert!(
                reason.contains("not a Databricks audit log") && reason.contains("expected"),
                "{folder}: {reason}"
            );
        }
    }
}
