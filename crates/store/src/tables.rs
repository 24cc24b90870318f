//! Table facts: which cells read and wrote which tables. Derived from each cell's code by `nbtrail-search`
//! when it indexes the event (the store owns the table, not the derivation); inserts are idempotent.

use crate::{Case, Result};
use rusqlite::params;
use serde::Serialize;
use std::collections::BTreeMap;

/// One table as used in the case.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TableUsage {
    /// Normalised name.
    pub name: String,
    /// Cells that read it.
    pub reads: u64,
    /// Cells that wrote it.
    pub writes: u64,
    /// Of the reads and writes, how many are Unity Catalog lineage rows rather than cells' code (facts the
    /// lineage reports itself; see `Case::session_cells` for their join to cells).
    pub via_lineage: u64,
    /// Users whose cells read it, with counts, most first.
    pub readers: Vec<(String, u64)>,
    /// Users whose cells wrote it, with counts, most first.
    pub writers: Vec<(String, u64)>,
    /// Notebooks (paths, else ids) whose cells touched it.
    pub notebooks: Vec<String>,
    /// First use (ms since the epoch, UTC).
    pub first_ms: i64,
    /// Last use.
    pub last_ms: i64,
}

impl Case {
    /// Records table facts `(event_id, table, "read"|"write")` in one transaction; repeats are ignored.
    pub fn add_cell_tables(&mut self, rows: &[(i64, String, &'static str)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO cell_tables(event_id, table_name, access) VALUES (?1, ?2, ?3)",
            )?;
            for (id, name, access) in rows {
                st.execute(params![id, name, access])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The tables of one cell.
    pub fn cell_tables(&self, event_id: i64) -> Result<Vec<(String, String)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT table_name, access FROM cell_tables WHERE event_id = ?1 ORDER BY 1, 2",
        )?;
        let rows = st.query_map([event_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every table with its readers and writers, most used first.
    pub fn table_usage(&self) -> Result<Vec<TableUsage>> {
        let mut st = self.conn.prepare(
            "SELECT t.table_name, t.access, coalesce(e.user, '?'), coalesce(e.notebook_path, e.notebook_id, ''),
                    e.time_ms, e.service = 'lineage'
             FROM cell_tables t JOIN events e ON e.id = t.event_id",
        )?;
        let mut rows = st.query([])?;
        #[derive(Default)]
        struct Acc {
            reads: u64,
            writes: u64,
            via_lineage: u64,
            readers: BTreeMap<String, u64>,
            writers: BTreeMap<String, u64>,
            notebooks: std::collections::BTreeSet<String>,
            first: Option<i64>,
            last: Option<i64>,
        }
        let mut by: BTreeMap<String, Acc> = BTreeMap::new();
        while let Some(r) = rows.next()? {
            let name: String = r.get(0)?;
            let access: String = r.get(1)?;
            let user: String = r.get(2)?;
            let notebook: String = r.get(3)?;
            let t: i64 = r.get(4)?;
            let lineage: bool = r.get(5)?;
            let a = by.entry(name).or_default();
            a.via_lineage += u64::from(lineage);
            if access == "write" {
                a.writes += 1;
                *a.writers.entry(user).or_default() += 1;
            } else {
                a.reads += 1;
                *a.readers.entry(user).or_default() += 1;
            }
            if !notebook.is_empty() {
                a.notebooks.insert(notebook);
            }
            a.first = Some(a.first.map_or(t, |f| f.min(t)));
            a.last = Some(a.last.map_or(t, |l| l.max(t)));
        }
        let ranked = |m: BTreeMap<String, u64>| {
            let mut v: Vec<(String, u64)> = m.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v
        };
        let mut out: Vec<TableUsage> = by
            .into_iter()
            .map(|(name, a)| TableUsage {
                name,
                reads: a.reads,
                writes: a.writes,
                via_lineage: a.via_lineage,
                readers: ranked(a.readers),
                writers: ranked(a.writers),
                notebooks: a.notebooks.into_iter().collect(),
                first_ms: a.first.unwrap_or(0),
                last_ms: a.last.unwrap_or(0),
            })
            .collect();
        out.sort_by(|a, b| {
            (b.reads + b.writes)
                .cmp(&(a.reads + a.writes))
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(out)
    }
}
