//! # nbtrail-highlight
//!
//! Syntax highlighting of notebook cells, shared by every front end: the app (colour tokens, through
//! `nbtrail-ops`), the CLI's replay (24-bit terminal colours) and the evidence report (HTML spans). It owns:
//!
//! * the one loaded syntect syntax set (loading it takes tens of milliseconds, so it happens once per
//!   process, on first use) and the two palettes: [`Palette::Light`] for the app and the report,
//!   [`Palette::Dark`] for terminals;
//! * the one rule for which syntax a cell gets ([`syntax_token`]): the syntax its leading magic names
//!   (`%sql`, `%md`, `%scala`, `%sh`), else its recorded language, else Python — so a cell looks the same
//!   in the app, the terminal and the report;
//! * highlighting line by line ([`Highlighter::line`]), never failing: a line syntect cannot handle comes
//!   back as one plain range.
//!
//! It returns styles and slices of the input only. Escaping is the caller's job and depends on where text
//! goes (`nbtrail_model::display` for what must never be shown raw, HTML escaping for the report).

use std::sync::OnceLock;
use syntect::easy::HighlightLines;
use syntect::highlighting::{Theme, ThemeSet};
use syntect::parsing::SyntaxSet;

pub use syntect::highlighting::{Color, Style};
pub use syntect::util::LinesWithEndings;

/// Which colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    /// Dark text on a light background (syntect's `InspiredGitHub`): the app and the evidence report.
    Light,
    /// Light text on a dark background (`base16-ocean.dark`): terminals.
    Dark,
}

struct Assets {
    syntaxes: SyntaxSet,
    light: Theme,
    dark: Theme,
}

fn assets() -> &'static Assets {
    static A: OnceLock<Assets> = OnceLock::new();
    A.get_or_init(|| {
        let mut themes = ThemeSet::load_defaults().themes;
        let mut take = |name: &str| {
            themes
                .remove(name)
                .unwrap_or_else(|| panic!("syntect's default themes include {name}"))
        };
        Assets {
            syntaxes: SyntaxSet::load_defaults_newlines(),
            light: take("InspiredGitHub"),
            dark: take("base16-ocean.dark"),
        }
    })
}

/// The syntect token of the syntax a cell is highlighted with: the one its leading magic names, else its
/// recorded language (case-insensitive), else Python (the notebooks' default language).
pub fn syntax_token(code: &str, language: Option<&str>) -> &'static str {
    let first = code.trim_start();
    for (magic, token) in [
        ("%sql", "sql"),
        ("%md", "md"),
        ("%scala", "scala"),
        ("%sh", "sh"),
    ] {
        if first.starts_with(magic) {
            return token;
        }
    }
    match language.map(str::to_ascii_lowercase).as_deref() {
        Some("sql") => "sql",
        Some("scala") => "scala",
        Some("r") => "r",
        Some("markdown" | "md") => "md",
        Some("sh" | "shell" | "bash") => "sh",
        _ => "py",
    }
}

/// Highlights one cell, line by line, in order (syntect carries state from line to line).
pub struct Highlighter {
    lines: HighlightLines<'static>,
}

impl Highlighter {
    /// A highlighter for `code` recorded as `language`, in `palette`.
    pub fn new(code: &str, language: Option<&str>, palette: Palette) -> Highlighter {
        let a = assets();
        let syntax = a
            .syntaxes
            .find_syntax_by_token(syntax_token(code, language))
            .unwrap_or_else(|| a.syntaxes.find_syntax_plain_text());
        let theme = match palette {
            Palette::Light => &a.light,
            Palette::Dark => &a.dark,
        };
        Highlighter {
            lines: HighlightLines::new(syntax, theme),
        }
    }

    /// The styled ranges of the next `line` (with its line ending, as [`LinesWithEndings`] gives it).
    /// They cover the line exactly; if syntect fails on it, one range in the default style.
    pub fn line<'l>(&mut self, line: &'l str) -> Vec<(Style, &'l str)> {
        self.lines
            .highlight_line(line, &assets().syntaxes)
            .unwrap_or_else(|_| vec![(Style::default(), line)])
    }
}

/// `ranges` as text with 24-bit terminal colour escapes (the caller resets the colour after).
pub fn terminal_escaped(ranges: &[(Style, &str)]) -> String {
    syntect::util::as_24_bit_terminal_escaped(ranges, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leading_magic_wins_over_the_recorded_language() {
        assert_eq!(syntax_token("%sql SELECT 1", Some("python")), "sql");
        assert_eq!(syntax_token("  %sh ls /dbfs", None), "sh");
        assert_eq!(syntax_token("%md # Notes", Some("python")), "md");
        assert_eq!(syntax_token("x = 1", Some("SQL")), "sql");
        assert_eq!(syntax_token("x <- 1", Some("r")), "r");
        assert_eq!(syntax_token("x = 1", None), "py");
        assert_eq!(syntax_token("x = 1", Some("cobol")), "py");
    }

    #[test]
    fn every_syntax_a_cell_can_get_exists_and_ranges_cover_each_line() {
        for (code, lang) in [
            ("%sql SELECT * FROM t WHERE a = 'x'\n", None),
            ("%md\n# Title\n*note*\n", None),
            ("%sh\nfor f in $(ls /tmp); do echo \"$f\"; done\n", None),
            ("val x = 1\n", Some("scala")),
            ("x <- c(1, 2)\n", Some("r")),
            ("import os\nprint(os.environ['HOME'])\n", Some("python")),
        ] {
            let a = assets();
            assert!(
                a.syntaxes
                    .find_syntax_by_token(syntax_token(code, lang))
                    .is_some(),
                "{code}"
            );
            for palette in [Palette::Light, Palette::Dark] {
                let mut h = Highlighter::new(code, lang, palette);
                let mut colours = std::collections::HashSet::new();
                for line in LinesWithEndings::from(code) {
                    let ranges = h.line(line);
                    assert_eq!(ranges.iter().map(|(_, t)| *t).collect::<String>(), line);
                    colours.extend(
                        ranges
                            .iter()
                            .map(|(s, _)| (s.foreground.r, s.foreground.g, s.foreground.b)),
                    );
                }
                assert!(colours.len() >= 2, "{code}: {colours:?}");
            }
        }
    }
}
