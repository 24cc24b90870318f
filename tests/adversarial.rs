//! The adversarial suite (issue 16): each test is one attack on nbtrail's promises by someone who controls
//! an input file, named after the attack, run against the real binary. Each failed before its fix.

mod common;

use common::*;
use serde_json::{Value, json as j};
use std::path::{Path, PathBuf};

/// A Databricks delivered-format `runCommand` record.
fn run_command(
    user: &str,
    notebook: &str,
    command_id: u64,
    time_ms: i64,
    language: &str,
    code: &str,
) -> Value {
    j!({
        "accountId": "a1b2c3d4-0000-4000-8000-00000000acc1",
        "actionName": "runCommand",
        "auditLevel": "WORKSPACE_LEVEL",
        "requestId": format!("req-{notebook}-{command_id}"),
        "requestParams": {
            "clusterId": "0101-000000-adv",
            "commandId": command_id.to_string(),
            "commandLanguage": language,
            "commandText": code,
            "executionTime": "0.5",
            "notebookId": notebook,
            "status": "finished"
        },
        "response": {"errorMessage": null, "result": null, "statusCode": 200},
        "serviceName": "notebook",
        "sessionId": "ses-adv",
        "sourceIPAddress": "10.0.0.1",
        "timestamp": time_ms,
        "userAgent": "test",
        "userIdentity": {"email": user},
        "version": "2.0",
        "workspaceId": 1
    })
}

fn write_jsonl(path: &Path, records: &[Value]) {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).unwrap());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn ingest(case: &Path, inputs: &[&Path]) -> Value {
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["ingest".as_ref(), "--case".as_ref(), case.as_os_str()];
    args.extend(inputs.iter().map(|p| p.as_os_str()));
    json(args)
}

fn search(case: &Path, q: &str) -> Value {
    json([
        "search",
        "--case",
        case.to_str().unwrap(),
        "--json",
        "--limit",
        "1000",
        "--",
        q,
    ])
}

fn findings(case: &Path) -> Vec<Value> {
    let v = json([
        "findings".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    v.as_array().cloned().unwrap_or_default()
}

fn tmp_case() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let case = d.path().join("case");
    (d, case)
}

/// Hostile cells of every nesting kind (and one larger than the index's text bound) in the same case as
/// an ordinary incident: the case ingests, searches, re-indexes and analyzes, the hostile cells are
/// reported as not analyzed, and the incident is still found.
#[test]
fn deeply_nested_cells_do_not_blind_the_case() {
    let (d, case) = tmp_case();
    let n = 20_000;
    let hostile = [
        format!("x = {}", vec!["1"; n].join("+")),
        format!("x = a{}", ".b".repeat(n)),
        format!("x = f{}", "()".repeat(n)),
        format!("x = {}a{}", "(".repeat(n), ")".repeat(n)),
        format!("x = {}{}", "[".repeat(n), "]".repeat(n)),
        format!("x = {}a", "not ".repeat(n)),
        format!("x = {}1", "lambda: ".repeat(n)),
        format!("SELECT {} FROM prod.deep", vec!["1"; n].join("+")),
        // Over the search index's text bound (16 MiB): indexed head and tail, marked as cut.
        format!(
            "{}\nimport os; os.system('curl evil.example')  # hugecelltail\n",
            "# padding padding padding\n".repeat(700_000)
        ),
    ];
    let t0 = 1_714_000_000_000i64;
    let mut records = vec![
        run_command(
            "mallory@example.com",
            "nb-incident",
            1,
            t0,
            "python",
            "tok = dbutils.secrets.get('prod', 'api')",
        ),
        run_command(
            "mallory@example.com",
            "nb-incident",
            2,
            t0 + 1000,
            "python",
            "print(tok)",
        ),
    ];
    for (i, code) in hostile.iter().enumerate() {
        let lang = if code.starts_with("SELECT") {
            "sql"
        } else {
            "python"
        };
        records.push(run_command(
            "mallory@example.com",
            "nb-hostile",
            10 + i as u64,
            t0 + 10_000 + i as i64 * 1000,
            lang,
            code,
        ));
    }
    let log = d.path().join("audit.json");
    write_jsonl(&log, &records);
    let report = ingest(&case, &[&log]);
    assert_eq!(u(&report["events"]), records.len() as u64, "{report}");

    // Search works, including words after 16 MiB of padding (the indexed tail) and the cut mark.
    assert_eq!(search(&case, "hugecelltail")["total"], 1);
    assert_eq!(search(&case, "nbtrail_index_cut")["total"], 1);
    assert_eq!(search(&case, "code:secrets.get")["total"], 1);
    let r = nbtrail(["reindex", "--case", case.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(
        err.contains(&format!("indexed {} event(s)", records.len())),
        "{err}"
    );
    assert_eq!(search(&case, "table:prod.deep")["total"], 1);

    let out = nbtrail(["analyze", "--case", case.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = findings(&case);
    let codes: Vec<&str> = f.iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert!(
        codes.contains(&"NBT001"),
        "the incident was not found: {codes:?}"
    );
    // Seven deep Python cells and the huge one: each reported, none silently skipped. (The SQL cell is
    // keyword-scanned for its tables and is not Python.)
    assert_eq!(
        codes.iter().filter(|c| **c == "NBT900").count(),
        8,
        "{codes:?}"
    );
}
