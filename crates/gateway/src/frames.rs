//! Kernel websocket frames: what jupyter_server sends and accepts on `/api/kernels/<id>/channels`.
//!
//! Three framings exist and the gateway reads all of them (it always forwards the original bytes):
//! * **JSON text** (no subprotocol): the message as one JSON object with an added `channel` member;
//! * **legacy binary** (no subprotocol, message with buffers): a big-endian u32 count `n`, `n` big-endian
//!   u32 offsets (the first is where the JSON message starts, the others where each buffer starts), then
//!   the JSON message and the buffers;
//! * **v1** (subprotocol `v1.kernel.websocket.jupyter.org`, every message binary): a little-endian u64
//!   count `n`, `n` little-endian u64 offsets, then the channel name, header, parent header, metadata and
//!   content (JSON each) and the buffers; offset `i` is where part `i` starts and the last is the end.

use serde_json::{Value, json};

/// The v1 kernel websocket subprotocol.
pub const V1_PROTOCOL: &str = "v1.kernel.websocket.jupyter.org";

/// How a frame was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// JSON text frame.
    Json,
    /// Legacy binary frame (JSON plus buffers).
    LegacyBinary,
    /// v1 binary protocol.
    V1,
}

impl Framing {
    /// Stable name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Json => "json",
            Framing::LegacyBinary => "legacy_binary",
            Framing::V1 => "v1",
        }
    }
}

/// A decoded kernel message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `shell`, `iopub`, `stdin`, `control`.
    pub channel: Option<String>,
    /// The message header.
    pub header: Value,
    /// The request this message answers.
    pub parent_header: Value,
    /// Metadata.
    pub metadata: Value,
    /// Content.
    pub content: Value,
    /// Binary buffers.
    pub buffers: Vec<Vec<u8>>,
    /// How it was framed.
    pub framing: Framing,
}

impl Message {
    /// `header.msg_type`.
    pub fn msg_type(&self) -> Option<&str> {
        self.header.get("msg_type").and_then(Value::as_str)
    }
    /// The message without its body (content, metadata, buffers): what the gateway's own replies and
    /// notices need after the body has gone into the record.
    pub fn heads(&self) -> Message {
        Message {
            channel: self.channel.clone(),
            header: self.header.clone(),
            parent_header: self.parent_header.clone(),
            metadata: Value::Null,
            content: Value::Null,
            buffers: Vec::new(),
            framing: self.framing,
        }
    }
    /// `header.msg_id`.
    pub fn msg_id(&self) -> Option<&str> {
        self.header.get("msg_id").and_then(Value::as_str)
    }
}

/// Decodes a text frame.
pub fn decode_text(text: &str) -> Result<Message, String> {
    let v: Value = parse_json(text.as_bytes()).map_err(|e| format!("not JSON: {e}"))?;
    from_json(v, Vec::new(), Framing::Json)
}

/// JSON nested deeper than this is refused. Python's `json` — what Jupyter parses messages with — stops
/// near 1,000 levels (its recursion limit), so no message Jupyter accepts is refused for depth.
pub const MAX_JSON_DEPTH: usize = 2_000;

/// Parses JSON as Jupyter (Python's `json`) accepts it: also `NaN`, `Infinity`, `-Infinity` and numbers
/// beyond `f64` (kept as strings holding their literal), nested up to [`MAX_JSON_DEPTH`] (serde_json alone
/// stops at 128). A message the kernel would run must never be undecodable here: the gateway would have to
/// refuse it, or forward it unrecorded.
pub fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let depth = json_depth(bytes);
    if depth > MAX_JSON_DEPTH {
        return Err(format!(
            "nested {depth} levels deep (more than {MAX_JSON_DEPTH})"
        ));
    }
    let text = python_json_to_json(bytes);
    stacker::maybe_grow(256 * 1024, 16 * 1024 * 1024, || {
        let mut de = serde_json::Deserializer::from_slice(&text);
        de.disable_recursion_limit();
        let v =
            <Value as serde::Deserialize>::deserialize(serde_stacker::Deserializer::new(&mut de))
                .map_err(|e| e.to_string())?;
        de.end().map_err(|e| e.to_string())?;
        Ok(v)
    })
}

/// The deepest bracket nesting outside strings.
fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Rewrites Python-`json` extensions outside strings into JSON serde accepts: `NaN`, `Infinity`,
/// `-Infinity` and number literals that overflow `f64` become strings of their literal text.
fn python_json_to_json(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let (mut i, mut in_str, mut esc) = (0usize, false, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_str {
            out.push(b);
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_str = true;
            out.push(b);
            i += 1;
            continue;
        }
        let word = |w: &[u8]| bytes[i..].starts_with(w);
        let lit: Option<usize> = if word(b"NaN") {
            Some(3)
        } else if word(b"Infinity") {
            Some(8)
        } else if word(b"-Infinity") {
            Some(9)
        } else if b == b'-' || b.is_ascii_digit() {
            let end = bytes[i + 1..]
                .iter()
                .position(|c| {
                    !(c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
                })
                .map_or(bytes.len(), |p| i + 1 + p);
            let text = std::str::from_utf8(&bytes[i..end]).unwrap_or("");
            let overflows = text.parse::<f64>().is_ok_and(f64::is_infinite);
            if overflows {
                Some(end - i)
            } else {
                out.extend_from_slice(&bytes[i..end]);
                i = end;
                continue;
            }
        } else {
            None
        };
        match lit {
            Some(n) => {
                out.push(b'"');
                out.extend_from_slice(&bytes[i..i + n]);
                out.push(b'"');
                i += n;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn from_json(mut v: Value, buffers: Vec<Vec<u8>>, framing: Framing) -> Result<Message, String> {
    let Some(obj) = v.as_object_mut() else {
        return Err("message is not a JSON object".into());
    };
    let header = obj.remove("header").unwrap_or(Value::Null);
    if !header.is_object() {
        return Err("message has no header object".into());
    }
    Ok(Message {
        channel: obj
            .get("channel")
            .and_then(Value::as_str)
            .map(str::to_string),
        header,
        parent_header: obj.remove("parent_header").unwrap_or(json!({})),
        metadata: obj.remove("metadata").unwrap_or(json!({})),
        content: obj.remove("content").unwrap_or(json!({})),
        buffers,
        framing,
    })
}

/// Decodes a binary frame: v1 when that subprotocol was negotiated, else the legacy framing.
pub fn decode_binary(data: &[u8], v1: bool) -> Result<Message, String> {
    if v1 {
        decode_v1(data)
    } else {
        decode_legacy(data)
    }
}

fn offsets(data: &[u8], width: usize, little: bool) -> Result<Vec<usize>, String> {
    let read = |at: usize| -> Result<usize, String> {
        let b = data.get(at..at + width).ok_or_else(|| {
            format!(
                "frame too short for its offset table ({} bytes)",
                data.len()
            )
        })?;
        Ok(if width == 8 {
            let a: [u8; 8] = b.try_into().expect("8 bytes");
            (if little {
                u64::from_le_bytes(a)
            } else {
                u64::from_be_bytes(a)
            }) as usize
        } else {
            let a: [u8; 4] = b.try_into().expect("4 bytes");
            (if little {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }) as usize
        })
    };
    let n = read(0)?;
    if n == 0 || n > data.len() / width {
        return Err(format!("implausible part count {n}"));
    }
    let offs = (0..n)
        .map(|i| read(width * (i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    let table_end = width * (n + 1);
    if offs[0] < table_end
        || offs.windows(2).any(|w| w[0] > w[1])
        || *offs.last().expect("n > 0") > data.len()
    {
        return Err("offsets out of order or out of the frame".into());
    }
    Ok(offs)
}

fn decode_v1(data: &[u8]) -> Result<Message, String> {
    let offs = offsets(data, 8, true)?;
    if offs.len() < 6 {
        return Err(format!(
            "v1 frame with {} offsets, need at least 6",
            offs.len()
        ));
    }
    let part = |i: usize| &data[offs[i]..offs[i + 1]];
    let json_part = |i: usize, what: &str| -> Result<Value, String> {
        parse_json(part(i)).map_err(|e| format!("v1 {what} is not JSON: {e}"))
    };
    let channel = std::str::from_utf8(part(0))
        .map_err(|_| "v1 channel is not UTF-8".to_string())?
        .to_string();
    let header = json_part(1, "header")?;
    if !header.is_object() {
        return Err("v1 header is not an object".into());
    }
    let buffers = (5..offs.len() - 1).map(|i| part(i).to_vec()).collect();
    Ok(Message {
        channel: Some(channel),
        header,
        parent_header: json_part(2, "parent_header")?,
        metadata: json_part(3, "metadata")?,
        content: json_part(4, "content")?,
        buffers,
        framing: Framing::V1,
    })
}

fn decode_legacy(data: &[u8]) -> Result<Message, String> {
    let offs = offsets(data, 4, false)?;
    let end = |i: usize| offs.get(i + 1).copied().unwrap_or(data.len());
    let v: Value = parse_json(&data[offs[0]..end(0)])
        .map_err(|e| format!("binary frame's message is not JSON: {e}"))?;
    let buffers = (1..offs.len())
        .map(|i| data[offs[i]..end(i)].to_vec())
        .collect();
    from_json(v, buffers, Framing::LegacyBinary)
}

/// Encodes a message the gateway itself sends (a refusal), in the framing the client uses.
pub enum Encoded {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// Encodes `msg` (buffers ignored) for a client speaking `v1` or JSON.
pub fn encode(channel: &str, header: &Value, parent: &Value, content: &Value, v1: bool) -> Encoded {
    if !v1 {
        return Encoded::Text(
            json!({
                "channel": channel,
                "header": header,
                "parent_header": parent,
                "metadata": {},
                "content": content,
                "buffers": [],
            })
            .to_string(),
        );
    }
    let (header, parent, content) = (header.to_string(), parent.to_string(), content.to_string());
    Encoded::Binary(encode_v1_parts(&[
        channel.as_bytes(),
        header.as_bytes(),
        parent.as_bytes(),
        b"{}",
        content.as_bytes(),
    ]))
}

/// Assembles a v1 frame from its parts (channel, header, parent header, metadata, content, buffers…).
pub fn encode_v1_parts(parts: &[&[u8]]) -> Vec<u8> {
    let n = parts.len() + 1;
    let mut offs = vec![8 * (n + 1)];
    for p in parts {
        offs.push(offs.last().expect("non-empty") + p.len());
    }
    let mut out = Vec::with_capacity(*offs.last().expect("non-empty"));
    out.extend_from_slice(&(n as u64).to_le_bytes());
    for o in &offs {
        out.extend_from_slice(&(*o as u64).to_le_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_round_trip_and_buffers() {
        let h = json!({"msg_id": "a", "msg_type": "execute_request"});
        let Encoded::Binary(b) = encode("shell", &h, &json!({}), &json!({"code": "1"}), true)
        else {
            panic!()
        };
        let m = decode_binary(&b, true).unwrap();
        assert_eq!(m.channel.as_deref(), Some("shell"));
        assert_eq!(m.msg_type(), Some("execute_request"));
        assert_eq!(m.content["code"], "1");
        assert!(m.buffers.is_empty());
        // A buffer the way jupyter_server sends it: one more part, one more offset.
        let f = encode_v1_parts(&[
            b"iopub",
            br#"{"msg_id":"b"}"#,
            b"{}",
            b"{}",
            b"{}",
            b"\x00\x01\x02",
        ]);
        let m = decode_binary(&f, true).unwrap();
        assert_eq!(m.buffers, vec![vec![0, 1, 2]]);
        assert_eq!(m.msg_id(), Some("b"));
    }

    #[test]
    fn legacy_binary_with_buffers() {
        let msg =
            br#"{"header":{"msg_id":"c","msg_type":"comm_msg"},"channel":"shell","content":{}}"#;
        let mut f = Vec::new();
        f.extend_from_slice(&2u32.to_be_bytes());
        f.extend_from_slice(&12u32.to_be_bytes());
        f.extend_from_slice(&((12 + msg.len()) as u32).to_be_bytes());
        f.extend_from_slice(msg);
        f.extend_from_slice(b"BUF");
        let m = decode_binary(&f, false).unwrap();
        assert_eq!(m.msg_type(), Some("comm_msg"));
        assert_eq!(m.buffers, vec![b"BUF".to_vec()]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for data in [
            &b""[..],
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x01\x00\x00\x00\x00\x00\x00\x00\x00",
        ] {
            assert!(decode_binary(data, true).is_err());
            assert!(decode_binary(data, false).is_err());
        }
        assert!(decode_text("[1]").is_err());
        assert!(decode_text("{\"header\": 3}").is_err());
    }

    /// Issue 15: a frame Python's `json` accepts but serde_json rejects was logged as "undecodable" and
    /// forwarded; the kernel ran it and it never became a cell.
    #[test]
    fn what_pythons_json_accepts_decodes() {
        let code = "print('ran')";
        for extra in [
            r#""metadata": {"a": NaN, "b": Infinity, "c": -Infinity}"#.to_string(),
            r#""metadata": {"big": 1e400, "neg": -1e999, "ok": 1.5}"#.to_string(),
            format!(
                r#""metadata": {{"deep": {}1{}}}"#,
                "[".repeat(900),
                "]".repeat(900)
            ),
        ] {
            let text = format!(
                r#"{{"channel": "shell", "header": {{"msg_id": "m", "msg_type": "execute_request"}}, "parent_header": {{}}, {extra}, "content": {{"code": "{code}", "s": "NaN Infinity 1e400"}}}}"#
            );
            let m = decode_text(&text).unwrap_or_else(|e| panic!("{extra}: {e}"));
            assert_eq!(m.content["code"], code);
            assert_eq!(
                m.content["s"], "NaN Infinity 1e400",
                "strings are untouched"
            );
        }
        let m =
            decode_text(r#"{"header": {"msg_type": "x"}, "metadata": {"a": NaN, "big": 1e400}}"#)
                .unwrap();
        assert_eq!(m.metadata, serde_json::json!({"a": "NaN", "big": "1e400"}));
        let too_deep = format!(
            r#"{{"header": {{}}, "x": {}1{}}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(decode_text(&too_deep).unwrap_err().contains("nested"));
    }
}
