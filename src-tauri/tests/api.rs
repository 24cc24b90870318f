//! The shell's commands on the committed sample logs, without a window: each `api` function the UI calls,
//! on a real case, and the same commands through Tauri's IPC layer (mock runtime) to check names,
//! argument shapes and the `{kind, message}` error form.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

use nbtrail_app::api::{self, AppState};
use std::path::PathBuf;
use std::sync::Arc;

fn sample_logs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sample-logs")
}

struct Fixture {
    _tmp: tempfile::TempDir,
    case: PathBuf,
    state: AppState,
}

fn fresh() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let case = tmp.path().join("case");
    let state = AppState::new(tmp.path().join("config"), Some(case.clone()));
    Fixture {
        _tmp: tmp,
        case,
        state,
    }
}

/// A case with the sample logs ingested (and analyzed) through the app's own ingest.
fn ingested() -> (Fixture, api::IngestResult, Vec<api::IngestProgress>) {
    let f = fresh();
    api::open_case(&f.state, f.case.to_str().unwrap(), true, &mut |_, _| {}).unwrap();
    let mut seen = Vec::new();
    let r = api::ingest(&f.state, &[sample_logs().display().to_string()], &mut |p| {
        seen.push(p.clone());
    })
    .unwrap();
    (f, r, seen)
}

#[test]
fn without_a_case_commands_say_so() {
    let f = fresh();
    let e = api::search(
        &f.state,
        &api::SearchArgs {
            query: "x".into(),
            limit: 10,
            offset: 0,
            sort: None,
        },
    )
    .unwrap_err();
    assert_eq!(e.kind, "no_case");
    let e = api::open_case(&f.state, f.case.to_str().unwrap(), false, &mut |_, _| {}).unwrap_err();
    assert_eq!(e.kind, "bad_input");
    assert!(e.message.contains("case"), "{}", e.message);
    assert_eq!(
        api::startup_case(&f.state).unwrap(),
        f.case.display().to_string()
    );
}

#[test]
fn ingest_reports_progress_counts_that_add_up_and_analyzes() {
    let (f, r, seen) = ingested();
    let rep = &r.outcome.report;
    assert!(rep.events > 1000, "{}", rep.events);
    assert_eq!(rep.lines, rep.events + rep.duplicates + rep.error_count);
    assert!(rep.duplicates > 0 && rep.error_count > 0);
    for e in &rep.errors {
        assert!(e.file.contains("sample-logs") && e.line > 0, "{e:?}");
    }
    // Progress went through every phase, bytes never beyond the total.
    for phase in ["store", "index", "analyze"] {
        assert!(seen.iter().any(|p| p.phase == phase), "no {phase} progress");
    }
    let last_store = seen.iter().rfind(|p| p.phase == "store").unwrap();
    assert!(last_store.store.bytes_read <= last_store.store.bytes_total);
    assert!(r.findings > 0);
    assert_eq!(r.case.summary.events, rep.events);
    assert!(r.case.findings.high > 0);
    assert!(
        !r.case.gaps.is_empty(),
        "the sample has a verbose-logging gap"
    );
    // Re-ingesting adds nothing.
    let again = api::ingest(
        &f.state,
        &[sample_logs().display().to_string()],
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(again.outcome.report.events, 0);
    assert_eq!(again.case.summary.events, rep.events);
    // The case is now in the recent list.
    let recent = api::recent_cases(&f.state);
    assert_eq!(recent[0].dir, f.case.display().to_string());
}

#[test]
fn a_cancelled_ingest_leaves_the_case_as_it_was() {
    let f = fresh();
    api::open_case(&f.state, f.case.to_str().unwrap(), true, &mut |_, _| {}).unwrap();
    let state = &f.state;
    let e = api::ingest(state, &[sample_logs().display().to_string()], &mut |p| {
        if p.phase == "store" {
            api::cancel_ingest(state);
        }
    })
    .unwrap_err();
    assert_eq!(e.kind, "cancelled", "{e:?}");
    assert_eq!(api::case_info(state).unwrap().summary.events, 0);
    // And the next ingest runs normally.
    let r = api::ingest(state, &[sample_logs().display().to_string()], &mut |_| {}).unwrap();
    assert!(r.outcome.report.events > 0);
}

#[test]
fn search_replay_findings_triage_export_verify() {
    let (f, _, _) = ingested();
    let st = &f.state;
    let r = api::search(
        st,
        &api::SearchArgs {
            query: "secrets.get user:alice".into(),
            limit: 50,
            offset: 0,
            sort: Some("oldest".into()),
        },
    )
    .unwrap();
    assert!(r.total > 0);
    assert!(
        r.facets["user"]
            .iter()
            .all(|u| u.value.starts_with("alice"))
    );
    let hit = r
        .hits
        .iter()
        .find(|h| h.session_id.is_some())
        .expect("the secrets.get cell");
    assert!(
        r.hits.windows(2).all(|w| w[0].time_ms <= w[1].time_ms),
        "oldest first"
    );
    // Its session replays with the finding attached to a cell of the session, trace steps too.
    let replay = api::replay(st, hit.session_id.as_deref().unwrap()).unwrap();
    let ids: Vec<i64> = replay.cells.iter().map(|c| c.event_id).collect();
    assert!(replay.cells.windows(2).all(|w| w[0].seq < w[1].seq));
    // A finding whose trace starts at the searched cell (the secret read) and ends elsewhere (the leak).
    let finding = replay
        .findings
        .iter()
        .find(|f| {
            f.rule.starts_with("NBT")
                && f.trace.len() > 1
                && f.trace[0].cell.event_id == Some(hit.event_id)
        })
        .expect("an analyzer finding traced from the secrets.get cell");
    // The event rules found the same incident (secret read, then an outbound call): issue 19.
    assert!(
        replay.findings.iter().any(|f| f.rule == "NBE018"
            && f.trace
                .iter()
                .any(|t| t.cell.event_id == Some(hit.event_id))),
        "{:?}",
        replay.findings.iter().map(|f| &f.rule).collect::<Vec<_>>()
    );
    assert_ne!(finding.cell.event_id, Some(hit.event_id));
    assert!(ids.contains(&finding.cell.event_id.unwrap()));
    for step in &finding.trace {
        assert!(ids.contains(&step.cell.event_id.unwrap()), "{step:?}");
    }
    // Highlighting the sink's cell marks exactly the sink span.
    let cell = replay
        .cells
        .iter()
        .find(|c| Some(c.event_id) == finding.cell.event_id)
        .unwrap();
    // By event id: the app never sends code back.
    let hl = api::highlight(st, &replay.session.id, &[cell.event_id]).unwrap();
    assert_eq!(hl[0].event_id, cell.event_id);
    let toks = [hl[0].lines.clone()];
    // Only the sink and trace steps located in this cell are marked.
    let keys: std::collections::BTreeSet<&str> = toks[0]
        .iter()
        .flatten()
        .flat_map(|t| t.marks.iter().map(String::as_str))
        .collect();
    assert!(
        keys.contains(format!("f{}", finding.id).as_str()),
        "{keys:?}"
    );
    // An event of another session, or no cell at all, is refused.
    assert!(api::highlight(st, &replay.session.id, &[i64::MAX]).is_err());
    let line: Vec<char> = cell
        .code
        .as_deref()
        .unwrap()
        .lines()
        .nth(finding.span.line as usize - 1)
        .unwrap()
        .chars()
        .collect();
    let sink = format!("f{}", finding.id);
    let marked: String = toks[0][finding.span.line as usize - 1]
        .iter()
        .filter(|t| t.marks.contains(&sink))
        .map(|t| t.text.as_str())
        .collect();
    if finding.span.line == finding.span.end_line {
        let want: String = line
            [finding.span.col as usize - 1..(finding.span.end_col as usize - 1).min(line.len())]
            .iter()
            .collect();
        assert_eq!(marked, want);
    } else {
        assert!(!marked.is_empty());
    }
    // The context strip: the same user's non-cell events around the cell.
    let ctx = api::context(st, cell.event_id, 120).unwrap();
    assert!(
        ctx.iter()
            .all(|e| e.user == cell.user && e.action != "runCommand")
    );
    // Findings view: filter, triage (custody-logged), filter by status.
    let all = api::findings(st, &api::FindingFilter::default()).unwrap();
    let highs = api::findings(
        st,
        &api::FindingFilter {
            severity: Some("high".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!highs.is_empty());
    assert!(highs.iter().all(|f| f.view.severity == "high"));
    let of_rule = api::findings(
        st,
        &api::FindingFilter {
            rule: Some(finding.rule.clone()),
            user: Some("ALICE".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(of_rule.iter().any(|f| f.view.id == finding.id));
    assert!(
        of_rule
            .iter()
            .all(|f| f.view.rule == finding.rule && f.users.iter().any(|u| u.starts_with("alice")))
    );
    let nobody = api::findings(
        st,
        &api::FindingFilter {
            user: Some("nobody@example.com".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(nobody.is_empty() && all.len() >= of_rule.len());
    api::set_triage(
        st,
        finding.id,
        "valid",
        Some("confirmed with the team lead"),
    )
    .unwrap();
    // Case notes from the app: a star on the finding, a question on the case; a target that names
    // nothing is refused.
    api::add_note(st, &format!("finding:{}", finding.id), "star", "").unwrap();
    api::add_note(st, "case", "question", "who else read prod-crm?").unwrap();
    assert!(api::add_note(st, "event:999999999", "note", "x").is_err());
    assert!(api::add_note(st, "case", "verdict", "x").is_err());
    let notes = api::notes(st).unwrap();
    assert_eq!(notes.starred, [format!("finding:{}", finding.id)]);
    assert_eq!(notes.notes.last().unwrap().kind, "question");
    let valid = api::findings(
        st,
        &api::FindingFilter {
            status: Some("valid".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(valid.len(), 1);
    assert_eq!(valid[0].view.id, finding.id);
    assert_eq!(
        valid[0].time.as_deref(),
        Some(
            cell.time
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .as_str()
        ),
        "a finding row carries its cell's time"
    );
    let e = api::set_triage(st, finding.id, "bogus", None).unwrap_err();
    assert_eq!(e.kind, "not_found");
    // Export the basket (a session, a cell, a whole search) and verify the bundle.
    let out = f.case.parent().unwrap().join("evidence.zip");
    let mut ticks = 0;
    let rep = api::export_bundle(
        st,
        &api::ExportArgs {
            sessions: vec![replay.session.id.clone()],
            events: vec![hit.event_id],
            queries: vec!["action:getSecret".into()],
            examiner: "A. Examiner".into(),
            notes: Some("incident 42".into()),
            output: out.display().to_string(),
        },
        &mut |_, _| ticks += 1,
    )
    .unwrap();
    assert!(rep.events > 0 && rep.sessions == 1 && rep.findings > 0);
    assert!(ticks > 0);
    let v = api::verify_bundle(st, &rep.path, None).unwrap();
    assert!(v.ok, "{:?}", v.problem);
    // Signed with this examiner's own key, which counts as pinned: the app shows it as such.
    assert_eq!(v.trust, nbtrail_evidence::Trust::Pinned);
    assert_eq!(v.pinned_as.as_deref(), Some("this examiner's own key"));
    assert_eq!(
        v.info.get("Contact-Name").map(String::as_str),
        Some("A. Examiner")
    );
    // A damaged bundle fails verification.
    let mut bytes = std::fs::read(&out).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let bad = f.case.parent().unwrap().join("bad.zip");
    std::fs::write(&bad, bytes).unwrap();
    match api::verify_bundle(st, bad.to_str().unwrap(), None) {
        Ok(v) => assert!(!v.ok),
        Err(e) => assert_eq!(e.kind, "evidence"),
    }
    // An empty basket or no examiner is refused with a clear message.
    let e = api::export_bundle(
        st,
        &api::ExportArgs {
            examiner: "x".into(),
            output: out.display().to_string(),
            ..Default::default()
        },
        &mut |_, _| {},
    )
    .unwrap_err();
    assert_eq!(e.kind, "bad_input");
}

mod ipc {
    use super::*;
    use tauri::ipc::{CallbackFn, InvokeBody};
    use tauri::test::{INVOKE_KEY, get_ipc_response};
    use tauri::webview::InvokeRequest;

    fn request(cmd: &str, body: serde_json::Value) -> InvokeRequest {
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(body),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        }
    }

    #[test]
    fn commands_answer_through_the_ipc_layer() {
        let (f, _, _) = ingested();
        let case = f.case.clone();
        let state = Arc::new(AppState::new(
            f.case.parent().unwrap().join("config2"),
            None,
        ));
        // The real configuration and capability file: the commands must be granted to the `main` window.
        let app = nbtrail_app::builder(tauri::test::mock_builder(), state)
            .build(tauri::generate_context!())
            .unwrap();
        let w = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .unwrap();
        // Highlighting names cells of a session: without a case, the error says so.
        let err = get_ipc_response(
            &w,
            request(
                "highlight",
                serde_json::json!({"sessionId": "s", "eventIds": [1]}),
            ),
        )
        .unwrap_err();
        assert_eq!(err["kind"], "no_case");
        // Before a case is open: the error reaches the UI as {kind, message}.
        let err = get_ipc_response(
            &w,
            request("search", serde_json::json!({"args": {"query": "x"}})),
        )
        .unwrap_err();
        assert_eq!(err["kind"], "no_case");
        // Open the ingested case via the command (a channel id stands in for the UI's Channel).
        let info = get_ipc_response(
            &w,
            request(
                "open_case",
                serde_json::json!({"dir": case, "create": false, "onProgress": "__CHANNEL__:7"}),
            ),
        )
        .unwrap()
        .deserialize::<serde_json::Value>()
        .unwrap();
        assert!(info["summary"]["events"].as_u64().unwrap() > 1000);
        let res = get_ipc_response(
            &w,
            request(
                "search",
                serde_json::json!({"args": {"query": "code:secrets.get", "limit": 5}}),
            ),
        )
        .unwrap()
        .deserialize::<serde_json::Value>()
        .unwrap();
        assert!(res["total"].as_u64().unwrap() > 0);
        assert!(res["hits"][0]["snippet"]["ranges"].is_array());
        // With the case open, a hit's cell comes back highlighted by session and event id.
        let hit = res["hits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["session_id"].is_string())
            .unwrap();
        let cells = get_ipc_response(
            &w,
            request(
                "highlight",
                serde_json::json!({"sessionId": hit["session_id"], "eventIds": [hit["event_id"]]}),
            ),
        )
        .unwrap()
        .deserialize::<serde_json::Value>()
        .unwrap();
        assert_eq!(cells[0]["event_id"], hit["event_id"]);
        assert!(cells[0]["lines"][0][0]["text"].is_string());
        // The capability grants the commands to the app's own window only: another window is refused.
        let other = tauri::WebviewWindowBuilder::new(&app, "other", Default::default())
            .build()
            .unwrap();
        let denied = get_ipc_response(
            &other,
            request(
                "highlight",
                serde_json::json!({"sessionId": "s", "eventIds": [1]}),
            ),
        )
        .unwrap_err();
        assert!(denied.to_string().contains("not allowed"), "{denied}");
        // Unknown arguments shapes are refused by the IPC layer, not ignored.
        assert!(get_ipc_response(&w, request("replay", serde_json::json!({}))).is_err());
    }
}

/// The UI's fixtures are what the shell returns on the sample logs: the planted incident session's replay
/// and its highlighted cells, written to `ui/src/fixtures/` (checked in; `scripts/test.sh` fails when they
/// are stale, like the generated bindings), so the UI tests that use them break when the Rust side changes
/// what it sends.
#[test]
fn ui_fixtures_are_what_the_shell_returns_for_the_incident_session() {
    let (f, _, _) = ingested();
    let st = &f.state;
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sample_logs().join("MANIFEST.json")).unwrap(),
    )
    .unwrap();
    let notebook = manifest["incident_notebook_id"].as_str().unwrap();
    let session = api::sessions(st, None, Some(notebook.to_string()), None)
        .unwrap()
        .into_iter()
        .map(|r| r.session)
        .find(|s| s.cells > 1)
        .expect("the incident session");
    // Sorted by findings, the incident's session (the most high findings in the case) comes first, with
    // its secret read counted.
    let by_findings = api::sessions(st, None, None, Some("findings".into())).unwrap();
    assert_eq!(by_findings[0].session.id, session.id);
    assert!(by_findings[0].high >= 3 && by_findings[0].secret_reads >= 1);
    assert!(
        by_findings
            .windows(2)
            .all(|w| (w[0].high, w[0].findings) >= (w[1].high, w[1].findings))
    );
    let replay = api::replay(st, &session.id).unwrap();
    assert!(!replay.findings.is_empty(), "the incident has findings");
    let ids: Vec<i64> = replay.cells.iter().map(|c| c.event_id).collect();
    let highlighted = api::highlight(st, &session.id, &ids).unwrap();
    assert_eq!(highlighted.len(), ids.len());
    // The incident's user, as the entity page shows her.
    let user = session.users[0].clone();
    let user_page = api::entity(st, "user", &user).unwrap();
    assert!(user_page.findings.iter().any(|f| f.view.rule == "NBE018"));
    assert!(api::entity(st, "planet", "x").is_err());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src/fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, value) in [
        (
            "incident-replay.json",
            serde_json::to_value(&replay).unwrap(),
        ),
        (
            "incident-highlight.json",
            serde_json::to_value(&highlighted).unwrap(),
        ),
        (
            "incident-user-page.json",
            serde_json::to_value(&user_page).unwrap(),
        ),
    ] {
        let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).unwrap();
        }
    }
}

/// The search timeline's detection marks: bucketed by the shell for the histogram it is given, every event
/// detection in range counted once, at the bucket of its event's time, with its highest severity.
#[test]
fn detection_marks_bucket_every_detection_of_the_range() {
    let (f, _, _) = ingested();
    let st = &f.state;
    let all = api::findings(st, &Default::default()).unwrap();
    let detections: Vec<_> = all
        .iter()
        .filter(|r| r.view.rule.starts_with("NBE") && r.time.is_some())
        .collect();
    assert!(detections.len() > 5, "{}", detections.len());
    let ms = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_millis()
    };
    let times: Vec<i64> = detections
        .iter()
        .map(|r| ms(r.time.as_deref().unwrap()))
        .collect();
    let (lo, hi) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
    let day = 86_400_000;
    let first = lo - lo.rem_euclid(day);
    let n = ((hi - first) / day + 1) as u32;
    let marks = api::detection_marks(st, first, day, n).unwrap();
    assert_eq!(
        marks.iter().map(|m| m.count).sum::<u64>(),
        detections.len() as u64
    );
    for m in &marks {
        let in_bucket: Vec<_> = detections
            .iter()
            .zip(&times)
            .filter(|(_, t)| (*t - first) / day == i64::from(m.index))
            .map(|(r, _)| r)
            .collect();
        assert_eq!(in_bucket.len() as u64, m.count, "bucket {}", m.index);
        let mut codes: Vec<String> = in_bucket.iter().map(|r| r.view.rule.clone()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes, m.codes);
        let high = in_bucket.iter().any(|r| r.view.severity == "high");
        assert_eq!(m.severity == "high", high);
    }
    // A window before the trail: nothing.
    assert!(api::detection_marks(st, 0, day, 10).unwrap().is_empty());
}
