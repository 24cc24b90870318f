//! Writer and verifier together: every kind of damage is caught at the record it touches.

use crate::writer::{Entry, LogWriter, WriterConfig};
use crate::{RecordType, list_segments, verify_dir};
use ed25519_dalek::SigningKey;
use serde_json::json;
use std::path::Path;

fn write_log(dir: &Path, n: usize, cfg: WriterConfig) -> LogWriter {
    let mut w = LogWriter::open(dir, cfg).unwrap();
    for i in 0..n {
        w.append(&[Entry::new(
            RecordType::KernelMessage,
            json!({"i": i, "content": {"code": format!("x = {i}")}}),
        )])
        .unwrap();
    }
    w
}

fn signed_cfg() -> WriterConfig {
    WriterConfig {
        signer: Some(SigningKey::from_bytes(&[3u8; 32])),
        checkpoint_every: 4,
        segment_bytes: 2_000,
        ..Default::default()
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn clean_log_verifies_across_rotation_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = write_log(dir.path(), 30, signed_cfg());
    w.close().unwrap();
    // A second run continues the chain in a new segment.
    let mut w = write_log(dir.path(), 5, signed_cfg());
    w.close().unwrap();
    let segs = list_segments(dir.path()).unwrap();
    assert!(segs.len() >= 4, "rotation by size: {segs:?}");
    let key = crate::public_key_hex(&SigningKey::from_bytes(&[3u8; 32]));
    let r = verify_dir(dir.path(), Some(&key)).unwrap();
    assert!(r.ok, "{r:?}");
    assert!(!r.open);
    assert_eq!(r.segments as usize, segs.len());
    assert!(r.checkpoints >= 8);
    // The closing checkpoint signs the record before it; only segment_end follows it.
    assert_eq!(r.signed_through, Some(r.last_seq - 2));
    // Every record is counted: 35 messages plus the bookkeeping.
    let total: usize = segs.iter().map(|(_, p)| lines(p).len()).sum();
    assert_eq!(r.records as usize, total);
    // Another key is refused.
    let other = crate::public_key_hex(&SigningKey::from_bytes(&[4u8; 32]));
    let r = verify_dir(dir.path(), Some(&other)).unwrap();
    assert!(!r.ok);
    assert!(
        r.problem
            .unwrap()
            .message
            .contains("instead of the expected key")
    );
}

#[test]
fn edit_delete_reorder_truncate_fail_at_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = write_log(dir.path(), 10, WriterConfig::default());
    w.close().unwrap();
    let seg = list_segments(dir.path()).unwrap()[0].1.clone();
    let orig = lines(&seg);
    let check = |mutate: &dyn Fn(&mut Vec<String>), want_line: u64, want: &str| {
        let mut l = orig.clone();
        mutate(&mut l);
        write_lines(&seg, &l);
        let r = verify_dir(dir.path(), None).unwrap();
        let p = r.problem.expect("tampering must be found");
        assert!(!r.ok);
        assert_eq!(p.line, want_line, "{p}");
        assert!(p.message.contains(want), "{p}");
        write_lines(&seg, &orig);
    };
    check(
        &|l| l[4] = l[4].replace("x = 3", "x = 4"),
        5,
        "record edited",
    );
    check(
        &|l| {
            l.remove(4);
        },
        5,
        "gap",
    );
    check(&|l| l.swap(4, 5), 5, "gap");
    check(&|l| l.swap(5, 4), 5, "gap");
    // Replace a record and recompute its own hash: the next record's link breaks.
    check(
        &|l| {
            let v: serde_json::Value = serde_json::from_str(&l[4]).unwrap();
            let mut m = v.as_object().unwrap().clone();
            for k in ["seq", "prev", "time", "type", "hash"] {
                m.remove(k);
            }
            m.insert("i".into(), json!(99));
            let (line, _) = crate::encode_record(
                v["seq"].as_u64().unwrap(),
                v["prev"].as_str().unwrap(),
                v["time"].as_str().unwrap(),
                "kernel_message",
                &m,
            );
            l[4] = line;
        },
        6,
        "broken link",
    );
    // Cut the tail mid-record.
    let mut text = orig.join("\n") + "\n";
    text.truncate(text.len() - 30);
    std::fs::write(&seg, &text).unwrap();
    let r = verify_dir(dir.path(), None).unwrap();
    assert!(r.problem.unwrap().message.contains("truncated"));
    write_lines(&seg, &orig);
    assert!(verify_dir(dir.path(), None).unwrap().ok);
}

#[test]
fn forged_chain_fails_the_signature_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = write_log(dir.path(), 10, signed_cfg());
    w.close().unwrap();
    let key = crate::public_key_hex(&SigningKey::from_bytes(&[3u8; 32]));
    // A forger rewrites the whole log with their own key: it verifies on its own, not against ours.
    let forged = tempfile::tempdir().unwrap();
    let mut cfg = signed_cfg();
    cfg.signer = Some(SigningKey::from_bytes(&[9u8; 32]));
    write_log(forged.path(), 10, cfg).close().unwrap();
    assert!(verify_dir(forged.path(), None).unwrap().ok);
    assert!(!verify_dir(forged.path(), Some(&key)).unwrap().ok);
    // Without a signer, --key finds no checkpoint.
    let unsigned = tempfile::tempdir().unwrap();
    write_log(unsigned.path(), 3, WriterConfig::default())
        .close()
        .unwrap();
    let r = verify_dir(unsigned.path(), Some(&key)).unwrap();
    assert!(
        r.problem
            .unwrap()
            .message
            .contains("segment signed by no key")
    );
}

#[cfg(unix)]
#[test]
fn write_failure_poisons_then_recovers_in_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = write_log(dir.path(), 3, WriterConfig::default());
    let seg = w.current_segment().unwrap().to_path_buf();
    // Simulate a failed write: the segment disappears (a read-only file does not stop root).
    let moved = dir.path().join("moved-away");
    std::fs::rename(&seg, &moved).unwrap();
    let err = w
        .append(&[Entry::new(RecordType::KernelMessage, json!({"i": "lost"}))])
        .unwrap_err();
    assert!(err.to_string().contains("capture-000001.jsonl"), "{err}");
    assert!(w.poisoned().is_some());
    std::fs::rename(&moved, &seg).unwrap();
    // Simulate the unacknowledged bytes a failed fsync would leave.
    let mut text = std::fs::read_to_string(&seg).unwrap();
    text.push_str("{\"seq\":999,\"partial");
    std::fs::write(&seg, &text).unwrap();
    w.append(&[Entry::new(RecordType::KernelMessage, json!({"i": "after"}))])
        .unwrap();
    assert!(w.poisoned().is_none());
    w.close().unwrap();
    let r = verify_dir(dir.path(), None).unwrap();
    assert!(r.ok, "{r:?}");
    assert!(
        r.notes.iter().any(|n| n.contains("unacknowledged write")),
        "{r:?}"
    );
    assert!(
        r.notes.iter().any(|n| n.contains("after a write failure")),
        "{r:?}"
    );
    // The lost record is nowhere in the chain.
    for (_, p) in list_segments(dir.path()).unwrap() {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(!text.contains("\"lost\""));
    }
}

#[test]
fn missing_segment_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = WriterConfig {
        segment_bytes: 500,
        ..Default::default()
    };
    write_log(dir.path(), 20, cfg).close().unwrap();
    let segs = list_segments(dir.path()).unwrap();
    assert!(segs.len() >= 3);
    std::fs::remove_file(&segs[1].1).unwrap();
    let r = verify_dir(dir.path(), None).unwrap();
    let p = r.problem.unwrap();
    assert!(p.message.contains("segment missing"), "{p}");
    assert_eq!(p.file, "capture-000002.jsonl");
}

/// Issue 15: the docs advise rotating old segments away; `verify-log` must then verify from the first
/// segment present (and say so) instead of reporting a false gap — and still catch damage there.
#[test]
fn rotated_away_first_segments_verify_from_the_first_present_one() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 30, signed_cfg()).close().unwrap();
    let segs = list_segments(dir.path()).unwrap();
    assert!(segs.len() >= 4);
    for (_, p) in &segs[..2] {
        std::fs::remove_file(p).unwrap();
    }
    let key = crate::public_key_hex(&SigningKey::from_bytes(&[3u8; 32]));
    let r = verify_dir(dir.path(), Some(&key)).unwrap();
    assert!(r.ok, "{r:?}");
    assert!(r.notes.iter().any(|n| n.contains("rotated away")), "{r:?}");
    assert_eq!(r.segments as usize, segs.len() - 2);
    // An edit in the first present segment is still caught at its record.
    let first = &segs[2].1;
    let mut l = lines(first);
    l[1] = l[1].replacen("x = ", "y = ", 1);
    write_lines(first, &l);
    let r = verify_dir(dir.path(), Some(&key)).unwrap();
    assert!(!r.ok);
    assert_eq!(r.problem.unwrap().line, 2);
}

/// A record fully written but never acknowledged (its fsync failed, so the gateway refused the message):
/// the next segment says where the acknowledged records end, and `segment_facts` reports it, so ingest
/// can show the record as refused rather than as something that ran.
#[cfg(unix)]
#[test]
fn segment_facts_name_the_unacknowledged_tail_and_the_signed_part() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = WriterConfig {
        signer: Some(SigningKey::from_bytes(&[3u8; 32])),
        checkpoint_every: 2,
        ..Default::default()
    };
    let mut w = write_log(dir.path(), 3, cfg);
    let seg = w.current_segment().unwrap().to_path_buf();
    let acked = std::fs::metadata(&seg).unwrap().len();
    let moved = dir.path().join("moved-away");
    std::fs::rename(&seg, &moved).unwrap();
    w.append(&[Entry::new(
        RecordType::KernelMessage,
        json!({"i": "refused"}),
    )])
    .unwrap_err();
    std::fs::rename(&moved, &seg).unwrap();
    // The bytes of the refused record that did reach the disk: a whole, correctly chained record.
    let l = lines(&seg);
    let last: serde_json::Value = serde_json::from_str(l.last().unwrap()).unwrap();
    let fields = json!({"content": {"code": "refused_code()"}});
    let (line, _) = crate::encode_record(
        last["seq"].as_u64().unwrap() + 1,
        last["hash"].as_str().unwrap(),
        &crate::now(),
        "kernel_message",
        fields.as_object().unwrap(),
    );
    let mut text = std::fs::read_to_string(&seg).unwrap();
    text.push_str(&line);
    text.push('\n');
    std::fs::write(&seg, &text).unwrap();
    w.append(&[Entry::new(RecordType::KernelMessage, json!({"i": "after"}))])
        .unwrap();
    w.close().unwrap();
    let facts = crate::segment_facts(&seg).unwrap();
    assert_eq!(facts.acknowledged_end, Some(acked));
    let key = crate::public_key_hex(&SigningKey::from_bytes(&[3u8; 32]));
    assert_eq!(facts.signer.as_deref(), Some(key.as_str()));
    // Checkpoints after every two records: the third message is not yet covered by one.
    assert!(facts.signed_through.is_some_and(|s| s >= 3), "{facts:?}");
    // The last segment has no successor: nothing is known about an unacknowledged tail.
    let segs = list_segments(dir.path()).unwrap();
    let last_facts = crate::segment_facts(&segs.last().unwrap().1).unwrap();
    assert_eq!(last_facts.acknowledged_end, None);
    assert!(verify_dir(dir.path(), Some(&key)).unwrap().ok);
}
