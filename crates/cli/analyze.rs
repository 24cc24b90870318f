//! `nbtrail analyze` and `nbtrail findings`: runs the analyzer on case sessions, notebook files, or JSON
//! lines from stdin (one session per line, for Spark's `RDD.pipe` and other engines), and shows findings.
//!
//! Output: `--format text` (default: each finding with its cell's code, the span marked, and the trace),
//! `json` (the finding shape below), `sarif` (SARIF 2.1.0 with code flows). `--sarif FILE` also writes SARIF.
//! Exit status of `analyze`: 0 no findings, 1 findings, 2 error — usable as a CI gate.
//!
//! JSON finding: `{id, rule, rule_name, severity, message, session_id, cell:{seq, command_id}, span:{line,
//! col, end_line, end_col}, trace:[{cell:{seq, command_id}, span, label}], status}`; for standalone files
//! `session_id` is the file and `seq` the cell's position.

use crate::render::visible;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use nbtrail_analyzer::{Analysis, Cell, Finding, Rules, analyze, cells};
use nbtrail_store::{Case, SessionFilter, StoredFinding};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Findings with the cells' code and the spans marked.
    Text,
    /// JSON findings.
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

/// A cell as findings name it.
#[derive(Debug, Clone, Serialize)]
pub struct CellRef {
    /// Position in the session (1-based).
    pub seq: u64,
    /// `commandId` (case) or the cell's id (files).
    pub command_id: Option<String>,
}

/// A span within a cell.
#[derive(Debug, Clone, Serialize)]
pub struct Span {
    /// Start line.
    pub line: u32,
    /// Start column.
    pub col: u32,
    /// End line.
    pub end_line: u32,
    /// End column.
    pub end_col: u32,
}

/// A trace step.
#[derive(Debug, Clone, Serialize)]
pub struct TraceStep {
    /// The cell.
    pub cell: CellRef,
    /// Where in it.
    pub span: Span,
    /// What happened there.
    pub label: String,
}

/// The JSON shape of a finding.
#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    /// Id (case) or position in the output (files).
    pub id: i64,
    /// Rule code, e.g. `NBT001`.
    pub rule: String,
    /// Rule name, e.g. `secret-leak`.
    pub rule_name: String,
    /// `high`, `medium`, `low`.
    pub severity: String,
    /// Message.
    pub message: String,
    /// Session id, or the file for standalone files.
    pub session_id: String,
    /// The cell of the finding.
    pub cell: CellRef,
    /// Its span.
    pub span: Span,
    /// From source to sink.
    pub trace: Vec<TraceStep>,
    /// Triage status.
    pub status: String,
    /// The cell's code (text output only).
    #[serde(skip)]
    pub code: String,
}

/// Loads the rules: the defaults (unless `no_default`) then each file in order.
pub fn load_rules(files: &[PathBuf], no_default: bool) -> Result<(Rules, String)> {
    let mut texts: Vec<(String, String)> = Vec::new();
    if !no_default {
        texts.push((
            "default.toml".into(),
            nbtrail_analyzer::rules::DEFAULT_RULES.into(),
        ));
    }
    for f in files {
        let t = std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?;
        texts.push((f.display().to_string(), t));
    }
    if texts.is_empty() {
        bail!("no rules: --no-default-rules needs at least one --rules FILE");
    }
    let mut h = Sha256::new();
    for (_, t) in &texts {
        h.update(t.as_bytes());
    }
    let refs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    Ok((Rules::load(&refs)?, hex::encode(h.finalize())))
}

fn fingerprint(session: &str, f: &Finding) -> String {
    let s = &f.trace[0].loc;
    let mut h = Sha256::new();
    for part in [
        f.code.as_str(),
        session,
        &f.location.cell_id,
        &f.location.start.to_string(),
        &f.location.end.to_string(),
        &s.cell_id,
        &s.start.to_string(),
        &f.source_kind,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

fn stored(session: &str, f: &Finding) -> StoredFinding {
    let ev = |id: &str| id.parse::<i64>().ok();
    StoredFinding {
        id: 0,
        session_id: session.to_string(),
        event_id: ev(&f.location.cell_id),
        source_event_id: ev(&f.trace[0].loc.cell_id),
        code: f.code.clone(),
        rule: f.rule.clone(),
        severity: f.severity.clone(),
        message: f.message.clone(),
        line: f.location.line,
        col: f.location.col,
        end_line: f.location.end_line,
        end_col: f.location.end_col,
        trace: serde_json::Value::Array(
            f.trace
                .iter()
                .map(|s| {
                    json!({"event_id": ev(&s.loc.cell_id), "line": s.loc.line, "col": s.loc.col,
                           "end_line": s.loc.end_line, "end_col": s.loc.end_col, "note": s.note})
                })
                .collect(),
        ),
        fingerprint: fingerprint(session, f),
        triage: "uncategorized".into(),
    }
}

/// A cell's position, command id and code, by event id.
type SessionCellInfo = (u64, Option<String>, String);

/// Views of stored findings, with cells named by their position and command id in their session.
pub fn views_of_stored(case: &Case, findings: &[StoredFinding]) -> Result<Vec<FindingView>> {
    let mut cells: HashMap<String, HashMap<i64, SessionCellInfo>> = HashMap::new();
    let mut out = Vec::new();
    for f in findings {
        if !cells.contains_key(&f.session_id) {
            let m = case
                .session_cells(&f.session_id)?
                .into_iter()
                .map(|c| {
                    (
                        c.event_id,
                        (c.seq, c.command_id, c.code.unwrap_or_default()),
                    )
                })
                .collect();
            cells.insert(f.session_id.clone(), m);
        }
        let m = &cells[&f.session_id];
        let cell = |e: Option<i64>| match e.and_then(|e| m.get(&e)) {
            Some((seq, cmd, _)) => CellRef {
                seq: *seq,
                command_id: cmd.clone(),
            },
            None => CellRef {
                seq: 0,
                command_id: None,
            },
        };
        let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0) as u32;
        out.push(FindingView {
            id: f.id,
            rule: f.code.clone(),
            rule_name: f.rule.clone(),
            severity: f.severity.clone(),
            message: f.message.clone(),
            session_id: f.session_id.clone(),
            cell: cell(f.event_id),
            span: Span {
                line: f.line,
                col: f.col,
                end_line: f.end_line,
                end_col: f.end_col,
            },
            trace: f
                .trace
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| TraceStep {
                    cell: cell(s["event_id"].as_i64()),
                    span: Span {
                        line: n(s, "line"),
                        col: n(s, "col"),
                        end_line: n(s, "end_line"),
                        end_col: n(s, "end_col"),
                    },
                    label: s["note"].as_str().unwrap_or("").to_string(),
                })
                .collect(),
            status: f.triage.clone(),
            code: f
                .event_id
                .and_then(|e| m.get(&e))
                .map(|c| c.2.clone())
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

fn views_of_analysis(file: &str, a: &Analysis, cells: &[Cell], first_id: i64) -> Vec<FindingView> {
    let cell = |i: u32| CellRef {
        seq: i as u64 + 1,
        command_id: cells.get(i as usize).map(|c| c.id.clone()),
    };
    let span = |l: &nbtrail_analyzer::Loc| Span {
        line: l.line,
        col: l.col,
        end_line: l.end_line,
        end_col: l.end_col,
    };
    a.findings
        .iter()
        .enumerate()
        .map(|(k, f)| FindingView {
            id: first_id + k as i64,
            rule: f.code.clone(),
            rule_name: f.rule.clone(),
            severity: f.severity.clone(),
            message: f.message.clone(),
            session_id: file.to_string(),
            cell: cell(f.location.cell),
            span: span(&f.location),
            trace: f
                .trace
                .iter()
                .map(|s| TraceStep {
                    cell: cell(s.loc.cell),
                    span: span(&s.loc),
                    label: s.note.clone(),
                })
                .collect(),
            status: "uncategorized".into(),
            code: cells
                .get(f.location.cell as usize)
                .map(|c| c.code.clone())
                .unwrap_or_default(),
        })
        .collect()
}

/// Prints findings as text: the finding, the cell's code with the span marked, the trace.
pub fn print_text(views: &[FindingView]) {
    for v in views {
        println!(
            "{} {} [{}] {}  cell [{}] (command {}) {}:{}  status: {}",
            v.severity.to_uppercase(),
            v.rule,
            v.rule_name,
            visible(&v.session_id),
            v.cell.seq,
            visible(v.cell.command_id.as_deref().unwrap_or("?")),
            v.span.line,
            v.span.col,
            v.status
        );
        println!("  {}", visible(&v.message));
        for (i, line) in v.code.lines().enumerate() {
            let n = i as u32 + 1;
            println!("  {n:>4} | {}", visible(line));
            if n >= v.span.line && n <= v.span.end_line {
                let from = if n == v.span.line { v.span.col } else { 1 };
                let to = if n == v.span.end_line {
                    v.span.end_col
                } else {
                    line.chars().count() as u32 + 1
                };
                let width = to.saturating_sub(from).max(1) as usize;
                println!(
                    "       | {}{}",
                    " ".repeat(from.saturating_sub(1) as usize),
                    "^".repeat(width)
                );
            }
        }
        for s in &v.trace {
            println!(
                "    cell [{}] {}:{}  {}",
                s.cell.seq,
                s.span.line,
                s.span.col,
                visible(&s.label)
            );
        }
        println!();
    }
    println!("{} finding(s)", views.len());
}

fn emit(
    format: Format,
    views: &[FindingView],
    sarif: impl FnOnce() -> serde_json::Value,
) -> Result<()> {
    match format {
        Format::Text => print_text(views),
        Format::Json => println!("{}", serde_json::to_string_pretty(views)?),
        Format::Sarif => println!("{}", serde_json::to_string_pretty(&sarif())?),
    }
    Ok(())
}

/// Analyzes sessions of a case and stores the findings. Returns the number of findings.
pub fn analyze_case(
    case_dir: &Path,
    ids: &[String],
    rules: &Rules,
    rules_sha: &str,
    format: Format,
    sarif_file: Option<&Path>,
) -> Result<usize> {
    let mut case = Case::open(case_dir)?;
    let sessions = if ids.is_empty() {
        case.sessions(&SessionFilter::default())?
    } else {
        ids.iter()
            .map(|i| case.session(i))
            .collect::<Result<Vec<_>, _>>()?
    };
    let keep = sarif_file.is_some() || format == Format::Sarif;
    let bar = ProgressBar::with_draw_target(
        Some(sessions.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} analyzing sessions {pos}/{len} [{wide_bar}] ETA {eta}",
        )
        .expect("template"),
    );
    let started = std::time::Instant::now();
    let mut per_session = Vec::new();
    let mut analyses: Vec<(String, Analysis)> = Vec::new();
    let (mut diagnostics, mut cells_total) = (0u64, 0usize);
    for s in &sessions {
        let cells: Vec<Cell> = case
            .session_cells(&s.id)?
            .into_iter()
            .map(|c| {
                Cell::new(
                    c.event_id.to_string(),
                    c.code.unwrap_or_default(),
                    c.language.as_deref(),
                )
            })
            .collect();
        cells_total += cells.len();
        let a = analyze(&cells, rules);
        diagnostics += a.diagnostics.len() as u64;
        per_session.push((
            s.id.clone(),
            a.findings
                .iter()
                .map(|f| stored(&s.id, f))
                .collect::<Vec<_>>(),
        ));
        // Whole analyses only when SARIF is wanted: memory stays proportional to the findings.
        if keep {
            analyses.push((s.id.clone(), a));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let report = case.save_findings(rules_sha, &per_session, diagnostics)?;
    let sarif = || {
        let runs: Vec<(String, &Analysis)> = analyses
            .iter()
            .map(|(id, a)| (format!("session/{id}"), a))
            .collect();
        nbtrail_analyzer::sarif::to_sarif(&runs, rules)
    };
    if let Some(path) = sarif_file {
        std::fs::write(path, serde_json::to_string_pretty(&sarif())? + "\n")
            .with_context(|| format!("{}", path.display()))?;
    }
    let stored_now: Vec<StoredFinding> = case
        .findings(None)?
        .into_iter()
        .filter(|f| per_session.iter().any(|(s, _)| *s == f.session_id))
        .collect();
    let views = views_of_stored(&case, &stored_now)?;
    emit(format, &views, sarif)?;
    eprintln!(
        "analyzed {} session(s), {} cell(s) in {:.2}s: {} finding(s), {} cell(s) with syntax errors; triage kept for {}",
        report.sessions,
        cells_total,
        elapsed.as_secs_f64(),
        report.findings,
        report.diagnostics,
        report.triage_kept
    );
    Ok(views.len())
}

/// Analyzes notebook files (`.ipynb`, Databricks source `.py`, plain `.py`). Returns the number of findings.
pub fn analyze_files(
    files: &[String],
    rules: &Rules,
    format: Format,
    sarif_file: Option<&Path>,
) -> Result<usize> {
    let mut analyses: Vec<(String, Analysis, Vec<Cell>)> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| f.clone())?;
        let cells = if f.ends_with(".ipynb") {
            cells::from_ipynb(&text).with_context(|| f.clone())?
        } else {
            cells::from_python_source(&text)
        };
        let a = analyze(&cells, rules);
        for d in &a.diagnostics {
            eprintln!(
                "{}: cell {} {}:{}: {}",
                visible(f),
                d.loc.cell + 1,
                d.loc.line,
                d.loc.col,
                visible(&d.message)
            );
        }
        analyses.push((f.clone(), a, cells));
    }
    let sarif = || {
        let runs: Vec<(String, &Analysis)> =
            analyses.iter().map(|(n, a, _)| (n.clone(), a)).collect();
        nbtrail_analyzer::sarif::to_sarif(&runs, rules)
    };
    if let Some(path) = sarif_file {
        std::fs::write(path, serde_json::to_string_pretty(&sarif())? + "\n")
            .with_context(|| format!("{}", path.display()))?;
    }
    let mut views = Vec::new();
    for (f, a, cells) in &analyses {
        let first = views.len() as i64 + 1;
        views.extend(views_of_analysis(f, a, cells, first));
    }
    emit(format, &views, sarif)?;
    Ok(views.len())
}

#[derive(Deserialize)]
struct PipeCell {
    #[serde(default)]
    id: Option<serde_json::Value>,
    code: String,
    #[serde(default)]
    language: Option<String>,
}

#[derive(Deserialize)]
struct PipeSession {
    #[serde(default)]
    session_id: Option<serde_json::Value>,
    cells: Vec<PipeCell>,
}

#[derive(Serialize)]
struct PipeOut<'a> {
    session_id: &'a serde_json::Value,
    findings: &'a [Finding],
    diagnostics: &'a [nbtrail_analyzer::Diagnostic],
    /// Per-cell facts: secrets read, tables, URLs, files written, magics.
    facts: &'a [nbtrail_analyzer::CellFacts],
}

/// Reads sessions as JSON lines on stdin (`{"session_id": …, "cells": [{"id", "code", "language"}]}`) and
/// writes one JSON line per input line: the findings, or `{"line": N, "error": …}` for a bad line, so the
/// output stays aligned with the input (as Spark's `pipe` expects). Returns the number of findings.
pub fn analyze_pipe(rules: &Rules) -> Result<usize> {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut total = 0;
    for (i, line) in stdin.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<PipeSession>(&line) {
            Ok(s) => {
                let cells: Vec<Cell> = s
                    .cells
                    .into_iter()
                    .enumerate()
                    .map(|(j, c)| {
                        let id = match c.id {
                            Some(serde_json::Value::String(s)) => s,
                            Some(other) => other.to_string(),
                            None => j.to_string(),
                        };
                        Cell::new(id, c.code, c.language.as_deref())
                    })
                    .collect();
                let a = analyze(&cells, rules);
                total += a.findings.len();
                let sid = s.session_id.unwrap_or(serde_json::Value::Null);
                serde_json::to_writer(
                    &mut out,
                    &PipeOut {
                        session_id: &sid,
                        findings: &a.findings,
                        diagnostics: &a.diagnostics,
                        facts: &a.facts,
                    },
                )?;
            }
            Err(e) => serde_json::to_writer(
                &mut out,
                &json!({"line": i + 1, "error": format!("not a session: {e}")}),
            )?,
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(total)
}
