//! The query language, parsed leniently: a query never fails, it is searched as well as it can be and the
//! parts that were ignored or reinterpreted are reported as warnings.
//!
//! ```text
//! secrets.get                     words: code, outputs and metadata (user, notebook path, action, tables)
//! "spark.read.table prod"         phrase (consecutive words)
//! user:alice  user:alice@corp.com field:value (see FIELDS); `user:alice` also matches alice@… addresses
//! table:prod.customers            tables read or written (names normalised; `table:customers` matches any schema)
//! to_csv OR toPandas              boolean: AND is implied between terms; OR, NOT, -term, ( … )
//! dbutils.sec*  user:al*          prefix wildcards (`*` anywhere in a field value is a glob)
//! time:[2024-05-01 TO 2024-05-02] time ranges, inclusive; dates, `2024-05-01T14:00`, `now-7d`, `*`
//! time:>=2024-05-01T14:00  time:2024-05-01   comparisons and whole days/minutes
//! last 7d   last 24h   last 30m   relative to now
//! rule:NBT001  session:8625526d   joined from the case: findings' rule codes, a session's cells
//! ```

use crate::identifier::IdentifierQuery;
use crate::schema::Fields;
use crate::tokens::query_parts;
use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use std::ops::Bound;
use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RangeQuery,
    RegexQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption};

/// The fields a user can name, with what they search.
pub const FIELDS: &[(&str, &str)] = &[
    ("user", "who (e-mail; `user:alice` matches alice@…)"),
    (
        "action",
        "audit action, `runCommand` or `notebook.runCommand`",
    ),
    (
        "service",
        "audit service (`notebook`, `secrets`, `databrickssql`, …)",
    ),
    (
        "notebook",
        "notebook path or id (globs: `notebook:/Users/alice/*`)",
    ),
    ("cluster", "cluster id"),
    ("workspace", "workspace id"),
    ("session", "session id or its prefix"),
    ("lang", "command language (`python`, `sql`, …)"),
    (
        "status",
        "command status / response (`finished`, `error`, `403`)",
    ),
    ("ip", "source IP address"),
    (
        "table",
        "table read or written (`prod.customers`, `customers`)",
    ),
    ("read", "table read"),
    ("write", "table written"),
    (
        "rule",
        "analyzer finding code on the cell (`NBT001`, `NBT*`)",
    ),
    ("code", "words in the command text only"),
    ("output", "words in outputs only"),
    (
        "time",
        "time range: `[A TO B]`, `>=A`, `<B`, a day or minute",
    ),
    ("id", "event id"),
];

/// The query syntax besides fields: (example, what it does). With [`FIELDS`] this is the one source of the
/// query-language help: the CLI prints [`help_text`], the app reads the same data
/// (`ui/src/lib/bindings/queryHelp.json`, written by this crate's tests and checked current by CI).
pub const SYNTAX: &[(&str, &str)] = &[
    (
        "secrets.get",
        "words in code, outputs and metadata (user, notebook path, action, tables); identifiers match whole and by parts: secrets.get, to_csv, customer, toPandas",
    ),
    ("\"spark.read.table prod\"", "phrase"),
    (
        "a b   a OR b   NOT a   -a   ( … )",
        "both (AND is implied), either, not, exclude, groups",
    ),
    (
        "dbutils.sec*   user:al*",
        "prefix wildcard; in field values * and ? are globs",
    ),
    (
        "time:[2024-05-01 TO 2024-05-02]",
        "inclusive range (dates, 2024-05-01T14:00, now-7d, *)",
    ),
    (
        "time:2024-05-01   time:>=2024-05-01T14:00   time:<2024-06-01",
        "a day, comparisons",
    ),
    ("last 7d   last 24h   last 30m", "relative to now"),
];

/// Notes that close the help.
pub const HELP_NOTES: &[&str] = &[
    "A malformed query is never an error: it is searched as well as it can be and the parts that were ignored are listed as warnings.",
    "All times are UTC.",
];

/// The query-language help as text (`nbtrail search --help`), from [`SYNTAX`], [`FIELDS`] and
/// [`HELP_NOTES`].
pub fn help_text() -> String {
    let mut out = String::from("QUERY SYNTAX\n");
    for (example, meaning) in SYNTAX {
        out.push_str(&format!("  {example}\n      {meaning}\n"));
    }
    out.push_str("FIELDS (field:value)\n");
    for (name, meaning) in FIELDS {
        out.push_str(&format!("  {:<10}  {meaning}\n", format!("{name}:")));
    }
    out.push_str(&HELP_NOTES.join(" "));
    out
}

/// What the query side needs from the case to resolve joined fields.
pub trait Lookup {
    /// Event ids with a finding whose code matches the glob (upper-case).
    fn events_with_rule(&self, code_glob: &str) -> Vec<u64>;
    /// Event ids of the cells of sessions whose id starts with `prefix`.
    fn events_in_session(&self, prefix: &str) -> Vec<u64>;
}

/// A parsed query: the tantivy query and what was ignored.
pub struct Compiled {
    /// The query to run.
    pub query: Box<dyn Query>,
    /// What the lenient parse ignored or reinterpreted, in words.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Or,
    And,
    Not,
    Minus,
    Phrase(String, Option<String>),
    Word(String),
    /// `field:[a TO b]` / `field:{…}`
    Range(String, String),
}

fn lex(q: &str, warnings: &mut Vec<String>) -> Vec<Tok> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '-' | '!' if i + 1 < chars.len() && !chars[i + 1].is_whitespace() => {
                out.push(Tok::Minus);
                i += 1;
            }
            '+' if i + 1 < chars.len() && !chars[i + 1].is_whitespace() => i += 1,
            '"' => {
                let (text, next) = quoted(&chars, i + 1, warnings);
                out.push(Tok::Phrase(text, None));
                i = next;
            }
            _ => {
                let start = i;
                let mut special = None;
                while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')')
                {
                    if chars[i] == ':' && i > start && i + 1 < chars.len() {
                        let field: String = chars[start..i].iter().collect();
                        match chars[i + 1] {
                            '"' => {
                                let (text, next) = quoted(&chars, i + 2, warnings);
                                special = Some(Tok::Phrase(text, Some(field)));
                                i = next;
                                break;
                            }
                            open @ ('[' | '{') => {
                                let close = if open == '[' { ']' } else { '}' };
                                let body_start = i + 2;
                                let end = chars[body_start..]
                                    .iter()
                                    .position(|&c| c == close)
                                    .map(|p| body_start + p);
                                let body: String = chars[body_start..end.unwrap_or(chars.len())]
                                    .iter()
                                    .collect();
                                if end.is_none() {
                                    warnings.push(format!(
                                        "missing `{close}` after `{field}:{open}`: range closed at the end"
                                    ));
                                }
                                special = Some(Tok::Range(field, body));
                                i = end.map_or(chars.len(), |e| e + 1);
                                break;
                            }
                            _ => {}
                        }
                    }
                    i += 1;
                }
                if let Some(t) = special {
                    out.push(t);
                } else {
                    let w: String = chars[start..i].iter().collect();
                    out.push(match w.as_str() {
                        "OR" | "||" => Tok::Or,
                        "AND" | "&&" => Tok::And,
                        "NOT" => Tok::Not,
                        _ => Tok::Word(w),
                    });
                }
            }
        }
    }
    out
}

fn quoted(chars: &[char], from: usize, warnings: &mut Vec<String>) -> (String, usize) {
    match chars[from.min(chars.len())..]
        .iter()
        .position(|&c| c == '"')
    {
        Some(p) => (chars[from..from + p].iter().collect(), from + p + 1),
        None => {
            warnings.push("missing closing `\"`: phrase taken to the end of the query".into());
            (chars[from.min(chars.len())..].iter().collect(), chars.len())
        }
    }
}

/// The query AST.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Text {
        field: Option<String>,
        text: String,
        phrase: bool,
    },
    Field {
        field: String,
        value: String,
    },
    Range {
        field: String,
        body: String,
    },
    Last(String),
}

/// Groups nested deeper than this are flattened (with a warning): parsing, compiling and dropping a query
/// recurse once per level, and a query is typed by whoever uses the app or the CLI.
pub const MAX_QUERY_DEPTH: usize = 32;

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    warnings: Vec<String>,
    /// Groups open around the current token.
    depth: usize,
}

impl Parser {
    fn new(toks: Vec<Tok>, warnings: Vec<String>) -> Parser {
        Parser {
            toks,
            pos: 0,
            warnings,
            depth: 0,
        }
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn or(&mut self) -> Option<Node> {
        let mut alts = Vec::new();
        if let Some(n) = self.and() {
            alts.push(n);
        }
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            match self.and() {
                Some(n) => alts.push(n),
                None => self
                    .warnings
                    .push("`OR` with nothing after it: ignored".into()),
            }
        }
        match alts.len() {
            0 => None,
            1 => alts.pop(),
            _ => Some(Node::Or(alts)),
        }
    }

    fn and(&mut self) -> Option<Node> {
        let mut all = Vec::new();
        loop {
            match self.peek() {
                None | Some(Tok::Or | Tok::RParen) => break,
                Some(Tok::And) => {
                    self.pos += 1;
                    if all.is_empty() {
                        self.warnings
                            .push("`AND` with nothing before it: ignored".into());
                    } else if matches!(self.peek(), None | Some(Tok::Or | Tok::RParen)) {
                        self.warnings
                            .push("`AND` with nothing after it: ignored".into());
                    }
                    continue;
                }
                _ => {}
            }
            if let Some(n) = self.unary() {
                all.push(n);
            }
        }
        match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Node::And(all)),
        }
    }

    fn unary(&mut self) -> Option<Node> {
        // A run of negations is read in a loop (`NOT NOT … a` 30,000 deep must not recurse): an odd
        // count negates, an even one cancels.
        let mut negations = 0usize;
        let mut last = None;
        while let Some(tok @ (Tok::Not | Tok::Minus)) = self.peek() {
            last = Some(tok.clone());
            negations += 1;
            self.pos += 1;
        }
        let inner = self.primary_or_group();
        match (inner, last) {
            (inner, None) => inner,
            (Some(n), Some(_)) if negations % 2 == 1 => Some(Node::Not(Box::new(n))),
            (Some(n), Some(_)) => Some(n),
            (None, Some(tok)) => {
                self.warnings.push(format!(
                    "`{}` with nothing after it: ignored",
                    if tok == Tok::Not { "NOT" } else { "-" }
                ));
                None
            }
        }
    }

    fn primary_or_group(&mut self) -> Option<Node> {
        if self.peek() == Some(&Tok::LParen) && self.depth >= MAX_QUERY_DEPTH {
            // Past the bound a `(` is ignored; its `)` then closes an outer group (or is reported as
            // unmatched), so the terms are still searched, grouped less finely.
            self.pos += 1;
            let warning = format!("groups nested deeper than {MAX_QUERY_DEPTH}: inner `(` ignored");
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
            return None;
        }
        self.primary()
    }

    fn primary(&mut self) -> Option<Node> {
        let tok = self.toks.get(self.pos)?.clone();
        self.pos += 1;
        match tok {
            Tok::LParen => {
                self.depth += 1;
                let inner = self.or();
                self.depth -= 1;
                if self.peek() == Some(&Tok::RParen) {
                    self.pos += 1;
                } else {
                    self.warnings
                        .push("missing `)`: group closed at the end of the query".into());
                }
                inner
            }
            Tok::RParen => {
                self.warnings.push("unmatched `)`: ignored".into());
                None
            }
            Tok::Phrase(text, field) => Some(Node::Text {
                field,
                text,
                phrase: true,
            }),
            Tok::Range(field, body) => Some(Node::Range { field, body }),
            Tok::Word(w) => {
                if w.eq_ignore_ascii_case("last")
                    && let Some(Tok::Word(n)) = self.peek()
                    && parse_span(n).is_some()
                {
                    let n = n.clone();
                    self.pos += 1;
                    return Some(Node::Last(n));
                }
                if let Some(span) = w.strip_prefix("last:") {
                    return Some(Node::Last(span.to_string()));
                }
                match w.split_once(':') {
                    Some((f, v)) if !f.is_empty() && !v.is_empty() => Some(Node::Field {
                        field: f.to_string(),
                        value: v.to_string(),
                    }),
                    _ => Some(Node::Text {
                        field: None,
                        text: w,
                        phrase: false,
                    }),
                }
            }
            Tok::Or | Tok::And | Tok::Not | Tok::Minus => {
                self.warnings.push("operator out of place: ignored".into());
                None
            }
        }
    }
}

/// `7d`, `24h`, `30m`, `2w`, `45s` → milliseconds.
fn parse_span(s: &str) -> Option<i64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

/// A point in time and the length of the span it names (a day for a date, a minute for `HH:MM`).
fn parse_time(s: &str, now_ms: i64) -> Option<(i64, i64)> {
    let s = s.trim();
    if s == "now" {
        return Some((now_ms, 1));
    }
    if let Some(rest) = s.strip_prefix("now-") {
        return Some((now_ms - parse_span(rest)?, 1));
    }
    let s = s.trim_end_matches('Z').replace(' ', "T");
    if let Ok(d) = NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
        let t = Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?);
        return Some((t.timestamp_millis(), 86_400_000));
    }
    for (fmt, len) in [
        ("%Y-%m-%dT%H:%M:%S%.f", 1),
        ("%Y-%m-%dT%H:%M:%S", 1_000),
        ("%Y-%m-%dT%H:%M", 60_000),
        ("%Y-%m-%dT%H", 3_600_000),
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&s, fmt) {
            return Some((Utc.from_utc_datetime(&t).timestamp_millis(), len));
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s.as_str()) {
        return Some((t.timestamp_millis(), 1));
    }
    None
}

/// Compiles `q` against the index fields; `now_ms` anchors relative times.
pub fn compile(q: &str, f: &Fields, lookup: &dyn Lookup, now_ms: i64) -> Compiled {
    let mut warnings = Vec::new();
    let toks = lex(q, &mut warnings);
    let mut p = Parser::new(toks, warnings);
    let mut parts = Vec::new();
    while p.pos < p.toks.len() {
        if let Some(n) = p.or() {
            parts.push(n);
        }
        if p.peek() == Some(&Tok::RParen) {
            p.warnings.push("unmatched `)`: ignored".into());
            p.pos += 1;
        }
    }
    let node = match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Node::And(parts)),
    };
    let mut c = Compiler {
        f,
        lookup,
        now_ms,
        warnings: p.warnings,
    };
    let query = match node {
        None => Box::new(AllQuery) as Box<dyn Query>,
        Some(n) => c.node(&n).unwrap_or_else(|| Box::new(AllQuery)),
    };
    Compiled {
        query,
        warnings: c.warnings,
    }
}

struct Compiler<'a> {
    f: &'a Fields,
    lookup: &'a dyn Lookup,
    now_ms: i64,
    warnings: Vec<String>,
}

fn glob_regex(glob: &str) -> String {
    let mut re = String::new();
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c if c.is_alphanumeric() || c == '_' => re.push(c),
            c => {
                re.push('\\');
                re.push(c);
            }
        }
    }
    re
}

impl Compiler<'_> {
    fn node(&mut self, n: &Node) -> Option<Box<dyn Query>> {
        match n {
            Node::And(items) | Node::Or(items) => {
                let is_and = matches!(n, Node::And(_));
                let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
                let mut positives = 0;
                for item in items {
                    if let Node::Not(inner) = item {
                        if let Some(q) = self.node(inner) {
                            if is_and {
                                clauses.push((Occur::MustNot, q));
                            } else {
                                // `a OR -b`: "a, or anything that is not b".
                                let not_b: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
                                    (Occur::Must, Box::new(AllQuery)),
                                    (Occur::MustNot, q),
                                ]));
                                clauses.push((Occur::Should, not_b));
                                positives += 1;
                            }
                        }
                    } else if let Some(q) = self.node(item) {
                        clauses.push((if is_and { Occur::Must } else { Occur::Should }, q));
                        positives += 1;
                    }
                }
                if clauses.is_empty() {
                    return None;
                }
                if positives == 0 {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Some(Box::new(BooleanQuery::new(clauses)))
            }
            Node::Not(inner) => {
                let q = self.node(inner)?;
                Some(Box::new(BooleanQuery::new(vec![
                    (Occur::Must, Box::new(AllQuery)),
                    (Occur::MustNot, q),
                ])))
            }
            Node::Text {
                field,
                text,
                phrase,
            } => match field {
                None => self.text(text, *phrase, None),
                Some(field) => self.field_phrase(field, text),
            },
            Node::Field { field, value } => self.field(field, value),
            Node::Range { field, body } => self.range(field, body),
            Node::Last(span) => match parse_span(span) {
                Some(ms) => {
                    Some(self.time_query(Bound::Included(self.now_ms - ms), Bound::Unbounded))
                }
                None => {
                    self.warnings.push(format!(
                        "`last {span}`: not a span like 7d, 24h, 30m: ignored"
                    ));
                    None
                }
            },
        }
    }

    /// Free text (or a phrase) over the given text fields (default: code, output, meta).
    fn text(&mut self, text: &str, phrase: bool, only: Option<Field>) -> Option<Box<dyn Query>> {
        let fields: Vec<Field> = match only {
            Some(f) => vec![f],
            None => vec![self.f.code, self.f.output, self.f.meta],
        };
        let prefix = !phrase && text.ends_with('*');
        let body = text.trim_end_matches('*');
        // Each word's parts, in order: a phrase over consecutive words is one phrase of all their parts.
        let words: Vec<&str> = body
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .filter(|w| !w.trim_matches(['.', '_']).is_empty())
            .collect();
        let parts: Vec<String> = words.iter().flat_map(|w| query_parts(w)).collect();
        if parts.is_empty() {
            if !text.trim().is_empty() {
                self.warnings
                    .push(format!("`{text}` has no searchable characters: ignored"));
            }
            return None;
        }
        let whole = (words.len() == 1 && parts.len() > 1 && !prefix)
            .then(|| words[0].trim_matches(['.', '_']).to_lowercase());
        let mut per_field: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for field in fields {
            let terms: Vec<Term> = parts
                .iter()
                .map(|p| Term::from_field_text(field, p))
                .collect();
            if let Some(w) = &whole {
                // The whole identifier, or its parts in a row elsewhere; the exact identifier ranks above
                // the same parts elsewhere. Positions are read only where the whole word is not.
                per_field.push((
                    Occur::Should,
                    Box::new(IdentifierQuery::new(
                        Term::from_field_text(field, w),
                        terms,
                        2.0,
                    )),
                ));
                continue;
            }
            let q: Box<dyn Query> = match (terms.len(), prefix) {
                (1, false) => Box::new(TermQuery::new(
                    terms[0].clone(),
                    IndexRecordOption::WithFreqs,
                )),
                (1, true) => {
                    match RegexQuery::from_pattern(&format!("{}.*", glob_regex(&parts[0])), field) {
                        Ok(q) => Box::new(q),
                        Err(_) => continue,
                    }
                }
                (_, false) => Box::new(PhraseQuery::new(terms)),
                (_, true) => Box::new(PhrasePrefixQuery::new(terms)),
            };
            per_field.push((Occur::Should, q));
        }
        Some(Box::new(BooleanQuery::new(per_field)))
    }

    fn keyword(&mut self, field: Field, value: &str) -> Box<dyn Query> {
        let v = value.to_lowercase();
        if v.contains('*') || v.contains('?') {
            match RegexQuery::from_pattern(&glob_regex(&v), field) {
                Ok(q) => Box::new(q),
                Err(e) => {
                    self.warnings.push(format!("`{value}`: {e}: ignored"));
                    Box::new(EmptyQuery)
                }
            }
        } else {
            Box::new(TermQuery::new(
                Term::from_field_text(field, &v),
                IndexRecordOption::Basic,
            ))
        }
    }

    fn ids(&self, ids: Vec<u64>) -> Box<dyn Query> {
        Box::new(TermSetQuery::new(
            ids.into_iter()
                .map(|id| Term::from_field_u64(self.f.event_id, id)),
        ))
    }

    fn field_phrase(&mut self, field: &str, text: &str) -> Option<Box<dyn Query>> {
        match field.to_ascii_lowercase().as_str() {
            "code" => self.text(text, true, Some(self.f.code)),
            "output" => self.text(text, true, Some(self.f.output)),
            _ => self.field(field, text),
        }
    }

    fn field(&mut self, field: &str, value: &str) -> Option<Box<dyn Query>> {
        let f = self.f;
        let q: Box<dyn Query> = match field.to_ascii_lowercase().as_str() {
            "user" => {
                let exact = self.keyword(f.user, value);
                if value.contains('@') || value.contains('*') {
                    exact
                } else {
                    // A bare name is a local part or its first word: `alice` finds alice@… and
                    // alice.nguyen@…, not alicia@….
                    let name = glob_regex(&value.to_lowercase());
                    let at: Box<dyn Query> =
                        match RegexQuery::from_pattern(&format!("{name}([._+-][^@]*)?@.*"), f.user)
                        {
                            Ok(q) => Box::new(q),
                            Err(_) => Box::new(EmptyQuery),
                        };
                    Box::new(BooleanQuery::new(vec![
                        (Occur::Should, exact),
                        (Occur::Should, at),
                    ]))
                }
            }
            "action" => self.keyword(f.action, value),
            "service" => self.keyword(f.service, value),
            "notebook" | "path" => self.keyword(f.notebook, value),
            "cluster" => self.keyword(f.cluster, value),
            "workspace" => self.keyword(f.workspace, value),
            "lang" | "language" => self.keyword(f.language, value),
            "status" => self.keyword(f.status, value),
            "ip" => self.keyword(f.ip, value),
            "table" => self.keyword(
                f.table,
                &nbtrail_analyzer::tables::normalize_table_name(value),
            ),
            "read" => self.keyword(
                f.table_read,
                &nbtrail_analyzer::tables::normalize_table_name(value),
            ),
            "write" => self.keyword(
                f.table_write,
                &nbtrail_analyzer::tables::normalize_table_name(value),
            ),
            "rule" => self.ids(self.lookup.events_with_rule(&value.to_uppercase())),
            "session" => self.ids(self.lookup.events_in_session(&value.to_lowercase())),
            "id" => match value.parse::<u64>() {
                Ok(id) => self.ids(vec![id]),
                Err(_) => {
                    self.warnings
                        .push(format!("`id:{value}`: not an event id: ignored"));
                    return None;
                }
            },
            "code" => return self.text(value, false, Some(f.code)),
            "output" => return self.text(value, false, Some(f.output)),
            "time" => return self.time_value(value),
            _ => {
                self.warnings.push(format!(
                    "unknown field `{field}:` (known: {}): searched as text",
                    FIELDS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                return self.text(&format!("{field} {value}"), true, None);
            }
        };
        Some(q)
    }

    fn time_query(&self, lo: Bound<i64>, hi: Bound<i64>) -> Box<dyn Query> {
        Box::new(TimeRange {
            field: self.f.time,
            lo,
            hi,
        })
    }

    fn time_value(&mut self, value: &str) -> Option<Box<dyn Query>> {
        let (op, rest) = [">=", "<=", ">", "<"]
            .iter()
            .find_map(|op| value.strip_prefix(op).map(|r| (*op, r)))
            .unwrap_or(("=", value));
        let Some((t, len)) = parse_time(rest, self.now_ms) else {
            self.warnings.push(format!(
                "`time:{value}`: not a time (use 2024-05-01, 2024-05-01T14:00, now-7d): ignored"
            ));
            return None;
        };
        let (lo, hi) = match op {
            ">=" => (Bound::Included(t), Bound::Unbounded),
            ">" => (Bound::Included(t + len), Bound::Unbounded),
            "<=" => (Bound::Unbounded, Bound::Excluded(t + len)),
            "<" => (Bound::Unbounded, Bound::Excluded(t)),
            _ => (Bound::Included(t), Bound::Excluded(t + len)),
        };
        Some(self.time_query(lo, hi))
    }

    fn range(&mut self, field: &str, body: &str) -> Option<Box<dyn Query>> {
        if !field.eq_ignore_ascii_case("time") {
            self.warnings.push(format!(
                "`{field}:[…]`: ranges are supported on `time:` only: ignored"
            ));
            return None;
        }
        let Some((a, b)) = body.split_once(" TO ").or_else(|| body.split_once(" to ")) else {
            self.warnings
                .push(format!("`time:[{body}]`: expected `[A TO B]`: ignored"));
            return None;
        };
        let bound = |s: &str, upper: bool, w: &mut Vec<String>| -> Option<Bound<i64>> {
            let s = s.trim();
            if s == "*" || s.is_empty() {
                return Some(Bound::Unbounded);
            }
            match parse_time(s, self.now_ms) {
                // Inclusive: an upper bound covers its whole day / minute.
                Some((t, len)) if upper => Some(Bound::Excluded(t + len)),
                Some((t, _)) => Some(Bound::Included(t)),
                None => {
                    w.push(format!(
                        "`{s}` in `time:[{body}]` is not a time (use 2024-05-01, 2024-05-01T14:00, now-7d): range ignored"
                    ));
                    None
                }
            }
        };
        let lo = bound(a, false, &mut self.warnings)?;
        let hi = bound(b, true, &mut self.warnings)?;
        Some(self.time_query(lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ast(q: &str) -> (Option<Node>, Vec<String>) {
        let mut w = Vec::new();
        let toks = lex(q, &mut w);
        let mut p = Parser::new(toks, w);
        let n = p.or();
        (n, p.warnings)
    }

    fn text(t: &str) -> Node {
        Node::Text {
            field: None,
            text: t.into(),
            phrase: false,
        }
    }

    #[test]
    fn grammar() {
        assert_eq!(
            ast("a b OR -c").0,
            Some(Node::Or(vec![
                Node::And(vec![text("a"), text("b")]),
                Node::Not(Box::new(text("c")))
            ]))
        );
        assert_eq!(
            ast("user:alice time:[2024-05-01 TO 2024-05-02] \"x y\"").0,
            Some(Node::And(vec![
                Node::Field {
                    field: "user".into(),
                    value: "alice".into()
                },
                Node::Range {
                    field: "time".into(),
                    body: "2024-05-01 TO 2024-05-02".into()
                },
                Node::Text {
                    field: None,
                    text: "x y".into(),
                    phrase: true
                },
            ]))
        );
        assert_eq!(ast("last 7d").0, Some(Node::Last("7d".into())));
        assert_eq!(
            ast("code:\"to_csv(\"").0,
            Some(Node::Text {
                field: Some("code".into()),
                text: "to_csv(".into(),
                phrase: true
            })
        );
    }

    #[test]
    fn malformed_queries_parse_with_warnings() {
        let (n, w) = ast("(a OR b");
        assert_eq!(n, Some(Node::Or(vec![text("a"), text("b")])));
        assert!(w[0].contains("missing `)`"), "{w:?}");
        let (n, w) = ast("\"unclosed phrase");
        assert!(matches!(n, Some(Node::Text { phrase: true, .. })));
        assert!(w[0].contains("missing closing"), "{w:?}");
        let (n, w) = ast("a OR");
        assert_eq!(n, Some(text("a")));
        assert!(w[0].contains("`OR`"), "{w:?}");
    }

    /// Issue 16: `((((…a` or `NOT NOT … a` 30,000 deep overflowed the parser's stack (also on the app's
    /// worker threads). Run on a 256 KiB stack to prove no level recurses.
    #[test]
    fn queries_nested_30000_deep_parse_with_a_warning_not_a_crash() {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let n = 30_000;
                let (node, w) = ast(&format!("{}a{}", "(".repeat(n), ")".repeat(n)));
                assert_eq!(node, Some(text("a")));
                assert!(w.iter().any(|w| w.contains("nested deeper")), "{w:?}");
                let (node, _) = ast(&format!("{}a", "NOT ".repeat(n)));
                assert_eq!(node, Some(text("a")), "an even number of NOTs cancels");
                let (node, _) = ast(&format!("{}a", "-".repeat(n + 1)));
                assert_eq!(node, Some(Node::Not(Box::new(text("a")))));
                let (node, _) = ast(&format!("{}a", "(NOT ".repeat(n)));
                assert!(node.is_some());
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
    }

    #[test]
    fn times() {
        let day = parse_time("2024-05-01", 0).unwrap();
        assert_eq!(day, (1_714_521_600_000, 86_400_000));
        assert_eq!(parse_time("2024-05-01 14:00", 0).unwrap().1, 60_000);
        assert_eq!(
            parse_time("now-7d", 10 * 86_400_000).unwrap().0,
            3 * 86_400_000
        );
        assert_eq!(parse_time("yesterday", 0), None);
        assert_eq!(parse_span("24h"), Some(86_400_000));
    }

    proptest::proptest! {
        #[test]
        fn lexing_and_parsing_any_text_terminates_without_panicking(q in "\\PC{0,80}") {
            let _ = ast(&q);
        }
    }
}

#[cfg(test)]
mod help_export {
    /// Writes the help the app shows (`queryHelp.json` next to the generated TypeScript bindings), so the
    /// CLI and the app read one source; CI fails when the checked-in file is stale.
    #[test]
    fn export_query_help_for_the_app() {
        let Some(dir) = std::env::var_os("TS_RS_EXPORT_DIR") else {
            return;
        };
        let help = serde_json::json!({
            "syntax": super::SYNTAX,
            "fields": super::FIELDS,
            "notes": super::HELP_NOTES,
        });
        let path = std::path::Path::new(&dir).join("queryHelp.json");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(path, serde_json::to_string_pretty(&help).unwrap() + "\n").unwrap();
    }

    #[test]
    fn help_text_names_every_field() {
        let text = super::help_text();
        for (name, _) in super::FIELDS {
            assert!(text.contains(&format!("{name}:")), "{name}");
        }
    }
}

/// A time range that picks, per segment, the cheaper of tantivy's two range searches: scanning the
/// segment's `time` column (cost: every document of the segment) or walking the inverted index's terms in
/// the range (cost: the documents in the range). A narrow range in a big segment — an hour of a
/// ten-million-event case — takes the second; a wide one the first. The estimate assumes times spread
/// evenly between the segment's first and last (the column's min and max).
#[derive(Clone, Debug)]
struct TimeRange {
    field: Field,
    lo: Bound<i64>,
    hi: Bound<i64>,
}

impl TimeRange {
    fn terms(&self) -> (Bound<Term>, Bound<Term>) {
        let t = |v: i64| Term::from_field_i64(self.field, v);
        (self.lo.map(t), self.hi.map(t))
    }

    fn time_weight(
        &self,
        scoring: tantivy::query::EnableScoring<'_>,
    ) -> tantivy::Result<TimeRangeWeight> {
        let (lo, hi) = self.terms();
        Ok(TimeRangeWeight {
            scan: RangeQuery::new(lo.clone(), hi.clone()).weight(scoring)?,
            terms: tantivy::query::InvertedIndexRangeQuery::new(lo, hi).weight(scoring)?,
            lo: self.lo,
            hi: self.hi,
        })
    }
}

impl Query for TimeRange {
    fn weight(
        &self,
        scoring: tantivy::query::EnableScoring<'_>,
    ) -> tantivy::Result<Box<dyn tantivy::query::Weight>> {
        Ok(Box::new(self.time_weight(scoring)?))
    }
}

struct TimeRangeWeight {
    scan: Box<dyn tantivy::query::Weight>,
    terms: Box<dyn tantivy::query::Weight>,
    lo: Bound<i64>,
    hi: Bound<i64>,
}

/// Below this share of a segment's documents (estimated), the inverted index is walked instead.
const TERMS_BELOW: f64 = 1.0 / 32.0;

impl TimeRangeWeight {
    fn pick(&self, reader: &tantivy::SegmentReader) -> &dyn tantivy::query::Weight {
        let Ok(col) = reader.fast_fields().i64("time") else {
            return &*self.scan;
        };
        let (min, max) = (col.min_value(), col.max_value());
        let lo = match self.lo {
            Bound::Included(v) => v,
            Bound::Excluded(v) => v.saturating_add(1),
            Bound::Unbounded => i64::MIN,
        }
        .max(min);
        let hi = match self.hi {
            Bound::Included(v) => v,
            Bound::Excluded(v) => v.saturating_sub(1),
            Bound::Unbounded => i64::MAX,
        }
        .min(max);
        if hi < lo {
            // No overlap: either answers nothing at once.
            return &*self.scan;
        }
        let share = (hi as f64 - lo as f64 + 1.0) / (max as f64 - min as f64 + 1.0);
        if share < TERMS_BELOW {
            &*self.terms
        } else {
            &*self.scan
        }
    }
}

impl tantivy::query::Weight for TimeRangeWeight {
    fn scorer(
        &self,
        reader: &tantivy::SegmentReader,
        boost: tantivy::Score,
    ) -> tantivy::Result<Box<dyn tantivy::query::Scorer>> {
        self.pick(reader).scorer(reader, boost)
    }

    fn scorer_danger(
        &self,
        reader: &tantivy::SegmentReader,
        target: tantivy::DocId,
        boost: tantivy::Score,
    ) -> tantivy::Result<(tantivy::SeekDangerResult, Box<dyn tantivy::query::Scorer>)> {
        self.pick(reader).scorer_danger(reader, target, boost)
    }

    fn explain(
        &self,
        reader: &tantivy::SegmentReader,
        doc: tantivy::DocId,
    ) -> tantivy::Result<tantivy::query::Explanation> {
        self.pick(reader).explain(reader, doc)
    }
}

#[cfg(test)]
mod time_range_tests {
    use super::*;
    use tantivy::collector::Count;
    use tantivy::doc;

    /// Whichever way a segment is searched (its time column scanned, or the inverted index walked), a
    /// time range finds exactly what tantivy's own range query finds: narrow and wide ranges, bounds on
    /// both sides, open ends, ranges outside the data, across several segments of uneven spread.
    #[test]
    fn a_time_range_finds_what_the_plain_range_query_finds_on_either_path() {
        let (schema, f) = crate::schema::Fields::build();
        let index = tantivy::Index::create_in_ram(schema);
        crate::schema::register_tokenizers(&index);
        let mut w = index.writer_with_num_threads(1, 20_000_000).unwrap();
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state >> 33
        };
        for segment in 0..4i64 {
            for _ in 0..3000 {
                // Most times dense in a day, some scattered over a year: the even-spread estimate is wrong
                // on purpose for part of the data.
                let t = if next() % 10 == 0 {
                    1_700_000_000_000 + (next() % 31_536_000_000) as i64
                } else {
                    1_700_000_000_000 + segment * 86_400_000 + (next() % 86_400_000) as i64
                };
                w.add_document(doc!(f.time => t)).unwrap();
            }
            w.commit().unwrap();
        }
        let reader = index.reader().unwrap();
        let searcher = reader.searcher();
        assert!(searcher.segment_readers().len() >= 2);
        let base = 1_700_000_000_000i64;
        let ranges = [
            (
                Bound::Included(base + 3_600_000),
                Bound::Excluded(base + 7_200_000),
            ),
            (Bound::Included(base), Bound::Included(base + 60_000)),
            (Bound::Excluded(base + 86_400_000), Bound::Unbounded),
            (Bound::Unbounded, Bound::Included(base + 2 * 86_400_000)),
            (
                Bound::Included(base - 10),
                Bound::Included(base + 400 * 86_400_000),
            ),
            (Bound::Included(base + 500 * 86_400_000), Bound::Unbounded),
            (
                Bound::Included(base + 100 * 86_400_000),
                Bound::Included(base + 101 * 86_400_000),
            ),
        ];
        let (mut narrow, mut wide) = (0, 0);
        for (lo, hi) in ranges {
            let t = |v: i64| Term::from_field_i64(f.time, v);
            let want = searcher
                .search(&RangeQuery::new(lo.map(t), hi.map(t)), &Count)
                .unwrap();
            let q = TimeRange {
                field: f.time,
                lo,
                hi,
            };
            let got = searcher.search(&q, &Count).unwrap();
            assert_eq!(got, want, "{lo:?}..{hi:?}");
            // And the docs themselves, not just their number (intersections go through seek).
            let both = tantivy::query::BooleanQuery::intersection(vec![
                Box::new(q.clone()),
                Box::new(RangeQuery::new(lo.map(t), hi.map(t))),
            ]);
            assert_eq!(searcher.search(&both, &Count).unwrap(), want);
            let tw = q
                .time_weight(tantivy::query::EnableScoring::disabled_from_searcher(
                    &searcher,
                ))
                .unwrap();
            for r in searcher.segment_readers() {
                if std::ptr::eq(
                    tw.pick(r) as *const _ as *const u8,
                    &*tw.terms as *const _ as *const u8,
                ) {
                    narrow += 1;
                } else {
                    wide += 1;
                }
            }
        }
        // Both paths were taken.
        assert!(narrow > 0 && wide > 0, "{narrow} narrow, {wide} wide");
    }
}
