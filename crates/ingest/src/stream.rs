//! The one hand-off from reading to storing: [`RecordStream`].
//!
//! `RecordStream::open` expands the inputs (directories walked, unreadable paths refused before anything
//! is read) and reads every file on a thread of its own — framing, decoding, normalizing, natural keys —
//! while the consumer (the case store) writes. What arrives is, per file, a [`Record::FileStart`], each
//! record's outcome in input order ([`Record::Item`]: an event with its natural key, or a positioned
//! error), then [`Record::FileEnd`] with the file's accounting (SHA-256, lines, blank and header lines).
//! The channel is bounded, so memory stays constant whatever the input size; dropping the stream stops
//! the reader.

use crate::{FileReader, FileSummary, IngestError, InputFile, Inputs, Item, expand_inputs};
use nbtrail_model::NaturalKey;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

/// Records in flight between the reader thread and the consumer.
const CHANNEL_BOUND: usize = 2048;

/// One message of a [`RecordStream`].
#[derive(Debug)]
pub enum Record {
    /// A file is about to be read.
    FileStart(InputFile),
    /// A record's outcome, with an event's natural key (hashed on the reader thread).
    Item(Item, Option<NaturalKey>),
    /// The file is done: its accounting, or why it could not be read on.
    FileEnd(Result<FileSummary, IngestError>),
}

/// The inputs of one ingest being read; see the module docs.
pub struct RecordStream {
    paths: Vec<PathBuf>,
    inputs: Inputs,
    bytes_total: u64,
    bytes_read: Arc<AtomicU64>,
    recv: Option<mpsc::Receiver<Record>>,
    reader: Option<JoinHandle<()>>,
}

impl RecordStream {
    /// Expands `paths` and starts reading them. Capture logs must be signed by one of `capture_keys` (hex
    /// ed25519 public keys) when it is not empty: records of a segment that names another signer, or none,
    /// become errors with that reason.
    pub fn open(paths: &[PathBuf], capture_keys: &[String]) -> Result<RecordStream, IngestError> {
        let inputs = expand_inputs(paths)?;
        let bytes_total = inputs
            .files
            .iter()
            .filter_map(|f| std::fs::metadata(&f.path).ok())
            .map(|m| m.len())
            .sum();
        let bytes_read = Arc::new(AtomicU64::new(0));
        let (send, recv) = mpsc::sync_channel::<Record>(CHANNEL_BOUND);
        let files = inputs.files.clone();
        let progress = bytes_read.clone();
        let keys = capture_keys.to_vec();
        let reader = std::thread::Builder::new()
            .name("nbtrail-reader".into())
            .spawn(move || read_files(files, &progress, &keys, &send))
            .map_err(|source| IngestError::Io {
                path: paths.first().cloned().unwrap_or_default(),
                source,
            })?;
        Ok(RecordStream {
            paths: paths.to_vec(),
            inputs,
            bytes_total,
            bytes_read,
            recv: Some(recv),
            reader: Some(reader),
        })
    }

    /// The paths as given (recorded with the run).
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The files being read and those skipped while walking directories.
    pub fn inputs(&self) -> &Inputs {
        &self.inputs
    }

    /// Total size of the files being read, in bytes on disk.
    pub fn bytes_total(&self) -> u64 {
        self.bytes_total
    }

    /// Bytes read so far (on disk, i.e. compressed for a `.gz`).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// The next message; `None` once every file has ended (or the reader stopped).
    pub fn recv(&self) -> Option<Record> {
        self.recv.as_ref()?.recv().ok()
    }
}

impl Drop for RecordStream {
    fn drop(&mut self) {
        // Closing the channel first unblocks a reader waiting to send; then it ends at its next record.
        drop(self.recv.take());
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn read_files(
    files: Vec<InputFile>,
    progress: &Arc<AtomicU64>,
    capture_keys: &[String],
    send: &mpsc::SyncSender<Record>,
) {
    for file in files {
        let path = file.path.clone();
        if send.send(Record::FileStart(file)).is_err() {
            return;
        }
        let mut reader = match FileReader::open_requiring(&path, progress.clone(), capture_keys) {
            Ok(r) => r,
            Err(e) => {
                let _ = send.send(Record::FileEnd(Err(e)));
                return;
            }
        };
        while let Some(item) = reader.next_item() {
            let key = match &item {
                Item::Event(e) => Some(e.natural_key()),
                Item::Error(_) => None,
            };
            if send.send(Record::Item(item, key)).is_err() {
                return;
            }
        }
        if send.send(Record::FileEnd(reader.finish())).is_err() {
            return;
        }
    }
}
