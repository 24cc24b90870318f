//! SARIF 2.1.0 output: one run, the rules that fired as `tool.driver.rules`, each finding a `result` with
//! its location (artifact = the session or file, region = line/column in the cell) and a `codeFlow` whose
//! thread flow is the trace. Cells are logical locations (`cell <id>`), since a session is not one file.

use crate::{Analysis, Finding, Loc, Rules};
use serde_json::{Value, json};

fn region(l: &Loc) -> Value {
    json!({
        "startLine": l.line, "startColumn": l.col, "endLine": l.end_line, "endColumn": l.end_col,
        "charOffset": l.start, "charLength": l.end.saturating_sub(l.start),
    })
}

fn location(artifact: &str, l: &Loc, message: Option<&str>) -> Value {
    let mut v = json!({
        "physicalLocation": { "artifactLocation": { "uri": artifact }, "region": region(l) },
        "logicalLocations": [{ "name": format!("cell {}", l.cell_id), "kind": "module" }],
    });
    if let Some(m) = message {
        v["message"] = json!({ "text": m });
    }
    v
}

fn level(severity: &str) -> &'static str {
    match severity {
        "high" => "error",
        "medium" => "warning",
        _ => "note",
    }
}

fn result(artifact: &str, f: &Finding) -> Value {
    let steps: Vec<Value> = f
        .trace
        .iter()
        .map(|s| json!({ "location": location(artifact, &s.loc, Some(&s.note)) }))
        .collect();
    json!({
        "ruleId": f.code,
        "level": level(&f.severity),
        "message": { "text": f.message },
        "locations": [location(artifact, &f.location, None)],
        "codeFlows": [{ "threadFlows": [{ "locations": steps }] }],
        "properties": {
            "rule": f.rule, "sourceKind": f.source_kind, "sinkKind": f.sink_kind, "pysaCode": f.pysa_code,
        },
    })
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
        .collect();
    codes.sort();
    codes.dedup_by(|a, b| a.0 == b.0);
    let driver_rules: Vec<Value> = codes
        .iter()
        .map(|(code, name, sev, pysa)| {
            json!({
                "id": code, "name": name,
                "defaultConfiguration": { "level": level(sev) },
                "properties": { "pysaCode": pysa },
            })
        })
        .collect();
    let results: Vec<Value> = runs
        .iter()
        .flat_map(|(artifact, a)| a.findings.iter().map(move |f| result(artifact, f)))
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "nbtrail-analyzer",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/nbtrail",
                "rules": driver_rules,
            }},
            "results": results,
        }],
    })
}
