//! What event detections (`nbtrail-detect`, run by `nbtrail-ops`) read from the store: every event in
//! time order with its request parameters, streamed, and which session a cell belongs to.

use crate::payload::BlockReader;
use crate::{Case, Result, StoreError};
use std::collections::{BTreeMap, HashMap};

impl Case {
    /// Calls `f` with every event in time order (then id), with its request parameters as strings,
    /// streaming: memory stays constant whatever the case size.
    pub fn scan_events_by_time<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(crate::EventRow, BTreeMap<String, String>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM {} ORDER BY e.time_ms, e.id",
                crate::query::EVENT_COLS,
                crate::query::EVENT_FROM
            ))
            .map_err(StoreError::from)?;
        let mut rows = st.query([]).map_err(StoreError::from)?;
        let mut reader = BlockReader::default();
        while let Some(r) = rows.next().map_err(StoreError::from)? {
            let (event, block, index) = crate::query::event_row(r).map_err(StoreError::from)?;
            let text = reader.get(&self.conn, block, index)?.params;
            let params =
                match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text) {
                    Ok(m) => m
                        .into_iter()
                        .map(|(k, v)| {
                            let v = match v {
                                serde_json::Value::String(s) => s,
                                other => other.to_string(),
                            };
                            (k, v)
                        })
                        .collect(),
                    Err(_) => BTreeMap::new(),
                };
            f(event, params)?;
        }
        Ok(())
    }

    /// The session each of `event_ids` is a cell of (ids that are no cell are absent).
    pub fn sessions_of_cells(&self, event_ids: &[i64]) -> Result<HashMap<i64, String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT session_id FROM session_cells WHERE event_id = ?1 LIMIT 1")?;
        let mut out = HashMap::new();
        for id in event_ids {
            let mut rows = st.query([id])?;
            if let Some(r) = rows.next()? {
                out.insert(*id, r.get(0)?);
            }
        }
        Ok(out)
    }
}
