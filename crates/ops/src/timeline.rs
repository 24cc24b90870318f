//! Timelines other tools load: every selected event, streamed in time order, as **Timesketch JSONL**
//! (one object per line with Timesketch's mandatory `message`, `datetime` and `timestamp_desc`, plus
//! `timestamp` in microseconds and the event's fields as attributes) or as **CSV** with the column names
//! of Databricks' `system.access.audit` table (`event_time`, `service_name`, `action_name`,
//! `user_identity`, `request_params`, `response`, …) plus nbtrail's provenance columns. The CSV reads back
//! through `nbtrail ingest` as the same events (same natural keys: a round trip adds nothing to the case).
//!
//! Free-text CSV columns that a spreadsheet would run as a formula are prefixed with `'` (CSV injection).
//! Nothing is capped: the selection is streamed from the store (`Case::for_each_event`), one row at a time.

use crate::Result;
use nbtrail_store::{Case, EventRow};
use std::io::Write;

/// Output format of [`write_timeline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineFormat {
    /// Timesketch JSON lines.
    Timesketch,
    /// CSV with `system.access.audit` column names.
    Csv,
}

/// The CSV header (what [`write_timeline`] writes first for [`TimelineFormat::Csv`]).
pub const CSV_COLUMNS: &[&str] = &[
    "event_time",
    "workspace_id",
    "source_ip_address",
    "user_agent",
    "user_identity",
    "service_name",
    "action_name",
    "request_id",
    "request_params",
    "response",
    "nbtrail_event_id",
    "nbtrail_shape",
    "nbtrail_source_file",
    "nbtrail_source_sha256",
    "nbtrail_location",
];

/// The request parameters as the source had them: the stored ones plus `commandText`.
fn params(e: &EventRow) -> serde_json::Map<String, serde_json::Value> {
    let mut p = match &e.params {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    if let Some(code) = &e.command_text {
        p.entry("commandText")
            .or_insert_with(|| serde_json::Value::String(code.clone()));
    }
    p
}

fn time_text(e: &EventRow) -> String {
    nbtrail_model::format_time(e.time)
}

/// One line summary for a timeline view: what happened, who, where, and the first line of the code.
pub fn message(e: &EventRow) -> String {
    let mut m = format!("{}.{}", e.service, e.action);
    if let Some(u) = &e.user {
        m.push_str(&format!(" by {u}"));
    }
    if let Some(p) = &e.notebook_path {
        m.push_str(&format!(" in {p}"));
    } else if let Some(n) = &e.notebook_id {
        m.push_str(&format!(" in notebook {n}"));
    }
    if let Some(s) = &e.status {
        m.push_str(&format!(" ({s})"));
    }
    if let Some(code) = &e.command_text {
        let first = code
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let cut: String = first.chars().take(200).collect();
        m.push_str(&format!(": {cut}"));
    }
    if let Some(r) = e.response_status.filter(|r| *r >= 400) {
        m.push_str(&format!(" → {r}"));
    }
    m
}

/// What the timestamp of an event means, for Timesketch's `timestamp_desc`.
fn timestamp_desc(e: &EventRow) -> &'static str {
    if e.action == "runCommand" || e.action == "commandFinish" {
        "Command Finished"
    } else {
        "Event Recorded"
    }
}

fn timesketch_line(e: &EventRow) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    o.insert("message".into(), message(e).into());
    o.insert("datetime".into(), time_text(e).into());
    o.insert("timestamp".into(), (e.time.timestamp_micros()).into());
    o.insert("timestamp_desc".into(), timestamp_desc(e).into());
    o.insert("data_type".into(), "nbtrail:audit:event".into());
    o.insert("event_id".into(), e.id.into());
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            o.insert(k.into(), v.clone().into());
        }
    };
    put("user", &e.user);
    put("workspace_id", &e.workspace_id);
    put("notebook_id", &e.notebook_id);
    put("notebook_path", &e.notebook_path);
    put("cluster_id", &e.cluster_id);
    put("command_id", &e.command_id);
    put("language", &e.language);
    put("command_text", &e.command_text);
    put("status", &e.status);
    put("source_ip", &e.source_ip);
    put("user_agent", &e.user_agent);
    put("request_id", &e.request_id);
    put("response_error", &e.response_error);
    o.insert("service".into(), e.service.clone().into());
    o.insert("action".into(), e.action.clone().into());
    if let Some(s) = e.response_status {
        o.insert("response_status".into(), s.into());
    }
    if let Some(d) = e.duration_ms {
        o.insert("duration_ms".into(), d.into());
    }
    o.insert(
        "request_params".into(),
        serde_json::Value::Object(params(e)),
    );
    o.insert("source_file".into(), e.file.clone().into());
    o.insert("source_sha256".into(), e.file_sha256.clone().into());
    o.insert("source_location".into(), e.location.clone().into());
    serde_json::Value::Object(o)
}

/// A spreadsheet reads a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return as a formula
/// (CSV injection). Free-text columns that no identity depends on get a leading `'`, which spreadsheets
/// show as text; the columns that make an event's natural key are left exact so the file reads back as
/// the same events (their JSON columns start with `{` anyway).
fn spreadsheet_safe(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

fn csv_row(e: &EventRow) -> Vec<String> {
    let mut response = serde_json::Map::new();
    if let Some(s) = e.response_status {
        response.insert("status_code".into(), s.into());
    }
    if let Some(m) = &e.response_error {
        response.insert("error_message".into(), m.clone().into());
    }
    vec![
        time_text(e),
        e.workspace_id.clone().unwrap_or_default(),
        e.source_ip.clone().unwrap_or_default(),
        spreadsheet_safe(e.user_agent.as_deref().unwrap_or_default()),
        e.user
            .as_ref()
            .map(|u| serde_json::json!({ "email": u }).to_string())
            .unwrap_or_default(),
        e.service.clone(),
        e.action.clone(),
        e.request_id.clone().unwrap_or_default(),
        serde_json::Value::Object(params(e)).to_string(),
        serde_json::Value::Object(response).to_string(),
        e.id.to_string(),
        e.shape.clone(),
        spreadsheet_safe(&e.file),
        e.file_sha256.clone(),
        spreadsheet_safe(&e.location),
    ]
}

/// Writes the events `ids` of `case` (every event when `ids` is `None`) to `out` in time order.
/// `progress(done)` every 10,000 rows. Returns the number of rows.
pub fn write_timeline(
    case: &Case,
    ids: Option<&[i64]>,
    format: TimelineFormat,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    let io = |source: std::io::Error| nbtrail_store::StoreError::from_io(source);
    let each = |f: &mut dyn FnMut(EventRow) -> nbtrail_store::Result<()>| match ids {
        Some(ids) => case.for_each_event(ids, f),
        None => case.for_each_event_all(f),
    };
    let mut done = 0u64;
    let mut tick = |done: &mut u64| {
        *done += 1;
        if done.is_multiple_of(10_000) {
            progress(*done);
        }
    };
    match format {
        TimelineFormat::Csv => {
            // The writer buffers and hands full buffers to `out`: constant memory.
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(CSV_COLUMNS).map_err(|e| io(e.into()))?;
            each(&mut |e| {
                w.write_record(csv_row(&e)).map_err(|e| io(e.into()))?;
                tick(&mut done);
                Ok(())
            })?;
            w.flush().map_err(io)?;
        }
        TimelineFormat::Timesketch => {
            each(&mut |e| {
                serde_json::to_writer(&mut *out, &timesketch_line(&e)).map_err(|e| io(e.into()))?;
                out.write_all(b"\n").map_err(io)?;
                tick(&mut done);
                Ok(())
            })?;
        }
    }
    out.flush().map_err(io)?;
    progress(done);
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nbtrail_model::EventFields;

    fn row(user_agent: &str, code: &str) -> EventRow {
        EventRow {
            id: 7,
            fields: EventFields {
                user: Some("mallory@example.com".into()),
                user_agent: Some(user_agent.into()),
                command_text: Some(code.into()),
                ..EventFields::new(
                    nbtrail_model::time_from_ms(1_714_557_661_000).unwrap(),
                    "notebook",
                    "runCommand",
                )
            },
            params: serde_json::json!({"notebookId": "42"}),
            shape: "delivered".into(),
            file: "=cmd|' /C calc'!A0.json".into(),
            file_sha256: "00".into(),
            line: 1,
            byte_offset: 0,
            location: "x:1".into(),
            raw: String::new(),
        }
    }

    #[test]
    fn csv_injection_in_free_text_columns_is_neutralized_and_code_stays_inside_json() {
        let r = csv_row(&row("=HYPERLINK(\"http://evil\",\"x\")", "=1+1\nprint(1)"));
        let col = |name: &str| &r[CSV_COLUMNS.iter().position(|c| *c == name).unwrap()];
        assert!(col("user_agent").starts_with("'="));
        assert!(col("nbtrail_source_file").starts_with("'="));
        // The code is a JSON string inside request_params, which starts with `{`.
        assert!(col("request_params").starts_with('{'));
        assert!(col("request_params").contains("\"commandText\":\"=1+1\\nprint(1)\""));
        // Timesketch gets the fields as data; the message carries the code's first line.
        let t = timesketch_line(&row("ua", "\n  x = 1\ny = 2"));
        assert_eq!(
            t["message"],
            "notebook.runCommand by mallory@example.com: x = 1"
        );
        assert_eq!(t["datetime"], "2024-05-01T10:01:01.000Z");
        assert_eq!(t["timestamp"], 1_714_557_661_000_000_i64);
    }
}
