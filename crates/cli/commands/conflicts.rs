//! `nbtrail conflicts`: list every conflict — a record whose natural key is in the case with other content
//! (another user, source, response or code) — with the fields that differ.

use crate::*;

/// The arguments of `nbtrail conflicts`: the case, an optional run, `--json`.
pub type Args = RunListing;

/// Runs the command.
pub fn run(RunListing { case, run, json }: Args) -> Result<()> {
    let c = open(&case)?;
    let rows = c.conflicts(run, None)?;
    if json {
        return print_json(&rows);
    }
    for r in &rows {
        println!(
            "{}: conflicts with event {} ({})",
            render::visible(&r.location),
            r.event_id,
            render::visible(&r.event_source)
        );
        for f in r.fields.as_array().into_iter().flatten() {
            println!(
                "  {}: stored {} / this record {}",
                f["field"].as_str().unwrap_or("?"),
                render::visible(&f["stored"].to_string()),
                render::visible(&f["record"].to_string())
            );
        }
    }
    Ok(())
}
