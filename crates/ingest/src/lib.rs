//! # nbtrail-ingest
//!
//! Reads exported audit logs and yields normalized [`Event`]s, one record at a time, in constant memory.
//! This crate owns everything between "a path the user gave" and "an event or an error with file:line":
//!
//! * **inputs** ([`expand_inputs`]): files, directories (recursive, sorted, log-like names only) and gzip
//!   (recognised by its magic bytes, whatever the name);
//! * **integrity**: the SHA-256 of every source file is computed from the bytes as they stream through
//!   ([`FileReader::finish`]), so provenance costs no second read;
//! * **framing** ([`framing`]): JSON lines, a JSON array (streamed element by element, never loaded
//!   whole), JSON documents spanning lines, `{"records":[…]}` batches, or CSV with a header (multi-line
//!   quoted fields kept as one record); Parquet files row by row; Avro files ([`avro`]) record by record,
//!   an Event Hubs Capture event's `Body` framed like a file of its own;
//! * **shapes** ([`normalize`]): Databricks delivered JSON, `system.access.audit` exports and Azure
//!   diagnostic logs, detected **per record** from field names.
//!
//! ## Accounting
//! Every record of a file (a JSON line, an array element, a CSV data row) yields exactly one [`Item`]:
//! an event or a [`RecordError`] naming its line, byte offset and reason. Blank lines and the CSV header
//! are counted separately. Structural damage (an unclosed array, a truncated gzip stream, a read error)
//! is reported as one more error at the position where it was found. Nothing is dropped silently.
//!
//! ## The hand-off
//! [`RecordStream`] is the one way records leave this crate: inputs expanded, every file read on a thread
//! of its own, the store handed one ordered stream of records with provenance and per-file accounting.
//!
//! This crate does no storage and knows nothing of duplicates; `nbtrail-store` decides those.

pub mod avro;
pub mod capture;
mod fast;
pub mod framing;
pub mod normalize;
pub mod stream;
pub mod systables;

pub use stream::{Record, RecordStream};

use flate2::read::MultiGzDecoder;
use framing::{Frame, Framer, Framing};
use nbtrail_model::{Event, Provenance};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Failures that stop reading a whole input (per-record problems are [`RecordError`]s instead).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The path does not exist or cannot be opened/read.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The path is neither a file nor a directory (socket, device, …).
    #[error("{path}: not a regular file or directory")]
    NotAFile {
        /// The path concerned.
        path: PathBuf,
    },
}

/// One record that could not become an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// 1-based line where the record starts (decompressed text).
    pub line: u64,
    /// Byte offset where the record starts (decompressed text).
    pub byte_offset: u64,
    /// Why it was rejected.
    pub message: String,
}

/// What one record became.
#[derive(Debug)]
pub enum Item {
    /// A normalized event (provenance set, file hash not yet known).
    Event(Box<Event>),
    /// A rejected record.
    Error(RecordError),
}

/// A file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Its path.
    pub path: PathBuf,
    /// Found by walking a directory (rather than named by the user): if it turns out not to be a log at
    /// all, it is skipped and reported instead of failing the run.
    pub from_directory: bool,
}

/// What a directory walk kept and left out.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    /// Files to read, in a deterministic order.
    pub files: Vec<InputFile>,
    /// Files inside directories that were not read, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// File-name endings read when walking a directory (explicitly named files are always read).
pub const LOG_EXTENSIONS: &[&str] = &[
    "json", "jsonl", "ndjson", "csv", "log", "txt", "parquet", "avro",
];

fn looks_like_log(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with('.') {
        return false;
    }
    let name = name.strip_suffix(".gz").unwrap_or(name);
    match name.rsplit_once('.') {
        Some((_, ext)) => LOG_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()),
        None => false,
    }
}

/// Expands paths into the files to read: a file is taken as is; a directory is walked recursively in
/// name order, keeping log-like files (see [`LOG_EXTENSIONS`], optionally `.gz`) and listing the rest as
/// skipped. A symbolic link inside a walked directory is followed when it leads to a file inside that
/// directory (read like the files there); any other link (to a directory, outside the tree, or broken) and
/// anything that is not a regular file is listed as skipped with the reason — never passed over without a
/// word. A missing path is an error before anything is read.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Inputs, IngestError> {
    let mut out = Inputs::default();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| IngestError::Io {
            path: path.clone(),
            source,
        })?;
        if meta.is_file() {
            out.files.push(InputFile {
                path: path.clone(),
                from_directory: false,
            });
        } else if meta.is_dir() {
            for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
                let entry = entry.map_err(|e| IngestError::Io {
                    path: e.path().map_or_else(|| path.clone(), Path::to_path_buf),
                    source: e.into(),
                })?;
                if entry.file_type().is_dir() {
                    continue;
                }
                if entry.file_type().is_symlink() {
                    if let Some(why) = symlink_refusal(path, entry.path()) {
                        out.skipped.push((entry.into_path(), why));
                        continue;
                    }
                } else if !entry.file_type().is_file() {
                    out.skipped.push((
                        entry.into_path(),
                        "not a regular file (device, socket or pipe)".into(),
                    ));
                    continue;
                }
                if looks_like_log(entry.path()) {
                    out.files.push(InputFile {
                        path: entry.into_path(),
                        from_directory: true,
                    });
                } else {
                    out.skipped.push((
                        entry.into_path(),
                        "name does not look like a log export (.json, .jsonl, .csv, … or .gz of those)".into(),
                    ));
                }
            }
        } else {
            return Err(IngestError::NotAFile { path: path.clone() });
        }
    }
    Ok(out)
}

/// Why the symbolic link `link`, found while walking `root`, is not read; `None` when it leads to a regular
/// file inside `root`.
fn symlink_refusal(root: &Path, link: &Path) -> Option<String> {
    let target = match std::fs::canonicalize(link) {
        Ok(t) => t,
        Err(e) => return Some(format!("symbolic link that leads nowhere ({e})")),
    };
    let inside = std::fs::canonicalize(root).is_ok_and(|r| target.starts_with(r));
    if !inside {
        return Some(format!(
            "symbolic link to {} outside the folder being ingested: not followed",
            target.display()
        ));
    }
    match std::fs::metadata(&target) {
        Ok(m) if m.is_file() => None,
        Ok(m) if m.is_dir() => Some(format!(
            "symbolic link to the folder {}: not followed (its files are read where they are)",
            target.display()
        )),
        Ok(_) => Some("symbolic link to something that is not a regular file".into()),
        Err(e) => Some(format!("symbolic link that cannot be read ({e})")),
    }
}

/// A gzip member may inflate to at most this many times the compressed bytes read so far (plus
/// [`GZIP_SLACK_BYTES`]): audit logs compress 5–30×, a decompression bomb ~1,000×.
pub const MAX_GZIP_RATIO: u64 = 100;
/// Decompressed bytes always allowed before the ratio applies.
pub const GZIP_SLACK_BYTES: u64 = 16 << 20;
/// No file decompresses to more than this, whatever its ratio.
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 << 30;

/// The error a [`BombGuard`] stops a stream with (told apart from a damaged stream by its type).
#[derive(Debug)]
struct DecompressionRefused(String);

impl std::fmt::Display for DecompressionRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecompressionRefused {}

/// True when `inflated` bytes from `compressed` pass [`MAX_GZIP_RATIO`]× (+[`GZIP_SLACK_BYTES`]) or
/// [`MAX_DECOMPRESSED_BYTES`]: the bounds every compressed input (gzip, Parquet pages) is held to.
fn inflates_too_far(compressed: u64, inflated: u64) -> bool {
    inflated > MAX_DECOMPRESSED_BYTES
        || inflated > compressed.saturating_mul(MAX_GZIP_RATIO) + GZIP_SLACK_BYTES
}

/// Stops a gzip stream that inflates past [`MAX_GZIP_RATIO`] or [`MAX_DECOMPRESSED_BYTES`] with a clear
/// error (reported at the line and offset reached; the rest of the file is not read).
struct BombGuard<R> {
    inner: R,
    state: Arc<Mutex<HashState>>,
    out: u64,
}

impl<R: Read> Read for BombGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        let compressed = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .bytes;
        if inflates_too_far(compressed, self.out) {
            return Err(io::Error::other(DecompressionRefused(format!(
                "decompression stopped: {} bytes inflated from {compressed} compressed bytes, past the \
                 limit of {MAX_GZIP_RATIO}× (+{GZIP_SLACK_BYTES} bytes) or {MAX_DECOMPRESSED_BYTES} bytes \
                 (a decompression bomb?)",
                self.out
            ))));
        }
        Ok(n)
    }
}

/// Hash and byte count of the raw file bytes read so far.
#[derive(Default)]
struct HashState {
    hasher: Sha256,
    bytes: u64,
}

/// Feeds every byte read from the file into the SHA-256 and the shared progress counter.
struct HashingReader {
    file: File,
    state: Arc<Mutex<HashState>>,
    progress: Arc<AtomicU64>,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.hasher.update(&buf[..n]);
        st.bytes += n as u64;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Facts about a file known once it has been read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// Hex SHA-256 of the file as stored (compressed bytes for a `.gz`).
    pub sha256: String,
    /// Size of the file on disk.
    pub size_bytes: u64,
    /// Whether it was gzip-compressed.
    pub gzip: bool,
    /// How its records were laid out.
    pub framing: Framing,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Header rows (CSV) skipped.
    pub header_lines: u64,
}

/// Capture records are accepted only as part of a capture log whose hash chain holds inside the file: the
/// file must start with a `segment_start` record, hold nothing but capture records, and each record's
/// `hash` must match its bytes, its `prev` the record before it and its `seq` follow on. A capture-shaped
/// line anywhere else — in a Databricks export, or one whose hash or link is broken — is rejected with the
/// reason (it would otherwise show as something a user ran and saw, with nobody having checked it).
/// `nbtrail verify-log` checks the same across segments and the signed checkpoints.
#[derive(Default)]
struct CaptureChain {
    /// Signing keys one of which must have signed the segment (empty: none required).
    required_keys: Vec<String>,
    /// What the segment says of itself (acknowledged end, signed part), for a plain capture file.
    facts: Option<nbtrail_capture::SegmentFacts>,
    /// The last accepted capture record's (seq, hash).
    last: Option<(u64, String)>,
    /// A record that is not a capture record was read from this file.
    other_seen: bool,
    /// The chain broke: later capture records of the file are rejected too.
    broken: bool,
}

/// True when a file starts with a capture log's `segment_start` record.
fn prefix_is_capture_start(prefix: &[u8]) -> bool {
    let first = prefix.split(|&b| b == b'\n').next().unwrap_or_default();
    first.starts_with(b"{\"seq\":")
        && memchr::memmem::find(first, b"\"type\":\"segment_start\"").is_some()
}

impl CaptureChain {
    fn check(&mut self, item: Item) -> Item {
        let ev = match item {
            Item::Event(ev) if ev.shape == nbtrail_model::Shape::Capture => ev,
            Item::Event(ev) => {
                self.other_seen = true;
                return Item::Event(ev);
            }
            other => return other,
        };
        match self.link(&ev.raw) {
            Ok(_) if !self.required_keys.is_empty() && !self.signed_by_required() => {
                let signer = self
                    .facts
                    .as_ref()
                    .and_then(|f| f.signer.clone())
                    .unwrap_or_else(|| "no key".into());
                Item::Error(RecordError {
                    line: ev.provenance.line,
                    byte_offset: ev.provenance.byte_offset,
                    message: format!(
                        "capture record rejected: its segment is signed by {signer}, not by a required --capture-key"
                    ),
                })
            }
            Ok(seq) => Item::Event(self.provenance(ev, seq)),
            Err(why) => {
                self.broken = true;
                Item::Error(RecordError {
                    line: ev.provenance.line,
                    byte_offset: ev.provenance.byte_offset,
                    message: format!("capture record rejected: {why}"),
                })
            }
        }
    }

    /// True when the segment names a required key and a checkpoint signed by it verifies.
    fn signed_by_required(&self) -> bool {
        self.facts.as_ref().is_some_and(|f| {
            f.signed_through.is_some()
                && f.signer
                    .as_deref()
                    .is_some_and(|k| self.required_keys.iter().any(|r| r == k))
        })
    }

    /// Records how far the event is verified; an unacknowledged record becomes a refusal, never a cell.
    fn provenance(&self, mut ev: Box<Event>, seq: u64) -> Box<Event> {
        let facts = self.facts.as_ref();
        if let Some(end) = facts.and_then(|f| f.acknowledged_end)
            && ev.provenance.byte_offset >= end
        {
            ev.params
                .insert("capture_verified".into(), "unacknowledged".into());
            if let Some(code) = ev.params.remove("commandText") {
                ev.params.insert("refused_code".into(), code);
            }
            ev.command_text = None;
            ev.language = None;
            ev.service = "gateway".into();
            ev.action = "unacknowledged_write".into();
            ev.status = Some("refused".into());
            ev.response_error = Some(
                "written to the log but never acknowledged (the write failed): the gateway refused \
                 this message, it was not forwarded"
                    .into(),
            );
            return ev;
        }
        let signed = facts.and_then(|f| Some((f.signer.as_deref()?, f.signed_through?)));
        match signed {
            Some((key, through)) if seq <= through => {
                ev.params.insert("capture_verified".into(), "signed".into());
                ev.params.insert("capture_signer".into(), key.to_string());
            }
            _ => {
                ev.params.insert("capture_verified".into(), "chain".into());
            }
        }
        ev
    }

    fn link(&mut self, raw: &str) -> Result<u64, String> {
        if self.other_seen {
            return Err("in a file that is not a capture log (it holds other records)".into());
        }
        if self.broken {
            return Err("after a break in this file's hash chain".into());
        }
        let (stated, computed) = nbtrail_capture::line_hashes(raw)
            .ok_or("it does not end in a well-formed `hash` member")?;
        if stated != computed {
            return Err("its hash does not match its bytes (altered)".into());
        }
        // Only the chain members are read (a record may carry megabytes of output).
        #[derive(serde::Deserialize)]
        struct Link<'a> {
            seq: u64,
            #[serde(borrow)]
            prev: std::borrow::Cow<'a, str>,
            #[serde(rename = "type", borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        let Link { seq, prev, kind } = serde_json::from_str(raw).map_err(|e| e.to_string())?;
        match &self.last {
            None if kind != "segment_start" => {
                return Err("the file does not start with a `segment_start` record".into());
            }
            None => {}
            Some((last_seq, last_hash)) => {
                if seq != last_seq + 1 {
                    return Err(format!("seq {seq} does not follow {last_seq}"));
                }
                if prev != last_hash.as_str() {
                    return Err(format!("its `prev` does not link to record {last_seq}"));
                }
            }
        }
        self.last = Some((seq, stated));
        Ok(seq)
    }
}

/// Reads one file record by record. See the crate docs for the accounting rules.
pub struct FileReader {
    path: PathBuf,
    display: String,
    framer: Framer<Box<dyn BufRead + Send>>,
    framing: Framing,
    gzip: bool,
    csv_header: Option<Vec<String>>,
    header_lines: u64,
    state: Arc<Mutex<HashState>>,
    progress: Arc<AtomicU64>,
    failed: bool,
    chain: CaptureChain,
    /// Records of a `{"records":[…]}` batch still to be read, in order.
    pending: std::collections::VecDeque<Frame>,
    /// A Parquet file's rows, when the file is one.
    parquet: Option<ParquetRows>,
    /// An Avro file's records, when the file is one.
    avro: Option<avro::AvroRecords>,
    /// The Event Hubs event whose body `framer` is reading (its Avro record number).
    avro_event: Option<u64>,
    /// Blank lines of Event Hubs bodies already read (their framers are gone).
    body_blank_lines: u64,
    /// A file that could not be opened as what it is: its one error, given once.
    broken: Option<RecordError>,
}

/// The rows of a Parquet file, read a row group at a time, and how many were read.
struct ParquetRows {
    rows: parquet::record::reader::RowIter<'static>,
    read: u64,
    /// The row number (1-based, file-wide) after each row group's last row.
    group_ends: Vec<u64>,
}

const PEEK: usize = 64 * 1024;

impl FileReader {
    /// Opens `path`. `progress` is increased by every raw byte read (for progress bars).
    pub fn open(path: &Path, progress: Arc<AtomicU64>) -> Result<FileReader, IngestError> {
        FileReader::open_requiring(path, progress, &[])
    }

    /// As [`FileReader::open`]; a capture log must be signed by one of `capture_keys` (hex) when any is
    /// given: otherwise each of its records is rejected naming the signer it has.
    pub fn open_requiring(
        path: &Path,
        progress: Arc<AtomicU64>,
        capture_keys: &[String],
    ) -> Result<FileReader, IngestError> {
        let io_err = |source| IngestError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let state = Arc::new(Mutex::new(HashState::default()));
        let mut raw = BufReader::with_capacity(
            256 * 1024,
            HashingReader {
                file,
                state: state.clone(),
                progress: progress.clone(),
            },
        );
        let head = raw.fill_buf().map_err(io_err)?;
        let gzip = head.starts_with(&[0x1f, 0x8b]);
        if head.starts_with(b"PAR1") {
            // Parquet needs its footer first: it is read through its own handle, row group by row group
            // (the file's SHA-256 is still taken over its bytes by `finish`).
            let file = File::open(path).map_err(io_err)?;
            // A damaged file is one positioned error of its own, never the end of the whole ingest.
            let (rows, broken) =
                match parquet::file::serialized_reader::SerializedFileReader::new(file)
                    .map_err(|e| format!("not a readable Parquet file: {e}"))
                    .and_then(|r| {
                        let len = std::fs::metadata(path).map_or(u64::MAX, |m| m.len());
                        parquet_within_bounds(&r, len).map(|()| r)
                    }) {
                    Ok(r) => {
                        use parquet::file::reader::FileReader as _;
                        let group_ends = r
                            .metadata()
                            .row_groups()
                            .iter()
                            .scan(0u64, |end, g| {
                                *end += g.num_rows().max(0) as u64;
                                Some(*end)
                            })
                            .collect();
                        (
                            Some(ParquetRows {
                                rows: parquet::record::reader::RowIter::from_file_into(Box::new(r)),
                                read: 0,
                                group_ends,
                            }),
                            None,
                        )
                    }
                    Err(e) => (None, Some(e)),
                };
            let mut reader = FileReader::columnar(path, Framing::Parquet, state, progress, broken);
            reader.parquet = rows;
            return Ok(reader);
        }
        if head.starts_with(avro::MAGIC) {
            // Avro streams: blocks are read (and hashed) as they are needed.
            let (records, broken) = match avro::AvroRecords::open(Box::new(raw)) {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(e)),
            };
            let mut reader = FileReader::columnar(path, Framing::Avro, state, progress, broken);
            reader.avro = records;
            return Ok(reader);
        }
        let mut text: Box<dyn Read + Send> = if gzip {
            Box::new(BombGuard {
                inner: MultiGzDecoder::new(raw),
                state: state.clone(),
                out: 0,
            })
        } else {
            Box::new(raw)
        };
        // Peek at the start to choose the framing, then put the peeked bytes back in front.
        let mut prefix = Vec::with_capacity(PEEK);
        let mut peek_error = None;
        match (&mut text).take(PEEK as u64).read_to_end(&mut prefix) {
            Ok(_) => {}
            Err(e) => peek_error = Some(e),
        }
        let bom = if prefix.starts_with(&[0xEF, 0xBB, 0xBF]) {
            3
        } else {
            0
        };
        let framing = framing::detect(&prefix[bom..]);
        let reader: Box<dyn BufRead + Send> = match peek_error {
            // Surface the error through the normal record path (as a positioned error).
            Some(e) => Box::new(BufReader::new(
                Cursor::new(prefix[bom..].to_vec()).chain(FailingReader(Some(e))),
            )),
            None => Box::new(BufReader::with_capacity(
                256 * 1024,
                Cursor::new(prefix[bom..].to_vec()).chain(text),
            )),
        };
        Ok(FileReader {
            display: path.display().to_string(),
            path: path.to_path_buf(),
            framer: Framer::new(reader, framing, bom as u64),
            framing,
            gzip,
            csv_header: None,
            header_lines: 0,
            state,
            progress,
            failed: false,
            chain: CaptureChain {
                required_keys: capture_keys
                    .iter()
                    .map(|k| k.to_ascii_lowercase())
                    .collect(),
                // A plain capture segment (gzip ones are checked record by record only): read once ahead for
                // its acknowledged end and signed checkpoints.
                facts: (!gzip && prefix_is_capture_start(&prefix[bom..]))
                    .then(|| nbtrail_capture::segment_facts(path).ok())
                    .flatten(),
                ..CaptureChain::default()
            },
            pending: std::collections::VecDeque::new(),
            parquet: None,
            avro: None,
            avro_event: None,
            body_blank_lines: 0,
            broken: None,
        })
    }

    /// A reader of a columnar container (its rows are set by the caller); `broken` is why the file cannot
    /// be read at all, reported as its one error.
    fn columnar(
        path: &Path,
        framing: Framing,
        state: Arc<Mutex<HashState>>,
        progress: Arc<AtomicU64>,
        broken: Option<String>,
    ) -> FileReader {
        FileReader {
            display: path.display().to_string(),
            path: path.to_path_buf(),
            framer: Framer::new(Box::new(Cursor::new(Vec::new())), framing, 0),
            framing,
            gzip: false,
            csv_header: None,
            header_lines: 0,
            state,
            progress,
            failed: false,
            chain: CaptureChain::default(),
            pending: std::collections::VecDeque::new(),
            parquet: None,
            avro: None,
            avro_event: None,
            body_blank_lines: 0,
            broken: broken.map(|message| RecordError {
                line: 1,
                byte_offset: 0,
                message,
            }),
        }
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The framing detected for this file.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The next record's outcome; `None` at the end of the file.
    pub fn next_item(&mut self) -> Option<Item> {
        if self.failed {
            return None;
        }
        if let Some(e) = self.broken.take() {
            self.failed = true;
            return Some(Item::Error(e));
        }
        if self.parquet.is_some() {
            return self.next_parquet_row();
        }
        loop {
            let next = match self.pending.pop_front() {
                Some(f) => Ok(Some(f)),
                None => self.framer.next_frame(),
            };
            let mut frame = match next {
                Ok(Some(f)) => f,
                Ok(None) if self.avro.is_some() => match self.next_avro_record() {
                    AvroStep::Item(item) => return Some(item),
                    AvroStep::Body => continue,
                    AvroStep::End => return None,
                },
                Ok(None) => return None,
                Err(e) => {
                    self.failed = true;
                    let refused = e
                        .get_ref()
                        .is_some_and(<dyn std::error::Error + std::marker::Send + std::marker::Sync + 'static>::is::<DecompressionRefused>);
                    let what = if refused {
                        "refused to decompress further"
                    } else if self.gzip {
                        "the gzip stream is damaged or truncated"
                    } else {
                        "read error"
                    };
                    return Some(Item::Error(RecordError {
                        line: self.framer_line(),
                        byte_offset: self.framer_offset(),
                        message: format!("{what} ({e}); the rest of the file could not be read"),
                    }));
                }
            };
            if let Some(event) = self.avro_event {
                // A record inside an Event Hubs body: located by its event and its offset in the body.
                frame.line = event;
            }
            if self.framing == Framing::Csv
                && self.csv_header.is_none()
                && frame.structural_error.is_none()
            {
                match framing::csv_fields(&frame.bytes, None) {
                    Ok(h) => {
                        self.csv_header =
                            Some(h.into_iter().map(|s| s.trim().to_string()).collect());
                        self.header_lines += 1;
                        continue;
                    }
                    Err(msg) => {
                        return Some(Item::Error(
                            self.error(&frame, format!("unreadable CSV header: {msg}")),
                        ));
                    }
                }
            }
            if self.framing != Framing::Csv
                && let Some(records) = records_batch(&frame)
            {
                // A batch's records are read in its place, each at its own line.
                for f in records.into_iter().rev() {
                    self.pending.push_front(f);
                }
                continue;
            }
            let item = self.frame_to_item(frame);
            return Some(self.chain.check(item));
        }
    }

    /// The next Avro record: a row becomes an item; an Event Hubs body becomes the framer's input.
    fn next_avro_record(&mut self) -> AvroStep {
        let Some(records) = self.avro.as_mut() else {
            return AvroStep::End;
        };
        let Some(next) = records.next_record() else {
            return AvroStep::End;
        };
        let no = records.read;
        let err = |message: String| {
            AvroStep::Item(Item::Error(RecordError {
                line: no,
                byte_offset: 0,
                message,
            }))
        };
        match next {
            Err(e) => {
                self.failed = true;
                err(e)
            }
            Ok(avro::AvroItem::NotARecord(why)) => err(format!("Avro record {no}: {why}")),
            Ok(avro::AvroItem::Row(o)) => {
                let raw = Value::Object(o.clone()).to_string();
                let provenance = Provenance {
                    file: self.display.clone(),
                    line: no,
                    byte_offset: 0,
                    file_sha256: None,
                };
                AvroStep::Item(record_item(&o, raw, provenance, None).unwrap_or_else(|m| {
                    Item::Error(RecordError {
                        line: no,
                        byte_offset: 0,
                        message: format!("Avro record {no}: {m}"),
                    })
                }))
            }
            Ok(avro::AvroItem::Body(body)) => {
                self.framing = Framing::AvroCapture;
                self.avro_event = Some(no);
                self.body_blank_lines += self.framer.blank_lines;
                let bom = if body.starts_with(&[0xEF, 0xBB, 0xBF]) {
                    3
                } else {
                    0
                };
                let framing = framing::detect(&body[bom..body.len().min(PEEK)]);
                self.framer = Framer::new(
                    Box::new(Cursor::new(body)) as Box<dyn BufRead + Send>,
                    framing,
                    bom as u64,
                );
                AvroStep::Body
            }
        }
    }

    /// One row of a Parquet file as a record: its columns as a JSON object (nested structs as objects,
    /// maps as objects, timestamps as UTC text), the row number as its line. A row that cannot be decoded
    /// ends the file with an error naming the row (the rows after it cannot be located reliably).
    fn next_parquet_row(&mut self) -> Option<Item> {
        let p = self.parquet.as_mut()?;
        // The parquet crate asserts on some malformed input instead of returning an error; a panic while
        // decoding a row ends this file with a positioned error, never the whole ingest.
        let next = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.rows.next())) {
            Ok(n) => n?,
            Err(_) => {
                self.failed = true;
                let row_no = p.read + 1;
                return Some(Item::Error(RecordError {
                    line: row_no,
                    byte_offset: 0,
                    message: format!(
                        "Parquet row {row_no} cannot be read (the parquet reader failed on malformed data); \
                         the rest of the file could not be read"
                    ),
                }));
            }
        };
        p.read += 1;
        let row_no = p.read;
        let row = match next {
            Ok(r) => r,
            Err(e) => {
                self.failed = true;
                return Some(Item::Error(RecordError {
                    line: row_no,
                    byte_offset: 0,
                    message: format!(
                        "Parquet row {row_no} cannot be read ({e}); the rest of the file could not be read"
                    ),
                }));
            }
        };
        let value = parquet_row_json(&row);
        let raw = value.to_string();
        // A row is located by its row group (0-based, as Parquet tools count) and its file-wide row number.
        let group = p.group_ends.partition_point(|&end| end < row_no) as u64;
        let provenance = Provenance {
            file: self.display.clone(),
            line: row_no,
            byte_offset: group,
            file_sha256: None,
        };
        let err = |message: String| {
            Item::Error(RecordError {
                line: row_no,
                byte_offset: group,
                message: format!("row group {group}, row {row_no}: {message}"),
            })
        };
        Some(match value {
            Value::Object(o) => record_item(&o, raw, provenance, None).unwrap_or_else(err),
            _ => err("not a record".into()),
        })
    }

    fn framer_line(&self) -> u64 {
        self.framer_pos().0
    }

    fn framer_offset(&self) -> u64 {
        self.framer_pos().1
    }

    fn framer_pos(&self) -> (u64, u64) {
        self.framer.position()
    }

    fn error(&self, frame: &Frame, message: String) -> RecordError {
        RecordError {
            line: frame.line,
            byte_offset: frame.byte_offset,
            message,
        }
    }

    fn frame_to_item(&self, frame: Frame) -> Item {
        if let Some(msg) = &frame.structural_error {
            return Item::Error(self.error(&frame, msg.clone()));
        }
        if let Some(len) = frame.oversize {
            return Item::Error(self.error(
                &frame,
                format!(
                    "record is {len} bytes, over the {} byte limit; skipped",
                    framing::MAX_RECORD_BYTES
                ),
            ));
        }
        let raw = match String::from_utf8(frame.bytes) {
            Ok(s) => s,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                return Item::Error(RecordError {
                    line: frame.line,
                    byte_offset: frame.byte_offset,
                    message: format!("not valid UTF-8 (byte {at} of the record)"),
                });
            }
        };
        let provenance = Provenance {
            file: self.display.clone(),
            line: frame.line,
            byte_offset: frame.byte_offset,
            file_sha256: None,
        };
        let (raw, provenance) = if self.framing == Framing::Csv {
            (raw, provenance)
        } else {
            match fast::delivered(raw, provenance) {
                Ok(ev) => return Item::Event(Box::new(ev)),
                Err(back) => back,
            }
        };
        let err = |message: String| {
            Item::Error(RecordError {
                line: frame.line,
                byte_offset: frame.byte_offset,
                message,
            })
        };
        let (obj, lenient) = if self.framing == Framing::Csv {
            let header = self.csv_header.as_deref().unwrap_or(&[]);
            match csv_row_object(header, &raw) {
                Ok(o) => (o, None),
                Err(m) => return err(m),
            }
        } else {
            match parse_json(&raw) {
                Ok((Value::Object(o), lenient)) => (o, lenient),
                Ok((other, _)) => {
                    let kind = match other {
                        Value::Array(_) => "an array",
                        Value::String(_) => "a string",
                        Value::Number(_) => "a number",
                        Value::Bool(_) => "a boolean",
                        _ => "null",
                    };
                    return err(format!("record is {kind}, not a JSON object"));
                }
                Err(e) => return err(format!("not valid JSON: {e}")),
            }
        };
        record_item(&obj, raw, provenance, lenient).unwrap_or_else(err)
    }

    /// Finishes the file: hashes any bytes not yet read (e.g. after a damaged gzip stream) and returns
    /// the summary with the file's SHA-256.
    pub fn finish(self) -> Result<FileSummary, IngestError> {
        let io_err = |source| IngestError::Io {
            path: self.path.clone(),
            source,
        };
        let blank_lines = self.framer.blank_lines + self.body_blank_lines;
        drop(self.framer);
        let mut st = std::mem::take(
            &mut *self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let size = std::fs::metadata(&self.path).map_err(io_err)?.len();
        if st.bytes < size {
            let mut f = File::open(&self.path).map_err(io_err)?;
            f.seek(SeekFrom::Start(st.bytes)).map_err(io_err)?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = f.read(&mut buf).map_err(io_err)?;
                if n == 0 {
                    break;
                }
                st.hasher.update(&buf[..n]);
                st.bytes += n as u64;
                self.progress.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        Ok(FileSummary {
            sha256: hex::encode(st.hasher.finalize()),
            size_bytes: st.bytes,
            gzip: self.gzip,
            framing: self.framing,
            blank_lines,
            header_lines: self.header_lines,
        })
    }
}

/// What reading the next Avro record gave.
enum AvroStep {
    /// An item to hand out.
    Item(Item),
    /// An Event Hubs body now being framed.
    Body,
    /// The end of the file.
    End,
}

/// A record's object as an event (`Err`: why it is not one); a lenient read is marked on the event.
fn record_item(
    obj: &Map<String, Value>,
    raw: String,
    provenance: Provenance,
    lenient: Option<&str>,
) -> Result<Item, String> {
    let mut ev = normalize::normalize(obj, raw, provenance)?;
    if let Some(why) = lenient {
        ev.params.insert("nbtrail_lenient".into(), why.into());
    }
    Ok(Item::Event(Box::new(ev)))
}

/// Parses a record. Strict JSON first; if that fails only because a string holds a raw control character
/// (a newline or tab typed into SQL text, seen in real exports), the record is read with those characters
/// escaped — an explicit fallback, reported on the event as `nbtrail_lenient` (the raw record is kept
/// verbatim).
pub(crate) fn parse_json(raw: &str) -> Result<(Value, Option<&'static str>), serde_json::Error> {
    match serde_json::from_str::<Value>(raw) {
        Ok(v) => Ok((v, None)),
        Err(e) if e.to_string().starts_with("control character") => {
            let mut fixed = String::with_capacity(raw.len() + 16);
            let (mut in_str, mut esc) = (false, false);
            for c in raw.chars() {
                if in_str {
                    if esc {
                        esc = false;
                    } else if c == '\\' {
                        esc = true;
                    } else if c == '"' {
                        in_str = false;
                    } else if (c as u32) < 0x20 {
                        fixed.push_str(&format!("\\u{:04x}", c as u32));
                        continue;
                    }
                } else if c == '"' {
                    in_str = true;
                }
                fixed.push(c);
            }
            serde_json::from_str::<Value>(&fixed)
                .map(|v| {
                    (
                        v,
                        Some("raw control character inside a string, read escaped"),
                    )
                })
                .map_err(|_| e)
        }
        Err(e) => Err(e),
    }
}

/// The records of a `{"records":[…]}` batch (Azure diagnostic settings → Event Hubs, Event Hub capture
/// bodies), each framed at its own line and offset; `None` for anything else.
fn records_batch(frame: &Frame) -> Option<Vec<Frame>> {
    if frame.structural_error.is_some()
        || frame.oversize.is_some()
        || memchr::memmem::find(&frame.bytes, b"\"records\"").is_none()
    {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Batch<'a> {
        #[serde(borrow)]
        records: &'a serde_json::value::RawValue,
    }
    let text = std::str::from_utf8(&frame.bytes).ok()?;
    let (at, inner) = match batch_array_start(&frame.bytes) {
        // `{"records": [` first (how Azure writes it): framed without parsing the whole batch, so one
        // bad record inside costs only itself.
        Some(at) => {
            let end = frame.bytes.iter().rposition(|&b| b == b'}')?;
            (at, &frame.bytes[at..end])
        }
        None => {
            // A batch is an object whose only array member of note is `records` (a record that merely has
            // a `records` field is not one: it would carry audit fields too).
            let obj: Map<String, Value> = serde_json::from_str(text).ok()?;
            if obj.len() > 3 || !obj.get("records").is_some_and(Value::is_array) {
                return None;
            }
            drop(obj);
            let batch: Batch = serde_json::from_str(text).ok()?;
            let inner = batch.records.get();
            let at = inner.as_ptr() as usize - text.as_ptr() as usize;
            (at, inner.as_bytes())
        }
    };
    let line = frame.line + memchr::memchr_iter(b'\n', &frame.bytes[..at]).count() as u64;
    let mut framer = Framer::nested(
        Cursor::new(inner.to_vec()),
        Framing::JsonArray,
        line,
        frame.byte_offset + at as u64,
    );
    let mut out = Vec::new();
    while let Ok(Some(f)) = framer.next_frame() {
        out.push(f);
    }
    Some(out)
}

/// Where the `[` of a record that starts `{ "records" : [` is, if it does.
fn batch_array_start(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    let ws = |i: &mut usize| {
        while b.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    ws(&mut i);
    for part in [&b"{"[..], b"\"records\"", b":", b"["] {
        ws(&mut i);
        if !b.get(i..)?.starts_with(part) {
            return None;
        }
        i += part.len();
    }
    Some(i - 1)
}

/// A Parquet row as JSON: groups and maps as objects, lists as arrays, text as strings, dates and timestamps
/// as UTC text. Written here rather than `Row::to_json_value`, which unwraps the conversion of a date or
/// timestamp out of chrono's range and so panics on a crafted file (found by fuzzing); here such a value
/// stays its number.
fn parquet_row_json(row: &parquet::record::Row) -> Value {
    Value::Object(
        row.get_column_iter()
            .map(|(k, v)| (k.clone(), parquet_field_json(v)))
            .collect(),
    )
}

fn parquet_field_json(f: &parquet::record::Field) -> Value {
    use parquet::record::Field as F;
    let float = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    let time = |t: Option<chrono::DateTime<chrono::Utc>>, raw: i64| {
        t.map_or(Value::from(raw), |t| {
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        })
    };
    match f {
        F::Null => Value::Null,
        F::Bool(b) => Value::Bool(*b),
        F::Byte(n) => Value::from(*n),
        F::Short(n) => Value::from(*n),
        F::Int(n) => Value::from(*n),
        F::Long(n) => Value::from(*n),
        F::UByte(n) => Value::from(*n),
        F::UShort(n) => Value::from(*n),
        F::UInt(n) => Value::from(*n),
        F::ULong(n) => Value::from(*n),
        F::Float16(x) => float(x.to_f64()),
        F::Float(x) => float(f64::from(*x)),
        F::Double(x) => float(*x),
        F::Decimal(_) => Value::String(f.to_string()),
        F::Str(s) => Value::String(s.clone()),
        F::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => Value::Array(b.data().iter().map(|&x| Value::from(x)).collect()),
        },
        F::Date(days) => chrono::DateTime::from_timestamp(i64::from(*days) * 86_400, 0)
            .map_or(Value::from(*days), |d| {
                Value::String(d.format("%Y-%m-%d").to_string())
            }),
        F::TimeMillis(n) => Value::from(*n),
        F::TimeMicros(n) => Value::from(*n),
        F::TimestampMillis(ms) => time(chrono::DateTime::from_timestamp_millis(*ms), *ms),
        F::TimestampMicros(us) => time(chrono::DateTime::from_timestamp_micros(*us), *us),
        F::Group(row) => parquet_row_json(row),
        F::ListInternal(list) => {
            Value::Array(list.elements().iter().map(parquet_field_json).collect())
        }
        F::MapInternal(map) => Value::Object(
            map.entries()
                .iter()
                .map(|(k, v)| {
                    let key = match parquet_field_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, parquet_field_json(v))
                })
                .collect(),
        ),
    }
}

/// Refuses a Parquet file whose column chunks declare more uncompressed data than the gzip bounds allow
/// ([`MAX_GZIP_RATIO`]× their compressed size + [`GZIP_SLACK_BYTES`], or [`MAX_DECOMPRESSED_BYTES`] in all):
/// a decompression bomb is refused before a page is read. (A page header that lies about its own size
/// within an honest-looking chunk is bounded only by the parquet crate.)
///
/// It also refuses column chunks whose footer places them outside the file (a negative offset or size, or
/// past the end): the parquet crate panics on some of those (`ColumnChunkMetaData::byte_range`), found by
/// fuzzing (`parquet_column_chunk_outside_the_file_is_refused_not_a_panic`).
fn parquet_within_bounds(
    r: &parquet::file::serialized_reader::SerializedFileReader<File>,
    file_len: u64,
) -> Result<(), String> {
    use parquet::file::reader::FileReader as _;
    let mut total: u64 = 0;
    for (g, rg) in r.metadata().row_groups().iter().enumerate() {
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let len = c.compressed_size();
            if start < 0 || len < 0 || (start as u64).saturating_add(len as u64) > file_len {
                return Err(format!(
                    "refused: Parquet row group {g} column {} is declared at bytes {start}..+{len}, outside the \
                     {file_len}-byte file (damaged or crafted footer)",
                    c.column_path()
                ));
            }
            let (packed, unpacked) = (
                c.compressed_size().max(0) as u64,
                c.uncompressed_size().max(0) as u64,
            );
            total = total.saturating_add(unpacked);
            if inflates_too_far(packed, unpacked) || total > MAX_DECOMPRESSED_BYTES {
                return Err(format!(
                    "refused: Parquet row group {g} column {} declares {unpacked} bytes uncompressed from {packed} \
                     (over the {MAX_GZIP_RATIO}× / {MAX_DECOMPRESSED_BYTES}-byte decompression bounds)",
                    c.column_path()
                ));
            }
        }
    }
    Ok(())
}

/// A reader that yields a stored error once (used to replay an error hit while peeking).
struct FailingReader(Option<io::Error>);

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

/// CSV columns that hold structs/maps as JSON text.
const JSON_COLUMNS: &[&str] = &[
    "user_identity",
    "request_params",
    "response",
    "identity_metadata",
    "Identity",
    "RequestParams",
    "Response",
    "userIdentity",
    "requestParams",
];

fn csv_row_object(header: &[String], raw: &str) -> Result<Map<String, Value>, String> {
    let fields = framing::csv_fields(raw.as_bytes(), Some(header.len()))
        .map_err(|e| format!("unreadable CSV row: {e}"))?;
    if fields.len() != header.len() {
        return Err(format!(
            "CSV row has {} fields but the header has {}",
            fields.len(),
            header.len()
        ));
    }
    let mut obj = Map::new();
    for (name, field) in header.iter().zip(fields) {
        let value = if field.is_empty() || field == "null" {
            Value::Null
        } else if JSON_COLUMNS.contains(&name.as_str()) {
            match serde_json::from_str::<Value>(&field) {
                Ok(v) => v,
                Err(e) => return Err(format!("CSV column `{name}` is not valid JSON: {e}")),
            }
        } else {
            Value::String(field)
        };
        obj.insert(name.clone(), value);
    }
    Ok(obj)
}

#[cfg(test)]
mod tests;
