//! # nbtrail-analyzer
//!
//! Finds credential leaks, hardcoded credentials, insecure configuration, SQL injection, unsafe
//! deserialization and data exfiltration in notebook sessions. This crate owns:
//!
//! * the front end ([`cells`]): sessions, Databricks source exports, `.ipynb` and `.py` as ordered cells;
//! * parsing Python cells with `ruff_python_parser` (IPython mode: `%magics` and `!shell` lines parse);
//!   a cell with a syntax error gets a [`Diagnostic`] and is skipped — Python would not have run any of
//!   it — while the other cells are analyzed;
//! * the taint engine (`engine.rs`) over all cells as one program, and call-pattern checks;
//! * the rules file ([`rules`]): kinds compatible with Pysa's names, stable codes, validated on load;
//! * the results: [`Finding`]s with the sink's span and a trace of steps back to the source (cell and
//!   line/column in each), per-cell [`CellFacts`] (secrets read, tables, URLs, files written, magics), and
//!   SARIF 2.1.0 ([`sarif`]).
//!
//! It knows nothing about cases or storage: callers hand it cells and get results.

pub mod cells;
mod engine;
pub mod guard;
pub mod rules;
pub mod sarif;
pub mod tables;

pub use cells::{Cell, Lang};
pub use rules::Rules;

use ruff_python_parser::{Mode, ParseOptions};
use serde::Serialize;

/// A span in a cell: 1-based line and column (characters), and byte offsets in the cell's code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Loc {
    /// Index of the cell in the analyzed list.
    pub cell: u32,
    /// The cell's id.
    pub cell_id: String,
    /// Start line.
    pub line: u32,
    /// Start column.
    pub col: u32,
    /// End line.
    pub end_line: u32,
    /// End column (exclusive).
    pub end_col: u32,
    /// Start byte offset in the cell's code.
    pub start: u32,
    /// End byte offset (exclusive).
    pub end: u32,
}

/// One step of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Where.
    pub loc: Loc,
    /// What happened there.
    pub note: String,
}

/// A problem found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable code, e.g. `NBT001`.
    pub code: String,
    /// Stable rule name, e.g. `secret-leak`.
    pub rule: String,
    /// Corresponding Pysa code, if any.
    pub pysa_code: Option<u32>,
    /// `high`, `medium`, `low`.
    pub severity: String,
    /// What is wrong.
    pub message: String,
    /// The sink's span (the tainted argument), or the source for source-located rules.
    pub location: Loc,
    /// Source kind (empty for call patterns).
    pub source_kind: String,
    /// Sink kind, for flows.
    pub sink_kind: Option<String>,
    /// From the source to the sink.
    pub trace: Vec<Step>,
}

/// A cell that could not be parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Where.
    pub loc: Loc,
    /// The parser's message.
    pub message: String,
}

/// What a cell does that an auditor searches by.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CellFacts {
    /// The cell's id.
    pub cell_id: String,
    /// Secrets read, as `scope/key` (`?` when not a constant).
    pub secrets: Vec<String>,
    /// Tables read, normalised ([`tables::tables`]: Python and SQL cells, the search index's facts too).
    pub tables_read: Vec<String>,
    /// Tables written, normalised (the same extractor).
    pub tables_written: Vec<String>,
    /// Outbound URLs passed to calls.
    pub urls: Vec<String>,
    /// Files written (`to_csv`, `save`, `dbutils.fs.put`).
    pub files_written: Vec<String>,
    /// IPython escapes: `%run ./x`, `%pip install y`, `!ls`.
    pub magics: Vec<String>,
}

/// The analysis of one program.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Analysis {
    /// Findings, in the order found (by cell).
    pub findings: Vec<Finding>,
    /// Cells that could not be parsed.
    pub diagnostics: Vec<Diagnostic>,
    /// Per cell.
    pub facts: Vec<CellFacts>,
    /// Cells given.
    pub cells: usize,
    /// Python cells analyzed.
    pub python_cells: usize,
}

/// Code of the built-in rule that reports a cell the analyzer refused to parse (see [`guard`]).
pub const NOT_ANALYZED_CODE: &str = "NBT900";
/// Name of that rule.
pub const NOT_ANALYZED_RULE: &str = "cell-not-analyzed";

/// What became of a Python cell before the engine saw it.
enum Parse {
    Parsed(ruff_python_parser::Parsed<ruff_python_ast::ModModule>),
    /// The parser panicked (contained).
    Panicked,
    /// Over the analyzer's bounds: not parsed.
    Refused(guard::Refusal),
}

/// Analyzes `cells` (in execution order) as one program.
///
/// Cells over the bounds of [`guard`] are not parsed; each is reported as a [`NOT_ANALYZED_CODE`]
/// finding (and a diagnostic), and the cells around it are analyzed as usual.
pub fn analyze(cells: &[Cell], rules: &Rules) -> Analysis {
    let options = ParseOptions::from(Mode::Ipython);
    let parsed: Vec<Option<Parse>> = cells
        .iter()
        .map(|c| {
            engine::is_python(c).then(|| match guard::check(c.body()) {
                Err(refusal) => Parse::Refused(refusal),
                Ok(()) => match parse_python(c.body(), options.clone()) {
                    Some(p) => Parse::Parsed(p),
                    None => Parse::Panicked,
                },
            })
        })
        .collect();
    let analysis = analyze_parsed(cells, rules, &parsed);
    // Dropping a syntax tree recurses once per level; the guard bounded the levels, this gives the room.
    guard::with_deep_stack(|| drop(parsed));
    analysis
}

fn analyze_parsed(cells: &[Cell], rules: &Rules, parsed: &[Option<Parse>]) -> Analysis {
    let mut engine = engine::Engine::new(rules, cells);
    let mut python_cells = 0;
    let mut diagnostics = Vec::new();
    let mut sql_findings = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        if c.lang == Lang::Sql {
            sql_findings.extend(sql_widget_references(i, c, rules));
        }
    }
    let mut refused = Vec::new();
    // Tables come from the one extractor (`tables`: ruff for Python, sqlparser for SQL, names
    // normalised), the same facts the search index records for `table:` — never a second list; Python
    // cells are walked on the tree parsed here, not parsed again.
    let mut cell_tables: Vec<std::collections::BTreeSet<tables::TableRef>> =
        vec![Default::default(); cells.len()];
    for (i, c) in cells.iter().enumerate() {
        if c.lang == Lang::Sql {
            tables::sql_tables(c.body(), &mut cell_tables[i]);
        }
    }
    for (i, p) in parsed.iter().enumerate() {
        let Some(p) = p else { continue };
        python_cells += 1;
        let cell_start =
            || engine::span_loc(i, &cells[i], &engine::LineIndex::new(&cells[i].code), 0, 0);
        let p = match p {
            Parse::Parsed(p) => p,
            Parse::Panicked => {
                diagnostics.push(Diagnostic {
                    loc: cell_start(),
                    message: "the Python parser failed on this cell (internal parser error); cell not analyzed"
                        .into(),
                });
                continue;
            }
            Parse::Refused(why) => {
                let loc = cell_start();
                let message = format!("cell not analyzed: {why}");
                diagnostics.push(Diagnostic {
                    loc: loc.clone(),
                    message: message.clone(),
                });
                refused.push(Finding {
                    code: NOT_ANALYZED_CODE.into(),
                    rule: NOT_ANALYZED_RULE.into(),
                    pysa_code: None,
                    severity: "medium".into(),
                    message,
                    location: loc.clone(),
                    source_kind: String::new(),
                    sink_kind: None,
                    // Findings always trace back to where they start (stores key them by it).
                    trace: vec![Step {
                        loc,
                        note: "the cell as logged; not parsed".into(),
                    }],
                });
                continue;
            }
        };
        if let Some(err) = p.errors().first() {
            let (line, col) = line_col(
                &cells[i].code,
                cells[i].body_offset + usize::from(err.location.start()),
            );
            diagnostics.push(Diagnostic {
                loc: Loc {
                    cell: i as u32,
                    cell_id: cells[i].id.clone(),
                    line,
                    col,
                    end_line: line,
                    end_col: col,
                    start: (cells[i].body_offset + usize::from(err.location.start())) as u32,
                    end: (cells[i].body_offset + usize::from(err.location.end())) as u32,
                },
                message: format!(
                    "syntax error, cell not analyzed (Python would not run it): {}",
                    err.error
                ),
            });
            continue;
        }
        engine.run_cell(i, p.syntax());
        tables::python_tables_in(&p.syntax().body, &mut cell_tables[i]);
    }
    let mut facts = engine.facts;
    for (found, f) in cell_tables.into_iter().zip(facts.iter_mut()) {
        for t in found {
            match t.access {
                tables::Access::Read => f.tables_read.push(t.name),
                tables::Access::Write => f.tables_written.push(t.name),
            }
        }
    }
    let mut findings = engine.findings;
    findings.extend(sql_findings);
    findings.extend(refused);
    findings.sort_by_key(|f| (f.location.cell, f.location.start, f.code.clone()));
    Analysis {
        findings,
        diagnostics,
        facts,
        cells: cells.len(),
        python_cells,
    }
}

/// In a SQL cell, `${name}` / `$name` substitutions and `getArgument('name')` splice widget values into the
/// query text before it runs: SQL injection when the rule set has a UserControlled → SQL rule.
fn sql_widget_references(index: usize, cell: &Cell, rules: &Rules) -> Vec<Finding> {
    use std::sync::OnceLock;
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r#"\$\{\s*[A-Za-z_]\w*\s*\}|\$[A-Za-z_]\w*|getArgument\(\s*['"][^'"]*['"]\s*\)"#,
        )
        .expect("valid regex")
    });
    let Some(rule) = rules.rules.iter().find(|r| {
        !r.at_source
            && r.sources.iter().any(|s| s == "UserControlled")
            && r.sinks.iter().any(|s| s == "SQL")
    }) else {
        return vec![];
    };
    let body = cell.body();
    let lines = engine::LineIndex::new(&cell.code);
    re.find_iter(body)
        .map(|m| {
            let loc = engine::span_loc(
                index,
                cell,
                &lines,
                cell.body_offset + m.start(),
                cell.body_offset + m.end(),
            );
            rule.finding(
                &format!("widget reference `{}`", m.as_str()),
                "a SQL cell",
                loc.clone(),
                "UserControlled",
                Some("SQL"),
                vec![Step {
                    loc,
                    note: format!(
                        "`{}` is replaced by a widget value before the query runs",
                        m.as_str()
                    ),
                }],
            )
        })
        .collect()
}

/// Parses a Python cell (IPython mode). `None` when the parser itself panics: `ruff_python_parser` 0.0.10
/// reaches an `unreachable!` on some malformed escape sequences (found by this crate's property tests,
/// e.g. `{]\r;`). The panic is caught here and its message kept off stderr, so one hostile cell cannot
/// take down an analysis or an ingest.
pub(crate) fn parse_python(
    src: &str,
    options: ParseOptions,
) -> Option<ruff_python_parser::Parsed<ruff_python_ast::ModModule>> {
    use std::cell::Cell as Flag;
    use std::sync::Once;
    thread_local!(static IN_PARSER: Flag<bool> = const { Flag::new(false) });
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_PARSER.with(Flag::get) {
                previous(info);
            }
        }));
    });
    IN_PARSER.with(|f| f.set(true));
    let parsed = std::panic::catch_unwind(|| {
        ruff_python_parser::parse_unchecked(src, options)
            .try_into_module()
            .expect("module mode yields a module")
    });
    IN_PARSER.with(|f| f.set(false));
    parsed.ok()
}

fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    (line, col)
}

#[cfg(test)]
mod parser_panic_tests {
    use super::*;

    /// `ruff_python_parser` 0.0.10 panics on this input; the analyzer must report it, not crash.
    #[test]
    fn a_cell_that_panics_the_parser_is_a_diagnostic_and_later_cells_still_run() {
        let rules = Rules::default_rules();
        let cells = vec![
            Cell::new("bad", "{]\r;", Some("python")),
            Cell::new(
                "ok",
                "k = dbutils.secrets.get('s', 'k')\nprint(k)",
                Some("python"),
            ),
        ];
        let a = analyze(&cells, &rules);
        assert_eq!(a.diagnostics.len(), 1);
        assert!(a.diagnostics[0].message.contains("parser failed"));
        assert_eq!(a.findings.len(), 1, "{:?}", a.findings);
    }
}
