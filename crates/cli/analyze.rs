//! `nbtrail analyze` and `nbtrail findings`: runs the analyzer on case sessions, notebook files, or JSON
//! lines from stdin (one session per line, for Spark's `RDD.pipe` and other engines), and shows findings.

use crate::render::visible;
use anyhow::{Context, Result, bail};
use nbtrail_analyzer::{Analysis, Cell, Finding, Rules, analyze, cells};
use nbtrail_store::{Case, SessionFilter, StoredFinding};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

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

/// Analyzes sessions of a case and stores the findings.
pub fn analyze_case(
    case_dir: &Path,
    ids: &[String],
    rules: &Rules,
    rules_sha: &str,
    json_out: bool,
    sarif: Option<&Path>,
) -> Result<()> {
    let mut case = Case::open(case_dir)?;
    let sessions = if ids.is_empty() {
        case.sessions(&SessionFilter::default())?
    } else {
        ids.iter()
            .map(|i| case.session(i))
            .collect::<Result<Vec<_>, _>>()?
    };
    let started = std::time::Instant::now();
    let mut per_session = Vec::new();
    let mut analyses: Vec<(String, Analysis)> = Vec::new();
    let mut diagnostics = 0u64;
    let mut cells_total = 0usize;
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
        analyses.push((s.id.clone(), a));
    }
    let elapsed = started.elapsed();
    let report = case.save_findings(rules_sha, &per_session, diagnostics)?;
    if let Some(path) = sarif {
        let runs: Vec<(String, &Analysis)> = analyses
            .iter()
            .map(|(id, a)| (format!("session/{id}"), a))
            .collect();
        write_sarif(path, &runs, rules)?;
    }
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "report": report, "cells": cells_total, "elapsed_ms": elapsed.as_millis() as u64,
                "findings": case.findings(None)?,
            }))?
        );
    } else {
        let all = case.findings(None)?;
        print_stored(&case, &all)?;
        eprintln!(
            "analyzed {} session(s), {} cell(s) in {:.2}s: {} finding(s), {} cell(s) with syntax errors; triage kept for {}",
            report.sessions,
            cells_total,
            elapsed.as_secs_f64(),
            report.findings,
            report.diagnostics,
            report.triage_kept
        );
    }
    Ok(())
}

fn write_sarif(path: &Path, runs: &[(String, &Analysis)], rules: &Rules) -> Result<()> {
    let v = nbtrail_analyzer::sarif::to_sarif(runs, rules);
    std::fs::write(path, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("{}", path.display()))?;
    Ok(())
}

/// Prints stored findings with the cell's position in its session and the trace.
pub fn print_stored(case: &Case, findings: &[StoredFinding]) -> Result<()> {
    let mut seqs: HashMap<String, HashMap<i64, u64>> = HashMap::new();
    for f in findings {
        if !seqs.contains_key(&f.session_id) {
            let m = case
                .session_cells(&f.session_id)?
                .into_iter()
                .map(|c| (c.event_id, c.seq))
                .collect();
            seqs.insert(f.session_id.clone(), m);
        }
        let m = &seqs[&f.session_id];
        let cell = |e: Option<i64>| {
            e.and_then(|e| m.get(&e))
                .map_or("?".to_string(), |s| s.to_string())
        };
        println!(
            "{} {} {}  session {} cell [{}] {}:{}  ({})",
            f.severity.to_uppercase(),
            f.code,
            f.rule,
            f.session_id,
            cell(f.event_id),
            f.line,
            f.col,
            f.triage
        );
        println!("    {}", visible(&f.message));
        for step in f.trace.as_array().into_iter().flatten() {
            println!(
                "      cell [{}] {}:{}  {}",
                cell(step["event_id"].as_i64()),
                step["line"],
                step["col"],
                visible(step["note"].as_str().unwrap_or(""))
            );
        }
    }
    println!("{} finding(s)", findings.len());
    Ok(())
}

/// Analyzes notebook files (`.ipynb`, Databricks source `.py`, plain `.py`).
pub fn analyze_files(
    files: &[String],
    rules: &Rules,
    json_out: bool,
    sarif: Option<&Path>,
) -> Result<()> {
    let mut analyses: Vec<(String, Analysis, Vec<Cell>)> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| f.clone())?;
        let cells = if f.ends_with(".ipynb") {
            cells::from_ipynb(&text).with_context(|| f.clone())?
        } else {
            cells::from_python_source(&text)
        };
        let a = analyze(&cells, rules);
        analyses.push((f.clone(), a, cells));
    }
    if let Some(path) = sarif {
        let runs: Vec<(String, &Analysis)> =
            analyses.iter().map(|(n, a, _)| (n.clone(), a)).collect();
        write_sarif(path, &runs, rules)?;
    }
    if json_out {
        let v: Vec<serde_json::Value> = analyses
            .iter()
            .map(|(n, a, _)| json!({"file": n, "analysis": a}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut n = 0;
    for (file, a, _) in &analyses {
        for d in &a.diagnostics {
            println!(
                "{}: cell {} {}:{}: {}",
                visible(file),
                d.loc.cell_id,
                d.loc.line,
                d.loc.col,
                visible(&d.message)
            );
        }
        for f in &a.findings {
            n += 1;
            println!(
                "{}: cell {} {}:{}: {} {} [{}] {}",
                visible(file),
                f.location.cell_id,
                f.location.line,
                f.location.col,
                f.severity.to_uppercase(),
                f.code,
                f.rule,
                visible(&f.message)
            );
            for s in &f.trace {
                println!(
                    "    cell {} {}:{}  {}",
                    s.loc.cell_id,
                    s.loc.line,
                    s.loc.col,
                    visible(&s.note)
                );
            }
        }
    }
    println!("{n} finding(s)");
    Ok(())
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
}

/// Reads sessions as JSON lines on stdin (`{"session_id": …, "cells": [{"id", "code", "language"}]}`) and
/// writes one JSON line per input line: the findings, or `{"line": N, "error": …}` for a bad line, so the
/// output stays aligned with the input (as Spark's `pipe` expects).
pub fn analyze_pipe(rules: &Rules) -> Result<()> {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
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
                let sid = s.session_id.unwrap_or(serde_json::Value::Null);
                serde_json::to_writer(
                    &mut out,
                    &PipeOut {
                        session_id: &sid,
                        findings: &a.findings,
                        diagnostics: &a.diagnostics,
                    },
                )?;
            }
            Err(e) => {
                serde_json::to_writer(
                    &mut out,
                    &json!({"line": i + 1, "error": format!("not a session: {e}")}),
                )?;
            }
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}
