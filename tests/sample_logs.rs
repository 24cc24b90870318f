//! End to end on the committed sample logs: the real CLI, exact counts against the generator's manifest,
//! duplicates, errors with file:line for every shape, sessions, cell order, trail gaps, renames.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                if rel != "README.md" {
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    out
}

#[test]
fn committed_sample_logs_are_exactly_what_the_generator_writes() {
    let dir = tempfile::tempdir().unwrap();
    nbtrail_samplegen::write_sample_set(dir.path(), 2024).unwrap();
    let fresh = files_under(dir.path());
    let committed = files_under(&sample_logs());
    assert_eq!(
        fresh.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &fresh {
        assert!(
            committed[name] == *bytes,
            "{name} differs from the generator's output: run `cargo run -p nbtrail-samplegen -- sample`"
        );
    }
}

#[test]
fn ingest_accounts_for_every_record_exactly() {
    let m = manifest();
    let (_d, _case, r) = sample_case();
    let records: u64 = m["records"].as_object().unwrap().values().map(u).sum();
    let malformed: u64 = m["malformed"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len() as u64)
        .sum();
    // Ground truth from the generator…
    assert_eq!(u(&r["lines"]), records);
    assert_eq!(u(&r["events"]), u(&m["unique_events"]));
    assert_eq!(u(&r["duplicates"]), u(&m["duplicates"]));
    assert_eq!(u(&r["error_count"]), malformed);
    assert_eq!(
        u(&r["lines"]),
        u(&r["events"]) + u(&r["duplicates"]) + u(&r["error_count"])
    );
    // …and the numbers themselves, so a generator change is a visible, reviewed change.
    assert_eq!(
        (
            u(&r["files"]),
            u(&r["lines"]),
            u(&r["events"]),
            u(&r["duplicates"]),
            u(&r["error_count"])
        ),
        (31, 4735, 2962, 1766, 7)
    );
    assert_eq!(u(&r["header_lines"]), 2); // the audit CSV and the lineage CSV
    // Per file, the counts add up too, and every file's SHA-256 is the file's.
    for f in r["file_reports"].as_array().unwrap() {
        assert_eq!(
            u(&f["lines"]),
            u(&f["events"]) + u(&f["duplicates"]) + u(&f["errors"])
        );
        let bytes = std::fs::read(s(&f["file"])).unwrap();
        use sha2::Digest;
        assert_eq!(s(&f["sha256"]), hex::encode(sha2::Sha256::digest(&bytes)));
    }
    // The README is not read (its name is not a log's); the manifest is read, found not to be a log, and
    // skipped with the reason. Neither is counted.
    let skipped: BTreeMap<String, String> = r["skipped_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let f = s(&x["file"]);
            (
                f.rsplit('/').next().unwrap().to_string(),
                s(&x["reason"]).to_string(),
            )
        })
        .collect();
    assert_eq!(
        skipped.keys().collect::<Vec<_>>(),
        ["MANIFEST.json", "README.md"]
    );
    assert!(skipped["MANIFEST.json"].contains("not a Databricks audit log"));
    assert!(skipped["README.md"].contains("does not look like a log"));
}

#[test]
fn every_error_names_its_file_and_line_in_every_shape() {
    let m = manifest();
    let (_d, _case, r) = sample_case();
    let root = sample_logs().display().to_string();
    let got: BTreeSet<(String, u64)> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let f = s(&e["file"])
                .strip_prefix(&root)
                .unwrap()
                .trim_start_matches('/')
                .to_string();
            (f, u(&e["line"]))
        })
        .collect();
    let want: BTreeSet<(String, u64)> = m["malformed"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(f, lines)| {
            lines
                .as_array()
                .unwrap()
                .iter()
                .map(move |l| (f.clone(), u(l)))
        })
        .collect();
    assert_eq!(got, want);
    // Shapes and framings covered: delivered (plain and gzip), system table (JSON lines and CSV), Azure
    // (JSON lines and a pretty-printed array).
    let files: Vec<&String> = want.iter().map(|(f, _)| f).collect();
    for needle in [
        ".json.gz",
        "system-table/audit_2024-05-01_2024-05-12.jsonl",
        ".csv",
        "azure/DatabricksNotebook_2024-05-01_2024-05-10.jsonl",
        "azure/DatabricksNotebook_2024-05-11_2024-05-21.json",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(needle)),
            "no error case for {needle}"
        );
    }
    let msgs: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["message"]))
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("CSV row has 3 fields but the header has 17"))
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("`TimeGenerated` is not a recognised time"))
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("`timestamp` is not a recognised time: \"n/a\""))
    );
    assert!(msgs.iter().any(|m| m.contains("missing `service_name`")));
    // A record inside an Event Hubs capture is located by its event and its byte in the body.
    let capture_err = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| s(&e["file"]).ends_with(".avro"))
        .unwrap();
    assert!(
        s(&capture_err["location"]).ends_with(&format!(
            "00.avro (Event Hubs event 3, body byte {})",
            u(&capture_err["byte_offset"])
        )),
        "{capture_err}"
    );
    // The case keeps them all, listed by `nbtrail errors`.
    let (_d2, case, _) = sample_case();
    let listed = json([
        "errors".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(listed.as_array().unwrap().len(), want.len());
}

/// Issue 18: the sample set holds workspace 2 again as Parquet and workspace 3 again as `{"records":[…]}`
/// batches and as an Event Hubs Capture Avro file. Read alone, those forms give exactly the events the JSON
/// and CSV exports give: ingesting the JSON and CSV afterwards adds no event and no conflict.
#[test]
fn parquet_avro_capture_and_batches_read_the_same_events_as_json_and_csv() {
    let m = manifest();
    let root = sample_logs();
    let columnar = [
        "system-table/parquet/part-00000-audit.snappy.parquet",
        "azure/insights-logs-notebook/records_2024-05-01_2024-05-10.json",
        "event-hubs/nbtrail-ns/databricks-audit/0/2024/05/11/00/00/00.avro",
    ];
    let textual = [
        "system-table/audit_2024-05-01_2024-05-12.jsonl",
        "system-table/audit_2024-05-10_2024-05-21.csv",
        "azure/DatabricksNotebook_2024-05-01_2024-05-10.jsonl",
        "azure/DatabricksNotebook_2024-05-11_2024-05-21.json",
    ];
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("case");
    let ingest = |files: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "ingest".into(),
            "--case".into(),
            case.clone().into(),
            "-q".into(),
        ];
        args.extend(files.iter().map(|f| root.join(f).into_os_string()));
        json(args.iter().map(std::ffi::OsString::as_os_str))
    };
    let records = |files: &[&str]| -> u64 { files.iter().map(|f| u(&m["records"][*f])).sum() };
    let first = ingest(&columnar);
    let framings: Vec<&str> = first["file_reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| s(&f["framing"]))
        .collect();
    assert_eq!(framings, ["parquet", "json_lines", "avro_capture"]);
    assert_eq!(u(&first["lines"]), records(&columnar));
    assert_eq!(u(&first["error_count"]), 1);
    assert_eq!(u(&first["duplicates"]), 0);
    let events = u(&first["events"]);
    assert_eq!(events, records(&columnar) - 1);
    let second = ingest(&textual);
    let malformed: u64 = textual
        .iter()
        .map(|f| m["malformed"][*f].as_array().map_or(0, Vec::len) as u64)
        .sum();
    assert_eq!(
        u(&second["events"]),
        0,
        "the JSON/CSV exports hold an event the other forms lack"
    );
    assert_eq!(u(&second["conflicts"]), 0);
    assert_eq!(u(&second["error_count"]), malformed);
    assert_eq!(u(&second["duplicates"]), records(&textual) - malformed);
    // And re-reading the columnar forms adds nothing.
    let again = ingest(&columnar);
    assert_eq!(u(&again["events"]), 0);
    assert_eq!(u(&again["duplicates"]), events);
    // Provenance of a Parquet row: its row group and row.
    let parquet = root.join(columnar[0]).display().to_string();
    let listed = json([
        "events".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
        "--limit".as_ref(),
        "100000".as_ref(),
    ]);
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| s(&e["file"]) == parquet && u(&e["line"]) == 600)
        .expect("row 600 of the Parquet export is an event");
    assert_eq!(
        s(&row["location"]),
        format!("{parquet} (row group 2, row 600)")
    );
}

/// Ingests the sample logs into `case` again: nothing new, every record a duplicate, the same errors.
fn reingest_adds_nothing(case: &Path, first: &Value) {
    let again = json([
        "ingest".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        sample_logs().as_os_str(),
    ]);
    assert_eq!(u(&again["events"]), 0);
    assert_eq!(
        u(&again["duplicates"]),
        u(&first["events"]) + u(&first["duplicates"])
    );
    assert_eq!(u(&again["error_count"]), u(&first["error_count"]));
    assert_no_dangling_rows(case);
}

/// Every session with its cells (without store-internal event ids, which depend on the order of loading).
fn sessions_with_cells(case: &Path) -> Vec<Value> {
    let listed = json([
        "sessions".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    let mut out = Vec::new();
    for sess in listed.as_array().unwrap() {
        let mut replay = json([
            "replay".as_ref(),
            "--case".as_ref(),
            case.as_os_str(),
            s(&sess["id"]).as_ref(),
            "--json".as_ref(),
        ]);
        for cell in replay["cells"].as_array_mut().unwrap() {
            cell.as_object_mut().unwrap().remove("event_id");
        }
        out.push(replay);
    }
    out
}

/// Issue 18: SQL warehouse statements (`databrickssql.commandSubmit`) are reviewable like notebook cells:
/// sessions per warehouse and user (split by the idle gap), statements replayed in order with the status and
/// duration their `commandFinish` gives, found by `table:` search.
#[test]
fn sql_warehouse_statements_replay_as_sessions_with_status_and_duration() {
    let m = manifest();
    let (_d, case, _) = sample_case();
    let listed = json([
        "sessions".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    let warehouse: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["notebook_id"]
                .as_str()
                .unwrap()
                .starts_with("sql-warehouse/")
        })
        .collect();
    assert_eq!(warehouse.len() as u64, u(&m["warehouse_sessions"]));
    let (mut statements, mut failed) = (0u64, 0u64);
    for sess in &warehouse {
        let id = s(&sess["notebook_id"]);
        let wh = s(&sess["cluster_id"]);
        assert!(id.starts_with(&format!("sql-warehouse/{wh}/")), "{sess}");
        assert_eq!(s(&sess["notebook_path"]), format!("SQL warehouse {wh}"));
        let replay = json([
            "replay".as_ref(),
            "--case".as_ref(),
            case.as_os_str(),
            s(&sess["id"]).as_ref(),
            "--json".as_ref(),
        ]);
        let cells = replay["cells"].as_array().unwrap();
        assert!(!cells.is_empty());
        let mut last_start = i64::MIN;
        for c in cells {
            statements += 1;
            assert_eq!(s(&c["language"]), "sql");
            assert!(s(&c["code"]).starts_with("SELECT"), "{c}");
            assert_eq!(s(&c["user"]), &id[id.rfind('/').unwrap() + 1..]);
            let d = c["duration_s"]
                .as_f64()
                .expect("every statement has a finish");
            assert!((0.2..30.0).contains(&d), "{c}");
            match s(&c["status"]) {
                "finished" => {}
                "failed" => failed += 1,
                other => panic!("status {other}"),
            }
            // In submit order (a statement's start is its finish minus its duration).
            let finish = chrono::DateTime::parse_from_rfc3339(s(&c["time"])).unwrap();
            let start = finish.timestamp_millis() - (d * 1000.0).round() as i64;
            assert!(start >= last_start, "{c}");
            last_start = start;
        }
    }
    // Workspace 2's statements are also in the query history: still one cell each.
    assert_eq!(statements, u(&m["warehouse_statements"]));
    assert_eq!(failed, u(&m["warehouse_failed"]));
    assert!(failed > 0 && statements > 2 * failed);
    // Table facts come from the SQL: a warehouse statement is found by the table it reads.
    let hits = json([
        "search".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "table:analytics.reporting.daily_revenue service:databrickssql".as_ref(),
        "--json".as_ref(),
    ]);
    assert!(u(&hits["total"]) > 0, "{hits}");
}

/// Issue 18: `system.query.history` and `system.access.table_lineage` exports are read as their own record
/// kinds; lineage names the notebook that read a table.
#[test]
fn query_history_and_lineage_exports_are_their_own_events() {
    let m = manifest();
    let (_d, case, _) = sample_case();
    let c = case.to_str().unwrap();
    let history = json([
        "events",
        "--case",
        c,
        "--action",
        "databrickssql.queryHistory",
        "--json",
    ]);
    let history = history.as_array().unwrap();
    assert_eq!(history.len() as u64, u(&m["query_history_rows"]));
    for h in history {
        assert_eq!(s(&h["shape"]), "query_history");
        assert!(s(&h["command_text"]).starts_with("SELECT"));
        assert!(h["duration_ms"].as_i64().unwrap() >= 200);
        assert!(h["params"]["read_rows"].is_string(), "{h}");
    }
    let lineage = json([
        "events",
        "--case",
        c,
        "--action",
        "lineage.tableLineage",
        "--json",
    ]);
    let lineage = lineage.as_array().unwrap();
    assert_eq!(lineage.len() as u64, u(&m["lineage_rows"]));
    let incident = s(&m["incident_notebook_id"]);
    let by_notebook = json([
        "events",
        "--case",
        c,
        "--notebook",
        incident,
        "--action",
        "tableLineage",
        "--json",
    ]);
    let by_notebook = by_notebook.as_array().unwrap();
    assert_eq!(by_notebook.len(), 2);
    assert!(
        by_notebook
            .iter()
            .all(|e| s(&e["params"]["source_table_full_name"]) == "prod.crm.customers")
    );
    assert_eq!(
        s(&by_notebook[1]["params"]["target_path"]),
        "dbfs:/tmp/customers_export.csv"
    );

    // Joined to cells in replay: the incident's lineage to the cells that ran when it was recorded…
    let sessions = json(["sessions", "--case", c, "--notebook", incident, "--json"]);
    let sid = s(&sessions[0]["id"]);
    let replay = json(["replay", "--case", c, sid, "--json"]);
    let cells = replay["cells"].as_array().unwrap();
    let facts = |cell: &Value| -> Vec<(String, String, String)> {
        cell["lineage"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|f| {
                        (
                            s(&f["access"]).to_string(),
                            s(&f["table"]).to_string(),
                            s(&f["confidence"]).to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let read = |t: &str| ("read".to_string(), t.to_string(), "during".to_string());
    assert_eq!(facts(&cells[4]), [read("prod.crm.customers")]);
    assert_eq!(
        facts(&cells[5]),
        [
            read("prod.crm.customers"),
            (
                "write".into(),
                "dbfs:/tmp/customers_export.csv".into(),
                "during".into()
            )
        ]
    );
    assert!(
        cells
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 5 || facts(c).is_empty())
    );
    // …and a warehouse statement's to its cell by statement id, with the history's row counts.
    let wh = json(["sessions", "--case", c, "--json"]);
    let mut joined = 0;
    for sess in wh.as_array().unwrap() {
        if !s(&sess["notebook_id"]).starts_with("sql-warehouse/") {
            continue;
        }
        let r = json(["replay", "--case", c, s(&sess["id"]), "--json"]);
        for cell in r["cells"].as_array().unwrap() {
            if let Some(rows) = cell["rows_read"].as_u64() {
                joined += 1;
                assert!(rows >= 1000 || s(&cell["status"]) == "failed", "{cell}");
                let f = facts(cell);
                assert_eq!(f.len(), 1, "{cell}");
                assert_eq!(f[0].2, "statement");
                assert!(s(&cell["code"]).contains(&f[0].1), "{cell}");
            }
        }
    }
    assert_eq!(joined, u(&m["query_history_rows"]));
    // `table:` finds the lineage rows themselves (marked by their service).
    let hits = json([
        "search",
        "--case",
        c,
        "table:\"dbfs:/tmp/customers_export.csv\"",
        "--json",
    ]);
    assert_eq!(u(&hits["total"]), 1, "{hits}");
}

#[test]
fn ingesting_file_by_file_gives_what_one_ingest_gives() {
    // Each run after the first re-sessionizes only the notebooks its new events touch and ages the other
    // notebooks' open sessions: the end result must be exactly the one-run result.
    let (_d, whole, _) = sample_case();
    let dir = tempfile::tempdir().unwrap();
    let pieces = dir.path().join("case");
    let mut files: Vec<_> = files_under(&sample_logs())
        .into_keys()
        .filter(|f| f != "MANIFEST.json")
        .collect();
    files.sort();
    assert!(files.len() > 20, "{files:?}");
    for f in &files {
        json([
            "ingest".as_ref(),
            "--case".as_ref(),
            pieces.as_os_str(),
            sample_logs().join(f).as_os_str(),
            "-q".as_ref(),
        ]);
    }
    let summary = |case: &Path| {
        let mut v = json([
            "summary".as_ref(),
            "--case".as_ref(),
            case.as_os_str(),
            "--json".as_ref(),
        ]);
        v.as_object_mut().unwrap().remove("runs");
        v
    };
    assert_eq!(summary(&pieces), summary(&whole));
    let (a, b) = (sessions_with_cells(&pieces), sessions_with_cells(&whole));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    // The notebook path history is the same too (each run adds only its own path events).
    let paths = |case: &Path| -> Vec<(String, String, i64, String)> {
        let conn = rusqlite::Connection::open(case.join("case.sqlite")).unwrap();
        let mut st = conn
            .prepare(
                "SELECT notebook_id, path, time_ms, action FROM notebook_paths ORDER BY 1, 3, 2, 4",
            )
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let whole_paths = paths(&whole);
    assert!(whole_paths.len() > 20, "{}", whole_paths.len());
    assert_eq!(paths(&pieces), whole_paths);
    // Some of the early runs' open sessions went idle later: the ageing was exercised.
    assert!(
        b.iter().any(|r| r["session"]["end_reason"] == "idle"),
        "no idle session in the sample"
    );
    assert_no_dangling_rows(&pieces);
}

/// One delivered-shape notebook record: `minute` minutes after 2024-05-01 10:00 UTC.
fn notebook_record(minute: i64, action: &str, notebook: &str, command: Option<&str>) -> String {
    let mut params = serde_json::json!({"notebookId": notebook, "clusterId": "0501-000000-c1"});
    if let Some(id) = command {
        params["commandId"] = id.into();
        params["commandText"] = format!("x = {id}").into();
        params["executionTime"] = "1.0".into();
        params["status"] = "finished".into();
    }
    serde_json::json!({
        "version": "2.0", "timestamp": 1_714_557_600_000i64 + minute * 60_000, "workspaceId": 1,
        "userIdentity": {"email": "a@example.com"}, "serviceName": "notebook", "actionName": action,
        "requestId": format!("r-{notebook}-{action}-{minute}"), "requestParams": params,
        "response": {"statusCode": 200},
    })
    .to_string()
}

#[test]
fn later_runs_touch_only_their_notebooks_and_age_the_others_exactly_as_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let runs: [Vec<String>; 4] = [
        // Three notebooks, all left open at the end of the trail.
        vec![
            notebook_record(0, "attachNotebook", "n1", None),
            notebook_record(5, "runCommand", "n1", Some("1")),
            notebook_record(0, "runCommand", "n2", Some("1")),
            notebook_record(10, "runCommand", "n3", Some("1")),
        ],
        // Only n2 goes on, 3½ hours later: n1's and n3's sessions are now idle, n2 starts a new one.
        vec![notebook_record(210, "runCommand", "n2", Some("2"))],
        // n1 touched by an attach alone.
        vec![notebook_record(240, "attachNotebook", "n1", None)],
        // A late delivery: a cell of n2's first session, earlier than the one already stored.
        vec![notebook_record(-2, "runCommand", "n2", Some("0"))],
    ];
    let mut files = Vec::new();
    for (i, lines) in runs.iter().enumerate() {
        let f = dir.path().join(format!("run{i}.json"));
        std::fs::write(&f, lines.join("\n") + "\n").unwrap();
        files.push(f);
    }
    let ingest = |case: &Path, paths: &[&Path]| {
        let mut args = vec!["ingest".as_ref(), "--case".as_ref(), case.as_os_str()];
        args.extend(paths.iter().map(|p| p.as_os_str()));
        json(args)
    };
    let pieces = dir.path().join("pieces");
    let mut after_first = Vec::new();
    for (i, f) in files.iter().enumerate() {
        ingest(&pieces, &[f]);
        if i == 0 {
            after_first = sessions_with_cells(&pieces);
        }
    }
    let whole = dir.path().join("whole");
    ingest(
        &whole,
        &files
            .iter()
            .map(std::path::PathBuf::as_path)
            .collect::<Vec<_>>(),
    );
    let (a, b) = (sessions_with_cells(&pieces), sessions_with_cells(&whole));
    assert_eq!(a, b);
    assert_no_dangling_rows(&pieces);

    // And what one run gives is what an auditor expects.
    let by_start = |v: &[Value], nb: &str| -> Vec<(String, String, u64)> {
        v.iter()
            .filter(|r| r["session"]["notebook_id"] == nb)
            .map(|r| {
                let s = &r["session"];
                (
                    s["start"].as_str().unwrap().to_string(),
                    s["end_reason"].as_str().unwrap().to_string(),
                    u(&s["cells"]),
                )
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        after_first
            .iter()
            .map(|r| r["session"]["end_reason"].clone())
            .collect::<Vec<_>>(),
        ["open", "open", "open"],
        "after the first run every session is still open"
    );
    assert_eq!(
        by_start(&b, "n1"),
        [
            ("2024-05-01T10:00:00Z".into(), "reattach".into(), 1),
            ("2024-05-01T14:00:00Z".into(), "open".into(), 0),
        ]
    );
    assert_eq!(
        by_start(&b, "n2"),
        [
            ("2024-05-01T09:57:59Z".into(), "idle".into(), 2),
            ("2024-05-01T13:29:59Z".into(), "open".into(), 1),
        ]
    );
    assert_eq!(
        by_start(&b, "n3"),
        [("2024-05-01T10:09:59Z".into(), "idle".into(), 1)]
    );
    let first_n2 = b
        .iter()
        .find(|r| r["session"]["notebook_id"] == "n2" && u(&r["session"]["cells"]) == 2)
        .unwrap();
    let order: Vec<&str> = first_n2["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["command_id"]))
        .collect();
    assert_eq!(order, ["0", "1"], "{first_n2}");
}

#[test]
fn changing_the_idle_gap_rederives_sessions_and_changing_it_back_restores_them() {
    let (_d, case, first) = sample_case();
    assert_no_dangling_rows(&case);
    let sessions = || {
        json([
            "sessions".as_ref(),
            "--case".as_ref(),
            case.as_os_str(),
            "--json".as_ref(),
        ])
    };
    let cells = |v: &Value| -> u64 { v.as_array().unwrap().iter().map(|s| u(&s["cells"])).sum() };
    let before = sessions();
    let ingest_with_gap = |gap: &str| {
        json([
            "ingest".as_ref(),
            "--case".as_ref(),
            case.as_os_str(),
            "--idle-gap".as_ref(),
            gap.as_ref(),
            sample_logs().as_os_str(),
        ])
    };
    // A one-minute gap splits sessions (every cell is still in exactly one), and the rows stay consistent.
    let again = ingest_with_gap("1m");
    assert_eq!(u(&again["events"]), 0);
    let short = sessions();
    assert!(
        short.as_array().unwrap().len() > before.as_array().unwrap().len(),
        "a shorter idle gap must split some sessions"
    );
    assert_eq!(cells(&short), cells(&before));
    assert_no_dangling_rows(&case);
    // Back to the default: exactly the sessions of the first ingest, ids included.
    ingest_with_gap("2h");
    assert_eq!(sessions(), before);
    assert_no_dangling_rows(&case);
    let _ = first;
}

#[test]
fn reingesting_adds_nothing_and_counts_every_record_as_a_duplicate() {
    let (_d, case, first) = sample_case();
    let before = json([
        "summary".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    reingest_adds_nothing(&case, &first);
    let after = json([
        "summary".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(after["events"], before["events"]);
    assert_eq!(after["sessions"], before["sessions"]);
    assert_eq!(u(&after["runs"]), 2);
    // Same sessions, same ids.
    let s1 = json([
        "sessions".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(s1.as_array().unwrap().len() as u64, u(&before["sessions"]));
}

#[test]
fn the_planted_incident_replays_in_order() {
    let m = manifest();
    let (_d, case, _) = sample_case();
    let list = json([
        "sessions",
        "--case",
        case.to_str().unwrap(),
        "--user",
        "alice.nguyen@example.com",
        "--notebook",
        "/Users/alice.nguyen@example.com/churn_scratch",
        "--json",
    ]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let sess = &list[0];
    assert_eq!(s(&sess["notebook_id"]), s(&m["incident_notebook_id"]));
    assert_eq!(
        sess["users"],
        serde_json::json!(["alice.nguyen@example.com"])
    );
    assert_eq!(s(&sess["start"]), "2024-05-14T19:03:05Z");
    assert_eq!(s(&sess["end"]), "2024-05-14T19:40:09Z");
    assert_eq!(s(&sess["end_reason"]), "detach");
    assert_eq!(u(&sess["cells"]), 7);
    // A unique prefix of the id is enough.
    let id = s(&sess["id"]);
    let replay = json([
        "replay",
        "--case",
        case.to_str().unwrap(),
        &id[..8],
        "--json",
    ]);
    let cells = replay["cells"].as_array().unwrap();
    let codes: Vec<&str> = cells.iter().map(|c| s(&c["code"])).collect();
    let want: Vec<&str> = m["incident_cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert_eq!(codes, want);
    assert_eq!(
        cells.iter().map(|c| u(&c["seq"])).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    assert_eq!(s(&cells[0]["language"]), "markdown");
    assert_eq!(s(&cells[1]["language"]), "python");
    assert_eq!(cells[5]["duration_s"].as_f64(), Some(184.455));
    // Human replay shows the code too.
    let out = nbtrail(["replay", "--case", case.to_str().unwrap(), id]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("crm_token = dbutils.secrets.get(scope=\"prod-crm\", key=\"crm-api-token\")")
    );
    assert!(text.contains("ended by detach"));
    // The secret read is an event of its own, with provenance.
    let ev = json([
        "events",
        "--case",
        case.to_str().unwrap(),
        "--action",
        "secrets.getSecret",
        "--json",
    ]);
    let ev = ev.as_array().unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(s(&ev[0]["user"]), "alice.nguyen@example.com");
    assert!(s(&ev[0]["file"]).contains("date=2024-05-14"));
    assert_eq!(ev[0]["params"]["scope"], "prod-crm");
}

#[test]
fn cells_are_ordered_by_time_then_command_id_in_every_session() {
    let (_d, case, _) = sample_case();
    let c = case.to_str().unwrap();
    let sessions = json(["sessions", "--case", c, "--json"]);
    let sessions = sessions.as_array().unwrap();
    // 134 notebook sessions, and the SQL warehouse sessions (checked on their own, in submit order, by
    // `sql_warehouse_statements_replay_as_sessions_with_status_and_duration`).
    assert_eq!(sessions.len(), 208);
    let notebook = |s: &&Value| {
        !s["notebook_id"]
            .as_str()
            .unwrap()
            .starts_with("sql-warehouse/")
    };
    assert_eq!(
        sessions.len() - sessions.iter().filter(notebook).count(),
        u(&manifest()["warehouse_sessions"]) as usize
    );
    let mut cells_total = 0;
    for sess in sessions.iter().filter(notebook) {
        let r = json(["replay", "--case", c, s(&sess["id"]), "--json"]);
        let cells = r["cells"].as_array().unwrap();
        assert_eq!(cells.len() as u64, u(&sess["cells"]));
        cells_total += cells.len() as u64;
        for w in cells.windows(2) {
            let (a, b) = (s(&w[0]["time"]), s(&w[1]["time"]));
            let key = |c: &Value| s(&c["command_id"]).parse::<u64>().unwrap();
            assert!(
                a < b || (a == b && key(&w[0]) < key(&w[1])),
                "out of order: {a} {b}"
            );
        }
    }
    // Every notebook command is in exactly one session: none dropped (commands without an attach event
    // form sessions of their own; see the sessionizer's unit tests).
    assert_eq!(cells_total, u(&manifest()["commands"]));
}

#[test]
fn the_verbose_logging_gap_is_reported() {
    let m = manifest();
    let (_d, case, r) = sample_case();
    assert_eq!(u(&r["trail_gaps"]), 1);
    let sum = json([
        "summary".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    let gaps = sum["trail_gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1);
    let norm = |t: &str| t.replace(".000Z", "Z");
    assert_eq!(s(&gaps[0]["start"]), norm(s(&m["gap"][0])));
    assert_eq!(s(&gaps[0]["end"]), norm(s(&m["gap"][1])));
    assert_eq!(s(&gaps[0]["off_by"]), "dave.okafor@example.com");
    assert!(
        sum["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| s(w).contains("verbose audit logging was off"))
    );
    // No cell of the gap's workspace ran inside it (the trail has none to show).
    let ev = json([
        "events",
        "--case",
        case.to_str().unwrap(),
        "--action",
        "notebook.runCommand",
        "--from",
        "2024-05-09T18:12:44Z",
        "--to",
        "2024-05-11T09:03:10Z",
        "--json",
    ]);
    assert!(
        ev.as_array()
            .unwrap()
            .iter()
            .all(|e| s(&e["workspace_id"]) != "1234567890123456")
    );
    // The human summary says it too.
    let out = nbtrail(["summary", "--case", case.to_str().unwrap()]);
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("WARNING: verbose audit logging was off in workspace 1234567890123456")
    );
}

#[test]
fn renamed_notebooks_are_found_by_old_and_new_path() {
    let m = manifest();
    let (id, old, new) = (
        s(&m["renamed"][0]),
        s(&m["renamed"][1]),
        s(&m["renamed"][2]),
    );
    let (_d, case, _) = sample_case();
    let c = case.to_str().unwrap();
    let by_id = json(["sessions", "--case", c, "--notebook", id, "--json"]);
    let by_new = json(["sessions", "--case", c, "--notebook", new, "--json"]);
    let by_old = json(["sessions", "--case", c, "--notebook", old, "--json"]);
    assert!(!by_id.as_array().unwrap().is_empty());
    assert_eq!(by_id, by_new);
    assert_eq!(by_id, by_old);
    let paths: BTreeSet<&str> = by_id
        .as_array()
        .unwrap()
        .iter()
        .map(|x| s(&x["notebook_path"]))
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from([old, new]),
        "sessions before the rename keep the old path"
    );
    for x in by_id.as_array().unwrap() {
        let before = s(&x["start"]) < "2024-05-06T07:31:00Z";
        assert_eq!(s(&x["notebook_path"]) == old, before);
    }
}

#[test]
fn events_filter_by_user_action_and_time() {
    let (_d, case, _) = sample_case();
    let c = case.to_str().unwrap();
    let all = json(["events", "--case", c, "--json"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2962);
    let filtered = json([
        "events",
        "--case",
        c,
        "--user",
        "Bob.Martin@example.com",
        "--action",
        "attachNotebook",
        "--from",
        "2024-05-06",
        "--to",
        "2024-05-10",
        "--json",
    ]);
    let want: Vec<&Value> = all
        .iter()
        .filter(|e| e["user"] == "bob.martin@example.com" && e["action"] == "attachNotebook")
        .filter(|e| s(&e["time"]) >= "2024-05-06" && s(&e["time"]) < "2024-05-11")
        .collect();
    assert!(!want.is_empty());
    assert_eq!(
        filtered.as_array().unwrap().iter().collect::<Vec<_>>(),
        want
    );
    // Raw records are verbatim source lines.
    for e in all
        .iter()
        .filter(|e| e["shape"] == "delivered" && !s(&e["file"]).ends_with(".gz"))
        .take(50)
    {
        let text = std::fs::read_to_string(s(&e["file"])).unwrap();
        let line = text.lines().nth(u(&e["line"]) as usize - 1).unwrap();
        assert_eq!(line, s(&e["raw"]));
        assert_eq!(&text[u(&e["byte_offset"]) as usize..][..line.len()], line);
    }
    let limited = json(["events", "--case", c, "--limit", "5", "--json"]);
    assert_eq!(
        limited.as_array().unwrap().as_slice(),
        &all[all.len() - 5..]
    );
}

/// Turns a current case back into the shape schema version 5 had: `events` with a column-level
/// `UNIQUE(natural_key)` (which SQLite cannot drop, hence migration 6 rebuilds the table) and an
/// `events_time` index.
fn downgrade_to_schema_5(case: &Path) {
    let conn = rusqlite::Connection::open(case.join("case.sqlite")).unwrap();
    let cols = "id, natural_key, time_ms, user, workspace_id, service, action, notebook_id, notebook_path, \
        cluster_id, command_id, language, command_text, status, duration_ms, source_ip, user_agent, request_id, \
        web_session_id, response_status, response_error, shape, source_file_id, line, byte_offset, \
        payload_block, payload_index";
    let table: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let body = &table[table.find('(').unwrap()..];
    let v5 = format!("CREATE TABLE events_v5 {body}").replacen(
        "natural_key     BLOB NOT NULL,",
        "natural_key     BLOB NOT NULL UNIQUE,",
        1,
    );
    assert!(v5.contains("UNIQUE"), "{v5}");
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = OFF;
         BEGIN;
         {v5};
         INSERT INTO events_v5({cols}) SELECT {cols} FROM events;
         DROP TABLE events;
         ALTER TABLE events_v5 RENAME TO events;
         CREATE INDEX events_time ON events(time_ms);
         CREATE INDEX events_user ON events(user, time_ms);
         CREATE INDEX events_action ON events(action, time_ms);
         CREATE INDEX events_notebook ON events(notebook_id, coalesce(cluster_id, ''), time_ms)
             WHERE notebook_id IS NOT NULL;
         CREATE INDEX events_capture_command ON events(command_id, time_ms)
             WHERE shape = 'jupyter_capture' AND command_id IS NOT NULL;
         DROP TABLE conflicts;
         ALTER TABLE ingest_runs DROP COLUMN conflicts;
         ALTER TABLE source_files DROP COLUMN conflicts;
         ALTER TABLE notes DROP COLUMN kind;
         ALTER TABLE findings DROP COLUMN time_ms;
         PRAGMA user_version = 5;
         COMMIT;"
    ))
    .unwrap();
}

fn indexes_on_events(case: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(case.join("case.sqlite")).unwrap();
    let mut st = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'events' ORDER BY name")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_schema_5_case_is_upgraded_in_place_and_keeps_every_event_and_session() {
    let (_d, case, first) = sample_case();
    let listing = |what: &str| {
        json([
            what.as_ref(),
            "--case".as_ref(),
            case.as_os_str(),
            "--json".as_ref(),
        ])
    };
    let (events, sessions) = (listing("events"), listing("sessions"));
    downgrade_to_schema_5(&case);
    assert!(indexes_on_events(&case).contains(&"sqlite_autoindex_events_1".to_string()));

    // Opening the case runs migrations 6 to 13.
    assert_eq!(listing("events"), events);
    assert_eq!(listing("sessions"), sessions);
    let conn = rusqlite::Connection::open(case.join("case.sqlite")).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 13);
    assert_no_dangling_rows(&case);
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    drop(conn);
    assert_eq!(
        indexes_on_events(&case),
        [
            "events_action",
            "events_capture_command",
            "events_key",
            "events_lineage",
            "events_notebook",
            "events_sql_finish",
            "events_user",
            "events_warehouse"
        ]
    );

    // Migrations 7 and 13 gave the notebook index the columns sessionization reads.
    let notebook_index: String = rusqlite::Connection::open(case.join("case.sqlite"))
        .unwrap()
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'events_notebook'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        notebook_index.contains("duration_ms, command_id, user")
            && notebook_index.contains("shape = 'jupyter_capture', natural_key"),
        "{notebook_index}"
    );

    // The new key index still recognises every record: re-ingesting adds nothing.
    reingest_adds_nothing(&case, &first);
    assert_eq!(listing("sessions"), sessions);
}

/// A query-history row of a statement a notebook ran (`query_source.notebook_id`) is that notebook's
/// event, not a SQL warehouse session of its own; a warehouse statement is one.
#[test]
fn query_history_from_a_notebook_belongs_to_the_notebook() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("query_history.jsonl");
    let row = |id: &str, source: &str| {
        format!(
            r#"{{"statement_id":"{id}","executed_by":"kim@example.com","statement_text":"SELECT 1","execution_status":"FINISHED","compute":{{"type":"WAREHOUSE","warehouse_id":"wh9"}},"total_duration_ms":5,"end_time":"2024-05-02T10:00:00Z","query_source":{source}}}"#
        )
    };
    std::fs::write(
        &file,
        format!(
            "{}\n{}\n",
            row("a", r#"{"notebook_id":"nb-7"}"#),
            row("b", "null")
        ),
    )
    .unwrap();
    let case = dir.path().join("case");
    let r = json([
        "ingest".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        file.as_os_str(),
        "-q".as_ref(),
    ]);
    assert_eq!(u(&r["events"]), 2);
    let c = case.to_str().unwrap();
    let sessions = json(["sessions", "--case", c, "--json"]);
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(
        s(&sessions[0]["notebook_id"]),
        "sql-warehouse/wh9/kim@example.com"
    );
    let replay = json(["replay", "--case", c, s(&sessions[0]["id"]), "--json"]);
    assert_eq!(s(&replay["cells"][0]["command_id"]), "b");
    let by_notebook = json(["events", "--case", c, "--notebook", "nb-7", "--json"]);
    assert_eq!(s(&by_notebook[0]["command_id"]), "a");
}
