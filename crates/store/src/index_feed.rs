//! What the search index reads from the store, as typed queries: the store is the only crate that speaks
//! SQL (issue 20). `nbtrail-search` indexes the events [`Case::scan_events_after`] hands it, resolves hits
//! with [`Case::hit_row`], and answers `rule:` / `session:` with the lookups here.

use crate::payload::BlockReader;
use crate::{Case, Result, StoreError};
use nbtrail_model::Shape;
use rusqlite::OptionalExtension;
use std::collections::HashMap;

/// One event as the index needs it: the event's listing row (its normalized fields; `params` and `raw`
/// are left empty — the index asks for parameters only where it needs them) and where its payload is.
#[derive(Debug, Clone)]
pub struct IndexRow {
    /// The event as listed (its fields declared once, in [`nbtrail_model::EventFields`]).
    pub event: crate::EventRow,
    /// Where its payload (raw record, parameters) is: see [`Case::payload_params`].
    pub payload: (i64, i64),
}

/// An indexed event as a search hit shows it.
#[derive(Debug, Clone)]
pub struct HitRow {
    /// Time (ms).
    pub time_ms: i64,
    /// User.
    pub user: Option<String>,
    /// `service.action`.
    pub action: String,
    /// The event's notebook path, else its notebook's latest known path.
    pub notebook_path: Option<String>,
    /// Code; for a captured output (which has none), the output's parameters are in `output_params`.
    pub command_text: Option<String>,
    /// Response error.
    pub response_error: Option<String>,
    /// The session of the cell (a captured output or reply: of the cell it answers).
    pub session_id: Option<String>,
    /// A captured Jupyter message's parameters (its output text), when it has no code.
    pub output_params: Option<String>,
}

impl Case {
    /// The highest event id (0 when the case is empty).
    pub fn max_event_id(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))?)
    }

    /// How many events have an id above `after`.
    pub fn count_events_after(&self, after: i64) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM events WHERE id > ?1", [after], |r| {
                r.get(0)
            })?)
    }

    /// Calls `f` with every event whose id is above `after`, in id order, streaming (constant memory).
    pub fn scan_events_after<E: From<StoreError>>(
        &self,
        after: i64,
        mut f: impl FnMut(IndexRow) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM {} WHERE e.id > ?1 ORDER BY e.id",
                crate::query::EVENT_COLS,
                crate::query::EVENT_FROM
            ))
            .map_err(StoreError::from)?;
        let mut rows = st.query([after]).map_err(StoreError::from)?;
        while let Some(r) = rows.next().map_err(StoreError::from)? {
            let (event, block, index) = crate::query::event_row(r).map_err(StoreError::from)?;
            f(IndexRow {
                event,
                payload: (block, index),
            })?;
        }
        Ok(())
    }

    /// An event's request parameters (JSON text), read through `reader`'s cache of payload blocks.
    pub fn payload_params(
        &self,
        reader: &mut BlockReader,
        (block, index): (i64, i64),
    ) -> Result<String> {
        Ok(reader.get(&self.conn, block, index)?.params)
    }

    /// Every path each notebook id has had, oldest first (a path taken again moves to the end).
    pub fn notebook_path_history(&self) -> Result<HashMap<String, Vec<String>>> {
        let mut st = self
            .conn
            .prepare("SELECT notebook_id, path FROM notebook_paths ORDER BY time_ms, event_id")?;
        let mut rows = st.query([])?;
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let path: String = r.get(1)?;
            let v = out.entry(id).or_default();
            v.retain(|p| p != &path);
            v.push(path);
        }
        Ok(out)
    }

    /// Events with a finding whose code matches `glob` (`*` and `?` wildcards).
    pub fn events_with_finding_code(&self, glob: &str) -> Result<Vec<i64>> {
        let like = glob.replace('*', "%").replace('?', "_");
        let mut st = self.conn.prepare(
            "SELECT DISTINCT event_id FROM findings WHERE event_id IS NOT NULL AND code LIKE ?1",
        )?;
        let ids = st.query_map([like], |r| r.get::<_, i64>(0))?;
        Ok(ids.collect::<rusqlite::Result<_>>()?)
    }

    /// The cells of the sessions whose id starts with `prefix`.
    pub fn events_in_sessions_with_prefix(&self, prefix: &str) -> Result<Vec<i64>> {
        let like = format!("{}%", prefix.replace(['%', '_'], ""));
        let mut st = self
            .conn
            .prepare("SELECT event_id FROM session_cells WHERE session_id LIKE ?1")?;
        let ids = st.query_map([like], |r| r.get::<_, i64>(0))?;
        Ok(ids.collect::<rusqlite::Result<_>>()?)
    }

    /// Changes whenever the stored findings' codes can have: findings are written only by an analysis run
    /// (each a new `analysis_runs` row; triage does not count). Two index lookups, so the search index can
    /// ask before every search whether its cache of finding codes still holds.
    pub fn findings_version(&self) -> Result<String> {
        Ok(self.conn.query_row(
            "SELECT (SELECT coalesce(max(id), 0) FROM analysis_runs) || ':' || (SELECT coalesce(max(id), 0) FROM findings)",
            [],
            |r| r.get(0),
        )?)
    }

    /// Calls `f(event id, finding code)` for each finding at an event (an event with several findings of one
    /// code comes several times), in no particular order: one pass over the findings, no sort, no copies.
    pub fn for_each_finding_code(&self, mut f: impl FnMut(i64, &str)) -> Result<()> {
        let mut st = self
            .conn
            .prepare("SELECT event_id, code FROM findings WHERE event_id IS NOT NULL")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let code = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
            f(id, code);
        }
        Ok(())
    }

    /// An event as a hit shows it; `None` when the case has no such event.
    pub fn hit_row(&self, id: i64) -> Result<Option<HitRow>> {
        let row = self
            .conn
            .query_row(
                "SELECT e.time_ms, e.user, e.service || '.' || e.action,
                        coalesce(e.notebook_path,
                                 (SELECT path FROM notebook_paths p WHERE p.notebook_id = e.notebook_id
                                  ORDER BY p.time_ms DESC LIMIT 1)),
                        e.command_text, e.response_error,
                        coalesce((SELECT session_id FROM session_cells s WHERE s.event_id = e.id LIMIT 1),
                                 -- a captured output or reply belongs to the session of the cell it answers
                                 (SELECT s.session_id FROM events c JOIN session_cells s ON s.event_id = c.id
                                  WHERE e.shape = 'jupyter_capture' AND c.shape = 'jupyter_capture'
                                    AND c.command_id = e.command_id AND c.action = 'runCommand' LIMIT 1)),
                        e.shape, e.payload_block, e.payload_index
                 FROM events e WHERE e.id = ?1",
                [id],
                |r| {
                    Ok((
                        HitRow {
                            time_ms: r.get(0)?,
                            user: r.get(1)?,
                            action: r.get(2)?,
                            notebook_path: r.get(3)?,
                            command_text: r.get(4)?,
                            response_error: r.get(5)?,
                            session_id: r.get(6)?,
                            output_params: None,
                        },
                        r.get::<_, String>(7)?,
                        (r.get::<_, i64>(8)?, r.get::<_, i64>(9)?),
                    ))
                },
            )
            .optional()?;
        let Some((mut hit, shape, payload)) = row else {
            return Ok(None);
        };
        if hit.command_text.is_none()
            && shape == Shape::Capture.as_str()
            && hit.action.starts_with("jupyter.")
        {
            hit.output_params = Some(self.payload_params(&mut BlockReader::default(), payload)?);
        }
        Ok(Some(hit))
    }
}
