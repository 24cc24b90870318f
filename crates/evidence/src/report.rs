//! `report.html`: a static, self-contained report a recipient opens in any browser, offline.
//!
//! No scripts at all: the page carries a Content-Security-Policy that forbids them (`default-src 'none'`),
//! and every untrusted string (code, outputs, names, paths, messages) goes through [`esc`], so hostile
//! cell content (`<script>`, `<img onerror=…>`, `</pre>`) is shown as text. Code is highlighted with syntect
//! into `<span style=…>` around escaped text.

use nbtrail_highlight::{Highlighter, LinesWithEndings, Palette};
use nbtrail_model::display::{must_show_escaped, push_escaped};
use nbtrail_model::{Session, SessionCell};
use nbtrail_store::{EventRow, StoredFinding};
use std::io::{self, Write};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters (ANSI escapes, NUL) and bidirectional formatting characters (which
            // would display a line reordered) shown visibly, never passed through.
            c if must_show_escaped(c) => push_escaped(c, &mut out),
            c => out.push(c),
        }
    }
    out
}

/// Highlighted, escaped HTML for one line-numbered cell; lines in `marked` get the finding class.
fn code_html(code: &str, language: Option<&str>, marked: &[u32]) -> String {
    let mut h = Highlighter::new(code, language, Palette::Light);
    let mut out = String::new();
    for (i, line) in LinesWithEndings::from(code).enumerate() {
        let n = i as u32 + 1;
        let class = if marked.contains(&n) {
            " class=\"hit\""
        } else {
            ""
        };
        out.push_str(&format!("<span{class}><span class=\"ln\">{n:>3}</span> "));
        for (style, text) in h.line(line) {
            let c = style.foreground;
            out.push_str(&format!(
                "<span style=\"color:#{:02x}{:02x}{:02x}\">{}</span>",
                c.r,
                c.g,
                c.b,
                esc(text.trim_end_matches('\n'))
            ));
        }
        out.push_str("</span>\n");
    }
    out
}

/// The page head (title, CSP, styles) and the bundle's header.
pub fn begin(w: &mut dyn Write, header: &[(&str, String)]) -> io::Result<()> {
    write!(
        w,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
<title>nbtrail evidence report</title>\n<style>\n\
body{{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222}} h1,h2,h3{{font-weight:600}}\n\
table{{border-collapse:collapse;margin:.5em 0}} td,th{{border:1px solid #ccc;padding:2px 6px;vertical-align:top;text-align:left}}\n\
pre{{background:#f8f8f8;padding:6px;overflow-x:auto;margin:0}} .ln{{color:#999;user-select:none}}\n\
.hit{{background:#ffe3e3;display:inline-block;width:100%}} .finding{{border-left:4px solid #d33;padding:2px 8px;margin:4px 0;background:#fff5f5}}\n\
.high{{color:#b00}} .medium{{color:#a60}} .low{{color:#666}} .meta{{color:#555;font-size:12px}}\n\
</style></head><body>\n<h1>nbtrail evidence report</h1>\n<table>\n"
    )?;
    for (k, v) in header {
        writeln!(w, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v))?;
    }
    writeln!(w, "</table>")
}

/// The findings table.
pub fn findings(w: &mut dyn Write, findings: &[StoredFinding]) -> io::Result<()> {
    writeln!(w, "<h2>Findings ({})</h2>", findings.len())?;
    if findings.is_empty() {
        return writeln!(w, "<p>None in this selection.</p>");
    }
    writeln!(
        w,
        "<table><tr><th>code</th><th>severity</th><th>triage</th><th>session</th><th>cell (event)</th><th>line</th><th>message</th></tr>"
    )?;
    for f in findings {
        writeln!(
            w,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}:{}</td><td>{}</td></tr>",
            esc(&f.code),
            esc(&f.severity),
            esc(&f.severity),
            esc(&f.triage),
            esc(&f.session_id),
            f.event_id.map(|i| i.to_string()).unwrap_or_default(),
            f.line,
            f.col,
            esc(&f.message)
        )?;
    }
    writeln!(w, "</table>")
}

/// The case notes concerning the selection (custody entries `note`): questions, conclusions, notes and
/// stars, oldest first, every string escaped.
pub fn notes(
    w: &mut dyn Write,
    entries: &[&nbtrail_store::custody::CustodyEntry],
) -> io::Result<()> {
    writeln!(w, "<h2>Case notes ({})</h2>", entries.len())?;
    if entries.is_empty() {
        return writeln!(w, "<p>None concerning this selection.</p>");
    }
    writeln!(
        w,
        "<table><tr><th>when (UTC)</th><th>examiner</th><th>kind</th><th>about</th><th>text</th></tr>"
    )?;
    for e in entries {
        let d = &e.details;
        writeln!(
            w,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.at),
            esc(&e.examiner),
            esc(d["kind"].as_str().unwrap_or("note")),
            esc(d["target"].as_str().unwrap_or("")),
            esc(d["text"].as_str().unwrap_or(""))
        )?;
    }
    writeln!(w, "</table>")
}

/// One session's replay: cells in order, code highlighted, findings marked on their lines.
pub fn session(
    w: &mut dyn Write,
    s: &Session,
    cells: &[SessionCell],
    findings: &[StoredFinding],
) -> io::Result<()> {
    writeln!(
        w,
        "<h2>Session {}</h2>\n<p class=\"meta\">notebook {} · cluster {} · users {} · {} → {} · {} cell(s)</p>",
        esc(&s.id),
        esc(s.notebook_path.as_deref().unwrap_or(&s.notebook_id)),
        esc(s.cluster_id.as_deref().unwrap_or("-")),
        esc(&s.users.join(", ")),
        esc(&nbtrail_model::format_time(s.start)),
        esc(&nbtrail_model::format_time(s.end)),
        cells.len()
    )?;
    for (i, c) in cells.iter().enumerate() {
        let here: Vec<&StoredFinding> = findings
            .iter()
            .filter(|f| f.event_id == Some(c.event_id))
            .collect();
        let marked: Vec<u32> = here.iter().flat_map(|f| f.line..=f.end_line).collect();
        writeln!(
            w,
            "<h3 id=\"event-{}\">[{}] {} · {} · {} · {}</h3>",
            c.event_id,
            i + 1,
            esc(&nbtrail_model::format_time(c.time)),
            esc(c.language.as_deref().unwrap_or("")),
            esc(c.status.as_deref().unwrap_or("")),
            esc(c.user.as_deref().unwrap_or(""))
        )?;
        if let Some(code) = &c.code {
            writeln!(
                w,
                "<pre>{}</pre>",
                code_html(code, c.language.as_deref(), &marked)
            )?;
        }
        for f in here {
            let trace: Vec<String> = f
                .trace
                .iter()
                .map(|st| {
                    format!(
                        "event {} line {}: {}",
                        st.event_id.map(|i| i.to_string()).unwrap_or_default(),
                        st.line,
                        st.note
                    )
                })
                .collect();
            writeln!(
                w,
                "<div class=\"finding\"><b class=\"{}\">{} {}</b> (triage: {}) line {}:{} — {}<br><span class=\"meta\">trace: {}</span></div>",
                esc(&f.severity),
                esc(&f.code),
                esc(&f.severity),
                esc(&f.triage),
                f.line,
                f.col,
                esc(&f.message),
                esc(&trace.join(" → "))
            )?;
        }
    }
    Ok(())
}

/// Starts the event timeline table.
pub fn timeline_begin(w: &mut dyn Write, n: u64) -> io::Result<()> {
    writeln!(
        w,
        "<h2>Timeline ({n} events)</h2>\n<table><tr><th>time (UTC)</th><th>event</th><th>user</th><th>action</th><th>notebook</th><th>source</th><th>code</th></tr>"
    )
}

/// One timeline row.
pub fn timeline_row(w: &mut dyn Write, e: &EventRow) -> io::Result<()> {
    let code: String = e
        .command_text
        .as_deref()
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    writeln!(
        w,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}.{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
        esc(&nbtrail_model::format_time(e.time)),
        e.id,
        esc(e.user.as_deref().unwrap_or("")),
        esc(&e.service),
        esc(&e.action),
        esc(e
            .notebook_path
            .as_deref()
            .or(e.notebook_id.as_deref())
            .unwrap_or("")),
        esc(&e.location),
        esc(&code)
    )
}

/// Ends the page.
pub fn end(w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "</table>\n</body></html>")
}
