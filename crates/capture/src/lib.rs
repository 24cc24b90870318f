//! # nbtrail-capture
//!
//! The capture log written by `nbtrail-gateway` and read by `nbtrail verify-log` and `nbtrail ingest`.
//! This crate owns the on-disk format and both of its ends — the [`writer`] and the [`verify`]er — and
//! nothing about networking, so the command-line tool can verify and ingest logs without pulling in the
//! gateway's HTTP stack.
//!
//! ## Format
//! A log is a directory of *segments*, `capture-000001.jsonl`, `capture-000002.jsonl`, … Each segment is
//! UTF-8 JSON lines, one record per line, every line ending in `\n`. Every record is an object that starts
//! with the same four members and ends with its own hash:
//!
//! ```text
//! {"seq":42,"prev":"<hex sha-256 of record 41>","time":"2026-11-22T10:15:00.123Z","type":"kernel_message",…,"hash":"<hex>"}
//! ```
//!
//! * `seq` counts from 1 across all segments with no gap;
//! * `prev` is the `hash` of the record before (64 zeros for the very first record);
//! * `hash` is the SHA-256 of the record's *body*: the exact bytes of the line with the trailing
//!   `,"hash":"…"` member removed and the closing `}` kept. Hashing bytes rather than a re-serialisation
//!   means the verifier never depends on how a JSON library orders or escapes members.
//!
//! Every segment starts with a `segment_start` record (its number, the previous segment's name and
//! acknowledged length, the gateway's configuration and the signer's public key) and, unless it is the
//! one being written, ends with `segment_end`. Optional `checkpoint` records carry an ed25519 signature
//! over (`seq`, `hash`) of the record before them, so a chain rewritten from scratch is detectable by
//! anyone holding the gateway's public key. See [`RecordType`] for the record types.
//!
//! ## Durability
//! [`writer::LogWriter::append`] writes a batch of records, `fsync`s the file and only then returns; the
//! gateway forwards a message only after that. A failed write leaves the writer *poisoned*: the next batch
//! opens a new segment whose `segment_start` names the last acknowledged byte of the failed one, so
//! unacknowledged bytes are never mistaken for part of the chain.

#![warn(missing_docs)]

pub mod verify;
pub mod writer;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub use verify::{Problem, SegmentFacts, VerifyReport, segment_facts, verify_dir};
pub use writer::{LogWriter, WriterConfig};

/// The `prev` of the first record of a log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What the log keeps of the format, in `segment_start.format`.
pub const FORMAT: &str = "nbtrail-capture/1";

/// The domain-separation prefix of a checkpoint signature.
pub const CHECKPOINT_DOMAIN: &str = "nbtrail-capture-checkpoint/1";

/// Errors of this crate, each naming the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// An I/O error on a log file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A key file that is not a hex ed25519 key.
    #[error("{0}")]
    Key(String),
    /// A log directory whose last segment cannot be continued.
    #[error("{path}: {message}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// This crate's result type.
pub type Result<T> = std::result::Result<T, CaptureError>;

pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> CaptureError + '_ {
    move |source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The record types the gateway writes (the `type` member).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// First record of every segment.
    SegmentStart,
    /// Last record of a closed segment.
    SegmentEnd,
    /// A signature over the chain so far.
    Checkpoint,
    /// An HTTP request seen by the gateway (written before it is forwarded).
    Http,
    /// The upstream's answer to an HTTP request.
    HttpResponse,
    /// A kernel websocket opened.
    WsOpen,
    /// A kernel websocket closed.
    WsClose,
    /// One kernel channel message, either direction.
    KernelMessage,
}

impl RecordType {
    /// The `type` member's value.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::SegmentStart => "segment_start",
            RecordType::SegmentEnd => "segment_end",
            RecordType::Checkpoint => "checkpoint",
            RecordType::Http => "http",
            RecordType::HttpResponse => "http_response",
            RecordType::WsOpen => "ws_open",
            RecordType::WsClose => "ws_close",
            RecordType::KernelMessage => "kernel_message",
        }
    }
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Builds the line (without `\n`) of a record and returns it with its hash.
///
/// `fields` must be a JSON object; its members follow the fixed `seq`, `prev`, `time`, `type` members.
pub fn encode_record(
    seq: u64,
    prev: &str,
    time: &str,
    kind: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> (String, String) {
    let mut body = String::with_capacity(256);
    body.push_str("{\"seq\":");
    body.push_str(&seq.to_string());
    body.push_str(",\"prev\":\"");
    body.push_str(prev);
    body.push_str("\",\"time\":");
    body.push_str(&serde_json::to_string(time).unwrap_or_default());
    body.push_str(",\"type\":");
    body.push_str(&serde_json::to_string(kind).unwrap_or_default());
    for (k, v) in fields {
        body.push(',');
        body.push_str(&serde_json::to_string(k).unwrap_or_default());
        body.push(':');
        body.push_str(&serde_json::to_string(v).unwrap_or_default());
    }
    body.push('}');
    let hash = sha256_hex(body.as_bytes());
    let mut line = body;
    line.pop();
    line.push_str(",\"hash\":\"");
    line.push_str(&hash);
    line.push_str("\"}");
    (line, hash)
}

/// Length of the `,"hash":"<64 hex>"}` suffix of every line.
const HASH_SUFFIX_LEN: usize = 9 + 64 + 2;

/// Splits a line into (body, stated hash) and recomputes the body's hash. Returns
/// `(stated, computed)`, or `None` when the line does not end in a well-formed hash member.
pub fn line_hashes(line: &str) -> Option<(String, String)> {
    if line.len() < HASH_SUFFIX_LEN + 2 || !line.is_char_boundary(line.len() - HASH_SUFFIX_LEN) {
        return None;
    }
    let (head, suffix) = line.split_at(line.len() - HASH_SUFFIX_LEN);
    let stated = suffix.strip_prefix(",\"hash\":\"")?.strip_suffix("\"}")?;
    if !stated
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    let mut h = Sha256::new();
    h.update(head.as_bytes());
    h.update(b"}");
    Some((stated.to_string(), hex::encode(h.finalize())))
}

/// The message a checkpoint signs: the domain, then the sequence number and hash of the record before it.
pub fn checkpoint_message(signed_seq: u64, signed_hash: &str) -> Vec<u8> {
    format!("{CHECKPOINT_DOMAIN}\n{signed_seq}\n{signed_hash}").into_bytes()
}

/// Signs a checkpoint.
pub fn sign_checkpoint(key: &SigningKey, signed_seq: u64, signed_hash: &str) -> String {
    hex::encode(
        key.sign(&checkpoint_message(signed_seq, signed_hash))
            .to_bytes(),
    )
}

/// Checks a checkpoint signature made by `signer` (hex public key).
pub fn check_checkpoint(signer: &str, signed_seq: u64, signed_hash: &str, signature: &str) -> bool {
    let Some(key) = parse_public_key(signer) else {
        return false;
    };
    let Some(sig) = hex::decode(signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
    else {
        return false;
    };
    key.verify(
        &checkpoint_message(signed_seq, signed_hash),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .is_ok()
}

/// Parses a hex ed25519 public key.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Reads a signing key file (hex of the 32-byte seed).
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| CaptureError::Key(format!("{}: not a hex ed25519 seed", path.display())))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Creates a new signing key at `path` (owner-only permissions) and its public key at `path.pub`.
/// Refuses to overwrite an existing key.
pub fn generate_signing_key(path: &Path) -> Result<SigningKey> {
    use std::io::Write;
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
    let key = SigningKey::from_bytes(&seed);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io_err(path))?;
    writeln!(f, "{}", hex::encode(seed)).map_err(io_err(path))?;
    let pub_path = PathBuf::from(format!("{}.pub", path.display()));
    std::fs::write(&pub_path, format!("{}\n", public_key_hex(&key))).map_err(io_err(&pub_path))?;
    Ok(key)
}

/// Hex of a key's public half.
pub fn public_key_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

/// The file name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("capture-{n:06}.jsonl")
}

/// The segment number of a file name, if it is one.
pub fn segment_number(name: &str) -> Option<u64> {
    name.strip_prefix("capture-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// The segments of a log directory, sorted by number.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if let Some(n) = name.to_str().and_then(segment_number) {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Current time as the log writes it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn record_hash_covers_body_bytes() {
        let mut m = serde_json::Map::new();
        m.insert("x".into(), serde_json::json!("a\"b\n"));
        let (line, hash) = encode_record(7, GENESIS, "2026-01-01T00:00:00Z", "http", &m);
        assert!(line.starts_with("{\"seq\":7,\"prev\":\"0000"));
        let (stated, computed) = line_hashes(&line).unwrap();
        assert_eq!(stated, hash);
        assert_eq!(computed, hash);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["x"], "a\"b\n");
        assert_eq!(v["hash"], hash.as_str());
        let edited = line.replace("a\\\"b", "a\\\"c");
        let (stated, computed) = line_hashes(&edited).unwrap();
        assert_ne!(stated, computed);
    }

    #[test]
    fn checkpoint_signatures() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let sig = sign_checkpoint(&key, 10, "ab");
        let signer = public_key_hex(&key);
        assert!(check_checkpoint(&signer, 10, "ab", &sig));
        assert!(!check_checkpoint(&signer, 11, "ab", &sig));
        assert!(!check_checkpoint(&signer, 10, "ac", &sig));
        let other = public_key_hex(&SigningKey::from_bytes(&[8u8; 32]));
        assert!(!check_checkpoint(&other, 10, "ab", &sig));
        assert!(!check_checkpoint(&signer, 10, "ab", "zz"));
    }

    proptest! {
        #[test]
        fn any_fields_round_trip_and_verify(s in ".*", n in any::<u64>(), k in "f_[a-z_]{1,10}") {
            let mut m = serde_json::Map::new();
            m.insert(k.clone(), serde_json::Value::String(s.clone()));
            let (line, hash) = encode_record(n, GENESIS, "t", "kernel_message", &m);
            prop_assert!(!line.contains('\n'));
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            prop_assert_eq!(v[&k].as_str().unwrap(), s.as_str());
            let (stated, computed) = line_hashes(&line).unwrap();
            prop_assert_eq!(&stated, &hash);
            prop_assert_eq!(computed, hash);
        }

        #[test]
        fn line_hashes_never_panics(s in ".*") {
            let _ = line_hashes(&s);
        }
    }
}

#[cfg(test)]
mod chain_tests;
