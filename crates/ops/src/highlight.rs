//! Code highlighting as data: syntect tokens with colours and the marks (finding spans, trace steps) that
//! cover them. Front ends render each token as a text node with a colour — never as HTML — so code from a
//! log can't inject markup; control characters (ANSI escapes among them) are shown as Unicode control
//! pictures (`ESC` → `␛`) and bidirectional formatting characters as `\u{…}` escapes
//! (`nbtrail_model::display`). Marks are placed by source character, so they stay on the right text.

use nbtrail_highlight::{Highlighter, LinesWithEndings, Palette};
use nbtrail_model::display::push_shown;
use serde::Serialize;

use crate::Span;
use nbtrail_store::{Case, StoredFinding};

/// A run of characters with one colour and one set of marks.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Token {
    /// The text (hidden characters shown as pictures or escapes, see the module docs; no newline).
    pub text: String,
    /// Foreground colour, `#rrggbb`.
    pub color: String,
    /// Keys of the marks covering this text (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<String>,
}

/// A range to mark, named by a key the front end understands (e.g. `f12` for finding 12's sink).
#[derive(Debug, Clone, ts_rs::TS)]
#[ts(export)]
pub struct Mark {
    /// The key.
    pub key: String,
    /// 1-based lines and columns (characters), end exclusive.
    pub span: Span,
}

/// Highlights `code`, one `Vec<Token>` per line, splitting tokens where `marks` begin and end.
pub fn highlight(code: &str, language: Option<&str>, marks: &[Mark]) -> Vec<Vec<Token>> {
    let mut h = Highlighter::new(code, language, Palette::Light);
    let mut out = Vec::new();
    for (i, line) in LinesWithEndings::from(code).enumerate() {
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
        let ranges = h.line(line);
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
                    Some(t) if t.color == color && t.marks == keys => push_shown(ch, &mut t.text),
                    _ => {
                        let mut text = String::new();
                        push_shown(ch, &mut text);
                        tokens.push(Token {
                            text,
                            color: color.clone(),
                            marks: keys,
                        });
                    }
                }
                col += 1;
            }
        }
        out.push(tokens);
    }
    out
}

/// One cell of a session, highlighted, with its findings' marks.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct HighlightedCell {
    /// The cell's event id.
    pub event_id: i64,
    /// Per line, the tokens ([`highlight`]).
    pub lines: Vec<Vec<Token>>,
}

/// The marks of `findings` located in the cell `event_id`: each finding's sink (`f<id>`) and each step of
/// its trace in that cell (`t<id>.<n>`, `n` counted from the source).
pub fn marks_in_cell(findings: &[StoredFinding], event_id: i64) -> Vec<Mark> {
    let mut marks = Vec::new();
    for f in findings {
        if f.event_id == Some(event_id) {
            marks.push(Mark {
                key: format!("f{}", f.id),
                span: Span {
                    line: f.line,
                    col: f.col,
                    end_line: f.end_line,
                    end_col: f.end_col,
                },
            });
        }
        for (i, t) in f.trace.iter().enumerate() {
            if t.event_id == Some(event_id) {
                marks.push(Mark {
                    key: format!("t{}.{i}", f.id),
                    span: Span {
                        line: t.line,
                        col: t.col,
                        end_line: t.end_line,
                        end_col: t.end_col,
                    },
                });
            }
        }
    }
    marks
}

/// Highlights the cells `event_ids` of session `session_id` from the case — the front end names cells, it
/// never sends code back — with the marks of the session's findings. Ids of events that are not cells of
/// the session are refused, so the view cannot be pointed at another session's code by accident.
pub fn highlight_cells(
    case: &Case,
    session_id: &str,
    event_ids: &[i64],
) -> crate::Result<Vec<HighlightedCell>> {
    let session = case.session(session_id)?;
    let findings = case.findings(Some(&session.id))?;
    let code = case.cell_code(&session.id, event_ids)?;
    event_ids
        .iter()
        .zip(code)
        .map(|(&id, code)| {
            let (text, language) = code.ok_or_else(|| {
                crate::OpsError::Usage(format!(
                    "event {id} is not a cell of session {}",
                    session.id
                ))
            })?;
            Ok(HighlightedCell {
                event_id: id,
                lines: highlight(&text, language.as_deref(), &marks_in_cell(&findings, id)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: i64, event_id: i64, trace: &[(i64, u32)]) -> StoredFinding {
        StoredFinding {
            id,
            session_id: "s".into(),
            event_id: Some(event_id),
            source_event_id: trace.first().map(|t| t.0),
            code: "NBT001".into(),
            rule: "secret-leak".into(),
            severity: "high".into(),
            message: String::new(),
            line: 2,
            col: 7,
            end_line: 2,
            end_col: 10,
            trace: trace
                .iter()
                .map(|&(e, line)| nbtrail_store::TraceStepRecord {
                    event_id: Some(e),
                    line,
                    col: 1,
                    end_line: line,
                    end_col: 4,
                    note: String::new(),
                })
                .collect(),
            fingerprint: String::new(),
            triage: String::new(),
            time_ms: None,
        }
    }

    #[test]
    fn marks_in_cell_are_the_sink_and_the_trace_steps_located_there_only() {
        let f = finding(3, 7, &[(5, 1), (7, 2)]);
        let keys = |e| {
            marks_in_cell(std::slice::from_ref(&f), e)
                .into_iter()
                .map(|m| m.key)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(7), ["f3", "t3.1"]);
        assert_eq!(keys(5), ["t3.0"]);
        assert!(keys(6).is_empty());
    }

    /// A mark from (line, column) to (line, column), end exclusive.
    fn mark(key: &str, (line, col): (u32, u32), (end_line, end_col): (u32, u32)) -> Mark {
        Mark {
            key: key.into(),
            span: Span {
                line,
                col,
                end_line,
                end_col,
            },
        }
    }

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
        let marks = [mark("f7", (2, 7), (2, 19))];
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
        let marks = [mark("t1.0", (1, 5), (3, 5))];
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
    fn bidi_overrides_are_shown_as_escapes_and_marks_stay_on_their_characters() {
        // Trojan Source: the override would make the line display reordered. The mark covers `tok`, which
        // comes after two hidden characters: it must still cover exactly `tok`.
        let code = "x = '\u{202e}\u{2066}' + tok";
        let marks = [mark("f1", (1, 12), (1, 15))];
        let lines = highlight(code, Some("python"), &marks);
        assert_eq!(text(&lines)[0], "x = '\\u{202e}\\u{2066}' + tok");
        let marked: String = lines[0]
            .iter()
            .filter(|t| t.marks.contains(&"f1".to_string()))
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(marked, "tok");
    }
}
