//! Evidence bundles: what an investigation hands to legal, HR or a regulator, checkable by anyone without
//! nbtrail's authors.
//!
//! A bundle is a zip holding one BagIt (RFC 8493) bag, `<name>/`:
//!
//! ```text
//! bagit.txt                     BagIt-Version 1.0, UTF-8
//! bag-info.txt                  case, examiner, host, tool version, UTC time, selection, counts, Payload-Oxum
//! manifest-sha256.txt           SHA-256 of every file under data/
//! signer.pub                    the examiner's ed25519 public key (hex) and its fingerprint
//! tagmanifest-sha256.txt        SHA-256 of bagit.txt, bag-info.txt, manifest-sha256.txt, signer.pub
//! tagmanifest-sha256.txt.sig    ed25519 signature (hex) over tagmanifest-sha256.txt — detached, so unlisted
//! data/events.jsonl             each selected event: original record verbatim (`raw`, plus `raw_sha256`),
//!                               provenance (file, line, byte offset, the file's SHA-256) and normalized fields
//! data/sessions/<id>.json       each selected session's replay, `nbtrail_ops::Replay` as `replay --json` prints it
//! data/findings.sarif           SARIF 2.1.0, triage status in each result's properties
//! data/triage.json              each finding's triage status
//! data/custody.jsonl            the custody-log entries concerning the selection (with their hashes)
//! data/conflicts.jsonl          records whose natural key matches a selected event but whose content
//!                               differs (kept by ingest as conflicts): verbatim, with the differing fields
//! data/report.html              static report: no scripts, every untrusted string escaped
//! ```
//!
//! [`export`] streams: events are read from the store one at a time (two passes: `events.jsonl`, then the
//! report's timeline), each member is hashed as it is written, nothing holds the selection in memory but
//! its event ids. [`verify`] needs only the bundle (and optionally the expected key): structure, every hash,
//! manifest completeness (no extra, no missing member), Payload-Oxum, the signature; it reports the first
//! problem, naming the member.

pub mod keys;
pub mod report;
pub mod zipcheck;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use nbtrail_store::{Case, StoreError, StoredFinding};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The case store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A case operation (the replay written into the bundle).
    #[error(transparent)]
    Ops(#[from] nbtrail_ops::OpsError),
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Writing the zip.
    #[error("{path}: {source}")]
    Zip {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: zip::result::ZipError,
    },
    /// Keys.
    #[error("examiner key: {0}")]
    Key(String),
    /// Nothing selected.
    #[error("{0}")]
    Selection(String),
}

/// Result alias.
pub type Result<T, E = EvidenceError> = std::result::Result<T, E>;

/// What to export.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Selection {
    /// Whole sessions (ids or unique prefixes).
    pub sessions: Vec<String>,
    /// The search that selected events, if any (resolved by the caller into `events`).
    pub query: Option<String>,
    /// Event ids.
    pub events: Vec<i64>,
}

/// Who exports, and why.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Examiner name written into bag-info.txt.
    pub examiner: String,
    /// Free-text notes.
    pub notes: Option<String>,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct ExportReport {
    /// The bundle.
    pub path: String,
    /// Events exported.
    pub events: u64,
    /// Sessions replayed.
    pub sessions: u64,
    /// Findings included.
    pub findings: u64,
    /// Data files (under data/).
    pub files: u64,
    /// Payload bytes.
    pub payload_bytes: u64,
    /// Signer key fingerprint.
    pub signer: String,
    /// SHA-256 of the whole zip.
    pub bundle_sha256: String,
}

/// Export progress.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ExportProgress {
    /// Events written (both passes count).
    pub done: u64,
    /// Total to write.
    pub total: u64,
}

/// Tool identification in bag-info.txt.
pub const AGENT: &str = concat!("nbtrail ", env!("CARGO_PKG_VERSION"));

/// Hashes what passes through to the zip entry and counts bytes.
struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Bag<W: Write + Seek> {
    zip: zip::ZipWriter<W>,
    root: String,
    path: PathBuf,
    manifest: Vec<(String, String)>,
    tags: Vec<(String, String)>,
    payload_bytes: u64,
}

impl<W: Write + Seek> Bag<W> {
    fn zerr(&self) -> impl Fn(zip::result::ZipError) -> EvidenceError + '_ {
        move |source| EvidenceError::Zip {
            path: self.path.clone(),
            source,
        }
    }
    fn ioerr(&self) -> impl Fn(io::Error) -> EvidenceError + '_ {
        move |source| EvidenceError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes one member through `f`; data members go in the manifest, tag files in the tag manifest.
    fn member(
        &mut self,
        name: &str,
        f: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
    ) -> Result<String> {
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        let full = format!("{}/{name}", self.root);
        self.zip.start_file(full, opts).map_err(self.zerr())?;
        let mut hw = HashingWriter {
            inner: &mut self.zip,
            hash: Sha256::new(),
            bytes: 0,
        };
        {
            let mut buf = io::BufWriter::with_capacity(1 << 16, &mut hw);
            f(&mut buf)?;
            buf.flush().map_err(|source| EvidenceError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        let digest = hex::encode(hw.hash.finalize());
        let bytes = hw.bytes;
        if name.starts_with("data/") {
            self.manifest.push((digest.clone(), name.to_string()));
            self.payload_bytes += bytes;
        } else {
            self.tags.push((digest.clone(), name.to_string()));
        }
        Ok(digest)
    }

    fn text(&mut self, name: &str, text: &str) -> Result<String> {
        let path = self.path.clone();
        self.member(name, &mut |w| {
            w.write_all(text.as_bytes())
                .map_err(|source| EvidenceError::Io {
                    path: path.clone(),
                    source,
                })
        })
    }
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> EvidenceError + '_ {
    move |source| EvidenceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn manifest_text(entries: &[(String, String)]) -> String {
    entries.iter().map(|(h, p)| format!("{h}  {p}\n")).collect()
}

/// Exports `sel` from `case` to `out` (a new zip), signed with `key`, and records the export in the
/// case's custody log.
pub fn export(
    case: &mut Case,
    sel: &Selection,
    opts: &ExportOptions,
    key: &SigningKey,
    out: &Path,
    progress: &mut dyn FnMut(ExportProgress),
) -> Result<ExportReport> {
    // Resolve the selection: sessions (full ids) and the union of their cells with the chosen events.
    let mut sessions = Vec::new();
    let mut ids: BTreeSet<i64> = sel.events.iter().copied().collect();
    for s in &sel.sessions {
        let session = case.session(s)?;
        for c in case.session_cells(&session.id)? {
            ids.insert(c.event_id);
        }
        sessions.push(session);
    }
    let ids: Vec<i64> = ids.into_iter().collect();
    if ids.is_empty() {
        return Err(EvidenceError::Selection(
            "the selection is empty: no event matches".into(),
        ));
    }
    let id_set: BTreeSet<i64> = ids.iter().copied().collect();
    let session_ids: BTreeSet<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
    let findings: Vec<StoredFinding> = case.findings_touching(
        &session_ids.iter().copied().collect::<Vec<_>>(),
        &id_set.iter().copied().collect::<Vec<_>>(),
    )?;

    let created = nbtrail_model::format_time(chrono::Utc::now());
    let root = format!(
        "nbtrail-evidence-{}",
        created.replace([':', '.'], "").replace('-', "")
    );
    let file = std::fs::File::create_new(out).map_err(io_at(out))?;
    let mut bag = Bag {
        zip: zip::ZipWriter::new(io::BufWriter::new(file)),
        root,
        path: out.to_path_buf(),
        manifest: Vec::new(),
        tags: Vec::new(),
        payload_bytes: 0,
    };
    let total = ids.len() as u64 * 2;
    let mut done = 0u64;

    // data/events.jsonl — pass 1 (also collects the source files' hashes, for the custody entries).
    let mut files: BTreeSet<String> = BTreeSet::new();
    {
        let case_ref: &Case = case;
        bag.member("data/events.jsonl", &mut |w| {
            case_ref.for_each_event(&ids, &mut |e| {
                let line = serde_json::json!({
                    "event": e,
                    "raw_sha256": hex::encode(Sha256::digest(e.raw.as_bytes())),
                });
                serde_json::to_writer(&mut *w, &line)
                    .map_err(io::Error::from)
                    .map_err(StoreError::from_io)?;
                w.write_all(b"\n").map_err(StoreError::from_io)?;
                files.insert(e.file_sha256);
                done += 1;
                if done.is_multiple_of(10_000) {
                    progress(ExportProgress { done, total });
                }
                Ok(())
            })?;
            Ok(())
        })?;
    }

    // Sessions.
    let mut replays = Vec::new();
    for s in &sessions {
        // The one replay shape (`nbtrail replay --json`, the app's replay view): a bundle's reader sees
        // exactly what the examiner saw.
        let replay = nbtrail_ops::replay(case, &s.id)?;
        let json = serde_json::to_string_pretty(&replay).expect("serializes");
        bag.text(&format!("data/sessions/{}.json", s.id), &json)?;
        replays.push((s.clone(), replay.cells));
    }

    // Findings: SARIF and triage.
    bag.text(
        "data/findings.sarif",
        &serde_json::to_string_pretty(&sarif(&findings)).expect("serializes"),
    )?;
    let triage: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            serde_json::json!({"finding_id": f.id, "fingerprint": f.fingerprint, "code": f.code,
                               "session_id": f.session_id, "event_id": f.event_id, "triage": f.triage})
        })
        .collect();
    bag.text(
        "data/triage.json",
        &serde_json::to_string_pretty(&triage).expect("serializes"),
    )?;

    // Conflicting records of the selected events: another source disagrees about them.
    let conflicts = case.conflicts(None, Some(&ids))?;
    let conflicts_text: String = conflicts
        .iter()
        .map(|c| serde_json::to_string(c).expect("serializes") + "\n")
        .collect();
    bag.text("data/conflicts.jsonl", &conflicts_text)?;

    // Custody entries concerning the selection.
    let finding_ids: BTreeSet<i64> = findings.iter().map(|f| f.id).collect();
    let custody: Vec<_> = case
        .custody_log()?
        .into_iter()
        .filter(|e| match e.action.as_str() {
            "ingest" => e.details["files"].as_array().is_some_and(|fs| {
                fs.iter()
                    .any(|f| f["sha256"].as_str().is_some_and(|h| files.contains(h)))
            }),
            "analyze" => !findings.is_empty(),
            "triage" => e.details["finding_id"]
                .as_i64()
                .is_some_and(|i| finding_ids.contains(&i)),
            "note" => {
                let t = e.details["target"].as_str().unwrap_or("");
                t == "case"
                    || t.strip_prefix("event:")
                        .and_then(|i| i.parse().ok())
                        .is_some_and(|i: i64| id_set.contains(&i))
                    || t.strip_prefix("session:")
                        .is_some_and(|s| session_ids.contains(s))
                    || t.strip_prefix("finding:")
                        .and_then(|i| i.parse().ok())
                        .is_some_and(|i: i64| finding_ids.contains(&i))
            }
            _ => true,
        })
        .collect();
    let custody_text: String = custody
        .iter()
        .map(|e| serde_json::to_string(e).expect("serializes") + "\n")
        .collect();
    bag.text("data/custody.jsonl", &custody_text)?;

    // data/report.html — pass 2 over the events for the timeline.
    let signer = keys::fingerprint(&key.verifying_key());
    let header: Vec<(&str, String)> = vec![
        ("case", case.dir().display().to_string()),
        ("examiner", opts.examiner.clone()),
        ("created (UTC)", created.clone()),
        ("tool", AGENT.to_string()),
        ("signer key", signer.clone()),
        ("selection: sessions", sel.sessions.join(", ")),
        ("selection: query", sel.query.clone().unwrap_or_default()),
        ("events", ids.len().to_string()),
        ("findings", findings.len().to_string()),
        ("notes", opts.notes.clone().unwrap_or_default()),
    ];
    {
        let case_ref: &Case = case;
        let n = ids.len() as u64;
        bag.member("data/report.html", &mut |w| {
            let e = StoreError::from_io;
            report::begin(w, &header).map_err(e)?;
            report::findings(w, &findings).map_err(e)?;
            let notes: Vec<_> = custody.iter().filter(|c| c.action == "note").collect();
            report::notes(w, &notes).map_err(e)?;
            for (s, cells) in &replays {
                report::session(w, s, cells, &findings).map_err(e)?;
            }
            report::timeline_begin(w, n).map_err(e)?;
            case_ref.for_each_event(&ids, &mut |ev| {
                report::timeline_row(w, &ev).map_err(StoreError::from_io)?;
                done += 1;
                if done.is_multiple_of(10_000) {
                    progress(ExportProgress { done, total });
                }
                Ok(())
            })?;
            report::end(w).map_err(e)?;
            Ok(())
        })?;
    }
    progress(ExportProgress { done, total });

    // Tag files, then the signature over the tag manifest.
    bag.text(
        "bagit.txt",
        "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
    )?;
    let one_line = |s: &str| s.replace(['\r', '\n'], " ");
    let mut info = String::new();
    for (k, v) in [
        ("Bag-Software-Agent", AGENT.to_string()),
        ("Bagging-Date", created[..10].to_string()),
        ("Nbtrail-Created-UTC", created.clone()),
        ("Contact-Name", opts.examiner.clone()),
        ("Nbtrail-Host", nbtrail_store::host()),
        ("Nbtrail-Case", case.dir().display().to_string()),
        ("Nbtrail-Selection-Sessions", sel.sessions.join(" ")),
        (
            "Nbtrail-Selection-Query",
            sel.query.clone().unwrap_or_default(),
        ),
        ("Nbtrail-Selection-Event-Ids", sel.events.len().to_string()),
        ("Nbtrail-Events", ids.len().to_string()),
        ("Nbtrail-Sessions", sessions.len().to_string()),
        ("Nbtrail-Findings", findings.len().to_string()),
        ("Nbtrail-Signer-Fingerprint", signer.clone()),
        (
            "External-Description",
            opts.notes.clone().unwrap_or_default(),
        ),
        (
            "Payload-Oxum",
            format!("{}.{}", bag.payload_bytes, bag.manifest.len()),
        ),
    ] {
        info.push_str(&format!("{k}: {}\n", one_line(&v)));
    }
    bag.text("bag-info.txt", &info)?;
    let manifest = manifest_text(&bag.manifest);
    bag.text("manifest-sha256.txt", &manifest)?;
    bag.text(
        "signer.pub",
        &format!(
            "ed25519 {}\nfingerprint {signer}\n",
            hex::encode(key.verifying_key().to_bytes())
        ),
    )?;
    let tagmanifest = manifest_text(&bag.tags);
    // The tag manifest lists the tag files written so far; it is itself written untracked.
    let root = bag.root.clone();
    let opts_zip =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    bag.zip
        .start_file(format!("{root}/tagmanifest-sha256.txt"), opts_zip)
        .map_err(bag.zerr())?;
    bag.zip
        .write_all(tagmanifest.as_bytes())
        .map_err(bag.ioerr())?;
    let sig = key.sign(tagmanifest.as_bytes());
    bag.zip
        .start_file(format!("{root}/tagmanifest-sha256.txt.sig"), opts_zip)
        .map_err(bag.zerr())?;
    bag.zip
        .write_all(format!("{}\n", hex::encode(sig.to_bytes())).as_bytes())
        .map_err(bag.ioerr())?;
    let files_n = bag.manifest.len() as u64;
    let payload_bytes = bag.payload_bytes;
    let w = bag.zip.finish().map_err(|source| EvidenceError::Zip {
        path: out.to_path_buf(),
        source,
    })?;
    w.into_inner()
        .map_err(|e| EvidenceError::Io {
            path: out.to_path_buf(),
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(io_at(out))?;
    let bundle_sha256 = {
        let mut f = std::fs::File::open(out).map_err(io_at(out))?;
        let mut h = Sha256::new();
        io::copy(&mut f, &mut h).map_err(io_at(out))?;
        hex::encode(h.finalize())
    };
    let report = ExportReport {
        path: out.display().to_string(),
        events: ids.len() as u64,
        sessions: sessions.len() as u64,
        findings: findings.len() as u64,
        files: files_n,
        payload_bytes,
        signer,
        bundle_sha256,
    };
    case.record_custody(
        "export",
        serde_json::json!({
            "bundle": report.path, "bundle_sha256": report.bundle_sha256, "examiner": opts.examiner,
            "selection": sel, "events": report.events, "sessions": report.sessions,
            "findings": report.findings, "signer": report.signer,
        }),
    )?;
    Ok(report)
}

/// SARIF 2.1.0 for stored findings, in the analyzer's shape (`nbtrail_analyzer::sarif`): locations are
/// cells (`nbtrail:event/<id>`), each result carries its fingerprint and its triage status.
pub fn sarif(findings: &[StoredFinding]) -> serde_json::Value {
    use nbtrail_analyzer::sarif::{Region, location, log, result, rule};
    let mut rules: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for f in findings {
        rules.insert(&f.code, (&f.rule, &f.severity));
    }
    let at = |event: Option<i64>, region: Region, note: Option<&str>| {
        let uri = format!("nbtrail:event/{}", event.unwrap_or(0));
        location(&uri, &region, None, note)
    };
    let results = findings
        .iter()
        .map(|f| {
            let steps: Vec<_> = f
                .trace
                .iter()
                .map(|s| {
                    let region = Region {
                        line: s.line,
                        col: s.col,
                        end_line: s.end_line,
                        end_col: s.end_col,
                        chars: None,
                    };
                    at(s.event_id, region, Some(&s.note))
                })
                .collect();
            let region = Region {
                line: f.line,
                col: f.col,
                end_line: f.end_line,
                end_col: f.end_col,
                chars: None,
            };
            let mut r = result(
                &f.code,
                &f.severity,
                &f.message,
                at(f.event_id, region, None),
                steps,
            );
            r["partialFingerprints"] = serde_json::json!({"nbtrail/v1": f.fingerprint});
            r["properties"] = serde_json::json!({
                "rule": f.rule, "triage": f.triage, "session_id": f.session_id, "finding_id": f.id,
            });
            r
        })
        .collect();
    log(
        rules
            .iter()
            .map(|(code, (name, severity))| rule(code, name, severity, None))
            .collect(),
        results,
    )
}

// ---- verify ------------------------------------------------------------------------------------------

/// Whom the signer of an intact bundle is known as.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, ts_rs::TS)]
#[ts(export)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// The key the caller expected (`--key`).
    Expected,
    /// A key pinned in the trusted-examiners file (or the examiner's own).
    Pinned,
    /// Nobody known: the bundle is intact *as signed by this key*, but anyone can make a key and sign.
    Unknown,
}

/// The verdict on a bundle.
#[derive(Debug, Clone, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct Verdict {
    /// The bundle is intact and its signer is expected or pinned: the only verdict that means "verified".
    pub ok: bool,
    /// Structure, manifests, hashes and signature all hold (whoever signed).
    pub intact: bool,
    /// Whom the signer is known as (meaningful when `intact`).
    pub trust: Trust,
    /// The pinned name of the signer, when pinned.
    pub pinned_as: Option<String>,
    /// The first problem found (names the member).
    pub problem: Option<String>,
    /// Data files checked.
    pub files_checked: u64,
    /// Signer fingerprint, when the signature file could be read.
    pub signer: Option<String>,
    /// bag-info.txt, when readable.
    pub info: BTreeMap<String, String>,
}

const TAG_FILES: &[&str] = &[
    "bagit.txt",
    "bag-info.txt",
    "manifest-sha256.txt",
    "signer.pub",
    "tagmanifest-sha256.txt",
    "tagmanifest-sha256.txt.sig",
];

fn parse_manifest(text: &str, name: &str) -> std::result::Result<Vec<(String, String)>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let (h, p) = l
                .split_once(' ')
                .ok_or_else(|| format!("{name} line {}: expected `<sha256>  <path>`", i + 1))?;
            let p = p.trim_start();
            if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) || p.is_empty() {
                return Err(format!(
                    "{name} line {}: expected `<sha256>  <path>`",
                    i + 1
                ));
            }
            Ok((h.to_ascii_lowercase(), p.to_string()))
        })
        .collect()
}

fn fail(
    problem: String,
    files_checked: u64,
    signer: Option<String>,
    info: BTreeMap<String, String>,
) -> Verdict {
    Verdict {
        ok: false,
        intact: false,
        trust: Trust::Unknown,
        pinned_as: None,
        problem: Some(problem),
        files_checked,
        signer,
        info,
    }
}

/// Tag files larger than this are refused before they are read (a 9 MB member inflating to gigabytes was
/// read into memory whole before being rejected).
pub const MAX_TAG_FILE_BYTES: u64 = 16 << 20;

/// Verifies a bundle. `expected_key`: a fingerprint (prefix of ≥ 16 hex digits) or a public key in hex;
/// `pinned`: the trusted examiners (see [`keys::default_trusted`]). The verdict is `ok` only when the bundle
/// is intact and signed by the expected key or a pinned one; an intact bundle signed by anyone else is
/// `intact` with [`Trust::Unknown`] — a forger can re-sign an altered bundle with a key of their own.
pub fn verify(path: &Path, expected_key: Option<&str>, pinned: &[keys::Pinned]) -> Result<Verdict> {
    let mut file = io::BufReader::new(std::fs::File::open(path).map_err(io_at(path))?);
    // Both views of the zip (central directory, local headers from byte 0) must be one archive.
    let entries = match zipcheck::check(&mut file) {
        Ok(e) => e,
        Err(e) => {
            return Ok(fail(
                format!("not a well-formed bundle: {e}"),
                0,
                None,
                BTreeMap::new(),
            ));
        }
    };
    let sizes: BTreeMap<String, u64> = entries
        .iter()
        .map(|e| (e.name.clone(), e.uncompressed))
        .collect();
    let mut zip = match zip::ZipArchive::new(file) {
        Ok(z) => z,
        Err(e) => {
            return Ok(fail(
                format!("not a readable zip archive: {e}"),
                0,
                None,
                BTreeMap::new(),
            ));
        }
    };
    // Members in file order, as the structure check read them (names unique, checked there).
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e.name.as_str())
        .filter(|n| !n.ends_with('/'))
        .collect();
    let root = match names.first().and_then(|n| n.split_once('/')) {
        Some((r, _)) => r.to_string(),
        None => {
            return Ok(fail(
                "the bundle is empty or has no bag folder".into(),
                0,
                None,
                BTreeMap::new(),
            ));
        }
    };
    for n in &names {
        if !n.starts_with(&format!("{root}/")) {
            return Ok(fail(
                format!("unexpected member {n} (outside the bag folder {root}/)"),
                0,
                None,
                BTreeMap::new(),
            ));
        }
    }
    let rel = |n: &str| n[root.len() + 1..].to_string();
    let present: BTreeSet<String> = names.iter().map(|n| rel(n)).collect();
    for t in TAG_FILES {
        if !present.contains(*t) {
            return Ok(fail(
                format!("missing member {t}"),
                0,
                None,
                BTreeMap::new(),
            ));
        }
    }
    let mut read = |name: &str| -> std::result::Result<Vec<u8>, String> {
        let full = format!("{root}/{name}");
        if sizes.get(&full).is_some_and(|&n| n > MAX_TAG_FILE_BYTES) {
            return Err(format!(
                "member {name}: larger than {MAX_TAG_FILE_BYTES} bytes, not read"
            ));
        }
        let f = zip
            .by_name(&full)
            .map_err(|e| format!("member {name}: {e}"))?;
        let mut buf = Vec::new();
        f.take(MAX_TAG_FILE_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("member {name}: unreadable ({e})"))?;
        if buf.len() as u64 > MAX_TAG_FILE_BYTES {
            return Err(format!(
                "member {name}: larger than {MAX_TAG_FILE_BYTES} bytes, not read"
            ));
        }
        Ok(buf)
    };
    macro_rules! get {
        ($name:expr, $signer:expr, $info:expr) => {
            match read($name) {
                Ok(b) => b,
                Err(p) => return Ok(fail(p, 0, $signer, $info)),
            }
        };
    }
    let bagit = get!("bagit.txt", None, BTreeMap::new());
    if !String::from_utf8_lossy(&bagit).starts_with("BagIt-Version: 1.0") {
        return Ok(fail(
            "member bagit.txt: not a BagIt 1.0 declaration".into(),
            0,
            None,
            BTreeMap::new(),
        ));
    }
    let info_bytes = get!("bag-info.txt", None, BTreeMap::new());
    let info: BTreeMap<String, String> = String::from_utf8_lossy(&info_bytes)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Signature first: the tag manifest is what vouches for everything else.
    let signer_text = String::from_utf8_lossy(&get!("signer.pub", None, info.clone())).to_string();
    let key: Option<VerifyingKey> = signer_text
        .lines()
        .find_map(|l| l.strip_prefix("ed25519 "))
        .and_then(|h| hex::decode(h.trim()).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok());
    let Some(key) = key else {
        return Ok(fail(
            "member signer.pub: no ed25519 public key in it".into(),
            0,
            None,
            info,
        ));
    };
    let signer = Some(keys::fingerprint(&key));
    let tagmanifest = get!("tagmanifest-sha256.txt", signer.clone(), info.clone());
    let sig_text = String::from_utf8_lossy(&get!(
        "tagmanifest-sha256.txt.sig",
        signer.clone(),
        info.clone()
    ))
    .to_string();
    let sig = hex::decode(sig_text.trim())
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b));
    let Some(sig) = sig else {
        return Ok(fail(
            "member tagmanifest-sha256.txt.sig: not a hex ed25519 signature".into(),
            0,
            signer,
            info,
        ));
    };
    if key.verify(&tagmanifest, &sig).is_err() {
        return Ok(fail(
            "member tagmanifest-sha256.txt.sig: the signature does not match tagmanifest-sha256.txt for the key in signer.pub".into(),
            0,
            signer,
            info,
        ));
    }
    if let Some(expected) = expected_key
        && !keys::matches(&key, expected)
    {
        return Ok(fail(
            format!(
                "member signer.pub: signed by {}, not by the expected key {expected}",
                keys::fingerprint(&key)
            ),
            0,
            signer,
            info,
        ));
    }
    let tags = match parse_manifest(
        &String::from_utf8_lossy(&tagmanifest),
        "tagmanifest-sha256.txt",
    ) {
        Ok(t) => t,
        Err(p) => return Ok(fail(format!("member {p}"), 0, signer, info)),
    };
    let must_tag: BTreeSet<&str> = [
        "bagit.txt",
        "bag-info.txt",
        "manifest-sha256.txt",
        "signer.pub",
    ]
    .into();
    let listed: BTreeSet<&str> = tags.iter().map(|(_, p)| p.as_str()).collect();
    for t in &must_tag {
        if !listed.contains(t) {
            return Ok(fail(
                format!("member tagmanifest-sha256.txt: does not cover {t}"),
                0,
                signer,
                info,
            ));
        }
    }
    for (h, p) in &tags {
        let bytes = get!(p, signer.clone(), info.clone());
        if &hex::encode(Sha256::digest(&bytes)) != h {
            return Ok(fail(
                format!("member {p}: SHA-256 does not match tagmanifest-sha256.txt (altered)"),
                0,
                signer,
                info,
            ));
        }
    }
    let manifest = get!("manifest-sha256.txt", signer.clone(), info.clone());
    let entries = match parse_manifest(&String::from_utf8_lossy(&manifest), "manifest-sha256.txt") {
        Ok(t) => t,
        Err(p) => return Ok(fail(format!("member {p}"), 0, signer, info)),
    };
    let mut listed_data = BTreeSet::new();
    for (_, p) in &entries {
        if !p.starts_with("data/") || p.contains("..") {
            return Ok(fail(
                format!("member manifest-sha256.txt: lists {p}, outside data/"),
                0,
                signer,
                info,
            ));
        }
        listed_data.insert(p.clone());
        if !present.contains(p) {
            return Ok(fail(
                format!("missing member {p} (listed in manifest-sha256.txt)"),
                0,
                signer,
                info,
            ));
        }
    }
    for p in &present {
        if !listed_data.contains(p) && !TAG_FILES.contains(&p.as_str()) {
            return Ok(fail(
                format!("unexpected member {p} (not in manifest-sha256.txt)"),
                0,
                signer,
                info,
            ));
        }
    }
    let mut checked = 0u64;
    let mut bytes_total = 0u64;
    for (h, p) in &entries {
        let mut f = match zip.by_name(&format!("{root}/{p}")) {
            Ok(f) => f,
            Err(e) => return Ok(fail(format!("member {p}: {e}"), checked, signer, info)),
        };
        let mut hasher = Sha256::new();
        match io::copy(&mut f, &mut hasher) {
            Ok(n) => bytes_total += n,
            Err(e) => {
                return Ok(fail(
                    format!("member {p}: unreadable ({e})"),
                    checked,
                    signer,
                    info,
                ));
            }
        }
        if &hex::encode(hasher.finalize()) != h {
            return Ok(fail(
                format!("member {p}: SHA-256 does not match manifest-sha256.txt (altered)"),
                checked,
                signer,
                info,
            ));
        }
        checked += 1;
    }
    let oxum = format!("{bytes_total}.{}", entries.len());
    if info.get("Payload-Oxum").is_some_and(|o| o != &oxum) {
        return Ok(fail(
            format!(
                "member bag-info.txt: Payload-Oxum {} but the payload is {oxum}",
                info["Payload-Oxum"]
            ),
            checked,
            signer,
            info,
        ));
    }
    let (trust, pinned_as) = if expected_key.is_some() {
        (Trust::Expected, None)
    } else if let Some(p) = pinned.iter().find(|p| p.matches(&key)) {
        (Trust::Pinned, Some(p.name.clone()))
    } else {
        (Trust::Unknown, None)
    };
    Ok(Verdict {
        ok: trust != Trust::Unknown,
        intact: true,
        trust,
        pinned_as,
        problem: None,
        files_checked: checked,
        signer,
        info,
    })
}
