//! How untrusted text is shown, in every front end: the terminal (CLI), the app (highlight tokens) and the
//! evidence report. Cell code, outputs, paths and names come from the people being audited, so text must
//! not be able to hide or disguise itself:
//!
//! * **control characters** (C0 except tab and newline, DEL, C1): ANSI escapes could repaint a terminal,
//!   a carriage return could overwrite a line, NUL could truncate it;
//! * **bidirectional formatting characters** (embeddings, overrides, isolates, and the invisible
//!   left-to-right/right-to-left/Arabic letter marks): they reorder how a line *looks* without changing
//!   what it *is* — the "Trojan Source" trick (CVE-2021-42574), where code reads differently from what
//!   runs;
//! * **invisible and format characters**: every character of Unicode category Cf (zero-width space and
//!   joiners, word joiner, soft hyphen, byte-order mark, invisible operators, interlinear annotations,
//!   the tag characters U+E0000–E007F that can carry a whole hidden text), the line and paragraph
//!   separators U+2028/2029 (a new line to some viewers, none to others), the Hangul fillers (blank
//!   letters, valid in identifiers) and the variation selectors (which can also smuggle hidden bytes), except
//!   U+FE0E/FE0F, the text/emoji presentation selectors.
//!
//! Such characters are shown, never obeyed: as `\u{…}` escapes ([`escaped`]), or — where columns must stay
//! aligned with character offsets, as in highlighted code with finding marks — C0 controls and DEL as their
//! one-character Unicode control pictures (`ESC` → `␛`) and the rest as escapes ([`push_shown`]).

/// True for a character that must not reach a screen as itself (see the module docs). Tab and newline are
/// ordinary.
pub fn must_show_escaped(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    if c.is_ascii() {
        return c.is_ascii_control() && c != '\n' && c != '\t';
    }
    c.is_control()
        || matches!(
            c.general_category(),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
        || matches!(
            c,
            // Tag characters (Cf in current Unicode; listed whole so unassigned ones count too).
            '\u{e0000}'..='\u{e007f}'
            // Hangul fillers: letters that draw nothing.
            | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}'
            // Variation selectors, but the text/emoji presentation ones.
            | '\u{fe00}'..='\u{fe0d}' | '\u{e0100}'..='\u{e01ef}' | '\u{180b}'..='\u{180f}'
        )
}

/// `s` with every character [`must_show_escaped`] written as `\u{hex}`.
pub fn escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_escaped(c, &mut out);
    }
    out
}

/// Appends `c`, as a `\u{hex}` escape if it [`must_show_escaped`]: for callers that escape other characters
/// too (the evidence report's HTML escaping).
pub fn push_escaped(c: char, out: &mut String) {
    if must_show_escaped(c) {
        out.push_str(&format!("\\u{{{:x}}}", c as u32));
    } else {
        out.push(c);
    }
}

/// Appends how `c` is shown where one source character should stay one visible unit: C0 controls and DEL
/// as their Unicode control pictures (one character), other hidden characters as a `\u{hex}` escape,
/// everything else as itself.
pub fn push_shown(c: char, out: &mut String) {
    match c {
        '\t' | '\n' => out.push(c),
        '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}')),
        '\u{7f}' => out.push('\u{2421}'),
        c => push_escaped(c, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn controls_and_bidi_formatting_are_shown_not_obeyed() {
        // The Trojan Source example: an override and isolates that make a comment look like code.
        let trojan = "access = \"user\u{202e} \u{2066}// admin\u{2069} \u{2066}\"";
        assert_eq!(
            escaped(trojan),
            "access = \"user\\u{202e} \\u{2066}// admin\\u{2069} \\u{2066}\""
        );
        assert_eq!(
            escaped("a\u{1b}[2Jb\r\n\tc\u{85}"),
            "a\\u{1b}[2Jb\\u{d}\n\tc\\u{85}"
        );
        let mut shown = String::new();
        for c in "x\u{1b}\u{7f}\u{200f}\u{61c}y\t".chars() {
            push_shown(c, &mut shown);
        }
        assert_eq!(shown, "x\u{241b}\u{2421}\\u{200f}\\u{61c}y\t");
        // Ordinary text in any script, and emoji with their presentation selector, is left alone.
        for ok in [
            "café",
            "שלום עולם",
            "مرحبا",
            "❤\u{fe0f}",
            "日本語",
            "x = 1 # ok",
        ] {
            assert_eq!(escaped(ok), ok);
        }
    }

    /// Issue 16: zero-width, line/paragraph separators and tag characters passed raw into the terminal,
    /// the app and the report. Each is shown now.
    #[test]
    fn invisible_and_format_characters_are_shown() {
        for (hidden, shown) in [
            ("pass\u{200b}word", "pass\\u{200b}word"),
            (
                "a\u{200d}b\u{200c}c\u{2060}d\u{feff}e\u{ad}f",
                "a\\u{200d}b\\u{200c}c\\u{2060}d\\u{feff}e\\u{ad}f",
            ),
            ("x = 1\u{2028}import os", "x = 1\\u{2028}import os"),
            ("end\u{2029}", "end\\u{2029}"),
            (
                "ok\u{e0041}\u{e0042}\u{e007f}",
                "ok\\u{e0041}\\u{e0042}\\u{e007f}",
            ),
            ("\u{3164} = secret", "\\u{3164} = secret"),
            ("a\u{fe00}\u{e0100}", "a\\u{fe00}\\u{e0100}"),
            (
                "\u{2062}\u{2063}\u{fff9}\u{180e}\u{600}",
                "\\u{2062}\\u{2063}\\u{fff9}\\u{180e}\\u{600}",
            ),
        ] {
            assert_eq!(escaped(hidden), shown);
        }
    }

    proptest! {
        #[test]
        fn nothing_hidden_survives_and_ordinary_text_is_untouched(s in any::<String>()) {
            let e = escaped(&s);
            prop_assert!(!e.chars().any(must_show_escaped), "{:?}", e);
            let mut p = String::new();
            for c in s.chars() {
                push_shown(c, &mut p);
            }
            prop_assert!(!p.chars().any(must_show_escaped), "{:?}", p);
            if !s.chars().any(must_show_escaped) {
                prop_assert_eq!(&e, &s);
                prop_assert_eq!(&p, &s);
            }
        }
    }
}
