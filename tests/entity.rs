//! End to end: entity pages (`nbtrail user|notebook|table|scope`) on the analyzed sample case — the
//! planted incident seen from its user, its notebook, the table it exported and the secret scope it read.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

mod common;

use common::*;
use serde_json::Value;

const ALICE: &str = "alice.nguyen@example.com";
const NOTEBOOK: &str = "/Users/alice.nguyen@example.com/churn_scratch";

fn page(case: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend_from_slice(&["--case", case, "--json"]);
    json(a)
}

fn values(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["value"]).to_string())
        .collect()
}

#[test]
fn the_incident_seen_from_its_user_notebook_table_and_secret_scope() {
    let (_d, case, _) = sample_case();
    let c = case.to_str().unwrap();
    let analyzed = nbtrail(["analyze", "--case", c]);
    assert_eq!(analyzed.status.code(), Some(1));
    let incident =
        s(&json(["sessions", "--case", c, "--notebook", NOTEBOOK, "--json"])[0]["id"]).to_string();

    // The user: every event of hers, per day; the incident session with its findings; what she read.
    let user = page(c, &["user", "ALICE.NGUYEN@example.com"]);
    assert_eq!(user["kind"], "user");
    let hers = json(["events", "--case", c, "--user", ALICE, "--json"]);
    assert_eq!(
        u(&user["facts"]["events"]),
        hers.as_array().unwrap().len() as u64
    );
    let per_day: u64 = user["facts"]["per_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| u(&d["count"]))
        .sum();
    assert_eq!(per_day, u(&user["facts"]["events"]));
    assert_eq!(values(&user["facts"]["users"]), [ALICE]);
    assert!(values(&user["facts"]["tables_read"]).contains(&"prod.crm.customers".to_string()));
    assert!(u(&user["facts"]["downloads"]) >= 1 && u(&user["facts"]["secret_reads"]) >= 1);
    let s_row = user["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["session"]["id"] == incident.as_str())
        .expect("the incident session on the user's page");
    assert!(
        u(&s_row["findings"]) >= 3 && u(&s_row["high"]) >= 3,
        "{s_row}"
    );
    let rules: Vec<&str> = user["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| s(&f["rule"]))
        .collect();
    assert!(
        rules.contains(&"NBT001") && rules.contains(&"NBE018"),
        "{rules:?}"
    );
    assert!(
        user["facts"]["first_seen"].as_str().unwrap()
            <= user["facts"]["last_seen"].as_str().unwrap()
    );

    // The notebook, by path and by id: the same page.
    let by_path = page(c, &["notebook", NOTEBOOK]);
    let by_id = page(c, &["notebook", "4419276310582231"]);
    assert_eq!(by_path["facts"], by_id["facts"]);
    assert!(
        by_path["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["session"]["id"] == incident.as_str())
    );

    // The table the incident exported: read by the incident's cells among others.
    let table = page(c, &["table", "PROD.CRM.CUSTOMERS"]);
    assert!(values(&table["facts"]["users"]).contains(&ALICE.to_string()));
    assert!(
        table["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["session"]["id"] == incident.as_str())
    );

    // The secret scope: the API read and the cell that read it, by her, in the incident session.
    let scope = page(c, &["scope", "prod-crm"]);
    assert_eq!(u(&scope["facts"]["secret_reads"]), 2, "{scope:#}");
    assert_eq!(values(&scope["facts"]["users"]), [ALICE]);
    assert_eq!(scope["facts"]["session_ids"], serde_json::json!([incident]));

    // The session list sorts by findings: the incident first, its counts in the row.
    let sorted =
        String::from_utf8(nbtrail(["sessions", "--case", c, "--sort", "findings"]).stdout).unwrap();
    let first = sorted.lines().nth(1).unwrap();
    assert!(first.starts_with(&incident), "{sorted}");
    assert!(
        sorted
            .lines()
            .next()
            .unwrap()
            .contains("FINDINGS  HIGH  SECRETS")
    );
    let json_sorted = json(["sessions", "--case", c, "--sort", "findings", "--json"]);
    assert_eq!(s(&json_sorted[0]["id"]), incident);

    // Someone who is not in the case: an answer, not an error.
    let nobody = nbtrail(["user", "--case", c, "nobody@example.com"]);
    assert!(nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stdout).contains("never seen"));
    // The text page names the sessions and findings.
    let text = String::from_utf8(nbtrail(["user", "--case", c, ALICE]).stdout).unwrap();
    assert!(
        text.contains(&incident) && text.contains("NBE018") && text.contains("activity per day"),
        "{text}"
    );
}

/// Regression: `nbtrail user … | head -1` made every command panic with a backtrace when the reader closed
/// the pipe early. Now the command ends quietly, as a shell expects of a closed pipe.
#[test]
fn a_reader_closing_the_pipe_early_gets_no_panic() {
    use std::io::BufRead;
    let (_d, case, _) = sample_case();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nbtrail"))
        .args(["events", "--case", case.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    // The reader goes away after one line (as `head -1` does).
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        matches!(out.status.code(), Some(0 | 141)),
        "{:?}",
        out.status
    );
}
