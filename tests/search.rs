//! End-to-end tests of `nbtrail search` / `tables` / `reindex` on the sample logs. Every expected hit set
//! is computed independently, straight from the case's SQLite tables (the source of record) or from the
//! command text with a regular expression — never from the index itself.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

mod common;

use common::*;
use regex::Regex;
use rusqlite::Connection;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn hit_ids(r: &Value) -> BTreeSet<i64> {
    r["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event_id"].as_i64().unwrap())
        .collect()
}

fn db(case: &Path) -> Connection {
    Connection::open(case.join("case.sqlite")).unwrap()
}

fn sql_ids(case: &Path, sql: &str) -> BTreeSet<i64> {
    let c = db(case);
    let mut st = c.prepare(sql).unwrap();
    st.query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Lineage events (`nbtrail events`, read from the store) naming `table` as source or target: Unity
/// Catalog lineage gives `table:` its tables itself.
fn lineage_ids(case: &Path, table: &str) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for action in ["lineage.tableLineage", "lineage.columnLineage"] {
        let listed = json([
            "events",
            "--case",
            case.to_str().unwrap(),
            "--action",
            action,
            "--json",
        ]);
        for e in listed.as_array().unwrap() {
            let p = &e["params"];
            if [&p["source_table_full_name"], &p["target_table_full_name"]]
                .iter()
                .any(|t| t.as_str().is_some_and(|t| t.eq_ignore_ascii_case(table)))
            {
                out.insert(e["id"].as_i64().unwrap());
            }
        }
    }
    out
}

/// Events whose command text matches `re`.
fn code_ids(case: &Path, re: &str) -> BTreeSet<i64> {
    let re = Regex::new(re).unwrap();
    let c = db(case);
    let mut st = c
        .prepare("SELECT id, command_text FROM events WHERE command_text IS NOT NULL")
        .unwrap();
    st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|(_, t)| re.is_match(t))
        .map(|(id, _)| id)
        .collect()
}

fn check(case: &Path, q: &str, expected: &BTreeSet<i64>) -> Value {
    let r = search(case, q);
    assert!(
        !expected.is_empty(),
        "{q}: the oracle found nothing; the test would prove nothing"
    );
    assert_eq!(&hit_ids(&r), expected, "hit set of `{q}`");
    assert_eq!(u(&r["total"]), expected.len() as u64, "total of `{q}`");
    r
}

#[test]
fn known_queries_return_exactly_the_known_hit_sets() {
    let (_d, case, report) = sample_case();
    assert_eq!(u(&report["index"]["indexed"]), u(&report["events"]));

    // Everything: the index holds every event of the store.
    let all = search(&case, "");
    assert_eq!(u(&all["total"]), u(&report["events"]));

    // User (a bare name matches the address).
    check(
        &case,
        "user:alice",
        &sql_ids(&case, "SELECT id FROM events WHERE user LIKE 'alice%@%'"),
    );
    check(
        &case,
        "user:ALICE.NGUYEN@example.com",
        &sql_ids(
            &case,
            "SELECT id FROM events WHERE user = 'alice.nguyen@example.com'",
        ),
    );

    // Tables, in any spelling: `prod`.`crm`.`customers` and prod.crm.customers are one table.
    let mut customers = code_ids(&case, r"(?i)`?prod`?\.`?crm`?\.`?customers`?");
    let lineage = lineage_ids(&case, "prod.crm.customers");
    assert!(!lineage.is_empty());
    customers.extend(&lineage);
    check(&case, "table:prod.crm.customers", &customers);
    check(&case, "table:`PROD`.`CRM`.`Customers`", &customers);
    check(&case, "table:customers", &customers);
    check(
        &case,
        "write:analytics.scratch.top_customers",
        &code_ids(
            &case,
            r"(?i)create\s+or\s+replace\s+table\s+analytics\.scratch\.top_customers",
        ),
    );

    // Time range (inclusive days, UTC) and comparisons.
    let day = sql_ids(
        &case,
        "SELECT id FROM events WHERE time_ms >= 1715644800000 AND time_ms < 1715731200000",
    );
    check(&case, "time:[2024-05-14 TO 2024-05-14]", &day);
    check(&case, "time:2024-05-14", &day);
    check(
        &case,
        "user:alice time:[2024-05-14T19:00 TO 2024-05-14T19:59]",
        &sql_ids(
            &case,
            "SELECT id FROM events WHERE user LIKE 'alice%' AND time_ms >= 1715713200000 AND time_ms < 1715716800000",
        ),
    );

    // Phrases and partial identifiers, in code.
    check(
        &case,
        "code:\"spark.read.table\"",
        &code_ids(&case, r"spark\.read\.table"),
    );
    check(&case, "code:secrets.get", &code_ids(&case, r"secrets\.get"));
    check(&case, "code:toPandas", &code_ids(&case, r"toPandas"));
    check(&case, "code:pandas", &code_ids(&case, r"(?i)pandas"));
    check(&case, "code:customer_id", &code_ids(&case, r"customer_id"));
    check(
        &case,
        "code:Customer",
        &code_ids(&case, r"(?i)customer([^s]|$)"),
    );
    check(
        &case,
        "code:dbutils.sec*",
        &code_ids(&case, r"dbutils\.secrets"),
    );

    // Free text reaches the event metadata too: the secrets service's own getSecret events.
    let secret_events = sql_ids(
        &case,
        "SELECT id FROM events WHERE service = 'secrets' AND action = 'getSecret'",
    );
    let r = search(&case, "secrets.get");
    let free = hit_ids(&r);
    assert!(secret_events.is_subset(&free));
    assert!(code_ids(&case, r"secrets\.get").is_subset(&free));

    // Boolean operators and exclusion.
    check(
        &case,
        "user:alice -action:runCommand",
        &sql_ids(
            &case,
            "SELECT id FROM events WHERE user LIKE 'alice%@%' AND action <> 'runCommand'",
        ),
    );
    check(
        &case,
        "action:getSecret OR action:notebook.downloadLargeResults",
        &sql_ids(
            &case,
            "SELECT id FROM events WHERE action IN ('getSecret', 'downloadLargeResults')",
        ),
    );
    check(
        &case,
        "service:notebook NOT (action:runCommand OR action:attachNotebook)",
        &sql_ids(
            &case,
            "SELECT id FROM events WHERE service = 'notebook' AND action NOT IN ('runCommand', 'attachNotebook')",
        ),
    );
}

#[test]
fn malformed_queries_fall_back_and_say_what_they_ignored() {
    let (_d, case, _) = sample_case();
    let alice = sql_ids(&case, "SELECT id FROM events WHERE user LIKE 'alice%@%'");
    for q in [
        "(user:alice OR",
        "user:alice AND",
        "user:alice time:[yesterday TO tomorrow]",
        "user:alice )",
    ] {
        let r = check(&case, q, &alice);
        let warnings = r["warnings"].as_array().unwrap();
        assert!(!warnings.is_empty(), "`{q}` should say what it ignored");
    }
    // An unknown field is searched as text, with a warning naming it.
    let r = search(&case, "colour:blue");
    assert!(s(&r["warnings"][0]).contains("unknown field `colour:`"));
    assert_eq!(u(&r["total"]), 0);
    // An unclosed phrase is a phrase to the end.
    let r = check(
        &case,
        "code:\"spark.read.table",
        &code_ids(&case, r"spark\.read\.table"),
    );
    assert!(s(&r["warnings"][0]).contains("missing closing"));
    // Relative time: the sample is from 2024, so `last 7d` (before now) finds nothing after it.
    assert_eq!(u(&search(&case, "last 7d")["total"]), 0);
}

#[test]
fn facets_and_histogram_match_sqlite_counts() {
    let (_d, case, _) = sample_case();
    let r = search(&case, "table:prod.sales.orders");
    let ids = hit_ids(&r);
    let c = db(&case);
    let list = ids
        .iter()
        .map(std::string::ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let group = |col: &str| -> BTreeMap<String, u64> {
        let mut st = c
            .prepare(&format!(
                "SELECT {col}, count(*) FROM events WHERE id IN ({list}) AND {col} IS NOT NULL GROUP BY 1"
            ))
            .unwrap();
        st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    let facet = |name: &str| -> BTreeMap<String, u64> {
        r["facets"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (s(&f["value"]).to_string(), u(&f["count"])))
            .collect()
    };
    assert_eq!(facet("user"), group("user"));
    assert_eq!(facet("action"), group("service || '.' || action"));
    // Status: the command's, else the HTTP response code.
    assert_eq!(
        facet("status"),
        group("coalesce(status, CAST(response_status AS TEXT))")
    );
    // Tables: every hit has prod.sales.orders; the other tables come from the same cells.
    assert_eq!(facet("table")["prod.sales.orders"], ids.len() as u64);

    // Histogram: buckets cover every hit once, and each bucket's count is SQLite's for its interval.
    let h = &r["histogram"];
    let interval = h["interval_ms"].as_i64().unwrap();
    let buckets = h["buckets"].as_array().unwrap();
    assert!(buckets.len() <= nbtrail_search_max_buckets());
    let sum: u64 = buckets.iter().map(|b| u(&b["count"])).sum();
    assert_eq!(sum, ids.len() as u64);
    for b in buckets {
        let start = b["start_ms"].as_i64().unwrap();
        let n: u64 = c
            .query_row(
                &format!("SELECT count(*) FROM events WHERE id IN ({list}) AND time_ms >= ?1 AND time_ms < ?2"),
                [start, start + interval],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(u(&b["count"]), n, "bucket at {start}");
    }
}

fn nbtrail_search_max_buckets() -> usize {
    120
}

#[test]
fn joined_fields_rule_and_session_follow_the_case() {
    let (_d, case, _) = sample_case();
    // Before analysis there are no findings to search by.
    assert_eq!(u(&search(&case, "rule:NBT*")["total"]), 0);
    let out = nbtrail([
        "analyze",
        "--case",
        case.to_str().unwrap(),
        "--no-detections",
    ]);
    assert_eq!(out.status.code(), Some(1), "findings exist: exit 1");
    let with_findings = sql_ids(
        &case,
        "SELECT DISTINCT event_id FROM findings WHERE event_id IS NOT NULL",
    );
    let r = check(&case, "rule:NBT*", &with_findings);
    // The rule facet counts (event, code) pairs like SQLite does.
    let c = db(&case);
    let mut st = c
        .prepare("SELECT code, count(DISTINCT event_id) FROM findings WHERE event_id IS NOT NULL GROUP BY 1")
        .unwrap();
    let expected: BTreeMap<String, u64> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let got: BTreeMap<String, u64> = r["facets"]["rule"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (s(&f["value"]).to_string(), u(&f["count"])))
        .collect();
    assert_eq!(got, expected);
    check(
        &case,
        "rule:nbt001",
        &sql_ids(&case, "SELECT event_id FROM findings WHERE code = 'NBT001'"),
    );
    let nb = s(&manifest()["incident_notebook_id"]).to_string();
    let incident: String = db(&case)
        .query_row(
            "SELECT id FROM sessions WHERE notebook_id = ?1 ORDER BY cells DESC LIMIT 1",
            [&nb],
            |r| r.get(0),
        )
        .unwrap();
    let r = check(
        &case,
        &format!("session:{}", &incident[..8]),
        &sql_ids(
            &case,
            &format!("SELECT event_id FROM session_cells WHERE session_id = '{incident}'"),
        ),
    );
    assert!(
        r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| s(&h["session_id"]) == incident)
    );
}

#[test]
fn hits_are_ordered_with_snippets_as_text_and_ranges() {
    let (_d, case, _) = sample_case();
    let r = json([
        "search",
        "--case",
        case.to_str().unwrap(),
        "--json",
        "--limit",
        "50",
        "code:secrets.get",
    ]);
    let hits = r["hits"].as_array().unwrap();
    let times: Vec<(i64, i64)> = hits
        .iter()
        .map(|h| {
            (
                h["time_ms"].as_i64().unwrap(),
                h["event_id"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first, ties by event id");
    for h in hits {
        let text: Vec<char> = s(&h["snippet"]["text"]).chars().collect();
        let ranges = h["snippet"]["ranges"].as_array().unwrap();
        assert!(!ranges.is_empty());
        for rg in ranges {
            let (a, b) = (u(&rg[0]) as usize, u(&rg[1]) as usize);
            let matched: String = text[a..b].iter().collect();
            assert_eq!(
                matched.to_lowercase(),
                "secrets.get",
                "one range over the whole identifier"
            );
        }
    }
    let oldest = json([
        "search",
        "--case",
        case.to_str().unwrap(),
        "--json",
        "--sort",
        "time",
        "--oldest",
        "code:secrets.get",
    ]);
    assert_eq!(
        oldest["hits"][0]["event_id"],
        hits.last().unwrap()["event_id"]
    );
    // Relevance: the exact identifier ranks first.
    let rel = json([
        "search",
        "--case",
        case.to_str().unwrap(),
        "--json",
        "--sort",
        "relevance",
        "secrets.get",
    ]);
    assert!(rel["hits"][0]["score"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_crash_between_store_and_index_is_repaired_on_next_open_and_reindex_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("case");
    let logs = sample_logs();
    let azure = logs.join("azure");
    // First ingest completes (store + index).
    let first = json([
        "ingest",
        "--case",
        case.to_str().unwrap(),
        azure.to_str().unwrap(),
    ]);
    let first_events = u(&first["events"]);
    // Second ingest dies after the store commits, before the index does.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nbtrail"))
        .args([
            "ingest",
            "--case",
            case.to_str().unwrap(),
            logs.to_str().unwrap(),
        ])
        .env("NBTRAIL_FAULT_EXIT_BEFORE_INDEX", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stored: u64 = db(&case)
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert!(stored > first_events);
    // The next open finds the index behind the store and indexes exactly the missing events.
    let r = search(&case, "");
    assert_eq!(u(&r["total"]), stored);
    let tables_before = json(["tables", "--case", case.to_str().unwrap(), "--json"]);
    // A full rebuild gives the same answers, and table facts are not duplicated.
    let out = nbtrail(["reindex", "--case", case.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(u(&search(&case, "")["total"]), stored);
    assert_eq!(
        json(["tables", "--case", case.to_str().unwrap(), "--json"]),
        tables_before
    );
    // A deleted or corrupted index is rebuilt on open.
    std::fs::remove_file(case.join("index").join("meta.json")).unwrap();
    assert_eq!(u(&search(&case, "")["total"]), stored);
    std::fs::write(case.join("index").join("meta.json"), b"{not json").unwrap();
    assert_eq!(u(&search(&case, "")["total"]), stored);
    // Re-ingesting the same logs adds nothing to the index.
    let again = json([
        "ingest",
        "--case",
        case.to_str().unwrap(),
        logs.to_str().unwrap(),
    ]);
    assert_eq!(u(&again["index"]["indexed"]), 0);
}

#[test]
fn tables_lists_readers_and_writers_from_the_cells() {
    let (_d, case, _) = sample_case();
    let t = json(["tables", "--case", case.to_str().unwrap(), "--json"]);
    let list = t.as_array().unwrap();
    let find = |name: &str| {
        list.iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    let customers = find("prod.crm.customers");
    // Read by cells whose code names it, and by the lineage rows that name it as a source.
    assert_eq!(
        u(&customers["reads"]),
        (code_ids(&case, r"(?i)`?prod`?\.`?crm`?\.`?customers`?").len()
            + lineage_ids(&case, "prod.crm.customers").len()) as u64
    );
    assert_eq!(
        u(&customers["via_lineage"]),
        lineage_ids(&case, "prod.crm.customers").len() as u64
    );
    let top = find("analytics.scratch.top_customers");
    assert_eq!(u(&top["reads"]), 0);
    assert!(u(&top["writes"]) > 0);
    // No Python module is mistaken for a table.
    assert!(list.iter().all(|x| !s(&x["name"]).starts_with("pyspark")));
    let human = nbtrail(["tables", "--case", case.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("prod.crm.customers"));
}
