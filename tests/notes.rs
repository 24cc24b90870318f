//! End to end: case notes — stars on findings and sessions, questions and conclusions on the case — checked
//! against what they name, recorded in the custody log, listed by `nbtrail notes`, and carried into an
//! evidence bundle (custody entries and report.html, escaped).
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

mod common;

use common::*;
use serde_json::Value;
use std::io::Read;
use std::path::Path;

fn nb(cfg: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_nbtrail"))
        .args(args)
        .env("NBTRAIL_CONFIG_DIR", cfg)
        .output()
        .unwrap()
}

fn member(zip_path: &Path, suffix: &str) -> String {
    let mut z = zip::ZipArchive::new(std::fs::File::open(zip_path).unwrap()).unwrap();
    let name = z
        .file_names()
        .find(|n| n.ends_with(suffix))
        .unwrap()
        .to_string();
    let mut s = String::new();
    z.by_name(&name).unwrap().read_to_string(&mut s).unwrap();
    s
}

#[test]
fn stars_questions_and_conclusions_are_custody_logged_listed_and_bundled() {
    let (d, case, _) = sample_case();
    let c = case.to_str().unwrap();
    let cfg = d.path().join("cfg");
    assert_eq!(
        nb(&cfg, &["analyze", "--case", c, "--no-detections"])
            .status
            .code(),
        Some(1)
    );
    let finding = json(["findings", "--case", c, "--rule", "NBT007", "--json"]);
    let fid = finding[0]["id"].as_i64().unwrap();
    let sid = s(&finding[0]["session_id"]).to_string();
    let ok = |args: &[&str]| {
        let o = nb(&cfg, args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(&["star", "--case", c, &format!("finding:{fid}")]);
    // A session by its unique prefix is stored under its full id; starred, then unstarred.
    ok(&["star", "--case", c, &format!("session:{}", &sid[..6])]);
    ok(&["star", "--case", c, &format!("session:{sid}"), "--remove"]);
    ok(&[
        "note",
        "--case",
        c,
        "case",
        "Who else read prod-crm that week?",
        "--kind",
        "question",
    ]);
    ok(&[
        "note",
        "--case",
        c,
        &format!("session:{sid}"),
        "Export confirmed <b>by</b> the owner",
        "--kind",
        "conclusion",
    ]);
    // What a note names must exist; its kind must be known.
    let bad = nb(&cfg, &["star", "--case", c, "event:999999999"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no such event"));
    let bad = nb(&cfg, &["note", "--case", c, "table:x", "t"]);
    assert!(!bad.status.success());

    let notes = json(["notes", "--case", c, "--json"]);
    assert_eq!(
        notes["starred"],
        serde_json::json!([format!("finding:{fid}")])
    );
    let kinds: Vec<&str> = notes["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| s(&n["kind"]))
        .collect();
    assert_eq!(kinds, ["star", "star", "unstar", "question", "conclusion"]);
    assert!(
        notes["notes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| s(&n["target"]) != format!("session:{}", &sid[..6]))
    );
    let text = String::from_utf8(nbtrail(["notes", "--case", c]).stdout).unwrap();
    assert!(
        text.contains(&format!("★ finding:{fid}")) && text.contains("[question]"),
        "{text}"
    );

    // Custody: each is an entry, and the chain holds.
    let verify = nb(&cfg, &["custody", "--case", c, "--verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // The bundle of the session carries them: custody entries, and the report's notes (escaped).
    let out = d.path().join("b.zip");
    ok(&[
        "export",
        "--case",
        c,
        "--session",
        &sid,
        "-o",
        out.to_str().unwrap(),
        "--examiner",
        "E",
    ]);
    let custody = member(&out, "data/custody.jsonl");
    let notes_in: Vec<Value> = custody
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["action"] == "note")
        .collect();
    let bundled: Vec<&str> = notes_in.iter().map(|e| s(&e["details"]["kind"])).collect();
    assert_eq!(
        bundled,
        ["star", "star", "unstar", "question", "conclusion"],
        "{custody}"
    );
    let report = member(&out, "data/report.html");
    assert!(report.contains("Case notes (5)"), "report lists the notes");
    assert!(report.contains("Export confirmed &lt;b&gt;by&lt;/b&gt; the owner"));
    assert!(!report.contains("<b>by</b>"));
}
