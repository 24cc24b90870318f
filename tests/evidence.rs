//! End-to-end tests of evidence bundles (`nbtrail export` / `verify`) and the custody log, on the sample
//! logs and on a case whose cells are hostile HTML.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

fn nb(cfg: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nbtrail"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("NBTRAIL_EXAMINER", "test-examiner")
        .env("NBTRAIL_CONFIG_DIR", cfg)
        .output()
        .expect("nbtrail runs")
}

fn ok_json(cfg: &Path, args: &[&str]) -> Value {
    let out = nb(cfg, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn verify(cfg: &Path, bundle: &Path, key: Option<&str>) -> (bool, String) {
    let mut args = vec!["verify", bundle.to_str().unwrap(), "--json"];
    if let Some(k) = key {
        args.extend(["--key", k]);
    }
    let out = nb(cfg, &args);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        out.status.success(),
        v["ok"].as_bool().unwrap(),
        "exit status agrees with the verdict"
    );
    (
        v["ok"].as_bool().unwrap(),
        v["problem"].as_str().unwrap_or("").to_string(),
    )
}

/// All members of a zip: (name, bytes).
fn members(zip: &Path) -> Vec<(String, Vec<u8>)> {
    let mut a = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    (0..a.len())
        .map(|i| {
            let mut f = a.by_index(i).unwrap();
            let mut b = Vec::new();
            f.read_to_end(&mut b).unwrap();
            (f.name().to_string(), b)
        })
        .collect()
}

fn write_zip(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in members {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap();
}

struct Setup {
    _dir: tempfile::TempDir,
    cfg: PathBuf,
    case: PathBuf,
    bundle: PathBuf,
    root: PathBuf,
}

fn exported() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    let case = dir.path().join("case");
    ok_json(
        &cfg,
        &[
            "ingest",
            "--case",
            case.to_str().unwrap(),
            sample_logs().to_str().unwrap(),
        ],
    );
    let out = nb(
        &cfg,
        &[
            "analyze",
            "--case",
            case.to_str().unwrap(),
            "--no-detections",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let incident = s(&ok_json(
        &cfg,
        &[
            "sessions",
            "--case",
            case.to_str().unwrap(),
            "--notebook",
            "/Users/alice.nguyen@example.com/churn_scratch",
            "--json",
        ],
    )[0]["id"])
    .to_string();
    let bundle = dir.path().join("bundle.zip");
    let r = ok_json(
        &cfg,
        &[
            "export",
            "--case",
            case.to_str().unwrap(),
            "--session",
            &incident,
            "--query",
            "user:bob action:getTable",
            "-o",
            bundle.to_str().unwrap(),
            "--examiner",
            "Ada Auditor",
            "--notes",
            "case 42",
        ],
    );
    assert!(u(&r["events"]) > 7);
    assert_eq!(
        u(&r["findings"]),
        3,
        "the incident session's three findings"
    );
    Setup {
        root: dir.path().to_path_buf(),
        _dir: dir,
        cfg,
        case,
        bundle,
    }
}

#[test]
fn export_verifies_and_any_tampering_is_named() {
    let t = exported();
    assert_eq!(verify(&t.cfg, &t.bundle, None), (true, String::new()));
    let orig = members(&t.bundle);
    let tampered = t.root.join("tampered.zip");

    // Flip one byte of each member in turn: verify fails naming that member.
    for (k, (name, bytes)) in orig.iter().enumerate() {
        let mut m = orig.clone();
        let mut b = bytes.clone();
        if b.is_empty() {
            // An empty member (no conflicts in the selection): adding a byte must fail too.
            b.push(b'x');
        } else {
            let at = b.len() / 2;
            b[at] ^= 0x01;
        }
        m[k] = (name.clone(), b);
        write_zip(&tampered, &m);
        let (ok, problem) = verify(&t.cfg, &tampered, None);
        let short = name.split_once('/').unwrap().1;
        assert!(!ok, "flipping a byte of {short} must fail");
        assert!(problem.contains(short), "problem names {short}: {problem}");
    }
    // Remove a member.
    let m: Vec<_> = orig
        .iter()
        .filter(|(n, _)| !n.ends_with("data/triage.json"))
        .cloned()
        .collect();
    write_zip(&tampered, &m);
    let (ok, problem) = verify(&t.cfg, &tampered, None);
    assert!(
        !ok && problem.contains("missing member data/triage.json"),
        "{problem}"
    );
    // Add a member.
    let mut m = orig.clone();
    let root = orig[0].0.split_once('/').unwrap().0.to_string();
    m.push((format!("{root}/data/extra.txt"), b"planted".to_vec()));
    write_zip(&tampered, &m);
    let (ok, problem) = verify(&t.cfg, &tampered, None);
    assert!(
        !ok && problem.contains("unexpected member data/extra.txt"),
        "{problem}"
    );
    // Swap the signature for one made by another examiner's key over another bundle.
    let other_cfg = t.root.join("other-config");
    let other = t.root.join("other.zip");
    ok_json(
        &other_cfg,
        &[
            "export",
            "--case",
            t.case.to_str().unwrap(),
            "--events",
            "1,2,3",
            "-o",
            other.to_str().unwrap(),
        ],
    );
    let other_sig = members(&other)
        .into_iter()
        .find(|(n, _)| n.ends_with(".sig"))
        .unwrap()
        .1;
    let m: Vec<_> = orig
        .iter()
        .map(|(n, b)| {
            (
                n.clone(),
                if n.ends_with(".sig") {
                    other_sig.clone()
                } else {
                    b.clone()
                },
            )
        })
        .collect();
    write_zip(&tampered, &m);
    let (ok, problem) = verify(&t.cfg, &tampered, None);
    assert!(
        !ok && problem.contains("tagmanifest-sha256.txt.sig"),
        "{problem}"
    );
    // Re-signing everything with another key verifies, but not against the expected key.
    let theirs = std::fs::read_to_string(other_cfg.join("examiner-ed25519.pub")).unwrap();
    let mine = std::fs::read_to_string(t.cfg.join("examiner-ed25519.pub")).unwrap();
    assert!(verify(&t.cfg, &other, Some(theirs.trim())).0);
    let (ok, problem) = verify(&t.cfg, &other, Some(mine.trim()));
    assert!(
        !ok && problem.contains("not by the expected key"),
        "{problem}"
    );
    // And the raw zip: any flipped byte anywhere in the file fails verification.
    let raw = std::fs::read(&t.bundle).unwrap();
    for at in [0, raw.len() / 3, raw.len() / 2, raw.len() - 30] {
        let mut b = raw.clone();
        b[at] ^= 0x20;
        std::fs::write(&tampered, &b).unwrap();
        assert!(
            !verify(&t.cfg, &tampered, None).0,
            "byte {at} of the zip flipped"
        );
    }
}

#[test]
fn original_records_are_byte_identical_and_the_export_is_in_the_custody_log() {
    let t = exported();
    let m = members(&t.bundle);
    let events = &m
        .iter()
        .find(|(n, _)| n.ends_with("data/events.jsonl"))
        .unwrap()
        .1;
    let mut checked = 0;
    for line in String::from_utf8_lossy(events).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let e = &v["event"];
        let raw = s(&e["raw"]);
        let file = PathBuf::from(s(&e["file"]));
        let source = std::fs::read(&file).unwrap();
        // The file's hash recorded at ingest is the file's hash now.
        assert_eq!(s(&e["file_sha256"]), sha256_hex(&source));
        if file.extension().is_some_and(|x| x == "gz") {
            continue;
        }
        let at = u(&e["byte_offset"]) as usize;
        assert_eq!(
            &source[at..at + raw.len()],
            raw.as_bytes(),
            "{}:{}",
            file.display(),
            e["line"]
        );
        assert_eq!(s(&v["raw_sha256"]), sha256_hex(raw.as_bytes()));
        checked += 1;
    }
    assert!(checked > 7);
    // Custody: ingest, analyze, export — chained and intact; the export names the bundle's hash.
    let c = custody(&t);
    let actions: Vec<&str> = c["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["action"]))
        .collect();
    assert_eq!(actions, ["ingest", "analyze", "export"]);
    assert_eq!(
        s(&c["entries"][2]["details"]["bundle_sha256"]),
        sha256_hex(&std::fs::read(&t.bundle).unwrap())
    );
    // The bundle carries the custody entries for its selection.
    let custody = &m
        .iter()
        .find(|(n, _)| n.ends_with("data/custody.jsonl"))
        .unwrap()
        .1;
    assert!(String::from_utf8_lossy(custody).contains("\"action\":\"ingest\""));
}

/// `nbtrail custody --json --verify` on the setup's case.
fn custody(t: &Setup) -> Value {
    ok_json(
        &t.cfg,
        &[
            "custody",
            "--case",
            t.case.to_str().unwrap(),
            "--json",
            "--verify",
        ],
    )
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn triage_changes_are_in_the_custody_log_and_a_tampered_log_fails_verification() {
    let t = exported();
    let f = ok_json(
        &t.cfg,
        &[
            "findings",
            "--case",
            t.case.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let id = f.as_array().unwrap()[0]["id"].as_i64().unwrap().to_string();
    let out = nb(
        &t.cfg,
        &[
            "triage",
            "--case",
            t.case.to_str().unwrap(),
            &id,
            "valid",
            "--note",
            "confirmed with HR",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = nb(
        &t.cfg,
        &["triage", "--case", t.case.to_str().unwrap(), &id, "maybe"],
    );
    assert_eq!(bad.status.code(), Some(1));
    let out = nb(
        &t.cfg,
        &[
            "note",
            "--case",
            t.case.to_str().unwrap(),
            &format!("finding:{id}"),
            "see ticket 7",
        ],
    );
    assert!(out.status.success());
    let c = custody(&t);
    let entries = c["entries"].as_array().unwrap();
    let triage = entries.iter().find(|e| e["action"] == "triage").unwrap();
    assert_eq!(triage["details"]["to"], "valid");
    assert_eq!(triage["details"]["from"], "uncategorized");
    assert_eq!(triage["examiner"], "test-examiner");
    assert!(entries.iter().any(|e| e["action"] == "note"));

    // The append-only triggers refuse edits through SQLite…
    let conn = rusqlite::Connection::open(t.case.join("case.sqlite")).unwrap();
    assert!(
        conn.execute(
            "UPDATE custody_log SET examiner = 'mallory' WHERE seq = 2",
            []
        )
        .is_err()
    );
    // …and an edit that bypasses them breaks the chain at that entry.
    conn.execute_batch(
        "DROP TRIGGER custody_log_no_update; UPDATE custody_log SET examiner = 'mallory' WHERE seq = 2;",
    )
    .unwrap();
    let out = nb(
        &t.cfg,
        &["custody", "--case", t.case.to_str().unwrap(), "--verify"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("entry 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "</pre><b>bold</b>",
    "\u{1b}[31mred\u{1b}[0m",
    // Trojan Source (CVE-2021-42574): an override and isolates that would make the line display reordered.
    "user\u{202e} \u{2066}// admin only\u{2069} \u{2066}",
];

/// A case whose one session's cells are hostile HTML; returns (report.html text, dir guard).
fn hostile_report() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    let line = |i: usize, action: &str, params: Value| {
        serde_json::json!({
            "accountId": "a1", "actionName": action, "auditLevel": "WORKSPACE_LEVEL", "date": "2024-06-01",
            "orgId": "99", "requestId": format!("req-{i}"), "requestParams": params,
            "response": {"errorMessage": null, "result": null, "statusCode": 200},
            "serviceName": "notebook", "sessionId": "s1", "sourceIPAddress": "10.0.0.1",
            "timestamp": 1717236000000i64 + i as i64 * 60_000, "userAgent": "test",
            "userIdentity": {"email": "mallory@example.com"}, "version": "2.0", "workspaceId": "99"
        })
        .to_string()
    };
    let mut text = line(
        0,
        "attachNotebook",
        serde_json::json!({"notebookId": "1", "clusterId": "c", "path": "/Users/mallory/<script>x</script>"}),
    ) + "\n";
    for (i, code) in HOSTILE.iter().enumerate() {
        text += &(line(
            i + 1,
            "runCommand",
            serde_json::json!({"notebookId": "1", "clusterId": "c", "commandId": format!("{i}"),
            "commandLanguage": "python", "commandText": format!("x = '{code}'\nprint(x)"), "status": "finished", "executionTime": "0.1"}),
        ) + "\n");
    }
    let log = dir.path().join("hostile.json");
    std::fs::write(&log, text).unwrap();
    let case = dir.path().join("case");
    ok_json(
        &cfg,
        &[
            "ingest",
            "--case",
            case.to_str().unwrap(),
            log.to_str().unwrap(),
        ],
    );
    let sid = s(&ok_json(
        &cfg,
        &["sessions", "--case", case.to_str().unwrap(), "--json"],
    )[0]["id"])
    .to_string();
    let bundle = dir.path().join("b.zip");
    ok_json(
        &cfg,
        &[
            "export",
            "--case",
            case.to_str().unwrap(),
            "--session",
            &sid,
            "-o",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(verify(&cfg, &bundle, None).0);
    let html = members(&bundle)
        .into_iter()
        .find(|(n, _)| n.ends_with("data/report.html"))
        .unwrap()
        .1;
    std::fs::write(dir.path().join("report.html"), &html).unwrap();
    (String::from_utf8(html).unwrap(), dir)
}

#[test]
fn the_report_has_no_script_and_shows_hostile_content_as_text() {
    let (html, _d) = hostile_report();
    let lower = html.to_lowercase();
    assert!(
        !lower.contains("<script"),
        "no script element, not even from content"
    );
    assert!(!lower.contains("<img"));
    assert!(!lower.contains("</pre><b>"));
    assert!(!html.contains('\u{1b}'), "no raw escape characters");
    for bidi in ['\u{202e}', '\u{2066}', '\u{2069}'] {
        assert!(!html.contains(bidi), "no raw bidi control {bidi:?}");
    }
    assert!(html.contains("user\\u{202e} \\u{2066}// admin only\\u{2069} \\u{2066}"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(html.contains("default-src &#39;none&#39;") || html.contains("default-src 'none'"));
}

/// Opens the report in headless Chromium and checks what a reader sees: the hostile strings as text, no
/// script ran (the title is intact and no element came from cell content).
#[test]
fn the_report_renders_in_headless_chromium() {
    let (_, d) = hostile_report();
    let report = d.path().join("report.html");
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("Chromium is installed (scripts/test.sh installs the Debian package `chromium`)");
    let profile = d.path().join("chromium-profile");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            &format!("file://{}", report.display()),
        ])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        dom.contains("<title>nbtrail evidence report</title>"),
        "rendered: {}",
        &dom[..dom.len().min(500)]
    );
    let lower = dom.to_lowercase();
    assert!(
        !lower.contains("<script"),
        "no script element in the rendered DOM"
    );
    assert!(
        !lower.contains("<img"),
        "no image element from cell content"
    );
    assert!(
        !lower.contains("<b>bold</b>"),
        "cell content did not become markup"
    );
    // The text a reader sees contains the hostile strings verbatim (serialized back as escaped text).
    assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(dom.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(dom.contains("&lt;/pre&gt;&lt;b&gt;bold&lt;/b&gt;"));
    assert!(dom.contains("Session "), "the session replay rendered");
}

/// The bundle's `findings.sarif` and `nbtrail analyze --format sarif` describe the same findings in the same
/// shape (one SARIF writer): same driver, rule names and levels, messages, regions and trace lengths; the
/// bundle adds each finding's fingerprint and triage status.
#[test]
fn the_bundles_sarif_has_the_analyzers_shape_plus_fingerprints_and_triage() {
    let t = exported();
    let bundled: Value = serde_json::from_slice(
        &members(&t.bundle)
            .into_iter()
            .find(|(n, _)| n.ends_with("data/findings.sarif"))
            .unwrap()
            .1,
    )
    .unwrap();
    let incident = s(&ok_json(
        &t.cfg,
        &[
            "sessions",
            "--case",
            t.case.to_str().unwrap(),
            "--notebook",
            "/Users/alice.nguyen@example.com/churn_scratch",
            "--json",
        ],
    )[0]["id"])
    .to_string();
    let out = nb(
        &t.cfg,
        &[
            "analyze",
            "--case",
            t.case.to_str().unwrap(),
            &incident,
            "--format",
            "sarif",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "findings exit 1");
    let fresh: Value = serde_json::from_slice(&out.stdout).unwrap();

    let run = |v: &Value| v["runs"][0].clone();
    let (b, f) = (run(&bundled), run(&fresh));
    assert_eq!(bundled["version"], "2.1.0");
    assert_eq!(b["tool"]["driver"]["name"], f["tool"]["driver"]["name"]);
    // What identifies a result, independent of where the cell is addressed.
    let shape = |r: &Value| {
        let region = &r["locations"][0]["physicalLocation"]["region"];
        (
            s(&r["ruleId"]).to_string(),
            s(&r["level"]).to_string(),
            s(&r["message"]["text"]).to_string(),
            [
                &region["startLine"],
                &region["startColumn"],
                &region["endLine"],
                &region["endColumn"],
            ]
            .map(u),
            r["codeFlows"][0]["threadFlows"][0]["locations"]
                .as_array()
                .unwrap()
                .len(),
        )
    };
    let mut bs: Vec<_> = b["results"].as_array().unwrap().iter().map(shape).collect();
    let mut fs: Vec<_> = f["results"].as_array().unwrap().iter().map(shape).collect();
    bs.sort();
    fs.sort();
    assert_eq!(bs.len(), 3);
    assert_eq!(bs, fs);
    // Every rule a bundled result names is declared with the analyzer's name and level.
    let rule_of = |run: &Value, id: &str| {
        run["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| {
                (
                    r["name"].clone(),
                    r["defaultConfiguration"]["level"].clone(),
                )
            })
    };
    for (id, ..) in &bs {
        assert!(rule_of(&b, id).is_some(), "{id} declared");
        assert_eq!(rule_of(&b, id), rule_of(&f, id), "{id}");
    }
    for r in b["results"].as_array().unwrap() {
        let fp = s(&r["partialFingerprints"]["nbtrail/v1"]);
        assert!(
            fp.len() == 32 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
            "{r}"
        );
        assert_eq!(r["properties"]["triage"], "uncategorized");
        assert!(
            s(&r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
                .starts_with("nbtrail:event/")
        );
    }
}

// ---- issue 16: bundles that verified but showed forged content ---------------------------------------

/// A zip of stored (uncompressed) entries written byte by byte, so a test can build what zip libraries
/// refuse to write (two entries with one name, data before the first entry).
fn raw_zip(entries: &[(&str, &[u8])], prefix: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    let mut central = Vec::new();
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let offset = out.len() as u32;
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend(sig.to_le_bytes());
            if central {
                h.extend(20u16.to_le_bytes());
            }
            h.extend(20u16.to_le_bytes()); // version needed
            h.extend(0u16.to_le_bytes()); // flags
            h.extend(0u16.to_le_bytes()); // stored
            h.extend(0u32.to_le_bytes()); // time, date
            h.extend(crc.sum().to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend((name.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes()); // extra
            if central {
                h.extend([0u8; 6]); // comment len, disk, internal attrs
                h.extend(0u32.to_le_bytes()); // external attrs
                h.extend(offset.to_le_bytes());
            }
            h.extend(name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend(*data);
        central.extend(header(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// The same member name twice, the forged copy first: the zip crate kept one (so "appears twice" never
/// fired) while `unzip -n` and streaming readers show the forged one.
#[test]
fn bundle_with_a_duplicate_entry_name_is_refused() {
    let t = exported();
    let orig = members(&t.bundle);
    let report = orig
        .iter()
        .find(|(n, _)| n.ends_with("report.html"))
        .unwrap();
    let mut entries: Vec<(&str, &[u8])> = vec![(report.0.as_str(), b"<h1>nothing to see</h1>")];
    entries.extend(orig.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    let forged = t.bundle.with_file_name("dup.zip");
    std::fs::write(&forged, raw_zip(&entries, b"")).unwrap();
    let (ok, problem) = verify(&t.cfg, &forged, None);
    assert!(!ok && problem.contains("appears twice"), "{problem}");
    // The same members once each, written the same raw way, verify: the refusal is about the duplicate.
    let clean = t.bundle.with_file_name("clean.zip");
    std::fs::write(&clean, raw_zip(&entries[1..], b"")).unwrap();
    assert_eq!(verify(&t.cfg, &clean, None), (true, String::new()));
}

/// A forged local entry prepended before the real zip: central-directory readers skip it, streaming
/// readers show it first.
#[test]
fn bundle_with_a_forged_entry_prepended_is_refused() {
    let t = exported();
    let orig = members(&t.bundle);
    let root = orig[0].0.split('/').next().unwrap().to_string();
    let forged_entry = raw_zip(&[(&format!("{root}/data/report.html"), b"forged")], b"");
    // Only the local entry (up to its central directory) goes in front.
    let local_len = 30 + root.len() + "/data/report.html".len() + 6;
    let mut bytes = forged_entry[..local_len].to_vec();
    bytes.extend(std::fs::read(&t.bundle).unwrap());
    let forged = t.bundle.with_file_name("prepended.zip");
    std::fs::write(&forged, &bytes).unwrap();
    let (ok, problem) = verify(&t.cfg, &forged, None);
    assert!(
        !ok && problem.contains("not a well-formed bundle"),
        "{problem}"
    );
    // Trailing bytes after the end record are refused too.
    let mut trailing = std::fs::read(&t.bundle).unwrap();
    trailing.extend(b"PK\x03\x04 more");
    std::fs::write(&forged, &trailing).unwrap();
    assert!(!verify(&t.cfg, &forged, None).0);
}

/// An altered bundle re-signed with the forger's own key printed VERIFIED and exited 0 unless `--key` was
/// given. Now it is "intact, signer unknown" with its own exit status; pinning the key makes it verified.
#[test]
fn bundle_resigned_with_an_attackers_key_is_not_verified() {
    let t = exported();
    let attacker = t.cfg.with_file_name("attacker-config");
    let forged = t.bundle.with_file_name("resigned.zip");
    let out = nb(
        &attacker,
        &[
            "export",
            "--case",
            t.case.to_str().unwrap(),
            "--events",
            "1,2",
            "-o",
            forged.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = nb(&t.cfg, &["verify", forged.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.starts_with("INTACT, SIGNER UNKNOWN"), "{text}");
    assert!(!text.contains("VERIFIED"), "{text}");
    let v: Value =
        serde_json::from_slice(&nb(&t.cfg, &["verify", forged.to_str().unwrap(), "--json"]).stdout)
            .unwrap();
    assert_eq!(
        (
            v["ok"].as_bool(),
            v["intact"].as_bool(),
            v["trust"].as_str()
        ),
        (Some(false), Some(true), Some("unknown"))
    );
    // Pinning the other examiner's key (by fingerprint) in a trusted file makes it verified, by name.
    let theirs = std::fs::read_to_string(attacker.join("examiner-ed25519.pub")).unwrap();
    let trusted = t.cfg.join("team.txt");
    std::fs::write(
        &trusted,
        format!("# team\n{} Dana Examiner\n", theirs.trim()),
    )
    .unwrap();
    let verify_trusting = || {
        nb(
            &t.cfg,
            &[
                "verify",
                forged.to_str().unwrap(),
                "--trusted",
                trusted.to_str().unwrap(),
            ],
        )
    };
    let out = verify_trusting();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("VERIFIED") && text.contains("Dana Examiner"),
        "{text}"
    );
    // A malformed trusted file is an error naming its line.
    std::fs::write(&trusted, "abc Dana\n").unwrap();
    let out = verify_trusting();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("team.txt:1"),
        "{out:?}"
    );
}

/// A small tag file that inflates to gigabytes was read into memory whole before being rejected.
#[test]
fn bundle_with_a_tag_file_bomb_is_refused_unread() {
    let t = exported();
    let mut m = members(&t.bundle);
    for (n, b) in &mut m {
        if n.ends_with("bag-info.txt") {
            b.extend(std::iter::repeat_n(b'\n', 200 << 20));
        }
    }
    let forged = t.bundle.with_file_name("bomb.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&forged).unwrap());
    for (name, bytes) in &m {
        w.start_file(
            name.as_str(),
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .large_file(true),
        )
        .unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap();
    assert!(std::fs::metadata(&forged).unwrap().len() < 4 << 20);
    let (ok, problem) = verify(&t.cfg, &forged, None);
    assert!(
        !ok && problem.contains("bag-info.txt: larger than"),
        "{problem}"
    );
}

/// Issue 20: `report.html` is pinned by a snapshot (hostile cells escaped as text): a change to the
/// report is a reviewed one. What differs per run — the temporary folder, the times, hashes — is replaced by
/// placeholders (the examiner is fixed by the test's environment).
#[test]
fn report_html_snapshot_of_hostile_cells() {
    let (html, dir) = hostile_report();
    let tmp = regex::escape(&dir.path().display().to_string());
    insta::with_settings!({ filters => vec![
        (tmp.as_str(), "[TMP]"),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)", "[TIME]"),
        (r"[0-9a-f]{64}", "[SHA256]"),
    ] }, {
        insta::assert_snapshot!(html);
    });
}
