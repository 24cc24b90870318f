//! The custody log: an append-only, hash-chained record of every action that changes or exports case
//! content — ingest runs, analysis runs, triage changes, notes, exports — with who, where and when.
//!
//! Each entry's `hash` is SHA-256 over the previous entry's hash and the entry's canonical form
//! (`seq`, `at`, `examiner`, `host`, `action`, `details` as compact JSON with sorted keys), so editing,
//! deleting, inserting or reordering an entry breaks the chain from that entry on ([`Case::verify_custody`]).
//! Entries are written in the same transaction as the change they record: a change without its entry (or
//! the reverse) cannot be committed. SQLite triggers refuse `UPDATE` and `DELETE` on the table; the chain
//! catches what bypasses SQLite.

use crate::{Case, Result, StoreError, examiner, host};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One custody entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CustodyEntry {
    /// Position in the log, from 1.
    pub seq: i64,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// Who.
    pub examiner: String,
    /// Where.
    pub host: String,
    /// What: `ingest`, `analyze`, `triage`, `note`, `export`.
    pub action: String,
    /// Details (JSON object).
    pub details: serde_json::Value,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// The hash of an entry given its predecessor's.
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at: &str,
    examiner: &str,
    host: &str,
    action: &str,
    details: &serde_json::Value,
) -> String {
    // serde_json's Map is a BTreeMap here (no `preserve_order`), so keys serialize sorted: canonical.
    let canonical = serde_json::json!({
        "seq": seq, "at": at, "examiner": examiner, "host": host, "action": action, "details": details,
    });
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Appends an entry inside the caller's transaction (so it commits or rolls back with the change).
pub(crate) fn append(
    conn: &Connection,
    action: &str,
    details: serde_json::Value,
) -> Result<CustodyEntry> {
    let last: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM custody_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let at = nbtrail_model::format_time(chrono::Utc::now());
    let (examiner, host) = (examiner(), host());
    let hash = entry_hash(&prev_hash, seq, &at, &examiner, &host, action, &details);
    conn.execute(
        "INSERT INTO custody_log(seq, at, examiner, host, action, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            seq,
            at,
            examiner,
            host,
            action,
            details.to_string(),
            prev_hash,
            hash
        ],
    )?;
    Ok(CustodyEntry {
        seq,
        at,
        examiner,
        host,
        action: action.to_string(),
        details,
        prev_hash,
        hash,
    })
}

/// The first problem in a custody chain, if any.
pub fn verify_chain(entries: &[CustodyEntry]) -> std::result::Result<(), String> {
    let mut prev = GENESIS.to_string();
    for (i, e) in entries.iter().enumerate() {
        let want_seq = i as i64 + 1;
        if e.seq != want_seq {
            return Err(format!(
                "entry {}: expected sequence number {want_seq} (an entry is missing or out of order)",
                e.seq
            ));
        }
        if e.prev_hash != prev {
            return Err(format!(
                "entry {}: its prev_hash does not match entry {}'s hash (the chain is broken here)",
                e.seq,
                e.seq - 1
            ));
        }
        let h = entry_hash(
            &prev,
            e.seq,
            &e.at,
            &e.examiner,
            &e.host,
            &e.action,
            &e.details,
        );
        if h != e.hash {
            return Err(format!(
                "entry {} ({} at {}): content does not match its hash (edited after it was written)",
                e.seq, e.action, e.at
            ));
        }
        prev = e.hash.clone();
    }
    Ok(())
}

impl Case {
    /// The custody log, oldest first.
    pub fn custody_log(&self) -> Result<Vec<CustodyEntry>> {
        let mut st = self.conn.prepare(
            "SELECT seq, at, examiner, host, action, details, prev_hash, hash FROM custody_log ORDER BY seq",
        )?;
        let rows = st.query_map([], |r| {
            let details: String = r.get(5)?;
            Ok(CustodyEntry {
                seq: r.get(0)?,
                at: r.get(1)?,
                examiner: r.get(2)?,
                host: r.get(3)?,
                action: r.get(4)?,
                details: serde_json::from_str(&details)
                    .unwrap_or(serde_json::Value::String(details)),
                prev_hash: r.get(6)?,
                hash: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Verifies the whole chain; `Err` names the first bad entry.
    pub fn verify_custody(&self) -> Result<std::result::Result<usize, String>> {
        let log = self.custody_log()?;
        Ok(verify_chain(&log).map(|()| log.len()))
    }

    /// Records an action done outside the store (an export) in the custody log.
    pub fn record_custody(
        &mut self,
        action: &str,
        details: serde_json::Value,
    ) -> Result<CustodyEntry> {
        let tx = self.conn.transaction()?;
        let e = append(&tx, action, details)?;
        tx.commit()?;
        Ok(e)
    }

    /// Changes a finding's triage status (one of [`crate::TRIAGE`]), with an optional note; recorded in the
    /// custody log in the same transaction.
    pub fn set_triage(&mut self, finding_id: i64, status: &str, note: Option<&str>) -> Result<()> {
        if !crate::TRIAGE.contains(&status) {
            return Err(StoreError::NotFound(format!(
                "unknown triage status `{status}` (one of: {})",
                crate::TRIAGE.join(", ")
            )));
        }
        let tx = self.conn.transaction()?;
        let old: Option<(String, String, String)> = tx
            .query_row(
                "SELECT triage, code, fingerprint FROM findings WHERE id = ?1",
                [finding_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((from, code, fingerprint)) = old else {
            return Err(StoreError::NotFound(format!(
                "no finding with id {finding_id}"
            )));
        };
        tx.execute(
            "UPDATE findings SET triage = ?2 WHERE id = ?1",
            params![finding_id, status],
        )?;
        append(
            &tx,
            "triage",
            serde_json::json!({
                "finding_id": finding_id, "code": code, "fingerprint": fingerprint,
                "from": from, "to": status, "note": note,
            }),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Adds an examiner's note on an event, session, finding or the case; recorded in the custody log.
    pub fn add_note(&mut self, target: &str, text: &str) -> Result<i64> {
        self.add_case_note(target, "note", text)
    }

    /// Adds a case note of `kind` ([`NOTE_KINDS`]: a note, a question, a conclusion, or a star put on or
    /// taken off) on `target` (`case`, `event:ID`, `session:ID`, `finding:ID`, which must exist; a session
    /// by id or unique prefix, stored as its full id), in one transaction with its custody entry.
    pub fn add_case_note(&mut self, target: &str, kind: &str, text: &str) -> Result<i64> {
        if !NOTE_KINDS.contains(&kind) {
            return Err(StoreError::Invalid(format!(
                "note kind {kind:?}: one of {}",
                NOTE_KINDS.join(", ")
            )));
        }
        let target = self.note_target(target)?;
        let tx = self.conn.transaction()?;
        let at = nbtrail_model::format_time(chrono::Utc::now());
        tx.execute(
            "INSERT INTO notes(at, examiner, target, text, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![at, examiner(), target, text, kind],
        )?;
        let id = tx.last_insert_rowid();
        append(
            &tx,
            "note",
            serde_json::json!({"note_id": id, "target": target, "kind": kind, "text": text}),
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// The canonical form of a note target, refused when what it names is not in the case.
    fn note_target(&self, target: &str) -> Result<String> {
        let missing =
            |what: &str| StoreError::NotFound(format!("note target {target:?}: no such {what}"));
        if target == "case" {
            return Ok(target.into());
        }
        let (kind, id) = target.split_once(':').ok_or_else(|| {
            StoreError::Invalid(format!(
                "note target {target:?}: expected case, event:ID, session:ID or finding:ID"
            ))
        })?;
        let exists = |sql: &str, id: i64| -> Result<bool> {
            Ok(self.conn.query_row(sql, [id], |r| r.get::<_, i64>(0))? > 0)
        };
        match kind {
            "event" => {
                let n: i64 = id.parse().map_err(|_| missing("event"))?;
                if !exists("SELECT count(*) FROM events WHERE id = ?1", n)? {
                    return Err(missing("event"));
                }
                Ok(format!("event:{n}"))
            }
            "finding" => {
                let n: i64 = id.parse().map_err(|_| missing("finding"))?;
                if !exists("SELECT count(*) FROM findings WHERE id = ?1", n)? {
                    return Err(missing("finding"));
                }
                Ok(format!("finding:{n}"))
            }
            "session" => Ok(format!("session:{}", self.session(id)?.id)),
            _ => Err(StoreError::Invalid(format!(
                "note target {target:?}: expected case, event:ID, session:ID or finding:ID"
            ))),
        }
    }

    /// Case notes, oldest first; of one target when given.
    pub fn notes(&self, target: Option<&str>) -> Result<Vec<NoteRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, at, examiner, target, kind, text FROM notes WHERE ?1 IS NULL OR target = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([target], |r| {
            Ok(NoteRow {
                id: r.get(0)?,
                at: r.get(1)?,
                examiner: r.get(2)?,
                target: r.get(3)?,
                kind: r.get(4)?,
                text: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Targets starred now (their latest star or unstar is a star), in the order they were starred.
    pub fn starred(&self) -> Result<Vec<String>> {
        let mut st = self.conn.prepare(
            "SELECT target FROM notes n WHERE kind = 'star'
               AND id = (SELECT max(id) FROM notes m WHERE m.target = n.target AND m.kind IN ('star', 'unstar'))
             ORDER BY id",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// What a case note can be.
pub const NOTE_KINDS: &[&str] = &["note", "question", "conclusion", "star", "unstar"];

/// One case note.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, ts_rs::TS)]
#[ts(export)]
pub struct NoteRow {
    /// Id.
    pub id: i64,
    /// When (UTC, RFC 3339).
    pub at: String,
    /// Who.
    pub examiner: String,
    /// `case`, `event:ID`, `session:ID`, `finding:ID`.
    pub target: String,
    /// `note`, `question`, `conclusion`, `star`, `unstar`.
    pub kind: String,
    /// The text (empty for stars).
    pub text: String,
}
