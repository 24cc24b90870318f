//! The read side of a case: what the CLI and the app list and show.

use crate::{Case, ErrorEntry, Result, StoreError};
use chrono::{DateTime, Utc};
use nbtrail_model::{
    EventFields, LineageFact, Session, SessionCell, SessionEnd, Shape, TrailGap, time_from_ms,
};
use rusqlite::{OptionalExtension, Row, params_from_iter, types::Value as SqlValue};
use serde::Serialize;

/// A cell's code and language.
pub type CellCode = (String, Option<String>);

/// Narrows a session listing. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// Sessions in which this user attached or ran a command (exact e-mail, case-insensitive).
    pub user: Option<String>,
    /// A notebook id, an exact path, or a path prefix ending in `/`.
    pub notebook: Option<String>,
    /// Sessions that end at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Sessions that start before this time.
    pub to: Option<DateTime<Utc>>,
}

/// Narrows an event listing. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Exact user e-mail (case-insensitive).
    pub user: Option<String>,
    /// `action` or `service.action`.
    pub action: Option<String>,
    /// Notebook id or exact path.
    pub notebook: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
    /// At most this many (newest last); `None` for all.
    pub limit: Option<u64>,
}

/// One event as listed (normalized fields and provenance; the raw record on request).
#[derive(Debug, Clone, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct EventRow {
    /// Id in the case.
    pub id: i64,
    /// The normalized fields, declared once in [`nbtrail_model::EventFields`] (flattened: plain fields in
    /// JSON and TypeScript, `row.user` in Rust through `Deref`).
    #[serde(flatten)]
    #[ts(flatten)]
    pub fields: EventFields,
    /// Request parameters (without `commandText`).
    pub params: serde_json::Value,
    /// Shape it was read in.
    pub shape: String,
    /// Source file.
    pub file: String,
    /// SHA-256 of the source file.
    pub file_sha256: String,
    /// Line in the source file.
    pub line: u64,
    /// Byte offset in the source file.
    pub byte_offset: u64,
    /// Where, as shown to people ([`nbtrail_model::locate`]).
    pub location: String,
    /// The record verbatim.
    pub raw: String,
}

impl std::ops::Deref for EventRow {
    type Target = EventFields;
    fn deref(&self) -> &EventFields {
        &self.fields
    }
}

pub(crate) const EVENT_COLS: &str = "e.id, e.time_ms, e.user, e.workspace_id, e.service, e.action, e.notebook_id, e.notebook_path,
    e.cluster_id, e.command_id, e.language, e.status, e.duration_ms, e.source_ip, e.user_agent, e.request_id,
    e.response_status, e.response_error, e.payload_block, e.command_text, e.shape, f.path, f.sha256, e.line, e.byte_offset, e.payload_index, f.framing";

/// The joins every event listing needs.
pub(crate) const EVENT_FROM: &str = "events e JOIN source_files f ON f.id = e.source_file_id";

/// An event row and where its payload is; [`Case::fill_payloads`] completes `params` and `raw`.
pub(crate) fn event_row(r: &Row<'_>) -> rusqlite::Result<(EventRow, i64, i64)> {
    let at = (r.get(18)?, r.get(25)?);
    let row = EventRow {
        id: r.get(0)?,
        fields: EventFields {
            time: ms(r.get(1)?),
            user: r.get(2)?,
            workspace_id: r.get(3)?,
            service: r.get(4)?,
            action: r.get(5)?,
            notebook_id: r.get(6)?,
            notebook_path: r.get(7)?,
            cluster_id: r.get(8)?,
            command_id: r.get(9)?,
            language: r.get(10)?,
            command_text: r.get(19)?,
            status: r.get(11)?,
            duration_ms: r.get(12)?,
            source_ip: r.get(13)?,
            user_agent: r.get(14)?,
            request_id: r.get(15)?,
            response_status: r.get(16)?,
            response_error: r.get(17)?,
        },
        params: serde_json::Value::Null,
        shape: r.get(20)?,
        file: r.get(21)?,
        file_sha256: r.get(22)?,
        line: r.get(23)?,
        byte_offset: r.get(24)?,
        location: String::new(),
        raw: String::new(),
    };
    let framing: String = r.get(26)?;
    let row = EventRow {
        location: nbtrail_model::locate(&row.file, &framing, row.line, row.byte_offset),
        ..row
    };
    Ok((row, at.0, at.1))
}

fn ms(v: i64) -> DateTime<Utc> {
    time_from_ms(v).unwrap_or_default()
}

/// Case-wide overview.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct CaseSummary {
    /// Events stored.
    pub events: u64,
    /// Distinct users.
    pub users: u64,
    /// Distinct notebooks.
    pub notebooks: u64,
    /// Notebook command events (cells run).
    pub commands: u64,
    /// Sessions.
    pub sessions: u64,
    /// Earliest event.
    pub first: Option<DateTime<Utc>>,
    /// Latest event.
    pub last: Option<DateTime<Utc>>,
    /// Ingest runs.
    pub runs: u64,
    /// Rejected records across runs.
    pub errors: u64,
    /// Duplicates across runs.
    pub duplicates: u64,
    /// Conflicts across runs: records whose natural key is in the case with other content (kept; see
    /// [`Case::conflicts`]). Anything above zero deserves a look: two sources disagree about one event.
    pub conflicts: u64,
    /// Holes in the trail.
    pub trail_gaps: Vec<TrailGap>,
    /// Counts of events an auditor looks at first, by category.
    pub notable: Vec<NotableCount>,
    /// A warning when the trail cannot show what ran (no runCommand events at all).
    pub warnings: Vec<String>,
}

/// A count of one category of notable events.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct NotableCount {
    /// Category label.
    pub category: String,
    /// `service.action` values it covers.
    pub actions: Vec<String>,
    /// Events.
    pub count: u64,
}

/// Categories of events worth an auditor's first look.
pub const NOTABLE: &[(&str, &[&str])] = &[
    ("secret reads", &["secrets.getSecret"]),
    (
        "secret scope listings",
        &["secrets.listScopes", "secrets.listSecrets"],
    ),
    (
        "result downloads",
        &[
            "notebook.downloadPreviewResults",
            "notebook.downloadLargeResults",
            "databrickssql.downloadQueryResult",
            "filesystem.filesGet",
        ],
    ),
    ("notebook exports", &["workspace.workspaceExport"]),
    ("logins with API tokens", &["accounts.tokenLogin"]),
    ("OAuth tokens minted", &["workspace.mintOAuthToken"]),
    (
        "permission changes",
        &[
            "permissions.changePermissions",
            "accounts.addPrincipalToGroup",
        ],
    ),
    (
        "workspace setting changes",
        &["workspace.workspaceConfEdit"],
    ),
];

/// One ingest run as listed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunRow {
    /// Id.
    pub id: i64,
    /// Start.
    pub started_at: String,
    /// End.
    pub finished_at: Option<String>,
    /// Who ran it.
    pub examiner: String,
    /// Where.
    pub host: String,
    /// nbtrail version.
    pub tool_version: String,
    /// Paths given.
    pub inputs: serde_json::Value,
    /// Files read.
    pub files: u64,
    /// Records read.
    pub lines: u64,
    /// Events stored.
    pub events: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Conflicts.
    pub conflicts: u64,
    /// Errors.
    pub errors: u64,
}

/// A record whose natural key is in the case with other content: kept verbatim, never dropped.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConflictRow {
    /// Id.
    pub id: i64,
    /// The stored event with the same natural key.
    pub event_id: i64,
    /// Where the stored event came from ([`nbtrail_model::locate`]).
    pub event_source: String,
    /// The conflicting record's file.
    pub file: String,
    /// Its 1-based line.
    pub line: u64,
    /// Its byte offset (decompressed).
    pub byte_offset: u64,
    /// Where, as shown to people ([`nbtrail_model::locate`]).
    pub location: String,
    /// The fields that differ: `[{field, stored, record}]`.
    pub fields: serde_json::Value,
    /// The conflicting record, verbatim.
    pub raw: String,
}

fn session_row(r: &Row<'_>) -> rusqlite::Result<Session> {
    let users: String = r.get(4)?;
    let reason: String = r.get(9)?;
    Ok(Session {
        id: r.get(0)?,
        notebook_id: r.get(1)?,
        notebook_path: r.get(2)?,
        cluster_id: r.get(3)?,
        users: serde_json::from_str(&users).unwrap_or_default(),
        start: ms(r.get(5)?),
        end: ms(r.get(6)?),
        cells: r.get(7)?,
        attached: r.get(8)?,
        end_reason: SessionEnd::parse(&reason).unwrap_or(SessionEnd::Open),
    })
}

const SESSION_COLS: &str = "id, notebook_id, notebook_path, cluster_id, users, start_ms, end_ms, cells, attached, end_reason";

/// A session's cells. The session id is bound through a subquery, not compared with a bare `?`: SQLite
/// re-prepares a statement on every run when a bound parameter could change whether a partial index of a
/// table in it applies (`events` has two), and a bare parameter makes it ask — a whole prepare per session,
/// 800k of them when a ten-million-event case is analyzed (6 % of the run). Pinned by
/// `tests::per_session_statements_are_prepared_once`.
pub(crate) const SESSION_CELLS_SQL: &str = "SELECT c.seq, e.id, e.command_id, e.time_ms, e.language, e.status, e.duration_ms, e.command_text, e.user,
        e.shape, e.payload_block, e.payload_index,
        e.service = 'databrickssql' AND e.action = 'commandSubmit', e.cluster_id
 FROM session_cells c JOIN events e ON e.id = c.event_id
 WHERE c.session_id = (SELECT ?1) ORDER BY c.seq";

/// A cell's code and language (bound like [`SESSION_CELLS_SQL`]: called once per event detection).
pub(crate) const CELL_CODE_SQL: &str =
    "SELECT e.command_text, e.language FROM session_cells c JOIN events e ON e.id = c.event_id
 WHERE c.event_id = (SELECT ?1) AND c.session_id = (SELECT ?2)";

impl Case {
    /// Sessions matching `f`, by start time then id.
    pub fn sessions(&self, f: &SessionFilter) -> Result<Vec<Session>> {
        let mut sql = format!("SELECT {SESSION_COLS} FROM sessions s WHERE 1=1");
        let mut args: Vec<SqlValue> = Vec::new();
        if let Some(u) = &f.user {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM json_each(s.users) WHERE lower(value) = lower(?))",
            );
            args.push(u.clone().into());
        }
        if let Some(nb) = &f.notebook {
            if nb.ends_with('/') {
                sql.push_str(" AND (s.notebook_path LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM notebook_paths p WHERE p.notebook_id = s.notebook_id AND p.path LIKE ? ESCAPE '\\'))");
                let pat = format!("{}%", like_escape(nb));
                args.push(pat.clone().into());
                args.push(pat.into());
            } else {
                sql.push_str(" AND (s.notebook_id = ? OR s.notebook_path = ? OR EXISTS (SELECT 1 FROM notebook_paths p WHERE p.notebook_id = s.notebook_id AND p.path = ?))");
                args.extend([nb.clone().into(), nb.clone().into(), nb.clone().into()]);
            }
        }
        if let Some(t) = f.from {
            sql.push_str(" AND s.end_ms >= ?");
            args.push(t.timestamp_millis().into());
        }
        if let Some(t) = f.to {
            sql.push_str(" AND s.start_ms < ?");
            args.push(t.timestamp_millis().into());
        }
        sql.push_str(" ORDER BY s.start_ms, s.id");
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(args), session_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The `n` sessions that started last, oldest of them first (an index walk, not a scan).
    pub fn newest_sessions(&self, n: usize) -> Result<Vec<Session>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT * FROM (SELECT {SESSION_COLS} FROM sessions ORDER BY start_ms DESC, id DESC LIMIT ?1)
             ORDER BY start_ms, id"
        ))?;
        let rows = st.query_map([n as i64], session_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The session with this id, or with this unique id prefix.
    pub fn session(&self, id: &str) -> Result<Session> {
        // A whole id (what every internal caller has) is one index lookup; only a typed prefix needs LIKE,
        // which scans the table.
        if let Some(s) = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE id = ?1"
            ))?
            .query_row([id], session_row)
            .optional()?
        {
            return Ok(s);
        }
        let mut st = self.conn.prepare(&format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 2"
        ))?;
        let found: Vec<Session> = st
            .query_map([format!("{}%", like_escape(id))], session_row)?
            .collect::<rusqlite::Result<_>>()?;
        match found.len() {
            1 => Ok(found.into_iter().next().expect("one")),
            0 => Err(StoreError::NotFound(format!("no session with id {id:?}"))),
            _ => Err(StoreError::NotFound(format!(
                "session id prefix {id:?} is ambiguous; give more characters"
            ))),
        }
    }

    /// Joins Unity Catalog lineage rows to a session's cells (see [`nbtrail_model::LineageFact`] for the
    /// confidence levels) and gives query-history cells their row counts. Lineage rows are matched by
    /// statement id first; the rest of the notebook's rows from the session's start to 10 minutes after its
    /// end go to the cell of the same user whose run contains the row's time, else to the last cell of that
    /// user that finished at most 10 minutes before it; a row matching no cell stays unjoined (it is still an
    /// event of the notebook, found by `notebook:` and `table:`).
    ///
    /// Replay and bundles call it on [`Case::session_cells`]' result; analysis does not need it.
    pub fn join_lineage(&self, session: &Session, cells: &mut [SessionCell]) -> Result<()> {
        const AFTER_MS: i64 = 10 * 60 * 1000;
        let mut reader = crate::payload::BlockReader::default();
        let mut st = self.conn.prepare_cached(
            "SELECT e.id, e.payload_block, e.payload_index
             FROM session_cells c JOIN events e ON e.id = c.event_id
             WHERE c.session_id = ?1 AND e.service = 'databrickssql' AND e.action = 'queryHistory'",
        )?;
        let history: Vec<(i64, i64, i64)> = st
            .query_map([&session.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let number = |v: &serde_json::Value| -> Option<u64> {
            v.as_str()
                .and_then(|s| s.trim().parse().ok())
                .or_else(|| v.as_u64())
        };
        for (event, block, index) in history {
            let Some(cell) = cells.iter_mut().find(|c| c.event_id == event) else {
                continue;
            };
            let p = reader.get(&self.conn, block, index)?;
            let v: serde_json::Value = serde_json::from_str(&p.params).unwrap_or_default();
            cell.rows_read = number(&v["read_rows"]);
            cell.rows_produced = number(&v["produced_rows"]);
        }
        let facts = |params: &str, id: i64, confidence: &str| -> Vec<LineageFact> {
            lineage_endpoints(params)
                .into_iter()
                .map(|(access, table, column)| LineageFact {
                    event_id: id,
                    access: access.into(),
                    table,
                    column,
                    confidence: confidence.into(),
                })
                .collect()
        };
        let mut joined = std::collections::HashSet::new();
        let mut by_statement = self.conn.prepare_cached(
            "SELECT id, payload_block, payload_index FROM events
             WHERE service = 'lineage' AND command_id = ?1 ORDER BY time_ms, id",
        )?;
        for cell in cells.iter_mut() {
            let Some(command) = cell.command_id.clone() else {
                continue;
            };
            let rows: Vec<(i64, i64, i64)> = by_statement
                .query_map([&command], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (id, block, index) in rows {
                let p = reader.get(&self.conn, block, index)?;
                cell.lineage.extend(facts(&p.params, id, "statement"));
                joined.insert(id);
            }
        }
        let (notebook, start, end) = (
            &session.notebook_id,
            session.start.timestamp_millis(),
            session.end.timestamp_millis(),
        );
        if notebook.starts_with(crate::WAREHOUSE_SESSION_PREFIX) {
            return Ok(());
        }
        let mut by_notebook = self.conn.prepare_cached(
            "SELECT id, time_ms, user, payload_block, payload_index FROM events
             WHERE notebook_id = ?1 AND service = 'lineage' AND time_ms >= ?2 AND time_ms <= ?3
             ORDER BY time_ms, id",
        )?;
        let rows: Vec<(i64, i64, Option<String>, i64, i64)> = by_notebook
            .query_map(rusqlite::params![notebook, start, end + AFTER_MS], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let span = |c: &SessionCell| {
            let finish = c.time.timestamp_millis();
            let run = c.duration_s.map_or(0, |d| (d * 1000.0).round() as i64);
            (finish - run, finish)
        };
        for (id, t, user, block, index) in rows {
            if joined.contains(&id) {
                continue;
            }
            let same_user = |c: &&mut SessionCell| user.is_none() || c.user == user;
            let during = cells
                .iter_mut()
                .filter(same_user)
                .filter(|c| {
                    let (s, f) = span(c);
                    s <= t && t <= f
                })
                .max_by_key(|c| span(c).0);
            let (cell, confidence) = match during {
                Some(c) => (c, "during"),
                None => match cells
                    .iter_mut()
                    .filter(same_user)
                    .filter(|c| {
                        let f = span(c).1;
                        f <= t && t - f <= AFTER_MS
                    })
                    .max_by_key(|c| span(c).1)
                {
                    Some(c) => (c, "after"),
                    None => continue,
                },
            };
            let p = reader.get(&self.conn, block, index)?;
            cell.lineage.extend(facts(&p.params, id, confidence));
        }
        Ok(())
    }

    /// A SQL warehouse statement (`databrickssql.commandSubmit`) learns how it ended from its
    /// `commandFinish` (same warehouse and command id, at or after the submit): status (the finish's own
    /// `status`, else its response: 200 `finished`, other `failed`), finish time and duration. A statement
    /// with no finish in the trail keeps no status: it is shown as not known to have finished.
    fn finish_statements(
        &self,
        cells: &mut [SessionCell],
        statements: &[(usize, String)],
    ) -> Result<()> {
        let mut finish = self.conn.prepare(
            "SELECT time_ms, status, response_status FROM events
             WHERE action = 'commandFinish' AND service = 'databrickssql' AND command_id = ?1
               AND cluster_id = ?2 AND time_ms >= ?3
             ORDER BY time_ms, id LIMIT 1",
        )?;
        for (i, warehouse) in statements {
            let cell = &mut cells[*i];
            let Some(command) = cell.command_id.clone() else {
                continue;
            };
            let submitted = cell.time.timestamp_millis();
            let found = finish
                .query_map(rusqlite::params![command, warehouse, submitted], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                })?
                .next()
                .transpose()?;
            if let Some((time_ms, status, response)) = found {
                cell.status = status.or_else(|| {
                    Some(
                        if response.is_none_or(|c| c == 200) {
                            "finished"
                        } else {
                            "failed"
                        }
                        .into(),
                    )
                });
                cell.time = ms(time_ms);
                cell.duration_s = Some((time_ms - submitted).max(0) as f64 / 1000.0);
            }
        }
        Ok(())
    }

    /// Every attach to a session's notebook while the session lasted, oldest first: its start and, for a
    /// kernel captured by the gateway, each reconnect.
    pub fn session_attachments(&self, session_id: &str) -> Result<Vec<nbtrail_model::Attachment>> {
        let s = self.session(session_id)?;
        let mut st = self.conn.prepare(
            "SELECT id, time_ms, user, source_ip FROM events
             WHERE notebook_id = ?1 AND coalesce(cluster_id, '') = ?2 AND action = 'attachNotebook'
               AND service = 'notebook' AND time_ms >= ?3 AND time_ms <= ?4
             ORDER BY time_ms, id",
        )?;
        let rows = st.query_map(
            rusqlite::params![
                s.notebook_id,
                s.cluster_id.clone().unwrap_or_default(),
                s.start.timestamp_millis(),
                s.end.timestamp_millis()
            ],
            |r| {
                Ok(nbtrail_model::Attachment {
                    event_id: r.get(0)?,
                    time: ms(r.get(1)?),
                    user: r.get(2)?,
                    source_ip: r.get(3)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Code and language of the cells `event_ids` of session `session_id`, in the order asked: what a
    /// view highlights without loading the whole session. An id that is not a cell of that session is
    /// `None`.
    pub fn cell_code(&self, session_id: &str, event_ids: &[i64]) -> Result<Vec<Option<CellCode>>> {
        let mut st = self.conn.prepare_cached(CELL_CODE_SQL)?;
        let mut out = Vec::with_capacity(event_ids.len());
        for id in event_ids {
            let row = st
                .query_row(rusqlite::params![id, session_id], |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        r.get::<_, Option<String>>(1)?,
                    ))
                })
                .optional()?;
            out.push(row);
        }
        Ok(out)
    }

    /// The cells of a session, in execution order. Cells captured by the gateway also get what the user
    /// was shown (their outputs), whether they ran silently, and status, duration and finish time from
    /// the kernel's `execute_reply`.
    pub fn session_cells(&self, session_id: &str) -> Result<Vec<SessionCell>> {
        let mut st = self.conn.prepare_cached(SESSION_CELLS_SQL)?;
        let mut captured = Vec::new();
        let mut statements = Vec::new();
        let rows = st.query_map([session_id], |r| {
            let shape: String = r.get(9)?;
            Ok((
                SessionCell {
                    seq: r.get(0)?,
                    event_id: r.get(1)?,
                    command_id: r.get(2)?,
                    time: ms(r.get(3)?),
                    language: r.get(4)?,
                    status: r.get(5)?,
                    duration_s: r.get::<_, Option<i64>>(6)?.map(|d| d as f64 / 1000.0),
                    code: r.get(7)?,
                    user: r.get(8)?,
                    silent: None,
                    kind: None,
                    verified: None,
                    signer: None,
                    outputs: Vec::new(),
                    lineage: Vec::new(),
                    rows_read: None,
                    rows_produced: None,
                },
                (shape == Shape::Capture.as_str())
                    .then_some((r.get::<_, i64>(10)?, r.get::<_, i64>(11)?)),
                r.get::<_, bool>(12)?
                    .then(|| r.get::<_, Option<String>>(13))
                    .transpose()?
                    .flatten(),
            ))
        })?;
        let mut cells = Vec::new();
        for row in rows {
            let (cell, payload, warehouse) = row?;
            if let Some(p) = payload {
                captured.push((cells.len(), p));
            }
            if let Some(w) = warehouse {
                statements.push((cells.len(), w));
            }
            cells.push(cell);
        }
        if !statements.is_empty() {
            self.finish_statements(&mut cells, &statements)?;
        }
        if captured.is_empty() {
            return Ok(cells);
        }
        let mut reader = crate::payload::BlockReader::default();
        let mut answers = self.conn.prepare(
            "SELECT id, time_ms, action, payload_block, payload_index FROM events
             WHERE shape = 'jupyter_capture' AND command_id = ?1 AND service = 'jupyter'
             ORDER BY time_ms, id",
        )?;
        for (i, (block, index)) in captured {
            let cell = &mut cells[i];
            let params = reader.get(&self.conn, block, index)?.params;
            let params: serde_json::Value = serde_json::from_str(&params).unwrap_or_default();
            cell.silent = params["silent"].as_str().map(|s| s == "true");
            cell.kind = params["execution_kind"].as_str().map(str::to_string);
            cell.verified = params["capture_verified"].as_str().map(str::to_string);
            cell.signer = params["capture_signer"].as_str().map(str::to_string);
            let Some(command) = cell.command_id.clone() else {
                continue;
            };
            let started = cell.time;
            let found: Vec<(i64, i64, String, i64, i64)> = answers
                .query_map([&command], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            for (id, time_ms, action, block, index) in found {
                if action == "execute_reply" {
                    let p = reader.get(&self.conn, block, index)?;
                    let v: serde_json::Value = serde_json::from_str(&p.params).unwrap_or_default();
                    cell.status = v["reply_status"].as_str().map(|s| {
                        match s {
                            "ok" => "finished",
                            "error" => "failed",
                            "aborted" => "cancelled",
                            other => other,
                        }
                        .to_string()
                    });
                    cell.time = ms(time_ms);
                    cell.duration_s =
                        Some((time_ms - started.timestamp_millis()).max(0) as f64 / 1000.0);
                    if cell.kind.is_some()
                        && let Some(mut out) = nbtrail_ingest::capture::user_expressions_of(&p.raw)
                    {
                        out.event_id = id;
                        out.time = Some(ms(time_ms));
                        cell.outputs.push(out);
                    }
                } else if nbtrail_ingest::capture::OUTPUT_TYPES.contains(&action.as_str()) {
                    let p = reader.get(&self.conn, block, index)?;
                    if let Some(mut out) = nbtrail_ingest::capture::output_of_record(&p.raw) {
                        out.event_id = id;
                        out.time = Some(ms(time_ms));
                        cell.outputs.push(out);
                    }
                }
            }
        }
        Ok(cells)
    }

    /// Events matching `f`, oldest first (with `limit`, the newest `limit` of them, still oldest first).
    pub fn events(&self, f: &EventFilter) -> Result<Vec<EventRow>> {
        let mut sql = format!("SELECT {EVENT_COLS} FROM {EVENT_FROM} WHERE 1=1");
        let mut args: Vec<SqlValue> = Vec::new();
        if let Some(u) = &f.user {
            sql.push_str(" AND lower(e.user) = lower(?)");
            args.push(u.clone().into());
        }
        if let Some(a) = &f.action {
            match a.split_once('.') {
                Some((s, a)) => {
                    sql.push_str(" AND e.service = ? AND e.action = ?");
                    args.extend([s.to_string().into(), a.to_string().into()]);
                }
                None => {
                    sql.push_str(" AND e.action = ?");
                    args.push(a.clone().into());
                }
            }
        }
        if let Some(nb) = &f.notebook {
            sql.push_str(" AND (e.notebook_id = ? OR e.notebook_id IN (SELECT notebook_id FROM notebook_paths WHERE path = ?))");
            args.extend([nb.clone().into(), nb.clone().into()]);
        }
        if let Some(t) = f.from {
            sql.push_str(" AND e.time_ms >= ?");
            args.push(t.timestamp_millis().into());
        }
        if let Some(t) = f.to {
            sql.push_str(" AND e.time_ms < ?");
            args.push(t.timestamp_millis().into());
        }
        match f.limit {
            Some(n) => {
                sql = format!(
                    "SELECT * FROM ({sql} ORDER BY e.time_ms DESC, e.id DESC LIMIT ?) ORDER BY 2, 1"
                );
                args.push((n as i64).into());
            }
            None => sql.push_str(" ORDER BY e.time_ms, e.id"),
        }
        let mut st = self.conn.prepare(&sql)?;
        let rows = st
            .query_map(params_from_iter(args), event_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        self.fill_payloads(rows)
    }

    /// Completes event rows with their parameters and raw records.
    fn fill_payloads(&self, rows: Vec<(EventRow, i64, i64)>) -> Result<Vec<EventRow>> {
        let mut reader = crate::payload::BlockReader::default();
        rows.into_iter()
            .map(|(row, block, index)| self.fill_payload(&mut reader, row, block, index))
            .collect()
    }

    /// Completes one event row with its parameters and raw record (`reader` caches the last block).
    fn fill_payload(
        &self,
        reader: &mut crate::payload::BlockReader,
        mut row: EventRow,
        block: i64,
        index: i64,
    ) -> Result<EventRow> {
        let p = reader.get(&self.conn, block, index)?;
        row.params = serde_json::from_str(&p.params).unwrap_or(serde_json::Value::Null);
        row.raw = p.raw;
        Ok(row)
    }

    /// Calls `f` for each of the events `ids` (any order, repeats ignored), oldest first, streaming: the
    /// ids go to a temporary table and rows are read one at a time with their payloads.
    pub fn for_each_event(
        &self,
        ids: &[i64],
        f: &mut dyn FnMut(EventRow) -> Result<()>,
    ) -> Result<()> {
        crate::fill_temp_ids(&self.conn, "selection", "INTEGER", ids)?;
        let mut reader = crate::payload::BlockReader::default();
        let mut st = self.conn.prepare(&format!(
            // The selection first (CROSS JOIN fixes SQLite's loop order), then a sort of it: otherwise the
            // planner walks the whole time index to skip the sort (linear in the case, not the selection).
            "SELECT {EVENT_COLS} FROM temp.selection s CROSS JOIN events e ON e.id = s.id
             JOIN source_files f ON f.id = e.source_file_id ORDER BY e.time_ms, e.id"
        ))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (row, block, index) = event_row(r)?;
            f(self.fill_payload(&mut reader, row, block, index)?)?;
        }
        drop(rows);
        drop(st);
        self.conn.execute_batch("DELETE FROM temp.selection;")?;
        Ok(())
    }

    /// Calls `f` with every event of the case in time order (then id), payloads filled, streaming.
    pub fn for_each_event_all(&self, f: &mut dyn FnMut(EventRow) -> Result<()>) -> Result<()> {
        let mut reader = crate::payload::BlockReader::default();
        let mut st = self.conn.prepare(&format!(
            "SELECT {EVENT_COLS} FROM {EVENT_FROM} ORDER BY e.time_ms, e.id"
        ))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (row, block, index) = event_row(r)?;
            f(self.fill_payload(&mut reader, row, block, index)?)?;
        }
        Ok(())
    }

    /// Event detections (findings whose code starts with `NBE`) at events from `from_ms` to `to_ms`:
    /// (time of the event, code, severity), in time order. Reads the findings table alone (each finding
    /// carries its event's time); what the search timeline draws, without building a finding view each.
    pub fn detection_times(&self, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, String, String)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT time_ms, code, severity FROM findings
             WHERE code LIKE 'NBE%' AND time_ms BETWEEN ?1 AND ?2 ORDER BY time_ms",
        )?;
        let rows = st.query_map([from_ms, to_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One event by id.
    pub fn event(&self, id: i64) -> Result<EventRow> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {EVENT_COLS} FROM {EVENT_FROM} WHERE e.id = ?"),
                [id],
                event_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("no event with id {id}")))?;
        Ok(self.fill_payloads(vec![row])?.remove(0))
    }

    /// The trail's holes, oldest first.
    pub fn trail_gaps(&self) -> Result<Vec<TrailGap>> {
        trail_gaps_of(&self.conn)
    }

    /// Ingest runs, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, started_at, finished_at, examiner, host, tool_version, inputs, files, lines, events, duplicates, errors,
                    conflicts
             FROM ingest_runs ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let inputs: String = r.get(6)?;
            Ok(RunRow {
                id: r.get(0)?,
                started_at: r.get(1)?,
                finished_at: r.get(2)?,
                examiner: r.get(3)?,
                host: r.get(4)?,
                tool_version: r.get(5)?,
                inputs: serde_json::from_str(&inputs).unwrap_or_default(),
                files: r.get(7)?,
                lines: r.get(8)?,
                events: r.get(9)?,
                duplicates: r.get(10)?,
                errors: r.get(11)?,
                conflicts: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every conflict (of one run, or of all; or only those with the given stored events), by file then line.
    pub fn conflicts(&self, run: Option<i64>, events: Option<&[i64]>) -> Result<Vec<ConflictRow>> {
        let mut st = self.conn.prepare(
            "SELECT x.id, x.event_id, ef.path, f.path, x.line, x.byte_offset, x.fields, x.raw,
                    ef.framing, e.line, e.byte_offset, f.framing
             FROM conflicts x
             JOIN source_files f ON f.id = x.source_file_id
             JOIN events e ON e.id = x.event_id
             JOIN source_files ef ON ef.id = e.source_file_id
             WHERE ?1 IS NULL OR f.run_id = ?1 ORDER BY f.id, x.line, x.byte_offset",
        )?;
        let wanted: Option<std::collections::HashSet<i64>> =
            events.map(|e| e.iter().copied().collect());
        let rows = st.query_map([run], |r| {
            let fields: String = r.get(6)?;
            let (file, line, byte_offset): (String, u64, u64) = (r.get(3)?, r.get(4)?, r.get(5)?);
            let (ef, eframing, eline, eoff, framing): (String, String, u64, u64, String) =
                (r.get(2)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?);
            Ok(ConflictRow {
                id: r.get(0)?,
                event_id: r.get(1)?,
                event_source: nbtrail_model::locate(&ef, &eframing, eline, eoff),
                location: nbtrail_model::locate(&file, &framing, line, byte_offset),
                file,
                line,
                byte_offset,
                fields: serde_json::from_str(&fields).unwrap_or_default(),
                raw: r.get(7)?,
            })
        })?;
        let mut out = Vec::new();
        for row in rows {
            let row = row?;
            if wanted.as_ref().is_none_or(|w| w.contains(&row.event_id)) {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// Every rejected record (of one run, or of all), by file then line.
    pub fn ingest_errors(&self, run: Option<i64>) -> Result<Vec<ErrorEntry>> {
        let mut st = self.conn.prepare(
            "SELECT f.path, x.line, x.byte_offset, x.message, f.framing FROM ingest_errors x
             JOIN source_files f ON f.id = x.source_file_id
             WHERE ?1 IS NULL OR f.run_id = ?1 ORDER BY f.id, x.line, x.byte_offset",
        )?;
        let rows = st.query_map([run], |r| {
            let (file, line, byte_offset, framing): (String, u64, u64, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(4)?);
            Ok(ErrorEntry {
                location: nbtrail_model::locate(&file, &framing, line, byte_offset),
                file,
                line,
                byte_offset,
                message: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The case overview.
    pub fn summary(&self) -> Result<CaseSummary> {
        summary_cached(&self.conn)
    }
}

/// What a stored summary was computed from: the newest event and ingest run and the idle gap (sessions).
/// Events and runs are only ever added (an ingest is one transaction), so an unchanged key means unchanged
/// counts.
fn summary_key(c: &rusqlite::Connection) -> Result<String> {
    Ok(c.query_row(
        "SELECT (SELECT coalesce(max(id), 0) FROM events) || ':' || (SELECT coalesce(max(id), 0) FROM ingest_runs)
                || ':' || coalesce((SELECT value FROM settings WHERE key = 'idle_gap_ms'), '')
                || ':' || (SELECT count(*) FROM trail_gaps)",
        [],
        |r| r.get(0),
    )?)
}

/// The case summary: from the `settings` cache when its key still holds (O(1) at any case size: counting
/// distinct users over ten million events takes seconds), else computed and cached when the case is
/// writable.
pub(crate) fn summary_cached(c: &rusqlite::Connection) -> Result<CaseSummary> {
    // Key, counts and cache write in one savepoint: the counts and the key stored with them come from one
    // snapshot of the case.
    in_savepoint(c, "summary_cached", || summary_cached_in_savepoint(c))
}

/// Runs `f` inside the savepoint `name` (a literal of this module): released when `f` succeeds, rolled
/// back (then released) when it fails, so that its writes land together or not at all.
fn in_savepoint<T>(
    c: &rusqlite::Connection,
    name: &str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    c.execute_batch(&format!("SAVEPOINT {name}"))?;
    match f() {
        Ok(value) => {
            c.execute_batch(&format!("RELEASE {name}"))?;
            Ok(value)
        }
        Err(e) => {
            c.execute_batch(&format!("ROLLBACK TO {name}; RELEASE {name}"))?;
            Err(e)
        }
    }
}

fn summary_cached_in_savepoint(c: &rusqlite::Connection) -> Result<CaseSummary> {
    let key = summary_key(c)?;
    let cached: Option<(String, String)> = c
        .query_row(
            "SELECT k.value, s.value FROM settings k, settings s WHERE k.key = 'summary_key' AND s.key = 'summary'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((k, json)) = cached
        && k == key
        && let Ok(summary) = serde_json::from_str::<CaseSummary>(&json)
    {
        return Ok(summary);
    }
    let summary = compute_summary(c)?;
    // A read-only case just computes it every time.
    let _ = store_summary(c, &key, &summary);
    Ok(summary)
}

/// Computes the summary and caches it (the end of an ingest, inside its transaction).
pub(crate) fn refresh_summary(c: &rusqlite::Connection) -> Result<()> {
    let key = summary_key(c)?;
    let summary = compute_summary(c)?;
    store_summary(c, &key, &summary)
}

/// Writes the summary and its key as one unit (a savepoint of their own): a failure or a crash between the
/// two rows must not leave a new key over an old summary, which would be served as current.
fn store_summary(c: &rusqlite::Connection, key: &str, summary: &CaseSummary) -> Result<()> {
    let json = serde_json::to_string(summary).map_err(|e| StoreError::Invalid(e.to_string()))?;
    in_savepoint(c, "store_summary", || {
        for (k, v) in [("summary", json.as_str()), ("summary_key", key)] {
            c.execute(
                "INSERT INTO settings(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [k, v],
            )?;
        }
        Ok(())
    })
}

/// How many events of one `service.action` the case holds (the summary's notable events): from the action
/// index alone, which carries the service (migration 13).
const NOTABLE_COUNT_SQL: &str = "SELECT count(*) FROM events WHERE service = ?1 AND action = ?2";

/// How many notebook and job commands the case holds, from the action index alone.
const COMMANDS_COUNT_SQL: &str =
    "SELECT count(*) FROM events WHERE action = 'runCommand' AND service IN ('notebook','jobs')";

/// `count(DISTINCT user)` by skipping through the user index from one value to the next: a probe per user
/// instead of a pass over every event's entry (0.36 s in a 10M-event case).
const DISTINCT_USERS_SQL: &str = "WITH RECURSIVE v(x) AS (
       SELECT (SELECT min(user) FROM events)
       UNION ALL
       SELECT (SELECT min(user) FROM events WHERE user > v.x) FROM v WHERE v.x IS NOT NULL)
     SELECT count(x) FROM v";

/// `count(DISTINCT notebook_id)` the same way, through the partial notebook index (which the plain count
/// could not use: it scanned the table, 1.6 s in a 10M-event case).
const DISTINCT_NOTEBOOKS_SQL: &str = "WITH RECURSIVE v(x) AS (
       SELECT (SELECT min(notebook_id) FROM events WHERE notebook_id IS NOT NULL)
       UNION ALL
       SELECT (SELECT min(notebook_id) FROM events WHERE notebook_id > v.x) FROM v WHERE v.x IS NOT NULL)
     SELECT count(x) FROM v";

fn compute_summary(c: &rusqlite::Connection) -> Result<CaseSummary> {
    let one =
        |sql: &str| -> Result<u64> { Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64) };
    // Two subqueries: SQLite answers a lone min() or max() from the (time, key) index's ends, but scans
    // a whole index for both in one select (0.5 s in a 10M-event case).
    let (first, last): (Option<i64>, Option<i64>) = c.query_row(
        "SELECT (SELECT min(time_ms) FROM events), (SELECT max(time_ms) FROM events)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut notable = Vec::new();
    for (cat, actions) in NOTABLE {
        let mut count = 0u64;
        for a in *actions {
            let (s, act) = a.split_once('.').expect("service.action");
            count += c.query_row(NOTABLE_COUNT_SQL, [s, act], |r| r.get::<_, i64>(0))? as u64;
        }
        notable.push(NotableCount {
            category: cat.to_string(),
            actions: actions
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            count,
        });
    }
    let events = one("SELECT count(*) FROM events")?;
    let commands = one(COMMANDS_COUNT_SQL)?;
    let mut warnings = Vec::new();
    if events > 0 && commands == 0 {
        warnings.push(
            "no notebook command (runCommand) events: verbose audit logging was probably off, so the trail \
             shows who attached notebooks and read secrets but not what code ran"
                .to_string(),
        );
    }
    let trail_gaps = trail_gaps_of(c)?;
    for g in &trail_gaps {
        warnings.push(format!(
            "verbose audit logging was off in workspace {} from {} to {}: cells run then are not in the trail",
            g.workspace_id.as_deref().unwrap_or("?"),
            nbtrail_model::format_time(g.start),
            g.end.map_or_else(|| "the end of the trail".into(), nbtrail_model::format_time)
        ));
    }
    Ok(CaseSummary {
        events,
        users: one(DISTINCT_USERS_SQL)?,
        notebooks: one(DISTINCT_NOTEBOOKS_SQL)?,
        commands,
        sessions: one("SELECT count(*) FROM sessions")?,
        first: first.map(ms),
        last: last.map(ms),
        runs: one("SELECT count(*) FROM ingest_runs")?,
        errors: one("SELECT count(*) FROM ingest_errors")?,
        duplicates: one("SELECT count(*) FROM duplicates")?,
        conflicts: one("SELECT count(*) FROM conflicts")?,
        trail_gaps,
        notable,
        warnings,
    })
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// What a lineage row's parameters name: `(access, table or path, column)` for its source (`read`) and its
/// target (`write`). The one reading of a lineage row, for replay's join and the index's `table:` facts.
pub fn lineage_endpoints(params: &str) -> Vec<(&'static str, String, Option<String>)> {
    let v: serde_json::Value = serde_json::from_str(params).unwrap_or_default();
    [
        (
            "read",
            "source_table_full_name",
            "source_path",
            "source_column_name",
        ),
        (
            "write",
            "target_table_full_name",
            "target_path",
            "target_column_name",
        ),
    ]
    .into_iter()
    .filter_map(|(access, table, path, column)| {
        let name = v[table].as_str().or_else(|| v[path].as_str())?;
        Some((
            access,
            name.to_string(),
            v[column].as_str().map(str::to_string),
        ))
    })
    .collect()
}

/// The trail gaps, oldest first.
fn trail_gaps_of(c: &rusqlite::Connection) -> Result<Vec<TrailGap>> {
    let mut st = c.prepare(
        "SELECT workspace_id, start_ms, end_ms, off_by, on_by FROM trail_gaps ORDER BY start_ms",
    )?;
    let rows = st.query_map([], |r| {
        Ok(TrailGap {
            workspace_id: r.get(0)?,
            start: ms(r.get(1)?),
            end: r.get::<_, Option<i64>>(2)?.map(ms),
            off_by: r.get(3)?,
            on_by: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::{
        CELL_CODE_SQL, COMMANDS_COUNT_SQL, DISTINCT_NOTEBOOKS_SQL, DISTINCT_USERS_SQL,
        NOTABLE_COUNT_SQL, SESSION_CELLS_SQL,
    };
    use crate::Case;
    use crate::tests::plan;
    use rusqlite::StatementStatus;

    /// A new case holding the sample logs (the directory goes when the first value is dropped).
    fn sample_case() -> (tempfile::TempDir, Case) {
        let dir = tempfile::tempdir().unwrap();
        let mut case = Case::create(dir.path()).unwrap();
        let logs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample-logs");
        let stream = nbtrail_ingest::RecordStream::open(&[logs], &[]).unwrap();
        case.ingest(
            stream,
            &std::sync::atomic::AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
        (dir, case)
    }

    /// Regression: the summary cache was written as two rows, key first, outside any transaction when a read
    /// found it stale — a failure (or a crash) after the key left a new key over the old counts, and the
    /// old counts were then served as current. Here the second row's write fails (a trigger): neither row
    /// may change, and the summary returned is still the fresh one.
    #[test]
    fn summary_cache_is_never_a_new_key_over_old_counts() {
        let (_dir, case) = sample_case();
        let fresh = case.summary().unwrap();
        let c = &case.conn;
        let rows = |c: &rusqlite::Connection| -> Vec<(String, String)> {
            c.prepare("SELECT key, value FROM settings WHERE key IN ('summary', 'summary_key') ORDER BY key")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        // A stale cache: an old key over old counts, as a case written by an earlier run would hold.
        c.execute_batch(
            "UPDATE settings SET value = 'stale' WHERE key = 'summary_key';
             UPDATE settings SET value = '{}' WHERE key = 'summary';",
        )
        .unwrap();
        let before = rows(c);
        for order in ["summary_key", "summary"] {
            c.execute_batch(&format!(
                "CREATE TEMP TRIGGER fail_{order} BEFORE UPDATE ON settings WHEN NEW.key = '{order}'
                 BEGIN SELECT RAISE(ABORT, 'disk full'); END;"
            ))
            .unwrap();
            assert_eq!(case.summary().unwrap(), fresh, "the read still answers");
            assert_eq!(
                rows(c),
                before,
                "a failed cache write changed a row (trigger on {order})"
            );
            c.execute_batch(&format!("DROP TRIGGER fail_{order}"))
                .unwrap();
        }
        assert_eq!(case.summary().unwrap(), fresh);
        assert_ne!(
            rows(c),
            before,
            "with nothing failing the cache is refreshed"
        );
        assert_eq!(case.summary().unwrap(), fresh, "and read back");
    }

    /// Regression (issue 21, a ten-million-event ingest spent 5 s on its summary): the summary's counts
    /// looked every counted event up in the table for its `service`, scanned the table for distinct
    /// notebooks and a whole index for the time range. Every count now reads an index alone, and the
    /// distinct counts probe once per value; on the sample logs they give what the plain SQL gives.
    #[test]
    fn summary_counts_read_indexes_only_and_agree_with_plain_sql() {
        let (_dir, case) = sample_case();
        let c = &case.conn;
        for sql in [NOTABLE_COUNT_SQL, COMMANDS_COUNT_SQL] {
            let plan = plan(c, sql);
            assert!(
                plan.iter()
                    .all(|l| l.contains("COVERING INDEX events_action")),
                "{sql}: {plan:?}"
            );
        }
        for sql in [DISTINCT_USERS_SQL, DISTINCT_NOTEBOOKS_SQL] {
            let plan = plan(c, sql);
            assert!(
                !plan.iter().any(|l| l.starts_with("SCAN events")),
                "{sql}: {plan:?}"
            );
        }
        let one = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        let users = one("SELECT count(DISTINCT user) FROM events");
        let notebooks = one("SELECT count(DISTINCT notebook_id) FROM events");
        assert!(
            users > 2 && notebooks > 2,
            "the sample logs name several users and notebooks"
        );
        assert!(one("SELECT count(*) FROM events WHERE user IS NULL OR notebook_id IS NULL") > 0);
        assert_eq!(one(DISTINCT_USERS_SQL), users);
        assert_eq!(one(DISTINCT_NOTEBOOKS_SQL), notebooks);
        let s = case.summary().unwrap();
        assert_eq!((s.users, s.notebooks), (users as u64, notebooks as u64));
    }

    /// Regression (issue 21, found with perf on a ten-million-event `analyze`): the per-session statements
    /// were re-prepared by SQLite on every run — a bare bound parameter beside `events`' partial indexes —
    /// so caching them saved nothing. Run many times, they must be prepared once.
    #[test]
    fn per_session_statements_are_prepared_once() {
        let dir = tempfile::tempdir().unwrap();
        let case = Case::create(dir.path()).unwrap();
        for k in 0..20 {
            case.session_cells(&format!("s{k}")).unwrap();
            case.cell_code(&format!("s{k}"), &[k, k + 1]).unwrap();
        }
        for sql in [SESSION_CELLS_SQL, CELL_CODE_SQL] {
            let st = case.conn.prepare_cached(sql).unwrap();
            assert_eq!(st.get_status(StatementStatus::RePrepare), 0, "{sql}");
            assert!(st.get_status(StatementStatus::Run) >= 20, "{sql}");
        }
    }
}
