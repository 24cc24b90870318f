//! A whole input file through ingest: gzip detection, framing (JSON lines, arrays, CSV), shape detection
//! and normalization of every shape. Every record must come out as an event or a positioned error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, atomic::AtomicU64};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.json");
    std::fs::write(&path, data).unwrap();
    let Ok(mut reader) = nbtrail_ingest::FileReader::open(&path, Arc::new(AtomicU64::new(0))) else {
        return;
    };
    let mut n = 0u64;
    while let Some(item) = reader.next_item() {
        if let nbtrail_ingest::Item::Error(e) = &item {
            assert!(e.line >= 1);
        }
        n += 1;
        assert!(n <= data.len() as u64 + 1, "more records than bytes");
    }
});
