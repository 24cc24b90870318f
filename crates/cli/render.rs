//! Human output: tables, the replay view with syntect highlighting, and making untrusted text safe for a
//! terminal (cell code and file names can carry escape sequences; they are shown, never obeyed).

use nbtrail_highlight::{Highlighter, LinesWithEndings, Palette, terminal_escaped};
use nbtrail_model::{Session, format_time};
use nbtrail_store::{CaseSummary, EventRow, IngestReport};
use std::io::IsTerminal;

/// When to colour.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Resolves `auto`.
    pub fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

/// Untrusted text made safe for a terminal: control characters (ESC, CR, BEL, …; not newline or tab) and
/// bidirectional formatting characters become visible `\u{…}` escapes, so that text cannot move the cursor,
/// recolour or retitle the auditor's terminal, or display reordered (see `nbtrail_model::display`).
pub fn visible(s: &str) -> String {
    nbtrail_model::display::escaped(s)
}

fn opt(s: &Option<String>) -> String {
    visible(s.as_deref().unwrap_or("-"))
}

/// The summary printed on stderr after an ingest.
pub fn ingest_summary(r: &IngestReport) {
    eprintln!(
        "ingested {} file(s): {} records = {} new events + {} duplicates + {} conflicts + {} errors ({} blank lines, {} CSV headers skipped) in {:.1}s; {} sessions, {} trail gap(s)",
        r.files,
        r.lines,
        r.events,
        r.duplicates,
        r.conflicts,
        r.error_count,
        r.blank_lines,
        r.header_lines,
        r.elapsed_ms as f64 / 1000.0,
        r.sessions,
        r.trail_gaps
    );
    for e in r.errors.iter().take(20) {
        eprintln!("  {}: {}", visible(&e.location), visible(&e.message));
    }
    if r.error_count > 20 {
        eprintln!(
            "  … {} more: `nbtrail errors --case DIR --run {}`",
            r.error_count - 20,
            r.run_id
        );
    }
    for s in &r.skipped_files {
        eprintln!("  skipped {}: {}", visible(&s.file), s.reason);
    }
}

/// The session table.
pub fn sessions(list: &[nbtrail_ops::SessionWithFindings]) {
    println!(
        "{:<12}  {:<24}  {:<24}  {:>5}  {:<8}  {:>8}  {:>4}  {:>7}  {:<30}  NOTEBOOK",
        "ID", "START (UTC)", "END (UTC)", "CELLS", "ENDED", "FINDINGS", "HIGH", "SECRETS", "USERS"
    );
    for row in list {
        let s = &row.session;
        println!(
            "{:<12}  {:<24}  {:<24}  {:>5}  {:<8}  {:>8}  {:>4}  {:>7}  {:<30}  {}",
            s.id,
            format_time(s.start),
            format_time(s.end),
            s.cells,
            s.end_reason.as_str(),
            row.findings,
            row.high,
            row.secret_reads,
            visible(&s.users.join(",")),
            visible(
                s.notebook_path
                    .as_deref()
                    .unwrap_or(&format!("(id {})", s.notebook_id))
            )
        );
    }
    println!("{} session(s)", list.len());
}

/// Prints code, highlighted when `color` is set. A leading magic line (`%sql`) is shown plain.
fn code(text: &str, lang: Option<&str>, color: bool) {
    let text = visible(text);
    if !color {
        for l in text.lines() {
            println!("    {l}");
        }
        return;
    }
    let mut h = Highlighter::new(&text, lang, Palette::Dark);
    let mut first = true;
    for line in LinesWithEndings::from(&text) {
        if first && line.trim_start().starts_with('%') {
            print!("    \x1b[2m{line}\x1b[0m");
        } else {
            print!("    {}\x1b[0m", terminal_escaped(&h.line(line)));
        }
        first = false;
    }
    if !text.ends_with('\n') {
        println!();
    }
}

/// The replay view.
pub fn replay(r: &nbtrail_ops::Replay, color: bool) -> anyhow::Result<()> {
    let (s, cells, attachments, findings) = (&r.session, &r.cells, &r.attachments, &r.findings);
    println!(
        "session {}  notebook {} (id {})  cluster {}",
        s.id,
        visible(s.notebook_path.as_deref().unwrap_or("?")),
        visible(&s.notebook_id),
        opt(&s.cluster_id)
    );
    println!(
        "{} → {} ({}, {}), users: {}; times are UTC, when each cell finished",
        format_time(s.start),
        format_time(s.end),
        if s.notebook_id
            .starts_with(nbtrail_store::WAREHOUSE_SESSION_PREFIX)
        {
            "SQL warehouse statements of one user, in submit order"
        } else if s.attached {
            "attached"
        } else {
            "no attach event in the trail"
        },
        match s.end_reason {
            nbtrail_model::SessionEnd::Detach => "ended by detach",
            nbtrail_model::SessionEnd::Reattach => "ended by a new attach",
            nbtrail_model::SessionEnd::Idle => "ended by idle gap",
            nbtrail_model::SessionEnd::Open => "still open at the end of the trail",
        },
        visible(&s.users.join(", "))
    );
    if attachments.len() > 1 {
        // A captured kernel's session goes on across reconnects: show each, so a reload is not a gap.
        println!(
            "reconnected {} time(s): {}",
            attachments.len() - 1,
            attachments[1..]
                .iter()
                .map(|a| format!(
                    "{} by {} from {}",
                    format_time(a.time),
                    visible(a.user.as_deref().unwrap_or("?")),
                    visible(a.source_ip.as_deref().unwrap_or("?"))
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    for c in cells {
        let head = format!(
            "[{}] {}  {}  {}  {}  cmd {}  {}",
            c.seq,
            format_time(c.time),
            c.language.as_deref().unwrap_or("?"),
            c.status.as_deref().unwrap_or("?"),
            c.duration_s
                .map_or_else(|| "-".into(), |d| format!("{d:.3}s")),
            opt(&c.command_id),
            opt(&c.user)
        );
        println!();
        if color {
            println!("\x1b[1m{}\x1b[0m", visible(&head));
        } else {
            println!("{}", visible(&head));
        }
        match &c.code {
            Some(t) => code(t, c.language.as_deref(), color),
            None => println!("    (no command text in the log)"),
        }
        if c.silent == Some(true) {
            println!("    (silent execution: not shown as an input, not in the kernel's history)");
        }
        match (c.verified.as_deref(), c.signer.as_deref()) {
            (Some("signed"), Some(k)) => {
                println!("    (capture record signed: checkpoint verified with key {k})");
            }
            (Some("chain"), _) => println!(
                "    (capture record: hash chain verified; no signed checkpoint covers it)"
            ),
            _ => {}
        }
        match c.kind.as_deref() {
            Some("user_expressions") => println!(
                "    (user_expressions: evaluated by the kernel after the cell, not part of its source)"
            ),
            Some("comm") => {
                println!(
                    "    (comm message: data sent to a comm target in the kernel, not a cell)"
                );
            }
            Some("debugger") => {
                println!("    (debugger: expressions the kernel's debugger evaluated, not a cell)");
            }
            Some(other) => println!("    (execution of kind {})", visible(other)),
            None => {}
        }
        if c.rows_read.is_some() || c.rows_produced.is_some() {
            let n = |v: Option<u64>| v.map_or_else(|| "?".into(), |v| v.to_string());
            println!(
                "    (query history: {} rows read, {} rows produced)",
                n(c.rows_read),
                n(c.rows_produced)
            );
        }
        for l in &c.lineage {
            println!(
                "    (lineage: {} {}{}, joined by {}; event {})",
                if l.access == "write" { "wrote" } else { "read" },
                visible(&l.table),
                l.column
                    .as_deref()
                    .map(|col| format!(".{}", visible(col)))
                    .unwrap_or_default(),
                l.confidence,
                l.event_id
            );
        }
        for o in &c.outputs {
            let label = match (&o.output_type[..], &o.name) {
                ("stream", Some(n)) => n.clone(),
                ("input_request", Some(_)) => "password prompt".into(),
                (t, _) => t.replace('_', " "),
            };
            let mimes = o
                .data
                .as_ref()
                .and_then(|d| d.as_object())
                .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
                .filter(|m| !m.is_empty())
                .map(|m| format!(" [{m}]"))
                .unwrap_or_default();
            let cut = if o.truncated {
                " (cut by the gateway)"
            } else {
                ""
            };
            println!("    ── {}{mimes}{cut}", visible(&label));
            for line in o.text.as_deref().unwrap_or("").lines() {
                println!("    │ {}", visible(line));
            }
        }
        for f in findings
            .iter()
            .filter(|f| f.cell.event_id == Some(c.event_id))
        {
            let line = format!(
                "  >> {} {} {} at {}:{}: {}",
                f.severity.to_uppercase(),
                f.rule,
                f.rule_name,
                f.span.line,
                f.span.col,
                visible(&f.message)
            );
            if color {
                println!("\x1b[31m{line}\x1b[0m");
            } else {
                println!("{line}");
            }
        }
    }
    println!("\n{} cell(s)", cells.len());
    Ok(())
}

/// The event listing.
pub fn events(list: &[EventRow], raw: bool) {
    for e in list {
        println!(
            "{}  {:<28}  {:<32}  {}  {}",
            format_time(e.time),
            visible(e.user.as_deref().unwrap_or("-")),
            visible(&format!("{}.{}", e.service, e.action)),
            visible(
                &e.notebook_path
                    .clone()
                    .or_else(|| e.notebook_id.as_ref().map(|n| format!("notebook {n}")))
                    .unwrap_or_default()
            ),
            visible(&e.location)
        );
        if raw {
            println!("    {}", visible(&e.raw));
        }
    }
    println!("{} event(s)", list.len());
}

/// The case overview.
pub fn summary(s: &CaseSummary, sessions: &[Session], findings: Option<&[(String, u64)]>) {
    println!(
        "{} events from {} to {}; {} users, {} notebooks, {} cells run, {} sessions",
        s.events,
        s.first.map_or_else(|| "-".into(), format_time),
        s.last.map_or_else(|| "-".into(), format_time),
        s.users,
        s.notebooks,
        s.commands,
        s.sessions
    );
    println!(
        "{} ingest run(s); {} duplicates skipped, {} conflicts kept (`nbtrail conflicts`), {} records rejected (`nbtrail errors`)",
        s.runs, s.duplicates, s.conflicts, s.errors
    );
    for w in &s.warnings {
        println!("WARNING: {}", visible(w));
    }
    println!("\nnotable events:");
    for n in &s.notable {
        println!("  {:<28} {:>6}", n.category, n.count);
    }
    match findings {
        Some(counts) => {
            let total: u64 = counts.iter().map(|(_, n)| n).sum();
            let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            println!(
                "\nfindings: {total} ({}); list them with `nbtrail findings --case DIR`",
                parts.join(", ")
            );
        }
        None => println!("\nfindings: not analyzed yet; run `nbtrail analyze --case DIR`"),
    }
    println!("\nsessions (newest 10):");
    let start = sessions.len().saturating_sub(10);
    for x in &sessions[start..] {
        println!(
            "  {}  {}  {:>4} cells  {}  {}",
            x.id,
            format_time(x.start),
            x.cells,
            visible(&x.users.join(",")),
            visible(x.notebook_path.as_deref().unwrap_or(&x.notebook_id))
        );
    }
}

/// An entity page (`nbtrail user|notebook|table|scope`) as text; every name from the log shown, not obeyed.
pub fn entity(p: &nbtrail_ops::EntityPage) {
    let f = &p.facts;
    let t = |d: &Option<chrono::DateTime<chrono::Utc>>| {
        d.map_or_else(|| "—".to_string(), nbtrail_model::format_time)
    };
    println!("{} {}", p.kind.replace('_', " "), visible(&p.name));
    if f.events == 0 {
        println!("  never seen in this case");
        return;
    }
    println!(
        "  {} event(s) · first seen {} · last seen {}",
        f.events,
        t(&f.first_seen),
        t(&f.last_seen)
    );
    let max = f.per_day.iter().map(|c| c.count).max().unwrap_or(1).max(1);
    println!("  activity per day (UTC):");
    for c in &f.per_day {
        let bar = "█".repeat(((c.count * 40).div_ceil(max)) as usize);
        println!("    {} {bar} {}", c.value, c.count);
    }
    let list = |title: &str, items: &[nbtrail_store::Counted]| {
        if items.is_empty() {
            return;
        }
        let shown: Vec<String> = items
            .iter()
            .take(10)
            .map(|c| format!("{} ({})", visible(&c.value), c.count))
            .collect();
        let more = items.len().saturating_sub(10);
        let more = if more > 0 {
            format!(" … and {more} more")
        } else {
            String::new()
        };
        println!("  {title}: {}{more}", shown.join(", "));
    };
    list("actions", &f.actions);
    list("users", &f.users);
    list("notebooks", &f.notebooks);
    list("tables read", &f.tables_read);
    list("tables written", &f.tables_written);
    println!(
        "  secret reads: {} · downloads and exports: {}{}",
        f.secret_reads,
        f.downloads,
        if f.download_events.is_empty() {
            String::new()
        } else {
            format!(
                " (events {})",
                f.download_events
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    println!("  sessions ({}):", p.sessions.len());
    for s in &p.sessions {
        println!(
            "    {}  {}  {} — {}  {} cell(s)  {} finding(s), {} high",
            s.session.id,
            visible(
                s.session
                    .notebook_path
                    .as_deref()
                    .unwrap_or(&s.session.notebook_id)
            ),
            nbtrail_model::format_time(s.session.start),
            nbtrail_model::format_time(s.session.end),
            s.session.cells,
            s.findings,
            s.high
        );
    }
    println!("  findings ({}):", p.findings.len());
    for r in &p.findings {
        let v = &r.view;
        let at = if v.session_id.is_empty() {
            "case-wide".to_string()
        } else {
            v.session_id.clone()
        };
        println!(
            "    {} {} [{}] {}  {}",
            v.severity.to_uppercase(),
            v.rule,
            v.rule_name,
            at,
            visible(&v.message)
        );
    }
}
