//! Findings in the case: what the analyzer found, per session, with the auditor's triage status.
//! Re-analysis replaces the findings of the sessions it covers but keeps the triage of any finding whose
//! fingerprint (rule, session, source and sink spans) is unchanged.

use crate::{Case, Result, examiner};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Triage states: the issue's own (`valid`, `accepted_risk`) and SAPP's, so Pysa users find theirs.
pub const TRIAGE: &[&str] = &[
    "uncategorized",
    "valid",
    "false_positive",
    "accepted_risk",
    "bad_practice",
    "do_not_care",
];

/// One step of a stored finding's trace (stored as JSON in `findings.trace`; the one declaration every
/// reader uses: ops' views, SARIF, `report.html`). Positions are 1-based; a position missing from an old
/// record reads as 1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceStepRecord {
    /// The cell's event id (none for a standalone file's analysis).
    #[serde(default)]
    pub event_id: Option<i64>,
    /// Start line.
    #[serde(default = "one")]
    pub line: u32,
    /// Start column (characters).
    #[serde(default = "one")]
    pub col: u32,
    /// End line.
    #[serde(default = "one")]
    pub end_line: u32,
    /// End column (exclusive).
    #[serde(default = "one")]
    pub end_col: u32,
    /// What happens at this step.
    #[serde(default)]
    pub note: String,
}

fn one() -> u32 {
    1
}

/// A finding as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredFinding {
    /// Id in the case (0 before saving).
    pub id: i64,
    /// Session.
    pub session_id: String,
    /// The cell (event) where the finding is.
    pub event_id: Option<i64>,
    /// The cell (event) where the flow starts.
    pub source_event_id: Option<i64>,
    /// Stable code.
    pub code: String,
    /// Rule name.
    pub rule: String,
    /// `high`, `medium`, `low`.
    pub severity: String,
    /// Message.
    pub message: String,
    /// Line in the cell.
    pub line: u32,
    /// Column in the cell.
    pub col: u32,
    /// End line.
    pub end_line: u32,
    /// End column.
    pub end_col: u32,
    /// The trace: from the source to the sink, each step a place in a cell.
    pub trace: Vec<TraceStepRecord>,
    /// Identity across re-analysis.
    pub fingerprint: String,
    /// Triage status.
    pub triage: String,
    /// When its event happened (ms): filled when read from the case; ignored when saved (the store takes
    /// the event's own time). Not part of any JSON shape.
    #[serde(skip)]
    pub time_ms: Option<i64>,
}

/// What an analysis run did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AnalysisRunReport {
    /// Run id.
    pub run_id: i64,
    /// Sessions analyzed.
    pub sessions: u64,
    /// Findings stored.
    pub findings: u64,
    /// Cells that could not be parsed.
    pub diagnostics: u64,
    /// Findings whose triage was carried over from an earlier run.
    pub triage_kept: u64,
}

impl Case {
    /// Replaces the findings of the given sessions (one transaction), keeping triage by fingerprint.
    pub fn save_findings(
        &mut self,
        rules_sha256: &str,
        per_session: &[(String, Vec<StoredFinding>)],
        diagnostics: u64,
    ) -> Result<AnalysisRunReport> {
        let tx = self.conn.transaction()?;
        let total: usize = per_session.iter().map(|(_, f)| f.len()).sum();
        tx.execute(
            "INSERT INTO analysis_runs(at, examiner, tool_version, rules_sha256, sessions, findings, diagnostics)
             VALUES(?1,?2,?3,?4,?5,?6,?7)",
            params![
                nbtrail_model::format_time(chrono::Utc::now()),
                examiner(),
                env!("CARGO_PKG_VERSION"),
                rules_sha256,
                per_session.len() as i64,
                total as i64,
                diagnostics as i64
            ],
        )?;
        let run_id = tx.last_insert_rowid();
        let mut kept = 0u64;
        {
            let mut old_triage =
                tx.prepare("SELECT fingerprint, triage FROM findings WHERE session_id = ?1")?;
            let mut delete = tx.prepare("DELETE FROM findings WHERE session_id = ?1")?;
            let mut insert = tx.prepare(
                "INSERT INTO findings(run_id, session_id, event_id, source_event_id, code, rule, severity, message,
                     line, col, end_line, end_col, trace, fingerprint, triage, time_ms)
                 VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,
                        (SELECT e.time_ms FROM events e WHERE e.id = ?3))
                 ON CONFLICT(fingerprint) DO NOTHING",
            )?;
            for (session, findings) in per_session {
                let triage: HashMap<String, String> = old_triage
                    .query_map([session], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                delete.execute([session])?;
                for f in findings {
                    let t = triage.get(&f.fingerprint).cloned();
                    kept += u64::from(t.as_deref().is_some_and(|t| t != "uncategorized"));
                    insert.execute(params![
                        run_id,
                        session,
                        f.event_id,
                        f.source_event_id,
                        f.code,
                        f.rule,
                        f.severity,
                        f.message,
                        f.line,
                        f.col,
                        f.end_line,
                        f.end_col,
                        serde_json::to_string(&f.trace).unwrap_or_else(|_| "[]".into()),
                        f.fingerprint,
                        t.unwrap_or_else(|| "uncategorized".into())
                    ])?;
                }
            }
        }
        crate::custody::append(
            &tx,
            "analyze",
            serde_json::json!({
                "analysis_run_id": run_id,
                "rules_sha256": rules_sha256,
                "sessions": per_session.len(),
                "findings": total,
                "triage_kept": kept,
            }),
        )?;
        tx.commit()?;
        Ok(AnalysisRunReport {
            run_id,
            sessions: per_session.len() as u64,
            findings: total as u64,
            diagnostics,
            triage_kept: kept,
        })
    }

    /// Stored findings, optionally of one session, by session then cell then line.
    pub fn findings(&self, session: Option<&str>) -> Result<Vec<StoredFinding>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {FINDING_COLS}
             FROM findings f LEFT JOIN sessions s ON s.id = f.session_id
             WHERE ?1 IS NULL OR f.session_id = ?1
             ORDER BY s.start_ms, f.session_id, f.event_id, f.line, f.col, f.code"
        ))?;
        let rows = st.query_map([session], finding_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The findings in any of `sessions` or at any of `events` (what a selection of evidence carries), in
    /// the order of [`Case::findings`]. Looked up by index through temporary id tables: the cost follows
    /// the selection, not the case (an export of 100,000 events from a ten-million-event case).
    pub fn findings_touching(
        &self,
        sessions: &[&str],
        events: &[i64],
    ) -> Result<Vec<StoredFinding>> {
        crate::fill_temp_ids(&self.conn, "sel_sessions", "TEXT", sessions)?;
        crate::fill_temp_ids(&self.conn, "sel_events", "INTEGER", events)?;
        let mut st = self.conn.prepare(&format!(
            "SELECT {FINDING_COLS}
             FROM findings f LEFT JOIN sessions s ON s.id = f.session_id
             WHERE f.id IN (SELECT f2.id FROM temp.sel_sessions x CROSS JOIN findings f2 ON f2.session_id = x.id
                            UNION SELECT f3.id FROM temp.sel_events y CROSS JOIN findings f3 ON f3.event_id = y.id)
             ORDER BY s.start_ms, f.session_id, f.event_id, f.line, f.col, f.code"
        ))?;
        let rows = st.query_map([], finding_row)?;
        let out = rows.collect::<rusqlite::Result<_>>()?;
        self.conn
            .execute_batch("DELETE FROM temp.sel_sessions; DELETE FROM temp.sel_events;")?;
        Ok(out)
    }

    /// Finding counts by severity (high, medium, low), for the summary.
    pub fn finding_counts(&self) -> Result<Vec<(String, u64)>> {
        // One pass over the findings (severities are validated to these three).
        let (high, medium, low): (i64, i64, i64) = self.conn.query_row(
            "SELECT coalesce(sum(severity = 'high'), 0), coalesce(sum(severity = 'medium'), 0),
                    coalesce(sum(severity = 'low'), 0) FROM findings",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok([("high", high), ("medium", medium), ("low", low)]
            .into_iter()
            .map(|(s, n)| (s.to_string(), n as u64))
            .collect())
    }

    /// Number of analysis runs.
    pub fn analysis_runs(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM analysis_runs", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }
}

const FINDING_COLS: &str =
    "f.id, f.session_id, f.event_id, f.source_event_id, f.code, f.rule, f.severity, f.message,
                    f.line, f.col, f.end_line, f.end_col, f.trace, f.fingerprint, f.triage, f.time_ms";

fn finding_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredFinding> {
    let trace: String = r.get(12)?;
    Ok(StoredFinding {
        id: r.get(0)?,
        session_id: r.get(1)?,
        event_id: r.get(2)?,
        source_event_id: r.get(3)?,
        code: r.get(4)?,
        rule: r.get(5)?,
        severity: r.get(6)?,
        message: r.get(7)?,
        line: r.get(8)?,
        col: r.get(9)?,
        end_line: r.get(10)?,
        end_col: r.get(11)?,
        trace: serde_json::from_str(&trace).unwrap_or_default(),
        fingerprint: r.get(13)?,
        triage: r.get(14)?,
        time_ms: r.get(15)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(session: &str, fp: &str) -> StoredFinding {
        StoredFinding {
            id: 0,
            session_id: session.into(),
            event_id: Some(1),
            source_event_id: Some(1),
            code: "NBT001".into(),
            rule: "secret-leak".into(),
            severity: "high".into(),
            message: "m".into(),
            line: 1,
            col: 1,
            end_line: 1,
            end_col: 2,
            trace: Vec::new(),
            fingerprint: fp.into(),
            triage: "uncategorized".into(),
            time_ms: None,
        }
    }

    #[test]
    fn reanalysis_replaces_findings_and_keeps_triage() {
        let dir = tempfile::tempdir().unwrap();
        let mut case = Case::create(dir.path()).unwrap();
        case.save_findings(
            "r1",
            &[("s1".into(), vec![finding("s1", "a"), finding("s1", "b")])],
            0,
        )
        .unwrap();
        case.conn
            .execute(
                "UPDATE findings SET triage = 'false_positive' WHERE fingerprint = 'a'",
                [],
            )
            .unwrap();
        let r = case
            .save_findings(
                "r2",
                &[("s1".into(), vec![finding("s1", "a"), finding("s1", "c")])],
                0,
            )
            .unwrap();
        assert_eq!(r.triage_kept, 1);
        let got: Vec<(String, String)> = case
            .findings(Some("s1"))
            .unwrap()
            .into_iter()
            .map(|f| (f.fingerprint, f.triage))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), "false_positive".into()),
                ("c".into(), "uncategorized".into())
            ]
        );
        assert_eq!(case.analysis_runs().unwrap(), 2);
    }

    /// Issue 20: a trace is one typed struct for every reader; a stored step missing a position (older
    /// records) reads as 1 everywhere, not 0 in one reader and 1 in another.
    #[test]
    fn trace_steps_have_one_shape_and_one_default() {
        let old: Vec<super::TraceStepRecord> = serde_json::from_str(
            r#"[{"event_id": 7, "note": "secret read"}, {"line": 3, "col": 5}]"#,
        )
        .unwrap();
        assert_eq!(
            (old[0].event_id, old[0].line, old[0].col, old[0].end_col),
            (Some(7), 1, 1, 1)
        );
        assert_eq!(
            (
                old[1].event_id,
                old[1].line,
                old[1].col,
                old[1].note.as_str()
            ),
            (None, 3, 5, "")
        );
        let text = serde_json::to_string(&old).unwrap();
        assert_eq!(
            serde_json::from_str::<Vec<super::TraceStepRecord>>(&text).unwrap(),
            old
        );
    }
}
