//! The taint engine: a forward abstract interpretation of a session's cells as one Python program.
//!
//! Values carry *flows*: a source kind and the steps it took (the source, then each assignment,
//! argument binding and call it passed through, each with its cell and span). Names live in one global
//! scope shared by all cells, so a secret read in cell 3 and printed in cell 9 is one flow, and
//! re-assigning a name replaces its value (`x = secret; x = "ok"; print(x)` is clean). Branches are
//! analyzed separately and merged; loops run twice. User functions and lambdas defined in any earlier
//! cell are analyzed at each call with the arguments' taint (depth-limited), so arguments reach both the
//! return value and sinks inside the body. Calls to unknown functions do not pass taint through (so
//! `print(len(token))` is clean); methods pass their receiver's; `propagators` and `sanitizers` in the
//! rules file say otherwise for named calls.

use crate::cells::{Cell, Lang};
use crate::rules::{PatternRule, Rules, SinkSpec, glob};
use crate::{CellFacts, Finding, Loc, Step};
use regex::Regex;
use ruff_python_ast::{self as ast, Expr, Stmt};
use ruff_text_size::{Ranged, TextRange};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::OnceLock;

const MAX_FLOWS: usize = 8;
const MAX_STEPS: usize = 16;
const MAX_DEPTH: usize = 4;

/// Calls that set a configuration value by key: a literal set under a credential key is a hardcoded
/// credential (checked against the literal sources' `credential_name` with the key as the name).
const CONFIG_SETTERS: &[&str] = &[
    "spark.conf.set",
    "*.conf.set",
    "*.hadoopConfiguration().set",
    "*.option",
    "*.setConfig",
];

/// The variable a test checks against a fixed collection of literals with `op` (`x not in {"a", "b"}`,
/// `x in ("a", "b")`): the name, when the test is exactly that.
fn allow_listed(test: &Expr, op: ast::CmpOp) -> Option<String> {
    let Expr::Compare(c) = test else {
        return None;
    };
    let (Expr::Name(n), [o], [right]) = (&*c.left, &*c.ops, &*c.comparators) else {
        return None;
    };
    if *o != op {
        return None;
    }
    let elts = match right {
        Expr::List(l) => &l.elts,
        Expr::Tuple(t) => &t.elts,
        Expr::Set(s) => &s.elts,
        _ => return None,
    };
    let literal = |e: &Expr| {
        matches!(
            e,
            Expr::StringLiteral(_)
                | Expr::NumberLiteral(_)
                | Expr::BooleanLiteral(_)
                | Expr::NoneLiteral(_)
        )
    };
    (!elts.is_empty() && elts.iter().all(literal)).then(|| n.id.to_string())
}

/// True when a call to `callee` is this sink: it matches `calls` and none of `except_calls`.
fn sink_matches(spec: &SinkSpec, callee: &str) -> bool {
    spec.calls.iter().any(|p| glob(p, callee)) && !spec.except_calls.iter().any(|p| glob(p, callee))
}

/// Request headers that carry credentials to the service they authenticate to.
fn auth_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization"
            | "proxy-authorization"
            | "x-api-key"
            | "api-key"
            | "apikey"
            | "x-auth-token"
            | "x-access-token"
            | "private-token"
            | "x-functions-key"
            | "ocp-apim-subscription-key"
            | "x-databricks-azure-sp-management-token"
    )
}

fn credential_name() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(r"(?i)(pass(word|wd)?|pwd|secret|token|api_?key|access_?key|private_?key|credential|auth)")
            .expect("valid regex")
    })
}

#[derive(Debug)]
struct Flow {
    kind: String,
    /// What the source is, for messages (`dbutils.secrets.get(…)`, `AWS access key id`).
    what: String,
    steps: Vec<Step>,
}

impl Flow {
    fn key(&self) -> (String, u32, usize, u32) {
        let s = &self.steps[0].loc;
        (self.kind.clone(), s.cell, s.start as usize, s.end)
    }
}

/// An abstract value: the flows it carries and, when known, its constant string value and — for a dict
/// built with literal keys — each key's value (so `cfg["env"]` is not tainted by `cfg["password"]`).
#[derive(Debug, Clone, Default)]
struct Val {
    taint: Vec<Rc<Flow>>,
    konst: Option<String>,
    keys: Option<Rc<std::collections::BTreeMap<String, Val>>>,
}

impl Val {
    fn clean() -> Val {
        Val::default()
    }

    /// Adds `other`'s flows, keeping this value's constant (a literal that is also a credential is still
    /// that literal).
    fn add_taint(&mut self, other: &Val) {
        let konst = self.konst.take();
        self.add(other);
        self.konst = konst;
    }

    fn add(&mut self, other: &Val) {
        // Merged with anything that is not plainly clean, per-key knowledge is gone.
        if !other.taint.is_empty() || other.keys.is_some() {
            self.keys = None;
        }
        for f in &other.taint {
            if self.taint.len() >= MAX_FLOWS {
                break;
            }
            if !self
                .taint
                .iter()
                .any(|g| Rc::ptr_eq(f, g) || g.key() == f.key())
            {
                self.taint.push(f.clone());
            }
        }
        if self.konst != other.konst {
            self.konst = None;
        }
    }

    fn union<'v>(vals: impl IntoIterator<Item = &'v Val>) -> Val {
        let mut out = Val::clean();
        for v in vals {
            for f in &v.taint {
                if out.taint.len() < MAX_FLOWS && !out.taint.iter().any(|g| g.key() == f.key()) {
                    out.taint.push(f.clone());
                }
            }
        }
        out
    }

    fn with_step(&self, step: Step) -> Val {
        Val {
            keys: self.keys.clone(),
            taint: self
                .taint
                .iter()
                .map(|f| {
                    let mut steps = f.steps.clone();
                    if steps.len() < MAX_STEPS && steps.last().map(|s| &s.loc) != Some(&step.loc) {
                        steps.push(step.clone());
                    }
                    Rc::new(Flow {
                        kind: f.kind.clone(),
                        what: f.what.clone(),
                        steps,
                    })
                })
                .collect(),
            konst: self.konst.clone(),
        }
    }
}

#[derive(Clone, Copy)]
enum Func<'a> {
    Def(usize, &'a ast::StmtFunctionDef),
    Lambda(usize, &'a ast::ExprLambda),
}

type Scope = HashMap<String, Val>;

/// Line starts of a cell, for (line, column) positions.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    pub(crate) fn pos(&self, text: &str, offset: usize) -> (u32, u32) {
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.starts[line];
        let col = text
            .get(start..offset.min(text.len()))
            .map_or(0, |s| s.chars().count());
        (line as u32 + 1, col as u32 + 1)
    }
}

pub(crate) struct Engine<'a> {
    rules: &'a Rules,
    cells: &'a [Cell],
    lines: Vec<LineIndex>,
    globals: Scope,
    frames: Vec<Scope>,
    returns: Vec<Val>,
    functions: HashMap<String, Func<'a>>,
    active: Vec<String>,
    aliases: HashMap<String, String>,
    cell: usize,
    pub findings: Vec<Finding>,
    seen: HashSet<String>,
    pub facts: Vec<CellFacts>,
}

impl<'a> Engine<'a> {
    pub(crate) fn new(rules: &'a Rules, cells: &'a [Cell]) -> Self {
        Engine {
            rules,
            cells,
            lines: cells.iter().map(|c| LineIndex::new(&c.code)).collect(),
            globals: Scope::new(),
            frames: vec![],
            returns: vec![],
            functions: HashMap::new(),
            active: vec![],
            aliases: HashMap::new(),
            cell: 0,
            findings: vec![],
            seen: HashSet::new(),
            facts: cells
                .iter()
                .map(|c| CellFacts {
                    cell_id: c.id.clone(),
                    ..CellFacts::default()
                })
                .collect(),
        }
    }

    /// Analyzes one parsed cell (`module` parsed from the cell's body).
    pub(crate) fn run_cell(&mut self, cell: usize, module: &'a ast::ModModule) {
        self.cell = cell;
        self.stmts(&module.body);
    }

    fn loc(&self, range: TextRange) -> Loc {
        let cell = &self.cells[self.cell];
        let (s, e) = (
            cell.body_offset + usize::from(range.start()),
            cell.body_offset + usize::from(range.end()),
        );
        span_loc(self.cell, cell, &self.lines[self.cell], s, e)
    }

    fn step(&self, range: TextRange, note: impl Into<String>) -> Step {
        Step {
            loc: self.loc(range),
            note: note.into(),
        }
    }

    fn text(&self, range: TextRange) -> &str {
        let cell = &self.cells[self.cell];
        let (s, e) = (
            cell.body_offset + usize::from(range.start()),
            cell.body_offset + usize::from(range.end()),
        );
        cell.code.get(s..e).unwrap_or("")
    }

    fn short(&self, range: TextRange) -> String {
        let t = self.text(range).replace('\n', " ");
        if t.chars().count() > 60 {
            format!("{}…", t.chars().take(59).collect::<String>())
        } else {
            t
        }
    }

    // ------------------------------------------------------------------ scopes

    fn scope(&self) -> &Scope {
        self.frames.last().unwrap_or(&self.globals)
    }

    fn scope_mut(&mut self) -> &mut Scope {
        match self.frames.last_mut() {
            Some(f) => f,
            None => &mut self.globals,
        }
    }

    fn lookup(&self, name: &str) -> Val {
        if let Some(f) = self.frames.last()
            && let Some(v) = f.get(name)
        {
            return v.clone();
        }
        self.globals.get(name).cloned().unwrap_or_default()
    }

    fn merge_scopes(into: &mut Scope, other: &Scope) {
        for (k, v) in other {
            match into.get_mut(k) {
                Some(mine) => mine.add(v),
                None => {
                    into.insert(k.clone(), v.clone());
                }
            }
        }
    }

    /// Runs `branches` from the same starting scope and merges what they leave; `fallthrough` adds the
    /// path where none of them runs.
    fn branches(&mut self, branches: &[&'a [Stmt]], fallthrough: bool) {
        let before = self.scope().clone();
        let mut merged: Option<Scope> = fallthrough.then(|| before.clone());
        for body in branches {
            *self.scope_mut() = before.clone();
            self.stmts(body);
            match &mut merged {
                Some(m) => Self::merge_scopes(m, self.scope()),
                None => merged = Some(self.scope().clone()),
            }
        }
        if let Some(m) = merged {
            *self.scope_mut() = m;
        }
    }

    // ------------------------------------------------------------------ statements

    fn stmts(&mut self, body: &'a [Stmt]) {
        for s in body {
            self.stmt(s);
        }
    }

    /// Every statement and expression walk passes through here: stack growth per level (see `guard`).
    fn stmt(&mut self, s: &'a Stmt) {
        crate::guard::with_stack(|| self.stmt_inner(s));
    }

    fn stmt_inner(&mut self, s: &'a Stmt) {
        match s {
            Stmt::Assign(a) => {
                if let (Some(Expr::Name(n)), Expr::Lambda(l)) =
                    (a.targets.first(), a.value.as_ref())
                    && a.targets.len() == 1
                {
                    self.functions
                        .insert(n.id.to_string(), Func::Lambda(self.cell, l));
                }
                // Pairwise unpacking of literal tuples keeps the elements apart.
                if a.targets.len() == 1
                    && let (Some(targets), Some(elts)) =
                        (seq_elts(&a.targets[0]), seq_elts(&a.value))
                    && targets.len() == elts.len()
                    && !elts
                        .iter()
                        .chain(targets)
                        .any(|e| matches!(e, Expr::Starred(_)))
                {
                    let vals: Vec<Val> = elts.iter().map(|e| self.eval(e)).collect();
                    for ((target, val), e) in targets.iter().zip(vals).zip(elts.iter()) {
                        self.assign(target, val, Some(e));
                    }
                    return;
                }
                let v = self.eval(&a.value);
                for t in &a.targets {
                    self.assign(t, v.clone(), Some(&a.value));
                }
            }
            Stmt::AugAssign(a) => {
                let mut v = self.eval(&a.target);
                v.konst = None;
                let r = self.eval(&a.value);
                v.add(&r);
                v.konst = None;
                self.assign(&a.target, v, None);
            }
            Stmt::AnnAssign(a) => {
                if let Some(value) = &a.value {
                    let v = self.eval(value);
                    self.assign(&a.target, v, Some(value));
                }
            }
            Stmt::Expr(e) => {
                self.eval(&e.value);
            }
            Stmt::FunctionDef(f) => {
                // `def connect(password="…")`: a credential-named parameter's literal default.
                for p in f
                    .parameters
                    .posonlyargs
                    .iter()
                    .chain(&f.parameters.args)
                    .chain(&f.parameters.kwonlyargs)
                {
                    if let Some(d) = p.default.as_deref() {
                        let mut v = self.eval(d);
                        self.name_literal(p.parameter.name.as_str(), &mut v, d.range());
                    }
                }
                let name = f.name.to_string();
                self.scope_mut().remove(&name);
                self.functions.insert(name.clone(), Func::Def(self.cell, f));
                // Analyze the body once as defined (parameters unknown), so problems inside functions
                // that are never called are found too; calls analyze it again with real arguments.
                if !self.active.contains(&name) {
                    self.active.push(name);
                    self.frames.push(Scope::new());
                    self.returns.push(Val::clean());
                    self.stmts(&f.body);
                    self.returns.pop();
                    self.frames.pop();
                    self.active.pop();
                }
            }
            Stmt::ClassDef(c) => {
                self.frames.push(Scope::new());
                self.returns.push(Val::clean());
                self.stmts(&c.body);
                self.returns.pop();
                self.frames.pop();
            }
            Stmt::Return(r) => {
                if let Some(v) = &r.value {
                    let v = self.eval(v);
                    if let Some(acc) = self.returns.last_mut() {
                        acc.add(&v);
                    }
                }
            }
            Stmt::Delete(d) => {
                for t in &d.targets {
                    if let Expr::Name(n) = t {
                        self.scope_mut().remove(n.id.as_str());
                    }
                }
            }
            Stmt::If(i) => {
                self.eval(&i.test);
                let mut bodies: Vec<&'a [Stmt]> = vec![&i.body];
                let mut has_else = false;
                for clause in &i.elif_else_clauses {
                    if let Some(t) = &clause.test {
                        self.eval(t);
                    } else {
                        has_else = true;
                    }
                    bodies.push(&clause.body);
                }
                self.branches(&bodies, !has_else);
                // `if x not in {"a", "b"}: raise …`: past this point x is one of the listed constants.
                if i.elif_else_clauses.is_empty()
                    && i.body.last().is_some_and(|s| {
                        matches!(s, Stmt::Raise(_) | Stmt::Return(_) | Stmt::Continue(_) | Stmt::Break(_))
                            || matches!(s, Stmt::Expr(e) if matches!(&*e.value, Expr::Call(c)
                                if matches!(self.callee(&c.func).as_str(),
                                    "sys.exit" | "exit" | "quit" | "dbutils.notebook.exit" | "os._exit")))
                    })
                    && let Some(name) = allow_listed(&i.test, ast::CmpOp::NotIn)
                {
                    self.scope_mut().insert(name, Val::clean());
                }
            }
            Stmt::For(f) => {
                let it = self.eval(&f.iter);
                let before = self.scope().clone();
                for _ in 0..2 {
                    self.assign(&f.target, it.clone(), Some(&f.iter));
                    self.stmts(&f.body);
                }
                let mut after = self.scope().clone();
                Self::merge_scopes(&mut after, &before);
                *self.scope_mut() = after;
                self.stmts(&f.orelse);
            }
            Stmt::While(w) => {
                let before = self.scope().clone();
                for _ in 0..2 {
                    self.eval(&w.test);
                    self.stmts(&w.body);
                }
                let mut after = self.scope().clone();
                Self::merge_scopes(&mut after, &before);
                *self.scope_mut() = after;
                self.stmts(&w.orelse);
            }
            Stmt::With(w) => {
                for item in &w.items {
                    let v = self.eval(&item.context_expr);
                    if let Some(target) = &item.optional_vars {
                        let v = v.with_step(self.step(
                            item.range(),
                            format!("`with … as {}`", self.short(target.range())),
                        ));
                        self.assign(target, v, None);
                    }
                }
                self.stmts(&w.body);
            }
            Stmt::Try(t) => {
                self.stmts(&t.body);
                let handlers: Vec<&'a [Stmt]> = t
                    .handlers
                    .iter()
                    .map(|h| match h {
                        ast::ExceptHandler::ExceptHandler(h) => &h.body[..],
                    })
                    .collect();
                self.branches(&handlers, true);
                self.stmts(&t.orelse);
                self.stmts(&t.finalbody);
            }
            Stmt::Match(m) => {
                self.eval(&m.subject);
                let bodies: Vec<&'a [Stmt]> = m.cases.iter().map(|c| &c.body[..]).collect();
                self.branches(&bodies, true);
            }
            Stmt::Raise(r) => {
                if let Some(e) = &r.exc {
                    self.eval(e);
                }
            }
            Stmt::Assert(a) => {
                self.eval(&a.test);
                if let Some(m) = &a.msg {
                    self.eval(m);
                }
                // `assert x in ("a", "b")`: past this point x is one of the listed constants.
                if let Some(name) = allow_listed(&a.test, ast::CmpOp::In) {
                    self.scope_mut().insert(name, Val::clean());
                }
            }
            Stmt::Import(i) => {
                for alias in &i.names {
                    let full = alias.name.to_string();
                    match &alias.asname {
                        Some(a) => {
                            self.aliases.insert(a.to_string(), full);
                        }
                        None => {
                            let head = full.split('.').next().unwrap_or(&full).to_string();
                            self.aliases.insert(head.clone(), head);
                        }
                    }
                }
            }
            Stmt::ImportFrom(i) => {
                let module = i
                    .module
                    .as_ref()
                    .map(std::string::ToString::to_string)
                    .unwrap_or_default();
                for alias in &i.names {
                    let name = alias.name.to_string();
                    let local = alias
                        .asname
                        .as_ref()
                        .map_or(name.clone(), std::string::ToString::to_string);
                    self.aliases.insert(local, format!("{module}.{name}"));
                }
            }
            Stmt::IpyEscapeCommand(c) => {
                let text = c.value.to_string();
                self.facts[self.cell]
                    .magics
                    .push(format!("{}{}", c.kind.as_str(), text));
            }
            Stmt::TypeAlias(_)
            | Stmt::Global(_)
            | Stmt::Nonlocal(_)
            | Stmt::Pass(_)
            | Stmt::Break(_)
            | Stmt::Continue(_) => {}
        }
    }

    fn assign(&mut self, target: &'a Expr, val: Val, value: Option<&'a Expr>) {
        crate::guard::with_stack(|| self.assign_inner(target, val, value));
    }

    fn assign_inner(&mut self, target: &'a Expr, val: Val, value: Option<&'a Expr>) {
        match target {
            Expr::Name(n) => {
                let name = n.id.to_string();
                let mut val = val;
                // A credential-looking constant assigned to a credential-named variable.
                if let (Some(k), Some(value)) = (val.konst.clone(), value) {
                    let named = self.named_literal_flows(&name, &k, value.range());
                    val.add(&named);
                }
                let val = if val.taint.is_empty() {
                    val
                } else {
                    val.with_step(self.step(target.range(), format!("assigned to `{name}`")))
                };
                self.scope_mut().insert(name, val);
            }
            Expr::Tuple(t) => {
                for e in &t.elts {
                    self.assign(e, val.clone(), None);
                }
            }
            Expr::List(l) => {
                for e in &l.elts {
                    self.assign(e, val.clone(), None);
                }
            }
            Expr::Starred(s) => self.assign(&s.value, val, None),
            // `x.attr = v` / `x[k] = v`: x now also holds v (weak update).
            Expr::Attribute(ast::ExprAttribute { value: base, .. })
            | Expr::Subscript(ast::ExprSubscript { value: base, .. }) => {
                let mut val = val;
                // `self.password = "…"`, `conf["password"] = "…"`: the attribute or key names it.
                let name = match target {
                    Expr::Subscript(s) => self.eval(&s.slice).konst,
                    Expr::Attribute(a) => Some(a.attr.to_string()),
                    _ => None,
                };
                if let (Some(n), Some(value)) = (name, value) {
                    self.name_literal(&n, &mut val, value.range());
                }
                // `cfg["k"] = v` on a dict whose keys are known: only that key changes.
                let key_konst = match target {
                    Expr::Subscript(s) if matches!(&*s.value, Expr::Name(_)) => {
                        self.eval(&s.slice).konst
                    }
                    _ => None,
                };
                if let Some(name) = base_name(base) {
                    if self.callee(target).starts_with("os.environ") {
                        self.sink_check(
                            "os.environ.__setitem__",
                            target.range(),
                            None,
                            &[(&val, target.range())],
                            &[],
                        );
                    }
                    let mut cur = self.lookup(&name);
                    cur.konst = None;
                    let new_keys = match (&cur.keys, key_konst) {
                        (Some(keys), Some(k)) => {
                            let mut m = (**keys).clone();
                            m.insert(k, val.clone());
                            Some(Rc::new(m))
                        }
                        _ => None,
                    };
                    if !val.taint.is_empty() {
                        cur.add(&val.with_step(self.step(
                            target.range(),
                            format!("stored in `{}`", self.short(target.range())),
                        )));
                        cur.konst = None;
                    }
                    cur.keys = new_keys;
                    self.scope_mut().insert(name, cur);
                }
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ literals

    /// A string literal: its constant value, plus a flow for every literal source it matches.
    fn literal_flows(&mut self, s: &str, range: TextRange) -> Val {
        let mut out = self.literal_source_flows(None, s, range);
        out.konst = Some(s.to_string());
        out
    }

    /// The name a compared value goes by: a variable, an attribute, or a subscript with a constant key.
    fn compared_name(&mut self, e: &'a Expr) -> Option<String> {
        match e {
            Expr::Name(n) => Some(n.id.to_string()),
            Expr::Attribute(a) => Some(a.attr.to_string()),
            Expr::Subscript(s) => self.eval(&s.slice).konst,
            _ => None,
        }
    }

    /// A literal given the name `name` — passed as a keyword, set under a key or attribute, a parameter's
    /// default: adds to `v` the flows of the literal sources whose credential-name condition `name` meets
    /// (`v` keeps its constant).
    fn name_literal(&mut self, name: &str, v: &mut Val, range: TextRange) {
        if let Some(k) = v.konst.clone() {
            let named = self.named_literal_flows(name, &k, range);
            v.add_taint(&named);
        }
    }

    /// A constant assigned to `name`: flows for the literal sources that need a credential-like name.
    fn named_literal_flows(&mut self, name: &str, s: &str, range: TextRange) -> Val {
        self.literal_source_flows(Some(name), s, range)
    }

    /// Flows for the literal sources matching `s`: those without a `credential_name` condition when `name`
    /// is `None`, those whose condition matches `name` otherwise.
    fn literal_source_flows(&mut self, name: Option<&str>, s: &str, range: TextRange) -> Val {
        let mut out = Val::clean();
        for spec in &self.rules.literal_sources {
            let applies = match (&spec.credential_name, name) {
                (None, None) => true,
                (Some(re), Some(n)) => re.is_match(n),
                _ => false,
            };
            if !applies
                || !spec.pattern.is_match(s)
                || spec.not_pattern.as_ref().is_some_and(|n| n.is_match(s))
                || spec.min_entropy.is_some_and(|m| entropy(s) < m)
            {
                continue;
            }
            let note = match name {
                None => format!("string literal: {}", spec.name),
                Some(n) => format!("string literal assigned to `{n}`: {}", spec.name),
            };
            let flow = Rc::new(Flow {
                kind: spec.kind.clone(),
                what: spec.name.clone(),
                steps: vec![self.step(range, note)],
            });
            self.report_at_source(&flow);
            out.taint.push(flow);
        }
        out
    }

    // ------------------------------------------------------------------ expressions

    fn eval(&mut self, e: &'a Expr) -> Val {
        crate::guard::with_stack(|| self.eval_inner(e))
    }

    fn eval_inner(&mut self, e: &'a Expr) -> Val {
        match e {
            Expr::StringLiteral(s) => {
                let text = s.value.to_str().to_string();
                self.literal_flows(&text, s.range())
            }
            Expr::FString(f) => {
                let mut out = Val::clean();
                let mut all_literal = true;
                let mut text = String::new();
                for el in f.value.elements() {
                    match el {
                        ast::InterpolatedStringElement::Interpolation(i) => {
                            all_literal = false;
                            let v = self.eval(&i.expression);
                            out.add(&v);
                        }
                        ast::InterpolatedStringElement::Literal(l) => text.push_str(&l.value),
                    }
                }
                out.konst = all_literal.then_some(text);
                out
            }
            Expr::Name(n) => {
                if self.aliases.contains_key(n.id.as_str()) {
                    self.name_patterns(e);
                }
                self.lookup(n.id.as_str())
            }
            Expr::BinOp(b) => {
                let l = self.eval(&b.left);
                let r = self.eval(&b.right);
                let mut out = Val::union([&l, &r]);
                if matches!(b.op, ast::Operator::Add)
                    && let (Some(x), Some(y)) = (&l.konst, &r.konst)
                {
                    let joined = format!("{x}{y}");
                    // A credential assembled from pieces is found on the whole.
                    let pieces = Val::union([&l, &r]);
                    let whole = self.literal_flows(&joined, b.range());
                    out = Val::union([&pieces, &whole]);
                    out.konst = Some(joined);
                }
                out
            }
            Expr::Call(c) => self.call(c),
            Expr::Attribute(a) => {
                self.name_patterns(e);
                let mut v = self.eval(&a.value);
                v.konst = None;
                v
            }
            Expr::Subscript(s) => {
                let base = self.eval(&s.value);
                let key = self.eval(&s.slice);
                // A dict built with literal keys: `cfg["env"]` is that key's value only.
                if let (Some(keys), Some(k)) = (&base.keys, &key.konst) {
                    return keys.get(k).cloned().unwrap_or_default();
                }
                if self.callee(&s.value) == "os.environ"
                    && let Some(v) = self.source_for("os.environ[]", &[key], s.range())
                {
                    return v;
                }
                let mut v = base;
                v.konst = None;
                v
            }
            Expr::Dict(d) => {
                let mut out = Val::clean();
                let mut per_key: Option<std::collections::BTreeMap<String, Val>> =
                    Some(Default::default());
                for item in &d.items {
                    let mut key = None;
                    if let Some(k) = &item.key {
                        let kv = self.eval(k);
                        key = kv.konst.clone();
                        out.add(&kv);
                    }
                    let mut vv = self.eval(&item.value);
                    // `{"password": "…"}`, `extra_configs={"fs.azure.account.key.…": "…"}`.
                    if let Some(k) = &key {
                        self.name_literal(k, &mut vv, item.value.range());
                    }
                    out.add(&vv);
                    match (&mut per_key, key) {
                        (Some(m), Some(k)) => {
                            m.insert(k, vv);
                        }
                        _ => per_key = None,
                    }
                }
                out.keys = per_key.map(Rc::new);
                out.konst = None;
                out
            }
            Expr::List(ast::ExprList { elts, .. })
            | Expr::Tuple(ast::ExprTuple { elts, .. })
            | Expr::Set(ast::ExprSet { elts, .. }) => {
                let vals: Vec<Val> = elts.iter().map(|x| self.eval(x)).collect();
                Val::union(&vals)
            }
            Expr::ListComp(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::SetComp(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::Generator(c) => self.comprehension(&c.generators, &[&c.elt]),
            Expr::DictComp(c) => {
                let mut elts: Vec<&'a Expr> = vec![&c.value];
                if let Some(k) = c.key.as_deref() {
                    elts.push(k);
                }
                self.comprehension(&c.generators, &elts)
            }
            Expr::If(i) => {
                self.eval(&i.test);
                let a = self.eval(&i.body);
                let b = self.eval(&i.orelse);
                Val::union([&a, &b])
            }
            Expr::BoolOp(b) => {
                let vals: Vec<Val> = b.values.iter().map(|x| self.eval(x)).collect();
                Val::union(&vals)
            }
            Expr::Compare(c) => {
                let mut prev: &Expr = &c.left;
                let mut prev_v = self.eval(&c.left);
                for (op, x) in c.ops.iter().zip(c.comparators.iter()) {
                    let mut xv = self.eval(x);
                    // `password == "root"`, `obj.password != "…"`: a credential checked against a literal
                    // is a hardcoded one.
                    if matches!(op, ast::CmpOp::Eq | ast::CmpOp::NotEq) {
                        for (named, (lit, lit_v)) in
                            [(prev, (x, &mut xv)), (x, (prev, &mut prev_v))]
                        {
                            if matches!(lit, Expr::StringLiteral(_))
                                && let Some(n) = self.compared_name(named)
                            {
                                self.name_literal(&n, lit_v, lit.range());
                            }
                        }
                    }
                    prev = x;
                    prev_v = xv;
                }
                Val::clean()
            }
            Expr::UnaryOp(u) => {
                let v = self.eval(&u.operand);
                if matches!(u.op, ast::UnaryOp::Not) {
                    Val::clean()
                } else {
                    v
                }
            }
            Expr::Named(n) => {
                let v = self.eval(&n.value);
                self.assign(&n.target, v.clone(), Some(&n.value));
                v
            }
            Expr::Await(a) => self.eval(&a.value),
            Expr::Starred(s) => self.eval(&s.value),
            Expr::Yield(y) => {
                let v = y.value.as_ref().map(|x| self.eval(x)).unwrap_or_default();
                if let Some(acc) = self.returns.last_mut() {
                    acc.add(&v);
                }
                v
            }
            Expr::YieldFrom(y) => self.eval(&y.value),
            Expr::Slice(s) => {
                for x in [&s.lower, &s.upper, &s.step].into_iter().flatten() {
                    self.eval(x);
                }
                Val::clean()
            }
            Expr::Lambda(_)
            | Expr::TString(_)
            | Expr::BytesLiteral(_)
            | Expr::NumberLiteral(_)
            | Expr::BooleanLiteral(_)
            | Expr::NoneLiteral(_)
            | Expr::EllipsisLiteral(_)
            | Expr::IpyEscapeCommand(_) => Val::clean(),
        }
    }

    fn comprehension(&mut self, generators: &'a [ast::Comprehension], elts: &[&'a Expr]) -> Val {
        // Comprehension variables do not leak: remember and restore what they shadowed.
        let mut saved: Vec<(String, Option<Val>)> = vec![];
        for g in generators {
            let it = self.eval(&g.iter);
            for n in target_names(&g.target) {
                let old = self.scope().get(&n).cloned();
                saved.push((n, old));
            }
            self.assign(&g.target, it, Some(&g.iter));
            for cond in &g.ifs {
                self.eval(cond);
            }
        }
        let vals: Vec<Val> = elts.iter().map(|x| self.eval(x)).collect();
        for (n, old) in saved.into_iter().rev() {
            match old {
                Some(v) => {
                    self.scope_mut().insert(n, v);
                }
                None => {
                    self.scope_mut().remove(&n);
                }
            }
        }
        Val::union(&vals)
    }

    /// The dotted name of a callee or object after import aliases: `dbutils.secrets.get`,
    /// `requests.post` (for `r.post` after `import requests as r`), `df.toPandas().to_csv`.
    fn callee(&self, e: &Expr) -> String {
        call_chain(e, |id| {
            self.aliases
                .get(id)
                .cloned()
                .unwrap_or_else(|| id.to_string())
        })
    }

    fn source_for(&mut self, callee: &str, args: &[Val], range: TextRange) -> Option<Val> {
        for spec in &self.rules.sources {
            for pat in &spec.calls {
                let (pat, cond) = match pat.split_once(':') {
                    Some((p, c)) => (p, Some(c)),
                    None => (pat.as_str(), None),
                };
                if !glob(pat, callee) {
                    continue;
                }
                if cond == Some("credential")
                    && !args
                        .first()
                        .and_then(|a| a.konst.as_deref())
                        .is_some_and(|k| credential_name().is_match(k))
                {
                    continue;
                }
                let what = format!("{}(…)", callee.trim_end_matches("[]"));
                let flow = Rc::new(Flow {
                    kind: spec.kind.clone(),
                    what: what.clone(),
                    steps: vec![self.step(
                        range,
                        format!("source {}: {}", spec.kind, self.short(range)),
                    )],
                });
                return Some(Val {
                    taint: vec![flow],
                    ..Val::default()
                });
            }
        }
        None
    }

    fn call(&mut self, c: &'a ast::ExprCall) -> Val {
        let callee = self.callee(&c.func);
        let receiver: Option<(Val, TextRange)> = match c.func.as_ref() {
            Expr::Attribute(a) => Some((self.eval(&a.value), a.value.range())),
            _ => None,
        };
        let mut args: Vec<Val> = c.arguments.args.iter().map(|a| self.eval(a)).collect();
        let mut kws: Vec<(Option<String>, Val)> = c
            .arguments
            .keywords
            .iter()
            .map(|k| {
                (
                    k.arg.as_ref().map(std::string::ToString::to_string),
                    self.eval(&k.value),
                )
            })
            .collect();
        // A literal passed as a credential-named keyword (`password="…"`), or set under a credential
        // configuration key (`spark.conf.set("fs.azure.account.key.…", "…")`): a hardcoded credential
        // whatever the value looks like.
        for (i, (name, v)) in kws.iter_mut().enumerate() {
            if let Some(n) = name.as_deref() {
                self.name_literal(n, v, c.arguments.keywords[i].value.range());
            }
        }
        if CONFIG_SETTERS.iter().any(|g| glob(g, &callee))
            && let Some(key) = args.first().and_then(|a| a.konst.clone())
            && let Some(value) = args.get_mut(1)
        {
            self.name_literal(&key, value, c.arguments.args[1].range());
        }

        self.patterns(&callee, c);
        let arg_parts: Vec<(&Val, TextRange)> = args
            .iter()
            .zip(c.arguments.args.iter())
            .map(|(v, e)| (v, e.range()))
            .collect();
        // `headers={"Authorization": "Bearer " + tok, …}`: an authentication header authenticates the
        // request, it is not data sent to the service; the other headers still are. Split once: (sent,
        // authenticating, where).
        let headers: Option<(Val, Val, TextRange)> = c.arguments.keywords.iter().find_map(|k| {
            let Expr::Dict(d) = &k.value else {
                return None;
            };
            (k.arg.as_ref()?.as_str() == "headers").then(|| {
                let (mut sent, mut auth) = (Vec::new(), Vec::new());
                for item in &d.items {
                    let v = self.eval(&item.value);
                    let is_auth = item.key.as_ref().is_some_and(|key| {
                        matches!(key, Expr::StringLiteral(s) if auth_header(s.value.to_str()))
                    });
                    if is_auth { &mut auth } else { &mut sent }.push(v);
                }
                (Val::union(&sent), Val::union(&auth), k.value.range())
            })
        });
        let sent_headers = headers.as_ref().map(|(s, _, _)| s);
        let auth_headers = headers.as_ref().map(|(_, a, r)| (a, *r));
        let mut kw_parts: Vec<(Option<&str>, &Val, TextRange)> = kws
            .iter()
            .zip(c.arguments.keywords.iter())
            .map(|((n, v), k)| match (n.as_deref(), sent_headers) {
                (Some("headers"), Some(h)) => (Some("headers"), h, k.value.range()),
                _ => (n.as_deref(), v, k.value.range()),
            })
            .collect();
        if let Some((v, r)) = auth_headers {
            kw_parts.push((Some("auth"), v, r));
        }
        self.sink_check(
            &callee,
            c.range(),
            receiver.as_ref().map(|(v, r)| (v, *r)),
            &arg_parts,
            &kw_parts,
        );
        self.collect_facts(&callee, &args, &kws);
        let clean_result = self
            .rules
            .sinks
            .iter()
            .any(|spec| spec.clean_result && sink_matches(spec, &callee));

        if let Some(v) = self.source_for(&callee, &args, c.range()) {
            return v;
        }
        if clean_result {
            return Val::clean();
        }
        // User-defined function or lambda (by plain name).
        if let Expr::Name(n) = c.func.as_ref()
            && let Some(f) = self.functions.get(n.id.as_str()).copied()
        {
            return self.inline(n.id.as_str(), f, &args, &kws, c.range());
        }
        if self.rules.sanitizers.iter().any(|p| glob(p, &callee)) {
            return Val::clean();
        }
        // `cfg.get("env", default)` on a dict whose keys are known.
        if let Expr::Attribute(a) = c.func.as_ref()
            && a.attr.as_str() == "get"
            && let Some((r, _)) = &receiver
            && let Some(keys) = &r.keys
            && let Some(k) = args.first().and_then(|v| v.konst.as_ref())
        {
            return keys
                .get(k)
                .cloned()
                .or_else(|| args.get(1).cloned())
                .unwrap_or_default();
        }
        // Mutating methods: `xs.append(secret)` taints `xs`.
        if let Expr::Attribute(a) = c.func.as_ref()
            && matches!(
                a.attr.as_str(),
                "append" | "extend" | "insert" | "add" | "update" | "setdefault" | "put"
            )
            && let Some(name) = base_name(&a.value)
        {
            let all = Val::union(args.iter().chain(kws.iter().map(|(_, v)| v)));
            if !all.taint.is_empty() {
                let mut cur = self.lookup(&name);
                cur.add(&all.with_step(self.step(c.range(), format!("added to `{name}`"))));
                cur.konst = None;
                self.scope_mut().insert(name, cur);
            }
            return Val::clean();
        }
        if self.rules.propagators.iter().any(|p| glob(p, &callee)) {
            let mut parts: Vec<&Val> = args.iter().chain(kws.iter().map(|(_, v)| v)).collect();
            if let Some((r, _)) = &receiver {
                parts.push(r);
            }
            return Val::union(parts);
        }
        match receiver {
            // A method's result is derived from its object (`df.filter(…)`, `s.upper()`).
            Some((r, _)) => Val {
                taint: r.taint,
                ..Val::default()
            },
            // Unknown functions do not pass taint through: `len(token)` is not the token.
            None => Val::clean(),
        }
    }

    fn inline(
        &mut self,
        name: &str,
        f: Func<'a>,
        args: &[Val],
        kws: &[(Option<String>, Val)],
        call: TextRange,
    ) -> Val {
        if self.frames.len() >= MAX_DEPTH || self.active.iter().any(|a| a == name) {
            // Recursion or too deep: assume the result carries the arguments.
            return Val::union(args.iter().chain(kws.iter().map(|(_, v)| v)));
        }
        let params: &ast::Parameters = match f {
            Func::Def(_, d) => &d.parameters,
            Func::Lambda(_, l) => match &l.parameters {
                Some(p) => p,
                None => {
                    return self.run_lambda(f, Scope::new(), name);
                }
            },
        };
        let mut frame = Scope::new();
        let positional: Vec<&ast::ParameterWithDefault> = params
            .posonlyargs
            .iter()
            .chain(params.args.iter())
            .collect();
        for (i, p) in positional.iter().enumerate() {
            let pname = p.parameter.name.as_str();
            let v = args
                .get(i)
                .cloned()
                .or_else(|| {
                    kws.iter()
                        .find(|(k, _)| k.as_deref() == Some(pname))
                        .map(|(_, v)| v.clone())
                })
                .unwrap_or_default();
            frame.insert(
                pname.to_string(),
                if v.taint.is_empty() {
                    v
                } else {
                    v.with_step(self.step(call, format!("passed as `{pname}` to `{name}()`")))
                },
            );
        }
        for p in &params.kwonlyargs {
            let pname = p.parameter.name.as_str();
            if let Some((_, v)) = kws.iter().find(|(k, _)| k.as_deref() == Some(pname)) {
                frame.insert(
                    pname.to_string(),
                    v.with_step(self.step(call, format!("passed as `{pname}` to `{name}()`"))),
                );
            }
        }
        if let Some(va) = &params.vararg {
            let rest = Val::union(args.iter().skip(positional.len()));
            frame.insert(va.name.to_string(), rest);
        }
        if let Some(kw) = &params.kwarg {
            let rest = Val::union(kws.iter().map(|(_, v)| v));
            frame.insert(kw.name.to_string(), rest);
        }
        self.run_lambda(f, frame, name)
    }

    fn run_lambda(&mut self, f: Func<'a>, frame: Scope, name: &str) -> Val {
        let saved_cell = self.cell;
        self.active.push(name.to_string());
        self.frames.push(frame);
        self.returns.push(Val::clean());
        match f {
            Func::Def(cell, d) => {
                self.cell = cell;
                self.stmts(&d.body);
            }
            Func::Lambda(cell, l) => {
                self.cell = cell;
                let v = self.eval(&l.body);
                if let Some(acc) = self.returns.last_mut() {
                    acc.add(&v);
                }
            }
        }
        self.cell = saved_cell;
        self.frames.pop();
        self.active.pop();
        let mut r = self.returns.pop().unwrap_or_default();
        r.konst = None;
        r
    }

    // ------------------------------------------------------------------ sinks, patterns, facts

    fn sink_check(
        &mut self,
        callee: &str,
        call: TextRange,
        receiver: Option<(&Val, TextRange)>,
        args: &[(&Val, TextRange)],
        kws: &[(Option<&str>, &Val, TextRange)],
    ) {
        let rules = self.rules;
        for (i, spec) in rules.sinks.iter().enumerate() {
            if !sink_matches(spec, callee) {
                continue;
            }
            if let Some(re) = &rules.sink_paths[i] {
                let dest = args.first().map(|(v, _)| *v).or_else(|| {
                    kws.iter()
                        .find(|(k, _, _)| matches!(*k, Some("path" | "path_or_buf" | "fname")))
                        .map(|(_, v, _)| *v)
                });
                match dest {
                    None => continue,
                    Some(d) => {
                        if let Some(k) = &d.konst
                            && !re.is_match(k)
                        {
                            continue;
                        }
                    }
                }
            }
            let all = spec.args.is_empty() && spec.keywords.is_empty() && !spec.receiver;
            let mut parts: Vec<(&Val, TextRange)> = vec![];
            if spec.receiver
                && let Some(r) = receiver
            {
                parts.push(r);
            }
            for (j, a) in args.iter().enumerate() {
                if all || spec.args.contains(&j) {
                    parts.push(*a);
                }
            }
            for (k, v, r) in kws {
                if k.is_some_and(|k| spec.except_keywords.iter().any(|s| s == k)) {
                    continue;
                }
                if all || k.is_some_and(|k| spec.keywords.iter().any(|s| s == k)) {
                    parts.push((v, *r));
                }
            }
            for (val, range) in parts {
                self.reaches(&spec.kind, callee, call, val, range);
            }
            // What a request's `except_keywords` carry (credentials that authenticate it) is used for
            // authentication: the rules about hardcoded credentials still see it there.
            for (k, v, r) in kws {
                if k.is_some_and(|k| spec.except_keywords.iter().any(|s| s == k)) {
                    self.reaches("Authentication", callee, call, v, *r);
                }
            }
        }
    }

    /// Reports every rule whose source is one of `val`'s flows and whose sinks include `kind`.
    fn reaches(&mut self, kind: &str, callee: &str, call: TextRange, val: &Val, range: TextRange) {
        let rules = self.rules;
        for flow in &val.taint {
            for rule in &rules.rules {
                if rule.at_source
                    || !rule.sinks.iter().any(|s| s == kind)
                    || !rule.sources.contains(&flow.kind)
                {
                    continue;
                }
                let mut trace = flow.steps.clone();
                trace.push(self.step(call, format!("reaches {kind} through `{callee}`")));
                self.report(rule.finding(
                    &flow.what,
                    &format!("{kind} (`{callee}`)"),
                    self.loc(range),
                    &flow.kind,
                    Some(kind),
                    trace,
                ));
            }
        }
    }

    fn report_at_source(&mut self, flow: &Flow) {
        let rules = self.rules;
        for rule in &rules.rules {
            if rule.at_source && rule.sources.contains(&flow.kind) {
                self.report(rule.finding(
                    &flow.what,
                    "",
                    flow.steps[0].loc.clone(),
                    &flow.kind,
                    None,
                    flow.steps.clone(),
                ));
            }
        }
    }

    fn report(&mut self, f: Finding) {
        let s = &f.trace[0].loc;
        let key = format!(
            "{}|{}|{}|{}|{}|{}|{}",
            f.code,
            f.location.cell,
            f.location.start,
            f.location.end,
            f.source_kind,
            s.cell,
            s.start
        );
        if self.seen.insert(key) {
            self.findings.push(f);
        }
    }

    /// Pattern rules on names: the use of `ssl.PROTOCOL_SSLv3` (or `from ssl import PROTOCOL_SSLv3`).
    fn name_patterns(&mut self, e: &'a Expr) {
        let rules = self.rules;
        if rules.patterns.iter().all(|p| p.names.is_empty()) {
            return;
        }
        let name = self.callee(e);
        for p in &rules.patterns {
            if !p.names.iter().any(|g| glob(g, &name)) {
                continue;
            }
            self.report_pattern(p, &name, e.range(), format!("use of `{name}`"));
        }
    }

    /// A pattern rule's finding at `range`: `what` fills the message's `{call}`.
    fn report_pattern(&mut self, p: &PatternRule, what: &str, range: TextRange, note: String) {
        let loc = self.loc(range);
        self.report(Finding {
            code: p.code.clone(),
            rule: p.name.clone(),
            pysa_code: None,
            severity: p.severity.clone(),
            message: p.message.replace("{call}", what),
            location: loc.clone(),
            source_kind: String::new(),
            sink_kind: None,
            trace: vec![Step { loc, note }],
        });
    }

    fn patterns(&mut self, callee: &str, c: &'a ast::ExprCall) {
        let rules = self.rules;
        for p in &rules.patterns {
            if !p.calls.iter().any(|g| glob(g, callee)) {
                continue;
            }
            let kw = |name: &str| {
                c.arguments
                    .keywords
                    .iter()
                    .find(|k| k.arg.as_ref().is_some_and(|a| a.as_str() == name))
            };
            if let Some(name) = &p.keyword_false
                && !kw(name)
                    .is_some_and(|k| matches!(&k.value, Expr::BooleanLiteral(b) if !b.value))
            {
                continue;
            }
            if let Some(name) = &p.unless_keyword_true
                && kw(name).is_some_and(|k| matches!(&k.value, Expr::BooleanLiteral(b) if b.value))
            {
                continue;
            }
            if let Some(cond) = &p.unless_keyword_in
                && let Some(value) = kw(&cond.keyword)
                    .map(|k| &k.value)
                    .or_else(|| cond.position.and_then(|i| c.arguments.args.get(i)))
            {
                let v = self.callee(value);
                if cond
                    .values
                    .iter()
                    .any(|x| *x == v || v.ends_with(&format!(".{x}")))
                {
                    continue;
                }
            }
            self.report_pattern(p, callee, c.range(), format!("call to `{callee}`"));
        }
    }

    fn collect_facts(&mut self, callee: &str, args: &[Val], kws: &[(Option<String>, Val)]) {
        let arg = |i: usize, name: &str| -> Option<String> {
            kws.iter()
                .find(|(k, _)| k.as_deref() == Some(name))
                .and_then(|(_, v)| v.konst.clone())
                .or_else(|| args.get(i).and_then(|v| v.konst.clone()))
        };
        let facts = &mut self.facts[self.cell];
        match callee {
            "dbutils.secrets.get" | "dbutils.secrets.getBytes" => {
                facts.secrets.push(format!(
                    "{}/{}",
                    arg(0, "scope").unwrap_or_else(|| "?".into()),
                    arg(1, "key").unwrap_or_else(|| "?".into())
                ));
            }
            _ => {}
        }
        if (glob("*.to_csv", callee)
            || glob("*.to_parquet", callee)
            || glob("*.to_json", callee)
            || glob("*.save", callee)
            || glob("dbutils.fs.put", callee))
            && let Some(p) = arg(0, "path").or_else(|| arg(0, "path_or_buf"))
        {
            facts.files_written.push(p);
        }
        for v in args.iter().chain(kws.iter().map(|(_, v)| v)) {
            if let Some(k) = &v.konst
                && (k.starts_with("http://") || k.starts_with("https://"))
                && !facts.urls.contains(k)
            {
                facts.urls.push(k.clone());
            }
        }
    }
}

/// The [`Loc`] of bytes `start..end` of cell number `index`.
pub(crate) fn span_loc(
    index: usize,
    cell: &Cell,
    lines: &LineIndex,
    start: usize,
    end: usize,
) -> Loc {
    let (line, col) = lines.pos(&cell.code, start);
    let (end_line, end_col) = lines.pos(&cell.code, end);
    Loc {
        cell: index as u32,
        cell_id: cell.id.clone(),
        line,
        col,
        end_line,
        end_col,
        start: start as u32,
        end: end as u32,
    }
}

/// `a.b().c[0].d` as text (`?` for a link that is not a name, attribute, call or subscript), the base
/// name spelled by `name`. Walked in a loop and cut to its last [`MAX_CHAIN`] links after `…`.
pub(crate) fn call_chain(e: &Expr, name: impl Fn(&str) -> String) -> String {
    let mut links: Vec<String> = Vec::new();
    let mut e = e;
    loop {
        if links.len() >= MAX_CHAIN {
            links.push("…".into());
            break;
        }
        match e {
            Expr::Name(n) => {
                links.push(name(n.id.as_str()));
                break;
            }
            Expr::Attribute(a) => {
                links.push(format!(".{}", a.attr.as_str()));
                e = &a.value;
            }
            Expr::Call(c) => {
                links.push("()".into());
                e = &c.func;
            }
            Expr::Subscript(s) => {
                links.push("[]".into());
                e = &s.value;
            }
            _ => {
                links.push("?".into());
                break;
            }
        }
    }
    links.iter().rev().map(String::as_str).collect()
}

/// Callee chains longer than this many links are named by their last links after `…` (a chain is walked
/// for every call in it: unbounded, a 5,000-link chain would cost 5,000² string pushes).
const MAX_CHAIN: usize = 64;

fn base_name(e: &Expr) -> Option<String> {
    let mut e = e;
    loop {
        match e {
            Expr::Name(n) => return Some(n.id.to_string()),
            Expr::Attribute(a) => e = &a.value,
            Expr::Subscript(s) => e = &s.value,
            _ => return None,
        }
    }
}

fn target_names(e: &Expr) -> Vec<String> {
    crate::guard::with_stack(|| target_names_inner(e))
}

fn target_names_inner(e: &Expr) -> Vec<String> {
    match e {
        Expr::Name(n) => vec![n.id.to_string()],
        Expr::Tuple(t) => t.elts.iter().flat_map(target_names).collect(),
        Expr::List(l) => l.elts.iter().flat_map(target_names).collect(),
        Expr::Starred(s) => target_names(&s.value),
        _ => vec![],
    }
}

fn seq_elts(e: &Expr) -> Option<&[Expr]> {
    match e {
        Expr::Tuple(t) => Some(&t.elts),
        Expr::List(l) => Some(&l.elts),
        _ => None,
    }
}

/// Shannon entropy in bits per character.
pub(crate) fn entropy(s: &str) -> f64 {
    let mut counts: HashMap<char, usize> = HashMap::new();
    let n = s.chars().count();
    if n == 0 {
        return 0.0;
    }
    for c in s.chars() {
        *counts.entry(c).or_default() += 1;
    }
    counts
        .values()
        .map(|&k| {
            let p = k as f64 / n as f64;
            -p * p.log2()
        })
        .sum()
}

/// Cells that are analyzed as Python.
pub(crate) fn is_python(c: &Cell) -> bool {
    c.lang == Lang::Python
}
