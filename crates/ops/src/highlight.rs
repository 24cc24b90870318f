//! Code highlighting as data: syntect tokens with colours and the marks (finding spans, trace steps) that
//! cover them. Front ends render each token as a text node with a colour — never as HTML — so code from a
//! log can't inject markup, and control characters (ANSI escapes among them) are shown as Unicode control
//! pictures (`ESC` → `␛`), one character for one, so columns stay right.

use serde::Serialize;
use std::sync::OnceLock;
use syntect::easy::HighlightLines;
use syntect::highlighting::{Theme, ThemeSet};
use syntect::parsing::SyntaxSet;

use crate::Span;

/// A run of characters with one colour and one set of marks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Token {
    /// The text (control characters replaced by their pictures; no newline).
    pub text: String,
    /// Foreground colour, `#rrggbb`.
    pub color: String,
    /// Keys of the marks covering this text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<String>,
}

/// A range to mark, named by a key the front end understands (e.g. `f12` for finding 12's sink).
#[derive(Debug, Clone)]
pub struct Mark {
    /// The key.
    pub key: String,
    /// 1-based lines and columns (characters), end exclusive.
    pub span: Span,
}

fn assets() -> &'static (SyntaxSet, Theme) {
    static A: OnceLock<(SyntaxSet, Theme)> = OnceLock::new();
    A.get_or_init(|| {
        let ss = SyntaxSet::load_defaults_newlines();
        let mut themes = ThemeSet::load_defaults();
        let theme = themes
            .themes
            .remove("InspiredGitHub")
            .unwrap_or_else(|| themes.themes.into_values().next().expect("a theme"));
        (ss, theme)
    })
}

/// The syntax for a cell: its language, or SQL for a `%sql` cell.
fn syntax_token(code: &str, language: Option<&str>) -> &'static str {
    let first = code.trim_start();
    if first.starts_with("%sql") {
        return "sql";
    }
    if first.starts_with("%md") {
        return "md";
    }
    if first.starts_with("%scala") {
        return "scala";
    }
    if first.starts_with("%sh") {
        return "sh";
    }
    match language.map(|l| l.to_ascii_lowercase()).as_deref() {
        Some("sql") => "sql",
        Some("scala") => "scala",
        Some("r") => "r",
        Some("markdown") | Some("md") => "md",
        Some("sh") | Some("shell") => "sh",
        _ => "py",
    }
}

/// Shows a control character as its Unicode picture (one character for one).
pub fn picture(c: char) -> char {
    match c {
        '\t' => c,
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        '\u{7f}' => '\u{2421}',
        '\u{80}'..='\u{9f}' => '\u{fffd}',
        _ => c,
    }
}

/// Highlights `code`, one `Vec<Token>` per line, splitting tokens where `marks` begin and end.
pub fn highlight(code: &str, language: Option<&str>, marks: &[Mark]) -> Vec<Vec<Token>> {
    let (ss, theme) = assets();
    let syntax = ss
        .find_syntax_by_token(syntax_token(code, language))
        .unwrap_or_else(|| ss.find_syntax_plain_text());
    let mut h = HighlightLines::new(syntax, theme);
    let mut out = Vec::new();
    for (i, line) in syntect::util::LinesWithEndings::from(code).enumerate() {
        let n = i as u32 + 1;
        let body = line.strip_suffix('\n').unwrap_or(line);
        let body = body.strip_suffix('\r').unwrap_or(body);
        // Marks on this line as [from, to) in 1-based columns.
        let on_line: Vec<(&str, u32, u32)> = marks
            .iter()
            .filter(|m| m.span.line <= n && n <= m.span.end_line.max(m.span.line))
            .map(|m| {
                let from = if n == m.span.line {
                    m.span.col.max(1)
                } else {
                    1
                };
                let to = if n == m.span.end_line {
                    m.span.end_col
                } else {
                    u32::MAX
                };
                (m.key.as_str(), from, to.max(from + 1))
            })
            .collect();
        let ranges = h
            .highlight_line(line, ss)
            .unwrap_or_else(|_| vec![(syntect::highlighting::Style::default(), line)]);
        let mut tokens: Vec<Token> = Vec::new();
        let mut col = 1u32;
        let mut budget = body.chars().count();
        for (style, text) in ranges {
            let c = style.foreground;
            let color = format!("#{:02x}{:02x}{:02x}", c.r, c.g, c.b);
            for ch in text.chars() {
                if budget == 0 {
                    break;
                }
                budget -= 1;
                let keys: Vec<String> = on_line
                    .iter()
                    .filter(|(_, from, to)| *from <= col && col < *to)
                    .map(|(k, _, _)| k.to_string())
                    .collect();
                match tokens.last_mut() {
                    Some(t) if t.color == color && t.marks == keys => t.text.push(picture(ch)),
                    _ => tokens.push(Token {
                        text: picture(ch).to_string(),
                        color: color.clone(),
                        marks: keys,
                    }),
                }
                col += 1;
            }
        }
        out.push(tokens);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Vec<Token>]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.iter().map(|t| t.text.as_str()).collect())
            .collect()
    }

    #[test]
    fn tokens_rebuild_the_code_and_are_coloured() {
        let code = "import os\nkey = dbutils.secrets.get('s', 'k')\nprint(key)";
        let lines = highlight(code, Some("python"), &[]);
        assert_eq!(
            text(&lines),
            vec![
                "import os",
                "key = dbutils.secrets.get('s', 'k')",
                "print(key)"
            ]
        );
        // Python keywords and strings get colours of their own.
        let colors: std::collections::HashSet<&str> =
            lines.iter().flatten().map(|t| t.color.as_str()).collect();
        assert!(colors.len() >= 3, "{colors:?}");
    }

    #[test]
    fn marks_split_tokens_exactly_at_their_columns() {
        let code = "x = 1\nprint(secret_value)\n";
        let marks = [Mark {
            key: "f7".into(),
            span: Span {
                line: 2,
                col: 7,
                end_line: 2,
                end_col: 19,
            },
        }];
        let lines = highlight(code, None, &marks);
        let marked: String = lines[1]
            .iter()
            .filter(|t| t.marks == ["f7"])
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(marked, "secret_value");
        assert!(lines[0].iter().all(|t| t.marks.is_empty()));
    }

    #[test]
    fn multi_line_marks_cover_the_lines_between() {
        let code = "a = f(\n  b,\n  c)\nd";
        let marks = [Mark {
            key: "t1.0".into(),
            span: Span {
                line: 1,
                col: 5,
                end_line: 3,
                end_col: 5,
            },
        }];
        let lines = highlight(code, None, &marks);
        let marked = |l: &Vec<Token>| -> String {
            l.iter()
                .filter(|t| !t.marks.is_empty())
                .map(|t| t.text.as_str())
                .collect()
        };
        assert_eq!(marked(&lines[0]), "f(");
        assert_eq!(marked(&lines[1]), "  b,");
        assert_eq!(marked(&lines[2]), "  c)");
        assert_eq!(marked(&lines[3]), "");
    }

    #[test]
    fn markup_stays_text_and_control_characters_become_pictures() {
        let code = "print('<script>alert(1)</script>')\n\u{1b}[31mred\u{1b}[0m";
        let lines = highlight(code, None, &[]);
        let t = text(&lines);
        assert_eq!(t[0], "print('<script>alert(1)</script>')");
        assert_eq!(t[1], "\u{241b}[31mred\u{241b}[0m");
    }

    #[test]
    fn sql_magic_cells_use_sql() {
        assert_eq!(syntax_token("%sql\nSELECT 1", Some("python")), "sql");
        assert_eq!(syntax_token("SELECT 1", Some("SQL")), "sql");
        assert_eq!(syntax_token("x", None), "py");
    }
}
