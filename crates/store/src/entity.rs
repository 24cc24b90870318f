//! Entity facts: what one user, notebook, table or secret scope did or had done to it, aggregated in
//! SQL (no event payload is loaded but for the secret-scope lookup, which reads only `secrets` events).

use crate::{Case, Result};
use chrono::{DateTime, Utc};
use nbtrail_model::time_from_ms;
use rusqlite::types::Value as SqlValue;
use serde::Serialize;

/// Which entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    /// A user, by e-mail (any case).
    User(String),
    /// A notebook, by id or by any path it has had.
    Notebook(String),
    /// A table, by its normalised name (`catalog.schema.table`, any case).
    Table(String),
    /// A secret scope, by name.
    SecretScope(String),
}

impl Entity {
    /// `user`, `notebook`, `table`, `secret_scope`.
    pub fn kind(&self) -> &'static str {
        match self {
            Entity::User(_) => "user",
            Entity::Notebook(_) => "notebook",
            Entity::Table(_) => "table",
            Entity::SecretScope(_) => "secret_scope",
        }
    }

    /// The name as given.
    pub fn name(&self) -> &str {
        match self {
            Entity::User(s) | Entity::Notebook(s) | Entity::Table(s) | Entity::SecretScope(s) => s,
        }
    }
}

/// A value and how often it occurs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
#[ts(export)]
pub struct Counted {
    /// The value.
    pub value: String,
    /// How many events.
    pub count: u64,
}

/// Aggregates over an entity's events.
#[derive(Debug, Clone, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct EntityFacts {
    /// Events concerning the entity.
    pub events: u64,
    /// First of them.
    pub first_seen: Option<DateTime<Utc>>,
    /// Last of them.
    pub last_seen: Option<DateTime<Utc>>,
    /// Events per UTC day (`YYYY-MM-DD`), oldest first.
    pub per_day: Vec<Counted>,
    /// `service.action`, most frequent first.
    pub actions: Vec<Counted>,
    /// Users involved, most events first.
    pub users: Vec<Counted>,
    /// Notebooks involved (latest path, else id), most events first.
    pub notebooks: Vec<Counted>,
    /// Tables read by the entity's cells (code and lineage facts).
    pub tables_read: Vec<Counted>,
    /// Tables written by the entity's cells.
    pub tables_written: Vec<Counted>,
    /// Secret reads: `secrets.getSecret` events by scope, and cells whose code reads a secret.
    pub secret_reads: u64,
    /// Downloads and exports (results, large results, notebook exports, SQL results, files).
    pub downloads: u64,
    /// Ids of the download and export events (all of them, oldest first).
    pub download_events: Vec<i64>,
    /// Sessions the entity's cells belong to.
    pub session_ids: Vec<String>,
}

/// Actions that move results or notebooks out of the workspace.
pub const DOWNLOAD_ACTIONS: &[&str] = &[
    "downloadPreviewResults",
    "downloadLargeResults",
    "workspaceExport",
    "downloadQueryResult",
    "filesGet",
];

/// What a session list shows beside each session: its findings, of them high, and its cells that read a
/// secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionActivity {
    /// Findings (analyzer and event detections).
    pub findings: u64,
    /// Of them, high severity.
    pub high: u64,
    /// Cells whose code reads a secret.
    pub secret_reads: u64,
}

impl Case {
    /// [`SessionActivity`] of every session that has any, in two aggregate queries.
    pub fn session_activity(&self) -> Result<std::collections::HashMap<String, SessionActivity>> {
        let mut out: std::collections::HashMap<String, SessionActivity> =
            std::collections::HashMap::new();
        let mut st = self.conn.prepare(
            "SELECT session_id, count(*), sum(severity = 'high') FROM findings WHERE session_id <> '' GROUP BY session_id",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, u64>(2)?,
            ))
        })?;
        for row in rows {
            let (id, n, high) = row?;
            let a = out.entry(id).or_default();
            a.findings = n;
            a.high = high;
        }
        let mut st = self.conn.prepare(
            "SELECT c.session_id, count(*) FROM session_cells c JOIN events e ON e.id = c.event_id
             WHERE e.command_text LIKE '%secrets.get%' OR e.command_text LIKE '%getpass(%'
                OR e.command_text LIKE '%keyring.get_password(%' GROUP BY c.session_id",
        )?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
        for row in rows {
            let (id, n) = row?;
            out.entry(id).or_default().secret_reads = n;
        }
        Ok(out)
    }

    /// The ids of the entity's events (a temporary table `entity_events` holds them for the aggregates).
    fn select_entity(&self, e: &Entity) -> Result<()> {
        self.conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS entity_events(id INTEGER PRIMARY KEY); DELETE FROM temp.entity_events;",
        )?;
        let (sql, args): (&str, Vec<SqlValue>) = match e {
            Entity::User(u) => (
                "INSERT INTO temp.entity_events SELECT id FROM events WHERE lower(user) = lower(?1)",
                vec![u.clone().into()],
            ),
            Entity::Notebook(n) => (
                "INSERT INTO temp.entity_events SELECT id FROM events WHERE notebook_id = ?1
                   OR notebook_id IN (SELECT notebook_id FROM notebook_paths WHERE path = ?1)",
                vec![n.clone().into()],
            ),
            Entity::Table(t) => (
                "INSERT OR IGNORE INTO temp.entity_events SELECT event_id FROM cell_tables WHERE table_name = lower(?1)",
                vec![t.clone().into()],
            ),
            Entity::SecretScope(s) => {
                // Secrets API events name the scope in their parameters; cells name it in their code.
                let mut ids: Vec<i64> = Vec::new();
                {
                    let mut st = self.conn.prepare(
                        "SELECT id, payload_block, payload_index FROM events WHERE service = 'secrets'",
                    )?;
                    let rows: Vec<(i64, i64, i64)> = st
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                        .collect::<rusqlite::Result<_>>()?;
                    let mut reader = crate::payload::BlockReader::default();
                    for (id, block, index) in rows {
                        let params = reader.get(&self.conn, block, index)?.params;
                        let v: serde_json::Value =
                            serde_json::from_str(&params).unwrap_or_default();
                        if v["scope"].as_str() == Some(s.as_str()) {
                            ids.push(id);
                        }
                    }
                }
                let mut ins = self
                    .conn
                    .prepare("INSERT OR IGNORE INTO temp.entity_events(id) VALUES (?1)")?;
                for id in ids {
                    ins.execute([id])?;
                }
                (
                    "INSERT OR IGNORE INTO temp.entity_events SELECT id FROM events
                     WHERE action = 'runCommand' AND command_text LIKE '%secrets.get%'
                       AND (instr(command_text, '\"' || ?1 || '\"') > 0 OR instr(command_text, '''' || ?1 || '''') > 0)",
                    vec![s.clone().into()],
                )
            }
        };
        self.conn
            .execute(sql, rusqlite::params_from_iter(args.iter()))?;
        Ok(())
    }

    fn counted(&self, sql: &str) -> Result<Vec<Counted>> {
        let mut st = self.conn.prepare(sql)?;
        let rows = st.query_map([], |r| {
            Ok(Counted {
                value: r.get(0)?,
                count: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Aggregates over the entity's events. An entity with no event has `events == 0` (not an error:
    /// "never seen" is an answer).
    pub fn entity_facts(&self, e: &Entity) -> Result<EntityFacts> {
        self.select_entity(e)?;
        // The entity's events first (CROSS JOIN fixes SQLite's loop order): a lookup per selected event, never
        // a walk over every event of the case.
        const SEL: &str = "temp.entity_events x CROSS JOIN events e ON e.id = x.id";
        let (events, first, last): (u64, Option<i64>, Option<i64>) = self.conn.query_row(
            &format!("SELECT count(*), min(e.time_ms), max(e.time_ms) FROM {SEL}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let per_day = self.counted(&format!(
            "SELECT strftime('%Y-%m-%d', e.time_ms / 1000, 'unixepoch') d, count(*) FROM {SEL} GROUP BY d ORDER BY d"
        ))?;
        let actions = self.counted(&format!(
            "SELECT e.service || '.' || e.action a, count(*) c FROM {SEL} GROUP BY a ORDER BY c DESC, a"
        ))?;
        let users = self.counted(&format!(
            "SELECT e.user u, count(*) c FROM {SEL} WHERE e.user IS NOT NULL GROUP BY u ORDER BY c DESC, u"
        ))?;
        let notebooks = self.counted(&format!(
            "SELECT coalesce((SELECT p.path FROM notebook_paths p WHERE p.notebook_id = e.notebook_id
                              ORDER BY p.time_ms DESC, p.event_id DESC LIMIT 1), e.notebook_id) n, count(*) c
             FROM {SEL} WHERE e.notebook_id IS NOT NULL GROUP BY n ORDER BY c DESC, n"
        ))?;
        let tables = |access: &str| {
            self.counted(&format!(
                "SELECT t.table_name, count(*) c FROM temp.entity_events x CROSS JOIN cell_tables t ON t.event_id = x.id
                 WHERE t.access = '{access}' GROUP BY t.table_name ORDER BY c DESC, t.table_name"
            ))
        };
        let tables_read = tables("read")?;
        let tables_written = tables("write")?;
        let secret_reads: u64 = self.conn.query_row(
            &format!(
                "SELECT count(*) FROM {SEL} WHERE (e.service = 'secrets' AND e.action = 'getSecret')
                   OR (e.action = 'runCommand' AND e.command_text LIKE '%secrets.get%')"
            ),
            [],
            |r| r.get(0),
        )?;
        let list = DOWNLOAD_ACTIONS
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(",");
        let download_events: Vec<i64> = {
            let mut st = self.conn.prepare(&format!(
                "SELECT e.id FROM {SEL} WHERE e.action IN ({list}) ORDER BY e.time_ms, e.id"
            ))?;
            st.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        let session_ids: Vec<String> = {
            let mut st = self.conn.prepare(
                "SELECT c.session_id FROM temp.entity_events x CROSS JOIN session_cells c ON c.event_id = x.id
                 JOIN sessions s ON s.id = c.session_id GROUP BY c.session_id ORDER BY min(s.start_ms), c.session_id",
            )?;
            st.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        self.conn.execute_batch("DELETE FROM temp.entity_events;")?;
        Ok(EntityFacts {
            events,
            first_seen: first.and_then(time_from_ms),
            last_seen: last.and_then(time_from_ms),
            per_day,
            actions,
            users,
            notebooks,
            tables_read,
            tables_written,
            secret_reads,
            downloads: download_events.len() as u64,
            download_events,
            session_ids,
        })
    }
}
