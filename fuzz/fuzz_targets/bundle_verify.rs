//! Bundle verification of arbitrary bytes: the strict zip check, then `verify` itself, never panic; a
//! file the zip check refuses is never verified.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let structure = nbtrail_evidence::zipcheck::check(&mut std::io::Cursor::new(data));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.zip");
    std::fs::write(&path, data).unwrap();
    if let Ok(v) = nbtrail_evidence::verify(&path, None, &[]) {
        assert!(!v.ok, "no key is pinned, so nothing verifies");
        if structure.is_err() {
            assert!(!v.intact);
        }
    }
});
