//! Snapshot tests (insta) of the CLI's human output on the sample logs: the incident's replay with its
//! findings inline, the findings list, and the rejected records with their locations. The sample logs'
//! folder is shown as `[SAMPLE]` (its absolute path differs between machines).
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

mod common;

use common::*;

fn text(args: &[&str]) -> String {
    let out = nbtrail(args);
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn settled<F: FnOnce()>(f: F) {
    let root = regex::escape(&sample_logs().display().to_string());
    insta::with_settings!({ filters => vec![(root.as_str(), "[SAMPLE]")] }, { f() });
}

#[test]
fn cli_text_of_the_incident() {
    let (_d, case, _) = sample_case();
    let c = case.to_str().unwrap();
    let analyzed = nbtrail(["analyze", "--case", c, "--no-detections"]);
    assert_eq!(analyzed.status.code(), Some(1), "findings expected");
    let sessions = json([
        "sessions",
        "--case",
        c,
        "--notebook",
        "/Users/alice.nguyen@example.com/churn_scratch",
        "--json",
    ]);
    let sid = s(&sessions[0]["id"]).to_string();
    settled(|| {
        insta::assert_snapshot!(
            "replay_incident",
            text(&["replay", "--case", c, &sid, "--color", "never"])
        );
        insta::assert_snapshot!(
            "findings_incident_user",
            text(&["findings", "--case", c, "--user", "alice.nguyen"])
        );
        insta::assert_snapshot!("errors", text(&["errors", "--case", c]));
    });
}
