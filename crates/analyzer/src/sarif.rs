//! SARIF 2.1.0 output: one run, the rules that fired as `tool.driver.rules`, each finding a `result` with
//! its location (artifact = the session or file, region = line/column in the cell) and a `codeFlow` whose
//! thread flow is the trace. Cells are logical locations (`cell <id>`), since a session is not one file.
//!
//! The building blocks ([`log`], [`rule`], [`result`], [`location`], [`Region`]) are public so that every
//! SARIF nbtrail writes has one shape: [`to_sarif`] for fresh analyses (CLI `analyze --sarif`), and the
//! evidence bundle's `findings.sarif` for stored findings (which adds fingerprints and triage).

use crate::{Analysis, Finding, Loc, Rules};
use serde_json::{Value, json};

/// Where in a cell: 1-based lines and columns (end exclusive), and the character range when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Start line.
    pub line: u32,
    /// Start column.
    pub col: u32,
    /// End line.
    pub end_line: u32,
    /// End column.
    pub end_col: u32,
    /// Character offset and length in the cell, when known.
    pub chars: Option<(u32, u32)>,
}

impl From<&Loc> for Region {
    fn from(l: &Loc) -> Region {
        Region {
            line: l.line,
            col: l.col,
            end_line: l.end_line,
            end_col: l.end_col,
            chars: Some((l.start, l.end.saturating_sub(l.start))),
        }
    }
}

fn region(r: &Region) -> Value {
    // SARIF lines and columns are 1-based: a missing position (0) becomes the cell's start.
    let mut v = json!({
        "startLine": r.line.max(1), "startColumn": r.col.max(1),
        "endLine": r.end_line.max(1), "endColumn": r.end_col.max(1),
    });
    if let Some((offset, length)) = r.chars {
        v["charOffset"] = json!(offset);
        v["charLength"] = json!(length);
    }
    v
}

/// A location in artifact `uri` (a session id, a file path, or `nbtrail:event/<id>` for a stored cell),
/// optionally naming the cell as a logical location and carrying a message (a trace step's note).
pub fn location(uri: &str, r: &Region, cell: Option<&str>, message: Option<&str>) -> Value {
    let mut v = json!({
        "physicalLocation": { "artifactLocation": { "uri": uri }, "region": region(r) },
    });
    if let Some(c) = cell {
        v["logicalLocations"] = json!([{ "name": format!("cell {c}"), "kind": "module" }]);
    }
    if let Some(m) = message {
        v["message"] = json!({ "text": m });
    }
    v
}

/// The SARIF level of a severity: high → error, medium → warning, anything else → note.
pub fn level(severity: &str) -> &'static str {
    match severity {
        "high" => "error",
        "medium" => "warning",
        _ => "note",
    }
}

/// A rule of `tool.driver.rules`.
pub fn rule(code: &str, name: &str, severity: &str, pysa_code: Option<u32>) -> Value {
    json!({
        "id": code, "name": name,
        "defaultConfiguration": { "level": level(severity) },
        "properties": { "pysaCode": pysa_code },
    })
}

/// A result: the finding at `at`, its trace (`steps`, from [`location`] with a message) as one code flow.
pub fn result(code: &str, severity: &str, message: &str, at: Value, steps: Vec<Value>) -> Value {
    let steps: Vec<Value> = steps
        .into_iter()
        .map(|l| json!({ "location": l }))
        .collect();
    json!({
        "ruleId": code,
        "level": level(severity),
        "message": { "text": message },
        "locations": [at],
        "codeFlows": [{ "threadFlows": [{ "locations": steps }] }],
    })
}

/// Something the analysis could not cover, for `toolExecutionNotifications`.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The file.
    pub artifact: String,
    /// 1-based line, when it is a place in the file.
    pub line: Option<u32>,
    /// 1-based column.
    pub column: Option<u32>,
    /// What was not analyzed and why.
    pub message: String,
}

/// Records `notes` in every run of `log` as one invocation: `executionSuccessful` is false when there is
/// any, and each is a `toolExecutionNotifications` entry (level `error`) at its file and place.
pub fn add_notifications(log: &mut Value, notes: &[Notification]) {
    let list: Vec<Value> = notes
        .iter()
        .map(|n| {
            let mut loc = json!({"physicalLocation": {"artifactLocation": {"uri": n.artifact}}});
            if let Some(l) = n.line {
                loc["physicalLocation"]["region"] =
                    json!({"startLine": l.max(1), "startColumn": n.column.unwrap_or(1).max(1)});
            }
            json!({"level": "error", "message": {"text": n.message}, "locations": [loc]})
        })
        .collect();
    if let Some(runs) = log["runs"].as_array_mut() {
        for run in runs {
            run["invocations"] = json!([{
                "executionSuccessful": list.is_empty(),
                "toolExecutionNotifications": list,
            }]);
        }
    }
}

/// The SARIF log around `rules` and `results`.
pub fn log(rules: Vec<Value>, results: Vec<Value>) -> Value {
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "nbtrail-analyzer",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/nbtrail",
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

fn finding_result(artifact: &str, f: &Finding) -> Value {
    let steps = f
        .trace
        .iter()
        .map(|s| {
            location(
                artifact,
                &Region::from(&s.loc),
                Some(&s.loc.cell_id),
                Some(&s.note),
            )
        })
        .collect();
    let at = location(
        artifact,
        &Region::from(&f.location),
        Some(&f.location.cell_id),
        None,
    );
    let mut r = result(&f.code, &f.severity, &f.message, at, steps);
    r["properties"] = json!({
        "rule": f.rule, "sourceKind": f.source_kind, "sinkKind": f.sink_kind, "pysaCode": f.pysa_code,
    });
    r
}

/// A SARIF log for several analyzed programs, each named by its artifact (file path or session id).
pub fn to_sarif(runs: &[(String, &Analysis)], rules: &Rules) -> Value {
    let mut codes: Vec<(&str, &str, &str, Option<u32>)> = rules
        .rules
        .iter()
        .map(|r| {
            (
                r.code.as_str(),
                r.name.as_str(),
                r.severity.as_str(),
                r.pysa_code,
            )
        })
        .chain(
            rules
                .patterns
                .iter()
                .map(|p| (p.code.as_str(), p.name.as_str(), p.severity.as_str(), None)),
        )
        .chain(std::iter::once((
            crate::NOT_ANALYZED_CODE,
            crate::NOT_ANALYZED_RULE,
            "medium",
            None,
        )))
        .collect();
    codes.sort();
    codes.dedup_by(|a, b| a.0 == b.0);
    let driver_rules = codes
        .iter()
        .map(|(code, name, sev, pysa)| rule(code, name, sev, *pysa))
        .collect();
    let results = runs
        .iter()
        .flat_map(|(artifact, a)| a.findings.iter().map(move |f| finding_result(artifact, f)))
        .collect();
    log(driver_rules, results)
}
