//! CSV framing and field reading: every line is in exactly one frame (or counted blank), fields never
//! panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nbtrail_ingest::framing::{Framer, Framing, csv_fields};

fuzz_target!(|data: &[u8]| {
    let mut input = b"event_time,action_name,x\n".to_vec();
    input.extend_from_slice(data);
    let mut f = Framer::new(&input[..], Framing::Csv, 0);
    let mut newlines = 0usize;
    let mut frames = 0usize;
    while let Some(fr) = f.next_frame().unwrap() {
        newlines += fr.bytes.iter().filter(|&&b| b == b'\n').count();
        frames += 1;
        let _ = csv_fields(&fr.bytes, Some(3));
    }
    let lines = input.split(|&b| b == b'\n').count() - usize::from(input.ends_with(b"\n"));
    assert_eq!(frames + newlines + f.blank_lines as usize, lines);
});
