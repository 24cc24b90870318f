//! `verify-log` over a capture log directory holding one arbitrary segment, and the ingest of the same
//! bytes as capture-shaped records.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("capture-000001.jsonl"), data).unwrap();
    let _ = nbtrail_capture::verify::verify_dir(dir.path(), None);
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            let _ = nbtrail_capture::line_hashes(line);
            let _ = nbtrail_ingest::capture::output_of_record(line);
        }
    }
});
