//! Front end: the inputs the analyzer accepts, turned into an ordered list of [`Cell`]s with a language.
//!
//! * a case session: its cells in execution order (built by the caller from the store);
//! * a Databricks source export (`.py` starting with `# Databricks notebook source`, cells separated by
//!   `# COMMAND ----------`, magic cells written as `# MAGIC` lines);
//! * a Jupyter notebook (`.ipynb`, code cells in order);
//! * a plain `.py` file (one cell).
//!
//! Language comes from a leading magic when there is one (`%sql`, `%%sql`, `%md`, `%scala`, `%r`, `%sh`),
//! else from what the source says. Cell magics (`%%…`) are split off: the body is what runs.

use serde::Serialize;

/// Languages the analyzer distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Python (with IPython escapes).
    Python,
    /// SQL (`%sql`, `%%sql`, SQL warehouse commands).
    Sql,
    /// Markdown prose.
    Markdown,
    /// Anything else (Scala, R, shell, `%fs`): kept, not analyzed.
    Other,
}

/// One cell of a program, in execution order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// A stable id the caller understands (event id, command id, cell number).
    pub id: String,
    /// The code exactly as it ran.
    pub code: String,
    /// Its language.
    pub lang: Lang,
    /// Byte offset in `code` where the analyzed body starts (after a `%%magic` line), 0 otherwise.
    pub body_offset: usize,
}

impl Cell {
    /// A cell from code and the language the source reported (e.g. `commandLanguage`), magics first.
    pub fn new(id: impl Into<String>, code: impl Into<String>, reported: Option<&str>) -> Cell {
        let code = code.into();
        let (lang, body_offset) = classify(&code, reported);
        Cell {
            id: id.into(),
            code,
            lang,
            body_offset,
        }
    }

    /// The part of the code that is analyzed.
    pub fn body(&self) -> &str {
        &self.code[self.body_offset..]
    }
}

fn classify(code: &str, reported: Option<&str>) -> (Lang, usize) {
    let lead = code.len() - code.trim_start().len();
    let first_line_end = code[lead..].find('\n').map_or(code.len(), |i| lead + i);
    let first = &code[lead..first_line_end];
    let after_first = (first_line_end + 1).min(code.len());
    if let Some(magic) = first.strip_prefix("%%") {
        let name = magic.split_whitespace().next().unwrap_or("");
        let lang = match name {
            "sql" => Lang::Sql,
            "python" | "py" | "capture" | "time" | "timeit" => Lang::Python,
            "md" | "markdown" => Lang::Markdown,
            _ => Lang::Other,
        };
        return (lang, after_first);
    }
    if let Some(magic) = first.strip_prefix('%') {
        let name = magic.split_whitespace().next().unwrap_or("");
        let lang = match name {
            "sql" => Some(Lang::Sql),
            "md" | "md-sandbox" => Some(Lang::Markdown),
            "scala" | "r" | "sh" | "fs" => Some(Lang::Other),
            // `%python` switches a cell to Python; `%pip`, `%run` and other line magics are Python cells.
            _ => None,
        };
        if let Some(l) = lang {
            return (l, after_first);
        }
        if name == "python" {
            return (Lang::Python, after_first);
        }
        return (Lang::Python, 0);
    }
    let lang = match reported.map(str::to_ascii_lowercase) {
        Some(r) if r == "sql" => Lang::Sql,
        Some(r) if r == "markdown" || r == "md" => Lang::Markdown,
        Some(r) if r == "scala" || r == "r" || r == "sh" => Lang::Other,
        _ => Lang::Python,
    };
    (lang, 0)
}

/// Errors reading a standalone input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not a notebook JSON we understand.
    #[error("not a Jupyter notebook: {0}")]
    Notebook(String),
}

/// A Python source file's text as Python reads it (PEP 263): UTF-8 (a BOM is dropped), unless one of the
/// first two lines declares another encoding (`# -*- coding: latin-1 -*-`); Latin-1 and Windows-1252 are
/// decoded, other declared encodings are an error naming the encoding. Bytes that are not valid in the
/// encoding are an error naming the byte offset, as Python would refuse the file.
pub fn decode_python_source(bytes: &[u8]) -> Result<String, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let declared = bytes.split(|&b| b == b'\n').take(2).find_map(|line| {
        let line = String::from_utf8_lossy(line);
        let t = line.trim_start();
        if !t.starts_with('#') {
            return None;
        }
        let i = t.find("coding")?;
        let rest = t[i + 6..].strip_prefix([':', '='])?;
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        (!name.is_empty()).then(|| name.to_ascii_lowercase().replace('_', "-"))
    });
    match declared.as_deref() {
        None | Some("utf-8" | "utf8" | "utf-8-sig") => String::from_utf8(bytes.to_vec()).map_err(|e| {
            format!(
                "not UTF-8 at byte {} and no PEP 263 coding declaration: Python would not read it",
                e.utf8_error().valid_up_to()
            )
        }),
        Some("latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" | "iso-latin-1") => {
            Ok(bytes.iter().map(|&b| b as char).collect())
        }
        Some("cp1252" | "windows-1252") => Ok(bytes.iter().map(|&b| cp1252(b)).collect()),
        Some("ascii" | "us-ascii") => match bytes.iter().position(|b| !b.is_ascii()) {
            None => Ok(String::from_utf8_lossy(bytes).into_owned()),
            Some(at) => Err(format!("declared ascii but byte {at} is not")),
        },
        Some(other) => Err(format!("declared encoding {other:?} is not supported by the analyzer")),
    }
}

/// A Windows-1252 byte as the character it stands for.
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[(b - 0x80) as usize],
        _ => b as char,
    }
}

/// Cells of a Databricks source export, or of a plain Python file (one cell).
pub fn from_python_source(text: &str) -> Vec<Cell> {
    const HEADER: &str = "# Databricks notebook source";
    const SEP: &str = "# COMMAND ----------";
    let Some(rest) = text.strip_prefix(HEADER) else {
        return vec![Cell::new("1", text, Some("python"))];
    };
    rest.split(SEP)
        .map(|chunk| {
            let lines: Vec<&str> = chunk.trim_matches('\n').lines().collect();
            if !lines.is_empty() && lines.iter().all(|l| l.starts_with("# MAGIC")) {
                lines
                    .iter()
                    .map(|l| {
                        l.strip_prefix("# MAGIC")
                            .unwrap_or(l)
                            .strip_prefix(' ')
                            .unwrap_or("")
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                lines.join("\n")
            }
        })
        .filter(|c| !c.trim().is_empty())
        .enumerate()
        .map(|(i, code)| Cell::new((i + 1).to_string(), code, Some("python")))
        .collect()
}

/// Code cells of a Jupyter notebook, in order.
pub fn from_ipynb(text: &str) -> Result<Vec<Cell>, InputError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| InputError::Notebook(e.to_string()))?;
    let cells = v
        .get("cells")
        .and_then(|c| c.as_array())
        .ok_or_else(|| InputError::Notebook("no `cells` array".into()))?;
    let lang = v
        .pointer("/metadata/kernelspec/language")
        .and_then(|l| l.as_str())
        .unwrap_or("python");
    Ok(cells
        .iter()
        .enumerate()
        .filter(|(_, c)| c.get("cell_type").and_then(|t| t.as_str()) == Some("code"))
        .map(|(i, c)| {
            let source = match c.get("source") {
                Some(serde_json::Value::Array(parts)) => {
                    parts.iter().filter_map(|p| p.as_str()).collect::<String>()
                }
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            Cell::new((i + 1).to_string(), source, Some(lang))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_decide_the_language() {
        assert_eq!(
            Cell::new("1", "%sql\nselect 1", Some("python")).lang,
            Lang::Sql
        );
        let c = Cell::new("1", "%%sql\nselect 1", None);
        assert_eq!((c.lang, c.body()), (Lang::Sql, "select 1"));
        assert_eq!(Cell::new("1", "%md # t", None).lang, Lang::Markdown);
        assert_eq!(Cell::new("1", "%scala\nval x = 1", None).lang, Lang::Other);
        let c = Cell::new("1", "%pip install x\nimport x", None);
        assert_eq!((c.lang, c.body_offset), (Lang::Python, 0));
        let c = Cell::new("1", "%python\nx = 1", Some("sql"));
        assert_eq!((c.lang, c.body()), (Lang::Python, "x = 1"));
        assert_eq!(Cell::new("1", "select 1", Some("SQL")).lang, Lang::Sql);
    }

    #[test]
    fn databricks_source_export() {
        let text = "# Databricks notebook source\nx = 1\n\n# COMMAND ----------\n\n# MAGIC %sql\n# MAGIC SELECT 1\n\n# COMMAND ----------\n\nprint(x)\n";
        let cells = from_python_source(text);
        assert_eq!(cells.len(), 3);
        assert_eq!(cells[0].code, "x = 1");
        assert_eq!((cells[1].lang, cells[1].body()), (Lang::Sql, "SELECT 1"));
        assert_eq!(cells[2].code, "print(x)");
        assert_eq!(from_python_source("print(1)\n").len(), 1);
    }

    #[test]
    fn ipynb_code_cells() {
        let nb = r##"{"cells":[{"cell_type":"markdown","source":["# t"]},{"cell_type":"code","source":["x = 1\n","print(x)"]},{"cell_type":"code","source":"y = 2"}],"metadata":{"kernelspec":{"language":"python"}}}"##;
        let cells = from_ipynb(nb).unwrap();
        assert_eq!(cells.len(), 2);
        assert_eq!(cells[0].code, "x = 1\nprint(x)");
        assert_eq!(cells[0].id, "2");
        assert!(from_ipynb("[]").is_err());
    }
}
