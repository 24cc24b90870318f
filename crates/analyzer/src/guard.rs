//! Resource bounds for untrusted code: what a cell may cost before it is parsed and walked.
//!
//! Cell code comes from audit logs, so anyone who can type into a notebook chooses it. A deeply nested
//! expression (`x = 1+1+…` with 20,000 terms, `a.b.c…`, `f()()()…`, `((((…`, `not not …`, `lambda:
//! lambda: …`) fails in Python (`RecursionError` while compiling) but is still logged, and every tree walk
//! over its syntax tree — our taint engine, the table extractor, even dropping the tree — recurses once per
//! level. A stack overflow aborts the process (`catch_unwind` cannot stop it), so one such cell used to
//! blind the analysis of a whole case and, through indexing, every later `search`.
//!
//! The rule: before parsing, [`check`] bounds the cell's size ([`MAX_CELL_BYTES`]) and a conservative
//! estimate of its syntax tree's depth ([`MAX_NESTING`]), computed in one pass over `ruff`'s lexer tokens
//! (no recursion). A cell over either bound is not parsed; the analyzer reports it as a finding
//! (`cell-not-analyzed`) so an auditor sees that it exists and why it was skipped, instead of a hole.
//! Cells within the bounds are walked with stack growth ([`with_stack`], `stacker`), so the bound, not
//! the thread's stack size, decides what is analyzed.
//!
//! The estimate is an upper bound on the tree's depth: every token that can add a level (an operator,
//! `.`, a keyword, an opening bracket, an f-string) adds one to the current "chain"; a `,` ends a sibling
//! (list elements, arguments, dict items are siblings, not nested) but never below the level a `lambda`
//! opened; a logical newline or `;` ends a statement; each indentation level adds two (a compound statement
//! and its body). CPython itself refuses code much shallower than [`MAX_NESTING`] (200 nested brackets in
//! its tokenizer, ~1,000–3,000 levels in its compiler), so no cell Python would run is skipped for depth.

use ruff_python_ast::token::TokenKind;
use ruff_python_parser::{Mode, lexer};

/// Cells larger than this (bytes) are not parsed or walked: reported as not analyzed.
pub const MAX_CELL_BYTES: usize = 8 << 20;

/// Cells whose estimated syntax-tree depth exceeds this are not parsed or walked.
pub const MAX_NESTING: usize = 5_000;

/// Why a cell was not analyzed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Larger than [`MAX_CELL_BYTES`].
    TooLarge {
        /// The cell's size in bytes.
        bytes: usize,
    },
    /// Nested deeper than [`MAX_NESTING`] (estimated).
    TooDeep {
        /// Estimated depth where the scan stopped (it stops at the first point past the bound).
        depth: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooLarge { bytes } => write!(
                f,
                "cell of {bytes} bytes is larger than the analyzer's bound of {MAX_CELL_BYTES} bytes"
            ),
            Refusal::TooDeep { depth } => write!(
                f,
                "code nested more than {MAX_NESTING} levels deep (at least {depth}); Python itself \
                 refuses such code (RecursionError while compiling)"
            ),
        }
    }
}

/// Whether `code` (Python, IPython mode) is within the analyzer's bounds.
pub fn check(code: &str) -> Result<(), Refusal> {
    bounded(code, nesting_estimate)
}

/// Size bound, then `estimate`'s depth bound (skipped for text too short to nest past it: each level of
/// nesting takes at least one byte).
fn bounded(text: &str, estimate: fn(&str, usize) -> usize) -> Result<(), Refusal> {
    if text.len() > MAX_CELL_BYTES {
        return Err(Refusal::TooLarge { bytes: text.len() });
    }
    if text.len() <= MAX_NESTING {
        return Ok(());
    }
    match estimate(text, MAX_NESTING) {
        depth if depth > MAX_NESTING => Err(Refusal::TooDeep { depth }),
        _ => Ok(()),
    }
}

/// An upper bound on the depth of `code`'s syntax tree, computed from its tokens; stops as soon as the
/// depth exceeds `stop_above`.
pub fn nesting_estimate(code: &str, stop_above: usize) -> usize {
    // One entry per open bracket level: (chain length, floor a `,` resets the chain to).
    let mut levels: Vec<(usize, usize)> = vec![(0, 0)];
    // Sum over `levels` of (chain + 1), kept incrementally.
    let mut sum = 1usize;
    let mut indent = 0usize;
    let mut max = 0usize;
    let mut lx = lexer::lex(code, Mode::Ipython);
    loop {
        let kind = lx.next_token();
        let top = levels.len() - 1;
        match kind {
            TokenKind::EndOfFile => break,
            TokenKind::Indent => indent += 1,
            TokenKind::Dedent => indent = indent.saturating_sub(1),
            TokenKind::Newline | TokenKind::Semi => {
                // A logical line ends: back to statement level (brackets are closed by then when the
                // code is valid; for invalid code, keep what is open — it only over-counts).
                let (chain, floor) = &mut levels[top];
                sum -= *chain;
                *chain = 0;
                *floor = 0;
            }
            TokenKind::Comma => {
                let (chain, floor) = &mut levels[top];
                sum -= *chain - *floor;
                *chain = *floor;
            }
            TokenKind::Lpar | TokenKind::Lsqb | TokenKind::Lbrace => {
                levels[top].0 += 1;
                levels.push((0, 0));
                sum += 2;
            }
            TokenKind::Rpar | TokenKind::Rsqb | TokenKind::Rbrace => {
                if levels.len() > 1 {
                    let (chain, _) = levels.pop().expect("more than one level");
                    sum -= chain + 1;
                }
            }
            TokenKind::Lambda => {
                let (chain, floor) = &mut levels[top];
                *chain += 1;
                *floor = *chain;
                sum += 1;
            }
            TokenKind::Name
            | TokenKind::Int
            | TokenKind::Float
            | TokenKind::Complex
            | TokenKind::String
            | TokenKind::FStringMiddle
            | TokenKind::FStringEnd
            | TokenKind::TStringMiddle
            | TokenKind::TStringEnd
            | TokenKind::Comment
            | TokenKind::NonLogicalNewline
            | TokenKind::IpyEscapeCommand
            | TokenKind::True
            | TokenKind::False
            | TokenKind::None
            | TokenKind::Ellipsis
            | TokenKind::Pass
            | TokenKind::Break
            | TokenKind::Continue => {}
            // Operators, `.`, `:`, keywords, f-string starts, unknown tokens: may add a level.
            _ => {
                levels[top].0 += 1;
                sum += 1;
            }
        }
        let depth = sum + 2 * indent;
        if depth > max {
            max = depth;
            if max > stop_above {
                return max;
            }
        }
    }
    max
}

/// Whether SQL text is within the bounds for `sqlparser`. Its parser limits recursion, but builds
/// left-associative chains (`1+1+…`, `a AND b AND …`, `SELECT … UNION SELECT …`) in a loop, so their
/// trees — and the visitor and drop that recurse over them — grow without bound. Same estimate as for
/// Python, over a character scan (strings, quoted names and comments skipped): operator characters and
/// the keywords that chain (`AND`, `OR`, `NOT`, `UNION`, `CASE`…) add a level; `,` and `;` end a chain.
pub fn check_sql(sql: &str) -> Result<(), Refusal> {
    bounded(sql, sql_nesting_estimate)
}

/// An upper bound on the depth of the tree `sqlparser` builds for `sql`; stops once past `stop_above`.
pub fn sql_nesting_estimate(sql: &str, stop_above: usize) -> usize {
    const CHAINING: &[&str] = &[
        "and",
        "or",
        "not",
        "is",
        "in",
        "like",
        "ilike",
        "rlike",
        "regexp",
        "between",
        "case",
        "when",
        "then",
        "else",
        "div",
        "xor",
        "collate",
        "union",
        "intersect",
        "except",
        "minus",
        "escape",
        "similar",
        "overlaps",
        "at",
        "over",
        "interval",
        "exists",
        "any",
        "all",
        "some",
        "cast",
    ];
    let b = sql.as_bytes();
    let mut levels: Vec<usize> = vec![0];
    let mut sum = 1usize;
    let mut max = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let top = levels.len() - 1;
        match c {
            b'\'' | b'"' | b'`' => {
                // Quoted: skip to the closing quote (doubled quotes and backslash escapes stay inside).
                i += 1;
                while i < b.len() {
                    if b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == c {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'(' | b'[' | b'{' => {
                levels[top] += 1;
                levels.push(0);
                sum += 2;
            }
            b')' | b']' | b'}' => {
                if levels.len() > 1 {
                    sum -= levels.pop().expect("more than one level") + 1;
                }
            }
            b',' | b';' => {
                sum -= levels[top];
                levels[top] = 0;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = &sql[start..i];
                if CHAINING.iter().any(|k| word.eq_ignore_ascii_case(k)) {
                    levels[top] += 1;
                    sum += 1;
                }
                continue;
            }
            c if c.is_ascii_whitespace() || c.is_ascii_digit() || c >= 0x80 => {}
            _ => {
                levels[top] += 1;
                sum += 1;
            }
        }
        i += 1;
        if sum > max {
            max = sum;
            if max > stop_above {
                return max;
            }
        }
    }
    max
}

/// Runs `f` on a stack of at least `bytes` (a fresh segment when the current stack has less): for the
/// recursion inside third-party code we cannot instrument (a `sqlparser` visit, dropping a deep tree)
/// whose depth [`check`] / [`check_sql`] has already bounded.
pub fn with_deep_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(DEEP_STACK / 2, DEEP_STACK, f)
}

const DEEP_STACK: usize = 64 * 1024 * 1024;

/// Runs `f` — a loop over many cells or sessions, each of which calls [`with_deep_stack`] — on one deep
/// stack segment, so that those calls find their room on it. Without it each call maps a fresh 64 MB
/// segment and unmaps it again: a page fault per stack page it touches, and a TLB shootdown (an
/// inter-processor interrupt to every core running the process) per unmap — 12 % of building the search
/// index in `perf`, one segment per distinct cell text. The guarantee is unchanged: a
/// [`with_deep_stack`] call inside still has at least half of [`DEEP_STACK`] to itself, or grows as
/// before (when `f` itself went deeper than [`SCOPE_MARGIN`] first).
pub fn deep_stack_scope<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(DEEP_STACK / 2 + SCOPE_MARGIN, DEEP_STACK + SCOPE_MARGIN, f)
}

/// Room in a [`deep_stack_scope`] for the frames between it and the [`with_deep_stack`] calls inside.
const SCOPE_MARGIN: usize = 8 * 1024 * 1024;

/// Runs `f` with at least `red_zone` bytes of stack, growing onto the heap (`stacker`) when the current
/// stack has less. Every recursive walk over untrusted trees calls this once per level.
#[inline]
pub fn with_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, STACK_SEGMENT, f)
}

const RED_ZONE: usize = 128 * 1024;
const STACK_SEGMENT: usize = 4 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(code: &str) -> usize {
        nesting_estimate(code, usize::MAX)
    }

    #[test]
    fn flat_data_is_shallow_however_long() {
        let rows: String = (0..20_000)
            .map(|i| format!("({i}, 'x{i}'.upper()), "))
            .collect();
        let code = format!("data = [{rows}]\nprint(len(data))\n");
        assert!(depth(&code) < 12, "{}", depth(&code));
        assert!(check(&code).is_ok());
        let dict: String = (0..20_000).map(|i| format!("'k{i}': {i}, ")).collect();
        assert!(depth(&format!("d = {{{dict}}}")) < 10);
    }

    #[test]
    fn every_kind_of_deep_chain_is_counted() {
        let n = 6_000;
        for code in [
            format!("x = {}", vec!["1"; n].join("+")),
            format!("x = a{}", ".b".repeat(n)),
            format!("x = f{}", "()".repeat(n)),
            format!("x = {}a{}", "(".repeat(n), ")".repeat(n)),
            format!("x = {}a", "not ".repeat(n)),
            format!("x = {}1", "lambda a, b: ".repeat(n)),
            format!("x = {}1", "-".repeat(n)),
            format!("x = {}", vec!["2"; n].join("**")),
            format!("x = {}0", "1 if c else ".repeat(n)),
            format!("x = {}", "[".repeat(n)),
            format!("x = f'{}'", "{f'".repeat(n / 2)),
        ] {
            assert!(
                matches!(check(&code), Err(Refusal::TooDeep { .. })),
                "not refused: {}…",
                &code[..40.min(code.len())]
            );
        }
    }

    #[test]
    fn ordinary_code_is_far_below_the_bound() {
        let code = "import requests\nfor i in range(10):\n    if i % 2:\n        r = requests.post(url, json={'a': [1, 2, {'b': f(x.y(z))}]})\n";
        assert!(depth(code) < 40, "{}", depth(code));
    }

    #[test]
    fn sql_chains_are_counted_and_flat_lists_are_not() {
        let n = 6_000;
        for sql in [
            format!("SELECT {}", vec!["1"; n].join("+")),
            format!("SELECT * FROM t WHERE {}", vec!["a = 1"; n].join(" AND ")),
            vec!["SELECT 1"; n].join(" UNION ALL "),
            format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n)),
        ] {
            assert!(matches!(check_sql(&sql), Err(Refusal::TooDeep { .. })));
        }
        let cols: Vec<String> = (0..20_000).map(|i| format!("t.c{i} + 1 AS x{i}")).collect();
        let sql = format!("SELECT {} FROM t WHERE a = ')))' -- (((\n", cols.join(", "));
        assert!(check_sql(&sql).is_ok());
        assert!(sql_nesting_estimate(&sql, usize::MAX) < 10);
    }

    /// The address of a local on the current stack.
    fn stack_address() -> usize {
        let local = 0u8;
        std::hint::black_box(&local) as *const u8 as usize
    }

    /// Regression: indexing a case mapped and unmapped a fresh 64 MB stack per distinct cell text (12 % of
    /// the index phase in TLB shootdowns). Inside a scope, `with_deep_stack` runs on the scope's segment —
    /// within [`DEEP_STACK`] + [`SCOPE_MARGIN`] below the scope's own frame (a fresh mapping could not be
    /// there: that range is the live segment) — and still has its half of [`DEEP_STACK`].
    #[test]
    fn deep_stack_is_not_mapped_per_cell_inside_a_scope() {
        deep_stack_scope(|| {
            let top = stack_address();
            for _ in 0..3 {
                let (inner, room) = with_deep_stack(|| {
                    (
                        stack_address(),
                        stacker::remaining_stack().expect("known stack"),
                    )
                });
                assert!(inner < top && top - inner < 1 << 20, "{top:#x} {inner:#x}");
                assert!(room >= DEEP_STACK / 2, "{room}");
            }
        });
        // Outside a scope, on a test thread's 2 MB stack, the call grows a segment of its own: what the
        // scope saves, and the check above can tell the two apart.
        let top = stack_address();
        let inner = with_deep_stack(stack_address);
        assert!(
            top.abs_diff(inner) > 1 << 20,
            "{top:#x} {inner:#x}: with_deep_stack ran on the caller's stack"
        );
    }

    #[test]
    fn size_bound() {
        let code = "#".repeat(MAX_CELL_BYTES + 1);
        assert_eq!(
            check(&code),
            Err(Refusal::TooLarge {
                bytes: MAX_CELL_BYTES + 1
            })
        );
    }
}
