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
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use nbtrail_analyzer::{Analysis, Cell, Finding, Rules, analyze, cells};
pub use nbtrail_ops::{FindingView, load_rules, views_of_analysis, views_of_stored};
use nbtrail_store::{Case, StoredFinding};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::{BufRead, Write};
use std::path::Path;

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
    detections: Option<&nbtrail_detect::RuleSet>,
    format: Format,
    sarif_file: Option<&Path>,
) -> Result<usize> {
    let mut case = Case::open(case_dir)?;
    let keep = sarif_file.is_some() || format == Format::Sarif;
    let bar = ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} analyzing sessions {pos}/{len} [{wide_bar}] ETA {eta}",
        )
        .expect("template"),
    );
    let done = nbtrail_ops::analyze_case(
        &mut case,
        ids,
        rules,
        rules_sha,
        detections,
        keep,
        &mut |d, t| {
            bar.set_length(t);
            bar.set_position(d);
        },
    );
    bar.finish_and_clear();
    let done = done?;
    let sarif = || {
        let runs: Vec<(String, &Analysis)> = done
            .analyses
            .iter()
            .map(|(id, a)| (format!("session/{id}"), a))
            .collect();
        nbtrail_analyzer::sarif::to_sarif(&runs, rules)
    };
    if let Some(path) = sarif_file {
        std::fs::write(path, serde_json::to_string_pretty(&sarif())? + "\n")
            .with_context(|| format!("{}", path.display()))?;
    }
    // A set: a ten-million-event case has 800k sessions, and a list's `contains` per finding made this
    // filter quadratic (a fifth of `analyze` at 10M).
    let analyzed: std::collections::HashSet<&str> =
        done.session_ids.iter().map(String::as_str).collect();
    let stored_now: Vec<StoredFinding> = case
        .findings(None)?
        .into_iter()
        .filter(|f| analyzed.contains(f.session_id.as_str()))
        .collect();
    let views = views_of_stored(&case, &stored_now)?;
    emit(format, &views, sarif)?;
    eprintln!(
        "analyzed {} session(s), {} cell(s) in {:.2}s: {} finding(s) ({} from event detections over {} event(s)), {} cell(s) with syntax errors; triage kept for {}",
        done.sessions,
        done.cells,
        done.elapsed_ms as f64 / 1000.0,
        done.findings,
        done.detections,
        done.events_evaluated,
        done.diagnostics,
        done.triage_kept
    );
    Ok(views.len())
}

/// What a run over files produced: findings, and whether anything was left unanalyzed.
pub struct FilesOutcome {
    /// Findings reported.
    pub findings: usize,
    /// A file could not be read or a cell was not analyzed (syntax error, parser failure, bounds).
    pub incomplete: bool,
}

/// Something the analysis could not cover: a whole file, or one cell of it.
struct NotAnalyzed {
    file: String,
    /// (cell index, line, column) when it is one cell.
    at: Option<(u32, u32, u32)>,
    message: String,
}

/// Analyzes notebook files (`.ipynb`, Databricks source `.py`, plain `.py`). A file that cannot be read
/// (I/O, not a notebook, an encoding Python would refuse) is reported and the others are still analyzed;
/// every file or cell not analyzed is reported on stderr, in the JSON output (as `not-analyzed` entries),
/// and in SARIF (`invocations[].toolExecutionNotifications`), and makes the run incomplete.
pub fn analyze_files(
    files: &[String],
    rules: &Rules,
    format: Format,
    sarif_file: Option<&Path>,
) -> Result<FilesOutcome> {
    let mut analyses: Vec<(String, Analysis, Vec<Cell>)> = Vec::new();
    let mut missed: Vec<NotAnalyzed> = Vec::new();
    for f in files {
        let cells = std::fs::read(f)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|bytes| {
                if f.ends_with(".ipynb") {
                    let text = String::from_utf8(bytes).map_err(|e| {
                        format!(
                            "notebook is not UTF-8 at byte {}",
                            e.utf8_error().valid_up_to()
                        )
                    })?;
                    cells::from_ipynb(&text).map_err(|e| e.to_string())
                } else {
                    cells::decode_python_source(&bytes).map(|t| cells::from_python_source(&t))
                }
            });
        let cells = match cells {
            Ok(c) => c,
            Err(message) => {
                eprintln!("{}: not analyzed: {}", visible(f), visible(&message));
                missed.push(NotAnalyzed {
                    file: f.clone(),
                    at: None,
                    message,
                });
                continue;
            }
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
            missed.push(NotAnalyzed {
                file: f.clone(),
                at: Some((d.loc.cell, d.loc.line, d.loc.col)),
                message: d.message.clone(),
            });
        }
        analyses.push((f.clone(), a, cells));
    }
    let sarif = || {
        let runs: Vec<(String, &Analysis)> =
            analyses.iter().map(|(n, a, _)| (n.clone(), a)).collect();
        let mut log = nbtrail_analyzer::sarif::to_sarif(&runs, rules);
        let notes: Vec<nbtrail_analyzer::sarif::Notification> = missed
            .iter()
            .map(|m| nbtrail_analyzer::sarif::Notification {
                artifact: m.file.clone(),
                line: m.at.map(|(_, l, _)| l),
                column: m.at.map(|(_, _, c)| c),
                message: match m.at {
                    Some((cell, _, _)) => format!("cell {}: {}", cell + 1, m.message),
                    None => m.message.clone(),
                },
            })
            .collect();
        nbtrail_analyzer::sarif::add_notifications(&mut log, &notes);
        log
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
    if format == Format::Json && !missed.is_empty() {
        // The findings, then one `not-analyzed` entry per file or cell the analysis could not cover.
        let mut out = serde_json::to_value(&views)?;
        if let Some(list) = out.as_array_mut() {
            for m in &missed {
                let (seq, line, col) = m.at.map_or((0, 0, 0), |(c, l, k)| (c + 1, l, k));
                list.push(json!({
                    "rule": NOT_ANALYZED_ENTRY, "rule_name": "not-analyzed", "severity": "info",
                    "message": m.message, "session_id": m.file,
                    "cell": {"seq": seq, "command_id": null},
                    "span": {"line": line, "col": col, "end_line": line, "end_col": col},
                    "trace": [], "status": "uncategorized",
                }));
            }
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        emit(format, &views, sarif)?;
    }
    if !missed.is_empty() {
        eprintln!(
            "analysis incomplete: {} file(s) or cell(s) not analyzed",
            missed.len()
        );
    }
    Ok(FilesOutcome {
        findings: views.len(),
        incomplete: !missed.is_empty(),
    })
}

/// The `rule` of a JSON entry for a file or cell the analysis could not cover.
pub const NOT_ANALYZED_ENTRY: &str = "NBT901";

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
    // One deep stack for every session's analysis (`guard::deep_stack_scope`), not one per line.
    nbtrail_analyzer::guard::deep_stack_scope(|| pipe_sessions(rules))
}

fn pipe_sessions(rules: &Rules) -> Result<usize> {
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
