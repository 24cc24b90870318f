//! End to end: the analyzer through the real CLI — on the sample case (the planted incident found with its
//! traces, findings stored and shown in replay and summary, the documented JSON shape, filters, exit codes),
//! SARIF output, notebook files, and the JSON-lines pipe mode used to run it at scale on another engine.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

mod common;

use common::*;
use serde_json::Value;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `nbtrail analyze ARGS`, which exits 1 when it finds something; returns stdout.
fn analyze_expecting_findings<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let all: Vec<OsString> = std::iter::once(OsString::from("analyze"))
        .chain(args.into_iter().map(|a| a.as_ref().to_owned()))
        .collect();
    let out = nbtrail(&all);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The sample case analyzed by the code analyzer alone (the event rules have tests of their own below):
/// the analyzer's ground truth stays exact.
fn analyzed_case() -> (tempfile::TempDir, std::path::PathBuf) {
    let (d, case, _) = sample_case();
    analyze_expecting_findings([
        "--case".as_ref(),
        case.as_os_str(),
        "--json".as_ref(),
        "--no-detections".as_ref(),
    ]);
    (d, case)
}

#[test]
fn the_planted_incident_is_found_with_its_traces() {
    let (_d, case) = analyzed_case();
    let c = case.to_str().unwrap();
    let sessions = json([
        "sessions",
        "--case",
        c,
        "--notebook",
        "/Users/alice.nguyen@example.com/churn_scratch",
        "--json",
    ]);
    let sid = s(&sessions[0]["id"]).to_string();
    let replay = json(["replay", "--case", c, &sid, "--json"]);
    let cells = replay["cells"].as_array().unwrap();
    let seq_of = |event: &Value| {
        cells
            .iter()
            .find(|c| c["event_id"] == *event)
            .map(|c| u(&c["seq"]))
            .unwrap()
    };
    let findings = replay["findings"].as_array().unwrap();
    let got: Vec<(String, u64, u64, u64)> = findings
        .iter()
        .map(|f| {
            (
                s(&f["rule"]).to_string(),
                seq_of(&f["cell"]["event_id"]),
                u(&f["span"]["line"]),
                seq_of(&f["trace"][0]["cell"]["event_id"]),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("NBT001".into(), 3, 1, 2), // print(f"token is {crm_token}")
            ("NBT001".into(), 4, 2, 2), // requests.post(..., json={"token": crm_token})
            ("NBT007".into(), 6, 1, 5), // customers.toPandas().to_csv("/dbfs/tmp/...")
        ]
    );
    // Each trace goes source cell → assignment → sink cell.
    for f in findings {
        let steps = f["trace"].as_array().unwrap();
        assert_eq!(steps.len(), 3);
        assert!(s(&steps[0]["label"]).starts_with("source "));
        assert!(s(&steps[1]["label"]).starts_with("assigned to `"));
        assert!(s(&steps[2]["label"]).starts_with("reaches "));
        assert_eq!(s(&f["status"]), "uncategorized");
    }
    // Human replay marks the cells.
    let out = nbtrail(["replay", "--case", c, &sid]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches(">> HIGH NBT001 secret-leak").count(), 2);
    assert_eq!(
        text.matches(">> HIGH NBT007 table-data-exfiltration")
            .count(),
        1
    );
}

#[test]
fn the_whole_sample_case_has_exactly_these_findings() {
    let (_d, case) = analyzed_case();
    let c = case.to_str().unwrap();
    let all = json(["findings", "--case", c, "--json"]);
    let mut codes: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|f| s(&f["rule"]))
        .collect();
    codes.sort();
    // The incident (2 leaks, 1 export) and three widget values built into spark.sql f-strings.
    assert_eq!(
        codes,
        ["NBT001", "NBT001", "NBT005", "NBT005", "NBT005", "NBT007"]
    );
    // The documented JSON shape.
    let f = &all[0];
    for key in [
        "id",
        "rule",
        "rule_name",
        "severity",
        "message",
        "session_id",
        "cell",
        "span",
        "trace",
        "status",
    ] {
        assert!(!f[key].is_null(), "missing {key}: {f}");
    }
    assert!(u(&f["cell"]["seq"]) >= 1 && f["cell"]["command_id"].is_string());
    assert!(u(&f["span"]["end_col"]) > 0);
    assert!(s(&f["trace"][0]["label"]).starts_with("source "));
    assert_eq!(f["status"], "uncategorized");
    let summary = String::from_utf8(nbtrail(["summary", "--case", c]).stdout).unwrap();
    assert!(
        summary.contains("findings: 6 (6 high, 0 medium, 0 low)"),
        "{summary}"
    );
    // Filters.
    let exfil = json([
        "findings",
        "--case",
        c,
        "--rule",
        "table-data-exfiltration",
        "--json",
    ]);
    assert_eq!(exfil.as_array().unwrap().len(), 1);
    assert_eq!(exfil[0]["rule"], "NBT007");
    let alice = json([
        "findings",
        "--case",
        c,
        "--user",
        "alice.nguyen@example.com",
        "--rule",
        "NBT001",
        "--json",
    ]);
    assert_eq!(alice.as_array().unwrap().len(), 2);
    // One filter with one meaning per field (issue 20, the app's findings view calls the same
    // `nbtrail_ops::findings`): a part of the user's e-mail in any case, the notebook by a part of its path
    // or by its id, severity, triage status.
    let filtered = |args: &[&str]| {
        let mut a = vec!["findings", "--case", c, "--json"];
        a.extend_from_slice(args);
        json(a)
    };
    assert_eq!(filtered(&["--user", "ALICE", "--rule", "NBT001"]), alice);
    let by_path = filtered(&["--notebook", "churn_scratch"]);
    assert!(by_path.as_array().unwrap().len() >= 3);
    assert!(by_path.as_array().unwrap().iter().all(|f| {
        s(&f["notebook_path"]).ends_with("/churn_scratch")
            && f["users"][0] == "alice.nguyen@example.com"
    }));
    assert_eq!(filtered(&["--notebook", "4419276310582231"]), by_path);
    let high = filtered(&["--severity", "high"]);
    assert!(
        high.as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "high")
    );
    assert_eq!(
        filtered(&["--status", "false_positive"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // Re-analysis is idempotent: the same findings, the same ids.
    analyze_expecting_findings(["--case", c, "--no-detections"]);
    let all2 = json(["findings", "--case", c, "--json"]);
    let key = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    s(&f["rule"]).to_string(),
                    s(&f["session_id"]).to_string(),
                    u(&f["cell"]["seq"]),
                    u(&f["span"]["col"]),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&all), key(&all2));
    // Text output shows the cell with the span marked.
    let text = analyze_expecting_findings(["--case", c, "--format", "text", "--no-detections"]);
    assert!(
        text.contains("   1 | print(f\"token is {crm_token}\")"),
        "{text}"
    );
    assert!(
        text.contains("       |       ^^^^^^^^^^^^^^^^^^^^^^^\n"),
        "{text}"
    );
}

/// Issue 19: the event rules find the planted incident too — a secret read, then an outbound call by the
/// same user within 30 minutes (NBE018) — stored as a finding of the incident's session whose trace names
/// both cells; the switched-off verbose logging is found (NBE001) with the notebooks used during the gap
/// (NBE039); re-analysis keeps them (same fingerprints) and triage carries over.
#[test]
fn the_planted_incident_is_found_by_the_event_rules_as_well() {
    let (_d, case, _) = sample_case();
    let c = case.to_str().unwrap();
    let out = nbtrail(["analyze", "--case", c, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("from event detections over "), "{stderr}");
    let sessions = json([
        "sessions",
        "--case",
        c,
        "--notebook",
        "/Users/alice.nguyen@example.com/churn_scratch",
        "--json",
    ]);
    let sid = s(&sessions[0]["id"]).to_string();
    let replay = json(["replay", "--case", c, &sid, "--json"]);
    let cells = replay["cells"].as_array().unwrap();
    let code_of = |event: &Value| {
        cells
            .iter()
            .find(|c| c["event_id"] == *event)
            .map(|c| s(&c["code"]).to_string())
            .unwrap_or_default()
    };
    let seq: Vec<&Value> = replay["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "NBE018")
        .collect();
    assert_eq!(seq.len(), 1, "{:#}", replay["findings"]);
    let f = seq[0];
    assert_eq!(f["severity"], "high");
    assert!(s(&f["message"]).contains("alice.nguyen@example.com"), "{f}");
    let steps = f["trace"].as_array().unwrap();
    // The window holds the secret reads before the call: the secrets API read and the cell that read it.
    assert!(
        steps
            .iter()
            .any(|st| code_of(&st["cell"]["event_id"]).contains("dbutils.secrets.get")),
        "{f}"
    );
    assert!(code_of(&f["cell"]["event_id"]).contains("requests.post"));
    // The trail gap: verbose audit logging switched off, and notebooks used while it was.
    let all = json(["findings", "--case", c, "--json"]);
    let codes: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|f| s(&f["rule"]))
        .collect();
    assert!(codes.contains(&"NBE001"), "{codes:?}");
    assert!(codes.contains(&"NBE039"), "{codes:?}");
    // The incident's login from an address Alice never used (sample-logs/README.md) is the one login the
    // per-user baseline reports in three weeks of logins by every user.
    let new_address: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "NBE047")
        .collect();
    assert_eq!(new_address.len(), 1, "{new_address:#?}");
    let m = s(&new_address[0]["message"]);
    assert!(
        m.contains("alice.nguyen@example.com") && m.contains("203.0.113.77"),
        "{m}"
    );
    // The analyzer's findings are all still there.
    assert_eq!(codes.iter().filter(|c| c.starts_with("NBT")).count(), 6);
    // Filter by rule code works for detections like for the analyzer's rules.
    let only = json(["findings", "--case", c, "--rule", "NBE018", "--json"]);
    assert_eq!(only.as_array().unwrap().len(), 1);
    // Triage survives re-analysis (same fingerprint).
    let id = f["id"].as_i64().unwrap().to_string();
    let t = nbtrail([
        "triage",
        "--case",
        c,
        &id,
        "valid",
        "--note",
        "confirmed exfiltration",
    ]);
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    nbtrail(["analyze", "--case", c]);
    let again = json(["findings", "--case", c, "--rule", "NBE018", "--json"]);
    assert_eq!(again[0]["status"], "valid");
    assert_eq!(
        json(["findings", "--case", c, "--json"])
            .as_array()
            .unwrap()
            .len(),
        all.as_array().unwrap().len()
    );
}

/// A user's own Sigma rules: loaded from `--detection-rules DIR` (and the case folder's `detections/`),
/// validated before anything runs — a broken rule fails the run naming its file and line.
#[test]
fn user_detection_rules_are_loaded_and_a_broken_one_is_named_by_file_and_line() {
    let (d, case, _) = sample_case();
    let c = case.to_str().unwrap();
    let rules = d.path().join("my-rules");
    std::fs::create_dir_all(&rules).unwrap();
    let rule = [
        "title: Churn notebook ran",
        "name: churn_ran",
        "logsource: {product: databricks}",
        "detection:",
        "  s:",
        "    actionName: runCommand",
        "    requestParams.commandText|contains: churn",
        "  condition: s",
        "level: medium",
        "custom_attributes: {nbtrail.code: NBEX01}",
    ]
    .join("\n");
    std::fs::write(rules.join("churn.yml"), rule + "\n").unwrap();
    let out = nbtrail([
        "analyze",
        "--case",
        c,
        "--detection-rules",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mine = json(["findings", "--case", c, "--rule", "NBEX01", "--json"]);
    assert!(!mine.as_array().unwrap().is_empty());
    std::fs::write(
        rules.join("zbroken.yml"),
        "title: no detection
level: high
",
    )
    .unwrap();
    let out = nbtrail([
        "analyze",
        "--case",
        c,
        "--detection-rules",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zbroken.yml:1:"), "{err}");
}

#[test]
fn sarif_output() {
    let (_d, case, _) = sample_case();
    let dir = tempfile::tempdir().unwrap();
    let sarif = dir.path().join("out.sarif");
    analyze_expecting_findings([
        "--case".as_ref(),
        case.as_os_str(),
        "--sarif".as_ref(),
        sarif.as_os_str(),
    ]);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "nbtrail-analyzer");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    let rule_ids: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(&r["id"]))
        .collect();
    for r in results {
        assert!(rule_ids.contains(&s(&r["ruleId"])));
        assert!(
            s(&r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
                .starts_with("session/")
        );
        let flow = r["codeFlows"][0]["threadFlows"][0]["locations"]
            .as_array()
            .unwrap();
        assert!(flow.len() >= 2);
        assert!(u(&flow[0]["location"]["physicalLocation"]["region"]["startLine"]) >= 1);
    }
    let leak = results.iter().find(|r| r["ruleId"] == "NBT001").unwrap();
    assert_eq!(leak["level"], "error");
    assert_eq!(leak["properties"]["pysaCode"], 1138);
    // --format sarif writes the same log to stdout.
    let stdout = analyze_expecting_findings([
        "--case".as_ref(),
        case.as_os_str(),
        "--format".as_ref(),
        "sarif".as_ref(),
    ]);
    let v2: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v2["runs"][0]["results"].as_array().unwrap().len(), 6);
}

#[test]
fn notebook_files_databricks_source_and_ipynb() {
    let dir = tempfile::tempdir().unwrap();
    let py = dir.path().join("export.py");
    std::fs::write(
        &py,
        "# Databricks notebook source\ntok = dbutils.secrets.get('s', 'k')\n\n# COMMAND ----------\n\n# MAGIC %md\n# MAGIC notes\n\n# COMMAND ----------\n\nprint(tok)\n",
    )
    .unwrap();
    let nb = dir.path().join("n.ipynb");
    std::fs::write(
        &nb,
        r#"{"cells":[{"cell_type":"code","source":["import yaml\n","cfg = yaml.load(open('c.yml'))"]},{"cell_type":"code","source":["def broken(:"]}],"metadata":{}}"#,
    )
    .unwrap();
    let out = nbtrail([
        "analyze".as_ref(),
        py.as_os_str(),
        nb.as_os_str(),
        "--json".as_ref(),
    ]);
    // A cell with a syntax error: the analysis is incomplete (exit 3), whatever else was found.
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let missed: Vec<&Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "NBT901")
        .collect();
    assert_eq!(missed.len(), 1, "{v}");
    assert!(s(&missed[0]["session_id"]).ends_with("n.ipynb"));
    assert_eq!(
        (u(&missed[0]["cell"]["seq"]), u(&missed[0]["span"]["line"])),
        (2, 1)
    );
    let got: Vec<(String, &str, u64, u64)> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] != "NBT901")
        .map(|f| {
            (
                s(&f["session_id"]).rsplit('/').next().unwrap().to_string(),
                s(&f["rule"]),
                u(&f["cell"]["seq"]),
                u(&f["span"]["line"]),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("export.py".to_string(), "NBT001", 3, 1),
            ("n.ipynb".to_string(), "NBT008", 1, 2)
        ]
    );
    // The cell with a syntax error is reported on stderr with file, cell, line and column.
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("n.ipynb: cell 2 1:12: syntax error"), "{err}");
    // No findings: exit 0.
    let clean = dir.path().join("clean.py");
    std::fs::write(&clean, "x = 1\nprint(x)\n").unwrap();
    assert_eq!(
        nbtrail(["analyze".as_ref(), clean.as_os_str()])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn json_lines_pipe_mode_keeps_one_output_line_per_input_line() {
    let input = [
        r#"{"session_id": "a", "cells": [{"id": "c1", "code": "t = dbutils.secrets.get('s','k')"}, {"id": "c2", "code": "print(t)"}]}"#,
        r#"this is not json"#,
        r#"{"session_id": 7, "cells": [{"code": "print('hello')"}, {"code": "%sql\nSELECT 1", "language": "python"}]}"#,
    ]
    .join("\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nbtrail"))
        .args(["analyze", "--jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "findings were found");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["session_id"], "a");
    assert_eq!(lines[0]["findings"][0]["code"], "NBT001");
    assert_eq!(lines[0]["findings"][0]["location"]["cell_id"], "c2");
    assert_eq!(lines[0]["facts"][0]["secrets"], serde_json::json!(["s/k"]));
    assert_eq!(lines[1]["line"], 2);
    assert!(s(&lines[1]["error"]).starts_with("not a session"));
    assert_eq!(lines[2]["session_id"], 7);
    assert_eq!(lines[2]["findings"].as_array().unwrap().len(), 0);
}

#[test]
fn a_rules_file_naming_an_unknown_kind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("mine.toml");
    std::fs::write(&rules, "[[rules]]\ncode = \"X1\"\nname = \"x\"\nseverity = \"low\"\nsources = [\"UserSecret\"]\nsinks = [\"Logging\"]\nmessage = \"m\"\n").unwrap();
    let py = dir.path().join("a.py");
    std::fs::write(&py, "print(1)\n").unwrap();
    let out = nbtrail([
        "analyze".as_ref(),
        "--rules".as_ref(),
        rules.as_os_str(),
        py.as_os_str(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "errors exit 2 (findings exit 1)"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(
            "mine.toml: rule X1 names source kind \"UserSecret\", which no source defines"
        ),
        "{err}"
    );
}

/// Issue 17: one unreadable file must not drop the others' results, and a run that could not cover
/// everything says so in its exit status, its JSON and its SARIF; sources are decoded as Python decodes
/// them (PEP 263).
#[test]
fn unreadable_files_and_syntax_errors_make_the_run_incomplete_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let leak = dir.path().join("leak.py");
    std::fs::write(&leak, "s = dbutils.secrets.get('p', 'k')\nprint(s)\n").unwrap();
    let broken = dir.path().join("broken.py");
    std::fs::write(&broken, "def f(:\n    pass\n").unwrap();
    let latin = dir.path().join("latin.py");
    std::fs::write(
        &latin,
        b"# -*- coding: latin-1 -*-\npassword = 'caf\xe9-pass'\n",
    )
    .unwrap();
    let not_utf8 = dir.path().join("nope.py");
    std::fs::write(&not_utf8, b"x = '\xe9'\n").unwrap();
    let missing = dir.path().join("missing.py");
    let sarif = dir.path().join("out.sarif");
    let out = nbtrail([
        "analyze".as_ref(),
        "--json".as_ref(),
        "--sarif".as_ref(),
        sarif.as_os_str(),
        leak.as_os_str(),
        broken.as_os_str(),
        latin.as_os_str(),
        not_utf8.as_os_str(),
        missing.as_os_str(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                s(&f["session_id"]).rsplit('/').next().unwrap().to_string(),
                s(&f["rule"]).to_string(),
            )
        })
        .collect();
    for want in [
        ("leak.py", "NBT001"),
        ("latin.py", "NBT003"),
        ("broken.py", "NBT901"),
        ("nope.py", "NBT901"),
        ("missing.py", "NBT901"),
    ] {
        assert!(
            rules.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {rules:?}"
        );
    }
    let log: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    let inv = &log["runs"][0]["invocations"][0];
    assert_eq!(inv["executionSuccessful"], false);
    assert_eq!(
        inv["toolExecutionNotifications"].as_array().unwrap().len(),
        3
    );
    assert!(
        log["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["ruleId"] == "NBT001")
    );
    // A complete run with findings still exits 1.
    let out = nbtrail(["analyze".as_ref(), leak.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
}
