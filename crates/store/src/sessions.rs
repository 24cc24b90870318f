//! Sessionization: notebook command events grouped into sessions, and verbose-logging gaps.
//!
//! Sessions are keyed by (notebook id, cluster id): an attachment of one notebook to one cluster. A session
//! starts at `attachNotebook` and ends at `detachNotebook`, at the next attach, or when no command starts
//! within the idle gap of the previous activity. Commands without any attach still form sessions — nothing
//! is dropped. Within a group records are ordered by (finish time, attach < command < detach, command id
//! compared numerically when both are numbers, event id), so the order never depends on file order.
//!
//! Both are pure functions over rows ([`sessionize`], [`find_gaps`]); the store feeds them and saves
//! the result.

use sha2::{Digest, Sha256};
use std::cmp::Ordering;

/// The default idle gap that ends a session: two hours.
pub const DEFAULT_IDLE_GAP_MS: i64 = 2 * 60 * 60 * 1000;

/// What a row means for sessionization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RowKind {
    /// `attachNotebook`.
    Attach,
    /// `runCommand`.
    Command,
    /// `detachNotebook`.
    Detach,
}

/// One notebook event, as the sessionizer needs it.
#[derive(Debug, Clone)]
pub struct Row {
    /// Event id in the store.
    pub event_id: i64,
    /// What it is.
    pub kind: RowKind,
    /// Finish time (ms).
    pub time_ms: i64,
    /// Execution time (ms), for commands.
    pub duration_ms: Option<i64>,
    /// `commandId`.
    pub command_id: Option<String>,
    /// Who.
    pub user: Option<String>,
    /// The event's natural key (a session's id hashes its first row's).
    pub natural_key: [u8; 16],
}

impl Row {
    fn start_ms(&self) -> i64 {
        self.time_ms - self.duration_ms.unwrap_or(0).max(0)
    }
}

fn cmp_command_id(a: &Option<String>, b: &Option<String>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => match (a.parse::<u128>(), b.parse::<u128>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.cmp(b),
        },
        (a, b) => a.cmp(b),
    }
}

/// The deterministic order of rows within a notebook/cluster group.
pub fn row_order(a: &Row, b: &Row) -> Ordering {
    a.time_ms
        .cmp(&b.time_ms)
        .then(a.kind.cmp(&b.kind))
        .then_with(|| cmp_command_id(&a.command_id, &b.command_id))
        .then(a.event_id.cmp(&b.event_id))
}

/// A session found in one group, before paths are resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// Stable id (12 hex digits).
    pub id: String,
    /// Event ids of the commands, in order.
    pub cells: Vec<i64>,
    /// Start (attach time or first command's start).
    pub start_ms: i64,
    /// End (detach time or last activity).
    pub end_ms: i64,
    /// Users seen, sorted and unique.
    pub users: Vec<String>,
    /// Began with an attach.
    pub attached: bool,
    /// Why it ended.
    pub end_reason: nbtrail_model::SessionEnd,
}

/// Splits the rows of one (notebook, cluster) group into sessions. `trail_end_ms` is the newest event time
/// in the case: a session still running at the end of the trail is `open`, one idle for longer than the gap
/// before it is `idle`. A session's id hashes its first row's natural key, so it stays stable however the
/// case was loaded.
///
/// With `kernel_lifetime` (a kernel seen by the capture gateway, where the group is one kernel) a session
/// is the kernel's lifetime: a re-attach (the browser reconnecting, a page reload) continues it, idle time
/// does not end it (the kernel and its variables live on), and only a detach — the kernel restarted or
/// shut down — does.
pub fn sessionize(
    notebook_id: &str,
    cluster_id: Option<&str>,
    mut rows: Vec<Row>,
    kernel_lifetime: bool,
    idle_gap_ms: i64,
    trail_end_ms: i64,
) -> Vec<Built> {
    use nbtrail_model::SessionEnd;
    let idle_gap_ms = if kernel_lifetime {
        i64::MAX
    } else {
        idle_gap_ms
    };
    rows.sort_by(row_order);
    let mut out = Vec::new();
    let mut cur: Option<Built> = None;
    let mut last_activity = i64::MIN;
    let new_session = |first: &Row, attached: bool| -> Built {
        let mut h = Sha256::new();
        for part in [
            notebook_id.as_bytes(),
            cluster_id.unwrap_or("").as_bytes(),
            &first.natural_key,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        Built {
            id: hex::encode(&h.finalize()[..6]),
            cells: Vec::new(),
            start_ms: if attached {
                first.time_ms
            } else {
                first.start_ms()
            },
            end_ms: first.time_ms,
            users: Vec::new(),
            attached,
            end_reason: SessionEnd::Open,
        }
    };
    let close = |mut s: Built, reason: SessionEnd, out: &mut Vec<Built>| {
        s.end_reason = reason;
        s.users.sort();
        s.users.dedup();
        out.push(s);
    };
    for row in &rows {
        match row.kind {
            RowKind::Attach if kernel_lifetime && cur.is_some() => {
                if let Some(s) = cur.as_mut() {
                    s.users.extend(row.user.clone());
                    s.end_ms = s.end_ms.max(row.time_ms);
                }
                last_activity = last_activity.max(row.time_ms);
            }
            RowKind::Attach => {
                if let Some(s) = cur.take() {
                    close(s, SessionEnd::Reattach, &mut out);
                }
                let mut s = new_session(row, true);
                s.users.extend(row.user.clone());
                cur = Some(s);
                last_activity = row.time_ms;
            }
            RowKind::Command => {
                if let Some(s) = cur.take() {
                    if row.start_ms().saturating_sub(last_activity) > idle_gap_ms {
                        close(s, SessionEnd::Idle, &mut out);
                    } else {
                        cur = Some(s);
                    }
                }
                let s = cur.get_or_insert_with(|| new_session(row, false));
                s.cells.push(row.event_id);
                s.users.extend(row.user.clone());
                s.end_ms = s.end_ms.max(row.time_ms);
                last_activity = last_activity.max(row.time_ms);
            }
            RowKind::Detach => {
                // A detach with no open session (e.g. the attach predates the trail) closes nothing.
                if let Some(mut s) = cur.take() {
                    if row.time_ms.saturating_sub(last_activity) > idle_gap_ms {
                        close(s, SessionEnd::Idle, &mut out);
                    } else {
                        s.end_ms = row.time_ms;
                        s.users.extend(row.user.clone());
                        close(s, SessionEnd::Detach, &mut out);
                    }
                }
            }
        }
    }
    if let Some(s) = cur {
        let reason = if trail_end_ms.saturating_sub(last_activity) > idle_gap_ms {
            SessionEnd::Idle
        } else {
            SessionEnd::Open
        };
        close(s, reason, &mut out);
    }
    out
}

/// A `workspaceConfEdit` of `enableVerboseAuditLogs`, as the gap finder needs it.
#[derive(Debug, Clone)]
pub struct ConfEdit {
    /// Event id.
    pub event_id: i64,
    /// Time (ms).
    pub time_ms: i64,
    /// Workspace.
    pub workspace_id: Option<String>,
    /// The new value: `false` switches verbose audit logging off.
    pub enabled: bool,
    /// Who.
    pub user: Option<String>,
}

/// A hole in the trail, before storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// Workspace.
    pub workspace_id: Option<String>,
    /// Switched off at.
    pub start_ms: i64,
    /// Switched on again at (`None`: still off at the end of the trail).
    pub end_ms: Option<i64>,
    /// The event that switched it off.
    pub off_event_id: i64,
    /// The event that switched it on.
    pub on_event_id: Option<i64>,
    /// Who switched it off.
    pub off_by: Option<String>,
    /// Who switched it on.
    pub on_by: Option<String>,
}

/// Pairs "off" and "on" edits per workspace (in time order) into gaps. Repeated "off"s extend the same
/// gap; an "on" without a preceding "off" closes nothing.
pub fn find_gaps(mut edits: Vec<ConfEdit>) -> Vec<Gap> {
    edits.sort_by(|a, b| {
        a.workspace_id
            .cmp(&b.workspace_id)
            .then(a.time_ms.cmp(&b.time_ms))
            .then(a.event_id.cmp(&b.event_id))
    });
    let mut out = Vec::new();
    let mut open: Option<Gap> = None;
    for e in edits {
        if let Some(g) = &open
            && g.workspace_id != e.workspace_id
        {
            out.extend(open.take());
        }
        match (e.enabled, open.as_mut()) {
            (false, None) => {
                open = Some(Gap {
                    workspace_id: e.workspace_id,
                    start_ms: e.time_ms,
                    end_ms: None,
                    off_event_id: e.event_id,
                    on_event_id: None,
                    off_by: e.user,
                    on_by: None,
                });
            }
            (false, Some(_)) => {}
            (true, Some(g)) => {
                g.end_ms = Some(e.time_ms);
                g.on_event_id = Some(e.event_id);
                g.on_by = e.user;
                out.extend(open.take());
            }
            (true, None) => {}
        }
    }
    out.extend(open);
    out.sort_by_key(|g| g.start_ms);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nbtrail_model::SessionEnd;

    const H: i64 = 60 * 60 * 1000;

    fn row(id: i64, kind: RowKind, t: i64, cmd: Option<&str>, user: &str) -> Row {
        Row {
            event_id: id,
            kind,
            time_ms: t,
            duration_ms: None,
            command_id: cmd.map(str::to_string),
            user: Some(user.into()),
            natural_key: u128::from(id.unsigned_abs()).to_le_bytes(),
        }
    }

    fn summary(b: &[Built]) -> Vec<(Vec<i64>, SessionEnd, bool)> {
        b.iter()
            .map(|s| (s.cells.clone(), s.end_reason, s.attached))
            .collect()
    }

    /// The Spark job (`integrations/spark/nbtrail_spark/job.py`) computes natural keys and session ids
    /// in Python; its test pins the same two values, so the two implementations cannot drift apart.
    #[test]
    fn natural_key_and_session_id_agree_with_the_spark_job() {
        let params: std::collections::BTreeMap<String, String> = [
            ("notebookId", "3141592653589793"),
            ("commandText", "print(1)"),
            ("é", "ü"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let key = nbtrail_model::NaturalKey::new(
            Some("ServiceMain-abc124"),
            1_714_557_661_000,
            "notebook",
            "runCommand",
            &params,
        );
        assert_eq!(hex::encode(key.0), "7cb9f253ac6c47f91295ea355f109c3b");
        let built = sessionize(
            "3141592653589793",
            Some("0501-123456-abcd1234"),
            vec![Row {
                natural_key: key.0,
                ..row(1, RowKind::Attach, 0, None, "a")
            }],
            false,
            DEFAULT_IDLE_GAP_MS,
            0,
        );
        assert_eq!(built[0].id, "885df3f0bca6");
    }

    #[test]
    fn attach_detach_idle_and_orphans() {
        use RowKind::*;
        let rows = vec![
            row(1, Command, 0, Some("1"), "a"), // before any attach: still a session
            row(2, Attach, 10, None, "a"),
            row(4, Command, 30, Some("10"), "a"),
            row(3, Command, 30, Some("9"), "b"), // same time: command id 9 < 10
            row(5, Detach, 40, None, "a"),
            row(6, Command, 50, Some("11"), "a"), // after detach, no attach
            row(7, Command, 50 + 3 * H, Some("12"), "a"), // idle gap
            row(8, Attach, 60 + 3 * H, None, "c"), // re-attach ends the previous session
        ];
        let s = sessionize("nb", Some("c1"), rows, false, 2 * H, 60 + 3 * H);
        assert_eq!(
            summary(&s),
            vec![
                (vec![1], SessionEnd::Reattach, false),
                (vec![3, 4], SessionEnd::Detach, true),
                (vec![6], SessionEnd::Idle, false),
                (vec![7], SessionEnd::Reattach, false),
                (vec![], SessionEnd::Open, true),
            ]
        );
        assert_eq!(s[1].users, vec!["a".to_string(), "b".to_string()]);
        assert_eq!((s[1].start_ms, s[1].end_ms), (10, 40));
        // Ids are stable and distinct.
        let again = sessionize(
            "nb",
            Some("c1"),
            vec![row(1, Command, 0, Some("1"), "a")],
            false,
            2 * H,
            0,
        );
        assert_eq!(again[0].id, s[0].id);
        assert_ne!(s[0].id, s[1].id);
    }

    #[test]
    fn a_captured_kernel_session_survives_reconnects_and_idle_and_ends_at_restart() {
        use RowKind::*;
        let rows = vec![
            row(1, Attach, 0, None, "a"),
            row(2, Command, 10, Some("m1"), "a"),
            row(3, Attach, 20, None, "a"), // page reload: a new websocket, the same kernel
            row(4, Command, 30 + 5 * H, Some("m2"), "a"), // hours later: the variables are still there
            row(5, Detach, 40 + 5 * H, None, "a"),        // kernel restart
            row(6, Attach, 50 + 5 * H, None, "a"),
            row(7, Command, 60 + 5 * H, Some("m3"), "a"),
        ];
        let s = sessionize("k", Some("k"), rows, true, 2 * H, 100 * H);
        assert_eq!(
            summary(&s),
            vec![
                (vec![2, 4], SessionEnd::Detach, true),
                (vec![7], SessionEnd::Open, true),
            ]
        );
    }

    #[test]
    fn long_running_cell_is_not_idle() {
        let mut r = row(2, RowKind::Command, 5 * H, Some("2"), "a");
        r.duration_ms = Some(4 * H);
        let rows = vec![row(1, RowKind::Command, 0, Some("1"), "a"), r];
        let s = sessionize("nb", None, rows, false, 2 * H, 5 * H);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].cells, vec![1, 2]);
    }

    #[test]
    fn gaps_pair_off_and_on_per_workspace() {
        let e = |id, t, ws: &str, enabled| ConfEdit {
            event_id: id,
            time_ms: t,
            workspace_id: Some(ws.into()),
            enabled,
            user: Some(format!("u{id}")),
        };
        let gaps = find_gaps(vec![
            e(1, 10, "w1", false),
            e(2, 15, "w1", false),
            e(3, 20, "w1", true),
            e(4, 5, "w2", true),
            e(5, 30, "w2", false),
        ]);
        assert_eq!(gaps.len(), 2);
        assert_eq!((gaps[0].start_ms, gaps[0].end_ms), (10, Some(20)));
        assert_eq!(gaps[0].off_by.as_deref(), Some("u1"));
        assert_eq!(gaps[0].on_by.as_deref(), Some("u3"));
        assert_eq!((gaps[1].start_ms, gaps[1].end_ms), (30, None));
    }
}
