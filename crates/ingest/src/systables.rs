//! Databricks system tables that are not the audit log but say what ran and what it touched:
//! `system.query.history` (one row per SQL statement) and `system.access.table_lineage` /
//! `column_lineage` (one row per table or column read or written by a notebook, job, query, …). Exported as
//! JSON, CSV or Parquet like the audit table, each row becomes an event of its own kind:
//!
//! * a query-history row → `databrickssql.queryHistory` (shape `query_history`): the statement as its
//!   code, `statement_id` as command id, the warehouse as cluster, `execution_status` as status,
//!   `total_duration_ms` as duration, time = `end_time` (like `runCommand`, a statement's time is its end);
//!   rows read and produced, the statement type and where it came from (`query_source`) as parameters.
//!   The store replays these in the warehouse's sessions — except a statement a notebook ran
//!   (`query_source.notebook_id`), which is an event of that notebook.
//! * a lineage row → `lineage.tableLineage` / `lineage.columnLineage` (shape `lineage`): source and target
//!   table (and column), the entity that did it (`entity_type`, `entity_id`, `entity_run_id`), the notebook
//!   it ran in when the entity is one, `statement_id`.
//!
//! Struct columns (`compute`, `query_source`, `entity_metadata`) may be objects or JSON text, as the
//! audit table's are.

use crate::normalize::{Common, value_text};
use nbtrail_model::{Event, Provenance, Shape};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Which system table a row is from, when it is one of these.
pub fn detect(obj: &Map<String, Value>) -> Option<Shape> {
    let has = |k: &str| obj.contains_key(k);
    if has("statement_id")
        && has("statement_text")
        && (has("executed_by") || has("executed_by_user_id"))
    {
        Some(Shape::QueryHistory)
    } else if (has("source_table_full_name") || has("target_table_full_name"))
        && has("entity_type")
        && has("event_time")
    {
        Some(Shape::Lineage)
    } else {
        None
    }
}

fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(value_text).filter(|s| !s.is_empty())
}

/// A struct column as an object, whether it came as one or as JSON text of one.
fn object<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<Cow<'a, Map<String, Value>>> {
    match obj.get(key)? {
        Value::Object(m) => Some(Cow::Borrowed(m)),
        Value::String(s) => match crate::parse_json(s).ok()?.0 {
            Value::Object(m) => Some(Cow::Owned(m)),
            _ => None,
        },
        _ => None,
    }
}

fn time(obj: &Map<String, Value>, keys: &[&str]) -> Result<chrono::DateTime<chrono::Utc>, String> {
    for k in keys {
        match obj.get(*k) {
            None | Some(Value::Null) => continue,
            Some(Value::Number(n)) => {
                return n
                    .as_i64()
                    .and_then(nbtrail_model::time_from_ms)
                    .ok_or_else(|| format!("`{k}` is not a valid epoch-millisecond time: {n}"));
            }
            Some(Value::String(s)) => {
                return crate::normalize::parse_time_text(s)
                    .ok_or_else(|| format!("`{k}` is not a recognised time: {s:?}"));
            }
            Some(other) => return Err(format!("`{k}` is not a time: {other}")),
        }
    }
    Err(format!("missing `{}`", keys[0]))
}

/// Normalizes a row of `shape` (from [`detect`]).
pub fn normalize(
    obj: &Map<String, Value>,
    shape: Shape,
    raw: String,
    provenance: Provenance,
) -> Result<Event, String> {
    let mut params = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            params.insert(k.to_string(), v);
        }
    };
    if shape == Shape::QueryHistory {
        let statement = text(obj, "statement_id").ok_or("missing `statement_id`")?;
        let time = time(obj, &["end_time", "update_time", "start_time"])?;
        let compute = object(obj, "compute");
        let warehouse = compute
            .as_ref()
            .and_then(|c| text(c, "warehouse_id").or_else(|| text(c, "cluster_id")))
            .or_else(|| text(obj, "warehouse_id"));
        let source = object(obj, "query_source");
        put("commandText", text(obj, "statement_text"));
        put("commandId", Some(statement.clone()));
        put("warehouseId", warehouse);
        put(
            "status",
            text(obj, "execution_status").map(|s| match s.to_ascii_uppercase().as_str() {
                "FINISHED" => "finished".into(),
                "FAILED" => "failed".into(),
                "CANCELED" | "CANCELLED" => "cancelled".into(),
                _ => s.to_ascii_lowercase(),
            }),
        );
        put(
            "executionTime",
            text(obj, "total_duration_ms")
                .and_then(|ms| ms.trim().parse::<f64>().ok())
                .map(|ms| (ms / 1000.0).to_string()),
        );
        for k in [
            "statement_type",
            "read_rows",
            "produced_rows",
            "read_bytes",
            "written_rows",
            "written_bytes",
            "read_files",
            "client_application",
            "error_message",
            "start_time",
            "session_id",
        ] {
            put(k, text(obj, k));
        }
        if let Some(src) = &source {
            // A statement a notebook ran belongs to that notebook (found by `notebook:`), not to a
            // warehouse session of its own.
            put("notebookId", text(src, "notebook_id"));
            put(
                "sourceJobId",
                text(src, "job_info").or_else(|| text(src, "job_id")),
            );
            put("sourceDashboardId", text(src, "dashboard_id"));
            put("sourceQueryId", text(src, "sql_query_id"));
        }
        let failed =
            text(obj, "execution_status").is_some_and(|s| s.eq_ignore_ascii_case("FAILED"));
        return Ok(crate::normalize::build(
            Common {
                time,
                user: text(obj, "executed_by").or_else(|| text(obj, "executed_by_user_id")),
                workspace_id: text(obj, "workspace_id"),
                service: "databrickssql".into(),
                action: "queryHistory".into(),
                source_ip: None,
                user_agent: text(obj, "client_application"),
                request_id: Some(statement),
                web_session_id: text(obj, "session_id"),
                response_status: None,
                response_error: failed.then(|| text(obj, "error_message")).flatten(),
                shape,
            },
            params,
            raw,
            provenance,
        ));
    }
    // Lineage.
    let time = time(obj, &["event_time"])?;
    let column = obj.contains_key("source_column_name") || obj.contains_key("target_column_name");
    let meta = object(obj, "entity_metadata");
    let entity_type = text(obj, "entity_type");
    let notebook = meta
        .as_ref()
        .and_then(|m| text(m, "notebook_id"))
        .or_else(|| {
            entity_type
                .as_deref()
                .filter(|t| t.eq_ignore_ascii_case("NOTEBOOK"))
                .and(text(obj, "entity_id"))
        });
    for k in [
        "source_table_full_name",
        "source_type",
        "source_path",
        "source_column_name",
        "target_table_full_name",
        "target_type",
        "target_path",
        "target_column_name",
        "entity_id",
        "entity_run_id",
        "statement_id",
        "record_id",
        "event_id",
    ] {
        put(k, text(obj, k));
    }
    // The statement that did it (a query's lineage names its statement as the entity): replay joins the
    // row to the statement's cell by it.
    put(
        "commandId",
        text(obj, "statement_id").or_else(|| {
            entity_type
                .as_deref()
                .filter(|t| t.eq_ignore_ascii_case("DBSQL_QUERY"))
                .and(text(obj, "entity_id"))
        }),
    );
    put("entity_type", entity_type);
    put("notebookId", notebook);
    if let Some(m) = &meta {
        put("jobId", text(m, "job_info").or_else(|| text(m, "job_id")));
        put("sqlQueryId", text(m, "sql_query_id"));
        put("dashboardId", text(m, "dashboard_id"));
    }
    if !params.contains_key("source_table_full_name")
        && !params.contains_key("target_table_full_name")
        && !params.contains_key("source_path")
        && !params.contains_key("target_path")
    {
        return Err("lineage row names neither a source nor a target".into());
    }
    Ok(crate::normalize::build(
        Common {
            time,
            user: text(obj, "created_by"),
            workspace_id: text(obj, "workspace_id"),
            service: "lineage".into(),
            action: if column {
                "columnLineage"
            } else {
                "tableLineage"
            }
            .into(),
            source_ip: None,
            user_agent: None,
            request_id: text(obj, "record_id").or_else(|| text(obj, "event_id")),
            web_session_id: None,
            response_status: None,
            response_error: None,
            shape,
        },
        params,
        raw,
        provenance,
    ))
}
