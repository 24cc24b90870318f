//! The analyzer on arbitrary Python source (Databricks `# COMMAND ----------` cells): parse, bounds,
//! taint engine and table extraction never panic or overflow.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let cells = nbtrail_analyzer::cells::from_python_source(src);
    let _ = nbtrail_analyzer::analyze(&cells, &nbtrail_analyzer::Rules::default_rules());
    for c in &cells {
        let _ = nbtrail_analyzer::tables::tables(c);
    }
});
