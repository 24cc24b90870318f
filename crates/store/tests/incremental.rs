//! Incremental derivation against a full rebuild, on random notebook activity: however a trail is split into
//! ingest runs, the sessions (every field, and every session's cells in order) are what one run gives.
//! Later runs re-sessionize only the notebooks they touch and age the other notebooks' open sessions, so
//! this is the property that keeps that shortcut honest.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

use nbtrail_store::{Case, SessionFilter};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// One generated notebook record, and the run it is delivered in.
#[derive(Debug, Clone)]
struct Rec {
    minute: i64,
    notebook: usize,
    cluster: usize,
    /// 0 attach, 1 detach, 2.. command.
    kind: u8,
    user: usize,
    run: usize,
}

fn line(i: usize, r: &Rec) -> String {
    let action = match r.kind {
        0 => "attachNotebook",
        1 => "detachNotebook",
        _ => "runCommand",
    };
    let mut params = serde_json::json!({
        "notebookId": format!("nb{}", r.notebook),
        "clusterId": format!("cl{}", r.cluster),
    });
    if r.kind == 0 {
        // Attaches carry the notebook's path, which changes now and then: sessions are named by the path
        // their notebook had when they started.
        params["path"] = format!("/Users/u/nb{}-v{}", r.notebook, r.minute / 200).into();
    }
    if r.kind >= 2 {
        params["commandId"] = format!("{i}").into();
        params["commandText"] = format!("x{i} = {i}").into();
        params["executionTime"] = "30".into();
        params["status"] = "finished".into();
    }
    serde_json::json!({
        "version": "2.0", "timestamp": 1_714_550_400_000i64 + r.minute * 60_000, "workspaceId": 1,
        "userIdentity": {"email": format!("u{}@example.com", r.user)}, "serviceName": "notebook",
        "actionName": action, "requestId": format!("r{i}"), "requestParams": params,
        "response": {"statusCode": 200},
    })
    .to_string()
}

fn ingest(case: &Path, files: &[PathBuf]) {
    let mut c = Case::create(case).unwrap();
    let stream = nbtrail_ingest::RecordStream::open(files, &[]).unwrap();
    c.ingest(stream, &AtomicBool::new(false), &mut |_| {})
        .unwrap();
}

/// What is derived: every session with the command ids of its cells in order, and the notebook path
/// history.
type Derived = (
    Vec<(serde_json::Value, Vec<Option<String>>)>,
    Vec<(String, String, i64, String)>,
);

fn derived(case: &Path) -> Derived {
    let c = Case::open(case).unwrap();
    // Read-only, straight from the file: the test's oracle does not go through the store's API.
    let db = rusqlite::Connection::open_with_flags(
        case.join("case.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut st = db
        .prepare(
            "SELECT notebook_id, path, time_ms, action FROM notebook_paths ORDER BY 1, 3, 2, 4",
        )
        .unwrap();
    let paths = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(st);
    let mut out: Vec<_> = c
        .sessions(&SessionFilter::default())
        .unwrap()
        .into_iter()
        .map(|s| {
            let cells = c
                .session_cells(&s.id)
                .unwrap()
                .into_iter()
                .map(|cell| cell.command_id)
                .collect();
            (serde_json::to_value(&s).unwrap(), cells)
        })
        .collect();
    out.sort_by(|a, b| a.0["id"].as_str().cmp(&b.0["id"].as_str()));
    (out, paths)
}

fn recs() -> impl Strategy<Value = Vec<Rec>> {
    // Distinct minutes over ten hours (ties between records of one notebook would be ordered by store id,
    // which differs between loading orders by design), so idle gaps of two hours happen and do not.
    // Runs are deliveries: mostly consecutive stretches of time (so a notebook can go quiet while the
    // trail moves on, and its open session must age), with one record in eight delivered late, in a
    // random run.
    (
        proptest::collection::btree_set(0i64..600, 1..60),
        proptest::collection::vec(
            (0usize..6, 0usize..2, 0u8..8, 0usize..2, 0usize..4, 0u8..8),
            60,
        ),
    )
        .prop_map(|(minutes, picks)| {
            minutes
                .into_iter()
                .zip(picks)
                .map(
                    |(minute, (notebook, cluster, kind, user, late_run, late))| Rec {
                        minute,
                        notebook,
                        cluster,
                        kind,
                        user,
                        run: if late == 0 {
                            late_run
                        } else {
                            (minute * 4 / 600) as usize
                        },
                    },
                )
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_split_into_runs_derives_what_one_run_derives(recs in recs()) {
        let dir = tempfile::tempdir().unwrap();
        let runs: BTreeSet<usize> = recs.iter().map(|r| r.run).collect();
        let mut files = Vec::new();
        for run in &runs {
            let text: String = recs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.run == *run)
                .map(|(i, r)| line(i, r) + "\n")
                .collect();
            let f = dir.path().join(format!("run{run}.json"));
            std::fs::write(&f, text).unwrap();
            files.push(f);
        }
        let whole = dir.path().join("whole");
        ingest(&whole, &files);
        let pieces = dir.path().join("pieces");
        for f in &files {
            ingest(&pieces, std::slice::from_ref(f));
        }
        prop_assert_eq!(derived(&pieces), derived(&whole));
        // The home summary is cached at the end of each run: it must be what counting now gives, and
        // (runs apart) what one run gives.
        let cached = Case::open(&pieces).unwrap().summary().unwrap();
        prop_assert_eq!(&cached, &recomputed(&pieces));
        let mut one = Case::open(&whole).unwrap().summary().unwrap();
        one.runs = cached.runs;
        prop_assert_eq!(&cached, &one);
    }
}

/// The summary with its cache dropped (so computed from the tables).
fn recomputed(case: &Path) -> nbtrail_store::CaseSummary {
    let db = rusqlite::Connection::open(case.join("case.sqlite")).unwrap();
    db.execute(
        "DELETE FROM settings WHERE key IN ('summary', 'summary_key')",
        [],
    )
    .unwrap();
    drop(db);
    Case::open(case).unwrap().summary().unwrap()
}

#[test]
fn the_cached_summary_follows_a_new_idle_gap_and_a_new_run() {
    let dir = tempfile::tempdir().unwrap();
    let recs: Vec<Rec> = (0..40)
        .map(|i| Rec {
            minute: i * 20,
            notebook: (i % 3) as usize,
            cluster: 0,
            kind: if i % 9 == 0 { 0 } else { 2 },
            user: (i % 2) as usize,
            run: 0,
        })
        .collect();
    let f = dir.path().join("a.json");
    let text: String = recs
        .iter()
        .enumerate()
        .map(|(i, r)| line(i, r) + "\n")
        .collect();
    std::fs::write(&f, text).unwrap();
    let case = dir.path().join("case");
    ingest(&case, &[f]);
    let before = Case::open(&case).unwrap().summary().unwrap();
    assert_eq!(before.events, 40);
    // A shorter idle gap splits sessions: the summary says so at once.
    Case::open(&case)
        .unwrap()
        .set_idle_gap_ms(10 * 60_000)
        .unwrap();
    let after = Case::open(&case).unwrap().summary().unwrap();
    assert!(
        after.sessions > before.sessions,
        "{} → {}",
        before.sessions,
        after.sessions
    );
    assert_eq!(after, recomputed(&case));
    // A new run adds events.
    let g = dir.path().join("b.json");
    let more = Rec {
        minute: 2000,
        ..recs[1].clone()
    };
    std::fs::write(&g, line(1000, &more) + "\n").unwrap();
    ingest(&case, &[g]);
    let last = Case::open(&case).unwrap().summary().unwrap();
    assert_eq!((last.events, last.runs), (41, 2));
    assert_eq!(last, recomputed(&case));
}
