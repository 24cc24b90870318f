//! # nbtrail-model
//!
//! The vocabulary every other nbtrail crate speaks. This crate owns:
//!
//! * [`Event`]: one normalized audit record — the fields an auditor filters on (time, user, workspace,
//!   service, action, notebook, cluster, command, language, code, status, duration, source IP, user agent,
//!   request id, response) **plus the raw record verbatim** and its [`Provenance`] (source file, line,
//!   byte offset, SHA-256 of the source file).
//! * [`Shape`]: which of the known export shapes a record came in (Databricks delivered JSON, the
//!   `system.access.audit` table export, Azure diagnostic logs).
//! * [`NaturalKey`]: the identity of an audit record independent of how and how often it was delivered,
//!   used to count re-deliveries as duplicates instead of storing them twice.
//! * [`Session`] / [`SessionCell`]: the notebook sessions built from notebook command events.
//! * [`display`]: how untrusted text is shown by every front end (control and bidirectional formatting
//!   characters escaped, never obeyed).
//!
//! It does no I/O. Times are always UTC; on the wire they are RFC 3339 strings, in storage epoch
//! milliseconds.
//!
//! ## Event time
//! Databricks emits `runCommand` when a cell *finishes*: [`Event::time`] is that finish time, and
//! [`Event::started_at`] derives the start from the reported execution time. Every view says which one it
//! shows; sorting always uses the finish time then the command id.

pub mod display;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// The export shape a record was read from. Detected per record; the user never has to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Shape A: audit log delivery to cloud storage, camelCase JSON with epoch-millisecond `timestamp`.
    Delivered,
    /// Shape B: the `system.access.audit` system table exported as JSON lines or CSV (snake_case).
    SystemTable,
    /// Shape C: Azure diagnostic logs (PascalCase, `RequestParams` as JSON text or object).
    Azure,
    /// Shape D: the capture log of `nbtrail-gateway` (Jupyter kernel messages with their outputs).
    Capture,
    /// A `system.query.history` row: one SQL statement (`databrickssql.queryHistory`).
    QueryHistory,
    /// A `system.access.table_lineage` / `column_lineage` row (`lineage.tableLineage` / `columnLineage`).
    Lineage,
}

impl Shape {
    /// Stable lower-case name used in storage and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Delivered => "delivered",
            Shape::SystemTable => "system_table",
            Shape::Azure => "azure",
            Shape::Capture => "jupyter_capture",
            Shape::QueryHistory => "query_history",
            Shape::Lineage => "lineage",
        }
    }

    /// Inverse of [`Shape::as_str`].
    pub fn parse(s: &str) -> Option<Shape> {
        match s {
            "delivered" => Some(Shape::Delivered),
            "system_table" => Some(Shape::SystemTable),
            "azure" => Some(Shape::Azure),
            "jupyter_capture" => Some(Shape::Capture),
            "query_history" => Some(Shape::QueryHistory),
            "lineage" => Some(Shape::Lineage),
            _ => None,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a record came from, precisely enough to find it again in the original file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Path of the source file as given to the ingest (for a `.gz`, the compressed file).
    pub file: String,
    /// 1-based line on which the record starts (in the decompressed text).
    pub line: u64,
    /// Byte offset of the record's first byte (in the decompressed text).
    pub byte_offset: u64,
    /// Hex SHA-256 of the source file's bytes as stored on disk. Known once the file has been read in
    /// full, so it is `None` while the record is in flight and always set in the case store.
    pub file_sha256: Option<String>,
}

/// The normalized fields of one audit record — declared once, here: the in-flight [`Event`] and the stored
/// row the case lists (`nbtrail_store::EventRow`) both carry exactly this (flattened, so JSON and the
/// generated TypeScript see plain fields). Every field but `time`, `service` and `action` is optional: real
/// logs omit things, and a missing field is not an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct EventFields {
    /// When the event happened (for `runCommand`: when the cell finished), UTC.
    pub time: DateTime<Utc>,
    /// Who did it: `userIdentity.email` (or the shape's equivalent). Automation shows as e.g. `System-User`.
    pub user: Option<String>,
    /// Workspace id (account-level events use `0`).
    pub workspace_id: Option<String>,
    /// `serviceName`, e.g. `notebook`, `secrets`, `clusters`.
    pub service: String,
    /// `actionName`, e.g. `runCommand`, `getSecret`.
    pub action: String,
    /// `notebookId` from the request parameters.
    pub notebook_id: Option<String>,
    /// A notebook path when the record carries one (attach/create/rename/move/download events).
    pub notebook_path: Option<String>,
    /// `clusterId` (or `warehouseId` for SQL warehouse commands).
    pub cluster_id: Option<String>,
    /// `commandId`.
    pub command_id: Option<String>,
    /// `commandLanguage` when present, else inferred from a leading magic (`%sql`, `%scala`, …).
    pub language: Option<String>,
    /// `commandText`: the code that ran (may contain redaction markers).
    pub command_text: Option<String>,
    /// `status` of a command: `finished`, `failed`, `cancelled`, `skipped`, …
    pub status: Option<String>,
    /// `executionTime` in milliseconds.
    pub duration_ms: Option<i64>,
    /// `sourceIPAddress`.
    pub source_ip: Option<String>,
    /// `userAgent`.
    pub user_agent: Option<String>,
    /// `requestId`.
    pub request_id: Option<String>,
    /// `response.statusCode`.
    pub response_status: Option<i64>,
    /// `response.errorMessage`.
    pub response_error: Option<String>,
}

impl EventFields {
    /// A record with only its time, service and action known.
    pub fn new(
        time: DateTime<Utc>,
        service: impl Into<String>,
        action: impl Into<String>,
    ) -> EventFields {
        EventFields {
            time,
            user: None,
            workspace_id: None,
            service: service.into(),
            action: action.into(),
            notebook_id: None,
            notebook_path: None,
            cluster_id: None,
            command_id: None,
            language: None,
            command_text: None,
            status: None,
            duration_ms: None,
            source_ip: None,
            user_agent: None,
            request_id: None,
            response_status: None,
            response_error: None,
        }
    }

    /// When a command started: `time − duration` for commands with an execution time, else `time`.
    pub fn started_at(&self) -> DateTime<Utc> {
        match self.duration_ms {
            Some(ms) if ms > 0 => self.time - chrono::Duration::milliseconds(ms),
            _ => self.time,
        }
    }

    /// `service.action`, the usual way auditors name an event type.
    pub fn kind(&self) -> String {
        format!("{}.{}", self.service, self.action)
    }

    /// True for events that record a cell of a notebook running (interactive or in a job).
    pub fn is_notebook_command(&self) -> bool {
        self.action == "runCommand" && (self.service == "notebook" || self.service == "jobs")
    }
}

/// One audit record in flight from a source file to the case: its [`EventFields`] (reachable directly,
/// `event.user`, through `Deref`), all request parameters, the shape, the raw record and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The normalized fields.
    #[serde(flatten)]
    pub fields: EventFields,
    /// `sessionId`: the web/API session, **not** a notebook session. Read for the record's natural key
    /// only; the raw record keeps it, the case does not index it.
    pub web_session_id: Option<String>,
    /// All request parameters, every value as a string (numbers and objects rendered as text), sorted.
    pub params: BTreeMap<String, String>,
    /// The shape the record was read in.
    pub shape: Shape,
    /// The record exactly as it appeared in the source (without its line terminator).
    pub raw: String,
    /// Where the record came from.
    pub provenance: Provenance,
}

impl std::ops::Deref for Event {
    type Target = EventFields;
    fn deref(&self) -> &EventFields {
        &self.fields
    }
}

impl std::ops::DerefMut for Event {
    fn deref_mut(&mut self) -> &mut EventFields {
        &mut self.fields
    }
}

impl Event {
    /// The natural key of this record; see [`NaturalKey`].
    pub fn natural_key(&self) -> NaturalKey {
        NaturalKey::new(
            self.request_id.as_deref(),
            self.time.timestamp_millis(),
            &self.service,
            &self.action,
            &self.params,
        )
    }
}

/// Identity of an audit record across deliveries: (`requestId`, timestamp in ms, `serviceName`,
/// `actionName`, hash of the request parameters). Parameters are canonicalized (sorted keys, every value as
/// a string) first, so the same event delivered in two shapes has the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NaturalKey(pub [u8; 16]);

impl NaturalKey {
    /// Computes the key from its parts.
    pub fn new(
        request_id: Option<&str>,
        time_ms: i64,
        service: &str,
        action: &str,
        params: &BTreeMap<String, String>,
    ) -> NaturalKey {
        let mut h = Sha256::new();
        // Length-prefix every part so that no two different tuples hash the same byte stream.
        let mut part = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        part(request_id.unwrap_or("").as_bytes());
        part(&time_ms.to_le_bytes());
        part(service.as_bytes());
        part(action.as_bytes());
        for (k, v) in params {
            part(k.as_bytes());
            part(v.as_bytes());
        }
        let digest = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        NaturalKey(out)
    }

    /// Lower-case hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Converts epoch milliseconds to a UTC time; `None` when out of chrono's range.
pub fn time_from_ms(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// Where a record is in its source file, as shown everywhere a record's origin is shown, given the
/// file's framing as the store records it: `file:line` for text; for columnar containers, whose records
/// have no lines, the unit the format has (`line` then holds the row or record number and `byte_offset`
/// the Parquet row group, or the byte inside an Event Hubs event's body).
pub fn locate(file: &str, framing: &str, line: u64, byte_offset: u64) -> String {
    match framing {
        "parquet" => format!("{file} (row group {byte_offset}, row {line})"),
        "avro" => format!("{file} (Avro record {line})"),
        "avro_capture" => format!("{file} (Event Hubs event {line}, body byte {byte_offset})"),
        _ => format!("{file}:{line}"),
    }
}

/// Formats a UTC time the way nbtrail prints it everywhere: RFC 3339 with milliseconds and `Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    /// A `detachNotebook` for the same notebook and cluster.
    Detach,
    /// Another `attachNotebook` for the same notebook and cluster.
    Reattach,
    /// No command for longer than the idle gap.
    Idle,
    /// The trail ends (no detach seen yet).
    Open,
}

impl SessionEnd {
    /// Stable lower-case name used in storage and output.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEnd::Detach => "detach",
            SessionEnd::Reattach => "reattach",
            SessionEnd::Idle => "idle",
            SessionEnd::Open => "open",
        }
    }

    /// Inverse of [`SessionEnd::as_str`].
    pub fn parse(s: &str) -> Option<SessionEnd> {
        Some(match s {
            "detach" => SessionEnd::Detach,
            "reattach" => SessionEnd::Reattach,
            "idle" => SessionEnd::Idle,
            "open" => SessionEnd::Open,
            _ => return None,
        })
    }
}

/// A notebook session: the commands run in one notebook on one cluster between an attach and a detach
/// (or an idle gap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct Session {
    /// Stable id derived from the notebook, cluster and the session's first record.
    pub id: String,
    /// The notebook's id.
    pub notebook_id: String,
    /// The notebook's path at the session's start, if any event told it.
    pub notebook_path: Option<String>,
    /// Every user who attached or ran a command in the session, sorted.
    pub users: Vec<String>,
    /// The cluster the notebook was attached to.
    pub cluster_id: Option<String>,
    /// The attach time, or the first command's start when no attach was seen.
    pub start: DateTime<Utc>,
    /// The detach time, or the last command's finish.
    pub end: DateTime<Utc>,
    /// Number of commands (cells) run.
    pub cells: u64,
    /// True when the session began with an `attachNotebook` event.
    pub attached: bool,
    /// Why the session ended.
    pub end_reason: SessionEnd,
}

/// A client attaching to a session's notebook: for a kernel captured by the gateway, each time a browser
/// connected (or reconnected, after a page reload or a network drop) to the kernel's websocket; the
/// session goes on across them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct Attachment {
    /// The `attachNotebook` event.
    pub event_id: i64,
    /// When.
    pub time: DateTime<Utc>,
    /// Who.
    pub user: Option<String>,
    /// From where.
    pub source_ip: Option<String>,
}

/// One cell of a session, in execution order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct SessionCell {
    /// 1-based position in the session.
    pub seq: u64,
    /// The event's id in the case store.
    pub event_id: i64,
    /// `commandId`.
    pub command_id: Option<String>,
    /// Finish time of the command.
    pub time: DateTime<Utc>,
    /// Language of the cell.
    pub language: Option<String>,
    /// `finished`, `failed`, `cancelled`, …
    pub status: Option<String>,
    /// Execution time in seconds.
    pub duration_s: Option<f64>,
    /// The code.
    pub code: Option<String>,
    /// Who ran it.
    pub user: Option<String>,
    /// For captured Jupyter cells: the request asked for a silent execution (no `execute_input`,
    /// no history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent: Option<bool>,
    /// For captured Jupyter executions that are not an ordinary cell: `user_expressions`, `comm` or
    /// `debugger` (code the kernel ran from somewhere other than a cell's source; see
    /// `nbtrail_ingest::capture::executed_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// For captured cells, how far the record is verified at ingest: `signed` (covered by a checkpoint
    /// whose signature verifies with `signer`) or `chain` (hash chain holds; no signed checkpoint covers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
    /// The key (hex) that signed the checkpoint covering a `signed` cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// What the user was shown under the cell, in order (only sources that carry outputs: the gateway's
    /// capture log; Databricks audit logs never do).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<CellOutput>,
    /// Tables (and paths) the cell read or wrote according to Unity Catalog lineage — facts from
    /// `system.access.*_lineage` rows joined to the cell, not from its code — with how sure the join is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<LineageFact>,
    /// Rows the statement read, from `system.query.history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_read: Option<u64>,
    /// Rows the statement produced, from `system.query.history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_produced: Option<u64>,
}

/// A lineage row joined to a cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct LineageFact {
    /// The lineage event's id in the case store.
    pub event_id: i64,
    /// `read` or `write`.
    pub access: String,
    /// The table's full name, or the path when the source or target is a path.
    pub table: String,
    /// The column, for column lineage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// How the row was joined to the cell: `statement` (the same statement id: certain), `during` (same
    /// notebook and user, the row's time inside the cell's run) or `after` (same notebook and user, the
    /// nearest cell that finished at most 10 minutes before the row).
    pub confidence: String,
}

/// One output shown under a cell (a Jupyter `stream`, `display_data`, `execute_result`, `error`, …).
/// Always data, never markup to render: HTML or JavaScript in `data` is shown as source text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct CellOutput {
    /// The event id of the output message in the case store.
    pub event_id: i64,
    /// When the gateway saw it.
    pub time: Option<DateTime<Utc>>,
    /// The Jupyter message type: `stream`, `display_data`, `update_display_data`, `execute_result`,
    /// `error`, `clear_output`, `input_request`.
    pub output_type: String,
    /// `stdout`/`stderr` for streams; `password` for a password prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The output as text: stream text, the plain-text form of a rich output, the traceback without
    /// colour codes, the prompt of an input request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The full mime bundle of a rich output (images base64, as captured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Exception name of an `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ename: Option<String>,
    /// Exception value of an `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evalue: Option<String>,
    /// The gateway cut part of it to its size cap (the full size and hash are in the raw record).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// A stretch of time in which the trail has a hole: verbose audit logging was switched off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct TrailGap {
    /// Workspace the setting applies to.
    pub workspace_id: Option<String>,
    /// When verbose logging was switched off.
    pub start: DateTime<Utc>,
    /// When it was switched back on; `None` while it is still off at the end of the trail.
    pub end: Option<DateTime<Utc>>,
    /// Who switched it off.
    pub off_by: Option<String>,
    /// Who switched it back on.
    pub on_by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn natural_key_depends_on_every_part() {
        let p = params(&[("a", "1")]);
        let base = NaturalKey::new(Some("r"), 1, "s", "a", &p);
        assert_eq!(base, NaturalKey::new(Some("r"), 1, "s", "a", &p));
        assert_ne!(base, NaturalKey::new(Some("r2"), 1, "s", "a", &p));
        assert_ne!(base, NaturalKey::new(Some("r"), 2, "s", "a", &p));
        assert_ne!(base, NaturalKey::new(Some("r"), 1, "s2", "a", &p));
        assert_ne!(base, NaturalKey::new(Some("r"), 1, "s", "a2", &p));
        assert_ne!(
            base,
            NaturalKey::new(Some("r"), 1, "s", "a", &params(&[("a", "2")]))
        );
        // Length prefixes: moving bytes between parts changes the key.
        assert_ne!(
            NaturalKey::new(Some("ab"), 1, "c", "a", &p),
            NaturalKey::new(Some("a"), 1, "bc", "a", &p)
        );
    }

    #[test]
    fn started_at_subtracts_duration() {
        let t = time_from_ms(10_000).unwrap();
        let e = Event {
            fields: EventFields {
                duration_ms: Some(2_500),
                ..EventFields::new(t, "notebook", "runCommand")
            },
            web_session_id: None,
            params: BTreeMap::new(),
            shape: Shape::Delivered,
            raw: String::new(),
            provenance: Provenance {
                file: "f".into(),
                line: 1,
                byte_offset: 0,
                file_sha256: None,
            },
        };
        assert_eq!(e.started_at(), time_from_ms(7_500).unwrap());
        assert!(e.is_notebook_command());
        assert_eq!(format_time(e.time), "1970-01-01T00:00:10.000Z");
    }
}
