//! Versioned schema migrations. `PRAGMA user_version` records how many have been applied; each one runs in
//! its own transaction. A case written by a newer nbtrail (higher version) is refused rather than guessed at.

/// Secondary indexes on `events`: (name, definition). A bulk ingest drops them, inserts, and rebuilds
/// them by sorting (inside the same transaction), which is several times faster than maintaining them
/// row by row. Created by migration 1 through [`create_secondary_indexes`].
/// (Time-ordered reads use the natural-key index, which leads with the time: see migration 6.)
pub const SECONDARY_INDEXES: &[(&str, &str)] = &[
    ("events_user", "events(user, time_ms)"),
    // The service rides along (migration 13) so that counting a `service.action` (the case summary's
    // notable events and commands) reads the index alone.
    ("events_action", "events(action, time_ms, service)"),
    // Covers everything sessionization reads (see migrations 7 and 13), so building sessions never visits
    // the table: whether a row was captured by the gateway is an expression that costs one header byte per
    // entry (the integers 0 and 1 take no content bytes); the natural key names a session (its first
    // row's), and looking 800k sessions' keys up one by one in a 10M-event case missed the page cache.
    (
        "events_notebook",
        "events(notebook_id, coalesce(cluster_id, ''), time_ms, action, service, duration_ms, command_id, user,
                shape = 'jupyter_capture', natural_key)
         WHERE notebook_id IS NOT NULL",
    ),
    // The same for SQL warehouse statements (their sessions are per warehouse and user): the condition is
    // the store's `WAREHOUSE_STATEMENT_SQL` (one macro text), and the columns it tests are in the index too
    // (SQLite reads them to check the condition even where the index implies it).
    (
        "events_warehouse",
        concat!(
            "events(cluster_id, coalesce(user, ''), time_ms, command_id, action, duration_ms, natural_key,
                service, notebook_id)
         WHERE ",
            warehouse_statement_sql!()
        ),
    ),
];

/// SQL creating every secondary index that is missing.
pub fn create_secondary_indexes() -> String {
    SECONDARY_INDEXES
        .iter()
        .map(|(name, def)| format!("CREATE INDEX IF NOT EXISTS {name} ON {def};"))
        .collect()
}

/// SQL dropping every secondary index.
pub fn drop_secondary_indexes() -> String {
    SECONDARY_INDEXES
        .iter()
        .map(|(name, _)| format!("DROP INDEX IF EXISTS {name};"))
        .collect()
}

/// The migrations, in order. Append only: never edit one that has shipped.
pub const MIGRATIONS: &[&str] = &[
    // 1: events, their sources, ingest runs, errors, duplicates, notebook paths, sessions, trail gaps.
    r#"
    CREATE TABLE ingest_runs (
        id            INTEGER PRIMARY KEY,
        started_at    TEXT NOT NULL,
        finished_at   TEXT,
        examiner      TEXT NOT NULL,
        host          TEXT NOT NULL,
        tool_version  TEXT NOT NULL,
        inputs        TEXT NOT NULL,      -- JSON array of the paths given
        files         INTEGER NOT NULL DEFAULT 0,
        lines         INTEGER NOT NULL DEFAULT 0,
        events        INTEGER NOT NULL DEFAULT 0,
        duplicates    INTEGER NOT NULL DEFAULT 0,
        errors        INTEGER NOT NULL DEFAULT 0,
        blank_lines   INTEGER NOT NULL DEFAULT 0,
        header_lines  INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE source_files (
        id            INTEGER PRIMARY KEY,
        run_id        INTEGER NOT NULL REFERENCES ingest_runs(id),
        path          TEXT NOT NULL,
        sha256        TEXT NOT NULL,
        size_bytes    INTEGER NOT NULL,
        gzip          INTEGER NOT NULL,
        framing       TEXT NOT NULL,
        lines         INTEGER NOT NULL,
        events        INTEGER NOT NULL,
        duplicates    INTEGER NOT NULL,
        errors        INTEGER NOT NULL,
        blank_lines   INTEGER NOT NULL,
        header_lines  INTEGER NOT NULL
    );
    CREATE INDEX source_files_sha ON source_files(sha256);
    CREATE TABLE events (
        id              INTEGER PRIMARY KEY,
        natural_key     BLOB NOT NULL UNIQUE,
        time_ms         INTEGER NOT NULL,
        user            TEXT,
        workspace_id    TEXT,
        service         TEXT NOT NULL,
        action          TEXT NOT NULL,
        notebook_id     TEXT,
        notebook_path   TEXT,
        cluster_id      TEXT,
        command_id      TEXT,
        language        TEXT,
        command_text    TEXT,
        status          TEXT,
        duration_ms     INTEGER,
        source_ip       TEXT,
        user_agent      TEXT,
        request_id      TEXT,
        web_session_id  TEXT,
        response_status INTEGER,
        response_error  TEXT,
        shape           TEXT NOT NULL,
        source_file_id  INTEGER NOT NULL REFERENCES source_files(id),
        line            INTEGER NOT NULL,
        byte_offset     INTEGER NOT NULL,
        payload_block   INTEGER NOT NULL,  -- payload_blocks(id); written when the block fills, before commit
        payload_index   INTEGER NOT NULL
    );
    -- The wide part of events (request parameters and the raw record verbatim), zstd-compressed in blocks
    -- of consecutive events: see payload.rs.
    CREATE TABLE payload_blocks (
        id              INTEGER PRIMARY KEY,
        data            BLOB NOT NULL
    );
    -- Secondary indexes: see SECONDARY_INDEXES (dropped and rebuilt around bulk loads).
    CREATE TABLE duplicates (
        source_file_id  INTEGER NOT NULL REFERENCES source_files(id),
        line            INTEGER NOT NULL,
        byte_offset     INTEGER NOT NULL,
        event_id        INTEGER NOT NULL REFERENCES events(id)
    );
    CREATE TABLE ingest_errors (
        source_file_id  INTEGER NOT NULL REFERENCES source_files(id),
        line            INTEGER NOT NULL,
        byte_offset     INTEGER NOT NULL,
        message         TEXT NOT NULL
    );
    CREATE TABLE notebook_paths (
        notebook_id   TEXT NOT NULL,
        path          TEXT NOT NULL,
        time_ms       INTEGER NOT NULL,
        event_id      INTEGER NOT NULL REFERENCES events(id),
        action        TEXT NOT NULL
    );
    CREATE INDEX notebook_paths_id ON notebook_paths(notebook_id, time_ms);
    CREATE TABLE sessions (
        id            TEXT PRIMARY KEY,
        notebook_id   TEXT NOT NULL,
        notebook_path TEXT,
        cluster_id    TEXT,
        users         TEXT NOT NULL,      -- JSON array, sorted
        start_ms      INTEGER NOT NULL,
        end_ms        INTEGER NOT NULL,
        cells         INTEGER NOT NULL,
        attached      INTEGER NOT NULL,
        end_reason    TEXT NOT NULL
    );
    CREATE INDEX sessions_start ON sessions(start_ms);
    CREATE TABLE session_cells (
        session_id    TEXT NOT NULL REFERENCES sessions(id),
        seq           INTEGER NOT NULL,
        event_id      INTEGER NOT NULL REFERENCES events(id),
        PRIMARY KEY (session_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX session_cells_event ON session_cells(event_id);
    CREATE TABLE trail_gaps (
        workspace_id  TEXT,
        start_ms      INTEGER NOT NULL,
        end_ms        INTEGER,
        off_event_id  INTEGER NOT NULL REFERENCES events(id),
        on_event_id   INTEGER REFERENCES events(id),
        off_by        TEXT,
        on_by         TEXT
    );
    CREATE TABLE settings (
        key           TEXT PRIMARY KEY,
        value         TEXT NOT NULL
    );
    "#,
    // 2: analyzer runs and findings (triage kept across re-analysis by fingerprint).
    r#"
    CREATE TABLE analysis_runs (
        id            INTEGER PRIMARY KEY,
        at            TEXT NOT NULL,
        examiner      TEXT NOT NULL,
        tool_version  TEXT NOT NULL,
        rules_sha256  TEXT NOT NULL,
        sessions      INTEGER NOT NULL,
        findings      INTEGER NOT NULL,
        diagnostics   INTEGER NOT NULL
    );
    CREATE TABLE findings (
        id              INTEGER PRIMARY KEY,
        run_id          INTEGER NOT NULL REFERENCES analysis_runs(id),
        session_id      TEXT NOT NULL,
        event_id        INTEGER,          -- the cell where the finding is (sink, or source for literals)
        source_event_id INTEGER,          -- the cell where the flow starts
        code            TEXT NOT NULL,
        rule            TEXT NOT NULL,
        severity        TEXT NOT NULL,
        message         TEXT NOT NULL,
        line            INTEGER NOT NULL,
        col             INTEGER NOT NULL,
        end_line        INTEGER NOT NULL,
        end_col         INTEGER NOT NULL,
        trace           TEXT NOT NULL,    -- JSON array of steps {event_id, line, col, end_line, end_col, note}
        fingerprint     TEXT NOT NULL UNIQUE,
        triage          TEXT NOT NULL DEFAULT 'uncategorized'
    );
    CREATE INDEX findings_session ON findings(session_id);
    CREATE INDEX findings_event ON findings(event_id);
    "#,
    // 3: tables each cell reads and writes (derived from its code by nbtrail-search when it indexes the
    // event; idempotent, so a crash between this commit and the index's is repaired by redoing it).
    r#"
    CREATE TABLE cell_tables (
        event_id      INTEGER NOT NULL REFERENCES events(id),
        table_name    TEXT NOT NULL,      -- normalised: lower case, no quotes, parts joined by '.'
        access        TEXT NOT NULL CHECK (access IN ('read', 'write')),
        PRIMARY KEY (event_id, table_name, access)
    ) WITHOUT ROWID;
    CREATE INDEX cell_tables_name ON cell_tables(table_name);
    "#,
    // 4: the custody log: every action that changes or exports case content, hash-chained (custody.rs).
    r#"
    CREATE TABLE custody_log (
        seq           INTEGER PRIMARY KEY,  -- 1, 2, 3, … without gaps
        at            TEXT NOT NULL,        -- RFC 3339 UTC, ms
        examiner      TEXT NOT NULL,
        host          TEXT NOT NULL,
        action        TEXT NOT NULL,        -- ingest, analyze, triage, note, export
        details       TEXT NOT NULL,        -- JSON object
        prev_hash     TEXT NOT NULL,        -- hash of entry seq-1 (64 zeros for the first)
        hash          TEXT NOT NULL         -- SHA-256 over prev_hash and the entry (see custody.rs)
    );
    CREATE TABLE notes (
        id            INTEGER PRIMARY KEY,
        at            TEXT NOT NULL,
        examiner      TEXT NOT NULL,
        target        TEXT NOT NULL,        -- event:ID, session:ID, finding:ID or case
        text          TEXT NOT NULL
    );
    CREATE TRIGGER custody_log_no_update BEFORE UPDATE ON custody_log
        BEGIN SELECT RAISE(ABORT, 'the custody log is append-only'); END;
    CREATE TRIGGER custody_log_no_delete BEFORE DELETE ON custody_log
        BEGIN SELECT RAISE(ABORT, 'the custody log is append-only'); END;
    "#,
    // 5: captured Jupyter messages are found by the request they answer (outputs and replies of a cell).
    r#"
    CREATE INDEX events_capture_command ON events(command_id, time_ms)
        WHERE shape = 'jupyter_capture' AND command_id IS NOT NULL;
    "#,
    // 6: the natural key's unique index leads with the event time (the key hashes the time, so the two
    // identify the same records). Inputs arrive roughly in time order, so checking and inserting keys now
    // touches a few hot index pages instead of a random page per event; the index also serves every
    // time-ordered read, which makes `events_time` redundant. SQLite cannot drop a column's UNIQUE, so the
    // table is rebuilt (ids kept; the migration runs with foreign keys off and checks them before commit).
    // The secondary indexes are recreated after it (see SECONDARY_INDEXES).
    r#"
    CREATE TABLE events_v6 (
        id              INTEGER PRIMARY KEY,
        natural_key     BLOB NOT NULL,
        time_ms         INTEGER NOT NULL,
        user            TEXT,
        workspace_id    TEXT,
        service         TEXT NOT NULL,
        action          TEXT NOT NULL,
        notebook_id     TEXT,
        notebook_path   TEXT,
        cluster_id      TEXT,
        command_id      TEXT,
        language        TEXT,
        command_text    TEXT,
        status          TEXT,
        duration_ms     INTEGER,
        source_ip       TEXT,
        user_agent      TEXT,
        request_id      TEXT,
        web_session_id  TEXT,
        response_status INTEGER,
        response_error  TEXT,
        shape           TEXT NOT NULL,
        source_file_id  INTEGER NOT NULL REFERENCES source_files(id),
        line            INTEGER NOT NULL,
        byte_offset     INTEGER NOT NULL,
        payload_block   INTEGER NOT NULL,
        payload_index   INTEGER NOT NULL
    );
    INSERT INTO events_v6(id, natural_key, time_ms, user, workspace_id, service, action, notebook_id,
        notebook_path, cluster_id, command_id, language, command_text, status, duration_ms, source_ip,
        user_agent, request_id, web_session_id, response_status, response_error, shape, source_file_id, line,
        byte_offset, payload_block, payload_index)
      SELECT id, natural_key, time_ms, user, workspace_id, service, action, notebook_id,
        notebook_path, cluster_id, command_id, language, command_text, status, duration_ms, source_ip,
        user_agent, request_id, web_session_id, response_status, response_error, shape, source_file_id, line,
        byte_offset, payload_block, payload_index
      FROM events ORDER BY id;
    DROP TABLE events;
    ALTER TABLE events_v6 RENAME TO events;
    CREATE UNIQUE INDEX events_key ON events(time_ms, natural_key);
    CREATE INDEX events_capture_command ON events(command_id, time_ms)
        WHERE shape = 'jupyter_capture' AND command_id IS NOT NULL;
    "#,
    // 7: the notebook index also carries the columns sessionization reads (action, service, duration,
    // command id, user), so rebuilding sessions scans the index alone instead of looking up a table row per
    // notebook event (0.53 -> 0.33 s per 500k notebook events). Recreated with its new definition by
    // `create_secondary_indexes`, which runs after every migration.
    r#"
    DROP INDEX IF EXISTS events_notebook;
    "#,
    // 8: conflicts — records whose natural key is in the case with other content (another user, another
    // response…): kept verbatim with the fields that differ, never counted as duplicates or dropped.
    r#"
    CREATE TABLE conflicts (
        id              INTEGER PRIMARY KEY,
        event_id        INTEGER NOT NULL REFERENCES events(id),
        source_file_id  INTEGER NOT NULL REFERENCES source_files(id),
        line            INTEGER NOT NULL,
        byte_offset     INTEGER NOT NULL,
        fields          TEXT NOT NULL,
        raw             TEXT NOT NULL
    );
    CREATE INDEX conflicts_event ON conflicts(event_id);
    ALTER TABLE ingest_runs ADD COLUMN conflicts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE source_files ADD COLUMN conflicts INTEGER NOT NULL DEFAULT 0;
    "#,
    // 9: a SQL warehouse statement finds how it ended (`commandFinish`, by command id) when replayed.
    r#"
    CREATE INDEX events_sql_finish ON events(command_id, time_ms)
        WHERE action = 'commandFinish' AND service = 'databrickssql';
    "#,
    // 10: lineage rows are found by the statement they record (a warehouse statement's cell).
    r#"
    CREATE INDEX events_lineage ON events(command_id) WHERE service = 'lineage';
    "#,
    // 11: case notes have a kind: a note, a question, a conclusion, or a star put on / taken off a target.
    r#"
    ALTER TABLE notes ADD COLUMN kind TEXT NOT NULL DEFAULT 'note';
    "#,
    // 12: a finding carries its event's time, so a timeline of findings (the search view's detection
    // marks) reads the findings table alone: looking 100k+ detections' events up in a 10M-event table took
    // seconds with a cold cache.
    r#"
    ALTER TABLE findings ADD COLUMN time_ms INTEGER;
    UPDATE findings SET time_ms = (SELECT e.time_ms FROM events e WHERE e.id = findings.event_id);
    "#,
    // 13: sessionization read each notebook event's `shape` from the table (the notebook index did not
    // cover it since capture sessions became kernel lifetimes: 5M table lookups in a 10M-event case) and
    // each session's first natural key from the key index, and the summary read each counted event's
    // `service` from the table. Both indexes are recreated with the columns added, and the new warehouse
    // statement index created, by `create_secondary_indexes`, which runs after every migration.
    r#"
    DROP INDEX IF EXISTS events_notebook;
    DROP INDEX IF EXISTS events_action;
    "#,
];
