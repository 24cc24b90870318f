//! Splitting a decompressed byte stream into records, without ever holding more than one record.
//!
//! Four framings exist: JSON lines (one object per line), a JSON array (possibly pretty-printed, elements
//! spanning many lines; scanned byte by byte so one bad element does not lose the rest), JSON documents
//! (values one after another, each possibly spanning lines: a pretty-printed object, objects concatenated
//! without separators) and CSV (see below). JSON lines are chosen when the first line holds exactly one
//! complete value, because a line-by-line read confines a broken record to its line. Each [`Frame`]
//! carries the line and byte offset where the record starts and its bytes verbatim (line terminator
//! excluded). Records longer than [`MAX_RECORD_BYTES`] are reported, not buffered.
//!
//! **CSV** follows RFC 4180 as Spark and Databricks write it: a field is quoted only when its *first* byte
//! is `"` (a `"` inside an unquoted field, as in `Mozilla 5" tablet`, is an ordinary character); inside a
//! quoted field a quote is written doubled (`""`, RFC 4180, Databricks downloads) or backslash-escaped
//! (`\"`, Spark's `df.write.csv` default); a quoted field may span lines (multi-line `commandText`). A
//! record that spans lines must parse to the header's number of fields; if it does not — an opening quote
//! that never closes would otherwise swallow every row after it — its first line is reported as an error
//! and framing resumes on the next line, so no row is lost without a word.

use std::io::{self, BufRead};

/// Largest record nbtrail buffers. Larger ones become an error (and are skipped) so that hostile or broken
/// input cannot grow memory without bound.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// How a file's records are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One record per line.
    JsonLines,
    /// A top-level JSON array of records.
    JsonArray,
    /// JSON values one after another, each possibly spanning lines (pretty-printed documents,
    /// concatenated objects).
    JsonDocuments,
    /// CSV with a header row.
    Csv,
    /// An Apache Parquet file (`df.write.parquet`): rows, not lines; a record's "line" is its row number.
    Parquet,
    /// An Apache Avro container of audit rows (`df.write.format("avro")`): a record's "line" is its Avro
    /// record number.
    Avro,
    /// An Azure Event Hubs Capture Avro file: each event's `Body` is framed as records; a record's "line" is
    /// its event's Avro record number and its byte offset is inside that event's body.
    AvroCapture,
}

/// One record's bytes and position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 1-based line of the record's first byte.
    pub line: u64,
    /// Byte offset of the record's first byte in the decompressed stream.
    pub byte_offset: u64,
    /// The record's bytes, verbatim, without the line terminator. Empty when `oversize` is set.
    pub bytes: Vec<u8>,
    /// Set when the record was longer than [`MAX_RECORD_BYTES`] (its length is given).
    pub oversize: Option<u64>,
    /// Set when the frame is not a record but a structural problem (e.g. an unclosed array).
    pub structural_error: Option<String>,
}

impl Frame {
    /// A record's frame (no structural problem).
    fn record(line: u64, byte_offset: u64, bytes: Vec<u8>, oversize: Option<u64>) -> Frame {
        Frame {
            line,
            byte_offset,
            bytes,
            oversize,
            structural_error: None,
        }
    }

    /// Not a record but a structural problem at `line`, `byte_offset` (an unclosed array, a stray
    /// separator).
    fn problem(line: u64, byte_offset: u64, message: String) -> Frame {
        Frame {
            line,
            byte_offset,
            bytes: Vec::new(),
            oversize: None,
            structural_error: Some(message),
        }
    }
}

/// Decides the framing from the first bytes of a stream (after any BOM and leading whitespace).
pub fn detect(first: &[u8]) -> Framing {
    let trimmed = first
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &first[i..]);
    match trimmed.first() {
        Some(b'{') => {
            if first_line_holds_one_value(trimmed) {
                Framing::JsonLines
            } else {
                Framing::JsonDocuments
            }
        }
        Some(b'[') => Framing::JsonArray,
        Some(_) => {
            let line_end = memchr::memchr(b'\n', trimmed).unwrap_or(trimmed.len());
            let header = String::from_utf8_lossy(&trimmed[..line_end]);
            let known = [
                "event_time",
                "action_name",
                "service_name",
                "TimeGenerated",
                "ActionName",
                "OperationName",
                "statement_id",
                "source_table_full_name",
                "target_table_full_name",
            ];
            if header.contains(',')
                && header
                    .split(',')
                    .any(|c| known.contains(&c.trim().trim_matches('"')))
            {
                Framing::Csv
            } else {
                // Not recognisably anything: read as lines so every line is reported.
                Framing::JsonLines
            }
        }
        None => Framing::JsonLines,
    }
}

/// True when the first line of `text` (which starts with `{`) is one complete JSON value and nothing else:
/// then the file is read as JSON lines. A value still open at the line's end (a pretty-printed document)
/// or followed by more on the same line (concatenated objects), or a string broken by a raw newline, is not.
fn first_line_holds_one_value(text: &[u8]) -> bool {
    let (mut depth, mut in_str, mut esc) = (0u32, false, false);
    for (i, &b) in text.iter().enumerate() {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                // A raw newline inside a string (typed into SQL text; not strict JSON): the record spans
                // lines, so read documents (the record parser then reports its lenient reading).
                (false, b'\n') => return false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    let rest = &text[i + 1..];
                    let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                    return rest[..line_end].iter().all(u8::is_ascii_whitespace);
                }
            }
            b'\n' => return false,
            _ => {}
        }
    }
    // The peeked prefix ended inside the first line: a very long line, read as JSON lines.
    true
}

/// Streams frames out of a reader. Blank lines between records are skipped and counted.
pub struct Framer<R> {
    reader: R,
    mode: Mode,
    /// Line number of the next unread byte.
    line: u64,
    /// Offset of the next unread byte.
    offset: u64,
    /// Blank (whitespace-only) lines skipped so far.
    pub blank_lines: u64,
    done: bool,
    /// CSV: fields in the header (the first record), once read.
    csv_fields: Option<usize>,
    /// CSV: bytes given back to be framed again (the lines after a first line reported as an error),
    /// read before the reader.
    pushback: Vec<u8>,
}

/// Result of one step of the array scanner.
enum Step {
    Frame(Option<Frame>),
    ModeChanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lines,
    /// Inside a JSON array, `opened` once the `[` has been consumed.
    Array {
        opened: bool,
    },
    Documents,
    Csv,
}

impl<R: BufRead> Framer<R> {
    /// A framer for `framing`, starting at line 1, offset `start_offset` (e.g. after a BOM).
    pub fn new(reader: R, framing: Framing, start_offset: u64) -> Self {
        Framer {
            reader,
            mode: match framing {
                Framing::JsonLines => Mode::Lines,
                Framing::JsonArray => Mode::Array { opened: false },
                Framing::JsonDocuments => Mode::Documents,
                // Parquet is read by `FileReader` row by row; a framer over it sees no lines.
                Framing::Csv | Framing::Parquet | Framing::Avro | Framing::AvroCapture => Mode::Csv,
            },
            line: 1,
            offset: start_offset,
            blank_lines: 0,
            done: false,
            csv_fields: None,
            pushback: Vec::new(),
        }
    }

    /// A framer whose first byte is at `line`, `offset` of an enclosing stream (for the records array
    /// inside a `{"records":[…]}` batch).
    pub fn nested(reader: R, framing: Framing, line: u64, offset: u64) -> Self {
        let mut f = Framer::new(reader, framing, offset);
        f.line = line;
        f
    }

    /// Line and byte offset of the next unread byte.
    pub fn position(&self) -> (u64, u64) {
        (self.line, self.offset)
    }

    /// The next frame, `Ok(None)` at the end of the stream.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        if self.done {
            return Ok(None);
        }
        loop {
            let frame = match self.mode {
                Mode::Lines => self.next_line()?,
                Mode::Csv => self.next_csv_record()?,
                Mode::Documents => self.next_document()?,
                Mode::Array { opened } => match self.next_array_element(opened)? {
                    Step::Frame(f) => return Ok(f),
                    Step::ModeChanged => continue,
                },
            };
            match frame {
                None => {
                    self.done = true;
                    return Ok(None);
                }
                Some(f) if f.oversize.is_none() && f.bytes.iter().all(u8::is_ascii_whitespace) => {
                    self.blank_lines += 1;
                }
                Some(f) => return Ok(Some(f)),
            }
        }
    }

    /// Reads up to the next newline.
    fn next_line(&mut self) -> io::Result<Option<Frame>> {
        let (start_line, start_offset) = (self.line, self.offset);
        let Some((mut bytes, len, _)) = self.physical_line()? else {
            return Ok(None);
        };
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let oversize = (len > MAX_RECORD_BYTES as u64).then_some(len);
        Ok(Some(Frame::record(
            start_line,
            start_offset,
            bytes,
            oversize,
        )))
    }

    /// Scans one element of a JSON array, or notes that the framing changed (array opened or closed, or
    /// non-array content found) so that the caller loops instead of recursing.
    fn next_array_element(&mut self, opened: bool) -> io::Result<Step> {
        // Skip whitespace and separators up to the element's first byte.
        loop {
            let buf = self.reader.fill_buf()?;
            let Some(&b) = buf.first() else {
                self.done = true;
                if opened {
                    return Ok(Step::Frame(Some(Frame::problem(
                        self.line,
                        self.offset,
                        "JSON array is not closed with ']': the file may be truncated".into(),
                    ))));
                }
                return Ok(Step::Frame(None));
            };
            match b {
                b'\n' => {
                    self.line += 1;
                    self.advance(1);
                }
                b' ' | b'\t' | b'\r' => self.advance(1),
                b',' if opened => self.advance(1),
                b'[' if !opened => {
                    self.advance(1);
                    self.mode = Mode::Array { opened: true };
                    return Ok(Step::ModeChanged);
                }
                b']' if opened => {
                    self.advance(1);
                    // Whatever follows the array (another array, stray lines) is still read.
                    let rest = self.reader.fill_buf()?;
                    let next = rest.iter().find(|b| !b.is_ascii_whitespace()).copied();
                    self.mode = match next {
                        Some(b'[') | None => Mode::Array { opened: false },
                        Some(_) => Mode::Lines,
                    };
                    return Ok(Step::ModeChanged);
                }
                _ if !opened => {
                    // Content where an array should start: read the rest as lines.
                    self.mode = Mode::Lines;
                    return Ok(Step::ModeChanged);
                }
                _ => break,
            }
        }
        Ok(Step::Frame(Some(self.scan_value("an array element")?)))
    }

    /// The next top-level JSON value of a documents stream (whitespace between values skipped).
    fn next_document(&mut self) -> io::Result<Option<Frame>> {
        loop {
            let buf = self.reader.fill_buf()?;
            let Some(&b) = buf.first() else {
                return Ok(None);
            };
            match b {
                b'\n' => {
                    self.line += 1;
                    self.advance(1);
                }
                b' ' | b'\t' | b'\r' => self.advance(1),
                b',' | b']' | b'}' => {
                    // Not where a document can start (a stray separator): reported, and skipped.
                    let (line, offset) = (self.line, self.offset);
                    self.advance(1);
                    return Ok(Some(Frame::problem(
                        line,
                        offset,
                        format!("unexpected `{}` between JSON documents", b as char),
                    )));
                }
                _ => break,
            }
        }
        self.scan_value("a JSON document").map(Some)
    }

    /// Scans one JSON value starting at the next byte: an object or array up to its matching close, a
    /// scalar up to a `,` or `]` (left for the caller). `what` names it in a truncation error.
    fn scan_value(&mut self, what: &str) -> io::Result<Frame> {
        let start_line = self.line;
        let start_offset = self.offset;
        let mut bytes = Vec::new();
        let mut len: u64 = 0;
        let mut depth: u32 = 0;
        let mut in_str = false;
        let mut esc = false;
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                self.done = true;
                let oversize = (len > MAX_RECORD_BYTES as u64).then_some(len);
                return Ok(Frame {
                    line: start_line,
                    byte_offset: start_offset,
                    bytes,
                    oversize,
                    structural_error: Some(format!(
                        "end of file inside {what} that starts at line {start_line}: the file may be truncated"
                    )),
                });
            }
            let mut end: Option<(usize, bool)> = None; // (bytes of this chunk in the element, consume terminator)
            for (i, &b) in buf.iter().enumerate() {
                if b == b'\n' {
                    self.line += 1;
                }
                if in_str {
                    if esc {
                        esc = false;
                    } else if b == b'\\' {
                        esc = true;
                    } else if b == b'"' {
                        in_str = false;
                    }
                    continue;
                }
                match b {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some((i + 1, false));
                            break;
                        }
                    }
                    // A scalar element ends at the separator or the array's end (left for the caller).
                    b',' | b']' if depth == 0 => {
                        end = Some((i, b == b','));
                        break;
                    }
                    _ => {}
                }
            }
            let take = end.map_or(buf.len(), |(n, _)| n);
            len += take as u64;
            if len <= MAX_RECORD_BYTES as u64 {
                bytes.extend_from_slice(&buf[..take]);
            } else if !bytes.is_empty() {
                bytes = Vec::new();
            }
            let consumed = take + end.map_or(0, |(_, sep)| usize::from(sep));
            self.advance(consumed);
            if end.is_some() {
                break;
            }
        }
        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
            bytes.pop();
        }
        let oversize = (len > MAX_RECORD_BYTES as u64).then_some(len);
        Ok(Frame {
            line: start_line,
            byte_offset: start_offset,
            bytes,
            oversize,
            structural_error: None,
        })
    }

    fn advance(&mut self, n: usize) {
        self.reader.consume(n);
        self.offset += n as u64;
    }

    /// One physical line (without its `\n`) from the pushback, else the reader: its bytes (empty past
    /// [`MAX_RECORD_BYTES`]), its length, and whether a newline ended it. `None` at the end.
    fn physical_line(&mut self) -> io::Result<Option<(Vec<u8>, u64, bool)>> {
        if !self.pushback.is_empty() {
            let end = memchr::memchr(b'\n', &self.pushback);
            let take = end.unwrap_or(self.pushback.len());
            let bytes: Vec<u8> = self.pushback[..take].to_vec();
            let consumed = take + usize::from(end.is_some());
            self.pushback.drain(..consumed);
            self.offset += consumed as u64;
            if end.is_some() {
                self.line += 1;
            }
            let len = bytes.len() as u64;
            return Ok(Some((bytes, len, end.is_some())));
        }
        let mut bytes = Vec::new();
        let mut len = 0u64;
        let mut saw_any = false;
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(saw_any.then_some((bytes, len, false)));
            }
            saw_any = true;
            let end = memchr::memchr(b'\n', buf);
            let take = end.unwrap_or(buf.len());
            len += take as u64;
            if len <= MAX_RECORD_BYTES as u64 {
                bytes.extend_from_slice(&buf[..take]);
            } else if !bytes.is_empty() {
                bytes = Vec::new();
            }
            let consumed = take + usize::from(end.is_some());
            self.advance(consumed);
            if end.is_some() {
                self.line += 1;
                return Ok(Some((bytes, len, true)));
            }
        }
    }

    /// One CSV record (see the module docs).
    fn next_csv_record(&mut self) -> io::Result<Option<Frame>> {
        let start_line = self.line;
        let start_offset = self.offset;
        let mut lines: Vec<(Vec<u8>, bool)> = Vec::new();
        let mut total: u64 = 0;
        let mut scan = QuoteScan::default();
        loop {
            let Some((line, len, newline)) = self.physical_line()? else {
                if lines.is_empty() {
                    return Ok(None);
                }
                break;
            };
            total += len + u64::from(newline);
            if len > MAX_RECORD_BYTES as u64 || total > MAX_RECORD_BYTES as u64 {
                if lines.is_empty() || len > MAX_RECORD_BYTES as u64 {
                    // Too long to keep: reported by length, as for the other framings.
                    return Ok(Some(Frame::record(
                        start_line,
                        start_offset,
                        Vec::new(),
                        Some(total),
                    )));
                }
                // A quoted field ran past the bound: treat like an unclosed quote (below).
                lines.push((line, newline));
                break;
            }
            scan.feed_line(line.strip_suffix(b"\r").unwrap_or(&line));
            lines.push((line, newline));
            if !scan.in_quotes() {
                break;
            }
        }
        let joined = |ls: &[(Vec<u8>, bool)]| {
            let mut out = Vec::new();
            for (i, (l, _)) in ls.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                out.extend_from_slice(l);
            }
            if out.last() == Some(&b'\r') {
                out.pop();
            }
            out
        };
        let record = joined(&lines);
        if record.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(Frame::record(start_line, start_offset, record, None)));
        }
        // The fields are read here only where framing depends on them — the header (it sets the count) and
        // records spanning lines; a one-line record is read (once) by the caller.
        let header = self.csv_fields.is_none();
        let fits_header = |r: &[u8]| {
            csv_fields(r, self.csv_fields)
                .is_ok_and(|f| self.csv_fields.is_none_or(|n| f.len() == n))
        };
        if lines.len() > 1 && (scan.in_quotes() || !fits_header(&record)) {
            // A record spanning lines that does not parse to the header's fields: report its first line
            // and frame the lines after it again.
            let (first, _) = &lines[0];
            let mut rest = joined_with_newlines(&lines[1..]);
            rest.append(&mut self.pushback);
            self.pushback = rest;
            self.line = start_line + 1;
            self.offset = start_offset + first.len() as u64 + 1;
            let mut bytes = first.clone();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            return Ok(Some(Frame::record(start_line, start_offset, bytes, None)));
        }
        if header && let Ok(f) = csv_fields(&record, None) {
            self.csv_fields = Some(f.len());
        }
        Ok(Some(Frame::record(start_line, start_offset, record, None)))
    }
}

fn joined_with_newlines(lines: &[(Vec<u8>, bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (l, newline) in lines {
        out.extend_from_slice(l);
        if *newline {
            out.push(b'\n');
        }
    }
    out
}

/// Where a CSV scan is: tracks whether a line ends inside a quoted field (RFC 4180, field-aware: only a
/// field's first byte can open quotes; inside, `""` is a quote and a `"` closes only before `,` or the end
/// of the line — any other `"` there, e.g. Spark's `\"`, is kept as a character).
#[derive(Debug, Default)]
struct QuoteScan {
    quoted: bool,
    /// Inside a quoted field, the previous byte was a `"` not yet known to close it.
    quote_pending: bool,
    /// The next byte starts a field.
    mid_field: bool,
}

impl QuoteScan {
    fn in_quotes(&self) -> bool {
        self.quoted
    }

    fn feed_line(&mut self, line: &[u8]) {
        for &b in line {
            if self.quoted {
                if self.quote_pending {
                    self.quote_pending = false;
                    match b {
                        b'"' => continue, // `""`
                        b',' => {
                            self.quoted = false;
                            self.mid_field = false;
                            continue;
                        }
                        _ => {} // a lone quote: a character (lenient), still quoted
                    }
                }
                if b == b'"' {
                    self.quote_pending = true;
                }
            } else if b == b',' {
                self.mid_field = false;
            } else if !self.mid_field && b == b'"' {
                self.quoted = true;
                self.mid_field = true;
            } else {
                self.mid_field = true;
            }
        }
        // End of the line: a pending quote closes the field, and with it the record.
        if self.quoted && self.quote_pending {
            self.quoted = false;
            self.quote_pending = false;
        }
        if !self.quoted {
            self.mid_field = false;
        }
    }
}

/// The fields of one CSV record. Read as RFC 4180 (`""` inside quotes) and, when that fails or does not
/// give `expected` fields, with Spark's backslash escapes (`\"`, `\\` inside quotes); the first reading
/// that works wins. Errors name the byte (from the record's start) where reading failed.
pub fn csv_fields(record: &[u8], expected: Option<usize>) -> Result<Vec<String>, String> {
    let rfc = csv_fields_with(record, false);
    match (&rfc, expected) {
        (Ok(f), Some(n)) if f.len() == n => return rfc,
        (Ok(_), None) => return rfc,
        _ => {}
    }
    match csv_fields_with(record, true) {
        Ok(f) if expected.is_none_or(|n| f.len() == n) => Ok(f),
        _ => rfc,
    }
}

fn csv_fields_with(record: &[u8], backslash: bool) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut i = 0;
    let n = record.len();
    loop {
        let mut field: Vec<u8> = Vec::new();
        if i < n && record[i] == b'"' {
            let open = i;
            i += 1;
            loop {
                if i >= n {
                    return Err(format!("quoted field opened at byte {open} is not closed"));
                }
                let b = record[i];
                if backslash && b == b'\\' && i + 1 < n && matches!(record[i + 1], b'"' | b'\\') {
                    field.push(record[i + 1]);
                    i += 2;
                } else if b == b'"' {
                    if i + 1 < n && record[i + 1] == b'"' {
                        field.push(b'"');
                        i += 2;
                    } else if i + 1 == n || record[i + 1] == b',' {
                        i += 1;
                        break;
                    } else {
                        return Err(format!(
                            "quote at byte {i} inside the quoted field opened at byte {open} is neither \
                             doubled nor followed by a comma"
                        ));
                    }
                } else {
                    field.push(b);
                    i += 1;
                }
            }
        } else {
            let end = memchr::memchr(b',', &record[i..]).map_or(n, |e| i + e);
            field.extend_from_slice(&record[i..end]);
            i = end;
        }
        fields.push(
            String::from_utf8(field)
                .map_err(|e| format!("field {} is not UTF-8 ({e})", fields.len() + 1))?,
        );
        if i >= n {
            break;
        }
        // At a comma.
        i += 1;
        if i == n {
            fields.push(String::new());
            break;
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &str, framing: Framing) -> (Vec<Frame>, u64) {
        let mut f = Framer::new(input.as_bytes(), framing, 0);
        let mut out = Vec::new();
        while let Some(fr) = f.next_frame().unwrap() {
            out.push(fr);
        }
        (out, f.blank_lines)
    }

    fn texts(fs: &[Frame]) -> Vec<(u64, String)> {
        fs.iter()
            .map(|f| (f.line, String::from_utf8_lossy(&f.bytes).into_owned()))
            .collect()
    }

    #[test]
    fn detects_framings() {
        assert_eq!(detect(b"  {\"a\":1}"), Framing::JsonLines);
        assert_eq!(detect(b"\n[\n{}]"), Framing::JsonArray);
        assert_eq!(detect(b"account_id,event_time,action_name\n"), Framing::Csv);
        assert_eq!(detect(b"hello world\n"), Framing::JsonLines);
        assert_eq!(detect(b""), Framing::JsonLines);
    }

    #[test]
    fn json_lines_keep_positions_and_skip_blanks() {
        let (fs, blanks) = frames("{\"a\":1}\r\n\n  \n{\"b\":2}", Framing::JsonLines);
        assert_eq!(
            texts(&fs),
            vec![(1, "{\"a\":1}".into()), (4, "{\"b\":2}".into())]
        );
        assert_eq!(fs[1].byte_offset, 13);
        assert_eq!(blanks, 2);
    }

    #[test]
    fn json_array_elements_span_lines_and_survive_bad_ones() {
        let input = "[\n  {\"a\": \"x]}\\\"\",\n   \"b\": [1,2]},\n  42,\n  {\"c\":\n 3}\n]\n";
        let (fs, _) = frames(input, Framing::JsonArray);
        assert_eq!(
            texts(&fs),
            vec![
                (2, "{\"a\": \"x]}\\\"\",\n   \"b\": [1,2]}".into()),
                (4, "42".into()),
                (5, "{\"c\":\n 3}".into())
            ]
        );
        assert!(fs.iter().all(|f| f.structural_error.is_none()));
        assert_eq!(
            &input.as_bytes()[fs[2].byte_offset as usize..][..4],
            b"{\"c\""
        );
    }

    #[test]
    fn json_array_truncated_is_reported() {
        let (fs, _) = frames("[{\"a\":1},\n{\"b\":", Framing::JsonArray);
        assert_eq!(fs.len(), 2);
        assert!(
            fs[1]
                .structural_error
                .as_deref()
                .unwrap()
                .contains("line 2")
        );
        let (fs, _) = frames("[{\"a\":1}\n", Framing::JsonArray);
        assert_eq!(fs.len(), 2);
        assert!(
            fs[1]
                .structural_error
                .as_deref()
                .unwrap()
                .contains("not closed")
        );
    }

    #[test]
    fn json_array_followed_by_lines_or_arrays() {
        let (fs, _) = frames("[{\"a\":1}]\n[{\"b\":2}]\n{\"c\":3}\n", Framing::JsonArray);
        assert_eq!(
            texts(&fs),
            vec![
                (1, "{\"a\":1}".into()),
                (2, "{\"b\":2}".into()),
                (3, "{\"c\":3}".into())
            ]
        );
    }

    #[test]
    fn csv_records_keep_quoted_newlines() {
        let (fs, _) = frames(
            "event_time,x\n2024,\"a\nb \"\"q\"\"\"\n2025,c\n",
            Framing::Csv,
        );
        assert_eq!(
            texts(&fs),
            vec![
                (1, "event_time,x".into()),
                (2, "2024,\"a\nb \"\"q\"\"\"".into()),
                (4, "2025,c".into())
            ]
        );
    }

    fn csv_rows(input: &str) -> Vec<(u64, Result<Vec<String>, String>)> {
        let (fs, _) = frames(input, Framing::Csv);
        let header = csv_fields(&fs[0].bytes, None).unwrap();
        fs[1..]
            .iter()
            .map(|f| (f.line, csv_fields(&f.bytes, Some(header.len()))))
            .collect()
    }

    /// Issue 16: an unbalanced `"` inside an unquoted field swallowed every row after it, silently.
    #[test]
    fn a_quote_inside_an_unquoted_field_is_a_character_and_swallows_nothing() {
        let rows =
            csv_rows("event_time,user_agent,action_name\n1,Mozilla 5\" tablet,a\n2,b,c\n3,d,e\n");
        let ok: Vec<_> = rows.iter().map(|(l, r)| (*l, r.clone().unwrap())).collect();
        assert_eq!(
            ok,
            vec![
                (2, vec!["1".into(), "Mozilla 5\" tablet".into(), "a".into()]),
                (3, vec!["2".into(), "b".into(), "c".into()]),
                (4, vec!["3".into(), "d".into(), "e".into()]),
            ]
        );
    }

    /// An opening quote that never closes: its line is an error, the rows after it are read.
    #[test]
    fn an_unclosed_quote_is_an_error_for_its_line_and_the_next_rows_survive() {
        let rows = csv_rows("event_time,x,action_name\n1,\"never closed,a\n2,b,c\n3,d,e\n");
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0].0, 2);
        assert!(
            rows[0].1.as_ref().unwrap_err().contains("not closed"),
            "{rows:?}"
        );
        assert_eq!(rows[1], (3, Ok(vec!["2".into(), "b".into(), "c".into()])));
        assert_eq!(rows[2], (4, Ok(vec!["3".into(), "d".into(), "e".into()])));
    }

    #[test]
    fn spark_backslash_escapes_and_rfc_doubled_quotes_both_read() {
        let rows = csv_rows(concat!(
            "event_time,request_params,action_name\n",
            "1,\"{\\\"commandText\\\":\\\"print(1)\\\"}\",run\n",
            "2,\"{\"\"a\"\":\"\"b\"\"}\",run\n",
            "3,\"line one\nline \\\"two\\\", three\",run\n",
            "4,\"C:\\\\dir\",run\n",
        ));
        let got: Vec<_> = rows
            .into_iter()
            .map(|(l, r)| (l, r.unwrap()[1].clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, "{\"commandText\":\"print(1)\"}".into()),
                (3, "{\"a\":\"b\"}".into()),
                (4, "line one\nline \"two\", three".into()),
                // Both readings work here: RFC 4180's (backslashes are characters) is the one kept.
                (6, "C:\\\\dir".into()),
            ]
        );
    }

    fn rfc_field(s: &str) -> String {
        if s.contains([',', '"', '\n']) || s.starts_with(' ') {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }

    proptest::proptest! {
        /// Rows written by an RFC 4180 writer (quotes, commas, newlines in fields) frame and read back
        /// exactly, one frame per row, at the right line.
        #[test]
        fn rfc_written_rows_read_back_exactly(rows in proptest::collection::vec(
            proptest::collection::vec("[a-z\", \n\\\\]{0,12}", 3), 1..20)) {
            let mut text = String::from("event_time,b,c\n");
            let mut lines = vec![];
            let mut line = 2u64;
            for r in &rows {
                lines.push(line);
                let rec: Vec<String> = r.iter().map(|f| rfc_field(f)).collect();
                let rec = rec.join(",");
                line += rec.matches('\n').count() as u64 + 1;
                text.push_str(&rec);
                text.push('\n');
            }
            let (fs, _) = frames(&text, Framing::Csv);
            // Blank records (a row of empty fields is "" "" "" -> ",,") are never blank lines.
            proptest::prop_assert_eq!(fs.len(), rows.len() + 1);
            for (k, r) in rows.iter().enumerate() {
                let f = &fs[k + 1];
                proptest::prop_assert_eq!(f.line, lines[k]);
                let got = csv_fields(&f.bytes, Some(3));
                proptest::prop_assert_eq!(got.as_ref(), Ok(r), "{:?}", String::from_utf8_lossy(&f.bytes));
            }
        }

        /// Whatever the bytes, every line is in exactly one frame (or counted blank): nothing vanishes.
        #[test]
        fn csv_framing_accounts_for_every_line(body in "[a-c\", \n]{0,200}") {
            let text = format!("event_time,b,c\n{body}");
            let (fs, blanks) = frames(&text, Framing::Csv);
            let covered: u64 = fs.iter().map(|f| f.bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1).sum();
            let total_lines = text.lines().count() as u64;
            proptest::prop_assert_eq!(covered + blanks, total_lines);
        }
    }
}
