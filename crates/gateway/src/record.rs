//! What one kernel message becomes in the capture log: its links (kernel, session, msg id, parent), the
//! identity of the connection, and its content bounded to a configured size — every cut string and every
//! binary buffer keeps its full size and SHA-256 so the original can still be matched.

use crate::frames::Message;
use base64::Engine;
use nbtrail_capture::RecordType;
use nbtrail_capture::sha256_hex;
use nbtrail_capture::writer::Entry;
use serde_json::{Map, Value, json};

/// Which way a message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the browser to the kernel.
    ToKernel,
    /// From the kernel to the browser.
    ToClient,
}

impl Direction {
    /// Stable name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToKernel => "to_kernel",
            Direction::ToClient => "to_client",
        }
    }
}

/// What a connection knows about itself, copied into each of its records.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Gateway-wide connection number.
    pub conn: u64,
    /// Authenticated user (never the message's `username`).
    pub user: Option<String>,
    /// How the user was established: `header`, `token`, `none`.
    pub auth: &'static str,
    /// Peer address.
    pub remote: String,
    /// Kernel id from the URL.
    pub kernel_id: String,
    /// `session_id` query parameter of the websocket URL.
    pub ws_session: Option<String>,
    /// Notebook path, when the sessions API told it.
    pub notebook_path: Option<String>,
}

/// Limits applied to recorded content.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Longest string of a kernel → client message (an output) kept whole, in bytes; longer ones are cut
    /// (size and hash recorded). Client → kernel messages are never cut: what can execute is recorded in
    /// full or not forwarded at all (see `max_message_bytes`).
    pub max_field_bytes: usize,
    /// Largest client → kernel frame forwarded; a larger one is refused whole (recorded by size and hash).
    pub max_message_bytes: usize,
    /// Keep `input_reply` values (passwords typed into `getpass` arrive here).
    pub keep_input_values: bool,
}

fn base(info: &ConnInfo, dir: Direction) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("conn".into(), json!(info.conn));
    m.insert("direction".into(), json!(dir.as_str()));
    m.insert("user".into(), json!(info.user));
    m.insert("auth".into(), json!(info.auth));
    m.insert("kernel_id".into(), json!(info.kernel_id));
    m.insert("ws_session".into(), json!(info.ws_session));
    m.insert("notebook_path".into(), json!(info.notebook_path));
    m
}

/// The connection's members and a message's links: channel, type, id, parent id (how outputs and replies
/// join their cell).
fn links(info: &ConnInfo, dir: Direction, msg: &Message) -> Map<String, Value> {
    let mut m = base(info, dir);
    m.insert("channel".into(), json!(msg.channel));
    m.insert("msg_type".into(), json!(msg.msg_type()));
    m.insert("msg_id".into(), json!(msg.msg_id()));
    m.insert(
        "parent_msg_id".into(),
        msg.parent_header
            .get("msg_id")
            .cloned()
            .unwrap_or(Value::Null),
    );
    m
}

/// The record of a decoded message; `frame` is the exact bytes forwarded. Takes the message: its
/// content (possibly megabytes of output) moves into the record instead of being copied.
pub fn message_entry(
    info: &ConnInfo,
    dir: Direction,
    msg: Message,
    frame: &[u8],
    bounds: Bounds,
) -> Entry {
    let mut m = links(info, dir, &msg);
    m.insert("framing".into(), json!(msg.framing.as_str()));
    m.insert(
        "session".into(),
        msg.header.get("session").cloned().unwrap_or(Value::Null),
    );
    let input_reply = msg.msg_type() == Some("input_reply");
    let mut cut = Vec::new();
    let mut redacted = Vec::new();
    let mut content = msg.content;
    if input_reply
        && !bounds.keep_input_values
        && let Some(v) = content.get_mut("value")
        && let Some(s) = v.as_str()
    {
        redacted.push(json!({"path": "content.value", "chars": s.chars().count()}));
        *v = json!("[redacted by nbtrail-gateway]");
    }
    let mut metadata = msg.metadata;
    // Outputs may be bounded; what goes to the kernel (code, user_expressions, comm data, debugger
    // expressions, stdin replies) never is.
    if dir == Direction::ToClient {
        bound(&mut content, "content", bounds.max_field_bytes, &mut cut);
        bound(&mut metadata, "metadata", bounds.max_field_bytes, &mut cut);
    }
    m.insert("header".into(), msg.header);
    m.insert("parent_header".into(), msg.parent_header);
    m.insert("metadata".into(), metadata);
    m.insert("content".into(), content);
    let buffers: Vec<Value> = msg
        .buffers
        .iter()
        .map(|b| {
            let mut o = json!({"size": b.len(), "sha256": sha256_hex(b)});
            if b.len() <= bounds.max_field_bytes {
                o["base64"] = json!(base64::engine::general_purpose::STANDARD.encode(b));
            }
            o
        })
        .collect();
    m.insert("buffers".into(), Value::Array(buffers));
    m.insert("truncated".into(), Value::Array(cut));
    m.insert("redacted".into(), Value::Array(redacted));
    m.insert("frame_bytes".into(), json!(frame.len()));
    m.insert("frame_sha256".into(), json!(sha256_hex(frame)));
    Entry {
        kind: RecordType::KernelMessage,
        fields: m,
    }
}

/// The record of a frame the gateway could not decode: kept as bytes (bounded), never dropped; `refused`
/// says why it was not forwarded, when it was not.
pub fn undecodable_entry(
    info: &ConnInfo,
    dir: Direction,
    frame: &[u8],
    error: &str,
    refused: Option<&str>,
    bounds: Bounds,
) -> Entry {
    let mut e = frame_entry(info, dir, frame, refused, bounds);
    e.fields.insert("parse_error".into(), json!(error));
    e
}

/// The record of a frame refused before it was forwarded (larger than `max_message_bytes`): kept by size,
/// SHA-256 and its first `max_field_bytes` (base64).
pub fn refused_entry(
    info: &ConnInfo,
    dir: Direction,
    frame: &[u8],
    refused: &str,
    bounds: Bounds,
) -> Entry {
    frame_entry(info, dir, frame, Some(refused), bounds)
}

/// The record of a message refused or withheld for the user's quota: its links (type, id, parent) so it
/// joins its cell, its size and SHA-256 — no content (the quota bounds what the user can put in the log).
pub fn quota_entry(
    info: &ConnInfo,
    dir: Direction,
    msg: &Message,
    frame: &[u8],
    why: &str,
) -> Entry {
    let mut m = links(info, dir, msg);
    m.insert("refused".into(), json!(why));
    m.insert("frame_bytes".into(), json!(frame.len()));
    m.insert("frame_sha256".into(), json!(sha256_hex(frame)));
    Entry {
        kind: RecordType::KernelMessage,
        fields: m,
    }
}

/// A record of a frame as bytes: size, SHA-256, the first `max_field_bytes` in base64.
fn frame_entry(
    info: &ConnInfo,
    dir: Direction,
    frame: &[u8],
    refused: Option<&str>,
    bounds: Bounds,
) -> Entry {
    let mut m = base(info, dir);
    m.insert("msg_type".into(), Value::Null);
    if let Some(why) = refused {
        m.insert("refused".into(), json!(why));
    }
    m.insert("frame_bytes".into(), json!(frame.len()));
    m.insert("frame_sha256".into(), json!(sha256_hex(frame)));
    let head = &frame[..frame.len().min(bounds.max_field_bytes)];
    m.insert(
        "frame_base64".into(),
        json!(base64::engine::general_purpose::STANDARD.encode(head)),
    );
    m.insert("frame_truncated".into(), json!(head.len() < frame.len()));
    Entry {
        kind: RecordType::KernelMessage,
        fields: m,
    }
}

/// Cuts every string longer than `max` bytes (at a character boundary), recording path, size and hash.
fn bound(v: &mut Value, path: &str, max: usize, cut: &mut Vec<Value>) {
    match v {
        Value::String(s) if s.len() > max => {
            cut.push(json!({"path": path, "size": s.len(), "sha256": sha256_hex(s.as_bytes())}));
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                bound(x, &format!("{path}[{i}]"), max, cut);
            }
        }
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                bound(x, &format!("{path}.{k}"), max, cut);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::decode_text;

    fn info() -> ConnInfo {
        ConnInfo {
            conn: 1,
            user: Some("alice".into()),
            auth: "header",
            remote: "127.0.0.1:1".into(),
            kernel_id: "k".into(),
            ws_session: None,
            notebook_path: Some("a.ipynb".into()),
        }
    }

    #[test]
    fn bounds_redaction_and_identity() {
        let big = "é".repeat(600);
        let text = json!({
            "channel": "stdin",
            "header": {"msg_id": "m", "msg_type": "input_reply", "username": "mallory", "session": "s"},
            "parent_header": {"msg_id": "p"},
            "content": {"value": "hunter2", "extra": big},
        })
        .to_string();
        let msg = decode_text(&text).unwrap();
        let bounds = Bounds {
            max_field_bytes: 101,
            max_message_bytes: 1 << 20,
            keep_input_values: false,
        };
        let e = message_entry(
            &info(),
            Direction::ToKernel,
            msg.clone(),
            text.as_bytes(),
            bounds,
        );
        let f = &e.fields;
        assert_eq!(f["user"], "alice");
        assert_eq!(f["parent_msg_id"], "p");
        assert_eq!(f["content"]["value"], "[redacted by nbtrail-gateway]");
        assert_eq!(f["redacted"][0]["chars"], 7);
        // Issue 15: what goes to the kernel is never cut (a 1.1 MiB comment then a payload ran while the
        // record kept only the comment).
        assert_eq!(f["content"]["extra"].as_str().unwrap().len(), 1200);
        assert!(
            f.get("truncated")
                .is_none_or(|t| t.as_array().is_some_and(Vec::is_empty))
        );
        assert!(!serde_json::to_string(f).unwrap().contains("hunter2"));
        // Outputs (kernel → client) are bounded, cut at a character boundary, size and hash kept.
        let e = message_entry(
            &info(),
            Direction::ToClient,
            msg.clone(),
            text.as_bytes(),
            bounds,
        );
        let f = &e.fields;
        assert_eq!(f["content"]["extra"].as_str().unwrap().len(), 100);
        assert_eq!(f["truncated"][0]["path"], "content.extra");
        assert_eq!(f["truncated"][0]["size"], 1200);
        let keep = Bounds {
            keep_input_values: true,
            ..bounds
        };
        let e = message_entry(&info(), Direction::ToKernel, msg, text.as_bytes(), keep);
        assert_eq!(e.fields["content"]["value"], "hunter2");
    }
}
