//! The query language: lexing, parsing and compiling any text (deep nesting included) never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

struct NoCase;
impl nbtrail_search::query::Lookup for NoCase {
    fn events_with_rule(&self, _: &str) -> Vec<u64> {
        vec![1]
    }
    fn events_in_session(&self, _: &str) -> Vec<u64> {
        vec![2]
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else { return };
    let (_, fields) = nbtrail_search::schema::Fields::build();
    let _ = nbtrail_search::query::compile(q, &fields, &NoCase, 1_700_000_000_000);
});
