//! The writing end of the capture log: batches of records appended, `fsync`ed, then acknowledged.
//!
//! One [`LogWriter`] owns a log directory. The gateway calls [`LogWriter::append`] with every record a
//! message produces and forwards the message only when it returns `Ok` (fail closed). Each call opens the
//! current segment for appending, writes the whole batch in one `write`, `fsync`s and closes it again: the
//! `fsync` dominates the cost, and reopening means a segment removed or made read-only under the
//! gateway is noticed on the next message instead of being written into the void.

use crate::{
    FORMAT, GENESIS, RecordType, Result, encode_record, io_err, line_hashes, list_segments, now,
    public_key_hex, segment_name, sign_checkpoint,
};
use ed25519_dalek::SigningKey;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How the writer rotates segments and signs checkpoints.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Start a new segment once the current one holds at least this many bytes.
    pub segment_bytes: u64,
    /// Start a new segment once the current one is this old.
    pub segment_age: Duration,
    /// With a signer: sign a checkpoint after this many records (0: only by time and at segment ends).
    pub checkpoint_every: u64,
    /// With a signer: sign a checkpoint when the last one is this old and records followed it.
    pub checkpoint_age: Duration,
    /// The key that signs checkpoints; `None` writes no checkpoints.
    pub signer: Option<SigningKey>,
    /// Facts about the writer (version, host, listen address, upstream, …) put in every `segment_start`.
    pub info: Map<String, Value>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            segment_bytes: 64 * 1024 * 1024,
            segment_age: Duration::from_secs(24 * 3600),
            checkpoint_every: 10_000,
            checkpoint_age: Duration::from_secs(60),
            signer: None,
            info: Map::new(),
        }
    }
}

/// One record to append: its type and its members after the fixed four.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The record type.
    pub kind: RecordType,
    /// The members.
    pub fields: Map<String, Value>,
}

impl Entry {
    /// An entry from a JSON object (anything else becomes an empty object).
    pub fn new(kind: RecordType, fields: Value) -> Entry {
        Entry {
            kind,
            fields: match fields {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        }
    }
}

/// Where the previous segment ended, as the next `segment_start` records it.
#[derive(Debug, Clone)]
struct SegmentTail {
    name: String,
    bytes: u64,
    last_seq: u64,
    last_hash: String,
}

/// Appends records to a log directory. See the module docs.
pub struct LogWriter {
    dir: PathBuf,
    cfg: WriterConfig,
    /// Sequence number and hash of the last acknowledged record.
    seq: u64,
    prev: String,
    /// Current segment (0 before the first).
    segment: u64,
    path: PathBuf,
    /// Acknowledged bytes of the current segment.
    len: u64,
    opened: Instant,
    since_checkpoint: u64,
    checkpoint_at: Instant,
    /// Set by a failed write: the next batch starts a new segment.
    poisoned: Option<String>,
    /// The tail of the segment before the current one (or of the last segment of an earlier run).
    tail: Option<SegmentTail>,
    started: bool,
}

impl LogWriter {
    /// Opens `dir` (which must exist), continuing the chain of any segments already in it. Nothing is
    /// written until the first [`append`](Self::append), which starts a new segment.
    pub fn open(dir: &Path, cfg: WriterConfig) -> Result<LogWriter> {
        let segments = list_segments(dir)?;
        let mut w = LogWriter {
            dir: dir.to_path_buf(),
            cfg,
            seq: 0,
            prev: GENESIS.to_string(),
            segment: 0,
            path: PathBuf::new(),
            len: 0,
            opened: Instant::now(),
            since_checkpoint: 0,
            checkpoint_at: Instant::now(),
            poisoned: None,
            tail: None,
            started: false,
        };
        // Continue after the last segment that holds a valid record.
        for (n, path) in segments.iter().rev() {
            w.segment = w.segment.max(*n);
            if let Some(tail) = last_valid_record(path)? {
                w.seq = tail.last_seq;
                w.prev = tail.last_hash.clone();
                w.tail = Some(tail);
                break;
            }
        }
        Ok(w)
    }

    /// Sequence number of the last acknowledged record (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// The segment being written, if one has been started.
    pub fn current_segment(&self) -> Option<&Path> {
        self.started.then_some(self.path.as_path())
    }

    /// The error that poisoned the writer, if the last write failed.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// Appends `entries` durably and returns their sequence numbers. On `Err` nothing of the batch counts
    /// as written: the caller must not forward what it was logging.
    pub fn append(&mut self, entries: &[Entry]) -> Result<Vec<u64>> {
        if !self.started || self.poisoned.is_some() {
            let reason = if self.poisoned.is_some() {
                "recover"
            } else {
                "start"
            };
            self.begin_segment(reason)?;
        } else if self.len >= self.cfg.segment_bytes
            || self.opened.elapsed() >= self.cfg.segment_age
        {
            self.end_segment("rotate")?;
            self.begin_segment("rotate")?;
        }
        if entries.is_empty() && !self.checkpoint_due(0) {
            return Ok(Vec::new());
        }
        let mut batch = Batch::new(self.seq, &self.prev);
        let seqs: Vec<u64> = entries
            .iter()
            .map(|e| batch.push(e.kind, &e.fields))
            .collect();
        let checkpoint = self.checkpoint_due(entries.len() as u64);
        if checkpoint {
            let key = self
                .cfg
                .signer
                .as_ref()
                .expect("checkpoint_due checks the signer");
            batch.push(
                RecordType::Checkpoint,
                &checkpoint_fields(key, batch.seq, &batch.prev),
            );
        }
        self.write(&batch.buf, false)?;
        self.seq = batch.seq;
        self.prev = batch.prev;
        if checkpoint {
            self.since_checkpoint = 0;
            self.checkpoint_at = Instant::now();
        } else {
            self.since_checkpoint += entries.len() as u64;
        }
        Ok(seqs)
    }

    /// Signs a final checkpoint (with a signer) and closes the current segment with `segment_end`.
    pub fn close(&mut self) -> Result<()> {
        if !self.started || self.poisoned.is_some() {
            return Ok(());
        }
        self.end_segment("shutdown")?;
        self.started = false;
        Ok(())
    }

    fn checkpoint_due(&self, adding: u64) -> bool {
        if self.cfg.signer.is_none() {
            return false;
        }
        let pending = self.since_checkpoint + adding;
        pending > 0
            && ((self.cfg.checkpoint_every > 0 && pending >= self.cfg.checkpoint_every)
                || self.checkpoint_at.elapsed() >= self.cfg.checkpoint_age)
    }

    /// Writes (checkpoint and) `segment_end` to the current segment.
    fn end_segment(&mut self, reason: &str) -> Result<()> {
        let mut batch = Batch::new(self.seq, &self.prev);
        if let Some(key) = &self.cfg.signer
            && self.since_checkpoint > 0
        {
            batch.push(
                RecordType::Checkpoint,
                &checkpoint_fields(key, batch.seq, &batch.prev),
            );
        }
        let fields = json!({"segment": self.segment, "reason": reason});
        batch.push(RecordType::SegmentEnd, fields.as_object().expect("object"));
        self.write(&batch.buf, false)?;
        self.seq = batch.seq;
        self.prev = batch.prev;
        self.since_checkpoint = 0;
        self.checkpoint_at = Instant::now();
        Ok(())
    }

    /// Creates the next segment and writes its `segment_start`.
    fn begin_segment(&mut self, reason: &str) -> Result<()> {
        let tail = if self.started {
            Some(SegmentTail {
                name: file_name(&self.path),
                bytes: self.len,
                last_seq: self.seq,
                last_hash: self.prev.clone(),
            })
        } else {
            self.tail.clone()
        };
        let number = self.segment + 1;
        let path = self.dir.join(segment_name(number));
        let mut fields = Map::new();
        fields.insert("format".into(), json!(FORMAT));
        fields.insert("segment".into(), json!(number));
        fields.insert("reason".into(), json!(reason));
        fields.insert(
            "previous_segment".into(),
            match &tail {
                Some(t) => json!({"name": t.name, "bytes": t.bytes, "last_seq": t.last_seq, "last_hash": t.last_hash}),
                None => Value::Null,
            },
        );
        if let Some(err) = &self.poisoned {
            fields.insert("after_error".into(), json!(err));
        }
        fields.insert(
            "signer".into(),
            self.cfg
                .signer
                .as_ref()
                .map_or(Value::Null, |k| json!(public_key_hex(k))),
        );
        fields.insert("writer".into(), Value::Object(self.cfg.info.clone()));
        let seq = self.seq + 1;
        let (line, hash) = encode_record(
            seq,
            &self.prev,
            &now(),
            RecordType::SegmentStart.as_str(),
            &fields,
        );
        let old = (self.path.clone(), self.len, self.started);
        self.path = path;
        self.len = 0;
        self.started = true;
        if let Err(e) = self.write(&format!("{line}\n"), true) {
            // Nothing new was acknowledged: keep describing the old tail.
            (self.path, self.len, self.started) = old;
            return Err(e);
        }
        self.segment = number;
        self.tail = tail;
        self.seq = seq;
        self.prev = hash;
        self.poisoned = None;
        self.opened = Instant::now();
        Ok(())
    }

    /// Appends bytes to the current segment and `fsync`s; poisons the writer on failure.
    fn write(&mut self, bytes: &str, create: bool) -> Result<()> {
        let res = (|| -> std::io::Result<()> {
            let mut opts = std::fs::OpenOptions::new();
            opts.append(true);
            if create {
                opts.create_new(true);
            }
            let mut f = opts.open(&self.path)?;
            f.write_all(bytes.as_bytes())?;
            f.sync_data()?;
            if create {
                // Make the new directory entry durable too.
                std::fs::File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let err = io_err(&self.path)(e);
                self.poisoned = Some(err.to_string());
                if create && self.path.exists() {
                    // The number is taken by the half-made file: the next attempt uses the next one.
                    self.segment += 1;
                }
                Err(err)
            }
        }
    }
}

/// Records being chained onto the log, not yet written.
struct Batch {
    buf: String,
    seq: u64,
    prev: String,
    time: String,
}

impl Batch {
    fn new(seq: u64, prev: &str) -> Batch {
        Batch {
            buf: String::new(),
            seq,
            prev: prev.to_string(),
            time: now(),
        }
    }

    /// Chains one record and returns its sequence number.
    fn push(&mut self, kind: RecordType, fields: &Map<String, Value>) -> u64 {
        self.seq += 1;
        let (line, hash) = encode_record(self.seq, &self.prev, &self.time, kind.as_str(), fields);
        self.buf.push_str(&line);
        self.buf.push('\n');
        self.prev = hash;
        self.seq
    }
}

fn checkpoint_fields(key: &SigningKey, signed_seq: u64, signed_hash: &str) -> Map<String, Value> {
    let v = json!({
        "signer": public_key_hex(key),
        "signed_seq": signed_seq,
        "signed_hash": signed_hash,
        "signature": sign_checkpoint(key, signed_seq, signed_hash),
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The last complete record of a segment whose hash checks out, and where it ends.
fn last_valid_record(path: &Path) -> Result<Option<SegmentTail>> {
    let data = std::fs::read(path).map_err(io_err(path))?;
    let mut best = None;
    let mut start = 0usize;
    while let Some(nl) = data[start..].iter().position(|&b| b == b'\n') {
        let end = start + nl;
        if let Ok(line) = std::str::from_utf8(&data[start..end])
            && let Some((stated, computed)) = line_hashes(line)
            && stated == computed
            && let Ok(v) = serde_json::from_str::<Value>(line)
            && let Some(seq) = v.get("seq").and_then(Value::as_u64)
        {
            best = Some(SegmentTail {
                name: file_name(path),
                bytes: (end + 1) as u64,
                last_seq: seq,
                last_hash: stated,
            });
        }
        start = end + 1;
    }
    // A segment with no valid record (created, then the first write failed) is skipped; the verifier
    // reports it as abandoned.
    Ok(best)
}
