//! Shape D: records of the `nbtrail-gateway` capture log (see the `nbtrail-capture` crate).
//!
//! Recognised by the chain members every capture record has (`seq`, `prev`, `hash`, `type`). Each record
//! becomes one event, so every line is still an event, a duplicate or an error:
//!
//! | record | service.action | notes |
//! |---|---|---|
//! | `kernel_message` `execute_request` (to the kernel) | `notebook.runCommand` | `commandId` = msg id, `commandText` = code |
//! | other `kernel_message` | `jupyter.<msg_type>` | `commandId` = the parent's msg id, so outputs and replies join their cell; `output_text` = searchable text of an output |
//! | `ws_open` / `ws_close` | `notebook.attachNotebook` / `notebook.detachNotebook` | one session per kernel websocket connection |
//! | `http`, `http_response`, `segment_*`, `checkpoint` | `gateway.<type>` | |
//!
//! The notebook id and the "cluster" of a capture event are the kernel id; its path is the notebook path
//! the gateway learnt from the sessions API. The natural key's request id is the record's own hash, so a
//! log ingested twice adds nothing. The user is the gateway's authenticated user — never the `username`
//! a client wrote into the message header.

use crate::normalize::{Common, build, value_text};
use nbtrail_model::{CellOutput, Event, Provenance, Shape};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// True when an object is a capture-log record.
pub fn is_capture(obj: &Map<String, Value>) -> bool {
    obj.get("seq").is_some_and(Value::is_u64)
        && obj.get("prev").is_some_and(Value::is_string)
        && obj.get("hash").is_some_and(Value::is_string)
        && obj.get("type").is_some_and(Value::is_string)
}

/// Message types that are outputs of a cell (shown to the user under it).
pub const OUTPUT_TYPES: &[&str] = &[
    "stream",
    "display_data",
    "update_display_data",
    "execute_result",
    "error",
    "clear_output",
    "input_request",
];

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|x| !x.is_empty())
}

/// Normalizes one capture record.
pub fn normalize(
    obj: &Map<String, Value>,
    raw: String,
    provenance: Provenance,
) -> Result<Event, String> {
    let v = obj;
    let st = |k: &str| obj.get(k).and_then(Value::as_str).filter(|x| !x.is_empty());
    let time_text = st("time").ok_or("capture record without `time`")?;
    let time = chrono::DateTime::parse_from_rfc3339(time_text)
        .map_err(|e| format!("capture record `time` is not RFC 3339 ({e}): {time_text:?}"))?
        .with_timezone(&chrono::Utc);
    let kind = st("type").unwrap_or_default();
    let msg_type = st("msg_type");
    let direction = st("direction");
    let (service, action) = match (kind, msg_type, direction) {
        ("kernel_message", Some("execute_request"), Some("to_kernel")) => {
            ("notebook", "runCommand".to_string())
        }
        ("kernel_message", Some(t), _) => ("jupyter", t.to_string()),
        ("kernel_message", None, _) => ("jupyter", "undecodable_frame".to_string()),
        ("ws_open", ..) => ("notebook", "attachNotebook".to_string()),
        ("ws_close", ..) => ("notebook", "detachNotebook".to_string()),
        (t, ..) => ("gateway", t.to_string()),
    };
    let null = Value::Null;
    let content = v.get("content").unwrap_or(&null);
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let mut put = |k: &str, val: Option<&Value>| {
        if let Some(t) = val.and_then(value_text) {
            params.insert(k.to_string(), t);
        }
    };
    for k in [
        "seq",
        "direction",
        "channel",
        "msg_type",
        "msg_id",
        "parent_msg_id",
        "kernel_id",
        "conn",
        "framing",
        "auth",
        "method",
        "status",
        "id",
        "refused",
        "subprotocol",
        "closed_by",
        "segment",
        "reason",
        "parse_error",
        "frame_bytes",
        "frame_sha256",
    ] {
        put(k, v.get(k));
    }
    // Build's well-known parameters: notebook, cluster, command, code, path.
    put("notebookId", v.get("kernel_id"));
    put("clusterId", v.get("kernel_id"));
    put("notebookFullPath", v.get("notebook_path"));
    if kind == "http" {
        put("url_path", v.get("path"));
        put("query", v.get("query"));
    }
    let command_id = if action == "runCommand" {
        v.get("msg_id")
    } else {
        v.get("parent_msg_id")
    };
    put("commandId", command_id);
    if action == "runCommand" {
        put("commandText", content.get("code"));
        put("silent", content.get("silent"));
        put("store_history", content.get("store_history"));
    } else if msg_type == Some("comm_msg") || msg_type == Some("comm_open") {
        put("comm_id", content.get("comm_id"));
        put("target_name", content.get("target_name"));
        put("comm_data", content.get("data"));
    }
    if let Some(t) = msg_type
        && OUTPUT_TYPES.contains(&t)
        && let Some(out) = output_of(t, content)
        && let Some(text) = out.text.as_deref().filter(|x| !x.is_empty())
    {
        put("output_text", Some(&Value::String(text.to_string())));
    }
    if msg_type == Some("execute_reply") {
        put("reply_status", content.get("status"));
        put("execution_count", content.get("execution_count"));
    }
    let remote = st("remote").map(|r| r.rsplit_once(':').map(|(h, _)| h).unwrap_or(r).to_string());
    let mut ev = build(
        Common {
            time,
            user: st("user").map(str::to_string),
            workspace_id: None,
            service: service.to_string(),
            action,
            source_ip: remote,
            user_agent: st("user_agent").map(str::to_string),
            request_id: st("hash").map(str::to_string),
            web_session_id: st("ws_session").or(st("session")).map(str::to_string),
            response_status: v.get("status").and_then(Value::as_i64),
            response_error: st("refused").or(st("parse_error")).map(str::to_string),
            shape: Shape::Capture,
        },
        params,
        raw,
        provenance,
    );
    if ev.action == "runCommand" {
        // A capture knows the kernel's language only from the code; magics still win.
        ev.language = ev.language.or_else(|| Some("python".into()));
    }
    Ok(ev)
}

/// The output a kernel message shows under its cell, from the message content.
pub fn output_of(msg_type: &str, content: &Value) -> Option<CellOutput> {
    let mut out = CellOutput {
        event_id: 0,
        time: None,
        output_type: msg_type.to_string(),
        name: None,
        text: None,
        data: None,
        ename: None,
        evalue: None,
        truncated: false,
    };
    match msg_type {
        "stream" => {
            out.name = s(content, "name").map(str::to_string);
            out.text = content
                .get("text")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        "display_data" | "update_display_data" | "execute_result" => {
            let data = content.get("data").cloned().unwrap_or(Value::Null);
            out.text = ["text/plain", "text/markdown", "text/html", "text/latex"]
                .iter()
                .find_map(|m| data.get(*m).and_then(Value::as_str))
                .map(str::to_string);
            out.data = Some(data);
        }
        "error" => {
            out.ename = s(content, "ename").map(str::to_string);
            out.evalue = content
                .get("evalue")
                .and_then(Value::as_str)
                .map(str::to_string);
            let tb: Vec<String> = content
                .get("traceback")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(strip_ansi).collect())
                .unwrap_or_default();
            out.text = Some(if tb.is_empty() {
                format!(
                    "{}: {}",
                    out.ename.as_deref().unwrap_or(""),
                    out.evalue.as_deref().unwrap_or("")
                )
            } else {
                tb.join("\n")
            });
        }
        "input_request" => {
            out.text = content
                .get("prompt")
                .and_then(Value::as_str)
                .map(str::to_string);
            out.name = content
                .get("password")
                .and_then(Value::as_bool)
                .filter(|p| *p)
                .map(|_| "password".to_string());
        }
        "clear_output" => {}
        _ => return None,
    }
    Some(out)
}

/// The output of a stored capture record (its raw line), with `truncated` set when the gateway cut it.
pub fn output_of_record(raw: &str) -> Option<CellOutput> {
    let v: Value = serde_json::from_str(raw).ok()?;
    let mut out = output_of(v.get("msg_type")?.as_str()?, v.get("content")?)?;
    out.truncated = v
        .get("truncated")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    Some(out)
}

/// Removes ANSI escape sequences (tracebacks are coloured).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prov() -> Provenance {
        Provenance {
            file: "capture-000001.jsonl".into(),
            line: 3,
            byte_offset: 10,
            file_sha256: None,
        }
    }

    fn rec(extra: Value) -> Map<String, Value> {
        let mut m =
            json!({"seq": 5, "prev": "00", "time": "2026-11-22T10:00:00.123456Z", "hash": "ab12"})
                .as_object()
                .unwrap()
                .clone();
        m.extend(extra.as_object().unwrap().clone());
        m
    }

    #[test]
    fn execute_request_is_a_cell_with_the_gateway_user() {
        let m = rec(
            json!({"type": "kernel_message", "direction": "to_kernel", "msg_type": "execute_request",
            "msg_id": "m1", "kernel_id": "k1", "notebook_path": "a/b.ipynb", "user": "alice",
            "header": {"username": "mallory"}, "content": {"code": "%sql SELECT 1", "silent": true}}),
        );
        assert!(is_capture(&m));
        let e = normalize(&m, "raw".into(), prov()).unwrap();
        assert!(e.is_notebook_command());
        assert_eq!(e.user.as_deref(), Some("alice"));
        assert_eq!(e.command_id.as_deref(), Some("m1"));
        assert_eq!(e.notebook_id.as_deref(), Some("k1"));
        assert_eq!(e.cluster_id.as_deref(), Some("k1"));
        assert_eq!(e.notebook_path.as_deref(), Some("a/b.ipynb"));
        assert_eq!(e.language.as_deref(), Some("sql"));
        assert_eq!(e.params["silent"], "true");
        assert_eq!(e.shape, Shape::Capture);
        assert_eq!(e.time.timestamp_subsec_millis(), 123);
    }

    #[test]
    fn outputs_join_their_cell_and_carry_text() {
        let m = rec(
            json!({"type": "kernel_message", "direction": "to_client", "msg_type": "error",
            "msg_id": "o1", "parent_msg_id": "m1", "kernel_id": "k1",
            "content": {"ename": "ZeroDivisionError", "evalue": "division by zero",
                        "traceback": ["\u{1b}[0;31mZeroDivisionError\u{1b}[0m: division by zero"]}}),
        );
        let e = normalize(&m, "raw".into(), prov()).unwrap();
        assert_eq!(
            (e.service.as_str(), e.action.as_str()),
            ("jupyter", "error")
        );
        assert_eq!(e.command_id.as_deref(), Some("m1"));
        assert_eq!(
            e.params["output_text"],
            "ZeroDivisionError: division by zero"
        );
        let m = rec(
            json!({"type": "ws_open", "kernel_id": "k1", "user": "bob", "remote": "10.0.0.1:5555"}),
        );
        let e = normalize(&m, "raw".into(), prov()).unwrap();
        assert_eq!(e.action, "attachNotebook");
        assert_eq!(e.source_ip.as_deref(), Some("10.0.0.1"));
        let m = rec(
            json!({"type": "http", "method": "GET", "path": "/files/secret.csv", "user": "bob"}),
        );
        let e = normalize(&m, "raw".into(), prov()).unwrap();
        assert_eq!((e.service.as_str(), e.action.as_str()), ("gateway", "http"));
        assert_eq!(e.params["url_path"], "/files/secret.csv");
        assert!(e.notebook_path.is_none());
        let bad = rec(json!({"type": "http", "time": "yesterday"}));
        assert!(
            normalize(&bad, "raw".into(), prov())
                .unwrap_err()
                .contains("RFC 3339")
        );
    }
}
