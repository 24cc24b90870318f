//! Regression tests for issue 16: one deeply nested cell — which any notebook user can type; Python
//! refuses it but the audit log keeps it — overflowed the stack in the analyzer's tree walkers and aborted
//! the whole analysis (and, through table extraction while indexing, every later search of the case).
//! Each nesting kind is a test; all run on a small thread stack so a walker that recurses on the native
//! stack would still crash here.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

use nbtrail_analyzer::{Cell, NOT_ANALYZED_CODE, Rules, analyze, tables};

/// Runs `f` on a thread with a 256 KiB stack (Rust's default for spawned threads is 2 MiB; the app's
/// workers and tokio's use that or less).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

fn hostile_cells(n: usize) -> Vec<(&'static str, String)> {
    vec![
        ("sum_chain", format!("x = {}", vec!["1"; n].join("+"))),
        ("attribute_chain", format!("x = a{}", ".b".repeat(n))),
        ("call_chain", format!("x = f{}", "()".repeat(n))),
        ("subscript_chain", format!("x = a{}", "[0]".repeat(n))),
        (
            "nested_parens",
            format!("x = {}a{}", "(".repeat(n), ")".repeat(n)),
        ),
        (
            "nested_lists",
            format!("x = {}{}", "[".repeat(n), "]".repeat(n)),
        ),
        ("not_chain", format!("x = {}a", "not ".repeat(n))),
        ("unary_chain", format!("x = {}1", "-".repeat(n))),
        ("power_chain", format!("x = {}", vec!["2"; n].join("**"))),
        ("lambda_chain", format!("x = {}1", "lambda: ".repeat(n))),
        (
            "ternary_chain",
            format!("x = {}0", "1 if c else ".repeat(n)),
        ),
        (
            "string_concat",
            format!("x = {}", vec!["'a'"; n].join(" + ")),
        ),
    ]
}

fn incident() -> Vec<Cell> {
    vec![
        Cell::new(
            "secret",
            "tok = dbutils.secrets.get('prod', 'api')",
            Some("python"),
        ),
        Cell::new("leak", "print(tok)", Some("python")),
    ]
}

#[test]
fn deeply_nested_cells_of_every_kind_are_reported_not_analyzed_and_the_incident_is_still_found() {
    for (kind, code) in hostile_cells(20_000) {
        let result = on_small_stack(move || {
            let mut cells = incident();
            cells.insert(1, Cell::new("hostile", &code, Some("python")));
            let table_refs = tables::tables(&cells[1]);
            (analyze(&cells, &Rules::default_rules()), table_refs)
        });
        let (a, table_refs) = result;
        assert!(table_refs.is_empty(), "{kind}");
        let refused: Vec<_> = a
            .findings
            .iter()
            .filter(|f| f.code == NOT_ANALYZED_CODE)
            .collect();
        assert_eq!(refused.len(), 1, "{kind}: {:?}", a.findings);
        assert_eq!(refused[0].location.cell, 1, "{kind}");
        assert!(
            refused[0].message.contains("nested"),
            "{kind}: {}",
            refused[0].message
        );
        assert!(
            a.findings
                .iter()
                .any(|f| f.code == "NBT001" && f.location.cell == 2),
            "{kind}: the leak in the next cell was not found: {:?}",
            a.findings
        );
    }
}

#[test]
fn nesting_below_the_bound_is_analyzed_on_a_small_stack() {
    // Deep enough to overflow a 256 KiB stack several times over if walked on it, shallow enough to be
    // analyzed: the walkers grow their stack instead.
    for (kind, code) in hostile_cells(1_500) {
        let code = format!("{code}\nprint(dbutils.secrets.get('s', 'k'))\n");
        let (a, _) = on_small_stack(move || {
            let cells = vec![Cell::new("deep", &code, Some("python"))];
            let t = tables::tables(&cells[0]);
            (analyze(&cells, &Rules::default_rules()), t)
        });
        assert!(
            !a.findings.iter().any(|f| f.code == NOT_ANALYZED_CODE),
            "{kind}: {:?}",
            a.findings
        );
        assert!(
            a.findings.iter().any(|f| f.code == "NBT001"),
            "{kind}: {:?}",
            a.findings
        );
    }
}

#[test]
fn deep_sql_is_keyword_scanned_not_parsed() {
    let n = 50_000;
    for sql in [
        format!("SELECT {} FROM prod.a", vec!["1"; n].join("+")),
        format!(
            "SELECT * FROM prod.a WHERE {}",
            vec!["x = 1"; n].join(" AND ")
        ),
        vec!["SELECT * FROM prod.a"; n / 10].join(" UNION ALL "),
    ] {
        let t = on_small_stack(move || tables::tables(&Cell::new("q", &sql, Some("sql"))));
        assert!(t.iter().any(|t| t.name == "prod.a"), "{t:?}");
    }
}

#[test]
fn a_cell_over_the_size_bound_is_reported_and_not_parsed() {
    let code = format!(
        "{}\nprint(dbutils.secrets.get('s', 'k'))\n",
        "# padding\n".repeat(nbtrail_analyzer::guard::MAX_CELL_BYTES / 10 + 1)
    );
    let a = analyze(
        &[Cell::new("big", &code, Some("python"))],
        &Rules::default_rules(),
    );
    assert_eq!(a.findings.len(), 1, "{:?}", a.findings);
    assert_eq!(a.findings[0].code, NOT_ANALYZED_CODE);
    assert!(a.findings[0].message.contains("bytes"));
}
