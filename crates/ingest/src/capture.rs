//! Shape D: records of the `nbtrail-gateway` capture log (see the `nbtrail-capture` crate).
//!
//! Recognised by the chain members every capture record has (`seq`, `prev`, `hash`, `type`). Each record
//! becomes one event, so every line is still an event, a duplicate or an error:
//!
//! | record | service.action | notes |
//! |---|---|---|
//! | `kernel_message` `execute_request` (to the kernel) | `notebook.runCommand` | `commandId` = msg id, `commandText` = code, then any `user_expressions` |
//! | `comm_open` / `comm_msg` (to the kernel) | `notebook.runCommand`, `execution_kind` = `comm` | `commandText` = every leaf of the comm data, strings verbatim |
//! | `debug_request` carrying expressions (to the kernel) | `notebook.runCommand`, `execution_kind` = `debugger` | `commandText` = each expression the debugger evaluates (evaluate, setVariable, setExpression, breakpoint conditions and log messages) |
//! | other `kernel_message` | `jupyter.<msg_type>` | `commandId` = the parent's msg id, so outputs and replies join their cell; `output_text` = searchable text of an output |
//! | `ws_open` | `notebook.attachNotebook` | a browser (re)connecting to the kernel: continues the kernel's session |
//! | `http` with `lifecycle` (kernel restart / shutdown), `shutdown_request` (to the kernel) | `notebook.detachNotebook` | ends the kernel's session |
//! | `ws_close` | `jupyter.ws_close` | the kernel lives on: not the end of its session |
//! | `http`, `http_response`, `segment_*`, `checkpoint` | `gateway.<type>` | |
//!
//! Code reaches a kernel through more than `content.code`: ipykernel evaluates an `execute_request`'s
//! `user_expressions` after the cell, comm targets registered by earlier cells act on comm data, and the
//! debugger evaluates expressions. Each of those messages is an execution of its own kind
//! ([`executed_code`]): a cell in its session, marked with its `execution_kind`, searchable with `code:`
//! and analyzed in order with the cells around it. Their replies and outputs join them like a cell's.
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
    let null = Value::Null;
    let content = v.get("content").unwrap_or(&null);
    // A message the gateway refused (quota, size, undecodable) never reached the kernel: not a cell.
    let refused = v.get("refused").is_some_and(|r| !r.is_null());
    let executed = match (kind, msg_type, direction) {
        ("kernel_message", Some(t), Some("to_kernel")) if !refused => executed_code(t, content),
        _ => None,
    };
    let (service, action) = match (kind, msg_type, direction) {
        _ if executed.is_some() => ("notebook", "runCommand".to_string()),
        ("kernel_message", Some("shutdown_request"), Some("to_kernel")) => {
            ("notebook", "detachNotebook".to_string())
        }
        ("kernel_message", Some(t), _) => ("jupyter", t.to_string()),
        ("kernel_message", None, _) => ("jupyter", "undecodable_frame".to_string()),
        // A capture session is a kernel's lifetime: a websocket opening (again, after a page reload)
        // attaches to it; a websocket closing does not end it, a kernel restart or shutdown does.
        ("ws_open", ..) => ("notebook", "attachNotebook".to_string()),
        ("ws_close", ..) => ("jupyter", "ws_close".to_string()),
        // A refused restart restarted nothing.
        ("http", ..) if v.get("lifecycle").is_some() && !refused => {
            ("notebook", "detachNotebook".to_string())
        }
        (t, ..) => ("gateway", t.to_string()),
    };
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
        "lifecycle",
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
    if let Some(ex) = &executed {
        put("commandText", Some(&Value::String(ex.text.clone())));
        if let Some(k) = ex.kind {
            put("execution_kind", Some(&Value::String(k.to_string())));
        }
    }
    if msg_type == Some("execute_request") {
        put("silent", content.get("silent"));
        put("store_history", content.get("store_history"));
    } else if msg_type == Some("comm_msg") || msg_type == Some("comm_open") {
        put("comm_id", content.get("comm_id"));
        put("target_name", content.get("target_name"));
        put("comm_data", content.get("data"));
    } else if msg_type == Some("debug_request") {
        put("debug_command", content.get("command"));
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
    let remote = st("remote").map(|r| r.rsplit_once(':').map_or(r, |(h, _)| h).to_string());
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
        ev.language = ev.fields.language.take().or_else(|| Some("python".into()));
    }
    Ok(ev)
}

/// Code a browser → kernel message makes the kernel run, as one reviewable text.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    /// `None` for an ordinary cell; else `user_expressions`, `comm` or `debugger`.
    pub kind: Option<&'static str>,
    /// What is run, verbatim; pieces other than a cell's code each start with a `# nbtrail:` comment line
    /// naming where they came from (so the text stays one Python program for the analyzer).
    pub text: String,
}

/// The code a message to the kernel carries, if it carries any: an `execute_request`'s code and
/// `user_expressions`, a comm's data, a debugger request's expressions. `None` for messages that run
/// nothing (kernel_info, complete, inspect, input replies, …) and debugger requests without expressions.
pub fn executed_code(msg_type: &str, content: &Value) -> Option<Executed> {
    let mut text = String::new();
    let mut add = |label: String, code: &str| piece(&mut text, &label, code);
    match msg_type {
        "execute_request" => {
            let code = content.get("code").and_then(Value::as_str).unwrap_or("");
            let exprs: Vec<(&String, &Value)> = content
                .get("user_expressions")
                .and_then(Value::as_object)
                .map(|m| m.iter().collect())
                .unwrap_or_default();
            let mut text = code.to_string();
            if exprs.is_empty() {
                return Some(Executed { kind: None, text });
            }
            for (name, e) in exprs {
                let expr = e.as_str().map_or_else(|| e.to_string(), str::to_string);
                let label = format!(
                    "user_expressions[{}], evaluated by the kernel after the cell",
                    serde_json::to_string(name).unwrap_or_default()
                );
                piece(&mut text, &label, &expr);
                text.push('\n');
            }
            Some(Executed {
                kind: Some("user_expressions"),
                text,
            })
        }
        "comm_open" | "comm_msg" => {
            let target = content.get("target_name").and_then(Value::as_str);
            let head = match target {
                Some(t) => format!(
                    "{msg_type} to target {}",
                    serde_json::to_string(t).unwrap_or_default()
                ),
                None => msg_type.to_string(),
            };
            add(head, "");
            leaves(
                content.get("data").unwrap_or(&Value::Null),
                "data",
                &mut add,
                0,
            );
            Some(Executed {
                kind: Some("comm"),
                text,
            })
        }
        "debug_request" => {
            let command = content.get("command").and_then(Value::as_str).unwrap_or("");
            let args = content.get("arguments").unwrap_or(&Value::Null);
            let mut any = false;
            let mut take = |label: String, v: Option<&Value>| {
                if let Some(code) = v.and_then(Value::as_str).filter(|c| !c.trim().is_empty()) {
                    add(label, code);
                    any = true;
                }
            };
            match command {
                "evaluate" => take("debugger evaluate".into(), args.get("expression")),
                "setVariable" => take(
                    format!(
                        "debugger setVariable {}",
                        args.get("name").and_then(Value::as_str).unwrap_or("")
                    ),
                    args.get("value"),
                ),
                "setExpression" => {
                    take(
                        "debugger setExpression (target)".into(),
                        args.get("expression"),
                    );
                    take("debugger setExpression (value)".into(), args.get("value"));
                }
                _ => {}
            }
            for bp in args
                .get("breakpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for k in ["condition", "hitCondition", "logMessage"] {
                    take(format!("debugger breakpoint {k}"), bp.get(k));
                }
            }
            any.then_some(Executed {
                kind: Some("debugger"),
                text,
            })
        }
        _ => None,
    }
}

/// Appends one labelled piece of executed code to `text`: on a line of its own, after a `# nbtrail: label`
/// line.
fn piece(text: &mut String, label: &str, code: &str) {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("# nbtrail: {label}\n"));
    text.push_str(code);
}

/// Every leaf of a comm's data, depth first: strings verbatim after a `# nbtrail: data.path` line (they are
/// what a comm target may execute), other leaves as `# nbtrail: data.path = JSON`. Depth is bounded by the
/// decoder that parsed the record; the walk also stops at 256 levels, writing the rest as JSON.
fn leaves(v: &Value, path: &str, add: &mut dyn FnMut(String, &str), depth: usize) {
    match v {
        Value::String(s) => add(path.to_string(), s),
        Value::Object(m) if depth < 256 => {
            for (k, x) in m {
                leaves(x, &format!("{path}.{k}"), add, depth + 1);
            }
        }
        Value::Array(a) if depth < 256 => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, &format!("{path}[{i}]"), add, depth + 1);
            }
        }
        other => add(format!("{path} = {other}"), ""),
    }
}

/// The output a kernel message shows under its cell, from the message content.
pub fn output_of(msg_type: &str, content: &Value) -> Option<CellOutput> {
    let mut out = empty_output(msg_type);
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

/// The values of an `execute_reply`'s `user_expressions` (what the client that asked for them was shown),
/// as one output of type `user_expressions`: `name: value` per expression (`name: Ename: evalue` for one
/// that failed). `None` when the reply has none.
pub fn user_expressions_of(raw: &str) -> Option<CellOutput> {
    let v: Value = serde_json::from_str(raw).ok()?;
    let m = v.get("content")?.get("user_expressions")?.as_object()?;
    if m.is_empty() {
        return None;
    }
    let mut text = String::new();
    for (name, r) in m {
        let value = match r.get("status").and_then(Value::as_str) {
            Some("ok") => r
                .get("data")
                .and_then(|d| d.get("text/plain"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            _ => format!(
                "{}: {}",
                r.get("ename").and_then(Value::as_str).unwrap_or("error"),
                r.get("evalue").and_then(Value::as_str).unwrap_or("")
            ),
        };
        text.push_str(&format!("{name}: {value}\n"));
    }
    Some(CellOutput {
        text: Some(text),
        ..empty_output("user_expressions")
    })
}

/// An output of `output_type` with nothing in it yet.
fn empty_output(output_type: &str) -> CellOutput {
    CellOutput {
        event_id: 0,
        time: None,
        output_type: output_type.to_string(),
        name: None,
        text: None,
        data: None,
        ename: None,
        evalue: None,
        truncated: false,
    }
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
    fn code_outside_content_code_is_an_execution_of_its_own_kind() {
        let ue = rec(
            json!({"type": "kernel_message", "direction": "to_kernel", "msg_type": "execute_request",
            "msg_id": "u1", "kernel_id": "k1", "user": "alice",
            "content": {"code": "", "silent": true,
                        "user_expressions": {"x": "__import__('os').system('id')"}}}),
        );
        let e = normalize(&ue, "raw".into(), prov()).unwrap();
        assert!(e.is_notebook_command());
        assert_eq!(e.command_id.as_deref(), Some("u1"));
        assert_eq!(e.params["execution_kind"], "user_expressions");
        let code = e.command_text.as_deref().unwrap();
        assert!(code.contains("user_expressions[\"x\"]"), "{code}");
        assert!(code.ends_with("__import__('os').system('id')\n"), "{code}");

        let comm = rec(
            json!({"type": "kernel_message", "direction": "to_kernel", "msg_type": "comm_msg",
            "msg_id": "c1", "kernel_id": "k1", "user": "alice",
            "content": {"comm_id": "abc", "data": {"cmd": "run", "code": "import os\nos.remove('x')", "n": [1, null]}}}),
        );
        let e = normalize(&comm, "raw".into(), prov()).unwrap();
        assert!(e.is_notebook_command());
        assert_eq!(e.params["execution_kind"], "comm");
        let code = e.command_text.as_deref().unwrap();
        assert!(
            code.contains("# nbtrail: data.code\nimport os\nos.remove('x')"),
            "{code}"
        );
        assert!(code.contains("# nbtrail: data.n[1] = null"), "{code}");

        let dbg = rec(
            json!({"type": "kernel_message", "direction": "to_kernel", "msg_type": "debug_request",
            "channel": "control", "msg_id": "d1", "kernel_id": "k1", "user": "alice",
            "content": {"command": "evaluate", "arguments": {"expression": "open('/etc/passwd').read()"}}}),
        );
        let e = normalize(&dbg, "raw".into(), prov()).unwrap();
        assert!(e.is_notebook_command());
        assert_eq!(e.params["execution_kind"], "debugger");
        assert!(
            e.command_text
                .as_deref()
                .unwrap()
                .ends_with("open('/etc/passwd').read()")
        );
        // Breakpoint conditions are evaluated too.
        let bp = json!({"command": "setBreakpoints",
            "arguments": {"breakpoints": [{"line": 1, "condition": "leak(secret)"}]}});
        assert!(
            executed_code("debug_request", &bp)
                .unwrap()
                .text
                .contains("leak(secret)")
        );
        // Debugger requests that evaluate nothing, and messages that run nothing, stay what they are.
        let plain = json!({"command": "stackTrace", "arguments": {"threadId": 1}});
        assert_eq!(executed_code("debug_request", &plain), None);
        assert_eq!(executed_code("kernel_info_request", &json!({})), None);
        assert_eq!(
            executed_code(
                "execute_request",
                &json!({"code": "1", "user_expressions": {}})
            )
            .unwrap(),
            Executed {
                kind: None,
                text: "1".into()
            }
        );
        // From the kernel, the same message types are not executions.
        let back = rec(
            json!({"type": "kernel_message", "direction": "to_client", "msg_type": "comm_msg",
            "msg_id": "c2", "parent_msg_id": "c1", "kernel_id": "k1", "content": {"data": {"x": 1}}}),
        );
        assert!(
            !normalize(&back, "raw".into(), prov())
                .unwrap()
                .is_notebook_command()
        );
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
