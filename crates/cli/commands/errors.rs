//! `nbtrail errors`: List every rejected record with file, line and reason.

use crate::*;

/// The arguments of `nbtrail errors`: the case, an optional run, `--json`.
pub type Args = RunListing;

/// Runs the command.
pub fn run(RunListing { case, run, json }: Args) -> Result<()> {
    let c = open(&case)?;
    let e = c.ingest_errors(run)?;
    if json {
        print_json(&e)
    } else {
        for e in &e {
            println!(
                "{}: {}",
                render::visible(&e.location),
                render::visible(&e.message)
            );
        }
        Ok(())
    }
}
