//! The `.ipynb` front end and the analyzer on whatever cells it yields.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    if let Ok(cells) = nbtrail_analyzer::cells::from_ipynb(src) {
        let _ = nbtrail_analyzer::analyze(&cells, &nbtrail_analyzer::Rules::default_rules());
    }
});
