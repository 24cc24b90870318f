//! Splitting a decompressed byte stream into records, without ever holding more than one record.
//!
//! Three framings exist: JSON lines (one object per line), a JSON array (possibly pretty-printed, elements
//! spanning many lines; scanned byte by byte so one bad element does not lose the rest), and CSV (a record
//! ends at a newline outside double quotes, so a multi-line `commandText` stays one record). Each [`Frame`]
//! carries the line and byte offset where the record starts and its bytes verbatim (line terminator
//! excluded). Records longer than [`MAX_RECORD_BYTES`] are reported, not buffered.

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
    /// CSV with a header row.
    Csv,
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

/// Decides the framing from the first bytes of a stream (after any BOM and leading whitespace).
pub fn detect(first: &[u8]) -> Framing {
    let trimmed = first
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &first[i..])
        .unwrap_or(&[]);
    match trimmed.first() {
        Some(b'{') => Framing::JsonLines,
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
                Framing::Csv => Mode::Csv,
            },
            line: 1,
            offset: start_offset,
            blank_lines: 0,
            done: false,
        }
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
                Mode::Lines => self.next_line(false)?,
                Mode::Csv => self.next_line(true)?,
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

    /// Reads up to the next newline (outside double quotes when `quoted`).
    fn next_line(&mut self, quoted: bool) -> io::Result<Option<Frame>> {
        let start_line = self.line;
        let start_offset = self.offset;
        let mut bytes = Vec::new();
        let mut len: u64 = 0;
        let mut in_quotes = false;
        let mut saw_any = false;
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let mut end = None;
            if quoted {
                for (i, &b) in buf.iter().enumerate() {
                    if b == b'"' {
                        in_quotes = !in_quotes;
                    } else if b == b'\n' {
                        if in_quotes {
                            self.line += 1;
                        } else {
                            end = Some(i);
                            break;
                        }
                    }
                }
            } else {
                end = memchr::memchr(b'\n', buf);
            }
            let take = end.unwrap_or(buf.len());
            len += take as u64;
            if len <= MAX_RECORD_BYTES as u64 {
                bytes.extend_from_slice(&buf[..take]);
            } else if !bytes.is_empty() {
                bytes = Vec::new();
            }
            let consumed = take + usize::from(end.is_some());
            self.reader.consume(consumed);
            self.offset += consumed as u64;
            if end.is_some() {
                self.line += 1;
                break;
            }
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let oversize = (len > MAX_RECORD_BYTES as u64).then_some(len);
        Ok(Some(Frame {
            line: start_line,
            byte_offset: start_offset,
            bytes,
            oversize,
            structural_error: None,
        }))
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
                    return Ok(Step::Frame(Some(Frame {
                        line: self.line,
                        byte_offset: self.offset,
                        bytes: Vec::new(),
                        oversize: None,
                        structural_error: Some(
                            "JSON array is not closed with ']': the file may be truncated".into(),
                        ),
                    })));
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
                return Ok(Step::Frame(Some(Frame {
                    line: start_line,
                    byte_offset: start_offset,
                    bytes,
                    oversize,
                    structural_error: Some(format!(
                        "end of file inside an array element that starts at line {start_line}: the file may be truncated"
                    )),
                })));
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
            let take = end.map(|(n, _)| n).unwrap_or(buf.len());
            len += take as u64;
            if len <= MAX_RECORD_BYTES as u64 {
                bytes.extend_from_slice(&buf[..take]);
            } else if !bytes.is_empty() {
                bytes = Vec::new();
            }
            let consumed = take + end.map(|(_, sep)| usize::from(sep)).unwrap_or(0);
            self.advance(consumed);
            if end.is_some() {
                break;
            }
        }
        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
            bytes.pop();
        }
        let oversize = (len > MAX_RECORD_BYTES as u64).then_some(len);
        Ok(Step::Frame(Some(Frame {
            line: start_line,
            byte_offset: start_offset,
            bytes,
            oversize,
            structural_error: None,
        })))
    }

    fn advance(&mut self, n: usize) {
        self.reader.consume(n);
        self.offset += n as u64;
    }
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
}
