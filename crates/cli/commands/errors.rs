//! `nbtrail errors`: List every rejected record with file, line and reason.

use crate::*;

/// The arguments of `nbtrail errors`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    list: RunListing,
}

/// Runs the command.
pub fn run(
    Args {
        list: RunListing { case, run, json },
    }: Args,
) -> Result<()> {
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
