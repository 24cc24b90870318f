//! The reading end: checks a capture log directory link by link and reports the first problem.
//!
//! What is checked, in order, for every segment and every record:
//! * segments are numbered without gaps and each begins with its own `segment_start`, whose
//!   `previous_segment` names the segment before, the byte where its acknowledged records end, and the
//!   sequence number and hash of its last record;
//! * every line is complete, is JSON, and its `hash` is the SHA-256 of its body (an edited record fails
//!   here);
//! * `seq` is one more than the record before (a deleted record shows as a gap, a moved one as out of
//!   order) and `prev` is that record's hash (a record replaced with its hash recomputed breaks the link);
//! * nothing follows a `segment_end` in its segment; bytes after a segment's acknowledged end (a write
//!   that failed or a crash) are reported as a note, never counted as records;
//! * every `checkpoint` signs exactly the record before it with the segment's signer (or with the key the
//!   caller expects, which every segment must then name); with an expected key at least one checkpoint
//!   must verify, and records after the last checkpoint are reported as not yet signed;
//! * the last segment ends in a complete line (a cut-off tail is reported as truncation).

use crate::{GENESIS, Result, check_checkpoint, io_err, line_hashes, list_segments, segment_name};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// The first problem found, located precisely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Segment file name.
    pub file: String,
    /// 1-based line in that file (0 when the problem is the file itself).
    pub line: u64,
    /// Byte offset of the line.
    pub byte_offset: u64,
    /// The sequence number the record should have had.
    pub seq: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: ", self.file, self.line)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        if let Some(seq) = self.seq {
            write!(f, "record {seq}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The outcome of [`verify_dir`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// True when no problem was found.
    pub ok: bool,
    /// Segments read.
    pub segments: u64,
    /// Records verified.
    pub records: u64,
    /// Last verified sequence number.
    pub last_seq: u64,
    /// Time of the first and last verified records.
    pub first_time: Option<String>,
    /// See `first_time`.
    pub last_time: Option<String>,
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
    /// The key that signed them (hex).
    pub signer: Option<String>,
    /// Highest sequence number covered by a verified checkpoint.
    pub signed_through: Option<u64>,
    /// The last segment has no `segment_end` (the gateway is running or stopped without closing).
    pub open: bool,
    /// Observations that are not problems (abandoned segments, unacknowledged bytes, unsigned tail).
    pub notes: Vec<String>,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

struct State<'a> {
    expected_signer: Option<&'a str>,
    report: VerifyReport,
    seq: u64,
    prev: String,
    /// (name, end of last record, last seq, last hash) of the previous valid segment.
    last_segment: Option<(String, u64, u64, String)>,
    /// The first segments were rotated away: the chain starts where the first present one says.
    rotated: bool,
}

/// Verifies the log in `dir`. `expected_signer` (hex public key) demands that every segment is signed
/// by that key and that at least one checkpoint verifies.
pub fn verify_dir(dir: &Path, expected_signer: Option<&str>) -> Result<VerifyReport> {
    let segments = list_segments(dir)?;
    let mut st = State {
        expected_signer,
        report: VerifyReport::default(),
        seq: 0,
        prev: GENESIS.to_string(),
        last_segment: None,
        rotated: false,
    };
    if segments.is_empty() {
        st.report.problem = Some(Problem {
            file: dir.display().to_string(),
            line: 0,
            byte_offset: 0,
            seq: None,
            message: "no capture segments (capture-NNNNNN.jsonl) in this directory".into(),
        });
        return Ok(st.report);
    }
    let datas: Vec<Vec<u8>> = segments
        .iter()
        .map(|(_, p)| std::fs::read(p).map_err(io_err(p)))
        .collect::<Result<_>>()?;
    let first_number = segments[0].0;
    if first_number != 1 {
        st.report.notes.push(format!(
            "log starts at segment {first_number}: earlier segments were rotated away; verified from \
             there (what the missing segments held cannot be checked)"
        ));
        // The chain is taken up where the first present segment says it continues: its segment_start
        // names the last record before it (checked against that record's own `seq` and `prev` below).
        if let Some(first) = datas.iter().find_map(|d| first_record(d))
            && let (Some(seq), Some(prev)) = (first["seq"].as_u64(), first["prev"].as_str())
            && seq > 1
            && first["previous_segment"]["last_seq"].as_u64() == Some(seq - 1)
            && first["previous_segment"]["last_hash"].as_str() == Some(prev)
        {
            st.seq = seq - 1;
            st.prev = prev.to_string();
            st.rotated = true;
        }
    }
    for (i, ((n, path), data)) in segments.iter().zip(&datas).enumerate() {
        let expected_number = first_number + i as u64;
        let name = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if *n != expected_number {
            return Ok(st.fail(
                &segment_name(expected_number),
                0,
                0,
                None,
                format!("segment missing (found {name} next)"),
            ));
        }
        if !data.contains(&b'\n') {
            st.report.notes.push(format!(
                "{name}: abandoned segment with no complete record ({} bytes): its first write failed",
                data.len()
            ));
            continue;
        }
        // Where this segment's chain ends: as the next segment's start says, else the whole file.
        let next: Vec<(u64, &[u8])> = segments[i + 1..]
            .iter()
            .zip(&datas[i + 1..])
            .map(|((n, _), d)| (*n, d.as_slice()))
            .collect();
        let limit = next_segment_limit(*n, &next);
        let is_last = i + 1 == segments.len();
        if let Err(p) = st.segment(&name, *n, data, limit, is_last) {
            st.report.problem = Some(p);
            return Ok(st.report);
        }
        st.report.segments += 1;
    }
    if let Some(expected) = expected_signer {
        if st.report.checkpoints == 0 {
            return Ok(st.fail(
                &segments
                    .last()
                    .map(|(n, _)| segment_name(*n))
                    .unwrap_or_default(),
                0,
                0,
                None,
                format!("no checkpoint signed by the expected key {expected}"),
            ));
        }
        let through = st.report.signed_through.unwrap_or(0);
        if through < st.seq {
            st.report.notes.push(format!(
                "records {}..{} are after the last signed checkpoint",
                through + 1,
                st.seq
            ));
        }
    }
    if st.report.open {
        st.report.notes.push(
            "the last segment is open: the gateway is running or stopped without closing it".into(),
        );
    }
    st.report.ok = true;
    Ok(st.report)
}

/// A segment's first complete line as JSON (its `segment_start`), if it has one.
fn first_record(data: &[u8]) -> Option<Value> {
    let nl = data.iter().position(|&b| b == b'\n')?;
    serde_json::from_slice(&data[..nl]).ok()
}

/// True when checkpoint record `v` is signed by `key` over record `seq` with hash `hash`, and its
/// signature verifies.
fn checkpoint_verifies(v: &Value, key: &str, seq: u64, hash: &str) -> bool {
    v["signer"].as_str() == Some(key)
        && v["signed_seq"].as_u64() == Some(seq)
        && v["signed_hash"].as_str() == Some(hash)
        && check_checkpoint(key, seq, hash, v["signature"].as_str().unwrap_or(""))
}

/// The acknowledged end of a segment, as the `segment_start` of the next non-abandoned segment records.
/// Only consecutive segments count: after a missing one nothing is known.
fn next_segment_limit(number: u64, rest: &[(u64, &[u8])]) -> Option<u64> {
    for (k, (n, data)) in rest.iter().enumerate() {
        if *n != number + 1 + k as u64 {
            return None;
        }
        if !data.contains(&b'\n') {
            continue;
        }
        return first_record(data)?["previous_segment"]["bytes"].as_u64();
    }
    None
}

impl State<'_> {
    fn fail(
        &mut self,
        file: &str,
        line: u64,
        byte_offset: u64,
        seq: Option<u64>,
        message: String,
    ) -> VerifyReport {
        let mut r = std::mem::take(&mut self.report);
        r.ok = false;
        r.problem = Some(Problem {
            file: file.to_string(),
            line,
            byte_offset,
            seq,
            message,
        });
        r
    }

    fn segment(
        &mut self,
        name: &str,
        number: u64,
        data: &[u8],
        limit: Option<u64>,
        is_last: bool,
    ) -> std::result::Result<(), Problem> {
        let len = data.len() as u64;
        let end = match limit {
            Some(l) if l > len => {
                return Err(Problem {
                    file: name.to_string(),
                    line: 0,
                    byte_offset: len,
                    seq: None,
                    message: format!(
                        "truncated: the next segment says this one ended at byte {l}, the file has {len} bytes"
                    ),
                });
            }
            Some(l) => {
                if l < len {
                    self.report.notes.push(format!(
                        "{name}: {} bytes after the acknowledged end (byte {l}) are an unacknowledged write, not part of the chain",
                        len - l
                    ));
                }
                l as usize
            }
            None => data.len(),
        };
        let mut pos = 0usize;
        let mut line_no = 0u64;
        let mut ended = false;
        let mut signer: Option<String> = None;
        while pos < end {
            line_no += 1;
            let expected = self.seq + 1;
            let here = |message: String| Problem {
                file: name.to_string(),
                line: line_no,
                byte_offset: pos as u64,
                seq: Some(expected),
                message,
            };
            let Some(nl) = data[pos..end].iter().position(|&b| b == b'\n') else {
                return Err(here(format!(
                    "truncated: the last record is cut off ({} bytes without a line end)",
                    end - pos
                )));
            };
            let raw = &data[pos..pos + nl];
            let check = (|| {
                let line = std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_string())?;
                let (stated, computed) = line_hashes(line)
                    .ok_or_else(|| "malformed record: no trailing hash member".to_string())?;
                if stated != computed {
                    return Err("hash does not match the record's contents (record edited)".into());
                }
                let v: Value =
                    serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
                Ok((v, stated))
            })();
            let (v, hash) = match check {
                Ok(x) => x,
                Err(m) => {
                    return Err(here(m));
                }
            };
            let seq = v["seq"].as_u64().unwrap_or(0);
            if seq != expected {
                let msg = if seq > expected {
                    format!(
                        "gap: found record {seq} where {expected} belongs (records deleted or reordered)"
                    )
                } else {
                    format!(
                        "out of order: found record {seq} where {expected} belongs (records reordered or repeated)"
                    )
                };
                return Err(here(msg));
            }
            if v["prev"].as_str() != Some(self.prev.as_str()) {
                return Err(here(format!(
                    "broken link: prev is not the hash of record {}",
                    self.seq
                )));
            }
            if ended {
                return Err(here("record after segment_end".into()));
            }
            let kind = v["type"].as_str().unwrap_or("");
            if line_no == 1 {
                if kind != "segment_start" || v["segment"].as_u64() != Some(number) {
                    return Err(here(format!(
                        "segment does not begin with segment_start {number}"
                    )));
                }
                let prev_seg = &v["previous_segment"];
                let link_ok = match &self.last_segment {
                    None => {
                        prev_seg.is_null()
                            || self.seq == 0
                            || (self.rotated
                                && prev_seg["last_seq"].as_u64() == Some(self.seq)
                                && prev_seg["last_hash"].as_str() == Some(self.prev.as_str()))
                    }
                    Some((pname, pend, pseq, phash)) => {
                        prev_seg["name"].as_str() == Some(pname)
                            && prev_seg["bytes"].as_u64() == Some(*pend)
                            && prev_seg["last_seq"].as_u64() == Some(*pseq)
                            && prev_seg["last_hash"].as_str() == Some(phash)
                    }
                };
                if !link_ok {
                    return Err(here(
                        "segment_start does not name the previous segment's end, last record and hash".into(),
                    ));
                }
                if self.last_segment.is_none() && !prev_seg.is_null() {
                    self.report.notes.push(format!(
                        "{name}: continues a chain from {} whose segments are not here",
                        prev_seg["name"].as_str().unwrap_or("?")
                    ));
                }
                signer = v["signer"].as_str().map(str::to_string);
                if let Some(exp) = self.expected_signer
                    && signer.as_deref() != Some(exp)
                {
                    return Err(here(format!(
                        "segment signed by {} instead of the expected key",
                        signer.as_deref().unwrap_or("no key")
                    )));
                }
                if let Some(err) = v["after_error"].as_str() {
                    self.report
                        .notes
                        .push(format!("{name}: started after a write failure: {err}"));
                }
            } else if kind == "segment_start" {
                return Err(here("segment_start in the middle of a segment".into()));
            }
            if kind == "checkpoint" {
                let key = self.expected_signer.map(str::to_string).or(signer.clone());
                let valid = key
                    .as_deref()
                    .is_some_and(|k| checkpoint_verifies(&v, k, self.seq, &self.prev));
                if !valid {
                    return Err(here(
                        "bad checkpoint: signature does not verify for the record before it".into(),
                    ));
                }
                self.report.checkpoints += 1;
                self.report.signer = key;
                self.report.signed_through = Some(self.seq);
            }
            if kind == "segment_end" {
                ended = true;
            }
            let time = v["time"].as_str().map(str::to_string);
            if self.report.first_time.is_none() {
                self.report.first_time = time.clone();
            }
            self.report.last_time = time;
            self.report.records += 1;
            self.report.last_seq = seq;
            self.seq = seq;
            self.prev = hash;
            pos += nl + 1;
        }
        if is_last {
            self.report.open = !ended;
        } else if !ended {
            self.report.notes.push(format!(
                "{name}: closed without segment_end (the gateway stopped or a write failed)"
            ));
        }
        self.last_segment = Some((name.to_string(), end as u64, self.seq, self.prev.clone()));
        Ok(())
    }
}

/// What one segment file says about its own records, for ingest to record per event: where its
/// acknowledged records end (from the next segment's `segment_start`, when that segment is beside it), and
/// how far valid signed checkpoints cover it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentFacts {
    /// Bytes of the segment whose records were acknowledged (the next segment's `previous_segment.bytes`);
    /// records starting at or after it were written but never acknowledged — the gateway refused them.
    /// `None` when no next segment is beside this one (then nothing is known about an unacknowledged tail).
    pub acknowledged_end: Option<u64>,
    /// The key (hex) named by the segment's `segment_start`.
    pub signer: Option<String>,
    /// The highest `seq` covered by a checkpoint in this segment whose signature verifies with `signer`
    /// over an unbroken chain from the segment's start.
    pub signed_through: Option<u64>,
}

/// Reads a segment (`path`, plain JSON lines) and the first line of the segment after it, if present,
/// into [`SegmentFacts`]. Only the chain as far as it holds counts for `signed_through`; a break stops
/// the scan (ingest rejects what follows a break itself).
pub fn segment_facts(path: &Path) -> Result<SegmentFacts> {
    use std::io::{BufRead, Read};
    let mut facts = SegmentFacts::default();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    if let Some(n) = crate::segment_number(&name)
        && let Some(dir) = path.parent()
    {
        let next = dir.join(segment_name(n + 1));
        if let Ok(f) = std::fs::File::open(&next) {
            let mut first = Vec::new();
            let _ = std::io::BufReader::new(f)
                .take(16 * 1024 * 1024)
                .read_until(b'\n', &mut first);
            if let Some(v) = first_record(&first)
                && v["type"] == "segment_start"
                && v["previous_segment"]["name"].as_str() == Some(name.as_str())
            {
                facts.acknowledged_end = v["previous_segment"]["bytes"].as_u64();
            }
        }
    }
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut r = std::io::BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::new();
    let mut pos = 0u64;
    let mut chain: Option<(u64, String)> = None;
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(io_err(path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        if facts.acknowledged_end.is_some_and(|end| pos >= end) {
            break;
        }
        pos += n as u64;
        let Ok(text) = std::str::from_utf8(&line[..n - 1]) else {
            break;
        };
        let Some((stated, computed)) = line_hashes(text) else {
            break;
        };
        if stated != computed {
            break;
        }
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            break;
        };
        let seq = v["seq"].as_u64().unwrap_or(0);
        match &chain {
            None => {
                if v["type"] != "segment_start" {
                    break;
                }
                facts.signer = v["signer"].as_str().map(str::to_string);
            }
            Some((s, h)) => {
                if seq != s + 1 || v["prev"].as_str() != Some(h.as_str()) {
                    break;
                }
                if v["type"] == "checkpoint"
                    && let Some(k) = facts.signer.as_deref()
                    && checkpoint_verifies(&v, k, *s, h)
                {
                    facts.signed_through = Some(seq);
                }
            }
        }
        chain = Some((seq, stated));
    }
    Ok(facts)
}
