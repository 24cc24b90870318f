//! Tables a cell reads and writes, for table search ("everything touching `prod.customers`").
//!
//! * SQL cells (`%sql`, SQL-language commands) and `spark.sql("…")` literals are parsed with `sqlparser`
//!   (Databricks dialect). Write targets come from the statement kind (`INSERT`, `CREATE TABLE/VIEW … AS`,
//!   `MERGE INTO`, `UPDATE`, `DELETE`, `TRUNCATE`, `DROP`); every other relation is a read; CTE names are
//!   not tables. Widget substitutions (`${x}`, `{{x}}`) are replaced by a placeholder before parsing. SQL
//!   the parser rejects (Databricks extensions it does not know) falls back to a conservative
//!   `FROM`/`JOIN`/`INTO`/`TABLE` keyword scan, so a cell is never silently table-less.
//! * Python cells are parsed with the analyzer's parser (`ruff_python_parser`, IPython mode) and their
//!   calls matched: `spark.table`, `spark.read.table`, `readStream.table`, `DeltaTable.forName`,
//!   `saveAsTable`, `insertInto`, `writeStream.toTable`, `spark.read.jdbc` / `df.write.jdbc`, and the JDBC
//!   `dbtable` option (`.option("dbtable", …)`, `.options(dbtable=…)`), whose direction comes from the
//!   `read`/`write` in the call chain.
//!
//! Names are normalised so that spellings of one table compare equal: quotes and backticks removed,
//! lower-cased, parts joined with `.` (`` `PROD`.`Customers` `` → `prod.customers`).

use crate::cells::{Cell, Lang};
use regex::Regex;
use ruff_python_ast::visitor::{Visitor, walk_expr};
use ruff_python_ast::{self as ast, Expr};
use ruff_python_parser::{Mode, ParseOptions};
use serde::Serialize;
use sqlparser::ast::{ObjectName, Statement, TableObject, visit_relations};
use sqlparser::dialect::DatabricksDialect;
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::OnceLock;

/// Whether a cell reads or writes a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Reads it.
    Read,
    /// Writes (creates, inserts into, updates, deletes from, drops) it.
    Write,
}

impl Access {
    /// `read` / `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// One table a cell touches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TableRef {
    /// Normalised name (`catalog.schema.table`, as qualified as the code wrote it).
    pub name: String,
    /// Read or write.
    pub access: Access,
}

/// The tables `cell` reads and writes, sorted and without repeats.
pub fn tables(cell: &Cell) -> Vec<TableRef> {
    let mut out = BTreeSet::new();
    match cell.lang {
        Lang::Sql => sql_tables(cell.body(), &mut out),
        Lang::Python => python_tables(cell.body(), &mut out),
        Lang::Markdown | Lang::Other => {}
    }
    out.into_iter().collect()
}

/// Normalises a table name: quotes and backticks removed, lower case, whitespace around dots dropped.
pub fn normalize_table_name(name: &str) -> String {
    name.split('.')
        .map(|p| {
            p.trim_matches(|c: char| {
                c.is_whitespace() || c == '`' || c == '"' || c == '\'' || c == '[' || c == ']'
            })
            .to_lowercase()
        })
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

fn object_name(n: &ObjectName) -> String {
    n.0.iter()
        .map(|p| match p.as_ident() {
            Some(i) => i.value.to_lowercase(),
            None => p.to_string().to_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn widget_placeholders(sql: &str) -> std::borrow::Cow<'_, str> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"\$\{[^}]*\}|\{\{[^}]*\}\}|\$[A-Za-z_]\w*|:[A-Za-z_]\w*\b")
            .expect("valid regex")
    });
    re.replace_all(sql, "nbtrail_widget")
}

/// Collects CTE names and relations of one statement.
#[derive(Default)]
struct SqlVisitor {
    ctes: BTreeSet<String>,
    relations: Vec<String>,
}

impl sqlparser::ast::Visitor for SqlVisitor {
    type Break = ();
    fn pre_visit_query(&mut self, q: &sqlparser::ast::Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_lowercase());
            }
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
        self.relations.push(object_name(r));
        ControlFlow::Continue(())
    }
}

fn relations_in<V: sqlparser::ast::Visit>(v: &V) -> Vec<String> {
    let mut names = Vec::new();
    let _ = visit_relations(v, |r| {
        names.push(object_name(r));
        ControlFlow::<()>::Continue(())
    });
    names
}

fn write_targets(st: &Statement) -> Vec<String> {
    match st {
        Statement::Insert(i) => match &i.table {
            TableObject::TableName(n) => vec![object_name(n)],
            _ => vec![],
        },
        Statement::CreateTable(c) => vec![object_name(&c.name)],
        Statement::CreateView(v) => vec![object_name(&v.name)],
        Statement::Update(u) => relations_in(&u.table),
        Statement::Delete(d) => {
            let mut w: Vec<String> = d.tables.iter().map(object_name).collect();
            w.extend(relations_in(&d.from));
            w
        }
        Statement::Merge(m) => relations_in(&m.table),
        Statement::Truncate(t) => t.table_names.iter().map(|t| object_name(&t.name)).collect(),
        Statement::Drop { names, .. } => names.iter().map(object_name).collect(),
        Statement::OptimizeTable { name, .. } => vec![object_name(name)],
        // `WITH … INSERT INTO …` parses as a query whose body is the insert.
        Statement::Query(q) => match &*q.body {
            sqlparser::ast::SetExpr::Insert(st) | sqlparser::ast::SetExpr::Update(st) => {
                write_targets(st)
            }
            _ => vec![],
        },
        _ => vec![],
    }
}

/// Tables of a SQL text (one or more statements).
pub fn sql_tables(sql: &str, out: &mut BTreeSet<TableRef>) {
    let text = widget_placeholders(sql);
    // SQL nested past the bound is only keyword-scanned (linear, no tree): see `guard::check_sql`.
    if crate::guard::check_sql(&text).is_err() {
        keyword_scan(&text, out);
        return;
    }
    crate::guard::with_deep_stack(|| sql_tables_parsed(&text, out));
}

fn sql_tables_parsed(text: &str, out: &mut BTreeSet<TableRef>) {
    match sqlparser::parser::Parser::parse_sql(&DatabricksDialect {}, text) {
        Ok(statements) => {
            let before = out.len();
            for st in &statements {
                let writes = write_targets(st);
                let mut v = SqlVisitor::default();
                let _ = sqlparser::ast::Visit::visit(st, &mut v);
                for w in &writes {
                    out.insert(TableRef {
                        name: w.clone(),
                        access: Access::Write,
                    });
                }
                for r in v.relations {
                    if writes.contains(&r) || v.ctes.contains(&r) || r.contains("nbtrail_widget") {
                        continue;
                    }
                    out.insert(TableRef {
                        name: r,
                        access: Access::Read,
                    });
                }
            }
            // A statement the parser accepts but whose tables it does not expose as relations (for
            // example `OPTIMIZE`, `VACUUM`, `COPY INTO`): ask the keyword scan rather than say "none".
            if out.len() == before {
                keyword_scan(text, out);
            }
        }
        Err(_) => keyword_scan(text, out),
    }
}

/// The fallback for SQL the parser does not accept.
fn keyword_scan(sql: &str, out: &mut BTreeSet<TableRef>) {
    static READS: OnceLock<Regex> = OnceLock::new();
    static WRITES: OnceLock<Regex> = OnceLock::new();
    const NAME: &str = r"((?:`[^`]+`|[A-Za-z_][\w$]*)(?:\s*\.\s*(?:`[^`]+`|[A-Za-z_][\w$]*))*)";
    let reads = READS.get_or_init(|| {
        Regex::new(&format!(r"(?i)\b(?:from|join|using)\s+{NAME}")).expect("valid regex")
    });
    let writes = WRITES.get_or_init(|| {
        Regex::new(&format!(
            r"(?i)\b(?:insert\s+(?:into|overwrite)(?:\s+table)?|create\s+(?:or\s+replace\s+)?(?:temporary\s+|temp\s+)?(?:table|view)(?:\s+if\s+not\s+exists)?|merge\s+into|update|delete\s+from|truncate\s+table|drop\s+(?:table|view)(?:\s+if\s+exists)?|optimize|vacuum|alter\s+table)\s+{NAME}"
        ))
        .expect("valid regex")
    });
    let mut written = BTreeSet::new();
    for c in writes.captures_iter(sql) {
        let name = normalize_table_name(&c[1]);
        if is_table_name(&name) {
            written.insert(name.clone());
            out.insert(TableRef {
                name,
                access: Access::Write,
            });
        }
    }
    for c in reads.captures_iter(sql) {
        let name = normalize_table_name(&c[1]);
        if is_table_name(&name) && !written.contains(&name) {
            out.insert(TableRef {
                name,
                access: Access::Read,
            });
        }
    }
}

fn is_table_name(name: &str) -> bool {
    const NOT_TABLES: &[&str] = &[
        "select",
        "delta",
        "parquet",
        "csv",
        "json",
        "nbtrail_widget",
    ];
    !name.is_empty() && !NOT_TABLES.contains(&name) && !name.contains("nbtrail_widget")
}

fn python_tables(code: &str, out: &mut BTreeSet<TableRef>) {
    // Cells past the analyzer's bounds have no tables (the analyzer reports them as not analyzed).
    if crate::guard::check(code).is_err() {
        return;
    }
    let Some(parsed) = crate::parse_python(code, ParseOptions::from(Mode::Ipython)) else {
        return;
    };
    python_tables_in(parsed.suite(), out);
    crate::guard::with_deep_stack(|| drop(parsed));
}

/// The tables of a Python cell the caller has already parsed (the analyzer parses each cell once and takes
/// its facts from the same visitor as [`tables`]).
pub(crate) fn python_tables_in(suite: &[ruff_python_ast::Stmt], out: &mut BTreeSet<TableRef>) {
    let mut v = PyVisitor { out };
    for stmt in suite {
        ruff_python_ast::visitor::walk_stmt(&mut v, stmt);
    }
}

struct PyVisitor<'o> {
    out: &'o mut BTreeSet<TableRef>,
}

/// `a.b().c` → `a.b().c`: the call chain as text, for matching receivers.
fn chain(e: &Expr) -> String {
    crate::engine::call_chain(e, std::string::ToString::to_string)
}

fn literal(e: &Expr) -> Option<String> {
    match e {
        Expr::StringLiteral(s) => Some(s.value.to_str().to_string()),
        _ => None,
    }
}

fn arg(c: &ast::ExprCall, pos: usize, keyword: &str) -> Option<String> {
    c.arguments
        .args
        .get(pos)
        .and_then(literal)
        .or_else(|| literal(&c.arguments.find_keyword(keyword)?.value))
}

impl PyVisitor<'_> {
    fn add(&mut self, name: Option<String>, access: Access) {
        if let Some(name) = name {
            let name = normalize_table_name(&name);
            if !name.is_empty() {
                self.out.insert(TableRef { name, access });
            }
        }
    }

    fn call(&mut self, c: &ast::ExprCall) {
        let Expr::Attribute(attr) = &*c.func else {
            return;
        };
        let method = attr.attr.as_str();
        let receiver = chain(&attr.value);
        let last = receiver.rsplit('.').next().unwrap_or("");
        let direction = if receiver.contains(".write") || receiver.starts_with("write") {
            Access::Write
        } else {
            Access::Read
        };
        match method {
            "table" if matches!(last, "spark" | "read" | "readStream" | "sqlContext") => {
                self.add(arg(c, 0, "tableName"), Access::Read);
            }
            "sql" if matches!(last, "spark" | "sqlContext" | "session") => {
                if let Some(sql) = arg(c, 0, "sqlQuery") {
                    sql_tables(&sql, self.out);
                }
            }
            "saveAsTable" | "insertInto" | "toTable" => {
                self.add(arg(c, 0, "tableName"), Access::Write);
            }
            "forName" if last == "DeltaTable" => {
                self.add(arg(c, 1, "tableOrViewName"), Access::Read);
            }
            "jdbc" if last == "read" || last == "write" => self.add(arg(c, 1, "table"), direction),
            "option" if arg(c, 0, "key").is_some_and(|k| k.eq_ignore_ascii_case("dbtable")) => {
                self.add(arg(c, 1, "value"), direction);
            }
            "options" => {
                if let Some(k) = c
                    .arguments
                    .keywords
                    .iter()
                    .find(|k| k.arg.as_ref().is_some_and(|a| a.as_str() == "dbtable"))
                {
                    self.add(literal(&k.value), direction);
                }
            }
            _ => {}
        }
    }
}

impl<'a> Visitor<'a> for PyVisitor<'_> {
    fn visit_expr(&mut self, expr: &'a Expr) {
        crate::guard::with_stack(|| {
            if let Expr::Call(c) = expr {
                self.call(c);
            }
            walk_expr(self, expr);
        });
    }

    fn visit_stmt(&mut self, stmt: &'a ast::Stmt) {
        crate::guard::with_stack(|| ruff_python_ast::visitor::walk_stmt(self, stmt));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(lang: Option<&str>, code: &str) -> Vec<(String, &'static str)> {
        tables(&Cell::new("c", code, lang))
            .into_iter()
            .map(|t| (t.name, t.access.as_str()))
            .collect()
    }

    fn pairs(v: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
        v.iter().map(|(n, a)| (n.to_string(), *a)).collect()
    }

    #[test]
    fn sql_reads_writes_ctes_and_normalisation() {
        assert_eq!(
            names(
                Some("sql"),
                "WITH recent AS (SELECT * FROM `PROD`.`Customers` c JOIN prod.orders o ON c.id = o.cid)\n\
                 INSERT INTO scratch.Export SELECT * FROM recent"
            ),
            pairs(&[
                ("prod.customers", "read"),
                ("prod.orders", "read"),
                ("scratch.export", "write")
            ])
        );
        assert_eq!(
            names(
                None,
                "%sql\nMERGE INTO main.crm.t USING updates u ON t.id = u.id WHEN MATCHED THEN UPDATE SET *"
            ),
            pairs(&[("main.crm.t", "write"), ("updates", "read")])
        );
        assert_eq!(
            names(
                Some("sql"),
                "CREATE OR REPLACE TABLE a.b AS SELECT * FROM c.d WHERE x = ${limit}"
            ),
            pairs(&[("a.b", "write"), ("c.d", "read")])
        );
    }

    #[test]
    fn sql_the_parser_rejects_falls_back_to_keywords() {
        // OPTIMIZE … ZORDER BY is Databricks-only.
        assert_eq!(
            names(Some("sql"), "OPTIMIZE prod.events ZORDER BY (user_id)"),
            pairs(&[("prod.events", "write")])
        );
    }

    #[test]
    fn pyspark_calls() {
        let code = r#"
from delta.tables import DeltaTable
df = spark.table("prod.customers")
o = spark.read.table('`Prod`.`Orders`')
spark.sql(f"SELECT 1")
spark.sql("select * from hr.salaries s join hr.people p on s.id = p.id")
df.write.mode("overwrite").saveAsTable("scratch.dump")
df.write.insertInto("scratch.log")
dt = DeltaTable.forName(spark, "main.crm.accounts")
j = spark.read.format("jdbc").option("url", u).option("dbtable", "public.payments").load()
df.write.format("jdbc").options(url=u, dbtable="ext.copy").save()
len("spark.table('not.a.call')")
"#;
        assert_eq!(
            names(Some("python"), code),
            pairs(&[
                ("ext.copy", "write"),
                ("hr.people", "read"),
                ("hr.salaries", "read"),
                ("main.crm.accounts", "read"),
                ("prod.customers", "read"),
                ("prod.orders", "read"),
                ("public.payments", "read"),
                ("scratch.dump", "write"),
                ("scratch.log", "write"),
            ])
        );
    }

    #[test]
    fn non_code_cells_and_broken_python_have_no_tables() {
        assert!(names(None, "%md\nFROM prod.customers").is_empty());
        assert!(names(Some("scala"), "spark.table(\"x\")").is_empty());
        // A syntax error elsewhere does not hide a recognisable call.
        assert_eq!(
            names(Some("python"), "spark.table('a.b')\nif x:\n"),
            pairs(&[("a.b", "read")])
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_sql_or_python(s in ".{0,200}") {
            let _ = names(Some("sql"), &s);
            let _ = names(Some("python"), &s);
        }

        #[test]
        fn normalisation_is_idempotent(s in "[`A-Za-z_. ]{0,40}") {
            let once = normalize_table_name(&s);
            proptest::prop_assert_eq!(normalize_table_name(&once), once.clone());
        }
    }
}
